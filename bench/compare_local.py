#!/usr/bin/env python3
"""Compare usb4 with vader and libfabric tcp on this host, 2 ranks.

A benchmark, not a test: it runs the project's own OSU-method programs
(osu_bench/) under several MPI stacks, takes the median of --repeat runs per
message size, prints one side-by-side table per program with usb4 ratios, and
says PASS or MISS against the targets of the issues.

  --suite pt2pt (default): osu_latency and osu_bw over usb4 (pml cm + mtl ofi),
      vader (pml ob1) and libfabric tcp (pml cm + mtl ofi):
          usb4 8-byte latency   <= 1.5 x vader   and   <= 0.1 x tcp
          usb4 1 MiB bandwidth  >= 0.8 x vader
  --suite onesided: put/get latency, put bandwidth and accumulate latency with
      MPI_Win_create windows (OSU's -w create) over osc rdma on btl ofi
      restricted to usb4 (no vader, so usb4 carries every byte) and over osc
      rdma on vader:
          usb4 8-byte put and get latency  <= 2 x vader
          usb4 1 MiB put bandwidth         >= 0.8 x vader

It never asserts; a stack that is missing or fails is reported and skipped.
Raw stdout/stderr of every run, the command lines and a CSV of all parsed
rows are kept in --output (default: a new temporary directory).

    python3 bench/compare_local.py [--suite pt2pt|onesided] [--repeat 3] [--output DIR]
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

REPO = Path(__file__).resolve().parent.parent

MPIRUN = ["mpirun", "--allow-run-as-root", "-np", "2"]

LAT_SIZE = 8
BW_SIZE = 1 << 20


@dataclasses.dataclass(frozen=True)
class Suite:
    """Programs (name -> default arguments, and whether higher is better),
    the stacks they run on, and the targets: (description, program, size,
    limit of the usb4 / reference ratio, comparison, reference stack)."""

    programs: dict[str, tuple[str, bool]]
    stacks: str
    targets: list[tuple[str, str, int, float, str, str]]


SUITES = {
    "pt2pt": Suite(
        {"osu_latency": ("-m 0:1048576", False),
         "osu_bw": ("-m 1:1048576", True)},
        "usb4,vader,tcp",
        [("usb4 8 B latency <= 1.5x vader", "osu_latency", LAT_SIZE, 1.5,
          "<=", "vader"),
         ("usb4 8 B latency <= 0.1x tcp", "osu_latency", LAT_SIZE, 0.1,
          "<=", "tcp"),
         ("usb4 1 MiB bandwidth >= 0.8x vader", "osu_bw", BW_SIZE, 0.8,
          ">=", "vader")]),
    "onesided": Suite(
        {"osu_put_latency": ("-w create -s flush -m 1:1048576", False),
         "osu_get_latency": ("-w create -s flush -m 1:1048576", False),
         "osu_put_bw": ("-w create -s flush -m 1:1048576", True),
         "osu_acc_latency": ("-w create -s fence -m 4:65536", False)},
        "usb4-osc,vader-osc",
        [("usb4 8 B put latency <= 2x vader", "osu_put_latency", LAT_SIZE,
          2.0, "<=", "vader-osc"),
         ("usb4 8 B get latency <= 2x vader", "osu_get_latency", LAT_SIZE,
          2.0, "<=", "vader-osc"),
         ("usb4 1 MiB put bandwidth >= 0.8x vader", "osu_put_bw", BW_SIZE,
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


# One-sided: osc rdma over btl ofi restricted to usb4.  vader is left out
# of the btl list, so no one-sided byte can take Open MPI's shared memory.
USB4_OSC_ARGS = ["--mca", "osc", "rdma", "--mca", "btl", "ofi,self",
                 "--mca", "btl_ofi_provider_include", "usb4"]


def make_stacks(repo: Path, portable: bool = False) -> list[Stack]:
    """The three stacks. Debian's openmpi-mca-params.conf disables mtl ofi and
    btl ofi, so every component is named explicitly.  portable: the
    provider's CPU-specific paths off (FI_USB4_PORTABLE=1)."""
    libdir = repo / ".libs"
    provider = libdir / "libusb4-fi.so"
    usb4 = Stack(
        "usb4",
        ["--mca", "pml", "cm", "--mca", "mtl", "ofi",
         "--mca", "opal_common_ofi_provider_include", "usb4",
         "-x", f"FI_PROVIDER_PATH={libdir}", "-x", "FI_PROVIDER=usb4",
         # mtl ofi asks FI_REMOTE_COMM: refused without an interface to
         # other hosts; loopback stands in (the ranks still meet over shm).
         "-x", "FI_USB4_IFACE=lo"]
        + (["-x", "FI_USB4_PORTABLE=1"] if portable else []),
        None if provider.exists() else
        f"provider library {provider} not found (build it with "
        "./autogen.sh && ./configure && make at the repo root)",
    )
    vader = Stack("vader", ["--mca", "pml", "ob1", "--mca", "btl", "vader,self"])
    # libfabric 1.17's tcp provider offers only FI_EP_MSG; mtl ofi needs
    # FI_EP_RDM, which comes from the ofi_rxm utility provider layered on it,
    # named "tcp;ofi_rxm". mtl ofi's default exclude list holds "tcp", so
    # without an include list pml cm cannot be selected at all ("PML cm
    # cannot be selected"); the include list replaces the exclude list.
    # FI_PROVIDER keeps libfabric from offering anything else, and
    # FI_TCP_IFACE=lo keeps the traffic on loopback. Checked on this host:
    # include "tcp" + FI_PROVIDER=tcp also runs (the same tcp;ofi_rxm); no
    # include list + FI_PROVIDER=tcp does not.
    tcp = Stack(
        "tcp",
        ["--mca", "pml", "cm", "--mca", "mtl", "ofi",
         "--mca", "opal_common_ofi_provider_include", "tcp;ofi_rxm",
         "-x", "FI_PROVIDER=tcp;ofi_rxm", "-x", "FI_TCP_IFACE=lo"],
    )
    usb4_osc = Stack("usb4-osc", usb4.mpi_args + USB4_OSC_ARGS, usb4.missing)
    vader_osc = Stack("vader-osc", vader.mpi_args + ["--mca", "osc", "rdma"])
    return [usb4, vader, tcp, usb4_osc, vader_osc]


@dataclasses.dataclass
class RunResult:
    stack: str
    program: str
    repeat: int
    rows: dict[int, float]  # message size -> latency (us) or bandwidth (MB/s)
    error: str | None  # why the run gave no usable rows, or None


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
             outdir: Path, timeout: float) -> RunResult:
    """Run one benchmark once, keep its raw output, return its rows."""
    argv = stack.argv(program, args)
    stem = outdir / f"{stack.name}_{program.name}_{repeat}"
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
    return RunResult(stack.name, program.name, repeat, rows if not error else {},
                     error)


def medians(results: list[RunResult]) -> dict[int, float]:
    """Median per size over the runs that produced rows."""
    by_size: dict[int, list[float]] = {}
    for res in results:
        for size, value in res.rows.items():
            by_size.setdefault(size, []).append(value)
    return {size: statistics.median(v) for size, v in sorted(by_size.items())}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(value: float | None, width: int = 12, prec: int = 2) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{prec}f}"


def format_table(title: str, unit: str, stacks: list[str],
                 data: dict[str, dict[int, float]], ratios: list[str]) -> str:
    """Side-by-side table of medians, with ratios of the first usb4 stack
    to each reference."""
    sizes = sorted({s for rows in data.values() for s in rows})
    head = f"{'Size':<10}" + "".join(f"{n + ' ' + unit:>18}" for n in stacks)
    head += "".join(f"{usb4_name(stacks) + '/' + r:>16}" for r in ratios)
    lines = [title, head]
    for size in sizes:
        line = f"{size:<10}"
        line += "".join(fmt(data.get(n, {}).get(size), 18) for n in stacks)
        usb4 = data.get(usb4_name(stacks), {}).get(size)
        line += "".join(fmt(ratio(usb4, data.get(r, {}).get(size)), 16, 3)
                        for r in ratios)
        lines.append(line)
    if not sizes:
        lines.append("(no results)")
    return "\n".join(lines)


def judge(data: dict[str, dict[str, dict[int, float]]], targets) -> list[str]:
    """One PASS/MISS line per target of the issue."""
    lines = []
    for text, prog, size, limit, op, ref in targets:
        usb4 = data.get(prog, {}).get(usb4_name(data.get(prog, {})), {}).get(size)
        other = data.get(prog, {}).get(ref, {}).get(size)
        r = ratio(usb4, other)
        if r is None:
            missing = "usb4" if usb4 is None else ref
            lines.append(f"n/a   {text}: no {missing} result at {size} B")
            continue
        ok = r <= limit if op == "<=" else r >= limit
        lines.append(f"{'PASS' if ok else 'MISS'}  {text}: usb4 {usb4:.2f}, "
                     f"{ref} {other:.2f}, ratio {r:.3f}")
    return lines


def usb4_name(names) -> str:
    """The usb4 stack of a suite: 'usb4' or 'usb4-osc'."""
    return next((n for n in names if n.startswith("usb4")), "usb4")


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
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds allowed to each mpirun (default 300)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    osu_dir = args.osu_dir or args.repo / "osu_bench"
    suite = SUITES[args.suite]
    programs = {p: shlex.split(a) for p, (a, _) in suite.programs.items()}
    for item in args.args:
        prog, _, prog_args = item.partition("=")
        if prog not in programs:
            print(f"--args names {prog!r}, not a program of this suite")
            return 1
        programs[prog] = shlex.split(prog_args)
    missing = [p for p in programs if not os.access(osu_dir / p, os.X_OK)]
    if missing:
        print(f"osu_bench programs not built in {osu_dir}: "
              f"{', '.join(missing)} (run make at the repo root)")
        return 1
    outdir = args.output or Path(tempfile.mkdtemp(prefix="usb4_compare_"))
    outdir.mkdir(parents=True, exist_ok=True)
    print(f"raw outputs: {outdir}")
    if args.portable:
        print("usb4 with FI_USB4_PORTABLE=1: its CPU-specific paths off")

    wanted = [s.strip() for s in (args.stacks or suite.stacks).split(",")
              if s.strip()]
    stacks = [s for s in make_stacks(args.repo, args.portable) if s.name in wanted]
    results: list[RunResult] = []
    data: dict[str, dict[str, dict[int, float]]] = {p: {} for p in programs}
    for stack in stacks:
        if stack.missing:
            print(f"skipping stack {stack.name}: {stack.missing}")
            continue
        for prog, prog_args in programs.items():
            runs = []
            for rep in range(args.repeat):
                res = run_once(stack, osu_dir / prog, prog_args, rep, outdir,
                               args.timeout)
                runs.append(res)
                if res.error:
                    print(f"{stack.name} {prog} run {rep}: {res.error}")
            results.extend(runs)
            good = [r for r in runs if not r.error]
            print(f"{stack.name} {prog}: {len(good)}/{len(runs)} runs ok")
            if good:
                data[prog][stack.name] = medians(good)
    write_csv(outdir / "results.csv", results)

    names = [s.name for s in stacks]
    refs = [n for n in names if not n.startswith("usb4")]
    for prog, (_, higher_better) in suite.programs.items():
        unit = "MB/s" if higher_better else "us"
        # Bandwidth is compared with shared memory only: tcp is no target.
        prog_refs = [r for r in refs if "vader" in r] if higher_better else refs
        print()
        print(format_table(f"{prog}, median of {args.repeat} ({unit})", unit,
                           names, data[prog], prog_refs))
    print()
    print("Targets:")
    for line in judge(data, suite.targets):
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
