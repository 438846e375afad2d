/*
 * Messaging core: peers, tag matching, eager and rendezvous protocols and
 * completions.  Knows frames and peers, not sockets or rings: it talks to the
 * cable only through usb4_link.h.  Callers (the api layer) hold the domain
 * lock around every call.
 */
#ifndef USB4_CORE_H
#define USB4_CORE_H

#include <stdatomic.h>
#include <sys/uio.h>

#include <rdma/fi_atomic.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_rma.h>

#include "usb4.h"
#include "usb4_link.h"
#include "usb4_list.h"
#include "../src/wire.h"

#define USB4_ADDR_MAGIC		0x34425355u	/* "USB4" */
#define USB4_ADDR_VERSION	2

/*
 * An endpoint address as fi_getname returns it: 56 bytes, the most
 * aws-ofi-nccl accepts.  Same-host peers use the shm fields, others the udp
 * ones.  ep_id is random per endpoint: it names the shm inbox (its nonce) and
 * is the endpoint's incarnation for rel.
 */
struct usb4_addr {
	uint32_t magic;
	uint8_t version;
	uint8_t udp_family;	/* 4 or 6; 0: no udp link */
	uint16_t udp_port;
	uint64_t host_id;	/* same value on every endpoint of one host */
	uint64_t ep_id;
	uint32_t shm_pid;
	int32_t shm_fd;		/* inbox memfd in shm_pid */
	int32_t reg_fd;		/* registration table memfd, -1: none */
	uint32_t reserved;
	uint8_t udp_ip[16];
};
_Static_assert(sizeof(struct usb4_addr) == 56, "address is 56 bytes");

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

/* Completion storage of one CQ; grows instead of ever dropping an entry. */
struct usb4_cq_queue {
	struct usb4_cqe *ring;
	size_t cap, head, count;
	struct usb4_cqe_err *errs;
	size_t err_cap, err_head, err_count;
	struct usb4_shm_link *waker;	/* a link to kick on push, or NULL */
};

int usb4_cq_queue_init(struct usb4_cq_queue *q, size_t cap);
void usb4_cq_queue_fini(struct usb4_cq_queue *q);
int usb4_cq_queue_push(struct usb4_cq_queue *q, const struct usb4_cqe *e);
int usb4_cq_queue_push_err(struct usb4_cq_queue *q,
			   const struct usb4_cqe_err *e);
const struct usb4_cqe *usb4_cq_queue_peek(const struct usb4_cq_queue *q);
void usb4_cq_queue_pop(struct usb4_cq_queue *q);
const struct usb4_cqe_err *usb4_cq_queue_peek_err(const struct usb4_cq_queue *q);
void usb4_cq_queue_pop_err(struct usb4_cq_queue *q);

/* Completion counter (fi_cntr); api wakes waiters by polling. */
struct usb4_counter {
	_Atomic uint64_t value;
	_Atomic uint64_t err;
};

/* ---- peers and the address table --------------------------------------- */

enum usb4_peer_kind {
	USB4_PEER_SHM,		/* same host: inbox ring and cross memory attach */
	USB4_PEER_UDP,		/* another host: datagrams under rel */
};

struct usb4_peer {
	struct usb4_addr addr;
	enum usb4_peer_kind kind;
	struct usb4_shm_peer *shm;
	struct usb4_shm_reg_peer *reg;	/* its registrations, for RMA */
	struct usb4_udp_addr udp;
	bool in_use;
};

/*
 * The table behind an fi_av: fi_addr_t is an index into peers.  Peers on
 * other hosts may talk to us before the application inserts them (Open MPI
 * adds remote processes lazily, on its first send to them); such a peer gets
 * a hidden entry, made from the datagram's source, so that rel can answer it.
 * Hidden fi_addrs carry USB4_HIDDEN_BIT, are never shown to the application
 * (completions say FI_ADDR_NOTAVAIL), and give way in the reverse lookup to
 * the real entry once the application inserts the peer.
 */
#define USB4_HIDDEN_BIT		(1ull << 62)

struct usb4_core_av {
	struct usb4_peer *peers;
	size_t count, cap;
	struct usb4_peer *hidden;
	size_t hidden_count, hidden_cap;
	uint64_t *hash_keys;	/* ep_id, 0 = empty */
	fi_addr_t *hash_vals;	/* fi_addr of the peer */
	size_t hash_cap;	/* power of two */
	uint64_t host_id;
};

int usb4_core_av_init(struct usb4_core_av *av, size_t count_hint);
void usb4_core_av_fini(struct usb4_core_av *av);
int usb4_core_av_insert(struct usb4_core_av *av, const struct usb4_addr *addr,
			fi_addr_t *fi_addr);
int usb4_core_av_remove(struct usb4_core_av *av, fi_addr_t fi_addr);
struct usb4_peer *usb4_core_av_peer(struct usb4_core_av *av, fi_addr_t fi_addr);
fi_addr_t usb4_core_av_reverse(const struct usb4_core_av *av, uint64_t ep_id);
/* A hidden entry for a udp peer we heard from before it was inserted. */
int usb4_core_av_insert_hidden(struct usb4_core_av *av, uint64_t ep_id,
			       const struct usb4_udp_addr *udp,
			       fi_addr_t *fi_addr);
/* What the application may see of an fi_addr: hidden ones are not its. */
static inline fi_addr_t usb4_core_av_visible(fi_addr_t fi_addr)
{
	return fi_addr != FI_ADDR_NOTAVAIL && (fi_addr & USB4_HIDDEN_BIT) ?
	       FI_ADDR_NOTAVAIL : fi_addr;
}
/* The endpoint id behind an fi_addr (0 if none): the peer's identity,
 * whichever of its entries (hidden or inserted) names it. */
uint64_t usb4_core_av_id(struct usb4_core_av *av, fi_addr_t fi_addr);
uint64_t usb4_host_id(void);

/* ---- domain and memory regions ---------------------------------------- */

/* What the core keeps per domain: the table its regions are published in. */
struct usb4_core_domain {
	struct usb4_shm_reg *reg;
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
void usb4_core_mr_revoke(struct usb4_core_domain *dom, struct usb4_core_mr *mr);

/* ---- endpoint ----------------------------------------------------------- */

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
};

/* A message that arrived before a receive matched it. */
struct usb4_unexp {
	struct usb4_list link;
	fi_addr_t src;
	uint64_t src_id;
	uint64_t tag, data, msg_id, total_len;
	uint16_t wflags;
	uint8_t type;		/* USB4_FRAME_EAGER or USB4_FRAME_RTS */
	bool claimed;		/* FI_CLAIM: reserved for one receive */
	void *buf;		/* eager: a copy of the payload */
	pid_t pid;		/* rendezvous: whose buffer to read */
	size_t riov_count;
	struct iovec riov[USB4_WIRE_RTS_MAX_IOV];
};

/*
 * Bytes streamed to a udp peer as DATA frames: a rendezvous send or an RMA
 * write once the peer sent CTS, or the target side of an RMA read.  The rel
 * window paces it; the receiver places every byte straight into its buffer.
 */
struct usb4_stream {
	struct usb4_list link;		/* in ep->streams while sending */
	fi_addr_t dest;
	uint64_t msg_id;		/* what DATA frames name */
	uint16_t wflags;		/* extra DATA flags (USB4_WF_READ_RESP) */
	struct iovec iov[USB4_IOV_LIMIT];
	size_t iov_count;
	uint64_t sent, limit;
	bool by_ref;			/* rel may still send from iov */
	bool fin_sent;			/* read response: data all posted */
	uint32_t mark;			/* and acked once rel passes this */
	/* Target of an RMA read: the pinned regions, FIN at the end. */
	struct usb4_shm_pin pins[USB4_IOV_LIMIT];
	size_t npins;
	bool owned;			/* malloc'd, freed when done */
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
	struct usb4_stream stream;	/* udp: the bytes to send after CTS */
	struct fi_ioc res[USB4_IOV_LIMIT];	/* udp atomics: results */
	size_t res_count, res_size;
	void *bounce;			/* udp inject write: a copy of the bytes */
};

/*
 * Bytes arriving from a udp peer as DATA frames into local memory: a
 * rendezvous receive, the target of an RMA write, or the initiator of an RMA
 * read.  Keyed by (src, msg_id, read response or not).
 */
enum usb4_xfer_kind { USB4_XFER_RECV, USB4_XFER_RMA_WRITE, USB4_XFER_RMA_READ };

struct usb4_xfer {
	struct usb4_list link;		/* in ep->xfers */
	enum usb4_xfer_kind kind;
	fi_addr_t src;
	uint64_t msg_id;
	struct iovec iov[USB4_IOV_LIMIT];
	size_t iov_count;
	uint64_t want, received;
	uint32_t chunk;			/* the sender's DATA size, once seen */
	/* USB4_XFER_RECV: how to complete the receive. */
	struct usb4_rx_entry *rx;
	struct usb4_cqe cqe;
	uint64_t total_len;
	bool want_cqe;
	/* USB4_XFER_RMA_WRITE: pinned target regions, remote CQ data. */
	struct usb4_shm_pin pins[USB4_IOV_LIMIT];
	size_t npins;
	bool cq_data;
	uint64_t data;
};

/* A control frame waiting for room towards its peer. */
struct usb4_ctrl {
	struct usb4_list link;
	fi_addr_t dest;
	struct usb4_wire_hdr hdr;
	size_t len;
	char payload[];		/* len bytes (atomic results) */
};

enum { USB4_Q_MSG = 0, USB4_Q_TAGGED = 1 };

struct usb4_core_stats {
	uint64_t dropped[USB4_WIRE_VERDICT_MAX];
	uint64_t dropped_unknown_op;	/* FIN/ACK naming no pending send */
	uint64_t unknown_src;		/* frames from ids not in the AV */
	uint64_t udp_foreign;		/* datagrams from addresses not in the AV,
					 * or not meant for us */
	uint64_t udp_rejected;		/* datagrams rel refused (see rel stats) */
	uint64_t dropped_bad_xfer;	/* DATA/CTS naming nothing, or out of range */
	uint64_t udp_ref_copies;	/* DATA frames rel had to copy: their
					 * stream ended before the peer's ack */
	uint64_t eager_sent, rndv_sent, unexpected;
};

struct usb4_rel_peer;

/* rel towards one udp peer, keyed by the peer's endpoint id: the same state
 * whether the peer is named by a hidden entry or, later, an inserted one. */
struct usb4_session {
	uint64_t id;
	struct usb4_rel_peer *rel;
	bool dead_reported;
};

struct usb4_core_ep {
	uint64_t id;
	uint64_t caps;
	struct usb4_core_domain *dom;
	struct usb4_shm_link *shm;
	struct usb4_udp_link *udp;	/* NULL: no interface for other hosts */
	size_t udp_payload_max;		/* core frame bytes per datagram */
	char *udp_linear;		/* one frame, when it came in pieces */
	struct usb4_xfer *hot_xfer;	/* took the last DATA frame: where the
					 * next ones are received straight to */
	struct usb4_session *sessions;	/* rel state per udp peer, by its id */
	size_t session_count, session_cap;
	struct usb4_list streams;	/* usb4_stream with bytes to send */
	struct usb4_list xfers;		/* usb4_xfer receiving bytes */
	bool rel_busy;			/* inside rel's delivery: no rel sends */
	struct usb4_core_av *av;
	struct usb4_cq_queue *tx_cq, *rx_cq;
	struct usb4_counter *tx_cntr, *rx_cntr;
	struct usb4_counter *rd_cntr, *wr_cntr;		/* our reads, writes */
	struct usb4_counter *rem_rd_cntr, *rem_wr_cntr;	/* peers' accesses */
	uint64_t rem_reads_seen, rem_writes_seen;
	struct usb4_list posted[2];	/* indexed by USB4_Q_* */
	struct usb4_list unexp[2];
	struct usb4_list rx_free;	/* recycled usb4_rx_entry */
	size_t rx_posted, rx_max;
	struct usb4_tx_op *ops;
	uint32_t *ops_free;
	size_t ops_free_count, ops_cap;
	struct usb4_list ctrl_pending;
	size_t min_multi_recv;
	size_t eager_max;		/* payload bytes that fit a frame */
	uint64_t liveness_ns;		/* last check that pending peers live */
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

/* Whether an interface to other hosts exists (FI_USB4_IFACE or sysfs). */
bool usb4_core_reaches_other_hosts(void);

int usb4_core_ep_open(struct usb4_core_ep *ep, uint64_t caps,
		      struct usb4_core_domain *dom);
ssize_t usb4_core_rma(struct usb4_core_ep *ep, const struct usb4_rma_args *a);
ssize_t usb4_core_atomic(struct usb4_core_ep *ep,
			 const struct usb4_atomic_args *a);
void usb4_core_ep_close(struct usb4_core_ep *ep);
/* Read responses whose data waits for acknowledgements: rel takes copies
 * and the regions are unpinned (before a region is revoked). */
void usb4_core_ep_unpin_reads(struct usb4_core_ep *ep);
void usb4_core_ep_addr(const struct usb4_core_ep *ep, struct usb4_addr *addr);
ssize_t usb4_core_send(struct usb4_core_ep *ep, const struct usb4_send_args *a);
ssize_t usb4_core_recv(struct usb4_core_ep *ep, const struct usb4_recv_args *a);
int usb4_core_cancel(struct usb4_core_ep *ep, void *context);
int usb4_core_progress(struct usb4_core_ep *ep);
void usb4_core_wait(struct usb4_core_ep *ep, int timeout_ms);
/* A short sleep in the kernel until a frame may be waiting. */
void usb4_core_nap(struct usb4_core_ep *ep, int64_t timeout_us);
/* True once the endpoint exchanged anything with a peer on another host. */
bool usb4_core_talks_to_other_hosts(const struct usb4_core_ep *ep);
void usb4_core_kick(struct usb4_core_ep *ep);
void usb4_core_log_stats(const struct usb4_core_ep *ep);

/* Completion helpers shared by the core's protocol files: report to a given
 * CQ and counter, or complete on the endpoint's send or receive side. */
void usb4_core_report(struct usb4_cq_queue *cq, struct usb4_counter *cntr,
		      const struct usb4_cqe *e, bool want_cqe);
void usb4_core_report_err(struct usb4_cq_queue *cq, struct usb4_counter *cntr,
			  const struct usb4_cqe *e, int err, size_t olen);
void usb4_core_complete(struct usb4_core_ep *ep, bool tx,
			const struct usb4_cqe *e, bool want_cqe);
void usb4_core_complete_err(struct usb4_core_ep *ep, bool tx,
			    const struct usb4_cqe *e, int err, size_t olen);

#endif /* USB4_CORE_H */
