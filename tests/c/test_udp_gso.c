/*
 * Unit tests of send batching with UDP GSO (prov_usb4/src/link/usb4_udp_gso.c)
 * through the udp socket, over loopback with a 4 KiB-frame MTU: datagrams
 * given to usb4_udp_send_more wait for the flush (or a full batch) and then
 * arrive each on its own, whole, in order, with the small pieces that were
 * copied intact although the caller's buffer changed; a datagram that
 * cannot join the batch starts the next; a direct send goes after what was
 * batched; a kernel that refuses GSO on the socket (SO_NO_CHECK: EINVAL)
 * gets the batch datagram by datagram and no batch after; FI_USB4_UDP_GSO=0
 * and large frames never batch.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "usb4_udp.h"
#include "usb4_udp_gso.h"
#include "usb4_test.h"

#define FRAME_MTU	4084
#define DGRAM		4000	/* at most FRAME_MTU - 28 */
#define HDR		40	/* a piece small enough to be copied */
#define MAXN		40

struct got {
	int n;
	size_t len[MAXN];
	unsigned char data[MAXN][DGRAM];
};

static void on_rx(void *arg, const struct usb4_udp_addr *from,
		  const struct iovec *dgram, int count)
{
	struct got *g = arg;
	size_t len = 0;

	(void) from;
	CHECK_MSG(g->n < MAXN, "more datagrams than were sent");
	if (g->n >= MAXN)
		return;
	for (int i = 0; i < count; i++) {
		if (len + dgram[i].iov_len > DGRAM) {
			CHECK_MSG(0, "a datagram longer than any sent");
			return;
		}
		memcpy(g->data[g->n] + len, dgram[i].iov_base, dgram[i].iov_len);
		len += dgram[i].iov_len;
	}
	g->len[g->n++] = len;
}

static struct usb4_iface frame_iface(unsigned mtu)
{
	struct usb4_iface lo = { .name = "lo", .family = AF_INET, .mtu = mtu };

	inet_pton(AF_INET, "127.0.0.1", lo.ip);
	return lo;
}

static unsigned char byte_of(unsigned seed, size_t i)
{
	return (unsigned char) (i * 13 + seed * 101 + 7);
}

/* The payloads stay where they are until flushed (as rel's do). */
static unsigned char payload[MAXN][DGRAM];

/* Datagram `seed` of len bytes: a HDR-byte header from a stack buffer that
 * is scribbled over once the call returns, then the payload. */
static int send_one(struct usb4_udp_sock *from, const struct usb4_udp_addr *to,
		    unsigned seed, size_t len, bool more)
{
	unsigned char hdr[HDR];
	struct iovec iov[2] = { { hdr, HDR },
				{ payload[seed] + HDR, len - HDR } };
	int ret;

	for (size_t i = 0; i < len; i++)
		payload[seed][i] = byte_of(seed, i);
	memcpy(hdr, payload[seed], HDR);
	ret = more ? usb4_udp_send_more(from, to, iov, 2) :
		     usb4_udp_send(from, to, iov, 2);
	memset(hdr, 0xee, sizeof(hdr));
	return ret;
}

static int drain(struct usb4_udp_sock *sock, struct got *g, int want)
{
	for (int tries = 0; g->n < want && tries < 2000; tries++)
		usb4_udp_poll(sock, NULL, on_rx, g, 8);
	usb4_udp_poll(sock, NULL, on_rx, g, 8);	/* and nothing more */
	return g->n;
}

/* g holds datagrams seeds[0..n) of lens[0..n), whole and in order. */
static void check_got(const struct got *g, const unsigned *seeds,
		      const size_t *lens, int n, const char *what)
{
	CHECK_EQ_MSG(g->n, n, "%s: datagrams arrived", what);
	for (int i = 0; i < n && i < g->n; i++) {
		bool same = g->len[i] == lens[i];

		for (size_t k = 0; same && k < lens[i]; k++)
			same = g->data[i][k] == byte_of(seeds[i], k);
		CHECK_MSG(same, "%s: datagram %d (seed %u, %zu bytes) arrived "
			  "as %zu bytes, not as sent", what, i, seeds[i],
			  lens[i], g->len[i]);
	}
}

static void open_pair(struct usb4_udp_sock **a, struct usb4_udp_sock **b,
		      struct usb4_udp_addr *to, unsigned mtu)
{
	struct usb4_iface lo = frame_iface(mtu);

	CHECK_EQ(usb4_udp_sock_open(a, &lo, NULL), 0);
	CHECK_EQ(usb4_udp_sock_open(b, &lo, NULL), 0);
	usb4_udp_sock_addr(*b, to);
}

/* 10 full datagrams and a shorter one: nothing before the flush, then all
 * of them from one send. */
static void test_batch_then_flush(void)
{
	struct usb4_udp_sock *a, *b;
	struct usb4_udp_addr to;
	static struct got g;
	unsigned seeds[11];
	size_t lens[11];

	open_pair(&a, &b, &to, FRAME_MTU);
	memset(&g, 0, sizeof(g));
	for (unsigned i = 0; i < 11; i++) {
		seeds[i] = i;
		lens[i] = i < 10 ? DGRAM : 1000;
		CHECK_EQ(send_one(a, &to, i, lens[i], true), 0);
	}
	CHECK_EQ_MSG(drain(b, &g, 0), 0, "a batched datagram left before the "
		     "flush");
	usb4_udp_sock_flush(a, true);	/* the short one ended it */
	drain(b, &g, 11);
	check_got(&g, seeds, lens, 11, "one batch");
	CHECK_EQ(usb4_udp_sock_gso_stats(a)->sends, 1);
	CHECK_EQ(usb4_udp_sock_gso_stats(a)->datagrams, 11);
	CHECK_EQ(usb4_udp_sock_stats(a)->sent, 11);
	usb4_udp_sock_close(a);
	usb4_udp_sock_close(b);
}

/* A longer datagram starts a new batch; a batch that a shorter one did not
 * close waits for a full flush; a direct send goes after the batch. */
static void test_boundaries(void)
{
	struct usb4_udp_sock *a, *b;
	struct usb4_udp_addr to;
	static struct got g;
	unsigned seeds[] = { 0, 1, 2, 3, 4, 5 };
	size_t lens[] = { 3000, 3000, DGRAM, DGRAM, DGRAM, 500 };

	open_pair(&a, &b, &to, FRAME_MTU);
	memset(&g, 0, sizeof(g));
	for (int i = 0; i < 4; i++)
		CHECK_EQ(send_one(a, &to, seeds[i], lens[i], true), 0);
	CHECK_EQ_MSG(drain(b, &g, 2), 2, "the 3000-byte batch did not go when "
		     "a longer datagram came");
	usb4_udp_sock_flush(a, true);
	CHECK_EQ_MSG(drain(b, &g, 2), 2, "an open batch went on a flush of "
		     "ended ones");
	CHECK_EQ(send_one(a, &to, seeds[4], lens[4], true), 0);
	CHECK_EQ(send_one(a, &to, seeds[5], lens[5], false), 0);
	drain(b, &g, 6);
	check_got(&g, seeds, lens, 6, "batches and a direct send");
	CHECK_EQ(usb4_udp_sock_gso_stats(a)->sends, 2);
	usb4_udp_sock_close(a);
	usb4_udp_sock_close(b);
}

/* 20 full datagrams: a batch goes by itself once the next would pass
 * 64 KiB (16 of 4000 bytes). */
static void test_full_batch_goes(void)
{
	struct usb4_udp_sock *a, *b;
	struct usb4_udp_addr to;
	static struct got g;
	unsigned seeds[20];
	size_t lens[20];

	open_pair(&a, &b, &to, FRAME_MTU);
	memset(&g, 0, sizeof(g));
	for (unsigned i = 0; i < 20; i++) {
		seeds[i] = i;
		lens[i] = DGRAM;
		CHECK_EQ(send_one(a, &to, i, DGRAM, true), 0);
	}
	CHECK_EQ_MSG(drain(b, &g, 16), 16, "a full batch waited for the flush");
	usb4_udp_sock_flush(a, false);
	drain(b, &g, 20);
	check_got(&g, seeds, lens, 20, "a full batch and the rest");
	usb4_udp_sock_close(a);
	usb4_udp_sock_close(b);
}

/* SO_NO_CHECK: the kernel refuses GSO (EINVAL); the batch arrives
 * datagram by datagram and later datagrams go alone. */
static void test_kernel_refuses(void)
{
	struct usb4_udp_sock *a, *b;
	struct usb4_udp_addr to;
	static struct got g;
	unsigned seeds[] = { 0, 1, 2, 3, 4 };
	size_t lens[] = { DGRAM, DGRAM, DGRAM, DGRAM, DGRAM };
	int one = 1;

	open_pair(&a, &b, &to, FRAME_MTU);
	memset(&g, 0, sizeof(g));
	CHECK_EQ(setsockopt(usb4_udp_sock_fd(a), SOL_SOCKET, SO_NO_CHECK, &one,
			    sizeof(one)), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(send_one(a, &to, seeds[i], lens[i], true), 0);
	usb4_udp_sock_flush(a, false);
	CHECK_EQ_MSG(drain(b, &g, 3), 3, "a refused batch was lost");
	CHECK_MSG(usb4_udp_sock_gso_stats(a)->refused, "EINVAL not taken for "
		  "a kernel without GSO on the socket");
	CHECK_EQ(usb4_udp_sock_gso_stats(a)->piecemeal, 1);
	CHECK_EQ(usb4_udp_sock_gso_stats(a)->lost, 0);
	for (int i = 3; i < 5; i++)
		CHECK_EQ(send_one(a, &to, seeds[i], lens[i], true), 0);
	CHECK_EQ_MSG(drain(b, &g, 5), 5, "after a refusal datagrams still "
		     "waited for a flush");
	check_got(&g, seeds, lens, 5, "refused");
	usb4_udp_sock_close(a);
	usb4_udp_sock_close(b);
}

/* Large frames, or FI_USB4_UDP_GSO=0: every datagram leaves at once. */
static void test_not_batched(unsigned mtu, bool want, const char *what)
{
	struct usb4_udp_sock *a, *b;
	struct usb4_udp_addr to;
	static struct got g;
	unsigned seeds[] = { 0, 1 };
	size_t lens[] = { DGRAM, 100 };
	bool saved = usb4_params.udp_gso;

	usb4_params.udp_gso = want;
	open_pair(&a, &b, &to, mtu);
	usb4_params.udp_gso = saved;
	memset(&g, 0, sizeof(g));
	CHECK_EQ(send_one(a, &to, 0, DGRAM, true), 0);
	CHECK_EQ_MSG(drain(b, &g, 1), 1, "%s: a datagram waited", what);
	CHECK_EQ(send_one(a, &to, 1, 100, true), 0);
	drain(b, &g, 2);
	check_got(&g, seeds, lens, 2, what);
	CHECK_EQ(usb4_udp_sock_gso_stats(a)->sends, 0);
	usb4_udp_sock_close(a);
	usb4_udp_sock_close(b);
}

int main(void)
{
	test_batch_then_flush();
	test_boundaries();
	test_full_batch_goes();
	test_kernel_refuses();
	test_not_batched(65535, true, "64 KiB frames");
	test_not_batched(FRAME_MTU, false, "FI_USB4_UDP_GSO=0");
	return usb4_test_done("test_udp_gso");
}
