/*
 * A send that goes by the short path with nothing else in flight (each
 * send of a ping-pong: the answer acked the one before) reads the coarse
 * clock, not the precise one, so a rank reads the precise clock once per
 * round trip (on the receive) instead of twice.
 *
 * What that time is used for, and the error it brings: CLOCK_MONOTONIC_
 * COARSE is CLOCK_MONOTONIC as of the last tick (clock_getres: 4 ms at
 * HZ=250, 1 ms at HZ=1000), never ahead of it.  The frame's retransmit
 * deadline (its stamp + the RTO, at least rto_initial_ns = 50 ms) and the
 * dead clock it may start (seconds) are compared with precise times
 * later: they fire at most one tick early, against 50 ms and more.  A
 * round-trip sample needs a precise time at both ends, so the frame is
 * stamped as a retransmitted one is (Karn's rule): its ack times nothing.
 * Streams and windowed sends (something in flight, or the general path)
 * keep precise stamps, so srtt and the delay-based CC (usb4_rel_cc.c)
 * still see the path's delay where it matters: a window of frames.
 *
 * A timer loop that found no input asks the coarse clock first
 * (usb4_rel_clock_ahead): while the earliest deadline is more than a tick
 * away (an RTO of 50 ms and more, keepalives in seconds; an ack owed in
 * 200 us is not, and gets the precise clock) nothing can be due.
 */
#include <stdatomic.h>
#include <time.h>

#include "usb4.h"
#include "usb4_rel_peer.h"
#include "usb4_rel_clock.h"
#include "usb4_rel_send_small.h"

uint64_t usb4_rel_send_clock(struct usb4_rel_peer *peer,
			     const struct iovec *iov, int count, int nref)
{
	peer->stamp_coarse = !nref && !usb4_rel_outstanding(peer) &&
			     usb4_rel_small_ready(peer, iov, count);
	return peer->stamp_coarse ? usb4_coarse_now_ns() : usb4_now_ns();
}

void usb4_rel_send_clock_done(struct usb4_rel_peer *peer)
{
	peer->stamp_coarse = false;
}

/* CLOCK_MONOTONIC_COARSE's tick (clock_getres), read once; a tick of
 * 10 ms where the call fails (HZ=100, the coarsest Linux has). */
static uint64_t coarse_tick_ns(void)
{
	static _Atomic uint64_t tick;
	uint64_t t = atomic_load_explicit(&tick, memory_order_relaxed);
	struct timespec res;

	if (t)
		return t;
	t = clock_getres(CLOCK_MONOTONIC_COARSE, &res) ? 10000000 :
	    (uint64_t) res.tv_sec * 1000000000ull + (uint64_t) res.tv_nsec;
	if (!t)
		t = 1;
	atomic_store_explicit(&tick, t, memory_order_relaxed);
	return t;
}

bool usb4_rel_clock_ahead(uint64_t due)
{
	uint64_t tick = coarse_tick_ns(), now = usb4_coarse_now_ns();

	/* The coarse time is at most one tick behind the precise one. */
	return due > tick && now < due - tick;
}
