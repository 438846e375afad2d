"""python/usb4fabric/stacks.py: how each MPI stack is told to launch and to use usb4.

Pure argv checks (no MPI runs): the MPI test suites (tests/test_mpi_*.py,
tests/multihost) run these command lines for real under --mpi-stack.
"""

from pathlib import Path

import pytest

from usb4fabric import osu_locate, profiles, runner, stacks
from usb4fabric.cli import main

PROVIDER = Path("/opt/usb4/lib")


def pairs(argv, flag):
    """{name: value} of every ``flag NAME VALUE`` in argv."""
    return {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == flag}


def test_named_all_one_and_unknown():
    assert [s.name for s in stacks.named("all")] == list(stacks.NAMES)
    assert [s.name for s in stacks.named("mpich50-pypi, ompi41-deb12,mpich50-pypi")] == [
        "mpich50-pypi", "ompi41-deb12"]
    with pytest.raises(ValueError, match="unknown MPI stack.*nope"):
        stacks.named("ompi41-deb12,nope")
    with pytest.raises(ValueError, match="no MPI stack named"):
        stacks.named(" , ")


def test_open_mpi_41_usb4_keeps_pml_cm_for_one_sided():
    argv = stacks.STACKS["ompi41-deb12"].argv(2, ["prog"], one_sided=True,
                                               provider_dir=PROVIDER)
    mca = pairs(argv, "--mca")
    assert mca["pml"] == "cm" and mca["mtl"] == "ofi" and mca["btl"] == "ofi,self"
    assert mca["osc"] == "rdma" and mca["opal_common_ofi_provider_include"] == "usb4"
    assert mca["osc_rdma_network_max_amo"] == "1"  # accumulates whole, not per element
    assert "-x" in argv and "FI_PROVIDER_PATH=%s" % PROVIDER in argv
    assert argv[-1] == "prog"


def test_open_mpi_5_one_sided_goes_through_ob1_and_btl_ofi_mode_2():
    argv = stacks.STACKS["ompi50-pypi"].argv(4, ["prog"], one_sided=True,
                                              provider_dir=PROVIDER)
    mca = pairs(argv, "--mca")
    assert mca["pml"] == "ob1" and mca["btl"] == "ofi,self" and mca["btl_ofi_mode"] == "2"
    assert "mtl" not in mca
    two_sided = pairs(stacks.STACKS["ompi50-pypi"].argv(4, ["p"], provider_dir=PROVIDER),
                      "--mca")
    assert two_sided["pml"] == "cm" and two_sided["mtl"] == "ofi"


@pytest.mark.parametrize("name", ["mpich50-pypi", "impi2021-pypi"])
def test_hydra_stacks_pass_env_with_genv_and_keep_same_host_ranks_on_usb4(name):
    stack = stacks.STACKS[name]
    argv = stack.argv(2, ["prog"], provider_dir=PROVIDER, env={"A": "1"})
    assert Path(argv[0]).name == "mpiexec.hydra" and "-x" not in argv
    env = pairs(argv, "-genv")
    assert env["FI_PROVIDER"] == "usb4" and env["FI_PROVIDER_PATH"] == str(PROVIDER)
    assert env["A"] == "1"
    if name == "mpich50-pypi":
        assert env["MPIR_CVAR_CH4_NETMOD"] == "ofi" and env["MPIR_CVAR_NOLOCAL"] == "1"
    else:
        assert env["I_MPI_FABRICS"] == "ofi" and env["I_MPI_OFI_PROVIDER"] == "usb4"


def test_usb4_without_provider_dir_and_unknown_fabric_are_errors():
    stack = stacks.STACKS["mpich50-pypi"]
    with pytest.raises(ValueError, match="provider_dir"):
        stack.argv(2, ["prog"])
    with pytest.raises(ValueError, match="unknown fabric 'ib'"):
        stack.argv(2, ["prog"], "ib")


def test_shared_memory_across_hosts_is_an_error():
    hosts = stacks.Hosts((("10.0.0.1", 1), ("10.0.0.2", 1)))
    with pytest.raises(ValueError, match="one host only"):
        stacks.STACKS["ompi50-pypi"].argv(2, ["p"], "shm", hosts=hosts)


AGENT = Path("/x/launch_agent.sh")
HOSTS = stacks.Hosts((("10.77.0.1", 2), ("10.77.0.2", 2)), "10.77.0.0/24", "tb0", AGENT)


def test_launch_across_hosts_per_launcher():
    ompi41 = stacks.STACKS["ompi41-deb12"].launch_args(4, HOSTS)
    assert pairs(ompi41, "--mca")["plm_rsh_agent"] == str(AGENT)
    assert ompi41[ompi41.index("-H") + 1] == "10.77.0.1:2,10.77.0.2:2"
    ompi5 = stacks.STACKS["ompi50-deb13"].launch_args(4, HOSTS)
    assert pairs(ompi5, "--prtemca") == {"plm_ssh_agent": str(AGENT),
                                         "oob_tcp_if_include": "10.77.0.0/24"}
    assert ompi5[ompi5.index("--map-by") + 1] == "ppr:2:node"
    assert ompi5[0].endswith("chroot-run.sh")  # the Debian 13 stack runs in its root
    hydra = stacks.STACKS["mpich50-pypi"].launch_args(4, HOSTS)
    assert hydra[hydra.index("-hosts") + 1] == "10.77.0.1:2,10.77.0.2:2"
    assert hydra[hydra.index("-launcher-exec") + 1] == str(AGENT)
    assert hydra[hydra.index("-iface") + 1] == "tb0"
    impi = stacks.STACKS["impi2021-pypi"].launch_args(4, HOSTS)
    assert impi[impi.index("-hosts") + 1] == "10.77.0.1,10.77.0.2"
    assert impi[impi.index("-ppn") + 1] == "2"


def test_usb4_across_hosts_names_the_interface():
    _, env = stacks.STACKS["impi2021-pypi"].fabric("usb4", provider_dir=PROVIDER, hosts=HOSTS)
    assert env["FI_USB4_IFACE"] == "tb0"


def test_missing_stack_says_how_to_install(tmp_path):
    table = stacks.named("all", stacks_dir=tmp_path)
    why = {s.name: s.missing() for s in table}
    assert "scripts/stacks.sh mpich50-pypi" in why["mpich50-pypi"]
    assert "scripts/stacks.sh ompi50-deb13" in why["ompi50-deb13"]
    (tmp_path / "mpich50-pypi").mkdir()
    (tmp_path / "mpich50-pypi" / stacks.STAMP).write_text("")
    assert stacks.named("mpich50-pypi", stacks_dir=tmp_path)[0].missing() is None


def test_stack_profiles_use_the_stacks_own_arguments(tmp_path):
    stack = stacks.named("mpich50-pypi", stacks_dir=tmp_path)[0]
    made = {p.name: p for p in profiles.for_stack(stack, PROVIDER)}
    assert sorted(made) == ["shm", "tcp", "usb4"]
    assert pairs(made["usb4"].mpi_args(False), "-genv")["FI_PROVIDER_PATH"] == str(PROVIDER)
    assert "not installed" in made["usb4"].skip
    with pytest.raises(ValueError, match="unknown fabric 'ethernet'"):
        profiles.for_stack(stack, PROVIDER, names=("ethernet",))


def test_cli_mpi_usage_errors(tmp_path, capsys):
    assert main(["run", "--mpi", "ompi50-pypi", "--hostfile", "h",
                 "--output", str(tmp_path)]) == 2
    assert "--hostfile is Open MPI's" in capsys.readouterr().err


def test_another_stacks_python_runs_mpi4py_bench_by_path_without_our_site_packages(tmp_path):
    """An installed harness's parent folder is site-packages: exported as the
    ranks' PYTHONPATH it put our mpi4py and numpy before the stack's own."""
    stack = stacks.named("mpich50-pypi", stacks_dir=tmp_path)[0]
    profile = profiles.for_stack(stack, PROVIDER, names=("usb4",))[0]
    bench = osu_locate.BENCHMARKS["mpi4py_latency"]
    plan = runner.Plan([profile], [bench], osu_locate.Suite("osu_bench", tmp_path, "test"),
                       stack=stack)
    program = plan.program(bench)
    assert program is not None
    assert program[0] == str(tmp_path / "mpich50-pypi" / "bin" / "python")
    assert Path(program[1]).name == "mpi4py_bench.py" and Path(program[1]).is_file()
    assert "PYTHONPATH" not in " ".join(plan.stack_argv(stack, profile, bench, program))
