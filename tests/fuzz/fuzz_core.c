/*
 * libFuzzer target for the core's frame handling: the sink every link hands
 * its frames to (usb4_dispatch.c on_frame) and the handlers behind it --
 * eager/RTS matching (usb4_match.c), FIN and ACK, CTS and DATA streams
 * (usb4_stream.c), RMA write/read requests and responses and atomics
 * (usb4_rma_frames.c) against a registration table (usb4_mr_table.c).
 *
 * Each input builds a world from nothing and tears it down again:
 *   - a domain with three registered regions of known contents and keys
 *     (FUZZ_KEY_*: read-write, read-only, write-only), addressed from
 *     FUZZ_IOVA_*;
 *   - an endpoint whose links are the two kinds of fuzz_link.c (frames
 *     only, and bulk/one-sided), an AV with FUZZ_ID_P0 (frames) and
 *     FUZZ_ID_P1 (bulk); FUZZ_ID_P2 (frames) and FUZZ_ID_P3 (bulk) are
 *     unknown, so their frames make hidden entries;
 *   - five posted receives (FUZZ_RX_*: tagged directed, tagged wildcard,
 *     untagged wildcard, untagged directed, multi-receive);
 *   - seven operations waiting for their peer (FUZZ_OP_*: a rendezvous
 *     send waiting for CTS, an eager send waiting for its ACK, a rendezvous
 *     over the bulk link waiting for FIN, an RMA write waiting for CTS, an
 *     RMA read waiting for DATA, a fetch atomic and a compare atomic waiting
 *     for ATOMIC_RESP).  Op i has msg_id FUZZ_OP_GEN << 32 | i.
 *
 * The input is a script of records:
 *
 *   record = ctl:u8  len:u16le  body[len]     (len clamped to the input)
 *   ctl & 7 == 0  FRAME: body is a core frame from peer (ctl >> 3) & 3,
 *                 handed to the sink of that peer's link kind, or of the
 *                 other kind with bit 5; unless bit 6 (raw), its version,
 *                 payload_len and src_id are set right first, so
 *                 mutations reach the handlers; bit 7: in two pieces
 *                 (header, payload), as a link that places payloads does
 *           == 1  PROGRESS: usb4_core_progress, ((ctl >> 3) & 3) + 1 times
 *           == 2  ROOM: the link of kind (ctl >> 3) & 1 takes body[0] more
 *                 frames (255 or no body: unlimited), then -FI_EAGAIN
 *           == 3  DOWN: peer (ctl >> 3) & 3 is down on its link (bit 5:
 *                 -FI_ECONNREFUSED, else -FI_EHOSTUNREACH)
 *           == 4  RECV: one more receive (struct fuzz_recv_rec below)
 *           == 5  CANCEL: usb4_core_cancel of receive context body[0]
 *           == 6  CQ: both completion queues are read out and checked
 *           == 7  MISC, what = (ctl >> 3) & 3:
 *                 0  region body[0] % 3 is revoked (no access from then on)
 *                 1  bulk_read/bulk_write answer body[0] % 3: 0, -FI_EIO,
 *                    -FI_EACCES
 *                 2  FUZZ_ID_P2 is inserted into the AV
 *                 3  FUZZ_ID_P0 is removed from the AV
 *
 * After the script: progress, the queues read out, the endpoint closed.
 * Invariants: no sanitizer report; every frame the core posts parses,
 * names the endpoint and goes to one of the four peers (fuzz_link.c);
 * memory outside what may be written (regions with FI_REMOTE_WRITE until
 * revoked, receive buffers, the read and atomic result buffers) keeps its
 * bytes -- the regions sit in one arena between canary gaps; a completion
 * names buffer bytes of its own receive; no operation completes twice and
 * no receive more often than it was posted; after close every link and
 * dest is closed and LeakSanitizer sees nothing.
 *
 * The seeds (tests/fuzz/corpus-core) come from tests/fuzz/make_corpus.py,
 * which reads the FUZZ_* constants below.  Build: tests/fuzz/build.sh
 * --core; run: tests/test_fuzz.py or tests/fuzz/run_hour.sh.
 */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_assert.h"
#include "fuzz_link.h"
#include "fuzz_records.h"
#include "usb4_atomic.h"
#include "usb4_core.h"

/* Shared with make_corpus.py: the peers. */
#define FUZZ_ID_P0	0x5050505050505000ull	/* in the AV, frames link */
#define FUZZ_ID_P1	0x5050505050505001ull	/* in the AV, bulk link */
#define FUZZ_ID_P2	0x5050505050505002ull	/* hidden, frames link */
#define FUZZ_ID_P3	0x5050505050505003ull	/* hidden, bulk link */
#define FUZZ_PEERS	4u

/* Shared with make_corpus.py: the regions. */
#define FUZZ_KEY_RW	0x1111222233334444ull
#define FUZZ_KEY_RO	0x5555666677778888ull
#define FUZZ_KEY_WO	0x9999aaaabbbbccccull
#define FUZZ_IOVA_RW	0x10000u
#define FUZZ_IOVA_RO	0x20000u
#define FUZZ_IOVA_WO	0x30000u
#define FUZZ_MR_LEN	512u	/* each region */
#define FUZZ_REGIONS	3u

/* Shared with make_corpus.py: the posted receives. */
#define FUZZ_RX_TAGGED_P0	0u	/* tag FUZZ_TAG, from P0, 256 bytes */
#define FUZZ_RX_TAGGED_ANY	1u	/* tag FUZZ_TAG_WILD, any, 4096 */
#define FUZZ_RX_MSG_ANY		2u	/* untagged, any, 512 */
#define FUZZ_RX_MSG_P1		3u	/* untagged, from P1, 2048 */
#define FUZZ_RX_MULTI		4u	/* untagged multi-receive, 1024 */
#define FUZZ_RX_POSTED		5u
#define FUZZ_TAG		0x42u
#define FUZZ_TAG_WILD		0x7u	/* ignore FUZZ_TAG_IGNORE */
#define FUZZ_TAG_IGNORE		0xff00u
#define FUZZ_MIN_MULTI		128u

/* Shared with make_corpus.py: the operations, in the order they start. */
#define FUZZ_OP_RNDV		0u	/* tagged FUZZ_RNDV_LEN to P0 */
#define FUZZ_OP_ACKED		1u	/* FUZZ_ACKED_LEN to P0, delivery ack */
#define FUZZ_OP_BULK_RNDV	2u	/* FUZZ_RNDV_LEN to P1 */
#define FUZZ_OP_WRITE		3u	/* FUZZ_WRITE_LEN to P0 */
#define FUZZ_OP_READ		4u	/* FUZZ_READ_LEN from P0 */
#define FUZZ_OP_FETCH		5u	/* FI_SUM uint64 x2, fetch, at P0 */
#define FUZZ_OP_CSWAP		6u	/* FI_CSWAP uint32 x1 at P0 */
#define FUZZ_OPS		7u
#define FUZZ_OP_GEN		1u
#define FUZZ_RNDV_LEN		3000u
#define FUZZ_ACKED_LEN		64u
#define FUZZ_WRITE_LEN		2000u
#define FUZZ_READ_LEN		1500u

/* Shared with make_corpus.py: records (see the top of this file). */
#define FUZZ_REC_FRAME		0u
#define FUZZ_REC_PROGRESS	1u
#define FUZZ_REC_ROOM		2u
#define FUZZ_REC_DOWN		3u
#define FUZZ_REC_RECV		4u
#define FUZZ_REC_CANCEL		5u
#define FUZZ_REC_CQ		6u
#define FUZZ_REC_MISC		7u
#define FUZZ_ARG_SHIFT		3u	/* peer, kind, count, what */
#define FUZZ_BIT_OTHER_LINK	(1u << 5)	/* FRAME */
#define FUZZ_BIT_RAW		(1u << 6)
#define FUZZ_BIT_SPLIT		(1u << 7)
#define FUZZ_BIT_REFUSED	(1u << 5)	/* DOWN */
#define FUZZ_MISC_REVOKE	0u
#define FUZZ_MISC_BULK_ERR	1u
#define FUZZ_MISC_INSERT_P2	2u
#define FUZZ_MISC_REMOVE_P0	3u
/* RECV body (struct fuzz_recv_rec), little-endian, zeros where short:
 * how:u8 (FUZZ_RECV_*), peer:u8 (directed: P0 or P1 by bit 0),
 * len16:u8 (length / 16, at most FUZZ_POOL_SLOT), tag:u64, ignore:u64. */
#define FUZZ_RECV_TAGGED	(1u << 0)
#define FUZZ_RECV_DIRECTED	(1u << 1)
#define FUZZ_RECV_MULTI		(1u << 2)
#define FUZZ_RECV_PEEK		(1u << 3)
#define FUZZ_RECV_CLAIM		(1u << 4)
#define FUZZ_RECV_DISCARD	(1u << 5)
#define FUZZ_RECV_NO_CQE	(1u << 6)
#define FUZZ_RECV_REC_LEN	19u
#define FUZZ_POOL_SLOTS		4u
#define FUZZ_POOL_SLOT		1024u
#define FUZZ_RX_CONTEXTS	16u	/* RECV records cycle through them */

#define HDR_LEN		sizeof(struct usb4_wire_hdr)
#define CANARY		64u	/* gap bytes around every part of the arena */
#define DRAIN_PROGRESS	4u
#define CQ_DEPTH	8u	/* grows as reservations need */

/* A part of the arena: where it is, and whether the core may write it. */
struct part {
	size_t off, len;
	bool writable;
};

/* What a receive context stands for: the buffer it was posted with. */
struct rx_ctx {
	/* Provider scratch: FI_PEEK | FI_CLAIM keeps the claimed message in
	 * the context (man fi_msg: the context is a struct fi_context). */
	struct fi_context fi_ctx;
	unsigned char *buf;
	size_t len;
	bool multi;
	unsigned posted, completed;
};

struct world {
	struct usb4_core_domain dom;
	struct usb4_core_av av;
	struct usb4_core_ep ep;
	struct usb4_cq_queue tx_cq, rx_cq;
	struct usb4_counter tx_cntr, rx_cntr, rd_cntr, wr_cntr;
	struct usb4_counter rem_rd_cntr, rem_wr_cntr;
	fi_addr_t p0, p1, p2;
	unsigned char *arena, *shadow;
	bool *writable;
	size_t arena_len;
	struct usb4_core_mr mr[FUZZ_REGIONS];
	size_t mr_off[FUZZ_REGIONS];
	struct rx_ctx rx[FUZZ_RX_POSTED + FUZZ_RX_CONTEXTS];
	unsigned n_recv_recs;
	unsigned op_done[FUZZ_OPS];	/* completions seen per operation */
	unsigned char op_ctx[FUZZ_OPS];	/* their contexts: &op_ctx[i] */
	size_t pool_off;
	size_t send_off[FUZZ_OPS], res_off[FUZZ_OPS];
};

static const uint64_t peer_ids[FUZZ_PEERS] = {
	FUZZ_ID_P0, FUZZ_ID_P1, FUZZ_ID_P2, FUZZ_ID_P3,
};

/* P0 and P2 on the frames link, P1 and P3 on the bulk link. */
static unsigned kind_of_peer(unsigned peer)
{
	return peer & 1 ? FUZZ_KIND_BULK : FUZZ_KIND_FRAMES;
}

/* ---- the arena ---- */

/* Lays out len more bytes (after a canary gap); their offset. */
static size_t carve(size_t *end, size_t len)
{
	size_t off = (*end + CANARY + 63) & ~(size_t) 63;

	*end = off + len;
	return off;
}

static void mark(struct world *w, size_t off, size_t len, bool writable)
{
	memset(w->writable + off, writable, len);
}

/* Every byte gets a value of its own; a write the core should not make
 * changes one. */
static void arena_fill(struct world *w)
{
	for (size_t i = 0; i < w->arena_len; i++)
		w->arena[i] = (unsigned char) (i * 7 + (i >> 8));
	memcpy(w->shadow, w->arena, w->arena_len);
}

/* Bytes the core may not write are what they were. */
static void arena_check(const struct world *w)
{
	for (size_t i = 0; i < w->arena_len; i++)
		if (!w->writable[i] && w->arena[i] != w->shadow[i]) {
			fprintf(stderr, "arena byte %zu changed\n", i);
			FUZZ_ASSERT(!"memory the core may not write changed");
		}
}

/* A part may no longer be written from now on (a revoked region). */
static void freeze(struct world *w, size_t off, size_t len)
{
	memcpy(w->shadow + off, w->arena + off, len);
	mark(w, off, len, false);
}

/* ---- completions ---- */

static void check_rx_cqe(struct world *w, void *context, const void *buf,
			 size_t len)
{
	struct rx_ctx *rx = context;
	const unsigned char *b = buf;

	FUZZ_ASSERT(rx >= w->rx && rx < w->rx + FUZZ_RX_POSTED +
		    FUZZ_RX_CONTEXTS);
	rx->completed++;
	FUZZ_ASSERT(rx->multi || rx->completed <= rx->posted);
	if (!len || !b)		/* an error, or a peek: no bytes placed */
		return;
	FUZZ_ASSERT(b >= rx->buf && len <= rx->len &&
		    (size_t) (b - rx->buf) <= rx->len - len);
}

static void check_tx_cqe(struct world *w, void *context)
{
	unsigned char *c = context;

	if (!c)
		return;
	FUZZ_ASSERT(c >= w->op_ctx && c < w->op_ctx + FUZZ_OPS);
	FUZZ_ASSERT(++w->op_done[c - w->op_ctx] == 1);
}

/* Takes the entry peeked at off the queue, as a CQ read does. */
static void cq_take_one(struct usb4_cq_queue *q)
{
	struct fi_cq_tagged_entry entry;

	FUZZ_ASSERT(usb4_cq_queue_take(q, &entry, sizeof(entry), NULL, 1) == 1);
}

/* Reads out one queue; rx: entries name receives (or remote writes). */
static void cq_drain(struct world *w, struct usb4_cq_queue *q, bool rx)
{
	const struct usb4_cqe *e;
	const struct usb4_cqe_err *ee;

	while ((e = usb4_cq_queue_peek(q))) {
		if (rx && e->op_context)
			check_rx_cqe(w, e->op_context, e->buf, e->len);
		else if (!rx)
			check_tx_cqe(w, e->op_context);
		cq_take_one(q);
	}
	while ((ee = usb4_cq_queue_peek_err(q))) {
		FUZZ_ASSERT(ee->err.err > 0);
		if (rx && ee->err.op_context)
			check_rx_cqe(w, ee->err.op_context, NULL, 0);
		else if (!rx)
			check_tx_cqe(w, ee->err.op_context);
		usb4_cq_queue_pop_err(q);
	}
}

static void cqs_drain(struct world *w)
{
	cq_drain(w, &w->tx_cq, false);
	cq_drain(w, &w->rx_cq, true);
}

/* ---- the world ---- */

static const uint64_t region_keys[FUZZ_REGIONS] = {
	FUZZ_KEY_RW, FUZZ_KEY_RO, FUZZ_KEY_WO,
};
static const uint64_t region_iovas[FUZZ_REGIONS] = {
	FUZZ_IOVA_RW, FUZZ_IOVA_RO, FUZZ_IOVA_WO,
};
static const uint64_t region_access[FUZZ_REGIONS] = {
	FI_REMOTE_READ | FI_REMOTE_WRITE, FI_REMOTE_READ, FI_REMOTE_WRITE,
};

/* Receives posted at the start: flags, directed to (0 any, 1 P0, 2 P1),
 * tag, ignore, length. */
static const struct {
	uint64_t flags;
	unsigned from;
	uint64_t tag, ignore;
	size_t len;
} rx_plan[FUZZ_RX_POSTED] = {
	[FUZZ_RX_TAGGED_P0] = { FI_TAGGED, 1, FUZZ_TAG, 0, 256 },
	[FUZZ_RX_TAGGED_ANY] = { FI_TAGGED, 0, FUZZ_TAG_WILD, FUZZ_TAG_IGNORE,
				 4096 },
	[FUZZ_RX_MSG_ANY] = { FI_MSG, 0, 0, 0, 512 },
	[FUZZ_RX_MSG_P1] = { FI_MSG, 2, 0, 0, 2048 },
	[FUZZ_RX_MULTI] = { FI_MSG | FI_MULTI_RECV, 0, 0, 0, 1024 },
};

static const size_t op_send_len[FUZZ_OPS] = {
	[FUZZ_OP_RNDV] = FUZZ_RNDV_LEN, [FUZZ_OP_ACKED] = FUZZ_ACKED_LEN,
	[FUZZ_OP_BULK_RNDV] = FUZZ_RNDV_LEN, [FUZZ_OP_WRITE] = FUZZ_WRITE_LEN,
	[FUZZ_OP_FETCH] = 16, [FUZZ_OP_CSWAP] = 8,	/* operands, compares */
};
static const size_t op_res_len[FUZZ_OPS] = {
	[FUZZ_OP_READ] = FUZZ_READ_LEN, [FUZZ_OP_FETCH] = 16,
	[FUZZ_OP_CSWAP] = 4,
};

static void arena_layout(struct world *w)
{
	size_t end = 0;

	for (unsigned r = 0; r < FUZZ_REGIONS; r++)
		w->mr_off[r] = carve(&end, FUZZ_MR_LEN);
	for (unsigned i = 0; i < FUZZ_RX_POSTED; i++)
		w->rx[i].len = rx_plan[i].len,
		w->rx[i].buf = (void *) carve(&end, rx_plan[i].len);
	w->pool_off = carve(&end, FUZZ_POOL_SLOTS * FUZZ_POOL_SLOT);
	for (unsigned i = 0; i < FUZZ_OPS; i++) {
		w->send_off[i] = carve(&end, op_send_len[i]);
		w->res_off[i] = carve(&end, op_res_len[i]);
	}
	w->arena_len = end + CANARY;
}

static void arena_open(struct world *w)
{
	arena_layout(w);
	w->arena = malloc(w->arena_len);
	w->shadow = malloc(w->arena_len);
	w->writable = calloc(w->arena_len, sizeof(bool));
	FUZZ_ASSERT(w->arena && w->shadow && w->writable);
	arena_fill(w);
	for (unsigned r = 0; r < FUZZ_REGIONS; r++)
		mark(w, w->mr_off[r], FUZZ_MR_LEN,
		     region_access[r] & FI_REMOTE_WRITE);
	for (unsigned i = 0; i < FUZZ_RX_POSTED; i++) {
		size_t off = (size_t) w->rx[i].buf;

		w->rx[i].buf = w->arena + off;
		mark(w, off, w->rx[i].len, true);
	}
	mark(w, w->pool_off, FUZZ_POOL_SLOTS * FUZZ_POOL_SLOT, true);
	for (unsigned i = 0; i < FUZZ_OPS; i++)
		mark(w, w->res_off[i], op_res_len[i], true);
}

static void regions_publish(struct world *w)
{
	FUZZ_ASSERT(!usb4_core_domain_open(&w->dom, 8));
	for (unsigned r = 0; r < FUZZ_REGIONS; r++)
		FUZZ_ASSERT(!usb4_core_mr_publish(&w->dom, region_keys[r],
						  w->arena + w->mr_off[r],
						  FUZZ_MR_LEN, region_iovas[r],
						  region_access[r], &w->mr[r]));
}

static fi_addr_t av_insert(struct world *w, uint64_t id, unsigned kind)
{
	struct usb4_wire_addr addr;
	fi_addr_t a;

	fuzz_link_addr(&addr, kind, id);
	FUZZ_ASSERT(!usb4_core_av_insert(&w->av, &addr, &a));
	return a;
}

static void ep_open(struct world *w)
{
	struct usb4_core_ep *ep = &w->ep;

	FUZZ_ASSERT(!usb4_cq_queue_init(&w->tx_cq, CQ_DEPTH, NULL));
	FUZZ_ASSERT(!usb4_cq_queue_init(&w->rx_cq, CQ_DEPTH, NULL));
	FUZZ_ASSERT(!usb4_core_av_init(&w->av, 4));
	w->p0 = av_insert(w, FUZZ_ID_P0, FUZZ_KIND_FRAMES);
	w->p1 = av_insert(w, FUZZ_ID_P1, FUZZ_KIND_BULK);
	w->p2 = FI_ADDR_NOTAVAIL;
	FUZZ_ASSERT(!usb4_core_ep_open(ep, FI_MSG | FI_TAGGED | FI_RMA |
				       FI_ATOMIC | FI_DIRECTED_RECV |
				       FI_SOURCE, &w->dom));
	ep->av = &w->av;
	ep->tx_cq = &w->tx_cq;
	ep->rx_cq = &w->rx_cq;
	ep->tx_cntr = &w->tx_cntr;
	ep->rx_cntr = &w->rx_cntr;
	ep->rd_cntr = &w->rd_cntr;
	ep->wr_cntr = &w->wr_cntr;
	ep->rem_rd_cntr = &w->rem_rd_cntr;
	ep->rem_wr_cntr = &w->rem_wr_cntr;
	ep->min_multi_recv = FUZZ_MIN_MULTI;
}

static fi_addr_t plan_src(const struct world *w, unsigned from)
{
	return from == 1 ? w->p0 : from == 2 ? w->p1 : FI_ADDR_UNSPEC;
}

static void recvs_post(struct world *w)
{
	for (unsigned i = 0; i < FUZZ_RX_POSTED; i++) {
		struct iovec iov = { w->rx[i].buf, w->rx[i].len };
		struct usb4_recv_args a = {
			.iov = &iov, .iov_count = 1,
			.src = plan_src(w, rx_plan[i].from),
			.tag = rx_plan[i].tag, .ignore = rx_plan[i].ignore,
			.context = &w->rx[i],
			.flags = rx_plan[i].flags | FI_COMPLETION,
		};

		w->rx[i].multi = rx_plan[i].flags & FI_MULTI_RECV;
		FUZZ_ASSERT(!usb4_core_recv(&w->ep, &a));
		w->rx[i].posted = 1;
	}
}

static void send_start(struct world *w, unsigned op, fi_addr_t dest,
		       uint64_t flags)
{
	struct iovec iov = { w->arena + w->send_off[op], op_send_len[op] };
	struct usb4_send_args a = {
		.iov = &iov, .iov_count = 1, .dest = dest, .tag = FUZZ_TAG,
		.context = &w->op_ctx[op], .flags = flags | FI_COMPLETION,
	};

	FUZZ_ASSERT(!usb4_core_send(&w->ep, &a));
}

static void rma_start(struct world *w, unsigned op, uint64_t flags,
		      size_t off, size_t len)
{
	struct iovec iov = { w->arena + off, len };
	struct fi_rma_iov rma = { FUZZ_IOVA_RW, len, FUZZ_KEY_RW };
	struct usb4_rma_args a = {
		.iov = &iov, .iov_count = 1, .rma_iov = &rma, .rma_count = 1,
		.dest = w->p0, .context = &w->op_ctx[op],
		.flags = flags | FI_COMPLETION,
	};

	FUZZ_ASSERT(!usb4_core_rma(&w->ep, &a));
}

static void atomic_start(struct world *w, unsigned op, int kind,
			 enum fi_datatype dt, enum fi_op fop, size_t count)
{
	size_t size = usb4_atomic_size(dt);
	unsigned char *src = w->arena + w->send_off[op];
	struct fi_ioc s = { src, count }, c = { src + count * size, count };
	struct fi_ioc r = { w->arena + w->res_off[op], count };
	struct fi_rma_ioc rma = { FUZZ_IOVA_RW, count, FUZZ_KEY_RW };
	struct usb4_atomic_args a = {
		.kind = kind, .dt = dt, .op = fop,
		.src = &s, .src_count = 1, .res = &r, .res_count = 1,
		.cmp = &c, .cmp_count = kind == USB4_ATOMIC_COMPARE,
		.rma = &rma, .rma_count = 1, .dest = w->p0,
		.context = &w->op_ctx[op], .flags = FI_COMPLETION,
	};

	FUZZ_ASSERT(!usb4_core_atomic(&w->ep, &a));
}

/* In the order of FUZZ_OP_*: op i gets index i, generation 1. */
static void ops_start(struct world *w)
{
	send_start(w, FUZZ_OP_RNDV, w->p0, FI_TAGGED);
	send_start(w, FUZZ_OP_ACKED, w->p0, FI_MSG | FI_DELIVERY_COMPLETE);
	send_start(w, FUZZ_OP_BULK_RNDV, w->p1, FI_MSG);
	rma_start(w, FUZZ_OP_WRITE, FI_WRITE, w->send_off[FUZZ_OP_WRITE],
		  FUZZ_WRITE_LEN);
	rma_start(w, FUZZ_OP_READ, FI_READ, w->res_off[FUZZ_OP_READ],
		  FUZZ_READ_LEN);
	atomic_start(w, FUZZ_OP_FETCH, USB4_ATOMIC_FETCH, FI_UINT64, FI_SUM, 2);
	atomic_start(w, FUZZ_OP_CSWAP, USB4_ATOMIC_COMPARE, FI_UINT32, FI_CSWAP,
		     1);
}

/* Whoever the core answers is one of the four peers. */
static void on_post(unsigned kind, uint64_t dest_id, const void *frame,
		    size_t len)
{
	bool known = false;

	for (unsigned p = 0; p < FUZZ_PEERS; p++)
		known |= dest_id == peer_ids[p];
	FUZZ_ASSERT(known);
}

static void world_open(struct world *w)
{
	memset(w, 0, sizeof(*w));
	fuzz_link_reset(on_post);
	arena_open(w);
	regions_publish(w);
	ep_open(w);
	recvs_post(w);
	ops_start(w);
}

static void world_close(struct world *w)
{
	for (unsigned i = 0; i < DRAIN_PROGRESS; i++)
		usb4_core_progress(&w->ep);
	cqs_drain(w);
	usb4_core_ep_close(&w->ep);
	usb4_core_ep_close_links(&w->ep);
	usb4_core_av_fini(&w->av);
	FUZZ_ASSERT(fuzz_link_open_count() == 0);
	usb4_cq_queue_fini(&w->tx_cq);
	usb4_cq_queue_fini(&w->rx_cq);
	usb4_core_domain_close(&w->dom);
	arena_check(w);
	free(w->arena);
	free(w->shadow);
	free(w->writable);
}

/* ---- records ---- */

/* The frame as the record says, in one or two buffers of exact size. */
static void rec_frame(struct world *w, unsigned ctl, const uint8_t *body,
		      size_t len)
{
	unsigned peer = (ctl >> FUZZ_ARG_SHIFT) & 3;
	unsigned kind = kind_of_peer(peer) ^
			(ctl & FUZZ_BIT_OTHER_LINK ? 1u : 0u);
	unsigned char *buf = malloc(len ? len : 1);
	struct iovec iov[2] = { { buf, len } };
	int count = 1;

	FUZZ_ASSERT(buf);
	memcpy(buf, body, len);
	if (!(ctl & FUZZ_BIT_RAW) && len >= HDR_LEN) {
		struct usb4_wire_hdr h;

		memcpy(&h, buf, sizeof(h));
		h.version = USB4_WIRE_VERSION;
		h.payload_len = htole32((uint32_t) (len - HDR_LEN));
		h.src_id = htole64(peer_ids[peer]);
		memcpy(buf, &h, sizeof(h));
	}
	if ((ctl & FUZZ_BIT_SPLIT) && len >= HDR_LEN) {
		iov[1].iov_len = len - HDR_LEN;
		iov[1].iov_base = malloc(iov[1].iov_len ? iov[1].iov_len : 1);
		FUZZ_ASSERT(iov[1].iov_base);
		memcpy(iov[1].iov_base, buf + HDR_LEN, iov[1].iov_len);
		iov[0].iov_len = HDR_LEN;
		iov[0].iov_base = realloc(buf, HDR_LEN);	/* exact size */
		FUZZ_ASSERT(iov[0].iov_base);
		count = 2;
	}
	fuzz_link_deliver(kind, peer_ids[peer], iov, count);
	for (int i = 0; i < count; i++)
		free(iov[i].iov_base);
}

static void rec_recv(struct world *w, const uint8_t *body, size_t len)
{
	uint8_t r[FUZZ_RECV_REC_LEN] = { 0 };
	unsigned k = w->n_recv_recs++ % FUZZ_RX_CONTEXTS;
	struct rx_ctx *rx = &w->rx[FUZZ_RX_POSTED + k];
	uint64_t tag, ignore;
	struct iovec iov;
	struct usb4_recv_args a;

	memcpy(r, body, len < sizeof(r) ? len : sizeof(r));
	memcpy(&tag, r + 3, 8);
	memcpy(&ignore, r + 11, 8);
	/* A context keeps the buffer of its first receive: one posted again
	 * while an earlier one may still complete must not change what that
	 * completion is checked against. */
	if (!rx->posted) {
		rx->buf = w->arena + w->pool_off +
			  (k % FUZZ_POOL_SLOTS) * FUZZ_POOL_SLOT;
		rx->len = (size_t) r[2] * 16 < FUZZ_POOL_SLOT ?
			  (size_t) r[2] * 16 : FUZZ_POOL_SLOT;
	}
	rx->multi |= !!(r[0] & FUZZ_RECV_MULTI);
	iov = (struct iovec) { rx->buf, rx->len };
	a = (struct usb4_recv_args) {
		.iov = &iov, .iov_count = 1,
		.src = r[0] & FUZZ_RECV_DIRECTED ? (r[1] & 1 ? w->p1 : w->p0) :
						   FI_ADDR_UNSPEC,
		.tag = le64toh(tag), .ignore = le64toh(ignore), .context = rx,
		.flags = (r[0] & FUZZ_RECV_TAGGED ? FI_TAGGED : FI_MSG) |
			 (r[0] & FUZZ_RECV_MULTI ? FI_MULTI_RECV : 0) |
			 (r[0] & FUZZ_RECV_PEEK ? FI_PEEK : 0) |
			 (r[0] & FUZZ_RECV_CLAIM ? FI_CLAIM : 0) |
			 (r[0] & FUZZ_RECV_DISCARD ? FI_DISCARD : 0) |
			 (r[0] & FUZZ_RECV_NO_CQE ? 0 : FI_COMPLETION),
	};
	if (!usb4_core_recv(&w->ep, &a))
		rx->posted++;
}

static void rec_cancel(struct world *w, const uint8_t *body, size_t len)
{
	unsigned k = len ? body[0] % (FUZZ_RX_POSTED + FUZZ_RX_CONTEXTS) : 0;

	usb4_core_cancel(&w->ep, &w->rx[k]);
}

static void misc_revoke(struct world *w, unsigned r)
{
	if (!w->mr[r].published)
		return;
	usb4_mr_table_revoke(w->dom.mrs, w->mr[r].slot);
	usb4_core_ep_forget_region(&w->ep, w->mr[r].slot);
	w->mr[r].published = false;
	freeze(w, w->mr_off[r], FUZZ_MR_LEN);
}

static void rec_misc(struct world *w, unsigned what, const uint8_t *body,
		     size_t len)
{
	static const int bulk_errs[] = { 0, -FI_EIO, -FI_EACCES };
	unsigned arg = len ? body[0] : 0;

	switch (what) {
	case FUZZ_MISC_REVOKE:
		misc_revoke(w, arg % FUZZ_REGIONS);
		break;
	case FUZZ_MISC_BULK_ERR:
		fuzz_link_set_bulk_err(bulk_errs[arg % 3]);
		break;
	case FUZZ_MISC_INSERT_P2:
		if (w->p2 == FI_ADDR_NOTAVAIL)
			w->p2 = av_insert(w, FUZZ_ID_P2, FUZZ_KIND_FRAMES);
		break;
	case FUZZ_MISC_REMOVE_P0:
		usb4_core_av_remove(&w->av, w->p0);
		break;
	}
}

static void record(struct world *w, unsigned ctl, const uint8_t *body,
		   size_t len)
{
	unsigned arg = ctl >> FUZZ_ARG_SHIFT;

	switch (ctl & 7) {
	case FUZZ_REC_FRAME:
		rec_frame(w, ctl, body, len);
		break;
	case FUZZ_REC_PROGRESS:
		for (unsigned i = 0; i <= (arg & 3); i++)
			usb4_core_progress(&w->ep);
		break;
	case FUZZ_REC_ROOM:
		fuzz_link_set_room(arg & 1, !len || body[0] == 255 ?
				   FUZZ_ROOM_UNLIMITED : body[0]);
		break;
	case FUZZ_REC_DOWN:
		fuzz_link_peer_down(kind_of_peer(arg & 3), peer_ids[arg & 3],
				    ctl & FUZZ_BIT_REFUSED ?
				    -FI_ECONNREFUSED : -FI_EHOSTUNREACH);
		break;
	case FUZZ_REC_RECV:
		rec_recv(w, body, len);
		break;
	case FUZZ_REC_CANCEL:
		rec_cancel(w, body, len);
		break;
	case FUZZ_REC_CQ:
		cqs_drain(w);
		break;
	case FUZZ_REC_MISC:
		rec_misc(w, arg & 3, body, len);
		break;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Small pools: each input opens an endpoint. */
	usb4_params.tx_size = 16;
	usb4_params.rx_size = 16;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct world w;
	const uint8_t *body;
	unsigned ctl;
	size_t len;

	world_open(&w);
	while (fuzz_next_record(&data, &size, &ctl, &body, &len))
		record(&w, ctl, body, len);
	world_close(&w);
	return 0;
}
