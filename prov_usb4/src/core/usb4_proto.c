/*
 * Protocols on the send side and frame dispatch on the receive side.
 *
 *   eager       payload <= eager_max: header + payload in one frame; the send
 *               completes at once unless FI_DELIVERY_COMPLETE asks for an ACK.
 *   rendezvous  larger: an RTS frame names the sender's buffer; the receiver
 *               copies it with one cross-memory-attach read straight into the
 *               posted buffer (also when the RTS waited as unexpected) and
 *               answers FIN, which completes the send.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usb4_proto.h"

/* ---- send-side operation ids: index in the low half, generation above ---- */

static struct usb4_tx_op *op_alloc(struct usb4_core_ep *ep, uint64_t *msg_id)
{
	struct usb4_tx_op *op;
	uint32_t idx;

	if (!ep->ops_free_count)
		return NULL;
	idx = ep->ops_free[--ep->ops_free_count];
	op = &ep->ops[idx];
	op->gen++;
	op->busy = true;
	*msg_id = ((uint64_t) op->gen << 32) | idx;
	return op;
}

static void op_free(struct usb4_core_ep *ep, struct usb4_tx_op *op)
{
	op->busy = false;
	ep->ops_free[ep->ops_free_count++] = op - ep->ops;
}

/* The op a FIN or ACK names, or NULL when the id is stale or forged. */
static struct usb4_tx_op *op_lookup(struct usb4_core_ep *ep, uint64_t msg_id)
{
	uint32_t idx = (uint32_t) msg_id;
	struct usb4_tx_op *op;

	if (idx >= ep->ops_cap)
		return NULL;
	op = &ep->ops[idx];
	if (!op->busy || op->gen != (uint32_t) (msg_id >> 32))
		return NULL;
	return op;
}

static size_t iov_total(const struct iovec *iov, size_t count)
{
	size_t len = 0;

	for (size_t i = 0; i < count; i++)
		len += iov[i].iov_len;
	return len;
}

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
	 * (man fi_cntr: FI_SEND counts every completed send); it used to
	 * return before usb4_core_complete and so was never counted. */
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

static struct usb4_tx_op *op_start(struct usb4_core_ep *ep,
				   const struct usb4_send_args *a, size_t len,
				   uint64_t *msg_id)
{
	struct usb4_tx_op *op = op_alloc(ep, msg_id);

	if (!op)
		return NULL;
	op->context = a->context;
	op->flags = send_cqe_flags(a->flags) | (a->flags & FI_COMPLETION);
	op->len = len;
	op->tag = a->tag;
	op->dest = a->dest;
	return op;
}

static ssize_t send_eager(struct usb4_core_ep *ep, struct usb4_peer *peer,
			  const struct usb4_send_args *a, size_t len)
{
	struct iovec iov[USB4_IOV_LIMIT + 1];
	struct usb4_wire_hdr hdr;
	struct usb4_frame f;
	struct usb4_tx_op *op = NULL;
	bool want_ack = (a->flags & FI_DELIVERY_COMPLETE) &&
			!(a->flags & FI_INJECT);
	int ret;

	fill_hdr(ep, a, &f, USB4_FRAME_EAGER, len);
	f.payload_len = len;
	if (want_ack) {
		op = op_start(ep, a, len, &f.msg_id);
		if (!op)
			return -FI_EAGAIN;
		f.flags |= USB4_WF_ACK_REQ;
	}
	usb4_wire_build(&hdr, &f);
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	memcpy(&iov[1], a->iov, a->iov_count * sizeof(*iov));
	ret = usb4_shm_send(peer->shm, iov, a->iov_count + 1);
	if (ret) {
		if (op)
			op_free(ep, op);
		return ret;
	}
	ep->stats.eager_sent++;
	if (!op)
		complete_send_now(ep, a, len);
	return 0;
}

static ssize_t send_rndv(struct usb4_core_ep *ep, struct usb4_peer *peer,
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
	op = op_start(ep, a, len, &f.msg_id);
	if (!op)
		return -FI_EAGAIN;
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
	ret = usb4_shm_send(peer->shm, &iov, 1);
	if (ret) {
		op_free(ep, op);
		return ret;
	}
	ep->stats.rndv_sent++;
	return 0;
}

/* A same-host peer is alive while its process is. */
static bool peer_alive(const struct usb4_peer *peer)
{
	return kill(usb4_shm_peer_pid(peer->shm), 0) == 0 || errno != ESRCH;
}

ssize_t usb4_core_send(struct usb4_core_ep *ep, const struct usb4_send_args *a)
{
	struct usb4_peer *peer = usb4_core_av_peer(ep->av, a->dest);
	size_t len = iov_total(a->iov, a->iov_count);
	ssize_t ret;

	if (!peer)
		return -FI_EINVAL;
	if (a->iov_count > USB4_IOV_LIMIT)
		return -FI_EINVAL;
	if (len > USB4_MAX_MSG_SIZE)
		return -FI_EMSGSIZE;
	ret = len <= ep->eager_max ? send_eager(ep, peer, a, len) :
				     send_rndv(ep, peer, a, len);
	/* A full inbox nobody drains any more is a dead peer, not backpressure. */
	if (ret == -FI_EAGAIN && !peer_alive(peer))
		ret = -FI_EHOSTUNREACH;
	return ret;
}

/*
 * Sends waiting for a FIN or ACK from a peer whose process is gone would wait
 * forever: fail them with FI_EHOSTUNREACH.
 */
void usb4_proto_reap_dead_peers(struct usb4_core_ep *ep)
{
	for (size_t i = 0; i < ep->ops_cap; i++) {
		struct usb4_tx_op *op = &ep->ops[i];
		struct usb4_peer *peer;

		if (!op->busy)
			continue;
		peer = usb4_core_av_peer(ep->av, op->dest);
		if (peer && peer_alive(peer))
			continue;
		struct usb4_cqe e = {
			.op_context = op->context,
			.flags = op->flags & ~FI_COMPLETION,
			.len = op->len,
			.tag = op->tag,
			.src = FI_ADDR_NOTAVAIL,
		};
		usb4_core_complete_err(ep, true, &e, FI_EHOSTUNREACH, 0);
		op_free(ep, op);
	}
}

/* ---- control frames (FIN, ACK): queued while the peer's inbox is full ---- */

static int ctrl_post(struct usb4_core_ep *ep, fi_addr_t dest,
		     const struct usb4_wire_hdr *hdr)
{
	struct usb4_peer *peer = usb4_core_av_peer(ep->av, dest);
	struct iovec iov = { .iov_base = (void *) hdr, .iov_len = sizeof(*hdr) };

	if (!peer) {
		USB4_WARN(FI_LOG_EP_DATA, "cannot answer a sender that is not "
			  "in the address vector\n");
		return 0;	/* nothing to retry */
	}
	return usb4_shm_send(peer->shm, &iov, 1);
}

void usb4_proto_send_ctrl(struct usb4_core_ep *ep, fi_addr_t dest,
			  uint8_t type, uint64_t msg_id, int64_t status,
			  uint64_t len)
{
	struct usb4_frame f = {
		.type = type,
		.src_id = ep->id,
		.data = (uint64_t) status,
		.msg_id = msg_id,
		.total_len = len,
	};
	struct usb4_ctrl *ctrl;
	struct usb4_wire_hdr hdr;

	usb4_wire_build(&hdr, &f);
	if (usb4_list_empty(&ep->ctrl_pending) &&
	    ctrl_post(ep, dest, &hdr) != -FI_EAGAIN)
		return;
	ctrl = malloc(sizeof(*ctrl));
	if (!ctrl) {
		USB4_WARN(FI_LOG_EP_DATA, "out of memory: control frame lost\n");
		return;
	}
	ctrl->dest = dest;
	ctrl->hdr = hdr;
	usb4_list_insert_tail(&ep->ctrl_pending, &ctrl->link);
}

void usb4_proto_flush_ctrl(struct usb4_core_ep *ep)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->ctrl_pending, it, tmp) {
		struct usb4_ctrl *ctrl = usb4_container_of(it, struct usb4_ctrl,
							   link);
		if (ctrl_post(ep, ctrl->dest, &ctrl->hdr) == -FI_EAGAIN)
			return;
		usb4_list_remove(it);
		free(ctrl);
	}
}

/* ---- receive-side dispatch ---- */

static void handle_done(struct usb4_core_ep *ep, const struct usb4_frame *f)
{
	struct usb4_tx_op *op = op_lookup(ep, f->msg_id);
	int64_t status = (int64_t) f->data;
	struct usb4_cqe e;

	if (!op) {
		ep->stats.dropped_unknown_op++;
		return;
	}
	e = (struct usb4_cqe) {
		.op_context = op->context,
		.flags = op->flags & ~FI_COMPLETION,
		.len = op->len,
		.tag = op->tag,
		.src = FI_ADDR_NOTAVAIL,
	};
	if (status < 0)
		usb4_core_complete_err(ep, true, &e, (int) -status, 0);
	else
		usb4_core_complete(ep, true, &e, op->flags & FI_COMPLETION);
	op_free(ep, op);
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

static void handle_message(struct usb4_core_ep *ep, const struct usb4_frame *f)
{
	struct iovec riov[USB4_WIRE_RTS_MAX_IOV];
	struct usb4_msg_in m = {
		.type = f->type,
		.wflags = f->flags,
		.src = usb4_core_av_reverse(ep->av, f->src_id),
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
static void handle_write_data(struct usb4_core_ep *ep,
			      const struct usb4_frame *f)
{
	struct usb4_cqe e = {
		.flags = FI_RMA | FI_REMOTE_WRITE | FI_REMOTE_CQ_DATA,
		.len = f->total_len,
		.data = f->data,
		.src = usb4_core_av_reverse(ep->av, f->src_id),
	};

	/* The write itself was counted by the initiator in our inbox. */
	usb4_core_report(ep->rx_cq, NULL, &e, true);
}

void usb4_proto_send_write_data(struct usb4_core_ep *ep, fi_addr_t dest,
				uint64_t data, uint64_t len)
{
	usb4_proto_send_ctrl(ep, dest, USB4_FRAME_WRITE_DATA, 0, (int64_t) data,
			     len);
}

void usb4_proto_handle(struct usb4_core_ep *ep, const struct usb4_frame *f)
{
	switch (f->type) {
	case USB4_FRAME_WRITE_DATA:
		handle_write_data(ep, f);
		break;
	case USB4_FRAME_EAGER:
	case USB4_FRAME_RTS:
		handle_message(ep, f);
		break;
	case USB4_FRAME_FIN:
	case USB4_FRAME_ACK:
		handle_done(ep, f);
		break;
	default:
		ep->stats.dropped[USB4_WIRE_TYPE_BAD]++;
	}
}
