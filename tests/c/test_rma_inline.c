/*
 * Small RMA writes to a peer on another host travel in their request
 * (USB4_WIRE_FEATURE_WRITE_INLINE): one round trip (WRITE_REQ, FIN), not
 * two (WRITE_REQ, CTS, DATA, FIN).  Two endpoints of this process over the
 * udp link on loopback (both addresses given another host's id); the
 * datagrams are counted by defining sendmsg and sendto here (the
 * provider's calls bind to the executable's definitions first; the udp
 * socket sends small datagrams by sendto).
 *
 *   - WRITES 8-byte writes, each awaited: every one lands, and they take
 *     fewer than 3 datagrams each (a rendezvous write takes 4);
 *   - fi_inject_write: the buffer is reused at once, the target holds what
 *     it held at the call;
 *   - a bad key, and a range past the region: an error completion
 *     (FI_EACCES) and the target's memory untouched;
 *   - a write above USB4_WIRE_WRITE_INLINE_MAX still lands (rendezvous).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <rdma/fi_rma.h>

#include "usb4_test.h"
#include "usb4_fixture.h"
#include "usb4_sendmsg_count.h"
#include "usb4_sendto_shim.h"

#define WRITES		100
#define REGION		8192
#define LARGE		4096	/* above USB4_WIRE_WRITE_INLINE_MAX */

struct pair {
	struct fx a, b;
	struct fid_mr *mr;
	char *region;
	fi_addr_t peer;
	uint64_t base, key;
};

static void write_ok(struct pair *p, const void *buf, size_t len,
		     uint64_t off)
{
	struct fi_cq_err_entry err;

	CHECK_EQ(fi_write(p->a.ep, buf, len, NULL, p->peer, p->base + off,
			  p->key, NULL), 0);
	CHECK_EQ(fx_wait_op(&p->a, &p->b, &err), 1);
	CHECK_EQ(memcmp(p->region + off, buf, len), 0);
}

/* A refused write: an error completion, the region as it was. */
static void write_refused(struct pair *p, uint64_t addr, uint64_t key,
			  const char *what)
{
	char *before = malloc(REGION), v[8] = "refused";
	struct fi_cq_err_entry err;

	memcpy(before, p->region, REGION);
	CHECK_EQ(fi_write(p->a.ep, v, sizeof(v), NULL, p->peer, addr, key,
			  NULL), 0);
	CHECK_EQ_MSG(fx_wait_op(&p->a, &p->b, &err), 0, "%s: no error", what);
	CHECK_EQ_MSG(err.err, FI_EACCES, "%s: error %d", what, err.err);
	CHECK_EQ_MSG(memcmp(before, p->region, REGION), 0,
		     "%s: the target's memory changed", what);
	free(before);
}

static void open_pair(struct pair *p)
{
	fi_addr_t back;

	p->region = calloc(1, REGION);
	CHECK_EQ(fx_open(&p->a, FI_RMA, FX_MR_OMPI), 0);
	CHECK_EQ(fx_open(&p->b, FI_RMA, FX_MR_OMPI), 0);
	CHECK_EQ(fx_reg(&p->b, p->region, REGION,
			FI_REMOTE_READ | FI_REMOTE_WRITE, 0, &p->mr), 0);
	CHECK_EQ(fx_join(&p->a, &p->b, true, &p->peer, &back), 0);
	p->base = fx_rma_base(&p->b, p->region);
	p->key = fi_mr_key(p->mr);
}

int main(void)
{
	struct pair p = { 0 };
	uint64_t v, first = 1;
	unsigned long sent;
	char *large = malloc(LARGE);
	struct fi_cq_err_entry err;

	alarm(60);
	setenv("FI_USB4_IFACE", "lo", 1);
	setenv("FI_USB4_PROGRESS_IDLE_MS", "0", 1);
	open_pair(&p);
	write_ok(&p, &first, sizeof(first), 0);	/* the handshake is done */

	sent = atomic_load(&datagrams);
	for (v = 2; v < WRITES + 2 && !usb4_test_failures; v++)
		write_ok(&p, &v, sizeof(v), 8 * (v % 16));
	sent = atomic_load(&datagrams) - sent;
	printf("# %d 8-byte writes: %lu datagrams\n", WRITES, sent);
	CHECK_MSG(sent < 3 * WRITES, "%lu datagrams for %d writes", sent,
		  WRITES);
	/* Each write is a request and its answer at least: a count below
	 * that missed the sends (a send call the test does not define). */
	CHECK_MSG(sent >= WRITES, "%lu datagrams counted for %d writes", sent,
		  WRITES);

	v = 0x1122334455667788ull;
	CHECK_EQ(fi_inject_write(p.a.ep, &v, sizeof(v), p.peer, p.base + 256,
				 p.key), 0);
	v = 0;		/* reused at once */
	CHECK_EQ(fi_write(p.a.ep, &first, sizeof(first), NULL, p.peer,
			  p.base + 264, p.key, NULL), 0);
	CHECK_EQ(fx_wait_op(&p.a, &p.b, &err), 1);
	memcpy(&v, p.region + 256, sizeof(v));
	CHECK_EQ(v, 0x1122334455667788ull);

	write_refused(&p, p.base, p.key ^ 0x40, "bad key");
	write_refused(&p, p.base + REGION - 4, p.key, "past the region");

	for (size_t i = 0; i < LARGE; i++)
		large[i] = (char) (i * 7 + 3);
	write_ok(&p, large, LARGE, REGION - LARGE);

	fi_close(&p.mr->fid);
	fx_close(&p.a);
	fx_close(&p.b);
	free(p.region);
	free(large);
	return usb4_test_done("test_rma_inline");
}
