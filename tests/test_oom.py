"""Out of memory in the provider loses no message and no completion.

tests/c/failmalloc.c, preloaded, makes a share of the allocations that the
provider's own code makes fail (only the provider's: never the program's,
libc's or libfabric's), from the moment the program arms it, after its
set-up.  tests/c/oom_workload.c then runs a mixed workload between two
endpoints over the shm link (eager and rendezvous tagged messages, expected,
unexpected and peek+claim receives, delivery-complete sends, inject with
data, fi_writedata with remote CQ data, atomics) and checks that every
message arrives exactly once, intact, and that every operation completes
exactly once.  The provider must answer -FI_EAGAIN when it cannot reserve
what an operation needs, or leave an incoming frame for later: dropping a
control frame, an unexpected message or a completion with a warning shows
up here as a round that stops moving (reported after 5 s) or as a lost or
failed message.

By hand, from the top of the repository (after make)::

    gcc -shared -fPIC -O2 -o /tmp/failmalloc.so tests/c/failmalloc.c -ldl
    gcc -O2 -Itests/c -o /tmp/oom_workload tests/c/oom_workload.c -lfabric -ldl
    LD_PRELOAD=/tmp/failmalloc.so FAILMALLOC_RATE=0.2 FAILMALLOC_SEED=1 \\
    FI_PROVIDER_PATH=$PWD/.libs FI_PROVIDER=usb4 FI_LOG_LEVEL=warn \\
        /tmp/oom_workload
    # the failing call sites it prints: addr2line -f -i -e .libs/libusb4-fi.so 0x...
    # one site only: FAILMALLOC_ONLY=0x...

The workload's output names what never finished; the provider's warnings
("out of memory: control frame lost", ...) name where it was dropped.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
C_DIR = REPO_ROOT / "tests" / "c"
BUILD_TIMEOUT = 120  # seconds
RUN_TIMEOUT = 120  # seconds; the workload's own watchdog fires first
WATCHDOG = 60  # seconds, passed to the workload
ROUNDS = 30
CFLAGS = ["-std=gnu11", "-O2", "-g", "-Wall", "-Wextra"]
SEEDS = (1, 2, 3)
RATE = 0.2


def _pkg_config(flag, default):
    try:
        out = subprocess.run(["pkg-config", flag, "libfabric"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return default
    return out.stdout.split() if out.returncode == 0 else default


def _gcc(argv):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if result.returncode:
        pytest.fail("%s failed:\n%s" % (" ".join(argv), result.stderr[-4000:]),
                    pytrace=False)


@pytest.fixture(scope="module")
def oom_build(tmp_path_factory):
    """failmalloc.so and oom_workload built with gcc: (library, program)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc not found", pytrace=False)
    out = tmp_path_factory.mktemp("oom-build")
    lib, exe = out / "failmalloc.so", out / "oom_workload"
    _gcc([gcc] + CFLAGS + ["-shared", "-fPIC", "-o", str(lib),
                           str(C_DIR / "failmalloc.c"), "-ldl"])
    _gcc([gcc] + CFLAGS + _pkg_config("--cflags", []) + ["-I", str(C_DIR), "-o", str(exe),
         str(C_DIR / "oom_workload.c")] + _pkg_config("--libs", ["-lfabric"]) + ["-ldl"])
    return lib, exe


def _env(provider_dir, lib, rate, seed):
    env = dict(os.environ)
    env.update({
        "LD_PRELOAD": str(lib),
        "FAILMALLOC_RATE": str(rate),
        "FAILMALLOC_SEED": str(seed),
        "FI_PROVIDER_PATH": str(provider_dir),
        "FI_PROVIDER": "usb4",
        "FI_LOG_LEVEL": "warn",
    })
    env.pop("FAILMALLOC_ONLY", None)
    return env


def run_workload(provider_dir, build, rate, seed, rounds=ROUNDS):
    """Runs the workload: (exit status, stdout, stderr); -1 on a timeout."""
    lib, exe = build
    try:
        proc = subprocess.run([str(exe), str(rounds), str(WATCHDOG)],
                              env=_env(provider_dir, lib, rate, seed),
                              capture_output=True, text=True, errors="replace",
                              timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        return -1, e.stdout or "", e.stderr or ""
    return proc.returncode, proc.stdout, proc.stderr


def _explain(rc, out, err):
    """The workload's verdict and the provider's own warnings, for a failure."""
    warnings = {}
    for line in err.splitlines():
        if ":usb4:" in line and "<warn>" in line:
            text = line.split("<warn>", 1)[1].strip()
            warnings[text] = warnings.get(text, 0) + 1
    lines = ["exit status %d (0 pass, 1 failed checks, 2 set-up, 3 watchdog, "
             "-1 timeout)" % rc, out[-6000:]]
    if warnings:
        lines.append("provider warnings:")
        lines += ["  %4d x %s" % (n, text) for text, n in sorted(warnings.items())]
    return "\n".join(lines)


def _failmalloc_counts(out):
    m = re.search(r"failmalloc: (\d+) provider allocations while armed, (\d+) failed", out)
    assert m, "no failmalloc summary in:\n" + out[-3000:]
    return int(m.group(1)), int(m.group(2))


def test_workload_passes_without_failures(provider_dir, oom_build):
    """Rate 0: the workload itself is sound, and failmalloc sees the provider."""
    rc, out, err = run_workload(provider_dir, oom_build, 0, 1)
    assert rc == 0 and "oom_workload: PASS" in out, _explain(rc, out, err)
    seen, failed = _failmalloc_counts(out)
    assert seen > 0, "failmalloc saw no allocation by the provider:\n" + out
    assert failed == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_no_loss_when_provider_allocations_fail(provider_dir, oom_build, seed):
    """A fifth of the provider's allocations fail: nothing is lost all the same."""
    rc, out, err = run_workload(provider_dir, oom_build, RATE, seed)
    assert rc == 0 and "oom_workload: PASS" in out, _explain(rc, out, err)
    _, failed = _failmalloc_counts(out)
    assert failed > 0, "no allocation failed: the run proved nothing\n" + out


SELF_TEST = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	int (*arm)(double) = (int (*)(double)) dlsym(RTLD_DEFAULT, "failmalloc_arm");
	unsigned long (*failed)(void) =
		(unsigned long (*)(void)) dlsym(RTLD_DEFAULT, "failmalloc_failed");
	void *p = NULL;

	if (!arm || !failed || !dlopen(argv[1], RTLD_NOW))
		return 2;
	if (arm(1.0))
		return 3;	/* the provider's code was not found */
	for (int i = 0; i < 10000; i++) {
		void *a = malloc(16 + i), *b = calloc(3, 8 + i);
		p = realloc(p, 32 + i);
		if (!a || !b || !p)
			return 4;
		free(a);
		free(b);
	}
	free(p);
	return failed() ? 5 : 0;
}
"""


def test_failmalloc_spares_everyone_but_the_provider(provider_dir, oom_build, tmp_path):
    """Armed at rate 1 with the provider loaded, the program's calls still succeed."""
    lib, _ = oom_build
    src, exe = tmp_path / "self_test.c", tmp_path / "self_test"
    src.write_text(SELF_TEST)
    _gcc([shutil.which("gcc")] + CFLAGS + ["-o", str(exe), str(src), "-ldl"])
    env = _env(provider_dir, lib, 1.0, 1)
    proc = subprocess.run([str(exe), str(provider_dir / "libusb4-fi.so")], env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, "self test exit %d (2 no failmalloc or provider, " \
        "3 provider not found, 4 a program allocation failed, 5 counted a failure)\n%s" \
        % (proc.returncode, proc.stderr)
