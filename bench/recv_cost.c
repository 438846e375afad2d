/*
 * What one small receive costs the provider, in instructions: endpoint B of
 * this process receives N 8-byte tagged messages from endpoint A as Open
 * MPI's mtl ofi takes them (fi_trecv, a tagged CQ read with a count;
 * FI_THREAD_DOMAIN), in rounds of 64: B posts 64 receives, A injects 64
 * messages, B reads its CQ until all 64 are in.  "unexpected" sends each
 * round before its receives are posted.  Over the shm link, or with "udp"
 * over the udp link on loopback (the addresses given another host's id,
 * congestion control off).
 *
 *   gcc -O2 -g -Itests/c bench/recv_cost.c -o /tmp/recv_cost \
 *       $(pkg-config --cflags --libs libfabric)
 *   FI_PROVIDER_PATH=$PWD/.libs FI_USB4_IFACE=lo valgrind --tool=callgrind \
 *       --callgrind-out-file=/tmp/cg.out /tmp/recv_cost shm expected 128000
 *   callgrind_annotate --inclusive=yes /tmp/cg.out | \
 *       grep -E 'tagged_recv|on_frame|usb4_match_arrival|cq_read'
 *
 * Inclusive counts over N: tagged_recv is posting a receive, on_frame
 * taking a frame up to its CQ entry (queueing it, when unexpected), cq_read
 * the reads with the progress they make (the frames' arrival included).
 * Arguments: shm|udp, expected|unexpected|empty, N (a multiple of 64), the
 * count each fi_cq_read asks for (default 64).  "empty" receives one round,
 * then reads B's CQ N times finding nothing: what a rank waiting in a
 * ping-pong pays per turn of its loop (cq_readfrom inclusive over N).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include <rdma/fi_tagged.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define ROUND		64
#define LEN		8

/* Progresses both endpoints once each (a zero-count read takes nothing):
 * A acknowledges and retransmits over udp, B takes what came. */
static void progress(struct fx *a, struct fx *b)
{
	fi_cq_read(a->cq, NULL, 0);
	fi_cq_read(b->cq, NULL, 0);
}

static void post_round(struct fx *a, struct fx *b, fi_addr_t from,
		       char (*got)[LEN])
{
	for (int i = 0; i < ROUND; i++)
		while (fi_trecv(b->ep, got[i], LEN, NULL, from, i, 0, got[i]) ==
		       -FI_EAGAIN)
			progress(a, b);
}

static void send_round(struct fx *a, struct fx *b, fi_addr_t to)
{
	static const char buf[LEN] = "abcdefg";

	for (int i = 0; i < ROUND; i++)
		while (fi_tinjectdata(a->ep, buf, LEN, 0, to, i) == -FI_EAGAIN)
			progress(a, b);
}

/* Reads B's CQ, count entries a read, until a round is in. */
static int reap_round(struct fx *a, struct fx *b, int count)
{
	struct fi_cq_tagged_entry e[ROUND];
	int got = 0;

	while (got < ROUND) {
		ssize_t r = fi_cq_read(b->cq, e, (size_t) count);

		if (r > 0)
			got += (int) r;
		else if (r != -FI_EAGAIN)
			return (int) r;
		fi_cq_read(a->cq, NULL, 0);
	}
	return 0;
}

static int run(struct fx *a, struct fx *b, bool unexpected, int n, int count)
{
	static char got[ROUND][LEN];
	fi_addr_t to_b = fx_insert(a, b->addr), to_a = fx_insert(b, a->addr);

	if (to_b == FI_ADDR_NOTAVAIL || to_a == FI_ADDR_NOTAVAIL)
		return 3;
	for (int i = 0; i < n; i += ROUND) {
		if (!unexpected)
			post_round(a, b, to_a, got);
		send_round(a, b, to_b);
		if (unexpected) {
			for (int k = 0; k < 8; k++)	/* they wait unexpected */
				progress(a, b);
			post_round(a, b, to_a, got);
		}
		if (reap_round(a, b, count))
			return 4;
	}
	return 0;
}

/* One round to meet, then n reads of B's empty CQ. */
static int run_empty(struct fx *a, struct fx *b, int n, int count)
{
	struct fi_cq_tagged_entry e[ROUND];
	int ret = run(a, b, false, ROUND, count);

	for (int i = 0; i < n && !ret; i++)
		if (fi_cq_read(b->cq, e, (size_t) count) != -FI_EAGAIN)
			ret = 5;
	return ret;
}

int main(int argc, char **argv)
{
	bool udp = argc > 1 && !strcmp(argv[1], "udp");
	bool unexpected = argc > 2 && !strcmp(argv[2], "unexpected");
	bool empty = argc > 2 && !strcmp(argv[2], "empty");
	int n = argc > 3 ? atoi(argv[3]) : 128000;
	int count = argc > 4 ? atoi(argv[4]) : ROUND;
	struct fx a, b;
	int ret;

	if (count < 1 || count > ROUND)
		return 2;
	/* The reads a ping-pong's waiting rank spins through; a block in the
	 * kernel (after 20 us of nothing) would add its own, timed, path. */
	if (empty)
		setenv("FI_USB4_IDLE_BLOCK_US", "0", 0);
	if (udp) {
		setenv("FI_USB4_IFACE", "lo", 1);
		setenv("FI_USB4_CC", "0", 1);
	}
	if (fx_open_format(&a, fx_mtl_ofi_hints(), FI_CQ_FORMAT_TAGGED) ||
	    fx_open_format(&b, fx_mtl_ofi_hints(), FI_CQ_FORMAT_TAGGED))
		return 2;
	if (udp) {
		fx_other_host(a.addr);
		fx_other_host(b.addr);
	}
	ret = empty ? run_empty(&a, &b, n, count) :
		      run(&a, &b, unexpected, n, count);
	fx_close(&a);
	fx_close(&b);
	printf("%s %s: %d %s of %d B, %s\n", udp ? "udp" : "shm",
	       empty ? "empty" : unexpected ? "unexpected" : "expected", n,
	       empty ? "empty reads after receives" : "receives", LEN,
	       ret ? "failed" : "ok");
	return ret;
}
