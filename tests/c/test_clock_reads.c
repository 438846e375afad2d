/*
 * A rank waiting on its CQ does not read the precise clock on every read.
 * Where CLOCK_MONOTONIC is a system call (a VM whose clocksource has no
 * vDSO mode: the issue 13 reviewer's AMD EPYC), every read of it costs
 * as much as a look at the socket, and a wait loop that took three per
 * fi_cq_read (the spin timer, the udp link's timers, the peers' liveness)
 * spent most of its time in the clock: two-host put latency 150-250 us.
 *
 * Two endpoints of this process talk over the udp link on loopback (both
 * addresses given another host's id).  A's fi_read of B's memory is left
 * waiting while only A's CQ is read, READS times; then the same with
 * nothing pending.  This program counts the precise-clock reads by
 * defining clock_gettime itself (the provider's call binds to the
 * executable's definition first): at most one per QUIET_READS_PER reads.
 * Then B is progressed too and the read must bring B's bytes.
 *
 * Sending: SENDS eager messages to B, each one datagram that leaves within
 * its fi_send (no congestion window: FI_USB4_CC=0), read the precise clock
 * at most once per message.  The udp link read it when a post entered rel
 * and again in rel's transmit callback for the same datagram: on a clock
 * that is a system call, a second one per datagram of every bulk transfer.
 * B then takes them reading the clock once per receive of up to 8
 * datagrams, not once per datagram.
 *
 * Round trips: ROUND_TRIPS more reads, each awaited, read the clock at
 * most CLOCK_READS_PER_RTT times each: the timers the udp link runs after
 * input take the time the input was taken at.
 *
 * Ping-pong: PING_PONGS small messages each way (osu_latency 8 B): each
 * side reads the precise clock at most once per round trip, counted over
 * the calls made on its own endpoint.  An RTT sample needs a precise time
 * at both of its ends; the rest (deadlines of 50 ms and more, liveness in
 * seconds) take the coarse clock, which stays in the vDSO.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rdma/fi_rma.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define READS		4000
#define LEN		64
#define SENDS		32	/* under FI_USB4_REL_WINDOW (64) */
#define SEND_LEN	1024	/* eager across hosts: one datagram */
#define DRAIN_READS	100000

static atomic_ulong precise;

/* Default visibility (the build hides symbols) and exported (LDFLAGS). */
__attribute__((visibility("default")))
int clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);

	if (!real)
		real = (int (*)(clockid_t, struct timespec *))
		       dlsym(RTLD_NEXT, "clock_gettime");
	if (id != CLOCK_MONOTONIC_COARSE && id != CLOCK_REALTIME_COARSE)
		atomic_fetch_add(&precise, 1);
	return real(id, ts);
}

/* Precise-clock reads during READS empty reads of cq. */
static unsigned long clock_reads_while_waiting(struct fid_cq *cq)
{
	struct fi_cq_data_entry e;
	unsigned long before = atomic_load(&precise);

	for (int i = 0; i < READS; i++)
		CHECK_EQ(fi_cq_read(cq, &e, 1), -FI_EAGAIN);
	return atomic_load(&precise) - before;
}

/*
 * With no deadline within a tick of the coarse clock (A's read times out
 * in 50 ms), the udp link's timers read no precise clock while A waits:
 * only the CQ's spin sampling does (one read in USB4_SPIN_CLOCK_EVERY =
 * 16); the timers took one in 8 more before.  A thread held near the
 * deadline reads as before: up to 3 tries, only the last counted.
 */
#define QUIET_READS_PER	8

static void check_rate(const char *what, struct fid_cq *cq)
{
	unsigned long seen;

	for (int tries = 1;; tries++) {
		seen = clock_reads_while_waiting(cq);
		if (seen <= READS / QUIET_READS_PER || tries == 3)
			break;
	}
	printf("# %s: %lu precise-clock reads in %d CQ reads\n", what, seen,
	       READS);
	CHECK_MSG(seen <= READS / QUIET_READS_PER,
		  "%s: %lu clock reads, allowed %d", what, seen,
		  READS / QUIET_READS_PER);
}

/* Reads B's CQ until n receives completed (or many reads found none):
 * how many did. */
static int drain(struct fid_cq *cq, int n)
{
	struct fi_cq_data_entry e;
	int done = 0;

	for (int i = 0; done < n && i < DRAIN_READS; i++)
		done += fi_cq_read(cq, &e, 1) == 1;
	return done;
}

/* Complete when sent: B owes no delivery notice (a frame of its own). */
static ssize_t send_one(struct fx *a, char *buf, fi_addr_t peer)
{
	struct iovec iov = { .iov_base = buf, .iov_len = SEND_LEN };
	struct fi_msg msg = { .msg_iov = &iov, .iov_count = 1,
			      .addr = peer, .context = buf };

	return fi_sendmsg(a->ep, &msg, FI_COMPLETION | FI_TRANSMIT_COMPLETE);
}

/* SENDS messages from A to B: precise-clock reads per send at most one,
 * and B takes them with at most one per two; intact. */
static void check_sends(struct fx *a, struct fx *b, fi_addr_t peer)
{
	static char out[SENDS][SEND_LEN], in[SENDS][SEND_LEN];
	unsigned long before, seen;
	int sent = 0;

	for (int i = 0; i < SENDS; i++) {
		memset(out[i], 'a' + i % 26, SEND_LEN);
		CHECK_EQ(fi_recv(b->ep, in[i], SEND_LEN, NULL, FI_ADDR_UNSPEC,
				 in[i]), 0);
	}
	before = atomic_load(&precise);
	for (int i = 0; i < SENDS; i++)
		CHECK_EQ(send_one(a, out[i], peer), 0);
	seen = atomic_load(&precise) - before;
	printf("# %d sends of %d B: %lu precise-clock reads\n", SENDS,
	       SEND_LEN, seen);
	CHECK_MSG(seen <= SENDS, "%lu clock reads for %d sends, allowed %d",
		  seen, SENDS, SENDS);
	/* On loopback the datagrams are in B's socket already. */
	before = atomic_load(&precise);
	CHECK_EQ(drain(b->cq, SENDS), SENDS);
	seen = atomic_load(&precise) - before;
	printf("# %d receives: %lu precise-clock reads\n", SENDS, seen);
	CHECK_MSG(seen <= SENDS / 2, "%lu clock reads for %d receives, "
		  "allowed %d", seen, SENDS, SENDS / 2);
	CHECK_EQ(memcmp(in, out, sizeof(in)), 0);
	for (uint64_t end = fx_now_ms() + FX_TIMEOUT_MS;
	     sent < SENDS && fx_now_ms() < end; ) {
		fi_cq_read(b->cq, NULL, 0);	/* B's acks */
		sent += drain(a->cq, 1);
	}
	CHECK_EQ(sent, SENDS);
}

/*
 * Precise-clock reads per awaited read: the request and its answer are
 * one send and one receive on each side.  Each side reads the clock once
 * per send (the post) and once per receive (the datagram); the sends rel
 * makes inside those calls and the timers after input use that time:
 * 8 per read when the timers read it again after every input, 6 now
 * (the rest are the waits' own).
 */
#define ROUND_TRIPS		200
#define CLOCK_READS_PER_RTT	7.5

static void check_round_trips(struct fx *a, struct fx *b, fi_addr_t peer,
			      struct fid_mr *mr, char *src, char *dst)
{
	unsigned long before = atomic_load(&precise);
	double per;

	for (int i = 0; i < ROUND_TRIPS && !usb4_test_failures; i++) {
		CHECK_EQ(fi_read(a->ep, dst, LEN, NULL, peer,
				 fx_rma_base(b, src), fi_mr_key(mr), dst), 0);
		CHECK_EQ(fx_wait_op(a, b, NULL), 1);
	}
	per = (double) (atomic_load(&precise) - before) / ROUND_TRIPS;
	printf("# %d awaited reads: %.2f precise-clock reads each\n",
	       ROUND_TRIPS, per);
	CHECK_MSG(per <= CLOCK_READS_PER_RTT,
		  "%.2f clock reads per awaited read, allowed %.1f", per,
		  CLOCK_READS_PER_RTT);
}

/*
 * Precise-clock reads per ping-pong round trip on each side: A sends 8 B
 * and reads its CQ until B's answer came; B reads its CQ until A's message
 * came and answers.  Reads are charged to the side whose call made them.
 */
#define PING_PONGS		2000
#define PING_LEN		8
#define CLOCK_READS_PER_SIDE	1.0

/* Reads cq until one completion, charging precise-clock reads to *reads. */
static int await_one(struct fid_cq *cq, unsigned long *reads)
{
	struct fi_cq_data_entry e;
	unsigned long before = atomic_load(&precise);
	int done = 0;

	for (int i = 0; !done && i < DRAIN_READS; i++)
		done = fi_cq_read(cq, &e, 1) == 1;
	*reads += atomic_load(&precise) - before;
	return done;
}

/* One side's send of len bytes, its precise-clock reads charged. */
static ssize_t ping_send(struct fx *f, const char *buf, fi_addr_t to,
			 unsigned long *reads)
{
	unsigned long before = atomic_load(&precise);
	ssize_t ret = fi_inject(f->ep, buf, PING_LEN, to);

	*reads += atomic_load(&precise) - before;
	return ret;
}

static ssize_t ping_post(struct fx *f, char *buf, unsigned long *reads)
{
	unsigned long before = atomic_load(&precise);
	ssize_t ret = fi_recv(f->ep, buf, PING_LEN, NULL, FI_ADDR_UNSPEC, buf);

	*reads += atomic_load(&precise) - before;
	return ret;
}

static void check_ping_pong(struct fx *a, struct fx *b, fi_addr_t peer,
			    fi_addr_t back)
{
	char ping[PING_LEN] = "ping", pong[PING_LEN] = "pong";
	char in_a[PING_LEN], in_b[PING_LEN];
	unsigned long ra = 0, rb = 0;

	for (int i = 0; i < PING_PONGS && !usb4_test_failures; i++) {
		CHECK_EQ(ping_post(b, in_b, &rb), 0);
		CHECK_EQ(ping_post(a, in_a, &ra), 0);
		CHECK_EQ(ping_send(a, ping, peer, &ra), 0);
		CHECK_EQ(await_one(b->cq, &rb), 1);
		CHECK_EQ(ping_send(b, pong, back, &rb), 0);
		CHECK_EQ(await_one(a->cq, &ra), 1);
	}
	CHECK_EQ(memcmp(in_a, pong, PING_LEN), 0);
	CHECK_EQ(memcmp(in_b, ping, PING_LEN), 0);
	printf("# %d ping-pongs of %d B: %.2f precise-clock reads per round "
	       "trip on A, %.2f on B\n", PING_PONGS, PING_LEN,
	       (double) ra / PING_PONGS, (double) rb / PING_PONGS);
	CHECK_MSG(ra <= PING_PONGS * CLOCK_READS_PER_SIDE &&
		  rb <= PING_PONGS * CLOCK_READS_PER_SIDE,
		  "clock reads per round trip: A %.2f, B %.2f, allowed %.1f",
		  (double) ra / PING_PONGS, (double) rb / PING_PONGS,
		  CLOCK_READS_PER_SIDE);
}

int main(void)
{
	struct fx a, b;
	struct fid_mr *mr;
	char *src = calloc(1, LEN), *dst = calloc(1, LEN);
	fi_addr_t peer, back;

	alarm(60);
	setenv("FI_USB4_IFACE", "lo", 1);
	/* Only this thread reads the clock (and progresses). */
	setenv("FI_USB4_PROGRESS_IDLE_MS", "0", 1);
	/* The clock reads of a spinning wait: a read that sleeps instead
	 * (test_idle_block.c) reads it a few times per sleep of up to 1 ms. */
	setenv("FI_USB4_IDLE_BLOCK_US", "0", 1);
	/* Every send's datagram leaves at once (check_sends). */
	setenv("FI_USB4_CC", "0", 1);
	CHECK_EQ(fx_open(&a, FI_RMA | FI_MSG, FX_MR_OMPI), 0);
	CHECK_EQ(fx_open(&b, FI_RMA | FI_MSG, FX_MR_OMPI), 0);
	memset(src, 0x5c, LEN);
	CHECK_EQ(fx_reg(&b, src, LEN, FI_REMOTE_READ, 0, &mr), 0);
	CHECK_EQ(fx_join(&a, &b, true, &peer, &back), 0);

	CHECK_EQ(fi_read(a.ep, dst, LEN, NULL, peer, fx_rma_base(&b, src),
			 fi_mr_key(mr), dst), 0);
	check_rate("a read waiting", a.cq);
	CHECK_EQ(fx_wait_op(&a, &b, NULL), 1);	/* B answers at last */
	CHECK_EQ(memcmp(src, dst, LEN), 0);
	check_rate("nothing pending", a.cq);
	check_sends(&a, &b, peer);
	check_round_trips(&a, &b, peer, mr, src, dst);
	check_ping_pong(&a, &b, peer, back);
	fi_close(&mr->fid);
	fx_close(&a);
	fx_close(&b);
	free(src);
	free(dst);
	return usb4_test_done("test_clock_reads");
}
