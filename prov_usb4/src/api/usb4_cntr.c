/*
 * fi_cntr: success and error counts of completed operations.  Reading
 * progresses the bound endpoints; wait polls briefly, then sleeps.
 */
#include <stdlib.h>

#include "usb4_api.h"

static struct usb4_cntr *cntr_of(struct fid_cntr *fid)
{
	return usb4_container_of(fid, struct usb4_cntr, cntr_fid);
}

void usb4_cntr_progress(struct usb4_cntr *cntr)
{
	usb4_progress_eps(cntr->eps, cntr->ep_count);
}

int usb4_cntr_bind_ep(struct usb4_cntr *cntr, struct usb4_core_ep *ep)
{
	return usb4_ep_list_add(cntr->eps, &cntr->ep_count, ep);
}

void usb4_cntr_unbind_ep(struct usb4_cntr *cntr, struct usb4_core_ep *ep)
{
	usb4_ep_list_del(cntr->eps, &cntr->ep_count, ep);
}

static uint64_t cntr_read(struct fid_cntr *fid)
{
	struct usb4_cntr *cntr = cntr_of(fid);

	usb4_lock_acquire(&cntr->domain->lock);
	usb4_cntr_progress(cntr);
	usb4_lock_release(&cntr->domain->lock);
	return atomic_load(&cntr->counter.value);
}

static uint64_t cntr_readerr(struct fid_cntr *fid)
{
	struct usb4_cntr *cntr = cntr_of(fid);

	usb4_lock_acquire(&cntr->domain->lock);
	usb4_cntr_progress(cntr);
	usb4_lock_release(&cntr->domain->lock);
	return atomic_load(&cntr->counter.err);
}

static int cntr_add(struct fid_cntr *fid, uint64_t value)
{
	atomic_fetch_add(&cntr_of(fid)->counter.value, value);
	return 0;
}

static int cntr_set(struct fid_cntr *fid, uint64_t value)
{
	atomic_store(&cntr_of(fid)->counter.value, value);
	return 0;
}

static int cntr_adderr(struct fid_cntr *fid, uint64_t value)
{
	atomic_fetch_add(&cntr_of(fid)->counter.err, value);
	return 0;
}

static int cntr_seterr(struct fid_cntr *fid, uint64_t value)
{
	atomic_store(&cntr_of(fid)->counter.err, value);
	return 0;
}

/* Returns 0 at threshold, -FI_EAVAIL when an error was counted meanwhile,
 * -FI_ETIMEDOUT when the time ran out. */
static int cntr_wait(struct fid_cntr *fid, uint64_t threshold, int timeout)
{
	struct usb4_cntr *cntr = cntr_of(fid);
	uint64_t deadline = usb4_deadline(timeout);
	uint64_t err0 = atomic_load(&cntr->counter.err);
	int ret;

	usb4_lock_acquire(&cntr->domain->lock);
	for (;;) {
		usb4_cntr_progress(cntr);
		if (atomic_load(&cntr->counter.value) >= threshold) {
			ret = 0;
			break;
		}
		if (atomic_load(&cntr->counter.err) != err0) {
			ret = -FI_EAVAIL;
			break;
		}
		int left = usb4_ms_left(deadline);
		if (left == 0) {
			ret = -FI_ETIMEDOUT;
			break;
		}
		usb4_wait_eps(cntr->domain, cntr->eps, cntr->ep_count, left);
	}
	usb4_lock_release(&cntr->domain->lock);
	return ret;
}

static int cntr_close(struct fid *fid)
{
	struct usb4_cntr *cntr =
		usb4_container_of(fid, struct usb4_cntr, cntr_fid.fid);

	if (atomic_load(&cntr->ref))
		return -FI_EBUSY;
	atomic_fetch_sub(&cntr->domain->ref, 1);
	free(cntr);
	return 0;
}

static struct fi_ops cntr_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = cntr_close,
	.bind = usb4_no_bind,
	.control = usb4_no_control,
	.ops_open = usb4_no_ops_open,
};

static struct fi_ops_cntr cntr_ops = {
	.size = sizeof(struct fi_ops_cntr),
	.read = cntr_read,
	.readerr = cntr_readerr,
	.add = cntr_add,
	.set = cntr_set,
	.wait = cntr_wait,
	.adderr = cntr_adderr,
	.seterr = cntr_seterr,
};

int usb4_cntr_open(struct fid_domain *domain_fid, struct fi_cntr_attr *attr,
		   struct fid_cntr **cntrp, void *context)
{
	struct usb4_domain *domain =
		usb4_container_of(domain_fid, struct usb4_domain, domain_fid);
	struct usb4_cntr *cntr;

	if (attr && (attr->events != FI_CNTR_EVENTS_COMP || attr->flags))
		return -FI_ENOSYS;
	if (attr && attr->wait_obj != FI_WAIT_NONE &&
	    attr->wait_obj != FI_WAIT_UNSPEC)
		return -FI_ENOSYS;
	cntr = calloc(1, sizeof(*cntr));
	if (!cntr)
		return -FI_ENOMEM;
	cntr->domain = domain;
	atomic_init(&cntr->counter.value, 0);
	atomic_init(&cntr->counter.err, 0);
	atomic_init(&cntr->ref, 0);
	atomic_fetch_add(&domain->ref, 1);
	cntr->cntr_fid.fid.fclass = FI_CLASS_CNTR;
	cntr->cntr_fid.fid.context = context;
	cntr->cntr_fid.fid.ops = &cntr_fi_ops;
	cntr->cntr_fid.ops = &cntr_ops;
	*cntrp = &cntr->cntr_fid;
	return 0;
}
