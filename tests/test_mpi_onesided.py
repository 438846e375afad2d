"""One-sided MPI over usb4 under every MPI stack selected (``--mpi-stack``).

``tests/mpi/onesided.c`` runs Put, Get, Accumulate, Get_accumulate,
Fetch_and_op and Compare_and_swap under fence, PSCW, lock/unlock and
lock_all + flush, on MPI_Win_create windows from 1 element to 4 MiB, and
verifies every result; rank 0 prints ``OK onesided``.

How each stack sends one-sided traffic over usb4 (python/usb4fabric/stacks.py):
Open MPI 4.1 osc rdma over btl ofi (pml cm); Open MPI 5.x osc rdma over btl
ofi under pml ob1 with ``btl_ofi_mode 2``; MPICH and Intel MPI their native
RMA and atomics through ch4:ofi.  The btl list is ``ofi,self``: vader/sm
is left out on purpose.  ``test_usb4_carried_onesided`` proves from the
provider's own close line that every rank moved frames over usb4 and that
RMA or atomics were issued through it (an MPI emulating one-sided over
messages issues none).

The development fabrics cannot run osc rdma (conftest's vader line turns off
vader's single-copy RDMA; btl ofi refuses libfabric's tcp): they check the
program with osc pt2pt, Open MPI's send/receive based one-sided instead.
"""

import subprocess

import pytest

import stackrun

pytestmark = pytest.mark.mpi

PROGRAM = "onesided"
ONESIDED_TIMEOUT = 120  # seconds per mpirun; a run takes ~4 s on 2 cores

# Development fabric -> extra --mca arguments for one-sided (Debian's config
# disables osc pt2pt by default, hence the explicit name); usb4's come from
# stacks.py.
DEV_ONESIDED_MCA = {
    "vader": ["--mca", "osc", "pt2pt"],
    "ofi-tcp": ["--mca", "osc", "pt2pt"],
}


def describe(result):
    return "$ %s\nexit %s\n--- stdout\n%s\n--- stderr\n%s" % (
        " ".join(result.args), result.returncode, result.stdout[-8000:],
        result.stderr[-8000:])


def run_onesided(stack_mpirun, fabric, np, env=None, program=PROGRAM):
    """Run the one-sided program; a timeout becomes a failure showing the output."""
    try:
        return stack_mpirun(program, np, env=env, one_sided=True,
                            extra=DEV_ONESIDED_MCA.get(fabric, []), timeout=ONESIDED_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail("timed out after %ss (process tree killed)\n$ %s\n--- stdout\n%s\n--- stderr\n%s"
                    % (exc.timeout, " ".join(exc.cmd), exc.output or "", exc.stderr or ""),
                    pytrace=False)


def assert_ok(result):
    assert result.returncode == 0, describe(result)
    assert "FAIL" not in result.stderr, describe(result)
    ok_lines = [line for line in result.stdout.splitlines() if line.strip() == "OK " + PROGRAM]
    assert len(ok_lines) == 1, "want one 'OK %s' line\n%s" % (PROGRAM, describe(result))


@pytest.mark.parametrize("np", [2, 4], ids=lambda n: "np%d" % n)
def test_onesided(np, fabric, mpi_stack, stack_mpirun):
    assert_ok(run_onesided(stack_mpirun, fabric, np))


def test_usb4_carried_onesided(fabric, mpi_stack, stack_mpirun, stack_programs, tmp_path):
    """Every rank moved frames over usb4 and RMA/atomics went through it."""
    if fabric != "usb4":
        pytest.skip("fabric %s does not run one-sided over usb4" % fabric)
    np = 2
    program = stackrun.stderr_to_files(stack_programs(mpi_stack)[PROGRAM], tmp_path)
    result = run_onesided(stack_mpirun, fabric, np, env=stackrun.TRAFFIC_LOG_ENV,
                          program=program)
    assert_ok(result)
    problems = stackrun.traffic_problems(stackrun.logs_in(tmp_path), np, link="shm",
                                         one_sided=True)
    assert not problems, "\n".join(problems) + "\n" + describe(result)
