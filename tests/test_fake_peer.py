"""The provider's udp link against a fake remote endpoint, on one host.

tests/xhost/usb4_xdriver.c is a real usb4 endpoint (FI_USB4_IFACE=lo: its
udp link binds 127.0.0.1); tests/fakepeer.py is a peer on "another host" (its
address carries another host_id) that speaks rel over a Python socket, step
by step, so each test sends exactly the datagrams it is about:

- a status a peer puts in a FIN is mapped to a code we know: anything else
  (-12345, a large positive value) is FI_EIO, never passed through;
- a peer of another wire version is refused at connection: its REJECT
  fails the pending operation at once with FI_ECONNREFUSED, and its HELLO
  is answered with our REJECT; the log names both versions;
- a WRITE_DATA frame (the notice of a one-sided write) over udp, a link
  without one-sided access, produces no remote-write completion;
- a frame whose src_id is not its session's peer is dropped;
- a frame that completed an operation is acknowledged even when the
  application closes the endpoint right after the completion.

The fake peer speaks the driver's wire version, read from the driver's
address (version 1 for the provider before the restructuring), so the same
tests run against an older build::

    USB4_PROVIDER_DIR=/work/base/.libs pytest tests/test_fake_peer.py
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cprogs import compile_c
from fakepeer import FakePeer
from usb4fabric import wire
from usb4fabric.wire import FrameFlag, FrameType, RelType

DRIVER_SRC = Path(__file__).resolve().parent / "xhost" / "usb4_xdriver.c"
START_TIMEOUT = 10.0  # seconds until the driver prints its address
FINISH_TIMEOUT = 15.0  # seconds until it exits after its last step
PEER_TIMEOUT_MS = 2000  # FI_USB4_PEER_TIMEOUT: bounds the failure cases
REFUSE_LIMIT_S = 1.0  # a refused connection fails the op within this
FI_EIO, FI_ECONNREFUSED = 5, 111
EVENT = re.compile(r"^(?P<kind>cqe|cqerr) t=(?P<t>[\d.]+) ctx=(?P<ctx>\S+) (?P<rest>.*)$")
FIELD = re.compile(r"(\w+)=(\S+)")


@pytest.fixture(scope="module")
def xdriver(tmp_path_factory):
    """usb4_xdriver compiled with gcc (-lfabric) into a tmp folder."""
    return compile_c(tmp_path_factory, DRIVER_SRC, "usb4_xdriver")


class Driver:
    """usb4_xdriver running: stdout read line by line, stderr in a file."""

    def __init__(self, exe: Path, provider_dir: Path, tmp_path: Path, args: list[str],
                 env: dict | None = None):
        self.err_path = tmp_path / "xdriver.err"
        full_env = {"FI_PROVIDER_PATH": str(provider_dir), "FI_PROVIDER": "usb4",
                    "FI_USB4_IFACE": "lo", "FI_LOG_LEVEL": "warn",
                    "FI_USB4_PEER_TIMEOUT": str(PEER_TIMEOUT_MS), "PATH": "/usr/bin:/bin"}
        full_env.update(env or {})
        self.argv = [str(exe)] + args
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True,
                                         env=full_env, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.addr = bytes.fromhex(self.wait_line("addr ", START_TIMEOUT).split()[1])

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _take(self, timeout: float) -> str | None:
        line = self._queue.get(timeout=timeout)
        if line is not None:
            self.lines.append(line)
        return line

    def wait_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._take(max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is not None and line.startswith(prefix):
                return line
            if line is None:
                self.kill()
                pytest.fail("driver: no '%s' line within %.0f s\n%s"
                            % (prefix.strip(), timeout, self.describe()), pytrace=False)

    def start(self, *peers: bytes) -> None:
        """Inserts the peers' addresses (fi_addr 0, 1, ...) and lets it go."""
        text = "".join("peer %s\n" % p.hex() for p in peers) + "go\n"
        self.proc.stdin.write(text)
        self.proc.stdin.close()
        self.wait_line("ready", START_TIMEOUT)

    def finish(self, fake: FakePeer | None = None, timeout: float = FINISH_TIMEOUT) -> None:
        """Until the driver exits; the fake peer answers meanwhile (the
        provider lingers at close until its frames are acknowledged)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if fake is not None:
                fake.pump(0.05)
            else:
                time.sleep(0.05)
        if self.proc.poll() is None:
            self.kill()
            pytest.fail("driver still running after %.0f s\n%s%s" % (
                timeout, self.describe(), "\n" + fake.describe() if fake else ""),
                pytrace=False)
        self._reader.join(5)
        while True:
            try:
                if self._take(0) is None:
                    break
            except queue.Empty:
                break

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def describe(self) -> str:
        err = "\n".join(line for line in self.err.splitlines()
                        if "fi_param_get" not in line and "getinfo" not in line)
        return "--- driver %s, exit %s\n%s\n--- its stderr\n%s" % (
            " ".join(self.argv[1:]), self.proc.returncode, "\n".join(self.lines), err[-4000:])

    def events(self) -> list[dict]:
        """Completions and error completions it printed, fields parsed."""
        found = []
        for line in self.lines:
            m = EVENT.match(line)
            if m:
                event = {"kind": m["kind"], "t": float(m["t"]), "ctx": m["ctx"]}
                event.update(FIELD.findall(m["rest"]))
                event["line"] = line
                found.append(event)
        return found


@pytest.fixture
def run_driver(xdriver, provider_dir, tmp_path):
    """run_driver(args, env=None) -> a started Driver, killed after the test."""
    started = []

    def run(args: list[str], env: dict | None = None) -> Driver:
        driver = Driver(xdriver, provider_dir, tmp_path, args, env)
        started.append(driver)
        return driver

    yield run
    for driver in started:
        driver.kill()


def explain(driver: Driver, fake: FakePeer | None) -> str:
    return driver.describe() + ("\n--- " + fake.describe() if fake else "")


def versions_named(log: str) -> set[int]:
    """The version numbers the provider's warnings name."""
    return {int(v) for v in re.findall(r"(?:version|speaks?)\s+(\d+)\b", log)}


def udp_ports_bound() -> set[int]:
    """Local ports of the IPv4 UDP sockets of this network namespace."""
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        local = line.split()[1]
        ports.add(int(local.split(":")[1], 16))
    return ports


def test_address_from_fi_getname_is_what_wire_py_reads(run_driver):
    """The bytes fi_getname returns, as python/usb4fabric/wire.py reads them."""
    driver = run_driver(["--op", "none", "--wait-ms", "0"])
    addr = wire.Address.unpack(driver.addr)
    bound = udp_ports_bound()
    driver.start()
    driver.finish()
    why = driver.describe() + "\n" + repr(addr)
    assert addr.pack() == driver.addr, why
    assert addr.wire_version in wire.WIRE_VERSIONS and addr.ep_id, why
    assert (addr.udp_family, addr.ip) == (4, "127.0.0.1"), why  # FI_USB4_IFACE=lo
    assert addr.udp_port in bound, why
    assert addr.shm_pid == driver.proc.pid, why


# --- a status a peer sends ------------------------------------------------------

REQUEST = {"tsend": FrameType.RTS, "write": FrameType.WRITE_REQ, "read": FrameType.READ_REQ}


@pytest.mark.parametrize("status", [-12345, 0x123456789ABC], ids=["minus12345", "large_positive"])
@pytest.mark.parametrize("op", sorted(REQUEST))
def test_peer_status_codes_are_mapped(run_driver, op, status):
    """A FIN whose status is no code we know fails the operation with FI_EIO.

    The fake peer takes the driver's request (rendezvous RTS of a 64 KiB
    tagged send, RMA write or read request) and answers FIN carrying status;
    the driver's error completion must say FI_EIO, never the peer's number.
    """
    driver = run_driver(["--op", op, "--len", str(64 * 1024), "--stop-after", "1",
                         "--wait-ms", "5000"])
    fake = FakePeer.facing(driver.addr)
    try:
        driver.start(fake.address)
        fake.accept_handshake()
        request = fake.next_frame(REQUEST[op])
        fake.send_frame(wire.fin(fake.ep_id, request.msg_id, status=status,
                                 wire_version=fake.wire_version))
        driver.finish(fake)  # it stops after the completion
    finally:
        fake.close()
    why = explain(driver, fake)
    ops = [e for e in driver.events() if e["ctx"] == "op"]
    assert len(ops) == 1, "want one completion of the %s\n%s" % (op, why)
    event = ops[0]
    assert event["kind"] == "cqerr", "the %s succeeded: %s\n%s" % (op, event["line"], why)
    assert int(event["err"]) == FI_EIO, \
        "error %s, want FI_EIO (5): %s\n%s" % (event["err"], event["line"], why)
    assert abs(int(event["prov_errno"])) in (0, FI_EIO), event["line"] + "\n" + why


# --- another wire version -------------------------------------------------------

OTHER_VERSION = wire.CURRENT_VERSION + 1  # a version from the future
VERSION_CASES = ("peer_rejects_in_its_header", "peer_rejects_in_our_header",
                 "peer_hello_of_another_version")


@pytest.mark.parametrize("case", VERSION_CASES)
def test_version_mismatch_is_refused_at_connection(run_driver, case):
    """A peer of another wire version is refused when the session starts.

    (a) peer_rejects_*: a peer of a later version answers every HELLO of
        ours with REJECT (its proto), acknowledging the HELLO's seq.  The pending rendezvous send must fail within 1 s
        with FI_ECONNREFUSED (not after FI_USB4_PEER_TIMEOUT with
        FI_EHOSTUNREACH), and the log must name both versions.  The REJECT's
        rel header carries the version its sender speaks (what
        usb4_rel_reject() of a later build sends; wire.h: version and
        type keep their place in every version) or ours.
    (b) peer_hello_of_another_version: the peer sends a HELLO of another
        version (1 against this provider, with a valid v1 CRC): the answer
        must be the REJECT usb4_rel_reject() builds, byte for byte (our
        version in header and payload), and the log must name both versions.
    """
    if case == "peer_hello_of_another_version":
        refuse_their_hello(run_driver)
    else:
        take_their_reject(run_driver, its_header=case == "peer_rejects_in_its_header")


def take_their_reject(run_driver, its_header: bool) -> None:
    wait_ms = PEER_TIMEOUT_MS + 2000
    driver = run_driver(["--op", "tsend", "--len", str(64 * 1024), "--stop-after", "1",
                         "--wait-ms", str(wait_ms)])
    fake = FakePeer.facing(driver.addr)
    try:
        driver.start(fake.address)
        hello = fake.wait_datagram(RelType.HELLO)
        # Acknowledging the HELLO it answers, as usb4_rel_reject_cfg does.
        refusal = wire.reject(fake.ep_id, fake.remote.ep_id, wire_version=OTHER_VERSION,
                              ack=hello.seq)
        refusal.version = OTHER_VERSION if its_header else hello.version
        fake.refuse_with = refusal  # this HELLO and every one after it
        fake.handle(hello)
        driver.finish(fake)
    finally:
        fake.close()
    why = explain(driver, fake)
    ops = [e for e in driver.events() if e["ctx"] == "op"]
    assert len(ops) == 1, "the send never completed (waited %.1f s)\n%s" % (
        wait_ms / 1000, why)
    event = ops[0]
    assert event["kind"] == "cqerr" and int(event["err"]) == FI_ECONNREFUSED, \
        "want FI_ECONNREFUSED (111) within %.1f s: %s\n%s" % (REFUSE_LIMIT_S,
                                                              event["line"], why)
    assert event["t"] <= REFUSE_LIMIT_S, \
        "refused after %.3f s (limit %.1f s)\n%s" % (event["t"], REFUSE_LIMIT_S, why)
    named = versions_named(driver.err)
    assert {OTHER_VERSION, fake.remote.wire_version} <= named, \
        "the log names versions %s, want %d and %d\n%s" % (
            sorted(named), OTHER_VERSION, fake.remote.wire_version, why)


def refuse_their_hello(run_driver) -> None:
    driver = run_driver(["--op", "none", "--wait-ms", "1500"])
    ours = wire.Address.unpack(driver.addr).wire_version
    theirs = 1 if ours != 1 else 2
    fake = FakePeer.facing(driver.addr, wire_version=theirs)
    try:
        driver.start()
        hello = fake.send(wire.handshake(theirs, RelType.HELLO, fake.ep_id,
                                         fake.remote.ep_id, fake.isn, window=64))
        assert wire.RelDatagram.unpack(hello).crc_ok
        answer = None
        deadline = time.monotonic() + 1.0
        while answer is None and time.monotonic() < deadline:
            answer = fake.recv_datagram(deadline - time.monotonic())
        driver.finish(fake)
    finally:
        fake.close()
    why = explain(driver, fake)
    assert answer is not None, "no answer to a version %d HELLO within 1 s\n%s" % (
        theirs, why)
    want = wire.reject(fake.remote.ep_id, fake.ep_id, wire_version=ours).pack()
    assert answer.raw == want, "answer %s\n  got  %s\n  want %s\n%s" % (
        answer.describe(), answer.raw.hex(), want.hex(), why)
    named = versions_named(driver.err)
    assert {theirs, ours} <= named, "the log names versions %s, want %d and %d\n%s" % (
        sorted(named), theirs, ours, why)


# --- frames a udp peer may not send --------------------------------------------------

CONTROL_TAG = 0x42
CQ_DATA = 0xC0FFEE


def test_forged_write_data_over_udp_is_dropped(run_driver):
    """WRITE_DATA (a one-sided write landed) over udp makes no completion.

    Only a link with one-sided access may carry it.  The fake peer sends it
    (remote CQ data 0xC0FFEE, 4096 bytes) and then an eager message; the
    driver reads its CQ for 1.5 s: the message must arrive (the pipe works,
    and rel delivers in order, so WRITE_DATA was handled before it), no
    remote-write completion may.
    """
    driver = run_driver(["--op", "none", "--recv", hex(CONTROL_TAG), "--wait-ms", "1500"])
    fake = FakePeer.facing(driver.addr)
    v = fake.wire_version
    try:
        driver.start(fake.address)
        fake.connect()
        fake.send_frame(wire.Frame(type=FrameType.WRITE_DATA, src_id=fake.ep_id,
                                   flags=int(FrameFlag.CQ_DATA), data=CQ_DATA,
                                   total_len=4096, version=v))
        fake.send_frame(wire.eager(fake.ep_id, b"after the forged write", tag=CONTROL_TAG,
                                   wire_version=v))
        fake.wait_acked()
        driver.finish(fake)
    finally:
        fake.close()
    why = explain(driver, fake)
    events = driver.events()
    control = [e for e in events if e["ctx"] == "recv0"]
    assert control and control[0]["kind"] == "cqe", \
        "the eager message after WRITE_DATA never arrived\n" + why
    forged = [e for e in events
              if "REMOTE_WRITE" in e["line"] or e.get("data") == hex(CQ_DATA)]
    assert not forged, "a forged WRITE_DATA over udp completed: %s\n%s" % (
        forged[0]["line"], why)


@pytest.mark.parametrize("claimed", ["unknown_id", "other_av_peer"])
def test_frame_claiming_another_sender_is_dropped(run_driver, claimed):
    """A core frame whose src_id is not its session's peer never matches.

    Two eager messages on one session, in order: tag 0x51 claiming another
    sender (a random id, or the id of another peer in the driver's AV),
    then tag 0x52 with the session's own id.  The second arrives, the first
    never does.
    """
    driver = run_driver(["--op", "none", "--recv", "0x51", "--recv", "0x52",
                         "--wait-ms", "1500"])
    fake = FakePeer.facing(driver.addr)
    other_id = wire.Address.unpack(fake.address_of(ep_id=fake.ep_id ^ 0xFFFF)).ep_id
    v = fake.wire_version
    try:
        peers = [fake.address]
        if claimed == "other_av_peer":
            peers.append(fake.address_of(ep_id=other_id))
        driver.start(*peers)
        inserted = [line for line in driver.lines if line.startswith("inserted")]
        assert len(inserted) == len(peers), driver.describe()
        fake.connect()
        fake.send_frame(wire.eager(other_id, b"claims another sender", tag=0x51,
                                   wire_version=v))
        fake.send_frame(wire.eager(fake.ep_id, b"from the session's peer", tag=0x52,
                                   wire_version=v))
        fake.wait_acked()
        driver.finish(fake)
    finally:
        fake.close()
    why = explain(driver, fake)
    events = driver.events()
    good = [e for e in events if e["ctx"] == "recv1"]
    assert good and good[0]["kind"] == "cqe", "the message from the session's peer " \
        "never arrived\n" + why
    bad = [e for e in events if e["ctx"] == "recv0"]
    assert not bad, "a frame claiming src_id %016x matched: %s\n%s" % (
        other_id, bad[0]["line"], why)


# --- closing ---------------------------------------------------------------------------

ACK_AT_CLOSE_LIMIT_S = 1.0


def test_close_acknowledges_frames_that_arrived(run_driver):
    """A frame that completed an operation is acknowledged, even when the
    application closes the endpoint right after that completion.

    The fake peer finishes the driver's rendezvous send (FIN, status 0); the
    driver closes at once after the completion.  The FIN must be
    acknowledged by the time the driver has exited (within 1 s): a peer
    whose last frame is never acknowledged resends it until its peer
    timeout, then declares us dead, and its own fi_close lingers that long.
    """
    driver = run_driver(["--op", "tsend", "--len", str(64 * 1024), "--stop-after", "1",
                         "--wait-ms", "5000"])
    fake = FakePeer.facing(driver.addr)
    try:
        driver.start(fake.address)
        fake.accept_handshake()
        rts = fake.next_frame(FrameType.RTS)
        fake.send_frame(wire.fin(fake.ep_id, rts.msg_id, status=0,
                                 wire_version=fake.wire_version))
        driver.finish(fake)
        exited = time.monotonic()
        fake.pump(ACK_AT_CLOSE_LIMIT_S, until=lambda: not fake.unacked)
        late = time.monotonic() - exited
        pending = sorted(fake.unacked)
    finally:
        fake.close()
    why = explain(driver, fake)
    ops = [e for e in driver.events() if e["ctx"] == "op"]
    assert len(ops) == 1 and ops[0]["kind"] == "cqe", "the send did not succeed\n" + why
    assert not pending, "the FIN that completed the send (seq %d) was never " \
        "acknowledged (%.1f s after the driver exited)\n%s" % (pending[0], late, why)


# --- remote access to registered memory -------------------------------------------

FI_EACCES = 13
MR_LEN = 4096
RMA_LEN = 64
WRITE_AT, READ_AT, ATOMIC_AT = 128, 256, 512  # offsets into the driver's region
ATOMIC_ADD = 5
FI_SUM, FI_UINT64, ATOMIC_FETCH = 2, 7, 1
MR_LINE = re.compile(r"^mr addr=0x(?P<addr>[0-9a-f]+) key=0x(?P<key>[0-9a-f]+) len=(?P<len>\d+)$")
WRITE_ID, READ_ID, ATOMIC_ID = 0x101, 0x102, 0x103


def initial_region(length: int) -> bytes:
    """What usb4_xdriver --mr puts in its region: byte i is (7 i + 3) & 0xff."""
    return bytes((7 * i + 3) & 0xFF for i in range(length))


def region_at_end(driver: Driver) -> bytes | None:
    for line in driver.lines:
        if line.startswith("mr bytes "):
            return bytes.fromhex(line.split()[2])
    return None


def logged_count(log: str, key: str) -> int:
    """The largest number the provider logged after key, 0 if none."""
    return max((int(v) for v in re.findall(re.escape(key) + r" (\d+)", log)), default=0)


def remote_access_requests(fake: FakePeer, addr: int, key: int) -> list[wire.Frame]:
    v = fake.wire_version
    atomic = wire.ATOMIC_HEAD.pack(ATOMIC_FETCH, FI_SUM, FI_UINT64, 1, addr + ATOMIC_AT, key)
    return [
        wire.Frame(type=FrameType.WRITE_REQ, src_id=fake.ep_id, msg_id=WRITE_ID,
                   total_len=RMA_LEN, version=v,
                   payload=wire.pack_rma_segs([(addr + WRITE_AT, RMA_LEN, key)])),
        wire.Frame(type=FrameType.READ_REQ, src_id=fake.ep_id, msg_id=READ_ID,
                   total_len=RMA_LEN, version=v,
                   payload=wire.pack_rma_segs([(addr + READ_AT, RMA_LEN, key)])),
        wire.Frame(type=FrameType.ATOMIC_REQ, src_id=fake.ep_id, msg_id=ATOMIC_ID,
                   total_len=8, version=v,
                   payload=atomic + ATOMIC_ADD.to_bytes(8, "little")),
    ]


def serve_answers(fake: FakePeer, written: bytes) -> dict:
    """The driver's answers to the three requests, by msg_id: the final
    FIN / ATOMIC_RESP frames, the CTSs it sent (each answered with the
    write's bytes as one DATA frame) and the read response's bytes."""
    got = {"final": {}, "cts": [], "read": b""}
    while len(got["final"]) < 3:
        frame = fake.next_frame()
        if frame.type == FrameType.CTS:
            got["cts"].append(frame.msg_id)
            fake.send_frame(wire.Frame(type=FrameType.DATA, src_id=fake.ep_id,
                                       msg_id=frame.msg_id, data=0, total_len=len(written),
                                       payload=written, version=fake.wire_version))
        elif frame.type == FrameType.DATA and frame.msg_id == READ_ID:
            got["read"] += frame.payload
        elif frame.type == FrameType.READ_INLINE and frame.msg_id == READ_ID:
            got["read"] += frame.payload  # the bytes and the end (FEATURE_READ_INLINE)
            got["final"][frame.msg_id] = frame
        elif frame.type in (FrameType.FIN, FrameType.ATOMIC_RESP):
            got["final"][frame.msg_id] = frame
    return got


def request_remote_access(driver: Driver, inserted: bool, written: bytes) -> tuple[dict, str]:
    """A fake peer (inserted by the driver, or not) sends the write, read and
    atomic requests for the driver's region and serves what comes back
    (serve_answers); the answers and the explanation for failures."""
    region = MR_LINE.match(driver.wait_line("mr addr=", START_TIMEOUT))
    addr, key = int(region["addr"], 16), int(region["key"], 16)
    fake = FakePeer.facing(driver.addr)
    try:
        driver.start(*([fake.address] if inserted else []))
        fake.connect()
        for request in remote_access_requests(fake, addr, key):
            fake.send_frame(request)
        got = serve_answers(fake, written)
        fake.wait_acked()
        driver.finish(fake)
    finally:
        fake.close()
    return got, explain(driver, fake)


UNKNOWN_WAIT_MS = 1500  # FI_USB4_UNKNOWN_ACCESS_WAIT for the driver
LATE_INSERT_MS = 400  # the "late" driver inserts the peer this long after go


@pytest.mark.parametrize("inserted", [False, True, "late"],
                         ids=["stranger", "inserted", "inserted-late"])
def test_remote_access_only_for_inserted_peers(run_driver, inserted):
    """RMA write, read and atomic requests with the right key, in a domain
    whose keys the application chose (guessable), are served only to a peer
    the driver inserted in its AV.

    The udp link is not authenticated (no job key), so a peer the driver
    never inserted (it only has a hidden entry, made by its handshake) gets
    FI_EACCES in the FIN / ATOMIC_RESP of every request: no CTS, no bytes
    read, the region unchanged, and the log counts three refusals.  The
    same requests from an inserted peer work: the write lands, the read
    returns the region's bytes, the atomic adds and returns the old value.
    """
    # A stranger's requests wait UNKNOWN_WAIT_MS for an insert, then are
    # refused; "late": the driver inserts the peer after they arrived, as an
    # MPI rank inserts a peer whose first access raced ahead of it.
    args = ["--op", "none", "--mr", str(MR_LEN), "--wait-ms", "3000"]
    if inserted == "late":
        args += ["--insert-after-ms", str(LATE_INSERT_MS)]
    driver = run_driver(args, env={"FI_USB4_UNKNOWN_ACCESS_WAIT": str(UNKNOWN_WAIT_MS),
                                   "XHOST_USER_KEYS": "1"})
    written = bytes(range(0x40, 0x40 + RMA_LEN))
    got, why = request_remote_access(driver, bool(inserted), written)
    before, after = initial_region(MR_LEN), region_at_end(driver)
    statuses = {hex(i): f.status for i, f in got["final"].items()}
    refused = logged_count(driver.err, "rma-refused-unknown")
    waited = logged_count(driver.err, "rma-waited-unknown")
    assert after is not None, "the driver printed no region\n" + why
    if inserted:
        assert waited if inserted == "late" else not waited, \
            "logged rma-waited-unknown %d\n%s" % (waited, why)
    if not inserted:
        assert statuses == {hex(i): -FI_EACCES for i in (WRITE_ID, READ_ID, ATOMIC_ID)}, \
            "want FI_EACCES for every request, got %s\n%s" % (statuses, why)
        assert not got["cts"] and not got["read"], "a stranger was served\n" + why
        assert after == before, "a stranger changed the region\n" + why
        assert refused == 3, "logged rma-refused-unknown %d, want 3\n%s" % (refused, why)
        assert waited, "refused without waiting for an insert\n" + why
        return
    old = int.from_bytes(before[ATOMIC_AT:ATOMIC_AT + 8], "little")
    want = bytearray(before)
    want[WRITE_AT:WRITE_AT + RMA_LEN] = written
    want[ATOMIC_AT:ATOMIC_AT + 8] = ((old + ATOMIC_ADD) % (1 << 64)).to_bytes(8, "little")
    assert statuses == {hex(i): 0 for i in (WRITE_ID, READ_ID, ATOMIC_ID)}, \
        "an inserted peer was refused: %s\n%s" % (statuses, why)
    assert got["read"] == before[READ_AT:READ_AT + RMA_LEN], "read returned other bytes\n" + why
    assert got["final"][ATOMIC_ID].payload == before[ATOMIC_AT:ATOMIC_AT + 8], why
    assert after == bytes(want), "the region is not what the peer wrote\n" + why
    assert refused == 0, why


def test_remote_access_on_drawn_keys_needs_no_insert(run_driver):
    """In a domain whose keys the provider drew (FI_MR_PROV_KEY: 64 random
    bits), holding a key is the right to its region, as libfabric means it:
    a peer the driver never inserted is served at once (Open MPI 5's
    one-sided never inserts the ranks that only target it), and the log
    counts it as rma-by-key-unknown."""
    driver = run_driver(["--op", "none", "--mr", str(MR_LEN), "--wait-ms", "2000"])
    written = bytes(range(0x40, 0x40 + RMA_LEN))
    got, why = request_remote_access(driver, False, written)
    statuses = {hex(i): f.status for i, f in got["final"].items()}
    assert statuses == {hex(i): 0 for i in (WRITE_ID, READ_ID, ATOMIC_ID)}, \
        "a key holder was refused: %s\n%s" % (statuses, why)
    assert region_at_end(driver)[WRITE_AT:WRITE_AT + RMA_LEN] == written, why
    assert logged_count(driver.err, "rma-by-key-unknown") == 3, why
    assert logged_count(driver.err, "rma-refused-unknown") == 0, why


# --- a flood of unexpected messages ----------------------------------------------------

FLOOD_S = 3.0
FLOOD_MSG = 16 * 1024
FLOOD_IN_FLIGHT = 8  # frames the fake keeps unacknowledged (its socket buffer drops more)
UNEXP_PEER_BYTES = 1 << 20  # FI_USB4_UNEXP_PEER_BYTES for the driver
REL_WINDOW = 64  # FI_USB4_REL_WINDOW: frames rel holds beyond what it delivered
RSS_SLACK = 3 << 20  # bytes the driver may grow by beyond its bounds


def rss_bytes(pid: int) -> int:
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


def test_unexpected_flood_stays_bounded(run_driver):
    """A peer that sends 16 KiB messages nobody receives, nonstop, is held
    back: the driver acknowledges no more than its unexpected bound (plus
    rel's window) holds, its memory grows by no more than that, and its log
    shows the bound reached (unexp-full) and never passed (peak).
    """
    driver = run_driver(["--op", "none", "--wait-ms", str(int(FLOOD_S * 1000) + 1500)],
                        env={"FI_USB4_UNEXP_PEER_BYTES": str(UNEXP_PEER_BYTES),
                             "FI_USB4_REL_WINDOW": str(REL_WINDOW)})
    fake = FakePeer.facing(driver.addr)
    payload = bytes(range(256)) * (FLOOD_MSG // 256)
    sent = 0
    try:
        driver.start()
        fake.connect()
        rss0 = rss_bytes(driver.proc.pid)
        end = time.monotonic() + FLOOD_S
        while time.monotonic() < end:
            while len(fake.unacked) < FLOOD_IN_FLIGHT:
                fake.send_frame(wire.eager(fake.ep_id, payload, tag=sent,
                                           wire_version=fake.wire_version))
                sent += 1
            fake.pump(0.01)
        rss1 = rss_bytes(driver.proc.pid)
        acked = sent - len(fake.unacked)
        driver.finish(fake)
    finally:
        fake.close()
    why = explain(driver, fake) + "\nsent %d, acknowledged %d" % (sent, acked)
    peak = logged_count(driver.err, "unexp-peak-bytes")
    assert acked * FLOOD_MSG <= UNEXP_PEER_BYTES + REL_WINDOW * FLOOD_MSG, \
        "the driver took %d messages of %d bytes\n%s" % (acked, FLOOD_MSG, why)
    grown = rss1 - rss0
    assert grown <= UNEXP_PEER_BYTES + REL_WINDOW * FLOOD_MSG + RSS_SLACK, \
        "the driver grew by %d bytes during the flood\n%s" % (grown, why)
    assert logged_count(driver.err, "unexp-full") > 0, "the bound was never reached\n" + why
    assert 0 < peak <= UNEXP_PEER_BYTES, "queued at most %d bytes\n%s" % (peak, why)


# --- hidden entries of peers that went ----------------------------------------------

KEPT_TAG = 0x61


def test_hidden_entry_freed_when_its_peer_goes(run_driver):
    """A peer the driver never inserted (a hidden entry) that stops answering
    is reported down by the udp link; the core frees its hidden entry then
    (the log counts hidden-freed), and the eager message it sent before,
    still unexpected, stays deliverable: the receive posted after the peer
    went gets it, bit-exact.

    The fake sends the eager message, then a WRITE_REQ (refused: it is a
    stranger), and closes its socket at once: the driver's FIN is never
    acknowledged, and after FI_USB4_PEER_TIMEOUT the driver gives up on it.
    """
    recv_after_ms = PEER_TIMEOUT_MS + 1500
    driver = run_driver(["--op", "none", "--mr", str(MR_LEN), "--recv", hex(KEPT_TAG),
                         "--recv-after-ms", str(recv_after_ms),
                         "--wait-ms", str(recv_after_ms + 1000), "--stop-after", "1"])
    region = MR_LINE.match(driver.wait_line("mr addr=", START_TIMEOUT))
    addr, key = int(region["addr"], 16), int(region["key"], 16)
    fake = FakePeer.facing(driver.addr)
    kept = b"sent before its sender went" * 8
    try:
        driver.start()
        fake.connect()
        fake.send_frame(wire.eager(fake.ep_id, kept, tag=KEPT_TAG, wire_version=fake.wire_version))
        fake.send_frame(remote_access_requests(fake, addr, key)[0])
    finally:
        fake.close()  # silent from now on: the FIN is never acknowledged
    driver.finish()
    why = explain(driver, fake)
    events = [e for e in driver.events() if e["ctx"] == "recv0"]
    assert events and events[0]["kind"] == "cqe", \
        "the message of the peer that went was not delivered\n" + why
    assert int(events[0]["len"]) == len(kept), why
    assert logged_count(driver.err, "hidden-freed") == 1, \
        "the hidden entry of the peer that went was not freed\n" + why


# --- rendezvous segments over a link that cannot read them ----------------------------

RTS_TAG = 0x71


def test_rts_segments_over_udp_are_never_used(run_driver):
    """An RTS over udp that names segments of the sender's memory (only a
    link that reads a peer's memory may use them) is served by asking for
    the bytes: CTS, the fake's DATA, then FIN and the receive's completion
    with exactly those bytes.  The segments are counted as ignored.
    """
    driver = run_driver(["--op", "none", "--recv", hex(RTS_TAG), "--wait-ms", "2000",
                         "--stop-after", "1"])
    fake = FakePeer.facing(driver.addr)
    v = fake.wire_version
    data = bytes((5 * i + 1) & 0xFF for i in range(4096))
    try:
        driver.start(fake.address)
        fake.connect()
        fake.send_frame(wire.Frame(type=FrameType.RTS, src_id=fake.ep_id,
                                   flags=int(FrameFlag.TAGGED), tag=RTS_TAG, msg_id=0x201,
                                   total_len=len(data), version=v,
                                   payload=wire.Rts(iovs=[(0x10000, len(data))]).pack(v)))
        cts = fake.next_frame(FrameType.CTS)
        fake.send_frame(wire.Frame(type=FrameType.DATA, src_id=fake.ep_id, msg_id=cts.msg_id,
                                   data=0, total_len=len(data), payload=data, version=v))
        fin = fake.next_frame(FrameType.FIN)
        fake.wait_acked()
        driver.finish(fake)
    finally:
        fake.close()
    why = explain(driver, fake)
    assert cts.msg_id == 0x201 and fin.status == 0, why
    events = [e for e in driver.events() if e["ctx"] == "recv0"]
    assert events and events[0]["kind"] == "cqe" and int(events[0]["len"]) == len(data), why
    assert logged_count(driver.err, "rts-iovs-ignored") == 1, why
