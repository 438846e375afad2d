"""Only here because cffi_modules is a setup() keyword, and for the package
data copied from the rest of the project: everything else is in pyproject.toml.

An installed usb4fabric has no checkout beside it, so building the package
copies into it (usb4fabric/data/, same relative paths) the files the harness
needs from the project: the osu_bench sources (osu_build.py builds them with
an MPI stack's mpicc), scripts/chroot-run.sh (stacks in a Debian root) and
the published reference figures.  usb4fabric/locations.py finds them.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROJECT = Path(__file__).resolve().parent.parent
DATA = ["osu_bench/*.c", "osu_bench/*.h", "scripts/chroot-run.sh",
        "reports/reference/*.csv"]


class BuildWithProjectData(build_py):
    """build_py, then the project's files into the built package's data/."""

    def run(self):
        super().run()
        if self.editable_mode:
            return  # an editable install runs from a checkout: locations.py finds it
        target = Path(self.build_lib) / "usb4fabric" / "data"
        copied = 0
        for pattern in DATA:
            for source in sorted(PROJECT.glob(pattern)):
                dest = target / source.relative_to(PROJECT)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest)
                copied += 1
        if not copied:
            raise RuntimeError(f"no project files under {PROJECT}: build the package "
                               "from python/ of a checkout")


setup(cffi_modules=["usb4fabric/_build_libfabric.py:ffi"],
      cmdclass={"build_py": BuildWithProjectData})
