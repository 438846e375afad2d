/*
 * rel: reliable, in-order delivery to one peer over a lossy datagram link.
 *
 * Sequence space: 32-bit, serial-number arithmetic (a - b as int32_t), so it
 * wraps freely.  Send side: [snd_una, snd_tx) transmitted and unacked,
 * [snd_tx, snd_nxt) queued (waiting for the handshake, the window or a busy
 * link).  Receive side: [rcv_dlv, rcv_nxt) arrived in order but not yet
 * taken by the receiver (it refused them: receiver not ready); rcv_nxt is
 * the next seq expected; out-of-order payloads within the window wait in
 * the ring until the gap fills.  The window we advertise shrinks by what
 * the receiver has not taken.
 *
 * Timers are kept as absolute times in the caller's clock (ns); usb4_rel_timer
 * does what is due and usb4_rel_deadline says when that is.  The retransmit
 * deadline is a lower bound (never late; after acks it may be early, and the
 * timer then just recomputes it) so an ack never costs a scan of the window.
 *
 * Handshake: each side sends HELLO (its ISN, window, protocol version,
 * features and largest datagram) until it knows the peer's ISN, from a HELLO
 * or a HELLO_ACK; every HELLO is answered with a HELLO_ACK.  Knowing the
 * peer's ISN is "done" on our side: if our answer was lost the peer keeps
 * re-HELLOing (it does not know ours) and we answer again, so both sides
 * converge, including simultaneous open.  A peer whose required features we
 * lack gets REJECT; a REJECT before the handshake completes means the peer
 * refused us (after it, it is ignored: nobody can end a live session so).
 *
 * Proof: a HELLO teaches nothing (anyone can send one naming any id); the
 * peer's ISN is learnt from a HELLO_ACK whose ack is our ISN, the proof
 * that it answers the HELLO we sent (a REJECT of our version needs the same
 * proof).  A responder without a session answers from an offer
 * (usb4_rel_offer_*) and makes the peer only when the peer's first DATA or
 * ACK acknowledges the ISN of that answer.  With a job key the handshake
 * datagrams also carry a tag under it, the session's datagrams one under
 * keys derived from both sides' nonces, and a datagram whose tag does not
 * verify, or whose packet number was seen, changes nothing.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_rel.h"
#include "usb4_rel_cc.h"
#include "usb4_rel_keepalive.h"
#include "usb4_rel_frag.h"
#include "usb4_rel_check.h"
#include "usb4_rel_peer.h"
#include "usb4_rel_send_small.h"
#include "../wire.h"

#define USB4_REL_HDR_LEN	sizeof(struct usb4_wire_rel)
#define USB4_REL_HELLO_LEN	sizeof(struct usb4_wire_hello)
#define USB4_REL_TRAILER_LEN	sizeof(struct usb4_wire_auth)
#define USB4_REL_WINDOW_MAX	1024u
#define USB4_REL_PAYLOAD_MAX	(1u << 20)	/* bytes; bounds a copy */
#define USB4_REL_SACK_BITS	64u
#define USB4_REL_LEVEL_MAX	63u	/* backoff doublings we count */
#define USB4_REL_DUPTHRESH	3u	/* later arrivals that make a hole lost */
#define USB4_REL_TRIM_NS	(100ull * 1000 * 1000)	/* quiet: rings go */
#define USB4_REL_SHRINK_AFTER	3u	/* resends of a large datagram before
					 * the path is suspected */

/* The timeout after `level` doublings, capped without overflowing. */
uint64_t usb4_rel_rto(const struct usb4_rel_peer *peer, unsigned level)
{
	uint64_t rto = usb4_rel_cc_rto(&peer->cc, peer->cfg.rto_initial_ns);

	while (level-- && rto < peer->cfg.rto_max_ns)
		rto = rto > UINT64_MAX / 2 ? UINT64_MAX : rto * 2;
	return usb4_rel_min(rto, peer->cfg.rto_max_ns);
}

static inline struct usb4_rel_rx *usb4_rel_rx_slot(struct usb4_rel_peer *peer,
						   uint32_t seq)
{
	return &peer->rx[seq & (peer->slots - 1)];
}

static unsigned usb4_rel_tx_level(const struct usb4_rel_peer *peer,
				  const struct usb4_rel_tx *tx)
{
	return tx->epoch == peer->epoch ? tx->level : 0;
}

/* Sacks said a frame sent after this one arrived: it is lost (or late). */
static bool usb4_rel_tx_hole(const struct usb4_rel_peer *peer, uint32_t seq,
			     const struct usb4_rel_tx *tx)
{
	return usb4_rel_seq_lt(seq, peer->lost_top) &&
	       tx->tx_serial < peer->lost_before;
}

/* When an in-flight frame goes again: at its timeout, or sooner when it is
 * a hole and older than the reordering allowance. */
static uint64_t usb4_rel_tx_due(const struct usb4_rel_peer *peer, uint32_t seq,
				const struct usb4_rel_tx *tx)
{
	uint64_t due = tx->tx_time +
		       usb4_rel_rto(peer, usb4_rel_tx_level(peer, tx));

	if (usb4_rel_tx_hole(peer, seq, tx))
		due = usb4_rel_min(due, tx->tx_time + peer->reo_ns);
	return due;
}

/* ---- rings ---------------------------------------------------------------- */

static int usb4_rel_rings(struct usb4_rel_peer *peer)
{
	peer->idle_since = 0;
	if (peer->tx)
		return 0;
	peer->tx = calloc(peer->slots, sizeof(*peer->tx));
	peer->rx = calloc(peer->slots, sizeof(*peer->rx));
	if (peer->tx && peer->rx)
		return 0;
	free(peer->tx);
	free(peer->rx);
	peer->tx = NULL;
	peer->rx = NULL;
	return -FI_EAGAIN;
}

/* Nothing in flight, queued or buffered. */
static bool usb4_rel_quiet(const struct usb4_rel_peer *peer)
{
	return peer->snd_una == peer->snd_nxt && !peer->rcv_ooo &&
	       peer->rcv_dlv == peer->rcv_nxt && !peer->frags.busy;
}

/* Rings that stayed empty for USB4_REL_TRIM_NS go: an idle peer costs
 * only this struct. */
static void usb4_rel_trim(struct usb4_rel_peer *peer, uint64_t now)
{
	if (!peer->tx || !usb4_rel_quiet(peer)) {
		peer->idle_since = 0;
		return;
	}
	if (!peer->idle_since) {
		peer->idle_since = now ? now : 1;
		return;
	}
	if (now - peer->idle_since < USB4_REL_TRIM_NS)
		return;
	free(peer->tx);
	free(peer->rx);
	peer->tx = NULL;
	peer->rx = NULL;
	peer->idle_since = 0;
	usb4_rel_frags_trim(&peer->frags);
}

/* ---- datagrams in pieces ------------------------------------------------ */

/* Bytes in a datagram given as pieces (0 when a piece is missing). */
static size_t usb4_rel_pieces_len(const struct iovec *dgram, int count)
{
	size_t len = 0;

	for (int i = 0; i < count; i++) {
		if (!dgram[i].iov_base && dgram[i].iov_len)
			return 0;
		len += dgram[i].iov_len;
	}
	return len;
}

/* Copies len bytes from offset off of the pieces; the caller checked that
 * they exist. */
static void usb4_rel_gather(void *dst, const struct iovec *dgram, int count,
			    size_t off, size_t len)
{
	char *d = dst;

	for (int i = 0; i < count && len; i++) {
		size_t take;

		if (off >= dgram[i].iov_len) {
			off -= dgram[i].iov_len;
			continue;
		}
		take = dgram[i].iov_len - off < len ? dgram[i].iov_len - off : len;
		memcpy(d, (const char *) dgram[i].iov_base + off, take);
		d += take;
		len -= take;
		off = 0;
	}
}

/* The len payload bytes after rel's header, in at most count pieces. */
static int usb4_rel_skip_hdr(const struct iovec *dgram, int count, size_t len,
			     struct iovec *out)
{
	return usb4_iov_slice(dgram, (size_t) count, USB4_REL_HDR_LEN, len,
			      out, count);
}

/* ---- datagram format ---------------------------------------------------- */

static void usb4_rel_header_host(struct usb4_wire_rel *h);

/* The header in host order; false when too short or not shaped like any
 * version's (version and type keep their place). */
static bool usb4_rel_header_read(const struct iovec *dgram, int count,
				 size_t len, struct usb4_wire_rel *h)
{
	if (count < 1 || count > USB4_REL_PIECES_MAX || len < USB4_REL_HDR_LEN ||
	    len - USB4_REL_HDR_LEN > UINT32_MAX)
		return false;
	/* A header in one piece (every datagram of a ping-pong) is copied by
	 * a few moves, not gathered by a memcpy call per piece. */
	if (dgram[0].iov_len >= USB4_REL_HDR_LEN)
		memcpy(h, dgram[0].iov_base, USB4_REL_HDR_LEN);
	else
		usb4_rel_gather(h, dgram, count, 0, USB4_REL_HDR_LEN);
	usb4_rel_header_host(h);
	return true;
}

/* A header as it came off the wire, to host order in place. */
static void usb4_rel_header_host(struct usb4_wire_rel *h)
{
	h->flags = le16toh(h->flags);
	h->crc = le32toh(h->crc);
	h->src_id = le64toh(h->src_id);
	h->dst_id = le64toh(h->dst_id);
	h->seq = le32toh(h->seq);
	h->ack = le32toh(h->ack);
	h->sack = le64toh(h->sack);
	h->window = le32toh(h->window);
	h->len = le32toh(h->len);
}

static bool usb4_rel_is_hello(uint8_t type)
{
	return type == USB4_REL_HELLO || type == USB4_REL_HELLO_ACK ||
	       type == USB4_REL_REJECT;
}

static bool usb4_rel_has_ext(const struct usb4_rel_cfg *cfg)
{
	return cfg->hello_ext && cfg->hello_ext->len &&
	       cfg->hello_ext->len <= USB4_REL_HELLO_EXT_MAX;
}

static uint32_t usb4_rel_features(const struct usb4_rel_cfg *cfg)
{
	return USB4_WIRE_FEATURES | (cfg->job ? USB4_WIRE_FEATURE_AUTH : 0) |
	       (usb4_rel_has_ext(cfg) ? USB4_WIRE_FEATURE_RAILS : 0);
}

uint32_t usb4_rel_shared_features(const struct usb4_rel_peer *peer)
{
	if (!peer->peer_known)
		return 0;
	return peer->peer_features & usb4_rel_features(&peer->cfg) &
	       ~USB4_WIRE_FEATURES_REQUIRED;
}

/* We refuse a peer that requires features we lack, or lacks ones we
 * require. */
static bool usb4_rel_compatible(const struct usb4_rel_cfg *cfg,
				const struct usb4_wire_hello *hello)
{
	return hello->proto == USB4_WIRE_VERSION &&
	       !((hello->features ^ usb4_rel_features(cfg)) &
		 USB4_WIRE_FEATURES_REQUIRED);
}

/* Whether the datagrams we send in this session past the handshake are
 * checked with XXH3: both sides offered it (an older peer did not: CRC32C)
 * and this CPU has no CRC instructions, or FI_USB4_PORTABLE=1 keeps them
 * off (with them CRC32C is the cheaper of the two; see usb4_rel_check.c).
 * A receiver takes either, as the datagram's flag says. */
bool usb4_rel_xxh3_agreed(const struct usb4_rel_peer *peer)
{
	return peer->peer_known && !usb4_crc32c_fast() &&
	       (usb4_rel_features(&peer->cfg) & peer->peer_features &
		USB4_WIRE_FEATURE_XXH3);
}

/* Flags a datagram of type may carry: PROBE and FIN ride on ACKs only,
 * FRAG on DATA only, XXH3 on both (a handshake datagram is read before
 * the features are known: it keeps CRC32C). */
static uint16_t usb4_rel_flags_allowed(uint8_t type)
{
	return USB4_REL_F_AUTH |
	       (type == USB4_REL_ACK || type == USB4_REL_DATA ?
		USB4_REL_F_XXH3 : 0) |
	       (type == USB4_REL_ACK ? USB4_REL_F_PROBE | USB4_REL_F_FIN : 0) |
	       (type == USB4_REL_DATA ? USB4_REL_F_FRAG : 0);
}

/* The check the header h (host order) names: XXH3 when flagged so on a
 * type that may be, else CRC32C. */
static bool usb4_rel_crc_ok(const struct iovec *dgram, int count,
			    const struct usb4_wire_rel *h)
{
	struct usb4_wire_rel raw;
	struct iovec payload[USB4_REL_PIECES_MAX];
	int n = usb4_rel_skip_hdr(dgram, count, SIZE_MAX, payload);

	usb4_rel_gather(&raw, dgram, count, 0, USB4_REL_HDR_LEN);
	raw.crc = 0;
	return usb4_rel_check(h->flags & usb4_rel_flags_allowed(h->type) &
			      USB4_REL_F_XXH3, &raw, payload, n) == h->crc;
}

/*
 * Whether a datagram whose header h was read is what this configuration
 * accepts: flags, lengths, and the CRC or the tag (a session datagram's
 * under auth, which is NULL until the handshake made keys).  The packet
 * number of an authenticated one goes to *pn.  USB4_REL_DROP_MAX: it is.
 */
static enum usb4_rel_drop usb4_rel_authentic(const struct usb4_rel_cfg *cfg,
					     const struct usb4_auth_session *auth,
					     const struct iovec *dgram,
					     int count, size_t len,
					     const struct usb4_wire_rel *h,
					     uint64_t *pn)
{
	struct iovec covered[USB4_REL_PIECES_MAX];
	struct usb4_wire_auth tr;
	bool tagged = h->flags & USB4_REL_F_AUTH;
	size_t trailer = tagged ? USB4_REL_TRAILER_LEN : 0;
	int n;

	*pn = 0;
	if (h->version != USB4_WIRE_VERSION || h->type < USB4_REL_HELLO ||
	    h->type >= USB4_REL_TYPE_MAX ||
	    (h->flags & ~usb4_rel_flags_allowed(h->type)) ||
	    len < USB4_REL_HDR_LEN + trailer ||
	    h->len != len - USB4_REL_HDR_LEN - trailer)
		return USB4_REL_DROP_BAD_HEADER;
	if (tagged != (cfg->job != NULL))
		return USB4_REL_DROP_UNAUTHENTICATED;
	if (!tagged)
		return usb4_rel_crc_ok(dgram, count, h) ?
		       USB4_REL_DROP_MAX : USB4_REL_DROP_BAD_HEADER;
	usb4_rel_gather(&tr, dgram, count, len - trailer, trailer);
	*pn = le64toh(tr.pn);
	n = usb4_iov_slice(dgram, (size_t) count, 0, len - trailer, covered,
			   USB4_REL_PIECES_MAX);
	if (usb4_rel_is_hello(h->type))
		return !*pn && usb4_auth_hs_check(cfg->job, covered, n, tr.tag) ?
		       USB4_REL_DROP_MAX : USB4_REL_DROP_BAD_TAG;
	if (!auth)
		return USB4_REL_DROP_NO_HANDSHAKE;
	if (!usb4_auth_verify(auth, covered, n, *pn, tr.tag))
		return USB4_REL_DROP_BAD_TAG;
	return usb4_auth_replayed(auth, *pn) ? USB4_REL_DROP_REPLAYED :
					       USB4_REL_DROP_MAX;
}

/* Whether a payload of len bytes fits a datagram of type. */
static bool usb4_rel_len_ok(const struct usb4_rel_cfg *cfg, uint8_t type,
			    uint32_t len)
{
	if (type == USB4_REL_DATA)
		return len <= cfg->payload_max;
	if (usb4_rel_is_hello(type))
		return len >= USB4_REL_HELLO_LEN &&
		       len - USB4_REL_HELLO_LEN <= USB4_REL_HELLO_EXT_MAX;
	return len == 0;
}

/* The keys a session datagram must verify under: the session's, or
 * before the handshake completed those of the pending answer (in tmp). */
static const struct usb4_auth_session *
usb4_rel_keys(const struct usb4_rel_peer *peer, struct usb4_auth_session *tmp)
{
	if (peer->peer_known)
		return &peer->auth;
	if (!peer->pending_set || !peer->cfg.job)
		return NULL;
	usb4_auth_session_init(tmp, peer->cfg.job, peer->local_id,
			       peer->remote_id, peer->nonce,
			       peer->pending.peer_nonce);
	return tmp;
}

/* Full validation of a datagram for this peer, before any state changes:
 * the reason to drop it, or USB4_REL_DROP_MAX. */
static enum usb4_rel_drop usb4_rel_parse(const struct usb4_rel_peer *peer,
					 const struct iovec *dgram, int count,
					 size_t len, struct usb4_wire_rel *h,
					 uint64_t *pn)
{
	struct usb4_auth_session auth[1];
	enum usb4_rel_drop why;

	if (!usb4_rel_header_read(dgram, count, len, h))
		return USB4_REL_DROP_BAD_HEADER;
	why = usb4_rel_authentic(&peer->cfg, usb4_rel_keys(peer, auth), dgram,
				 count, len, h, pn);
	if (why != USB4_REL_DROP_MAX)
		return why;
	if (h->dst_id != peer->local_id)
		return USB4_REL_DROP_WRONG_DST;
	if (h->src_id != peer->remote_id)
		return USB4_REL_DROP_WRONG_SRC;
	return usb4_rel_len_ok(&peer->cfg, h->type, h->len) ?
	       USB4_REL_DROP_MAX : USB4_REL_DROP_BAD_HEADER;
}

/* The handshake payload; a shorter one (another version's) reads as
 * zeros past its end. */
static void usb4_rel_hello_read(const struct iovec *dgram, int count,
				struct usb4_wire_hello *hello)
{
	size_t len = usb4_rel_pieces_len(dgram, count) - USB4_REL_HDR_LEN;

	memset(hello, 0, sizeof(*hello));
	usb4_rel_gather(hello, dgram, count, USB4_REL_HDR_LEN,
			len < sizeof(*hello) ? len : sizeof(*hello));
	hello->proto = le16toh(hello->proto);
	hello->features = le32toh(hello->features);
	hello->datagram_max = le32toh(hello->datagram_max);
}

/* The link's bytes after a handshake payload whose length len_ok passed,
 * kept when the sender offers them. */
static void usb4_rel_ext_read(const struct iovec *dgram, int count,
			      const struct usb4_wire_rel *h,
			      const struct usb4_wire_hello *hello,
			      struct usb4_rel_hello_ext *ext)
{
	ext->len = 0;
	if (!(hello->features & USB4_WIRE_FEATURE_RAILS) ||
	    h->len <= USB4_REL_HELLO_LEN ||
	    h->len - USB4_REL_HELLO_LEN > USB4_REL_HELLO_EXT_MAX)
		return;
	ext->len = (uint16_t) (h->len - USB4_REL_HELLO_LEN);
	usb4_rel_gather(ext->data, dgram, count,
			USB4_REL_HDR_LEN + USB4_REL_HELLO_LEN, ext->len);
}

int usb4_rel_peek_fields(const struct iovec *dgram, int count,
			 struct usb4_rel_head *head)
{
	size_t len = usb4_rel_pieces_len(dgram, count);
	struct usb4_wire_rel h;
	struct usb4_wire_hello hello = { 0 };

	if (!usb4_rel_header_read(dgram, count, len, &h))
		return -FI_EINVAL;
	*head = (struct usb4_rel_head) {
		.version = h.version, .type = h.type, .flags = h.flags,
		.src_id = h.src_id, .dst_id = h.dst_id,
	};
	if (usb4_rel_is_hello(h.type) && h.len >= 8) {
		usb4_rel_hello_read(dgram, count, &hello);
		head->proto = hello.proto;
		head->features = hello.features;
	}
	return 0;
}

bool usb4_rel_crc_valid(const struct iovec *dgram, int count)
{
	size_t len = usb4_rel_pieces_len(dgram, count);
	struct usb4_wire_rel h;

	return usb4_rel_header_read(dgram, count, len, &h) &&
	       h.len == len - USB4_REL_HDR_LEN &&
	       usb4_rel_crc_ok(dgram, count, &h);
}

int usb4_rel_peek(const struct iovec *dgram, int count,
		  struct usb4_rel_head *head)
{
	int ret = usb4_rel_peek_fields(dgram, count, head);

	if (!ret)
		head->crc_ok = usb4_rel_crc_valid(dgram, count);
	return ret;
}

int usb4_rel_datagram_ids_v(const struct iovec *dgram, int count,
			    uint64_t *src_id, uint64_t *dst_id)
{
	struct usb4_wire_rel h;

	if (!usb4_rel_header_read(dgram, count, usb4_rel_pieces_len(dgram, count),
				  &h))
		return -FI_EINVAL;
	*src_id = h.src_id;
	*dst_id = h.dst_id;
	return 0;
}

int usb4_rel_datagram_ids(const void *datagram, size_t len, uint64_t *src_id,
			  uint64_t *dst_id)
{
	struct iovec one = { .iov_base = (void *) datagram, .iov_len = len };

	return usb4_rel_datagram_ids_v(&one, 1, src_id, dst_id);
}

/* Bit i: seq rcv_nxt + 1 + i is buffered. */
uint64_t usb4_rel_sack(const struct usb4_rel_peer *peer)
{
	uint64_t sack = 0;

	for (uint32_t i = 0; peer->rcv_ooo && i < USB4_REL_SACK_BITS &&
			     i + 1 < peer->cfg.window; i++) {
		uint32_t seq = peer->rcv_nxt + 1 + i;
		const struct usb4_rel_rx *rx =
			&peer->rx[seq & (peer->slots - 1)];

		if (rx->present && rx->seq == seq)
			sack |= 1ull << i;
	}
	return sack;
}

/*
 * Header, then check or tag around payload pieces iov[0..count); sends
 * them.  The check is XXH3 when xxh3 (the session agreed on it), else
 * CRC32C.  A handshake datagram is tagged under the job key, a session
 * datagram under auth (the peer's keys) with the next packet number.
 */
static int usb4_rel_seal(const struct usb4_rel_cfg *cfg,
			 struct usb4_auth_session *auth,
			 const struct usb4_rel_io *io, struct usb4_wire_rel *w,
			 const struct iovec *iov, int count, bool xxh3)
{
	struct iovec out[USB4_REL_REF_MAX + 4];	/* header, fragment header,
						 * payload, trailer */
	struct usb4_wire_auth tr;
	uint64_t pn = 0;
	uint32_t len = 0;
	int n = 1;

	for (int i = 0; i < count; i++) {
		if (!iov[i].iov_len)
			continue;
		out[n++] = iov[i];
		len += (uint32_t) iov[i].iov_len;
	}
	w->len = htole32(len);
	w->crc = 0;
	out[0] = (struct iovec) { .iov_base = w, .iov_len = sizeof(*w) };
	if (!cfg->job) {
		if (xxh3)
			w->flags |= htole16(USB4_REL_F_XXH3);
		w->crc = htole32(usb4_rel_check(xxh3, w, out + 1, n - 1));
		return io->xmit(io->xmit_ctx, out, n);
	}
	w->flags |= htole16(USB4_REL_F_AUTH);
	if (usb4_rel_is_hello(w->type))
		usb4_auth_hs_tag(cfg->job, out, n, tr.tag);
	else
		usb4_auth_seal(auth, out, n, &pn, tr.tag);
	tr.pn = htole64(pn);
	out[n++] = (struct iovec) { .iov_base = &tr, .iov_len = sizeof(tr) };
	return io->xmit(io->xmit_ctx, out, n);
}

/* An xmit that writes the datagram into a caller's buffer (ctx) instead:
 * how datagrams are built without a peer. */
struct usb4_rel_buf {
	unsigned char *buf;
	size_t len, cap;
};

static int usb4_rel_xmit_to_buf(void *ctx, const struct iovec *iov, int count)
{
	struct usb4_rel_buf *b = ctx;

	b->len = 0;
	for (int i = 0; i < count; i++) {
		if (iov[i].iov_len > b->cap - b->len)
			return -FI_EMSGSIZE;
		memcpy(b->buf + b->len, iov[i].iov_base, iov[i].iov_len);
		b->len += iov[i].iov_len;
	}
	return 0;
}

/* The link's bytes a handshake datagram of type carries (none in a
 * REJECT: nothing follows from it). */
static struct iovec usb4_rel_ext_iov(const struct usb4_rel_cfg *cfg,
				     uint8_t type)
{
	if (type == USB4_REL_REJECT || !usb4_rel_has_ext(cfg))
		return (struct iovec) { 0 };
	return (struct iovec) { .iov_base = (void *) cfg->hello_ext->data,
				.iov_len = cfg->hello_ext->len };
}

/* A handshake datagram (HELLO, HELLO_ACK, REJECT) of cfg's version,
 * features and largest datagram, built without a peer into buf. */
static size_t usb4_rel_build_hello(const struct usb4_rel_cfg *cfg, uint8_t type,
				   uint64_t local_id, uint64_t remote_id,
				   uint32_t seq, uint32_t ack,
				   const unsigned char *nonce, void *buf,
				   size_t cap)
{
	struct usb4_rel_buf out = { .buf = buf, .cap = cap };
	struct usb4_rel_io io = { .xmit = usb4_rel_xmit_to_buf, .xmit_ctx = &out };
	struct usb4_wire_rel w = {
		.version = USB4_WIRE_VERSION, .type = type,
		.src_id = htole64(local_id), .dst_id = htole64(remote_id),
		.seq = htole32(seq), .ack = htole32(ack),
		.window = htole32(cfg->window),
	};
	struct usb4_wire_hello hello = {
		.proto = htole16(USB4_WIRE_VERSION),
		.features = htole32(usb4_rel_features(cfg)),
		.datagram_max = htole32(cfg->datagram_max),
	};
	struct iovec iov[2] = {
		{ .iov_base = &hello, .iov_len = sizeof(hello) },
		usb4_rel_ext_iov(cfg, type),
	};

	if (nonce)
		memcpy(hello.nonce, nonce, sizeof(hello.nonce));
	return usb4_rel_seal(cfg, NULL, &io, &w, iov, 2, false) ? 0 : out.len;
}

/* Builds the header (acks and window from the receive side, unless ack
 * is given; flags as given) and sends the payload pieces iov[0..count)
 * after it. */
static int usb4_rel_emit_flagged(struct usb4_rel_peer *peer,
				 const struct usb4_rel_io *io, uint8_t type,
				 uint16_t flags, uint32_t seq, uint32_t ack,
				 const struct iovec *iov, int count)
{
	uint32_t wnd = usb4_rel_rcv_window(peer);
	struct usb4_wire_rel w = {
		.version = USB4_WIRE_VERSION,
		.type = type,
		.flags = htole16(flags),
		.src_id = htole64(peer->local_id),
		.dst_id = htole64(peer->remote_id),
		.seq = htole32(seq),
		.ack = htole32(ack),
		.sack = htole64(peer->peer_known && peer->rx ?
				usb4_rel_sack(peer) : 0),
		.window = htole32(wnd),
	};
	int ret = usb4_rel_seal(&peer->cfg, &peer->auth, io, &w, iov, count,
				usb4_rel_xxh3_agreed(peer) &&
				!usb4_rel_is_hello(type));

	if (!ret)
		peer->wnd_sent = wnd;
	return ret;
}

static int usb4_rel_emit_acking(struct usb4_rel_peer *peer,
				const struct usb4_rel_io *io, uint8_t type,
				uint32_t seq, uint32_t ack,
				const struct iovec *iov, int count)
{
	return usb4_rel_emit_flagged(peer, io, type, 0, seq, ack, iov, count);
}

static int usb4_rel_emit(struct usb4_rel_peer *peer, const struct usb4_rel_io *io,
			 uint8_t type, uint32_t seq, const struct iovec *iov,
			 int count)
{
	return usb4_rel_emit_acking(peer, io, type, seq,
				    peer->peer_known ? peer->rcv_nxt : 0, iov,
				    count);
}

/* One fragment of the seq in ctx (usb4_rel_frag_send's emit). */
struct usb4_rel_frag_ctx {
	struct usb4_rel_peer *peer;
	const struct usb4_rel_io *io;
	uint32_t seq;
};

static int usb4_rel_emit_frag(void *ctx, const struct iovec *iov, int count)
{
	struct usb4_rel_frag_ctx *c = ctx;

	return usb4_rel_emit_flagged(c->peer, c->io, USB4_REL_DATA,
				     USB4_REL_F_FRAG, c->seq, c->peer->rcv_nxt,
				     iov, count);
}

/* A handshake datagram: our version, features, largest datagram and
 * nonce; a HELLO_ACK or REJECT acknowledges the HELLO whose seq is ack. */
static int usb4_rel_emit_hello(struct usb4_rel_peer *peer,
			       const struct usb4_rel_io *io, uint8_t type,
			       uint32_t ack)
{
	struct usb4_wire_hello hello = {
		.proto = htole16(USB4_WIRE_VERSION),
		.features = htole32(usb4_rel_features(&peer->cfg)),
		.datagram_max = htole32(peer->cfg.datagram_max),
	};
	struct iovec iov[2] = {
		{ .iov_base = &hello, .iov_len = sizeof(hello) },
		usb4_rel_ext_iov(&peer->cfg, type),
	};

	memcpy(hello.nonce, peer->nonce, sizeof(hello.nonce));
	return usb4_rel_emit_acking(peer, io, type, peer->isn, ack, iov, 2);
}

size_t usb4_rel_reject_cfg(void *buf, const struct usb4_rel_cfg *cfg,
			   uint64_t local_id, uint64_t remote_id, uint32_t ack)
{
	return usb4_rel_build_hello(cfg, USB4_REL_REJECT, local_id, remote_id,
				    0, ack, NULL, buf, USB4_REL_REJECT_LEN);
}

size_t usb4_rel_reject(void *buf, uint64_t local_id, uint64_t remote_id)
{
	struct usb4_rel_cfg cfg = { .window = 0 };

	return usb4_rel_reject_cfg(buf, &cfg, local_id, remote_id, 0);
}

/* ---- acknowledgements ---------------------------------------------------- */

static void usb4_rel_send_ack(struct usb4_rel_peer *peer,
			      const struct usb4_rel_io *io)
{
	/* -FI_EAGAIN leaves the ack pending and due: the timer retries. */
	if (usb4_rel_emit(peer, io, USB4_REL_ACK, peer->snd_tx, NULL, 0))
		return;
	peer->stats.acks_sent++;
	usb4_rel_acked(peer);
}

/* Immediate acks tell the sender about holes and duplicates at once; others
 * wait ack_delay_ns for a DATA to ride on, or until ack_every arrived. */
static void usb4_rel_ack_later(struct usb4_rel_peer *peer, uint64_t now,
			       bool immediate)
{
	if (!peer->ack_pending) {
		peer->ack_pending = true;
		peer->ack_due = now + peer->cfg.ack_delay_ns;
	}
	if (immediate || ++peer->rcv_unacked >= peer->ack_every)
		peer->ack_due = now;
}

/* ---- send side ---------------------------------------------------------- */

static unsigned char *usb4_rel_tx_copy(struct usb4_rel_tx *tx)
{
	return tx->data ? tx->data : tx->inline_data;
}

/* The slot no longer refers to caller buffers. */
static void usb4_rel_tx_unref(struct usb4_rel_peer *peer,
			      struct usb4_rel_tx *tx)
{
	peer->tx_refs -= tx->nref != 0;
	tx->nref = 0;
}

/* The peer has the slot's payload: its buffers go. */
static void usb4_rel_tx_free(struct usb4_rel_peer *peer, struct usb4_rel_tx *tx)
{
	tx->state = USB4_REL_TX_FREE;
	usb4_rel_tx_unref(peer, tx);
	usb4_rel_pool_put(peer->cfg.pool, tx->data);
	tx->data = NULL;
}

/* One transmission of frame seq: whole, or as fragments when it no
 * longer fits the path. */
static int usb4_rel_xmit_payload(struct usb4_rel_peer *peer,
				 const struct usb4_rel_io *io, uint32_t seq,
				 const struct iovec *iov, int count, size_t len)
{
	struct usb4_rel_frag_ctx c = { .peer = peer, .io = io, .seq = seq };

	if (usb4_rel_path_frags(&peer->path, len))
		return usb4_rel_frag_send(&peer->path, iov, count, len,
					  usb4_rel_emit_frag, &c, &peer->stats);
	return usb4_rel_emit(peer, io, USB4_REL_DATA, seq, iov, count);
}

/* Our interface refused a datagram of a payload of len bytes: the path
 * is what the link reads now, or a step smaller. */
static bool usb4_rel_path_refused(struct usb4_rel_peer *peer, uint64_t now,
				  const struct usb4_rel_io *io, size_t len)
{
	uint32_t limit = io->path_max ? io->path_max(io->xmit_ctx) : 0;

	if (!usb4_rel_path_shrink(&peer->path,
				  usb4_rel_path_dgram(&peer->path, len),
				  limit, peer->remote_id,
				  "our side refused a datagram (EMSGSIZE, or "
				  "dropped on its way out)", &peer->stats))
		return false;
	if (peer->path.max < peer->path.known)	/* no smaller MTU read */
		usb4_rel_path_guessed(&peer->path, now);
	return true;
}

/*
 * Before a retransmission: a large datagram that went USB4_REL_SHRINK_AFTER
 * times rides with a probe the peer answers at once (an empty DATA of a
 * seq it has, a duplicate); a peer that answered since the last time is
 * alive, so the path, not the peer, lost the datagram: it shrinks.  Only a
 * loss at the path's present size counts (frames sent before a shrink
 * were lost at the old one).
 */
static void usb4_rel_path_watch(struct usb4_rel_peer *peer, uint64_t now,
				const struct usb4_rel_io *io,
				struct usb4_rel_tx *tx)
{
	uint32_t dgram = usb4_rel_path_dgram(&peer->path, tx->len);

	if (tx->state == USB4_REL_TX_QUEUED) {
		tx->resends = 0;
		tx->dgram = dgram;
		return;
	}
	if (tx->resends < UINT8_MAX)
		tx->resends++;
	if (peer->cfg.path_guess && tx->resends >= USB4_REL_SHRINK_AFTER &&
	    dgram > USB4_REL_PATH_FLOOR) {
		if (tx->resends > USB4_REL_SHRINK_AFTER && tx->dgram == dgram &&
		    peer->last_rx >= tx->tx_time &&
		    usb4_rel_path_shrink(&peer->path, dgram, 0,
					 peer->remote_id, "large datagrams "
					 "lost while the peer answers small "
					 "ones", &peer->stats))
			usb4_rel_path_guessed(&peer->path, now);
		usb4_rel_emit(peer, io, USB4_REL_DATA, peer->snd_una - 1,
			      NULL, 0);
	}
	tx->dgram = usb4_rel_path_dgram(&peer->path, tx->len);
}

/* Sends frame seq (first time or again); 0 or xmit's error. */
static int usb4_rel_xmit_data(struct usb4_rel_peer *peer, uint64_t now,
			      const struct usb4_rel_io *io, uint32_t seq)
{
	struct usb4_rel_tx *tx = usb4_rel_tx_slot(peer, seq);
	struct iovec iov[USB4_REL_REF_MAX + 1];
	int ret;

	iov[0] = (struct iovec) { .iov_base = usb4_rel_tx_copy(tx),
				  .iov_len = tx->copied };
	for (unsigned i = 0; i < tx->nref; i++)
		iov[i + 1] = tx->ref[i];
	usb4_rel_path_watch(peer, now, io, tx);
	ret = usb4_rel_xmit_payload(peer, io, seq, iov, tx->nref + 1, tx->len);
	if (ret == -FI_EMSGSIZE && usb4_rel_path_refused(peer, now, io, tx->len))
		ret = usb4_rel_xmit_payload(peer, io, seq, iov, tx->nref + 1,
					    tx->len);
	if (ret == -FI_EAGAIN)
		return ret;
	/* Any other failure is a datagram lost on the way: retransmitted. */
	tx->resent = tx->state != USB4_REL_TX_QUEUED || peer->stamp_coarse;
	tx->tx_time = now;
	tx->tx_serial = ++peer->tx_serial;
	if (!ret && peer->peer_known)
		usb4_rel_acked(peer);
	return 0;
}

/* Transmits queued frames while the handshake and the window allow. */
static void usb4_rel_flush(struct usb4_rel_peer *peer, uint64_t now,
			   const struct usb4_rel_io *io)
{
	uint32_t limit = usb4_rel_send_limit(peer);

	while (peer->peer_known && peer->snd_tx != peer->snd_nxt &&
	       peer->snd_tx - peer->snd_una < limit &&
	       usb4_rel_cc_allows(&peer->cc)) {
		struct usb4_rel_tx *tx = usb4_rel_tx_slot(peer, peer->snd_tx);

		if (usb4_rel_xmit_data(peer, now, io, peer->snd_tx)) {
			usb4_rel_blocked(peer, now);
			return;
		}
		tx->state = USB4_REL_TX_INFLIGHT;
		tx->level = 0;
		tx->epoch = peer->epoch;
		usb4_rel_cc_sent(&peer->cc, tx->len);
		peer->snd_tx++;
		peer->stats.sent++;
		peer->rtx_due = usb4_rel_min(peer->rtx_due,
					     now + usb4_rel_rto(peer, 0));
	}
}

static void usb4_rel_hello(struct usb4_rel_peer *peer, uint64_t now,
			   const struct usb4_rel_io *io)
{
	if (usb4_rel_emit_hello(peer, io, USB4_REL_HELLO, 0) == -FI_EAGAIN) {
		peer->hello_due = now;	/* not sent: no backoff, retry */
		return;
	}
	peer->hello_due = now + usb4_rel_rto(peer, peer->hello_level);
	if (peer->hello_level < USB4_REL_LEVEL_MAX)
		peer->hello_level++;
}

bool usb4_rel_check_dead(struct usb4_rel_peer *peer, uint64_t now)
{
	uint64_t since = peer->last_rx > peer->wait_since ?
			 peer->last_rx : peer->wait_since;

	if (!peer->down && usb4_rel_outstanding(peer) &&
	    now - since >= peer->cfg.dead_ns && now >= since) {
		peer->down = -FI_EHOSTUNREACH;
		usb4_rel_ka_dead(&peer->ka);
	}
	return peer->down != 0;
}

/* Copies iov[0..count - nref) into the next slot and keeps references to
 * the last nref buffers; room for a later copy of those comes now.  The
 * caller checked window and size. */
static int usb4_rel_enqueue(struct usb4_rel_peer *peer,
			    const struct iovec *iov, int count, int nref,
			    uint64_t owner, size_t len)
{
	struct usb4_rel_tx *tx = usb4_rel_tx_slot(peer, peer->snd_nxt);
	size_t copied = 0;
	unsigned char *copy;

	for (int i = 0; i < count - nref; i++)
		copied += iov[i].iov_len;
	tx->data = NULL;
	if (nref || copied > USB4_REL_INLINE) {
		tx->data = usb4_rel_pool_get(peer->cfg.pool, nref ? len : copied);
		if (!tx->data)
			return -FI_EAGAIN;
	}
	copy = usb4_rel_tx_copy(tx);
	tx->nref = 0;
	tx->owner = owner;
	for (int i = 0, off = 0; i < count; i++) {
		if (!iov[i].iov_len)
			continue;
		if (i >= count - nref) {
			tx->ref[tx->nref++] = iov[i];
			continue;
		}
		memcpy(copy + off, iov[i].iov_base, iov[i].iov_len);
		off += (int) iov[i].iov_len;
	}
	peer->tx_refs += tx->nref != 0;
	tx->copied = (uint32_t) copied;
	tx->len = (uint32_t) len;
	tx->state = USB4_REL_TX_QUEUED;
	peer->snd_nxt++;
	return 0;
}

int usb4_rel_send_ref(struct usb4_rel_peer *peer, uint64_t now,
		      const struct iovec *iov, int count, int nref,
		      uint64_t owner, const struct usb4_rel_io *io)
{
	size_t len = 0;
	int ret;

	if (nref < 0 || nref > count || nref > (int) USB4_REL_REF_MAX)
		return -FI_EINVAL;
	if (!nref && (ret = usb4_rel_send_small(peer, now, iov, count, io)) !=
		     USB4_REL_SMALL_NO)
		return ret;
	if (usb4_rel_check_dead(peer, now))
		return peer->down;
	/* The frame after this one may be as large as the path was. */
	usb4_rel_path_raise(&peer->path, now, peer->remote_id, &peer->stats);
	for (int i = 0; i < count; i++) {
		if (iov[i].iov_len > peer->cfg.payload_max - len)
			return -FI_EMSGSIZE;
		len += iov[i].iov_len;
	}
	if (!usb4_rel_can_send(peer) || usb4_rel_rings(peer))
		return -FI_EAGAIN;
	if (!usb4_rel_outstanding(peer))
		peer->wait_since = now;	/* the dead clock starts now */
	ret = usb4_rel_enqueue(peer, iov, count, nref, owner, len);
	if (ret)
		return ret;
	if (!peer->peer_known && !peer->hello_started) {
		peer->hello_started = true;
		usb4_rel_hello(peer, now, io);
	}
	usb4_rel_flush(peer, now, io);
	return 0;
}

int usb4_rel_send(struct usb4_rel_peer *peer, uint64_t now,
		  const struct iovec *iov, int count,
		  const struct usb4_rel_io *io)
{
	return usb4_rel_send_ref(peer, now, iov, count, 0, 0, io);
}

/* Makes one slot's payload a plain copy, in the room taken at enqueue. */
static void usb4_rel_tx_own(struct usb4_rel_peer *peer, struct usb4_rel_tx *tx)
{
	size_t off = tx->copied;

	for (unsigned i = 0; i < tx->nref; i++) {
		memcpy(tx->data + off, tx->ref[i].iov_base, tx->ref[i].iov_len);
		off += tx->ref[i].iov_len;
	}
	tx->copied = (uint32_t) off;
	usb4_rel_tx_unref(peer, tx);
}

uint32_t usb4_rel_copy_refs(struct usb4_rel_peer *peer, uint64_t owner)
{
	uint32_t copied = 0;

	for (uint32_t seq = peer->snd_una; peer->tx_refs && seq != peer->snd_nxt;
	     seq++) {
		struct usb4_rel_tx *tx = usb4_rel_tx_slot(peer, seq);

		if (!tx->nref || tx->owner != owner)
			continue;
		if (peer->down) {	/* never sent again: just forget */
			usb4_rel_tx_unref(peer, tx);
			continue;
		}
		usb4_rel_tx_own(peer, tx);
		copied++;
	}
	return copied;
}

uint32_t usb4_rel_next_seq(const struct usb4_rel_peer *peer)
{
	return peer->snd_nxt;
}

bool usb4_rel_acked_before(const struct usb4_rel_peer *peer, uint32_t seq)
{
	return peer->down || !usb4_rel_seq_lt(peer->snd_una, seq);
}

uint32_t usb4_rel_refs(const struct usb4_rel_peer *peer)
{
	return peer->tx_refs;
}

bool usb4_rel_can_send(const struct usb4_rel_peer *peer)
{
	return !peer->down &&
	       peer->snd_nxt - peer->snd_una < usb4_rel_send_limit(peer);
}

/* ---- acks arriving ------------------------------------------------------ */

static uint64_t usb4_rel_reo_max(const struct usb4_rel_cfg *cfg)
{
	uint64_t max = cfg->reorder_max_ns ? cfg->reorder_max_ns :
					     cfg->rto_initial_ns / 4;

	return max > cfg->reorder_min_ns ? max : cfg->reorder_min_ns;
}

/* The allowance for a round trip of srtt: 5/4 of it, within cfg's bounds. */
static uint64_t usb4_rel_reo(const struct usb4_rel_cfg *cfg, uint64_t srtt)
{
	uint64_t reo = srtt + srtt / 4;

	if (reo < cfg->reorder_min_ns)
		reo = cfg->reorder_min_ns;
	return usb4_rel_min(reo, usb4_rel_reo_max(cfg));
}

/* The reordering allowance follows the round trip (a hole is lost when it
 * is 5/4 of a round trip old), never more than a quarter of the timeout
 * (or within cfg's reorder_min_ns and reorder_max_ns). */
static uint64_t usb4_rel_rtt_sample(struct usb4_rel_peer *peer,
				    const struct usb4_rel_tx *tx, uint64_t now)
{
	uint64_t rtt = now - tx->tx_time;

	if (tx->resent || now < tx->tx_time)
		return 0;	/* no sample */
	peer->srtt = peer->srtt ? peer->srtt - peer->srtt / 8 + rtt / 8 : rtt;
	peer->reo_ns = usb4_rel_reo(&peer->cfg, peer->srtt);
	return rtt ? rtt : 1;
}

/* Cumulative ack: frees [snd_una, ack); progress resets the backoff. */
static void usb4_rel_advance(struct usb4_rel_peer *peer, uint32_t ack,
			     uint64_t now)
{
	uint64_t rtt = usb4_rel_rtt_sample(peer, usb4_rel_tx_slot(peer, ack - 1),
					   now), bytes = 0;

	for (; peer->snd_una != ack; peer->snd_una++) {
		struct usb4_rel_tx *tx = usb4_rel_tx_slot(peer, peer->snd_una);

		if (tx->state == USB4_REL_TX_INFLIGHT)
			usb4_rel_cc_left(&peer->cc, tx->len);
		bytes += tx->len;
		usb4_rel_tx_free(peer, tx);
	}
	peer->stats.cc_cuts_delay += usb4_rel_cc_acked(&peer->cc, now, ack,
						       bytes, rtt, peer->snd_tx);
	peer->epoch++;
	if (!usb4_rel_seq_lt(peer->snd_una, peer->lost_top))
		peer->lost_before = 0;	/* every hole below lost_top is acked */
	if (peer->backed_off) {
		/* Deadlines of backed-off frames just moved earlier. */
		peer->rtx_due = 0;
		peer->backed_off = false;
	}
}

/* Keeps the USB4_REL_DUPTHRESH newest serials, newest first. */
static void usb4_rel_keep_newest(uint64_t *newest, uint64_t serial)
{
	for (unsigned i = 0; i < USB4_REL_DUPTHRESH; i++) {
		if (serial > newest[i]) {
			uint64_t older = newest[i];

			newest[i] = serial;
			serial = older;
		}
	}
}

/* Marks sacked frames; returns the transmission serial that a hole must
 * predate to count as lost (0: none), and in *top the highest sacked seq.
 * Like TCP's duplicate-ack threshold, a hole is lost once DUPTHRESH frames
 * sent after it arrived (fewer when fewer are in flight), so mild reordering
 * costs no retransmission. */
static uint64_t usb4_rel_mark_sacked(struct usb4_rel_peer *peer, uint64_t sack,
				     uint32_t *top)
{
	uint64_t newest[USB4_REL_DUPTHRESH] = { 0 };
	uint32_t flight = peer->snd_tx - peer->snd_una, thresh;

	for (uint32_t i = 0; sack && i < USB4_REL_SACK_BITS; i++, sack >>= 1) {
		uint32_t seq = peer->snd_una + 1 + i;
		struct usb4_rel_tx *tx;

		if (!(sack & 1))
			continue;
		if (seq - peer->snd_una >= flight)
			break;	/* never sent: a bogus bit */
		tx = usb4_rel_tx_slot(peer, seq);
		if (tx->state == USB4_REL_TX_INFLIGHT) {
			tx->state = USB4_REL_TX_SACKED;
			usb4_rel_cc_left(&peer->cc, tx->len);
		}
		usb4_rel_keep_newest(newest, tx->tx_serial);
		*top = seq;
	}
	/* Nothing in flight (a peer that sacks what we never sent): flight - 1
	 * would wrap and index newest[] far out of bounds (found by
	 * tests/fuzz, seed corpus/regress-sack-nothing-in-flight). */
	if (!flight)
		return 0;
	thresh = flight > USB4_REL_DUPTHRESH ? USB4_REL_DUPTHRESH : flight - 1;
	return thresh ? newest[thresh - 1] : 0;
}

/* Fast retransmit: sacks name holes; each hole older than the reordering
 * allowance goes now, a younger one when it comes of age (the timer).  The
 * new copy is newer than anything sacked so far, so a hole goes again at
 * most once per round trip. */
static void usb4_rel_fast_retransmit(struct usb4_rel_peer *peer, uint64_t now,
				     const struct usb4_rel_io *io,
				     uint64_t sack)
{
	uint32_t top = peer->snd_una;
	uint64_t before = usb4_rel_mark_sacked(peer, sack, &top);

	if (before <= peer->lost_before)
		return;		/* nothing newer than what we acted on */
	peer->lost_before = before;
	peer->lost_top = top;
	for (uint32_t seq = peer->snd_una; seq != top; seq++) {
		struct usb4_rel_tx *tx = usb4_rel_tx_slot(peer, seq);
		uint64_t due = usb4_rel_tx_due(peer, seq, tx);

		if (tx->state != USB4_REL_TX_INFLIGHT)
			continue;
		if (due > now) {
			peer->rtx_due = usb4_rel_min(peer->rtx_due, due);
			continue;
		}
		if (usb4_rel_xmit_data(peer, now, io, seq)) {
			usb4_rel_blocked(peer, now);
			return;
		}
		peer->stats.retransmitted++;
		peer->stats.cc_cuts_loss += usb4_rel_cc_lost(&peer->cc, now,
							     peer->snd_tx);
		peer->rtx_due = usb4_rel_min(peer->rtx_due,
					     usb4_rel_tx_due(peer, seq, tx));
	}
}

static void usb4_rel_on_ack(struct usb4_rel_peer *peer, uint64_t now,
			    const struct usb4_rel_io *io,
			    const struct usb4_wire_rel *h)
{
	/* Only acks within [snd_una, snd_tx]: older ones are stale reorders,
	 * and so is the window they carry. */
	if (h->ack - peer->snd_una > peer->snd_tx - peer->snd_una)
		return;
	/* A closed window still lets one frame through: it probes. */
	peer->peer_wnd = h->window ? h->window : 1;
	if (peer->tx) {
		if (h->ack != peer->snd_una)
			usb4_rel_advance(peer, h->ack, now);
		if (h->sack)
			usb4_rel_fast_retransmit(peer, now, io, h->sack);
	}
	if (peer->tx)
		usb4_rel_flush(peer, now, io);	/* the window may have opened */
}

/* ---- data arriving ------------------------------------------------------ */

static int usb4_rel_drop(struct usb4_rel_peer *peer, enum usb4_rel_drop why,
			 int err)
{
	peer->stats.dropped[why]++;
	return err;
}

/* Hands up what arrived in order and the receiver has not taken, until it
 * refuses one.  A window that opened noticeably is announced at once. */
static void usb4_rel_deliver_held(struct usb4_rel_peer *peer, uint64_t now,
				  const struct usb4_rel_io *io)
{
	uint32_t before = usb4_rel_rcv_window(peer);

	while (peer->rcv_dlv != peer->rcv_nxt) {
		struct usb4_rel_rx *rx = usb4_rel_rx_slot(peer, peer->rcv_dlv);
		struct iovec one = { .iov_base = rx->data, .iov_len = rx->len };

		if (io->deliver(io->deliver_ctx, &one, 1)) {
			peer->stats.not_ready++;
			peer->retry_at = now + peer->cfg.ack_delay_ns;
			break;
		}
		rx->present = false;
		usb4_rel_pool_put(peer->cfg.pool, rx->data);
		rx->data = NULL;
		peer->rcv_dlv++;
		peer->stats.delivered++;
	}
	if (usb4_rel_rcv_window(peer) > before &&
	    2 * peer->wnd_sent < peer->cfg.window)
		usb4_rel_ack_later(peer, now, true);
}

/* rcv_nxt moves over out-of-order payloads the gap no longer separates. */
static void usb4_rel_fill_gap(struct usb4_rel_peer *peer)
{
	while (peer->rcv_ooo) {
		struct usb4_rel_rx *rx = usb4_rel_rx_slot(peer, peer->rcv_nxt);

		if (!rx->present || rx->seq != peer->rcv_nxt)
			break;
		peer->rcv_ooo--;
		peer->rcv_nxt++;
	}
}

/* Keeps a payload in its slot until it can be delivered.  Without a
 * buffer the datagram is dropped unacknowledged (it comes again), but the
 * sender hears from us at once: a receiver short of memory is alive. */
static int usb4_rel_hold(struct usb4_rel_peer *peer, uint64_t now,
			 uint32_t seq, const struct iovec *payload, int count,
			 uint32_t len, unsigned char *owned)
{
	struct usb4_rel_rx *rx = usb4_rel_rx_slot(peer, seq);

	rx->data = owned ? owned :
		   usb4_rel_pool_get(peer->cfg.pool, len ? len : 1);
	if (!rx->data) {
		usb4_rel_frags_yield(&peer->frags, seq);	/* room next time */
		usb4_rel_ack_later(peer, now, true);
		return usb4_rel_drop(peer, USB4_REL_DROP_NO_BUFFER, -FI_EAGAIN);
	}
	if (!owned)
		usb4_rel_gather(rx->data, payload, count, 0, len);
	rx->seq = seq;
	rx->len = len;
	rx->present = true;
	return 0;
}

/* The next payload in order: straight to the receiver when nothing waits
 * before it (no copy), else (or when it is refused) held.  owned: the
 * payload is a pool buffer that is ours (a seq put together). */
static int usb4_rel_in_order(struct usb4_rel_peer *peer, uint64_t now,
			     const struct usb4_rel_io *io,
			     const struct iovec *payload, int count,
			     uint32_t len, unsigned char *owned)
{
	bool filled_gap = peer->rcv_ooo != 0;

	if (peer->rcv_dlv == peer->rcv_nxt &&
	    !io->deliver(io->deliver_ctx, payload, count)) {
		usb4_rel_pool_put(peer->cfg.pool, owned);
		peer->rcv_dlv++;
		peer->stats.delivered++;
	} else {
		if (peer->rcv_dlv == peer->rcv_nxt) {
			peer->stats.not_ready++;
			peer->retry_at = now + peer->cfg.ack_delay_ns;
		}
		if (usb4_rel_hold(peer, now, peer->rcv_nxt, payload, count, len,
				  owned))
			return -FI_EAGAIN;
	}
	peer->rcv_nxt++;
	usb4_rel_fill_gap(peer);
	usb4_rel_ack_later(peer, now, filled_gap);
	if (peer->rcv_dlv != peer->rcv_nxt)	/* else nothing is held */
		usb4_rel_deliver_held(peer, now, io);
	return 0;
}

/* Whether a payload of seq is one we take: not had, within the window,
 * rings there; else the drop (counted). */
static int usb4_rel_admit(struct usb4_rel_peer *peer, uint64_t now,
			  uint32_t seq)
{
	struct usb4_rel_rx *rx;

	if (usb4_rel_seq_lt(seq, peer->rcv_nxt)) {
		usb4_rel_ack_later(peer, now, true);	/* our ack was lost */
		return usb4_rel_drop(peer, USB4_REL_DROP_DUPLICATE,
				     -FI_EALREADY);
	}
	if (seq - peer->rcv_dlv >= peer->cfg.window) {
		usb4_rel_ack_later(peer, now, true);
		return usb4_rel_drop(peer, USB4_REL_DROP_OUT_OF_WINDOW,
				     -FI_ENOSPC);
	}
	if (usb4_rel_rings(peer))
		return usb4_rel_drop(peer, USB4_REL_DROP_NO_BUFFER, -FI_EAGAIN);
	rx = usb4_rel_rx_slot(peer, seq);
	if (seq != peer->rcv_nxt && rx->present && rx->seq == seq) {
		usb4_rel_ack_later(peer, now, true);
		return usb4_rel_drop(peer, USB4_REL_DROP_DUPLICATE,
				     -FI_EALREADY);
	}
	return 0;
}

/* An admitted payload: delivered or held (owned as in usb4_rel_in_order). */
static int usb4_rel_accept(struct usb4_rel_peer *peer, uint64_t now,
			   const struct usb4_rel_io *io, uint32_t seq,
			   const struct iovec *payload, int count, uint32_t len,
			   unsigned char *owned)
{
	if (seq == peer->rcv_nxt)
		return usb4_rel_in_order(peer, now, io, payload, count, len,
					 owned);
	if (usb4_rel_hold(peer, now, seq, payload, count, len, owned))
		return -FI_EAGAIN;
	peer->rcv_ooo++;
	usb4_rel_ack_later(peer, now, true);	/* a gap: tell the sender */
	return 0;
}

static int usb4_rel_receive(struct usb4_rel_peer *peer, uint64_t now,
			    const struct usb4_rel_io *io, uint32_t seq,
			    const struct iovec *payload, int count, uint32_t len)
{
	int ret = usb4_rel_admit(peer, now, seq);

	return ret ? ret : usb4_rel_accept(peer, now, io, seq, payload, count,
					   len, NULL);
}

/* A fragment of seq: taken once whole (usb4_rel_frag.c). */
static int usb4_rel_receive_frag(struct usb4_rel_peer *peer, uint64_t now,
				 const struct usb4_rel_io *io, uint32_t seq,
				 const struct iovec *payload, int count,
				 uint32_t len)
{
	struct iovec whole;
	int ret = usb4_rel_admit(peer, now, seq);

	if (ret)
		return ret;
	ret = usb4_rel_frag_take(&peer->frags, seq, payload, count, len,
				 &whole, &peer->stats);
	if (ret == -FI_EINPROGRESS)
		return 0;
	if (ret == -FI_EAGAIN) {
		usb4_rel_ack_later(peer, now, true);
		return usb4_rel_drop(peer, USB4_REL_DROP_NO_BUFFER, ret);
	}
	if (ret)
		return usb4_rel_drop(peer, USB4_REL_DROP_BAD_FRAGMENT, ret);
	return usb4_rel_accept(peer, now, io, seq, &whole, 1,
			       (uint32_t) whole.iov_len, whole.iov_base);
}

/* ---- input -------------------------------------------------------------- */

static int usb4_rel_on_reject(struct usb4_rel_peer *peer,
			      const struct usb4_wire_hello *hello)
{
	/* A live session is never ended this way. */
	if (peer->peer_known)
		return usb4_rel_drop(peer, USB4_REL_DROP_WRONG_SRC, -FI_ENOENT);
	USB4_WARN(FI_LOG_EP_CTRL, "peer %016llx refused us: it speaks usb4 "
		  "wire version %u (features %#x), we speak %u (features %#x)\n",
		  (unsigned long long) peer->remote_id, hello->proto,
		  hello->features, USB4_WIRE_VERSION,
		  usb4_rel_features(&peer->cfg));
	peer->down = -FI_ECONNREFUSED;
	return -FI_ECONNREFUSED;
}

/* What a peer's handshake datagram says of it, as an offer's peer fields
 * (our isn and nonce are not touched). */
static void usb4_rel_offer_fill(struct usb4_rel_offer *o,
				const struct usb4_wire_rel *h,
				const struct usb4_wire_hello *hello)
{
	o->remote_id = h->src_id;
	o->peer_isn = h->seq;
	o->peer_window = h->window ? h->window : 1;
	o->peer_datagram_max = hello->datagram_max;
	o->peer_features = hello->features;
	memcpy(o->peer_nonce, hello->nonce, sizeof(o->peer_nonce));
}

/* What a proven handshake datagram (or an offer) teaches: the peer's ISN,
 * window, largest datagram and nonce, and with a job key the keys. */
static void usb4_rel_learn(struct usb4_rel_peer *peer,
			   const struct usb4_rel_offer *o)
{
	peer->peer_known = true;
	peer->pending_set = false;
	peer->peer_isn = o->peer_isn;
	peer->rcv_nxt = peer->rcv_dlv = o->peer_isn;
	peer->peer_datagram_max = o->peer_datagram_max;
	peer->peer_features = o->peer_features;
	peer->peer_ext = o->peer_ext;
	usb4_rel_path_learn(&peer->path, o->peer_datagram_max,
			    o->peer_features);
	/* Later handshake datagrams are repeats: their window is old. */
	peer->peer_wnd = o->peer_window;
	memcpy(peer->peer_nonce, o->peer_nonce, sizeof(peer->peer_nonce));
	if (peer->cfg.job)
		usb4_auth_session_init(&peer->auth, peer->cfg.job,
				       peer->local_id, peer->remote_id,
				       peer->nonce, peer->peer_nonce);
}

int usb4_rel_refused(struct usb4_rel_peer *peer,
		     const struct usb4_rel_head *head)
{
	struct usb4_wire_hello hello = {
		.proto = head->proto, .features = head->features,
	};

	/* Another version cannot prove anything: believed only without a
	 * job key, and only while the handshake is pending. */
	if (peer->cfg.job)
		return usb4_rel_drop(peer, USB4_REL_DROP_UNAUTHENTICATED,
				     -FI_EACCES);
	if (head->type != USB4_REL_REJECT || !head->crc_ok ||
	    head->src_id != peer->remote_id || head->dst_id != peer->local_id)
		return usb4_rel_drop(peer, USB4_REL_DROP_BAD_HEADER,
				     -FI_EINVAL);
	return usb4_rel_on_reject(peer, &hello);
}

/* Same ids, another first seq or nonce: not the conversation we are in;
 * a live session is never ended by a handshake it did not ask for. */
static bool usb4_rel_other_conversation(const struct usb4_rel_peer *peer,
					const struct usb4_wire_rel *h,
					const struct usb4_wire_hello *hello)
{
	return peer->peer_known &&
	       (h->seq != peer->peer_isn ||
		memcmp(hello->nonce, peer->peer_nonce, sizeof(hello->nonce)));
}

/* A peer that has not sent a HELLO of its own answers the peer's and
 * keeps what it said, to learn it when the peer proves it got the answer. */
static void usb4_rel_pend(struct usb4_rel_peer *peer,
			  const struct usb4_wire_rel *h,
			  const struct usb4_wire_hello *hello)
{
	usb4_rel_offer_fill(&peer->pending, h, hello);
	peer->pending.peer_ext = peer->ext_in;
	peer->pending.isn = peer->isn;
	peer->pending_set = true;
}

/* A HELLO teaches nothing: it is answered with a HELLO_ACK acknowledging
 * its seq (every HELLO, repeats too: our answer may have been lost; a
 * failed answer needs no retry, the peer asks again), or with a REJECT. */
static int usb4_rel_answer_hello(struct usb4_rel_peer *peer,
				 const struct usb4_rel_io *io,
				 const struct usb4_wire_rel *h,
				 const struct usb4_wire_hello *hello)
{
	if (usb4_rel_other_conversation(peer, h, hello))
		return usb4_rel_drop(peer, USB4_REL_DROP_WRONG_SRC,
				     -FI_ENOENT);
	if (!usb4_rel_compatible(&peer->cfg, hello)) {
		USB4_WARN(FI_LOG_EP_CTRL, "refusing peer %016llx: it speaks "
			  "usb4 wire version %u (features %#x), we speak %u "
			  "(features %#x)\n",
			  (unsigned long long) peer->remote_id, hello->proto,
			  hello->features, USB4_WIRE_VERSION,
			  usb4_rel_features(&peer->cfg));
		usb4_rel_emit_hello(peer, io, USB4_REL_REJECT, h->seq);
		return -FI_ECONNREFUSED;
	}
	if (!peer->peer_known && !peer->hello_started)
		usb4_rel_pend(peer, h, hello);
	usb4_rel_emit_hello(peer, io, USB4_REL_HELLO_ACK, h->seq);
	return 0;
}

/* A HELLO_ACK or REJECT counts only as the answer to our HELLO: its ack
 * is our ISN. */
static int usb4_rel_on_answer(struct usb4_rel_peer *peer, uint64_t now,
			      const struct usb4_rel_io *io,
			      const struct usb4_wire_rel *h,
			      const struct usb4_wire_hello *hello)
{
	if (h->ack != peer->isn)
		return usb4_rel_drop(peer, USB4_REL_DROP_NO_PROOF,
				     -FI_EACCES);
	if (h->type == USB4_REL_REJECT ||
	    (!peer->peer_known && !usb4_rel_compatible(&peer->cfg, hello)))
		return usb4_rel_on_reject(peer, hello);
	if (usb4_rel_other_conversation(peer, h, hello))
		return usb4_rel_drop(peer, USB4_REL_DROP_WRONG_SRC,
				     -FI_ENOENT);
	peer->last_rx = now;
	if (!peer->peer_known) {
		struct usb4_rel_offer o;

		usb4_rel_offer_fill(&o, h, hello);
		o.peer_ext = peer->ext_in;
		usb4_rel_learn(peer, &o);
	}
	if (peer->tx)
		usb4_rel_flush(peer, now, io);
	return 0;
}

/* The peer closed its endpoint: what it sent us before is still handed
 * up; then the session is down (usb4_rel_closed_check). */
static void usb4_rel_on_fin(struct usb4_rel_peer *peer)
{
	if (!peer->fin_rcvd)
		peer->stats.fins_received++;
	peer->fin_rcvd = true;
}

static void usb4_rel_closed_check(struct usb4_rel_peer *peer)
{
	if (peer->fin_rcvd && !peer->down && peer->rcv_dlv == peer->rcv_nxt)
		peer->down = -FI_ECONNRESET;
}

static int usb4_rel_on_data(struct usb4_rel_peer *peer, uint64_t now,
			    const struct usb4_rel_io *io,
			    const struct usb4_wire_rel *h,
			    const struct iovec *payload, int count)
{
	int ret = 0;

	peer->last_rx = now;
	if (!peer->peer_known)
		return usb4_rel_drop(peer, USB4_REL_DROP_NO_HANDSHAKE,
				     -FI_ENOTCONN);
	/* Acks first: a payload may say "done" (a FIN) to a sender whose data
	 * this very datagram acknowledges, and acked data is no longer
	 * referenced (usb4_rel_send_ref). */
	usb4_rel_on_ack(peer, now, io, h);
	if (h->type == USB4_REL_ACK && (h->flags & USB4_REL_F_PROBE))
		usb4_rel_ack_later(peer, now, true);	/* answered below */
	if (h->type == USB4_REL_ACK && (h->flags & USB4_REL_F_FIN))
		usb4_rel_on_fin(peer);
	if (h->type == USB4_REL_DATA && (h->flags & USB4_REL_F_FRAG))
		ret = usb4_rel_receive_frag(peer, now, io, h->seq, payload,
					    count, h->len);
	else if (h->type == USB4_REL_DATA)
		ret = usb4_rel_receive(peer, now, io, h->seq, payload, count,
				       h->len);
	if (peer->ack_pending && peer->ack_due <= now)
		usb4_rel_send_ack(peer, io);
	return ret;
}

/* A session datagram before the handshake completed: the proof that the
 * peer got our answer to its HELLO (it acknowledges our ISN; its tag was
 * checked under the pending keys), which completes it. */
static enum usb4_rel_drop usb4_rel_prove(struct usb4_rel_peer *peer,
					 const struct usb4_wire_rel *h)
{
	if (!peer->pending_set)
		return USB4_REL_DROP_NO_HANDSHAKE;
	if (h->ack != peer->isn)
		return USB4_REL_DROP_NO_PROOF;
	usb4_rel_learn(peer, &peer->pending);
	return USB4_REL_DROP_MAX;
}

bool usb4_rel_head_read(const struct iovec *dgram, struct usb4_wire_rel *h)
{
	size_t len = dgram->iov_len;

	if (!dgram->iov_base || len < USB4_REL_HDR_LEN ||
	    len - USB4_REL_HDR_LEN > UINT32_MAX)
		return false;
	memcpy(h, dgram->iov_base, USB4_REL_HDR_LEN);
	usb4_rel_header_host(h);
	return true;
}

/*
 * The common datagram, read in place: a DATA or ACK of an established,
 * unkeyed session that came in one piece, with no flag but XXH3 (a
 * ping-pong's).  The general path reads every datagram piecewise (for
 * handshakes, tags and placed payloads) and gathered, sliced and copied
 * its header three times; this takes the header usb4_rel_head_read read
 * once (for the link's session lookup too) and makes the same checks as
 * usb4_rel_parse: the fields here, then the check (usb4_rel_input_read
 * hashes the datagram where it lies, usb4_rel_input_v a copy of its
 * header and its payload).  Anything else goes the general path, which
 * drops and counts it if it must.
 */
static bool usb4_rel_fields_ok(const struct usb4_rel_peer *peer,
			       const struct iovec *dgram,
			       const struct usb4_wire_rel *h)
{
	return !peer->cfg.job && peer->peer_known &&
	       h->version == USB4_WIRE_VERSION &&
	       (h->type == USB4_REL_DATA || h->type == USB4_REL_ACK) &&
	       !(h->flags & ~USB4_REL_F_XXH3) &&
	       h->len == dgram->iov_len - USB4_REL_HDR_LEN &&
	       usb4_rel_len_ok(&peer->cfg, h->type, h->len) &&
	       h->dst_id == peer->local_id && h->src_id == peer->remote_id;
}

static bool usb4_rel_parse_one(const struct usb4_rel_peer *peer,
			       const struct iovec *dgram,
			       struct usb4_wire_rel *h)
{
	struct usb4_wire_rel raw;	/* as on the wire, crc zeroed */
	struct iovec payload;

	if (!usb4_rel_head_read(dgram, h) || !usb4_rel_fields_ok(peer, dgram, h))
		return false;
	raw = *h;
	usb4_rel_header_host(&raw);	/* the same swaps take it back */
	raw.crc = 0;
	payload = (struct iovec) {
		.iov_base = (char *) dgram->iov_base + USB4_REL_HDR_LEN,
		.iov_len = h->len };
	return usb4_rel_check(h->flags & USB4_REL_F_XXH3, &raw, &payload,
			      h->len ? 1 : 0) == h->crc;
}

/* A datagram usb4_rel_parse_one read: as the general path goes on. */
static int usb4_rel_input_one(struct usb4_rel_peer *peer, uint64_t now,
			      const struct iovec *dgram,
			      const struct usb4_wire_rel *h,
			      const struct usb4_rel_io *io)
{
	struct iovec payload = {
		.iov_base = (char *) dgram->iov_base + USB4_REL_HDR_LEN,
		.iov_len = h->len };
	int ret;

	usb4_rel_ka_heard(&peer->ka);
	ret = usb4_rel_on_data(peer, now, io, h, &payload, h->len ? 1 : 0);
	usb4_rel_closed_check(peer);
	usb4_rel_trim(peer, now);
	return ret;
}

int usb4_rel_input_v(struct usb4_rel_peer *peer, uint64_t now,
		     const struct iovec *dgram, int count,
		     const struct usb4_rel_io *io)
{
	struct iovec payload[USB4_REL_PIECES_MAX];
	struct usb4_wire_hello hello;
	struct usb4_wire_rel h;
	size_t len = usb4_rel_pieces_len(dgram, count);
	enum usb4_rel_drop why;
	uint64_t pn;
	int ret;

	if (peer->down)
		return peer->down;
	if (count == 1 && usb4_rel_parse_one(peer, dgram, &h))
		return usb4_rel_input_one(peer, now, dgram, &h, io);
	why = usb4_rel_parse(peer, dgram, count, len, &h, &pn);
	if (why == USB4_REL_DROP_MAX && !usb4_rel_is_hello(h.type) &&
	    !peer->peer_known)
		why = usb4_rel_prove(peer, &h);
	if (why != USB4_REL_DROP_MAX)
		return usb4_rel_drop(peer, why, why == USB4_REL_DROP_BAD_HEADER ?
					   -FI_EINVAL : -FI_ENOENT);
	if (pn)
		usb4_auth_accept_pn(&peer->auth, pn);
	if (peer->peer_known)	/* anything authentic answers a probe */
		usb4_rel_ka_heard(&peer->ka);
	if (usb4_rel_is_hello(h.type)) {
		usb4_rel_hello_read(dgram, count, &hello);
		usb4_rel_ext_read(dgram, count, &h, &hello, &peer->ext_in);
		ret = h.type == USB4_REL_HELLO ?
		      usb4_rel_answer_hello(peer, io, &h, &hello) :
		      usb4_rel_on_answer(peer, now, io, &h, &hello);
	} else {
		count = usb4_rel_skip_hdr(dgram, count, h.len, payload);
		ret = usb4_rel_on_data(peer, now, io, &h, payload, count);
	}
	usb4_rel_closed_check(peer);
	usb4_rel_trim(peer, now);
	return ret;
}

int usb4_rel_input_read(struct usb4_rel_peer *peer, uint64_t now,
			const struct iovec *dgram,
			const struct usb4_wire_rel *h,
			const struct usb4_rel_io *io)
{
	if (!peer->down && usb4_rel_fields_ok(peer, dgram, h) &&
	    usb4_rel_check_whole(h->flags & USB4_REL_F_XXH3, dgram->iov_base,
				 dgram->iov_len) == h->crc)
		return usb4_rel_input_one(peer, now, dgram, h, io);
	return usb4_rel_input_v(peer, now, dgram, 1, io);
}

int usb4_rel_input(struct usb4_rel_peer *peer, uint64_t now,
		   const void *datagram, size_t len,
		   const struct usb4_rel_io *io)
{
	struct iovec one = { .iov_base = (void *) datagram, .iov_len = len };

	return usb4_rel_input_v(peer, now, &one, 1, io);
}

/* ---- timer -------------------------------------------------------------- */

static void usb4_rel_backoff(struct usb4_rel_peer *peer,
			     struct usb4_rel_tx *tx, unsigned level)
{
	if (level > USB4_REL_LEVEL_MAX)
		level = USB4_REL_LEVEL_MAX;
	tx->level = (uint8_t) level;
	tx->epoch = peer->epoch;
	peer->backed_off |= level > 0;
	peer->stats.retransmitted++;
}

/* What a frame going again tells the congestion controller. */
static void usb4_rel_cc_resent(struct usb4_rel_peer *peer, uint64_t now,
			       bool timeout)
{
	if (timeout)
		peer->stats.cc_cuts_timeout +=
			usb4_rel_cc_timeout(&peer->cc, now, peer->snd_tx);
	else
		peer->stats.cc_cuts_loss += usb4_rel_cc_lost(&peer->cc, now,
							     peer->snd_tx);
}

/* Retransmits the frames that are due, recomputes the exact next time.
 * Only a timeout doubles a frame's timeout; a hole going again does not. */
static void usb4_rel_retransmit_due(struct usb4_rel_peer *peer, uint64_t now,
				    const struct usb4_rel_io *io)
{
	uint64_t next = UINT64_MAX;

	if (now < peer->rtx_due || !peer->tx)
		return;
	for (uint32_t seq = peer->snd_una; seq != peer->snd_tx; seq++) {
		struct usb4_rel_tx *tx = usb4_rel_tx_slot(peer, seq);
		unsigned level = usb4_rel_tx_level(peer, tx);

		if (tx->state != USB4_REL_TX_INFLIGHT)
			continue;
		if (usb4_rel_tx_due(peer, seq, tx) <= now) {
			bool timeout = tx->tx_time + usb4_rel_rto(peer, level)
				       <= now;

			if (usb4_rel_xmit_data(peer, now, io, seq)) {
				usb4_rel_blocked(peer, now);
				next = now;
				break;
			}
			usb4_rel_backoff(peer, tx, level + timeout);
			usb4_rel_cc_resent(peer, now, timeout);
		}
		next = usb4_rel_min(next, usb4_rel_tx_due(peer, seq, tx));
	}
	peer->rtx_due = next;
}

/* Whether the peer can be probed: it said it answers probes. */
static bool usb4_rel_probeable(const struct usb4_rel_peer *peer)
{
	return peer->peer_known && !peer->down &&
	       (peer->peer_features & USB4_WIRE_FEATURE_PROBE);
}

static void usb4_rel_send_probe(struct usb4_rel_peer *peer, uint64_t now,
				const struct usb4_rel_io *io)
{
	/* A probe that could not go (busy link) goes on the next call. */
	if (usb4_rel_emit_flagged(peer, io, USB4_REL_ACK, USB4_REL_F_PROBE,
				  peer->snd_tx, peer->rcv_nxt, NULL, 0))
		return;
	usb4_rel_acked(peer);
	usb4_rel_ka_sent(&peer->ka, now);
}

/* Probes an idle peer; true when the peer is found dead. */
static bool usb4_rel_keepalive(struct usb4_rel_peer *peer, uint64_t now,
			       const struct usb4_rel_io *io)
{
	if (!usb4_rel_probeable(peer))
		return false;
	switch (usb4_rel_ka_due(&peer->ka, now, peer->last_rx)) {
	case USB4_REL_KA_PROBE:
		usb4_rel_send_probe(peer, now, io);
		return false;
	case USB4_REL_KA_DEAD:
		peer->down = -FI_EHOSTUNREACH;
		usb4_rel_ka_dead(&peer->ka);
		return true;
	default:
		return false;
	}
}

bool usb4_rel_fin(struct usb4_rel_peer *peer, const struct usb4_rel_io *io)
{
	if (!usb4_rel_probeable(peer) ||
	    usb4_rel_emit_flagged(peer, io, USB4_REL_ACK, USB4_REL_F_FIN,
				  peer->snd_tx, peer->rcv_nxt, NULL, 0))
		return false;
	usb4_rel_acked(peer);
	peer->stats.fins_sent++;
	return true;
}

void usb4_rel_hint_unreachable(struct usb4_rel_peer *peer, uint64_t now,
			       uint64_t confirm_ns,
			       const struct usb4_rel_io *io)
{
	if (!usb4_rel_probeable(peer))
		return;
	usb4_rel_ka_hint(&peer->ka, now, confirm_ns);
	usb4_rel_keepalive(peer, now, io);
}

void usb4_rel_timer(struct usb4_rel_peer *peer, uint64_t now,
		    const struct usb4_rel_io *io)
{
	if (usb4_rel_check_dead(peer, now) || usb4_rel_keepalive(peer, now, io))
		return;
	if (peer->hello_started && !peer->peer_known && now >= peer->hello_due)
		usb4_rel_hello(peer, now, io);
	peer->tx_blocked = false;
	usb4_rel_retransmit_due(peer, now, io);	/* older data first */
	if (!peer->tx_blocked && peer->tx)
		usb4_rel_flush(peer, now, io);
	if (peer->rcv_dlv != peer->rcv_nxt && now >= peer->retry_at)
		usb4_rel_deliver_held(peer, now, io);
	if (peer->ack_pending && now >= peer->ack_due)
		usb4_rel_send_ack(peer, io);
	usb4_rel_closed_check(peer);
	usb4_rel_trim(peer, now);
}

void usb4_rel_ack_now(struct usb4_rel_peer *peer, const struct usb4_rel_io *io)
{
	if (peer->ack_pending && !peer->down)
		usb4_rel_send_ack(peer, io);
}

void usb4_rel_ack_send(struct usb4_rel_peer *peer, const struct usb4_rel_io *io)
{
	if (peer->peer_known && !peer->down)
		usb4_rel_send_ack(peer, io);
}

void usb4_rel_resend_in_flight(struct usb4_rel_peer *peer, uint64_t now,
			       const struct usb4_rel_io *io)
{
	if (peer->down || !peer->tx)
		return;
	for (uint32_t seq = peer->snd_una; seq != peer->snd_tx; seq++) {
		if (usb4_rel_tx_slot(peer, seq)->state != USB4_REL_TX_INFLIGHT)
			continue;
		if (usb4_rel_xmit_data(peer, now, io, seq)) {
			usb4_rel_blocked(peer, now);
			return;	/* the rest go when their time comes */
		}
		peer->stats.retransmitted++;
	}
}

const struct usb4_rel_hello_ext *
usb4_rel_peer_hello_ext(const struct usb4_rel_peer *peer)
{
	return &peer->peer_ext;
}

uint64_t usb4_rel_deadline(const struct usb4_rel_peer *peer)
{
	uint64_t due = UINT64_MAX;

	if (peer->down)
		return UINT64_MAX;
	if (peer->tx_blocked)
		due = peer->tx_blocked_at;
	if (peer->hello_started && !peer->peer_known)
		due = usb4_rel_min(due, peer->hello_due);
	if (peer->snd_tx != peer->snd_una)
		due = usb4_rel_min(due, peer->rtx_due);
	if (peer->ack_pending)
		due = usb4_rel_min(due, peer->ack_due);
	if (peer->rcv_dlv != peer->rcv_nxt)	/* offer refused payloads */
		due = usb4_rel_min(due, peer->retry_at);
	if (peer->idle_since)
		due = usb4_rel_min(due, peer->idle_since + USB4_REL_TRIM_NS);
	if (usb4_rel_probeable(peer))
		due = usb4_rel_min(due, usb4_rel_ka_deadline(&peer->ka,
							     peer->last_rx));
	if (usb4_rel_outstanding(peer)) {
		uint64_t since = peer->last_rx > peer->wait_since ?
				 peer->last_rx : peer->wait_since;
		due = usb4_rel_min(due, since + peer->cfg.dead_ns);
	}
	return due;
}

/* ---- open, close, queries ---------------------------------------------- */

/* An ISN when the caller gives none: the ids are random, so a mix of both
 * (a splitmix64-style finalizer) is as unpredictable as they are. */
static uint32_t usb4_rel_derive_isn(uint64_t local_id, uint64_t remote_id)
{
	uint64_t x = local_id ^ (remote_id << 32 | remote_id >> 32);

	x ^= 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (uint32_t) (x ^ (x >> 32));
}

static bool usb4_rel_cfg_ok(const struct usb4_rel_cfg *cfg)
{
	return cfg->window >= 1 && cfg->window <= USB4_REL_WINDOW_MAX &&
	       cfg->payload_max >= 1 &&
	       cfg->payload_max <= USB4_REL_PAYLOAD_MAX &&
	       cfg->rto_initial_ns >= 1 &&
	       cfg->rto_max_ns >= cfg->rto_initial_ns && cfg->dead_ns >= 1;
}

static void usb4_rel_init(struct usb4_rel_peer *peer, uint32_t isn,
			  uint64_t now)
{
	peer->isn = isn;
	peer->snd_una = peer->snd_tx = peer->snd_nxt = isn;
	peer->peer_wnd = peer->cfg.window;	/* until the peer says */
	peer->rtx_due = UINT64_MAX;
	peer->lost_top = isn;
	peer->reo_ns = usb4_rel_reo_max(&peer->cfg);
	peer->ack_every = peer->cfg.window / 4 ? peer->cfg.window / 4 : 1;
	peer->wnd_sent = peer->cfg.window;
	peer->last_rx = peer->wait_since = now;
	usb4_rel_cc_init(&peer->cc, peer->cfg.cc, peer->cfg.payload_max,
			 peer->cfg.window, isn, now);
}

int usb4_rel_peer_open(struct usb4_rel_peer **peerp,
		       const struct usb4_rel_cfg *cfg, uint64_t local_id,
		       uint64_t remote_id, uint64_t now)
{
	struct usb4_rel_peer *peer;
	uint32_t slots = 1;

	if (!peerp || !cfg || !usb4_rel_cfg_ok(cfg))
		return -FI_EINVAL;
	peer = calloc(1, sizeof(*peer));
	if (!peer)
		return -FI_ENOMEM;
	peer->cfg = *cfg;
	if (!peer->cfg.datagram_max)
		peer->cfg.datagram_max = (uint32_t) (cfg->payload_max +
						     USB4_REL_HDR_LEN);
	peer->local_id = local_id;
	peer->remote_id = remote_id;
	while (slots < cfg->window)
		slots <<= 1;
	peer->slots = slots;
	usb4_rel_path_init(&peer->path, peer->cfg.datagram_max,
			   (uint32_t) (USB4_REL_HDR_LEN +
				       (cfg->job ? USB4_REL_TRAILER_LEN : 0)));
	usb4_rel_frags_init(&peer->frags, cfg->pool, cfg->payload_max, slots);
	usb4_rel_init(peer, cfg->isn ? cfg->isn :
		      usb4_rel_derive_isn(local_id, remote_id), now);
	usb4_rel_ka_init(&peer->ka, cfg->keepalive_ns, cfg->dead_ns,
			 &peer->stats.ka);
	if (cfg->job)
		usb4_auth_nonce(peer->nonce);
	*peerp = peer;
	return 0;
}

/* ---- offers: a responder's handshake without a peer ---------------------- */

int usb4_rel_offer_read(const struct usb4_rel_cfg *cfg, uint64_t local_id,
			const struct iovec *dgram, int count,
			struct usb4_rel_offer *offer)
{
	size_t len = usb4_rel_pieces_len(dgram, count);
	struct usb4_wire_hello hello;
	struct usb4_wire_rel h;
	enum usb4_rel_drop why;
	uint64_t pn;

	if (!usb4_rel_header_read(dgram, count, len, &h) ||
	    h.type != USB4_REL_HELLO || h.dst_id != local_id || !h.src_id)
		return -FI_EINVAL;
	why = usb4_rel_authentic(cfg, NULL, dgram, count, len, &h, &pn);
	if (why == USB4_REL_DROP_UNAUTHENTICATED || why == USB4_REL_DROP_BAD_TAG)
		return -FI_EACCES;
	if (why != USB4_REL_DROP_MAX || !usb4_rel_len_ok(cfg, h.type, h.len))
		return -FI_EINVAL;
	usb4_rel_hello_read(dgram, count, &hello);
	usb4_rel_offer_fill(offer, &h, &hello);
	usb4_rel_ext_read(dgram, count, &h, &hello, &offer->peer_ext);
	return usb4_rel_compatible(cfg, &hello) ? 0 : -FI_ECONNREFUSED;
}

size_t usb4_rel_offer_answer(const struct usb4_rel_cfg *cfg, uint64_t local_id,
			     const struct usb4_rel_offer *offer, void *buf)
{
	return usb4_rel_build_hello(cfg, USB4_REL_HELLO_ACK, local_id,
				    offer->remote_id, offer->isn,
				    offer->peer_isn, offer->nonce, buf,
				    USB4_REL_ANSWER_LEN);
}

bool usb4_rel_offer_proven(const struct usb4_rel_cfg *cfg, uint64_t local_id,
			   const struct usb4_rel_offer *offer,
			   const struct iovec *dgram, int count)
{
	size_t len = usb4_rel_pieces_len(dgram, count);
	struct usb4_auth_session keys;
	struct usb4_wire_rel h;
	uint64_t pn;

	if (!usb4_rel_header_read(dgram, count, len, &h) ||
	    (h.type != USB4_REL_DATA && h.type != USB4_REL_ACK) ||
	    h.dst_id != local_id || h.src_id != offer->remote_id ||
	    h.ack != offer->isn)
		return false;
	if (cfg->job)
		usb4_auth_session_init(&keys, cfg->job, local_id,
				       offer->remote_id, offer->nonce,
				       offer->peer_nonce);
	return usb4_rel_authentic(cfg, cfg->job ? &keys : NULL, dgram, count,
				  len, &h, &pn) ==
	       USB4_REL_DROP_MAX && usb4_rel_len_ok(cfg, h.type, h.len);
}

int usb4_rel_peer_accept(struct usb4_rel_peer **peerp,
			 const struct usb4_rel_cfg *cfg, uint64_t local_id,
			 const struct usb4_rel_offer *offer, uint64_t now)
{
	struct usb4_rel_cfg ours = *cfg;
	struct usb4_rel_peer *peer;
	int ret;

	ours.isn = offer->isn;
	ret = usb4_rel_peer_open(&peer, &ours, local_id, offer->remote_id, now);
	if (ret)
		return ret;
	memcpy(peer->nonce, offer->nonce, sizeof(peer->nonce));
	usb4_rel_learn(peer, offer);
	*peerp = peer;
	return 0;
}

void usb4_rel_peer_close(struct usb4_rel_peer *peer)
{
	if (!peer)
		return;
	if (peer->tx) {
		for (uint32_t i = 0; i < peer->slots; i++) {
			usb4_rel_pool_put(peer->cfg.pool, peer->tx[i].data);
			usb4_rel_pool_put(peer->cfg.pool, peer->rx[i].data);
		}
	}
	usb4_rel_frags_close(&peer->frags);
	free(peer->rx);
	free(peer->tx);
	free(peer);
}

bool usb4_rel_dead(const struct usb4_rel_peer *peer)
{
	return peer->down != 0;
}

int usb4_rel_down(const struct usb4_rel_peer *peer)
{
	return peer->down;
}

uint32_t usb4_rel_in_flight(const struct usb4_rel_peer *peer)
{
	return peer->snd_tx - peer->snd_una;
}

uint32_t usb4_rel_unacked(const struct usb4_rel_peer *peer)
{
	return peer->snd_nxt - peer->snd_una;
}

uint32_t usb4_rel_undelivered(const struct usb4_rel_peer *peer)
{
	return peer->rcv_nxt - peer->rcv_dlv;
}

const struct usb4_rel_stats *usb4_rel_stats(const struct usb4_rel_peer *peer)
{
	return &peer->stats;
}

uint32_t usb4_rel_peer_datagram_max(const struct usb4_rel_peer *peer)
{
	return peer->peer_datagram_max;
}

size_t usb4_rel_path_payload_max(const struct usb4_rel_peer *peer)
{
	size_t room = usb4_rel_path_room(&peer->path);

	return room < peer->cfg.payload_max ? room : peer->cfg.payload_max;
}
