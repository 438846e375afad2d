"""MPI over usb4: Open MPI pml cm + mtl ofi with only the usb4 provider.

Each program in tests/mpi verifies its own data and prints ``OK <name>``
from rank 0; here every one runs at 2 and 4 ranks (4 oversubscribed on a
2-core machine).  ``test_usb4_carried_the_traffic`` proves from the logs of
Open MPI and libfabric that usb4, and nothing else, was the fabric.

Run ``USB4_TEST_FABRIC=vader`` (or ``ofi-tcp``) to check the programs
themselves without the provider; CI runs the default, usb4.
"""

import re
import subprocess

import pytest

pytestmark = pytest.mark.mpi

# One program per area in tests/mpi; each prints "OK <name>" from rank 0.
PROGRAMS = ("pt2pt", "probe", "semantics", "collectives", "thread_multiple",
            "pingpong_mpi4py")

# Known deviations of the development fabrics, never of usb4.
DEV_FABRIC_XFAIL = {
    ("ofi-tcp", "semantics"):
        "ofi_rxm does not copy the fitting part of a truncated message",
}


def describe(result):
    return "$ %s\nexit %s\n--- stdout\n%s\n--- stderr\n%s" % (
        " ".join(result.args), result.returncode, result.stdout[-8000:],
        result.stderr[-8000:])


def run_checked(mpirun, program, np, **kwargs):
    """Run, turning a timeout into a test failure that shows the output."""
    try:
        return mpirun(program, np, **kwargs)
    except subprocess.TimeoutExpired as exc:
        pytest.fail("timed out after %ss (process tree killed)\n$ %s\n--- stdout\n%s\n--- stderr\n%s"
                    % (exc.timeout, " ".join(exc.cmd), exc.output or "", exc.stderr or ""),
                    pytrace=False)


@pytest.mark.parametrize("np", [2, 4], ids=lambda n: "np%d" % n)
@pytest.mark.parametrize("name", PROGRAMS)
def test_program(name, np, fabric, mpi_programs, mpirun, request):
    if (fabric, name) in DEV_FABRIC_XFAIL:
        request.applymarker(pytest.mark.xfail(reason=DEV_FABRIC_XFAIL[(fabric, name)]))
    result = run_checked(mpirun, mpi_programs[name], np)
    assert result.returncode == 0, describe(result)
    assert "FAIL" not in result.stderr, describe(result)
    ok_lines = [line for line in result.stdout.splitlines() if line.strip() == "OK " + name]
    assert len(ok_lines) == 1, "want one 'OK %s' line\n%s" % (name, describe(result))


def registered_and_filtered(log):
    """Providers libfabric registered, and those its FI_PROVIDER list filtered out."""
    registered = set(re.findall(r"registering provider: (\S+) \(", log))
    filtered = set(re.findall(r'"(\S+)" filtered by provider include/exclude list', log))
    return registered, filtered


def test_usb4_carried_the_traffic(fabric, fabric_provider, mpi_programs, mpirun):
    """Open MPI picked mtl ofi in every rank and libfabric offered only usb4.

    Open MPI 4.1's ``mtl:ofi:provider:`` line names the domain, not the
    provider, so the provider comes from libfabric's own info log: usb4 was
    loaded (from FI_PROVIDER_PATH) and every other core provider was
    filtered out, so the provider that mtl ofi opened can only be usb4.
    """
    provider = fabric_provider
    if provider is None:
        pytest.skip("fabric %s does not go through libfabric" % fabric)
    np = 2
    result = run_checked(mpirun, mpi_programs["probe"], np,
                         env={"FI_LOG_LEVEL": "info"},
                         mca=["--mca", "mtl_base_verbose", "100"])
    assert result.returncode == 0, describe(result)
    log = result.stdout + result.stderr

    selected = re.findall(r"\(\s*mtl\) Selected component \[(\w+)\]", log)
    assert selected == ["ofi"] * np, "mtl ofi not selected in every rank\n" + describe(result)
    domains = re.findall(r"mtl:ofi:provider: (\S+)", log)
    assert len(domains) == np and "none" not in domains, \
        "mtl ofi opened no provider\n" + describe(result)

    registered, filtered = registered_and_filtered(log)
    assert provider in registered, \
        "libfabric never registered %s (FI_PROVIDER_PATH?)\n%s" % (provider, describe(result))
    assert provider not in filtered, describe(result)
    # Utility and hook providers (ofi_*) layer over a core one; they carry nothing alone.
    usable_core = {p for p in registered - filtered if not p.startswith("ofi_")}
    assert usable_core == {provider}, \
        "core providers besides %s were usable: %s\n%s" % (
            provider, sorted(usable_core - {provider}), describe(result))
    assert "Opened fabric:" in log, describe(result)
