"""cffi builder for usb4fabric._libfabric (API mode, out of line).

The declarations live in cdefs/*.h, in the order below (later files use types of
earlier ones). setuptools runs this through ``cffi_modules`` in setup.py; it can
also be run by hand: ``python3 usb4fabric/_build_libfabric.py`` builds in place.

Needs the libfabric headers (<rdma/fabric.h>, Debian: libfabric-dev) and a C compiler.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable

from cffi import FFI

CDEFS = ("fabric.h", "errno.h", "domain.h", "eq.h", "endpoint.h")
HERE = os.path.dirname(os.path.abspath(__file__))

SOURCE = r"""
#include <rdma/fabric.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_tagged.h>
#include <rdma/fi_rma.h>
#include <rdma/fi_cm.h>

/* Mode bits of libfabric 1.x that 2.x headers no longer define (the bits
 * stay reserved): spelled here so one binding builds against either. */
#ifndef FI_BUFFERED_RECV
#define FI_BUFFERED_RECV	(1ULL << 51)
#endif
#ifndef FI_NOTIFY_FLAGS_ONLY
#define FI_NOTIFY_FLAGS_ONLY	(1ULL << 54)
#endif
#ifndef FI_RESTRICTED_COMP
#define FI_RESTRICTED_COMP	(1ULL << 53)
#endif

/* Whether an endpoint has an ops table: 0 msg, 1 tagged, 2 rma.
 * libfabric's inline calls jump through these without checking. */
static int usb4fabric_ep_has_ops(struct fid_ep *ep, int which)
{
	switch (which) {
	case 0: return ep->msg != NULL;
	case 1: return ep->tagged != NULL;
	case 2: return ep->rma != NULL;
	default: return 0;
	}
}
"""


def _pkg_config(*args: str) -> list[str]:
    """Flags from pkg-config for libfabric, or [] when it is not there."""
    if shutil.which("pkg-config") is None:
        return []
    try:
        out = subprocess.run(["pkg-config", *args, "libfabric"], check=True,
                             capture_output=True, text=True, timeout=30).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return out.split()


def _read_cdefs() -> str:
    parts = []
    for name in CDEFS:
        with open(os.path.join(HERE, "cdefs", name), encoding="utf-8") as f:
            parts.append(f.read())
    return "\n".join(parts)


def make_ffi(include_dirs: Iterable[str] = ()) -> FFI:
    """The builder; include_dirs come before pkg-config's (other headers)."""
    ffi = FFI()
    ffi.cdef(_read_cdefs())
    cflags = [f"-I{d}" for d in include_dirs] + _pkg_config("--cflags")
    libs = _pkg_config("--libs")
    ffi.set_source(
        "usb4fabric._libfabric",
        SOURCE,
        include_dirs=[f[2:] for f in cflags if f.startswith("-I")],
        library_dirs=[f[2:] for f in libs if f.startswith("-L")],
        libraries=["fabric"],
    )
    return ffi


ffi = make_ffi()

if __name__ == "__main__":
    # python3 _build_libfabric.py [HEADERS_DIR OUT_DIR]: in place, or against
    # other libfabric headers (HEADERS_DIR holds rdma/) into OUT_DIR.
    if len(sys.argv) == 3:
        make_ffi([sys.argv[1]]).compile(tmpdir=sys.argv[2], verbose=True)
    else:
        ffi.compile(tmpdir=os.path.dirname(HERE), verbose=True)
