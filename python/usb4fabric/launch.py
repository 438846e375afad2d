"""Running commands: argv lists, timeouts, and no process left behind.

Every command runs in its own session (so in its own process group) with a
timeout.  On timeout, or when the caller is interrupted (Ctrl-C raises
KeyboardInterrupt while we wait), the whole tree is terminated: SIGTERM to
the group and to every descendant psutil finds (mpirun's ranks may sit in
groups of their own), then SIGKILL to whatever is still there after a grace
period.  The output captured so far is kept.

This is the lowest module of the harness: it imports nothing of usb4fabric.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
DEFAULT_TIMEOUT = 30.0  # seconds, for the small helper commands


@dataclasses.dataclass
class Completed:
    """What one command did.  ``error`` says why it did not run to the end."""

    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    elapsed: float  # seconds
    timed_out: bool = False
    error: str | None = None  # could not start, or timed out

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0


def descendants(pid: int) -> list[psutil.Process]:
    """Every live descendant of pid (empty where there is none, or pid is gone)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _signal(tree: list[psutil.Process], pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for process in tree:
        try:
            process.send_signal(sig)  # checks the pid was not reused since
        except psutil.Error:
            pass


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_tree(proc: subprocess.Popen, grace: float = KILL_GRACE) -> None:
    """Terminate proc's process group and all its descendants; wait for them."""
    tree = descendants(proc.pid)
    _signal(tree, proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not any(_alive(p) for p in tree):
            break
        time.sleep(0.05)
    tree += [p for p in descendants(proc.pid) if p not in tree]
    _signal(tree, proc.pid, signal.SIGKILL)
    # Not psutil.wait_procs: a zombie not ours to reap counts as gone here.
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in tree):
        time.sleep(0.05)


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data


def run(argv: list[str], timeout: float = DEFAULT_TIMEOUT, *,
        env: dict[str, str] | None = None, cwd: str | Path | None = None,
        grace: float = KILL_GRACE) -> Completed:
    """Run argv to completion or timeout; never raises for the command's sake.

    ``env`` replaces the environment when given.  KeyboardInterrupt is
    re-raised after the tree has been killed.
    """
    argv = [str(a) for a in argv]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
    except OSError as exc:
        return Completed(argv, None, "", "", 0.0, error=f"cannot start: {exc}")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc, grace)
        out, err = proc.communicate()
        return Completed(argv, proc.returncode, _text(out), _text(err),
                         time.monotonic() - start, timed_out=True,
                         error=f"timed out after {timeout:g} s")
    except BaseException:
        kill_tree(proc, grace)
        proc.communicate()
        raise
    return Completed(argv, proc.returncode, _text(out), _text(err),
                     time.monotonic() - start)


def output_of(argv: list[str], timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """stdout of a small helper command, or None when it fails."""
    done = run(argv, timeout)
    return done.stdout if done.ok else None
