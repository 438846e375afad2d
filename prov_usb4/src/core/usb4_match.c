/*
 * Tag matching: posted receives, the unexpected queue, FI_PEEK / FI_CLAIM /
 * FI_DISCARD, FI_MULTI_RECV and cancel.  Messages and tagged messages match
 * in separate queues (USB4_Q_MSG, USB4_Q_TAGGED), each in arrival order.
 *
 * A posted receive holds its completion (reserved in its CQ) and the
 * storage of its answer to the sender; what an arrival needs beyond that
 * (a queue entry, a transfer, a multi-receive buffer's extra completion)
 * is got before anything changes, or the arrival is refused for now.
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

/* Whether the sender waits for an answer: FIN of a rendezvous, delivery
 * ACK of an eager message. */
static bool wants_answer(const struct usb4_msg_in *m)
{
	return m->type == USB4_FRAME_RTS || (m->wflags & USB4_WF_ACK_REQ);
}

/* ---- receive entries ---- */

/* Whether a receive may be posted: under the endpoint's bound, and its
 * completion reserved (-FI_EAGAIN when either is short). */
static inline __attribute__((always_inline)) bool
rx_admit(struct usb4_core_ep *ep)
{
	return ep->rx_posted < ep->rx_max && !usb4_cq_queue_reserve(ep->rx_cq);
}

/* An idle entry off the free list (the caller saw it non-empty). */
static inline __attribute__((always_inline)) struct usb4_rx_entry *
rx_take_idle(struct usb4_core_ep *ep)
{
	struct usb4_rx_entry *rx = usb4_container_of(ep->rx_free.next,
						     struct usb4_rx_entry, link);

	usb4_list_remove(&rx->link);
	ep->rx_posted++;
	return rx;
}

/* A receive entry with its completion reserved; NULL (-FI_EAGAIN) when
 * either is short. */
static struct usb4_rx_entry *rx_alloc(struct usb4_core_ep *ep)
{
	struct usb4_rx_entry *rx;

	if (!rx_admit(ep))
		return NULL;
	if (!usb4_list_empty(&ep->rx_free))
		return rx_take_idle(ep);
	rx = calloc(1, sizeof(*rx));
	if (!rx) {
		usb4_cq_queue_unreserve(ep->rx_cq);
		return NULL;
	}
	usb4_list_init(&rx->link);
	usb4_list_init(&rx->ctrl.link);
	ep->rx_posted++;
	return rx;
}

static void rx_recycle(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl)
{
	struct usb4_rx_entry *rx = usb4_container_of(ctrl, struct usb4_rx_entry,
						     ctrl);

	usb4_list_insert_tail(&ep->rx_free, &rx->link);
	ep->rx_posted--;
}

/* The receive is done; its entry is reused once its answer left. */
static void rx_release(struct usb4_core_ep *ep, struct usb4_rx_entry *rx)
{
	usb4_list_remove(&rx->link);
	usb4_ctrl_then(ep, &rx->ctrl, rx_recycle);
}

/* ---- placing data ---- */

/* Copies the message into the buffer; 0 or a negative FI_E* code. */
static int place(struct usb4_core_ep *ep, const struct usb4_msg_in *m,
		 const struct iovec *iov, size_t count, size_t len)
{
	struct usb4_peer *peer;
	struct usb4_link *link;

	if (m->type == USB4_FRAME_EAGER) {
		usb4_iov_copy_in(iov, count, 0, m->payload, len);
		return 0;
	}
	peer = usb4_peer_of(ep, m->src);
	link = usb4_peer_link(ep, peer);
	if (!link)
		return -FI_EHOSTUNREACH;
	return link->ops->bulk_read(peer->dest, iov, count, m->riov,
				    m->riov_count, len);
}

/* Tells the sender its message is placed (rendezvous FIN, delivery ACK). */
static void answer_sender(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl,
			  const struct usb4_msg_in *m, int status,
			  size_t placed)
{
	if (m->type == USB4_FRAME_RTS)
		usb4_ctrl_send(ep, ctrl, m->src, USB4_FRAME_FIN, m->msg_id,
			       status, placed);
	else if (m->wflags & USB4_WF_ACK_REQ)
		usb4_ctrl_send(ep, ctrl, m->src, USB4_FRAME_ACK, m->msg_id, 0,
			       placed);
}

/* The region a message lands in: the whole iov, or the free tail of a
 * multi-receive buffer. */
static size_t target_region(const struct usb4_rx_entry *rx, struct iovec *tail,
			    const struct iovec **iov, size_t *count)
{
	if (!(rx->flags & FI_MULTI_RECV)) {
		*iov = rx->iov;
		*count = rx->iov_count;
		return rx->len;
	}
	tail->iov_base = (char *) rx->iov[0].iov_base + rx->multi_used;
	tail->iov_len = rx->len - rx->multi_used;
	*iov = tail;
	*count = 1;
	return tail->iov_len;
}

void usb4_match_finish(struct usb4_core_ep *ep, const struct usb4_cqe *e,
		       uint64_t total_len, int err, bool want_cqe)
{
	if (err)
		usb4_core_complete_err(ep, false, e, err, 0);
	else if (e->len < total_len)
		usb4_core_complete_err(ep, false, e, -FI_ETRUNC,
				       total_len - e->len);
	else
		usb4_core_complete(ep, false, e, want_cqe);
}

/* What delivering a message needs beyond its posted receive. */
struct deliver_res {
	struct usb4_xfer *x;		/* rendezvous over a streaming link */
	struct usb4_ctrl *ctrl;		/* multi-receive: an answer of its own */
	bool cqe;			/* multi-receive: a completion reserved */
};

static void res_free(struct usb4_core_ep *ep, struct deliver_res *res)
{
	if (res->x)
		usb4_xfer_free(ep, res->x);
	free(res->ctrl);
	if (res->cqe)
		usb4_cq_queue_unreserve(ep->rx_cq);
	memset(res, 0, sizeof(*res));
}

/* Whether the bytes of an RTS are asked for (CTS) rather than read: over a
 * link that cannot read the sender's memory, and whenever the RTS names no
 * segments (wire.h: its receiver asks for the bytes), whatever the link. */
static bool streamed(struct usb4_core_ep *ep, const struct usb4_msg_in *m)
{
	return m->type == USB4_FRAME_RTS &&
	       (!m->riov_count ||
		!(usb4_peer_caps(ep, m->src) & USB4_LINK_CAP_BULK_READ));
}

static int res_get(struct usb4_core_ep *ep, const struct usb4_rx_entry *rx,
		   const struct usb4_msg_in *m, struct deliver_res *res)
{
	bool multi = rx->flags & FI_MULTI_RECV;

	memset(res, 0, sizeof(*res));
	if (streamed(ep, m) &&
	    !(res->x = usb4_xfer_new(ep, USB4_XFER_RECV, m->src, m->msg_id)))
		goto err_free;
	if (multi && !res->x && wants_answer(m) && !(res->ctrl = usb4_ctrl_new(0)))
		goto err_free;
	if (multi) {
		if (usb4_cq_queue_reserve(ep->rx_cq))
			goto err_free;
		res->cqe = true;
	}
	return 0;

err_free:
	res_free(ep, res);
	return -FI_EAGAIN;
}

/* A rendezvous over a link that cannot read our peer's memory: ask for the
 * bytes, place them as they come (usb4_stream.c), complete when the last
 * one lands.  The transfer takes over the receive's completion. */
static void start_xfer(struct usb4_core_ep *ep, struct usb4_xfer *x,
		       const struct usb4_msg_in *m, const struct iovec *iov,
		       size_t count, const struct usb4_cqe *e, bool want_cqe)
{
	memcpy(x->iov, iov, count * sizeof(*iov));
	x->iov_count = count;
	x->cqe = *e;
	x->total_len = m->total_len;
	x->want_cqe = want_cqe;
	usb4_xfer_arm(ep, x, e->len);
	if (!e->len)
		usb4_xfer_done(ep, x, 0);
	else
		usb4_xfer_early_cts(ep, x, m->early_intact, e->len);
}

/* Places m into rx (resources from res_get), answers, completes.  Returns
 * whether rx is done (released), false for a multi-receive buffer with
 * room left. */
static bool deliver(struct usb4_core_ep *ep, struct usb4_rx_entry *rx,
		    const struct usb4_msg_in *m, struct deliver_res *res)
{
	struct iovec tail;
	const struct iovec *iov;
	size_t count, room = target_region(rx, &tail, &iov, &count);
	size_t n = m->total_len < room ? m->total_len : room;
	bool want_cqe = rx->flags & FI_COMPLETION, done = true;
	struct usb4_ctrl *ctrl = res->ctrl ? res->ctrl : &rx->ctrl;
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
		rx->multi_used += n;
		done = rx->len - rx->multi_used < ep->min_multi_recv;
		if (done) {
			e.flags |= FI_MULTI_RECV;
			usb4_cq_queue_unreserve(ep->rx_cq);	/* the buffer's */
		}
	}
	if (res->x) {
		start_xfer(ep, res->x, m, iov, count, &e, want_cqe);
	} else {
		int ret = place(ep, m, iov, count, n);
		answer_sender(ep, ctrl, m, ret, ret ? 0 : n);
		usb4_match_finish(ep, &e, m->total_len, ret, want_cqe);
	}
	memset(res, 0, sizeof(*res));
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

/* Who sent m, as the queue remembers it: the id outlives a hidden entry. */
static int sender_id(struct usb4_core_ep *ep, const struct usb4_msg_in *m,
		     uint64_t *id, uint8_t *kind)
{
	const struct usb4_peer *peer = usb4_peer_of(ep, m->src);

	if (!peer)
		return -FI_EINVAL;
	*id = peer->id;
	*kind = peer->kind;
	return 0;
}

/* An entry for m, its cost charged (NULL: over a bound, or no memory). */
static struct usb4_unexp *unexp_new(struct usb4_core_ep *ep,
				    const struct usb4_msg_in *m)
{
	size_t cost = usb4_unexp_cost(m->type == USB4_FRAME_EAGER ?
				      m->total_len : 0);
	struct usb4_unexp *u = usb4_unexp_get(&ep->unexp_pool);

	if (!u)
		return NULL;
	if (sender_id(ep, m, &u->peer_id, &u->peer_kind))
		goto err_put;
	if (usb4_unexp_charge(&ep->unexp_budget, u->peer_id, cost)) {
		ep->stats.unexp_full++;
		goto err_put;
	}
	u->cost = cost;
	if (m->type == USB4_FRAME_EAGER && m->total_len) {
		u->buf = m->total_len <= sizeof(u->small) ? u->small :
			 malloc(m->total_len);
		if (!u->buf)
			goto err_uncharge;
	}
	return u;

err_uncharge:
	usb4_unexp_uncharge(&ep->unexp_budget, u->peer_id, cost);
err_put:
	usb4_unexp_put(&ep->unexp_pool, u);
	return NULL;
}

static int queue_unexpected(struct usb4_core_ep *ep, int q,
			    const struct usb4_msg_in *m)
{
	struct usb4_unexp *u = unexp_new(ep, m);

	if (!u)
		return -FI_EAGAIN;
	if (u->buf)
		memcpy(u->buf, m->payload, m->total_len);
	usb4_list_init(&u->ctrl.link);
	u->src = m->src;
	u->tag = m->tag;
	u->data = m->data;
	u->msg_id = m->msg_id;
	u->total_len = m->total_len;
	u->wflags = m->wflags;
	u->type = m->type;
	u->riov_count = m->riov_count;
	if (m->riov_count)	/* an eager message has no riov at all */
		memcpy(u->riov, m->riov, m->riov_count * sizeof(*m->riov));
	usb4_list_insert_tail(&ep->unexp[q], &u->link);
	ep->stats.unexpected++;
	return 0;
}

/* Whether m fills rx with nothing beyond the receive itself: an eager
 * message that asks no delivery ACK, for a receive that is not a
 * multi-receive buffer.  Most arrivals are so. */
static bool plain(const struct usb4_rx_entry *rx, const struct usb4_msg_in *m)
{
	return m->type == USB4_FRAME_EAGER && !(m->wflags & USB4_WF_ACK_REQ) &&
	       !(rx->flags & FI_MULTI_RECV);
}

/* The successful entry of a plain arrival, written straight into the
 * CQ's ring (the receive reserved it). */
static inline __attribute__((always_inline)) void
complete_plain(struct usb4_core_ep *ep, const struct usb4_rx_entry *rx,
	       const struct usb4_msg_in *m, int q, size_t n)
{
	struct usb4_cqe *e;

	if (ep->rx_cntr)
		usb4_count(ep->rx_cntr, true);
	if (!ep->rx_cq)
		return;
	if (!(rx->flags & FI_COMPLETION)) {
		usb4_cq_queue_unreserve(ep->rx_cq);
		return;
	}
	e = usb4_cq_queue_slot(ep->rx_cq);
	e->op_context = rx->context;
	e->flags = recv_cqe_flags(q, m->wflags);
	e->len = n;
	e->buf = rx->iov_count ? rx->iov[0].iov_base : NULL;
	e->data = m->wflags & USB4_WF_CQ_DATA ? m->data : 0;
	e->tag = m->tag;
	e->src = usb4_report_src(ep, m->src);
	usb4_cq_queue_commit(ep->rx_cq);
}

/* deliver() for a plain arrival: the same copy and the same entry
 * (FI_ETRUNC when the message is longer than the receive), without its
 * resources, answer and multi-receive accounting.  Nothing is sent back,
 * so the receive's entry is free at once.  It and complete_plain are
 * inlined in both callers: the arrival's would otherwise pay calls per
 * message. */
static inline __attribute__((always_inline)) void
deliver_plain(struct usb4_core_ep *ep, struct usb4_rx_entry *rx,
	      const struct usb4_msg_in *m, int q)
{
	size_t n = m->total_len < rx->len ? m->total_len : rx->len;

	if (rx->iov_count == 1)
		usb4_copy_small(rx->iov[0].iov_base, m->payload, n);
	else
		usb4_iov_copy_in(rx->iov, rx->iov_count, 0, m->payload, n);
	if (n < m->total_len) {
		struct usb4_cqe e = {
			.op_context = rx->context,
			.flags = recv_cqe_flags(q, m->wflags),
			.len = n,
			.buf = rx->iov_count ? rx->iov[0].iov_base : NULL,
			.data = m->wflags & USB4_WF_CQ_DATA ? m->data : 0,
			.tag = m->tag,
			.src = usb4_report_src(ep, m->src),
		};
		usb4_match_finish(ep, &e, m->total_len, 0, false);
	} else {
		complete_plain(ep, rx, m, q, n);
	}
	usb4_list_remove(&rx->link);
	rx_recycle(ep, &rx->ctrl);
}

int usb4_match_arrival(struct usb4_core_ep *ep, const struct usb4_msg_in *m)
{
	int q = m->wflags & USB4_WF_TAGGED ? USB4_Q_TAGGED : USB4_Q_MSG;
	struct usb4_rx_entry *rx = find_posted(ep, q, m->src, m->tag);
	struct deliver_res res;

	if (!rx)
		return queue_unexpected(ep, q, m);
	if (plain(rx, m)) {
		deliver_plain(ep, rx, m, q);
		return 0;
	}
	if (res_get(ep, rx, m, &res))
		return -FI_EAGAIN;
	deliver(ep, rx, m, &res);
	return 0;
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
		.riov_count = u->riov_count,
		.riov = u->riov,
		.early_intact = !u->early_lost,
	};
}

bool usb4_match_early_lost(struct usb4_core_ep *ep, fi_addr_t src,
			   uint64_t msg_id)
{
	struct usb4_list *it;

	for (int q = 0; q < 2; q++) {
		usb4_list_foreach(&ep->unexp[q], it) {
			struct usb4_unexp *u = usb4_container_of(it,
					struct usb4_unexp, link);
			if (u->type == USB4_FRAME_RTS && u->msg_id == msg_id &&
			    usb4_same_peer(ep, u->src, src)) {
				u->early_lost = true;
				return true;
			}
		}
	}
	return false;
}

static void unexp_release(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl)
{
	usb4_unexp_put(&ep->unexp_pool,
		       usb4_container_of(ctrl, struct usb4_unexp, ctrl));
}

/* The message is consumed: its bytes and its charge go now (held frames
 * of its sender may come in), its entry once its answer (if any) left. */
static void unexp_free(struct usb4_core_ep *ep, struct usb4_unexp *u)
{
	usb4_list_remove(&u->link);
	usb4_unexp_uncharge(&ep->unexp_budget, u->peer_id, u->cost);
	if (u->buf != u->small)
		free(u->buf);
	u->buf = NULL;
	usb4_ctrl_then(ep, &u->ctrl, unexp_release);
}

/* A posted receive ends unfilled with err (cancel, a dead peer). */
static void rx_fail(struct usb4_core_ep *ep, int q, struct usb4_rx_entry *rx,
		    int err)
{
	struct usb4_cqe e = {
		.op_context = rx->context,
		.flags = recv_cqe_flags(q, 0) | (rx->flags & FI_MULTI_RECV),
		.buf = rx->iov_count ? rx->iov[0].iov_base : NULL,
		.tag = rx->tag,
		.src = FI_ADDR_NOTAVAIL,
	};

	rx_release(ep, rx);
	usb4_core_complete_err(ep, false, &e, err, 0);
}

/* Whether a receive only the peer named by src can fill. */
static bool directed(const struct usb4_core_ep *ep, fi_addr_t src)
{
	return (ep->caps & FI_DIRECTED_RECV) && src != FI_ADDR_UNSPEC;
}

/* Receives directed at a dead peer will never be filled: they end with
 * its error (unexpected eager messages it sent before stay: a receive
 * may still take them). */
static void fail_directed(struct usb4_core_ep *ep, fi_addr_t peer, int err)
{
	struct usb4_list *it, *tmp;

	for (int q = 0; q < 2; q++) {
		usb4_list_foreach_safe(&ep->posted[q], it, tmp) {
			struct usb4_rx_entry *rx = usb4_container_of(it,
					struct usb4_rx_entry, link);
			if (directed(ep, rx->src) &&
			    usb4_same_peer(ep, rx->src, peer))
				rx_fail(ep, q, rx, err);
		}
	}
}

void usb4_match_peer_down(struct usb4_core_ep *ep, fi_addr_t peer, int err)
{
	struct usb4_list *it, *tmp;

	fail_directed(ep, peer, err);
	for (int q = 0; q < 2; q++) {
		usb4_list_foreach_safe(&ep->unexp[q], it, tmp) {
			struct usb4_unexp *u = usb4_container_of(it,
					struct usb4_unexp, link);
			if (u->type == USB4_FRAME_RTS &&
			    usb4_same_peer(ep, u->src, peer))
				unexp_free(ep, u);
		}
	}
}

/* Whether a receive naming want may take u: by identity, so a message
 * from a hidden entry matches the entry the application inserted since,
 * even once the hidden entry is gone. */
static bool unexp_from(struct usb4_core_ep *ep, fi_addr_t want,
		       const struct usb4_unexp *u)
{
	const struct usb4_peer *peer;

	if (!(ep->caps & FI_DIRECTED_RECV) || want == FI_ADDR_UNSPEC ||
	    want == u->src)
		return true;
	peer = usb4_peer_of(ep, want);
	return peer && peer->id == u->peer_id && peer->kind == u->peer_kind;
}

static struct usb4_unexp *find_unexp(struct usb4_core_ep *ep, int q,
				     const struct usb4_recv_args *a)
{
	struct usb4_list *it;

	usb4_list_foreach(&ep->unexp[q], it) {
		struct usb4_unexp *u =
			usb4_container_of(it, struct usb4_unexp, link);
		if (!u->claimed && unexp_from(ep, a->src, u) &&
		    tag_matches(q, a->tag, a->ignore, u->tag))
			return u;
	}
	return NULL;
}

static inline __attribute__((always_inline)) void
fill_rx(struct usb4_rx_entry *rx, const struct usb4_recv_args *a)
{
	rx->context = a->context;
	rx->flags = a->flags;
	if (a->iov_count == 1) {	/* the common case: no calls */
		rx->iov[0] = a->iov[0];
		rx->len = a->iov[0].iov_len;
	} else {
		memcpy(rx->iov, a->iov, a->iov_count * sizeof(*a->iov));
		rx->len = usb4_iov_len(a->iov, a->iov_count);
	}
	rx->iov_count = a->iov_count;
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
	int q = queue_of(a->flags);
	struct deliver_res res;
	struct usb4_msg_in m;

	if (!rx)
		return -FI_EAGAIN;
	fill_rx(rx, a);
	unexp_view(u, &m);
	usb4_list_insert_tail(&ep->posted[q], &rx->link);
	if (plain(rx, &m)) {
		deliver_plain(ep, rx, &m, q);
		unexp_free(ep, u);
		return 0;
	}
	if (res_get(ep, rx, &m, &res)) {
		usb4_list_remove(&rx->link);
		usb4_cq_queue_unreserve(ep->rx_cq);
		rx_recycle(ep, &rx->ctrl);
		return -FI_EAGAIN;
	}
	deliver(ep, rx, &m, &res);
	unexp_free(ep, u);
	return 0;
}

/* A new multi-receive buffer first takes what already waits for it (as
 * far as memory allows: the rest waits for a later post). */
static void drain_into_multi(struct usb4_core_ep *ep, struct usb4_rx_entry *rx,
			     const struct usb4_recv_args *a)
{
	struct usb4_unexp *u;
	struct deliver_res res;
	struct usb4_msg_in m;

	while ((u = find_unexp(ep, USB4_Q_MSG, a))) {
		unexp_view(u, &m);
		if (res_get(ep, rx, &m, &res))
			return;
		bool retired = deliver(ep, rx, &m, &res);
		unexp_free(ep, u);
		if (retired)
			return;
	}
}

/* Why the peer src names is gone, or 0. */
static int peer_down(struct usb4_core_ep *ep, fi_addr_t src)
{
	const struct usb4_peer *peer = usb4_peer_of(ep, src);

	return peer ? peer->down : 0;
}

static ssize_t post(struct usb4_core_ep *ep, const struct usb4_recv_args *a)
{
	int q = queue_of(a->flags);
	struct usb4_rx_entry *rx;
	struct usb4_unexp *u;

	/* An empty queue is the common case: nothing to walk. */
	if (!(a->flags & FI_MULTI_RECV) && !usb4_list_empty(&ep->unexp[q])) {
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
	else if (directed(ep, a->src) && peer_down(ep, a->src))
		rx_fail(ep, q, rx, peer_down(ep, a->src));	/* never filled */
	return 0;
}

/* ---- FI_PEEK, FI_CLAIM, FI_DISCARD ---- */

/* Peeks report without consuming: no counter moves.  The caller reserved
 * the entry. */
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
	answer_sender(ep, &u->ctrl, &m, 0, 0);
	unexp_free(ep, u);
}

static ssize_t peek(struct usb4_core_ep *ep, const struct usb4_recv_args *a)
{
	struct usb4_unexp *u = find_unexp(ep, queue_of(a->flags), a);

	if (usb4_cq_queue_reserve(ep->rx_cq))
		return -FI_EAGAIN;
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
	if (usb4_cq_queue_reserve(ep->rx_cq))
		return -FI_EAGAIN;
	peek_report(ep, a, u, 0);
	discard(ep, u);
	return 0;
}

static ssize_t recv_general(struct usb4_core_ep *ep,
			    const struct usb4_recv_args *a)
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

/* The receive mtl ofi posts per message (one buffer, none of FI_PEEK,
 * FI_CLAIM or FI_MULTI_RECV, nothing waiting unexpected in its queue, an
 * idle entry at hand, a live peer if one is named) goes on the posted list
 * here, as post() would put it: no call, each check made once.  A receive
 * naming a peer is refused here (-FI_EINVAL) when the AV has no such
 * entry, whichever way it then goes. */
ssize_t usb4_core_recv(struct usb4_core_ep *ep, const struct usb4_recv_args *a)
{
	int q = queue_of(a->flags);
	const struct usb4_peer *peer = NULL;
	struct usb4_rx_entry *rx;

	if (directed(ep, a->src) && !(peer = usb4_core_av_peer(ep->av, a->src)))
		return -FI_EINVAL;
	if (a->iov_count != 1 ||
	    (a->flags & (FI_PEEK | FI_CLAIM | FI_MULTI_RECV)) ||
	    !usb4_list_empty(&ep->unexp[q]) || usb4_list_empty(&ep->rx_free) ||
	    (peer && peer->down))
		return recv_general(ep, a);
	if (!rx_admit(ep))
		return -FI_EAGAIN;
	rx = rx_take_idle(ep);
	fill_rx(rx, a);
	usb4_list_insert_tail(&ep->posted[q], &rx->link);
	return 0;
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
			rx_fail(ep, q, rx, -FI_ECANCELED);
			return 0;
		}
	}
	return -FI_ENOENT;
}
