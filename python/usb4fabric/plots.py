"""Plots: latency and bandwidth against message size, one line per fabric.

Object-oriented matplotlib without pyplot state: every figure is a
``matplotlib.figure.Figure``; helpers take an ``ax`` and data and return the
artists they drew.  Measured series are solid lines of medians over the
repetitions with a min-max band; published reference points are hollow
markers keyed by source (one symbol and colour per published fabric), named
in a legend beside the plot with their P# ids (the report's table of
published rows): no text is written on the plot, so nothing overlaps.
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
          "tcp": "tab:blue", "shm": "tab:green", "shared": "tab:green", "roce": "tab:purple"}


def color_for(series: str) -> str | None:
    """A fabric's colour from its series name ("usb4", "Ethernet — Open MPI btl
    tcp, 2 hosts", "shm @ a,b"): by its first word, btl tcp apart."""
    first = series.split(" ")[0].lower()
    if first.startswith("ethernet") and "btl" in series:
        return COLORS["ethernet-btl"]
    return COLORS.get(first)


REF_MARKERS = "osD^v<>ph*XP"
REF_COLORS = ("0.15", "tab:brown", "tab:olive", "tab:pink", "tab:gray", "darkgoldenrod",
              "tab:purple", "teal")


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


def reference_keys(refs: pd.DataFrame) -> dict[str, tuple[str, str, list[str]]]:
    """Published fabric -> (marker, colour, its P# ids), for the points that
    can be placed (a size and a finite value), in the order of the rows."""
    keys: dict[str, tuple[str, str, list[str]]] = {}
    for row in refs.to_dict("records"):
        size = row["size"]
        if size is None or pd.isna(size) or size <= 0 or not math.isfinite(row["plot_value"]):
            continue
        if row["fabric"] not in keys:
            n = len(keys)
            keys[row["fabric"]] = (REF_MARKERS[n % len(REF_MARKERS)],
                                   REF_COLORS[n % len(REF_COLORS)], [])
        keys[row["fabric"]][2].append(str(row.get("ref_id", "")))
    return keys


def plot_reference(ax: Axes, refs: pd.DataFrame) -> list:
    """Published points: hollow markers, one symbol and colour per published
    fabric; returns one legend handle per fabric (labelled with its P# ids)."""
    keys = reference_keys(refs)
    handles = []
    for fabric, (marker, color, ids) in keys.items():
        rows = refs[(refs["fabric"] == fabric) & refs["ref_id"].isin(ids)]
        label = f"{', '.join(ids)}: {fabric[:34]}"
        notes = sorted({n for n in rows["plot_note"] if n})
        if notes:
            label += f" ({', '.join(notes)})"
        handles.append(ax.scatter(rows["size"].astype(float).to_numpy(),
                                  rows["plot_value"].astype(float).to_numpy(),
                                  marker=marker, s=46, facecolors="none", edgecolors=color,
                                  linewidths=1.3, zorder=3, label=label))
    return handles


def figure_for(title: str, metric: str, measured: dict[str, pd.DataFrame],
               refs: pd.DataFrame | None = None) -> Figure:
    """A log-log figure of one benchmark: one line per fabric, reference points."""
    fig = Figure(figsize=(12, 6), dpi=110, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    lines = [drawn[0] for series, data in measured.items()
             if (drawn := plot_measured(ax, data, series, color_for(series)))]
    published = plot_reference(ax, refs) if refs is not None and not refs.empty else []
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(size_label)
    ax.set_xlabel("message size")
    ax.set_ylabel(UNITS.get(metric, metric))
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    if lines:
        ax.legend(handles=lines, loc="upper left", fontsize=8, title="measured (median, min-max band)",
                  title_fontsize=7)
    if published:
        fig.legend(handles=published, loc="outside right upper", fontsize=7,
                   title="published, not measured here\n(P#: the report's table)",
                   title_fontsize=7, alignment="left")
    return fig


def save(fig: Figure, stem: Path) -> tuple[Path, Path]:
    """PNG and SVG next to each other; returns their paths."""
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png)
    fig.savefig(svg)
    return png, svg
