#!/bin/sh
# Builds a libFuzzer target with clang, outside automake so the gcc build
# is not disturbed.  The provider sources are the .c files of the layers as
# Makefile.am lists them (libusb4base_la_SOURCES, libusb4rel_la_SOURCES,
# libusb4core_la_SOURCES).
#
#   tests/fuzz/build.sh [OUTPUT]         tests/fuzz/fuzz_frames.c (wire parser
#                                        and rel): base, rel and core, with
#                                        tests/c/link_kinds_none.c (the core
#                                        needs a link registry, the target
#                                        drives no link); default OUTPUT:
#                                        tests/fuzz/fuzz_frames
#   tests/fuzz/build.sh --core [OUTPUT]  tests/fuzz/fuzz_core.c (the core's
#                                        frame handling): base and core, with
#                                        the fuzz links (fuzz_link.c) as the
#                                        registry; default OUTPUT:
#                                        tests/fuzz/fuzz_core
#
# CC (default clang) must have libFuzzer: Debian's clang package does.
# FUZZ_CFLAGS adds compiler flags.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
target=frames
if [ "${1:-}" = --core ]; then
	target=core
	shift
fi
out=${1:-"$top/tests/fuzz/fuzz_$target"}
cc=${CC:-clang}
am="$top/Makefile.am"

# The value of Makefile.am's `P = ...` (the provider's directory).
p=$(sed -n 's/^P *= *//p' "$am")
[ -n "$p" ] || { echo "build.sh: no P = ... in Makefile.am" >&2; exit 1; }

# The .c files of one _SOURCES list, up to the first blank line, with $(P)
# expanded.
layer_sources() {
	sed -n "/^$1 *=/,/^\$/p" "$am" |
		tr -d '\\' | tr -s ' \t' '\n\n' | grep '\.c$' |
		sed "s|\$(P)|$p|"
}

if [ "$target" = core ]; then
	srcs="$top/tests/fuzz/fuzz_core.c $top/tests/fuzz/fuzz_link.c"
	layers="libusb4base_la_SOURCES libusb4core_la_SOURCES"
else
	srcs="$top/tests/fuzz/fuzz_frames.c $top/tests/c/link_kinds_none.c"
	layers="libusb4base_la_SOURCES libusb4rel_la_SOURCES
		libusb4core_la_SOURCES"
fi
for var in $layers; do
	list=$(layer_sources "$var" || true)
	[ -n "$list" ] || { echo "build.sh: no $var in Makefile.am" >&2; exit 1; }
	for f in $list; do
		srcs="$srcs $top/$f"
	done
done

mkdir -p "$(dirname "$out")"
fabric_cflags=$(pkg-config --cflags libfabric 2>/dev/null || true)
fabric_libs=$(pkg-config --libs libfabric 2>/dev/null || echo -lfabric)
# rel authenticates datagrams with libsodium and libcrypto (usb4_rel_auth.c)
# and checks them with libxxhash (usb4_rel_check.c).
crypto_libs="$(pkg-config --libs libsodium 2>/dev/null || echo -lsodium) \
	$(pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto) \
	$(pkg-config --libs libxxhash 2>/dev/null || echo -lxxhash)"

# shellcheck disable=SC2086  # word splitting of the flag lists is wanted
exec "$cc" -std=gnu11 -g -O1 -fno-omit-frame-pointer \
	-Wall -Wno-unused-parameter -Wno-gnu-variable-sized-type-not-at-end \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -I"$top/$p/include" -I"$top/$p/src/rel" $fabric_cflags \
	${FUZZ_CFLAGS:-} \
	-o "$out" $srcs $fabric_libs $crypto_libs -lpthread
