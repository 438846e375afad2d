/*
 * rel's datagram size per session and fragments (private to src/rel;
 * usb4_rel_frag.c).
 *
 * The path: a session's datagrams are at most the smaller of both sides'
 * largest datagram (the HELLOs say them), and smaller still once the path
 * shrank: our interface refused a datagram (-FI_EMSGSIZE), or large
 * datagrams kept vanishing while the peer answered smaller ones.
 *
 * Fragments: a frame rel accepted while the path was larger (before the
 * handshake, before a shrink) still has to get through whole, so its seq
 * goes as fragments (USB4_REL_F_FRAG, struct usb4_wire_frag) to a peer that
 * offered USB4_WIRE_FEATURE_FRAG; the receiver puts them together in a
 * buffer of the pool, one per receive slot, and acknowledges the seq only
 * when it holds every byte.
 */
#ifndef USB4_REL_FRAG_H
#define USB4_REL_FRAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "usb4_rel.h"

/* ---- the session's datagram size ---- */

struct usb4_rel_path {
	uint32_t max;		/* datagram bytes the path carries now */
	uint32_t known;		/* what both sides and our interface allow:
				 * max falls below it only by a guess */
	uint32_t overhead;	/* rel header and trailer of each datagram */
	bool frag;		/* the peer reassembles fragments */
	uint64_t raise_at;	/* a guess is tried again then (0: none) */
	uint64_t raise_ns;	/* and after how long the next one */
	bool raised;		/* since the last guess: a guess after a
				 * try doubles raise_ns */
};

void usb4_rel_path_init(struct usb4_rel_path *p, uint32_t local_max,
			uint32_t overhead);
/* The peer's handshake: its largest datagram (0: unknown) and features. */
void usb4_rel_path_learn(struct usb4_rel_path *p, uint32_t peer_max,
			 uint32_t peer_features);
/* Payload bytes one whole datagram carries. */
size_t usb4_rel_path_room(const struct usb4_rel_path *p);
/* Whether a payload of len bytes goes as fragments. */
bool usb4_rel_path_frags(const struct usb4_rel_path *p, size_t len);
/* The size of the datagrams a payload of len bytes goes in. */
uint32_t usb4_rel_path_dgram(const struct usb4_rel_path *p, size_t len);
/*
 * Datagrams of dgram bytes do not get through: the path drops below that,
 * to limit when the link re-read one (0: to the next common MTU below,
 * never below USB4_REL_PATH_FLOOR).  Logs it with why and counts it.
 * Returns whether the size fell.  Guessing stops at IPv6's minimum MTU
 * (1280 less IPv6's and UDP's headers): smaller datagrams are not
 * suspected, and a path below it is one only its interface can tell
 * (EMSGSIZE and the MTU read again).
 */
#define USB4_REL_PATH_FLOOR	1232u
bool usb4_rel_path_shrink(struct usb4_rel_path *p, uint32_t dgram,
			  uint32_t limit, uint64_t remote_id, const char *why,
			  struct usb4_rel_stats *st);

/*
 * The path shrank by a guess (large datagrams lost while the peer answered
 * small ones) at now.  A full queue on the way loses large datagrams before
 * small ones too, so a guess is not kept for good: at raise_at the path
 * goes back to `known` (usb4_rel_path_raise); a path that really is
 * narrower shrinks again (the steps down after a try count as one) and
 * its next try waits twice as long
 * (USB4_REL_PATH_RAISE_FIRST_NS doubling up to USB4_REL_PATH_RAISE_MAX_NS).
 */
#define USB4_REL_PATH_RAISE_FIRST_NS	(2ull * 1000 * 1000 * 1000)
#define USB4_REL_PATH_RAISE_MAX_NS	(128ull * 1000 * 1000 * 1000)
void usb4_rel_path_guessed(struct usb4_rel_path *p, uint64_t now);
/* Whether a guess is due to be tried again at now: if so the path is back
 * at `known` (logged, counted in path_raises). */
bool usb4_rel_path_raise(struct usb4_rel_path *p, uint64_t now,
			 uint64_t remote_id, struct usb4_rel_stats *st);

/* ---- sending a seq as fragments ---- */

/* Sends one datagram of a seq: rel's header, then iov[0..count). */
typedef int (*usb4_rel_frag_emit_fn)(void *ctx, const struct iovec *iov,
				     int count);
/* Sends the len bytes of payload[0..count) as fragments that fit the path.
 * The first fragment's error is returned (nothing went); a later failure
 * is a loss, healed by the retransmission of the whole seq. */
int usb4_rel_frag_send(const struct usb4_rel_path *p,
		       const struct iovec *payload, int count, size_t len,
		       usb4_rel_frag_emit_fn emit, void *ctx,
		       struct usb4_rel_stats *st);

/* ---- putting a seq together ---- */

struct usb4_rel_reasm;		/* one per receive slot, usb4_rel_frag.c */

/* The largest seq we put together, whatever our own datagrams carry: a
 * peer's frame fills one of ITS datagrams at most, and no UDP datagram
 * carries more than 64 KiB. */
#define USB4_REL_FRAG_TOTAL_MAX	(64u << 10)

struct usb4_rel_frags {
	struct usb4_rel_pool *pool;
	size_t total_max;	/* a total beyond this is refused */
	uint32_t slots;		/* rel's ring size (power of two) */
	uint32_t busy;		/* seqs partly held */
	struct usb4_rel_reasm *slot;	/* NULL until a fragment comes */
};

void usb4_rel_frags_init(struct usb4_rel_frags *f, struct usb4_rel_pool *pool,
			 size_t payload_max, uint32_t slots);
/*
 * Takes one fragment of seq (payload: the datagram's payload, fragment
 * header first, len bytes).  0: seq is whole, in *whole, a pool buffer the
 * caller now owns; -FI_EINPROGRESS: held, more to come; -FI_EINVAL:
 * malformed (counted by the caller as USB4_REL_DROP_BAD_FRAGMENT);
 * -FI_EAGAIN: no buffer in the pool.
 */
int usb4_rel_frag_take(struct usb4_rel_frags *f, uint32_t seq,
		       const struct iovec *payload, int count, size_t len,
		       struct iovec *whole, struct usb4_rel_stats *st);
/* Forgets every seq partly held but keep (the sender resends them): the
 * pool is short, and the in-order seq must not starve behind them. */
void usb4_rel_frags_yield(struct usb4_rel_frags *f, uint32_t keep);
/* Frees the slots when nothing is partly held. */
void usb4_rel_frags_trim(struct usb4_rel_frags *f);
void usb4_rel_frags_close(struct usb4_rel_frags *f);

#endif /* USB4_REL_FRAG_H */
