/*
 * RMA and atomics as frames, for peers whose link gives no one-sided
 * access.  The target takes part: it checks key, rights and bounds in its
 * own registration table for every request (overflow-safe), pins the
 * regions while bytes move, and executes atomics under the same lock
 * one-sided initiators take, and serves only peers that proved who they
 * are (access_check).  The initiator's op completes on the target's FIN
 * (RMA) or ATOMIC_RESP (atomics).
 */
#include <stdlib.h>
#include <string.h>

#include "usb4_atomic.h"
#include "usb4_proto.h"

void usb4_rma_count_remote(struct usb4_core_ep *ep, bool write)
{
	usb4_count(write ? ep->rem_wr_cntr : ep->rem_rd_cntr, true);
}

/* ---- initiator ---- */

static void fill_segs(struct usb4_wire_rma_seg *seg, const struct fi_rma_iov *r,
		      size_t count)
{
	for (size_t i = 0; i < count; i++) {
		seg[i].addr = htole64(r[i].addr);
		seg[i].len = htole64(r[i].len);
		seg[i].key = htole64(r[i].key);
	}
}

/* Keeps an injected write's bytes: the caller may reuse them at once. */
static int bounce(struct usb4_tx_op *op, const struct iovec *iov, size_t count,
		  size_t len)
{
	char *p = malloc(len ? len : 1);

	if (!p)
		return -FI_EAGAIN;
	op->bounce = p;
	for (size_t i = 0; i < count; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	op->stream.iov[0].iov_base = op->bounce;
	op->stream.iov[0].iov_len = len;
	op->stream.iov_count = 1;
	return 0;
}

/* inl: the write's bytes follow the segments (usb4_rma_inline.c). */
static int rma_request(struct usb4_core_ep *ep, const struct usb4_rma_args *a,
		       size_t len, uint64_t msg_id, bool inl)
{
	struct {
		struct usb4_wire_hdr hdr;
		struct usb4_wire_rma_seg seg[USB4_WIRE_RMA_MAX_SEG];
	} req;
	bool write = a->flags & FI_WRITE;
	struct usb4_frame f = {
		.type = write ? USB4_FRAME_WRITE_REQ : USB4_FRAME_READ_REQ,
		.flags = a->flags & FI_REMOTE_CQ_DATA ? USB4_WF_CQ_DATA : 0,
		.payload_len = a->rma_count * sizeof(req.seg[0]),
		.src_id = ep->id,
		.data = a->data,
		.msg_id = msg_id,
		.total_len = len,
		.tag = inl ? len : 0,
	};
	struct iovec iov[1 + USB4_IOV_LIMIT];

	iov[0].iov_base = &req;
	iov[0].iov_len = sizeof(req.hdr) + f.payload_len;
	if (inl) {
		memcpy(&iov[1], a->iov, a->iov_count * sizeof(*a->iov));
		f.payload_len += len;
	}
	usb4_wire_build(&req.hdr, &f);
	fill_segs(req.seg, a->rma_iov, a->rma_count);
	return usb4_post(ep, a->dest, iov, 1 + (inl ? (int) a->iov_count : 0));
}

/* The initiator of a read receives the response into its buffer. */
static int read_target(struct usb4_core_ep *ep, const struct usb4_rma_args *a,
		       size_t len, uint64_t msg_id)
{
	struct usb4_xfer *x = usb4_xfer_new(ep, USB4_XFER_RMA_READ, a->dest,
					    msg_id);

	if (!x)
		return -FI_EAGAIN;
	memcpy(x->iov, a->iov, a->iov_count * sizeof(*a->iov));
	x->iov_count = a->iov_count;
	usb4_xfer_arm(ep, x, len);
	return 0;
}

ssize_t usb4_rma_frames(struct usb4_core_ep *ep, const struct usb4_rma_args *a,
			size_t len)
{
	bool write = a->flags & FI_WRITE;
	bool inl = write && usb4_rma_inline_ok(ep, a->dest, len);
	uint64_t msg_id;
	struct usb4_tx_op *op;
	int ret;

	if (a->rma_count > USB4_WIRE_RMA_MAX_SEG)
		return -FI_EINVAL;
	op = usb4_op_start(ep, a->dest, a->context, len,
			   FI_RMA | (write ? FI_WRITE : FI_READ) |
			   (a->flags & (FI_COMPLETION | FI_INJECT)),
			   write ? ep->wr_cntr : ep->rd_cntr, &msg_id);
	if (!op)
		return -FI_EAGAIN;
	if (inl)	/* the bytes go in the request, copied as it is posted */
		ret = 0;
	else if (write && (a->flags & FI_INJECT))
		ret = bounce(op, a->iov, a->iov_count, len);
	else
		ret = write ? 0 : read_target(ep, a, len, msg_id);
	if (!ret && write && !inl && !op->bounce) {
		memcpy(op->stream.iov, a->iov, a->iov_count * sizeof(*a->iov));
		op->stream.iov_count = a->iov_count;
	}
	op->wants_cts = write && !inl;
	if (!ret)
		ret = rma_request(ep, a, len, msg_id, inl);
	if (ret) {
		if (!write)
			usb4_xfer_drop_read(ep, a->dest, msg_id);
		usb4_op_abort(ep, op);
	} else if (op->wants_cts) {
		usb4_stream_early_start(ep, op, len);
	}
	return ret;
}

/* ---- target ---- */

/*
 * Who may use our registered memory.  An RDM target need not insert its
 * initiators: Open MPI 5's one-sided never inserts the ranks that only
 * target it (4 ranks across hosts: each AV held 3 of the 4).  So:
 *   - peers the application inserted, and peers whose link authenticated
 *     them (one on the same host; one with a job key), are served;
 *   - in a domain whose keys we drew at random (FI_MR_PROV_KEY: 64 bits
 *     from getrandom), holding a key is the right to its region, as
 *     libfabric means keys: a sender not inserted is served and counted;
 *   - with keys the application chose (guessable), a stranger holding one
 *     gets FI_EACCES, as for a bad key, and touches nothing.
 * In the last case a peer's first access may still race the target's
 * fi_av_insert of it, so a not-yet-inserted sender's request waits: refusing it with
 * -FI_EAGAIN holds it, and the frames behind it from the same peer, at the
 * link, which offers it again; each offer looks the sender up afresh, so
 * once the application inserts it the request is served.  A sender still
 * unknown FI_USB4_UNKNOWN_ACCESS_WAIT ms after its first request is refused,
 * and so is every later request of its session until it is inserted.
 */
static int access_check(struct usb4_core_ep *ep, fi_addr_t src)
{
	struct usb4_peer *peer;
	uint64_t now;

	if (usb4_peer_may_access(ep, src))
		return 0;
	if (ep->dom->keys_drawn) {
		ep->stats.rma_by_key_unknown++;
		return 0;
	}
	peer = usb4_peer_of(ep, src);
	now = usb4_now_ns();
	if (peer && !peer->access_wait_ns)
		peer->access_wait_ns = now;
	if (peer && now - peer->access_wait_ns <
		    (uint64_t) usb4_params.unknown_access_wait_ms * 1000000) {
		ep->stats.rma_waited_unknown++;
		return -FI_EAGAIN;
	}
	/* The wait is once per peer: later requests are refused at once. */
	ep->stats.rma_refused_unknown++;
	return -FI_EACCES;
}

/* Checks and pins every segment, or none. */
static int pin_segs(struct usb4_core_ep *ep, const struct usb4_frame *f,
		    uint64_t access, struct usb4_pin *pins, struct iovec *iov,
		    size_t *count)
{
	struct usb4_wire_rma_seg seg;
	size_t n = (f->payload_len - usb4_rma_inline_len(f)) / sizeof(seg);

	for (size_t i = 0; i < n; i++) {
		memcpy(&seg, (const char *) f->payload + i * sizeof(seg),
		       sizeof(seg));
		uint64_t len = le64toh(seg.len);
		int ret = usb4_mr_pin(ep->dom->mrs, le64toh(seg.key),
				      le64toh(seg.addr), len, access, &pins[i]);

		if (ret) {
			usb4_mr_unpin_all(pins, i);
			return ret;
		}
		iov[i].iov_base = (void *) (uintptr_t) pins[i].va;
		iov[i].iov_len = len;
	}
	*count = n;
	return 0;
}

int usb4_rma_handle_write(struct usb4_core_ep *ep, const struct usb4_frame *f,
			  fi_addr_t src)
{
	bool cq_data = f->flags & USB4_WF_CQ_DATA;
	struct usb4_xfer *x;
	int ret;

	x = usb4_xfer_new(ep, USB4_XFER_RMA_WRITE, src, f->msg_id);
	if (!x)
		return -FI_EAGAIN;
	if (cq_data && usb4_cq_queue_reserve(ep->rx_cq)) {
		usb4_xfer_free(ep, x);
		return -FI_EAGAIN;
	}
	ret = access_check(ep, src);
	if (!ret)
		ret = pin_segs(ep, f, FI_REMOTE_WRITE, x->pins, x->iov,
			       &x->npins);
	x->iov_count = x->npins;
	x->cq_data = cq_data;
	x->data = f->data;
	if (ret == -FI_EAGAIN) {	/* the region is busy: later */
		if (cq_data)
			usb4_cq_queue_unreserve(ep->rx_cq);
		usb4_xfer_free(ep, x);
		return ret;
	}
	if (ret) {
		usb4_xfer_done(ep, x, ret);
		return 0;
	}
	if (usb4_rma_inline_len(f)) {
		usb4_rma_inline_place(ep, x, f);
		return 0;
	}
	usb4_xfer_arm(ep, x, f->total_len);
	if (!f->total_len)
		usb4_xfer_done(ep, x, 0);
	else
		usb4_xfer_early_cts(ep, x, true, f->total_len);
	return 0;
}

int usb4_rma_handle_read(struct usb4_core_ep *ep, const struct usb4_frame *f,
			 fi_addr_t src)
{
	struct usb4_stream *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -FI_EAGAIN;
	usb4_list_init(&s->link);
	usb4_list_init(&s->ctrl.link);
	s->dest = src;
	s->msg_id = f->msg_id;
	s->wflags = USB4_WF_READ_RESP;
	s->owned = true;
	ret = access_check(ep, src);
	if (!ret)
		ret = pin_segs(ep, f, FI_REMOTE_READ, s->pins, s->iov,
			       &s->npins);
	if (ret == -FI_EAGAIN) {	/* the region is busy: later */
		free(s);
		return ret;
	}
	if (ret) {
		usb4_stream_end(ep, s, ret);
		return 0;
	}
	s->iov_count = s->npins;
	if (!usb4_rma_read_inline_answer(ep, src, f->msg_id, s->iov,
					 s->iov_count, f->total_len)) {
		usb4_mr_unpin_all(s->pins, s->npins);	/* the bytes are copied */
		free(s);
		return 0;
	}
	usb4_stream_start(ep, s, f->total_len);
	return 0;
}

/* ---- atomics ---- */

/* Operands travel unless the op reads only; compares with compare atomics. */
static size_t atomic_payload(int kind, enum fi_op op, size_t bytes)
{
	return (op == FI_ATOMIC_READ ? 0 : bytes) +
	       (kind == USB4_ATOMIC_COMPARE ? bytes : 0);
}

static int atomic_request(struct usb4_core_ep *ep,
			  const struct usb4_atomic_args *a, size_t count,
			  uint64_t msg_id)
{
	size_t size = usb4_atomic_size(a->dt), bytes = count * size;
	struct {
		struct usb4_wire_hdr hdr;
		struct usb4_wire_atomic head;
		char data[2 * USB4_ATOMIC_MAX_BYTES];
	} req;
	struct usb4_frame f = {
		.type = USB4_FRAME_ATOMIC_REQ, .src_id = ep->id,
		.msg_id = msg_id, .total_len = bytes,
		.payload_len = sizeof(req.head) +
			       atomic_payload(a->kind, a->op, bytes),
	};
	char *p = req.data;
	struct iovec iov;

	if (a->op != FI_ATOMIC_READ) {
		if (usb4_atomic_gather(a->src, a->src_count, size, p, count))
			return -FI_EINVAL;
		p += bytes;
	}
	if (a->kind == USB4_ATOMIC_COMPARE &&
	    usb4_atomic_gather(a->cmp, a->cmp_count, size, p, count))
		return -FI_EINVAL;
	req.head = (struct usb4_wire_atomic) {
		.kind = a->kind, .op = a->op, .datatype = htole16(a->dt),
		.count = htole32(count), .addr = htole64(a->rma[0].addr),
		.key = htole64(a->rma[0].key),
	};
	usb4_wire_build(&req.hdr, &f);
	iov.iov_base = &req;
	iov.iov_len = sizeof(req.hdr) + f.payload_len;
	return usb4_post(ep, a->dest, &iov, 1);
}

ssize_t usb4_atomic_frames(struct usb4_core_ep *ep,
			   const struct usb4_atomic_args *a, size_t count,
			   uint64_t flags)
{
	uint64_t msg_id;
	struct usb4_tx_op *op;
	int ret;

	/* One target segment per request as frames. */
	if (a->rma_count != 1)
		return -FI_EINVAL;
	op = usb4_op_start(ep, a->dest, a->context,
			   count * usb4_atomic_size(a->dt), flags,
			   a->kind == USB4_ATOMIC_BASE ? ep->wr_cntr :
							 ep->rd_cntr, &msg_id);
	if (!op)
		return -FI_EAGAIN;
	if (a->kind != USB4_ATOMIC_BASE) {
		memcpy(op->res, a->res, a->res_count * sizeof(*a->res));
		op->res_count = a->res_count;
		op->res_size = usb4_atomic_size(a->dt);
	}
	ret = atomic_request(ep, a, count, msg_id);
	if (ret)
		usb4_op_abort(ep, op);
	return ret;
}

/* The target runs the operation on its own memory, under its lock. */
static int atomic_execute(struct usb4_core_ep *ep,
			  const struct usb4_wire_atomic *h, const char *operands,
			  char *old)
{
	struct usb4_mr_table *self = ep->dom->mrs;
	enum fi_datatype dt = le16toh(h->datatype);
	size_t size = usb4_atomic_size(dt), bytes = le32toh(h->count) * size;
	uint64_t access = usb4_atomic_access(h->kind, h->op);
	const char *cmp = operands + (h->op == FI_ATOMIC_READ ? 0 : bytes);
	struct usb4_pin pin;
	size_t align = size > 8 ? 8 : size;

	int ret = usb4_mr_pin(self, le64toh(h->key), le64toh(h->addr), bytes,
			      access, &pin);

	if (ret)
		return ret;
	if (pin.va % align) {
		usb4_mr_unpin(&pin);
		return -FI_EINVAL;
	}
	usb4_mr_atomic_lock(self);
	memcpy(old, (void *) (uintptr_t) pin.va, bytes);
	usb4_atomic_calc(dt, h->op, le32toh(h->count), (void *) (uintptr_t) pin.va,
			 h->op == FI_ATOMIC_READ ? NULL : operands,
			 h->kind == USB4_ATOMIC_COMPARE ? cmp : NULL);
	usb4_mr_atomic_unlock(self);
	usb4_mr_unpin(&pin);
	usb4_rma_count_remote(ep, h->kind == USB4_ATOMIC_BASE);
	return 0;
}

/* Validates what came off the wire before anything touches memory. */
static int atomic_check_req(const struct usb4_frame *f,
			    struct usb4_wire_atomic *h)
{
	size_t size, bytes;

	memcpy(h, f->payload, sizeof(*h));
	size = usb4_atomic_size(le16toh(h->datatype));
	if (!size || h->kind > USB4_ATOMIC_COMPARE ||
	    !usb4_atomic_supported(h->kind, le16toh(h->datatype), h->op))
		return -FI_EOPNOTSUPP;
	bytes = (size_t) le32toh(h->count) * size;
	if (!h->count || bytes > USB4_ATOMIC_MAX_BYTES || bytes != f->total_len ||
	    f->payload_len != sizeof(*h) + atomic_payload(h->kind, h->op, bytes))
		return -FI_EINVAL;
	return 0;
}

int usb4_rma_handle_atomic(struct usb4_core_ep *ep, const struct usb4_frame *f,
			   fi_addr_t src)
{
	struct usb4_ctrl *resp = usb4_ctrl_new(USB4_ATOMIC_MAX_BYTES);
	struct usb4_wire_atomic h;
	char *old;
	size_t back;
	int ret;

	if (!resp)
		return -FI_EAGAIN;
	old = (char *) resp->payload;
	memset(&h, 0, sizeof(h));
	ret = access_check(ep, src);
	if (!ret)
		ret = atomic_check_req(f, &h);
	if (!ret)
		ret = atomic_execute(ep, &h, (const char *) f->payload + sizeof(h),
				     old);
	if (ret == -FI_EAGAIN) {	/* the region is busy: later */
		free(resp);
		return ret;
	}
	back = !ret && h.kind != USB4_ATOMIC_BASE ? f->total_len : 0;
	usb4_ctrl_send_data(ep, resp, src, USB4_FRAME_ATOMIC_RESP, f->msg_id,
			    ret, old, back);
	return 0;
}

int usb4_rma_handle_atomic_resp(struct usb4_core_ep *ep,
				const struct usb4_frame *f, fi_addr_t src)
{
	struct usb4_tx_op *op = usb4_op_find(ep, f->msg_id, src);
	int status = usb4_peer_status(f->data);

	if (!op || !(op->flags & FI_ATOMIC)) {
		ep->stats.dropped_unknown_op++;
		return 0;
	}
	if (!status)
		usb4_atomic_scatter(op->res, op->res_count, op->res_size,
				    f->payload, f->payload_len);
	usb4_op_done(ep, op, status);
	return 0;
}
