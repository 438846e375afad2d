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
 * A record is a header word and its body, whole cells, never across the
 * ring's end (a PAD record fills the rest of a lap).  The header word:
 *   bits  0-7   kind (0: not written yet)
 *   bits  8-23  the wire flags (small records)
 *   bits 24-47  bytes: the frame (FULL) or the payload (SMALL*)
 *   bits 48-63  the lap (position / cells), low 16 bits
 * Bodies: FULL the frame; SMALL the tag, then the payload; SMALL_DATA the
 * tag, the data, then the payload (tag and data little-endian, as on the
 * wire).
 *
 * Memory-ordering contract (positions in cells, 64-bit, never wrapping):
 *   - The producer may write cells below freed + cells.  It writes the
 *     body, stores 0 to the header word of the cell behind the record
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
 * The producer is another process.  The consumer masks every position,
 * checks a record's size against the ring's end and the frame limit, and
 * hands a bad record up empty (the core counts it short) and skips to the
 * next lap: it never reads outside the lane, loops or allocates.
 */
#include <string.h>

#include "usb4_shm_layout.h"

enum record_kind {
	RECORD_NONE = 0,
	RECORD_FULL,
	RECORD_SMALL,
	RECORD_SMALL_DATA,
	RECORD_PAD,
};

#define KIND_MASK	0xffu
#define FLAGS_SHIFT	8
#define LEN_SHIFT	24
#define LEN_MASK	0xffffffu
#define LAP_SHIFT	48

/* A lane's cells: the most that fit, up to this, but never fewer than
 * two records of the largest frame.  Small enough that the lines of a
 * window of messages stay in the cores' caches. */
#define PACKED_BYTES_TARGET	(32u << 10)

static size_t cells_of(size_t bytes)
{
	return (bytes + USB4_SHM_CELL - 1) / USB4_SHM_CELL;
}

/* The largest record: a frame of frame_max bytes behind its header. */
static size_t record_max(size_t frame_max)
{
	return cells_of(8 + frame_max);
}

static uint32_t pow2_at_most(size_t v)
{
	uint32_t p = 1;

	while ((size_t) p * 2 <= v && p < (1u << 30))
		p <<= 1;
	return p;
}

uint32_t usb4_shm_packed_cells(size_t area, size_t frame_max)
{
	size_t need = 2 * (record_max(frame_max) + 1);
	uint32_t fit = pow2_at_most(area / USB4_SHM_CELL);
	uint32_t cells = PACKED_BYTES_TARGET / USB4_SHM_CELL;

	while (cells < need && cells < fit)
		cells <<= 1;
	if (cells > fit)
		cells = fit;
	return cells >= need ? cells : 0;
}

bool usb4_shm_packed_cells_ok(uint32_t cells, size_t area, size_t frame_max)
{
	return cells && !(cells & (cells - 1)) &&
	       cells >= 2 * (record_max(frame_max) + 1) &&
	       (size_t) cells * USB4_SHM_CELL <= area;
}

static _Atomic uint64_t *word_at(char *cells, uint64_t off)
{
	return (_Atomic uint64_t *) (void *) (cells + off * USB4_SHM_CELL);
}

static uint64_t header(enum record_kind kind, uint16_t wflags, size_t len,
		       uint64_t lap)
{
	return (uint64_t) kind | (uint64_t) wflags << FLAGS_SHIFT |
	       (uint64_t) len << LEN_SHIFT | lap << LAP_SHIFT;
}

/* ---- producer ---- */

void usb4_shm_packed_start(struct usb4_shm_producer *prod, char *cells,
			   uint32_t ncells, _Atomic uint64_t *freed)
{
	prod->cells = cells;
	prod->freed = freed;
	prod->cell_mask = ncells - 1;
	prod->lap_shift = (uint32_t) __builtin_ctz(ncells);
	prod->pos = 0;
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

/* The record's kind and size for the frame in iov. */
static enum record_kind record_kind(const struct iovec *iov, int count,
				    size_t len, uint64_t from_id,
				    size_t *cells)
{
	const struct usb4_wire_hdr *h = iov[0].iov_base;
	size_t plen = len - sizeof(*h);

	if (!usb4_shm_small_eligible(iov, count, len, from_id, plen)) {
		*cells = cells_of(8 + len);
		return RECORD_FULL;
	}
	if ((le16toh(h->flags) & USB4_WF_CQ_DATA) || h->data) {
		*cells = cells_of(24 + plen);
		return RECORD_SMALL_DATA;
	}
	*cells = cells_of(16 + plen);
	return RECORD_SMALL;
}

/* The body of a record of kind at cell; its header word (returned) is
 * stored after. */
static uint64_t record_write(char *cell, enum record_kind kind,
			     const struct iovec *iov, int count, size_t len,
			     uint64_t lap)
{
	const struct usb4_wire_hdr *h = iov[0].iov_base;
	char *dst = cell + 8;

	if (kind == RECORD_FULL) {
		for (int i = 0; i < count; i++) {
			memcpy(dst, iov[i].iov_base, iov[i].iov_len);
			dst += iov[i].iov_len;
		}
		return header(kind, 0, len, lap);
	}
	memcpy(dst, &h->tag, 8);
	dst += 8;
	if (kind == RECORD_SMALL_DATA) {
		memcpy(dst, &h->data, 8);
		dst += 8;
	}
	usb4_shm_small_gather(dst, iov, count);
	return header(kind, le16toh(h->flags), len - sizeof(*h), lap);
}

int usb4_shm_packed_post(struct usb4_shm_producer *prod,
			 const struct iovec *iov, int count, size_t len,
			 uint64_t from_id)
{
	uint32_t ncells = prod->cell_mask + 1;
	uint64_t off = prod->pos & prod->cell_mask, pad = 0, word;
	size_t n;
	enum record_kind kind = record_kind(iov, count, len, from_id, &n);

	if (off + n > ncells)
		pad = ncells - off;
	if (!room_for(prod, pad + n + 1))	/* + the cell zeroed behind */
		return -FI_EAGAIN;
	if (pad) {
		atomic_store_explicit(word_at(prod->cells, off),
				      header(RECORD_PAD, 0, 0,
					     prod->pos >> prod->lap_shift),
				      memory_order_release);
		prod->pos += pad;
		off = 0;
	}
	word = record_write(prod->cells + off * USB4_SHM_CELL, kind, iov,
			    count, len, prod->pos >> prod->lap_shift);
	if (off + n < ncells)
		atomic_store_explicit(word_at(prod->cells, off + n), 0,
				      memory_order_relaxed);
	atomic_store_explicit(word_at(prod->cells, off), word,
			      memory_order_release);
	prod->pos += n;
	return 0;
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
	uint16_t wflags = (uint16_t) (word >> FLAGS_SHIFT);
	uint64_t tag, data = 0;

	if (wflags & ~USB4_SHM_SMALL_FLAGS)
		return 0;
	memcpy(&tag, cell + 8, 8);
	if (body > 16)
		memcpy(&data, cell + 16, 8);
	usb4_shm_small_header(hdr, wflags, plen, sender_id, tag, data);
	frame[0].iov_base = hdr;
	frame[0].iov_len = sizeof(*hdr);
	frame[1].iov_base = cell + body;
	frame[1].iov_len = plen;
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
	size_t len = (word >> LEN_SHIFT) & LEN_MASK;
	size_t n = 0, body;
	int ret = 0;

	switch (word & KIND_MASK) {
	case RECORD_FULL:
		n = cells_of(8 + len);
		if (len <= frame_max && off + n <= ncells) {
			frame[0].iov_base = cell + 8;
			frame[0].iov_len = len;
			ret = 1;
		}
		break;
	case RECORD_SMALL:
	case RECORD_SMALL_DATA:
		body = (word & KIND_MASK) == RECORD_SMALL_DATA ? 24 : 16;
		n = cells_of(body + len);
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

int usb4_shm_packed_peek(char *cells, uint32_t ncells, size_t frame_max,
			 struct usb4_shm_packed_state *st, uint64_t sender_id,
			 struct iovec *frame, struct usb4_wire_hdr *hdr)
{
	uint32_t shift = (uint32_t) __builtin_ctz(ncells);
	uint64_t pos = atomic_load_explicit(&st->freed, memory_order_relaxed);
	uint64_t word = atomic_load_explicit(word_at(cells, pos & (ncells - 1)),
					     memory_order_acquire);

	if (!(word & KIND_MASK) ||
	    (uint16_t) (word >> LAP_SHIFT) != (uint16_t) (pos >> shift))
		return 0;
	if ((word & KIND_MASK) == RECORD_PAD) {
		/* No lap starts with a pad: a producer that wrote one lies. */
		if (!(pos & (ncells - 1)))
			return record_bad(st, cells, pos, ncells, frame);
		pos = (pos | (ncells - 1)) + 1;
		atomic_store_explicit(&st->freed, pos, memory_order_release);
		word = atomic_load_explicit(word_at(cells, 0),
					    memory_order_acquire);
		if (!(word & KIND_MASK) || (word & KIND_MASK) == RECORD_PAD ||
		    (uint16_t) (word >> LAP_SHIFT) != (uint16_t) (pos >> shift))
			return 0;	/* a pad at 0 is read (bad) next time */
	}
	return record_decode(cells, ncells, frame_max, st, pos, word,
			     sender_id, frame, hdr);
}

void usb4_shm_packed_pop(struct usb4_shm_packed_state *st)
{
	atomic_store_explicit(&st->freed, st->next, memory_order_release);
}
