"""Progress of a run: one line per run with counts and an estimate when not on
a terminal, a tqdm bar on one."""

import io
import subprocess
import sys

from conftest import PYTHON_DIR, write_script
from usb4fabric import progress


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Tty(io.StringIO):
    def isatty(self):
        return True


def feed(shown, clock, runs, total):
    for i, (status, seconds) in enumerate(runs, 1):
        shown.run_started(i, total, f"shm latency {i}/{total}")
        clock.now += seconds
        shown.run_finished(i, total, f"shm latency {i}/{total}", status)


def test_one_line_per_run_with_counts_and_estimate():
    clock, out = FakeClock(), io.StringIO()
    shown = progress.LineProgress(out, clock)
    feed(shown, clock, [("ok", 10), ("skipped", 0), ("failed", 20), ("ok", 30)], total=5)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert [line.split()[1] for line in lines] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]"]
    assert "0 failed, 0 skipped so far" in lines[0]
    assert "0 failed, 1 skipped so far" in lines[1]
    assert "1 failed, 1 skipped so far" in lines[2] and ": failed;" in lines[2]
    assert "1 failed, 1 skipped so far" in lines[3]
    # the mean measured run (skips take no time) times the runs still to come
    assert lines[0].endswith("10 s elapsed, about 40 s left")  # 10 s x 4
    assert lines[1].endswith("about 30 s left")  # 10 s x 3
    assert lines[2].endswith("about 30 s left")  # 15 s x 2
    assert lines[3].endswith("1 min 00 s elapsed, about 20 s left")


def test_no_estimate_before_a_run_was_measured():
    clock, out = FakeClock(), io.StringIO()
    shown = progress.LineProgress(out, clock)
    feed(shown, clock, [("skipped", 0)], total=3)
    assert out.getvalue().rstrip().endswith("time left not known yet (no run measured)")


def test_durations_read_at_a_glance():
    assert [progress.duration(s) for s in (0, 59.4, 65, 3600 + 125)] == \
        ["0 s", "59 s", "1 min 05 s", "1 h 02 min"]


def test_a_terminal_gets_a_tqdm_bar_and_a_log_does_not():
    assert isinstance(progress.for_stream(io.StringIO()), progress.LineProgress)
    tty = Tty()
    shown = progress.for_stream(tty)
    assert isinstance(shown, progress.BarProgress)
    feed(shown, FakeClock(), [("ok", 0), ("failed", 0)], total=3)
    shown.close()
    text = tty.getvalue()
    assert "2/3" in text and "1 failed, 0 skipped" in text and "\r" in text


def test_cli_not_on_a_terminal_prints_one_line_per_run(tmp_path, fixtures_dir, fake_mpirun):
    osu = tmp_path / "osu"
    osu.mkdir()
    write_script(osu / "osu_latency", f"#!/bin/sh\ncat {fixtures_dir / 'osu7_latency.txt'}\n")
    write_script(osu / "osu_bw", "#!/bin/sh\necho broken >&2\nexit 3\n")
    # usb4 with no provider is skipped: 2 profiles x 2 benchmarks x 2 repetitions
    proc = subprocess.run(
        [sys.executable, "-m", "usb4fabric.cli", "run", "--fabric", "shm,usb4", "--bench",
         "latency,bw", "--repeat", "2", "--osu-dir", str(osu), "--mpirun", str(fake_mpirun),
         "--provider-dir", str(tmp_path / "no-provider"), "--output", str(tmp_path / "res")],
        cwd=PYTHON_DIR, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # the bw runs failed
    lines = [line for line in proc.stderr.splitlines() if line.startswith("usb4bench: [")]
    assert len(lines) == 8, proc.stderr
    assert [line.split()[1] for line in lines] == [f"[{i}/8]" for i in range(1, 9)]
    assert "shm latency 1/2: ok; 0 failed, 0 skipped so far" in lines[0]
    assert "shm bw 2/2: failed; 2 failed, 0 skipped so far" in lines[3]
    assert lines[-1].split(": ", 1)[1].startswith("[8/8] usb4 bw 2/2: skipped; 2 failed, 4 skipped")
    assert all(" elapsed, about " in line and line.endswith(" left") for line in lines)
    assert "\r" not in proc.stderr  # no bar redrawn into a log
