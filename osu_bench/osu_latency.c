/*
 * osu_latency - point-to-point latency by ping-pong (OSU method).
 *
 * Rank 0 sends a message and waits for the same-sized reply from rank 1;
 * the latency is half the round trip, averaged over the timed iterations
 * that follow the warm-up (-x).
 */
#include "osu_common.h"

#include <string.h>

#define TAG 1

static const struct osu_spec spec = {
	.name = "osu_latency",
	.title = "MPI Latency Test",
	.kind = OSU_KIND_LATENCY,
	.procs = OSU_PROCS_TWO,
	.min_size = 0,
	.max_size = 1 << 22,
	.iters = 10000, .iters_large = 1000,
	.skip = 1000, .skip_large = 100,
};

/* Average one-way latency in microseconds for one message size. */
static double ping_pong(const struct osu_opts *o, char *sbuf, char *rbuf,
			size_t size)
{
	int peer = 1 - o->rank;
	int iters = osu_iters(o, size), skip = osu_skip(o, size);
	double t0 = 0.0;

	OSU_MPI(MPI_Barrier(MPI_COMM_WORLD));
	for (int i = 0; i < iters + skip; i++) {
		if (i == skip)
			t0 = MPI_Wtime();
		if (o->rank == 0) {
			OSU_MPI(MPI_Send(sbuf, (int)size, MPI_CHAR, peer, TAG,
					 MPI_COMM_WORLD));
			OSU_MPI(MPI_Recv(rbuf, (int)size, MPI_CHAR, peer, TAG,
					 MPI_COMM_WORLD, MPI_STATUS_IGNORE));
		} else {
			OSU_MPI(MPI_Recv(rbuf, (int)size, MPI_CHAR, peer, TAG,
					 MPI_COMM_WORLD, MPI_STATUS_IGNORE));
			OSU_MPI(MPI_Send(sbuf, (int)size, MPI_CHAR, peer, TAG,
					 MPI_COMM_WORLD));
		}
	}
	return (MPI_Wtime() - t0) * 1e6 / (2.0 * iters);
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	char *sbuf, *rbuf;
	int errors = 0;

	if (start != OSU_RUN)
		return osu_exit_code(start);
	sbuf = osu_alloc(o.max_size);
	rbuf = osu_alloc(o.max_size);
	osu_print_header(&o);
	for (size_t size = o.min_size; size <= o.max_size;
	     size = osu_next_size(size)) {
		int bad = 0;
		double lat;

		/* each rank sends its own pattern; the last reply is checked */
		osu_fill(sbuf, size, (unsigned)(size + (size_t)o.rank));
		memset(rbuf, 0, size);
		lat = ping_pong(&o, sbuf, rbuf, size);
		if (o.validate)
			bad = osu_check(rbuf, size,
					(unsigned)(size + (size_t)(1 - o.rank)),
					"received message") != 0;
		bad = osu_sum_errors(bad, MPI_COMM_WORLD);
		errors += bad;
		osu_print_value(&o, size, lat, bad);
	}
	osu_free(sbuf);
	osu_free(rbuf);
	return osu_finish(&o, o.rank == 0 ? errors : 0);
}
