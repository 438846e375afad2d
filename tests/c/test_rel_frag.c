/*
 * Unit tests of a session's datagram size and of seqs sent as fragments
 * (prov_usb4/src/rel/usb4_rel_frag.c and its hooks in usb4_rel.c), frame by
 * frame: two rel peers A and B joined by a fake link with an MTU per
 * receiving end (a datagram larger than the receiver's is dropped
 * silently, as a veth does) and one per sending end (larger ones are
 * refused with -FI_EMSGSIZE, as our own interface does), under a fake
 * clock.  Malformed fragments are built by hand, CRC and all.
 */
#include <endian.h>
#include <stdint.h>
#include <string.h>

#include "usb4_rel.h"
#include "../../prov_usb4/src/rel/usb4_rel_frag.h"
#include "../../prov_usb4/src/wire.h"
#include "usb4_test.h"

#define HDR	sizeof(struct usb4_wire_rel)
#define FHDR	sizeof(struct usb4_wire_frag)
#define UNIT	USB4_WIRE_FRAG_UNIT
#define MS	1000000ull
#define ID_A	0xa1a1a1a1a1a1a1a1ull
#define ID_B	0xb2b2b2b2b2b2b2b2ull
#define ISN_A	1000u
#define ISN_B	5000u
#define PAYLOAD_MAX	8192u
#define BIG	9000u		/* datagrams the fake link ever carries */

/* ---- fake link ---------------------------------------------------------- */

struct dgram {
	unsigned char buf[BIG];
	size_t len;
};

#define QUEUE_MAX	4096

struct side {
	struct usb4_rel_peer *rel;
	struct usb4_rel_io io;
	struct side *other;
	struct dgram *out;	/* sent, not yet carried */
	size_t n_out;
	uint32_t send_mtu;	/* larger: -FI_EMSGSIZE (0: none) */
	uint32_t recv_mtu;	/* larger arriving: dropped silently */
	uint64_t sizes_over;	/* datagrams sent larger than other's MTU */
	uint64_t emsgsize;	/* datagrams refused with -FI_EMSGSIZE */
	size_t largest_sent;
	unsigned char got[16][PAYLOAD_MAX];
	size_t got_len[16];
	int n_got;
};

static int fake_xmit(void *ctx, const struct iovec *iov, int count)
{
	struct side *s = ctx;
	struct dgram *d;
	size_t len = 0;

	for (int i = 0; i < count; i++)
		len += iov[i].iov_len;
	if (s->send_mtu && len > s->send_mtu) {
		s->emsgsize++;
		return -FI_EMSGSIZE;
	}
	if (len > BIG || s->n_out == QUEUE_MAX)
		return -FI_EAGAIN;
	d = &s->out[s->n_out++];
	d->len = 0;
	for (int i = 0; i < count; i++) {
		memcpy(d->buf + d->len, iov[i].iov_base, iov[i].iov_len);
		d->len += iov[i].iov_len;
	}
	if (len > s->largest_sent)
		s->largest_sent = len;
	return 0;
}

static uint32_t fake_path_max(void *ctx)
{
	return ((struct side *) ctx)->send_mtu;
}

static int fake_deliver(void *ctx, const struct iovec *payload, int count)
{
	struct side *s = ctx;
	size_t len = 0;

	if (s->n_got == 16)
		return -FI_EAGAIN;
	for (int i = 0; i < count; i++) {
		memcpy(s->got[s->n_got] + len, payload[i].iov_base,
		       payload[i].iov_len);
		len += payload[i].iov_len;
	}
	s->got_len[s->n_got++] = len;
	return 0;
}

/* Carries what from sent to its peer, dropping what exceeds the peer's
 * receive MTU; skip: the index of a datagram to lose (-1: none). */
static void carry(struct side *from, uint64_t now, long skip)
{
	struct side *to = from->other;
	size_t n = from->n_out;

	from->n_out = 0;
	for (size_t i = 0; i < n; i++) {
		struct dgram *d = &from->out[i];

		if ((long) i == skip)
			continue;
		if (to->recv_mtu && d->len > to->recv_mtu) {
			from->sizes_over++;
			continue;
		}
		usb4_rel_input(to->rel, now, d->buf, d->len, &to->io);
	}
}

/* Both ways until nothing moves, timers run at now. */
static void settle(struct side *a, struct side *b, uint64_t now)
{
	for (int round = 0; round < 64 && (a->n_out || b->n_out); round++) {
		carry(a, now, -1);
		carry(b, now, -1);
	}
}

static struct usb4_rel_cfg cfg_of(uint32_t datagram_max,
				  struct usb4_rel_pool *pool, uint32_t isn)
{
	/* As the udp link: a payload fills one of our datagrams at most. */
	return (struct usb4_rel_cfg) {
		.window = 16,
		.payload_max = datagram_max - HDR < PAYLOAD_MAX ?
			       datagram_max - HDR : PAYLOAD_MAX,
		.datagram_max = datagram_max,
		.rto_initial_ns = 10 * MS, .rto_max_ns = 100 * MS,
		.ack_delay_ns = 0, .dead_ns = 5000 * MS,
		.isn = isn, .pool = pool, .path_guess = true,
	};
}

static struct side *side_new(void)
{
	struct side *s = calloc(1, sizeof(*s));

	s->out = calloc(QUEUE_MAX, sizeof(*s->out));
	s->io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = s,
		.deliver = fake_deliver, .deliver_ctx = s,
		.path_max = fake_path_max,
	};
	return s;
}

/* A and B that still have to shake hands (A starts with its first send). */
static void pair_open(struct side **ap, struct side **bp, uint32_t dmax_a,
		      uint32_t dmax_b, struct usb4_rel_pool *pool)
{
	struct side *a = side_new(), *b = side_new();
	struct usb4_rel_cfg ca = cfg_of(dmax_a, pool, ISN_A);
	struct usb4_rel_cfg cb = cfg_of(dmax_b, pool, ISN_B);

	CHECK_EQ(usb4_rel_peer_open(&a->rel, &ca, ID_A, ID_B, 0), 0);
	CHECK_EQ(usb4_rel_peer_open(&b->rel, &cb, ID_B, ID_A, 0), 0);
	a->other = b;
	b->other = a;
	*ap = a;
	*bp = b;
}

/* A and B whose handshake is done (offers filled as HELLOs would);
 * features: what each says it offers. */
static void pair_accept(struct side **ap, struct side **bp, uint32_t dmax_a,
			uint32_t dmax_b, uint32_t features,
			struct usb4_rel_pool *pool)
{
	struct side *a = side_new(), *b = side_new();
	struct usb4_rel_cfg ca = cfg_of(dmax_a, pool, 0);
	struct usb4_rel_cfg cb = cfg_of(dmax_b, pool, 0);
	struct usb4_rel_offer oa = {
		.remote_id = ID_B, .peer_isn = ISN_B, .peer_window = 16,
		.peer_datagram_max = dmax_b, .peer_features = features,
		.isn = ISN_A,
	};
	struct usb4_rel_offer ob = {
		.remote_id = ID_A, .peer_isn = ISN_A, .peer_window = 16,
		.peer_datagram_max = dmax_a, .peer_features = features,
		.isn = ISN_B,
	};

	CHECK_EQ(usb4_rel_peer_accept(&a->rel, &ca, ID_A, &oa, 0), 0);
	CHECK_EQ(usb4_rel_peer_accept(&b->rel, &cb, ID_B, &ob, 0), 0);
	a->other = b;
	b->other = a;
	*ap = a;
	*bp = b;
}

static void side_free(struct side *s)
{
	usb4_rel_peer_close(s->rel);
	free(s->out);
	free(s);
}

static void fill(unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char) (i * 131 + seed * 7 + (i >> 8));
}

static int send_bytes(struct side *s, uint64_t now, const unsigned char *p,
		      size_t len)
{
	struct iovec iov = { .iov_base = (void *) p, .iov_len = len };

	return usb4_rel_send(s->rel, now, &iov, 1, &s->io);
}

/* ---- the negotiated size ------------------------------------------------ */

static void test_handshake_takes_smaller(void)
{
	struct side *a, *b;
	unsigned char p[16];

	pair_open(&a, &b, 4000, 1000, NULL);
	CHECK_EQ(usb4_rel_path_payload_max(a->rel), 4000 - HDR);
	fill(p, sizeof(p), 1);
	CHECK_EQ(send_bytes(a, 0, p, sizeof(p)), 0);
	settle(a, b, 0);
	CHECK_EQ(usb4_rel_peer_datagram_max(a->rel), 1000);
	CHECK_EQ(usb4_rel_path_payload_max(a->rel), 1000 - HDR);
	CHECK_EQ(usb4_rel_path_payload_max(b->rel), 1000 - HDR);
	CHECK_EQ(b->n_got, 1);
	side_free(a);
	side_free(b);
}

/* A frame accepted before the handshake said the peer takes less goes
 * as fragments, none larger than the peer takes, and arrives whole, though
 * larger than any datagram of the receiver's (its payload_max). */
static void test_frame_before_handshake_fragmented(void)
{
	struct usb4_rel_pool *pool;
	struct side *a, *b;
	static unsigned char p[6000];

	CHECK_EQ(usb4_rel_pool_open(&pool, 1 << 20), 0);
	pair_open(&a, &b, BIG, 1000, pool);
	b->recv_mtu = 1000;
	fill(p, sizeof(p), 2);
	CHECK_EQ(send_bytes(a, 0, p, sizeof(p)), 0);
	settle(a, b, 0);
	CHECK_EQ(a->sizes_over, 0);
	CHECK(a->largest_sent <= 1000);
	CHECK_EQ(b->n_got, 1);
	CHECK_EQ(b->got_len[0], sizeof(p));
	CHECK(!memcmp(b->got[0], p, sizeof(p)));
	CHECK(usb4_rel_stats(a->rel)->frag_sent >= sizeof(p) / 1000);
	CHECK_EQ(usb4_rel_stats(b->rel)->frag_received,
		 usb4_rel_stats(a->rel)->frag_sent);
	CHECK_EQ(usb4_rel_unacked(a->rel), 0);
	side_free(a);
	side_free(b);
	CHECK_EQ(usb4_rel_pool_in_use(pool), 0);
	usb4_rel_pool_close(pool);
}

/* One fragment lost: nothing is delivered or acknowledged until the
 * sender resends the seq; then it arrives once. */
static void test_fragment_lost(void)
{
	struct side *a, *b;
	static unsigned char p[3000];
	const struct usb4_rel_stats *sa;

	pair_accept(&a, &b, BIG, 1000, USB4_WIRE_FEATURE_FRAG, NULL);
	sa = usb4_rel_stats(a->rel);
	fill(p, sizeof(p), 3);
	CHECK_EQ(send_bytes(a, 0, p, 900), 0);	/* fits: whole */
	CHECK_EQ(sa->frag_sent, 0);
	carry(a, 0, -1);
	CHECK_EQ(b->n_got, 1);
	/* Too large for one datagram: fragments; the second one lost. */
	CHECK_EQ(usb4_rel_send_ref(a->rel, 0, &(struct iovec) {
		.iov_base = p, .iov_len = sizeof(p) }, 1, 1, 7, &a->io), 0);
	CHECK_EQ(sa->frag_sent, 4);
	carry(a, 1, 1);
	carry(b, 1, -1);
	CHECK_EQ(b->n_got, 1);
	CHECK_EQ(usb4_rel_unacked(a->rel), 1);
	usb4_rel_timer(a->rel, 50 * MS, &a->io);
	CHECK_EQ(sa->frag_sent, 8);
	settle(a, b, 50 * MS);
	CHECK_EQ(b->n_got, 2);
	CHECK_EQ(b->got_len[1], sizeof(p));
	CHECK(!memcmp(b->got[1], p, sizeof(p)));
	CHECK_EQ(usb4_rel_unacked(a->rel), 0);
	CHECK_EQ(usb4_rel_stats(b->rel)->delivered, 2);
	side_free(a);
	side_free(b);
}

/* A peer that did not offer FRAG gets whole datagrams, as before. */
static void test_no_fragments_without_feature(void)
{
	struct side *a, *b;
	static unsigned char p[3000];

	pair_accept(&a, &b, BIG, 1000, 0, NULL);
	fill(p, sizeof(p), 4);
	CHECK_EQ(send_bytes(a, 0, p, sizeof(p)), 0);
	CHECK_EQ(usb4_rel_stats(a->rel)->frag_sent, 0);
	CHECK_EQ(a->largest_sent, HDR + sizeof(p));
	side_free(a);
	side_free(b);
}

/* ---- malformed fragments ------------------------------------------------ */

/* A DATA datagram from A to B with a fragment header, CRC'd. */
static size_t frag_dgram(unsigned char *buf, uint16_t flags, uint8_t type,
			 uint32_t seq, uint32_t off, uint32_t total,
			 const unsigned char *bytes, size_t n)
{
	struct usb4_wire_rel w = {
		.version = USB4_WIRE_VERSION, .type = type,
		.flags = htole16(flags),
		.src_id = htole64(ID_A), .dst_id = htole64(ID_B),
		.seq = htole32(seq), .ack = htole32(ISN_B),
		.window = htole32(16), .len = htole32((uint32_t) (FHDR + n)),
	};
	struct usb4_wire_frag f = {
		.offset = htole32(off), .total = htole32(total),
	};

	memcpy(buf + HDR, &f, FHDR);
	memcpy(buf + HDR + FHDR, bytes, n);
	memcpy(buf, &w, HDR);
	w.crc = htole32(usb4_crc32c(0, buf, HDR + FHDR + n));
	memcpy(buf, &w, HDR);
	return HDR + FHDR + n;
}

static int inject(struct side *b, uint16_t flags, uint8_t type, uint32_t seq,
		  uint32_t off, uint32_t total, const unsigned char *bytes,
		  size_t n)
{
	static unsigned char buf[BIG + 64];
	size_t len = frag_dgram(buf, flags, type, seq, off, total, bytes, n);

	return usb4_rel_input(b->rel, 0, buf, len, &b->io);
}

static void test_malformed_fragments(void)
{
	struct usb4_rel_pool *pool;
	struct side *a, *b;
	static unsigned char p[4 * UNIT + 10];
	const uint64_t *bad;
	uint64_t header_drops;

	CHECK_EQ(usb4_rel_pool_open(&pool, 1 << 20), 0);
	pair_accept(&a, &b, 2000, 2000, USB4_WIRE_FEATURE_FRAG, pool);
	bad = &usb4_rel_stats(b->rel)->dropped[USB4_REL_DROP_BAD_FRAGMENT];
	header_drops = usb4_rel_stats(b->rel)->dropped[USB4_REL_DROP_BAD_HEADER];
	fill(p, sizeof(p), 5);
	/* Out of bounds: past the total, and a length that runs over it. */
	CHECK(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 8 * UNIT,
		     sizeof(p), p, UNIT) < 0);
	CHECK(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 4 * UNIT,
		     sizeof(p), p, 2 * UNIT) < 0);
	/* Misaligned offset; a middle fragment not of whole units. */
	CHECK(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 3, sizeof(p),
		     p, UNIT) < 0);
	CHECK(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 0, sizeof(p),
		     p, UNIT + 1) < 0);
	/* A total of 0, and one beyond the largest payload any datagram
	 * carries (what a sender's frames are bounded by). */
	CHECK(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 0, 0, p, 0) < 0);
	CHECK(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 0,
		     USB4_REL_FRAG_TOTAL_MAX + 1, p, UNIT) < 0);
	CHECK(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 0, UINT32_MAX,
		     p, UNIT) < 0);
	CHECK_EQ(*bad, 7);
	/* A good first fragment, then one that names another total. */
	CHECK_EQ(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 0, sizeof(p),
			p, 2 * UNIT), 0);
	CHECK(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 2 * UNIT,
		     sizeof(p) + UNIT, p + 2 * UNIT, 2 * UNIT) < 0);
	CHECK_EQ(*bad, 8);
	/* The flag on an ACK is a bad header. */
	CHECK(inject(b, USB4_REL_F_FRAG, USB4_REL_ACK, ISN_A, 0, 0, p, 0) < 0);
	CHECK_EQ(usb4_rel_stats(b->rel)->dropped[USB4_REL_DROP_BAD_HEADER],
		 header_drops + 1);
	CHECK_EQ(b->n_got, 0);
	/* A repeat of the first changes nothing; the rest completes it,
	 * bit-exact, in any order. */
	CHECK_EQ(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 0, sizeof(p),
			p, 2 * UNIT), 0);
	CHECK_EQ(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 4 * UNIT,
			sizeof(p), p + 4 * UNIT, 10), 0);
	CHECK_EQ(b->n_got, 0);
	CHECK_EQ(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 2 * UNIT,
			sizeof(p), p + 2 * UNIT, 2 * UNIT), 0);
	CHECK_EQ(b->n_got, 1);
	CHECK_EQ(b->got_len[0], sizeof(p));
	CHECK(!memcmp(b->got[0], p, sizeof(p)));
	/* A fragment of the seq now had is a duplicate. */
	CHECK(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 0, sizeof(p),
		     p, 2 * UNIT) < 0);
	CHECK_EQ(usb4_rel_stats(b->rel)->dropped[USB4_REL_DROP_DUPLICATE], 1);
	CHECK_EQ(b->n_got, 1);
	side_free(a);
	side_free(b);
	CHECK_EQ(usb4_rel_pool_in_use(pool), 0);
	usb4_rel_pool_close(pool);
}

/* Reassembly takes its buffer from the pool: none left, the fragment is
 * dropped unacknowledged; with room again the seq completes. */
static void test_reassembly_pool_bound(void)
{
	struct usb4_rel_pool *pool;
	struct side *a, *b;
	static unsigned char p[4 * UNIT];
	void *hog;

	CHECK_EQ(usb4_rel_pool_open(&pool, 4096), 0);
	pair_accept(&a, &b, 2000, 2000, USB4_WIRE_FEATURE_FRAG, pool);
	fill(p, sizeof(p), 6);
	hog = usb4_rel_pool_get(pool, 4000);
	CHECK(hog != NULL);
	CHECK(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 0, sizeof(p),
		     p, 2 * UNIT) < 0);
	CHECK_EQ(usb4_rel_stats(b->rel)->dropped[USB4_REL_DROP_NO_BUFFER], 1);
	usb4_rel_pool_put(pool, hog);
	CHECK_EQ(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 0, sizeof(p),
			p, 2 * UNIT), 0);
	CHECK(usb4_rel_pool_in_use(pool) >= sizeof(p));
	CHECK_EQ(inject(b, USB4_REL_F_FRAG, USB4_REL_DATA, ISN_A, 2 * UNIT,
			sizeof(p), p + 2 * UNIT, 2 * UNIT), 0);
	CHECK_EQ(b->n_got, 1);
	CHECK(!memcmp(b->got[0], p, sizeof(p)));
	CHECK_EQ(usb4_rel_pool_in_use(pool), 0);
	side_free(a);
	side_free(b);
	usb4_rel_pool_close(pool);
}

/* ---- a path that shrinks ------------------------------------------------ */

/* Our interface's MTU fell: xmit says -FI_EMSGSIZE; the link reads the new
 * size; the frame goes at once as fragments and later frames are smaller. */
static void test_emsgsize_shrinks(void)
{
	struct side *a, *b;
	static unsigned char p[5000];
	const struct usb4_rel_stats *sa;

	pair_accept(&a, &b, BIG, BIG, USB4_WIRE_FEATURE_FRAG, NULL);
	sa = usb4_rel_stats(a->rel);
	a->send_mtu = 1500;
	fill(p, sizeof(p), 7);
	CHECK_EQ(send_bytes(a, 0, p, sizeof(p)), 0);
	CHECK_EQ(a->emsgsize, 1);
	CHECK_EQ(sa->path_shrinks, 1);
	CHECK_EQ(usb4_rel_path_payload_max(a->rel), 1500 - HDR);
	CHECK(sa->frag_sent >= 4);
	settle(a, b, 0);
	CHECK_EQ(b->n_got, 1);
	CHECK(!memcmp(b->got[0], p, sizeof(p)));
	CHECK_EQ(usb4_rel_unacked(a->rel), 0);
	CHECK(!usb4_rel_dead(a->rel));
	side_free(a);
	side_free(b);
}

/* Carries what is in flight, then runs both sides' timers every step ns,
 * at most steps times, until a has nothing unacknowledged; the clock
 * then. */
static uint64_t run_until_acked(struct side *a, struct side *b, uint64_t now,
				uint64_t step, int steps)
{
	settle(a, b, now);
	for (int i = 0; i < steps && usb4_rel_unacked(a->rel); i++) {
		now += step;
		usb4_rel_timer(a->rel, now, &a->io);
		usb4_rel_timer(b->rel, now, &b->io);
		settle(a, b, now);
	}
	CHECK_EQ(usb4_rel_unacked(a->rel), 0);
	return now;
}

/* The far end's MTU fell: large datagrams vanish while small ones pass.
 * A resends, probes, sees the peer answer, and steps the path down until
 * the frame gets through: delivered once, the peer never declared dead. */
static void test_silent_drops_shrink(void)
{
	struct side *a, *b;
	static unsigned char p[4000], small[32];
	const struct usb4_rel_stats *sa;
	uint64_t now = 0;

	pair_accept(&a, &b, BIG, BIG, USB4_WIRE_FEATURE_FRAG, NULL);
	sa = usb4_rel_stats(a->rel);
	b->recv_mtu = 1300;
	fill(p, sizeof(p), 8);
	fill(small, sizeof(small), 9);
	CHECK_EQ(send_bytes(a, now, p, sizeof(p)), 0);
	CHECK_EQ(send_bytes(a, now, small, sizeof(small)), 0);
	settle(a, b, now);
	CHECK_EQ(b->n_got, 0);	/* the small one waits behind the gap */
	now = run_until_acked(a, b, now, 5 * MS, 200);
	CHECK(!usb4_rel_dead(a->rel));
	CHECK_EQ(b->n_got, 2);
	CHECK(!memcmp(b->got[0], p, sizeof(p)));
	CHECK(!memcmp(b->got[1], small, sizeof(small)));
	/* 9000 -> 1452 (still too large) -> 1232. */
	CHECK_EQ(sa->path_shrinks, 2);
	CHECK(usb4_rel_path_payload_max(a->rel) + HDR <= 1300);
	CHECK(now < 2000 * MS);
	printf("silent drops: path %zu after %llu ms, %llu fragments\n",
	       usb4_rel_path_payload_max(a->rel) + HDR,
	       (unsigned long long) (now / MS),
	       (unsigned long long) sa->frag_sent);
	side_free(a);
	side_free(b);
}

/* Many large frames in flight when the far end's MTU falls: the path
 * shrinks once, to what gets through, not once per frame (frames lost at
 * the old size say nothing of the new one). */
static void test_silent_drops_shrink_once(void)
{
	struct side *a, *b;
	static unsigned char p[6][4000];
	uint64_t now = 0;

	pair_accept(&a, &b, BIG, BIG, USB4_WIRE_FEATURE_FRAG, NULL);
	b->recv_mtu = 1500;
	for (int i = 0; i < 6; i++) {
		fill(p[i], sizeof(p[i]), 20 + i);
		CHECK_EQ(send_bytes(a, now, p[i], sizeof(p[i])), 0);
	}
	run_until_acked(a, b, now, 1 * MS, 400);
	CHECK_EQ(b->n_got, 6);
	for (int i = 0; i < 6 && i < b->n_got; i++)
		CHECK(!memcmp(b->got[i], p[i], sizeof(p[i])));
	CHECK_EQ(usb4_rel_stats(a->rel)->path_shrinks, 1);
	CHECK_EQ(usb4_rel_path_payload_max(a->rel) + HDR, 1452);
	side_free(a);
	side_free(b);
}

/* A full queue drops large datagrams before small ones, as a narrow path
 * does: a shrink guessed from that is tried again after
 * USB4_REL_PATH_RAISE_FIRST_NS (the queue drained: the path is whole
 * again); a path that really is narrow shrinks again, and its next try
 * waits twice as long. */
static void test_guess_tried_again(void)
{
	struct side *a, *b;
	static unsigned char p[4000];
	const uint64_t first = USB4_REL_PATH_RAISE_FIRST_NS;
	uint64_t now = 0;
	size_t whole;

	pair_accept(&a, &b, BIG, BIG, USB4_WIRE_FEATURE_FRAG, NULL);
	whole = usb4_rel_path_payload_max(a->rel);
	b->recv_mtu = 1500;		/* a queue full of large datagrams */
	fill(p, sizeof(p), 41);
	CHECK_EQ(send_bytes(a, now, p, sizeof(p)), 0);
	now = run_until_acked(a, b, now, 1 * MS, 400);
	CHECK_EQ(usb4_rel_stats(a->rel)->path_shrinks, 1);
	CHECK_EQ(usb4_rel_path_payload_max(a->rel) + HDR, 1452);
	b->recv_mtu = 0;		/* it drained */
	CHECK_EQ(send_bytes(a, now, p, sizeof(p)), 0);
	now = run_until_acked(a, b, now, 1 * MS, 400);
	CHECK_EQ(usb4_rel_path_payload_max(a->rel) + HDR, 1452);	/* not yet */
	now += first;
	CHECK_EQ(send_bytes(a, now, p, sizeof(p)), 0);
	now = run_until_acked(a, b, now, 1 * MS, 400);
	CHECK_EQ(usb4_rel_stats(a->rel)->path_raises, 1);
	CHECK_EQ(usb4_rel_path_payload_max(a->rel), whole);
	/* Now narrow for good: shrinks again, tried again after 2 * first. */
	b->recv_mtu = 1500;
	CHECK_EQ(send_bytes(a, now, p, sizeof(p)), 0);
	now = run_until_acked(a, b, now, 1 * MS, 400);
	CHECK_EQ(usb4_rel_stats(a->rel)->path_shrinks, 2);
	now += first + first / 2;
	CHECK_EQ(send_bytes(a, now, p, sizeof(p)), 0);
	now = run_until_acked(a, b, now, 1 * MS, 400);
	CHECK_EQ(usb4_rel_stats(a->rel)->path_raises, 1);
	now += first;
	CHECK_EQ(send_bytes(a, now, p, sizeof(p)), 0);
	now = run_until_acked(a, b, now, 1 * MS, 400);
	CHECK_EQ(usb4_rel_stats(a->rel)->path_raises, 2);
	CHECK_EQ(usb4_rel_stats(a->rel)->path_shrinks, 3);
	CHECK_EQ(b->n_got, 6);
	for (int i = 0; i < b->n_got; i++)
		CHECK(!memcmp(b->got[i], p, sizeof(p)));
	side_free(a);
	side_free(b);
}

/* Without path_guess (the udp link with rails: a rail going down loses
 * large datagrams too) silent drops shrink nothing. */
static void test_no_guess_no_shrink(void)
{
	struct side *a, *b;
	static unsigned char p[4000], small[32];
	struct usb4_rel_cfg ca = cfg_of(BIG, NULL, 0);
	uint64_t now = 0;

	pair_accept(&a, &b, BIG, BIG, USB4_WIRE_FEATURE_FRAG, NULL);
	usb4_rel_peer_close(a->rel);
	ca.path_guess = false;
	CHECK_EQ(usb4_rel_peer_accept(&a->rel, &ca, ID_A, &(struct usb4_rel_offer) {
		.remote_id = ID_B, .peer_isn = ISN_B, .peer_window = 16,
		.peer_datagram_max = BIG, .peer_features = USB4_WIRE_FEATURE_FRAG,
		.isn = ISN_A }, 0), 0);
	b->recv_mtu = 1500;
	fill(p, sizeof(p), 11);
	CHECK_EQ(send_bytes(a, now, p, sizeof(p)), 0);
	CHECK_EQ(send_bytes(a, now, small, sizeof(small)), 0);
	for (int i = 0; i < 100; i++) {
		now += 5 * MS;
		usb4_rel_timer(a->rel, now, &a->io);
		usb4_rel_timer(b->rel, now, &b->io);
		settle(a, b, now);
	}
	CHECK(usb4_rel_stats(a->rel)->retransmitted >= 4);
	CHECK_EQ(usb4_rel_stats(a->rel)->path_shrinks, 0);
	CHECK_EQ(b->n_got, 0);
	side_free(a);
	side_free(b);
}

/* A peer that answers nothing is dead, not a small path: no shrink. */
static void test_dead_peer_no_shrink(void)
{
	struct side *a, *b;
	static unsigned char p[4000];
	uint64_t now = 0;

	pair_accept(&a, &b, BIG, BIG, USB4_WIRE_FEATURE_FRAG, NULL);
	fill(p, sizeof(p), 10);
	CHECK_EQ(send_bytes(a, now, p, sizeof(p)), 0);
	a->n_out = 0;
	for (int i = 0; i < 2000 && !usb4_rel_dead(a->rel); i++) {
		now += 5 * MS;
		usb4_rel_timer(a->rel, now, &a->io);
		a->n_out = 0;		/* B is gone */
	}
	CHECK(usb4_rel_dead(a->rel));
	CHECK_EQ(usb4_rel_stats(a->rel)->path_shrinks, 0);
	side_free(a);
	side_free(b);
}

int main(void)
{
	test_handshake_takes_smaller();
	test_frame_before_handshake_fragmented();
	test_fragment_lost();
	test_no_fragments_without_feature();
	test_malformed_fragments();
	test_reassembly_pool_bound();
	test_emsgsize_shrinks();
	test_silent_drops_shrink();
	test_silent_drops_shrink_once();
	test_guess_tried_again();
	test_no_guess_no_shrink();
	test_dead_peer_no_shrink();
	return usb4_test_done("test_rel_frag");
}
