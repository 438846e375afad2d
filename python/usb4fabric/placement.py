"""Where a run's ranks ran, and the name a reader sees for each fabric there.

A *placement* is where every rank of one ``usb4bench run`` ran; it is written
in metadata.json (``placement``) and in every row of results.csv and runs.csv
(column ``placement``), beside the *series* name (column ``series``) the
report puts on plot lines and table columns:

``cable``
    two hosts made of network namespaces by ``usb4bench run --cable``
    (usb4fabric.nshosts), one rank per host, joined by a veth cable ``tb0``
    with MTU 65522 as thunderbolt-net: every byte between the ranks crosses
    the cable.  The report's headline.
``hosts``
    the machines of ``--hosts``/``--hostfile``.
``same-host``
    every rank on this machine: usb4 goes through its shm link, Ethernet
    through loopback.

``REPORT_ORDER`` is the order of the report's sections.  Series names say
what carried the bytes and where, e.g. "usb4 — 2 hosts, udp link over a veth
cable", "Ethernet — libfabric tcp, 2 hosts", "usb4 — same host, shm link",
"Shared memory — Open MPI vader, same host"; shared memory off one host is
"Shared memory — Open MPI vader, one host only" (its runs there are skipped).
"""

from __future__ import annotations

CABLE = "cable"
HOSTS = "hosts"
SAME_HOST = "same-host"
REPORT_ORDER = (CABLE, HOSTS, SAME_HOST)
TITLES = {CABLE: "2 hosts over a veth cable (network namespaces, MTU 65522)",
          HOSTS: "across hosts",
          SAME_HOST: "same host"}

# profile name -> (family, how that family's bytes go; None: usb4's, by placement)
_FABRICS = {
    "usb4": ("usb4", None),
    "ethernet": ("Ethernet", "libfabric tcp"),
    "ethernet-btl": ("Ethernet", "Open MPI btl tcp"),
    "shm": ("Shared memory", "Open MPI vader"),
    "roce": ("RoCE", "libfabric verbs"),
}
_USB4_LINK = {CABLE: "udp link over a veth cable", HOSTS: "udp link",
              SAME_HOST: "shm link"}


def of_run(multihost: bool, cable: bool = False) -> str:
    """The placement of a run: cable, --hosts/--hostfile, or this machine."""
    if cable:
        return CABLE
    return HOSTS if multihost else SAME_HOST


def where_words(placement: str, n_hosts: int | None = None) -> str:
    """'2 hosts', 'same host', ..."""
    if placement == SAME_HOST:
        return "same host"
    if placement == CABLE:
        return "2 hosts"
    return f"{n_hosts} hosts" if n_hosts else "several hosts"


def series_name(fabric: str, placement: str, n_hosts: int | None = None,
                iface: str | None = None, stack_title: str | None = None) -> str:
    """The series a reader sees for a fabric profile at a placement.

    stack_title: the MPI stack of ``--mpi`` (its fabrics usb4, shm, tcp are
    its own components, so they are named with it).
    """
    where = where_words(placement, n_hosts)
    if fabric == "shm" and placement != SAME_HOST:
        # never run across hosts (profiles skip it): the name must not say it was
        where = "one host only"
    if stack_title or fabric not in _FABRICS:
        return f"{fabric} — {stack_title or 'profile ' + fabric}, {where}"
    family, how = _FABRICS[fabric]
    if how is None:  # usb4: its link depends on the placement
        link = _USB4_LINK[placement]
        if placement == HOSTS and iface:
            link += f" over {iface}"
        return f"{family} — {where}, {link}"
    if placement == SAME_HOST and fabric.startswith("ethernet"):
        where += " (loopback)"
    return f"{family} — {how}, {where}"
