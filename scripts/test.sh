#!/usr/bin/env bash
# The whole test suite: set-up, build, C unit tests (make check), then every
# pytest suite.  This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[test] %s\n' "$*"; }

scripts/setup.sh
scripts/build.sh
# The other MPI stacks (reused when present); after the build, so it checks
# that the provider loads in each.
scripts/stacks.sh
say "C unit tests (make check)"
if ! make check -j"$(nproc)" --no-print-directory; then
	cat tests/c/*.log 2>/dev/null | tail -n 80
	exit 1
fi
say "pytest"
python3 -m pytest "$@"
