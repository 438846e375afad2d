/*
 * fi_cntr: success and error counts of completed operations.  Reading
 * progresses the bound endpoints and never blocks; wait polls briefly,
 * then sleeps on the counter's own waiter and its endpoints' links.
 */
#include <stdlib.h>
#include <stdbool.h>

#include "usb4_api.h"

static struct usb4_cntr *cntr_of(struct fid_cntr *fid)
{
	return usb4_container_of(fid, struct usb4_cntr, cntr_fid);
}

static uint64_t cntr_read(struct fid_cntr *fid)
{
	struct usb4_cntr *cntr = cntr_of(fid);

	usb4_cq_idle_enter(cntr);	/* a loop polling it and a CQ spins */
	usb4_lock_acquire(&cntr->domain->lock);
	usb4_ep_set_progress(&cntr->eps);
	usb4_lock_release(&cntr->domain->lock);
	return atomic_load(&cntr->counter.value);
}

static uint64_t cntr_readerr(struct fid_cntr *fid)
{
	struct usb4_cntr *cntr = cntr_of(fid);

	usb4_lock_acquire(&cntr->domain->lock);
	usb4_ep_set_progress(&cntr->eps);
	usb4_lock_release(&cntr->domain->lock);
	return atomic_load(&cntr->counter.err);
}

/* The application changes a counter: its waiters look again. */
static int cntr_add(struct fid_cntr *fid, uint64_t value)
{
	atomic_fetch_add(&cntr_of(fid)->counter.value, value);
	usb4_waiter_signal(&cntr_of(fid)->waiter);
	return 0;
}

static int cntr_set(struct fid_cntr *fid, uint64_t value)
{
	atomic_store(&cntr_of(fid)->counter.value, value);
	usb4_waiter_signal(&cntr_of(fid)->waiter);
	return 0;
}

static int cntr_adderr(struct fid_cntr *fid, uint64_t value)
{
	atomic_fetch_add(&cntr_of(fid)->counter.err, value);
	usb4_waiter_signal(&cntr_of(fid)->waiter);
	return 0;
}

static int cntr_seterr(struct fid_cntr *fid, uint64_t value)
{
	atomic_store(&cntr_of(fid)->counter.err, value);
	usb4_waiter_signal(&cntr_of(fid)->waiter);
	return 0;
}

/* What fi_cntr_wait waits for: the threshold, or a new error. */
struct cntr_goal {
	struct usb4_cntr *cntr;
	uint64_t threshold, err0;
};

static bool cntr_ready(void *arg)
{
	struct cntr_goal *g = arg;

	return atomic_load(&g->cntr->counter.value) >= g->threshold ||
	       atomic_load(&g->cntr->counter.err) != g->err0;
}

/* Returns 0 at threshold, -FI_EAVAIL when an error was counted meanwhile,
 * -FI_ETIMEDOUT when the time ran out. */
static int cntr_wait(struct fid_cntr *fid, uint64_t threshold, int timeout)
{
	struct usb4_cntr *cntr = cntr_of(fid);
	uint64_t deadline = usb4_deadline(timeout);
	struct cntr_goal goal = {
		.cntr = cntr, .threshold = threshold,
		.err0 = atomic_load(&cntr->counter.err),
	};
	int ret;

	usb4_lock_acquire(&cntr->domain->lock);
	for (;;) {
		usb4_ep_set_progress(&cntr->eps);
		if (cntr_ready(&goal)) {
			ret = atomic_load(&cntr->counter.value) >= threshold ?
			      0 : -FI_EAVAIL;
			break;
		}
		int left = usb4_ms_left(deadline);
		if (left == 0) {
			ret = -FI_ETIMEDOUT;
			break;
		}
		usb4_wait(cntr->domain, &cntr->waiter, &cntr->eps, left,
			  cntr_ready, &goal);
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
	usb4_ep_set_fini(&cntr->eps);
	usb4_waiter_fini(&cntr->waiter);
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
	usb4_waiter_init(&cntr->waiter);
	cntr->counter.waiter = &cntr->waiter;
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
