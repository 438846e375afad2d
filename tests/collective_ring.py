"""The ring allreduce of tests/collective/usb4_ring_conform.c: its inputs,
its command line, and the check of its results against numpy.

The program sums each segment in one fixed order (the ring's): segment j
of the result is ((x_j + x_{j+1}) + x_{j+2}) + ... + x_{j+n-1}, indices
mod n, each addition rounded to float32.  ``expected`` folds the inputs in
that same order with numpy float32, so the results must match it bit for
bit (``np.array_equal``): any lost, doubled, misplaced or mismatched chunk
changes some bits.  As a sanity check of the fold itself the results must
also lie within float32 rounding of the float64 sum.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
PROGRAM = REPO_ROOT / "tests" / "collective" / "usb4_ring_conform"
SEED = 14


def program() -> Path:
    """The rank program the build made (fails the test when missing)."""
    import pytest

    if not PROGRAM.is_file():
        pytest.fail("%s not built: run make at the repo root" % PROGRAM, pytrace=False)
    return PROGRAM


def write_inputs(folder: Path, nranks: int, count: int) -> list[np.ndarray]:
    """Random float32 inputs (values of both signs, mixed magnitudes, so the
    summation order shows in the low bits), one file per rank."""
    rng = np.random.default_rng(SEED + nranks)
    inputs = []
    for rank in range(nranks):
        x = (rng.standard_normal(count) * 2.0 ** rng.integers(-8, 9, count)).astype(np.float32)
        x.tofile(folder / ("input.%d" % rank))
        inputs.append(x)
    return inputs


def expected(inputs: list[np.ndarray]) -> np.ndarray:
    """The ring's sum: each segment folded from its own rank onwards."""
    n = len(inputs)
    seg = len(inputs[0]) // n
    out = np.empty_like(inputs[0])
    for j in range(n):
        part = slice(j * seg, (j + 1) * seg)
        acc = inputs[j][part].copy()
        for k in range(1, n):
            acc = acc + inputs[(j + k) % n][part]
        out[part] = acc
    return out


def check_results(folder: Path, inputs: list[np.ndarray]) -> None:
    want = expected(inputs)
    exact = np.sum(np.array(inputs, dtype=np.float64), axis=0)
    # n-1 float32 roundings of partial sums bounded by sum(|x|).
    bound = (len(inputs) - 1) * np.finfo(np.float32).eps * np.sum(
        np.abs(np.array(inputs, dtype=np.float64)), axis=0)
    assert np.all(np.abs(want - exact) <= bound + 1e-30), "the fold itself is off"
    for rank in range(len(inputs)):
        path = folder / ("result.%d" % rank)
        assert path.is_file(), "rank %d wrote no result" % rank
        got = np.fromfile(path, dtype=np.float32)
        assert got.shape == want.shape, "rank %d: %d floats" % (rank, got.size)
        bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
        assert bad.size == 0, ("rank %d: %d of %d floats differ from the ring's sum, "
                               "first at %d: %r != %r" % (rank, bad.size, got.size, bad[0],
                                                          got[bad[0]], want[bad[0]]))


def argv(rank: int, nranks: int, folder: Path, count: int, *, chunk: int, window: int,
         threads: int, iters: int, timeout: int, late_recv_ms: int = 0) -> list[str]:
    return [str(program()), "--rank", str(rank), "--nranks", str(nranks),
            "--dir", str(folder), "--count", str(count), "--chunk", str(chunk),
            "--window", str(window), "--threads", str(threads),
            "--iters", str(iters), "--timeout", str(timeout),
            "--late-recv-ms", str(late_recv_ms)]


# Receives held back this long while the senders go on, with a per-sender
# unexpected budget far below what they send meanwhile: the provider must
# hold the senders back (its guards line counts unexp-full) and deliver
# everything once the receives come.
LATE_RECV_MS = 300
LATE_RECV_ENV = {"FI_USB4_UNEXP_PEER_BYTES": "65536"}


FIGURES = (r"ring: rank (\d+) of (\d+), .*most in flight: sends (\d+), receives (\d+); "
           r"completions per thread([\d ]+)")
