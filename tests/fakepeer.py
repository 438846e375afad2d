"""A fake remote usb4 endpoint in Python: rel over one UDP socket.

The provider's udp link talks to endpoints on other hosts through rel (the
reliability header of prov_usb4/src/wire.h).  ``FakePeer`` is such an
endpoint made of a socket and python/usb4fabric/wire.py, driven step by
step by a test, so the test decides every datagram the provider sees::

    fake = FakePeer.facing(driver_addr)        # speaks the driver's version
    driver.insert(fake.address)                # 56 bytes, another host_id
    fake.accept_handshake()                    # the driver's HELLO, our HELLO_ACK
    rts = fake.next_frame(FrameType.RTS)       # in order, acknowledged
    fake.send_frame(wire.fin(fake.ep_id, rts.msg_id, status=-12345,
                             wire_version=fake.wire_version))
    fake.wait_acked()

What it does by itself whenever it receives (``pump``): answers a HELLO with
HELLO_ACK (unless ``answer_hello`` is False; with ``refuse_with`` the
datagram given there, a REJECT say, and learns nothing), learns the driver's first
sequence number from a HELLO or HELLO_ACK, acknowledges every DATA at once,
hands DATA payloads up in order (as ``wire.Frame``), takes acks for its own
DATA and sends again what stays unacknowledged for ``RTO`` seconds.  A
datagram with a bad CRC, or not from the driver's incarnation to ours, is
only recorded.  ``recv_datagram`` and ``wait_datagram`` give the raw
datagrams instead, for tests that answer themselves (REJECT, a HELLO of
another version).

Every datagram in and out is traced with a timestamp; ``describe()`` gives
the trace for failure messages.  Waits are bounded: a wait that times out
raises ``FakePeerTimeout`` carrying the trace.
"""

from __future__ import annotations

import collections
import os
import select
import socket
import time
from typing import Callable

from usb4fabric import wire
from usb4fabric.wire import Address, Frame, RelDatagram, RelType

RTO = 0.2  # seconds before our unacknowledged DATA goes again
WINDOW = 64  # frames we advertise
RECV_MAX = 65536  # bytes; the largest datagram the driver may send
DEFAULT_TIMEOUT = 5.0  # seconds, every wait unless told
SEQ_MOD = 1 << 32


def _seq_diff(a: int, b: int) -> int:
    """a - b in serial-number arithmetic (as rel's int32_t difference)."""
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= SEQ_MOD // 2 else d


def _random_id() -> int:
    while True:
        value = int.from_bytes(os.urandom(8), "little")
        if value:
            return value


class FakePeerTimeout(AssertionError):
    """A bounded wait ended without what it waited for."""


class FakePeer:
    """One fake endpoint: its own id, host id, socket, and rel state."""

    def __init__(self, remote: Address, wire_version: int | None = None,
                 host_id: int | None = None, ep_id: int | None = None,
                 ip: str = "127.0.0.1") -> None:
        self.remote = remote
        self.remote_sockaddr = (remote.ip, remote.udp_port)
        self.wire_version = wire_version or remote.wire_version
        self.ep_id = ep_id or _random_id()
        # Another host, so the provider reaches us through its udp link.
        self.host_id = host_id if host_id is not None else remote.host_id ^ 0x5A5A5A5A5A5A5A5A
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.port = self.sock.getsockname()[1]
        self.ip = ip
        self.answer_hello = True
        # When set, every HELLO is answered with this (a peer that refuses us:
        # it refuses every HELLO again) and the handshake never completes.
        self.refuse_with: RelDatagram | None = None
        self.isn = int.from_bytes(os.urandom(4), "little")
        self.snd_una = self.snd_nxt = self.isn
        self.unacked: dict[int, tuple[bytes, float]] = {}  # seq -> (payload, sent)
        self.remote_isn: int | None = None
        self.rcv_nxt = 0
        self.held: dict[int, bytes] = {}  # out of order DATA payloads
        self.frames: collections.deque[Frame] = collections.deque()
        self.received: list[RelDatagram] = []  # every datagram, in arrival order
        self.ignored: list[tuple[str, RelDatagram]] = []
        self.t0 = time.monotonic()
        self.trace: list[str] = []

    @classmethod
    def facing(cls, driver_addr: bytes, **kwargs) -> FakePeer:
        """A fake peer for the endpoint whose fi_getname bytes these are,
        speaking its wire version unless told otherwise."""
        return cls(Address.unpack(driver_addr), **kwargs)

    # ---- identity ----

    def address_of(self, ep_id: int | None = None) -> bytes:
        """Our 56-byte address (or one with another ep_id at our socket)."""
        return Address.udp(self.host_id, self.ep_id if ep_id is None else ep_id,
                           self.ip, self.port, wire_version=self.wire_version).pack()

    @property
    def address(self) -> bytes:
        return self.address_of()

    def close(self) -> None:
        self.sock.close()

    # ---- tracing ----

    def _log(self, text: str) -> None:
        self.trace.append("%8.4f %s" % (time.monotonic() - self.t0, text))

    def describe(self) -> str:
        head = "fake peer %016x (wire v%d) at %s:%d, driver %016x at %s:%d" % (
            self.ep_id, self.wire_version, self.ip, self.port, self.remote.ep_id,
            self.remote_sockaddr[0], self.remote_sockaddr[1])
        return "\n".join([head] + self.trace[-200:])

    def _timeout(self, what: str, timeout: float) -> FakePeerTimeout:
        return FakePeerTimeout("fake peer: no %s within %.1f s\n%s"
                               % (what, timeout, self.describe()))

    # ---- raw datagrams ----

    def send_raw(self, data: bytes, note: str = "") -> None:
        self.sock.sendto(data, self.remote_sockaddr)
        self._log("-> %s" % (note or "%d raw bytes" % len(data)))

    def send(self, dgram: RelDatagram) -> bytes:
        data = dgram.pack()
        self.send_raw(data, dgram.describe())
        return data

    def recv_datagram(self, timeout: float) -> RelDatagram | None:
        """The next datagram from anywhere, unhandled; None after timeout."""
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not ready:
            return None
        data, sender = self.sock.recvfrom(RECV_MAX)
        try:
            dgram = RelDatagram.unpack(data)
        except wire.WireError as err:
            self._log("<- %d bytes from %s: %s" % (len(data), sender, err))
            return None
        self.received.append(dgram)
        self._log("<- %s" % dgram.describe())
        return dgram

    def wait_datagram(self, rel_type: int, timeout: float = DEFAULT_TIMEOUT) -> RelDatagram:
        """The next datagram of rel_type, unhandled; others are handled."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._timeout(RelType(rel_type).name, timeout)
            self._retransmit()
            dgram = self.recv_datagram(min(left, RTO / 2))
            if dgram is None:
                continue
            if dgram.type == rel_type:
                return dgram
            self.handle(dgram)

    # ---- rel ----

    def _header(self, rel_type: int, seq: int, payload: bytes = b"") -> RelDatagram:
        return RelDatagram(type=rel_type, src_id=self.ep_id, dst_id=self.remote.ep_id,
                           seq=seq, ack=self.rcv_nxt if self.remote_isn is not None else 0,
                           window=WINDOW, payload=payload, version=self.wire_version)

    def send_hello(self, rel_type: int = RelType.HELLO) -> bytes:
        """Our HELLO (or HELLO_ACK) in our wire version."""
        return self.send(wire.handshake(self.wire_version, rel_type, self.ep_id,
                                        self.remote.ep_id, self.isn, window=WINDOW,
                                        ack=self.rcv_nxt if self.remote_isn is not None
                                        else 0))

    def _ack_now(self) -> None:
        self.send(self._header(RelType.ACK, self.snd_nxt))

    def _from_driver(self, dgram: RelDatagram) -> str | None:
        """Why a datagram is not the driver's rel talking to us, or None."""
        if not dgram.crc_ok:
            return "bad CRC"
        if dgram.version != self.wire_version:
            return "version %d" % dgram.version
        if dgram.dst_id != self.ep_id or dgram.src_id != self.remote.ep_id:
            return "ids %016x->%016x" % (dgram.src_id, dgram.dst_id)
        return None

    def handle(self, dgram: RelDatagram) -> None:
        """What rel does with a datagram from the driver."""
        why = self._from_driver(dgram)
        if why:
            self.ignored.append((why, dgram))
            self._log("   ignored: %s" % why)
            return
        if dgram.type == RelType.HELLO and self.refuse_with is not None:
            self.send(self.refuse_with)
        elif dgram.type in (RelType.HELLO, RelType.HELLO_ACK):
            self._learn(dgram)
            if dgram.type == RelType.HELLO and self.answer_hello:
                self.send_hello(RelType.HELLO_ACK)
        elif dgram.type in (RelType.DATA, RelType.ACK):
            if self.remote_isn is None:
                self.ignored.append(("before the handshake", dgram))
                return
            self._on_ack(dgram.ack)
            if dgram.type == RelType.DATA:
                self._on_data(dgram.seq, dgram.payload)
        else:
            self.ignored.append(("type %s" % dgram.type_name, dgram))

    def _learn(self, dgram: RelDatagram) -> None:
        if self.remote_isn is None:
            self.remote_isn = self.rcv_nxt = dgram.seq

    def _on_ack(self, ack: int) -> None:
        advance = (ack - self.snd_una) % SEQ_MOD
        if 0 < advance <= (self.snd_nxt - self.snd_una) % SEQ_MOD:
            for i in range(advance):
                self.unacked.pop((self.snd_una + i) % SEQ_MOD, None)
            self.snd_una = ack

    def _on_data(self, seq: int, payload: bytes) -> None:
        diff = _seq_diff(seq, self.rcv_nxt)
        if diff == 0:
            self._deliver(payload)
            while self.rcv_nxt in self.held:
                self._deliver(self.held.pop(self.rcv_nxt))
        elif diff > 0:
            self.held[seq] = payload
        self._ack_now()  # duplicates too: our earlier ack may be lost

    def _deliver(self, payload: bytes) -> None:
        self.rcv_nxt = (self.rcv_nxt + 1) % SEQ_MOD
        try:
            frame = Frame.unpack(payload)
        except wire.WireError as err:
            self._log("   payload is no frame: %s" % err)
            return
        self.frames.append(frame)
        self._log("   frame %s msg_id %#x len %d data %#x" % (
            frame.type_name, frame.msg_id, frame.total_len, frame.data))

    def _retransmit(self) -> None:
        now = time.monotonic()
        for seq, (payload, sent) in sorted(self.unacked.items()):
            if now - sent >= RTO:
                self.send(self._header(RelType.DATA, seq, payload))
                self.unacked[seq] = (payload, now)

    def pump(self, timeout: float, until: Callable[[], bool] | None = None) -> bool:
        """Handles datagrams for up to timeout seconds or until until() holds;
        returns whether it does."""
        deadline = time.monotonic() + timeout
        while True:
            if until is not None and until():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return until is None
            self._retransmit()
            dgram = self.recv_datagram(min(left, RTO / 2, 0.05))
            if dgram is not None:
                self.handle(dgram)

    # ---- steps ----

    def accept_handshake(self, timeout: float = DEFAULT_TIMEOUT) -> RelDatagram:
        """Waits for the driver's HELLO and answers it; returns the HELLO."""
        hello = self.wait_datagram(RelType.HELLO, timeout)
        self.handle(hello)
        if self.remote_isn is None:
            raise self._timeout("acceptable HELLO", timeout)
        return hello

    def connect(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Our HELLO, until we know the driver's first sequence number."""
        deadline = time.monotonic() + timeout
        while self.remote_isn is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._timeout("HELLO_ACK", timeout)
            self.send_hello(RelType.HELLO)
            self.pump(min(left, RTO), until=lambda: self.remote_isn is not None)

    def send_frame(self, frame: Frame | bytes) -> int:
        """One core frame as the next DATA; returns its sequence number."""
        if self.remote_isn is None:
            raise AssertionError("send_frame before the handshake\n" + self.describe())
        payload = frame.pack() if isinstance(frame, Frame) else frame
        seq = self.snd_nxt
        self.snd_nxt = (self.snd_nxt + 1) % SEQ_MOD
        self.unacked[seq] = (payload, time.monotonic())
        what = frame.type_name if isinstance(frame, Frame) else "raw"
        self._log("   frame %s as seq %d" % (what, seq))
        self.send(self._header(RelType.DATA, seq, payload))
        return seq

    def next_frame(self, frame_type: int | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> Frame:
        """The next core frame the driver sent (of frame_type: others are
        skipped), in order."""
        deadline = time.monotonic() + timeout
        while True:
            while self.frames:
                frame = self.frames.popleft()
                if frame_type is None or frame.type == frame_type:
                    return frame
            left = deadline - time.monotonic()
            if left <= 0 or not self.pump(left, until=lambda: bool(self.frames)):
                what = wire.FrameType(frame_type).name if frame_type else "frame"
                raise self._timeout(what, timeout)

    def wait_acked(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Until the driver acknowledged every DATA we sent."""
        if not self.pump(timeout, until=lambda: not self.unacked):
            raise self._timeout("ack of seq %s" % sorted(self.unacked), timeout)
