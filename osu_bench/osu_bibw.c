/*
 * osu_bibw - point-to-point bidirectional bandwidth (OSU method).
 *
 * Per iteration both ranks post a window (-W, default 64) of MPI_Irecv, then
 * a window of MPI_Isend to each other, and wait for all of them. The
 * bandwidth counts the bytes of both directions. MB/s with MB = 1e6 bytes.
 */
#include "osu_common.h"

#include <string.h>

#define TAG 100

static const struct osu_spec spec = {
	.name = "osu_bibw",
	.title = "MPI Bi-Directional Bandwidth Test",
	.kind = OSU_KIND_BW,
	.procs = OSU_PROCS_TWO,
	.min_size = 1,
	.max_size = 1 << 22,
	.iters = 100, .iters_large = 20,
	.skip = 10, .skip_large = 2,
};

static double exchange(const struct osu_opts *o, char *sbuf, char *rbuf,
		       size_t size, MPI_Request *reqs)
{
	int iters = osu_iters(o, size), skip = osu_skip(o, size);
	int peer = 1 - o->rank, win = o->window;
	double t0 = 0.0, t;

	OSU_MPI(MPI_Barrier(MPI_COMM_WORLD));
	for (int i = 0; i < iters + skip; i++) {
		if (i == skip)
			t0 = MPI_Wtime();
		for (int w = 0; w < win; w++)
			OSU_MPI(MPI_Irecv(rbuf, (int)size, MPI_CHAR, peer, TAG,
					  MPI_COMM_WORLD, &reqs[w]));
		for (int w = 0; w < win; w++)
			OSU_MPI(MPI_Isend(sbuf, (int)size, MPI_CHAR, peer, TAG,
					  MPI_COMM_WORLD, &reqs[win + w]));
		OSU_MPI(MPI_Waitall(2 * win, reqs, MPI_STATUSES_IGNORE));
	}
	t = MPI_Wtime() - t0;
	return 2.0 * (double)size * win * iters / t / 1e6;
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	MPI_Request reqs[2 * OSU_WINDOW_MAX];
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
		double bw;

		osu_fill(sbuf, size, (unsigned)(size + (size_t)o.rank));
		memset(rbuf, 0, size);
		bw = exchange(&o, sbuf, rbuf, size, reqs);
		if (o.validate)
			bad = osu_check(rbuf, size,
					(unsigned)(size + (size_t)(1 - o.rank)),
					"received message") != 0;
		bad = osu_sum_errors(bad, MPI_COMM_WORLD);
		errors += bad;
		osu_print_value(&o, size, bw, bad);
	}
	osu_free(sbuf);
	osu_free(rbuf);
	return osu_finish(&o, o.rank == 0 ? errors : 0);
}
