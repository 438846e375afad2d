"""mpi4py ping-pong latency and windowed bandwidth, OSU method and format.

What an MPI program written in Python with numpy buffers pays per message:

    mpirun -np 2 python3 -m usb4fabric.mpi4py_bench latency -m 0:1048576 -i 1000 -x 100
    mpirun -np 2 python3 -m usb4fabric.mpi4py_bench bw -m 1:1048576 -i 100 -x 10 -W 64

latency: half the round trip of Send/Recv between ranks 0 and 1 (us).
bw: rank 0 posts a window of Isend, rank 1 the matching Irecv, then a 4-byte
reply closes each iteration; MB/s with MB = 1e6 bytes.  Sizes are 0 (or 1)
then powers of two up to the maximum.  Output is OSU's, so the harness parses
it like any OSU program.

It imports nothing of usb4fabric (numpy and mpi4py only): the harness runs
it by its path, with whichever python has the stack's mpi4py.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

VERSION = "1.0"
LARGE = 8192  # above this, OSU uses fewer iterations; here -i applies to all
TITLES = {"latency": ("# mpi4py Latency Test (numpy buffers) v" + VERSION,
                      "# Size          Latency (us)"),
          "bw": ("# mpi4py Bandwidth Test (numpy buffers) v" + VERSION,
                 "# Size      Bandwidth (MB/s)")}


def sizes(lo: int, hi: int) -> list[int]:
    out, size = [], lo
    while size <= hi:
        out.append(size)
        size = 1 if size == 0 else size * 2
    return out


def parse_sizes(text: str, default_min: int) -> tuple[int, int]:
    lo_text, _, hi_text = text.rpartition(":") if ":" in text else ("", "", text)
    lo = int(lo_text) if lo_text else default_min
    hi = int(hi_text) if hi_text else 1 << 20
    if lo < 0 or hi < lo:
        raise argparse.ArgumentTypeError(f"bad message sizes {text!r}")
    return lo, hi


def latency(comm: Any, size: int, iters: int, skip: int, np: Any, MPI: Any) -> float:
    buf = np.zeros(max(size, 1), dtype=np.uint8)[:size]
    rank = comm.Get_rank()
    comm.Barrier()
    start = 0.0
    for i in range(iters + skip):
        if i == skip:
            start = MPI.Wtime()
        if rank == 0:
            comm.Send([buf, MPI.BYTE], dest=1, tag=1)
            comm.Recv([buf, MPI.BYTE], source=1, tag=1)
        elif rank == 1:
            comm.Recv([buf, MPI.BYTE], source=0, tag=1)
            comm.Send([buf, MPI.BYTE], dest=0, tag=1)
    return (MPI.Wtime() - start) * 1e6 / (2 * iters)


def bandwidth(comm: Any, size: int, iters: int, skip: int, window: int, np: Any,
              MPI: Any) -> float:
    bufs = [np.zeros(size, dtype=np.uint8) for _ in range(window)]
    ack = np.zeros(4, dtype=np.uint8)
    rank = comm.Get_rank()
    comm.Barrier()
    start = 0.0
    for i in range(iters + skip):
        if i == skip:
            start = MPI.Wtime()
        if rank == 0:
            reqs = [comm.Isend([b, MPI.BYTE], dest=1, tag=2) for b in bufs]
            MPI.Request.Waitall(reqs)
            comm.Recv([ack, MPI.BYTE], source=1, tag=3)
        elif rank == 1:
            reqs = [comm.Irecv([b, MPI.BYTE], source=0, tag=2) for b in bufs]
            MPI.Request.Waitall(reqs)
            comm.Send([ack, MPI.BYTE], dest=0, tag=3)
    seconds = MPI.Wtime() - start
    return size * iters * window / seconds / 1e6


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m usb4fabric.mpi4py_bench",
                                description=__doc__.splitlines()[0])
    p.add_argument("test", choices=sorted(TITLES))
    p.add_argument("-m", "--message-size", default=None, help="[MIN:]MAX bytes")
    p.add_argument("-i", "--iterations", type=int, default=1000)
    p.add_argument("-x", "--warmup", type=int, default=100)
    p.add_argument("-W", "--window-size", type=int, default=64)
    args = p.parse_args(argv)
    default_min = 0 if args.test == "latency" else 1
    try:
        args.lo, args.hi = parse_sizes(args.message_size or "", default_min)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        p.error(str(exc))
    if args.iterations < 1 or args.warmup < 0 or args.window_size < 1:
        p.error("-i must be >= 1, -x >= 0, -W >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.Get_size() != 2:
        if comm.Get_rank() == 0:
            print("This test requires exactly two processes", file=sys.stderr)
        return 1
    rank = comm.Get_rank()
    if rank == 0:
        print("\n".join(TITLES[args.test]), flush=True)
    for size in sizes(args.lo, args.hi):
        if args.test == "latency":
            value = latency(comm, size, args.iterations, args.warmup, np, MPI)
        else:
            value = bandwidth(comm, size, args.iterations, args.warmup,
                              args.window_size, np, MPI)
        if rank == 0:
            print(f"{size:<10d}{value:18.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
