"""libfabric objects from Python: Fabric, Domain, AddressVector,
CompletionQueue, MemoryRegion and an RDM Endpoint with its data calls.

Buffers are anything with the buffer protocol (numpy arrays, bytearray, bytes
for sends); the provider gets a pointer into them (ffi.from_buffer, no copy),
and the binding keeps each buffer alive until its completion is read. Every
operation carries its own fi_context2, so providers asking for FI_CONTEXT or
FI_CONTEXT2 mode are served.

Closing: every object knows the objects that depend on it (children, and for a
CQ or an AV the endpoints bound to it) and closes them first; all objects are
context managers, and close() is idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar, Union

from ._libfabric import ffi, lib
from .errors import FabricError, NotSupported, check, error_class, strerror
from .info import CAPS, CData, Info, flag_names, get_info

# Anything with the buffer protocol (numpy array, bytearray, bytes for sends):
# not expressible as a type before Python 3.12's collections.abc.Buffer.
Buffer = Any
# A local descriptor: a MemoryRegion, its desc (CData), or None (the binding
# registers the buffer itself when the domain needs FI_MR_LOCAL).
Desc = Union["MemoryRegion", CData, None]

__all__ = [
    "Fabric", "Domain", "AddressVector", "CompletionQueue", "MemoryRegion",
    "Endpoint", "Completion", "CqError", "Operation", "open_endpoint",
    "ADDR_UNSPEC", "ALL_ACCESS",
]

ADDR_UNSPEC: int = lib.FI_ADDR_NOTAVAIL  # == FI_ADDR_UNSPEC: any source
ALL_ACCESS: int = (lib.FI_SEND | lib.FI_RECV | lib.FI_READ | lib.FI_WRITE
              | lib.FI_REMOTE_READ | lib.FI_REMOTE_WRITE)
_CQ_FLAG_TABLE = {n: v for n, v in CAPS.items()}
_CQ_FLAG_TABLE.update({"FI_MORE": lib.FI_MORE, "FI_COMPLETION": lib.FI_COMPLETION})
_POST_RETRY_SECONDS = 10.0  # how long a data call retries on FI_EAGAIN by default
_R = TypeVar("_R", bound="_Resource")


class _Resource:
    """A libfabric fid with the objects that must close before it."""

    _ptr: CData = None  # the libfabric object (struct fid_* *), None once closed

    def __init__(self, parent: _Resource | None = None):
        self._parent = parent  # keeps the parent open while we live
        self._dependents: list[_Resource] = []  # objects to close before this one
        self._owners: list[_Resource] = []  # objects whose _dependents hold this one
        self._closed = False
        if parent is not None:
            self._depend_on(parent)

    def _depend_on(self, owner: _Resource) -> None:
        owner._dependents.append(self)
        self._owners.append(owner)

    def _fid(self) -> CData:
        return ffi.addressof(self._ptr[0], "fid")

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close dependents (newest first), then this object."""
        if self._closed:
            return
        self._closed = True
        for dep in reversed(list(self._dependents)):
            dep.close()
        self._dependents.clear()
        for owner in self._owners:
            if self in owner._dependents:
                owner._dependents.remove(self)
        self._owners.clear()
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            check(lib.fi_close(ffi.addressof(ptr[0], "fid")), f"fi_close({type(self).__name__})")

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{type(self).__name__} is closed")

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown or a provider error: nothing to report to
            pass


class Fabric(_Resource):
    """fi_fabric for an Info (from get_info)."""

    def __init__(self, info: Info):
        super().__init__()
        self.info = info
        out = ffi.new("struct fid_fabric **")
        check(lib.fi_fabric(info.ptr.fabric_attr, out, ffi.NULL), "fi_fabric")
        self._ptr = out[0]

    def domain(self, info: Info | None = None) -> Domain:
        return Domain(self, info or self.info)


class Domain(_Resource):
    """fi_domain; opens the AVs, CQs, MRs and endpoints of that domain."""

    def __init__(self, fabric: Fabric, info: Info | None = None):
        super().__init__(fabric)
        self.info = info or fabric.info
        self.mr_mode: int = self.info.mr_mode
        out = ffi.new("struct fid_domain **")
        check(lib.fi_domain(fabric._ptr, self.info.ptr, out, ffi.NULL), "fi_domain")
        self._ptr = out[0]
        self._next_key = 1

    def address_vector(self, **kw: Any) -> AddressVector:
        return AddressVector(self, **kw)

    def completion_queue(self, **kw: Any) -> CompletionQueue:
        return CompletionQueue(self, **kw)

    def register(self, buf: Buffer, **kw: Any) -> MemoryRegion:
        return MemoryRegion(self, buf, **kw)

    def endpoint(self, **kw: Any) -> Endpoint:
        return Endpoint(self, **kw)

    def progress(self) -> None:
        """Progress every open CQ of this domain (for manual progress when the
        peers of an operation live in this process too)."""
        for dep in list(self._dependents):
            if isinstance(dep, CompletionQueue) and not dep.closed:
                dep.progress()

    def _requested_key(self) -> int:
        key, self._next_key = self._next_key, self._next_key + 1
        return key


class AddressVector(_Resource):
    """fi_av_open; insert() turns endpoint names into fi_addr_t values."""

    def __init__(self, domain: Domain, av_type: int | None = None, count: int = 64):
        super().__init__(domain)
        attr = ffi.new("struct fi_av_attr *")
        attr.type = av_type if av_type is not None else lib.FI_AV_UNSPEC
        attr.count = count
        out = ffi.new("struct fid_av **")
        check(lib.fi_av_open(domain._ptr, attr, out, ffi.NULL), "fi_av_open")
        self._ptr = out[0]

    def insert(self, *names: bytes) -> list[int]:
        """fi_av_insert of endpoint names (bytes); returns one fi_addr per name."""
        self._check_open()
        addrs = ffi.new("fi_addr_t[]", len(names))
        for i, name in enumerate(names):
            n = check(lib.fi_av_insert(self._ptr, name, 1, addrs + i, 0, ffi.NULL),
                      "fi_av_insert")
            if n != 1:
                raise FabricError(lib.FI_EINVAL, f"fi_av_insert: address {i} not inserted")
        return [addrs[i] for i in range(len(names))]

    def remove(self, *fi_addrs: int) -> None:
        self._check_open()
        arr = ffi.new("fi_addr_t[]", list(fi_addrs))
        check(lib.fi_av_remove(self._ptr, arr, len(fi_addrs), 0), "fi_av_remove")


@dataclass
class Operation:
    """A posted operation: what it was, and what must live until it completes."""
    kind: str
    context: Any  # the caller's context object
    buffer: Any = field(repr=False)  # the caller's buffer (e.g. the numpy array)
    cdata: CData = field(default=None, repr=False)  # ffi.from_buffer view of buffer
    ctx: CData = field(default=None, repr=False)  # the fi_context2 given to the provider
    # registered for this operation alone (FI_MR_LOCAL)
    mr: MemoryRegion | None = field(default=None, repr=False)

    def release(self) -> None:
        if self.mr is not None:
            self.mr.close()
            self.mr = None
        self.cdata = None
        self.ctx = None


@dataclass
class Completion:
    """One fi_cq_tagged_entry."""
    op: Operation | None
    flags: int
    len: int
    buf: int
    data: int
    tag: int

    @property
    def context(self) -> Any:
        return self.op.context if self.op else None

    @property
    def buffer(self) -> Buffer:
        return self.op.buffer if self.op else None

    @property
    def flag_names(self) -> list[str]:
        return flag_names(self.flags, _CQ_FLAG_TABLE)


@dataclass
class CqError(Completion):
    """One fi_cq_err_entry: err is a positive FI_E* code, olen the overflow."""
    olen: int = 0
    err: int = 0
    prov_errno: int = 0
    message: str = field(default="")

    def exception(self) -> FabricError:
        """The FabricError subclass instance for this entry (entry attached)."""
        return error_class(self.err)(self.err, self.message, entry=self)


class CompletionQueue(_Resource):
    """fi_cq_open with FI_CQ_FORMAT_TAGGED.

    read() returns Completions (empty list when there are none) and raises the
    exception of an error entry (Truncated, Canceled, ...) with the entry as
    .entry; readerr() returns the error entry itself; sread() blocks with a
    timeout (needs a wait object: wait_obj=FI_WAIT_UNSPEC, the default).
    """

    def __init__(self, domain: Domain, size: int = 0, wait_obj: int | None = None,
                 batch: int = 16):
        super().__init__(domain)
        self._ptr = self._open(domain, size, wait_obj)
        self._entries = ffi.new("struct fi_cq_tagged_entry[]", batch)
        self._batch = batch
        self._ops: dict[int, Operation] = {}  # address of fi_context2 -> Operation
        self._backlog: list[Completion] = []  # read by progress(), not returned yet

    @staticmethod
    def _open(domain: Domain, size: int, wait_obj: int | None) -> CData:
        """fi_cq_open; wait_obj None means FI_WAIT_UNSPEC (sread works), or
        FI_WAIT_NONE for providers that have no wait objects."""
        attr = ffi.new("struct fi_cq_attr *")
        attr.size = size
        attr.format = lib.FI_CQ_FORMAT_TAGGED
        out = ffi.new("struct fid_cq **")
        waits = [wait_obj] if wait_obj is not None else [lib.FI_WAIT_UNSPEC, lib.FI_WAIT_NONE]
        for wait in waits:
            attr.wait_obj = wait
            ret = lib.fi_cq_open(domain._ptr, attr, out, ffi.NULL)
            if wait == waits[-1] or ret not in (-lib.FI_ENOSYS, -lib.FI_EOPNOTSUPP, -lib.FI_EINVAL):
                break
        check(ret, "fi_cq_open")
        return out[0]

    # -- bookkeeping for Endpoint ------------------------------------------
    def _track(self, op: Operation) -> None:
        self._ops[int(ffi.cast("uintptr_t", op.ctx))] = op

    def _untrack(self, op: Operation) -> None:
        self._ops.pop(int(ffi.cast("uintptr_t", op.ctx)), None)

    def _take_op(self, op_context: CData) -> Operation | None:
        op = self._ops.pop(int(ffi.cast("uintptr_t", op_context)), None)
        if op is not None:
            op.release()
        return op

    @property
    def outstanding(self) -> int:
        """Operations posted with this CQ and not completed yet."""
        return len(self._ops)

    # -- reading -----------------------------------------------------------
    def _completion(self, e: CData) -> Completion:
        return Completion(self._take_op(e.op_context), e.flags, e.len,
                          int(ffi.cast("uintptr_t", e.buf)), e.data, e.tag)

    def readerr(self) -> CqError | None:
        """fi_cq_readerr: the next error entry as a CqError, or None."""
        self._check_open()
        for i, item in enumerate(self._backlog):
            if isinstance(item, CqError):
                del self._backlog[i]
                return item
        return self._readerr()

    def _readerr(self) -> CqError | None:
        e = ffi.new("struct fi_cq_err_entry *")
        ret = lib.fi_cq_readerr(self._ptr, e, 0)
        if ret == -lib.FI_EAGAIN:
            return None
        check(ret, "fi_cq_readerr")
        msg = strerror(e.err)
        buf = ffi.new("char[]", 256)
        p = lib.fi_cq_strerror(self._ptr, e.prov_errno, e.err_data, buf, 256)
        if p != ffi.NULL and e.prov_errno:
            msg = f"{msg} ({ffi.string(p).decode(errors='replace')})"
        return CqError(self._take_op(e.op_context), e.flags, e.len,
                       int(ffi.cast("uintptr_t", e.buf)), e.data, e.tag,
                       olen=e.olen, err=e.err, prov_errno=e.prov_errno, message=msg)

    def _poll(self, ret: int) -> int:
        """Turn the return of fi_cq_read/sread into backlog items."""
        if ret == -lib.FI_EAGAIN or ret == -lib.FI_ETIMEDOUT:
            return 0
        if ret == -lib.FI_EAVAIL:
            err = self._readerr()
            if err is not None:
                self._backlog.append(err)
            return 1
        check(ret, "fi_cq_read")
        for i in range(ret):
            self._backlog.append(self._completion(self._entries[i]))
        return ret

    def progress(self) -> int:
        """Read what the provider has (this drives manual progress); keep it
        for the next read(). Returns how many entries were taken."""
        self._check_open()
        return self._poll(lib.fi_cq_read(self._ptr, self._entries, self._batch))

    def _drain_backlog(self, raise_errors: bool) -> list[Completion]:
        out: list[Completion] = []
        while self._backlog:
            item = self._backlog[0]
            if isinstance(item, CqError) and raise_errors:
                if out:
                    break  # return what came before; the error is raised next time
                self._backlog.pop(0)
                raise item.exception()
            out.append(self._backlog.pop(0))
        return out

    def read(self, raise_errors: bool = True) -> list[Completion]:
        """Completions available now (maybe none). An error entry is raised as
        its exception (raise_errors) or returned as a CqError."""
        self.progress()
        return self._drain_backlog(raise_errors)

    def sread(self, timeout: float | None = 1.0, raise_errors: bool = True) -> list[Completion]:
        """fi_cq_sread: wait up to timeout seconds (None: forever) for at least one
        completion; [] on timeout."""
        self._check_open()
        if not self._backlog:
            ms = -1 if timeout is None else int(timeout * 1000)
            self._poll(lib.fi_cq_sread(self._ptr, self._entries, self._batch, ffi.NULL, ms))
        return self._drain_backlog(raise_errors)

    def wait(self, count: int = 1, timeout: float = 10.0,
             progress: Iterable[CompletionQueue] = (), raise_errors: bool = True) -> list[Completion]:
        """Poll until count completions have been read; also progresses the CQs
        in progress (e.g. the peer's, when both endpoints live in this process).
        Raises TimedOut (FI_ETIMEDOUT) on timeout."""
        out: list[Completion] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            out.extend(self.read(raise_errors))
            for cq in progress:
                cq.progress()
            if len(out) < count and time.monotonic() > deadline:
                raise error_class(lib.FI_ETIMEDOUT)(
                    lib.FI_ETIMEDOUT, f"{len(out)} of {count} completions in {timeout} s")
        return out


class MemoryRegion(_Resource):
    """fi_mr_reg of a whole buffer (numpy array...), without copying it.

    key and desc are what the peer (key, address) and local calls (desc) need;
    address is the remote address to use in RMA calls (the virtual address under
    FI_MR_VIRT_ADDR, else 0 = offset into the region).
    """

    def __init__(self, domain: Domain, buf: Buffer, access: int = ALL_ACCESS,
                 key: int | None = None, endpoint: Endpoint | None = None):
        super().__init__(domain)
        self.buffer = buf
        self._cdata: CData = ffi.from_buffer(buf, require_writable=bool(
            access & (lib.FI_RECV | lib.FI_READ | lib.FI_REMOTE_WRITE)))
        self.nbytes = len(self._cdata)
        if key is None:
            key = 0 if domain.mr_mode & lib.FI_MR_PROV_KEY else domain._requested_key()
        out = ffi.new("struct fid_mr **")
        check(lib.fi_mr_reg(domain._ptr, self._cdata, self.nbytes, access, 0, key, 0,
                            out, ffi.NULL), "fi_mr_reg")
        self._ptr = out[0]
        if domain.mr_mode & lib.FI_MR_ENDPOINT:
            if endpoint is None:
                self.close()
                raise ValueError("this domain has FI_MR_ENDPOINT: pass endpoint=")
            check(lib.fi_mr_bind(self._ptr, endpoint._fid(), 0), "fi_mr_bind")
            check(lib.fi_mr_enable(self._ptr), "fi_mr_enable")
            self._depend_on(endpoint)
        virt = domain.mr_mode & lib.FI_MR_VIRT_ADDR
        self.address = int(ffi.cast("uintptr_t", self._cdata)) if virt else 0

    @property
    def key(self) -> int:
        self._check_open()
        return lib.fi_mr_key(self._ptr)

    @property
    def desc(self) -> CData:
        self._check_open()
        return lib.fi_mr_desc(self._ptr)

    def close(self) -> None:
        super().close()
        self._cdata = None


class Endpoint(_Resource):
    """An enabled endpoint (FI_EP_RDM by default) bound to an AV and CQ(s).

    Data calls take a buffer and a peer fi_addr; they return the Operation
    (None for inject) and retry on FI_EAGAIN, progressing the domain's CQs,
    for up to retry seconds before raising Again (retry=0: raise at once).
    Their completions are read from the CQ; completion.buffer is the array.
    """

    def __init__(self, domain: Domain, info: Info | None = None, av: AddressVector | None = None,
                 cq: CompletionQueue | None = None, tx_cq: CompletionQueue | None = None,
                 rx_cq: CompletionQueue | None = None):
        super().__init__(domain)
        self.info = info or domain.info
        self.domain = domain
        out = ffi.new("struct fid_ep **")
        check(lib.fi_endpoint(domain._ptr, self.info.ptr, out, ffi.NULL), "fi_endpoint")
        self._ptr = out[0]
        self.av = av or domain.address_vector()
        self.tx_cq = tx_cq or cq or domain.completion_queue()
        self.rx_cq = rx_cq or (self.tx_cq if tx_cq is None else domain.completion_queue())
        self._bind(self.av, 0)
        if self.tx_cq is self.rx_cq:
            self._bind(self.tx_cq, lib.FI_SEND | lib.FI_RECV)
        else:
            self._bind(self.tx_cq, lib.FI_SEND)
            self._bind(self.rx_cq, lib.FI_RECV)
        check(lib.fi_enable(self._ptr), "fi_enable")
        self._mr_local = bool(domain.mr_mode & lib.FI_MR_LOCAL)

    def _bind(self, obj: _Resource, flags: int) -> None:
        check(lib.fi_ep_bind(self._ptr, obj._fid(), flags), "fi_ep_bind")
        self._depend_on(obj)  # the endpoint closes before what it is bound to

    @property
    def name(self) -> bytes:
        """fi_getname: this endpoint's address, to insert into a peer's AV."""
        self._check_open()
        size = ffi.new("size_t *", 256)
        buf = ffi.new("char[]", 256)
        ret = lib.fi_getname(self._fid(), buf, size)
        if ret == -lib.FI_ETOOSMALL:
            buf = ffi.new("char[]", size[0])
            ret = lib.fi_getname(self._fid(), buf, size)
        check(ret, "fi_getname")
        return ffi.buffer(buf, size[0])[:]

    def insert(self, name: bytes) -> int:
        """Insert a peer's name into this endpoint's AV; returns its fi_addr."""
        return self.av.insert(name)[0]

    # -- posting -------------------------------------------------------------
    def _op(self, kind: str, buf: Buffer, context: Any, writable: bool,
            desc: Desc) -> tuple[Operation, CData]:
        cdata = ffi.from_buffer(buf, require_writable=writable)
        op = Operation(kind, context, buf, cdata, ffi.new("struct fi_context2 *"))
        if desc is None and self._mr_local and len(cdata):
            op.mr = MemoryRegion(self.domain, buf, endpoint=self if (
                self.domain.mr_mode & lib.FI_MR_ENDPOINT) else None)
            desc = op.mr.desc
        elif desc is not None and isinstance(desc, MemoryRegion):
            desc = desc.desc
        return op, (desc if desc is not None else ffi.NULL)

    def _require(self, which: int, name: str) -> None:
        """Refuse (NotSupported) calls the endpoint was not opened for: libfabric
        leaves them undefined, and jumps through a NULL ops table if there is none."""
        self._check_open()
        cap = (lib.FI_MSG, lib.FI_TAGGED, lib.FI_RMA)[which]
        if not self.info.caps & cap or not lib.usb4fabric_ep_has_ops(self._ptr, which):
            raise NotSupported(lib.FI_ENOSYS, f"{name}: the {self.info.provider} endpoint "
                               f"was not opened with {flag_names(cap, CAPS)[0]}")

    def _retry(self, call: Callable[[], int], retry: float, what: str) -> None:
        """Run call() until it is not FI_EAGAIN (or retry seconds pass)."""
        self._check_open()
        deadline = time.monotonic() + retry
        while True:
            ret = call()
            if ret != -lib.FI_EAGAIN or time.monotonic() >= deadline:
                check(ret, what)
                return
            self.domain.progress()

    def _post(self, op: Operation, cq: CompletionQueue, call: Callable[[], int],
              retry: float, what: str) -> Operation:
        """Post an operation whose completion cq reports: tracked until then."""
        self._check_open()
        cq._track(op)
        try:
            self._retry(call, retry, what)
        except BaseException:
            cq._untrack(op)
            op.release()
            raise
        return op

    @staticmethod
    def _len(cdata: CData, nbytes: int | None) -> int:
        if nbytes is None:
            return len(cdata)
        if nbytes > len(cdata):
            raise ValueError(f"nbytes {nbytes} > buffer size {len(cdata)}")
        return nbytes

    def recv(self, buf: Buffer, src: int = ADDR_UNSPEC, context: Any = None, desc: Desc = None,
             nbytes: int | None = None, retry: float = _POST_RETRY_SECONDS) -> Operation:
        """fi_recv into buf (written in place)."""
        self._require(0, "fi_recv")
        op, d = self._op("recv", buf, context, True, desc)
        n = self._len(op.cdata, nbytes)
        return self._post(op, self.rx_cq, lambda: lib.fi_recv(
            self._ptr, op.cdata, n, d, src, op.ctx), retry, "fi_recv")

    def send(self, buf: Buffer, dest: int, context: Any = None, desc: Desc = None,
             nbytes: int | None = None, data: int | None = None,
             retry: float = _POST_RETRY_SECONDS) -> Operation:
        """fi_send (fi_senddata when data, the 8-byte remote CQ data, is given)."""
        self._require(0, "fi_send")
        op, d = self._op("send", buf, context, False, desc)
        n = self._len(op.cdata, nbytes)
        if data is None:
            call = lambda: lib.fi_send(self._ptr, op.cdata, n, d, dest, op.ctx)  # noqa: E731
        else:
            call = lambda: lib.fi_senddata(self._ptr, op.cdata, n, d, data, dest, op.ctx)  # noqa: E731
        return self._post(op, self.tx_cq, call, retry, "fi_send")

    def inject(self, buf: Buffer, dest: int, tag: int | None = None,
               retry: float = _POST_RETRY_SECONDS) -> None:
        """fi_inject (fi_tinject with a tag): buf may be reused at once; no completion."""
        cdata = ffi.from_buffer(buf)
        if tag is None:
            self._require(0, "fi_inject")
            call = lambda: lib.fi_inject(self._ptr, cdata, len(cdata), dest)  # noqa: E731
        else:
            self._require(1, "fi_tinject")
            call = lambda: lib.fi_tinject(self._ptr, cdata, len(cdata), dest, tag)  # noqa: E731
        self._retry(call, retry, "fi_inject")

    def trecv(self, buf: Buffer, tag: int, ignore: int = 0, src: int = ADDR_UNSPEC,
              context: Any = None, desc: Desc = None, nbytes: int | None = None,
              retry: float = _POST_RETRY_SECONDS) -> Operation:
        """fi_trecv into buf for tags t with (t & ~ignore) == (tag & ~ignore)."""
        self._require(1, "fi_trecv")
        op, d = self._op("trecv", buf, context, True, desc)
        n = self._len(op.cdata, nbytes)
        return self._post(op, self.rx_cq, lambda: lib.fi_trecv(
            self._ptr, op.cdata, n, d, src, tag, ignore, op.ctx), retry, "fi_trecv")

    def tsend(self, buf: Buffer, dest: int, tag: int, context: Any = None, desc: Desc = None,
              nbytes: int | None = None, data: int | None = None,
              retry: float = _POST_RETRY_SECONDS) -> Operation:
        """fi_tsend (fi_tsenddata when data is given)."""
        self._require(1, "fi_tsend")
        op, d = self._op("tsend", buf, context, False, desc)
        n = self._len(op.cdata, nbytes)
        if data is None:
            call = lambda: lib.fi_tsend(self._ptr, op.cdata, n, d, dest, tag, op.ctx)  # noqa: E731
        else:
            call = lambda: lib.fi_tsenddata(  # noqa: E731
                self._ptr, op.cdata, n, d, data, dest, tag, op.ctx)
        return self._post(op, self.tx_cq, call, retry, "fi_tsend")

    def tsenddata(self, buf: Buffer, dest: int, tag: int, data: int, **kw: Any) -> Operation:
        """fi_tsenddata: tagged send carrying 8 bytes of remote CQ data."""
        return self.tsend(buf, dest, tag, data=data, **kw)

    def read(self, buf: Buffer, src: int, addr: int, key: int, context: Any = None,
             desc: Desc = None, nbytes: int | None = None,
             retry: float = _POST_RETRY_SECONDS) -> Operation:
        """fi_read: fetch from the peer's region (addr, key) into buf."""
        self._require(2, "fi_read")
        op, d = self._op("read", buf, context, True, desc)
        n = self._len(op.cdata, nbytes)
        return self._post(op, self.tx_cq, lambda: lib.fi_read(
            self._ptr, op.cdata, n, d, src, addr, key, op.ctx), retry, "fi_read")

    def write(self, buf: Buffer, dest: int, addr: int, key: int, context: Any = None,
              desc: Desc = None, nbytes: int | None = None, data: int | None = None,
              retry: float = _POST_RETRY_SECONDS) -> Operation:
        """fi_write (fi_writedata when data is given) of buf to the peer's region."""
        self._require(2, "fi_write")
        op, d = self._op("write", buf, context, False, desc)
        n = self._len(op.cdata, nbytes)
        if data is None:
            call = lambda: lib.fi_write(  # noqa: E731
                self._ptr, op.cdata, n, d, dest, addr, key, op.ctx)
        else:
            call = lambda: lib.fi_writedata(  # noqa: E731
                self._ptr, op.cdata, n, d, data, dest, addr, key, op.ctx)
        return self._post(op, self.tx_cq, call, retry, "fi_write")

    def cancel(self, op: Operation) -> None:
        """fi_cancel: the operation completes with a Canceled error entry."""
        self._check_open()
        check(lib.fi_cancel(self._fid(), op.ctx), "fi_cancel")

    # close(): buffers of operations not completed stay referenced by their
    # CQ until it closes, since the provider may still touch them.


def open_endpoint(provider: str, **hints: Any) -> tuple[Fabric, Domain, Endpoint]:
    """Shortcut: (fabric, domain, endpoint) for the first fi_info of provider.
    Close the fabric (or use it as a context manager) to close all three."""
    info = get_info(provider, **hints)[0]
    fabric = Fabric(info)
    domain = fabric.domain()
    return fabric, domain, domain.endpoint()

