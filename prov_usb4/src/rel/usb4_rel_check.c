/*
 * The check of an unauthenticated datagram, CRC32C or XXH3.
 *
 * Why XXH3: a software CRC32C (slice-by-8) runs at 1-2 GB/s, so on a CPU
 * without the crc32 or carry-less multiply instructions (or with
 * FI_USB4_PORTABLE=1) it capped a session's bandwidth below that of a plain
 * TCP socket.  XXH3 (libxxhash) runs at tens of GB/s with the instructions
 * every x86-64 has (SSE2) and at several GB/s in scalar code elsewhere,
 * and it is the same function everywhere: no CPU-specific path of ours.
 * Where the CRC instructions are there and allowed, CRC32C stays the
 * sender's choice: the AVX-512 fold costs about a fifth of XXH3's cycles
 * per byte in a two-host osu_bw profile (vpclmul 143 samples, XXH3 704 for
 * the same bytes), so XXH3 there would have halved the bandwidth.  It is a
 * check against accidents,
 * like the CRC it replaces (zstd and LZ4 frames carry an xxHash of their
 * content for the same purpose); against an attacker the job key's MAC
 * (usb4_rel_auth.c) replaces the check altogether.
 *
 * The XXH3 value is 64 bits; the header's field is 32, so the low 32 bits
 * are sent: a corrupted datagram still passes with probability 2^-32, as
 * with CRC32C (which in addition catches every burst of up to 32 bits:
 * the link's own CRC does that on a real wire).
 *
 * Covered bytes are the same for both: the header with the check field 0,
 * then the payload pieces.  A short datagram is gathered and hashed in one
 * call (XXH3's streaming state costs more than the hash itself below a
 * few hundred bytes); a longer one streams its pieces.
 *
 * XXH3 is compiled here, from the system's xxhash.h (XXH_INLINE_ALL: the
 * same code as libxxhash, the same values), at -O3 for GCC.  Debian's
 * libxxhash keeps the eight accumulators in memory inside the stripe loop:
 * a load and a store per 16 bytes were its hottest instructions in a
 * FI_USB4_PORTABLE=1 two-host osu_bw profile, where XXH3 cost each side
 * as much as the kernel's copy.  At -O3 they stay in SSE registers.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#define XXH_INLINE_ALL		/* XXH3_state_t on the stack, code inline */
#include <xxhash.h>
#include <stddef.h>
#include <string.h>

#include "usb4_rel.h"
#include "usb4_rel_check.h"

#define USB4_REL_XXH3_GATHER	512	/* bytes hashed in one call */

static uint32_t usb4_rel_xxh3_gathered(const struct usb4_wire_rel *h,
				       const struct iovec *iov, int count,
				       size_t len)
{
	unsigned char buf[USB4_REL_XXH3_GATHER];
	size_t off = sizeof(*h);

	memcpy(buf, h, sizeof(*h));
	for (int i = 0; i < count; i++) {
		memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return (uint32_t) XXH3_64bits(buf, len);
}

static uint32_t usb4_rel_xxh3_streamed(const struct usb4_wire_rel *h,
				       const struct iovec *iov, int count)
{
	XXH3_state_t state;

	XXH3_64bits_reset(&state);
	XXH3_64bits_update(&state, h, sizeof(*h));
	for (int i = 0; i < count; i++)
		XXH3_64bits_update(&state, iov[i].iov_base, iov[i].iov_len);
	return (uint32_t) XXH3_64bits_digest(&state);
}

static uint32_t usb4_rel_xxh3(const struct usb4_wire_rel *h,
			      const struct iovec *iov, int count)
{
	size_t len = sizeof(*h);

	for (int i = 0; i < count; i++)
		len += iov[i].iov_len;
	return len <= USB4_REL_XXH3_GATHER ?
	       usb4_rel_xxh3_gathered(h, iov, count, len) :
	       usb4_rel_xxh3_streamed(h, iov, count);
}

static uint32_t usb4_rel_crc32c(const struct usb4_wire_rel *h,
				const struct iovec *iov, int count)
{
	uint32_t crc = usb4_crc32c(0, h, sizeof(*h));

	for (int i = 0; i < count; i++)
		crc = usb4_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
	return crc;
}

uint32_t usb4_rel_check(bool xxh3, const struct usb4_wire_rel *h,
			const struct iovec *iov, int count)
{
	return xxh3 ? usb4_rel_xxh3(h, iov, count) :
		      usb4_rel_crc32c(h, iov, count);
}

uint32_t usb4_rel_check_flat(bool xxh3, const void *dgram, size_t len)
{
	return xxh3 ? (uint32_t) XXH3_64bits(dgram, len) :
		      usb4_crc32c(0, dgram, len);
}

uint32_t usb4_rel_check_whole(bool xxh3, void *dgram, size_t len)
{
	unsigned char *field = (unsigned char *) dgram +
			       offsetof(struct usb4_wire_rel, crc);
	uint32_t sent, zero = 0, sum;

	memcpy(&sent, field, sizeof(sent));
	memcpy(field, &zero, sizeof(zero));
	sum = usb4_rel_check_flat(xxh3, dgram, len);
	memcpy(field, &sent, sizeof(sent));
	return sum;
}
