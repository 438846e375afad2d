/*
 * osu_bcast - MPI_Bcast latency (OSU method), root 0, MPI_CHAR.
 *
 * Every call is timed alone and followed by a barrier; the row gives the
 * average over ranks of their mean latency (-f adds min, max, iterations).
 */
#include "osu_common.h"

#include <string.h>

static const struct osu_spec spec = {
	.name = "osu_bcast",
	.title = "MPI Broadcast Latency Test",
	.kind = OSU_KIND_COLL,
	.procs = OSU_PROCS_ANY,
	.min_size = 1,
	.max_size = 1 << 20,
	.iters = 1000, .iters_large = 100,
	.skip = 100, .skip_large = 10,
};

struct bcast_run {
	char *buf;
	size_t size;
};

static void bcast_once(void *ctx)
{
	struct bcast_run *r = ctx;

	OSU_MPI(MPI_Bcast(r->buf, (int)r->size, MPI_CHAR, 0, MPI_COMM_WORLD));
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	struct bcast_run r;
	int errors = 0;

	if (start != OSU_RUN)
		return osu_exit_code(start);
	r.buf = osu_alloc(o.max_size);
	osu_print_header(&o);
	for (size_t size = o.min_size; size <= o.max_size;
	     size = osu_next_size(size)) {
		int bad = 0;
		double t;

		r.size = size;
		if (o.rank == 0)
			osu_fill(r.buf, size, (unsigned)size);
		else
			memset(r.buf, 0, size);
		t = osu_coll_time(&o, size, bcast_once, &r);
		if (o.validate && o.rank != 0)
			bad = osu_check(r.buf, size, (unsigned)size,
					"broadcast message") != 0;
		bad = osu_sum_errors(bad, MPI_COMM_WORLD);
		errors += bad;
		osu_coll_report(&o, size, t, bad);
	}
	osu_free(r.buf);
	return osu_finish(&o, o.rank == 0 ? errors : 0);
}
