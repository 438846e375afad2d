/*
 * fi_atomic: base, fetch and compare atomics and their valid/query calls.
 * Every call funnels into one function that fills usb4_atomic_args.
 */
#include "usb4_api.h"
#include "usb4_atomic.h"

static struct usb4_ep *ep_of(struct fid_ep *fid)
{
	return usb4_container_of(fid, struct usb4_ep, ep_fid);
}

/* Every entry with elements has an address. */
static bool iocs_valid(const struct fi_ioc *ioc, size_t count)
{
	if (count && !ioc)
		return false;
	for (size_t i = 0; i < count; i++)
		if (ioc[i].count && !ioc[i].addr)
			return false;
	return true;
}

/* The operands the operation reads or writes: FI_ATOMIC_READ has none to
 * send, so its source may be anything. */
static bool args_valid(const struct usb4_atomic_args *a)
{
	return (a->op == FI_ATOMIC_READ || iocs_valid(a->src, a->src_count)) &&
	       iocs_valid(a->cmp, a->cmp_count) &&
	       iocs_valid(a->res, a->res_count) && (!a->rma_count || a->rma);
}

static ssize_t run(struct fid_ep *fid, struct usb4_atomic_args *a)
{
	struct usb4_ep *ep = ep_of(fid);
	ssize_t ret;

	if (!ep->enabled)
		return -FI_EOPBADSTATE;
	if (!args_valid(a))
		return -FI_EINVAL;
	if (!(a->flags & FI_INJECT) && !ep->tx_selective)
		a->flags |= FI_COMPLETION;
	usb4_lock_acquire(&ep->domain->lock);
	usb4_cq_idle_note_post(ep->domain);
	ret = usb4_core_atomic(&ep->core, a);
	usb4_lock_release(&ep->domain->lock);
	return ret;
}

/* Arguments of the single-buffer calls. */
static void single(struct usb4_atomic_args *a, struct fi_ioc *src,
		   struct fi_rma_ioc *r, const void *buf, size_t count,
		   fi_addr_t dest, uint64_t addr, uint64_t key)
{
	*src = (struct fi_ioc) { .addr = (void *) buf, .count = count };
	*r = (struct fi_rma_ioc) { .addr = addr, .count = count, .key = key };
	a->src = src;	/* NULL with a count is refused, unless unused */
	a->src_count = 1;
	a->rma = r;
	a->rma_count = 1;
	a->dest = dest;
}

static ssize_t at_write(struct fid_ep *fid, const void *buf, size_t count,
			void *desc, fi_addr_t dest, uint64_t addr, uint64_t key,
			enum fi_datatype dt, enum fi_op op, void *context)
{
	struct usb4_atomic_args a = { .kind = USB4_ATOMIC_BASE, .dt = dt,
				      .op = op, .context = context,
				      .flags = ep_of(fid)->tx_op_flags };
	struct fi_ioc src;
	struct fi_rma_ioc r;

	single(&a, &src, &r, buf, count, dest, addr, key);
	return run(fid, &a);
}

static ssize_t at_writev(struct fid_ep *fid, const struct fi_ioc *iov,
			 void **desc, size_t count, fi_addr_t dest,
			 uint64_t addr, uint64_t key, enum fi_datatype dt,
			 enum fi_op op, void *context)
{
	size_t n = 0;

	for (size_t i = 0; i < count && iov; i++)
		n += iov[i].count;
	struct fi_rma_ioc r = { .addr = addr, .count = n, .key = key };
	struct usb4_atomic_args a = {
		.kind = USB4_ATOMIC_BASE, .dt = dt, .op = op,
		.src = iov, .src_count = count, .rma = &r, .rma_count = 1,
		.dest = dest, .context = context,
		.flags = ep_of(fid)->tx_op_flags,
	};
	return run(fid, &a);
}

static void from_msg(struct usb4_atomic_args *a, const struct fi_msg_atomic *msg,
		     uint64_t flags)
{
	a->dt = msg->datatype;
	a->op = msg->op;
	a->src = msg->msg_iov;
	a->src_count = msg->iov_count;
	a->rma = msg->rma_iov;
	a->rma_count = msg->rma_iov_count;
	a->dest = msg->addr;
	a->context = msg->context;
	a->flags = flags;
}

static ssize_t at_writemsg(struct fid_ep *fid, const struct fi_msg_atomic *msg,
			   uint64_t flags)
{
	struct usb4_atomic_args a = { .kind = USB4_ATOMIC_BASE };

	from_msg(&a, msg, flags);
	return run(fid, &a);
}

static ssize_t at_inject(struct fid_ep *fid, const void *buf, size_t count,
			 fi_addr_t dest, uint64_t addr, uint64_t key,
			 enum fi_datatype dt, enum fi_op op)
{
	struct usb4_atomic_args a = { .kind = USB4_ATOMIC_BASE, .dt = dt,
				      .op = op, .flags = FI_INJECT };
	struct fi_ioc src;
	struct fi_rma_ioc r;

	single(&a, &src, &r, buf, count, dest, addr, key);
	return run(fid, &a);
}

static ssize_t at_fetch(struct fid_ep *fid, const void *buf, size_t count,
			void *desc, void *result, void *result_desc,
			fi_addr_t dest, uint64_t addr, uint64_t key,
			enum fi_datatype dt, enum fi_op op, void *context)
{
	struct usb4_atomic_args a = { .kind = USB4_ATOMIC_FETCH, .dt = dt,
				      .op = op, .context = context,
				      .flags = ep_of(fid)->tx_op_flags };
	struct fi_ioc src, res = { .addr = result, .count = count };
	struct fi_rma_ioc r;

	single(&a, &src, &r, buf, count, dest, addr, key);
	a.res = &res;
	a.res_count = 1;
	return run(fid, &a);
}

static ssize_t at_fetchv(struct fid_ep *fid, const struct fi_ioc *iov,
			 void **desc, size_t count, struct fi_ioc *resultv,
			 void **result_desc, size_t result_count,
			 fi_addr_t dest, uint64_t addr, uint64_t key,
			 enum fi_datatype dt, enum fi_op op, void *context)
{
	size_t n = 0;

	for (size_t i = 0; i < result_count && resultv; i++)
		n += resultv[i].count;
	struct fi_rma_ioc r = { .addr = addr, .count = n, .key = key };
	struct usb4_atomic_args a = {
		.kind = USB4_ATOMIC_FETCH, .dt = dt, .op = op,
		.src = iov, .src_count = count, .res = resultv,
		.res_count = result_count, .rma = &r, .rma_count = 1,
		.dest = dest, .context = context,
		.flags = ep_of(fid)->tx_op_flags,
	};
	return run(fid, &a);
}

static ssize_t at_fetchmsg(struct fid_ep *fid, const struct fi_msg_atomic *msg,
			   struct fi_ioc *resultv, void **result_desc,
			   size_t result_count, uint64_t flags)
{
	struct usb4_atomic_args a = { .kind = USB4_ATOMIC_FETCH };

	from_msg(&a, msg, flags);
	a.res = resultv;
	a.res_count = result_count;
	return run(fid, &a);
}

static ssize_t at_compare(struct fid_ep *fid, const void *buf, size_t count,
			  void *desc, const void *compare, void *compare_desc,
			  void *result, void *result_desc, fi_addr_t dest,
			  uint64_t addr, uint64_t key, enum fi_datatype dt,
			  enum fi_op op, void *context)
{
	struct usb4_atomic_args a = { .kind = USB4_ATOMIC_COMPARE, .dt = dt,
				      .op = op, .context = context,
				      .flags = ep_of(fid)->tx_op_flags };
	struct fi_ioc src, res = { .addr = result, .count = count };
	struct fi_ioc cmp = { .addr = (void *) compare, .count = count };
	struct fi_rma_ioc r;

	single(&a, &src, &r, buf, count, dest, addr, key);
	a.cmp = &cmp;
	a.cmp_count = 1;
	a.res = &res;
	a.res_count = 1;
	return run(fid, &a);
}

static ssize_t at_comparev(struct fid_ep *fid, const struct fi_ioc *iov,
			   void **desc, size_t count,
			   const struct fi_ioc *comparev, void **compare_desc,
			   size_t compare_count, struct fi_ioc *resultv,
			   void **result_desc, size_t result_count,
			   fi_addr_t dest, uint64_t addr, uint64_t key,
			   enum fi_datatype dt, enum fi_op op, void *context)
{
	size_t n = 0;

	for (size_t i = 0; i < count && iov; i++)
		n += iov[i].count;
	struct fi_rma_ioc r = { .addr = addr, .count = n, .key = key };
	struct usb4_atomic_args a = {
		.kind = USB4_ATOMIC_COMPARE, .dt = dt, .op = op,
		.src = iov, .src_count = count, .cmp = comparev,
		.cmp_count = compare_count, .res = resultv,
		.res_count = result_count, .rma = &r, .rma_count = 1,
		.dest = dest, .context = context,
		.flags = ep_of(fid)->tx_op_flags,
	};
	return run(fid, &a);
}

static ssize_t at_comparemsg(struct fid_ep *fid,
			     const struct fi_msg_atomic *msg,
			     const struct fi_ioc *comparev, void **compare_desc,
			     size_t compare_count, struct fi_ioc *resultv,
			     void **result_desc, size_t result_count,
			     uint64_t flags)
{
	struct usb4_atomic_args a = { .kind = USB4_ATOMIC_COMPARE };

	from_msg(&a, msg, flags);
	a.cmp = comparev;
	a.cmp_count = compare_count;
	a.res = resultv;
	a.res_count = result_count;
	return run(fid, &a);
}

static int valid(enum usb4_atomic_kind kind, enum fi_datatype dt,
		 enum fi_op op, size_t *count)
{
	if (!usb4_atomic_supported(kind, dt, op))
		return -FI_EOPNOTSUPP;
	if (count)
		*count = usb4_atomic_max_count(dt);
	return 0;
}

static int at_writevalid(struct fid_ep *fid, enum fi_datatype dt,
			 enum fi_op op, size_t *count)
{
	return valid(USB4_ATOMIC_BASE, dt, op, count);
}

static int at_fetchvalid(struct fid_ep *fid, enum fi_datatype dt,
			 enum fi_op op, size_t *count)
{
	return valid(USB4_ATOMIC_FETCH, dt, op, count);
}

static int at_comparevalid(struct fid_ep *fid, enum fi_datatype dt,
			   enum fi_op op, size_t *count)
{
	return valid(USB4_ATOMIC_COMPARE, dt, op, count);
}

int usb4_query_atomic(struct fid_domain *domain, enum fi_datatype dt,
		      enum fi_op op, struct fi_atomic_attr *attr,
		      uint64_t flags)
{
	enum usb4_atomic_kind kind = USB4_ATOMIC_BASE;
	int ret;

	if ((flags & FI_FETCH_ATOMIC) && (flags & FI_COMPARE_ATOMIC))
		return -FI_EINVAL;
	/* Atomics into tagged receive buffers are not offered. */
	if (flags & ~(FI_FETCH_ATOMIC | FI_COMPARE_ATOMIC))
		return -FI_EOPNOTSUPP;
	if (flags & FI_FETCH_ATOMIC)
		kind = USB4_ATOMIC_FETCH;
	if (flags & FI_COMPARE_ATOMIC)
		kind = USB4_ATOMIC_COMPARE;
	ret = valid(kind, dt, op, attr ? &attr->count : NULL);
	if (!ret && attr)
		attr->size = usb4_atomic_size(dt);
	return ret;
}

struct fi_ops_atomic usb4_atomic_ops = {
	.size = sizeof(struct fi_ops_atomic),
	.write = at_write,
	.writev = at_writev,
	.writemsg = at_writemsg,
	.inject = at_inject,
	.readwrite = at_fetch,
	.readwritev = at_fetchv,
	.readwritemsg = at_fetchmsg,
	.compwrite = at_compare,
	.compwritev = at_comparev,
	.compwritemsg = at_comparemsg,
	.writevalid = at_writevalid,
	.readwritevalid = at_fetchvalid,
	.compwritevalid = at_comparevalid,
};
