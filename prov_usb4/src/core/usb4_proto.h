/* Internal to the core: how its files reach each other. */
#ifndef USB4_PROTO_H
#define USB4_PROTO_H

#include "usb4_core.h"

/* An incoming message, from a frame just taken off a link or from the
 * unexpected queue. */
struct usb4_msg_in {
	uint8_t type;		/* USB4_FRAME_EAGER or USB4_FRAME_RTS */
	uint16_t wflags;
	fi_addr_t src;
	uint64_t tag, data, msg_id, total_len;
	const void *payload;	/* eager bytes */
	size_t riov_count;	/* rendezvous: where the bytes wait */
	const struct iovec *riov;
	bool early_intact;	/* RTS: none of its early DATA was dropped
				 * yet (it comes off the link now, or it
				 * waited and none came meanwhile) */
};

/* ---- usb4_peer.c: who is who ---- */

/* The peer behind an fi_addr: an AV entry or a hidden one; NULL if none. */
struct usb4_peer *usb4_peer_of(struct usb4_core_ep *ep, fi_addr_t fi_addr);
/* The endpoint's link that reaches peer (NULL: that kind is not open). */
struct usb4_link *usb4_peer_link(struct usb4_core_ep *ep,
				 const struct usb4_peer *peer);
/* The fi_addr of the sender of a frame that came on a link of this kind:
 * its AV entry when it has one of that kind, else a hidden entry (made
 * now).  FI_ADDR_NOTAVAIL when the link cannot say how to reach it back;
 * -FI_EAGAIN (in *err) when memory ran out. */
fi_addr_t usb4_peer_resolve(struct usb4_core_ep *ep, uint8_t kind,
			    uint64_t id, int *err);
/* The same without making a hidden entry. */
fi_addr_t usb4_peer_find(struct usb4_core_ep *ep, uint8_t kind, uint64_t id);
/* Whether two fi_addrs name the same peer (a hidden entry and the one the
 * application inserted later do). */
bool usb4_same_peer(struct usb4_core_ep *ep, fi_addr_t a, fi_addr_t b);
/* The source to report for a peer: its inserted fi_addr, if it has one.
 * Inline: an inserted one (every completion of a peer the application
 * knows) is itself; a hidden entry is looked up. */
fi_addr_t usb4_report_src_hidden(struct usb4_core_ep *ep, fi_addr_t a);
static inline fi_addr_t usb4_report_src(struct usb4_core_ep *ep, fi_addr_t a)
{
	if (a == FI_ADDR_NOTAVAIL || !(a & USB4_HIDDEN_BIT))
		return a;
	return usb4_report_src_hidden(ep, a);
}
void usb4_hidden_fini(struct usb4_peer_table *hidden);
/* The hidden entry of id over this kind of link (FI_ADDR_NOTAVAIL: none). */
fi_addr_t usb4_hidden_of(struct usb4_core_ep *ep, uint8_t kind, uint64_t id);
/* Frees a hidden entry (its peer is down): every fi_addr naming it now
 * names nobody, and its dest, the link's, is forgotten. */
void usb4_hidden_free(struct usb4_core_ep *ep, fi_addr_t a);
/* Whether a remote access (RMA, atomics) from src may be served: src was
 * inserted by the application, or its link proved who it is. */
bool usb4_peer_may_access(struct usb4_core_ep *ep, fi_addr_t src);

/* ---- usb4_unexp_budget.c: what unexpected messages may hold ---- */

/* Bytes an unexpected message of payload_len costs. */
size_t usb4_unexp_cost(uint64_t payload_len);
int usb4_unexp_budget_init(struct usb4_unexp_budget *b, size_t peer_max,
			   size_t total_max);
void usb4_unexp_budget_fini(struct usb4_unexp_budget *b);
/* Charges cost to sender id: 0, or -FI_EAGAIN (nothing charged) when it
 * would pass a bound or memory ran out. */
int usb4_unexp_charge(struct usb4_unexp_budget *b, uint64_t id, size_t cost);
void usb4_unexp_uncharge(struct usb4_unexp_budget *b, uint64_t id,
			 size_t cost);

/* ---- usb4_post.c: frames to a peer over its link ---- */

/* The route to dest (struct usb4_route): 0; -FI_EINVAL: no such peer;
 * -FI_EHOSTUNREACH: its kind of link is not open here.  Either way r holds
 * what was found. */
int usb4_route(struct usb4_core_ep *ep, fi_addr_t dest, struct usb4_route *r);
/* The same for a send: the last one's route again while it holds. */
int usb4_route_send(struct usb4_core_ep *ep, fi_addr_t dest,
		    const struct usb4_route **r);
int usb4_route_post(const struct usb4_route *r, const struct iovec *iov,
		    int count);
/* The last nref buffers are sent from where they are (if the link can):
 * unchanged until the peer has them or usb4_release(dest, owner). */
int usb4_route_post_ref(const struct usb4_route *r, const struct iovec *iov,
			int count, int nref, uint64_t owner);
/* The link's capabilities (USB4_LINK_CAP_*), 0 without a link; the same
 * for an fi_addr. */
uint32_t usb4_route_caps(const struct usb4_route *r);
uint32_t usb4_peer_caps(struct usb4_core_ep *ep, fi_addr_t fi_addr);
/* Largest DATA payload towards the peer. */
size_t usb4_route_chunk_max(const struct usb4_route *r);
/* Largest eager payload over a link towards dest (NULL: the link's own
 * frames). */
size_t usb4_link_eager_max(const struct usb4_link *link,
			   const struct usb4_link_dest *dest);

int usb4_post(struct usb4_core_ep *ep, fi_addr_t dest,
	      const struct iovec *iov, int count);
void usb4_release(struct usb4_core_ep *ep, fi_addr_t dest, uint64_t owner);
/* A mark after everything posted to dest so far, and whether dest has
 * acknowledged all of that. */
uint32_t usb4_mark(struct usb4_core_ep *ep, fi_addr_t dest);
bool usb4_settled(struct usb4_core_ep *ep, fi_addr_t dest, uint32_t mark);
/* 0 while dest answers, else why not (negative FI_E*). */
int usb4_peer_state(struct usb4_core_ep *ep, fi_addr_t dest);

/* ---- usb4_send_fused.c: the common send in one piece ---- */

/* What usb4_send_fused answers for a send it leaves to the general path. */
#define USB4_SEND_DECLINED	1
/* A send of one buffer, eager, without delivery acknowledgement: its
 * result, as usb4_core_send's would be; else USB4_SEND_DECLINED, having
 * changed nothing but the route memo (the general path's route to dest
 * too). */
ssize_t usb4_send_fused(struct usb4_core_ep *ep,
			const struct usb4_send_args *a);

/* ---- usb4_dispatch.c: frames in ---- */

/* The sink every link of an endpoint hands frames to. */
struct usb4_link_sink usb4_dispatch_sink(struct usb4_ep_link *el);
/* A peer is down: everything to or from it ends in error (err < 0). */
void usb4_proto_peer_down(struct usb4_core_ep *ep, fi_addr_t peer, int err);
/* Pending work whose peers no longer answer ends in error. */
void usb4_proto_reap_dead_peers(struct usb4_core_ep *ep);
/* A status a peer sent, as a local code: 0 or a negative FI_E* we know. */
int usb4_peer_status(uint64_t wire_status);

/* ---- usb4_proto.c: sends ---- */

void usb4_proto_remote_write_cqe(struct usb4_core_ep *ep, fi_addr_t src,
				 uint64_t data, uint64_t len);

/* ---- usb4_ctrl.c: answers ---- */

/* Fills and sends ctrl (status: 0 or negative FI_E*); if the peer has no
 * room it waits, in order, on ep->ctrl_pending. */
void usb4_ctrl_send(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl,
		    fi_addr_t dest, uint8_t type, uint64_t msg_id,
		    int64_t status, uint64_t len);
/* The same with a tag instead of a status (a CTS's round). */
void usb4_ctrl_send_tagged(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl,
			   fi_addr_t dest, uint8_t type, uint64_t msg_id,
			   uint64_t tag, uint64_t len);
/* The same with a payload, which must live until the frame left. */
void usb4_ctrl_send_data(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl,
			 fi_addr_t dest, uint8_t type, uint64_t msg_id,
			 int64_t status, const void *data, size_t len);
/* A ctrl of its own, freed once sent; NULL when memory ran out. */
struct usb4_ctrl *usb4_ctrl_new(size_t payload);
/* The owner goes: free it now, or once its ctrl left (done(ep, ctrl)). */
void usb4_ctrl_then(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl,
		    void (*done)(struct usb4_core_ep *, struct usb4_ctrl *));
void usb4_ctrl_unqueue(struct usb4_ctrl *ctrl);
void usb4_ctrl_flush(struct usb4_core_ep *ep);
/* Answers for a dead peer would wait forever: drop them. */
void usb4_ctrl_drop(struct usb4_core_ep *ep, fi_addr_t dest);

/* ---- usb4_tx_ops.c: operations waiting for their peer ---- */

/* Reserves the op's completion too: NULL (-FI_EAGAIN) when none is free. */
struct usb4_tx_op *usb4_op_start(struct usb4_core_ep *ep, fi_addr_t dest,
				 void *context, size_t len, uint64_t flags,
				 struct usb4_counter *cntr, uint64_t *msg_id);
/* Gives the op back unfinished (its post failed): unreserves. */
void usb4_op_abort(struct usb4_core_ep *ep, struct usb4_tx_op *op);
/* The op a frame from src names by msg_id; NULL when the id is stale or
 * forged or the op is another peer's. */
struct usb4_tx_op *usb4_op_find(struct usb4_core_ep *ep, uint64_t msg_id,
				fi_addr_t src);
/* Completes an op (err: 0 or negative FI_E*) and frees it. */
void usb4_op_done(struct usb4_core_ep *ep, struct usb4_tx_op *op, int err);
/* Fails every op waiting for dest. */
void usb4_ops_fail(struct usb4_core_ep *ep, fi_addr_t dest, int err);

/* ---- usb4_stream.c: bulk data as DATA frames ---- */

void usb4_stream_start(struct usb4_core_ep *ep, struct usb4_stream *s,
		       uint64_t limit);
void usb4_stream_stop(struct usb4_stream *s);
void usb4_stream_release(struct usb4_core_ep *ep, struct usb4_stream *s);
void usb4_stream_progress(struct usb4_core_ep *ep);
int usb4_stream_handle_cts(struct usb4_core_ep *ep, const struct usb4_frame *f,
			   fi_addr_t src);
int usb4_stream_handle_data(struct usb4_core_ep *ep,
			    const struct usb4_frame *f, fi_addr_t src);
/* Ends a stream unfinished (a read response tells its initiator err). */
void usb4_stream_end(struct usb4_core_ep *ep, struct usb4_stream *s, int err);
void usb4_stream_peer_down(struct usb4_core_ep *ep, fi_addr_t peer, int err);
void usb4_stream_forget_region(struct usb4_core_ep *ep, uint32_t slot);
void usb4_stream_close(struct usb4_core_ep *ep);
/* ---- usb4_stream_early.c: rendezvous data before CTS ---- */

/* After op's RTS: streams its first bytes (FI_USB4_RNDV_EARLY_SIZE) to a
 * peer that agreed on USB4_WIRE_FEATURE_RNDV_EARLY. */
void usb4_stream_early_start(struct usb4_core_ep *ep, struct usb4_tx_op *op,
			     size_t len);
/* A CTS for s: its round restarts s when it says so; false: a bad round. */
bool usb4_stream_early_cts(struct usb4_core_ep *ep, struct usb4_stream *s,
			   const struct usb4_frame *f);
/* A new receive transfer takes its round (early_intact: matched on the RTS's
 * arrival) and asks for want bytes with CTS. */
void usb4_xfer_early_cts(struct usb4_core_ep *ep, struct usb4_xfer *x,
			 bool early_intact, uint64_t want);
/* Whether DATA f goes into x, and *len of its bytes; counts a drop. */
bool usb4_xfer_early_fits(struct usb4_core_ep *ep, const struct usb4_xfer *x,
			  const struct usb4_frame *f, size_t *len);
/* Counts DATA that names no transfer (early bytes, or a bad frame). */
void usb4_stream_early_orphan(struct usb4_core_ep *ep,
			      const struct usb4_frame *f, fi_addr_t src);

struct usb4_xfer *usb4_xfer_new(struct usb4_core_ep *ep,
				enum usb4_xfer_kind kind, fi_addr_t src,
				uint64_t msg_id);
/* The buffer is set: frames may land (opens the link's zone). */
void usb4_xfer_arm(struct usb4_core_ep *ep, struct usb4_xfer *x,
		   uint64_t want);
void usb4_xfer_free(struct usb4_core_ep *ep, struct usb4_xfer *x);
/* The transfer ends (err: 0 or negative FI_E*): answers, completes. */
void usb4_xfer_done(struct usb4_core_ep *ep, struct usb4_xfer *x, int err);
void usb4_xfer_drop_read(struct usb4_core_ep *ep, fi_addr_t src,
			 uint64_t msg_id);
/* Our read of msg_id from src that waits for its bytes, or NULL. */
struct usb4_xfer *usb4_xfer_find_read(struct usb4_core_ep *ep, fi_addr_t src,
				      uint64_t msg_id);

/* ---- usb4_rma_frames.c: RMA and atomics as frames ---- */

ssize_t usb4_rma_frames(struct usb4_core_ep *ep, const struct usb4_rma_args *a,
			size_t len);
ssize_t usb4_atomic_frames(struct usb4_core_ep *ep,
			   const struct usb4_atomic_args *a, size_t count,
			   uint64_t flags);
int usb4_rma_handle_write(struct usb4_core_ep *ep, const struct usb4_frame *f,
			  fi_addr_t src);
int usb4_rma_handle_read(struct usb4_core_ep *ep, const struct usb4_frame *f,
			 fi_addr_t src);
int usb4_rma_handle_atomic(struct usb4_core_ep *ep, const struct usb4_frame *f,
			   fi_addr_t src);
int usb4_rma_handle_atomic_resp(struct usb4_core_ep *ep,
				const struct usb4_frame *f, fi_addr_t src);
/* A remote access to our memory that arrived as frames, for FI_RMA_EVENT. */
void usb4_rma_count_remote(struct usb4_core_ep *ep, bool write);

/* ---- usb4_rma_inline.c: small writes in their request, small reads in
 * their answer ---- */

/* Whether a write of len bytes to dest may go inline (the peer offered it). */
bool usb4_rma_inline_ok(struct usb4_core_ep *ep, fi_addr_t dest, size_t len);
/* Bytes a request carries inline (0: a rendezvous write, or a read). */
size_t usb4_rma_inline_len(const struct usb4_frame *f);
/* Places an inline write's bytes in x's pinned segments and answers FIN. */
void usb4_rma_inline_place(struct usb4_core_ep *ep, struct usb4_xfer *x,
			   const struct usb4_frame *f);
/* Answers a checked read of len bytes whose pinned segments are iov with
 * one READ_INLINE frame, when src offered it and len is small: 0 if sent
 * (the segments may be unpinned at once), else the caller streams. */
int usb4_rma_read_inline_answer(struct usb4_core_ep *ep, fi_addr_t src,
				uint64_t msg_id, const struct iovec *iov,
				size_t iov_count, size_t len);
/* The initiator's part: a READ_INLINE frame completes its read. */
int usb4_rma_handle_read_inline(struct usb4_core_ep *ep,
				const struct usb4_frame *f, fi_addr_t src);

/* ---- usb4_match.c ---- */

/* Unexpected rendezvous messages from a dead peer can never be fetched:
 * dropped. */
void usb4_match_peer_down(struct usb4_core_ep *ep, fi_addr_t peer, int err);
/* A message arrived: deliver it or queue it; -FI_EAGAIN: not now. */
int usb4_match_arrival(struct usb4_core_ep *ep, const struct usb4_msg_in *m);
/* Early DATA of an unexpected RTS (src, msg_id) was dropped: a receive
 * that takes it later asks for the bytes again.  False: no such RTS. */
bool usb4_match_early_lost(struct usb4_core_ep *ep, fi_addr_t src,
			   uint64_t msg_id);
/* Completes a receive whose bytes arrived (err: 0 or negative FI_E*). */
void usb4_match_finish(struct usb4_core_ep *ep, const struct usb4_cqe *e,
		       uint64_t total_len, int err, bool want_cqe);
/* Counts a completion on a counter and wakes its waiters. */
void usb4_count(struct usb4_counter *cntr, bool ok);

#endif /* USB4_PROTO_H */
