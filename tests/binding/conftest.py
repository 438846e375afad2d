"""Fixtures for the usb4fabric binding tests.

libfabric reads FI_PROVIDER_PATH once, when the process first calls it, so it is
set here, at collection, before any test runs: <repo>/.libs or $USB4_PROVIDER_DIR
(the folder the ``provider_dir`` fixture of tests/conftest.py checks). The tcp
control runs on loopback through fi_getinfo's node argument, not FI_TCP_IFACE,
so nothing here leaks into the environment of mpirun jobs of other suites.

usb4fabric is used installed (``python3 -m pip install -e python/``); failing
that, from python/ when its extension has been built in place.
"""

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("FI_PROVIDER_PATH",
                      str(Path(os.environ.get("USB4_PROVIDER_DIR", REPO_ROOT / ".libs")).resolve()))

try:
    import usb4fabric._libfabric  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO_ROOT / "python"))
    for name in [m for m in sys.modules if m == "usb4fabric" or m.startswith("usb4fabric.")]:
        del sys.modules[name]

from fabric_pair import PROVIDERS, Pair, open_info  # noqa: E402


@pytest.fixture(params=list(PROVIDERS))
def provider(request, provider_dir):
    return request.param


@pytest.fixture
def pair(provider):
    p = Pair(open_info(provider))
    yield p
    p.close()


@pytest.fixture
def usb4_pair(provider_dir):
    p = Pair(open_info("usb4"))
    yield p
    p.close()
