/*
 * Completion storage behind a CQ: two growable rings, one for successes and
 * one for errors.  Operations reserve their entry when they are posted, so
 * the rings grow (or the post fails with -FI_EAGAIN) then, and writing a
 * completion never needs memory: none is ever lost.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_core.h"

int usb4_cq_queue_init(struct usb4_cq_queue *q, size_t cap,
		       struct usb4_waiter *waiter)
{
	memset(q, 0, sizeof(*q));
	q->cap = cap ? cap : 64;
	q->ring = calloc(q->cap, sizeof(*q->ring));
	q->err_cap = 16;
	q->errs = calloc(q->err_cap, sizeof(*q->errs));
	q->waiter = waiter;
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

/* Grows a ring of elem-sized entries to at least want, unrolling it to
 * start at index 0. */
static int ring_grow(void **ring, size_t *cap, size_t *head, size_t count,
		     size_t elem, size_t want)
{
	size_t new_cap = *cap;
	char *new_ring, *old = *ring;

	while (new_cap < want)
		new_cap *= 2;
	new_ring = malloc(new_cap * elem);
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

/* usb4_cq_queue_reserve when a ring is full of reservations: room for
 * every reserved entry in either ring (any of them may end in error). */
int usb4_cq_queue_reserve_grow(struct usb4_cq_queue *q)
{
	size_t want = q->reserved + 1;

	if (q->count + want > q->cap &&
	    ring_grow((void **) &q->ring, &q->cap, &q->head, q->count,
		      sizeof(*q->ring), q->count + want))
		return -FI_EAGAIN;
	if (q->err_count + want > q->err_cap &&
	    ring_grow((void **) &q->errs, &q->err_cap, &q->err_head,
		      q->err_count, sizeof(*q->errs), q->err_count + want))
		return -FI_EAGAIN;
	q->reserved++;
	return 0;
}

void usb4_cq_queue_unreserve(struct usb4_cq_queue *q)
{
	if (q && q->reserved)
		q->reserved--;
}

/* head + n wrapped into a ring of cap entries (n <= cap): a compare, not
 * the division of %, which costs tens of cycles per entry. */
static size_t ring_index(size_t head, size_t n, size_t cap)
{
	size_t i = head + n;

	return i >= cap ? i - cap : i;
}

void usb4_cq_queue_push(struct usb4_cq_queue *q, const struct usb4_cqe *e)
{
	/* The reservation guarantees the room. */
	q->ring[ring_index(q->head, q->count, q->cap)] = *e;
	q->count++;
	usb4_cq_queue_unreserve(q);
	usb4_waiter_signal(q->waiter);
}

void usb4_cq_queue_push_err(struct usb4_cq_queue *q,
			    const struct usb4_cqe_err *e)
{
	q->errs[ring_index(q->err_head, q->err_count, q->err_cap)] = *e;
	q->err_count++;
	usb4_cq_queue_unreserve(q);
	usb4_waiter_signal(q->waiter);
}

const struct usb4_cqe *usb4_cq_queue_peek(const struct usb4_cq_queue *q)
{
	return q->count ? &q->ring[q->head] : NULL;
}

/* Every fi_cq format is a prefix of the tagged entry, which struct
 * usb4_cqe begins with: an entry is handed out as its first bytes. */
_Static_assert(offsetof(struct usb4_cqe, op_context) ==
	       offsetof(struct fi_cq_tagged_entry, op_context), "cqe layout");
_Static_assert(offsetof(struct usb4_cqe, flags) ==
	       offsetof(struct fi_cq_tagged_entry, flags), "cqe layout");
_Static_assert(offsetof(struct usb4_cqe, len) ==
	       offsetof(struct fi_cq_tagged_entry, len), "cqe layout");
_Static_assert(offsetof(struct usb4_cqe, buf) ==
	       offsetof(struct fi_cq_tagged_entry, buf), "cqe layout");
_Static_assert(offsetof(struct usb4_cqe, data) ==
	       offsetof(struct fi_cq_tagged_entry, data), "cqe layout");
_Static_assert(offsetof(struct usb4_cqe, tag) ==
	       offsetof(struct fi_cq_tagged_entry, tag), "cqe layout");

/* take() for one entry size: inlined with size a constant, each entry is a
 * few moves, not a memcpy call. */
static inline size_t take_sized(struct usb4_cq_queue *q, char *buf,
				size_t size, fi_addr_t *src, size_t n)
{
	size_t head = q->head;

	for (size_t i = 0; i < n; i++) {
		const struct usb4_cqe *e = &q->ring[head];

		memcpy(buf + i * size, e, size);
		if (src)
			src[i] = e->src;
		head = ring_index(head, 1, q->cap);
	}
	q->head = head;
	q->count -= n;
	return n;
}

size_t usb4_cq_queue_take(struct usb4_cq_queue *q, void *buf, size_t size,
			  fi_addr_t *src, size_t max)
{
	size_t n = q->count < max ? q->count : max;

	switch (size) {
	case sizeof(struct fi_cq_tagged_entry):
		return take_sized(q, buf, sizeof(struct fi_cq_tagged_entry),
				  src, n);
	case sizeof(struct fi_cq_data_entry):
		return take_sized(q, buf, sizeof(struct fi_cq_data_entry),
				  src, n);
	case sizeof(struct fi_cq_msg_entry):
		return take_sized(q, buf, sizeof(struct fi_cq_msg_entry),
				  src, n);
	default:
		return take_sized(q, buf, sizeof(struct fi_cq_entry), src, n);
	}
}

const struct usb4_cqe_err *usb4_cq_queue_peek_err(const struct usb4_cq_queue *q)
{
	return q->err_count ? &q->errs[q->err_head] : NULL;
}

void usb4_cq_queue_pop_err(struct usb4_cq_queue *q)
{
	q->err_head = ring_index(q->err_head, 1, q->err_cap);
	q->err_count--;
}
