"""Where the harness finds the project's files: a checkout, the environment,
or the data shipped in the package.

usb4bench works installed like any other tool (``pip install python/``, not
editable): where the package itself sits says nothing about where the
project is.  A *checkout* is the folder at or above the working directory
holding the project's markers (configure.ac and prov_usb4/); run from one,
usb4bench uses that tree's build (.libs, osu_bench/, ccl_bench/) and
scripts.  Outside a checkout:

- the provider comes from ``--provider-dir``, ``$USB4_PROVIDER_DIR`` or
  libfabric's own ``$FI_PROVIDER_PATH`` (the first folder of it holding
  libusb4-fi.so);
- the osu_bench sources, scripts/chroot-run.sh and the published reference
  figures are the package's data (copied in by python/setup.py when the
  package is built); osu_bench programs are built from those sources with
  the MPI stack's mpicc into the user's cache folder;
- ccl_bench is whatever ``ccl_bench`` is on PATH.

Nothing here runs a command or prints.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PROVIDER_LIB = "libusb4-fi.so"
CHECKOUT_MARKERS = ("configure.ac", "prov_usb4/include/usb4.h")
# The package's own data folder: present in a built (installed) package only,
# filled by python/setup.py's build step.
PACKAGE_DATA = Path(__file__).resolve().parent / "data"


def checkout(start: Path | None = None) -> Path | None:
    """The project checkout at or above start (default: the working directory)."""
    here = Path.cwd() if start is None else Path(start)
    for folder in (here.resolve(), *here.resolve().parents):
        if all((folder / marker).exists() for marker in CHECKOUT_MARKERS):
            return folder
    return None


def _from_fi_provider_path(value: str) -> Path | None:
    folders = [Path(p) for p in value.split(":") if p]
    for folder in folders:
        if (folder / PROVIDER_LIB).is_file():
            return folder
    return folders[0] if folders else None


def provider_dir(option: str | Path | None = None, env: dict[str, str] | None = None,
                 start: Path | None = None) -> tuple[Path | None, str]:
    """(folder of libusb4-fi.so, how it was found); (None, why) when nothing says.

    --provider-dir, then $USB4_PROVIDER_DIR, then $FI_PROVIDER_PATH, then
    the checkout's .libs.
    """
    env = dict(os.environ) if env is None else env
    if option:
        return Path(option).resolve(), "--provider-dir"
    if env.get("USB4_PROVIDER_DIR"):
        return Path(env["USB4_PROVIDER_DIR"]).resolve(), "USB4_PROVIDER_DIR"
    found = _from_fi_provider_path(env.get("FI_PROVIDER_PATH", ""))
    if found is not None:
        return found.resolve(), "FI_PROVIDER_PATH"
    tree = checkout(start)
    if tree is not None:
        return tree / ".libs", "the checkout %s" % tree
    return None, ("no --provider-dir, USB4_PROVIDER_DIR or FI_PROVIDER_PATH, and "
                  "not run from a checkout of the project")


def _data_or_checkout(relative: str, start: Path | None = None) -> Path | None:
    """relative in the checkout, else in the package's data, else None."""
    tree = checkout(start)
    for base in ([tree] if tree else []) + [PACKAGE_DATA]:
        if (base / relative).exists():
            return base / relative
    return None


def osu_sources(start: Path | None = None) -> Path | None:
    """The folder of the osu_bench sources (osu_common.c and the programs)."""
    found = _data_or_checkout("osu_bench/osu_common.c", start)
    return found.parent if found else None


def osu_programs(start: Path | None = None) -> Path | None:
    """The checkout's built osu_bench/ folder (make builds it there), or None."""
    tree = checkout(start)
    return tree / "osu_bench" if tree else None


def ccl_bench(start: Path | None = None) -> Path | None:
    """The checkout's ccl_bench program path, else ccl_bench on PATH, else None."""
    tree = checkout(start)
    if tree is not None:
        return tree / "ccl_bench" / "ccl_bench"
    found = shutil.which("ccl_bench")
    return Path(found) if found else None


def chroot_run(start: Path | None = None) -> Path | None:
    """scripts/chroot-run.sh of the checkout, else the package's copy."""
    return _data_or_checkout("scripts/chroot-run.sh", start)


def reference_dir(start: Path | None = None) -> Path | None:
    """The folder of the published reference figures (published.csv)."""
    found = _data_or_checkout("reports/reference/published.csv", start)
    return found.parent if found else None


def build_cache(start: Path | None = None, env: dict[str, str] | None = None) -> Path:
    """Where programs built per MPI stack go: the checkout's .stacks, else
    $XDG_CACHE_HOME/usb4fabric/stacks (~/.cache by default)."""
    tree = checkout(start)
    if tree is not None:
        return tree / ".stacks"
    env = dict(os.environ) if env is None else env
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "usb4fabric" / "stacks"


def output_root() -> Path:
    """Default parent of usb4bench's outputs: reports/ under the working directory."""
    return Path.cwd() / "reports"
