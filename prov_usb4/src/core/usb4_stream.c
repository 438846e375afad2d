/*
 * Bulk data over links without cross memory attach (udp): receiver-paced.
 * The receiver (of a message, or the target of an RMA write) answers a
 * request with CTS once its buffer is known; the sender then streams DATA
 * frames as fast as rel's window lets it, and the receiver copies each one
 * straight to its final place.  Neither side buffers more than rel's window.
 * An RMA read is the same stream run by the target, answered by FIN.
 */
#include <stdlib.h>
#include <string.h>

#include "usb4_proto.h"

/* ---- sending side ---- */

void usb4_stream_start(struct usb4_core_ep *ep, struct usb4_stream *s,
		       uint64_t limit)
{
	s->limit = limit;
	/* A read response joins even when empty: the pump sends its FIN. */
	if ((s->sent < s->limit || s->owned) && usb4_list_empty(&s->link))
		usb4_list_insert_tail(&ep->streams, &s->link);
}

void usb4_stream_stop(struct usb4_stream *s)
{
	usb4_list_remove(&s->link);
}

/* Rel stops sending from the stream's buffers (it copies what is still
 * unacknowledged); the stream's owner may then let go of them. */
void usb4_stream_release(struct usb4_core_ep *ep, struct usb4_stream *s)
{
	if (s->by_ref)
		usb4_transport_unref(ep, s->dest, s->msg_id);
	s->by_ref = false;
}

/* A read response goes: rel stops sending from its regions (copying what
 * is unacknowledged, if anything), they are unpinned. */
static void stream_drop_owned(struct usb4_core_ep *ep, struct usb4_stream *s)
{
	usb4_list_remove(&s->link);
	usb4_stream_release(ep, s);
	usb4_shm_unpin_all(s->pins, s->npins);
	free(s);
}

/*
 * A read response whose data is all posted: the initiator gets FIN at once
 * (rel delivers it after the data); the regions stay pinned until the data
 * is acknowledged, since rel resends from them.  Returns true when the
 * stream is gone.
 */
static bool stream_finish_owned(struct usb4_core_ep *ep, struct usb4_stream *s)
{
	if (!s->fin_sent) {
		s->fin_sent = true;
		s->mark = usb4_transport_mark(ep, s->dest);
		usb4_shm_link_count_rma(ep->shm, false);
		usb4_proto_send_ctrl(ep, s->dest, USB4_FRAME_FIN, s->msg_id, 0,
				     s->sent);
	}
	if (!usb4_transport_settled(ep, s->dest, s->mark))
		return false;
	stream_drop_owned(ep, s);
	return true;
}

/* Sends DATA frames until the stream is done or rel's window is full.  The
 * data goes by reference: no copy on the way to the socket. */
static void stream_pump(struct usb4_core_ep *ep, struct usb4_stream *s)
{
	size_t chunk_max = usb4_transport_chunk_max(ep);

	while (s->sent < s->limit) {
		struct iovec iov[USB4_IOV_LIMIT + 1];
		struct usb4_wire_hdr hdr;
		size_t chunk = s->limit - s->sent < chunk_max ?
			       s->limit - s->sent : chunk_max;
		struct usb4_frame f = {
			.type = USB4_FRAME_DATA, .flags = s->wflags,
			.payload_len = chunk, .src_id = ep->id, .data = s->sent,
			.msg_id = s->msg_id, .total_len = chunk,
		};
		int n = usb4_iov_slice(s->iov, s->iov_count, s->sent, chunk,
				  iov + 1, USB4_IOV_LIMIT);

		usb4_wire_build(&hdr, &f);
		iov[0].iov_base = &hdr;
		iov[0].iov_len = sizeof(hdr);
		if (usb4_transport_post_ref(ep, s->dest, iov, n + 1, n,
					    s->msg_id))
			return;
		s->by_ref = true;
		s->sent += chunk;
	}
	if (s->owned)
		stream_finish_owned(ep, s);
	else
		usb4_list_remove(&s->link);
}

void usb4_core_ep_unpin_reads(struct usb4_core_ep *ep)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->streams, it, tmp) {
		struct usb4_stream *s = usb4_container_of(it, struct usb4_stream,
							  link);
		if (s->owned && s->fin_sent)
			stream_drop_owned(ep, s);
	}
}

void usb4_stream_progress(struct usb4_core_ep *ep)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->streams, it, tmp)
		stream_pump(ep, usb4_container_of(it, struct usb4_stream, link));
}

void usb4_stream_handle_cts(struct usb4_core_ep *ep, const struct usb4_frame *f,
			    fi_addr_t src)
{
	struct usb4_tx_op *op = usb4_proto_op(ep, f->msg_id);

	if (!op || !usb4_same_peer(ep, op->dest, src) ||
	    f->total_len > op->len) {
		ep->stats.dropped_bad_xfer++;
		return;
	}
	usb4_stream_start(ep, &op->stream, f->total_len);
}

/* ---- receiving side ---- */

struct usb4_xfer *usb4_xfer_new(struct usb4_core_ep *ep, enum usb4_xfer_kind kind,
				fi_addr_t src, uint64_t msg_id)
{
	struct usb4_xfer *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->kind = kind;
	x->src = src;
	x->msg_id = msg_id;
	usb4_list_insert_tail(&ep->xfers, &x->link);
	return x;
}

static struct usb4_xfer *xfer_find(struct usb4_core_ep *ep, fi_addr_t src,
				   uint64_t msg_id, bool read_resp)
{
	struct usb4_list *it;

	usb4_list_foreach(&ep->xfers, it) {
		struct usb4_xfer *x = usb4_container_of(it, struct usb4_xfer,
							link);
		if (x->msg_id == msg_id && usb4_same_peer(ep, x->src, src) &&
		    (x->kind == USB4_XFER_RMA_READ) == read_resp)
			return x;
	}
	return NULL;
}

/* The transfer after x from the same peer (the sender streams them in the
 * order it got their CTS, which is the order of ep->xfers), or NULL. */
static struct usb4_xfer *xfer_after(struct usb4_core_ep *ep,
				    const struct usb4_xfer *x)
{
	for (struct usb4_list *it = x->link.next; it != &ep->xfers;
	     it = it->next) {
		struct usb4_xfer *y = usb4_container_of(it, struct usb4_xfer,
							link);
		if (usb4_same_peer(ep, y->src, x->src))
			return y;
	}
	return NULL;
}

void usb4_xfer_free(struct usb4_core_ep *ep, struct usb4_xfer *x)
{
	if (ep->hot_xfer == x) {
		/* Its successor's frames are likely next, in chunks alike. */
		ep->hot_xfer = xfer_after(ep, x);
		if (ep->hot_xfer && !ep->hot_xfer->chunk)
			ep->hot_xfer->chunk = x->chunk;
	}
	usb4_shm_unpin_all(x->pins, x->npins);
	usb4_list_remove(&x->link);
	free(x);
}

/* The last byte landed: finish what the transfer was for. */
void usb4_xfer_done(struct usb4_core_ep *ep, struct usb4_xfer *x, int err)
{
	switch (x->kind) {
	case USB4_XFER_RECV:
		if (!err)
			usb4_proto_send_ctrl(ep, x->src, USB4_FRAME_FIN,
					     x->msg_id, 0, x->want);
		usb4_match_finish(ep, &x->cqe, x->total_len, err, x->want_cqe);
		break;
	case USB4_XFER_RMA_WRITE:
		if (err)
			break;
		usb4_shm_link_count_rma(ep->shm, true);
		if (x->cq_data)
			usb4_proto_remote_write_cqe(ep, x->src, x->data,
						    x->want);
		usb4_proto_send_ctrl(ep, x->src, USB4_FRAME_FIN, x->msg_id, 0,
				     x->want);
		break;
	case USB4_XFER_RMA_READ:
		break;	/* the op completes on the target's FIN */
	}
	usb4_xfer_free(ep, x);
}

static bool overlap(const void *a, size_t alen, const void *b, size_t blen)
{
	return (const char *) a < (const char *) b + blen &&
	       (const char *) b < (const char *) a + alen;
}

/* Whether [p, p + len) touches x's buffer, or one of the holes so far. */
static bool hole_clashes(const struct usb4_xfer *x, const void *p, size_t len,
			 const struct usb4_udp_hole *holes, int n)
{
	for (size_t i = 0; i < x->iov_count; i++)
		if (overlap(x->iov[i].iov_base, x->iov[i].iov_len, p, len))
			return true;
	for (int i = 0; i < n; i++)
		if (overlap(holes[i].dest, holes[i].len, p, len))
			return true;
	return false;
}

/*
 * Receive placement.  The DATA frames of the transfer that took the last
 * one (and of the transfers after it) most likely come next, in order, so
 * each datagram of the next receive gets a hole where its payload belongs.
 * A wrong guess is harmless: holes lie only in bytes a live transfer has
 * not received yet, and every one of those is written again by its own
 * frame before the transfer completes.  A right guess saves the copy.
 * Transfers into the same memory (a benchmark's receives into one buffer)
 * would break that, so a later transfer's holes must not touch the hot
 * transfer's buffer nor each other.
 */
int usb4_xfer_predict(struct usb4_core_ep *ep, size_t hdr_len,
		      struct usb4_udp_hole *holes, int max)
{
	struct usb4_xfer *x = ep->hot_xfer;
	uint32_t chunk = x ? x->chunk : 0;
	uint64_t off = x ? x->received : 0;
	int n = 0;

	while (x && chunk && n < max) {
		struct iovec part;
		size_t len;

		if (off >= x->want) {
			x = xfer_after(ep, x);
			off = x ? x->received : 0;
			continue;
		}
		len = x->want - off < chunk ? x->want - off : chunk;
		if (usb4_iov_slice(x->iov, x->iov_count, off, len, &part, 1) != 1 ||
		    part.iov_len != len)
			break;	/* the chunk straddles two segments */
		if (x != ep->hot_xfer &&
		    hole_clashes(ep->hot_xfer, part.iov_base, len, holes, n))
			break;
		holes[n++] = (struct usb4_udp_hole) {
			.off = hdr_len, .len = len, .dest = part.iov_base };
		off += len;
	}
	return n;
}

void usb4_stream_handle_data(struct usb4_core_ep *ep,
			     const struct usb4_frame *f, fi_addr_t src)
{
	struct usb4_xfer *x = xfer_find(ep, src, f->msg_id,
					f->flags & USB4_WF_READ_RESP);

	/* rel delivers in order: every frame continues where the last ended. */
	if (!x || f->data != x->received ||
	    f->payload_len > x->want - x->received) {
		ep->stats.dropped_bad_xfer++;
		return;
	}
	/* In place already when the receive guessed right (usb4_xfer_predict):
	 * usb4_iov_copy_in skips a copy onto itself.  Otherwise the copy may
	 * land on a hole of a datagram still to come in this batch: it moves
	 * out of the way first. */
	usb4_transport_clear_way(ep, x->iov, x->iov_count, f->data,
				 f->payload_len);
	usb4_iov_copy_in(x->iov, x->iov_count, f->data, f->payload, f->payload_len);
	x->received += f->payload_len;
	if (x->received < x->want)
		x->chunk = (uint32_t) f->payload_len;
	ep->hot_xfer = x;
	if (x->received == x->want)
		usb4_xfer_done(ep, x, 0);
}

/* The initiator of a read learns the outcome: drop what waits for data. */
void usb4_xfer_drop_read(struct usb4_core_ep *ep, fi_addr_t src,
			 uint64_t msg_id)
{
	struct usb4_xfer *x = xfer_find(ep, src, msg_id, true);

	if (x)
		usb4_xfer_free(ep, x);
}

/* ---- a peer died: nothing more will come from it or reach it ---- */

/* Stops a stream unfinished; a read response also lets go of its regions. */
static void stream_discard(struct usb4_core_ep *ep, struct usb4_stream *s)
{
	if (s->owned)
		stream_drop_owned(ep, s);
	else
		usb4_list_remove(&s->link);
}

void usb4_stream_peer_dead(struct usb4_core_ep *ep, fi_addr_t peer)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->xfers, it, tmp) {
		struct usb4_xfer *x = usb4_container_of(it, struct usb4_xfer,
							link);
		if (usb4_same_peer(ep, x->src, peer))
			usb4_xfer_done(ep, x, FI_EHOSTUNREACH);
	}
	usb4_list_foreach_safe(&ep->streams, it, tmp) {
		struct usb4_stream *s = usb4_container_of(it, struct usb4_stream,
							  link);
		if (usb4_same_peer(ep, s->dest, peer))
			stream_discard(ep, s);
	}
}

void usb4_stream_close(struct usb4_core_ep *ep)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->xfers, it, tmp)
		usb4_xfer_free(ep, usb4_container_of(it, struct usb4_xfer,
						     link));
	usb4_list_foreach_safe(&ep->streams, it, tmp)
		stream_discard(ep, usb4_container_of(it, struct usb4_stream,
						     link));
}
