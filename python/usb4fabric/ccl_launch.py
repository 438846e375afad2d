"""How ccl_bench (the collective benchmark over oneCCL) is started.

The library is the ccl2022-pypi stack (scripts/setup.sh --ccl): oneCCL
2022.1.2 with Intel MPI 2021.18.1, whose hydra (``mpiexec.hydra``) starts one
rank per host, here or across ``Hosts`` (a program playing ssh for namespace
hosts).  ccl_bench takes its rank from hydra (PMI_RANK/PMI_SIZE) and the
communicator's unique id from rank 0 through a file (one host) or a socket
on the first host (several hosts): no MPI call is made.

What oneCCL needs, found by trying (README "Collective benchmark"):
``CCL_PLUGIN=ONECCL_LEGACY_CPU`` (the C API's CPU plugin),
``CCL_ATL_TRANSPORT=ofi`` (libfabric, not MPI), ``CCL_WORKER_OFFLOAD=0``
(its worker threads spin: on 2 cores they starve the ranks, 40 ms per 8 B
allreduce instead of 20 us), ``CCL_KVS_IFACE`` across hosts (the interface
its key-value store listens on), and the venv's libfabric first on
``LD_LIBRARY_PATH``.  Fabrics:

usb4
    ``FI_PROVIDER=usb4`` loaded from ``FI_PROVIDER_PATH`` (which replaces
    the venv's provider folder: only usb4 is found there).
tcp
    libfabric's tcp provider of the venv (2.4.0), ``FI_TCP_IFACE``.
shm
    libfabric's shm provider (``FI_PROVIDER=shm`` with ``CCL_ATL_SHM=1``:
    oneCCL refuses shm named by FI_PROVIDER alone); one host only.

Nothing here runs a command; ``missing()`` checks files.
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

from .osu_locate import CCL_BENCH as PROGRAM
from .stacks import STACKS_DIR, Hosts, Stack

VENV = STACKS_DIR / "ccl2022-pypi"
STACK = Stack("ccl2022-pypi", "oneCCL 2022.1.2 + Intel MPI 2021.18.1 from PyPI", "impi",
              "2.4.0", venv=VENV)
FABRICS = ("usb4", "tcp", "shm")
# usb4bench profile names -> the fabric oneCCL uses for them
PROFILE_FABRIC = {"usb4": "usb4", "ethernet": "tcp", "tcp": "tcp", "shm": "shm"}
COLLECTIVES = ("allreduce", "allgather", "reduce_scatter", "broadcast", "alltoall")
ID_PORTS = (29600, 29900)  # the socket bootstrap's port is drawn from this range


def missing(program: Path | None = PROGRAM, venv: Path = VENV) -> str | None:
    """Why ccl_bench cannot run here, or None."""
    if not (venv / "lib" / "libccl.so.2").is_file():
        return f"oneCCL not installed: no {venv}/lib/libccl.so.2 (scripts/setup.sh --ccl)"
    if program is None:
        return "ccl_bench not found: not run from a checkout, and not on PATH"
    if not program.is_file():
        return f"{program} not built (configure finds oneCCL in {venv}; then make)"
    return None


@dataclasses.dataclass(frozen=True)
class Where:
    """One host (hosts None) or several, and the interface between them."""

    hosts: Hosts | None = None
    iface: str | None = None  # towards the other hosts; None on one host

    @property
    def multihost(self) -> bool:
        return self.hosts is not None


def library_env(venv: Path = VENV) -> dict[str, str]:
    return {"CCL_PLUGIN": "ONECCL_LEGACY_CPU", "CCL_ATL_TRANSPORT": "ofi",
            "CCL_WORKER_OFFLOAD": "0", "LD_LIBRARY_PATH": str(venv / "lib")}


def fabric_env(fabric: str, provider_dir: Path | None, where: Where) -> dict[str, str]:
    """The ranks' environment selecting fabric; ValueError when it cannot."""
    iface = where.iface or "lo"
    if fabric == "usb4":
        if provider_dir is None:
            raise ValueError("the usb4 fabric needs the provider's folder")
        env = {"FI_PROVIDER": "usb4", "FI_PROVIDER_PATH": str(provider_dir)}
        # the provider's tunables set here (FI_USB4_PORTABLE=1...) reach every
        # rank, on every host, and are written in the command line kept
        env.update({k: v for k, v in os.environ.items() if k.startswith("FI_USB4_")})
        if where.multihost:
            env["FI_USB4_IFACE"] = iface
        return env
    if fabric == "tcp":
        return {"FI_PROVIDER": "tcp", "FI_TCP_IFACE": iface}
    if fabric == "shm":
        if where.multihost:
            raise ValueError("shared memory reaches only ranks of one host")
        return {"FI_PROVIDER": "shm", "CCL_ATL_SHM": "1"}
    raise ValueError(f"unknown fabric {fabric!r}: choose from {', '.join(FABRICS)}")


def id_env(where: Where, id_file: Path) -> dict[str, str]:
    """How rank 0 hands the unique id over: a file here, a socket across hosts."""
    if where.hosts is None:  # one host
        return {"USB4_CCL_ID_FILE": str(id_file)}
    first = where.hosts.slots[0][0]
    return {"USB4_CCL_ID_ADDR": f"{first}:{random.randrange(*ID_PORTS)}",
            "CCL_KVS_IFACE": where.iface or "lo"}


def rank_env(fabric: str, provider_dir: Path | None, where: Where, id_file: Path,
             venv: Path = VENV) -> dict[str, str]:
    env = library_env(venv)
    env.update(fabric_env(fabric, provider_dir, where))
    env.update(id_env(where, id_file))
    return env


def bench_args(collective: str, dtype: str = "float32", sizes: tuple[int, int] | None = None,
               factor: int | None = None, iters: int | None = None,
               warmup: int | None = None) -> list[str]:
    """ccl_bench's arguments (nccl-tests' letters)."""
    args = ["-C", collective, "-d", dtype]
    if sizes:
        args += ["-b", str(sizes[0]), "-e", str(sizes[1])]
    for flag, value in (("-f", factor), ("-n", iters), ("-w", warmup)):
        if value is not None:
            args += [flag, str(value)]
    return args


def hydra_argv(ranks: int, env: dict[str, str], program: list[str], where: Where,
               stack: Stack = STACK) -> list[str]:
    """mpiexec.hydra of the venv starting ranks ranks of program, one per host
    across hosts (``Hosts`` with one slot each)."""
    argv = stack.launch_args(ranks, where.hosts)
    if where.multihost and where.iface and "-iface" not in argv:
        argv += ["-iface", where.iface]
    return argv + stack.env_args(env) + [str(p) for p in program]


def launcher_env(stack: Stack = STACK) -> dict[str, str]:
    """The environment mpiexec.hydra itself needs (its venv's bin on PATH).

    Without the caller's libfabric variables: hydra hands its environment
    to the ranks, and an inherited ``FI_PROVIDER_PATH`` (usb4bench sets it
    for itself) replaces the venv's provider folder, so the tcp ranks found
    no provider (-FI_ENODATA).  Each rank's fabric comes from rank_env alone.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("FI_")}
    env.update(stack.env())
    return env


def direct_argv(rank: int, ranks: int, program: list[str]) -> list[str]:
    """One rank started by hand (no launcher): rank and size as flags."""
    return [str(p) for p in program] + ["--rank", str(rank), "--nranks", str(ranks)]
