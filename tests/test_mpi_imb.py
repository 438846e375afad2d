"""Intel MPI Benchmarks over usb4, short runs: the stacks that ship them.

Intel MPI's wheel brings IMB-MPI1 and IMB-RMA; they run with Intel MPI's
default settings (native RMA and atomics, nothing turned off) over usb4.
A stack without them skips.  IMB checks nothing itself, so each run must
print its tables and the provider's close line must show usb4 carried
every rank's traffic (RMA and atomics issued through it for IMB-RMA).
"""

import re
import subprocess

import pytest

import stackrun

pytestmark = pytest.mark.mpi

IMB_TIMEOUT = 180  # seconds; each run takes well under a minute
# program -> (benchmarks, arguments keeping the run short, one-sided)
IMB_RUNS = {
    "IMB-MPI1": (["PingPong", "Sendrecv", "Allreduce"],
                 ["-msglog", "0:20", "-iter", "100", "-time", "5"], False),
    "IMB-RMA": (["Unidir_put", "Unidir_get", "Accumulate", "Get_accumulate",
                 "Fetch_and_op", "Compare_and_swap"],
                ["-msglog", "0:16", "-iter", "50", "-time", "5"], True),
}


def describe(result):
    return "$ %s\nexit %s\n--- stdout\n%s\n--- stderr\n%s" % (
        " ".join(result.args), result.returncode, result.stdout[-8000:],
        result.stderr[-8000:])


def imb_tables(stdout):
    """Benchmark names IMB printed a result table for."""
    return re.findall(r"^# Benchmarking (\S+)", stdout, re.M)


@pytest.mark.parametrize("program", sorted(IMB_RUNS))
def test_imb(program, fabric, mpi_stack, stack_mpirun, tmp_path):
    imb = mpi_stack.tool(program)
    if imb is None:
        pytest.skip("%s does not ship %s" % (mpi_stack.name, program))
    if fabric != "usb4":
        pytest.skip("IMB runs over usb4 only")
    benchmarks, args, one_sided = IMB_RUNS[program]
    np = 2
    try:
        result = stack_mpirun(stackrun.stderr_to_files(imb + args + benchmarks, tmp_path), np,
                              one_sided=one_sided,
                              env=stackrun.TRAFFIC_LOG_ENV, timeout=IMB_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail("timed out after %ss\n$ %s\n--- stdout\n%s\n--- stderr\n%s"
                    % (exc.timeout, " ".join(exc.cmd), exc.output or "", exc.stderr or ""),
                    pytrace=False)
    logs = stackrun.logs_in(tmp_path)
    assert result.returncode == 0, describe(result) + logs[-8000:]
    assert sorted(set(imb_tables(result.stdout))) == sorted(benchmarks), describe(result)
    problems = stackrun.traffic_problems(logs, np, link="shm",
                                         one_sided=one_sided)
    assert not problems, "\n".join(problems) + "\n" + describe(result)
