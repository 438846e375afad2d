/*
 * pt2pt.c - ping-pong latency, streaming bandwidth and message ordering.
 *
 * Ranks pair up as (0,1), (2,3), ...; the even rank of a pair leads.  Every
 * size from 0 B to 4 MiB is exchanged, so both the eager and the rendezvous
 * protocol run, and every received byte is checked.  Rank 0 prints its
 * timings for information; only the data checks decide pass or fail.
 */
#include "mpitest.h"

enum { TAG_PING = 1, TAG_PONG = 2, TAG_STREAM = 3, TAG_ACK = 4,
       TAG_ORDER = 5, TAG_GO = 6 };

enum { STREAM_WINDOW = 8, STREAM_WINDOW_LARGE = 4, STREAM_ROUNDS = 2 };

static int iterations(size_t size)
{
	return size <= 65536 ? 10 : 2;
}

static void pingpong(int rank, int peer, uint8_t *buf)
{
	int lead = rank < peer;

	for (size_t s = 0; s < MT_NSIZES; s++) {
		size_t len = mt_sizes[s];
		int iters = iterations(len);
		MPI_Status st;
		double t0 = MPI_Wtime();

		for (int it = 0; it < iters; it++) {
			uint32_t ping = mt_seed(lead ? rank : peer, lead ? peer : rank, TAG_PING, len, it);
			uint32_t pong = mt_seed(lead ? peer : rank, lead ? rank : peer, TAG_PONG, len, it);

			if (lead) {
				mt_fill(buf, len, ping);
				MT_MPI(MPI_Send(buf, (int)len, MPI_BYTE, peer, TAG_PING, MPI_COMM_WORLD));
				memset(buf, 0, len);
				MT_MPI(MPI_Recv(buf, (int)len, MPI_BYTE, peer, TAG_PONG, MPI_COMM_WORLD, &st));
				mt_check_status(&st, peer, TAG_PONG, len, "pingpong pong");
				mt_verify(buf, len, pong, "pingpong pong", peer);
			} else {
				memset(buf, 0, len);
				MT_MPI(MPI_Recv(buf, (int)len, MPI_BYTE, peer, TAG_PING, MPI_COMM_WORLD, &st));
				mt_check_status(&st, peer, TAG_PING, len, "pingpong ping");
				mt_verify(buf, len, ping, "pingpong ping", peer);
				mt_fill(buf, len, pong);
				MT_MPI(MPI_Send(buf, (int)len, MPI_BYTE, peer, TAG_PONG, MPI_COMM_WORLD));
			}
		}
		if (rank == 0)
			printf("pingpong %8zu B  %10.2f us\n", len,
			       (MPI_Wtime() - t0) * 1e6 / (2.0 * iters));
	}
}

/* One window of back-to-back messages on one tag; checks arrival order. */
static void stream_window(int rank, int peer, uint8_t **bufs, size_t len,
			  int window, int round)
{
	MPI_Request req[STREAM_WINDOW];
	MPI_Status st[STREAM_WINDOW];
	int lead = rank < peer;
	int src = lead ? rank : peer;
	int dst = lead ? peer : rank;

	for (int w = 0; w < window; w++) {
		uint32_t seed = mt_seed(src, dst, TAG_STREAM, len, round * STREAM_WINDOW + w);

		if (lead) {
			mt_fill(bufs[w], len, seed);
			MT_MPI(MPI_Isend(bufs[w], (int)len, MPI_BYTE, peer, TAG_STREAM, MPI_COMM_WORLD, &req[w]));
		} else {
			memset(bufs[w], 0, len);
			MT_MPI(MPI_Irecv(bufs[w], (int)len, MPI_BYTE, peer, TAG_STREAM, MPI_COMM_WORLD, &req[w]));
		}
	}
	MT_MPI(MPI_Waitall(window, req, st));
	if (lead) {
		MT_MPI(MPI_Recv(NULL, 0, MPI_BYTE, peer, TAG_ACK, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
		return;
	}
	for (int w = 0; w < window; w++) {
		mt_check_status(&st[w], peer, TAG_STREAM, len, "stream");
		mt_verify(bufs[w], len, mt_seed(src, dst, TAG_STREAM, len, round * STREAM_WINDOW + w),
			  "stream (message order or data)", peer);
	}
	MT_MPI(MPI_Send(NULL, 0, MPI_BYTE, peer, TAG_ACK, MPI_COMM_WORLD));
}

static void bandwidth(int rank, int peer, uint8_t **bufs)
{
	for (size_t s = 0; s < MT_NSIZES; s++) {
		size_t len = mt_sizes[s];
		int window = len >= (1u << 20) ? STREAM_WINDOW_LARGE : STREAM_WINDOW;
		double t0 = MPI_Wtime();

		for (int round = 0; round < STREAM_ROUNDS; round++)
			stream_window(rank, peer, bufs, len, window, round);
		if (rank == 0)
			printf("bandwidth %8zu B  %10.2f MB/s\n", len,
			       (double)len * window * STREAM_ROUNDS / (MPI_Wtime() - t0) / 1e6);
	}
}

/*
 * Mixed sizes on one tag must match in send order (MPI non-overtaking),
 * whether the receives are posted first or the messages arrive unexpected.
 */
static const size_t order_sizes[] = { 4u << 20, 1, 65536, 0, 1u << 20, 8, 300000, 64 };
#define NORDER (sizeof(order_sizes) / sizeof(order_sizes[0]))

static void ordering(int rank, int peer, uint8_t **bufs, int unexpected)
{
	MPI_Request req[NORDER];
	MPI_Status st[NORDER];
	int lead = rank < peer;
	int src = lead ? rank : peer;
	int dst = lead ? peer : rank;

	if (lead) {
		if (!unexpected)
			MT_MPI(MPI_Recv(NULL, 0, MPI_BYTE, peer, TAG_GO, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
		for (size_t m = 0; m < NORDER; m++) {
			mt_fill(bufs[m], order_sizes[m], mt_seed(src, dst, TAG_ORDER, order_sizes[m], (int)m));
			MT_MPI(MPI_Isend(bufs[m], (int)order_sizes[m], MPI_BYTE, peer, TAG_ORDER, MPI_COMM_WORLD, &req[m]));
		}
		if (unexpected)
			MT_MPI(MPI_Send(NULL, 0, MPI_BYTE, peer, TAG_GO, MPI_COMM_WORLD));
		MT_MPI(MPI_Waitall(NORDER, req, MPI_STATUSES_IGNORE));
		return;
	}
	if (unexpected)
		MT_MPI(MPI_Recv(NULL, 0, MPI_BYTE, peer, TAG_GO, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
	for (size_t m = 0; m < NORDER; m++) {
		memset(bufs[m], 0, MT_MAX_SIZE);
		MT_MPI(MPI_Irecv(bufs[m], MT_MAX_SIZE, MPI_BYTE, peer, TAG_ORDER, MPI_COMM_WORLD, &req[m]));
	}
	if (!unexpected)
		MT_MPI(MPI_Send(NULL, 0, MPI_BYTE, peer, TAG_GO, MPI_COMM_WORLD));
	MT_MPI(MPI_Waitall(NORDER, req, st));
	for (size_t m = 0; m < NORDER; m++) {
		mt_check_status(&st[m], peer, TAG_ORDER, order_sizes[m], "ordering");
		mt_verify(bufs[m], order_sizes[m], mt_seed(src, dst, TAG_ORDER, order_sizes[m], (int)m),
			  unexpected ? "ordering (unexpected)" : "ordering (pre-posted)", peer);
	}
}

int main(int argc, char **argv)
{
	uint8_t *bufs[NORDER > STREAM_WINDOW ? NORDER : STREAM_WINDOW];
	int nbufs = (int)(sizeof(bufs) / sizeof(bufs[0]));
	int rank, peer;

	MPI_Init(&argc, &argv);
	rank = mt_rank();
	peer = rank ^ 1;
	for (int i = 0; i < nbufs; i++)
		bufs[i] = mt_alloc(MT_MAX_SIZE);

	if (peer < mt_size()) {
		pingpong(rank, peer, bufs[0]);
		bandwidth(rank, peer, bufs);
		ordering(rank, peer, bufs, 0);
		ordering(rank, peer, bufs, 1);
	}

	for (int i = 0; i < nbufs; i++)
		free(bufs[i]);
	mt_ok("pt2pt");
	MPI_Finalize();
	return 0;
}
