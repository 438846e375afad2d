/* ccl_bench: a collective benchmark in the style of nccl-tests, over the
 * C API of oneCCL (oneapi/ccl.h), one rank per host.
 *
 * Sizes, algorithm bandwidth and bus bandwidth follow nccl-tests'
 * definitions (nccl-tests doc/PERFORMANCE.md):
 *   size   the bytes one rank's buffer of the whole operation holds: the
 *          reduced vector (allreduce, broadcast), the gathered vector
 *          (allgather), the vector before scattering (reduce-scatter), all
 *          blocks sent by a rank (alltoall);
 *   algbw  size / time;
 *   busbw  algbw * 2(n-1)/n for allreduce, * (n-1)/n for allgather,
 *          reduce-scatter and alltoall, * 1 for broadcast: the rate each
 *          link would carry in the optimal algorithm, comparable across n.
 *
 * The output format is fixed (python/usb4fabric/ccl_parse.py reads it). */
#ifndef CCL_BENCH_H
#define CCL_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include <oneapi/ccl.h>

/* What each collective needs from the sweep: how many elements each
 * buffer holds for a given size, how to call it, the busbw factor and the
 * value a rank must find at each index of its result. */
struct ccl_coll {
	const char *name;
	/* elements per rank in the send and in the receive buffer, for a
	 * whole-operation count of total elements (a multiple of n) */
	size_t (*send_count)(size_t total, int nranks);
	size_t (*recv_count)(size_t total, int nranks);
	onecclResult_t (*run)(const void *send, void *recv, size_t total,
			      onecclDataType_t dtype, onecclComm_t comm);
	/* busbw = algbw * bus_factor(n) */
	double (*bus_factor)(int nranks);
	/* the value a correct run leaves at recv[index] of rank */
	double (*expect)(size_t index, size_t total, int rank, int nranks);
	/* totals must be multiples of this many elements per rank */
	int per_rank_blocks;
};

const struct ccl_coll *ccl_coll_find(const char *name);
const char *ccl_coll_names(void);

/* The value rank puts at index of its send buffer: a small integer, so
 * every sum of n of them is exact in float32 and in bfloat16. */
double ccl_data_value(int rank, size_t index);

/* Element types the benchmark runs: float32 and bfloat16. */
struct ccl_dtype {
	const char *name;
	onecclDataType_t ccl;
	size_t size;
};

const struct ccl_dtype *ccl_dtype_find(const char *name);
void ccl_data_fill(const struct ccl_dtype *t, void *buf, size_t count, int rank);
void ccl_data_poison(const struct ccl_dtype *t, void *buf, size_t count);
size_t ccl_data_check(const struct ccl_dtype *t, const struct ccl_coll *c,
		      const void *buf, size_t count, size_t total, int rank,
		      int nranks);

struct ccl_opts {
	const struct ccl_coll *coll;
	const struct ccl_dtype *dtype;
	size_t min_bytes, max_bytes;
	size_t step_factor;	/* -f: sizes grow by this factor */
	int iters;		/* -n: iterations at the smallest sizes */
	int warmup;		/* -w: warm-up iterations at the smallest sizes */
	int check;		/* -c: check data at every size */
	int rank, nranks;
};

int ccl_opts_parse(struct ccl_opts *o, int argc, char **argv);

/* The communicator's unique id, from rank 0 to the others through the
 * file of USB4_CCL_ID_FILE or the socket of USB4_CCL_ID_ADDR. */
int ccl_id_share(onecclUniqueId *id, int rank, int nranks);
void ccl_id_done(int rank);

/* Iterations and warm-ups at a size: fewer as sizes grow. */
int ccl_sweep_iters(const struct ccl_opts *o, size_t bytes);
int ccl_sweep_warmup(const struct ccl_opts *o, size_t bytes);

struct ccl_result {
	size_t bytes, count;
	double usec;
	double algbw, busbw;	/* GB/s (1e9 bytes per second) */
	uint64_t errors;
};

int ccl_sweep_size(const struct ccl_opts *o, onecclComm_t comm, size_t total,
		   void *send, void *recv, struct ccl_result *r);

void ccl_print_header(const struct ccl_opts *o);
void ccl_print_row(const struct ccl_result *r);
void ccl_print_footer(double avg_busbw, uint64_t errors);

#endif
