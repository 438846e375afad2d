"""The report of ccl benchmarks: a bus bandwidth plot per collective with usb4
beside tcp (and the two-host series), and the ratio table in GB/s."""

from pathlib import Path

from test_report import md_tables
from usb4fabric import ccl_parse
from usb4fabric.cli import main
from usb4fabric.results import ResultsWriter

FIXTURES = Path(__file__).resolve().parent / "fixtures"

ROWS = ccl_parse.parse((FIXTURES / "ccl_bench_allreduce_usb4.txt").read_text()).rows


def make_ccl_results(folder, origin="here", hosts="testhost", scale=None):
    scale = scale or {"usb4": 1.0, "ethernet": 0.5}
    writer = ResultsWriter(folder)
    writer.write_metadata({"origin": origin, "hosts": hosts, "start": "2026-01-01T00:00:00",
                           "command": ["usb4bench", "run"], "profiles": {}})
    for fabric, factor in scale.items():
        rows = [{"fabric": fabric, "benchmark": "ccl_allreduce", "program": "ccl_bench",
                 "size": r.size, "metric": "busbw", "value": r.busbw * factor, "unit": "GB/s",
                 "repetition": 1, "validation": "Pass", "origin": origin, "hosts": hosts,
                 "carrier": f"oneCCL ofi / {fabric}", "note": ""} for r in ROWS]
        writer.add_run({"fabric": fabric, "benchmark": "ccl_allreduce", "repetition": 1,
                        "status": "ok", "error": ""}, rows)
    return folder


def test_report_plots_ccl_bus_bandwidth(tmp_path):
    here = make_ccl_results(tmp_path / "here")
    there = make_ccl_results(tmp_path / "there", "hosts", "10.77.0.1,10.77.0.2")
    out = tmp_path / "rep"
    assert main(["report", str(here), str(there), "--output", str(out)]) == 0
    assert (out / "ccl_allreduce.png").stat().st_size > 0
    assert (out / "ccl_allreduce.svg").stat().st_size > 0
    md = (out / "report.md").read_text()
    assert "ccl_allreduce: busbw vs message size" in md
    svg = (out / "ccl_allreduce.svg").read_text()
    assert "bus bandwidth (GB/s" in svg and "usb4 @ 10.77.0.1,10.77.0.2" not in svg
    # the two-host series in their own section and plot
    hosts_svg = (out / "ccl_allreduce-hosts.svg").read_text()
    assert "usb4 @ 10.77.0.1,10.77.0.2" in hosts_svg
    tables = [t for t in md_tables(md) if t[0][:3] == ["benchmark", "metric", "size"]]
    assert len(tables) == 2  # between hosts, then one host
    for cols, rows in tables:
        cells = next(r for r in rows if r[:3] == ["ccl_allreduce", "busbw (GB/s)", "1 MiB"])
        ratio = next(c for c in cols if c.startswith("usb4") and "/ ethernet" in c)
        assert cells[cols.index(ratio)] == "2.000"
