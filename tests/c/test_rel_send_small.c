/*
 * rel's short send of a small DATA (prov_usb4/src/rel/usb4_rel_send_small.c)
 * puts on the link the bytes the general path puts there.  Two twin pairs
 * of peers, A1-B1 and A2-B2 (same ids, same first seqs, same clock), go
 * through the same steps; A1 sends with usb4_rel_send (the short path: its
 * datagrams reach the link in one piece) and A2 the same payloads with
 * usb4_rel_send_ref, the last piece referenced (the general path: header
 * and payload pieces).  Every datagram of A1 must equal A2's, the first
 * transmission and the retransmissions the slot's state makes, in the
 * states the short path reads: acks and sacks owed, a window shrunk by a
 * receiver not ready, frames in flight, a busy link, and (the portable
 * pass, FI_USB4_PORTABLE=1) a session checked with XXH3.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_rel.h"
#include "../../prov_usb4/src/wire.h"
#include "usb4_test.h"

#define MS	1000000ull
#define ID_A	0xa1a1a1a1a1a1a1a1ull
#define ID_B	0xb2b2b2b2b2b2b2b2ull
#define SENT_MAX	64
#define DGRAM_MAX	512

struct sent {
	unsigned char buf[DGRAM_MAX];
	size_t len;
	int pieces;
};

struct end {
	struct usb4_rel_peer *rel;
	struct usb4_rel_io io;
	struct sent out[SENT_MAX];
	int n;
	int refuse;		/* xmit calls to answer -FI_EAGAIN */
	bool not_ready;		/* deliveries refused */
	uint64_t delivered;
};

static int cap_xmit(void *ctx, const struct iovec *iov, int count)
{
	struct end *e = ctx;
	struct sent *s;

	if (e->refuse > 0) {
		e->refuse--;
		return -FI_EAGAIN;
	}
	CHECK(e->n < SENT_MAX);
	if (e->n >= SENT_MAX)
		return -FI_EIO;
	s = &e->out[e->n++];
	s->len = 0;
	s->pieces = count;
	for (int i = 0; i < count; i++) {
		memcpy(s->buf + s->len, iov[i].iov_base, iov[i].iov_len);
		s->len += iov[i].iov_len;
	}
	return 0;
}

static int cap_deliver(void *ctx, const struct iovec *payload, int count)
{
	struct end *e = ctx;

	(void) payload;
	(void) count;
	if (e->not_ready)
		return -FI_EAGAIN;
	e->delivered++;
	return 0;
}

/* A pair of ends, A and B, and their twins. */
struct twin {
	struct end a[2], b[2];
};

static void twin_open(struct twin *t)
{
	struct usb4_rel_cfg cfg = {
		.window = 8, .payload_max = 256,
		.rto_initial_ns = 1 * MS, .rto_max_ns = 16 * MS,
		.ack_delay_ns = 1 * MS, .dead_ns = 1000 * MS,
	};

	memset(t, 0, sizeof(*t));
	for (int k = 0; k < 2; k++) {
		CHECK_EQ(usb4_rel_peer_open(&t->a[k].rel, &cfg, ID_A, ID_B, 0), 0);
		CHECK_EQ(usb4_rel_peer_open(&t->b[k].rel, &cfg, ID_B, ID_A, 0), 0);
		t->a[k].io = (struct usb4_rel_io) {
			.xmit = cap_xmit, .xmit_ctx = &t->a[k],
			.deliver = cap_deliver, .deliver_ctx = &t->a[k] };
		t->b[k].io = (struct usb4_rel_io) {
			.xmit = cap_xmit, .xmit_ctx = &t->b[k],
			.deliver = cap_deliver, .deliver_ctx = &t->b[k] };
	}
}

static void twin_close(struct twin *t)
{
	for (int k = 0; k < 2; k++) {
		usb4_rel_peer_close(t->a[k].rel);
		usb4_rel_peer_close(t->b[k].rel);
	}
}

/* What `from` sent goes to `to`, but datagram skip (-1: none). */
static void cross(struct end *from, struct end *to, uint64_t now, int skip)
{
	for (int i = 0; i < from->n; i++)
		if (i != skip)
			usb4_rel_input(to->rel, now, from->out[i].buf,
				       from->out[i].len, &to->io);
	from->n = 0;
}

static const unsigned char payload[] = "8 bytes!the rest of a 56 B frame, "
				       "header and all....";

/* Both A's timers at now. */
static void timers_run(struct twin *t, uint64_t now)
{
	for (int k = 0; k < 2; k++)
		usb4_rel_timer(t->a[k].rel, now, &t->a[k].io);
}

/* A1 sends len bytes short, A2 the same through the general path. */
static void send_both(struct twin *t, size_t len, uint64_t now)
{
	struct iovec two[2] = {
		{ (void *) payload, len / 2 },
		{ (void *) (payload + len / 2), len - len / 2 },
	};

	CHECK_EQ(usb4_rel_send(t->a[0].rel, now, two, 2, &t->a[0].io), 0);
	CHECK_EQ(usb4_rel_send_ref(t->a[1].rel, now, two, 2, 1, 7,
				   &t->a[1].io), 0);
}

/* A1's datagrams since `from` equal A2's; A1's came in `pieces` pieces
 * (1: the short path sent them; 0: do not look). */
static void same_bytes(const struct twin *t, int from, int pieces,
		       const char *what)
{
	CHECK_EQ_MSG(t->a[0].n, t->a[1].n, "%s: datagram count", what);
	for (int i = from; i < t->a[0].n && i < t->a[1].n; i++) {
		const struct sent *s = &t->a[0].out[i], *g = &t->a[1].out[i];

		CHECK_EQ_MSG(s->len, g->len, "%s: datagram %d length", what, i);
		CHECK_MSG(s->len == g->len && !memcmp(s->buf, g->buf, s->len),
			  "%s: datagram %d differs", what, i);
		if (pieces)
			CHECK_EQ_MSG(s->pieces, pieces, "%s: datagram %d pieces",
				     what, i);
		CHECK_MSG(g->pieces > 1, "%s: general datagram %d in one piece",
			  what, i);
	}
}

/* Both pairs handshake: A's first send (general: no session yet), B's
 * HELLO_ACK, and the DATA it frees goes to B. */
static void established(struct twin *t)
{
	for (int k = 0; k < 2; k++) {
		struct iovec one = { (void *) payload, 8 };

		CHECK_EQ(usb4_rel_send(t->a[k].rel, 0, &one, 1, &t->a[k].io), 0);
		cross(&t->a[k], &t->b[k], 0, -1);
		cross(&t->b[k], &t->a[k], 0, -1);
		cross(&t->a[k], &t->b[k], 0, -1);
	}
}

/* B sends n payloads to A (the twins alike); datagram skip of them is
 * lost, so A holds the rest out of order and owes a sack. */
static void b_sends(struct twin *t, int n, int skip, uint64_t now)
{
	for (int k = 0; k < 2; k++) {
		struct iovec one = { (void *) payload, 16 };

		for (int i = 0; i < n; i++)
			CHECK_EQ(usb4_rel_send(t->b[k].rel, now, &one, 1,
					       &t->b[k].io), 0);
		cross(&t->b[k], &t->a[k], now, skip);
	}
}

static uint32_t hdr_field_sack_window(const struct sent *s, uint32_t *wnd)
{
	struct usb4_wire_rel h;

	memcpy(&h, s->buf, sizeof(h));
	*wnd = le32toh(h.window);
	return (uint32_t) le64toh(h.sack);
}

static uint16_t flags_of(const struct sent *s)
{
	struct usb4_wire_rel h;

	memcpy(&h, s->buf, sizeof(h));
	return le16toh(h.flags);
}

/* Acks and window owed to B ride on the short DATA as on the general one;
 * every size from 1 to a slot's inline room. */
static void test_same_bytes_established(void)
{
	struct twin t;
	uint64_t now = 1000;
	uint16_t xxh3_flagged = 0;

	twin_open(&t);
	established(&t);
	b_sends(&t, 3, -1, now);
	for (size_t len = 1; len <= 64; len += 9) {
		int from = t.a[0].n;

		send_both(&t, len, now += 1000);
		same_bytes(&t, from, 1, "established");
		xxh3_flagged |= flags_of(&t.a[0].out[t.a[0].n - 1]);
		cross(&t.a[0], &t.b[0], now, -1);
		cross(&t.a[1], &t.b[1], now, -1);
		usb4_rel_ack_now(t.b[0].rel, &t.b[0].io);
		usb4_rel_ack_now(t.b[1].rel, &t.b[1].io);
		cross(&t.b[0], &t.a[0], now, -1);
		cross(&t.b[1], &t.a[1], now, -1);
	}
	CHECK_EQ(t.b[0].delivered, t.b[1].delivered);
	CHECK_EQ(!!(xxh3_flagged & USB4_REL_F_XXH3), !usb4_crc32c_fast());
	CHECK_EQ(usb4_rel_stats(t.a[0].rel)->sent,
		 usb4_rel_stats(t.a[1].rel)->sent);
	twin_close(&t);
}

/* A sack of B's frames A holds past a hole, and a window a receiver not
 * ready shrank: in the short header as in the general one. */
static void test_same_bytes_sack_and_window(void)
{
	struct twin t;
	uint32_t wnd;
	int from;

	twin_open(&t);
	established(&t);
	t.a[0].not_ready = t.a[1].not_ready = true;
	b_sends(&t, 2, -1, 2000);	/* held: the window shrinks */
	b_sends(&t, 4, 1, 3000);	/* one lost: the rest out of order */
	from = t.a[0].n;
	send_both(&t, 56, 4000);
	same_bytes(&t, from, 1, "sack and window");
	CHECK(t.a[0].n > from);
	if (t.a[0].n > from) {
		CHECK(hdr_field_sack_window(&t.a[0].out[t.a[0].n - 1], &wnd));
		CHECK(wnd < 8);
	}
	twin_close(&t);
}

/* Frames in flight, then the timer's retransmissions of them: the slot
 * the short path filled sends what the general path's slot sends. */
static void test_same_retransmissions(void)
{
	struct twin t;
	uint64_t now = 5000;
	int from;

	twin_open(&t);
	established(&t);
	from = t.a[0].n;
	for (int i = 0; i < 5; i++)
		send_both(&t, 8 + (size_t) i * 11, now += MS / 3);
	same_bytes(&t, from, 1, "in flight");
	from = t.a[0].n;
	now += MS / 3;	/* the first timeouts (1 ms) passed, not the last */
	timers_run(&t, now);
	CHECK(t.a[0].n > from);
	CHECK(t.a[1].n < from + 6);	/* some are not due yet */
	same_bytes(&t, from, 0, "first timeouts");
	from = t.a[0].n;
	now += 20 * MS;	/* past every timeout: all go again */
	timers_run(&t, now);
	CHECK(t.a[0].n > from);
	same_bytes(&t, from, 0, "retransmitted");
	CHECK_EQ(usb4_rel_stats(t.a[0].rel)->retransmitted,
		 usb4_rel_stats(t.a[1].rel)->retransmitted);
	cross(&t.a[0], &t.b[0], now, -1);
	cross(&t.a[1], &t.b[1], now, -1);
	CHECK_EQ(t.b[0].delivered, 6);
	CHECK_EQ(t.b[1].delivered, 6);
	cross(&t.b[0], &t.a[0], now, -1);
	cross(&t.b[1], &t.a[1], now, -1);
	CHECK_EQ(usb4_rel_in_flight(t.a[0].rel), 0);
	CHECK_EQ(usb4_rel_in_flight(t.a[1].rel), 0);
	twin_close(&t);
}

/* The link busy at the short send: the frame waits queued, and the
 * timer sends it as the general path's queued frame goes. */
static void test_busy_link_queues(void)
{
	struct twin t;
	uint64_t now = 7000;
	int from;

	twin_open(&t);
	established(&t);
	from = t.a[0].n;
	t.a[0].refuse = t.a[1].refuse = 1;
	send_both(&t, 24, now);
	CHECK_EQ(t.a[0].n, from);
	/* the handshake's frame is in flight; this one waits */
	CHECK_EQ(usb4_rel_unacked(t.a[0].rel), 2);
	CHECK_EQ(usb4_rel_in_flight(t.a[0].rel), 1);
	send_both(&t, 8, now + 10);	/* behind a queued frame: general */
	timers_run(&t, now + 20);
	CHECK_EQ(t.a[0].n, from + 2);
	same_bytes(&t, from, 0, "after a busy link");
	twin_close(&t);
}

/* Window full: the short path leaves the frame to the general path,
 * which answers -FI_EAGAIN. */
static void test_window_full_general(void)
{
	struct twin t;
	struct iovec one = { (void *) payload, 8 };
	int sent = 0;

	twin_open(&t);
	established(&t);
	while (usb4_rel_send(t.a[0].rel, 9000, &one, 1, &t.a[0].io) == 0)
		sent++;
	CHECK_EQ(sent, 7);	/* window 8, one frame unacknowledged */
	CHECK(!usb4_rel_can_send(t.a[0].rel));
	twin_close(&t);
}

int main(int argc, char **argv)
{
	test_same_bytes_established();
	test_same_bytes_sack_and_window();
	test_same_retransmissions();
	test_busy_link_queues();
	test_window_full_general();
	if (usb4_crc32c_fast()) {
		if (usb4_test_failures)
			return usb4_test_done("test_rel_send_small (CRC32C)");
		fflush(NULL);
		setenv("FI_USB4_PORTABLE", "1", 1);
		execv("/proc/self/exe", argv);
		CHECK(!"exec of the portable pass");
	}
	(void) argc;
	printf("test_rel_send_small: portable pass (check %s)\n",
	       usb4_crc32c_fast() ? "CRC32C" : "XXH3 where agreed");
	return usb4_test_done("test_rel_send_small");
}
