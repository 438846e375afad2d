"""After the suite: no namespace hosts, ns files or their processes left.

tests/multihost/conftest.py orders this module last.  What this pytest
process created carries its pid (``usb4t-<pid>-hN``); hosts of a creator
that died (a killed earlier run) must have been swept by the next Cluster.
Hosts of another live run on the same machine are not blamed.
"""

import os
import re
import time
from pathlib import Path

import pytest

from usb4fabric import nshosts  # noqa: E402

pytestmark = pytest.mark.multihost

SETTLE_SEC = 10  # a removed host's processes may need a moment to go


def settle(probe):
    """probe() once things had up to SETTLE_SEC to go away."""
    deadline = time.monotonic() + SETTLE_SEC
    while True:
        left = probe()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def ours_or_stale(names):
    mine = "%s%d-" % (nshosts.NS_PREFIX, os.getpid())
    bad = []
    for name in names:
        m = re.match(r"^usb4t-(\d+)-h\d+$", name)
        if name.startswith(mine) or (m and not nshosts._pid_alive(int(m.group(1)))):
            bad.append(name)
    return sorted(bad)


def test_no_namespaces_left():
    left = settle(lambda: ours_or_stale(nshosts.list_namespaces()))
    assert not left, "ip netns list still holds %s" % left


def test_no_uts_files_left():
    files = [p.stem for p in nshosts.UTS_DIR.glob("usb4t-*.uts")] if nshosts.UTS_DIR.is_dir() else []
    assert not ours_or_stale(files), "left in %s: %s" % (nshosts.UTS_DIR, ours_or_stale(files))


def test_no_host_processes_left():
    mark = ("%s=%s%d" % (nshosts.CLUSTER_ENV, nshosts.NS_PREFIX, os.getpid())).encode()

    def probe():
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                env = (entry / "environ").read_bytes().split(b"\0")
                if mark in env:
                    found[int(entry.name)] = (entry / "comm").read_text().strip()
            except OSError:
                continue
        return found

    left = settle(probe)
    assert not left, "processes started in this session's hosts still run: %s" % left
