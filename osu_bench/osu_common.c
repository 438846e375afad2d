/*
 * osu_common.c - option parsing, buffers, validation and output shared by the
 * OSU-method benchmarks of osu_bench/. See osu_common.h for the conventions.
 */
#define _POSIX_C_SOURCE 200809L

#include "osu_common.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *const win_names[] = {
	[OSU_WIN_CREATE] = "MPI_Win_create",
	[OSU_WIN_ALLOCATE] = "MPI_Win_allocate",
};

static const char *const sync_names[] = {
	[OSU_SYNC_LOCK] = "MPI_Win_lock/unlock",
	[OSU_SYNC_FLUSH] = "MPI_Win_flush",
	[OSU_SYNC_FENCE] = "MPI_Win_fence",
	[OSU_SYNC_PSCW] = "MPI_Win_post/start/complete/wait",
};

static const char *const sync_args[] = {
	[OSU_SYNC_LOCK] = "lock",
	[OSU_SYNC_FLUSH] = "flush",
	[OSU_SYNC_FENCE] = "fence",
	[OSU_SYNC_PSCW] = "pscw",
};

_Noreturn void osu_mpi_fail(const char *call, const char *file, int line,
			    int rc)
{
	char msg[MPI_MAX_ERROR_STRING];
	int len = 0;

	MPI_Error_string(rc, msg, &len);
	fprintf(stderr, "%s:%d: %s failed: %s\n", file, line, call, msg);
	MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

/* ---- option parsing ---------------------------------------------------- */

static int has_sizes(enum osu_kind kind)
{
	return kind != OSU_KIND_BARRIER;
}

static int is_rma(enum osu_kind kind)
{
	return kind == OSU_KIND_RMA_LAT || kind == OSU_KIND_RMA_BW;
}

static int has_window(enum osu_kind kind)
{
	return kind == OSU_KIND_BW || kind == OSU_KIND_MBW_MR ||
	       kind == OSU_KIND_RMA_BW;
}

static int is_coll(enum osu_kind kind)
{
	return kind == OSU_KIND_COLL || kind == OSU_KIND_BARRIER;
}

static void usage(const struct osu_spec *spec)
{
	printf("Usage: %s [options]\n", spec->name);
	printf("Options:\n");
	if (has_sizes(spec->kind)) {
		printf("  -m, --message-size          [MIN:]MAX  message sizes "
		       "(default %zu:%zu)\n", spec->min_size, spec->max_size);
		printf("  -c, --validation            fill and check the data\n");
	}
	printf("  -i, --iterations            ITER  timed iterations "
	       "(default %d", spec->iters);
	if (has_sizes(spec->kind))
		printf(", %d above %d bytes", spec->iters_large,
		       OSU_LARGE_MESSAGE_SIZE);
	printf(")\n  -x, --warmup                ITER  warm-up iterations "
	       "(default %d", spec->skip);
	if (has_sizes(spec->kind))
		printf(", %d above %d bytes", spec->skip_large,
		       OSU_LARGE_MESSAGE_SIZE);
	printf(")\n");
	if (has_window(spec->kind))
		printf("  -W, --window-size           SIZE  operations per "
		       "window (default %d)\n", OSU_WINDOW_DEFAULT);
	if (is_rma(spec->kind)) {
		printf("  -w, --win-option            create|allocate "
		       "(default create)\n");
		printf("  -s, --sync-option           ");
		for (int s = OSU_SYNC_LOCK; s <= OSU_SYNC_PSCW; s++)
			if (spec->sync_allowed & OSU_SYNC_BIT(s))
				printf("%s ", sync_args[s]);
		printf("(default %s)\n", sync_args[spec->sync_default]);
	}
	if (spec->cpu_usage)
		printf("  -C, --cpu-usage             after each row a '# cpu' "
		       "line: CPU s of each rank\n"
		       "                              and of the machine over "
		       "the timed loop\n");
	if (is_coll(spec->kind))
		printf("  -f, --full                  print min, max and "
		       "iterations\n");
	printf("  -h, --help                  this message\n");
	fflush(stdout);
}

static int parse_count(const char *arg, long min, long max, long *out)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_size(const char *arg, size_t *out)
{
	long v;

	if (parse_count(arg, 0, LONG_MAX, &v))
		return -1;
	*out = (size_t)v;
	return 0;
}

/* "-m MAX", "-m MIN:MAX", "-m MIN:" or "-m :MAX". */
static int parse_sizes(const char *arg, struct osu_opts *o)
{
	char buf[64];
	char *colon;

	if (strlen(arg) >= sizeof(buf))
		return -1;
	strcpy(buf, arg);
	colon = strchr(buf, ':');
	if (!colon)
		return parse_size(buf, &o->max_size);
	*colon = '\0';
	if (buf[0] && parse_size(buf, &o->min_size))
		return -1;
	if (colon[1] && parse_size(colon + 1, &o->max_size))
		return -1;
	return 0;
}

static int parse_sync(const char *arg, struct osu_opts *o)
{
	for (int s = OSU_SYNC_LOCK; s <= OSU_SYNC_PSCW; s++) {
		if (strcasecmp(arg, sync_args[s]) == 0 &&
		    (o->spec->sync_allowed & OSU_SYNC_BIT(s))) {
			o->sync = (enum osu_sync)s;
			return 0;
		}
	}
	return -1;
}

static int parse_win(const char *arg, struct osu_opts *o)
{
	if (strcasecmp(arg, "create") == 0)
		o->win = OSU_WIN_CREATE;
	else if (strcasecmp(arg, "allocate") == 0)
		o->win = OSU_WIN_ALLOCATE;
	else
		return -1;
	return 0;
}

static void set_defaults(const struct osu_spec *spec, struct osu_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->spec = spec;
	o->min_size = spec->min_size;
	o->max_size = spec->max_size;
	o->iters = spec->iters;
	o->iters_large = spec->iters_large;
	o->skip = spec->skip;
	o->skip_large = spec->skip_large;
	o->window = OSU_WINDOW_DEFAULT;
	o->win = OSU_WIN_CREATE;
	o->sync = spec->sync_default;
}

static const char *optstring(enum osu_kind kind)
{
	switch (kind) {
	case OSU_KIND_LATENCY:
		return ":hm:i:x:c";
	case OSU_KIND_BW:
		return ":hm:i:x:cW:C";
	case OSU_KIND_MBW_MR:
		return ":hm:i:x:cW:";
	case OSU_KIND_RMA_LAT:
		return ":hm:i:x:cw:s:";
	case OSU_KIND_RMA_BW:
		return ":hm:i:x:cW:w:s:";
	case OSU_KIND_COLL:
		return ":hm:i:x:cf";
	case OSU_KIND_BARRIER:
		/* -m and -c are accepted and ignored, so that a harness can
		 * pass the same options to every collective */
		return ":hm:i:x:cf";
	}
	return ":h";
}

/* Long names of the options, as OSU spells them; optstring() filters. */
static const struct option long_options[] = {
	{"help", no_argument, NULL, 'h'},
	{"message-size", required_argument, NULL, 'm'},
	{"iterations", required_argument, NULL, 'i'},
	{"warmup", required_argument, NULL, 'x'},
	{"window-size", required_argument, NULL, 'W'},
	{"validation", no_argument, NULL, 'c'},
	{"full", no_argument, NULL, 'f'},
	{"win-option", required_argument, NULL, 'w'},
	{"sync-option", required_argument, NULL, 's'},
	{"cpu-usage", no_argument, NULL, 'C'},
	{NULL, 0, NULL, 0},
};

/* Whether a long option maps to a letter this program takes (-C only
 * where the program measures CPU time). */
static int option_allowed(int opt, const struct osu_spec *spec)
{
	if (opt == 'C' && !spec->cpu_usage)
		return 0;
	return opt != ':' && strchr(optstring(spec->kind), opt) != NULL;
}

/* One option; returns 0, or -1 on a bad value. */
static int apply_option(int opt, const char *arg, struct osu_opts *o)
{
	long v;

	switch (opt) {
	case 'm':
		return parse_sizes(arg, o);
	case 'i':
		if (parse_count(arg, 1, INT_MAX, &v))
			return -1;
		o->iters = o->iters_large = (int)v;
		return 0;
	case 'x':
		if (parse_count(arg, 0, INT_MAX, &v))
			return -1;
		o->skip = o->skip_large = (int)v;
		return 0;
	case 'W':
		if (parse_count(arg, 1, OSU_WINDOW_MAX, &v))
			return -1;
		o->window = (int)v;
		return 0;
	case 'c':
		o->validate = 1;
		return 0;
	case 'f':
		o->full = 1;
		return 0;
	case 'C':
		o->cpu = 1;
		return 0;
	case 'w':
		return parse_win(arg, o);
	case 's':
		return parse_sync(arg, o);
	}
	return -1;
}

/* Returns OSU_RUN, OSU_EXIT_OK (help) or OSU_EXIT_FAIL (bad usage). */
static enum osu_start_result parse(int argc, char **argv, struct osu_opts *o)
{
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, optstring(o->spec->kind),
				  long_options, NULL)) != -1) {
		if (!option_allowed(opt, o->spec))
			opt = '?';
		if (opt == 'h') {
			if (o->rank == 0)
				usage(o->spec);
			return OSU_EXIT_OK;
		}
		if (opt == '?' || opt == ':' || apply_option(opt, optarg, o)) {
			if (o->rank == 0) {
				int at = optind > 1 ? optind - 1 : 1;

				fprintf(stderr, "%s: invalid option or value "
					"at '%s'\n", o->spec->name,
					at < argc ? argv[at] : "");
				usage(o->spec);
			}
			return OSU_EXIT_FAIL;
		}
	}
	if (optind < argc || o->min_size > o->max_size) {
		if (o->rank == 0) {
			fprintf(stderr, "%s: unexpected argument or empty "
				"size range\n", o->spec->name);
			usage(o->spec);
		}
		return OSU_EXIT_FAIL;
	}
	return OSU_RUN;
}

static int procs_ok(const struct osu_opts *o)
{
	switch (o->spec->procs) {
	case OSU_PROCS_TWO:
		return o->nprocs == 2;
	case OSU_PROCS_EVEN:
		return o->nprocs >= 2 && o->nprocs % 2 == 0;
	case OSU_PROCS_ANY:
		return o->nprocs >= 1;
	}
	return 0;
}

static const char *procs_rule(enum osu_procs procs)
{
	switch (procs) {
	case OSU_PROCS_TWO:
		return "exactly two processes";
	case OSU_PROCS_EVEN:
		return "an even number of processes";
	case OSU_PROCS_ANY:
		break;
	}
	return "at least one process";
}

enum osu_start_result osu_start(int *argc, char ***argv,
				const struct osu_spec *spec,
				struct osu_opts *opts)
{
	enum osu_start_result res;

	set_defaults(spec, opts);
	OSU_MPI(MPI_Init(argc, argv));
	OSU_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &opts->rank));
	OSU_MPI(MPI_Comm_size(MPI_COMM_WORLD, &opts->nprocs));

	res = parse(*argc, *argv, opts);
	if (!has_sizes(spec->kind))
		opts->validate = 0;
	if (res == OSU_RUN && !procs_ok(opts)) {
		if (opts->rank == 0)
			fprintf(stderr, "%s: this test requires %s\n",
				spec->name, procs_rule(spec->procs));
		res = OSU_EXIT_FAIL;
	}
	if (res != OSU_RUN)
		MPI_Finalize();
	return res;
}

int osu_exit_code(enum osu_start_result result)
{
	return result == OSU_EXIT_FAIL ? 1 : 0;
}

int osu_finish(const struct osu_opts *opts, int errors)
{
	int total = osu_sum_errors(errors, MPI_COMM_WORLD);

	if (total && opts->rank == 0)
		fprintf(stderr, "%s: data validation failed (%d errors)\n",
			opts->spec->name, total);
	MPI_Finalize();
	return total ? 1 : 0;
}

/* ---- sizes and iterations ---------------------------------------------- */

size_t osu_next_size(size_t size)
{
	return size ? size * 2 : 1;
}

int osu_iters(const struct osu_opts *opts, size_t size)
{
	return size > OSU_LARGE_MESSAGE_SIZE ? opts->iters_large : opts->iters;
}

int osu_skip(const struct osu_opts *opts, size_t size)
{
	return size > OSU_LARGE_MESSAGE_SIZE ? opts->skip_large : opts->skip;
}

/* ---- buffers and validation -------------------------------------------- */

void *osu_alloc(size_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	void *buf = NULL;

	if (page <= 0)
		page = 4096;
	if (posix_memalign(&buf, (size_t)page, size ? size : 1)) {
		fprintf(stderr, "osu_bench: cannot allocate %zu bytes\n", size);
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	memset(buf, 0, size ? size : 1);
	return buf;
}

void osu_free(void *buf)
{
	free(buf);
}

static uint8_t pattern_byte(size_t i, unsigned seed)
{
	return (uint8_t)((i * 131u) ^ (i >> 8) ^ (seed * 2654435761u >> 24) ^
			 (seed + 0x5au));
}

void osu_fill(void *buf, size_t size, unsigned seed)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < size; i++)
		p[i] = pattern_byte(i, seed);
}

size_t osu_compare(void *buf, const void *expected, size_t size,
		   const char *what)
{
	uint8_t *p = buf;
	const uint8_t *e = expected;
	size_t bad = 0;
	int rank = 0;

	if (size && getenv("OSU_BENCH_CORRUPT"))
		p[0] ^= 0xff;
	for (size_t i = 0; i < size; i++) {
		if (p[i] == e[i])
			continue;
		if (bad++ == 0) {
			MPI_Comm_rank(MPI_COMM_WORLD, &rank);
			fprintf(stderr, "rank %d: validation error in %s of "
				"%zu bytes: byte %zu is 0x%02x, expected "
				"0x%02x\n", rank, what, size, i, p[i], e[i]);
		}
	}
	return bad;
}

size_t osu_check(void *buf, size_t size, unsigned seed, const char *what)
{
	uint8_t *expected = osu_alloc(size);
	size_t bad;

	osu_fill(expected, size, seed);
	bad = osu_compare(buf, expected, size, what);
	osu_free(expected);
	return bad;
}

int osu_sum_errors(int local, MPI_Comm comm)
{
	int total = 0;

	OSU_MPI(MPI_Allreduce(&local, &total, 1, MPI_INT, MPI_SUM, comm));
	return total;
}

/* ---- output ------------------------------------------------------------ */

static void print_columns(const struct osu_opts *o)
{
	switch (o->spec->kind) {
	case OSU_KIND_LATENCY:
	case OSU_KIND_RMA_LAT:
		printf("%-10s%*s", "# Size", OSU_FIELD_WIDTH, "Latency (us)");
		break;
	case OSU_KIND_BW:
	case OSU_KIND_RMA_BW:
		printf("%-10s%*s", "# Size", OSU_FIELD_WIDTH,
		       "Bandwidth (MB/s)");
		break;
	case OSU_KIND_MBW_MR:
		printf("%-10s%*s%*s", "# Size", OSU_FIELD_WIDTH, "MB/s",
		       OSU_FIELD_WIDTH, "Messages/s");
		break;
	case OSU_KIND_COLL:
		printf("%-10s%*s", "# Size", OSU_FIELD_WIDTH,
		       "Avg Latency(us)");
		break;
	case OSU_KIND_BARRIER:
		printf("%s", "# Avg Latency(us)");
		break;
	}
	if (o->full && is_coll(o->spec->kind))
		printf("%*s%*s%*s", OSU_FIELD_WIDTH, "Min Latency(us)",
		       OSU_FIELD_WIDTH, "Max Latency(us)", 12, "Iterations");
	if (o->validate)
		printf("%*s", OSU_FIELD_WIDTH, "Validation");
	printf("\n");
}

void osu_print_header(const struct osu_opts *opts)
{
	if (opts->rank != 0)
		return;
	printf("# %s %s, usb4 %s\n", OSU_BENCH_BANNER, opts->spec->title,
	       USB4_VERSION);
	if (is_rma(opts->spec->kind)) {
		printf("# Window creation: %s\n", win_names[opts->win]);
		printf("# Synchronization: %s\n", sync_names[opts->sync]);
	}
	print_columns(opts);
	fflush(stdout);
}

static void print_validation(const struct osu_opts *o, int errors)
{
	if (o->validate)
		printf("%*s", OSU_FIELD_WIDTH, errors ? "Fail" : "Pass");
	printf("\n");
	fflush(stdout);
}

void osu_print_value(const struct osu_opts *opts, size_t size, double value,
		     int errors)
{
	if (opts->rank != 0)
		return;
	printf("%-10zu%*.*f", size, OSU_FIELD_WIDTH, OSU_PRECISION, value);
	print_validation(opts, errors);
}

void osu_print_mbw(const struct osu_opts *opts, size_t size, double mbps,
		   double msg_rate, int errors)
{
	if (opts->rank != 0)
		return;
	printf("%-10zu%*.*f%*.*f", size, OSU_FIELD_WIDTH, OSU_PRECISION, mbps,
	       OSU_FIELD_WIDTH, OSU_PRECISION, msg_rate);
	print_validation(opts, errors);
}

void osu_print_coll(const struct osu_opts *opts, size_t size, double avg,
		    double min, double max, int iters, int errors)
{
	if (opts->rank != 0)
		return;
	if (opts->spec->kind == OSU_KIND_BARRIER)
		printf("%*.*f", 17, OSU_PRECISION, avg);
	else
		printf("%-10zu%*.*f", size, OSU_FIELD_WIDTH, OSU_PRECISION,
		       avg);
	if (opts->full)
		printf("%*.*f%*.*f%*d", OSU_FIELD_WIDTH, OSU_PRECISION, min,
		       OSU_FIELD_WIDTH, OSU_PRECISION, max, 12, iters);
	print_validation(opts, errors);
}

/* ---- collectives ------------------------------------------------------- */

double osu_coll_time(const struct osu_opts *opts, size_t size, osu_coll_op op,
		     void *ctx)
{
	int iters = osu_iters(opts, size), skip = osu_skip(opts, size);
	double total = 0.0, t0;

	OSU_MPI(MPI_Barrier(MPI_COMM_WORLD));
	for (int i = 0; i < iters + skip; i++) {
		t0 = MPI_Wtime();
		op(ctx);
		if (i >= skip)
			total += MPI_Wtime() - t0;
		OSU_MPI(MPI_Barrier(MPI_COMM_WORLD));
	}
	return total;
}

void osu_coll_report(const struct osu_opts *opts, size_t size, double seconds,
		     int errors)
{
	int iters = osu_iters(opts, size);
	double lat = seconds * 1e6 / iters, min = 0.0, max = 0.0, sum = 0.0;

	OSU_MPI(MPI_Reduce(&lat, &min, 1, MPI_DOUBLE, MPI_MIN, 0,
			   MPI_COMM_WORLD));
	OSU_MPI(MPI_Reduce(&lat, &max, 1, MPI_DOUBLE, MPI_MAX, 0,
			   MPI_COMM_WORLD));
	OSU_MPI(MPI_Reduce(&lat, &sum, 1, MPI_DOUBLE, MPI_SUM, 0,
			   MPI_COMM_WORLD));
	osu_print_coll(opts, size, sum / opts->nprocs, min, max, iters,
		       errors);
}

/* ---- one-sided windows ------------------------------------------------- */

void osu_win_open(const struct osu_opts *opts, size_t size, MPI_Comm comm,
		  void **base, MPI_Win *win)
{
	MPI_Aint bytes = (MPI_Aint)(size ? size : 1);

	if (opts->win == OSU_WIN_ALLOCATE) {
		OSU_MPI(MPI_Win_allocate(bytes, 1, MPI_INFO_NULL, comm, base,
					 win));
		memset(*base, 0, (size_t)bytes);
	} else {
		*base = osu_alloc((size_t)bytes);
		OSU_MPI(MPI_Win_create(*base, bytes, 1, MPI_INFO_NULL, comm,
				       win));
	}
}

void osu_win_close(const struct osu_opts *opts, void *base, MPI_Win *win)
{
	OSU_MPI(MPI_Win_free(win));
	if (opts->win == OSU_WIN_CREATE)
		osu_free(base);
}

/* ---- one-sided timing loops -------------------------------------------- */

int osu_rma_lat_origin(const struct osu_opts *opts)
{
	return opts->rank == 0 || opts->sync == OSU_SYNC_FENCE ||
	       opts->sync == OSU_SYNC_PSCW;
}

int osu_rma_lat_target(const struct osu_opts *opts)
{
	return opts->rank == 1 || opts->sync == OSU_SYNC_FENCE ||
	       opts->sync == OSU_SYNC_PSCW;
}

void osu_win_local(MPI_Win win, int rank, void (*fn)(void *ctx), void *ctx)
{
	OSU_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, rank, 0, win));
	fn(ctx);
	OSU_MPI(MPI_Win_unlock(rank, win));
}

static MPI_Group peer_group(int peer)
{
	MPI_Group world, group;

	OSU_MPI(MPI_Comm_group(MPI_COMM_WORLD, &world));
	OSU_MPI(MPI_Group_incl(world, 1, &peer, &group));
	OSU_MPI(MPI_Group_free(&world));
	return group;
}

/* One round of `count` operations from rank 0 (and back, if `both`). */
static void rma_round(const struct osu_opts *o, MPI_Win win, MPI_Group peer,
		      int count, int both, osu_rma_op op, void *ctx)
{
	int target = 1 - o->rank;

	switch (o->sync) {
	case OSU_SYNC_LOCK:
		if (o->rank != 0)
			return;
		OSU_MPI(MPI_Win_lock(MPI_LOCK_SHARED, 1, 0, win));
		for (int w = 0; w < count; w++)
			op(ctx, 1);
		OSU_MPI(MPI_Win_unlock(1, win));
		return;
	case OSU_SYNC_FLUSH:
		if (o->rank != 0)
			return;
		for (int w = 0; w < count; w++)
			op(ctx, 1);
		OSU_MPI(MPI_Win_flush(1, win));
		return;
	case OSU_SYNC_FENCE:
		for (int turn = 0; turn <= both; turn++) {
			if (o->rank == turn)
				for (int w = 0; w < count; w++)
					op(ctx, target);
			OSU_MPI(MPI_Win_fence(0, win));
		}
		return;
	case OSU_SYNC_PSCW:
		for (int turn = 0; turn <= both; turn++) {
			if (o->rank == turn) {
				OSU_MPI(MPI_Win_start(peer, 0, win));
				for (int w = 0; w < count; w++)
					op(ctx, target);
				OSU_MPI(MPI_Win_complete(win));
			} else {
				OSU_MPI(MPI_Win_post(peer, 0, win));
				OSU_MPI(MPI_Win_wait(win));
			}
		}
		return;
	}
}

/* Seconds of `iters` timed rounds after `skip` warm-up rounds. */
static double rma_loop(const struct osu_opts *o, MPI_Win win, size_t size,
		       int count, int both, osu_rma_op op, void *ctx)
{
	int iters = osu_iters(o, size), skip = osu_skip(o, size);
	MPI_Group peer = peer_group(1 - o->rank);
	double t0 = 0.0, t;

	OSU_MPI(MPI_Barrier(MPI_COMM_WORLD));
	if (o->sync == OSU_SYNC_FLUSH && o->rank == 0)
		OSU_MPI(MPI_Win_lock(MPI_LOCK_SHARED, 1, 0, win));
	if (o->sync == OSU_SYNC_FENCE)
		OSU_MPI(MPI_Win_fence(MPI_MODE_NOPRECEDE, win));
	for (int i = 0; i < iters + skip; i++) {
		if (i == skip)
			t0 = MPI_Wtime();
		rma_round(o, win, peer, count, both, op, ctx);
	}
	t = MPI_Wtime() - t0;
	if (o->sync == OSU_SYNC_FLUSH && o->rank == 0)
		OSU_MPI(MPI_Win_unlock(1, win));
	if (o->sync == OSU_SYNC_FENCE)
		OSU_MPI(MPI_Win_fence(MPI_MODE_NOSUCCEED, win));
	OSU_MPI(MPI_Group_free(&peer));
	OSU_MPI(MPI_Barrier(MPI_COMM_WORLD));
	return t;
}

double osu_rma_latency(const struct osu_opts *opts, MPI_Win win, size_t size,
		       osu_rma_op op, void *ctx)
{
	int both = opts->sync == OSU_SYNC_FENCE || opts->sync == OSU_SYNC_PSCW;
	double t = rma_loop(opts, win, size, 1, both, op, ctx);

	return t * 1e6 / ((both ? 2.0 : 1.0) * osu_iters(opts, size));
}

double osu_rma_bandwidth(const struct osu_opts *opts, MPI_Win win,
			 size_t size, osu_rma_op op, void *ctx)
{
	return rma_loop(opts, win, size, opts->window, 0, op, ctx);
}
