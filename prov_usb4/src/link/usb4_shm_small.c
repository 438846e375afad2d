/*
 * Small frames of a lane: an eager message of up to USB4_SHM_SMALL_MAX
 * bytes moves between the cores in one cache line with its header.
 *
 * A full frame in a lane slot is the slot's 8-byte header, the core's
 * 48-byte wire header and the payload: a message of more than 8 bytes
 * spans two lines, and every line that crosses the cores costs the
 * receiver a cache miss.  Of the wire header, a plain eager message needs
 * only its tag and remote CQ data: the lane names the sender, there is no
 * msg_id, and total_len is the payload's length.  So a small frame is the
 * slot header, tag and data (16 bytes), and the payload; the slot's len
 * word says which it is (USB4_SHM_SMALL_BIT) and carries the wire flags.
 * The consumer rebuilds the wire header in its own memory and hands the
 * core header and payload apart, which the core parses as any frame.
 *
 * A frame of up to 8 payload bytes fits the first line whole and goes
 * whole.  A producer writes small frames only into an inbox whose owner says it
 * reads them (USB4_SHM_SMALL in the ring's flags); owners before them
 * leave it clear and get full frames.  A small frame is written by
 * another process: its length and flags are checked against the slot and
 * USB4_SHM_SMALL_FLAGS, and a bad one is handed up empty, which the core
 * counts as a short frame and drops.
 */
#include <string.h>

#include "usb4_shm_layout.h"

/* Behind the slot header: what a small frame keeps of the wire header,
 * little-endian as there. */
struct usb4_shm_small {
	uint64_t tag;
	uint64_t data;
	char payload[];
};

#define SMALL_LEN_MASK		0xffffu
#define SMALL_FLAGS_SHIFT	16

_Static_assert(8 + sizeof(struct usb4_shm_small) + USB4_SHM_SMALL_MAX ==
	       USB4_SHM_CACHELINE, "a small frame fills at most one line");
_Static_assert(((USB4_SHM_SMALL_FLAGS << SMALL_FLAGS_SHIFT) &
		USB4_SHM_SMALL_BIT) == 0, "the flags stay below the mark");

bool usb4_shm_small_encode(void *dst, uint32_t *len_word,
			   const struct iovec *iov, int count, size_t len,
			   uint64_t from_id)
{
	const struct usb4_wire_hdr *h = iov[0].iov_base;
	struct usb4_shm_small *s = dst;

	if (!usb4_shm_small_eligible(iov, count, len, from_id,
				     USB4_SHM_SMALL_MAX))
		return false;
	s->tag = h->tag;
	s->data = h->data;
	usb4_shm_small_gather(s->payload, iov, count);
	*len_word = USB4_SHM_SMALL_BIT |
		    ((uint32_t) le16toh(h->flags) << SMALL_FLAGS_SHIFT) |
		    (uint32_t) (len - sizeof(*h));
	return true;
}

int usb4_shm_small_decode(const void *src, uint32_t len_word, size_t room,
			  uint64_t sender_id, struct usb4_wire_hdr *hdr,
			  struct iovec *frame)
{
	const struct usb4_shm_small *s = src;
	size_t plen = len_word & SMALL_LEN_MASK;
	uint32_t wflags = (len_word & ~USB4_SHM_SMALL_BIT) >> SMALL_FLAGS_SHIFT;

	/* No producer writes more than USB4_SHM_SMALL_MAX: a longer one is
	 * malformed even where the slot would hold it. */
	if (plen > USB4_SHM_SMALL_MAX || room < sizeof(*s) + plen ||
	    (wflags & ~USB4_SHM_SMALL_FLAGS)) {
		frame[0].iov_base = (void *) src;
		frame[0].iov_len = 0;	/* the core counts it short */
		return 1;
	}
	usb4_shm_small_header(hdr, (uint16_t) wflags, plen, sender_id, s->tag,
			      s->data);
	frame[0].iov_base = hdr;
	frame[0].iov_len = sizeof(*hdr);
	frame[1].iov_base = (void *) s->payload;
	frame[1].iov_len = plen;
	return 2;
}
