"""compare_hosts.py --suite shaped: osu_bw over cables shaped like USB4's.

Two cables, each a fresh pair of namespace hosts with tbf on both ends of
the veth (tests/hosts.py shape()):

  ring     10 Gbit/s at MTU 65522: one NHI DMA ring's ceiling
           (/work/shared/USB4-FACTS.md), thunderbolt-net's largest MTU
  4k       10 Gbit/s at MTU 4084: thunderbolt-net's payload per 4 KiB DMA
           frame, so every datagram is one frame

tbf's rate counts whole frames (IP + UDP + the 14-byte Ethernet header of
the veth), so payload can reach at most max_datagram / (mtu + 14) of it: the
"payload ceiling" printed per cable.  burst 1 MB and a 10 ms queue: a
burst above the 64 KiB frame, small beside the bytes one measurement moves
(osu_bw moves 1.3 GB at 1 MiB; the raw stream 100 windows, after 10 warm-up
windows that drain the bucket first).  The raw UDP stream also runs
unshaped once per cable: how far this machine's CPU carries it without
the shaper, so a stack below the shaped rate can be told from a shaper
that does not deliver it.
"""

from __future__ import annotations

import dataclasses
import os

import bench_judge
import compare_hosts as ch
import compare_local as local
import hosts
from bench_judge import at

ETHERNET_HEADER = 14  # bytes tbf counts on a veth beyond the IP packet
TBF_BURST = "1mb"
TBF_LATENCY = "10ms"
# Raw stream windows per size: 100 MB at 1 MiB, against tbf's 1 MB burst.
UDP_EXTRA = ("-i", "100")
SHARE = "shaped share"  # pseudo program: MB/s / shaped rate
CPU = "cpu s/GB"        # pseudo program: both ranks' CPU s per GB
RATE_REF = "shaped rate"


@dataclasses.dataclass(frozen=True)
class ShapedCable:
    tag: str
    what: str
    mtu: int
    rate: str       # tbf's rate argument
    rate_bit_s: float

    @property
    def max_datagram(self) -> int:
        return min(self.mtu, 65535) - hosts.IP_UDP_HEADERS

    @property
    def payload_ceiling(self) -> float:
        """Share of the shaped rate left for UDP payload."""
        return self.max_datagram / (self.mtu + ETHERNET_HEADER)


CABLES = [
    ShapedCable("ring", "10 Gbit/s, MTU 65522 (one NHI ring)", 65522, "10gbit", 10e9),
    ShapedCable("4k", "10 Gbit/s, MTU 4084 (4 KiB frames)", 4084, "10gbit", 10e9),
]


def targets() -> list[bench_judge.Target]:
    return [at("usb4 1 MiB >= 95% of the shaped rate", SHARE, local.BW_SIZE, 0.95, ">=",
               RATE_REF),
            at("usb4 1 MiB CPU s/GB (both ranks) <= tcp provider's", CPU, local.BW_SIZE,
               1.0, "<=", "tcp")]


def derived(mbps: dict[str, dict[int, float]], cpu: dict[str, dict[int, tuple]],
            rate_bit_s: float) -> dict[str, dict[str, dict[int, float]]]:
    """The pseudo programs SHARE (with RATE_REF at 1.0) and CPU, from osu_bw's
    medians and CPU medians, for bench_judge.judge."""
    share = {n: {s: bench_judge.shaped_share(v, rate_bit_s) for s, v in rows.items()}
             for n, rows in mbps.items()}
    sizes = sorted({s for rows in mbps.values() for s in rows})
    share[RATE_REF] = {s: 1.0 for s in sizes}
    per_gb = {n: {s: pair[0] for s, pair in rows.items() if pair[0] is not None}
              for n, rows in cpu.items()}
    return {SHARE: share, CPU: {n: r for n, r in per_gb.items() if r}}


def shaped_table(cable: ShapedCable, mbps, cpu, unshaped: dict[int, float]) -> list[str]:
    """Per size and stack: MB/s, % of the shaped rate, CPU s/GB (ranks)."""
    stacks = list(mbps)
    sizes = sorted({s for rows in mbps.values() for s in rows})
    lines = [f"{cable.what}: MB/s, % of the shaped rate ({cable.rate_bit_s / 8e6:.0f} MB/s), "
             "CPU s/GB of both ranks",
             f"{'Size':<10}" + "".join(f"{n + ' MB/s':>16}{'%':>8}{'s/GB':>8}" for n in stacks)
             + f"{'udp unshaped':>14}"]
    for size in sizes:
        line = f"{size:<10}"
        for n in stacks:
            v = mbps[n].get(size)
            share = bench_judge.shaped_share(v, cable.rate_bit_s)
            line += local.fmt(v, 16) + local.fmt(None if share is None else 100 * share, 8, 1)
            line += local.fmt(cpu.get(n, {}).get(size, (None, None))[0], 8, 3)
        lines.append(line + local.fmt(unshaped.get(size), 14))
    return lines


def shaper_check(cable: ShapedCable, mbps, unshaped: dict[int, float]) -> list[str]:
    """How close the raw stream and tcp come to the shaped rate at 1 MiB."""
    size = local.BW_SIZE
    out = [f"shaper check ({cable.what}; tbf rate {cable.rate} burst {TBF_BURST} latency "
           f"{TBF_LATENCY}; payload ceiling {100 * cable.payload_ceiling:.1f}% of the rate):"]
    for name in ("udp", "tcp", "btl-tcp"):
        share = bench_judge.shaped_share(mbps.get(name, {}).get(size), cable.rate_bit_s)
        out.append(f"  {name:8} at 1 MiB: " + ("-" if share is None else f"{100 * share:.1f}%"))
    free = unshaped.get(size)
    out.append("  udp unshaped at 1 MiB: " + ("-" if free is None else
               f"{free:.0f} MB/s = {100 * bench_judge.shaped_share(free, cable.rate_bit_s):.0f}%"
               " of the shaped rate (below 100%: this CPU, not tbf, is the limit)"))
    return out


def run_cable(cable, args, suite, wanted, programs, udp_exe, udp_missing, osu_dir, outdir):
    """One cable: its hosts, the unshaped raw stream, tbf, every stack."""
    with hosts.Cluster(2, mtu=cable.mtu) as cluster:
        os.environ[hosts.CLUSTER_ENV] = cluster.prefix  # for the launch agent
        print(f"\n=== cable {cable.tag}: {cable.what}; raw udp datagrams of "
              f"{cluster.cables[0].max_datagram} B (mtu - 28, as usb4's udp link)", flush=True)
        unshaped = {}
        if udp_exe and "udp" in wanted:
            res = ch.run_udp(cluster, udp_exe, "udp", "osu_bw", 0, outdir, args.timeout,
                             programs["osu_bw"], UDP_EXTRA, f"-{cable.tag}-unshaped")
            unshaped = res.rows
        cluster.shape(cluster.cables[0], rate=cable.rate, burst=TBF_BURST, latency=TBF_LATENCY)
        stacks = ch.make_stacks(cluster, args.repo, args.portable, args.base_provider)
        return ch.run_all(cluster, stacks, wanted, programs, udp_exe, udp_missing, args,
                          osu_dir, outdir, f"-{cable.tag}", UDP_EXTRA) + (unshaped,)


def run(args, suite, wanted, programs, udp_exe, udp_missing, osu_dir, outdir) -> int:
    all_results = []
    for cable in CABLES:
        results, runs, data, unshaped = run_cable(cable, args, suite, wanted, programs,
                                                  udp_exe, udp_missing, osu_dir, outdir)
        all_results += results
        names = [n for n in wanted if n in data["osu_bw"]] or wanted
        mbps = {n: data["osu_bw"][n] for n in names if n in data["osu_bw"]}
        cpu = {n: local.cpu_medians(runs["osu_bw"].get(n, [])) for n in names}
        data.update(derived(mbps, cpu, cable.rate_bit_s))
        cable_suite = local.Suite(suite.programs, suite.stacks, targets())
        extra = [""] + shaped_table(cable, mbps, cpu, unshaped) + [""]
        extra += shaper_check(cable, mbps, unshaped)
        print(f"\n--- {cable.what} ---")
        local.print_reports(cable_suite, names, runs, data, args,
                            f", 1 rank per host, {cable.what}", extra)
    local.write_csv(outdir / "results.csv", all_results)
    return 0
