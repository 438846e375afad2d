"""The CLI: usage errors, the default set, and Ctrl-C / SIGTERM during a run."""

import json
import signal
import subprocess
import sys
import time
import uuid

import pytest

from conftest import PYTHON_DIR, write_script
from test_launch import pids_with, wait_gone
from usb4fabric import runner
from usb4fabric.cli import main


def test_default_set_is_the_issue_set():
    assert runner.DEFAULT_BENCHMARKS == ("latency", "bw", "put_latency", "allreduce")


def test_unknown_benchmark_and_fabric_are_usage_errors(tmp_path, capsys):
    assert main(["run", "--bench", "nope", "--output", str(tmp_path)]) == 2
    assert main(["run", "--fabric", "infiniband", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark(s) nope" in err and "unknown fabric profile 'infiniband'" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_keeps_results_and_leaves_nothing(tmp_path, fixtures_dir,
                                                          fake_mpirun, sig):
    marker = f"usb4bench-cli-{uuid.uuid4().hex}"
    osu = tmp_path / "osu"
    osu.mkdir()
    write_script(osu / "osu_latency", f"#!/bin/sh\ncat {fixtures_dir / 'osu7_latency.txt'}\n")
    write_script(osu / "osu_bw", f"#!/bin/sh\nexec {sys.executable} -c 'import time; time.sleep(300)' {marker}\n")
    out = tmp_path / "res"
    proc = subprocess.Popen(
        [sys.executable, "-m", "usb4fabric.cli", "run", "--fabric", "shm", "--bench",
         "latency,bw", "--repeat", "1", "--osu-dir", str(osu), "--mpirun", str(fake_mpirun),
         "--output", str(out)], cwd=PYTHON_DIR, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not pids_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pids_with(marker)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in err
    assert wait_gone(marker) == []
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["interrupted"] is True
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 7
    runs = (out / "runs.csv").read_text()
    assert "interrupted (Ctrl-C)" in runs


def _run_into(out, osu, fake_mpirun, *extra):
    return subprocess.run(
        [sys.executable, "-m", "usb4fabric.cli", "run", "--fabric", "shm", "--bench", "latency",
         "--repeat", "1", "--osu-dir", str(osu), "--mpirun", str(fake_mpirun),
         "--output", str(out), *extra], cwd=PYTHON_DIR, capture_output=True, text=True,
        timeout=120)


def test_a_second_run_into_a_folder_is_refused_or_replaces_it(tmp_path, fixtures_dir,
                                                              fake_mpirun):
    # A run appends to results.csv: into a folder holding another run, the two
    # would mix under the second one's metadata.
    osu = tmp_path / "osu"
    osu.mkdir()
    write_script(osu / "osu_latency", f"#!/bin/sh\ncat {fixtures_dir / 'osu7_latency.txt'}\n")
    out = tmp_path / "res"
    (out / "keep.txt").parent.mkdir()
    (out / "keep.txt").write_text("not the run's\n")
    assert _run_into(out, osu, fake_mpirun).returncode == 0
    one_run = (out / "results.csv").read_text()

    refused = _run_into(out, osu, fake_mpirun)
    assert refused.returncode == 2
    assert "holds another run's results" in refused.stderr and "--replace" in refused.stderr
    assert (out / "results.csv").read_text() == one_run

    replaced = _run_into(out, osu, fake_mpirun, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert len((out / "results.csv").read_text().splitlines()) == len(one_run.splitlines())
    assert len((out / "runs.csv").read_text().splitlines()) == 1 + 1
    assert (out / "keep.txt").read_text() == "not the run's\n"
