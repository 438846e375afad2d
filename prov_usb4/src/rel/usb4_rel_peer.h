/*
 * A rel peer's state, private to src/rel: usb4_rel.c keeps it, and the
 * send of a small DATA on an established session (usb4_rel_send_small.c)
 * writes its slot and header straight from it.
 */
#ifndef USB4_REL_PEER_H
#define USB4_REL_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include "usb4_rel.h"
#include "usb4_rel_cc.h"
#include "usb4_rel_keepalive.h"
#include "usb4_rel_frag.h"

#define USB4_REL_INLINE		64u	/* copies this small live in the slot */

enum usb4_rel_tx_state {
	USB4_REL_TX_FREE,
	USB4_REL_TX_QUEUED,	/* never transmitted */
	USB4_REL_TX_INFLIGHT,	/* transmitted, not known to have arrived */
	USB4_REL_TX_SACKED,	/* the peer holds it; waits for the cumulative ack */
};

/* One payload until the peer acknowledges it: the first `copied` bytes are
 * a copy (in inline_data, or in data when larger), followed by up to
 * USB4_REL_REF_MAX buffers sent from where the caller keeps them
 * (usb4_rel_send_ref).  With references, data has room for the whole
 * payload, so usb4_rel_copy_refs never allocates. */
struct usb4_rel_tx {
	uint64_t tx_time;	/* last transmission, caller's clock */
	uint64_t tx_serial;	/* orders transmissions made at equal times */
	uint64_t owner;		/* whose buffers ref[] are (the caller's tag) */
	uint32_t len;
	uint32_t copied;
	uint32_t epoch;		/* the progress epoch `level` counts in */
	uint8_t level;		/* timeouts since the last progress */
	uint8_t state;		/* enum usb4_rel_tx_state */
	uint8_t nref;
	bool resent;		/* its ack times no round trip (Karn) */
	uint8_t resends;	/* retransmissions (usb4_rel_path_watch) */
	uint32_t dgram;		/* datagram size it last went in */
	unsigned char *data;	/* pool buffer, or NULL */
	struct iovec ref[USB4_REL_REF_MAX];
	unsigned char inline_data[USB4_REL_INLINE];
};

/* One payload waiting for the gap before it to fill, or for the receiver. */
struct usb4_rel_rx {
	uint32_t seq;
	uint32_t len;
	bool present;
	unsigned char *data;	/* pool buffer */
};

/* All fields guarded by the caller's serialisation (see usb4_rel.h). */
struct usb4_rel_peer {
	struct usb4_rel_cfg cfg;
	uint64_t local_id, remote_id;
	uint32_t slots;			/* ring size (power of two) */
	int down;			/* 0, -FI_EHOSTUNREACH, -FI_ECONNREFUSED */

	/* send side */
	uint32_t isn, snd_una, snd_tx, snd_nxt;
	uint32_t peer_wnd;		/* the peer's advertised window */
	uint32_t epoch;			/* bumped by progress: resets backoff */
	bool backed_off;		/* some frame has level > 0 in epoch */
	uint64_t tx_serial;
	uint32_t tx_refs;		/* unacked slots with nref > 0 */
	uint64_t rtx_due;		/* lower bound of the next retransmit */
	uint64_t lost_before;		/* holes below lost_top sent before this */
	uint32_t lost_top;		/* serial are lost (from sacks) */
	uint64_t reo_ns;		/* how late a frame may be and not lost */
	uint64_t srtt;			/* smoothed round trip, 0: no sample */
	bool tx_blocked;		/* xmit said -FI_EAGAIN: retry at once */
	uint64_t tx_blocked_at;
	struct usb4_rel_cc cc;		/* bytes in flight (usb4_rel_cc.h) */

	/* handshake */
	unsigned char nonce[USB4_AUTH_NONCE_LEN];	/* ours, this session */
	unsigned char peer_nonce[USB4_AUTH_NONCE_LEN];
	struct usb4_auth_session auth;	/* keys, once peer_known (cfg.job) */
	struct usb4_rel_offer pending;	/* a HELLO we answered without one of
					 * our own, until its proof comes */
	bool pending_set;
	bool hello_started, peer_known;
	uint32_t peer_isn;
	uint32_t peer_datagram_max;
	struct usb4_rel_hello_ext peer_ext;	/* the link's, from the peer */
	struct usb4_rel_hello_ext ext_in;	/* of the handshake datagram
						 * being read */
	uint8_t hello_level;
	uint64_t hello_due;

	/* receive side */
	uint32_t rcv_dlv, rcv_nxt, rcv_ooo;	/* ooo: buffered past rcv_nxt */
	uint32_t rcv_unacked, ack_every;
	uint32_t wnd_sent;		/* the window our last ack advertised */
	bool ack_pending;
	uint64_t ack_due;
	uint64_t retry_at;		/* when to offer refused payloads */

	/* liveness and memory */
	uint32_t peer_features;		/* its HELLO's, once peer_known */
	struct usb4_rel_ka ka;		/* keepalive probes */
	bool fin_rcvd;			/* it closed: down once delivered */
	uint64_t last_rx, wait_since;
	bool stamp_coarse;		/* the send running has the coarse
					 * clock's time (usb4_rel_clock.c) */
	uint64_t idle_since;		/* rings allocated and nothing in them */

	struct usb4_rel_path path;	/* datagram size (usb4_rel_frag.c) */
	struct usb4_rel_frags frags;	/* seqs partly arrived as fragments */

	struct usb4_rel_stats stats;
	struct usb4_rel_tx *tx;		/* NULL while idle */
	struct usb4_rel_rx *rx;
};

static inline bool usb4_rel_seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t) (a - b) < 0;
}

static inline uint64_t usb4_rel_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline struct usb4_rel_tx *usb4_rel_tx_slot(struct usb4_rel_peer *peer,
						   uint32_t seq)
{
	return &peer->tx[seq & (peer->slots - 1)];
}

/* Something waits on the peer: a handshake or unacknowledged frames. */
static inline bool usb4_rel_outstanding(const struct usb4_rel_peer *peer)
{
	return (peer->hello_started && !peer->peer_known) ||
	       peer->snd_nxt != peer->snd_una;
}

static inline uint32_t usb4_rel_send_limit(const struct usb4_rel_peer *peer)
{
	return peer->cfg.window < peer->peer_wnd ? peer->cfg.window :
						   peer->peer_wnd;
}

/* What we can take beyond rcv_nxt: the ring less what the receiver has
 * not taken. */
static inline uint32_t usb4_rel_rcv_window(const struct usb4_rel_peer *peer)
{
	uint32_t held = peer->rcv_nxt - peer->rcv_dlv;

	return held < peer->cfg.window ? peer->cfg.window - held : 0;
}

static inline void usb4_rel_acked(struct usb4_rel_peer *peer)
{
	peer->ack_pending = false;
	peer->rcv_unacked = 0;
}

static inline void usb4_rel_blocked(struct usb4_rel_peer *peer, uint64_t now)
{
	peer->tx_blocked = true;
	peer->tx_blocked_at = now;
}

/* usb4_rel.c's, for usb4_rel_send_small.c. */
uint64_t usb4_rel_rto(const struct usb4_rel_peer *peer, unsigned level);
uint64_t usb4_rel_sack(const struct usb4_rel_peer *peer);
bool usb4_rel_xxh3_agreed(const struct usb4_rel_peer *peer);
bool usb4_rel_check_dead(struct usb4_rel_peer *peer, uint64_t now);

#endif /* USB4_REL_PEER_H */
