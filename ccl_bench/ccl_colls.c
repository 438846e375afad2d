/* The five collectives of the benchmark: buffer sizes, the call, the bus
 * bandwidth factor (nccl-tests doc/PERFORMANCE.md) and the result each rank
 * must hold.  total is the element count of the whole operation (see
 * ccl_bench.h for what size means per collective). */
#include <string.h>

#include "ccl_bench.h"

static size_t count_whole(size_t total, int n) { return total; }
static size_t count_block(size_t total, int n) { return total / (size_t)n; }

static double factor_allreduce(int n) { return 2.0 * (n - 1) / n; }
static double factor_spread(int n) { return (double)(n - 1) / n; }
static double factor_one(int n) { return 1.0; }

static double sum_over_ranks(size_t index, int n)
{
	double s = 0;

	for (int r = 0; r < n; r++)
		s += ccl_data_value(r, index);
	return s;
}

static double expect_allreduce(size_t i, size_t total, int rank, int n)
{
	return sum_over_ranks(i, n);
}

/* broadcast from root 0 */
static double expect_broadcast(size_t i, size_t total, int rank, int n)
{
	return ccl_data_value(0, i);
}

/* block r of the result is rank r's send buffer */
static double expect_allgather(size_t i, size_t total, int rank, int n)
{
	size_t c = total / (size_t)n;

	return ccl_data_value((int)(i / c), i % c);
}

/* rank keeps block rank of the sum */
static double expect_reduce_scatter(size_t i, size_t total, int rank, int n)
{
	size_t c = total / (size_t)n;

	return sum_over_ranks((size_t)rank * c + i, n);
}

/* block p of the result is block rank of rank p's send buffer */
static double expect_alltoall(size_t i, size_t total, int rank, int n)
{
	size_t c = total / (size_t)n;

	return ccl_data_value((int)(i / c), (size_t)rank * c + i % c);
}

static onecclResult_t run_allreduce(const void *s, void *r, size_t total,
				    onecclDataType_t t, onecclComm_t comm)
{
	return onecclAllReduce((void *)s, r, total, t, onecclSum, comm, NULL);
}

static onecclResult_t run_broadcast(const void *s, void *r, size_t total,
				    onecclDataType_t t, onecclComm_t comm)
{
	return onecclBroadcast(s, r, total, t, 0, comm, NULL);
}

static onecclResult_t run_allgather(const void *s, void *r, size_t total,
				    onecclDataType_t t, onecclComm_t comm)
{
	int n;

	onecclCommCount(comm, &n);
	return onecclAllGather(s, r, total / (size_t)n, t, comm, NULL);
}

static onecclResult_t run_reduce_scatter(const void *s, void *r, size_t total,
					 onecclDataType_t t, onecclComm_t comm)
{
	int n;

	onecclCommCount(comm, &n);
	return onecclReduceScatter(s, r, total / (size_t)n, t, onecclSum, comm,
				   NULL);
}

/* count is what each rank sends to each other rank */
static onecclResult_t run_alltoall(const void *s, void *r, size_t total,
				   onecclDataType_t t, onecclComm_t comm)
{
	int n;

	onecclCommCount(comm, &n);
	return onecclAllToAll(s, r, total / (size_t)n, t, comm, NULL);
}

static const struct ccl_coll colls[] = {
	{ "allreduce", count_whole, count_whole, run_allreduce,
	  factor_allreduce, expect_allreduce, 0 },
	{ "allgather", count_block, count_whole, run_allgather,
	  factor_spread, expect_allgather, 1 },
	{ "reduce_scatter", count_whole, count_block, run_reduce_scatter,
	  factor_spread, expect_reduce_scatter, 1 },
	{ "broadcast", count_whole, count_whole, run_broadcast,
	  factor_one, expect_broadcast, 0 },
	{ "alltoall", count_whole, count_whole, run_alltoall,
	  factor_spread, expect_alltoall, 1 },
};

const struct ccl_coll *ccl_coll_find(const char *name)
{
	for (size_t i = 0; i < sizeof(colls) / sizeof(colls[0]); i++)
		if (!strcmp(colls[i].name, name))
			return &colls[i];
	return NULL;
}

const char *ccl_coll_names(void)
{
	return "allreduce, allgather, reduce_scatter, broadcast, alltoall";
}
