/*
 * The shm link (private to src/link): peers on the same host.
 *
 * Every endpoint owns an inbox, a ring of fixed-size frame slots in a memfd.
 * Same-host peers map the owner's memfd through /proc/<pid>/fd/<fd> and
 * post frames into it (many producers, one consumer); each slot names its
 * producer.  Behind the shared slots, the first peers to post each get a
 * lane of their own (one producer, one consumer).  Bulk data and one-sided access move by one cross-memory-attach
 * copy (process_vm_readv/writev) straight between the two processes'
 * buffers, so RMA needs no target CPU.  A memfd has no name in any file
 * system, so two jobs never collide and a crashed process leaves nothing
 * behind.  Processes of other users cannot open the memfd: same-user
 * processes are trusted, as ptrace rules trust them.
 */
#ifndef USB4_SHM_H
#define USB4_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "usb4.h"
#include "usb4_link.h"

/* ---- the inbox ring (usb4_shm_ring.c) ---- */

struct usb4_shm_ring;

/* Who posted a slot: enough to open the way back. */
struct usb4_shm_sender {
	uint64_t id;		/* its endpoint id */
	uint32_t pid;
	int32_t inbox_fd;
};

/*
 * A producer's way into one inbox: the first post claims a single-producer
 * lane when the owner offers one and one is free (no locked instruction per
 * frame after that), else it posts into the shared slots for good, so its
 * frames keep their order.  Zeroed before the first post; one thread posts
 * through it at a time.
 */
enum usb4_shm_producer_state {
	USB4_SHM_PRODUCER_NEW = 0,
	USB4_SHM_PRODUCER_SHARED,
	USB4_SHM_PRODUCER_LANE,
	USB4_SHM_PRODUCER_PACKED,	/* a lane, packed (usb4_shm_packed.c) */
};

struct usb4_shm_producer {
	enum usb4_shm_producer_state state;
	uint32_t lane;
	uint64_t pos;		/* the lane's next position */
	/* A packed lane's: its cells, the consumer's count of cells taken,
	 * the position below which the producer knows them free, and how far
	 * it zeroed ahead (usb4_shm_packed.c). */
	char *cells;
	_Atomic uint64_t *freed;
	uint64_t limit;
	uint64_t zeroed;	/* header words below it zeroed ahead */
	uint32_t cell_mask;
	uint32_t lap_shift;
	size_t frame_max;	/* read once from the owner's ring */
	bool d32;		/* the owner reads USB4_SHM_REC_SMALL_D32 */
};

/* Single-producer lanes of a link's inbox, for its first peers: a lane
 * holds an osu_bw window of 64 small messages. */
#define USB4_SHM_LANES_PER_INBOX	8
#define USB4_SHM_LANE_SLOTS		64

/* lanes: single-producer lanes of lane_slots slots each (0: none). */
size_t usb4_shm_ring_bytes(size_t slots, size_t frame_max, size_t lanes,
			   size_t lane_slots);
/* expedited: the owner's sleepers fence for registered producers
 * (usb4_shm_fence.c); say so only when usb4_shm_fence_can_expedite(). */
void usb4_shm_ring_init(struct usb4_shm_ring *ring, size_t slots,
			size_t frame_max, uint64_t nonce, int bell,
			bool expedited, size_t lanes, size_t lane_slots);
/* Checks a mapped ring of another process before trusting it: 0,
 * -FI_EADDRNOTAVAIL (not the inbox addressed), -FI_ECONNREFUSED (another
 * protocol version: logged with both), -FI_EINVAL (malformed). */
int usb4_shm_ring_check(const struct usb4_shm_ring *ring, size_t map_len,
			uint64_t nonce, uint32_t pid);
size_t usb4_shm_ring_frame_max(const struct usb4_shm_ring *ring);
int usb4_shm_ring_bell(const struct usb4_shm_ring *ring);
/* The owner closed the inbox. */
void usb4_shm_ring_retire(struct usb4_shm_ring *ring);
bool usb4_shm_ring_live(const struct usb4_shm_ring *ring);

/* Producer: one frame gathered from iov; -FI_EAGAIN when full (its lane or
 * the shared slots), -FI_EMSGSIZE when too large.  Rings the owner's bell
 * if it sleeps; -FI_EHOSTUNREACH (the frame is posted, to nobody) when the
 * owner died asleep.  prod NULL: the shared slots, as producers before
 * lanes post. */
int usb4_shm_ring_post(struct usb4_shm_ring *ring,
		       struct usb4_shm_producer *prod, int bell,
		       const struct usb4_shm_sender *from,
		       const struct iovec *iov, int count);

/* Consumer: the frame at the head, if complete, and the id its producer
 * gave: 0 (none), 1 (frame[0] as posted, its length clamped to the slot:
 * the producer is another process) or 2 (a lane's small frame: its wire
 * header rebuilt in *hdr as frame[0], its payload frame[1]). */
struct usb4_wire_hdr;
int usb4_shm_ring_peek(struct usb4_shm_ring *ring, struct iovec *frame,
		       struct usb4_wire_hdr *hdr, uint64_t *sender_id);
/* Who posted the frame at the head, with the way back to it: read only
 * for a sender not met before (it costs the consumer a cache line). */
void usb4_shm_ring_head_sender(struct usb4_shm_ring *ring,
			       struct usb4_shm_sender *from);
void usb4_shm_ring_pop(struct usb4_shm_ring *ring);
/* Sleeping: begin returns false when a frame waits (or, on an expedited
 * ring, when the barrier for producers failed); otherwise producers ring
 * the bell (bell: its read end) until end.  Any number of threads may
 * sleep at once. */
bool usb4_shm_ring_sleep_begin(struct usb4_shm_ring *ring, int bell);
void usb4_shm_ring_sleep_end(struct usb4_shm_ring *ring);

/* Remote accesses to the owner's memory, counted by initiators. */
void usb4_shm_ring_count_rma(struct usb4_shm_ring *ring, bool write);
void usb4_shm_ring_rma_counts(const struct usb4_shm_ring *ring,
			      uint64_t *writes, uint64_t *reads);

/* ---- the asymmetric fence (usb4_shm_fence.c) ---- */

/* The kernel offers membarrier's global expedited barrier. */
bool usb4_shm_fence_can_expedite(void);
/* This process is registered for it (registers on first call). */
bool usb4_shm_fence_register(void);
/* The process registered (usb4_pid()), 0 before; set by the above. */
extern _Atomic uint32_t usb4_shm_fence_pid;
/* usb4_shm_fence_register, its answer of every post after the first
 * inline. */
static inline bool usb4_shm_fence_registered(void)
{
	return atomic_load_explicit(&usb4_shm_fence_pid,
				    memory_order_relaxed) == usb4_pid() ||
	       usb4_shm_fence_register();
}
/* A full barrier on every running thread of every registered process:
 * 0 or -errno. */
int usb4_shm_fence_expedite(void);

/* ---- cross memory attach (usb4_link_cma.c) ---- */

/* Copies len bytes between the remote iov list in process pid and the local
 * one, one system call per 64 segments.  0 or a negative FI_E* code. */
int usb4_cma_read(pid_t pid, const struct iovec *local, size_t local_count,
		  const struct iovec *remote, size_t remote_count, size_t len);
int usb4_cma_write(pid_t pid, const struct iovec *local, size_t local_count,
		   const struct iovec *remote, size_t remote_count, size_t len);

extern const struct usb4_link_ops usb4_shm_link_ops;

#endif /* USB4_SHM_H */
