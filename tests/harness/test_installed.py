"""usb4bench installed like any other tool: a non-editable ``pip install`` of
python/ into a fresh venv, run from a folder outside any checkout.

Its outputs land under the working directory, the provider comes from
USB4_PROVIDER_DIR, and the osu_bench programs are built from the sources
shipped in the package (python/setup.py copies them in).  Before the package
found things through ``__file__``, outputs went under the venv's
lib/python3.X/reports and the osu_bench programs were looked for beside it.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# What the package's build reads from the project (python/setup.py's DATA).
PROJECT_FILES = ["osu_bench/*.c", "osu_bench/*.h", "scripts/chroot-run.sh",
                 "reports/reference/*.csv"]
BUILT_IN_PLACE = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "_libfabric*",
                                        "data")
PIP_TIMEOUT = 300  # seconds: builds the cffi module in an isolated build env

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


def _project_copy(dest: Path) -> Path:
    """python/ and the files its build ships, copied (pip builds in place:
    the worktree is left alone)."""
    shutil.copytree(REPO_ROOT / "python", dest / "python", ignore=BUILT_IN_PLACE)
    for pattern in PROJECT_FILES:
        for source in REPO_ROOT.glob(pattern):
            target = dest / source.relative_to(REPO_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest / "python"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """bin/ of a fresh venv with usb4fabric installed non-editably."""
    root = tmp_path_factory.mktemp("installed")
    python_dir = _project_copy(root / "src")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps",
                           str(python_dir)], capture_output=True, text=True,
                          timeout=PIP_TIMEOUT, env=_env_without_tree(), cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin"


def _env_without_tree(**more: str) -> dict[str, str]:
    """The environment minus anything pointing into this tree's python/."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(more)
    return env


def _usb4bench(bin_dir: Path, args: list[str], cwd: Path, env: dict[str, str],
               timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "usb4bench")] + args, capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def test_installed_copy_is_the_one_run(installed, tmp_path):
    done = subprocess.run([str(installed / "python"), "-c",
                           "import usb4fabric.cli as c; print(c.__file__)"],
                          capture_output=True, text=True, cwd=tmp_path,
                          env=_env_without_tree(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed.parent), done.stdout
    # the runs below are outside any checkout
    assert not any((p / "configure.ac").exists() for p in (tmp_path, *tmp_path.parents))


def test_info_and_a_tiny_run_write_under_the_working_directory(installed, tmp_path,
                                                                 provider_dir):
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = _env_without_tree(USB4_PROVIDER_DIR=str(provider_dir),
                            XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("FI_PROVIDER_PATH", None)
    env.pop("OSU_DIR", None)

    info = _usb4bench(installed, ["info", "--json"], cwd, env, timeout=120)
    assert info.returncode == 0, info.stdout + info.stderr
    described = json.loads(info.stdout)
    assert described["provider_dir"] == str(provider_dir)

    run = _usb4bench(installed, ["run", "--fabric", "usb4", "--bench", "latency",
                                 "-m", "1:8", "-i", "10", "-x", "1", "--repeat", "1",
                                 "--timeout", "60"], cwd, env)
    assert run.returncode == 0, run.stdout + run.stderr
    results = sorted((cwd / "reports").glob("results-*"))
    assert len(results) == 1, run.stdout
    assert (results[0] / "results.csv").is_file()

    report = _usb4bench(installed, ["report", str(results[0])], cwd, env, timeout=180)
    assert report.returncode == 0, report.stdout + report.stderr
    assert (cwd / "reports" / results[0].name / "report.html").is_file()
    # nothing beside the installed package
    assert not list(installed.parent.glob("lib/python*/reports"))
    assert described["provider_dir_found_by"] == "USB4_PROVIDER_DIR"
