#!/usr/bin/env python3
"""What the progress thread costs: 8 B osu_latency with it and without it.

A benchmark, not a test (root needed for the two-host half).  usb4 runs
osu_latency (osu_bench/) with 2 ranks

  same host   mpirun on this host, FI_USB4_IFACE=lo: the ranks meet over
              shm, and their endpoints reach other hosts, so each rank's
              domain has its thread (bench/compare_local.py's usb4 stack)
  two hosts   one rank per namespace host over tb0, the udp link
              (bench/compare_hosts.py's usb4 stack and cluster)

each time with the thread (the default) and without it
(FI_USB4_PROGRESS_IDLE_MS=0, as before it existed), the two alternating run
by run so that a machine shared with other work loads both alike.  Prints
per case the median and the best of --repeat runs, and thread/no-thread.

    python3 bench/progress_cost.py [--repeat 9] [--size 8] [--output DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "python"))  # usb4fabric (nshosts)

import compare_hosts  # noqa: E402
import compare_local  # noqa: E402
from usb4fabric import nshosts  # noqa: E402

NO_THREAD = ["-x", "FI_USB4_PROGRESS_IDLE_MS=0"]


def pair(stack):
    """The stack with its thread and the same without it."""
    return (dataclasses.replace(stack, name="thread"),
            dataclasses.replace(stack, name="nothread",
                                mpi_args=stack.mpi_args + NO_THREAD))


def usb4_of(stacks):
    return next(s for s in stacks if s.name == "usb4")


def measure(stacks, program, args, repeat, outdir, timeout):
    """Alternating runs: {stack name: [latency at the size, ...]}."""
    got = {s.name: [] for s in stacks}
    for rep in range(repeat):
        for stack in stacks:
            res = compare_local.run_once(stack, program, args, rep, outdir, timeout)
            if res.error:
                print(f"  {stack.name} run {rep}: {res.error}")
            elif res.rows:
                got[stack.name].append(next(iter(res.rows.values())))
    return got


def report(case, got):
    line = [f"{case:<10}"]
    for name in ("thread", "nothread"):
        v = got[name]
        line.append(f"{name} median {statistics.median(v):7.2f} us best {min(v):7.2f} us"
                    if v else f"{name} (no runs)")
    if got["thread"] and got["nothread"]:
        line.append("thread/nothread median %.3f best %.3f" % (
            statistics.median(got["thread"]) / statistics.median(got["nothread"]),
            min(got["thread"]) / min(got["nothread"])))
    print("  ".join(line), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=9, help="runs per case (default 9)")
    p.add_argument("--size", type=int, default=8, help="message size (default 8)")
    p.add_argument("--output", type=Path, default=None, help="folder for raw outputs")
    p.add_argument("--no-hosts", action="store_true", help="same host only")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args(argv)
    outdir = args.output or Path(tempfile.mkdtemp(prefix="usb4_progress_cost_"))
    outdir.mkdir(parents=True, exist_ok=True)
    program = REPO / "osu_bench" / "osu_latency"
    osu_args = ["-m", f"{args.size}:{args.size}"]
    print(f"raw outputs: {outdir}; osu_latency {args.size} B, {args.repeat} runs each")

    local = pair(usb4_of(compare_local.make_stacks(REPO)))
    if local[0].missing:
        print(local[0].missing)
        return 1
    (outdir / "local").mkdir()
    report("same host", measure(local, program, osu_args, args.repeat, outdir / "local",
                                args.timeout))
    if args.no_hosts:
        return 0
    with nshosts.Cluster(2) as cluster:
        remote = pair(usb4_of(compare_hosts.make_stacks(cluster, REPO)))
        (outdir / "hosts").mkdir()
        report("two hosts", measure(remote, program, osu_args, args.repeat,
                                    outdir / "hosts", args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
