#!/usr/bin/env python3
"""Compare usb4's udp link with Ethernet stacks between two namespace hosts.

A benchmark, not a test (root needed).  It builds two hosts joined by one
veth cable ``tb0`` (tests/hosts.py: network + UTS namespaces, MTU 65522 as
thunderbolt-net), runs the project's osu_latency and osu_bw with 2 ranks, one
per host (mpirun in the first host, tests/multihost/launch_agent.sh playing
ssh), over:

  usb4      pml cm + mtl ofi, FI_PROVIDER=usb4, FI_USB4_IFACE=tb0 (udp link)
  tcp       pml cm + mtl ofi, libfabric's tcp;ofi_rxm, FI_TCP_IFACE=tb0
  btl-tcp   pml ob1 + Open MPI's btl tcp on 10.77.0.0/24
  udp       bench/udp_pingpong.c (compiled here with gcc): raw UDP
            ping-pong with blocking recvfrom, the floor, and windowed
            streaming bandwidth with datagrams of at most mtu - 28 bytes
  udp-poll  the same ping-pong spinning on non-blocking receives (latency
            only; shown beside, no target)

takes the median of --repeat runs per size, prints side-by-side tables with
usb4 ratios, and PASS/MISS against the targets:

  usb4 8 B latency     <= 0.75 x tcp     and   <= 1.3 x udp (raw floor)
  usb4 1 MiB bandwidth >= 1.2 x tcp

--suite auth runs osu_latency and osu_bw over usb4, usb4-keyed (the same
with FI_USB4_AUTH_KEY: every datagram authenticated) and tcp, so the key's
cost is a ratio of one run (the usb4-keyed/usb4 column).

--suite onesided runs osu_put_latency and osu_get_latency (MPI_Win_create
windows, OSU's -w create) over:

  usb4-osc     osc rdma on btl ofi restricted to usb4 (two-sided on mtl ofi)
  btl-tcp-osc  Open MPI's own one-sided: osc pt2pt over btl tcp

with ratios and no targets.

It never asserts: a stack that cannot run is reported with its error line
and left out.  Raw outputs, command lines and a CSV go to --output.  The
hosts are removed on exit, also on failure or Ctrl-C.

    python3 bench/compare_hosts.py [--suite pt2pt|onesided] [--repeat 3] [--output DIR]
                                   [--stacks usb4,tcp,btl-tcp,udp]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "tests"))

import compare_local as local  # noqa: E402
from compare_local import (BW_SIZE, LAT_SIZE, RunResult, Stack, judge,  # noqa: E402
                           medians, parse_osu, run_once, write_csv)
import hosts  # noqa: E402  (tests/hosts.py)
from cprogs import gcc_build  # noqa: E402

IFACE = "tb0"
SUITES = {
    "pt2pt": local.Suite(
        {"osu_latency": ("-m 0:1048576", False),
         "osu_bw": ("-m 1:1048576", True)},
        "usb4,tcp,btl-tcp,udp,udp-poll",
        [("usb4 8 B latency <= 0.75x tcp provider", "osu_latency", LAT_SIZE, 0.75, "<=",
          "tcp"),
         ("usb4 8 B latency <= 1.3x raw UDP floor", "osu_latency", LAT_SIZE, 1.3, "<=", "udp"),
         ("usb4 1 MiB bandwidth >= 1.2x tcp provider", "osu_bw", BW_SIZE, 1.2, ">=", "tcp")]),
    # What the job key costs: usb4 with and without FI_USB4_AUTH_KEY, same run.
    "auth": local.Suite(
        {"osu_latency": ("-m 0:1048576", False),
         "osu_bw": ("-m 1:1048576", True)},
        "usb4-keyed,usb4,tcp",
        []),
    "onesided": local.Suite(
        {"osu_put_latency": ("-w create -s flush -m 1:1048576", False),
         "osu_get_latency": ("-w create -s flush -m 1:1048576", False)},
        "usb4-osc,btl-tcp-osc",
        []),
}
STACKS = ",".join(dict.fromkeys(",".join(s.stacks for s in SUITES.values()).split(",")))
# udp_pingpong's arguments per raw stack and program.  udp-poll spins on
# non-blocking receives, as the MPI stacks do: on a VM an idle vCPU's wake-up
# alone costs tens of microseconds per blocking receive.
UDP_STACKS = {"udp": {"osu_latency": [], "osu_bw": ["-b"]},
              "udp-poll": {"osu_latency": ["-P"]}}
UDP_PORT = "18515"
AUTH_KEY = "usb4bench job key"  # the usb4-keyed stack's FI_USB4_AUTH_KEY


@dataclasses.dataclass(frozen=True)
class HostStack(Stack):
    """An MPI stack launched across the cluster: launch argv, then ours."""

    launch: tuple[str, ...] = ()

    def argv(self, program: Path, args: list[str]) -> list[str]:
        return list(self.launch) + self.mpi_args + [str(program)] + args


def make_stacks(cluster: hosts.Cluster, repo: Path,
                portable: bool = False) -> list[HostStack]:
    """The MPI stacks, each with mpirun run in the first host, 1 rank per host.

    Debian's openmpi-mca-params.conf disables mtl ofi: every component is named.
    """
    launch = tuple(cluster.prefix_argv(0) + cluster.mpirun_argv(1))
    libdir = repo / ".libs"
    provider = libdir / "libusb4-fi.so"

    def ofi(name, env):
        args = ["--mca", "pml", "cm", "--mca", "mtl", "ofi",
                "--mca", "opal_common_ofi_provider_include", name]
        for key, value in env.items():
            args += ["-x", f"{key}={value}"]
        return args

    usb4 = ofi("usb4", {"FI_PROVIDER_PATH": libdir, "FI_PROVIDER": "usb4",
                        "FI_USB4_IFACE": IFACE,
                        **({"FI_USB4_PORTABLE": 1} if portable else {})})
    usb4_missing = (None if provider.exists() else
                    f"provider library {provider} not found (build it first)")
    keyed = ofi("usb4", {"FI_PROVIDER_PATH": libdir, "FI_PROVIDER": "usb4",
                         "FI_USB4_IFACE": IFACE, "FI_USB4_AUTH_KEY": AUTH_KEY,
                         **({"FI_USB4_PORTABLE": 1} if portable else {})})
    return [
        HostStack("usb4", usb4, usb4_missing, launch),
        HostStack("usb4-keyed", keyed, usb4_missing, launch),
        HostStack("usb4-osc", usb4 + local.USB4_OSC_ARGS, usb4_missing, launch),
        HostStack("btl-tcp-osc", ["--mca", "pml", "ob1", "--mca", "btl", "tcp,self",
                                  "--mca", "osc", "pt2pt"], None, launch),
        HostStack("tcp", ofi("tcp;ofi_rxm", {"FI_PROVIDER": "tcp;ofi_rxm",
                                              "FI_TCP_IFACE": IFACE}), None, launch),
        HostStack("btl-tcp", ["--mca", "pml", "ob1", "--mca", "btl", "tcp,self"], None, launch),
    ]


def build_udp_pingpong(outdir: Path) -> tuple[Path | None, str | None]:
    exe = outdir / "udp_pingpong"
    why = gcc_build(BENCH / "udp_pingpong.c", exe)
    return (None, why) if why else (exe, None)


def run_udp(cluster: hosts.Cluster, exe: Path, name: str, prog: str, repeat: int,
            outdir: Path, timeout: float) -> RunResult:
    """One raw UDP run (server in host 2, client in host 1); OSU-format rows."""
    mode = UDP_STACKS[name][prog]
    server_addr = cluster.hosts[1].addr
    client = [str(exe), "-c", server_addr, "-p", UDP_PORT,
              "-M", str(cluster.cables[0].max_datagram)] + mode
    stem = outdir / f"{name}_{prog}_{repeat}"
    stem.with_suffix(".cmd").write_text(shlex.join(client) + "\n")
    server = cluster.popen(1, [str(exe), "-s", "-B", server_addr, "-p", UDP_PORT, "-t", "30"]
                           + mode, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)  # let it bind
        if server.poll() is not None:
            return RunResult(name, prog, repeat, {},
                             "server exited: " + server.stderr.read().strip())
        try:
            proc = cluster.run(0, client, timeout=timeout)
        except subprocess.TimeoutExpired:
            return RunResult(name, prog, repeat, {}, f"timed out after {timeout:.0f} s")
    finally:
        server.kill()
        server.wait()
    stem.with_suffix(".out").write_text(proc.stdout)
    stem.with_suffix(".err").write_text(proc.stderr)
    rows = parse_osu(proc.stdout)
    if proc.returncode != 0 or not rows:
        last = (proc.stderr.strip().splitlines() or ["no result rows"])[-1]
        return RunResult(name, prog, repeat, {}, f"exit {proc.returncode}: {last}")
    return RunResult(name, prog, repeat, rows, None)


def error_line(res: RunResult, outdir: Path) -> str:
    """The first telling line of a failed run's stderr, for the summary."""
    err = outdir / f"{res.stack}_{res.program}_{res.repeat}.err"
    try:
        lines = [line.strip() for line in err.read_text().splitlines() if line.strip()]
    except OSError:
        return ""
    lines = [line for line in lines
             if "help_aggregate" not in line and not line.startswith("---")]
    for key in ("cannot", "FAIL", "failed", "error", "Error", "abort", "not"):
        for line in lines:
            if key in line:
                return line[:200]
    return lines[0][:200] if lines else ""


def table(title, names, data, refs) -> str:
    return local.format_table(title, "", names, data, refs)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="runs per stack and program (default 3)")
    p.add_argument("--portable", action="store_true",
                   help="usb4 with its CPU-specific paths off (FI_USB4_PORTABLE=1)")
    p.add_argument("--output", type=Path, default=None, help="folder for raw outputs")
    p.add_argument("--repo", type=Path, default=REPO, help="repository root (.libs, osu_bench)")
    p.add_argument("--osu-dir", type=Path, default=None, help="default <repo>/osu_bench")
    p.add_argument("--suite", choices=sorted(SUITES), default="pt2pt",
                   help="which programs and stacks (default pt2pt)")
    p.add_argument("--stacks", default=None,
                   help="subset of the suite's stacks (all: %s)" % STACKS)
    p.add_argument("--args", action="append", default=[], metavar="PROG=ARGS",
                   help="arguments of one program, e.g. 'osu_latency=-m 0:4096'")
    p.add_argument("--mtu", type=int, default=hosts.DEFAULT_MTU,
                   help="MTU of the cable (default %(default)s, thunderbolt-net's)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds allowed to each run (default 300)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def run_all(cluster, stacks, wanted, programs, udp_exe, udp_missing, args, osu_dir, outdir):
    """Every stack and program --repeat times: (all RunResults, medians by program)."""
    results: list[RunResult] = []
    data: dict[str, dict[str, dict[int, float]]] = {p: {} for p in programs}
    for name in wanted:
        stack = next((s for s in stacks if s.name == name), None)
        missing = stack.missing if stack else udp_missing
        if missing:
            print(f"skipping {name}: {missing}")
            continue
        for prog, prog_args in programs.items():
            if not stack and prog not in UDP_STACKS[name]:
                continue
            runs = []
            for rep in range(args.repeat):
                if stack:
                    res = run_once(stack, osu_dir / prog, prog_args, rep, outdir, args.timeout)
                else:
                    res = run_udp(cluster, udp_exe, name, prog, rep, outdir, args.timeout)
                if res.error:
                    cluster.kill_all()  # daemons and ranks a failed mpirun left in the hosts
                    print(f"{name} {prog} run {rep}: {res.error}")
                    line = error_line(res, outdir)
                    if line:
                        print(f"    {line}")
                runs.append(res)
            good = [r for r in runs if not r.error]
            print(f"{name} {prog}: {len(good)}/{len(runs)} runs ok", flush=True)
            results.extend(runs)
            if good:
                data[prog][name] = medians(good)
    return results, data


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("compare_hosts needs root (network namespaces)")
        return 1
    osu_dir = args.osu_dir or args.repo / "osu_bench"
    suite = SUITES[args.suite]
    programs = {p: shlex.split(a) for p, (a, _) in suite.programs.items()}
    for item in args.args:
        prog, _, prog_args = item.partition("=")
        if prog not in programs:
            print(f"--args names {prog!r}, not one of {', '.join(programs)}")
            return 1
        programs[prog] = shlex.split(prog_args)
    missing = [p for p in programs if not os.access(osu_dir / p, os.X_OK)]
    if missing:
        print(f"osu_bench programs not built in {osu_dir}: {', '.join(missing)}")
        return 1
    wanted = [s.strip() for s in (args.stacks or suite.stacks).split(",") if s.strip()]
    unknown = set(wanted) - set(STACKS.split(","))
    if unknown:
        print(f"unknown stacks: {', '.join(sorted(unknown))} (choose from {STACKS})")
        return 1
    outdir = args.output or Path(tempfile.mkdtemp(prefix="usb4_compare_hosts_"))
    outdir.mkdir(parents=True, exist_ok=True)
    print(f"raw outputs: {outdir}")
    if args.portable:
        print("usb4 with FI_USB4_PORTABLE=1: its CPU-specific paths off")
    udp_exe, udp_missing = (build_udp_pingpong(outdir) if set(wanted) & set(UDP_STACKS)
                            else (None, None))

    with hosts.Cluster(2, mtu=args.mtu) as cluster:
        os.environ[hosts.CLUSTER_ENV] = cluster.prefix  # for the launch agent
        a, b = cluster.hosts
        print(f"hosts: {a.name} ({a.addr}) --{IFACE}, mtu {args.mtu}-- {b.name} ({b.addr})")
        stacks = make_stacks(cluster, args.repo, args.portable)
        results, data = run_all(cluster, stacks, wanted, programs, udp_exe, udp_missing,
                                args, osu_dir, outdir)
    write_csv(outdir / "results.csv", results)

    names = [n for n in wanted if any(n in d for d in data.values())] or wanted
    refs = [n for n in names if not n.startswith("usb4")]
    if names[0] == "usb4-keyed" and "usb4" in names:
        refs.append("usb4")  # the key's cost: usb4-keyed / usb4
    for prog, (_, higher_better) in suite.programs.items():
        unit = "MB/s" if higher_better else "us"
        print()
        print(table(f"{prog}, median of {args.repeat} ({unit}), 1 rank per host",
                    names, data[prog], refs))
    print()
    print("Targets:")
    for line in judge(data, suite.targets) or ["(none in this suite)"]:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
