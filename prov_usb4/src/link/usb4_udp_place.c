/*
 * Receive placement: DATA payloads received straight into their transfer's
 * buffer, saving the copy out of the socket's buffer.
 *
 * The zone that took the last payload, and the zones of the same peer after
 * it (its sender streams them in the order it got their CTS, which is the
 * order they were opened), most likely receive the next datagrams, in
 * chunks alike.  So each datagram of the next receive gets a hole where its
 * payload would belong.  A wrong guess is harmless while one invariant
 * holds (hole_allowed): a hole lies only in bytes its zone has not received
 * yet, and in none that another hole of the same receive, or the hot
 * zone's own rest, uses.  Every such byte is written again by its own frame
 * before the transfer completes; zone_write and zone_close move datagrams
 * whose hole lies where they write or forget out of the way first
 * (usb4_udp_evacuate).  Transfers into the same memory (a benchmark's
 * receives into one buffer) are why the second half matters.
 */
#include <string.h>

#include "usb4_udp.h"

void usb4_udp_zones_init(struct usb4_udp_zones *z, bool enabled)
{
	usb4_list_init(&z->list);
	z->hot = NULL;
	z->chunk = 0;
	z->enabled = enabled;
}

void usb4_udp_zone_open(struct usb4_udp_zones *z, struct usb4_link_zone *zone)
{
	usb4_list_insert_tail(&z->list, &zone->link_node);
}

/* Bytes [off, off + len) of a zone as one piece, or false when they
 * straddle two segments. */
static bool zone_piece(const struct usb4_link_zone *zone, uint64_t off,
		       size_t len, char **p)
{
	struct iovec one;

	if (usb4_iov_slice(zone->iov, zone->iov_count, off, len, &one, 1) != 1 ||
	    one.iov_len != len)
		return false;
	*p = one.iov_base;
	return true;
}

/* Calls fn for each piece of bytes [off, off + len) of a zone, pos bytes
 * into the range. */
static void zone_pieces(const struct usb4_link_zone *zone, uint64_t off,
			size_t len, void (*fn)(void *arg, char *p, size_t n,
					       size_t pos), void *arg)
{
	struct iovec piece;

	for (size_t pos = 0; pos < len; pos += piece.iov_len) {
		if (usb4_iov_slice(zone->iov, zone->iov_count, off + pos,
				   len - pos, &piece, 1) != 1)
			return;
		fn(arg, piece.iov_base, piece.iov_len, pos);
	}
}

/* The zone after this one with frames from the same peer, or NULL. */
static struct usb4_link_zone *zone_after(struct usb4_udp_zones *z,
					 const struct usb4_link_zone *zone)
{
	for (struct usb4_list *it = zone->link_node.next; it != &z->list;
	     it = it->next) {
		struct usb4_link_zone *y = usb4_container_of(it,
				struct usb4_link_zone, link_node);
		if (y->peer == zone->peer)
			return y;
	}
	return NULL;
}

static bool overlap(const char *a, size_t alen, const char *b, size_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Whether [p, p + len) touches bytes the hot zone has yet to receive. */
static bool clashes_hot(const struct usb4_link_zone *hot, const char *p,
			size_t len)
{
	uint64_t off = hot->next;

	for (size_t i = 0; i < hot->iov_count; i++) {
		const char *b = hot->iov[i].iov_base;
		size_t n = hot->iov[i].iov_len;

		if (off >= n) {
			off -= n;
			continue;
		}
		if (overlap(b + off, n - off, p, len))
			return true;
		off = 0;
	}
	return false;
}

/* The invariant every hole keeps (see the top of this file). */
static bool hole_allowed(const struct usb4_udp_zones *z,
			 const struct usb4_link_zone *zone, uint64_t off,
			 size_t len, const char *p,
			 const struct usb4_udp_hole *holes, int n)
{
	if (off < zone->next || off > zone->end || len > zone->end - off)
		return false;
	if (zone != z->hot && clashes_hot(z->hot, p, len))
		return false;
	for (int i = 0; i < n; i++)
		if (overlap(holes[i].dest, holes[i].len, p, len))
			return false;
	return true;
}

int usb4_udp_zones_predict(struct usb4_udp_zones *z, size_t link_hdr,
			   struct usb4_udp_hole *holes, int max)
{
	struct usb4_link_zone *zone = z->enabled ? z->hot : NULL;
	uint64_t off = zone ? zone->next : 0;
	uint32_t chunk = z->chunk;
	int n = 0;

	while (zone && chunk && n < max) {
		size_t len;
		char *p;

		if (off >= zone->end) {
			zone = zone_after(z, zone);
			off = zone ? zone->next : 0;
			continue;
		}
		len = zone->end - off < chunk ? zone->end - off : chunk;
		if (!zone_piece(zone, off, len, &p) ||
		    !hole_allowed(z, zone, off, len, p, holes, n))
			break;
		holes[n++] = (struct usb4_udp_hole) {
			.off = link_hdr + zone->hdr_len, .len = len, .dest = p };
		off += len;
	}
	return n;
}

struct write_ctx {
	struct usb4_udp_sock *sock;
	const char *src;
};

static void write_piece(void *arg, char *p, size_t n, size_t pos)
{
	struct write_ctx *w = arg;

	if (p == w->src + pos)
		return;		/* received in place */
	usb4_udp_evacuate(w->sock, p, n);
	memcpy(p, w->src + pos, n);
}

void usb4_udp_zone_write(struct usb4_udp_zones *z, struct usb4_udp_sock *sock,
			 struct usb4_link_zone *zone, uint64_t off,
			 const void *src, size_t len)
{
	struct write_ctx w = { .sock = sock, .src = src };

	zone_pieces(zone, off, len, write_piece, &w);
	z->hot = zone;
	if (off + len < zone->end)
		z->chunk = (uint32_t) len;
}

static void evacuate_piece(void *arg, char *p, size_t n, size_t pos)
{
	usb4_udp_evacuate(arg, p, n);
}

void usb4_udp_zone_close(struct usb4_udp_zones *z, struct usb4_udp_sock *sock,
			 struct usb4_link_zone *zone)
{
	/* Datagrams of the batch still in its memory leave it now. */
	if (zone->next < zone->end)
		zone_pieces(zone, zone->next, zone->end - zone->next,
			    evacuate_piece, sock);
	if (z->hot == zone)
		z->hot = zone_after(z, zone);
	usb4_list_remove(&zone->link_node);
}
