/*
 * The receive's short cuts (src/core/usb4_match.c) and the ways around
 * them, over both links (shm; udp on loopback with the addresses given
 * another host's id), normally and with FI_USB4_PORTABLE=1, each in a
 * child of its own.
 *
 * A receive of one buffer with nothing unexpected waiting goes on the
 * posted list without a call; an eager message for it is copied by a
 * copy of its own for up to 16 bytes.  So: every length of 0-17 bytes and
 * a few beyond, into a buffer of the message's length and into a larger
 * one, each byte checked and nothing written past the message; the same
 * lengths into a smaller buffer (FI_ETRUNC with the overflow length,
 * nothing written past the buffer); a receive naming no AV entry refused
 * (-FI_EINVAL), on the short path and with FI_PEEK; a receive naming one
 * peer not filled by another; a receive posted after its message (the
 * unexpected queue, the long way); FI_PEEK and FI_CLAIM.
 */
#include <stdlib.h>
#include <string.h>

#include <rdma/fi_tagged.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define BUF		256
#define CANARY		0xa5
#define TAG		0x7a9

/* One tagged entry or error: 1, 0 (err filled), -FI_ETIMEDOUT. */
static int wait_tagged(struct fx *rx, struct fx *tx,
		       struct fi_cq_tagged_entry *e, struct fi_cq_err_entry *err)
{
	uint64_t end = fx_now_ms() + FX_TIMEOUT_MS;
	ssize_t ret;

	do {
		fi_cq_read(tx->cq, NULL, 0);	/* acks, retransmits (udp) */
		ret = fi_cq_read(rx->cq, e, 1);
		if (ret == 1)
			return 1;
		if (ret == -FI_EAVAIL) {
			memset(err, 0, sizeof(*err));
			return fi_cq_readerr(rx->cq, err, 0) == 1 ? 0 : -FI_EOTHER;
		}
	} while (ret == -FI_EAGAIN && fx_now_ms() < end);
	return -FI_ETIMEDOUT;
}

static void send_pattern(struct fx *tx, fi_addr_t to, size_t len, int seed,
			 uint64_t tag)
{
	char msg[BUF];

	fx_fill(msg, len, seed, 0);
	while (fi_tinjectdata(tx->ep, msg, len, 0, to, tag) == -FI_EAGAIN)
		fi_cq_read(tx->cq, NULL, 0);
}

/* Whether buf holds the pattern's first n bytes and the canary from n to
 * BUF. */
static bool landed(const char *buf, size_t n, int seed)
{
	if (fx_verify(buf, n, seed, 0) != n)
		return false;
	for (size_t i = n; i < BUF; i++)
		if ((unsigned char) buf[i] != CANARY)
			return false;
	return true;
}

/* Posts a receive of room bytes, then a message of len arrives. */
static void one(struct fx *b, struct fx *a, fi_addr_t a_at_b, fi_addr_t b_at_a,
		size_t len, size_t room, const char *what)
{
	char buf[BUF];
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	size_t n = len < room ? len : room;
	int seed = (int) (len * 31 + room), got;

	memset(buf, CANARY, sizeof(buf));
	CHECK_EQ(fi_trecv(b->ep, buf, room, NULL, a_at_b, TAG, 0, buf), 0);
	send_pattern(a, b_at_a, len, seed, TAG);
	got = wait_tagged(b, a, &e, &err);
	if (len <= room) {
		CHECK_EQ_MSG(got, 1, "%s %zu into %zu: an entry", what, len,
			     room);
		CHECK_EQ_MSG(e.len, len, "%s %zu into %zu: its length", what,
			     len, room);
		CHECK_EQ_MSG(e.tag, (uint64_t) TAG, "%s %zu: its tag", what, len);
		CHECK_MSG(e.op_context == buf, "%s %zu: its context", what, len);
	} else {
		CHECK_EQ_MSG(got, 0, "%s %zu into %zu: an error", what, len,
			     room);
		CHECK_EQ_MSG(err.err, FI_ETRUNC, "%s %zu into %zu: FI_ETRUNC",
			     what, len, room);
		CHECK_EQ_MSG(err.olen, len - room, "%s %zu into %zu: overflow",
			     what, len, room);
	}
	CHECK_MSG(landed(buf, n, seed), "%s %zu into %zu: the bytes, nothing "
		  "past %zu", what, len, room, n);
}

static void lengths(struct fx *b, struct fx *a, fi_addr_t a_at_b,
		    fi_addr_t b_at_a)
{
	static const size_t more[] = { 24, 31, 32, 33, 63, 64, 65, 200 };

	for (size_t len = 0; len <= 17; len++) {
		one(b, a, a_at_b, b_at_a, len, len, "exact");
		one(b, a, a_at_b, b_at_a, len, BUF, "roomy");
		if (len)
			one(b, a, a_at_b, b_at_a, len, len - 1, "short");
		if (len > 4)
			one(b, a, a_at_b, b_at_a, len, len / 2, "half");
	}
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
		one(b, a, a_at_b, b_at_a, more[i], more[i], "exact");
		one(b, a, a_at_b, b_at_a, more[i], 9, "short");
	}
}

/* A receive naming no AV entry, on the short path and with FI_PEEK. */
static void unknown_peer(struct fx *b)
{
	char buf[8];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct fi_context ctx;
	struct fi_msg_tagged msg = {
		.msg_iov = &iov, .iov_count = 1, .addr = 4321, .tag = TAG,
		.context = &ctx,
	};

	CHECK_EQ(fi_trecv(b->ep, buf, sizeof(buf), NULL, 4321, TAG, 0, buf),
		 -FI_EINVAL);
	CHECK_EQ(fi_trecvmsg(b->ep, &msg, FI_PEEK), -FI_EINVAL);
	CHECK(fx_cq_empty(b->cq));
}

/* B names A; C's message waits unexpected until a receive naming C. */
static void directed(struct fx *b, struct fx *a, struct fx *c,
		     fi_addr_t a_at_b, fi_addr_t c_at_b, fi_addr_t b_at_a,
		     fi_addr_t b_at_c)
{
	char from_a[BUF], from_c[BUF];
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;

	memset(from_a, CANARY, sizeof(from_a));
	memset(from_c, CANARY, sizeof(from_c));
	CHECK_EQ(fi_trecv(b->ep, from_a, 8, NULL, a_at_b, 0, ~0ull, from_a), 0);
	send_pattern(c, b_at_c, 8, 3, TAG);
	send_pattern(a, b_at_a, 8, 1, TAG);
	CHECK_EQ(wait_tagged(b, a, &e, &err), 1);
	CHECK_MSG(e.op_context == from_a && landed(from_a, 8, 1),
		  "the receive naming A took A's message");
	CHECK_EQ(fi_trecv(b->ep, from_c, 8, NULL, c_at_b, 0, ~0ull, from_c), 0);
	CHECK_EQ(wait_tagged(b, c, &e, &err), 1);
	CHECK_MSG(e.op_context == from_c && landed(from_c, 8, 3),
		  "C's message waited for the receive naming C");
}

/* Messages before their receives; FI_PEEK then FI_CLAIM. */
static void unexpected(struct fx *b, struct fx *a, fi_addr_t a_at_b,
		       fi_addr_t b_at_a)
{
	char buf[BUF];
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	struct fi_context ctx;
	struct iovec iov = { .iov_base = buf, .iov_len = 16 };
	struct fi_msg_tagged msg = {
		.msg_iov = &iov, .iov_count = 1, .addr = a_at_b, .tag = TAG,
		.context = &ctx,
	};

	send_pattern(a, b_at_a, 12, 5, TAG);
	send_pattern(a, b_at_a, 16, 6, TAG + 1);
	for (int i = 0; i < 50; i++)	/* both arrive (udp: over loopback) */
		fi_cq_read(b->cq, NULL, 0), fi_cq_read(a->cq, NULL, 0);
	memset(buf, CANARY, sizeof(buf));
	CHECK_EQ(fi_trecv(b->ep, buf, 12, NULL, a_at_b, TAG, 0, buf), 0);
	CHECK_EQ(wait_tagged(b, a, &e, &err), 1);
	CHECK_MSG(e.len == 12 && landed(buf, 12, 5), "an unexpected 12 B");
	msg.tag = TAG + 1;
	CHECK_EQ(fi_trecvmsg(b->ep, &msg, FI_PEEK | FI_CLAIM), 0);
	CHECK_EQ(wait_tagged(b, a, &e, &err), 1);
	CHECK_EQ_MSG(e.len, (uint64_t) 16, "the peek's length");
	memset(buf, CANARY, sizeof(buf));
	CHECK_EQ(fi_trecvmsg(b->ep, &msg, FI_CLAIM), 0);
	CHECK_EQ(wait_tagged(b, a, &e, &err), 1);
	CHECK_MSG(e.len == 16 && landed(buf, 16, 6), "the claimed 16 B");
}

static int open_one(struct fx *f, bool udp)
{
	struct fi_info *h = fx_hints(FI_TAGGED | FI_DIRECTED_RECV, 0);

	if (h)
		h->domain_attr->threading = FI_THREAD_DOMAIN;
	if (fx_open_format(f, h, FI_CQ_FORMAT_TAGGED))
		return -1;
	if (udp)
		fx_other_host(f->addr);
	return 0;
}

static int run_case(bool udp)
{
	struct fx a, b, c;
	fi_addr_t a_at_b, c_at_b, b_at_a, b_at_c;

	if (open_one(&a, udp) || open_one(&b, udp) || open_one(&c, udp)) {
		CHECK_MSG(false, "open");
		return 1;
	}
	a_at_b = fx_insert(&b, a.addr);
	c_at_b = fx_insert(&b, c.addr);
	b_at_a = fx_insert(&a, b.addr);
	b_at_c = fx_insert(&c, b.addr);
	CHECK(a_at_b != FI_ADDR_NOTAVAIL && c_at_b != FI_ADDR_NOTAVAIL &&
	      b_at_a != FI_ADDR_NOTAVAIL && b_at_c != FI_ADDR_NOTAVAIL);
	lengths(&b, &a, a_at_b, b_at_a);
	unknown_peer(&b);
	directed(&b, &a, &c, a_at_b, c_at_b, b_at_a, b_at_c);
	unexpected(&b, &a, a_at_b, b_at_a);
	fx_close(&c);
	fx_close(&a);
	fx_close(&b);
	return usb4_test_failures ? 1 : 0;
}

int main(void)
{
	fx_each_link_child(run_case);
	return usb4_test_done("test_recv_fast");
}
