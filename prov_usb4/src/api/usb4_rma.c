/* fi_rma: validate, resolve completion flags, take the lock, call the core. */
#include "usb4_api.h"

static struct usb4_ep *ep_of(struct fid_ep *fid)
{
	return usb4_container_of(fid, struct usb4_ep, ep_fid);
}

static ssize_t rma(struct fid_ep *fid, const struct iovec *iov, size_t count,
		   const struct fi_rma_iov *rma_iov, size_t rma_count,
		   fi_addr_t dest, uint64_t data, void *context, uint64_t flags)
{
	struct usb4_ep *ep = ep_of(fid);
	struct usb4_rma_args a = {
		.iov = iov,
		.iov_count = count,
		.rma_iov = rma_iov,
		.rma_count = rma_count,
		.dest = dest,
		.data = data,
		.context = context,
		.flags = ep->tx_selective || (flags & FI_INJECT) ? flags :
			 flags | FI_COMPLETION,
	};
	ssize_t ret;

	if (!ep->enabled)
		return -FI_EOPBADSTATE;
	if ((count && !iov) || (rma_count && !rma_iov) ||
	    !usb4_iov_valid(iov, count))
		return -FI_EINVAL;
	usb4_lock_acquire(&ep->domain->lock);
	usb4_cq_idle_note_post(ep->domain);
	ret = usb4_core_rma(&ep->core, &a);
	usb4_lock_release(&ep->domain->lock);
	return ret;
}

static ssize_t one(struct fid_ep *fid, const void *buf, size_t len,
		   fi_addr_t dest, uint64_t addr, uint64_t key, uint64_t data,
		   void *context, uint64_t flags)
{
	struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
	struct fi_rma_iov r = { .addr = addr, .len = len, .key = key };

	return rma(fid, &iov, 1, &r, 1, dest, data, context, flags);
}

/* The v calls: a local iov list against one remote range of the same size. */
static ssize_t vec(struct fid_ep *fid, const struct iovec *iov, size_t count,
		   fi_addr_t peer, uint64_t addr, uint64_t key, void *context,
		   uint64_t flags)
{
	struct fi_rma_iov r = { .addr = addr, .key = key };

	for (size_t i = 0; i < count && iov; i++)
		r.len += iov[i].iov_len;
	return rma(fid, iov, count, &r, 1, peer, 0, context, flags);
}

static ssize_t rma_read(struct fid_ep *fid, void *buf, size_t len, void *desc,
			fi_addr_t src, uint64_t addr, uint64_t key,
			void *context)
{
	return one(fid, buf, len, src, addr, key, 0, context,
		   ep_of(fid)->tx_op_flags | FI_READ);
}

static ssize_t rma_readv(struct fid_ep *fid, const struct iovec *iov,
			 void **desc, size_t count, fi_addr_t src,
			 uint64_t addr, uint64_t key, void *context)
{
	return vec(fid, iov, count, src, addr, key, context,
		   ep_of(fid)->tx_op_flags | FI_READ);
}

static ssize_t rma_readmsg(struct fid_ep *fid, const struct fi_msg_rma *msg,
			   uint64_t flags)
{
	return rma(fid, msg->msg_iov, msg->iov_count, msg->rma_iov,
		   msg->rma_iov_count, msg->addr, msg->data, msg->context,
		   (flags & ~FI_WRITE) | FI_READ);
}

static ssize_t rma_write(struct fid_ep *fid, const void *buf, size_t len,
			 void *desc, fi_addr_t dest, uint64_t addr,
			 uint64_t key, void *context)
{
	return one(fid, buf, len, dest, addr, key, 0, context,
		   ep_of(fid)->tx_op_flags | FI_WRITE);
}

static ssize_t rma_writev(struct fid_ep *fid, const struct iovec *iov,
			  void **desc, size_t count, fi_addr_t dest,
			  uint64_t addr, uint64_t key, void *context)
{
	return vec(fid, iov, count, dest, addr, key, context,
		   ep_of(fid)->tx_op_flags | FI_WRITE);
}

static ssize_t rma_writemsg(struct fid_ep *fid, const struct fi_msg_rma *msg,
			    uint64_t flags)
{
	return rma(fid, msg->msg_iov, msg->iov_count, msg->rma_iov,
		   msg->rma_iov_count, msg->addr, msg->data, msg->context,
		   (flags & ~FI_READ) | FI_WRITE);
}

static ssize_t rma_inject(struct fid_ep *fid, const void *buf, size_t len,
			  fi_addr_t dest, uint64_t addr, uint64_t key)
{
	if (len > usb4_ep_inject_limit(fid))
		return -FI_EMSGSIZE;
	return one(fid, buf, len, dest, addr, key, 0, NULL,
		   FI_WRITE | FI_INJECT);
}

static ssize_t rma_writedata(struct fid_ep *fid, const void *buf, size_t len,
			     void *desc, uint64_t data, fi_addr_t dest,
			     uint64_t addr, uint64_t key, void *context)
{
	return one(fid, buf, len, dest, addr, key, data, context,
		   ep_of(fid)->tx_op_flags | FI_WRITE | FI_REMOTE_CQ_DATA);
}

static ssize_t rma_injectdata(struct fid_ep *fid, const void *buf, size_t len,
			      uint64_t data, fi_addr_t dest, uint64_t addr,
			      uint64_t key)
{
	if (len > usb4_ep_inject_limit(fid))
		return -FI_EMSGSIZE;
	return one(fid, buf, len, dest, addr, key, data, NULL,
		   FI_WRITE | FI_INJECT | FI_REMOTE_CQ_DATA);
}

struct fi_ops_rma usb4_rma_ops = {
	.size = sizeof(struct fi_ops_rma),
	.read = rma_read,
	.readv = rma_readv,
	.readmsg = rma_readmsg,
	.write = rma_write,
	.writev = rma_writev,
	.writemsg = rma_writemsg,
	.inject = rma_inject,
	.writedata = rma_writedata,
	.injectdata = rma_injectdata,
};
