/*
 * collectives.c - MPI_Bcast, MPI_Allreduce, MPI_Alltoall and MPI_Barrier.
 *
 * Over pml cm every collective is built from the fabric's tagged messages,
 * so these exercise many-to-many traffic, ANY_SOURCE-free matching on
 * internal tags and, at the large sizes, concurrent rendezvous transfers.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "mpitest.h"

#include <time.h>

enum { TAG_COLL = 0x7fff }; /* seeds only; collectives use no user tags */

static const size_t bcast_sizes[] = { 0, 1, 1000, 8192, 65536, 1u << 20, 4u << 20 };
#define NBCAST (sizeof(bcast_sizes) / sizeof(bcast_sizes[0]))

/* Counts of int, up to 4 MiB. */
static const int reduce_counts[] = { 1, 250, 2048, 16384, 1 << 20 };
#define NREDUCE (sizeof(reduce_counts) / sizeof(reduce_counts[0]))

/* Bytes per destination block, up to 1 MiB (4 MiB per rank at 4 ranks). */
static const size_t alltoall_blocks[] = { 0, 1, 1000, 16384, 65536, 1u << 20 };
#define NALLTOALL (sizeof(alltoall_blocks) / sizeof(alltoall_blocks[0]))

static void bcast(int rank, int nranks, uint8_t *buf)
{
	for (size_t s = 0; s < NBCAST; s++) {
		size_t len = bcast_sizes[s];

		for (int root = 0; root < nranks; root++) {
			uint32_t seed = mt_seed(root, 0, TAG_COLL, len, 0);

			if (rank == root)
				mt_fill(buf, len, seed);
			else
				memset(buf, 0, len);
			MT_MPI(MPI_Bcast(buf, (int)len, MPI_BYTE, root, MPI_COMM_WORLD));
			mt_verify(buf, len, seed, "Bcast", root);
		}
	}
}

/* SUM of ints and MAX of doubles, with every rank contributing. */
static void allreduce(int rank, int nranks, int *ibuf, double *dbuf)
{
	for (size_t s = 0; s < NREDUCE; s++) {
		int count = reduce_counts[s];
		long long ranksum = (long long)nranks * (nranks + 1) / 2;

		for (int i = 0; i < count; i++) {
			ibuf[i] = (rank + 1) * (i % 1000 + 1);
			dbuf[i] = (double)((rank * 7919 + i) % (nranks * 13 + 1));
		}
		MT_MPI(MPI_Allreduce(MPI_IN_PLACE, ibuf, count, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
		MT_MPI(MPI_Allreduce(MPI_IN_PLACE, dbuf, count, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
		for (int i = 0; i < count; i++) {
			double want = 0;

			MT_CHECK(ibuf[i] == (int)(ranksum * (i % 1000 + 1)),
				 "Allreduce SUM count %d, element %d: got %d want %lld",
				 count, i, ibuf[i], ranksum * (i % 1000 + 1));
			for (int r = 0; r < nranks; r++) {
				double v = (double)((r * 7919 + i) % (nranks * 13 + 1));

				want = v > want ? v : want;
			}
			MT_CHECK(dbuf[i] == want, "Allreduce MAX count %d, element %d: got %g want %g",
				 count, i, dbuf[i], want);
		}
	}
}

static void alltoall(int rank, int nranks, uint8_t *sbuf, uint8_t *rbuf)
{
	for (size_t s = 0; s < NALLTOALL; s++) {
		size_t block = alltoall_blocks[s];

		for (int dst = 0; dst < nranks; dst++)
			mt_fill(sbuf + dst * block, block, mt_seed(rank, dst, TAG_COLL, block, 1));
		memset(rbuf, 0, block * nranks);
		MT_MPI(MPI_Alltoall(sbuf, (int)block, MPI_BYTE, rbuf, (int)block, MPI_BYTE,
				    MPI_COMM_WORLD));
		for (int src = 0; src < nranks; src++)
			mt_verify(rbuf + src * block, block, mt_seed(src, rank, TAG_COLL, block, 1),
				  "Alltoall", src);
	}
}

/*
 * The last rank arrives LATE_SEC late.  Nobody may leave the barrier before
 * it arrived, so every rank sees nearly LATE_SEC pass; the slack absorbs
 * ranks leaving the previous barrier at different times when oversubscribed
 * (a broken barrier lets the others out after microseconds).
 */
static void barrier(int rank, int nranks)
{
	const double late = 0.3, slack = 0.15;
	struct timespec ts = { 0, (long)(late * 1e9) };
	double t0, waited;

	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	t0 = MPI_Wtime();
	if (rank == nranks - 1)
		nanosleep(&ts, NULL);
	MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
	waited = MPI_Wtime() - t0;
	MT_CHECK(waited >= late - slack,
		 "left the barrier after %.3f s, before the last rank arrived (%.3f s late)",
		 waited, late);
	for (int i = 0; i < 20; i++)
		MT_MPI(MPI_Barrier(MPI_COMM_WORLD));
}

int main(int argc, char **argv)
{
	int rank, nranks;
	uint8_t *sbuf, *rbuf;
	int *ibuf;
	double *dbuf;

	MPI_Init(&argc, &argv);
	rank = mt_rank();
	nranks = mt_size();
	sbuf = mt_alloc((size_t)nranks * (1u << 20) + MT_MAX_SIZE);
	rbuf = mt_alloc((size_t)nranks * (1u << 20) + MT_MAX_SIZE);
	ibuf = mt_alloc(sizeof(int) * (1u << 20));
	dbuf = mt_alloc(sizeof(double) * (1u << 20));

	barrier(rank, nranks);
	bcast(rank, nranks, sbuf);
	allreduce(rank, nranks, ibuf, dbuf);
	alltoall(rank, nranks, sbuf, rbuf);
	barrier(rank, nranks);

	free(sbuf);
	free(rbuf);
	free(ibuf);
	free(dbuf);
	mt_ok("collectives");
	MPI_Finalize();
	return 0;
}
