/*
 * thread_multiple.c - several threads per rank sending and receiving at once.
 *
 * MPI_Init_thread must grant MPI_THREAD_MULTIPLE.  Thread t of every rank
 * exchanges messages with every other rank on its own tag, so concurrent
 * sends, receives and completions of all sizes (eager and rendezvous)
 * cross in the fabric.  Odd threads use synchronous sends, and every
 * thread finishes with a Probe/Recv pair to exercise the matching queues
 * under concurrency.  Every byte is verified.
 *
 * The main thread reaches every peer once before the workers start: Open
 * MPI 5 sets a peer up on first contact (mtl ofi fetches its address with
 * PMIx_Get), and when several threads make first contact at once, some of
 * those gets never return, whatever the provider (see connect_all_peers).
 * What this program tests is traffic, so first contact is made before the
 * threads exist.
 */
#include "mpitest.h"

#include <pthread.h>

enum { NTHREADS = 4, ITERS = 3, TAG_BASE = 1000, MAX_RANKS = 16 };

static const size_t tm_sizes[] = { 0, 64, 8192, 65536, 1u << 20 };
#define NTM (sizeof(tm_sizes) / sizeof(tm_sizes[0]))

struct worker {
	pthread_t thread;
	int id;
	int rank;
	int nranks;
};

/* One round: receive from and send to every other rank on this thread's tag. */
static void exchange(const struct worker *w, uint8_t **sbuf, uint8_t **rbuf,
		     size_t len, int iter)
{
	MPI_Request req[2 * MAX_RANKS];
	MPI_Status st[2 * MAX_RANKS];
	int tag = TAG_BASE + w->id;
	int n = 0;

	for (int p = 0; p < w->nranks; p++) {
		if (p == w->rank)
			continue;
		memset(rbuf[p], 0, len);
		MT_MPI(MPI_Irecv(rbuf[p], (int)len, MPI_BYTE, p, tag, MPI_COMM_WORLD, &req[n++]));
	}
	for (int p = 0; p < w->nranks; p++) {
		if (p == w->rank)
			continue;
		mt_fill(sbuf[p], len, mt_seed(w->rank, p, tag, len, iter));
		if (w->id % 2)
			MT_MPI(MPI_Issend(sbuf[p], (int)len, MPI_BYTE, p, tag, MPI_COMM_WORLD, &req[n++]));
		else
			MT_MPI(MPI_Isend(sbuf[p], (int)len, MPI_BYTE, p, tag, MPI_COMM_WORLD, &req[n++]));
	}
	MT_MPI(MPI_Waitall(n, req, st));
	n = 0;
	for (int p = 0; p < w->nranks; p++) {
		if (p == w->rank)
			continue;
		mt_check_status(&st[n++], p, tag, len, "thread exchange");
		mt_verify(rbuf[p], len, mt_seed(p, w->rank, tag, len, iter), "thread exchange", p);
	}
}

/* Each peer sends one message; this thread probes for it by tag, any source. */
static void probe_round(const struct worker *w, uint8_t **sbuf, uint8_t *rbuf)
{
	const size_t len = 4096;
	int tag = TAG_BASE + NTHREADS + w->id;
	MPI_Request req[MAX_RANKS];
	int n = 0;

	for (int p = 0; p < w->nranks; p++) {
		if (p == w->rank)
			continue;
		mt_fill(sbuf[p], len, mt_seed(w->rank, p, tag, len, 0));
		MT_MPI(MPI_Isend(sbuf[p], (int)len, MPI_BYTE, p, tag, MPI_COMM_WORLD, &req[n++]));
	}
	for (int k = 0; k < w->nranks - 1; k++) {
		MPI_Status st;
		int src;

		MT_MPI(MPI_Probe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &st));
		src = st.MPI_SOURCE;
		memset(rbuf, 0, len);
		MT_MPI(MPI_Recv(rbuf, (int)len, MPI_BYTE, src, tag, MPI_COMM_WORLD, &st));
		mt_check_status(&st, src, tag, len, "thread probe");
		mt_verify(rbuf, len, mt_seed(src, w->rank, tag, len, 0), "thread probe", src);
	}
	MT_MPI(MPI_Waitall(n, req, MPI_STATUSES_IGNORE));
}

/*
 * One message to and from every peer, from the main thread alone, so that
 * the workers never make first contact.  Open MPI 5 (5.0.7 of Debian 13 and
 * 5.0.11 of PyPI) hung here one run in three or so at 4 ranks on 2 hosts,
 * over usb4 and over libfabric's own tcp provider alike: every remaining
 * worker of one rank waited in PMIx_Get (called from ompi_mtl_ofi_add_procs)
 * while that rank's PMIx progress thread sat idle in epoll_wait, and the
 * other ranks polled for the messages that rank never sent.
 * Shifted pairs (send k ahead, receive k behind) cannot deadlock.
 */
static void connect_all_peers(int rank, int nranks)
{
	const int tag = TAG_BASE - 1;

	for (int k = 1; k < nranks; k++) {
		int to = (rank + k) % nranks, from = (rank - k + nranks) % nranks;
		int out = rank, in = -1;
		MPI_Status st;

		MT_MPI(MPI_Sendrecv(&out, 1, MPI_INT, to, tag, &in, 1, MPI_INT, from, tag,
				    MPI_COMM_WORLD, &st));
		MT_CHECK(in == from, "connect: got %d from rank %d", in, from);
	}
}

static void *worker_main(void *arg)
{
	const struct worker *w = arg;
	uint8_t *sbuf[MAX_RANKS], *rbuf[MAX_RANKS];

	for (int p = 0; p < w->nranks; p++) {
		sbuf[p] = mt_alloc(1u << 20);
		rbuf[p] = mt_alloc(1u << 20);
	}
	for (int iter = 0; iter < ITERS; iter++)
		for (size_t s = 0; s < NTM; s++)
			exchange(w, sbuf, rbuf, tm_sizes[s], iter);
	probe_round(w, sbuf, rbuf[0]);
	for (int p = 0; p < w->nranks; p++) {
		free(sbuf[p]);
		free(rbuf[p]);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct worker workers[NTHREADS];
	int provided = MPI_THREAD_SINGLE;

	MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
	MT_CHECK(provided == MPI_THREAD_MULTIPLE,
		 "MPI_Init_thread provided %d, want MPI_THREAD_MULTIPLE (%d)",
		 provided, MPI_THREAD_MULTIPLE);
	MT_CHECK(mt_size() <= MAX_RANKS, "at most %d ranks", MAX_RANKS);
	connect_all_peers(mt_rank(), mt_size());

	for (int t = 0; t < NTHREADS; t++) {
		workers[t] = (struct worker){ .id = t, .rank = mt_rank(), .nranks = mt_size() };
		MT_CHECK(pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) == 0,
			 "pthread_create failed");
	}
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(workers[t].thread, NULL);

	mt_ok("thread_multiple");
	MPI_Finalize();
	return 0;
}
