#!/usr/bin/env python3
"""A training step across two hosts: gradients allreduced by oneCCL over usb4.

A benchmark, not a test (root needed).  It builds two hosts joined by one
veth cable ``tb0`` (tests/hosts.py), and for each backend starts one rank
per host (bench/train_worker.py under the collective library's venv
python) training the same seeded MLP (about 5.5 M parameters by default: a
22 MB gradient buffer allreduced every step):

  ccl-usb4           oneCCL (usb4fabric.ccl, ctypes) over the usb4 provider,
                     FI_USB4_IFACE=tb0
  ccl-usb4-portable  the same with FI_USB4_PORTABLE=1 (the provider's
                     portable paths)
  gloo               torch.distributed's gloo over TCP on the same cable
                     (MASTER = host 0's cable address, GLOO_SOCKET_IFNAME=tb0)
  ccl-tcp            oneCCL over libfabric's tcp provider, FI_TCP_IFACE=tb0

and prints per backend: the median time per step, the median allreduce time
and the allreduce's share of the step (time in allreduce / step time, over
the measured steps), steps/s, the allreduce's rate, whether the weights are
bit-identical on both ranks (a SHA-256 of every parameter, gathered from
both) and whether the held-out loss went down; then every backend's step
and allreduce time over gloo's and ccl-tcp's, measured in the same run.
With --repeat N each backend runs N times, interleaved, and the medians
cover all the measured steps.

It never asserts: a backend that fails is reported with its error and left
out (the exit status is 1).  Raw outputs go to --output.

    flock /work/bench.lock python3 bench/train_step.py [--steps 20] [--repeat 1]
        [--backends ccl-usb4,ccl-usb4-portable,gloo,ccl-tcp] [--hidden 1536]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "python"))
import hosts  # noqa: E402  (tests/hosts.py)
from usb4fabric import ccl  # noqa: E402
from usb4fabric.stacks import STACKS_DIR  # noqa: E402

WORKER = BENCH / "train_worker.py"
VENV = STACKS_DIR / "ccl2022-pypi"
IFACE = "tb0"
GLOO_PORT = 29514
RESULT_PREFIX = "TRAIN_RESULT "  # train_worker.py's last line
BACKENDS = ("ccl-usb4", "ccl-usb4-portable", "gloo", "ccl-tcp")
BASELINES = ("gloo", "ccl-tcp")
WORKER_TIMEOUT = 150  # seconds per backend run


@dataclasses.dataclass
class Model:
    """The workload's size; the defaults are the benchmark's, tests use less."""

    steps: int = 20
    warmup: int = 3
    inputs: int = 512
    hidden: int = 1536
    layers: int = 3
    batch: int = 64
    threads: int = 1

    def args(self) -> list[str]:
        return ["--%s=%s" % (f.name, getattr(self, f.name))
                for f in dataclasses.fields(self)]


def venv_missing(venv: Path = VENV) -> str | None:
    """Why the collective library's venv cannot run the workload, or None."""
    for rel in ("bin/python", "lib/libccl.so.2"):
        if not (venv / rel).exists():
            return "%s has no %s (scripts/setup.sh --ccl makes it)" % (venv, rel)
    return None


def worker_env(backend: str, venv: Path, provider_dir: Path | None) -> dict[str, str]:
    """The environment of one rank of backend."""
    base = {"PYTHONPATH": str(REPO / "python"), "OMP_NUM_THREADS": "1"}
    if backend == "gloo":
        return dict(base, GLOO_SOCKET_IFNAME=IFACE)
    provider = "tcp" if backend == "ccl-tcp" else "usb4"
    env = dict(base, **ccl.rank_env(venv, provider, provider_dir, IFACE))
    if backend == "ccl-usb4-portable":
        env["FI_USB4_PORTABLE"] = "1"
    return env


def worker_argv(backend: str, venv: Path, rank: int, rundir: Path, master: str,
                model: Model) -> list[str]:
    argv = [str(venv / "bin" / "python"), str(WORKER), "--rank", str(rank),
            "--backend", "gloo" if backend == "gloo" else "ccl", "--rundir", str(rundir)]
    if backend == "gloo":
        argv += ["--master", master]
    return argv + model.args()


class BackendFailed(RuntimeError):
    """A rank exited non-zero, timed out or printed no result."""


def parse_result(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    return None


def run_backend(cluster, backend: str, rundir: Path, provider_dir: Path | None,
                model: Model, venv: Path = VENV, timeout: float = WORKER_TIMEOUT) -> list[dict]:
    """Runs one rank of backend in each of the cluster's first two hosts;
    returns their results (rank order).  Raises BackendFailed with both
    ranks' output otherwise; logs stay in rundir."""
    rundir.mkdir(parents=True, exist_ok=True)
    master = "%s:%d" % (cluster.hosts[0].addr, GLOO_PORT)
    env = worker_env(backend, venv, provider_dir)
    procs, logs = [], []
    for rank in range(2):
        log = rundir / ("rank%d.log" % rank)
        with open(log, "w") as out:
            procs.append(cluster.popen(rank, worker_argv(backend, venv, rank, rundir, master,
                                                         model),
                                       env=env, stdout=out, stderr=subprocess.STDOUT))
        logs.append(log)
    deadline = time.monotonic() + timeout
    timed_out = False
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            cluster.kill_all()
            proc.wait(10)
    results = [parse_result(log.read_text(errors="replace")) for log in logs]
    if timed_out or any(p.returncode != 0 for p in procs) or None in results:
        why = "timed out after %d s" % timeout if timed_out else "exit %s" % [
            p.returncode for p in procs]
        raise BackendFailed("%s: %s\n%s" % (backend, why, "\n".join(
            "--- rank %d\n%s" % (i, log.read_text(errors="replace")[-3000:])
            for i, log in enumerate(logs))))
    return results


@dataclasses.dataclass
class Summary:
    backend: str
    steps: int  # measured steps per rank
    params: int
    allreduce_bytes: int
    step_s: float  # median over the measured steps, rank 0
    allreduce_s: float  # median, rank 0
    share: tuple[float, float]  # time in allreduce / step time, per rank
    identical: bool  # weights bit-identical on both ranks
    loss_before: float
    loss_after: float

    @property
    def steps_per_s(self) -> float:
        return 1.0 / self.step_s

    @property
    def allreduce_gbs(self) -> float:
        """Algorithm bandwidth: buffer bytes / allreduce time (GB/s)."""
        return self.allreduce_bytes / self.allreduce_s / 1e9

    @property
    def loss_down(self) -> bool:
        return self.loss_after < self.loss_before


def summarize(backend: str, runs: list[list[dict]]) -> Summary:
    """runs: the per-rank results of each repeat (measured steps pooled)."""
    per_rank = [[r for run in runs for r in run if r["rank"] == rank] for rank in (0, 1)]
    step = [[s for r in rank_runs for s in r["step_s"]] for rank_runs in per_rank]
    reduce = [[s for r in rank_runs for s in r["allreduce_s"]] for rank_runs in per_rank]
    first = per_rank[0][-1]
    return Summary(
        backend=backend, steps=len(step[0]), params=first["params"],
        allreduce_bytes=first["allreduce_bytes"],
        step_s=statistics.median(step[0]), allreduce_s=statistics.median(reduce[0]),
        share=tuple(sum(reduce[i]) / sum(step[i]) for i in (0, 1)),
        identical=all(a["weights_sha256"] == b["weights_sha256"]
                      for a, b in zip(per_rank[0], per_rank[1])),
        loss_before=first["loss_before"], loss_after=first["loss_after"])


def format_table(summaries: list[Summary]) -> str:
    head = ("%-18s %10s %12s %13s %8s %9s %-10s %s"
            % ("backend", "ms/step", "allreduce ms", "share r0/r1", "steps/s",
               "AR GB/s", "weights", "held-out loss"))
    lines = [head]
    for s in summaries:
        lines.append("%-18s %10.2f %12.2f %6.1f%%/%4.1f%% %8.2f %9.3f %-10s %.3f -> %.3f%s" % (
            s.backend, s.step_s * 1e3, s.allreduce_s * 1e3, 100 * s.share[0],
            100 * s.share[1], s.steps_per_s, s.allreduce_gbs,
            "identical" if s.identical else "DIFFER", s.loss_before, s.loss_after,
            "" if s.loss_down else "  (NOT down)"))
    by_name = {s.backend: s for s in summaries}
    for base in BASELINES:
        if base not in by_name:
            continue
        b = by_name[base]
        for s in summaries:
            if s.backend != base:
                lines.append("%-18s / %-8s step %.3fx  allreduce %.3fx" % (
                    s.backend, base, s.step_s / b.step_s, s.allreduce_s / b.allreduce_s))
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help="comma-separated, from %s" % ", ".join(BACKENDS))
    p.add_argument("--repeat", type=int, default=1, help="runs per backend, interleaved")
    p.add_argument("--provider-dir", type=Path, default=REPO / ".libs",
                   help="folder holding libusb4-fi.so (default: this tree's .libs)")
    p.add_argument("--venv", type=Path, default=VENV)
    p.add_argument("--output", type=Path, default=None, help="raw outputs (default: a temp dir)")
    for f in dataclasses.fields(Model):
        p.add_argument("--" + f.name, type=int, default=f.default)
    args = p.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        p.error("unknown backend(s) %s" % ", ".join(sorted(unknown)))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    why = venv_missing(args.venv)
    if why:
        print(why, file=sys.stderr)
        return 2
    model = Model(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Model)})
    out = args.output or Path(tempfile.mkdtemp(prefix="train_step-"))
    runs: dict[str, list[list[dict]]] = {b: [] for b in args.backends}
    failed: dict[str, str] = {}
    with hosts.Cluster(2) as cluster:
        for rep in range(args.repeat):
            for backend in args.backends:
                if backend in failed:
                    continue
                try:
                    runs[backend].append(run_backend(
                        cluster, backend, out / ("%s-%d" % (backend, rep)),
                        args.provider_dir.resolve(), model, args.venv))
                except BackendFailed as exc:
                    failed[backend] = str(exc)
    summaries = [summarize(b, runs[b]) for b in args.backends if runs[b] and b not in failed]
    first = summaries[0] if summaries else None
    print("train_step: 2 ranks on 2 namespace hosts over %s; MLP %d-%dx%d-%d, %s parameters "
          "(%.1f MB allreduced per step), batch %d, %d threads; %d warmup + %d measured steps "
          "x %d repeat(s); raw outputs in %s" % (
              IFACE, model.inputs, model.hidden, model.layers, 16,
              first.params if first else "?", first.allreduce_bytes / 1e6 if first else 0,
              model.batch, model.threads, model.warmup, model.steps, args.repeat, out))
    print(format_table(summaries))
    for backend, why in failed.items():
        print("FAILED %s" % why)
    bad = [s.backend for s in summaries if not (s.identical and s.loss_down)]
    if bad:
        print("CHECK FAILED (weights differ or loss not down): %s" % ", ".join(bad))
    return 1 if failed or bad else 0


if __name__ == "__main__":
    sys.exit(main())
