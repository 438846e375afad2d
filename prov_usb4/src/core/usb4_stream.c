/*
 * Bulk data as DATA frames, over links that cannot read the sender's
 * memory: receiver-paced.  The receiver (of a message, or the target of an
 * RMA write) answers a request with CTS once its buffer is known; the sender
 * then streams DATA frames as fast as its link takes them, and each payload
 * lands at its final place (the receiving link may even receive it there:
 * the transfer's buffer is a landing zone of that link).  An RMA read is
 * the same stream run by the target, answered by FIN.
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

/* The link stops sending from the stream's buffers (it copies what is still
 * unacknowledged); the stream's owner may then let go of them. */
void usb4_stream_release(struct usb4_core_ep *ep, struct usb4_stream *s)
{
	if (s->by_ref)
		usb4_release(ep, s->dest, s->msg_id);
	s->by_ref = false;
}

static void owned_free(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl)
{
	free(usb4_container_of(ctrl, struct usb4_stream, ctrl));
}

/* A read response goes: the link stops sending from its regions, they are
 * unpinned, and the stream is freed once its FIN left. */
static void stream_drop_owned(struct usb4_core_ep *ep, struct usb4_stream *s)
{
	usb4_list_remove(&s->link);
	usb4_stream_release(ep, s);
	usb4_mr_unpin_all(s->pins, s->npins);
	s->npins = 0;
	usb4_ctrl_then(ep, &s->ctrl, owned_free);
}

/*
 * A read response whose data is all posted: the initiator gets FIN at once
 * (the link delivers it after the data); the regions stay pinned until the
 * data is acknowledged, since the link resends from them.
 */
static void stream_finish_owned(struct usb4_core_ep *ep, struct usb4_stream *s)
{
	if (!s->fin_sent) {
		s->fin_sent = true;
		s->mark = usb4_mark(ep, s->dest);
		usb4_rma_count_remote(ep, false);
		usb4_ctrl_send(ep, &s->ctrl, s->dest, USB4_FRAME_FIN, s->msg_id,
			       0, s->sent);
	}
	if (usb4_settled(ep, s->dest, s->mark))
		stream_drop_owned(ep, s);
}

/* Sends DATA frames until the stream is done or the link is full.  The
 * data goes by reference: no copy on the way to the cable. */
static void stream_pump(struct usb4_core_ep *ep, struct usb4_stream *s)
{
	struct usb4_route r;
	size_t chunk_max = usb4_route(ep, s->dest, &r) ? 0 :
			   usb4_route_chunk_max(&r);

	while (s->sent < s->limit && chunk_max) {
		struct iovec iov[USB4_IOV_LIMIT + 1];
		struct usb4_wire_hdr hdr;
		size_t chunk = s->limit - s->sent < chunk_max ?
			       s->limit - s->sent : chunk_max;
		struct usb4_frame f = {
			.type = USB4_FRAME_DATA, .flags = s->wflags,
			.payload_len = chunk, .src_id = ep->id, .data = s->sent,
			.msg_id = s->msg_id, .total_len = chunk,
			.tag = s->round,
		};
		int n = usb4_iov_slice(s->iov, s->iov_count, s->sent, chunk,
				       iov + 1, USB4_IOV_LIMIT);

		usb4_wire_build(&hdr, &f);
		iov[0].iov_base = &hdr;
		iov[0].iov_len = sizeof(hdr);
		if (usb4_route_post_ref(&r, iov, n + 1, n, s->msg_id))
			return;
		s->by_ref = true;
		s->sent += chunk;
	}
	if (s->owned)
		stream_finish_owned(ep, s);
	else
		usb4_list_remove(&s->link);
}

void usb4_stream_progress(struct usb4_core_ep *ep)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->streams, it, tmp)
		stream_pump(ep, usb4_container_of(it, struct usb4_stream, link));
}

int usb4_stream_handle_cts(struct usb4_core_ep *ep, const struct usb4_frame *f,
			   fi_addr_t src)
{
	struct usb4_tx_op *op = usb4_op_find(ep, f->msg_id, src);

	/* Only what has bytes to stream: a CTS naming an eager send that
	 * waits for its ACK, a read or an atomic would send DATA frames
	 * from no buffer. */
	if (!op || !op->wants_cts || f->total_len > op->len ||
	    !usb4_stream_early_cts(ep, &op->stream, f)) {
		ep->stats.dropped_bad_xfer++;
		return 0;
	}
	usb4_stream_start(ep, &op->stream, f->total_len);
	return 0;
}

/* ---- receiving side ---- */

struct usb4_xfer *usb4_xfer_new(struct usb4_core_ep *ep,
				enum usb4_xfer_kind kind, fi_addr_t src,
				uint64_t msg_id)
{
	struct usb4_xfer *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->kind = kind;
	x->src = src;
	x->msg_id = msg_id;
	usb4_list_init(&x->ctrl.link);
	usb4_list_insert_tail(&ep->xfers, &x->link);
	return x;
}

void usb4_xfer_arm(struct usb4_core_ep *ep, struct usb4_xfer *x, uint64_t want)
{
	struct usb4_peer *peer = usb4_peer_of(ep, x->src);
	struct usb4_link *link = usb4_peer_link(ep, peer);

	x->zone = (struct usb4_link_zone) {
		.iov = x->iov, .iov_count = x->iov_count, .next = 0,
		.end = want, .hdr_len = sizeof(struct usb4_wire_hdr),
		.peer = peer ? peer->id : 0,
	};
	if (want && link && link->ops->zone_open) {
		link->ops->zone_open(link, &x->zone);
		x->zone_open = true;
	}
}

static void zone_close(struct usb4_core_ep *ep, struct usb4_xfer *x)
{
	struct usb4_link *link;

	if (!x->zone_open)
		return;
	link = usb4_peer_link(ep, usb4_peer_of(ep, x->src));
	if (link)
		link->ops->zone_close(link, &x->zone);
	x->zone_open = false;
}

static void xfer_release(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl)
{
	free(usb4_container_of(ctrl, struct usb4_xfer, ctrl));
}

void usb4_xfer_free(struct usb4_core_ep *ep, struct usb4_xfer *x)
{
	if (ep->hot_xfer == x)
		ep->hot_xfer = NULL;
	zone_close(ep, x);
	usb4_mr_unpin_all(x->pins, x->npins);
	x->npins = 0;
	usb4_list_remove(&x->link);
	usb4_ctrl_then(ep, &x->ctrl, xfer_release);
}

/* Whether the peer can still hear an answer. */
static bool peer_gone(int err)
{
	return err == -FI_EHOSTUNREACH || err == -FI_ECONNREFUSED ||
	       err == -FI_ECONNRESET;
}

static void recv_done(struct usb4_core_ep *ep, struct usb4_xfer *x, int err)
{
	if (!peer_gone(err))
		usb4_ctrl_send(ep, &x->ctrl, x->src, USB4_FRAME_FIN, x->msg_id,
			       err, err ? 0 : x->zone.end);
	usb4_match_finish(ep, &x->cqe, x->total_len, err, x->want_cqe);
}

static void write_done(struct usb4_core_ep *ep, struct usb4_xfer *x, int err)
{
	if (!err) {
		usb4_rma_count_remote(ep, true);
		if (x->cq_data)
			usb4_proto_remote_write_cqe(ep, x->src, x->data,
						    x->zone.end);
	} else if (x->cq_data) {
		usb4_cq_queue_unreserve(ep->rx_cq);
	}
	if (!peer_gone(err))
		usb4_ctrl_send(ep, &x->ctrl, x->src, USB4_FRAME_FIN, x->msg_id,
			       err, err ? 0 : x->zone.end);
}

void usb4_xfer_done(struct usb4_core_ep *ep, struct usb4_xfer *x, int err)
{
	switch (x->kind) {
	case USB4_XFER_RECV:
		recv_done(ep, x, err);
		break;
	case USB4_XFER_RMA_WRITE:
		write_done(ep, x, err);
		break;
	case USB4_XFER_RMA_READ:
		break;	/* the op completes on the target's FIN */
	}
	usb4_xfer_free(ep, x);
}

static struct usb4_xfer *xfer_find(struct usb4_core_ep *ep, fi_addr_t src,
				   uint64_t msg_id, bool read_resp)
{
	struct usb4_xfer *x = ep->hot_xfer;
	struct usb4_list *it;

	if (x && x->msg_id == msg_id && usb4_same_peer(ep, x->src, src) &&
	    (x->kind == USB4_XFER_RMA_READ) == read_resp)
		return x;
	usb4_list_foreach(&ep->xfers, it) {
		x = usb4_container_of(it, struct usb4_xfer, link);
		if (x->msg_id == msg_id && usb4_same_peer(ep, x->src, src) &&
		    (x->kind == USB4_XFER_RMA_READ) == read_resp)
			return x;
	}
	return NULL;
}

static void zone_write(struct usb4_core_ep *ep, struct usb4_xfer *x,
		       const struct usb4_frame *f, size_t len)
{
	struct usb4_link *link = x->zone_open ?
		usb4_peer_link(ep, usb4_peer_of(ep, x->src)) : NULL;

	if (link && link->ops->zone_write)
		link->ops->zone_write(link, &x->zone, f->data, f->payload, len);
	else
		usb4_iov_copy_in(x->iov, x->iov_count, f->data, f->payload,
				 len);
	x->zone.next += len;
}

int usb4_stream_handle_data(struct usb4_core_ep *ep,
			    const struct usb4_frame *f, fi_addr_t src)
{
	struct usb4_xfer *x = xfer_find(ep, src, f->msg_id,
					f->flags & USB4_WF_READ_RESP);
	size_t len;

	/* The link delivers in order: every frame continues where the last
	 * ended (usb4_xfer_early_fits). */
	if (!x) {
		usb4_stream_early_orphan(ep, f, src);
		return 0;
	}
	if (!usb4_xfer_early_fits(ep, x, f, &len))
		return 0;
	zone_write(ep, x, f, len);
	ep->hot_xfer = x;
	if (x->zone.next == x->zone.end)
		usb4_xfer_done(ep, x, 0);
	return 0;
}

struct usb4_xfer *usb4_xfer_find_read(struct usb4_core_ep *ep, fi_addr_t src,
				      uint64_t msg_id)
{
	return xfer_find(ep, src, msg_id, true);
}

/* The initiator of a read learns the outcome: drop what waits for data. */
void usb4_xfer_drop_read(struct usb4_core_ep *ep, fi_addr_t src,
			 uint64_t msg_id)
{
	struct usb4_xfer *x = xfer_find(ep, src, msg_id, true);

	if (x)
		usb4_xfer_free(ep, x);
}

/* ---- ends: a peer went, a region went, the endpoint closes ---- */

/* Stops a stream unfinished; a read response also lets go of its regions
 * (after telling the initiator, unless it is gone). */
static void stream_discard(struct usb4_core_ep *ep, struct usb4_stream *s,
			   int err)
{
	if (!s->owned) {
		usb4_list_remove(&s->link);
		return;
	}
	if (!s->fin_sent && err && !peer_gone(err)) {
		s->fin_sent = true;
		usb4_ctrl_send(ep, &s->ctrl, s->dest, USB4_FRAME_FIN,
			       s->msg_id, err, 0);
	}
	stream_drop_owned(ep, s);
}

void usb4_stream_end(struct usb4_core_ep *ep, struct usb4_stream *s, int err)
{
	stream_discard(ep, s, err);
}

void usb4_stream_peer_down(struct usb4_core_ep *ep, fi_addr_t peer, int err)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->xfers, it, tmp) {
		struct usb4_xfer *x = usb4_container_of(it, struct usb4_xfer,
							link);
		if (usb4_same_peer(ep, x->src, peer))
			usb4_xfer_done(ep, x, err);
	}
	usb4_list_foreach_safe(&ep->streams, it, tmp) {
		struct usb4_stream *s = usb4_container_of(it, struct usb4_stream,
							  link);
		if (usb4_same_peer(ep, s->dest, peer))
			stream_discard(ep, s, err);
	}
}

static bool pins_slot(const struct usb4_pin *pins, size_t n, uint32_t slot)
{
	for (size_t i = 0; i < n; i++)
		if (pins[i].slot == slot)
			return true;
	return false;
}

void usb4_stream_forget_region(struct usb4_core_ep *ep, uint32_t slot)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->xfers, it, tmp) {
		struct usb4_xfer *x = usb4_container_of(it, struct usb4_xfer,
							link);
		if (pins_slot(x->pins, x->npins, slot))
			usb4_xfer_done(ep, x, -FI_ECANCELED);
	}
	usb4_list_foreach_safe(&ep->streams, it, tmp) {
		struct usb4_stream *s = usb4_container_of(it, struct usb4_stream,
							  link);
		if (s->owned && pins_slot(s->pins, s->npins, slot))
			stream_discard(ep, s, -FI_ECANCELED);
	}
}

void usb4_core_ep_forget_region(struct usb4_core_ep *ep, uint32_t slot)
{
	usb4_stream_forget_region(ep, slot);
}

void usb4_stream_close(struct usb4_core_ep *ep)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->xfers, it, tmp) {
		struct usb4_xfer *x = usb4_container_of(it, struct usb4_xfer,
							link);
		if (x->kind == USB4_XFER_RMA_WRITE && x->cq_data)
			usb4_cq_queue_unreserve(ep->rx_cq);
		usb4_xfer_free(ep, x);
	}
	usb4_list_foreach_safe(&ep->streams, it, tmp)
		stream_discard(ep, usb4_container_of(it, struct usb4_stream,
						     link), 0);
}
