/*
 * osu_mbw_mr - multiple-pair bandwidth and message rate (OSU method).
 *
 * With N ranks (N even), rank i < N/2 sends to rank i + N/2: per iteration a
 * window (-W, default 64) of MPI_Isend, answered by a 4-byte reply once the
 * receiver has the whole window. The aggregate MB/s and messages/s are the
 * sums of every sender's rate. Ranks are paired in block order, so with
 * several hosts place the first half on one host and the second on another.
 */
#include "osu_common.h"

#include <string.h>

#define TAG 100
#define TAG_REPLY 101

static const struct osu_spec spec = {
	.name = "osu_mbw_mr",
	.title = "MPI Multiple Bandwidth / Message Rate Test",
	.kind = OSU_KIND_MBW_MR,
	.procs = OSU_PROCS_EVEN,
	.min_size = 1,
	.max_size = 1 << 22,
	.iters = 100, .iters_large = 20,
	.skip = 10, .skip_large = 2,
};

/* Seconds spent by this rank in the timed iterations. */
static double pair_stream(const struct osu_opts *o, char *sbuf, char *rbuf,
			  size_t size, MPI_Request *reqs)
{
	int iters = osu_iters(o, size), skip = osu_skip(o, size);
	int half = o->nprocs / 2, reply = 0;
	int sender = o->rank < half;
	int peer = sender ? o->rank + half : o->rank - half;
	double t0 = 0.0;

	OSU_MPI(MPI_Barrier(MPI_COMM_WORLD));
	for (int i = 0; i < iters + skip; i++) {
		if (i == skip)
			t0 = MPI_Wtime();
		for (int w = 0; w < o->window; w++) {
			if (sender)
				OSU_MPI(MPI_Isend(sbuf, (int)size, MPI_CHAR,
						  peer, TAG, MPI_COMM_WORLD,
						  &reqs[w]));
			else
				OSU_MPI(MPI_Irecv(rbuf, (int)size, MPI_CHAR,
						  peer, TAG, MPI_COMM_WORLD,
						  &reqs[w]));
		}
		OSU_MPI(MPI_Waitall(o->window, reqs, MPI_STATUSES_IGNORE));
		if (sender)
			OSU_MPI(MPI_Recv(&reply, 1, MPI_INT, peer, TAG_REPLY,
					 MPI_COMM_WORLD, MPI_STATUS_IGNORE));
		else
			OSU_MPI(MPI_Send(&reply, 1, MPI_INT, peer, TAG_REPLY,
					 MPI_COMM_WORLD));
	}
	return MPI_Wtime() - t0;
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	MPI_Request reqs[OSU_WINDOW_MAX];
	char *sbuf, *rbuf;
	int errors = 0;

	if (start != OSU_RUN)
		return osu_exit_code(start);
	sbuf = osu_alloc(o.max_size);
	rbuf = osu_alloc(o.max_size);
	osu_print_header(&o);
	for (size_t size = o.min_size; size <= o.max_size;
	     size = osu_next_size(size)) {
		int sender = o.rank < o.nprocs / 2, bad = 0;
		unsigned seed = (unsigned)(size * 7 +
				(size_t)(sender ? o.rank : o.rank - o.nprocs / 2));
		double t, msgs, rate[2] = {0.0, 0.0}, total[2];

		if (sender)
			osu_fill(sbuf, size, seed);
		memset(rbuf, 0, size);
		t = pair_stream(&o, sbuf, rbuf, size, reqs);
		if (sender) {
			msgs = (double)osu_iters(&o, size) * o.window;
			rate[0] = (double)size * msgs / t / 1e6;
			rate[1] = msgs / t;
		} else if (o.validate) {
			bad = osu_check(rbuf, size, seed,
					"received message") != 0;
		}
		OSU_MPI(MPI_Reduce(rate, total, 2, MPI_DOUBLE, MPI_SUM, 0,
				   MPI_COMM_WORLD));
		bad = osu_sum_errors(bad, MPI_COMM_WORLD);
		errors += bad;
		osu_print_mbw(&o, size, total[0], total[1], bad);
	}
	osu_free(sbuf);
	osu_free(rbuf);
	return osu_finish(&o, o.rank == 0 ? errors : 0);
}
