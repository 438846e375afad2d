/*
 * Frames in: every link of an endpoint hands its frames here.  A frame is
 * validated (usb4_wire_parse), its sender is the peer the link says it came
 * from (a frame claiming another id is dropped), and only frames the link's
 * capabilities allow reach a handler.  A handler that lacks memory refuses
 * the frame (-FI_EAGAIN) before it changes anything; the link offers it
 * again later.
 */
#include <string.h>

#include "usb4_proto.h"

/* Frames that only a link with one-sided access may carry: the notice of a
 * write that landed without us. */
static bool allowed(uint32_t caps, uint8_t type)
{
	return type != USB4_FRAME_WRITE_DATA || (caps & USB4_LINK_CAP_ONE_SIDED);
}

int usb4_peer_status(uint64_t wire_status)
{
	int64_t s = (int64_t) wire_status;

	switch (s) {
	case 0:
	case -FI_ECANCELED:
	case -FI_EACCES:
	case -FI_EINVAL:
	case -FI_EOPNOTSUPP:
	case -FI_EMSGSIZE:
	case -FI_ENOMEM:
	case -FI_EHOSTUNREACH:
	case -FI_ECONNREFUSED:
	case -FI_ECONNRESET:
	case -FI_EIO:
		return (int) s;
	default:
		return -FI_EIO;	/* nothing a peer may make us report */
	}
}

static int handle_done(struct usb4_core_ep *ep, const struct usb4_frame *f,
		       fi_addr_t src)
{
	struct usb4_tx_op *op = usb4_op_find(ep, f->msg_id, src);

	if (!op) {
		ep->stats.dropped_unknown_op++;
		return 0;
	}
	usb4_op_done(ep, op, usb4_peer_status(f->data));
	return 0;
}

/* Where a rendezvous sender's bytes wait.  Only a link that reads a
 * sender's memory may use them: over any other the receiver asks for the
 * bytes (CTS), and addresses a peer put in the frame are not kept. */
static void rts_iovs(struct usb4_core_ep *ep, uint32_t caps,
		     const struct usb4_frame *f, struct usb4_msg_in *m,
		     struct iovec *riov)
{
	struct usb4_wire_rts rts;
	struct usb4_wire_iov wiov;
	const char *p = f->payload;

	memcpy(&rts, p, sizeof(rts));
	m->riov_count = le32toh(rts.iov_count);
	m->riov = riov;
	if (m->riov_count && !(caps & USB4_LINK_CAP_BULK_READ)) {
		ep->stats.rts_iovs_ignored++;
		m->riov_count = 0;
	}
	for (size_t i = 0; i < m->riov_count; i++) {
		memcpy(&wiov, p + sizeof(rts) + i * sizeof(wiov), sizeof(wiov));
		riov[i].iov_base = (void *) (uintptr_t) le64toh(wiov.addr);
		riov[i].iov_len = le64toh(wiov.len);
	}
}

/* Inline in on_frame for an eager frame, the one that comes per small
 * message: no call through the table. */
static inline __attribute__((always_inline)) int
handle_message(struct usb4_core_ep *ep, const struct usb4_frame *f,
	       fi_addr_t src)
{
	struct iovec riov[USB4_WIRE_RTS_MAX_IOV];
	struct usb4_msg_in m = {
		.type = f->type,
		.wflags = f->flags,
		.src = src,
		.tag = f->tag,
		.data = f->data,
		.msg_id = f->msg_id,
		.total_len = f->total_len,
		.payload = f->payload,
		.early_intact = true,
	};

	if (f->type == USB4_FRAME_RTS)
		rts_iovs(ep, usb4_peer_caps(ep, src), f, &m, riov);
	return usb4_match_arrival(ep, &m);
}

/* A one-sided write with remote CQ data landed in our memory. */
static int handle_write_data(struct usb4_core_ep *ep,
			     const struct usb4_frame *f, fi_addr_t src)
{
	if (usb4_cq_queue_reserve(ep->rx_cq))
		return -FI_EAGAIN;
	usb4_proto_remote_write_cqe(ep, src, f->data, f->total_len);
	return 0;
}

typedef int (*handler_fn)(struct usb4_core_ep *ep, const struct usb4_frame *f,
			  fi_addr_t src);

/* Who handles each frame type (usb4_wire_parse has checked the type). */
static const handler_fn handlers[USB4_FRAME_TYPE_MAX] = {
	[USB4_FRAME_EAGER] = handle_message,
	[USB4_FRAME_RTS] = handle_message,
	[USB4_FRAME_FIN] = handle_done,
	[USB4_FRAME_ACK] = handle_done,
	[USB4_FRAME_WRITE_DATA] = handle_write_data,
	[USB4_FRAME_CTS] = usb4_stream_handle_cts,
	[USB4_FRAME_DATA] = usb4_stream_handle_data,
	[USB4_FRAME_WRITE_REQ] = usb4_rma_handle_write,
	[USB4_FRAME_READ_REQ] = usb4_rma_handle_read,
	[USB4_FRAME_ATOMIC_REQ] = usb4_rma_handle_atomic,
	[USB4_FRAME_ATOMIC_RESP] = usb4_rma_handle_atomic_resp,
	[USB4_FRAME_READ_INLINE] = usb4_rma_handle_read_inline,
};

static enum usb4_wire_verdict parse(const struct iovec *frame, int count,
				    struct usb4_frame *f)
{
	if (count == 1)
		return usb4_wire_parse(frame[0].iov_base, frame[0].iov_len, f);
	if (count == 2 && frame[0].iov_len == sizeof(struct usb4_wire_hdr))
		return usb4_wire_parse_split(frame[0].iov_base,
					     frame[1].iov_base,
					     frame[1].iov_len, f);
	return USB4_WIRE_LEN_BAD;
}

/* The sender's fi_addr (see usb4_peer_resolve), remembered for the next
 * frame while neither table changes: an insert may give a hidden sender
 * its AV entry, and a hidden entry goes when its peer does. */
static fi_addr_t sender_of(struct usb4_ep_link *el, uint64_t from, int *err)
{
	uint64_t gen = el->ep->av ? el->ep->av->t.gen : 0;
	uint64_t hgen = el->ep->hidden.gen;
	fi_addr_t src;

	*err = 0;
	if (from && from == el->last_id && gen == el->last_av_gen &&
	    hgen == el->last_hidden_gen)
		return el->last_src;
	src = usb4_peer_resolve(el->ep, el->kind, from, err);
	if (!*err && src != FI_ADDR_NOTAVAIL) {
		el->last_id = from;
		el->last_src = src;
		el->last_av_gen = gen;
		el->last_hidden_gen = el->ep->hidden.gen;
	}
	return src;
}

static int on_frame(void *ctx, struct usb4_link *link, uint64_t from,
		    const struct iovec *frame, int count)
{
	struct usb4_ep_link *el = ctx;
	struct usb4_core_ep *ep = el->ep;
	struct usb4_frame f;
	enum usb4_wire_verdict v = parse(frame, count, &f);
	fi_addr_t src;
	int ret;

	if (v != USB4_WIRE_OK) {
		ep->stats.dropped[v]++;
		return 0;
	}
	if (f.src_id != from) {
		ep->stats.dropped_src_mismatch++;
		return 0;
	}
	if (!allowed(link->ops->caps, f.type)) {
		ep->stats.dropped_not_for_link++;
		return 0;
	}
	src = sender_of(el, from, &ret);
	if (!ret && src == FI_ADDR_NOTAVAIL) {
		ep->stats.unknown_src++;
		return 0;
	}
	if (!ret)
		ret = f.type == USB4_FRAME_EAGER ? handle_message(ep, &f, src) :
		      handlers[f.type](ep, &f, src);
	if (ret == -FI_EAGAIN)
		ep->stats.not_ready++;
	else if (!ret)
		el->frames_taken++;
	return ret;
}

/* The link is about to forget the peer (and may free the dest it gave
 * for a hidden entry): everything of it ends, and its hidden entry, one
 * it may have beside an inserted one, is freed before we return. */
static void on_peer_down(void *ctx, struct usb4_link *link, uint64_t peer,
			 int err)
{
	struct usb4_ep_link *el = ctx;
	fi_addr_t a = usb4_peer_find(el->ep, el->kind, peer);
	fi_addr_t h = usb4_hidden_of(el->ep, el->kind, peer);

	if (a != FI_ADDR_NOTAVAIL)
		usb4_proto_peer_down(el->ep, a, err);
	if (h != FI_ADDR_NOTAVAIL && h != a)
		usb4_proto_peer_down(el->ep, h, err);
}

/* A peer the application inserted is reached only the way its address
 * says: another host claiming its id gets no session. */
static bool may_open(void *ctx, struct usb4_link *link, uint64_t id,
		     const struct usb4_link_dest *dest)
{
	struct usb4_ep_link *el = ctx;
	fi_addr_t a = usb4_core_av_reverse(el->ep->av, id);
	struct usb4_peer *peer = usb4_core_av_peer(el->ep->av, a);

	if (!peer)
		return true;
	return peer->kind == el->kind &&
	       (!link->ops->dest_eq || link->ops->dest_eq(peer->dest, dest));
}

/* Who is bound here, for a link asked (RESOLVE). */
static void self_addr(void *ctx, struct usb4_wire_addr *addr)
{
	struct usb4_ep_link *el = ctx;

	usb4_core_ep_addr(el->ep, addr);
}

struct usb4_link_sink usb4_dispatch_sink(struct usb4_ep_link *el)
{
	return (struct usb4_link_sink) {
		.ctx = el, .frame = on_frame, .peer_down = on_peer_down,
		.may_open = may_open, .self_addr = self_addr,
	};
}

/* Why a peer went down, for the log: a peer that closed its endpoint
 * (-FI_ECONNRESET, the close handshake) is the normal end of a job. */
static void log_peer_down(struct usb4_core_ep *ep, fi_addr_t peer, int err)
{
	unsigned long long who = usb4_report_src(ep, peer);

	if (err == -FI_ECONNRESET)
		USB4_INFO(FI_LOG_EP_DATA, "peer %llu closed its endpoint: "
			  "failing its operations\n", who);
	else
		USB4_WARN(FI_LOG_EP_DATA, "peer %llu %s: failing its "
			  "operations\n", who, err == -FI_ECONNREFUSED ?
			  "refused us" : "stopped answering");
}

void usb4_proto_peer_down(struct usb4_core_ep *ep, fi_addr_t peer, int err)
{
	struct usb4_peer *p = usb4_peer_of(ep, peer);

	log_peer_down(ep, peer, err);
	if (p)
		p->down = err;	/* later operations naming it fail at once */
	usb4_ctrl_drop(ep, peer);
	usb4_stream_peer_down(ep, peer, err);
	usb4_ops_fail(ep, peer, err);
	usb4_match_peer_down(ep, peer, err);
	/* What still names it (eager messages waiting for a receive) names
	 * nobody from now on: their answers are dropped. */
	usb4_hidden_free(ep, peer);
}

/* The first peer that pending work waits on whose link says it is down,
 * or FI_ADDR_NOTAVAIL. */
static fi_addr_t first_down(struct usb4_core_ep *ep, int *state)
{
	struct usb4_list *it;

	for (size_t i = 0; i < ep->ops_cap; i++)
		if (ep->ops[i].busy &&
		    (*state = usb4_peer_state(ep, ep->ops[i].dest)))
			return ep->ops[i].dest;
	usb4_list_foreach(&ep->ctrl_pending, it) {
		fi_addr_t a = usb4_container_of(it, struct usb4_ctrl, link)->dest;

		if ((*state = usb4_peer_state(ep, a)))
			return a;
	}
	usb4_list_foreach(&ep->xfers, it) {
		fi_addr_t a = usb4_container_of(it, struct usb4_xfer, link)->src;

		if ((*state = usb4_peer_state(ep, a)))
			return a;
	}
	usb4_list_foreach(&ep->streams, it) {
		fi_addr_t a = usb4_container_of(it, struct usb4_stream,
						link)->dest;

		if ((*state = usb4_peer_state(ep, a)))
			return a;
	}
	return FI_ADDR_NOTAVAIL;
}

/* Links that learn of a dead peer only when asked (a same-host process
 * that is gone) are asked about every peer pending work waits on. */
void usb4_proto_reap_dead_peers(struct usb4_core_ep *ep)
{
	fi_addr_t a;
	int state;

	while ((a = first_down(ep, &state)) != FI_ADDR_NOTAVAIL)
		usb4_proto_peer_down(ep, a, state);
}
