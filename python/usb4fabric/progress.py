"""How far a ``usb4bench run`` is, for the CLI to show on stderr.

On a terminal: a tqdm bar (the run under way, failures and skips so far).
Elsewhere (CI logs, nohup, a pipe): one line per finished run with the
counts and an estimate of the time left, so a log is never silent for
minutes and a reader can tell a hang from a long run.  Both follow
runner.Progress: run_started before each run, run_finished after it.
"""

from __future__ import annotations

import time
from typing import Callable, TextIO

from tqdm import tqdm

OK_STATUSES = ("ok", "skipped")  # every other status is a failed run


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min': short enough for one log line."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class RunTally:
    """Counts of finished runs and the time the measured (not skipped) ones took."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.start = clock()
        self.done = self.failed = self.skipped = 0
        self.measured_seconds = 0.0
        self._run_start = self.start

    def started(self) -> None:
        self._run_start = self.clock()

    def finished(self, status: str) -> None:
        self.done += 1
        if status == "skipped":
            self.skipped += 1
            return
        self.measured_seconds += self.clock() - self._run_start
        if status not in OK_STATUSES:
            self.failed += 1

    def elapsed(self) -> float:
        return self.clock() - self.start

    def seconds_left(self, total: int) -> float | None:
        """The mean measured run times the runs still to come; None before
        any run was measured (skips take no time and say nothing)."""
        measured = self.done - self.skipped
        if measured == 0:
            return None
        return self.measured_seconds / measured * max(total - self.done, 0)


class LineProgress:
    """One line per finished run: for logs, where a redrawn bar is noise."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.tally = RunTally(clock)

    def run_started(self, index: int, total: int, label: str) -> None:
        self.tally.started()

    def run_finished(self, index: int, total: int, label: str, status: str) -> None:
        t = self.tally
        t.finished(status)
        left = t.seconds_left(total)
        estimate = "about %s left" % duration(left) if left is not None else \
            "time left not known yet (no run measured)"
        self.stream.write("usb4bench: [%d/%d] %s: %s; %d failed, %d skipped so far; "
                          "%s elapsed, %s\n" % (index, total, label, status, t.failed,
                                                t.skipped, duration(t.elapsed()), estimate))
        self.stream.flush()

    def close(self) -> None:
        pass


class BarProgress:
    """A tqdm bar: the run under way as its description, counts as postfix."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.tally = RunTally()
        self.bar: tqdm | None = None  # made by the first run, which knows the total

    def run_started(self, index: int, total: int, label: str) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, file=self.stream, unit="run", dynamic_ncols=True)
        self.tally.started()
        self.bar.set_description_str(label)

    def run_finished(self, index: int, total: int, label: str, status: str) -> None:
        self.tally.finished(status)
        if self.bar is not None:
            self.bar.set_postfix_str("%d failed, %d skipped" % (
                self.tally.failed, self.tally.skipped), refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def for_stream(stream: TextIO) -> LineProgress | BarProgress:
    """A bar when stream is a terminal, else one line per run."""
    if hasattr(stream, "isatty") and stream.isatty():
        return BarProgress(stream)
    return LineProgress(stream)
