/*
 * Sends.
 *
 *   eager       payload <= the peer's eager limit: header + payload in one
 *               frame; the send completes at once unless FI_DELIVERY_COMPLETE
 *               asks for an ACK.
 *   rendezvous  larger: an RTS frame announces the message.  A receiver
 *               whose link reads the sender's memory (USB4_LINK_CAP_BULK_READ)
 *               copies it straight into the posted buffer; any other answers
 *               CTS and the sender streams DATA frames (usb4_stream.c).  FIN
 *               completes the send.
 */
#include <string.h>

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
	struct usb4_tx_op *op = usb4_op_start(ep, a->dest, a->context, len,
			send_cqe_flags(a->flags) | (a->flags & FI_COMPLETION),
			ep->tx_cntr, msg_id);

	if (op)
		op->tag = a->tag;
	return op;
}

/* Posts header + payload; an eager send without delivery ack completes
 * now, so its completion is reserved first. */
static ssize_t send_eager(struct usb4_core_ep *ep,
			  const struct usb4_send_args *a,
			  const struct usb4_route *r, size_t len)
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
	} else if (usb4_cq_queue_reserve(ep->tx_cq)) {
		return -FI_EAGAIN;
	}
	usb4_wire_build(&hdr, &f);
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	if (a->iov_count == 1)
		iov[1] = a->iov[0];	/* the common case: no memcpy call */
	else
		memcpy(&iov[1], a->iov, a->iov_count * sizeof(*iov));
	ret = usb4_route_post(r, iov, a->iov_count + 1);
	if (ret) {
		if (op)
			usb4_op_abort(ep, op);
		else
			usb4_cq_queue_unreserve(ep->tx_cq);
		return ret;
	}
	ep->stats.eager_sent++;
	if (!op)
		complete_send_now(ep, a, len);
	return 0;
}

/* The RTS names the sender's buffer for a receiver that reads it itself;
 * others get no addresses (they ask for the bytes with CTS). */
static ssize_t send_rndv(struct usb4_core_ep *ep,
			 const struct usb4_send_args *a,
			 const struct usb4_route *r, size_t len)
{
	struct {
		struct usb4_wire_hdr hdr;
		struct usb4_wire_rts rts;
		struct usb4_wire_iov iov[USB4_IOV_LIMIT];
	} msg;
	bool bulk = usb4_route_caps(r) & USB4_LINK_CAP_BULK_READ;
	size_t n = bulk ? a->iov_count : 0;
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
	op->wants_cts = true;
	f.payload_len = sizeof(msg.rts) + n * sizeof(msg.iov[0]);
	usb4_wire_build(&msg.hdr, &f);
	msg.rts.iov_count = htole32(n);
	msg.rts.reserved = 0;
	for (size_t i = 0; i < n; i++) {
		msg.iov[i].addr = htole64((uintptr_t) a->iov[i].iov_base);
		msg.iov[i].len = htole64(a->iov[i].iov_len);
	}
	iov.iov_base = &msg;
	iov.iov_len = sizeof(msg.hdr) + f.payload_len;
	ret = usb4_route_post(r, &iov, 1);
	if (ret) {
		usb4_op_abort(ep, op);
		return ret;
	}
	ep->stats.rndv_sent++;
	usb4_stream_early_start(ep, op, len);
	return 0;
}

/* The api checked the iovec (count and buffers) before it took the lock. */
ssize_t usb4_core_send(struct usb4_core_ep *ep, const struct usb4_send_args *a)
{
	const struct usb4_route *r;
	size_t len;
	ssize_t ret = usb4_send_fused(ep, a);
	int state;

	if (ret != USB4_SEND_DECLINED)
		return ret;
	ret = usb4_route_send(ep, a->dest, &r);
	if (ret)
		return ret;
	len = usb4_iov_len(a->iov, a->iov_count);
	if (len > USB4_MAX_MSG_SIZE)
		return -FI_EMSGSIZE;
	ret = len <= r->eager_max ? send_eager(ep, a, r, len) :
				    send_rndv(ep, a, r, len);
	/* No room at a peer that no longer answers: not backpressure. */
	if (ret == -FI_EAGAIN && (state = usb4_peer_state(ep, a->dest)))
		ret = state;
	return ret;
}

void usb4_proto_remote_write_cqe(struct usb4_core_ep *ep, fi_addr_t src,
				 uint64_t data, uint64_t len)
{
	struct usb4_cqe e = {
		.flags = FI_RMA | FI_REMOTE_WRITE | FI_REMOTE_CQ_DATA,
		.len = len,
		.data = data,
		.src = usb4_report_src(ep, src),
	};

	/* The write itself is counted where it landed. */
	usb4_core_report(ep->rx_cq, NULL, &e, true);
}
