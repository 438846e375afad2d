/*
 * The udp link's half-open handshakes: a fixed table of offers
 * (usb4_udp.h), so that what a flood of HELLOs costs is CPU, never memory.
 */
#include <string.h>

#include "usb4_udp.h"

void usb4_udp_offers_init(struct usb4_udp_offers *o, uint64_t ttl_ns)
{
	memset(o, 0, sizeof(*o));
	o->ttl_ns = ttl_ns;
}

static size_t home_of(uint64_t id)
{
	return (size_t) ((id * 0x9e3779b97f4a7c15ull) >> 32) %
	       USB4_UDP_OFFERS;
}

static struct usb4_udp_offer *probe(struct usb4_udp_offers *o, uint64_t id,
				    unsigned i)
{
	return &o->slot[(home_of(id) + i) % USB4_UDP_OFFERS];
}

/* Frees a slot whose offer outlived its time; whether the slot is free. */
static bool free_or_expire(struct usb4_udp_offers *o, struct usb4_udp_offer *s,
			   uint64_t now)
{
	if (s->made && now - s->made >= o->ttl_ns) {
		s->made = 0;
		o->expired++;
	}
	return !s->made;
}

struct usb4_udp_offer *usb4_udp_offer_find(struct usb4_udp_offers *o,
					   uint64_t id,
					   const struct usb4_udp_addr *addr,
					   uint64_t now)
{
	for (unsigned i = 0; i < USB4_UDP_OFFER_PROBE; i++) {
		struct usb4_udp_offer *s = probe(o, id, i);

		if (free_or_expire(o, s, now))
			continue;
		if (s->rel.remote_id == id && usb4_udp_addr_eq(&s->addr, addr))
			return s;
	}
	return NULL;
}

struct usb4_udp_offer *usb4_udp_offer_make(struct usb4_udp_offers *o,
					   uint64_t id,
					   const struct usb4_udp_addr *addr,
					   uint64_t now, bool *fresh)
{
	struct usb4_udp_offer *s = usb4_udp_offer_find(o, id, addr, now);
	struct usb4_udp_offer *oldest = NULL;

	*fresh = !s;
	if (s)
		return s;
	for (unsigned i = 0; i < USB4_UDP_OFFER_PROBE && !s; i++) {
		struct usb4_udp_offer *c = probe(o, id, i);

		if (!c->made)
			s = c;
		else if (!oldest || c->made < oldest->made)
			oldest = c;
	}
	if (!s) {
		s = oldest;
		o->evicted++;
	}
	memset(s, 0, sizeof(*s));
	s->rel.remote_id = id;
	s->addr = *addr;
	s->made = now ? now : 1;
	o->made++;
	return s;
}

void usb4_udp_offer_done(struct usb4_udp_offers *o, struct usb4_udp_offer *offer,
			 bool promoted)
{
	offer->made = 0;
	if (promoted)
		o->promoted++;
}
