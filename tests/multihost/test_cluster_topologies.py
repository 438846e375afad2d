"""A small cluster: three hosts in a chain, four in a ring, over usb4.

Hosts A-B-C (cables A-B and B-C, each its own subnet) and A-B-C-D-A, set
up as their admin would (usb4fabric/nshosts.py ``routed=True``): every host
forwards IPv4 and routes to the subnets it is not on via a neighbour, with
loose reverse-path filtering.  The provider's udp link binds one address
per host (``FI_USB4_IFACE=tb0``: in a host with two cables, its first
cable's address) and reaches a host on another subnet through the kernel's
routing table, as any UDP socket does; B forwards A's datagrams to C.

- every host reaches every address of every other host from its tb0
  address, and back (the way the provider's socket talks);
- a raw libfabric transfer (tests/xhost/usb4_xpeer.c: tagged messages, RMA
  writes, a read back) from A to C arrives bit-exact, forwarded by B; so
  does one from A to D in a chain A-B-C-D whose middle cable has the
  Ethernet MTU (1500): the path's MTU is the smallest on the way, smaller
  than either end's interface;
- in the ring with both cables of every host named (FI_USB4_IFACE=tb0,tb1),
  B and D (no shared subnet, one way through C, the other through A)
  transfer bit-exact;
- A names C by address and port (tests/xhost/usb4_nodesvc.c): the RESOLVE
  query and the job after it go through B;
- osu_latency and osu_bw between A-B (one cable) and A-C (through B):
  the figures printed side by side;
- the MPI suite of test_multihost_mpi.py (tests/mpi, built by the default
  stack's mpicc, the one-sided programs over btl ofi; osu_allreduce and
  osu_alltoall with -c) at 3 hosts x 1 and x 2 ranks and 4 hosts x 1 rank,
  data checked by the programs.  Ranks go round the hosts
  in the order A, C, B(, D), so the pairs of the pairwise programs (0-1,
  2-3, ...) are hosts two hops apart; ranks of one host talk over the
  shm link, of two hosts over udp (the provider's close lines show every
  rank took frames over both).

Run with ``-s`` to see the figures.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import stackrun
from cprogs import HostProcess, compile_c, wait_all
from test_multihost_mpi import ONESIDED, PROGRAMS
from test_xhost_fabric import XPEER_SRC, Peer, check_transfer
from usb4fabric import nshosts, stacks

pytestmark = pytest.mark.multihost

IFACE = "tb0"
REACH = Path(__file__).resolve().parent / "udp_reach.py"
REACH_PORT = 7999
OSU_DIR = Path(__file__).resolve().parents[2] / "osu_bench"
MPI_TIMEOUT = 90  # seconds, per mpirun
XPEER_WATCHDOG = 60  # seconds, usb4_xpeer --timeout
XPEER_BYTES = 64 << 20
MIN_FORWARDED = 1000  # datagrams B must have forwarded for a 64 MiB A -> C run
NARROW_MTU = 1500  # the middle cable of the 4-host chain
NODESVC_SRC = Path(__file__).resolve().parents[1] / "xhost" / "usb4_nodesvc.c"
NODESVC_PORT = "9512"

TOPOLOGIES = {
    "chain3": [(0, 1), (1, 2)],
    "ring4": [(0, 1), (1, 2), (2, 3), (3, 0)],
}
# Hosts in the order ranks go round them: neighbours in the rank order are
# two hops apart (A-C, and in the ring B-D, whose way back differs).
RANK_ORDER = {"chain3": (0, 2, 1), "ring4": (0, 2, 1, 3)}
JOBS = {"chain3x1": ("chain3", 1), "chain3x2": ("chain3", 2), "ring4x1": ("ring4", 1)}
OSU_COLLECTIVES = {
    "osu_allreduce": ["-c", "-m", "4:1048576", "-i", "10", "-x", "2"],
    "osu_alltoall": ["-c", "-m", "1:262144", "-i", "10", "-x", "2"],
}
OSU_ROUNDS = 2  # osu_latency and osu_bw per pair, alternating; the best counts
OSU_ROW = re.compile(r"^(\d+)\s+([\d.]+)(?:\s+(Pass|Fail))?\s*$", re.M)


# --- the hosts ------------------------------------------------------------

def routed_cluster(topology):
    return nshosts.Cluster(len({h for c in TOPOLOGIES[topology] for h in c}),
                         cables=TOPOLOGIES[topology], routed=True)


@pytest.fixture(params=sorted(TOPOLOGIES))
def topology(request, namespaces_usable):
    """(name, cluster): the topology's hosts, removed after the test."""
    with routed_cluster(request.param) as cluster:
        yield request.param, cluster


@pytest.fixture
def chain3(namespaces_usable):
    with routed_cluster("chain3") as cluster:
        yield cluster


def forwarded(cluster, host):
    """Datagrams host's IP layer has forwarded (Ip: ForwDatagrams)."""
    text = cluster.run(host, ["cat", "/proc/net/snmp"], timeout=10, check=True).stdout
    head, values = [line.split() for line in text.splitlines() if line.startswith("Ip:")][:2]
    return int(dict(zip(head[1:], values[1:]))["ForwDatagrams"])


def lost_addresses(cluster):
    """[(host, address)] that host's tb0 address gets no UDP echo from."""
    echoes = [cluster.popen(h, [sys.executable, str(REACH), "echo", str(REACH_PORT)],
                            stdout=subprocess.PIPE, text=True) for h in cluster.hosts]
    try:
        for echo in echoes:
            assert echo.stdout.readline().strip() == "ready"
        lost = []
        for host in cluster.hosts:
            dsts = [a for other in cluster.hosts if other is not host
                    for a in other.addrs.values()]
            result = cluster.run(host, [sys.executable, str(REACH), "ask", host.addr,
                                        str(REACH_PORT)] + dsts, timeout=60, check=True)
            answers = dict(line.split() for line in result.stdout.splitlines())
            assert sorted(answers) == sorted(dsts), result.stdout
            lost += [(host.name, dst) for dst, verdict in answers.items() if verdict != "reached"]
        return lost
    finally:
        cluster.kill_all()
        for echo in echoes:
            echo.wait(10)
            echo.stdout.close()


def test_every_host_reaches_every_address(topology):
    """From its tb0 address (where the provider binds), each host reaches
    every address of the others and hears back: routes, forwarding and a
    reverse-path filter that lets the ring's asymmetric ways through."""
    name, cluster = topology
    assert lost_addresses(cluster) == []


def test_unrouted_chain_does_not_reach(namespaces_usable):
    """Without the routes A cannot reach C: what the routed cluster adds."""
    with nshosts.Cluster(3, cables=TOPOLOGIES["chain3"]) as cluster:
        lost = lost_addresses(cluster)
    a, c = "%s-h1" % cluster.prefix, "%s-h3" % cluster.prefix
    assert (a, "10.77.1.3") in lost and (c, "10.77.0.1") in lost, lost


# --- raw libfabric through B -----------------------------------------------

@pytest.fixture(scope="module")
def xpeer(tmp_path_factory):
    return compile_c(tmp_path_factory, XPEER_SRC, "usb4_xpeer")


def provider_env(provider_dir, level="info"):
    return {"FI_PROVIDER_PATH": str(provider_dir), "FI_PROVIDER": "usb4",
            "FI_USB4_IFACE": IFACE, "FI_LOG_LEVEL": level}


def xpeer_transfer(cluster, xpeer, provider_dir, rundir, client_host, server_host,
                   iface=IFACE):
    """usb4_xpeer transfer of XPEER_BYTES, checked bit-exact; the client's
    summary and the datagrams each host forwarded meanwhile."""
    argv = ["transfer", "--dir", str(rundir), "--timeout", str(XPEER_WATCHDOG),
            "--bytes", str(XPEER_BYTES)]
    env = provider_env(provider_dir)
    env["FI_USB4_IFACE"] = iface
    before = [forwarded(cluster, h) for h in cluster.hosts]
    server = Peer(cluster, server_host, [str(xpeer), "server"] + argv, env, rundir, "server")
    client = Peer(cluster, client_host, [str(xpeer), "client"] + argv, env, rundir, "client")
    wait_all(cluster, [client, server], XPEER_WATCHDOG + 10)
    check_transfer(server, client, XPEER_BYTES)
    for peer in (client, server):
        assert peer.counters()["d_header"] == 0, peer.describe()
    return client.summary(), [forwarded(cluster, h) - b for h, b in zip(cluster.hosts, before)]


def test_libfabric_transfer_a_to_c_through_b(chain3, xpeer, provider_dir, tmp_path):
    """64 MiB of tagged messages and RMA writes from A to C, read back:
    bit-exact, and B forwarded the datagrams."""
    c, through = xpeer_transfer(chain3, xpeer, provider_dir, tmp_path, 0, 2)
    through_b = through[1]
    print("\nA -> C through B: %s bytes (%s messages, %s RMA bytes) in %s s, %s MB/s; "
          "B forwarded %d datagrams" % (c["bytes"], c["messages"], c["rma_bytes"],
                                        c["elapsed"], c["rate"], through_b))
    assert through_b >= MIN_FORWARDED, "B forwarded only %d datagrams" % through_b


def test_libfabric_transfer_over_a_narrower_middle_cable(namespaces_usable, xpeer,
                                                         provider_dir, tmp_path):
    """A-B-C-D with B-C at MTU 1500: A and D both have 65522, the path
    1500.  The first large datagrams die at B (which tells A the path's
    MTU); the transfer still arrives bit-exact."""
    with nshosts.Cluster(4, cables=[(0, 1), (1, 2), (2, 3)], routed=True) as cluster:
        middle = cluster.cables[1]
        for host, ifname in zip(middle.ends, middle.ifnames):
            cluster.run(host, ["ip", "link", "set", ifname, "mtu", str(NARROW_MTU)],
                        timeout=10, check=True)
        c, through = xpeer_transfer(cluster, xpeer, provider_dir, tmp_path, 0, 3)
        through_b = through[1]
        path = cluster.run(0, ["ip", "route", "get", cluster.hosts[3].addr],
                           timeout=10, check=True).stdout
    print("\nA -> D over a %d-byte middle cable: %s bytes in %s s, %s MB/s; B forwarded "
          "%d datagrams; A's route: %s" % (NARROW_MTU, c["bytes"], c["elapsed"], c["rate"],
                                          through_b, " ".join(path.split())))
    assert through_b >= MIN_FORWARDED, "B forwarded only %d datagrams" % through_b
    # A learnt the path's MTU from B: the narrower cable was on the way.
    assert "mtu %d" % NARROW_MTU in path, path


def test_libfabric_transfer_b_to_d_both_cables_named(namespaces_usable, xpeer,
                                                     provider_dir, tmp_path):
    """The ring with FI_USB4_IFACE=tb0,tb1 (every cable named, as discovery
    finds them): B and D share no subnet; each link binds its first cable's
    address and the transfer goes B -> C -> D, the way back D -> A -> B."""
    with routed_cluster("ring4") as cluster:
        c, through = xpeer_transfer(cluster, xpeer, provider_dir, tmp_path, 1, 3,
                                    iface="tb0,tb1")
    print("\nB -> D, both cables named: %s bytes in %s s, %s MB/s; forwarded by A %d, "
          "C %d" % (c["bytes"], c["elapsed"], c["rate"], through[0], through[2]))
    assert through[2] >= MIN_FORWARDED, through
    assert through[0] >= MIN_FORWARDED // 10, through


@pytest.fixture(scope="module")
def nodesvc(tmp_path_factory):
    return compile_c(tmp_path_factory, NODESVC_SRC, "usb4_nodesvc")


def test_a_names_c_by_address_and_port(chain3, nodesvc, provider_dir, tmp_path):
    """fi_getinfo(node, service) at A for C's address: resolved through B."""
    env = provider_env(provider_dir, "warn")
    target = chain3.hosts[2].addr
    server = HostProcess(chain3, 2, [str(nodesvc), "server", target, NODESVC_PORT],
                         env, tmp_path, "server")
    client = HostProcess(chain3, 0, [str(nodesvc), "client", target, NODESVC_PORT],
                         env, tmp_path, "client")
    wait_all(chain3, [client, server], XPEER_WATCHDOG)
    both = client.describe() + "\n" + server.describe()
    assert client.proc.returncode == 0 and "client: OK" in client.out, both
    assert server.proc.returncode == 0 and "server: OK" in server.out, both


# --- MPI across the hosts -------------------------------------------------

def mpirun(cluster, stack, provider_dir, order, slots, program, one_sided=False,
           env=None, timeout=MPI_TIMEOUT):
    """program on slots ranks per host of order (host indices), placed round
    the hosts in that order, over usb4; mpirun runs in the first host."""
    where = stacks.Hosts(tuple((cluster.hosts[i].addr, slots) for i in order),
                         nshosts.ALL_SUBNETS, IFACE, nshosts.agent_path())
    argv = stack.argv(where.np, list(program), "usb4", one_sided=one_sided,
                      provider_dir=provider_dir, env=env, hosts=where,
                      extra=["--map-by", "node"])
    try:
        return cluster.run(order[0], argv, env=stack.env(), timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail("timed out after %ss (processes in the hosts killed)\n$ %s\n"
                    "--- stdout\n%s\n--- stderr\n%s" % (exc.timeout, " ".join(exc.cmd),
                                                       exc.output or "", exc.stderr or ""),
                    pytrace=False)


def describe(result):
    return "$ %s\nexit %s\n--- stdout\n%s\n--- stderr\n%s" % (
        " ".join(result.args), result.returncode, result.stdout[-6000:],
        result.stderr[-6000:])


def osu_rows(result):
    """{size: (value, validation or None)} of an osu program's output;
    the run must have passed."""
    assert result.returncode == 0, describe(result)
    assert "Fail" not in result.stdout, describe(result)
    rows = {int(m.group(1)): (float(m.group(2)), m.group(3))
            for m in OSU_ROW.finditer(result.stdout)}
    assert rows, describe(result)
    return rows


def osu(name):
    exe = OSU_DIR / name
    if not exe.exists():
        pytest.skip("osu_bench not built (scripts/build.sh builds it)")
    return str(exe)


@pytest.mark.mpi
def test_osu_one_hop_and_two_hops(chain3, default_stack, provider_dir):
    """osu_latency (8 B) and osu_bw (1 MiB) between A and B (one cable) and
    between A and C (through B), data checked: the figures side by side,
    the best of OSU_ROUNDS alternating rounds (the machine is shared)."""
    pairs = {"A-B, one hop": (0, 1), "A-C, two hops": (0, 2)}
    lat = {label: [] for label in pairs}
    bw = {label: [] for label in pairs}
    through_b = dict.fromkeys(pairs, 0)
    for _ in range(OSU_ROUNDS):
        for label, pair in pairs.items():
            before = forwarded(chain3, 1)
            rows = osu_rows(mpirun(chain3, default_stack, provider_dir, pair, 1,
                                   [osu("osu_latency"), "-c", "-m", "8:8", "-i", "1000",
                                    "-x", "100"]))
            assert rows[8][1] == "Pass", rows
            lat[label].append(rows[8][0])
            rows = osu_rows(mpirun(chain3, default_stack, provider_dir, pair, 1,
                                   [osu("osu_bw"), "-c", "-m", "1048576:1048576", "-i",
                                    "20", "-x", "3"]))
            assert rows[1048576][1] == "Pass", rows
            bw[label].append(rows[1048576][0])
            through_b[label] += forwarded(chain3, 1) - before
    for label in pairs:
        print("\n%-14s 8 B latency %8.2f us   1 MiB bandwidth %9.2f MB/s   "
              "datagrams B forwarded %d" % (label, min(lat[label]), max(bw[label]),
                                            through_b[label]), end="")
    print()
    # B forwards the two-hop pair's datagrams and none of the one-hop pair's
    # (B is that pair's far end).
    assert through_b["A-C, two hops"] >= MIN_FORWARDED, through_b
    assert through_b["A-B, one hop"] < MIN_FORWARDED // 10, through_b


@pytest.fixture(params=sorted(JOBS))
def job(request, namespaces_usable):
    """(cluster, host order, ranks per host) of chain3x1, chain3x2, ring4x1."""
    topology, slots = JOBS[request.param]
    with routed_cluster(topology) as cluster:
        yield cluster, RANK_ORDER[topology], slots


@pytest.mark.mpi
@pytest.mark.parametrize("name", PROGRAMS + ONESIDED)
def test_mpi_program(name, job, default_stack, stack_programs, provider_dir):
    cluster, order, slots = job
    result = mpirun(cluster, default_stack, provider_dir, order, slots,
                    stack_programs(default_stack)[name], one_sided=name in ONESIDED)
    assert result.returncode == 0, describe(result)
    assert "FAIL" not in result.stderr, describe(result)
    ok = [line for line in result.stdout.splitlines() if line.strip() == "OK " + name]
    assert len(ok) == 1, "want one 'OK %s' line\n%s" % (name, describe(result))


@pytest.mark.mpi
@pytest.mark.parametrize("name", sorted(OSU_COLLECTIVES))
def test_osu_collective(name, job, default_stack, provider_dir):
    cluster, order, slots = job
    rows = osu_rows(mpirun(cluster, default_stack, provider_dir, order, slots,
                           [osu(name)] + OSU_COLLECTIVES[name]))
    assert all(v == "Pass" for _, v in rows.values()), rows
    print("\n%s at %d hosts x %d: %s" % (name, len(order), slots, " ".join(
        "%d:%.1fus" % (size, value) for size, (value, _) in sorted(rows.items()))))


@pytest.mark.mpi
def test_ranks_use_udp_across_hosts_and_shm_within(job, default_stack, stack_programs,
                                                   provider_dir, tmp_path):
    """collectives with the provider's close lines kept: every rank took
    frames over the udp link, and with two ranks per host over shm too."""
    cluster, order, slots = job
    program = stackrun.stderr_to_files(stack_programs(default_stack)["collectives"],
                                       tmp_path)
    result = mpirun(cluster, default_stack, provider_dir, order, slots, program,
                    env=stackrun.TRAFFIC_LOG_ENV)
    assert result.returncode == 0, describe(result)
    logs = stackrun.logs_in(tmp_path)
    assert "FAIL" not in logs, logs[-4000:]
    links = ("udp", "shm") if slots > 1 else ("udp",)
    for link in links:
        problems = stackrun.traffic_problems(logs, len(order) * slots, link=link)
        assert not problems, "\n".join(problems) + "\n" + describe(result)
