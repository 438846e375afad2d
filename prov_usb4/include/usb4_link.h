/*
 * The cable, as the core sees it: one interface behind which every kind of
 * link moves frames between endpoints.  This is the only link header the
 * core includes; each kind's own headers live beside its sources.
 *
 * What a link promises
 *   - Frames reach a peer reliably and in the order they were posted, or
 *     the peer is down: every later post to it fails and peer_state says
 *     why; a link that learns of it by itself (a silent peer, a refusal)
 *     also reports it once through sink->peer_down.  A lossy cable brings its own reliability inside the
 *     link (the udp link runs rel).
 *   - Every frame handed up names its sender by how it arrived (the session
 *     or inbox slot it came on), never by a field of the frame.
 *   - A link never looks inside a core frame.  Beyond frames it offers what
 *     its capability bits say; the core chooses its protocols from those
 *     bits and never asks which kind a link is.
 *
 * Objects
 *   struct usb4_link       one link of one kind, per endpoint (its inbox,
 *                          its socket)
 *   struct usb4_link_dest  how a link reaches one peer address, opened
 *                          per address-vector entry (a mapped inbox, a
 *                          socket address); valid with any link of its kind
 *   struct usb4_link_zone  a landing zone: where the payloads of one
 *                          stream of frames from one peer go (a receive
 *                          buffer); links that place data may receive
 *                          payload bytes straight into it
 *
 * Locking: the caller serialises every call on one link and its zones;
 * dests are read-only after dest_open and may be used by several links of
 * their kind at once.  close() may block (lingering for acknowledgements),
 * so callers make it without holding locks other threads need.
 */
#ifndef USB4_LINK_H
#define USB4_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "usb4.h"
#include "usb4_list.h"

struct usb4_wire_addr;
struct usb4_link;
struct usb4_link_dest;

/* ---- capabilities ------------------------------------------------------- */

/* The receiver of a frame can copy bytes straight out of the sender's
 * memory (bulk_read): a rendezvous needs no data frames. */
#define USB4_LINK_CAP_BULK_READ		(1u << 0)
/* An initiator can reach a target's registered memory without the target's
 * CPU: the target's registration table is readable (peer_table) and bytes
 * move by bulk_read/bulk_write; remote accesses are counted at the target
 * (count_remote). */
#define USB4_LINK_CAP_ONE_SIDED		(1u << 1)
/* frame_max towards a dest stays what it was while the dest is open (the
 * core may remember it; post still refuses a frame beyond it). */
#define USB4_LINK_CAP_FRAME_FIXED	(1u << 2)

/* ---- what the core gives a link --------------------------------------- */

/*
 * Where a link hands up what arrives.  frame() gets one frame in one piece,
 * or in two when its payload was received straight into a landing zone
 * (then the first piece is the zone's hdr_len bytes, the second the
 * payload, in place).  It returns 0 when it took the frame, or -FI_EAGAIN
 * when it cannot take it now (out of memory: receiver not ready); the link
 * then keeps the frame, stops handing up frames from that peer, and offers
 * it again on a later poll.  `from` is the sender's endpoint id as the link
 * established it.
 */
struct usb4_link_sink {
	void *ctx;
	int (*frame)(void *ctx, struct usb4_link *link, uint64_t from,
		     const struct iovec *frame, int count);
	/* A peer stopped answering (-FI_EHOSTUNREACH), refused us, e.g. a
	 * protocol version mismatch (-FI_ECONNREFUSED), or closed its
	 * endpoint (-FI_ECONNRESET: it said so).  Once it returns the
	 * core holds no dest that dest_of gave for that peer: the link may
	 * free it (and the session behind it) right after the call. */
	void (*peer_down)(void *ctx, struct usb4_link *link, uint64_t peer,
			  int err);
	/* Peer id, which we have no session with, asks for one as dest
	 * (optional):
	 * false when the application inserted that peer's id reached some
	 * other way (another address): the link then does not answer it, so
	 * a host that only claims an inserted peer's id cannot take its
	 * place. */
	bool (*may_open)(void *ctx, struct usb4_link *link, uint64_t peer,
			 const struct usb4_link_dest *dest);
	/* The endpoint's whole address, as fi_getname gives it (optional):
	 * what a link answers a peer that asks who is bound there (the udp
	 * link's RESOLVE). */
	void (*self_addr)(void *ctx, struct usb4_wire_addr *addr);
};

struct usb4_link_cfg {
	uint64_t ep_id;		/* our endpoint id: the incarnation peers see */
	int reg_fd;		/* the domain's registration table memfd for
				 * links that publish it to peers; -1: none */
	struct usb4_link_sink sink;
	const void *auth_key;	/* the job key's material, or NULL: links to
				 * other hosts authenticate every datagram
				 * with it */
	size_t auth_key_len;
	/* Where the application asked the endpoint to be (FI_SOURCE, node
	 * and service): an unresolved address whose udp part links to other
	 * hosts bind to (any IP: the interface's, else loopback; port 0: any).
	 * It makes such a link open even without an interface to other
	 * hosts, on the IP it names (loopback included).  NULL: the link
	 * chooses. */
	const struct usb4_wire_addr *bind;
};

/* One question to whoever is bound at an unresolved address (the udp
 * link's RESOLVE), asked without any endpoint. */
struct usb4_link_resolver;

/* ---- landing zones (receive placement) -------------------------------- */

/*
 * A stream of frames from one peer whose payloads go to consecutive bytes
 * of iov: frame k of the stream carries bytes [next, next + len) when it
 * arrives, after hdr_len bytes of frame header.  Owned by the core, which
 * advances `next` as payloads land; `link_node` is the link's.  A link may
 * receive bytes of a datagram it guesses belongs to the stream straight
 * into [next, end) and must cope with a wrong guess; the core writes
 * payloads only through zone_write, so the link can keep its guesses out of
 * the way.
 */
struct usb4_link_zone {
	const struct iovec *iov;
	size_t iov_count;
	uint64_t next, end;
	size_t hdr_len;
	uint64_t peer;			/* whose frames */
	struct usb4_list link_node;	/* the link's */
};

/* ---- the operations ----------------------------------------------------- */

struct usb4_link_ops {
	const char *name;		/* for logs only */
	uint32_t caps;			/* USB4_LINK_CAP_* */
	bool other_hosts;		/* reaches endpoints on other hosts */

	/* -- a kind of link, before any endpoint -- */
	/* Whether this kind can open a link here (an interface exists). */
	bool (*available)(void);
	/* Whether this kind reaches the endpoint at addr from this host. */
	bool (*reaches)(const struct usb4_wire_addr *addr, uint64_t host_id);
	/* Opens the way to addr; -FI_ECONNREFUSED for a peer speaking another
	 * protocol version (logged with both versions). */
	int (*dest_open)(const struct usb4_wire_addr *addr,
			 struct usb4_link_dest **dest);
	void (*dest_close)(struct usb4_link_dest *dest);

	/* -- resolving an unresolved address (optional) -- */
	/* Starts asking the endpoint bound at addr's udp part for its whole
	 * address; with key material (as in usb4_link_cfg) only an answer
	 * tagged under that job key counts. */
	int (*resolve_start)(const struct usb4_wire_addr *addr,
			     const void *auth_key, size_t auth_key_len,
			     struct usb4_link_resolver **r);
	/* Takes answers and asks again when due (backing off): 0 with *out
	 * set once answered, -FI_EAGAIN while waiting, -FI_EHOSTUNREACH once
	 * the peer timeout passed without an answer. */
	int (*resolve_poll)(struct usb4_link_resolver *r,
			    struct usb4_wire_addr *out);
	/* Readable when an answer may have come. */
	int (*resolve_fd)(const struct usb4_link_resolver *r);
	void (*resolve_close)(struct usb4_link_resolver *r);

	/* -- one link per endpoint -- */
	/* -FI_ENODEV: nothing to open here (no interface): not an error. */
	int (*open)(const struct usb4_link_cfg *cfg, struct usb4_link **link);
	/* Delivers nothing more; lingers (bounded) until peers acknowledged
	 * what was posted; frees everything. */
	void (*close)(struct usb4_link *link);
	/* Writes this link's part of our address. */
	void (*addr)(const struct usb4_link *link, struct usb4_wire_addr *addr);
	/* Largest frame (header and payload) towards dest. */
	size_t (*frame_max)(const struct usb4_link *link,
			    const struct usb4_link_dest *dest);

	/* Posts one frame gathered from iov (copied before the call returns).
	 * -FI_EAGAIN: no room now (backpressure); -FI_EMSGSIZE: too large;
	 * -FI_EHOSTUNREACH / -FI_ECONNREFUSED: the peer is down. */
	int (*post)(struct usb4_link *link, struct usb4_link_dest *dest,
		    const struct iovec *iov, int count);
	/* Optional.  Like post, but the last nref buffers are sent from where
	 * they are: they must stay unchanged until the peer has them or
	 * release(owner) is called. */
	int (*post_ref)(struct usb4_link *link, struct usb4_link_dest *dest,
			const struct iovec *iov, int count, int nref,
			uint64_t owner);
	/* Optional.  Stops referencing owner's buffers (copying what may still
	 * have to be sent again). */
	void (*release)(struct usb4_link *link, struct usb4_link_dest *dest,
			uint64_t owner);
	/* Optional.  A mark after everything posted to dest so far, and
	 * whether the peer has all of that (without these: always). */
	uint32_t (*mark)(struct usb4_link *link, struct usb4_link_dest *dest);
	bool (*settled)(struct usb4_link *link, struct usb4_link_dest *dest,
			uint32_t mark);

	/* Takes in at most budget frames or datagrams and hands their frames
	 * up (sink->frame); a datagram that fills a gap also hands up the
	 * frames held back behind it, up to the reliability window.  Runs the
	 * link's timers; returns how many it took in. */
	int (*poll)(struct usb4_link *link, int budget);
	/* 0 while dest answers; else why it does not (-FI_EHOSTUNREACH,
	 * -FI_ECONNREFUSED). */
	int (*peer_state)(struct usb4_link *link, struct usb4_link_dest *dest);
	/* The way back to a peer the link heard from but the core has no
	 * address for; owned by the link.  Valid until the link closes, or
	 * until the link reports the peer down through sink->peer_down: the
	 * core lets go of it before peer_down returns, so the link may free
	 * it then (a link that frees a dest must report its peer down
	 * first).  Called again for that peer later, it may give a new one. */
	struct usb4_link_dest *(*dest_of)(struct usb4_link *link, uint64_t peer);
	/* The optional wire features (USB4_WIRE_FEATURE_*) both sides of the
	 * way to dest offered; 0 while unknown (optional). */
	uint32_t (*dest_features)(struct usb4_link *link,
				  const struct usb4_link_dest *dest);
	/* Whether two dests of this kind lead to the same peer the same way
	 * (optional: without it any two of one id are). */
	bool (*dest_eq)(const struct usb4_link_dest *a,
			const struct usb4_link_dest *b);

	/* -- sleeping -- */
	/* An fd that becomes readable when poll may find something. */
	int (*wait_fd)(const struct usb4_link *link);
	/* Microseconds until the link's next timer (-1: none). */
	int64_t (*timer_us)(const struct usb4_link *link);
	/* Before sleeping on wait_fd: false when the link knows something
	 * already waits (do not sleep); a level-triggered wait_fd may just
	 * answer true.  sleep_end undoes a true sleep_begin. */
	bool (*sleep_begin)(struct usb4_link *link);
	void (*sleep_end)(struct usb4_link *link);

	/* -- bulk and one-sided access (USB4_LINK_CAP_BULK_READ, _ONE_SIDED) -- */
	/* Copies len bytes between the peer's memory at remote and ours. */
	int (*bulk_read)(struct usb4_link_dest *dest, const struct iovec *local,
			 size_t local_count, const struct iovec *remote,
			 size_t remote_count, size_t len);
	int (*bulk_write)(struct usb4_link_dest *dest, const struct iovec *local,
			  size_t local_count, const struct iovec *remote,
			  size_t remote_count, size_t len);
	/* The peer's registration table as mapped here (NULL: none); the core
	 * interprets it. */
	void *(*peer_table)(struct usb4_link_dest *dest, size_t *len);
	/* Counts a remote access at the peer (for its FI_RMA_EVENT counters),
	 * and reads the counts peers made at ours. */
	void (*count_remote)(struct usb4_link_dest *dest, bool write);
	void (*remote_counts)(const struct usb4_link *link, uint64_t *writes,
			      uint64_t *reads);

	/* -- landing zones (optional: without them the core copies) -- */
	void (*zone_open)(struct usb4_link *link, struct usb4_link_zone *zone);
	void (*zone_close)(struct usb4_link *link, struct usb4_link_zone *zone);
	/* Puts len payload bytes at offset off of the zone (nothing to do when
	 * they were received there already). */
	void (*zone_write)(struct usb4_link *link, struct usb4_link_zone *zone,
			   uint64_t off, const void *src, size_t len);
};

/* A link starts with this; each kind embeds it first. */
struct usb4_link {
	const struct usb4_link_ops *ops;
	struct usb4_link_sink sink;
	/* Every peer this link hands frames from has proved who it is:
	 * same-host same-user processes (shm), or a udp link running with a
	 * job key.  The core serves remote access to registered memory
	 * (RMA, atomics) to peers the application never inserted only over
	 * such a link.  Set by open. */
	bool authenticated;
};

/* The kinds this build has, in order of preference: a peer is reached by
 * the first kind that reaches it (usb4_links.c). */
extern const struct usb4_link_ops *const usb4_link_kinds[];
extern const size_t usb4_link_kind_count;

#endif /* USB4_LINK_H */
