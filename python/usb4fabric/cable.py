"""usb4bench run --cable: the plan between two hosts joined by a veth cable.

The hosts are network namespaces made for the run (usb4fabric.nshosts):
``h1 --tb0-- h2``, a veth pair with MTU 65522 as thunderbolt-net, one rank
per host.  mpirun runs inside h1 (``Plan.prefix``) and reaches h2 through
the package's launch agent, which plays ssh; Open MPI's own out-of-band
traffic keeps to the cable's subnet, and every fabric is told the cable's
interface (profiles.build(iface=...)), so every byte between the ranks
crosses the cable.  The hosts, and whatever still runs in them, are removed
when the run ends, however it ends.

Making namespaces needs root; ``missing()`` says why the cable cannot be
made here, and the run is then recorded with that reason (results.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Callable

from . import nshosts

IFACE = "tb0"  # every host's end of its first cable
RANKS = 2  # one rank per host
TOOLS = ("ip", "nsenter", "unshare")  # nshosts makes and enters hosts with these


def missing(euid: Callable[[], int] | None = None,
            which: Callable[[str], str | None] = shutil.which) -> str | None:
    """Why namespace hosts cannot be made here, or None (euid: os.geteuid)."""
    uid = (euid or os.geteuid)()
    if uid != 0:
        return (f"not root (euid {uid}): two hosts joined by a veth cable are network "
                "namespaces, and making them (ip netns add, veth pairs) needs root; "
                "run as root, or give --hosts to measure between real hosts")
    absent = [tool for tool in TOOLS if which(tool) is None]
    if absent:
        return (f"{', '.join(absent)} not found: namespace hosts are made with "
                f"{', '.join(TOOLS)} (iproute2, util-linux)")
    return None


def launch_args(cluster: nshosts.Cluster) -> list[str]:
    """mpirun's arguments reaching the second host over the cable.

    --bind-to none: both hosts share this machine's cores, and each host's
    Open MPI daemon, binding its one rank to "its" first core, put both
    ranks on core 0: libfabric tcp's 8 B round trip took milliseconds (two
    spinning ranks on one core) and osu_latency timed out.
    """
    return ["--bind-to", "none",
            "--mca", "plm_rsh_agent", str(nshosts.agent_path()),
            "--mca", "oob_tcp_if_include", cluster.cables[0].subnet]


@contextlib.contextmanager
def hosts(make: Callable[..., nshosts.Cluster] = nshosts.Cluster) -> Iterator[nshosts.Cluster]:
    """Two hosts joined by one cable, for the length of the block.

    nshosts.HostError when they cannot be made (e.g. a container without
    the right to make namespaces).
    """
    with make(RANKS) as cluster:
        before = os.environ.get(nshosts.CLUSTER_ENV)
        os.environ[nshosts.CLUSTER_ENV] = cluster.prefix  # the launch agent's cluster
        try:
            yield cluster
        finally:
            if before is None:
                os.environ.pop(nshosts.CLUSTER_ENV, None)
            else:
                os.environ[nshosts.CLUSTER_ENV] = before


def describe(cluster: nshosts.Cluster) -> str:
    """The hosts and their cable, for the output and the metadata."""
    a, b = cluster.hosts
    return (f"{a.name} ({a.addr}) --{IFACE}, veth, MTU {cluster.mtu}-- "
            f"{b.name} ({b.addr})")
