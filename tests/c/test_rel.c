/*
 * Unit tests of the reliability layer (prov_usb4/src/rel/usb4_rel.c): two rel
 * peers A and B joined by a fake link whose datagrams the test holds, drops,
 * duplicates, delays, corrupts and refuses, under a fake clock.  Every run
 * checks that each payload arrives exactly once, in order, bit-exact.
 */
#include <endian.h>
#include <stdint.h>
#include <string.h>

#include "usb4_rel.h"
#include "../../prov_usb4/src/wire.h"
#include "usb4_test.h"

#define HDR	sizeof(struct usb4_wire_rel)
#define PMAX	512
#define US	1000ull
#define MS	1000000ull
#define ID_A	0xa1a1a1a1a1a1a1a1ull
#define ID_B	0xb2b2b2b2b2b2b2b2ull

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

/* Payload number idx of a stream: random length 0..PMAX, content from both. */
static size_t gen_payload(uint64_t stream, uint64_t idx, unsigned char *p)
{
	uint64_t h = mix(stream * 0x9e3779b97f4a7c15ull + idx);
	size_t len = h % (PMAX + 1);

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

static void fake_deliver(void *ctx, const struct iovec *pieces, int count)
{
	struct side *s = ctx;
	unsigned char want[PMAX], payload[PMAX + 1];
	size_t want_len = gen_payload(s->stream, s->expect++, want), len = 0;

	for (int i = 0; i < count; i++) {
		if (len + pieces[i].iov_len > sizeof(payload)) {
			s->bad = true;
			return;
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
	a->io = (struct usb4_rel_io) { fake_xmit, a, fake_deliver, a };
	b->io = (struct usb4_rel_io) { fake_xmit, b, fake_deliver, b };
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

/* A sends payload 0 and the handshake completes; A's DATA stays queued in
 * a->out for the caller. */
static void handshake(struct side *a, struct side *b, uint64_t now)
{
	CHECK_EQ(send_idx(a, 1, 0, now), 0);
	CHECK_EQ(type_at(a, 0), USB4_REL_HELLO);
	xfer(a, b, now);
	CHECK_EQ(type_at(b, 0), USB4_REL_HELLO_ACK);
	xfer(b, a, now);
	CHECK_EQ(type_at(a, 0), USB4_REL_DATA);
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

static void test_handshake_normal(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();

	cfg.isn = 1000;
	pair_open(&a, &b, &cfg, &cfg, 0);
	handshake(&a, &b, 0);
	CHECK_EQ(hdr_of(&a.out.d[0]).seq, 1000);
	xfer(&a, &b, 0);
	CHECK_EQ(b.expect, 1);
	CHECK(!b.bad);
	CHECK_EQ(usb4_rel_stats(b.rel)->delivered, 1);
	CHECK_EQ(usb4_rel_stats(a.rel)->sent, 1);
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

/* B's HELLO_ACK is lost; A asks again and B answers again, idempotently,
 * even after B has sent data of its own (dropped by A until it knows B). */
static void test_handshake_hello_ack_lost(void)
{
	struct side a, b;
	struct usb4_rel_cfg cfg = base_cfg();
	uint64_t t;

	pair_open(&a, &b, &cfg, &cfg, 0);
	CHECK_EQ(send_idx(&a, 1, 0, 0), 0);
	xfer(&a, &b, 0);
	q_clear(&b.out);		/* HELLO_ACK lost */
	CHECK_EQ(send_idx(&b, 2, 0, 0), 0);	/* B is done: sends DATA */
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
	old_a.io = (struct usb4_rel_io) { fake_xmit, &old_a, fake_deliver,
					  &old_a };
	new_b.io = (struct usb4_rel_io) { fake_xmit, &new_b, fake_deliver,
					  &new_b };

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
	len = craft(buf, USB4_REL_HELLO, ID_A, ID_B, 0, 0, 0, pl, 0);
	buf[0] = USB4_WIRE_VERSION + 1;
	recrc(buf, len);
	CHECK(usb4_rel_datagram_ids(buf, len, &src, &dst) < 0);
	CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
	drops++;
	for (int type = 0; type <= USB4_REL_TYPE_MAX; type += USB4_REL_TYPE_MAX) {
		len = craft(buf, (uint8_t) type, ID_A, ID_B, 0, 0, 0, pl, 0);
		CHECK(usb4_rel_datagram_ids(buf, len, &src, &dst) < 0);
		CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
		drops++;
	}
	len = craft(buf, USB4_REL_HELLO, ID_A, ID_B, 0, 0, 0, pl, 0);
	buf[2] = 1;			/* reserved flags */
	recrc(buf, len);
	CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
	drops++;
	len = craft(buf, USB4_REL_DATA, ID_A, ID_B, 0, 0, 0, pl, 10);
	memcpy(buf + 44, &bad_len, 4);	/* len field disagrees */
	recrc(buf, len);
	CHECK(usb4_rel_datagram_ids(buf, len, &src, &dst) < 0);
	CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
	drops++;
	len = craft(buf, USB4_REL_HELLO, ID_A, ID_B, 0, 0, 0, pl, 4);
	CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
	drops++;			/* control types carry no payload */
	len = craft(buf, USB4_REL_DATA, ID_A, ID_B, 0, 0, 0, pl, PMAX + 1);
	CHECK_EQ(usb4_rel_input(b.rel, 0, buf, len, &b.io), -FI_EINVAL);
	drops++;			/* beyond payload_max */
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_BAD_HEADER],
		 drops);
	CHECK_EQ(b.out.n, 0);
	CHECK_EQ(b.expect, 0);
	CHECK(!usb4_rel_dead(b.rel));
	side_close(&a);
	side_close(&b);
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
	len = craft(buf, USB4_REL_DATA, ID_A, ID_B, 5 + cfg.window, 0, 0, pl, 8);
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

/* ---- long runs through a faulty link ------------------------------------- */

struct faults {
	double drop, dup, corrupt, refuse;
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

static void pump_sends(struct side *s, uint64_t stream, uint64_t *next,
		       uint64_t n, uint64_t now)
{
	while (*next < n && usb4_rel_can_send(s->rel)) {
		int ret = send_idx(s, stream, *next, now);
		CHECK_EQ(ret, 0);
		if (ret)
			return;
		(*next)++;
	}
	if (*next < n)
		CHECK_EQ(send_idx(s, stream, *next, now), -FI_EAGAIN);
}

/* n payloads each way through the faults; returns steps taken. */
static uint64_t run(const char *name, const struct usb4_rel_cfg *ca,
		    const struct usb4_rel_cfg *cb, const struct faults *f,
		    uint64_t n)
{
	struct side a, b;
	struct wire ab = { 0 }, ba = { 0 };
	uint64_t step = 0, now = 0, sa = 0, sb = 0, limit = 400 * n + 100000;
	uint32_t max_flight = 0;

	pair_open(&a, &b, ca, cb, 0);
	a.refuse_p = b.refuse_p = f->refuse;
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
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_BAD_HEADER],
		 ab.corrupted);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_OUT_OF_WINDOW], 0);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_WRONG_SRC], 0);
	printf("  %-12s %7llu payloads each way, %7llu steps, %6llu rtx A, "
	       "%6llu dups at B, max flight %u\n", name,
	       (unsigned long long) n, (unsigned long long) step,
	       (unsigned long long) usb4_rel_stats(a.rel)->retransmitted,
	       (unsigned long long)
	       usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_DUPLICATE],
	       max_flight);
	q_free(&ab.q);
	q_free(&ba.q);
	side_close(&a);
	side_close(&b);
	return step;
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

/* Raw delivery check: B takes whatever payload arrives (not a stream). */
static unsigned char ref_got[PMAX];
static size_t ref_got_len;

static void keep_deliver(void *ctx, const struct iovec *pieces, int count)
{
	(void) ctx;
	ref_got_len = 0;
	for (int i = 0; i < count; i++) {
		memcpy(ref_got + ref_got_len, pieces[i].iov_base, pieces[i].iov_len);
		ref_got_len += pieces[i].iov_len;
	}
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
	xfer(&a, &b, 2 * MS + cfg.rto_initial_ns);
	memset(want + 3, 'p', sizeof(buf));
	CHECK_EQ(ref_got_len, sizeof(want));
	CHECK(!memcmp(ref_got, want, sizeof(want)));
	CHECK_EQ(usb4_rel_send_ref(a.rel, 3 * MS, NULL, 0, 1, 7, &a.io),
		 -FI_EINVAL);			/* more refs than buffers */
	side_close(&a);
	side_close(&b);
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

int main(void)
{
	test_crc();
	test_crc_large();
	test_open_args();
	test_handshake_normal();
	test_handshake_simultaneous();
	test_handshake_hello_lost();
	test_handshake_hello_ack_lost();
	test_wrong_ids();
	test_corruption();
	test_bad_headers();
	test_delayed_ack();
	test_sack_fast_retransmit();
	test_out_of_window();
	test_window_full();
	test_backoff_and_death();
	test_hello_backoff();
	test_alive();
	test_xmit_eagain();
	test_faulty_links();
	test_wraparound();
	test_send_by_reference();
	test_input_in_pieces();
	return usb4_test_done("test_rel");
}
