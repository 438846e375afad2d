/*
 * RMA and atomics, and the one-sided way to do them: over a link with
 * USB4_LINK_CAP_ONE_SIDED the initiator checks key, rights and bounds in the
 * target's registration table, pins the regions, and moves the data with
 * the link's bulk copy; atomics do a read-modify-write under the target's
 * atomics lock.  An atomic of up to USB4_BOARD_DATA bytes, and a get or a
 * put of up to that many to one remote segment, is first offered on the
 * target's board (usb4_mr_board.c): a target that is progressing applies
 * it without the copy's system calls; one that is not leaves it to the
 * copy after a few microseconds.  Otherwise the target's CPU only sees
 * remote CQ data (fi_writedata) and counts.  Everything completes before
 * the call returns, so each completion has FI_DELIVERY_COMPLETE meaning.  Other links carry RMA as
 * frames (usb4_rma_frames.c).
 */
#include <stdlib.h>
#include <string.h>

#include "usb4_atomic.h"
#include "usb4_mr_board.h"
#include "usb4_proto.h"

/* Our own registration table, whose board we serve while we wait on a
 * peer's (NULL: none). */
static struct usb4_mr_table *usb4_core_ep_mrs(const struct usb4_core_ep *ep)
{
	return ep->dom ? ep->dom->mrs : NULL;
}

/* Pins every remote segment, or none: a refused access touches nothing. */
static int pin_all(struct usb4_peer *peer, const struct fi_rma_iov *rma,
		   size_t count, uint64_t access, struct usb4_pin *pins,
		   struct iovec *remote)
{
	for (size_t i = 0; i < count; i++) {
		int ret = usb4_mr_pin(peer->table, rma[i].key, rma[i].addr,
				      rma[i].len, access, &pins[i]);
		if (ret) {
			usb4_mr_unpin_all(pins, i);
			return ret;
		}
		remote[i].iov_base = (void *) (uintptr_t) pins[i].va;
		remote[i].iov_len = rma[i].len;
	}
	return 0;
}

static void rma_complete(struct usb4_core_ep *ep, uint64_t flags, void *context,
			 size_t len, int err)
{
	struct usb4_counter *cntr = flags & FI_WRITE ? ep->wr_cntr : ep->rd_cntr;
	struct usb4_cqe e = {
		.op_context = context,
		.flags = (flags & (FI_RMA | FI_ATOMIC | FI_READ | FI_WRITE)),
		.len = len,
		.src = FI_ADDR_NOTAVAIL,
	};
	/* RMA counts on the FI_READ / FI_WRITE counters, not FI_SEND's. */
	if (err)
		usb4_core_report_err(ep->tx_cq, cntr, &e, err, 0);
	else
		usb4_core_report(ep->tx_cq, cntr, &e,
				 (flags & FI_COMPLETION) && !(flags & FI_INJECT));
}

static int rma_move(struct usb4_link *link, struct usb4_peer *peer,
		    struct usb4_mr_table *self, const struct usb4_rma_args *a,
		    size_t len)
{
	bool write = a->flags & FI_WRITE;
	struct usb4_pin pins[USB4_IOV_LIMIT];
	struct iovec remote[USB4_IOV_LIMIT];
	int ret;

	if (a->rma_count == 1) {
		ret = usb4_board_rma(peer->table, self, write,
				     a->rma_iov[0].key,
				     a->rma_iov[0].addr, a->iov, a->iov_count,
				     len);
		if (ret != 1)
			goto moved;	/* the target applied or refused it */
	}
	ret = pin_all(peer, a->rma_iov, a->rma_count,
		      write ? FI_REMOTE_WRITE : FI_REMOTE_READ, pins, remote);
	if (ret)
		return ret;
	ret = write ? link->ops->bulk_write(peer->dest, a->iov, a->iov_count,
					    remote, a->rma_count, len) :
		      link->ops->bulk_read(peer->dest, a->iov, a->iov_count,
					   remote, a->rma_count, len);
	usb4_mr_unpin_all(pins, a->rma_count);
moved:
	if (!ret)
		link->ops->count_remote(peer->dest, write);
	return ret;
}

/* Tells the target a write with remote CQ data landed: its storage is got
 * before the write, so the notice cannot be lost. */
static void send_write_data(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl,
			    const struct usb4_rma_args *a, size_t len)
{
	usb4_ctrl_send(ep, ctrl, a->dest, USB4_FRAME_WRITE_DATA, 0,
		       (int64_t) a->data, len);
}

ssize_t usb4_core_rma(struct usb4_core_ep *ep, const struct usb4_rma_args *a)
{
	size_t len = usb4_iov_len(a->iov, a->iov_count), rlen = 0;
	struct usb4_ctrl *notice = NULL;
	struct usb4_route r;
	int ret;

	usb4_route(ep, a->dest, &r);
	if (!r.peer || a->iov_count > USB4_IOV_LIMIT ||
	    a->rma_count > USB4_IOV_LIMIT || !a->rma_count)
		return -FI_EINVAL;
	for (size_t i = 0; i < a->rma_count; i++)
		rlen += a->rma_iov[i].len;
	if (rlen != len)
		return -FI_EINVAL;
	if (len > USB4_MAX_MSG_SIZE)
		return -FI_EMSGSIZE;
	if (r.peer->down)
		return r.peer->down;
	/* Without the target's CPU when the link reaches its memory. */
	if (!(usb4_route_caps(&r) & USB4_LINK_CAP_ONE_SIDED)) {
		ssize_t sent = usb4_rma_frames(ep, a, len);

		ep->stats.rma_ops += !sent;
		return sent;
	}
	if ((a->flags & FI_REMOTE_CQ_DATA) && !(notice = usb4_ctrl_new(0)))
		return -FI_EAGAIN;
	if (usb4_cq_queue_reserve(ep->tx_cq)) {
		free(notice);
		return -FI_EAGAIN;
	}
	ret = rma_move(r.link, r.peer, usb4_core_ep_mrs(ep), a, len);
	if (notice && !ret)
		send_write_data(ep, notice, a, len);
	else
		free(notice);
	if (ret == -FI_EAGAIN) {	/* the region is busy: nothing moved */
		usb4_cq_queue_unreserve(ep->tx_cq);
		return ret;
	}
	ep->stats.rma_ops += !ret;
	rma_complete(ep, a->flags | FI_RMA, a->context, len, ret);
	return 0;
}

/* ---- atomics ---- */

/*
 * Pins every target segment, or none, checking alignment too.  Fix: segments
 * used to be pinned and updated one at a time, so a refused second segment
 * left the first one already modified behind an error completion.
 */
static int atomic_pin_all(struct usb4_peer *peer,
			  const struct usb4_atomic_args *a, size_t size,
			  struct usb4_pin *pins)
{
	size_t align = size > 8 ? 8 : size;
	uint64_t access = usb4_atomic_access(a->kind, a->op);

	for (size_t i = 0; i < a->rma_count; i++) {
		int ret = usb4_mr_pin(peer->table, a->rma[i].key,
				      a->rma[i].addr, a->rma[i].count * size,
				      access, &pins[i]);
		if (!ret && pins[i].va % align) {
			usb4_mr_unpin(&pins[i]);
			ret = -FI_EINVAL;
		}
		if (ret) {
			usb4_mr_unpin_all(pins, i);
			return ret;
		}
	}
	return 0;
}

/* Read, compute, write back: one pinned segment, under the target's lock. */
static int atomic_segment(struct usb4_link *link, struct usb4_peer *peer,
			  struct usb4_mr_table *self,
			  const struct usb4_atomic_args *a,
			  const struct fi_rma_ioc *r, const struct usb4_pin *pin,
			  char *src, char *cmp, char *old, size_t size)
{
	size_t len = r->count * size;
	char now[USB4_ATOMIC_MAX_BYTES];
	struct iovec l = { .iov_base = now, .iov_len = len };
	struct iovec rem = { .iov_base = (void *) (uintptr_t) pin->va,
			     .iov_len = len };
	int ret;

	ret = usb4_board_atomic(peer->table, self, a->kind, a->dt, a->op,
				r->key, r->addr, len, src, cmp, old);
	if (ret != 1)
		return ret;	/* the target applied it, or refused it */
	usb4_mr_atomic_lock(peer->table);
	ret = link->ops->bulk_read(peer->dest, &l, 1, &rem, 1, len);
	if (!ret) {
		memcpy(old, now, len);
		usb4_atomic_calc(a->dt, a->op, r->count, now, src, cmp);
		if (a->op != FI_ATOMIC_READ)
			ret = link->ops->bulk_write(peer->dest, &l, 1, &rem, 1,
						    len);
	}
	usb4_mr_atomic_unlock(peer->table);
	return ret;
}

/* Sum of an ioc list's counts is exactly count (overflow-safe). */
static bool ioc_total_is(const struct fi_ioc *ioc, size_t n, size_t count)
{
	size_t have = 0;

	for (size_t i = 0; i < n; i++) {
		if (ioc[i].count > count - have)
			return false;
		have += ioc[i].count;
	}
	return have == count;
}

/*
 * Checks what can be checked before touching the target.  Fix: the element
 * counts are now bounded one segment at a time; their sum, and count * size,
 * used to be able to wrap (fi_atomic with count 2^62 + 1 of 4-byte elements
 * passed as 4 bytes and then overran a stack buffer), and a fetch's result
 * list longer than the operation overran it on the way out.
 */
static int atomic_check(const struct usb4_atomic_args *a, size_t *count)
{
	size_t max = usb4_atomic_max_count(a->dt);

	*count = 0;
	if (!usb4_atomic_supported(a->kind, a->dt, a->op))
		return -FI_EOPNOTSUPP;
	for (size_t i = 0; i < a->rma_count; i++) {
		if (a->rma[i].count > max - *count) {
			*count = 0;
			return -FI_EINVAL;
		}
		*count += a->rma[i].count;
	}
	if (!*count)
		return -FI_EINVAL;
	if (a->kind != USB4_ATOMIC_BASE &&
	    !ioc_total_is(a->res, a->res_count, *count))
		return -FI_EINVAL;
	return 0;
}

static int atomic_run(struct usb4_link *link, struct usb4_peer *peer,
		      struct usb4_mr_table *self,
		      const struct usb4_atomic_args *a, size_t count)
{
	size_t size = usb4_atomic_size(a->dt);
	char src[USB4_ATOMIC_MAX_BYTES], cmp[USB4_ATOMIC_MAX_BYTES];
	char old[USB4_ATOMIC_MAX_BYTES];
	struct usb4_pin pins[USB4_IOV_LIMIT];
	size_t done = 0;
	int ret = 0;

	if (a->op != FI_ATOMIC_READ &&
	    (ret = usb4_atomic_gather(a->src, a->src_count, size, src, count)))
		return ret;
	if (a->kind == USB4_ATOMIC_COMPARE &&
	    (ret = usb4_atomic_gather(a->cmp, a->cmp_count, size, cmp, count)))
		return ret;
	ret = atomic_pin_all(peer, a, size, pins);
	if (ret)
		return ret;
	for (size_t i = 0; i < a->rma_count && !ret; i++) {
		ret = atomic_segment(link, peer, self, a, &a->rma[i], &pins[i],
				     src + done * size, cmp + done * size,
				     old + done * size, size);
		done += a->rma[i].count;
	}
	usb4_mr_unpin_all(pins, a->rma_count);
	if (!ret && a->kind != USB4_ATOMIC_BASE)
		usb4_atomic_scatter(a->res, a->res_count, size, old, count * size);
	return ret;
}

ssize_t usb4_core_atomic(struct usb4_core_ep *ep,
			 const struct usb4_atomic_args *a)
{
	uint64_t flags = FI_ATOMIC | (a->kind == USB4_ATOMIC_BASE ?
				      FI_WRITE : FI_READ);
	struct usb4_route r;
	size_t count;
	int ret;

	usb4_route(ep, a->dest, &r);
	if (!r.peer || a->rma_count > USB4_IOV_LIMIT ||
	    a->src_count > USB4_IOV_LIMIT || a->cmp_count > USB4_IOV_LIMIT ||
	    a->res_count > USB4_IOV_LIMIT)
		return -FI_EINVAL;
	if (r.peer->down)
		return r.peer->down;
	flags |= a->flags & (FI_COMPLETION | FI_INJECT);
	ret = atomic_check(a, &count);
	if (!ret && !(usb4_route_caps(&r) & USB4_LINK_CAP_ONE_SIDED)) {
		ssize_t sent = usb4_atomic_frames(ep, a, count, flags);

		ep->stats.atomic_ops += !sent;
		return sent;
	}
	if (usb4_cq_queue_reserve(ep->tx_cq))
		return -FI_EAGAIN;
	if (!ret)
		ret = atomic_run(r.link, r.peer, usb4_core_ep_mrs(ep), a,
				 count);
	if (ret == -FI_EAGAIN) {	/* the region is busy: nothing moved */
		usb4_cq_queue_unreserve(ep->tx_cq);
		return ret;
	}
	if (!ret) {
		r.link->ops->count_remote(r.peer->dest,
					  a->kind == USB4_ATOMIC_BASE);
		ep->stats.atomic_ops++;
	}
	rma_complete(ep, flags, a->context, count * usb4_atomic_size(a->dt),
		     ret);
	return 0;
}
