"""C programs of the project's tests and benchmarks, built with gcc against
libfabric and run inside a host of a nshosts.py cluster.

``gcc_build`` builds one; ``HostProcess`` runs one in a host with its output
in files (no pipe to fill); ``xmulti_memory`` reads usb4_xmulti's memory
line.  tests/cprogs.py adds the pytest side (a failed build or a timeout
fails the test); bench/ uses these directly.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .nshosts import Cluster, HostRef

CFLAGS = ["-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror"]


def gcc_build(src: Path, exe: Path, extra: tuple = ()) -> str | None:
    """src compiled (extra flags, then -lfabric) into exe; None, or why not."""
    if shutil.which("gcc") is None:
        return "gcc not found"
    argv = ["gcc"] + CFLAGS + list(extra) + ["-o", str(exe), str(src), "-lfabric"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "%s: %s" % (" ".join(argv), exc)
    if proc.returncode != 0:
        return "%s\n%s" % (" ".join(argv), proc.stderr)
    return None


class HostProcess:
    """A program running in one host, stdout and stderr in logdir."""

    def __init__(self, cluster: Cluster, host: HostRef, argv: list[str],
                 env: dict[str, str] | None, logdir: Path, name: str) -> None:
        self.name = name
        self.out_path = logdir / (name + ".out")
        self.err_path = logdir / (name + ".err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = cluster.popen(host, argv, env=env, stdout=out, stderr=err)

    def wait(self, timeout: float) -> int:
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

    def figures(self, pattern: str) -> re.Match[str]:
        """The first match of pattern in stdout (the test fails without)."""
        m = re.search(pattern, self.out)
        assert m, "no figures matching %r\n%s" % (pattern, self.describe())
        return m


XMULTI_MEM_LINE = (r"peers: %s (\d+) endpoint\(s\), (\d+) peer\(s\): VmRSS KiB setup (\d+) "
                   r"idle (\d+) \(\+(-?\d+)\) after (\d+) \(\+(-?\d+)\); VmData KiB setup "
                   r"(\d+) idle (\d+) \(\+(-?\d+)\) after (\d+) \(\+(-?\d+)\)")


def xmulti_memory(text: str, role: str) -> dict | None:
    """usb4_xmulti's memory line of role (server or client) in text:
    {'endpoints', 'peers', 'rss': (setup, idle, after), 'data': (...), 'line'}
    in KiB, or None."""
    m = re.search(XMULTI_MEM_LINE % role, text)
    if not m:
        return None
    g = [int(x) for x in m.groups()]
    return {"endpoints": g[0], "peers": g[1], "rss": (g[2], g[3], g[5]),
            "data": (g[7], g[8], g[10]), "line": m.group(0)}
