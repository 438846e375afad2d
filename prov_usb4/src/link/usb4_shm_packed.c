/*
 * Packed lanes of the shm inbox: a lane's bytes as a ring of 16-byte cells
 * that holds records of any size back to back, so several small messages
 * share a cache line, and no word crosses the cores per message but the
 * records themselves.
 *
 * A slotted lane (usb4_shm_lane.c) moves a 64-byte line per message at
 * least, and its producer loads the slot's seq word, which the consumer
 * wrote last: that line crosses the cores twice per message, and each
 * side stalls on it.  Here a small message (an eager frame of tag, CQ data
 * and payload, as usb4_shm_small.c carries) takes 16 + 8 + payload bytes
 * rounded up to cells: two 8-byte messages per line.  The consumer
 * returns space through one counter in the lane header (freed, in cells),
 * which the producer reads only when the space it knew of runs out.
 *
 * A record is a header word (its layout in usb4_shm_packed.h: kind, wire
 * flags, bytes, lap) and its body, whole cells, never across the ring's
 * end (a PAD record fills the rest of a lap).  Bodies: FULL the frame; SMALL the tag, then the payload; SMALL_DATA the
 * tag, the data, then the payload (tag and data little-endian, as on the
 * wire).
 *
 * Memory-ordering contract (positions in cells, 64-bit, never wrapping):
 *   - The producer may write cells below freed + cells.  It writes the
 *     body, makes sure the header word of the cell behind the record is 0
 *     (unless the lap ends there), then stores the header with release.
 *   - The consumer, at position pos, loads the header word at pos with
 *     acquire: a record is complete when its kind is set and its lap is
 *     pos's.  Behind a complete record the producer stored 0 before it, so
 *     bytes of an older lap (a payload that looks like a header) are never
 *     read as one; a lap's first cell held the previous lap's header, whose
 *     lap differs.
 *   - After handing a record up, the consumer stores freed = the position
 *     behind it with release: the producer's later writes follow its reads.
 *
 * The producer zeroes those words ahead, after it published a record:
 * stored before the header, a zero in the next line would hold the
 * header back (stores become visible in order) until that line came over
 * from the consumer, a cross-core round trip per line on the latency
 * path.  Cells in [pos, zeroed) have zero header words; a record whose
 * end lies beyond them zeroes that word before it publishes.
 *
 * The common cases run without calls: a small eager message of up to 64
 * bytes that ends before the lap does (post_small_fast), and a small
 * record on the consumer's side (usb4_shm_packed_peek, inline in the
 * lane's peek).  Packing must not spend the instructions that the lines it
 * saves would give back: per 8-byte message, the link's producer path is
 * about 196 instructions against the slotted lane's 205, its consumer path
 * 208 against 153 (the slotted lane hands a frame of up to 8 bytes up
 * whole; here the consumer rebuilds the wire header).
 *
 * The producer is another process.  The consumer masks every position,
 * checks a record's size against the ring's end and the frame limit, and
 * hands a bad record up empty (the core counts it short) and skips to the
 * next lap: it never reads outside the lane, loops or allocates.
 */
#include <string.h>

#include "usb4_shm_packed.h"

/* Cells zeroed ahead of the producer, in batches of half of it: records
 * of up to 7 cells (88 payload bytes) find the word behind them zeroed
 * already. */
#define ZERO_AHEAD		16
/* The largest payload of the producer's fast path. */
#define FAST_MAX		64

/* The largest record: a frame of frame_max bytes behind its header. */
static size_t record_max(size_t frame_max)
{
	return usb4_shm_cells_of(8 + frame_max);
}

static uint32_t pow2_at_most(size_t v)
{
	uint32_t p = 1;

	while ((size_t) p * 2 <= v && p < (1u << 30))
		p <<= 1;
	return p;
}

/* A lane's cells: all that fit in its area, so it holds about as many
 * frames of the largest size as the slots it replaces: an application may
 * post a window of sends before any receive, and a send the lane cannot
 * take returns -FI_EAGAIN until the receiver takes frames, which it may do
 * only once the application posted a receive behind those sends. */
uint32_t usb4_shm_packed_cells(size_t area, size_t frame_max)
{
	size_t need = 2 * (record_max(frame_max) + 1);
	uint32_t cells = pow2_at_most(area / USB4_SHM_CELL);

	return cells >= need ? cells : 0;
}

bool usb4_shm_packed_cells_ok(uint32_t cells, size_t area, size_t frame_max)
{
	return cells && !(cells & (cells - 1)) &&
	       cells >= 2 * (record_max(frame_max) + 1) &&
	       (size_t) cells * USB4_SHM_CELL <= area;
}

static uint64_t header(enum usb4_shm_record kind, uint16_t wflags, size_t len,
		       uint64_t lap)
{
	return (uint64_t) kind | (uint64_t) wflags << USB4_SHM_REC_FLAGS_SHIFT |
	       (uint64_t) len << USB4_SHM_REC_LEN_SHIFT | lap << USB4_SHM_REC_LAP_SHIFT;
}

/* ---- producer ---- */

void usb4_shm_packed_start(struct usb4_shm_producer *prod, char *cells,
			   uint32_t ncells, _Atomic uint64_t *freed,
			   size_t frame_max)
{
	prod->cells = cells;
	prod->freed = freed;
	prod->cell_mask = ncells - 1;
	prod->lap_shift = (uint32_t) __builtin_ctz(ncells);
	prod->frame_max = frame_max;
	prod->d32 = false;
	prod->pos = 0;
	prod->zeroed = 0;
	prod->limit = ncells;
	prod->state = USB4_SHM_PRODUCER_PACKED;
}

/* Whether n cells from the producer's position are free, asking the
 * consumer only when the space known runs out. */
static bool room_for(struct usb4_shm_producer *prod, uint64_t n)
{
	if (prod->pos + n <= prod->limit)
		return true;
	prod->limit = atomic_load_explicit(prod->freed, memory_order_acquire) +
		      prod->cell_mask + 1;
	return prod->pos + n <= prod->limit;
}

/* Zeroes the header words of the cells up to ZERO_AHEAD ahead of the
 * producer that it may write without asking the consumer. */
static __attribute__((noinline)) void zero_ahead(struct usb4_shm_producer *prod)
{
	uint64_t to = prod->pos + ZERO_AHEAD;

	if (prod->zeroed < prod->pos)
		prod->zeroed = prod->pos;
	if (to > prod->limit)
		to = prod->limit;
	for (; prod->zeroed < to; prod->zeroed++)
		atomic_store_explicit(usb4_shm_word_at(prod->cells,
					      prod->zeroed & prod->cell_mask),
				      0, memory_order_relaxed);
}

/* The record's kind and size for the frame in iov. */
static enum usb4_shm_record record_kind(const struct iovec *iov, int count,
				    size_t len, uint64_t from_id,
				    size_t *cells)
{
	const struct usb4_wire_hdr *h = iov[0].iov_base;
	size_t plen = len - sizeof(*h);

	if (!usb4_shm_small_eligible(iov, count, len, from_id, plen)) {
		*cells = usb4_shm_cells_of(8 + len);
		return USB4_SHM_REC_FULL;
	}
	if ((le16toh(h->flags) & USB4_WF_CQ_DATA) || h->data) {
		*cells = usb4_shm_cells_of(24 + plen);
		return USB4_SHM_REC_SMALL_DATA;
	}
	*cells = usb4_shm_cells_of(16 + plen);
	return USB4_SHM_REC_SMALL;
}

/* The body of a record of kind at cell; its header word (returned) is
 * stored after. */
static uint64_t record_write(char *cell, enum usb4_shm_record kind,
			     const struct iovec *iov, int count, size_t len,
			     uint64_t lap)
{
	const struct usb4_wire_hdr *h = iov[0].iov_base;
	char *dst = cell + 8;

	if (kind == USB4_SHM_REC_FULL) {
		for (int i = 0; i < count; i++) {
			memcpy(dst, iov[i].iov_base, iov[i].iov_len);
			dst += iov[i].iov_len;
		}
		return header(kind, 0, len, lap);
	}
	memcpy(dst, &h->tag, 8);
	dst += 8;
	if (kind == USB4_SHM_REC_SMALL_DATA) {
		memcpy(dst, &h->data, 8);
		dst += 8;
	}
	usb4_shm_small_gather(dst, iov, count);
	return header(kind, le16toh(h->flags), len - sizeof(*h), lap);
}

/* Any frame, anywhere in the lap. */
static int post_any(struct usb4_shm_producer *prod, const struct iovec *iov,
		    int count, uint64_t from_id)
{
	uint32_t ncells = prod->cell_mask + 1;
	uint64_t off = prod->pos & prod->cell_mask, pad = 0, word;
	enum usb4_shm_record kind;
	size_t n, len = 0;

	for (int i = 0; i < count; i++)
		len += iov[i].iov_len;
	if (len > prod->frame_max)
		return -FI_EMSGSIZE;
	kind = record_kind(iov, count, len, from_id, &n);
	if (off + n > ncells)
		pad = ncells - off;
	if (!room_for(prod, pad + n + 1))	/* + the cell zeroed behind */
		return -FI_EAGAIN;
	if (pad) {
		atomic_store_explicit(usb4_shm_word_at(prod->cells, off),
				      header(USB4_SHM_REC_PAD, 0, 0,
					     prod->pos >> prod->lap_shift),
				      memory_order_release);
		prod->pos += pad;
		off = 0;
	}
	word = record_write(prod->cells + off * USB4_SHM_CELL, kind, iov,
			    count, len, prod->pos >> prod->lap_shift);
	if (prod->pos + n >= prod->zeroed && off + n < ncells)
		atomic_store_explicit(usb4_shm_word_at(prod->cells, off + n), 0,
				      memory_order_relaxed);
	atomic_store_explicit(usb4_shm_word_at(prod->cells, off), word,
			      memory_order_release);
	prod->pos += n;
	zero_ahead(prod);
	return 0;
}

/* n (at most FAST_MAX) bytes from s to d, inlined. */
static void copy_upto64(char *d, const char *s, size_t n)
{
	if (n > 32) {
		memcpy(d, s, 32);
		memcpy(d + n - 32, s + n - 32, 32);
	} else {
		usb4_copy_small(d, s, n);
	}
}

/* The header word of a USB4_SHM_REC_SMALL_D32 record. */
static uint64_t small_d32(uint64_t wflags, size_t plen, uint64_t data,
			  uint64_t lap)
{
	return USB4_SHM_REC_SMALL_D32 |
	       (wflags & USB4_SHM_SMALL_FLAGS) << USB4_SHM_REC_D32_FLAGS_SHIFT |
	       (uint64_t) plen << USB4_SHM_REC_D32_LEN_SHIFT |
	       data << USB4_SHM_REC_D32_DATA_SHIFT | lap << USB4_SHM_REC_LAP_SHIFT;
}

/* The wire header's first 8 bytes of a small eager frame of plen bytes,
 * its flags masked out. */
static uint64_t small_head(size_t plen)
{
	return USB4_WIRE_VERSION | (uint64_t) USB4_FRAME_EAGER << 8 |
	       (uint64_t) plen << 32;
}

/*
 * The common case, done in few instructions: a small eager message of two
 * pieces (wire header, at most FAST_MAX payload bytes) that ends before
 * the lap does, in space known free.  What post_any would write, or false
 * (nothing written).
 */
static bool post_small_fast(struct usb4_shm_producer *prod,
			    const struct iovec *iov, int count,
			    uint64_t from_id)
{
	const struct usb4_wire_hdr *h = iov[0].iov_base;
	size_t plen = iov[1].iov_len, body = 16;
	uint64_t head, data, pos = prod->pos, off, n, word;
	char *cell;

	if (count != 2 || iov[0].iov_len != sizeof(*h) || plen > FAST_MAX)
		return false;
	memcpy(&head, h, 8);
	head = le64toh(head);
	if ((head & ~((uint64_t) USB4_SHM_SMALL_FLAGS << 16)) !=
	    small_head(plen) || le64toh(h->src_id) != from_id || h->msg_id ||
	    le64toh(h->total_len) != plen)
		return false;
	data = le64toh(h->data);
	word = header(USB4_SHM_REC_SMALL, (uint16_t) (head >> 16), plen,
		      pos >> prod->lap_shift);
	if (data || (head & (uint64_t) USB4_WF_CQ_DATA << 16)) {
		if (prod->d32 && !(data >> 32))
			word = small_d32(head >> 16, plen, data,
					 pos >> prod->lap_shift);
		else {
			word += USB4_SHM_REC_SMALL_DATA - USB4_SHM_REC_SMALL;
			body = 24;
		}
	}
	n = usb4_shm_cells_of(body + plen);
	off = pos & prod->cell_mask;
	if (off + n > prod->cell_mask || pos + n + 1 > prod->limit)
		return false;
	cell = prod->cells + off * USB4_SHM_CELL;
	memcpy(cell + 8, &h->tag, 8);
	if (body > 16)
		memcpy(cell + 16, &h->data, 8);
	copy_upto64(cell + body, iov[1].iov_base, plen);
	if (pos + n >= prod->zeroed)
		atomic_store_explicit(usb4_shm_word_at(prod->cells, off + n), 0,
				      memory_order_relaxed);
	atomic_store_explicit(usb4_shm_word_at(prod->cells, off), word,
			      memory_order_release);
	prod->pos = pos + n;
	if (prod->zeroed < prod->pos + ZERO_AHEAD / 2)
		zero_ahead(prod);
	return true;
}

int usb4_shm_packed_post(struct usb4_shm_producer *prod,
			 const struct iovec *iov, int count, uint64_t from_id)
{
	if (post_small_fast(prod, iov, count, from_id))
		return 0;
	return post_any(prod, iov, count, from_id);
}

/* ---- consumer ---- */

/* A bad record: handed up empty; the lane goes on at its next lap. */
static int record_bad(struct usb4_shm_packed_state *st, char *cell,
		      uint64_t pos, uint32_t ncells, struct iovec *frame)
{
	st->next = (pos | (ncells - 1)) + 1;
	frame[0].iov_base = cell;
	frame[0].iov_len = 0;	/* the core counts it short */
	return 1;
}

/* The small record at cell (body: its bytes before the payload) as the
 * core's frame; 0 when it carries flags a small frame may not. */
static int small_decode(char *cell, uint64_t word, size_t body, size_t plen,
			uint64_t sender_id, struct usb4_wire_hdr *hdr,
			struct iovec *frame)
{
	uint16_t wflags = (uint16_t) (word >> USB4_SHM_REC_FLAGS_SHIFT);

	if (wflags & ~USB4_SHM_SMALL_FLAGS)
		return 0;
	usb4_shm_packed_small_frame(cell, body, plen, wflags, sender_id, 0,
				    hdr, frame);
	return 2;
}

/* The record at pos (its header word read once), checked against the
 * ring's end and the frame limit. */
static int record_decode(char *cells, uint32_t ncells, size_t frame_max,
			 struct usb4_shm_packed_state *st, uint64_t pos,
			 uint64_t word, uint64_t sender_id,
			 struct iovec *frame, struct usb4_wire_hdr *hdr)
{
	uint64_t off = pos & (ncells - 1);
	char *cell = cells + off * USB4_SHM_CELL;
	size_t len = (word >> USB4_SHM_REC_LEN_SHIFT) & USB4_SHM_REC_LEN_MASK;
	size_t n = 0, body;
	int ret = 0;

	switch (word & USB4_SHM_REC_KIND) {
	case USB4_SHM_REC_FULL:
		n = usb4_shm_cells_of(8 + len);
		if (len <= frame_max && off + n <= ncells) {
			frame[0].iov_base = cell + 8;
			frame[0].iov_len = len;
			ret = 1;
		}
		break;
	case USB4_SHM_REC_SMALL:
	case USB4_SHM_REC_SMALL_DATA:
		body = (word & USB4_SHM_REC_KIND) == USB4_SHM_REC_SMALL_DATA ? 24 : 16;
		n = usb4_shm_cells_of(body + len);
		if (len + sizeof(*hdr) <= frame_max && off + n <= ncells)
			ret = small_decode(cell, word, body, len, sender_id,
					   hdr, frame);
		break;
	}
	if (!ret)
		return record_bad(st, cell, pos, ncells, frame);
	st->next = pos + n;
	return ret;
}

/* Any record but a small one that fits: a pad, a whole frame, or a bad
 * one. */
int usb4_shm_packed_peek_any(char *cells, uint32_t ncells, size_t frame_max,
			     struct usb4_shm_packed_state *st, uint64_t pos,
			     uint64_t word, uint64_t sender_id,
			     struct iovec *frame, struct usb4_wire_hdr *hdr)
{
	if ((word & USB4_SHM_REC_KIND) == USB4_SHM_REC_PAD) {
		/* No lap starts with a pad: a producer that wrote one lies. */
		if (!(pos & (ncells - 1)))
			return record_bad(st, cells, pos, ncells, frame);
		pos = (pos | (ncells - 1)) + 1;
		atomic_store_explicit(&st->freed, pos, memory_order_release);
		word = atomic_load_explicit(usb4_shm_word_at(cells, 0),
					    memory_order_acquire);
		if (!usb4_shm_word_ready(word, pos, ncells) ||
		    (word & USB4_SHM_REC_KIND) == USB4_SHM_REC_PAD)
			return 0;	/* a pad at 0 is read (bad) next time */
	}
	return record_decode(cells, ncells, frame_max, st, pos, word,
			     sender_id, frame, hdr);
}
