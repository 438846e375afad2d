"""A typed ctypes binding of the part of oneCCL's C API a training step uses.

oneCCL (``oneapi/ccl.h``, PyPI ``oneccl``/``oneccl-devel`` 2022.1.2) is an
NCCL-shaped collective library that drives libfabric itself.  This module
loads its ``libccl.so.2`` (ABI mode: no compiler at run time) and wraps::

    onecclGetVersion, onecclGetUniqueId, onecclCommInitRank,
    onecclCommCount, onecclCommUserRank, onecclAllReduce,
    onecclCommDestroy, onecclGetErrorString, onecclGetLastError

Every call's result is checked: anything but ``onecclSuccess`` raises
``CclError`` with the library's own error string (and, for calls on a
communicator, its last-error text).  Two misuses the library does not
report but answers with a hang or a heap corruption are refused here
before the call: a rank outside ``[0, nranks)`` (``onecclCommInitRank``
then waits forever for ranks that never come) and any call on a destroyed
communicator (a second ``onecclCommDestroy`` aborts the process).

Bootstrapping without MPI: rank 0 calls ``unique_id()`` (4096 opaque bytes
naming its key-value store, e.g. ``10.77.0.1_4096``), hands them to the
other ranks (``write_unique_id``/``read_unique_id``: a file on a filesystem
all ranks share), and every rank calls ``Communicator(nranks, uid, rank)``.
``rank_env()`` gives the environment a rank needs to run over a libfabric
provider (usb4 or tcp) on a given interface.

Only the standard library is imported: numpy arrays and torch tensors are
recognised by their attributes, so the harness's python can import this
module even though only the collective library's venv can run it.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "CclError", "Communicator", "UNIQUE_ID_BYTES", "FLOAT32", "SUM", "AVG",
    "library", "version", "unique_id", "write_unique_id", "read_unique_id",
    "rank_env",
]

LIBRARY_NAME = "libccl.so.2"
LIBRARY_ENV = "USB4_CCL_LIB"  # overrides <sys.prefix>/lib/libccl.so.2
UNIQUE_ID_BYTES = 4096  # ONECCL_UNIQUE_ID_BYTES, types.h

# onecclResult_t
SUCCESS = 0
INVALID_ARGUMENT = 4
INVALID_USAGE = 5

# onecclDataType_t (only the ones the binding maps a buffer to)
FLOAT32 = 7
# onecclRedOp_t
SUM = 0
AVG = 4  # in the header, but the legacy CPU plugin refuses it (onecclPluginException)


class CclError(RuntimeError):
    """A oneCCL call failed: the call's name, its onecclResult_t code and the
    library's description (plus the communicator's last error, if any)."""

    def __init__(self, call: str, code: int, message: str):
        self.call = call
        self.code = int(code)
        self.message = message
        super().__init__("%s: [%d] %s" % (call, self.code, message))


class _UniqueId(ctypes.Structure):
    """onecclUniqueId: passed by value to onecclCommInitRank."""

    _fields_ = [("data", ctypes.c_char * UNIQUE_ID_BYTES)]


_Comm = ctypes.c_void_p  # onecclComm_t, an opaque pointer
_Result = ctypes.c_int  # onecclResult_t

# name -> (restype, argtypes), as declared in oneapi/ccl.h
_SIGNATURES = {
    "onecclGetVersion": (_Result, [ctypes.POINTER(ctypes.c_int)]),
    "onecclGetUniqueId": (_Result, [ctypes.POINTER(_UniqueId)]),
    "onecclCommInitRank": (_Result, [ctypes.POINTER(_Comm), ctypes.c_size_t, _UniqueId,
                                     ctypes.c_int]),
    "onecclCommCount": (_Result, [_Comm, ctypes.POINTER(ctypes.c_int)]),
    "onecclCommUserRank": (_Result, [_Comm, ctypes.POINTER(ctypes.c_int)]),
    "onecclAllReduce": (_Result, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                  ctypes.c_int, ctypes.c_int, _Comm, ctypes.c_void_p]),
    "onecclCommDestroy": (_Result, [_Comm]),
    "onecclGetErrorString": (ctypes.c_char_p, [_Result]),
    "onecclGetLastError": (ctypes.c_char_p, [_Comm]),
}

_lib: ctypes.CDLL | None = None


def library_path() -> Path:
    """$USB4_CCL_LIB, else the running venv's lib/libccl.so.2."""
    return Path(os.environ.get(LIBRARY_ENV) or Path(sys.prefix) / "lib" / LIBRARY_NAME)


def library() -> ctypes.CDLL:
    """libccl.so.2, loaded once with every used function's signature declared."""
    global _lib
    if _lib is None:
        path = library_path()
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise CclError("dlopen", -1, "%s: %s (run the collective library's venv "
                           "python, or set %s)" % (path, exc, LIBRARY_ENV)) from None
        for name, (restype, argtypes) in _SIGNATURES.items():
            func = getattr(lib, name)
            func.restype = restype
            func.argtypes = argtypes
        _lib = lib
    return _lib


def _describe(code: int, comm: _Comm | None = None) -> str:
    lib = library()
    text = (lib.onecclGetErrorString(code) or b"").decode(errors="replace")
    if comm:
        last = (lib.onecclGetLastError(comm) or b"").decode(errors="replace")
        if last:
            text += " (last error: %s)" % last
    return text


def _check(call: str, code: int, comm: _Comm | None = None) -> None:
    if code != SUCCESS:
        raise CclError(call, code, _describe(code, comm))


def version() -> tuple[int, int, int]:
    """(major, minor, patch) of the loaded library, e.g. (2022, 1, 0)."""
    out = ctypes.c_int()
    _check("onecclGetVersion", library().onecclGetVersion(ctypes.byref(out)))
    # ONECCL_VERSION_CODE = major * 10000 + minor * 100 + patch
    return out.value // 10000, out.value // 100 % 100, out.value % 100


def unique_id() -> bytes:
    """A new communicator id (rank 0 makes it, every rank passes it to init)."""
    uid = _UniqueId()
    _check("onecclGetUniqueId", library().onecclGetUniqueId(ctypes.byref(uid)))
    return ctypes.string_at(ctypes.addressof(uid), UNIQUE_ID_BYTES)


def write_unique_id(path: os.PathLike, uid: bytes) -> None:
    """Publishes uid at path whole (written aside, then renamed into place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(uid)
    os.replace(tmp, path)


def read_unique_id(path: os.PathLike, timeout: float = 60.0) -> bytes:
    """Waits for write_unique_id's file at path and returns its bytes."""
    path = Path(path)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no oneCCL unique id at %s after %.0f s" % (path, timeout))
        time.sleep(0.02)
    uid = path.read_bytes()
    if len(uid) != UNIQUE_ID_BYTES:
        raise ValueError("%s holds %d bytes, not a %d-byte unique id"
                         % (path, len(uid), UNIQUE_ID_BYTES))
    return uid


def _float32_buffer(buf: Any) -> tuple[int, int]:
    """(address, element count) of a contiguous, writable float32 numpy array
    or torch CPU tensor; ValueError for anything else."""
    if hasattr(buf, "data_ptr"):  # torch.Tensor
        if str(buf.dtype) != "torch.float32" or not buf.is_contiguous() \
                or buf.device.type != "cpu":
            raise ValueError("need a contiguous float32 CPU tensor, got %s %s on %s"
                             % (buf.dtype, tuple(buf.shape), buf.device))
        return buf.data_ptr(), buf.numel()
    if hasattr(buf, "__array_interface__"):  # numpy.ndarray
        if buf.dtype.str != "<f4" or not buf.flags.c_contiguous or not buf.flags.writeable:
            raise ValueError("need a C-contiguous writable float32 array, got %s" % buf.dtype)
        return buf.ctypes.data, buf.size
    raise ValueError("need a numpy array or a torch tensor, got %r" % type(buf).__name__)


class Communicator:
    """One rank's communicator of nranks; a context manager that destroys it."""

    def __init__(self, nranks: int, uid: bytes, rank: int):
        if nranks < 1:
            raise ValueError("a communicator needs at least one rank, not %d" % nranks)
        if not 0 <= rank < nranks:
            # The library accepts it and waits for ranks that never come.
            raise ValueError("rank %d is not in [0, %d)" % (rank, nranks))
        if len(uid) != UNIQUE_ID_BYTES:
            raise ValueError("a unique id is %d bytes, not %d" % (UNIQUE_ID_BYTES, len(uid)))
        cuid = _UniqueId()
        ctypes.memmove(ctypes.addressof(cuid), uid, UNIQUE_ID_BYTES)
        handle = _Comm()
        _check("onecclCommInitRank",
               library().onecclCommInitRank(ctypes.byref(handle), nranks, cuid, rank))
        self._handle: _Comm | None = handle

    def _live(self, call: str) -> _Comm:
        if self._handle is None:
            # The library frees the communicator: a call on it would use freed memory.
            raise CclError(call, INVALID_USAGE, "communicator already destroyed")
        return self._handle

    def _query(self, call: str) -> int:
        handle = self._live(call)
        out = ctypes.c_int()
        _check(call, getattr(library(), call)(handle, ctypes.byref(out)), handle)
        return out.value

    @property
    def size(self) -> int:
        return self._query("onecclCommCount")

    @property
    def rank(self) -> int:
        return self._query("onecclCommUserRank")

    def allreduce_ptr(self, address: int, count: int, datatype: int = FLOAT32,
                      op: int = SUM) -> None:
        """In-place allreduce of count elements at address (blocking)."""
        handle = self._live("onecclAllReduce")
        _check("onecclAllReduce",
               library().onecclAllReduce(address, address, count, datatype, op, handle,
                                         None), handle)

    def allreduce(self, buf: Any, op: int = SUM) -> None:
        """In-place allreduce of a contiguous float32 numpy array or torch tensor."""
        address, count = _float32_buffer(buf)
        self.allreduce_ptr(address, count, FLOAT32, op)

    def destroy(self) -> None:
        handle = self._live("onecclCommDestroy")
        self._handle = None
        _check("onecclCommDestroy", library().onecclCommDestroy(handle))

    @property
    def destroyed(self) -> bool:
        return self._handle is None

    def __enter__(self) -> Communicator:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self.destroy()


def rank_env(venv: os.PathLike, provider: str = "usb4", provider_dir: os.PathLike | None = None,
             iface: str | None = None, *, offload: bool = False) -> dict[str, str]:
    """Environment of one oneCCL rank over a libfabric provider, one rank per host.

    provider: ``usb4`` (loaded from provider_dir) or ``tcp`` (libfabric's,
    from the venv's Intel MPI).  iface: the cable (FI_USB4_IFACE /
    FI_TCP_IFACE, and the interface whose address goes in the unique id).
    offload=False keeps oneCCL's progress in the calling thread
    (CCL_WORKER_OFFLOAD=0): on a 2-core host a spinning worker thread per
    rank starves the provider's progress.
    """
    env = {
        "LD_LIBRARY_PATH": str(Path(venv) / "lib"),
        "CCL_PLUGIN": "ONECCL_LEGACY_CPU",  # the CPU backend behind the C API
        "CCL_ATL_TRANSPORT": "ofi",  # libfabric directly, not Intel MPI
        "CCL_PROCESS_LAUNCHER": "none",  # no hydra/mpirun: ranks from the unique id
        "CCL_LOCAL_RANK": "0",  # one rank per host
        "CCL_LOCAL_SIZE": "1",
        "CCL_WORKER_OFFLOAD": "1" if offload else "0",
        "FI_PROVIDER": provider,
    }
    if provider == "usb4":
        if provider_dir is None:
            raise ValueError("the usb4 provider needs provider_dir (its .libs)")
        env["FI_PROVIDER_PATH"] = str(provider_dir)
        if iface:
            env["FI_USB4_IFACE"] = iface
    elif provider == "tcp":
        if iface:
            env["FI_TCP_IFACE"] = iface
    else:
        raise ValueError("provider %r: usb4 or tcp" % provider)
    if iface:
        env["CCL_KVS_IFACE"] = iface
    return env
