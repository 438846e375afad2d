"""The comparison report: plots, ratio table, environment, provenance, gaps.

``build()`` loads result folders and reference figures into a ``Report``
(plain data); ``write()`` renders it as Markdown and as one self-contained
HTML page (SVG inline), with PNG and SVG plots next to them.  Nothing here
prints.
"""

from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from . import plots, reference
from .osu_locate import BENCHMARKS
from .results import load_results, summarize

RATIO_SIZES = (8, 4096, 65536, 1 << 20)
NUMERATOR = "usb4"
# the metric plotted and compared for each benchmark
MAIN_METRIC = {name: b.metric for name, b in BENCHMARKS.items()}
METRIC_UNITS = {"latency": "us", "bandwidth": "MB/s", "busbw": "GB/s"}
# which reference figures go on which benchmark's plot
REFERENCE_FOR = {"latency": "latency", "bw": "bandwidth"}


@dataclasses.dataclass
class Figure:
    name: str
    title: str
    png: Path
    svg: Path


@dataclasses.dataclass
class Report:
    name: str
    results: pd.DataFrame  # tidy, with "series" and "results_dir"
    runs: pd.DataFrame
    metadata: list[dict]
    summary: pd.DataFrame  # medians per series, benchmark, size, metric
    refs: pd.DataFrame
    figures: list[Figure] = dataclasses.field(default_factory=list)


def _series(row: dict[str, Any]) -> str:
    if row.get("origin") == "hosts":
        return f"{row['fabric']} @ {row['hosts']}"
    return row["fabric"]


def build(result_dirs: list[Path], reference_files: list[Path] | None = None,
          name: str = "report") -> Report:
    """Load everything; ResultsFileError on a malformed file."""
    loaded = [load_results(d) for d in result_dirs]
    results = pd.concat([r for r, _, _ in loaded], ignore_index=True)
    runs = pd.concat([r for _, r, _ in loaded], ignore_index=True)
    metadata = [m | {"results_dir": str(d)} for (_, _, m), d in zip(loaded, result_dirs)]
    results["series"] = [_series(r) for r in results.to_dict("records")] if len(results) else []
    origin = {str(d): m.get("origin", "here") for d, m in zip(result_dirs, metadata)}
    hosts = {str(d): m.get("hosts", "") for d, m in zip(result_dirs, metadata)}
    runs["series"] = [f"{r['fabric']} @ {hosts[r['results_dir']]}"
                      if origin[r["results_dir"]] == "hosts" else r["fabric"]
                      for r in runs.to_dict("records")] if len(runs) else []
    summary = summarize(results.assign(fabric=results["series"])) if len(results) \
        else summarize(results)
    summary = summary.rename(columns={"fabric": "series"})
    refs = reference.load(reference_files) if reference_files is not None else reference.load()
    return Report(name, results, runs, metadata, summary, refs)


def series_order(report: Report) -> list[str]:
    names = list(dict.fromkeys(report.runs["series"])) if len(report.runs) else []
    return sorted(names, key=lambda s: (not s.startswith(NUMERATOR), names.index(s)))


def make_figures(report: Report, folder: Path) -> list[Figure]:
    """One figure per benchmark measured (those with message sizes)."""
    figures = []
    for bench in dict.fromkeys(report.summary["benchmark"]):
        metric = MAIN_METRIC.get(bench, "latency")
        data = report.summary[(report.summary["benchmark"] == bench)
                              & (report.summary["metric"] == metric)]
        if data["size"].isna().all():
            continue
        measured = {s: data[data["series"] == s] for s in series_order(report)
                    if (data["series"] == s).any()}
        refs = None
        if bench in REFERENCE_FOR:
            refs = report.refs[report.refs["plot_metric"] == REFERENCE_FOR[bench]]
        title = f"{bench}: {metric} vs message size"
        fig = plots.figure_for(title, metric, measured, refs)
        png, svg = plots.save(fig, folder / bench)
        figures.append(Figure(bench, title, png, svg))
    report.figures = figures
    return figures


def _median(report: Report, series: str, bench: str, size: int | None) -> float | None:
    s = report.summary
    at = s["size"].isna() if size is None else (s["size"] == size).fillna(False)
    hit = s[(s["series"] == series) & (s["benchmark"] == bench) & at
            & (s["metric"] == MAIN_METRIC.get(bench, "latency"))]
    return float(hit["median"].iloc[0]) if len(hit) else None


def _gap(report: Report, series: str, bench: str) -> str:
    """Why a series has no value for a benchmark: the status of its runs."""
    r = report.runs
    hit = r[(r["series"] == series) & (r["benchmark"] == bench)]
    if hit.empty:
        return "not run"
    bad = hit[hit["status"] != "ok"]
    return "gap: " + ", ".join(sorted(set(bad["status"]))) if len(bad) else "gap: size not run"


def ratio_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """usb4 / every other series at RATIO_SIZES, per benchmark."""
    order = series_order(report)
    nums = [s for s in order if s.split(" @ ")[0] == NUMERATOR]
    others = [s for s in order if s not in nums]
    header = ["benchmark", "metric", "size"]
    for num in nums:
        header += [f"{num} median"]
        header += [f"{num} / {o}" for o in others]
    header += [f"{o} median" for o in others]
    rows = []
    for bench in dict.fromkeys(report.summary["benchmark"]):
        metric = MAIN_METRIC.get(bench, "latency")
        sized = report.summary[report.summary["benchmark"] == bench]["size"].notna().any()
        for size in RATIO_SIZES if sized else (None,):
            one_sided = " (one-sided: see notes)" if BENCHMARKS.get(bench) and \
                BENCHMARKS[bench].one_sided else ""
            row = [bench + one_sided, f"{metric} ({METRIC_UNITS.get(metric, 'MB/s')})",
                   plots.size_label(size) if size is not None else "no size"]
            for num in nums:
                a = _median(report, num, bench, size)
                row.append(f"{a:.2f}" if a is not None else _gap(report, num, bench))
                for other in others:
                    b = _median(report, other, bench, size)
                    row.append(f"{a / b:.3f}" if a is not None and b else "n/a")
            for other in others:
                b = _median(report, other, bench, size)
                row.append(f"{b:.2f}" if b is not None else _gap(report, other, bench))
            rows.append(row)
    return header, rows


def environment_rows(report: Report) -> list[list[str]]:
    rows = []
    for m in report.metadata:
        lf = m.get("libfabric") or {}
        rows.append([m["results_dir"], "measured here" if m.get("origin") == "here"
                     else f"measured on hosts {m.get('hosts')}", m.get("hosts", ""),
                     m.get("start", ""), m.get("git_commit") or "unknown",
                     f"pkg-config {lf.get('pkg-config')}; {lf.get('fi_info')}",
                     m.get("mpi") or "unknown",
                     f"{m.get('osu_suite', {}).get('kind')} ({m.get('osu_suite', {}).get('root')},"
                     f" found by {m.get('osu_suite', {}).get('found_by')})",
                     ", ".join(m.get("osu_versions", [])),
                     " ".join(f"{k}={v}" for k, v in (m.get("environment") or {}).items())
                     or "(none set)",
                     " ".join(m.get("command", []))])
    return rows


ENV_HEADER = ["results", "origin", "hosts", "start (UTC)", "git commit", "libfabric",
              "MPI", "benchmark programs", "OSU headers seen", "FI_*/OMPI_* environment",
              "command"]


def profile_rows(report: Report) -> list[list[str]]:
    rows = []
    for m in report.metadata:
        for name, p in (m.get("profiles") or {}).items():
            rows.append([name, p["description"], p["carrier"],
                         p["one_sided_carrier"] + ("" if p["one_sided_is_fabric"] else
                                                   " (**not this fabric**)"),
                         p.get("skipped") or "",
                         " ".join(p["mpirun_args"])])
    return rows


def gap_rows(report: Report) -> list[list[str]]:
    bad = report.runs[report.runs["status"] != "ok"]
    return [[r["series"], r["benchmark"], str(r["repetition"]), r["status"], r["error"],
             f"{r['results_dir']}/{r['stdout_file']}" if r.get("stdout_file") else ""]
            for r in bad.to_dict("records")]


def measured_rows(report: Report) -> list[list[str]]:
    rows = []
    origin = {}
    for m in report.metadata:
        origin[m["results_dir"]] = ("measured here" if m.get("origin") == "here"
                                    else f"measured on hosts {m.get('hosts')}")
    per_series = report.results.groupby("series")["results_dir"].first().to_dict() \
        if len(report.results) else {}
    notes = report.results.groupby(["series", "benchmark"])["note"].first().to_dict() \
        if len(report.results) else {}
    for r in report.summary.to_dict("records"):
        if r["metric"] != MAIN_METRIC.get(r["benchmark"], "latency"):
            continue
        size = "" if pd.isna(r["size"]) else str(int(r["size"]))
        rows.append([r["series"], r["benchmark"], size, r["metric"], r["unit"],
                     f"{r['median']:.2f}", f"{r['min']:.2f}", f"{r['max']:.2f}", str(r["n"]),
                     origin.get(per_series.get(r["series"]), ""),
                     notes.get((r["series"], r["benchmark"]), "") or ""])
    return rows


MEASURED_HEADER = ["series", "benchmark", "size (B)", "metric", "unit", "median", "min",
                   "max", "reps", "origin", "note"]
REF_HEADER = ["ref", "fabric", "system", "benchmark", "level", "metric", "size (B)", "value", "unit",
              "hardware", "origin", "source", "note"]


def reference_rows(report: Report, link: Callable[[str, str], str]) -> list[list[str]]:
    rows = []
    for r in report.refs.to_dict("records"):
        size = r["msg_size_bytes"]
        rows.append([r["ref_id"], r["fabric"], r["system"], r["benchmark"], r["level"], r["metric"], size,
                     f"{r['value']:g}", r["unit"], r["hardware"], "published",
                     link(r["source_url"], r["link"]), r["note"]])
    return rows


NOTES = [
    "Latency ratios below 1 and bandwidth ratios above 1 favour usb4.",
    "OSU latency is half a round trip. Published `latency_oneway*` figures are "
    "half a round trip as well; `latency_rtt*` figures are whole round trips and are "
    "drawn halved (labelled RTT/2).",
    "Published `ib_*` and perftest rows are **verbs-level** (raw RDMA, no MPI): they are "
    "lower bounds for MPI over the same hardware, not MPI-level figures like OSU's.",
    "Published figures were measured on other machines (see each row's source); the "
    "measured rows were taken on the hosts named in the environment table.",
    "One-sided rows of the usb4 profile are carried by usb4 RMA and atomics (osc rdma "
    "over btl ofi, vader left out). Those of the ethernet profile are **not carried by "
    "libfabric tcp**: btl ofi refuses ofi_rxm, so Open MPI's osc rdma runs over the btl "
    "named in the profile table (vader on one host).",
]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: str(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) if rows else "(none)"


def _html_table(header: list[str], rows: list[list[str]],
                raw_cols: tuple[int, ...] = ()) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f"<td>{c if i in raw_cols else html.escape(str(c))}</td>" for i, c in enumerate(row))
        + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render_markdown(report: Report) -> str:
    md_link = lambda text, url: f"[{text}]({url})" if url else text  # noqa: E731
    header, rows = ratio_rows(report)
    parts = [f"# usb4 comparison report: {report.name}", "",
             "Sources: " + ", ".join(f"`{m['results_dir']}`" for m in report.metadata)
             + " (measured) and `reports/reference/*.csv` (published).", ""]
    parts += ["## Notes", ""] + [f"- {n}" for n in NOTES] + [""]
    parts += ["## Ratios usb4 / other fabrics", "", _md_table(header, rows), ""]
    parts += ["## Plots", ""]
    for fig in report.figures:
        parts += [f"### {fig.title}", "", f"![{fig.title}]({fig.png.name})",
                  f"([SVG]({fig.svg.name}))", ""]
    parts += ["## Gaps: runs that failed, timed out, printed no data or were skipped", "",
              _md_table(["series", "benchmark", "rep", "status", "error", "raw output"],
                        gap_rows(report)), ""]
    parts += ["## Fabric profiles", "",
              _md_table(["profile", "what", "two-sided carrier", "one-sided carrier",
                         "skipped", "mpirun arguments"], profile_rows(report)), ""]
    parts += ["## Environment", "", _md_table(ENV_HEADER, environment_rows(report)), ""]
    parts += ["## Measured rows (median over repetitions)", "",
              _md_table(MEASURED_HEADER, measured_rows(report)), ""]
    parts += ["## Published rows", "",
              _md_table(REF_HEADER, reference_rows(report, md_link)), ""]
    return "\n".join(parts)


CSS = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;font-size:12px;margin:1em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#eee}
figure{margin:1em 0}svg{max-width:100%;height:auto}"""


def render_html(report: Report) -> str:
    html_link = lambda text, url: (f'<a href="{html.escape(url)}">{html.escape(text)}</a>'  # noqa: E731
                                   if url else html.escape(text))
    header, rows = ratio_rows(report)
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>usb4 report "
           f"{html.escape(report.name)}</title><style>{CSS}</style></head><body>",
           f"<h1>usb4 comparison report: {html.escape(report.name)}</h1>",
           "<h2>Notes</h2><ul>" + "".join(f"<li>{_md_inline(n)}</li>" for n in NOTES) + "</ul>",
           "<h2>Ratios usb4 / other fabrics</h2>", _html_table(header, rows), "<h2>Plots</h2>"]
    for fig in report.figures:
        svg = fig.svg.read_text()
        svg = svg[svg.index("<svg"):]
        out.append(f"<figure>{svg}<figcaption>{html.escape(fig.title)}</figcaption></figure>")
    out += ["<h2>Gaps: runs that failed, timed out, printed no data or were skipped</h2>",
            _html_table(["series", "benchmark", "rep", "status", "error", "raw output"],
                        gap_rows(report)),
            "<h2>Fabric profiles</h2>",
            _html_table(["profile", "what", "two-sided carrier", "one-sided carrier",
                         "skipped", "mpirun arguments"],
                        [[c.replace("**", "") for c in r] for r in profile_rows(report)]),
            "<h2>Environment</h2>", _html_table(ENV_HEADER, environment_rows(report)),
            "<h2>Measured rows (median over repetitions)</h2>",
            _html_table(MEASURED_HEADER, measured_rows(report)),
            "<h2>Published rows</h2>",
            _html_table(REF_HEADER, reference_rows(report, html_link), raw_cols=(11,)),
            "</body></html>"]
    return "\n".join(out)


def write(report: Report, folder: Path) -> dict[str, Path]:
    """Plots, report.md, report.html and summary.csv into folder; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    make_figures(report, folder)
    paths = {"markdown": folder / "report.md", "html": folder / "report.html",
             "summary": folder / "summary.csv"}
    paths["markdown"].write_text(render_markdown(report))
    paths["html"].write_text(render_html(report))
    report.summary.to_csv(paths["summary"], index=False)
    for fig in report.figures:
        paths[f"plot {fig.name}"] = fig.png
    return paths
