/*
 * RMA and atomics are not offered yet (getinfo refuses FI_RMA and FI_ATOMIC):
 * these tables answer -FI_ENOSYS so that a stray call fails cleanly instead of
 * jumping through a NULL pointer.
 */
#include "usb4_api.h"

static ssize_t rma_rw(struct fid_ep *ep, void *buf, size_t len, void *desc,
		      fi_addr_t addr, uint64_t raddr, uint64_t key, void *ctx)
{
	return -FI_ENOSYS;
}

static ssize_t rma_w(struct fid_ep *ep, const void *buf, size_t len, void *desc,
		     fi_addr_t addr, uint64_t raddr, uint64_t key, void *ctx)
{
	return -FI_ENOSYS;
}

static ssize_t rma_v(struct fid_ep *ep, const struct iovec *iov, void **desc,
		     size_t count, fi_addr_t addr, uint64_t raddr, uint64_t key,
		     void *ctx)
{
	return -FI_ENOSYS;
}

static ssize_t rma_msg(struct fid_ep *ep, const struct fi_msg_rma *msg,
		       uint64_t flags)
{
	return -FI_ENOSYS;
}

static ssize_t rma_inject(struct fid_ep *ep, const void *buf, size_t len,
			  fi_addr_t addr, uint64_t raddr, uint64_t key)
{
	return -FI_ENOSYS;
}

static ssize_t rma_wdata(struct fid_ep *ep, const void *buf, size_t len,
			 void *desc, uint64_t data, fi_addr_t addr,
			 uint64_t raddr, uint64_t key, void *ctx)
{
	return -FI_ENOSYS;
}

static ssize_t rma_injdata(struct fid_ep *ep, const void *buf, size_t len,
			   uint64_t data, fi_addr_t addr, uint64_t raddr,
			   uint64_t key)
{
	return -FI_ENOSYS;
}

struct fi_ops_rma usb4_rma_absent_ops = {
	.size = sizeof(struct fi_ops_rma),
	.read = rma_rw,
	.readv = rma_v,
	.readmsg = rma_msg,
	.write = rma_w,
	.writev = rma_v,
	.writemsg = rma_msg,
	.inject = rma_inject,
	.writedata = rma_wdata,
	.injectdata = rma_injdata,
};

static ssize_t at_write(struct fid_ep *ep, const void *buf, size_t count,
			void *desc, fi_addr_t addr, uint64_t raddr,
			uint64_t key, enum fi_datatype dt, enum fi_op op,
			void *ctx)
{
	return -FI_ENOSYS;
}

static ssize_t at_writev(struct fid_ep *ep, const struct fi_ioc *iov,
			 void **desc, size_t count, fi_addr_t addr,
			 uint64_t raddr, uint64_t key, enum fi_datatype dt,
			 enum fi_op op, void *ctx)
{
	return -FI_ENOSYS;
}

static ssize_t at_writemsg(struct fid_ep *ep, const struct fi_msg_atomic *msg,
			   uint64_t flags)
{
	return -FI_ENOSYS;
}

static ssize_t at_inject(struct fid_ep *ep, const void *buf, size_t count,
			 fi_addr_t addr, uint64_t raddr, uint64_t key,
			 enum fi_datatype dt, enum fi_op op)
{
	return -FI_ENOSYS;
}

static ssize_t at_rw(struct fid_ep *ep, const void *buf, size_t count,
		     void *desc, void *result, void *result_desc,
		     fi_addr_t addr, uint64_t raddr, uint64_t key,
		     enum fi_datatype dt, enum fi_op op, void *ctx)
{
	return -FI_ENOSYS;
}

static ssize_t at_rwv(struct fid_ep *ep, const struct fi_ioc *iov, void **desc,
		      size_t count, struct fi_ioc *resultv, void **result_desc,
		      size_t result_count, fi_addr_t addr, uint64_t raddr,
		      uint64_t key, enum fi_datatype dt, enum fi_op op,
		      void *ctx)
{
	return -FI_ENOSYS;
}

static ssize_t at_rwmsg(struct fid_ep *ep, const struct fi_msg_atomic *msg,
			struct fi_ioc *resultv, void **result_desc,
			size_t result_count, uint64_t flags)
{
	return -FI_ENOSYS;
}

static ssize_t at_cw(struct fid_ep *ep, const void *buf, size_t count,
		     void *desc, const void *compare, void *compare_desc,
		     void *result, void *result_desc, fi_addr_t addr,
		     uint64_t raddr, uint64_t key, enum fi_datatype dt,
		     enum fi_op op, void *ctx)
{
	return -FI_ENOSYS;
}

static ssize_t at_cwv(struct fid_ep *ep, const struct fi_ioc *iov, void **desc,
		      size_t count, const struct fi_ioc *comparev,
		      void **compare_desc, size_t compare_count,
		      struct fi_ioc *resultv, void **result_desc,
		      size_t result_count, fi_addr_t addr, uint64_t raddr,
		      uint64_t key, enum fi_datatype dt, enum fi_op op,
		      void *ctx)
{
	return -FI_ENOSYS;
}

static ssize_t at_cwmsg(struct fid_ep *ep, const struct fi_msg_atomic *msg,
			const struct fi_ioc *comparev, void **compare_desc,
			size_t compare_count, struct fi_ioc *resultv,
			void **result_desc, size_t result_count,
			uint64_t flags)
{
	return -FI_ENOSYS;
}

static int at_valid(struct fid_ep *ep, enum fi_datatype dt, enum fi_op op,
		    size_t *count)
{
	return -FI_ENOSYS;
}

struct fi_ops_atomic usb4_atomic_absent_ops = {
	.size = sizeof(struct fi_ops_atomic),
	.write = at_write,
	.writev = at_writev,
	.writemsg = at_writemsg,
	.inject = at_inject,
	.readwrite = at_rw,
	.readwritev = at_rwv,
	.readwritemsg = at_rwmsg,
	.compwrite = at_cw,
	.compwritev = at_cwv,
	.compwritemsg = at_cwmsg,
	.writevalid = at_valid,
	.readwritevalid = at_valid,
	.compwritevalid = at_valid,
};
