"""A series skipped at every run of a placement (shared memory between two
hosts) is no column of that placement's ratio table but a line under it, and
its name never says it ran across hosts."""

from test_report import make_results, md_table, md_tables
from usb4fabric import placement, report
from usb4fabric.results import ResultsWriter

CABLE = {("usb4", "latency"): 4.0, ("ethernet", "latency"): 40.0,
         ("usb4", "bw"): 2000.0, ("ethernet", "bw"): 500.0}
WHY = "shared memory reaches only ranks of one host"


def _cable_with_skipped_shm(folder):
    make_results(folder, values=CABLE, placement="cable")
    shm = placement.series_name("shm", placement.CABLE)
    writer = ResultsWriter(folder)
    for bench in ("latency", "bw"):
        writer.add_run({"placement": "cable", "series": shm, "fabric": "shm",
                        "benchmark": bench, "repetition": 1, "status": "skipped",
                        "error": WHY}, [])
    return folder, shm


def test_shared_memory_off_one_host_is_not_named_for_hosts():
    for where in (placement.CABLE, placement.HOSTS):
        name = placement.series_name("shm", where, 2)
        assert "hosts" not in name and name.endswith("one host only"), name
    assert placement.series_name("shm", placement.SAME_HOST).endswith("same host")


def test_a_series_skipped_everywhere_is_a_line_under_the_table(tmp_path):
    folder, shm = _cable_with_skipped_shm(tmp_path / "cable")
    rep = report.build([folder], None, "c")
    cols, rows = report.ratio_rows(rep, "cable")
    assert not any(shm in c for c in cols), cols
    assert not any("gap: skipped" in cell for r in rows for cell in r)
    md = report.write(rep, tmp_path / "rep")["markdown"].read_text()
    line = f"Not run here: {shm} ({WHY})."
    section = md[md.index("## Measured 2 hosts, over the cable"):]
    assert line in section
    assert section.index("| benchmark") < section.index(line) < section.index("![")
    html = (tmp_path / "rep" / "report.html").read_text()
    assert f"<p>Not run here: {shm} ({WHY}).</p>" in html
    # the gaps table still lists the skipped runs
    gaps = next(t for t in md_tables(md) if t[0][:4] == ["series", "benchmark", "rep", "status"])
    assert [r[3] for r in gaps[1] if r[0] == shm] == ["skipped", "skipped"]


def test_a_series_with_a_run_keeps_its_column(tmp_path):
    """ethernet-btl timed out (make_results): a real gap, its column stays."""
    rep = report.build([make_results(tmp_path / "r")], None, "x")
    cols, rows = md_table(report.render_markdown(rep), "benchmark", "metric", "size")
    assert "ethernet-btl median" in cols
    assert "Not run here" not in report.render_markdown(rep)
