"""compare_hosts.py --suite shaped: osu_bw over cables shaped like USB4's.

Two cables, each a fresh pair of namespace hosts with tbf on both ends of
the veth (usb4fabric/nshosts.py shape()):

  ring     10 Gbit/s at MTU 65522: one NHI DMA ring's ceiling
           (/work/shared/USB4-FACTS.md), thunderbolt-net's largest MTU
  4k       10 Gbit/s at MTU 4084: thunderbolt-net's payload per 4 KiB DMA
           frame, so every datagram is one frame

tbf's rate counts whole frames (IP + UDP + the 14-byte Ethernet header of
the veth), so payload can reach at most max_datagram / (mtu + 14) of it: the
"payload ceiling" printed per cable.  tbf: burst 4 MB, a 50 ms queue
(usb4fabric/nshosts.py's defaults): a kernel TCP stream reached 95-99% of 10
Gbit/s with them and with 1 MB / 10 ms, 1 MB / 100 ms at both MTUs, no
drops; the burst is drained by every program's warm-up (osu_bw: 2
windows, 134 MB at 1 MiB; the raw UDP stream: 10 windows, then 100
measured) before it could flatter a measurement.

The shaper check, per cable: the raw UDP stream and a raw kernel TCP stream
(tcp_stream.py, no MPI) unshaped and shaped, tbf's drop count, and how
close the tcp provider gets: a stack below the shaped rate is told apart
from a shaper that does not deliver it, or a CPU that cannot.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import bench_judge
import compare_hosts as ch
import compare_local as local
from bench_judge import at
from usb4fabric import nshosts

ETHERNET_HEADER = 14  # bytes tbf counts on a veth beyond the IP packet
TBF_BURST = "4mb"
TBF_LATENCY = "50ms"
TCP_STREAM = Path(__file__).resolve().parent / "tcp_stream.py"
TCP_STREAM_BYTES = 1500 << 20
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
        return min(self.mtu, 65535) - nshosts.IP_UDP_HEADERS

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


def tcp_stream(cluster: nshosts.Cluster, timeout: float = 60.0) -> float | None:
    """MB/s of a raw kernel TCP stream from host 1 to host 2, or None."""
    addr = cluster.hosts[1].addr
    server = cluster.popen(1, [sys.executable, str(TCP_STREAM), "server", addr],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)  # let it listen
        proc = cluster.run(0, [sys.executable, str(TCP_STREAM), "client", addr,
                               str(TCP_STREAM_BYTES)], timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        server.kill()
        server.wait()
    rows = local.parse_osu(proc.stdout)
    return next(iter(rows.values()), None) if proc.returncode == 0 else None


def tbf_drops(cluster: nshosts.Cluster) -> int | None:
    """Packets tbf dropped on the sending end (host 1) so far."""
    host, ifname = cluster.cables[0].ends[0], cluster.cables[0].ifnames[0]
    proc = subprocess.run(["tc", "-n", host.name, "-s", "qdisc", "show", "dev", ifname],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    found = re.search(r"dropped (\d+)", proc.stdout)
    return int(found.group(1)) if found else None


def percent(mbps: float | None, rate_bit_s: float) -> str:
    share = bench_judge.shaped_share(mbps, rate_bit_s)
    return "-" if share is None else f"{mbps:.0f} MB/s = {100 * share:.1f}%"


def shaper_check(cable: ShapedCable, mbps, unshaped: dict[int, float],
                 raw_tcp: dict[str, float | None], drops: int | None) -> list[str]:
    """How close the raw streams and the MPI tcp stacks come to the shaped
    rate at 1 MiB, and what the same raw streams do unshaped."""
    size, rate = local.BW_SIZE, cable.rate_bit_s
    out = [f"shaper check ({cable.what}; tbf rate {cable.rate} burst {TBF_BURST} latency "
           f"{TBF_LATENCY}; payload ceiling {100 * cable.payload_ceiling:.1f}% of the rate; "
           f"tbf drops {'-' if drops is None else drops}), at 1 MiB, % of the shaped rate:",
           f"  raw TCP stream (kernel, no MPI): shaped {percent(raw_tcp.get('shaped'), rate)}, "
           f"unshaped {percent(raw_tcp.get('unshaped'), rate)}",
           f"  raw UDP stream ({cable.max_datagram} B datagrams): shaped "
           f"{percent(mbps.get('udp', {}).get(size), rate)}, unshaped "
           f"{percent(unshaped.get(size), rate)}"]
    for name in ("tcp", "btl-tcp"):
        out.append(f"  {name} (MPI): shaped {percent(mbps.get(name, {}).get(size), rate)}")
    out.append("  (unshaped below 100%: this CPU, not tbf, is the limit of that stream)")
    return out


def run_cable(cable, args, suite, wanted, programs, udp_exe, udp_missing, osu_dir, outdir):
    """One cable: its hosts, the unshaped raw stream, tbf, every stack."""
    with nshosts.Cluster(2, mtu=cable.mtu) as cluster:
        os.environ[nshosts.CLUSTER_ENV] = cluster.prefix  # for the launch agent
        print(f"\n=== cable {cable.tag}: {cable.what}; raw udp datagrams of "
              f"{cluster.cables[0].max_datagram} B (mtu - 28, as usb4's udp link)", flush=True)
        unshaped = {}
        if udp_exe and "udp" in wanted:
            res = ch.run_udp(cluster, udp_exe, "udp", "osu_bw", 0, outdir, args.timeout,
                             programs["osu_bw"], UDP_EXTRA, f"-{cable.tag}-unshaped")
            unshaped = res.rows
        raw_tcp = {"unshaped": tcp_stream(cluster)}
        cluster.shape(cluster.cables[0], rate=cable.rate, burst=TBF_BURST, latency=TBF_LATENCY)
        raw_tcp["shaped"] = tcp_stream(cluster)
        stacks = ch.make_stacks(cluster, args.repo, args.portable, args.base_provider)
        results = ch.run_all(cluster, stacks, wanted, programs, udp_exe, udp_missing, args,
                             osu_dir, outdir, f"-{cable.tag}", UDP_EXTRA)
        return results + (unshaped, raw_tcp, tbf_drops(cluster))


def run(args, suite, wanted, programs, udp_exe, udp_missing, osu_dir, outdir) -> int:
    all_results = []
    for cable in CABLES:
        results, runs, data, unshaped, raw_tcp, drops = run_cable(
            cable, args, suite, wanted, programs, udp_exe, udp_missing, osu_dir, outdir)
        all_results += results
        names = [n for n in wanted if n in data["osu_bw"]] or wanted
        mbps = {n: data["osu_bw"][n] for n in names if n in data["osu_bw"]}
        cpu = {n: local.cpu_medians(runs["osu_bw"].get(n, [])) for n in names}
        data.update(derived(mbps, cpu, cable.rate_bit_s))
        cable_suite = local.Suite(suite.programs, suite.stacks, targets())
        extra = [""] + shaped_table(cable, mbps, cpu, unshaped) + [""]
        extra += shaper_check(cable, mbps, unshaped, raw_tcp, drops)
        print(f"\n--- {cable.what} ---")
        local.print_reports(cable_suite, names, runs, data, args,
                            f", 1 rank per host, {cable.what}", extra)
    local.write_csv(outdir / "results.csv", all_results)
    return 0
