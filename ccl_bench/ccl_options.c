/* Command line of ccl_bench, with nccl-tests' letters where it has them,
 * and the rank and size: from --rank/--nranks, else from the launcher
 * (PMI_RANK/PMI_SIZE under hydra, OMPI_COMM_WORLD_RANK/SIZE under Open
 * MPI's mpirun). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ccl_bench.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ccl_bench [-C coll] [-d float32|bfloat16] [-b min] [-e max]\n"
		"                 [-f factor] [-n iters] [-w warmup] [-c 0|1]\n"
		"                 [--rank R --nranks N]\n"
		"  -C/--coll  %s (default allreduce)\n"
		"  -b, -e     smallest and largest size in bytes, K/M/G suffixes\n"
		"             (default 8 and 256M); -f: step factor (default 2)\n"
		"  -n, -w     iterations and warm-ups at small sizes (default 20, 5;\n"
		"             fewer as sizes grow); -c: check data (default 1)\n"
		"  rank and size: --rank/--nranks, PMI_RANK/PMI_SIZE or\n"
		"  OMPI_COMM_WORLD_RANK/SIZE\n"
		"  unique id: USB4_CCL_ID_FILE=path (rank 0 writes it) or\n"
		"  USB4_CCL_ID_ADDR=host:port (rank 0 listens)\n",
		ccl_coll_names());
}

/* "256M" -> 268435456; 0 on a malformed size */
static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'G': case 'g': v <<= 10; /* fall through */
	case 'M': case 'm': v <<= 10; /* fall through */
	case 'K': case 'k': v <<= 10; end++; break;
	default: break;
	}
	return (*end || end == s) ? 0 : (size_t)v;
}

static int env_int(const char *a, const char *b, int *v)
{
	const char *s = getenv(a);

	if (!s)
		s = getenv(b);
	if (!s)
		return 0;
	*v = atoi(s);
	return 1;
}

static int rank_from_env(struct ccl_opts *o)
{
	if (o->rank < 0)
		env_int("PMI_RANK", "OMPI_COMM_WORLD_RANK", &o->rank);
	if (o->nranks < 0)
		env_int("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", &o->nranks);
	if (o->nranks < 1 || o->rank < 0 || o->rank >= o->nranks) {
		fprintf(stderr, "ccl_bench: no valid rank/size: give --rank and "
			"--nranks or run under hydra or mpirun\n");
		return -1;
	}
	return 0;
}

static const struct option long_opts[] = {
	{ "coll", required_argument, NULL, 'C' },
	{ "rank", required_argument, NULL, 'R' },
	{ "nranks", required_argument, NULL, 'N' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_one(struct ccl_opts *o, int c, const char *arg)
{
	switch (c) {
	case 'C': return (o->coll = ccl_coll_find(arg)) ? 0 : -1;
	case 'd': return (o->dtype = ccl_dtype_find(arg)) ? 0 : -1;
	case 'b': return (o->min_bytes = parse_size(arg)) ? 0 : -1;
	case 'e': return (o->max_bytes = parse_size(arg)) ? 0 : -1;
	case 'f': o->step_factor = (size_t)atol(arg); return o->step_factor > 1 ? 0 : -1;
	case 'n': o->iters = atoi(arg); return o->iters > 0 ? 0 : -1;
	case 'w': o->warmup = atoi(arg); return o->warmup >= 0 ? 0 : -1;
	case 'c': o->check = atoi(arg); return 0;
	case 'R': o->rank = atoi(arg); return 0;
	case 'N': o->nranks = atoi(arg); return 0;
	default: return -1;
	}
}

int ccl_opts_parse(struct ccl_opts *o, int argc, char **argv)
{
	int c;

	*o = (struct ccl_opts){ ccl_coll_find("allreduce"),
		ccl_dtype_find("float32"), 8, (size_t)256 << 20, 2, 20, 5, 1,
		-1, -1 };
	while ((c = getopt_long(argc, argv, "C:d:b:e:f:n:w:c:h", long_opts,
				NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (parse_one(o, c, optarg)) {
			fprintf(stderr, "ccl_bench: bad option -%c %s\n", c,
				optarg ? optarg : "");
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc || o->min_bytes > o->max_bytes) {
		usage(stderr);
		return -1;
	}
	return rank_from_env(o);
}
