"""Per-rail counters the usb4 provider logs at close, as data.

An endpoint whose udp link has several rails (one socket per cable) logs,
with ``FI_LOG_LEVEL=info``, one line per rail when it closes::

    ... udp rail tb1: retired; datagrams sent 12 bytes sent 34 datagrams
    received 5 bytes received 6 retransmitted 3 send errors 1 retired 1
    revived 0

``parse`` turns a process's stderr into one ``Rail`` per such line (two
endpoints of one process give two lines per rail); ``result_rows`` makes
rows for results.csv (metric ``rail <name> <counter>``, no size), so a
usb4bench run that asked for the log keeps what each rail carried.
"""

from __future__ import annotations

import dataclasses
import re

_LINE = re.compile(r"udp rail (?P<name>\S+): (?P<state>live|retired); (?P<rest>.*)$")
_PAIR = re.compile(r"([a-z][a-z ]*?) (\d+)(?= |$)")
COUNTERS = ("datagrams_sent", "bytes_sent", "datagrams_received", "bytes_received",
            "retransmitted", "send_errors", "retired", "revived")


@dataclasses.dataclass
class Rail:
    """One rail line: the interface, its state at close and its counters."""

    name: str
    state: str
    counters: dict[str, int]

    @property
    def live(self) -> bool:
        return self.state == "live"


def parse(log: str) -> list[Rail]:
    """Every rail line of a process's stderr, in order."""
    rails = []
    for line in log.splitlines():
        m = _LINE.search(line)
        if not m:
            continue
        counters = {name.strip().replace(" ", "_"): int(value)
                    for name, value in _PAIR.findall(m.group("rest"))}
        rails.append(Rail(m.group("name"), m.group("state"), counters))
    return rails


def totals(rails: list[Rail]) -> dict[str, dict[str, int]]:
    """Counters summed per rail name (endpoints and processes together)."""
    out: dict[str, dict[str, int]] = {}
    for rail in rails:
        into = out.setdefault(rail.name, {})
        for name, value in rail.counters.items():
            into[name] = into.get(name, 0) + value
    return out


def result_rows(rails: list[Rail], base: dict) -> list[dict]:
    """Rows for results.csv: base (fabric, benchmark, ...) with each rail's
    summed counters as metric ``rail <name> <counter>``."""
    rows = []
    for name, counters in totals(rails).items():
        for counter, value in counters.items():
            unit = "B" if counter.startswith("bytes") else "count"
            rows.append(dict(base, size=None, metric="rail %s %s" % (name, counter),
                             value=value, unit=unit))
    return rows
