"""How the comparison benchmarks judge their figures: pure functions.

compare_local.py and compare_hosts.py measure; this module decides, from
the medians (and the repeats) they measured, what they print:

- a Target of the issue, over one size or a range of sizes, is PASS or MISS
  by its worst size (the largest ratio for "<=", the smallest for ">="),
  which the line names;
- sizes where usb4 is worse than usb4-base (the same stack with an older
  provider, measured in the same run) by more than the run-to-run spread;
- CPU seconds per GB from osu_bw -C's '# cpu' lines (usb4fabric.cpu_time,
  which usb4bench run's results share).

No I/O here, so tests/test_bench_judge.py checks the logic without running
a benchmark.
"""

from __future__ import annotations

import dataclasses
import statistics

from usb4fabric.cpu_time import (  # noqa: F401  (bench's callers use them from here)
    MACHINE_MIN_WALL_S,
    cpu_per_gb,
    parse_cpu,
)


@dataclasses.dataclass(frozen=True)
class Target:
    """usb4 / ref of program, at every size from lo to hi, op limit.

    usb4: the stack judged; None picks the suite's first usb4 stack.
    """

    text: str
    program: str
    lo: int
    hi: int
    limit: float
    op: str  # "<=" (latency: lower is better) or ">=" (bandwidth)
    ref: str
    usb4: str | None = None

    def __post_init__(self):
        if self.op not in ("<=", ">="):
            raise ValueError(f"op must be <= or >=, not {self.op!r}")
        if self.lo > self.hi:
            raise ValueError(f"empty size range {self.lo}..{self.hi}")


def at(text, program, size, limit, op, ref, usb4=None) -> Target:
    """A target at one size."""
    return Target(text, program, size, size, limit, op, ref, usb4)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def usb4_name(names) -> str:
    """The usb4 stack of a suite: the first name starting with 'usb4'
    that is not a base build (usb4, usb4-osc, usb4-keyed)."""
    return next((n for n in names if n.startswith("usb4") and not n.endswith("-base")),
                "usb4")


def size_ratios(usb4: dict[int, float], ref: dict[int, float], lo: int,
                hi: int) -> dict[int, float]:
    """usb4 / ref at every size in lo..hi both measured (and ref not 0)."""
    out = {}
    for size in sorted(set(usb4) & set(ref)):
        r = ratio(usb4[size], ref[size])
        if lo <= size <= hi and r is not None:
            out[size] = r
    return out


def worst(ratios: dict[int, float], op: str) -> tuple[int, float] | None:
    """The size that decides a target: largest ratio for '<=', smallest
    for '>='; ties go to the smaller size."""
    if not ratios:
        return None
    pick = max if op == "<=" else min
    size = pick(sorted(ratios), key=lambda s: ratios[s])
    return size, ratios[size]


def passes(r: float, limit: float, op: str) -> bool:
    return r <= limit if op == "<=" else r >= limit


def size_label(lo: int, hi: int) -> str:
    return f"{lo} B" if lo == hi else f"{lo}-{hi} B"


def judge_target(t: Target, data: dict[str, dict[str, dict[int, float]]]) -> str:
    """One PASS/MISS line: usb4 and ref figures at the deciding size, the
    ratio, and for a range the worst size and the range of ratios."""
    prog = data.get(t.program, {})
    name = t.usb4 or usb4_name(prog)
    ratios = size_ratios(prog.get(name, {}), prog.get(t.ref, {}), t.lo, t.hi)
    found = worst(ratios, t.op)
    if found is None:
        lacking = [n for n in (name, t.ref)
                   if not any(t.lo <= s <= t.hi for s in prog.get(n, {}))]
        return (f"n/a   {t.text}: no {' and no '.join(lacking) or 'usable'} result "
                f"at {size_label(t.lo, t.hi)}")
    size, r = found
    verdict = "PASS" if passes(r, t.limit, t.op) else "MISS"
    line = (f"{verdict}  {t.text}: {name} {prog[name][size]:.2f}, "
            f"{t.ref} {prog[t.ref][size]:.2f}, ratio {r:.3f}")
    if t.lo != t.hi:
        low, high = min(ratios.values()), max(ratios.values())
        line += (f" at the worst size {size} B (ratios {low:.3f}-{high:.3f} "
                 f"over {len(ratios)} sizes)")
    return line


def judge(data, targets) -> list[str]:
    """One PASS/MISS line per target of the issue."""
    return [judge_target(t, data) for t in targets]


def relative_spread(values: list[float]) -> float:
    """(max - min) / median of one stack's repeats at one size; 0 for a
    single run (no spread known)."""
    if len(values) < 2:
        return 0.0
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid else 0.0


@dataclasses.dataclass(frozen=True)
class Regression:
    size: int
    ratio: float      # usb4 / usb4-base, medians
    allowed: float    # the spread it exceeds


def regressions(usb4: dict[int, list[float]], base: dict[int, list[float]],
                higher_better: bool) -> list[Regression]:
    """Sizes where usb4 is worse than usb4-base by more than the spread.

    The spread at a size is the larger of the two stacks' relative spreads
    ((max - min) / median over its repeats).  usb4 is worse when its median
    latency exceeds base's by more than that fraction (usb4/base > 1 +
    spread), or its median bandwidth falls short by more (base/usb4 > 1 +
    spread).  With one repeat the spread is 0: every worse size is listed.
    """
    out = []
    for size in sorted(set(usb4) & set(base)):
        u, b = statistics.median(usb4[size]), statistics.median(base[size])
        if not u or not b:
            continue
        allowed = max(relative_spread(usb4[size]), relative_spread(base[size]))
        worse_by = b / u if higher_better else u / b
        if worse_by > 1 + allowed:
            out.append(Regression(size, u / b, allowed))
    return out


def format_regressions(name: str, base: str, found: list[Regression],
                       repeats: int) -> str:
    if not found:
        return f"{name} is not worse than {base} beyond the spread at any size"
    sizes = ", ".join(f"{r.size} ({r.ratio:.3f}, spread {r.allowed:.1%})" for r in found)
    note = " (one repeat: no spread known, every worse size listed)" if repeats < 2 else ""
    return f"{name} worse than {base} beyond the spread at: {sizes}{note}"


def shaped_share(mbps: float | None, rate_bit_s: float) -> float | None:
    """MB/s (1e6 B/s of payload) as a fraction of a shaped rate in bit/s."""
    if mbps is None or rate_bit_s <= 0:
        return None
    return mbps * 1e6 * 8 / rate_bit_s
