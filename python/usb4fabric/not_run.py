"""Series that ran nowhere in a placement: named under its table, not a column.

A profile can be skipped at every run of a placement: shared memory between
two hosts (it reaches only ranks of one host), a profile without its device.
It measured nothing there, so a table column of "gap: skipped" in every row
would only say, many times over, that it is absent, and its heading would
read as if the fabric had been tried there.  The report leaves such a series
out of the placement's ratio table and says once, under the table, which
series did not run and why (the reasons its runs recorded).  A series with
at least one run that was not skipped keeps its column: its gaps are real.
"""

from __future__ import annotations

import pandas as pd

SKIPPED = "skipped"


def skipped_series(runs: pd.DataFrame, placement: str | None = None) -> dict[str, str]:
    """series -> why, for every series of placement (None: all) whose runs
    were all skipped, in the order of the runs."""
    here = runs if placement is None else runs[runs["placement"] == placement]
    out: dict[str, str] = {}
    for series in dict.fromkeys(here["series"]):
        mine = here[here["series"] == series]
        if (mine["status"] == SKIPPED).all():
            reasons = dict.fromkeys(str(e) for e in mine["error"] if isinstance(e, str) and e)
            out[str(series)] = "; ".join(reasons) or SKIPPED
    return out


def line(skipped: dict[str, str]) -> str | None:
    """The sentence under a ratio table naming what did not run, or None."""
    if not skipped:
        return None
    return "Not run here: " + "; ".join(f"{s} ({why})" for s, why in skipped.items()) + "."
