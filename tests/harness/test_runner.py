"""The runner on fake benchmarks: garbage, failure, timeout, missing binary.

mpirun is a parameter of the plan: these tests give it a fake mpirun that
drops mpirun's options and execs the benchmark, and an OSU folder of tiny
scripts standing in for the OSU programs.
"""

from pathlib import Path

from conftest import write_script
from usb4fabric import profiles, runner
from usb4fabric.osu_locate import BENCHMARKS, Suite
from usb4fabric.results import ResultsWriter, load_results

GOOD = "#!/bin/sh\ncat {fixture}\n"
GARBAGE = "#!/bin/sh\necho 'Segmentation fault'\necho '1 2 3 4 5'\n"
FAILS_HALFWAY = ("#!/bin/sh\necho '# OSU MPI Latency Test v7.4'\n"
                 "echo '# Size          Latency (us)'\necho '1    0.50'\n"
                 "echo 'rank 1 died' >&2\nexit 3\n")
SLEEPS = ("#!/bin/sh\necho '# OSU MPI Allreduce Latency Test v7.4'\n"
          "echo '# Size       Avg Latency(us)'\necho '4    1.00'\nexec sleep 60\n")


def make_suite(tmp_path, fixtures_dir, programs):
    folder = tmp_path / "osu"
    folder.mkdir()
    for name, text in programs.items():
        write_script(folder / name, text.format(fixture=fixtures_dir / "osu7_latency.txt"))
    return Suite("osu", folder, "--osu-dir")


def shm_profile():
    return profiles.build(Path("/nonexistent"), names=("shm",))


def run_plan(tmp_path, fake_mpirun, suite, benches, repeat=1, timeout=30.0):
    plan = runner.Plan(shm_profile(), [BENCHMARKS[b] for b in benches], suite, repeat=repeat,
                       mpirun=str(fake_mpirun), timeout=timeout)
    out = tmp_path / "results"
    runs = runner.execute(plan, ResultsWriter(out), ["usb4bench", "run"])
    return runs, out


def test_failures_are_recorded_and_the_run_carries_on(tmp_path, fixtures_dir, fake_mpirun):
    suite = make_suite(tmp_path, fixtures_dir, {
        "osu_latency": GOOD, "osu_bibw": GARBAGE, "osu_put_latency": FAILS_HALFWAY,
        "osu_allreduce": SLEEPS})
    runs, out = run_plan(tmp_path, fake_mpirun, suite,
                         ["latency", "bw", "bibw", "put_latency", "allreduce", "latency"],
                         timeout=2.0)
    status = [(r["benchmark"], r["status"]) for r in runs]
    assert status == [("latency", "ok"), ("bw", "missing"), ("bibw", "no-data"),
                      ("put_latency", "failed"), ("allreduce", "timeout"), ("latency", "ok")]
    by_bench = {r["benchmark"]: r for r in runs}
    assert "osu_bw not found" in by_bench["bw"]["error"]
    assert "Segmentation fault" in by_bench["bibw"]["error"]
    assert "exit status 3" in by_bench["put_latency"]["error"]
    assert "rank 1 died" in by_bench["put_latency"]["error"]
    assert "timed out after 2 s" in by_bench["allreduce"]["error"]

    results, runs_df, meta = load_results(out)
    # rows measured before a failure or a timeout are kept, marked partial
    partial = results[results["benchmark"].isin(["put_latency", "allreduce"])]
    assert sorted(partial["value"]) == [0.5, 1.0]
    assert all("partial" in n for n in partial["note"])
    assert len(results[results["benchmark"] == "latency"]) == 14
    # raw outputs of failed runs are kept
    garbage = (out / runs_df.set_index("benchmark").loc["bibw", "stdout_file"]).read_text()
    assert "Segmentation fault" in garbage
    assert meta["status_counts"] == {"failed": 1, "missing": 1, "no-data": 1, "ok": 2,
                                     "timeout": 1}
    assert meta["osu_suite"]["kind"] == "osu" and meta["end"]


def test_every_repetition_is_kept(tmp_path, fixtures_dir, fake_mpirun):
    suite = make_suite(tmp_path, fixtures_dir, {"osu_latency": GOOD})
    runs, out = run_plan(tmp_path, fake_mpirun, suite, ["latency"], repeat=3)
    results, _, meta = load_results(out)
    assert sorted(results["repetition"].unique()) == [1, 2, 3]
    assert len(results) == 3 * 7
    for rep in (1, 2, 3):
        assert (out / "raw" / "shm" / "latency" / f"rep{rep}.out").is_file()
        cmd = (out / "raw" / "shm" / "latency" / f"rep{rep}.cmd").read_text()
        assert "--mca pml ob1 --mca btl vader,self" in cmd
    assert meta["command"] == ["usb4bench", "run"] and meta["repeat"] == 3
    assert set(meta) >= {"git_commit", "libfabric", "mpi", "environment", "start", "hosts"}


def test_results_are_written_after_every_run(tmp_path, fixtures_dir, fake_mpirun):
    """An interruption after the first run keeps it on disk."""
    suite = make_suite(tmp_path, fixtures_dir, {"osu_latency": GOOD})
    plan = runner.Plan(shm_profile(), [BENCHMARKS["latency"]] * 2, suite,
                       mpirun=str(fake_mpirun))
    out = tmp_path / "results"
    class InterruptSecond:
        def run_started(self, index, total, label):
            if index == 2:
                raise KeyboardInterrupt

        def run_finished(self, index, total, label, status):
            pass

    try:
        runner.execute(plan, ResultsWriter(out), [], InterruptSecond())
    except KeyboardInterrupt:
        pass
    results, runs, meta = load_results(out)
    assert len(runs) == 1 and len(results) == 7 and meta["interrupted"] is True


def test_skipped_profile_and_one_sided(tmp_path, fixtures_dir, fake_mpirun):
    suite = make_suite(tmp_path, fixtures_dir, {"osu_latency": GOOD, "osu_put_latency": GOOD})
    chosen = profiles.build(Path("/nonexistent"), names=("usb4", "ethernet-btl"))
    plan = runner.Plan(chosen, [BENCHMARKS["latency"], BENCHMARKS["put_latency"]], suite,
                       repeat=2, mpirun=str(fake_mpirun))
    runs = runner.execute(plan, ResultsWriter(tmp_path / "r"), [])
    status = [(r["fabric"], r["benchmark"], r["status"]) for r in runs]
    assert status == [("usb4", "latency", "skipped"), ("usb4", "put_latency", "skipped"),
                      ("ethernet-btl", "latency", "ok"), ("ethernet-btl", "latency", "ok"),
                      ("ethernet-btl", "put_latency", "skipped")]
    assert "libusb4-fi.so not found" in runs[0]["error"]
    assert "btl tcp" in runs[-1]["error"]


def test_mpirun_argv(tmp_path):
    usb4, eth = profiles.build(Path("/opt/usb4"), names=("usb4", "ethernet"))
    suite = Suite("osu_bench", tmp_path, "osu_bench")
    plan = runner.Plan([usb4], [], suite, iterations=7, sizes="8:64")
    argv = plan.mpirun_argv(usb4, BENCHMARKS["latency"], ["osu_latency"])
    text = " ".join(argv)
    assert "--mca pml cm --mca mtl ofi --mca opal_common_ofi_provider_include usb4" in text
    assert "-x FI_PROVIDER=usb4 -x FI_PROVIDER_PATH=/opt/usb4" in text
    assert argv[-7:] == ["osu_latency", "-m", "8:64", "-i", "7", "-x", "200"]
    put = " ".join(plan.mpirun_argv(usb4, BENCHMARKS["put_latency"], ["osu_put_latency"]))
    assert ("--mca osc rdma --mca btl ofi,self --mca btl_ofi_provider_include usb4" in put
            and "-w create" in put)
    assert "--mca osc_rdma_network_max_amo 1" in put  # accumulates whole
    assert "FI_TCP_IFACE=lo" in " ".join(eth.mpi_args(False))
    multi = runner.Plan([eth], [], suite, hosts=["a", "b"])
    eth_multi = profiles.build(Path("/x"), multihost=True, names=("ethernet", "shm"))
    margv = multi.mpirun_argv(eth_multi[0], BENCHMARKS["latency"], ["p"])
    assert "--host" in margv and "a,b" in margv
    assert "FI_TCP_IFACE=lo" not in " ".join(margv)
    assert eth_multi[1].skip  # shm cannot join two hosts


def test_roce_skipped_without_a_verbs_device():
    roce, = profiles.build(Path("/x"), names=("roce",), probe_verbs=lambda: None)
    assert roce.skip and "fi_info -p verbs" in roce.skip
    roce, = profiles.build(Path("/x"), names=("roce",), probe_verbs=lambda: "mlx5_0")
    assert roce.skip is None and roce.env["FI_PROVIDER"] == "verbs"
