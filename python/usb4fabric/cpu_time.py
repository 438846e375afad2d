"""CPU time per GB moved, from the '# cpu' lines of osu_bench's osu_bw -C.

osu_bench/osu_cpu.h prints, after each size's row, one comment line:

    # cpu size=1048576 bytes=1342177280 wall_s=0.3012 rank0_s=0.2950
      rank1_s=0.2990 machine_busy_s=0.6010 machine_irq_s=0.0400

(one line).  rank0_s and rank1_s are each rank's user + system seconds
(getrusage, every thread: a provider's progress thread counts) over the timed
loop, bytes the payload the loop moved.  The figure a reader is given, here,
in usb4bench's results (metric ``cpu_s_per_gb``) and in bench/'s tables, is

    (rank0_s + rank1_s) / (bytes / 1e9)     both ranks' CPU seconds per GB

and beside it the machine's busy seconds per GB where the loop was long
enough for /proc/stat's clock ticks to mean something.
"""

from __future__ import annotations

CPU_LINE = "# cpu "
METRIC = "cpu_s_per_gb"
UNIT = "s/GB"
# /proc/stat counts clock ticks (10 ms at USER_HZ 100): the machine's busy
# time is left out of loops shorter than this, where a tick is >5% of it.
MACHINE_MIN_WALL_S = 0.2


def parse_line(line: str) -> tuple[int, dict[str, float]] | None:
    """(size, its key=value fields) of one '# cpu' line, None for any other."""
    stripped = line.strip()
    if not stripped.startswith(CPU_LINE):
        return None
    fields = dict(f.split("=", 1) for f in stripped[len(CPU_LINE):].split() if "=" in f)
    try:
        size = int(fields.pop("size"))
        return size, {k: float(v) for k, v in fields.items()}
    except (KeyError, ValueError):
        return None


def parse_cpu(text: str) -> dict[int, dict[str, float]]:
    """Every '# cpu' line of an output, by size."""
    out: dict[int, dict[str, float]] = {}
    for line in text.splitlines():
        parsed = parse_line(line)
        if parsed:
            out[parsed[0]] = parsed[1]
    return out


def cpu_per_gb(row: dict[str, float]) -> tuple[float | None, float | None]:
    """(both ranks' CPU s, the machine's busy s) per GB (1e9 B) moved; None
    where unknown, or for the machine when the loop was too short."""
    gb = row.get("bytes", 0.0) / 1e9
    if gb <= 0:
        return None, None
    r0, r1 = row.get("rank0_s", -1.0), row.get("rank1_s", -1.0)
    busy = row.get("machine_busy_s", -1.0)
    if row.get("wall_s", 0.0) < MACHINE_MIN_WALL_S:
        busy = -1.0
    return ((r0 + r1) / gb if r0 >= 0 and r1 >= 0 else None,
            busy / gb if busy >= 0 else None)
