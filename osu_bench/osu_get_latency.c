/*
 * osu_get_latency - one-sided MPI_Get latency (OSU method).
 *
 * Rank 0 issues one MPI_Get of each size to rank 1 and completes it with the
 * synchronization chosen by -s (lock, flush (default), fence, pscw; with
 * fence and pscw rank 1 answers in turn and the time is halved). The window
 * is MPI_Win_create on a malloc'd buffer unless -w allocate.
 */
#include "osu_common.h"

#include <string.h>

static const struct osu_spec spec = {
	.name = "osu_get_latency",
	.title = "MPI_Get latency Test",
	.kind = OSU_KIND_RMA_LAT,
	.procs = OSU_PROCS_TWO,
	.min_size = 0,
	.max_size = 1 << 22,
	.iters = 10000, .iters_large = 1000,
	.skip = 1000, .skip_large = 100,
	.sync_allowed = OSU_SYNC_ALL,
	.sync_default = OSU_SYNC_FLUSH,
};

struct get_run {
	char *local;   /* origin buffer the data lands in */
	void *win_mem; /* this rank's window memory, read by the peer */
	size_t size;
	unsigned seed; /* pattern of this rank's window */
	MPI_Win win;
};

static void get_one(void *ctx, int target)
{
	struct get_run *r = ctx;

	OSU_MPI(MPI_Get(r->local, (int)r->size, MPI_CHAR, target, 0,
			(int)r->size, MPI_CHAR, r->win));
}

static void fill_window(void *ctx)
{
	struct get_run *r = ctx;

	osu_fill(r->win_mem, r->size, r->seed);
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	struct get_run r = {0};
	int errors = 0;

	if (start != OSU_RUN)
		return osu_exit_code(start);
	r.local = osu_alloc(o.max_size);
	osu_win_open(&o, o.max_size, MPI_COMM_WORLD, &r.win_mem, &r.win);
	osu_print_header(&o);
	for (size_t size = o.min_size; size <= o.max_size;
	     size = osu_next_size(size)) {
		int bad = 0;
		double lat;

		r.size = size;
		r.seed = (unsigned)(size + (size_t)o.rank);
		osu_win_local(r.win, o.rank, fill_window, &r);
		memset(r.local, 0, size);
		lat = osu_rma_latency(&o, r.win, size, get_one, &r);
		if (o.validate && osu_rma_lat_origin(&o))
			bad = osu_check(r.local, size,
					(unsigned)(size + (size_t)(1 - o.rank)),
					"fetched data") != 0;
		bad = osu_sum_errors(bad, MPI_COMM_WORLD);
		errors += bad;
		osu_print_value(&o, size, lat, bad);
	}
	osu_win_close(&o, r.win_mem, &r.win);
	osu_free(r.local);
	return osu_finish(&o, o.rank == 0 ? errors : 0);
}
