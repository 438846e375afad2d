"""One provider binary for every libfabric from 1.17 to the newest 2.x.

The provider is built against Debian 12's libfabric 1.17 headers and reports
the API of whichever libfabric loads it (prov_usb4/src/api/usb4_libfabric.c).
These tests hold the three things that makes safe, and show it working under
each libfabric the machine has:

- it imports from libfabric only symbols of version FABRIC_1.0, which every
  libfabric defines, and never fi_dupinfo/fi_freeinfo (versioned by struct
  layout: the 1.17 binding would make libfabric 2.x allocate old layouts);
- every struct member of the 1.17 headers sits at the same offset in the 2.x
  headers (Debian 13's libfabric-dev 2.1, in the stacks chroot): 2.x only
  appended;
- the Python binding builds against 2.x headers too.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "abi"))
sys.path.insert(0, str(REPO / "python"))

import layout  # noqa: E402
from usb4fabric import libfabrics  # noqa: E402

PROVIDER = "libusb4-fi.so"


def _provider(provider_dir: Path) -> Path:
    return provider_dir / PROVIDER


def _imports(lib: Path) -> set[tuple[str, str]]:
    """(symbol, version) of every undefined dynamic symbol of lib."""
    out = subprocess.run(["objdump", "-T", str(lib)], capture_output=True,
                         text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        m = re.search(r"\*UND\*\s+\S+\s+\(?([\w.]+)\)?\s+(\w+)$", line)
        if m:
            found.add((m.group(2), m.group(1)))
    return found


def test_provider_imports_only_fabric_1_0(provider_dir):
    fabric = {(sym, ver) for sym, ver in _imports(_provider(provider_dir))
              if ver.startswith("FABRIC_")}
    assert fabric, "the provider imports nothing from libfabric?"
    assert {ver for _, ver in fabric} == {"FABRIC_1.0"}, sorted(fabric)
    names = {sym for sym, _ in fabric}
    assert not names & {"fi_dupinfo", "fi_freeinfo", "fi_getinfo",
                        "fi_fabric"}, sorted(names)


def _layout(headers: Path, out: Path, source: Path, include: Path | None) -> dict:
    exe = out / ("layout-" + ("other" if include else "ours"))
    argv = ["gcc", "-o", str(exe), str(source)]
    if include:
        argv[1:1] = ["-I", str(include)]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = subprocess.run([str(exe)], capture_output=True, text=True,
                           check=True).stdout.split("\n")
    return dict(line.rsplit(" ", 1) for line in lines if line)


def _headers_2x(tmp_path: Path) -> Path:
    root = libfabrics.chroot_root() / "usr" / "include" / "rdma"
    if not (root / "fabric.h").is_file():
        pytest.skip(f"no libfabric 2.x headers at {root}: scripts/setup.sh "
                    "--stacks makes the Debian 13 chroot that has them")
    copy = tmp_path / "headers"
    shutil.copytree(root, copy / "rdma")
    return copy


def test_struct_members_keep_their_place_in_2x(tmp_path):
    other = _headers_2x(tmp_path)
    source = tmp_path / "layout.c"
    source.write_text(layout.program(Path("/usr/include")))
    ours = _layout(Path("/usr/include"), tmp_path, source, None)
    theirs = _layout(other, tmp_path, source, other)
    assert len(ours) > 400, "too few members read from the headers"
    moved = {k: (v, theirs[k]) for k, v in ours.items()
             if "." in k and theirs[k] != v}
    shrunk = {k: (v, theirs[k]) for k, v in ours.items()
              if "." not in k and int(theirs[k]) < int(v)}
    assert not moved, moved
    assert not shrunk, shrunk


def test_layout_check_sees_a_moved_member(tmp_path):
    """The comparison above can fail: a header with one member moved."""
    other = _headers_2x(tmp_path)
    fabric_h = other / "rdma" / "fabric.h"
    text = fabric_h.read_text()
    moved = text.replace("struct fi_fabric_attr {\n",
                         "struct fi_fabric_attr {\n\tuint64_t inserted;\n", 1)
    assert moved != text
    fabric_h.write_text(moved)
    source = tmp_path / "layout.c"
    source.write_text(layout.program(Path("/usr/include")))
    ours = _layout(Path("/usr/include"), tmp_path, source, None)
    theirs = _layout(other, tmp_path, source, other)
    assert ours["fi_fabric_attr.name"] != theirs["fi_fabric_attr.name"]


def test_binding_builds_against_2x_headers(tmp_path):
    other = _headers_2x(tmp_path)
    out = tmp_path / "build"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, str(REPO / "python" / "usb4fabric" / "_build_libfabric.py"),
         str(other), str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert list(out.glob("usb4fabric/_libfabric*.so"))


def _getinfo_program(tmp_path: Path) -> Path:
    """A consumer that asks for the running libfabric's own API version."""
    source = tmp_path / "ask.c"
    source.write_text(r"""
#include <stdio.h>
#include <rdma/fabric.h>
int main(void)
{
	struct fi_info *hints = fi_allocinfo(), *info = NULL;
	uint32_t v = fi_version();
	int ret;

	hints->fabric_attr->prov_name = strdup("usb4");
	hints->ep_attr->type = FI_EP_RDM;
	hints->caps = FI_TAGGED | FI_RMA | FI_ATOMIC;
	ret = fi_getinfo(v, NULL, NULL, 0, hints, &info);
	printf("libfabric %u.%u getinfo %d api %u.%u\n", FI_MAJOR(v),
	       FI_MINOR(v), ret, info ? FI_MAJOR(info->fabric_attr->api_version) : 0,
	       info ? FI_MINOR(info->fabric_attr->api_version) : 0);
	fi_freeinfo(info);
	fi_freeinfo(hints);
	return ret != 0;
}
""".replace("#include <stdio.h>", "#include <stdio.h>\n#include <string.h>"))
    exe = tmp_path / "ask"
    subprocess.run(["gcc", "-o", str(exe), str(source), "-lfabric"], check=True)
    return exe


@pytest.mark.parametrize("which", ["1", "2"])
def test_served_at_the_running_api(tmp_path, provider_dir, which):
    libs = [lib for lib in libfabrics.found() if str(lib.version[0]) == which]
    if not libs:
        pytest.skip(f"no libfabric {which}.x here: scripts/setup.sh --stacks "
                    "installs the MPI stacks that bring 2.x")
    exe = _getinfo_program(tmp_path)
    for lib in libs:
        env = dict(os.environ, FI_PROVIDER_PATH=str(provider_dir),
                   FI_PROVIDER="usb4", LD_LIBRARY_PATH=str(lib.folder))
        done = subprocess.run([str(exe)], capture_output=True, text=True,
                              env=env, timeout=60)
        want = f"libfabric {lib.label} getinfo 0 api {lib.label}"
        assert want in done.stdout, (lib, done.stdout, done.stderr[-2000:])


def test_served_inside_the_debian13_chroot(tmp_path, provider_dir):
    root = libfabrics.chroot_root()
    if not libfabrics.chroot_libfabric() or not (root / "usr/bin/fi_info").exists():
        pytest.skip(f"no Debian 13 chroot at {root}: scripts/setup.sh --stacks")
    inside = Path("/tmp") / f"usb4-abi-{os.getpid()}"
    target = root / inside.relative_to("/")
    target.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copy2(_provider(provider_dir), target / PROVIDER)
        done = subprocess.run(
            ["chroot", str(root), "env", f"FI_PROVIDER_PATH={inside}",
             "fi_info", "-p", "usb4", "-v"], capture_output=True, text=True,
            timeout=60)
    finally:
        shutil.rmtree(target, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"api_version: 2\.\d+", done.stdout), done.stdout[-2000:]


def test_builds_against_2x_headers_without_a_warning(tmp_path):
    """The sources built inside the Debian 13 chroot (libfabric 2.1 headers)
    with -Werror; that binary, too, imports only FABRIC_1.0 symbols and is
    served at the chroot's API."""
    root = libfabrics.chroot_root()
    if not (root / "usr/include/rdma/fabric.h").is_file():
        pytest.skip(f"no Debian 13 chroot at {root}: scripts/setup.sh --stacks")
    inside = Path("/tmp") / f"usb4-build21-{os.getpid()}"
    target = root / inside.relative_to("/")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"],
                                 capture_output=True, check=True).stdout
        for name in filter(None, archive.decode().split("\0")):
            src = REPO / name
            if src.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target / name)
        script = ("./autogen.sh >/dev/null 2>&1 && "
                  "./configure CFLAGS='-O2 -Werror' >configure.out 2>&1 && "
                  "make -j2 >make.out 2>&1; rc=$?; tail -n 40 make.out; exit $rc")
        done = subprocess.run(["chroot", str(root), "sh", "-c",
                               f"cd {inside} && {script}"],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        built = target / ".libs" / PROVIDER
        assert {ver for sym, ver in _imports(built)
                if ver.startswith("FABRIC_")} == {"FABRIC_1.0"}
        served = subprocess.run(
            ["chroot", str(root), "env", f"FI_PROVIDER_PATH={inside}/.libs",
             "fi_info", "-p", "usb4", "-v"], capture_output=True, text=True,
            timeout=60)
        assert re.search(r"api_version: 2\.\d+", served.stdout), served.stderr
    finally:
        shutil.rmtree(target, ignore_errors=True)
