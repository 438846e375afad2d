/*
 * libFuzzer target for everything that parses bytes coming off a link:
 *
 *  (a) the whole input as one core frame: usb4_wire_parse() (and
 *      usb4_wire_parse_split() on the header and payload in buffers of their
 *      own, which must agree), and for frames it accepts, a walk over exactly
 *      the bytes the core then reads (RTS head and its 0..16 segments, RMA
 *      segment list, atomic head and operands, inline payload), so
 *      AddressSanitizer sees any read past what the parser vouched for; plus
 *      the invariant that usb4_wire_build() gives back the header it parsed;
 *
 *  (b) the input as a script of records driving a rel peer pair A <-> B that
 *      has completed a real handshake (and delivered one frame A -> B); both
 *      peers take payload copies from one pool of FUZZ_POOL_BYTES, small
 *      enough that it runs dry:
 *
 *        record = ctl:u8  len:u16le  body[len]     (len clamped to the input)
 *        ctl & 3 == 0   body is a datagram from A, fed to usb4_rel_input of B
 *        ctl & 3 == 1   body is a datagram from B, fed to A
 *                       bit 2: keep the body's CRC (else it is recomputed,
 *                              so mutations reach past the checksum)
 *                       bit 3: keep the body's ids (else src/dst are set
 *                              to the pair's, so mutations reach the state)
 *                       bit 4: the datagram comes in 3 pieces
 *                              (usb4_rel_input_v), cut where ctl >> 5 says
 *        ctl & 3 == 2   usb4_rel_send of body, from A (bit 2 clear) or B;
 *                       bit 3: the second half by reference
 *                              (usb4_rel_send_ref, owner ctl >> 5);
 *                       bit 4: then usb4_rel_copy_refs(owner)
 *        ctl & 7 == 3   the clock advances ((ctl >> 3)^2 * 400 us), both
 *                       timers run, queued datagrams cross the fake link
 *        ctl & 7 == 7   control: (ctl >> 3) & 3 says what, bit 5 picks
 *                       side B (else A):
 *                       0  not ready: the side's deliver callback refuses
 *                          (-FI_EAGAIN) the next body[0] payloads rel offers
 *                          (1 without a body, 255 until the next such
 *                          record, 0 ready again)
 *                       1  a handshake datagram for the side, from the other,
 *                          built from the body (struct fuzz_hello_rec):
 *                          HELLO, HELLO_ACK or REJECT with any seq, window,
 *                          proto and features, or usb4_rel_reject()'s REJECT
 *                       2  the harness takes (body[0] + 1) * 64 bytes of the
 *                          pool for itself, or gives back what it holds
 *                       3  both peers close and open again, no handshake
 *                          done (the next send or HELLO starts one)
 *
 *      usb4_rel_peek() and usb4_rel_datagram_ids() see every injected body
 *      (as it came and as fed, whole and in pieces, which must agree) and
 *      the whole input.  Every payload rel delivers is a core frame and goes
 *      through (a).
 *
 *      Payloads of send records travel behind a tag (a counter and a MAC
 *      keyed by a hash of the whole input, which no injected datagram can
 *      forge).  Invariants: a tagged payload is never offered after it was
 *      taken or after a later one was (nothing delivered twice or out of
 *      order, refusals included); in a run where no datagram was injected,
 *      every offer is the next tagged payload, no peer goes down, and once
 *      the receivers are ready and the clock ran (the drain at the end)
 *      each side took every payload the other's rel
 *      accepted: each exactly once, in order.  The pool never hands out more
 *      than its budget and has all of it back once both peers are closed.
 *
 * The seed corpus (tests/fuzz/corpus) comes from tests/fuzz/make_corpus.py,
 * which reads the FUZZ_* constants below (ids, ISNs, cfg, record layout).
 * Build: tests/fuzz/build.sh; run: tests/test_fuzz.py or by hand (see there).
 */
#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz_assert.h"
#include "fuzz_records.h"
#include "usb4_atomic.h"
#include "usb4_rel.h"
#include "../../prov_usb4/src/wire.h"

/* Shared with make_corpus.py: the pair. */
#define FUZZ_ID_A	0xa1a1a1a1a1a1a1a1ull
#define FUZZ_ID_B	0xb2b2b2b2b2b2b2b2ull
#define FUZZ_ISN_A	0xfffffffcu	/* near the wrap on purpose */
#define FUZZ_ISN_B	100u
#define FUZZ_WINDOW	8u
#define FUZZ_PAYLOAD_MAX 512u
#define FUZZ_POOL_BYTES	2048u	/* four 512-byte copies */
#define FUZZ_TAG_LEN	16u	/* in front of what send records send: a
				 * counter, then a MAC of (key, epoch,
				 * sender, counter); little-endian */

/* Shared with make_corpus.py: records (see the top of this file). */
#define FUZZ_REC_TO_B		0u	/* ctl & 3 */
#define FUZZ_REC_TO_A		1u
#define FUZZ_REC_SEND		2u
#define FUZZ_REC_TICK		3u	/* ctl & 7 */
#define FUZZ_REC_CTL		7u	/* ctl & 7; what: ctl >> 3 & 3 */
#define FUZZ_BIT_KEEP_CRC	(1u << 2)	/* TO_A, TO_B */
#define FUZZ_BIT_KEEP_IDS	(1u << 3)
#define FUZZ_BIT_PIECES		(1u << 4)
#define FUZZ_BIT_FROM_B		(1u << 2)	/* SEND */
#define FUZZ_BIT_REF		(1u << 3)
#define FUZZ_BIT_COPY_REFS	(1u << 4)
#define FUZZ_TICK_SHIFT		3u	/* TICK: step = ctl >> 3 */
#define FUZZ_TICK_US		400u	/* moves the clock step^2 times */
#define FUZZ_CTL_SHIFT		3u	/* CTL: what = ctl >> 3 & 3 */
#define FUZZ_CTL_SIDE_B		(1u << 5)
#define FUZZ_CTL_NOT_READY	0u
#define FUZZ_CTL_HELLO		1u
#define FUZZ_CTL_SQUEEZE	2u
#define FUZZ_CTL_REOPEN		3u
#define FUZZ_NOT_READY_FOREVER	255u
#define FUZZ_SQUEEZE_UNIT	64u
/* FUZZ_CTL_HELLO: how = body[0]; how & 3 picks the datagram. */
#define FUZZ_HELLO_HELLO	0u
#define FUZZ_HELLO_ACK		1u
#define FUZZ_HELLO_REJECT	2u
#define FUZZ_HELLO_BUILT_REJECT	3u	/* usb4_rel_reject() */
#define FUZZ_HELLO_SEQ		(1u << 2)	/* seq from body, else ISN */
#define FUZZ_HELLO_PROTO	(1u << 3)	/* else ours */
#define FUZZ_HELLO_FEATURES	(1u << 4)	/* else ours */
#define FUZZ_HELLO_PIECES	(1u << 5)	/* 3 pieces, cut how >> 6 */

#define US		1000ull
#define MS		1000000ull
#define QUEUE_MAX	16u	/* datagrams one direction holds; then EAGAIN */
#define PUMP_MAX	256u	/* datagrams one pump moves at most */
/* The drain gives up after DRAIN_TICKS steps of the clock, or after
 * DRAIN_TICKS_INJECTED when a datagram was injected (a forged one may keep
 * the pair busy for good). */
#define DRAIN_TICKS	64u
#define DRAIN_TICKS_INJECTED 4u
#define DRAIN_STEP_NS	(40 * MS)

/* Folds bytes into a value the compiler cannot drop, so reads happen. */
static volatile uint64_t sink;

static void touch(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t acc = 0;

	for (size_t i = 0; i < len; i++)
		acc = acc * 31 + b[i];
	sink += acc;
}

/* A copy in a buffer of exactly len bytes, so ASan sees its bounds. */
static unsigned char *dup_exact(const void *src, size_t len)
{
	unsigned char *d = malloc(len ? len : 1);

	FUZZ_ASSERT(d);
	if (len)
		memcpy(d, src, len);
	return d;
}

/* ---- (a) frames ------------------------------------------------------- */

/* As usb4_dispatch.c rts_iovs(): the head, then iov_count segments (none:
 * the receiver asks for the bytes). */
static void walk_rts(const struct usb4_frame *f)
{
	struct usb4_wire_rts rts;
	struct usb4_wire_iov iov;
	const char *p = f->payload;
	uint64_t sum = 0;
	uint32_t n;

	memcpy(&rts, p, sizeof(rts));
	n = le32toh(rts.iov_count);
	FUZZ_ASSERT(n <= USB4_WIRE_RTS_MAX_IOV &&
		    f->payload_len == sizeof(rts) + n * sizeof(iov));
	for (uint32_t i = 0; i < n; i++) {
		memcpy(&iov, p + sizeof(rts) + i * sizeof(iov), sizeof(iov));
		touch(&iov, sizeof(iov));
		sum += le64toh(iov.len);
	}
	FUZZ_ASSERT(!n || sum == f->total_len);
}

/* As usb4_rma_frames.c pin_segs(): payload_len / 24 segments. */
static void walk_rma(const struct usb4_frame *f)
{
	struct usb4_wire_rma_seg seg;
	size_t n = f->payload_len / sizeof(seg);

	FUZZ_ASSERT(n >= 1 && n <= USB4_WIRE_RMA_MAX_SEG);
	for (size_t i = 0; i < n; i++) {
		memcpy(&seg, (const char *) f->payload + i * sizeof(seg),
		       sizeof(seg));
		touch(&seg, sizeof(seg));
	}
}

/* As usb4_rma_frames.c atomic_check_req() then atomic_execute(): the head,
 * and the operands and compares only when the head's sizes check out. */
static void walk_atomic(const struct usb4_frame *f)
{
	struct usb4_wire_atomic h;
	size_t size, bytes, want;

	memcpy(&h, f->payload, sizeof(h));
	size = usb4_atomic_size(le16toh(h.datatype));
	if (!size || h.kind > USB4_ATOMIC_COMPARE ||
	    !usb4_atomic_supported(h.kind, le16toh(h.datatype), h.op))
		return;
	bytes = (size_t) le32toh(h.count) * size;
	want = (h.op == FI_ATOMIC_READ ? 0 : bytes) +
	       (h.kind == USB4_ATOMIC_COMPARE ? bytes : 0);
	if (!h.count || bytes > USB4_ATOMIC_MAX_BYTES ||
	    bytes != f->total_len || f->payload_len != sizeof(h) + want)
		return;
	touch((const char *) f->payload + sizeof(h), want);
}

static void walk_frame(const struct usb4_frame *f)
{
	switch (f->type) {
	case USB4_FRAME_RTS:
		walk_rts(f);
		break;
	case USB4_FRAME_WRITE_REQ:
	case USB4_FRAME_READ_REQ:
		walk_rma(f);
		break;
	case USB4_FRAME_ATOMIC_REQ:
		walk_atomic(f);
		break;
	default:	/* EAGER, DATA, ATOMIC_RESP: inline bytes; others: none */
		touch(f->payload, f->payload_len);
		break;
	}
}

/* usb4_wire_parse_split() on the header and the payload apart, each in a
 * buffer of its own: same verdict, same frame. */
static void parse_apart(const unsigned char *buf, size_t len,
			enum usb4_wire_verdict v, const struct usb4_frame *f)
{
	size_t hl = sizeof(struct usb4_wire_hdr);
	unsigned char *hdr = dup_exact(buf, hl);
	unsigned char *payload = dup_exact(buf + hl, len - hl);
	struct usb4_frame g;

	FUZZ_ASSERT(usb4_wire_parse_split(hdr, payload, len - hl, &g) == v);
	if (v == USB4_WIRE_OK) {
		FUZZ_ASSERT(g.payload == payload);
		g.payload = f->payload;
		FUZZ_ASSERT(g.type == f->type && g.flags == f->flags &&
			    g.payload_len == f->payload_len &&
			    g.src_id == f->src_id && g.tag == f->tag &&
			    g.data == f->data && g.msg_id == f->msg_id &&
			    g.total_len == f->total_len);
	}
	free(payload);
	free(hdr);
}

static void fuzz_frame(const void *buf, size_t len)
{
	struct usb4_frame f;
	struct usb4_wire_hdr hdr;
	enum usb4_wire_verdict v = usb4_wire_parse(buf, len, &f);

	FUZZ_ASSERT(v < USB4_WIRE_VERDICT_MAX && usb4_wire_verdict_names[v]);
	if (len >= sizeof(hdr))
		parse_apart(buf, len, v, &f);
	if (v != USB4_WIRE_OK)
		return;
	FUZZ_ASSERT(sizeof(hdr) + f.payload_len == len);
	FUZZ_ASSERT(f.type > 0 && f.type < USB4_FRAME_TYPE_MAX);
	usb4_wire_build(&hdr, &f);
	FUZZ_ASSERT(!memcmp(&hdr, buf, sizeof(hdr)));
	walk_frame(&f);
}

/* ---- (b) a rel pair over a fake link ---------------------------------- */

struct dgram {
	unsigned char *buf;
	size_t len;
};

struct pair;

struct side {
	struct usb4_rel_peer *rel;
	struct usb4_rel_io io;
	struct pair *pair;
	uint64_t id, peer_id;
	uint32_t isn;
	struct dgram out[QUEUE_MAX];	/* sent, not yet handed to the other */
	unsigned n_out;
	unsigned refuse;	/* offers to refuse; FOREVER: until told */
	uint64_t sent;		/* tagged payloads its rel accepted */
	uint64_t taken;		/* counter of the last tagged one taken */
};

struct pair {
	struct side a, b;
	struct usb4_rel_pool *pool;
	void *squeezed;		/* the harness's pool buffer, or NULL */
	uint64_t now;
	uint64_t key;		/* the tags' MAC key: hash of the input */
	uint64_t epoch;		/* a reopen voids older tags */
	bool injected;		/* a peer got a datagram rel did not make */
};

static struct side *other(struct pair *p, struct side *s)
{
	return s == &p->a ? &p->b : &p->a;
}

/* ---- tags on the payloads of send records ---- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t hash_input(const uint8_t *data, size_t size)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */

	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 0x100000001b3ull;
	return mix64(h ^ size);
}

static uint64_t tag_mac(const struct pair *p, uint64_t sender,
			uint64_t counter)
{
	uint64_t k = mix64(p->key ^ mix64(sender + p->epoch));

	return mix64(k ^ counter);
}

static void tag_make(const struct pair *p, uint64_t sender, uint64_t counter,
		     unsigned char *tag)
{
	uint64_t w[2] = { htole64(counter),
			  htole64(tag_mac(p, sender, counter)) };

	memcpy(tag, w, FUZZ_TAG_LEN);
}

/* True, with the counter, when the payload starts with sender's tag. */
static bool tag_read(const struct pair *p, uint64_t sender,
		     const unsigned char *payload, size_t len,
		     uint64_t *counter)
{
	uint64_t w[2];

	if (len < FUZZ_TAG_LEN)
		return false;
	memcpy(w, payload, FUZZ_TAG_LEN);
	*counter = le64toh(w[0]);
	return *counter && le64toh(w[1]) == tag_mac(p, sender, *counter);
}

/* ---- the fake link and the receiver ---- */

static int fake_xmit(void *ctx, const struct iovec *iov, int count)
{
	struct side *s = ctx;
	size_t len = 0, off = 0;
	unsigned char *buf;

	if (s->n_out == QUEUE_MAX)
		return -FI_EAGAIN;
	for (int i = 0; i < count; i++)
		len += iov[i].iov_len;
	buf = malloc(len ? len : 1);
	FUZZ_ASSERT(buf);
	for (int i = 0; i < count; i++) {
		if (iov[i].iov_len)
			memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	s->out[s->n_out++] = (struct dgram) { buf, len };
	return 0;
}

/* The pieces rel hands up, in one buffer of exactly their size. */
static unsigned char *gather(const struct iovec *pieces, int count,
			     size_t *lenp)
{
	size_t len = 0, off = 0;
	unsigned char *buf;

	for (int i = 0; i < count; i++)
		len += pieces[i].iov_len;
	FUZZ_ASSERT(len <= FUZZ_PAYLOAD_MAX);
	buf = malloc(len ? len : 1);
	FUZZ_ASSERT(buf);
	for (int i = 0; i < count; i++) {
		if (pieces[i].iov_len)
			memcpy(buf + off, pieces[i].iov_base,
			       pieces[i].iov_len);
		off += pieces[i].iov_len;
	}
	*lenp = len;
	return buf;
}

/* What rel may offer s: never a tagged payload taken already or older than
 * one taken; with nothing injected, only the next one. */
static void check_offer(const struct side *s, bool tagged, uint64_t counter)
{
	bool clean = !s->pair->injected;

	FUZZ_ASSERT(tagged || !clean);
	if (!tagged)
		return;
	FUZZ_ASSERT(counter > s->taken);
	FUZZ_ASSERT(counter == s->taken + 1 || !clean);
}

static int fake_deliver(void *ctx, const struct iovec *pieces, int count)
{
	struct side *s = ctx;
	uint64_t counter = 0;
	size_t len, skip;
	unsigned char *payload = gather(pieces, count, &len);
	bool tagged = tag_read(s->pair, s->peer_id, payload, len, &counter);

	check_offer(s, tagged, counter);
	if (s->refuse) {
		if (s->refuse != FUZZ_NOT_READY_FOREVER)
			s->refuse--;
		free(payload);
		return -FI_EAGAIN;
	}
	if (tagged)
		s->taken = counter;
	skip = tagged ? FUZZ_TAG_LEN : 0;
	fuzz_frame(payload + skip, len - skip);
	free(payload);
	return 0;
}

/* ---- the pair ---- */

static void check_side(const struct pair *p, const struct side *s)
{
	FUZZ_ASSERT(usb4_rel_in_flight(s->rel) <= FUZZ_WINDOW);
	FUZZ_ASSERT(usb4_rel_unacked(s->rel) <= FUZZ_WINDOW);
	FUZZ_ASSERT(usb4_rel_undelivered(s->rel) <= FUZZ_WINDOW);
	/* Only a datagram rel did not make takes a live peer down (a
	 * receiver short of pool buffers still answers: regress-no-buffer-
	 * silence). */
	FUZZ_ASSERT(p->injected || !usb4_rel_down(s->rel));
	usb4_rel_deadline(s->rel);
}

static void check_pair(const struct pair *p)
{
	check_side(p, &p->a);
	check_side(p, &p->b);
	FUZZ_ASSERT(usb4_rel_pool_in_use(p->pool) <= FUZZ_POOL_BYTES);
}

/* Hands what `from` sent to `to`, in order; returns how many. */
static unsigned cross(struct pair *p, struct side *from, struct side *to)
{
	struct dgram q[QUEUE_MAX];
	unsigned n = from->n_out;

	memcpy(q, from->out, n * sizeof(q[0]));
	from->n_out = 0;
	for (unsigned i = 0; i < n; i++) {
		usb4_rel_input(to->rel, p->now, q[i].buf, q[i].len, &to->io);
		free(q[i].buf);
	}
	return n;
}

static void pump(struct pair *p)
{
	unsigned moved = 0, n;

	do {
		n = cross(p, &p->a, &p->b) + cross(p, &p->b, &p->a);
		moved += n;
	} while (n && moved < PUMP_MAX);
}

static void tick(struct pair *p, uint64_t ns)
{
	p->now += ns;
	usb4_rel_timer(p->a.rel, p->now, &p->a.io);
	usb4_rel_timer(p->b.rel, p->now, &p->b.io);
	pump(p);
	check_pair(p);
}

static void side_open(struct pair *p, struct side *s)
{
	struct usb4_rel_cfg cfg = {
		.window = FUZZ_WINDOW, .payload_max = FUZZ_PAYLOAD_MAX,
		.rto_initial_ns = 10 * MS, .rto_max_ns = 80 * MS,
		.ack_delay_ns = 1 * MS, .dead_ns = 1000 * MS,
		.isn = s->isn, .pool = p->pool,
	};

	FUZZ_ASSERT(!usb4_rel_peer_open(&s->rel, &cfg, s->id, s->peer_id,
					p->now));
	s->io = (struct usb4_rel_io) {
		.xmit = fake_xmit, .xmit_ctx = s,
		.deliver = fake_deliver, .deliver_ctx = s };
	s->n_out = 0;
	s->sent = 0;
	s->taken = 0;
}

static void side_close(struct side *s)
{
	for (unsigned i = 0; i < s->n_out; i++)
		free(s->out[i].buf);
	s->n_out = 0;
	usb4_rel_peer_close(s->rel);
	s->rel = NULL;
}

/* Sends body from s behind its next tag; the second half by reference
 * (owner `owner`) when nref is 1.  0 when rel took it. */
static int send_tagged(struct pair *p, struct side *s, const uint8_t *body,
		       size_t len, int nref, uint64_t owner)
{
	unsigned char tag[FUZZ_TAG_LEN];
	struct iovec iov[3] = {
		{ tag, FUZZ_TAG_LEN },
		{ (void *) body, len / 2 },
		{ (void *) (body + len / 2), len - len / 2 },
	};
	int ret;

	tag_make(p, s->id, s->sent + 1, tag);
	ret = usb4_rel_send_ref(s->rel, p->now, iov, 3, nref, owner, &s->io);
	if (!ret)
		s->sent++;
	return ret;
}

/* Both peers, a HELLO, HELLO_ACK and one EAGER frame A -> B (after which B
 * expects FUZZ_ISN_A + 1). */
static void pair_open(struct pair *p, uint64_t key)
{
	struct usb4_frame f = {
		.type = USB4_FRAME_EAGER, .payload_len = 5, .total_len = 5,
		.src_id = FUZZ_ID_A, .msg_id = 1,
	};
	_Alignas(8) unsigned char frame[sizeof(struct usb4_wire_hdr) + 5];

	memset(p, 0, sizeof(*p));
	p->now = 1000 * MS;
	p->key = key;
	FUZZ_ASSERT(!usb4_rel_pool_open(&p->pool, FUZZ_POOL_BYTES));
	p->a = (struct side) { .pair = p, .id = FUZZ_ID_A, .peer_id = FUZZ_ID_B,
			       .isn = FUZZ_ISN_A };
	p->b = (struct side) { .pair = p, .id = FUZZ_ID_B, .peer_id = FUZZ_ID_A,
			       .isn = FUZZ_ISN_B };
	side_open(p, &p->a);
	side_open(p, &p->b);
	usb4_wire_build((struct usb4_wire_hdr *) (void *) frame, &f);
	memcpy(frame + sizeof(struct usb4_wire_hdr), "hello", 5);
	FUZZ_ASSERT(!send_tagged(p, &p->a, frame, sizeof(frame), 0, 0));
	pump(p);
	FUZZ_ASSERT(p->b.taken == 1);
}

static void squeeze_release(struct pair *p)
{
	usb4_rel_pool_put(p->pool, p->squeezed);
	p->squeezed = NULL;
}

/* Both peers close; the pool must have every byte back. */
static void pair_close(struct pair *p)
{
	side_close(&p->a);
	side_close(&p->b);
	squeeze_release(p);
	FUZZ_ASSERT(usb4_rel_pool_in_use(p->pool) == 0);
	usb4_rel_pool_close(p->pool);
}

/* Fresh peers, no handshake done; what was in flight is gone. */
static void pair_reopen(struct pair *p)
{
	side_close(&p->a);
	side_close(&p->b);
	p->epoch++;
	side_open(p, &p->a);
	side_open(p, &p->b);
}

static bool side_settled(const struct side *s)
{
	return usb4_rel_down(s->rel) ||
	       (!usb4_rel_unacked(s->rel) && !usb4_rel_undelivered(s->rel));
}

/* Receivers ready, the pool whole, the clock runs until nothing is left to
 * send or deliver; with nothing injected, everything arrived. */
static void pair_drain(struct pair *p)
{
	unsigned ticks = p->injected ? DRAIN_TICKS_INJECTED : DRAIN_TICKS;

	p->a.refuse = 0;
	p->b.refuse = 0;
	squeeze_release(p);
	for (unsigned i = 0; i < ticks; i++) {
		if (side_settled(&p->a) && side_settled(&p->b))
			break;
		tick(p, DRAIN_STEP_NS);
	}
	check_pair(p);
	if (p->injected || usb4_rel_down(p->a.rel) || usb4_rel_down(p->b.rel))
		return;		/* check_pair excused a peer down */
	FUZZ_ASSERT(p->b.taken == p->a.sent && p->a.taken == p->b.sent);
}

/* ---- injected datagrams ---- */

/* The check the datagram's header names: the low half of XXH3 when a
 * DATA or ACK is flagged USB4_REL_F_XXH3 (usb4_rel_check.c), else CRC32C;
 * over the datagram with the field 0, in one call here. */
static uint32_t dgram_crc(const unsigned char *d, size_t len)
{
	struct usb4_wire_rel h;
	unsigned char *copy;
	uint32_t crc;

	memcpy(&h, d, sizeof(h));
	if ((le16toh(h.flags) & USB4_REL_F_XXH3) &&
	    (h.type == USB4_REL_DATA || h.type == USB4_REL_ACK)) {
		copy = dup_exact(d, len);
		memset(copy + offsetof(struct usb4_wire_rel, crc), 0, 4);
		crc = (uint32_t) XXH3_64bits(copy, len);
		free(copy);
		return crc;
	}
	h.crc = 0;
	crc = usb4_crc32c(0, &h, sizeof(h));
	return usb4_crc32c(crc, d + sizeof(h), len - sizeof(h));
}

/* What usb4_rel_peek() must say of the datagram d. */
static void check_head(const unsigned char *d, size_t len,
		       const struct usb4_rel_head *head)
{
	struct usb4_wire_rel h;
	struct usb4_wire_hello hello;
	bool hello_type;

	memcpy(&h, d, sizeof(h));
	hello_type = h.type == USB4_REL_HELLO || h.type == USB4_REL_HELLO_ACK ||
		     h.type == USB4_REL_REJECT;
	FUZZ_ASSERT(head->version == h.version && head->type == h.type &&
		    head->src_id == le64toh(h.src_id) &&
		    head->dst_id == le64toh(h.dst_id));
	FUZZ_ASSERT(head->crc_ok == (le32toh(h.len) == len - sizeof(h) &&
				     le32toh(h.crc) == dgram_crc(d, len)));
	/* proto and features are read from a handshake payload that claims
	 * at least their 8 bytes (an older version's is shorter than ours):
	 * what is there, zeros for the rest. */
	if (!hello_type || le32toh(h.len) < 8) {
		FUZZ_ASSERT(!head->proto && !head->features);
		return;
	}
	memset(&hello, 0, sizeof(hello));
	memcpy(&hello, d + sizeof(h), len - sizeof(h) < sizeof(hello) ?
				      len - sizeof(h) : sizeof(hello));
	FUZZ_ASSERT(head->proto == le16toh(hello.proto) &&
		    head->features == le32toh(hello.features));
}

static bool heads_equal(const struct usb4_rel_head *x,
			const struct usb4_rel_head *y)
{
	return x->version == y->version && x->type == y->type &&
	       x->src_id == y->src_id && x->dst_id == y->dst_id &&
	       x->proto == y->proto && x->features == y->features &&
	       x->crc_ok == y->crc_ok;
}

/* usb4_rel_peek() and usb4_rel_datagram_ids() on a datagram in count
 * pieces; their verdict (and head) must be the whole datagram's. */
static void peek_pieces(const struct iovec *iov, int count, int want,
			const struct usb4_rel_head *whole)
{
	struct usb4_rel_head head;
	uint64_t s, t;

	FUZZ_ASSERT(usb4_rel_peek(iov, count, &head) == want);
	FUZZ_ASSERT(!want ? heads_equal(&head, whole) : 1);
	FUZZ_ASSERT(usb4_rel_datagram_ids_v(iov, count, &s, &t) == want);
	FUZZ_ASSERT(!want ? s == whole->src_id && t == whole->dst_id : 1);
}

/* Peeks at d whole; returns peek's verdict (0: head filled in). */
static int peek_whole(const unsigned char *d, size_t len,
		      struct usb4_rel_head *head)
{
	struct iovec one = { (void *) d, len };
	int ret = usb4_rel_peek(&one, 1, head);
	uint64_t s, t;

	FUZZ_ASSERT(!ret == (len >= sizeof(struct usb4_wire_rel)));
	FUZZ_ASSERT(usb4_rel_datagram_ids(d, len, &s, &t) == ret);
	if (!ret)
		check_head(d, len, head);
	peek_pieces(&one, 1, ret, head);
	return ret;
}

/* The datagram in three pieces, each in a buffer of its own (exact sizes:
 * ASan bounds), cut at cut/8 of it and halfway through the rest. */
static void input_pieces(struct pair *p, struct side *to, unsigned cut,
			 const unsigned char *d, size_t len, int peeked,
			 const struct usb4_rel_head *head)
{
	size_t at[4] = { 0, len * cut / 8, 0, len };
	struct iovec iov[3];

	at[2] = at[1] + (len - at[1]) / 2;
	for (int i = 0; i < 3; i++) {
		iov[i].iov_len = at[i + 1] - at[i];
		iov[i].iov_base = dup_exact(d + at[i], iov[i].iov_len);
	}
	peek_pieces(iov, 3, peeked, head);
	usb4_rel_input_v(to->rel, p->now, iov, 3, &to->io);
	for (int i = 0; i < 3; i++)
		free(iov[i].iov_base);
}

/* Feeds d (exact size) to `to`, whole (cut < 0) or in pieces. */
static void feed(struct pair *p, struct side *to, int cut,
		 const unsigned char *d, size_t len)
{
	struct usb4_rel_head head;
	int peeked = peek_whole(d, len, &head);

	p->injected = true;
	if (cut >= 0)
		input_pieces(p, to, (unsigned) cut, d, len, peeked, &head);
	else
		usb4_rel_input(to->rel, p->now, d, len, &to->io);
	check_pair(p);
}

/* Sets the pair's ids and a correct CRC, as the ctl bits ask. */
static void fix_dgram(unsigned char *d, size_t len, unsigned ctl,
		      uint64_t src, uint64_t dst)
{
	struct usb4_wire_rel h;

	if (len < sizeof(h))
		return;
	memcpy(&h, d, sizeof(h));
	if (!(ctl & FUZZ_BIT_KEEP_IDS)) {
		h.src_id = htole64(src);
		h.dst_id = htole64(dst);
	}
	memcpy(d, &h, sizeof(h));
	if (!(ctl & FUZZ_BIT_KEEP_CRC)) {
		h.crc = htole32(dgram_crc(d, len));
		memcpy(d, &h, sizeof(h));
	}
}

static void inject(struct pair *p, struct side *to, unsigned ctl,
		   const uint8_t *body, size_t len)
{
	unsigned char *d = dup_exact(body, len);
	struct usb4_rel_head head;

	peek_whole(d, len, &head);	/* as it came */
	fix_dgram(d, len, ctl, other(p, to)->id, to->id);
	feed(p, to, ctl & FUZZ_BIT_PIECES ? (int) (ctl >> 5) : -1, d, len);
	free(d);
}

/* ---- control records ---- */

/* Body of a FUZZ_CTL_HELLO record, little-endian; zeros where it is short:
 * how (FUZZ_HELLO_*), seq, window, proto, features, datagram_max. */
#define HELLO_REC_LEN	19u

static uint32_t rd32(const unsigned char *b)
{
	return (uint32_t) b[0] | (uint32_t) b[1] << 8 |
	       (uint32_t) b[2] << 16 | (uint32_t) b[3] << 24;
}

/* The handshake datagram the record describes, from `from` to `to`, into d
 * (USB4_REL_REJECT_LEN bytes); returns its length. */
static size_t hello_build(const struct side *from, const struct side *to,
			  const unsigned char *r, unsigned char *d)
{
	static const uint8_t type[] = { USB4_REL_HELLO, USB4_REL_HELLO_ACK,
					USB4_REL_REJECT };
	unsigned how = r[0];
	struct usb4_wire_rel h = {
		.version = USB4_WIRE_VERSION, .type = type[how & 3],
		.src_id = htole64(from->id), .dst_id = htole64(to->id),
		.seq = htole32(how & FUZZ_HELLO_SEQ ? rd32(r + 1) : from->isn),
		.window = htole32(rd32(r + 5)),
		.len = htole32(sizeof(struct usb4_wire_hello)),
	};
	struct usb4_wire_hello hello = {
		.proto = htole16(how & FUZZ_HELLO_PROTO ?
				 (uint16_t) (r[9] | r[10] << 8) :
				 USB4_WIRE_VERSION),
		.features = htole32(how & FUZZ_HELLO_FEATURES ? rd32(r + 11) :
				    USB4_WIRE_FEATURES),
		.datagram_max = htole32(rd32(r + 15)),
	};

	memcpy(d, &h, sizeof(h));
	memcpy(d + sizeof(h), &hello, sizeof(hello));
	h.crc = htole32(dgram_crc(d, sizeof(h) + sizeof(hello)));
	memcpy(d, &h, sizeof(h));
	return sizeof(h) + sizeof(hello);
}

static void ctl_hello(struct pair *p, struct side *to, const uint8_t *body,
		      size_t len)
{
	unsigned char r[HELLO_REC_LEN] = { 0 };
	unsigned char buf[USB4_REL_REJECT_LEN], *d;
	size_t n;

	memcpy(r, body, len < sizeof(r) ? len : sizeof(r));
	if ((r[0] & 3) == FUZZ_HELLO_BUILT_REJECT)
		n = usb4_rel_reject(buf, other(p, to)->id, to->id);
	else
		n = hello_build(other(p, to), to, r, buf);
	FUZZ_ASSERT(n >= sizeof(struct usb4_wire_rel) &&
		    n <= USB4_REL_REJECT_LEN);
	d = dup_exact(buf, n);
	feed(p, to, r[0] & FUZZ_HELLO_PIECES ? (int) (r[0] >> 6) : -1, d, n);
	free(d);
}

static void control(struct pair *p, unsigned ctl, const uint8_t *body,
		    size_t len)
{
	struct side *s = ctl & FUZZ_CTL_SIDE_B ? &p->b : &p->a;

	switch (ctl >> FUZZ_CTL_SHIFT & 3) {
	case FUZZ_CTL_NOT_READY:
		s->refuse = len ? body[0] : 1;
		break;
	case FUZZ_CTL_HELLO:
		ctl_hello(p, s, body, len);
		break;
	case FUZZ_CTL_SQUEEZE:
		if (p->squeezed)
			squeeze_release(p);
		else
			p->squeezed = usb4_rel_pool_get(p->pool,
				((len ? body[0] : 0) + 1u) * FUZZ_SQUEEZE_UNIT);
		break;
	case FUZZ_CTL_REOPEN:
		pair_reopen(p);
		break;
	}
}

/* ---- the script ---- */

/* References stay valid: the input outlives both rel peers. */
static void send_body(struct pair *p, unsigned ctl, const uint8_t *body,
		      size_t len)
{
	struct side *s = ctl & FUZZ_BIT_FROM_B ? &p->b : &p->a;

	send_tagged(p, s, body, len, ctl & FUZZ_BIT_REF ? 1 : 0, ctl >> 5);
	if (ctl & FUZZ_BIT_COPY_REFS)
		usb4_rel_copy_refs(s->rel, ctl >> 5);
	check_pair(p);
}

static void record(struct pair *p, unsigned ctl, const uint8_t *body,
		   size_t len)
{
	uint64_t step = ctl >> FUZZ_TICK_SHIFT;

	switch (ctl & 3) {
	case FUZZ_REC_TO_B:
		inject(p, &p->b, ctl, body, len);
		break;
	case FUZZ_REC_TO_A:
		inject(p, &p->a, ctl, body, len);
		break;
	case FUZZ_REC_SEND:
		send_body(p, ctl, body, len);
		break;
	default:
		if ((ctl & 7) == FUZZ_REC_CTL)
			control(p, ctl, body, len);
		else
			tick(p, step * step * FUZZ_TICK_US * US);
		break;
	}
}

static void fuzz_rel(const uint8_t *data, size_t size)
{
	struct pair p;
	const uint8_t *body;
	unsigned ctl;
	size_t len;

	pair_open(&p, hash_input(data, size));
	while (fuzz_next_record(&data, &size, &ctl, &body, &len))
		record(&p, ctl, body, len);
	pair_drain(&p);
	pair_close(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct usb4_rel_head head;

	fuzz_frame(data, size);
	peek_whole(data, size, &head);
	fuzz_rel(data, size);
	return 0;
}
