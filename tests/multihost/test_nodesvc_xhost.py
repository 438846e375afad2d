"""Addressing by node and service between two hosts (issue 11).

tests/xhost/usb4_nodesvc.c (see tests/test_nodesvc.py) with the server in
host 2 bound to its tb0 address (or service only: the interface's address)
and the client in host 1 naming that address and port: the RESOLVE query
and everything after it cross the udp link, with and without a job key.
"""

import time
from pathlib import Path

import pytest

import cprogs
from cprogs import HostProcess, compile_c

pytestmark = pytest.mark.multihost

SRC = Path(__file__).resolve().parents[1] / "xhost" / "usb4_nodesvc.c"
IFACE = "tb0"
PORT = "9511"
RUN_TIMEOUT = 90


@pytest.fixture(scope="module")
def nodesvc(tmp_path_factory):
    return compile_c(tmp_path_factory, SRC, "usb4_nodesvc")


def run_pair(cluster, nodesvc, provider_dir, tmp_path, server_node, extra=None):
    env = {"FI_PROVIDER_PATH": str(provider_dir), "FI_PROVIDER": "usb4",
           "FI_USB4_IFACE": IFACE, "FI_LOG_LEVEL": "warn"}
    env.update(extra or {})
    target = cluster.host(1).addr
    server = HostProcess(cluster, 1, [str(nodesvc), "server", server_node or "-", PORT],
                         env, tmp_path, "server")
    client = HostProcess(cluster, 0, [str(nodesvc), "client", target, PORT],
                         env, tmp_path, "client")
    cprogs.wait_all(cluster, [client, server], RUN_TIMEOUT)
    both = client.describe() + "\n" + server.describe()
    assert client.proc.returncode == 0 and "client: OK" in client.out, both
    assert server.proc.returncode == 0 and "server: OK" in server.out, both


@pytest.mark.parametrize("bound", ["node", "service-only"])
def test_nodesvc_two_hosts(cluster2, nodesvc, provider_dir, tmp_path, bound):
    node = cluster2.host(1).addr if bound == "node" else None
    run_pair(cluster2, nodesvc, provider_dir, tmp_path, node)


def test_nodesvc_two_hosts_job_key(cluster2, nodesvc, provider_dir, tmp_path):
    run_pair(cluster2, nodesvc, provider_dir, tmp_path, cluster2.host(1).addr,
             {"FI_USB4_AUTH_KEY": "the job's key"})


def test_keyed_server_unkeyed_client(cluster2, nodesvc, provider_dir, tmp_path):
    """A keyed server answers an unkeyed client's RESOLVE (a query carries
    no tag, and the client has no key to check the answer's), so the insert
    succeeds; then the server drops the client's untagged HELLOs and the
    client declares it dead after the peer timeout: nothing gets through."""
    base = {"FI_PROVIDER_PATH": str(provider_dir), "FI_PROVIDER": "usb4",
            "FI_USB4_IFACE": IFACE, "FI_LOG_LEVEL": "warn",
            "FI_USB4_PEER_TIMEOUT": "1000"}
    target = cluster2.host(1).addr
    server = HostProcess(cluster2, 1, [str(nodesvc), "server", target, PORT],
                         {**base, "FI_USB4_AUTH_KEY": "the job's key"}, tmp_path, "server")
    client = HostProcess(cluster2, 0, [str(nodesvc), "client", target, PORT],
                         base, tmp_path, "client")
    deadline = time.monotonic() + 20
    try:
        # The client then waits for an answer that never comes: stop it
        # once it has declared the server dead.
        while (time.monotonic() < deadline and client.proc.poll() is None
               and "stopped answering" not in client.err):
            time.sleep(0.2)
    finally:
        cluster2.kill_all()
        client.wait(RUN_TIMEOUT)
        server.wait(RUN_TIMEOUT)
    both = client.describe() + "\n" + server.describe()
    assert "client: resolved in" in client.out, both
    assert "client: OK" not in client.out, "the client got through\n" + both
    assert "stopped answering" in client.err, both
    assert "without a valid job key tag: dropped" in server.err, both
