/*
 * Small RMA reads from a peer on another host are answered by one
 * READ_INLINE frame (USB4_WIRE_FEATURE_READ_INLINE), not by DATA and FIN:
 * one datagram back instead of two.  Two endpoints of this process over the
 * udp link on loopback (both addresses given another host's id); the
 * datagrams are counted by defining sendmsg and sendto here (the
 * provider's calls bind to the executable's definitions first; the udp
 * socket sends small datagrams by sendto).
 *
 *   - READS 8-byte reads, each awaited: each returns the target's bytes,
 *     and they take fewer than 2.5 datagrams each (DATA + FIN took 3);
 *   - reads of 1, 100 and USB4_WIRE_READ_INLINE_MAX bytes, and a read into
 *     two local buffers, return the right bytes;
 *   - a bad key, and a range past the region: an error completion
 *     (FI_EACCES) and the initiator's buffer untouched;
 *   - a read above USB4_WIRE_READ_INLINE_MAX still works (a stream);
 *   - an older peer: with the feature bit cleared from every HELLO (and its
 *     CRC32C redone) the reads still work, answered by DATA and FIN.
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
#include "../../prov_usb4/src/wire.h"
#include "usb4_sendto_shim.h"
#include "usb4_hello_strip.h"

#define READS		100
#define REGION		8192
#define LARGE		4096	/* above USB4_WIRE_READ_INLINE_MAX */

static atomic_ulong datagrams;
static atomic_bool old_peers;	/* strip READ_INLINE from every HELLO */
static atomic_ulong hellos_stripped;

/* Default visibility (the build hides symbols) and exported (LDFLAGS).
 * Test only: one thread sends while old_peers is set. */
__attribute__((visibility("default")))
ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	static usb4_test_sendmsg_fn real;

	if (!real)
		real = (usb4_test_sendmsg_fn) dlsym(RTLD_NEXT, "sendmsg");
	atomic_fetch_add(&datagrams, 1);
	if (!atomic_load(&old_peers))
		return real(fd, msg, flags);
	/* An older peer's HELLO / HELLO_ACK: without FEATURE_READ_INLINE. */
	return usb4_test_sendmsg_stripped(real, fd, msg, flags,
					  USB4_WIRE_FEATURE_READ_INLINE,
					  &hellos_stripped);
}

struct pair {
	struct fx a, b;
	struct fid_mr *mr;
	char *region;
	fi_addr_t peer;
	uint64_t base, key;
};

static void read_ok(struct pair *p, size_t len, uint64_t off)
{
	char *buf = malloc(len);
	struct fi_cq_err_entry err;

	memset(buf, 0xee, len);
	CHECK_EQ(fi_read(p->a.ep, buf, len, NULL, p->peer, p->base + off,
			 p->key, NULL), 0);
	CHECK_EQ_MSG(fx_wait_op(&p->a, &p->b, &err), 1, "read of %zu", len);
	CHECK_EQ_MSG(memcmp(buf, p->region + off, len), 0,
		     "read of %zu at %llu: wrong bytes", len,
		     (unsigned long long) off);
	free(buf);
}

/* One read into two local buffers (2 + 6 bytes). */
static void read_two_iovs(struct pair *p, uint64_t off)
{
	char x[2] = { 0 }, y[6] = { 0 };
	struct iovec iov[2] = { { x, sizeof(x) }, { y, sizeof(y) } };
	struct fi_rma_iov rma = { p->base + off, sizeof(x) + sizeof(y), p->key };
	struct fi_msg_rma msg = {
		.msg_iov = iov, .iov_count = 2, .addr = p->peer,
		.rma_iov = &rma, .rma_iov_count = 1,
	};
	struct fi_cq_err_entry err;

	CHECK_EQ(fi_readmsg(p->a.ep, &msg, FI_COMPLETION), 0);
	CHECK_EQ(fx_wait_op(&p->a, &p->b, &err), 1);
	CHECK_EQ(memcmp(x, p->region + off, sizeof(x)), 0);
	CHECK_EQ(memcmp(y, p->region + off + sizeof(x), sizeof(y)), 0);
}

/* A refused read: an error completion, the initiator's buffer as it was. */
static void read_refused(struct pair *p, uint64_t addr, uint64_t key,
			 const char *what)
{
	char v[8], before[8];
	struct fi_cq_err_entry err;

	memset(v, 0x3c, sizeof(v));
	memcpy(before, v, sizeof(v));
	CHECK_EQ(fi_read(p->a.ep, v, sizeof(v), NULL, p->peer, addr, key,
			 NULL), 0);
	CHECK_EQ_MSG(fx_wait_op(&p->a, &p->b, &err), 0, "%s: no error", what);
	CHECK_EQ_MSG(err.err, FI_EACCES, "%s: error %d", what, err.err);
	CHECK_EQ_MSG(memcmp(before, v, sizeof(v)), 0,
		     "%s: the initiator's buffer changed", what);
}

static void open_pair(struct pair *p)
{
	fi_addr_t back;

	p->region = calloc(1, REGION);
	for (size_t i = 0; i < REGION; i++)
		p->region[i] = (char) (i * 13 + 5);
	CHECK_EQ(fx_open(&p->a, FI_RMA, FX_MR_OMPI), 0);
	CHECK_EQ(fx_open(&p->b, FI_RMA, FX_MR_OMPI), 0);
	CHECK_EQ(fx_reg(&p->b, p->region, REGION,
			FI_REMOTE_READ | FI_REMOTE_WRITE, 0, &p->mr), 0);
	CHECK_EQ(fx_join(&p->a, &p->b, true, &p->peer, &back), 0);
	p->base = fx_rma_base(&p->b, p->region);
	p->key = fi_mr_key(p->mr);
}

static void close_pair(struct pair *p)
{
	fi_close(&p->mr->fid);
	fx_close(&p->a);
	fx_close(&p->b);
	free(p->region);
}

/* Datagrams sent for READS awaited 8-byte reads. */
static unsigned long small_reads(struct pair *p)
{
	unsigned long sent = atomic_load(&datagrams);

	for (int i = 0; i < READS && !usb4_test_failures; i++)
		read_ok(p, 8, 8 * (i % 64));
	return atomic_load(&datagrams) - sent;
}

int main(void)
{
	struct pair p = { 0 }, old = { 0 };
	unsigned long sent;

	alarm(60);
	setenv("FI_USB4_IFACE", "lo", 1);
	setenv("FI_USB4_PROGRESS_IDLE_MS", "0", 1);
	open_pair(&p);
	read_ok(&p, 8, 0);	/* the handshake is done */

	sent = small_reads(&p);
	printf("# %d 8-byte reads: %lu datagrams\n", READS, sent);
	CHECK_MSG(sent < 5 * READS / 2, "%lu datagrams for %d reads", sent,
		  READS);
	read_ok(&p, 1, 3);
	read_ok(&p, 100, 1001);
	read_ok(&p, USB4_WIRE_READ_INLINE_MAX, REGION - USB4_WIRE_READ_INLINE_MAX);
	read_two_iovs(&p, 77);
	read_refused(&p, p.base, p.key ^ 0x40, "bad key");
	read_refused(&p, p.base + REGION - 4, p.key, "past the region");
	read_ok(&p, LARGE, REGION - LARGE);
	read_ok(&p, 8, 16);	/* inline again after a stream */
	close_pair(&p);

	/* Older peers: neither side offers the feature, answers are DATA and
	 * FIN (3 datagrams a read), and every read still returns its bytes. */
	atomic_store(&old_peers, true);
	open_pair(&old);
	read_ok(&old, 8, 0);
	CHECK_MSG(atomic_load(&hellos_stripped) > 0, "no HELLO was seen");
	sent = small_reads(&old);
	printf("# without the feature: %d 8-byte reads: %lu datagrams\n",
	       READS, sent);
	CHECK_MSG(sent >= 3 * READS, "%lu datagrams for %d reads: the "
		  "feature was used with an older peer", sent, READS);
	read_ok(&old, USB4_WIRE_READ_INLINE_MAX, 256);
	read_refused(&old, old.base, old.key ^ 0x40, "bad key (older peer)");
	close_pair(&old);
	return usb4_test_done("test_read_inline");
}
