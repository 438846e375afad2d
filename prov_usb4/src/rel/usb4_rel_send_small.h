/*
 * A small DATA sent at once on an established session (private to
 * src/rel; usb4_rel_send_small.c).
 */
#ifndef USB4_REL_SEND_SMALL_H
#define USB4_REL_SEND_SMALL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "usb4_rel.h"

/* Not for this path: the caller sends it the general way. */
#define USB4_REL_SMALL_NO	1

/* usb4_rel_send of iov[0..count) when it is the common case: 0 (sent, or
 * queued behind a busy link), or USB4_REL_SMALL_NO with nothing changed
 * but what the general path would change first (the dead verdict). */
int usb4_rel_send_small(struct usb4_rel_peer *peer, uint64_t now,
			const struct iovec *iov, int count,
			const struct usb4_rel_io *io);

/* Whether usb4_rel_send_small would take iov[0..count) now. */
bool usb4_rel_small_ready(const struct usb4_rel_peer *peer,
			  const struct iovec *iov, int count);

#endif /* USB4_REL_SEND_SMALL_H */
