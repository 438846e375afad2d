"""Cross-host robustness of the usb4 provider at the libfabric level.

Two hosts (network namespaces, usb4fabric/nshosts.py, fixture ``cluster2``) joined
by ``tb0``; tests/xhost/usb4_xpeer.c runs as server in host 2 and client in
host 1, over the provider's udp link under rel:

- a clean transfer of 256 MiB (tagged messages 1 B .. 4 MiB and RMA writes)
  arrives bit-exact;
- with faults injected on receive on both sides, 1 GiB arrives bit-exact and
  the close-time counters show the faults and the retransmissions;
- a region closed while a 256 MiB write from the other host streams into
  it: fi_close is quick, no byte lands in the buffer afterwards, and the
  write fails;
- a server killed with SIGKILL: every send and RMA op pending on it, and a
  receive directed at it, fails with FI_EHOSTUNREACH or FI_EIO within
  FI_USB4_PEER_TIMEOUT + 1 s;
- datagrams that do not belong (garbage, rel headers for another endpoint,
  for a previous incarnation, or from an address not in the AV) are dropped
  and counted as foreign while a transfer goes on undisturbed.

Run with ``-s`` to see the figures (bytes, MB/s, counters) of each test.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cprogs
from cprogs import HostProcess, compile_c

pytestmark = pytest.mark.multihost

XPEER_SRC = Path(__file__).resolve().parents[1] / "xhost" / "usb4_xpeer.c"
PYDIR = Path(__file__).resolve().parents[2] / "python"  # usb4fabric
IFACE = "tb0"
FAULTS = "drop=0.01,dup=0.01,reorder=0.01,corrupt=0.01"
MIB = 1 << 20
RUN_TIMEOUT = 150  # seconds, harness side; the programs' watchdog is shorter
WATCHDOG = 120  # seconds, usb4_xpeer --timeout
KILL_TIMEOUT_MS = 2000

UDP_COUNTERS = re.compile(
    r"udp: sent (?P<sent>\d+) received (?P<received>\d+) busy (?P<busy>\d+); "
    r"faults dropped (?P<f_dropped>\d+) duplicated (?P<f_duplicated>\d+) "
    r"reordered (?P<f_reordered>\d+) corrupted (?P<f_corrupted>\d+); "
    r"rel sent (?P<rel_sent>\d+) retransmitted (?P<retransmitted>\d+) "
    r"delivered (?P<delivered>\d+) acks (?P<acks>\d+) dropped: "
    r"header (?P<d_header>\d+) dst (?P<d_dst>\d+) src (?P<d_src>\d+) "
    r"duplicate (?P<d_duplicate>\d+) window (?P<d_window>\d+) "
    r"handshake (?P<d_handshake>\d+) nobuffer (?P<d_nobuffer>\d+); "
    r"foreign datagrams (?P<foreign>\d+)")
AUTH_COUNTERS = re.compile(
    r"auth rejected (?P<auth_rejected>\d+) replayed (?P<replayed>\d+) "
    r"unauthenticated (?P<unauthenticated>\d+) unproven (?P<unproven>\d+); "
    r"half-open made (?P<offers_made>\d+) evicted (?P<offers_evicted>\d+) "
    r"expired (?P<offers_expired>\d+) promoted (?P<offers_promoted>\d+); "
    r"sessions freed (?P<sessions_freed>\d+) refused (?P<sessions_refused>\d+)")
SUMMARY = re.compile(
    r"^(?P<who>client|server): (?P<verdict>OK|FAIL) bytes (?P<bytes>\d+) "
    r"messages (?P<messages>\d+) rma_bytes (?P<rma_bytes>\d+) "
    r"msg_fnv (?P<msg_fnv>[0-9a-f]+) rma_fnv (?P<rma_fnv>[0-9a-f]+) "
    r"elapsed (?P<elapsed>[\d.]+) s rate (?P<rate>[\d.]+) MB/s$", re.M)


# --- the program and its runs ---------------------------------------------

@pytest.fixture(scope="module")
def xpeer(tmp_path_factory):
    """usb4_xpeer compiled with gcc (-lfabric) into a tmp folder."""
    return compile_c(tmp_path_factory, XPEER_SRC, "usb4_xpeer")


class Peer(HostProcess):
    """usb4_xpeer running in one host."""

    def counters(self):
        """The udp/rel counters the endpoint logged at close."""
        found = [m.groupdict() for m in UDP_COUNTERS.finditer(self.err)]
        auth = [m.groupdict() for m in AUTH_COUNTERS.finditer(self.err)]
        assert len(found) == 1 and len(auth) == 1, "want one udp: line\n" + self.describe()
        return {k: int(v) for k, v in {**found[0], **auth[0]}.items()}

    def summary(self):
        found = [m.groupdict() for m in SUMMARY.finditer(self.out)]
        assert len(found) == 1, "want one summary line\n" + self.describe()
        return found[0]


def provider_env(provider_dir, extra=None):
    env = {"FI_PROVIDER_PATH": str(provider_dir), "FI_PROVIDER": "usb4",
           "FI_USB4_IFACE": IFACE, "FI_LOG_LEVEL": "info"}
    env.update(extra or {})
    return env


def start_pair(cluster, xpeer, workload, rundir, env, args=()):
    """Server in host 2, then client in host 1; they meet in rundir."""
    argv = [workload, "--dir", str(rundir), "--timeout", str(WATCHDOG)] + list(args)
    server = Peer(cluster, 1, [str(xpeer), "server"] + argv, env, rundir, "server")
    client = Peer(cluster, 0, [str(xpeer), "client"] + argv, env, rundir, "client")
    return server, client


def wait_all(cluster, peers, timeout=RUN_TIMEOUT):
    cprogs.wait_all(cluster, peers, timeout)


def transfer(cluster, xpeer, provider_dir, tmp_path, nbytes, extra_env=None):
    rundir = tmp_path / "run"
    rundir.mkdir()
    env = provider_env(provider_dir, extra_env)
    t0 = time.monotonic()
    server, client = start_pair(cluster, xpeer, "transfer", rundir, env,
                                ["--bytes", str(nbytes)])
    wait_all(cluster, [client, server])
    wall = time.monotonic() - t0
    check_transfer(server, client, nbytes)
    return server, client, wall


def check_transfer(server, client, nbytes):
    both = server.describe() + "\n" + client.describe()
    assert client.proc.returncode == 0 and server.proc.returncode == 0, both
    c, s = client.summary(), server.summary()
    assert c["verdict"] == "OK" and s["verdict"] == "OK", both
    for key in ("bytes", "messages", "rma_bytes", "msg_fnv", "rma_fnv"):
        assert c[key] == s[key], "%s differs\n%s" % (key, both)
    assert int(c["bytes"]) >= nbytes, both
    assert int(c["rma_bytes"]) > 0 and int(c["messages"]) > 0, both


def report(label, server, client, wall):
    c = client.summary()
    print("\n%s: %s bytes (%s messages, %s RMA bytes) in %.2f s: client %s MB/s "
          "(%s s), wall %.1f s incl. setup" % (label, c["bytes"], c["messages"],
                                               c["rma_bytes"], float(c["elapsed"]),
                                               c["rate"], c["elapsed"], wall))
    for peer in (client, server):
        print("  %s counters: %s" % (peer.name, peer.counters()))


# --- the tests -----------------------------------------------------------------

def test_clean_transfer_256mib_bit_exact(cluster2, xpeer, provider_dir, tmp_path):
    """256 MiB of tagged messages and RMA writes, no faults: bit-exact."""
    server, client, wall = transfer(cluster2, xpeer, provider_dir, tmp_path, 256 * MIB)
    report("clean", server, client, wall)
    for peer in (client, server):
        n = peer.counters()
        assert n["f_dropped"] + n["f_duplicated"] + n["f_reordered"] + n["f_corrupted"] == 0
        assert n["foreign"] == 0, peer.describe()
        assert n["delivered"] > 0, peer.describe()
        # Receive placement never spoils a datagram before its CRC check.
        assert n["d_header"] == 0, peer.describe()


def test_faulty_transfer_1gib_bit_exact(cluster2, xpeer, provider_dir, tmp_path):
    """1 GiB with drop, dup, reorder and corrupt at 1% each on both sides."""
    server, client, wall = transfer(cluster2, xpeer, provider_dir, tmp_path, 1 << 30,
                                    {"FI_USB4_FAULTS": FAULTS})
    report("faults", server, client, wall)
    c, s = client.counters(), server.counters()
    both = client.describe() + "\n" + server.describe()
    for kind in ("f_dropped", "f_duplicated", "f_reordered", "f_corrupted"):
        assert c[kind] + s[kind] > 0, "no %s fault injected\n%s" % (kind, both)
        # Both sides receive (data one way, acks and reads the other).
        assert c[kind] > 0 and s[kind] > 0, "%s: one side saw none\n%s" % (kind, both)
    assert c["retransmitted"] + s["retransmitted"] > 0, both
    # Doubled datagrams are recognised, corrupted ones rejected.
    assert c["d_duplicate"] + s["d_duplicate"] > 0, both
    assert c["d_header"] + s["d_header"] > 0, both


JOB_KEY = {"FI_USB4_AUTH_KEY": "rogue hosts never hold this"}


def test_keyed_transfer_256mib_bit_exact(cluster2, xpeer, provider_dir, tmp_path):
    """With a job key every datagram is authenticated: the same transfer is
    bit-exact and nothing is rejected."""
    server, client, wall = transfer(cluster2, xpeer, provider_dir, tmp_path, 256 * MIB,
                                    JOB_KEY)
    report("keyed", server, client, wall)
    for peer in (client, server):
        n = peer.counters()
        for key in ("auth_rejected", "replayed", "unauthenticated", "unproven",
                    "d_header", "foreign"):
            assert n[key] == 0, "%s\n%s" % (key, peer.describe())
    # The responder made its session from a proven offer.
    assert server.counters()["offers_promoted"] == 1, server.describe()


def test_keyed_faulty_transfer_bit_exact(cluster2, xpeer, provider_dir, tmp_path):
    """Faults under a key: corrupted datagrams fail their tag, doubled ones are
    replays; the transfer is bit-exact."""
    server, client, wall = transfer(cluster2, xpeer, provider_dir, tmp_path, 256 * MIB,
                                    {**JOB_KEY, "FI_USB4_FAULTS": FAULTS})
    report("keyed faults", server, client, wall)
    c, s = client.counters(), server.counters()
    both = client.describe() + "\n" + server.describe()
    assert c["f_corrupted"] + s["f_corrupted"] > 0, both
    assert c["auth_rejected"] + s["auth_rejected"] + c["d_header"] + s["d_header"] > 0, both
    assert c["replayed"] + s["replayed"] > 0, both


def test_key_file_holds_the_same_key(cluster2, xpeer, provider_dir, tmp_path):
    """FI_USB4_AUTH_KEY_FILE (written with a trailing newline, as echo does) on
    one side and FI_USB4_AUTH_KEY on the other are the same key."""
    key_file = tmp_path / "job.key"
    key_file.write_text(JOB_KEY["FI_USB4_AUTH_KEY"] + "\n")
    rundir = tmp_path / "run"
    rundir.mkdir()
    argv = ["transfer", "--dir", str(rundir), "--timeout", str(WATCHDOG),
            "--bytes", str(16 * MIB)]
    server = Peer(cluster2, 1, [str(xpeer), "server"] + argv,
                  provider_env(provider_dir, JOB_KEY), rundir, "server")
    client = Peer(cluster2, 0, [str(xpeer), "client"] + argv,
                  provider_env(provider_dir, {"FI_USB4_AUTH_KEY_FILE": str(key_file)}),
                  rundir, "client")
    wait_all(cluster2, [client, server])
    check_transfer(server, client, 16 * MIB)
    assert server.counters()["auth_rejected"] == 0, server.describe()


@pytest.mark.parametrize("server_key", ["another key", None])
def test_other_key_or_none_is_refused(cluster2, xpeer, provider_dir, tmp_path,
                                      server_key):
    """A client whose key the server does not share (another key, or the
    server has none) gets nowhere: its HELLOs are dropped and counted, its
    operations fail after the peer timeout, nothing is delivered."""
    rundir = tmp_path / "run"
    rundir.mkdir()
    argv = ["transfer", "--dir", str(rundir), "--timeout", "6", "--bytes", str(MIB)]
    server_env = provider_env(provider_dir, {"FI_USB4_PEER_TIMEOUT": "1500"})
    if server_key:
        server_env["FI_USB4_AUTH_KEY"] = server_key
    client_env = provider_env(provider_dir, {**JOB_KEY, "FI_USB4_PEER_TIMEOUT": "1500"})
    server = Peer(cluster2, 1, [str(xpeer), "server"] + argv, server_env, rundir, "server")
    client = Peer(cluster2, 0, [str(xpeer), "client"] + argv, client_env, rundir, "client")
    cprogs.wait_all(cluster2, [client, server], RUN_TIMEOUT)
    both = client.describe() + "\n" + server.describe()
    assert client.proc.returncode != 0, "the client got through\n" + both
    assert "stopped answering" in client.err, both
    # The server (ended by its watchdog: no counters at close) said why.
    why = ("without a valid job key tag" if server_key else
           "tagged under a job key this endpoint does not have")
    assert why in server.err, both


EVACUATED = re.compile(r"holes evacuated (\d+)")


def test_faulty_transfer_without_placement_bit_exact(cluster2, xpeer, provider_dir,
                                                     tmp_path):
    """FI_USB4_UDP_PLACEMENT=0: no payload lands in place, all still arrives."""
    server, client, wall = transfer(cluster2, xpeer, provider_dir, tmp_path, 256 * MIB,
                                    {"FI_USB4_FAULTS": FAULTS,
                                     "FI_USB4_UDP_PLACEMENT": "0"})
    report("no placement", server, client, wall)
    for peer in (client, server):
        moved = [int(m.group(1)) for m in EVACUATED.finditer(peer.err)]
        assert moved == [0], "holes with placement off\n" + peer.describe()


MRCLOSE_LIMIT_S = 1.0	# the revocation waits 2 s for pins that never drop


def test_region_closed_while_read_response_unacknowledged(cluster2, xpeer, provider_dir,
                                                          tmp_path):
    """fi_close of a region right after serving an 8 MiB read to another host.

    The read response keeps the region pinned until the initiator acknowledges
    it (rel sends from the region itself); closing the region must not wait
    for acknowledgements that only progress would bring: rel takes copies,
    the close returns at once, and the reader still gets every byte right.
    """
    rundir = tmp_path / "run"
    rundir.mkdir()
    server, client = start_pair(cluster2, xpeer, "mrclose", rundir,
                                provider_env(provider_dir))
    wait_all(cluster2, [client, server])
    both = client.describe() + "\n" + server.describe()
    assert client.proc.returncode == 0 and server.proc.returncode == 0, both
    took = re.search(r"fi_close of the region took ([\d.]+) s", server.out)
    assert took, both
    print("\nmrclose: fi_close took %s s" % took.group(1))
    assert float(took.group(1)) < MRCLOSE_LIMIT_S, both
    assert "still pinned" not in server.err, both
    assert "all as written" in client.out, both


MRWRITE_CLOSE_LIMIT_S = 0.5  # the revocation waits 2 s for the stream's pins


def test_region_closed_while_remote_write_streams_in(cluster2, xpeer, provider_dir,
                                                      tmp_path):
    """fi_close of a region while a 256 MiB fi_write from another host streams in.

    Once the write has reached 1 MiB into the region the server closes the
    region and at once refills the buffer with its own pattern (the memory
    is the application's again).  No byte of the write may land after the
    close: every byte of the pattern must survive the client's completion
    and one more second of progress.  The close must not wait for the
    stream (well under the 2 s the revocation allows pins), and the write
    must complete with an error, not success: its data did not all land.
    """
    rundir = tmp_path / "run"
    rundir.mkdir()
    server, client = start_pair(cluster2, xpeer, "mrwrite", rundir,
                                provider_env(provider_dir))
    wait_all(cluster2, [client, server], timeout=90)
    both = client.describe() + "\n" + server.describe()
    print("\n" + "\n".join(line for line in (server.out + client.out).splitlines()
                           if line.startswith("mrwrite")))
    assert client.proc.returncode == 0 and server.proc.returncode == 0, both
    closed = re.search(r"reached ([\d.]+) MiB of (\d+) MiB; fi_close of the region "
                       r"took ([\d.]+) s", server.out)
    differ = re.search(r"(\d+) of (\d+) bytes differ from the refill \((\d+) hold "
                       r"the client's data\)", server.out)
    verdict = re.search(r"completed with (success|error \d+ \(.*\)|none) after "
                        r"([\d.]+) s", client.out)
    assert closed and differ and verdict, both
    # The close happened while the stream was under way, not after it.
    assert float(closed.group(1)) < int(closed.group(2)), both
    failures = []
    if float(closed.group(3)) >= MRWRITE_CLOSE_LIMIT_S:
        failures.append("fi_close of the region took %s s (limit %.1f s)"
                        % (closed.group(3), MRWRITE_CLOSE_LIMIT_S))
    if int(differ.group(1)):
        failures.append("%s bytes of the closed region were overwritten after the "
                        "close (%s of them with the client's data)"
                        % (differ.group(1), differ.group(3)))
    # Any error completion will do (FI_ECANCELED, FI_EACCES, ...): not success.
    if verdict.group(1) == "success":
        failures.append("the client's write completed with success")
    elif verdict.group(1) == "none":
        failures.append("the client's write never completed")
    assert not failures, "; ".join(failures) + "\n" + both


def test_pending_ops_fail_after_peer_killed(cluster2, xpeer, provider_dir, tmp_path):
    """SIGKILL the server: every pending send, RMA op and the receive directed
    at it fails within 3 s (the kernel's port unreachable, confirmed by
    probes, makes it well under a second)."""
    rundir = tmp_path / "run"
    rundir.mkdir()
    env = provider_env(provider_dir, {"FI_USB4_PEER_TIMEOUT": str(KILL_TIMEOUT_MS)})
    server, client = start_pair(cluster2, xpeer, "pending", rundir, env)
    deadline = time.monotonic() + 30
    while not (rundir / "armed").exists():
        if time.monotonic() > deadline or client.proc.poll() is not None \
                or server.proc.poll() is not None:
            cluster2.kill_all()
            pytest.fail("the client never armed\n%s\n%s"
                        % (server.describe(), client.describe()), pytrace=False)
        time.sleep(0.02)
    time.sleep(0.2)  # RMA rounds keep going; let a few run
    m = re.search(r"server serving, pid (\d+)", server.out)
    assert m and int(m.group(1)) == server.proc.pid, server.describe()
    t_kill = time.monotonic()
    os.kill(server.proc.pid, signal.SIGKILL)
    wait_all(cluster2, [client], timeout=20)
    client_exit = time.monotonic() - t_kill
    server.proc.wait(10)
    out = client.describe()
    print("\nkill: client exited %.3f s after the SIGKILL\n%s" % (client_exit, client.out))
    assert server.proc.returncode == -signal.SIGKILL, server.describe()
    assert client.proc.returncode == 0, out
    m = re.search(r"pending: OK: (\d+) ops pending at the kill, slowest failed "
                  r"([\d.]+) s after it", client.out)
    assert m, out
    assert int(m.group(1)) >= 3, out  # at least the three stuck sends
    assert float(m.group(2)) <= KILL_TIMEOUT_MS / 1000 + 1.0, out
    errors = re.findall(r"pending: (\w+) \d+ B: error (\d+)", client.out)
    assert {e for _, e in errors} <= {"113", "5"}, out  # EHOSTUNREACH, EIO
    assert sum(1 for kind, _ in errors if kind == "send") == 3, out
    # Cross-check the client's own clock against ours (it also tries a send
    # to the dead peer and cancels a receive before exiting).
    assert client_exit <= KILL_TIMEOUT_MS / 1000 + 2.0, out


# Sprays datagrams at the server from host 1 while the transfer runs.  Layouts
# from prov_usb4/src/wire.h, little-endian: the 56-byte address (struct
# usb4_wire_addr: ep_id u64 at 16, udp_port u16 at 38) and the 48-byte rel
# header of wire version 2.
SPRAYER = r'''
import os, random, socket, sys, time
rundir, server_ip, per_kind, pydir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, pydir)
from usb4fabric import wire

def info(role):
    path = os.path.join(rundir, role + ".info")
    while not os.path.exists(path):
        time.sleep(0.01)
    addr = wire.Address.unpack(open(path, "rb").read()[:wire.ADDR_LEN])
    return addr.udp_port, addr.ep_id

def rel(kind, src, dst, seq, payload=b""):
    return wire.RelDatagram(type=kind, src_id=src, dst_id=dst, seq=seq, window=64,
                            payload=payload).pack()

port, server_id = info("server")
_, client_id = info("client")
rng = random.Random(7)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # not the client's port
kinds = {
    "garbage": lambda: os.urandom(rng.randrange(1, 1400)),
    "wrong_dst": lambda: rel(3, rng.getrandbits(64), rng.getrandbits(64), rng.getrandbits(32),
                             os.urandom(rng.randrange(0, 1024))),
    "stale_incarnation": lambda: rel(rng.choice((1, 3)), client_id, rng.getrandbits(64),
                                     rng.getrandbits(32)),
    "not_in_av": lambda: rel(rng.choice((1, 2, 3, 4)), client_id, server_id,
                             rng.getrandbits(32), os.urandom(rng.randrange(0, 512))),
}

def spray(names):
    for i in range(per_kind):
        for name in names:
            sock.sendto(kinds[name](), (server_ip, port))
        time.sleep(0.002)
    return per_kind * len(names)

# A HELLO in the client's name that beats the client's own at start-up
# takes the client's id: unauthenticated handshakes cannot tell them apart.
# Those wait until the session stands; the rest race the start-up.
sent = spray(["garbage", "wrong_dst", "stale_incarnation"])
deadline = time.time() + 60
while not os.path.exists(os.path.join(rundir, "connected")):
    if time.time() > deadline:
        sys.exit("the client never connected")
    time.sleep(0.005)
sent += spray(kinds)
print("sprayed %d datagrams at %s:%d: %d each of garbage, wrong_dst and "
      "stale_incarnation at start-up, then %d each of %s once connected"
      % (sent, server_ip, port, per_kind, per_kind, ", ".join(kinds)), flush=True)
'''


def test_foreign_datagrams_dropped_and_counted(cluster2, xpeer, provider_dir, tmp_path):
    """Datagrams not from a peer in the AV are dropped, counted; work goes on.

    A raw socket in host 1 (the client's host, another port) sends to the
    server's port: random garbage; well-formed rel headers (valid CRC32C)
    for a random destination id; ones carrying the client's id as source but
    a random destination (a previous incarnation of the server); and ones
    addressed to the server's real id from the client's id but not from the
    client's published address (these once the two are connected).
    Meanwhile a 256 MiB transfer must stay bit-exact.  (The provider binds an ephemeral port, so a restarted server
    cannot be given its predecessor's port; this stands in for that case.)
    """
    rundir = tmp_path / "run"
    rundir.mkdir()
    per_kind = 100
    env = provider_env(provider_dir)
    server, client = start_pair(cluster2, xpeer, "transfer", rundir, env,
                                ["--bytes", str(256 * MIB)])
    sprayer = cluster2.popen(0, [sys.executable, "-c", SPRAYER, str(rundir),
                                 cluster2.hosts[1].addr, str(per_kind), str(PYDIR)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        spray_out, spray_err = sprayer.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        cluster2.kill_all()
        sprayer.communicate()
        pytest.fail("the sprayer hung", pytrace=False)
    wait_all(cluster2, [client, server])
    assert sprayer.returncode == 0, spray_err
    check_transfer(server, client, 256 * MIB)
    n = server.counters()
    sent = 7 * per_kind  # three kinds at start-up, then all four
    print("\nforeign: %s\n  server counters: %s\n  client counters: %s"
          % (spray_out.strip(), n, client.counters()))
    assert 0 < n["foreign"] <= sent, server.describe()
    # Rejected before rel sees them: no rel drop counter moved.
    assert n["d_dst"] == n["d_src"] == n["d_header"] == 0, server.describe()
    assert client.counters()["foreign"] == 0, client.describe()
