"""Running benchmarks over fabric profiles and recording everything.

One *run* is one mpirun of one benchmark over one profile (one repetition).
Each run is written to the results folder as soon as it ends: its raw
stdout/stderr/argv, its parsed rows in results.csv and its record in
runs.csv.  A run that cannot start, fails, times out or prints nothing
parseable is recorded with its output and the next one starts: "did it run"
(status) is kept apart from "what did it measure" (rows).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Protocol

from . import ccl_launch, ccl_parse, launch, osu_parse, rails, sysinfo
from . import placement as where
from .osu_locate import BENCHMARKS, Benchmark, Suite
from .profiles import Profile
from .results import ResultsWriter
from .stacks import Hosts, Stack

DEFAULT_BENCHMARKS = ("latency", "bw", "put_latency", "allreduce")
DEFAULT_REPEAT = 3
DEFAULT_TIMEOUT = 120.0  # seconds per mpirun

# Arguments per benchmark when the user gives none: chosen so that the default
# set (4 profiles x 4 benchmarks x 3 repetitions) takes ~2-5 minutes on 2 cores
# (5 repetitions took 7.8 min on this VM while other jobs loaded it (load ~6);
# ethernet over loopback is most of it).
DEFAULT_ARGS = {
    "pt2pt-latency": ["-m", "0:1048576", "-i", "2000", "-x", "200"],
    "pt2pt-bandwidth": ["-m", "1:1048576", "-i", "100", "-x", "10"],
    "one-sided-latency": ["-m", "1:1048576", "-i", "1000", "-x", "100"],
    "one-sided-bandwidth": ["-m", "1:1048576", "-i", "100", "-x", "10"],
    "collective-latency": ["-m", "4:1048576", "-i", "500", "-x", "50"],
    "mpi4py-latency": ["-m", "0:1048576", "-i", "500", "-x", "50"],
    "mpi4py-bandwidth": ["-m", "1:1048576", "-i", "50", "-x", "5"],
    # ccl_bench: OSU's letters, turned into nccl-tests' (-b/-e, -n, -w) by
    # ccl_args; 8 B - 16 MiB by 2x (iterations shrink with size): seconds each
    "ccl-busbw": ["-m", "8:16777216", "-i", "20", "-x", "5"],
}
CCL_STEP_FACTOR = 2


def default_args(bench: Benchmark) -> list[str]:
    args = list(DEFAULT_ARGS[f"{bench.category}-{bench.metric}"])
    if bench.name == "barrier":
        args = args[2:]  # no message size
    return args


@dataclasses.dataclass
class Plan:
    profiles: list[Profile]
    benchmarks: list[Benchmark]
    suite: Suite
    repeat: int = DEFAULT_REPEAT
    ranks: int = 2
    hosts: list[str] | None = None
    hostfile: Path | None = None
    mpirun: str = "mpirun"
    timeout: float = DEFAULT_TIMEOUT
    sizes: str | None = None  # OSU -m, for every benchmark
    iterations: int | None = None  # OSU -i
    warmup: int | None = None  # OSU -x
    extra_mpirun: list[str] = dataclasses.field(default_factory=list)
    stack: Stack | None = None  # --mpi: another MPI stack's launcher (stacks.py)
    stack_hosts: Hosts | None = None  # its hosts (from --hosts)
    agent: Path | None = None  # plays ssh for hydra across --hosts (ccl benchmarks)
    iface: str | None = None  # the interface towards the other --hosts
    cable: bool = False  # hosts are namespace hosts joined by a veth cable (cable.py)
    prefix: list[str] = dataclasses.field(default_factory=list)  # launchers run under it
    placement_missing: str | None = None  # why this placement could not be made

    @property
    def placement(self) -> str:
        return where.of_run(self.multihost, self.cable)

    def placed(self, profile: Profile) -> dict[str, str]:
        """The placement and series columns of profile's rows."""
        n_hosts = len(self.hosts) if self.hosts else None
        return {"placement": self.placement,
                "series": where.series_name(profile.name, self.placement, n_hosts, self.iface,
                                            self.stack.title if self.stack else None)}

    def ccl_where(self) -> ccl_launch.Where:
        """One host, or --hosts with one rank each (ccl_bench: one rank per host)."""
        if not self.hosts:
            return ccl_launch.Where()
        return ccl_launch.Where(Hosts(tuple((h, 1) for h in self.hosts), iface=self.iface,
                                      agent=self.agent), self.iface)

    def ccl_args(self, bench: Benchmark) -> list[str]:
        """ccl_bench's arguments from the OSU-style defaults and overrides."""
        args = self.bench_args(bench)
        opts = dict(zip(args[len(bench.args)::2], args[len(bench.args) + 1::2]))
        low, _, high = opts["-m"].rpartition(":")
        return list(bench.args) + ["-b", low or high, "-e", high, "-f", str(CCL_STEP_FACTOR),
                                   "-n", opts["-i"], "-w", opts["-x"]]

    @property
    def multihost(self) -> bool:
        return bool(self.hosts or self.hostfile)

    def bench_args(self, bench: Benchmark) -> list[str]:
        args = default_args(bench)
        overrides = {"-m": self.sizes, "-i": self.iterations, "-x": self.warmup}
        for flag, value in overrides.items():
            if value is None or (flag == "-m" and bench.name == "barrier"):
                continue
            if flag in args:
                args[args.index(flag) + 1] = str(value)
            else:
                args += [flag, str(value)]
        return list(bench.args) + args + self.suite.cpu_args(bench)

    def launch_env(self) -> dict[str, str] | None:
        """Environment of the launcher: the stack's (PATH to its venv), else ours."""
        if self.stack is None:
            return None
        env = dict(os.environ)
        env.update(self.stack.env())
        return env

    def program(self, bench: Benchmark) -> list[str] | None:
        program = self.suite.program(bench)
        if program and self.stack is not None and bench.category == "mpi4py":
            program = self.stack.python() + program[1:]  # its mpi4py loads its MPI
        return program

    def stack_argv(self, stack: Stack, profile: Profile, bench: Benchmark,
                   program: list[str]) -> list[str]:
        argv = self.prefix + stack.launch_args(self.ranks, self.stack_hosts)
        argv += profile.mpi_args(bench.one_sided)
        return argv + self.extra_mpirun + program + self.bench_args(bench)

    def mpirun_argv(self, profile: Profile, bench: Benchmark, program: list[str]) -> list[str]:
        if self.stack is not None:
            return self.stack_argv(self.stack, profile, bench, program)
        argv = self.prefix + [self.mpirun]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-run-as-root")
        argv += ["-np", str(self.ranks)]
        if self.hostfile:
            argv += ["--hostfile", str(self.hostfile)]
        elif self.hosts:
            argv += ["--host", ",".join(self.hosts)]
        if not self.multihost and self.ranks > (os.cpu_count() or 1):
            argv.append("--oversubscribe")
        argv += profile.mpi_args(bench.one_sided)
        if bench.category == "mpi4py" and os.environ.get("PYTHONPATH"):
            # mpi4py_bench runs by its path; the ranks on other hosts get our
            # PYTHONPATH (where mpi4py may be) as the local ones do.
            argv += ["-x", f"PYTHONPATH={os.environ['PYTHONPATH']}"]
        argv += self.extra_mpirun
        return argv + program + self.bench_args(bench)


def hosts_label(plan: Plan) -> str:
    if plan.cable:
        made = f" ({','.join(plan.hosts)})" if plan.hosts else ", not made"
        return f"2 namespace hosts joined by a veth cable{made}"
    if plan.hostfile:
        return f"hostfile {plan.hostfile}"
    if plan.hosts:
        return ",".join(plan.hosts)
    return sysinfo.machine()["hostname"]


def collect_metadata(plan: Plan, command: list[str]) -> dict:
    """Everything about the run that is known before it starts."""
    return {
        "command": command,
        "start": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "origin": "hosts" if plan.multihost else "here",
        "hosts": hosts_label(plan),
        "placement": plan.placement,
        "placement_missing": plan.placement_missing,
        "machine": sysinfo.machine(),
        "git_commit": sysinfo.git_commit(),
        "libfabric": sysinfo.libfabric_version(),
        "mpi": plan.stack.describe() if plan.stack else sysinfo.mpi_version(plan.mpirun),
        "mpi_stack": plan.stack.name if plan.stack else None,
        "environment": sysinfo.relevant_env(),
        "osu_suite": {"kind": plan.suite.kind, "root": str(plan.suite.root),
                      "found_by": plan.suite.how},
        "profiles": {p.name: {"description": p.description, "carrier": p.carrier,
                              "one_sided_carrier": p.one_sided_carrier,
                              "one_sided_is_fabric": p.one_sided_is_fabric,
                              "one_sided_skip": p.one_sided_skip,
                              "mpirun_args": p.mpi_args(False),
                              "mpirun_args_one_sided": p.mpi_args(True),
                              "skipped": p.skip} for p in plan.profiles},
        "benchmarks": [b.name for b in plan.benchmarks],
        "repeat": plan.repeat,
        "ranks": plan.ranks,
        "timeout_s": plan.timeout,
        "provider_dir": next((p.env["FI_PROVIDER_PATH"] for p in plan.profiles
                              if "FI_PROVIDER_PATH" in p.env), None),
    }


def _note(profile: Profile, bench: Benchmark) -> str:
    if bench.one_sided and not profile.one_sided_is_fabric:
        return f"one-sided over {profile.one_sided_carrier}"
    return ""


def _exit_status(done: launch.Completed) -> tuple[str, str]:
    """Did the command run to a clean end: ("ok", "") or why not."""
    if done.timed_out:
        return "timeout", done.error or "timed out"
    if done.error:
        return "failed", done.error
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return "failed", f"exit status {done.returncode}" + (f": {tail}" if tail else "")
    return "ok", ""


def _status(done: launch.Completed, parsed: osu_parse.ParsedOutput) -> tuple[str, str]:
    status = _exit_status(done)
    if status[0] != "ok":
        return status
    if not parsed.rows:
        first = next((t for _, t in parsed.unparsed), "")
        return "no-data", f"no OSU rows in the output ({len(parsed.unparsed)} "\
                          f"unparsed lines; first: {first[:80]!r})"
    if parsed.validation_failed:
        return "invalid", "validation Fail in the output"
    return "ok", ""


def _record(plan: Plan, profile: Profile, bench: Benchmark, rep: int, status: str,
            error: str, **extra: Any) -> dict:
    run = {**plan.placed(profile), "fabric": profile.name, "benchmark": bench.name, "repetition": rep,
           "status": status, "error": error, "rows": 0, "unparsed_lines": 0,
           "carrier": profile.carrier_for(bench.one_sided), "note": _note(profile, bench)}
    run.update(extra)
    return run


def ccl_skip(plan: Plan, profile: Profile) -> str | None:
    """Why a ccl benchmark cannot run over profile, or None."""
    if profile.name not in ccl_launch.PROFILE_FABRIC:
        return (f"no oneCCL path over {profile.name}: ccl benchmarks run over "
                f"{', '.join(ccl_launch.PROFILE_FABRIC)}")
    if plan.hosts and plan.ranks != len(plan.hosts):
        return f"ccl_bench runs one rank per host: --np {plan.ranks} on {len(plan.hosts)} hosts"
    return ccl_launch.missing()


def _ccl_rows(parsed: ccl_parse.CclOutput, base: dict) -> list[dict]:
    rows = []
    for r in parsed.rows:
        for metric, value, unit in (("busbw", r.busbw, "GB/s"), ("algbw", r.algbw, "GB/s"),
                                    ("time", r.time_us, "us")):
            rows.append(base | {"size": r.size, "metric": metric, "value": value,
                                "unit": unit, "validation": "Pass"})
    return rows


def run_ccl(plan: Plan, profile: Profile, bench: Benchmark, program: list[str], rep: int,
            writer: ResultsWriter, origin: str, hosts: str) -> dict:
    """One repetition of a ccl benchmark: hydra of the ccl venv, rows checked
    by ccl_parse (a wrong element or a malformed line makes the run invalid)."""
    start = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    stem = writer.raw_stem(profile.name, bench.name, rep)
    where = plan.ccl_where()
    env = ccl_launch.rank_env(ccl_launch.PROFILE_FABRIC[profile.name],
                              profile._provider_dir() or profile_provider(plan), where,
                              stem.with_suffix(".id"))
    argv = plan.prefix + ccl_launch.hydra_argv(plan.ranks, env,
                                               program + plan.ccl_args(bench), where)
    stem.with_suffix(".cmd").write_text(shlex.join(argv) + "\n")
    done = launch.run(argv, plan.timeout, env=ccl_launch.launcher_env())
    stem.with_suffix(".out").write_text(done.stdout)
    stem.with_suffix(".err").write_text(done.stderr)
    try:
        parsed, problem = ccl_parse.parse(done.stdout), ""
    except ccl_parse.CclParseError as exc:
        parsed, problem = None, str(exc)
    status, error = _exit_status(done)
    if status == "ok" and problem:
        status, error = "invalid", problem
    elif status != "ok" and problem:
        error = f"{error}; {problem}"
    carrier = f"oneCCL ofi / {ccl_launch.PROFILE_FABRIC[profile.name]}"
    base = {**plan.placed(profile), "fabric": profile.name, "benchmark": bench.name,
            "program": bench.program, "repetition": rep, "origin": origin, "hosts": hosts,
            "carrier": carrier,
            "note": f"{parsed.dtype}, {parsed.ranks} ranks, {parsed.library}" if parsed else ""}
    rows = _ccl_rows(parsed, base) if parsed and status == "ok" else []
    rel = lambda p: str(p.relative_to(writer.folder))  # noqa: E731
    run = _record(plan, profile, bench, rep, status, error, returncode=done.returncode,
                  elapsed_s=round(done.elapsed, 3), start=start, rows=len(rows),
                  unparsed_lines=len(parsed.log) if parsed else 0,
                  osu_title="ccl_bench" if parsed else None,
                  osu_version=parsed.library if parsed else None, carrier=carrier,
                  argv=shlex.join(argv), cmd_file=rel(stem.with_suffix(".cmd")),
                  stdout_file=rel(stem.with_suffix(".out")),
                  stderr_file=rel(stem.with_suffix(".err")))
    writer.add_run(run, rows)
    return run


def profile_provider(plan: Plan) -> Path | None:
    """The usb4 provider's folder of any profile of the plan."""
    return next((Path(p.env["FI_PROVIDER_PATH"]) for p in plan.profiles
                 if "FI_PROVIDER_PATH" in p.env), None)


def run_one(plan: Plan, profile: Profile, bench: Benchmark, rep: int,
            writer: ResultsWriter, origin: str, hosts: str) -> dict:
    """One repetition of one benchmark over one profile, written at once."""
    start = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    program = plan.program(bench)
    if program is None:
        run = _record(plan, profile, bench, rep, "missing",
                      f"{bench.program} not found in {plan.suite.root} ({plan.suite.how})",
                      start=start)
        writer.add_run(run, [])
        return run
    if bench.category == "ccl":
        return run_ccl(plan, profile, bench, program, rep, writer, origin, hosts)
    argv = plan.mpirun_argv(profile, bench, program)
    stem = writer.raw_stem(profile.name, bench.name, rep)
    stem.with_suffix(".cmd").write_text(shlex.join(argv) + "\n")
    try:
        done = launch.run(argv, plan.timeout, env=plan.launch_env())
    except KeyboardInterrupt:
        writer.add_run(_record(plan, profile, bench, rep, "failed", "interrupted (Ctrl-C)",
                               start=start, argv=shlex.join(argv)), [])
        raise
    stem.with_suffix(".out").write_text(done.stdout)
    stem.with_suffix(".err").write_text(done.stderr)
    parsed = osu_parse.parse(done.stdout)
    status, error = _status(done, parsed)
    note = _note(profile, bench)
    if status != "ok" and parsed.rows:
        note = "; ".join(filter(None, [note, f"partial: run {status}"]))
    rows = [{**plan.placed(profile), "fabric": profile.name, "benchmark": bench.name,
             "program": bench.program,
             "size": r.size, "metric": r.metric, "value": r.value, "unit": r.unit,
             "repetition": rep, "validation": r.validation, "origin": origin,
             "hosts": hosts, "carrier": profile.carrier_for(bench.one_sided), "note": note}
            for r in parsed.rows]
    # what each rail carried, when the run asked for the provider's log
    rail_rows = rails.result_rows(rails.parse(done.stderr), {
        **plan.placed(profile), "fabric": profile.name, "benchmark": bench.name, "program": bench.program,
        "repetition": rep, "origin": origin, "hosts": hosts,
        "carrier": profile.carrier_for(bench.one_sided), "note": note})
    rel = lambda p: str(p.relative_to(writer.folder))  # noqa: E731
    run = _record(plan, profile, bench, rep, status, error, returncode=done.returncode,
                  elapsed_s=round(done.elapsed, 3), start=start, rows=len(rows),
                  unparsed_lines=len(parsed.unparsed), osu_title=parsed.title,
                  osu_version=parsed.version, note=note, argv=shlex.join(argv),
                  cmd_file=rel(stem.with_suffix(".cmd")),
                  stdout_file=rel(stem.with_suffix(".out")),
                  stderr_file=rel(stem.with_suffix(".err")))
    writer.add_run(run, rows + rail_rows)
    return run


class Progress(Protocol):
    """Told of every run (index from 1 of total), before and after it."""

    def run_started(self, index: int, total: int, label: str) -> None: ...

    def run_finished(self, index: int, total: int, label: str, status: str) -> None: ...


def execute(plan: Plan, writer: ResultsWriter, command: list[str] | None = None,
            progress: Progress | None = None) -> list[dict]:
    """Every profile x benchmark x repetition; returns the run records."""
    metadata = collect_metadata(plan, command if command is not None else sys.argv)
    writer.write_metadata(metadata)
    origin, hosts = metadata["origin"], metadata["hosts"]
    total = len(plan.profiles) * len(plan.benchmarks) * plan.repeat
    runs: list[dict] = []
    count = 0
    try:
        for profile in plan.profiles:
            for bench in plan.benchmarks:
                skip = plan.placement_missing or profile.skip or (
                    profile.one_sided_skip if bench.one_sided else None)
                if skip is None and bench.category == "ccl":
                    skip = ccl_skip(plan, profile)
                if skip is None and bench.max_ranks and plan.ranks > bench.max_ranks:
                    skip = f"{bench.program} runs on exactly {bench.max_ranks} ranks"
                for rep in range(1, plan.repeat + 1):
                    count += 1
                    label = f"{profile.name} {bench.name} {rep}/{plan.repeat}"
                    if progress:
                        progress.run_started(count, total, label)
                    if skip:
                        status = "skipped"
                        if rep == 1:
                            run = _record(plan, profile, bench, rep, status, skip)
                            writer.add_run(run, [])
                            runs.append(run)
                    else:
                        runs.append(run_one(plan, profile, bench, rep, writer, origin, hosts))
                        status = runs[-1]["status"]
                    if progress:
                        progress.run_finished(count, total, label, status)
    except KeyboardInterrupt:
        metadata["interrupted"] = True
        raise
    finally:
        metadata["end"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds")
        metadata["osu_versions"] = sorted({f"{r.get('osu_title')} v{r.get('osu_version')}"
                                           for r in runs if r.get("osu_title")})
        metadata["benchmark_suites"] = sorted({osu_parse.suite_label(
            r.get("osu_title") or "", r.get("osu_version") or "") for r in runs
            if r.get("osu_title")})
        metadata["status_counts"] = {s: sum(1 for r in runs if r["status"] == s)
                                     for s in sorted({r["status"] for r in runs})}
        writer.write_metadata(metadata)
    return runs


def benchmarks_named(names: list[str]) -> list[Benchmark]:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}: choose from "
                         f"{', '.join(BENCHMARKS)}")
    return [BENCHMARKS[n] for n in names]
