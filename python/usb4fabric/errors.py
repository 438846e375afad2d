"""Exceptions for libfabric return codes, and check().

libfabric calls return a negative FI_E* code on failure. check(ret) passes
non-negative values through and raises the FabricError subclass registered for
-ret otherwise; error completions read from a CQ raise the same classes
(with the entry attached) so a truncated receive is a Truncated whatever way it
is reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._libfabric import ffi, lib

if TYPE_CHECKING:  # fabric.py imports this module
    from .fabric import CqError

__all__ = [
    "FabricError", "Again", "NoData", "InvalidArgument", "NotSupported",
    "MessageTooLong", "Truncated", "Canceled", "NoMessage", "AccessDenied",
    "ErrorAvailable", "NoMemory", "Busy", "NotFound", "AddressInUse",
    "AddressNotAvailable", "HostUnreachable", "ConnectionError", "TimedOut",
    "RemoteIOError", "InputOutputError", "NoKey", "BadFlags", "TooSmall",
    "BadState", "Overrun", "error_class", "check", "strerror",
]


class FabricError(Exception):
    """A libfabric error: errno (positive FI_E* value), message, and for errors
    read from a completion queue the CqError entry (err, olen, len, tag, ...)."""

    def __init__(self, errno: int, message: str | None = None, entry: CqError | None = None):
        self.errno = int(errno)
        self.strerror = message if message is not None else strerror(self.errno)
        self.entry = entry
        super().__init__(self.errno, self.strerror)

    def __str__(self) -> str:
        return f"[{self.errno}] {self.strerror}"


class Again(FabricError):
    """FI_EAGAIN: resources are busy (backpressure); progress and retry."""


class NoData(FabricError):
    """FI_ENODATA: e.g. fi_getinfo found nothing matching the hints."""


class InvalidArgument(FabricError):
    """FI_EINVAL."""


class NotSupported(FabricError):
    """FI_ENOSYS / FI_EOPNOTSUPP: the provider does not implement the call."""


class MessageTooLong(FabricError):
    """FI_EMSGSIZE."""


class Truncated(FabricError):
    """FI_ETRUNC: a receive buffer was too small; entry.olen is the overflow."""


class Canceled(FabricError):
    """FI_ECANCELED: the operation was cancelled (fi_cancel, endpoint close)."""


class NoMessage(FabricError):
    """FI_ENOMSG: e.g. FI_PEEK found no matching message."""


class AccessDenied(FabricError):
    """FI_EACCES / FI_EPERM: bad key, range or access rights."""


class ErrorAvailable(FabricError):
    """FI_EAVAIL: an error entry waits on the queue (read it with readerr)."""


class NoMemory(FabricError):
    """FI_ENOMEM / FI_ENOSPC / FI_ENOBUFS."""


class Busy(FabricError):
    """FI_EBUSY: the object still has users (close them first)."""


class NotFound(FabricError):
    """FI_ENOENT / FI_ENODEV."""


class AddressInUse(FabricError):
    """FI_EADDRINUSE."""


class AddressNotAvailable(FabricError):
    """FI_EADDRNOTAVAIL."""


class HostUnreachable(FabricError):
    """FI_EHOSTUNREACH / FI_EHOSTDOWN / FI_ENETUNREACH / FI_ENETDOWN: dead peer or link."""


class ConnectionError(FabricError):  # noqa: A001 - the libfabric meaning, scoped to this module
    """FI_ECONNREFUSED / FI_ECONNRESET / FI_ECONNABORTED / FI_ENOTCONN / FI_ESHUTDOWN."""


class TimedOut(FabricError):
    """FI_ETIMEDOUT."""


class RemoteIOError(FabricError):
    """FI_EREMOTEIO."""


class InputOutputError(FabricError):
    """FI_EIO."""


class NoKey(FabricError):
    """FI_ENOKEY / FI_EKEYREJECTED."""


class BadFlags(FabricError):
    """FI_EBADFLAGS."""


class TooSmall(FabricError):
    """FI_ETOOSMALL: a buffer given to the call is too small (e.g. fi_getname)."""


class BadState(FabricError):
    """FI_EOPBADSTATE: not allowed in the object's current state."""


class Overrun(FabricError):
    """FI_EOVERRUN: a queue overflowed."""


_CLASSES: dict[int, type[FabricError]] = {
    lib.FI_EAGAIN: Again,
    lib.FI_ENODATA: NoData,
    lib.FI_EINVAL: InvalidArgument,
    lib.FI_ENOSYS: NotSupported,
    lib.FI_EOPNOTSUPP: NotSupported,
    lib.FI_EMSGSIZE: MessageTooLong,
    lib.FI_ETRUNC: Truncated,
    lib.FI_ECANCELED: Canceled,
    lib.FI_ENOMSG: NoMessage,
    lib.FI_EACCES: AccessDenied,
    lib.FI_EPERM: AccessDenied,
    lib.FI_EAVAIL: ErrorAvailable,
    lib.FI_ENOMEM: NoMemory,
    lib.FI_ENOSPC: NoMemory,
    lib.FI_ENOBUFS: NoMemory,
    lib.FI_EBUSY: Busy,
    lib.FI_ENOENT: NotFound,
    lib.FI_ENODEV: NotFound,
    lib.FI_EADDRINUSE: AddressInUse,
    lib.FI_EADDRNOTAVAIL: AddressNotAvailable,
    lib.FI_EHOSTUNREACH: HostUnreachable,
    lib.FI_EHOSTDOWN: HostUnreachable,
    lib.FI_ENETUNREACH: HostUnreachable,
    lib.FI_ENETDOWN: HostUnreachable,
    lib.FI_ECONNREFUSED: ConnectionError,
    lib.FI_ECONNRESET: ConnectionError,
    lib.FI_ECONNABORTED: ConnectionError,
    lib.FI_ENOTCONN: ConnectionError,
    lib.FI_ESHUTDOWN: ConnectionError,
    lib.FI_ETIMEDOUT: TimedOut,
    lib.FI_EREMOTEIO: RemoteIOError,
    lib.FI_EIO: InputOutputError,
    lib.FI_ENOKEY: NoKey,
    lib.FI_EKEYREJECTED: NoKey,
    lib.FI_EBADFLAGS: BadFlags,
    lib.FI_ETOOSMALL: TooSmall,
    lib.FI_EOPBADSTATE: BadState,
    lib.FI_EOVERRUN: Overrun,
}


def strerror(errno: int) -> str:
    """libfabric's text for a (positive or negative) FI_E* code."""
    return ffi.string(lib.fi_strerror(abs(int(errno)))).decode(errors="replace")


def error_class(errno: int) -> type[FabricError]:
    """The FabricError subclass for a positive or negative FI_E* code."""
    return _CLASSES.get(abs(int(errno)), FabricError)


def check(ret: int, what: str | None = None) -> int:
    """Return ret if it is >= 0, else raise the exception class for -ret.

    what names the call in the message (e.g. "fi_getinfo")."""
    ret = int(ret)
    if ret >= 0:
        return ret
    message = strerror(ret)
    if what:
        message = f"{what}: {message}"
    raise error_class(ret)(-ret, message)
