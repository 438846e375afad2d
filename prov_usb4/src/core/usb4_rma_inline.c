/*
 * Small RMA writes with their bytes in the request (issue 13).  As frames a
 * write is a rendezvous: WRITE_REQ, the target's CTS, DATA, the target's
 * FIN: two round trips, where MPI_Put + MPI_Win_flush of 8 bytes across
 * hosts waited on both.  Between peers that both offered
 * USB4_WIRE_FEATURE_WRITE_INLINE a write of at most
 * USB4_WIRE_WRITE_INLINE_MAX bytes travels in its WRITE_REQ (tag = its
 * length): the target checks and pins the segments as for any write,
 * places the bytes and answers FIN, one round trip.  A refused access
 * answers FIN with the error and touches nothing.
 */
#include <string.h>

#include "usb4_proto.h"

bool usb4_rma_inline_ok(struct usb4_core_ep *ep, fi_addr_t dest, size_t len)
{
	struct usb4_route r;

	if (!len || len > USB4_WIRE_WRITE_INLINE_MAX)
		return false;
	usb4_route(ep, dest, &r);
	return r.peer && r.link && r.link->ops->dest_features &&
	       (r.link->ops->dest_features(r.link, r.peer->dest) &
		USB4_WIRE_FEATURE_WRITE_INLINE);
}

size_t usb4_rma_inline_len(const struct usb4_frame *f)
{
	return f->type == USB4_FRAME_WRITE_REQ ? (size_t) f->tag : 0;
}

/* The target's part: x holds the pinned segments of a checked request. */
void usb4_rma_inline_place(struct usb4_core_ep *ep, struct usb4_xfer *x,
			   const struct usb4_frame *f)
{
	size_t len = usb4_rma_inline_len(f);

	usb4_iov_copy_in(x->iov, x->iov_count, 0,
			 (const char *) f->payload + f->payload_len - len, len);
	x->zone.end = len;
	usb4_xfer_done(ep, x, 0);
}
