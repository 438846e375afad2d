#!/usr/bin/env python3
"""Fails the build when a layer of the provider reaches past the ones DESIGN.md
lets it use, in what the linker cannot see: the headers it includes and, for
the core, any mention of a kind of link (the core talks to links only through
usb4_link.h and picks protocols by capability).

    check_layers.py PROV_DIR        # prov_usb4

The link-time half is in Makefile.am (liblayer_*.la, linked with
--no-undefined).
"""

import re
import sys
from pathlib import Path

# Project headers each layer may include (system headers are free).
ALLOWED = {
    "base": {"usb4.h", "usb4_list.h"},
    "rel": {"usb4.h", "usb4_list.h", "usb4_rel.h", "usb4_rel_auth.h",
            "usb4_rel_cc.h", "usb4_rel_keepalive.h", "usb4_rel_frag.h",
            "usb4_rel_check.h", "usb4_rel_peer.h", "usb4_rel_send_small.h",
            "usb4_rel_clock.h", "../wire.h"},
    "link": {"usb4.h", "usb4_list.h", "usb4_link.h", "usb4_rel.h",
             "usb4_rel_auth.h", "usb4_rel_clock.h",
             "usb4_shm.h", "usb4_shm_layout.h", "usb4_shm_packed.h", "usb4_udp.h",
             "usb4_udp_rails.h",
             "usb4_udp_gso.h",
             "../wire.h"},
    "core": {"usb4.h", "usb4_list.h", "usb4_link.h", "usb4_core.h",
             "usb4_atomic.h", "usb4_proto.h", "usb4_mr_board.h", "../wire.h",
             "../src/wire.h"},
    "api": {"usb4.h", "usb4_list.h", "usb4_core.h", "usb4_api.h",
            "usb4_atomic.h"},
}
# Public headers, by the layer they belong to.
HEADERS = {"usb4.h": "base", "usb4_list.h": "base", "usb4_link.h": "link",
           "usb4_core.h": "core", "usb4_atomic.h": "core",
           "usb4_api.h": "api"}
# What names a kind of link (its name, or its machinery).
LINK_KIND = re.compile(r"(?i)(?<![a-z])(shm|udp|cma|rel|memfd|inbox|socket|"
                       r"datagram|thunderbolt)(?![a-z])")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path: Path, prov: Path) -> str | None:
    rel = path.relative_to(prov)
    if rel.parts[0] == "src" and len(rel.parts) > 2:
        return rel.parts[1]
    if rel.parts[0] == "include":
        return HEADERS.get(rel.name)
    return None


def check(prov: Path) -> list[str]:
    problems = []
    for path in sorted(prov.rglob("*.[ch]")):
        layer = layer_of(path, prov)
        if layer is None:
            continue
        text = path.read_text()
        for inc in INCLUDE.findall(text):
            if inc not in ALLOWED[layer]:
                problems.append("%s: the %s layer includes %s" % (path, layer, inc))
        if layer == "core":
            for n, line in enumerate(text.splitlines(), 1):
                m = LINK_KIND.search(line)
                if m:
                    problems.append("%s:%d: the core names a kind of link (%r)"
                                    % (path, n, m.group(1)))
    return problems


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    prov = Path(args[0] if args else "prov_usb4").resolve()
    problems = check(prov)
    for p in problems:
        print("layer check: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
