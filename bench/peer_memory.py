#!/usr/bin/env python3
"""Memory each side spends per remote peer, over usb4's udp link.

A benchmark, not a test (root needed).  It builds two hosts joined by one
veth cable ``tb0`` (usb4fabric/nshosts.py: network + UTS namespaces, MTU 65522 as
thunderbolt-net) and, for each number of peers N (default 1, 8, 32), runs
tests/xhost/usb4_xmulti.c's ``peers`` workload (compiled here with gcc):

  receiver  one process in host 1 with one endpoint;
  senders   one process in host 2 with N endpoints (a CQ each), each of
            which talks to the receiver: N peers for the receiver, one for
            each sender endpoint.

Each process reads its own /proc/self/status at three points: after setup
(endpoints open, peers in the AV, its N MiB of buffers touched), idle (one
8-byte message from each sender endpoint and a reply to each, then 0.2 s of
progress), and after 1 MiB from each sender endpoint to the receiver.  The
table shows VmRSS (resident) and VmData (private virtual: what the process
allocated, resident or not yet) at each point in MiB, with the growth since
setup, which is what the peers cost.  It never asserts
(tests/multihost/test_xhost_multi.py does, at 32 peers).  Raw outputs go to
--output.  The hosts are removed on exit, also on failure or Ctrl-C.

    python3 bench/peer_memory.py [--peers 1,8,32] [--output DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "python"))  # usb4fabric (nshosts)

from usb4fabric import nshosts  # noqa: E402
from usb4fabric.cprogs import HostProcess, gcc_build, xmulti_memory  # noqa: E402

IFACE = "tb0"
SOURCE = REPO / "tests" / "xhost" / "usb4_xmulti.c"
SIDES = (("server", "receiver", 0), ("client", "senders", 1))  # role, label, host


@dataclasses.dataclass
class SideMemory:
    """One process's memory (KiB) at setup, idle and after the transfers."""

    label: str
    endpoints: int
    peers: int
    rss: tuple[int, int, int]
    data: tuple[int, int, int]


@dataclasses.dataclass
class Run:
    npeers: int
    sides: list[SideMemory]
    error: str | None = None


def side_memory(text: str, role: str, label: str) -> SideMemory | None:
    mem = xmulti_memory(text, role)
    if not mem:
        return None
    return SideMemory(label, mem["endpoints"], mem["peers"], mem["rss"], mem["data"])


def run_one(cluster: nshosts.Cluster, exe: Path, provider_dir: Path, npeers: int,
            outdir: Path, timeout: float) -> Run:
    """One peers run with npeers sender endpoints; raw outputs kept in outdir."""
    rundir = outdir / f"peers{npeers}"
    rundir.mkdir(parents=True, exist_ok=True)
    env = {"FI_PROVIDER_PATH": str(provider_dir), "FI_PROVIDER": "usb4",
           "FI_USB4_IFACE": IFACE}
    argv = ["peers", "--dir", str(rundir), "--peers", str(npeers),
            "--timeout", str(int(timeout))]
    procs = {label: HostProcess(cluster, host, [str(exe), role] + argv, env, rundir, label)
             for role, label, host in SIDES}
    deadline = time.monotonic() + timeout + 5
    try:
        for proc in procs.values():
            proc.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        cluster.kill_all()
        for proc in procs.values():
            proc.wait(10)
        return Run(npeers, [], f"timed out after {timeout:.0f} s")
    sides = []
    for role, label, _host in SIDES:
        proc = procs[label]
        side = side_memory(proc.out, role, label)
        if proc.proc.returncode != 0 or side is None:
            last = (proc.err.strip().splitlines() or ["no memory line"])[-1]
            return Run(npeers, [], f"{label} exit {proc.proc.returncode}: {last}")
        sides.append(side)
    return Run(npeers, sides)


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def grown(values: tuple[int, int, int], i: int) -> str:
    return f"{mib(values[i])} (+{mib(values[i] - values[0])})"


def format_table(runs: list[Run]) -> str:
    head = (f"{'peers':>5}  {'side':<8} {'eps':>4}  {'RSS setup':>9}  {'RSS idle':>16}  "
            f"{'RSS after 1 MiB':>16}  {'VmData setup':>12}  {'VmData idle':>16}  "
            f"{'VmData after':>16}")
    lines = ["Memory per side, MiB (growth since setup), receiver in host 1, "
             "senders in host 2", head]
    for run in runs:
        if run.error:
            lines.append(f"{run.npeers:>5}  {run.error}")
            continue
        for s in run.sides:
            lines.append(f"{run.npeers:>5}  {s.label:<8} {s.endpoints:>4}  "
                         f"{mib(s.rss[0]):>9}  {grown(s.rss, 1):>16}  "
                         f"{grown(s.rss, 2):>16}  {mib(s.data[0]):>12}  "
                         f"{grown(s.data, 1):>16}  {grown(s.data, 2):>16}")
    return "\n".join(lines)


def per_peer(runs: list[Run]) -> list[str]:
    """Growth per peer at the largest N, for the summary line."""
    good = [r for r in runs if not r.error]
    if not good:
        return []
    run = max(good, key=lambda r: r.npeers)
    out = []
    for s in run.sides:
        out.append(f"{s.label} at {run.npeers} peers: VmRSS "
                   f"+{(s.rss[2] - s.rss[0]) / 1024 / run.npeers:.2f} MiB/peer, VmData "
                   f"+{(s.data[2] - s.data[0]) / 1024 / run.npeers:.2f} MiB/peer")
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--peers", default="1,8,32",
                   help="numbers of sender endpoints, comma separated (default %(default)s, "
                        "at most 64)")
    p.add_argument("--output", type=Path, default=None, help="folder for raw outputs")
    p.add_argument("--repo", type=Path, default=REPO, help="repository root (.libs)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds allowed to each run (default %(default)s)")
    args = p.parse_args(argv)
    try:
        args.peer_counts = [int(x) for x in args.peers.split(",") if x.strip()]
    except ValueError:
        p.error("--peers takes numbers, e.g. 1,8,32")
    if not args.peer_counts or not all(1 <= n <= 64 for n in args.peer_counts):
        p.error("--peers: each between 1 and 64")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("peer_memory needs root (network namespaces)")
        return 1
    provider_dir = (args.repo / ".libs").resolve()
    if not (provider_dir / "libusb4-fi.so").is_file():
        print(f"provider library not found in {provider_dir} (build it first)")
        return 1
    outdir = args.output or Path(tempfile.mkdtemp(prefix="usb4_peer_memory_"))
    outdir.mkdir(parents=True, exist_ok=True)
    print(f"raw outputs: {outdir}")
    exe = outdir / "usb4_xmulti"
    missing = gcc_build(SOURCE, exe, ("-pthread",))
    if missing:
        print(missing)
        return 1
    runs = []
    with nshosts.Cluster(2) as cluster:
        a, b = cluster.hosts
        print(f"hosts: {a.name} ({a.addr}) --{IFACE}-- {b.name} ({b.addr})")
        for n in args.peer_counts:
            run = run_one(cluster, exe, provider_dir, n, outdir, args.timeout)
            if run.error:
                cluster.kill_all()
            print(f"{n} peer(s): {run.error or 'ok'}", flush=True)
            runs.append(run)
    print()
    print(format_table(runs))
    for line in per_peer(runs):
        print("  " + line)
    return 0 if any(not r.error for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
