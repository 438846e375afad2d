"""launch.run: timeouts and Ctrl-C leave no process behind."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from usb4fabric import launch

REPO_PYTHON = Path(__file__).resolve().parents[2] / "python"


def pids_with(marker: str) -> list[int]:
    """Live processes whose command line holds marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_gone(marker: str, seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids_with(marker)


CHILD = ("import signal, sys, time\n"
         "signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it\n"
         "time.sleep(300)\n")


def sleeper_tree(marker: str, folder: Path) -> list[str]:
    """A shell with two children in sessions of their own that ignore SIGTERM."""
    child = folder / "child.py"
    child.write_text(CHILD)
    run = f"setsid {sys.executable} {child} {marker}"
    return ["sh", "-c", f"{run} & {run} & echo started; wait # {marker}"]


def test_output_and_status():
    done = launch.run([sys.executable, "-c", "import sys; print('hi'); "
                       "print('err', file=sys.stderr); sys.exit(3)"], 20)
    assert (done.stdout, done.stderr, done.returncode) == ("hi\n", "err\n", 3)
    assert not done.ok and not done.timed_out and done.error is None


def test_missing_program_is_an_error_not_an_exception():
    done = launch.run(["/nonexistent/program"], 5)
    assert done.error.startswith("cannot start") and done.returncode is None


def test_timeout_kills_the_whole_tree(tmp_path):
    marker = f"usb4bench-test-{uuid.uuid4().hex}"
    done = launch.run(sleeper_tree(marker, tmp_path), timeout=2.0, grace=0.5)
    assert done.timed_out and "timed out" in done.error
    assert done.stdout == "started\n"  # what was printed before the timeout is kept
    assert wait_gone(marker) == []


def test_ctrl_c_kills_the_whole_tree(tmp_path):
    marker = f"usb4bench-test-{uuid.uuid4().hex}"
    script = tmp_path / "driver.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO_PYTHON)!r})\n"
        "from usb4fabric import launch\n"
        "try:\n"
        f"    launch.run({sleeper_tree(marker, tmp_path)!r}, timeout=120, grace=0.5)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(130)\n")
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while len(pids_with(marker)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(pids_with(marker)) >= 3
        driver.send_signal(signal.SIGINT)
        out, _ = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130 and out == "interrupted\n"
    assert wait_gone(marker) == []


@pytest.mark.mpi
def test_ctrl_c_leaves_no_mpi_ranks(tmp_path):
    """A real mpirun interrupted while its ranks sleep: no rank survives."""
    marker = f"{uuid.uuid4().int % 100000}.{uuid.uuid4().int % 1000:03d}7"
    script = tmp_path / "driver.py"
    argv = ["mpirun", "--allow-run-as-root", "-np", "2", "--mca", "pml", "ob1",
            "--mca", "btl", "vader,self", "sleep", marker]
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO_PYTHON)!r})\n"
        "from usb4fabric import launch\n"
        "try:\n"
        f"    launch.run({argv!r}, timeout=120, grace=2)\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n")
    driver = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 30
        while len([p for p in pids_with(marker)
                   if Path(f"/proc/{p}/comm").read_text().strip() == "sleep"]) < 2 \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        driver.send_signal(signal.SIGINT)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130
    assert wait_gone(marker) == []
