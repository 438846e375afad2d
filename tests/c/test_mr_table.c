/*
 * Unit tests of the core's registration table (prov_usb4/src/core/
 * usb4_mr_table.c): the regions a domain publishes for remote access, in a
 * memfd that one-sided links hand to peers.  Checked here: views of a
 * second mapping of the memfd as a peer maps it (and malformed ones
 * refused), key, rights and overflow-safe bounds of every pin, duplicate
 * keys, capacity, revocation (no new pins; drain waits for a pin another
 * process holds and returns once it is dropped), the atomics lock across
 * processes (and displaced when its holder died), the domain's wrappers,
 * and that a closed table leaves no fd, mapping or /dev/shm file behind.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "usb4.h"
#include "usb4_core.h"
#include "usb4_mr_board.h"
#include "usb4_test.h"
#include "usb4_test_proc.h"

#define RD	FI_REMOTE_READ
#define WR	FI_REMOTE_WRITE
#define RW	(FI_REMOTE_READ | FI_REMOTE_WRITE)

/*
 * The head of a table as peers read it: magic, owner pid, capacity, the
 * atomics lock, features; 128-byte entries follow, then the board
 * (features bit 9, BOARD_BYTES; bit 10: it serves gets and puts too).  Checked against a fresh table
 * before the tests below corrupt copies of it.
 */
struct mrt_head {
	uint64_t magic;
	uint32_t owner_pid;
	uint32_t capacity;
	uint32_t atomic_lock;
	uint32_t features;
};
#define ENTRY_BYTES	128
#define BOARD_FEATURE	(1u << 9)
#define BOARD_RMA_FEATURE	(1u << 10)
#define BOARD_BYTES	320

static double now_s(void)
{
	return (double) usb4_now_ns() / 1e9;
}

/* A table and a peer's view of it through a second mapping. */
struct peer_view {
	void *mem;
	size_t len;
	struct usb4_mr_table *view;
};

static int view_open(pid_t owner, const struct usb4_mr_table *t,
		     struct peer_view *pv)
{
	pv->mem = usb4_test_map_proc_fd(owner, usb4_mr_table_fd(t), &pv->len);
	pv->view = pv->mem ? usb4_mr_table_view(pv->mem, pv->len) : NULL;
	return pv->view ? 0 : -1;
}

static void view_close(struct peer_view *pv)
{
	usb4_mr_table_view_free(pv->view);
	if (pv->mem)
		munmap(pv->mem, pv->len);
}

/* Key k of a test: random-looking, never 0. */
static uint64_t key_of(unsigned k)
{
	return 0x9e3779b97f4a7c15ull * (k + 1) ^ 0x5bd1e995ull;
}

/* ---- views --------------------------------------------------------------- */

static void test_views(void)
{
	struct usb4_mr_table *t = NULL;
	struct peer_view pv;
	struct mrt_head *h;
	unsigned char *copy;
	struct usb4_pin pin;
	static char buf[256];
	uint32_t slot;

	CHECK_EQ_MSG(usb4_mr_table_open(&t, 10), 0, "opening a table");
	if (!t)
		return;
	CHECK_MSG(usb4_mr_table_fd(t) >= 0, "a table without a memfd");
	CHECK_EQ_MSG(usb4_mr_table_fd(NULL), -1, "the fd of no table");
	CHECK_EQ_MSG(view_open(getpid(), t, &pv), 0,
		     "a second mapping of a fresh table refused as a view");
	if (!pv.view) {
		view_close(&pv);
		usb4_mr_table_close(t);
		return;
	}
	h = pv.mem;
	CHECK_MSG(h->owner_pid == (uint32_t) getpid() && h->capacity == 16 &&
		  h->features == (BOARD_FEATURE | BOARD_RMA_FEATURE) &&
		  pv.len == sizeof(*h) + 16 * ENTRY_BYTES + BOARD_BYTES,
		  "the table head is no longer magic, owner_pid, capacity, "
		  "lock (struct mrt_head here is stale): pid %u capacity %u "
		  "mapping %zu", h->owner_pid, h->capacity, pv.len);

	/* The owner publishes: the peer sees it at once. */
	CHECK_EQ(usb4_mr_table_publish(t, key_of(1), (uintptr_t) buf, 0x4000,
				       sizeof(buf), RW, &slot), 0);
	CHECK_EQ_MSG(usb4_mr_pin(pv.view, key_of(1), 0x4010, 16, RD, &pin), 0,
		     "a region the owner published is not pinnable through a "
		     "peer's view");
	CHECK_MSG(pin.table == pv.view && pin.slot == slot &&
		  pin.va == (uintptr_t) buf + 0x10,
		  "the pin says table %p slot %u va %#llx", (void *) pin.table,
		  pin.slot, (unsigned long long) pin.va);
	usb4_mr_unpin(&pin);

	/* Malformed: corrupt private copies, never the owner's table. */
	copy = aligned_alloc(64, (pv.len + 63) / 64 * 64);
	CHECK(copy != NULL);
	if (copy) {
		struct mrt_head *ch = (struct mrt_head *) copy;
		struct usb4_mr_table *v;

		memcpy(copy, pv.mem, pv.len);
		v = usb4_mr_table_view(copy, pv.len);
		CHECK_MSG(v != NULL, "an intact copy refused");
		CHECK_MSG(usb4_mr_table_board_rma(v),
			  "an owner that serves gets and puts not seen to");
		usb4_mr_table_view_free(v);
		/* An owner that serves atomics only: no get or put posted. */
		ch->features = BOARD_FEATURE;
		v = usb4_mr_table_view(copy, pv.len);
		CHECK_MSG(v && usb4_mr_table_board(v) &&
			  !usb4_mr_table_board_rma(v),
			  "a board of atomics only refused, or taken for more");
		if (v) {
			char byte = 0;
			struct iovec one = { &byte, 1 };

			CHECK_EQ_MSG(usb4_board_rma(v, NULL, true, key_of(1), 0x4000,
						    &one, 1, 1), 1,
				     "a put posted to a board of atomics only");
			CHECK_EQ(atomic_load(&usb4_mr_table_board(v)->state),
				 USB4_BOARD_FREE);
		}
		usb4_mr_table_view_free(v);
		CHECK_MSG(!usb4_mr_table_view(NULL, pv.len), "a view of NULL");
		CHECK_MSG(!usb4_mr_table_view(copy, 0), "a view of 0 bytes");
		CHECK_MSG(!usb4_mr_table_view(copy, sizeof(*ch) - 1),
			  "a view shorter than the head");
		CHECK_MSG(!usb4_mr_table_view(copy, pv.len - 1),
			  "a view one byte short of its board");
		/* An older owner's table: entries only, no board. */
		ch->features = 0;
		v = usb4_mr_table_view(copy, pv.len - BOARD_BYTES);
		CHECK_MSG(v && !usb4_mr_table_board(v),
			  "a table without a board refused, or given one");
		usb4_mr_table_view_free(v);
		CHECK_MSG(!usb4_mr_table_view(copy, pv.len - BOARD_BYTES - 1),
			  "a view one byte short of its entries");
		ch->features = BOARD_FEATURE | BOARD_RMA_FEATURE;
		ch->magic ^= 1;
		CHECK_MSG(!usb4_mr_table_view(copy, pv.len),
			  "a view with a wrong magic");
		ch->magic ^= 1;
		for (int i = 0; i < 5; i++) {
			uint32_t caps[5] = { 0, 3, 24, 32, 0x80000000u };

			ch->capacity = caps[i];
			CHECK_MSG(!usb4_mr_table_view(copy, pv.len),
				  "a view of capacity %u in %zu bytes", caps[i],
				  pv.len);
		}
		/* A smaller capacity than the mapping holds is fine. */
		ch->capacity = 8;
		v = usb4_mr_table_view(copy, pv.len);
		CHECK_MSG(v != NULL, "a view of capacity 8 in room for 16");
		usb4_mr_table_view_free(v);
		free(copy);
	}

	/* The owner closes: a peer that still maps it gets no new view, and
	 * nothing is left open. */
	view_close(&pv);
	pv.mem = usb4_test_map_proc_fd(getpid(), usb4_mr_table_fd(t), &pv.len);
	usb4_mr_table_close(t);
	CHECK_MSG(pv.mem && !usb4_mr_table_view(pv.mem, pv.len),
		  "a view of a closed table");
	if (pv.mem)
		munmap(pv.mem, pv.len);
	usb4_mr_table_close(NULL);
}

/* ---- pins: key, rights, bounds ------------------------------------------ */

/* One pin attempt; on success checks the va and lets go. */
static void pin_case(struct usb4_mr_table *t, uint64_t key, uint64_t base,
		     uint64_t iova, uint64_t addr, uint64_t len,
		     uint64_t access, int want, const char *what)
{
	struct usb4_pin pin;
	int ret = usb4_mr_pin(t, key, addr, len, access, &pin);

	CHECK_EQ_MSG(ret, want, "%s: pin of [%#llx, +%#llx) access %#llx",
		     what, (unsigned long long) addr, (unsigned long long) len,
		     (unsigned long long) access);
	if (ret)
		return;
	CHECK_MSG(pin.va == base + (addr - iova), "%s: va %#llx, want %#llx",
		  what, (unsigned long long) pin.va,
		  (unsigned long long) (base + (addr - iova)));
	usb4_mr_unpin(&pin);
}

static void test_pins(void)
{
	static char buf[4096];
	const uint64_t base = (uintptr_t) buf, top = UINT64_MAX - 4095;
	struct usb4_mr_table *t = NULL, *v;
	struct peer_view pv;
	uint32_t slot;

	CHECK_EQ(usb4_mr_table_open(&t, 16), 0);
	if (!t)
		return;
	CHECK_EQ(view_open(getpid(), t, &pv), 0);
	v = pv.view;
	CHECK_EQ(usb4_mr_table_publish(t, key_of(1), base, 0x10000, 4096, RW,
				       &slot), 0);
	CHECK_EQ(usb4_mr_table_publish(t, key_of(2), base, 0, 4096, RD,
				       &slot), 0);
	CHECK_EQ(usb4_mr_table_publish(t, key_of(3), base, top, 4096, WR,
				       &slot), 0);
	if (!v)
		goto out;

	/* Key. */
	pin_case(v, key_of(1), base, 0x10000, 0x10000, 1, RD, 0, "key 1");
	pin_case(v, key_of(9), base, 0, 0, 1, RD, -FI_EACCES, "unknown key");
	pin_case(v, 0, base, 0, 0, 1, RD, -FI_EACCES, "key 0");
	pin_case(NULL, key_of(1), base, 0x10000, 0x10000, 1, RD, -FI_EACCES,
		 "no table");
	/* Rights: each one asked for must be granted. */
	pin_case(v, key_of(1), base, 0x10000, 0x10000, 8, RW, 0, "rw of rw");
	pin_case(v, key_of(2), base, 0, 0, 8, RD, 0, "read of read-only");
	pin_case(v, key_of(2), base, 0, 0, 8, WR, -FI_EACCES,
		 "write of read-only");
	pin_case(v, key_of(2), base, 0, 0, 8, RW, -FI_EACCES,
		 "read+write of read-only");
	pin_case(v, key_of(3), base, top, top, 8, RD, -FI_EACCES,
		 "read of write-only");
	/* Bounds, in the initiator's addresses (iova). */
	pin_case(v, key_of(1), base, 0x10000, 0x10000, 4096, RD, 0, "whole");
	pin_case(v, key_of(1), base, 0x10000, 0x10fff, 1, RD, 0, "last byte");
	pin_case(v, key_of(1), base, 0x10000, 0xffff, 1, RD, -FI_EACCES,
		 "byte before");
	pin_case(v, key_of(1), base, 0x10000, 0xffff, 2, RD, -FI_EACCES,
		 "straddling the start");
	pin_case(v, key_of(1), base, 0x10000, 0x10fff, 2, RD, -FI_EACCES,
		 "straddling the end");
	pin_case(v, key_of(1), base, 0x10000, 0x11000, 1, RD, -FI_EACCES,
		 "byte after");
	pin_case(v, key_of(1), base, 0x10000, 0x10000, 4097, RD, -FI_EACCES,
		 "one byte too long");
	pin_case(v, key_of(1), base, 0x10000, 0, 0x11000, RD, -FI_EACCES,
		 "from 0 through the end");
	/* Overflow: addr + len wraps past 2^64 to land inside the region. */
	pin_case(v, key_of(1), base, 0x10000, 0x10800, -(uint64_t) 0x700, RD,
		 -FI_EACCES, "addr + len wrapping to 0x10100");
	pin_case(v, key_of(1), base, 0x10000, UINT64_MAX - 0xf, 0x10010 + 0x10,
		 RD, -FI_EACCES, "addr near 2^64, len wrapping into the region");
	pin_case(v, key_of(1), base, 0x10000, 0x10000, SIZE_MAX, RD,
		 -FI_EACCES, "SIZE_MAX bytes");
	pin_case(v, key_of(1), base, 0x10000, 0x10001, SIZE_MAX, RD,
		 -FI_EACCES, "SIZE_MAX bytes from byte 1");
	pin_case(v, key_of(1), base, 0x10000, UINT64_MAX, SIZE_MAX, RD,
		 -FI_EACCES, "SIZE_MAX bytes from 2^64 - 1");
	/* A region at iova 0 (offsets), and one ending exactly at 2^64. */
	pin_case(v, key_of(2), base, 0, 0, 4096, RD, 0, "offset region");
	pin_case(v, key_of(2), base, 0, 4096, 1, RD, -FI_EACCES,
		 "offset region, byte after");
	pin_case(v, key_of(2), base, 0, UINT64_MAX, 2, RD, -FI_EACCES,
		 "offset region, 2 bytes from 2^64 - 1");
	pin_case(v, key_of(3), base, top, top, 4096, WR, 0, "top region");
	pin_case(v, key_of(3), base, top, UINT64_MAX, 1, WR, 0,
		 "top region, last byte");
	pin_case(v, key_of(3), base, top, UINT64_MAX, 2, WR, -FI_EACCES,
		 "top region, 2 bytes from its last");
	pin_case(v, key_of(3), base, top, top - 1, 1, WR, -FI_EACCES,
		 "top region, byte before");
	/* The owner's own table answers the same. */
	pin_case(t, key_of(1), base, 0x10000, 0x10010, 16, RW, 0, "own table");
	pin_case(t, key_of(1), base, 0x10000, 0x10ff0, 17, RW, -FI_EACCES,
		 "own table, past the end");
out:
	view_close(&pv);
	usb4_mr_table_close(t);
}

/* ---- publish, revoke, capacity ------------------------------------------ */

static void test_publish_revoke(void)
{
	static char buf[64];
	const uint64_t base = (uintptr_t) buf;
	struct usb4_mr_table *t = NULL;
	struct usb4_pin pin, pins[3];
	struct peer_view pv;
	uint32_t slots[17], slot, s2;
	double t0;
	int ret;

	CHECK_EQ(usb4_mr_table_open(&t, 5), 0);	/* rounds up to 16 */
	if (!t)
		return;
	CHECK_EQ(view_open(getpid(), t, &pv), 0);

	/* Duplicate keys, whatever the region. */
	CHECK_EQ(usb4_mr_table_publish(t, key_of(0), base, 0, 64, RW,
				       &slots[0]), 0);
	CHECK_EQ_MSG(usb4_mr_table_publish(t, key_of(0), base + 8, 8, 8, RD,
					   &slot), -FI_ENOKEY,
		     "a key published twice");

	/* Capacity: 16 entries; every key stays findable along its probe
	 * chain. */
	for (unsigned k = 1; k < 16; k++)
		CHECK_EQ_MSG(usb4_mr_table_publish(t, key_of(k), base + k,
						   k << 20, 1, RD, &slots[k]),
			     0, "publishing entry %u of 16", k + 1);
	CHECK_EQ_MSG(usb4_mr_table_publish(t, key_of(16), base, 0, 64, RD,
					   &slots[16]), -FI_ENOSPC,
		     "a 17th entry in a table of 16");
	for (unsigned k = 1; k < 16; k++)
		pin_case(pv.view, key_of(k), base + k, k << 20, k << 20, 1, RD,
			 0, "a key of a full table");

	/* Revoked: no new pin, through either mapping. */
	CHECK_EQ(usb4_mr_pin(pv.view, key_of(5), 5 << 20, 1, RD, &pin), 0);
	usb4_mr_table_revoke(t, slots[5]);
	pin_case(pv.view, key_of(5), base + 5, 5 << 20, 5 << 20, 1, RD,
		 -FI_EACCES, "a revoked entry, peer's view");
	pin_case(t, key_of(5), base + 5, 5 << 20, 5 << 20, 1, RD, -FI_EACCES,
		 "a revoked entry, own table");
	/* Keys probed past the revoked entry are still found. */
	for (unsigned k = 1; k < 16; k++)
		if (k != 5)
			pin_case(pv.view, key_of(k), base + k, k << 20,
				 k << 20, 1, RD, 0,
				 "a key beside a revoked one");
	/* Still pinned: the dead entry is not free for a new key. */
	CHECK_EQ_MSG(usb4_mr_table_publish(t, key_of(16), base, 0, 64, RD,
					   &slots[16]), -FI_ENOSPC,
		     "an entry reused while a pin on it is held");
	usb4_mr_unpin(&pin);
	t0 = now_s();
	usb4_mr_table_drain(t, slots[5]);
	CHECK_MSG(now_s() - t0 < 0.1, "drain with no pin held took %.3f s",
		  now_s() - t0);
	ret = usb4_mr_table_publish(t, key_of(16), base, 0x777000, 64, RD,
				    &slots[16]);
	CHECK_EQ_MSG(ret, 0, "a revoked entry nobody holds was not reused");
	CHECK_EQ_MSG(slots[16], slots[5], "the new key took another slot of "
		     "a full table");
	pin_case(pv.view, key_of(16), base, 0x777000, 0x777000, 64, RD, 0,
		 "the key that reused a slot");
	pin_case(pv.view, key_of(5), base + 5, 5 << 20, 5 << 20, 1, RD,
		 -FI_EACCES, "the old key of a reused slot");

	/* A revoked key may be published again (here into its own slot). */
	usb4_mr_table_revoke(t, slots[16]);
	usb4_mr_table_drain(t, slots[16]);
	CHECK_EQ_MSG(usb4_mr_table_publish(t, key_of(5), base, 0x888000, 64,
					   RW, &s2), 0,
		     "a revoked key could not be published again");
	pin_case(pv.view, key_of(5), base, 0x888000, 0x888010, 8, WR, 0,
		 "a key published again");

	/* unpin_all lets go of every pin: drain returns at once. */
	for (int i = 0; i < 3; i++)
		CHECK_EQ(usb4_mr_pin(pv.view, key_of(5), 0x888000 + i, 1, RD,
				     &pins[i]), 0);
	usb4_mr_unpin_all(pins, 3);
	usb4_mr_table_revoke(t, s2);
	t0 = now_s();
	usb4_mr_table_drain(t, s2);
	CHECK_MSG(now_s() - t0 < 0.1, "drain after unpin_all took %.3f s",
		  now_s() - t0);

	/* A larger table: capacity rounds up to a power of two. */
	view_close(&pv);
	usb4_mr_table_close(t);
	t = NULL;
	CHECK_EQ(usb4_mr_table_open(&t, 40), 0);
	if (!t)
		return;
	for (unsigned k = 0; k < 64; k++)
		CHECK_EQ_MSG(usb4_mr_table_publish(t, key_of(k), base, 0, 64,
						   RD, &slot), 0,
			     "entry %u of a table asked for 40 (64)", k + 1);
	CHECK_EQ_MSG(usb4_mr_table_publish(t, key_of(64), base, 0, 64, RD,
					   &slot), -FI_ENOSPC,
		     "a 65th entry in a table of 64");
	usb4_mr_table_close(t);
}

/* ---- other processes: drain and the atomics lock ------------------------ */

/* A word parent and children share: a child sets it just before it lets go
 * of a pin or a lock, so the parent can tell (without timing) that it was
 * not let through before then. */
static _Atomic int *let_go;

/* Child: pins key through its own mapping, says so, waits for the revoke,
 * checks that no new pin succeeds, holds its pin 300 ms more, lets go. */
static void child_pin(pid_t owner, int fd, uint64_t key, int to_parent,
		      int from_parent)
{
	struct peer_view pv;
	struct usb4_pin pin, again;
	char c;

	pv.mem = usb4_test_map_proc_fd(owner, fd, &pv.len);
	pv.view = pv.mem ? usb4_mr_table_view(pv.mem, pv.len) : NULL;
	if (!pv.view)
		usb4_test_child_exit(2);
	if (usb4_mr_pin(pv.view, key, 0x100, 8, RW, &pin))
		usb4_test_child_exit(3);
	if (write(to_parent, "p", 1) != 1 || read(from_parent, &c, 1) != 1)
		usb4_test_child_exit(4);
	if (usb4_mr_pin(pv.view, key, 0x100, 8, RW, &again) != -FI_EACCES)
		usb4_test_child_exit(5);
	usleep(300 * 1000);
	atomic_store(let_go, 1);
	usb4_mr_unpin(&pin);
	usb4_test_child_exit(0);
}

static void test_drain_waits_for_child(void)
{
	static char buf[4096];
	struct usb4_mr_table *t = NULL;
	int to_parent[2], to_child[2], status;
	uint32_t slot;
	double t0, waited;
	pid_t pid;
	char c = 0;

	CHECK_EQ(usb4_mr_table_open(&t, 16), 0);
	if (!t)
		return;
	CHECK_EQ(usb4_mr_table_publish(t, key_of(42), (uintptr_t) buf, 0,
				       sizeof(buf), RW, &slot), 0);
	CHECK_EQ(pipe(to_parent), 0);
	CHECK_EQ(pipe(to_child), 0);
	atomic_store(let_go, 0);
	pid = usb4_test_fork();
	if (pid == 0) {
		close(to_parent[0]);
		close(to_child[1]);
		child_pin(getppid(), usb4_mr_table_fd(t), key_of(42),
			  to_parent[1], to_child[0]);
	}
	close(to_parent[1]);
	close(to_child[0]);
	CHECK_MSG(read(to_parent[0], &c, 1) == 1 && c == 'p',
		  "the child did not pin the region");
	usb4_mr_table_revoke(t, slot);
	CHECK_EQ(write(to_child[1], "r", 1), 1);
	t0 = now_s();
	usb4_mr_table_drain(t, slot);
	waited = now_s() - t0;
	CHECK_MSG(atomic_load(let_go), "drain returned while the child still "
		  "held its pin (after %.3f s)", waited);
	CHECK_MSG(waited < 1.5, "drain took %.3f s for a pin dropped after "
		  "0.3 s", waited);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child's side failed (status %#x: 2 no view, 3 no pin, "
		  "4 pipe, 5 pinned a revoked entry)", status);
	close(to_parent[0]);
	close(to_child[1]);
	usb4_mr_table_close(t);
}

/* Child: pins key through its own mapping, says so, then either holds the
 * pin hold_ms and lets go (let_go first), or dies holding it. */
static void child_hold(pid_t owner, int fd, uint64_t key, int to_parent,
		       int hold_ms, bool die)
{
	struct peer_view pv;
	struct usb4_pin pin;

	pv.mem = usb4_test_map_proc_fd(owner, fd, &pv.len);
	pv.view = pv.mem ? usb4_mr_table_view(pv.mem, pv.len) : NULL;
	if (!pv.view)
		usb4_test_child_exit(2);
	if (usb4_mr_pin(pv.view, key, 0x100, 8, RW, &pin))
		usb4_test_child_exit(3);
	if (write(to_parent, "p", 1) != 1)
		usb4_test_child_exit(4);
	if (die)
		_exit(0);	/* the pin stays behind */
	usleep(hold_ms * 1000);
	atomic_store(let_go, 1);
	usb4_mr_unpin(&pin);
	usb4_test_child_exit(0);
}

static pid_t spawn_holder(struct usb4_mr_table *t, uint64_t key, int hold_ms,
			  bool die)
{
	int p[2];
	pid_t pid;
	char c = 0;

	if (pipe(p))
		return -1;
	pid = usb4_test_fork();
	if (pid == 0) {
		close(p[0]);
		child_hold(getppid(), usb4_mr_table_fd(t), key, p[1], hold_ms,
			   die);
	}
	close(p[1]);
	CHECK_MSG(read(p[0], &c, 1) == 1 && c == 'p',
		  "the child did not pin the region");
	close(p[0]);
	return pid;
}

/*
 * A live initiator may take as long as it likes: the region's memory may be
 * freed only once it let go.  (Drain used to give up after 2 s and zero the
 * count, so a slow initiator then wrote to freed memory, and its unpin
 * wrapped the count so the entry was never free again.)
 */
static void test_drain_waits_for_a_slow_pinner(void)
{
	static char buf[4096];
	struct usb4_mr_table *t = NULL;
	uint32_t slot, slots[16];
	double t0, waited;
	int status, n = 0;
	pid_t pid;

	CHECK_EQ(usb4_mr_table_open(&t, 16), 0);
	if (!t)
		return;
	CHECK_EQ(usb4_mr_table_publish(t, key_of(7), (uintptr_t) buf, 0,
				       sizeof(buf), RW, &slot), 0);
	atomic_store(let_go, 0);
	pid = spawn_holder(t, key_of(7), 2500, false);
	usb4_mr_table_revoke(t, slot);
	t0 = now_s();
	usb4_mr_table_drain(t, slot);
	waited = now_s() - t0;
	CHECK_MSG(atomic_load(let_go), "drain returned after %.3f s while a "
		  "live process still held its pin", waited);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child's side failed (status %#x)", status);
	/* Every entry can be published again: no pin count went astray. */
	while (n < 16 && !usb4_mr_table_publish(t, key_of(100 + n),
						(uintptr_t) buf, 0, sizeof(buf),
						RW, &slots[n]))
		n++;
	CHECK_EQ_MSG(n, 16, "only %d of 16 entries could be published after "
		     "the slow pinner let go", n);
	usb4_mr_table_close(t);
}

/* A process that died holding a pin does not keep fi_close waiting, and
 * its entry becomes free again. */
static void test_drain_clears_a_dead_pinner(void)
{
	static char buf[4096];
	struct usb4_mr_table *t = NULL;
	uint32_t slot, slots[16];
	int status, n = 0;
	double t0;
	pid_t pid;

	CHECK_EQ(usb4_mr_table_open(&t, 16), 0);
	if (!t)
		return;
	CHECK_EQ(usb4_mr_table_publish(t, key_of(8), (uintptr_t) buf, 0,
				       sizeof(buf), RW, &slot), 0);
	pid = spawn_holder(t, key_of(8), 0, true);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	usb4_mr_table_revoke(t, slot);
	t0 = now_s();
	usb4_mr_table_drain(t, slot);
	CHECK_MSG(now_s() - t0 < 0.5, "drain waited %.3f s for a dead process",
		  now_s() - t0);
	while (n < 16 && !usb4_mr_table_publish(t, key_of(200 + n),
						(uintptr_t) buf, 0, sizeof(buf),
						RW, &slots[n]))
		n++;
	CHECK_EQ_MSG(n, 16, "only %d of 16 entries could be published after "
		     "the dead pinner's entry was drained", n);
	usb4_mr_table_close(t);
}

/* Pins are held per process, in a few slots per entry: when every slot is
 * held by other processes a pin waits (-FI_EAGAIN), it is not refused. */
static void test_pinner_slots_full(void)
{
	static char buf[4096];
	struct usb4_mr_table *t = NULL;
	struct usb4_pin pin;
	pid_t pids[4];
	uint32_t slot;
	int status;

	CHECK_EQ(usb4_mr_table_open(&t, 16), 0);
	if (!t)
		return;
	CHECK_EQ(usb4_mr_table_publish(t, key_of(9), (uintptr_t) buf, 0x100,
				       sizeof(buf), RW, &slot), 0);
	atomic_store(let_go, 0);
	for (int i = 0; i < 4; i++)
		pids[i] = spawn_holder(t, key_of(9), 400, false);
	CHECK_EQ(usb4_mr_pin(t, key_of(9), 0x100, 8, RW, &pin), -FI_EAGAIN);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(waitpid(pids[i], &status, 0), pids[i]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CHECK_EQ(usb4_mr_pin(t, key_of(9), 0x100, 8, RW, &pin), 0);
	usb4_mr_unpin(&pin);
	usb4_mr_table_close(t);
}

/* Child: takes the atomics lock through its own mapping, says so, and
 * either holds it 200 ms and unlocks, or dies holding it. */
static void child_lock(pid_t owner, int fd, int to_parent, bool die)
{
	struct peer_view pv;

	pv.mem = usb4_test_map_proc_fd(owner, fd, &pv.len);
	pv.view = pv.mem ? usb4_mr_table_view(pv.mem, pv.len) : NULL;
	if (!pv.view)
		usb4_test_child_exit(2);
	usb4_mr_atomic_lock(pv.view);
	if (write(to_parent, "l", 1) != 1)
		usb4_test_child_exit(3);
	if (die)
		usb4_test_child_exit(0);
	usleep(200 * 1000);
	atomic_store(let_go, 1);
	usb4_mr_atomic_unlock(pv.view);
	usb4_test_child_exit(0);
}

static pid_t spawn_locker(struct usb4_mr_table *t, bool die)
{
	int p[2];
	pid_t pid;
	char c = 0;

	if (pipe(p))
		return -1;
	atomic_store(let_go, 0);
	pid = usb4_test_fork();
	if (pid == 0) {
		close(p[0]);
		child_lock(getppid(), usb4_mr_table_fd(t), p[1], die);
	}
	close(p[1]);
	CHECK_MSG(read(p[0], &c, 1) == 1 && c == 'l',
		  "the child did not take the atomics lock");
	close(p[0]);
	return pid;
}

static void test_atomic_lock(void)
{
	struct usb4_mr_table *t = NULL;
	int status;
	double t0, waited;
	pid_t pid;

	CHECK_EQ(usb4_mr_table_open(&t, 16), 0);
	if (!t)
		return;
	/* Uncontended, twice in a row. */
	for (int i = 0; i < 2; i++) {
		t0 = now_s();
		usb4_mr_atomic_lock(t);
		usb4_mr_atomic_unlock(t);
		CHECK_MSG(now_s() - t0 < 1.0, "an uncontended lock took %.3f s",
			  now_s() - t0);
	}

	/* Held by another process: we wait until it lets go. */
	pid = spawn_locker(t, false);
	t0 = now_s();
	usb4_mr_atomic_lock(t);
	waited = now_s() - t0;
	CHECK_MSG(atomic_load(let_go), "took the atomics lock (after %.3f s) "
		  "while another process held it", waited);
	usb4_mr_atomic_unlock(t);
	CHECK_MSG(waited < 2.0, "the lock took %.3f s after its holder "
		  "released it", waited);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the locking child failed (status %#x)", status);

	/* Its holder died holding it (and was reaped): displaced. */
	pid = spawn_locker(t, true);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	t0 = now_s();
	usb4_mr_atomic_lock(t);	/* alarm() in main catches a hang */
	waited = now_s() - t0;
	usb4_mr_atomic_unlock(t);
	CHECK_MSG(waited < 1.0, "displacing the lock of a dead holder took "
		  "%.3f s", waited);
	usb4_mr_table_close(t);
}

/* ---- the domain's wrappers ------------------------------------------------ */

static void test_core_domain(void)
{
	static char buf[128];
	struct usb4_core_domain dom = { 0 };
	struct usb4_core_mr mr = { 0 }, dup = { 0 };
	struct usb4_pin pin;

	CHECK_EQ_MSG(usb4_core_domain_open(&dom, 20), 0, "opening a domain's "
		     "table");
	CHECK_MSG(dom.mrs != NULL, "a domain without a table");
	if (!dom.mrs)
		return;
	CHECK_EQ(usb4_core_mr_publish(&dom, key_of(7), buf, sizeof(buf), 0x500,
				      RD, &mr), 0);
	CHECK_MSG(mr.published, "a published region says unpublished");
	CHECK_EQ(usb4_core_mr_publish(&dom, key_of(7), buf, sizeof(buf), 0,
				      RD, &dup), -FI_ENOKEY);
	CHECK_MSG(!dup.published, "a refused region says published");
	CHECK_EQ(usb4_mr_pin(dom.mrs, key_of(7), 0x520, 8, RD, &pin), 0);
	CHECK_MSG(pin.va == (uintptr_t) buf + 0x20 && pin.slot == mr.slot,
		  "pin of a domain's region: va %#llx slot %u",
		  (unsigned long long) pin.va, pin.slot);
	usb4_mr_unpin(&pin);
	usb4_core_domain_close(&dom);
	CHECK_MSG(dom.mrs == NULL, "a closed domain keeps its table pointer");
}

/* ---- nothing left behind ------------------------------------------------- */

/* Our memfds among the open fds and among the mappings. */
static void count_usb4(int *fds, int *maps)
{
	usb4_test_count_fds(fds);
	*maps = usb4_test_count_usb4_maps();
}

static void test_no_residue(void)
{
	struct usb4_mr_table *t[3] = { NULL };
	int fds, maps;

	count_usb4(&fds, &maps);
	CHECK_MSG(fds == 0 && maps == 0, "earlier tests left %d memfds open "
		  "and %d mapped", fds, maps);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(usb4_mr_table_open(&t[i], 16 << i), 0);
	count_usb4(&fds, &maps);
	CHECK_MSG(fds == 3 && maps == 3, "3 tables: %d memfds open, %d mapped",
		  fds, maps);
	CHECK_EQ_MSG(usb4_test_count_dev_shm_usb4(), 0, "a table shows in /dev/shm");
	for (int i = 0; i < 3; i++)
		usb4_mr_table_close(t[i]);
	count_usb4(&fds, &maps);
	CHECK_MSG(fds == 0 && maps == 0, "closed tables left %d memfds open "
		  "and %d mapped", fds, maps);
	CHECK_EQ(usb4_test_count_dev_shm_usb4(), 0);
}

/* A region that is empty or runs past 2^64, by its owner's address or by
 * the one initiators use, is never published: base + offset would reach
 * memory outside the buffer. */
static void test_publish_refuses_bad_ranges(void)
{
	static char buf[64];
	const uint64_t base = (uintptr_t) buf;
	struct usb4_mr_table *t = NULL;
	uint32_t slot;

	CHECK_EQ(usb4_mr_table_open(&t, 16), 0);
	if (!t)
		return;
	CHECK_EQ(usb4_mr_table_publish(t, key_of(1), base, base, 0, RW, &slot),
		 -FI_EINVAL);
	CHECK_EQ(usb4_mr_table_publish(t, key_of(2), base, base,
				       UINT64_MAX - base + 2, RW, &slot),
		 -FI_EINVAL);
	CHECK_EQ(usb4_mr_table_publish(t, key_of(3), base, base, UINT64_MAX,
				       RW, &slot), -FI_EINVAL);
	CHECK_EQ(usb4_mr_table_publish(t, key_of(4), base, UINT64_MAX - 31,
				       64, RW, &slot), -FI_EINVAL);
	/* Nothing was published: every key is still free. */
	for (int k = 1; k <= 4; k++) {
		CHECK_EQ(usb4_mr_table_publish(t, key_of(k), base, 0, 64, RW,
					       &slot), 0);
		usb4_mr_table_revoke(t, slot);
	}
	usb4_mr_table_close(t);
}

int main(void)
{
	void *shared = mmap(NULL, sizeof(*let_go), PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (shared == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	let_go = shared;
	alarm(60);
	test_views();
	test_pins();
	test_publish_refuses_bad_ranges();
	test_publish_revoke();
	test_drain_waits_for_child();
	test_drain_waits_for_a_slow_pinner();
	test_drain_clears_a_dead_pinner();
	test_pinner_slots_full();
	test_atomic_lock();
	test_core_domain();
	test_no_residue();
	munmap(shared, sizeof(*let_go));
	return usb4_test_done("test_mr_table");
}
