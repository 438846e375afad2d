/*
 * osu_cpu.c - CPU seconds over a timed loop, per rank and for the machine
 * (see osu_cpu.h).
 */
#include "osu_cpu.h"
#include "osu_common.h"

#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

static double timeval_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double self_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return -1.0;
	return timeval_s(ru.ru_utime) + timeval_s(ru.ru_stime);
}

/* The aggregate "cpu" line: user nice system idle iowait irq softirq steal,
 * in clock ticks. */
static struct osu_machine_time machine_time(void)
{
	struct osu_machine_time t = { 0.0, 0.0, 0 };
	unsigned long long v[8] = { 0 };
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return t;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 7 || hz <= 0)
		return t;
	t.busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / (double)hz;
	t.irq = (double)(v[5] + v[6]) / (double)hz;
	t.valid = 1;
	return t;
}

void osu_cpu_mark(struct osu_cpu_mark *mark)
{
	mark->wall = MPI_Wtime();
	mark->self = self_seconds();
	mark->machine = machine_time();
}

void osu_cpu_report(int rank, size_t size, double bytes,
		    const struct osu_cpu_mark *start,
		    const struct osu_cpu_mark *end)
{
	double mine = end->self - start->self, both[2] = { 0.0, 0.0 };
	int machine = start->machine.valid && end->machine.valid;

	OSU_MPI(MPI_Gather(&mine, 1, MPI_DOUBLE, both, 1, MPI_DOUBLE, 0,
			   MPI_COMM_WORLD));
	if (rank != 0)
		return;
	printf("# cpu size=%zu bytes=%.0f wall_s=%.6f rank0_s=%.6f "
	       "rank1_s=%.6f machine_busy_s=%.4f machine_irq_s=%.4f\n",
	       size, bytes, end->wall - start->wall, both[0], both[1],
	       machine ? end->machine.busy - start->machine.busy : -1.0,
	       machine ? end->machine.irq - start->machine.irq : -1.0);
	fflush(stdout);
}
