"""usb4bench: run OSU benchmarks over fabric profiles, report, show the machine.

    usb4bench run [--fabric usb4,ethernet,...] [--bench latency,bw,...] --output DIR
    usb4bench report RESULTS... [--output DIR] [--screenshot]
    usb4bench compare OLD NEW [--output DIR]
    usb4bench info [--sysfs-root /sys]

The only module of the harness that prints.  ``main(argv)`` returns the exit
code: 0 success, 1 a run or report with errors, 2 bad usage, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from . import (
    cable,
    locations,
    nshosts,
    osu_build,
    osu_locate,
    profiles,
    progress,
    results,
    runner,
    stacks,
    sysinfo,
)
from .results import ResultsFileError, ResultsWriter

# What add_subparsers returns: the _add_* functions add one command each.
Subparsers = argparse._SubParsersAction


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _add_run(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="run OSU benchmarks over fabric profiles",
                       description="Run benchmarks under mpirun once per fabric profile; "
                       "write raw outputs, results.csv, runs.csv and metadata.json to "
                       "--output.  Without --bench: the default set "
                       f"({', '.join(runner.DEFAULT_BENCHMARKS)}).")
    p.add_argument("--fabric", "--fabrics", dest="fabrics", type=_csv_list,
                   help=f"profiles, comma-separated, of {', '.join(profiles.ALL_PROFILES)}"
                   f" (default {','.join(profiles.DEFAULT_PROFILES)}); with --mpi, of "
                   f"{', '.join(stacks.FABRICS)} (default all three)")
    p.add_argument("--mpi", dest="mpi_stack", choices=stacks.NAMES,
                   help="run under this MPI stack (python/usb4fabric/stacks.py; "
                   "scripts/stacks.sh installs them), with osu_bench built by its mpicc; "
                   "default: Debian 12's Open MPI and the profiles above")
    p.add_argument("--iface", help="with --hosts: the interface usb4 and tcp use towards "
                   "the other hosts (FI_USB4_IFACE, FI_TCP_IFACE, btl_tcp_if_include); "
                   "--cable sets tb0")
    p.add_argument("--launch-agent", type=Path, help="with --hosts, ccl benchmarks: the "
                   "program playing ssh for hydra (usb4fabric/launch_agent.sh for "
                   "namespace hosts; default ssh)")
    p.add_argument("--bench", dest="benchmarks", type=_csv_list, action="extend",
                   help=f"benchmarks, comma-separated or repeated, of "
                   f"{', '.join(osu_locate.BENCHMARKS)}")
    p.add_argument("--repeat", type=int, default=runner.DEFAULT_REPEAT,
                   help="repetitions of every run, each kept (default %(default)s)")
    p.add_argument("-m", "--message-size", dest="sizes",
                   help="OSU -m [MIN:]MAX for every benchmark (default: per benchmark)")
    p.add_argument("-i", "--iterations", type=int, help="OSU -i for every benchmark")
    p.add_argument("-x", "--warmup", type=int, help="OSU -x for every benchmark")
    p.add_argument("--np", dest="ranks", type=int, default=2,
                   help="ranks (default 2; two-rank benchmarks are skipped otherwise)")
    hosts = p.add_mutually_exclusive_group()
    hosts.add_argument("--hosts", type=_csv_list, help="hosts, comma-separated (mpirun --host)")
    hosts.add_argument("--hostfile", type=Path, help="an Open MPI hostfile")
    hosts.add_argument("--cable", action="store_true",
                       help="run between two hosts made here of network namespaces, one "
                       "rank per host, joined by a veth cable tb0 (MTU 65522, as "
                       "thunderbolt-net); needs root: without it the runs are recorded "
                       "as skipped, saying why")
    p.add_argument("--mpirun", default="mpirun", help="the mpirun to use (default %(default)s)")
    p.add_argument("--timeout", type=float, default=runner.DEFAULT_TIMEOUT,
                   help="seconds allowed to every mpirun (default %(default)s)")
    p.add_argument("--osu-dir", help="OSU suite folder (default $OSU_DIR, PATH, osu_bench/)")
    p.add_argument("--provider-dir", help="folder of libusb4-fi.so "
                   "(default $USB4_PROVIDER_DIR, else <repo>/.libs)")
    p.add_argument("--output", type=Path, help="results folder "
                   "(default reports/results-<time>/)")
    p.add_argument("--replace", action="store_true",
                   help="discard an earlier run's results in --output first (without it, "
                   "a folder holding results is refused: a run appends to them)")


def _add_report(sub: Subparsers) -> None:
    p = sub.add_parser("report", help="plots and a Markdown/HTML report from result folders")
    p.add_argument("results", nargs="+", type=Path, help="result folders of usb4bench run")
    p.add_argument("--output", type=Path, help="report folder (default reports/<name>/)")
    p.add_argument("--name", help="report name (default: the first results folder's name)")
    p.add_argument("--reference", type=Path, action="append",
                   help="reference CSV (repeatable; default reports/reference/*.csv)")
    p.add_argument("--screenshot", action="store_true",
                   help="open report.html in headless Chromium: every image must load and "
                   "the console stay free of errors (exit 1 otherwise); saves the first "
                   "screen as screenshot.png")


def _add_compare(sub: Subparsers) -> None:
    from .spread import SPREAD_RULE

    p = sub.add_parser("compare", help="before/after table and plots of two result folders",
                       description="Compare two result folders (e.g. before and after a "
                       "change of setting or an upgrade) per series, benchmark and message "
                       f"size: medians, change, and a flag. The {SPREAD_RULE}. Writes "
                       "compare.md, compare.html and compare-<benchmark>.png/.svg.")
    p.add_argument("old", type=Path, help="results folder before")
    p.add_argument("new", type=Path, help="results folder after")
    p.add_argument("--output", type=Path, help="folder (default reports/compare-<old>-<new>/)")


def _add_info(sub: Subparsers) -> None:
    p = sub.add_parser("info", help="providers, USB4 links, MPI and OSU found here")
    p.add_argument("--sysfs-root", default="/sys", help="sysfs root (default %(default)s)")
    p.add_argument("--provider-dir", help="folder of libusb4-fi.so")
    p.add_argument("--osu-dir", help="OSU suite folder")
    p.add_argument("--json", action="store_true", help="print JSON")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="usb4bench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_report(sub)
    _add_compare(sub)
    _add_info(sub)
    return p


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _stack_hosts(args: argparse.Namespace) -> stacks.Hosts | None:
    """--hosts as the stack's hosts: the ranks spread evenly over them."""
    if not args.hosts:
        return None
    if args.ranks % len(args.hosts):
        raise ValueError(f"--np {args.ranks} does not spread evenly over "
                         f"{len(args.hosts)} hosts")
    per_host = args.ranks // len(args.hosts)
    return stacks.Hosts(tuple((h, per_host) for h in args.hosts), iface=args.iface)


def _stack_plan_parts(args: argparse.Namespace) -> tuple[
        stacks.Stack, stacks.Hosts | None, list[profiles.Profile], osu_locate.Suite]:
    """(stack, its hosts, profiles, suite) for --mpi; ValueError on bad usage."""
    if args.hostfile:
        raise ValueError("--hostfile is Open MPI's: with --mpi give --hosts")
    if args.cable:
        raise ValueError("--cable runs Debian's Open MPI: with --mpi give --hosts")
    stack = stacks.STACKS[args.mpi_stack]
    missing = stack.missing()
    if missing:
        raise ValueError(missing)
    hosts = _stack_hosts(args)
    chosen = profiles.for_stack(stack, profiles.provider_dir(args.provider_dir), hosts,
                                tuple(args.fabrics or stacks.FABRICS))
    if args.osu_dir:
        suite = osu_locate.locate(args.osu_dir)
    else:
        try:
            suite = osu_locate.Suite("osu_bench", osu_build.build(stack), f"--mpi {stack.name}")
        except osu_build.BuildError as exc:
            raise ValueError(f"building osu_bench for {stack.name}: {exc}") from exc
    return stack, hosts, chosen, suite


def _built_if_missing(suite: osu_locate.Suite,
                      benchmarks: list[osu_locate.Benchmark]) -> osu_locate.Suite:
    """suite, or, with no OSU suite and no checkout's build (installed, run
    elsewhere), the osu_bench programs wanted built from the package's sources
    with the default stack's mpicc; ValueError when that fails."""
    if suite.root is not None:
        return suite
    names = tuple(b.program for b in benchmarks if b.category not in ("mpi4py", "ccl"))
    stack = stacks.STACKS[stacks.DEFAULT_STACK]
    try:
        built = osu_build.build(stack, names=names)
    except osu_build.BuildError as exc:
        raise ValueError(f"building osu_bench for {stack.name}: {exc}") from exc
    return osu_locate.Suite("osu_bench", built, "built from the package's osu_bench sources")


def _check_cable(args: argparse.Namespace) -> None:
    """--cable's usage; ValueError when wrong."""
    if args.cable and args.ranks != cable.RANKS:
        raise ValueError(f"--cable runs one rank on each of its 2 hosts: --np {args.ranks}")


def _place(plan: runner.Plan, placed: contextlib.ExitStack) -> None:
    """For --cable: make the two hosts (removed when placed closes) and point
    the plan at them; or say why the cable section is missing."""
    if plan.cable and not plan.placement_missing:
        try:
            cluster = placed.enter_context(cable.hosts())
        except nshosts.HostError as exc:
            plan.placement_missing = f"namespace hosts could not be made: {exc}"
        else:
            plan.hosts = [h.addr for h in cluster.hosts]
            plan.prefix = cluster.prefix_argv(0)
            plan.extra_mpirun = plan.extra_mpirun + cable.launch_args(cluster)
            plan.iface, plan.agent = cable.IFACE, nshosts.agent_path()
            print(f"usb4bench: cable section: {cable.describe(cluster)}; mpirun in the "
                  "first host, one rank per host")
    if plan.placement_missing:
        print(f"usb4bench: cable section missing: {plan.placement_missing}")


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    stack = stack_hosts = None
    try:
        benchmarks = runner.benchmarks_named(args.benchmarks or list(runner.DEFAULT_BENCHMARKS))
        if args.mpi_stack:
            stack, stack_hosts, chosen, suite = _stack_plan_parts(args)
        else:
            _check_cable(args)
            chosen = profiles.build(profiles.provider_dir(args.provider_dir),
                                    bool(args.hosts or args.hostfile or args.cable),
                                    tuple(args.fabrics or profiles.DEFAULT_PROFILES),
                                    iface=cable.IFACE if args.cable else args.iface)
            suite = _built_if_missing(osu_locate.locate(args.osu_dir), benchmarks)
    except ValueError as exc:
        print(f"usb4bench run: {exc}", file=sys.stderr)
        return 2
    if args.repeat < 1 or args.ranks < 1:
        print("usb4bench run: --repeat and --np must be at least 1", file=sys.stderr)
        return 2
    output = args.output or locations.output_root() / \
        f"results-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    held = results.previous_run(output)
    if held and not args.replace:
        print(f"usb4bench run: {output} holds another run's results ({held}); a run "
              "appends to them: give another --output, or --replace to discard them",
              file=sys.stderr)
        return 2
    if held:
        print(f"usb4bench: --replace: discarding the earlier run in {output} ({held})")
        results.discard_run(output)
    plan = runner.Plan(chosen, benchmarks, suite, args.repeat, args.ranks, args.hosts,
                       args.hostfile, args.mpirun, args.timeout, args.sizes,
                       args.iterations, args.warmup, stack=stack, stack_hosts=stack_hosts,
                       agent=args.launch_agent, iface=args.iface, cable=args.cable,
                       placement_missing=cable.missing() if args.cable else None)
    print(f"usb4bench: benchmarks from {suite.kind} ({suite.root}, found by {suite.how})")
    for p in chosen:
        if p.skip:
            print(f"usb4bench: skipping profile {p.name}: {p.skip}")
    print(f"usb4bench: results in {output}")
    shown = progress.for_stream(sys.stderr)
    start = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM cleans up like Ctrl-C
    try:
        with contextlib.ExitStack() as placed:
            _place(plan, placed)
            runs = runner.execute(plan, ResultsWriter(output), ["usb4bench"] + argv, shown)
    except KeyboardInterrupt:
        shown.close()
        print(f"usb4bench: interrupted; what was measured is in {output}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    shown.close()
    for r in runs:
        if r["status"] not in ("ok", "skipped"):
            print(f"usb4bench: {r['fabric']} {r['benchmark']} rep {r['repetition']}: "
                  f"{r['status']}: {r['error']}")
    counts = {s: sum(1 for r in runs if r["status"] == s) for s in dict.fromkeys(
        r["status"] for r in runs)}
    print(f"usb4bench: {len(runs)} runs in {time.monotonic() - start:.0f} s: "
          + ", ".join(f"{n} {s}" for s, n in counts.items()))
    print(f"usb4bench: results in {output}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in runs) else 1


def cmd_report(args: argparse.Namespace) -> int:
    from . import report  # matplotlib is loaded only for reports

    name = args.name or args.results[0].resolve().name
    output = args.output or locations.output_root() / name
    try:
        rep = report.build(args.results, args.reference, name)
        paths = report.write(rep, output)
    except ResultsFileError as exc:
        print(f"usb4bench report: {exc}", file=sys.stderr)
        return 1
    for what, path in paths.items():
        print(f"usb4bench: {what}: {path}")
    return _check_in_browser(paths["html"], output / "screenshot.png") if args.screenshot else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from . import compare  # matplotlib is loaded only for reports

    output = args.output or locations.output_root() / \
        f"compare-{args.old.resolve().name}-{args.new.resolve().name}"
    try:
        cmp = compare.compare(args.old, args.new)
        paths = compare.write(cmp, output)
    except ResultsFileError as exc:
        print(f"usb4bench compare: {exc}", file=sys.stderr)
        return 1
    c = compare.counts(cmp)
    print(f"usb4bench: {len(cmp.table)} sizes compared: {c['better']} better, "
          f"{c['worse']} worse, {c['within spread']} within the run-to-run spread, "
          f"{c['no spread']} without a spread (one repetition)")
    for what, path in paths.items():
        print(f"usb4bench: {what}: {path}")
    return 0


def _check_in_browser(page: Path, screenshot: Path) -> int:
    """The report as a browser shows it: 0 when every image loaded, no errors."""
    from . import browser

    try:
        seen = browser.check_page(page, screenshot)
    except browser.BrowserError as exc:
        print(f"usb4bench report: {exc}", file=sys.stderr)
        return 1
    for problem in seen.problems():
        print(f"usb4bench report: in the browser: {problem}", file=sys.stderr)
    print(f"usb4bench: in headless Chromium: {len(seen.images)} images, "
          f"{len(seen.tables)} tables, {len(seen.problems())} problems")
    print(f"usb4bench: screenshot: {screenshot}")
    return 0 if seen.ok else 1


def _providers(provider_dir: Path | None) -> tuple[str, list[dict]]:
    """(how, providers) from the binding, else from fi_info -l."""
    if provider_dir is not None and (provider_dir / profiles.PROVIDER_LIB).is_file():
        os.environ.setdefault("FI_PROVIDER_PATH", str(provider_dir))
    try:
        from .info import describe_providers  # the cffi binding, another module
        described = describe_providers()
        return "the usb4fabric binding", [
            {"name": p["name"], "version": p.get("version", ""),
             "entries": len(p.get("entries", []))} for p in described["providers"]]
    except Exception as exc:  # noqa: BLE001  any failure of the binding: fall back
        listed = sysinfo.fi_info_providers(Path(os.environ.get("FI_PROVIDER_PATH", "")) or None)
        how = (f"`fi_info -l` (the usb4fabric binding is not usable: "
               f"{type(exc).__name__}: {exc})")
        return how, listed or []


def cmd_info(args: argparse.Namespace) -> int:
    provider_dir, found_by = locations.provider_dir(args.provider_dir)
    how, providers = _providers(provider_dir)
    links = sysinfo.usb4_links(args.sysfs_root)
    devices = sysinfo.thunderbolt_devices(Path(args.sysfs_root))
    suite = osu_locate.locate(args.osu_dir)
    info: dict[str, Any] = {"providers_from": how, "providers": providers,
            "provider_dir": str(provider_dir) if provider_dir else None,
            "provider_dir_found_by": found_by,
            "usb4_links": [vars(link) for link in links],
            "thunderbolt_devices": [vars(d) for d in devices],
            "mpi": sysinfo.mpi_version(), "libfabric": sysinfo.libfabric_version(),
            "osu": {"kind": suite.kind, "root": str(suite.root) if suite.root else None,
                    "found_by": suite.how,
                    "latency_program": str(osu_locate.find_program(
                        suite.root, osu_locate.BENCHMARKS["latency"])) if suite.root else None}}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"libfabric providers (from {how}):")
    for p in providers:
        extra = f", {p['entries']} fi_info entries" if "entries" in p else ""
        print(f"  {p['name']:<16} version {p.get('version', '?')}{extra}")
    if not providers:
        print("  none found")
    print(f"usb4 provider folder: {provider_dir or 'not found'} ({found_by})")
    print("usb4 links (thunderbolt-net interfaces):")
    for link in links:
        print(f"  {link.interface}: driver {link.driver}, device {link.device or '?'}, "
              f"rx {link.rx_speed or '?'} x {link.rx_lanes or '?'} lanes, "
              f"tx {link.tx_speed or '?'} x {link.tx_lanes or '?'} lanes, "
              f"state {link.operstate or '?'}")
    if not links:
        print("  none found")
    lf = info["libfabric"]
    print(f"libfabric: pkg-config {lf['pkg-config'] or 'not found'}; "
          f"{lf['fi_info'] or 'fi_info not found'}")
    print(f"MPI: {info['mpi'] or 'mpirun not found'}")
    osu = info["osu"]
    where = osu["root"] or "no build here (a run builds them from the package's sources)"
    print(f"OSU: {osu['kind']} in {where} (found by {osu['found_by']}); "
          f"osu_latency: {osu['latency_program'] or 'not found'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.command == "run":
        return cmd_run(args, argv)
    if args.command == "report":
        return cmd_report(args)
    if args.command == "compare":
        return cmd_compare(args)
    return cmd_info(args)


if __name__ == "__main__":
    sys.exit(main())
