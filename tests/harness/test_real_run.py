"""A real, short run over usb4 and shm with the osu_bench programs."""

import pytest

from usb4fabric.cli import main
from usb4fabric.results import load_results

pytestmark = pytest.mark.mpi


def test_short_run_over_usb4_and_shm_then_report(tmp_path, provider_dir, capsys):
    out = tmp_path / "res"
    code = main(["run", "--fabric", "usb4,shm", "--bench",
                 "latency,bw,put_latency,allreduce,barrier,mpi4py_latency",
                 "-m", "1:1024", "-i", "20", "-x", "2", "--repeat", "1",
                 "--timeout", "60", "--provider-dir", str(provider_dir),
                 "--osu-dir", str(provider_dir.parent / "osu_bench"), "--output", str(out)])
    assert code == 0, capsys.readouterr()
    results, runs, meta = load_results(out)
    assert set(runs["status"]) == {"ok"}
    got = results.groupby(["fabric", "benchmark"]).size().to_dict()
    for fabric in ("usb4", "shm"):
        assert got[(fabric, "latency")] == 11  # 1..1024
        assert got[(fabric, "allreduce")] == 4 * 9  # 4..1024, avg/min/max/iterations
        assert got[(fabric, "barrier")] == 4
        assert got[(fabric, "mpi4py_latency")] == 11
    put = results[(results["fabric"] == "usb4") & (results["benchmark"] == "put_latency")]
    assert set(put["carrier"]) == {meta["profiles"]["usb4"]["one_sided_carrier"]}
    assert "btl ofi / usb4" in put["carrier"].iloc[0]
    assert meta["osu_suite"]["kind"] == "osu_bench" and "Open MPI" in meta["mpi"]
    # the programs say they are this project's, not the OSU suite
    assert any(s.startswith("usb4 osu_bench ") and "not the OSU suite" in s
               for s in meta["benchmark_suites"]), meta["benchmark_suites"]
    assert not any(s.startswith("OSU Micro-Benchmarks") for s in meta["benchmark_suites"])
    assert meta["environment"] is not None and meta["git_commit"]
    assert main(["report", str(out), "--output", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.html").is_file()
