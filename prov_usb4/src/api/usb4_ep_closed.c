/*
 * Closed endpoints kept as tombstones.
 *
 * fi_close(&ep->fid) and every post (fi_send is ep->msg->send(ep, ...))
 * read the ops tables through the caller's pointer, so an application that
 * closes an endpoint twice, or posts on one it closed, reads our memory
 * after the close.  Rather than let that read freed memory, fi_close
 * keeps the endpoint's struct (the fid and the bookkeeping around it,
 * about 1 KiB; queues, rings, links and tables are already freed) with
 * every ops table pointing at the ones below, which answer -FI_EBADF.
 * The last USB4_EP_TOMBSTONES closed endpoints are kept, oldest freed
 * first; the provider's cleanup frees the rest.  A mistake made after more
 * closes than that is again undefined, as libfabric leaves it.
 */
#include <stdlib.h>
#include <string.h>

#include "usb4_api.h"

/* Closed endpoints whose fid still answers: 256 KiB at most. */
#define USB4_EP_TOMBSTONES	256

/* Guards the ring: endpoints of any domain close into it. */
static pthread_mutex_t tomb_lock = PTHREAD_MUTEX_INITIALIZER;
static struct usb4_ep *tombs[USB4_EP_TOMBSTONES];
static size_t tomb_next;	/* the slot the next close takes */

/* ---- what a closed endpoint answers ---- */

static int closed_close(struct fid *fid)
{
	return -FI_EBADF;
}

static int closed_bind(struct fid *fid, struct fid *bfid, uint64_t flags)
{
	return -FI_EBADF;
}

static int closed_control(struct fid *fid, int command, void *arg)
{
	return -FI_EBADF;
}

static int closed_ops_open(struct fid *fid, const char *name, uint64_t flags,
			   void **ops, void *context)
{
	return -FI_EBADF;
}

static struct fi_ops closed_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = closed_close,
	.bind = closed_bind,
	.control = closed_control,
	.ops_open = closed_ops_open,
};

static ssize_t closed_cancel(fid_t fid, void *context)
{
	return -FI_EBADF;
}

static int closed_getopt(fid_t fid, int level, int optname, void *optval,
			 size_t *optlen)
{
	return -FI_EBADF;
}

static int closed_setopt(fid_t fid, int level, int optname,
			 const void *optval, size_t optlen)
{
	return -FI_EBADF;
}

static int closed_tx_ctx(struct fid_ep *sep, int index, struct fi_tx_attr *attr,
			 struct fid_ep **tx_ep, void *context)
{
	return -FI_EBADF;
}

static int closed_rx_ctx(struct fid_ep *sep, int index, struct fi_rx_attr *attr,
			 struct fid_ep **rx_ep, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_size_left(struct fid_ep *ep)
{
	return -FI_EBADF;
}

static struct fi_ops_ep closed_ep_ops = {
	.size = sizeof(struct fi_ops_ep),
	.cancel = closed_cancel,
	.getopt = closed_getopt,
	.setopt = closed_setopt,
	.tx_ctx = closed_tx_ctx,
	.rx_ctx = closed_rx_ctx,
	.rx_size_left = closed_size_left,
	.tx_size_left = closed_size_left,
};

static int closed_setname(fid_t fid, void *addr, size_t addrlen)
{
	return -FI_EBADF;
}

static int closed_getname(fid_t fid, void *addr, size_t *addrlen)
{
	return -FI_EBADF;
}

static int closed_getpeer(struct fid_ep *ep, void *addr, size_t *addrlen)
{
	return -FI_EBADF;
}

static int closed_connect(struct fid_ep *ep, const void *addr,
			  const void *param, size_t paramlen)
{
	return -FI_EBADF;
}

static int closed_listen(struct fid_pep *pep)
{
	return -FI_EBADF;
}

static int closed_accept(struct fid_ep *ep, const void *param,
			 size_t paramlen)
{
	return -FI_EBADF;
}

static int closed_reject(struct fid_pep *pep, fid_t handle, const void *param,
			 size_t paramlen)
{
	return -FI_EBADF;
}

static int closed_shutdown(struct fid_ep *ep, uint64_t flags)
{
	return -FI_EBADF;
}

static int closed_join(struct fid_ep *ep, const void *addr, uint64_t flags,
		       struct fid_mc **mc, void *context)
{
	return -FI_EBADF;
}

static struct fi_ops_cm closed_cm_ops = {
	.size = sizeof(struct fi_ops_cm),
	.setname = closed_setname,
	.getname = closed_getname,
	.getpeer = closed_getpeer,
	.connect = closed_connect,
	.listen = closed_listen,
	.accept = closed_accept,
	.reject = closed_reject,
	.shutdown = closed_shutdown,
	.join = closed_join,
};

/* ---- fi_msg ---- */

static ssize_t closed_msg_recv(struct fid_ep *ep, void *buf, size_t len,
			       void *desc, fi_addr_t src, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_msg_recvv(struct fid_ep *ep, const struct iovec *iov,
				void **desc, size_t count, fi_addr_t src,
				void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_msg_recvmsg(struct fid_ep *ep, const struct fi_msg *msg,
				  uint64_t flags)
{
	return -FI_EBADF;
}

static ssize_t closed_msg_send(struct fid_ep *ep, const void *buf, size_t len,
			       void *desc, fi_addr_t dest, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_msg_sendv(struct fid_ep *ep, const struct iovec *iov,
				void **desc, size_t count, fi_addr_t dest,
				void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_msg_sendmsg(struct fid_ep *ep, const struct fi_msg *msg,
				  uint64_t flags)
{
	return -FI_EBADF;
}

static ssize_t closed_msg_inject(struct fid_ep *ep, const void *buf,
				 size_t len, fi_addr_t dest)
{
	return -FI_EBADF;
}

static ssize_t closed_msg_senddata(struct fid_ep *ep, const void *buf,
				   size_t len, void *desc, uint64_t data,
				   fi_addr_t dest, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_msg_injectdata(struct fid_ep *ep, const void *buf,
				     size_t len, uint64_t data, fi_addr_t dest)
{
	return -FI_EBADF;
}

static struct fi_ops_msg closed_msg_ops = {
	.size = sizeof(struct fi_ops_msg),
	.recv = closed_msg_recv,
	.recvv = closed_msg_recvv,
	.recvmsg = closed_msg_recvmsg,
	.send = closed_msg_send,
	.sendv = closed_msg_sendv,
	.sendmsg = closed_msg_sendmsg,
	.inject = closed_msg_inject,
	.senddata = closed_msg_senddata,
	.injectdata = closed_msg_injectdata,
};

/* ---- fi_tagged ---- */

static ssize_t closed_tag_recv(struct fid_ep *ep, void *buf, size_t len,
			       void *desc, fi_addr_t src, uint64_t tag,
			       uint64_t ignore, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_tag_recvv(struct fid_ep *ep, const struct iovec *iov,
				void **desc, size_t count, fi_addr_t src,
				uint64_t tag, uint64_t ignore, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_tag_recvmsg(struct fid_ep *ep,
				  const struct fi_msg_tagged *msg,
				  uint64_t flags)
{
	return -FI_EBADF;
}

static ssize_t closed_tag_send(struct fid_ep *ep, const void *buf, size_t len,
			       void *desc, fi_addr_t dest, uint64_t tag,
			       void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_tag_sendv(struct fid_ep *ep, const struct iovec *iov,
				void **desc, size_t count, fi_addr_t dest,
				uint64_t tag, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_tag_sendmsg(struct fid_ep *ep,
				  const struct fi_msg_tagged *msg,
				  uint64_t flags)
{
	return -FI_EBADF;
}

static ssize_t closed_tag_inject(struct fid_ep *ep, const void *buf,
				 size_t len, fi_addr_t dest, uint64_t tag)
{
	return -FI_EBADF;
}

static ssize_t closed_tag_senddata(struct fid_ep *ep, const void *buf,
				   size_t len, void *desc, uint64_t data,
				   fi_addr_t dest, uint64_t tag, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_tag_injectdata(struct fid_ep *ep, const void *buf,
				     size_t len, uint64_t data, fi_addr_t dest,
				     uint64_t tag)
{
	return -FI_EBADF;
}

static struct fi_ops_tagged closed_tagged_ops = {
	.size = sizeof(struct fi_ops_tagged),
	.recv = closed_tag_recv,
	.recvv = closed_tag_recvv,
	.recvmsg = closed_tag_recvmsg,
	.send = closed_tag_send,
	.sendv = closed_tag_sendv,
	.sendmsg = closed_tag_sendmsg,
	.inject = closed_tag_inject,
	.senddata = closed_tag_senddata,
	.injectdata = closed_tag_injectdata,
};

/* ---- fi_rma ---- */

static ssize_t closed_rma_read(struct fid_ep *ep, void *buf, size_t len,
			       void *desc, fi_addr_t src, uint64_t addr,
			       uint64_t key, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_rma_readv(struct fid_ep *ep, const struct iovec *iov,
				void **desc, size_t count, fi_addr_t src,
				uint64_t addr, uint64_t key, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_rma_msg(struct fid_ep *ep, const struct fi_msg_rma *msg,
			      uint64_t flags)
{
	return -FI_EBADF;
}

static ssize_t closed_rma_write(struct fid_ep *ep, const void *buf, size_t len,
				void *desc, fi_addr_t dest, uint64_t addr,
				uint64_t key, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_rma_writev(struct fid_ep *ep, const struct iovec *iov,
				 void **desc, size_t count, fi_addr_t dest,
				 uint64_t addr, uint64_t key, void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_rma_inject(struct fid_ep *ep, const void *buf,
				 size_t len, fi_addr_t dest, uint64_t addr,
				 uint64_t key)
{
	return -FI_EBADF;
}

static ssize_t closed_rma_writedata(struct fid_ep *ep, const void *buf,
				    size_t len, void *desc, uint64_t data,
				    fi_addr_t dest, uint64_t addr, uint64_t key,
				    void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_rma_injectdata(struct fid_ep *ep, const void *buf,
				     size_t len, uint64_t data, fi_addr_t dest,
				     uint64_t addr, uint64_t key)
{
	return -FI_EBADF;
}

static struct fi_ops_rma closed_rma_ops = {
	.size = sizeof(struct fi_ops_rma),
	.read = closed_rma_read,
	.readv = closed_rma_readv,
	.readmsg = closed_rma_msg,
	.write = closed_rma_write,
	.writev = closed_rma_writev,
	.writemsg = closed_rma_msg,
	.inject = closed_rma_inject,
	.writedata = closed_rma_writedata,
	.injectdata = closed_rma_injectdata,
};

/* ---- fi_atomic ---- */

static ssize_t closed_at_write(struct fid_ep *ep, const void *buf,
			       size_t count, void *desc, fi_addr_t dest,
			       uint64_t addr, uint64_t key,
			       enum fi_datatype dt, enum fi_op op,
			       void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_at_writev(struct fid_ep *ep, const struct fi_ioc *iov,
				void **desc, size_t count, fi_addr_t dest,
				uint64_t addr, uint64_t key,
				enum fi_datatype dt, enum fi_op op,
				void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_at_writemsg(struct fid_ep *ep,
				  const struct fi_msg_atomic *msg,
				  uint64_t flags)
{
	return -FI_EBADF;
}

static ssize_t closed_at_inject(struct fid_ep *ep, const void *buf,
				size_t count, fi_addr_t dest, uint64_t addr,
				uint64_t key, enum fi_datatype dt,
				enum fi_op op)
{
	return -FI_EBADF;
}

static ssize_t closed_at_fetch(struct fid_ep *ep, const void *buf,
			       size_t count, void *desc, void *result,
			       void *result_desc, fi_addr_t dest,
			       uint64_t addr, uint64_t key,
			       enum fi_datatype dt, enum fi_op op,
			       void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_at_fetchv(struct fid_ep *ep, const struct fi_ioc *iov,
				void **desc, size_t count,
				struct fi_ioc *resultv, void **result_desc,
				size_t result_count, fi_addr_t dest,
				uint64_t addr, uint64_t key,
				enum fi_datatype dt, enum fi_op op,
				void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_at_fetchmsg(struct fid_ep *ep,
				  const struct fi_msg_atomic *msg,
				  struct fi_ioc *resultv, void **result_desc,
				  size_t result_count, uint64_t flags)
{
	return -FI_EBADF;
}

static ssize_t closed_at_compare(struct fid_ep *ep, const void *buf,
				 size_t count, void *desc, const void *compare,
				 void *compare_desc, void *result,
				 void *result_desc, fi_addr_t dest,
				 uint64_t addr, uint64_t key,
				 enum fi_datatype dt, enum fi_op op,
				 void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_at_comparev(struct fid_ep *ep, const struct fi_ioc *iov,
				  void **desc, size_t count,
				  const struct fi_ioc *comparev,
				  void **compare_desc, size_t compare_count,
				  struct fi_ioc *resultv, void **result_desc,
				  size_t result_count, fi_addr_t dest,
				  uint64_t addr, uint64_t key,
				  enum fi_datatype dt, enum fi_op op,
				  void *context)
{
	return -FI_EBADF;
}

static ssize_t closed_at_comparemsg(struct fid_ep *ep,
				    const struct fi_msg_atomic *msg,
				    const struct fi_ioc *comparev,
				    void **compare_desc, size_t compare_count,
				    struct fi_ioc *resultv, void **result_desc,
				    size_t result_count, uint64_t flags)
{
	return -FI_EBADF;
}

static int closed_at_valid(struct fid_ep *ep, enum fi_datatype dt,
			   enum fi_op op, size_t *count)
{
	return -FI_EBADF;
}

static struct fi_ops_atomic closed_atomic_ops = {
	.size = sizeof(struct fi_ops_atomic),
	.write = closed_at_write,
	.writev = closed_at_writev,
	.writemsg = closed_at_writemsg,
	.inject = closed_at_inject,
	.readwrite = closed_at_fetch,
	.readwritev = closed_at_fetchv,
	.readwritemsg = closed_at_fetchmsg,
	.compwrite = closed_at_compare,
	.compwritev = closed_at_comparev,
	.compwritemsg = closed_at_comparemsg,
	.writevalid = closed_at_valid,
	.readwritevalid = closed_at_valid,
	.compwritevalid = closed_at_valid,
};

/* ---- the tombstones ---- */

void usb4_ep_bury(struct usb4_ep *ep)
{
	struct usb4_ep *oldest;

	/* Nothing of the closed endpoint is reachable from its fid now. */
	memset((char *) ep + sizeof(ep->ep_fid), 0,
	       sizeof(*ep) - sizeof(ep->ep_fid));
	ep->ep_fid.fid.ops = &closed_fi_ops;
	ep->ep_fid.ops = &closed_ep_ops;
	ep->ep_fid.cm = &closed_cm_ops;
	ep->ep_fid.msg = &closed_msg_ops;
	ep->ep_fid.tagged = &closed_tagged_ops;
	ep->ep_fid.rma = &closed_rma_ops;
	ep->ep_fid.atomic = &closed_atomic_ops;
	pthread_mutex_lock(&tomb_lock);
	oldest = tombs[tomb_next];
	tombs[tomb_next] = ep;
	tomb_next = (tomb_next + 1) % USB4_EP_TOMBSTONES;
	pthread_mutex_unlock(&tomb_lock);
	free(oldest);
}

void usb4_ep_tombstones_free(void)
{
	pthread_mutex_lock(&tomb_lock);
	for (size_t i = 0; i < USB4_EP_TOMBSTONES; i++) {
		free(tombs[i]);
		tombs[i] = NULL;
	}
	tomb_next = 0;
	pthread_mutex_unlock(&tomb_lock);
}
