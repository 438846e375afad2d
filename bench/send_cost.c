/*
 * What one small send costs the provider, in instructions: endpoint A of
 * this process sends N messages to endpoint B as Open MPI's mtl ofi posts
 * them (fi_tsenddata for MPI_Isend, fi_tinjectdata for a small MPI_Send;
 * FI_THREAD_DOMAIN, no tx op_flags), B receives them, in batches of 32.
 * Over the shm link, or with "udp" over the udp link on loopback (the
 * addresses given another host's id, congestion control off).
 *
 *   gcc -O2 -g -Itests/c bench/send_cost.c -o /tmp/send_cost \
 *       $(pkg-config --cflags --libs libfabric)
 *   FI_PROVIDER_PATH=$PWD/.libs valgrind --tool=callgrind \
 *       --callgrind-out-file=/tmp/cg.out /tmp/send_cost shm senddata 4000
 *   callgrind_annotate --inclusive=yes /tmp/cg.out | grep tagged_
 *
 * The inclusive count of tagged_senddata (or tagged_injectdata) over N is
 * the instructions per send, from the provider's entry to the link's post
 * and back.  Arguments: shm|udp, senddata|injectdata, N, message bytes
 * (default 8, at most 64), and "alternate" to send to B and a third
 * endpoint C in turn (no two sends in a row to one peer, as in a
 * collective's steps).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include <rdma/fi_tagged.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define BATCH		32
#define MSG_MAX		64
#define TAG		7
#define DATA		99

/* Reads cq until n entries came. */
static int drain(struct fid_cq *cq, int n)
{
	struct fi_cq_data_entry e[16];

	while (n > 0) {
		ssize_t r = fi_cq_read(cq, e, 16);

		if (r > 0)
			n -= (int) r;
		else if (r != -FI_EAGAIN)
			return (int) r;
	}
	return 0;
}

static ssize_t send_one(struct fx *a, bool inject, const char *buf,
			size_t len, fi_addr_t to)
{
	ssize_t r;

	do {
		r = inject ? fi_tinjectdata(a->ep, buf, len, DATA, to, TAG) :
			     fi_tsenddata(a->ep, buf, len, NULL, DATA, to, TAG,
					  NULL);
		if (r == -FI_EAGAIN)
			fi_cq_read(a->cq, NULL, 0);	/* progress */
	} while (r == -FI_EAGAIN);
	return r;
}

/* rx[k] receives the k-th of every two sends (both B with one receiver). */
static int run(struct fx *a, struct fx *rx[2], bool inject, int n, size_t len)
{
	static char got[BATCH][MSG_MAX], buf[MSG_MAX] = "abcdefgh";
	fi_addr_t to[2], from[2];

	for (int k = 0; k < 2; k++) {
		bool again = k && rx[1] == rx[0];

		to[k] = again ? to[0] : fx_insert(a, rx[k]->addr);
		from[k] = again ? from[0] : fx_insert(rx[k], a->addr);
		if (to[k] == FI_ADDR_NOTAVAIL || from[k] == FI_ADDR_NOTAVAIL)
			return 3;
	}
	for (int i = 0; i < n; i += BATCH) {
		for (int j = 0; j < BATCH; j++)
			if (fi_trecv(rx[j % 2]->ep, got[j], MSG_MAX, NULL,
				     from[j % 2], TAG, 0, NULL))
				return 4;
		for (int j = 0; j < BATCH; j++)
			if (send_one(a, inject, buf, len, to[j % 2]))
				return 5;
		if (drain(rx[0]->cq, rx[0] == rx[1] ? BATCH : BATCH / 2) ||
		    (rx[0] != rx[1] && drain(rx[1]->cq, BATCH / 2)) ||
		    (!inject && drain(a->cq, BATCH)))
			return 6;
	}
	return 0;
}

int main(int argc, char **argv)
{
	bool udp = argc > 1 && !strcmp(argv[1], "udp");
	bool inject = argc > 2 && !strcmp(argv[2], "injectdata");
	int n = argc > 3 ? atoi(argv[3]) : 20000;
	size_t len = argc > 4 ? (size_t) atoi(argv[4]) : 8;
	bool alternate = argc > 5 && !strcmp(argv[5], "alternate");
	struct fx a, b, c = { 0 };
	struct fx *rx[2] = { &b, alternate ? &c : &b };
	int ret;

	if (len > MSG_MAX)
		return 2;
	if (udp) {
		setenv("FI_USB4_IFACE", "lo", 1);
		setenv("FI_USB4_CC", "0", 1);
	}
	if (fx_open_hints(&a, fx_mtl_ofi_hints()) ||
	    fx_open_hints(&b, fx_mtl_ofi_hints()) ||
	    (alternate && fx_open_hints(&c, fx_mtl_ofi_hints())))
		return 2;
	if (udp) {
		fx_other_host(a.addr);
		fx_other_host(b.addr);
		fx_other_host(c.addr);
	}
	ret = run(&a, rx, inject, n, len);
	fx_close(&a);
	fx_close(&b);
	if (alternate)
		fx_close(&c);
	printf("%s %s: %d sends of %zu B%s, %s\n", udp ? "udp" : "shm",
	       inject ? "injectdata" : "senddata", n, len,
	       alternate ? " to B and C in turn" : "", ret ? "failed" : "ok");
	return ret;
}
