/* The fixed output format of ccl_bench (python/usb4fabric/ccl_parse.py):
 * '#' lines are comments; one row per size; the footer sums up. */
#include <stdio.h>

#include "ccl_bench.h"

static void library_version(int *major, int *minor, int *patch)
{
	int code = 0;

	*major = *minor = *patch = 0;
	if (onecclGetVersion(&code) == onecclSuccess)
		onecclExtractVersionComponents(code, major, minor, patch);
}

void ccl_print_header(const struct ccl_opts *o)
{
	int major, minor, patch;

	library_version(&major, &minor, &patch);
	printf("# usb4 ccl_bench: %s dtype=%s ranks=%d library=oneCCL %d.%d.%d\n",
	       o->coll->name, o->dtype->name, o->nranks, major, minor, patch);
	printf("# %13s %10s %10s %12s %12s %7s\n", "size(B)", "count",
	       "time(us)", "algbw(GB/s)", "busbw(GB/s)", "errors");
	fflush(stdout);
}

void ccl_print_row(const struct ccl_result *r)
{
	printf("%15zu %10zu %10.2f %12.4f %12.4f %7llu\n", r->bytes, r->count,
	       r->usec, r->algbw, r->busbw, (unsigned long long)r->errors);
	fflush(stdout);
}

void ccl_print_footer(double avg_busbw, uint64_t errors)
{
	printf("# avg busbw (GB/s): %.4f   errors: %llu\n", avg_busbw,
	       (unsigned long long)errors);
	fflush(stdout);
}
