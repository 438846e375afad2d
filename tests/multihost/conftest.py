"""Fixtures for the multi-host suites: hosts are network namespaces.

Every test that asks for ``cluster2`` gets two fresh hosts (usb4fabric/nshosts.py)
joined by one veth cable ``tb0`` (10.77.0.0/24) and removed after the test,
whatever happened.  ``mpirun_hosts`` runs a program on ranks spread over them:
``mpirun`` inside the first host, its daemons started in the others by
usb4fabric/launch_agent.sh.

Fabrics (``USB4_MULTIHOST_FABRIC``, default ``usb4``):

usb4
    ``pml cm`` + ``mtl ofi`` restricted to usb4, ``FI_USB4_IFACE=tb0``: the
    provider's udp link between hosts, its shm link within one.  CI's path.
btl-tcp
    ``pml ob1`` + Open MPI's ``btl tcp`` (vader within a host, copying in
    and out: its single copy writes past a truncated receive); develops the
    harness without the provider.
ofi-tcp
    the usb4 command line with libfabric's ``tcp;ofi_rxm`` and
    ``FI_TCP_IFACE=tb0``.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import stackrun  # noqa: E402  (tests/stackrun.py)
from usb4fabric import mpi_select, nshosts, stacks  # noqa: E402

MULTIHOST_TIMEOUT = 90  # seconds, for every mpirun across hosts
IFACE = "tb0"


def fabric_args(fabric, provider_dir=None, onesided=False):
    """mpirun arguments (after the launch ones) selecting the fabric
    (usb4fabric/mpi_select.py's pieces)."""
    if fabric == "usb4":
        args = (mpi_select.ofi_mtl("usb4")
                + mpi_select.exports(mpi_select.usb4_env(provider_dir, IFACE)))
        if onesided:
            args += mpi_select.usb4_one_sided(network_max_amo=False)
        return args
    if fabric == "ofi-tcp":
        return mpi_select.ofi_mtl(mpi_select.TCP_RXM) + mpi_select.exports(
            mpi_select.tcp_env(IFACE))
    if fabric == "btl-tcp":
        return mpi_select.btl_tcp("tcp,vader,self", copy_in_out=True)
    raise ValueError(fabric)


FABRICS = ("usb4", "btl-tcp", "ofi-tcp")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """The host leftover check runs after everything else."""
    last = [item for item in items
            if getattr(getattr(item, "module", None), "__name__", "").endswith(
                "test_no_leftover_hosts")]
    items[:] = [item for item in items if item not in last] + last


@pytest.fixture(scope="session")
def multihost_fabric():
    name = os.environ.get("USB4_MULTIHOST_FABRIC", "usb4")
    if name not in FABRICS:
        pytest.fail("USB4_MULTIHOST_FABRIC=%s: choose one of %s" % (name, ", ".join(FABRICS)),
                    pytrace=False)
    return name


@pytest.fixture(scope="session")
def namespaces_usable():
    """Fails (never skips) without root and iproute2: CI runs as root."""
    if os.geteuid() != 0:
        pytest.fail("the multihost suite needs root (network namespaces)", pytrace=False)
    for tool in ("ip", "nsenter", "unshare"):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/sbin"]):
            pytest.fail("%s not found (iproute2 / util-linux)" % tool, pytrace=False)
    return True


@pytest.fixture(scope="session")
def default_stack():
    """The MPI stack the lean matrix runs everything under (skips without it)."""
    stack = stacks.named(stacks.DEFAULT_STACK)[0]
    why = stack.missing()
    if why:
        pytest.skip(why)
    return stack


@pytest.fixture
def cluster2(namespaces_usable):
    """Two fresh hosts joined by tb0; everything removed after the test."""
    with nshosts.Cluster(2) as cluster:
        yield cluster


@pytest.fixture
def mpirun_hosts(request, cluster2, multihost_fabric):
    """run(program, slots, mca=(), env=None, onesided=False, timeout=90).

    slots: ranks per host (1 -> 2 ranks on 2 hosts, 2 -> 4 ranks).  Returns
    the CompletedProcess of mpirun run in the first host.
    """
    provider = (request.getfixturevalue("provider_dir")
                if multihost_fabric == "usb4" else None)

    def run(program, slots, mca=(), env=None, onesided=False, timeout=MULTIHOST_TIMEOUT):
        argv = cluster2.mpirun_argv(slots)
        argv += fabric_args(multihost_fabric, provider, onesided) + list(mca)
        for name, value in (env or {}).items():
            argv += ["-x", "%s=%s" % (name, value)]
        return cluster2.run(0, argv + list(program), timeout=timeout)

    return run


def cluster_hosts(cluster, slots):
    """stacks.Hosts of the cluster: slots ranks on each host, over its tb0 cable."""
    return stacks.Hosts(tuple((h.addr, slots) for h in cluster.hosts),
                        cluster.cables[0].subnet, IFACE, nshosts.agent_path())


@pytest.fixture
def stack_mpirun_hosts(request, cluster2, multihost_fabric, mpi_stack, stack_programs):
    """run(program, slots, env=None, one_sided=False, extra=(), timeout=90).

    Runs a tests/mpi program (by name) or an argv list across the two hosts
    under the test's MPI stack (stacks.py's command line, launcher in the
    first host), over usb4 with FI_USB4_IFACE=tb0.  Under a development
    fabric (the default stack only) the run goes through fabric_args().
    """
    stackrun.skip_dev_fabric_of_other_stack(multihost_fabric, mpi_stack)
    programs = stack_programs(mpi_stack)
    provider = (request.getfixturevalue("provider_dir")
                if multihost_fabric == "usb4" else None)

    def run(program, slots, env=None, one_sided=False, extra=(), timeout=MULTIHOST_TIMEOUT):
        argv_of = programs[program] if isinstance(program, str) else list(program)
        if multihost_fabric == "usb4":
            argv = mpi_stack.argv(len(cluster2.hosts) * slots, argv_of, "usb4",
                                  one_sided=one_sided, provider_dir=provider, env=env,
                                  extra=list(extra), hosts=cluster_hosts(cluster2, slots))
        else:
            argv = cluster2.mpirun_argv(slots) + fabric_args(multihost_fabric) + list(extra)
            for name, value in (env or {}).items():
                argv += ["-x", "%s=%s" % (name, value)]
            argv += argv_of
        return cluster2.run(0, argv, env=mpi_stack.env(), timeout=timeout)

    return run
