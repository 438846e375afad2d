/*
 * rel: reliable, in-order frame delivery to one peer over a lossy datagram
 * link (the udp link uses it; nothing else may).  Sequence numbers,
 * cumulative and selective acknowledgements, retransmission on timeout with
 * exponential backoff, duplicate suppression, a receive window so a fast
 * sender never overruns a slow receiver, receiver-not-ready (a payload the
 * receiver cannot take now waits in rel and the window closes), a handshake
 * per peer pair that checks protocol versions, and a dead-peer verdict.
 *
 * rel makes no system calls: the clock (now, in ns) and the link (an xmit
 * callback that sends one datagram) are arguments, so unit tests drive it
 * frame by frame.  The datagram format (struct usb4_wire_rel) is in wire.h.
 *
 * Memory: a peer costs a few hundred bytes while idle; its slot rings are
 * allocated while frames are in flight or buffered and released after
 * USB4_REL_TRIM_NS of quiet; payload copies come from a pool shared by every
 * peer of a link, bounded in bytes (usb4_rel_pool.c).  When the pool is
 * exhausted a send answers -FI_EAGAIN and an arriving datagram that would
 * need a copy is dropped unacknowledged (the sender resends it).
 *
 * Identity: every endpoint has a random 64-bit id (its incarnation).  A
 * datagram names its sender's and its receiver's ids; one whose receiver id is
 * not ours, or whose sender id is not the incarnation we handshook with, is
 * dropped and counted, so frames of a previous incarnation of a peer (a
 * restarted job reusing a port) never reach the core.
 *
 * Locking: callers serialise all calls on one usb4_rel_peer and its pool.
 */
#ifndef USB4_REL_H
#define USB4_REL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "usb4.h"
#include "usb4_rel_auth.h"

/* ---- the buffer pool (usb4_rel_pool.c) ---- */

struct usb4_rel_pool;

/* At most bytes_max bytes in use at once. */
int usb4_rel_pool_open(struct usb4_rel_pool **pool, size_t bytes_max);
void usb4_rel_pool_close(struct usb4_rel_pool *pool);
/* A buffer of at least len bytes; NULL when the budget is spent or memory
 * ran out.  A NULL pool allocates without a budget. */
void *usb4_rel_pool_get(struct usb4_rel_pool *pool, size_t len);
void usb4_rel_pool_put(struct usb4_rel_pool *pool, void *buf);
/* Bytes handed out and not yet put back. */
size_t usb4_rel_pool_in_use(const struct usb4_rel_pool *pool);

/* ---- a peer ---- */

/* Sends one datagram made of iov[0..count); returns 0 or a negative FI_E*
 * code (-FI_EAGAIN: the link is busy, rel retries on a later timer call). */
typedef int (*usb4_rel_xmit_fn)(void *ctx, const struct iovec *iov, int count);
/* Hands one payload up, in order, exactly once, in count pieces (as the
 * datagram came, less rel's header).  0: taken; -FI_EAGAIN: not now (rel
 * keeps it, closes the window and offers it again later). */
typedef int (*usb4_rel_deliver_fn)(void *ctx, const struct iovec *payload,
				   int count);

/* Most pieces a datagram may come in (usb4_rel_input_v). */
#define USB4_REL_PIECES_MAX	4

struct usb4_rel_io {
	usb4_rel_xmit_fn xmit;
	void *xmit_ctx;
	usb4_rel_deliver_fn deliver;
	void *deliver_ctx;
	/* Optional: the largest datagram the link can send now (re-read
	 * when xmit said -FI_EMSGSIZE); NULL, or 0: rel steps down itself. */
	uint32_t (*path_max)(void *xmit_ctx);
};

/*
 * Bytes a link adds to its handshake datagrams (HELLO, HELLO_ACK), opaque
 * to rel: the udp link's rail list (usb4_udp_rails.c).  Sent when the
 * link gives one (offering USB4_WIRE_FEATURE_RAILS), kept from a peer
 * that offers that feature, at most USB4_REL_HELLO_EXT_MAX bytes.
 */
#define USB4_REL_HELLO_EXT_MAX	96

struct usb4_rel_hello_ext {
	uint16_t len;
	unsigned char data[USB4_REL_HELLO_EXT_MAX];
};

struct usb4_rel_cfg {
	uint32_t window;	/* frames in flight, and receive buffer, <= 1024 */
	size_t payload_max;	/* largest payload of one datagram */
	uint32_t datagram_max;	/* what we tell the peer we receive */
	uint64_t rto_initial_ns;	/* first retransmission timeout */
	uint64_t rto_max_ns;	/* backoff cap */
	uint64_t ack_delay_ns;	/* an ack may wait this long to piggyback */
	uint64_t dead_ns;	/* no sign of life this long while frames are
				 * unacknowledged (or the handshake pending):
				 * the peer is dead */
	uint32_t isn;		/* our first sequence number, random per peer
				 * (usb4_random64); 0: derived from the ids */
	struct usb4_rel_pool *pool;	/* payload copies; NULL: no budget */
	const struct usb4_auth_job *job;	/* NULL: datagrams carry a CRC;
						 * else a tag (usb4_rel_auth.h) */
	bool cc;		/* congestion control: a window in bytes that
				 * adapts (usb4_rel_cc.h); off: the fixed
				 * window alone */
	uint64_t keepalive_ns;	/* a peer that offered FEATURE_PROBE and was
				 * silent this long is probed; silence for
				 * dead_ns after the first probe is death
				 * (usb4_rel_keepalive.h); 0: never probe */
	const struct usb4_rel_hello_ext *hello_ext;	/* ours, or NULL */
	uint64_t reorder_max_ns;	/* most a hole may be late and not lost
					 * (several paths reorder by their
					 * queues); 0: rto_initial_ns / 4 */
	uint64_t reorder_min_ns;	/* and how late it may always be, however
					 * short the round trip; 0: no floor */
	bool path_guess;	/* large datagrams lost while the peer answers
				 * a probe shrink the path (usb4_rel_frag.h);
				 * off where losses have other causes (a rail
				 * going down) */
};

enum usb4_rel_drop {
	USB4_REL_DROP_BAD_HEADER,	/* short, bad version/type/length, CRC */
	USB4_REL_DROP_WRONG_DST,	/* not addressed to our incarnation */
	USB4_REL_DROP_WRONG_SRC,	/* from another incarnation of the peer */
	USB4_REL_DROP_DUPLICATE,	/* already delivered */
	USB4_REL_DROP_OUT_OF_WINDOW,	/* beyond what we can buffer */
	USB4_REL_DROP_NO_HANDSHAKE,	/* DATA before we know the peer's
					 * first seq (its HELLO was lost) */
	USB4_REL_DROP_NO_BUFFER,	/* the pool is spent: not acked, resent */
	USB4_REL_DROP_UNAUTHENTICATED,	/* no tag where a job key is in force,
					 * or one where none is */
	USB4_REL_DROP_BAD_TAG,		/* a tag that does not verify */
	USB4_REL_DROP_REPLAYED,		/* a packet number seen before */
	USB4_REL_DROP_NO_PROOF,		/* a HELLO_ACK that does not answer our
					 * HELLO (its ack is not our ISN) */
	USB4_REL_DROP_BAD_FRAGMENT,	/* out of bounds, misaligned, or naming
					 * another total than its seq's */
	USB4_REL_DROP_MAX
};

/* Liveness: keepalive probes and the hints that start them early. */
struct usb4_rel_ka_stats {
	uint64_t probes_sent, probes_answered;
	uint64_t hints;			/* usb4_rel_hint_unreachable calls */
	uint64_t hints_confirmed;	/* the peer did not answer: dead */
	uint64_t hints_refuted;		/* it answered: the hint was wrong */
};

struct usb4_rel_stats {
	uint64_t sent, retransmitted, delivered, acks_sent;
	uint64_t not_ready;		/* deliveries the receiver refused */
	uint64_t dropped[USB4_REL_DROP_MAX];
	/* congestion control: window cuts for loss (once per window of
	 * data), for a retransmission timeout, for queueing delay */
	uint64_t cc_cuts_loss, cc_cuts_timeout, cc_cuts_delay;
	struct usb4_rel_ka_stats ka;
	uint64_t fins_sent, fins_received;
	uint64_t frag_sent, frag_received;	/* fragment datagrams */
	uint64_t path_shrinks;		/* the session's datagram size fell */
	uint64_t path_raises;		/* ... and a guessed fall was undone */
};

struct usb4_rel_peer;	/* opaque; usb4_rel.c */

/* local_id: our incarnation; remote_id: the peer's (from its address). */
int usb4_rel_peer_open(struct usb4_rel_peer **peer,
		       const struct usb4_rel_cfg *cfg, uint64_t local_id,
		       uint64_t remote_id, uint64_t now);
void usb4_rel_peer_close(struct usb4_rel_peer *peer);

/*
 * Queues one payload (copied: the caller may reuse its buffers at once) and
 * sends it when the window allows.  The handshake starts with the first send.
 * -FI_EAGAIN: window full or pool spent (backpressure); -FI_EMSGSIZE: larger
 * than payload_max; -FI_EHOSTUNREACH: the peer is dead; -FI_ECONNREFUSED:
 * the peer refused our version.
 */
int usb4_rel_send(struct usb4_rel_peer *peer, uint64_t now,
		  const struct iovec *iov, int count,
		  const struct usb4_rel_io *io);

/*
 * Like usb4_rel_send, but the last nref (<= USB4_REL_REF_MAX) buffers of iov
 * are not copied: they are sent, and sent again, from where they are, so
 * they must stay valid and unchanged until the peer acknowledges them or
 * usb4_rel_copy_refs takes copies (room for which is taken now, so that
 * never fails).  owner tags the frame for usb4_rel_copy_refs.
 */
#define USB4_REL_REF_MAX	USB4_IOV_LIMIT
int usb4_rel_send_ref(struct usb4_rel_peer *peer, uint64_t now,
		      const struct iovec *iov, int count, int nref,
		      uint64_t owner, const struct usb4_rel_io *io);

/* Copies the payloads of owner's frames that are still referenced
 * (unacknowledged) into rel's own buffers; owner may then reuse them.
 * Returns how many frames it copied (a dead peer's are just forgotten). */
uint32_t usb4_rel_copy_refs(struct usb4_rel_peer *peer, uint64_t owner);
/* The sequence number the next payload will get: a mark for ... */
uint32_t usb4_rel_next_seq(const struct usb4_rel_peer *peer);
/* ... whether everything sent before the mark is acknowledged (or the peer
 * is dead: nothing will be sent again). */
bool usb4_rel_acked_before(const struct usb4_rel_peer *peer, uint32_t seq);
/* Unacknowledged frames that reference caller buffers. */
uint32_t usb4_rel_refs(const struct usb4_rel_peer *peer);

/* True when usb4_rel_send would not return -FI_EAGAIN for a payload (the
 * pool permitting). */
bool usb4_rel_can_send(const struct usb4_rel_peer *peer);

/*
 * Takes one datagram that arrived from this peer's address: validates it
 * (header, CRC, incarnations), answers handshakes, processes acks, delivers
 * newly in-order payloads through io->deliver, and may send an ack.
 * Returns 0, or a negative FI_E* code when the datagram was dropped (counted).
 */
int usb4_rel_input(struct usb4_rel_peer *peer, uint64_t now,
		   const void *datagram, size_t len,
		   const struct usb4_rel_io *io);

/* The same for a datagram that arrived in count pieces (a receive that
 * placed part of it elsewhere), in order. */
int usb4_rel_input_v(struct usb4_rel_peer *peer, uint64_t now,
		     const struct iovec *dgram, int count,
		     const struct usb4_rel_io *io);

/* The header of a datagram in one piece, in host order (false: too short):
 * read once for the link's session lookup and for usb4_rel_input_read,
 * which takes that datagram as usb4_rel_input_v would.  The datagram's
 * bytes are the caller's buffer, which usb4_rel_input_read may write: its
 * check field is zeroed while it is hashed, then put back. */
struct usb4_wire_rel;
bool usb4_rel_head_read(const struct iovec *dgram, struct usb4_wire_rel *h);
int usb4_rel_input_read(struct usb4_rel_peer *peer, uint64_t now,
			const struct iovec *dgram,
			const struct usb4_wire_rel *h,
			const struct usb4_rel_io *io);

/* Retransmits what is overdue, sends delayed acks, offers refused payloads
 * again, releases idle rings, decides death. */
void usb4_rel_timer(struct usb4_rel_peer *peer, uint64_t now,
		    const struct usb4_rel_io *io);

/* The optional features both we and the peer offered; 0 before its HELLO
 * (or HELLO_ACK) was heard. */
uint32_t usb4_rel_shared_features(const struct usb4_rel_peer *peer);

/* Sends the acknowledgement the peer is owed now, not after ack_delay_ns
 * (before closing: the peer lingers until it hears). */
void usb4_rel_ack_now(struct usb4_rel_peer *peer, const struct usb4_rel_io *io);

/* Sends an acknowledgement now, owed or not (once the handshake is done):
 * a sign of life on the path the link picks. */
void usb4_rel_ack_send(struct usb4_rel_peer *peer, const struct usb4_rel_io *io);

/* Sends again, now, every frame in flight (the link lost a path they may
 * have taken: usb4_udp_rails.c). */
void usb4_rel_resend_in_flight(struct usb4_rel_peer *peer, uint64_t now,
			       const struct usb4_rel_io *io);

/* What the peer's handshake carried after its hello (len 0: nothing). */
const struct usb4_rel_hello_ext *
usb4_rel_peer_hello_ext(const struct usb4_rel_peer *peer);

/* When usb4_rel_timer next has something to do (UINT64_MAX: nothing). */
uint64_t usb4_rel_deadline(const struct usb4_rel_peer *peer);

/*
 * Close handshake: tells a peer that offered USB4_WIRE_FEATURE_PROBE that
 * this endpoint is closed (an ACK flagged USB4_REL_F_FIN, as authenticated
 * as any datagram of the session).  Returns whether one was sent (not to
 * a peer that is down, not known yet or does not understand it).  A peer
 * that gets it is down with -FI_ECONNRESET once it has handed up what it
 * received before.
 */
bool usb4_rel_fin(struct usb4_rel_peer *peer, const struct usb4_rel_io *io);

/*
 * A hint that the peer may be gone (an ICMP port-unreachable for its
 * address): unauthenticated, so it only makes rel probe at once and
 * declare the peer dead if nothing authenticated comes back within
 * confirm_ns.  Ignored for a peer that cannot be probed (it did not offer
 * USB4_WIRE_FEATURE_PROBE, or is not known yet): silence would prove
 * nothing there.
 */
void usb4_rel_hint_unreachable(struct usb4_rel_peer *peer, uint64_t now,
			       uint64_t confirm_ns,
			       const struct usb4_rel_io *io);

bool usb4_rel_dead(const struct usb4_rel_peer *peer);
/* Why the peer is down: 0 (it is not), -FI_EHOSTUNREACH (silent),
 * -FI_ECONNREFUSED (it refused our version or features), -FI_ECONNRESET
 * (it closed its endpoint: usb4_rel_fin). */
int usb4_rel_down(const struct usb4_rel_peer *peer);
/* Frames sent and not yet acknowledged. */
uint32_t usb4_rel_in_flight(const struct usb4_rel_peer *peer);
/* Frames accepted by usb4_rel_send and not yet acknowledged, sent or not. */
uint32_t usb4_rel_unacked(const struct usb4_rel_peer *peer);
/* Payloads received but not yet taken by the receiver. */
uint32_t usb4_rel_undelivered(const struct usb4_rel_peer *peer);
const struct usb4_rel_stats *usb4_rel_stats(const struct usb4_rel_peer *peer);
/* What the peer said in its handshake (0 until then). */
uint32_t usb4_rel_peer_datagram_max(const struct usb4_rel_peer *peer);
/* The largest payload one datagram of this session carries whole: ours
 * until the handshake, then the smaller side's, lower once the path shrank
 * (usb4_rel_frag.c).  Larger payloads, up to payload_max, go as fragments
 * to a peer that offered USB4_WIRE_FEATURE_FRAG. */
size_t usb4_rel_path_payload_max(const struct usb4_rel_peer *peer);

/* ---- datagrams before a peer is known ---- */

/* What a datagram says of itself, read before any peer state exists. */
struct usb4_rel_head {
	uint8_t version, type;
	uint16_t flags;
	uint64_t src_id, dst_id;
	uint16_t proto;		/* HELLO, HELLO_ACK, REJECT: the sender's */
	uint32_t features;
	bool crc_ok;		/* checked with this version's layout */
};

/* Reads the fixed fields of any version's header and, when the layout is
 * ours, checks the CRC.  -FI_EINVAL: too short or malformed. */
int usb4_rel_peek(const struct iovec *dgram, int count,
		  struct usb4_rel_head *head);
/* The same without the CRC (crc_ok false), and the CRC alone: a datagram
 * of a session is checked once, by usb4_rel_input. */
int usb4_rel_peek_fields(const struct iovec *dgram, int count,
			 struct usb4_rel_head *head);
bool usb4_rel_crc_valid(const struct iovec *dgram, int count);
/* A REJECT of another version (usb4_rel_peek, CRC valid) from this peer's
 * address: during the handshake the peer refused us (-FI_ECONNREFUSED,
 * logged with both versions); after it, ignored (-FI_ENOENT). */
int usb4_rel_refused(struct usb4_rel_peer *peer,
		     const struct usb4_rel_head *head);
/* Builds a REJECT answering a HELLO (our version and features) into buf
 * (at least USB4_REL_REJECT_LEN bytes); returns its length.  The _cfg form
 * offers cfg's features, is tagged under its job key, if any, and
 * acknowledges the HELLO whose seq is ack: the proof a peer of our
 * version wants before it believes a REJECT. */
#define USB4_REL_REJECT_LEN	128
size_t usb4_rel_reject(void *buf, uint64_t local_id, uint64_t remote_id);
size_t usb4_rel_reject_cfg(void *buf, const struct usb4_rel_cfg *cfg,
			   uint64_t local_id, uint64_t remote_id, uint32_t ack);

/* ---- a responder's offer: the handshake without a peer ---- */

/*
 * What a responder keeps of a HELLO from a peer it has no session with:
 * enough to answer it and to recognise the peer's proof that it got the
 * answer, so that nothing is allocated for a peer before then.  The caller
 * keeps offers in a bounded table.
 */
struct usb4_rel_offer {
	uint64_t remote_id;
	uint32_t peer_isn, peer_window, peer_datagram_max;
	uint32_t peer_features;			/* what its HELLO offered */
	uint32_t isn;				/* ours */
	unsigned char nonce[USB4_AUTH_NONCE_LEN];	/* ours */
	unsigned char peer_nonce[USB4_AUTH_NONCE_LEN];
	struct usb4_rel_hello_ext peer_ext;	/* after the peer's hello */
};

/*
 * Reads a HELLO addressed to local_id into offer's peer fields (isn and
 * nonce are the caller's to fill; the peer fields are filled also when it
 * is refused).  0: a HELLO we would accept;
 * -FI_ECONNREFUSED: intact but of versions or features we refuse (answer
 * with REJECT); -FI_EACCES: its tag does not verify or it lacks one where
 * a job key is in force; -FI_EINVAL: not an intact HELLO.
 */
int usb4_rel_offer_read(const struct usb4_rel_cfg *cfg, uint64_t local_id,
			const struct iovec *dgram, int count,
			struct usb4_rel_offer *offer);
/* The HELLO_ACK answering an offer, into buf (USB4_REL_ANSWER_LEN bytes);
 * returns its length. */
#define USB4_REL_ANSWER_LEN	256
size_t usb4_rel_offer_answer(const struct usb4_rel_cfg *cfg, uint64_t local_id,
			     const struct usb4_rel_offer *offer, void *buf);
/* Whether a DATA or ACK datagram proves that the offer's peer got our
 * answer: it acknowledges our ISN and, with a job key, carries a valid tag
 * under the session's keys. */
bool usb4_rel_offer_proven(const struct usb4_rel_cfg *cfg, uint64_t local_id,
			   const struct usb4_rel_offer *offer,
			   const struct iovec *dgram, int count);
/* A peer whose handshake is complete: the offer's. */
int usb4_rel_peer_accept(struct usb4_rel_peer **peer,
			 const struct usb4_rel_cfg *cfg, uint64_t local_id,
			 const struct usb4_rel_offer *offer, uint64_t now);
/* Peeks at a datagram's ids (version and CRC unchecked). */
int usb4_rel_datagram_ids(const void *datagram, size_t len, uint64_t *src_id,
			  uint64_t *dst_id);
int usb4_rel_datagram_ids_v(const struct iovec *dgram, int count,
			    uint64_t *src_id, uint64_t *dst_id);

/* CRC32C (Castagnoli) used for the datagram checksum. */
uint32_t usb4_crc32c(uint32_t crc, const void *data, size_t len);
/* The portable software path of usb4_crc32c (tests compare the two). */
/* The path usb4_crc32c takes here: "vpclmulqdq", "sse4.2" or "portable"
 * (also forced by FI_USB4_PORTABLE=1). */
const char *usb4_crc32c_path(void);
/* Whether that path is one of the CPU's CRC instructions (not
 * "portable"): then CRC32C costs less than XXH3 (usb4_rel_check.h). */
bool usb4_crc32c_fast(void);
uint32_t usb4_crc32c_soft(uint32_t crc, const void *data, size_t len);
/* FI_USB4_PORTABLE set to anything but 0: rel's CPU-specific paths (the
 * CRC32C instructions, libcrypto's vector Poly1305) stay off. */
bool usb4_portable_forced(void);

#endif /* USB4_REL_H */
