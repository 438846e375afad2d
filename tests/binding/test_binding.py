"""usb4fabric, the cffi binding of libfabric, driving usb4 (and tcp;ofi_rxm as
a control) from Python on numpy buffers."""

import json
import time

import numpy as np
import pytest

from fabric_pair import Pair, open_info
from usb4fabric import errors
from usb4fabric import info as fi_info
from usb4fabric._libfabric import ffi, lib
from usb4fabric.fabric import Fabric

MIB = 1 << 20


def address_of(op):
    """Where the provider was told to put or take the data of op."""
    return int(ffi.cast("uintptr_t", op.cdata))


def pattern(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


# --- errors ---------------------------------------------------------------

@pytest.mark.parametrize("code, cls", [
    (lib.FI_EAGAIN, errors.Again),
    (lib.FI_ENODATA, errors.NoData),
    (lib.FI_EINVAL, errors.InvalidArgument),
    (lib.FI_ENOSYS, errors.NotSupported),
    (lib.FI_EOPNOTSUPP, errors.NotSupported),
    (lib.FI_EMSGSIZE, errors.MessageTooLong),
    (lib.FI_ETRUNC, errors.Truncated),
    (lib.FI_ECANCELED, errors.Canceled),
    (lib.FI_ENOMSG, errors.NoMessage),
    (lib.FI_EACCES, errors.AccessDenied),
    (lib.FI_EPERM, errors.AccessDenied),
    (lib.FI_EAVAIL, errors.ErrorAvailable),
    (lib.FI_EHOSTUNREACH, errors.HostUnreachable),
    (lib.FI_EIO, errors.InputOutputError),
    (lib.FI_EOTHER, errors.FabricError),
])
def test_check_raises_the_class_of_the_code(code, cls):
    with pytest.raises(cls) as exc:
        errors.check(-code, "fi_something")
    assert type(exc.value) is cls
    assert isinstance(exc.value, errors.FabricError)
    assert exc.value.errno == code
    assert "fi_something" in str(exc.value)
    assert errors.error_class(code) is cls


def test_check_passes_non_negative_values():
    assert errors.check(0) == 0
    assert errors.check(4096) == 4096


def test_check_message_is_libfabrics():
    with pytest.raises(errors.Truncated) as exc:
        errors.check(-lib.FI_ETRUNC)
    assert exc.value.strerror == ffi.string(lib.fi_strerror(lib.FI_ETRUNC)).decode()


# --- providers and fi_getinfo ---------------------------------------------

def test_providers_lists_usb4(provider_dir):
    rows = fi_info.providers("usb4")
    assert rows, "libfabric does not see usb4 through FI_PROVIDER_PATH"
    for row in rows:
        assert row["ep_type"] == "FI_EP_RDM"
        assert row["mem_tag_format"] >> 63 == 1
        assert row["cq_data_size"] == 8
        assert {"FI_MSG", "FI_TAGGED"} <= set(row["caps"])
        for key in ("version", "fabric", "domain", "mode", "mr_mode", "max_msg_size",
                    "inject_size", "addr_format", "threading", "data_progress"):
            assert key in row


def test_describe_providers_is_plain_data(provider_dir):
    desc = fi_info.describe_providers()
    json.dumps(desc)
    names = [p["name"] for p in desc["providers"]]
    assert "usb4" in names
    assert desc["api_version"] == fi_info.api_version()
    assert desc["provider_path"]


def test_get_info_usb4_rdm(provider_dir):
    info = open_info("usb4")
    assert info.provider == "usb4"
    assert info.ep_type == "FI_EP_RDM"
    assert info.caps & lib.FI_TAGGED


@pytest.mark.parametrize("hints", [
    {"provider": "no-such-provider"},
    {"provider": "usb4", "ep_type": "dgram"},
    {"provider": "usb4", "ep_type": "msg"},
])
def test_impossible_hints_raise_nodata(provider_dir, hints):
    with pytest.raises(errors.NoData):
        fi_info.get_info(**hints)


# --- messaging, usb4 and the tcp control ----------------------------------

@pytest.mark.parametrize("size", [64, MIB], ids=["eager", "1MiB"])
def test_tagged_exchange_lands_in_the_posted_array(pair, size):
    src, dst = pattern(size), np.zeros(size, np.uint8)
    recv = pair.b.trecv(dst, tag=0x1234, context="r")
    assert address_of(recv) == dst.ctypes.data  # the provider writes into dst itself
    send = pair.a.tsend(src, pair.ab, tag=0x1234, context="s")
    assert address_of(send) == src.ctypes.data

    (rc,) = pair.wait(pair.b)
    (sc,) = pair.wait(pair.a, side="tx")
    assert rc.context == "r" and rc.buffer is dst
    assert rc.len == size and rc.tag == 0x1234
    assert rc.flags & lib.FI_TAGGED and rc.flags & lib.FI_RECV
    assert sc.context == "s" and sc.flags & lib.FI_SEND
    np.testing.assert_array_equal(dst, src)
    assert pair.a.tx_cq.outstanding == 0 and pair.b.rx_cq.outstanding == 0


def test_tags_select_the_receive(pair):
    one, two = np.zeros(32, np.uint8), np.zeros(32, np.uint8)
    pair.b.trecv(one, tag=1)
    pair.b.trecv(two, tag=2)
    pair.a.tsend(np.full(32, 2, np.uint8), pair.ab, tag=2)
    pair.a.tsend(np.full(32, 1, np.uint8), pair.ab, tag=1)
    got = pair.wait(pair.b, 2)
    assert sorted(c.tag for c in got) == [1, 2]
    assert (one == 1).all() and (two == 2).all()
    pair.wait(pair.a, 2, side="tx")


def test_ignore_bits_match_any_tag(pair):
    dst = np.zeros(8, np.uint64)
    pair.b.trecv(dst, tag=0x100, ignore=0xff)
    pair.a.tsend(np.arange(8, dtype=np.uint64), pair.ab, tag=0x1ab)
    (rc,) = pair.wait(pair.b)
    assert rc.tag == 0x1ab
    np.testing.assert_array_equal(dst, np.arange(8))
    pair.wait(pair.a, side="tx")


def test_untagged_send_recv_both_ways(pair):
    for tx, rx, dest in ((pair.a, pair.b, pair.ab), (pair.b, pair.a, pair.ba)):
        src, dst = pattern(4096, seed=3), np.zeros(4096, np.uint8)
        rx.recv(dst)
        tx.send(src, dest)
        (rc,) = pair.wait(rx)
        assert rc.flags & lib.FI_MSG and rc.len == 4096
        np.testing.assert_array_equal(dst, src)
        pair.wait(tx, side="tx")


def test_tsenddata_carries_remote_cq_data(pair):
    dst = np.zeros(16, np.uint8)
    pair.b.trecv(dst, tag=5)
    pair.a.tsenddata(pattern(16), pair.ab, tag=5, data=0x0123456789abcdef)
    (rc,) = pair.wait(pair.b)
    assert rc.flags & lib.FI_REMOTE_CQ_DATA
    assert rc.data == 0x0123456789abcdef
    pair.wait(pair.a, side="tx")


def test_inject_then_sread(pair):
    dst = np.zeros(8, np.uint8)
    src = np.arange(8, dtype=np.uint8)
    pair.b.trecv(dst, tag=9)
    pair.a.inject(src, pair.ab, tag=9)
    src[:] = 0  # inject: the buffer is free again at once
    got = []
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        pair.a.tx_cq.progress()
        got = pair.b.rx_cq.sread(timeout=0.1)
    assert [c.tag for c in got] == [9]
    np.testing.assert_array_equal(dst, np.arange(8))
    assert pair.a.tx_cq.read() == []  # no completion for inject


def test_sread_times_out_empty(pair):
    start = time.monotonic()
    assert pair.b.rx_cq.sread(timeout=0.2) == []
    assert time.monotonic() - start >= 0.15


def test_truncation_raises_truncated(pair, provider):
    small = np.zeros(16, np.uint8)
    src = pattern(100, seed=7)
    pair.b.trecv(small, tag=3, context="short")
    pair.a.tsend(src, pair.ab, tag=3)
    with pytest.raises(errors.Truncated) as exc:
        pair.wait(pair.b)
    entry = exc.value.entry
    assert entry.err == lib.FI_ETRUNC and entry.context == "short"
    if provider == "usb4":  # libfabric 1.17's rxm reports olen 0 and delivers nothing
        assert entry.olen == 100 - 16
        assert entry.len == 16
        np.testing.assert_array_equal(small, src[:16])
    pair.wait(pair.a, side="tx", raise_errors=False)


def test_readerr_returns_the_entry(usb4_pair):
    p = usb4_pair
    p.b.trecv(np.zeros(4, np.uint8), tag=4)
    p.a.tsend(np.ones(10, np.uint8), p.ab, tag=4)
    deadline = time.monotonic() + 10
    entry = None
    while entry is None and time.monotonic() < deadline:
        p.b.rx_cq.progress()
        p.a.tx_cq.progress()
        entry = p.b.rx_cq.readerr()
    assert entry is not None
    assert (entry.err, entry.olen, entry.len, entry.tag) == (lib.FI_ETRUNC, 6, 4, 4)
    assert isinstance(entry.exception(), errors.Truncated)


# --- memory registration and RMA -------------------------------------------

def rma_pair(provider):
    info = open_info(provider, caps=["FI_MSG", "FI_TAGGED", "FI_RMA"])
    return Pair(info)


@pytest.fixture
def rma(provider):
    try:
        p = rma_pair(provider)
    except errors.NoData:
        pytest.skip(f"{provider} does not offer FI_RMA here")
    yield p
    p.close()


def wait_until_equal(p, target, expected, timeout=10):
    """A write completes at the initiator once sent; the target's manual
    progress (tcp) may still have to land it."""
    deadline = time.monotonic() + timeout
    while not np.array_equal(target, expected) and time.monotonic() < deadline:
        p.b.rx_cq.progress()
    np.testing.assert_array_equal(target, expected)


def test_rma_write_and_read(rma):
    p = rma
    target = np.zeros(MIB, np.uint8)
    mr = p.domain.register(target, endpoint=p.b)
    assert mr.nbytes == MIB
    src = pattern(MIB, seed=11)
    w = p.a.write(src, p.ab, mr.address, mr.key, context="w")
    assert address_of(w) == src.ctypes.data
    (wc,) = p.wait(p.a, side="tx")
    assert wc.context == "w" and wc.flags & lib.FI_RMA and wc.flags & lib.FI_WRITE
    wait_until_equal(p, target, src)

    back = np.zeros(4096, np.uint8)
    r = p.a.read(back, p.ab, mr.address + 8192, mr.key)
    assert address_of(r) == back.ctypes.data
    (rc,) = p.wait(p.a, side="tx")
    assert rc.flags & lib.FI_RMA and rc.flags & lib.FI_READ
    np.testing.assert_array_equal(back, src[8192:8192 + 4096])


def test_rma_writedata_completes_at_the_target(rma):
    p = rma
    target = np.zeros(256, np.uint8)
    mr = p.domain.register(target, endpoint=p.b)
    p.b.recv(np.zeros(8, np.uint8))  # for providers that consume one (FI_RX_CQ_DATA)
    p.a.write(pattern(256), p.ab, mr.address, mr.key, data=0xfeed)
    p.wait(p.a, side="tx")
    (rc,) = p.wait(p.b)
    assert rc.flags & lib.FI_REMOTE_CQ_DATA and rc.data == 0xfeed
    np.testing.assert_array_equal(target, pattern(256))


def test_usb4_rma_with_a_bad_key_is_refused(provider_dir):
    try:
        p = rma_pair("usb4")
    except errors.NoData:
        pytest.skip("usb4 does not offer FI_RMA in this build")
    try:
        target = np.zeros(64, np.uint8)
        mr = p.domain.register(target)
        p.a.write(np.ones(64, np.uint8), p.ab, mr.address, mr.key ^ 0x5a5a)
        with pytest.raises(errors.AccessDenied) as exc:
            p.wait(p.a, side="tx")
        assert exc.value.entry.err == lib.FI_EACCES
        assert (target == 0).all()
    finally:
        p.close()


def test_rma_on_an_endpoint_without_fi_rma_is_refused(pair):
    """Opened with FI_MSG|FI_TAGGED only: the binding refuses RMA calls with
    NotSupported instead of making a call libfabric leaves undefined."""
    assert not pair.a.info.caps & lib.FI_RMA
    target = np.zeros(64, np.uint8)
    mr = pair.domain.register(target, endpoint=pair.b)
    assert isinstance(mr.key, int)
    with pytest.raises(errors.NotSupported):
        pair.a.write(np.ones(64, np.uint8), pair.ab, mr.address, mr.key)
    with pytest.raises(errors.NotSupported):
        pair.a.read(np.ones(64, np.uint8), pair.ab, mr.address, mr.key)
    assert (target == 0).all()
    assert pair.a.tx_cq.outstanding == 0


def test_memory_region_describes_the_array(usb4_pair):
    arr = np.zeros(1000, np.float64)
    with usb4_pair.domain.register(arr) as mr:
        assert mr.nbytes == arr.nbytes
        if usb4_pair.domain.mr_mode & lib.FI_MR_VIRT_ADDR:
            assert mr.address == arr.ctypes.data
        mr.key, mr.desc  # noqa: B018 - both readable while open
    assert mr.closed
    with pytest.raises(ValueError):
        mr.key  # noqa: B018


# --- lifetimes ---------------------------------------------------------------

def test_closing_the_fabric_closes_everything_in_order(provider_dir):
    with Fabric(open_info("usb4")) as fabric:
        domain = fabric.domain()
        ep = domain.endpoint()
        mr = domain.register(np.zeros(64, np.uint8))
        cq, av = ep.tx_cq, ep.av
    for obj in (fabric, domain, ep, mr, cq, av):
        assert obj.closed
    fabric.close()  # idempotent
    with pytest.raises(ValueError):
        ep.send(np.zeros(1, np.uint8), 0)


def test_closing_a_cq_closes_its_endpoint_first(provider_dir):
    with Fabric(open_info("usb4")) as fabric:
        ep = fabric.domain().endpoint()
        ep.tx_cq.close()
        assert ep.closed


def test_pending_receive_buffer_stays_referenced(usb4_pair):
    p = usb4_pair
    op = p.b.trecv(np.zeros(32, np.uint8), tag=77)
    assert p.b.rx_cq.outstanding == 1
    p.a.tsend(np.full(32, 7, np.uint8), p.ab, tag=77)  # the array only lives in op
    (rc,) = p.wait(p.b)
    assert rc.op is op and (rc.buffer == 7).all()
    p.wait(p.a, side="tx")
