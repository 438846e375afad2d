/*
 * osu_bw - point-to-point unidirectional bandwidth (OSU method).
 *
 * Per iteration rank 0 posts a window (-W, default 64) of MPI_Isend and
 * rank 1 the matching MPI_Irecv; when rank 1 has all of them it sends a
 * 4-byte reply, which closes the iteration. MB/s with MB = 1e6 bytes.
 * -C adds a '# cpu' comment line after each row: both ranks' CPU seconds
 * and the machine's busy time over the timed loop (osu_cpu.h).
 */
#include "osu_common.h"
#include "osu_cpu.h"

#include <string.h>

#define TAG 100
#define TAG_REPLY 101

static const struct osu_spec spec = {
	.name = "osu_bw",
	.title = "MPI Bandwidth Test",
	.kind = OSU_KIND_BW,
	.procs = OSU_PROCS_TWO,
	.min_size = 1,
	.max_size = 1 << 22,
	.iters = 100, .iters_large = 20,
	.skip = 10, .skip_large = 2,
	.cpu_usage = 1,
};

/* MB/s of one size; the timed loop's CPU marks in *cpu_start, *cpu_end. */
static double stream(const struct osu_opts *o, char *sbuf, char *rbuf,
		     size_t size, MPI_Request *reqs,
		     struct osu_cpu_mark *cpu_start, struct osu_cpu_mark *cpu_end)
{
	int iters = osu_iters(o, size), skip = osu_skip(o, size);
	int reply = 0;
	double t0 = 0.0, t;

	OSU_MPI(MPI_Barrier(MPI_COMM_WORLD));
	for (int i = 0; i < iters + skip; i++) {
		if (i == skip) {
			if (o->cpu)
				osu_cpu_mark(cpu_start);
			t0 = MPI_Wtime();
		}
		if (o->rank == 0) {
			for (int w = 0; w < o->window; w++)
				OSU_MPI(MPI_Isend(sbuf, (int)size, MPI_CHAR, 1,
						  TAG, MPI_COMM_WORLD, &reqs[w]));
			OSU_MPI(MPI_Waitall(o->window, reqs,
					    MPI_STATUSES_IGNORE));
			OSU_MPI(MPI_Recv(&reply, 1, MPI_INT, 1, TAG_REPLY,
					 MPI_COMM_WORLD, MPI_STATUS_IGNORE));
		} else {
			for (int w = 0; w < o->window; w++)
				OSU_MPI(MPI_Irecv(rbuf, (int)size, MPI_CHAR, 0,
						  TAG, MPI_COMM_WORLD, &reqs[w]));
			OSU_MPI(MPI_Waitall(o->window, reqs,
					    MPI_STATUSES_IGNORE));
			OSU_MPI(MPI_Send(&reply, 1, MPI_INT, 0, TAG_REPLY,
					 MPI_COMM_WORLD));
		}
	}
	t = MPI_Wtime() - t0;
	if (o->cpu)
		osu_cpu_mark(cpu_end);
	return (double)size * o->window * iters / t / 1e6;
}

int main(int argc, char **argv)
{
	struct osu_opts o;
	enum osu_start_result start = osu_start(&argc, &argv, &spec, &o);
	MPI_Request reqs[OSU_WINDOW_MAX];
	char *sbuf, *rbuf;
	int errors = 0;

	if (start != OSU_RUN)
		return osu_exit_code(start);
	sbuf = osu_alloc(o.max_size);
	rbuf = osu_alloc(o.max_size);
	osu_print_header(&o);
	for (size_t size = o.min_size; size <= o.max_size;
	     size = osu_next_size(size)) {
		struct osu_cpu_mark cpu_start, cpu_end;
		int bad = 0;
		double bw;

		osu_fill(sbuf, size, (unsigned)size);
		memset(rbuf, 0, size);
		bw = stream(&o, sbuf, rbuf, size, reqs, &cpu_start, &cpu_end);
		if (o.validate && o.rank == 1)
			bad = osu_check(rbuf, size, (unsigned)size,
					"received message") != 0;
		bad = osu_sum_errors(bad, MPI_COMM_WORLD);
		errors += bad;
		osu_print_value(&o, size, bw, bad);
		if (o.cpu)
			osu_cpu_report(o.rank, size,
				       (double)size * o.window *
				       osu_iters(&o, size),
				       &cpu_start, &cpu_end);
	}
	osu_free(sbuf);
	osu_free(rbuf);
	return osu_finish(&o, o.rank == 0 ? errors : 0);
}
