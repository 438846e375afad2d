/*
 * Unit tests of the udp link's receive path (prov_usb4/src/link/
 * usb4_link_udp.c) over loopback: datagrams received whole, or with a hole
 * steered into another buffer (receive placement), handed up as the pieces
 * they landed in; and the fault injector striking whole batches.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "usb4_link.h"
#include "usb4_test.h"

#define BIG	5000

/* What one poll handed up. */
struct got {
	int n;
	size_t len[8];
	int pieces[8];
	unsigned char data[8][BIG];
};

/* Holes the next poll gets, for up to `count` datagrams: hole i is `hole`
 * moved i * stride bytes on. */
struct plan {
	struct usb4_udp_hole hole;
	size_t stride;
	int count;
};

static struct plan plan;

static int place(void *arg, struct usb4_udp_hole *holes, int max)
{
	int n = plan.count < max ? plan.count : max;

	(void) arg;
	for (int i = 0; i < n; i++) {
		holes[i] = plan.hole;
		holes[i].dest = (char *) plan.hole.dest + i * plan.stride;
	}
	return n;
}

static void on_rx(void *arg, const struct usb4_udp_addr *from,
		  const struct iovec *dgram, int count)
{
	struct got *g = arg;
	size_t len = 0;

	(void) from;
	if (g->n >= 8)
		return;
	for (int i = 0; i < count; i++) {
		CHECK(len + dgram[i].iov_len <= BIG);
		if (len + dgram[i].iov_len > BIG)
			return;
		memcpy(g->data[g->n] + len, dgram[i].iov_base, dgram[i].iov_len);
		len += dgram[i].iov_len;
	}
	g->len[g->n] = len;
	g->pieces[g->n++] = count;
}

static struct usb4_iface loopback(void)
{
	struct usb4_iface lo = { .name = "lo", .family = AF_INET, .mtu = 65535 };

	inet_pton(AF_INET, "127.0.0.1", lo.ip);
	return lo;
}

static void pattern(unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char) (i * 7 + seed);
}

static void send_pattern(struct usb4_udp_link *from, struct usb4_udp_link *to,
			 size_t len, unsigned seed)
{
	unsigned char buf[BIG];
	struct iovec iov = { buf, len };
	struct usb4_udp_addr dst;

	pattern(buf, len, seed);
	usb4_udp_link_addr(to, &dst);
	CHECK_EQ(usb4_udp_send(from, &dst, &iov, 1), 0);
}

/* Polls until `want` datagrams came (loopback is immediate, but a poll takes
 * at most a batch). */
static void poll_for(struct usb4_udp_link *link, struct got *g, int want)
{
	for (int tries = 0; g->n < want && tries < 1000; tries++)
		usb4_udp_poll(link, place, on_rx, g, 8);
	CHECK_EQ(g->n, want);
}

static bool is_pattern(const unsigned char *p, size_t len, unsigned seed)
{
	unsigned char want[BIG];

	pattern(want, len, seed);
	return !memcmp(p, want, len);
}

static void test_holes(struct usb4_udp_link *a, struct usb4_udp_link *b)
{
	static struct got g;
	static unsigned char dest[3][1000];

	memset(&g, 0, sizeof(g));
	memset(dest, 0xee, sizeof(dest));
	plan = (struct plan) {
		.hole = { .off = 100, .len = sizeof(dest[0]), .dest = dest },
		.stride = sizeof(dest[0]), .count = 3,
	};
	send_pattern(a, b, BIG, 1);		/* spans the hole: 3 pieces */
	send_pattern(a, b, 60, 2);		/* ends before it: 1 piece */
	send_pattern(a, b, 1100, 3);		/* ends with it: 2 pieces */
	send_pattern(a, b, 700, 4);		/* no hole for it: whole */
	poll_for(b, &g, 4);
	CHECK_EQ(g.pieces[0], 3);
	CHECK_EQ(g.len[0], BIG);
	CHECK(is_pattern(g.data[0], BIG, 1));
	CHECK_EQ(g.pieces[1], 1);
	CHECK_EQ(g.len[1], 60);
	CHECK(is_pattern(g.data[1], 60, 2));
	CHECK_EQ(g.pieces[2], 2);
	CHECK_EQ(g.len[2], 1100);
	CHECK(is_pattern(g.data[2], 1100, 3));
	CHECK_EQ(g.pieces[3], 1);
	CHECK(is_pattern(g.data[3], 700, 4));
	/* Each hole holds its datagram's bytes [100, 1100), as far as they go. */
	CHECK(is_pattern(dest[0], sizeof(dest[0]), 1 + 100 * 7));
	CHECK_EQ(dest[1][0], 0xee);
	CHECK(is_pattern(dest[2], sizeof(dest[2]), 3 + 100 * 7));
}

/* The first datagram's handler writes over the second's hole, as the core
 * does when it copies a frame to where a later one was guessed to go: with
 * usb4_udp_evacuate first, the second still arrives intact. */
static struct usb4_udp_link *evac_link;
static unsigned char evac_dest[2][1000];

static void rx_then_overwrite(void *arg, const struct usb4_udp_addr *from,
			      const struct iovec *dgram, int count)
{
	struct got *g = arg;

	on_rx(arg, from, dgram, count);
	if (g->n != 1)
		return;
	usb4_udp_evacuate(evac_link, evac_dest[1] + 500, 10);
	memset(evac_dest[1], 0x77, sizeof(evac_dest[1]));
}

static void test_evacuate(struct usb4_udp_link *a, struct usb4_udp_link *b)
{
	static struct got g;
	int polled = 0;

	memset(&g, 0, sizeof(g));
	evac_link = b;
	plan = (struct plan) {
		.hole = { .off = 100, .len = sizeof(evac_dest[0]),
			  .dest = evac_dest },
		.stride = sizeof(evac_dest[0]), .count = 2,
	};
	send_pattern(a, b, BIG, 5);
	send_pattern(a, b, BIG, 6);
	for (int tries = 0; polled < 2 && tries < 1000; tries++)
		polled += usb4_udp_poll(b, place, rx_then_overwrite, &g, 8);
	CHECK_EQ(g.n, 2);
	CHECK(is_pattern(g.data[0], BIG, 5));
	CHECK(is_pattern(g.data[1], BIG, 6));	/* its hole was overwritten */
	CHECK_EQ(usb4_udp_link_stats(b)->evacuated, 1);
	/* Outside a poll, or past the batch, nothing to move. */
	usb4_udp_evacuate(b, evac_dest, sizeof(evac_dest));
	CHECK_EQ(usb4_udp_link_stats(b)->evacuated, 1);
}

/* A batch of datagrams with holes, every one corrupted: each arrives with
 * exactly one byte changed, also when the byte lies in the hole. */
static void test_corrupt_in_holes(void)
{
	static struct got g;
	struct usb4_iface lo = loopback();
	struct usb4_udp_faults f = { .corrupt = 1.0 };
	struct usb4_udp_link *a, *b;
	unsigned char dest[4][BIG];
	int changed_in_hole = 0;

	CHECK_EQ(usb4_udp_link_open(&a, &lo, NULL), 0);
	CHECK_EQ(usb4_udp_link_open(&b, &lo, &f), 0);
	memset(&g, 0, sizeof(g));
	for (int round = 0; round < 8; round++) {
		memset(&g, 0, sizeof(g));
		plan = (struct plan) {
			.hole = { .off = 10, .len = BIG - 20,
				  .dest = dest[round % 4] },
			.count = 1,
		};
		send_pattern(a, b, BIG, (unsigned) round);
		poll_for(b, &g, 1);
		unsigned char want[BIG];
		int diff = 0, where = -1;

		pattern(want, BIG, (unsigned) round);
		for (int i = 0; i < BIG; i++)
			if (g.data[0][i] != want[i]) {
				diff++;
				where = i;
			}
		CHECK_EQ(diff, 1);
		changed_in_hole += where >= 10 && where < BIG - 10;
	}
	CHECK(changed_in_hole > 0);
	CHECK_EQ(usb4_udp_link_stats(b)->faults_corrupted, 8);
	usb4_udp_link_close(a);
	usb4_udp_link_close(b);
}

/* Loss: nothing handed up, everything counted. */
static void test_drop_all(void)
{
	static struct got g;
	struct usb4_iface lo = loopback();
	struct usb4_udp_faults f = { .drop = 1.0 };
	struct usb4_udp_link *a, *b;
	int polled = 0;

	CHECK_EQ(usb4_udp_link_open(&a, &lo, NULL), 0);
	CHECK_EQ(usb4_udp_link_open(&b, &lo, &f), 0);
	memset(&g, 0, sizeof(g));
	plan.count = 0;
	for (int i = 0; i < 5; i++)
		send_pattern(a, b, 300, (unsigned) i);
	for (int tries = 0; polled < 5 && tries < 1000; tries++)
		polled += usb4_udp_poll(b, place, on_rx, &g, 8);
	CHECK_EQ(polled, 5);
	CHECK_EQ(g.n, 0);
	CHECK_EQ(usb4_udp_link_stats(b)->faults_dropped, 5);
	usb4_udp_link_close(a);
	usb4_udp_link_close(b);
}

/* The same over IPv6 loopback, when the machine has it: addresses made
 * from sockaddr_in6 and back, the datagram size for a 40-byte header. */
static void test_ipv6(void)
{
	static struct got g;
	struct usb4_iface lo = { .name = "lo", .family = AF_INET6, .mtu = 65535 };
	struct usb4_udp_link *a, *b;
	struct usb4_udp_addr addr;

	inet_pton(AF_INET6, "::1", lo.ip);
	if (usb4_udp_link_open(&a, &lo, NULL)) {
		printf("test_udp_link: no IPv6 loopback here, IPv6 not tested\n");
		return;
	}
	CHECK_EQ(usb4_udp_link_open(&b, &lo, NULL), 0);
	usb4_udp_link_addr(b, &addr);
	CHECK_EQ(addr.family, 6);
	CHECK(addr.port != 0);
	CHECK(!memcmp(addr.ip, lo.ip, 16));
	CHECK_EQ(usb4_udp_link_datagram_max(b), 65535 - 48);
	memset(&g, 0, sizeof(g));
	plan.count = 0;
	send_pattern(a, b, BIG, 9);
	poll_for(b, &g, 1);
	CHECK_EQ(g.len[0], BIG);
	CHECK(is_pattern(g.data[0], BIG, 9));
	usb4_udp_link_close(a);
	usb4_udp_link_close(b);
}

int main(void)
{
	struct usb4_iface lo = loopback();
	struct usb4_udp_link *a, *b;

	CHECK_EQ(usb4_udp_link_open(&a, &lo, NULL), 0);
	CHECK_EQ(usb4_udp_link_open(&b, &lo, NULL), 0);
	CHECK_EQ(usb4_udp_link_datagram_max(b), 65507);
	test_holes(a, b);
	test_evacuate(a, b);
	usb4_udp_link_close(a);
	usb4_udp_link_close(b);
	test_corrupt_in_holes();
	test_drop_all();
	test_ipv6();
	return usb4_test_done("test_udp_link");
}
