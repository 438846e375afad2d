/*
 * Waiting without spinning: poll the bound endpoints for spin_us, then sleep
 * in the kernel on the first endpoint's inbox doorbell.  On a 2-core machine
 * a spinning waiter steals the core its peer needs.
 */
#include <sched.h>
#include <time.h>

#include "usb4_api.h"

/* Sleep slice when several endpoints (or none) could wake us. */
#define USB4_WAIT_SLICE_MS	1

bool usb4_progress_eps(struct usb4_core_ep **eps, size_t count)
{
	int n = 0;

	for (size_t i = 0; i < count; i++)
		n += usb4_core_progress(eps[i]);
	return n > 0;
}

/* Called with the domain lock held; returns with it held. */
void usb4_wait_eps(struct usb4_domain *domain, struct usb4_core_ep **eps,
		   size_t count, int timeout_ms)
{
	uint64_t spin_end = usb4_now_ns() + (uint64_t) usb4_params.spin_us * 1000;
	int slice = count == 1 ? timeout_ms : USB4_WAIT_SLICE_MS;

	while (usb4_now_ns() < spin_end) {
		if (usb4_progress_eps(eps, count))
			return;
		usb4_lock_release(&domain->lock);
		sched_yield();
		usb4_lock_acquire(&domain->lock);
	}
	if (timeout_ms >= 0 && (slice < 0 || slice > timeout_ms))
		slice = timeout_ms;
	usb4_lock_release(&domain->lock);
	if (count) {
		usb4_core_wait(eps[0], slice);
	} else {
		struct timespec ts = { 0, USB4_WAIT_SLICE_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	usb4_lock_acquire(&domain->lock);
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
