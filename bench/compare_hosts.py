#!/usr/bin/env python3
"""Compare usb4's udp link with Ethernet stacks between two namespace hosts.

A benchmark, not a test (root needed).  It builds two hosts joined by one
veth cable ``tb0`` (usb4fabric/nshosts.py: network + UTS namespaces, MTU 65522 as
thunderbolt-net), runs the project's osu_latency and osu_bw with 2 ranks, one
per host (mpirun in the first host, usb4fabric/launch_agent.sh playing
ssh), over:

  usb4      pml cm + mtl ofi, FI_PROVIDER=usb4, FI_USB4_IFACE=tb0 (udp link)
  tcp       pml cm + mtl ofi, libfabric's tcp;ofi_rxm, FI_TCP_IFACE=tb0
  btl-tcp   pml ob1 + Open MPI's btl tcp on 10.77.0.0/24
  udp       bench/udp_pingpong.c (compiled here with gcc): raw UDP
            ping-pong with blocking recvfrom, the floor, and windowed
            streaming bandwidth with datagrams of mtu - 28 bytes: the
            datagram_max usb4's udp link takes from the same cable
            (usb4_udp_socket.c), printed above the tables
  udp-poll  the same ping-pong spinning on non-blocking receives

takes the median of --repeat runs per size, prints side-by-side tables with
the ratio of usb4 to every other stack at every size, and PASS/MISS against
the targets of issue 13 (a range is decided by its worst size, named):

  usb4 8 B latency                    <= 1.25 x udp-poll (raw floor)
  usb4 latency at every 32 KiB-4 MiB  <= 1.0 x tcp
  usb4 1 MiB bandwidth                >= 1.2 x tcp   and  >= 1.0 x udp
  (osu_bw runs with -C: CPU s per GB of both ranks beside MB/s)

--suite auth runs osu_latency and osu_bw over usb4, usb4-keyed (the same
with FI_USB4_AUTH_KEY: every datagram authenticated) and tcp, so the key's
cost is a ratio of one run (the usb4-keyed/usb4 column).

--suite onesided runs osu_put_latency, osu_get_latency, osu_acc_latency,
osu_put_bw and osu_get_bw (MPI_Win_create windows, OSU's -w create) over:

  usb4-osc     osc rdma on btl ofi restricted to usb4 (two-sided on mtl ofi)
  btl-tcp-osc  Open MPI's own one-sided: osc pt2pt over btl tcp

  usb4 put and get latency at 8 B               <= 1.0 x btl-tcp-osc
  usb4 accumulate latency at 8 B, every 8-128 B  <= 2 x btl-tcp-osc
  usb4 put and get bandwidth at 1 MiB           >= 1.0 x btl-tcp-osc

and the raw udp stream beside osu_put_bw and osu_get_bw (the same run of
udp_pingpong -b for both): one-sided data crosses the cable as the same
datagrams as osu_bw's, so their 1 MiB bandwidth is also judged >= 1.0 x
udp, the ceiling of any protocol on UDP sockets of that datagram size.

--suite shaped runs osu_bw around 1 MiB over two cables shaped with tbf on
both ends (bench_shaped.py): 10 Gbit/s at MTU 65522 (one NHI ring's
ceiling) and 10 Gbit/s at MTU 4084 (thunderbolt-net's payload per DMA
frame), over usb4, tcp, btl-tcp and the raw udp stream (datagrams of the
cable's size), and per cable prints MB/s, the share of the shaped rate and
CPU s per GB; targets at 1 MiB: usb4 >= 95% of the shaped rate, CPU s/GB
<= tcp's.  The raw stream also runs unshaped, and the shaper check says how
close udp and tcp come to the shaped rate.

--syscall-clock plays a VM whose clocksource has no vDSO mode (the issue's
reviewer's): bench/clock_syscall.c, built here, is preloaded into every
stack's ranks and both raw UDP programs alike, so each precise clock read is
a system call while the coarse clocks stay in the vDSO.

--base-provider DIR adds usb4-base (and usb4-osc-base, usb4-keyed-base):
the same stack with FI_PROVIDER_PATH=DIR in the same run, a usb4/usb4-base
column and the sizes where usb4 is worse than it beyond the repeats' spread.

It never asserts: a stack that cannot run is reported with its error line
and left out.  Raw outputs, command lines and a CSV go to --output.  The
hosts are removed on exit, also on failure or Ctrl-C.

    python3 bench/compare_hosts.py [--suite pt2pt|onesided|auth|shaped] [--repeat 3]
                                   [--output DIR] [--stacks usb4,tcp,btl-tcp,udp]
                                   [--portable] [--syscall-clock] [--base-provider DIR]
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
sys.path.insert(0, str(REPO / "python"))  # usb4fabric (nshosts)

import bench_machine  # noqa: E402
import bench_shaped  # noqa: E402
import compare_local as local  # noqa: E402
from bench_judge import Target, at  # noqa: E402
from compare_local import BASE, BW_SIZE, LAT_SIZE, RunResult, Stack, parse_osu, run_once, write_csv  # noqa: E402,F401
from usb4fabric import mpi_select, nshosts  # noqa: E402
from usb4fabric.cprogs import gcc_build  # noqa: E402

IFACE = "tb0"
KIB, MIB = 1 << 10, 1 << 20
SUITES = {
    "pt2pt": local.Suite(
        {"osu_latency": ("-m 0:4194304", False),
         "osu_bw": ("-m 0:4194304", True)},
        "usb4,tcp,btl-tcp,udp,udp-poll",
        [at("usb4 8 B latency <= 1.25x raw UDP floor (polling)", "osu_latency", LAT_SIZE,
            1.25, "<=", "udp-poll"),
         Target("usb4 latency at every 32 KiB-4 MiB <= 1.0x tcp provider", "osu_latency",
                32 * KIB, 4 * MIB, 1.0, "<=", "tcp"),
         at("usb4 1 MiB bandwidth >= 1.2x tcp provider", "osu_bw", BW_SIZE, 1.2, ">=", "tcp"),
         at("usb4 1 MiB bandwidth >= 1.0x raw UDP stream (same datagram size)", "osu_bw",
            BW_SIZE, 1.0, ">=", "udp")]),
    # What the job key costs: usb4 with and without FI_USB4_AUTH_KEY, same run.
    "auth": local.Suite(
        {"osu_latency": ("-m 0:1048576", False),
         "osu_bw": ("-m 1:1048576", True)},
        "usb4-keyed,usb4,tcp",
        []),
    "onesided": local.Suite(
        {"osu_put_latency": ("-w create -s flush -m 1:1048576", False),
         "osu_get_latency": ("-w create -s flush -m 1:1048576", False),
         "osu_acc_latency": ("-w create -s fence -m 4:65536", False),
         "osu_put_bw": ("-w create -m 1:1048576", True),
         "osu_get_bw": ("-w create -m 1:1048576", True)},
        "usb4-osc,btl-tcp-osc,udp",
        [at("usb4 8 B put latency <= 1.0x btl-tcp-osc", "osu_put_latency", LAT_SIZE, 1.0,
            "<=", "btl-tcp-osc"),
         at("usb4 8 B get latency <= 1.0x btl-tcp-osc", "osu_get_latency", LAT_SIZE, 1.0,
            "<=", "btl-tcp-osc"),
         at("usb4 8 B accumulate latency <= 2x btl-tcp-osc", "osu_acc_latency", LAT_SIZE,
            2.0, "<=", "btl-tcp-osc"),
         Target("usb4 accumulate latency at every 8-128 B <= 2x btl-tcp-osc",
                "osu_acc_latency", 8, 128, 2.0, "<=", "btl-tcp-osc"),
         at("usb4 1 MiB put bandwidth >= 1.0x btl-tcp-osc", "osu_put_bw", BW_SIZE, 1.0,
            ">=", "btl-tcp-osc"),
         at("usb4 1 MiB get bandwidth >= 1.0x btl-tcp-osc", "osu_get_bw", BW_SIZE, 1.0,
            ">=", "btl-tcp-osc"),
         at("usb4 1 MiB put bandwidth >= 1.0x raw UDP stream (same datagram size)",
            "osu_put_bw", BW_SIZE, 1.0, ">=", "udp"),
         at("usb4 1 MiB get bandwidth >= 1.0x raw UDP stream (same datagram size)",
            "osu_get_bw", BW_SIZE, 1.0, ">=", "udp")]),
    # Targets per cable: bench_shaped.targets().
    "shaped": local.Suite(
        {"osu_bw": ("-m 262144:2097152", True)},
        "usb4,tcp,btl-tcp,udp",
        []),
}
STACKS = ",".join(dict.fromkeys(",".join(s.stacks for s in SUITES.values()).split(",")))
# udp_pingpong's arguments per raw stack and program.  udp-poll spins on
# non-blocking receives, as the MPI stacks do: on a VM an idle vCPU's wake-up
# alone costs tens of microseconds per blocking receive.  One-sided bandwidth
# moves one way in datagrams of the cable's size, as osu_bw: the same stream.
UDP_STREAM = ["-b"]
UDP_STACKS = {"udp": {"osu_latency": [], "osu_bw": UDP_STREAM,
                      "osu_put_bw": UDP_STREAM, "osu_get_bw": UDP_STREAM},
              "udp-poll": {"osu_latency": ["-P"]}}
UDP_PORT = "18515"
AUTH_KEY = "usb4bench job key"  # the usb4-keyed stack's FI_USB4_AUTH_KEY


@dataclasses.dataclass(frozen=True)
class HostStack(Stack):
    """An MPI stack launched across the cluster: launch argv, then ours."""

    launch: tuple[str, ...] = ()

    def argv(self, program: Path, args: list[str]) -> list[str]:
        return list(self.launch) + self.mpi_args + [str(program)] + args


def ofi_args(name: str, env: dict) -> list[str]:
    """pml cm + mtl ofi over provider name, with env exported to the ranks."""
    return mpi_select.ofi_mtl(name) + mpi_select.exports(env)


def usb4_host_stacks(launch: tuple, libdir: Path, portable: bool,
                     suffix: str = "") -> list[HostStack]:
    """usb4, usb4-keyed and usb4-osc with the provider of libdir; suffix BASE
    names an older build's (usb4-base ...)."""
    env = {**mpi_select.usb4_env(libdir, IFACE), **({"FI_USB4_PORTABLE": 1} if portable else {})}
    usb4 = ofi_args("usb4", env)
    keyed = ofi_args("usb4", {**env, "FI_USB4_AUTH_KEY": AUTH_KEY})
    missing = local.provider_missing(libdir)
    return [HostStack("usb4" + suffix, usb4, missing, launch),
            HostStack("usb4-keyed" + suffix, keyed, missing, launch),
            HostStack("usb4-osc" + suffix, usb4 + local.USB4_OSC_ARGS, missing, launch)]


def make_stacks(cluster: nshosts.Cluster, repo: Path, portable: bool = False,
                base_dir: Path | None = None) -> list[HostStack]:
    """The MPI stacks, each with mpirun run in the first host, 1 rank per host."""
    launch = tuple(cluster.prefix_argv(0) + cluster.mpirun_argv(1))
    stacks = usb4_host_stacks(launch, repo / ".libs", portable)
    if base_dir is not None:
        stacks += usb4_host_stacks(launch, base_dir, portable, BASE)
    return stacks + [
        HostStack("btl-tcp-osc", mpi_select.btl_tcp() + mpi_select.mca("osc", "pt2pt"),
                  None, launch),
        HostStack("tcp", ofi_args(mpi_select.TCP_RXM, mpi_select.tcp_env(IFACE)), None, launch),
        HostStack("btl-tcp", mpi_select.btl_tcp(), None, launch),
    ]


def build_udp_pingpong(outdir: Path) -> tuple[Path | None, str | None]:
    exe = outdir / "udp_pingpong"
    why = gcc_build(BENCH / "udp_pingpong.c", exe)
    return (None, why) if why else (exe, None)


def build_clock_syscall(outdir: Path) -> tuple[Path | None, str | None]:
    """bench/clock_syscall.c as a shared object to preload: (path, None) or
    (None, why not)."""
    so = outdir / "clock_syscall.so"
    argv = ["gcc", "-O2", "-shared", "-fPIC", "-o", str(so), str(BENCH / "clock_syscall.c"),
            "-ldl"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{shlex.join(argv)}: {exc}"
    return (so, None) if proc.returncode == 0 else (None, f"{shlex.join(argv)}\n{proc.stderr}")


def preloaded(stacks: list[HostStack], preload: Path | None) -> list[HostStack]:
    """Every stack with preload in its ranks' LD_PRELOAD (mpirun -x), or as
    they were when preload is None."""
    if preload is None:
        return stacks
    return [dataclasses.replace(s, mpi_args=s.mpi_args + ["-x", f"LD_PRELOAD={preload}"])
            for s in stacks]


def preload_argv(argv: list[str], preload: Path | None) -> list[str]:
    """A raw program's argv run with preload in LD_PRELOAD (or as it is)."""
    return ["env", f"LD_PRELOAD={preload}"] + argv if preload is not None else argv


def size_range(prog_args: list[str]) -> tuple[int, int | None]:
    """(MIN, MAX) of an OSU '-m [MIN:]MAX' argument: (0, None) if none."""
    for flag, value in zip(prog_args, prog_args[1:]):
        if flag == "-m":
            low, _, high = value.rpartition(":")
            try:
                return int(low or 0), int(high) if high else None
            except ValueError:
                return 0, None
    return 0, None


def max_size(prog_args: list[str]) -> int | None:
    """The largest size of an OSU '-m [MIN:]MAX' argument, or None."""
    return size_range(prog_args)[1]


def in_range(rows: dict[int, float], prog_args: list[str]) -> dict[int, float]:
    """The raw UDP rows within the MPI program's sizes, so tables line up."""
    low, high = size_range(prog_args)
    return {s: v for s, v in rows.items() if s >= low and (high is None or s <= high)}


def udp_argv(exe: Path, name: str, prog: str, server_addr: str, dgram: int,
             prog_args: list[str], extra: tuple = ()) -> list[str]:
    """The raw UDP client for one stack and program: datagrams of dgram
    bytes, and for a stream the bandwidth program's largest size."""
    argv = [str(exe), "-c", server_addr, "-p", UDP_PORT, "-M", str(dgram)]
    mode = UDP_STACKS[name][prog]
    argv += mode + list(extra)
    top = max_size(prog_args)
    if mode == UDP_STREAM and top:
        argv += ["-m", str(max(top, 8))]
    return argv


def run_udp(cluster: nshosts.Cluster, exe: Path, name: str, prog: str, repeat: int,
            outdir: Path, timeout: float, prog_args: list[str] = (),
            extra: tuple = (), tag: str = "", preload: Path | None = None) -> RunResult:
    """One raw UDP run (server in host 2, client in host 1); OSU-format rows."""
    mode = UDP_STACKS[name][prog]
    server_addr = cluster.hosts[1].addr
    client = udp_argv(exe, name, prog, server_addr, cluster.cables[0].max_datagram,
                      list(prog_args), extra)
    client = preload_argv(client, preload)
    stem = outdir / f"{name}{tag}_{prog}_{repeat}"
    stem.with_suffix(".cmd").write_text(shlex.join(client) + "\n")
    server_argv = [str(exe), "-s", "-B", server_addr, "-p", UDP_PORT, "-t", "30"] + mode
    server = cluster.popen(1, preload_argv(server_argv, preload), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
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
    rows = in_range(parse_osu(proc.stdout), list(prog_args))
    if proc.returncode != 0 or not rows:
        last = (proc.stderr.strip().splitlines() or ["no result rows"])[-1]
        return RunResult(name, prog, repeat, {}, f"exit {proc.returncode}: {last}")
    return RunResult(name, prog, repeat, rows, None)


def error_line(res: RunResult, outdir: Path, tag: str = "") -> str:
    """The first telling line of a failed run's stderr, for the summary."""
    err = outdir / f"{res.stack}{tag}_{res.program}_{res.repeat}.err"
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
    p.add_argument("--syscall-clock", action="store_true",
                   help="every stack and the raw UDP programs with precise clock reads made "
                        "system calls (bench/clock_syscall.c preloaded): a VM without a "
                        "vDSO clocksource")
    p.add_argument("--output", type=Path, default=None, help="folder for raw outputs")
    p.add_argument("--repo", type=Path, default=REPO, help="repository root (.libs, osu_bench)")
    p.add_argument("--osu-dir", type=Path, default=None, help="default <repo>/osu_bench")
    p.add_argument("--suite", choices=sorted(SUITES), default="pt2pt",
                   help="which programs and stacks (default pt2pt)")
    p.add_argument("--stacks", default=None,
                   help="subset of the suite's stacks (all: %s)" % STACKS)
    p.add_argument("--args", action="append", default=[], metavar="PROG=ARGS",
                   help="arguments of one program, e.g. 'osu_latency=-m 0:4096'")
    p.add_argument("--mtu", type=int, default=nshosts.DEFAULT_MTU,
                   help="MTU of the cable (default %(default)s, thunderbolt-net's; "
                        "the shaped suite sets its own)")
    p.add_argument("--base-provider", type=Path, default=None, metavar="DIR",
                   help="folder with an older libusb4-fi.so: adds usb4-base in the same run")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds allowed to each run (default 300)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.base_provider is not None:
        args.base_provider = args.base_provider.resolve()
    return args


def run_all(cluster, stacks, wanted, programs, udp_exe, udp_missing, args, osu_dir, outdir,
            tag="", udp_extra=()):
    """Every stack and program --repeat times, repeat by repeat
    (compare_local.interleaved): (all RunResults, the good runs by program
    and stack, medians by program and stack)."""
    runs: dict[str, dict[str, list[RunResult]]] = {p: {} for p in programs}
    data: dict[str, dict[str, dict[int, float]]] = {p: {} for p in programs}
    ready = []
    for name in wanted:
        stack = next((s for s in stacks if s.name == name), None)
        missing = stack.missing if stack else udp_missing
        if missing:
            print(f"skipping {name}: {missing}")
        else:
            ready.append((name, stack))
    progs = {name: [p for p in programs if stack or p in UDP_STACKS[name]]
             for name, stack in ready}

    def one(entry, prog, rep):
        name, stack = entry
        if prog not in progs[name]:
            return None
        if stack:
            res = run_once(stack, osu_dir / prog, programs[prog], rep, outdir, args.timeout,
                           tag)
        else:
            res = run_udp(cluster, udp_exe, name, prog, rep, outdir, args.timeout,
                          programs[prog], udp_extra, tag, getattr(args, "preload", None))
        if res.error:
            cluster.kill_all()  # daemons and ranks a failed mpirun left in the hosts
            print(f"{name} {prog} run {rep}: {res.error}")
            line = error_line(res, outdir, tag)
            if line:
                print(f"    {line}")
        return res

    results = [r for r in local.interleaved(ready, programs, args.repeat, one) if r]
    local.collect(results, runs, data)
    return results, runs, data


def check_stacks(wanted: list[str]) -> str | None:
    known = set(STACKS.split(",")) | {n + BASE for n in STACKS.split(",")
                                      if n.startswith("usb4")}
    unknown = set(wanted) - known
    if unknown:
        return f"unknown stacks: {', '.join(sorted(unknown))} (choose from {STACKS})"
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("compare_hosts needs root (network namespaces)")
        return 1
    osu_dir = args.osu_dir or args.repo / "osu_bench"
    suite = SUITES[args.suite]
    programs = local.program_args(suite, args.args)
    if isinstance(programs, str):
        print(programs)
        return 1
    missing = [p for p in programs if not os.access(osu_dir / p, os.X_OK)]
    if missing:
        print(f"osu_bench programs not built in {osu_dir}: {', '.join(missing)}")
        return 1
    wanted = local.with_base([s.strip() for s in (args.stacks or suite.stacks).split(",")
                              if s.strip()], args.base_provider)
    why = check_stacks(wanted)
    if why:
        print(why)
        return 1
    outdir = args.output or Path(tempfile.mkdtemp(prefix="usb4_compare_hosts_"))
    outdir.mkdir(parents=True, exist_ok=True)
    print(f"raw outputs: {outdir}")
    for line in bench_machine.banner(args.repo / ".libs", args.portable):
        print(line)
    if args.portable:
        print("usb4 with FI_USB4_PORTABLE=1: its CPU-specific paths off")
    udp_exe, udp_missing = (build_udp_pingpong(outdir) if set(wanted) & set(UDP_STACKS)
                            else (None, None))
    args.preload = None
    if args.syscall_clock:
        if args.suite == "shaped":
            print("--syscall-clock: not with the shaped suite")
            return 1
        args.preload, why = build_clock_syscall(outdir)
        if why:
            print(f"--syscall-clock: {why}")
            return 1
        print(f"syscall clock: {args.preload} preloaded into every stack's ranks and the raw "
              "UDP programs: precise clock reads are system calls, coarse ones vDSO")
    if args.suite == "shaped":
        return bench_shaped.run(args, suite, wanted, programs, udp_exe, udp_missing,
                                osu_dir, outdir)

    with nshosts.Cluster(2, mtu=args.mtu) as cluster:
        os.environ[nshosts.CLUSTER_ENV] = cluster.prefix  # for the launch agent
        a, b = cluster.hosts
        print(f"hosts: {a.name} ({a.addr}) --{IFACE}, mtu {args.mtu}-- {b.name} ({b.addr})")
        if set(wanted) & set(UDP_STACKS):
            print(f"raw udp: datagrams of {cluster.cables[0].max_datagram} B (mtu - 28), "
                  "the datagram size usb4's udp link uses on this cable")
        stacks = preloaded(make_stacks(cluster, args.repo, args.portable, args.base_provider),
                           args.preload)
        results, runs, data = run_all(cluster, stacks, wanted, programs, udp_exe,
                                      udp_missing, args, osu_dir, outdir)
    write_csv(outdir / "results.csv", results)

    names = [n for n in wanted if any(n in d for d in data.values())] or wanted
    local.print_reports(suite, names, runs, data, args, ", 1 rank per host")
    return 0


if __name__ == "__main__":
    sys.exit(main())
