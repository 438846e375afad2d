"""Send batching with UDP GSO on a cable of small frames (issue 13).

thunderbolt-net moves 4 KiB DMA frames; a cable whose MTU is 4084 (its
payload per frame) makes every datagram that small, so the udp link hands
runs of equal datagrams to the kernel in one sendmsg (UDP_SEGMENT,
src/link/usb4_udp_gso.c) and the kernel, or tbf on the way, cuts them
apart.  tests/xhost/usb4_xpeer.c moves tagged messages and RMA writes
between two hosts:

- over a 4084-MTU cable shaped with tbf: bit-exact, and the log shows the
  batches (several datagrams per send) and nothing lost;
- the same with faults (1% of datagrams dropped, duplicated, reordered,
  corrupted on receipt, so inside batches): bit-exact, retransmitted;
- FI_USB4_UDP_GSO=0: bit-exact with no batch at all (the path without it).
"""

import pytest

import logcounters
from test_xhost_fabric import FAULTS, MIB, check_transfer, provider_env, start_pair, wait_all, xpeer  # noqa: F401
from usb4fabric import nshosts

pytestmark = pytest.mark.multihost

FRAME_MTU = 4084


def small_frame_transfer(xpeer, provider_dir, tmp_path, nbytes, extra_env=None):
    """nbytes over a 4084-MTU cable shaped to 10 Gbit/s: (server, client)."""
    with nshosts.Cluster(2, mtu=FRAME_MTU) as cluster:
        cluster.shape(cluster.cables[0], rate="10gbit")
        rundir = tmp_path / "run"
        rundir.mkdir()
        server, client = start_pair(cluster, xpeer, "transfer", rundir,
                                    provider_env(provider_dir, extra_env),
                                    ["--bytes", str(nbytes)])
        wait_all(cluster, [client, server])
        check_transfer(server, client, nbytes)
        return server, client


def gso(peer):
    n = logcounters.parse(peer.err)
    return {k: n.get("gso_" + k, 0) for k in ("sends", "datagrams", "piecemeal",
                                              "lost", "refused")}


def test_batched_transfer_bit_exact(namespaces_usable, xpeer, provider_dir, tmp_path):
    """64 MiB over 4 KiB frames: bit-exact, sent in batches, none lost."""
    server, client = small_frame_transfer(xpeer, provider_dir, tmp_path, 64 * MIB)
    g = gso(client)
    print("\nclient gso: %s; server gso: %s" % (g, gso(server)))
    assert g["refused"] == 0, client.describe()
    assert g["sends"] > 0, "no batch sent\n" + client.describe()
    # A bulk stream fills batches: many datagrams per system call.
    assert g["datagrams"] >= 4 * g["sends"], client.describe()
    assert g["lost"] == 0 and g["piecemeal"] == 0, client.describe()


def test_batched_transfer_with_faults_bit_exact(namespaces_usable, xpeer, provider_dir,
                                                tmp_path):
    """Datagrams lost, doubled, reordered and corrupted inside batches are
    repaired: bit-exact, retransmissions seen."""
    server, client = small_frame_transfer(xpeer, provider_dir, tmp_path, 32 * MIB,
                                          {"FI_USB4_FAULTS": FAULTS})
    c, s = logcounters.parse(client.err), logcounters.parse(server.err)
    assert gso(client)["datagrams"] > gso(client)["sends"] > 0, client.describe()
    assert s["faults_dropped"] > 0, server.describe()
    assert c.get("retransmitted", 0) > 0, client.describe()


def test_unbatched_transfer_bit_exact(namespaces_usable, xpeer, provider_dir, tmp_path):
    """FI_USB4_UDP_GSO=0: the same transfer, one datagram per send."""
    server, client = small_frame_transfer(xpeer, provider_dir, tmp_path, 32 * MIB,
                                          {"FI_USB4_UDP_GSO": "0"})
    for peer in (client, server):
        assert gso(peer)["sends"] == 0, peer.describe()
