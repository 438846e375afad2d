#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_frames.c into tests/fuzz/corpus.

    python3 tests/fuzz/make_corpus.py [OUTDIR]

Two kinds of seeds (see the comment at the top of fuzz_frames.c):

frame-*   one valid core frame of each type (struct usb4_wire_hdr + payload)
rel-*     record scripts for the rel pair: valid datagrams (HELLO, HELLO_ACK,
          DATA carrying frames, ACK with sack) with a correct CRC32C, sends
          and clock ticks

Enum values, flags and the wire version are read from prov_usb4/src/wire.h
and the pair's ids, ISNs and window from fuzz_frames.c, so the seeds follow
both.  Struct layouts are fixed by the _Static_asserts in wire.h and
repeated here with the same sizes checked.  Files named regress-* are crash
inputs kept as regression seeds: this script never touches them.
"""

import re
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIRE_H = HERE.parents[1] / "prov_usb4" / "src" / "wire.h"
FUZZ_C = HERE / "fuzz_frames.c"

HDR = struct.Struct("<BBHIQQQQQ")      # struct usb4_wire_hdr
IOV = struct.Struct("<QQ")             # struct usb4_wire_iov
RTS = struct.Struct("<II")             # struct usb4_wire_rts (head)
SEG = struct.Struct("<QQQ")            # struct usb4_wire_rma_seg
ATOMIC = struct.Struct("<BBHIQQ")      # struct usb4_wire_atomic
REL = struct.Struct("<BBHIQQIIQII")    # struct usb4_wire_rel
assert (HDR.size, IOV.size, RTS.size, SEG.size, ATOMIC.size, REL.size) == \
    (48, 16, 8, 24, 24, 48)

# libfabric's enum fi_datatype / fi_op (stable ABI) and usb4_atomic_kind.
FI_UINT32, FI_INT64, FI_UINT64 = 5, 6, 7
FI_SUM, FI_ATOMIC_READ, FI_CSWAP = 2, 10, 12
KIND_BASE, KIND_FETCH, KIND_COMPARE = 0, 1, 2
FI_EACCES = 13

# Record ops and ctl bits of the rel script.
TO_B, TO_A, SEND, TICK = 0, 1, 2, 3
KEEP_CRC, KEEP_IDS, FROM_B = 4, 8, 4


def parse_enum(text, name):
    """The members of `enum name` in wire.h, with their values."""
    body = re.search(r"enum %s \{(.*?)\};" % name, text, re.S).group(1)
    values, nxt = {}, 0
    for m in re.finditer(r"^\s*(USB4_\w+)(?:\s*=\s*(\d+))?,", body, re.M):
        nxt = int(m.group(2)) if m.group(2) else nxt
        values[m.group(1)] = nxt
        nxt += 1
    return values


def parse_defines(text):
    """Simple numeric #defines: plain numbers and (1u << n)."""
    out = {}
    pattern = (r"#define\s+(\w+)\s+"
               r"(?:\((\d+)u? << (\d+)\)|(0x[0-9a-fA-F]+|\d+)u?(?:ll)?\b)")
    for m in re.finditer(pattern, text):
        out[m.group(1)] = (int(m.group(2)) << int(m.group(3)) if m.group(2)
                           else int(m.group(4), 0))
    return out


WIRE = WIRE_H.read_text()
FT = parse_enum(WIRE, "usb4_frame_type")
RT = parse_enum(WIRE, "usb4_rel_type")
D = parse_defines(WIRE)
F = parse_defines(FUZZ_C.read_text())
VERSION = D["USB4_WIRE_VERSION"]
ID_A, ID_B = F["FUZZ_ID_A"], F["FUZZ_ID_B"]
ISN_A, ISN_B, WINDOW = F["FUZZ_ISN_A"], F["FUZZ_ISN_B"], F["FUZZ_WINDOW"]
M32 = 0xffffffff


def crc32c(data, crc=0):
    """CRC32C (Castagnoli, reflected 0x82F63B78), as usb4_crc32c(0, ...)."""
    crc ^= M32
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ M32


assert crc32c(b"123456789") == 0xE3069283


# ---- core frames ---------------------------------------------------------

def frame(ftype, payload=b"", flags=0, tag=0, data=0, msg_id=1, total_len=None,
          src_id=ID_A):
    if total_len is None:
        total_len = len(payload)
    return HDR.pack(VERSION, FT[ftype], flags, len(payload), src_id, tag,
                    data, msg_id, total_len) + payload


def rts(iovs, pid=4242, **kw):
    payload = RTS.pack(pid, len(iovs)) + b"".join(IOV.pack(*i) for i in iovs)
    return frame("USB4_FRAME_RTS", payload, total_len=sum(n for _, n in iovs),
                 **kw)


def rma(ftype, segs, **kw):
    payload = b"".join(SEG.pack(*s) for s in segs)
    return frame(ftype, payload, total_len=sum(s[1] for s in segs), **kw)


def atomic(kind, op, dt, size, count, operands=b"", compares=b""):
    head = ATOMIC.pack(kind, op, dt, count, 0x7f0000001000, 0x1234abcd5678ef00)
    return frame("USB4_FRAME_ATOMIC_REQ", head + operands + compares,
                 total_len=size * count)


def frames():
    tagged = D["USB4_WF_TAGGED"]
    cq = D["USB4_WF_CQ_DATA"]
    ack_req = D["USB4_WF_ACK_REQ"]
    read_resp = D["USB4_WF_READ_RESP"]
    return {
        "eager": frame("USB4_FRAME_EAGER", b"hello, usb4"),
        "eager-empty": frame("USB4_FRAME_EAGER"),
        "eager-tagged-cq-ackreq": frame("USB4_FRAME_EAGER", bytes(range(64)),
                                        flags=tagged | cq | ack_req,
                                        tag=0x42, data=0xfeedface),
        "rts-2iov": rts([(0x7f0000010000, 65536), (0x7f0000030000, 4096)],
                        flags=tagged, tag=7),
        "rts-16iov": rts([(0x7f0000000000 + i * 0x1000, 4096)
                          for i in range(16)]),
        "fin": frame("USB4_FRAME_FIN", total_len=69632),
        "ack": frame("USB4_FRAME_ACK", total_len=0),
        "write-data": frame("USB4_FRAME_WRITE_DATA", flags=cq, data=0xcafe,
                            total_len=8192),
        "cts": frame("USB4_FRAME_CTS", total_len=1 << 20),
        "data": frame("USB4_FRAME_DATA", bytes(range(256)), data=4096),
        "data-read-resp": frame("USB4_FRAME_DATA", b"\x5a" * 100,
                                flags=read_resp, data=0),
        "write-req-2seg": rma("USB4_FRAME_WRITE_REQ",
                              [(0x1000, 100, 0x1111), (0x9000, 28, 0x2222)],
                              flags=cq, data=0xd00d),
        "read-req-1seg": rma("USB4_FRAME_READ_REQ", [(0x2000, 4096, 0x3333)]),
        "read-req-4seg": rma("USB4_FRAME_READ_REQ",
                             [(0x2000 + i * 64, 64, 0x4444) for i in range(4)]),
        "atomic-sum-int64": atomic(KIND_BASE, FI_SUM, FI_INT64, 8, 2,
                                   struct.pack("<qq", 5, -3)),
        "atomic-read-uint32": atomic(KIND_FETCH, FI_ATOMIC_READ, FI_UINT32, 4,
                                     1),
        "atomic-cswap-uint64": atomic(KIND_COMPARE, FI_CSWAP, FI_UINT64, 8, 1,
                                      struct.pack("<Q", 9),
                                      struct.pack("<Q", 1)),
        "atomic-resp": frame("USB4_FRAME_ATOMIC_RESP", struct.pack("<Q", 77)),
        "atomic-resp-eacces": frame("USB4_FRAME_ATOMIC_RESP",
                                    data=(-FI_EACCES) & (2**64 - 1)),
    }


# ---- rel datagrams and scripts -------------------------------------------

def dgram(rtype, src, dst, seq, ack=0, sack=0, window=WINDOW, payload=b"",
          bad_crc=False):
    fields = [VERSION, RT[rtype], 0, 0, src, dst, seq & M32, ack & M32, sack,
              window, len(payload)]
    crc = crc32c(REL.pack(*fields) + payload)
    fields[3] = crc ^ 1 if bad_crc else crc
    return REL.pack(*fields) + payload


def rec(ctl, body=b""):
    return struct.pack("<BH", ctl, len(body)) + body


def tick(step):
    return rec(TICK | step << 2)


def a_to_b(rtype, seq, ctl=KEEP_CRC | KEEP_IDS, **kw):
    """A datagram from A to B; after the handshake B expects ISN_A + 1."""
    return rec(TO_B | ctl, dgram(rtype, ID_A, ID_B, seq, **kw))


def b_to_a(rtype, seq, ctl=KEEP_CRC | KEEP_IDS, **kw):
    return rec(TO_A | ctl, dgram(rtype, ID_B, ID_A, seq, **kw))


def rel_scripts(fr):
    nxt = ISN_A + 1
    data_all = b"".join(a_to_b("USB4_REL_DATA", nxt + i, ack=ISN_B,
                               payload=fr[name])
                        for i, name in enumerate(["eager", "rts-2iov",
                                                  "write-req-2seg",
                                                  "atomic-cswap-uint64"]))
    return {
        "hello": a_to_b("USB4_REL_HELLO", ISN_A),
        "hello-ack": b_to_a("USB4_REL_HELLO_ACK", ISN_B),
        "hello-bad-crc": a_to_b("USB4_REL_HELLO", ISN_A, bad_crc=True),
        "hello-other-isn": a_to_b("USB4_REL_HELLO", ISN_A + 77),
        "data-eager": a_to_b("USB4_REL_DATA", nxt, ack=ISN_B,
                             payload=fr["eager"]) + tick(4),
        "data-fixed-by-harness": rec(TO_B, dgram("USB4_REL_DATA", 0, 0, nxt,
                                                 ack=ISN_B,
                                                 payload=fr["fin"])),
        "data-frames-across-wrap": data_all + tick(12),
        "data-out-of-order": (a_to_b("USB4_REL_DATA", nxt + 1, ack=ISN_B,
                                     payload=fr["data"]) +
                              a_to_b("USB4_REL_DATA", nxt, ack=ISN_B,
                                     payload=fr["cts"]) + tick(2)),
        "data-duplicate": (a_to_b("USB4_REL_DATA", nxt, payload=fr["ack"]) +
                           a_to_b("USB4_REL_DATA", nxt, payload=fr["ack"])),
        "ack-sack": (rec(SEND | FROM_B, fr["eager"]) +
                     rec(SEND | FROM_B, fr["rts-2iov"]) +
                     rec(SEND | FROM_B, fr["read-req-1seg"]) +
                     rec(SEND | FROM_B, fr["atomic-resp"]) +
                     a_to_b("USB4_REL_ACK", nxt, ack=ISN_B + 1, sack=0b110) +
                     tick(8) + tick(20)),
        "ack-window-zero": (rec(SEND | FROM_B, fr["cts"]) +
                            a_to_b("USB4_REL_ACK", nxt, ack=ISN_B + 1,
                                   window=0)),
        "send-both-ways": (rec(SEND, fr["eager-tagged-cq-ackreq"]) +
                           rec(SEND | FROM_B, fr["write-data"]) + tick(1) +
                           rec(SEND, fr["atomic-sum-int64"]) + tick(3)),
        "retransmit-then-dead": (rec(SEND, fr["data"]) + rec(SEND, fr["fin"]) +
                                 b_to_a("USB4_REL_ACK", ISN_B, ack=nxt,
                                        sack=1) +
                                 tick(30) + tick(63) + tick(63) + tick(63)),
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else HERE / "corpus"
    out.mkdir(parents=True, exist_ok=True)
    fr = frames()
    seeds = {"frame-" + k: v for k, v in fr.items()}
    seeds.update({"rel-" + k: v for k, v in rel_scripts(fr).items()})
    for old in out.glob("frame-*"):
        old.unlink()
    for old in out.glob("rel-*"):
        old.unlink()
    for name, data in sorted(seeds.items()):
        (out / name).write_bytes(data)
    return len(seeds)


if __name__ == "__main__":
    print("%d seeds written" % main())
