"""Addressing by node and service on one host (issue 11).

tests/xhost/usb4_nodesvc.c is a client/server pair in the style of
libfabric's examples: the server calls fi_getinfo(FI_SOURCE, node, service)
and waits; the client calls fi_getinfo(node, service), inserts
info->dest_addr (the provider asks the endpoint bound there who it is) and
exchanges tagged and untagged messages, one fi_write and one fi_read.  Here
both run on this host over 127.0.0.1 (the server's udp link binds loopback,
the peers then talk over shm), with and without a job key, with the
FI_ADDR_STR format, and with a key on one side only (refused: the answer is
not tagged under the client's key).  ``fi_info -n 127.0.0.1 -P PORT``
answers.
"""

import os
import socket
import subprocess
from pathlib import Path

import pytest

from cprogs import compile_c

SRC = Path(__file__).resolve().parent / "xhost" / "usb4_nodesvc.c"
TIMEOUT = 60


@pytest.fixture(scope="module")
def nodesvc(tmp_path_factory):
    return compile_c(tmp_path_factory, SRC, "usb4_nodesvc")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(provider_dir, extra=None):
    env = dict(os.environ, FI_PROVIDER_PATH=str(provider_dir), FI_PROVIDER="usb4",
               FI_LOG_LEVEL="warn")
    env.pop("FI_USB4_IFACE", None)
    env.pop("FI_USB4_AUTH_KEY", None)
    env.update(extra or {})
    return env


def run_pair(nodesvc, provider_dir, tmp_path, server_node, client_node, fmt=(),
             server_env=None, client_env=None):
    """Server first, then client; both waited for.  Returns both results."""
    port = str(free_port())
    with open(tmp_path / "server.out", "w") as out:
        server = subprocess.Popen([str(nodesvc), "server", server_node, port, *fmt],
                                  env=env_for(provider_dir, server_env), stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        client = subprocess.run([str(nodesvc), "client", client_node, port, *fmt],
                                env=env_for(provider_dir, client_env),
                                capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        if client_env == server_env or server.poll() is not None:
            server.wait(TIMEOUT)
        else:
            server.kill()
            server.wait(TIMEOUT)
    return server, (tmp_path / "server.out").read_text(), client


def assert_ok(server, server_out, client):
    both = "--- server\n%s\n--- client\n%s%s" % (server_out, client.stdout, client.stderr)
    assert client.returncode == 0 and "client: OK" in client.stdout, both
    assert server.returncode == 0 and "server: OK" in server_out, both


@pytest.mark.parametrize("server_node", ["127.0.0.1", "-"])
def test_nodesvc_one_host(nodesvc, provider_dir, tmp_path, server_node):
    """Server bound to 127.0.0.1 (or service only: any IP, loopback here),
    client names 127.0.0.1 and the port."""
    assert_ok(*run_pair(nodesvc, provider_dir, tmp_path, server_node, "127.0.0.1"))


def test_nodesvc_one_host_addr_str(nodesvc, provider_dir, tmp_path):
    """The same with FI_ADDR_STR: addresses are fi_addr_usb4:// strings."""
    assert_ok(*run_pair(nodesvc, provider_dir, tmp_path, "127.0.0.1", "localhost",
                        fmt=("str",)))


def test_nodesvc_one_host_job_key(nodesvc, provider_dir, tmp_path):
    key = {"FI_USB4_AUTH_KEY": "the job's key"}
    assert_ok(*run_pair(nodesvc, provider_dir, tmp_path, "127.0.0.1", "127.0.0.1",
                        server_env=key, client_env=key))


def test_nodesvc_key_on_client_only_refused(nodesvc, provider_dir, tmp_path):
    """The client holds a key, the server none: its untagged answers are
    dropped and counted, the insert fails with FI_EHOSTUNREACH."""
    server, server_out, client = run_pair(
        nodesvc, provider_dir, tmp_path, "127.0.0.1", "127.0.0.1",
        client_env={"FI_USB4_AUTH_KEY": "only mine", "FI_USB4_PEER_TIMEOUT": "1000"})
    assert client.returncode != 0, client.stdout + client.stderr
    assert "answers without a valid job key tag" in client.stderr, client.stderr
    assert "No route to host" in client.stderr, client.stderr


def test_fi_info_node_service(provider_dir):
    """fi_info -p usb4 -n 127.0.0.1 -P 9511 answers (it said -61 before)."""
    done = subprocess.run(["fi_info", "-p", "usb4", "-n", "127.0.0.1", "-P", "9511"],
                          env=env_for(provider_dir), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "provider: usb4" in done.stdout, done.stdout


def test_resolve_answer_no_larger_than_query(nodesvc, provider_dir, tmp_path):
    """A RESOLVE query (wire.py's mirror of wire.h) to a bound server: the
    answer is exactly as long as the query, echoes its nonce and carries the
    server's whole address; a query of another length gets no answer."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
    from usb4fabric import wire

    port = free_port()
    with open(tmp_path / "server.out", "w") as out:
        server = subprocess.Popen([str(nodesvc), "server", "127.0.0.1", str(port)],
                                  env=env_for(provider_dir), stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            nonce = os.urandom(16)
            query = wire.resolve_query(nonce)
            answer = None
            for _ in range(20):  # until the server is up
                s.sendto(query, ("127.0.0.1", port))
                try:
                    answer = s.recv(4096)
                    break
                except socket.timeout:
                    continue
            assert answer is not None, (tmp_path / "server.out").read_text()
            assert len(answer) == len(query) == 96
            got = wire.Resolve.unpack(answer)
            assert got.type == wire.ResolveType.ANSWER and got.nonce == nonce
            assert got.addr.ep_id and not got.addr.flags & wire.ADDR_F_UNRESOLVED
            assert (got.addr.ip, got.addr.udp_port) == ("127.0.0.1", port)
            s.sendto(query + b"x", ("127.0.0.1", port))
            with pytest.raises(socket.timeout):
                s.recv(4096)
        # the server still serves a real client
        client = subprocess.run([str(nodesvc), "client", "127.0.0.1", str(port)],
                                env=env_for(provider_dir), capture_output=True,
                                text=True, timeout=TIMEOUT)
        assert client.returncode == 0, client.stdout + client.stderr
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(TIMEOUT)
