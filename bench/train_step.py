#!/usr/bin/env python3
"""A training step across two hosts: gradients allreduced by oneCCL over usb4.

A benchmark, not a test (root needed).  It builds two hosts joined by one
veth cable ``tb0`` (usb4fabric/nshosts.py), and for each run starts one rank per
host (bench/train_worker.py under the collective library's venv python)
training the same seeded MLP (about 5.5 M parameters by default: a 22 MB
gradient buffer allreduced every step).  Runs:

  ccl-usb4           oneCCL (usb4fabric.ccl, ctypes) over the usb4 provider,
                     FI_USB4_IFACE=tb0
  ccl-usb4-portable  the same with FI_USB4_PORTABLE=1 (the provider's
                     portable paths)
  ccl-tcp            oneCCL over libfabric's tcp provider, FI_TCP_IFACE=tb0
  gloo               torch.distributed's gloo alone (not a default run)

In every oneCCL run torch's gloo steps alongside in the same processes, over
TCP on the same cable (init at host 0's cable address, GLOO_SOCKET_IFNAME=
tb0): the steps alternate, oneCCL then gloo, so both see the same load and
their ratio holds on a shared machine where absolute times drift (--no-pair
turns it off).  Printed per backend: the median time per step, the median
allreduce time (and the least disturbed one) and the allreduce's share of
the step (time in allreduce / step time, over the measured steps), steps/s,
the allreduce's rate, whether
the weights are bit-identical on both ranks (a SHA-256 of every parameter,
gathered from both), whether oneCCL and gloo summed the last gradients bit
for bit alike and whether the held-out loss went down; then each oneCCL
run over the gloo beside it (the ratio of the medians, and the median and
quartiles of the step-by-step ratios: their spread is the machine's noise),
and over ccl-tcp through their gloo.  With
--repeat N each run is made N times, interleaved, the medians over all.

It never asserts: a run that fails is reported with its error and left out
(the exit status is 1, as when a check fails).  Raw outputs go to --output.

    flock /work/bench.lock python3 bench/train_step.py [--steps 20] [--repeat 1]
        [--runs ccl-usb4,ccl-usb4-portable,ccl-tcp] [--no-pair] [--hidden 1536]
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
sys.path.insert(0, str(REPO / "python"))
from usb4fabric import ccl, nshosts  # noqa: E402
from usb4fabric.stacks import STACKS_DIR  # noqa: E402

WORKER = BENCH / "train_worker.py"
VENV = STACKS_DIR / "ccl2022-pypi"
IFACE = "tb0"
GLOO_PORT = 29514
RESULT_PREFIX = "TRAIN_RESULT "  # train_worker.py's last line
RUNS = ("ccl-usb4", "ccl-usb4-portable", "ccl-tcp")  # the default runs
WORKER_TIMEOUT = 150  # seconds per run


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


def worker_env(run: str, venv: Path, provider_dir: Path | None) -> dict[str, str]:
    """The environment of one rank of run (gloo's variables are always set:
    a oneCCL run steps gloo alongside)."""
    env = {"PYTHONPATH": str(REPO / "python"), "OMP_NUM_THREADS": "1",
           "GLOO_SOCKET_IFNAME": IFACE}
    if run == "gloo":
        return env
    provider = "tcp" if run == "ccl-tcp" else "usb4"
    env.update(ccl.rank_env(venv, provider, provider_dir, IFACE))
    if run == "ccl-usb4-portable":
        env["FI_USB4_PORTABLE"] = "1"
    return env


def worker_backends(run: str, pair_gloo: bool) -> list[str]:
    """The worker's --backends for run: oneCCL, with gloo stepping alongside."""
    if run == "gloo":
        return ["gloo"]
    return ["ccl", "gloo"] if pair_gloo else ["ccl"]


def worker_argv(run: str, venv: Path, rank: int, rundir: Path, master: str,
                model: Model, pair_gloo: bool = True) -> list[str]:
    return [str(venv / "bin" / "python"), str(WORKER), "--rank", str(rank),
            "--backends", ",".join(worker_backends(run, pair_gloo)),
            "--rundir", str(rundir), "--master", master] + model.args()


class BackendFailed(RuntimeError):
    """A rank exited non-zero, timed out or printed no result."""


def parse_result(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    return None


def run_pair(cluster, run: str, rundir: Path, provider_dir: Path | None, model: Model,
             venv: Path = VENV, pair_gloo: bool = True,
             timeout: float = WORKER_TIMEOUT) -> list[dict]:
    """Runs one rank of run in each of the cluster's first two hosts; returns
    their results (rank order).  Raises BackendFailed with both ranks'
    output otherwise; logs stay in rundir."""
    rundir.mkdir(parents=True, exist_ok=True)
    master = "%s:%d" % (cluster.hosts[0].addr, GLOO_PORT)
    env = worker_env(run, venv, provider_dir)
    procs, logs = [], []
    for rank in range(2):
        log = rundir / ("rank%d.log" % rank)
        with open(log, "w") as out:
            procs.append(cluster.popen(rank, worker_argv(run, venv, rank, rundir, master,
                                                         model, pair_gloo),
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
        raise BackendFailed("%s: %s\n%s" % (run, why, "\n".join(
            "--- rank %d\n%s" % (i, log.read_text(errors="replace")[-3000:])
            for i, log in enumerate(logs))))
    return results


@dataclasses.dataclass
class Summary:
    """One backend's figures in one run (its repeats pooled)."""

    run: str  # the process pair it ran in: ccl-usb4, ccl-usb4-portable, ccl-tcp, gloo
    backend: str  # ccl or gloo
    steps: int  # measured steps per rank
    params: int
    allreduce_bytes: int
    step_s: float  # median over the measured steps, rank 0
    allreduce_s: float  # median, rank 0
    allreduce_min_s: float  # the least disturbed allreduce, rank 0
    step_list: list[float]  # rank 0's measured steps, in order (for paired ratios)
    allreduce_list: list[float]
    share: tuple[float, float]  # time in allreduce / step time, per rank
    identical: bool  # weights bit-identical on both ranks, every repeat
    agree: bool  # the run's backends summed the same gradients bit for bit
    loss_before: float
    loss_after: float

    @property
    def label(self) -> str:
        return self.run if self.backend == "ccl" or self.run == "gloo" \
            else "gloo (in %s)" % self.run

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

    @property
    def ok(self) -> bool:
        return self.identical and self.agree and self.loss_down


def summarize(run: str, backend: str, repeats: list[list[dict]]) -> Summary:
    """repeats: the two ranks' results of each repeat of run."""
    per_rank = [[r for pair in repeats for r in pair if r["rank"] == rank] for rank in (0, 1)]
    step = [[t for r in rs for t in r["backends"][backend]["step_s"]] for rs in per_rank]
    reduce = [[t for r in rs for t in r["backends"][backend]["allreduce_s"]] for rs in per_rank]
    last = per_rank[0][-1]
    return Summary(
        run=run, backend=backend, steps=len(step[0]), params=last["params"],
        allreduce_bytes=last["allreduce_bytes"],
        step_s=statistics.median(step[0]), allreduce_s=statistics.median(reduce[0]),
        allreduce_min_s=min(reduce[0]), step_list=step[0], allreduce_list=reduce[0],
        share=tuple(sum(reduce[i]) / sum(step[i]) for i in (0, 1)),
        identical=all(a["weights_sha256"] == b["weights_sha256"]
                      for a, b in zip(per_rank[0], per_rank[1])),
        agree=all(r["backends_agree"] for rs in per_rank for r in rs),
        loss_before=last["loss_before"], loss_after=last["loss_after"])


def summaries_of(run: str, repeats: list[list[dict]]) -> list[Summary]:
    return [summarize(run, backend, repeats) for backend in repeats[0][0]["backends"]]


def paired_ratio(mine: list[float], theirs: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) of mine[k] / theirs[k]: step k of
    one backend over the step of the other next to it in time."""
    ratios = [a / b for a, b in zip(mine, theirs)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q1, q2, q3 = statistics.quantiles(ratios, n=4)
    return q1, q2, q3


def _ratio_lines(summaries: list[Summary]) -> list[str]:
    """Each oneCCL run over the gloo that stepped beside it (same processes,
    same load): ratio of the medians, and the median (quartiles) of the
    step-by-step ratios; then over ccl-tcp through their own gloo."""
    paired = {}
    lines = []
    for s in summaries:
        gloo = [g for g in summaries if g.run == s.run and g.backend == "gloo"]
        if s.backend != "ccl" or not gloo:
            continue
        g = gloo[0]
        paired[s.run] = (s.step_s / g.step_s, s.allreduce_s / g.allreduce_s)
        st = paired_ratio(s.step_list, g.step_list)
        ar = paired_ratio(s.allreduce_list, g.allreduce_list)
        lines.append("%-18s / gloo beside it: step %.3fx  allreduce %.3fx   step by step: "
                     "step %.3fx (%.2f-%.2f)  allreduce %.3fx (%.2f-%.2f)" % (
                         s.run, paired[s.run][0], paired[s.run][1], st[1], st[0], st[2],
                         ar[1], ar[0], ar[2]))
    for run, (st, ar) in paired.items():
        if "ccl-tcp" in paired and run != "ccl-tcp":
            base = paired["ccl-tcp"]
            lines.append("%-18s / ccl-tcp (each over its gloo): step %.3fx  allreduce %.3fx"
                         % (run, st / base[0], ar / base[1]))
    return lines


def format_table(summaries: list[Summary]) -> str:
    lines = ["%-28s %9s %12s %9s %13s %8s %8s %-10s %s"
             % ("backend", "ms/step", "allreduce ms", "(min ms)", "share r0/r1", "steps/s",
                "AR GB/s", "weights", "held-out loss")]
    for s in summaries:
        lines.append("%-28s %9.2f %12.2f %9.2f %6.1f%%/%4.1f%% %8.2f %8.3f %-10s %.3f -> %.3f%s" % (
            s.label, s.step_s * 1e3, s.allreduce_s * 1e3, s.allreduce_min_s * 1e3,
            100 * s.share[0],
            100 * s.share[1], s.steps_per_s, s.allreduce_gbs,
            "identical" if s.identical else "DIFFER", s.loss_before, s.loss_after,
            "" if s.ok else "  CHECK FAILED (sums agree: %s)" % s.agree))
    return "\n".join(lines + _ratio_lines(summaries))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--runs", default=",".join(RUNS),
                   help="comma-separated, from %s" % ", ".join(RUNS + ("gloo",)))
    p.add_argument("--no-pair", dest="pair_gloo", action="store_false",
                   help="oneCCL runs without gloo stepping alongside")
    p.add_argument("--repeat", type=int, default=1, help="runs of each, interleaved")
    p.add_argument("--provider-dir", type=Path, default=REPO / ".libs",
                   help="folder holding libusb4-fi.so (default: this tree's .libs)")
    p.add_argument("--venv", type=Path, default=VENV)
    p.add_argument("--output", type=Path, default=None, help="raw outputs (default: a temp dir)")
    for f in dataclasses.fields(Model):
        p.add_argument("--" + f.name, type=int, default=f.default)
    args = p.parse_args(argv)
    args.runs = [r for r in args.runs.split(",") if r]
    unknown = set(args.runs) - set(RUNS + ("gloo",))
    if unknown:
        p.error("unknown run(s) %s" % ", ".join(sorted(unknown)))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    why = venv_missing(args.venv)
    if why:
        print(why, file=sys.stderr)
        return 2
    model = Model(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Model)})
    out = args.output or Path(tempfile.mkdtemp(prefix="train_step-"))
    results: dict[str, list[list[dict]]] = {r: [] for r in args.runs}
    failed: dict[str, str] = {}
    with nshosts.Cluster(2) as cluster:
        for rep in range(args.repeat):
            for run in args.runs:
                if run in failed:
                    continue
                try:
                    results[run].append(run_pair(
                        cluster, run, out / ("%s-%d" % (run, rep)),
                        args.provider_dir.resolve(), model, args.venv, args.pair_gloo))
                except BackendFailed as exc:
                    failed[run] = str(exc)
    summaries = [s for r in args.runs if results[r] and r not in failed
                 for s in summaries_of(r, results[r])]
    first = summaries[0] if summaries else None
    print("train_step: 2 ranks on 2 namespace hosts over %s; MLP %d-%dx%d-16, %s parameters "
          "(%.1f MB allreduced per step), batch %d, %d thread(s); %d warmup + %d measured "
          "steps per backend x %d repeat(s)%s; raw outputs in %s" % (
              IFACE, model.inputs, model.hidden, model.layers,
              first.params if first else "?", first.allreduce_bytes / 1e6 if first else 0,
              model.batch, model.threads, model.warmup, model.steps, args.repeat,
              ", gloo stepping alongside each oneCCL run" if args.pair_gloo else "", out))
    print(format_table(summaries))
    for why in failed.values():
        print("FAILED %s" % why)
    return 1 if failed or not all(s.ok for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
