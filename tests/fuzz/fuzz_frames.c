/*
 * libFuzzer target for everything that parses bytes coming off a link:
 *
 *  (a) the whole input as one core frame: usb4_wire_parse(), and for frames
 *      it accepts, a walk over exactly the bytes the core then reads (RTS iov
 *      list, RMA segment list, atomic head and operands, inline payload), so
 *      AddressSanitizer sees any read past what the parser vouched for; plus
 *      the invariant that usb4_wire_build() gives back the header it parsed;
 *
 *  (b) the input as a script of records driving a rel peer pair A <-> B that
 *      has completed a real handshake (and delivered one frame A -> B):
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
 *        ctl & 3 == 3   the clock advances ((ctl >> 2)^2 * 100 us), both
 *                       timers run, queued datagrams cross the fake link
 *
 *      Every payload rel delivers is a core frame and goes through (a).
 *      usb4_rel_datagram_ids() sees every injected body and the whole input.
 *
 * The seed corpus (tests/fuzz/corpus) comes from tests/fuzz/make_corpus.py,
 * which must agree with the ids, ISNs and cfg below (FUZZ_* constants).
 * Build: tests/fuzz/build.sh; run: tests/test_fuzz.py or by hand (see there).
 */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_atomic.h"
#include "usb4_rel.h"
#include "../../prov_usb4/src/wire.h"

/* Shared with make_corpus.py. */
#define FUZZ_ID_A	0xa1a1a1a1a1a1a1a1ull
#define FUZZ_ID_B	0xb2b2b2b2b2b2b2b2ull
#define FUZZ_ISN_A	0xfffffffcu	/* near the wrap on purpose */
#define FUZZ_ISN_B	100u
#define FUZZ_WINDOW	8u
#define FUZZ_PAYLOAD_MAX 512u

#define US		1000ull
#define MS		1000000ull
#define QUEUE_MAX	16u	/* datagrams one direction holds; then EAGAIN */
#define PUMP_MAX	256u	/* datagrams one pump moves at most */
#define REC_HDR		3u

/* Stops the run with a crash libFuzzer reports, when an invariant breaks. */
#define FUZZ_ASSERT(cond) do { if (!(cond)) __builtin_trap(); } while (0)

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

/* ---- (a) frames ------------------------------------------------------- */

/* As usb4_proto.c rts_iovs(): head, then iov_count iovs. */
static void walk_rts(const struct usb4_frame *f)
{
	struct usb4_wire_rts rts;
	struct usb4_wire_iov iov;
	const char *p = f->payload;

	memcpy(&rts, p, sizeof(rts));
	FUZZ_ASSERT(le32toh(rts.iov_count) <= USB4_WIRE_RTS_MAX_IOV);
	for (uint32_t i = 0; i < le32toh(rts.iov_count); i++) {
		memcpy(&iov, p + sizeof(rts) + i * sizeof(iov), sizeof(iov));
		touch(&iov, sizeof(iov));
	}
}

/* As usb4_rma_udp.c pin_segs(): payload_len / 24 segments. */
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

/* As usb4_rma_udp.c atomic_check_req() then atomic_execute(): the head,
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

static void fuzz_frame(const void *buf, size_t len)
{
	struct usb4_frame f;
	struct usb4_wire_hdr hdr;
	enum usb4_wire_verdict v = usb4_wire_parse(buf, len, &f);

	FUZZ_ASSERT(v < USB4_WIRE_VERDICT_MAX && usb4_wire_verdict_names[v]);
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

struct side {
	struct usb4_rel_peer *rel;
	struct usb4_rel_io io;
	struct dgram out[QUEUE_MAX];	/* sent, not yet handed to the other */
	unsigned n_out;
};

static int fake_xmit(void *ctx, const struct iovec *iov, int count)
{
	struct side *s = ctx;
	size_t len = 0, off = 0;
	unsigned char *buf;

	if (s->n_out == QUEUE_MAX)
		return -FI_EAGAIN;
	for (int i = 0; i < count; i++)
		len += iov[i].iov_len;
	buf = malloc(len);
	FUZZ_ASSERT(buf);
	for (int i = 0; i < count; i++) {
		memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	s->out[s->n_out++] = (struct dgram) { buf, len };
	return 0;
}

static void fake_deliver(void *ctx, const struct iovec *pieces, int count)
{
	static unsigned char payload[FUZZ_PAYLOAD_MAX];
	size_t len = 0;

	(void) ctx;
	for (int i = 0; i < count; i++) {
		FUZZ_ASSERT(len + pieces[i].iov_len <= FUZZ_PAYLOAD_MAX);
		memcpy(payload + len, pieces[i].iov_base, pieces[i].iov_len);
		len += pieces[i].iov_len;
	}
	fuzz_frame(payload, len);
}

/* Hands what `from` sent to `to`, in order; returns how many. */
static unsigned cross(struct side *from, struct side *to, uint64_t now)
{
	struct dgram q[QUEUE_MAX];
	unsigned n = from->n_out;

	memcpy(q, from->out, n * sizeof(q[0]));
	from->n_out = 0;
	for (unsigned i = 0; i < n; i++) {
		usb4_rel_input(to->rel, now, q[i].buf, q[i].len, &to->io);
		free(q[i].buf);
	}
	return n;
}

static void pump(struct side *a, struct side *b, uint64_t now)
{
	unsigned moved = 0, n;

	do {
		n = cross(a, b, now) + cross(b, a, now);
		moved += n;
	} while (n && moved < PUMP_MAX);
}

static void side_free(struct side *s)
{
	for (unsigned i = 0; i < s->n_out; i++)
		free(s->out[i].buf);
	usb4_rel_peer_close(s->rel);
}

/* An EAGER frame of five bytes, what A sends during the handshake. */
static void first_frame(unsigned char *buf)
{
	struct usb4_frame f = {
		.type = USB4_FRAME_EAGER, .payload_len = 5, .total_len = 5,
		.src_id = FUZZ_ID_A, .msg_id = 1,
	};

	usb4_wire_build((struct usb4_wire_hdr *) (void *) buf, &f);
	memcpy(buf + sizeof(struct usb4_wire_hdr), "hello", 5);
}

static int pair_open(struct side *a, struct side *b, uint64_t now)
{
	struct usb4_rel_cfg cfg = {
		.window = FUZZ_WINDOW, .payload_max = FUZZ_PAYLOAD_MAX,
		.rto_initial_ns = 10 * MS, .rto_max_ns = 80 * MS,
		.ack_delay_ns = 1 * MS, .dead_ns = 1000 * MS,
	};
	_Alignas(8) unsigned char frame[sizeof(struct usb4_wire_hdr) + 5];
	struct iovec iov = { frame, sizeof(frame) };

	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	a->io = (struct usb4_rel_io) { fake_xmit, a, fake_deliver, a };
	b->io = (struct usb4_rel_io) { fake_xmit, b, fake_deliver, b };
	cfg.isn = FUZZ_ISN_A;
	if (usb4_rel_peer_open(&a->rel, &cfg, FUZZ_ID_A, FUZZ_ID_B, now))
		return -1;
	cfg.isn = FUZZ_ISN_B;
	if (usb4_rel_peer_open(&b->rel, &cfg, FUZZ_ID_B, FUZZ_ID_A, now))
		return -1;
	/* HELLO, HELLO_ACK, then the frame: B expects FUZZ_ISN_A + 1 next. */
	first_frame(frame);
	FUZZ_ASSERT(!usb4_rel_send(a->rel, now, &iov, 1, &a->io));
	pump(a, b, now);
	return 0;
}

/* Sets the pair's ids and a correct CRC, as the ctl bits ask. */
static void fix_dgram(unsigned char *d, size_t len, unsigned ctl,
		      uint64_t src, uint64_t dst)
{
	struct usb4_wire_rel h;
	uint32_t crc;

	if (len < sizeof(h))
		return;
	memcpy(&h, d, sizeof(h));
	if (!(ctl & 8)) {
		h.src_id = htole64(src);
		h.dst_id = htole64(dst);
	}
	if (!(ctl & 4)) {
		h.crc = 0;
		crc = usb4_crc32c(0, &h, sizeof(h));
		h.crc = htole32(usb4_crc32c(crc, d + sizeof(h),
					    len - sizeof(h)));
	}
	memcpy(d, &h, sizeof(h));
}

/* The datagram in three pieces, each in a buffer of its own (exact sizes:
 * ASan bounds), cut at cut/8 of it and halfway through the rest. */
static void input_pieces(struct side *to, unsigned cut, const unsigned char *d,
			 size_t len, uint64_t now)
{
	size_t at[4] = { 0, len * cut / 8, 0, len };
	struct iovec iov[3];
	uint64_t s, t;

	at[2] = at[1] + (len - at[1]) / 2;
	for (int i = 0; i < 3; i++) {
		iov[i].iov_len = at[i + 1] - at[i];
		iov[i].iov_base = malloc(iov[i].iov_len ? iov[i].iov_len : 1);
		FUZZ_ASSERT(iov[i].iov_base);
		memcpy(iov[i].iov_base, d + at[i], iov[i].iov_len);
	}
	usb4_rel_datagram_ids_v(iov, 3, &s, &t);
	usb4_rel_input_v(to->rel, now, iov, 3, &to->io);
	for (int i = 0; i < 3; i++)
		free(iov[i].iov_base);
}

static void inject(struct side *to, unsigned ctl, const uint8_t *body,
		   size_t len, uint64_t src, uint64_t dst, uint64_t now)
{
	unsigned char *d = malloc(len ? len : 1);	/* exact: ASan bounds */
	uint64_t s, t;

	FUZZ_ASSERT(d);
	memcpy(d, body, len);
	usb4_rel_datagram_ids(d, len, &s, &t);
	fix_dgram(d, len, ctl, src, dst);
	if (ctl & 16)
		input_pieces(to, ctl >> 5, d, len, now);
	else
		usb4_rel_input(to->rel, now, d, len, &to->io);
	free(d);
}

/* References stay valid: the input outlives both rel peers. */
static void send_body(struct side *s, unsigned ctl, const uint8_t *body,
		      size_t len, uint64_t now)
{
	struct iovec iov[2] = {
		{ (void *) body, len / 2 },
		{ (void *) (body + len / 2), len - len / 2 },
	};

	usb4_rel_send_ref(s->rel, now, iov, 2, ctl & 8 ? 1 : 0, ctl >> 5,
			  &s->io);
	if (ctl & 16)
		usb4_rel_copy_refs(s->rel, ctl >> 5);
	FUZZ_ASSERT(usb4_rel_in_flight(s->rel) <= FUZZ_WINDOW);
}

static void tick(struct side *a, struct side *b, unsigned step, uint64_t *now)
{
	*now += (uint64_t) step * step * 100 * US;
	usb4_rel_timer(a->rel, *now, &a->io);
	usb4_rel_timer(b->rel, *now, &b->io);
	pump(a, b, *now);
	usb4_rel_deadline(a->rel);
	usb4_rel_deadline(b->rel);
}

static void fuzz_rel(const uint8_t *data, size_t size)
{
	struct side a, b;
	uint64_t now = 1000 * MS;

	if (pair_open(&a, &b, now))
		goto out_close;
	while (size >= REC_HDR) {
		unsigned ctl = data[0];
		size_t len = data[1] | (size_t) data[2] << 8;
		const uint8_t *body = data + REC_HDR;

		size -= REC_HDR;
		if (len > size)
			len = size;
		data = body + len;
		size -= len;
		switch (ctl & 3) {
		case 0:
			inject(&b, ctl, body, len, FUZZ_ID_A, FUZZ_ID_B, now);
			break;
		case 1:
			inject(&a, ctl, body, len, FUZZ_ID_B, FUZZ_ID_A, now);
			break;
		case 2:
			send_body(ctl & 4 ? &b : &a, ctl, body, len, now);
			break;
		case 3:
			tick(&a, &b, ctl >> 2, &now);
			break;
		}
	}
	tick(&a, &b, 0, &now);
out_close:
	side_free(&a);
	side_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t src, dst;

	fuzz_frame(data, size);
	usb4_rel_datagram_ids(data, size, &src, &dst);
	fuzz_rel(data, size);
	return 0;
}
