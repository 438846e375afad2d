/*
 * Transport: posts core frames to a peer over whichever link reaches it, and
 * takes frames in from every link.  Same-host peers get the shm inbox; peers
 * on other hosts get udp datagrams under rel, one rel state per (endpoint,
 * peer) pair, created on first use.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_proto.h"
#include "usb4_rel.h"

#define USB4_UDP_POLL_BUDGET	32

/* What rel's callbacks need to reach one peer. */
struct rel_ctx {
	struct usb4_core_ep *ep;
	struct usb4_peer *peer;
	fi_addr_t fi_addr;
};

static int rel_xmit(void *arg, const struct iovec *iov, int count)
{
	struct rel_ctx *ctx = arg;

	return usb4_udp_send(ctx->ep->udp, &ctx->peer->udp, iov, count);
}

static void on_frame(struct usb4_core_ep *ep, const void *buf, size_t len)
{
	struct usb4_frame frame;
	enum usb4_wire_verdict v = usb4_wire_parse(buf, len, &frame);

	if (v != USB4_WIRE_OK) {
		ep->stats.dropped[v]++;
		return;
	}
	usb4_proto_handle(ep, &frame);
}

/* A frame in pieces (its datagram was received partly into a transfer's
 * buffer): header in the first, payload in the second is parsed where it
 * is; anything else is put together first. */
static void on_frame_pieces(struct usb4_core_ep *ep, const struct iovec *piece,
			    int count)
{
	struct usb4_frame frame;
	enum usb4_wire_verdict v;
	size_t len = 0;

	if (count == 2 && piece[0].iov_len == sizeof(struct usb4_wire_hdr)) {
		v = usb4_wire_parse_split(piece[0].iov_base, piece[1].iov_base,
					  piece[1].iov_len, &frame);
		if (v != USB4_WIRE_OK)
			ep->stats.dropped[v]++;
		else
			usb4_proto_handle(ep, &frame);
		return;
	}
	for (int i = 0; i < count; i++) {
		if (piece[i].iov_len > ep->udp_payload_max - len) {
			ep->stats.dropped[USB4_WIRE_LEN_BAD]++;
			return;
		}
		memcpy(ep->udp_linear + len, piece[i].iov_base,
		       piece[i].iov_len);
		len += piece[i].iov_len;
	}
	on_frame(ep, ep->udp_linear, len);
}

static void rel_deliver(void *arg, const struct iovec *payload, int count)
{
	struct rel_ctx *ctx = arg;

	if (count == 1)
		on_frame(ctx->ep, payload[0].iov_base, payload[0].iov_len);
	else
		on_frame_pieces(ctx->ep, payload, count);
}

static struct usb4_rel_io rel_io(struct rel_ctx *ctx)
{
	return (struct usb4_rel_io) {
		.xmit = rel_xmit, .xmit_ctx = ctx,
		.deliver = rel_deliver, .deliver_ctx = ctx,
	};
}

static struct usb4_rel_cfg rel_cfg(const struct usb4_core_ep *ep)
{
	return (struct usb4_rel_cfg) {
		.window = usb4_params.rel_window,
		.payload_max = ep->udp_payload_max,
		.rto_initial_ns = 50ull * 1000 * 1000,	/* oversubscribed hosts
							 * stall for 10s of ms */
		.rto_max_ns = 1000ull * 1000 * 1000,
		.ack_delay_ns = 200ull * 1000,
		.dead_ns = (uint64_t) usb4_params.peer_timeout_ms * 1000 * 1000,
		.isn = (uint32_t) usb4_random64(),
	};
}

/* The session with peer id, created when create is set. */
static struct usb4_session *session_of(struct usb4_core_ep *ep, uint64_t id,
				       bool create)
{
	struct usb4_rel_cfg cfg;
	struct usb4_session *s;

	for (size_t i = 0; i < ep->session_count; i++)
		if (ep->sessions[i].id == id)
			return &ep->sessions[i];
	if (!create || !id)
		return NULL;
	if (ep->session_count == ep->session_cap) {
		size_t cap = ep->session_cap ? ep->session_cap * 2 : 8;
		s = realloc(ep->sessions, cap * sizeof(*s));
		if (!s)
			return NULL;
		ep->sessions = s;
		ep->session_cap = cap;
	}
	s = &ep->sessions[ep->session_count];
	*s = (struct usb4_session) { .id = id };
	cfg = rel_cfg(ep);	/* draws a random ISN: only for new sessions */
	if (usb4_rel_peer_open(&s->rel, &cfg, ep->id, id, usb4_now_ns()))
		return NULL;
	ep->session_count++;
	return s;
}

size_t usb4_transport_eager_max(const struct usb4_core_ep *ep,
				const struct usb4_peer *peer)
{
	size_t udp_max;

	if (peer->kind == USB4_PEER_SHM)
		return ep->eager_max;
	udp_max = ep->udp_payload_max - sizeof(struct usb4_wire_hdr);
	return udp_max < usb4_params.udp_eager_size ? udp_max :
						      usb4_params.udp_eager_size;
}

size_t usb4_transport_chunk_max(const struct usb4_core_ep *ep)
{
	return ep->udp_payload_max - sizeof(struct usb4_wire_hdr);
}

int usb4_transport_post(struct usb4_core_ep *ep, fi_addr_t dest,
			const struct iovec *iov, int count)
{
	return usb4_transport_post_ref(ep, dest, iov, count, 0, 0);
}

int usb4_transport_post_ref(struct usb4_core_ep *ep, fi_addr_t dest,
			    const struct iovec *iov, int count, int nref,
			    uint64_t owner)
{
	struct usb4_peer *peer = usb4_core_av_peer(ep->av, dest);
	struct rel_ctx ctx = { .ep = ep, .peer = peer, .fi_addr = dest };
	struct usb4_rel_io io = rel_io(&ctx);
	struct usb4_session *session;

	if (!peer)
		return -FI_EINVAL;
	if (peer->kind == USB4_PEER_SHM)
		return usb4_shm_send(peer->shm, iov, count);
	if (!ep->udp)
		return -FI_EHOSTUNREACH;
	/* A frame sent from inside rel's delivery would re-enter rel. */
	if (ep->rel_busy)
		return -FI_EAGAIN;
	session = session_of(ep, peer->addr.ep_id, true);
	if (!session)
		return -FI_ENOMEM;
	return usb4_rel_send_ref(session->rel, usb4_now_ns(), iov, count, nref,
				 owner, &io);
}

/* The rel state towards dest, if dest is a udp peer we have talked to. */
static struct usb4_session *existing_session(struct usb4_core_ep *ep,
					     fi_addr_t dest)
{
	struct usb4_peer *peer = usb4_core_av_peer(ep->av, dest);

	if (!peer || peer->kind != USB4_PEER_UDP)
		return NULL;
	return session_of(ep, peer->addr.ep_id, false);
}

void usb4_transport_unref(struct usb4_core_ep *ep, fi_addr_t dest,
			  uint64_t owner)
{
	struct usb4_session *session = existing_session(ep, dest);

	if (session)
		ep->stats.udp_ref_copies += usb4_rel_copy_refs(session->rel,
							       owner);
}

/* The marks are rel sequence numbers; peers without rel state have
 * nothing in flight. */
uint32_t usb4_transport_mark(struct usb4_core_ep *ep, fi_addr_t dest)
{
	struct usb4_session *session = existing_session(ep, dest);

	return session ? usb4_rel_next_seq(session->rel) : 0;
}

bool usb4_transport_settled(struct usb4_core_ep *ep, fi_addr_t dest,
			    uint32_t mark)
{
	struct usb4_session *session = existing_session(ep, dest);

	return !session || usb4_rel_acked_before(session->rel, mark);
}

/* ---- receiving from udp ---- */

static bool same_udp_addr(const struct usb4_udp_addr *a,
			  const struct usb4_udp_addr *b)
{
	size_t len = a->family == 4 ? 4 : 16;

	return a->family == b->family && a->port == b->port &&
	       !memcmp(a->ip, b->ip, len);
}

/* Which peer sent a datagram: the AV's entry, or a hidden one made from
 * the datagram when the application has not inserted the peer yet. */
static fi_addr_t datagram_peer(struct usb4_core_ep *ep, uint64_t src_id,
			       const struct usb4_udp_addr *from)
{
	fi_addr_t fi_addr = usb4_core_av_reverse(ep->av, src_id);

	if (fi_addr == FI_ADDR_NOTAVAIL &&
	    usb4_core_av_insert_hidden(ep->av, src_id, from, &fi_addr))
		return FI_ADDR_NOTAVAIL;
	return fi_addr;
}

static void on_datagram(void *arg, const struct usb4_udp_addr *from,
			const struct iovec *dgram, int count)
{
	struct usb4_core_ep *ep = arg;
	uint64_t src_id, dst_id;
	struct rel_ctx ctx = { .ep = ep };
	struct usb4_rel_io io = rel_io(&ctx);
	struct usb4_session *session;

	if (usb4_rel_datagram_ids_v(dgram, count, &src_id, &dst_id) ||
	    dst_id != ep->id || !src_id) {
		ep->stats.udp_foreign++;
		return;
	}
	ctx.fi_addr = datagram_peer(ep, src_id, from);
	ctx.peer = usb4_core_av_peer(ep->av, ctx.fi_addr);
	/* Only from the address the peer published (or first wrote from). */
	if (!ctx.peer || ctx.peer->kind != USB4_PEER_UDP ||
	    !same_udp_addr(from, &ctx.peer->udp) ||
	    !(session = session_of(ep, src_id, true))) {
		ep->stats.udp_foreign++;
		return;
	}
	ep->rel_busy = true;
	if (usb4_rel_input_v(session->rel, usb4_now_ns(), dgram, count, &io))
		ep->stats.udp_rejected++;
	ep->rel_busy = false;
}

/* Retransmissions, delayed acks and dead peers. */
static void run_timers(struct usb4_core_ep *ep, uint64_t now)
{
	for (size_t i = 0; i < ep->session_count; i++) {
		struct usb4_session *s = &ep->sessions[i];
		struct rel_ctx ctx = { .ep = ep };

		if (usb4_rel_deadline(s->rel) > now)
			continue;
		ctx.fi_addr = usb4_core_av_reverse(ep->av, s->id);
		ctx.peer = usb4_core_av_peer(ep->av, ctx.fi_addr);
		if (!ctx.peer)
			continue;
		struct usb4_rel_io io = rel_io(&ctx);
		usb4_rel_timer(s->rel, now, &io);
		if (usb4_rel_dead(s->rel) && !s->dead_reported) {
			s->dead_reported = true;
			usb4_proto_peer_dead(ep, ctx.fi_addr);
		}
	}
}

void usb4_transport_clear_way(struct usb4_core_ep *ep, const struct iovec *iov,
			      size_t count, uint64_t off, size_t len)
{
	struct iovec parts[USB4_IOV_LIMIT];
	int n;

	if (!ep->udp)
		return;
	n = usb4_iov_slice(iov, count, off, len, parts, USB4_IOV_LIMIT);
	for (int i = 0; i < n; i++)
		usb4_udp_evacuate(ep->udp, parts[i].iov_base, parts[i].iov_len);
}

/* DATA frames of the transfer under way are received straight into its
 * buffer: the payload lands after rel's and the core's headers. */
static int place(void *arg, struct usb4_udp_hole *holes, int max)
{
	return usb4_xfer_predict(arg, sizeof(struct usb4_wire_rel) +
				 sizeof(struct usb4_wire_hdr), holes, max);
}

int usb4_transport_progress_udp(struct usb4_core_ep *ep)
{
	int n;

	if (!ep->udp)
		return 0;
	n = usb4_udp_poll(ep->udp, place, on_datagram, ep,
			  USB4_UDP_POLL_BUDGET);
	run_timers(ep, usb4_now_ns());
	return n;
}

/* The earliest rel deadline, in us from now (-1: none). */
static int64_t next_timer_us(struct usb4_core_ep *ep)
{
	uint64_t now = usb4_now_ns(), first = UINT64_MAX;

	for (size_t i = 0; i < ep->session_count; i++)
		if (usb4_rel_deadline(ep->sessions[i].rel) < first)
			first = usb4_rel_deadline(ep->sessions[i].rel);
	if (first == UINT64_MAX)
		return -1;
	return first <= now ? 0 : (int64_t) ((first - now + 999) / 1000);
}

/*
 * Sleeps until a frame may be waiting, timeout_us passes (-1: no limit), or
 * a rel timer is due.  Without udp the shm doorbell's futex is enough; with
 * udp one poll watches the socket and the inbox's eventfd together.
 */
void usb4_transport_wait_us(struct usb4_core_ep *ep, int64_t timeout_us)
{
	struct pollfd pfd[2];
	struct timespec ts, *tsp = NULL;
	int64_t timer;

	if (!ep->udp) {
		usb4_shm_link_wait(ep->shm, timeout_us < 0 ? -1 :
				   (int) ((timeout_us + 999) / 1000));
		return;
	}
	timer = next_timer_us(ep);
	if (timer >= 0 && (timeout_us < 0 || timer < timeout_us))
		timeout_us = timer;
	if (timeout_us >= 0) {
		ts.tv_sec = timeout_us / 1000000;
		ts.tv_nsec = (long) (timeout_us % 1000000) * 1000;
		tsp = &ts;
	}
	if (!usb4_shm_link_sleep_begin(ep->shm))
		return;
	pfd[0] = (struct pollfd) { .fd = usb4_udp_link_fd(ep->udp),
				   .events = POLLIN };
	pfd[1] = (struct pollfd) { .fd = usb4_shm_link_efd(ep->shm),
				   .events = POLLIN };
	ppoll(pfd, pfd[1].fd >= 0 ? 2 : 1, tsp, NULL);
	usb4_shm_link_sleep_end(ep->shm);
}

/* What the udp link and rel saw, logged at close when anything went wrong. */
static void log_udp_stats(const struct usb4_core_ep *ep)
{
	const struct usb4_udp_link_stats *l = usb4_udp_link_stats(ep->udp);
	struct usb4_rel_stats sum = { 0 };

	for (size_t i = 0; i < ep->session_count; i++) {
		const struct usb4_rel_stats *r = usb4_rel_stats(ep->sessions[i].rel);

		sum.sent += r->sent;
		sum.retransmitted += r->retransmitted;
		sum.delivered += r->delivered;
		sum.acks_sent += r->acks_sent;
		for (int d = 0; d < USB4_REL_DROP_MAX; d++)
			sum.dropped[d] += r->dropped[d];
	}
	USB4_INFO(FI_LOG_EP_DATA,
		  "udp: sent %llu received %llu busy %llu; faults dropped %llu "
		  "duplicated %llu reordered %llu corrupted %llu; rel sent %llu "
		  "retransmitted %llu delivered %llu acks %llu dropped: header "
		  "%llu dst %llu src %llu duplicate %llu window %llu "
		  "handshake %llu; foreign datagrams %llu; frames copied at "
		  "early release %llu; holes evacuated %llu\n",
		  (unsigned long long) l->sent, (unsigned long long) l->received,
		  (unsigned long long) l->send_again,
		  (unsigned long long) l->faults_dropped,
		  (unsigned long long) l->faults_duplicated,
		  (unsigned long long) l->faults_reordered,
		  (unsigned long long) l->faults_corrupted,
		  (unsigned long long) sum.sent,
		  (unsigned long long) sum.retransmitted,
		  (unsigned long long) sum.delivered,
		  (unsigned long long) sum.acks_sent,
		  (unsigned long long) sum.dropped[USB4_REL_DROP_BAD_HEADER],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_WRONG_DST],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_WRONG_SRC],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_DUPLICATE],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_OUT_OF_WINDOW],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_NO_HANDSHAKE],
		  (unsigned long long) ep->stats.udp_foreign,
		  (unsigned long long) ep->stats.udp_ref_copies,
		  (unsigned long long) l->evacuated);
}

/* Frames to live peers that rel still has to get acknowledged. */
static bool udp_unacked(const struct usb4_core_ep *ep)
{
	for (size_t i = 0; i < ep->session_count; i++)
		if (!usb4_rel_dead(ep->sessions[i].rel) &&
		    usb4_rel_unacked(ep->sessions[i].rel))
			return true;
	return false;
}

/*
 * A send over udp completes once rel has the frame, before the peer has it;
 * closing right away would lose it.  Like a socket's linger, keep progressing
 * until every live peer acknowledged everything (or it dies: bounded by the
 * peer timeout).
 */
static void linger(struct usb4_core_ep *ep)
{
	/* rel declares a silent peer dead after the peer timeout; the bound
	 * also covers answers queued for a same-host peer that died. */
	uint64_t deadline = usb4_now_ns() +
			    (uint64_t) (usb4_params.peer_timeout_ms + 1000) * 1000000;

	while ((udp_unacked(ep) || !usb4_list_empty(&ep->ctrl_pending)) &&
	       usb4_now_ns() < deadline) {
		usb4_transport_progress_udp(ep);
		usb4_proto_flush_ctrl(ep);
		usb4_transport_wait_us(ep, 1000);
	}
}

void usb4_transport_close(struct usb4_core_ep *ep)
{
	if (ep->udp) {
		linger(ep);
		log_udp_stats(ep);
	}
	for (size_t i = 0; i < ep->session_count; i++)
		usb4_rel_peer_close(ep->sessions[i].rel);
	free(ep->sessions);
	ep->sessions = NULL;
	ep->session_count = ep->session_cap = 0;
	usb4_udp_link_close(ep->udp);
	ep->udp = NULL;
	free(ep->udp_linear);
	ep->udp_linear = NULL;
}
