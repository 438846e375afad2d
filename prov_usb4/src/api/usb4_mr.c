/*
 * Memory registration.
 *
 * Two-sided traffic works with any descriptor, NULL included.  A region with
 * FI_REMOTE_READ or FI_REMOTE_WRITE is published through the core, so that
 * initiators can check key, rights and bounds; fi_close revokes it and returns
 * only when no initiator still uses it.  The descriptor (fi_mr_desc) is the
 * usb4_mr itself.
 * Keys: with FI_MR_PROV_KEY we pick a random 64-bit key, else the caller's
 * requested_key is used and must be unique within the domain (-FI_ENOKEY).
 * Every region sits on domain->mrs, guarded by domain->lock, so a key can be
 * looked up and checked for uniqueness.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_api.h"

#define USB4_MR_ACCESS	(FI_SEND | FI_RECV | FI_READ | FI_WRITE | \
			 FI_REMOTE_READ | FI_REMOTE_WRITE)

static struct usb4_mr *usb4_mr_of_link(struct usb4_list *it)
{
	return usb4_container_of(it, struct usb4_mr, link);
}

/* Caller holds domain->lock. */
static bool usb4_mr_key_used(struct usb4_domain *domain, uint64_t key)
{
	struct usb4_list *it;

	usb4_list_foreach(&domain->mrs, it)
		if (usb4_mr_of_link(it)->mr_fid.key == key)
			return true;
	return false;
}

/* Regions peers may access are published; one contiguous buffer each. */
static int usb4_mr_publish(struct usb4_mr *mr, uint64_t key)
{
	uint64_t remote = mr->access & (FI_REMOTE_READ | FI_REMOTE_WRITE);

	if (!remote)
		return 0;
	if (mr->iov_count != 1)
		return -FI_EINVAL;
	return usb4_core_mr_publish(&mr->domain->core, key,
				    mr->iov[0].iov_base, mr->iov[0].iov_len,
				    mr->offset, remote, &mr->core);
}

/* Picks or checks the key and links mr into the domain. */
static int usb4_mr_insert(struct usb4_mr *mr, uint64_t requested_key)
{
	struct usb4_domain *domain = mr->domain;
	uint64_t key = requested_key;
	int ret = 0;

	usb4_lock_acquire(&domain->lock);
	if (domain->mr_mode & FI_MR_PROV_KEY) {
		/* 2^-64 collisions, but a duplicate key would alias regions. */
		do
			key = usb4_random64();
		while (usb4_mr_key_used(domain, key));
	} else if (usb4_mr_key_used(domain, key)) {
		ret = -FI_ENOKEY;
	}
	if (!ret)
		ret = usb4_mr_publish(mr, key);
	if (!ret) {
		mr->mr_fid.key = key;
		usb4_list_insert_tail(&domain->mrs, &mr->link);
	}
	usb4_lock_release(&domain->lock);
	return ret;
}

/*
 * After fi_close(mr) returns no byte of the region is touched: transfers
 * of this domain's endpoints that move its bytes as frames (to or from
 * other hosts) end now, with FI_ECANCELED at both ends; the entry dies so no
 * new access pins it; then, without the domain lock, we wait for accesses
 * other processes of this host hold pinned (a copy's duration).
 */
static int usb4_mr_close(struct fid *fid)
{
	struct usb4_mr *mr = usb4_container_of(fid, struct usb4_mr,
					       mr_fid.fid);
	struct usb4_domain *domain = mr->domain;
	struct usb4_list *it;

	usb4_lock_acquire(&domain->lock);
	usb4_list_remove(&mr->link);
	if (mr->core.published) {
		usb4_list_foreach(&domain->eps, it)
			usb4_core_ep_forget_region(&usb4_container_of(it,
				struct usb4_ep, dom_link)->core, mr->core.slot);
		usb4_mr_table_revoke(domain->core.mrs, mr->core.slot);
	}
	usb4_lock_release(&domain->lock);
	if (mr->core.published)
		usb4_mr_table_drain(domain->core.mrs, mr->core.slot);
	atomic_fetch_sub(&domain->ref, 1);
	free(mr);
	return 0;
}

/* No FI_MR_ENDPOINT or FI_RMA_EVENT-per-region: fi_mr_bind and control are
 * not needed by any mode we offer. */
static struct fi_ops usb4_mr_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = usb4_mr_close,
	.bind = usb4_no_bind,
	.control = usb4_no_control,
	.ops_open = usb4_no_ops_open,
};

/*
 * The buffers: fi_mr(3) wants len > 0, so a registration of no bytes is
 * refused rather than made into a region nobody can reach.  Every entry
 * with bytes must be mapped here throughout (usb4_mem_check); a range that
 * wraps, whether the buffer's or, with offset addressing, the one peers
 * name, is refused before it can turn a bounds check into a way out.
 */
static int usb4_mr_check_buffers(const struct fi_mr_attr *attr,
				 uint64_t mr_mode)
{
	size_t total = 0;
	int ret;

	for (size_t i = 0; i < attr->iov_count; i++) {
		const struct iovec *v = &attr->mr_iov[i];

		ret = usb4_mem_check(v->iov_base, v->iov_len);
		if (ret) {
			USB4_WARN(FI_LOG_MR, "fi_mr_reg: [%p, +%zu) is not "
				  "memory of this process\n", v->iov_base,
				  v->iov_len);
			return ret;
		}
		if (v->iov_len > SIZE_MAX - total)
			return -FI_EINVAL;
		total += v->iov_len;
	}
	if (!total) {
		USB4_WARN(FI_LOG_MR, "fi_mr_reg: length 0\n");
		return -FI_EINVAL;
	}
	if (!(mr_mode & FI_MR_VIRT_ADDR) &&
	    usb4_range_wraps(attr->offset, total))
		return -FI_EINVAL;
	return 0;
}

static int usb4_mr_check(const struct fi_mr_attr *attr, uint64_t flags,
			 uint64_t mr_mode)
{
	if (!attr || (attr->iov_count && !attr->mr_iov))
		return -FI_EINVAL;
	if (!attr->iov_count || attr->iov_count > USB4_IOV_LIMIT)
		return -FI_EINVAL;
	if (attr->access & ~(uint64_t) USB4_MR_ACCESS)
		return -FI_EINVAL;
	if (flags)
		return -FI_EBADFLAGS;
	if (attr->auth_key_size || attr->auth_key)
		return -FI_EINVAL;	/* no authorization keys */
	return usb4_mr_check_buffers(attr, mr_mode);
}

/* Host memory only: any other iface (what a GPU build of a collective
 * plugin registers its buffers with, or one newer than this build knows)
 * is not implemented, said in the log with the way out. */
static int usb4_mr_check_iface(const struct fi_mr_attr *attr)
{
	if (attr->iface == FI_HMEM_SYSTEM)
		return 0;
	USB4_WARN(FI_LOG_MR, "fi_mr_regattr: iface %d is not host memory: "
		  "usb4 registers host memory only (FI_HMEM_SYSTEM); stage "
		  "device buffers through host memory\n", (int) attr->iface);
	return -FI_ENOSYS;
}

static int usb4_mr_regattr(struct fid *fid, const struct fi_mr_attr *attr,
			   uint64_t flags, struct fid_mr **mr_fid)
{
	struct usb4_domain *domain = usb4_container_of(fid, struct usb4_domain,
						       domain_fid.fid);
	struct usb4_mr *mr;
	int ret;

	/* Before the buffer checks: a device address is never touched. */
	ret = usb4_mr_check_iface(attr);
	if (ret)
		return ret;
	ret = usb4_mr_check(attr, flags, domain->mr_mode);
	if (ret)
		return ret;
	mr = calloc(1, sizeof(*mr));
	if (!mr)
		return -FI_ENOMEM;
	mr->domain = domain;
	memcpy(mr->iov, attr->mr_iov, attr->iov_count * sizeof(*mr->iov));
	mr->iov_count = attr->iov_count;
	mr->access = attr->access;
	/* Peers address the region by virtual address or from the offset. */
	mr->offset = domain->mr_mode & FI_MR_VIRT_ADDR ?
		     (uint64_t) (uintptr_t) attr->mr_iov[0].iov_base :
		     attr->offset;
	mr->mr_fid.fid = (struct fid) { .fclass = FI_CLASS_MR,
					.context = attr->context,
					.ops = &usb4_mr_fi_ops };
	mr->mr_fid.mem_desc = mr;
	ret = usb4_mr_insert(mr, attr->requested_key);
	if (ret) {
		free(mr);
		return ret;
	}
	atomic_fetch_add(&domain->ref, 1);
	*mr_fid = &mr->mr_fid;
	return 0;
}

static int usb4_mr_regv(struct fid *fid, const struct iovec *iov, size_t count,
			uint64_t access, uint64_t offset, uint64_t requested_key,
			uint64_t flags, struct fid_mr **mr, void *context)
{
	struct fi_mr_attr attr = {
		.mr_iov = iov, .iov_count = count, .access = access,
		.offset = offset, .requested_key = requested_key,
		.context = context, .iface = FI_HMEM_SYSTEM,
	};

	return usb4_mr_regattr(fid, &attr, flags, mr);
}

static int usb4_mr_reg(struct fid *fid, const void *buf, size_t len,
		       uint64_t access, uint64_t offset, uint64_t requested_key,
		       uint64_t flags, struct fid_mr **mr, void *context)
{
	struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };

	return usb4_mr_regv(fid, &iov, 1, access, offset, requested_key,
			    flags, mr, context);
}

struct fi_ops_mr usb4_mr_ops = {
	.size = sizeof(struct fi_ops_mr),
	.reg = usb4_mr_reg,
	.regv = usb4_mr_regv,
	.regattr = usb4_mr_regattr,
};
