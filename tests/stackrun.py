"""The tests/mpi programs under any MPI stack, and the proof usb4 carried them.

``compile_programs(stack, out_dir)`` builds tests/mpi/*.c with the stack's
own mpicc and gives every program's argv (the Python ones run on the
stack's python, whose mpi4py loads that stack's MPI).

``usb4_traffic(log)`` reads the provider's own close line, which every
stack's libfabric prints alike at ``FI_LOG_LEVEL=info``::

    libfabric:<pid>:...:usb4:ep_data:log_traffic():...<info> endpoint <id>
        traffic: shm frames taken 11; eager sent 11 rendezvous sent 0
        unexpected 0; rma issued 0 atomics issued 0

and sums it per process (a rank may open several endpoints: Open MPI's
mtl and btl each open one).  No line of any one MPI is read.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import logcounters
from usb4fabric import stacks

MPI_SRC_DIR = Path(__file__).resolve().parent / "mpi"
CFLAGS = ["-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-pthread"]
COMPILE_TIMEOUT = 120  # seconds per program
TRAFFIC_LINE = re.compile(r"^libfabric:(\d+):.*\btraffic: (.*)$", re.M)
# What tests ask for so the provider's close line is logged (and little else).
TRAFFIC_LOG_ENV = {"FI_LOG_LEVEL": "info", "FI_LOG_PROV": "usb4"}


class CompileError(RuntimeError):
    pass


def skip_dev_fabric_of_other_stack(fabric, stack):
    """The development fabrics (vader, ofi-tcp, btl-tcp) are Open MPI 4.1 command lines."""
    if fabric != "usb4" and stack.name != stacks.DEFAULT_STACK:
        pytest.skip("the development fabric %s is defined for %s only"
                    % (fabric, stacks.DEFAULT_STACK))


def compile_programs(stack, out_dir: Path, env: dict) -> dict[str, list[str]]:
    """{program name: argv} for tests/mpi, C ones built with stack's mpicc."""
    out_dir.mkdir(parents=True, exist_ok=True)
    programs = {}
    for source in sorted(MPI_SRC_DIR.glob("*.c")):
        exe = out_dir / source.stem
        argv = stack.mpicc() + CFLAGS + ["-o", str(exe), str(source)]
        done = subprocess.run(argv, capture_output=True, text=True, env=env,
                              timeout=COMPILE_TIMEOUT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise CompileError("%s: %s failed:\n%s%s" % (stack.name, " ".join(argv),
                                                        done.stdout, done.stderr))
        programs[source.stem] = [str(exe)]
    for script in sorted(MPI_SRC_DIR.glob("*.py")):
        programs[script.stem] = stack.python() + [str(script)]
    return programs


def stderr_to_files(program: list[str], folder: Path) -> list[str]:
    """argv running program with each rank's stderr in folder/rank.<pid>.

    The provider's close line is among a rank's last output, and an MPI's
    output forwarding may drop a rank's last lines at exit (seen with Open
    MPI 5.0.7: one rank's line missing in 3 runs of 5); a file keeps them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    return ["/bin/sh", "-c", 'exec "$0" "$@" 2>"%s/rank.$$"' % folder] + list(program)


def logs_in(folder: Path) -> str:
    """Every rank's stderr written by stderr_to_files()."""
    return "".join(p.read_text(errors="replace") for p in sorted(folder.glob("rank.*")))


def usb4_traffic(log: str) -> dict[int, dict[str, int]]:
    """{pid: counters summed over its endpoints} from the provider's close lines."""
    by_pid: dict[int, dict[str, int]] = {}
    for pid, text in TRAFFIC_LINE.findall(log):
        counters = by_pid.setdefault(int(pid), {})
        for name, value in logcounters.pairs(text):
            counters[name] = counters.get(name, 0) + value
    return by_pid


def frames_taken(counters: dict[str, int], link: str | None = None) -> int:
    """Frames a process handled, over one link kind ("shm", "udp") or all."""
    return sum(v for k, v in counters.items()
               if k.endswith("_frames_taken") and (link is None or k == link + "_frames_taken"))


def traffic_problems(log: str, np: int, *, link: str | None = None,
                     one_sided: bool = False) -> list[str]:
    """Why the log does not show usb4 carrying np ranks' traffic ([] when it does).

    Every rank must have closed a usb4 endpoint that took frames (over
    ``link`` when given); for one-sided, every rank must also have issued
    RMA or atomics through usb4 (an MPI that emulates one-sided traffic
    with messages issues none).
    """
    traffic = usb4_traffic(log)
    problems = []
    if len(traffic) != np:
        problems.append("%d processes logged a usb4 traffic line, want %d (one per rank): "
                        "usb4 endpoints never opened or never closed" % (len(traffic), np))
    for pid, counters in sorted(traffic.items()):
        if frames_taken(counters, link) == 0:
            problems.append("pid %d: usb4 took no frames%s: %s" % (
                pid, " over its %s link" % link if link else "", counters))
    if one_sided:
        issued = {pid: c.get("rma_issued", 0) + c.get("atomics_issued", 0)
                  for pid, c in traffic.items()}
        if not any(issued.values()):
            problems.append("no rank issued RMA or atomics through usb4: one-sided "
                            "traffic went another way (emulated over messages?)")
    return problems
