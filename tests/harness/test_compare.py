"""usb4bench compare OLD NEW: before/after per series, benchmark and size, a
change flagged only beyond the run-to-run spread."""

import re

import pytest

from test_report import md_table
from usb4fabric import browser, compare
from usb4fabric.cli import main, parser
from usb4fabric.results import ResultsWriter
from usb4fabric.spread import Side, flag


def make_folder(folder, values, spread=0.02, reps=3):
    """values: (fabric, bench) -> {size: median}; repetitions at median*(1, 1±spread)."""
    writer = ResultsWriter(folder)
    writer.write_metadata({"origin": "here", "hosts": "", "command": ["usb4bench", "run"],
                           "profiles": {}})
    factors = [1.0, 1.0 + spread, 1.0 - spread][:reps]
    for (fabric, bench), by_size in values.items():
        metric, unit = ("latency", "us") if bench == "latency" else ("bandwidth", "MB/s")
        for rep, factor in enumerate(factors, start=1):
            rows = [{"fabric": fabric, "benchmark": bench, "program": f"osu_{bench}",
                     "size": size, "metric": metric, "value": v * factor, "unit": unit,
                     "repetition": rep, "origin": "here"} for size, v in by_size.items()]
            writer.add_run({"fabric": fabric, "benchmark": bench, "repetition": rep,
                            "status": "ok", "error": ""}, rows)
    return folder


OLD = {("usb4", "latency"): {8: 2.0, 4096: 3.0, 1 << 20: 100.0},
       ("usb4", "bw"): {8: 50.0, 4096: 5000.0, 1 << 20: 9000.0},
       ("ethernet", "latency"): {8: 20.0, 4096: 30.0, 1 << 20: 400.0}}
NEW = {("usb4", "latency"): {8: 1.0, 4096: 3.03, 1 << 20: 130.0},  # better, same, worse
       ("usb4", "bw"): {8: 50.0, 4096: 6000.0, 1 << 20: 8000.0},  # same, better, worse
       ("shm", "latency"): {8: 0.5, 4096: 1.0, 1 << 20: 60.0}}


def test_flag_rule():
    tight = Side(10.0, 9.9, 10.1, 3)
    assert flag(tight, Side(12.0, 11.9, 12.1, 3), "latency") == "worse"
    assert flag(tight, Side(12.0, 11.9, 12.1, 3), "bandwidth") == "better"
    # a wide spread on either side swallows the same change
    assert flag(tight, Side(12.0, 9.0, 13.0, 3), "latency") == "within spread"
    assert flag(Side(10.0, 10.0, 10.0, 1), Side(20.0, 20.0, 20.0, 1), "latency") == "no spread"


def test_compare_folders_table_plot_and_exit_code(tmp_path, capsys):
    old, new = make_folder(tmp_path / "old", OLD), make_folder(tmp_path / "new", NEW)
    out = tmp_path / "cmp"
    assert main(["compare", str(old), str(new), "--output", str(out)]) == 0
    said = capsys.readouterr().out
    assert "6 sizes compared: 2 better, 2 worse, 2 within the run-to-run spread" in said
    md = (out / "compare.md").read_text()
    cols, rows = md_table(md, "series", "benchmark", "size")
    got = {(r[0], r[1], r[2]): dict(zip(cols, r)) for r in rows}
    assert len(got) == 6  # ethernet and shm are on one side only
    assert got[("usb4", "latency", "8 B")]["flag"] == "better"
    assert got[("usb4", "latency", "8 B")]["change"] == "-50.0%"
    assert got[("usb4", "latency", "4 KiB")]["flag"] == "within spread"
    assert got[("usb4", "latency", "1 MiB")]["flag"] == "worse"
    assert got[("usb4", "bw", "4 KiB")]["flag"] == "better"
    assert got[("usb4", "bw", "1 MiB")]["flag"] == "worse"
    assert got[("usb4", "bw", "1 MiB")]["old spread"] == "8820.00-9180.00 (3 reps)"
    assert "Only in the old results: ethernet latency." in md
    assert "Only in the new results: shm latency." in md
    assert "min-max range of a side's repetitions" in md
    for name in ("compare.html", "compare-latency.png", "compare-latency.svg",
                 "compare-bw.png"):
        assert (out / name).stat().st_size > 0, name
    html = (out / "compare.html").read_text()
    assert len(re.findall(r'<img src="data:image/svg\+xml;base64,', html)) == 2
    seen = browser.check_page(out / "compare.html")  # as a reader's browser shows it
    assert seen.ok and len(seen.images) == 2 and seen.tables == [7], seen.problems()


def test_one_repetition_flags_nothing(tmp_path):
    old = make_folder(tmp_path / "old", OLD, reps=1)
    new = make_folder(tmp_path / "new", NEW, reps=1)
    cmp = compare.compare(old, new)
    assert set(cmp.table["flag"]) == {"no spread"}


def test_help_defines_the_spread(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "min-max range of a side's repetitions" in text and "wider of the two" in text


def test_bad_folder_exits_1(tmp_path):
    assert main(["compare", str(tmp_path / "none"), str(tmp_path / "none2"),
                 "--output", str(tmp_path / "o")]) == 1
