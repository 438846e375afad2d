/*
 * Protocols on the send side and frame dispatch on the receive side.
 *
 *   eager       payload <= the peer's eager limit: header + payload in one
 *               frame; the send completes at once unless FI_DELIVERY_COMPLETE
 *               asks for an ACK.
 *   rendezvous  larger: an RTS frame announces the message.  A same-host
 *               receiver copies it with one cross-memory-attach read straight
 *               into the posted buffer (also when the RTS waited as
 *               unexpected); a receiver on another host answers CTS and the
 *               sender streams DATA frames (usb4_stream.c).  FIN completes
 *               the send.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usb4_proto.h"

static uint64_t send_cqe_flags(uint64_t flags)
{
	return FI_SEND | (flags & FI_TAGGED ? FI_TAGGED : FI_MSG);
}

static void complete_send_now(struct usb4_core_ep *ep,
			      const struct usb4_send_args *a, size_t len)
{
	struct usb4_cqe e = {
		.op_context = a->context,
		.flags = send_cqe_flags(a->flags),
		.len = len,
		.tag = a->tag,
		.src = FI_ADDR_NOTAVAIL,
	};

	/* An inject writes no CQ entry but still counts on the send counter
	 * (man fi_cntr: FI_SEND counts every completed send). */
	usb4_core_complete(ep, true, &e, (a->flags & FI_COMPLETION) &&
			   !(a->flags & FI_INJECT));
}

static void fill_hdr(struct usb4_core_ep *ep, const struct usb4_send_args *a,
		     struct usb4_frame *f, uint8_t type, size_t len)
{
	memset(f, 0, sizeof(*f));
	f->type = type;
	f->flags = (a->flags & FI_TAGGED ? USB4_WF_TAGGED : 0) |
		   (a->flags & FI_REMOTE_CQ_DATA ? USB4_WF_CQ_DATA : 0);
	f->src_id = ep->id;
	f->tag = a->tag;
	f->data = a->flags & FI_REMOTE_CQ_DATA ? a->data : 0;
	f->total_len = len;
}

static struct usb4_tx_op *send_op_start(struct usb4_core_ep *ep,
					const struct usb4_send_args *a,
					size_t len, uint64_t *msg_id)
{
	struct usb4_tx_op *op = usb4_proto_op_start(ep, a->dest, a->context,
			len, send_cqe_flags(a->flags) | (a->flags & FI_COMPLETION),
			ep->tx_cntr, msg_id);

	if (op)
		op->tag = a->tag;
	return op;
}

static ssize_t send_eager(struct usb4_core_ep *ep,
			  const struct usb4_send_args *a, size_t len)
{
	struct iovec iov[USB4_IOV_LIMIT + 1];
	struct usb4_wire_hdr hdr;
	struct usb4_frame f;
	struct usb4_tx_op *op = NULL;
	int ret;

	fill_hdr(ep, a, &f, USB4_FRAME_EAGER, len);
	f.payload_len = len;
	if ((a->flags & FI_DELIVERY_COMPLETE) && !(a->flags & FI_INJECT)) {
		op = send_op_start(ep, a, len, &f.msg_id);
		if (!op)
			return -FI_EAGAIN;
		f.flags |= USB4_WF_ACK_REQ;
	}
	usb4_wire_build(&hdr, &f);
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	memcpy(&iov[1], a->iov, a->iov_count * sizeof(*iov));
	ret = usb4_transport_post(ep, a->dest, iov, a->iov_count + 1);
	if (ret) {
		if (op)
			usb4_proto_op_free(ep, op);
		return ret;
	}
	ep->stats.eager_sent++;
	if (!op)
		complete_send_now(ep, a, len);
	return 0;
}

/* The RTS names the sender's buffer: a same-host receiver reads it directly;
 * one on another host asks for it with CTS. */
static ssize_t send_rndv(struct usb4_core_ep *ep,
			 const struct usb4_send_args *a, size_t len)
{
	struct {
		struct usb4_wire_hdr hdr;
		struct usb4_wire_rts rts;
		struct usb4_wire_iov iov[USB4_IOV_LIMIT];
	} msg;
	struct iovec iov;
	struct usb4_frame f;
	struct usb4_tx_op *op;
	int ret;

	if (a->flags & FI_INJECT)
		return -FI_EMSGSIZE;
	fill_hdr(ep, a, &f, USB4_FRAME_RTS, len);
	op = send_op_start(ep, a, len, &f.msg_id);
	if (!op)
		return -FI_EAGAIN;
	memcpy(op->stream.iov, a->iov, a->iov_count * sizeof(*a->iov));
	op->stream.iov_count = a->iov_count;
	f.payload_len = sizeof(msg.rts) + a->iov_count * sizeof(msg.iov[0]);
	usb4_wire_build(&msg.hdr, &f);
	msg.rts.pid = htole32(getpid());
	msg.rts.iov_count = htole32(a->iov_count);
	for (size_t i = 0; i < a->iov_count; i++) {
		msg.iov[i].addr = htole64((uintptr_t) a->iov[i].iov_base);
		msg.iov[i].len = htole64(a->iov[i].iov_len);
	}
	iov.iov_base = &msg;
	iov.iov_len = sizeof(msg.hdr) + f.payload_len;
	ret = usb4_transport_post(ep, a->dest, &iov, 1);
	if (ret) {
		usb4_proto_op_free(ep, op);
		return ret;
	}
	ep->stats.rndv_sent++;
	return 0;
}

/* A same-host peer is alive while its process is. */
static bool shm_peer_alive(struct usb4_core_ep *ep, fi_addr_t fi_addr)
{
	struct usb4_peer *peer = usb4_core_av_peer(ep->av, fi_addr);

	if (!peer || peer->kind != USB4_PEER_SHM)
		return peer != NULL;	/* udp peers: rel decides */
	return kill(usb4_shm_peer_pid(peer->shm), 0) == 0 || errno != ESRCH;
}

ssize_t usb4_core_send(struct usb4_core_ep *ep, const struct usb4_send_args *a)
{
	struct usb4_peer *peer = usb4_core_av_peer(ep->av, a->dest);
	size_t len = usb4_iov_len(a->iov, a->iov_count);
	ssize_t ret;

	if (!peer)
		return -FI_EINVAL;
	if (a->iov_count > USB4_IOV_LIMIT)
		return -FI_EINVAL;
	if (len > USB4_MAX_MSG_SIZE)
		return -FI_EMSGSIZE;
	ret = len <= usb4_transport_eager_max(ep, peer) ?
	      send_eager(ep, a, len) : send_rndv(ep, a, len);
	/* A full inbox nobody drains any more is a dead peer, not backpressure. */
	if (ret == -FI_EAGAIN && !shm_peer_alive(ep, a->dest))
		ret = -FI_EHOSTUNREACH;
	return ret;
}

/*
 * Ops waiting for a FIN or ACK from a same-host peer whose process is gone
 * would wait forever: fail them with FI_EHOSTUNREACH.
 */
void usb4_proto_reap_dead_peers(struct usb4_core_ep *ep)
{
	usb4_proto_ops_fail(ep, FI_ADDR_UNSPEC, FI_EHOSTUNREACH, shm_peer_alive);
}

/* rel gave up on a udp peer: everything to or from it ends in error. */
void usb4_proto_peer_dead(struct usb4_core_ep *ep, fi_addr_t peer)
{
	USB4_WARN(FI_LOG_EP_DATA, "peer %llu stopped answering: failing its "
		  "operations\n", (unsigned long long) peer);
	usb4_proto_drop_ctrl(ep, peer);
	usb4_stream_peer_dead(ep, peer);
	usb4_proto_ops_fail(ep, peer, FI_EHOSTUNREACH, NULL);
}

/* ---- receive-side dispatch ---- */

static void handle_done(struct usb4_core_ep *ep, const struct usb4_frame *f,
			fi_addr_t src)
{
	struct usb4_tx_op *op = usb4_proto_op(ep, f->msg_id);
	int64_t status = (int64_t) f->data;

	if (!op || (src != FI_ADDR_NOTAVAIL && !usb4_same_peer(ep, op->dest, src))) {
		ep->stats.dropped_unknown_op++;
		return;
	}
	usb4_proto_op_done(ep, op, status < 0 ? (int) -status : 0);
}

static void rts_iovs(const struct usb4_frame *f, struct usb4_msg_in *m,
		     struct iovec *riov)
{
	struct usb4_wire_rts rts;
	struct usb4_wire_iov wiov;
	const char *p = f->payload;

	memcpy(&rts, p, sizeof(rts));
	m->pid = le32toh(rts.pid);
	m->riov_count = le32toh(rts.iov_count);
	for (size_t i = 0; i < m->riov_count; i++) {
		memcpy(&wiov, p + sizeof(rts) + i * sizeof(wiov), sizeof(wiov));
		riov[i].iov_base = (void *) (uintptr_t) le64toh(wiov.addr);
		riov[i].iov_len = le64toh(wiov.len);
	}
	m->riov = riov;
}

static void handle_message(struct usb4_core_ep *ep, const struct usb4_frame *f,
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
	};

	if (m.src == FI_ADDR_NOTAVAIL)
		ep->stats.unknown_src++;
	if (f->type == USB4_FRAME_RTS)
		rts_iovs(f, &m, riov);
	usb4_match_arrival(ep, &m);
}

/* An RMA write with remote CQ data landed in our memory. */
void usb4_proto_remote_write_cqe(struct usb4_core_ep *ep, fi_addr_t src,
				 uint64_t data, uint64_t len)
{
	struct usb4_cqe e = {
		.flags = FI_RMA | FI_REMOTE_WRITE | FI_REMOTE_CQ_DATA,
		.len = len,
		.data = data,
		.src = src,
	};

	/* The write itself is counted where it landed (usb4_shm_*_count_rma). */
	usb4_core_report(ep->rx_cq, NULL, &e, true);
}

void usb4_proto_send_write_data(struct usb4_core_ep *ep, fi_addr_t dest,
				uint64_t data, uint64_t len)
{
	usb4_proto_send_ctrl(ep, dest, USB4_FRAME_WRITE_DATA, 0, (int64_t) data,
			     len);
}

/* Frames only peers in our AV may send: a reply needs the way back. */
static bool needs_known_src(uint8_t type)
{
	return type != USB4_FRAME_EAGER && type != USB4_FRAME_RTS &&
	       type != USB4_FRAME_WRITE_DATA;
}

void usb4_proto_handle(struct usb4_core_ep *ep, const struct usb4_frame *f)
{
	fi_addr_t src = usb4_core_av_reverse(ep->av, f->src_id);

	if (src == FI_ADDR_NOTAVAIL && needs_known_src(f->type)) {
		ep->stats.unknown_src++;
		return;
	}
	switch (f->type) {
	case USB4_FRAME_WRITE_DATA:
		usb4_proto_remote_write_cqe(ep, src, f->data, f->total_len);
		break;
	case USB4_FRAME_EAGER:
	case USB4_FRAME_RTS:
		handle_message(ep, f, src);
		break;
	case USB4_FRAME_FIN:
	case USB4_FRAME_ACK:
		handle_done(ep, f, src);
		break;
	case USB4_FRAME_CTS:
		usb4_stream_handle_cts(ep, f, src);
		break;
	case USB4_FRAME_DATA:
		usb4_stream_handle_data(ep, f, src);
		break;
	case USB4_FRAME_WRITE_REQ:
		usb4_rma_udp_handle_write(ep, f, src);
		break;
	case USB4_FRAME_READ_REQ:
		usb4_rma_udp_handle_read(ep, f, src);
		break;
	case USB4_FRAME_ATOMIC_REQ:
		usb4_rma_udp_handle_atomic(ep, f, src);
		break;
	case USB4_FRAME_ATOMIC_RESP:
		usb4_rma_udp_handle_atomic_resp(ep, f, src);
		break;
	default:
		ep->stats.dropped[USB4_WIRE_TYPE_BAD]++;
	}
}
