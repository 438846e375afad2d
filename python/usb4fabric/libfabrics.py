"""The libfabric libraries on this machine that can load the provider.

The provider is one binary built against the oldest headers it supports; it
serves whichever libfabric loads it (prov_usb4/src/api/usb4_libfabric.c).
This module finds the libraries to show that: the system's, and those the
MPI stacks under ``USB4_STACKS_DIR`` (default /var/lib/usb4-stacks, made by
scripts/stacks.sh) bring with them.  A library inside the Debian 13 chroot
needs that chroot's C library, so it is listed apart (``chroot_libfabric``).

    python3 -m usb4fabric.libfabrics            # version and folder of each
    python3 -m usb4fabric.libfabrics --dir 2    # folder of the newest 2.x
"""

from __future__ import annotations

import argparse
import ctypes.util
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

DEFAULT_STACKS_DIR = Path("/var/lib/usb4-stacks")
CHROOT_NAME = "trixie"
_VERSION_PROBE = ("import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); "
                  "v = lib.fi_version(); print(v >> 16, v & 0xffff)")


@dataclasses.dataclass(frozen=True)
class Libfabric:
    path: Path  # the libfabric.so.1 file
    version: tuple[int, int]

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def label(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


def stacks_dir() -> Path:
    return Path(os.environ.get("USB4_STACKS_DIR") or DEFAULT_STACKS_DIR)


def version_of(path: Path) -> tuple[int, int] | None:
    """fi_version() of the library at path, asked in a child process."""
    try:
        done = subprocess.run([sys.executable, "-c", _VERSION_PROBE, str(path)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    major, minor = done.stdout.split()
    return int(major), int(minor)


def _system_library() -> Path | None:
    name = ctypes.util.find_library("fabric")
    if not name:
        return None
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                   "/usr/lib64", "/usr/lib", "/usr/local/lib"):
        candidate = Path(folder) / name
        if candidate.exists():
            return candidate.resolve()
    return None


def _stack_libraries(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if entry.name == CHROOT_NAME or not entry.is_dir():
            continue
        found += sorted(entry.glob("lib/**/libfabric.so.1"))
    return found


def found() -> list[Libfabric]:
    """Every libfabric this machine's programs can load, oldest first, one per
    version (the first found of each)."""
    by_version: dict[tuple[int, int], Libfabric] = {}
    system = _system_library()
    for path in ([system] if system else []) + _stack_libraries(stacks_dir()):
        version = version_of(path)
        if version and version not in by_version:
            by_version[version] = Libfabric(path, version)
    return [by_version[v] for v in sorted(by_version)]


def chroot_root() -> Path:
    return stacks_dir() / CHROOT_NAME


def chroot_libfabric() -> Path | None:
    """libfabric.so.1 inside the Debian 13 chroot, if it is there."""
    for candidate in sorted(chroot_root().glob("usr/lib/*/libfabric.so.1")):
        return candidate
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", metavar="MAJOR",
                        help="print only the folder of the newest library of "
                             "this major version (exit 1 if none)")
    args = parser.parse_args(argv)
    libs = found()
    if args.dir is not None:
        matching = [lib for lib in libs if str(lib.version[0]) == args.dir]
        if not matching:
            return 1
        print(matching[-1].folder)
        return 0
    for lib in libs:
        print(f"{lib.label}\t{lib.path}")
    chroot = chroot_libfabric()
    if chroot:
        print(f"chroot\t{chroot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
