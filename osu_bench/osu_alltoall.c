/*
 * osu_alltoall - MPI_Alltoall latency (OSU method), MPI_CHAR; the size is
 * the block each rank sends to each other rank.
 *
 * Every call is timed alone and followed by a barrier; the row gives the
 * average over ranks of their mean latency (-f adds min, max, iterations).
 * Validation: the block from rank s to rank d carries a pattern of (s, d).
 */
#include "osu_common.h"

#include <string.h>

static const struct osu_spec spec = {
	.name = "osu_alltoall",
	.title = "MPI All-to-All Personalized Exchange Latency Test",
	.kind = OSU_KIND_COLL,
	.procs = OSU_PROCS_ANY,
	.min_size = 1,
	.max_size = 1 << 20,
	.iters = 1000, .iters_large = 100,
	.skip = 100, .skip_large = 10,
};

struct alltoall_run {
	char *send, *recv;
	size_t size;
};

static void alltoall_once(void *ctx)
{
	struct alltoall_run *r = ctx;

	OSU_MPI(MPI_Alltoall(r->send, (int)r->size, MPI_CHAR, r->recv,
			     (int)r->size, MPI_CHAR, MPI_COMM_WORLD));
}

static unsigned block_seed(const struct osu_opts *o, size_t size, int src,
			   int dst)
{
	return (unsigned)(size * 131u + (size_t)src * (size_t)o->nprocs +
			  (size_t)dst);
}

static int check_blocks(const struct osu_opts *o, struct alltoall_run *r)
{
	size_t bad = 0;

	for (int src = 0; src < o->nprocs; src++)
		bad += osu_check(r->recv + (size_t)src * r->size, r->size,
				 block_seed(o, r->size, src, o->rank),
				 "received block");
	return bad != 0;
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	struct alltoall_run r;
	int errors = 0;

	if (start != OSU_RUN)
		return osu_exit_code(start);
	r.send = osu_alloc(o.max_size * (size_t)o.nprocs);
	r.recv = osu_alloc(o.max_size * (size_t)o.nprocs);
	osu_print_header(&o);
	for (size_t size = o.min_size; size <= o.max_size;
	     size = osu_next_size(size)) {
		int bad = 0;
		double t;

		r.size = size;
		for (int dst = 0; dst < o.nprocs; dst++)
			osu_fill(r.send + (size_t)dst * size, size,
				 block_seed(&o, size, o.rank, dst));
		memset(r.recv, 0, size * (size_t)o.nprocs);
		t = osu_coll_time(&o, size, alltoall_once, &r);
		if (o.validate)
			bad = check_blocks(&o, &r);
		bad = osu_sum_errors(bad, MPI_COMM_WORLD);
		errors += bad;
		osu_coll_report(&o, size, t, bad);
	}
	osu_free(r.send);
	osu_free(r.recv);
	return osu_finish(&o, o.rank == 0 ? errors : 0);
}
