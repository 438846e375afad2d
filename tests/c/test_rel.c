/*
 * Unit tests of the reliability layer (prov_usb4/src/rel/usb4_rel.c and its
 * buffer pool, usb4_rel_pool.c): two rel peers A and B joined by a fake link
 * whose datagrams the test holds, drops, duplicates, delays, corrupts and
 * refuses, under a fake clock; a fake receiver that may refuse deliveries
 * (receiver not ready); pools small enough to run dry.  Every run checks
 * that each payload arrives exactly once, in order, bit-exact.
 */
#include <endian.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>

#include "usb4_rel.h"
#include "../../prov_usb4/src/rel/usb4_rel_keepalive.h"
#include "../../prov_usb4/src/wire.h"
#include "usb4_test.h"

#define HDR	sizeof(struct usb4_wire_rel)
#define PMAX	512
#define US	1000ull
#define MS	1000000ull
#define ID_A	0xa1a1a1a1a1a1a1a1ull
#define ID_B	0xb2b2b2b2b2b2b2b2ull
#define HELLO_LEN	sizeof(struct usb4_wire_hello)
#define TRIM_NS	(100 * MS)	/* USB4_REL_TRIM_NS of usb4_rel.c */
#define STREAM_MID	3	/* from this stream on: payloads of 129..256 B */

/* ---- deterministic randomness ------------------------------------------ */

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static double rng_unit(void)
{
	return (double) (rng() >> 11) / (double) (1ull << 53);
}

static uint64_t mix(uint64_t x)
{
	x = (x ^ (x >> 33)) * 0xff51afd7ed558ccdull;
	x = (x ^ (x >> 33)) * 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Payload number idx of a stream, content from both: random length
 * 0..PMAX, or 129..256 from STREAM_MID on (each copy then takes one 256 B
 * buffer of a pool, and none is small enough to live in a slot). */
static size_t gen_payload(uint64_t stream, uint64_t idx, unsigned char *p)
{
	uint64_t h = mix(stream * 0x9e3779b97f4a7c15ull + idx);
	size_t len = stream >= STREAM_MID ? 129 + h % 128 : h % (PMAX + 1);

	for (size_t j = 0; j < len; j++)
		p[j] = (unsigned char) ((h >> ((j & 7) * 8)) ^ j);
	return len;
}

/* ---- fake link ---------------------------------------------------------- */

struct dgram {
	unsigned char *buf;
	size_t len;
	uint64_t release;	/* wire: step it arrives */
	bool corrupt;
};

struct queue {
	struct dgram *d;
	size_t n, cap;
};

static void q_push(struct queue *q, struct dgram d)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? 2 * q->cap : 64;
		q->d = realloc(q->d, q->cap * sizeof(*q->d));
	}
	q->d[q->n++] = d;
}

static void q_clear(struct queue *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->d[i].buf);
	q->n = 0;
}

static void q_free(struct queue *q)
{
	q_clear(q);
	free(q->d);
	q->d = NULL;
	q->cap = 0;
}

struct side {
	struct usb4_rel_peer *rel;
	struct usb4_rel_io io;
	struct queue out;	/* what xmit sent, in order */
	int refuse;		/* xmit calls to answer -FI_EAGAIN */
	double refuse_p;	/* and this fraction at random */
	bool not_ready;		/* deliver answers -FI_EAGAIN */
	double not_ready_p;	/* and this fraction at random */
	uint64_t refused;	/* deliveries answered -FI_EAGAIN */
	struct usb4_rel_pool *pool;	/* the side's cfg.pool */
	uint64_t pool_refused;	/* sends refused for want of a buffer */
	uint64_t stream;	/* of the payloads this side receives */
	uint64_t expect;	/* next payload index to receive */
	bool bad;		/* a delivery differed from what was sent */
	unsigned char last[PMAX];
	size_t last_len;
};

static int fake_xmit(void *ctx, const struct iovec *iov, int count)
{
	struct side *s = ctx;
	struct dgram d = { 0 };

	if (s->refuse > 0 || (s->refuse_p > 0 && rng_unit() < s->refuse_p)) {
		s->refuse -= s->refuse > 0;
		return -FI_EAGAIN;
	}
	for (int i = 0; i < count; i++)
		d.len += iov[i].iov_len;
	d.buf = malloc(d.len ? d.len : 1);
	for (size_t i = 0, off = 0; i < (size_t) count; i++) {
		memcpy(d.buf + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	q_push(&s->out, d);
	return 0;
}

/* Takes the next payload of the side's stream unless not ready; a payload
 * lost, repeated or out of order differs from the one expected. */
static int fake_deliver(void *ctx, const struct iovec *pieces, int count)
{
	struct side *s = ctx;
	unsigned char want[PMAX], payload[PMAX + 1];
	size_t want_len, len = 0;

	if (s->not_ready ||
	    (s->not_ready_p > 0 && rng_unit() < s->not_ready_p)) {
		s->refused++;
		return -FI_EAGAIN;
	}
	want_len = gen_payload(s->stream, s->expect++, want);
	for (int i = 0; i < count; i++) {
		if (len + pieces[i].iov_len > sizeof(payload)) {
			s->bad = true;
			return 0;
		}
		memcpy(payload + len, pieces[i].iov_base, pieces[i].iov_len);
		len += pieces[i].iov_len;
	}

	if (len != want_len || memcmp(payload, want, len))
		s->bad = true;
	if (len <= PMAX) {
		memcpy(s->last, payload, len);
		s->last_len = len;
	}
	return 0;
}

static struct usb4_rel_cfg base_cfg(void)
{
	struct usb4_rel_cfg cfg = {
		.window = 32,
		.payload_max = PMAX,
		.rto_initial_ns = 1 * MS,
		.rto_max_ns = 16 * MS,
		.ack_delay_ns = 100 * US,
		.dead_ns = 200 * MS,
	};
	return cfg;
}

/* A talks to B: each opens its end with the other's id. */
static void pair_open(struct side *a, struct side *b,
		      const struct usb4_rel_cfg *ca,
		      const struct usb4_rel_cfg *cb, uint64_t now)
{
	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	CHECK_EQ(usb4_rel_peer_open(&a->rel, ca, ID_A, ID_B, now), 0);
	CHECK_EQ(usb4_rel_peer_open(&b->rel, cb, ID_B, ID_A, now), 0);
	a->io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = a,
		.deliver = fake_deliver, .deliver_ctx = a };
	b->io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = b,
		.deliver = fake_deliver, .deliver_ctx = b };
	a->pool = ca->pool;
	b->pool = cb->pool;
	a->stream = 2;	/* B sends stream 2 to A */
	b->stream = 1;	/* A sends stream 1 to B */
}

static void side_close(struct side *s)
{
	usb4_rel_peer_close(s->rel);
	q_free(&s->out);
}

/* Sends payload number idx of the stream the other side expects. */
static int send_idx(struct side *s, uint64_t stream, uint64_t idx,
		    uint64_t now)
{
	unsigned char p[PMAX];
	size_t len = gen_payload(stream, idx, p);
	struct iovec iov[2] = { { p, len / 2 }, { p + len / 2, len - len / 2 } };

	return usb4_rel_send(s->rel, now, iov, 2, &s->io);
}

/* Hands everything `from` sent to `to`, in order; returns how many. */
static size_t xfer(struct side *from, struct side *to, uint64_t now)
{
	struct queue q = from->out;
	size_t n = q.n;

	memset(&from->out, 0, sizeof(from->out));
	for (size_t i = 0; i < n; i++)
		usb4_rel_input(to->rel, now, q.d[i].buf, q.d[i].len, &to->io);
	q_free(&q);
	return n;
}

static struct usb4_wire_rel hdr_of(const struct dgram *d)
{
	struct usb4_wire_rel h;

	memcpy(&h, d->buf, HDR);
	h.seq = le32toh(h.seq);
	h.ack = le32toh(h.ack);
	h.sack = le64toh(h.sack);
	h.window = le32toh(h.window);
	h.len = le32toh(h.len);
	return h;
}

static int type_at(const struct side *s, size_t i)
{
	return i < s->out.n ? hdr_of(&s->out.d[i]).type : -1;
}

/* A hand-made datagram with a correct CRC (the CRC can be spoiled after). */
static size_t craft(unsigned char *buf, uint8_t type, uint64_t src,
		    uint64_t dst, uint32_t seq, uint32_t ack, uint64_t sack,
		    const void *payload, uint32_t len)
{
	struct usb4_wire_rel w = {
		.version = USB4_WIRE_VERSION, .type = type,
		.src_id = htole64(src), .dst_id = htole64(dst),
		.seq = htole32(seq), .ack = htole32(ack),
		.sack = htole64(sack), .window = htole32(32),
		.len = htole32(len),
	};

	memcpy(buf, &w, HDR);
	memcpy(buf + HDR, payload, len);
	w.crc = htole32(usb4_crc32c(0, buf, HDR + len));
	memcpy(buf, &w, HDR);
	return HDR + len;
}

static void recrc(unsigned char *buf, size_t len)
{
	uint32_t zero = 0, crc;

	memcpy(buf + 4, &zero, 4);
	crc = htole32(usb4_crc32c(0, buf, len));
	memcpy(buf + 4, &crc, 4);
}

/* A handshake datagram from A to B (seq: A's first) saying proto and
 * features, with header version `version` and a CRC in our layout. */
static size_t craft_hello(unsigned char *buf, uint8_t version, uint8_t type,
			  uint32_t seq, uint16_t proto, uint32_t features)
{
	struct usb4_wire_hello hello = {
		.proto = htole16(proto), .features = htole32(features),
		.datagram_max = htole32(HDR + PMAX),
	};
	size_t len = craft(buf, type, ID_A, ID_B, seq, 0, 0, &hello,
			   sizeof(hello));

	buf[0] = version;
	recrc(buf, len);
	return len;
}

static int peek_one(const void *buf, size_t len, struct usb4_rel_head *head)
{
	struct iovec one = { .iov_base = (void *) buf, .iov_len = len };

	return usb4_rel_peek(&one, 1, head);
}

/* A sends payload 0 of B's stream and the handshake completes; A's DATA
 * stays queued in a->out for the caller. */
static void handshake(struct side *a, struct side *b, uint64_t now)
{
	CHECK_EQ(send_idx(a, b->stream, 0, now), 0);
	CHECK_EQ(type_at(a, 0), USB4_REL_HELLO);
	xfer(a, b, now);
	CHECK_EQ(type_at(b, 0), USB4_REL_HELLO_ACK);
	xfer(b, a, now);
	CHECK_EQ(type_at(a, 0), USB4_REL_DATA);
}

/* Payloads next..n-1 of B's stream leave A as the window (and pool) allow,
 * timers run when due, every datagram crosses the clean link; returns how
 * many crossed. */
static size_t clean_step(struct side *a, struct side *b, uint64_t *next,
			 uint64_t n, uint64_t now)
{
	size_t moved;

	while (next && *next < n && usb4_rel_can_send(a->rel) &&
	       send_idx(a, b->stream, *next, now) == 0)
		(*next)++;
	if (usb4_rel_deadline(a->rel) <= now)
		usb4_rel_timer(a->rel, now, &a->io);
	if (usb4_rel_deadline(b->rel) <= now)
		usb4_rel_timer(b->rel, now, &b->io);
	moved = xfer(a, b, now);
	return moved + xfer(b, a, now);
}

/* Both ends have nothing unacknowledged, held or undelivered. */
static bool settled(const struct side *a, const struct side *b)
{
	return !usb4_rel_unacked(a->rel) && !usb4_rel_unacked(b->rel) &&
	       !usb4_rel_undelivered(a->rel) && !usb4_rel_undelivered(b->rel);
}

/* Clean steps of `step` ns from *now until A has sent payloads up to n and
 * both ends settled (20000 steps at most); returns the time the last
 * datagram crossed. */
static uint64_t settle(struct side *a, struct side *b, uint64_t *next,
		       uint64_t n, uint64_t *now, uint64_t step)
{
	uint64_t last = *now;

	for (int i = 0; i < 20000; i++) {
		if (settled(a, b) && (!next || *next >= n))
			break;
		*now += step;
		if (clean_step(a, b, next, n, *now))
			last = *now;
	}
	CHECK(settled(a, b));
	return last;
}

/* Bytes the allocator has handed out; 0 under valgrind, whose allocator
 * glibc's statistics do not see. */
static size_t heap_used(void)
{
	struct mallinfo2 m = mallinfo2();

	return m.uordblks + m.hblkhd;
}

/* ---- CRC ---------------------------------------------------------------- */

/* Large buffers take the three-lane path: it must give the same CRC. */
static void test_crc_large(void)
{
	static unsigned char big[70000];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char) (i * 2654435761u >> 13);
	/* Twice over the lengths: the second pass finds the shift factors
	 * the first remembered (some of them, the cache being small). */
	for (int pass = 0; pass < 2; pass++)
		for (size_t len = 4000; len < sizeof(big); len += 4093) {
			uint32_t whole = usb4_crc32c(0, big, len);
			CHECK(whole == usb4_crc32c_soft(0, big, len));
			CHECK(whole == usb4_crc32c(usb4_crc32c(0, big, 7),
						   big + 7, len - 7));
			CHECK(whole == usb4_crc32c(0, big, len));
		}
	CHECK(usb4_crc32c(0, big, sizeof(big)) ==
	      usb4_crc32c_soft(0, big, sizeof(big)));
	/* Around the folding path's start (1 KiB) and its 256- and 16-byte
	 * steps, from odd addresses, continuing a register. */
	for (size_t len = 1000; len < 1600; len++) {
		size_t off = len % 13;
		uint32_t start = (uint32_t) (len * 2654435761u);

		CHECK(usb4_crc32c(start, big + off, len) ==
		      usb4_crc32c_soft(start, big + off, len));
	}
}

static void test_crc(void)
{
	unsigned char buf[1000];

	CHECK(usb4_crc32c(0, "123456789", 9) == 0xE3069283u);
	CHECK(usb4_crc32c_soft(0, "123456789", 9) == 0xE3069283u);
	CHECK(usb4_crc32c(0, "", 0) == 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char) rng();
	for (size_t len = 0; len < sizeof(buf); len += 37) {
		uint32_t whole = usb4_crc32c(0, buf, len);
		size_t cut = len / 3;

		CHECK(whole == usb4_crc32c_soft(0, buf, len));
		CHECK(whole == usb4_crc32c(usb4_crc32c(0, buf, cut), buf + cut,
					   len - cut));
	}
}

/* ---- open, handshake, validation ---------------------------------------- */

static void test_open_args(void)
{
	struct usb4_rel_peer *p;
	struct usb4_rel_cfg cfg = base_cfg();

	cfg.window = 0;
	CHECK_EQ(usb4_rel_peer_open(&p, &cfg, 1, 2, 0), -FI_EINVAL);
	cfg.window = 1025;
	CHECK_EQ(usb4_rel_peer_open(&p, &cfg, 1, 2, 0), -FI_EINVAL);
	cfg = base_cfg();
	cfg.payload_max = 0;
	CHECK_EQ(usb4_rel_peer_open(&p, &cfg, 1, 2, 0), -FI_EINVAL);
	cfg = base_cfg();
	cfg.rto_max_ns = cfg.rto_initial_ns - 1;
	CHECK_EQ(usb4_rel_peer_open(&p, &cfg, 1, 2, 0), -FI_EINVAL);
	cfg = base_cfg();
	cfg.window = 1024;
	CHECK_EQ(usb4_rel_peer_open(&p, &cfg, 1, 2, 0), 0);
	CHECK(usb4_rel_can_send(p));
	CHECK(usb4_rel_deadline(p) == UINT64_MAX);	/* idle: nothing due */
	usb4_rel_peer_close(p);
}

/* HELLO and HELLO_ACK carry version, features and the largest datagram;
 * each side learns the other's. */
static void test_handshake_normal(void)
{
	struct side a, b;
	struct usb4_rel_cfg ca = base_cfg(), cb = base_cfg();
	struct usb4_rel_head head;

	ca.isn = 1000;
	ca.datagram_max = 9000;
	pair_open(&a, &b, &ca, &cb, 0);
	CHECK_EQ(usb4_rel_peer_datagram_max(b.rel), 0);
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	CHECK_EQ(a.out.n, 1);
	CHECK_EQ(a.out.d[0].len, HDR + HELLO_LEN);
	CHECK_EQ(peek_one(a.out.d[0].buf, a.out.d[0].len, &head), 0);
	CHECK(head.type == USB4_REL_HELLO && head.proto == USB4_WIRE_VERSION &&
	      head.features == USB4_WIRE_FEATURES && head.crc_ok);
	xfer(&a, &b, 0);
	CHECK_EQ(type_at(&b, 0), USB4_REL_HELLO_ACK);
	/* A HELLO teaches nothing until A proves it got the answer. */
	CHECK_EQ(usb4_rel_peer_datagram_max(b.rel), 0);
	xfer(&b, &a, 0);
	CHECK_EQ(usb4_rel_peer_datagram_max(a.rel), HDR + PMAX);  /* default */
	CHECK_EQ(type_at(&a, 0), USB4_REL_DATA);
	CHECK_EQ(hdr_of(&a.out.d[0]).seq, 1000);
	xfer(&a, &b, 0);
	CHECK_EQ(usb4_rel_peer_datagram_max(b.rel), 9000);
	CHECK_EQ(b.expect, 1);
	CHECK(!b.bad);
	CHECK_EQ(usb4_rel_stats(b.rel)->delivered, 1);
	CHECK_EQ(usb4_rel_stats(a.rel)->sent, 1);
	CHECK_EQ(usb4_rel_down(a.rel), 0);
	CHECK_EQ(usb4_rel_down(b.rel), 0);
	side_close(&a);
	side_close(&b);
}

/* Both send at once: HELLOs cross, each answers, data flows both ways. */
static void test_handshake_simultaneous(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();

	pair_open(&a, &b, &cfg, &cfg, 0);
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	CHECK_EQ(send_idx(&b, 2, 0, 0), 0);
	CHECK_EQ(type_at(&a, 0), USB4_REL_HELLO);
	CHECK_EQ(type_at(&b, 0), USB4_REL_HELLO);
	xfer(&a, &b, 10);	/* B: HELLO_ACK + its DATA */
	xfer(&b, &a, 20);	/* A: HELLO_ACK, DATA delivered, its DATA */
	xfer(&a, &b, 30);
	xfer(&b, &a, 40);
	CHECK_EQ(a.expect, 1);
	CHECK_EQ(b.expect, 1);
	CHECK(!a.bad && !b.bad);
	CHECK_EQ(usb4_rel_stats(a.rel)->dropped[USB4_REL_DROP_NO_HANDSHAKE], 0);
	side_close(&a);
	side_close(&b);
}

/* The first HELLO is lost: retransmitted at its timeout. */
static void test_handshake_hello_lost(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	uint64_t t;

	pair_open(&a, &b, &cfg, &cfg, 0);
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	q_clear(&a.out);
	t = usb4_rel_deadline(a.rel);
	CHECK(t == cfg.rto_initial_ns);
	usb4_rel_timer(a.rel, t - 1, &a.io);
	CHECK_EQ(a.out.n, 0);
	usb4_rel_timer(a.rel, t, &a.io);
	CHECK_EQ(type_at(&a, 0), USB4_REL_HELLO);
	xfer(&a, &b, t);
	xfer(&b, &a, t);
	xfer(&a, &b, t);
	CHECK_EQ(b.expect, 1);
	CHECK(!b.bad);
	side_close(&a);
	side_close(&b);
}

/* B's HELLO_ACK is lost; B, with nothing proven yet, says HELLO itself
 * when it has data (A's answer completes B's side); A asks again and B
 * answers again, idempotently (B's data is dropped by A until A knows B). */
static void test_handshake_hello_ack_lost(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	uint64_t t;

	pair_open(&a, &b, &cfg, &cfg, 0);
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	xfer(&a, &b, 0);
	q_clear(&b.out);		/* HELLO_ACK lost */
	CHECK_EQ(send_idx(&b, 2, 0, 0), 0);
	CHECK_EQ(type_at(&b, 0), USB4_REL_HELLO);
	xfer(&b, &a, 0);
	CHECK_EQ(type_at(&a, 0), USB4_REL_HELLO_ACK);
	xfer(&a, &b, 0);		/* B knows A now: its DATA goes */
	CHECK_EQ(type_at(&b, 0), USB4_REL_DATA);
	xfer(&b, &a, 0);
	CHECK_EQ(usb4_rel_stats(a.rel)->dropped[USB4_REL_DROP_NO_HANDSHAKE], 1);
	CHECK_EQ(a.expect, 0);
	t = usb4_rel_deadline(a.rel);
	usb4_rel_timer(a.rel, t, &a.io);
	CHECK_EQ(type_at(&a, 0), USB4_REL_HELLO);
	xfer(&a, &b, t);
	CHECK_EQ(type_at(&b, 0), USB4_REL_HELLO_ACK);
	xfer(&b, &a, t);		/* A sends its DATA */
	xfer(&a, &b, t);
	CHECK_EQ(b.expect, 1);
	t = usb4_rel_deadline(b.rel);	/* B's DATA goes again on timeout */
	usb4_rel_timer(b.rel, t, &b.io);
	xfer(&b, &a, t);
	CHECK_EQ(a.expect, 1);
	CHECK(!a.bad && !b.bad);
	side_close(&a);
	side_close(&b);
}

/* Datagrams of another incarnation, either end, are dropped and counted. */
static void test_wrong_ids(void)
{
	struct side a, b, old_a, new_b;
	struct usb4_rel_cfg cfg = base_cfg();
	uint64_t src, dst;

	pair_open(&a, &b, &cfg, &cfg, 0);
	memset(&old_a, 0, sizeof(old_a));
	memset(&new_b, 0, sizeof(new_b));
	CHECK_EQ(usb4_rel_peer_open(&old_a.rel, &cfg, ID_A ^ 1, ID_B, 0), 0);
	CHECK_EQ(usb4_rel_peer_open(&new_b.rel, &cfg, ID_B ^ 1, ID_A, 0), 0);
	old_a.io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = &old_a,
		.deliver = fake_deliver, .deliver_ctx = &old_a };
	new_b.io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = &new_b,
		.deliver = fake_deliver, .deliver_ctx = &new_b };

	CHECK_EQ(send_idx(&old_a, 1, 0, 0), 0);
	CHECK_EQ(usb4_rel_datagram_ids(old_a.out.d[0].buf, old_a.out.d[0].len,
				       &src, &dst), 0);
	CHECK(src == (ID_A ^ 1) && dst == ID_B);
	CHECK_EQ(usb4_rel_input(b.rel, 0, old_a.out.d[0].buf,
				old_a.out.d[0].len, &b.io), -FI_ENOENT);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_WRONG_SRC], 1);
	CHECK_EQ(b.out.n, 0);		/* not answered */

	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	CHECK_EQ(usb4_rel_input(new_b.rel, 0, a.out.d[0].buf, a.out.d[0].len,
				&new_b.io), -FI_ENOENT);
	CHECK_EQ(usb4_rel_stats(new_b.rel)->dropped[USB4_REL_DROP_WRONG_DST], 1);
	CHECK_EQ(new_b.out.n, 0);
	side_close(&a);
	side_close(&b);
	side_close(&old_a);
	side_close(&new_b);
}

/* Any corrupted byte of a DATA datagram is caught by the CRC. */
static void test_corruption(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	struct dgram d;
	size_t n = 0;

	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	d = a.out.d[0];
	for (size_t i = 0; i < d.len; i++) {
		for (unsigned char flip = 1; flip; flip <<= 3, n++) {
			d.buf[i] ^= flip;
			CHECK_EQ(usb4_rel_input(b.rel, 0, d.buf, d.len, &b.io),
				 -FI_EINVAL);
			d.buf[i] ^= flip;
		}
	}
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_BAD_HEADER], n);
	CHECK_EQ(b.expect, 0);
	CHECK_EQ(usb4_rel_input(b.rel, 0, d.buf, d.len, &b.io), 0);
	CHECK_EQ(b.expect, 1);
	CHECK(!b.bad);
	side_close(&a);
	side_close(&b);
}

/* usb4_rel_input_read of the header the link read (usb4_rel_head_read):
 * what the in-place path takes, what it leaves to the general path, and
 * every drop counted as usb4_rel_input counts it. */
static int input_read(struct side *b, unsigned char *buf, size_t len)
{
	struct iovec one = { .iov_base = buf, .iov_len = len };
	struct usb4_wire_rel h;

	CHECK(usb4_rel_head_read(&one, &h));
	return usb4_rel_input_read(b->rel, 0, &one, &h, &b->io);
}

static void test_input_read(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	const struct usb4_rel_stats *st;
	unsigned char forged[HDR + PMAX], payload[PMAX];
	struct iovec shorter = { .iov_base = forged, .iov_len = HDR - 1 };
	struct usb4_wire_rel h;
	struct dgram d;
	size_t n = 0, len;

	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	st = usb4_rel_stats(b.rel);
	CHECK(!usb4_rel_head_read(&shorter, &h));
	/* The first DATA proves the handshake (the general path); the
	 * second is the in-place path's. */
	d = a.out.d[0];
	CHECK_EQ(input_read(&b, d.buf, d.len), 0);
	CHECK_EQ(send_idx(&a, b.stream, 1, 0), 0);
	d = a.out.d[a.out.n - 1];
	for (size_t i = 0; i < d.len; i++, n++) {	/* corrupt: the check */
		d.buf[i] ^= 1;
		CHECK_EQ(input_read(&b, d.buf, d.len), -FI_EINVAL);
		d.buf[i] ^= 1;
	}
	CHECK_EQ(st->dropped[USB4_REL_DROP_BAD_HEADER], n);
	/* Another sender's id, the next seq and a valid check: the session
	 * is its address's, never the header's. */
	len = craft(forged, USB4_REL_DATA, ID_A ^ 1, ID_B,
		    usb4_rel_next_seq(a.rel) - 1, 0, 0, payload,
		    (uint32_t) gen_payload(b.stream, 1, payload));
	CHECK(input_read(&b, forged, len) < 0);
	CHECK_EQ(st->dropped[USB4_REL_DROP_WRONG_SRC], 1);
	CHECK_EQ(b.expect, 1);
	memcpy(payload, d.buf, d.len < PMAX ? d.len : PMAX);
	CHECK_EQ(input_read(&b, d.buf, d.len), 0);
	CHECK_EQ(b.expect, 2);
	/* Hashed where it lies: the check field is back as it came. */
	CHECK(!memcmp(payload, d.buf, d.len < PMAX ? d.len : PMAX));
	CHECK_EQ(input_read(&b, d.buf, d.len), -FI_EALREADY);
	CHECK_EQ(st->dropped[USB4_REL_DROP_DUPLICATE], 1);
	CHECK_EQ(b.expect, 2);
	CHECK(!b.bad);
	side_close(&a);
	side_close(&b);
}

/* Handshake types carry a struct usb4_wire_hello and at most
 * USB4_REL_HELLO_EXT_MAX bytes of the link's, ACK nothing: other lengths
 * are dropped.  Returns how many were. */
static size_t bad_control_lengths(struct side *b)
{
	static const uint32_t bad[] = { 0, 4, HELLO_LEN - 1,
					HELLO_LEN + USB4_REL_HELLO_EXT_MAX + 1 };
	unsigned char buf[HDR + 2 * HELLO_LEN + USB4_REL_HELLO_EXT_MAX],
		      pl[2 * HELLO_LEN + USB4_REL_HELLO_EXT_MAX] = { 0 };
	size_t len, drops = 0;

	for (int type = USB4_REL_HELLO; type <= USB4_REL_REJECT; type++) {
		if (type == USB4_REL_DATA)
			continue;
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			if (type == USB4_REL_ACK && !bad[i])
				continue;
			len = craft(buf, (uint8_t) type, ID_A, ID_B, 0, 0, 0,
				    pl, bad[i]);
			CHECK_EQ(usb4_rel_input(b->rel, 0, buf, len, &b->io),
				 -FI_EINVAL);
			drops++;
		}
	}
	return drops;
}

/* Malformed headers with a correct CRC: each dropped as BAD_HEADER. */
static void test_bad_headers(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	unsigned char buf[HDR + PMAX + 8] = { 0 }, pl[PMAX + 8] = { 0 };
	uint64_t src, dst;
	size_t len, drops = 0;
	uint32_t bad_len = htole32(7);

	pair_open(&a, &b, &cfg, &cfg, 0);
	for (size_t l = 0; l < HDR; l++, drops++) {	/* truncated */
		len = craft(buf, USB4_REL_ACK, ID_A, ID_B, 0, 0, 0, pl, 0);
		CHECK_EQ(usb4_rel_input(b.rel, 0, buf, l, &b.io), -FI_EINVAL);
		CHECK(usb4_rel_datagram_ids(buf, l, &src, &dst) < 0);
	}
	/* Another version: dropped by the peer (the link answers it, see
	 * test_reject_during_handshake); the ids are still readable. */
	len = craft_hello(buf, USB4_WIRE_VERSION + 1, USB4_REL_HELLO, 0,
			  USB4_WIRE_VERSION, USB4_WIRE_FEATURES);
	CHECK_EQ(usb4_rel_datagram_ids(buf, len, &src, &dst), 0);
	CHECK(src == ID_A && dst == ID_B);
	CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
	drops++;
	for (int type = 0; type <= USB4_REL_TYPE_MAX; type += USB4_REL_TYPE_MAX) {
		len = craft(buf, (uint8_t) type, ID_A, ID_B, 0, 0, 0, pl, 0);
		CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
		drops++;
	}
	len = craft_hello(buf, USB4_WIRE_VERSION, USB4_REL_HELLO, 0,
			  USB4_WIRE_VERSION, USB4_WIRE_FEATURES);
	buf[2] = 1;			/* reserved flags */
	recrc(buf, len);
	CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
	drops++;
	len = craft(buf, USB4_REL_DATA, ID_A, ID_B, 0, 0, 0, pl, 10);
	memcpy(buf + 44, &bad_len, 4);	/* len field disagrees */
	recrc(buf, len);
	CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
	drops++;
	drops += bad_control_lengths(&b);
	len = craft(buf, USB4_REL_DATA, ID_A, ID_B, 0, 0, 0, pl, PMAX + 1);
	CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
	drops++;			/* beyond payload_max */
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_BAD_HEADER],
		 drops);
	CHECK_EQ(b.out.n, 0);
	CHECK_EQ(b.expect, 0);
	CHECK(!usb4_rel_dead(b.rel));
	CHECK_EQ(usb4_rel_down(b.rel), 0);	/* no bad REJECT refused us */
	side_close(&a);
	side_close(&b);
}

/* ---- versions and features, REJECT, peek ------------------------------- */

/* What a handshake datagram of B says of itself. */
static void check_answer(const struct dgram *d, uint8_t type)
{
	struct usb4_rel_head head;

	CHECK_EQ(peek_one(d->buf, d->len, &head), 0);
	CHECK_EQ(head.version, USB4_WIRE_VERSION);
	CHECK_EQ(head.type, type);
	CHECK(head.src_id == ID_B && head.dst_id == ID_A);
	CHECK_EQ(head.proto, USB4_WIRE_VERSION);
	CHECK_EQ(head.features, USB4_WIRE_FEATURES);
	CHECK(head.crc_ok);
}

/* B gets a HELLO (our header) saying proto and features: it answers with
 * HELLO_ACK, or with REJECT and is down, refused, for good. */
static void hello_saying(uint16_t proto, uint32_t features, bool refused)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	unsigned char buf[HDR + HELLO_LEN];
	size_t len;

	pair_open(&a, &b, &cfg, &cfg, 0);
	len = craft_hello(buf, USB4_WIRE_VERSION, USB4_REL_HELLO, 7, proto,
			  features);
	CHECK_EQ(usb4_rel_input(b.rel, 10, buf, len, &b.io),
		 refused ? -FI_ECONNREFUSED : 0);
	CHECK_EQ(b.out.n, 1);
	if (b.out.n == 1) {
		check_answer(&b.out.d[0], refused ? USB4_REL_REJECT :
						    USB4_REL_HELLO_ACK);
		CHECK_EQ(hdr_of(&b.out.d[0]).ack, 7);	/* answers seq 7 */
	}
	/* Anyone can send a HELLO naming A: refusing one ends nothing. */
	CHECK_EQ(usb4_rel_down(b.rel), 0);
	CHECK(!usb4_rel_dead(b.rel));
	if (refused) {
		q_clear(&b.out);
		len = craft_hello(buf, USB4_WIRE_VERSION, USB4_REL_HELLO, 7,
				  USB4_WIRE_VERSION, USB4_WIRE_FEATURES);
		CHECK_EQ(usb4_rel_input(b.rel, 30, buf, len, &b.io), 0);
		CHECK_EQ(type_at(&b, 0), USB4_REL_HELLO_ACK);
		CHECK_EQ(usb4_rel_down(b.rel), 0);
	}
	side_close(&a);
	side_close(&b);
}

/* Another protocol version, or a required feature (high 16 bits) we lack:
 * REJECT.  An optional feature (low 16 bits) we lack: no reason. */
static void test_hello_version_features(void)
{
	hello_saying(USB4_WIRE_VERSION, USB4_WIRE_FEATURES, false);
	hello_saying(USB4_WIRE_VERSION + 1, USB4_WIRE_FEATURES, true);
	hello_saying(USB4_WIRE_VERSION - 1, USB4_WIRE_FEATURES, true);
	hello_saying(0xffff, USB4_WIRE_FEATURES, true);
	hello_saying(USB4_WIRE_VERSION, USB4_WIRE_FEATURES | 1u << 16, true);
	hello_saying(USB4_WIRE_VERSION, USB4_WIRE_FEATURES | 1u << 31, true);
	hello_saying(USB4_WIRE_VERSION, USB4_WIRE_FEATURES | 1u | 1u << 15,
		     false);
}

/* Payloads 1..n-1 of B's stream from A over a clean link; all arrive. */
static void transfer_completes(struct side *a, struct side *b, uint64_t n,
			       uint64_t *now)
{
	uint64_t next = 1;

	settle(a, b, &next, n, now, 10 * US);
	CHECK_EQ(b->expect, n);
	CHECK(!b->bad);
	CHECK(!usb4_rel_dead(a->rel) && !usb4_rel_dead(b->rel));
}

/* Once the handshake is done, nobody ends the session with a REJECT: a
 * forged one, either way, is dropped and the transfer completes. */
static void test_reject_after_handshake_ignored(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	unsigned char buf[USB4_REL_REJECT_LEN];
	size_t len;
	uint64_t now = 0;

	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	len = usb4_rel_reject(buf, ID_B, ID_A);
	CHECK(usb4_rel_input(a.rel, 0, buf, len, &a.io) < 0);
	len = usb4_rel_reject(buf, ID_A, ID_B);
	CHECK(usb4_rel_input(b.rel, 0, buf, len, &b.io) < 0);
	CHECK_EQ(usb4_rel_down(a.rel), 0);
	CHECK_EQ(usb4_rel_down(b.rel), 0);
	CHECK_EQ(a.out.n, 1);			/* just A's DATA: no answer */
	CHECK_EQ(b.out.n, 0);
	transfer_completes(&a, &b, 50, &now);
	side_close(&a);
	side_close(&b);
}

/* The same for a forged HELLO of another version (with the ISN A really
 * used, as anyone who can forge a REJECT can see): the session lives on. */
static void test_foreign_hello_after_handshake_ignored(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	unsigned char buf[HDR + HELLO_LEN];
	size_t len;
	uint64_t now = 0;

	cfg.isn = 300;
	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	len = craft_hello(buf, USB4_WIRE_VERSION, USB4_REL_HELLO, 300,
			  USB4_WIRE_VERSION + 1, USB4_WIRE_FEATURES);
	CHECK(usb4_rel_input(b.rel, 0, buf, len, &b.io) < 0);
	CHECK_EQ(usb4_rel_down(b.rel), 0);
	q_clear(&b.out);			/* whatever B answered */
	transfer_completes(&a, &b, 50, &now);
	side_close(&a);
	side_close(&b);
}

/* A refused peer: down at once, nothing sent again, nothing referenced. */
static void check_refused(struct side *a, uint64_t now,
			  const struct usb4_rel_cfg *cfg)
{
	CHECK_EQ(usb4_rel_down(a->rel), -FI_ECONNREFUSED);
	CHECK(usb4_rel_dead(a->rel));
	CHECK(usb4_rel_deadline(a->rel) == UINT64_MAX);
	CHECK(!usb4_rel_can_send(a->rel));
	CHECK_EQ(send_idx(a, 1, 1, now), -FI_ECONNREFUSED);
	CHECK(usb4_rel_acked_before(a->rel, usb4_rel_next_seq(a->rel)));
	CHECK_EQ(usb4_rel_copy_refs(a->rel, 7), 0);	/* forgotten */
	CHECK_EQ(usb4_rel_refs(a->rel), 0);
	q_clear(&a->out);
	usb4_rel_timer(a->rel, now + 2 * cfg->dead_ns, &a->io);
	CHECK_EQ(a->out.n, 0);				/* no HELLO again */
	CHECK_EQ(usb4_rel_down(a->rel), -FI_ECONNREFUSED);  /* not silent */
}

/* A's HELLO (a payload by reference waiting behind it) reaches a peer of
 * another version: the REJECT ends A's handshake at once, refused, long
 * before dead_ns.  The REJECT comes from the other side's link
 * (usb4_rel_reject after usb4_rel_peek) or from its rel (a HELLO whose
 * proto it does not speak: A's, rewritten). */
static void reject_during_handshake(bool from_link)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	unsigned char ref[100] = { 0 }, buf[USB4_REL_REJECT_LEN];
	struct iovec iov = { ref, sizeof(ref) };
	struct usb4_rel_head head;
	struct dgram *hello;
	size_t len;

	pair_open(&a, &b, &cfg, &cfg, 0);
	CHECK_EQ(usb4_rel_send_ref(a.rel, 0, &iov, 1, 1, 7, &a.io), 0);
	CHECK_EQ(type_at(&a, 0), USB4_REL_HELLO);
	if (a.out.n != 1)
		goto out;
	hello = &a.out.d[0];
	hello->buf[HDR] = USB4_WIRE_VERSION + 1;	/* hello.proto, LE */
	if (from_link)
		hello->buf[0] = USB4_WIRE_VERSION + 1;	/* header version */
	recrc(hello->buf, hello->len);
	if (from_link) {
		CHECK_EQ(usb4_rel_input(b.rel, 10 * US, hello->buf,
					hello->len, &b.io), -FI_EINVAL);
		CHECK_EQ(peek_one(hello->buf, hello->len, &head), 0);
		CHECK(head.crc_ok && head.version == USB4_WIRE_VERSION + 1);
		len = usb4_rel_reject_cfg(buf, &cfg, ID_B, head.src_id,
					  hdr_of(hello).seq);
	} else {
		xfer(&a, &b, 10 * US);
		CHECK_EQ(type_at(&b, 0), USB4_REL_REJECT);
		CHECK_EQ(usb4_rel_down(b.rel), 0);	/* B just answers */
		len = b.out.n ? b.out.d[0].len : 0;
		memcpy(buf, b.out.n ? b.out.d[0].buf : buf, len);
	}
	q_clear(&a.out);
	CHECK_EQ(usb4_rel_input(a.rel, 50 * US, buf, len, &a.io),
		 -FI_ECONNREFUSED);
	check_refused(&a, 60 * US, &cfg);
out:
	side_close(&a);
	side_close(&b);
}

static void test_reject_during_handshake(void)
{
	reject_during_handshake(true);
	reject_during_handshake(false);
}

/* peek of one datagram, whole and in three pieces cut anywhere: the same. */
static void check_peek(const unsigned char *buf, size_t len,
		       struct usb4_rel_head *head)
{
	struct usb4_rel_head cut;

	CHECK_EQ(peek_one(buf, len, head), 0);
	for (size_t at = 0; at < len; at += 5) {
		size_t c2 = at + (len - at) / 3;
		struct iovec iov[3] = { { (void *) buf, at },
					{ (void *) (buf + at), c2 - at },
					{ (void *) (buf + c2), len - c2 } };

		memset(&cut, 0xee, sizeof(cut));
		CHECK_EQ(usb4_rel_peek(iov, 3, &cut), 0);
		CHECK(cut.version == head->version && cut.type == head->type &&
		      cut.src_id == head->src_id &&
		      cut.dst_id == head->dst_id &&
		      cut.proto == head->proto &&
		      cut.features == head->features &&
		      cut.crc_ok == head->crc_ok);
	}
}

/* peek on our version (HELLO, DATA, a corrupted byte) and on other
 * versions (CRC computed with our layout). */
static void test_peek_versions(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	struct usb4_rel_head h;
	unsigned char buf[HDR + PMAX];
	size_t len;

	pair_open(&a, &b, &cfg, &cfg, 0);
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	check_peek(a.out.d[0].buf, a.out.d[0].len, &h);
	CHECK(h.version == USB4_WIRE_VERSION && h.type == USB4_REL_HELLO &&
	      h.src_id == ID_A && h.dst_id == ID_B && h.crc_ok &&
	      h.proto == USB4_WIRE_VERSION && h.features == USB4_WIRE_FEATURES);
	xfer(&a, &b, 0);
	xfer(&b, &a, 0);
	len = a.out.d[0].len;
	memcpy(buf, a.out.d[0].buf, len);
	check_peek(buf, len, &h);
	CHECK(h.type == USB4_REL_DATA && h.crc_ok && h.proto == 0 &&
	      h.features == 0);
	buf[len - 1] ^= 0x10;
	check_peek(buf, len, &h);
	CHECK(h.type == USB4_REL_DATA && !h.crc_ok);

	/* a version 3 HELLO that requires a feature */
	len = craft_hello(buf, 3, USB4_REL_HELLO, 5, 3, 1u << 20);
	check_peek(buf, len, &h);
	CHECK(h.version == 3 && h.type == USB4_REL_HELLO && h.crc_ok &&
	      h.proto == 3 && h.features == 1u << 20 && h.src_id == ID_A &&
	      h.dst_id == ID_B);
	/* a version 1 HELLO: no struct usb4_wire_hello yet */
	len = craft(buf, USB4_REL_HELLO, ID_A, ID_B, 5, 0, 0, buf, 0);
	buf[0] = 1;
	recrc(buf, len);
	check_peek(buf, len, &h);
	CHECK(h.version == 1 && h.type == USB4_REL_HELLO && h.crc_ok &&
	      h.proto == 0 && h.features == 0);
	CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
	CHECK_EQ(usb4_rel_down(b.rel), 0);
	side_close(&a);
	side_close(&b);
}

/* peek on garbage: too short or malformed pieces are refused; random bytes
 * of a header's length or more are read, with a bad CRC. */
static void test_peek_garbage(void)
{
	unsigned char buf[HDR + 100];
	struct usb4_rel_head h;
	struct iovec iov[USB4_REL_PIECES_MAX + 1];
	uint32_t bad_len = htole32(8);
	size_t len;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char) rng();
	for (size_t l = 0; l < HDR; l++)
		CHECK_EQ(peek_one(buf, l, &h), -FI_EINVAL);
	for (int i = 0; i < 1000; i++) {
		len = HDR + rng() % 101;
		for (size_t j = 0; j < len; j++)
			buf[j] = (unsigned char) rng();
		CHECK_EQ(peek_one(buf, len, &h), 0);
		CHECK(!h.crc_ok);
	}
	for (int i = 0; i <= USB4_REL_PIECES_MAX; i++)
		iov[i] = (struct iovec) { buf + i * 12, 12 };
	CHECK_EQ(usb4_rel_peek(iov, 0, &h), -FI_EINVAL);
	CHECK_EQ(usb4_rel_peek(iov, USB4_REL_PIECES_MAX + 1, &h), -FI_EINVAL);
	iov[1].iov_base = NULL;				/* a missing piece */
	CHECK_EQ(usb4_rel_peek(iov, USB4_REL_PIECES_MAX, &h), -FI_EINVAL);
	len = craft_hello(buf, USB4_WIRE_VERSION, USB4_REL_HELLO, 1,
			  USB4_WIRE_VERSION, 0);
	memcpy(buf + 44, &bad_len, 4);		/* len disagrees, CRC fits */
	recrc(buf, len);
	CHECK_EQ(peek_one(buf, len, &h), 0);
	CHECK(!h.crc_ok);
}

/* usb4_rel_reject writes one REJECT of our version and features, exactly
 * its length, that peek and a peer's full validation take as such. */
static void test_reject_datagram(void)
{
	struct usb4_rel_cfg cfg = base_cfg();
	struct usb4_rel_peer *p;
	struct usb4_rel_head h;
	struct usb4_wire_rel w;
	struct usb4_wire_hello hello;
	unsigned char buf[USB4_REL_REJECT_LEN + 16];
	struct side s = { 0 };
	size_t len;

	memset(buf, 0xee, sizeof(buf));
	len = usb4_rel_reject(buf, ID_B, ID_A);
	CHECK_EQ(len, HDR + HELLO_LEN);
	CHECK(len <= USB4_REL_REJECT_LEN);
	for (size_t i = len; i < sizeof(buf); i++)
		CHECK_EQ(buf[i], 0xee);
	check_peek(buf, len, &h);
	CHECK(h.version == USB4_WIRE_VERSION && h.type == USB4_REL_REJECT &&
	      h.src_id == ID_B && h.dst_id == ID_A && h.crc_ok &&
	      h.proto == USB4_WIRE_VERSION && h.features == USB4_WIRE_FEATURES);
	memcpy(&w, buf, HDR);
	memcpy(&hello, buf + HDR, HELLO_LEN);
	CHECK_EQ(w.flags, 0);
	CHECK_EQ(le32toh(w.len), HELLO_LEN);
	CHECK_EQ(le16toh(hello.proto), USB4_WIRE_VERSION);
	/* A peer of our version takes it only as the answer to its HELLO: one
	 * that acknowledges nothing it sent is dropped, the peer lives on. */
	CHECK_EQ(usb4_rel_peer_open(&p, &cfg, ID_A, ID_B, 0), 0);
	s.io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = &s,
		.deliver = fake_deliver, .deliver_ctx = &s };
	CHECK_EQ(usb4_rel_input(p, 0, buf, len, &s.io), -FI_EACCES);
	CHECK_EQ(usb4_rel_stats(p)->dropped[USB4_REL_DROP_NO_PROOF], 1);
	CHECK_EQ(usb4_rel_down(p), 0);
	CHECK_EQ(s.out.n, 0);
	usb4_rel_peer_close(p);
	q_free(&s.out);
}

/* ---- acks --------------------------------------------------------------- */

/* One in-order arrival: the ack waits ack_delay, or rides on a DATA. */
static void test_delayed_ack(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	uint64_t t;

	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	xfer(&a, &b, 0);
	CHECK_EQ(b.out.n, 0);
	t = usb4_rel_deadline(b.rel);
	CHECK(t == cfg.ack_delay_ns);
	usb4_rel_timer(b.rel, t - 1, &b.io);
	CHECK_EQ(b.out.n, 0);
	usb4_rel_timer(b.rel, t, &b.io);
	CHECK_EQ(type_at(&b, 0), USB4_REL_ACK);
	CHECK_EQ(usb4_rel_stats(b.rel)->acks_sent, 1);
	xfer(&b, &a, t);
	CHECK_EQ(usb4_rel_in_flight(a.rel), 0);

	/* Piggyback: B's DATA carries the ack, no ACK datagram follows. */
	CHECK_EQ(send_idx(&a, 1, 1, t), 0);
	xfer(&a, &b, t);
	CHECK_EQ(send_idx(&b, 2, 0, t), 0);	/* B's handshake is done */
	CHECK_EQ(type_at(&b, 0), USB4_REL_DATA);
	CHECK(hdr_of(&b.out.d[0]).ack == hdr_of(&b.out.d[0]).ack);
	xfer(&b, &a, t);
	CHECK_EQ(usb4_rel_in_flight(a.rel), 0);
	usb4_rel_timer(b.rel, t + cfg.ack_delay_ns, &b.io);
	CHECK_EQ(b.out.n, 0);
	CHECK_EQ(usb4_rel_stats(b.rel)->acks_sent, 1);
	side_close(&a);
	side_close(&b);
}

/* A hole: the receiver acks at once with sack bits; the sender fills the
 * hole without waiting for its timeout, and only once per round trip. */
static void test_sack_fast_retransmit(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	struct usb4_wire_rel h;
	struct queue q;

	cfg.isn = 77;
	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	CHECK_EQ(send_idx(&a, 1, 1, 0), 0);
	CHECK_EQ(send_idx(&a, 1, 2, 0), 0);
	q = a.out;
	memset(&a.out, 0, sizeof(a.out));
	usb4_rel_input(b.rel, 0, q.d[1].buf, q.d[1].len, &b.io);
	usb4_rel_input(b.rel, 0, q.d[2].buf, q.d[2].len, &b.io);
	CHECK_EQ(b.out.n, 2);
	h = hdr_of(&b.out.d[1]);
	CHECK_EQ(h.type, USB4_REL_ACK);
	CHECK_EQ(h.ack, 77);
	CHECK(h.sack == 3);
	usb4_rel_input(b.rel, 0, q.d[2].buf, q.d[2].len, &b.io);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_DUPLICATE], 1);
	CHECK_EQ(b.out.n, 3);		/* a duplicate is acked at once */
	usb4_rel_input(a.rel, 10, b.out.d[0].buf, b.out.d[0].len, &a.io);
	CHECK_EQ(a.out.n, 0);		/* the hole may just be late */
	xfer(&b, &a, cfg.rto_initial_ns / 4);
	CHECK_EQ(a.out.n, 1);		/* one copy of the hole, not two */
	if (a.out.n != 1)
		return;
	CHECK_EQ(hdr_of(&a.out.d[0]).seq, 77);
	CHECK_EQ(usb4_rel_stats(a.rel)->retransmitted, 1);
	xfer(&a, &b, MS);
	CHECK_EQ(b.expect, 3);
	CHECK(!b.bad);
	CHECK_EQ(type_at(&b, 0), USB4_REL_ACK);	/* gap filled: acked at once */
	xfer(&b, &a, MS);
	CHECK_EQ(usb4_rel_in_flight(a.rel), 0);
	q_free(&q);
	side_close(&a);
	side_close(&b);
}

/* Far beyond the window: dropped, counted, acked. */
static void test_out_of_window(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	unsigned char buf[HDR + 8], pl[8] = { 0 };
	size_t len;

	cfg.isn = 5;
	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	/* It acknowledges B's ISN (5) as A's first DATA does. */
	len = craft(buf, USB4_REL_DATA, ID_A, ID_B, 5 + cfg.window, 5, 0, pl, 8);
	CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_ENOSPC);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_OUT_OF_WINDOW], 1);
	CHECK_EQ(type_at(&b, 0), USB4_REL_ACK);
	CHECK_EQ(b.expect, 0);
	side_close(&a);
	side_close(&b);
}

/* ---- window, backoff, death ---------------------------------------------- */

/* A receiver whose acks never arrive stops the sender at the window. */
static void test_window_full(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	uint64_t i = 1;
	unsigned char p[8] = { 0 };
	struct iovec big = { p, PMAX + 1 };

	cfg.window = 16;
	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	while (send_idx(&a, 1, i, 0) == 0)
		i++;
	CHECK_EQ(i, 16);
	CHECK_EQ(send_idx(&a, 1, i, 0), -FI_EAGAIN);
	CHECK(!usb4_rel_can_send(a.rel));
	CHECK_EQ(usb4_rel_in_flight(a.rel), 16);
	CHECK_EQ(usb4_rel_send(a.rel, 0, &big, 1, &a.io), -FI_EMSGSIZE);
	xfer(&a, &b, 10);
	CHECK_EQ(b.expect, 16);
	q_clear(&b.out);		/* every ack lost */
	usb4_rel_timer(b.rel, 10 * MS, &b.io);
	q_clear(&b.out);
	usb4_rel_timer(a.rel, 10 * MS, &a.io);	/* retransmits, still full */
	CHECK(!usb4_rel_can_send(a.rel));
	xfer(&a, &b, 10 * MS);		/* duplicates: acked at once */
	CHECK_EQ(b.expect, 16);
	xfer(&b, &a, 10 * MS);
	CHECK(usb4_rel_can_send(a.rel));
	CHECK_EQ(usb4_rel_in_flight(a.rel), 0);
	CHECK(!b.bad);
	side_close(&a);
	side_close(&b);
}

/* Every DATA lost: timeouts double up to rto_max, deadline by deadline,
 * until dead_ns of silence kills the peer. */
static void test_backoff_and_death(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	uint64_t t, prev = 0, want = cfg.rto_initial_ns;
	int rtx = 0;

	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	q_clear(&a.out);
	for (;;) {
		t = usb4_rel_deadline(a.rel);
		if (t >= cfg.dead_ns)
			break;
		CHECK(t - prev == want);
		usb4_rel_timer(a.rel, t - 1, &a.io);
		CHECK_EQ(a.out.n, 0);
		usb4_rel_timer(a.rel, t, &a.io);
		CHECK_EQ(type_at(&a, 0), USB4_REL_DATA);
		CHECK_EQ(a.out.n, 1);
		q_clear(&a.out);
		prev = t;
		want = want * 2 > cfg.rto_max_ns ? cfg.rto_max_ns : want * 2;
		rtx++;
	}
	CHECK_EQ(rtx, 15);		/* at 1, 3, 7, 15, then every 16 ms */
	CHECK(t == cfg.dead_ns);	/* silence since the HELLO_ACK at 0 */
	CHECK(!usb4_rel_dead(a.rel));
	usb4_rel_timer(a.rel, t, &a.io);
	CHECK(usb4_rel_dead(a.rel));
	CHECK_EQ(usb4_rel_down(a.rel), -FI_EHOSTUNREACH);
	CHECK_EQ(a.out.n, 0);
	CHECK_EQ(send_idx(&a, 1, 1, t), -FI_EHOSTUNREACH);
	CHECK(!usb4_rel_can_send(a.rel));
	CHECK(usb4_rel_deadline(a.rel) == UINT64_MAX);
	CHECK_EQ(usb4_rel_stats(a.rel)->retransmitted, 15);
	side_close(&a);
	side_close(&b);
}

/* A peer that never answers the HELLO: backoff, then dead. */
static void test_hello_backoff(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	uint64_t t, prev = 5 * MS, want = cfg.rto_initial_ns;
	int hellos = 1;

	pair_open(&a, &b, &cfg, &cfg, 0);
	CHECK_EQ(send_idx(&a, 1, 0, 5 * MS), 0);
	q_clear(&a.out);
	while ((t = usb4_rel_deadline(a.rel)) < 5 * MS + cfg.dead_ns) {
		CHECK(t - prev == want);
		usb4_rel_timer(a.rel, t, &a.io);
		CHECK_EQ(type_at(&a, 0), USB4_REL_HELLO);
		q_clear(&a.out);
		prev = t;
		want = want * 2 > cfg.rto_max_ns ? cfg.rto_max_ns : want * 2;
		hellos++;
	}
	CHECK_EQ(hellos, 16);
	usb4_rel_timer(a.rel, t, &a.io);
	CHECK(usb4_rel_dead(a.rel));
	CHECK_EQ(usb4_rel_down(a.rel), -FI_EHOSTUNREACH);
	side_close(&a);
	side_close(&b);
}

/* Idle is not dead; a peer that keeps acking is never dead; an old silence
 * does not count against a new send. */
static void test_alive(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	uint64_t t = 0, i = 1;

	cfg.dead_ns = 10 * MS;
	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	xfer(&a, &b, 0);
	for (t = 0; t < 1000 * MS; t += MS) {	/* idle: acks, then quiet */
		usb4_rel_timer(a.rel, t, &a.io);
		usb4_rel_timer(b.rel, t, &b.io);
		xfer(&b, &a, t);
	}
	CHECK(!usb4_rel_dead(a.rel) && !usb4_rel_dead(b.rel));
	for (; t < 2000 * MS; t += MS) {	/* A sends, half its DATA lost */
		if (usb4_rel_can_send(a.rel))
			CHECK_EQ(send_idx(&a, 1, i++, t), 0);
		usb4_rel_timer(a.rel, t, &a.io);
		usb4_rel_timer(b.rel, t, &b.io);
		for (size_t k = 0; k < a.out.n; k++)
			if (rng() & 1)
				usb4_rel_input(b.rel, t, a.out.d[k].buf,
					       a.out.d[k].len, &b.io);
		q_clear(&a.out);
		xfer(&b, &a, t);
	}
	CHECK(!usb4_rel_dead(a.rel) && !usb4_rel_dead(b.rel));
	CHECK(b.expect > 100);
	CHECK(!b.bad);
	side_close(&a);
	side_close(&b);
}

/* The link refuses datagrams: frames stay queued, the timer retries. */
static void test_xmit_eagain(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();

	pair_open(&a, &b, &cfg, &cfg, 0);
	a.refuse = 1;			/* the HELLO */
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	CHECK_EQ(a.out.n, 0);
	CHECK(usb4_rel_deadline(a.rel) <= 0);
	usb4_rel_timer(a.rel, 1, &a.io);
	CHECK_EQ(type_at(&a, 0), USB4_REL_HELLO);
	xfer(&a, &b, 1);
	a.refuse = 3;			/* the DATA, three times */
	xfer(&b, &a, 2);
	CHECK_EQ(a.out.n, 0);
	CHECK_EQ(usb4_rel_in_flight(a.rel), 0);
	CHECK(usb4_rel_deadline(a.rel) <= 2);
	usb4_rel_timer(a.rel, 3, &a.io);
	usb4_rel_timer(a.rel, 4, &a.io);
	CHECK_EQ(a.out.n, 0);
	usb4_rel_timer(a.rel, 5, &a.io);
	CHECK_EQ(type_at(&a, 0), USB4_REL_DATA);
	CHECK_EQ(usb4_rel_in_flight(a.rel), 1);
	xfer(&a, &b, 6);
	CHECK_EQ(b.expect, 1);
	b.refuse = 1;			/* the delayed ack */
	usb4_rel_timer(b.rel, usb4_rel_deadline(b.rel), &b.io);
	CHECK_EQ(b.out.n, 0);
	CHECK(usb4_rel_deadline(b.rel) <= 6 + cfg.ack_delay_ns);
	usb4_rel_timer(b.rel, usb4_rel_deadline(b.rel), &b.io);
	CHECK_EQ(type_at(&b, 0), USB4_REL_ACK);
	side_close(&a);
	side_close(&b);
}

/* ---- receiver not ready ----------------------------------------------- */

/* What B advertised and what A sent while B refused deliveries. */
struct closed_obs {
	uint32_t wnd;		/* B's last advertised window */
	bool grew;		/* it grew while B refused */
	uint64_t probes;	/* A's DATA once the window had long closed */
	uint32_t probe_seq;
	bool other_seq;		/* ... some of another seq than the first */
};

static void observe_b(const struct side *b, struct closed_obs *o)
{
	for (size_t i = 0; i < b->out.n; i++) {
		uint32_t wnd = hdr_of(&b->out.d[i]).window;

		o->grew |= wnd > o->wnd;
		o->wnd = wnd;
	}
}

static void observe_probes(const struct side *a, struct closed_obs *o)
{
	for (size_t i = 0; i < a->out.n; i++) {
		struct usb4_wire_rel h = hdr_of(&a->out.d[i]);

		if (h.type != USB4_REL_DATA)
			continue;
		if (!o->probes++)
			o->probe_seq = h.seq;
		o->other_seq |= h.seq != o->probe_seq;
	}
}

#define NR_STEP	(100 * US)

/* B refuses every delivery for 3 dead_ns while A keeps sending (clean
 * link): B holds a window of payloads and advertises less and less, down
 * to 0; A then sends only one frame, again and again (the probe), and
 * neither side thinks the other dead. */
static uint64_t refuse_for_long(struct side *a, struct side *b,
				const struct usb4_rel_cfg *cfg, uint64_t *next,
				uint64_t n)
{
	struct closed_obs o = { .wnd = cfg->window };
	uint64_t now;

	b->not_ready = true;
	for (now = NR_STEP; now < 3 * cfg->dead_ns; now += NR_STEP) {
		while (*next < n && usb4_rel_can_send(a->rel) &&
		       send_idx(a, b->stream, *next, now) == 0)
			(*next)++;
		if (usb4_rel_deadline(a->rel) <= now)
			usb4_rel_timer(a->rel, now, &a->io);
		if (usb4_rel_deadline(b->rel) <= now)
			usb4_rel_timer(b->rel, now, &b->io);
		if (now >= 20 * MS)
			observe_probes(a, &o);
		xfer(a, b, now);
		observe_b(b, &o);
		xfer(b, a, now);
	}
	CHECK_EQ(b->expect, 1);				/* nothing taken */
	CHECK_EQ(usb4_rel_undelivered(b->rel), cfg->window);
	CHECK(usb4_rel_stats(b->rel)->not_ready >= cfg->window);
	CHECK(!o.grew);
	CHECK_EQ(o.wnd, 0);
	CHECK_EQ(usb4_rel_unacked(a->rel), 1);		/* the probe */
	CHECK(!usb4_rel_can_send(a->rel));
	CHECK(o.probes >= 3);
	CHECK(o.probes <= 3 * cfg->dead_ns / cfg->rto_max_ns + 2);
	CHECK(!o.other_seq);
	CHECK_EQ(o.probe_seq, cfg->isn + 1 + cfg->window);
	CHECK(!usb4_rel_dead(a->rel) && !usb4_rel_dead(b->rel));
	return now;
}

/* A receiver not ready for a long while: nothing is lost, repeated or
 * reordered; its window closes and the sender stops but for a one-frame
 * probe; when it takes deliveries again, its next timer call hands up
 * everything it held and announces the reopened window, and the rest
 * flows. */
static void not_ready_then_ready(uint32_t window)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	uint64_t next = 1, n = 4 * window + 20, now, t;

	cfg.window = window;
	cfg.isn = 100;
	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	xfer(&a, &b, 0);
	now = refuse_for_long(&a, &b, &cfg, &next, n);

	b.not_ready = false;
	t = usb4_rel_deadline(b.rel);
	CHECK(t <= now + cfg.ack_delay_ns);
	t = t > now ? t : now;
	usb4_rel_timer(b.rel, t, &b.io);		/* one call */
	CHECK_EQ(b.expect, 1 + window);
	CHECK_EQ(usb4_rel_undelivered(b.rel), 0);
	CHECK(b.out.n >= 1);				/* the window update */
	CHECK(b.out.n && hdr_of(&b.out.d[b.out.n - 1]).window == window);
	xfer(&b, &a, t);
	now = t;
	settle(&a, &b, &next, n, &now, NR_STEP);
	CHECK(now - t <= 2 * cfg.rto_max_ns + n * NR_STEP);
	CHECK_EQ(b.expect, n);
	CHECK_EQ(usb4_rel_stats(b.rel)->delivered, n);
	CHECK(!b.bad);
	side_close(&a);
	side_close(&b);
}

static void test_receiver_not_ready(void)
{
	not_ready_then_ready(16);
	not_ready_then_ready(4);
}

static void test_receiver_not_ready_window_1(void)
{
	not_ready_then_ready(1);
}

/* A refused payload is offered again by input too: the next arrival hands
 * up both, in order; the offers are counted. */
static void test_not_ready_offered_on_input(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();

	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	b.not_ready = true;
	xfer(&a, &b, 0);
	CHECK_EQ(b.expect, 0);
	CHECK_EQ(usb4_rel_undelivered(b.rel), 1);
	CHECK(usb4_rel_stats(b.rel)->not_ready >= 1);
	CHECK(usb4_rel_deadline(b.rel) <= cfg.ack_delay_ns);
	b.not_ready = false;
	CHECK_EQ(send_idx(&a, 1, 1, 10), 0);
	xfer(&a, &b, 10);
	CHECK_EQ(b.expect, 2);
	CHECK_EQ(usb4_rel_undelivered(b.rel), 0);
	CHECK(!b.bad);
	side_close(&a);
	side_close(&b);
}

/* B closes its window; an older datagram of B that advertised it open,
 * overtaken on the way (an ack, or a repeated HELLO_ACK), must not reopen
 * it: A still sends only the probe. */
static void stale_window(bool hello_ack)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	struct dgram old = { 0 };
	uint64_t next = 1, sent = 0;

	cfg.window = 8;
	pair_open(&a, &b, &cfg, &cfg, 0);
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	xfer(&a, &b, 0);				/* B: HELLO_ACK */
	old = b.out.d[0];
	old.buf = malloc(old.len);
	memcpy(old.buf, b.out.d[0].buf, old.len);
	xfer(&b, &a, 0);
	xfer(&a, &b, 0);				/* payload 0 taken */
	usb4_rel_timer(b.rel, cfg.ack_delay_ns, &b.io);
	if (!hello_ack) {				/* the ack, window 8 */
		free(old.buf);
		old = b.out.d[0];
		old.buf = malloc(old.len);
		memcpy(old.buf, b.out.d[0].buf, old.len);
	}
	xfer(&b, &a, cfg.ack_delay_ns);
	b.not_ready = true;
	while (send_idx(&a, 1, next, MS) == 0)
		next++;
	xfer(&a, &b, MS);				/* all 8 held */
	CHECK_EQ(usb4_rel_undelivered(b.rel), 8);
	xfer(&b, &a, MS);				/* window 0 */
	CHECK_EQ(send_idx(&a, 1, next++, MS), 0);	/* the probe */
	CHECK_EQ(send_idx(&a, 1, next, MS), -FI_EAGAIN);
	usb4_rel_input(a.rel, MS, old.buf, old.len, &a.io);
	while (send_idx(&a, 1, next, MS) == 0)
		next++, sent++;
	CHECK_EQ(sent, 0);
	CHECK_EQ(usb4_rel_unacked(a.rel), 1);
	free(old.buf);
	side_close(&a);
	side_close(&b);
}

static void test_stale_window_ignored(void)
{
	stale_window(false);
	stale_window(true);
}

/* ---- the buffer pool --------------------------------------------------- */

/* Small pools: A's takes four copies of its 129..256 B payloads, B's one.
 * A send that needs a copy then answers -FI_EAGAIN though the window is
 * open; an out-of-order arrival (it needs a copy) is dropped, counted and
 * not acknowledged; once the pools free up, every payload arrives exactly
 * once. */
static void test_pool_spent(void)
{
	struct side a, b;
	struct usb4_rel_cfg ca = base_cfg(), cb = base_cfg();
	struct usb4_rel_pool *pa, *pb;
	uint64_t next = 1, now = MS;
	struct queue q;

	CHECK_EQ(usb4_rel_pool_open(&pa, 4 * 256), 0);
	CHECK_EQ(usb4_rel_pool_open(&pb, 256 + 128), 0);
	ca.pool = pa;
	cb.pool = pb;
	ca.isn = 200;
	pair_open(&a, &b, &ca, &cb, 0);
	b.stream = STREAM_MID;
	handshake(&a, &b, 0);
	settle(&a, &b, NULL, 0, &now, 10 * US);
	CHECK_EQ(b.expect, 1);
	while (send_idx(&a, STREAM_MID, next, now) == 0)
		next++;
	CHECK_EQ(next, 5);
	CHECK(usb4_rel_can_send(a.rel));		/* the pool said no */
	CHECK_EQ(usb4_rel_pool_in_use(pa), 4 * 256);

	q = a.out;				/* 201 lost, 202..204 arrive */
	memset(&a.out, 0, sizeof(a.out));
	CHECK_EQ(usb4_rel_input(b.rel, now, q.d[1].buf, q.d[1].len, &b.io), 0);
	CHECK_EQ(usb4_rel_input(b.rel, now, q.d[2].buf, q.d[2].len, &b.io),
		 -FI_EAGAIN);
	CHECK_EQ(usb4_rel_input(b.rel, now, q.d[3].buf, q.d[3].len, &b.io),
		 -FI_EAGAIN);
	q_free(&q);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_NO_BUFFER], 2);
	CHECK(b.out.n >= 1);
	for (size_t i = 0; i < b.out.n; i++)	/* 203, 204 never acked */
		CHECK(hdr_of(&b.out.d[i]).ack == 201 &&
		      hdr_of(&b.out.d[i]).sack == 1);

	settle(&a, &b, &next, 12, &now, 10 * US);
	CHECK_EQ(b.expect, 12);
	CHECK_EQ(usb4_rel_stats(b.rel)->delivered, 12);
	CHECK(!b.bad);
	CHECK_EQ(usb4_rel_pool_in_use(pa), 0);
	CHECK_EQ(usb4_rel_pool_in_use(pb), 0);
	side_close(&a);
	side_close(&b);
	usb4_rel_pool_close(pa);
	usb4_rel_pool_close(pb);
}

/* ---- memory of an idle peer ------------------------------------------- */

/* Timer calls at the deadlines of two quiet peers: each call leaves a
 * deadline in the future, and within a few calls, once TRIM_NS have
 * passed since the last datagram, nothing is due at all. */
static void wait_rings_released(struct side *a, struct side *b,
				uint64_t *now, uint64_t last)
{
	int calls = 0;
	uint64_t t;

	while (calls < 10) {
		t = usb4_rel_deadline(a->rel);
		if (usb4_rel_deadline(b->rel) < t)
			t = usb4_rel_deadline(b->rel);
		if (t == UINT64_MAX)
			break;
		CHECK(t > *now || calls == 0);
		CHECK(t <= last + TRIM_NS);
		*now = t > *now ? t : *now;
		usb4_rel_timer(a->rel, *now, &a->io);
		usb4_rel_timer(b->rel, *now, &b->io);
		CHECK(usb4_rel_deadline(a->rel) > *now);
		CHECK(usb4_rel_deadline(b->rel) > *now);
		CHECK_EQ(xfer(a, b, *now) + xfer(b, a, *now), 0);
		calls++;
	}
	CHECK(calls <= 4);
	CHECK(*now >= last - 2 * MS + TRIM_NS);
	CHECK(usb4_rel_deadline(a->rel) == UINT64_MAX);
	CHECK(usb4_rel_deadline(b->rel) == UINT64_MAX);
}

/* Traffic both ways at *now, 20 payloads from A (one lost, so B holds
 * some out of order), 10 from B; returns when the last datagram crossed. */
static uint64_t traffic(struct side *a, struct side *b, uint64_t *now)
{
	uint64_t next = b->expect, back = a->expect, last;
	uint64_t first = next, back_first = back;
	size_t lost;

	for (; next < first + 20; next++)
		CHECK_EQ(send_idx(a, b->stream, next, *now), 0);
	for (; back < back_first + 10; back++)
		CHECK_EQ(send_idx(b, a->stream, back, *now), 0);
	CHECK_EQ(a->out.n, 20);
	lost = a->out.n - 15;				/* one lost */
	free(a->out.d[lost].buf);
	a->out.d[lost] = a->out.d[--a->out.n];
	xfer(a, b, *now);
	CHECK(usb4_rel_pool_in_use(b->pool) > 0);	/* held out of order */
	last = settle(a, b, NULL, 0, now, 100 * US);
	CHECK_EQ(b->expect, first + 20);
	CHECK_EQ(a->expect, back_first + 10);
	CHECK(!a->bad && !b->bad);
	CHECK_EQ(usb4_rel_pool_in_use(a->pool), 0);
	CHECK_EQ(usb4_rel_pool_in_use(b->pool), 0);
	return last;
}

/* After TRIM_NS of quiet both peers let their slot rings go (the heap
 * shrinks by them, where the allocator says); usb4_rel_deadline says when
 * and then nothing; new traffic both ways works as before. */
static void test_rings_released_after_quiet(void)
{
	struct side a, b;
	struct usb4_rel_cfg ca = base_cfg(), cb = base_cfg();
	struct usb4_rel_pool *pa, *pb;
	uint64_t now = 0, last;
	size_t heap;

	CHECK_EQ(usb4_rel_pool_open(&pa, 1 << 20), 0);
	CHECK_EQ(usb4_rel_pool_open(&pb, 1 << 20), 0);
	ca.window = cb.window = 1024;
	ca.pool = pa;
	cb.pool = pb;
	pair_open(&a, &b, &ca, &cb, 0);
	handshake(&a, &b, 0);
	settle(&a, &b, NULL, 0, &now, 100 * US);
	last = traffic(&a, &b, &now);
	heap = heap_used();
	wait_rings_released(&a, &b, &now, last);
	if (heap)	/* a tx slot holds USB4_REL_REF_MAX struct iovec */
		CHECK(heap - heap_used() >= 2 * 1024 * USB4_REL_REF_MAX *
					    sizeof(struct iovec));
	for (int i = 0; i < 100; i++) {		/* idle: nothing to do */
		now += 10 * MS;
		usb4_rel_timer(a.rel, now, &a.io);
		usb4_rel_timer(b.rel, now, &b.io);
	}
	CHECK_EQ(a.out.n + b.out.n, 0);
	CHECK(!usb4_rel_dead(a.rel) && !usb4_rel_dead(b.rel));
	CHECK(usb4_rel_deadline(a.rel) == UINT64_MAX);
	last = traffic(&a, &b, &now);
	wait_rings_released(&a, &b, &now, last);
	side_close(&a);
	side_close(&b);
	usb4_rel_pool_close(pa);
	usb4_rel_pool_close(pb);
}

/* ---- long runs through a faulty link ------------------------------------- */

struct faults {
	double drop, dup, corrupt, refuse;
	double not_ready;	/* deliveries the receivers refuse */
	unsigned drop_every;	/* drop datagram k when k % n == n - 1 */
	unsigned delay_max;	/* extra steps of random latency: reorders */
};

struct wire {
	struct queue q;
	uint64_t count, corrupted;
};

#define STEP (10 * US)

/* Moves what `from` sent onto the wire, through the faults. */
static void wire_load(struct wire *w, struct side *from, const struct faults *f,
		      uint64_t step)
{
	for (size_t i = 0; i < from->out.n; i++) {
		struct dgram d = from->out.d[i];
		bool lost = (f->drop_every &&
			     w->count % f->drop_every == f->drop_every - 1) ||
			    rng_unit() < f->drop;

		w->count++;
		d.release = step + 1 + (f->delay_max ? rng() % (f->delay_max + 1) : 0);
		if (lost) {
			free(d.buf);
			continue;
		}
		if (rng_unit() < f->corrupt) {
			d.buf[rng() % d.len] ^= (unsigned char) (1 + rng() % 255);
			d.corrupt = true;
		}
		if (rng_unit() < f->dup) {
			struct dgram copy = d;
			copy.buf = malloc(d.len);
			memcpy(copy.buf, d.buf, d.len);
			copy.release += rng() % 3;
			q_push(&w->q, copy);
		}
		q_push(&w->q, d);
	}
	from->out.n = 0;
}

/* Hands `to` what arrives by this step; keeps the rest on the wire. */
static void wire_arrive(struct wire *w, struct side *to, uint64_t step,
			uint64_t now)
{
	size_t keep = 0;

	for (size_t i = 0; i < w->q.n; i++) {
		struct dgram d = w->q.d[i];

		if (d.release > step) {
			w->q.d[keep++] = d;
			continue;
		}
		int ret = usb4_rel_input(to->rel, now, d.buf, d.len, &to->io);
		if (d.corrupt) {
			w->corrupted++;
			CHECK(ret == -FI_EINVAL);
		}
		free(d.buf);
	}
	w->q.n = keep;
}

/* Sends while the window allows; with a pool, a send may also find it
 * spent (-FI_EAGAIN): then it has no buffer for that payload. */
static void pump_sends(struct side *s, uint64_t stream, uint64_t *next,
		       uint64_t n, uint64_t now)
{
	while (*next < n && usb4_rel_can_send(s->rel)) {
		int ret = send_idx(s, stream, *next, now);

		if (ret == -FI_EAGAIN && s->pool) {
			unsigned char p[PMAX];
			void *buf = usb4_rel_pool_get(
				s->pool, gen_payload(stream, *next, p));

			CHECK(!buf);
			usb4_rel_pool_put(s->pool, buf);
			s->pool_refused++;
			return;
		}
		CHECK_EQ(ret, 0);
		if (ret)
			return;
		(*next)++;
	}
	if (*next < n)
		CHECK_EQ(send_idx(s, stream, *next, now), -FI_EAGAIN);
}

/* What a run met on its way. */
struct run_stats {
	uint64_t steps, pool_refused, no_buffer, not_ready, out_of_window;
};

static void run_stats_add(struct run_stats *r, const struct side *s)
{
	const struct usb4_rel_stats *st = usb4_rel_stats(s->rel);

	r->pool_refused += s->pool_refused;
	r->no_buffer += st->dropped[USB4_REL_DROP_NO_BUFFER];
	r->not_ready += st->not_ready;
	r->out_of_window += st->dropped[USB4_REL_DROP_OUT_OF_WINDOW];
}

static void run_report(const char *name, uint64_t n,
		       const struct run_stats *r, const struct side *a,
		       const struct side *b, uint32_t max_flight)
{
	printf("  %-12s %7llu payloads each way, %7llu steps, %6llu rtx A, "
	       "%6llu dups at B, max flight %u\n", name,
	       (unsigned long long) n, (unsigned long long) r->steps,
	       (unsigned long long) usb4_rel_stats(a->rel)->retransmitted,
	       (unsigned long long)
	       usb4_rel_stats(b->rel)->dropped[USB4_REL_DROP_DUPLICATE],
	       max_flight);
	if (r->pool_refused || r->no_buffer || r->not_ready)
		printf("  %-12s %7llu sends without a buffer, %6llu arrivals "
		       "without one, %6llu deliveries refused\n", "",
		       (unsigned long long) r->pool_refused,
		       (unsigned long long) r->no_buffer,
		       (unsigned long long) r->not_ready);
}

/* n payloads each way through the faults (a refused delivery is offered
 * again; the probes of a closed window may be dropped out of window). */
static struct run_stats run(const char *name, const struct usb4_rel_cfg *ca,
			    const struct usb4_rel_cfg *cb,
			    const struct faults *f, uint64_t n)
{
	struct side a, b;
	struct wire ab = { 0 }, ba = { 0 };
	struct run_stats r = { 0 };
	uint64_t step = 0, now = 0, sa = 0, sb = 0, limit = 400 * n + 100000;
	uint32_t max_flight = 0;

	pair_open(&a, &b, ca, cb, 0);
	a.refuse_p = b.refuse_p = f->refuse;
	a.not_ready_p = b.not_ready_p = f->not_ready;
	while ((a.expect < n || b.expect < n || usb4_rel_in_flight(a.rel) ||
		usb4_rel_in_flight(b.rel)) && step < limit) {
		pump_sends(&a, 1, &sa, n, now);
		pump_sends(&b, 2, &sb, n, now);
		if (usb4_rel_in_flight(a.rel) > max_flight)
			max_flight = usb4_rel_in_flight(a.rel);
		wire_load(&ab, &a, f, step);
		wire_load(&ba, &b, f, step);
		step++;
		now += STEP;
		wire_arrive(&ab, &b, step, now);
		wire_arrive(&ba, &a, step, now);
		if (usb4_rel_deadline(a.rel) <= now)
			usb4_rel_timer(a.rel, now, &a.io);
		if (usb4_rel_deadline(b.rel) <= now)
			usb4_rel_timer(b.rel, now, &b.io);
	}
	CHECK(step < limit);
	CHECK_EQ(a.expect, n);
	CHECK_EQ(b.expect, n);
	CHECK(!a.bad && !b.bad);
	CHECK(!usb4_rel_dead(a.rel) && !usb4_rel_dead(b.rel));
	CHECK(max_flight <= (ca->window < cb->window ? ca->window : cb->window));
	CHECK_EQ(usb4_rel_stats(a.rel)->delivered, n);
	CHECK_EQ(usb4_rel_stats(b.rel)->delivered, n);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_BAD_HEADER],
		 ab.corrupted);
	r.steps = step;
	run_stats_add(&r, &a);
	run_stats_add(&r, &b);
	if (!f->not_ready)
		CHECK_EQ(usb4_rel_stats(b.rel)->dropped
			 [USB4_REL_DROP_OUT_OF_WINDOW], 0);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_WRONG_SRC], 0);
	CHECK_EQ(usb4_rel_undelivered(a.rel) + usb4_rel_undelivered(b.rel), 0);
	CHECK_EQ(usb4_rel_pool_in_use(ca->pool), 0);
	CHECK_EQ(usb4_rel_pool_in_use(cb->pool), 0);
	run_report(name, n, &r, &a, &b, max_flight);
	q_free(&ab.q);
	q_free(&ba.q);
	side_close(&a);
	side_close(&b);
	return r;
}

static struct usb4_rel_cfg sim_cfg(void)
{
	struct usb4_rel_cfg cfg = {
		.window = 64,
		.payload_max = PMAX,
		.rto_initial_ns = 400 * US,	/* above the worst round trip */
		.rto_max_ns = 4 * MS,
		.ack_delay_ns = 20 * US,
		.dead_ns = 1000 * MS,
	};
	return cfg;
}

static void test_faulty_links(void)
{
	struct usb4_rel_cfg c = sim_cfg(), small = sim_cfg();
	struct faults clean = { 0 }, nth = { .drop_every = 7 };
	struct faults l1 = { .drop = 0.01 }, l10 = { .drop = 0.10 };
	struct faults l30 = { .drop = 0.30 }, dup = { .dup = 0.2 };
	struct faults reo = { .delay_max = 8 };
	struct faults all = { .drop = 0.1, .dup = 0.1, .corrupt = 0.05,
			      .refuse = 0.03, .delay_max = 6 };

	run("clean", &c, &c, &clean, 20000);
	run("every 7th", &c, &c, &nth, 20000);
	run("loss 1%", &c, &c, &l1, 20000);
	run("loss 10%", &c, &c, &l10, 20000);
	run("loss 30%", &c, &c, &l30, 10000);
	run("dup 20%", &c, &c, &dup, 20000);
	run("reorder", &c, &c, &reo, 20000);
	run("combined", &c, &c, &all, 100000);
	small.window = 8;		/* B advertises less than A could send */
	run("rwnd 8", &c, &small, &all, 5000);
	small.window = 1;
	run("window 1", &small, &small, &l10, 2000);
}

/* Receivers that refuse deliveries at random, through a faulty link:
 * every payload still arrives once, in order; the refusals close and
 * reopen windows. */
static void test_not_ready_faulty(void)
{
	struct usb4_rel_cfg c = sim_cfg(), small = sim_cfg();
	struct faults nr = { .not_ready = 0.3 };
	struct faults all = { .drop = 0.1, .dup = 0.1, .corrupt = 0.05,
			      .refuse = 0.03, .delay_max = 6,
			      .not_ready = 0.5 };
	struct run_stats r;

	r = run("not ready", &c, &c, &nr, 10000);
	CHECK(r.not_ready > 1000);
	r = run("nr combined", &c, &c, &all, 10000);
	CHECK(r.not_ready > 1000);
	small.window = 4;
	r = run("nr window 4", &small, &small, &all, 3000);
	CHECK(r.out_of_window > 0);		/* closed windows were probed */
}

/* Small pools (a few copies each, shared by both directions of a side)
 * through a lossy, reordering link: sends find the pool spent, arrivals
 * are dropped for want of a buffer, and still every payload arrives
 * exactly once; the pools end empty. */
static void test_pool_faulty(void)
{
	struct usb4_rel_cfg ca = sim_cfg(), cb = sim_cfg();
	struct faults f = { .drop = 0.1, .dup = 0.05, .delay_max = 6 };
	struct faults nr = { .drop = 0.05, .delay_max = 4, .not_ready = 0.3 };
	struct usb4_rel_pool *pa, *pb;
	struct run_stats r;

	CHECK_EQ(usb4_rel_pool_open(&pa, 4096), 0);
	CHECK_EQ(usb4_rel_pool_open(&pb, 4096), 0);
	ca.pool = pa;
	cb.pool = pb;
	r = run("pool 4K", &ca, &cb, &f, 5000);
	CHECK(r.pool_refused > 0);
	CHECK(r.no_buffer > 0);
	r = run("pool, nr", &ca, &cb, &nr, 5000);
	CHECK(r.pool_refused > 0);
	CHECK(r.no_buffer > 0);
	usb4_rel_pool_close(pa);
	usb4_rel_pool_close(pb);
}

/* Sequence numbers cross 2^32 under loss and reordering. */
static void test_wraparound(void)
{
	struct usb4_rel_cfg ca = sim_cfg(), cb = sim_cfg();
	struct faults f = { .drop = 0.1, .delay_max = 4 };

	ca.isn = UINT32_MAX - 49;
	cb.isn = UINT32_MAX - 19;
	run("wraparound", &ca, &cb, &f, 3000);
	ca.isn = cb.isn = 0x7fffffff - 10;	/* across the sign boundary */
	run("wrap 2^31", &ca, &cb, &f, 3000);
}

/* ---- payloads by reference, datagrams in pieces ------------------------- */

/* A DATA datagram of one payload sent by reference from buf (owner 7):
 * returns it, taken off a's queue. */
static struct dgram send_by_ref(struct side *a, unsigned char *buf, size_t len,
				uint64_t now)
{
	unsigned char head[3] = { 'h', 'd', 'r' };
	struct iovec iov[2] = { { head, sizeof(head) }, { buf, len } };
	struct dgram d = { 0 };

	CHECK_EQ(usb4_rel_send_ref(a->rel, now, iov, 2, 1, 7, &a->io), 0);
	CHECK_EQ(a->out.n, 1);
	if (a->out.n == 1) {
		d = a->out.d[0];
		a->out.n = 0;
	}
	return d;
}

/* Raw delivery check: B takes whatever payload arrives (not a stream) and
 * appends it to ref_got; the test empties it. */
static unsigned char ref_got[4 * PMAX];
static size_t ref_got_len;

static int keep_deliver(void *ctx, const struct iovec *pieces, int count)
{
	(void) ctx;
	for (int i = 0; i < count; i++) {
		if (ref_got_len + pieces[i].iov_len > sizeof(ref_got))
			return 0;
		memcpy(ref_got + ref_got_len, pieces[i].iov_base,
		       pieces[i].iov_len);
		ref_got_len += pieces[i].iov_len;
	}
	return 0;
}

/* A referenced payload is read at each transmission: a change before the
 * retransmission goes out; after usb4_rel_copy_refs(owner) it no longer
 * does; acks release references. */
static void test_send_by_reference(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	unsigned char buf[64], want[3 + 64];
	struct dgram lost;

	cfg.isn = 40;
	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	xfer(&a, &b, 0);
	b.io.deliver = keep_deliver;

	memset(buf, 'x', sizeof(buf));
	lost = send_by_ref(&a, buf, sizeof(buf), 0);	/* the wire loses it */
	free(lost.buf);
	CHECK_EQ(usb4_rel_refs(a.rel), 1);
	memset(buf, 'y', sizeof(buf));		/* not copied: this goes */
	usb4_rel_timer(a.rel, cfg.rto_initial_ns, &a.io);
	CHECK_EQ(type_at(&a, 0), USB4_REL_DATA);
	ref_got_len = 0;
	xfer(&a, &b, cfg.rto_initial_ns);
	memcpy(want, "hdr", 3);
	memset(want + 3, 'y', sizeof(buf));
	CHECK_EQ(ref_got_len, sizeof(want));
	CHECK(!memcmp(ref_got, want, sizeof(want)));
	usb4_rel_timer(b.rel, cfg.rto_initial_ns + cfg.ack_delay_ns, &b.io);
	xfer(&b, &a, cfg.rto_initial_ns + cfg.ack_delay_ns);
	CHECK_EQ(usb4_rel_refs(a.rel), 0);	/* acked: released */

	memset(buf, 'p', sizeof(buf));
	lost = send_by_ref(&a, buf, sizeof(buf), 2 * MS);
	free(lost.buf);
	usb4_rel_copy_refs(a.rel, 8);		/* another owner's: no effect */
	CHECK_EQ(usb4_rel_refs(a.rel), 1);
	usb4_rel_copy_refs(a.rel, 7);
	CHECK_EQ(usb4_rel_refs(a.rel), 0);
	memset(buf, 'q', sizeof(buf));		/* after the copy: must not go */
	usb4_rel_timer(a.rel, 2 * MS + cfg.rto_initial_ns, &a.io);
	ref_got_len = 0;
	xfer(&a, &b, 2 * MS + cfg.rto_initial_ns);
	memset(want + 3, 'p', sizeof(buf));
	CHECK_EQ(ref_got_len, sizeof(want));
	CHECK(!memcmp(ref_got, want, sizeof(want)));
	CHECK_EQ(usb4_rel_send_ref(a.rel, 3 * MS, NULL, 0, 1, 7, &a.io),
		 -FI_EINVAL);			/* more refs than buffers */
	side_close(&a);
	side_close(&b);
}

/* Takes buffers of `len` bytes from the pool until it has none left;
 * returns how many (at most max). */
static size_t pool_drain(struct usb4_rel_pool *pool, size_t len, void **keep,
			 size_t max)
{
	size_t k = 0;

	while (k < max && (keep[k] = usb4_rel_pool_get(pool, len)))
		k++;
	return k;
}

/* A and B past the handshake, A's pool empty again, B keeping whatever
 * arrives (keep_deliver). */
static void pair_idle(struct side *a, struct side *b,
		      const struct usb4_rel_cfg *ca,
		      const struct usb4_rel_cfg *cb, uint64_t *now)
{
	pair_open(a, b, ca, cb, 0);
	handshake(a, b, 0);
	settle(a, b, NULL, 0, now, 10 * US);
	CHECK_EQ(usb4_rel_pool_in_use(ca->pool), 0);
	b->io.deliver = keep_deliver;
}

/* send_ref takes the room for a later copy at once, so usb4_rel_copy_refs
 * needs nothing from a pool that has since run dry: the copies it makes
 * are what is retransmitted after the caller reuses its buffers.  One
 * payload with a small copied head, one with a head too large for a slot;
 * both lost on the wire. */
static void test_copy_refs_needs_no_pool(void)
{
	struct side a, b;
	struct usb4_rel_cfg ca = base_cfg(), cb = base_cfg();
	struct usb4_rel_pool *pool;
	unsigned char head[80], r1[100], r2[200], want[3 + 100 + 80 + 200];
	struct iovec iov[2] = { { head, 80 }, { r2, sizeof(r2) } };
	void *keep[64];
	size_t kept, used, reserved;
	uint64_t t = 0;
	struct dgram lost;

	CHECK_EQ(usb4_rel_pool_open(&pool, 4096), 0);
	ca.pool = pool;
	pair_idle(&a, &b, &ca, &cb, &t);
	memset(r1, 'p', sizeof(r1));
	memset(head, 'h', sizeof(head));
	memset(r2, 'r', sizeof(r2));
	lost = send_by_ref(&a, r1, sizeof(r1), t);
	free(lost.buf);
	CHECK_EQ(usb4_rel_send_ref(a.rel, t, iov, 2, 1, 7, &a.io), 0);
	q_clear(&a.out);
	reserved = usb4_rel_pool_in_use(pool);
	CHECK(reserved >= 3 + sizeof(r1) + sizeof(head) + sizeof(r2));
	kept = pool_drain(pool, 1, keep, 64);
	CHECK(usb4_rel_pool_get(pool, 1) == NULL);	/* spent */
	CHECK(usb4_rel_can_send(a.rel));
	CHECK_EQ(usb4_rel_send(a.rel, t, iov, 2, &a.io), -FI_EAGAIN);
	CHECK_EQ(usb4_rel_send_ref(a.rel, t, iov, 2, 1, 7, &a.io), -FI_EAGAIN);
	used = usb4_rel_pool_in_use(pool);

	CHECK_EQ(usb4_rel_copy_refs(a.rel, 7), 2);
	CHECK_EQ(usb4_rel_refs(a.rel), 0);
	CHECK_EQ(usb4_rel_pool_in_use(pool), used);	/* nothing taken */
	memset(r1, 'X', sizeof(r1));		/* the caller reuses them */
	memset(r2, 'Y', sizeof(r2));
	memset(head, 'Z', sizeof(head));
	ref_got_len = 0;
	settle(&a, &b, NULL, 0, &t, 100 * US);	/* retransmitted on timeout */
	memcpy(want, "hdr", 3);
	memset(want + 3, 'p', sizeof(r1));
	memset(want + 3 + sizeof(r1), 'h', sizeof(head));
	memset(want + 3 + sizeof(r1) + sizeof(head), 'r', sizeof(r2));
	CHECK_EQ(ref_got_len, sizeof(want));
	CHECK(!memcmp(ref_got, want, sizeof(want)));
	CHECK_EQ(usb4_rel_pool_in_use(pool), used - reserved);	/* acked */
	for (size_t i = 0; i < kept; i++)
		usb4_rel_pool_put(pool, keep[i]);
	side_close(&a);
	side_close(&b);
	usb4_rel_pool_close(pool);
}

/* Datagrams handed in three pieces, cut anywhere (inside the header too),
 * arrive as if whole; a corrupted piece is refused. */
static void test_input_in_pieces(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	uint64_t sent = 1;

	cfg.isn = 90;
	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	xfer(&a, &b, 0);
	for (size_t cut = 0; cut < HDR + 40; cut += 7, sent++) {
		struct dgram d;
		struct iovec iov[3];
		size_t at, c2;

		CHECK_EQ(send_idx(&a, 1, sent, MS), 0);
		if (a.out.n != 1)
			break;
		d = a.out.d[0];
		a.out.n = 0;
		at = cut < d.len ? cut : d.len;
		c2 = at + (d.len - at) / 2;
		iov[0] = (struct iovec) { d.buf, at };
		iov[1] = (struct iovec) { d.buf + at, c2 - at };
		iov[2] = (struct iovec) { d.buf + c2, d.len - c2 };
		if (sent % 5 == 0) {		/* corrupt, then whole again */
			d.buf[d.len - 1] ^= 1;
			CHECK_EQ(usb4_rel_input_v(b.rel, MS, iov, 3, &b.io),
				 -FI_EINVAL);
			d.buf[d.len - 1] ^= 1;
		}
		CHECK_EQ(usb4_rel_input_v(b.rel, MS, iov, 3, &b.io), 0);
		free(d.buf);
	}
	CHECK_EQ(b.expect, sent);
	CHECK(!b.bad);
	CHECK(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_BAD_HEADER] > 0);
	side_close(&a);
	side_close(&b);
}

/* ---- authentication under a job key --------------------------------------- */

#define TRAILER	sizeof(struct usb4_wire_auth)

static struct usb4_auth_job job_one, job_two;

static struct usb4_rel_cfg keyed_cfg(const struct usb4_auth_job *job)
{
	struct usb4_rel_cfg cfg = base_cfg();

	cfg.job = job;
	return cfg;
}

static uint16_t flags_of(const struct dgram *d)
{
	return le16toh(hdr_of(d).flags);
}

/* Both sides hold the key: the handshake and a transfer complete, every
 * datagram carries the flag and the trailer, nothing is dropped. */
static void test_auth_transfer(void)
{
	struct usb4_rel_cfg cfg = keyed_cfg(&job_one);
	struct side a, b;
	uint64_t now = 0;

	pair_open(&a, &b, &cfg, &cfg, 0);
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	CHECK_EQ(a.out.n, 1);
	CHECK_EQ(a.out.d[0].len, HDR + HELLO_LEN + TRAILER);
	CHECK_EQ(flags_of(&a.out.d[0]), USB4_REL_F_AUTH);
	xfer(&a, &b, 0);
	CHECK_EQ(type_at(&b, 0), USB4_REL_HELLO_ACK);
	xfer(&b, &a, 0);
	CHECK_EQ(type_at(&a, 0), USB4_REL_DATA);
	CHECK_EQ(flags_of(&a.out.d[0]), USB4_REL_F_AUTH);
	CHECK_EQ(hdr_of(&a.out.d[0]).crc, 0);
	transfer_completes(&a, &b, 200, &now);
	for (int d = 0; d < USB4_REL_DROP_MAX; d++) {
		CHECK_EQ(usb4_rel_stats(a.rel)->dropped[d], 0);
		CHECK_EQ(usb4_rel_stats(b.rel)->dropped[d], 0);
	}
	side_close(&a);
	side_close(&b);
}

/* A HELLO under another key, without one where one is in force, or with
 * one where none is: dropped and counted, unanswered, nothing learnt. */
static void auth_hello_refused(const struct usb4_auth_job *ja,
			       const struct usb4_auth_job *jb,
			       enum usb4_rel_drop why)
{
	struct usb4_rel_cfg ca = keyed_cfg(ja), cb = keyed_cfg(jb);
	struct side a, b;

	pair_open(&a, &b, &ca, &cb, 0);
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	xfer(&a, &b, 0);
	CHECK_EQ(b.out.n, 0);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[why], 1);
	CHECK_EQ(send_idx(&b, 2, 0, 0), 0);	/* B's own HELLO: the same */
	xfer(&b, &a, 0);
	CHECK_EQ(a.out.n, 0);
	CHECK_EQ(usb4_rel_stats(a.rel)->dropped[why], 1);
	CHECK_EQ(b.expect, 0);
	side_close(&a);
	side_close(&b);
}

static void test_auth_hello_refused(void)
{
	auth_hello_refused(&job_one, &job_two, USB4_REL_DROP_BAD_TAG);
	auth_hello_refused(NULL, &job_one, USB4_REL_DROP_UNAUTHENTICATED);
	auth_hello_refused(&job_one, NULL, USB4_REL_DROP_UNAUTHENTICATED);
}

/* A crafted datagram of len bytes made to look authenticated: the flag,
 * no CRC, and a trailer of fill bytes (what a host without the key can
 * do); returns its new length. */
static size_t made_up_tag(unsigned char *buf, size_t len, unsigned char fill)
{
	struct usb4_wire_rel h;

	memcpy(&h, buf, HDR);
	h.flags = htole16(USB4_REL_F_AUTH);
	h.crc = 0;
	memcpy(buf, &h, HDR);
	memset(buf + len, fill, TRAILER);
	return len + TRAILER;
}

static struct dgram dgram_copy(const struct dgram *d)
{
	struct dgram c = *d;

	c.buf = malloc(d->len);
	memcpy(c.buf, d->buf, d->len);
	return c;
}

/* What a host on the cable can do without the key: replay what it saw,
 * alter it, or make frames with the ids and sequence numbers it saw.  All
 * dropped and counted; nothing is delivered twice or acknowledged that did
 * not arrive; the transfer completes. */
static void test_auth_forgery_and_replay(void)
{
	struct usb4_rel_cfg cfg = keyed_cfg(&job_one);
	struct side a, b;
	struct dgram seen, ack_seen;
	struct usb4_wire_rel h;
	unsigned char buf[HDR + 8 + TRAILER], pl[8] = { 0 };
	uint64_t now = 0, delivered;
	uint32_t in_flight;
	size_t len;

	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	transfer_completes(&a, &b, 20, &now);
	CHECK_EQ(send_idx(&a, 1, 20, now), 0);
	CHECK_EQ(type_at(&a, 0), USB4_REL_DATA);
	seen = dgram_copy(&a.out.d[0]);
	xfer(&a, &b, now);
	CHECK_EQ(b.expect, 21);
	delivered = usb4_rel_stats(b.rel)->delivered;
	/* the same datagram again */
	CHECK(usb4_rel_input(b.rel, now, seen.buf, seen.len, &b.io) < 0);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_REPLAYED], 1);
	/* altered: one payload byte, then the sequence number */
	seen.buf[HDR + 1] ^= 1;
	CHECK(usb4_rel_input(b.rel, now, seen.buf, seen.len, &b.io) < 0);
	seen.buf[HDR + 1] ^= 1;
	memcpy(&h, seen.buf, HDR);
	h.seq = htole32(le32toh(h.seq) + 1);
	memcpy(seen.buf, &h, HDR);
	CHECK(usb4_rel_input(b.rel, now, seen.buf, seen.len, &b.io) < 0);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_BAD_TAG], 2);
	/* made from scratch with the next seq: no tag, or a made-up one */
	len = craft(buf, USB4_REL_DATA, ID_A, ID_B, le32toh(h.seq), 0, 0, pl, 8);
	CHECK(usb4_rel_input(b.rel, now, buf, len, &b.io) < 0);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_UNAUTHENTICATED],
		 1);
	len = made_up_tag(buf, len, 0x5a);
	CHECK(usb4_rel_input(b.rel, now, buf, len, &b.io) < 0);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_BAD_TAG], 3);
	CHECK_EQ(usb4_rel_stats(b.rel)->delivered, delivered);
	CHECK_EQ(b.expect, 21);
	/* an ACK for what A sent but B never got: A keeps it in flight */
	CHECK_EQ(send_idx(&a, 1, 21, now), 0);
	q_clear(&a.out);			/* lost on the way */
	in_flight = usb4_rel_in_flight(a.rel);
	CHECK(in_flight >= 1);
	usb4_rel_ack_now(b.rel, &b.io);		/* nothing owed: no ack */
	len = craft(buf, USB4_REL_ACK, ID_B, ID_A, 0, le32toh(h.seq) + 1, 0,
		    NULL, 0);
	len = made_up_tag(buf, len, 0xa5);
	CHECK(usb4_rel_input(a.rel, now, buf, len, &a.io) < 0);
	CHECK_EQ(usb4_rel_in_flight(a.rel), in_flight);
	/* B's real acks, replayed, change nothing either */
	now += 10 * MS;
	usb4_rel_timer(a.rel, now, &a.io);	/* A resends 21 */
	xfer(&a, &b, now);
	CHECK_EQ(b.expect, 22);
	now += MS;
	usb4_rel_timer(b.rel, now, &b.io);
	CHECK(b.out.n >= 1);
	ack_seen = dgram_copy(&b.out.d[b.out.n - 1]);
	xfer(&b, &a, now);
	CHECK_EQ(usb4_rel_in_flight(a.rel), 0);
	CHECK(usb4_rel_input(a.rel, now, ack_seen.buf, ack_seen.len, &a.io) < 0);
	CHECK_EQ(usb4_rel_stats(a.rel)->dropped[USB4_REL_DROP_REPLAYED], 1);
	{
		uint64_t next = 22;

		settle(&a, &b, &next, 60, &now, 10 * US);
		CHECK_EQ(b.expect, 60);
		CHECK(!b.bad);
	}
	free(seen.buf);
	free(ack_seen.buf);
	side_close(&a);
	side_close(&b);
}

/* A responder without a peer (the link's offers): the HELLO is read and
 * answered, the peer's first DATA proves it got the answer, and only then
 * is a peer made, which takes that DATA and the rest.  A DATA that does
 * not acknowledge our ISN proves nothing. */
static void offer_flow(const struct usb4_auth_job *job)
{
	struct usb4_rel_cfg ca = keyed_cfg(job), cb = keyed_cfg(job);
	struct side a, b;
	struct usb4_rel_offer o;
	struct iovec one;
	struct dgram data, wrong;
	struct usb4_wire_rel h;
	unsigned char buf[USB4_REL_ANSWER_LEN];
	uint64_t now = 0, next = 1;
	size_t len;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	CHECK_EQ(usb4_rel_peer_open(&a.rel, &ca, ID_A, ID_B, 0), 0);
	a.io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = &a,
		.deliver = fake_deliver, .deliver_ctx = &a };
	b.io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = &b,
		.deliver = fake_deliver, .deliver_ctx = &b };
	a.stream = 2;
	b.stream = 1;
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	one = (struct iovec) { a.out.d[0].buf, a.out.d[0].len };
	memset(&o, 0, sizeof(o));
	CHECK_EQ(usb4_rel_offer_read(&cb, ID_B, &one, 1, &o), 0);
	CHECK_EQ(usb4_rel_offer_read(&cb, ID_A, &one, 1, &o), -FI_EINVAL);
	CHECK_EQ(o.remote_id, ID_A);
	CHECK_EQ(o.peer_isn, hdr_of(&a.out.d[0]).seq);
	o.isn = 4242;
	memset(o.nonce, 0x42, sizeof(o.nonce));
	q_clear(&a.out);
	len = usb4_rel_offer_answer(&cb, ID_B, &o, buf);
	CHECK(len > HDR);
	CHECK_EQ(usb4_rel_input(a.rel, 0, buf, len, &a.io), 0);
	CHECK_EQ(type_at(&a, 0), USB4_REL_DATA);
	CHECK_EQ(hdr_of(&a.out.d[0]).ack, 4242);
	data = dgram_copy(&a.out.d[0]);
	q_clear(&a.out);
	one = (struct iovec) { data.buf, data.len };
	CHECK(usb4_rel_offer_proven(&cb, ID_B, &o, &one, 1));
	/* the same DATA acknowledging another ISN */
	wrong = dgram_copy(&data);
	memcpy(&h, wrong.buf, HDR);
	h.ack = htole32(4243);
	memcpy(wrong.buf, &h, HDR);
	if (!job)
		recrc(wrong.buf, wrong.len);
	one = (struct iovec) { wrong.buf, wrong.len };
	CHECK(!usb4_rel_offer_proven(&cb, ID_B, &o, &one, 1));
	CHECK(!usb4_rel_offer_proven(&cb, ID_A, &o, &one, 1));
	CHECK_EQ(usb4_rel_peer_accept(&b.rel, &cb, ID_B, &o, 0), 0);
	CHECK_EQ(usb4_rel_input(b.rel, 0, data.buf, data.len, &b.io), 0);
	CHECK_EQ(b.expect, 1);
	settle(&a, &b, &next, 40, &now, 10 * US);
	CHECK_EQ(b.expect, 40);
	CHECK(!b.bad);
	free(data.buf);
	free(wrong.buf);
	side_close(&a);
	side_close(&b);
}

static void test_offer_flow(void)
{
	offer_flow(NULL);
	offer_flow(&job_one);
}

/* offer_read refuses what it must: a HELLO of features we refuse (a job
 * key on one side only), under another key, or not a HELLO. */
static void test_offer_read_refuses(void)
{
	struct usb4_rel_cfg plain = base_cfg(), k1 = keyed_cfg(&job_one),
			    k2 = keyed_cfg(&job_two);
	struct usb4_rel_offer o;
	struct side a = { 0 };
	struct iovec one;

	CHECK_EQ(usb4_rel_peer_open(&a.rel, &k1, ID_A, ID_B, 0), 0);
	a.io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = &a,
		.deliver = fake_deliver, .deliver_ctx = &a };
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	one = (struct iovec) { a.out.d[0].buf, a.out.d[0].len };
	CHECK_EQ(usb4_rel_offer_read(&k1, ID_B, &one, 1, &o), 0);
	CHECK_EQ(usb4_rel_offer_read(&k2, ID_B, &one, 1, &o), -FI_EACCES);
	CHECK_EQ(usb4_rel_offer_read(&plain, ID_B, &one, 1, &o), -FI_EACCES);
	side_close(&a);
	memset(&a, 0, sizeof(a));
	CHECK_EQ(usb4_rel_peer_open(&a.rel, &plain, ID_A, ID_B, 0), 0);
	a.io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = &a,
		.deliver = fake_deliver, .deliver_ctx = &a };
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	one = (struct iovec) { a.out.d[0].buf, a.out.d[0].len };
	CHECK_EQ(usb4_rel_offer_read(&k1, ID_B, &one, 1, &o), -FI_EACCES);
	CHECK_EQ(usb4_rel_offer_read(&plain, ID_B, &one, 1, &o), 0);
	side_close(&a);
}

/* libcrypto's Poly1305 (bulk datagrams) and libsodium's give the same
 * tag, for every length and however the datagram is cut in pieces. */
static void test_poly1305_paths_agree(void)
{
	static unsigned char buf[70000];
	static const size_t lens[] = { 0, 1, 15, 16, 17, 100, 4095, 4096,
				       4097, 65000, 70000 };
	unsigned char otk[32], a[16], b[16];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char) (i * 131 + 7);
	for (size_t i = 0; i < sizeof(otk); i++)
		otk[i] = (unsigned char) (i * 29 + 3);
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		size_t len = lens[l], cut = len / 3;
		struct iovec one = { buf, len };
		struct iovec three[3] = { { buf, cut }, { buf + cut, len / 2 - cut },
					  { buf + len / 2, len - len / 2 } };

		usb4_auth_poly1305(otk, &one, 1, false, a);
		usb4_auth_poly1305(otk, &one, 1, true, b);
		CHECK(!memcmp(a, b, sizeof(a)));
		usb4_auth_poly1305(otk, three, 3, true, b);
		CHECK(!memcmp(a, b, sizeof(a)));
	}
}

/* The replay window: each packet number once, in any order within it,
 * never one older than it. */
static void test_auth_replay_window(void)
{
	struct usb4_auth_session s;
	unsigned char n1[USB4_AUTH_NONCE_LEN] = { 1 }, n2[USB4_AUTH_NONCE_LEN] = { 2 };

	usb4_auth_session_init(&s, &job_one, ID_A, ID_B, n1, n2);
	for (uint64_t pn = 1; pn <= 1000; pn += 2) {
		CHECK(!usb4_auth_replayed(&s, pn));
		usb4_auth_accept_pn(&s, pn);
		CHECK(usb4_auth_replayed(&s, pn));
	}
	CHECK(!usb4_auth_replayed(&s, 998));	/* late, inside the window */
	usb4_auth_accept_pn(&s, 998);
	CHECK(usb4_auth_replayed(&s, 998));
	CHECK(usb4_auth_replayed(&s, 999 - USB4_AUTH_REPLAY_BITS));  /* too old */
	CHECK(!usb4_auth_replayed(&s, 1000 - USB4_AUTH_REPLAY_BITS)); /* even */
	usb4_auth_accept_pn(&s, 1000 + 5 * USB4_AUTH_REPLAY_BITS);
	CHECK(usb4_auth_replayed(&s, 999));
	CHECK(!usb4_auth_replayed(&s, 1000 + 5 * USB4_AUTH_REPLAY_BITS - 1));
}

/* ---- keepalive probes, the close handshake, unreachable hints ---------- */

#define KA_IDLE	(10 * MS)

static struct usb4_rel_cfg ka_cfg(void)
{
	struct usb4_rel_cfg cfg = base_cfg();

	cfg.keepalive_ns = KA_IDLE;
	cfg.dead_ns = 60 * MS;
	return cfg;
}

/* A pair whose handshake is done and whose first payload arrived: both
 * idle from `*now` on, nothing outstanding either way. */
static void ka_pair(struct side *a, struct side *b,
		    const struct usb4_rel_cfg *cfg, uint64_t *now)
{
	uint64_t next = 1;

	pair_open(a, b, cfg, cfg, 0);
	handshake(a, b, 0);
	settle(a, b, &next, 4, now, 10 * US);
	CHECK_EQ(b->expect, 4);
}

/* How many of s's datagrams carry flag, and whether all of them are ACKs. */
static size_t flagged(const struct side *s, uint16_t flag, bool *acks_only)
{
	size_t n = 0;

	for (size_t i = 0; i < s->out.n; i++) {
		struct usb4_wire_rel h = hdr_of(&s->out.d[i]);

		if (!(le16toh(h.flags) & flag))
			continue;
		n++;
		*acks_only &= h.type == USB4_REL_ACK && h.len == 0;
	}
	return n;
}

/* B falls silent (its host is gone) while neither side owes the other
 * anything: A, which only waits, probes after the idle time and declares
 * B dead dead_ns after it last heard it, as a side waiting for acks does
 * (before probes, such a side waited forever). */
static void test_keepalive_silent_peer_dies(void)
{
	struct usb4_rel_cfg cfg = ka_cfg();
	struct side a, b;
	uint64_t now = 0, quiet, died = 0, probes = 0;
	bool acks_only = true;

	ka_pair(&a, &b, &cfg, &now);
	quiet = now;
	for (uint64_t t = now; t < now + 1000 * MS && !died; t += MS / 2) {
		if (usb4_rel_deadline(a.rel) <= t)
			usb4_rel_timer(a.rel, t, &a.io);
		probes += flagged(&a, USB4_REL_F_PROBE, &acks_only);
		q_clear(&a.out);	/* B hears nothing, says nothing */
		if (usb4_rel_dead(a.rel))
			died = t;
	}
	CHECK(died);
	CHECK_EQ(usb4_rel_down(a.rel), -FI_EHOSTUNREACH);
	/* dead_ns of silence (one step late at most, and the ack the last
	 * payload was owed may shift it) */
	CHECK(died >= quiet + cfg.dead_ns - MS);
	CHECK(died <= quiet + cfg.dead_ns + 2 * MS);
	CHECK(probes >= USB4_REL_KA_PROBES);
	CHECK(acks_only);
	CHECK_EQ(usb4_rel_stats(a.rel)->ka.probes_sent, probes);
	CHECK_EQ(usb4_rel_stats(a.rel)->ka.probes_answered, 0);
	CHECK_EQ(usb4_rel_deadline(a.rel), UINT64_MAX);
	side_close(&a);
	side_close(&b);
}

/* Both idle for a long time, both answering: probes go both ways, each
 * answered by a plain ACK (never a probe: no loops), nobody dies, and the
 * traffic is a few datagrams per idle period. */
static void test_keepalive_answered(void)
{
	struct usb4_rel_cfg cfg = ka_cfg();
	struct side a, b;
	uint64_t now = 0, sent = 0, probes = 0;
	bool acks_only = true;
	const uint64_t span = 1000 * MS;

	ka_pair(&a, &b, &cfg, &now);
	for (uint64_t t = now; t < now + span; t += MS / 2) {
		if (usb4_rel_deadline(a.rel) <= t)
			usb4_rel_timer(a.rel, t, &a.io);
		if (usb4_rel_deadline(b.rel) <= t)
			usb4_rel_timer(b.rel, t, &b.io);
		for (int round = 0; round < 3; round++) {
			probes += flagged(&a, USB4_REL_F_PROBE, &acks_only) +
				  flagged(&b, USB4_REL_F_PROBE, &acks_only);
			sent += a.out.n + b.out.n;
			xfer(&a, &b, t);
			xfer(&b, &a, t);
		}
	}
	CHECK(!usb4_rel_dead(a.rel) && !usb4_rel_dead(b.rel));
	CHECK(probes >= span / KA_IDLE / 2);
	CHECK(acks_only);
	/* a probe and its answer per idle period (each side's timer may
	 * fire first), never a storm */
	CHECK(sent <= 4 * (span / KA_IDLE + 2));
	CHECK_EQ(usb4_rel_stats(a.rel)->ka.probes_answered +
		 usb4_rel_stats(b.rel)->ka.probes_answered, probes);
	side_close(&a);
	side_close(&b);
}

/* A peer whose HELLO did not offer USB4_WIRE_FEATURE_PROBE (an older
 * provider) is never sent PROBE or FIN, which it would drop: silence from
 * it proves nothing, so it is never judged by it. */
static void test_keepalive_needs_feature(void)
{
	struct usb4_rel_cfg cfg = ka_cfg();
	struct usb4_rel_offer o = { 0 };
	unsigned char buf[HDR + HELLO_LEN];
	struct iovec one = { buf, craft_hello(buf, USB4_WIRE_VERSION,
					      USB4_REL_HELLO, 77,
					      USB4_WIRE_VERSION, 0) };
	struct side b = { 0 };

	CHECK_EQ(usb4_rel_offer_read(&cfg, ID_B, &one, 1, &o), 0);
	CHECK_EQ(o.peer_features, 0);
	o.isn = 4242;
	CHECK_EQ(usb4_rel_peer_accept(&b.rel, &cfg, ID_B, &o, 0), 0);
	b.io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = &b,
		.deliver = fake_deliver, .deliver_ctx = &b };
	for (uint64_t t = 0; t < 1000 * MS; t += MS)
		if (usb4_rel_deadline(b.rel) <= t)
			usb4_rel_timer(b.rel, t, &b.io);
	usb4_rel_hint_unreachable(b.rel, 1000 * MS, 5 * MS, &b.io);
	usb4_rel_timer(b.rel, 2000 * MS, &b.io);
	CHECK(!usb4_rel_fin(b.rel, &b.io));
	CHECK_EQ(b.out.n, 0);
	CHECK(!usb4_rel_dead(b.rel));
	CHECK_EQ(usb4_rel_stats(b.rel)->ka.hints, 0);
	side_close(&b);
}

/* A closes: its FIN is an ACK flagged FIN; B, which holds payloads its
 * receiver has not taken yet, hands them up first and only then is down
 * with -FI_ECONNRESET; B never answers a FIN. */
static void test_fin_closes_after_delivery(void)
{
	struct usb4_rel_cfg cfg = ka_cfg();
	struct side a, b;
	uint64_t now = 0;
	bool acks_only = true;

	ka_pair(&a, &b, &cfg, &now);
	b.not_ready = true;
	for (uint64_t i = 4; i < 8; i++)
		CHECK_EQ(send_idx(&a, 1, i, now), 0);
	xfer(&a, &b, now);
	CHECK_EQ(usb4_rel_undelivered(b.rel), 4);
	CHECK(usb4_rel_fin(a.rel, &a.io));
	CHECK_EQ(flagged(&a, USB4_REL_F_FIN, &acks_only), 1);
	CHECK(acks_only);
	CHECK_EQ(usb4_rel_stats(a.rel)->fins_sent, 1);
	xfer(&a, &b, now);
	CHECK_EQ(usb4_rel_stats(b.rel)->fins_received, 1);
	CHECK_EQ(usb4_rel_down(b.rel), 0);	/* four payloads still held */
	b.not_ready = false;
	now += cfg.ack_delay_ns;
	usb4_rel_timer(b.rel, now, &b.io);
	CHECK_EQ(b.expect, 8);
	CHECK(!b.bad);
	CHECK_EQ(usb4_rel_down(b.rel), -FI_ECONNRESET);
	CHECK_EQ(flagged(&b, USB4_REL_F_FIN | USB4_REL_F_PROBE, &acks_only), 0);
	CHECK_EQ(send_idx(&b, 2, 0, now), -FI_ECONNRESET);
	CHECK(!usb4_rel_fin(b.rel, &b.io));	/* not to a closed peer */
	side_close(&a);
	side_close(&b);
}

/* A FIN under a job key is tagged like every session datagram; one with a
 * made-up tag (a forger's) changes nothing. */
static void test_fin_authenticated(void)
{
	struct usb4_rel_cfg cfg = keyed_cfg(&job_one);
	struct side a, b;
	struct dgram fin;
	uint64_t now = 0;
	bool acks_only = true;

	cfg.keepalive_ns = KA_IDLE;
	ka_pair(&a, &b, &cfg, &now);
	CHECK(usb4_rel_fin(a.rel, &a.io));
	CHECK_EQ(flagged(&a, USB4_REL_F_FIN, &acks_only), 1);
	CHECK_EQ(flags_of(&a.out.d[0]), USB4_REL_F_AUTH | USB4_REL_F_FIN);
	fin = dgram_copy(&a.out.d[0]);
	q_clear(&a.out);
	/* its own trailer made up (the copy has no room for another), still
	 * flagged FIN */
	made_up_tag(fin.buf, fin.len - TRAILER, 0x5a);
	fin.buf[2] = (unsigned char) (USB4_REL_F_AUTH | USB4_REL_F_FIN);
	CHECK_EQ(flags_of(&fin), USB4_REL_F_AUTH | USB4_REL_F_FIN);
	CHECK(usb4_rel_input(b.rel, now, fin.buf, fin.len, &b.io) < 0);
	CHECK_EQ(usb4_rel_down(b.rel), 0);
	CHECK(usb4_rel_fin(a.rel, &a.io));
	xfer(&a, &b, now);
	CHECK_EQ(usb4_rel_down(b.rel), -FI_ECONNRESET);
	free(fin.buf);
	side_close(&a);
	side_close(&b);
}

/* An unreachable hint (an ICMP anyone could forge) against a peer that
 * answers changes nothing; against a silent one it is confirmed within the
 * short confirmation time, long before the peer timeout. */
static void hint_against(bool answers)
{
	struct usb4_rel_cfg cfg = ka_cfg();
	struct side a, b;
	uint64_t now = 0, start, died = 0;
	const uint64_t confirm = 6 * MS;
	bool acks_only = true;

	cfg.keepalive_ns = 1000 * MS;	/* the idle probes stay out of it */
	cfg.dead_ns = 5000 * MS;
	ka_pair(&a, &b, &cfg, &now);
	start = now;
	usb4_rel_hint_unreachable(a.rel, now, confirm, &a.io);
	CHECK_EQ(flagged(&a, USB4_REL_F_PROBE, &acks_only), 1);
	for (uint64_t t = now; t < now + 100 * MS; t += MS / 4) {
		if (usb4_rel_deadline(a.rel) <= t)
			usb4_rel_timer(a.rel, t, &a.io);
		if (answers) {
			xfer(&a, &b, t);
			xfer(&b, &a, t);
		} else {
			q_clear(&a.out);
		}
		if (!died && usb4_rel_dead(a.rel))
			died = t;
	}
	CHECK(acks_only);
	CHECK_EQ(usb4_rel_stats(a.rel)->ka.hints, 1);
	if (answers) {
		CHECK(!usb4_rel_dead(a.rel));
		CHECK_EQ(usb4_rel_stats(a.rel)->ka.hints_refuted, 1);
		CHECK_EQ(usb4_rel_stats(a.rel)->ka.hints_confirmed, 0);
	} else {
		CHECK_EQ(usb4_rel_down(a.rel), -FI_EHOSTUNREACH);
		CHECK(died >= start + confirm && died <= start + confirm + MS);
		CHECK_EQ(usb4_rel_stats(a.rel)->ka.hints_confirmed, 1);
		CHECK(usb4_rel_stats(a.rel)->ka.probes_sent >=
		      USB4_REL_KA_PROBES);
	}
	side_close(&a);
	side_close(&b);
}

static void test_unreachable_hint(void)
{
	hint_against(true);
	hint_against(false);
}

/* PROBE and FIN ride on ACKs only: a DATA that carries one is malformed. */
static void test_probe_flag_on_data_dropped(void)
{
	struct usb4_rel_cfg cfg = ka_cfg();
	struct side a, b;
	struct usb4_wire_rel h;
	uint64_t now = 0;

	ka_pair(&a, &b, &cfg, &now);
	CHECK_EQ(send_idx(&a, 1, 4, now), 0);
	CHECK_EQ(type_at(&a, 0), USB4_REL_DATA);
	memcpy(&h, a.out.d[0].buf, HDR);
	h.flags = htole16(USB4_REL_F_FIN);
	memcpy(a.out.d[0].buf, &h, HDR);
	recrc(a.out.d[0].buf, a.out.d[0].len);
	xfer(&a, &b, now);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_BAD_HEADER], 1);
	CHECK_EQ(usb4_rel_down(b.rel), 0);
	CHECK_EQ(b.expect, 4);
	side_close(&a);
	side_close(&b);
}

/* ---- the link's handshake extension (rails) ----------------------------- */

static struct usb4_rel_hello_ext ext_of(size_t len, unsigned char seed)
{
	struct usb4_rel_hello_ext e = { .len = (uint16_t) len };

	for (size_t i = 0; i < len; i++)
		e.data[i] = (unsigned char) (seed + 7 * i);
	return e;
}

static bool ext_eq(const struct usb4_rel_hello_ext *a,
		   const struct usb4_rel_hello_ext *b)
{
	return a->len == b->len && !memcmp(a->data, b->data, a->len);
}

/* Each side's extension rides on its HELLO or HELLO_ACK (the feature bit
 * says so) and the other side keeps it once the handshake is proven; a
 * side without one sends the plain hello and is known to have none. */
static void test_hello_ext_exchanged(void)
{
	struct usb4_rel_hello_ext xa = ext_of(24, 1), xb = ext_of(44, 2);
	struct usb4_rel_cfg ca = base_cfg(), cb = base_cfg(), cc = base_cfg();
	struct usb4_rel_head head;
	struct side a, b;

	ca.hello_ext = &xa;
	cb.hello_ext = &xb;
	pair_open(&a, &b, &ca, &cb, 0);
	CHECK_EQ(usb4_rel_peer_hello_ext(b.rel)->len, 0);
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	CHECK_EQ(a.out.d[0].len, HDR + HELLO_LEN + 24);
	CHECK_EQ(peek_one(a.out.d[0].buf, a.out.d[0].len, &head), 0);
	CHECK(head.features & USB4_WIRE_FEATURE_RAILS);
	CHECK(head.crc_ok);
	xfer(&a, &b, 0);
	CHECK_EQ(b.out.d[0].len, HDR + HELLO_LEN + 44);
	xfer(&b, &a, 0);
	CHECK(ext_eq(usb4_rel_peer_hello_ext(a.rel), &xb));
	CHECK_EQ(usb4_rel_peer_hello_ext(b.rel)->len, 0);  /* not proven yet */
	xfer(&a, &b, 0);
	CHECK(ext_eq(usb4_rel_peer_hello_ext(b.rel), &xa));
	CHECK_EQ(b.expect, 1);
	side_close(&a);
	side_close(&b);

	/* B without one: A still sends its own, and learns B has none. */
	pair_open(&a, &b, &ca, &cc, 0);
	handshake(&a, &b, 0);
	xfer(&a, &b, 0);
	CHECK_EQ(usb4_rel_peer_hello_ext(a.rel)->len, 0);
	CHECK(ext_eq(usb4_rel_peer_hello_ext(b.rel), &xa));
	CHECK_EQ(b.expect, 1);
	side_close(&a);
	side_close(&b);
}

/* A crafted HELLO carrying extra bytes after its hello, with or without
 * the feature bit: kept only with it; longer than the most a handshake may
 * carry: not a HELLO at all (offer_read and a peer both drop it). */
static void test_hello_ext_bounds(void)
{
	struct usb4_rel_cfg cb = base_cfg();
	unsigned char buf[HDR + HELLO_LEN + USB4_REL_HELLO_EXT_MAX + 8];
	unsigned char payload[HELLO_LEN + USB4_REL_HELLO_EXT_MAX + 8];
	struct usb4_wire_hello hello = {
		.proto = htole16(USB4_WIRE_VERSION),
		.features = htole32(USB4_WIRE_FEATURE_RAILS),
	};
	struct usb4_rel_offer o;
	struct iovec one = { .iov_base = buf };
	struct side a, b;

	memset(payload, 0x5c, sizeof(payload));
	memcpy(payload, &hello, sizeof(hello));
	one.iov_len = craft(buf, USB4_REL_HELLO, ID_A, ID_B, 77, 0, 0, payload,
			    HELLO_LEN + 10);
	CHECK_EQ(usb4_rel_offer_read(&cb, ID_B, &one, 1, &o), 0);
	CHECK_EQ(o.peer_ext.len, 10);
	CHECK_EQ(o.peer_ext.data[9], 0x5c);
	hello.features = 0;
	memcpy(payload, &hello, sizeof(hello));
	one.iov_len = craft(buf, USB4_REL_HELLO, ID_A, ID_B, 77, 0, 0, payload,
			    HELLO_LEN + 10);
	CHECK_EQ(usb4_rel_offer_read(&cb, ID_B, &one, 1, &o), 0);
	CHECK_EQ(o.peer_ext.len, 0);
	one.iov_len = craft(buf, USB4_REL_HELLO, ID_A, ID_B, 77, 0, 0, payload,
			    HELLO_LEN + USB4_REL_HELLO_EXT_MAX);
	CHECK_EQ(usb4_rel_offer_read(&cb, ID_B, &one, 1, &o), 0);
	one.iov_len = craft(buf, USB4_REL_HELLO, ID_A, ID_B, 77, 0, 0, payload,
			    HELLO_LEN + USB4_REL_HELLO_EXT_MAX + 1);
	CHECK_EQ(usb4_rel_offer_read(&cb, ID_B, &one, 1, &o), -FI_EINVAL);
	pair_open(&a, &b, &cb, &cb, 0);
	CHECK(usb4_rel_input(b.rel, 0, buf, one.iov_len, &b.io) < 0);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_BAD_HEADER], 1);
	CHECK_EQ(b.out.n, 0);	/* not answered */
	side_close(&a);
	side_close(&b);
}

/* A lost path: everything in flight goes again at once, not at its
 * timeout; an ack can be sent unowed (a path's sign of life), but not
 * before the handshake. */
static void test_resend_in_flight_and_ack_send(void)
{
	struct usb4_rel_cfg cfg = base_cfg();
	struct side a, b;
	uint64_t now = 0, next = 1;

	pair_open(&a, &b, &cfg, &cfg, 0);
	usb4_rel_ack_send(a.rel, &a.io);
	CHECK_EQ(a.out.n, 0);
	handshake(&a, &b, 0);
	q_clear(&a.out);		/* payload 0: lost */
	CHECK_EQ(send_idx(&a, 1, 1, 0), 0);
	CHECK_EQ(send_idx(&a, 1, 2, 0), 0);
	q_clear(&a.out);		/* 1 and 2: lost */
	usb4_rel_resend_in_flight(a.rel, 10, &a.io);
	CHECK_EQ(a.out.n, 3);
	CHECK_EQ(type_at(&a, 0), USB4_REL_DATA);
	CHECK_EQ(usb4_rel_stats(a.rel)->retransmitted, 3);
	xfer(&a, &b, 20);
	CHECK_EQ(b.expect, 3);
	CHECK(!b.bad);
	next = 3;
	settle(&a, &b, &next, 3, &now, 10 * US);
	q_clear(&b.out);
	usb4_rel_ack_send(b.rel, &b.io);
	CHECK_EQ(b.out.n, 1);
	CHECK_EQ(type_at(&b, 0), USB4_REL_ACK);
	side_close(&a);
	side_close(&b);
}

/* Sacks past a hole make it lost at once when it is older than the
 * reordering allowance: 5/4 of the round trip, within rto_initial_ns / 4
 * or cfg's reorder_max_ns, and at least cfg's reorder_min_ns (several
 * paths reorder by their queues).  With `sampled`, a round trip of 10 us
 * is measured first. */
static void reorder_hole(uint64_t max_ns, uint64_t min_ns, bool sampled,
			 bool resent_at_once)
{
	struct usb4_rel_cfg cfg = base_cfg();
	struct side a, b;
	uint64_t now = 0, next = 1;
	size_t data = 0;

	cfg.reorder_max_ns = max_ns;
	cfg.reorder_min_ns = min_ns;
	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	if (sampled) {
		settle(&a, &b, &next, 4, &now, 10 * US);
		CHECK_EQ(b.expect, 4);
	}
	q_clear(&a.out);
	CHECK_EQ(send_idx(&a, 1, next++, now), 0);
	q_clear(&a.out);			/* this one: late, or lost */
	for (int i = 0; i < 4; i++)
		CHECK_EQ(send_idx(&a, 1, next++, now), 0);
	xfer(&a, &b, now + 500 * US);		/* the rest arrive, before the
						 * RTO */
	CHECK(b.out.n > 0);
	xfer(&b, &a, now + 500 * US);		/* sacks past the hole */
	for (size_t i = 0; i < a.out.n; i++)
		data += type_at(&a, i) == USB4_REL_DATA;
	CHECK_MSG((data > 0) == resent_at_once,
		  "reorder max %llu min %llu%s: %zu DATA sent again at once",
		  (unsigned long long) max_ns, (unsigned long long) min_ns,
		  sampled ? " sampled" : "", data);
	side_close(&a);
	side_close(&b);
}

static void test_reorder_allowance(void)
{
	reorder_hole(0, 0, false, true);
	reorder_hole(100 * MS, 0, false, false);
	reorder_hole(100 * MS, 0, true, true);	/* follows the round trip */
	reorder_hole(0, 100 * MS, true, false);	/* however short it is */
}

int main(void)
{
	printf("crc32c path: %s\n", usb4_crc32c_path());
	printf("poly1305 path for bulk datagrams: %s\n", usb4_auth_bulk_path());
	test_crc();
	test_crc_large();
	test_open_args();
	test_handshake_normal();
	test_handshake_simultaneous();
	test_handshake_hello_lost();
	test_handshake_hello_ack_lost();
	test_wrong_ids();
	test_corruption();
	test_input_read();
	test_bad_headers();
	test_hello_version_features();
	test_reject_after_handshake_ignored();
	test_foreign_hello_after_handshake_ignored();
	test_reject_during_handshake();
	test_peek_versions();
	test_peek_garbage();
	test_reject_datagram();
	test_delayed_ack();
	test_sack_fast_retransmit();
	test_out_of_window();
	test_window_full();
	test_backoff_and_death();
	test_hello_backoff();
	test_alive();
	test_xmit_eagain();
	test_receiver_not_ready();
	test_receiver_not_ready_window_1();
	test_not_ready_offered_on_input();
	test_stale_window_ignored();
	test_pool_spent();
	test_rings_released_after_quiet();
	test_faulty_links();
	test_wraparound();
	test_not_ready_faulty();
	test_pool_faulty();
	test_send_by_reference();
	test_copy_refs_needs_no_pool();
	test_input_in_pieces();
	test_hello_ext_exchanged();
	test_hello_ext_bounds();
	test_resend_in_flight_and_ack_send();
	test_reorder_allowance();
	CHECK_EQ(usb4_auth_job_init(&job_one, "key one", 7), 0);
	CHECK_EQ(usb4_auth_job_init(&job_two, "key two", 7), 0);
	test_auth_transfer();
	test_auth_hello_refused();
	test_auth_forgery_and_replay();
	test_offer_flow();
	test_offer_read_refuses();
	test_auth_replay_window();
	test_poly1305_paths_agree();
	test_keepalive_silent_peer_dies();
	test_keepalive_answered();
	test_keepalive_needs_feature();
	test_fin_closes_after_delivery();
	test_fin_authenticated();
	test_unreachable_hint();
	test_probe_flag_on_data_dropped();
	return usb4_test_done("test_rel");
}
