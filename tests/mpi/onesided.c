/*
 * onesided.c - MPI one-sided communication: Put, Get, Accumulate,
 * Get_accumulate, Fetch_and_op and Compare_and_swap under every kind of
 * synchronization (fence, post/start/complete/wait, lock/unlock, lock_all
 * with flush).
 *
 * Windows are made with MPI_Win_create on malloc'd memory, so Open MPI's
 * osc rdma must move the data through its btl (fi_write, fi_read and
 * fi_*atomic over btl ofi); MPI_Win_allocate on one host could be plain
 * loads and stores.  Transfers run from one element to 4 MiB.  Ranks form
 * a ring: each rank targets its right neighbour and is the target of its
 * left one.  The atomic sections have every rank hammer a counter on rank
 * 0 with Fetch_and_op (no update lost, no value fetched twice) and ranks
 * 1..n-1 race for tickets there with Compare_and_swap.
 *
 * Every result is verified; the first mismatch aborts the job with the
 * section, size and offset.  Rank 0 prints "OK onesided" at the end.
 */
#include "mpitest.h"

enum {
	GUARD = 16,          /* bytes kept at each end of a transfer, checked untouched */
	SENTINEL = 0xa5,     /* the byte the guards and the untouched window hold */
	COUNTER_ITERS = 1000, /* Fetch_and_op increments per rank on rank 0's counter */
	INT_COUNTER_ITERS = 200, /* the same with 32-bit MPI_INT */
	CAS_ITERS = 100,     /* Compare_and_swap wins per rank */
	TAG_SEED = 0x05ed,   /* seeds only: one-sided traffic has no tags */
};

#define WIN_BYTES (MT_MAX_SIZE + 2 * GUARD)

/* Transfer sizes in bytes, multiples of 8 so they fit MPI_INT and MPI_LONG. */
static const size_t rma_sizes[] = {
	8, 64, 4096, 65536, 65544, 262144, 1u << 20, 4u << 20,
};
#define NRMA (sizeof(rma_sizes) / sizeof(rma_sizes[0]))

/* Element counts for the accumulate sections (the last one is 4 MiB of long). */
static const int acc_counts[] = { 1, 1000, 65536, 1 << 19 };
#define NACC (sizeof(acc_counts) / sizeof(acc_counts[0]))

/* One window over WIN_BYTES of malloc'd memory, and the ring around it. */
struct ctx {
	int rank, nranks, left, right;
	uint8_t *base;   /* the window memory, disp_unit 1 */
	uint8_t *local;  /* origin/result buffer of WIN_BYTES */
	MPI_Win win;
	MPI_Group left_group, right_group;
};

/* Errors return to the caller, so MT_MPI names the call that failed. */
static void win_create(void *base, MPI_Aint size, MPI_Win *win)
{
	MT_MPI(MPI_Win_create(base, size, 1, MPI_INFO_NULL, MPI_COMM_WORLD, win));
	MT_MPI(MPI_Win_set_errhandler(*win, MPI_ERRORS_RETURN));
}

/* The guards around [GUARD, GUARD + len) still hold SENTINEL. */
static void check_guards(const uint8_t *base, size_t len, const char *what)
{
	for (size_t i = 0; i < GUARD; i++) {
		MT_CHECK(base[i] == SENTINEL, "%s: size %zu wrote before the target range (byte %zu is 0x%02x)",
			 what, len, i, base[i]);
		MT_CHECK(base[GUARD + len + i] == SENTINEL,
			 "%s: size %zu wrote past the target range (byte %zu is 0x%02x)",
			 what, len, GUARD + len + i, base[GUARD + len + i]);
	}
}

/* Window element i of a long-typed region starting at byte GUARD. */
static long *win_longs(const struct ctx *c)
{
	return (long *)(void *)(c->base + GUARD);
}

/* --- Put and Get --------------------------------------------------------- */

/* Put into the right neighbour's window; the window is reset beforehand. */
static void put_fill(struct ctx *c, size_t len, int iter)
{
	memset(c->base, SENTINEL, WIN_BYTES);
	mt_fill(c->local, len, mt_seed(c->rank, c->right, TAG_SEED, len, iter));
}

static void put_issue(struct ctx *c, size_t len)
{
	MT_MPI(MPI_Put(c->local, (int)(len / sizeof(int)), MPI_INT, c->right, GUARD,
		       (int)(len / sizeof(int)), MPI_INT, c->win));
}

static void put_check(struct ctx *c, size_t len, int iter, const char *what)
{
	check_guards(c->base, len, what);
	mt_verify(c->base + GUARD, len, mt_seed(c->left, c->rank, TAG_SEED, len, iter), what, c->left);
}

/* Get from the right neighbour's window, which holds its own pattern. */
static void get_fill(struct ctx *c, size_t len, int iter)
{
	memset(c->base, SENTINEL, WIN_BYTES);
	mt_fill(c->base + GUARD, len, mt_seed(c->rank, c->rank, TAG_SEED, len, iter));
	memset(c->local, 0, len);
}

static void get_issue(struct ctx *c, size_t len)
{
	MT_MPI(MPI_Get(c->local, (int)(len / sizeof(long)), MPI_LONG, c->right, GUARD,
		       (int)(len / sizeof(long)), MPI_LONG, c->win));
}

static void get_check(struct ctx *c, size_t len, int iter, const char *what)
{
	mt_verify(c->local, len, mt_seed(c->right, c->right, TAG_SEED, len, iter), what, c->right);
}

static void fence_put_get(struct ctx *c)
{
	for (size_t s = 0; s < NRMA; s++) {
		size_t len = rma_sizes[s];

		put_fill(c, len, 1);
		MT_MPI(MPI_Win_fence(MPI_MODE_NOPRECEDE, c->win));
		put_issue(c, len);
		MT_MPI(MPI_Win_fence(0, c->win));
		put_check(c, len, 1, "fence Put");

		get_fill(c, len, 2);
		MT_MPI(MPI_Win_fence(0, c->win));
		get_issue(c, len);
		MT_MPI(MPI_Win_fence(MPI_MODE_NOSUCCEED, c->win));
		get_check(c, len, 2, "fence Get");
	}
}

/* Exposure to the left neighbour and access to the right one, one epoch. */
static void pscw_open(struct ctx *c)
{
	MT_MPI(MPI_Win_post(c->left_group, 0, c->win));
	MT_MPI(MPI_Win_start(c->right_group, 0, c->win));
}

static void pscw_close(struct ctx *c)
{
	MT_MPI(MPI_Win_complete(c->win));
	MT_MPI(MPI_Win_wait(c->win));
}

static void pscw_put_get(struct ctx *c)
{
	for (size_t s = 0; s < NRMA; s++) {
		size_t len = rma_sizes[s];

		put_fill(c, len, 3);
		pscw_open(c);
		put_issue(c, len);
		pscw_close(c);
		put_check(c, len, 3, "PSCW Put");

		get_fill(c, len, 4);
		pscw_open(c);
		get_issue(c, len);
		pscw_close(c);
		get_check(c, len, 4, "PSCW Get");
	}
}

/*
 * Passive target: the target reads and writes its own window only under a
 * lock on itself, and a barrier orders the phases.
 */
static void lock_put_get(struct ctx *c)
{
	for (size_t s = 0; s < NRMA; s++) {
		size_t len = rma_sizes[s];

		MT_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, c->rank, 0, c->win));
		put_fill(c, len, 5);
		MT_MPI(MPI_Win_unlock(c->rank, c->win));
		MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
		MT_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, c->right, 0, c->win));
		put_issue(c, len);
		MT_MPI(MPI_Win_unlock(c->right, c->win));
		MT_MPI(MPI_Barrier(MPI_COMM_WORLD));

		MT_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, c->rank, 0, c->win));
		put_check(c, len, 5, "lock Put");
		get_fill(c, len, 6);
		MT_MPI(MPI_Win_unlock(c->rank, c->win));
		MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
		MT_MPI(MPI_Win_lock(MPI_LOCK_SHARED, c->right, 0, c->win));
		get_issue(c, len);
		MT_MPI(MPI_Win_unlock(c->right, c->win));
		get_check(c, len, 6, "lock Get");
		MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	}
}

/*
 * lock_all: Put, flush, then Get the same range back from the target.  The
 * flush must have completed the Put at the target before the Get reads it.
 */
static void lock_all_flush(struct ctx *c)
{
	uint8_t *back = mt_alloc(MT_MAX_SIZE);

	for (size_t s = 0; s < NRMA; s++) {
		size_t len = rma_sizes[s];
		uint32_t seed = mt_seed(c->rank, c->right, TAG_SEED, len, 7);

		MT_MPI(MPI_Win_lock_all(0, c->win));
		mt_fill(c->local, len, seed);
		put_issue(c, len);
		MT_MPI(MPI_Win_flush(c->right, c->win));
		memset(back, 0, len);
		MT_MPI(MPI_Get(back, (int)len, MPI_BYTE, c->right, GUARD, (int)len, MPI_BYTE, c->win));
		MT_MPI(s % 2 ? MPI_Win_flush_all(c->win) : MPI_Win_flush_local(c->right, c->win));
		mt_verify(back, len, seed, "lock_all Put+flush+Get", c->right);
		MT_MPI(MPI_Win_unlock_all(c->win));
		MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	}
	free(back);
}

/* --- Accumulate ---------------------------------------------------------- */

static long sum_term(int rank, int i)
{
	return (long)(rank + 1) * (i % 1000 + 1) + ((long)i << 20);
}

static double max_term(int rank, int nranks, int i)
{
	return 0.5 * ((rank * 7919 + i) % (nranks * 13 + 1)) - 3.0;
}

/* Every rank adds into every rank's window: SUM on MPI_LONG. */
static void fence_acc_sum(struct ctx *c, int count)
{
	long *origin = (long *)(void *)c->local;

	for (int i = 0; i < count; i++)
		origin[i] = sum_term(c->rank, i);
	memset(c->base, 0, WIN_BYTES);
	MT_MPI(MPI_Win_fence(MPI_MODE_NOPRECEDE, c->win));
	for (int t = 0; t < c->nranks; t++)
		MT_MPI(MPI_Accumulate(origin, count, MPI_LONG, t, GUARD, count, MPI_LONG,
				      MPI_SUM, c->win));
	MT_MPI(MPI_Win_fence(MPI_MODE_NOSUCCEED, c->win));
	for (int i = 0; i < count; i++) {
		long want = 0;

		for (int r = 0; r < c->nranks; r++)
			want += sum_term(r, i);
		MT_CHECK(win_longs(c)[i] == want, "fence Accumulate SUM long count %d, element %d: got %ld want %ld",
			 count, i, win_longs(c)[i], want);
	}
}

/* Every rank takes the maximum into every rank's window: MAX on MPI_DOUBLE. */
static void fence_acc_max(struct ctx *c, int count)
{
	double *origin = (double *)(void *)c->local;
	double *win = (double *)(void *)(c->base + GUARD);

	for (int i = 0; i < count; i++) {
		origin[i] = max_term(c->rank, c->nranks, i);
		win[i] = -1e9;
	}
	MT_MPI(MPI_Win_fence(MPI_MODE_NOPRECEDE, c->win));
	for (int t = 0; t < c->nranks; t++)
		MT_MPI(MPI_Accumulate(origin, count, MPI_DOUBLE, t, GUARD, count, MPI_DOUBLE,
				      MPI_MAX, c->win));
	MT_MPI(MPI_Win_fence(MPI_MODE_NOSUCCEED, c->win));
	for (int i = 0; i < count; i++) {
		double want = -1e9;

		for (int r = 0; r < c->nranks; r++)
			want = max_term(r, c->nranks, i) > want ? max_term(r, c->nranks, i) : want;
		MT_CHECK(win[i] == want, "fence Accumulate MAX double count %d, element %d: got %g want %g",
			 count, i, win[i], want);
	}
}

/*
 * Accumulates from one origin to one target are ordered: SUM, REPLACE, SUM
 * on MPI_INT leaves replaced + added whatever the window held before.
 */
static void fence_acc_ordering(struct ctx *c, int count)
{
	int *ops = (int *)(void *)c->local;
	int *win = (int *)(void *)(c->base + GUARD);

	for (int i = 0; i < count; i++) {
		ops[i] = c->rank * 100000 + i;        /* the REPLACE value */
		ops[count + i] = 7;                    /* the SUM term */
		win[i] = -123;
	}
	MT_MPI(MPI_Win_fence(MPI_MODE_NOPRECEDE, c->win));
	MT_MPI(MPI_Accumulate(ops + count, count, MPI_INT, c->right, GUARD, count, MPI_INT, MPI_SUM, c->win));
	MT_MPI(MPI_Accumulate(ops, count, MPI_INT, c->right, GUARD, count, MPI_INT, MPI_REPLACE, c->win));
	MT_MPI(MPI_Accumulate(ops + count, count, MPI_INT, c->right, GUARD, count, MPI_INT, MPI_SUM, c->win));
	MT_MPI(MPI_Win_fence(MPI_MODE_NOSUCCEED, c->win));
	for (int i = 0; i < count; i++)
		MT_CHECK(win[i] == c->left * 100000 + i + 7,
			 "fence Accumulate SUM/REPLACE/SUM int count %d, element %d: got %d want %d",
			 count, i, win[i], c->left * 100000 + i + 7);
}

static void fence_accumulate(struct ctx *c)
{
	for (size_t s = 0; s < NACC; s++) {
		fence_acc_sum(c, acc_counts[s]);
		fence_acc_max(c, acc_counts[s]);
		fence_acc_ordering(c, acc_counts[s]); /* 2 * count ints fit c->local */
	}
}

/* Everyone adds into rank 0 under a shared lock: SUM on MPI_INT. */
static void lock_accumulate(struct ctx *c, int count)
{
	int *origin = (int *)(void *)c->local;
	int *win = (int *)(void *)(c->base + GUARD);

	MT_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, c->rank, 0, c->win));
	memset(c->base, 0, WIN_BYTES);
	MT_MPI(MPI_Win_unlock(c->rank, c->win));
	for (int i = 0; i < count; i++)
		origin[i] = (c->rank + 1) * (i % 977 + 1);
	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	MT_MPI(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, c->win));
	MT_MPI(MPI_Accumulate(origin, count, MPI_INT, 0, GUARD, count, MPI_INT, MPI_SUM, c->win));
	MT_MPI(MPI_Win_unlock(0, c->win));
	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	if (c->rank != 0)
		return;
	MT_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, c->win));
	for (int i = 0; i < count; i++) {
		int want = c->nranks * (c->nranks + 1) / 2 * (i % 977 + 1);

		MT_CHECK(win[i] == want, "lock Accumulate SUM int count %d, element %d: got %d want %d",
			 count, i, win[i], want);
	}
	MT_MPI(MPI_Win_unlock(0, c->win));
}

/* --- Get_accumulate under PSCW ------------------------------------------- */

static long ga_init(int target, int i)
{
	return (long)target * 1000003 + i;
}

/* Get_accumulate with op, then check the fetched and the new target values. */
static void pscw_get_acc(struct ctx *c, int count, MPI_Op op, const char *what)
{
	long *origin = (long *)(void *)c->local;
	long *result = origin + count;

	for (int i = 0; i < count; i++) {
		win_longs(c)[i] = ga_init(c->rank, i);
		origin[i] = sum_term(c->rank, i);
		result[i] = -1;
	}
	pscw_open(c);
	MT_MPI(MPI_Get_accumulate(origin, count, MPI_LONG, result, count, MPI_LONG,
				  c->right, GUARD, count, MPI_LONG, op, c->win));
	pscw_close(c);
	for (int i = 0; i < count; i++) {
		long now = ga_init(c->rank, i);

		if (op == MPI_SUM)
			now += sum_term(c->left, i);
		else if (op == MPI_REPLACE)
			now = sum_term(c->left, i);
		MT_CHECK(result[i] == ga_init(c->right, i), "PSCW Get_accumulate %s count %d, element %d: fetched %ld want %ld",
			 what, count, i, result[i], ga_init(c->right, i));
		MT_CHECK(win_longs(c)[i] == now, "PSCW Get_accumulate %s count %d, element %d: target holds %ld want %ld",
			 what, count, i, win_longs(c)[i], now);
	}
}

static void pscw_get_accumulate(struct ctx *c)
{
	/* origin and result share c->local: at most 2 MiB of long each. */
	static const int counts[] = { 1, 1000, 65536, 1 << 18 };

	for (size_t s = 0; s < sizeof(counts) / sizeof(counts[0]); s++) {
		pscw_get_acc(c, counts[s], MPI_SUM, "SUM");
		pscw_get_acc(c, counts[s], MPI_NO_OP, "NO_OP");
		pscw_get_acc(c, counts[s], MPI_REPLACE, "REPLACE");
	}
}

/* --- Atomics on one element: every rank against rank 0 -------------------- */

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/*
 * Rank 0 checks that the values every rank fetched are exactly
 * 0 .. want-1, each once; -1 marks an unused slot (a rank that sat out).
 */
static void check_all_distinct(struct ctx *c, long *mine, int iters, long want, const char *what)
{
	long n = (long)iters * c->nranks, first = 0;
	long *all = c->rank == 0 ? mt_alloc(sizeof(long) * n) : NULL;

	MT_MPI(MPI_Gather(mine, iters, MPI_LONG, all, iters, MPI_LONG, 0, MPI_COMM_WORLD));
	if (c->rank != 0)
		return;
	qsort(all, (size_t)n, sizeof(long), cmp_long);
	while (first < n && all[first] == -1)
		first++;
	MT_CHECK(n - first == want, "%s: %ld values fetched, want %ld", what, n - first, want);
	for (long i = first; i < n; i++)
		MT_CHECK(all[i] == i - first, "%s: the fetched values are not 0..%ld each once: sorted[%ld] = %ld%s",
			 what, want - 1, i - first, all[i],
			 i > first && all[i] == all[i - 1] ? " (seen twice: a lost update)" : "");
	free(all);
}

/* After a barrier, every rank reads rank 0's element with a NO_OP fetch. */
static void check_final(MPI_Win win, MPI_Aint disp, long want, const char *what)
{
	long got = 0;

	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	MT_MPI(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win));
	MT_MPI(MPI_Fetch_and_op(NULL, &got, MPI_LONG, 0, disp, MPI_NO_OP, win));
	MT_MPI(MPI_Win_unlock(0, win));
	MT_CHECK(got == want, "%s: rank 0's value is %ld after all ranks finished, want %ld", what, got, want);
	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
}

/* Concurrent increments of rank 0's counter: nothing lost, no value twice. */
static void counter_long(struct ctx *c, MPI_Win win)
{
	long *fetched = mt_alloc(sizeof(long) * COUNTER_ITERS);
	const long one = 1;

	MT_MPI(MPI_Win_lock_all(0, win));
	for (int k = 0; k < COUNTER_ITERS; k++) {
		MT_MPI(MPI_Fetch_and_op(&one, &fetched[k], MPI_LONG, 0, 0, MPI_SUM, win));
		MT_MPI(MPI_Win_flush(0, win));
	}
	MT_MPI(MPI_Win_unlock_all(win));
	check_final(win, 0, (long)COUNTER_ITERS * c->nranks, "Fetch_and_op SUM long counter");
	check_all_distinct(c, fetched, COUNTER_ITERS, (long)COUNTER_ITERS * c->nranks,
			   "Fetch_and_op SUM long counter");
	free(fetched);
}

/* The same with MPI_INT, at displacement 8 of the counter window. */
static void counter_int(struct ctx *c, MPI_Win win)
{
	long *fetched = mt_alloc(sizeof(long) * INT_COUNTER_ITERS);
	const int one = 1;

	MT_MPI(MPI_Win_lock_all(0, win));
	for (int k = 0; k < INT_COUNTER_ITERS; k++) {
		int old = -1;

		MT_MPI(MPI_Fetch_and_op(&one, &old, MPI_INT, 0, 8, MPI_SUM, win));
		MT_MPI(MPI_Win_flush(0, win));
		fetched[k] = old;
	}
	MT_MPI(MPI_Win_unlock_all(win));
	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	{
		int got = 0;

		MT_MPI(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win));
		MT_MPI(MPI_Fetch_and_op(NULL, &got, MPI_INT, 0, 8, MPI_NO_OP, win));
		MT_MPI(MPI_Win_unlock(0, win));
		MT_CHECK(got == INT_COUNTER_ITERS * c->nranks,
			 "Fetch_and_op SUM int counter: rank 0's value is %d, want %d",
			 got, INT_COUNTER_ITERS * c->nranks);
	}
	check_all_distinct(c, fetched, INT_COUNTER_ITERS, (long)INT_COUNTER_ITERS * c->nranks,
			   "Fetch_and_op SUM int counter");
	free(fetched);
}

/*
 * Fetch_and_op MAX on MPI_DOUBLE: each rank offers rank*10+k; the element
 * ends at the largest offer.  Not on an integer type: Open MPI 4.1.4's osc
 * rdma hands an integer MAX to btl ofi, whose to_fi_op() knows only ADD
 * and SWAP and aborts the job; a double goes through osc rdma's own
 * lock + get + put instead.
 */
static void fetch_max(struct ctx *c, MPI_Win win)
{
	double offer, old, got = 0;

	MT_MPI(MPI_Win_lock_all(0, win));
	for (int k = 0; k < 10; k++) {
		offer = c->rank * 10 + k;
		MT_MPI(MPI_Fetch_and_op(&offer, &old, MPI_DOUBLE, 0, 40, MPI_MAX, win));
		MT_MPI(MPI_Win_flush(0, win));
		MT_CHECK(old >= 0 && old < c->nranks * 10, "Fetch_and_op MAX double fetched %g, outside every offer", old);
	}
	MT_MPI(MPI_Win_unlock_all(win));
	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	MT_MPI(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win));
	MT_MPI(MPI_Fetch_and_op(NULL, &got, MPI_DOUBLE, 0, 40, MPI_NO_OP, win));
	MT_MPI(MPI_Win_unlock(0, win));
	MT_CHECK(got == c->nranks * 10 - 1, "Fetch_and_op MAX double: rank 0 holds %g, want %d", got, c->nranks * 10 - 1);
	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
}

/* Fetch_and_op REPLACE (swap) on MPI_LONG in rank order: each rank fetches what the previous one left. */
static void fetch_replace(struct ctx *c, MPI_Win win)
{
	long offer, old;

	for (int r = 0; r < c->nranks; r++) {
		if (r == c->rank) {
			offer = 5000 + r;
			MT_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win));
			MT_MPI(MPI_Fetch_and_op(&offer, &old, MPI_LONG, 0, 16, MPI_REPLACE, win));
			MT_MPI(MPI_Win_unlock(0, win));
			MT_CHECK(old == (r == 0 ? 0 : 5000 + r - 1), "Fetch_and_op REPLACE long fetched %ld, want %d",
				 old, r == 0 ? 0 : 5000 + r - 1);
		}
		MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	}
	check_final(win, 16, 5000L + c->nranks - 1, "Fetch_and_op REPLACE long");
}

/* Compare_and_swap that must fail, then one that must succeed, on MPI_INT. */
static void cas_int(struct ctx *c, MPI_Win win)
{
	int compare, origin, old = 0;

	if (c->rank == c->nranks - 1) {
		MT_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win));
		compare = 12345, origin = 99;  /* the int at 24 holds 0: no swap */
		MT_MPI(MPI_Compare_and_swap(&origin, &compare, &old, MPI_INT, 0, 24, win));
		MT_MPI(MPI_Win_flush(0, win));
		MT_CHECK(old == 0, "Compare_and_swap int (mismatch) fetched %d, want 0", old);
		compare = 0, origin = 77;
		MT_MPI(MPI_Compare_and_swap(&origin, &compare, &old, MPI_INT, 0, 24, win));
		MT_MPI(MPI_Win_unlock(0, win));
		MT_CHECK(old == 0, "Compare_and_swap int (match) fetched %d, want 0", old);
	}
	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	MT_MPI(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win));
	MT_MPI(MPI_Fetch_and_op(NULL, &old, MPI_INT, 0, 24, MPI_NO_OP, win));
	MT_MPI(MPI_Win_unlock(0, win));
	MT_CHECK(old == 77, "Compare_and_swap int: rank 0 holds %d, want 77", old);
	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
}

/* Claim one ticket: swap v -> v+1 on rank 0, retrying from what was seen. */
static long cas_claim(MPI_Win win, long *cur)
{
	for (;;) {
		long next = *cur + 1, old = -1;

		MT_MPI(MPI_Compare_and_swap(&next, cur, &old, MPI_LONG, 0, 32, win));
		MT_MPI(MPI_Win_flush(0, win));
		MT_CHECK(old >= *cur, "Compare_and_swap long went backwards: fetched %ld after %ld", old, *cur);
		if (old == *cur) {
			*cur = next;
			return old;
		}
		*cur = old;
	}
}

/*
 * Contended Compare_and_swap on MPI_LONG: ranks 1..n-1 each claim
 * CAS_ITERS tickets on rank 0; every ticket is claimed exactly once.  Rank
 * 0 sits out: in Open MPI 4.1.4 a Compare_and_swap to one's own window
 * crashes in osc rdma (NULL btl endpoint for self, over vader and btl ofi).
 */
static void cas_tickets(struct ctx *c, MPI_Win win)
{
	long claimers = c->nranks - 1;
	long *won = mt_alloc(sizeof(long) * CAS_ITERS);
	long cur = 0;

	MT_MPI(MPI_Win_lock_all(0, win));
	for (int k = 0; k < CAS_ITERS; k++)
		won[k] = c->rank == 0 ? -1 : cas_claim(win, &cur);
	MT_MPI(MPI_Win_unlock_all(win));
	check_final(win, 32, CAS_ITERS * claimers, "Compare_and_swap long tickets");
	check_all_distinct(c, won, CAS_ITERS, CAS_ITERS * claimers, "Compare_and_swap long tickets");
	free(won);
}

static void atomics(struct ctx *c)
{
	long *cell = mt_alloc(64);
	MPI_Win win;

	memset(cell, 0, 64);
	win_create(cell, 64, &win);
	counter_long(c, win);
	counter_int(c, win);
	fetch_max(c, win);
	fetch_replace(c, win);
	cas_int(c, win);
	cas_tickets(c, win);
	MT_MPI(MPI_Win_free(&win));
	free(cell);
}

/* --- main ---------------------------------------------------------------- */

static void ctx_init(struct ctx *c)
{
	MPI_Group world;

	c->rank = mt_rank();
	c->nranks = mt_size();
	c->left = (c->rank + c->nranks - 1) % c->nranks;
	c->right = (c->rank + 1) % c->nranks;
	c->base = mt_alloc(WIN_BYTES);
	c->local = mt_alloc(WIN_BYTES);
	memset(c->base, SENTINEL, WIN_BYTES);
	win_create(c->base, WIN_BYTES, &c->win);
	MT_MPI(MPI_Comm_group(MPI_COMM_WORLD, &world));
	MT_MPI(MPI_Group_incl(world, 1, &c->left, &c->left_group));
	MT_MPI(MPI_Group_incl(world, 1, &c->right, &c->right_group));
	MT_MPI(MPI_Group_free(&world));
}

static void ctx_fini(struct ctx *c)
{
	MT_MPI(MPI_Group_free(&c->left_group));
	MT_MPI(MPI_Group_free(&c->right_group));
	MT_MPI(MPI_Win_free(&c->win));
	free(c->base);
	free(c->local);
}

/* Each section ends with every rank done, so a failure names its section. */
static void section(const char *name, void (*run)(struct ctx *), struct ctx *c)
{
	double t0 = MPI_Wtime();

	run(c);
	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	if (c->rank == 0) {
		printf("onesided %-22s ok  %7.2f s\n", name, MPI_Wtime() - t0);
		fflush(stdout);
	}
}

static void lock_accumulate_all(struct ctx *c)
{
	for (size_t s = 0; s < NACC; s++)
		lock_accumulate(c, acc_counts[s]);
}

int main(int argc, char **argv)
{
	struct ctx c;

	MPI_Init(&argc, &argv);
	MT_CHECK(mt_size() >= 2, "needs at least 2 ranks");
	ctx_init(&c);
	section("fence Put/Get", fence_put_get, &c);
	section("fence Accumulate", fence_accumulate, &c);
	section("PSCW Put/Get", pscw_put_get, &c);
	section("PSCW Get_accumulate", pscw_get_accumulate, &c);
	section("lock Put/Get", lock_put_get, &c);
	section("lock Accumulate", lock_accumulate_all, &c);
	section("lock_all flush", lock_all_flush, &c);
	section("atomics", atomics, &c);
	ctx_fini(&c);
	mt_ok("onesided");
	MPI_Finalize();
	return 0;
}
