/* ccl_bench: the sweep over sizes of one collective (see ccl_bench.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ccl_bench.h"

/* the element count of the whole operation at a size: a multiple of the
 * rank count where the collective splits its buffer in blocks */
static size_t total_at(const struct ccl_opts *o, size_t bytes)
{
	size_t total = bytes / o->dtype->size;

	if (o->coll->per_rank_blocks)
		total -= total % (size_t)o->nranks;
	return total;
}

static void *alloc_filled(const struct ccl_opts *o, size_t count, int fill)
{
	size_t bytes = (count * o->dtype->size + 4095) & ~(size_t)4095;
	void *p = aligned_alloc(4096, bytes ? bytes : 4096);

	if (p && fill)
		ccl_data_fill(o->dtype, p, count, o->rank);
	else if (p)
		memset(p, 0, bytes);
	return p;
}

static int sweep(const struct ccl_opts *o, onecclComm_t comm)
{
	size_t max_total = total_at(o, o->max_bytes);
	void *send = alloc_filled(o, max_total, 1);
	void *recv = alloc_filled(o, max_total, 0);
	double busbw_sum = 0;
	uint64_t errors = 0;
	int rows = 0, rc = 0;

	if (!send || !recv)
		rc = -1;
	if (!rc && o->rank == 0)
		ccl_print_header(o);
	for (size_t b = o->min_bytes; !rc && b <= o->max_bytes; b *= o->step_factor) {
		struct ccl_result r;
		size_t total = total_at(o, b);

		if (!total)
			continue;
		rc = ccl_sweep_size(o, comm, total, send, recv, &r);
		if (rc || o->rank)
			continue;
		ccl_print_row(&r);
		busbw_sum += r.busbw;
		errors += r.errors;
		rows++;
	}
	if (!rc && o->rank == 0)
		ccl_print_footer(rows ? busbw_sum / rows : 0, errors);
	free(send);
	free(recv);
	return rc ? rc : errors != 0;
}

int main(int argc, char **argv)
{
	struct ccl_opts o;
	onecclUniqueId id;
	onecclComm_t comm;
	onecclResult_t res;
	int rc;

	if (ccl_opts_parse(&o, argc, argv))
		return 2;
	memset(&id, 0, sizeof(id));
	if (ccl_id_share(&id, o.rank, o.nranks))
		return 1;
	res = onecclCommInitRank(&comm, (size_t)o.nranks, id, o.rank);
	if (res != onecclSuccess) {
		fprintf(stderr, "ccl_bench: rank %d: onecclCommInitRank: %s\n",
			o.rank, onecclGetErrorString(res));
		return 1;
	}
	ccl_id_done(o.rank);
	rc = sweep(&o, comm);
	if (rc < 0)
		fprintf(stderr, "ccl_bench: rank %d: %s: %s\n", o.rank,
			o.coll->name, onecclGetLastError(comm));
	onecclCommDestroy(comm);
	return rc < 0 ? 1 : rc;
}
