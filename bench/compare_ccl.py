#!/usr/bin/env python3
"""oneCCL over usb4 vs libfabric tcp (and shm), one host and two hosts, one run.

    bench/compare_ccl.py [--bench ccl_allreduce,...] [-m 8:16777216] [--repeat 1]
                         [--portable] [--output DIR]

Runs ``usb4bench run`` with the ccl benchmarks on this host (usb4, ethernet =
libfabric tcp, shm) and then inside the first of two namespace hosts joined by
a veth cable (usb4fabric/nshosts.py; usb4 and tcp over tb0, hydra reaching the second
host through usb4fabric/launch_agent.sh), writes one report over both
result folders (bus bandwidth vs size per collective) and prints, per
collective and size, the median busbw of each fabric and usb4/tcp.  Run it
under the bench lock: ``flock /work/bench.lock bench/compare_ccl.py ...``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from usb4fabric import nshosts  # noqa: E402
from usb4fabric.cli import main as usb4bench  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", default="ccl_allreduce,ccl_allgather,ccl_alltoall")
    p.add_argument("-m", "--message-size", dest="sizes", default="8:16777216")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--portable", action="store_true", help="FI_USB4_PORTABLE=1")
    p.add_argument("--provider-dir", default=str(REPO / ".libs"))
    p.add_argument("--output", type=Path, default=Path("/tmp/compare_ccl"))
    return p.parse_args(argv)


def run_args(args, out: Path) -> list[str]:
    return ["run", "--bench", args.bench, "-m", args.sizes, "--repeat", str(args.repeat),
            "--provider-dir", args.provider_dir, "--output", str(out), "--replace"]


def two_hosts(args, out: Path) -> int:
    with nshosts.Cluster(2) as cluster:
        argv = [sys.executable, "-m", "usb4fabric.cli"] + run_args(args, out) + [
            "--fabric", "usb4,ethernet", "--hosts", ",".join(h.addr for h in cluster.hosts),
            "--iface", "tb0", "--launch-agent", str(nshosts.agent_path())]
        done = cluster.run(0, argv, env={"PYTHONPATH": str(REPO / "python")}, timeout=900)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return done.returncode


def medians(folder: Path) -> dict:
    values = defaultdict(list)
    with (folder / "results.csv").open() as f:
        for r in csv.DictReader(f):
            if r["metric"] == "busbw":
                values[(r["benchmark"], int(r["size"]), r["fabric"])].append(float(r["value"]))
    return {k: statistics.median(v) for k, v in values.items()}


def print_table(title: str, med: dict, fabrics: list[str]) -> None:
    print(f"\n== {title}: busbw (GB/s), median of repetitions; usb4/tcp")
    for bench in sorted({k[0] for k in med}):
        print(f"-- {bench}")
        print("%12s " % "size(B)" + " ".join("%10s" % f for f in fabrics) + "   usb4/tcp")
        for size in sorted({k[1] for k in med if k[0] == bench}):
            vals = [med.get((bench, size, f)) for f in fabrics]
            usb4, tcp = med.get((bench, size, "usb4")), med.get((bench, size, "ethernet"))
            ratio = "%8.2f" % (usb4 / tcp) if usb4 and tcp else "%8s" % "n/a"
            print("%12d " % size + " ".join("%10.4f" % v if v is not None else "%10s" % "-"
                                            for v in vals) + "   " + ratio)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.portable:
        os.environ["FI_USB4_PORTABLE"] = "1"
    here, there = args.output / "one-host", args.output / "two-hosts"
    rc = usb4bench(run_args(args, here) + ["--fabric", "usb4,ethernet,shm"])
    rc |= two_hosts(args, there)
    rc |= usb4bench(["report", str(here), str(there), "--output", str(args.output / "report")])
    print_table("one host (tcp = libfabric tcp over lo; shm = libfabric shm)", medians(here),
                ["usb4", "ethernet", "shm"])
    print_table("two namespace hosts over a veth cable (tb0)", medians(there),
                ["usb4", "ethernet"])
    print(f"\nreport: {args.output / 'report'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
