#!/usr/bin/env python3
"""Each MPI stack over usb4 beside the same stack over its own transports.

A benchmark, not a test (root needed for the namespace hosts).  For every
installed stack of python/usb4fabric/stacks.py (or those --stacks names) it
builds osu_bench with the stack's mpicc (usb4fabric/osu_build.py) and runs,
in one run of this script:

  one host, 2 ranks      usb4 (its shm link)   and the stack's own shared memory
  two hosts, 1 rank each usb4 (its udp link)   and the stack's own TCP
                         (hosts: network namespaces joined by the veth cable
                         tb0, usb4fabric/nshosts.py; the launcher in the first host)

osu_latency at 8 B and osu_bw at 1 MiB, each the median of -n runs, and
prints per stack the figures with usb4's ratio to the other transport.
Runs alternate between the fabrics compared, so a load change on the
machine hits both.  A stack or fabric that cannot run is reported with its
error line and left out; nothing is asserted.  Raw outputs and a CSV go to
--output.  The hosts are removed on exit, also on failure or Ctrl-C.

    python3 bench/compare_stacks.py [--stacks all|NAME,...] [-n 3] [--output DIR]
                                    [--iterations N] [--local-only]
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "python"))

from usb4fabric import launch, nshosts, osu_build, osu_parse, profiles, stacks  # noqa: E402

LAT_SIZE, BW_SIZE = 8, 1 << 20
RUN_TIMEOUT = 180.0  # seconds per mpirun
IFACE = "tb0"
# (benchmark, OSU -m, size read)
BENCHMARKS = (("osu_latency", "%d:%d" % (LAT_SIZE, LAT_SIZE), LAT_SIZE),
              ("osu_bw", "%d:%d" % (BW_SIZE, BW_SIZE), BW_SIZE))
# where -> (fabrics compared there, ranks per host)
PLACES = {"one host": (("usb4", "shm"), 2), "two hosts": (("usb4", "tcp"), 1)}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stacks", default="all", help="stacks: all or NAME,... (default all)")
    p.add_argument("-n", "--repeat", type=int, default=3, help="runs per figure (median)")
    p.add_argument("--iterations", type=int, default=2000,
                   help="OSU -i for latency (bandwidth uses a tenth; default %(default)s)")
    p.add_argument("--output", type=Path,
                   help="raw outputs and CSV (default reports/stacks-<time>)")
    p.add_argument("--provider-dir", help="folder of libusb4-fi.so (default <repo>/.libs)")
    p.add_argument("--local-only", action="store_true", help="skip the two-host runs")
    p.add_argument("--portable", action="store_true",
                   help="usb4 with its CPU-specific paths off (FI_USB4_PORTABLE=1)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("-n must be at least 1")
    return args


class Runner:
    """Runs one stack's benchmarks and keeps every output under folder."""

    def __init__(self, stack, programs: Path, provider: Path, folder: Path, iterations: int,
                 portable: bool = False):
        self.stack, self.programs, self.provider = stack, programs, provider
        self.folder, self.iterations = folder, iterations
        self.usb4_env = {"FI_USB4_PORTABLE": "1"} if portable else {}
        self.env = dict(os.environ)
        self.env.update(stack.env())

    def argv(self, bench, sizes, fabric, hosts_=None):
        iters = self.iterations if bench == "osu_latency" else max(self.iterations // 10, 10)
        program = [str(self.programs / bench), "-m", sizes, "-i", str(iters),
                   "-x", str(max(iters // 10, 5))]
        np = hosts_.np if hosts_ else 2
        return self.stack.argv(np, program, fabric, provider_dir=self.provider, hosts=hosts_,
                               env=self.usb4_env if fabric == "usb4" else None)

    def once(self, argv, label, cluster=None):
        """(value or None, error) of one run; its output saved as label.*."""
        if cluster is not None:
            try:
                done = cluster.run(0, argv, env=self.stack.env(), timeout=RUN_TIMEOUT)
                out, err, rc, error = done.stdout, done.stderr, done.returncode, None
            except Exception as exc:  # noqa: BLE001  a timeout is a result here
                out, err, rc, error = "", str(exc), None, "failed: %s" % exc
        else:
            done = launch.run(argv, RUN_TIMEOUT, env=self.env)
            out, err, rc, error = done.stdout, done.stderr, done.returncode, done.error
        (self.folder / (label + ".cmd")).write_text(shlex.join(argv) + "\n")
        (self.folder / (label + ".out")).write_text(out)
        (self.folder / (label + ".err")).write_text(err)
        if error or rc != 0:
            tail = (err.strip().splitlines() or [""])[-1]
            return None, error or "exit %s: %s" % (rc, tail[:200])
        return out, None


def value_at(stdout, size):
    rows = [r for r in osu_parse.parse(stdout).rows if r.size == size]
    return rows[0].value if rows else None


def measure(runner, place, fabrics, repeat, cluster=None):
    """{(fabric, bench): (median or None, error)} for one place."""
    hosts_ = None
    if cluster is not None:
        hosts_ = stacks.Hosts(tuple((h.addr, PLACES[place][1]) for h in cluster.hosts),
                              cluster.cables[0].subnet, IFACE, nshosts.agent_path())
    values = {(f, b): [] for f in fabrics for b, _, _ in BENCHMARKS}
    errors = {}
    for rep in range(1, repeat + 1):
        for bench, sizes, size in BENCHMARKS:
            for fabric in fabrics:  # alternate: a load change hits both
                if (fabric, bench) in errors:
                    continue
                try:
                    argv = runner.argv(bench, sizes, fabric, hosts_)
                except ValueError as exc:
                    errors[(fabric, bench)] = str(exc)
                    continue
                label = "%s-%s-%s-%d" % (place.replace(" ", "_"), fabric, bench, rep)
                out, error = runner.once(argv, label, cluster)
                value = value_at(out, size) if out else None
                if value is None:
                    errors[(fabric, bench)] = error or "no %d B row in the output" % size
                else:
                    values[(fabric, bench)].append(value)
    return {key: (statistics.median(v) if v and key not in errors else None,
                  errors.get(key)) for key, v in values.items()}


def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "-"


def print_stack(stack, results):
    print("\n== %s" % stack.describe())
    print("%-10s %-5s %14s %18s" % ("where", "over", "8 B lat (us)", "1 MiB bw (MB/s)"))
    for place, figures in results.items():
        for fabric in PLACES[place][0]:
            lat, lat_err = figures[(fabric, "osu_latency")]
            bw, bw_err = figures[(fabric, "osu_bw")]
            print("%-10s %-5s %14s %18s" % (place, fabric, "%.2f" % lat if lat else "-",
                                            "%.0f" % bw if bw else "-"))
            for err in dict.fromkeys(e for e in (lat_err, bw_err) if e):
                print("    %s: %s" % (fabric, err))
        other = PLACES[place][0][1]
        print("%-10s usb4/%s: latency %s, bandwidth %s" % (
            "", other, ratio(figures[("usb4", "osu_latency")][0],
                             figures[(other, "osu_latency")][0]),
            ratio(figures[("usb4", "osu_bw")][0], figures[(other, "osu_bw")][0])))


def write_csv(path, table):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stack", "where", "fabric", "benchmark", "size", "median", "error"])
        for stack_name, results in table.items():
            for place, figures in results.items():
                for (fabric, bench), (value, error) in figures.items():
                    size = LAT_SIZE if bench == "osu_latency" else BW_SIZE
                    w.writerow([stack_name, place, fabric, bench, size,
                                "" if value is None else value, error or ""])


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        chosen = stacks.named(args.stacks)
    except ValueError as exc:
        print("compare_stacks: %s" % exc, file=sys.stderr)
        return 2
    provider = profiles.provider_dir(args.provider_dir)
    missing = profiles.provider_missing(provider)
    if missing:
        print("compare_stacks: %s" % missing, file=sys.stderr)
        return 2
    output = args.output or REPO / "reports" / time.strftime("stacks-%Y%m%d-%H%M%S")
    output.mkdir(parents=True, exist_ok=True)
    if args.portable:
        print("usb4 with FI_USB4_PORTABLE=1: its CPU-specific paths off")
    table = {}
    for stack in chosen:
        missing = stack.missing()
        if missing:
            print("\n== %s: skipped: %s" % (stack.name, missing))
            continue
        try:
            programs = osu_build.build(stack)
        except osu_build.BuildError as exc:
            print("\n== %s: skipped: %s" % (stack.name, exc))
            continue
        folder = output / stack.name
        folder.mkdir(exist_ok=True)
        runner = Runner(stack, programs, provider, folder, args.iterations, args.portable)
        results = {"one host": measure(runner, "one host", PLACES["one host"][0], args.repeat)}
        if not args.local_only:
            with nshosts.Cluster(2) as cluster:
                results["two hosts"] = measure(runner, "two hosts", PLACES["two hosts"][0],
                                               args.repeat, cluster)
        table[stack.name] = results
        print_stack(stack, results)
        write_csv(output / "compare_stacks.csv", table)
    print("\nraw outputs and compare_stacks.csv in %s" % output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
