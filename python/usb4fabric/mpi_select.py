"""How an MPI stack is told which fabric to use: the one place that says it.

The Open MPI component settings (``--mca``), the libfabric and provider
environment (``FI_*``) and what carries one-sided traffic, for every stack
family.  stacks.py says where a stack is installed and how it is launched
and asks ``select`` for a fabric's arguments; profiles.py (usb4bench's
fabric profiles), tests/conftest.py and tests/multihost (the tests'
fabrics) and bench/ (their stacks) build their command lines from the pieces
below.  tests/harness/test_mpi_select.py holds every command line these
make.

Debian's openmpi-mca-params.conf (12 and 13) turns the ofi components off
(``mtl = ^ofi``, ``btl = ^uct,openib,ofi``, ``osc = ^ucx,pt2pt``), so every
Open MPI command line names its components.

Nothing here runs a command.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # stacks.py imports this module
    from .stacks import Hosts

FABRICS = ("usb4", "shm", "tcp")  # of every stack (stacks.Stack.fabric)
# libfabric 1.17's tcp provider offers only FI_EP_MSG; mtl ofi needs
# FI_EP_RDM, which the ofi_rxm utility provider layered on it gives (named
# "tcp;ofi_rxm").  mtl ofi's default exclude list holds
# "tcp", so without an include list pml cm cannot be selected at all; the
# include list replaces the exclude list.  FI_PROVIDER keeps libfabric from
# offering anything else.
TCP_RXM = "tcp;ofi_rxm"
VERBS_RXM = "verbs;ofi_rxm"

# What carries one-sided traffic, for reports.
USB4_ONE_SIDED_CARRIER = "osc rdma over btl ofi / usb4 (RMA and atomics)"


def mca(*pairs: str) -> list[str]:
    """``--mca NAME VALUE`` for each pair of pairs."""
    args: list[str] = []
    for i in range(0, len(pairs), 2):
        args += ["--mca", pairs[i], pairs[i + 1]]
    return args


def exports(env: Mapping[str, object]) -> list[str]:
    """Open MPI's ``-x NAME=VALUE`` exporting env to every rank."""
    args: list[str] = []
    for name, value in env.items():
        args += ["-x", f"{name}={value}"]
    return args


# --- Open MPI 4.1 (Debian 12's, the default stack) -------------------------

def ofi_mtl(provider: str) -> list[str]:
    """Two-sided traffic over libfabric: pml cm + mtl ofi restricted to provider."""
    return mca("pml", "cm", "mtl", "ofi", "opal_common_ofi_provider_include", provider)


def usb4_one_sided(network_max_amo: bool = True) -> list[str]:
    """One-sided traffic over usb4: osc rdma over btl ofi restricted to usb4.

    vader is left out of the btl list, so no one-sided byte can take Open
    MPI's shared memory.  osc_rdma_network_max_amo 1: osc rdma 4.1 sends an
    accumulate of up to that many elements as one blocking network atomic
    per element (default 32), longer ones as get, op, put under its
    accumulate lock; over usb4 each atomic costs a round trip, so from 2
    elements on get/op/put is faster (README "Benchmarks with targets").
    The multi-host tests run without it (network_max_amo False).
    """
    args = mca("osc", "rdma", "btl", "ofi,self", "btl_ofi_provider_include", "usb4")
    return args + (mca("osc_rdma_network_max_amo", "1") if network_max_amo else [])


def usb4_env(provider_dir: Path | str, iface: str | None) -> dict[str, str]:
    """The ranks' environment loading the usb4 provider from provider_dir.

    iface: the interface towards other hosts.  MPIs ask for FI_REMOTE_COMM,
    which usb4 grants only with one; on one host loopback is that interface
    (same-host peers still go over the shm link).  None: the provider's own
    choice (thunderbolt-net interfaces).
    """
    env = {"FI_PROVIDER": "usb4", "FI_PROVIDER_PATH": str(provider_dir)}
    if iface:
        env["FI_USB4_IFACE"] = iface
    return env


def tcp_env(iface: str | None) -> dict[str, str]:
    """The ranks' environment for libfabric's tcp;ofi_rxm (on iface)."""
    env = {"FI_PROVIDER": TCP_RXM}
    if iface:
        env["FI_TCP_IFACE"] = iface
    return env


def vader(copy_in_out: bool = False) -> list[str]:
    """Open MPI's shared memory: pml ob1 + btl vader,self.

    copy_in_out: vader's single copy (CMA) writes past a receive buffer on
    truncation (an Open MPI bug the tests' semantics.c catches): copy in and
    out instead.
    """
    args = mca("pml", "ob1", "btl", "vader,self")
    return args + (mca("btl_vader_single_copy_mechanism", "none") if copy_in_out else [])


def btl_tcp(btls: str = "tcp,self", copy_in_out: bool = False) -> list[str]:
    """Open MPI's own TCP: pml ob1 + btl tcp (vader beside it when named)."""
    args = mca("pml", "ob1", "btl", btls)
    return args + (mca("btl_vader_single_copy_mechanism", "none") if copy_in_out else [])


def btl_tcp_where(hosts: Hosts | None) -> list[str]:
    """What Open MPI's btl tcp may use: loopback on one host, else the hosts'
    subnet or interface (nothing said: its own choice)."""
    where = (hosts.subnet or hosts.iface) if hosts else "lo"
    return mca("btl_tcp_if_include", where) if where else []


# --- every stack family: a fabric of FABRICS -------------------------------

Choice = tuple[list[str], dict[str, str]]  # (launcher arguments, ranks' environment)


def select(family: str, fabric: str, *, one_sided: bool = False,
           provider_dir: Path | None = None, hosts: Hosts | None = None,
           iface: str | None = None) -> Choice:
    """(launcher arguments, environment for the ranks) selecting fabric
    under a stack of family ("ompi41", "ompi5", "mpich", "impi").

    iface: the interface usb4 (and tcp) use towards other hosts; the
    multi-host default is ``hosts.iface``, on one host ``lo``.
    """
    if fabric not in FABRICS:
        raise ValueError("unknown fabric %r: choose from %s" % (fabric, ", ".join(FABRICS)))
    iface = iface or (hosts.iface if hosts else None)
    env: dict[str, str]
    if fabric == "usb4":
        if provider_dir is None:
            raise ValueError("the usb4 fabric needs provider_dir")
        env = usb4_env(provider_dir, iface or "lo")
    elif fabric == "tcp":
        env = {"FI_TCP_IFACE": iface or "lo"}
    else:
        env = {}
    chooser = {"ompi41": _ompi41, "ompi5": _ompi5, "mpich": _mpich, "impi": _impi}[family]
    args, more = chooser(fabric, one_sided, hosts)
    env.update(more)
    return args, env


def _ompi41(fabric: str, one_sided: bool, hosts: Hosts | None) -> Choice:
    if fabric == "usb4":
        return ofi_mtl("usb4") + (usb4_one_sided() if one_sided else []), {}
    if fabric == "shm":
        return vader(copy_in_out=True), {}
    return btl_tcp() + btl_tcp_where(hosts), {}


def _ompi5(fabric: str, one_sided: bool, hosts: Hosts | None) -> Choice:
    if fabric == "usb4":
        if one_sided:
            # 5.x: only ob1 starts BTLs; btl ofi in mode 2 (RMA and two-sided).
            return mca("pml", "ob1", "btl", "ofi,self", "btl_ofi_mode", "2",
                       "osc", "rdma", "opal_common_ofi_provider_include", "usb4"), {}
        return ofi_mtl("usb4"), {}
    if fabric == "shm":
        return mca("pml", "ob1", "btl", "sm,self"), {}
    return btl_tcp() + btl_tcp_where(hosts), {}


def _mpich(fabric: str, one_sided: bool, hosts: Hosts | None) -> Choice:
    env = {"MPIR_CVAR_CH4_NETMOD": "ofi"}
    if fabric == "usb4":
        # Its own shared memory off: same-host ranks go over usb4 too.
        env.update({"MPIR_CVAR_NOLOCAL": "1"})
    elif fabric == "tcp":
        env.update({"FI_PROVIDER": "tcp", "MPIR_CVAR_NOLOCAL": "1"})
    else:
        env.update({"FI_PROVIDER": "tcp", "FI_TCP_IFACE": "lo"})  # netmod unused
    return [], env


def _impi(fabric: str, one_sided: bool, hosts: Hosts | None) -> Choice:
    if fabric == "shm":
        return [], {"I_MPI_FABRICS": "shm"}
    provider = "usb4" if fabric == "usb4" else "tcp"
    # I_MPI_FABRICS=ofi: no shared memory, same-host ranks use the provider.
    return [], {"I_MPI_FABRICS": "ofi", "I_MPI_OFI_PROVIDER": provider}
