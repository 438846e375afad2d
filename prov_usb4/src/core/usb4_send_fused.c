/*
 * The common send, fused: one buffer, eager in one frame, no delivery
 * acknowledgement (what Open MPI's mtl ofi posts for every small MPI_Send
 * and MPI_Isend).  It makes the decisions of the general path
 * (usb4_proto.c: usb4_core_send, send_eager), builds the same frame and the
 * same completion, and calls the link's post itself: no marshalling into a
 * struct usb4_frame, no second validation of the arguments, no
 * reservation for a send that writes no CQ entry.  The route is the
 * endpoint's memo of the last send's while it holds (checked inline), else
 * usb4_route_send's, which remembers it for the next.
 *
 * Whatever else (a dest with no route or whose peer is down, a message
 * beyond the eager limit, a delivery acknowledgement, several buffers) is
 * declined here and goes the general way, which says why.
 */
#include "usb4_proto.h"

/* The eager limit towards the memo's peer: remembered where the link's
 * frames towards a dest never change, else read again as the general path
 * does (a lossy link's path shrinks). */
static size_t fused_eager_max(const struct usb4_route *r)
{
	if (r->link->ops->caps & USB4_LINK_CAP_FRAME_FIXED)
		return r->eager_max;
	return usb4_link_eager_max(r->link, r->peer->dest);
}

/* The route to dest and its eager limit: the last send's while the memo
 * holds for dest (usb4_route_send's checks) and its peer is up; else
 * usb4_route_send's, which remembers it.  NULL when dest has no route or
 * its peer is down. */
static const struct usb4_route *fused_route(struct usb4_core_ep *ep,
					    fi_addr_t dest, size_t *eager_max)
{
	const struct usb4_route_memo *m = &ep->tx_route;
	const struct usb4_route *r = &m->route;
	uint64_t av_gen = ep->av ? ep->av->t.gen : 0;

	if (r->peer && m->dest == dest && m->av_gen == av_gen &&
	    m->hidden_gen == ep->hidden.gen && !r->peer->down) {
		*eager_max = fused_eager_max(r);
		return r;
	}
	if (usb4_route_send(ep, dest, &r))
		return NULL;
	*eager_max = r->eager_max;	/* read just now */
	return r;
}

/* send_eager's completion: an entry if one is wanted, written in place in
 * the CQ's ring (reserved before the post), the counter always (an inject
 * counts too: man fi_cntr). */
static void fused_complete(struct usb4_core_ep *ep,
			   const struct usb4_send_args *a, size_t len,
			   bool want_cqe)
{
	struct usb4_cqe *e;

	if (ep->tx_cntr)
		usb4_count(ep->tx_cntr, true);
	if (!want_cqe)
		return;
	e = usb4_cq_queue_slot(ep->tx_cq);
	e->op_context = a->context;
	e->flags = FI_SEND | (a->flags & FI_TAGGED ? FI_TAGGED : FI_MSG);
	e->len = len;
	e->buf = NULL;
	e->data = 0;
	e->tag = a->tag;
	e->src = FI_ADDR_NOTAVAIL;
	usb4_cq_queue_commit(ep->tx_cq);
}

/* Header and payload to the link; the frame send_eager builds. */
static int fused_post(struct usb4_core_ep *ep, const struct usb4_route *r,
		      const struct usb4_send_args *a, size_t len)
{
	bool cq_data = a->flags & FI_REMOTE_CQ_DATA;
	struct usb4_wire_hdr hdr = {
		.version = USB4_WIRE_VERSION,
		.type = USB4_FRAME_EAGER,
		.flags = htole16((a->flags & FI_TAGGED ? USB4_WF_TAGGED : 0) |
				 (cq_data ? USB4_WF_CQ_DATA : 0)),
		.payload_len = htole32((uint32_t) len),
		.src_id = htole64(ep->id),
		.tag = htole64(a->tag),
		.data = htole64(cq_data ? a->data : 0),
		.total_len = htole64(len),
	};
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		a->iov[0],
	};

	return r->link->ops->post(r->link, r->peer->dest, iov, 2);
}

/* Posts with the entry's room taken first: once posted, the send must
 * complete. */
static int fused_send(struct usb4_core_ep *ep, const struct usb4_route *r,
		      const struct usb4_send_args *a, size_t len,
		      bool want_cqe)
{
	int ret;

	if (want_cqe && usb4_cq_queue_reserve(ep->tx_cq))
		return -FI_EAGAIN;
	ret = fused_post(ep, r, a, len);
	if (ret) {
		if (want_cqe)
			usb4_cq_queue_unreserve(ep->tx_cq);
		return ret;
	}
	ep->stats.eager_sent++;
	ep->stats.eager_fused++;
	fused_complete(ep, a, len, want_cqe);
	return 0;
}

ssize_t usb4_send_fused(struct usb4_core_ep *ep, const struct usb4_send_args *a)
{
	bool want_cqe = (a->flags & FI_COMPLETION) &&
			!(a->flags & FI_INJECT) && ep->tx_cq;
	const struct usb4_route *r;
	size_t len, eager_max;
	int ret, state;

	if (a->iov_count != 1 ||
	    ((a->flags & FI_DELIVERY_COMPLETE) && !(a->flags & FI_INJECT)))
		return USB4_SEND_DECLINED;
	r = fused_route(ep, a->dest, &eager_max);
	len = a->iov[0].iov_len;
	if (!r || len > eager_max)
		return USB4_SEND_DECLINED;
	ret = fused_send(ep, r, a, len, want_cqe);
	/* No room at a peer that no longer answers: not backpressure. */
	if (ret == -FI_EAGAIN && (state = usb4_peer_state(ep, a->dest)))
		ret = state;
	return ret;
}
