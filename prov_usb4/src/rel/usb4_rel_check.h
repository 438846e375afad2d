/*
 * The check field of an unauthenticated rel datagram (struct usb4_wire_rel's
 * crc): CRC32C, or XXH3 in a session where both sides offered
 * USB4_WIRE_FEATURE_XXH3 (the datagram then carries USB4_REL_F_XXH3).
 * Private to rel.
 */
#ifndef USB4_REL_CHECK_H
#define USB4_REL_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../wire.h"

/* The check of a datagram: its header h as sent (crc 0) followed by
 * payload pieces iov[0..count); XXH3 (its low 32 bits) when xxh3, else
 * CRC32C.  Host order. */
uint32_t usb4_rel_check(bool xxh3, const struct usb4_wire_rel *h,
			const struct iovec *iov, int count);

/* The same over a datagram in one buffer (its check field 0): one call. */
uint32_t usb4_rel_check_flat(bool xxh3, const void *dgram, size_t len);

/* usb4_rel_check_flat of a datagram as it came, in a buffer the caller
 * lets us write: its check field is zeroed for the call and put back (no
 * copy of the header, no second call). */
uint32_t usb4_rel_check_whole(bool xxh3, void *dgram, size_t len);

#endif
