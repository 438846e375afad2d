"""Congestion control across hosts (issue 12): a shaped path and an unshaped cable.

- Shaped: three hosts in a routed chain A - B - C (usb4fabric/nshosts.py
  ``routed=True``); B's cable to C is shaped with tbf at 50 Mbit/s and at
  500 Mbit/s, a 5 ms queue and a 128 KiB bucket (tbf drops any datagram
  larger than its bucket: it must hold a 64 KiB one).  osu_bw (osu_bench,
  1 MiB messages, window 8) runs from A to C, so the queue that overflows is
  a router's, as on a shared link: the sender hears of a drop only by the
  missing acknowledgement.  (Shaping the sender's own interface shows
  little: the kernel answers a full qdisc with ENOBUFS, which the udp link
  takes as backpressure.)  usb4 must reach >= 80% of the shaped rate with
  retransmissions under 5% of the frames sent (rel's counters in the udp
  close line).  A rate is a time: a host loaded by other work may hold the
  ranks off for part of a run, so a run that misses is run again, up to
  SHAPED_TRIES runs, and the test fails only if the last misses too (a
  sender that cannot keep the path full misses every run).  Printed beside it, measured in the same run over the same
  path: the shaped rate, a raw TCP stream (the kernel's congestion control)
  and usb4 with FI_USB4_CC=0 (the fixed window of before).
- Unshaped: two hosts, osu_bw at 1 MiB with congestion control on and off,
  alternated, best of each: on must keep at least 75% of off (a generous
  bound: the machine is shared).

Run with ``-s`` to see the figures.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import logcounters
from usb4fabric import nshosts, stacks

pytestmark = [pytest.mark.multihost, pytest.mark.slow]

OSU_BW = Path(__file__).resolve().parents[2] / "osu_bench" / "osu_bw"
MB = 1e6  # osu_bw reports MB/s of 10^6 bytes
IFACE = "tb0"
LOG_ENV = {"FI_LOG_LEVEL": "info", "FI_LOG_PROV": "usb4"}
TCP_PORT = 5301
ROUNDS = 4  # unshaped runs of each kind, alternated
SHAPED_TRIES = 3  # shaped cc-on runs until one meets the targets

# Receives until the sender closes; prints the rate from first to last byte.
TCP_SINK = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", %d)); s.listen(1); c, _ = s.accept()
n, t0 = 0, None
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    t0 = t0 or time.monotonic()
    n += len(b)
print(n, n / (time.monotonic() - t0))
""" % TCP_PORT
TCP_SOURCE = """
import socket, sys, time
for _ in range(100):
    try:
        s = socket.create_connection((sys.argv[1], %d)); break
    except OSError:
        time.sleep(0.05)
buf, left = bytes(1 << 20), int(sys.argv[2])
while left > 0:
    left -= s.send(buf[:min(left, len(buf))])
s.close()
""" % TCP_PORT


def tcp_rate(cluster, nbytes, src=0, dst=1):
    """Bytes/s of one TCP stream from host src to host dst."""
    sink = cluster.popen(dst, [sys.executable, "-c", TCP_SINK], stdout=subprocess.PIPE,
                         text=True)
    try:
        cluster.run(src, [sys.executable, "-c", TCP_SOURCE, cluster.hosts[dst].addr,
                          str(nbytes)], timeout=60, check=True)
        out, _ = sink.communicate(timeout=30)
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.communicate()
    return float(out.split()[1])


def osu_row(result, size):
    found = re.search(r"^%d\s+([\d.]+)" % size, result.stdout, re.M)
    assert result.returncode == 0 and found, "$ %s\n%s\n%s" % (
        " ".join(result.args), result.stdout[-4000:], result.stderr[-4000:])
    return float(found.group(1))


def osu_argv(size, window, iterations):
    if not OSU_BW.exists():
        pytest.skip("osu_bench not built (scripts/build.sh builds it)")
    return [str(OSU_BW), "-m", "%d:%d" % (size, size), "-W", str(window),
            "-i", str(iterations), "-x", "1"]


def osu_bw(mpirun_hosts, size, window, iterations, env=None):
    """(MB/s at size, the provider's counters summed over both ranks)."""
    argv = osu_argv(size, window, iterations)
    try:
        result = mpirun_hosts(argv, 1, env={**LOG_ENV, **(env or {})}, timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail("osu_bw timed out\n%s\n%s" % (exc.output, exc.stderr), pytrace=False)
    return osu_row(result, size), logcounters.parse(result.stderr)


def osu_bw_a_to_c(cluster, stack, provider_dir, size, window, iterations, env):
    """The same from host A to host C of a chain (one rank each)."""
    where = stacks.Hosts(tuple((cluster.hosts[i].addr, 1) for i in (0, 2)),
                         nshosts.ALL_SUBNETS, IFACE, nshosts.agent_path())
    argv = stack.argv(where.np, osu_argv(size, window, iterations), "usb4",
                      provider_dir=provider_dir, hosts=where, extra=["--map-by", "node"],
                      env={**LOG_ENV, **env})
    try:
        result = cluster.run(0, argv, env=stack.env(), timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail("osu_bw timed out\n%s\n%s" % (exc.output, exc.stderr), pytrace=False)
    return osu_row(result, size), logcounters.parse(result.stderr)


@pytest.fixture
def chain3(namespaces_usable):
    with nshosts.Cluster(3, cables=[(0, 1), (1, 2)], routed=True) as cluster:
        yield cluster


def figures(label, bw, n, line):
    sent, resent = n.get("rel_sent", 0), n.get("retransmitted", 0)
    return ("%s %.2f MB/s (%.0f%%), %d frames sent, %d retransmitted (%.1f%%), window "
            "cuts: loss %d timeout %d delay %d" % (
                label, bw, 100 * bw * MB / line, sent, resent, 100 * resent / max(sent, 1),
                n.get("cc_loss_cuts", -1), n.get("cc_timeout_cuts", -1),
                n.get("cc_delay_cuts", -1)))


@pytest.mark.parametrize("rate_mbit,iterations", [(50, 3), (500, 20)])
def test_shaped_path_runs_near_its_rate(rate_mbit, iterations, chain3, default_stack,
                                        provider_dir):
    chain3.shape(chain3.cables[1], rate="%dmbit" % rate_mbit, burst="128kb", latency="5ms")
    line = rate_mbit * 1e6 / 8
    tries = []
    for _ in range(SHAPED_TRIES):
        bw, n = osu_bw_a_to_c(chain3, default_stack, provider_dir, 1 << 20, 8, iterations,
                              {"FI_USB4_CC": "1"})
        tries.append(bw)
        if bw * MB >= 0.80 * line and n.get("retransmitted", 0) < 0.05 * n.get("rel_sent", 0):
            break
    bw_off, n_off = osu_bw_a_to_c(chain3, default_stack, provider_dir, 1 << 20, 8,
                                  iterations, {"FI_USB4_CC": "0"})
    tcp = tcp_rate(chain3, int(line * 2), src=0, dst=2)
    print("\nA -> B -> C, B's cable to C tbf %d Mbit/s, 5 ms, 128 KiB: line %.2f MB/s; "
          "raw TCP %.2f MB/s (%.0f%%)\n  %s\n  %s"
          % (rate_mbit, line / MB, tcp / MB, 100 * tcp / line,
             figures("usb4 osu_bw 1 MiB, cc on: ", bw, n, line),
             figures("usb4 osu_bw 1 MiB, cc off:", bw_off, n_off, line)))
    print("  cc on, run by run: %s MB/s" % ", ".join("%.2f" % t for t in tries))
    sent, resent = n.get("rel_sent", 0), n.get("retransmitted", 0)
    assert "cc_delay_cuts" in n, "no congestion control counters logged"
    assert sent > 0
    assert bw * MB >= 0.80 * line, "%s MB/s < 80%% of %.2f MB/s in %d runs" % (
        ", ".join("%.2f" % t for t in tries), line / MB, len(tries))
    assert resent < 0.05 * sent, "%d of %d frames retransmitted" % (resent, sent)


def test_unshaped_1mib_bandwidth_kept(cluster2, multihost_fabric, mpirun_hosts):
    if multihost_fabric != "usb4":
        pytest.skip("measures the usb4 provider")
    runs = {"on": [], "off": []}
    for _ in range(ROUNDS):
        for cc in ("on", "off"):
            bw, n = osu_bw(mpirun_hosts, 1 << 20, 64, 20,
                           env={"FI_USB4_CC": "1" if cc == "on" else "0"})
            runs[cc].append((bw, n.get("retransmitted", 0), n.get("rel_sent", 0),
                             n.get("cc_loss_cuts", 0) + n.get("cc_timeout_cuts", 0)
                             + n.get("cc_delay_cuts", 0)))
    best = {cc: max(r[0] for r in rs) for cc, rs in runs.items()}
    for cc, rs in runs.items():
        print("\nunshaped osu_bw 1 MiB, cc %s: %s MB/s (retransmitted/sent: %s; "
              "window cuts: %s)" % (cc, ", ".join("%.0f" % r[0] for r in rs),
                                    ", ".join("%d/%d" % (r[1], r[2]) for r in rs),
                                    ", ".join("%d" % r[3] for r in rs)), end="")
    print("\nbest: on %.0f MB/s, off %.0f MB/s (%.0f%%)"
          % (best["on"], best["off"], 100 * best["on"] / best["off"]))
    # Two cores shared with other jobs: a generous bound on a noisy figure.
    assert best["on"] >= 0.75 * best["off"], best
