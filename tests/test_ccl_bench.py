"""ccl_bench over usb4 on one host: 2 ranks, data checked (errors 0), the
unique id through a file and through a socket, started by hand, under hydra
(PMI_RANK) and under Open MPI's mpirun (OMPI_COMM_WORLD_RANK), and through
usb4bench beside libfabric tcp.  Skips when the ccl venv or the program is
absent (CI has both: scripts/test.sh runs setup.sh --ccl)."""

import os
import random
import subprocess

import pytest

from usb4fabric import ccl_launch, ccl_parse, launch
from usb4fabric.cli import main as usb4bench
from usb4fabric.launch import kill_tree

TIMEOUT = 60
SMALL = ["-b", "8", "-e", "64K", "-f", "8", "-n", "3", "-w", "1"]


def start_ranks(program, args, env, ranks=2):
    """ranks processes of ccl_bench started by hand (--rank/--nranks)."""
    full = dict(os.environ, **env)
    return [subprocess.Popen(ccl_launch.direct_argv(r, ranks, program) + args, env=full,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True) for r in range(ranks)]


def finish(procs):
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT)
            outs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                kill_tree(p)
    return outs


def run_command(argv, env=None, timeout=TIMEOUT):
    """argv run to its end with env added (its whole tree killed on timeout)."""
    done = launch.run(argv, timeout, env=dict(os.environ, **(env or {})))
    assert not done.timed_out, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def checked_table(outs, collective):
    for rc, out, err in outs:
        assert rc == 0, out[-2000:] + err[-2000:]
    table = ccl_parse.parse(outs[0][1])  # raises on a wrong element or a bad line
    assert table.collective == collective and table.ranks == 2
    assert table.errors == 0 and table.rows[0].size == 8
    return table


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_file_bootstrap_allreduce(ccl_program, provider_dir, tmp_path, dtype):
    id_file = tmp_path / "ccl.id"
    env = ccl_launch.rank_env("usb4", provider_dir, ccl_launch.Where(), id_file)
    outs = finish(start_ranks(ccl_program, ["-C", "allreduce", "-d", dtype] + SMALL, env))
    table = checked_table(outs, "allreduce")
    assert table.dtype == dtype
    assert not id_file.exists()  # rank 0 removes it once every rank has joined


@pytest.mark.parametrize("collective", ccl_launch.COLLECTIVES)
def test_socket_bootstrap_every_collective(ccl_program, provider_dir, tmp_path, collective):
    env = ccl_launch.rank_env("usb4", provider_dir, ccl_launch.Where(), tmp_path / "unused")
    del env["USB4_CCL_ID_FILE"]
    env["USB4_CCL_ID_ADDR"] = "127.0.0.1:%d" % random.randrange(*ccl_launch.ID_PORTS)
    outs = finish(start_ranks(ccl_program, ["-C", collective] + SMALL, env))
    checked_table(outs, collective)


def test_rank_without_rank0_gives_up(ccl_program, provider_dir, tmp_path):
    env = ccl_launch.rank_env("usb4", provider_dir, ccl_launch.Where(), tmp_path / "never")
    env["USB4_CCL_ID_TIMEOUT"] = "1"
    done = run_command(ccl_launch.direct_argv(1, 2, ccl_program) + SMALL, env=env)
    assert done.returncode != 0 and "unique id not shared" in done.stderr


@pytest.mark.parametrize("bootstrap", ["file", "socket"])
def test_under_hydra(ccl_program, provider_dir, tmp_path, bootstrap):
    env = ccl_launch.rank_env("usb4", provider_dir, ccl_launch.Where(), tmp_path / "ccl.id")
    if bootstrap == "socket":
        del env["USB4_CCL_ID_FILE"]
        env["USB4_CCL_ID_ADDR"] = "127.0.0.1:%d" % random.randrange(*ccl_launch.ID_PORTS)
    argv = ccl_launch.hydra_argv(2, env, ccl_program + ["-C", "alltoall"] + SMALL,
                                 ccl_launch.Where())
    done = run_command(argv, env=ccl_launch.launcher_env())
    checked_table([(done.returncode, done.stdout, done.stderr)], "alltoall")


def test_under_open_mpi_mpirun(ccl_program, provider_dir, tmp_path):
    env = ccl_launch.rank_env("usb4", provider_dir, ccl_launch.Where(), tmp_path / "ccl.id")
    argv = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "2"]
    for name, value in env.items():
        argv += ["-x", "%s=%s" % (name, value)]
    done = run_command(argv + ccl_program + ["-C", "broadcast"] + SMALL)
    checked_table([(done.returncode, done.stdout, done.stderr)], "broadcast")


def test_usb4bench_runs_ccl_over_usb4_and_tcp(ccl_program, provider_dir, tmp_path):
    out = tmp_path / "res"
    rc = usb4bench(["run", "--bench", "ccl_allreduce", "--fabric", "usb4,ethernet",
                    "--repeat", "1", "-m", "8:4096", "-i", "3", "-x", "1",
                    "--provider-dir", str(provider_dir), "--output", str(out)])
    assert rc == 0, (out / "runs.csv").read_text()
    results = (out / "results.csv").read_text().splitlines()
    for fabric in ("usb4", "ethernet"):
        busbw = [line for line in results if line.startswith(f"{fabric},ccl_allreduce,ccl_bench,")
                 and ",busbw," in line]
        assert len(busbw) == 10, results[:5]  # 8 B .. 4 KiB by 2x
