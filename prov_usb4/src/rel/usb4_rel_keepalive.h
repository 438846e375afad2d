/*
 * Keepalive probes of one rel session (private to src/rel): when a peer that
 * offered USB4_WIRE_FEATURE_PROBE has been silent for idle_ns, rel sends it
 * ACKs flagged USB4_REL_F_PROBE, which it answers at once; if nothing
 * authenticated comes back, the peer is dead dead_ns after it was last
 * heard (so a pulled cable fails a side that only receives as soon as one
 * that waits for acks), yet never sooner than half of dead_ns after the
 * first probe.  A hint that the peer may be gone (an ICMP port-unreachable for its
 * address: unauthenticated, anyone can forge one) starts probing at once
 * with a short verdict time, so a forged hint kills only a peer that does
 * not answer.
 *
 * Pure logic on the caller's clock: usb4_rel.c asks what is due, sends the
 * probes and says when the peer was heard.  The verdict is timed from the
 * first probe (dead_ns - idle_ns after it, at least dead_ns / 2), never
 * from before it: a process that was itself not running (not calling in)
 * probes first and judges after.
 */
#ifndef USB4_REL_KEEPALIVE_H
#define USB4_REL_KEEPALIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "usb4_rel.h"

/* Probes per verdict period: a lost probe or answer is not a death. */
#define USB4_REL_KA_PROBES	3u

struct usb4_rel_ka {
	uint64_t idle_ns;	/* silence before probing; 0: never probe */
	uint64_t dead_ns;	/* the peer timeout (see above) */
	uint64_t since;		/* probing since (0: not probing) */
	uint64_t next;		/* the next probe goes then */
	uint64_t verdict;	/* dead if still silent then */
	uint64_t interval;	/* between probes */
	bool hinted;		/* this probing began with a hint */
	struct usb4_rel_ka_stats *stats;	/* the session's counters */
};

enum usb4_rel_ka_action {
	USB4_REL_KA_NONE,
	USB4_REL_KA_PROBE,	/* send one probe now, then usb4_rel_ka_sent */
	USB4_REL_KA_DEAD,	/* the peer is dead */
};

void usb4_rel_ka_init(struct usb4_rel_ka *ka, uint64_t idle_ns,
		      uint64_t dead_ns, struct usb4_rel_ka_stats *stats);
/* What is due at now, the peer last heard at last_rx. */
enum usb4_rel_ka_action usb4_rel_ka_due(struct usb4_rel_ka *ka, uint64_t now,
					uint64_t last_rx);
/* A probe went at now. */
void usb4_rel_ka_sent(struct usb4_rel_ka *ka, uint64_t now);
/* An authenticated datagram of the peer's arrived: probing ends. */
void usb4_rel_ka_heard(struct usb4_rel_ka *ka);
/* The peer may be gone: probe now, dead unless heard within confirm_ns. */
void usb4_rel_ka_hint(struct usb4_rel_ka *ka, uint64_t now,
		      uint64_t confirm_ns);
/* The peer was found dead (by us or otherwise): a hint is confirmed. */
void usb4_rel_ka_dead(struct usb4_rel_ka *ka);
/* When usb4_rel_ka_due next has something to do (UINT64_MAX: never). */
uint64_t usb4_rel_ka_deadline(const struct usb4_rel_ka *ka, uint64_t last_rx);

#endif /* USB4_REL_KEEPALIVE_H */
