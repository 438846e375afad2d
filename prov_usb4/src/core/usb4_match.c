/*
 * Tag matching: posted receives, the unexpected queue, FI_PEEK / FI_CLAIM /
 * FI_DISCARD, FI_MULTI_RECV and cancel.  Messages and tagged messages match
 * in separate queues (USB4_Q_MSG, USB4_Q_TAGGED), each in arrival order.
 */
#include <stdlib.h>
#include <string.h>

#include "usb4_proto.h"

static int queue_of(uint64_t flags)
{
	return flags & FI_TAGGED ? USB4_Q_TAGGED : USB4_Q_MSG;
}

/* By identity: a message from a peer we first knew by a hidden entry
 * matches a receive naming the entry the application inserted since. */
static bool src_matches(struct usb4_core_ep *ep, fi_addr_t want,
			fi_addr_t have)
{
	return !(ep->caps & FI_DIRECTED_RECV) || want == FI_ADDR_UNSPEC ||
	       usb4_same_peer(ep, want, have);
}

static bool tag_matches(int q, uint64_t want, uint64_t ignore, uint64_t have)
{
	return q == USB4_Q_MSG || ((want ^ have) & ~ignore) == 0;
}

static uint64_t recv_cqe_flags(int q, uint16_t wflags)
{
	return FI_RECV | (q == USB4_Q_TAGGED ? FI_TAGGED : FI_MSG) |
	       (wflags & USB4_WF_CQ_DATA ? FI_REMOTE_CQ_DATA : 0);
}

/* ---- receive entries ---- */

static struct usb4_rx_entry *rx_alloc(struct usb4_core_ep *ep)
{
	struct usb4_rx_entry *rx;

	if (ep->rx_posted >= ep->rx_max)
		return NULL;
	if (!usb4_list_empty(&ep->rx_free)) {
		rx = usb4_container_of(ep->rx_free.next, struct usb4_rx_entry,
				       link);
		usb4_list_remove(&rx->link);
	} else {
		rx = malloc(sizeof(*rx));
		if (!rx)
			return NULL;
		usb4_list_init(&rx->link);
	}
	ep->rx_posted++;
	return rx;
}

static void rx_release(struct usb4_core_ep *ep, struct usb4_rx_entry *rx)
{
	usb4_list_remove(&rx->link);
	usb4_list_insert_tail(&ep->rx_free, &rx->link);
	ep->rx_posted--;
}

/* ---- placing data ---- */

/* Copies the message into the buffer; returns 0 or a negative FI_E* code. */
static int place(const struct usb4_msg_in *m, const struct iovec *iov,
		 size_t count, size_t len)
{
	if (m->type == USB4_FRAME_EAGER) {
		usb4_iov_copy_in(iov, count, 0, m->payload, len);
		return 0;
	}
	return usb4_shm_bulk_read(m->pid, iov, count, m->riov, m->riov_count,
				  len);
}

/* Tells the sender its message is placed (rendezvous FIN, delivery ACK). */
static void answer_sender(struct usb4_core_ep *ep, const struct usb4_msg_in *m,
			  int status, size_t placed)
{
	if (m->type == USB4_FRAME_RTS)
		usb4_proto_send_ctrl(ep, m->src, USB4_FRAME_FIN, m->msg_id,
				     status, placed);
	else if (m->wflags & USB4_WF_ACK_REQ)
		usb4_proto_send_ctrl(ep, m->src, USB4_FRAME_ACK, m->msg_id, 0,
				     placed);
}

/* The region a message lands in: the whole iov, or the free tail of a
 * multi-receive buffer. */
static size_t target_region(const struct usb4_rx_entry *rx, struct iovec *iov,
			    size_t *count)
{
	if (!(rx->flags & FI_MULTI_RECV)) {
		memcpy(iov, rx->iov, rx->iov_count * sizeof(*iov));
		*count = rx->iov_count;
		return rx->len;
	}
	iov[0].iov_base = (char *) rx->iov[0].iov_base + rx->multi_used;
	iov[0].iov_len = rx->len - rx->multi_used;
	*count = 1;
	return iov[0].iov_len;
}

/* A multi-receive buffer retires once less than min_multi_recv is left. */
static bool multi_consume(struct usb4_core_ep *ep, struct usb4_rx_entry *rx,
			  size_t used)
{
	rx->multi_used += used;
	return rx->len - rx->multi_used < ep->min_multi_recv;
}

void usb4_match_finish(struct usb4_core_ep *ep, const struct usb4_cqe *e,
		       uint64_t total_len, int err, bool want_cqe)
{
	if (err)
		usb4_core_complete_err(ep, false, e, err, 0);
	else if (e->len < total_len)
		usb4_core_complete_err(ep, false, e, FI_ETRUNC,
				       total_len - e->len);
	else
		usb4_core_complete(ep, false, e, want_cqe);
}

static bool from_udp_peer(struct usb4_core_ep *ep, const struct usb4_msg_in *m)
{
	struct usb4_peer *peer = usb4_core_av_peer(ep->av, m->src);

	return peer && peer->kind == USB4_PEER_UDP;
}

/* A rendezvous from another host: ask for the bytes, place them as they
 * come (usb4_stream.c), complete when the last one lands. */
static void start_xfer(struct usb4_core_ep *ep, const struct usb4_msg_in *m,
		       const struct iovec *iov, size_t count,
		       const struct usb4_cqe *e, bool want_cqe)
{
	struct usb4_xfer *x = usb4_xfer_new(ep, USB4_XFER_RECV, m->src,
					    m->msg_id);

	if (!x) {
		answer_sender(ep, m, -FI_ENOMEM, 0);
		usb4_match_finish(ep, e, m->total_len, FI_ENOMEM, want_cqe);
		return;
	}
	memcpy(x->iov, iov, count * sizeof(*iov));
	x->iov_count = count;
	x->want = e->len;
	x->cqe = *e;
	x->total_len = m->total_len;
	x->want_cqe = want_cqe;
	if (!x->want)
		usb4_xfer_done(ep, x, 0);
	else
		usb4_proto_send_ctrl(ep, m->src, USB4_FRAME_CTS, m->msg_id, 0,
				     x->want);
}

bool usb4_match_deliver(struct usb4_core_ep *ep, struct usb4_rx_entry *rx,
			const struct usb4_msg_in *m)
{
	struct iovec iov[USB4_IOV_LIMIT];
	size_t count, room = target_region(rx, iov, &count);
	size_t n = m->total_len < room ? m->total_len : room;
	bool want_cqe = rx->flags & FI_COMPLETION, done = true;
	struct usb4_cqe e = {
		.op_context = rx->context,
		.flags = recv_cqe_flags(queue_of(rx->flags), m->wflags),
		.len = n,
		.buf = count ? iov[0].iov_base : NULL,
		.data = m->wflags & USB4_WF_CQ_DATA ? m->data : 0,
		.tag = m->tag,
		.src = usb4_report_src(ep, m->src),
	};

	if (rx->flags & FI_MULTI_RECV) {
		done = multi_consume(ep, rx, n);
		if (done)
			e.flags |= FI_MULTI_RECV;
	}
	if (m->type == USB4_FRAME_RTS && from_udp_peer(ep, m)) {
		start_xfer(ep, m, iov, count, &e, want_cqe);
	} else {
		int ret = place(m, iov, count, n);
		answer_sender(ep, m, ret, ret ? 0 : n);
		usb4_match_finish(ep, &e, m->total_len, -ret, want_cqe);
	}
	if (done)
		rx_release(ep, rx);
	return done;
}

/* ---- arrivals ---- */

static struct usb4_rx_entry *find_posted(struct usb4_core_ep *ep, int q,
					 fi_addr_t src, uint64_t tag)
{
	struct usb4_list *it;

	usb4_list_foreach(&ep->posted[q], it) {
		struct usb4_rx_entry *rx =
			usb4_container_of(it, struct usb4_rx_entry, link);
		if (src_matches(ep, rx->src, src) &&
		    tag_matches(q, rx->tag, rx->ignore, tag))
			return rx;
	}
	return NULL;
}

static void queue_unexpected(struct usb4_core_ep *ep, int q,
			     const struct usb4_msg_in *m)
{
	struct usb4_unexp *u = calloc(1, sizeof(*u));

	if (!u)
		goto err_drop;
	u->src = m->src;
	u->tag = m->tag;
	u->data = m->data;
	u->msg_id = m->msg_id;
	u->total_len = m->total_len;
	u->wflags = m->wflags;
	u->type = m->type;
	if (m->type == USB4_FRAME_EAGER && m->total_len) {
		u->buf = malloc(m->total_len);
		if (!u->buf)
			goto err_free_unexp;
		memcpy(u->buf, m->payload, m->total_len);
	}
	u->pid = m->pid;
	u->riov_count = m->riov_count;
	memcpy(u->riov, m->riov, m->riov_count * sizeof(*m->riov));
	usb4_list_insert_tail(&ep->unexp[q], &u->link);
	ep->stats.unexpected++;
	return;

err_free_unexp:
	free(u);
err_drop:
	USB4_WARN(FI_LOG_EP_DATA, "out of memory: unexpected message lost\n");
	answer_sender(ep, m, -FI_ENOMEM, 0);
}

void usb4_match_arrival(struct usb4_core_ep *ep, const struct usb4_msg_in *m)
{
	int q = m->wflags & USB4_WF_TAGGED ? USB4_Q_TAGGED : USB4_Q_MSG;
	struct usb4_rx_entry *rx = find_posted(ep, q, m->src, m->tag);

	if (rx)
		usb4_match_deliver(ep, rx, m);
	else
		queue_unexpected(ep, q, m);
}

/* ---- posting receives ---- */

static void unexp_view(const struct usb4_unexp *u, struct usb4_msg_in *m)
{
	*m = (struct usb4_msg_in) {
		.type = u->type,
		.wflags = u->wflags,
		.src = u->src,
		.tag = u->tag,
		.data = u->data,
		.msg_id = u->msg_id,
		.total_len = u->total_len,
		.payload = u->buf,
		.pid = u->pid,
		.riov_count = u->riov_count,
		.riov = u->riov,
	};
}

static void unexp_free(struct usb4_unexp *u)
{
	usb4_list_remove(&u->link);
	free(u->buf);
	free(u);
}

static struct usb4_unexp *find_unexp(struct usb4_core_ep *ep, int q,
				     const struct usb4_recv_args *a)
{
	struct usb4_list *it;

	usb4_list_foreach(&ep->unexp[q], it) {
		struct usb4_unexp *u =
			usb4_container_of(it, struct usb4_unexp, link);
		if (!u->claimed && src_matches(ep, a->src, u->src) &&
		    tag_matches(q, a->tag, a->ignore, u->tag))
			return u;
	}
	return NULL;
}

static void fill_rx(struct usb4_rx_entry *rx, const struct usb4_recv_args *a)
{
	rx->context = a->context;
	rx->flags = a->flags;
	memcpy(rx->iov, a->iov, a->iov_count * sizeof(*a->iov));
	rx->iov_count = a->iov_count;
	rx->len = usb4_iov_len(a->iov, a->iov_count);
	rx->multi_used = 0;
	rx->src = a->src;
	rx->tag = a->tag;
	rx->ignore = a->ignore;
}

/* Consumes an unexpected message with a freshly described receive. */
static ssize_t take_unexp(struct usb4_core_ep *ep, struct usb4_unexp *u,
			  const struct usb4_recv_args *a)
{
	struct usb4_rx_entry *rx = rx_alloc(ep);
	struct usb4_msg_in m;

	if (!rx)
		return -FI_EAGAIN;
	fill_rx(rx, a);
	unexp_view(u, &m);
	usb4_match_deliver(ep, rx, &m);
	unexp_free(u);
	return 0;
}

/* A new multi-receive buffer first takes what already waits for it. */
static void drain_into_multi(struct usb4_core_ep *ep, struct usb4_rx_entry *rx,
			     const struct usb4_recv_args *a)
{
	struct usb4_unexp *u;
	struct usb4_msg_in m;

	while ((u = find_unexp(ep, USB4_Q_MSG, a))) {
		unexp_view(u, &m);
		bool retired = usb4_match_deliver(ep, rx, &m);
		unexp_free(u);
		if (retired)
			return;
	}
}

static ssize_t post(struct usb4_core_ep *ep, const struct usb4_recv_args *a)
{
	int q = queue_of(a->flags);
	struct usb4_rx_entry *rx;
	struct usb4_unexp *u;

	if (!(a->flags & FI_MULTI_RECV)) {
		u = find_unexp(ep, q, a);
		if (u)
			return take_unexp(ep, u, a);
	}
	rx = rx_alloc(ep);
	if (!rx)
		return -FI_EAGAIN;
	fill_rx(rx, a);
	usb4_list_insert_tail(&ep->posted[q], &rx->link);
	if (a->flags & FI_MULTI_RECV)
		drain_into_multi(ep, rx, a);
	return 0;
}

/* ---- FI_PEEK, FI_CLAIM, FI_DISCARD ---- */

/* Peeks report without consuming: no counter moves. */
static void peek_report(struct usb4_core_ep *ep, const struct usb4_recv_args *a,
			const struct usb4_unexp *u, size_t len)
{
	int q = queue_of(a->flags);
	struct usb4_cqe_err ee = { .src = FI_ADDR_NOTAVAIL };
	struct usb4_cqe e = {
		.op_context = a->context,
		.flags = recv_cqe_flags(q, u ? u->wflags : 0),
		.len = len,
		.tag = u ? u->tag : a->tag,
		.data = u && (u->wflags & USB4_WF_CQ_DATA) ? u->data : 0,
		.src = u ? usb4_report_src(ep, u->src) : FI_ADDR_NOTAVAIL,
	};

	if (!ep->rx_cq)
		return;
	if (u) {
		usb4_cq_queue_push(ep->rx_cq, &e);
		return;
	}
	ee.err.op_context = a->context;
	ee.err.flags = e.flags;
	ee.err.tag = a->tag;
	ee.err.err = FI_ENOMSG;
	ee.err.prov_errno = -FI_ENOMSG;
	usb4_cq_queue_push_err(ep->rx_cq, &ee);
}

/* Drops a message unread; the sender still gets its answer. */
static void discard(struct usb4_core_ep *ep, struct usb4_unexp *u)
{
	struct usb4_msg_in m;

	unexp_view(u, &m);
	answer_sender(ep, &m, 0, 0);
	unexp_free(u);
}

static ssize_t peek(struct usb4_core_ep *ep, const struct usb4_recv_args *a)
{
	struct usb4_unexp *u = find_unexp(ep, queue_of(a->flags), a);

	if (!u) {
		peek_report(ep, a, NULL, 0);
		return 0;
	}
	peek_report(ep, a, u, u->total_len);
	if (a->flags & FI_DISCARD) {
		discard(ep, u);
	} else if (a->flags & FI_CLAIM) {
		u->claimed = true;
		((struct fi_context *) a->context)->internal[0] = u;
	}
	return 0;
}

/* The message an earlier FI_PEEK|FI_CLAIM reserved under this context. */
static struct usb4_unexp *claimed_by(struct usb4_core_ep *ep, int q,
				     void *context)
{
	struct usb4_unexp *want = ((struct fi_context *) context)->internal[0];
	struct usb4_list *it;

	usb4_list_foreach(&ep->unexp[q], it)
		if (usb4_container_of(it, struct usb4_unexp, link) == want &&
		    want->claimed)
			return want;
	return NULL;
}

static ssize_t claim(struct usb4_core_ep *ep, const struct usb4_recv_args *a)
{
	struct usb4_unexp *u;

	if (!a->context)
		return -FI_EINVAL;
	u = claimed_by(ep, queue_of(a->flags), a->context);
	if (!u)
		return -FI_EINVAL;
	if (!(a->flags & FI_DISCARD))
		return take_unexp(ep, u, a);
	peek_report(ep, a, u, 0);
	discard(ep, u);
	return 0;
}

ssize_t usb4_core_recv(struct usb4_core_ep *ep, const struct usb4_recv_args *a)
{
	if (a->iov_count > USB4_IOV_LIMIT)
		return -FI_EINVAL;
	if ((a->flags & FI_PEEK) && !a->context && (a->flags & FI_CLAIM))
		return -FI_EINVAL;
	if (a->flags & FI_PEEK)
		return peek(ep, a);
	if (a->flags & FI_CLAIM)
		return claim(ep, a);
	if ((a->flags & FI_MULTI_RECV) &&
	    ((a->flags & FI_TAGGED) || a->iov_count != 1))
		return -FI_EINVAL;
	return post(ep, a);
}

int usb4_core_cancel(struct usb4_core_ep *ep, void *context)
{
	struct usb4_list *it;

	for (int q = 0; q < 2; q++) {
		usb4_list_foreach(&ep->posted[q], it) {
			struct usb4_rx_entry *rx = usb4_container_of(it,
					struct usb4_rx_entry, link);
			if (rx->context != context)
				continue;
			struct usb4_cqe e = {
				.op_context = context,
				.flags = recv_cqe_flags(q, 0) |
					 (rx->flags & FI_MULTI_RECV),
				.buf = rx->iov_count ? rx->iov[0].iov_base : NULL,
				.tag = rx->tag,
				.src = FI_ADDR_NOTAVAIL,
			};
			rx_release(ep, rx);
			usb4_core_complete_err(ep, false, &e, FI_ECANCELED, 0);
			return 0;
		}
	}
	return -FI_ENOENT;
}
