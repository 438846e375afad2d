"""fi_getinfo from Python: the providers libfabric sees and their attributes.

Info wraps one fi_info (a private copy, freed when the Info goes away);
get_info() turns keyword hints into an fi_info and returns the matches;
providers() and describe_providers() give plain data (dicts and lists) for
tests and for ``usb4bench info``. Nothing here prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypedDict, Union

from ._libfabric import ffi, lib
from .errors import check

# A cffi pointer or array into libfabric's C structs: opaque to the type
# checker (the fields are C's), handled only inside the binding.
CData = Any
# Flags as the callers give them: an int, or names ("FI_RMA" or "rma").
Flags = Union[int, Iterable[str], None]

__all__ = [
    "Info", "InfoDict", "ProviderEntry", "ProvidersDescription", "CData", "Flags",
    "get_info", "providers", "describe_providers", "api_version",
    "header_version", "flag_names", "flags_from", "CAPS", "MODES", "MR_MODES",
    "DEFAULT_MODE", "DEFAULT_MR_MODE",
]

# flag tables: name -> bit, in libfabric's spelling
_CAP_NAMES = (
    "FI_MSG", "FI_RMA", "FI_TAGGED", "FI_ATOMIC", "FI_MULTICAST", "FI_COLLECTIVE",
    "FI_READ", "FI_WRITE", "FI_RECV", "FI_SEND", "FI_REMOTE_READ", "FI_REMOTE_WRITE",
    "FI_MULTI_RECV", "FI_REMOTE_CQ_DATA", "FI_TRIGGER", "FI_FENCE", "FI_HMEM",
    "FI_VARIABLE_MSG", "FI_RMA_PMEM", "FI_SOURCE_ERR", "FI_LOCAL_COMM",
    "FI_REMOTE_COMM", "FI_SHARED_AV", "FI_RMA_EVENT", "FI_SOURCE",
    "FI_NAMED_RX_CTX", "FI_DIRECTED_RECV",
)
_MODE_NAMES = (
    "FI_CONTEXT", "FI_MSG_PREFIX", "FI_ASYNC_IOV", "FI_RX_CQ_DATA",
    "FI_NOTIFY_FLAGS_ONLY", "FI_RESTRICTED_COMP", "FI_CONTEXT2", "FI_BUFFERED_RECV",
)
_MR_MODE_NAMES = (
    "FI_MR_LOCAL", "FI_MR_RAW", "FI_MR_VIRT_ADDR", "FI_MR_ALLOCATED",
    "FI_MR_PROV_KEY", "FI_MR_MMU_NOTIFY", "FI_MR_RMA_EVENT", "FI_MR_ENDPOINT",
    "FI_MR_HMEM", "FI_MR_COLLECTIVE",
)
_ORDER_NAMES = (
    "FI_ORDER_RAR", "FI_ORDER_RAW", "FI_ORDER_RAS", "FI_ORDER_WAR", "FI_ORDER_WAW",
    "FI_ORDER_WAS", "FI_ORDER_SAR", "FI_ORDER_SAW", "FI_ORDER_SAS",
)

CAPS: dict[str, int] = {n: getattr(lib, n) for n in _CAP_NAMES}
# libfabric 2.x headers define some retired mode bits as 0: not listed.
MODES: dict[str, int] = {n: getattr(lib, n) for n in _MODE_NAMES if getattr(lib, n)}
MR_MODES: dict[str, int] = {n: getattr(lib, n) for n in _MR_MODE_NAMES}
ORDERS: dict[str, int] = {n: getattr(lib, n) for n in _ORDER_NAMES}

_EP_TYPES: dict[int, str] = {lib.FI_EP_UNSPEC: "FI_EP_UNSPEC", lib.FI_EP_MSG: "FI_EP_MSG",
             lib.FI_EP_DGRAM: "FI_EP_DGRAM", lib.FI_EP_RDM: "FI_EP_RDM"}
_THREADING: dict[int, str] = {lib.FI_THREAD_UNSPEC: "FI_THREAD_UNSPEC", lib.FI_THREAD_SAFE: "FI_THREAD_SAFE",
              lib.FI_THREAD_FID: "FI_THREAD_FID", lib.FI_THREAD_DOMAIN: "FI_THREAD_DOMAIN",
              lib.FI_THREAD_COMPLETION: "FI_THREAD_COMPLETION",
              lib.FI_THREAD_ENDPOINT: "FI_THREAD_ENDPOINT"}
_PROGRESS: dict[int, str] = {lib.FI_PROGRESS_UNSPEC: "FI_PROGRESS_UNSPEC", lib.FI_PROGRESS_AUTO: "FI_PROGRESS_AUTO",
             lib.FI_PROGRESS_MANUAL: "FI_PROGRESS_MANUAL"}
_AV_TYPES: dict[int, str] = {lib.FI_AV_UNSPEC: "FI_AV_UNSPEC", lib.FI_AV_MAP: "FI_AV_MAP",
             lib.FI_AV_TABLE: "FI_AV_TABLE"}
_ADDR_FORMATS: dict[int, str] = {lib.FI_FORMAT_UNSPEC: "FI_FORMAT_UNSPEC", lib.FI_SOCKADDR: "FI_SOCKADDR",
                 lib.FI_SOCKADDR_IN: "FI_SOCKADDR_IN", lib.FI_SOCKADDR_IN6: "FI_SOCKADDR_IN6",
                 lib.FI_SOCKADDR_IB: "FI_SOCKADDR_IB", lib.FI_ADDR_PSMX: "FI_ADDR_PSMX",
                 lib.FI_ADDR_STR: "FI_ADDR_STR", lib.FI_ADDR_PSMX2: "FI_ADDR_PSMX2",
                 lib.FI_ADDR_EFA: "FI_ADDR_EFA"}
_EP_TYPE_BY_NAME: dict[str, int] = {"rdm": lib.FI_EP_RDM, "msg": lib.FI_EP_MSG, "dgram": lib.FI_EP_DGRAM,
                    "unspec": lib.FI_EP_UNSPEC}

# modes the binding honours: every operation gets its own fi_context2
DEFAULT_MODE: int = lib.FI_CONTEXT | lib.FI_CONTEXT2
# mr modes the binding honours (FI_MR_LOCAL: it registers, FI_MR_ENDPOINT: it binds)
DEFAULT_MR_MODE: int = (lib.FI_MR_LOCAL | lib.FI_MR_VIRT_ADDR | lib.FI_MR_ALLOCATED
                   | lib.FI_MR_PROV_KEY | lib.FI_MR_ENDPOINT)


class InfoDict(TypedDict):
    """Info.as_dict(): one fi_info's attributes as plain data."""
    provider: str | None
    version: str
    api_version: str
    fabric: str | None
    domain: str | None
    ep_type: str
    protocol: int
    caps: list[str]
    mode: list[str]
    mr_mode: list[str]
    mr_key_size: int
    max_msg_size: int
    inject_size: int
    mem_tag_format: int
    cq_data_size: int
    addr_format: str
    src_addrlen: int
    threading: str
    control_progress: str
    data_progress: str
    av_type: str
    tx_size: int
    rx_size: int
    tx_iov_limit: int
    rx_iov_limit: int
    rma_iov_limit: int
    msg_order: list[str]


class ProviderEntry(TypedDict):
    """One provider in describe_providers(): its fi_info entries."""
    name: str | None
    version: str
    entries: list[InfoDict]


class ProvidersDescription(TypedDict):
    """describe_providers(): what ``usb4bench info`` shows."""
    api_version: str
    header_version: str
    provider_path: str | None
    provider_filter: str | None
    providers: list[ProviderEntry]


def _version_str(v: int) -> str:
    return f"{v >> 16}.{v & 0xffff}"


def api_version() -> str:
    """The libfabric API version of the library loaded at run time ("1.17")."""
    return _version_str(lib.fi_version())


def header_version() -> str:
    """The libfabric API version of the headers the binding was built against."""
    return f"{lib.FI_MAJOR_VERSION}.{lib.FI_MINOR_VERSION}"


def flag_names(value: int, table: dict[str, int]) -> list[str]:
    """Names (in table order) of the bits of value; leftover bits as hex."""
    names: list[str] = []
    rest = int(value)
    for name, bit in table.items():
        if value & bit == bit and bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(hex(rest))
    return names


def flags_from(value: Flags, table: dict[str, int]) -> int:
    """An int from an int or an iterable of names ("FI_RMA" or "rma")."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    bits = 0
    for name in value:
        key = name.upper()
        key = key if key.startswith("FI_") else "FI_" + key
        if key not in table:
            raise ValueError(f"unknown flag {name!r}")
        bits |= table[key]
    return bits


def _str(p: CData) -> str | None:
    return ffi.string(p).decode(errors="replace") if p != ffi.NULL else None


class Info:
    """One fi_info: read its attributes here, open objects with it (fabric.py)."""

    def __init__(self, ptr: CData):
        """Take a copy of the fi_info at ptr (the caller keeps ownership of ptr)."""
        dup = lib.fi_dupinfo(ptr)
        if dup == ffi.NULL:
            raise MemoryError("fi_dupinfo")
        dup.next = ffi.NULL
        self.ptr = ffi.gc(dup, lib.fi_freeinfo)

    @property
    def provider(self) -> str | None:
        return _str(self.ptr.fabric_attr.prov_name)

    @property
    def fabric(self) -> str | None:
        return _str(self.ptr.fabric_attr.name)

    @property
    def domain(self) -> str | None:
        return _str(self.ptr.domain_attr.name)

    @property
    def caps(self) -> int:
        return int(self.ptr.caps)

    @property
    def mode(self) -> int:
        return int(self.ptr.mode)

    @property
    def mr_mode(self) -> int:
        return int(self.ptr.domain_attr.mr_mode)

    @property
    def ep_type(self) -> str:
        return _EP_TYPES.get(self.ptr.ep_attr.type, str(self.ptr.ep_attr.type))

    @property
    def mem_tag_format(self) -> int:
        return int(self.ptr.ep_attr.mem_tag_format)

    @property
    def cq_data_size(self) -> int:
        return int(self.ptr.domain_attr.cq_data_size)

    @property
    def inject_size(self) -> int:
        return int(self.ptr.tx_attr.inject_size)

    @property
    def max_msg_size(self) -> int:
        return int(self.ptr.ep_attr.max_msg_size)

    def as_dict(self) -> InfoDict:
        """The attributes usb4bench and the tests look at, as plain data."""
        i = self.ptr
        fa, da, ea, tx, rx = i.fabric_attr, i.domain_attr, i.ep_attr, i.tx_attr, i.rx_attr
        return {
            "provider": self.provider,
            "version": _version_str(fa.prov_version),
            "api_version": _version_str(fa.api_version),
            "fabric": self.fabric,
            "domain": self.domain,
            "ep_type": self.ep_type,
            "protocol": ea.protocol,
            "caps": flag_names(i.caps, CAPS),
            "mode": flag_names(i.mode, MODES),
            "mr_mode": flag_names(da.mr_mode, MR_MODES),
            "mr_key_size": da.mr_key_size,
            "max_msg_size": ea.max_msg_size,
            "inject_size": tx.inject_size,
            "mem_tag_format": ea.mem_tag_format,
            "cq_data_size": da.cq_data_size,
            "addr_format": _ADDR_FORMATS.get(i.addr_format, str(i.addr_format)),
            "src_addrlen": i.src_addrlen,
            "threading": _THREADING.get(da.threading, str(da.threading)),
            "control_progress": _PROGRESS.get(da.control_progress, str(da.control_progress)),
            "data_progress": _PROGRESS.get(da.data_progress, str(da.data_progress)),
            "av_type": _AV_TYPES.get(da.av_type, str(da.av_type)),
            "tx_size": tx.size,
            "rx_size": rx.size,
            "tx_iov_limit": tx.iov_limit,
            "rx_iov_limit": rx.iov_limit,
            "rma_iov_limit": tx.rma_iov_limit,
            "msg_order": flag_names(tx.msg_order, ORDERS),
        }

    def __repr__(self) -> str:
        return f"<Info {self.provider} {self.fabric}/{self.domain} {self.ep_type}>"


def _make_hints(keep: list[CData], provider: str | None, ep_type: str | int, caps: Flags,
                mode: Flags, mr_mode: Flags, fabric: str | None, domain: str | None,
                threading: int | None, progress: int | None, av_type: int | None) -> CData:
    """An fi_allocinfo'd hints struct; strings it points to are held in keep."""
    hints = lib.fi_allocinfo()
    if hints == ffi.NULL:
        raise MemoryError("fi_allocinfo")

    def cstr(s: str) -> CData:
        p = ffi.new("char[]", s.encode())
        keep.append(p)
        return p

    hints.ep_attr.type = _EP_TYPE_BY_NAME[ep_type] if isinstance(ep_type, str) else ep_type
    hints.caps = flags_from(caps, CAPS)
    hints.mode = flags_from(mode, MODES)
    hints.domain_attr.mr_mode = flags_from(mr_mode, MR_MODES)
    if provider:
        hints.fabric_attr.prov_name = cstr(provider)
    if fabric:
        hints.fabric_attr.name = cstr(fabric)
    if domain:
        hints.domain_attr.name = cstr(domain)
    if threading is not None:
        hints.domain_attr.threading = threading
    if progress is not None:
        hints.domain_attr.data_progress = progress
        hints.domain_attr.control_progress = progress
    if av_type is not None:
        hints.domain_attr.av_type = av_type
    return hints


def _free_hints(hints: CData) -> None:
    # the strings belong to Python: unhook them before libfabric frees the rest
    hints.fabric_attr.prov_name = ffi.NULL
    hints.fabric_attr.name = ffi.NULL
    hints.domain_attr.name = ffi.NULL
    lib.fi_freeinfo(hints)


def get_info(provider: str | None = None, *, ep_type: str | int = "rdm",
             caps: Flags = ("FI_MSG", "FI_TAGGED"), mode: Flags = DEFAULT_MODE,
             mr_mode: Flags = DEFAULT_MR_MODE, fabric: str | None = None,
             domain: str | None = None, threading: int | None = None,
             progress: int | None = None, av_type: int | None = None,
             node: str | None = None, service: str | None = None, flags: int = 0,
             hints: bool = True) -> list[Info]:
    """fi_getinfo: the list of Info matching the hints (NoData when none match).

    provider is a prov_name ("usb4", "tcp;ofi_rxm"); caps, mode and mr_mode take
    an int or names. hints=False passes NULL hints (everything libfabric has).
    """
    keep: list[CData] = []
    c_hints = ffi.NULL
    if hints:
        c_hints = _make_hints(keep, provider, ep_type, caps, mode, mr_mode, fabric,
                              domain, threading, progress, av_type)
    out = ffi.new("struct fi_info **")
    version = (lib.FI_MAJOR_VERSION << 16) | lib.FI_MINOR_VERSION
    try:
        check(lib.fi_getinfo(version, node.encode() if node else ffi.NULL,
                             service.encode() if service else ffi.NULL,
                             flags, c_hints, out), "fi_getinfo")
    finally:
        if c_hints != ffi.NULL:
            _free_hints(c_hints)
    infos: list[Info] = []
    p = out[0]
    try:
        while p != ffi.NULL:
            infos.append(Info(p))
            p = p.next
    finally:
        lib.fi_freeinfo(out[0])
    return infos


def providers(provider: str | None = None, ep_type: str | None = None) -> list[InfoDict]:
    """Every fi_info libfabric offers (no hints), as dicts; optionally filtered
    by prov_name and endpoint type ("rdm", "msg", "dgram")."""
    infos = get_info(hints=False)
    rows = [i.as_dict() for i in infos]
    if provider is not None:
        rows = [r for r in rows if r["provider"] == provider]
    if ep_type is not None:
        wanted = _EP_TYPES[_EP_TYPE_BY_NAME[ep_type]]
        rows = [r for r in rows if r["ep_type"] == wanted]
    return rows


def describe_providers() -> ProvidersDescription:
    """What ``usb4bench info`` shows: libfabric's versions, the provider search
    path, and per provider its version and its fi_info entries. Plain data."""
    by_name: dict[str | None, ProviderEntry] = {}
    for row in providers():
        entry = by_name.setdefault(row["provider"], {
            "name": row["provider"], "version": row["version"], "entries": []})
        entry["entries"].append(row)
    return {
        "api_version": api_version(),
        "header_version": header_version(),
        "provider_path": os.environ.get("FI_PROVIDER_PATH"),
        "provider_filter": os.environ.get("FI_PROVIDER"),
        "providers": list(by_name.values()),
    }
