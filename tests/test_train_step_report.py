"""bench/train_step.py's figures and checks from recorded-shape results, without
running anything (no root, no torch): medians, shares, the step-by-step ratios,
and that differing weights, disagreeing sums or a loss that did not fall are
flagged."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import train_step as T  # noqa: E402


def rank_result(rank, ccl_steps, ccl_ar, gloo_steps, gloo_ar, sha="aa", agree=True,
                before=2.8, after=1.0):
    return {"rank": rank, "params": 1000, "allreduce_bytes": 4000,
            "backends": {"ccl": {"step_s": ccl_steps, "allreduce_s": ccl_ar},
                         "gloo": {"step_s": gloo_steps, "allreduce_s": gloo_ar}},
            "train_loss": [before, after], "loss_before": before, "loss_after": after,
            "weights_sha256": sha, "backends_agree": agree}


def pair(**kw):
    steps, ar = [0.10, 0.30, 0.20], [0.02, 0.06, 0.04]
    gsteps, gar = [0.10, 0.20, 0.40], [0.04, 0.04, 0.08]
    r0 = rank_result(0, steps, ar, gsteps, gar, **kw)
    r1 = rank_result(1, steps, ar, gsteps, gar, **{k: v for k, v in kw.items() if k != "sha"})
    return [r0, r1]


def test_medians_share_and_rate():
    ccl, gloo = T.summaries_of("ccl-usb4", [pair()])
    assert (ccl.backend, gloo.backend) == ("ccl", "gloo")
    assert ccl.step_s == pytest.approx(0.20) and ccl.allreduce_s == pytest.approx(0.04)
    assert ccl.allreduce_min_s == pytest.approx(0.02)
    assert ccl.share[0] == pytest.approx(0.12 / 0.60)
    assert ccl.allreduce_gbs == pytest.approx(4000 / 0.04 / 1e9)
    assert gloo.label == "gloo (in ccl-usb4)" and ccl.label == "ccl-usb4"
    assert ccl.ok and gloo.ok


def test_repeats_are_pooled():
    ccl, _ = T.summaries_of("ccl-tcp", [pair(), pair()])
    assert ccl.steps == 6


def test_step_by_step_ratios():
    q1, med, q3 = T.paired_ratio([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0])
    assert med == pytest.approx(2.5) and q1 < med < q3
    table = T.format_table(T.summaries_of("ccl-usb4", [pair()]))
    # medians 0.20 / 0.20 steps, 0.04 / 0.04 allreduce; step by step 1.0, 1.5, 0.5
    assert "step 1.000x  allreduce 1.000x" in table
    assert "CHECK FAILED" not in table


@pytest.mark.parametrize("bad", [{"sha": "bb"}, {"agree": False}, {"after": 3.0}])
def test_a_failed_check_is_flagged(bad):
    summaries = T.summaries_of("ccl-usb4", [pair(**bad)])
    assert not all(s.ok for s in summaries)
    assert "CHECK FAILED" in T.format_table(summaries)


def test_worker_command_pairs_gloo_with_oneccl():
    argv = T.worker_argv("ccl-usb4", Path("/v"), 1, Path("/r"), "10.77.0.1:1", T.Model())
    assert argv[argv.index("--backends") + 1] == "ccl,gloo"
    assert T.worker_backends("gloo", True) == ["gloo"]
    assert T.worker_backends("ccl-tcp", False) == ["ccl"]
    env = T.worker_env("ccl-usb4-portable", Path("/v"), Path("/p"))
    assert env["FI_PROVIDER"] == "usb4" and env["FI_USB4_PORTABLE"] == "1"
    assert env["FI_PROVIDER_PATH"] == "/p" and env["CCL_KVS_IFACE"] == T.IFACE
    tcp = T.worker_env("ccl-tcp", Path("/v"), Path("/p"))
    assert tcp["FI_PROVIDER"] == "tcp" and "FI_PROVIDER_PATH" not in tcp
