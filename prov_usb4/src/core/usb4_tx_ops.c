/*
 * Operations waiting for their peer (rendezvous and RMA FINs, delivery ACKs,
 * atomic responses).  Their ids travel on the wire: index in the low half,
 * generation above, so a stale or forged id names nothing.  An op reserves
 * its completion when it starts, so finishing it never needs memory.
 */
#include <stdlib.h>

#include "usb4_proto.h"

struct usb4_tx_op *usb4_op_start(struct usb4_core_ep *ep, fi_addr_t dest,
				 void *context, size_t len, uint64_t flags,
				 struct usb4_counter *cntr, uint64_t *msg_id)
{
	struct usb4_tx_op *op;
	uint32_t idx;

	if (!ep->ops_free_count || usb4_cq_queue_reserve(ep->tx_cq))
		return NULL;
	idx = ep->ops_free[--ep->ops_free_count];
	op = &ep->ops[idx];
	op->gen++;
	op->busy = true;
	op->context = context;
	op->flags = flags;
	op->len = len;
	op->tag = 0;
	op->dest = dest;
	op->cntr = cntr;
	op->res_count = 0;
	op->bounce = NULL;
	op->wants_cts = false;
	op->stream = (struct usb4_stream) { .dest = dest };
	usb4_list_init(&op->stream.link);
	*msg_id = op->stream.msg_id = ((uint64_t) op->gen << 32) | idx;
	return op;
}

static void op_free(struct usb4_core_ep *ep, struct usb4_tx_op *op)
{
	usb4_stream_stop(&op->stream);
	usb4_stream_release(ep, &op->stream);
	free(op->bounce);
	op->bounce = NULL;
	op->busy = false;
	ep->ops_free[ep->ops_free_count++] = op - ep->ops;
}

void usb4_op_abort(struct usb4_core_ep *ep, struct usb4_tx_op *op)
{
	usb4_cq_queue_unreserve(ep->tx_cq);
	op_free(ep, op);
}

struct usb4_tx_op *usb4_op_find(struct usb4_core_ep *ep, uint64_t msg_id,
				fi_addr_t src)
{
	uint32_t idx = (uint32_t) msg_id;
	struct usb4_tx_op *op;

	if (idx >= ep->ops_cap)
		return NULL;
	op = &ep->ops[idx];
	if (!op->busy || op->gen != (uint32_t) (msg_id >> 32) ||
	    !usb4_same_peer(ep, op->dest, src))
		return NULL;
	return op;
}

void usb4_op_done(struct usb4_core_ep *ep, struct usb4_tx_op *op, int err)
{
	struct usb4_cqe e = {
		.op_context = op->context,
		.flags = op->flags & ~(FI_COMPLETION | FI_INJECT),
		.len = op->len,
		.tag = op->tag,
		.src = FI_ADDR_NOTAVAIL,
	};

	if (op->flags & FI_READ)
		usb4_xfer_drop_read(ep, op->dest, op->stream.msg_id);
	if (err)
		usb4_core_report_err(ep->tx_cq, op->cntr, &e, err, 0);
	else
		usb4_core_report(ep->tx_cq, op->cntr, &e,
				 (op->flags & FI_COMPLETION) &&
				 !(op->flags & FI_INJECT));
	op_free(ep, op);
}

void usb4_ops_fail(struct usb4_core_ep *ep, fi_addr_t dest, int err)
{
	for (size_t i = 0; i < ep->ops_cap; i++) {
		struct usb4_tx_op *op = &ep->ops[i];

		if (op->busy && usb4_same_peer(ep, op->dest, dest))
			usb4_op_done(ep, op, err);
	}
}
