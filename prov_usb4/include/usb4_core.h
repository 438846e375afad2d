/*
 * Messaging core: peers, tag matching, eager and rendezvous protocols, RMA
 * and atomics, memory registrations and completions.  Knows frames and
 * peers, not sockets or rings: it reaches the cable only through the link
 * interface (usb4_link.h) and picks protocols by a link's capabilities.
 * Callers (the api layer) hold the domain lock around every call unless a
 * function says otherwise.
 *
 * Error codes: functions return 0 or a negative FI_E* code; completion
 * entries carry the positive code, converted once, where they are written.
 */
#ifndef USB4_CORE_H
#define USB4_CORE_H

#include <poll.h>
#include <stdatomic.h>
#include <sys/uio.h>

#include <rdma/fi_atomic.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_rma.h>

#include "usb4.h"
#include "usb4_link.h"
#include "usb4_list.h"
#include "../src/wire.h"

/* Links an endpoint can have: one per kind. */
#define USB4_LINKS_MAX		4

/* ---- completions ------------------------------------------------------ */

struct usb4_cqe {
	void *op_context;
	uint64_t flags;
	size_t len;
	void *buf;
	uint64_t data;
	uint64_t tag;
	fi_addr_t src;
};

struct usb4_cqe_err {
	struct fi_cq_err_entry err;
	fi_addr_t src;
};

/*
 * Completion storage of one CQ: a ring for successes and one for errors.
 * An operation reserves its entry when it is posted (usb4_cq_queue_reserve,
 * which grows the rings or fails with -FI_EAGAIN), so writing it later never
 * needs memory and no completion is ever lost.  Every reservation ends in
 * exactly one push, push_err or unreserve.
 */
struct usb4_cq_queue {
	struct usb4_cqe *ring;
	size_t cap, head, count;
	struct usb4_cqe_err *errs;
	size_t err_cap, err_head, err_count;
	size_t reserved;
	struct usb4_waiter *waiter;	/* the CQ's: signalled on push */
};

int usb4_cq_queue_init(struct usb4_cq_queue *q, size_t cap,
		       struct usb4_waiter *waiter);
void usb4_cq_queue_fini(struct usb4_cq_queue *q);
int usb4_cq_queue_reserve_grow(struct usb4_cq_queue *q);

/* Reserves an entry (q NULL: no CQ, nothing to do); 0 or -FI_EAGAIN.
 * Inline: every post reserves, and both rings have room for every
 * reservation and one more in the common case. */
static inline int usb4_cq_queue_reserve(struct usb4_cq_queue *q)
{
	if (!q)
		return 0;
	if (q->count + q->reserved < q->cap &&
	    q->err_count + q->reserved < q->err_cap) {
		q->reserved++;
		return 0;
	}
	return usb4_cq_queue_reserve_grow(q);
}
void usb4_cq_queue_unreserve(struct usb4_cq_queue *q);
void usb4_cq_queue_push(struct usb4_cq_queue *q, const struct usb4_cqe *e);
void usb4_cq_queue_push_err(struct usb4_cq_queue *q,
			    const struct usb4_cqe_err *e);
/* A push in two steps, the entry written in place: slot is where the next
 * entry goes (its reservation guarantees the room), commit hands it out.
 * Inline: an arrival's entry is written so, once per message. */
static inline struct usb4_cqe *usb4_cq_queue_slot(struct usb4_cq_queue *q)
{
	size_t i = q->head + q->count;

	return &q->ring[i >= q->cap ? i - q->cap : i];
}

static inline void usb4_cq_queue_commit(struct usb4_cq_queue *q)
{
	q->count++;
	if (q->reserved)
		q->reserved--;
	usb4_waiter_signal(q->waiter);
}
const struct usb4_cqe *usb4_cq_queue_peek(const struct usb4_cq_queue *q);
/* Moves up to max entries into buf, each as its first size bytes (the
 * size of an fi_cq format), and their sources into src unless NULL;
 * returns how many. */
size_t usb4_cq_queue_take(struct usb4_cq_queue *q, void *buf, size_t size,
			  fi_addr_t *src, size_t max);
const struct usb4_cqe_err *usb4_cq_queue_peek_err(const struct usb4_cq_queue *q);
void usb4_cq_queue_pop_err(struct usb4_cq_queue *q);

/* Completion counter (fi_cntr). */
struct usb4_counter {
	_Atomic uint64_t value;
	_Atomic uint64_t err;
	struct usb4_waiter *waiter;	/* the counter's: signalled on change */
};

/* ---- memory registrations ---------------------------------------------- */

/*
 * A domain's regions with remote access, in a table that links with
 * USB4_LINK_CAP_ONE_SIDED publish to peers (usb4_mr_table.c).  Every remote
 * access, by a peer through a link or by a frame arriving here, checks key,
 * rights and bounds in the target's table and pins the entry while bytes
 * move; revoking an entry waits until nobody holds it.
 */
struct usb4_mr_table;

/* A pinned region: hold it while its bytes move. */
struct usb4_pin {
	struct usb4_mr_table *table;
	uint32_t slot;
	uint8_t holder;		/* which of the entry's pinner slots is ours */
	uint64_t va;		/* target virtual address of the accessed bytes */
};

int usb4_mr_table_open(struct usb4_mr_table **table, size_t capacity);
void usb4_mr_table_close(struct usb4_mr_table *table);
int usb4_mr_table_fd(const struct usb4_mr_table *table);
/* Publishes [base, base + len), addressed by initiators as iova + offset.
 * -FI_EINVAL for no bytes or a range (base's or iova's) that wraps,
 * -FI_ENOKEY when the key is already published, -FI_ENOSPC when full. */
int usb4_mr_table_publish(struct usb4_mr_table *table, uint64_t key,
			  uint64_t base, uint64_t iova, uint64_t len,
			  uint64_t access, uint32_t *slot);
/* Kills the entry: no new pin succeeds.  Then wait until the pins held by
 * other processes are gone (usb4_mr_table_drain, without the domain lock:
 * it may sleep; pins of processes that died are cleared). */
void usb4_mr_table_revoke(struct usb4_mr_table *table, uint32_t slot);
void usb4_mr_table_drain(struct usb4_mr_table *table, uint32_t slot);
/* Another domain's table as a link maps it (NULL when malformed). */
struct usb4_mr_table *usb4_mr_table_view(void *mem, size_t len);
void usb4_mr_table_view_free(struct usb4_mr_table *view);
/* Checks key, the FI_REMOTE_* rights in access and [addr, addr + len)
 * (overflow-safe) and pins the entry: 0, -FI_EACCES, or -FI_EAGAIN when
 * the entry's pinner slots are all held by other processes. */
int usb4_mr_pin(struct usb4_mr_table *table, uint64_t key, uint64_t addr,
		uint64_t len, uint64_t access, struct usb4_pin *pin);
void usb4_mr_unpin(struct usb4_pin *pin);
void usb4_mr_unpin_all(struct usb4_pin *pins, size_t count);
/* Serialises atomics on one target's memory across every process. */
void usb4_mr_atomic_lock(struct usb4_mr_table *table);
void usb4_mr_atomic_unlock(struct usb4_mr_table *table);

/* What the core keeps per domain. */
/* A job key as the application (auth_key) or the environment
 * (FI_USB4_AUTH_KEY, FI_USB4_AUTH_KEY_FILE) gave it; len 0: none. */
#define USB4_CORE_KEY_MAX	1024
struct usb4_core_key {
	size_t len;
	unsigned char bytes[USB4_CORE_KEY_MAX];
};

struct usb4_core_domain {
	struct usb4_mr_table *mrs;
	struct usb4_core_key key;	/* endpoints' unless their own */
	/* Every key is one we drew at random (FI_MR_PROV_KEY): holding one
	 * is the right to use its region, as libfabric means keys. */
	bool keys_drawn;
};

/* A region as published for remote access. */
struct usb4_core_mr {
	uint32_t slot;
	bool published;
};

int usb4_core_domain_open(struct usb4_core_domain *dom, size_t mr_max);
void usb4_core_domain_close(struct usb4_core_domain *dom);
int usb4_core_mr_publish(struct usb4_core_domain *dom, uint64_t key,
			 const void *base, uint64_t len, uint64_t iova,
			 uint64_t access, struct usb4_core_mr *mr);

/* ---- peers and the address table --------------------------------------- */

/* ---- a map from endpoint id to a value (usb4_id_map.c) ----------------- */

/* Open addressing with linear probing, id 0 = empty slot; kept at most half
 * full, so finding, adding and removing are O(1). */
struct usb4_id_map {
	uint64_t *keys;
	uint64_t *vals;
	size_t cap;		/* power of two */
	size_t count;
};

/* Room for at least n ids without growing. */
int usb4_id_map_init(struct usb4_id_map *m, size_t n);
void usb4_id_map_fini(struct usb4_id_map *m);
/* id's value, NULL when id is not there. */
uint64_t *usb4_id_map_find(const struct usb4_id_map *m, uint64_t id);
/* Sets id's value (adding id, growing when needed): 0 or -FI_ENOMEM. */
int usb4_id_map_put(struct usb4_id_map *m, uint64_t id, uint64_t val);
void usb4_id_map_remove(struct usb4_id_map *m, uint64_t id);

/* A peer: the address it was inserted with, its id, and the way to it over
 * the first link kind that reaches it. */
struct usb4_peer {
	struct usb4_wire_addr addr;	/* as it came (little-endian) */
	uint64_t id;			/* its endpoint id, host order */
	uint8_t kind;			/* index into usb4_link_kinds */
	bool in_use;
	uint32_t gen;			/* hidden entries: bumped when freed */
	uint32_t next_free;		/* hidden entries: free list link */
	struct usb4_link_dest *dest;
	struct usb4_mr_table *table;	/* one-sided kinds: its registrations */
	/* hidden entries: when its first remote access began to wait for the
	 * application to insert it (0: none waiting) */
	uint64_t access_wait_ns;
	/* Why the endpoint it names is gone, once a link said so (0: it may
	 * be alive): an endpoint id is one incarnation, so that is final and
	 * every later operation naming it fails at once with this code. */
	int down;
};

/* Peers and a map from endpoint id to index, as the AV and an endpoint's
 * hidden entries keep them. */
struct usb4_peer_table {
	struct usb4_peer *peers;
	size_t count, cap;
	/* Changes whenever an entry comes or goes or the entries move:
	 * whoever remembers an entry checks it first. */
	uint64_t gen;
	struct usb4_id_map index;
	/* Hidden entries: unused ones to reuse, a list through next_free of
	 * index + 1 (0: none, so a zeroed table is empty). */
	uint32_t free_head;
};

/* The table behind an fi_av: fi_addr_t is an index into its peers; the
 * hash answers "which entry is this sender". */
struct usb4_core_av {
	struct usb4_peer_table t;
	uint64_t host_id;
};

/*
 * Unresolved addresses (USB4_ADDR_F_UNRESOLVED: a node and service) become
 * whole ones by asking whoever is bound there (usb4_resolve.c), all of
 * them at once.  Entries of addrs that are unresolved and whose errs[i] is
 * 0 are resolved in place, or get errs[i] = -FI_EHOSTUNREACH (nobody
 * answered within the peer timeout) or another -FI_E* code.  key: the job
 * key answers must be tagged with (NULL or len 0: none).  progress(arg),
 * when given, runs between waits, so that endpoints of this process can
 * answer too.  Blocks until every entry is settled (up to the peer
 * timeout), touching nothing of any domain: call it without the domain
 * lock, and let progress take the lock for each pass it makes.
 */
void usb4_core_resolve(struct usb4_wire_addr *addrs, int *errs, size_t count,
		       const struct usb4_core_key *key,
		       void (*progress)(void *arg), void *arg);

int usb4_core_av_init(struct usb4_core_av *av, size_t count_hint);
void usb4_core_av_fini(struct usb4_core_av *av);
int usb4_core_av_insert(struct usb4_core_av *av,
			const struct usb4_wire_addr *addr, fi_addr_t *fi_addr);
int usb4_core_av_remove(struct usb4_core_av *av, fi_addr_t fi_addr);
struct usb4_peer *usb4_core_av_peer(struct usb4_core_av *av, fi_addr_t fi_addr);
fi_addr_t usb4_core_av_reverse(const struct usb4_core_av *av, uint64_t ep_id);

/*
 * Peers on other hosts may talk to an endpoint before the application
 * inserts them (Open MPI adds remote processes lazily, on its first send to
 * them).  Such a peer gets a hidden entry in that endpoint, made from the
 * link it came on, so that the core can answer it.  Hidden fi_addrs carry
 * USB4_HIDDEN_BIT and are never shown to the application (completions say
 * FI_ADDR_NOTAVAIL, or the inserted entry once there is one).
 */
#define USB4_HIDDEN_BIT		(1ull << 62)
/*
 * A hidden entry is freed when its peer goes down and its index reused by
 * the next unknown sender.  Its fi_addr carries the entry's generation
 * next to the index, so whatever still names the old one (an unexpected
 * message, a queued answer) names nobody: the new peer never gets it.
 */
#define USB4_HIDDEN_INDEX_BITS	32
#define USB4_HIDDEN_GEN_MASK	0x3fffffffu
/* Hidden entries an endpoint keeps at most: peers on other hosts that
 * talk to it before the application inserts them (Open MPI's lazy
 * connections: every remote rank of a large job fits).  A new sender past
 * it is held back (receiver not ready) until one goes down. */
#define USB4_HIDDEN_MAX		4096

/* ---- endpoint ----------------------------------------------------------- */

struct usb4_core_ep;

/*
 * A control frame the core sends while it handles something else (FIN, ACK,
 * CTS, WRITE_DATA, ATOMIC_RESP).  Storage belongs to what the answer is
 * for (a receive, a transfer, an operation) and exists from the moment that
 * was posted or accepted, so an answer is never lost for want of memory.
 * When the peer has no room the frame waits on ep->ctrl_pending, in order;
 * its owner then lives on until it leaves (on_sent).
 */
struct usb4_ctrl {
	struct usb4_list link;		/* in ep->ctrl_pending while queued */
	bool queued;
	fi_addr_t dest;
	struct usb4_wire_hdr hdr;
	size_t len;			/* payload bytes after hdr */
	const void *payload;
	void (*on_sent)(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl);
};

/* A posted receive. */
struct usb4_rx_entry {
	struct usb4_list link;
	void *context;
	uint64_t flags;		/* FI_MSG/FI_TAGGED, FI_COMPLETION, FI_MULTI_RECV */
	struct iovec iov[USB4_IOV_LIMIT];
	size_t iov_count;
	size_t len;		/* sum of iov lengths */
	size_t multi_used;	/* FI_MULTI_RECV: bytes already consumed */
	fi_addr_t src;
	uint64_t tag, ignore;
	struct usb4_ctrl ctrl;	/* its answer to the sender */
};

/* Payload bytes an unexpected message keeps in its entry, not in a
 * buffer of its own; idle entries an endpoint keeps (usb4_unexp_pool.c). */
#define USB4_UNEXP_INLINE	64
#define USB4_UNEXP_POOL_MAX	64

/* A message that arrived before a receive matched it. */
struct usb4_unexp {
	struct usb4_list link;
	fi_addr_t src;
	uint64_t tag, data, msg_id, total_len;
	uint16_t wflags;
	uint8_t type;		/* USB4_FRAME_EAGER or USB4_FRAME_RTS */
	bool claimed;		/* FI_CLAIM: reserved for one receive */
	bool early_lost;	/* RTS: early DATA of it was dropped */
	uint8_t peer_kind;	/* who sent it, should its entry go */
	uint64_t peer_id;
	size_t cost;		/* charged to the unexpected budget */
	void *buf;		/* eager: a copy of the payload */
	size_t riov_count;
	struct iovec riov[USB4_WIRE_RTS_MAX_IOV];
	struct usb4_ctrl ctrl;	/* the answer when it is discarded */
	unsigned char small[USB4_UNEXP_INLINE];	/* buf of a short payload */
};

/*
 * Bytes streamed to a peer as DATA frames over a link that cannot read the
 * sender's memory: a rendezvous send or an RMA write once the peer sent
 * CTS, or the target side of an RMA read.  The link's window paces it; the
 * receiver places every byte straight into its buffer.
 */
struct usb4_stream {
	struct usb4_list link;		/* in ep->streams while sending */
	fi_addr_t dest;
	uint64_t msg_id;		/* what DATA frames name */
	uint16_t wflags;		/* extra DATA flags (USB4_WF_READ_RESP) */
	struct iovec iov[USB4_IOV_LIMIT];
	size_t iov_count;
	uint64_t sent, limit;
	uint8_t round;			/* USB4_WIRE_ROUND_*: DATA's tag */
	bool by_ref;			/* the link may still send from iov */
	bool fin_sent;			/* read response: data all posted */
	uint32_t mark;			/* and acked once the link passes this */
	/* Target of an RMA read: the pinned regions, FIN at the end. */
	struct usb4_pin pins[USB4_IOV_LIMIT];
	size_t npins;
	bool owned;			/* malloc'd, freed when done */
	struct usb4_ctrl ctrl;		/* the read response's FIN */
};

/* A send or RMA waiting for its peer: rendezvous FIN, delivery ACK, RMA
 * FIN or an atomic response. */
struct usb4_tx_op {
	uint32_t gen;
	bool busy;
	void *context;
	uint64_t flags;		/* completion flags + FI_COMPLETION */
	size_t len;
	uint64_t tag;
	fi_addr_t dest;
	struct usb4_counter *cntr;	/* counts the completion */
	struct usb4_stream stream;	/* the bytes to send after CTS */
	bool wants_cts;			/* a CTS may start the stream: a
					 * rendezvous send or an RMA write as
					 * frames, nothing else */
	struct fi_ioc res[USB4_IOV_LIMIT];	/* frame atomics: results */
	size_t res_count, res_size;
	void *bounce;			/* inject write: a copy of the bytes */
};

/*
 * Bytes arriving as DATA frames into local memory: a rendezvous receive,
 * the target of an RMA write, or the initiator of an RMA read.  Keyed by
 * (src, msg_id, read response or not).  Its buffer is a landing zone of the
 * link the peer is on.
 */
enum usb4_xfer_kind { USB4_XFER_RECV, USB4_XFER_RMA_WRITE, USB4_XFER_RMA_READ };

struct usb4_xfer {
	struct usb4_list link;		/* in ep->xfers */
	enum usb4_xfer_kind kind;
	fi_addr_t src;
	uint64_t msg_id;
	struct iovec iov[USB4_IOV_LIMIT];
	size_t iov_count;
	struct usb4_link_zone zone;	/* iov, [received, want) */
	bool zone_open;
	bool done;			/* finished; waits for ctrl to leave */
	uint8_t round;			/* the DATA round placed (its CTS's) */
	bool early;			/* DATA may come before our CTS and
					 * run past the zone (usb4_stream_early.c) */
	/* USB4_XFER_RECV: how to complete the receive. */
	struct usb4_cqe cqe;
	uint64_t total_len;
	bool want_cqe;
	/* USB4_XFER_RMA_WRITE: pinned target regions, remote CQ data. */
	struct usb4_pin pins[USB4_IOV_LIMIT];
	size_t npins;
	bool cq_data;
	uint64_t data;
	struct usb4_ctrl ctrl;		/* CTS, then FIN */
};

enum { USB4_Q_MSG = 0, USB4_Q_TAGGED = 1 };

struct usb4_core_stats {
	uint64_t dropped[USB4_WIRE_VERDICT_MAX];
	uint64_t dropped_unknown_op;	/* FIN/ACK naming no pending send */
	uint64_t dropped_src_mismatch;	/* src_id disagrees with the link */
	uint64_t dropped_not_for_link;	/* a frame its link may not carry */
	uint64_t dropped_bad_xfer;	/* DATA/CTS naming nothing, or out of range */
	uint64_t early_dropped;		/* early rendezvous DATA no receive
					 * took (usb4_stream_early.c) */
	uint64_t unknown_src;		/* frames from peers not in the AV */
	uint64_t not_ready;		/* frames refused for lack of memory */
	uint64_t unexp_full;		/* messages held back: a sender's or
					 * all senders' unexpected bytes full */
	uint64_t hidden_full;		/* frames from new senders held back:
					 * USB4_HIDDEN_MAX reached */
	uint64_t rma_refused_unknown;	/* remote accesses refused: sender
					 * not inserted, link not
					 * authenticated */
	uint64_t rma_waited_unknown;	/* offers of a remote access held
					 * back for its sender's insert */
	uint64_t rma_by_key_unknown;	/* remote accesses served to a sender
					 * not inserted, on a drawn key */
	uint64_t rts_iovs_ignored;	/* RTS naming sender memory over a
					 * link that cannot read it */
	uint64_t hidden_freed;		/* hidden entries of peers gone */
	uint64_t eager_sent, rndv_sent, unexpected;
	uint64_t eager_fused;		/* of eager_sent: usb4_send_fused's */
	uint64_t rma_ops, atomic_ops;	/* issued and accepted */
};

/*
 * What unexpected messages may hold at one endpoint (usb4_unexp_budget.c):
 * bytes charged per sender (by endpoint id) and in total.  A message that
 * would pass a bound is refused before anything changes; its link holds
 * it and the sender is slowed down until receives drain the queue.
 */
struct usb4_unexp_budget {
	size_t peer_max, total_max;
	size_t total, peak;
	struct usb4_id_map per_peer;	/* id -> bytes charged */
};

/* Idle entries of unexpected messages, for reuse (usb4_unexp_pool.c). */
struct usb4_unexp_pool {
	struct usb4_list idle;		/* struct usb4_unexp, by link */
	size_t count;
};

void usb4_unexp_pool_init(struct usb4_unexp_pool *p);
struct usb4_unexp *usb4_unexp_get(struct usb4_unexp_pool *p);
void usb4_unexp_put(struct usb4_unexp_pool *p, struct usb4_unexp *u);
void usb4_unexp_pool_fini(struct usb4_unexp_pool *p);

/* One of the endpoint's links, with what its sink callbacks need. */
struct usb4_ep_link {
	struct usb4_core_ep *ep;
	uint8_t kind;
	struct usb4_link *link;		/* NULL: this kind is not open */
	/* Who sent the last frame taken, while the AV stays as it was: a
	 * stream from one peer looks it up once. */
	uint64_t last_id;		/* 0: none */
	fi_addr_t last_src;
	uint64_t last_av_gen;
	uint64_t last_hidden_gen;
	/* The link's counts of peers' accesses to our memory, as far as
	 * they are in the FI_REMOTE_* counters. */
	uint64_t remote_reads_seen, remote_writes_seen;
	/* Frames of this link the endpoint handled: logged at close, the
	 * proof any consumer's test can read that usb4 carried its traffic. */
	uint64_t frames_taken;
};

/* A peer and the endpoint's link that reaches it; for a send also the
 * largest eager payload towards it. */
struct usb4_route {
	struct usb4_peer *peer;
	struct usb4_link *link;
	size_t eager_max;
};

/* The route of the last send, while neither peer table changed since. */
struct usb4_route_memo {
	fi_addr_t dest;
	uint64_t av_gen, hidden_gen;
	struct usb4_route route;	/* route.peer NULL: none */
};

struct usb4_core_ep {
	uint64_t id;
	uint64_t caps;
	struct usb4_core_domain *dom;
	struct usb4_ep_link links[USB4_LINKS_MAX];
	/* The open links, in kind order: what a progress call polls, set
	 * once at open rather than looked for on every call. */
	struct usb4_link *polled[USB4_LINKS_MAX];
	uint8_t npolled;
	/* The domain's same-host atomics board (NULL: none), looked up once
	 * at open: progress looks at its state on every call. */
	struct usb4_mrt_board *board;
	struct usb4_core_av *av;
	struct usb4_peer_table hidden;	/* peers not in the AV (dests: the links') */
	struct usb4_unexp_budget unexp_budget;
	struct usb4_unexp_pool unexp_pool;
	struct usb4_route_memo tx_route;
	struct usb4_cq_queue *tx_cq, *rx_cq;
	struct usb4_counter *tx_cntr, *rx_cntr;
	struct usb4_counter *rd_cntr, *wr_cntr;		/* our reads, writes */
	struct usb4_counter *rem_rd_cntr, *rem_wr_cntr;	/* peers' accesses */
	struct usb4_list posted[2];	/* indexed by USB4_Q_* */
	struct usb4_list unexp[2];
	struct usb4_list rx_free;	/* recycled usb4_rx_entry */
	size_t rx_posted, rx_max;
	struct usb4_tx_op *ops;
	uint32_t *ops_free;
	size_t ops_free_count, ops_cap;
	struct usb4_list ctrl_pending;	/* struct usb4_ctrl, in order */
	struct usb4_list streams;	/* usb4_stream with bytes to send */
	struct usb4_list xfers;		/* usb4_xfer receiving bytes */
	struct usb4_xfer *hot_xfer;	/* took the last DATA frame */
	size_t min_multi_recv;
	size_t eager_max;		/* inject limit: the smallest eager
					 * limit of any open link */
	uint64_t liveness_ns;		/* last check that pending peers live */
	unsigned sleepers;		/* threads asleep on its links */
	/* Calls of usb4_core_progress so far: whoever watches it sees
	 * whether somebody progressed the endpoint meanwhile. */
	uint64_t progress_calls;
	struct usb4_core_stats stats;
};

/* What a send asks for; flags carry FI_MSG or FI_TAGGED, FI_COMPLETION,
 * FI_REMOTE_CQ_DATA, FI_INJECT and the completion level. */
struct usb4_send_args {
	const struct iovec *iov;
	size_t iov_count;
	fi_addr_t dest;
	uint64_t tag;
	uint64_t data;
	void *context;
	uint64_t flags;
};

/* What a receive asks for; flags carry FI_MSG or FI_TAGGED, FI_COMPLETION,
 * FI_MULTI_RECV, FI_PEEK, FI_CLAIM and FI_DISCARD. */
struct usb4_recv_args {
	const struct iovec *iov;
	size_t iov_count;
	fi_addr_t src;
	uint64_t tag;
	uint64_t ignore;
	void *context;
	uint64_t flags;
};

/* One RMA transfer; flags carry FI_READ or FI_WRITE, FI_REMOTE_CQ_DATA,
 * FI_COMPLETION and FI_INJECT. */
struct usb4_rma_args {
	const struct iovec *iov;
	size_t iov_count;
	const struct fi_rma_iov *rma_iov;
	size_t rma_count;
	fi_addr_t dest;
	uint64_t data;
	void *context;
	uint64_t flags;
};

/* One atomic operation; src may be NULL for FI_ATOMIC_READ, cmp only for
 * compare atomics, res for fetch and compare atomics. */
struct usb4_atomic_args {
	int kind;		/* enum usb4_atomic_kind */
	enum fi_datatype dt;
	enum fi_op op;
	const struct fi_ioc *src;
	size_t src_count;
	const struct fi_ioc *cmp;
	size_t cmp_count;
	const struct fi_ioc *res;
	size_t res_count;
	const struct fi_rma_ioc *rma;
	size_t rma_count;
	fi_addr_t dest;
	void *context;
	uint64_t flags;
};

/* Whether some link reaches other hosts from here (an interface exists). */
bool usb4_core_reaches_other_hosts(void);

int usb4_core_ep_open(struct usb4_core_ep *ep, uint64_t caps,
		      struct usb4_core_domain *dom);
/* The same with the endpoint's own job key (NULL: the domain's). */
int usb4_core_ep_open_keyed(struct usb4_core_ep *ep, uint64_t caps,
			    struct usb4_core_domain *dom,
			    const struct usb4_core_key *key);
/* The same bound where the application asked (an unresolved address:
 * FI_SOURCE with node and service; NULL: anywhere).  -FI_EADDRINUSE,
 * -FI_EADDRNOTAVAIL when it cannot be there. */
int usb4_core_ep_open_at(struct usb4_core_ep *ep, uint64_t caps,
			 struct usb4_core_domain *dom,
			 const struct usb4_core_key *key,
			 const struct usb4_wire_addr *bind);
/*
 * Closing takes three steps: flush (sends answers still waiting for room;
 * bounded; the caller holds the lock but it is released while sleeping),
 * close (the core's state, under the lock), then close_links (without the
 * lock: links linger until peers acknowledged what was posted).
 */
void usb4_core_ep_flush(struct usb4_core_ep *ep, struct usb4_lock *lock);
void usb4_core_ep_close(struct usb4_core_ep *ep);
void usb4_core_ep_close_links(struct usb4_core_ep *ep);
void usb4_core_ep_addr(const struct usb4_core_ep *ep,
		       struct usb4_wire_addr *addr);
ssize_t usb4_core_send(struct usb4_core_ep *ep, const struct usb4_send_args *a);
ssize_t usb4_core_recv(struct usb4_core_ep *ep, const struct usb4_recv_args *a);
ssize_t usb4_core_rma(struct usb4_core_ep *ep, const struct usb4_rma_args *a);
ssize_t usb4_core_atomic(struct usb4_core_ep *ep,
			 const struct usb4_atomic_args *a);
int usb4_core_cancel(struct usb4_core_ep *ep, void *context);
/* A region is going: operations of this endpoint that move its bytes
 * (frames to or from other hosts) end now with FI_ECANCELED at both ends,
 * and the endpoint lets go of every pin on it. */
void usb4_core_ep_forget_region(struct usb4_core_ep *ep, uint32_t slot);

int usb4_core_progress(struct usb4_core_ep *ep);
/* Whether one of the endpoint's links reaches other hosts: their peers
 * time it out when nothing answers for it. */
bool usb4_core_ep_other_hosts(const struct usb4_core_ep *ep);
/*
 * Sleeping until a link has news: sleep_begin returns false when a frame is
 * already waiting; otherwise it adds the fds to watch (at most max) and
 * lowers *timeout_ms to the links' next timer.  sleep_end after the sleep.
 * ep->sleepers counts the threads between the two: the endpoint's links
 * must outlive them.  wait_sleepers returns once none is left (the caller
 * holds the lock and has woken them; it is released while waiting).
 */
bool usb4_core_sleep_begin(struct usb4_core_ep *ep, struct pollfd *fds,
			   int max, int *nfds, int *timeout_ms);
void usb4_core_sleep_end(struct usb4_core_ep *ep);
/* The application's thread sleeps in the kernel on the endpoint (true) or
 * is back (false): same-host initiators then leave small one-sided
 * operations to the link's copy rather than wait for our progress.  Not
 * for the progress thread, which sleeps while the application may still
 * progress the endpoint. */
void usb4_core_app_sleeps(struct usb4_core_ep *ep, bool asleep);
void usb4_core_wait_sleepers(struct usb4_core_ep *ep, struct usb4_lock *lock);
/* Fds an endpoint watches at most while it sleeps. */
int usb4_core_wait_fds(const struct usb4_core_ep *ep);
void usb4_core_log_stats(const struct usb4_core_ep *ep);

/* Completion helpers shared by the core's protocol files: err is 0 or a
 * negative FI_E* code; each consumes one reservation of its CQ. */
void usb4_core_report(struct usb4_cq_queue *cq, struct usb4_counter *cntr,
		      const struct usb4_cqe *e, bool want_cqe);
void usb4_core_report_err(struct usb4_cq_queue *cq, struct usb4_counter *cntr,
			  const struct usb4_cqe *e, int err, size_t olen);
void usb4_core_complete(struct usb4_core_ep *ep, bool tx,
			const struct usb4_cqe *e, bool want_cqe);
void usb4_core_complete_err(struct usb4_core_ep *ep, bool tx,
			    const struct usb4_cqe *e, int err, size_t olen);

#endif /* USB4_CORE_H */
