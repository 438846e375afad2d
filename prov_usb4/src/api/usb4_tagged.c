/* fi_tagged data path: the tagged twins of usb4_msg.c. */
#include "usb4_api.h"

static struct usb4_ep *ep_of(struct fid_ep *fid)
{
	return usb4_container_of(fid, struct usb4_ep, ep_fid);
}

static ssize_t tagged_recv(struct fid_ep *fid, void *buf, size_t len,
			   void *desc, fi_addr_t src, uint64_t tag,
			   uint64_t ignore, void *context)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return usb4_ep_recv(fid, &iov, 1, src, tag, ignore, context,
			    ep_of(fid)->rx_op_flags | FI_TAGGED);
}

static ssize_t tagged_recvv(struct fid_ep *fid, const struct iovec *iov,
			    void **desc, size_t count, fi_addr_t src,
			    uint64_t tag, uint64_t ignore, void *context)
{
	return usb4_ep_recv(fid, iov, count, src, tag, ignore, context,
			    ep_of(fid)->rx_op_flags | FI_TAGGED);
}

static ssize_t tagged_recvmsg(struct fid_ep *fid,
			      const struct fi_msg_tagged *msg, uint64_t flags)
{
	return usb4_ep_recv(fid, msg->msg_iov, msg->iov_count, msg->addr,
			    msg->tag, msg->ignore, msg->context,
			    (flags & ~FI_MSG) | FI_TAGGED);
}

static ssize_t tagged_send(struct fid_ep *fid, const void *buf, size_t len,
			   void *desc, fi_addr_t dest, uint64_t tag,
			   void *context)
{
	struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };

	return usb4_ep_send(fid, &iov, 1, dest, tag, 0, context,
			    ep_of(fid)->tx_op_flags | FI_TAGGED);
}

static ssize_t tagged_sendv(struct fid_ep *fid, const struct iovec *iov,
			    void **desc, size_t count, fi_addr_t dest,
			    uint64_t tag, void *context)
{
	return usb4_ep_send(fid, iov, count, dest, tag, 0, context,
			    ep_of(fid)->tx_op_flags | FI_TAGGED);
}

static ssize_t tagged_sendmsg(struct fid_ep *fid,
			      const struct fi_msg_tagged *msg, uint64_t flags)
{
	return usb4_ep_send(fid, msg->msg_iov, msg->iov_count, msg->addr,
			    msg->tag, msg->data, msg->context,
			    (flags & ~FI_MSG) | FI_TAGGED);
}

static ssize_t tagged_senddata(struct fid_ep *fid, const void *buf, size_t len,
			       void *desc, uint64_t data, fi_addr_t dest,
			       uint64_t tag, void *context)
{
	struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };

	return usb4_ep_send(fid, &iov, 1, dest, tag, data, context,
			    ep_of(fid)->tx_op_flags | FI_TAGGED |
			    FI_REMOTE_CQ_DATA);
}

static ssize_t tagged_inject(struct fid_ep *fid, const void *buf, size_t len,
			     fi_addr_t dest, uint64_t tag)
{
	return usb4_ep_inject(fid, buf, len, dest, tag, 0, FI_TAGGED);
}

static ssize_t tagged_injectdata(struct fid_ep *fid, const void *buf,
				 size_t len, uint64_t data, fi_addr_t dest,
				 uint64_t tag)
{
	return usb4_ep_inject(fid, buf, len, dest, tag, data,
			      FI_TAGGED | FI_REMOTE_CQ_DATA);
}

struct fi_ops_tagged usb4_tagged_ops = {
	.size = sizeof(struct fi_ops_tagged),
	.recv = tagged_recv,
	.recvv = tagged_recvv,
	.recvmsg = tagged_recvmsg,
	.send = tagged_send,
	.sendv = tagged_sendv,
	.sendmsg = tagged_sendmsg,
	.inject = tagged_inject,
	.senddata = tagged_senddata,
	.injectdata = tagged_injectdata,
};
