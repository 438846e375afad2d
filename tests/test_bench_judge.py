"""The comparison benchmarks' judging and printing (bench/bench_judge.py,
bench/compare_local.py, bench/compare_hosts.py, bench/bench_shaped.py),
without running a benchmark; and osu_bw -C's '# cpu' lines (one short
vader run)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import bench_judge as J  # noqa: E402
import bench_shaped  # noqa: E402
import compare_hosts  # noqa: E402
import compare_local  # noqa: E402
from compare_local import RunResult  # noqa: E402


def lat_data(usb4, ref, prog="osu_latency", ref_name="vader"):
    return {prog: {"usb4": dict(usb4), ref_name: dict(ref)}}


# --- worst size and PASS/MISS ----------------------------------------------

def test_worst_is_the_largest_ratio_for_latency_and_smallest_for_bandwidth():
    ratios = {8: 1.1, 16: 1.9, 32: 0.7}
    assert J.worst(ratios, "<=") == (16, 1.9)
    assert J.worst(ratios, ">=") == (32, 0.7)
    assert J.worst({}, "<=") is None


def test_worst_breaks_ties_towards_the_smaller_size():
    assert J.worst({64: 2.0, 8: 2.0}, "<=") == (8, 2.0)


def test_a_range_misses_on_one_bad_size_and_names_it():
    # every size passes but 32, which decides; the median or best would pass
    data = lat_data({8: 1.0, 16: 1.0, 32: 5.0, 64: 1.0, 128: 1.0},
                    {8: 1.0, 16: 1.0, 32: 2.0, 64: 1.0, 128: 1.0})
    t = J.Target("acc", "osu_latency", 8, 128, 2.0, "<=", "vader")
    line = J.judge_target(t, data)
    assert line.startswith("MISS")
    assert "worst size 32 B" in line and "ratio 2.500" in line
    assert "over 5 sizes" in line


def test_a_range_ignores_sizes_outside_it():
    data = lat_data({4: 9.0, 8: 1.0, 256: 9.0}, {4: 1.0, 8: 1.0, 256: 1.0})
    t = J.Target("acc", "osu_latency", 8, 128, 2.0, "<=", "vader")
    assert J.judge_target(t, data).startswith("PASS")


def test_bandwidth_range_takes_the_smallest_ratio():
    data = {"osu_bw": {"usb4": {1: 9.0, 2: 7.0, 4: 30.0},
                       "vader": {1: 10.0, 2: 10.0, 4: 30.0}}}
    t = J.Target("rate", "osu_bw", 1, 64, 0.8, ">=", "vader")
    line = J.judge_target(t, data)
    assert line.startswith("MISS") and "worst size 2 B" in line and "0.700" in line
    data["osu_bw"]["usb4"][2] = 8.0
    assert J.judge_target(t, data).startswith("PASS")


def test_the_limit_itself_passes_both_ways():
    assert J.passes(1.2, 1.2, "<=") and J.passes(0.8, 0.8, ">=")
    assert not J.passes(1.2001, 1.2, "<=") and not J.passes(0.7999, 0.8, ">=")


def test_a_single_size_target_uses_that_size_only():
    data = lat_data({8: 1.3, 16: 9.0}, {8: 1.0, 16: 1.0})
    line = J.judge_target(J.at("8 B", "osu_latency", 8, 1.25, "<=", "vader"), data)
    assert line.startswith("MISS") and "usb4 1.30, vader 1.00, ratio 1.300" in line
    assert "worst" not in line


def test_a_missing_stack_or_size_is_na_and_says_which():
    data = lat_data({8: 1.0}, {16: 1.0})
    line = J.judge_target(J.at("8 B", "osu_latency", 8, 1.2, "<=", "vader"), data)
    assert line.startswith("n/a") and "no vader result" in line
    data = {"osu_latency": {"vader": {8: 1.0}}}
    line = J.judge_target(J.at("8 B", "osu_latency", 8, 1.2, "<=", "vader"), data)
    assert line.startswith("n/a") and "no usb4 result" in line


def test_a_zero_baseline_gives_no_ratio():
    assert J.ratio(1.0, 0.0) is None
    assert J.size_ratios({0: 0.0, 8: 2.0}, {0: 0.0, 8: 1.0}, 0, 8) == {8: 2.0}


def test_the_judged_stack_is_never_a_base_build():
    assert J.usb4_name(["usb4-base", "usb4", "vader"]) == "usb4"
    assert J.usb4_name(["usb4-osc-base", "usb4-osc"]) == "usb4-osc"
    data = {"osu_latency": {"usb4-base": {8: 1.0}, "usb4": {8: 3.0}, "vader": {8: 1.0}}}
    assert J.judge_target(J.at("8 B", "osu_latency", 8, 1.2, "<=", "vader"),
                          data).startswith("MISS")


def test_suites_state_the_issue_targets():
    local = {(t.program, t.lo, t.hi, t.limit, t.op, t.ref)
             for t in compare_local.SUITES["pt2pt"].targets}
    assert ("osu_latency", 8, 8, 1.2, "<=", "vader") in local
    assert ("osu_bw", 1, 64, 0.8, ">=", "vader") in local
    assert ("osu_latency", 8, 8, 0.1, "<=", "tcp") in local
    onesided = {(t.program, t.lo, t.hi, t.limit)
                for t in compare_local.SUITES["onesided"].targets}
    assert ("osu_acc_latency", 8, 128, 2.0) in onesided
    hosts_pt2pt = {(t.program, t.lo, t.hi, t.limit, t.op, t.ref)
                   for t in compare_hosts.SUITES["pt2pt"].targets}
    assert ("osu_latency", 8, 8, 1.25, "<=", "udp-poll") in hosts_pt2pt
    assert ("osu_latency", 32 << 10, 4 << 20, 1.0, "<=", "tcp") in hosts_pt2pt
    assert ("osu_bw", 1 << 20, 1 << 20, 1.2, ">=", "tcp") in hosts_pt2pt
    assert ("osu_bw", 1 << 20, 1 << 20, 1.0, ">=", "udp") in hosts_pt2pt
    for prog in ("osu_latency", "osu_bw"):
        assert "-m 0:4194304" == compare_hosts.SUITES["pt2pt"].programs[prog][0]
    one = compare_hosts.SUITES["onesided"]
    assert {"osu_acc_latency", "osu_put_bw", "osu_get_bw"} <= set(one.programs)
    assert {(t.program, t.limit) for t in one.targets} >= {
        ("osu_put_latency", 1.0), ("osu_get_latency", 1.0), ("osu_acc_latency", 2.0),
        ("osu_put_bw", 1.0), ("osu_get_bw", 1.0)}
    # The socket ceiling beside the one-sided bandwidth, in the same run.
    assert "udp" in one.stacks.split(",")
    assert {(t.program, t.limit, t.op, t.ref) for t in one.targets} >= {
        ("osu_put_bw", 1.0, ">=", "udp"), ("osu_get_bw", 1.0, ">=", "udp")}


# --- regressions against usb4-base ------------------------------------------

def test_relative_spread():
    assert J.relative_spread([10.0]) == 0.0
    assert J.relative_spread([9.0, 10.0, 11.0]) == pytest.approx(0.2)


def test_latency_worse_within_the_spread_is_not_flagged_beyond_it_is():
    base = {8: [1.0, 1.0, 1.0], 16: [1.0, 1.0, 1.0]}
    usb4 = {8: [1.05, 1.0, 1.10],   # spread 10%, median 5% worse: noise
            16: [1.30, 1.29, 1.31]}  # spread ~1.5%, 30% worse
    found = J.regressions(usb4, base, higher_better=False)
    assert [r.size for r in found] == [16]
    assert found[0].ratio == pytest.approx(1.30)


def test_bandwidth_regression_is_a_drop_not_a_rise():
    base = {1: [100.0, 100.0], 2: [100.0, 100.0]}
    usb4 = {1: [150.0, 150.0], 2: [80.0, 80.0]}
    assert [r.size for r in J.regressions(usb4, base, higher_better=True)] == [2]
    # the same figures read as latency: 1 is the worse one
    assert [r.size for r in J.regressions(usb4, base, higher_better=False)] == [1]


def test_the_base_spread_counts_too():
    base = {8: [1.0, 1.5]}   # the base alone is noisy (40%)
    usb4 = {8: [1.5, 1.5]}
    assert J.regressions(usb4, base, higher_better=False) == []


def test_one_repeat_flags_every_worse_size_and_says_so():
    found = J.regressions({8: [1.01], 16: [0.9]}, {8: [1.0], 16: [1.0]}, False)
    assert [r.size for r in found] == [8]
    text = J.format_regressions("usb4", "usb4-base", found, repeats=1)
    assert "8 (1.010" in text and "no spread known" in text
    assert "not worse" in J.format_regressions("usb4", "usb4-base", [], 3)


def test_base_report_uses_every_repeat():
    def runs(name, values):
        return [RunResult(name, "osu_latency", i, {8: v}, None) for i, v in enumerate(values)]
    got = {"osu_latency": {"usb4": runs("usb4", [2.0, 2.0, 2.0]),
                           "usb4-base": runs("usb4-base", [1.0, 1.0, 1.0])}}
    lines = compare_local.base_report(got, ["osu_latency"], {"osu_latency": False}, 3)
    assert "worse than usb4-base" in lines[0] and "8 (2.000" in lines[0]


def test_base_stacks_follow_their_usb4_stack():
    assert compare_local.with_base(["usb4", "vader"], None) == ["usb4", "vader"]
    assert compare_local.with_base(["usb4-osc", "vader-osc"], Path("/x")) == [
        "usb4-osc", "usb4-osc-base", "vader-osc"]
    # Named explicitly as well (--stacks usb4,usb4-base): run once, not twice.
    assert compare_local.with_base(["usb4", "usb4-base", "vader"], Path("/x")) == [
        "usb4", "usb4-base", "vader"]
    names = [s.name for s in compare_local.make_stacks(REPO, base_dir=Path("/old"))]
    assert {"usb4-base", "usb4-osc-base"} <= set(names)
    base = next(s for s in compare_local.make_stacks(REPO, base_dir=Path("/old"))
                if s.name == "usb4-base")
    assert "FI_PROVIDER_PATH=/old" in base.mpi_args


# --- tables -----------------------------------------------------------------

def test_every_table_has_every_ratio_at_every_size_bandwidth_too():
    data = {"usb4": {1: 2.0, 2: 4.0}, "vader": {1: 4.0, 2: 8.0}, "tcp": {1: 1.0, 2: 2.0}}
    text = compare_local.format_table("osu_bw", "MB/s", ["usb4", "vader", "tcp"], data,
                                      ["vader", "tcp"])
    head, *rows = text.splitlines()[1:]
    assert "usb4/vader" in head and "usb4/tcp" in head
    assert rows[0].split()[-2:] == ["0.500", "2.000"]
    assert rows[1].split()[-2:] == ["0.500", "2.000"]


def test_osu_bw_always_gets_cpu_usage_once():
    suite = compare_local.SUITES["pt2pt"]
    progs = compare_local.program_args(suite, ["osu_bw=-m 1:64 -C"])
    assert progs["osu_bw"].count("-C") == 1 and "-C" not in progs["osu_latency"]
    assert "not one of" in compare_local.program_args(suite, ["osu_nope=-m 1"])


# --- CPU per GB ---------------------------------------------------------------

CPU_LINE = ("# cpu size=1048576 bytes=2000000000 wall_s=0.5 rank0_s=0.4 "
            "rank1_s=0.6 machine_busy_s=1.2 machine_irq_s=0.1")


def test_cpu_lines_parse_and_divide_by_gb():
    rows = J.parse_cpu("1048576   4000.0\n" + CPU_LINE + "\n# cpu size=x\n")
    assert list(rows) == [1048576]
    assert J.cpu_per_gb(rows[1048576]) == (pytest.approx(0.5), pytest.approx(0.6))


def test_machine_time_of_a_short_loop_is_left_out():
    row = J.parse_cpu(CPU_LINE.replace("wall_s=0.5", "wall_s=0.01"))[1048576]
    ranks, busy = J.cpu_per_gb(row)
    assert ranks == pytest.approx(0.5) and busy is None


def test_cpu_medians_take_the_median_run():
    def run(rank0):
        return RunResult("usb4", "osu_bw", 0, {8: 1.0}, None,
                         {8: {"bytes": 1e9, "wall_s": 1.0, "rank0_s": rank0,
                              "rank1_s": 0.0, "machine_busy_s": -1.0}})
    got = compare_local.cpu_medians([run(1.0), run(9.0), run(2.0)])
    assert got == {8: (2.0, None)}


# --- compare_hosts' raw UDP and the shaped suite ---------------------------------

def test_udp_stream_uses_the_cables_datagram_and_osu_bws_largest_size():
    argv = compare_hosts.udp_argv(Path("/u"), "udp", "osu_bw", "10.0.0.2", 4056,
                                  ["-m", "0:4194304", "-C"], ("-i", "100"))
    assert argv[argv.index("-M") + 1] == "4056"
    assert argv[argv.index("-m") + 1] == "4194304"
    assert "-b" in argv and "-i" in argv
    lat = compare_hosts.udp_argv(Path("/u"), "udp-poll", "osu_latency", "a", 65494,
                                 ["-m", "0:4194304"])
    assert "-P" in lat and "-m" not in lat
    for prog in ("osu_put_bw", "osu_get_bw"):  # one-sided: the same stream
        one = compare_hosts.udp_argv(Path("/u"), "udp", prog, "a", 65494,
                                     ["-w", "create", "-m", "262144:1048576"])
        assert "-b" in one and one[one.index("-m") + 1] == "1048576"


def test_udp_rows_keep_to_the_mpi_programs_sizes():
    rows = {8: 1.0, 262144: 2.0, 1 << 20: 3.0, 4 << 20: 4.0}
    assert compare_hosts.in_range(rows, ["-m", "262144:1048576", "-C"]) == {
        262144: 2.0, 1 << 20: 3.0}
    assert compare_hosts.in_range(rows, ["-m", "1048576"]) == {8: 1.0, 262144: 2.0,
                                                               1 << 20: 3.0}
    assert compare_hosts.in_range(rows, []) == rows


def test_shaped_cables_are_the_issues():
    ring, small = bench_shaped.CABLES
    assert (ring.mtu, ring.rate_bit_s) == (65522, 10e9)
    assert (small.mtu, small.max_datagram) == (4084, 4056)
    assert small.payload_ceiling == pytest.approx(4056 / 4098)


def test_shaped_targets_judge_share_and_cpu():
    mbps = {"usb4": {1 << 20: 1200.0}, "tcp": {1 << 20: 1240.0}}
    cpu = {"usb4": {1 << 20: (0.9, None)}, "tcp": {1 << 20: (1.0, None)}}
    data = bench_shaped.derived(mbps, cpu, 10e9)
    share_line, cpu_line = J.judge(data, bench_shaped.targets())
    assert share_line.startswith("PASS") and "ratio 0.960" in share_line
    assert cpu_line.startswith("PASS")
    data = bench_shaped.derived({"usb4": {1 << 20: 1180.0}}, {"usb4": {1 << 20: (1.2, None)},
                                "tcp": {1 << 20: (1.0, None)}}, 10e9)
    share_line, cpu_line = J.judge(data, bench_shaped.targets())
    assert share_line.startswith("MISS") and cpu_line.startswith("MISS")


# --- osu_bw -C ----------------------------------------------------------------

OSU = REPO / "osu_bench"


@pytest.mark.mpi
def test_osu_bw_prints_cpu_lines_after_its_rows():
    if not (OSU / "osu_bw").exists() or shutil.which("mpirun") is None:
        pytest.skip("osu_bench not built or no mpirun")
    argv = ["mpirun", "--allow-run-as-root", "-np", "2", "--mca", "pml", "ob1",
            "--mca", "btl", "vader,self", str(OSU / "osu_bw"), "-C", "-m", "4:8",
            "-i", "5", "-x", "1", "-W", "4"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    rows = compare_local.parse_osu(proc.stdout)
    cpu = J.parse_cpu(proc.stdout)
    assert list(rows) == [4, 8] and list(cpu) == [4, 8]
    row4 = next(i for i, line in enumerate(lines) if line.startswith("4 "))
    assert lines[row4 + 1].startswith("# cpu size=4 ")
    assert cpu[8]["bytes"] == 8 * 4 * 5  # size x window x timed iterations
    assert cpu[8]["rank0_s"] >= 0 and cpu[8]["rank1_s"] >= 0 and cpu[8]["wall_s"] > 0


def test_cpu_usage_is_an_option_of_osu_bw_only():
    if not (OSU / "osu_bibw").exists():
        pytest.skip("osu_bench not built")
    proc = subprocess.run([str(OSU / "osu_bibw"), "-C"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode != 0 and "invalid option" in proc.stderr
    proc = subprocess.run([str(OSU / "osu_bw"), "-h"], capture_output=True, text=True,
                          timeout=30)
    assert "--cpu-usage" in proc.stdout


def test_repeats_interleave_stacks_so_drift_hits_all_alike():
    order = []
    compare_local.interleaved(["a", "b"], {"lat": [], "bw": []}, 2,
                              lambda s, p, r: order.append((r, s, p)))
    assert order == [(0, "a", "lat"), (0, "a", "bw"), (0, "b", "lat"), (0, "b", "bw"),
                     (1, "a", "lat"), (1, "a", "bw"), (1, "b", "lat"), (1, "b", "bw")]


def test_collect_keeps_good_runs_and_medians_per_stack():
    results = [RunResult("usb4", "lat", 0, {8: 1.0}, None),
               RunResult("usb4", "lat", 1, {}, "exit status 1"),
               RunResult("usb4", "lat", 2, {8: 3.0}, None),
               RunResult("vader", "lat", 0, {}, "exit status 1")]
    runs, data = {"lat": {}}, {"lat": {}}
    compare_local.collect(results, runs, data)
    assert data == {"lat": {"usb4": {8: 2.0}}} and len(runs["lat"]["usb4"]) == 2


def test_long_stack_names_keep_their_columns_apart():
    data = {"usb4-keyed": {8: 1.0}, "usb4-keyed-base": {8: 2.0}}
    text = compare_local.format_table("t", "MB/s", list(data), data, ["usb4-keyed-base"])
    head = text.splitlines()[1]
    assert "usb4-keyed MB/s usb4-keyed-base MB/s" in " ".join(head.split())
    assert len(text.splitlines()[2].split()) == 4
    cpu = {n: {8: (1.0, 2.0)} for n in data}
    table = compare_local.format_cpu_table("t", data, cpu)
    assert all(len(f) < 30 for f in table.splitlines()[1].split())


# --- compare_hosts --syscall-clock ------------------------------------------------

def test_syscall_clock_preloads_every_stack_and_both_raw_programs():
    assert compare_hosts.parse_args(["--syscall-clock"]).syscall_clock
    assert not compare_hosts.parse_args([]).syscall_clock
    so = Path("/o/clock_syscall.so")
    stacks = [compare_hosts.HostStack("usb4", ["-x", "A=1"], None, ("mpirun",)),
              compare_hosts.HostStack("tcp", [], None, ("mpirun",))]
    for s in compare_hosts.preloaded(stacks, so):
        argv = s.argv(Path("/osu_latency"), [])
        assert argv[argv.index("-x", argv.index("mpirun")) + 1:].count(f"LD_PRELOAD={so}") == 1
        assert argv.index(f"LD_PRELOAD={so}") < argv.index("/osu_latency")
    assert compare_hosts.preloaded(stacks, None) == stacks
    assert compare_hosts.preload_argv(["/u", "-s"], so) == ["env", f"LD_PRELOAD={so}",
                                                            "/u", "-s"]
    assert compare_hosts.preload_argv(["/u"], None) == ["/u"]


@pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("strace")),
                    reason="needs gcc and strace")
def test_syscall_clock_shim_makes_precise_reads_system_calls(tmp_path):
    so, why = compare_hosts.build_clock_syscall(tmp_path)
    assert why is None and so is not None

    def calls(preload, clock):
        """System calls clock_gettime made by an interpreter that reads
        clock 200 times (None: not at all)."""
        reads = f"import time\nfor _ in range(200 if {clock} else 0): time.clock_gettime({clock} or 1)\n"
        env = {"PATH": "/usr/bin:/bin", **({"LD_PRELOAD": str(preload)} if preload else {})}
        proc = subprocess.run(["strace", "-f", "-c", "-e", "trace=clock_gettime",
                               sys.executable, "-c", reads], capture_output=True, text=True,
                              env=env, timeout=60)
        line = [ln for ln in proc.stderr.splitlines() if ln.endswith("clock_gettime")]
        return int(line[0].split()[3]) if line else 0

    # With it each CLOCK_MONOTONIC (1) read is one system call; the coarse
    # clock (CLOCK_MONOTONIC_COARSE, 6) stays in the vDSO; without it
    # neither is one.
    idle = calls(so, None)
    assert calls(so, 1) - idle == 200
    assert calls(so, 6) - idle == 0
    assert calls(None, 1) < 200
