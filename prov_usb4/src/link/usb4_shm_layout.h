/*
 * The inbox's layout in shared memory (private to usb4_shm_ring.c and
 * usb4_shm_lane.c).  Offsets up to slots[] are fixed since protocol
 * version 2: producers of every release find the shared ring there.
 */
#ifndef USB4_SHM_LAYOUT_H
#define USB4_SHM_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <sys/uio.h>

#include "usb4_shm.h"
#include "../wire.h"

#define USB4_SHM_MAGIC		0x314d485334425355ull	/* "USB4SHM1" */
#define USB4_SHM_CACHELINE	64
/* flags: the owner's sleepers fence for registered producers. */
#define USB4_SHM_EXPEDITED	(1u << 0)
/* flags: single-producer lanes follow the shared slots (usb4_shm_lane.c). */
#define USB4_SHM_LANES		(1u << 1)
/* flags: the owner reads small frames in its lanes (usb4_shm_small.c). */
#define USB4_SHM_SMALL		(1u << 2)
/* flags: the owner reads packed lanes (usb4_shm_packed.c) of producers
 * that mark their lane so; packed_cells says their size. */
#define USB4_SHM_PACKED		(1u << 3)
/* flags: the owner reads USB4_SHM_REC_SMALL_D32 records (CQ data of up to
 * 32 bits in the header word) in its packed lanes. */
#define USB4_SHM_PACKED_D32	(1u << 4)

struct usb4_shm_ring {
	uint64_t magic;		/* 0 once the owner closed the inbox */
	uint16_t proto;		/* USB4_WIRE_VERSION of the owner */
	uint16_t flags;		/* USB4_SHM_*; 0 from owners before them */
	uint32_t features;	/* USB4_WIRE_FEATURES of the owner */
	uint32_t nslots;	/* power of two */
	uint32_t slot_size;	/* bytes per slot, slot header included */
	uint32_t owner_pid;
	int32_t bell;		/* owner's bell (a pipe's write end), opened by
				 * producers via /proc */
	uint64_t nonce;		/* the owner's endpoint id */
	/* With USB4_SHM_LANES (in bytes that were padding before): */
	uint32_t nlanes;
	uint32_t lane_slots;	/* power of two */
	uint32_t lane_slot_size;
	/* With USB4_SHM_PACKED (padding before): cells of a packed lane. */
	uint32_t packed_cells;
	_Alignas(USB4_SHM_CACHELINE) _Atomic uint64_t tail;	/* producers */
	_Alignas(USB4_SHM_CACHELINE) _Atomic uint32_t sleepers;
	_Alignas(USB4_SHM_CACHELINE) uint64_t head;		/* owner only */
	uint32_t cur;		/* owner only: the queue read, 0 the shared */
	uint32_t streak;	/* owner only: frames taken from it in a row */
	uint32_t lanes_mapped;	/* owner only: lanes usb4_shm_lanes_map did */
	/* Remote accesses to the owner's memory, counted by initiators. */
	_Alignas(USB4_SHM_CACHELINE) _Atomic uint64_t rma_writes;
	_Atomic uint64_t rma_reads;
	_Atomic uint32_t lanes_claimed;	/* producers; may exceed nlanes */
	_Alignas(USB4_SHM_CACHELINE) char slots[];
};

/* Written by a peer: everything in it is untrusted. */
struct usb4_shm_slot {
	_Atomic uint32_t seq;
	uint32_t len;		/* frame bytes */
	uint64_t sender_id;
	char frame[];
};
_Static_assert((sizeof(struct usb4_shm_slot) + sizeof(struct usb4_wire_hdr)) %
	       USB4_SHM_CACHELINE == 0, "a slot's payload starts a cache line");

/* Behind a frame, 8-byte aligned. */
struct usb4_shm_trailer {
	uint32_t sender_pid;
	int32_t sender_fd;	/* the sender's inbox memfd */
};

_Static_assert(offsetof(struct usb4_shm_ring, slots) == 5 * USB4_SHM_CACHELINE,
	       "the shared slots stay where producers of every release look");

static inline size_t usb4_shm_round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

static inline struct usb4_shm_slot *usb4_shm_slot_at(struct usb4_shm_ring *ring,
						     uint64_t pos)
{
	size_t idx = pos & (ring->nslots - 1);

	return (struct usb4_shm_slot *) (ring->slots + idx * ring->slot_size);
}

/* ---- lanes (usb4_shm_lane.c) ---- */

#define USB4_SHM_LANES_MAX	64

size_t usb4_shm_lanes_bytes(size_t lanes, size_t lane_slots, size_t frame_max);
/* After the shared slots are laid out. */
void usb4_shm_lanes_init(struct usb4_shm_ring *ring, size_t lanes,
			 size_t lane_slots, size_t frame_max);
/* A producer's check of the lanes of a mapped ring: 0 or -FI_EINVAL. */
int usb4_shm_lanes_check(const struct usb4_shm_ring *ring, size_t map_len);
/* Producer: claims a lane on first use, then posts into it (len bytes
 * gathered from iov): 0, -FI_EAGAIN (lane full), or 1 when the producer
 * has no lane and uses the shared ring. */
int usb4_shm_lane_post(struct usb4_shm_ring *ring,
		       struct usb4_shm_producer *prod,
		       const struct usb4_shm_sender *from,
		       const struct iovec *iov, int count, size_t len);
/* Consumer: lanes that may hold frames (claimed ones, at most nlanes). */
uint32_t usb4_shm_lanes_active(struct usb4_shm_ring *ring);
/* Consumer: maps the pages of the lanes claimed since the last call (up
 * to active) into this process, as their producers do when they claim. */
void usb4_shm_lanes_map(struct usb4_shm_ring *ring, uint32_t active);
/* As usb4_shm_ring_peek, for lane lane. */
int usb4_shm_lane_peek(struct usb4_shm_ring *ring, uint32_t lane,
		       struct iovec *frame, struct usb4_wire_hdr *hdr,
		       uint64_t *sender_id);
void usb4_shm_lane_sender(struct usb4_shm_ring *ring, uint32_t lane,
			  struct usb4_shm_sender *from);
void usb4_shm_lane_pop(struct usb4_shm_ring *ring, uint32_t lane);

/* ---- small frames of a lane (usb4_shm_small.c) ---- */

/* The largest payload a small frame carries: it and its headers fill one
 * cache line. */
#define USB4_SHM_SMALL_MAX	40
/* In a lane slot's len word: the slot holds a small frame. */
#define USB4_SHM_SMALL_BIT	(1u << 31)
/* The wire flags a small frame may carry. */
#define USB4_SHM_SMALL_FLAGS	(USB4_WF_TAGGED | USB4_WF_CQ_DATA)

/* Producer: writes the frame gathered from iov (len bytes, its wire header
 * in iov[0]) to dst as a small frame when it is one (a plain eager message
 * of from_id of at most USB4_SHM_SMALL_MAX bytes), with the slot's len
 * word; false (nothing written) for any other. */
bool usb4_shm_small_encode(void *dst, uint32_t *len_word,
			   const struct iovec *iov, int count, size_t len,
			   uint64_t from_id);
/* Consumer: the small frame at src (room bytes of slot behind its header)
 * as the core's frame: its wire header rebuilt in *hdr, then its payload
 * (2 iovecs); a frame whose length or flags are bad as one empty iovec. */
int usb4_shm_small_decode(const void *src, uint32_t len_word, size_t room,
			  uint64_t sender_id, struct usb4_wire_hdr *hdr,
			  struct iovec *frame);

/* Whether the frame in iov (len bytes, the wire header first) is a plain
 * eager message of from_id with at most max payload bytes, which a small
 * frame carries whole. */
static inline bool usb4_shm_small_eligible(const struct iovec *iov,
					   int count, size_t len,
					   uint64_t from_id, size_t max)
{
	const struct usb4_wire_hdr *h = iov[0].iov_base;
	size_t plen = len - sizeof(*h);

	return count >= 1 && iov[0].iov_len == sizeof(*h) &&
	       len >= sizeof(*h) && plen <= max &&
	       h->version == USB4_WIRE_VERSION &&
	       h->type == USB4_FRAME_EAGER &&
	       !(le16toh(h->flags) & ~USB4_SHM_SMALL_FLAGS) &&
	       le32toh(h->payload_len) == plen &&
	       le64toh(h->total_len) == plen && h->msg_id == 0 &&
	       le64toh(h->src_id) == from_id;
}

/* The payload pieces of such a frame (iov[1..count)) to dst. */
static inline void usb4_shm_small_gather(char *dst, const struct iovec *iov,
					 int count)
{
	for (int i = 1; i < count; i++) {
		usb4_copy_small(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
}

/* The wire header of a small frame, rebuilt (tag and data little-endian). */
static inline void usb4_shm_small_header(struct usb4_wire_hdr *hdr,
					 uint16_t wflags, size_t plen,
					 uint64_t sender_id, uint64_t tag,
					 uint64_t data)
{
	*hdr = (struct usb4_wire_hdr) {
		.version = USB4_WIRE_VERSION,
		.type = USB4_FRAME_EAGER,
		.flags = htole16(wflags),
		.payload_len = htole32((uint32_t) plen),
		.src_id = htole64(sender_id),
		.tag = tag,
		.data = data,
		.total_len = htole64(plen),
	};
}

#endif /* USB4_SHM_LAYOUT_H */
