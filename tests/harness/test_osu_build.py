"""osu_bench built with an MPI stack's mpicc (osu_build.py), as usb4bench
--mpi and an installed usb4bench do."""

import shutil

import pytest

from usb4fabric import launch, osu_build, stacks

pytestmark = pytest.mark.mpi


def test_helpers_are_linked_in_and_are_not_programs(tmp_path):
    """osu_cpu.c (osu_bw -C) is a helper like osu_common.c: before, it was
    built as a program of its own (no main) and osu_bw lacked it."""
    assert "osu_cpu" not in [p.stem for p in osu_build.programs()]
    stack = stacks.STACKS[stacks.DEFAULT_STACK]
    if stack.missing():
        pytest.fail(stack.missing())
    out = osu_build.build(stack, tmp_path, names=("osu_bw",))
    assert sorted(p.name for p in out.iterdir()) == ["osu_bw"]
    done = launch.run([shutil.which("mpirun") or "mpirun", "--allow-run-as-root", "-np", "2",
                       "--mca", "pml", "ob1", "--mca", "btl", "vader,self",
                       str(out / "osu_bw"), "-C", "-m", "8:8", "-i", "5", "-x", "1"], 60)
    assert done.ok, done.stdout + done.stderr
    assert "# cpu" in done.stdout
