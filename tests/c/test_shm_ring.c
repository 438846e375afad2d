/*
 * Unit tests of the shm link (prov_usb4/src/link/):
 *   - the inbox ring (usb4_shm_ring.c) written through a second mapping of
 *     its memfd, as a peer maps it: every frame size, FIFO order, the
 *     sender named by each slot, backpressure, untrusted slot lengths, the
 *     version check of a mapped ring, the bell that wakes a sleeper (and
 *     only a sleeper), a forked producer, and remote access counters;
 *   - cross memory attach (usb4_link_cma.c) in both directions;
 *   - the link through its ops table (usb4_link_shm.c), two links in one
 *     process and one in a child: addresses, dest_open, post/poll into a
 *     sink that records frames and senders, the way back to a sender,
 *     backpressure from the sink, sleeping, bulk copies, the peer's
 *     registration table, and a peer whose owner closed or died;
 *   - that nothing is left behind: no fd, no mapping, nothing in /dev/shm.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "usb4.h"
#include "usb4_shm.h"
#include "usb4_shm_packed.h"
#include "../../prov_usb4/src/wire.h"
#include "usb4_test.h"
#include "usb4_test_proc.h"

#define FRAME_MAX	1000
#define SLOTS		8
#define CHILD_FRAMES	20000
/* Rings made have lanes; producers that pass no usb4_shm_producer post as
 * producers before lanes did, into the shared slots. */
#define LANES		2
#define LANE_SLOTS	4

/*
 * The head of an inbox as every protocol version lays it out (the v1 ring
 * had a 32-bit version where v2 has proto and reserved): a peer of another
 * version must find magic and proto here to refuse the ring.  The test
 * checks this mirror against a fresh ring before it pokes fields.
 */
struct ring_head {
	uint64_t magic;
	uint16_t proto;
	uint16_t flags;
	uint32_t features;
	uint32_t nslots;
	uint32_t slot_size;
	uint32_t owner_pid;
	int32_t bell;
	uint64_t nonce;
};

/* A slot's header, written by producers (16 bytes before the frame). */
struct slot_head {
	uint32_t seq;
	uint32_t len;
	uint64_t sender_id;
};

/* ---- helpers ------------------------------------------------------------ */

static void fill(unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char) (seed * 31 + i * 7);
}

static int check_fill(const unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char) (seed * 31 + i * 7))
			return 0;
	return 1;
}

static double now_s(void)
{
	return (double) usb4_now_ns() / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Whether fd can be read without blocking. */
static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* ---- the ring, owned here and mapped a second time as a peer would ---- */

struct test_ring {
	struct usb4_shm_ring *own;	/* the owner's mapping */
	struct usb4_shm_ring *peer;	/* via /proc/self/fd, a producer's */
	size_t len, peer_len;
	int fd;
	int bell[2];			/* read end, write end */
	uint64_t nonce;
};

/* Rings made say their sleepers fence for registered producers
 * (membarrier); the bell's tests run both ways. */
static bool expedited_rings;

static int ring_make_lanes(struct test_ring *r, size_t slots,
			   size_t frame_max, uint64_t nonce, size_t lane_slots)
{
	void *mem;

	memset(r, 0, sizeof(*r));
	r->len = usb4_shm_ring_bytes(slots, frame_max, LANES, lane_slots);
	r->nonce = nonce;
	if (usb4_shared_create("usb4-test-ring", r->len, &mem, &r->fd))
		return -1;
	r->own = mem;
	if (pipe2(r->bell, O_NONBLOCK | O_CLOEXEC))
		return -1;
	usb4_shm_ring_init(r->own, slots, frame_max, nonce, r->bell[1],
			   expedited_rings, LANES, lane_slots);
	r->peer = usb4_test_map_proc_fd(getpid(), r->fd, &r->peer_len);
	return r->peer ? 0 : -1;
}

static int ring_make(struct test_ring *r, size_t slots, size_t frame_max,
		     uint64_t nonce)
{
	return ring_make_lanes(r, slots, frame_max, nonce, LANE_SLOTS);
}

/* The owner as owners before packed lanes: its producers' lanes keep
 * slots (usb4_shm_lane.c), as producers before packed lanes write them. */
static void slotted(struct test_ring *r)
{
	r->own->flags &= ~USB4_SHM_PACKED;
}

static void ring_free(struct test_ring *r)
{
	if (r->peer)
		munmap(r->peer, r->peer_len);
	close(r->bell[0]);
	close(r->bell[1]);
	usb4_shared_destroy(r->own, r->len, r->fd);
}

/* Posts len bytes of fill(seed) in two pieces, as a producer. */
static int post_fill(struct test_ring *r, int bell,
		     const struct usb4_shm_sender *from, size_t len,
		     unsigned seed)
{
	static unsigned char out[4096];
	struct iovec iov[2] = {
		{ out, len / 3 }, { out + len / 3, len - len / 3 },
	};

	fill(out, len, seed);
	return usb4_shm_ring_post(r->peer, NULL, bell, from, iov, 2);
}

/* The frame at the head, posted whole (not a small frame), or NULL. */
static const void *peek_one(struct usb4_shm_ring *ring, size_t *len,
			    uint64_t *id)
{
	struct usb4_wire_hdr hdr;
	struct iovec frame[2];
	int n = usb4_shm_ring_peek(ring, frame, &hdr, id);

	CHECK(n < 2);
	if (n != 1)
		return NULL;
	*len = frame[0].iov_len;
	return frame[0].iov_base;
}

/* The frame at the head and everything its producer said about itself. */
static const void *peek_from(struct usb4_shm_ring *ring, size_t *len,
			     struct usb4_shm_sender *from)
{
	const void *p = peek_one(ring, len, &from->id);

	if (p)
		usb4_shm_ring_head_sender(ring, from);
	return p;
}

/* The mirror structs match a fresh ring (else the pokes below are wrong). */
static bool ring_layout_known(struct test_ring *r)
{
	struct ring_head *h = (struct ring_head *) r->peer;

	CHECK_MSG(h->proto == USB4_WIRE_VERSION &&
		  h->flags == ((expedited_rings ? 1 : 0) | 2 | 4 | 8 | 16) &&
		  h->owner_pid == (uint32_t) getpid() &&
		  h->nonce == r->nonce && h->bell == r->bell[1],
		  "the inbox head no longer starts with magic, proto, "
		  "flags, features, nslots, slot_size, owner_pid, bell, "
		  "nonce: a peer of another version cannot read its version "
		  "(or struct ring_head here is stale)");
	return h->proto == USB4_WIRE_VERSION && h->nonce == r->nonce;
}

/* Refusals of a mapped ring: wrong inbox, another version, malformed. */
static void test_ring_check(void)
{
	struct test_ring r;
	struct ring_head *h, saved;
	pid_t me = getpid();

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0x1234), 0);
	if (!r.peer || !ring_layout_known(&r)) {
		ring_free(&r);
		return;
	}
	h = (struct ring_head *) r.peer;
	saved = *h;
	CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x1234, me), 0,
		     "a fresh ring mapped by a peer is refused");
	CHECK_MSG(usb4_shm_ring_live(r.peer), "a fresh ring is not live");
	CHECK_EQ(usb4_shm_ring_bell(r.peer), r.bell[1]);

	/* Not the inbox addressed: pid/fd reuse guards. */
	CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x1235, me),
		     -FI_EADDRNOTAVAIL, "a ring of another nonce accepted");
	CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x1234,
					 getppid()), -FI_EADDRNOTAVAIL,
		     "a ring owned by another pid accepted");
	CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, 16, 0x1234, me),
		     -FI_EADDRNOTAVAIL, "a 16-byte mapping taken for a ring");

	/* Another protocol version: refused as such, whatever else. */
	for (int i = 0; i < 3; i++) {
		uint16_t other[3] = { USB4_WIRE_VERSION + 1, 1, 0xffff };

		h->proto = other[i];
		CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x1234,
						 me), -FI_ECONNREFUSED,
			     "a ring of wire version %u is not refused as "
			     "another version", other[i]);
		CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x9999,
						 me), -FI_ECONNREFUSED,
			     "version %u with another nonce: the version "
			     "decides first", other[i]);
	}
	*h = saved;
	/* A required feature we lack is another protocol; an optional one
	 * is not. */
	h->features = saved.features | 0x00010000u;
	CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x1234, me),
		     -FI_ECONNREFUSED, "a ring requiring feature 0x10000 "
		     "accepted");
	h->features = saved.features | 0x1u;
	CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x1234, me), 0,
		     "a ring offering optional feature 0x1 refused");
	*h = saved;

	/* Malformed geometry. */
	CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len - 1, 0x1234, me),
		     -FI_EINVAL, "a mapping one byte short of the slots "
		     "accepted");
	for (int i = 0; i < 3; i++) {
		uint32_t nslots[3] = { 0, 1, SLOTS - 2 };

		h->nslots = nslots[i];
		CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x1234,
						 me), -FI_EINVAL,
			     "a ring of %u slots accepted", nslots[i]);
	}
	h->nslots = SLOTS * 2;
	CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x1234, me),
		     -FI_EINVAL, "a ring claiming more slots than its mapping "
		     "holds accepted");
	h->nslots = 0x80000000u;
	CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x1234, me),
		     -FI_EINVAL, "a ring of 2^31 slots accepted");
	*h = saved;
	for (int i = 0; i < 3; i++) {
		uint32_t sizes[3] = { 0, sizeof(struct slot_head),
				      saved.slot_size + 1 };

		h->slot_size = sizes[i];
		CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x1234,
						 me), -FI_EINVAL,
			     "a slot size of %u accepted", sizes[i]);
	}
	*h = saved;
	CHECK_EQ(usb4_shm_ring_check(r.peer, r.peer_len, 0x1234, me), 0);

	/* The owner closed it. */
	usb4_shm_ring_retire(r.own);
	CHECK_MSG(!usb4_shm_ring_live(r.peer),
		  "a retired ring is live through a peer's mapping");
	CHECK_EQ_MSG(usb4_shm_ring_check(r.peer, r.peer_len, 0x1234, me),
		     -FI_EADDRNOTAVAIL, "a retired ring accepted");
	ring_free(&r);
}

/* Sizes 0..frame_max, FIFO, senders, full ring, oversized and lying frames. */
static void test_ring_frames(void)
{
	static unsigned char big[4096];
	struct test_ring r;
	struct usb4_shm_sender from, got;
	const unsigned char *p;
	size_t fmax, len;

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0x5678), 0);
	if (!r.peer) {
		ring_free(&r);
		return;
	}
	fmax = usb4_shm_ring_frame_max(r.own);
	CHECK_MSG(fmax >= FRAME_MAX && fmax < FRAME_MAX + 64,
		  "frame_max %zu for %d asked", fmax, FRAME_MAX);
	CHECK_EQ(usb4_shm_ring_frame_max(r.peer), fmax);
	CHECK_MSG(peek_from(r.own, &len, &got) == NULL,
		  "a fresh ring has a frame");

	/* Every size from 0 to frame_max, in batches that fill the ring, each
	 * from another sender. */
	for (size_t base = 0; base <= fmax; base += SLOTS) {
		size_t n = 0;

		for (size_t l = base; l <= fmax && n < SLOTS; l++, n++) {
			from = (struct usb4_shm_sender) {
				.id = 0x1000 + l, .pid = 4000 + (uint32_t) l,
				.inbox_fd = (int32_t) l - 3,
			};
			CHECK_EQ_MSG(post_fill(&r, -1, &from, l, (unsigned) l),
				     0, "posting %zu bytes to a ring with "
				     "room", l);
		}
		for (size_t i = 0; i < n; i++) {
			size_t l = base + i;

			p = peek_from(r.own, &len, &got);
			CHECK_MSG(p != NULL, "frame of %zu bytes missing", l);
			if (!p)
				break;
			CHECK_EQ_MSG(len, l, "frames out of order or resized");
			CHECK_MSG(check_fill(p, len, (unsigned) l),
				  "frame of %zu bytes arrives wrong", l);
			CHECK_MSG(got.id == 0x1000 + l &&
				  got.pid == 4000 + (uint32_t) l &&
				  got.inbox_fd == (int32_t) l - 3,
				  "frame %zu names sender %llx pid %u fd %d",
				  l, (unsigned long long) got.id, got.pid,
				  got.inbox_fd);
			/* The payload behind a frame's wire header starts a
			 * cache line: a frame crosses between the cores in
			 * as few lines as its bytes need. */
			CHECK_MSG(((uintptr_t) p +
				   sizeof(struct usb4_wire_hdr)) % 64 == 0,
				  "frame %zu: payload at %#lx within its cache "
				  "line", l, (unsigned long)
				  (((uintptr_t) p + sizeof(struct usb4_wire_hdr))
				   % 64));
			/* Peeking again sees the same frame until popped. */
			CHECK_MSG(peek_from(r.own, &len, &got) == p,
				  "a second peek moved on");
			usb4_shm_ring_pop(r.own);
		}
		CHECK_MSG(peek_from(r.own, &len, &got) == NULL,
			  "more frames than were posted");
	}

	/* Full ring: -FI_EAGAIN, and room for exactly one once one is taken. */
	from = (struct usb4_shm_sender) { .id = 7, .pid = 7, .inbox_fd = 7 };
	for (int i = 0; i < SLOTS; i++)
		CHECK_EQ(post_fill(&r, -1, &from, 4, (unsigned) i), 0);
	CHECK_EQ_MSG(post_fill(&r, -1, &from, 4, 0xee), -FI_EAGAIN,
		     "a full ring took a frame");
	CHECK_EQ(post_fill(&r, -1, &from, 4, 0xee), -FI_EAGAIN);
	p = peek_from(r.own, &len, &got);
	CHECK_MSG(p && check_fill(p, 4, 0), "the oldest frame is not first");
	usb4_shm_ring_pop(r.own);
	CHECK_EQ_MSG(post_fill(&r, -1, &from, 4, 0xee), 0,
		     "no room after one frame was taken");
	CHECK_EQ_MSG(post_fill(&r, -1, &from, 4, 0xef), -FI_EAGAIN,
		     "room for two after one frame was taken");
	for (int i = 1; i <= SLOTS; i++) {
		p = peek_from(r.own, &len, &got);
		CHECK_MSG(p && len == 4 &&
			  check_fill(p, 4, i < SLOTS ? (unsigned) i : 0xee),
			  "frame %d after wrapping arrives wrong", i);
		if (p)
			usb4_shm_ring_pop(r.own);
	}
	CHECK(peek_from(r.own, &len, &got) == NULL);

	/* Oversized, even when split across pieces: the ring is untouched. */
	{
		struct iovec iov[2] = { { big, fmax }, { big, 1 } };

		CHECK_EQ_MSG(usb4_shm_ring_post(r.peer, NULL, -1, &from, iov, 2),
			     -FI_EMSGSIZE, "frame_max + 1 bytes accepted");
		CHECK(peek_from(r.own, &len, &got) == NULL);
		CHECK_EQ(usb4_shm_ring_post(r.peer, NULL, -1, &from, iov, 1), 0);
		p = peek_from(r.own, &len, &got);
		CHECK_EQ_MSG(len, fmax, "a frame of frame_max bytes");
	}

	/* A producer's slot length is untrusted: one beyond the slot is
	 * handed up as an empty frame (which the core counts as short),
	 * never as a read past the slot. */
	if (p) {
		struct slot_head *s = (struct slot_head *)
				      (p - sizeof(struct slot_head));

		CHECK_EQ_MSG(s->len, fmax, "the slot header is not the 16 "
			     "bytes before the frame (struct slot_head stale)");
		s->len = (uint32_t) fmax + 1;
		CHECK(peek_from(r.own, &len, &got) == p);
		CHECK_EQ_MSG(len, 0, "a slot claiming frame_max + 1 bytes");
		s->len = UINT32_MAX;
		peek_from(r.own, &len, &got);
		CHECK_EQ_MSG(len, 0, "a slot claiming 4 GiB");
		usb4_shm_ring_pop(r.own);
	}
	CHECK(peek_from(r.own, &len, &got) == NULL);
	ring_free(&r);
}

/* A post rings the bell while (and only while) somebody sleeps. */
static void test_ring_bell(void)
{
	struct test_ring r;
	struct usb4_shm_sender from = { .id = 1, .pid = 1, .inbox_fd = 1 };
	struct usb4_shm_sender got;
	uint64_t writes, reads;
	size_t len;
	char junk[200] = { 0 };

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0x9abc), 0);
	if (!r.peer) {
		ring_free(&r);
		return;
	}
	/* Nobody sleeps: a post costs no system call, the bell stays quiet. */
	CHECK_EQ(post_fill(&r, r.bell[1], &from, 10, 1), 0);
	CHECK_MSG(!readable(r.bell[0]), "a post rang the bell with nobody "
		  "asleep");
	/* A frame waits: do not sleep, and do not count as a sleeper. */
	CHECK_MSG(!usb4_shm_ring_sleep_begin(r.own, r.bell[0]),
		  "sleep_begin with a frame waiting says sleep");
	peek_from(r.own, &len, &got);
	usb4_shm_ring_pop(r.own);
	CHECK_EQ(post_fill(&r, r.bell[1], &from, 10, 2), 0);
	CHECK_MSG(!readable(r.bell[0]), "a refused sleep_begin left a sleeper "
		  "behind: the post rang the bell");
	peek_from(r.own, &len, &got);
	usb4_shm_ring_pop(r.own);

	/* Asleep: the post rings. */
	CHECK_MSG(usb4_shm_ring_sleep_begin(r.own, r.bell[0]),
		  "sleep_begin on an empty ring says do not sleep");
	CHECK(!readable(r.bell[0]));
	CHECK_EQ(post_fill(&r, r.bell[1], &from, 10, 3), 0);
	CHECK_MSG(readable(r.bell[0]), "a post to a sleeping owner did not "
		  "ring the bell");
	usb4_shm_ring_sleep_end(r.own);
	peek_from(r.own, &len, &got);
	usb4_shm_ring_pop(r.own);

	/* Stale rings (any number) are drained by the next sleep_begin. */
	CHECK_EQ(write(r.bell[1], junk, sizeof(junk)), (ssize_t) sizeof(junk));
	CHECK(usb4_shm_ring_sleep_begin(r.own, r.bell[0]));
	CHECK_MSG(!readable(r.bell[0]), "sleep_begin left stale rings in the "
		  "bell: the sleeper would wake for nothing");
	/* Two sleepers at once: one post wakes; both leave, and the ring is
	 * quiet again. */
	CHECK(usb4_shm_ring_sleep_begin(r.own, r.bell[0]));
	CHECK_EQ(post_fill(&r, r.bell[1], &from, 10, 4), 0);
	CHECK(readable(r.bell[0]));
	usb4_shm_ring_sleep_end(r.own);
	usb4_shm_ring_sleep_end(r.own);
	peek_from(r.own, &len, &got);
	usb4_shm_ring_pop(r.own);
	while (read(r.bell[0], junk, sizeof(junk)) > 0)
		;
	CHECK_EQ(post_fill(&r, r.bell[1], &from, 10, 5), 0);
	CHECK_MSG(!readable(r.bell[0]), "sleepers not counted down: a post "
		  "after both left rang the bell");

	/* Remote accesses counted by initiators through their mapping. */
	usb4_shm_ring_rma_counts(r.own, &writes, &reads);
	CHECK_MSG(writes == 0 && reads == 0, "fresh counts %llu/%llu",
		  (unsigned long long) writes, (unsigned long long) reads);
	usb4_shm_ring_count_rma(r.peer, true);
	usb4_shm_ring_count_rma(r.peer, true);
	usb4_shm_ring_count_rma(r.peer, false);
	usb4_shm_ring_rma_counts(r.own, &writes, &reads);
	CHECK_MSG(writes == 2 && reads == 1, "counted 2 writes and 1 read, "
		  "owner sees %llu and %llu", (unsigned long long) writes,
		  (unsigned long long) reads);
	ring_free(&r);
}

/* ---- a forked producer; the owner sleeps on the bell between polls ---- */

#define CHILD_ID	0xc0ffee0000000001ull

static size_t child_len(uint64_t seq)
{
	return 8 + (seq * 13) % (FRAME_MAX - 8);
}

/* Child: maps the ring and opens the bell as a peer (via /proc), waits for
 * the go, sleeps 50 ms so that the parent sleeps first, posts. */
static void child_produce(pid_t owner, int ring_fd, int bell_fd,
			  uint64_t nonce, int start_fd)
{
	static unsigned char out[FRAME_MAX];
	struct usb4_shm_sender self = {
		.id = CHILD_ID, .pid = getpid(), .inbox_fd = 99,
	};
	struct usb4_shm_producer prod = { 0 };	/* a lane */
	struct usb4_shm_ring *ring;
	char path[64], go;
	size_t len;
	int bell;

	ring = usb4_test_map_proc_fd(owner, ring_fd, &len);
	if (!ring || usb4_shm_ring_check(ring, len, nonce, owner))
		usb4_test_child_exit(2);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) owner, bell_fd);
	bell = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (bell < 0)
		usb4_test_child_exit(3);
	if (read(start_fd, &go, 1) != 1)
		usb4_test_child_exit(4);
	usleep(50 * 1000);
	for (uint64_t seq = 0; seq < CHILD_FRAMES; seq++) {
		struct iovec iov = { out, child_len(seq) };

		memcpy(out, &seq, 8);
		fill(out + 8, iov.iov_len - 8, (unsigned) seq);
		while (usb4_shm_ring_post(ring, &prod, bell, &self, &iov, 1) ==
		       -FI_EAGAIN)
			sched_yield();
	}
	usb4_test_child_exit(prod.state == USB4_SHM_PRODUCER_PACKED ? 0 : 5);
}

struct seq_log {
	uint64_t next;
	size_t count, bad, bad_sender;
};

static void take_seq(struct seq_log *log, const unsigned char *p, size_t len,
		     const struct usb4_shm_sender *from, pid_t child)
{
	uint64_t seq;

	log->count++;
	if (from->id != CHILD_ID || from->pid != (uint32_t) child ||
	    from->inbox_fd != 99)
		log->bad_sender++;
	if (len < 8) {
		log->bad++;
		return;
	}
	memcpy(&seq, p, 8);
	if (seq != log->next || len != child_len(seq) ||
	    !check_fill(p + 8, len - 8, (unsigned) seq))
		log->bad++;
	log->next = seq + 1;
}

/* Sleeps on the bell for at most ms (as a link's user does); returns
 * whether the bell rang. */
static bool sleep_on_bell(struct test_ring *r, int ms)
{
	struct pollfd p = { .fd = r->bell[0], .events = POLLIN };
	bool rang = false;

	if (!usb4_shm_ring_sleep_begin(r->own, r->bell[0]))
		return true;
	rang = poll(&p, 1, ms) == 1;
	usb4_shm_ring_sleep_end(r->own);
	return rang;
}

static void test_child_producer(void)
{
	struct test_ring r;
	struct seq_log log = { 0 };
	struct usb4_shm_sender from;
	int pipefd[2], status;
	double t0, c0, waited, cpu;
	pid_t pid;

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, usb4_random64()), 0);
	if (!r.peer) {
		ring_free(&r);
		return;
	}
	/* Idle sleep: not early, not spinning. */
	t0 = now_s();
	c0 = cpu_s();
	CHECK_MSG(!sleep_on_bell(&r, 200), "the bell rang with nobody posting");
	waited = now_s() - t0;
	cpu = cpu_s() - c0;
	CHECK_MSG(waited >= 0.190 && waited < 1.0, "an idle 200 ms sleep "
		  "took %.3f s", waited);
	CHECK_MSG(cpu < 0.05, "an idle 200 ms sleep burnt %.3f s of CPU", cpu);

	CHECK_EQ(pipe(pipefd), 0);
	pid = usb4_test_fork();
	if (pid == 0) {
		close(pipefd[1]);
		child_produce(getppid(), r.fd, r.bell[1], r.nonce, pipefd[0]);
	}
	close(pipefd[0]);
	CHECK_EQ(write(pipefd[1], "g", 1), 1);

	/* The child sleeps 50 ms before its first frame: the bell must wake
	 * us for it well before the 5 s timeout. */
	t0 = now_s();
	CHECK_MSG(sleep_on_bell(&r, 5000), "the first frame of the child did "
		  "not ring the bell");
	CHECK_MSG(now_s() - t0 < 2.0, "woken after %.3f s", now_s() - t0);

	t0 = now_s();
	while (log.count < CHILD_FRAMES && now_s() - t0 < 20.0) {
		size_t len;
		const void *p = peek_from(r.own, &len, &from);

		if (!p) {
			sleep_on_bell(&r, 1000);
			continue;
		}
		take_seq(&log, p, len, &from, pid);
		usb4_shm_ring_pop(r.own);
	}
	CHECK_EQ_MSG(log.count, CHILD_FRAMES, "frames of the child received");
	CHECK_EQ_MSG(log.bad, 0, "frames out of order or damaged");
	CHECK_EQ_MSG(log.bad_sender, 0, "frames not naming the child");
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the producer failed (status %#x: 2 ring refused, 3 bell "
		  "not opened, 4 no go)", status);
	close(pipefd[1]);
	ring_free(&r);
}

/* ---- no lost wakeup: an owner that sleeps between a producer's frames ---- */

#define RACE_FRAMES	4000

/* Spins for about us microseconds: gaps short enough that the owner goes
 * to sleep just as the next frame comes. */
static void spin_us(unsigned us)
{
	double end = now_s() + us * 1e-6;

	while (now_s() < end)
		;
}

static void child_race(pid_t owner, int ring_fd, int bell_fd, uint64_t nonce)
{
	struct usb4_shm_sender self = { .id = CHILD_ID, .pid = getpid() };
	struct usb4_shm_producer prod = { 0 };	/* a lane */
	struct usb4_shm_ring *ring;
	char path[64];
	size_t len;
	int bell;

	ring = usb4_test_map_proc_fd(owner, ring_fd, &len);
	if (!ring || usb4_shm_ring_check(ring, len, nonce, owner))
		usb4_test_child_exit(2);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) owner, bell_fd);
	bell = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (bell < 0)
		usb4_test_child_exit(3);
	for (uint64_t seq = 0; seq < RACE_FRAMES; seq++) {
		struct iovec iov = { &seq, sizeof(seq) };

		spin_us((unsigned) (seq * 7919) % 40);
		while (usb4_shm_ring_post(ring, &prod, bell, &self, &iov, 1) ==
		       -FI_EAGAIN)
			sched_yield();
	}
	usb4_test_child_exit(0);
}

/*
 * Every frame posted while the owner sleeps wakes it: the owner sleeps on
 * the bell whenever its ring is empty, with a timeout far beyond the
 * producer's gaps; a sleep that times out with a frame in the ring is a
 * lost wakeup (a producer that missed the sleeper, or a sleeper that
 * missed the frame).  Frames arrive in order.
 */
static void test_no_lost_wakeup(void)
{
	struct test_ring r;
	struct usb4_shm_sender from;
	uint64_t next = 0, bad = 0, lost = 0, sleeps = 0;
	int status;
	double t0;
	pid_t pid;

	CHECK_EQ(ring_make(&r, 8, 64, usb4_random64()), 0);
	if (!r.peer) {
		ring_free(&r);
		return;
	}
	pid = usb4_test_fork();
	if (pid == 0)
		child_race(getppid(), r.fd, r.bell[1], r.nonce);
	t0 = now_s();
	while (next < RACE_FRAMES && now_s() - t0 < 30.0) {
		struct pollfd p = { .fd = r.bell[0], .events = POLLIN };
		uint64_t seq;
		size_t len;
		const void *f = peek_from(r.own, &len, &from);

		if (f) {
			memcpy(&seq, f, sizeof(seq));
			bad += len != sizeof(seq) || seq != next;
			next++;
			usb4_shm_ring_pop(r.own);
			continue;
		}
		if (!usb4_shm_ring_sleep_begin(r.own, r.bell[0]))
			continue;
		sleeps++;
		if (poll(&p, 1, 500) == 0 && peek_from(r.own, &len, &from))
			lost++;
		usb4_shm_ring_sleep_end(r.own);
	}
	printf("# %s ring: %llu frames, %llu sleeps, %llu lost wakeups\n",
	       expedited_rings ? "expedited" : "fencing",
	       (unsigned long long) next, (unsigned long long) sleeps,
	       (unsigned long long) lost);
	CHECK_EQ_MSG(next, RACE_FRAMES, "frames received");
	CHECK_EQ_MSG(bad, 0, "frames out of order or damaged");
	CHECK_EQ_MSG(lost, 0, "sleeps a posted frame did not end");
	CHECK_MSG(sleeps > 0, "the owner never slept: the race was not run");
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the producer failed (status %#x)", status);
	ring_free(&r);
}

/* ---- cross memory attach ------------------------------------------------ */

/* Child of the bulk tests: keeps its buffers alive until told to go, then
 * says (by its exit status) whether the parent's write landed. */
static unsigned char wdst_a[10], wdst_b[5000];

static void child_hold(int go_fd)
{
	char c;

	(void) !read(go_fd, &c, 1);
	usb4_test_child_exit(check_fill(wdst_a, sizeof(wdst_a), 9) &&
			     check_fill(wdst_b, sizeof(wdst_b), 10) ? 0 : 5);
}

static void test_cma(void)
{
	/* Set up before fork: the child has the same addresses and contents. */
	static unsigned char src_a[3000], src_b[50000], src_c[7];
	static unsigned char dst_a[100], dst_b[60000];
	static unsigned char expect[53007];
	unsigned char wsrc[sizeof(wdst_a) + sizeof(wdst_b)];
	struct iovec remote[3] = {
		{ src_a, sizeof(src_a) }, { src_b, sizeof(src_b) },
		{ src_c, sizeof(src_c) },
	};
	struct iovec local[2] = {
		{ dst_a, sizeof(dst_a) }, { dst_b, sizeof(dst_b) },
	};
	struct iovec wremote[2] = {
		{ wdst_a, sizeof(wdst_a) }, { wdst_b, sizeof(wdst_b) },
	};
	struct iovec wlocal[3] = {
		{ wsrc, 1 }, { wsrc + 1, 0 }, { wsrc + 1, sizeof(wsrc) - 1 },
	};
	size_t total = sizeof(src_a) + sizeof(src_b) + sizeof(src_c);
	int pipefd[2], status;
	pid_t pid;

	fill(src_a, sizeof(src_a), 1);
	fill(src_b, sizeof(src_b), 2);
	fill(src_c, sizeof(src_c), 3);
	memcpy(expect, src_a, sizeof(src_a));
	memcpy(expect + sizeof(src_a), src_b, sizeof(src_b));
	memcpy(expect + sizeof(src_a) + sizeof(src_b), src_c, sizeof(src_c));
	memset(wdst_a, 0, sizeof(wdst_a));
	memset(wdst_b, 0, sizeof(wdst_b));

	CHECK_EQ(pipe(pipefd), 0);
	pid = usb4_test_fork();
	if (pid == 0) {
		close(pipefd[1]);
		child_hold(pipefd[0]);
	}
	close(pipefd[0]);
	/* Scribble over our copies so only the child's data can pass. */
	memset(src_a, 0, sizeof(src_a));
	memset(src_b, 0, sizeof(src_b));
	memset(src_c, 0, sizeof(src_c));

	CHECK_EQ_MSG(usb4_cma_read(pid, local, 2, remote, 3, total), 0,
		     "reading 3 segments of the child into 2 of ours");
	CHECK_MSG(memcmp(dst_a, expect, sizeof(dst_a)) == 0 &&
		  memcmp(dst_b, expect + sizeof(dst_a),
			 total - sizeof(dst_a)) == 0,
		  "the bytes read are not the child's");

	/* A prefix only: the rest of the local buffer is untouched. */
	memset(dst_a, 0xaa, sizeof(dst_a));
	memset(dst_b, 0xaa, sizeof(dst_b));
	CHECK_EQ(usb4_cma_read(pid, local, 2, remote, 3, 3050), 0);
	CHECK_MSG(memcmp(dst_a, expect, 100) == 0 &&
		  memcmp(dst_b, expect + 100, 2950) == 0,
		  "a 3050-byte prefix read wrong");
	CHECK_EQ_MSG(dst_b[2950], 0xaa, "a prefix read wrote past its length");

	/* Zero bytes is a no-op. */
	CHECK_EQ(usb4_cma_read(pid, local, 2, remote, 3, 0), 0);
	/* More than our buffers hold: an error, not a silent short copy. */
	CHECK_MSG(usb4_cma_read(pid, local, 1, remote, 3, 200) < 0,
		  "a 200-byte read into a 100-byte buffer succeeded");

	/* A remote range the child does not map. */
	{
		struct iovec bad = { (void *) 16, 100 };

		CHECK_EQ_MSG(usb4_cma_read(pid, local, 2, &bad, 1, 100),
			     -FI_EFAULT, "reading unmapped memory of the child");
		CHECK_EQ_MSG(usb4_cma_write(pid, local, 2, &bad, 1, 100),
			     -FI_EFAULT, "writing unmapped memory of the child");
	}

	/* More segments than one system call takes (64): 100 one-byte
	 * segments of the child, read into one buffer, and back. */
	{
		struct iovec many[100];

		for (int i = 0; i < 100; i++)
			many[i] = (struct iovec) { src_b + 3 * i, 1 };
		memset(dst_a, 0, sizeof(dst_a));
		CHECK_EQ_MSG(usb4_cma_read(pid, local, 1, many, 100, 100), 0,
			     "reading 100 one-byte segments of the child");
		for (int i = 0; i < 100; i++)
			if (dst_a[i] != expect[sizeof(src_a) + 3 * i]) {
				CHECK_MSG(0, "segment %d of 100 read wrong", i);
				break;
			}
	}

	/* Writes land in the child (it checks them before it exits). */
	fill(wsrc, sizeof(wdst_a), 9);
	fill(wsrc + sizeof(wdst_a), sizeof(wdst_b), 10);
	CHECK_EQ_MSG(usb4_cma_write(pid, wlocal, 3, wremote, 2, sizeof(wsrc)),
		     0, "writing 3 of our segments into 2 of the child's");

	CHECK_EQ(write(pipefd[1], "g", 1), 1);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child did not find our write in its memory (status "
		  "%#x)", status);
	close(pipefd[1]);

	/* The child is gone (and reaped): its pid no longer exists. */
	CHECK_EQ_MSG(usb4_cma_read(pid, local, 2, remote, 3, total),
		     -FI_EHOSTUNREACH, "reading from a process that is gone");
	CHECK_EQ_MSG(usb4_cma_write(pid, wlocal, 3, wremote, 2, sizeof(wsrc)),
		     -FI_EHOSTUNREACH, "writing to a process that is gone");
}

/* ---- the link through its ops table ------------------------------------- */

#define ID_A	0xa11ce00000000001ull
#define ID_B	0xb0b0000000000002ull
#define ID_C	0xc4a7000000000003ull
#define REG_LEN	4096

/* What a sink was handed. */
struct sink_log {
	const struct usb4_link_ops *ops;
	int n;
	struct usb4_link *link[64];
	uint64_t from[64];
	size_t len[64];
	int pieces[64];
	unsigned char data[64][128];
	int refuse;		/* answer -FI_EAGAIN this many times */
	int offered;		/* frame() calls */
	struct usb4_link_dest *back;	/* dest_of(from) inside frame() */
	int downs;
};

static int sink_frame(void *ctx, struct usb4_link *link, uint64_t from,
		      const struct iovec *frame, int count)
{
	struct sink_log *log = ctx;
	size_t len = 0;

	log->offered++;
	if (log->refuse) {
		log->refuse--;
		return -FI_EAGAIN;
	}
	if (log->n >= 64)
		return 0;
	for (int i = 0; i < count; i++) {
		size_t take = frame[i].iov_len;

		if (len + take > sizeof(log->data[0]))
			take = sizeof(log->data[0]) - len;
		memcpy(log->data[log->n] + len, frame[i].iov_base, take);
		len += frame[i].iov_len;
	}
	log->link[log->n] = link;
	log->from[log->n] = from;
	log->len[log->n] = len;
	log->pieces[log->n] = count;
	log->n++;
	if (log->ops->dest_of)
		log->back = log->ops->dest_of(link, from);
	return 0;
}

static void sink_peer_down(void *ctx, struct usb4_link *link, uint64_t peer,
			   int err)
{
	((struct sink_log *) ctx)->downs++;
}

static int link_open(uint64_t id, int reg_fd, struct sink_log *log,
		     struct usb4_link **link)
{
	const struct usb4_link_ops *ops = &usb4_shm_link_ops;
	struct usb4_link_cfg cfg = {
		.ep_id = id, .reg_fd = reg_fd,
		.sink = { .ctx = log, .frame = sink_frame,
			  .peer_down = sink_peer_down },
	};

	memset(log, 0, sizeof(*log));
	log->ops = ops;
	return ops->open(&cfg, link);
}

static int post_bytes(struct usb4_link *link, struct usb4_link_dest *dest,
		      size_t len, unsigned seed)
{
	static unsigned char out[8192];
	struct iovec iov[2] = {
		{ out, len / 2 }, { out + len / 2, len - len / 2 },
	};

	fill(out, len, seed);
	return link->ops->post(link, dest, iov, 2);
}

/* Refusals of dest_open: wrong inbox, another protocol version. */
static void link_dest_refusals(const struct usb4_wire_addr *ba)
{
	const struct usb4_link_ops *ops = &usb4_shm_link_ops;
	struct usb4_link_dest *d = NULL;
	struct usb4_wire_addr bad;
	struct ring_head *h;
	size_t len;
	uint16_t proto;

	bad = *ba;
	bad.ep_id = htole64(le64toh(ba->ep_id) ^ 1);
	CHECK_EQ_MSG(ops->dest_open(&bad, &d), -FI_EADDRNOTAVAIL,
		     "an address naming another endpoint id opened");
	bad = *ba;
	bad.shm_inbox_fd = htole32(9999);
	CHECK_EQ_MSG(ops->dest_open(&bad, &d), -FI_EHOSTUNREACH,
		     "an address naming no open fd");
	bad = *ba;
	bad.shm_pid = htole32((uint32_t) getppid());
	CHECK_MSG(ops->dest_open(&bad, &d) < 0,
		  "an address naming our parent opened our inbox");

	/* The inbox speaks another version: refused as such. */
	h = usb4_test_map_proc_fd(getpid(), (int32_t) le32toh(ba->shm_inbox_fd), &len);
	CHECK_MSG(h != NULL, "cannot map the inbox of B as a peer");
	if (!h)
		return;
	proto = h->proto;
	CHECK_EQ_MSG(proto, USB4_WIRE_VERSION, "the inbox head moved");
	h->proto = USB4_WIRE_VERSION + 1;
	CHECK_EQ_MSG(ops->dest_open(ba, &d), -FI_ECONNREFUSED,
		     "an inbox of wire version %d opened",
		     USB4_WIRE_VERSION + 1);
	h->proto = 1;
	CHECK_EQ_MSG(ops->dest_open(ba, &d), -FI_ECONNREFUSED,
		     "an inbox of wire version 1 opened");
	h->proto = proto;
	CHECK_EQ(ops->dest_open(ba, &d), 0);
	if (d)
		ops->dest_close(d);
	munmap(h, len);
}

/* Frames A -> B: sizes, pieces, senders, the budget, backpressure. */
static void link_frames(struct usb4_link *a, struct usb4_link *b,
			struct usb4_link_dest *db, struct sink_log *lb,
			size_t fmax)
{
	const struct usb4_link_ops *ops = &usb4_shm_link_ops;
	int n, taken;

	for (int i = 0; i < 3; i++)
		CHECK_EQ_MSG(post_bytes(a, db, 10 + i, 20 + i), 0,
			     "post %d from A to B", i);
	CHECK_EQ_MSG(ops->poll(b, 1), 1, "a poll of budget 1");
	CHECK_EQ_MSG(ops->poll(b, 64), 2, "the rest of three frames");
	CHECK_EQ(lb->n, 3);
	for (int i = 0; i < lb->n && i < 3; i++) {
		CHECK_MSG(lb->from[i] == ID_A, "frame %d handed up from %llx, "
			  "posted by A %llx", i,
			  (unsigned long long) lb->from[i],
			  (unsigned long long) ID_A);
		CHECK_MSG(lb->link[i] == b, "frame %d handed up with another "
			  "link than the one polled", i);
		CHECK_MSG(lb->len[i] == (size_t) 10 + i &&
			  check_fill(lb->data[i], 10 + i, 20 + i),
			  "frame %d arrives wrong (%zu bytes)", i, lb->len[i]);
		CHECK_EQ_MSG(lb->pieces[i], 1, "an shm frame comes in one "
			     "piece");
	}
	CHECK_EQ_MSG(ops->poll(b, 64), 0, "an empty inbox handed something up");

	/* Too large, then a full inbox. */
	CHECK_EQ(post_bytes(a, db, fmax, 1), 0);
	CHECK_EQ_MSG(post_bytes(a, db, fmax + 1, 1), -FI_EMSGSIZE,
		     "a frame of frame_max + 1 bytes");
	for (n = 1; n < 100000 && post_bytes(a, db, 8, 40 + n) == 0; n++)
		;
	/* A's frames go into its packed lane of B's inbox: many more 8-byte
	 * frames than a lane has slots. */
	CHECK_MSG(n > 4 * USB4_SHM_LANE_SLOTS && n < 100000, "a packed lane "
		  "took %d frames", n);
	CHECK_EQ(post_bytes(a, db, 8, 0), -FI_EAGAIN);

	/* The sink cannot take one now: the link keeps it and offers it
	 * again, in order, on a later poll. */
	lb->n = 0;
	lb->offered = 0;
	lb->refuse = 1;
	CHECK_EQ_MSG(ops->poll(b, 64), 0, "a frame the sink refused counted "
		     "as taken");
	CHECK_EQ(lb->offered, 1);
	CHECK_EQ(lb->n, 0);
	CHECK_EQ_MSG(post_bytes(a, db, 8, 0), -FI_EAGAIN,
		     "a refused frame gave its slot back");
	CHECK_EQ(ops->poll(b, 64), 64);
	CHECK_EQ_MSG(lb->len[0], fmax, "the refused frame is not offered "
		     "first again");
	/* The rest in batches of the sink's 64: all of them, in order. */
	taken = 0;
	for (int i = 1, k = 64; k; k = ops->poll(b, 64), i = 0) {
		for (; i < lb->n; i++, taken++)
			CHECK_MSG(lb->len[i] == 8 &&
				  check_fill(lb->data[i], 8, 41 + taken),
				  "frame %d after a refusal arrives wrong",
				  taken);
		lb->n = 0;
	}
	CHECK_EQ_MSG(taken, n - 1, "8-byte frames lost");
}

/*
 * The endpoints of one AV share its dests: A and B (to itself, as a
 * message to oneself goes) post through the same dest of B, interleaved.
 * Each frame is handed up as its poster's (one of them has the dest's
 * lane, the other the shared slots; a lane that named the first poster
 * carried B's frames as A's), each poster's frames in order.
 */
static void link_shared_dest(struct usb4_link *a, struct usb4_link *b,
			     struct usb4_link_dest *db, struct sink_log *lb)
{
	const struct usb4_link_ops *ops = &usb4_shm_link_ops;
	int next_a = 0, next_b = 0;

	CHECK_EQ(ops->poll(b, 64), 0);
	lb->n = 0;
	lb->refuse = 0;
	for (int i = 0; i < 10; i++)
		CHECK_EQ_MSG(post_bytes(i % 2 ? b : a, db, 16, 200 + i), 0,
			     "post %d through the shared dest", i);
	CHECK_EQ(ops->poll(b, 64), 10);
	for (int i = 0; i < lb->n; i++) {
		unsigned seed = (unsigned) -1;

		if (lb->from[i] == ID_A) {
			seed = 200 + 2 * next_a++;
		} else if (lb->from[i] == ID_B) {
			seed = 201 + 2 * next_b++;
		}
		CHECK_MSG(seed != (unsigned) -1 && lb->len[i] == 16 &&
			  check_fill(lb->data[i], 16, seed),
			  "frame %d handed up as %llx is not that poster's "
			  "next", i, (unsigned long long) lb->from[i]);
	}
	CHECK_EQ(next_a, 5);
	CHECK_EQ(next_b, 5);
	lb->n = 0;
}

/* The way back to a sender B heard from; sleeping; bulk; counters; table. */
static void link_services(struct usb4_link *a, struct usb4_link *b,
			  struct usb4_link_dest *da, struct usb4_link_dest *db,
			  struct sink_log *la, struct sink_log *lb,
			  const unsigned char *reg)
{
	const struct usb4_link_ops *ops = &usb4_shm_link_ops;
	static unsigned char src[20000], dst[20000];
	struct iovec l = { dst, sizeof(dst) }, r = { src, sizeof(src) };
	uint64_t writes, reads;
	void *table;
	size_t tlen;

	/* dest_of from inside frame(): B answers A without an address. */
	lb->n = 0;
	lb->back = NULL;
	CHECK_EQ(post_bytes(a, db, 16, 3), 0);
	CHECK_EQ(ops->poll(b, 64), 1);
	CHECK_MSG(lb->back != NULL, "dest_of(B, A's id) inside frame() "
		  "found no way back");
	if (lb->back) {
		la->n = 0;
		CHECK_EQ_MSG(post_bytes(b, lb->back, 12, 4), 0,
			     "posting back through dest_of");
		CHECK_EQ(ops->poll(a, 64), 1);
		CHECK_MSG(la->n == 1 && la->from[0] == ID_B &&
			  check_fill(la->data[0], 12, 4),
			  "the answer through dest_of did not reach A from B");
		CHECK_MSG(ops->dest_of(b, ID_A) == lb->back,
			  "dest_of opened a second way back to A");
		CHECK_EQ(ops->peer_state(b, lb->back), 0);
	}
	CHECK_MSG(ops->dest_of(b, 0x5eed) == NULL,
		  "dest_of found a way back to an id never heard from");

	/* Sleeping on wait_fd. */
	CHECK_MSG(ops->wait_fd(b) >= 0, "B has no wait fd");
	CHECK_EQ_MSG(ops->timer_us(b), -1, "the shm link has no timers");
	CHECK_MSG(ops->sleep_begin(b), "sleep_begin on an empty inbox says "
		  "do not sleep");
	CHECK(!readable(ops->wait_fd(b)));
	CHECK_EQ(post_bytes(a, db, 16, 5), 0);
	CHECK_MSG(readable(ops->wait_fd(b)), "a post did not wake B's "
		  "wait fd while B slept");
	ops->sleep_end(b);
	CHECK_MSG(!ops->sleep_begin(b), "sleep_begin with a frame waiting "
		  "says sleep");
	CHECK_EQ(ops->poll(b, 64), 1);

	/* Bulk copies with the peer's process (here: ourselves). */
	fill(src, sizeof(src), 6);
	CHECK_EQ_MSG(ops->bulk_read(db, &l, 1, &r, 1, sizeof(src)), 0,
		     "bulk_read through a dest");
	CHECK_MSG(!memcmp(src, dst, sizeof(src)), "bulk_read copied wrong");
	fill(dst, sizeof(dst), 7);
	CHECK_EQ_MSG(ops->bulk_write(db, &l, 1, &r, 1, 1000), 0,
		     "bulk_write through a dest");
	CHECK_MSG(check_fill(src, 1000, 7), "bulk_write copied wrong");
	fill(dst, sizeof(dst), 6);
	CHECK_MSG(!memcmp(src + 1000, dst + 1000, sizeof(src) - 1000),
		  "bulk_write of 1000 bytes wrote past them");

	/* Remote accesses counted at the target. */
	ops->remote_counts(b, &writes, &reads);
	CHECK_MSG(writes == 0 && reads == 0, "fresh remote counts");
	ops->count_remote(db, true);
	ops->count_remote(db, true);
	ops->count_remote(db, false);
	ops->remote_counts(b, &writes, &reads);
	CHECK_MSG(writes == 2 && reads == 1, "B counted %llu writes and %llu "
		  "reads, A made 2 and 1", (unsigned long long) writes,
		  (unsigned long long) reads);
	ops->remote_counts(a, &writes, &reads);
	CHECK_MSG(writes == 0 && reads == 0, "accesses to B counted at A");

	/* The registration table B published, as A maps it. */
	table = ops->peer_table(db, &tlen);
	CHECK_MSG(table != NULL && tlen == REG_LEN,
		  "B's registration table not mapped through the dest (%zu "
		  "bytes)", tlen);
	if (table)
		CHECK_MSG(!memcmp(table, reg, REG_LEN), "B's table as mapped "
			  "by A differs from B's own");
	CHECK_MSG(ops->peer_table(da, &tlen) == NULL,
		  "a table for A, which published none");
}

/* A child opens a link of its own, posts to A by A's address, and waits
 * for A's answer (which A sends through dest_of).  It exits without
 * closing its link: its inbox is never retired, only its process ends. */
static void child_link(const struct usb4_wire_addr *aa, int done_fd)
{
	const struct usb4_link_ops *ops = &usb4_shm_link_ops;
	static struct sink_log lc;
	struct usb4_link *c;
	struct usb4_link_dest *da;
	char go;

	if (link_open(ID_C, -1, &lc, &c))
		usb4_test_child_exit(2);
	if (ops->dest_open(aa, &da))
		usb4_test_child_exit(3);
	if (post_bytes(c, da, 33, 8))
		usb4_test_child_exit(4);
	for (double t0 = now_s(); lc.n == 0 && now_s() - t0 < 10.0; )
		if (!ops->poll(c, 8))
			usleep(1000);
	if (lc.n != 1 || lc.from[0] != ID_A || lc.len[0] != 21 ||
	    !check_fill(lc.data[0], 21, 9))
		usb4_test_child_exit(5);
	/* Stay until the parent has looked at us alive. */
	(void) !read(done_fd, &go, 1);
	usb4_test_child_exit(0);
}

static void link_child(struct usb4_link *a, const struct usb4_wire_addr *aa,
		       struct sink_log *la)
{
	const struct usb4_link_ops *ops = &usb4_shm_link_ops;
	struct usb4_link_dest *dc = NULL;
	int pipefd[2], status;
	pid_t pid;

	CHECK_EQ(pipe(pipefd), 0);
	pid = usb4_test_fork();
	if (pid == 0) {
		close(pipefd[1]);
		child_link(aa, pipefd[0]);
	}
	close(pipefd[0]);
	la->n = 0;
	la->back = NULL;
	for (double t0 = now_s(); la->n == 0 && now_s() - t0 < 10.0; )
		if (!ops->poll(a, 8))
			usleep(1000);
	CHECK_MSG(la->n == 1 && la->from[0] == ID_C && la->len[0] == 33 &&
		  check_fill(la->data[0], 33, 8),
		  "the child's frame did not reach A from C's id");
	dc = la->back;
	CHECK_MSG(dc != NULL, "no way back to a sender in another process");
	if (dc) {
		CHECK_EQ(post_bytes(a, dc, 21, 9), 0);
		CHECK_EQ_MSG(ops->peer_state(a, dc), 0, "a live peer process "
			     "said down");
	}
	CHECK_EQ(write(pipefd[1], "g", 1), 1);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child's side failed (status %#x: 2 open, 3 dest_open, "
		  "4 post, 5 no answer from A)", status);
	close(pipefd[1]);
	/* Its process is gone though it never closed the inbox. */
	if (dc)
		CHECK_EQ_MSG(ops->peer_state(a, dc), -FI_EHOSTUNREACH,
			     "a peer whose process died");
}

static void test_link_ops(void)
{
	const struct usb4_link_ops *ops = &usb4_shm_link_ops;
	static struct sink_log la, lb;
	struct usb4_link *a = NULL, *b = NULL;
	struct usb4_link_dest *da = NULL, *db = NULL;
	struct usb4_wire_addr aa, ba;
	uint64_t host = usb4_host_id();
	size_t fmax, saved_slots = usb4_params.ring_slots;
	size_t saved_eager = usb4_params.eager_size;
	unsigned char *reg;
	int reg_fd;

	CHECK_MSG(!strcmp(ops->name, "shm"), "name %s", ops->name);
	CHECK_MSG((ops->caps & USB4_LINK_CAP_BULK_READ) &&
		  (ops->caps & USB4_LINK_CAP_ONE_SIDED),
		  "the shm link lacks bulk reads or one-sided access");
	CHECK_MSG(!ops->other_hosts, "the shm link claims other hosts");
	CHECK_MSG(ops->available(), "the shm link is not available");

	usb4_params.ring_slots = SLOTS;
	usb4_params.eager_size = 1000;
	CHECK_EQ(usb4_shared_create("usb4-test-reg", REG_LEN, (void **) &reg,
				    &reg_fd), 0);
	fill(reg, REG_LEN, 11);
	CHECK_EQ_MSG(link_open(ID_A, -1, &la, &a), 0, "opening link A");
	CHECK_EQ_MSG(link_open(ID_B, reg_fd, &lb, &b), 0, "opening link B");
	if (!a || !b)
		goto out;

	/* Addresses: the link's part, nothing else touched. */
	usb4_wire_addr_init(&aa, host, ID_A);
	usb4_wire_addr_init(&ba, host, ID_B);
	ops->addr(a, &aa);
	ops->addr(b, &ba);
	CHECK_EQ(le32toh(aa.shm_pid), getpid());
	CHECK_MSG((int32_t) le32toh(aa.shm_inbox_fd) >= 0 &&
		  aa.shm_inbox_fd != ba.shm_inbox_fd,
		  "inbox fds %d and %d", (int32_t) le32toh(aa.shm_inbox_fd),
		  (int32_t) le32toh(ba.shm_inbox_fd));
	CHECK_EQ_MSG((int32_t) le32toh(aa.shm_reg_fd), -1, "A published no "
		     "table");
	CHECK_EQ_MSG((int32_t) le32toh(ba.shm_reg_fd), reg_fd,
		     "B's table fd in its address");
	CHECK_MSG(le64toh(aa.ep_id) == ID_A && le64toh(aa.host_id) == host &&
		  aa.proto == USB4_WIRE_VERSION && aa.udp_family == 0,
		  "addr() wrote outside the shm part");

	/* Which addresses it reaches. */
	CHECK_MSG(ops->reaches(&ba, host), "B on this host is not reached");
	CHECK_MSG(!ops->reaches(&ba, host + 1), "an endpoint on another host "
		  "is reached");
	{
		struct usb4_wire_addr none;

		usb4_wire_addr_init(&none, host, 77);
		CHECK_MSG(!ops->reaches(&none, host), "an address without an "
			  "inbox is reached");
	}

	CHECK_EQ_MSG(ops->dest_open(&ba, &db), 0, "dest_open of B");
	CHECK_EQ_MSG(ops->dest_open(&aa, &da), 0, "dest_open of A");
	if (!da || !db)
		goto out;
	fmax = ops->frame_max(b, NULL);
	CHECK_MSG(fmax >= sizeof(struct usb4_wire_hdr) + 1000 && fmax < 1200,
		  "frame_max %zu for an eager size of 1000", fmax);
	CHECK_EQ_MSG(ops->frame_max(a, db), fmax, "frame_max towards B as A "
		     "sees it");
	CHECK_EQ(ops->peer_state(a, db), 0);

	link_dest_refusals(&ba);
	link_frames(a, b, db, &lb, fmax);
	link_services(a, b, da, db, &la, &lb, reg);
	link_shared_dest(a, b, db, &lb);
	link_child(a, &aa, &la);

	/* B's owner closes: A sees it down, and posts fail. */
	ops->close(b);
	b = NULL;
	CHECK_EQ_MSG(ops->peer_state(a, db), -FI_EHOSTUNREACH,
		     "a peer whose owner closed its inbox");
	CHECK_EQ_MSG(post_bytes(a, db, 8, 1), -FI_EHOSTUNREACH,
		     "posting to a closed inbox");
	CHECK_EQ_MSG(la.downs + lb.downs, 0, "the shm link reports peers down "
		     "only through peer_state");
out:
	if (da)
		ops->dest_close(da);
	if (db)
		ops->dest_close(db);
	if (a)
		ops->close(a);
	if (b)
		ops->close(b);
	ops->dest_close(NULL);
	usb4_shared_destroy(reg, REG_LEN, reg_fd);
	usb4_params.ring_slots = saved_slots;
	usb4_params.eager_size = saved_eager;
}

/* ---- nothing left behind ------------------------------------------------ */

static void test_no_residue(void)
{
	const struct usb4_link_ops *ops = &usb4_shm_link_ops;
	static struct sink_log logs[4];
	struct usb4_link *links[4] = { NULL };
	struct test_ring r;
	int memfds, memfds_open, fds = usb4_test_count_fds(&memfds);

	/* Everything the tests above opened is closed again. */
	CHECK_EQ_MSG(memfds, 0, "memfds of earlier tests still open");
	CHECK_EQ_MSG(usb4_test_count_usb4_maps(), 0, "memfds of earlier tests still "
		     "mapped");
	for (int i = 0; i < 4; i++)
		CHECK_EQ(link_open(i + 1, -1, &logs[i], &links[i]), 0);
	CHECK_EQ(ring_make(&r, 16, 256, 5), 0);
	usb4_test_count_fds(&memfds_open);
	CHECK_EQ_MSG(memfds_open, 5, "4 links and a ring, each one memfd");
	CHECK_EQ_MSG(usb4_test_count_dev_shm_usb4(), 0, "a memfd shows in /dev/shm");
	for (int i = 0; i < 4; i++)
		if (links[i])
			ops->close(links[i]);
	ring_free(&r);
	CHECK_EQ_MSG(usb4_test_count_fds(&memfds), fds, "links closed, fds leaked "
		     "(inbox or bell)");
	CHECK_EQ(memfds, 0);
	CHECK_EQ_MSG(usb4_test_count_usb4_maps(), 0, "links closed, inboxes still "
		     "mapped");
	CHECK_EQ(usb4_test_count_dev_shm_usb4(), 0);
}

/* ---- single-producer lanes (usb4_shm_lane.c) ---------------------------- */

/* A frame carrying (producer, seq), posted through prod (NULL: shared). */
static int post_seq(struct usb4_shm_ring *ring, struct usb4_shm_producer *prod,
		    const struct usb4_shm_sender *from, uint32_t seq)
{
	uint32_t msg[2] = { (uint32_t) from->id, seq };
	struct iovec iov = { msg, sizeof(msg) };

	return usb4_shm_ring_post(ring, prod, -1, from, &iov, 1);
}

/* Drains the ring: each producer's frames in order, senders named right;
 * returns how many frames were taken. */
static size_t drain_in_order(struct usb4_shm_ring *ring, uint32_t *next,
			     size_t producers)
{
	struct usb4_shm_sender from;
	const uint32_t *msg;
	size_t len, taken = 0;

	while ((msg = peek_from(ring, &len, &from))) {
		CHECK_EQ(len, 8);
		CHECK(msg[0] < producers && from.id == msg[0]);
		CHECK_EQ(from.pid, 1000 + msg[0]);
		CHECK_EQ(from.inbox_fd, (int32_t) (10 + msg[0]));
		if (msg[0] < producers) {
			CHECK_EQ_MSG(msg[1], next[msg[0]], "producer %u out of "
				     "order", msg[0]);
			next[msg[0]] = msg[1] + 1;
		}
		usb4_shm_ring_pop(ring);
		taken++;
	}
	return taken;
}

static struct usb4_shm_sender lane_sender(uint32_t i)
{
	return (struct usb4_shm_sender) {
		.id = i, .pid = 1000 + i, .inbox_fd = (int32_t) (10 + i),
	};
}

/*
 * Five producers, two lanes: the first two to post get lanes, the others
 * (and one posting as producers before lanes did) use the shared slots;
 * interleaved posts come out in each producer's order, none lost.  Lanes
 * packed or slotted.
 */
static void test_lanes_order(bool packed)
{
	struct usb4_shm_producer prod[5] = { 0 };
	uint32_t next[6] = { 0 }, sent[6] = { 0 };
	struct test_ring r;
	size_t taken = 0;

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0x1a1e), 0);
	if (!packed)
		slotted(&r);
	for (int round = 0; round < 200; round++) {
		for (uint32_t i = 0; i < 6; i++) {
			struct usb4_shm_sender from = lane_sender(i);
			int ret = post_seq(r.peer, i < 5 ? &prod[i] : NULL,
					   &from, sent[i]);

			if (!ret)
				sent[i]++;
			else
				CHECK_EQ(ret, -FI_EAGAIN);
		}
		if (round % 3 == 2)
			taken += drain_in_order(r.own, next, 6);
	}
	taken += drain_in_order(r.own, next, 6);
	for (uint32_t i = 0; i < 6; i++)
		CHECK_EQ_MSG(next[i], sent[i], "producer %u lost frames", i);
	CHECK_EQ(taken, (size_t) sent[0] + sent[1] + sent[2] + sent[3] +
			sent[4] + sent[5]);
	CHECK(sent[0] > 0 && sent[4] > 0 && sent[5] > 0);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(prod[i].state, packed ? USB4_SHM_PRODUCER_PACKED :
						 USB4_SHM_PRODUCER_LANE);
	CHECK(prod[0].lane != prod[1].lane);
	for (int i = 2; i < 5; i++)
		CHECK_EQ_MSG(prod[i].state, USB4_SHM_PRODUCER_SHARED,
			     "producer %d beyond the lanes", i);
	ring_free(&r);
}

/* A full lane refuses (-FI_EAGAIN) and keeps every frame it took; the
 * producer never spills into the shared slots (that would reorder). */
static void test_lane_backpressure(void)
{
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(0);
	uint32_t next[1] = { 0 }, seq = 0;
	struct test_ring r;

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0xf011), 0);
	slotted(&r);
	while (post_seq(r.peer, &prod, &from, seq) == 0)
		seq++;
	CHECK_EQ(seq, LANE_SLOTS);
	CHECK_EQ(post_seq(r.peer, &prod, &from, seq), -FI_EAGAIN);
	CHECK_EQ(prod.state, USB4_SHM_PRODUCER_LANE);
	/* One taken: one more fits. */
	{
		struct usb4_shm_sender f;
		size_t len;
		const uint32_t *msg = peek_from(r.own, &len, &f);

		CHECK(msg && msg[1] == 0);
		usb4_shm_ring_pop(r.own);
		next[0] = 1;
	}
	CHECK_EQ(post_seq(r.peer, &prod, &from, seq), 0);
	seq++;
	CHECK_EQ(post_seq(r.peer, &prod, &from, seq), -FI_EAGAIN);
	CHECK_EQ(drain_in_order(r.own, next, 1), LANE_SLOTS);
	CHECK_EQ(next[0], seq);
	ring_free(&r);
}

/* An owner before lanes (no USB4_SHM_LANES): a producer uses the shared
 * slots; frames of the 8-byte kind fill one line in a lane. */
static void test_lanes_old_owner(void)
{
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(0);
	uint32_t next[1] = { 0 };
	struct test_ring r;
	void *mem;

	memset(&r, 0, sizeof(r));
	r.len = usb4_shm_ring_bytes(SLOTS, FRAME_MAX, 0, 0);
	CHECK_EQ(usb4_shared_create("usb4-test-ring", r.len, &mem, &r.fd), 0);
	r.own = mem;
	CHECK_EQ(pipe2(r.bell, O_NONBLOCK | O_CLOEXEC), 0);
	usb4_shm_ring_init(r.own, SLOTS, FRAME_MAX, 7, r.bell[1], false, 0, 0);
	r.peer = usb4_test_map_proc_fd(getpid(), r.fd, &r.peer_len);
	CHECK(r.peer && usb4_shm_ring_check(r.peer, r.peer_len, 7,
					    getpid()) == 0);
	for (uint32_t seq = 0; seq < 3; seq++)
		CHECK_EQ(post_seq(r.peer, &prod, &from, seq), 0);
	CHECK_EQ(prod.state, USB4_SHM_PRODUCER_SHARED);
	CHECK_EQ(drain_in_order(r.own, next, 1), 3);
	ring_free(&r);

	/* With lanes: an 8-byte message's frame ends in its slot's line. */
	{
		struct usb4_shm_producer p2 = { 0 };
		unsigned char msg[sizeof(struct usb4_wire_hdr) + 8];
		struct iovec iov = { msg, sizeof(msg) };
		struct usb4_shm_sender f;
		const unsigned char *got;
		size_t len;

		CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 8), 0);
		slotted(&r);
		fill(msg, sizeof(msg), 3);
		CHECK_EQ(usb4_shm_ring_post(r.peer, &p2, -1, &from, &iov, 1), 0);
		got = peek_from(r.own, &len, &f);
		CHECK(got && len == sizeof(msg) && check_fill(got, len, 3));
		CHECK_EQ_MSG(((uintptr_t) got + len - 1) / 64,
			     ((uintptr_t) got - 8) / 64,
			     "an 8-byte message's frame spans two lines");
		ring_free(&r);
	}
}

/*
 * A peer writes what it likes into the inbox: a claimed-lanes count far
 * beyond the lanes neither makes the owner read past them nor hands a
 * producer a lane that is not there; lane geometry that does not fit the
 * mapping or the frames is refused by producers' checks; a lane slot's
 * length beyond the slot reads as a short frame.
 */
static void test_lanes_malicious(void)
{
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(0);
	uint32_t next[1] = { 0 };
	struct usb4_shm_ring *ring;
	struct test_ring r;
	struct usb4_shm_sender f;
	uint32_t saved;
	size_t len;

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0xbad), 0);
	slotted(&r);
	ring = r.peer;
	atomic_store(&ring->lanes_claimed, 0xfffffff0u);
	CHECK(!peek_one(r.own, &len, &f.id));
	CHECK_EQ(usb4_shm_lanes_active(r.own), LANES);
	CHECK_EQ(post_seq(r.peer, &prod, &from, 0), 0);
	CHECK_EQ(prod.state, USB4_SHM_PRODUCER_SHARED);
	CHECK_EQ(atomic_load(&ring->lanes_claimed), 0xfffffff0u);
	CHECK_EQ(drain_in_order(r.own, next, 1), 1);

	/* Geometry. */
	saved = ring->nlanes;
	ring->nlanes = USB4_SHM_LANES_MAX + 1;
	CHECK_EQ(usb4_shm_ring_check(r.peer, r.peer_len, 0xbad, getpid()),
		 -FI_EINVAL);
	ring->nlanes = LANES + 1;	/* one more than the mapping holds */
	CHECK_EQ(usb4_shm_ring_check(r.peer, r.peer_len, 0xbad, getpid()),
		 -FI_EINVAL);
	ring->nlanes = saved;
	saved = ring->lane_slots;
	ring->lane_slots = 3;
	CHECK_EQ(usb4_shm_ring_check(r.peer, r.peer_len, 0xbad, getpid()),
		 -FI_EINVAL);
	ring->lane_slots = 1u << 30;
	CHECK_EQ(usb4_shm_ring_check(r.peer, r.peer_len, 0xbad, getpid()),
		 -FI_EINVAL);
	ring->lane_slots = saved;
	saved = ring->lane_slot_size;
	ring->lane_slot_size = 64;	/* smaller than the shared slots' frames */
	CHECK_EQ(usb4_shm_ring_check(r.peer, r.peer_len, 0xbad, getpid()),
		 -FI_EINVAL);
	ring->lane_slot_size = saved;
	CHECK_EQ(usb4_shm_ring_check(r.peer, r.peer_len, 0xbad, getpid()), 0);

	/* A lane slot's length beyond the slot. */
	atomic_store(&ring->lanes_claimed, 0);
	memset(&prod, 0, sizeof(prod));
	CHECK_EQ(post_seq(r.peer, &prod, &from, 0), 0);
	CHECK_EQ(prod.state, USB4_SHM_PRODUCER_LANE);
	{
		const char *p = peek_one(r.own, &len, &f.id);

		CHECK(p);
		if (p) {
			((uint32_t *) (void *) (p - 4))[0] = 0xffffff;
			CHECK(peek_one(r.own, &len, &f.id) == p);
			CHECK_EQ(len, 0);
			usb4_shm_ring_pop(r.own);
		}
	}
	ring_free(&r);
}

/* ---- small frames of a lane (usb4_shm_small.c) -------------------------- */

/* An eager frame's wire header as the core builds it (little-endian). */
static struct usb4_wire_hdr small_hdr(uint64_t src, uint16_t wflags,
				      uint64_t tag, uint64_t data, size_t plen)
{
	return (struct usb4_wire_hdr) {
		.version = USB4_WIRE_VERSION, .type = USB4_FRAME_EAGER,
		.flags = htole16(wflags), .payload_len = htole32((uint32_t) plen),
		.src_id = htole64(src), .tag = htole64(tag),
		.data = htole64(data), .total_len = htole64(plen),
	};
}

static int post_hdr(struct usb4_shm_ring *ring, struct usb4_shm_producer *prod,
		    const struct usb4_shm_sender *from,
		    const struct usb4_wire_hdr *h, const void *payload,
		    size_t plen)
{
	struct iovec iov[2] = {
		{ (void *) h, sizeof(*h) }, { (void *) payload, plen },
	};

	return usb4_shm_ring_post(ring, prod, -1, from, iov, 2);
}

/* The frame at the head is h and payload, as the core would parse it;
 * small: it came as a small frame (in one cache line with its headers). */
static void check_head(struct usb4_shm_ring *own, const struct usb4_wire_hdr *h,
		       const unsigned char *payload, size_t plen, bool small,
		       uint64_t from)
{
	struct usb4_wire_hdr rebuilt;
	struct iovec frame[2];
	uint64_t id = 0;
	int n = usb4_shm_ring_peek(own, frame, &rebuilt, &id);

	CHECK_EQ(id, from);
	CHECK_EQ_MSG(n, small ? 2 : 1, "a frame of %zu bytes %s", plen,
		     small ? "went whole" : "went small");
	if (n == 2) {
		const char *p = frame[1].iov_base;

		CHECK(frame[0].iov_base == &rebuilt &&
		      frame[0].iov_len == sizeof(*h));
		CHECK_MSG(!memcmp(&rebuilt, h, sizeof(*h)),
			  "the rebuilt header differs (%zu bytes)", plen);
		CHECK_EQ(frame[1].iov_len, plen);
		CHECK(!memcmp(p, payload, plen));
		/* A slotted lane's small frame: the slot's header starts 24
		 * bytes before the payload. */
		if (!(own->flags & USB4_SHM_PACKED))
			CHECK_EQ_MSG(((uintptr_t) p + plen - 1) / 64,
				     ((uintptr_t) p - 24) / 64, "a small frame "
				     "of %zu bytes spans two lines", plen);
	} else if (n == 1) {
		CHECK_EQ(frame[0].iov_len, sizeof(*h) + plen);
		CHECK(!memcmp(frame[0].iov_base, h, sizeof(*h)) &&
		      !memcmp((const char *) frame[0].iov_base + sizeof(*h),
			      payload, plen));
	}
	if (n)
		usb4_shm_ring_pop(own);
}

/* Eager frames of 9 to USB4_SHM_SMALL_MAX bytes go small, with any tag,
 * data and the flags they may carry; larger ones go whole, and so do
 * those of up to 8 bytes (whole, they fill one line already). */
static void test_small_frames(void)
{
	static const uint16_t flags[] = {
		0, USB4_WF_TAGGED, USB4_WF_CQ_DATA,
		USB4_WF_TAGGED | USB4_WF_CQ_DATA,
	};
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(5);
	unsigned char payload[FRAME_MAX];
	struct test_ring r;

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0x5a11), 0);
	slotted(&r);
	CHECK(r.own->flags & USB4_SHM_SMALL);
	for (size_t plen = 0; plen <= 64; plen++)
		for (size_t k = 0; k < 4; k++) {
			struct usb4_wire_hdr h = small_hdr(5, flags[k],
				0x0123456789abcdefull ^ plen,
				0xfedcba9876543210ull + k, plen);

			fill(payload, plen, (unsigned) (plen * 4 + k));
			CHECK_EQ(post_hdr(r.peer, &prod, &from, &h, payload,
					  plen), 0);
			check_head(r.own, &h, payload, plen,
				   plen > 8 && plen <= USB4_SHM_SMALL_MAX, 5);
			/* The payload in two pieces of every split. */
			for (size_t cut = 0; cut <= plen; cut += 1 + plen / 7) {
				struct iovec iov[3] = {
					{ &h, sizeof(h) }, { payload, cut },
					{ payload + cut, plen - cut },
				};

				CHECK_EQ(usb4_shm_ring_post(r.peer, &prod, -1,
							    &from, iov, 3), 0);
				check_head(r.own, &h, payload, plen,
					   plen > 8 &&
					   plen <= USB4_SHM_SMALL_MAX, 5);
			}
		}
	CHECK_EQ(prod.state, USB4_SHM_PRODUCER_LANE);
	ring_free(&r);
}

/* What a small frame cannot say goes whole: a delivery ACK request (it
 * needs msg_id), a msg_id, another type or version, a sender id not the
 * lane's, a total length that is not the payload's, a header split
 * across iovecs; so does any frame into the shared slots. */
static void test_small_ineligible(void)
{
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(6);
	unsigned char payload[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	struct usb4_wire_hdr h[8];
	struct test_ring r;

	for (int i = 0; i < 8; i++)
		h[i] = small_hdr(6, USB4_WF_TAGGED, 77, 0, 16);
	h[0].flags = htole16(USB4_WF_TAGGED | USB4_WF_ACK_REQ);
	h[1].msg_id = htole64(9);
	h[2].type = USB4_FRAME_RTS;
	h[3].version = USB4_WIRE_VERSION + 1;
	h[4].src_id = htole64(7);
	h[5].total_len = htole64(4096);
	h[6].flags = htole16(USB4_WF_READ_RESP);
	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0x1e1), 0);
	slotted(&r);
	for (int i = 0; i < 7; i++) {
		CHECK_EQ(post_hdr(r.peer, &prod, &from, &h[i], payload, 16), 0);
		check_head(r.own, &h[i], payload, 16, false, 6);
	}
	/* Header and payload in one iovec, or the header in two. */
	{
		unsigned char whole[sizeof(h[7]) + 16];
		struct iovec one = { whole, sizeof(whole) };
		struct iovec two[3] = {
			{ whole, 20 }, { whole + 20, sizeof(h[7]) - 20 },
			{ payload, 16 },
		};

		memcpy(whole, &h[7], sizeof(h[7]));
		memcpy(whole + sizeof(h[7]), payload, 16);
		CHECK_EQ(usb4_shm_ring_post(r.peer, &prod, -1, &from, &one, 1),
			 0);
		check_head(r.own, &h[7], payload, 16, false, 6);
		CHECK_EQ(usb4_shm_ring_post(r.peer, &prod, -1, &from, two, 3),
			 0);
		check_head(r.own, &h[7], payload, 16, false, 6);
	}
	/* The shared slots name no sender per lane: whole frames there. */
	CHECK_EQ(post_hdr(r.peer, NULL, &from, &h[7], payload, 16), 0);
	check_head(r.own, &h[7], payload, 16, false, 6);
	ring_free(&r);
}

/*
 * Old and new side by side: an owner that does not read small frames
 * (USB4_SHM_SMALL clear, as owners before them) gets whole frames from a
 * producer of today, in order with the small ones it took before; a full
 * lane of small frames refuses (-FI_EAGAIN) and gives them in order.
 */
static void test_small_mixed_and_full(void)
{
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(3);
	unsigned char payload[16];
	struct usb4_wire_hdr h[LANE_SLOTS];
	struct test_ring r;
	uint32_t posted = 0;

	fill(payload, sizeof(payload), 9);
	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0x01d), 0);
	slotted(&r);
	for (;;) {
		struct usb4_wire_hdr hh = small_hdr(3, USB4_WF_TAGGED,
						    posted, 0, 16);
		int ret;

		/* The owner stops reading small frames half way. */
		if (posted == LANE_SLOTS / 2)
			r.peer->flags &= ~USB4_SHM_SMALL;
		ret = post_hdr(r.peer, &prod, &from, &hh, payload, 16);
		if (ret) {
			CHECK_EQ(ret, -FI_EAGAIN);
			break;
		}
		CHECK(posted < LANE_SLOTS);
		if (posted < LANE_SLOTS)
			h[posted] = hh;
		posted++;
	}
	CHECK_EQ(posted, LANE_SLOTS);
	for (uint32_t i = 0; i < posted && i < LANE_SLOTS; i++)
		check_head(r.own, &h[i], payload, 16, i < LANE_SLOTS / 2, 3);
	/* Taken: room again, whole frames while the flag stays clear. */
	{
		struct usb4_wire_hdr hh = small_hdr(3, 0, 1, 2, 16);

		CHECK_EQ(post_hdr(r.peer, &prod, &from, &hh, payload, 16), 0);
		check_head(r.own, &hh, payload, 16, false, 3);
		r.peer->flags |= USB4_SHM_SMALL;
		CHECK_EQ(post_hdr(r.peer, &prod, &from, &hh, payload, 16), 0);
		check_head(r.own, &hh, payload, 16, true, 3);
	}
	ring_free(&r);
}

/* A small frame is written by another process: a length beyond its slot
 * or flags it may not carry come up as an empty frame (the core counts
 * it short and drops it), whatever else the slot says. */
static void test_small_malicious(void)
{
	static const uint32_t bad[] = {
		USB4_SHM_SMALL_BIT | 0xffffu,
		USB4_SHM_SMALL_BIT | (1000u - 16),	/* fits the slot, not a line */
		USB4_SHM_SMALL_BIT | (USB4_SHM_SMALL_MAX + 1),
		USB4_SHM_SMALL_BIT | ((uint32_t) USB4_WF_ACK_REQ << 16) | 8,
		USB4_SHM_SMALL_BIT | ((uint32_t) USB4_WF_READ_RESP << 16) | 8,
		USB4_SHM_SMALL_BIT | (0x4000u << 16) | 8,
		0x7fffffffu,				/* a whole frame, too long */
	};
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(4);
	unsigned char payload[16] = { 0 };
	struct usb4_wire_hdr h = small_hdr(4, USB4_WF_TAGGED, 1, 0, 16);
	struct test_ring r;

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0xbadf), 0);
	slotted(&r);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct usb4_wire_hdr rebuilt;
		struct iovec frame[2];
		uint64_t id;
		int n;

		CHECK_EQ(post_hdr(r.peer, &prod, &from, &h, payload, 16), 0);
		n = usb4_shm_ring_peek(r.own, frame, &rebuilt, &id);
		CHECK_EQ(n, 2);
		if (n != 2)
			continue;
		/* The len word: 20 bytes before a small frame's payload. */
		((uint32_t *) (void *) ((char *) frame[1].iov_base - 20))[0] =
			bad[i];
		n = usb4_shm_ring_peek(r.own, frame, &rebuilt, &id);
		CHECK_EQ_MSG(n, 1, "len word %#x", bad[i]);
		CHECK_EQ_MSG(frame[0].iov_len, 0, "len word %#x", bad[i]);
		usb4_shm_ring_pop(r.own);
	}
	/* The lane still works. */
	CHECK_EQ(post_hdr(r.peer, &prod, &from, &h, payload, 16), 0);
	check_head(r.own, &h, payload, 16, true, 4);
	ring_free(&r);
}

/* ---- packed lanes (usb4_shm_packed.c) ----------------------------------- */

/* A packed record's header word, as usb4_shm_packed.c lays it out (kind,
 * wire flags, bytes, lap); packed_layout_known checks this mirror. */
enum { REC_FULL = 1, REC_SMALL, REC_SMALL_DATA, REC_PAD, REC_SMALL_D32 };

static uint64_t packed_word(unsigned kind, uint16_t wflags, size_t len,
			    uint64_t lap)
{
	return kind | (uint64_t) wflags << 8 | (uint64_t) len << 24 |
	       lap << 48;
}

static uint32_t packed_cells(const struct usb4_shm_producer *prod)
{
	return prod->cell_mask + 1;
}

/* The header word of the cell at position pos of prod's lane. */
static _Atomic uint64_t *packed_at(const struct usb4_shm_producer *prod,
				   uint64_t pos)
{
	return (_Atomic uint64_t *) (void *)
		(prod->cells + (pos & prod->cell_mask) * USB4_SHM_CELL);
}

/* Whether [p, p + len) lies in the owner's mapping of prod's lane. */
static bool in_lane(const struct test_ring *r,
		    const struct usb4_shm_producer *prod, const void *p,
		    size_t len)
{
	const char *cells = (const char *) r->own +
			    (prod->cells - (char *) r->peer);

	return (const char *) p >= cells &&
	       (const char *) p + len <=
	       cells + (size_t) packed_cells(prod) * USB4_SHM_CELL;
}

/* A small eager frame of plen bytes (seeded), posted through prod. */
static int post_small(struct test_ring *r, struct usb4_shm_producer *prod,
		      const struct usb4_shm_sender *from, size_t plen,
		      unsigned seed, struct usb4_wire_hdr *h)
{
	unsigned char payload[FRAME_MAX] = { 0 };

	*h = small_hdr(from->id, USB4_WF_TAGGED, seed, 0, plen);
	fill(payload, plen, seed);
	return post_hdr(r->peer, prod, from, h, payload, plen);
}

/* The frame at the head is the small frame post_small(seed) sent. */
static void check_small(struct test_ring *r, size_t plen, unsigned seed,
			uint64_t from)
{
	unsigned char payload[FRAME_MAX] = { 0 };
	struct usb4_wire_hdr h = small_hdr(from, USB4_WF_TAGGED, seed, 0, plen);

	fill(payload, plen, seed);
	check_head(r->own, &h, payload, plen, true, from);
}

/* A packed lane's ring of a fresh inbox: its size, the record words. */
static bool packed_layout_known(struct test_ring *r,
				struct usb4_shm_producer *prod,
				const struct usb4_shm_sender *from)
{
	struct usb4_wire_hdr h;

	CHECK(r->own->flags & USB4_SHM_PACKED);
	CHECK_EQ(post_small(r, prod, from, 8, 1, &h), 0);
	CHECK_EQ(prod->state, USB4_SHM_PRODUCER_PACKED);
	CHECK_EQ(packed_cells(prod), r->own->packed_cells);
	CHECK_EQ_MSG(atomic_load(packed_at(prod, 0)),
		     packed_word(REC_SMALL, USB4_WF_TAGGED, 8, 0),
		     "packed_word here is stale");
	CHECK_EQ_MSG(atomic_load(packed_at(prod, 2)), 0,
		     "the cell behind a record is not zeroed");
	check_small(r, 8, 1, from->id);
	return prod->state == USB4_SHM_PRODUCER_PACKED;
}

/*
 * Every eager size with every flag and data, whole frames of any kind
 * beside them; two 8-byte messages with their headers share one cache
 * line; records of random sizes across many laps (padding at the end),
 * taken in random batches, all in order.
 */
static void test_packed_frames(void)
{
	static const uint16_t flags[] = {
		0, USB4_WF_TAGGED, USB4_WF_CQ_DATA,
		USB4_WF_TAGGED | USB4_WF_CQ_DATA,
	};
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(2);
	unsigned char payload[FRAME_MAX];
	struct test_ring r;
	uint64_t sent = 0, got = 0;

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0xface), 0);
	if (!packed_layout_known(&r, &prod, &from))
		goto out;
	for (size_t plen = 0; plen <= 200; plen += 1 + plen / 16)
		for (size_t k = 0; k < 8; k++) {
			struct usb4_wire_hdr h = small_hdr(2, flags[k % 4],
				0x0123456789abcdefull ^ plen,
				k < 4 ? 0 : 0xfedcba9876543210ull + k, plen);

			fill(payload, plen, (unsigned) (plen * 8 + k));
			CHECK_EQ(post_hdr(r.peer, &prod, &from, &h, payload,
					  plen), 0);
			check_head(r.own, &h, payload, plen, true, 2);
			h.type = USB4_FRAME_RTS;	/* goes whole */
			CHECK_EQ(post_hdr(r.peer, &prod, &from, &h, payload,
					  plen), 0);
			check_head(r.own, &h, payload, plen, false, 2);
		}
	/* Two 8-byte messages in one line. */
	while (prod.pos & 3) {
		struct usb4_wire_hdr h;

		CHECK_EQ(post_small(&r, &prod, &from, 0, 5, &h), 0);
		check_small(&r, 0, 5, 2);
	}
	{
		struct usb4_wire_hdr h, rebuilt;
		struct iovec frame[2];
		uintptr_t first;
		uint64_t id;

		CHECK_EQ(post_small(&r, &prod, &from, 8, 6, &h), 0);
		CHECK_EQ(post_small(&r, &prod, &from, 8, 7, &h), 0);
		CHECK_EQ(usb4_shm_ring_peek(r.own, frame, &rebuilt, &id), 2);
		first = (uintptr_t) frame[1].iov_base - 16;
		usb4_shm_ring_pop(r.own);
		CHECK_EQ(usb4_shm_ring_peek(r.own, frame, &rebuilt, &id), 2);
		CHECK_EQ_MSG(first / 64, ((uintptr_t) frame[1].iov_base + 7) / 64,
			     "two 8-byte messages span two lines");
		usb4_shm_ring_pop(r.own);
	}
	/* Random sizes, many laps, random batches. */
	srand(7);
	while (sent < 4000) {
		int batch = 1 + rand() % 40;

		for (int i = 0; i < batch; i++) {
			struct usb4_wire_hdr h;
			size_t plen = (sent * 37) % 300;
			int ret = post_small(&r, &prod, &from, plen,
					     (unsigned) sent, &h);

			if (ret) {
				CHECK_EQ(ret, -FI_EAGAIN);
				break;
			}
			sent++;
		}
		for (int i = rand() % 40; i && got < sent; i--, got++)
			check_small(&r, (got * 37) % 300, (unsigned) got, 2);
	}
	for (; got < sent; got++)
		check_small(&r, (got * 37) % 300, (unsigned) got, 2);
	CHECK_MSG(prod.pos > 8ull * packed_cells(&prod), "only %llu cells "
		  "posted", (unsigned long long) prod.pos);
out:
	ring_free(&r);
}

/*
 * Bytes of an older lap never read as a record: a lap of 40-byte
 * messages whose payloads hold, at every cell, what would be a complete
 * record of the next lap; then 8-byte messages, whose ends fall inside
 * those payloads: each is taken alone, and nothing is read behind it
 * before the producer wrote there.
 */
static void test_packed_stale(void)
{
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(3);
	struct test_ring r;
	struct iovec frame[2];
	uint64_t id, lap;

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0x57a1e), 0);
	if (!packed_layout_known(&r, &prod, &from))
		goto out;
	lap = prod.pos / packed_cells(&prod) + 1;
	while (prod.pos / packed_cells(&prod) < lap) {
		uint64_t fake[5] = { 0 };
		struct usb4_wire_hdr h = small_hdr(3, USB4_WF_TAGGED, 1, 0, 40);
		struct usb4_wire_hdr rebuilt;

		for (int i = 0; i < 5; i += 2)
			fake[i] = packed_word(REC_SMALL, USB4_WF_TAGGED, 8, lap);
		CHECK_EQ(post_hdr(r.peer, &prod, &from, &h, fake, 40), 0);
		CHECK_EQ(usb4_shm_ring_peek(r.own, frame, &rebuilt, &id), 2);
		usb4_shm_ring_pop(r.own);
	}
	for (int i = 0; i < 200; i++) {
		struct usb4_wire_hdr h;

		CHECK_EQ(post_small(&r, &prod, &from, 8, i, &h), 0);
		check_small(&r, 8, i, 3);
		CHECK_EQ_MSG(usb4_shm_ring_peek(r.own, frame, &h, &id), 0,
			     "message %d: an older lap's bytes read as a record",
			     i);
	}
out:
	ring_free(&r);
}

/*
 * CQ data of up to 32 bits rides in the header word: a 16-byte message
 * with its tag and data fills two cells, and comes up with the header it
 * was sent with; wider data, or an owner that does not say it reads them
 * (USB4_SHM_PACKED_D32 clear), takes a cell more.
 */
static void test_packed_d32(void)
{
	static const uint64_t datas[] = { 0, 7, 0xffffffffull, 1ull << 32 };
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(4);
	unsigned char payload[64];
	struct test_ring r;

	for (int old = 0; old < 2; old++) {
		memset(&prod, 0, sizeof(prod));
		CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0xd32 + old), 0);
		CHECK(r.own->flags & USB4_SHM_PACKED_D32);
		if (old)
			r.own->flags &= ~USB4_SHM_PACKED_D32;
		for (size_t k = 0; k < 4; k++)
			for (size_t plen = 0; plen <= 64; plen += 8) {
				struct usb4_wire_hdr h = small_hdr(4,
					USB4_WF_TAGGED | USB4_WF_CQ_DATA,
					0xabcdef12345678ull + plen, datas[k],
					plen);
				uint64_t pos = prod.pos;
				size_t cells = (16 + plen + 15) / 16;

				if (old || k == 3)
					cells = (24 + plen + 15) / 16;
				fill(payload, plen, (unsigned) plen);
				CHECK_EQ(post_hdr(r.peer, &prod, &from, &h,
						  payload, plen), 0);
				CHECK_EQ_MSG(prod.pos - pos, cells, "%zu bytes, "
					     "data %#llx", plen,
					     (unsigned long long) datas[k]);
				check_head(r.own, &h, payload, plen, true, 4);
			}
		ring_free(&r);
	}
}

/*
 * Credit: a lane full of 8-byte messages refuses (-FI_EAGAIN), and one
 * taken makes room for one; the producer reads the consumer's count only
 * when the space it knew of runs out (a count it was not told of does not
 * stop it before), never spills into the shared slots, and loses nothing.
 */
static void test_packed_credit(void)
{
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(1);
	struct test_ring r;
	struct usb4_wire_hdr h;
	unsigned sent = 0, got = 0;
	uint64_t limit, freed;
	_Atomic uint64_t *own_freed;

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0xc4ed), 0);
	if (!packed_layout_known(&r, &prod, &from))
		goto out;
	own_freed = (_Atomic uint64_t *) (void *) ((char *) r.own +
		((char *) prod.freed - (char *) r.peer));
	while (post_small(&r, &prod, &from, 8, sent, &h) == 0)
		sent++;
	/* 2 cells each, and the cell behind the last, zeroed. */
	CHECK_EQ(sent, (packed_cells(&prod) - 1) / 2);
	CHECK_EQ(post_small(&r, &prod, &from, 8, sent, &h), -FI_EAGAIN);
	CHECK_EQ(prod.state, USB4_SHM_PRODUCER_PACKED);
	CHECK_EQ(atomic_load(&r.own->tail), 0);
	check_small(&r, 8, got++, 1);
	CHECK_EQ(post_small(&r, &prod, &from, 8, sent, &h), 0);
	sent++;
	CHECK_EQ(post_small(&r, &prod, &from, 8, sent, &h), -FI_EAGAIN);
	while (got < sent)
		check_small(&r, 8, got++, 1);
	/* All taken: the next post learns it, later ones do not ask. */
	CHECK_EQ(post_small(&r, &prod, &from, 8, sent++, &h), 0);
	limit = prod.limit;
	freed = atomic_load(own_freed);
	CHECK_EQ(limit, freed + packed_cells(&prod));
	atomic_store(own_freed, 0);	/* a count it would refuse on */
	while (prod.pos + 3 <= limit) {
		CHECK_EQ_MSG(post_small(&r, &prod, &from, 8, sent, &h), 0,
			     "the producer read the count with room left");
		sent++;
	}
	CHECK_EQ(prod.limit, limit);
	CHECK_EQ(post_small(&r, &prod, &from, 8, sent, &h), -FI_EAGAIN);
	atomic_store(own_freed, freed);
	while (got < sent)
		check_small(&r, 8, got++, 1);
	CHECK_EQ(post_small(&r, &prod, &from, 8, sent, &h), 0);
	check_small(&r, 8, sent, 1);
out:
	ring_free(&r);
}

static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/*
 * A packed lane's first lap takes no page fault per page on either side:
 * the producer maps the lane's pages when it claims it, the owner when it
 * first sees it claimed (each process has its own page tables: the owner's
 * and the producer's mappings are two here, as in two processes).
 */
static void test_packed_first_lap_mapped(void)
{
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(1);
	struct test_ring r;
	struct usb4_wire_hdr h;
	unsigned sent = 1, pages;
	long faults;

	/* Lanes of 256 slots of about 1 KiB: 64 pages. */
	CHECK_EQ(ring_make_lanes(&r, SLOTS, FRAME_MAX, 0xfa17, 256), 0);
	if (!packed_layout_known(&r, &prod, &from))
		goto out;
	pages = packed_cells(&prod) * USB4_SHM_CELL / (unsigned) getpagesize();
	CHECK(pages >= 32);
	faults = minor_faults();
	/* One lap and a bit, each record taken as it comes. */
	for (; sent < packed_cells(&prod) / 2 + 8; sent++) {
		CHECK_EQ(post_small(&r, &prod, &from, 8, sent, &h), 0);
		check_small(&r, 8, sent, from.id);
	}
	faults = minor_faults() - faults;
	CHECK_MSG(faults < pages / 8, "%ld page faults in a lap of %u pages",
		  faults, pages);
	/* The owner's count of lanes mapped lies in shared memory: a
	 * producer that writes it costs the owner a mapping again, never a
	 * frame or a lane beyond the claimed ones. */
	for (int i = 0; i < 2; i++) {
		r.peer->lanes_mapped = i ? 0 : UINT32_MAX;
		CHECK_EQ(post_small(&r, &prod, &from, 8, sent, &h), 0);
		check_small(&r, 8, sent++, from.id);
		CHECK_EQ(r.own->lanes_mapped, usb4_shm_lanes_active(r.own));
	}
out:
	ring_free(&r);
}

/* The frame at the head is one the producer did not write: handed up
 * empty, inside the lane. */
static void check_bad(struct test_ring *r, struct usb4_shm_producer *prod,
		      const char *what)
{
	struct usb4_wire_hdr rebuilt;
	struct iovec frame[2];
	uint64_t id;
	int n = usb4_shm_ring_peek(r->own, frame, &rebuilt, &id);

	CHECK_EQ_MSG(n, 1, "%s", what);
	if (n != 1)
		return;
	CHECK_EQ_MSG(frame[0].iov_len, 0, "%s", what);
	CHECK_MSG(in_lane(r, prod, frame[0].iov_base, 0), "%s", what);
	usb4_shm_ring_pop(r->own);
}

/* Posts 8-byte messages (not taken) until one starts prod's next lap: the
 * owner, which skipped there after a bad record, reads that one. */
static void resume_next_lap(struct test_ring *r,
			    struct usb4_shm_producer *prod,
			    const struct usb4_shm_sender *from)
{
	struct usb4_wire_hdr h;
	uint64_t lap = prod->pos / packed_cells(prod);
	struct iovec frame[2];
	uint64_t id;

	for (;;) {	/* 2 cells each: the last one starts the next lap */
		CHECK_EQ(usb4_shm_ring_peek(r->own, frame, &h, &id), 0);
		CHECK_EQ(post_small(r, prod, from, 8, 99, &h), 0);
		if ((prod->pos - 2) / packed_cells(prod) != lap)
			break;
	}
	check_small(r, 8, 99, from->id);
}

/*
 * A packed lane holds as many frames of the largest size as the slots it
 * replaces, less what rounding its cells down to a power of two costs: an
 * application may post a window of sends before its first receive, and
 * the sends beyond what the lane holds wait for a receive that the
 * application posts only after them (a 4-rank ring allreduce of 4 KiB
 * chunks with 32 sends in flight hung on 32 KiB lanes).
 */
static void test_packed_window(void)
{
	static const size_t geometry[][2] = {	/* lane slots, frame_max */
		{ LANE_SLOTS, FRAME_MAX }, { 128, 48 + 4096 },
		{ 128, 48 + 8192 }, { 64, 48 + 16384 },
	};

	for (size_t i = 0; i < sizeof(geometry) / sizeof(geometry[0]); i++) {
		size_t slots = geometry[i][0], frame_max = geometry[i][1];
		size_t slot = (8 + frame_max + USB4_SHM_CACHELINE - 1) /
			      USB4_SHM_CACHELINE * USB4_SHM_CACHELINE;
		size_t cells = usb4_shm_packed_cells(slots * slot, frame_max);
		size_t frames = cells / usb4_shm_cells_of(8 + frame_max);

		CHECK_MSG(frames >= slots - slots / 16,
			  "%zu frames of %zu B in a lane of %zu slots",
			  frames, frame_max, slots);
	}
}

/*
 * A producer writes what it likes: a frame longer than a frame or than
 * the ring's end, a small frame with flags it may not carry or longer
 * than a frame, an unknown kind, a pad where a lap starts: each is handed
 * up empty (the core counts it short) and the owner goes on at the next
 * lap; a record of another lap is not there yet; a count of cells taken
 * anywhere in 64 bits reads inside the lane.  Nothing hangs.
 */
static void test_packed_malicious(void)
{
	struct usb4_shm_producer prod = { 0 };
	struct usb4_shm_sender from = lane_sender(0);
	struct test_ring r;
	struct usb4_wire_hdr h;
	_Atomic uint64_t *w, *own_freed;
	uint64_t lap, saved;
	struct {
		uint64_t word;
		const char *what;
	} bad[] = {
		{ packed_word(REC_FULL, 0, 0xffffff, 0), "a frame of 16 MiB" },
		{ packed_word(REC_FULL, 0, FRAME_MAX + 100, 0),
		  "a frame beyond frame_max" },
		{ packed_word(REC_SMALL, USB4_WF_ACK_REQ, 8, 0),
		  "a small frame asking an ACK" },
		{ packed_word(REC_SMALL_DATA, 0x4000, 8, 0),
		  "a small frame with unknown flags" },
		{ packed_word(REC_SMALL, 0, FRAME_MAX, 0),
		  "a small frame longer than a frame" },
		{ packed_word(77, 0, 8, 0), "an unknown kind" },
		{ REC_SMALL_D32 | (uint64_t) 0x3ff << 6,
		  "a small frame with data longer than a frame" },
	};

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0x1135), 0);
	if (!packed_layout_known(&r, &prod, &from))
		goto out;
	own_freed = (_Atomic uint64_t *) (void *) ((char *) r.own +
		((char *) prod.freed - (char *) r.peer));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(post_small(&r, &prod, &from, 8, 3, &h), 0);
		lap = (prod.pos - 2) / packed_cells(&prod);
		w = packed_at(&prod, prod.pos - 2);
		atomic_store(w, bad[i].word | lap << 48);
		check_bad(&r, &prod, bad[i].what);
		resume_next_lap(&r, &prod, &from);
	}
	/* Longer than what is left of the lap (but no longer than a frame). */
	while ((prod.pos & prod.cell_mask) < packed_cells(&prod) - 40) {
		CHECK_EQ(post_small(&r, &prod, &from, 8, 4, &h), 0);
		check_small(&r, 8, 4, 0);
	}
	CHECK_EQ(post_small(&r, &prod, &from, 8, 5, &h), 0);
	lap = (prod.pos - 2) / packed_cells(&prod);
	atomic_store(packed_at(&prod, prod.pos - 2),
		     packed_word(REC_FULL, 0, 40 * USB4_SHM_CELL, lap));
	check_bad(&r, &prod, "a frame past the ring's end");
	resume_next_lap(&r, &prod, &from);
	/* A pad where a lap starts. */
	lap = prod.pos / packed_cells(&prod) + 1;
	CHECK_EQ(post_small(&r, &prod, &from, 8, 6, &h), 0);
	check_small(&r, 8, 6, 0);
	saved = atomic_load(own_freed);
	atomic_store(own_freed, lap * packed_cells(&prod));
	atomic_store(packed_at(&prod, 0), packed_word(REC_PAD, 0, 0, lap));
	check_bad(&r, &prod, "a pad where a lap starts");
	/* Another lap's record is not there yet. */
	atomic_store(own_freed, saved);
	CHECK_EQ(post_small(&r, &prod, &from, 8, 7, &h), 0);
	w = packed_at(&prod, prod.pos - 2);
	saved = atomic_load(w);
	for (int d = -2; d <= 2; d += 4) {
		atomic_store(w, saved + ((uint64_t) (int64_t) d << 48));
		CHECK(usb4_shm_ring_peek(r.own, (struct iovec[2]) { 0 }, &h,
					 &(uint64_t) { 0 }) == 0);
	}
	atomic_store(w, saved);
	check_small(&r, 8, 7, 0);
	/* The owner's count anywhere: what it reads is in the lane. */
	for (int i = 0; i < 64; i++) {
		struct iovec frame[2];
		uint64_t id;
		int n;

		atomic_store(own_freed, ((uint64_t) 1 << i) + 0x35u * i - 1);
		n = usb4_shm_ring_peek(r.own, frame, &h, &id);
		if (n)
			CHECK_MSG(in_lane(&r, &prod, frame[n - 1].iov_base,
					  frame[n - 1].iov_len),
				  "a count of %#llx read outside the lane",
				  (unsigned long long) atomic_load(own_freed));
	}
out:
	ring_free(&r);
}

/*
 * Old and new in one inbox: a producer before packed lanes (it writes
 * slots whatever the owner offers) and one of today, both in lanes,
 * interleaved, each in order; an owner before packed lanes gets slots
 * from a producer of today.
 */
static void test_packed_mixed(void)
{
	struct usb4_shm_producer prod[3] = { { 0 } };
	uint32_t next[3] = { 0 }, sent[3] = { 0 };
	struct test_ring r;

	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0x313d), 0);
	/* The old producer claims its lane as it would: it ignores the
	 * flag, which reads here as if clear. */
	{
		struct usb4_shm_sender from = lane_sender(0);

		r.own->flags &= ~USB4_SHM_PACKED;
		CHECK_EQ(post_seq(r.peer, &prod[0], &from, sent[0]++), 0);
		r.own->flags |= USB4_SHM_PACKED;
	}
	for (int round = 0; round < 300; round++) {
		for (uint32_t i = 0; i < 2; i++) {
			struct usb4_shm_sender from = lane_sender(i);
			int ret = post_seq(r.peer, &prod[i], &from, sent[i]);

			if (!ret)
				sent[i]++;
			else
				CHECK_EQ(ret, -FI_EAGAIN);
		}
		if (round % 5 == 4)
			drain_in_order(r.own, next, 2);
	}
	drain_in_order(r.own, next, 2);
	CHECK_EQ(prod[0].state, USB4_SHM_PRODUCER_LANE);
	CHECK_EQ(prod[1].state, USB4_SHM_PRODUCER_PACKED);
	for (uint32_t i = 0; i < 2; i++)
		CHECK_EQ_MSG(next[i], sent[i], "producer %u lost frames", i);
	CHECK(sent[0] > 100 && sent[1] > 100);
	ring_free(&r);

	/* An owner before packed lanes. */
	CHECK_EQ(ring_make(&r, SLOTS, FRAME_MAX, 0x313e), 0);
	slotted(&r);
	memset(next, 0, sizeof(next));
	{
		struct usb4_shm_sender from = lane_sender(2);

		CHECK_EQ(post_seq(r.peer, &prod[2], &from, 0), 0);
		CHECK_EQ(prod[2].state, USB4_SHM_PRODUCER_LANE);
		next[2] = 0;
		CHECK_EQ(drain_in_order(r.own, next, 3), 1);
	}
	ring_free(&r);
}

int main(void)
{
	alarm(120);
	test_ring_check();
	test_ring_frames();
	test_lanes_order(false);
	test_lanes_order(true);
	test_lane_backpressure();
	test_lanes_old_owner();
	test_lanes_malicious();
	test_small_frames();
	test_small_ineligible();
	test_small_mixed_and_full();
	test_small_malicious();
	test_packed_frames();
	test_packed_stale();
	test_packed_d32();
	test_packed_credit();
	test_packed_first_lap_mapped();
	test_packed_window();
	test_packed_malicious();
	test_packed_mixed();
	for (int expedited = 0; expedited < 2; expedited++) {
		expedited_rings = expedited;
		test_ring_bell();
		test_child_producer();
		test_no_lost_wakeup();
		if (!usb4_shm_fence_can_expedite()) {
			printf("# no membarrier here: expedited rings not "
			       "tested\n");
			break;
		}
	}
	expedited_rings = usb4_shm_fence_can_expedite();
	test_cma();
	test_link_ops();
	test_no_residue();
	return usb4_test_done("test_shm_ring");
}
