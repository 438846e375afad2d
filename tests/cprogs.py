"""C test programs that the tests compile and drive: the pytest side of
usb4fabric/cprogs.py.

``compile_c`` builds one into a tmp folder (a failed build fails the test
with gcc's message); ``wait_all`` waits for several HostProcess, killing
every process of the hosts and failing the test on timeout.  ``gcc_build``,
``HostProcess`` and ``xmulti_memory`` are the package's (bench/ uses them
too).  pytest is imported only where a test fails.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from usb4fabric.cprogs import CFLAGS, XMULTI_MEM_LINE, HostProcess, gcc_build, xmulti_memory

__all__ = ["CFLAGS", "XMULTI_MEM_LINE", "HostProcess", "gcc_build", "xmulti_memory",
           "compile_c", "wait_all"]


def compile_c(tmp_path_factory, src: Path, name: str, extra: tuple = ()) -> Path:
    """src compiled with -lfabric (and extra flags) into a tmp folder."""
    import pytest

    exe = tmp_path_factory.mktemp(name) / name
    why = gcc_build(src, exe, extra)
    if why:
        pytest.fail(why, pytrace=False)
    return exe


def wait_all(cluster, procs, timeout: float) -> None:
    """Waits for every process; on timeout kills the hosts' and fails."""
    import pytest

    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        cluster.kill_all()
        for p in procs:
            p.proc.wait(10)
        pytest.fail("timed out after %d s\n%s" % (timeout, "\n".join(
            p.describe() for p in procs)), pytrace=False)
