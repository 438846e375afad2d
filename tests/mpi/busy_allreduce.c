/*
 * busy_allreduce.c - two MPI_Allreduce calls with a long compute phase on
 * one rank between them, as a training job runs between collectives.
 *
 *   busy_allreduce [SECONDS]   (default 60)
 *
 * The last rank computes for SECONDS (a busy CPU loop, no sleep and no MPI
 * call) after the first allreduce; the others go straight into the second
 * and wait there for it.  Its peers must not take it for dead meanwhile
 * (the provider's peer timeout is 5 s): both allreduces complete and their
 * sums are checked.  Rank 0 prints "OK busy_allreduce".
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "mpitest.h"

#include <time.h>

#define COUNT	(256 * 1024)	/* ints: 1 MiB, a rendezvous across hosts */

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Works the CPU for secs without calling MPI. */
static double compute(double secs)
{
	volatile unsigned long long acc = 1;
	double t0 = now_s();

	while (now_s() - t0 < secs)
		for (int i = 0; i < 1000000; i++)
			acc = acc * 6364136223846793005ull + 1ull;
	return now_s() - t0;
}

static void allreduce(int rank, int nranks, int *buf, int round)
{
	long long ranksum = (long long)nranks * (nranks + 1) / 2;

	for (int i = 0; i < COUNT; i++)
		buf[i] = (rank + 1) * (i % 1000 + round);
	MT_MPI(MPI_Allreduce(MPI_IN_PLACE, buf, COUNT, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
	for (int i = 0; i < COUNT; i++)
		MT_CHECK(buf[i] == (int)(ranksum * (i % 1000 + round)),
			 "Allreduce round %d: element %d = %d", round, i, buf[i]);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 60, busy = 0, t0;
	int rank, nranks, *buf;

	MPI_Init(&argc, &argv);
	rank = mt_rank();
	nranks = mt_size();
	buf = malloc(COUNT * sizeof(int));
	MT_CHECK(buf != NULL, "no memory");
	allreduce(rank, nranks, buf, 1);
	if (rank == nranks - 1)
		busy = compute(secs);
	t0 = now_s();
	allreduce(rank, nranks, buf, 2);
	printf("rank %d: busy %.1f s, second allreduce %.1f s\n", rank, busy,
	       now_s() - t0);
	fflush(stdout);
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 0)
		printf("OK busy_allreduce\n");
	free(buf);
	MPI_Finalize();
	return 0;
}
