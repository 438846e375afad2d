/*
 * Early rendezvous data (USB4_WIRE_FEATURE_RNDV_EARLY, usb4_stream_early.c)
 * between two endpoints of this process over the udp link on loopback
 * (both addresses given another host's id).  Datagrams are counted, and
 * for the older-peer case rewritten, by defining sendmsg here.
 *
 *   - a rendezvous send streams its first DATA before its receiver ever
 *     answered (the receiver does not progress at all meanwhile), then
 *     completes with the right bytes;
 *   - a receive posted after the RTS arrived (its early DATA dropped): the
 *     sender starts again from byte 0 and the receive gets the right
 *     bytes;
 *   - a receive posted after the RTS arrived but before any of its early
 *     DATA (held back at the sender's sendmsg until then, so rel resends
 *     it): that DATA is placed, not sent again from byte 0;
 *   - a receive shorter than the message: FI_ETRUNC, its bytes right and
 *     the memory after it untouched although early DATA ran past its end;
 *   - RMA writes: DATA before the target answered, the target's memory
 *     right; a write with a bad key fails
 *     (FI_EACCES) and its early DATA touches nothing;
 *   - an older peer (the feature stripped from every HELLO): no DATA
 *     before the receiver answers, and the messages still arrive whole;
 *   - all of the above again in a second pass with datagrams dropped,
 *     duplicated, reordered and corrupted on receive (FI_USB4_FAULTS).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rdma/fi_rma.h>

#include "usb4_test.h"
#include "usb4_fixture.h"
#include "../../prov_usb4/src/wire.h"
#include "usb4_sendto_shim.h"
#include "usb4_hello_strip.h"

#define MSG		(300 * 1024)	/* above the early size: a CTS too */
#define SMALL		(100 * 1024)	/* within it: all of it early */
#define GUARD		4096
#define BULK_DGRAM	60000		/* a datagram this long carries DATA */

static atomic_ulong bulk_datagrams;
static atomic_bool old_peers;	/* strip RNDV_EARLY from every HELLO */
static atomic_bool hold_bulk;	/* DATA datagrams vanish (rel resends) */
static atomic_ulong hellos_stripped;

/* Default visibility (the build hides symbols) and exported (LDFLAGS).
 * Test only: one thread sends while old_peers is set. */
__attribute__((visibility("default")))
ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	static usb4_test_sendmsg_fn real;
	size_t len = usb4_test_msg_len(msg);

	if (!real)
		real = (usb4_test_sendmsg_fn) dlsym(RTLD_NEXT, "sendmsg");
	if (len >= BULK_DGRAM && atomic_load(&hold_bulk))
		return (ssize_t) len;
	if (len >= BULK_DGRAM)
		atomic_fetch_add(&bulk_datagrams, 1);
	if (!atomic_load(&old_peers) || len > 1024)
		return real(fd, msg, flags);
	/* An older peer's HELLO / HELLO_ACK: without FEATURE_RNDV_EARLY. */
	return usb4_test_sendmsg_stripped(real, fd, msg, flags,
					  USB4_WIRE_FEATURE_RNDV_EARLY,
					  &hellos_stripped);
}

struct pair {
	struct fx a, b;
	fi_addr_t to_b;
	char *out, *in;		/* in: MSG + GUARD */
	struct fid_mr *mr;	/* B's in, remotely writable */
	uint64_t base, key;
};

/* Reads both CQs until each gave a completion; B's (maybe an error) in
 * *eb.  1, or -1 on a timeout or an error at A. */
static int wait_pair(struct pair *p, struct fi_cq_err_entry *eb)
{
	uint64_t end = fx_now_ms() + FX_TIMEOUT_MS;
	struct fi_cq_data_entry e;
	bool got_a = false, got_b = false;

	memset(eb, 0, sizeof(*eb));
	while ((!got_a || !got_b) && fx_now_ms() < end) {
		ssize_t ra = fi_cq_read(p->a.cq, &e, 1);
		ssize_t rb = fi_cq_read(p->b.cq, &e, 1);

		if (ra < 0 && ra != -FI_EAGAIN)
			return -1;
		if (rb == -FI_EAVAIL && fi_cq_readerr(p->b.cq, eb, 0) == 1)
			rb = 1;
		got_a |= ra == 1;
		got_b |= rb == 1;
	}
	return got_a && got_b ? 1 : -1;
}

static void post_recv(struct pair *p, size_t len)
{
	memset(p->in, 0, MSG + GUARD);
	CHECK_EQ(fi_recv(p->b.ep, p->in, len, NULL, FI_ADDR_UNSPEC, NULL), 0);
}

/* B got len bytes of message seed right, and nothing past them. */
static void check_in(struct pair *p, size_t len, uint64_t seed,
		     const char *what)
{
	size_t bad = fx_verify(p->in, len, seed, 0);

	CHECK_EQ_MSG(bad, len, "%s: wrong byte at %zu", what, bad);
	for (size_t i = len; i < MSG + GUARD; i++)
		if (p->in[i]) {
			CHECK_MSG(0, "%s: byte %zu past the receive written",
				  what, i);
			break;
		}
}

/* A sends len while B, its receive posted, does not progress: the DATA
 * datagrams A sends meanwhile (the early ones). */
static unsigned long sent_unanswered(struct pair *p, size_t len,
				     uint64_t seed)
{
	unsigned long before = atomic_load(&bulk_datagrams);
	uint64_t end = fx_now_ms() + 200;

	fx_fill(p->out, len, seed, 0);
	post_recv(p, len);
	CHECK_EQ(fi_send(p->a.ep, p->out, len, NULL, p->to_b, NULL), 0);
	while (fx_now_ms() < end)
		fi_cq_read(p->a.cq, NULL, 0);
	return atomic_load(&bulk_datagrams) - before;
}

static void expected(struct pair *p, size_t len, uint64_t seed)
{
	struct fi_cq_err_entry eb;

	fx_fill(p->out, len, seed, 0);
	post_recv(p, len);
	CHECK_EQ(fi_send(p->a.ep, p->out, len, NULL, p->to_b, NULL), 0);
	CHECK_EQ_MSG(wait_pair(p, &eb), 1, "expected %zu: no completion", len);
	CHECK_EQ(eb.err, 0);
	check_in(p, len, seed, "expected");
}

/* The RTS and its early DATA reach B before B posts the receive. */
static void unexpected(struct pair *p, size_t len, uint64_t seed)
{
	struct fi_cq_err_entry eb;
	uint64_t end = fx_now_ms() + 100;

	fx_fill(p->out, len, seed, 0);
	CHECK_EQ(fi_send(p->a.ep, p->out, len, NULL, p->to_b, NULL), 0);
	while (fx_now_ms() < end) {
		fi_cq_read(p->a.cq, NULL, 0);
		fi_cq_read(p->b.cq, NULL, 0);
	}
	post_recv(p, len);
	CHECK_EQ_MSG(wait_pair(p, &eb), 1, "unexpected %zu: no completion",
		     len);
	CHECK_EQ(eb.err, 0);
	check_in(p, len, seed, "unexpected");
}

/* B hears the RTS while its early DATA is held back, then posts the
 * receive: the DATA datagrams sent from then on. */
static unsigned long unexpected_intact(struct pair *p, size_t len,
				       uint64_t seed)
{
	struct fi_cq_err_entry eb;
	uint64_t end = fx_now_ms() + 50;
	unsigned long before;

	fx_fill(p->out, len, seed, 0);
	atomic_store(&hold_bulk, true);
	CHECK_EQ(fi_send(p->a.ep, p->out, len, NULL, p->to_b, NULL), 0);
	while (fx_now_ms() < end) {
		fi_cq_read(p->a.cq, NULL, 0);
		fi_cq_read(p->b.cq, NULL, 0);
	}
	atomic_store(&hold_bulk, false);
	before = atomic_load(&bulk_datagrams);
	post_recv(p, len);
	CHECK_EQ_MSG(wait_pair(p, &eb), 1, "intact %zu: no completion", len);
	CHECK_EQ(eb.err, 0);
	check_in(p, len, seed, "unexpected, early DATA intact");
	return atomic_load(&bulk_datagrams) - before;
}

/* Reads A's CQ (B progressing too) until A's op completes: its error. */
static int wait_a(struct pair *p)
{
	uint64_t end = fx_now_ms() + FX_TIMEOUT_MS;
	struct fi_cq_data_entry e;
	struct fi_cq_err_entry err;
	ssize_t ret;

	do {
		fi_cq_read(p->b.cq, NULL, 0);
		ret = fi_cq_read(p->a.cq, &e, 1);
	} while (ret == -FI_EAGAIN && fx_now_ms() < end);
	if (ret == -FI_EAVAIL) {
		memset(&err, 0, sizeof(err));
		return fi_cq_readerr(p->a.cq, &err, 0) == 1 ? err.err : -1;
	}
	return ret == 1 ? 0 : -1;
}

/* A writes len bytes at B's in (key: B's, or a wrong one). */
static void write_one(struct pair *p, size_t len, uint64_t key, int want,
		      uint64_t seed)
{
	memset(p->in, 0, MSG + GUARD);
	fx_fill(p->out, len, seed, 0);
	CHECK_EQ(fi_write(p->a.ep, p->out, len, NULL, p->to_b, p->base, key,
			  NULL), 0);
	CHECK_EQ_MSG(wait_a(p), want, "write of %zu", len);
	check_in(p, want ? 0 : len, seed, want ? "refused write" : "write");
}

/* A writes len while B does not progress: the DATA datagrams meanwhile;
 * then the write completes. */
static unsigned long write_unanswered(struct pair *p, size_t len,
				      uint64_t seed)
{
	unsigned long before = atomic_load(&bulk_datagrams);
	uint64_t end = fx_now_ms() + 200;
	unsigned long sent;

	memset(p->in, 0, MSG + GUARD);
	fx_fill(p->out, len, seed, 0);
	CHECK_EQ(fi_write(p->a.ep, p->out, len, NULL, p->to_b, p->base, p->key,
			  NULL), 0);
	while (fx_now_ms() < end)
		fi_cq_read(p->a.cq, NULL, 0);
	sent = atomic_load(&bulk_datagrams) - before;
	CHECK_EQ(wait_a(p), 0);
	check_in(p, len, seed, "write unanswered at first");
	return sent;
}

/* A receive of want bytes for a message of len: FI_ETRUNC. */
static void truncated(struct pair *p, size_t len, size_t want, uint64_t seed)
{
	struct fi_cq_err_entry eb;

	fx_fill(p->out, len, seed, 0);
	post_recv(p, want);
	CHECK_EQ(fi_send(p->a.ep, p->out, len, NULL, p->to_b, NULL), 0);
	CHECK_EQ_MSG(wait_pair(p, &eb), 1, "truncated: no completion");
	CHECK_EQ(eb.err, FI_ETRUNC);
	CHECK_EQ(eb.olen, len - want);
	check_in(p, want, seed, "truncated");
}

static void open_pair(struct pair *p)
{
	struct fi_cq_err_entry eb;
	fi_addr_t to_a;

	p->out = malloc(MSG);
	p->in = malloc(MSG + GUARD);
	CHECK_EQ(fx_open(&p->a, FI_MSG | FI_RMA, FX_MR_OMPI), 0);
	CHECK_EQ(fx_open(&p->b, FI_MSG | FI_RMA, FX_MR_OMPI), 0);
	CHECK_EQ(fx_reg(&p->b, p->in, MSG + GUARD, FI_REMOTE_WRITE, 0, &p->mr),
		 0);
	p->base = fx_rma_base(&p->b, p->in);
	p->key = fi_mr_key(p->mr);
	CHECK_EQ(fx_join(&p->a, &p->b, true, &p->to_b, &to_a), 0);
	/* The handshake, by an eager message. */
	fx_fill(p->out, 8, 1, 0);
	post_recv(p, 8);
	CHECK_EQ(fi_send(p->a.ep, p->out, 8, NULL, p->to_b, NULL), 0);
	CHECK_EQ(wait_pair(p, &eb), 1);
}

static void close_pair(struct pair *p)
{
	fi_close(&p->mr->fid);
	fx_close(&p->a);
	fx_close(&p->b);
	free(p->out);
	free(p->in);
}

/* Everything but the unanswered count, which faults make unsteady. */
static void transfers(struct pair *p)
{
	for (int i = 0; i < 3 && !usb4_test_failures; i++) {
		expected(p, SMALL, 10 + i);
		expected(p, MSG, 20 + i);
		unexpected(p, SMALL, 30 + i);
		unexpected(p, MSG, 40 + i);
		truncated(p, MSG, SMALL + 123, 50 + i);
		truncated(p, SMALL, 5000, 60 + i);
		write_one(p, MSG, p->key, 0, 70 + i);
		write_one(p, SMALL, p->key, 0, 80 + i);
		write_one(p, MSG, p->key ^ 0x40, FI_EACCES, 90 + i);
	}
}

int main(int argc, char **argv)
{
	struct fi_cq_err_entry eb;
	struct pair p = { 0 }, old = { 0 };
	bool faulty = argc > 1 && !strcmp(argv[1], "faults");
	unsigned long early;

	alarm(120);
	setenv("FI_USB4_IFACE", "lo", 1);
	setenv("FI_USB4_PROGRESS_IDLE_MS", "0", 1);
	open_pair(&p);
	if (!faulty) {
		early = sent_unanswered(&p, MSG, 2);
		printf("# DATA datagrams before the receiver answered: %lu\n",
		       early);
		CHECK_MSG(early >= 1, "no DATA before the CTS");
		CHECK_EQ(wait_pair(&p, &eb), 1);
		check_in(&p, MSG, 2, "unanswered at first");
		/* 5 DATA datagrams make MSG; sent again from byte 0: 9+. */
		early = unexpected_intact(&p, MSG, 4);
		printf("# DATA datagrams after a late receive, early DATA "
		       "intact: %lu\n", early);
		CHECK_MSG(early < 8, "%lu DATA datagrams: the early DATA was "
			  "sent again", early);
		early = write_unanswered(&p, MSG, 5);
		printf("# write: DATA datagrams before the target answered: "
		       "%lu\n", early);
		CHECK_MSG(early >= 1, "no write DATA before the CTS");
	}
	transfers(&p);
	close_pair(&p);

	/* Older peers: no early DATA, and every message still arrives. */
	atomic_store(&old_peers, true);
	open_pair(&old);
	CHECK_MSG(atomic_load(&hellos_stripped) > 0, "no HELLO was seen");
	if (!faulty) {
		early = sent_unanswered(&old, MSG, 3);
		CHECK_EQ_MSG(early, 0, "early DATA sent to an older peer");
		CHECK_EQ(wait_pair(&old, &eb), 1);
		check_in(&old, MSG, 3, "older peer");
	}
	transfers(&old);
	close_pair(&old);
	atomic_store(&old_peers, false);
	if (faulty || usb4_test_failures)
		return usb4_test_done(faulty ? "test_rndv_early (faults)" :
					       "test_rndv_early");
	fflush(NULL);
	setenv("FI_USB4_FAULTS", "drop=0.05,dup=0.05,reorder=0.05,corrupt=0.05",
	       1);
	execl("/proc/self/exe", argv[0], "faults", (char *) NULL);
	CHECK(!"exec of the faults pass");
	return usb4_test_done("test_rndv_early");
}
