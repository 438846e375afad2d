"""The project's osu_bench/ programs built with one MPI stack's own mpicc.

A program built against one MPI does not run under another (Open MPI's
libmpi.so.40 is not MPICH's libmpi.so.12), so ``usb4bench run --mpi NAME``
and bench/compare_stacks.py use a build per stack, kept in
``<checkout>/.stacks/<NAME>/osu_bench/`` (outside a checkout the user's
cache folder, locations.build_cache; or ``out_root/<NAME>``) and rebuilt
only when a source is newer than its program.  The sources are the
checkout's osu_bench/ or, installed, the package's copy of them
(locations.osu_sources).  From a checkout the Debian 12 stack uses the
tree's own build (scripts/build.sh).

The helpers (osu_common.c, osu_cpu.c) are linked into every program, as
osu_bench/Makefile.am does.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from pathlib import Path

from . import launch, locations
from .stacks import Stack

HELPERS = ("osu_common", "osu_cpu")  # linked into every program, not programs
CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra"]
AC_INIT_RE = re.compile(r"AC_INIT\(\[[^]]*\],\s*\[([^]]+)\]")
COMPILE_TIMEOUT = 120.0  # seconds per program


class BuildError(RuntimeError):
    """mpicc failed: the message holds its command and output."""


def sources() -> Path:
    """The osu_bench sources' folder; BuildError when there is none."""
    found = locations.osu_sources()
    if found is None:
        raise BuildError("no osu_bench sources: not run from a checkout of the project, "
                         "and the package holds none (built without them)")
    return found


def programs(src: Path | None = None) -> list[Path]:
    """The benchmark sources (every osu_*.c but the shared helpers)."""
    src = sources() if src is None else src
    return sorted(p for p in src.glob("osu_*.c") if p.stem not in HELPERS)


def version_define(src: Path) -> str:
    """-DUSB4_VERSION for the programs' banner: configure.ac's AC_INIT in a
    checkout (automake's PACKAGE_VERSION in the tree's own build), else the
    installed package's version."""
    try:
        found = AC_INIT_RE.search((src.parent / "configure.ac").read_text())
        version = found.group(1) if found else None
    except OSError:
        version = None
    if version is None:
        try:
            version = importlib.metadata.version("usb4fabric")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    return f'-DUSB4_VERSION="{version}"'


def _stale(exe: Path, sources: list[Path]) -> bool:
    return not exe.exists() or any(s.stat().st_mtime > exe.stat().st_mtime for s in sources)


def build(stack: Stack, out_root: Path | None = None,
          names: tuple[str, ...] | None = None) -> Path:
    """Folder holding the osu_bench programs built with stack's mpicc: those
    named ("osu_latency", ...), or every one."""
    src = sources()
    out = (out_root or locations.build_cache()) / stack.name / "osu_bench"
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(stack.env())
    helpers = [src / f"{h}.c" for h in HELPERS]
    common = helpers + [src / f"{h}.h" for h in HELPERS]
    for source in programs(src):
        exe = out / source.stem
        if (names is not None and source.stem not in names) or not _stale(exe, [source] + common):
            continue
        argv = stack.mpicc() + CFLAGS + [version_define(src), "-o", str(exe), str(source),
                                         *map(str, helpers), "-lm"]
        done = launch.run(argv, COMPILE_TIMEOUT, env=env)
        if not done.ok:
            raise BuildError("%s: %s: %s\n%s%s" % (stack.name, " ".join(argv),
                                                   done.error or "exit %s" % done.returncode,
                                                   done.stdout, done.stderr))
    return out
