"""FI_USB4_PORTABLE=1: the provider's CPU-specific paths (today the CRC32C
instructions: SSE4.2 crc32, AVX-512 carry-less multiply) stay off, as on a
CPU without them, and everything still passes on the portable path.

Runs C unit tests that `make check` built (scripts/test.sh builds them
before pytest) with the variable set.
"""

import os
import subprocess

import pytest


def run_unit(repo_root, name, portable):
    exe = repo_root / "tests" / "c" / name
    if not exe.is_file():
        pytest.fail("%s not built: run make check first" % exe, pytrace=False)
    env = dict(os.environ, FI_USB4_PORTABLE=portable)
    return subprocess.run([str(exe)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=repo_root)


def crc_path(proc):
    for line in proc.stdout.splitlines():
        if line.startswith("crc32c path: "):
            return line.split(": ", 1)[1]
    return None


def test_portable_variable_forces_the_software_crc(repo_root):
    proc = run_unit(repo_root, "test_rel", "1")
    assert crc_path(proc) == "portable", proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def test_portable_zero_keeps_what_the_cpu_offers(repo_root):
    flags = cpu_flags()
    if {"sse4_2", "avx512f", "pclmulqdq", "vpclmulqdq"} <= flags:
        want = "vpclmulqdq"
    elif "sse4_2" in flags:
        want = "sse4.2"
    else:
        want = "portable"
    proc = run_unit(repo_root, "test_rel", "0")
    print("\ncrc32c path here: %s" % crc_path(proc))
    assert crc_path(proc) == want, proc.stdout[-2000:]


def test_links_pass_on_the_portable_path(repo_root):
    proc = run_unit(repo_root, "test_link_conformance", "1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
