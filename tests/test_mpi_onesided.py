"""One-sided MPI over usb4: Open MPI osc rdma over btl ofi restricted to usb4.

``tests/mpi/onesided.c`` runs Put, Get, Accumulate, Get_accumulate,
Fetch_and_op and Compare_and_swap under fence, PSCW, lock/unlock and
lock_all + flush, on MPI_Win_create windows from 1 element to 4 MiB, and
verifies every result; rank 0 prints ``OK onesided``.

Over usb4 the btl list is ``ofi,self``: vader is left out on purpose, so the
only btl that reaches another rank is btl ofi, and libfabric offers it only
usb4.  ``test_usb4_carried_onesided`` proves that from the logs.

The development fabrics cannot run osc rdma (conftest's vader line turns off
vader's single-copy RDMA; btl ofi refuses libfabric's tcp): they check the
program with osc pt2pt, Open MPI's send/receive based one-sided instead.
"""

import re
import subprocess

import pytest

pytestmark = pytest.mark.mpi

PROGRAM = "onesided"
ONESIDED_TIMEOUT = 120  # seconds per mpirun; a run takes ~4 s on 2 cores

# fabric -> extra --mca arguments for one-sided (Debian's config disables
# btl ofi and osc pt2pt by default, hence the explicit names).
ONESIDED_MCA = {
    "usb4": ["--mca", "osc", "rdma", "--mca", "btl", "ofi,self",
             "--mca", "btl_ofi_provider_include", "usb4"],
    "vader": ["--mca", "osc", "pt2pt"],
    "ofi-tcp": ["--mca", "osc", "pt2pt"],
}


def describe(result):
    return "$ %s\nexit %s\n--- stdout\n%s\n--- stderr\n%s" % (
        " ".join(result.args), result.returncode, result.stdout[-8000:],
        result.stderr[-8000:])


def run_onesided(mpirun, fabric, program, np, env=None, mca=()):
    """Run the one-sided program; a timeout becomes a failure showing the output."""
    try:
        return mpirun(program, np, env=env, mca=ONESIDED_MCA[fabric] + list(mca),
                      timeout=ONESIDED_TIMEOUT)
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
def test_onesided(np, fabric, mpi_programs, mpirun):
    assert_ok(run_onesided(mpirun, fabric, mpi_programs[PROGRAM], np))


# --- provenance -----------------------------------------------------------

# "[host:pid] message" from Open MPI's verbose output, "libfabric:pid:..." from libfabric's log.
OMPI_LINE = re.compile(r"^\[[^\]:]+:(\d+)\] (.*)$")
FI_LINE = re.compile(r"^libfabric:(\d+):.*?<info> (.*)$")


def lines_by_pid(log):
    """{pid: [message, ...]} in output order, Open MPI and libfabric lines together."""
    by_pid = {}
    for line in log.splitlines():
        match = OMPI_LINE.match(line) or FI_LINE.match(line)
        if match:
            by_pid.setdefault(int(match.group(1)), []).append(match.group(2))
    return by_pid


def usable_core_providers(log):
    """Core providers libfabric registered and did not filter out (ofi_* layer over others)."""
    registered = set(re.findall(r"registering provider: (\S+) \(", log))
    filtered = set(re.findall(r'"(\S+)" filtered by provider include/exclude list', log))
    return {p for p in registered - filtered if not p.startswith("ofi_")}


def check_rank(pid, lines, provider):
    """One rank: btl ofi came up on a fabric named provider, and osc rdma ran the windows."""
    fabrics = [m.split("Opened fabric: ", 1)[1].strip() for m in lines if "Opened fabric: " in m]
    assert fabrics and set(fabrics) == {provider}, \
        "rank pid %d opened fabrics %s, want only %s" % (pid, fabrics, provider)
    # btl ofi and mtl ofi each open the fabric: one open is not enough.
    assert len(fabrics) >= 2, "rank pid %d opened the fabric %d time(s)" % (pid, len(fabrics))
    btl_ok = [i for i, m in enumerate(lines) if m == "select: init of component ofi returned success"]
    assert len(btl_ok) == 1, "rank pid %d: btl ofi did not initialize" % pid
    # btl ofi's open of the fabric comes right before its init reports success.
    opened = [i for i, m in enumerate(lines) if "Opened fabric: " in m]
    assert opened[0] < btl_ok[0], "rank pid %d: btl ofi succeeded without opening %s" % (pid, provider)
    assert any(m.startswith("rdma component destroying window") for m in lines), \
        "rank pid %d: osc rdma never handled a window" % pid
    assert not any("init of component vader" in m for m in lines), \
        "rank pid %d: btl vader was initialized" % pid


def test_usb4_carried_onesided(fabric, fabric_provider, mpi_programs, mpirun):
    """btl ofi opened usb4 in every rank, osc rdma ran the windows, usb4 was the only provider.

    With ``--mca btl ofi,self`` the only btl that reaches another rank is btl
    ofi; with ``--mca osc rdma`` a window that no btl can reach fails to
    create.  So a passing run whose btl ofi opened usb4 moved its one-sided
    traffic over usb4.
    """
    if fabric != "usb4":
        pytest.skip("fabric %s does not run osc rdma over btl ofi" % fabric)
    np = 2
    result = run_onesided(mpirun, fabric, mpi_programs[PROGRAM], np,
                          env={"FI_LOG_LEVEL": "info"},
                          mca=["--mca", "btl_base_verbose", "100",
                               "--mca", "osc_base_verbose", "100"])
    assert_ok(result)
    log = result.stdout + result.stderr
    ranks = {pid: lines for pid, lines in lines_by_pid(log).items()
             if "select: initializing btl component ofi" in lines}
    assert len(ranks) == np, "btl ofi initialized in %d ranks, want %d\n%s" % (
        len(ranks), np, describe(result))
    for pid, lines in ranks.items():
        check_rank(pid, lines, fabric_provider)
    assert usable_core_providers(log) == {fabric_provider}, \
        "core providers besides %s were usable\n%s" % (fabric_provider, describe(result))
