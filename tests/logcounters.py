"""The counters an endpoint logs at close, as one dict of name -> number.

With FI_LOG_LEVEL=info the udp link logs one line starting ``udp: sent``
and the core, when it dropped anything, one line holding ``dropped
frames:`` and, when it held a peer back or refused one, one holding
``guards:``; all are runs of ``<words> <number>`` pairs.  ``parse()``
collects every pair of those lines, so a counter added to the provider
needs no change here: its name is its words in lower case with every run
of other characters made one ``_`` ("foreign datagrams 3" -> foreign_datagrams,
"src-mismatch 1" -> src_mismatch, "half-open made 2" -> half_open_made,
"dropped: header 0" -> dropped_header).  What comes before ``udp:`` or
``dropped frames:`` or ``guards:`` on the line (log prefixes, the endpoint
id) is skipped.
A name met twice (two endpoints) is summed.
"""

from __future__ import annotations

import re

STARTS = ("udp: ", "dropped frames: ", "guards: ")
_NUMBER = re.compile(r"^\d+[;,.]?$")


def _name(words: list[str]) -> str:
    return re.sub(r"[^a-z0-9]+", "_", " ".join(words).lower()).strip("_")


def pairs(text: str) -> list[tuple[str, int]]:
    """The (name, number) pairs of one counter line's text, in order."""
    found, words = [], []
    for token in text.split():
        if _NUMBER.match(token) and words:
            found.append((_name(words), int(token.rstrip(";,."))))
            words = []
        else:
            words.append(token)
    return found


def parse(log: str) -> dict[str, int]:
    """Every counter of every counter line in log (stderr of a process)."""
    counters: dict[str, int] = {}
    for line in log.splitlines():
        for start in STARTS:
            at = line.find(start)
            if at < 0:
                continue
            for name, value in pairs(line[at + len(start):]):
                counters[name] = counters.get(name, 0) + value
            break
    return counters


def total(counters: dict[str, int], *names: str) -> int:
    """Sum of the named counters (a name not logged counts 0)."""
    return sum(counters.get(name, 0) for name in names)


_RAIL = re.compile(r"udp rail (\S+): (live|retired); (.*)$")


def rails(log: str) -> dict[str, dict]:
    """The per-rail lines of a log (``udp rail tb1: live; datagrams sent 3
    ...``), one dict per rail name: ``state`` ("live" or "retired"; retired
    if any endpoint logged it so) and its counters, summed over endpoints."""
    found: dict[str, dict] = {}
    for line in log.splitlines():
        m = _RAIL.search(line)
        if not m:
            continue
        rail = found.setdefault(m.group(1), {"state": "live"})
        if m.group(2) == "retired":
            rail["state"] = "retired"
        for name, value in pairs(m.group(3)):
            rail[name] = rail.get(name, 0) + value
    return found
