"""The report's headline: the few ratios a reader wants first.

usb4 against Ethernet and against shared memory at 8 B latency and at 1 MiB
bandwidth, once per placement (the cable between two hosts first, then other
hosts, then one host), and the CPU time per GB where the results carry it.
Every figure is a median over repetitions of one run; a ratio is of two
series measured in the same place.  Shared memory exists only within one
host: beside a two-host usb4 figure it is the same-host shm series, and the
row says so.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from .placement import CABLE, HOSTS, REPORT_ORDER, SAME_HOST
from .results import median_at

ORDER = REPORT_ORDER  # the placements (results.csv's "placement"), the cable first
WHERE = {CABLE: "2 hosts, over the cable", HOSTS: "between hosts", SAME_HOST: "one host"}
ETHERNET = ("ethernet", "tcp", "ethernet-btl")  # the first found is compared
SHM = ("shm",)
CPU_METRIC = "cpu_s_per_gb"
# (benchmark, metric, size, unit, what, higher is better)
POINTS = (("latency", "latency", 8, "us", "latency at 8 B", False),
          ("bw", "bandwidth", 1 << 20, "MB/s", "bandwidth at 1 MiB", True))
# shown where the results carry it (osu_bench's osu_bw -C: usb4bench run)
CPU_POINT = ("bw", CPU_METRIC, 1 << 20, "s/GB", "CPU time per GB at 1 MiB (both ranks)",
             False)
HEADER = ["where", "measure", "usb4", "Ethernet", "usb4 vs Ethernet", "shared memory",
          "usb4 vs shared memory"]


@dataclasses.dataclass
class Headline:
    rows: list[list[str]]
    notes: list[str]


def placements(results: pd.DataFrame) -> list[str]:
    """The placements present, in ORDER (unknown ones last)."""
    present = list(dict.fromkeys(results["placement"])) if len(results) else []
    return sorted(present, key=lambda p: ORDER.index(p) if p in ORDER else len(ORDER))


def _series_of(results: pd.DataFrame, placement: str, fabrics: tuple[str, ...]) -> str | None:
    here = results[results["placement"] == placement]
    for fabric in fabrics:
        hit = here[here["fabric"] == fabric]
        if len(hit):
            return str(hit["series"].iloc[0])
    return None


def _median(summary: pd.DataFrame, series: str | None, bench: str, metric: str,
            size: int) -> float | None:
    return None if series is None else median_at(summary, series, bench, metric, size)


def compare(a: float | None, b: float | None, higher_is_better: bool) -> str:
    """'0.06x (16.7x lower: better)' style text; 'not measured' when one lacks."""
    if a is None or b is None or b == 0 or a == 0:
        return "not measured"
    ratio = a / b
    better = ratio > 1 if higher_is_better else ratio < 1
    factor = ratio if ratio >= 1 else 1 / ratio
    word = "higher" if ratio > 1 else "lower"
    if abs(factor - 1) < 0.005:
        return f"{ratio:.2f}x (the same)"
    return f"{ratio:.2f}x ({factor:.1f}x {word}: {'better' if better else 'worse'})"


def _value(v: float | None, unit: str) -> str:
    return f"{v:.2f} {unit}" if v is not None else "not measured"


def build(results: pd.DataFrame, summary: pd.DataFrame, metadata: list[dict]) -> Headline:
    """The headline rows, one per placement and measure, and its notes."""
    rows: list[list[str]] = []
    notes: list[str] = []
    same_host_shm = _series_of(results, SAME_HOST, SHM) if len(results) else None
    for placement in placements(results):
        usb4 = _series_of(results, placement, ("usb4",))
        eth = _series_of(results, placement, ETHERNET)
        shm = _series_of(results, placement, SHM) or same_host_shm
        where = WHERE.get(placement, placement)
        for bench, metric, size, unit, what, higher in _points(summary):
            a = _median(summary, usb4, bench, metric, size)
            e = _median(summary, eth, bench, metric, size)
            s = _median(summary, shm, bench, metric, size)
            shm_text = _value(s, unit)
            if s is not None and placement != SAME_HOST:
                shm_text += " (same host)"
            rows.append([where, what, _value(a, unit), _value(e, unit), compare(a, e, higher),
                         shm_text, compare(a, s, higher)])
        if eth and usb4 and (usb4, eth) != ("usb4", "ethernet"):
            notes.append(f"{where}: usb4 is “{usb4}”, Ethernet “{eth}”.")
    missing = [m for m in metadata if m.get("placement_missing")]
    for m in missing:
        notes.append(f"The two-host runs over the cable are missing: {m['placement_missing']}.")
    if not any(p == CABLE for p in placements(results)) and not missing:
        notes.append("No two-host runs in these results: the figures are of one host "
                     "(usb4 over its shm link), not of a cable.")
    notes.append(cpu_note(results, summary))
    return Headline(rows, notes)


def _has_cpu(summary: pd.DataFrame) -> bool:
    return bool(len(summary)) and bool((summary["metric"] == CPU_METRIC).any())


def _points(summary: pd.DataFrame) -> tuple[tuple, ...]:
    """The measures of each placement: CPU time only where it was measured."""
    return POINTS + ((CPU_POINT,) if _has_cpu(summary) else ())


def cpu_note(results: pd.DataFrame, summary: pd.DataFrame) -> str:
    """What the CPU time per GB is where the results carry it, else where to get it."""
    if not _has_cpu(summary):
        return ("CPU time per GB: not in these results. This project's osu_bw measures it "
                "with `-C` (a `# cpu` line per size: both ranks' CPU seconds over the bytes "
                "moved), which `usb4bench run` passes when it runs osu_bench's programs, "
                "not the OSU suite's.")
    return ("CPU time per GB: both ranks' user + system seconds (getrusage, every thread) "
            "over osu_bw's timed loop, per 1e9 bytes moved; lower is better.")
