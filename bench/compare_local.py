#!/usr/bin/env python3
"""Compare usb4 with vader and libfabric tcp on this host, 2 ranks.

A benchmark, not a test: it runs the project's own OSU-method programs
(osu_bench/) under several MPI stacks, takes the median of --repeat runs per
message size, prints one side-by-side table per program with the ratio of
usb4 to every other stack at every size, and says PASS or MISS against the
targets of issue 13 (bench_judge.py: a target over a range of sizes is
decided by its worst size, which the line names):

  --suite pt2pt (default): osu_latency and osu_bw over usb4 (pml cm + mtl ofi),
      vader (pml ob1) and libfabric tcp (pml cm + mtl ofi):
          usb4 8-byte latency          <= 1.2 x vader   and   <= 0.1 x tcp
          usb4 osu_bw at every 1-64 B  >= 0.8 x vader   (the message rate
                                          ratio: same size, same count)
          usb4 1 MiB bandwidth         >= 0.8 x vader
      osu_bw runs with -C: CPU seconds per GB (both ranks) beside MB/s.
  --suite onesided: put/get latency, put bandwidth and accumulate latency with
      MPI_Win_create windows (OSU's -w create) over osc rdma on btl ofi
      restricted to usb4 (no vader, so usb4 carries every byte) and over osc
      rdma on vader:
          usb4 8-byte put and get latency        <= 2 x vader
          usb4 accumulate latency at every 8-128 B <= 2 x vader
          usb4 1 MiB put bandwidth               >= 0.8 x vader

--base-provider DIR adds the stack usb4-base (usb4-osc-base): the same
stack with FI_PROVIDER_PATH=DIR (a build of an older commit), in the same
run, a usb4/usb4-base column and the sizes where usb4 is worse than the
base by more than the repeats' spread (bench_judge.regressions).

It never asserts; a stack that is missing or fails is reported and skipped.
Raw stdout/stderr of every run, the command lines and a CSV of all parsed
rows are kept in --output (default: a new temporary directory).

    python3 bench/compare_local.py [--suite pt2pt|onesided] [--repeat 3] [--output DIR]
                                   [--portable] [--base-provider DIR]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "python"))  # usb4fabric of this tree

import bench_judge  # noqa: E402
import bench_machine  # noqa: E402
from bench_judge import Target, at, ratio, usb4_name  # noqa: E402,F401
from usb4fabric import mpi_select  # noqa: E402

MPIRUN = ["mpirun", "--allow-run-as-root", "-np", "2"]

LAT_SIZE = 8
BW_SIZE = 1 << 20


@dataclasses.dataclass(frozen=True)
class Suite:
    """Programs (name -> default arguments, and whether higher is better),
    the stacks they run on, and the targets (bench_judge.Target)."""

    programs: dict[str, tuple[str, bool]]
    stacks: str
    targets: list[Target]


# The suffix of a usb4 stack run with --base-provider's older provider.
BASE = "-base"

# Options the scripts add to a program whatever --args says: osu_bw's CPU
# seconds per GB.
ALWAYS = {"osu_bw": ["-C"]}


SUITES = {
    "pt2pt": Suite(
        {"osu_latency": ("-m 0:1048576", False),
         "osu_bw": ("-m 1:1048576", True)},
        "usb4,vader,tcp",
        [at("usb4 8 B latency <= 1.2x vader", "osu_latency", LAT_SIZE, 1.2,
            "<=", "vader"),
         Target("usb4 message rate at every 1-64 B >= 0.8x vader", "osu_bw",
                1, 64, 0.8, ">=", "vader"),
         at("usb4 8 B latency <= 0.1x tcp", "osu_latency", LAT_SIZE, 0.1,
            "<=", "tcp"),
         at("usb4 1 MiB bandwidth >= 0.8x vader", "osu_bw", BW_SIZE, 0.8,
            ">=", "vader")]),
    "onesided": Suite(
        {"osu_put_latency": ("-w create -s flush -m 1:1048576", False),
         "osu_get_latency": ("-w create -s flush -m 1:1048576", False),
         "osu_put_bw": ("-w create -s flush -m 1:1048576", True),
         "osu_acc_latency": ("-w create -s fence -m 4:65536", False)},
        "usb4-osc,vader-osc",
        [at("usb4 8 B put latency <= 2x vader", "osu_put_latency", LAT_SIZE,
            2.0, "<=", "vader-osc"),
         at("usb4 8 B get latency <= 2x vader", "osu_get_latency", LAT_SIZE,
            2.0, "<=", "vader-osc"),
         Target("usb4 accumulate latency at every 8-128 B <= 2x vader",
                "osu_acc_latency", 8, 128, 2.0, "<=", "vader-osc"),
         at("usb4 1 MiB put bandwidth >= 0.8x vader", "osu_put_bw", BW_SIZE,
            0.8, ">=", "vader-osc")]),
}


@dataclasses.dataclass(frozen=True)
class Stack:
    """One way of running MPI on this host: the mpirun arguments before argv."""

    name: str
    mpi_args: list[str]
    missing: str | None = None  # why it cannot run, or None

    def argv(self, program: Path, args: list[str]) -> list[str]:
        return MPIRUN + self.mpi_args + [str(program)] + args


# One-sided: osc rdma over btl ofi restricted to usb4 (mpi_select.usb4_one_sided
# says why so).
USB4_OSC_ARGS = mpi_select.usb4_one_sided()


def provider_missing(libdir: Path) -> str | None:
    provider = libdir / "libusb4-fi.so"
    return None if provider.exists() else (
        f"provider library {provider} not found (build it with "
        "scripts/build.sh at the repo root)")


def make_stacks(repo: Path, portable: bool = False,
                base_dir: Path | None = None) -> list[Stack]:
    """The stacks. Debian's openmpi-mca-params.conf disables mtl ofi and
    btl ofi, so every component is named explicitly.  portable: the
    provider's CPU-specific paths off (FI_USB4_PORTABLE=1).  base_dir: a
    folder holding an older libusb4-fi.so for usb4-base and usb4-osc-base."""
    stacks = usb4_stacks("", repo / ".libs", portable)
    if base_dir is not None:
        stacks += usb4_stacks(BASE, base_dir, portable)
    return stacks + other_stacks()


def usb4_stacks(suffix: str, libdir: Path, portable: bool) -> list[Stack]:
    """usb4 (two-sided over mtl ofi) and its one-sided twin usb4-osc, the
    provider taken from libdir; suffix BASE names an older build's."""
    env = mpi_select.usb4_env(libdir, "lo")  # the ranks still meet over shm
    if portable:
        env["FI_USB4_PORTABLE"] = "1"
    usb4 = Stack("usb4" + suffix, mpi_select.ofi_mtl("usb4") + mpi_select.exports(env),
                 provider_missing(libdir))
    return [usb4, Stack("usb4-osc" + suffix, usb4.mpi_args + USB4_OSC_ARGS, usb4.missing)]


def other_stacks() -> list[Stack]:
    """vader, libfabric tcp and vader's one-sided."""
    vader = Stack("vader", mpi_select.vader())
    # libfabric's tcp;ofi_rxm kept on loopback (mpi_select.TCP_RXM says why
    # it is named so).  Checked on this host: include "tcp" + FI_PROVIDER=tcp
    # also runs (the same tcp;ofi_rxm); no include list + FI_PROVIDER=tcp
    # does not.
    tcp = Stack("tcp", mpi_select.ofi_mtl(mpi_select.TCP_RXM)
                + mpi_select.exports(mpi_select.tcp_env("lo")))
    vader_osc = Stack("vader-osc", vader.mpi_args + mpi_select.mca("osc", "rdma"))
    return [vader, tcp, vader_osc]


@dataclasses.dataclass
class RunResult:
    stack: str
    program: str
    repeat: int
    rows: dict[int, float]  # message size -> latency (us) or bandwidth (MB/s)
    error: str | None  # why the run gave no usable rows, or None
    cpu: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)


def parse_osu(text: str) -> dict[int, float]:
    """Rows of OSU output: '# ...' lines are headers; a row is size, value."""
    rows: dict[int, float] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or line.startswith("#"):
            continue
        try:
            rows[int(fields[0])] = float(fields[1])
        except (ValueError, IndexError):
            continue
    return rows


def run_once(stack: Stack, program: Path, args: list[str], repeat: int,
             outdir: Path, timeout: float, tag: str = "") -> RunResult:
    """Run one benchmark once, keep its raw output (files named with tag
    too, e.g. a cable's), return its rows."""
    argv = stack.argv(program, args)
    stem = outdir / f"{stack.name}{tag}_{program.name}_{repeat}"
    stem.with_suffix(".cmd").write_text(shlex.join(argv) + "\n")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        for suffix, data in ((".out", exc.stdout), (".err", exc.stderr)):
            if isinstance(data, bytes):
                data = data.decode(errors="replace")
            stem.with_suffix(suffix).write_text(data or "")
        return RunResult(stack.name, program.name, repeat, {},
                         f"timed out after {timeout:.0f} s")
    except OSError as exc:
        return RunResult(stack.name, program.name, repeat, {}, str(exc))
    stem.with_suffix(".out").write_text(proc.stdout)
    stem.with_suffix(".err").write_text(proc.stderr)
    rows = parse_osu(proc.stdout)
    error = None
    if proc.returncode != 0:
        error = f"exit status {proc.returncode} (see {stem}.err)"
    elif not rows:
        error = f"no result rows (see {stem}.out)"
    if error:
        return RunResult(stack.name, program.name, repeat, {}, error)
    return RunResult(stack.name, program.name, repeat, rows, None,
                     bench_judge.parse_cpu(proc.stdout))


def repeats(results: list[RunResult]) -> dict[int, list[float]]:
    """Every run's value per size, over the runs that produced rows."""
    by_size: dict[int, list[float]] = {}
    for res in results:
        for size, value in res.rows.items():
            by_size.setdefault(size, []).append(value)
    return dict(sorted(by_size.items()))


def medians(results: list[RunResult]) -> dict[int, float]:
    """Median per size over the runs that produced rows."""
    return {size: statistics.median(v) for size, v in repeats(results).items()}


def cpu_medians(results: list[RunResult]) -> dict[int, tuple[float | None, float | None]]:
    """Median CPU s/GB per size: (both ranks, the machine's busy time)."""
    per: dict[int, list[tuple]] = {}
    for res in results:
        for size, row in res.cpu.items():
            per.setdefault(size, []).append(bench_judge.cpu_per_gb(row))
    out = {}
    for size, pairs in sorted(per.items()):
        cols = []
        for i in (0, 1):
            vals = [p[i] for p in pairs if p[i] is not None]
            cols.append(statistics.median(vals) if vals else None)
        out[size] = (cols[0], cols[1])
    return out


def fmt(value: float | None, width: int = 12, prec: int = 2) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{prec}f}"


def format_table(title: str, unit: str, stacks: list[str],
                 data: dict[str, dict[int, float]], ratios: list[str]) -> str:
    """Side-by-side table of medians, with the ratio of the first usb4
    stack to each other stack in ratios, at every size."""
    sizes = sorted({s for rows in data.values() for s in rows})
    name = usb4_name(stacks)
    width = max([16] + [len(f"{name}/{r}") + 2 for r in ratios])
    col = max([18] + [len(f"{n} {unit}") + 2 for n in stacks])
    head = f"{'Size':<10}" + "".join(f"{n + ' ' + unit:>{col}}" for n in stacks)
    head += "".join(f"{name + '/' + r:>{width}}" for r in ratios)
    lines = [title, head]
    for size in sizes:
        line = f"{size:<10}"
        line += "".join(fmt(data.get(n, {}).get(size), col) for n in stacks)
        usb4 = data.get(name, {}).get(size)
        line += "".join(fmt(ratio(usb4, data.get(r, {}).get(size)), width, 3)
                        for r in ratios)
        lines.append(line)
    if not sizes:
        lines.append("(no results)")
    return "\n".join(lines)


def format_cpu_table(title: str, mbps: dict[str, dict[int, float]],
                     cpu: dict[str, dict[int, tuple]]) -> str:
    """MB/s and CPU s per GB (both ranks; the machine's busy time) per stack."""
    stacks = [n for n in mbps if cpu.get(n)]
    sizes = sorted({s for n in stacks for s in cpu[n]})
    col = max([18] + [len(f"{n} machine") + 2 for n in stacks])
    lines = [title, f"{'Size':<10}" + "".join(
        f"{n + ' MB/s':>{col}}{n + ' ranks':>{col}}{n + ' machine':>{col}}" for n in stacks)]
    for size in sizes:
        line = f"{size:<10}"
        for n in stacks:
            ranks, busy = cpu[n].get(size, (None, None))
            line += (fmt(mbps[n].get(size), col) + fmt(ranks, col, 3) + fmt(busy, col, 3))
        lines.append(line)
    if not stacks:
        lines.append("(no '# cpu' lines: osu_bw without -C?)")
    return "\n".join(lines)


def judge(data: dict[str, dict[str, dict[int, float]]], targets) -> list[str]:
    """One PASS/MISS line per target of the issue."""
    return bench_judge.judge(data, targets)


def base_report(runs: dict[str, dict[str, list[RunResult]]], programs,
                higher: dict[str, bool], repeat: int) -> list[str]:
    """Per program: the sizes where the usb4 stack is worse than its -base."""
    lines = []
    for prog in programs:
        stacks = runs.get(prog, {})
        name = usb4_name(stacks)
        base = name + BASE
        if name not in stacks or base not in stacks:
            lines.append(f"{prog}: no {name} or {base} results")
            continue
        found = bench_judge.regressions(repeats(stacks[name]), repeats(stacks[base]),
                                        higher[prog])
        lines.append(f"{prog}: "
                     + bench_judge.format_regressions(name, base, found, repeat))
    return lines


def write_csv(path: Path, results: list[RunResult]) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["stack", "program", "repeat", "size", "value", "error"])
        for res in results:
            if res.error:
                out.writerow([res.stack, res.program, res.repeat, "", "",
                              res.error])
            for size, value in sorted(res.rows.items()):
                out.writerow([res.stack, res.program, res.repeat, size, value,
                              ""])


def program_args(suite: Suite, overrides: list[str]) -> dict[str, list[str]] | str:
    """Each program's arguments: the suite's, or --args PROG=ARGS, plus
    ALWAYS's; a string says which --args is wrong."""
    programs = {p: shlex.split(a) for p, (a, _) in suite.programs.items()}
    for item in overrides:
        prog, _, prog_args = item.partition("=")
        if prog not in programs:
            return f"--args names {prog!r}, not one of {', '.join(programs)}"
        programs[prog] = shlex.split(prog_args)
    for prog, extra in ALWAYS.items():
        if prog in programs:
            programs[prog] += [a for a in extra if a not in programs[prog]]
    return programs


def with_base(wanted: list[str], base_dir: Path | None) -> list[str]:
    """The stacks, with each usb4 stack's -base twin after it under
    --base-provider; a twin named in wanted too runs once."""
    if base_dir is None:
        return wanted
    out = []
    for name in wanted:
        out.append(name)
        if name.startswith("usb4") and not name.endswith(BASE):
            out.append(name + BASE)
    return list(dict.fromkeys(out))


def print_reports(suite: Suite, names: list[str], runs, data, args, where: str,
                  extra: list[str] = ()) -> None:
    """Every program's table (ratios to every stack), osu_bw's CPU per GB,
    the base comparison, extra lines and the targets."""
    main_usb4 = usb4_name(names)
    refs = [n for n in names if n != main_usb4]
    for prog, (_, higher_better) in suite.programs.items():
        unit = "MB/s" if higher_better else "us"
        print()
        print(format_table(f"{prog}, median of {args.repeat} ({unit}){where}", unit,
                           names, data[prog], refs))
        cpu = {n: cpu_medians(runs[prog].get(n, [])) for n in names}
        if any(cpu.values()):
            print()
            print(format_cpu_table(
                f"{prog}: CPU s per GB moved, median of {args.repeat}: ranks = both "
                "ranks' user+sys (getrusage), machine = /proc/stat busy time of "
                "every CPU over the timed loop (other processes too; '-' under "
                f"{bench_judge.MACHINE_MIN_WALL_S} s)", data[prog], cpu))
    if args.base_provider is not None:
        print()
        print(f"Against usb4-base ({args.base_provider}); spread = the larger of "
              "the two stacks' (max - min) / median over the repeats at that size:")
        higher = {p: hb for p, (_, hb) in suite.programs.items()}
        for line in base_report(runs, suite.programs, higher, args.repeat):
            print("  " + line)
    for line in extra:
        print(line)
    print()
    print("Targets:")
    for line in judge(data, suite.targets) or ["(none in this suite)"]:
        print("  " + line)


def interleaved(stacks, programs, repeat: int, run_one) -> list[RunResult]:
    """Every stack and program repeat times, repeat by repeat: repeat 1 of
    every stack, then repeat 2 ..., so a machine that drifts (other load,
    clocks) shifts every stack's median alike instead of the later ones'."""
    results = []
    for rep in range(repeat):
        for stack in stacks:
            for prog in programs:
                results.append(run_one(stack, prog, rep))
    return results


def collect(results: list[RunResult], runs, data) -> None:
    """Each stack's good runs and medians per program, and a count line."""
    by_key: dict[tuple[str, str], list[RunResult]] = {}
    for res in results:
        by_key.setdefault((res.stack, res.program), []).append(res)
    for (stack, prog), all_runs in by_key.items():
        good = [r for r in all_runs if not r.error]
        print(f"{stack} {prog}: {len(good)}/{len(all_runs)} runs ok", flush=True)
        if good:
            runs[prog][stack] = good
            data[prog][stack] = medians(good)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--portable", action="store_true",
                   help="usb4 with its CPU-specific paths off (FI_USB4_PORTABLE=1)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per stack and program; medians (default 3)")
    p.add_argument("--output", type=Path, default=None,
                   help="folder for raw outputs (default: a new temp dir)")
    p.add_argument("--repo", type=Path, default=REPO,
                   help="repository root holding .libs/libusb4-fi.so")
    p.add_argument("--osu-dir", type=Path, default=None,
                   help="folder of the osu_bench programs "
                        "(default: <repo>/osu_bench)")
    p.add_argument("--suite", choices=sorted(SUITES), default="pt2pt",
                   help="which programs and stacks (default %(default)s)")
    p.add_argument("--stacks", default=None,
                   help="comma-separated subset of the suite's stacks")
    p.add_argument("--args", action="append", default=[], metavar="PROG=ARGS",
                   help="arguments of one program, e.g. "
                        "'osu_latency=-m 0:4096' (default: the suite's)")
    p.add_argument("--base-provider", type=Path, default=None, metavar="DIR",
                   help="folder with an older libusb4-fi.so: adds usb4-base "
                        "in the same run")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds allowed to each mpirun (default 300)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.base_provider is not None:
        args.base_provider = args.base_provider.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    osu_dir = args.osu_dir or args.repo / "osu_bench"
    suite = SUITES[args.suite]
    programs = program_args(suite, args.args)
    if isinstance(programs, str):
        print(programs)
        return 1
    missing = [p for p in programs if not os.access(osu_dir / p, os.X_OK)]
    if missing:
        print(f"osu_bench programs not built in {osu_dir}: "
              f"{', '.join(missing)} (run make at the repo root)")
        return 1
    outdir = args.output or Path(tempfile.mkdtemp(prefix="usb4_compare_"))
    outdir.mkdir(parents=True, exist_ok=True)
    print(f"raw outputs: {outdir}")
    for line in bench_machine.banner(args.repo / ".libs", args.portable):
        print(line)
    if args.portable:
        print("usb4 with FI_USB4_PORTABLE=1: its CPU-specific paths off")

    wanted = with_base([s.strip() for s in (args.stacks or suite.stacks).split(",")
                        if s.strip()], args.base_provider)
    by_name = {s.name: s for s in make_stacks(args.repo, args.portable, args.base_provider)}
    stacks = [by_name[n] for n in wanted if n in by_name]
    runs: dict[str, dict[str, list[RunResult]]] = {p: {} for p in programs}
    data: dict[str, dict[str, dict[int, float]]] = {p: {} for p in programs}
    for stack in stacks:
        if stack.missing:
            print(f"skipping stack {stack.name}: {stack.missing}")
    ready = [s for s in stacks if not s.missing]

    def one(stack, prog, rep):
        res = run_once(stack, osu_dir / prog, programs[prog], rep, outdir, args.timeout)
        if res.error:
            print(f"{stack.name} {prog} run {rep}: {res.error}")
        return res

    results = interleaved(ready, programs, args.repeat, one)
    collect(results, runs, data)
    write_csv(outdir / "results.csv", results)
    print_reports(suite, [s.name for s in stacks], runs, data, args, "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
