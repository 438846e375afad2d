/*
 * The registration table's board (usb4_mr_board.c): a forked process maps
 * our table as a same-host peer does and posts atomics, gets and puts;
 * we serve them from our "progress" loop.  A request we do not take in
 * time is withdrawn untouched, and none is posted to an owner asleep in the
 * kernel; refused requests (wrong key, range, rights,
 * alignment) leave the memory as it was; a malformed request is refused.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "usb4.h"
#include "usb4_core.h"
#include "usb4_mr_board.h"
#include "usb4_test.h"
#include "usb4_test_proc.h"

#define KEY_RW		0x1234567811111111ull
#define KEY_RO		0x1234567822222222ull
#define REGION		4096

/* Shared with the child: what the owner does and the child did. */
struct ctl {
	_Atomic int child_fd;	/* both_post: the child's own table */
	_Atomic uint64_t child_va;	/* both_post: its region */
	uint64_t parent_va;	/* both_post: the parent's region */
	_Atomic int done;	/* both_post: sides through their requests */
	_Atomic int asleep_seen;	/* the child tried an asleep owner */
	_Atomic int awake;	/* the owner no longer sleeps */
	_Atomic int serve;	/* 1: the owner serves its board */
	_Atomic int withdrawn;	/* the child's first request came back */
};

static struct ctl *ctl;

/* How long a request is tried again when the owner did not take it in
 * time (this machine is shared: the owner may be off its CPU for a long
 * while under real-time benchmarks); a withdrawn request is untouched, so
 * trying again is safe. */
#define TRY_S		10

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* An atomic on n uint64_t, tried until the owner takes it. */
static int atomic_n(struct usb4_mr_table *v, enum usb4_atomic_kind kind,
		    enum fi_op op, uint64_t key, uint64_t addr, size_t n,
		    uint64_t *src, uint64_t *cmp, uint64_t *old)
{
	double end = now_s() + TRY_S;
	int ret = 1;

	while (ret == 1 && now_s() < end) {
		usb4_mr_table_board_pace(v)->skip = 0;
		ret = usb4_board_atomic(v, NULL, kind, FI_UINT64, op, key, addr,
					n * 8, (char *) src, (char *) cmp,
					(char *) old);
	}
	return ret;
}

static int atomic(struct usb4_mr_table *v, enum usb4_atomic_kind kind,
		  enum fi_op op, uint64_t key, uint64_t addr, uint64_t *src,
		  uint64_t *cmp, uint64_t *old)
{
	return atomic_n(v, kind, op, key, addr, 1, src, cmp, old);
}

/* The owner sleeps in the kernel: nothing is posted, nothing waited for. */
static void child_owner_asleep(struct usb4_mr_table *v)
{
	uint64_t x = 7, old;

	CHECK_EQ(usb4_board_atomic(v, NULL, USB4_ATOMIC_BASE, FI_UINT64, FI_SUM,
				   KEY_RW, 0, 8, (char *) &x, NULL,
				   (char *) &old), 1);
	CHECK_EQ(atomic_load(&usb4_mr_table_board(v)->state), USB4_BOARD_FREE);
	CHECK_EQ(usb4_mr_table_board_pace(v)->skip, 0);
}

/* An atomic the owner does not take: 1, and nothing done. */
static void unserved_add(struct usb4_mr_table *v)
{
	uint64_t x = 7, old;

	CHECK_EQ(usb4_board_atomic(v, NULL, USB4_ATOMIC_BASE, FI_UINT64, FI_SUM,
				   KEY_RW, 0, 8, (char *) &x, NULL,
				   (char *) &old), 1);
	CHECK_EQ(atomic_load(&usb4_mr_table_board(v)->state), USB4_BOARD_FREE);
}

/* Nobody serves: the request is withdrawn and later ones skip the board,
 * one after the first withdrawal, two after the next, up to
 * USB4_BOARD_SKIP. */
static void child_unserved(struct usb4_mr_table *v)
{
	struct usb4_board_pace *pace = usb4_mr_table_board_pace(v);
	unsigned want = 1;

	for (int round = 0; round < 8; round++) {
		unserved_add(v);	/* posted and withdrawn */
		CHECK_EQ_MSG(pace->skip, want, "after withdrawal %d", round);
		for (unsigned i = 0; i < want; i++)
			unserved_add(v);	/* skipped */
		CHECK_EQ(pace->skip, 0);
		want = want * 2 < 64 ? want * 2 : 64;
	}
}

static void child_served(struct usb4_mr_table *v)
{
	uint64_t pat[16], back[16], one = 5, old = 99, cmp, swap = 42;

	/* 16 elements: operands and results past the request's line. */
	for (int i = 0; i < 16; i++)
		pat[i] = 0x0101010101010101ull * (uint64_t) (i + 1);
	CHECK_EQ(atomic_n(v, USB4_ATOMIC_BASE, FI_ATOMIC_WRITE, KEY_RW, 1024,
			  16, pat, NULL, back), 0);
	/* Taken: the next withdrawal skips one request again. */
	CHECK_EQ(usb4_mr_table_board_pace(v)->after, 0);
	CHECK_EQ(atomic_n(v, USB4_ATOMIC_FETCH, FI_ATOMIC_READ, KEY_RW, 1024,
			  16, NULL, NULL, back), 0);
	CHECK(!memcmp(pat, back, sizeof(pat)));
	CHECK_EQ(atomic_n(v, USB4_ATOMIC_COMPARE, FI_CSWAP, KEY_RW, 1024, 16,
			  back, pat, back), 0);	/* swaps in what is there */
	CHECK(!memcmp(pat, back, sizeof(pat)));
	CHECK_EQ(atomic(v, USB4_ATOMIC_FETCH, FI_SUM, KEY_RW, 128, &one, NULL,
			&old), 0);
	CHECK_EQ(old, 0);
	CHECK_EQ(atomic(v, USB4_ATOMIC_BASE, FI_SUM, KEY_RW, 128, &one, NULL,
			&old), 0);
	cmp = 3;	/* not what is there: no swap */
	CHECK_EQ(atomic(v, USB4_ATOMIC_COMPARE, FI_CSWAP, KEY_RW, 128, &swap,
			&cmp, &old), 0);
	CHECK_EQ(old, 10);
	cmp = 10;
	CHECK_EQ(atomic(v, USB4_ATOMIC_COMPARE, FI_CSWAP, KEY_RW, 128, &swap,
			&cmp, &old), 0);
	CHECK_EQ(old, 10);
}

/* Every refusal is an error verdict and touches nothing (the owner checks
 * the memory after the child exits). */
static void child_refused(struct usb4_mr_table *v)
{
	uint64_t x = 0xdeadbeefull, old, big[USB4_BOARD_DATA / 8 + 1] = { 0 };
	uint64_t bigold[USB4_BOARD_DATA / 8 + 1];

	CHECK_EQ(atomic(v, USB4_ATOMIC_BASE, FI_ATOMIC_WRITE, KEY_RW ^ 1, 0, &x,
			NULL, &old), -FI_EACCES);
	CHECK_EQ(atomic(v, USB4_ATOMIC_BASE, FI_ATOMIC_WRITE, KEY_RW,
			REGION - 4, &x, NULL, &old), -FI_EACCES);
	CHECK_EQ(atomic(v, USB4_ATOMIC_BASE, FI_ATOMIC_WRITE, KEY_RO, 0, &x,
			NULL, &old), -FI_EACCES);
	CHECK_EQ(atomic(v, USB4_ATOMIC_BASE, FI_SUM, KEY_RO, 0, &x, NULL,
			&old), -FI_EACCES);
	CHECK_EQ(atomic(v, USB4_ATOMIC_BASE, FI_SUM, KEY_RW, 129, &x, NULL,
			&old), -FI_EINVAL);
	/* Larger than the slot: not the board's (the link's copy does it). */
	CHECK_EQ(usb4_board_atomic(v, NULL, USB4_ATOMIC_BASE, FI_UINT64,
				   FI_ATOMIC_WRITE, KEY_RW, 0, sizeof(big),
				   (char *) big, NULL, (char *) bigold), 1);
	/* A compare whose operands outgrow the slot: the same. */
	CHECK_EQ(usb4_board_atomic(v, NULL, USB4_ATOMIC_COMPARE, FI_UINT64,
				   FI_CSWAP, KEY_RW, 0, USB4_BOARD_DATA,
				   (char *) big, (char *) big, (char *) bigold),
		 1);
}

static int child_main(pid_t owner, int fd)
{
	struct usb4_mr_table *v;
	size_t len;
	void *mem = usb4_test_map_proc_fd(owner, fd, &len);

	usb4_test_failures = 0;	/* the child's own, not the parent's so far */
	v = mem ? usb4_mr_table_view(mem, len) : NULL;
	CHECK(v && usb4_mr_table_board(v));
	if (!v || !usb4_mr_table_board(v))
		return 1;
	child_owner_asleep(v);
	atomic_store(&ctl->asleep_seen, 1);
	while (!atomic_load(&ctl->awake))
		usleep(100);
	child_unserved(v);
	atomic_store(&ctl->withdrawn, 1);
	while (!atomic_load(&ctl->serve))
		usleep(100);
	child_served(v);
	child_refused(v);
	usb4_mr_table_view_free(v);
	munmap(mem, len);
	return usb4_test_failures ? 1 : 0;
}

/* A table with rw published read-write (zeroed) and ro read-only (0x5a),
 * as the children's checks expect. */
static struct usb4_mr_table *open_rw_ro(unsigned char *rw, unsigned char *ro)
{
	struct usb4_mr_table *t = NULL;
	uint32_t slot;

	CHECK_EQ(usb4_mr_table_open(&t, 16), 0);
	memset(rw, 0, REGION);
	memset(ro, 0x5a, REGION);
	CHECK_EQ(usb4_mr_table_publish(t, KEY_RW, (uintptr_t) rw, 0, REGION,
				       FI_REMOTE_READ | FI_REMOTE_WRITE, &slot), 0);
	CHECK_EQ(usb4_mr_table_publish(t, KEY_RO, (uintptr_t) ro, 0, REGION,
				       FI_REMOTE_READ, &slot), 0);
	return t;
}

static void serve_until_exit(struct usb4_mr_table *t, pid_t pid,
			     unsigned char *rw, const unsigned char *before)
{
	int status = -1;

	while (!atomic_load(&ctl->asleep_seen))
		usleep(100);
	usb4_board_note_sleep(t, -1);
	atomic_store(&ctl->awake, 1);
	while (!atomic_load(&ctl->withdrawn))
		usleep(100);
	/* Withdrawn: there is nothing to apply. */
	CHECK_EQ(usb4_board_serve(t), 0);
	CHECK(!memcmp(rw, before, REGION));
	atomic_store(&ctl->serve, 1);
	while (waitpid(pid, &status, WNOHANG) == 0)
		usb4_board_serve(t);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the claimant's checks (status %d)", status);
}

static void test_served_by_owner(void)
{
	struct usb4_mr_table *t;
	unsigned char *rw = aligned_alloc(64, REGION);
	unsigned char *ro = aligned_alloc(64, REGION);
	unsigned char *before = malloc(REGION);
	uint64_t sum;
	pid_t pid;

	t = open_rw_ro(rw, ro);
	memcpy(before, rw, REGION);
	usb4_board_note_sleep(t, 1);	/* as if an endpoint slept */
	pid = usb4_test_fork();
	if (pid == 0)
		usb4_test_child_exit(child_main(getppid(),
						usb4_mr_table_fd(t)));
	serve_until_exit(t, pid, rw, before);
	memcpy(&sum, rw + 128, sizeof(sum));
	CHECK_EQ(sum, 42);	/* 0 + 5 + 5, then swapped for 42 */
	CHECK_EQ(rw[1024], 1);
	CHECK_EQ(rw[1024 + 127], 16);
	CHECK_EQ(rw[0], 0);	/* the withdrawn write and the refused ones */
	CHECK_EQ(rw[REGION - 1], 0);
	for (int i = 0; i < REGION; i++)
		if (ro[i] != 0x5a) {
			CHECK_MSG(0, "read-only byte %d changed", i);
			break;
		}
	/* 7 served, 5 refused; the withdrawn one never was. */
	CHECK_EQ(usb4_mr_table_board(t)->served, 12);
	usb4_mr_table_close(t);
	free(before);
	free(ro);
	free(rw);
}

/*
 * Atomicity: two claimants add 1 HAMMER times each to one counter, by the
 * board when the owner takes it and otherwise by a locked read-modify-write
 * through the owner's memory (what the core's fallback does), while the
 * owner adds 1 HAMMER times itself under the same lock.  Every fetched
 * value is new to its claimant and the sum is exact.
 */
#define HAMMER		20000
#define CLAIMANTS	2

static void locked_add(struct usb4_mr_table *v, pid_t owner, uint64_t va,
		       uint64_t *old)
{
	uint64_t now;
	struct iovec l = { &now, 8 }, r = { (void *) (uintptr_t) va, 8 };

	usb4_mr_atomic_lock(v);
	CHECK_EQ(process_vm_readv(owner, &l, 1, &r, 1, 0), 8);
	*old = now++;
	CHECK_EQ(process_vm_writev(owner, &l, 1, &r, 1, 0), 8);
	usb4_mr_atomic_unlock(v);
}

static int child_hammer(pid_t owner, int fd, uint64_t va)
{
	size_t len;
	void *mem = usb4_test_map_proc_fd(owner, fd, &len);
	struct usb4_mr_table *v = mem ? usb4_mr_table_view(mem, len) : NULL;
	uint64_t one = 1, old, last = 0;

	usb4_test_failures = 0;	/* the child's own, not the parent's so far */
	if (!v)
		return 1;
	for (int i = 0; i < HAMMER; i++) {
		int ret = usb4_board_atomic(v, NULL, USB4_ATOMIC_FETCH,
					    FI_UINT64, FI_SUM, KEY_RW, 0, 8,
					    (char *) &one, NULL, (char *) &old);

		if (ret == 1)
			locked_add(v, owner, va, &old);
		else
			CHECK_EQ(ret, 0);
		CHECK_MSG(i == 0 || old > last, "fetched %llu after %llu",
			  (unsigned long long) old, (unsigned long long) last);
		last = old;
	}
	usb4_mr_table_view_free(v);
	munmap(mem, len);
	return usb4_test_failures ? 1 : 0;
}

static void test_atomic_against_everyone(void)
{
	struct usb4_mr_table *t = NULL;
	uint64_t *ctr = aligned_alloc(64, REGION);
	pid_t pids[CLAIMANTS];
	uint32_t slot;
	int running = CLAIMANTS, mine = 0;

	CHECK_EQ(usb4_mr_table_open(&t, 16), 0);
	memset(ctr, 0, REGION);
	CHECK_EQ(usb4_mr_table_publish(t, KEY_RW, (uintptr_t) ctr, 0, REGION,
				       FI_REMOTE_READ | FI_REMOTE_WRITE, &slot), 0);
	for (int i = 0; i < CLAIMANTS; i++) {
		pids[i] = usb4_test_fork();
		if (pids[i] == 0)
			usb4_test_child_exit(child_hammer(getppid(),
							  usb4_mr_table_fd(t),
							  (uintptr_t) ctr));
	}
	while (running) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid > 0) {
			running--;
			CHECK_MSG(WIFEXITED(status) && !WEXITSTATUS(status),
				  "claimant %d: status %d", (int) pid, status);
		}
		usb4_board_serve(t);
		if (mine < HAMMER) {	/* the owner's own atomic */
			usb4_mr_atomic_lock(t);
			(*(volatile uint64_t *) ctr)++;
			usb4_mr_atomic_unlock(t);
			mine++;
		}
	}
	while (mine++ < HAMMER)
		(*ctr)++;
	CHECK_EQ(*ctr, (uint64_t) HAMMER * (CLAIMANTS + 1));
	CHECK_MSG(usb4_mr_table_board(t)->served > 0,
		  "no claimant's atomic went by the board");
	usb4_mr_table_close(t);
	free(ctr);
}

/* What the owner finds on its board is checked before use. */
static void post_bad(struct usb4_mr_table *t, uint16_t op, uint32_t len,
		     uint16_t dt, const char *what)
{
	struct usb4_mrt_board *b = usb4_mr_table_board(t);

	b->op = op;
	b->key = KEY_RW;
	b->addr = 0;
	b->len = len;
	b->datatype = dt;
	b->atomic_op = FI_SUM;
	b->kind = USB4_ATOMIC_BASE;
	atomic_store(&b->state, USB4_BOARD_POSTED);
	CHECK_EQ_MSG(usb4_board_serve(t), 1, "%s", what);
	CHECK_EQ_MSG(b->status, -FI_EINVAL, "%s", what);
	CHECK_EQ_MSG(atomic_load(&b->state), USB4_BOARD_DONE, "%s", what);
	atomic_store(&b->state, USB4_BOARD_FREE);
}

static void test_malformed_requests(void)
{
	struct usb4_mr_table *t = NULL;
	unsigned char *rw = aligned_alloc(64, REGION);
	uint32_t slot;

	CHECK_EQ(usb4_mr_table_open(&t, 16), 0);
	memset(rw, 0, REGION);
	CHECK_EQ(usb4_mr_table_publish(t, KEY_RW, (uintptr_t) rw, 0, REGION,
				       FI_REMOTE_READ | FI_REMOTE_WRITE, &slot), 0);
	post_bad(t, 0, 8, FI_UINT64, "no operation");
	post_bad(t, 9, 8, FI_UINT64, "unknown operation");
	post_bad(t, USB4_BOARD_ATOMIC, 0, FI_UINT64, "no bytes");
	post_bad(t, USB4_BOARD_ATOMIC, USB4_BOARD_DATA + 8, FI_UINT64,
		 "more bytes than the slot");
	post_bad(t, USB4_BOARD_ATOMIC, 8, 999, "unknown datatype");
	post_bad(t, USB4_BOARD_ATOMIC, 12, FI_UINT64, "a partial element");
	post_bad(t, USB4_BOARD_READ, 0, 0, "a get of no bytes");
	post_bad(t, USB4_BOARD_WRITE, USB4_BOARD_DATA + 1, 0,
		 "a put of more bytes than the slot");
	for (int i = 0; i < REGION; i++)
		if (rw[i]) {
			CHECK_MSG(0, "byte %d changed", i);
			break;
		}
	/* Nothing posted: nothing served. */
	CHECK_EQ(usb4_board_serve(t), 0);
	usb4_mr_table_close(t);
	free(rw);
}

/* ---- gets and puts ---- */

#define RMA_AT		300
#define RMA_LEN		200

/* A get or put tried until the owner takes it (as atomic_n). */
static int rma(struct usb4_mr_table *v, bool write, uint64_t key,
	       uint64_t addr, const struct iovec *iov, size_t n, size_t len)
{
	double end = now_s() + TRY_S;
	int ret = 1;

	while (ret == 1 && now_s() < end) {
		usb4_mr_table_board_pace(v)->skip = 0;
		ret = usb4_board_rma(v, NULL, write, key, addr, iov, n, len);
	}
	return ret;
}

/* A put from three pieces, a get back into two; refusals leave both sides'
 * bytes as they were. */
static void child_rma(struct usb4_mr_table *v)
{
	unsigned char pat[RMA_LEN], back[RMA_LEN], big[USB4_BOARD_DATA + 1];
	struct iovec three[3] = { { pat, 1 }, { pat + 1, 99 },
				  { pat + 100, RMA_LEN - 100 } };
	struct iovec two[2] = { { back, 64 }, { back + 64, RMA_LEN - 64 } };
	struct iovec whole = { big, sizeof(big) };

	CHECK(usb4_mr_table_board_rma(v));
	for (int i = 0; i < RMA_LEN; i++)
		pat[i] = (unsigned char) (i * 7 + 1);
	CHECK_EQ(rma(v, true, KEY_RW, RMA_AT, three, 3, RMA_LEN), 0);
	memset(back, 0, sizeof(back));
	CHECK_EQ(rma(v, false, KEY_RW, RMA_AT, two, 2, RMA_LEN), 0);
	CHECK(!memcmp(pat, back, RMA_LEN));
	CHECK_EQ(rma(v, true, KEY_RO, 0, three, 3, RMA_LEN), -FI_EACCES);
	CHECK_EQ(rma(v, true, KEY_RW ^ 1, 0, three, 3, RMA_LEN), -FI_EACCES);
	CHECK_EQ(rma(v, true, KEY_RW, REGION - 8, three, 3, 16), -FI_EACCES);
	memset(back, 0xee, sizeof(back));
	CHECK_EQ(rma(v, false, KEY_RW ^ 1, 0, two, 2, RMA_LEN), -FI_EACCES);
	CHECK_EQ(back[0], 0xee);
	CHECK_EQ(back[RMA_LEN - 1], 0xee);
	/* Gets from a read-only region are fine. */
	CHECK_EQ(rma(v, false, KEY_RO, 0, two, 2, RMA_LEN), 0);
	CHECK_EQ(back[RMA_LEN - 1], 0x5a);
	/* Larger than the slot: the link's copy does it. */
	CHECK_EQ(usb4_board_rma(v, NULL, true, KEY_RW, 0, &whole, 1, sizeof(big)),
		 1);
	CHECK_EQ(atomic_load(&usb4_mr_table_board(v)->state), USB4_BOARD_FREE);
}

static int child_rma_main(pid_t owner, int fd)
{
	struct usb4_mr_table *v;
	size_t len;
	void *mem = usb4_test_map_proc_fd(owner, fd, &len);

	usb4_test_failures = 0;
	v = mem ? usb4_mr_table_view(mem, len) : NULL;
	CHECK(v && usb4_mr_table_board(v));
	if (!v || !usb4_mr_table_board(v))
		return 1;
	child_rma(v);
	usb4_mr_table_view_free(v);
	munmap(mem, len);
	return usb4_test_failures ? 1 : 0;
}

static void test_rma_served_by_owner(void)
{
	struct usb4_mr_table *t;
	unsigned char *rw = aligned_alloc(64, REGION);
	unsigned char *ro = aligned_alloc(64, REGION);
	int status = -1;
	pid_t pid;

	t = open_rw_ro(rw, ro);
	pid = usb4_test_fork();
	if (pid == 0)
		usb4_test_child_exit(child_rma_main(getppid(),
						    usb4_mr_table_fd(t)));
	while (waitpid(pid, &status, WNOHANG) == 0)
		usb4_board_serve(t);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the claimant's checks (status %d)", status);
	for (int i = 0; i < REGION; i++) {
		unsigned char want = i >= RMA_AT && i < RMA_AT + RMA_LEN ?
			(unsigned char) ((i - RMA_AT) * 7 + 1) : 0;

		if (rw[i] != want || ro[i] != 0x5a) {
			CHECK_MSG(0, "byte %d: %#x %#x", i, rw[i], ro[i]);
			break;
		}
	}
	/* The put, the gets and the four refusals, by the owner. */
	CHECK_EQ(usb4_mr_table_board(t)->served, 7);
	usb4_mr_table_close(t);
	free(ro);
	free(rw);
}

/* ---- two owners posting to each other ---- */

#define BOTH_OPS	4000

/*
 * Puts and fetching adds to the other side, each offered on its board (the
 * pace reset before each), with nobody serving a board but the waits
 * themselves: each side's wait on the other's board serves its own.
 * Returns how many requests of the other side our waits served; what the
 * board did not take goes by the copy's way here (a locked add through
 * process_vm_*), so every add lands either way.
 */
static uint64_t post_to_other(struct usb4_mr_table *self,
			      struct usb4_mr_table *other, pid_t owner,
			      uint64_t other_va)
{
	uint64_t served;

	for (int i = 0; i < BOTH_OPS; i++) {
		uint64_t one = 1, old, word = (uint64_t) i;
		struct iovec iov = { &word, sizeof(word) };
		int ret;

		usb4_mr_table_board_pace(other)->skip = 0;
		ret = i % 2 ?
			usb4_board_atomic(other, self, USB4_ATOMIC_FETCH,
					  FI_UINT64, FI_SUM, KEY_RW, 0, 8,
					  (char *) &one, NULL, (char *) &old) :
			usb4_board_rma(other, self, true, KEY_RW, 8, &iov, 1,
				       sizeof(word));
		if (ret != 1)
			CHECK_EQ(ret, 0);
		else if (i % 2)	/* a put not taken is simply not done */
			locked_add(other, owner, other_va, &old);
	}
	served = usb4_mr_table_board(self)->served;
	/* Serve the other side until it is through too. */
	atomic_fetch_add(&ctl->done, 1);
	while (atomic_load(&ctl->done) < 2)
		usb4_board_serve(self);
	return served;
}

static struct usb4_mr_table *open_published(uint64_t *region)
{
	struct usb4_mr_table *t = NULL;
	uint32_t slot;

	CHECK_EQ(usb4_mr_table_open(&t, 16), 0);
	if (t)
		CHECK_EQ(usb4_mr_table_publish(t, KEY_RW, (uintptr_t) region, 0,
					       REGION, FI_REMOTE_READ |
					       FI_REMOTE_WRITE, &slot), 0);
	return t;
}

static int child_both(pid_t owner, int owner_fd)
{
	uint64_t *region = aligned_alloc(64, REGION);
	struct usb4_mr_table *self, *other;
	size_t len;
	void *mem = usb4_test_map_proc_fd(owner, owner_fd, &len);
	uint64_t served;

	usb4_test_failures = 0;
	memset(region, 0, REGION);
	self = open_published(region);
	other = mem ? usb4_mr_table_view(mem, len) : NULL;
	if (!self || !other)
		return 1;
	atomic_store(&ctl->child_va, (uintptr_t) region);
	atomic_store(&ctl->child_fd, usb4_mr_table_fd(self));
	served = post_to_other(self, other, owner, ctl->parent_va);
	CHECK_MSG(served > 0, "child: none of the parent's %d requests "
		  "served while waiting", BOTH_OPS);
	/* Every add of the parent landed here, by our waits. */
	CHECK_EQ(region[0], (uint64_t) BOTH_OPS / 2);
	usb4_mr_table_view_free(other);
	usb4_mr_table_close(self);
	return usb4_test_failures ? 1 : 0;
}

static void test_both_post(void)
{
	uint64_t *region = aligned_alloc(64, REGION);
	struct usb4_mr_table *self, *other = NULL;
	void *mem = NULL;
	size_t len = 0;
	uint64_t served;
	int status = -1;
	pid_t pid;

	memset(region, 0, REGION);
	atomic_store(&ctl->child_fd, -1);
	atomic_store(&ctl->done, 0);
	ctl->parent_va = (uintptr_t) region;
	self = open_published(region);
	if (!self)
		return;
	pid = usb4_test_fork();
	if (pid == 0)
		usb4_test_child_exit(child_both(getppid(),
						usb4_mr_table_fd(self)));
	while (atomic_load(&ctl->child_fd) < 0 && !waitpid(pid, &status,
							    WNOHANG))
		usleep(100);
	if (atomic_load(&ctl->child_fd) >= 0)
		mem = usb4_test_map_proc_fd(pid, atomic_load(&ctl->child_fd),
					    &len);
	other = mem ? usb4_mr_table_view(mem, len) : NULL;
	CHECK(other != NULL);
	if (other) {
		served = post_to_other(self, other, pid,
				       atomic_load(&ctl->child_va));
		CHECK_MSG(served > 0, "parent: none of the child's %d "
			  "requests served while waiting", BOTH_OPS);
		usb4_mr_table_view_free(other);
	} else {
		atomic_fetch_add(&ctl->done, 2);
	}
	waitpid(pid, &status, 0);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child's checks (status %d)", status);
	CHECK_EQ(region[0], (uint64_t) BOTH_OPS / 2);
	if (mem)
		munmap(mem, len);
	usb4_mr_table_close(self);
	free(region);
}

int main(void)
{
	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED)
		return 1;
	alarm(60);
	test_malformed_requests();
	test_served_by_owner();
	test_rma_served_by_owner();
	test_atomic_against_everyone();
	test_both_post();
	munmap(ctl, sizeof(*ctl));
	return usb4_test_done("test_mr_board");
}
