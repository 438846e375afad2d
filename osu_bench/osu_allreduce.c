/*
 * osu_allreduce - MPI_Allreduce latency (OSU method).
 *
 * MPI_SUM over size / 4 MPI_FLOAT elements, so sizes start at 4 bytes.
 * Every call is timed alone and followed by a barrier; the row gives the
 * average over ranks of their mean latency (-f adds min, max, iterations).
 * Validation: rank r contributes (i % 7 + 1) * (r + 1) at element i, small
 * integers whose float sums are exact.
 */
#include "osu_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ELEM_SIZE sizeof(float)

static const struct osu_spec spec = {
	.name = "osu_allreduce",
	.title = "MPI Allreduce Latency Test",
	.kind = OSU_KIND_COLL,
	.procs = OSU_PROCS_ANY,
	.min_size = ELEM_SIZE,
	.max_size = 1 << 20,
	.iters = 1000, .iters_large = 100,
	.skip = 100, .skip_large = 10,
};

struct allreduce_run {
	float *send, *recv;
	int count;
};

static void allreduce_once(void *ctx)
{
	struct allreduce_run *r = ctx;

	OSU_MPI(MPI_Allreduce(r->send, r->recv, r->count, MPI_FLOAT, MPI_SUM,
			      MPI_COMM_WORLD));
}

static int check_sum(const struct osu_opts *o, const float *recv, int count)
{
	float ranks = (float)o->nprocs * (float)(o->nprocs + 1) / 2.0f;

	for (int i = 0; i < count; i++) {
		float want = (float)(i % 7 + 1) * ranks;

		if (recv[i] != want) {
			fprintf(stderr, "rank %d: validation error in "
				"allreduce of %d floats: element %d is %g, "
				"expected %g\n", o->rank, count, i,
				(double)recv[i], (double)want);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	struct allreduce_run r;
	int errors = 0;

	if (start != OSU_RUN)
		return osu_exit_code(start);
	if (o.min_size < ELEM_SIZE)
		o.min_size = ELEM_SIZE;
	if (o.max_size < o.min_size)
		o.max_size = o.min_size;
	r.send = osu_alloc(o.max_size);
	r.recv = osu_alloc(o.max_size);
	osu_print_header(&o);
	for (size_t size = o.min_size; size <= o.max_size;
	     size = osu_next_size(size)) {
		int bad = 0;
		double t;

		r.count = (int)(size / ELEM_SIZE);
		for (int i = 0; i < r.count; i++)
			r.send[i] = (float)(i % 7 + 1) * (float)(o.rank + 1);
		memset(r.recv, 0, size);
		t = osu_coll_time(&o, size, allreduce_once, &r);
		if (o.validate) {
			if (getenv("OSU_BENCH_CORRUPT") && r.count)
				r.recv[0] += 1.0f;
			bad = check_sum(&o, r.recv, r.count);
		}
		bad = osu_sum_errors(bad, MPI_COMM_WORLD);
		errors += bad;
		osu_coll_report(&o, size, t, bad);
	}
	osu_free(r.send);
	osu_free(r.recv);
	return osu_finish(&o, o.rank == 0 ? errors : 0);
}
