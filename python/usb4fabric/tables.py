"""Tables of the report, rendered by pandas (Markdown through tabulate).

Every table is a header and rows of cells (strings, already formatted); this
module only renders them, so the Markdown and the HTML report show the same
cells.  Cells are text: HTML is escaped except in the columns named raw (links
the report built itself), and a '|' in a Markdown cell is escaped so it does
not split the cell.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

import pandas as pd

NONE = "(none)"


def frame(header: Sequence[str], rows: Iterable[Sequence[object]]) -> pd.DataFrame:
    return pd.DataFrame([[("" if c is None else str(c)) for c in row] for row in rows],
                        columns=list(header), dtype=object)


def markdown(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub Markdown table, or "(none)" without rows."""
    df = frame(header, rows)
    if df.empty:
        return NONE
    df = df.map(lambda c: c.replace("|", "\\|").replace("\n", " "))
    df.columns = [h.replace("|", "\\|") for h in df.columns]
    # numparse off: the cells are formatted already ("2.000" stays "2.000")
    return str(df.to_markdown(index=False, tablefmt="github", disable_numparse=True))


def to_html(header: Sequence[str], rows: Iterable[Sequence[object]],
            raw: Sequence[str] = ()) -> str:
    """An HTML table (cells escaped but in the raw columns), or "(none)"."""
    df = frame(header, rows)
    if df.empty:
        return f"<p>{NONE}</p>"
    for column in df.columns:
        if column not in raw:
            df[column] = df[column].map(html.escape)
    return str(df.to_html(index=False, escape=False, border=0, classes="data"))
