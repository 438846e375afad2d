"""Before and after: two result folders compared per series, benchmark and size.

What a user does after changing a setting or upgrading: ``usb4bench compare
OLD NEW``.  Rows are matched on where they ran (placement), fabric,
benchmark, message size and the benchmark's main metric; each side is the
median over its repetitions.

The run-to-run spread of a side is the min-max range of its repetitions at
that size.  A change is *flagged* when the difference of the medians exceeds
the wider of the two sides' spreads: smaller differences are within what
repeating the same run already moves.  With a single repetition on either
side there is no spread, and no change is flagged ("no spread").

``write()`` puts compare.md, compare.html (plots inlined) and one PNG/SVG per
benchmark into a folder.  Nothing here prints.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from . import plots, report, tables
from .spread import SPREAD_RULE, Side, flag

KEYS = ["placement", "fabric", "benchmark", "size", "metric"]
HEADER = ["series", "benchmark", "size", "metric", "old median", "old spread", "new median",
          "new spread", "change", "flag"]


@dataclasses.dataclass
class Comparison:
    old: Path
    new: Path
    table: pd.DataFrame  # one row per key: medians, spreads, change, flag
    only_old: list[str]  # "series benchmark" measured on one side only
    only_new: list[str]
    figures: list[tuple[str, Path, Path]] = dataclasses.field(default_factory=list)


def _per_size(folder: Path) -> pd.DataFrame:
    """Medians and min-max of the main metric per key, with the series name."""
    rep = report.build([folder], reference_files=[], name=folder.name)
    res = rep.results
    if res.empty:
        return pd.DataFrame(columns=KEYS + ["series", "unit", "median", "min", "max", "n"])
    res = res[[m == report.MAIN_METRIC.get(b, "latency")
               for b, m in zip(res["benchmark"], res["metric"])]]
    res = res[res["size"].notna()]
    grouped = res.groupby(KEYS, dropna=False)
    out = grouped["value"].agg(["median", "min", "max", "count"]).reset_index()
    out["series"] = grouped["series"].first().to_numpy()
    out["unit"] = grouped["unit"].first().to_numpy()
    return out.rename(columns={"count": "n"})


def compare(old: Path, new: Path) -> Comparison:
    """Match the two folders; ResultsFileError on a malformed one."""
    a, b = _per_size(Path(old)), _per_size(Path(new))
    both = a.merge(b, on=KEYS, suffixes=("_old", "_new"))
    rows = []
    for r in both.to_dict("records"):
        o, n = (Side(float(r[f"median_{s}"]), float(r[f"min_{s}"]), float(r[f"max_{s}"]),
                     int(r[f"n_{s}"])) for s in ("old", "new"))
        change = (n.median / o.median - 1) * 100 if o.median else math.nan
        rows.append({**{k: r[k] for k in KEYS}, "series": r["series_new"],
                     "unit": r["unit_new"], "old": o.median, "old_min": o.low,
                     "old_max": o.high, "old_n": o.n, "new": n.median, "new_min": n.low,
                     "new_max": n.high, "new_n": n.n, "change_pct": change,
                     "flag": flag(o, n, r["metric"])})
    table = pd.DataFrame(rows, columns=KEYS + ["series", "unit", "old", "old_min", "old_max",
                                               "old_n", "new", "new_min", "new_max", "new_n",
                                               "change_pct", "flag"])

    def names(side: pd.DataFrame, other: pd.DataFrame) -> list[str]:
        mine = set(zip(side["series"], side["benchmark"], side["placement"], side["fabric"]))
        theirs = set(zip(other["placement"], other["fabric"], other["benchmark"]))
        return sorted(f"{s} {bn}" for s, bn, p, f in mine if (p, f, bn) not in theirs)

    return Comparison(Path(old), Path(new), table, names(a, b), names(b, a))


def rows(cmp: Comparison) -> list[list[str]]:
    out = []
    for r in cmp.table.to_dict("records"):
        out.append([r["series"], r["benchmark"], plots.size_label(r["size"]),
                    f"{r['metric']} ({r['unit']})", f"{r['old']:.2f}",
                    f"{r['old_min']:.2f}-{r['old_max']:.2f} ({r['old_n']} reps)",
                    f"{r['new']:.2f}",
                    f"{r['new_min']:.2f}-{r['new_max']:.2f} ({r['new_n']} reps)",
                    f"{r['change_pct']:+.1f}%" if math.isfinite(r["change_pct"]) else "n/a",
                    r["flag"]])
    return out


def counts(cmp: Comparison) -> dict[str, int]:
    return {f: int((cmp.table["flag"] == f).sum()) for f in
            ("better", "worse", "within spread", "no spread")}


def figure(cmp: Comparison, bench: str) -> Figure:
    """Top: old (dashed) and new (solid) medians per series; bottom: new/old
    with each side's spread relative to the old median, flagged sizes ringed."""
    data = cmp.table[cmp.table["benchmark"] == bench].sort_values("size")
    fig = Figure(figsize=(11, 7), dpi=110, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    for series, d in data.groupby("series", sort=False):
        x = d["size"].astype(float).to_numpy()
        color = plots.color_for(str(series))
        line, = top.plot(x, d["new"].to_numpy(), "-", marker=".", color=color,
                         label=f"{series}: new")
        top.plot(x, d["old"].to_numpy(), "--", color=line.get_color(), alpha=0.7,
                 label=f"{series}: old")
        ratio = (d["new"] / d["old"]).to_numpy()
        bottom.plot(x, ratio, "-", marker=".", color=line.get_color())
        flagged = d["flag"].isin(["better", "worse"]).to_numpy()
        bottom.scatter(x[flagged], ratio[flagged], s=90, facecolors="none",
                       edgecolors=line.get_color(), linewidths=1.5, zorder=3)
    metric = data["metric"].iloc[0] if len(data) else "latency"
    top.set_yscale("log")
    top.set_ylabel(plots.UNITS.get(metric, metric))
    top.set_title(f"{bench}: old (dashed) against new (solid)")
    top.legend(fontsize=7, loc="best")
    bottom.axhline(1.0, color="0.4", linewidth=0.8)
    bottom.set_ylabel("new / old")
    bottom.set_xscale("log", base=2)
    bottom.xaxis.set_major_formatter(plots.size_label)
    bottom.set_xlabel("message size (ringed: change beyond the run-to-run spread)")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    return fig


def write(cmp: Comparison, folder: Path) -> dict[str, Path]:
    """compare.md, compare.html and a PNG/SVG per benchmark into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    cmp.figures = []
    for bench in dict.fromkeys(cmp.table["benchmark"]):
        png, svg = plots.save(figure(cmp, bench), folder / f"compare-{bench}")
        cmp.figures.append((bench, png, svg))
    paths = {"markdown": folder / "compare.md", "html": folder / "compare.html"}
    paths["markdown"].write_text(render_markdown(cmp))
    paths["html"].write_text(render_html(cmp))
    for bench, png, _ in cmp.figures:
        paths[f"plot {bench}"] = png
    return paths


def _summary(cmp: Comparison) -> list[str]:
    c = counts(cmp)
    lines = [f"Old: `{cmp.old}`; new: `{cmp.new}`.",
             f"{len(cmp.table)} sizes compared: {c['better']} better, {c['worse']} worse, "
             f"{c['within spread']} within the spread, {c['no spread']} without a spread.",
             SPREAD_RULE[0].upper() + SPREAD_RULE[1:] + "."]
    if cmp.only_old:
        lines.append("Only in the old results: " + ", ".join(cmp.only_old) + ".")
    if cmp.only_new:
        lines.append("Only in the new results: " + ", ".join(cmp.only_new) + ".")
    return lines


def render_markdown(cmp: Comparison) -> str:
    parts = ["# usb4bench compare", ""] + [f"- {s}" for s in _summary(cmp)] + [""]
    parts += ["## Per size", "", tables.markdown(HEADER, rows(cmp)), ""]
    for bench, png, svg in cmp.figures:
        parts += [f"## {bench}", "", f"![{bench}: old against new]({png.name})",
                  f"([SVG]({svg.name}))", ""]
    return "\n".join(parts)


def render_html(cmp: Comparison) -> str:
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>usb4bench compare"
           f"</title><style>{report.CSS}</style></head><body>", "<h1>usb4bench compare</h1>",
           "<ul>" + "".join(f"<li>{report._md_inline(s)}</li>" for s in _summary(cmp))
           + "</ul>", "<h2>Per size</h2>", tables.to_html(HEADER, rows(cmp))]
    for bench, _, svg in cmp.figures:
        data = base64.b64encode(svg.read_bytes()).decode("ascii")
        out.append(f"<h2>{html.escape(bench)}</h2><figure><img src=\"data:image/svg+xml;"
                   f"base64,{data}\" alt=\"{html.escape(bench)}: old against new\"></figure>")
    out.append("</body></html>")
    return "\n".join(out)
