"""Parsing the output of ccl_bench (ccl_bench/, the collective benchmark).

Its format is fixed (ccl_bench/ccl_print.c)::

    # usb4 ccl_bench: allreduce dtype=float32 ranks=2 library=oneCCL 2022.1.0
    #       size(B)      count   time(us)  algbw(GB/s)  busbw(GB/s)  errors
                  8          2      12.34       0.0006       0.0006       0
    # avg busbw (GB/s): 0.0006   errors: 0

'#' lines are comments.  oneCCL writes its own log lines to stdout too
(``2026:11:30-19:15:46:27003 |CCL_WARN| ...``): those are kept apart in
``CclOutput.log``.  Anything else is malformed, and so is a row whose
error count is not 0, a missing header or footer, a footer whose error
total disagrees with the rows, or sizes that do not grow: ``parse`` raises
``CclParseError`` for each, naming the line.  Pure: text in, data out.
"""

from __future__ import annotations

import dataclasses
import re

HEADER_RE = re.compile(r"^# usb4 ccl_bench: (?P<coll>\w+) dtype=(?P<dtype>\w+) "
                       r"ranks=(?P<ranks>\d+) library=(?P<library>.+?)\s*$")
COLUMNS = ("size(B)", "count", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "errors")
NUMBER = r"(\d+(?:\.\d+)?)"
ROW_RE = re.compile(r"^\s*(\d+)\s+(\d+)\s+%s\s+%s\s+%s\s+(\d+)\s*$" % (NUMBER, NUMBER, NUMBER))
FOOTER_RE = re.compile(r"^# avg busbw \(GB/s\): %s\s+errors: (\d+)\s*$" % NUMBER)
# oneCCL's own log lines: "<date>:<time>:<pid>[:[rank]] |CCL_LEVEL| ..."
LIBRARY_LOG_RE = re.compile(r"^\d{4}[:-]\d\d[:-]\d\d[-\s:][\d:]+.*\|(CCL_\w+|ERROR|WARN\w*|INFO)\|")


class CclParseError(ValueError):
    """The output is not a complete, clean ccl_bench table."""


@dataclasses.dataclass(frozen=True)
class CclRow:
    size: int  # bytes (nccl-tests' size: see ccl_bench.h)
    count: int  # elements
    time_us: float
    algbw: float  # GB/s
    busbw: float  # GB/s
    errors: int
    line: int  # 1-based line number in the output


@dataclasses.dataclass
class CclOutput:
    collective: str
    dtype: str
    ranks: int
    library: str
    rows: list[CclRow]
    avg_busbw: float
    errors: int
    log: list[tuple[int, str]]  # the library's own log lines, with line numbers


def _row(number: int, text: str) -> CclRow:
    m = ROW_RE.match(text)
    if not m:
        raise CclParseError(f"line {number}: malformed row: {text.strip()[:80]!r}")
    size, count, t, alg, bus, errors = m.groups()
    row = CclRow(int(size), int(count), float(t), float(alg), float(bus), int(errors), number)
    if row.errors:
        raise CclParseError(f"line {number}: {row.errors} wrong element(s) at size "
                            f"{row.size} B: the collective's result was not checked correct")
    return row


def _check_columns(number: int, text: str) -> None:
    if tuple(text.lstrip("#").split()) != COLUMNS:
        raise CclParseError(f"line {number}: column header {text.strip()[:80]!r}, "
                            f"expected {' '.join(COLUMNS)}")


@dataclasses.dataclass
class _State:
    header: re.Match | None = None
    columns: bool = False
    footer: re.Match | None = None


def _comment(state: _State, number: int, text: str) -> None:
    if state.footer:
        raise CclParseError(f"line {number}: text after the footer: {text.strip()[:80]!r}")
    header, footer = HEADER_RE.match(text), FOOTER_RE.match(text)
    if header:
        if state.header:
            raise CclParseError(f"line {number}: a second ccl_bench header")
        state.header = header
    elif not state.header and "ccl_bench" in text:
        raise CclParseError(f"line {number}: malformed header {text.strip()[:80]!r}")
    elif state.header and not state.columns:
        _check_columns(number, text)
        state.columns = True
    elif footer:
        state.footer = footer


def _data_line(state: _State, rows: list[CclRow], number: int, text: str) -> None:
    if not state.columns or state.footer:
        where = "before the column header" if not state.columns else "after the footer"
        raise CclParseError(f"line {number}: {where}: {text.strip()[:80]!r}")
    row = _row(number, text)
    if rows and row.size <= rows[-1].size:
        raise CclParseError(f"line {number}: size {row.size} after {rows[-1].size}")
    rows.append(row)


def parse(text: str) -> CclOutput:
    """The table of one ccl_bench run; CclParseError when it is not clean."""
    state, log = _State(), []
    rows: list[CclRow] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if LIBRARY_LOG_RE.match(line):
            log.append((number, line))
        elif line.startswith("#"):
            _comment(state, number, line)
        else:
            _data_line(state, rows, number, line)
    if not state.header:
        raise CclParseError("no '# usb4 ccl_bench:' header: not ccl_bench output")
    if not state.footer:
        raise CclParseError("no footer ('# avg busbw'): the run stopped before its end")
    if not rows:
        raise CclParseError("no rows between header and footer")
    errors = int(state.footer.group(2))
    if errors != sum(r.errors for r in rows):
        raise CclParseError(f"footer says {errors} errors, the rows {sum(r.errors for r in rows)}")
    h = state.header
    return CclOutput(h["coll"], h["dtype"], int(h["ranks"]), h["library"], rows,
                     float(state.footer.group(1)), errors, log)
