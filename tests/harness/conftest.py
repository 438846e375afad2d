"""Fixtures of the usb4bench harness tests.

The harness lives in python/usb4fabric; until the package is installed it is
imported from the source tree.  ``fake_mpirun`` stands in for mpirun in the
failure-path tests: it drops every mpirun option and execs the program.
"""

import os
import stat
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON_DIR = REPO_ROOT / "python"
if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# mpirun options that take a value; everything else starting with '-' is a flag
FAKE_MPIRUN = r"""#!/bin/sh
# fake mpirun: skip mpirun's options, exec the program with its arguments
while [ $# -gt 0 ]; do
    case "$1" in
        --mca) shift 3 ;;
        -np|-x|--host|--hostfile) shift 2 ;;
        -*) shift ;;
        *) exec "$@" ;;
    esac
done
echo "fake mpirun: no program" >&2
exit 2
"""


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fixtures_dir():
    return FIXTURES


@pytest.fixture
def fake_mpirun(tmp_path):
    return write_script(tmp_path / "mpirun", FAKE_MPIRUN)


@pytest.fixture
def provider_dir():
    path = Path(os.environ.get("USB4_PROVIDER_DIR", REPO_ROOT / ".libs")).resolve()
    if not (path / "libusb4-fi.so").is_file():
        pytest.fail(f"libusb4-fi.so not found in {path}: build the provider first",
                    pytrace=False)
    return path
