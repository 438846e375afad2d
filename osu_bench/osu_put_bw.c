/*
 * osu_put_bw - one-sided MPI_Put bandwidth (OSU method).
 *
 * Per iteration rank 0 issues a window (-W, default 64) of MPI_Put of the
 * same size to rank 1 and completes them with the synchronization chosen by
 * -s (lock, flush (default), fence, pscw). MB/s with MB = 1e6 bytes. The
 * window is MPI_Win_create on a malloc'd buffer unless -w allocate.
 */
#include "osu_common.h"

#include <string.h>

static const struct osu_spec spec = {
	.name = "osu_put_bw",
	.title = "MPI_Put Bandwidth Test",
	.kind = OSU_KIND_RMA_BW,
	.procs = OSU_PROCS_TWO,
	.min_size = 1,
	.max_size = 1 << 22,
	.iters = 100, .iters_large = 20,
	.skip = 10, .skip_large = 2,
	.sync_allowed = OSU_SYNC_ALL,
	.sync_default = OSU_SYNC_FLUSH,
};

struct rma_run {
	char *local;   /* origin buffer */
	void *win_mem; /* this rank's window memory */
	size_t size;
	unsigned seed;
	MPI_Win win;
	size_t bad;
};

static void put_one(void *ctx, int target)
{
	struct rma_run *r = ctx;

	OSU_MPI(MPI_Put(r->local, (int)r->size, MPI_CHAR, target, 0,
			(int)r->size, MPI_CHAR, r->win));
}

static void clear_window(void *ctx)
{
	struct rma_run *r = ctx;

	memset(r->win_mem, 0, r->size);
}

static void check_window(void *ctx)
{
	struct rma_run *r = ctx;

	r->bad = osu_check(r->win_mem, r->size, r->seed, "target window");
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	struct rma_run r = {0};
	int errors = 0;

	if (start != OSU_RUN)
		return osu_exit_code(start);
	r.local = osu_alloc(o.max_size);
	osu_win_open(&o, o.max_size, MPI_COMM_WORLD, &r.win_mem, &r.win);
	osu_print_header(&o);
	for (size_t size = o.min_size; size <= o.max_size;
	     size = osu_next_size(size)) {
		int bad = 0;
		double t, bw;

		r.size = size;
		r.seed = (unsigned)size;
		osu_fill(r.local, size, r.seed);
		osu_win_local(r.win, o.rank, clear_window, &r);
		t = osu_rma_bandwidth(&o, r.win, size, put_one, &r);
		bw = (double)size * o.window * osu_iters(&o, size) / t / 1e6;
		if (o.validate && o.rank == 1) {
			osu_win_local(r.win, o.rank, check_window, &r);
			bad = r.bad != 0;
		}
		bad = osu_sum_errors(bad, MPI_COMM_WORLD);
		errors += bad;
		osu_print_value(&o, size, bw, bad);
	}
	osu_win_close(&o, r.win_mem, &r.win);
	osu_free(r.local);
	return osu_finish(&o, o.rank == 0 ? errors : 0);
}
