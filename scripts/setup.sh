#!/usr/bin/env bash
# Installs what usb4 needs on a fresh Debian 12 machine: system packages with
# apt-get, Python packages with pip.  Idempotent: installs only what is missing.
#   scripts/setup.sh [--stacks] [--ccl]
#       --stacks: also the other MPI stacks (scripts/stacks.sh, /var/lib/usb4-stacks)
#       --ccl:    also the collective library (oneCCL 2022.1.2 with Intel MPI
#                 2021.18.1 and torch 2.13.0 CPU in a venv, about 3 GB; made once
#                 and reused: scripts/stacks.sh ccl2022-pypi)
set -euo pipefail

SYSTEM_PACKAGES=(libfabric-dev libfabric-bin openmpi-bin libopenmpi-dev libsodium-dev libssl-dev
		 libxxhash-dev	# XXH3, the datagram check (src/rel/usb4_rel_check.c)
		 autoconf automake libtool pkg-config iproute2 make gcc
		 clang	# clang: libFuzzer for the frame-parser fuzz test
		 chromium)	# the report opened in a browser (usb4fabric/browser.py, --screenshot)
# xxhash: python/usb4fabric/wire.py checks XXH3 datagrams as the provider does
PYTHON_PACKAGES=(mpi4py cffi numpy pandas matplotlib pytest xxhash psutil tqdm
		 tabulate	# pandas renders the report's Markdown tables with it
		 websocket-client=websocket)	# DevTools protocol to chromium (pip name=module)

say() { printf '[setup] %s\n' "$*"; }

# The checkers scripts/lint.sh runs, pinned: a new release's new rules must
# not fail the suite unasked.  Same pins as python/pyproject.toml's [dev].
LINT_TOOLS=(ruff==0.17.5 mypy==2.4.1 types-psutil==7.2.2.20261111
	    types-tqdm==4.70.0.20261106 types-cffi==2.1.0.20260827)

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_system_packages() {
	local p
	for p in "${SYSTEM_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || echo "$p"
	done
}

install_system_packages() {
	local missing
	missing=$(missing_system_packages)
	if [ -z "$missing" ]; then
		say "system packages present: ${SYSTEM_PACKAGES[*]}"
		return
	fi
	say "installing system packages:" $missing
	as_root apt-get update -qq
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
}

missing_python_packages() {
	local p
	for p in "${PYTHON_PACKAGES[@]}"; do
		python3 -c "import ${p#*=}" 2>/dev/null || echo "${p%%=*}"
	done
}

install_python_packages() {
	local missing
	missing=$(missing_python_packages)
	if [ -z "$missing" ]; then
		say "python packages present: ${PYTHON_PACKAGES[*]}"
		return
	fi
	say "installing python packages:" $missing
	# shellcheck disable=SC2086
	python3 -m pip install -q $missing
}

install_lint_tools() {
	local pin name want have missing=()
	for pin in "${LINT_TOOLS[@]}"; do
		name=${pin%%==*} want=${pin#*==}
		have=$(python3 -c "import importlib.metadata as m; print(m.version('$name'))" \
			2>/dev/null || true)
		[ "$have" = "$want" ] || missing+=("$pin")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		say "lint tools present: ${LINT_TOOLS[*]}"
		return
	fi
	say "installing lint tools: ${missing[*]}"
	python3 -m pip install -q "${missing[@]}"
}

# The usb4fabric package (cffi binding + usb4bench), editable so that the
# tree's sources are what runs; its C extension compiles against libfabric.
install_usb4fabric() {
	local so
	so=$(ls python/usb4fabric/_libfabric*.so 2>/dev/null | head -n1 || true)
	if [ -n "$so" ] && command -v usb4bench >/dev/null &&
	   [ -z "$(find python/usb4fabric/cdefs python/usb4fabric/_build_libfabric.py \
		python/pyproject.toml -newer "$so" 2>/dev/null)" ]; then
		say "usb4fabric present ($so)"
		return
	fi
	say "installing usb4fabric (pip install -e python/)"
	python3 -m pip install -q -e python/
}

with_stacks=no
with_ccl=no
for arg in "$@"; do
	case "$arg" in
	--stacks) with_stacks=yes ;;
	--ccl) with_ccl=yes ;;
	*) echo "usage: $0 [--stacks] [--ccl]" >&2; exit 2 ;;
	esac
done

cd "$(dirname "$0")/.."
install_system_packages
install_python_packages
install_lint_tools
install_usb4fabric
say "libfabric $(pkg-config --modversion libfabric), $(mpirun --version 2>/dev/null | head -n1)"
if [ "$with_stacks" = yes ]; then
	scripts/stacks.sh
fi
if [ "$with_ccl" = yes ]; then
	say "collective library: oneCCL 2022.1.2 + Intel MPI 2021.18.1 + torch 2.13.0 (CPU)," \
	    "about 3 GB, in ${USB4_STACKS_DIR:-/var/lib/usb4-stacks}/ccl2022-pypi (made once, then reused)"
	scripts/stacks.sh ccl2022-pypi
fi
