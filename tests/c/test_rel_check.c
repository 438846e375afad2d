/*
 * Unit tests of the datagram check (prov_usb4/src/rel/usb4_rel_check.c and
 * its hooks in usb4_rel.c): two rel peers A and B joined by a fake link
 * that holds every datagram, so the test reads, rewrites and corrupts them.
 * The XXH3 cases run with FI_USB4_PORTABLE=1 (the test runs itself again
 * so, when it was not): senders use XXH3 only without CRC instructions.
 * With them (the first pass, where the CPU has them), CRC32C stays.
 *   - Two peers of this version agree on XXH3: every DATA and ACK past the
 *     handshake carries USB4_REL_F_XXH3 and the low 32 bits of XXH3 of the
 *     datagram with its check field 0 (computed here with libxxhash in one
 *     call over the contiguous bytes), the handshake keeps CRC32C.
 *   - A corrupted bit anywhere in such a datagram gets it dropped and
 *     counted, nothing delivered; the intact one is then taken.
 *   - A peer that did not offer USB4_WIRE_FEATURE_XXH3 (an older one: its
 *     HELLO's bit cleared in flight, CRC fixed) gets CRC32C, no flag.
 *   - usb4_rel_check's own XXH3 (compiled inline, at -O3) gives libxxhash's
 *     one-call value for datagrams of up to 64 KiB in pieces split at odd
 *     places, and CRC32C the one-call usb4_crc32c.
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "usb4_rel.h"
#include "usb4_rel_check.h"
#include "../../prov_usb4/src/wire.h"
#include "usb4_test.h"

#define HDR	sizeof(struct usb4_wire_rel)
#define MS	1000000ull
#define ID_A	0xa1a1a1a1a1a1a1a1ull
#define ID_B	0xb2b2b2b2b2b2b2b2ull
#define PAYLOAD_MAX	8192u
#define BIG	(PAYLOAD_MAX + 256)
#define QUEUE_MAX	64
#define CRC_OFF	4	/* offsetof(struct usb4_wire_rel, crc) */

_Static_assert(CRC_OFF == offsetof(struct usb4_wire_rel, crc), "crc at 4");

/* ---- fake link ---------------------------------------------------------- */

struct dgram {
	unsigned char buf[BIG];
	size_t len;
};

struct side {
	struct usb4_rel_peer *rel;
	struct usb4_rel_io io;
	struct side *other;
	struct dgram out[QUEUE_MAX];	/* sent, not yet carried */
	size_t n_out;
	bool old_peer;		/* strip FEATURE_XXH3 from our handshakes */
	size_t n_got;		/* deliveries */
	size_t got_len;		/* and the last one's bytes */
	unsigned char got[PAYLOAD_MAX];
};

static int fake_xmit(void *ctx, const struct iovec *iov, int count)
{
	struct side *s = ctx;
	struct dgram *d;
	size_t len = 0;

	for (int i = 0; i < count; i++)
		len += iov[i].iov_len;
	if (len > BIG || s->n_out == QUEUE_MAX)
		return -FI_EAGAIN;
	d = &s->out[s->n_out++];
	d->len = 0;
	for (int i = 0; i < count; i++) {
		memcpy(d->buf + d->len, iov[i].iov_base, iov[i].iov_len);
		d->len += iov[i].iov_len;
	}
	return 0;
}

static int fake_deliver(void *ctx, const struct iovec *payload, int count)
{
	struct side *s = ctx;

	s->got_len = 0;
	for (int i = 0; i < count; i++) {
		memcpy(s->got + s->got_len, payload[i].iov_base,
		       payload[i].iov_len);
		s->got_len += payload[i].iov_len;
	}
	s->n_got++;
	return 0;
}

static struct usb4_wire_rel hdr_of(const struct dgram *d)
{
	struct usb4_wire_rel h;

	memcpy(&h, d->buf, HDR);
	return h;
}

static uint32_t crc32c_of(const struct dgram *d)
{
	unsigned char copy[BIG];

	memcpy(copy, d->buf, d->len);
	memset(copy + CRC_OFF, 0, 4);
	return usb4_crc32c(0, copy, d->len);
}

/* What the check must be under XXH3: the low half of XXH3_64bits of the
 * whole datagram, field 0, in one call. */
static uint32_t xxh3_of(const struct dgram *d)
{
	unsigned char copy[BIG];

	memcpy(copy, d->buf, d->len);
	memset(copy + CRC_OFF, 0, 4);
	return (uint32_t) XXH3_64bits(copy, d->len);
}

/* An older peer's HELLO/HELLO_ACK: FEATURE_XXH3 cleared, CRC32C redone. */
static void strip_xxh3(struct dgram *d)
{
	struct usb4_wire_rel h = hdr_of(d);
	struct usb4_wire_hello hello;
	uint32_t crc;

	if (h.type != USB4_REL_HELLO && h.type != USB4_REL_HELLO_ACK)
		return;
	memcpy(&hello, d->buf + HDR, sizeof(hello));
	hello.features = htole32(le32toh(hello.features) &
				 ~USB4_WIRE_FEATURE_XXH3);
	memcpy(d->buf + HDR, &hello, sizeof(hello));
	crc = htole32(crc32c_of(d));
	memcpy(d->buf + CRC_OFF, &crc, 4);
}

/* Carries what from sent to its peer. */
static void carry(struct side *from, uint64_t now)
{
	size_t n = from->n_out;

	from->n_out = 0;
	for (size_t i = 0; i < n; i++) {
		if (from->old_peer)
			strip_xxh3(&from->out[i]);
		usb4_rel_input(from->other->rel, now, from->out[i].buf,
			       from->out[i].len, &from->other->io);
	}
}

static void settle(struct side *a, struct side *b, uint64_t now)
{
	for (int round = 0; round < 16 && (a->n_out || b->n_out); round++) {
		carry(a, now);
		carry(b, now);
	}
}

static struct usb4_rel_cfg cfg_of(uint32_t isn)
{
	return (struct usb4_rel_cfg) {
		.window = 16, .payload_max = PAYLOAD_MAX,
		.datagram_max = PAYLOAD_MAX + HDR,
		.rto_initial_ns = 10 * MS, .rto_max_ns = 100 * MS,
		.ack_delay_ns = 0, .dead_ns = 5000 * MS, .isn = isn,
	};
}

static void pair_open(struct side *a, struct side *b)
{
	struct usb4_rel_cfg ca = cfg_of(1000), cb = cfg_of(5000);

	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	a->io = (struct usb4_rel_io) { .xmit = fake_xmit, .xmit_ctx = a,
				       .deliver = fake_deliver,
				       .deliver_ctx = a };
	b->io = (struct usb4_rel_io) { .xmit = fake_xmit, .xmit_ctx = b,
				       .deliver = fake_deliver,
				       .deliver_ctx = b };
	CHECK_EQ(usb4_rel_peer_open(&a->rel, &ca, ID_A, ID_B, 0), 0);
	CHECK_EQ(usb4_rel_peer_open(&b->rel, &cb, ID_B, ID_A, 0), 0);
	a->other = b;
	b->other = a;
}

static void pair_close(struct side *a, struct side *b)
{
	usb4_rel_peer_close(a->rel);
	usb4_rel_peer_close(b->rel);
}

static void fill(unsigned char *p, size_t len, unsigned salt)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char) (i * 131u + salt);
}

static int send_len(struct side *s, size_t len, unsigned salt)
{
	static unsigned char buf[PAYLOAD_MAX];
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	fill(buf, len, salt);
	return usb4_rel_send(s->rel, 0, &iov, 1, &s->io);
}

/* The handshake, A first; what each sent is checked on the way. */
static void handshake(struct side *a, struct side *b)
{
	CHECK_EQ(send_len(a, 10, 1), 0);	/* queued: starts the HELLO */
	CHECK_EQ(a->n_out, 1);
	CHECK_EQ(hdr_of(&a->out[0]).type, USB4_REL_HELLO);
	CHECK_EQ(le16toh(hdr_of(&a->out[0]).flags), 0);
	CHECK_EQ(le32toh(hdr_of(&a->out[0]).crc), crc32c_of(&a->out[0]));
	carry(a, 0);
	CHECK_EQ(b->n_out, 1);
	CHECK_EQ(hdr_of(&b->out[0]).type, USB4_REL_HELLO_ACK);
	CHECK_EQ(le16toh(hdr_of(&b->out[0]).flags), 0);
	CHECK_EQ(le32toh(hdr_of(&b->out[0]).crc), crc32c_of(&b->out[0]));
	carry(b, 0);
}

/* Every datagram s holds is checked as expected: XXH3 and flagged when
 * xxh3, else CRC32C and unflagged. */
static void check_out(const struct side *s, bool xxh3, const char *what)
{
	for (size_t i = 0; i < s->n_out; i++) {
		const struct dgram *d = &s->out[i];
		struct usb4_wire_rel h = hdr_of(d);
		uint16_t flags = le16toh(h.flags);

		CHECK_MSG(h.type == USB4_REL_DATA || h.type == USB4_REL_ACK,
			  "%s: type %u", what, h.type);
		CHECK_EQ_MSG(!!(flags & USB4_REL_F_XXH3), xxh3,
			     "%s: datagram %zu of %zu B", what, i, d->len);
		CHECK_EQ_MSG(le32toh(h.crc), xxh3 ? xxh3_of(d) : crc32c_of(d),
			     "%s: datagram %zu of %zu B", what, i, d->len);
	}
}

/* Payload sizes around the check's one-call/streamed boundary (512 B with
 * the header) and past it. */
static const size_t sizes[] = { 0, 1, 100, 463, 464, 465, 1000, 4096,
				PAYLOAD_MAX };

static void transfer_checked(struct side *a, struct side *b, bool xxh3,
			     const char *what)
{
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t got = b->n_got;

		CHECK_EQ(send_len(a, sizes[i], (unsigned) i), 0);
		CHECK_EQ(a->n_out, 1);
		check_out(a, xxh3, what);
		carry(a, 0);
		CHECK_EQ_MSG(b->n_got, got + 1, "%s: %zu B", what, sizes[i]);
		check_out(b, xxh3, what);	/* B's ack */
		settle(a, b, 0);
	}
}

static void no_drops(const struct side *s, const char *what)
{
	for (int d = 0; d < USB4_REL_DROP_MAX; d++)
		CHECK_EQ_MSG(usb4_rel_stats(s->rel)->dropped[d], 0,
			     "%s: drop reason %d", what, d);
}

/* Two peers of this version: XXH3 past the handshake, both ways. */
static void test_xxh3_agreed(void)
{
	static struct side a, b;

	pair_open(&a, &b);
	handshake(&a, &b);
	check_out(&a, true, "A's first data");
	settle(&a, &b, 0);
	CHECK_EQ(b.n_got, 1);
	transfer_checked(&a, &b, true, "A to B");
	transfer_checked(&b, &a, true, "B to A");
	no_drops(&a, "A");
	no_drops(&b, "B");
	pair_close(&a, &b);
}

/* B without the feature (an older peer): CRC32C both ways, nothing
 * flagged, all delivered. */
static void test_old_peer_crc32c(void)
{
	static struct side a, b;

	pair_open(&a, &b);
	a.old_peer = b.old_peer = true;
	handshake(&a, &b);
	check_out(&a, false, "A's first data");
	settle(&a, &b, 0);
	CHECK_EQ(b.n_got, 1);
	transfer_checked(&a, &b, false, "A to old B");
	transfer_checked(&b, &a, false, "old B to A");
	no_drops(&a, "A");
	no_drops(&b, "B");
	pair_close(&a, &b);
}

/* Each of the bits of d, flipped alone, gets the datagram dropped as
 * BAD_HEADER and counted, nothing delivered; step: every step-th byte. */
static void corrupt_each_bit(struct side *b, const struct dgram *d,
			     size_t step)
{
	static struct dgram bad;
	const struct usb4_rel_stats *st = usb4_rel_stats(b->rel);
	size_t got = b->n_got;

	for (size_t i = 0; i < d->len; i += step) {
		for (unsigned bit = 0; bit < 8; bit++) {
			uint64_t before = st->dropped[USB4_REL_DROP_BAD_HEADER];

			bad = *d;
			bad.buf[i] ^= (unsigned char) (1u << bit);
			CHECK(usb4_rel_input(b->rel, 0, bad.buf, bad.len,
					     &b->io) < 0);
			CHECK_EQ_MSG(st->dropped[USB4_REL_DROP_BAD_HEADER],
				     before + 1, "byte %zu bit %u of %zu B", i,
				     bit, d->len);
		}
	}
	CHECK_EQ(b->n_got, got);
}

/* Corruption anywhere in an XXH3 datagram, header or payload: dropped and
 * counted; the intact datagram is then delivered, bit-exact. */
static void test_xxh3_corruption_dropped(void)
{
	static struct side a, b;
	static struct dgram d;
	static const size_t lens[] = { 300, PAYLOAD_MAX };
	unsigned char want[PAYLOAD_MAX];

	pair_open(&a, &b);
	handshake(&a, &b);
	settle(&a, &b, 0);
	for (size_t k = 0; k < 2; k++) {
		size_t got = b.n_got;

		CHECK_EQ(send_len(&a, lens[k], 7), 0);
		CHECK_EQ(a.n_out, 1);
		d = a.out[0];
		a.n_out = 0;
		CHECK(le16toh(hdr_of(&d).flags) & USB4_REL_F_XXH3);
		corrupt_each_bit(&b, &d, k ? 61 : 1);
		CHECK_EQ(usb4_rel_input(b.rel, 0, d.buf, d.len, &b.io), 0);
		CHECK_EQ(b.n_got, got + 1);
		fill(want, lens[k], 7);
		CHECK(b.got_len == lens[k] && !memcmp(b.got, want, lens[k]));
		settle(&a, &b, 0);
	}
	pair_close(&a, &b);
}

/* A handshake datagram flagged XXH3 is malformed (only DATA and ACK may
 * be: a HELLO is read before features are known), even with a right
 * XXH3 check. */
static void test_hello_never_xxh3(void)
{
	static struct side a, b;
	struct dgram *d;
	uint16_t flags = htole16(USB4_REL_F_XXH3);
	uint32_t check;

	pair_open(&a, &b);
	CHECK_EQ(send_len(&a, 10, 1), 0);
	CHECK_EQ(a.n_out, 1);
	d = &a.out[0];
	memcpy(d->buf + 2, &flags, 2);
	check = htole32(xxh3_of(d));
	memcpy(d->buf + CRC_OFF, &check, 4);
	CHECK(usb4_rel_input(b.rel, 0, d->buf, d->len, &b.io) < 0);
	CHECK_EQ(usb4_rel_stats(b.rel)->dropped[USB4_REL_DROP_BAD_HEADER], 1);
	CHECK_EQ(b.n_out, 0);
	pair_close(&a, &b);
}

/* With the CPU's CRC instructions the sender keeps CRC32C (cheaper than
 * XXH3 there), though both sides offer XXH3. */
static void test_fast_crc_keeps_crc32c(void)
{
	static struct side a, b;

	pair_open(&a, &b);
	handshake(&a, &b);
	check_out(&a, false, "A's first data, CRC instructions");
	settle(&a, &b, 0);
	CHECK_EQ(b.n_got, 1);
	transfer_checked(&a, &b, false, "A to B, CRC instructions");
	no_drops(&b, "B");
	pair_close(&a, &b);
}

/* Payload sizes around XXH3's thresholds (240 B, its 256 B stream buffer,
 * 1 KiB blocks) and up to a 64 KiB datagram, split into up to three
 * pieces at odd offsets; the check must not depend on the split. */
static void test_check_pieces_match_one_call(void)
{
	static const size_t sizes[] = { 0, 1, 7, 200, 208, 209, 463, 1000,
					1024, 4095, 8191, 65535 - 48, 65536 };
	static unsigned char data[HDR + 65536];
	struct usb4_wire_rel h;
	unsigned seed = 13;

	for (size_t i = 0; i < sizeof(data); i++) {
		seed = seed * 1103515245u + 12345u;
		data[i] = (unsigned char) (seed >> 16);
	}
	memset(data + CRC_OFF, 0, 4);
	memcpy(&h, data, HDR);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t len = sizes[s];
		uint32_t want_x = (uint32_t) XXH3_64bits(data, HDR + len);
		uint32_t want_c = usb4_crc32c(0, data, HDR + len);
		/* cut points a <= b (clamped to len) */
		size_t cuts[][2] = { { len, len }, { 0, len }, { 1, 1 },
				     { len / 3, len / 3 + 1 },
				     { len / 2 + 5, len } };

		for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
			size_t a = cuts[c][0] < len ? cuts[c][0] : len;
			size_t b = cuts[c][1] < len ? cuts[c][1] : len;
			struct iovec iov[3] = {
				{ data + HDR, a },
				{ data + HDR + a, b - a },
				{ data + HDR + b, len - b },
			};

			CHECK_EQ(usb4_rel_check(true, &h, iov, 3), want_x);
			CHECK_EQ(usb4_rel_check(false, &h, iov, 3), want_c);
		}
	}
}

/* ---- datagrams read in one piece (usb4_rel_parse_one) ---- */

/* d's check redone as its flag says, after the test rewrote it. */
static void recheck(struct dgram *d)
{
	bool xxh3 = le16toh(hdr_of(d).flags) & USB4_REL_F_XXH3;
	uint32_t c = htole32(xxh3 ? xxh3_of(d) : crc32c_of(d));

	memcpy(d->buf + CRC_OFF, &c, 4);
}

/* One rewrite of a DATA datagram whose check is then made right again, and
 * the drop it must be counted as. */
struct forgery {
	const char *what;
	size_t off, width;	/* the field rewritten */
	uint64_t xor;
	enum usb4_rel_drop drop;
};

static const struct forgery forgeries[] = {
	{ "another source", offsetof(struct usb4_wire_rel, src_id), 8, 1,
	  USB4_REL_DROP_WRONG_SRC },
	{ "another destination", offsetof(struct usb4_wire_rel, dst_id), 8,
	  1u << 20, USB4_REL_DROP_WRONG_DST },
	{ "a length one short", offsetof(struct usb4_wire_rel, len), 4, 1,
	  USB4_REL_DROP_BAD_HEADER },
	{ "another version", offsetof(struct usb4_wire_rel, version), 1, 0x40,
	  USB4_REL_DROP_BAD_HEADER },
	{ "PROBE on a DATA", offsetof(struct usb4_wire_rel, flags), 2,
	  USB4_REL_F_PROBE, USB4_REL_DROP_BAD_HEADER },
	{ "a tag flag without its trailer", offsetof(struct usb4_wire_rel, flags),
	  2, USB4_REL_F_AUTH, USB4_REL_DROP_BAD_HEADER },
	{ "a seq past the window", offsetof(struct usb4_wire_rel, seq), 4,
	  1u << 12, USB4_REL_DROP_OUT_OF_WINDOW },
};

static void xor_field(struct dgram *d, const struct forgery *f)
{
	uint64_t v = 0;

	memcpy(&v, d->buf + f->off, f->width);	/* little-endian host */
	v = le64toh(v) ^ f->xor;
	v = htole64(v);
	memcpy(d->buf + f->off, &v, f->width);
}

static size_t drops(const struct side *s, enum usb4_rel_drop why)
{
	return (size_t) usb4_rel_stats(s->rel)->dropped[why];
}

/* Each forgery, checked right, is dropped and counted as the general path
 * counts it, nothing delivered; then the true datagram is taken once: a
 * copy of it is a counted duplicate. */
static void one_piece_forgeries(struct side *a, struct side *b)
{
	static struct dgram d, f;

	for (size_t k = 0; k < sizeof(forgeries) / sizeof(forgeries[0]); k++) {
		const struct forgery *fg = &forgeries[k];
		size_t got = b->n_got, before = drops(b, fg->drop);
		size_t dup = drops(b, USB4_REL_DROP_DUPLICATE);

		CHECK_EQ(send_len(a, 40, (unsigned) k), 0);
		CHECK_EQ(a->n_out, 1);
		d = a->out[0];
		a->n_out = 0;
		f = d;
		xor_field(&f, fg);
		recheck(&f);
		usb4_rel_input(b->rel, 0, f.buf, f.len, &b->io);
		CHECK_EQ_MSG(b->n_got, got, "%s: delivered", fg->what);
		CHECK_EQ_MSG(drops(b, fg->drop), before + 1, "%s: not counted",
			     fg->what);
		CHECK_EQ(usb4_rel_input(b->rel, 0, d.buf, d.len, &b->io), 0);
		CHECK_EQ_MSG(b->n_got, got + 1, "%s: the true one", fg->what);
		usb4_rel_input(b->rel, 0, d.buf, d.len, &b->io);
		CHECK_EQ_MSG(b->n_got, got + 1, "%s: a copy delivered", fg->what);
		CHECK_EQ(drops(b, USB4_REL_DROP_DUPLICATE), dup + 1);
		settle(a, b, 0);
	}
}

/* A lost datagram: the one after it is held, not handed up, until the
 * lost one comes again; then both, in order. */
static void one_piece_gap(struct side *a, struct side *b)
{
	static struct dgram first, second;
	size_t got = b->n_got;
	unsigned char want[40];

	CHECK_EQ(send_len(a, 40, 71), 0);
	CHECK_EQ(send_len(a, 40, 72), 0);
	CHECK_EQ(a->n_out, 2);
	first = a->out[0];
	second = a->out[1];
	a->n_out = 0;
	CHECK_EQ(usb4_rel_input(b->rel, 0, second.buf, second.len, &b->io), 0);
	CHECK_EQ_MSG(b->n_got, got, "a datagram past a gap was handed up");
	CHECK_EQ(usb4_rel_input(b->rel, 0, first.buf, first.len, &b->io), 0);
	CHECK_EQ(b->n_got, got + 2);
	fill(want, 40, 72);
	CHECK_MSG(b->got_len == 40 && !memcmp(b->got, want, 40),
		  "the held datagram came last and whole");
	settle(a, b, 0);
}

/* Run in both passes: datagrams checked by CRC32C, then by XXH3. */
static void test_one_piece(void)
{
	static struct side a, b;

	pair_open(&a, &b);
	handshake(&a, &b);
	settle(&a, &b, 0);
	one_piece_forgeries(&a, &b);
	one_piece_gap(&a, &b);
	transfer_checked(&a, &b, !usb4_crc32c_fast(), "one piece");
	pair_close(&a, &b);
}

int main(int argc, char **argv)
{
	if (usb4_crc32c_fast()) {
		test_fast_crc_keeps_crc32c();
		test_one_piece();
		if (usb4_test_failures)
			return usb4_test_done("test_rel_check (CRC instructions)");
		fflush(NULL);
		setenv("FI_USB4_PORTABLE", "1", 1);
		execv("/proc/self/exe", argv);
		CHECK(!"exec of the portable pass");
		return usb4_test_done("test_rel_check");
	}
	printf("test_rel_check: portable pass (crc32c path %s)\n",
	       usb4_crc32c_path());
	test_xxh3_agreed();
	test_old_peer_crc32c();
	test_xxh3_corruption_dropped();
	test_hello_never_xxh3();
	test_check_pieces_match_one_call();
	test_one_piece();
	return usb4_test_done("test_rel_check");
}
