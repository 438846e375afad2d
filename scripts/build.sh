#!/usr/bin/env bash
# Builds the provider (.libs/libusb4-fi.so), the osu_bench programs and the C
# unit tests in the source tree.  Re-running only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[build] %s\n' "$*"; }

if [ ! -x configure ] || [ configure.ac -nt configure ]; then
	say "generating configure (autoreconf)"
	./autogen.sh
fi
if [ ! -f Makefile ] || [ configure -nt Makefile ]; then
	say "configuring"
	./configure --quiet
fi
say "compiling"
make -j"$(nproc)" --no-print-directory
say "provider: $(pwd)/.libs/libusb4-fi.so"
