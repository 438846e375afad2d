/*
 * Messages to a peer on another host that fit one datagram go eager: one
 * datagram (and its delivery ACK, asked for by FI_DELIVERY_COMPLETE), not a
 * rendezvous (RTS, CTS, DATA, FIN), whose extra round trip cost a 32 KiB
 * ping-pong more than the copy into the receive buffer that eager adds.
 * Two endpoints of this process over the udp link on loopback (both
 * addresses given another host's id); datagrams are counted by defining
 * sendmsg here (usb4_sendto_shim.h routes sendto through it).
 *
 *   - MSGS awaited 32 KiB messages take fewer than 3 datagrams each (a
 *     rendezvous takes 4): the bytes arrive right;
 *   - a message one byte longer than a datagram holds still arrives whole
 *     (a rendezvous), and so does a message sent before its receive is
 *     posted (an unexpected eager message of 32 KiB).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "usb4_test.h"
#include "usb4_fixture.h"
#include "usb4_sendmsg_count.h"
#include "usb4_sendto_shim.h"

#define MSGS		50
#define MID		32768	/* above the old 16 KiB udp eager limit */
#define BIG		65536	/* more than a 64 KiB datagram's payload */

struct pair {
	struct fx a, b;
	fi_addr_t to_b;
};

/* Reads both CQs until each gave one completion: 1, or -1 on an error or
 * a timeout. */
static int wait_pair(struct pair *p)
{
	uint64_t end = fx_now_ms() + FX_TIMEOUT_MS;
	struct fi_cq_data_entry e;
	int got_a = 0, got_b = 0;

	while ((!got_a || !got_b) && fx_now_ms() < end) {
		ssize_t ra = fi_cq_read(p->a.cq, &e, 1);
		ssize_t rb = fi_cq_read(p->b.cq, &e, 1);

		if ((ra < 0 && ra != -FI_EAGAIN) || (rb < 0 && rb != -FI_EAGAIN))
			return -1;
		got_a += ra == 1;
		got_b += rb == 1;
	}
	return got_a && got_b ? 1 : -1;
}

/* One message of len bytes A -> B; the receive posted first unless late. */
static void message_ok(struct pair *p, size_t len, bool late, uint64_t seed)
{
	char *out = malloc(len), *in = malloc(len);

	fx_fill(out, len, seed, 0);
	memset(in, 0, len);
	if (!late)
		CHECK_EQ(fi_recv(p->b.ep, in, len, NULL, FI_ADDR_UNSPEC, NULL),
			 0);
	CHECK_EQ(fi_send(p->a.ep, out, len, NULL, p->to_b, NULL), 0);
	if (late) {
		for (int i = 0; i < 1000; i++)
			fi_cq_read(p->b.cq, NULL, 0);	/* B hears it */
		CHECK_EQ(fi_recv(p->b.ep, in, len, NULL, FI_ADDR_UNSPEC, NULL),
			 0);
	}
	CHECK_EQ_MSG(wait_pair(p), 1, "message of %zu%s", len,
		     late ? " (unexpected)" : "");
	CHECK_EQ_MSG(fx_verify(in, len, seed, 0), len,
		     "message of %zu: wrong bytes", len);
	free(out);
	free(in);
}

static void open_pair(struct pair *p)
{
	fi_addr_t to_a;

	CHECK_EQ(fx_open(&p->a, FI_MSG, FX_MR_OMPI), 0);
	CHECK_EQ(fx_open(&p->b, FI_MSG, FX_MR_OMPI), 0);
	CHECK_EQ(fx_join(&p->a, &p->b, true, &p->to_b, &to_a), 0);
}

int main(void)
{
	struct pair p = { 0 };
	unsigned long sent;

	alarm(60);
	setenv("FI_USB4_IFACE", "lo", 1);
	setenv("FI_USB4_PROGRESS_IDLE_MS", "0", 1);
	open_pair(&p);
	message_ok(&p, 8, false, 1);	/* the handshake is done */

	sent = atomic_load(&datagrams);
	for (int i = 0; i < MSGS && !usb4_test_failures; i++)
		message_ok(&p, MID, false, 100 + i);
	sent = atomic_load(&datagrams) - sent;
	printf("# %d messages of %d B: %lu datagrams\n", MSGS, MID, sent);
	CHECK_MSG(sent < 3 * MSGS, "%lu datagrams for %d messages of %d B: "
		  "not eager", sent, MSGS, MID);
	message_ok(&p, BIG, false, 7);
	message_ok(&p, MID, true, 8);
	message_ok(&p, BIG, true, 9);
	fx_close(&p.a);
	fx_close(&p.b);
	return usb4_test_done("test_udp_eager");
}
