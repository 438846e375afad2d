"""CPU time per GB: osu_bench's osu_bw -C '# cpu' lines, read into results as
cpu_s_per_gb rows, asked for only of this project's programs, and shown in the
report's summary."""

import pytest

from conftest import write_script
from test_report import make_results, md_table
from test_runner import shm_profile
from usb4fabric import cpu_time, headline, osu_locate, osu_parse, report, runner
from usb4fabric.osu_locate import BENCHMARKS, Suite
from usb4fabric.results import ResultsWriter, load_results
from usb4fabric.runner import Plan

MIB = 1 << 20


def test_cpu_lines_become_cpu_s_per_gb_rows(fixtures_dir):
    text = (fixtures_dir / "osu_bench_bw_cpu.txt").read_text()
    parsed = osu_parse.parse(text)
    assert parsed.unparsed == []  # every '# cpu' line read, none left over
    bw = {r.size: r.value for r in parsed.rows if r.metric == "bandwidth"}
    cpu = {r.size: r for r in parsed.rows if r.metric == cpu_time.METRIC}
    assert set(cpu) == set(bw) and len(bw) == 21
    # (rank0_s + rank1_s) / (bytes / 1e9), from the line after the 1 MiB row
    assert cpu[MIB].unit == "s/GB"
    assert cpu[MIB].value == pytest.approx((0.093924 + 0.093356) / 1.342177280)
    assert bw[MIB] == 14296.51  # the bandwidth rows are as without -C


def test_a_cpu_line_without_the_ranks_stays_unparsed():
    text = ("# Size      Bandwidth (MB/s)\n1048576   100.0\n"
            "# cpu size=1048576 bytes=1000 wall_s=0.5\n# cpu size=x\n")
    parsed = osu_parse.parse(text)
    assert [r.metric for r in parsed.rows] == ["bandwidth"]
    assert [n for n, _ in parsed.unparsed] == [3, 4]


def test_bench_and_harness_share_one_definition():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import bench_judge
    assert bench_judge.cpu_per_gb is cpu_time.cpu_per_gb
    assert bench_judge.parse_cpu is cpu_time.parse_cpu


@pytest.mark.parametrize("kind, bench, wants", [
    ("osu_bench", "bw", True), ("osu_bench", "bibw", False), ("osu_bench", "latency", False),
    ("osu_bench", "mbw_mr", False), ("osu", "bw", False), ("osu", "latency", False)])
def test_minus_c_only_for_osu_bench_programs_that_take_it(tmp_path, kind, bench, wants):
    plan = Plan([], [], Suite(kind, tmp_path, "x"))
    assert ("-C" in plan.bench_args(BENCHMARKS[bench])) == wants


def test_the_located_suite_decides(tmp_path):
    ours = tmp_path / "osu_bench"
    real = tmp_path / "osu" / "bin"
    for folder in (ours, real):
        folder.mkdir(parents=True)
        write_script(folder / "osu_latency", "#!/bin/sh\n")
    found_ours = osu_locate.locate(env={}, path="", fallback=ours)
    found_real = osu_locate.locate(env={}, path=str(real), fallback=ours)
    given_ours = osu_locate.locate(osu_dir=ours, env={}, fallback=ours)
    assert (found_ours.kind, found_real.kind, given_ours.kind) == ("osu_bench", "osu", "osu_bench")
    assert found_ours.cpu_args(BENCHMARKS["bw"]) == ["-C"] == given_ours.cpu_args(BENCHMARKS["bw"])
    assert found_real.cpu_args(BENCHMARKS["bw"]) == []


# a program that prints the recorded output, with its '# cpu' lines only under -C;
# the OSU suite's osu_bw refuses -C as getopt would
OURS = ('#!/bin/sh\ncase " $* " in *" -C "*) cat {f} ;; *) grep -v "^# cpu" {f} ;; esac\n')
REAL = ('#!/bin/sh\ncase " $* " in *" -C "*) echo "osu_bw: invalid option -- C" >&2; exit 1;; '
        'esac\ngrep -v "^# cpu" {f}\n')


@pytest.mark.parametrize("kind, script", [("osu_bench", OURS), ("osu", REAL)])
def test_run_records_cpu_rows_of_osu_bench_only(tmp_path, fixtures_dir, fake_mpirun, kind,
                                                script):
    folder = tmp_path / "programs"
    folder.mkdir()
    write_script(folder / "osu_bw", script.format(f=fixtures_dir / "osu_bench_bw_cpu.txt"))
    plan = runner.Plan(shm_profile(), [BENCHMARKS["bw"]], Suite(kind, folder, "x"), repeat=1,
                       mpirun=str(fake_mpirun), timeout=30.0)
    runs = runner.execute(plan, ResultsWriter(tmp_path / "res"), ["usb4bench", "run"])
    assert [r["status"] for r in runs] == ["ok"]
    assert runs[0]["unparsed_lines"] == 0
    results, _, _ = load_results(tmp_path / "res")
    cpu = results[results["metric"] == cpu_time.METRIC]
    assert len(cpu) == (21 if kind == "osu_bench" else 0)


def _with_cpu(folder, placement, values):
    """A results folder of make_results plus cpu_s_per_gb rows of bw at 1 MiB."""
    make_results(folder, placement=placement)
    writer = ResultsWriter(folder)
    for fabric, value in values.items():
        for rep in (1, 2, 3):
            writer.add_run({"fabric": fabric, "benchmark": "bw", "repetition": rep + 10,
                            "status": "ok", "error": ""},
                           [{"fabric": fabric, "benchmark": "bw", "program": "osu_bw",
                             "size": MIB, "metric": cpu_time.METRIC, "value": value,
                             "unit": cpu_time.UNIT, "repetition": rep + 10, "origin": "here",
                             "hosts": "testhost", "carrier": "x", "note": ""}])
    return folder


def test_summary_shows_cpu_per_gb_on_the_cable_and_one_host(tmp_path):
    cable = _with_cpu(tmp_path / "cable", "cable", {"usb4": 0.5, "ethernet": 2.0})
    here = _with_cpu(tmp_path / "here", "same-host", {"usb4": 0.2, "ethernet": 0.8,
                                                      "shm": 0.1})
    md = report.render_markdown(report.build([here, cable], None, "both"))
    cols, rows = md_table(md, "where", "measure")
    cpu = {r[0]: dict(zip(cols, r)) for r in rows if r[1] == headline.CPU_POINT[4]}
    assert set(cpu) == {"2 hosts, over the cable", "one host"}
    assert cpu["2 hosts, over the cable"]["usb4"] == "0.50 s/GB"
    assert cpu["2 hosts, over the cable"]["usb4 vs Ethernet"] == "0.25x (4.0x lower: better)"
    assert cpu["one host"]["usb4 vs shared memory"] == "2.00x (2.0x higher: worse)"
    assert "CPU time per GB: both ranks' user + system seconds" in md
    assert "not in these results" not in md


def test_summary_without_cpu_rows_has_no_cpu_row(tmp_path):
    md = report.render_markdown(report.build([make_results(tmp_path / "r")], None, "x"))
    _, rows = md_table(md, "where", "measure")
    assert all(r[1] != headline.CPU_POINT[4] for r in rows)
    assert "CPU time per GB: not in these results" in md
