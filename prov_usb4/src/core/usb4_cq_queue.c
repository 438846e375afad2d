/*
 * Completion storage behind a CQ: two growable rings, one for successes and
 * one for errors.  Growing instead of refusing means a completion is never
 * lost, whatever the application's CQ size hint was.
 */
#include <stdlib.h>
#include <string.h>

#include "usb4_core.h"

int usb4_cq_queue_init(struct usb4_cq_queue *q, size_t cap)
{
	memset(q, 0, sizeof(*q));
	q->cap = cap ? cap : 64;
	q->ring = calloc(q->cap, sizeof(*q->ring));
	q->err_cap = 16;
	q->errs = calloc(q->err_cap, sizeof(*q->errs));
	if (!q->ring || !q->errs) {
		usb4_cq_queue_fini(q);
		return -FI_ENOMEM;
	}
	return 0;
}

void usb4_cq_queue_fini(struct usb4_cq_queue *q)
{
	free(q->ring);
	free(q->errs);
	q->ring = NULL;
	q->errs = NULL;
}

/* Doubles a ring of elem-sized entries, unrolling it to start at index 0. */
static int ring_grow(void **ring, size_t *cap, size_t *head, size_t count,
		     size_t elem)
{
	size_t new_cap = *cap * 2;
	char *new_ring = malloc(new_cap * elem);
	char *old = *ring;

	if (!new_ring)
		return -FI_ENOMEM;
	for (size_t i = 0; i < count; i++)
		memcpy(new_ring + i * elem, old + ((*head + i) % *cap) * elem,
		       elem);
	free(old);
	*ring = new_ring;
	*cap = new_cap;
	*head = 0;
	return 0;
}

static void kick(struct usb4_cq_queue *q)
{
	if (q->waker)
		usb4_shm_link_kick(q->waker);
}

int usb4_cq_queue_push(struct usb4_cq_queue *q, const struct usb4_cqe *e)
{
	if (q->count == q->cap &&
	    ring_grow((void **) &q->ring, &q->cap, &q->head, q->count,
		      sizeof(*q->ring)))
		return -FI_ENOMEM;
	q->ring[(q->head + q->count) % q->cap] = *e;
	q->count++;
	kick(q);
	return 0;
}

int usb4_cq_queue_push_err(struct usb4_cq_queue *q,
			   const struct usb4_cqe_err *e)
{
	if (q->err_count == q->err_cap &&
	    ring_grow((void **) &q->errs, &q->err_cap, &q->err_head,
		      q->err_count, sizeof(*q->errs)))
		return -FI_ENOMEM;
	q->errs[(q->err_head + q->err_count) % q->err_cap] = *e;
	q->err_count++;
	kick(q);
	return 0;
}

const struct usb4_cqe *usb4_cq_queue_peek(const struct usb4_cq_queue *q)
{
	return q->count ? &q->ring[q->head] : NULL;
}

void usb4_cq_queue_pop(struct usb4_cq_queue *q)
{
	q->head = (q->head + 1) % q->cap;
	q->count--;
}

const struct usb4_cqe_err *usb4_cq_queue_peek_err(const struct usb4_cq_queue *q)
{
	return q->err_count ? &q->errs[q->err_head] : NULL;
}

void usb4_cq_queue_pop_err(struct usb4_cq_queue *q)
{
	q->err_head = (q->err_head + 1) % q->err_cap;
	q->err_count--;
}
