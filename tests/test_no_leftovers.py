"""After the suite: no usb4 shared-memory files and no MPI processes left.

conftest orders this module last.  Processes are those carrying this
session's mark in their environment (mpirun, orted, ranks), so another
user's MPI job on the same machine is not blamed; /dev/shm files that
existed before the session are not either.
"""

import subprocess
import time

import pytest

pytestmark = pytest.mark.mpi

SETTLE_SEC = 10  # launchers and ranks may need a moment to exit


def after_settling(probe):
    """What probe() still reports once things had SETTLE_SEC to go away."""
    deadline = time.monotonic() + SETTLE_SEC
    while True:
        left = probe()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_process_probe_sees_a_marked_child(leftovers):
    # The probe the next test relies on: a child carrying the session's mark
    # is reported while it lives and not after.
    child = subprocess.Popen(["sleep", "60"], env=leftovers["mark"])
    unmarked = subprocess.Popen(["sleep", "60"])
    try:
        found = leftovers["processes"]()
        assert child.pid in found and found[child.pid] == "sleep"
        assert unmarked.pid not in found
    finally:
        for proc in (child, unmarked):
            proc.kill()
            proc.wait()
    assert child.pid not in leftovers["processes"]()


def test_no_usb4_shm_files_left(leftovers):
    left = after_settling(leftovers["shm"])
    assert not left, "left in /dev/shm: %s" % sorted(left)


def test_no_mpi_processes_left(leftovers):
    left = after_settling(leftovers["processes"])
    assert not left, "processes of this session still running (pid: name): %s" % left
