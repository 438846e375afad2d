/*
 * rel's buffer pool: payload copies for every peer of one link, in
 * power-of-two classes from 128 B to 64 KiB (larger requests get exact
 * allocations), bounded in bytes handed out.  Freed buffers are kept per
 * class up to USB4_POOL_CACHE_BYTES for reuse, so a busy peer does not
 * allocate per frame; the rest go back to the allocator.
 */
#include <stdlib.h>

#include "usb4_rel.h"

#define USB4_POOL_MIN_SHIFT	7	/* 128 B */
#define USB4_POOL_MAX_SHIFT	16	/* 64 KiB */
#define USB4_POOL_CLASSES	(USB4_POOL_MAX_SHIFT - USB4_POOL_MIN_SHIFT + 1)
#define USB4_POOL_LARGE		USB4_POOL_CLASSES
#define USB4_POOL_CACHE_BYTES	(1u << 20)	/* per class */

/* Leads every buffer; the caller sees what follows. */
struct usb4_pool_buf {
	union {
		struct usb4_pool_buf *next;	/* while cached */
		size_t bytes;			/* while handed out */
	};
	uint32_t cls;
	uint32_t reserved;
};

struct usb4_rel_pool {
	size_t bytes_max, in_use;
	struct usb4_pool_buf *cache[USB4_POOL_CLASSES];
	size_t cached[USB4_POOL_CLASSES];	/* bytes in cache[] */
};

static uint32_t class_of(size_t len)
{
	uint32_t c = 0;

	while (c < USB4_POOL_CLASSES &&
	       ((size_t) 1 << (c + USB4_POOL_MIN_SHIFT)) < len)
		c++;
	return c;
}

static size_t class_bytes(uint32_t c)
{
	return (size_t) 1 << (c + USB4_POOL_MIN_SHIFT);
}

int usb4_rel_pool_open(struct usb4_rel_pool **poolp, size_t bytes_max)
{
	struct usb4_rel_pool *pool = calloc(1, sizeof(*pool));

	if (!pool)
		return -FI_ENOMEM;
	pool->bytes_max = bytes_max;
	*poolp = pool;
	return 0;
}

void usb4_rel_pool_close(struct usb4_rel_pool *pool)
{
	if (!pool)
		return;
	for (uint32_t c = 0; c < USB4_POOL_CLASSES; c++)
		while (pool->cache[c]) {
			struct usb4_pool_buf *b = pool->cache[c];
			pool->cache[c] = b->next;
			free(b);
		}
	free(pool);
}

void *usb4_rel_pool_get(struct usb4_rel_pool *pool, size_t len)
{
	uint32_t c = class_of(len);
	size_t bytes = c == USB4_POOL_LARGE ? len : class_bytes(c);
	struct usb4_pool_buf *b = NULL;

	if (pool && bytes > pool->bytes_max - pool->in_use)
		return NULL;
	if (pool && c != USB4_POOL_LARGE && pool->cache[c]) {
		b = pool->cache[c];
		pool->cache[c] = b->next;
		pool->cached[c] -= bytes;
	}
	if (!b)
		b = malloc(sizeof(*b) + bytes);
	if (!b)
		return NULL;
	b->bytes = bytes;
	b->cls = c;
	if (pool)
		pool->in_use += bytes;
	return b + 1;
}

void usb4_rel_pool_put(struct usb4_rel_pool *pool, void *buf)
{
	struct usb4_pool_buf *b;
	size_t bytes;

	if (!buf)
		return;
	b = (struct usb4_pool_buf *) buf - 1;
	bytes = b->bytes;
	if (!pool) {
		free(b);
		return;
	}
	pool->in_use -= bytes;
	if (b->cls == USB4_POOL_LARGE ||
	    pool->cached[b->cls] + bytes > USB4_POOL_CACHE_BYTES) {
		free(b);
		return;
	}
	b->next = pool->cache[b->cls];
	pool->cache[b->cls] = b;
	pool->cached[b->cls] += bytes;
}

size_t usb4_rel_pool_in_use(const struct usb4_rel_pool *pool)
{
	return pool ? pool->in_use : 0;
}
