/*
 * Packed lanes of the shm inbox (usb4_shm_packed.c, which says how they
 * work): the record format, and the consumer's common case inline, where
 * the owner takes a frame from a lane (usb4_shm_lane.c).
 */
#ifndef USB4_SHM_PACKED_H
#define USB4_SHM_PACKED_H

#include "usb4_shm_layout.h"

#define USB4_SHM_CELL		16

/* The consumer's side of a packed lane, in its lane header. */
struct usb4_shm_packed_state {
	_Atomic uint64_t freed;	/* cells taken: the producer may write below
				 * freed + cells */
	uint64_t next;		/* owner only: behind the record peeked */
};

/* A record's header word:
 *   bits  0-7   kind (0: not written yet)
 *   bits  8-23  the wire flags (small records)
 *   bits 24-47  bytes: the frame (FULL) or the payload (SMALL*)
 *   bits 48-63  the lap (position / cells), low 16 bits */
enum usb4_shm_record {
	USB4_SHM_REC_NONE = 0,
	USB4_SHM_REC_FULL,
	USB4_SHM_REC_SMALL,
	USB4_SHM_REC_SMALL_DATA,
	USB4_SHM_REC_PAD,
	USB4_SHM_REC_SMALL_D32,	/* laid out apart, below */
};

#define USB4_SHM_REC_KIND	0xffu
#define USB4_SHM_REC_FLAGS_SHIFT	8
#define USB4_SHM_REC_LEN_SHIFT	24
#define USB4_SHM_REC_LEN_MASK	0xffffffu
#define USB4_SHM_REC_LAP_SHIFT	48

/* A small record whose CQ data fits 32 bits carries it in its header word
 * (to owners that say USB4_SHM_PACKED_D32): an 8-byte tag and up to 16
 * payload bytes in two cells.  Its header word:
 *   bits  0-3   USB4_SHM_REC_SMALL_D32 (bits 4-7 of the other kinds are 0)
 *   bits  4-5   the wire flags (USB4_SHM_SMALL_FLAGS)
 *   bits  6-15  payload bytes
 *   bits 16-47  the data
 *   bits 48-63  the lap
 * Its body: the tag, then the payload. */
#define USB4_SHM_REC_D32_KIND	0xfu
#define USB4_SHM_REC_D32_FLAGS_SHIFT	4
#define USB4_SHM_REC_D32_LEN_SHIFT	6
#define USB4_SHM_REC_D32_LEN_MAX	0x3ffu
#define USB4_SHM_REC_D32_DATA_SHIFT	16

static inline size_t usb4_shm_cells_of(size_t bytes)
{
	return (bytes + USB4_SHM_CELL - 1) / USB4_SHM_CELL;
}

static inline _Atomic uint64_t *usb4_shm_word_at(char *cells, uint64_t off)
{
	return (_Atomic uint64_t *) (void *) (cells + off * USB4_SHM_CELL);
}

/* A record's header word at pos is complete: set, and of pos's lap. */
static inline bool usb4_shm_word_ready(uint64_t word, uint64_t pos,
				       uint32_t ncells)
{
	return (word & USB4_SHM_REC_KIND) &&
	       (uint16_t) (word >> USB4_SHM_REC_LAP_SHIFT) ==
	       (uint16_t) (pos >> __builtin_ctz(ncells));
}

/* Cells of a packed lane in area bytes for frames of frame_max; 0 when
 * two of the largest records do not fit. */
uint32_t usb4_shm_packed_cells(size_t area, size_t frame_max);
/* A producer's check of an owner's packed_cells. */
bool usb4_shm_packed_cells_ok(uint32_t cells, size_t area, size_t frame_max);
/* Producer: from now on posts records of frames of up to frame_max bytes
 * into ncells cells at cells. */
void usb4_shm_packed_start(struct usb4_shm_producer *prod, char *cells,
			   uint32_t ncells, _Atomic uint64_t *freed,
			   size_t frame_max);
/* Producer: 0, -FI_EAGAIN (no room) or -FI_EMSGSIZE. */
int usb4_shm_packed_post(struct usb4_shm_producer *prod,
			 const struct iovec *iov, int count, uint64_t from_id);
/* Consumer: the record at pos (its header word read once, complete) that
 * usb4_shm_packed_peek does not take inline. */
int usb4_shm_packed_peek_any(char *cells, uint32_t ncells, size_t frame_max,
			     struct usb4_shm_packed_state *st, uint64_t pos,
			     uint64_t word, uint64_t sender_id,
			     struct iovec *frame, struct usb4_wire_hdr *hdr);


/* The small record at cell as the core's frame (count 2): the wire header
 * rebuilt in hdr from the record's tag and, with body > 16, its data (else
 * data as given), and the payload of len bytes behind body where it lies. */
static inline void usb4_shm_packed_small_frame(char *cell, size_t body,
					       size_t len, uint16_t wflags,
					       uint64_t sender_id,
					       uint64_t data,
					       struct usb4_wire_hdr *hdr,
					       struct iovec *frame)
{
	uint64_t tag;

	memcpy(&tag, cell + 8, 8);
	if (body > 16)
		memcpy(&data, cell + 16, 8);
	usb4_shm_small_header(hdr, wflags, len, sender_id, tag, data);
	frame[0].iov_base = hdr;
	frame[0].iov_len = sizeof(*hdr);
	frame[1].iov_base = cell + body;
	frame[1].iov_len = len;
}
/* Consumer: as usb4_shm_ring_peek, for a packed lane. */
static inline int usb4_shm_packed_peek(char *cells, uint32_t ncells,
				       size_t frame_max,
				       struct usb4_shm_packed_state *st,
				       uint64_t sender_id, struct iovec *frame,
				       struct usb4_wire_hdr *hdr)
{
	uint64_t pos = atomic_load_explicit(&st->freed, memory_order_relaxed);
	uint64_t off = pos & (ncells - 1);
	uint64_t word = atomic_load_explicit(usb4_shm_word_at(cells, off),
					     memory_order_acquire);
	size_t len = (word >> USB4_SHM_REC_LEN_SHIFT) & USB4_SHM_REC_LEN_MASK;
	size_t body = 16, n;
	char *cell = cells + off * USB4_SHM_CELL;
	uint64_t data = 0;

	uint16_t wflags = (uint16_t) (word >> USB4_SHM_REC_FLAGS_SHIFT);

	if (!usb4_shm_word_ready(word, pos, ncells))
		return 0;
	/* The common case inline: a small record (as peek_any would). */
	if ((word & USB4_SHM_REC_D32_KIND) == USB4_SHM_REC_SMALL_D32) {
		wflags = (word >> USB4_SHM_REC_D32_FLAGS_SHIFT) & 3;
		len = (word >> USB4_SHM_REC_D32_LEN_SHIFT) &
		      USB4_SHM_REC_D32_LEN_MAX;
		data = htole64((uint32_t) (word >> USB4_SHM_REC_D32_DATA_SHIFT));
	} else if ((word & USB4_SHM_REC_KIND) == USB4_SHM_REC_SMALL_DATA) {
		body = 24;
	} else if ((word & USB4_SHM_REC_KIND) != USB4_SHM_REC_SMALL) {
		body = 0;
	}
	n = usb4_shm_cells_of(body + len);
	if (!body || off + n > ncells || len + sizeof(*hdr) > frame_max ||
	    (wflags & ~USB4_SHM_SMALL_FLAGS))
		return usb4_shm_packed_peek_any(cells, ncells, frame_max,
						st, pos, word, sender_id,
						frame, hdr);
	usb4_shm_packed_small_frame(cell, body, len, wflags, sender_id, data,
				    hdr, frame);
	st->next = pos + n;
	return 2;
}

static inline void usb4_shm_packed_pop(struct usb4_shm_packed_state *st)
{
	atomic_store_explicit(&st->freed, st->next, memory_order_release);
}

#endif /* USB4_SHM_PACKED_H */
