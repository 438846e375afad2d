"""Parsing the output of OSU micro-benchmarks, versions 5.x to 7.x, and of
this project's OSU-method programs (osu_bench/), which print the same format
under their own banner.

Both print '#' header lines, then one row per message size:

    # OSU MPI Latency Test v7.4          title and version (the OSU suite)
    # usb4 osu_bench (OSU method) MPI Latency Test, usb4 0.1.0
                                          the same, of this project's programs
    # Datatype: MPI_CHAR.                 "key: value" lines (7.x; one-sided)
    # Size       Avg Latency(us)          the column header
    0                       0.21          rows: size, then the columns

Columns are separated by two or more spaces in the header (a column name may
hold one space: "Avg Latency(us)", "Bandwidth (MB/s)").  Barrier has no size
column.  Any line that is none of these (MPI warnings, "# [ pairs: 1 ]", junk)
is kept in ``ParsedOutput.unparsed`` with its line number, never dropped.

The parser is pure: text in, data out.
"""

from __future__ import annotations

import dataclasses
import math
import re

from . import cpu_time

# column name (normalised: lower case, no spaces) -> (metric, unit)
COLUMNS = {
    "latency(us)": ("latency", "us"),
    "avglatency(us)": ("latency", "us"),
    "minlatency(us)": ("latency_min", "us"),
    "maxlatency(us)": ("latency_max", "us"),
    "bandwidth(mb/s)": ("bandwidth", "MB/s"),
    "mb/s": ("bandwidth", "MB/s"),
    "messages/s": ("message_rate", "messages/s"),
    "iterations": ("iterations", "count"),
    "p50taillat(us)": ("latency_p50", "us"),
    "p90taillat(us)": ("latency_p90", "us"),
    "p99taillat(us)": ("latency_p99", "us"),
}
SIZE_COLUMN = "size"
VALIDATION_COLUMN = "validation"

OSU_BENCH_BANNER = "usb4 osu_bench (OSU method)"  # osu_bench/osu_common.h
OSU_BENCH_RE = re.compile(r"^#\s*(?P<title>" + re.escape(OSU_BENCH_BANNER)
                          + r"\s+.*?\bTest\b.*?),\s*usb4\s+(?P<version>\S+)\s*$")
SUITE_OSU = "OSU Micro-Benchmarks"
SUITE_OSU_BENCH = "usb4 osu_bench"
# title prefix -> the suite of programs that prints it
SUITES = ((OSU_BENCH_BANNER, SUITE_OSU_BENCH), ("OSU ", SUITE_OSU),
          ("mpi4py ", "usb4fabric mpi4py_bench"), ("ccl_bench", "usb4 ccl_bench"))
TITLE_RE = re.compile(r"^#\s*(?P<title>.*?\bTest\b.*?)\s*(?:v(?P<version>\d+(?:\.\d+)*))?\s*$")
KEYVAL_RE = re.compile(r"^#\s*(?P<key>[A-Za-z][A-Za-z ]*?)\s*:\s*(?P<value>.*?)\.?\s*$")
KNOWN_HEADER_RE = re.compile(
    r"Size|Avg Latency\s*\(us\)|Min Latency\s*\(us\)|Max Latency\s*\(us\)"
    r"|P\d+ Tail Lat\s*\(us\)|Latency\s*\(us\)|Bandwidth\s*\(MB/s\)|MB/s"
    r"|Messages/s|Iterations|Validation", re.IGNORECASE)


@dataclasses.dataclass
class Row:
    """One measured value."""

    size: int | None  # bytes; None for barrier
    metric: str
    value: float
    unit: str
    validation: str = ""  # "Pass", "Fail" or "" when not validated
    line: int = 0  # 1-based line number in the output


@dataclasses.dataclass
class ParsedOutput:
    title: str = ""  # "OSU MPI Latency Test", "usb4 osu_bench (OSU method) MPI Latency Test"
    version: str = ""  # OSU's "7.4", or the usb4 project's "0.1.0" after our banner
    meta: dict[str, str] = dataclasses.field(default_factory=dict)
    columns: list[str] = dataclasses.field(default_factory=list)
    rows: list[Row] = dataclasses.field(default_factory=list)
    unparsed: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    @property
    def suite(self) -> str:
        return suite_of(self.title)

    @property
    def validation_failed(self) -> bool:
        return any(r.validation.lower() == "fail" for r in self.rows)


def suite_of(title: str) -> str:
    """The suite whose banner a title is (SUITE_OSU, SUITE_OSU_BENCH, ...), or ""."""
    return next((suite for prefix, suite in SUITES if title.startswith(prefix)), "")


def suite_label(title: str, version: str) -> str:
    """What a reader is told ran, from a banner's title and version:
    "usb4 osu_bench 0.1.0 (this project's OSU-method programs, not the OSU
    suite)", "OSU Micro-Benchmarks 7.4", ..."""
    suite = suite_of(title)
    if suite == SUITE_OSU_BENCH:
        return (f"{SUITE_OSU_BENCH} {version} (this project's OSU-method programs, "
                "not the OSU suite)")
    if suite:
        return f"{suite} {version}".strip()
    return f"unknown suite (banner {title!r})" if title else "unknown suite (no banner)"


def _norm(column: str) -> str:
    return re.sub(r"\s+", "", column).lower()


def _is_header(body: str) -> bool:
    """Whether a '#' line (without the '#') names columns we know."""
    parts = [p for p in re.split(r"\s{2,}", body.strip()) if p]
    if parts and all(_norm(p) in COLUMNS or _norm(p) in (SIZE_COLUMN, VALIDATION_COLUMN)
                     for p in parts):
        return True
    return bool(KNOWN_HEADER_RE.search(body)) and not KNOWN_HEADER_RE.sub("", body).strip()


def split_header(body: str) -> list[str]:
    """Column names of a header line; falls back to known names when the
    columns are separated by single spaces."""
    parts = [p for p in re.split(r"\s{2,}", body.strip()) if p]
    if all(_norm(p) in COLUMNS or _norm(p) in (SIZE_COLUMN, VALIDATION_COLUMN)
           for p in parts):
        return parts
    return [m.group(0) for m in KNOWN_HEADER_RE.finditer(body)]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_row(fields: list[str], columns: list[str], lineno: int) -> list[Row] | None:
    """Rows of one data line, or None when it does not fit the header."""
    if len(fields) != len(columns):
        return None
    size = None
    values: list[tuple[str, str, float]] = []
    validation = ""
    for field, column in zip(fields, columns):
        key = _norm(column)
        if key == SIZE_COLUMN:
            if not field.isdigit():
                return None
            size = int(field)
        elif key == VALIDATION_COLUMN:
            if field.lower() not in ("pass", "fail"):
                return None
            validation = field.capitalize()
        else:
            number = _number(field)
            if number is None:
                return None
            metric, unit = COLUMNS.get(key, (column, ""))
            values.append((metric, unit, number))
    if not values:
        return None
    return [Row(size, m, v, u, validation, lineno) for m, u, v in values]


def _cpu_row(line: str, lineno: int) -> Row | None:
    """The cpu_s_per_gb row of a '# cpu' line, None for any other line (or
    one whose ranks' seconds or bytes are missing: it stays unparsed)."""
    parsed = cpu_time.parse_line(line)
    if parsed is None:
        return None
    per_gb, _ = cpu_time.cpu_per_gb(parsed[1])
    if per_gb is None:
        return None
    return Row(parsed[0], cpu_time.METRIC, per_gb, cpu_time.UNIT, "", lineno)


def parse(text: str) -> ParsedOutput:
    """Parse one OSU output (stdout of one run)."""
    out = ParsedOutput()
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            body = stripped[1:]
            cpu = _cpu_row(stripped, lineno)
            if cpu:
                out.rows.append(cpu)
                continue
            if _is_header(body):
                out.columns = split_header(body)
                continue
            title = OSU_BENCH_RE.match(stripped) or TITLE_RE.match(stripped)
            if title and not out.title:
                out.title = title.group("title")
                out.version = title.group("version") or ""
                continue
            keyval = KEYVAL_RE.match(stripped)
            if keyval:
                out.meta[keyval.group("key")] = keyval.group("value")
                continue
            out.unparsed.append((lineno, line))
            continue
        rows = _parse_row(stripped.split(), out.columns, lineno) if out.columns else None
        if rows is None:
            out.unparsed.append((lineno, line))
        else:
            out.rows.extend(rows)
    return out
