/*
 * semantics.c - MPI_Ssend, MPI_Cancel of a posted receive, MPI_ANY_SOURCE,
 * MPI_ANY_TAG and MPI_ERR_TRUNCATE.
 *
 * Ranks pair up as (0,1), (2,3), ...; the even rank leads.  The
 * truncation check runs with MPI_ERRORS_RETURN on MPI_COMM_WORLD: the
 * receive must return MPI_ERR_TRUNCATE, fill the buffer up to its size
 * with the first bytes of the message, and write nothing past it.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "mpitest.h"

#include <time.h>

enum { TAG_SSEND = 20, TAG_CTRL = 21, TAG_CANCEL = 22, TAG_ANYSRC = 23,
       TAG_TRUNC = 24, TAG_AFTER = 25 };

/* How long an unmatched MPI_Issend must stay incomplete. */
#define SSEND_HOLD_SEC 0.2

static const size_t sem_sizes[] = { 0, 8, 65536, 4u << 20 };
#define NSEM (sizeof(sem_sizes) / sizeof(sem_sizes[0]))

static void ctrl_send(int peer)
{
	MT_MPI(MPI_Send(NULL, 0, MPI_BYTE, peer, TAG_CTRL, MPI_COMM_WORLD));
}

static void ctrl_recv(int peer)
{
	MT_MPI(MPI_Recv(NULL, 0, MPI_BYTE, peer, TAG_CTRL, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
}

static void nap(void)
{
	struct timespec ts = { 0, 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * A synchronous send must not complete before the receiver matched it: the
 * receiver posts its receive only after the sender saw the Issend stay
 * incomplete for SSEND_HOLD_SEC.
 */
static void ssend(int rank, int peer, uint8_t *buf, size_t len)
{
	MPI_Request req;
	MPI_Status st;
	int done = 0;

	if (rank < peer) {
		double t0 = MPI_Wtime();

		mt_fill(buf, len, mt_seed(rank, peer, TAG_SSEND, len, 0));
		MT_MPI(MPI_Issend(buf, (int)len, MPI_BYTE, peer, TAG_SSEND, MPI_COMM_WORLD, &req));
		while (MPI_Wtime() - t0 < SSEND_HOLD_SEC) {
			MT_MPI(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
			MT_CHECK(!done, "Issend of %zu B completed before the receive was posted", len);
			nap();
		}
		ctrl_send(peer);
		MT_MPI(MPI_Wait(&req, MPI_STATUS_IGNORE));
		/* Blocking Ssend too, received right away. */
		MT_MPI(MPI_Ssend(buf, (int)len, MPI_BYTE, peer, TAG_SSEND, MPI_COMM_WORLD));
		return;
	}
	ctrl_recv(peer);
	for (int n = 0; n < 2; n++) {
		memset(buf, 0, len);
		MT_MPI(MPI_Recv(buf, (int)len, MPI_BYTE, peer, TAG_SSEND, MPI_COMM_WORLD, &st));
		mt_check_status(&st, peer, TAG_SSEND, len, "Ssend");
		mt_verify(buf, len, mt_seed(peer, rank, TAG_SSEND, len, 0), "Ssend", peer);
	}
}

/*
 * Cancel a posted receive that nothing matches; it must report cancelled.
 * A message sent afterwards with that tag must go to a new receive, intact.
 */
static void cancel(int rank, int peer, uint8_t *buf, size_t len)
{
	MPI_Request req;
	MPI_Status st;
	int cancelled = 0;

	if (rank < peer) {
		ctrl_recv(peer);
		mt_fill(buf, len, mt_seed(rank, peer, TAG_CANCEL, len, 1));
		MT_MPI(MPI_Send(buf, (int)len, MPI_BYTE, peer, TAG_CANCEL, MPI_COMM_WORLD));
		return;
	}
	memset(buf, 0xee, len);
	MT_MPI(MPI_Irecv(buf, (int)len, MPI_BYTE, peer, TAG_CANCEL, MPI_COMM_WORLD, &req));
	MT_MPI(MPI_Cancel(&req));
	MT_MPI(MPI_Wait(&req, &st));
	MT_CHECK(req == MPI_REQUEST_NULL, "Wait on a cancelled receive left the request");
	MT_MPI(MPI_Test_cancelled(&st, &cancelled));
	MT_CHECK(cancelled, "cancelled receive of %zu B not reported as cancelled", len);
	for (size_t i = 0; i < len; i++)
		MT_CHECK(buf[i] == 0xee, "cancelled receive wrote byte %zu", i);

	ctrl_send(peer);
	MT_MPI(MPI_Recv(buf, (int)len, MPI_BYTE, peer, TAG_CANCEL, MPI_COMM_WORLD, &st));
	mt_check_status(&st, peer, TAG_CANCEL, len, "receive after cancel");
	mt_verify(buf, len, mt_seed(peer, rank, TAG_CANCEL, len, 1), "receive after cancel", peer);
}

/* Every rank sends to rank 0, which receives with MPI_ANY_SOURCE. */
static void any_source(int rank, int nranks, uint8_t *buf, size_t len)
{
	int seen[64] = { 0 };
	MPI_Status st;

	if (rank != 0) {
		mt_fill(buf, len, mt_seed(rank, 0, TAG_ANYSRC, len, 2));
		MT_MPI(MPI_Send(buf, (int)len, MPI_BYTE, 0, TAG_ANYSRC, MPI_COMM_WORLD));
		return;
	}
	for (int n = 1; n < nranks; n++) {
		int src;

		memset(buf, 0, len);
		MT_MPI(MPI_Recv(buf, (int)len, MPI_BYTE, MPI_ANY_SOURCE, TAG_ANYSRC, MPI_COMM_WORLD, &st));
		src = st.MPI_SOURCE;
		MT_CHECK(src > 0 && src < nranks && src < 64 && !seen[src],
			 "ANY_SOURCE receive reported bad or repeated source %d", src);
		seen[src] = 1;
		mt_check_status(&st, src, TAG_ANYSRC, len, "ANY_SOURCE");
		mt_verify(buf, len, mt_seed(src, 0, TAG_ANYSRC, len, 2), "ANY_SOURCE", src);
	}
}

/*
 * MPI_ANY_TAG receives get the messages in send order with their own tags;
 * the last one also uses MPI_ANY_SOURCE.
 */
static void any_tag(int rank, int peer, uint8_t *buf, size_t len)
{
	static const int tags[] = { 5, 900, 7, 32767 };
	const int ntags = (int)(sizeof(tags) / sizeof(tags[0]));
	MPI_Request req[4];
	uint8_t *sbuf[4];
	MPI_Status st;

	if (rank < peer) {
		for (int t = 0; t < ntags; t++) {
			sbuf[t] = mt_alloc(len);
			mt_fill(sbuf[t], len, mt_seed(rank, peer, tags[t], len, 3));
			MT_MPI(MPI_Isend(sbuf[t], (int)len, MPI_BYTE, peer, tags[t], MPI_COMM_WORLD, &req[t]));
		}
		MT_MPI(MPI_Waitall(ntags, req, MPI_STATUSES_IGNORE));
		for (int t = 0; t < ntags; t++)
			free(sbuf[t]);
		return;
	}
	for (int t = 0; t < ntags; t++) {
		int src = t == ntags - 1 ? MPI_ANY_SOURCE : peer;

		memset(buf, 0, len);
		MT_MPI(MPI_Recv(buf, (int)len, MPI_BYTE, src, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
		mt_check_status(&st, peer, tags[t], len, "ANY_TAG");
		mt_verify(buf, len, mt_seed(peer, rank, tags[t], len, 3), "ANY_TAG", peer);
	}
}

/* Guard bytes after the receive buffer catch a write past its end. */
#define GUARD 64

/*
 * Receive len bytes into a buffer of room bytes (room < len).  Both the
 * blocking and the nonblocking receive must return MPI_ERR_TRUNCATE.
 */
static void truncate_once(int rank, int peer, uint8_t *buf, size_t len,
			  size_t room, int nonblocking)
{
	uint32_t seed = mt_seed(rank < peer ? rank : peer, rank < peer ? peer : rank,
				TAG_TRUNC, len, nonblocking);
	MPI_Request req;
	MPI_Status st;
	int rc, cls;

	if (rank < peer) {
		mt_fill(buf, len, seed);
		MT_MPI(MPI_Send(buf, (int)len, MPI_BYTE, peer, TAG_TRUNC, MPI_COMM_WORLD));
		return;
	}
	memset(buf, 0xa5, room + GUARD);
	if (nonblocking) {
		MT_MPI(MPI_Irecv(buf, (int)room, MPI_BYTE, peer, TAG_TRUNC, MPI_COMM_WORLD, &req));
		rc = MPI_Wait(&req, &st);
	} else {
		rc = MPI_Recv(buf, (int)room, MPI_BYTE, peer, TAG_TRUNC, MPI_COMM_WORLD, &st);
	}
	MT_CHECK(rc != MPI_SUCCESS, "%s of %zu B into %zu B succeeded, want MPI_ERR_TRUNCATE",
		 nonblocking ? "Irecv" : "Recv", len, room);
	MPI_Error_class(rc, &cls);
	if (cls == MPI_ERR_IN_STATUS)
		MPI_Error_class(st.MPI_ERROR, &cls);
	MT_CHECK(cls == MPI_ERR_TRUNCATE, "%s of %zu B into %zu B: error class %d, want MPI_ERR_TRUNCATE (%d)",
		 nonblocking ? "Irecv" : "Recv", len, room, cls, MPI_ERR_TRUNCATE);
	mt_verify(buf, room, seed, "truncated receive (first bytes)", peer);
	for (size_t i = room; i < room + GUARD; i++)
		MT_CHECK(buf[i] == 0xa5, "truncated receive of %zu B into %zu B wrote byte %zu past the buffer (0x%02x, message byte 0x%02x)",
			 len, room, i, buf[i], mt_byte(seed, i));
}

/* After a truncation the pair must still exchange data correctly. */
static void after_truncate(int rank, int peer, uint8_t *buf)
{
	const size_t len = 65536;
	MPI_Status st;

	if (rank < peer) {
		mt_fill(buf, len, mt_seed(rank, peer, TAG_AFTER, len, 4));
		MT_MPI(MPI_Send(buf, (int)len, MPI_BYTE, peer, TAG_AFTER, MPI_COMM_WORLD));
		return;
	}
	memset(buf, 0, len);
	MT_MPI(MPI_Recv(buf, (int)len, MPI_BYTE, peer, TAG_AFTER, MPI_COMM_WORLD, &st));
	mt_check_status(&st, peer, TAG_AFTER, len, "receive after truncation");
	mt_verify(buf, len, mt_seed(peer, rank, TAG_AFTER, len, 4), "receive after truncation", peer);
}

static const size_t trunc_len[] = { 1, 100, 65536, 4u << 20 };
static const size_t trunc_room[] = { 0, 50, 1000, 65536 };
#define NTRUNC (sizeof(trunc_len) / sizeof(trunc_len[0]))

int main(int argc, char **argv)
{
	uint8_t *buf;
	int rank, peer, paired;

	MPI_Init(&argc, &argv);
	rank = mt_rank();
	peer = rank ^ 1;
	paired = peer < mt_size();
	buf = mt_alloc(MT_MAX_SIZE + GUARD);

	for (size_t s = 0; s < NSEM && paired; s++) {
		ssend(rank, peer, buf, sem_sizes[s]);
		cancel(rank, peer, buf, sem_sizes[s]);
		any_tag(rank, peer, buf, sem_sizes[s]);
	}
	for (size_t s = 0; s < NSEM; s++) {
		any_source(rank, mt_size(), buf, sem_sizes[s]);
		MPI_Barrier(MPI_COMM_WORLD);
	}

	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	for (size_t s = 0; s < NTRUNC && paired; s++) {
		truncate_once(rank, peer, buf, trunc_len[s], trunc_room[s], 0);
		truncate_once(rank, peer, buf, trunc_len[s], trunc_room[s], 1);
		after_truncate(rank, peer, buf);
	}

	free(buf);
	mt_ok("semantics");
	MPI_Finalize();
	return 0;
}
