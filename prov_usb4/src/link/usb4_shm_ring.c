/*
 * The shm inbox ring: many producers (same-host peers), one consumer (the
 * owning endpoint), fixed-size slots in shared memory.
 *
 * A slot is a 16-byte header (sequence, length, the sender's endpoint id),
 * the frame, and behind the frame the way back to the sender (its process
 * and inbox), which the consumer reads only for a sender it does not know
 * yet.  The header and a frame's 48-byte wire header share one cache line,
 * and the payload starts on the next: a frame moves between the cores in
 * as few lines as it has bytes.
 *
 * Memory-ordering contract (seq holds the low 32 bits of a position; the
 * 64-bit tail keeps positions unique, so the truncation is harmless while
 * nslots < 2^31):
 *   - Slot i starts with seq = i.  A producer owns position pos once it wins
 *     the CAS of tail from pos to pos + 1 while slot[pos % n].seq == pos.
 *   - The producer fills the slot, then stores seq = pos + 1 with release.
 *   - The consumer loads seq with acquire; seq == head + 1 means the frame is
 *     complete.  After handing it up it stores seq = head + n with release,
 *     which gives the slot back to producers one lap later.
 *   - Sleeping: a sleeper increments `sleepers`, issues a full fence,
 *     drains the bell (a pipe), then re-checks the ring before it polls the
 *     bell.  A producer publishes, issues a full fence, and if `sleepers`
 *     is non-zero writes a byte to the bell.  Either the sleeper sees the frame or
 *     the producer sees the sleeper; a sleeper that drained a signal meant
 *     for another has seen the frame itself and handles it.
 *   - On an expedited ring (USB4_SHM_EXPEDITED in flags) the sleeper's
 *     fence is membarrier's, which fences every registered producer too: a
 *     registered producer needs only a compiler barrier (usb4_shm_fence.c).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usb4_shm_packed.h"

#define round_up usb4_shm_round_up
#define slot_at usb4_shm_slot_at

static size_t pow2_at_least(size_t v)
{
	size_t p = 2;

	while (p < v)
		p <<= 1;
	return p;
}

static size_t slot_size(size_t frame_max)
{
	return round_up(sizeof(struct usb4_shm_slot) + round_up(frame_max, 8) +
			sizeof(struct usb4_shm_trailer), USB4_SHM_CACHELINE);
}

/* What a slot of slot_size bytes holds: its header and trailer apart. */
static size_t slot_frame_max(size_t size)
{
	return (size - sizeof(struct usb4_shm_slot) -
		sizeof(struct usb4_shm_trailer)) & ~(size_t) 7;
}

static struct usb4_shm_trailer *trailer_of(struct usb4_shm_slot *slot,
					   size_t len)
{
	return (struct usb4_shm_trailer *) (slot->frame + round_up(len, 8));
}

size_t usb4_shm_ring_bytes(size_t slots, size_t frame_max, size_t lanes,
			   size_t lane_slots)
{
	return sizeof(struct usb4_shm_ring) +
	       pow2_at_least(slots) * slot_size(frame_max) +
	       usb4_shm_lanes_bytes(lanes, lane_slots,
				    slot_frame_max(slot_size(frame_max)));
}

void usb4_shm_ring_init(struct usb4_shm_ring *ring, size_t slots,
			size_t frame_max, uint64_t nonce, int bell,
			bool expedited, size_t lanes, size_t lane_slots)
{
	ring->proto = USB4_WIRE_VERSION;
	ring->flags = expedited ? USB4_SHM_EXPEDITED : 0;
	ring->features = USB4_WIRE_FEATURES;
	ring->nslots = pow2_at_least(slots);
	ring->slot_size = slot_size(frame_max);
	ring->owner_pid = usb4_pid();
	ring->bell = bell;
	ring->nonce = nonce;
	atomic_init(&ring->tail, 0);
	atomic_init(&ring->sleepers, 0);
	ring->head = 0;
	atomic_init(&ring->rma_writes, 0);
	atomic_init(&ring->rma_reads, 0);
	for (size_t i = 0; i < ring->nslots; i++)
		atomic_init(&slot_at(ring, i)->seq, (uint32_t) i);
	ring->cur = ring->streak = 0;
	/* A lane takes every frame the shared slots take. */
	usb4_shm_lanes_init(ring, lanes, lane_slots,
			    usb4_shm_ring_frame_max(ring));
	atomic_thread_fence(memory_order_release);
	ring->magic = USB4_SHM_MAGIC;
}

int usb4_shm_ring_check(const struct usb4_shm_ring *ring, size_t map_len,
			uint64_t nonce, uint32_t pid)
{
	if (map_len < sizeof(*ring) || ring->magic != USB4_SHM_MAGIC)
		return -FI_EADDRNOTAVAIL;
	if (ring->proto != USB4_WIRE_VERSION ||
	    ((ring->features ^ USB4_WIRE_FEATURES) &
	     USB4_WIRE_FEATURES_REQUIRED)) {
		USB4_WARN(FI_LOG_AV, "inbox of process %u speaks usb4 wire "
			  "version %u (features %#x), this provider speaks %u "
			  "(features %#x)\n", pid, ring->proto, ring->features,
			  USB4_WIRE_VERSION, USB4_WIRE_FEATURES);
		return -FI_ECONNREFUSED;
	}
	if (ring->nonce != nonce || ring->owner_pid != pid)
		return -FI_EADDRNOTAVAIL;
	if (ring->nslots < 2 || (ring->nslots & (ring->nslots - 1)) ||
	    ring->slot_size < slot_size(0) ||
	    ring->slot_size % USB4_SHM_CACHELINE ||
	    ring->nslots > (map_len - sizeof(*ring)) / ring->slot_size)
		return -FI_EINVAL;
	return usb4_shm_lanes_check(ring, map_len);
}

size_t usb4_shm_ring_frame_max(const struct usb4_shm_ring *ring)
{
	return slot_frame_max(ring->slot_size);
}

int usb4_shm_ring_bell(const struct usb4_shm_ring *ring)
{
	return ring->bell;
}

void usb4_shm_ring_retire(struct usb4_shm_ring *ring)
{
	ring->magic = 0;
}

bool usb4_shm_ring_live(const struct usb4_shm_ring *ring)
{
	return ring->magic == USB4_SHM_MAGIC;
}

/* Claims the next free slot; NULL when the ring is full. */
static struct usb4_shm_slot *slot_claim(struct usb4_shm_ring *ring,
					uint64_t *posp)
{
	uint64_t pos = atomic_load_explicit(&ring->tail, memory_order_relaxed);

	for (;;) {
		struct usb4_shm_slot *slot = slot_at(ring, pos);
		uint32_t seq = atomic_load_explicit(&slot->seq,
						    memory_order_acquire);
		int32_t diff = (int32_t) (seq - (uint32_t) pos);

		if (diff == 0) {
			if (atomic_compare_exchange_weak_explicit(&ring->tail,
					&pos, pos + 1, memory_order_relaxed,
					memory_order_relaxed)) {
				*posp = pos;
				return slot;
			}
		} else if (diff < 0) {
			return NULL;
		} else {
			pos = atomic_load_explicit(&ring->tail,
						   memory_order_relaxed);
		}
	}
}

/*
 * Writes a byte to a sleeping owner's bell.  The owner may have died
 * asleep (its read end gone, its sleepers count stuck): the write then
 * fails with EPIPE, and the SIGPIPE it raises is kept from the caller,
 * whose process it would otherwise end.  -FI_EHOSTUNREACH then.  Out of
 * line: its signal sets would give every post a large stack frame.
 */
static __attribute__((noinline)) int bell_write(int bell)
{
	struct timespec now = { 0, 0 };
	sigset_t pipe_set, old;
	char one = 1;
	int ret = 0;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	if (write(bell, &one, 1) < 0 && errno == EPIPE) {
		sigtimedwait(&pipe_set, NULL, &now);
		ret = -FI_EHOSTUNREACH;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;	/* a full pipe is readable anyway */
}

/* After a post: rings the bell of an owner that sleeps. */
static inline int ring_bell(struct usb4_shm_ring *ring, int bell)
{
	if ((ring->flags & USB4_SHM_EXPEDITED) && usb4_shm_fence_registered())
		atomic_signal_fence(memory_order_seq_cst);
	else
		atomic_thread_fence(memory_order_seq_cst);
	if (bell < 0 || !atomic_load_explicit(&ring->sleepers,
					      memory_order_relaxed))
		return 0;
	return bell_write(bell);
}

int usb4_shm_ring_post(struct usb4_shm_ring *ring,
		       struct usb4_shm_producer *prod, int bell,
		       const struct usb4_shm_sender *from,
		       const struct iovec *iov, int count)
{
	struct usb4_shm_slot *slot;
	size_t len = 0;
	uint64_t pos;
	char *dst;
	int ret;

	/* A packed lane's producer knows its sizes: the fast path. */
	if (prod && prod->state == USB4_SHM_PRODUCER_PACKED) {
		ret = usb4_shm_packed_post(prod, iov, count, from->id);
		return ret ? ret : ring_bell(ring, bell);
	}
	for (int i = 0; i < count; i++)
		len += iov[i].iov_len;
	if (len > usb4_shm_ring_frame_max(ring))
		return -FI_EMSGSIZE;
	if (prod && prod->state != USB4_SHM_PRODUCER_SHARED) {
		ret = usb4_shm_lane_post(ring, prod, from, iov, count, len);
		if (ret <= 0)
			return ret ? ret : ring_bell(ring, bell);
	}
	slot = slot_claim(ring, &pos);
	if (!slot)
		return -FI_EAGAIN;
	dst = slot->frame;
	for (int i = 0; i < count; i++) {
		memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
	slot->len = len;
	slot->sender_id = from->id;
	*trailer_of(slot, len) = (struct usb4_shm_trailer) {
		.sender_pid = from->pid, .sender_fd = from->inbox_fd,
	};
	atomic_store_explicit(&slot->seq, (uint32_t) (pos + 1),
			      memory_order_release);
	return ring_bell(ring, bell);
}

/* The length a producer wrote, or 0 when it is beyond the slot. */
static size_t slot_len(const struct usb4_shm_ring *ring,
		       const struct usb4_shm_slot *slot)
{
	size_t len = slot->len;

	return len > usb4_shm_ring_frame_max(ring) ? 0 : len;
}

static int shared_peek(struct usb4_shm_ring *ring, struct iovec *frame,
		       uint64_t *sender_id)
{
	struct usb4_shm_slot *slot = slot_at(ring, ring->head);
	uint32_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);

	if (seq != (uint32_t) (ring->head + 1))
		return 0;
	frame->iov_base = slot->frame;
	frame->iov_len = slot_len(ring, slot);	/* 0: the core counts it short */
	*sender_id = slot->sender_id;
	return 1;
}

/* Queue q: 0 the shared slots, 1 + i lane i. */
static int queue_peek(struct usb4_shm_ring *ring, uint32_t q,
		      struct iovec *frame, struct usb4_wire_hdr *hdr,
		      uint64_t *sender_id)
{
	return q ? usb4_shm_lane_peek(ring, q - 1, frame, hdr, sender_id) :
		   shared_peek(ring, frame, sender_id);
}

/*
 * Stays on the queue it read last while it has frames (a stream's next
 * frame is the line after), else looks at the others in turn; a queue
 * that gave 64 frames in a row yields to the next.
 */
int usb4_shm_ring_peek(struct usb4_shm_ring *ring, struct iovec *frame,
		       struct usb4_wire_hdr *hdr, uint64_t *sender_id)
{
	uint32_t queues = 1 + usb4_shm_lanes_active(ring);
	uint32_t q = ring->cur < queues ? ring->cur : 0;

	if (__builtin_expect(queues - 1 != ring->lanes_mapped, 0))
		usb4_shm_lanes_map(ring, queues - 1);
	for (uint32_t k = 0; k < queues; k++) {
		int n = queue_peek(ring, q, frame, hdr, sender_id);

		if (n) {
			if (q != ring->cur)
				ring->streak = 0;
			ring->cur = q;
			return n;
		}
		if (++q == queues)
			q = 0;
	}
	return 0;
}

void usb4_shm_ring_head_sender(struct usb4_shm_ring *ring,
			       struct usb4_shm_sender *from)
{
	struct usb4_shm_slot *slot = slot_at(ring, ring->head);
	const struct usb4_shm_trailer *t;

	if (ring->cur) {
		usb4_shm_lane_sender(ring, ring->cur - 1, from);
		return;
	}
	t = trailer_of(slot, slot_len(ring, slot));
	from->id = slot->sender_id;
	from->pid = t->sender_pid;
	from->inbox_fd = t->sender_fd;
}

void usb4_shm_ring_pop(struct usb4_shm_ring *ring)
{
	if (ring->cur) {
		usb4_shm_lane_pop(ring, ring->cur - 1);
	} else {
		atomic_store_explicit(&slot_at(ring, ring->head)->seq,
				      (uint32_t) (ring->head + ring->nslots),
				      memory_order_release);
		ring->head++;
	}
	if (++ring->streak >= 64) {
		ring->streak = 0;
		ring->cur++;	/* peek wraps it */
	}
}

static bool ring_has_frame(struct usb4_shm_ring *ring)
{
	uint32_t queues = 1 + usb4_shm_lanes_active(ring);
	struct usb4_wire_hdr hdr;
	struct iovec frame[2];
	uint64_t id;

	for (uint32_t q = 0; q < queues; q++)
		if (queue_peek(ring, q, frame, &hdr, &id))
			return true;
	return false;
}

/* Empties the bell: rings meant for an earlier sleep are stale. */
static void bell_drain(int fd)
{
	char stale[64];

	while (read(fd, stale, sizeof(stale)) == (ssize_t) sizeof(stale))
		;
}

bool usb4_shm_ring_sleep_begin(struct usb4_shm_ring *ring, int bell)
{
	atomic_fetch_add(&ring->sleepers, 1);
	atomic_thread_fence(memory_order_seq_cst);
	/* Without the producers' barrier a frame may hide in a store buffer
	 * while we sleep: poll instead. */
	if ((ring->flags & USB4_SHM_EXPEDITED) && usb4_shm_fence_expedite()) {
		atomic_fetch_sub(&ring->sleepers, 1);
		return false;
	}
	bell_drain(bell);
	if (!ring_has_frame(ring))
		return true;
	atomic_fetch_sub(&ring->sleepers, 1);
	return false;
}

void usb4_shm_ring_sleep_end(struct usb4_shm_ring *ring)
{
	atomic_fetch_sub(&ring->sleepers, 1);
}

void usb4_shm_ring_count_rma(struct usb4_shm_ring *ring, bool write)
{
	atomic_fetch_add_explicit(write ? &ring->rma_writes : &ring->rma_reads,
				  1, memory_order_release);
}

void usb4_shm_ring_rma_counts(const struct usb4_shm_ring *ring,
			      uint64_t *writes, uint64_t *reads)
{
	*writes = atomic_load_explicit(&((struct usb4_shm_ring *) ring)->rma_writes,
				       memory_order_acquire);
	*reads = atomic_load_explicit(&((struct usb4_shm_ring *) ring)->rma_reads,
				      memory_order_acquire);
}
