"""The comparison report: headline, plots, ratio tables, provenance, gaps.

``build()`` loads result folders and reference figures into a ``Report``
(plain data); ``write()`` renders it as Markdown and as one self-contained
HTML page (the SVG plots inlined as data: URIs), with PNG and SVG plots next to them.  Nothing here
prints.

The report opens with the headline (usb4fabric.headline: usb4 against
Ethernet and shared memory at 8 B and 1 MiB, per placement) and which
benchmark programs ran.  It has one section per placement (results.csv's
``placement`` column: ``cable`` first, then ``hosts``, then ``same-host``;
folders without it are ``hosts`` when measured on --hosts, else
``same-host``), each with its plots and ratio table.  A plot's files are
``<benchmark>.png/.svg`` for the same-host section and
``<benchmark>-<placement>.png/.svg`` for the others (``latency-cable.png``).
Tables are rendered by pandas (usb4fabric.tables).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import re
from pathlib import Path
from typing import Callable

import pandas as pd

from . import headline, not_run, osu_parse, plots, reference, tables
from .osu_locate import BENCHMARKS
from .results import load_results, median_at, summarize

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
    placement: str = headline.SAME_HOST


@dataclasses.dataclass
class Report:
    name: str
    results: pd.DataFrame  # tidy, with "series" and "results_dir"
    runs: pd.DataFrame
    metadata: list[dict]
    summary: pd.DataFrame  # medians per series, benchmark, size, metric
    refs: pd.DataFrame
    figures: list[Figure] = dataclasses.field(default_factory=list)


def _place(df: pd.DataFrame, metadata: list[dict]) -> None:
    """placement and series where a row has none (fixtures, folders written
    before the columns; results.load_results fills whole missing columns):
    the folder's metadata placement, else hosts when measured on --hosts,
    else the same host."""
    if not len(df):
        df["placement"], df["series"] = [], []
        return
    origin = {m["results_dir"]: m.get("origin", "here") for m in metadata}
    hosts = {m["results_dir"]: m.get("hosts", "") for m in metadata}
    placed = {m["results_dir"]: m.get("placement") or (
        headline.HOSTS if m.get("origin") == "hosts" else headline.SAME_HOST) for m in metadata}
    if "placement" not in df.columns:
        df["placement"] = ""
    if "series" not in df.columns:
        df["series"] = ""
    df["placement"] = [p if isinstance(p, str) and p else placed[d]
                       for p, d in zip(df["placement"], df["results_dir"])]
    df["series"] = [s if isinstance(s, str) and s else _series_name(f, p, origin[d], hosts[d])
                    for s, f, d, p in zip(df["series"], df["fabric"], df["results_dir"],
                                          df["placement"])]


def _series_name(fabric: str, placement: str, origin: str, hosts: str) -> str:
    """A series name unique per placement (folders without a series column)."""
    if origin == "hosts":
        return f"{fabric} @ {hosts}"
    if placement == headline.SAME_HOST:
        return fabric
    return f"{fabric} — {headline.WHERE.get(placement, placement)}"


def build(result_dirs: list[Path], reference_files: list[Path] | None = None,
          name: str = "report") -> Report:
    """Load everything; ResultsFileError on a malformed file."""
    loaded = [load_results(d) for d in result_dirs]
    results = pd.concat([r for r, _, _ in loaded], ignore_index=True)
    runs = pd.concat([r for _, r, _ in loaded], ignore_index=True)
    metadata = [m | {"results_dir": str(d)} for (_, _, m), d in zip(loaded, result_dirs)]
    _place(results, metadata)
    _place(runs, metadata)
    summary = summarize(results.assign(fabric=results["series"])) if len(results) \
        else summarize(results)
    summary = summary.rename(columns={"fabric": "series"})
    refs = reference.load(reference_files) if reference_files is not None else reference.load()
    return Report(name, results, runs, metadata, summary, refs)


def fabric_of(report: Report) -> dict[str, str]:
    """series -> the fabric profile it measured ("usb4", "ethernet", ...)."""
    both = pd.concat([report.runs[["series", "fabric"]],
                      report.results[["series", "fabric"]]], ignore_index=True)
    return dict(zip(both["series"], both["fabric"]))


def placement_of(report: Report) -> dict[str, str]:
    """series -> its placement."""
    both = pd.concat([report.runs[["series", "placement"]],
                      report.results[["series", "placement"]]], ignore_index=True)
    return dict(zip(both["series"], both["placement"]))


def series_order(report: Report, placement: str | None = None) -> list[str]:
    """The series (of one placement), usb4's first."""
    runs = report.runs if placement is None else \
        report.runs[report.runs["placement"] == placement]
    names = list(dict.fromkeys(runs["series"])) if len(runs) else []
    fabric = fabric_of(report)
    return sorted(names, key=lambda s: (fabric.get(s) != NUMERATOR, names.index(s)))


def placements(report: Report) -> list[str]:
    """The placements of the runs, the report's sections, cable first."""
    return headline.placements(report.runs)


def make_figures(report: Report, folder: Path) -> list[Figure]:
    """One figure per placement and benchmark measured (those with sizes)."""
    figures = []
    for placement in placements(report):
        for bench in dict.fromkeys(report.summary["benchmark"]):
            figure = _figure(report, folder, placement, bench)
            if figure:
                figures.append(figure)
    report.figures = figures
    return figures


def _figure(report: Report, folder: Path, placement: str, bench: str) -> Figure | None:
    metric = MAIN_METRIC.get(bench, "latency")
    data = report.summary[(report.summary["benchmark"] == bench)
                          & (report.summary["metric"] == metric)]
    measured = {s: data[data["series"] == s] for s in series_order(report, placement)
                if (data["series"] == s).any()}
    if not measured or all(d["size"].isna().all() for d in measured.values()):
        return None
    refs = None
    if bench in REFERENCE_FOR:
        refs = report.refs[report.refs["plot_metric"] == REFERENCE_FOR[bench]]
    where = headline.WHERE.get(placement, placement)
    title = f"{bench}: {metric} vs message size ({where})"
    fig = plots.figure_for(title, metric, measured, refs)
    stem = bench if placement == headline.SAME_HOST else f"{bench}-{placement}"
    png, svg = plots.save(fig, folder / stem)
    return Figure(stem, title, png, svg, placement)


def _median(report: Report, series: str, bench: str, size: int | None) -> float | None:
    return median_at(report.summary, series, bench, MAIN_METRIC.get(bench, "latency"), size)


def _gap(report: Report, series: str, bench: str) -> str:
    """Why a series has no value for a benchmark: the status of its runs."""
    r = report.runs
    hit = r[(r["series"] == series) & (r["benchmark"] == bench)]
    if hit.empty:
        return "not run"
    bad = hit[hit["status"] != "ok"]
    return "gap: " + ", ".join(sorted(set(bad["status"]))) if len(bad) else "gap: size not run"


def ratio_rows(report: Report, placement: str | None = None) \
        -> tuple[list[str], list[list[str]]]:
    """usb4 / every other series (of one placement) at RATIO_SIZES, per benchmark."""
    skipped = not_run.skipped_series(report.runs, placement) if len(report.runs) else {}
    order = [s for s in series_order(report, placement) if s not in skipped]
    fabric = fabric_of(report)
    nums = [s for s in order if fabric.get(s) == NUMERATOR]
    others = [s for s in order if s not in nums]
    header = ["benchmark", "metric", "size"]
    for num in nums:
        header += [f"{num} median"]
        header += [f"{num} / {o}" for o in others]
    header += [f"{o} median" for o in others]
    rows: list[list[str]] = []
    if not order:
        return header, rows
    for bench in dict.fromkeys(report.summary[report.summary["series"].isin(order)]["benchmark"]):
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


def _not_run_line(report: Report, placement: str) -> str | None:
    return not_run.line(not_run.skipped_series(report.runs, placement)) \
        if len(report.runs) else None


OLD_OSU_BENCH = ("usb4 osu_bench (this project's OSU-method programs, not the OSU suite; "
                 "this build printed the OSU suite's banner: {})")


def suites_of(report: Report, meta: dict) -> list[str]:
    """Which benchmark programs ran for one results folder, as a reader is
    told: from their banners (runs.csv), or metadata's benchmark_suites."""
    if meta.get("benchmark_suites"):
        return list(meta["benchmark_suites"])
    runs = report.runs[report.runs["results_dir"] == meta["results_dir"]]
    seen = {(str(t), "" if pd.isna(v) else str(v)) for t, v in
            zip(runs.get("osu_title", pd.Series(dtype=object)),
                runs.get("osu_version", pd.Series(dtype=object)))
            if isinstance(t, str) and t}
    ours = (meta.get("osu_suite") or {}).get("kind") == "osu_bench"
    labels = set()
    for title, version in seen:
        if ours and osu_parse.suite_of(title) == osu_parse.SUITE_OSU:
            # osu_bench before it had a banner of its own
            labels.add(OLD_OSU_BENCH.format(f"{title} v{version}"))
        else:
            labels.add(osu_parse.suite_label(title, version.lstrip("v")))
    return sorted(labels)


def suite_summary(report: Report) -> list[str]:
    """Every benchmark suite that ran, over all the results folders."""
    return sorted({s for m in report.metadata for s in suites_of(report, m)})


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
                     "; ".join(suites_of(report, m)),
                     " ".join(f"{k}={v}" for k, v in (m.get("environment") or {}).items())
                     or "(none set)",
                     " ".join(m.get("command", []))])
    return rows


ENV_HEADER = ["results", "origin", "hosts", "start (UTC)", "git commit", "libfabric",
              "MPI", "benchmark programs found", "benchmark programs that ran (banners)",
              "FI_*/OMPI_* environment",
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
    placed = placement_of(report)
    notes = report.results.groupby(["series", "benchmark"])["note"].first().to_dict() \
        if len(report.results) else {}
    for r in report.summary.to_dict("records"):
        if r["metric"] != MAIN_METRIC.get(r["benchmark"], "latency"):
            continue
        size = "" if pd.isna(r["size"]) else str(int(r["size"]))
        rows.append([r["series"], r["benchmark"], size, r["metric"], r["unit"],
                     f"{r['median']:.2f}", f"{r['min']:.2f}", f"{r['max']:.2f}", str(r["n"]),
                     headline.WHERE.get(placed.get(r["series"], ""), ""),
                     notes.get((r["series"], r["benchmark"]), "") or ""])
    return rows


MEASURED_HEADER = ["series", "benchmark", "size (B)", "metric", "unit", "median", "min",
                   "max", "reps", "where", "note"]
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


def _md_inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


GAP_HEADER = ["series", "benchmark", "rep", "status", "error", "raw output"]
PROFILE_HEADER = ["profile", "what", "two-sided carrier", "one-sided carrier", "skipped",
                  "mpirun arguments"]
GAPS_TITLE = "Gaps: runs that failed, timed out, printed no data or were skipped"


def _sections(report: Report) -> list[tuple[str, str, list[Figure]]]:
    """(placement, heading, its figures) in the report's order."""
    return [(p, f"Measured {headline.WHERE.get(p, p)}",
             [f for f in report.figures if f.placement == p]) for p in placements(report)]


def render_markdown(report: Report) -> str:
    md_link = lambda text, url: f"[{text}]({url})" if url else text  # noqa: E731
    top = headline.build(report.results, report.summary, report.metadata)
    parts = [f"# usb4 comparison report: {report.name}", "",
             "Sources: " + ", ".join(f"`{m['results_dir']}`" for m in report.metadata)
             + " (measured) and `reports/reference/*.csv` (published).", ""]
    parts += ["## Summary", "", tables.markdown(headline.HEADER, top.rows), ""]
    parts += [f"- {n}" for n in top.notes]
    parts += ["- Benchmark programs that ran: " + ("; ".join(suite_summary(report))
                                                    or "none recorded") + ".", ""]
    parts += ["## Notes", ""] + [f"- {n}" for n in NOTES] + [""]
    for placement, heading, figures in _sections(report):
        header, rows = ratio_rows(report, placement)
        parts += [f"## {heading}", "", "### Ratios usb4 / other fabrics", "",
                  tables.markdown(header, rows), ""]
        parts += [f"{n}", ""] if (n := _not_run_line(report, placement)) else []
        for fig in figures:
            parts += [f"### {fig.title}", "", f"![{fig.title}]({fig.png.name})",
                      f"([SVG]({fig.svg.name}))", ""]
    parts += [f"## {GAPS_TITLE}", "", tables.markdown(GAP_HEADER, gap_rows(report)), ""]
    parts += ["## Fabric profiles", "", tables.markdown(PROFILE_HEADER, profile_rows(report)),
              ""]
    parts += ["## Environment", "", tables.markdown(ENV_HEADER, environment_rows(report)), ""]
    parts += ["## Measured rows (median over repetitions)", "",
              tables.markdown(MEASURED_HEADER, measured_rows(report)), ""]
    parts += ["## Published rows", "",
              tables.markdown(REF_HEADER, reference_rows(report, md_link)), ""]
    return "\n".join(parts)


CSS = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;font-size:12px;margin:1em 0;display:block;overflow-x:auto;max-width:100%}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#eee}
table.summary{font-size:14px}table.summary td:nth-child(5),table.summary td:nth-child(7)
{font-weight:bold}
figure{margin:1em 0}img{max-width:100%;height:auto}"""


def _html_figure(fig: Figure) -> str:
    """A plot as an <img> of its SVG inlined as a data: URI (the page stays one
    file; a browser reports an image that does not decode: usb4fabric.browser)."""
    data = base64.b64encode(fig.svg.read_bytes()).decode("ascii")
    title = html.escape(fig.title)
    return (f'<figure><img src="data:image/svg+xml;base64,{data}" alt="{title}">'
            f'<figcaption>{title} (<a href="{html.escape(fig.png.name)}">PNG</a>, '
            f'<a href="{html.escape(fig.svg.name)}">SVG</a>)</figcaption></figure>')


def render_html(report: Report) -> str:
    html_link = lambda text, url: (f'<a href="{html.escape(url)}">{html.escape(text)}</a>'  # noqa: E731
                                   if url else html.escape(text))
    top = headline.build(report.results, report.summary, report.metadata)
    notes = top.notes + ["Benchmark programs that ran: " + ("; ".join(suite_summary(report))
                                                            or "none recorded") + "."]
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>usb4 report "
           f"{html.escape(report.name)}</title><style>{CSS}</style></head><body>",
           f"<h1>usb4 comparison report: {html.escape(report.name)}</h1>",
           "<h2>Summary</h2>",
           tables.to_html(headline.HEADER, top.rows).replace('class="dataframe data"',
                                                             'class="dataframe data summary"'),
           "<ul>" + "".join(f"<li>{_md_inline(n)}</li>" for n in notes) + "</ul>",
           "<h2>Notes</h2><ul>" + "".join(f"<li>{_md_inline(n)}</li>" for n in NOTES) + "</ul>"]
    for placement, heading, figures in _sections(report):
        header, rows = ratio_rows(report, placement)
        out += [f"<h2>{html.escape(heading)}</h2>", "<h3>Ratios usb4 / other fabrics</h3>",
                tables.to_html(header, rows)]
        out += [f"<p>{html.escape(n)}</p>"] if (n := _not_run_line(report, placement)) else []
        out += [_html_figure(fig) for fig in figures]
    out += [f"<h2>{GAPS_TITLE}</h2>", tables.to_html(GAP_HEADER, gap_rows(report)),
            "<h2>Fabric profiles</h2>",
            tables.to_html(PROFILE_HEADER,
                           [[c.replace("**", "") for c in r] for r in profile_rows(report)]),
            "<h2>Environment</h2>", tables.to_html(ENV_HEADER, environment_rows(report)),
            "<h2>Measured rows (median over repetitions)</h2>",
            tables.to_html(MEASURED_HEADER, measured_rows(report)),
            "<h2>Published rows</h2>",
            tables.to_html(REF_HEADER, reference_rows(report, html_link), raw=("source",)),
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
