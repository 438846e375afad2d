/*
 * Unit tests of the udp link's half-open handshakes
 * (prov_usb4/src/link/usb4_udp_offers.c): an offer is found by its peer's
 * id and address only; a flood of offers never grows the table, it evicts
 * the oldest of a probe window; offers expire after their time; a promoted
 * offer frees its slot.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_udp.h"
#include "usb4_test.h"

#define TTL	1000u

/* The table's hash (usb4_udp_offers.c): ids of one home share a window. */
static size_t home_of(uint64_t id)
{
	return (size_t) ((id * 0x9e3779b97f4a7c15ull) >> 32) % USB4_UDP_OFFERS;
}

static struct usb4_udp_addr addr_of(uint16_t port)
{
	struct usb4_udp_addr a = { .family = 4, .port = port };

	a.ip[0] = 10;
	a.ip[3] = 2;
	return a;
}

/* Found by id and address; not by either alone. */
static void test_find_by_id_and_address(struct usb4_udp_offers *o)
{
	struct usb4_udp_addr a = addr_of(1), b = addr_of(2);
	struct usb4_udp_offer *x;
	bool fresh;

	usb4_udp_offers_init(o, TTL);
	x = usb4_udp_offer_make(o, 7, &a, 10, &fresh);
	CHECK(x && fresh);
	CHECK_EQ(x->rel.remote_id, 7);
	CHECK(usb4_udp_offer_find(o, 7, &a, 11) == x);
	CHECK(usb4_udp_offer_find(o, 7, &b, 11) == NULL);
	CHECK(usb4_udp_offer_find(o, 8, &a, 11) == NULL);
	/* The same peer again: the same offer, not a new one. */
	CHECK(usb4_udp_offer_make(o, 7, &a, 12, &fresh) == x && !fresh);
	/* The same id from another address: an offer of its own. */
	CHECK(usb4_udp_offer_make(o, 7, &b, 12, &fresh) != x && fresh);
	CHECK_EQ(o->made, 2);
}

/* Offers live ttl_ns; a promoted one frees its slot at once. */
static void test_expiry_and_promotion(struct usb4_udp_offers *o)
{
	struct usb4_udp_addr a = addr_of(1);
	struct usb4_udp_offer *x;
	bool fresh;

	usb4_udp_offers_init(o, TTL);
	x = usb4_udp_offer_make(o, 9, &a, 100, &fresh);
	CHECK(usb4_udp_offer_find(o, 9, &a, 100 + TTL - 1) == x);
	CHECK(usb4_udp_offer_find(o, 9, &a, 100 + TTL) == NULL);
	CHECK_EQ(o->expired, 1);
	x = usb4_udp_offer_make(o, 9, &a, 5000, &fresh);
	CHECK(fresh);
	usb4_udp_offer_done(o, x, true);
	CHECK(usb4_udp_offer_find(o, 9, &a, 5001) == NULL);
	CHECK_EQ(o->promoted, 1);
}

/* A flood of random ids: the table never holds more than its slots, every
 * new offer finds a slot (the oldest of its window goes), and a peer whose
 * offer is younger than the ones evicted around it keeps it. */
static void test_flood_evicts_oldest(struct usb4_udp_offers *o)
{
	struct usb4_udp_addr a = addr_of(1), real = addr_of(9);
	struct usb4_udp_offer *mine;
	uint64_t now = 1, live = 0;
	bool fresh;

	usb4_udp_offers_init(o, UINT64_MAX / 2);
	for (uint64_t i = 0; i < 100000; i++) {
		uint64_t id = (i * 0x9e3779b97f4a7c15ull) ^ 0x1234;

		CHECK(usb4_udp_offer_make(o, id ? id : 1, &a, now++, &fresh));
	}
	for (size_t i = 0; i < USB4_UDP_OFFERS; i++)
		live += o->slot[i].made != 0;
	CHECK_EQ(live, USB4_UDP_OFFERS);
	CHECK_EQ(o->made, 100000);
	CHECK_EQ(o->evicted, 100000 - USB4_UDP_OFFERS);
	/* The real peer's offer survives the next USB4_UDP_OFFER_PROBE - 1
	 * newer offers that land in its window. */
	mine = usb4_udp_offer_make(o, 42, &real, now++, &fresh);
	CHECK(fresh);
	for (uint64_t id = 43, n = 1; n < USB4_UDP_OFFER_PROBE; id++) {
		if (home_of(id) != home_of(42))
			continue;	/* only ids that share its window */
		usb4_udp_offer_make(o, id, &a, now++, &fresh);
		n++;
	}
	CHECK(usb4_udp_offer_find(o, 42, &real, now) == mine);
	/* One more in that window: now it is the oldest there, and goes. */
	for (uint64_t id = 1u << 20;; id++) {
		if (home_of(id) != home_of(42))
			continue;
		usb4_udp_offer_make(o, id, &a, now++, &fresh);
		break;
	}
	CHECK(usb4_udp_offer_find(o, 42, &real, now) == NULL);
}

int main(void)
{
	/* The table is large: on the heap, as the link keeps it. */
	struct usb4_udp_offers *o = calloc(1, sizeof(*o));

	CHECK(o != NULL);
	test_find_by_id_and_address(o);
	test_expiry_and_promotion(o);
	test_flood_evicts_oldest(o);
	free(o);
	return usb4_test_done("test_udp_offers");
}
