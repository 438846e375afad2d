"""Plots: latency and bandwidth against message size, one line per fabric.

Object-oriented matplotlib without pyplot state: every figure is a
``matplotlib.figure.Figure``; helpers take an ``ax`` and data and return the
artists they drew.  Measured series are solid lines of medians over the
repetitions with a min-max band; published reference points are hollow
markers, each labelled.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

UNITS = {"latency": "latency (us)", "bandwidth": "bandwidth (MB/s)",
         "busbw": "bus bandwidth (GB/s, nccl-tests' definition)"}
COLORS = {"usb4": "tab:red", "ethernet": "tab:blue", "ethernet-btl": "tab:cyan",
          "tcp": "tab:blue", "shm": "tab:green", "roce": "tab:purple"}
REF_MARKERS = "osD^v<>ph"


def size_label(size: float, _pos: object = None) -> str:
    size = int(size)
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def plot_measured(ax: Axes, summary: pd.DataFrame, series: str,
                  color: str | None = None) -> list:
    """One fabric: median line and min-max band.  summary has size/median/min/max."""
    data = summary.dropna(subset=["size"]).sort_values("size")
    data = data[data["size"] > 0]  # a log axis has no place for 0 B
    if data.empty:
        return []
    x = data["size"].astype(float).to_numpy()
    line, = ax.plot(x, data["median"].to_numpy(), "-", marker=".", color=color,
                    label=series, linewidth=1.6)
    band = ax.fill_between(x, data["min"].to_numpy(), data["max"].to_numpy(),
                           color=line.get_color(), alpha=0.18, linewidth=0)
    return [line, band]


def plot_reference(ax: Axes, refs: pd.DataFrame) -> list:
    """Published points: hollow markers, each labelled with fabric and benchmark."""
    artists = []
    for i, row in enumerate(refs.to_dict("records")):
        size = row["size"]
        if size is None or pd.isna(size) or size <= 0 or not math.isfinite(row["plot_value"]):
            continue
        marker = REF_MARKERS[i % len(REF_MARKERS)]
        point = ax.scatter([float(size)], [row["plot_value"]], marker=marker, s=46,
                           facecolors="none", edgecolors="0.25", linewidths=1.2, zorder=3)
        note = f", {row['plot_note']}" if row["plot_note"] else ""
        label = f"{row.get('ref_id', '')} {row['fabric'][:30]} ({row['benchmark']}{note})"
        text = ax.annotate(label.strip(), (float(size), row["plot_value"]), xytext=(5, 2),
                           textcoords="offset points", fontsize=6, color="0.3",
                           annotation_clip=False)
        artists += [point, text]
    return artists


def figure_for(title: str, metric: str, measured: dict[str, pd.DataFrame],
               refs: pd.DataFrame | None = None) -> Figure:
    """A log-log figure of one benchmark: one line per fabric, reference points."""
    fig = Figure(figsize=(10, 6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for series, data in measured.items():
        plot_measured(ax, data, series, COLORS.get(series.split(" ")[0]))
    if refs is not None and not refs.empty:
        plot_reference(ax, refs)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(size_label)
    ax.set_xlabel("message size")
    ax.set_ylabel(UNITS.get(metric, metric))
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    if measured:
        ax.legend(loc="upper left", fontsize=8, title="measured (median, min-max band)",
                  title_fontsize=7)
    if refs is not None and not refs.empty:
        ax.text(0.99, 0.01, "hollow markers: published figures (P#: see the report's "
                "table), not measured here", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=7, color="0.3")
    fig.tight_layout()
    return fig


def save(fig: Figure, stem: Path) -> tuple[Path, Path]:
    """PNG and SVG next to each other; returns their paths."""
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png)
    fig.savefig(svg)
    return png, svg
