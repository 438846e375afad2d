/*
 * rel's congestion controller (usb4_rel_cc.c): how many bytes one rel peer
 * may have in flight, adapted from the acknowledgements rel already gets.
 *
 * Bytes, not datagrams: a datagram carries anything from a few bytes to
 * 64 KiB, and a bottleneck (a shaped or shared link, a queue in front of
 * it) drains bytes at its rate whatever they are packed in; a window in
 * datagrams would let 64 KiB frames overrun a queue that tiny ones never
 * fill.  rel still bounds datagrams in flight by its own and the peer's
 * window; the controller adds a bound in bytes.
 *
 * Algorithm: slow start to a threshold, then additive increase (one largest
 * datagram per round trip); a loss (sacks, the reordering allowance) halves
 * the window once per window of data; a retransmission timeout collapses
 * it to one datagram.  Because a shallow queue in front of a slow link holds
 * only a few 64 KiB datagrams, loss alone would make the window overrun
 * the queue again and again; so the controller also watches queueing delay:
 * the smallest round trip of each round (a round: one window acknowledged)
 * against the smallest round trip seen lately.  A round whose every sample
 * waited more than USB4_CC_QDELAY_NS in a queue ends slow start and takes
 * an eighth off the window: the queue stays short and no datagram is lost.
 * Such a cut leaves the threshold where the queue first showed, so after a
 * passing stall (the receiving process descheduled on a busy host looks the
 * same) the window regains its size in slow start; acks that waited in a
 * queue never grow it.
 * The round's minimum, not the smoothed round trip, is the signal because a
 * busy host stalls single samples by milliseconds; a standing queue delays
 * all of them.  Still, two processes time-sliced on one busy core delay
 * whole rounds by more than that with no queue in the path: delay is
 * trusted only on a path that lost a datagram within USB4_CC_DELAY_ARMED_NS
 * (one whose queue overflows: a shaper, a shared link).  Elsewhere (a
 * cable whose only queue is the receiver's 8 MiB socket buffer) the window
 * follows loss alone, and a deep queue costs no spurious resends because
 * the retransmission timeout follows the round trip (usb4_rel_cc_rto).  No pacing: the window's datagrams go back to back.
 *
 * One controller per rel peer today; it knows nothing of rel's peer, only
 * sequence numbers, bytes and times, so a peer striped over several paths
 * could keep one per path.  Serialised by the caller, like rel.  No system
 * calls: times are the caller's clock (ns).
 */
#ifndef USB4_REL_CC_H
#define USB4_REL_CC_H

#include <stdbool.h>
#include <stdint.h>

/* Queueing delay that counts as a standing queue. */
#define USB4_CC_QDELAY_NS	(4ull * 1000 * 1000)
/* How long a minimum round trip stands for the path's (it may change):
 * the base is the smaller of this period's and the last one's. */
#define USB4_CC_BASE_PERIOD_NS	(10ull * 1000 * 1000 * 1000)
/* How long after a loss queueing delay counts: a path that kept its queue
 * short this long without loss probes with loss again (then 1 loss event
 * per this period, a few datagrams). */
#define USB4_CC_DELAY_ARMED_NS	(10ull * 1000 * 1000 * 1000)

struct usb4_rel_cc {
	bool on;		/* off: no limit in bytes (the fixed window) */
	uint64_t mss;		/* largest datagram payload, bytes */
	uint64_t cwnd;		/* bytes that may be in flight */
	uint64_t cwnd_max;	/* no use beyond what rel's window sends */
	uint64_t ssthresh;	/* slow start below this */
	uint64_t flight;	/* bytes sent, not acked nor sacked */
	uint64_t ai_acc;	/* bytes acked towards the next increase */
	bool recovering;	/* a decrease of this window was made */
	bool fast;		/* repairing a loss: the window holds */
	uint32_t recover;	/* ... until the ack passes this seq */
	uint32_t round_end;	/* the round ends when the ack passes this */
	uint64_t round_min;	/* smallest sample of this round, 0: none */
	uint64_t base_now, base_prev;	/* smallest samples, 0: none */
	uint64_t base_since;	/* when base_now's period began */
	uint64_t srtt, rttvar;	/* smoothed round trip and its deviation */
	uint64_t lost_at;	/* the last loss or timeout, 0: none yet */
};

/* mss: the largest payload; window: rel's bound in datagrams. */
void usb4_rel_cc_init(struct usb4_rel_cc *cc, bool on, uint64_t mss,
		      uint32_t window, uint32_t seq, uint64_t now);
/* Whether a new datagram may go now (at least one always may when nothing
 * is in flight). */
bool usb4_rel_cc_allows(const struct usb4_rel_cc *cc);
/* A datagram of len bytes went out for the first time. */
void usb4_rel_cc_sent(struct usb4_rel_cc *cc, uint64_t len);
/* len bytes in flight arrived (sacked, or acked while still in flight). */
void usb4_rel_cc_left(struct usb4_rel_cc *cc, uint64_t len);
/* The cumulative ack moved to ack, acknowledging bytes newly; rtt is a
 * round-trip sample of it (0: none, Karn); snd_tx is the next seq to go.
 * True when it cut the window for queueing delay. */
bool usb4_rel_cc_acked(struct usb4_rel_cc *cc, uint64_t now, uint32_t ack,
		       uint64_t bytes, uint64_t rtt, uint32_t snd_tx);
/* A datagram was found lost (sacks) and goes again; snd_tx as above.
 * True when that cut the window (once per window of data). */
bool usb4_rel_cc_lost(struct usb4_rel_cc *cc, uint64_t now, uint32_t snd_tx);
/* A retransmission timeout fired; true when it cut the window. */
bool usb4_rel_cc_timeout(struct usb4_rel_cc *cc, uint64_t now,
			 uint32_t snd_tx);
/* The retransmission timeout before backoff: at least floor, and with
 * control on at least the smoothed round trip plus four deviations, so a
 * queue that delays datagrams past floor does not make them all go again
 * (each spurious timeout would also collapse the window). */
uint64_t usb4_rel_cc_rto(const struct usb4_rel_cc *cc, uint64_t floor);

#endif /* USB4_REL_CC_H */
