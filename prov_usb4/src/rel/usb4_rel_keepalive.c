/*
 * Keepalive probes of one rel session: see usb4_rel_keepalive.h.
 *
 * States: idle (since == 0: waiting for idle_ns of silence) and probing
 * (since set: a probe every interval, the verdict at `verdict`).  Hearing
 * the peer returns to idle; the verdict time passing is death.
 */
#include "usb4_rel_keepalive.h"

static uint64_t ka_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

void usb4_rel_ka_init(struct usb4_rel_ka *ka, uint64_t idle_ns,
		      uint64_t dead_ns, struct usb4_rel_ka_stats *stats)
{
	*ka = (struct usb4_rel_ka) {
		.idle_ns = idle_ns, .dead_ns = dead_ns, .stats = stats,
	};
}

/* How long after the first probe silence is death: the rest of the peer
 * timeout when probing starts on time, but at least half of it. */
static uint64_t ka_verdict_after(const struct usb4_rel_ka *ka)
{
	uint64_t half = ka->dead_ns / 2;

	if (ka->dead_ns > ka->idle_ns && ka->dead_ns - ka->idle_ns > half)
		return ka->dead_ns - ka->idle_ns;
	return half;
}

/* Probing starts at now and ends in a verdict after period. */
static void ka_start(struct usb4_rel_ka *ka, uint64_t now, uint64_t period)
{
	ka->since = now ? now : 1;
	ka->next = now;
	ka->verdict = now + period;
	ka->interval = period / USB4_REL_KA_PROBES ?
		       period / USB4_REL_KA_PROBES : 1;
}

enum usb4_rel_ka_action usb4_rel_ka_due(struct usb4_rel_ka *ka, uint64_t now,
					uint64_t last_rx)
{
	if (!ka->since) {
		if (!ka->idle_ns || now < last_rx || now - last_rx < ka->idle_ns)
			return USB4_REL_KA_NONE;
		ka_start(ka, now, ka_verdict_after(ka));
	}
	if (now >= ka->verdict)
		return USB4_REL_KA_DEAD;
	return now >= ka->next ? USB4_REL_KA_PROBE : USB4_REL_KA_NONE;
}

void usb4_rel_ka_sent(struct usb4_rel_ka *ka, uint64_t now)
{
	ka->stats->probes_sent++;
	ka->next = now + ka->interval;
	/* The last probe before the verdict still gets its interval. */
	if (ka->next > ka->verdict)
		ka->next = ka->verdict;
}

void usb4_rel_ka_heard(struct usb4_rel_ka *ka)
{
	if (!ka->since)
		return;
	ka->stats->probes_answered++;
	if (ka->hinted)
		ka->stats->hints_refuted++;
	ka->since = 0;
	ka->hinted = false;
}

void usb4_rel_ka_hint(struct usb4_rel_ka *ka, uint64_t now,
		      uint64_t confirm_ns)
{
	ka->stats->hints++;
	if (ka->since && ka->verdict <= now + confirm_ns) {
		ka->hinted = true;	/* already judged sooner */
		return;
	}
	ka_start(ka, now, confirm_ns);
	ka->hinted = true;
}

void usb4_rel_ka_dead(struct usb4_rel_ka *ka)
{
	if (ka->hinted)
		ka->stats->hints_confirmed++;
	ka->since = 0;
	ka->hinted = false;
}

uint64_t usb4_rel_ka_deadline(const struct usb4_rel_ka *ka, uint64_t last_rx)
{
	if (ka->since)
		return ka_min(ka->next, ka->verdict);
	if (!ka->idle_ns)
		return UINT64_MAX;
	return last_rx + ka->idle_ns;
}
