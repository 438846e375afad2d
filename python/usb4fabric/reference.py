"""Published figures from reports/reference/*.csv, each with its source.

Columns (the ones of reports/reference/published.csv)::

    fabric,system,benchmark,metric,msg_size_bytes,value,unit,hardware,source_url,note

How the metrics compare with OSU's:

- ``latency_oneway*`` is half a round trip, as OSU's osu_latency reports it;
- ``latency_rtt*`` is a whole round trip: halved (and labelled RTT/2) when it
  is drawn next to OSU latencies;
- ``bw_*`` in Gb/s is converted to MB/s (1 Gb/s = 125 MB/s, OSU's MB = 1e6 B);
- ``ib_*`` and perftest rows are verbs-level, not MPI-level: no MPI library
  overhead is in them, so they are lower bounds for MPI over the same NIC.

``msg_size_bytes`` may be ``na`` or ``small``: such rows are listed in the
report but cannot be placed on a message-size axis.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd

from . import locations
from .results import ResultsFileError

COLUMNS = ["fabric", "system", "benchmark", "metric", "msg_size_bytes", "value", "unit",
           "hardware", "source_url", "note"]
# The checkout's reports/reference, else the package's copy (locations.py).
REFERENCE_DIR = locations.reference_dir()
UNIT_TO_MBPS = {"Gb/s": 125.0, "MB/s": 1.0, "GB/s": 1000.0, "Mb/s": 0.125}
UNIT_TO_US = {"us": 1.0, "ms": 1000.0, "ns": 0.001}
NO_SIZE = ("", "na", "n/a", "small")


def level(benchmark: str) -> str:
    """At which level of the stack a published figure was measured."""
    b = benchmark.lower()
    if b.startswith(("ib_", "perftest", "uc_", "rdma ")):
        return "verbs-level"
    if b.startswith(("osu_", "imb")):
        return "MPI-level"
    if b.startswith("fi_"):
        return "libfabric-level"
    if b.startswith("iperf"):
        return "TCP-socket-level"
    if b.startswith("ping"):
        return "ping / application-level"
    return "other"


def source_link(source: str) -> str:
    """A URL for a source cell ("github.com/owner/repo path/in/repo" -> the repo)."""
    source = source.strip()
    if source.startswith(("http://", "https://")):
        return source.split()[0]
    first = source.split()[0] if source else ""
    if first.startswith("github.com/"):
        parts = first.split("/")
        repo = "/".join(parts[:3])
        rest = source[len(first):].strip()
        path = rest.split()[-1] if rest else ""
        if path and not path.startswith("@"):
            return f"https://{repo}/blob/HEAD/{path}"
        return f"https://{repo}"
    return f"https://{first}" if "." in first else ""


def _plot_value(metric: str, value: float, unit: str) -> tuple[str | None, float, str]:
    """(plot metric, value in plot units, label suffix) of one row."""
    m = metric.lower()
    if m.startswith("latency") and unit in UNIT_TO_US:
        us = value * UNIT_TO_US[unit]
        if "rtt" in m:
            return "latency", us / 2, "RTT/2"
        return "latency", us, ""
    if m.startswith("bw") and unit in UNIT_TO_MBPS:
        return "bandwidth", value * UNIT_TO_MBPS[unit], "bidir" if "bidi" in m else ""
    return None, math.nan, ""


def load_file(path: Path) -> list[dict]:
    """Rows of one reference CSV; ResultsFileError names file and line."""
    rows = []
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise ResultsFileError(path, 1, "empty file, expected a header")
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise ResultsFileError(path, 1, f"header lacks column(s) {', '.join(missing)}")
            for cells in reader:
                line = reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    raise ResultsFileError(path, line, f"{len(cells)} fields, the header "
                                           f"has {len(header)}")
                row = dict(zip(header, cells))
                rows.append(_normalise(row, path, line))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultsFileError(path, None, str(exc)) from None
    return rows


def _normalise(row: dict, path: Path, line: int) -> dict:
    try:
        row["value"] = float(row["value"])
    except ValueError:
        raise ResultsFileError(path, line, f"value {row['value']!r} is not a number") from None
    size = row["msg_size_bytes"].strip()
    if size.lower() in NO_SIZE:
        row["size"] = None
    elif size.isdigit():
        row["size"] = int(size)
    else:
        raise ResultsFileError(path, line, f"msg_size_bytes {size!r} is neither a "
                               f"number nor one of {', '.join(NO_SIZE[1:])}")
    if not row["source_url"].strip():
        raise ResultsFileError(path, line, "source_url is empty: every published "
                               "figure needs its source")
    row["plot_metric"], row["plot_value"], row["plot_note"] = _plot_value(
        row["metric"], row["value"], row["unit"].strip())
    row["level"] = level(row["benchmark"])
    row["link"] = source_link(row["source_url"])
    row["file"] = f"{path}:{line}"
    row["origin"] = "published"
    return row


def load(paths: list[Path] | None = None, folder: Path | None = REFERENCE_DIR) -> pd.DataFrame:
    """All reference rows (of the files given, else of folder/*.csv; none
    when there is no folder)."""
    if paths is not None:
        files = list(paths)
    else:
        files = sorted(folder.glob("*.csv")) if folder is not None else []
    rows = [r for p in files for r in load_file(Path(p))]
    for n, row in enumerate(rows, start=1):
        row["ref_id"] = f"P{n}"
    extra = ["ref_id", "size", "plot_metric", "plot_value", "plot_note", "level", "link", "file", "origin"]
    return pd.DataFrame(rows, columns=COLUMNS + extra)
