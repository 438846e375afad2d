"""The training-step workload across two hosts, and the oneCCL binding's errors.

bench/train_step.py's two ranks (bench/train_worker.py, one per host, under
the collective library's venv python) train a small seeded MLP for a few
steps, the steps alternating between oneCCL over usb4 (normal, then
FI_USB4_PORTABLE=1 in a second pair of processes) and torch's gloo over the
same cable:

- both ranks finish and print their result;
- the weights are bit-identical on both ranks (SHA-256 of every parameter);
- the held-out loss went down;
- oneCCL's sum of the last gradients is gloo's, bit for bit (summing two
  float32 values does not depend on the order), and the normal and the
  portable run end with the same weights: any difference is data damage.

usb4fabric.ccl refuses misuse with an exception, never a crash or a hang:
errors the library reports (an unsupported reduction or datatype) raise
CclError with its text; what it does not catch (a rank outside the
communicator: it waits forever; a destroyed communicator: a double free)
is refused before the call.  These run a one-rank communicator on this
host.

Skipped with the reason when the venv is absent (scripts/setup.sh --ccl
makes it; scripts/test.sh runs that first, so CI has it).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import train_step  # noqa: E402  (bench/train_step.py)
from usb4fabric import ccl, nshosts  # noqa: E402

SMALL = train_step.Model(steps=4, warmup=1, inputs=128, hidden=256, layers=2, batch=32)
RUNS = ("ccl-usb4", "ccl-usb4-portable")  # each with gloo stepping alongside
BINDING_TIMEOUT = 60


@pytest.fixture(scope="module")
def venv():
    why = train_step.venv_missing(train_step.VENV)
    if why:
        pytest.skip(why)
    return train_step.VENV


@pytest.fixture(scope="module")
def trained(venv, namespaces_usable, provider_dir, tmp_path_factory):
    """{run: [rank 0 result, rank 1 result] or the BackendFailed}, one cluster."""
    out = tmp_path_factory.mktemp("train")
    results = {}
    with nshosts.Cluster(2) as cluster:
        for run in RUNS:
            try:
                results[run] = train_step.run_pair(cluster, run, out / run, provider_dir,
                                                   SMALL, venv)
            except train_step.BackendFailed as exc:
                results[run] = exc
    return results


def _ranks(trained, run):
    got = trained[run]
    if isinstance(got, Exception):
        pytest.fail(str(got), pytrace=False)
    return got


@pytest.mark.multihost
@pytest.mark.parametrize("run", RUNS)
def test_both_ranks_finish_with_identical_weights(trained, run):
    r0, r1 = _ranks(trained, run)
    assert (r0["rank"], r1["rank"]) == (0, 1)
    for backend in ("ccl", "gloo"):
        assert len(r0["backends"][backend]["step_s"]) == SMALL.steps
        assert len(r1["backends"][backend]["step_s"]) == SMALL.steps
    assert r0["weights_sha256"] == r1["weights_sha256"]
    summaries = train_step.summaries_of(run, [[r0, r1]])
    for s in summaries:
        assert s.identical and 0 < s.share[0] < 1 and 0 < s.share[1] < 1, s
    table = train_step.format_table(summaries)
    assert "/ gloo beside it" in table and "CHECK FAILED" not in table, table


@pytest.mark.multihost
@pytest.mark.parametrize("run", RUNS)
def test_loss_goes_down(trained, run):
    r0, r1 = _ranks(trained, run)
    assert r0["loss_after"] < r0["loss_before"], r0
    assert r0["loss_before"] == r1["loss_before"] and r0["loss_after"] == r1["loss_after"]


@pytest.mark.multihost
@pytest.mark.parametrize("run", RUNS)
def test_ccl_over_usb4_sums_what_gloo_sums(trained, run):
    r0, r1 = _ranks(trained, run)
    assert r0["backends_agree"] and r1["backends_agree"]


@pytest.mark.multihost
def test_portable_run_ends_with_the_same_weights(trained):
    normal, portable = (_ranks(trained, run)[0] for run in RUNS)
    assert normal["weights_sha256"] == portable["weights_sha256"]
    assert normal["train_loss"] == portable["train_loss"]


# --- the binding's errors (one rank, this host) ---------------------------

MISUSE = r"""
import json, sys
import numpy as np
from usb4fabric import ccl

def outcome(fn):
    try:
        fn()
    except Exception as exc:
        return {"type": type(exc).__name__, "text": str(exc),
                "code": getattr(exc, "code", None)}
    return {"type": None}

uid = ccl.unique_id()
out = {"version": list(ccl.version()), "uid_len": len(uid)}
out["rank_out_of_range"] = outcome(lambda: ccl.Communicator(2, uid, 2))
out["short_uid"] = outcome(lambda: ccl.Communicator(1, uid[:16], 0))
comm = ccl.Communicator(1, uid, 0)
buf = np.arange(8, dtype=np.float32)
out["sum"] = outcome(lambda: comm.allreduce(buf))
out["sum_values"] = buf.tolist()
out["size_rank"] = [comm.size, comm.rank]
out["avg"] = outcome(lambda: comm.allreduce(buf, ccl.AVG))
out["bad_datatype"] = outcome(lambda: comm.allreduce_ptr(buf.ctypes.data, 8, 99))
out["float64"] = outcome(lambda: comm.allreduce(np.zeros(4)))
comm.destroy()
out["after_destroy"] = outcome(lambda: comm.allreduce(buf))
out["destroy_twice"] = outcome(comm.destroy)
print("MISUSE " + json.dumps(out), flush=True)
"""


@pytest.fixture(scope="module")
def misuse(venv, provider_dir):
    env = dict(ccl.rank_env(venv, "usb4", provider_dir), PYTHONPATH=str(REPO / "python"))
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", MISUSE], env=env,
                          capture_output=True, text=True, timeout=BINDING_TIMEOUT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("MISUSE ")]
    assert proc.returncode == 0 and lines, "exit %d\n%s\n%s" % (
        proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return json.loads(lines[-1][len("MISUSE "):])


def test_binding_loads_the_pinned_library(misuse):
    assert misuse["version"][:2] == [2022, 1]
    assert misuse["uid_len"] == ccl.UNIQUE_ID_BYTES


def test_binding_allreduces_in_place(misuse):
    assert misuse["sum"]["type"] is None
    assert misuse["sum_values"] == [float(i) for i in range(8)]  # one rank: unchanged
    assert misuse["size_rank"] == [1, 0]


def test_binding_refuses_a_rank_outside_the_communicator(misuse):
    assert misuse["rank_out_of_range"]["type"] == "ValueError"
    assert "rank 2 is not in [0, 2)" in misuse["rank_out_of_range"]["text"]
    assert misuse["short_uid"]["type"] == "ValueError"


def test_binding_raises_the_librarys_error(misuse):
    for case, words in (("avg", "Unsupported onecclRedOp_t"),
                        ("bad_datatype", "Unsupported onecclDataType_t")):
        got = misuse[case]
        assert got["type"] == "CclError", got
        assert got["text"].startswith("onecclAllReduce: [%d] " % got["code"]), got
        assert got["code"] != 0 and words in got["text"], got


def test_binding_refuses_a_destroyed_communicator(misuse):
    for case in ("after_destroy", "destroy_twice"):
        got = misuse[case]
        assert got["type"] == "CclError" and "already destroyed" in got["text"], got
        assert got["code"] == ccl.INVALID_USAGE


def test_binding_refuses_a_buffer_that_is_not_float32(misuse):
    assert misuse["float64"]["type"] == "ValueError"
    assert "float32" in misuse["float64"]["text"]
