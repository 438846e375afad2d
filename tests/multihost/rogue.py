"""The third host of test_rogue_host.py: an attacker, a wire observer, a victim.

Run as a program inside a host of the hub cluster (usb4fabric/nshosts.py)::

    rogue.py attack NAME --dir D [--spoof] [--keyed]   in host C
    rogue.py observe --dir D                           in host A (sees the wire)
    rogue.py victim --dir D                            in host B (memory to steal)

The job (usb4_xpeer transfer --rogue, client in A, server in B) publishes
D/client.info and D/server.info; the attacker reads the endpoint ids, the
udp ports and the server's guard region (address and key: all of it in
clear on the wire) from there.  Protocol with the test and the job: the
attacker creates D/go (after racing the handshake, for ``race``), waits for
the test's D/attack.start (the job is halfway, reading live), attacks,
prints one JSON line of what it did, and exits; the test then measures and
creates D/attack.done, which lets the job finish.

Frames and rel headers come from python/usb4fabric/wire.py; tests/fakepeer.py
is the attacker's own rel session (its own id, from its own address).
``--spoof`` sends as host A (A's IP and udp port, through a raw IPv4
socket: the IPv4 and UDP headers are built here, the UDP checksum 0).
``--keyed`` says the job runs with a key the attacker does not know: its
own session cannot complete a handshake, so its frames go out anyway, half
of them dressed as authenticated (the auth flag and a trailer of random
bytes where the MAC would be).

The observer (an AF_PACKET socket on A's tb0, the hub) appends every
datagram between the two job endpoints to D/capture.bin; the attacker
reads sequence numbers and whole datagrams to replay from there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import select
import socket
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: fakepeer
sys.path.insert(0, str(HERE.parents[1] / "python"))  # usb4fabric
import fakepeer  # noqa: E402
from usb4fabric import wire  # noqa: E402
from usb4fabric.wire import Frame, FrameFlag, FrameType, RelDatagram, RelType  # noqa: E402

# struct info_file of tests/xhost/usb4_xpeer.c
INFO = struct.Struct("<256sQQQQqQQQ")
TAG_DATA, TAG_BAIT, TAG_NOBODY = 0x1000, 0x3000, 0x4000  # usb4_xpeer's, and one nobody posts
WAIT_S = 60.0  # longest wait for a file of the job or the test
AUTH_FLAG = getattr(wire, "REL_F_AUTH", 1)  # USB4_REL_F_AUTH: rel flag bit 0
AUTH_TRAILER = 24  # u64 packet number + 16-byte tag
SECRET = b"VICTIM-SECRET-42" * 256  # 4 KiB in the victim process
ATTACKER_BYTES = b"ROGUE-HOST-BYTES" * 256  # 4 KiB the attacker writes
CAPTURE = struct.Struct("<BI")  # direction (0: A->B, 1: B->A), length
CAPTURE_MAX = 4000  # datagrams the observer keeps
FLOOD_HELLOS = 20000  # attack 4: HELLOs with random ids
FLOOD_MESSAGES = 1500  # attack 4: 16 KiB messages nobody receives
FLOOD_MSG_LEN = 16 << 10
# Our session's retransmission timeout: pure-Python CRCs of 16 KiB frames
# take ~2 ms each, and fakepeer's 0.2 s made the flood resend its whole
# window over and over instead of reading the acks.
OWN_RTO = 2.0
FORGED_DATA = 48  # attack 5: DATA datagrams ahead of the real ones
BUDGET_S = 6.0  # every attack step ends within this


def wait_file(path: Path, timeout: float = WAIT_S) -> Path:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit("rogue: no %s after %.0f s" % (path, timeout))
        time.sleep(0.005)
    return path


@dataclasses.dataclass
class Endpoint:
    """One job endpoint as usb4_xpeer published it."""

    addr: wire.Address
    rma_addr: int
    rma_key: int
    guard_addr: int
    guard_key: int
    guard_len: int

    @property
    def sockaddr(self) -> tuple[str, int]:
        return self.addr.ip, self.addr.udp_port

    @classmethod
    def read(cls, rundir: Path, role: str) -> Endpoint:
        raw = wait_file(rundir / (role + ".info")).read_bytes()
        (addr, _, rma_addr, rma_key, _, _, guard_addr, guard_key,
         guard_len) = INFO.unpack(raw[:INFO.size])
        return cls(wire.Address.unpack(addr[:wire.ADDR_LEN]), rma_addr, rma_key,
                   guard_addr, guard_key, guard_len)


def random_id() -> int:
    return random.getrandbits(64) | 1


# ---- sending: from our own address, or as host A ---------------------------

def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Spoofer:
    """UDP datagrams with any source address, through a raw IPv4 socket."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.ident = random.getrandbits(16)

    def send(self, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
        udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0)
        self.ident = (self.ident + 1) & 0xFFFF
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(payload),
                           self.ident, 0x4000, 64, socket.IPPROTO_UDP, 0,
                           socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
        head = head[:10] + struct.pack("!H", _ip_checksum(head)) + head[12:]
        self.sock.sendto(head + udp + payload, (dst[0], 0))


class Sender:
    """Where forged datagrams go out: our own socket, or spoofed as A."""

    def __init__(self, target: Endpoint, spoof_as: Endpoint | None, keyed: bool):
        self.target = target.sockaddr
        self.spoof_as = spoof_as.sockaddr if spoof_as else None
        self.keyed = keyed
        self.sent = 0
        if self.spoof_as:
            self.raw = Spoofer()
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, dgram: RelDatagram | bytes) -> None:
        data = dgram if isinstance(dgram, bytes) else dgram.pack()
        if self.keyed and isinstance(dgram, RelDatagram) and self.sent % 2:
            data = dressed_as_authenticated(dgram)
        if self.spoof_as:
            self.raw.send(self.spoof_as, self.target, data)
        else:
            self.sock.sendto(data, self.target)
        self.sent += 1


def dressed_as_authenticated(dgram: RelDatagram) -> bytes:
    """dgram with the auth flag and a trailer of random bytes: a MAC we
    cannot compute, so the key's check, not the flag's absence, drops it."""
    flagged = dataclasses.replace(dgram, flags=dgram.flags | AUTH_FLAG, crc=None,
                                  len=None)
    return flagged.pack() + os.urandom(AUTH_TRAILER)


def own_session(target: Endpoint, keyed: bool) -> tuple[fakepeer.FakePeer, bool]:
    """Our own rel session with the target (our id, our address).  With a
    key we cannot finish the handshake: frames then go out unanswered."""
    ip = local_ip(target.addr.ip)
    fakepeer.RTO = OWN_RTO
    peer = fakepeer.FakePeer(target.addr, ip=ip)
    try:
        peer.connect(timeout=1.0 if keyed else 3.0)
        return peer, True
    except fakepeer.FakePeerTimeout:
        peer.remote_isn = peer.rcv_nxt = 0
        return peer, False


def local_ip(toward: str) -> str:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect((toward, 9))
    ip = probe.getsockname()[0]
    probe.close()
    return ip


def push_frames(peer: fakepeer.FakePeer, connected: bool, frames, budget: float) -> int:
    """frames as DATA of peer's session, paced by its window; how many went."""
    deadline = time.monotonic() + budget
    sent = 0
    for frame in frames:
        if time.monotonic() > deadline:
            break
        if connected:
            peer.pump(max(0.0, deadline - time.monotonic()),
                      until=lambda: len(peer.unacked) < fakepeer.WINDOW - 8)
        peer.send_frame(frame)
        if not connected:
            peer.unacked.clear()  # nobody will acknowledge: do not resend
        sent += 1
    if connected:
        peer.pump(min(1.0, max(0.0, deadline - time.monotonic())),
                  until=lambda: not peer.unacked)
    return sent


# ---- the capture of the observer ------------------------------------------

def read_capture(rundir: Path) -> list[tuple[int, RelDatagram]]:
    path = rundir / "capture.bin"
    raw = path.read_bytes() if path.exists() else b""
    found, off = [], 0
    while off + CAPTURE.size <= len(raw):
        direction, length = CAPTURE.unpack_from(raw, off)
        off += CAPTURE.size
        if off + length > len(raw):
            break
        try:
            found.append((direction, RelDatagram.unpack(raw[off:off + length])))
        except wire.WireError:
            pass
        off += length
    return found


def last_seen(rundir: Path, direction: int, rel_type: int = RelType.DATA) -> RelDatagram:
    """The newest captured datagram of rel_type going direction."""
    deadline = time.monotonic() + 10
    while True:
        seen = [d for way, d in read_capture(rundir) if way == direction and d.type == rel_type]
        if seen:
            return seen[-1]
        if time.monotonic() > deadline:
            sys.exit("rogue: the observer captured no %s datagram going %s"
                     % (RelType(rel_type).name, "A->B" if direction == 0 else "B->A"))
        time.sleep(0.05)


# ---- the attacks ------------------------------------------------------------

@dataclasses.dataclass
class Scene:
    rundir: Path
    a: Endpoint  # the client, host A
    b: Endpoint  # the server, host B: the target
    spoof: bool
    keyed: bool

    def sender(self) -> Sender:
        return Sender(self.b, self.a if self.spoof else None, self.keyed)

    def rel(self, rel_type: int, src: int, seq: int, payload: bytes = b"",
            ack: int = 0) -> RelDatagram:
        return RelDatagram(type=rel_type, src_id=src, dst_id=self.b.addr.ep_id, seq=seq,
                           ack=ack, window=64, payload=payload)


def rts_frame(src: int, iovs, msg_id: int, version: int = wire.CURRENT_VERSION,
              pid: int = 0) -> Frame:
    return Frame(type=FrameType.RTS, src_id=src, flags=int(FrameFlag.TAGGED), tag=TAG_BAIT,
                 msg_id=msg_id, total_len=sum(n for _, n in iovs), version=version,
                 payload=wire.Rts(iovs=list(iovs), pid=pid).pack(version))


def answer_cts(peer: fakepeer.FakePeer, connected: bool, budget: float) -> int:
    """DATA with our own bytes for every CTS the target sends us (so a
    rendezvous it accepted ends, with our data, not someone's memory)."""
    answered, deadline = 0, time.monotonic() + budget
    while connected and time.monotonic() < deadline:
        try:
            cts = peer.next_frame(FrameType.CTS, timeout=max(0.05, deadline - time.monotonic()))
        except fakepeer.FakePeerTimeout:
            break
        data = (ATTACKER_BYTES * (cts.total_len // len(ATTACKER_BYTES) + 1))[:cts.total_len]
        push_frames(peer, connected, [Frame(type=FrameType.DATA, src_id=peer.ep_id,
                                            msg_id=cts.msg_id, data=0,
                                            total_len=cts.total_len, payload=data)], 2.0)
        answered += 1
    return answered


def attack_rts(s: Scene) -> dict:
    """1: RTS frames naming memory on the target's host: another process's
    (the victim's), and the guard region; one with an unknown core source
    id, one with ours, one in wire version 1 naming the victim's pid."""
    victim = json.loads(wait_file(s.rundir / "victim.info").read_text())
    iovs = [(victim["addr"], len(SECRET)), (s.b.guard_addr, 4096)]
    peer, connected = own_session(s.b, s.keyed)
    frames = [rts_frame(random_id(), iovs, 1), rts_frame(peer.ep_id, iovs, 2),
              rts_frame(peer.ep_id, iovs, 3, version=1, pid=victim["pid"])]
    sent = push_frames(peer, connected, frames, BUDGET_S)
    return {"connected": connected, "frames": sent,
            "cts_answered": answer_cts(peer, connected, 2.0)}


def attack_impersonate(s: Scene) -> dict:
    """2: messages for the directed receives from A, claiming A's id: in
    frames of our own session, in rel headers from our address (or A's)."""
    a_id = s.a.addr.ep_id
    forged = wire.eager(a_id, ATTACKER_BYTES, tag=TAG_DATA)
    peer, connected = own_session(s.b, s.keyed)
    frames = push_frames(peer, connected, [forged] * 8 + [
        Frame(type=FrameType.RTS, src_id=a_id, flags=int(FrameFlag.TAGGED), tag=TAG_DATA,
              msg_id=9, total_len=65536, payload=wire.Rts().pack())], BUDGET_S)
    seen = last_seen(s.rundir, 0)
    out = s.sender()
    for i in range(1, FORGED_DATA + 1):
        out.send(s.rel(RelType.DATA, a_id, seen.seq + i, forged.pack(), ack=seen.ack))
    for _ in range(8):
        out.send(wire.handshake(wire.CURRENT_VERSION, RelType.HELLO, a_id, s.b.addr.ep_id,
                                random.getrandbits(32)))
    return {"connected": connected, "frames": frames, "datagrams": out.sent}


def attack_write_data(s: Scene) -> dict:
    """3: WRITE_DATA frames (a one-sided write landed, here is its CQ data)
    from our session, in our name and in A's, and in rel headers as A."""
    peer, connected = own_session(s.b, s.keyed)
    frames = [Frame(type=FrameType.WRITE_DATA, src_id=src, flags=int(FrameFlag.CQ_DATA),
                    data=0xBAD0BAD0, total_len=4096)
              for src in (peer.ep_id, s.a.addr.ep_id) for _ in range(8)]
    sent = push_frames(peer, connected, frames, BUDGET_S)
    seen = last_seen(s.rundir, 0)
    out = s.sender()
    for i in range(1, 17):
        out.send(s.rel(RelType.DATA, s.a.addr.ep_id, seen.seq + i, frames[-1].pack(),
                       ack=seen.ack))
    return {"connected": connected, "frames": sent, "datagrams": out.sent}


def attack_flood(s: Scene) -> dict:
    """4: HELLOs with random ids as fast as we can, then 16 KiB messages
    nobody receives through our own session."""
    out = s.sender()
    t0 = time.monotonic()
    for _ in range(FLOOD_HELLOS):
        if time.monotonic() - t0 > BUDGET_S:
            break
        out.send(wire.handshake(wire.CURRENT_VERSION, RelType.HELLO, random_id(),
                                s.b.addr.ep_id, random.getrandbits(32)))
    hello_s = time.monotonic() - t0
    peer, connected = own_session(s.b, s.keyed)
    payload = os.urandom(FLOOD_MSG_LEN)
    frames = (wire.eager(peer.ep_id, payload, tag=TAG_NOBODY) for _ in range(FLOOD_MESSAGES))
    t1 = time.monotonic()
    sent = push_frames(peer, connected, frames, 2 * BUDGET_S)
    return {"hellos": out.sent, "hello_rate": round(out.sent / max(hello_s, 1e-3)),
            "connected": connected, "messages": sent,
            "message_s": round(time.monotonic() - t1, 2)}


def attack_forged_data(s: Scene) -> dict:
    """5: DATA datagrams with the ids and the next sequence numbers seen on
    the wire (A to B), then an ACK in A's name beyond what B sent."""
    a_id = s.a.addr.ep_id
    out = s.sender()
    seen = last_seen(s.rundir, 0)
    junk = Frame(type=FrameType.DATA, src_id=a_id, msg_id=seen.seq, data=0,
                 total_len=4096, payload=os.urandom(4096)).pack()
    for i in range(1, FORGED_DATA + 1):
        out.send(s.rel(RelType.DATA, a_id, seen.seq + i, junk, ack=seen.ack))
    b_sent = last_seen(s.rundir, 1)
    for i in range(16):
        out.send(s.rel(RelType.ACK, a_id, seen.seq + 1, ack=b_sent.seq + 1 + 64 * i))
    return {"datagrams": out.sent, "seq_from": seen.seq + 1, "acked_beyond": b_sent.seq}


def attack_rma(s: Scene) -> dict:
    """6: RMA write and read of the guard region (and a write into the job's
    region) with the keys, from a host the target never put in its AV."""
    peer, connected = own_session(s.b, s.keyed)
    guard = (s.b.guard_addr, 4096, s.b.guard_key)
    job = (s.b.rma_addr, 4096, s.b.rma_key)
    frames = [Frame(type=FrameType.WRITE_REQ, src_id=peer.ep_id, msg_id=1, total_len=4096,
                    payload=wire.pack_rma_segs([guard])),
              Frame(type=FrameType.WRITE_REQ, src_id=peer.ep_id, msg_id=2, total_len=4096,
                    payload=wire.pack_rma_segs([job])),
              Frame(type=FrameType.READ_REQ, src_id=peer.ep_id, msg_id=3, total_len=4096,
                    payload=wire.pack_rma_segs([guard]))]
    sent = push_frames(peer, connected, frames, BUDGET_S)
    answered = answer_cts(peer, connected, 2.0)
    peer.pump(1.0 if connected else 0.1)
    got = b"".join(f.payload for f in peer.frames if f.type == FrameType.DATA)
    return {"connected": connected, "frames": sent, "cts_answered": answered,
            "read_bytes": len(got),
            "answers": sorted({f.type_name for f in peer.frames})}


def attack_replay(s: Scene) -> dict:
    """Every datagram captured from A to B, sent again (as A, with --spoof)."""
    captured = [d for way, d in read_capture(s.rundir) if way == 0]
    out = s.sender()
    t0 = time.monotonic()
    for dgram in captured:
        if time.monotonic() - t0 > BUDGET_S:
            break
        out.send(dgram.raw)
    return {"captured": len(captured), "datagrams": out.sent,
            "types": sorted({d.type_name for d in captured})}


def race_handshake(s: Scene) -> dict:
    """Before A's first datagram: HELLOs claiming A's id to B (from our
    address, or A's with --spoof) and claiming B's id to A."""
    out_b = s.sender()
    out_a = Sender(s.a, s.b if s.spoof else None, s.keyed)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.5:
        isn = random.getrandbits(32)
        out_b.send(wire.handshake(wire.CURRENT_VERSION, RelType.HELLO, s.a.addr.ep_id,
                                  s.b.addr.ep_id, isn))
        out_a.send(wire.handshake(wire.CURRENT_VERSION, RelType.HELLO, s.b.addr.ep_id,
                                  s.a.addr.ep_id, isn))
        time.sleep(0.01)
    return {"hellos": out_b.sent + out_a.sent}


ATTACKS = {"rts": attack_rts, "impersonate": attack_impersonate,
           "write_data": attack_write_data, "flood": attack_flood,
           "forged_data": attack_forged_data, "rma": attack_rma, "replay": attack_replay,
           "race": None}


def attack(args) -> int:
    rundir = Path(args.dir)
    scene = Scene(rundir, Endpoint.read(rundir, "client"), Endpoint.read(rundir, "server"),
                  args.spoof, args.keyed)
    report = {"attack": args.name, "spoof": args.spoof, "keyed": args.keyed}
    if args.name == "race":
        time.sleep(0.3)  # both have put the other in their AV
        report.update(race_handshake(scene))
    (rundir / "go").touch()
    wait_file(rundir / "attack.start")
    if ATTACKS[args.name]:
        report.update(ATTACKS[args.name](scene))
    print(json.dumps(report), flush=True)
    return 0


# ---- the observer and the victim -----------------------------------------

def observe(args) -> int:
    """Appends A<->B datagrams seen on tb0 to D/capture.bin until D/attack.done."""
    rundir = Path(args.dir)
    a, b = Endpoint.read(rundir, "client"), Endpoint.read(rundir, "server")
    ways = {(a.sockaddr, b.sockaddr): 0, (b.sockaddr, a.sockaddr): 1}
    # ETH_P_ALL: a socket bound to ETH_P_IP sees only what comes in, not what
    # A sends.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
    sock.bind(("tb0", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    kept = 0
    with open(rundir / "capture.bin", "ab", buffering=0) as out:
        while not (rundir / "attack.done").exists():
            if not select.select([sock], [], [], 0.05)[0]:
                continue
            packet, (_, proto, *_) = sock.recvfrom(70000)
            if proto != 0x0800:
                continue
            ihl = (packet[0] & 0x0F) * 4
            if len(packet) < ihl + 8 or packet[9] != socket.IPPROTO_UDP:
                continue
            src = (socket.inet_ntoa(packet[12:16]), struct.unpack_from("!H", packet, ihl)[0])
            dst = (socket.inet_ntoa(packet[16:20]), struct.unpack_from("!H", packet, ihl + 2)[0])
            way = ways.get((src, dst))
            if way is None or kept >= CAPTURE_MAX:
                continue
            payload = packet[ihl + 8:]
            out.write(CAPTURE.pack(way, len(payload)) + payload)
            kept += 1
    print(json.dumps({"captured": kept}), flush=True)
    return 0


def victim(args) -> int:
    """A process unrelated to the job holding SECRET; publishes where."""
    import ctypes

    rundir = Path(args.dir)
    secret = ctypes.create_string_buffer(SECRET, len(SECRET))
    info = {"pid": os.getpid(), "addr": ctypes.addressof(secret)}
    tmp = rundir / "victim.info.tmp"
    tmp.write_text(json.dumps(info))
    tmp.rename(rundir / "victim.info")
    wait_file(rundir / "attack.done", 10 * WAIT_S)
    intact = secret.raw[:len(SECRET)] == SECRET
    print(json.dumps({"victim_intact": intact}), flush=True)
    return 0 if intact else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("attack")
    p.add_argument("name", choices=sorted(ATTACKS))
    p.add_argument("--dir", required=True)
    p.add_argument("--spoof", action="store_true")
    p.add_argument("--keyed", action="store_true")
    for name in ("observe", "victim"):
        sub.add_parser(name).add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    return {"attack": attack, "observe": observe, "victim": victim}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
