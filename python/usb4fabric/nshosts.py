"""Hosts made of network namespaces, cables made of veth pairs.

A stand-in for a small USB4 cluster on one machine (root needed)::

    with Cluster(2) as cluster:                  # h1 --tb0-- h2
        h1, h2 = cluster.hosts
        cluster.run(h2, ["ip", "addr"], timeout=10)

Each host is a network namespace ``usb4t-<pid>-h<N>`` (pid of the creating
process, so parallel runs never collide) plus a persistent UTS namespace
(``/run/usb4t/<ns>.uts``, a bind-mounted ns file) with its own hostname
``usb4t-<pid>-h<N>``: Open MPI tells nodes apart by hostname.  ``lo`` is up in
every host.

Cable k joins two hosts with a veth pair whose two ends carry the same name
on both hosts (``tb0`` for a host's first cable, ``tb1`` for its second, as
every real host has its own ``thunderbolt0``), addresses 10.77.k.<host
number>/24 (host number = index + 1), and MTU 65522 by default (what
thunderbolt-net uses; veth accepts up to 65535; the largest unfragmented
UDP payload is then mtu - 28 = 65494).  Each end knows its peer's MAC from
the start (a permanent neighbour entry) and IPv6 is off unless asked for.
A cable may be shaped with tbf (rate, burst, latency) on both ends.

``Cluster(3, cables=[(0, 1), (1, 2)], routed=True)`` is a small routed
cluster, as its admin would set one up: every host forwards IPv4 and has a
route to every cable's subnet it is not on, via the neighbour on a
shortest path (fewest hops; ties go to the lower-numbered cable), so h1
reaches h3's addresses through h2.  Reverse-path filtering is loose
(``rp_filter=2``) in every host: in a ring the way back may differ from the
way there (h4 -> h1 -> h2 but h2 -> h3 -> h4), and strict filtering would
drop such datagrams.  ``ALL_SUBNETS`` covers every cable: a routed
cluster's jobs keep their out-of-band traffic to it
(``mpirun_argv(cable=None)``).

``Cluster(3, hub=True)`` joins every host to ONE L2 segment instead, as a
USB4 hub or daisy chain does: the first host holds a bridge named ``tb0``
(10.77.0.1/24) with one veth port (``hubN``) to each other host, whose end
is that host's ``tb0`` (10.77.0.<N>/24).  The bridge lives and dies with
the first host's namespace, so cleanup is the same as for cables.  The hub
is the cluster's only cable: ``cables[0]`` names every host as an end.

``run(host, argv, timeout=...)`` runs a command inside a host (``ip netns
exec`` + ``nsenter --uts``); on timeout it kills the command's process group
and every process inside the hosts.  ``mpirun_argv(slots)`` gives the launch
arguments of an MPI job across the hosts (``agent_path()``, the package's
launch_agent.sh, plays ssh), to be run in the first host.

Leaving the ``with`` block, on success, failure, KeyboardInterrupt or
SIGTERM, kills every process inside the hosts, deletes the namespaces (the
veths go with them) and removes the ns files.  ``sweep()`` (run at every
Cluster start) removes what a killed run (SIGKILL) left: ``usb4t-*``
namespaces whose creator pid is dead, and the processes inside them.

Only the standard library is used: tests, bench/ scripts and the harness
(``usb4bench run`` between namespace hosts) import this module alike.

launch_agent.sh ships beside this module as package data.  A wheel install
drops its executable bit (setuptools copies package data without the mode),
and mpirun execs the agent, so ``agent_path()`` then hands out an executable
copy under ``UTS_DIR`` (root-only, like the hosts themselves); from a source
checkout it is the file itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Union

NS_PREFIX = "usb4t-"
NETNS_DIR = Path("/run/netns")
UTS_DIR = Path("/run/usb4t")
SUBNET = "10.77.%d.0/24"  # cable k's subnet; it exists only inside the hosts
ALL_SUBNETS = "10.77.0.0/16"  # every cable's subnet
RP_FILTER_LOOSE = 2  # net.ipv4.conf.*.rp_filter: a source must be routable at all
DEFAULT_MTU = 65522  # thunderbolt-net's MTU
IP_UDP_HEADERS = 28  # IPv4 + UDP header bytes: largest datagram = mtu - 28
RUN_TIMEOUT = 120  # seconds, for run() unless told
KILL_GRACE = 3  # seconds between SIGTERM and SIGKILL
AGENT = Path(__file__).resolve().parent / "launch_agent.sh"  # may lack its x bit
CLUSTER_ENV = "USB4T_CLUSTER"  # tells the launch agent which cluster it serves

_NAME_RE = re.compile(r"^usb4t-(\d+)-h(\d+)$")


class HostError(RuntimeError):
    """A command that builds or removes the cluster failed."""


def agent_path(agent: Path = AGENT, runtime_dir: Path = UTS_DIR) -> Path:
    """An executable launch agent: agent itself, or a copy in runtime_dir.

    The copy is named after its content, written whole and renamed into
    place, so parallel clusters (and an mpirun already exec'ing an older
    one) never see a half-written or rewritten file.
    """
    if os.access(agent, os.X_OK):
        return agent
    text = agent.read_bytes()
    copy = runtime_dir / ("launch_agent-%s.sh" % hashlib.sha256(text).hexdigest()[:12])
    if os.access(copy, os.X_OK):
        return copy
    runtime_dir.mkdir(parents=True, exist_ok=True)
    tmp = copy.with_name("%s.%d" % (copy.name, os.getpid()))
    tmp.write_bytes(text)
    tmp.chmod(0o755)
    os.replace(tmp, copy)
    return copy


@dataclasses.dataclass
class Host:
    """One host: its namespace name (also its hostname) and addresses."""

    index: int
    name: str
    addrs: dict[str, str] = dataclasses.field(default_factory=dict)  # iface -> address

    @property
    def uts_file(self) -> Path:
        return UTS_DIR / (self.name + ".uts")

    @property
    def hostname(self) -> str:
        return self.name

    @property
    def addr(self) -> str:
        """Address on the host's first cable."""
        return self.addrs.get("tb0") or next(iter(self.addrs.values()))


@dataclasses.dataclass
class Cable:
    """A veth pair (or a hub: every host): the hosts it joins, its subnet."""

    index: int
    ends: tuple[Host, ...]
    ifnames: tuple[str, ...]
    mtu: int

    @property
    def subnet(self) -> str:
        return SUBNET % self.index

    @property
    def max_datagram(self) -> int:
        """Largest UDP payload that crosses without IP fragmentation."""
        return min(self.mtu, 65535) - IP_UDP_HEADERS


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=30)
    if check and proc.returncode != 0:
        raise HostError("ip %s: %s" % (" ".join(args), proc.stderr.strip()))
    return proc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces(prefix: str = NS_PREFIX) -> list[str]:
    """Names of network namespaces starting with prefix."""
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines()
            if line.split() and line.split()[0].startswith(prefix)]


def _ns_inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def pids_in(ns_files: list[Path]) -> list[int]:
    """Processes whose net or uts namespace is one of ns_files."""
    inodes = {i for i in map(_ns_inode, ns_files) if i is not None}
    found: list[int] = []
    if not inodes:
        return found
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        for kind in ("net", "uts"):
            try:
                if os.stat(entry / "ns" / kind).st_ino in inodes:
                    found.append(int(entry.name))
                    break
            except OSError:
                break
    return found


def kill_inside(ns_files: list[Path], grace: float = KILL_GRACE) -> None:
    """SIGTERM every process in the namespaces, then SIGKILL the rest."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = pids_in(ns_files)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and pids_in(ns_files):
            time.sleep(0.05)


def remove_host(name: str) -> None:
    """Kill what runs in host name, delete its namespace and ns files."""
    uts = UTS_DIR / (name + ".uts")
    kill_inside([NETNS_DIR / name, uts])
    if name in list_namespaces(name):
        _ip("netns", "delete", name, check=False)
    if uts.exists():
        subprocess.run(["umount", str(uts)], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=30)
        try:
            uts.unlink()
        except OSError:
            pass


def sweep() -> list[str]:
    """Remove hosts whose creator process is dead; returns their names."""
    stale = set()
    for name in list_namespaces():
        m = _NAME_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            stale.add(name)
    if UTS_DIR.is_dir():
        for path in UTS_DIR.glob(NS_PREFIX + "*.uts"):
            m = _NAME_RE.match(path.stem)
            if m and not _pid_alive(int(m.group(1))):
                stale.add(path.stem)
    for name in sorted(stale):
        remove_host(name)
    return sorted(stale)


def _sigterm_to_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(KILL_GRACE)
            # The leader is gone; members of its group may not be.
            os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


# A host as Cluster's methods take it: the Host, its index, name or an address.
HostRef = Union[Host, int, str]


class Cluster:
    """Context manager: n_hosts hosts joined by cables.

    cables: list of (i, j) host index pairs, one veth pair each; default a
    chain h1-h2-...-hn.  A second cable between the same two hosts is a
    second rail (``tb1`` on both).  mtu: of every cable.  shape: optional
    dict of tbf settings applied to every cable (see ``shape()``).  ipv6:
    leave IPv6 on (off by default: no tentative link-local addresses while
    a test starts).  static_neighbours: pin each cable end's peer MAC
    (default; see ``_static_neighbours``).  hub: one bridge joining every
    host instead of cables (see the module's docstring).  routed: every host
    forwards and routes to every cable's subnet (see ``next_hops()``).
    """

    def __init__(self, n_hosts: int = 2, cables: list[tuple[int, int]] | None = None,
                 mtu: int = DEFAULT_MTU, shape: dict | None = None, ipv6: bool = False,
                 static_neighbours: bool = True, hub: bool = False,
                 routed: bool = False):
        if n_hosts < 1:
            raise ValueError("a cluster needs at least one host")
        if hub and (cables is not None or n_hosts < 2):
            raise ValueError("a hub joins two hosts or more, and no cables")
        if hub and routed:
            raise ValueError("a hub is one subnet: there is nothing to route")
        self._hub = hub
        self.routed = routed
        if hub:
            cables = []
        elif cables is None:
            cables = [(i, i + 1) for i in range(n_hosts - 1)]
        for i, j in cables:
            if not (0 <= i < n_hosts and 0 <= j < n_hosts) or i == j:
                raise ValueError("cable (%d, %d) does not join two of %d hosts"
                                 % (i, j, n_hosts))
        if len(cables) > 250:
            raise ValueError("at most 250 cables (10.77.k.0/24)")
        self.prefix = "%s%d" % (NS_PREFIX, os.getpid())
        self.hosts = [Host(i, "%s-h%d" % (self.prefix, i + 1)) for i in range(n_hosts)]
        self._cable_pairs = list(cables)
        self.cables: list[Cable] = []
        self.mtu = mtu
        self._shape = shape
        self._ipv6 = ipv6
        self._static = static_neighbours
        self._made: list[Host] = []

    # --- building -----------------------------------------------------
    def __enter__(self) -> Cluster:
        sweep()
        self._catch_sigterm()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _catch_sigterm(self) -> None:
        """While hosts exist, SIGTERM unwinds (KeyboardInterrupt) instead of
        ending the process with the hosts left behind; close() restores it."""
        self._old_sigterm = None
        try:
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
                self._old_sigterm = signal.SIG_DFL
        except ValueError:  # not the main thread: leave it
            pass

    def _build(self) -> None:
        for host in self.hosts:
            if host.name in list_namespaces(host.name):
                remove_host(host.name)  # ours from an earlier Cluster in this process
            self._made.append(host)
            _ip("netns", "add", host.name)
            if not self._ipv6:
                self._no_ipv6(host)
            _ip("-n", host.name, "link", "set", "lo", "up")
            self._make_uts(host)
        if self._hub:
            self._build_hub()
            return
        ports = [0] * len(self.hosts)
        for k, (i, j) in enumerate(self._cable_pairs):
            a, b = self.hosts[i], self.hosts[j]
            names = ("tb%d" % ports[i], "tb%d" % ports[j])
            ports[i] += 1
            ports[j] += 1
            _ip("link", "add", "name", names[0], "netns", a.name, "type", "veth",
                "peer", "name", names[1], "netns", b.name)
            cable = Cable(k, (a, b), names, self.mtu)
            for host, ifname in zip((a, b), names):
                addr = "10.77.%d.%d" % (k, host.index + 1)
                _ip("-n", host.name, "link", "set", ifname, "mtu", str(self.mtu))
                _ip("-n", host.name, "addr", "add", addr + "/24", "dev", ifname)
                _ip("-n", host.name, "link", "set", ifname, "up")
                host.addrs[ifname] = addr
            if self._static:
                self._static_neighbours(cable)
            self.cables.append(cable)
            if self._shape:
                self.shape(cable, **self._shape)
        if self.routed:
            for host in self.hosts:
                self._route(host)

    def _build_hub(self) -> None:
        """A bridge tb0 in the first host, a veth port to every other host."""
        first = self.hosts[0]
        mtu = str(self.mtu)
        _ip("-n", first.name, "link", "add", "tb0", "type", "bridge")
        for host in self.hosts[1:]:
            port = "hub%d" % (host.index + 1)
            _ip("link", "add", "name", port, "netns", first.name, "type", "veth",
                "peer", "name", "tb0", "netns", host.name)
            _ip("-n", first.name, "link", "set", port, "mtu", mtu, "master", "tb0")
            _ip("-n", first.name, "link", "set", port, "up")
        for host in self.hosts:
            addr = "10.77.0.%d" % (host.index + 1)
            _ip("-n", host.name, "link", "set", "tb0", "mtu", mtu)
            _ip("-n", host.name, "addr", "add", addr + "/24", "dev", "tb0")
            _ip("-n", host.name, "link", "set", "tb0", "up")
            host.addrs["tb0"] = addr
        hub = Cable(0, tuple(self.hosts), ("tb0",) * len(self.hosts), self.mtu)
        if self._static:
            self._static_neighbours(hub)
        self.cables.append(hub)
        if self._shape:
            self.shape(hub, **self._shape)

    @staticmethod
    def _static_neighbours(cable: Cable) -> None:
        # A cable (or hub) has known peers: pin their MACs, as nothing else answers.
        # Without this, libfabric's tcp provider (ofi_rxm) failed the first
        # connection of the first job in fresh namespaces (ECONNREFUSED, then
        # EINVAL from connect) 5 times out of 5; with it, 5 out of 5 passed.
        macs = []
        for host, ifname in zip(cable.ends, cable.ifnames):
            out = _ip("-n", host.name, "-o", "link", "show", ifname).stdout
            m = re.search(r"link/ether (\S+)", out)
            if not m:
                raise HostError("no MAC address on %s in %s" % (ifname, host.name))
            macs.append(m.group(1))
        for end, (host, ifname) in enumerate(zip(cable.ends, cable.ifnames)):
            for other, (peer, peer_ifname) in enumerate(zip(cable.ends, cable.ifnames)):
                if other != end:
                    _ip("-n", host.name, "neigh", "replace", peer.addrs[peer_ifname],
                        "lladdr", macs[other], "dev", ifname, "nud", "permanent")

    @staticmethod
    def _sysctl(host: Host, *settings: str) -> None:
        argv = ["ip", "netns", "exec", host.name, "sysctl", "-qw", *settings]
        proc = subprocess.run(argv, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=30)
        if proc.returncode != 0:
            raise HostError("%s: %s" % (" ".join(argv), proc.stderr.strip()))

    def _no_ipv6(self, host: Host) -> None:
        # Before any cable exists, so no interface gets a tentative link-local address.
        self._sysctl(host, "net.ipv6.conf.all.disable_ipv6=1",
                     "net.ipv6.conf.default.disable_ipv6=1")

    def _route(self, host: Host) -> None:
        """host forwards, and routes every cable's subnet it is not on."""
        # The larger of "all" and an interface's own rp_filter applies, so
        # "all" = loose covers every interface, whatever the namespace
        # inherited (a new namespace copies the machine's IPv4 settings,
        # often strict).
        self._sysctl(host, "net.ipv4.ip_forward=1",
                     "net.ipv4.conf.all.rp_filter=%d" % RP_FILTER_LOOSE)
        for k, (via, ifname) in self.next_hops(host).items():
            _ip("-n", host.name, "route", "replace", self.cables[k].subnet,
                "via", via, "dev", ifname)

    def next_hops(self, host: HostRef) -> dict[int, tuple[str, str]]:
        """{cable index: (neighbour address to send through, host's interface
        towards it)} for each cable host is not on but can reach, along a
        shortest path (fewest hops) to the nearer end of the cable."""
        host = self.host(host)
        # Breadth first from host: a host found inherits the first hop of the
        # host that found it.  Cables in index order: ties go to the
        # lower-numbered cable.
        first_hop: dict[int, tuple[str, str]] = {}
        hops = {host.index: 0}
        frontier = [host]
        while frontier:
            found = []
            for here in frontier:
                for cable in self.cables:
                    ends = [e.index for e in cable.ends]
                    if here.index not in ends:
                        continue
                    for there, ifname in zip(cable.ends, cable.ifnames):
                        if there.index in hops:
                            continue
                        hops[there.index] = hops[here.index] + 1
                        first_hop[there.index] = (
                            (there.addrs[ifname], cable.ifnames[ends.index(host.index)])
                            if here is host else first_hop[here.index])
                        found.append(there)
            frontier = found
        routes = {}
        for cable in self.cables:
            ends = [e.index for e in cable.ends if e.index in hops]
            if host.index in ends or not ends:
                continue
            nearest = min(ends, key=lambda i: (hops[i], i))
            routes[cable.index] = first_hop[nearest]
        return routes

    def _make_uts(self, host: Host) -> None:
        UTS_DIR.mkdir(parents=True, exist_ok=True)
        host.uts_file.touch()
        proc = subprocess.run(["unshare", "--uts=%s" % host.uts_file,
                               "hostname", host.hostname],
                              capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=30)
        if proc.returncode != 0:
            raise HostError("unshare --uts for %s: %s" % (host.name, proc.stderr.strip()))

    def shape(self, cable: Cable, rate: str = "10gbit", burst: str = "4mb",
              latency: str = "50ms") -> None:
        """tbf on both ends of cable (e.g. rate='40gbit').  Replaces any root qdisc."""
        for host, ifname in zip(cable.ends, cable.ifnames):
            _ip_tc = ["tc", "-n", host.name, "qdisc", "replace", "dev", ifname, "root",
                      "tbf", "rate", rate, "burst", burst, "latency", latency]
            proc = subprocess.run(_ip_tc, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, timeout=30)
            if proc.returncode != 0:
                raise HostError("%s: %s" % (" ".join(_ip_tc), proc.stderr.strip()))

    def set_mtu(self, cable: Cable, end: int, mtu: int) -> None:
        """MTU of one end of cable (0 or 1), e.g. 1500 against the other's
        65522: a veth drops, silently, what exceeds its receiving end's MTU.
        Works while programs run (a path that shrinks)."""
        host, ifname = cable.ends[end], cable.ifnames[end]
        _ip("-n", host.name, "link", "set", ifname, "mtu", str(mtu))

    # --- removing -----------------------------------------------------
    def close(self) -> None:
        """Kill everything inside the hosts, remove them.  Idempotent."""
        # Ctrl-C or SIGTERM during cleanup must not leave half the hosts behind.
        held = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                held[sig] = signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass
        try:
            files = [p for h in self._made for p in (NETNS_DIR / h.name, h.uts_file)]
            kill_inside(files)
            for host in self._made:
                remove_host(host.name)
            self._made = []
        finally:
            if getattr(self, "_old_sigterm", None) is not None:
                held[signal.SIGTERM] = self._old_sigterm
                self._old_sigterm = None
            for sig, handler in held.items():
                signal.signal(sig, handler)

    # --- running ------------------------------------------------------
    def host(self, which: HostRef) -> Host:
        """A Host from itself, its index, its name or one of its addresses."""
        if isinstance(which, Host):
            return which
        if isinstance(which, int):
            return self.hosts[which]
        for host in self.hosts:
            if which == host.name or which in host.addrs.values():
                return host
        raise KeyError(which)

    def prefix_argv(self, host: HostRef) -> list[str]:
        """argv prefix that runs a command inside host (net + uts namespaces).

        ``ip netns exec`` also remounts /sys, so /sys/class/net shows the
        host's own interfaces (the provider looks for thunderbolt-net there).
        """
        host = self.host(host)
        return ["ip", "netns", "exec", host.name,
                "nsenter", "--uts=%s" % host.uts_file, "--"]

    def env(self, extra: dict | None = None) -> dict:
        env = dict(os.environ)
        env[CLUSTER_ENV] = self.prefix
        env.update(extra or {})
        return env

    def popen(self, host: HostRef, argv: list[str], env: dict | None = None,
              **kwargs: Any) -> subprocess.Popen:
        """Start argv inside host in a new session (its own process group)."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(self.prefix_argv(host) + list(argv), env=self.env(env),
                                start_new_session=True, **kwargs)

    def run(self, host: HostRef, argv: list[str], *, timeout: float = RUN_TIMEOUT,
            env: dict | None = None, cwd: str | Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
        """Run argv inside host; output captured as text.

        On timeout the process group is killed, and so is every process left
        in the cluster's hosts (mpirun's daemons live in other hosts and
        other groups); subprocess.TimeoutExpired is raised with the output.
        """
        proc = self.popen(host, argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException as exc:
            _kill_group(proc)
            self.kill_all()
            out, err = proc.communicate()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise subprocess.TimeoutExpired(proc.args, timeout, output=out,
                                                stderr=err) from None
            raise
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check and proc.returncode != 0:
            raise HostError("%s exited %d: %s" % (" ".join(argv), proc.returncode,
                                                  err.strip()[-2000:]))
        return result

    def kill_all(self) -> None:
        """Kill every process inside the cluster's hosts (they stay up)."""
        kill_inside([p for h in self._made for p in (NETNS_DIR / h.name, h.uts_file)])

    def processes(self) -> list[int]:
        return pids_in([p for h in self._made for p in (NETNS_DIR / h.name, h.uts_file)])

    # --- MPI across the hosts ----------------------------------------
    def mpirun_argv(self, slots: int | list[int] = 1, cable: int | None = 0) -> list[str]:
        """mpirun's launch arguments over cable's subnet (np = sum of slots).

        mpirun runs in the first host (run it with run(0, ...)); the launch
        agent plays ssh; out-of-band and btl tcp traffic keep to the subnet.
        cable None: each host by its first address, traffic kept to
        ALL_SUBNETS (a routed cluster, whose hosts share no one cable).
        """
        if isinstance(slots, int):
            slots = [slots] * len(self.hosts)
        if cable is None:
            subnet = ALL_SUBNETS
            addrs: list[str | None] = [h.addr for h in self.hosts]
        else:
            subnet = self.cables[cable].subnet
            addrs = [self.hosts[i].addrs[self._ifname(i, cable)] if n > 0 else None
                     for i, n in enumerate(slots)]
        hosts = ",".join("%s:%d" % (addrs[i], n) for i, n in enumerate(slots) if n > 0)
        return ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
                "-np", str(sum(slots)), "-H", hosts,
                "--mca", "plm_rsh_agent", str(agent_path()),
                "--mca", "oob_tcp_if_include", subnet,
                "--mca", "btl_tcp_if_include", subnet]

    def _ifname(self, host_index: int, cable: int) -> str:
        c = self.cables[cable]
        for host, ifname in zip(c.ends, c.ifnames):
            if host.index == host_index:
                return ifname
        raise ValueError("host %d is not on cable %d" % (host_index + 1, cable))
