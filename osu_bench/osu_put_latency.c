/*
 * osu_put_latency - one-sided MPI_Put latency (OSU method).
 *
 * Rank 0 issues one MPI_Put of each size to rank 1 and completes it with the
 * synchronization chosen by -s (lock, flush (default), fence, pscw; with
 * fence and pscw rank 1 answers in turn and the time is halved). The window
 * is MPI_Win_create on a malloc'd buffer unless -w allocate.
 */
#include "osu_common.h"

#include <string.h>

static const struct osu_spec spec = {
	.name = "osu_put_latency",
	.title = "MPI_Put Latency Test",
	.kind = OSU_KIND_RMA_LAT,
	.procs = OSU_PROCS_TWO,
	.min_size = 0,
	.max_size = 1 << 22,
	.iters = 10000, .iters_large = 1000,
	.skip = 1000, .skip_large = 100,
	.sync_allowed = OSU_SYNC_ALL,
	.sync_default = OSU_SYNC_FLUSH,
};

struct put_run {
	char *local;   /* origin buffer */
	void *win_mem; /* this rank's window memory */
	size_t size;
	unsigned seed; /* pattern expected in this rank's window */
	MPI_Win win;
	size_t bad;
};

static void put_one(void *ctx, int target)
{
	struct put_run *r = ctx;

	OSU_MPI(MPI_Put(r->local, (int)r->size, MPI_CHAR, target, 0,
			(int)r->size, MPI_CHAR, r->win));
}

static void clear_window(void *ctx)
{
	struct put_run *r = ctx;

	memset(r->win_mem, 0, r->size);
}

static void check_window(void *ctx)
{
	struct put_run *r = ctx;

	r->bad = osu_check(r->win_mem, r->size, r->seed, "target window");
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	struct put_run r = {0};
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
		r.seed = (unsigned)(size + (size_t)(1 - o.rank));
		osu_fill(r.local, size, (unsigned)(size + (size_t)o.rank));
		osu_win_local(r.win, o.rank, clear_window, &r);
		lat = osu_rma_latency(&o, r.win, size, put_one, &r);
		if (o.validate && osu_rma_lat_target(&o)) {
			osu_win_local(r.win, o.rank, check_window, &r);
			bad = r.bad != 0;
		}
		bad = osu_sum_errors(bad, MPI_COMM_WORLD);
		errors += bad;
		osu_print_value(&o, size, lat, bad);
	}
	osu_win_close(&o, r.win_mem, &r.win);
	osu_free(r.local);
	return osu_finish(&o, o.rank == 0 ? errors : 0);
}
