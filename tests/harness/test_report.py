"""Reports from a results folder; malformed result and reference files."""

import csv
import re
from pathlib import Path

import pytest

from usb4fabric import reference, report, results
from usb4fabric.cli import main
from usb4fabric.results import ResultsFileError, ResultsWriter

REFERENCE = Path(__file__).resolve().parents[2] / "reports" / "reference" / "published.csv"

# (fabric, benchmark, metric, unit) -> value at every size; repetitions scale it
VALUES = {("usb4", "latency"): 2.0, ("shm", "latency"): 1.0, ("ethernet", "latency"): 20.0,
          ("usb4", "bw"): 3000.0, ("shm", "bw"): 6000.0, ("ethernet", "bw"): 1000.0}
SIZES = [8, 4096, 65536, 1 << 20]


def make_results(folder: Path, origin="here", hosts="testhost", values=None,
                 osu_title="", osu_version="", **meta) -> Path:
    writer = ResultsWriter(folder)
    writer.write_metadata({"origin": origin, "hosts": hosts, "start": "2026-01-01T00:00:00",
                           "command": ["usb4bench", "run"], "git_commit": "abc123",
                           "libfabric": {"pkg-config": "1.17.0", "fi_info": "fi_info: 1.17.0"},
                           "mpi": "mpirun (Open MPI) 4.1.4", "environment": {"FI_LOG_LEVEL": "warn"},
                           "osu_suite": {"kind": "osu_bench", "root": "/x", "found_by": "osu_bench"},
                           "profiles": {}} | meta)
    for (fabric, bench), base in (values or VALUES).items():
        metric, unit = ("latency", "us") if bench == "latency" else ("bandwidth", "MB/s")
        for rep, factor in ((1, 1.0), (2, 1.5), (3, 0.5)):  # median = base
            rows = [{"fabric": fabric, "benchmark": bench, "program": f"osu_{bench}",
                     "size": size, "metric": metric, "value": base * factor, "unit": unit,
                     "repetition": rep, "origin": origin, "hosts": hosts,
                     "carrier": "x", "note": ""} for size in SIZES]
            writer.add_run({"fabric": fabric, "benchmark": bench, "repetition": rep,
                            "status": "ok", "error": "", "osu_title": osu_title,
                            "osu_version": osu_version}, rows)
    writer.add_run({"fabric": "ethernet-btl", "benchmark": "latency", "repetition": 1,
                    "status": "timeout", "error": "timed out after 9 s",
                    "stdout_file": "raw/ethernet-btl/latency/rep1.out"}, [])
    return folder


def md_tables(md: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header, rows) of every Markdown table, cells stripped."""
    found, block = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            found.append((block[0], block[2:]))
            block = []
    return found


def md_table(md: str, *first: str) -> tuple[list[str], list[list[str]]]:
    """The first table whose header begins with the columns first."""
    return next(t for t in md_tables(md) if tuple(t[0][:len(first)]) == first)


def test_report_files_ratios_and_provenance(tmp_path):
    res = make_results(tmp_path / "res")
    out = tmp_path / "rep"
    assert main(["report", str(res), "--output", str(out)]) == 0
    for name in ("report.md", "report.html", "summary.csv", "latency.png", "latency.svg",
                 "bw.png", "bw.svg"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "report.md").read_text()
    # ratio table: usb4 / shm = 2.0 for latency, 0.5 for bandwidth, at every size
    cols, rows = md_table(md, "benchmark", "metric", "size")
    lines = {tuple(row[:3]): row for row in rows}
    for size in ("8 B", "4 KiB", "64 KiB", "1 MiB"):
        lat = lines[("latency", "latency (us)", size)]
        bw = lines[("bw", "bandwidth (MB/s)", size)]
        assert lat[cols.index("usb4 / shm")] == "2.000"
        assert lat[cols.index("usb4 / ethernet")] == "0.100"
        assert bw[cols.index("usb4 / shm")] == "0.500"
        assert bw[cols.index("usb4 / ethernet")] == "3.000"
        assert lat[cols.index("ethernet-btl median")] == "gap: timeout"
    # the gap is listed with its raw output
    assert "timed out after 9 s" in md and "raw/ethernet-btl/latency/rep1.out" in md
    # provenance: measured here; published rows with their links; verbs-level said
    assert "measured here" in md
    pub = [line for line in md.splitlines() if "| published |" in line]
    assert len(pub) == len(list(csv.DictReader(REFERENCE.open())))
    assert any("[github.com/ggml-org" in line or "(https://github.com/ggml-org/llama.cpp/pull/26610)"
               in line for line in pub)
    assert "verbs-level" in md and "RTT/2" in md
    html = (out / "report.html").read_text()
    assert "<img" in html and 'href="https://github.com/openucx/ucx/issues/10049"' in html
    # self-contained: the plots are data: URIs, nothing else is loaded
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == 2 and all(s.startswith("data:image/svg+xml;base64,") for s in sources)


def test_two_folders_hosts_are_labelled(tmp_path):
    here = make_results(tmp_path / "here")
    there = make_results(tmp_path / "there", origin="hosts", hosts="strix-1,strix-2")
    rep = report.build([here, there], None, "two")
    assert "usb4 @ strix-1,strix-2" in set(rep.summary["series"])
    md = report.render_markdown(rep)
    assert "measured on hosts strix-1,strix-2" in md


def test_malformed_results_csv_names_file_and_line(tmp_path):
    res = make_results(tmp_path / "res")
    path = res / "results.csv"
    lines = path.read_text().splitlines()
    lines[5] = ",".join(c if i != 5 else "fast" for i, c in enumerate(lines[5].split(",")))
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsFileError) as err:
        results.load_results(res)
    assert str(err.value).startswith(f"{path}:6: column 'value': 'fast'")
    assert main(["report", str(res), "--output", str(tmp_path / "o")]) == 1


def test_short_row_and_bad_json(tmp_path):
    res = make_results(tmp_path / "res")
    with (res / "runs.csv").open("a") as f:
        f.write("usb4,latency\n")
    with pytest.raises(ResultsFileError, match=r"runs.csv:\d+: 2 fields"):
        results.load_results(res)
    (res / "metadata.json").write_text("{\n  \"a\": 1,\n}\n")
    with pytest.raises(ResultsFileError, match=r"metadata.json:3:"):
        results.load_results(res)


def test_malformed_reference_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(reference.COLUMNS) + "\n"
                   "RoCE,lab,ib_write_lat,latency_oneway,8,0.9,us,hw,https://x.org/a,\n"
                   "RoCE,lab,ib_write_lat,latency_oneway,eight,0.9,us,hw,https://x.org/a,\n")
    with pytest.raises(ResultsFileError, match=rf"^{bad}:3: msg_size_bytes 'eight'"):
        reference.load([bad])
    bad.write_text(",".join(reference.COLUMNS) + "\n"
                   "RoCE,lab,ib_write_lat,latency_oneway,8,0.9,us,hw,,\n")
    with pytest.raises(ResultsFileError, match=r":2: source_url is empty"):
        reference.load([bad])


def test_published_reference_conversions():
    refs = reference.load([REFERENCE])
    rtt = refs[refs["metric"] == "latency_rtt"].iloc[0]
    assert rtt["plot_value"] == rtt["value"] / 2 and rtt["plot_note"] == "RTT/2"
    gbps = refs[(refs["unit"] == "Gb/s") & (refs["metric"] == "bw_uni_avg")].iloc[0]
    assert gbps["plot_value"] == gbps["value"] * 125
    assert set(refs[refs["benchmark"].str.startswith("ib_")]["level"]) == {"verbs-level"}
    assert set(refs[refs["benchmark"] == "osu_latency"]["level"]) == {"MPI-level"}
    assert all(refs["origin"] == "published") and all(refs["link"].str.startswith("https://"))
    assert refs["size"].isna().sum() == (refs["msg_size_bytes"].isin(["na", "small"])).sum()
