/*
 * The common send, short: one small payload (a ping-pong's frame) to a
 * peer whose handshake is done, without a job key, with nothing queued
 * before it and the window open.  It goes at once in one datagram, built
 * in one buffer: the header from the peer's state, the payload after it,
 * one check over both, one piece for the link (which sends it as it is).
 * The slot keeps its copy inline, as usb4_rel_enqueue would, and takes the
 * state usb4_rel_flush gives a frame it sent; the datagram's bytes are the
 * general path's (tests/c/test_rel_send_small.c).
 *
 * Anything else answers USB4_REL_SMALL_NO and takes the general path:
 * a job key (tags), the handshake, a dead peer, a frame queued or the
 * window closed, a ring not there, a path guess due to be undone,
 * references, a payload larger than a slot holds inline.
 */
#include <endian.h>
#include <string.h>

#include "usb4_rel_peer.h"
#include "usb4_rel_check.h"
#include "usb4_rel_send_small.h"
#include "../wire.h"

/* The payload's bytes when it is small enough for this path, else 0 (an
 * empty payload too: the general path sends those). */
static size_t usb4_rel_small_len(const struct usb4_rel_peer *peer,
				 const struct iovec *iov, int count)
{
	size_t len = 0;

	for (int i = 0; i < count; i++) {
		len += iov[i].iov_len;
		if (len > USB4_REL_INLINE)
			return 0;
	}
	return len <= peer->cfg.payload_max ? len : 0;
}

/* Whether the peer's state lets a frame go now, alone, and whole. */
static bool usb4_rel_small_open(const struct usb4_rel_peer *peer)
{
	return !peer->cfg.job && peer->peer_known && !peer->down && peer->tx &&
	       peer->snd_tx == peer->snd_nxt &&
	       peer->snd_nxt - peer->snd_una < usb4_rel_send_limit(peer) &&
	       !peer->path.raise_at && usb4_rel_cc_allows(&peer->cc);
}

/* The header as usb4_rel_emit_flagged builds it for DATA seq; check 0. */
static void usb4_rel_small_header(const struct usb4_rel_peer *peer,
				  struct usb4_wire_rel *w, uint32_t seq,
				  uint32_t wnd, size_t len, bool xxh3)
{
	*w = (struct usb4_wire_rel) {
		.version = USB4_WIRE_VERSION,
		.type = USB4_REL_DATA,
		.flags = htole16(xxh3 ? USB4_REL_F_XXH3 : 0),
		.src_id = htole64(peer->local_id),
		.dst_id = htole64(peer->remote_id),
		.seq = htole32(seq),
		.ack = htole32(peer->rcv_nxt),
		.sack = htole64(peer->rx ? usb4_rel_sack(peer) : 0),
		.window = htole32(wnd),
		.len = htole32((uint32_t) len),
	};
}

bool usb4_rel_small_ready(const struct usb4_rel_peer *peer,
			  const struct iovec *iov, int count)
{
	return usb4_rel_small_len(peer, iov, count) && usb4_rel_small_open(peer);
}

/* The slot of seq: an inline copy, in flight since now (what
 * usb4_rel_enqueue, usb4_rel_path_watch, usb4_rel_xmit_data and
 * usb4_rel_flush leave in it). */
static void usb4_rel_small_slot(struct usb4_rel_peer *peer, uint32_t seq,
				const unsigned char *payload, size_t len,
				uint64_t now, bool sent)
{
	struct usb4_rel_tx *tx = usb4_rel_tx_slot(peer, seq);

	memcpy(tx->inline_data, payload, len);
	tx->data = NULL;
	tx->nref = 0;
	tx->owner = 0;
	tx->copied = (uint32_t) len;
	tx->len = (uint32_t) len;
	tx->resends = 0;
	tx->dgram = usb4_rel_path_dgram(&peer->path, len);
	if (!sent) {	/* the link is busy: queued, as the flush leaves it */
		tx->state = USB4_REL_TX_QUEUED;
		return;
	}
	tx->resent = peer->stamp_coarse;	/* no round trip timed */
	tx->tx_time = now;
	tx->tx_serial = ++peer->tx_serial;
	tx->state = USB4_REL_TX_INFLIGHT;
	tx->level = 0;
	tx->epoch = peer->epoch;
}

/* The peer's state after frame snd_nxt went (sent) or waits (not). */
static void usb4_rel_small_sent(struct usb4_rel_peer *peer, uint64_t now,
				size_t len, uint32_t wnd, int ret)
{
	peer->snd_nxt++;
	if (ret == -FI_EAGAIN) {
		usb4_rel_blocked(peer, now);
		return;
	}
	usb4_rel_cc_sent(&peer->cc, len);
	peer->snd_tx++;
	peer->stats.sent++;
	peer->rtx_due = usb4_rel_min(peer->rtx_due, now + usb4_rel_rto(peer, 0));
	if (ret)	/* lost on the way out: the timer sends it again */
		return;
	peer->wnd_sent = wnd;
	usb4_rel_acked(peer);
}

int usb4_rel_send_small(struct usb4_rel_peer *peer, uint64_t now,
			const struct iovec *iov, int count,
			const struct usb4_rel_io *io)
{
	unsigned char dgram[sizeof(struct usb4_wire_rel) + USB4_REL_INLINE];
	struct usb4_wire_rel *w = (struct usb4_wire_rel *) dgram;
	size_t len = usb4_rel_small_len(peer, iov, count), off = sizeof(*w);
	bool xxh3 = usb4_rel_xxh3_agreed(peer);
	uint32_t seq = peer->snd_nxt, wnd = usb4_rel_rcv_window(peer);
	struct iovec out = { .iov_base = dgram, .iov_len = off + len };
	int ret;

	if (!len || !usb4_rel_small_open(peer) || usb4_rel_check_dead(peer, now))
		return USB4_REL_SMALL_NO;
	if (!usb4_rel_outstanding(peer))
		peer->wait_since = now;	/* the dead clock starts now */
	peer->idle_since = 0;		/* the rings are in use */
	for (int i = 0; i < count; i++) {
		memcpy(dgram + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	usb4_rel_small_header(peer, w, seq, wnd, len, xxh3);
	w->crc = htole32(usb4_rel_check_flat(xxh3, dgram, out.iov_len));
	ret = io->xmit(io->xmit_ctx, &out, 1);
	usb4_rel_small_slot(peer, seq, dgram + sizeof(*w), len, now,
			    ret != -FI_EAGAIN);
	usb4_rel_small_sent(peer, now, len, wnd, ret);
	return 0;
}
