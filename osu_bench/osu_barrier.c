/*
 * osu_barrier - MPI_Barrier latency (OSU method).
 *
 * Every barrier is timed alone and followed by an untimed one; the row gives
 * the average over ranks of their mean latency (-f adds min, max,
 * iterations). There is no message size and no data to validate.
 */
#include "osu_common.h"

static const struct osu_spec spec = {
	.name = "osu_barrier",
	.title = "MPI Barrier Latency Test",
	.kind = OSU_KIND_BARRIER,
	.procs = OSU_PROCS_ANY,
	.min_size = 0,
	.max_size = 0,
	.iters = 1000, .iters_large = 1000,
	.skip = 100, .skip_large = 100,
};

static void barrier_once(void *ctx)
{
	(void)ctx;
	OSU_MPI(MPI_Barrier(MPI_COMM_WORLD));
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	double t;

	if (start != OSU_RUN)
		return osu_exit_code(start);
	osu_print_header(&o);
	t = osu_coll_time(&o, 0, barrier_once, NULL);
	osu_coll_report(&o, 0, t, 0);
	return osu_finish(&o, 0);
}
