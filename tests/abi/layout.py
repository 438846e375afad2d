"""The struct layouts of libfabric's public headers, as a C program.

``program(headers_dir)`` reads every ``struct NAME { ... };`` in the rdma/
headers under ``headers_dir`` and writes a C program that prints, for each
member, ``struct.member offset``, and each struct's size.  Compiled against
the headers the provider was built with and against another libfabric's, the
two outputs tell whether every member we know sits where that libfabric
puts it.  Used by tests/test_libfabric_abi.py.
"""

from __future__ import annotations

import re
from pathlib import Path

HEADERS = ("fabric.h", "fi_domain.h", "fi_endpoint.h", "fi_eq.h", "fi_cm.h",
           "fi_tagged.h", "fi_rma.h", "fi_atomic.h", "fi_errno.h",
           "providers/fi_prov.h", "providers/fi_log.h")
_STRUCT = re.compile(r"^struct (\w+) \{\n(.*?)^\};", re.S | re.M)
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_FN_POINTER = re.compile(r"\(\s*\*\s*(\w+)\s*\)\s*\(")


def _members(body: str) -> list[str]:
    """Named top-level members of a struct body (nested aggregates skipped)."""
    body = _COMMENT.sub("", body)
    names, depth, statement = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            statement += ch
            if ch == ";":
                names.append(statement)
                statement = ""
    found = []
    for stmt in names:
        stmt = stmt.strip()
        if not stmt or stmt.startswith("#"):
            continue
        fn = _FN_POINTER.search(stmt)
        if fn:
            found.append(fn.group(1))
            continue
        m = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*;$", stmt)
        if m and not stmt.startswith(("union", "struct {")):
            found.append(m.group(1))
    return found


def structs(headers_dir: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in HEADERS:
        path = headers_dir / "rdma" / name
        if not path.is_file():
            continue
        for m in _STRUCT.finditer(path.read_text()):
            members = _members(m.group(2))
            if members:
                out[m.group(1)] = members
    return out


def program(headers_dir: Path) -> str:
    lines = ["#include <stddef.h>", "#include <stdio.h>"]
    lines += [f"#include <rdma/{h}>" for h in HEADERS]
    lines += ["int main(void)", "{"]
    for struct, members in sorted(structs(headers_dir).items()):
        lines.append(f'\tprintf("{struct} %zu\\n", sizeof(struct {struct}));')
        for member in members:
            lines.append(f'\tprintf("{struct}.{member} %zu\\n", '
                         f"offsetof(struct {struct}, {member}));")
    lines += ["\treturn 0;", "}"]
    return "\n".join(lines) + "\n"
