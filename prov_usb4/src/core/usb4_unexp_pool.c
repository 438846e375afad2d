/*
 * Entries of unexpected messages kept for reuse.  A message that arrives
 * before its receive would cost an allocation of its entry, another of
 * its payload and two frees when a receive takes it: about 500
 * instructions, more than the rest of its way in.  Taken entries wait
 * here instead, at most USB4_UNEXP_POOL_MAX of them, and a payload of up
 * to USB4_UNEXP_INLINE bytes lives in its entry (usb4_unexp.small).  The
 * unexpected budget (usb4_unexp_budget.c) still bounds what the queue
 * holds; the pool only bounds what it keeps idle.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_core.h"

void usb4_unexp_pool_init(struct usb4_unexp_pool *p)
{
	usb4_list_init(&p->idle);
	p->count = 0;
}

/* A zeroed entry: an idle one, else a new one (NULL: no memory).  An idle
 * one's riov and small are left as they are: they are read only as far as
 * riov_count and total_len say, and those bytes are written when the
 * entry is filled (zeroing the 320 bytes cost more than the rest of the
 * message's queueing). */
struct usb4_unexp *usb4_unexp_get(struct usb4_unexp_pool *p)
{
	struct usb4_unexp *u;

	if (usb4_list_empty(&p->idle))
		return calloc(1, sizeof(*u));
	u = usb4_container_of(p->idle.next, struct usb4_unexp, link);
	usb4_list_remove(&u->link);
	p->count--;
	memset(u, 0, offsetof(struct usb4_unexp, riov));
	memset(&u->ctrl, 0, sizeof(u->ctrl));
	return u;
}

/* u is done with (its payload freed if it had one of its own). */
void usb4_unexp_put(struct usb4_unexp_pool *p, struct usb4_unexp *u)
{
	if (p->count >= USB4_UNEXP_POOL_MAX) {
		free(u);
		return;
	}
	usb4_list_insert_tail(&p->idle, &u->link);
	p->count++;
}

void usb4_unexp_pool_fini(struct usb4_unexp_pool *p)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&p->idle, it, tmp) {
		usb4_list_remove(it);
		free(usb4_container_of(it, struct usb4_unexp, link));
	}
	p->count = 0;
}
