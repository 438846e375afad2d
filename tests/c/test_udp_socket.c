/*
 * Unit tests of the udp link's socket (prov_usb4/src/link/usb4_udp_socket.c)
 * over loopback: datagrams received whole, or with a hole steered into
 * another buffer (receive placement), handed up as the pieces they landed
 * in, with the sender's address; holes moved out of a write's way
 * (evacuate); the batch a receive asks for (one at a time until a
 * receive fills its ask); and the fault injector striking whole batches.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "usb4_udp.h"
#include "usb4_test.h"
#include "../../prov_usb4/src/wire.h"

#define BIG	5000

/* What one poll handed up. */
struct got {
	int n;
	size_t len[8];
	int pieces[8];
	struct usb4_udp_addr from[8];
	unsigned char data[8][BIG];
};

/* Holes for the first `count` datagrams a struct got takes in: datagram i's
 * is `hole` moved i * stride bytes on (a poll is asked for the holes of the
 * datagrams it may take next, as the link's zones predict them). */
struct plan {
	struct usb4_udp_hole hole;
	size_t stride;
	int count;
};

static struct plan plan;

static int place(void *arg, struct usb4_udp_hole *holes, int max)
{
	const struct got *g = arg;
	int left = plan.count > g->n ? plan.count - g->n : 0;
	int n = left < max ? left : max;

	for (int i = 0; i < n; i++) {
		holes[i] = plan.hole;
		holes[i].dest = (char *) plan.hole.dest +
				(size_t) (g->n + i) * plan.stride;
	}
	return n;
}

static void on_rx(void *arg, const struct usb4_udp_addr *from,
		  const struct iovec *dgram, int count)
{
	struct got *g = arg;
	size_t len = 0;

	CHECK_MSG(g->n < 8, "more than 8 datagrams handed up");
	if (g->n >= 8)
		return;
	CHECK_MSG(count >= 1 && count <= USB4_UDP_PIECES_MAX,
		  "a datagram handed up in %d pieces", count);
	for (int i = 0; i < count; i++) {
		CHECK_MSG(len + dgram[i].iov_len <= BIG,
			  "a datagram longer than the %d bytes ever sent", BIG);
		if (len + dgram[i].iov_len > BIG)
			return;
		memcpy(g->data[g->n] + len, dgram[i].iov_base, dgram[i].iov_len);
		len += dgram[i].iov_len;
	}
	g->from[g->n] = *from;
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

static void send_pattern(struct usb4_udp_sock *from, struct usb4_udp_sock *to,
			 size_t len, unsigned seed)
{
	unsigned char buf[BIG];
	struct iovec iov = { buf, len };
	struct usb4_udp_addr dst;

	pattern(buf, len, seed);
	usb4_udp_sock_addr(to, &dst);
	CHECK_EQ_MSG(usb4_udp_send(from, &dst, &iov, 1), 0,
		     "sending %zu bytes over loopback failed", len);
}

/* Polls until `want` datagrams came (loopback is immediate, but a poll takes
 * at most a batch). */
static void poll_for(struct usb4_udp_sock *sock, struct got *g, int want)
{
	for (int tries = 0; g->n < want && tries < 1000; tries++)
		usb4_udp_poll(sock, place, on_rx, g, 8);
	CHECK_EQ_MSG(g->n, want, "datagrams sent over loopback did not all "
		     "arrive");
}

/* Sends one datagram and polls until it came: a receive that got all it
 * asked for, so the next asks for a whole batch (usb4_udp_batch_next). */
static void batch_mode(struct usb4_udp_sock *a, struct usb4_udp_sock *b)
{
	static struct got g;
	int saved = plan.count;

	memset(&g, 0, sizeof(g));
	plan.count = 0;
	send_pattern(a, b, 10, 99);
	poll_for(b, &g, 1);
	plan.count = saved;
}

/* Every datagram of g came from sock. */
static void check_from(const struct got *g, const struct usb4_udp_sock *sock)
{
	struct usb4_udp_addr want;

	usb4_udp_sock_addr(sock, &want);
	for (int i = 0; i < g->n; i++)
		CHECK_MSG(usb4_udp_addr_eq(&g->from[i], &want),
			  "datagram %d handed up from family %u port %u, sent "
			  "from family %u port %u", i, g->from[i].family,
			  g->from[i].port, want.family, want.port);
}

static bool is_pattern(const unsigned char *p, size_t len, unsigned seed)
{
	unsigned char want[BIG];

	pattern(want, len, seed);
	return !memcmp(p, want, len);
}

static void test_holes(struct usb4_udp_sock *a, struct usb4_udp_sock *b)
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
	check_from(&g, a);
	CHECK_EQ_MSG(g.pieces[0], 3, "a datagram spanning its hole");
	CHECK_EQ(g.len[0], BIG);
	CHECK_MSG(is_pattern(g.data[0], BIG, 1),
		  "a datagram spanning its hole reassembles wrong");
	CHECK_EQ_MSG(g.pieces[1], 1, "a datagram ending before its hole");
	CHECK_EQ(g.len[1], 60);
	CHECK_MSG(is_pattern(g.data[1], 60, 2),
		  "a datagram ending before its hole reassembles wrong");
	CHECK_EQ_MSG(g.pieces[2], 2, "a datagram ending with its hole");
	CHECK_EQ(g.len[2], 1100);
	CHECK_MSG(is_pattern(g.data[2], 1100, 3),
		  "a datagram ending with its hole reassembles wrong");
	CHECK_EQ_MSG(g.pieces[3], 1, "a datagram without a hole");
	CHECK_MSG(is_pattern(g.data[3], 700, 4),
		  "a datagram without a hole arrives wrong");
	/* Each hole holds its datagram's bytes [100, 1100), as far as they go. */
	CHECK_MSG(is_pattern(dest[0], sizeof(dest[0]), 1 + 100 * 7),
		  "hole 0 does not hold bytes [100, 1100) of datagram 0");
	CHECK_EQ_MSG(dest[1][0], 0xee, "a datagram too short for its hole "
		     "wrote into it");
	CHECK_MSG(is_pattern(dest[2], sizeof(dest[2]), 3 + 100 * 7),
		  "hole 2 does not hold bytes [100, 1100) of datagram 2");
	CHECK_EQ(usb4_udp_sock_stats(b)->evacuated, 0);
}

/* The first datagram's handler writes over the second's hole, as the core
 * does when it copies a frame to where a later one was guessed to go: with
 * usb4_udp_evacuate first, the second still arrives intact. */
static struct usb4_udp_sock *evac_sock;
static unsigned char evac_dest[2][1000];

static void rx_then_overwrite(void *arg, const struct usb4_udp_addr *from,
			      const struct iovec *dgram, int count)
{
	struct got *g = arg;

	on_rx(arg, from, dgram, count);
	if (g->n != 1)
		return;
	usb4_udp_evacuate(evac_sock, evac_dest[1] + 500, 10);
	memset(evac_dest[1], 0x77, sizeof(evac_dest[1]));
}

static void test_evacuate(struct usb4_udp_sock *a, struct usb4_udp_sock *b)
{
	static struct got g;
	int polled = 0;

	memset(&g, 0, sizeof(g));
	evac_sock = b;
	plan = (struct plan) {
		.hole = { .off = 100, .len = sizeof(evac_dest[0]),
			  .dest = evac_dest },
		.stride = sizeof(evac_dest[0]), .count = 2,
	};
	batch_mode(a, b);	/* both in one receive */
	send_pattern(a, b, BIG, 5);
	send_pattern(a, b, BIG, 6);
	for (int tries = 0; polled < 2 && tries < 1000; tries++)
		polled += usb4_udp_poll(b, place, rx_then_overwrite, &g, 8);
	CHECK_EQ(g.n, 2);
	CHECK_MSG(is_pattern(g.data[0], BIG, 5), "datagram 0 arrives wrong");
	CHECK_MSG(is_pattern(g.data[1], BIG, 6), "datagram 1 was spoiled by "
		  "the write over its hole (not evacuated)");
	CHECK_EQ_MSG(usb4_udp_sock_stats(b)->evacuated, 1,
		     "one hole lay in the way of the write");
	/* Outside a poll, or past the batch, nothing to move. */
	usb4_udp_evacuate(b, evac_dest, sizeof(evac_dest));
	CHECK_EQ_MSG(usb4_udp_sock_stats(b)->evacuated, 1,
		     "evacuate outside a poll moved something");
}

/* A write that misses every pending hole moves nothing. */
static void rx_then_miss(void *arg, const struct usb4_udp_addr *from,
			 const struct iovec *dgram, int count)
{
	struct got *g = arg;

	on_rx(arg, from, dgram, count);
	if (g->n == 1) {
		usb4_udp_evacuate(evac_sock, evac_dest[0], sizeof(evac_dest[0]));
		usb4_udp_evacuate(evac_sock, evac_dest[1] + sizeof(evac_dest[1]),
				  100);
	}
}

static void test_evacuate_misses(struct usb4_udp_sock *a,
				 struct usb4_udp_sock *b)
{
	static struct got g;
	uint64_t before = usb4_udp_sock_stats(b)->evacuated;
	int polled = 0;

	memset(&g, 0, sizeof(g));
	evac_sock = b;
	plan = (struct plan) {
		.hole = { .off = 100, .len = sizeof(evac_dest[0]),
			  .dest = evac_dest },
		.stride = sizeof(evac_dest[0]), .count = 2,
	};
	batch_mode(a, b);
	send_pattern(a, b, BIG, 7);
	send_pattern(a, b, BIG, 8);
	for (int tries = 0; polled < 2 && tries < 1000; tries++)
		polled += usb4_udp_poll(b, place, rx_then_miss, &g, 8);
	CHECK_EQ(g.n, 2);
	CHECK_MSG(is_pattern(g.data[1], BIG, 8), "datagram 1 arrives wrong");
	CHECK_EQ_MSG(usb4_udp_sock_stats(b)->evacuated, before,
		     "evacuated a hole the write did not touch (the handed-up "
		     "datagram's own, or one just past the range)");
}

/*
 * How many a receive asks for: one at a time after a receive that found
 * none (a ping-pong: asking for more costs the kernel an empty look at the
 * queue per datagram), a whole batch once a receive got all it asked for,
 * and one again after a receive that drained the queue.
 */
static void test_batch(struct usb4_udp_sock *a, struct usb4_udp_sock *b)
{
	static struct got g;
	int polled;

	memset(&g, 0, sizeof(g));
	plan.count = 0;
	CHECK_EQ_MSG(usb4_udp_poll(b, place, on_rx, &g, 8), 0,
		     "an idle socket handed something up");
	for (int i = 0; i < 5; i++)
		send_pattern(a, b, 100, (unsigned) (20 + i));
	CHECK_EQ_MSG(usb4_udp_poll(b, place, on_rx, &g, 8), 1,
		     "after an empty receive, one asks for one datagram");
	CHECK_EQ_MSG(usb4_udp_poll(b, place, on_rx, &g, 8), 4,
		     "after a receive that got all it asked for, one asks for "
		     "a batch (and takes the 4 queued)");
	for (int i = 0; i < 3; i++)
		send_pattern(a, b, 100, (unsigned) (30 + i));
	polled = usb4_udp_poll(b, place, on_rx, &g, 8);
	CHECK_EQ_MSG(polled, 1, "after a receive that drained the queue (4 of "
		     "8), one asks for one datagram again");
	polled += usb4_udp_poll(b, place, on_rx, &g, 2);
	CHECK_EQ_MSG(polled, 3, "a batch is bounded by the budget");
	CHECK_EQ(g.n, 8);
	for (int i = 0; i < 8; i++)
		CHECK_MSG(is_pattern(g.data[i], 100, i < 5 ? 20 + i : 25 + i),
			  "datagram %d arrives wrong or out of order", i);
	CHECK_EQ(usb4_udp_batch_next(1, -1, 8), 1);
	CHECK_EQ(usb4_udp_batch_next(1, 0, 8), 1);
	CHECK_EQ(usb4_udp_batch_next(8, 8, 8), 8);
	CHECK_EQ(usb4_udp_batch_next(8, 7, 8), 1);
}

/* Addresses, sizes, budgets, counters, and what the socket refuses. */
static void test_basics(struct usb4_udp_sock *a, struct usb4_udp_sock *b)
{
	static struct got g;
	static unsigned char huge[65508];
	struct usb4_udp_addr aa, ba, other;
	struct iovec iov = { huge, sizeof(huge) };
	uint64_t sent = usb4_udp_sock_stats(a)->sent;
	uint64_t received = usb4_udp_sock_stats(b)->received;
	struct iovec pieces[3] = {
		{ huge, 10 }, { huge + 10, 0 }, { huge + 10, 90 },
	};

	usb4_udp_sock_addr(a, &aa);
	usb4_udp_sock_addr(b, &ba);
	CHECK_EQ(aa.family, 4);
	CHECK_MSG(aa.port != 0 && ba.port != 0 && aa.port != ba.port,
		  "ports %u and %u: the kernel should pick two", aa.port,
		  ba.port);
	CHECK_MSG(!memcmp(aa.ip, "\x7f\0\0\1", 4), "bound to another address "
		  "than 127.0.0.1");
	CHECK_MSG(usb4_udp_sock_fd(a) >= 0 &&
		  usb4_udp_sock_fd(a) != usb4_udp_sock_fd(b),
		  "socket fds %d and %d", usb4_udp_sock_fd(a),
		  usb4_udp_sock_fd(b));
	CHECK_MSG(usb4_udp_addr_eq(&aa, &aa) && !usb4_udp_addr_eq(&aa, &ba),
		  "address equality is wrong");
	/* An IPv4 address: bytes past the first four do not count. */
	other = aa;
	other.ip[15] ^= 1;
	CHECK_MSG(usb4_udp_addr_eq(&aa, &other),
		  "IPv4 addresses differing past byte 4 compare unequal");
	other = aa;
	other.family = 6;
	CHECK_MSG(!usb4_udp_addr_eq(&aa, &other),
		  "an IPv4 and an IPv6 address compare equal");

	/* One byte past the largest IPv4 datagram: refused, nothing sent. */
	CHECK_EQ_MSG(usb4_udp_send(a, &ba, &iov, 1), -FI_EMSGSIZE,
		     "a 65508-byte datagram over IPv4");
	CHECK_EQ(usb4_udp_sock_stats(a)->sent, sent);

	/* Gathered from pieces, one of them empty; and an empty datagram,
	 * handed up as one empty piece.  A budget of 1 takes one. */
	memset(&g, 0, sizeof(g));
	plan.count = 0;
	pattern(huge, 100, 11);
	CHECK_EQ(usb4_udp_send(a, &ba, pieces, 3), 0);
	CHECK_EQ(usb4_udp_send(a, &ba, &iov, 0), 0);
	for (int tries = 0; g.n < 1 && tries < 1000; tries++)
		CHECK_MSG(usb4_udp_poll(b, place, on_rx, &g, 1) <= 1,
			  "a poll of budget 1 took more than one datagram");
	CHECK_EQ_MSG(g.n, 1, "a poll of budget 1 handed up %d datagrams", g.n);
	poll_for(b, &g, 2);
	check_from(&g, a);
	CHECK_EQ(g.len[0], 100);
	CHECK_MSG(is_pattern(g.data[0], 100, 11),
		  "a datagram gathered from 3 pieces arrives wrong");
	CHECK_EQ_MSG(g.len[1], 0, "the empty datagram");
	CHECK_EQ_MSG(g.pieces[1], 1, "an empty datagram comes as one piece");
	CHECK_EQ(usb4_udp_sock_stats(a)->sent, sent + 2);
	CHECK_EQ(usb4_udp_sock_stats(b)->received, received + 2);
	CHECK_EQ_MSG(usb4_udp_poll(b, place, on_rx, &g, 8), 0,
		     "an idle socket handed something up");
}

/* Datagrams gathered from a header and a payload piece, as rel sends
 * them, either side of the size that the socket puts together itself
 * (sendto) rather than hand to sendmsg: each arrives whole, in order,
 * from its sender. */
static void test_gathered_sizes(struct usb4_udp_sock *a,
				struct usb4_udp_sock *b)
{
	static const size_t sizes[] = { 1, 48, 255, 256, 257, 1000 };
	static unsigned char buf[1000];
	static struct got g;
	struct usb4_udp_addr ba;
	int n = (int) (sizeof(sizes) / sizeof(sizes[0]));

	usb4_udp_sock_addr(b, &ba);
	memset(&g, 0, sizeof(g));
	plan.count = 0;
	for (int i = 0; i < n; i++) {
		struct iovec two[2] = {
			{ buf, sizes[i] < 40 ? sizes[i] : 40 },
			{ buf + 40, sizes[i] < 40 ? 0 : sizes[i] - 40 },
		};

		pattern(buf, sizes[i], (unsigned) (50 + i));
		CHECK_EQ_MSG(usb4_udp_send(a, &ba, two, 2), 0,
			     "sending %zu bytes in two pieces", sizes[i]);
		poll_for(b, &g, i + 1);
	}
	check_from(&g, a);
	for (int i = 0; i < g.n; i++)
		CHECK_MSG(g.len[i] == sizes[i] &&
			  is_pattern(g.data[i], sizes[i], (unsigned) (50 + i)),
			  "a datagram of %zu bytes gathered from two pieces "
			  "arrived as %zu bytes or wrong", sizes[i], g.len[i]);
}

/* The largest payload follows the interface's MTU minus IP and UDP
 * headers, capped at what UDP carries. */
static void test_datagram_max(void)
{
	struct usb4_iface lo = loopback();
	struct usb4_udp_sock *s;

	lo.mtu = 1500;
	CHECK_EQ(usb4_udp_sock_open(&s, &lo, NULL), 0);
	CHECK_EQ_MSG(usb4_udp_sock_datagram_max(s), 1500 - 28,
		     "datagram payload for a 1500-byte MTU over IPv4");
	usb4_udp_sock_close(s);
	lo.mtu = 1u << 20;
	CHECK_EQ(usb4_udp_sock_open(&s, &lo, NULL), 0);
	CHECK_EQ_MSG(usb4_udp_sock_datagram_max(s), 65507,
		     "datagram payload for an MTU beyond UDP's");
	usb4_udp_sock_close(s);
	usb4_udp_sock_close(NULL);
}

/* A batch of datagrams with holes, every one corrupted: each arrives with
 * exactly one byte changed, also when the byte lies in the hole. */
static void test_corrupt_in_holes(void)
{
	static struct got g;
	struct usb4_iface lo = loopback();
	struct usb4_udp_faults f = { .corrupt = 1.0 };
	struct usb4_udp_sock *a, *b;
	unsigned char dest[4][BIG];
	int changed_in_hole = 0;

	CHECK_EQ(usb4_udp_sock_open(&a, &lo, NULL), 0);
	CHECK_EQ(usb4_udp_sock_open(&b, &lo, &f), 0);
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
		CHECK_EQ_MSG(diff, 1, "round %d: a corrupted datagram must "
			     "differ in exactly one byte", round);
		changed_in_hole += where >= 10 && where < BIG - 10;
	}
	CHECK_MSG(changed_in_hole > 0, "no corruption ever struck a hole "
		  "(%d of %d bytes lie in one)", BIG - 20, BIG);
	CHECK_EQ(usb4_udp_sock_stats(b)->faults_corrupted, 8);
	usb4_udp_sock_close(a);
	usb4_udp_sock_close(b);
}

/* Loss: nothing handed up, everything counted. */
static void test_drop_all(void)
{
	static struct got g;
	struct usb4_iface lo = loopback();
	struct usb4_udp_faults f = { .drop = 1.0 };
	struct usb4_udp_sock *a, *b;
	int polled = 0;

	CHECK_EQ(usb4_udp_sock_open(&a, &lo, NULL), 0);
	CHECK_EQ(usb4_udp_sock_open(&b, &lo, &f), 0);
	memset(&g, 0, sizeof(g));
	plan.count = 0;
	for (int i = 0; i < 5; i++)
		send_pattern(a, b, 300, (unsigned) i);
	for (int tries = 0; polled < 5 && tries < 1000; tries++)
		polled += usb4_udp_poll(b, place, on_rx, &g, 8);
	CHECK_EQ_MSG(polled, 5, "dropped datagrams still count as taken in");
	CHECK_EQ_MSG(g.n, 0, "a dropped datagram was handed up");
	CHECK_EQ(usb4_udp_sock_stats(b)->faults_dropped, 5);
	CHECK_EQ(usb4_udp_sock_stats(b)->received, 5);
	usb4_udp_sock_close(a);
	usb4_udp_sock_close(b);
}

/* The same over IPv6 loopback, when the machine has it: addresses made
 * from sockaddr_in6 and back, the datagram size for a 40-byte header. */
static void test_ipv6(void)
{
	static struct got g;
	struct usb4_iface lo = { .name = "lo", .family = AF_INET6, .mtu = 65535 };
	struct usb4_udp_sock *a, *b;
	struct usb4_udp_addr addr;

	inet_pton(AF_INET6, "::1", lo.ip);
	if (usb4_udp_sock_open(&a, &lo, NULL)) {
		printf("test_udp_socket: no IPv6 loopback here, IPv6 not tested\n");
		return;
	}
	CHECK_EQ(usb4_udp_sock_open(&b, &lo, NULL), 0);
	usb4_udp_sock_addr(b, &addr);
	CHECK_EQ(addr.family, 6);
	CHECK(addr.port != 0);
	CHECK_MSG(!memcmp(addr.ip, lo.ip, 16), "not bound to ::1");
	CHECK_EQ_MSG(usb4_udp_sock_datagram_max(b), 65535 - 48,
		     "IPv6 takes a 40-byte header");
	memset(&g, 0, sizeof(g));
	plan.count = 0;
	send_pattern(a, b, BIG, 9);
	poll_for(b, &g, 1);
	check_from(&g, a);
	CHECK_EQ(g.len[0], BIG);
	CHECK_MSG(is_pattern(g.data[0], BIG, 9), "IPv6 datagram arrives wrong");
	usb4_udp_sock_close(a);
	usb4_udp_sock_close(b);
}

/* The responder's two-byte test: a RESOLVE query, and nothing else (a
 * DATA datagram, an answer, another version, a datagram of one byte). */
static void test_resolve_is_query(void)
{
	struct usb4_wire_resolve q = { .version = USB4_WIRE_VERSION,
				       .type = USB4_RESOLVE_QUERY };
	struct usb4_wire_rel data = { .version = USB4_WIRE_VERSION,
				      .type = USB4_REL_DATA };
	struct iovec iov = { .iov_base = &q, .iov_len = sizeof(q) };
	struct iovec head = { .iov_base = &q, .iov_len = 2 };

	CHECK(usb4_udp_resolve_is_query(&iov));
	CHECK(usb4_udp_resolve_is_query(&head));	/* the rest may lie apart */
	head.iov_len = 1;
	CHECK(!usb4_udp_resolve_is_query(&head));
	q.type = USB4_RESOLVE_ANSWER;
	CHECK(!usb4_udp_resolve_is_query(&iov));
	q.type = USB4_RESOLVE_QUERY;
	q.version = USB4_WIRE_VERSION + 1;
	CHECK(!usb4_udp_resolve_is_query(&iov));
	iov = (struct iovec) { .iov_base = &data, .iov_len = sizeof(data) };
	CHECK(!usb4_udp_resolve_is_query(&iov));
}

/*
 * A datagram's path is found by comparing its source with each path's
 * address: family, port and the family's bytes of the address count,
 * the bytes an IPv4 address leaves unused do not.
 */
static void test_addr_eq(void)
{
	struct usb4_udp_addr v4 = { .family = 4, .port = 7000,
				    .ip = { 10, 77, 0, 1 } };
	struct usb4_udp_addr v6 = { .family = 6, .port = 7000,
				    .ip = { 0xfd, [15] = 1 } };
	struct usb4_udp_addr o;

	o = v4;
	CHECK(usb4_udp_addr_eq(&v4, &o));
	o.ip[12] = 0xee;	/* past an IPv4 address */
	CHECK_MSG(usb4_udp_addr_eq(&v4, &o),
		  "IPv4 addresses differ in bytes they do not use");
	for (int i = 0; i < 4; i++) {
		o = v4;
		o.ip[i] ^= 1;
		CHECK_MSG(!usb4_udp_addr_eq(&v4, &o), "IPv4 byte %d ignored", i);
	}
	for (int i = 0; i < 16; i++) {
		o = v6;
		o.ip[i] ^= 1;
		CHECK_MSG(!usb4_udp_addr_eq(&v6, &o), "IPv6 byte %d ignored", i);
	}
	o = v4;
	o.port++;
	CHECK(!usb4_udp_addr_eq(&v4, &o));
	o = v6;
	o.family = 4;
	CHECK(!usb4_udp_addr_eq(&v6, &o));
}

int main(void)
{
	struct usb4_iface lo = loopback();
	struct usb4_udp_sock *a, *b;

	CHECK_EQ(usb4_udp_sock_open(&a, &lo, NULL), 0);
	CHECK_EQ(usb4_udp_sock_open(&b, &lo, NULL), 0);
	CHECK_EQ(usb4_udp_sock_datagram_max(b), 65507);
	test_basics(a, b);
	test_holes(a, b);
	test_evacuate(a, b);
	test_evacuate_misses(a, b);
	test_batch(a, b);
	test_gathered_sizes(a, b);
	usb4_udp_sock_close(a);
	usb4_udp_sock_close(b);
	test_datagram_max();
	test_corrupt_in_holes();
	test_drop_all();
	test_ipv6();
	test_resolve_is_query();
	test_addr_eq();
	return usb4_test_done("test_udp_socket");
}
