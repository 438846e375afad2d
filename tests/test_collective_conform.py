"""The collective-engine conformance test on one host: usb4 driven as a
collective library's network plugin drives it (aws-ofi-nccl's SENDRECV
protocol, oneCCL's ofi transport), ranks as processes over the shm link.

tests/collective/usb4_ring_conform.c (built by make) is one rank: an RDM
endpoint, FI_TAGGED without FI_DIRECTED_RECV, FI_THREAD_SAFE; a ring
allreduce (reduce-scatter + allgather) over float32 whose segments go as
chunks, each its own tagged message, up to --window sends and receives in
flight per peer; receives from FI_ADDR_UNSPEC matched by tag alone; 2 to 4
threads calling fi_cq_read on the one CQ; iterations pipelined so chunks
arrive before their receives (unexpected).  Addresses are exchanged
through files.  Results are checked bit for bit against numpy's fold in
the ring's order (tests/collective_ring.py says why exact).

The same program across namespace hosts: tests/multihost/test_xhost_collective.py.
"""

import os
import re
import subprocess
import time

import pytest

import collective_ring as ring
import logcounters

RUN_TIMEOUT = 60  # seconds for all ranks; each case takes a few
WATCHDOG = 50  # the program's own --timeout

# (ranks, floats, chunk floats, window, threads, iterations)
CASES = {
    "2 ranks": (2, 8192, 64, 8, 2, 4),
    "4 ranks": (4, 16384, 64, 16, 3, 3),
    "8 ranks": (8, 16384, 64, 32, 4, 3),
    # 64 KiB chunks: past the eager size, so each goes by rendezvous.
    "4 ranks, 64 KiB chunks": (4, 262144, 16384, 8, 2, 2),
    # One float per chunk: 8192 tagged messages per step and direction.
    "2 ranks, 4-byte chunks": (2, 16384, 1, 32, 4, 1),
}


def run_ring(tmp_path, provider_dir, case, extra_env=None, late_recv_ms=0):
    nranks, count, chunk, window, threads, iters = case
    folder = tmp_path / "ring"
    folder.mkdir()
    inputs = ring.write_inputs(folder, nranks, count)
    env = dict(os.environ)
    # FI_REMOTE_COMM is in the plugin's hints: lo stands in for a cable
    # (peers on this host still go over shm).
    env.update({"FI_PROVIDER_PATH": str(provider_dir), "FI_PROVIDER": "usb4",
                "FI_USB4_IFACE": "lo", "FI_LOG_LEVEL": "warn"})
    env.update(extra_env or {})
    procs = []
    for rank in range(nranks):
        argv = ring.argv(rank, nranks, folder, count, chunk=chunk, window=window,
                         threads=threads, iters=iters, timeout=WATCHDOG,
                         late_recv_ms=late_recv_ms)
        out = open(folder / ("out.%d" % rank), "w")
        err = open(folder / ("err.%d" % rank), "w")
        procs.append((subprocess.Popen(argv, env=env, stdout=out, stderr=err,
                                       stdin=subprocess.DEVNULL, start_new_session=True),
                      out, err))
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        for proc, _, _ in procs:
            proc.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc, out, err in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
            out.close()
            err.close()
    report = "\n".join("--- rank %d exit %s\n%s%s" % (
        r, p.returncode, (folder / ("out.%d" % r)).read_text()[-2000:],
        (folder / ("err.%d" % r)).read_text()[-2000:]) for r, (p, _, _) in enumerate(procs))
    assert all(p.returncode == 0 for p, _, _ in procs), report
    print("\n" + report)
    ring.check_results(folder, inputs)
    seg = count // nranks
    ops = iters * 2 * (nranks - 1) * -(-seg // chunk)
    for r in range(nranks):
        m = re.search(ring.FIGURES, (folder / ("out.%d" % r)).read_text())
        assert m, report
        # Receives are posted ahead of any arrival: the window fills.
        assert int(m.group(4)) == min(window, ops), m.group(0)
        assert int(m.group(3)) <= window, m.group(0)
        per_thread = [int(x) for x in m.group(5).split()]
        assert len(per_thread) == threads and sum(per_thread) == 2 * ops, m.group(0)
    return [(folder / ("err.%d" % r)).read_text() for r in range(nranks)]


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_ring_allreduce_shm(tmp_path, provider_dir, case):
    run_ring(tmp_path, provider_dir, CASES[case])


def test_ring_allreduce_shm_portable(tmp_path, provider_dir):
    """The same at 8 ranks on the provider's portable paths."""
    run_ring(tmp_path, provider_dir, CASES["8 ranks"], {"FI_USB4_PORTABLE": "1"})


def test_ring_allreduce_shm_receives_late(tmp_path, provider_dir):
    """4 ranks, 1 MiB each, 8 iterations whose first steps all go before
    any receive is posted, against a 64 KiB unexpected budget per sender:
    every rank's senders are held back, nothing is lost or failed."""
    errs = run_ring(tmp_path, provider_dir, (4, 262144, 1024, 32, 3, 8),
                    ring.LATE_RECV_ENV, late_recv_ms=ring.LATE_RECV_MS)
    for rank, err in enumerate(errs):
        assert logcounters.parse(err).get("unexp_full", 0) > 0, (
            "rank %d: no sender held back\n%s" % (rank, err[-2000:]))
