/*
 * osu_common.h - shared helpers of the usb4 project's OSU-method benchmarks.
 *
 * Every program in osu_bench/ follows the method of the OSU Micro-Benchmarks
 * (latency = half round trip of a ping-pong, bandwidth = a window of
 * non-blocking operations closed by a reply, MB = 1e6 bytes) and prints the
 * OSU v7.4 output format, so that parsers written for OSU read ours unchanged,
 * but under a banner of its own: they are not the OSU suite, and a reader of
 * the output (or of a report made from it) must be able to tell which ran:
 *
 *   # usb4 osu_bench (OSU method) MPI Latency Test, usb4 0.1.0
 *   # Size          Latency (us)
 *   0                       0.21
 *
 * Rows are "%-10zu%18.2f"; with -c a "Validation" column says Pass or Fail,
 * a mismatch is reported on stderr and the program exits non-zero.
 *
 * Fault injection for tests of the validation path: when the environment
 * variable OSU_BENCH_CORRUPT is set (to anything), osu_check() flips the first
 * byte of every buffer it checks, so "-c" must report Fail and exit 1.
 */
#ifndef OSU_COMMON_H
#define OSU_COMMON_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/* The banner's prefix, which python/usb4fabric/osu_parse.py recognises. */
#define OSU_BENCH_BANNER "usb4 osu_bench (OSU method)"

/* The project's version (configure's PACKAGE_VERSION, passed by Makefile.am
 * and by python/usb4fabric/osu_build.py). */
#ifndef USB4_VERSION
#define USB4_VERSION "unknown"
#endif

/* Column width of every value after the 10-character size column. */
#define OSU_FIELD_WIDTH 18
#define OSU_PRECISION 2

/* Messages above this size use the "large" iteration and warm-up counts. */
#define OSU_LARGE_MESSAGE_SIZE 8192

/* Operations in flight per bandwidth iteration (OSU's -W default). */
#define OSU_WINDOW_DEFAULT 64
#define OSU_WINDOW_MAX 1024

/* What a program is, which decides its options and its header. */
enum osu_kind {
	OSU_KIND_LATENCY,   /* pt2pt ping-pong */
	OSU_KIND_BW,        /* pt2pt windowed bandwidth (bw, bibw) */
	OSU_KIND_MBW_MR,    /* multi-pair bandwidth and message rate */
	OSU_KIND_RMA_LAT,   /* one-sided latency (put, get, acc) */
	OSU_KIND_RMA_BW,    /* one-sided bandwidth (put, get) */
	OSU_KIND_COLL,      /* collective with a message size */
	OSU_KIND_BARRIER,   /* collective without a message size */
};

enum osu_win_type { OSU_WIN_CREATE, OSU_WIN_ALLOCATE };

enum osu_sync {
	OSU_SYNC_LOCK,   /* MPI_Win_lock/unlock around every operation (window) */
	OSU_SYNC_FLUSH,  /* one lock, MPI_Win_flush per operation (window) */
	OSU_SYNC_FENCE,  /* MPI_Win_fence */
	OSU_SYNC_PSCW,   /* MPI_Win_post/start/complete/wait */
};

#define OSU_SYNC_BIT(s) (1u << (s))
#define OSU_SYNC_ALL                                               \
	(OSU_SYNC_BIT(OSU_SYNC_LOCK) | OSU_SYNC_BIT(OSU_SYNC_FLUSH) | \
	 OSU_SYNC_BIT(OSU_SYNC_FENCE) | OSU_SYNC_BIT(OSU_SYNC_PSCW))

/* Process-count rule of a program. */
enum osu_procs { OSU_PROCS_TWO, OSU_PROCS_EVEN, OSU_PROCS_ANY };

/* The fixed description of one program, given by its main(). */
struct osu_spec {
	const char *name;        /* "osu_latency" */
	const char *title;       /* "MPI Latency Test" (after the banner) */
	enum osu_kind kind;
	enum osu_procs procs;
	size_t min_size;         /* default first message size */
	size_t max_size;         /* default last message size */
	int iters, iters_large;  /* default iterations (small, large messages) */
	int skip, skip_large;    /* default warm-up iterations */
	unsigned sync_allowed;   /* OSU_SYNC_BIT mask, one-sided only */
	enum osu_sync sync_default;
	int cpu_usage;           /* takes -C (osu_cpu.h) */
};

/* The options of one run, after parsing; the same on every rank. */
struct osu_opts {
	const struct osu_spec *spec;
	int rank, nprocs;
	size_t min_size, max_size;
	int iters, iters_large;
	int skip, skip_large;
	int window;              /* -W, bandwidth programs */
	int validate;            /* -c */
	int full;                /* -f, collectives */
	enum osu_win_type win;   /* -w */
	enum osu_sync sync;      /* -s */
	int cpu;                 /* -C: print '# cpu' lines (osu_cpu.h) */
};

/* Outcome of osu_start(): run the benchmark, or leave with an exit code. */
enum osu_start_result { OSU_RUN = 0, OSU_EXIT_OK = 1, OSU_EXIT_FAIL = 2 };

/*
 * MPI_Init, parse options (identically on every rank), check the process
 * count. On anything but OSU_RUN, MPI is already finalized and main() returns
 * osu_exit_code(result).
 */
enum osu_start_result osu_start(int *argc, char ***argv,
				const struct osu_spec *spec,
				struct osu_opts *opts);
int osu_exit_code(enum osu_start_result result);

/* MPI_Finalize and the exit code: 1 if any rank saw a validation error. */
int osu_finish(const struct osu_opts *opts, int errors);

/* Message sizes: min, then powers of two, up to max. */
size_t osu_next_size(size_t size);
int osu_iters(const struct osu_opts *opts, size_t size);
int osu_skip(const struct osu_opts *opts, size_t size);

/* Page-aligned buffers of at least one byte; abort the job on failure. */
void *osu_alloc(size_t size);
void osu_free(void *buf);

/* Validation: a pattern that depends on seed and position. */
void osu_fill(void *buf, size_t size, unsigned seed);
/* Bytes of buf that differ from osu_fill(seed); the first one is reported. */
size_t osu_check(void *buf, size_t size, unsigned seed, const char *what);
/* Bytes of buf that differ from expected; the first one is reported. */
size_t osu_compare(void *buf, const void *expected, size_t size,
		   const char *what);
/* Sum of a per-rank count over the communicator, known to every rank. */
int osu_sum_errors(int local, MPI_Comm comm);

/* Output, rank 0 only. */
void osu_print_header(const struct osu_opts *opts);
void osu_print_value(const struct osu_opts *opts, size_t size, double value,
		     int errors);
void osu_print_mbw(const struct osu_opts *opts, size_t size, double mbps,
		   double msg_rate, int errors);
void osu_print_coll(const struct osu_opts *opts, size_t size, double avg,
		    double min, double max, int iters, int errors);

/* One-sided windows of either kind (-w create|allocate). */
void osu_win_open(const struct osu_opts *opts, size_t size, MPI_Comm comm,
		  void **base, MPI_Win *win);
void osu_win_close(const struct osu_opts *opts, void *base, MPI_Win *win);

/*
 * One-sided timing loops, shared by the put/get/acc programs. The operation
 * callback issues one MPI_Put/Get/Accumulate of the current size to rank
 * `target` at displacement 0; the loops open and close the epochs of the
 * chosen synchronization (-s):
 *
 *   lock   rank 0: MPI_Win_lock(shared) + op (or window of ops) + unlock
 *   flush  rank 0: one lock; op (or window of ops) + MPI_Win_flush
 *   fence  latency: rank 0 op, fence, rank 1 op back, fence (half of it);
 *          bandwidth: rank 0 window of ops, fence
 *   pscw   latency: start/op/complete against post/wait, both directions
 *          (half of it); bandwidth: rank 0 start/ops/complete, rank 1
 *          post/wait
 *
 * Both end with MPI_Barrier and no epoch open, so ranks may then read their
 * own window under MPI_Win_lock(self).
 */
typedef void (*osu_rma_op)(void *ctx, int target);

/* Microseconds per operation (one direction). */
double osu_rma_latency(const struct osu_opts *opts, MPI_Win win, size_t size,
		       osu_rma_op op, void *ctx);
/* Seconds of the timed iterations of `window` operations each, at rank 0. */
double osu_rma_bandwidth(const struct osu_opts *opts, MPI_Win win,
			 size_t size, osu_rma_op op, void *ctx);
/* Whether this rank issues operations / is targeted in the latency loop. */
int osu_rma_lat_origin(const struct osu_opts *opts);
int osu_rma_lat_target(const struct osu_opts *opts);
/* Apply fn to this rank's own window memory inside a local epoch. */
void osu_win_local(MPI_Win win, int rank, void (*fn)(void *ctx), void *ctx);

/*
 * Collective timing, OSU's way: every call is timed on its own and followed
 * by an untimed MPI_Barrier. Returns this rank's seconds over the timed
 * iterations. osu_coll_report() turns them into the average of the ranks'
 * mean latencies (and their min and max with -f) and prints the row.
 */
typedef void (*osu_coll_op)(void *ctx);
double osu_coll_time(const struct osu_opts *opts, size_t size, osu_coll_op op,
		     void *ctx);
void osu_coll_report(const struct osu_opts *opts, size_t size, double seconds,
		     int errors);

/* Abort the whole job with a message when an MPI call fails. */
#define OSU_MPI(call)                                                   \
	do {                                                            \
		int osu_rc_ = (call);                                   \
		if (osu_rc_ != MPI_SUCCESS)                             \
			osu_mpi_fail(#call, __FILE__, __LINE__, osu_rc_); \
	} while (0)

_Noreturn void osu_mpi_fail(const char *call, const char *file, int line,
			    int rc);

#endif /* OSU_COMMON_H */
