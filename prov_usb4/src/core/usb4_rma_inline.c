/*
 * Small RMA to a peer on another host, carried in the frames that are sent
 * anyway.
 *
 * Writes (issue 13).  As frames a write is a rendezvous: WRITE_REQ, the
 * target's CTS, DATA, the target's FIN: two round trips, where MPI_Put +
 * MPI_Win_flush of 8 bytes across hosts waited on both.  Between peers that
 * both offered USB4_WIRE_FEATURE_WRITE_INLINE a write of at most
 * USB4_WIRE_WRITE_INLINE_MAX bytes travels in its WRITE_REQ (tag = its
 * length): the target checks and pins the segments as for any write,
 * places the bytes and answers FIN, one round trip.  A refused access
 * answers FIN with the error and touches nothing.
 *
 * Reads (issue 13).  A read is answered by a stream: DATA frames, then FIN
 * with the status, two frames (two sends at the target, two receives at
 * the initiator) for 8 bytes.  Open MPI 4.1's osc rdma runs an accumulate
 * as lock, get, put, unlock, each waited for, so the get's second frame is
 * on the critical path of every MPI_Accumulate across hosts.  To an initiator that offered USB4_WIRE_FEATURE_READ_INLINE a
 * read of at most USB4_WIRE_READ_INLINE_MAX bytes that passed its checks is
 * answered by one READ_INLINE frame with the bytes, copied when the
 * request is served; a refused read still answers FIN with the error.
 */
#include <string.h>

#include "usb4_proto.h"

/* Whether the session with peer agreed on feature (both sides offered it). */
static bool peer_agreed(struct usb4_core_ep *ep, fi_addr_t peer,
			uint32_t feature)
{
	struct usb4_route r;

	usb4_route(ep, peer, &r);
	return r.peer && r.link && r.link->ops->dest_features &&
	       (r.link->ops->dest_features(r.link, r.peer->dest) & feature);
}

bool usb4_rma_inline_ok(struct usb4_core_ep *ep, fi_addr_t dest, size_t len)
{
	return len && len <= USB4_WIRE_WRITE_INLINE_MAX &&
	       peer_agreed(ep, dest, USB4_WIRE_FEATURE_WRITE_INLINE);
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

/* ---- reads ---- */

int usb4_rma_read_inline_answer(struct usb4_core_ep *ep, fi_addr_t src,
				uint64_t msg_id, const struct iovec *iov,
				size_t iov_count, size_t len)
{
	struct usb4_ctrl *resp;
	char *p;

	if (!len || len > USB4_WIRE_READ_INLINE_MAX ||
	    !peer_agreed(ep, src, USB4_WIRE_FEATURE_READ_INLINE))
		return -FI_EOPNOTSUPP;
	resp = usb4_ctrl_new(len);
	if (!resp)
		return -FI_ENOMEM;	/* the stream needs no copy */
	p = (char *) resp->payload;
	for (size_t i = 0; i < iov_count; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	usb4_rma_count_remote(ep, false);
	usb4_ctrl_send_data(ep, resp, src, USB4_FRAME_READ_INLINE, msg_id, 0,
			    resp->payload, len);
	return 0;
}

int usb4_rma_handle_read_inline(struct usb4_core_ep *ep,
				const struct usb4_frame *f, fi_addr_t src)
{
	struct usb4_xfer *x = usb4_xfer_find_read(ep, src, f->msg_id);
	struct usb4_tx_op *op = usb4_op_find(ep, f->msg_id, src);

	/* Only the whole answer to a read of ours that still waits for
	 * every one of its bytes. */
	if (!x || !op || !(op->flags & FI_READ) || !(op->flags & FI_RMA) ||
	    x->zone.next || f->payload_len != x->zone.end) {
		ep->stats.dropped_bad_xfer++;
		return 0;
	}
	usb4_iov_copy_in(x->iov, x->iov_count, 0, f->payload, f->payload_len);
	usb4_op_done(ep, op, 0);	/* drops x */
	return 0;
}
