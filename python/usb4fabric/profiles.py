"""Fabric profiles: how mpirun is told to use one fabric, described for the
record (the arguments and environment come from mpi_select.py).

Debian's /etc/openmpi/openmpi-mca-params.conf disables the ofi components
(``mtl = ^ofi``, ``btl = ^uct,openib,ofi``, ``osc = ^ucx,pt2pt``), so every
profile names its components explicitly.

Two-sided traffic, and what carries one-sided traffic (MPI_Put/Get/Acc):

- usb4: pml cm + mtl ofi, provider usb4.  One-sided: osc rdma over btl
  ofi restricted to usb4 (usb4 RMA and atomics), on one host and between
  hosts; vader is left out of the btl list so that it cannot carry a byte.
- ethernet: pml cm + mtl ofi, libfabric tcp;ofi_rxm.  One-sided as for usb4:
  not libfabric tcp.
- ethernet-btl: pml ob1 + btl tcp,self (Open MPI's own TCP).  One-sided:
  none, skipped (osc rdma cannot use btl tcp, osc pt2pt is disabled).
- shm: pml ob1 + btl vader,self, the same-host reference.  One-sided: osc
  rdma over btl vader.
- roce: pml cm + mtl ofi, libfabric verbs;ofi_rxm, only where fi_info finds
  a verbs device.  One-sided as for usb4.

With pml cm, Open MPI's osc rdma needs a btl for one-sided traffic.  For usb4
that is btl ofi over the usb4 provider.  For the others, checked with
btl_base_verbose on Debian 12 Open MPI 4.1.4: left to itself, osc rdma picks
vader/self on one host.  The harness names that choice on the command line so
the record says exactly what carried the rows, and marks them in
``Profile.one_sided_carrier``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from . import launch, locations, stacks
from . import mpi_select as sel

PROVIDER_LIB = locations.PROVIDER_LIB
NO_ONE_SIDED_BETWEEN_HOSTS = (
    "no one-sided path between hosts: with pml cm, osc rdma would need btl tcp, "
    "which cannot carry it (MPI_ERR_WIN), and btl ofi refuses ofi_rxm")
ALL_PROFILES = ("usb4", "ethernet", "ethernet-btl", "shm", "roce")
DEFAULT_PROFILES = ("usb4", "ethernet", "ethernet-btl", "shm")


@dataclasses.dataclass
class Profile:
    name: str
    description: str
    mca: list[str]  # mpirun arguments (--mca ...)
    env: dict[str, str]  # exported to the ranks with -x
    carrier: str  # what carries two-sided traffic
    one_sided_mca: list[str] = dataclasses.field(default_factory=list)
    one_sided_carrier: str = ""  # what carries one-sided traffic
    one_sided_is_fabric: bool = True  # False: one-sided rows are not this fabric
    skip: str | None = None  # why it cannot run here, or None
    one_sided_skip: str | None = None  # why one-sided benchmarks cannot run
    stack: stacks.Stack | None = None  # another MPI stack (--mpi): its own arguments
    stack_hosts: stacks.Hosts | None = None  # its ranks' hosts, None: this one

    def mpi_args(self, one_sided: bool) -> list[str]:
        if self.stack is not None:
            args, env = self.stack.fabric(self.name, one_sided=one_sided,
                                          provider_dir=self._provider_dir(),
                                          hosts=self.stack_hosts)
            return args + self.stack.env_args(env)
        args = list(self.mca) + (list(self.one_sided_mca) if one_sided else [])
        return args + sel.exports(self.env)

    def _provider_dir(self) -> Path | None:
        path = self.env.get("FI_PROVIDER_PATH")
        return Path(path) if path else None

    def carrier_for(self, one_sided: bool) -> str:
        return self.one_sided_carrier if one_sided else self.carrier


def provider_dir(option: str | None = None, env: dict[str, str] | None = None) -> Path | None:
    """--provider-dir, $USB4_PROVIDER_DIR, $FI_PROVIDER_PATH or the checkout's
    .libs (locations.provider_dir); None when none of them says."""
    return locations.provider_dir(option, env)[0]


def provider_missing(provider_path: Path | None) -> str | None:
    """Why libusb4-fi.so cannot be loaded from provider_path, or None."""
    if provider_path is None:
        return (f"{PROVIDER_LIB} not found: give --provider-dir, USB4_PROVIDER_DIR or "
                "FI_PROVIDER_PATH, or run from a built checkout of the project")
    lib = provider_path / PROVIDER_LIB
    if not lib.is_file():
        return (f"{lib} not found (build the provider, or give --provider-dir / "
                "USB4_PROVIDER_DIR)")
    return None


def verbs_device(timeout: float = 20.0) -> str | None:
    """The first verbs domain fi_info reports, or None."""
    done = launch.run(["fi_info", "-p", "verbs", "-t", "FI_EP_RDM"], timeout)
    if not done.ok:
        return None
    for line in done.stdout.splitlines():
        if line.strip().startswith("domain:"):
            return line.split(":", 1)[1].strip()
    return "verbs" if "provider: verbs" in done.stdout else None


def build(provider_path: Path | None, multihost: bool = False,
          names: tuple[str, ...] = ALL_PROFILES,
          probe_verbs: Callable[[], str | None] = verbs_device,
          iface: str | None = None) -> list[Profile]:
    """The profiles named, in that order, each with skip set when it cannot run.

    iface: between hosts, the interface towards the others, told to usb4, tcp
    and btl tcp (on one host loopback is theirs).
    """
    # On one host loopback stands in for the interface to other hosts.
    between = iface if multihost else "lo"
    btl_local = "self,vader,tcp" if multihost else "self,vader"
    where = "tcp between hosts, vader within one" if multihost else "all ranks on one host"
    not_fabric = f"osc rdma over btl {btl_local} ({where})"
    one_sided_cm = sel.mca("osc", "rdma", "btl", btl_local)
    btl_tcp = sel.btl_tcp() + (sel.mca("btl_tcp_if_include", between) if between else [])
    made = {
        "usb4": Profile(
            "usb4", "usb4 provider: pml cm + mtl ofi", sel.ofi_mtl("usb4"),
            sel.usb4_env(provider_path or "", between), "mtl ofi / usb4",
            sel.usb4_one_sided(), sel.USB4_ONE_SIDED_CARRIER, True,
            provider_missing(provider_path)),
        "ethernet": Profile(
            "ethernet", "libfabric tcp;ofi_rxm: pml cm + mtl ofi", sel.ofi_mtl(sel.TCP_RXM),
            sel.tcp_env(between), "mtl ofi / tcp;ofi_rxm", one_sided_cm,
            not_fabric + "; not libfabric tcp (btl ofi refuses ofi_rxm)", False),
        "ethernet-btl": Profile(
            "ethernet-btl", "Open MPI's own TCP: pml ob1 + btl tcp,self", btl_tcp, {},
            "btl tcp", sel.mca("osc", "rdma"), "osc rdma over btl tcp",
            one_sided_skip="no one-sided path: osc rdma needs an RDMA-capable btl and "
            "btl tcp has none (MPI_Win_create fails with MPI_ERR_WIN, checked on Open MPI "
            "4.1.4); osc pt2pt is disabled by Debian's openmpi-mca-params.conf"),
        "shm": Profile(
            "shm", "Open MPI shared memory (same-host reference): pml ob1 + btl vader,self",
            sel.vader(), {}, "btl vader", sel.mca("osc", "rdma"), "osc rdma over btl vader",
            skip="shared memory reaches only ranks of one host" if multihost else None),
    }
    if multihost:
        made["ethernet"].one_sided_skip = NO_ONE_SIDED_BETWEEN_HOSTS
    profiles = []
    for name in names:
        if name == "roce":
            device = probe_verbs()
            profiles.append(Profile(
                "roce", f"libfabric verbs ({device or 'no device'}): pml cm + mtl ofi",
                sel.ofi_mtl(sel.VERBS_RXM),
                {"FI_PROVIDER": "verbs"}, "mtl ofi / verbs;ofi_rxm", one_sided_cm,
                not_fabric + "; not verbs RMA", False,
                one_sided_skip=NO_ONE_SIDED_BETWEEN_HOSTS if multihost else None,
                skip=None if device else "no RDMA device: `fi_info -p verbs` finds none "
                "(only published RoCE figures appear in the report)"))
        elif name in made:
            profiles.append(made[name])
        else:
            raise ValueError(f"unknown fabric profile {name!r}: choose from "
                             f"{', '.join(ALL_PROFILES)}")
    return profiles


# What each fabric of an MPI stack is, for reports (stacks.py has the arguments).
STACK_FABRICS = {
    "usb4": ("usb4 provider", "usb4 (RMA and atomics through it)"),
    "shm": ("the stack's own shared memory", "the stack's own shared memory"),
    "tcp": ("the stack's own TCP", "the stack's one-sided path over TCP"),
}


def for_stack(stack: stacks.Stack, provider_path: Path | None, hosts: stacks.Hosts | None = None,
              names: tuple[str, ...] = stacks.FABRICS) -> list[Profile]:
    """Profiles of another MPI stack: its usb4, shared memory and tcp fabrics."""
    profiles = []
    for name in names:
        if name not in STACK_FABRICS:
            raise ValueError(f"unknown fabric {name!r} for --mpi {stack.name}: choose from "
                             f"{', '.join(stacks.FABRICS)}")
        carrier, one_sided_carrier = STACK_FABRICS[name]
        env = {"FI_PROVIDER_PATH": str(provider_path or "")} if name == "usb4" else {}
        skip = stack.missing()
        if skip is None and name == "usb4":
            skip = provider_missing(provider_path)
        if skip is None and name == "shm" and hosts:
            skip = "shared memory reaches only ranks of one host"
        profiles.append(Profile(name, f"{stack.title}: {carrier}", [], env,
                                f"{stack.name} / {carrier}",
                                one_sided_carrier=f"{stack.name} / {one_sided_carrier}",
                                skip=skip, stack=stack, stack_hosts=hosts))
    return profiles
