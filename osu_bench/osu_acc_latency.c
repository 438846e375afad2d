/*
 * osu_acc_latency - one-sided MPI_Accumulate latency (OSU method).
 *
 * Rank 0 accumulates (MPI_SUM on MPI_UINT32_T, size / 4 elements) into
 * rank 1's window and completes it with the synchronization chosen by -s
 * (lock, flush (default), fence, pscw; with fence and pscw rank 1 answers in
 * turn and the time is halved). Sizes start at 4 bytes, one element.
 *
 * Why 32-bit elements and not bytes: Open MPI 4.1.4 (Debian 12) computes
 * MPI_SUM on 8-bit types of 16 elements or more with saturating vector adds
 * in its op/avx component, so a byte-wise accumulate gives wrong data under
 * -c there (its results stick at 0xff); 32-bit sums wrap as MPI says. They
 * are also the width that osc rdma hands to the network as fi_atomic.
 *
 * Validation: the target window starts at zero, so after n operations each
 * element holds n times the origin's element, modulo 2^32.
 */
#include "osu_common.h"

#include <stdint.h>
#include <string.h>

/* Bytes of one accumulated element. */
#define ELEM_SIZE sizeof(uint32_t)

static const struct osu_spec spec = {
	.name = "osu_acc_latency",
	.title = "MPI_Accumulate latency Test",
	.kind = OSU_KIND_RMA_LAT,
	.procs = OSU_PROCS_TWO,
	.min_size = ELEM_SIZE,
	.max_size = 1 << 22,
	.iters = 10000, .iters_large = 1000,
	.skip = 1000, .skip_large = 100,
	.sync_allowed = OSU_SYNC_ALL,
	.sync_default = OSU_SYNC_FLUSH,
};

struct acc_run {
	uint8_t *local;    /* origin operand */
	uint8_t *expected; /* what this rank's window should hold */
	void *win_mem;
	size_t size;
	MPI_Win win;
	size_t bad;
};

static void acc_one(void *ctx, int target)
{
	struct acc_run *r = ctx;
	int count = (int)(r->size / ELEM_SIZE);

	OSU_MPI(MPI_Accumulate(r->local, count, MPI_UINT32_T, target, 0, count,
			       MPI_UINT32_T, MPI_SUM, r->win));
}

static void clear_window(void *ctx)
{
	struct acc_run *r = ctx;

	memset(r->win_mem, 0, r->size);
}

static void check_window(void *ctx)
{
	struct acc_run *r = ctx;

	r->bad = osu_compare(r->win_mem, r->expected, r->size,
			     "target window");
}

/* The window of a target after `ops` accumulates of the peer's pattern. */
static void expect(struct acc_run *r, unsigned peer_seed, int ops)
{
	uint32_t v;

	osu_fill(r->expected, r->size, peer_seed);
	for (size_t i = 0; i + ELEM_SIZE <= r->size; i += ELEM_SIZE) {
		memcpy(&v, r->expected + i, sizeof(v));
		v *= (uint32_t)ops;
		memcpy(r->expected + i, &v, sizeof(v));
	}
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	struct acc_run r = {0};
	int errors = 0;

	if (start != OSU_RUN)
		return osu_exit_code(start);
	if (o.min_size < ELEM_SIZE)
		o.min_size = ELEM_SIZE;
	if (o.max_size < o.min_size)
		o.max_size = o.min_size;
	r.local = osu_alloc(o.max_size);
	r.expected = osu_alloc(o.max_size);
	osu_win_open(&o, o.max_size, MPI_COMM_WORLD, &r.win_mem, &r.win);
	osu_print_header(&o);
	for (size_t size = o.min_size; size <= o.max_size;
	     size = osu_next_size(size)) {
		int bad = 0;
		double lat;

		r.size = size;
		osu_fill(r.local, size, (unsigned)(size + (size_t)o.rank));
		osu_win_local(r.win, o.rank, clear_window, &r);
		lat = osu_rma_latency(&o, r.win, size, acc_one, &r);
		if (o.validate && osu_rma_lat_target(&o)) {
			expect(&r, (unsigned)(size + (size_t)(1 - o.rank)),
			       osu_iters(&o, size) + osu_skip(&o, size));
			osu_win_local(r.win, o.rank, check_window, &r);
			bad = r.bad != 0;
		}
		bad = osu_sum_errors(bad, MPI_COMM_WORLD);
		errors += bad;
		osu_print_value(&o, size, lat, bad);
	}
	osu_win_close(&o, r.win_mem, &r.win);
	osu_free(r.expected);
	osu_free(r.local);
	return osu_finish(&o, o.rank == 0 ? errors : 0);
}
