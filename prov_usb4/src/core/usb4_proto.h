/* Internal to the core: protocol and matching entry points. */
#ifndef USB4_PROTO_H
#define USB4_PROTO_H

#include "usb4_core.h"

/* An incoming message, from a frame just taken off the link or from the
 * unexpected queue. */
struct usb4_msg_in {
	uint8_t type;		/* USB4_FRAME_EAGER or USB4_FRAME_RTS */
	uint16_t wflags;
	fi_addr_t src;
	uint64_t tag, data, msg_id, total_len;
	const void *payload;	/* eager bytes */
	pid_t pid;		/* rendezvous source process */
	size_t riov_count;
	const struct iovec *riov;
};

/* Whether two fi_addrs name the same peer (a hidden entry and the one the
 * application inserted later do). */
static inline bool usb4_same_peer(struct usb4_core_ep *ep, fi_addr_t a,
				  fi_addr_t b)
{
	uint64_t id;

	if (a == b)
		return true;
	id = usb4_core_av_id(ep->av, a);
	return id && id == usb4_core_av_id(ep->av, b);
}

/* The source to report for a peer: its inserted fi_addr, if it has one. */
static inline fi_addr_t usb4_report_src(struct usb4_core_ep *ep, fi_addr_t a)
{
	uint64_t id = usb4_core_av_id(ep->av, a);

	return usb4_core_av_visible(id ? usb4_core_av_reverse(ep->av, id) : a);
}

/* usb4_iov.c: iovec arithmetic */
size_t usb4_iov_len(const struct iovec *iov, size_t count);
/* Describes bytes [off, off + len) of an iov list in out; returns entries. */
int usb4_iov_slice(const struct iovec *iov, size_t count, uint64_t off,
		   size_t len, struct iovec *out, int max);
/* Copies len bytes of src into an iov list, starting off bytes in. */
void usb4_iov_copy_in(const struct iovec *iov, size_t count, uint64_t off,
		      const void *src, size_t len);

/* usb4_proto.c: sends and dispatch */
void usb4_proto_handle(struct usb4_core_ep *ep, const struct usb4_frame *f);
void usb4_proto_reap_dead_peers(struct usb4_core_ep *ep);
void usb4_proto_peer_dead(struct usb4_core_ep *ep, fi_addr_t peer);
void usb4_proto_send_write_data(struct usb4_core_ep *ep, fi_addr_t dest,
				uint64_t data, uint64_t len);
void usb4_proto_remote_write_cqe(struct usb4_core_ep *ep, fi_addr_t src,
				 uint64_t data, uint64_t len);

/* usb4_ctrl.c: answers, queued while they cannot go out */
void usb4_proto_send_ctrl(struct usb4_core_ep *ep, fi_addr_t dest,
			  uint8_t type, uint64_t msg_id, int64_t status,
			  uint64_t len);
void usb4_proto_send_resp(struct usb4_core_ep *ep, fi_addr_t dest,
			  uint64_t msg_id, int64_t status, const void *data,
			  size_t len);
void usb4_proto_flush_ctrl(struct usb4_core_ep *ep);
void usb4_proto_drop_ctrl(struct usb4_core_ep *ep, fi_addr_t dest);

/* usb4_tx_ops.c: operations waiting for their peer */
struct usb4_tx_op *usb4_proto_op_start(struct usb4_core_ep *ep, fi_addr_t dest,
				       void *context, size_t len,
				       uint64_t flags, struct usb4_counter *cntr,
				       uint64_t *msg_id);
void usb4_proto_op_free(struct usb4_core_ep *ep, struct usb4_tx_op *op);
struct usb4_tx_op *usb4_proto_op(struct usb4_core_ep *ep, uint64_t msg_id);
void usb4_proto_op_done(struct usb4_core_ep *ep, struct usb4_tx_op *op,
			int err);
void usb4_proto_ops_fail(struct usb4_core_ep *ep, fi_addr_t dest, int err,
			 bool (*alive)(struct usb4_core_ep *, fi_addr_t));

/* usb4_transport.c: frames to and from peers over their link */
int usb4_transport_post(struct usb4_core_ep *ep, fi_addr_t dest,
			const struct iovec *iov, int count);
/* Like usb4_transport_post, but over udp the last nref buffers are sent
 * from where they are (shm copies them): they must stay unchanged until the
 * frame is acknowledged or usb4_transport_unref(dest, owner). */
int usb4_transport_post_ref(struct usb4_core_ep *ep, fi_addr_t dest,
			    const struct iovec *iov, int count, int nref,
			    uint64_t owner);
/* From now on owner may reuse what it posted to dest by reference. */
void usb4_transport_unref(struct usb4_core_ep *ep, fi_addr_t dest,
			  uint64_t owner);
/* Before a frame's payload is written to bytes [off, off + len) of iov:
 * datagrams received but not handed up yet whose holes lie there are moved
 * out of the way (usb4_udp_evacuate). */
void usb4_transport_clear_way(struct usb4_core_ep *ep, const struct iovec *iov,
			      size_t count, uint64_t off, size_t len);
/* A mark after everything posted to dest so far, and whether dest has
 * acknowledged all of that (true when nothing can be resent). */
uint32_t usb4_transport_mark(struct usb4_core_ep *ep, fi_addr_t dest);
bool usb4_transport_settled(struct usb4_core_ep *ep, fi_addr_t dest,
			    uint32_t mark);
size_t usb4_transport_eager_max(const struct usb4_core_ep *ep,
				const struct usb4_peer *peer);
size_t usb4_transport_chunk_max(const struct usb4_core_ep *ep);
int usb4_transport_progress_udp(struct usb4_core_ep *ep);
void usb4_transport_wait_us(struct usb4_core_ep *ep, int64_t timeout_us);
void usb4_transport_close(struct usb4_core_ep *ep);

/* usb4_stream.c: bulk data over udp */
void usb4_stream_start(struct usb4_core_ep *ep, struct usb4_stream *s,
		       uint64_t limit);
void usb4_stream_stop(struct usb4_stream *s);
void usb4_stream_release(struct usb4_core_ep *ep, struct usb4_stream *s);
void usb4_stream_progress(struct usb4_core_ep *ep);
void usb4_stream_handle_cts(struct usb4_core_ep *ep, const struct usb4_frame *f,
			    fi_addr_t src);
/* Where the next DATA frames should be received: holes after hdr_len bytes
 * of each datagram (usb4_udp_place_fn). */
int usb4_xfer_predict(struct usb4_core_ep *ep, size_t hdr_len,
		      struct usb4_udp_hole *holes, int max);
void usb4_stream_handle_data(struct usb4_core_ep *ep,
			     const struct usb4_frame *f, fi_addr_t src);
void usb4_stream_peer_dead(struct usb4_core_ep *ep, fi_addr_t peer);
void usb4_stream_close(struct usb4_core_ep *ep);
struct usb4_xfer *usb4_xfer_new(struct usb4_core_ep *ep, enum usb4_xfer_kind kind,
				fi_addr_t src, uint64_t msg_id);
void usb4_xfer_free(struct usb4_core_ep *ep, struct usb4_xfer *x);
void usb4_xfer_done(struct usb4_core_ep *ep, struct usb4_xfer *x, int err);
void usb4_xfer_drop_read(struct usb4_core_ep *ep, fi_addr_t src,
			 uint64_t msg_id);

/* usb4_rma_udp.c: RMA and atomics with peers on other hosts */
ssize_t usb4_rma_udp(struct usb4_core_ep *ep, const struct usb4_rma_args *a,
		     size_t len);
ssize_t usb4_atomic_udp(struct usb4_core_ep *ep,
			const struct usb4_atomic_args *a, size_t count,
			uint64_t flags);
void usb4_rma_udp_handle_write(struct usb4_core_ep *ep,
			       const struct usb4_frame *f, fi_addr_t src);
void usb4_rma_udp_handle_read(struct usb4_core_ep *ep,
			      const struct usb4_frame *f, fi_addr_t src);
void usb4_rma_udp_handle_atomic(struct usb4_core_ep *ep,
				const struct usb4_frame *f, fi_addr_t src);
void usb4_rma_udp_handle_atomic_resp(struct usb4_core_ep *ep,
				     const struct usb4_frame *f, fi_addr_t src);

/* usb4_match.c */
void usb4_match_arrival(struct usb4_core_ep *ep, const struct usb4_msg_in *m);
/* Completes a receive whose bytes arrived (err: positive FI_E* or 0). */
void usb4_match_finish(struct usb4_core_ep *ep, const struct usb4_cqe *e,
		       uint64_t total_len, int err, bool want_cqe);
/* Places a message into a posted receive, answers the sender, completes.
 * Frees the receive, and returns true, unless it is a multi-receive buffer
 * with room left. */
bool usb4_match_deliver(struct usb4_core_ep *ep, struct usb4_rx_entry *rx,
			const struct usb4_msg_in *m);

#endif /* USB4_PROTO_H */
