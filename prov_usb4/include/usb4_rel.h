/*
 * rel: reliable, in-order frame delivery to one peer over a lossy datagram
 * link (the udp link).  Sequence numbers, cumulative and selective
 * acknowledgements, retransmission on timeout with exponential backoff,
 * duplicate suppression, a receive window so a fast sender never overruns a
 * slow receiver, a handshake per peer pair, and a dead-peer verdict.
 *
 * rel makes no system calls: the clock (now, in ns) and the link (an xmit
 * callback that sends one datagram) are arguments, so unit tests drive it
 * frame by frame.  The datagram format (struct usb4_wire_rel) is in wire.h.
 *
 * Identity: every endpoint has a random 64-bit id (its incarnation).  A
 * datagram names its sender's and its receiver's ids; one whose receiver id is
 * not ours, or whose sender id is not the incarnation we handshook with, is
 * dropped and counted, so frames of a previous incarnation of a peer (a
 * restarted job reusing a port) never reach the core.
 *
 * Locking: callers serialise all calls on one usb4_rel_peer.
 */
#ifndef USB4_REL_H
#define USB4_REL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "usb4.h"

/* Sends one datagram made of iov[0..count); returns 0 or a negative FI_E*
 * code (-FI_EAGAIN: the link is busy, rel retries on a later timer call). */
typedef int (*usb4_rel_xmit_fn)(void *ctx, const struct iovec *iov, int count);
/* Hands one payload up, in order, exactly once, in count pieces (as the
 * datagram came, less rel's header). */
typedef void (*usb4_rel_deliver_fn)(void *ctx, const struct iovec *payload,
				    int count);

/* Most pieces a datagram may come in (usb4_rel_input_v). */
#define USB4_REL_PIECES_MAX	4

struct usb4_rel_io {
	usb4_rel_xmit_fn xmit;
	void *xmit_ctx;
	usb4_rel_deliver_fn deliver;
	void *deliver_ctx;
};

struct usb4_rel_cfg {
	uint32_t window;	/* frames in flight, and receive buffer, <= 1024 */
	size_t payload_max;	/* largest payload of one datagram */
	uint64_t rto_initial_ns;	/* first retransmission timeout */
	uint64_t rto_max_ns;	/* backoff cap */
	uint64_t ack_delay_ns;	/* an ack may wait this long to piggyback */
	uint64_t dead_ns;	/* no sign of life this long while frames are
				 * unacknowledged (or the handshake pending):
				 * the peer is dead */
	uint32_t isn;		/* our first sequence number, random per peer
				 * (usb4_random64); 0: derived from the ids */
};

enum usb4_rel_drop {
	USB4_REL_DROP_BAD_HEADER,	/* short, bad version/type/length, CRC */
	USB4_REL_DROP_WRONG_DST,	/* not addressed to our incarnation */
	USB4_REL_DROP_WRONG_SRC,	/* from another incarnation of the peer */
	USB4_REL_DROP_DUPLICATE,	/* already delivered */
	USB4_REL_DROP_OUT_OF_WINDOW,	/* beyond what we can buffer */
	USB4_REL_DROP_NO_HANDSHAKE,	/* DATA before we know the peer's
					 * first seq (its HELLO was lost) */
	USB4_REL_DROP_MAX
};

struct usb4_rel_stats {
	uint64_t sent, retransmitted, delivered, acks_sent;
	uint64_t dropped[USB4_REL_DROP_MAX];
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
 * -FI_EAGAIN: window full (backpressure); -FI_EMSGSIZE: larger than
 * payload_max; -FI_EHOSTUNREACH: the peer is dead.
 */
int usb4_rel_send(struct usb4_rel_peer *peer, uint64_t now,
		  const struct iovec *iov, int count,
		  const struct usb4_rel_io *io);

/*
 * Like usb4_rel_send, but the last nref (<= USB4_REL_REF_MAX) buffers of iov
 * are not copied: they are sent, and sent again, from where they are, so
 * they must stay valid and unchanged until the peer acknowledges them or
 * usb4_rel_copy_refs takes copies.  The rest of iov is copied as usual.
 * owner tags the frame for usb4_rel_copy_refs.
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

/* True when usb4_rel_send would not return -FI_EAGAIN for a payload. */
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

/* Retransmits what is overdue, sends delayed acks, decides death. */
void usb4_rel_timer(struct usb4_rel_peer *peer, uint64_t now,
		    const struct usb4_rel_io *io);

/* When usb4_rel_timer next has something to do (UINT64_MAX: nothing). */
uint64_t usb4_rel_deadline(const struct usb4_rel_peer *peer);

bool usb4_rel_dead(const struct usb4_rel_peer *peer);
/* Frames sent and not yet acknowledged. */
uint32_t usb4_rel_in_flight(const struct usb4_rel_peer *peer);
/* Frames accepted by usb4_rel_send and not yet acknowledged, sent or not. */
uint32_t usb4_rel_unacked(const struct usb4_rel_peer *peer);
const struct usb4_rel_stats *usb4_rel_stats(const struct usb4_rel_peer *peer);

/* Peek at a datagram's ids before a peer is known (for demultiplexing). */
int usb4_rel_datagram_ids(const void *datagram, size_t len, uint64_t *src_id,
			  uint64_t *dst_id);
int usb4_rel_datagram_ids_v(const struct iovec *dgram, int count,
			    uint64_t *src_id, uint64_t *dst_id);

/* CRC32C (Castagnoli) used for the datagram checksum. */
uint32_t usb4_crc32c(uint32_t crc, const void *data, size_t len);
/* The portable software path of usb4_crc32c (tests compare the two). */
uint32_t usb4_crc32c_soft(uint32_t crc, const void *data, size_t len);

#endif /* USB4_REL_H */
