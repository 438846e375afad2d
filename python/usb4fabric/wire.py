"""The usb4 wire format (prov_usb4/src/wire.h) in Python, for tests and tools.

Encoders and decoders only: bytes in, values out, no sockets, no files.  Every
multi-byte field is little-endian; every layout below names the C struct it
mirrors and is size-checked at import, like the ``_Static_assert``\\ s of
wire.h.

Wire versions (``USB4_WIRE_VERSION``) and what differs between them:

1 (up to commit 0948737)
    * the endpoint address is ``struct usb4_addr`` of include/usb4_core.h,
      address layout version 2: ``magic, version, udp_family, udp_port,
      host_id, ep_id, shm_pid, shm_fd, reg_fd, reserved, udp_ip`` in host
      byte order (little-endian on every machine the provider ran on) and no
      protocol version;
    * the rel handshake (HELLO, HELLO_ACK) carries no payload; there is no
      REJECT (rel types 1..4);
    * the RTS payload head is ``pid, iov_count``: the frame names the
      sender's process.
2 (up to commit d6b221b)
    * the address is ``struct usb4_wire_addr``, address layout version 3,
      explicitly little-endian, with ``proto`` (the wire version), ``flags``
      and the udp fields after the shm ones;
    * HELLO, HELLO_ACK and REJECT carry ``struct usb4_wire_hello`` (proto,
      features, datagram_max); REJECT (rel type 5) answers a HELLO of a
      version the receiver does not speak;
    * the RTS payload head is ``iov_count, reserved``: the link knows the
      sender, the frame no longer names a process.
3 (wire.h today)
    * ``struct usb4_wire_hello`` ends in a 16-byte ``nonce``;
    * a HELLO_ACK (and a REJECT of our version) acknowledges the HELLO it
      answers: its ``ack`` is the HELLO's ``seq``;
    * with a job key every datagram has rel flag ``REL_F_AUTH`` set, ``crc``
      0, and ends in ``struct usb4_wire_auth`` (packet number, 16-byte tag)
      after the payload; HELLOs offer the required feature
      ``FEATURE_AUTH``.  Tags are keyed: without the key nobody (this module
      included) can make one.
    * later, without a new number: an address may be unresolved (flag
      ``ADDR_F_UNRESOLVED``: only the udp part, from a node and service), and
      the udp link answers a RESOLVE query (``struct usb4_wire_resolve``, 96
      bytes both ways: type ``RESOLVE_QUERY``/``RESOLVE_ANSWER`` in the rel
      type's byte) with its endpoint's whole address.
    * later, without a new number: an endpoint with several udp sockets
      (rails, one per cable) offers ``FEATURE_RAILS`` and its HELLO and
      HELLO_ACK carry its rail list (``struct usb4_wire_rails``: a count
      and 20 bytes per rail: family, port, ip) after the hello.
    * later, negotiated (``FEATURE_FRAG``): a session's datagrams are at
      most the smaller side's HELLO ``datagram_max``; a DATA flagged
      ``REL_F_FRAG`` carries bytes ``[offset, offset + len - 8)`` of its
      seq's payload of ``total`` bytes after ``struct usb4_wire_frag``
      (offsets and every length but the last in ``FRAG_UNIT``s).
    * later, negotiated (``FEATURE_XXH3``): a DATA or ACK flagged
      ``REL_F_XXH3`` carries in ``crc`` the low 32 bits of XXH3 (64-bit,
      seed 0) instead of CRC32C, sent to a peer that offered the feature
      by a sender without CRC instructions; handshakes keep CRC32C.
    * later, negotiated (``FEATURE_READ_INLINE``): a READ_REQ of at most
      ``READ_INLINE_MAX`` bytes that succeeds is answered by one
      ``READ_INLINE`` frame holding the bytes (total_len = payload_len)
      instead of DATA and FIN; a refused one still by FIN.
    * later, negotiated (``FEATURE_RNDV_EARLY``): DATA and CTS carry a round
      in ``tag``.  An RTS is followed at once by DATA of ``ROUND_EARLY``
      (no CTS awaited); a receiver that matched the RTS on arrival places
      it and answers CTS of ``ROUND_EARLY`` (go on), one that matched it
      later dropped it and answers CTS of ``ROUND_AGAIN``: the sender starts
      again from byte 0 in that round, and only that round is placed.

In every version the rel header (48 bytes) and the core frame header (48
bytes) have the same layout, and ``version`` and ``type`` keep the first two
bytes, so a datagram of any version can be recognised.  Functions that
depend on the version take ``wire_version``; a value above 3 (a peer from
the future) is encoded with the newest layout we know.

CRC32C: ``crc32c(data, crc)`` follows the provider's convention
(usb4_crc32c): ``crc32c(a)`` is the CRC of ``a`` and
``crc32c(b, crc32c(a)) == crc32c(a + b)``.  A rel datagram's ``crc`` field
is the CRC of the whole datagram computed with that field 0 (XXH3's low 32
bits when flagged ``REL_F_XXH3``: ``datagram_check``).
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import struct

WIRE_VERSIONS = (1, 2, 3)
CURRENT_VERSION = 3  # USB4_WIRE_VERSION
FEATURE_AUTH = 1 << 16  # USB4_WIRE_FEATURE_AUTH
FEATURE_PROBE = 1 << 0  # USB4_WIRE_FEATURE_PROBE: keepalives, close handshake
FEATURE_FRAG = 1 << 1  # USB4_WIRE_FEATURE_FRAG: fragments of a seq
FEATURE_RAILS = 1 << 2  # USB4_WIRE_FEATURE_RAILS
FEATURE_WRITE_INLINE = 1 << 5  # USB4_WIRE_FEATURE_WRITE_INLINE: small writes in their WRITE_REQ
WRITE_INLINE_MAX = 256  # USB4_WIRE_WRITE_INLINE_MAX
FEATURE_XXH3 = 1 << 3  # USB4_WIRE_FEATURE_XXH3: DATA/ACK checked with XXH3
FEATURE_READ_INLINE = 1 << 6  # USB4_WIRE_FEATURE_READ_INLINE: small reads answered by READ_INLINE
READ_INLINE_MAX = 256  # USB4_WIRE_READ_INLINE_MAX
FEATURE_RNDV_EARLY = 1 << 7  # USB4_WIRE_FEATURE_RNDV_EARLY: rendezvous DATA before CTS
ROUND_EARLY = 0  # USB4_WIRE_ROUND_EARLY: DATA/CTS tag, may start before CTS
ROUND_AGAIN = 1  # USB4_WIRE_ROUND_AGAIN: DATA/CTS tag, from byte 0 after CTS
RAILS_MAX = 4  # USB4_WIRE_RAILS_MAX
REL_F_AUTH = 1 << 0  # USB4_REL_F_AUTH
REL_F_PROBE = 1 << 1  # USB4_REL_F_PROBE: an ACK asking "answer now"
REL_F_FIN = 1 << 2  # USB4_REL_F_FIN: an ACK saying "my endpoint closed"
REL_F_FRAG = 1 << 3  # USB4_REL_F_FRAG: DATA carrying a fragment of its seq
REL_F_XXH3 = 1 << 4  # USB4_REL_F_XXH3: DATA/ACK whose crc is XXH3's
FRAG_UNIT = 64  # USB4_WIRE_FRAG_UNIT
FEATURES = (FEATURE_PROBE | FEATURE_FRAG | FEATURE_WRITE_INLINE
            | FEATURE_XXH3 | FEATURE_READ_INLINE
            | FEATURE_RNDV_EARLY)  # USB4_WIRE_FEATURES: the optional ones we offer
ADDR_F_UNRESOLVED = 1 << 0  # USB4_ADDR_F_UNRESOLVED


@dataclasses.dataclass(frozen=True)
class Layout:
    """A C struct of the wire: its name and its fields in order, each with a
    ``struct`` code, packed without padding (the C side static-asserts the
    size, so no padding may hide in it).  Tests compare offsetof/sizeof
    of every field with the C compiler's."""

    name: str
    fields: tuple[tuple[str, str], ...]

    @property
    def codec(self) -> struct.Struct:
        return struct.Struct("<" + "".join(code for _, code in self.fields))

    @property
    def size(self) -> int:
        return self.codec.size

    def offsets(self) -> dict[str, tuple[int, int]]:
        """field -> (offset, size) in bytes."""
        found, off = {}, 0
        for name, code in self.fields:
            size = struct.calcsize("<" + code)
            found[name] = (off, size)
            off += size
        return found


# ---- CRC32C (Castagnoli) -------------------------------------------------

CRC32C_POLY = 0x82F63B78  # reflected


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (CRC32C_POLY if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC32C of ``data``, continuing ``crc`` (the CRC of what came before)."""
    table = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---- XXH3 (sessions that agreed on FEATURE_XXH3) ---------------------------

def xxh3_32(data: bytes) -> int:
    """The low 32 bits of XXH3_64bits(data) (seed 0): the check of a
    datagram flagged REL_F_XXH3.  python3-xxhash (or pip's xxhash) binds
    the same library the provider links; imported on first use, so
    decoding CRC32C datagrams needs no more than the standard library."""
    import xxhash  # pylint: disable=import-outside-toplevel

    return xxhash.xxh3_64_intdigest(data) & 0xFFFFFFFF


def datagram_check(zeroed: bytes, rel_type: int, flags: int) -> int:
    """The check a datagram's header names, over the datagram with its check
    field 0: XXH3 for a DATA or ACK flagged REL_F_XXH3, else CRC32C."""
    if flags & REL_F_XXH3 and rel_type in (RelType.DATA, RelType.ACK):
        return xxh3_32(zeroed)
    return crc32c(zeroed)


# ---- status values (FIN, ACK, ATOMIC_RESP ``data``) ------------------------

def status_to_wire(status: int) -> int:
    """A status (0 or -FI_E*, or anything a peer might send) as the u64 field."""
    return status & 0xFFFFFFFFFFFFFFFF


def status_from_wire(value: int) -> int:
    """The u64 ``data`` field of a FIN as the signed status it carries."""
    return value - (1 << 64) if value & (1 << 63) else value


# ---- endpoint address ------------------------------------------------------

ADDR_LEN = 56
ADDR_MAGIC = 0x34425355  # "USB4"
# address layout version (the struct's own ``version`` byte) per wire version
ADDR_LAYOUT = {1: 2, 2: 3, 3: 3}

# struct usb4_addr (wire version 1: include/usb4_core.h of commit 0948737)
ADDR_V1 = Layout("usb4_addr", (
    ("magic", "I"), ("version", "B"), ("udp_family", "B"), ("udp_port", "H"),
    ("host_id", "Q"), ("ep_id", "Q"), ("shm_pid", "I"), ("shm_fd", "i"),
    ("reg_fd", "i"), ("reserved", "I"), ("udp_ip", "16s")))
# struct usb4_wire_addr (wire version 2)
ADDR_V2 = Layout("usb4_wire_addr", (
    ("magic", "I"), ("version", "B"), ("proto", "B"), ("flags", "H"),
    ("host_id", "Q"), ("ep_id", "Q"), ("shm_pid", "I"), ("shm_inbox_fd", "i"),
    ("shm_reg_fd", "i"), ("udp_family", "B"), ("reserved", "B"), ("udp_port", "H"),
    ("udp_ip", "16s")))
_ADDR_V1 = ADDR_V1.codec
_ADDR_V2 = ADDR_V2.codec
assert _ADDR_V1.size == _ADDR_V2.size == ADDR_LEN


class WireError(ValueError):
    """Bytes that are not what they claim to be (short, bad magic, ...)."""


@dataclasses.dataclass
class Address:
    """An endpoint address (what fi_getname returns), either version.

    ``udp_ip`` is 16 bytes, network byte order, IPv4 in the first 4.
    ``proto`` is the wire version (version 1 addresses do not carry it: 1).
    """

    host_id: int
    ep_id: int
    wire_version: int = CURRENT_VERSION
    udp_family: int = 0  # 4, 6, or 0: no udp link
    udp_port: int = 0
    udp_ip: bytes = bytes(16)
    shm_pid: int = 0
    shm_inbox_fd: int = -1
    shm_reg_fd: int = -1
    flags: int = 0
    magic: int = ADDR_MAGIC
    layout: int | None = None  # the struct's version byte; None: per wire_version

    @classmethod
    def udp(cls, host_id: int, ep_id: int, ip: str, port: int,
            wire_version: int = CURRENT_VERSION) -> Address:
        """An address reachable only through the udp link at ip:port."""
        addr = ipaddress.ip_address(ip)
        raw = addr.packed.ljust(16, b"\0")
        return cls(host_id=host_id, ep_id=ep_id, wire_version=wire_version,
                   udp_family=addr.version, udp_port=port, udp_ip=raw)

    @classmethod
    def unresolved(cls, ip: str, port: int) -> Address:
        """What node and service name: IP and port only
        (usb4_wire_addr_init_unresolved)."""
        addr = cls.udp(0, 0, ip, port)
        addr.flags = ADDR_F_UNRESOLVED
        return addr

    @property
    def ip(self) -> str:
        """The udp address as text ("" without a udp link)."""
        if self.udp_family == 4:
            return str(ipaddress.IPv4Address(self.udp_ip[:4]))
        if self.udp_family == 6:
            return str(ipaddress.IPv6Address(self.udp_ip))
        return ""

    def pack(self) -> bytes:
        """The 56 bytes of this address in its wire version's layout."""
        layout = self.layout if self.layout is not None else ADDR_LAYOUT.get(
            self.wire_version, ADDR_LAYOUT[CURRENT_VERSION])
        ip = self.udp_ip.ljust(16, b"\0")
        if self.wire_version == 1:
            return _ADDR_V1.pack(self.magic, layout, self.udp_family, self.udp_port,
                                 self.host_id, self.ep_id, self.shm_pid,
                                 self.shm_inbox_fd, self.shm_reg_fd, 0, ip)
        return _ADDR_V2.pack(self.magic, layout, self.wire_version, self.flags,
                             self.host_id, self.ep_id, self.shm_pid,
                             self.shm_inbox_fd, self.shm_reg_fd, self.udp_family, 0,
                             self.udp_port, ip)

    @classmethod
    def unpack(cls, raw: bytes) -> Address:
        """Parses 56 bytes of either layout, told apart by the version byte."""
        if len(raw) != ADDR_LEN:
            raise WireError("address is %d bytes, want %d" % (len(raw), ADDR_LEN))
        magic, layout = struct.unpack_from("<IB", raw)
        if magic != ADDR_MAGIC:
            raise WireError("address magic %#x, want %#x" % (magic, ADDR_MAGIC))
        if layout == ADDR_LAYOUT[1]:
            (_, _, family, port, host_id, ep_id, pid, fd, reg_fd, _,
             ip) = _ADDR_V1.unpack(raw)
            return cls(host_id=host_id, ep_id=ep_id, wire_version=1, udp_family=family,
                       udp_port=port, udp_ip=ip, shm_pid=pid, shm_inbox_fd=fd,
                       shm_reg_fd=reg_fd, magic=magic, layout=layout)
        if layout == ADDR_LAYOUT[2]:
            (_, _, proto, flags, host_id, ep_id, pid, fd, reg_fd, family, _, port,
             ip) = _ADDR_V2.unpack(raw)
            return cls(host_id=host_id, ep_id=ep_id, wire_version=proto,
                       udp_family=family, udp_port=port, udp_ip=ip, shm_pid=pid,
                       shm_inbox_fd=fd, shm_reg_fd=reg_fd, flags=flags, magic=magic,
                       layout=layout)
        raise WireError("address layout version %d unknown" % layout)


# ---- core frames -----------------------------------------------------------

class FrameType(enum.IntEnum):
    """enum usb4_frame_type."""

    EAGER = 1
    RTS = 2
    FIN = 3
    ACK = 4
    WRITE_DATA = 5
    CTS = 6
    DATA = 7
    WRITE_REQ = 8
    READ_REQ = 9
    ATOMIC_REQ = 10
    ATOMIC_RESP = 11
    READ_INLINE = 12  # a small read's bytes, its whole answer (FEATURE_READ_INLINE)


class FrameFlag(enum.IntFlag):
    """USB4_WF_*."""

    TAGGED = 1 << 0
    CQ_DATA = 1 << 1
    ACK_REQ = 1 << 2
    READ_RESP = 1 << 3


HDR_LAYOUT = Layout("usb4_wire_hdr", (
    ("version", "B"), ("type", "B"), ("flags", "H"), ("payload_len", "I"),
    ("src_id", "Q"), ("tag", "Q"), ("data", "Q"), ("msg_id", "Q"), ("total_len", "Q")))
IOV_LAYOUT = Layout("usb4_wire_iov", (("addr", "Q"), ("len", "Q")))
RTS_V1 = Layout("usb4_wire_rts", (("pid", "I"), ("iov_count", "I")))
RTS_V2 = Layout("usb4_wire_rts", (("iov_count", "I"), ("reserved", "I")))
RMA_SEG_LAYOUT = Layout("usb4_wire_rma_seg", (("addr", "Q"), ("len", "Q"), ("key", "Q")))
ATOMIC_LAYOUT = Layout("usb4_wire_atomic", (
    ("kind", "B"), ("op", "B"), ("datatype", "H"), ("count", "I"), ("addr", "Q"),
    ("key", "Q")))
FRAME_HDR = HDR_LAYOUT.codec
WIRE_IOV = IOV_LAYOUT.codec
RTS_HEAD = RTS_V2.codec  # the same codes in version 1: pid, iov_count
RMA_SEG = RMA_SEG_LAYOUT.codec
ATOMIC_HEAD = ATOMIC_LAYOUT.codec
assert FRAME_HDR.size == 48 and WIRE_IOV.size == 16 and RTS_HEAD.size == 8
assert RMA_SEG.size == 24 and ATOMIC_HEAD.size == 24

RTS_MAX_IOV = 16
RMA_MAX_SEG = 4


@dataclasses.dataclass
class Frame:
    """A core frame: the 48-byte header's fields and the payload after it.

    ``payload_len`` is taken from the payload when packing; when parsing it
    is what the header said.
    """

    type: int
    src_id: int = 0
    flags: int = 0
    tag: int = 0
    data: int = 0
    msg_id: int = 0
    total_len: int = 0
    payload: bytes = b""
    version: int = CURRENT_VERSION
    payload_len: int | None = None

    def pack(self) -> bytes:
        length = len(self.payload) if self.payload_len is None else self.payload_len
        return FRAME_HDR.pack(self.version, self.type, self.flags, length, self.src_id,
                              self.tag, self.data & 0xFFFFFFFFFFFFFFFF, self.msg_id,
                              self.total_len) + self.payload

    @classmethod
    def unpack(cls, raw: bytes) -> Frame:
        """Header fields and payload; the caller judges them (see check())."""
        if len(raw) < FRAME_HDR.size:
            raise WireError("frame is %d bytes, shorter than its header" % len(raw))
        (version, ftype, flags, length, src_id, tag, data, msg_id,
         total_len) = FRAME_HDR.unpack_from(raw)
        return cls(type=ftype, src_id=src_id, flags=flags, tag=tag, data=data,
                   msg_id=msg_id, total_len=total_len, payload=raw[FRAME_HDR.size:],
                   version=version, payload_len=length)

    @property
    def type_name(self) -> str:
        try:
            return FrameType(self.type).name
        except ValueError:
            return "type%d" % self.type

    @property
    def status(self) -> int:
        """``data`` as the signed status of a FIN, ACK or ATOMIC_RESP."""
        return status_from_wire(self.data)

    def check(self) -> None:
        """What usb4_wire_parse checks first (version aside): type, flags, length."""
        if not 1 <= self.type <= max(FrameType):
            raise WireError("frame type %d" % self.type)
        if self.flags & ~int(FrameFlag.TAGGED | FrameFlag.CQ_DATA | FrameFlag.ACK_REQ
                             | FrameFlag.READ_RESP):
            raise WireError("frame flags %#x" % self.flags)
        if self.payload_len is not None and self.payload_len != len(self.payload):
            raise WireError("payload_len %d, %d bytes follow"
                            % (self.payload_len, len(self.payload)))


@dataclasses.dataclass
class Rts:
    """An RTS payload: where the message waits (segments only for links that
    read the sender's memory).  ``pid`` exists in wire version 1 only."""

    iovs: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (addr, len)
    pid: int = 0

    def pack(self, wire_version: int = CURRENT_VERSION) -> bytes:
        if wire_version == 1:
            head = RTS_HEAD.pack(self.pid, len(self.iovs))
        else:
            head = RTS_HEAD.pack(len(self.iovs), 0)
        return head + b"".join(WIRE_IOV.pack(a, n) for a, n in self.iovs)

    @classmethod
    def unpack(cls, payload: bytes, wire_version: int = CURRENT_VERSION) -> Rts:
        if len(payload) < RTS_HEAD.size:
            raise WireError("RTS payload of %d bytes" % len(payload))
        first, second = RTS_HEAD.unpack_from(payload)
        pid, count = (first, second) if wire_version == 1 else (0, first)
        if count > RTS_MAX_IOV or len(payload) != RTS_HEAD.size + count * WIRE_IOV.size:
            raise WireError("RTS of %d bytes names %d segments" % (len(payload), count))
        iovs = [WIRE_IOV.unpack_from(payload, RTS_HEAD.size + i * WIRE_IOV.size)
                for i in range(count)]
        return cls(iovs=iovs, pid=pid)


def pack_rma_segs(segs: list[tuple[int, int, int]]) -> bytes:
    """WRITE_REQ / READ_REQ payload: (addr, len, key) segments."""
    return b"".join(RMA_SEG.pack(a, n, k) for a, n, k in segs)


def unpack_rma_segs(payload: bytes, inline: int = 0) -> list[tuple[int, int, int]]:
    """The segments of a request; inline: a WRITE_REQ's tag, the bytes of
    the write that follow them (FEATURE_WRITE_INLINE)."""
    if inline:
        if inline > WRITE_INLINE_MAX or inline >= len(payload):
            raise WireError("inline write of %d bytes in %d" % (inline, len(payload)))
        payload = payload[:-inline]
    if len(payload) % RMA_SEG.size or not payload or \
            len(payload) // RMA_SEG.size > RMA_MAX_SEG:
        raise WireError("RMA request payload of %d bytes" % len(payload))
    return [RMA_SEG.unpack_from(payload, off)
            for off in range(0, len(payload), RMA_SEG.size)]


def fin(src_id: int, msg_id: int, status: int = 0, total_len: int = 0,
        wire_version: int = CURRENT_VERSION) -> Frame:
    """The FIN that ends an operation of the receiver's with status."""
    return Frame(type=FrameType.FIN, src_id=src_id, msg_id=msg_id,
                 data=status_to_wire(status), total_len=total_len,
                 version=wire_version)


def eager(src_id: int, payload: bytes, tag: int = 0, tagged: bool = True,
          wire_version: int = CURRENT_VERSION) -> Frame:
    """A whole message in one frame."""
    return Frame(type=FrameType.EAGER, src_id=src_id,
                 flags=int(FrameFlag.TAGGED) if tagged else 0, tag=tag,
                 total_len=len(payload), payload=payload, version=wire_version)


# ---- the reliability header (rel) ------------------------------------------

class RelType(enum.IntEnum):
    """enum usb4_rel_type (REJECT from wire version 2)."""

    HELLO = 1
    HELLO_ACK = 2
    DATA = 3
    ACK = 4
    REJECT = 5


REL_LAYOUT = Layout("usb4_wire_rel", (
    ("version", "B"), ("type", "B"), ("flags", "H"), ("crc", "I"), ("src_id", "Q"),
    ("dst_id", "Q"), ("seq", "I"), ("ack", "I"), ("sack", "Q"), ("window", "I"),
    ("len", "I")))
HELLO_LAYOUT = Layout("usb4_wire_hello", (
    ("proto", "H"), ("reserved", "H"), ("features", "I"), ("datagram_max", "I"),
    ("reserved2", "I")))
HELLO_LAYOUT_V3 = Layout("usb4_wire_hello", HELLO_LAYOUT.fields + (("nonce", "16s"),))
AUTH_LAYOUT = Layout("usb4_wire_auth", (("pn", "Q"), ("tag", "16s")))
FRAG_LAYOUT = Layout("usb4_wire_frag", (("offset", "I"), ("total", "I")))
REL_HDR = REL_LAYOUT.codec
HELLO = HELLO_LAYOUT.codec
HELLO_V3 = HELLO_LAYOUT_V3.codec
AUTH_TRAILER = AUTH_LAYOUT.codec
assert REL_HDR.size == 48 and HELLO.size == 16 and HELLO_V3.size == 32
assert AUTH_TRAILER.size == 24
_CRC_OFFSET = 4


def rel_types(wire_version: int) -> tuple[RelType, ...]:
    """The rel types a version knows."""
    return tuple(t for t in RelType if wire_version >= 2 or t != RelType.REJECT)


def hello_has_payload(wire_version: int) -> bool:
    """Whether HELLO/HELLO_ACK/REJECT carry struct usb4_wire_hello."""
    return wire_version >= 2


@dataclasses.dataclass
class Hello:
    """struct usb4_wire_hello: the payload of HELLO, HELLO_ACK and REJECT
    (v2; v3 adds the nonce)."""

    proto: int = CURRENT_VERSION
    features: int = 0
    datagram_max: int = 0
    nonce: bytes = bytes(16)

    def pack(self, wire_version: int = CURRENT_VERSION) -> bytes:
        if wire_version == 2:
            return HELLO.pack(self.proto, 0, self.features, self.datagram_max, 0)
        return HELLO_V3.pack(self.proto, 0, self.features, self.datagram_max, 0,
                             self.nonce)

    @classmethod
    def unpack(cls, payload: bytes) -> Hello:
        if len(payload) < HELLO.size:
            raise WireError("hello payload of %d bytes" % len(payload))
        proto, _, features, datagram_max, _ = HELLO.unpack_from(payload)
        nonce = payload[HELLO.size:HELLO_V3.size] if len(payload) >= HELLO_V3.size \
            else bytes(16)
        return cls(proto=proto, features=features, datagram_max=datagram_max,
                   nonce=nonce)


@dataclasses.dataclass
class RelDatagram:
    """One datagram of the udp link: rel header fields and payload.

    ``len`` and ``crc`` are computed by pack() unless given; unpack() keeps
    what the bytes said and ``crc_ok`` tells whether the CRC matched.
    """

    type: int
    src_id: int
    dst_id: int
    seq: int = 0
    ack: int = 0
    sack: int = 0
    window: int = 0
    payload: bytes = b""
    version: int = CURRENT_VERSION
    flags: int = 0
    len: int | None = None
    crc: int | None = None
    crc_ok: bool = True
    raw: bytes = b""  # the bytes unpack() read
    trailer: bytes = b""  # struct usb4_wire_auth when flags has REL_F_AUTH


    @property
    def authenticated(self) -> bool:
        return bool(self.flags & REL_F_AUTH)

    def pack(self) -> bytes:
        """The bytes; an authenticated datagram (REL_F_AUTH) gets crc 0 and
        ``trailer`` (whatever it holds: only a key holder makes a valid one)."""
        length = len(self.payload) if self.len is None else self.len
        head = REL_HDR.pack(self.version, self.type, self.flags, 0, self.src_id,
                            self.dst_id, self.seq & 0xFFFFFFFF, self.ack & 0xFFFFFFFF,
                            self.sack, self.window, length)
        if self.crc is not None:
            crc = self.crc
        else:
            crc = 0 if self.authenticated else \
                datagram_check(head + self.payload, self.type, self.flags)
        return head[:_CRC_OFFSET] + struct.pack("<I", crc) + \
            head[_CRC_OFFSET + 4:] + self.payload + self.trailer

    @classmethod
    def unpack(cls, raw: bytes) -> RelDatagram:
        if len(raw) < REL_HDR.size:
            raise WireError("datagram of %d bytes, shorter than rel's header" % len(raw))
        (version, rtype, flags, crc, src_id, dst_id, seq, ack, sack, window,
         length) = REL_HDR.unpack_from(raw)
        body, trailer = raw[REL_HDR.size:], b""
        if flags & REL_F_AUTH and len(body) >= AUTH_TRAILER.size:
            body, trailer = body[:-AUTH_TRAILER.size], body[-AUTH_TRAILER.size:]
        zeroed = raw[:_CRC_OFFSET] + bytes(4) + raw[_CRC_OFFSET + 4:]
        return cls(type=rtype, src_id=src_id, dst_id=dst_id, seq=seq, ack=ack, sack=sack,
                   window=window, payload=body, version=version,
                   flags=flags, len=length, crc=crc,
                   crc_ok=datagram_check(zeroed, rtype, flags) == crc,
                   raw=bytes(raw), trailer=trailer)

    @property
    def packet_number(self) -> int | None:
        """The trailer's packet number (authenticated datagrams)."""
        return AUTH_TRAILER.unpack(self.trailer)[0] if self.trailer else None

    @property
    def type_name(self) -> str:
        try:
            return RelType(self.type).name
        except ValueError:
            return "type%d" % self.type

    @property
    def hello(self) -> Hello | None:
        """The handshake payload, when the datagram carries one."""
        if self.type in (RelType.HELLO, RelType.HELLO_ACK, RelType.REJECT) and \
                len(self.payload) >= HELLO.size:
            return Hello.unpack(self.payload)
        return None

    @property
    def frame(self) -> Frame:
        """The core frame a DATA datagram carries."""
        return Frame.unpack(self.payload)

    def describe(self) -> str:
        pn = self.packet_number
        check = " AUTH pn %d" % pn if pn is not None else \
            ("" if self.crc_ok else " BAD-CRC")
        text = "%s v%d %016x->%016x seq %d ack %d win %d len %d%s" % (
            self.type_name, self.version, self.src_id, self.dst_id, self.seq, self.ack,
            self.window, len(self.payload), check)
        hello = self.hello
        if hello is not None:
            text += " proto %d features %#x dgmax %d" % (hello.proto, hello.features,
                                                          hello.datagram_max)
        return text


def handshake(wire_version: int, rel_type: int, src_id: int, dst_id: int, isn: int,
              window: int = 64, ack: int = 0, proto: int | None = None,
              features: int = 0, datagram_max: int = 65507,
              header_version: int | None = None,
              nonce: bytes = bytes(16)) -> RelDatagram:
    """HELLO, HELLO_ACK or REJECT as a peer of ``wire_version`` sends it.

    Version 1 has no payload (and no REJECT); later versions carry
    struct usb4_wire_hello with ``proto`` (default: wire_version).
    ``header_version`` overrides the header's version byte (default:
    wire_version).
    """
    payload = b""
    if hello_has_payload(wire_version):
        payload = Hello(proto=wire_version if proto is None else proto,
                        features=features, datagram_max=datagram_max,
                        nonce=nonce).pack(wire_version)
    return RelDatagram(type=rel_type, src_id=src_id, dst_id=dst_id, seq=isn, ack=ack,
                       window=window, payload=payload,
                       version=wire_version if header_version is None else header_version)


def reject(src_id: int, dst_id: int, wire_version: int = CURRENT_VERSION,
           features: int | None = None, ack: int = 0) -> RelDatagram:
    """The REJECT usb4_rel_reject() builds: our version in header and payload,
    our optional features (``FEATURES``; none for another version unless
    given), every other field 0 (no seq, no window, no datagram_max); ``ack``
    is the seq of the HELLO it answers (usb4_rel_reject_cfg, from version
    3)."""
    if features is None:
        features = FEATURES if wire_version == CURRENT_VERSION else 0
    return RelDatagram(type=RelType.REJECT, src_id=src_id, dst_id=dst_id, ack=ack,
                       payload=Hello(proto=wire_version,
                                     features=features).pack(wire_version),
                       version=wire_version)


# ---- who is bound at IP:port (RESOLVE, the udp link) -----------------------

class ResolveType(enum.IntEnum):
    """enum usb4_resolve_type: in the byte where rel datagrams have their type."""
    QUERY = 0x51
    ANSWER = 0x41


RESOLVE_LAYOUT = Layout("usb4_wire_resolve", (
    ("version", "B"), ("type", "B"), ("flags", "H"), ("reserved", "I"),
    ("nonce", "16s"), ("addr", "56s"), ("tag", "16s")))
RESOLVE = RESOLVE_LAYOUT.codec
RESOLVE_TAGGED_LEN = RESOLVE_LAYOUT.offsets()["tag"][0]
assert RESOLVE.size == 96


@dataclasses.dataclass
class Resolve:
    """A RESOLVE query (``addr`` None) or answer; ``tag`` is the keyed
    BLAKE2b of the first RESOLVE_TAGGED_LEN bytes under the job key when
    ``flags`` has REL_F_AUTH."""

    type: ResolveType
    nonce: bytes
    addr: Address | None = None
    flags: int = 0
    tag: bytes = bytes(16)
    version: int = CURRENT_VERSION

    def pack(self) -> bytes:
        raw = self.addr.pack() if self.addr else bytes(ADDR_LEN)
        return RESOLVE.pack(self.version, self.type, self.flags, 0, self.nonce, raw,
                            self.tag)

    @classmethod
    def unpack(cls, raw: bytes) -> Resolve:
        if len(raw) != RESOLVE.size:
            raise WireError("resolve is %d bytes, want %d" % (len(raw), RESOLVE.size))
        version, type_, flags, _, nonce, addr, tag = RESOLVE.unpack(raw)
        return cls(type=ResolveType(type_), nonce=nonce, flags=flags, tag=tag,
                   version=version,
                   addr=Address.unpack(addr) if type_ == ResolveType.ANSWER else None)


def resolve_query(nonce: bytes) -> bytes:
    """The 96 bytes of a RESOLVE query with this 16-byte nonce."""
    return Resolve(type=ResolveType.QUERY, nonce=nonce).pack()


# ---- every layout of a version, for tools and the tests that check them ----

# ---- rails: the rail list after a hello ------------------------------------

RAIL_LAYOUT = Layout("usb4_wire_rail", (
    ("family", "B"), ("reserved", "B"), ("port", "H"), ("ip", "16s")))
RAILS_LAYOUT = Layout("usb4_wire_rails", (
    ("count", "B"), ("reserved", "3s"), ("rail", "%ds" % (20 * RAILS_MAX))))
RAIL = RAIL_LAYOUT.codec
assert RAIL.size == 20 and RAILS_LAYOUT.codec.size == 84


def pack_rails(rails: list[tuple[str, int]]) -> bytes:
    """The rail list of (ip, port) pairs as a HELLO carries it."""
    if not 1 <= len(rails) <= RAILS_MAX:
        raise WireError("%d rails" % len(rails))
    out = bytes([len(rails)]) + bytes(3)
    for ip, port in rails:
        a = ipaddress.ip_address(ip)
        out += RAIL.pack(a.version, 0, port, a.packed.ljust(16, b"\0"))
    return out


def unpack_rails(data: bytes) -> list[tuple[str, int]]:
    """(ip, port) pairs of a rail list; WireError when malformed (the
    provider pairs nothing then)."""
    if len(data) < 4 or not 1 <= data[0] <= RAILS_MAX or len(data) != 4 + 20 * data[0]:
        raise WireError("rail list of %d bytes" % len(data))
    rails = []
    for i in range(data[0]):
        family, _, port, ip = RAIL.unpack_from(data, 4 + 20 * i)
        if family not in (4, 6) or not port:
            raise WireError("rail %d: family %d port %d" % (i, family, port))
        raw = ip[:4] if family == 4 else ip
        rails.append((str(ipaddress.ip_address(raw)), port))
    return rails


LAYOUTS: dict[int, tuple[Layout, ...]] = {
    1: (ADDR_V1, HDR_LAYOUT, IOV_LAYOUT, RTS_V1, RMA_SEG_LAYOUT, ATOMIC_LAYOUT,
        REL_LAYOUT),
    2: (ADDR_V2, HDR_LAYOUT, IOV_LAYOUT, RTS_V2, RMA_SEG_LAYOUT, ATOMIC_LAYOUT,
        REL_LAYOUT, HELLO_LAYOUT),
    3: (ADDR_V2, HDR_LAYOUT, IOV_LAYOUT, RTS_V2, RMA_SEG_LAYOUT, ATOMIC_LAYOUT,
        REL_LAYOUT, HELLO_LAYOUT_V3, AUTH_LAYOUT, RESOLVE_LAYOUT, RAIL_LAYOUT,
        RAILS_LAYOUT, FRAG_LAYOUT),
}
