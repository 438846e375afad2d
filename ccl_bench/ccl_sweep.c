/* One size of the sweep: a checked run, warm-ups, then timed iterations;
 * the time is the slowest rank's, the errors all ranks' (both reduced with
 * the library itself, so no other channel between ranks is needed). */
#include <stdio.h>
#include <time.h>

#include "ccl_bench.h"

/* Iterations shrink as sizes grow so the whole 8 B - 256 MiB range takes
 * seconds on two cores: about 64 MiB moved per size, at least 2. */
#define CCL_SWEEP_BYTES ((size_t)64 << 20)
#define CCL_SWEEP_MIN_ITERS 2

int ccl_sweep_iters(const struct ccl_opts *o, size_t bytes)
{
	size_t n = bytes ? CCL_SWEEP_BYTES / bytes : (size_t)o->iters;

	if (n > (size_t)o->iters)
		n = (size_t)o->iters;
	return n < CCL_SWEEP_MIN_ITERS ? CCL_SWEEP_MIN_ITERS : (int)n;
}

int ccl_sweep_warmup(const struct ccl_opts *o, size_t bytes)
{
	int w = ccl_sweep_iters(o, bytes) / 4;

	if (w < 1)
		w = 1;
	return w < o->warmup ? w : o->warmup;
}

static double now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

static int reduce_double(double *v, onecclRedOp_t op, onecclComm_t comm)
{
	return onecclAllReduce(v, v, 1, onecclFloat64, op, comm, NULL) !=
	       onecclSuccess;
}

static int run_times(const struct ccl_opts *o, onecclComm_t comm,
		     size_t total, void *send, void *recv, int times)
{
	for (int i = 0; i < times; i++)
		if (o->coll->run(send, recv, total, o->dtype->ccl, comm) !=
		    onecclSuccess)
			return -1;
	return 0;
}

/* the result of one run from a poisoned receive buffer */
static int checked_run(const struct ccl_opts *o, onecclComm_t comm,
		       size_t total, void *send, void *recv, double *errors)
{
	size_t count = o->coll->recv_count(total, o->nranks);

	ccl_data_poison(o->dtype, recv, count);
	if (run_times(o, comm, total, send, recv, 1))
		return -1;
	*errors = (double)ccl_data_check(o->dtype, o->coll, recv, count,
					 total, o->rank, o->nranks);
	return reduce_double(errors, onecclSum, comm);
}

int ccl_sweep_size(const struct ccl_opts *o, onecclComm_t comm, size_t total,
		   void *send, void *recv, struct ccl_result *r)
{
	size_t bytes = total * o->dtype->size;
	int iters = ccl_sweep_iters(o, bytes);
	double errors = 0, usec;

	if (o->check && checked_run(o, comm, total, send, recv, &errors))
		return -1;
	if (run_times(o, comm, total, send, recv, ccl_sweep_warmup(o, bytes)))
		return -1;
	usec = now_usec();
	if (run_times(o, comm, total, send, recv, iters))
		return -1;
	usec = (now_usec() - usec) / iters;
	if (reduce_double(&usec, onecclMax, comm))
		return -1;
	*r = (struct ccl_result){ bytes, total, usec, bytes / usec * 1e-3, 0,
				  (uint64_t)errors };
	r->busbw = r->algbw * o->coll->bus_factor(o->nranks);
	return 0;
}
