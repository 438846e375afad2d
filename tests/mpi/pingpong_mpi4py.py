"""Ping-pong and a small collective with mpi4py on numpy buffers.

Ranks pair up as (0, 1), (2, 3), ...; the even rank sends, the odd one
echoes back a different pattern.  Uses the uppercase (buffer) API so the
numpy memory goes straight to MPI.  Exits nonzero on any mismatch and
prints ``OK pingpong_mpi4py`` from rank 0 at the end.
"""

import sys

import numpy as np
from mpi4py import MPI

SIZES = (0, 1, 100, 8192, 65536, 1 << 20, 4 << 20)
ITERATIONS = 3
TAG_PING, TAG_PONG = 1, 2


def pattern(seed, nbytes):
    """Bytes that depend on seed and position (so misplaced blocks show)."""
    i = np.arange(nbytes, dtype=np.uint32)
    x = (i * np.uint32(2654435761)) ^ (i >> np.uint32(11)) ^ np.uint32((seed * 40503 + 1) & 0xFFFFFFFF)
    x ^= x >> np.uint32(15)
    return (x & np.uint32(0xFF)).astype(np.uint8)


def fail(comm, message):
    sys.stderr.write("FAIL rank %d: %s\n" % (comm.Get_rank(), message))
    sys.stderr.flush()
    comm.Abort(1)


def check(comm, got, want, status, peer, tag, what):
    if status.Get_source() != peer or status.Get_tag() != tag:
        fail(comm, "%s: status source %d tag %d, want %d %d"
             % (what, status.Get_source(), status.Get_tag(), peer, tag))
    if status.Get_count(MPI.BYTE) != want.size:
        fail(comm, "%s: count %d, want %d" % (what, status.Get_count(MPI.BYTE), want.size))
    bad = np.flatnonzero(got != want)
    if bad.size:
        fail(comm, "%s: size %d from rank %d differs at offset %d: got %d want %d"
             % (what, want.size, peer, bad[0], got[bad[0]], want[bad[0]]))


def pingpong(comm, peer):
    rank = comm.Get_rank()
    lead = rank < peer
    for size in SIZES:
        buf = np.empty(size, dtype=np.uint8)
        for it in range(ITERATIONS):
            ping = pattern(size * 31 + it * 2, size)
            pong = pattern(size * 31 + it * 2 + 1, size)
            status = MPI.Status()
            if lead:
                comm.Send([ping, MPI.BYTE], dest=peer, tag=TAG_PING)
                buf[:] = 0
                comm.Recv([buf, MPI.BYTE], source=peer, tag=TAG_PONG, status=status)
                check(comm, buf, pong, status, peer, TAG_PONG, "pong")
            else:
                buf[:] = 0
                comm.Recv([buf, MPI.BYTE], source=peer, tag=TAG_PING, status=status)
                check(comm, buf, ping, status, peer, TAG_PING, "ping")
                comm.Send([pong, MPI.BYTE], dest=peer, tag=TAG_PONG)


def collectives(comm):
    rank, nranks = comm.Get_rank(), comm.Get_size()
    data = np.arange(1 << 16, dtype=np.float64) * (rank + 1)
    total = np.empty_like(data)
    comm.Allreduce(data, total, op=MPI.SUM)
    want = np.arange(1 << 16, dtype=np.float64) * (nranks * (nranks + 1) // 2)
    if not np.array_equal(total, want):
        fail(comm, "Allreduce SUM on float64 differs")

    blob = pattern(4242, 100000) if rank == 0 else np.zeros(100000, dtype=np.uint8)
    comm.Bcast([blob, MPI.BYTE], root=0)
    if not np.array_equal(blob, pattern(4242, 100000)):
        fail(comm, "Bcast of 100000 B differs")


def main(argv=None):
    comm = MPI.COMM_WORLD
    peer = comm.Get_rank() ^ 1
    if peer < comm.Get_size():
        pingpong(comm, peer)
    collectives(comm)
    comm.Barrier()
    if comm.Get_rank() == 0:
        print("OK pingpong_mpi4py", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
