#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets.

    python3 tests/fuzz/make_corpus.py [OUTDIR [CORE_OUTDIR]]

OUTDIR (default tests/fuzz/corpus) gets the seeds of fuzz_frames.c,
CORE_OUTDIR (default tests/fuzz/corpus-core, or OUTDIR-core when only OUTDIR
is given) those of fuzz_core.c.

Two kinds of seeds for fuzz_frames.c (see the comment at the top of it):

frame-*   one valid core frame of each type (struct usb4_wire_hdr + payload)
rel-*     record scripts for the rel pair: valid datagrams (HELLO, HELLO_ACK
          and REJECT with their struct usb4_wire_hello, DATA carrying frames,
          ACK with sack) with a correct CRC32C, sends, clock ticks and
          control records (receiver not ready, handshake datagrams with other
          versions and features, the pool squeezed, the pair reopened)

Enum values, flags, feature bits and the wire version are read from
prov_usb4/src/wire.h, and the pair's ids, ISNs and window and the record
layout (FUZZ_REC_*, FUZZ_BIT_*, FUZZ_CTL_*, FUZZ_HELLO_*) from
fuzz_frames.c, so the seeds follow both.  Struct layouts are fixed by the
_Static_asserts in wire.h and repeated here with the same sizes checked.
Files named regress-* are crash inputs kept as regression seeds: this
script never touches them.

core-*    record scripts for fuzz_core.c (see the comment at the top of it):
          frames from the four peers that reach every handler of the core
          (matching, FIN/ACK, CTS and DATA streams, RMA requests and
          responses, atomics), with progress, back-pressure, peer deaths,
          receives, cancels, revoked regions and AV changes between them.
          The frames are built by python/usb4fabric/wire.py, the project's
          own encoder; the peers, keys, operations and record layout are
          read from fuzz_core.c.
"""

import re
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIRE_H = HERE.parents[1] / "prov_usb4" / "src" / "wire.h"
FUZZ_C = HERE / "fuzz_frames.c"
FUZZ_CORE_C = HERE / "fuzz_core.c"
sys.path.insert(0, str(HERE.parents[1] / "python"))
sys.path.insert(0, str(HERE))
from usb4fabric import wire  # noqa: E402  (after the path is set)

HDR = struct.Struct("<BBHIQQQQQ")      # struct usb4_wire_hdr
IOV = struct.Struct("<QQ")             # struct usb4_wire_iov
RTS = struct.Struct("<II")             # struct usb4_wire_rts (head)
SEG = struct.Struct("<QQQ")            # struct usb4_wire_rma_seg
ATOMIC = struct.Struct("<BBHIQQ")      # struct usb4_wire_atomic
REL = struct.Struct("<BBHIQQIIQII")    # struct usb4_wire_rel
HELLO = struct.Struct("<HHIII")        # struct usb4_wire_hello
assert (HDR.size, IOV.size, RTS.size, SEG.size, ATOMIC.size, REL.size,
        HELLO.size) == (48, 16, 8, 24, 24, 48, 16)

# libfabric's enum fi_datatype / fi_op (stable ABI) and usb4_atomic_kind.
FI_UINT32, FI_INT64, FI_UINT64 = 5, 6, 7
FI_SUM, FI_ATOMIC_READ, FI_CSWAP = 2, 10, 12
KIND_BASE, KIND_FETCH, KIND_COMPARE = 0, 1, 2
FI_EACCES = 13


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
    """Simple numeric #defines: plain numbers, (1u << n) and (A | B) of
    those."""
    out = {}
    text = text.replace("\\\n", " ")  # continued lines are one
    pattern = (r"#define\s+(\w+)\s+"
               r"(?:\((\d+)u? << (\d+)\)|(0x[0-9a-fA-F]+|\d+)u?(?:ll)?\b)")
    for m in re.finditer(pattern, text):
        out[m.group(1)] = (int(m.group(2)) << int(m.group(3)) if m.group(2)
                           else int(m.group(4), 0))
    # and unions of those: (NAME | NAME ...)
    for m in re.finditer(r"#define\s+(\w+)\s+\(\s*(\w+(?:\s*\|\s*\w+)*)\s*\)",
                         text):
        names = [n.strip() for n in m.group(2).split("|")]
        if m.group(1) not in out and all(n in out for n in names):
            value = 0
            for n in names:
                value |= out[n]
            out[m.group(1)] = value
    return out


WIRE = WIRE_H.read_text()
FT = parse_enum(WIRE, "usb4_frame_type")
RT = parse_enum(WIRE, "usb4_rel_type")
D = parse_defines(WIRE)
F = parse_defines(FUZZ_C.read_text())
VERSION = D["USB4_WIRE_VERSION"]
FEATURES = D["USB4_WIRE_FEATURES"]
REQUIRED = D["USB4_WIRE_FEATURES_REQUIRED"]
ID_A, ID_B = F["FUZZ_ID_A"], F["FUZZ_ID_B"]
ISN_A, ISN_B, WINDOW = F["FUZZ_ISN_A"], F["FUZZ_ISN_B"], F["FUZZ_WINDOW"]
PAYLOAD_MAX = F["FUZZ_PAYLOAD_MAX"]
M32 = 0xffffffff

# Record ops and ctl bits of the rel script (fuzz_frames.c).
TO_B, TO_A, SEND = F["FUZZ_REC_TO_B"], F["FUZZ_REC_TO_A"], F["FUZZ_REC_SEND"]
TICK, CTL = F["FUZZ_REC_TICK"], F["FUZZ_REC_CTL"]
KEEP_CRC, KEEP_IDS = F["FUZZ_BIT_KEEP_CRC"], F["FUZZ_BIT_KEEP_IDS"]
PIECES = F["FUZZ_BIT_PIECES"]
FROM_B, REF, COPY_REFS = (F["FUZZ_BIT_FROM_B"], F["FUZZ_BIT_REF"],
                          F["FUZZ_BIT_COPY_REFS"])
TICK_SHIFT, CTL_SHIFT = F["FUZZ_TICK_SHIFT"], F["FUZZ_CTL_SHIFT"]
SIDE_B = F["FUZZ_CTL_SIDE_B"]
NOT_READY, CTL_HELLO = F["FUZZ_CTL_NOT_READY"], F["FUZZ_CTL_HELLO"]
SQUEEZE, REOPEN = F["FUZZ_CTL_SQUEEZE"], F["FUZZ_CTL_REOPEN"]
FOREVER = F["FUZZ_NOT_READY_FOREVER"]
H_HELLO, H_ACK = F["FUZZ_HELLO_HELLO"], F["FUZZ_HELLO_ACK"]
H_REJECT, H_BUILT_REJECT = F["FUZZ_HELLO_REJECT"], F["FUZZ_HELLO_BUILT_REJECT"]
H_SEQ, H_PROTO = F["FUZZ_HELLO_SEQ"], F["FUZZ_HELLO_PROTO"]
H_FEATURES, H_PIECES = F["FUZZ_HELLO_FEATURES"], F["FUZZ_HELLO_PIECES"]
TAG_LEN = F["FUZZ_TAG_LEN"]   # the harness's, in front of what SEND sends


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


def rts(iovs, total_len=None, **kw):
    """An RTS with its segments; with none, total_len says the length."""
    payload = RTS.pack(len(iovs), 0) + b"".join(IOV.pack(*i) for i in iovs)
    if total_len is None:
        total_len = sum(n for _, n in iovs)
    return frame("USB4_FRAME_RTS", payload, total_len=total_len, **kw)


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
        "rts-0iov": rts([], total_len=1 << 20, flags=tagged | cq, tag=9,
                        data=0xbeef),
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

HELLO_TYPES = ("USB4_REL_HELLO", "USB4_REL_HELLO_ACK", "USB4_REL_REJECT")


def hello(proto=VERSION, features=FEATURES, datagram_max=PAYLOAD_MAX + 48):
    """struct usb4_wire_hello, as rel sends it."""
    return HELLO.pack(proto, 0, features, datagram_max, 0)


def dgram(rtype, src, dst, seq, ack=0, sack=0, window=WINDOW, payload=None,
          bad_crc=False, flags=0):
    if payload is None:
        payload = hello() if rtype in HELLO_TYPES else b""
    fields = [VERSION, RT[rtype], flags, 0, src, dst, seq & M32, ack & M32,
              sack, window, len(payload)]
    crc = crc32c(REL.pack(*fields) + payload)
    fields[3] = crc ^ 1 if bad_crc else crc
    return REL.pack(*fields) + payload


def rec(ctl, body=b""):
    return struct.pack("<BH", ctl, len(body)) + body


def tick(step):
    assert 0 <= step << TICK_SHIFT < 256
    return rec(TICK | step << TICK_SHIFT)


def send(body, ctl=0):
    assert len(body) + TAG_LEN <= PAYLOAD_MAX
    return rec(SEND | ctl, body)


def control(what, side_b=False, body=b""):
    return rec(CTL | what << CTL_SHIFT | (SIDE_B if side_b else 0), body)


def not_ready(side_b, n):
    """The side's receiver refuses the next n offers (FOREVER, 0: ready)."""
    return control(NOT_READY, side_b, bytes([n]))


def ctl_hello(to_b, how, seq=0, window=WINDOW, proto=0, features=0,
              datagram_max=PAYLOAD_MAX + 48):
    """A handshake datagram the harness builds (struct fuzz_hello_rec)."""
    return control(CTL_HELLO, to_b,
                   struct.pack("<BIIHII", how, seq, window, proto, features,
                               datagram_max))


def squeeze(units=None):
    """The harness takes units * 64 pool bytes, or (None) gives them back."""
    return control(SQUEEZE, body=b"" if units is None else bytes([units - 1]))


def reopen():
    return control(REOPEN)


def a_to_b(rtype, seq, ctl=KEEP_CRC | KEEP_IDS, **kw):
    """A datagram from A to B; after the handshake B expects ISN_A + 1."""
    return rec(TO_B | ctl, dgram(rtype, ID_A, ID_B, seq, **kw))


def b_to_a(rtype, seq, ctl=KEEP_CRC | KEEP_IDS, **kw):
    return rec(TO_A | ctl, dgram(rtype, ID_B, ID_A, seq, **kw))


def frag(seq, whole, off, n, total=None):
    """A DATA from A to B carrying whole[off:off + n] as a fragment of seq
    (USB4_REL_F_FRAG, struct usb4_wire_frag first)."""
    head = struct.pack("<II", off, len(whole) if total is None else total)
    return a_to_b("USB4_REL_DATA", seq, ack=ISN_B, flags=D["USB4_REL_F_FRAG"],
                  payload=head + whole[off:off + n])


def rel_scripts(fr):
    return {**handshake_scripts(fr), **data_scripts(fr),
            **receiver_scripts(fr)}


def handshake_scripts(fr):
    """HELLO, HELLO_ACK and REJECT reaching the state machine, during and
    after a handshake."""
    old = hello(proto=VERSION - 1)
    return {
        "hello": a_to_b("USB4_REL_HELLO", ISN_A),
        "hello-ack": b_to_a("USB4_REL_HELLO_ACK", ISN_B),
        "hello-bad-crc": a_to_b("USB4_REL_HELLO", ISN_A, bad_crc=True),
        "hello-other-isn": a_to_b("USB4_REL_HELLO", ISN_A + 77),
        "hello-old-proto": (a_to_b("USB4_REL_HELLO", ISN_A, payload=old) +
                            send(fr["eager"]) + tick(5)),
        "hello-required-feature": a_to_b(
            "USB4_REL_HELLO", ISN_A,
            payload=hello(features=REQUIRED & -REQUIRED)),
        "hello-optional-feature": (a_to_b("USB4_REL_HELLO", ISN_A,
                                          payload=hello(features=1)) +
                                   send(fr["eager"]) + tick(3)),
        "reject-after-handshake": (b_to_a("USB4_REL_REJECT", ISN_B,
                                          payload=hello(proto=VERSION + 1)) +
                                   send(fr["fin"]) + tick(3)),
        "reopen-handshake-both-ways": (reopen() + send(fr["eager"]) +
                                       send(fr["cts"], FROM_B) + tick(2) +
                                       send(fr["data"]) + tick(4)),
        "reopen-reject": (reopen() + send(fr["eager"]) +
                          b_to_a("USB4_REL_REJECT", ISN_B, payload=old) +
                          send(fr["fin"]) + tick(3)),
        "reopen-hello-old-proto": (reopen() +
                                   a_to_b("USB4_REL_HELLO", ISN_A,
                                          payload=old) +
                                   send(fr["eager"]) + tick(3) + tick(9)),
        "reopen-data-before-hello": (reopen() +
                                     a_to_b("USB4_REL_DATA", ISN_A,
                                            payload=fr["eager"]) +
                                     send(fr["ack"]) + tick(2)),
        "ctl-hello-random": (ctl_hello(True, H_HELLO | H_PROTO | H_FEATURES,
                                       proto=0x1234, features=0x00ff00ff) +
                             ctl_hello(False, H_ACK | H_SEQ, seq=ISN_B + 5) +
                             ctl_hello(True, H_REJECT | H_PROTO, proto=9) +
                             ctl_hello(False, H_BUILT_REJECT | H_PIECES) +
                             ctl_hello(True, H_HELLO | H_PIECES | 3 << 6,
                                       window=0) +
                             send(fr["eager"]) + tick(4)),
        "ctl-reopen-built-reject": (reopen() + send(fr["eager"]) +
                                    ctl_hello(False, H_BUILT_REJECT) +
                                    tick(3)),
        "ctl-reopen-hello-features": (reopen() +
                                      ctl_hello(True, H_HELLO | H_FEATURES,
                                                features=REQUIRED) +
                                      send(fr["eager"]) + tick(3) + tick(3)),
    }


def data_scripts(fr):
    """DATA and ACK datagrams, sends by copy and by reference, retransmits."""
    nxt = ISN_A + 1
    data_all = b"".join(a_to_b("USB4_REL_DATA", nxt + i, ack=ISN_B,
                               payload=fr[name])
                        for i, name in enumerate(["eager", "rts-2iov",
                                                  "write-req-2seg",
                                                  "atomic-cswap-uint64"]))
    return {
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
        "data-other-incarnation": rec(TO_B | KEEP_CRC | KEEP_IDS,
                                      dgram("USB4_REL_DATA", ID_A ^ 0xff,
                                            ID_B, nxt, ack=ISN_B,
                                            payload=fr["eager"])),
        "frag-in-two-reversed": (frag(nxt, fr["eager-tagged-cq-ackreq"], 64,
                                      1 << 10) +
                                 frag(nxt, fr["eager-tagged-cq-ackreq"], 0,
                                      64) + tick(2)),
        "frag-malformed": (frag(nxt, fr["eager-tagged-cq-ackreq"], 3, 64) +
                           frag(nxt, fr["eager-tagged-cq-ackreq"], 0, 65) +
                           frag(nxt, fr["eager-tagged-cq-ackreq"], 0, 64,
                                total=M32) +
                           frag(nxt, fr["eager-tagged-cq-ackreq"], 0, 64) +
                           frag(nxt, fr["eager-tagged-cq-ackreq"], 64, 64,
                                total=200) + tick(2)),
        "data-pieces": a_to_b("USB4_REL_DATA", nxt, ack=ISN_B,
                              payload=fr["rts-0iov"],
                              ctl=KEEP_CRC | KEEP_IDS | PIECES | 3 << 5),
        "ack-sack": (send(fr["eager"], FROM_B) +
                     send(fr["rts-2iov"], FROM_B) +
                     send(fr["read-req-1seg"], FROM_B) +
                     send(fr["atomic-resp"], FROM_B) +
                     a_to_b("USB4_REL_ACK", nxt, ack=ISN_B + 1, sack=0b110) +
                     tick(8) + tick(20)),
        "ack-window-zero": (send(fr["cts"], FROM_B) +
                            a_to_b("USB4_REL_ACK", nxt, ack=ISN_B + 1,
                                   window=0)),
        "send-both-ways": (send(fr["eager-tagged-cq-ackreq"]) +
                           send(fr["write-data"], FROM_B) + tick(1) +
                           send(fr["atomic-sum-int64"]) + tick(3)),
        "send-ref-copy": (send(fr["data"], REF | 5 << 5) +
                          send(fr["rts-16iov"], REF | COPY_REFS | 5 << 5) +
                          send(fr["eager"], FROM_B | REF | COPY_REFS) +
                          tick(2) + tick(4)),
        "send-ref-then-down": (send(fr["data"], REF | 3 << 5) +
                               ctl_hello(False, H_HELLO | H_PROTO,
                                         proto=VERSION + 1) +
                               send(fr["eager"], COPY_REFS | 3 << 5) +
                               tick(2)),
        "retransmit-then-dead": (send(fr["data"]) + send(fr["fin"]) +
                                 b_to_a("USB4_REL_ACK", ISN_B, ack=nxt,
                                        sack=1) +
                                 tick(30) + tick(31) + tick(31) + tick(31)),
    }


def receiver_scripts(fr):
    """Receivers that refuse for a while, and a pool that runs dry."""
    big = frame("USB4_FRAME_EAGER", bytes(range(256)) + bytes(144))
    return {
        "not-ready": (not_ready(True, 3) + send(fr["eager"]) +
                      send(fr["rts-2iov"]) + send(fr["fin"]) +
                      send(fr["cts"]) + tick(2) + tick(2) + tick(2) +
                      tick(4)),
        "not-ready-both-ways": (not_ready(True, 2) + not_ready(False, 2) +
                                send(fr["data"]) + send(fr["write-data"],
                                                        FROM_B) +
                                tick(1) + tick(2) + tick(3)),
        "not-ready-forever-pool": (not_ready(True, FOREVER) +
                                   send(big) * 8 + tick(2) + send(big) * 4 +
                                   tick(3) + tick(5) + not_ready(True, 0) +
                                   tick(2) + tick(4) + tick(8)),
        "pool-squeezed": (squeeze(16) + (send(big) + send(big, FROM_B)) * 3 +
                          tick(2) + tick(3) + squeeze() +
                          send(big, FROM_B) * 2 + tick(5) + tick(10)),
    }


def core_scripts():
    """The seeds of fuzz_core.c (core_seeds.py), with its constants."""
    import core_seeds  # beside this file; imports usb4fabric.wire
    assert wire.CURRENT_VERSION == VERSION, "wire.py and wire.h disagree"
    return core_seeds.scripts(parse_defines(FUZZ_CORE_C.read_text()))


def write_seeds(out, seeds, prefixes):
    """Replaces the seeds of out named by prefixes (never regress-*)."""
    out.mkdir(parents=True, exist_ok=True)
    for prefix in prefixes:
        for old in out.glob(prefix + "*"):
            old.unlink()
    for name, data in sorted(seeds.items()):
        (out / name).write_bytes(data)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else HERE / "corpus"
    core_out = (Path(argv[1]) if len(argv) > 1 else
                out.with_name(out.name + "-core"))
    fr = frames()
    seeds = {"frame-" + k: v for k, v in fr.items()}
    seeds.update({"rel-" + k: v for k, v in rel_scripts(fr).items()})
    write_seeds(out, seeds, ("frame-", "rel-"))
    core = {"core-" + k: v for k, v in core_scripts().items()}
    write_seeds(core_out, core, ("core-",))
    return len(seeds) + len(core)


if __name__ == "__main__":
    print("%d seeds written" % main())
