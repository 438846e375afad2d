#!/usr/bin/env bash
# The whole test suite: set-up, build, C unit tests (make check), then every
# pytest suite.  This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[test] %s\n' "$*"; }

# --ccl: the collective library's venv (about 3 GB), made on the first run
# and reused after: the collective benchmark and tests need it.
scripts/setup.sh --ccl
# ruff and mypy (scripts/lint.sh) before the build: a finding fails at once.
say "python lint: ruff over python/ bench/ tests/, mypy over usb4fabric"
scripts/lint.sh
scripts/build.sh
# The other MPI stacks (reused when present); after the build, so it checks
# that the provider loads in each.
scripts/stacks.sh
say "C unit tests (make check)"
if ! make check -j"$(nproc)" --no-print-directory; then
	cat tests/c/*.log 2>/dev/null | tail -n 80
	exit 1
fi
# The same binary under libfabric 2.x (the newest an installed MPI stack
# brings): the C tests and the binding's, with that library in front.
lf2=$(PYTHONPATH=python python3 -m usb4fabric.libfabrics --dir 2 || true)
if [ -n "$lf2" ]; then
	say "C unit tests and binding tests again under libfabric 2.x: $lf2"
	if ! LD_LIBRARY_PATH="$lf2" make check --no-print-directory; then
		cat tests/c/*.log 2>/dev/null | tail -n 80
		exit 1
	fi
	LD_LIBRARY_PATH="$lf2" python3 -m pytest -q tests/binding
else
	say "no libfabric 2.x installed (scripts/setup.sh --stacks): 1.17 only"
fi
say "pytest (MPI suites under every installed stack; the default one in full)"
python3 -m pytest --mpi-stack=all --mpi-matrix=lean "$@"
