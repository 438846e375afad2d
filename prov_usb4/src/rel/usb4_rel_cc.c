/*
 * rel's congestion controller: slow start, additive increase, multiplicative
 * decrease on loss, collapse on timeout, and a cut on a standing queue
 * (usb4_rel_cc.h says why each).
 */
#include "usb4_rel_cc.h"

/* Initial window, in largest datagrams: RFC 3390's for datagrams this
 * large; a shallow queue in front of a slow link holds two or three of
 * 64 KiB, and slow start doubles from here each round trip. */
#define USB4_CC_INITIAL_MSS	2u

static inline bool usb4_cc_seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t) (a - b) < 0;
}

static inline uint64_t usb4_cc_max(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static inline uint64_t usb4_cc_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

void usb4_rel_cc_init(struct usb4_rel_cc *cc, bool on, uint64_t mss,
		      uint32_t window, uint32_t seq, uint64_t now)
{
	*cc = (struct usb4_rel_cc) {
		.on = on,
		.mss = mss ? mss : 1,
		.base_since = now,
		.round_end = seq,
	};
	cc->cwnd_max = cc->mss * (window ? window : 1);
	cc->cwnd = usb4_cc_min(USB4_CC_INITIAL_MSS * cc->mss, cc->cwnd_max);
	cc->ssthresh = cc->cwnd_max;
}

bool usb4_rel_cc_allows(const struct usb4_rel_cc *cc)
{
	return !cc->on || cc->flight < cc->cwnd;
}

void usb4_rel_cc_sent(struct usb4_rel_cc *cc, uint64_t len)
{
	cc->flight += len;
}

void usb4_rel_cc_left(struct usb4_rel_cc *cc, uint64_t len)
{
	cc->flight -= usb4_cc_min(len, cc->flight);
}

/* The smallest round trip lately: this period's and the last one's, so a
 * path that got slower is believed within two periods. */
static uint64_t usb4_cc_base(struct usb4_rel_cc *cc, uint64_t now,
			     uint64_t rtt)
{
	if (now - cc->base_since >= USB4_CC_BASE_PERIOD_NS) {
		cc->base_prev = cc->base_now;
		cc->base_now = 0;
		cc->base_since = now;
	}
	if (rtt && (!cc->base_now || rtt < cc->base_now))
		cc->base_now = rtt;
	if (!cc->base_prev)
		return cc->base_now;
	return cc->base_now ? usb4_cc_min(cc->base_now, cc->base_prev) :
			      cc->base_prev;
}

/* Jacobson's estimator (RFC 6298): gains 1/8 and 1/4. */
static void usb4_cc_smooth(struct usb4_rel_cc *cc, uint64_t rtt)
{
	uint64_t err;

	if (!cc->srtt) {
		cc->srtt = rtt;
		cc->rttvar = rtt / 2;
		return;
	}
	err = rtt > cc->srtt ? rtt - cc->srtt : cc->srtt - rtt;
	cc->rttvar = cc->rttvar - cc->rttvar / 4 + err / 4;
	cc->srtt = cc->srtt - cc->srtt / 8 + rtt / 8;
}

uint64_t usb4_rel_cc_rto(const struct usb4_rel_cc *cc, uint64_t floor)
{
	uint64_t rto = cc->srtt + 4 * cc->rttvar;

	return cc->on && cc->srtt && rto > floor ? rto : floor;
}

/* Whether queueing delay counts on this path now (see the header). */
static bool usb4_cc_armed(const struct usb4_rel_cc *cc, uint64_t now)
{
	return cc->lost_at && now - cc->lost_at < USB4_CC_DELAY_ARMED_NS;
}

static bool usb4_cc_queued(uint64_t rtt, uint64_t base)
{
	return rtt && base && rtt - base > USB4_CC_QDELAY_NS;
}

/* A round whose smallest sample still waited in a queue: shrink by an
 * eighth, once per round. */
static bool usb4_cc_end_round(struct usb4_rel_cc *cc, uint64_t base)
{
	bool cut = usb4_cc_queued(cc->round_min, base);

	if (cut) {
		/* The threshold stays where the queue first showed: after a
		 * passing stall (a busy host) the window regains it in a few
		 * round trips; while the queue stands, delayed acks hold
		 * growth anyway. */
		cc->cwnd = usb4_cc_max(cc->cwnd - cc->cwnd / 8, cc->mss);
		cc->ai_acc = 0;
	}
	return cut;
}

/* Slow start adds what was acked; above the threshold one datagram per
 * window acked (one per round trip). */
static void usb4_cc_grow(struct usb4_rel_cc *cc, uint64_t bytes)
{
	if (cc->cwnd < cc->ssthresh) {
		cc->cwnd = usb4_cc_min(cc->cwnd + bytes, cc->ssthresh);
	} else {
		cc->ai_acc += bytes;
		if (cc->ai_acc >= cc->cwnd) {
			cc->ai_acc -= cc->cwnd;
			cc->cwnd += cc->mss;
		}
	}
	cc->cwnd = usb4_cc_min(cc->cwnd, cc->cwnd_max);
}

bool usb4_rel_cc_acked(struct usb4_rel_cc *cc, uint64_t now, uint32_t ack,
		       uint64_t bytes, uint64_t rtt, uint32_t snd_tx)
{
	uint64_t base = usb4_cc_base(cc, now, rtt);
	bool armed = usb4_cc_armed(cc, now), cut = false;
	bool delayed = armed && usb4_cc_queued(rtt, base);

	if (!cc->on)
		return false;
	if (rtt)
		usb4_cc_smooth(cc, rtt);
	if (cc->recovering && !usb4_cc_seq_lt(ack, cc->recover))
		cc->recovering = cc->fast = false;
	if (rtt && (!cc->round_min || rtt < cc->round_min))
		cc->round_min = rtt;
	if (!usb4_cc_seq_lt(ack, cc->round_end)) {
		cut = armed && usb4_cc_end_round(cc, base);
		cc->round_end = snd_tx;
		cc->round_min = 0;
		delayed |= cut;
	}
	/* No growth while repairing a loss or while this ack waited in a
	 * queue: the window is already as large as the path takes; slow
	 * start ends at the first such ack, not a round later. */
	if (delayed && cc->ssthresh == cc->cwnd_max)
		cc->ssthresh = cc->cwnd;
	if (!cc->fast && !delayed)
		usb4_cc_grow(cc, bytes);
	return cut;
}

/* Halves the window, once per window of data (until snd_tx is acked). */
static void usb4_cc_decrease(struct usb4_rel_cc *cc, uint32_t snd_tx)
{
	cc->ssthresh = usb4_cc_max(cc->cwnd / 2, 2 * cc->mss);
	cc->cwnd = usb4_cc_min(cc->cwnd, cc->ssthresh);
	cc->ai_acc = 0;
	cc->recovering = true;
	cc->recover = snd_tx;
}

bool usb4_rel_cc_lost(struct usb4_rel_cc *cc, uint64_t now, uint32_t snd_tx)
{
	if (!cc->on || cc->recovering)
		return false;
	cc->lost_at = now ? now : 1;
	usb4_cc_decrease(cc, snd_tx);
	cc->fast = true;
	return true;
}

/* Nothing came back for a whole timeout: the path may hold far less than
 * the window; start again from one datagram (slow start to half of it). */
bool usb4_rel_cc_timeout(struct usb4_rel_cc *cc, uint64_t now,
			 uint32_t snd_tx)
{
	bool first = !cc->recovering;

	if (!cc->on)
		return false;
	cc->lost_at = now ? now : 1;
	if (first)
		usb4_cc_decrease(cc, snd_tx);
	cc->cwnd = cc->mss;
	cc->fast = false;
	return first;
}
