/*
 * fi_msg data path, and the send/receive entry points that fi_tagged shares:
 * validate, resolve the completion flags, take the lock, call the core.
 */
#include "usb4_api.h"

static struct usb4_ep *ep_of(struct fid_ep *fid)
{
	return usb4_container_of(fid, struct usb4_ep, ep_fid);
}

/* Selective completion: without it every operation completes. */
static uint64_t resolve_completion(bool selective, uint64_t flags)
{
	return selective ? flags : flags | FI_COMPLETION;
}

/* flags are final here: FI_COMPLETION says whether a CQ entry is wanted.
 * Inline in both callers: a send pays one call into the api, not two. */
static inline __attribute__((always_inline)) ssize_t send_flags(struct fid_ep *fid, const struct iovec *iov,
			  size_t count, fi_addr_t dest, uint64_t tag,
			  uint64_t data, void *context, uint64_t flags)
{
	struct usb4_ep *ep = ep_of(fid);
	struct usb4_send_args a = {
		.iov = iov,
		.iov_count = count,
		.dest = dest,
		.tag = tag,
		.data = data,
		.context = context,
		.flags = flags,
	};
	ssize_t ret;

	if (!ep->enabled)
		return -FI_EOPBADSTATE;
	/* One buffer, the common case: its check without a call. */
	if (count == 1 ? !iov || !usb4_buf_valid(iov[0].iov_base,
						  iov[0].iov_len) :
	    count > USB4_IOV_LIMIT || (count && !iov) ||
	    !usb4_iov_valid(iov, count))
		return -FI_EINVAL;
	usb4_lock_acquire(&ep->domain->lock);
	usb4_cq_idle_note_post(ep->domain);
	ret = usb4_core_send(&ep->core, &a);
	/* Backpressure: make progress so the caller's retry can succeed. */
	if (ret == -FI_EAGAIN)
		usb4_core_progress(&ep->core);
	usb4_lock_release(&ep->domain->lock);
	return ret;
}

ssize_t usb4_ep_recv(struct fid_ep *fid, const struct iovec *iov, size_t count,
		     fi_addr_t src, uint64_t tag, uint64_t ignore,
		     void *context, uint64_t flags)
{
	struct usb4_ep *ep = ep_of(fid);
	struct usb4_recv_args a = {
		.iov = iov,
		.iov_count = count,
		.src = src,
		.tag = tag,
		.ignore = ignore,
		.context = context,
		.flags = resolve_completion(ep->rx_selective, flags),
	};
	ssize_t ret;

	if (!ep->enabled)
		return -FI_EOPBADSTATE;
	/* One buffer, the common case: its check without a call. */
	if (count == 1 ? !iov || !usb4_buf_valid(iov[0].iov_base,
						  iov[0].iov_len) :
	    count > USB4_IOV_LIMIT || (count && !iov) ||
	    !usb4_iov_valid(iov, count))
		return -FI_EINVAL;
	usb4_lock_acquire(&ep->domain->lock);
	/* The core checks a named peer: under the lock, an insert may move
	 * the AV's table. */
	ret = usb4_core_recv(&ep->core, &a);
	if (ret == -FI_EAGAIN)
		usb4_core_progress(&ep->core);
	usb4_lock_release(&ep->domain->lock);
	return ret;
}

ssize_t usb4_ep_send(struct fid_ep *fid, const struct iovec *iov, size_t count,
		     fi_addr_t dest, uint64_t tag, uint64_t data,
		     void *context, uint64_t flags)
{
	return send_flags(fid, iov, count, dest, tag, data, context,
			  resolve_completion(ep_of(fid)->tx_selective, flags));
}

/* The fi_inject* calls: never a CQ entry (fi_sendmsg with FI_INJECT may
 * still ask for one). */
ssize_t usb4_ep_inject(struct fid_ep *fid, const void *buf, size_t len,
		       fi_addr_t dest, uint64_t tag, uint64_t data,
		       uint64_t flags)
{
	struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };

	if (len > usb4_ep_inject_limit(fid))
		return -FI_EMSGSIZE;
	return send_flags(fid, &iov, 1, dest, tag, data, NULL,
			  (flags | FI_INJECT) & ~FI_COMPLETION);
}

size_t usb4_ep_inject_limit(struct fid_ep *fid)
{
	return ep_of(fid)->core.eager_max;
}

/* ---- fi_ops_msg ---- */

static ssize_t msg_recv(struct fid_ep *fid, void *buf, size_t len, void *desc,
			fi_addr_t src, void *context)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return usb4_ep_recv(fid, &iov, 1, src, 0, 0, context,
			    ep_of(fid)->rx_op_flags | FI_MSG);
}

static ssize_t msg_recvv(struct fid_ep *fid, const struct iovec *iov,
			 void **desc, size_t count, fi_addr_t src,
			 void *context)
{
	return usb4_ep_recv(fid, iov, count, src, 0, 0, context,
			    ep_of(fid)->rx_op_flags | FI_MSG);
}

static ssize_t msg_recvmsg(struct fid_ep *fid, const struct fi_msg *msg,
			   uint64_t flags)
{
	return usb4_ep_recv(fid, msg->msg_iov, msg->iov_count, msg->addr, 0, 0,
			    msg->context, (flags & ~FI_TAGGED) | FI_MSG);
}

static ssize_t msg_send(struct fid_ep *fid, const void *buf, size_t len,
			void *desc, fi_addr_t dest, void *context)
{
	struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };

	return usb4_ep_send(fid, &iov, 1, dest, 0, 0, context,
			    ep_of(fid)->tx_op_flags | FI_MSG);
}

static ssize_t msg_sendv(struct fid_ep *fid, const struct iovec *iov,
			 void **desc, size_t count, fi_addr_t dest,
			 void *context)
{
	return usb4_ep_send(fid, iov, count, dest, 0, 0, context,
			    ep_of(fid)->tx_op_flags | FI_MSG);
}

static ssize_t msg_sendmsg(struct fid_ep *fid, const struct fi_msg *msg,
			   uint64_t flags)
{
	return usb4_ep_send(fid, msg->msg_iov, msg->iov_count, msg->addr, 0,
			    msg->data, msg->context,
			    (flags & ~FI_TAGGED) | FI_MSG);
}

static ssize_t msg_senddata(struct fid_ep *fid, const void *buf, size_t len,
			    void *desc, uint64_t data, fi_addr_t dest,
			    void *context)
{
	struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };

	return usb4_ep_send(fid, &iov, 1, dest, 0, data, context,
			    ep_of(fid)->tx_op_flags | FI_MSG |
			    FI_REMOTE_CQ_DATA);
}

static ssize_t msg_inject(struct fid_ep *fid, const void *buf, size_t len,
			  fi_addr_t dest)
{
	return usb4_ep_inject(fid, buf, len, dest, 0, 0, FI_MSG);
}

static ssize_t msg_injectdata(struct fid_ep *fid, const void *buf, size_t len,
			      uint64_t data, fi_addr_t dest)
{
	return usb4_ep_inject(fid, buf, len, dest, 0, data,
			      FI_MSG | FI_REMOTE_CQ_DATA);
}

struct fi_ops_msg usb4_msg_ops = {
	.size = sizeof(struct fi_ops_msg),
	.recv = msg_recv,
	.recvv = msg_recvv,
	.recvmsg = msg_recvmsg,
	.send = msg_send,
	.sendv = msg_sendv,
	.sendmsg = msg_sendmsg,
	.inject = msg_inject,
	.senddata = msg_senddata,
	.injectdata = msg_injectdata,
};
