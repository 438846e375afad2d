"""ccl_bench's output: a real table parses; a malformed line, a wrong element
(error count), a missing footer or header fail the parse, naming the line."""

from pathlib import Path

import pytest

from usb4fabric import ccl_parse
from usb4fabric.ccl_parse import CclParseError

FIXTURES = Path(__file__).resolve().parent / "fixtures"

GOOD = (FIXTURES / "ccl_bench_allreduce_usb4.txt").read_text()


def test_real_output_parses():
    out = ccl_parse.parse(GOOD)
    assert (out.collective, out.dtype, out.ranks) == ("allreduce", "float32", 2)
    assert out.library.startswith("oneCCL 2022.")
    sizes = [r.size for r in out.rows]
    assert sizes[0] == 8 and sizes[-1] == 1 << 20 and len(sizes) == 18
    assert all(r.errors == 0 and r.count * 4 == r.size for r in out.rows)
    # allreduce at 2 ranks: busbw = algbw * 2(n-1)/n = algbw
    assert all(abs(r.busbw - r.algbw) < 1e-4 for r in out.rows)
    assert out.errors == 0 and out.avg_busbw > 0
    assert len(out.log) == 2 and "CCL_WARN" in out.log[0][1]  # oneCCL's own lines


def _replace_row(text, size, new):
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.split() and line.split()[0] == str(size))
    lines[i] = new
    return "\n".join(lines) + "\n"


def test_error_count_fails_the_parse():
    row = next(line for line in GOOD.splitlines() if line.split() and line.split()[0] == "4096")
    bad = _replace_row(GOOD, 4096, row.rsplit(" ", 1)[0] + " 3")
    with pytest.raises(CclParseError, match="3 wrong element.*size 4096"):
        ccl_parse.parse(bad)


@pytest.mark.parametrize("line", [
    "           4096       1024    oops       0.01       0.01       0",  # not a number
    "           4096       1024     10.0       0.01       0",  # a column missing
    "           4096       1024     10.0       0.01       0.01       0   7",  # one too many
    "some stray text from a rank",
])
def test_malformed_line_fails_the_parse(line):
    with pytest.raises(CclParseError, match="line 1[0-9]"):
        ccl_parse.parse(_replace_row(GOOD, 4096, line))


def test_truncated_output_fails_the_parse():
    cut = "\n".join(GOOD.splitlines()[:-3]) + "\n"
    with pytest.raises(CclParseError, match="no footer"):
        ccl_parse.parse(cut)


def test_no_header_or_wrong_columns_fail_the_parse():
    no_header = "\n".join(line for line in GOOD.splitlines() if "ccl_bench:" not in line)
    with pytest.raises(CclParseError):
        ccl_parse.parse(no_header)
    with pytest.raises(CclParseError, match="column header"):
        ccl_parse.parse(GOOD.replace("busbw(GB/s)", "bw(MB/s)"))
    with pytest.raises(CclParseError, match="not ccl_bench output"):
        ccl_parse.parse("")


def test_footer_must_agree_and_sizes_must_grow():
    with pytest.raises(CclParseError, match="footer says 5 errors"):
        ccl_parse.parse(GOOD.replace("errors: 0", "errors: 5"))
    rows = [line for line in GOOD.splitlines() if line.strip() and line.strip()[0].isdigit()]
    swapped = GOOD.replace(rows[3], "@@").replace(rows[4], rows[3]).replace("@@", rows[4])
    with pytest.raises(CclParseError, match="size .* after"):
        ccl_parse.parse(swapped)
