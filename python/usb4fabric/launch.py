"""Running commands: argv lists, timeouts, and no process left behind.

Every command runs in its own session (so in its own process group) with a
timeout.  On timeout, or when the caller is interrupted (Ctrl-C raises
KeyboardInterrupt while we wait), the whole tree is terminated: SIGTERM to
the group and to every descendant found in /proc (mpirun's ranks may sit in
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


def descendants(pid: int) -> list[int]:
    """Every descendant of pid, read from /proc (empty where there is none)."""
    parents: dict[int, list[int]] = {}
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(pids: list[int], pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


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
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in tree):
        time.sleep(0.05)


def _text(data) -> str:
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
