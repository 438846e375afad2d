"""The run-to-run spread, and when a change between two runs exceeds it.

A run repeats every benchmark (``--repeat``): how far its repetitions of one
size lie apart is what repeating the same run already moves.  A change
between two runs is only told as better or worse when the medians differ by
more than that (usb4bench compare).
"""

from __future__ import annotations

import dataclasses

SPREAD_RULE = ("run-to-run spread: the min-max range of a side's repetitions at a size; a "
               "change is flagged when the difference of the medians exceeds the wider of "
               "the two sides' spreads (no spread with one repetition: nothing flagged)")
HIGHER_IS_BETTER = {"bandwidth", "busbw", "message_rate"}


@dataclasses.dataclass(frozen=True)
class Side:
    """One folder's repetitions at one size."""

    median: float
    low: float
    high: float
    n: int

    @property
    def spread(self) -> float | None:
        return self.high - self.low if self.n >= 2 else None


def flag(old: Side, new: Side, metric: str) -> str:
    """The verdict on one size: better, worse, within spread, or no spread."""
    if old.spread is None or new.spread is None:
        return "no spread"
    delta = new.median - old.median
    if abs(delta) <= max(old.spread, new.spread):
        return "within spread"
    return "better" if (delta > 0) == (metric in HIGHER_IS_BETTER) else "worse"


