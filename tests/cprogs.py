"""C test programs that the tests compile and drive.

``compile_c`` builds one with gcc into a tmp folder (a failed build fails the
test with gcc's message); ``HostProcess`` runs one inside a host of a
tests/hosts.py cluster with its output in files (no pipe to fill);
``wait_all`` waits for several, killing every process of the hosts and
failing the test on timeout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

CFLAGS = ["-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror"]


def compile_c(tmp_path_factory, src: Path, name: str, extra: tuple = ()) -> Path:
    """src compiled with -lfabric (and extra flags) into a tmp folder."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc not found", pytrace=False)
    exe = tmp_path_factory.mktemp(name) / name
    argv = ["gcc"] + CFLAGS + list(extra) + ["-o", str(exe), str(src), "-lfabric"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        pytest.fail("%s\n%s" % (" ".join(argv), proc.stderr), pytrace=False)
    return exe


class HostProcess:
    """A program running in one host, stdout and stderr in logdir."""

    def __init__(self, cluster, host, argv, env, logdir: Path, name: str):
        self.name = name
        self.out_path = logdir / (name + ".out")
        self.err_path = logdir / (name + ".err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = cluster.popen(host, argv, env=env, stdout=out, stderr=err)

    def wait(self, timeout):
        return self.proc.wait(timeout)

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def describe(self, limit: int = 4000) -> str:
        err = "\n".join(line for line in self.err.splitlines()
                        if "fi_param_get" not in line and "getinfo" not in line)
        return "--- %s exit %s\n%s%s" % (self.name, self.proc.returncode,
                                         self.out[-limit:], err[-limit:])

    def figures(self, pattern: str):
        """The first match of pattern in stdout (the test fails without)."""
        m = re.search(pattern, self.out)
        assert m, "no figures matching %r\n%s" % (pattern, self.describe())
        return m


def wait_all(cluster, procs, timeout: float) -> None:
    """Waits for every process; on timeout kills the hosts' and fails."""
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
