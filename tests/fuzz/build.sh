#!/bin/sh
# Builds the libFuzzer target tests/fuzz/fuzz_frames.c with clang, outside
# automake so the gcc build is not disturbed.  The core sources are the .c
# files of usb4_core_sources in Makefile.am, plus tests/c/test_prov_stub.c.
#
#   tests/fuzz/build.sh [OUTPUT]     default OUTPUT: tests/fuzz/fuzz_frames
#
# CC (default clang) must have libFuzzer: Debian's clang package does.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-"$top/tests/fuzz/fuzz_frames"}
cc=${CC:-clang}

# The .c files listed in usb4_core_sources, up to the first blank line.
core=$(sed -n '/^usb4_core_sources *=/,/^$/p' "$top/Makefile.am" |
	tr -d '\\' | tr -s ' \t' '\n\n' | grep '\.c$')
[ -n "$core" ] || { echo "build.sh: no usb4_core_sources in Makefile.am" >&2; exit 1; }

srcs="$top/tests/fuzz/fuzz_frames.c $top/tests/c/test_prov_stub.c"
for f in $core; do
	srcs="$srcs $top/$f"
done

mkdir -p "$(dirname "$out")"
fabric_cflags=$(pkg-config --cflags libfabric 2>/dev/null || true)
fabric_libs=$(pkg-config --libs libfabric 2>/dev/null || echo -lfabric)

# shellcheck disable=SC2086  # word splitting of the flag lists is wanted
exec "$cc" -std=gnu11 -g -O1 -fno-omit-frame-pointer \
	-Wall -Wno-unused-parameter -Wno-gnu-variable-sized-type-not-at-end \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -I"$top/prov_usb4/include" $fabric_cflags \
	-o "$out" $srcs $fabric_libs -lpthread
