"""The fuzz targets under libFuzzer.

fuzz_frames  tests/fuzz/fuzz_frames.c: the wire parser and rel, seeds in
             tests/fuzz/corpus
fuzz_core    tests/fuzz/fuzz_core.c: the core's frame handling (dispatch,
             matching, streams, RMA and atomics) behind fake links, seeds in
             tests/fuzz/corpus-core

The suite builds each target with clang (tests/fuzz/build.sh: libFuzzer,
AddressSanitizer, UndefinedBehaviorSanitizer), replays its committed seed
corpus, then fuzzes it for a bounded FUZZ_SECONDS on a copy of the corpus
(the two runs one after the other: about a minute and a half in all).  Any
crash, hang, leak or sanitizer report fails the test; libFuzzer leaves the
input that caused it in the test's tmp dir (named in the failure message).
The hour-long run: tests/fuzz/run_hour.sh.

Running it longer by hand, from the top of the repository::

    tests/fuzz/build.sh /tmp/fuzz_frames      # --core /tmp/fuzz_core
    mkdir -p /tmp/fuzz-corpus && cp tests/fuzz/corpus/* /tmp/fuzz-corpus/
    /tmp/fuzz_frames -max_total_time=3600 -timeout=5 -rss_limit_mb=2048 \\
        -jobs=2 -workers=2 -artifact_prefix=/tmp/ /tmp/fuzz-corpus
    # reproduce one input:   /tmp/fuzz_frames /tmp/crash-<sha1>

A crash input that exposed a bug goes into the target's corpus as
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
CORPORA = {"frames": FUZZ_DIR / "corpus", "core": FUZZ_DIR / "corpus-core"}
FUZZ_SECONDS = 45  # per target
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
def libfuzzer():
    reason = _libfuzzer_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module", params=sorted(CORPORA))
def fuzzer(request, libfuzzer, tmp_path_factory):
    """(target name, built executable), for each target."""
    target = request.param
    exe = tmp_path_factory.mktemp("fuzz-build") / ("fuzz_" + target)
    argv = [str(FUZZ_DIR / "build.sh")]
    argv += ["--core"] if target == "core" else []
    build = subprocess.run(argv + [str(exe)], capture_output=True, text=True,
                           timeout=BUILD_TIMEOUT)
    assert build.returncode == 0, "build.sh failed:\n" + build.stderr[-4000:]
    return target, exe


def _sanitizer_lines(output):
    return [line for line in output.splitlines()
            if any(mark in line for mark in SANITIZER_MARKS)]


def _run(argv, timeout, cwd):
    """Runs the target in cwd (a tmp dir: where any *.btr file lands)."""
    proc = subprocess.run(argv, capture_output=True, text=True,
                          errors="replace", timeout=timeout, cwd=cwd)
    return proc.returncode, proc.stdout + proc.stderr


def test_corpus_in_sync(tmp_path):
    """The committed seeds are what make_corpus.py makes from wire.h,
    wire.py and the targets' constants today."""
    spec = importlib.util.spec_from_file_location(
        "make_corpus", FUZZ_DIR / "make_corpus.py")
    make_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    outs = {name: tmp_path / name for name in CORPORA}
    make_corpus.main([str(outs["frames"]), str(outs["core"])])
    for name, corpus in CORPORA.items():
        made = sorted(p.name for p in outs[name].iterdir())
        committed = sorted(p.name for p in corpus.iterdir()
                           if not p.name.startswith("regress-"))
        assert made, name
        assert made == committed, "run python3 tests/fuzz/make_corpus.py"
        _, mismatch, errors = filecmp.cmpfiles(outs[name], corpus, made,
                                               shallow=False)
        assert not mismatch and not errors, \
            "stale seeds %s: run python3 tests/fuzz/make_corpus.py" % mismatch


@pytest.mark.slow
def test_corpus_replays_clean(fuzzer, tmp_path):
    """Every seed, the regression seeds included, runs once without a report."""
    target, exe = fuzzer
    seeds = sorted(str(p) for p in CORPORA[target].iterdir())
    rc, out = _run([str(exe), "-runs=0", "-timeout=5",
                    "-artifact_prefix=%s/" % tmp_path] + seeds, timeout=120,
                   cwd=tmp_path)
    assert rc == 0 and not _sanitizer_lines(out), out[-4000:]


@pytest.mark.slow
def test_fuzz_bounded(fuzzer, tmp_path):
    """FUZZ_SECONDS of fuzzing from the seed corpus finds nothing."""
    target, exe = fuzzer
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPORA[target], corpus)
    (tmp_path / "fuzz.log").touch()
    rc, out = _run([str(exe), "-max_total_time=%d" % FUZZ_SECONDS,
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
