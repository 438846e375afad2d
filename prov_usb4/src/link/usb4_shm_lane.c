/*
 * Single-producer lanes of the shm inbox: behind the shared slots, nlanes
 * lanes of lane_slots slots each.  A producer claims a lane once (one CAS
 * on lanes_claimed) and from then on posts into it with plain stores and
 * one release store: no locked instruction per frame, and no cache line
 * that every producer fights over (the shared ring's tail).
 *
 * A lane is a 64-byte header written once by its producer (who it is: the
 * way back that the shared ring keeps in every slot's trailer) and read by
 * the consumer, then the slots.  A lane slot is an 8-byte header (sequence
 * and length) and the frame: a frame of the 48-byte wire header and up to
 * 8 payload bytes moves between the cores in one cache line.
 *
 * Ordering is the shared ring's per slot: slot i starts with seq = i; the
 * producer, at its private position pos, waits for seq == pos, fills the
 * slot and stores seq = pos + 1 with release; the consumer takes it at
 * seq == head + 1 and gives it back with seq = head + lane_slots.  The
 * lane header's stores come before the first slot's release.
 *
 * A slot may hold a small frame instead (usb4_shm_small.c): an eager
 * message of 9 to 40 bytes in one line with its headers.
 *
 * A lane may be packed instead (usb4_shm_packed.c): records of any size
 * back to back in its bytes.  An owner that reads packed lanes says so
 * (USB4_SHM_PACKED); a producer that sees it marks its lane packed when it
 * claims it, and owners look at the mark.  Producers before packed lanes
 * never mark: the owner reads their slots; owners before them leave the
 * flag clear and get slots.
 *
 * Owners before lanes leave USB4_SHM_LANES clear: their producers use the
 * shared slots.  Producers before lanes never look at them: the owner
 * reads its shared slots too.  Lanes of a producer that died stay claimed
 * (at most nlanes of them): later producers use the shared slots.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "usb4_shm_packed.h"

#define LANE_SLOTS_MAX		(1u << 16)
#define LANE_SLOT_SIZE_MAX	(1u << 24)

/* Written by its producer: untrusted. */
struct usb4_shm_lane {
	uint64_t sender_id;
	uint32_t sender_pid;
	int32_t sender_fd;
	uint64_t head;		/* owner only */
	/* In bytes no producer before packed lanes writes (zeroed by the
	 * owner): LANE_PACKED when its producer packs. */
	uint32_t format;
	struct usb4_shm_packed_state packed;
	_Alignas(USB4_SHM_CACHELINE) char slots[];
};
_Static_assert(sizeof(struct usb4_shm_lane) == USB4_SHM_CACHELINE,
	       "a lane's slots stay where producers before packed lanes look");

#define LANE_PACKED		0x314b4350u	/* "PCK1" */

struct usb4_shm_lane_slot {
	_Atomic uint32_t seq;
	uint32_t len;		/* frame bytes */
	char frame[];
};
_Static_assert(sizeof(struct usb4_shm_lane_slot) +
	       sizeof(struct usb4_wire_hdr) + 8 == USB4_SHM_CACHELINE,
	       "an 8-byte message fills one cache line");

static size_t lane_slot_size(size_t frame_max)
{
	return usb4_shm_round_up(sizeof(struct usb4_shm_lane_slot) + frame_max,
				 USB4_SHM_CACHELINE);
}

static size_t lane_bytes(size_t lane_slots, size_t slot_size)
{
	return sizeof(struct usb4_shm_lane) + lane_slots * slot_size;
}

static size_t pow2_at_least(size_t v)
{
	size_t p = 2;

	while (p < v)
		p <<= 1;
	return p;
}

size_t usb4_shm_lanes_bytes(size_t lanes, size_t lane_slots, size_t frame_max)
{
	if (!lanes)
		return 0;
	if (lanes > USB4_SHM_LANES_MAX)
		lanes = USB4_SHM_LANES_MAX;
	return lanes * lane_bytes(pow2_at_least(lane_slots),
				  lane_slot_size(frame_max));
}

static char *lanes_base(struct usb4_shm_ring *ring)
{
	return ring->slots + (size_t) ring->nslots * ring->slot_size;
}

static struct usb4_shm_lane *lane_at(struct usb4_shm_ring *ring, uint32_t i)
{
	return (struct usb4_shm_lane *) (lanes_base(ring) +
		i * lane_bytes(ring->lane_slots, ring->lane_slot_size));
}

/* A lane's bytes behind its header: its slots, or its packed cells. */
static size_t lane_area(const struct usb4_shm_ring *ring)
{
	return (size_t) ring->lane_slots * ring->lane_slot_size;
}

static struct usb4_shm_lane_slot *lane_slot(struct usb4_shm_ring *ring,
					    struct usb4_shm_lane *lane,
					    uint64_t pos)
{
	size_t idx = pos & (ring->lane_slots - 1);

	return (struct usb4_shm_lane_slot *) (lane->slots +
					      idx * ring->lane_slot_size);
}

void usb4_shm_lanes_init(struct usb4_shm_ring *ring, size_t lanes,
			 size_t lane_slots, size_t frame_max)
{
	ring->nlanes = 0;
	ring->packed_cells = 0;
	ring->lanes_mapped = 0;
	atomic_init(&ring->lanes_claimed, 0);
	if (!lanes)
		return;
	ring->nlanes = lanes > USB4_SHM_LANES_MAX ? USB4_SHM_LANES_MAX : lanes;
	ring->lane_slots = pow2_at_least(lane_slots);
	ring->lane_slot_size = lane_slot_size(frame_max);
	for (uint32_t i = 0; i < ring->nlanes; i++) {
		struct usb4_shm_lane *lane = lane_at(ring, i);

		memset(lane, 0, sizeof(*lane));
		for (uint32_t s = 0; s < ring->lane_slots; s++)
			atomic_init(&lane_slot(ring, lane, s)->seq, s);
	}
	ring->flags |= USB4_SHM_LANES | USB4_SHM_SMALL;
	ring->packed_cells = usb4_shm_packed_cells(lane_area(ring), frame_max);
	if (ring->packed_cells)
		ring->flags |= USB4_SHM_PACKED | USB4_SHM_PACKED_D32;
}

int usb4_shm_lanes_check(const struct usb4_shm_ring *ring, size_t map_len)
{
	size_t end;

	if (!(ring->flags & USB4_SHM_LANES))
		return 0;
	if (!ring->nlanes || ring->nlanes > USB4_SHM_LANES_MAX ||
	    ring->lane_slots < 2 || ring->lane_slots > LANE_SLOTS_MAX ||
	    (ring->lane_slots & (ring->lane_slots - 1)) ||
	    ring->lane_slot_size % USB4_SHM_CACHELINE ||
	    ring->lane_slot_size > LANE_SLOT_SIZE_MAX ||
	    ring->lane_slot_size < sizeof(struct usb4_shm_lane_slot) +
				   usb4_shm_ring_frame_max(ring))
		return -FI_EINVAL;
	/* Bounded above: no overflow. */
	end = offsetof(struct usb4_shm_ring, slots) +
	      (size_t) ring->nslots * ring->slot_size +
	      ring->nlanes * lane_bytes(ring->lane_slots,
					ring->lane_slot_size);
	if (end > map_len)
		return -FI_EINVAL;
	if ((ring->flags & USB4_SHM_PACKED) &&
	    !usb4_shm_packed_cells_ok(ring->packed_cells, lane_area(ring),
				      usb4_shm_ring_frame_max(ring)))
		return -FI_EINVAL;
	return 0;
}

/*
 * Maps a lane's pages into this process's page tables now.  A packed
 * lane's records run through all of its area before they come back to the
 * start, so the first lap would take a page fault per 4 KiB in each of the
 * two processes, paid while messages flow (osu_bw's 1 and 2 B rounds run
 * through the first 128 pages of a 512 KiB lane: 3 in 4 of their page
 * faults were those).  Contents are untouched; the pages of a lane are
 * the owner's memfd's, allocated at most once.
 */
static void lane_map(struct usb4_shm_ring *ring, struct usb4_shm_lane *lane)
{
	uintptr_t page = (uintptr_t) getpagesize();
	uintptr_t start = (uintptr_t) lane->slots & ~(page - 1);
	uintptr_t end = (uintptr_t) lane->slots + lane_area(ring);

	if (!madvise((void *) start, end - start, MADV_POPULATE_WRITE))
		return;
	/* Kernels before 5.14: a write fault per page, which keeps the
	 * byte (the other process may be writing next to it). */
	for (uintptr_t p = start; p < end; p += page)
		atomic_fetch_or_explicit((_Atomic unsigned char *) p, 0,
					 memory_order_relaxed);
}

void usb4_shm_lanes_map(struct usb4_shm_ring *ring, uint32_t active)
{
	uint32_t i = ring->lanes_mapped;

	for (; i < active; i++)
		lane_map(ring, lane_at(ring, i));
	ring->lanes_mapped = active;
}

/* Claims a free lane, once: the producer uses it, or the shared slots
 * when the owner has no lanes or they are taken. */
static void lane_claim(struct usb4_shm_ring *ring,
		       struct usb4_shm_producer *prod,
		       const struct usb4_shm_sender *from)
{
	uint32_t n = (ring->flags & USB4_SHM_LANES) ? ring->nlanes : 0;
	uint32_t c = atomic_load_explicit(&ring->lanes_claimed,
					  memory_order_relaxed);
	struct usb4_shm_lane *lane;

	prod->state = USB4_SHM_PRODUCER_SHARED;
	for (;;) {
		if (c >= n)
			return;
		if (atomic_compare_exchange_weak_explicit(&ring->lanes_claimed,
				&c, c + 1, memory_order_relaxed,
				memory_order_relaxed))
			break;
	}
	lane = lane_at(ring, c);
	lane->sender_id = from->id;
	lane->sender_pid = from->pid;
	lane->sender_fd = from->inbox_fd;
	prod->lane = c;
	if (ring->flags & USB4_SHM_PACKED) {
		lane->format = LANE_PACKED;
		usb4_shm_packed_start(prod, lane->slots, ring->packed_cells,
				      &lane->packed.freed,
				      usb4_shm_ring_frame_max(ring));
		prod->d32 = ring->flags & USB4_SHM_PACKED_D32;
		lane_map(ring, lane);
		return;
	}
	prod->state = USB4_SHM_PRODUCER_LANE;
	prod->pos = 0;
}

int usb4_shm_lane_post(struct usb4_shm_ring *ring,
		       struct usb4_shm_producer *prod,
		       const struct usb4_shm_sender *from,
		       const struct iovec *iov, int count, size_t len)
{
	struct usb4_shm_lane_slot *slot;
	char *dst;

	if (prod->state == USB4_SHM_PRODUCER_NEW)
		lane_claim(ring, prod, from);
	if (prod->state == USB4_SHM_PRODUCER_PACKED)
		return usb4_shm_packed_post(prod, iov, count, from->id);
	if (prod->state != USB4_SHM_PRODUCER_LANE)
		return 1;
	slot = lane_slot(ring, lane_at(ring, prod->lane), prod->pos);
	if (atomic_load_explicit(&slot->seq, memory_order_acquire) !=
	    (uint32_t) prod->pos)
		return -FI_EAGAIN;	/* its frames wait: no other way */
	/* A frame that fits the slot's first line whole goes whole: a small
	 * frame would save no line there. */
	if (len <= USB4_SHM_CACHELINE - sizeof(*slot) ||
	    !(ring->flags & USB4_SHM_SMALL) ||
	    !usb4_shm_small_encode(slot->frame, &slot->len, iov, count, len,
				   from->id)) {
		dst = slot->frame;
		for (int i = 0; i < count; i++) {
			memcpy(dst, iov[i].iov_base, iov[i].iov_len);
			dst += iov[i].iov_len;
		}
		slot->len = len;
	}
	atomic_store_explicit(&slot->seq, (uint32_t) (prod->pos + 1),
			      memory_order_release);
	prod->pos++;
	return 0;
}

uint32_t usb4_shm_lanes_active(struct usb4_shm_ring *ring)
{
	uint32_t c;

	if (!ring->nlanes)
		return 0;
	c = atomic_load_explicit(&ring->lanes_claimed, memory_order_relaxed);
	return c < ring->nlanes ? c : ring->nlanes;
}

/* Its producer packs, and we read packed lanes (we said so). */
static bool lane_packed(const struct usb4_shm_ring *ring,
			const struct usb4_shm_lane *lane)
{
	return lane->format == LANE_PACKED &&
	       (ring->flags & USB4_SHM_PACKED);
}

int usb4_shm_lane_peek(struct usb4_shm_ring *ring, uint32_t i,
		       struct iovec *frame, struct usb4_wire_hdr *hdr,
		       uint64_t *sender_id)
{
	struct usb4_shm_lane *lane = lane_at(ring, i);
	struct usb4_shm_lane_slot *slot;
	size_t max = ring->lane_slot_size - sizeof(*slot);
	uint32_t len;

	if (lane_packed(ring, lane)) {
		*sender_id = lane->sender_id;
		return usb4_shm_packed_peek(lane->slots, ring->packed_cells,
					    max, &lane->packed, *sender_id,
					    frame, hdr);
	}
	slot = lane_slot(ring, lane, lane->head);
	if (atomic_load_explicit(&slot->seq, memory_order_acquire) !=
	    (uint32_t) (lane->head + 1))
		return 0;
	*sender_id = lane->sender_id;
	len = slot->len;	/* once: the producer is another process */
	if (len & USB4_SHM_SMALL_BIT)
		return usb4_shm_small_decode(slot->frame, len, max,
					     *sender_id, hdr, frame);
	frame->iov_base = slot->frame;
	frame->iov_len = len > max ? 0 : len;	/* 0: counted short */
	return 1;
}

void usb4_shm_lane_sender(struct usb4_shm_ring *ring, uint32_t i,
			  struct usb4_shm_sender *from)
{
	const struct usb4_shm_lane *lane = lane_at(ring, i);

	from->id = lane->sender_id;
	from->pid = lane->sender_pid;
	from->inbox_fd = lane->sender_fd;
}

void usb4_shm_lane_pop(struct usb4_shm_ring *ring, uint32_t i)
{
	struct usb4_shm_lane *lane = lane_at(ring, i);

	if (lane_packed(ring, lane)) {
		usb4_shm_packed_pop(&lane->packed);
		return;
	}

	atomic_store_explicit(&lane_slot(ring, lane, lane->head)->seq,
			      (uint32_t) (lane->head + ring->lane_slots),
			      memory_order_release);
	lane->head++;
}
