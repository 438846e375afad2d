"""usb4fabric.nshosts without root: the launch agent it hands to mpirun.

An install from a wheel drops the agent's executable bit (setuptools copies
package data without the mode); mpirun execs the agent, so nshosts must
hand out an executable copy then.
"""

import os
import stat

import tomllib

from conftest import PYTHON_DIR
from usb4fabric import nshosts


def test_the_packaged_agent_is_shipped_and_executable_in_the_source_tree():
    assert nshosts.AGENT == PYTHON_DIR / "usb4fabric" / "launch_agent.sh"
    assert os.access(nshosts.AGENT, os.X_OK)
    assert nshosts.agent_path(runtime_dir=PYTHON_DIR / "nowhere") == nshosts.AGENT
    pyproject = tomllib.loads((PYTHON_DIR / "pyproject.toml").read_text())
    assert "launch_agent.sh" in pyproject["tool"]["setuptools"]["package-data"]["usb4fabric"]


def test_an_agent_without_its_x_bit_is_copied_executable(tmp_path):
    agent = tmp_path / "site" / "launch_agent.sh"
    agent.parent.mkdir()
    agent.write_bytes(nshosts.AGENT.read_bytes())
    agent.chmod(0o644)  # as a wheel install leaves it
    runtime = tmp_path / "run"
    copy = nshosts.agent_path(agent, runtime)
    assert copy.parent == runtime and copy != agent
    assert copy.read_bytes() == agent.read_bytes()
    assert copy.stat().st_mode & stat.S_IXUSR
    assert nshosts.agent_path(agent, runtime) == copy  # the same file next time
    assert sorted(p.name for p in runtime.iterdir()) == [copy.name]  # no temporaries left


def test_a_changed_agent_gets_a_new_copy(tmp_path):
    agent = tmp_path / "launch_agent.sh"
    agent.write_text("#!/bin/sh\nexit 0\n")
    first = nshosts.agent_path(agent, tmp_path / "run")
    agent.write_text("#!/bin/sh\nexit 1\n")
    second = nshosts.agent_path(agent, tmp_path / "run")
    assert first != second and first.exists()  # a running mpirun keeps its file
