/*
 * Waiting without spinning, for fi_cq_sread and fi_cntr_wait: progress the
 * bound endpoints for spin_us, then sleep in the kernel on the CQ's or
 * counter's own waiter together with the endpoints' links, so that news of
 * either wakes the sleeper and nothing else does.  On a 2-core machine a
 * spinning waiter steals the core its peer needs.  Only these calls (and
 * the application's own poll of what they expose) ever block.
 */
#include <poll.h>
#include <sched.h>
#include <stdlib.h>

#include "usb4_api.h"

/* Fds watched without allocating; more endpoints allocate. */
#define USB4_WAIT_FDS_STACK	32

int usb4_ep_set_add(struct usb4_ep_set *set, struct usb4_core_ep *ep)
{
	struct usb4_core_ep **eps;

	for (size_t i = 0; i < set->count; i++)
		if (set->eps[i] == ep)
			return 0;
	if (set->count == set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 4;

		eps = realloc(set->eps, cap * sizeof(*eps));
		if (!eps)
			return -FI_ENOMEM;
		set->eps = eps;
		set->cap = cap;
	}
	set->eps[set->count++] = ep;
	return 0;
}

void usb4_ep_set_del(struct usb4_ep_set *set, struct usb4_core_ep *ep)
{
	for (size_t i = 0; i < set->count; i++)
		if (set->eps[i] == ep) {
			set->eps[i] = set->eps[--set->count];
			return;
		}
}

void usb4_ep_set_fini(struct usb4_ep_set *set)
{
	free(set->eps);
	set->eps = NULL;
	set->count = set->cap = 0;
}

int usb4_ep_set_progress(const struct usb4_ep_set *set)
{
	int frames = 0;

	for (size_t i = 0; i < set->count; i++)
		frames += usb4_core_progress(set->eps[i]);
	return frames;
}

/* Milliseconds left until deadline_ns (-1 for none). */
int usb4_ms_left(uint64_t deadline_ns)
{
	uint64_t now;

	if (!deadline_ns)
		return -1;
	now = usb4_now_ns();
	return now >= deadline_ns ? 0 : (int) ((deadline_ns - now + 999999) / 1000000);
}

uint64_t usb4_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? 0 : usb4_now_ns() + (uint64_t) timeout_ms * 1000000;
}

/* Progresses for spin_us, yielding between rounds; true when ready. */
static bool spin(struct usb4_domain *domain, const struct usb4_ep_set *eps,
		 bool (*ready)(void *arg), void *arg)
{
	uint64_t end = usb4_now_ns() + (uint64_t) usb4_params.spin_us * 1000;

	while (usb4_now_ns() < end) {
		usb4_ep_set_progress(eps);
		if (ready(arg))
			return true;
		usb4_lock_release(&domain->lock);
		sched_yield();
		usb4_lock_acquire(&domain->lock);
	}
	return false;
}

/*
 * What one sleep watches: the fds, and the endpoints armed for it, kept here
 * rather than looked up again afterwards: an endpoint may leave the CQ while
 * we sleep (its fi_close waits until we let go of it).
 */
struct sleep_plan {
	struct pollfd *fds;
	struct usb4_core_ep **armed;
	int max, nfds;
	size_t narmed;
};

static void disarm(struct sleep_plan *p)
{
	while (p->narmed)
		usb4_core_sleep_end(p->armed[--p->narmed]);
}

/* Arms every endpoint's links; false (nothing armed) when one already has
 * news. */
static bool arm(const struct usb4_ep_set *eps, struct sleep_plan *p,
		int *timeout_ms)
{
	for (size_t i = 0; i < eps->count; i++) {
		if (!usb4_core_sleep_begin(eps->eps[i], p->fds, p->max,
					   &p->nfds, timeout_ms)) {
			disarm(p);
			return false;
		}
		p->armed[p->narmed++] = eps->eps[i];
	}
	return true;
}

static void note_app_sleeps(const struct sleep_plan *p, bool asleep)
{
	for (size_t i = 0; i < p->narmed; i++)
		usb4_core_app_sleeps(p->armed[i], asleep);
}

/* One sleep: armed, re-checked, then poll without the lock. */
static void sleep_once(struct usb4_domain *domain, struct usb4_waiter *waiter,
		       const struct usb4_ep_set *eps, struct sleep_plan *p,
		       int timeout_ms, bool (*ready)(void *arg), void *arg)
{
	struct usb4_sleeper sleeper;
	int fd = usb4_waiter_sleep_begin(waiter, &sleeper);

	if (fd < 0)
		return;		/* no eventfd: spin instead */
	p->fds[0] = (struct pollfd) { .fd = fd, .events = POLLIN };
	p->nfds = 1;
	if (!ready(arg) && arm(eps, p, &timeout_ms)) {
		note_app_sleeps(p, true);
		usb4_lock_release(&domain->lock);
		poll(p->fds, p->nfds, timeout_ms);
		usb4_lock_acquire(&domain->lock);
		note_app_sleeps(p, false);
		disarm(p);
	}
	usb4_waiter_sleep_end(waiter, &sleeper);
}

void usb4_wait(struct usb4_domain *domain, struct usb4_waiter *waiter,
	       const struct usb4_ep_set *eps, int timeout_ms,
	       bool (*ready)(void *arg), void *arg)
{
	if (!spin(domain, eps, ready, arg))
		usb4_wait_block(domain, waiter, eps, timeout_ms, ready, arg);
}

void usb4_wait_block(struct usb4_domain *domain, struct usb4_waiter *waiter,
		     const struct usb4_ep_set *eps, int timeout_ms,
		     bool (*ready)(void *arg), void *arg)
{
	struct pollfd stack_fds[USB4_WAIT_FDS_STACK];
	struct usb4_core_ep *stack_eps[USB4_WAIT_FDS_STACK];
	struct sleep_plan p = { .fds = stack_fds, .armed = stack_eps, .max = 1 };

	for (size_t i = 0; i < eps->count; i++)
		p.max += usb4_core_wait_fds(eps->eps[i]);
	if (p.max > USB4_WAIT_FDS_STACK || eps->count > USB4_WAIT_FDS_STACK) {
		p.fds = malloc(p.max * sizeof(*p.fds));
		p.armed = malloc(eps->count * sizeof(*p.armed));
		if (!p.fds || !p.armed)
			goto out_free;	/* the caller's loop polls again */
	}
	sleep_once(domain, waiter, eps, &p, timeout_ms, ready, arg);
out_free:
	if (p.fds != stack_fds) {
		free(p.fds);
		free(p.armed);
	}
}
