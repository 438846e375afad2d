"""Which benchmarks exist, and where their programs are.

The real OSU suite is preferred: ``--osu-dir``, then ``$OSU_DIR``, then
``osu_latency`` on PATH.  A folder may be any of

    <prefix>/libexec/osu-micro-benchmarks/mpi/{pt2pt,one-sided,collective}/   install, 5.x-7.x
    <build>/c/mpi/{pt2pt,one-sided,collective}/                              7.x build tree
    <build>/mpi/{pt2pt,one-sided,collective}/                                5.x/6.x build tree
    a flat folder of programs (also this project's osu_bench/)

and 7.x adds a level below the category (``pt2pt/standard``,
``collective/blocking``), which is searched too.  When no OSU suite is found
the project's own ``osu_bench/`` programs are used: the checkout's build when
run from a checkout (locations.py), else none here (``Suite.root`` None: the
CLI builds them from the package's sources, osu_build.py).  Which one was used is
recorded in ``Suite.kind`` ("osu" or "osu_bench").

The mpi4py benchmarks are always this package's ``mpi4py_bench`` module, the
collective-library benchmarks (``ccl_*``) this project's ``ccl_bench/ccl_bench``
(built when configure finds oneCCL; ccl_launch.py starts it), or ``ccl_bench``
on PATH outside a checkout.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import locations, mpi4py_bench

# Found from the working directory when the harness is imported.
OSU_BENCH_DIR = locations.osu_programs()
CCL_BENCH = locations.ccl_bench()
# Run by its path: it imports nothing of usb4fabric, so another stack's python
# (its own mpi4py) runs it without our site-packages on its PYTHONPATH.
MPI4PY_BENCH = Path(mpi4py_bench.__file__).resolve()
# 7.x puts a variant folder under the category; the blocking/standard one first
VARIANTS = ("", "standard", "blocking")
LAYOUTS = (
    ("libexec", "osu-micro-benchmarks", "mpi"),
    ("c", "mpi"),
    ("mpi",),
)


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One benchmark the harness knows: its program, kind and OSU arguments."""

    name: str  # "latency", "put_latency", "mpi4py_latency"
    program: str  # "osu_latency"; for mpi4py the bench sub-command
    category: str  # "pt2pt", "one-sided", "collective", "mpi4py"
    metric: str  # the metric plotted: "latency" or "bandwidth"
    args: tuple[str, ...] = ()  # extra arguments always given
    min_ranks: int = 2
    max_ranks: int | None = 2  # None: any number

    @property
    def one_sided(self) -> bool:
        return self.category == "one-sided"


def _b(name: str, program: str, category: str, metric: str, args: Iterable[str] = (),
       max_ranks: int | None = 2, min_ranks: int = 2) -> Benchmark:
    return Benchmark(name, program, category, metric, tuple(args), min_ranks, max_ranks)


# One-sided benchmarks use MPI_Win_create: on one host the default
# MPI_Win_allocate window is plain shared memory, whatever the fabric.
BENCHMARKS = {b.name: b for b in [
    _b("latency", "osu_latency", "pt2pt", "latency"),
    _b("bw", "osu_bw", "pt2pt", "bandwidth"),
    _b("bibw", "osu_bibw", "pt2pt", "bandwidth"),
    _b("mbw_mr", "osu_mbw_mr", "pt2pt", "bandwidth", max_ranks=None),
    _b("put_latency", "osu_put_latency", "one-sided", "latency", ["-w", "create"]),
    _b("get_latency", "osu_get_latency", "one-sided", "latency", ["-w", "create"]),
    _b("put_bw", "osu_put_bw", "one-sided", "bandwidth", ["-w", "create"]),
    _b("get_bw", "osu_get_bw", "one-sided", "bandwidth", ["-w", "create"]),
    _b("acc_latency", "osu_acc_latency", "one-sided", "latency", ["-w", "create"]),
    _b("allreduce", "osu_allreduce", "collective", "latency", ["-f"], max_ranks=None),
    _b("bcast", "osu_bcast", "collective", "latency", ["-f"], max_ranks=None),
    _b("alltoall", "osu_alltoall", "collective", "latency", ["-f"], max_ranks=None),
    _b("barrier", "osu_barrier", "collective", "latency", ["-f"], max_ranks=None),
    _b("mpi4py_latency", "latency", "mpi4py", "latency"),
    _b("mpi4py_bw", "bw", "mpi4py", "bandwidth"),
    # oneCCL over libfabric (ccl_bench, nccl-tests' bus bandwidth), 1 rank per host
    *[_b(f"ccl_{c}", "ccl_bench", "ccl", "busbw", ["-C", c], max_ranks=None, min_ranks=1)
      for c in ("allreduce", "allgather", "reduce_scatter", "broadcast", "alltoall")],
    _b("ccl_allreduce_bf16", "ccl_bench", "ccl", "busbw", ["-C", "allreduce", "-d", "bfloat16"],
       max_ranks=None, min_ranks=1),
]}


# osu_bench programs that take -C (their spec sets cpu_usage: osu_bench/osu_bw.c)
# and then print a '# cpu' line after each row.  The OSU suite has no -C.
CPU_USAGE_PROGRAMS = frozenset({"osu_bw"})


@dataclasses.dataclass
class Suite:
    """Where the programs come from."""

    kind: str  # "osu" (the OSU suite) or "osu_bench" (this project's)
    root: Path | None  # the folder given or found; None when nothing is there
    how: str  # "--osu-dir", "OSU_DIR", "PATH", "osu_bench"

    def cpu_args(self, bench: Benchmark) -> list[str]:
        """["-C"] where the program is this project's and measures CPU time
        with it, else nothing (a real OSU program would refuse the flag)."""
        if self.kind == "osu_bench" and bench.category == "pt2pt" \
                and bench.program in CPU_USAGE_PROGRAMS:
            return ["-C"]
        return []

    def program(self, bench: Benchmark) -> list[str] | None:
        """argv prefix running the benchmark, or None when the program is missing."""
        if bench.category == "mpi4py":
            return [sys.executable, str(MPI4PY_BENCH), bench.program]
        if bench.category == "ccl":
            return [str(CCL_BENCH)] if CCL_BENCH and CCL_BENCH.is_file() else None
        if self.root is None:
            return None
        path = find_program(self.root, bench)
        return [str(path)] if path else None


def find_program(root: Path, bench: Benchmark) -> Path | None:
    """The executable of bench under root in any known layout, or None."""
    candidates = [root / bench.program]
    for layout in LAYOUTS:
        for variant in VARIANTS:
            candidates.append(root.joinpath(*layout, bench.category, variant, bench.program))
        candidates.append(root.joinpath(*layout, bench.program))
    for variant in VARIANTS:
        candidates.append(root / bench.category / variant / bench.program)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def _looks_like_osu(root: Path) -> bool:
    return find_program(root, BENCHMARKS["latency"]) is not None


def locate(osu_dir: str | Path | None = None, env: Mapping[str, str] | None = None,
           path: str | None = None, fallback: Path | None = OSU_BENCH_DIR) -> Suite:
    """The suite to use: --osu-dir, $OSU_DIR, PATH, else osu_bench/ (root
    None when there is no checkout's build to fall back on).

    An --osu-dir or $OSU_DIR that holds no osu_latency is still used (its
    missing programs are reported per run), so a typo is never silently
    replaced by another suite.
    """
    env = os.environ if env is None else env
    given = (osu_dir, "--osu-dir") if osu_dir else (env.get("OSU_DIR"), "OSU_DIR")
    if given[0]:
        root = Path(given[0])
        kind = "osu_bench" if fallback and root.resolve() == fallback.resolve() else "osu"
        return Suite(kind, root, given[1])
    found = shutil.which("osu_latency", path=path if path is not None else env.get("PATH"))
    if found:
        folder = Path(found).resolve().parent
        if fallback is None or folder != fallback.resolve():
            # an installed suite: climb to its prefix when it has the usual layout
            for parent in folder.parents:
                if (parent / "libexec" / "osu-micro-benchmarks").is_dir():
                    return Suite("osu", parent, "PATH")
            return Suite("osu", folder, "PATH")
    return Suite("osu_bench", fallback, "osu_bench")
