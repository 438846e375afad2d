/*
 * shm link: an endpoint's inbox ring in a memfd, written by same-host peers.
 *
 * Memory-ordering contract of the ring (many producers, one consumer):
 *   - Slot i starts with seq = i.  A producer owns position pos once it wins
 *     the CAS of tail from pos to pos + 1 while slot[pos % n].seq == pos.
 *   - The producer fills the slot, then stores seq = pos + 1 with release.
 *   - The consumer loads seq with acquire; seq == head + 1 means the frame is
 *     complete.  After handing it up it stores seq = head + n with release,
 *     which gives the slot back to producers one lap later.
 *   - Sleeping: the consumer sets `sleeping`, issues a full fence, re-checks
 *     the ring, then futex-waits on `doorbell` (or, when it must also watch a
 *     socket, polls the ring's eventfd).  A producer publishes, issues a full
 *     fence, and if `sleeping` is set bumps + wakes `doorbell` and signals the
 *     eventfd.  The two fences guarantee at least one side sees the other.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "usb4.h"
#include "usb4_link.h"

#define USB4_SHM_MAGIC		0x314d485334425355ull	/* "USB4SHM1" */
#define USB4_SHM_VERSION	1
#define USB4_SHM_CACHELINE	64

struct usb4_shm_ring {
	uint64_t magic;
	uint32_t version;
	uint32_t nslots;	/* power of two */
	uint32_t slot_size;	/* bytes per slot, slot header included */
	uint32_t owner_pid;
	uint64_t nonce;
	int32_t efd;		/* owner's eventfd, opened by producers via /proc */
	_Alignas(USB4_SHM_CACHELINE) _Atomic uint64_t tail;	/* producers */
	_Alignas(USB4_SHM_CACHELINE) _Atomic uint32_t doorbell;	/* futex word */
	_Atomic uint32_t sleeping;
	_Alignas(USB4_SHM_CACHELINE) uint64_t head;		/* owner only */
	/* Remote accesses to the owner's memory, counted by initiators. */
	_Alignas(USB4_SHM_CACHELINE) _Atomic uint64_t rma_writes;
	_Atomic uint64_t rma_reads;
	_Alignas(USB4_SHM_CACHELINE) char slots[];
};

struct usb4_shm_slot {
	_Atomic uint64_t seq;
	uint32_t len;		/* frame bytes; written by a peer: untrusted */
	uint32_t reserved;
	char frame[];
};
_Static_assert(sizeof(struct usb4_shm_slot) == 16, "slot header is 16 bytes");

struct usb4_shm_link {
	struct usb4_shm_ring *ring;
	size_t map_len;
	int fd;
	int efd;		/* readable while a producer rang the bell */
	size_t frame_max;
};

struct usb4_shm_peer {
	struct usb4_shm_ring *ring;
	size_t map_len;
	pid_t pid;
	int efd;		/* the owner's eventfd, or -1 */
	size_t frame_max;
};

static size_t round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

static size_t pow2_at_least(size_t v)
{
	size_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

static struct usb4_shm_slot *slot_at(struct usb4_shm_ring *ring, uint64_t pos)
{
	size_t idx = pos & (ring->nslots - 1);
	return (struct usb4_shm_slot *) (ring->slots + idx * ring->slot_size);
}

static size_t ring_bytes(size_t nslots, size_t slot_size)
{
	return sizeof(struct usb4_shm_ring) + nslots * slot_size;
}

static void ring_init(struct usb4_shm_ring *ring, size_t nslots,
		      size_t slot_size, uint64_t nonce)
{
	ring->magic = USB4_SHM_MAGIC;
	ring->version = USB4_SHM_VERSION;
	ring->nslots = nslots;
	ring->slot_size = slot_size;
	ring->owner_pid = getpid();
	ring->nonce = nonce;
	atomic_init(&ring->tail, 0);
	atomic_init(&ring->doorbell, 0);
	atomic_init(&ring->sleeping, 0);
	ring->head = 0;
	atomic_init(&ring->rma_writes, 0);
	atomic_init(&ring->rma_reads, 0);
	for (size_t i = 0; i < nslots; i++)
		atomic_init(&slot_at(ring, i)->seq, i);
}

int usb4_shm_link_open(struct usb4_shm_link **linkp, size_t slots,
		       size_t frame_max, uint64_t nonce)
{
	struct usb4_shm_link *link;
	char name[64];
	size_t nslots = pow2_at_least(slots < 2 ? 2 : slots);
	size_t slot_size = round_up(sizeof(struct usb4_shm_slot) + frame_max,
				    USB4_SHM_CACHELINE);
	int ret;

	link = calloc(1, sizeof(*link));
	if (!link)
		return -FI_ENOMEM;
	/* The name only shows in /proc/<pid>/maps; it lives in no file system. */
	snprintf(name, sizeof(name), "usb4-inbox-%d-%016llx", (int) getpid(),
		 (unsigned long long) nonce);
	link->fd = memfd_create(name, MFD_CLOEXEC);
	if (link->fd < 0) {
		ret = -errno;
		USB4_WARN(FI_LOG_EP_CTRL, "memfd_create: %s\n", strerror(errno));
		goto err_free_link;
	}
	link->map_len = ring_bytes(nslots, slot_size);
	if (ftruncate(link->fd, link->map_len)) {
		ret = -errno;
		goto err_close_fd;
	}
	link->ring = mmap(NULL, link->map_len, PROT_READ | PROT_WRITE,
			  MAP_SHARED, link->fd, 0);
	if (link->ring == MAP_FAILED) {
		ret = -errno;
		goto err_close_fd;
	}
	link->frame_max = slot_size - sizeof(struct usb4_shm_slot);
	ring_init(link->ring, nslots, slot_size, nonce);
	/* Lets a sleeper watch the ring and a socket in one poll. */
	link->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	link->ring->efd = link->efd;
	*linkp = link;
	return 0;

err_close_fd:
	close(link->fd);
err_free_link:
	free(link);
	return ret;
}

void usb4_shm_link_close(struct usb4_shm_link *link)
{
	if (!link)
		return;
	/* Peers that still map the ring keep the memory alive until they unmap. */
	link->ring->magic = 0;
	munmap(link->ring, link->map_len);
	close(link->fd);
	if (link->efd >= 0)
		close(link->efd);
	free(link);
}

void usb4_shm_link_addr(const struct usb4_shm_link *link,
			struct usb4_shm_addr *addr)
{
	addr->pid = getpid();
	addr->fd = link->fd;
	addr->nonce = link->ring->nonce;
	addr->reg_fd = -1;
}

size_t usb4_shm_link_frame_max(const struct usb4_shm_link *link)
{
	return link->frame_max;
}

int usb4_shm_link_poll(struct usb4_shm_link *link, usb4_link_rx_fn fn,
		       void *arg, int budget)
{
	struct usb4_shm_ring *ring = link->ring;
	int taken;

	for (taken = 0; taken < budget; taken++) {
		struct usb4_shm_slot *slot = slot_at(ring, ring->head);
		uint64_t seq = atomic_load_explicit(&slot->seq,
						    memory_order_acquire);
		if (seq != ring->head + 1)
			break;
		/* The length was written by another process: clamp it. */
		size_t len = slot->len;
		if (len > link->frame_max)
			len = 0;	/* the core counts it as a short frame */
		fn(arg, slot->frame, len);
		atomic_store_explicit(&slot->seq, ring->head + ring->nslots,
				      memory_order_release);
		ring->head++;
	}
	return taken;
}

static bool ring_has_frame(struct usb4_shm_ring *ring)
{
	struct usb4_shm_slot *slot = slot_at(ring, ring->head);
	return atomic_load_explicit(&slot->seq, memory_order_acquire) ==
	       ring->head + 1;
}

static long futex(_Atomic uint32_t *word, int op, uint32_t val,
		  const struct timespec *timeout)
{
	return syscall(SYS_futex, (uint32_t *) word, op, val, timeout, NULL, 0);
}

void usb4_shm_link_wait(struct usb4_shm_link *link, int timeout_ms)
{
	struct usb4_shm_ring *ring = link->ring;
	struct timespec ts, *tsp = NULL;
	uint32_t bell;

	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long) (timeout_ms % 1000) * 1000000;
		tsp = &ts;
	}
	atomic_store(&ring->sleeping, 1);
	atomic_thread_fence(memory_order_seq_cst);
	bell = atomic_load(&ring->doorbell);
	if (!ring_has_frame(ring))
		futex(&ring->doorbell, FUTEX_WAIT, bell, tsp);
	atomic_store(&ring->sleeping, 0);
}

static void ring_ring_bell(struct usb4_shm_ring *ring, int efd)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&ring->sleeping, memory_order_relaxed)) {
		uint64_t one = 1;
		atomic_fetch_add(&ring->doorbell, 1);
		futex(&ring->doorbell, FUTEX_WAKE, INT_MAX, NULL);
		if (efd >= 0 && write(efd, &one, sizeof(one)) < 0)
			return;	/* counter saturated: the sleeper wakes anyway */
	}
}

void usb4_shm_link_kick(struct usb4_shm_link *link)
{
	ring_ring_bell(link->ring, link->efd);
}

int usb4_shm_link_efd(const struct usb4_shm_link *link)
{
	return link->efd;
}

bool usb4_shm_link_sleep_begin(struct usb4_shm_link *link)
{
	atomic_store(&link->ring->sleeping, 1);
	atomic_thread_fence(memory_order_seq_cst);
	if (!ring_has_frame(link->ring))
		return true;
	atomic_store(&link->ring->sleeping, 0);
	return false;
}

void usb4_shm_link_sleep_end(struct usb4_shm_link *link)
{
	uint64_t count;

	atomic_store(&link->ring->sleeping, 0);
	if (link->efd >= 0 && read(link->efd, &count, sizeof(count)) < 0)
		return;	/* nothing was signalled */
}

static int peer_map(int fd, struct usb4_shm_peer *peer)
{
	struct stat st;
	struct usb4_shm_ring *ring;

	if (fstat(fd, &st) || (size_t) st.st_size < sizeof(*ring))
		return -FI_EINVAL;
	ring = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ring == MAP_FAILED)
		return -errno;
	peer->ring = ring;
	peer->map_len = st.st_size;
	return 0;
}

/* The mapped header came from another process: check it before trusting it. */
static int peer_check(const struct usb4_shm_peer *peer,
		      const struct usb4_shm_addr *addr)
{
	const struct usb4_shm_ring *ring = peer->ring;

	if (ring->magic != USB4_SHM_MAGIC || ring->version != USB4_SHM_VERSION ||
	    ring->nonce != addr->nonce || ring->owner_pid != addr->pid)
		return -FI_EADDRNOTAVAIL;
	if (!ring->nslots || (ring->nslots & (ring->nslots - 1)) ||
	    ring->slot_size <= sizeof(struct usb4_shm_slot) ||
	    ring->slot_size % USB4_SHM_CACHELINE ||
	    ring_bytes(ring->nslots, ring->slot_size) > peer->map_len)
		return -FI_EINVAL;
	return 0;
}

/* The owner's eventfd, to wake it when it sleeps in poll; -1 if none. */
static int open_peer_efd(pid_t pid, int32_t efd)
{
	char path[64];

	if (efd < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, efd);
	return open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
}

int usb4_shm_peer_open(const struct usb4_shm_addr *addr,
		       struct usb4_shm_peer **peerp)
{
	struct usb4_shm_peer *peer;
	char path[64];
	int fd, ret;

	peer = calloc(1, sizeof(*peer));
	if (!peer)
		return -FI_ENOMEM;
	snprintf(path, sizeof(path), "/proc/%u/fd/%d", addr->pid, addr->fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = errno == ENOENT ? -FI_EHOSTUNREACH : -errno;
		USB4_WARN(FI_LOG_AV, "open %s: %s\n", path, strerror(errno));
		goto err_free_peer;
	}
	ret = peer_map(fd, peer);
	close(fd);
	if (ret)
		goto err_free_peer;
	ret = peer_check(peer, addr);
	if (ret) {
		USB4_WARN(FI_LOG_AV, "%s is not the inbox the address names\n",
			  path);
		goto err_unmap;
	}
	peer->pid = addr->pid;
	peer->frame_max = peer->ring->slot_size - sizeof(struct usb4_shm_slot);
	peer->efd = open_peer_efd(addr->pid, peer->ring->efd);
	*peerp = peer;
	return 0;

err_unmap:
	munmap(peer->ring, peer->map_len);
err_free_peer:
	free(peer);
	return ret;
}

void usb4_shm_peer_close(struct usb4_shm_peer *peer)
{
	if (!peer)
		return;
	if (peer->efd >= 0)
		close(peer->efd);
	munmap(peer->ring, peer->map_len);
	free(peer);
}

pid_t usb4_shm_peer_pid(const struct usb4_shm_peer *peer)
{
	return peer->pid;
}

/* Claims the next free slot; NULL when the ring is full. */
static struct usb4_shm_slot *slot_claim(struct usb4_shm_ring *ring,
					uint64_t *posp)
{
	uint64_t pos = atomic_load_explicit(&ring->tail, memory_order_relaxed);

	for (;;) {
		struct usb4_shm_slot *slot = slot_at(ring, pos);
		uint64_t seq = atomic_load_explicit(&slot->seq,
						    memory_order_acquire);
		int64_t diff = (int64_t) (seq - pos);

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

int usb4_shm_send(struct usb4_shm_peer *peer, const struct iovec *iov,
		  int iov_count)
{
	struct usb4_shm_slot *slot;
	size_t len = 0;
	uint64_t pos;
	char *dst;

	for (int i = 0; i < iov_count; i++)
		len += iov[i].iov_len;
	if (len > peer->frame_max)
		return -FI_EMSGSIZE;
	slot = slot_claim(peer->ring, &pos);
	if (!slot)
		return -FI_EAGAIN;
	dst = slot->frame;
	for (int i = 0; i < iov_count; i++) {
		memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
	slot->len = len;
	atomic_store_explicit(&slot->seq, pos + 1, memory_order_release);
	ring_ring_bell(peer->ring, peer->efd);
	return 0;
}

void usb4_shm_peer_count_rma(struct usb4_shm_peer *peer, bool write)
{
	atomic_fetch_add_explicit(write ? &peer->ring->rma_writes :
				  &peer->ring->rma_reads, 1,
				  memory_order_release);
}

void usb4_shm_link_rma_counts(const struct usb4_shm_link *link,
			      uint64_t *writes, uint64_t *reads)
{
	*writes = atomic_load_explicit(&link->ring->rma_writes,
				       memory_order_acquire);
	*reads = atomic_load_explicit(&link->ring->rma_reads,
				      memory_order_acquire);
}

void usb4_shm_link_count_rma(struct usb4_shm_link *link, bool write)
{
	atomic_fetch_add_explicit(write ? &link->ring->rma_writes :
				  &link->ring->rma_reads, 1,
				  memory_order_release);
}
