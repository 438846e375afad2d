"""Seeds of the core fuzz target (tests/fuzz/fuzz_core.c), for make_corpus.py.

Each seed is a record script (record = ctl:u8 len:u16le body) that walks one
path of the core's frame handling against the world fuzz_core.c builds: its
four peers, three regions, five receives and seven waiting operations.
Frames come from python/usb4fabric/wire.py; every constant of the world and
of the record layout comes from fuzz_core.c (``F``, parsed by
make_corpus.py), so the seeds follow the target.
"""

import struct

from usb4fabric import wire

T = wire.FrameType
FL = wire.FrameFlag
FI_EACCES = 13
# libfabric's enum fi_datatype / fi_op (stable ABI) and usb4_atomic_kind.
FI_INT64, FI_UINT32, FI_UINT64 = 6, 5, 7
FI_SUM, FI_CSWAP = 2, 12
KIND_BASE, KIND_FETCH, KIND_COMPARE = 0, 1, 2


class Script:
    """Builds records for one world: F is fuzz_core.c's #defines."""

    def __init__(self, F):
        self.F = F
        self.peers = [F["FUZZ_ID_P%d" % i] for i in range(4)]

    def rec(self, kind, arg=0, body=b"", bits=0):
        return (struct.pack("<BH", kind | arg << self.F["FUZZ_ARG_SHIFT"] |
                            bits, len(body)) + body)

    def msg_id(self, op):
        return self.F["FUZZ_OP_GEN"] << 32 | self.F["FUZZ_OP_" + op]

    def frame(self, peer, ftype, split=False, other_link=False, raw=False,
              **fields):
        """A FRAME record: a wire.Frame from peer (0..3)."""
        f = wire.Frame(type=ftype, src_id=self.peers[peer], **fields)
        bits = ((self.F["FUZZ_BIT_SPLIT"] if split else 0) |
                (self.F["FUZZ_BIT_OTHER_LINK"] if other_link else 0) |
                (self.F["FUZZ_BIT_RAW"] if raw else 0))
        return self.rec(self.F["FUZZ_REC_FRAME"], peer, f.pack(), bits)

    def eager(self, peer, payload, tag=None, **kw):
        flags = kw.pop("flags", 0) | (FL.TAGGED if tag is not None else 0)
        return self.frame(peer, T.EAGER, flags=int(flags), tag=tag or 0,
                          total_len=len(payload), payload=payload, **kw)

    def rts(self, peer, total_len, iovs=(), tag=None, msg_id=0x77, **kw):
        flags = kw.pop("flags", 0) | (FL.TAGGED if tag is not None else 0)
        return self.frame(peer, T.RTS, flags=int(flags), tag=tag or 0,
                          msg_id=msg_id, total_len=total_len,
                          payload=wire.Rts(iovs=list(iovs)).pack(), **kw)

    def data(self, peer, msg_id, off, payload, read_resp=False, **kw):
        return self.frame(peer, T.DATA, msg_id=msg_id, data=off,
                          flags=int(FL.READ_RESP) if read_resp else 0,
                          total_len=len(payload), payload=payload, **kw)

    def done(self, peer, ftype, msg_id, status=0, total_len=0):
        return self.frame(peer, ftype, msg_id=msg_id, total_len=total_len,
                          data=wire.status_to_wire(status))

    def rma(self, peer, ftype, segs, msg_id=0x88, flags=0, data=0):
        return self.frame(peer, ftype, msg_id=msg_id, flags=int(flags),
                          data=data, total_len=sum(s[1] for s in segs),
                          payload=wire.pack_rma_segs(segs))

    def atomic(self, peer, kind, op, dt, size, count, addr, key,
               operands=b"", msg_id=0x99):
        head = wire.ATOMIC_HEAD.pack(kind, op, dt, count, addr, key)
        return self.frame(peer, T.ATOMIC_REQ, msg_id=msg_id,
                          total_len=size * count, payload=head + operands)

    def progress(self, times=1):
        return self.rec(self.F["FUZZ_REC_PROGRESS"], times - 1)

    def room(self, kind, frames=None):
        return self.rec(self.F["FUZZ_REC_ROOM"], kind,
                        b"" if frames is None else bytes([frames]))

    def down(self, peer, refused=False):
        return self.rec(self.F["FUZZ_REC_DOWN"], peer,
                        bits=self.F["FUZZ_BIT_REFUSED"] if refused else 0)

    def recv(self, how, length, tag=0, ignore=0, peer=0):
        body = struct.pack("<BBBQQ", how, peer, length // 16, tag, ignore)
        assert len(body) == self.F["FUZZ_RECV_REC_LEN"]
        return self.rec(self.F["FUZZ_REC_RECV"], 0, body)

    def cancel(self, context):
        return self.rec(self.F["FUZZ_REC_CANCEL"], 0, bytes([context]))

    def cq(self):
        return self.rec(self.F["FUZZ_REC_CQ"])

    def misc(self, what, arg=None):
        return self.rec(self.F["FUZZ_REC_MISC"], self.F["FUZZ_MISC_" + what],
                        b"" if arg is None else bytes([arg]))


def matching(s, F):
    """Eager and rendezvous arrivals against the posted receives."""
    recv = F["FUZZ_RECV_TAGGED"]
    return {
        "eager-tagged-p0": s.eager(0, b"to the directed receive",
                                   tag=F["FUZZ_TAG"]) + s.cq(),
        "eager-tagged-wildcard": s.eager(2, bytes(range(200)),
                                         tag=F["FUZZ_TAG_WILD"] | 0x300),
        "eager-untagged-multi": (s.eager(0, b"a" * 100) + s.eager(1, b"b" * 300)
                                 + s.eager(2, b"c" * 700) + s.eager(3, b"d") +
                                 s.cq()),
        "eager-ack-req": s.eager(0, b"ack me", flags=FL.ACK_REQ | FL.CQ_DATA,
                                 data=0x1234, tag=F["FUZZ_TAG"]),
        "eager-unexpected-peek-claim": (
            s.eager(0, b"early", tag=0x999) +
            s.rts(0, 900, tag=0x998) +
            s.recv(recv | F["FUZZ_RECV_PEEK"], 64, tag=0x999) +
            s.recv(recv | F["FUZZ_RECV_PEEK"] | F["FUZZ_RECV_CLAIM"], 64,
                   tag=0x998) +
            s.recv(recv | F["FUZZ_RECV_CLAIM"], 1024, tag=0x998) +
            s.recv(recv, 64, tag=0x999) + s.progress() + s.cq()),
        "eager-unexpected-discard": (
            s.eager(1, b"drop me", tag=0x555) +
            s.recv(recv | F["FUZZ_RECV_PEEK"] | F["FUZZ_RECV_CLAIM"], 16,
                   tag=0x555) +
            s.recv(recv | F["FUZZ_RECV_CLAIM"] | F["FUZZ_RECV_DISCARD"], 16,
                   tag=0x555) + s.cq()),
        "rts-cts-data": (s.rts(0, 200, tag=F["FUZZ_TAG"]) +
                         s.data(0, 0x77, 0, bytes(100)) +
                         s.data(0, 0x77, 100, b"\x01" * 100, split=True) +
                         s.cq()),
        "rts-truncated": (s.rts(2, 5000, tag=F["FUZZ_TAG_WILD"]) +
                          s.data(2, 0x77, 0, b"\x02" * 900) + s.cq()),
        "rts-bulk-p1": (s.rts(1, 1500, iovs=[(0x7f0000001000, 1000),
                                              (0x7f0000009000, 500)]) +
                        s.misc("BULK_ERR", 1) +
                        s.rts(3, 64, iovs=[(0x1000, 64)], msg_id=0x78) +
                        s.cq()),
        "rts-bulk-no-iov": s.rts(1, 300) + s.progress() + s.cq(),
        "hidden-then-inserted": (s.eager(2, b"hidden") +
                                 s.misc("INSERT_P2") +
                                 s.eager(2, b"inserted now") + s.cq()),
        "multi-recv-posted": (s.recv(F["FUZZ_RECV_MULTI"], 512) +
                              s.eager(0, b"x" * 200) * 4 + s.cq()),
    }


def operations(s, F):
    """Answers to the operations waiting at the start."""
    rndv, acked = s.msg_id("RNDV"), s.msg_id("ACKED")
    write, read = s.msg_id("WRITE"), s.msg_id("READ")
    return {
        "cts-rndv-fin": (s.frame(0, T.CTS, msg_id=rndv,
                                 total_len=F["FUZZ_RNDV_LEN"]) +
                         s.progress(2) +
                         s.done(0, T.FIN, rndv,
                                total_len=F["FUZZ_RNDV_LEN"]) + s.cq()),
        "cts-rndv-backpressure": (s.room(0, 1) +
                                  s.frame(0, T.CTS, msg_id=rndv,
                                          total_len=F["FUZZ_RNDV_LEN"]) +
                                  s.progress() + s.room(0) + s.progress(4)),
        "ack": s.done(0, T.ACK, acked) + s.cq(),
        "ack-twice-status": (s.done(0, T.ACK, acked, status=-FI_EACCES) +
                             s.done(0, T.ACK, acked) + s.cq()),
        "fin-bulk": s.done(1, T.FIN, s.msg_id("BULK_RNDV")) + s.cq(),
        "fin-wrong-peer": s.done(2, T.FIN, rndv) + s.cq(),
        "write-cts-fin": (s.frame(0, T.CTS, msg_id=write,
                                  total_len=F["FUZZ_WRITE_LEN"]) +
                          s.progress(3) + s.done(0, T.FIN, write) + s.cq()),
        "read-resp": (s.data(0, read, 0, b"\x03" * 900, read_resp=True) +
                      s.data(0, read, 900, b"\x04" * 600, read_resp=True) +
                      s.done(0, T.FIN, read, total_len=F["FUZZ_READ_LEN"]) +
                      s.cq()),
        "read-resp-error": s.done(0, T.FIN, read, status=-FI_EACCES) + s.cq(),
        "atomic-resp-fetch": (s.frame(0, T.ATOMIC_RESP,
                                      msg_id=s.msg_id("FETCH"),
                                      total_len=16, payload=bytes(16)) +
                              s.cq()),
        "atomic-resp-cswap-error": (s.done(0, T.ATOMIC_RESP,
                                           s.msg_id("CSWAP"),
                                           status=-FI_EACCES) + s.cq()),
        "peer-down-p0": (s.frame(0, T.CTS, msg_id=write,
                                 total_len=F["FUZZ_WRITE_LEN"]) +
                         s.rts(0, 200, tag=F["FUZZ_TAG"]) + s.down(0) +
                         s.progress() + s.cq()),
        "peer-refused-p1": s.down(1, refused=True) + s.cq(),
        "removed-p0-fin": s.misc("REMOVE_P0") + s.done(0, T.FIN, rndv),
    }


def rma_targets(s, F):
    """RMA and atomic requests at the three regions."""
    rw, ro, wo = ((F["FUZZ_IOVA_" + r], F["FUZZ_KEY_" + r])
                  for r in ("RW", "RO", "WO"))
    return {
        "write-req-rw": (s.rma(0, T.WRITE_REQ,
                               [(rw[0] + 16, 100, rw[1]),
                                (wo[0], 28, wo[1])],
                               flags=FL.CQ_DATA, data=0xd00d) +
                         s.data(0, 0x88, 0, b"\x05" * 128) + s.cq()),
        "write-req-ro-refused": (s.rma(2, T.WRITE_REQ, [(ro[0], 64, ro[1])]) +
                                 s.data(2, 0x88, 0, b"\x06" * 64)),
        "write-req-revoked": (s.rma(0, T.WRITE_REQ, [(rw[0], 256, rw[1])]) +
                              s.data(0, 0x88, 0, b"\x07" * 100) +
                              s.misc("REVOKE", 0) +
                              s.data(0, 0x88, 100, b"\x08" * 156) + s.cq()),
        "write-req-zero": s.rma(0, T.WRITE_REQ, [(rw[0], 0, rw[1])]),
        "read-req-ro": (s.rma(0, T.READ_REQ, [(ro[0], 300, ro[1]),
                                             (rw[0] + 500, 12, rw[1])]) +
                        s.progress(3)),
        "read-req-wo-refused": s.rma(2, T.READ_REQ, [(wo[0], 8, wo[1])]),
        "read-req-revoked": (s.room(0, 0) +
                             s.rma(0, T.READ_REQ, [(rw[0], 512, rw[1])]) +
                             s.progress() + s.misc("REVOKE", 0) +
                             s.room(0) + s.progress(2)),
        "atomic-sum": s.atomic(0, KIND_BASE, FI_SUM, FI_INT64, 8, 2,
                               rw[0] + 8, rw[1], struct.pack("<qq", 5, -3)),
        "atomic-cswap-fetch": s.atomic(2, KIND_COMPARE, FI_CSWAP, FI_UINT64,
                                       8, 1, rw[0], rw[1],
                                       struct.pack("<QQ", 9, 1)),
        "atomic-ro-refused": s.atomic(0, KIND_BASE, FI_SUM, FI_UINT32, 4, 1,
                                      ro[0], ro[1], struct.pack("<I", 1)),
        "write-data-bulk": (s.frame(1, T.WRITE_DATA, flags=int(FL.CQ_DATA),
                                    data=0xfeed, total_len=4096) +
                            s.frame(0, T.WRITE_DATA, data=1, total_len=1,
                                    other_link=True) + s.cq()),
        "cancel-all": b"".join(s.cancel(i) for i in range(5)) + s.cq(),
        "raw-bad-version": s.frame(0, T.EAGER, raw=True, version=0,
                                   total_len=3, payload=b"abc"),
    }


def scripts(F):
    """All core seeds: name -> bytes."""
    s = Script(F)
    return {**matching(s, F), **operations(s, F), **rma_targets(s, F)}
