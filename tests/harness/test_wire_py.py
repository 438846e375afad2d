"""python/usb4fabric/wire.py: round trips, CRC32C known answers, and the C side.

The C cross-checks compile small programs with gcc: every field's offsetof
and sizeof in wire.h (and in the version 1 headers of commit 0948737, read
with git), usb4_wire_addr_init(), usb4_crc32c() and usb4_rel_reject() built
from prov_usb4/src (rel and base sources, -lfabric), against what wire.py
packs.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from usb4fabric import wire
from usb4fabric.wire import Address, Frame, FrameFlag, FrameType, RelDatagram, RelType, Rts

REPO_ROOT = Path(__file__).resolve().parents[2]
PROV = REPO_ROOT / "prov_usb4"
V1_COMMIT = "0948737"  # the last tree of wire version 1
CC_TIMEOUT = 120


# ---- CRC32C ---------------------------------------------------------------------

# RFC 3720 (iSCSI) B.4 and the classic check value.
CRC_KNOWN = [
    (b"123456789", 0xE3069283),
    (b"", 0),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
]


@pytest.mark.parametrize("data,want", CRC_KNOWN, ids=[str(i) for i in range(len(CRC_KNOWN))])
def test_crc32c_known_answers(data, want):
    assert wire.crc32c(data) == want


def test_crc32c_continues_like_the_provider():
    data = bytes(range(256)) * 3
    for cut in (0, 1, 100, 767, len(data)):
        assert wire.crc32c(data[cut:], wire.crc32c(data[:cut])) == wire.crc32c(data)


# ---- round trips -----------------------------------------------------------------

@pytest.mark.parametrize("version", wire.WIRE_VERSIONS)
def test_address_round_trip(version):
    addr = Address.udp(0x1122334455667788, 0x0102030405060708, "10.77.0.2", 40000,
                       wire_version=version)
    raw = addr.pack()
    assert len(raw) == wire.ADDR_LEN
    back = Address.unpack(raw)
    assert (back.host_id, back.ep_id, back.wire_version, back.udp_family,
            back.udp_port, back.ip) == (addr.host_id, addr.ep_id, version, 4, 40000,
                                        "10.77.0.2")
    assert back.pack() == raw


def test_address_layouts_differ_where_the_versions_do():
    v1 = Address.udp(1, 2, "127.0.0.1", 0x1234, wire_version=1).pack()
    v2 = Address.udp(1, 2, "127.0.0.1", 0x1234, wire_version=2).pack()
    # v1: version 2, udp_family and port right after it; v2: version 3,
    # proto 2, the udp fields after the shm ones.
    assert v1[4:8] == bytes([2, 4]) + (0x1234).to_bytes(2, "little")
    assert v2[4:6] == bytes([3, 2])
    assert v2[36:40] == bytes([4, 0]) + (0x1234).to_bytes(2, "little")
    assert v1[40:44] == v2[40:44] == bytes([127, 0, 0, 1])


def test_address_ipv6_and_errors():
    addr = Address.unpack(Address.udp(1, 2, "::1", 9, wire_version=2).pack())
    assert addr.udp_family == 6 and addr.ip == "::1"
    with pytest.raises(wire.WireError):
        Address.unpack(bytes(55))
    with pytest.raises(wire.WireError):
        Address.unpack(bytes(56))  # no magic
    bad = bytearray(Address(host_id=1, ep_id=2).pack())
    bad[4] = 9
    with pytest.raises(wire.WireError):
        Address.unpack(bytes(bad))


@pytest.mark.parametrize("version", wire.WIRE_VERSIONS)
def test_frame_round_trip(version):
    frame = Frame(type=FrameType.EAGER, src_id=0xABCDEF, flags=int(FrameFlag.TAGGED),
                  tag=0x77, data=0x55, msg_id=(3 << 32) | 9, total_len=5, payload=b"hello",
                  version=version)
    raw = frame.pack()
    assert len(raw) == 48 + 5 and raw[0] == version and raw[1] == FrameType.EAGER
    back = Frame.unpack(raw)
    back.check()
    assert back == dataclasses.replace(frame, payload_len=5)


def test_frame_check_rejects_what_the_parser_does():
    with pytest.raises(wire.WireError):
        Frame.unpack(bytes(47))
    with pytest.raises(wire.WireError):
        Frame(type=0).check()
    with pytest.raises(wire.WireError):
        Frame(type=FrameType.FIN, flags=1 << 7).check()
    with pytest.raises(wire.WireError):
        Frame.unpack(Frame(type=FrameType.FIN, payload_len=3).pack()).check()


@pytest.mark.parametrize("status", [0, -5, -111, -12345, 0x123456789ABC, -(1 << 63)])
def test_fin_status_round_trip(status):
    frame = Frame.unpack(wire.fin(1, 2, status=status).pack())
    assert frame.type == FrameType.FIN and frame.status == status
    assert frame.data == status & (2 ** 64 - 1)


@pytest.mark.parametrize("version", wire.WIRE_VERSIONS)
def test_rts_round_trip(version):
    rts = Rts(iovs=[(0x1000, 10), (0x2000, 20)], pid=4321 if version == 1 else 0)
    raw = rts.pack(version)
    assert len(raw) == 8 + 2 * 16
    head = raw[:8]
    # v1 names the sender's process first; v2 has the count first.
    want = (4321).to_bytes(4, "little") + (2).to_bytes(4, "little") if version == 1 \
        else (2).to_bytes(4, "little") + bytes(4)
    assert head == want
    assert Rts.unpack(raw, version) == rts
    with pytest.raises(wire.WireError):
        Rts.unpack(raw[:-1], version)


def test_rma_segments_round_trip():
    segs = [(0x10000, 4096, 0x1234), (0x20000, 1, 0)]
    raw = wire.pack_rma_segs(segs)
    assert len(raw) == 48 and wire.unpack_rma_segs(raw) == segs
    for bad in (b"", raw[:-1], wire.pack_rma_segs(segs * 3)):
        with pytest.raises(wire.WireError):
            wire.unpack_rma_segs(bad)


def test_inline_write_segments():
    """A WRITE_REQ with its bytes inline (FEATURE_WRITE_INLINE): the tag
    is their count, the segments come first."""
    segs = [(0x10000, 8, 0x1234)]
    raw = wire.pack_rma_segs(segs) + b"12345678"
    assert wire.unpack_rma_segs(raw, inline=8) == segs
    assert wire.FEATURES & wire.FEATURE_WRITE_INLINE
    for bad, inline in ((raw, 9), (raw[:8], 8), (raw + bytes(300), 308)):
        with pytest.raises(wire.WireError):
            wire.unpack_rma_segs(bad, inline=inline)


def test_inline_read_answer():
    """A small read's whole answer (FEATURE_READ_INLINE): one READ_INLINE
    frame whose total_len is its bytes; offered by the current version."""
    assert wire.FEATURES & wire.FEATURE_READ_INLINE == 1 << 6
    frame = wire.Frame(type=FrameType.READ_INLINE, msg_id=5, total_len=8, data=0,
                       payload=b"12345678")
    back = wire.Frame.unpack(frame.pack())
    back.check()
    assert (back.type, back.total_len, back.payload, back.status) == (
        FrameType.READ_INLINE, 8, b"12345678", 0)
    assert wire.READ_INLINE_MAX == 256


def test_rel_datagram_round_trip_and_crc():
    frame = wire.eager(7, b"x" * 100, tag=3).pack()
    dgram = RelDatagram(type=RelType.DATA, src_id=7, dst_id=8, seq=0xFFFFFFFF, ack=12,
                        sack=0b101, window=64, payload=frame)
    raw = dgram.pack()
    back = RelDatagram.unpack(raw)
    assert back.crc_ok and back.len == len(frame) and back.raw == raw
    assert (back.type, back.src_id, back.dst_id, back.seq, back.ack, back.sack,
            back.window) == (RelType.DATA, 7, 8, 0xFFFFFFFF, 12, 0b101, 64)
    assert back.frame.payload == b"x" * 100
    # The CRC covers the whole datagram, computed with its own field 0.
    crc = int.from_bytes(raw[4:8], "little")
    assert crc == wire.crc32c(raw[:4] + bytes(4) + raw[8:])
    spoiled = bytearray(raw)
    spoiled[-1] ^= 1
    assert not RelDatagram.unpack(bytes(spoiled)).crc_ok


def test_rail_list_round_trip_and_errors():
    rails = [("10.77.1.1", 4000), ("10.77.2.1", 4001)]
    data = wire.pack_rails(rails)
    assert len(data) == 4 + 20 * 2 and data[0] == 2
    assert wire.unpack_rails(data) == rails
    for bad in (data[:-1], bytes([5]) + data[1:], bytes([0]) + data[1:],
                data[:4 + 20] + bytes([7]) + data[25:]):
        with pytest.raises(wire.WireError):
            wire.unpack_rails(bad)
    with pytest.raises(wire.WireError):
        wire.pack_rails([])


def test_handshake_payload_per_version():
    v1 = RelDatagram.unpack(wire.handshake(1, RelType.HELLO, 1, 2, isn=77).pack())
    v2 = RelDatagram.unpack(wire.handshake(2, RelType.HELLO, 1, 2, isn=77,
                                           datagram_max=9000).pack())
    assert v1.crc_ok and v1.payload == b"" and v1.hello is None and v1.seq == 77
    assert v2.crc_ok and len(v2.payload) == 16
    assert v2.hello == wire.Hello(proto=2, features=0, datagram_max=9000)
    future = RelDatagram.unpack(wire.handshake(3, RelType.HELLO, 1, 2, isn=0).pack())
    assert future.version == 3 and future.hello.proto == 3
    assert RelType.REJECT not in wire.rel_types(1) and RelType.REJECT in wire.rel_types(2)


# ---- the C side ------------------------------------------------------------------

def compile_and_run(tmp_path: Path, name: str, source: str, extra: list[str]) -> str:
    if shutil.which("gcc") is None:
        pytest.fail("gcc not found", pytrace=False)
    src = tmp_path / (name + ".c")
    exe = tmp_path / name
    src.write_text(source)
    argv = ["gcc", "-std=gnu11", "-O1", "-D_GNU_SOURCE", "-Wall", "-o", str(exe),
            str(src)] + extra
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=CC_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, "%s\n%s" % (" ".join(argv), proc.stderr)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    return run.stdout


def offsets_program(layouts, prelude: str) -> str:
    """C printing 'struct field offset size' for every field of layouts."""
    lines = [prelude, "#include <stdio.h>", "#include <stddef.h>",
             "#define F(s, f) printf(\"%s %s %zu %zu\\n\", #s, #f, "
             "offsetof(struct s, f), sizeof(((struct s *) 0)->f))",
             "int main(void)", "{"]
    for layout in layouts:
        lines.append('\tprintf("%s size %%zu\\n", sizeof(struct %s));'
                     % (layout.name, layout.name))
        lines += ["\tF(%s, %s);" % (layout.name, field) for field, _ in layout.fields]
    lines += ["\treturn 0;", "}", ""]
    return "\n".join(lines)


def check_offsets(output: str, layouts) -> None:
    c_side = {}
    for line in output.splitlines():
        parts = line.split()
        if parts[1] == "size":
            c_side[(parts[0], None)] = (int(parts[2]),)
        else:
            c_side[(parts[0], parts[1])] = (int(parts[2]), int(parts[3]))
    for layout in layouts:
        assert c_side[(layout.name, None)] == (layout.size,), layout.name
        for field, where in layout.offsets().items():
            assert c_side[(layout.name, field)] == where, "%s.%s" % (layout.name, field)


def test_layouts_match_wire_h(tmp_path):
    """Every field of every struct of this version where wire.h puts it."""
    layouts = wire.LAYOUTS[wire.CURRENT_VERSION]
    out = compile_and_run(tmp_path, "offsets", offsets_program(
        layouts, '#include "wire.h"'), ["-I", str(PROV / "src")])
    check_offsets(out, layouts)


def git_show(path: str) -> str:
    proc = subprocess.run(["git", "-C", str(REPO_ROOT), "show", "%s:%s" % (V1_COMMIT, path)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip("commit %s (wire version 1) not in this clone: %s"
                    % (V1_COMMIT, proc.stderr.strip()))
    return proc.stdout


def test_layouts_match_version_1_headers(tmp_path):
    """The v1 layouts against wire.h and struct usb4_addr of commit 0948737."""
    wire_h = git_show("prov_usb4/src/wire.h")
    core_h = git_show("prov_usb4/include/usb4_core.h")
    addr = re.search(r"struct usb4_addr \{.*?\};", core_h, re.S)
    assert addr, "struct usb4_addr not in usb4_core.h of %s" % V1_COMMIT
    assert "#define USB4_WIRE_VERSION\t1" in wire_h
    (tmp_path / "wire.h").write_text(wire_h)
    layouts = wire.LAYOUTS[1]
    prelude = '#include "wire.h"\n' + addr.group(0) + "\n"
    out = compile_and_run(tmp_path, "offsets_v1", offsets_program(layouts, prelude),
                          ["-I", str(tmp_path)])
    check_offsets(out, layouts)


REL_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include "usb4_rel.h"
#include "usb4_rel_check.h"
#include "wire.h"

static void hex(const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", ((const unsigned char *) p)[i]);
	printf("\n");
}

int main(void)
{
	static const size_t sizes[] = { 0, 1, 7, 8, 63, 64, 255, 1023, 1024, 4096, 65000 };
	static unsigned char data[65000 + 48];
	struct usb4_wire_addr a;
	unsigned char reject[USB4_REL_REJECT_LEN];
	size_t n;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char) (i * 131 + 7);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		printf("crc %zu %08x\n", sizes[i], usb4_crc32c(0, data, sizes[i]));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		/* the header: the first 48 bytes of data, its check field 0 */
		struct usb4_wire_rel h;
		struct iovec iov = { data + sizeof(h), sizes[i] };

		memcpy(&h, data, sizeof(h));
		h.crc = 0;
		printf("xxh3 %zu %08x\n", sizes[i],
		       usb4_rel_check(true, &h, &iov, sizes[i] ? 1 : 0));
	}
	usb4_wire_addr_init(&a, 0x1122334455667788ull, 0x0102030405060708ull);
	printf("addr ");
	hex(&a, sizeof(a));
	n = usb4_rel_reject(reject, 0xa1a2a3a4a5a6a7a8ull, 0xb1b2b3b4b5b6b7b8ull);
	printf("reject ");
	hex(reject, n);
	return 0;
}
"""


@pytest.fixture(scope="module")
def rel_output(tmp_path_factory):
    """REL_PROGRAM built with rel and base from source (no build tree needed):
    {"crc": [(size, crc)], "addr": bytes, "reject": bytes}."""
    tmp = tmp_path_factory.mktemp("wire_c")
    sources = sorted(str(p) for p in (PROV / "src" / "rel").glob("*.c"))
    sources += sorted(str(p) for p in (PROV / "src" / "base").glob("*.c"))
    out = compile_and_run(tmp, "rel", REL_PROGRAM,
                          ["-I", str(PROV / "include"), "-I", str(PROV / "src" / "rel"),
                           "-I", str(PROV / "src")] + sources
                          + ["-lfabric", "-lsodium", "-lcrypto", "-lxxhash",
                             "-lpthread"])
    found = {"crc": [], "xxh3": []}
    for line in out.splitlines():
        key, *values = line.split()
        if key in ("crc", "xxh3"):
            found[key].append((int(values[0]), int(values[1], 16)))
        else:
            found[key] = bytes.fromhex(values[0])
    return found


def test_crc32c_matches_usb4_crc32c(rel_output):
    """Hardware and folded paths of the provider included (large sizes)."""
    data = bytes((i * 131 + 7) & 0xFF for i in range(65000))
    assert rel_output["crc"]
    for size, crc in rel_output["crc"]:
        assert wire.crc32c(data[:size]) == crc, "size %d" % size


def test_xxh3_check_matches_usb4_rel_check(rel_output):
    """A 48-byte header (check field 0) and a payload of each size: the
    provider's check (gathered or streamed) is the low half of one XXH3
    over the bytes, as wire.xxh3_32 computes it."""
    data = bytes((i * 131 + 7) & 0xFF for i in range(65000 + 48))
    assert rel_output["xxh3"]
    for size, check in rel_output["xxh3"]:
        zeroed = data[:4] + bytes(4) + data[8:48 + size]
        assert wire.xxh3_32(zeroed) == check, "size %d" % size


def test_xxh3_known_answers():
    """XXH3_64bits of the reference vectors (xxHash's own, seed 0)."""
    assert wire.xxh3_32(b"") == 0x2D06800538D394C2 & 0xFFFFFFFF


def test_rel_datagram_xxh3():
    """A DATA or ACK flagged REL_F_XXH3 carries XXH3's low half over the
    datagram with the field 0; a flipped bit anywhere fails it; a HELLO so
    flagged is still read as CRC32C (handshakes never use XXH3)."""
    frame = wire.eager(7, bytes(range(256)) * 3, tag=3).pack()
    for rtype, payload in ((RelType.DATA, frame), (RelType.ACK, b"")):
        raw = RelDatagram(type=rtype, src_id=7, dst_id=8, seq=5, ack=9, window=64,
                          flags=wire.REL_F_XXH3, payload=payload).pack()
        zeroed = raw[:4] + bytes(4) + raw[8:]
        assert int.from_bytes(raw[4:8], "little") == wire.xxh3_32(zeroed)
        assert int.from_bytes(raw[4:8], "little") != wire.crc32c(zeroed)
        assert RelDatagram.unpack(raw).crc_ok
        for i in range(0, len(raw), 7):
            spoiled = bytearray(raw)
            spoiled[i] ^= 0x10
            assert not RelDatagram.unpack(bytes(spoiled)).crc_ok, "byte %d" % i
    hello = wire.handshake(3, RelType.HELLO, 7, 8, 1)
    hello.flags = wire.REL_F_XXH3
    raw = hello.pack()
    assert int.from_bytes(raw[4:8], "little") == wire.crc32c(raw[:4] + bytes(4) + raw[8:])


def test_address_matches_usb4_wire_addr_init(rel_output):
    mine = Address(host_id=0x1122334455667788, ep_id=0x0102030405060708).pack()
    assert mine == rel_output["addr"]


def test_reject_matches_usb4_rel_reject(rel_output):
    c_side = rel_output["reject"]
    mine = wire.reject(0xA1A2A3A4A5A6A7A8, 0xB1B2B3B4B5B6B7B8).pack()
    assert mine == c_side
    parsed = RelDatagram.unpack(c_side)
    assert parsed.crc_ok and parsed.type == RelType.REJECT
    assert parsed.hello.proto == wire.CURRENT_VERSION
