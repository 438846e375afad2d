"""The collective-engine conformance test across hosts (network namespaces,
usb4fabric/nshosts.py): tests/collective/usb4_ring_conform.c's ring allreduce with
ranks spread over 2 and 4 hosts, two ranks a host where ranks outnumber
hosts (placed in blocks, so some ring edges stay in a host on shm and the
others cross a cable over udp).  Addresses are exchanged through files in a
folder every host sees.  tests/test_collective_conform.py says what the
program does and tests/collective_ring.py how results are checked.
"""

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import collective_ring as ring  # noqa: E402
import cprogs  # noqa: E402
import logcounters  # noqa: E402
from cprogs import HostProcess  # noqa: E402
from usb4fabric import nshosts  # noqa: E402

pytestmark = pytest.mark.multihost

IFACE = "tb0"
WATCHDOG = 50  # seconds, the program's --timeout
RUN_TIMEOUT = 60

# (hosts, ranks, floats, chunk floats, window, threads, iterations)
CASES = {
    "2 hosts, 2 ranks": (2, 2, 16384, 256, 16, 3, 3),
    "2 hosts, 4 ranks": (2, 4, 16384, 256, 16, 3, 3),
    "4 hosts, 8 ranks": (4, 8, 16384, 128, 32, 2, 2),
    # 32 KiB chunks across the cable: fragmented datagrams, rendezvous.
    "2 hosts, 2 ranks, 32 KiB chunks": (2, 2, 131072, 8192, 8, 2, 2),
}


def cluster_for(n_hosts):
    # Four hosts on one segment (a hub, tb0 in each): every rank reaches
    # its ring neighbour whichever host it is on.
    if n_hosts == 2:
        return nshosts.Cluster(2)
    return nshosts.Cluster(n_hosts, hub=True)


def run_ring(namespaces_usable, provider_dir, tmp_path, case, extra_env=None,
             late_recv_ms=0):
    n_hosts, nranks, count, chunk, window, threads, iters = case
    folder = tmp_path / "ring"
    folder.mkdir()
    inputs = ring.write_inputs(folder, nranks, count)
    env = {"FI_PROVIDER_PATH": str(provider_dir), "FI_PROVIDER": "usb4",
           "FI_USB4_IFACE": IFACE, "FI_LOG_LEVEL": "warn"}
    env.update(extra_env or {})
    per_host = -(-nranks // n_hosts)
    with cluster_for(n_hosts) as cluster:
        ranks = []
        for rank in range(nranks):
            argv = ring.argv(rank, nranks, folder, count, chunk=chunk, window=window,
                             threads=threads, iters=iters, timeout=WATCHDOG,
                             late_recv_ms=late_recv_ms)
            ranks.append(HostProcess(cluster, rank // per_host, argv, env, folder,
                                     "rank%d" % rank))
        cprogs.wait_all(cluster, ranks, RUN_TIMEOUT)
    report = "\n".join(r.describe() for r in ranks)
    assert all(r.proc.returncode == 0 for r in ranks), report
    print("\n" + "\n".join(r.out.strip() for r in ranks))
    ring.check_results(folder, inputs)
    for r in ranks:
        m = re.search(ring.FIGURES, r.out)
        assert m, report
        assert int(m.group(3)) <= window and int(m.group(4)) <= window, m.group(0)
    return ranks


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_ring_allreduce_across_hosts(namespaces_usable, provider_dir, tmp_path, case):
    run_ring(namespaces_usable, provider_dir, tmp_path, CASES[case])


def test_ring_allreduce_across_hosts_portable(namespaces_usable, provider_dir, tmp_path):
    """2 hosts, 4 ranks on the provider's portable paths."""
    run_ring(namespaces_usable, provider_dir, tmp_path, CASES["2 hosts, 4 ranks"],
             {"FI_USB4_PORTABLE": "1"})


def test_ring_allreduce_across_hosts_receives_late(namespaces_usable, provider_dir, tmp_path):
    """2 hosts, 4 ranks (two ring edges over the cable), receives posted
    late against a 64 KiB unexpected budget per sender: the senders over
    udp and over shm are held back, and everything arrives."""
    ranks = run_ring(namespaces_usable, provider_dir, tmp_path,
                     (2, 4, 262144, 1024, 32, 3, 6), ring.LATE_RECV_ENV,
                     late_recv_ms=ring.LATE_RECV_MS)
    for r in ranks:
        assert logcounters.parse(r.err).get("unexp_full", 0) > 0, (
            "%s: no sender held back\n%s" % (r.name, r.err[-2000:]))
