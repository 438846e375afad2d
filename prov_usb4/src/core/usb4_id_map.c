/*
 * A map from endpoint id to a 64-bit value: the peer tables' "which entry
 * is this sender" and the unexpected budget's bytes per sender.  Linear
 * probing, at most half full; removal shifts the entries after the hole
 * back (no tombstones), so a table that sees peers come and go for ever
 * never slows down and never needs a rebuild.
 */
#include <stdlib.h>

#include "usb4_proto.h"

#define USB4_ID_MAP_MIN	16

static size_t home(const struct usb4_id_map *m, uint64_t id)
{
	return (size_t) (id * 0x9e3779b97f4a7c15ull) & (m->cap - 1);
}

/* Where id is, or the empty slot where it would go. */
static size_t slot_of(const struct usb4_id_map *m, uint64_t id)
{
	size_t i = home(m, id);

	while (m->keys[i] && m->keys[i] != id)
		i = (i + 1) & (m->cap - 1);
	return i;
}

int usb4_id_map_init(struct usb4_id_map *m, size_t n)
{
	size_t cap = USB4_ID_MAP_MIN;

	while (cap < 2 * n)
		cap <<= 1;
	m->keys = calloc(cap, sizeof(*m->keys));
	m->vals = calloc(cap, sizeof(*m->vals));
	m->cap = cap;
	m->count = 0;
	if (m->keys && m->vals)
		return 0;
	usb4_id_map_fini(m);
	return -FI_ENOMEM;
}

void usb4_id_map_fini(struct usb4_id_map *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
	m->cap = m->count = 0;
}

uint64_t *usb4_id_map_find(const struct usb4_id_map *m, uint64_t id)
{
	size_t i;

	if (!m->cap || !id)
		return NULL;
	i = slot_of(m, id);
	return m->keys[i] ? &m->vals[i] : NULL;
}

static int grow(struct usb4_id_map *m)
{
	struct usb4_id_map bigger;

	if (usb4_id_map_init(&bigger, m->cap))
		return -FI_ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->keys[i])
			usb4_id_map_put(&bigger, m->keys[i], m->vals[i]);
	usb4_id_map_fini(m);
	*m = bigger;
	return 0;
}

int usb4_id_map_put(struct usb4_id_map *m, uint64_t id, uint64_t val)
{
	uint64_t *have = usb4_id_map_find(m, id);
	size_t i;

	if (!id)
		return -FI_EINVAL;
	if (have) {
		*have = val;
		return 0;
	}
	if (2 * (m->count + 1) > m->cap && grow(m))
		return -FI_ENOMEM;
	i = slot_of(m, id);
	m->keys[i] = id;
	m->vals[i] = val;
	m->count++;
	return 0;
}

/* Whether an entry whose home is h may stay at j with a hole at i: only
 * when h lies cyclically in (i, j]. */
static bool stays(size_t h, size_t i, size_t j)
{
	return i <= j ? (i < h && h <= j) : (i < h || h <= j);
}

void usb4_id_map_remove(struct usb4_id_map *m, uint64_t id)
{
	size_t hole, j;

	if (!usb4_id_map_find(m, id))
		return;
	hole = slot_of(m, id);
	m->keys[hole] = 0;
	m->count--;
	for (j = (hole + 1) & (m->cap - 1); m->keys[j];
	     j = (j + 1) & (m->cap - 1)) {
		if (stays(home(m, m->keys[j]), hole, j))
			continue;
		m->keys[hole] = m->keys[j];
		m->vals[hole] = m->vals[j];
		m->keys[j] = 0;
		hole = j;
	}
}
