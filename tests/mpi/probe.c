/*
 * probe.c - MPI_Probe, MPI_Iprobe, MPI_Mprobe and MPI_Improbe.
 *
 * Ranks pair up as (0,1), (2,3), ...; the odd rank sends, the even rank
 * probes.  Checks that a probe reports the right source, tag and size
 * without consuming the message, that a matched probe claims exactly one
 * message, that Iprobe says "no" when nothing matches, and, at the end,
 * that rank 0 can probe messages from every rank with MPI_ANY_SOURCE.
 */
#include "mpitest.h"

enum { TAG_BASE = 100, TAG_NEVER = 999, TAG_GO = 7, TAG_FANIN = 50 };

static const size_t probe_sizes[] = { 0, 1, 100, 8192, 65536, 1u << 20, 4u << 20 };
#define NPROBE (sizeof(probe_sizes) / sizeof(probe_sizes[0]))

static void send_pattern(uint8_t *buf, size_t len, int src, int dst, int tag, int iter)
{
	mt_fill(buf, len, mt_seed(src, dst, tag, len, iter));
	MT_MPI(MPI_Send(buf, (int)len, MPI_BYTE, dst, tag, MPI_COMM_WORLD));
}

/* Size a buffer from the probed status, then receive and verify. */
static void recv_probed(const MPI_Status *st, int peer, int tag, size_t len,
			int iter, const char *what)
{
	int count;
	uint8_t *buf;
	MPI_Status rst;

	mt_check_status(st, peer, tag, len, what);
	MPI_Get_count(st, MPI_BYTE, &count);
	buf = mt_alloc((size_t)count);
	MT_MPI(MPI_Recv(buf, count, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, MPI_COMM_WORLD, &rst));
	mt_check_status(&rst, peer, tag, len, what);
	mt_verify(buf, len, mt_seed(peer, mt_rank(), tag, len, iter), what, peer);
	free(buf);
}

/* Blocking probe, twice (a probe does not consume), then receive. */
static void probe_blocking(int rank, int peer, uint8_t *buf, size_t len)
{
	MPI_Status st;

	if (rank > peer) {
		send_pattern(buf, len, rank, peer, TAG_BASE, 0);
		return;
	}
	MT_MPI(MPI_Probe(peer, TAG_BASE, MPI_COMM_WORLD, &st));
	mt_check_status(&st, peer, TAG_BASE, len, "Probe");
	MT_MPI(MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
	recv_probed(&st, peer, TAG_BASE, len, 0, "Probe twice");
}

/* Iprobe polls until the message is there; a non-matching tag stays "no". */
static void probe_nonblocking(int rank, int peer, uint8_t *buf, size_t len)
{
	MPI_Status st;
	int flag = 0;

	if (rank > peer) {
		send_pattern(buf, len, rank, peer, TAG_BASE + 1, 1);
		return;
	}
	while (!flag)
		MT_MPI(MPI_Iprobe(peer, TAG_BASE + 1, MPI_COMM_WORLD, &flag, &st));
	MT_MPI(MPI_Iprobe(peer, TAG_NEVER, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE));
	MT_CHECK(!flag, "Iprobe matched tag %d that was never sent", TAG_NEVER);
	recv_probed(&st, peer, TAG_BASE + 1, len, 1, "Iprobe");
}

/* Mprobe/Mrecv and Improbe/Imrecv on one size. */
static void probe_matched(int rank, int peer, uint8_t *buf, size_t len)
{
	MPI_Message msg;
	MPI_Request req;
	MPI_Status st;
	int flag = 0;

	if (rank > peer) {
		send_pattern(buf, len, rank, peer, TAG_BASE + 2, 2);
		send_pattern(buf, len, rank, peer, TAG_BASE + 3, 3);
		return;
	}
	MT_MPI(MPI_Mprobe(peer, TAG_BASE + 2, MPI_COMM_WORLD, &msg, &st));
	mt_check_status(&st, peer, TAG_BASE + 2, len, "Mprobe");
	memset(buf, 0, len);
	MT_MPI(MPI_Mrecv(buf, (int)len, MPI_BYTE, &msg, &st));
	MT_CHECK(msg == MPI_MESSAGE_NULL, "Mrecv did not reset the message handle");
	mt_check_status(&st, peer, TAG_BASE + 2, len, "Mrecv");
	mt_verify(buf, len, mt_seed(peer, rank, TAG_BASE + 2, len, 2), "Mrecv", peer);

	while (!flag)
		MT_MPI(MPI_Improbe(peer, TAG_BASE + 3, MPI_COMM_WORLD, &flag, &msg, &st));
	mt_check_status(&st, peer, TAG_BASE + 3, len, "Improbe");
	memset(buf, 0, len);
	MT_MPI(MPI_Imrecv(buf, (int)len, MPI_BYTE, &msg, &req));
	MT_MPI(MPI_Wait(&req, &st));
	mt_check_status(&st, peer, TAG_BASE + 3, len, "Imrecv");
	mt_verify(buf, len, mt_seed(peer, rank, TAG_BASE + 3, len, 3), "Imrecv", peer);
}

/*
 * A message claimed by Mprobe belongs to its handle: the three messages
 * below arrive as tags 11, 12, 13; Mprobe claims 13, after which two
 * MPI_ANY_TAG receives must get 11 then 12, and Mrecv gets 13.
 */
static void probe_claim(int rank, int peer, uint8_t *buf)
{
	const size_t len = 4096;
	MPI_Message msg;
	MPI_Status st;

	if (rank > peer) {
		MPI_Request req[3];

		/* Nonblocking: tag 11 is only received after 13 was probed. */
		for (int t = 11; t <= 13; t++) {
			mt_fill(buf + (t - 11) * len, len, mt_seed(rank, peer, t, len, t));
			MT_MPI(MPI_Isend(buf + (t - 11) * len, (int)len, MPI_BYTE, peer, t,
					 MPI_COMM_WORLD, &req[t - 11]));
		}
		MT_MPI(MPI_Waitall(3, req, MPI_STATUSES_IGNORE));
		MT_MPI(MPI_Recv(NULL, 0, MPI_BYTE, peer, TAG_GO, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
		return;
	}
	MT_MPI(MPI_Mprobe(peer, 13, MPI_COMM_WORLD, &msg, &st));
	mt_check_status(&st, peer, 13, len, "Mprobe claim");
	for (int t = 11; t <= 12; t++) {
		memset(buf, 0, len);
		MT_MPI(MPI_Recv(buf, (int)len, MPI_BYTE, peer, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
		mt_check_status(&st, peer, t, len, "receive after Mprobe claim");
		mt_verify(buf, len, mt_seed(peer, rank, t, len, t), "receive after Mprobe claim", peer);
	}
	memset(buf, 0, len);
	MT_MPI(MPI_Mrecv(buf, (int)len, MPI_BYTE, &msg, &st));
	mt_check_status(&st, peer, 13, len, "Mrecv claimed");
	mt_verify(buf, len, mt_seed(peer, rank, 13, len, 13), "Mrecv claimed", peer);
	MT_MPI(MPI_Send(NULL, 0, MPI_BYTE, peer, TAG_GO, MPI_COMM_WORLD));
}

/* Every other rank sends to 0; rank 0 probes with MPI_ANY_SOURCE. */
static void probe_fanin(int rank, int nranks, uint8_t *buf)
{
	const size_t len = 65536;
	int seen[64] = { 0 };
	MPI_Status st;

	if (rank != 0) {
		send_pattern(buf, len, rank, 0, TAG_FANIN, 0);
		return;
	}
	for (int n = 1; n < nranks; n++) {
		int src;

		MT_MPI(MPI_Probe(MPI_ANY_SOURCE, TAG_FANIN, MPI_COMM_WORLD, &st));
		src = st.MPI_SOURCE;
		MT_CHECK(src > 0 && src < nranks && src < 64 && !seen[src],
			 "Probe(ANY_SOURCE) reported bad or repeated source %d", src);
		seen[src] = 1;
		recv_probed(&st, src, TAG_FANIN, len, 0, "Probe ANY_SOURCE");
	}
}

int main(int argc, char **argv)
{
	uint8_t *buf;
	int rank, peer;

	MPI_Init(&argc, &argv);
	rank = mt_rank();
	peer = rank ^ 1;
	buf = mt_alloc(MT_MAX_SIZE);

	if (peer < mt_size()) {
		for (size_t s = 0; s < NPROBE; s++) {
			probe_blocking(rank, peer, buf, probe_sizes[s]);
			probe_nonblocking(rank, peer, buf, probe_sizes[s]);
			probe_matched(rank, peer, buf, probe_sizes[s]);
		}
		probe_claim(rank, peer, buf);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	probe_fanin(rank, mt_size(), buf);

	free(buf);
	mt_ok("probe");
	MPI_Finalize();
	return 0;
}
