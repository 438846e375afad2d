"""The frame-parser fuzz target (tests/fuzz/fuzz_frames.c) under libFuzzer.

The suite builds the target with clang (tests/fuzz/build.sh: libFuzzer,
AddressSanitizer, UndefinedBehaviorSanitizer), replays the committed seed
corpus, then fuzzes for a bounded minute on a copy of it.  Any crash, hang,
leak or sanitizer report fails the test; libFuzzer leaves the input that
caused it in the test's tmp dir (named in the failure message).

Running it longer by hand, from the top of the repository::

    tests/fuzz/build.sh /tmp/fuzz_frames
    mkdir -p /tmp/fuzz-corpus && cp tests/fuzz/corpus/* /tmp/fuzz-corpus/
    /tmp/fuzz_frames -max_total_time=3600 -timeout=5 -rss_limit_mb=2048 \\
        -jobs=2 -workers=2 -artifact_prefix=/tmp/ /tmp/fuzz-corpus
    # reproduce one input:   /tmp/fuzz_frames /tmp/crash-<sha1>

A crash input that exposed a bug goes into tests/fuzz/corpus as
``regress-<what>`` once the bug is fixed.  An input that makes the target trap is
reported as "fuzz target exited": libinfinipath, which libfabric loads,
turns SIGILL into exit() and leaves a ``*.btr`` backtrace in the current
directory.  After a change to wire.h or to the FUZZ_* constants of
fuzz_frames.c, regenerate the seeds with ``python3 tests/fuzz/make_corpus.py``
(test_corpus_in_sync checks this).
"""

import filecmp
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FUZZ_DIR = REPO_ROOT / "tests" / "fuzz"
CORPUS = FUZZ_DIR / "corpus"
FUZZ_SECONDS = 60
BUILD_TIMEOUT = 300  # seconds
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error", "ERROR: libFuzzer",
                   "==ERROR", "SUMMARY: ")


def _libfuzzer_reason():
    """None when clang can build a libFuzzer target, else why not."""
    clang = shutil.which("clang")
    if clang is None:
        return "clang not installed (Debian: apt-get install clang)"
    probe = subprocess.run(
        [clang, "-x", "c", "-fsanitize=fuzzer", "-o", "/dev/null", "-"],
        input=b"#include <stddef.h>\n#include <stdint.h>\n"
              b"int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)"
              b" { return 0; }\n",
        capture_output=True, timeout=120)
    if probe.returncode:
        return ("clang cannot link libFuzzer (-fsanitize=fuzzer): %s"
                % probe.stderr.decode(errors="replace").strip()[-300:])
    return None


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    reason = _libfuzzer_reason()
    if reason:
        pytest.skip(reason)
    exe = tmp_path_factory.mktemp("fuzz-build") / "fuzz_frames"
    build = subprocess.run([str(FUZZ_DIR / "build.sh"), str(exe)],
                           capture_output=True, text=True,
                           timeout=BUILD_TIMEOUT)
    assert build.returncode == 0, "build.sh failed:\n" + build.stderr[-4000:]
    return exe


def _sanitizer_lines(output):
    return [line for line in output.splitlines()
            if any(mark in line for mark in SANITIZER_MARKS)]


def _run(argv, timeout, cwd):
    """Runs the target in cwd (a tmp dir: where any *.btr file lands)."""
    proc = subprocess.run(argv, capture_output=True, text=True,
                          errors="replace", timeout=timeout, cwd=cwd)
    return proc.returncode, proc.stdout + proc.stderr


def test_corpus_in_sync(tmp_path):
    """The committed seeds are what make_corpus.py makes from wire.h today."""
    spec = importlib.util.spec_from_file_location(
        "make_corpus", FUZZ_DIR / "make_corpus.py")
    make_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    make_corpus.main([str(tmp_path)])
    made = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in CORPUS.iterdir()
                       if not p.name.startswith("regress-"))
    assert made == committed, "run python3 tests/fuzz/make_corpus.py"
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, CORPUS, made,
                                           shallow=False)
    assert not mismatch and not errors, \
        "stale seeds %s: run python3 tests/fuzz/make_corpus.py" % mismatch


@pytest.mark.slow
def test_corpus_replays_clean(fuzzer, tmp_path):
    """Every seed, the regression seeds included, runs once without a report."""
    seeds = sorted(str(p) for p in CORPUS.iterdir())
    rc, out = _run([str(fuzzer), "-runs=0", "-timeout=5",
                    "-artifact_prefix=%s/" % tmp_path] + seeds, timeout=120,
                   cwd=tmp_path)
    assert rc == 0 and not _sanitizer_lines(out), out[-4000:]


@pytest.mark.slow
def test_fuzz_bounded_minute(fuzzer, tmp_path):
    """A minute of fuzzing from the seed corpus finds nothing."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (tmp_path / "fuzz.log").touch()
    rc, out = _run([str(fuzzer), "-max_total_time=%d" % FUZZ_SECONDS,
                    "-timeout=5", "-rss_limit_mb=2048", "-print_final_stats=1",
                    "-artifact_prefix=%s/" % tmp_path, str(corpus)],
                   timeout=FUZZ_SECONDS + 120, cwd=tmp_path)
    (tmp_path / "fuzz.log").write_text(out)
    found = sorted(p.name for p in tmp_path.iterdir()
                   if p.name.startswith(("crash-", "leak-", "timeout-", "oom-")))
    assert rc == 0, "fuzzer exit %d, inputs %s in %s:\n%s" % (
        rc, found, tmp_path, out[-4000:])
    assert not _sanitizer_lines(out), out[-4000:]
    assert "Done" in out, out[-4000:]
