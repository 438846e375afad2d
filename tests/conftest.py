"""Shared fixtures for the usb4 test suites.

MPI jobs go through ``mpirun`` with an argv list and a timeout; on timeout
the whole process tree of that mpirun is killed so no rank outlives its test.

Fabrics (``USB4_TEST_FABRIC``, default ``usb4``):

usb4
    Open MPI ``pml cm`` + ``mtl ofi`` restricted to the usb4 provider, loaded
    from ``provider_dir`` through ``FI_PROVIDER_PATH``.  The default and the
    CI path.
vader
    ``pml ob1`` + ``btl vader,self``: Open MPI's own shared memory, to develop
    the test programs without the provider.
ofi-tcp
    the usb4 command line with libfabric's ``tcp;ofi_rxm`` in place of usb4:
    checks the programs and the provenance check against ``mtl ofi``.

MPI stacks (``--mpi-stack=NAME[,NAME...]`` or ``all``, default
``ompi41-deb12``; python/usb4fabric/stacks.py says how each is launched):
tests taking the ``mpi_stack`` fixture run once per stack named; a stack
that is not installed skips with the reason.  ``--mpi-matrix=lean`` keeps,
for stacks other than the default, only the combinations in ``LEAN`` (CI's
subset; ``full``, the default, runs everything).  The development fabrics
above exist for the default stack only.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The package of this tree, not whichever copy is installed (an editable
# install of another worktree would otherwise shadow it).
if str(REPO_ROOT / "python") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "python"))

import stackrun  # noqa: E402  (tests/stackrun.py)
from usb4fabric import ccl_launch, mpi_select, stacks  # noqa: E402
from usb4fabric.launch import kill_tree  # noqa: E402  (the harness's, for both)

MPI_SRC_DIR = REPO_ROOT / "tests" / "mpi"
PROVIDER_LIB = "libusb4-fi.so"
MPIRUN_TIMEOUT = 120  # seconds, for every mpirun
KILL_GRACE = 5  # seconds between SIGTERM and SIGKILL on timeout
# Every process this session starts inherits this variable, so leftovers are
# told apart from other users' MPI jobs on a shared machine.
SESSION_MARK = "USB4_TEST_SESSION=%d-%d" % (os.getpid(), time.time_ns())


# fabric -> (mca arguments, environment for the ranks, libfabric core provider);
# the arguments are usb4fabric/mpi_select.py's.
FABRICS = {
    # on one host loopback stands in for the interface to other hosts
    "usb4": (mpi_select.ofi_mtl("usb4"), {"FI_PROVIDER": "usb4", "FI_USB4_IFACE": "lo"},
             "usb4"),
    "ofi-tcp": (mpi_select.ofi_mtl(mpi_select.TCP_RXM), mpi_select.tcp_env(None), "tcp"),
    "vader": (mpi_select.vader(copy_in_out=True), {}, None),
}


def mpirun_argv(fabric, np, program, *, env=None, mca=(), provider_dir=None):
    """The mpirun argv running ``program`` (a list) on ``np`` ranks over ``fabric``.

    ``env`` is exported to every rank with ``-x``; ``mca`` is a list of extra
    ``--mca`` arguments.  ``provider_dir`` is required for usb4.
    """
    fabric_mca, fabric_env, _ = FABRICS[fabric]
    rank_env = dict(fabric_env)
    if fabric == "usb4":
        if provider_dir is None:
            raise ValueError("the usb4 fabric needs provider_dir")
        rank_env["FI_PROVIDER_PATH"] = str(provider_dir)
    rank_env.update(env or {})
    argv = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
            "-np", str(np)]
    return argv + fabric_mca + list(mca) + mpi_select.exports(rank_env) + list(program)


def run_command(argv, *, timeout=MPIRUN_TIMEOUT, env=None, cwd=None):
    """Run argv in its own process group; returns subprocess.CompletedProcess.

    On timeout the whole tree is killed and subprocess.TimeoutExpired is
    raised carrying whatever output was captured.
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    name, value = SESSION_MARK.split("=", 1)
    full_env[name] = value
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=full_env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc, KILL_GRACE)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(argv, timeout, output=out, stderr=err) from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def fabric():
    """The fabric under test: usb4 unless USB4_TEST_FABRIC says otherwise."""
    name = os.environ.get("USB4_TEST_FABRIC", "usb4")
    if name not in FABRICS:
        pytest.fail("USB4_TEST_FABRIC=%s: choose one of %s" % (name, ", ".join(FABRICS)))
    return name


@pytest.fixture(scope="session")
def provider_dir(repo_root):
    """Folder holding libusb4-fi.so: <repo>/.libs, or $USB4_PROVIDER_DIR.

    Fails (never skips) when the library is missing: CI builds it first.
    """
    path = Path(os.environ.get("USB4_PROVIDER_DIR", repo_root / ".libs")).resolve()
    if not (path / PROVIDER_LIB).is_file():
        pytest.fail("%s not found in %s: build the provider first "
                    "(./autogen.sh && ./configure && make at the repo root) "
                    "or point USB4_PROVIDER_DIR at the folder holding it"
                    % (PROVIDER_LIB, path), pytrace=False)
    return path


@pytest.fixture(scope="session")
def mpi_programs(tmp_path_factory):
    """tests/mpi/*.c compiled with mpicc once, and tests/mpi/*.py: name -> argv."""
    if shutil.which("mpicc") is None or shutil.which("mpirun") is None:
        pytest.fail("mpicc/mpirun not found: install Open MPI", pytrace=False)
    out_dir = tmp_path_factory.mktemp("mpi_programs")
    programs = {}
    for source in sorted(MPI_SRC_DIR.glob("*.c")):
        exe = out_dir / source.stem
        argv = ["mpicc", "-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-pthread",
                "-o", str(exe), str(source)]
        result = run_command(argv, timeout=MPIRUN_TIMEOUT)
        if result.returncode != 0:
            pytest.fail("mpicc %s failed:\n%s%s" % (source.name, result.stdout, result.stderr),
                        pytrace=False)
        programs[source.stem] = [str(exe)]
    for script in sorted(MPI_SRC_DIR.glob("*.py")):
        programs[script.stem] = [shutil.which("python3") or "python3", str(script)]
    return programs


@pytest.fixture
def mpirun(request, fabric):
    """run(program, np, env=None, mca=(), timeout=120) over the fabric under test.

    Returns the CompletedProcess; the argv is in its ``args``.
    """
    provider = request.getfixturevalue("provider_dir") if fabric == "usb4" else None

    def run(program, np, env=None, mca=(), timeout=MPIRUN_TIMEOUT):
        argv = mpirun_argv(fabric, np, program, env=env, mca=mca, provider_dir=provider)
        return run_command(argv, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def fabric_provider(fabric):
    """The libfabric core provider that must carry the traffic, or None."""
    return FABRICS[fabric][2]


# --- leftovers: what the suite leaves behind ------------------------------

def usb4_shm_files():
    try:
        return {p.name for p in Path("/dev/shm").iterdir() if "usb4" in p.name}
    except FileNotFoundError:
        return set()


def session_processes():
    """{pid: name} of live processes started by this session (mpirun, orted, ranks)."""
    name, value = SESSION_MARK.split("=", 1)
    found = {}
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.environ().get(name) == value:
                found[proc.pid] = proc.info["name"]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def pytest_sessionstart(session):
    # /dev/shm files that existed before the suite are not ours to blame.
    session.config.usb4_shm_before = usb4_shm_files()


@pytest.fixture
def leftovers(pytestconfig):
    """Probes for what the session left behind: usb4 shm files and its processes
    (and the environment that marks a process as this session's)."""
    before = pytestconfig.usb4_shm_before
    return {"shm": lambda: usb4_shm_files() - before,
            "processes": session_processes,
            "mark": dict([SESSION_MARK.split("=", 1)])}


def pytest_collection_modifyitems(session, config, items):
    """Deselect what --mpi-matrix=lean leaves out; run the leftover check last."""
    deselect_lean(config, items)
    last = [item for item in items
            if getattr(getattr(item, "module", None), "__name__", "").endswith("test_no_leftovers")]
    items[:] = [item for item in items if item not in last] + last


# --- MPI stacks -------------------------------------------------------------

# (test function, program or None, ranks) kept for non-default stacks under
# --mpi-matrix=lean: one two-sided program at 2 and 4 ranks, mpi4py, one-sided
# at 2 and 4 ranks and the provenance checks, on one host and across hosts.
LEAN = {
    ("test_program", "pt2pt", 2), ("test_program", "collectives", 4),
    ("test_program", "pingpong_mpi4py", 2),
    ("test_onesided", None, 2),
    # 4 ranks across hosts: Open MPI 5 one-sided targets ranks that never
    # inserted the initiator (served on provider-drawn keys).
    ("test_onesided", None, 4),
    ("test_usb4_carried_the_traffic", None, None), ("test_usb4_carried_onesided", None, None),
    ("test_usb4_crossed_the_cable", None, None), ("test_ranks_start_on_every_host", None, None),
    ("test_imb", None, None),
}


def pytest_addoption(parser):
    parser.addoption("--mpi-stack", default=stacks.DEFAULT_STACK,
                     help="MPI stacks for the MPI tests: NAME[,NAME...] or all, of %s "
                     "(default %%(default)s)" % ", ".join(stacks.NAMES))
    parser.addoption("--mpi-matrix", default="full", choices=("full", "lean"),
                     help="full: every MPI test under every stack; lean: for stacks "
                     "other than %s only CI's subset (default %%(default)s)"
                     % stacks.DEFAULT_STACK)


def pytest_configure(config):
    selected_stacks(config)  # a bad --mpi-stack is a usage error before collection


def selected_stacks(config):
    try:
        return stacks.named(config.getoption("--mpi-stack"))
    except ValueError as exc:
        raise pytest.UsageError("--mpi-stack: %s" % exc) from exc


def pytest_generate_tests(metafunc):
    if "mpi_stack" in metafunc.fixturenames:
        chosen = selected_stacks(metafunc.config)
        metafunc.parametrize("mpi_stack", chosen, ids=[s.name for s in chosen])


def _lean_keeps(item):
    params = getattr(getattr(item, "callspec", None), "params", {})
    stack = params.get("mpi_stack")
    if stack is None or stack.name == stacks.DEFAULT_STACK:
        return True
    func = item.originalname or item.name
    name = params.get("name")
    np = params.get("np")
    np = int(str(np).lstrip("np")) if np is not None else None
    return any(f == func and (p is None or p == name) and (n is None or n == np)
               for f, p, n in LEAN)


def deselect_lean(config, items):
    """--mpi-matrix=lean: deselect the full matrix's extra combinations."""
    if config.getoption("--mpi-matrix") != "lean":
        return
    kept = [item for item in items if _lean_keeps(item)]
    dropped = [item for item in items if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def mpi_stack(request):
    """The MPI stack of this test (parametrized by --mpi-stack); skips when missing."""
    stack = request.param
    why = stack.missing()
    if why:
        pytest.skip(why)
    return stack




@pytest.fixture(scope="session")
def stack_programs(tmp_path_factory):
    """programs(stack) -> {name: argv}: tests/mpi built with the stack's mpicc, once."""
    built = {}

    def programs(stack):
        if stack.name not in built:
            out = tmp_path_factory.mktemp("mpi_programs_" + stack.name)
            env = dict(os.environ)
            env.update(stack.env())
            try:
                built[stack.name] = stackrun.compile_programs(stack, out, env)
            except (stackrun.CompileError, subprocess.TimeoutExpired) as exc:
                built[stack.name] = exc
        if isinstance(built[stack.name], Exception):
            pytest.fail(str(built[stack.name]), pytrace=False)
        return built[stack.name]

    return programs


@pytest.fixture
def stack_mpirun(request, fabric, mpi_stack, stack_programs):
    """run(name, np, env=None, one_sided=False, extra=(), timeout=120).

    Runs tests/mpi program ``name`` (or an argv list) on np ranks under the test's MPI stack
    over usb4 (stacks.py's command line).  Under a development fabric (the
    default stack only) the program runs through ``mpirun_argv`` instead,
    with ``extra`` as its additional mpirun arguments.
    """
    stackrun.skip_dev_fabric_of_other_stack(fabric, mpi_stack)
    programs = stack_programs(mpi_stack)
    provider = request.getfixturevalue("provider_dir") if fabric == "usb4" else None

    def run(name, np, env=None, one_sided=False, extra=(), timeout=MPIRUN_TIMEOUT):
        program = programs[name] if isinstance(name, str) else list(name)
        if fabric == "usb4":
            argv = mpi_stack.argv(np, program, "usb4", one_sided=one_sided,
                                  provider_dir=provider, env=env, extra=list(extra))
        else:
            argv = mpirun_argv(fabric, np, program, env=env, mca=extra)
        return run_command(argv, timeout=timeout, env=mpi_stack.env())

    return run


@pytest.fixture(scope="session")
def ccl_program():
    """ccl_bench's argv, or a skip saying why it cannot run here (no ccl venv,
    not built)."""
    why = ccl_launch.missing()
    if why:
        pytest.skip(why)
    return [str(ccl_launch.PROGRAM)]
