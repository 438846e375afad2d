"""The OSU output parser on every fixture: hand-made 5.x/7.x and recorded real."""

from pathlib import Path

import pytest

from usb4fabric import osu_parse

# fixture -> (title, version, number of rows, first row (size, metric, value), meta)
EXPECTED = {
    "osu5_latency.txt": ("OSU MPI Latency Test", "5.3", 8, (0, "latency", 1.13), {}),
    "osu7_latency.txt": ("OSU MPI Latency Test", "7.4", 7, (1, "latency", 0.21),
                         {"Datatype": "MPI_CHAR"}),
    "osu5_bw.txt": ("OSU MPI Bandwidth Test", "5.3", 5, (1, "bandwidth", 3.57), {}),
    "osu7_bw_validation.txt": ("OSU MPI Bandwidth Test", "7.4", 3, (1, "bandwidth", 2.94),
                               {"Datatype": "MPI_CHAR"}),
    "osu7_mbw_mr.txt": ("OSU MPI Multiple Bandwidth / Message Rate Test", "7.4", 6,
                        (1, "bandwidth", 3.28), {"Datatype": "MPI_CHAR"}),
    "osu5_allreduce.txt": ("OSU MPI Allreduce Latency Test", "5.6.2", 3,
                           (4, "latency", 1.51), {}),
    "osu7_allreduce_full.txt": ("OSU MPI Allreduce Latency Test", "7.4", 12,
                                (4, "latency", 1.02), {"Datatype": "MPI_INT"}),
    "osu5_put_latency.txt": ("OSU MPI_Put Latency Test", "5.3", 3, (1, "latency", 0.98),
                             {"Window creation": "MPI_Win_create",
                              "Synchronization": "MPI_Win_flush"}),
    "osu7_barrier.txt": ("OSU MPI Barrier Latency Test", "7.4", 1,
                         (None, "latency", 1.22), {}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hand_made_fixture(fixtures_dir, name):
    title, version, nrows, first, meta = EXPECTED[name]
    out = osu_parse.parse((fixtures_dir / name).read_text())
    assert (out.title, out.version) == (title, version)
    assert len(out.rows) == nrows
    assert (out.rows[0].size, out.rows[0].metric, out.rows[0].value) == first
    for key, value in meta.items():
        assert out.meta[key] == value
    if name != "osu7_mbw_mr.txt":
        assert out.unparsed == []


def test_collective_full_columns(fixtures_dir):
    out = osu_parse.parse((fixtures_dir / "osu7_allreduce_full.txt").read_text())
    last = {r.metric: (r.value, r.unit) for r in out.rows if r.size == 1048576}
    assert last == {"latency": (512.77, "us"), "latency_min": (510.02, "us"),
                    "latency_max": (515.52, "us"), "iterations": (100.0, "count")}


def test_message_rate_columns_and_kept_pairs_line(fixtures_dir):
    out = osu_parse.parse((fixtures_dir / "osu7_mbw_mr.txt").read_text())
    first = [(r.metric, r.value, r.unit) for r in out.rows if r.size == 1]
    assert first == [("bandwidth", 3.28, "MB/s"), ("message_rate", 3282015.42, "messages/s")]
    assert out.unparsed == [(2, "# [ pairs: 1 ] [ window size: 64 ]")]


def test_validation_column(fixtures_dir):
    out = osu_parse.parse((fixtures_dir / "osu7_bw_validation.txt").read_text())
    assert [r.validation for r in out.rows] == ["Pass", "Pass", "Fail"]
    assert out.validation_failed


def test_unknown_lines_are_kept_with_line_numbers(fixtures_dir):
    text = (fixtures_dir / "mixed_warning_latency.txt").read_text()
    out = osu_parse.parse(text)
    assert [(r.size, r.value) for r in out.rows] == [(0, 0.31), (1, 0.32), (2, 0.33)]
    kept = dict(out.unparsed)
    assert kept[2].startswith("WARNING: There was an error")
    assert kept[8].startswith("[vm:1234] 1 more process")
    assert kept[10].split() == ["4", "garbage"]
    assert sorted(kept) == [1, 2, 3, 8, 10]
    assert out.version == "5.9"


def test_garbage_gives_no_rows_and_keeps_every_line(fixtures_dir):
    out = osu_parse.parse((fixtures_dir / "garbage.txt").read_text())
    assert out.rows == [] and out.title == ""
    assert [n for n, _ in out.unparsed] == [1, 2, 3]


def test_single_spaced_header_falls_back_to_known_names():
    out = osu_parse.parse("# OSU MPI Latency Test v6.1\n# Size Latency (us)\n8 1.5\n")
    assert [(r.size, r.metric, r.value) for r in out.rows] == [(8, "latency", 1.5)]


RECORDED = ["osu_bench_latency.txt", "osu_bench_bw_validation.txt",
            "osu_bench_allreduce_full.txt", "osu_bench_mbw_mr.txt",
            "osu_bench_barrier_full.txt", "osu_bench_put_latency.txt",
            "mpi4py_latency.txt"]


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_real_output(fixtures_dir, name):
    out = osu_parse.parse((fixtures_dir / name).read_text())
    assert out.rows and out.title and out.version
    assert out.unparsed == []
    assert all(r.value >= 0 for r in out.rows)
    assert not out.validation_failed


@pytest.mark.parametrize("name, title, meta", [
    ("osu_bench_banner_latency.txt", "usb4 osu_bench (OSU method) MPI Latency Test", {}),
    ("osu_bench_banner_put_latency.txt", "usb4 osu_bench (OSU method) MPI_Put Latency Test",
     {"Window creation": "MPI_Win_create", "Synchronization": "MPI_Win_flush"})])
def test_project_banner_is_not_taken_for_osu(fixtures_dir, name, title, meta):
    out = osu_parse.parse((fixtures_dir / name).read_text())
    assert (out.title, out.version, out.meta) == (title, "0.1.0", meta)
    assert out.suite == osu_parse.SUITE_OSU_BENCH and out.unparsed == []
    assert [r.size for r in out.rows][:3] == [1, 2, 4]
    assert "not the OSU suite" in osu_parse.suite_label(out.title, out.version)


@pytest.mark.parametrize("name, suite", [
    ("osu5_latency.txt", "OSU Micro-Benchmarks 5.3"), ("osu7_bw_validation.txt",
                                                     "OSU Micro-Benchmarks 7.4"),
    ("mpi4py_latency.txt", "usb4fabric mpi4py_bench 1.0")])
def test_suite_of_other_banners(fixtures_dir, name, suite):
    out = osu_parse.parse((fixtures_dir / name).read_text())
    assert osu_parse.suite_label(out.title, out.version) == suite


def test_osu_bench_programs_print_their_own_banner():
    """No program of osu_bench/ claims to be the OSU suite."""
    src = Path(__file__).resolve().parents[2] / "osu_bench"
    for path in src.glob("osu_*.[ch]"):
        code = path.read_text()
        assert '"OSU MPI' not in code and 'OSU_VERSION' not in code, path.name
    assert f'"{osu_parse.OSU_BENCH_BANNER}"' in (src / "osu_common.h").read_text()
