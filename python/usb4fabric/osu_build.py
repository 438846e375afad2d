"""The project's osu_bench/ programs built with one MPI stack's own mpicc.

A program built against one MPI does not run under another (Open MPI's
libmpi.so.40 is not MPICH's libmpi.so.12), so ``usb4bench run --mpi NAME``
and bench/compare_stacks.py use a build per stack, kept in
``<repo>/.stacks/<NAME>/osu_bench/`` (or ``out_root/<NAME>``) and rebuilt
only when a source is newer than its program.  The Debian 12 stack uses the
tree's own build (scripts/build.sh).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import launch
from .stacks import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
OSU_SRC = REPO_ROOT / "osu_bench"
BUILD_ROOT = REPO_ROOT / ".stacks"
CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra"]
COMPILE_TIMEOUT = 120.0  # seconds per program


class BuildError(RuntimeError):
    """mpicc failed: the message holds its command and output."""


def programs() -> list[Path]:
    """The benchmark sources (every osu_*.c but the shared helpers)."""
    return sorted(p for p in OSU_SRC.glob("osu_*.c") if p.name != "osu_common.c")


def _stale(exe: Path, sources: list[Path]) -> bool:
    return not exe.exists() or any(s.stat().st_mtime > exe.stat().st_mtime for s in sources)


def build(stack: Stack, out_root: Path = BUILD_ROOT) -> Path:
    """Folder holding every osu_bench program built with stack's mpicc."""
    out = out_root / stack.name / "osu_bench"
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(stack.env())
    common = [OSU_SRC / "osu_common.c", OSU_SRC / "osu_common.h"]
    for source in programs():
        exe = out / source.stem
        if not _stale(exe, [source] + common):
            continue
        argv = stack.mpicc() + CFLAGS + ["-o", str(exe), str(source),
                                         str(OSU_SRC / "osu_common.c"), "-lm"]
        done = launch.run(argv, COMPILE_TIMEOUT, env=env)
        if not done.ok:
            raise BuildError("%s: %s: %s\n%s%s" % (stack.name, " ".join(argv),
                                                   done.error or "exit %s" % done.returncode,
                                                   done.stdout, done.stderr))
    return out
