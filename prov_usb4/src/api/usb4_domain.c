/*
 * fi_domain: owns the lock that guards every object opened from it, and the
 * memory registrations.
 */
#include <stdlib.h>

#include "usb4_api.h"

static int domain_close(struct fid *fid)
{
	struct usb4_domain *domain =
		usb4_container_of(fid, struct usb4_domain, domain_fid.fid);

	if (atomic_load(&domain->ref))
		return -FI_EBUSY;
	usb4_progress_stop(domain);
	atomic_fetch_sub(&domain->fabric->ref, 1);
	usb4_core_domain_close(&domain->core);
	usb4_lock_destroy(&domain->lock);
	free(domain);
	return 0;
}

static int no_scalable_ep(struct fid_domain *domain, struct fi_info *info,
			  struct fid_ep **sep, void *context)
{
	return -FI_ENOSYS;
}

static int no_poll_open(struct fid_domain *domain, struct fi_poll_attr *attr,
			struct fid_poll **pollset)
{
	return -FI_ENOSYS;
}

static int no_stx_ctx(struct fid_domain *domain, struct fi_tx_attr *attr,
		      struct fid_stx **stx, void *context)
{
	return -FI_ENOSYS;
}

static int no_srx_ctx(struct fid_domain *domain, struct fi_rx_attr *attr,
		      struct fid_ep **rx_ep, void *context)
{
	return -FI_ENOSYS;
}

static int no_query_collective(struct fid_domain *domain,
			       enum fi_collective_op coll,
			       struct fi_collective_attr *attr, uint64_t flags)
{
	return -FI_ENOSYS;
}

static struct fi_ops domain_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = domain_close,
	.bind = usb4_no_bind,
	.control = usb4_no_control,
	.ops_open = usb4_no_ops_open,
};

static struct fi_ops_domain domain_ops = {
	.size = sizeof(struct fi_ops_domain),
	.av_open = usb4_av_open,
	.cq_open = usb4_cq_open,
	.endpoint = usb4_ep_open,
	.scalable_ep = no_scalable_ep,
	.cntr_open = usb4_cntr_open,
	.poll_open = no_poll_open,
	.stx_ctx = no_stx_ctx,
	.srx_ctx = no_srx_ctx,
	.query_atomic = usb4_query_atomic,
	.query_collective = no_query_collective,
};

struct usb4_domain *usb4_domain_of(struct fid_domain *fid)
{
	if (!fid || fid->fid.fclass != FI_CLASS_DOMAIN ||
	    fid->fid.ops != &domain_fi_ops)
		return NULL;
	return usb4_container_of(fid, struct usb4_domain, domain_fid);
}

uint64_t usb4_mr_mode_bits(uint64_t mr_mode)
{
	if (mr_mode == USB4_MR_BASIC)
		return USB4_MR_BASIC_BITS;
	if (mr_mode == USB4_MR_SCALABLE)
		return 0;
	return mr_mode;
}

/* Keeps what the domain is opened with (NULL info: our defaults). */
static void domain_remember(struct usb4_domain *domain,
			    const struct fi_info *info)
{
	const struct fi_domain_attr *attr = info ? info->domain_attr : NULL;

	domain->opened = (struct usb4_domain_opened) {
		.threading = attr && attr->threading ? attr->threading :
						       FI_THREAD_SAFE,
		.mr_mode = attr ? (uint64_t) attr->mr_mode : 0,
		.caps = info ? info->caps : 0,
		.domain_caps = attr ? attr->caps : 0,
		.resource_mgmt = attr ? attr->resource_mgmt : FI_RM_UNSPEC,
		.av_type = attr ? attr->av_type : FI_AV_UNSPEC,
		.auto_progress = attr &&
				 (attr->data_progress == FI_PROGRESS_AUTO ||
				  attr->control_progress == FI_PROGRESS_AUTO),
	};
	domain->threading = domain->opened.threading;
	domain->mr_mode = usb4_mr_mode_bits(domain->opened.mr_mode);
	domain->caps = domain->opened.caps;
}

int usb4_domain_open(struct fid_fabric *fabric_fid, struct fi_info *info,
		     struct fid_domain **domainp, void *context)
{
	struct usb4_fabric *fabric =
		usb4_container_of(fabric_fid, struct usb4_fabric, fabric_fid);
	struct usb4_domain *domain;
	int ret;

	ret = info && info->domain_attr ?
	      usb4_check_domain_attr(info->domain_attr) : 0;
	if (ret)
		return ret;
	domain = calloc(1, sizeof(*domain));
	if (!domain)
		return -FI_ENOMEM;
	ret = info && info->domain_attr ?
	      usb4_auth_key_resolve(info->domain_attr->auth_key,
				    info->domain_attr->auth_key_size,
				    &domain->core.key) :
	      usb4_auth_key_resolve(NULL, 0, &domain->core.key);
	if (!ret)
		ret = usb4_core_domain_open(&domain->core, usb4_params.mr_max);
	if (ret) {
		free(domain);
		return ret;
	}
	domain_remember(domain, info);
	domain->core.keys_drawn = domain->mr_mode & FI_MR_PROV_KEY;
	domain->addr_format = info && info->addr_format == FI_ADDR_STR ?
			      FI_ADDR_STR : FI_FORMAT_UNSPEC;
	/* Only FI_THREAD_DOMAIN promises that nothing runs concurrently. */
	usb4_lock_init(&domain->lock, domain->threading != FI_THREAD_DOMAIN);
	usb4_list_init(&domain->mrs);
	usb4_list_init(&domain->eps);
	atomic_init(&domain->ref, 0);
	domain->fabric = fabric;
	atomic_fetch_add(&fabric->ref, 1);
	domain->domain_fid.fid.fclass = FI_CLASS_DOMAIN;
	domain->domain_fid.fid.context = context;
	domain->domain_fid.fid.ops = &domain_fi_ops;
	domain->domain_fid.ops = &domain_ops;
	domain->domain_fid.mr = &usb4_mr_ops;
	*domainp = &domain->domain_fid;
	return 0;
}
