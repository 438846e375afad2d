/*
 * Early rendezvous data (issue 13, USB4_WIRE_FEATURE_RNDV_EARLY): towards
 * a peer on another host a rendezvous send (and an RMA write, after its
 * WRITE_REQ) streams its first bytes right after the request instead of
 * waiting a round trip for CTS.  A ping-pong of
 * 256 KiB spent about 10 of its 66 us per hop between the receiver's last
 * byte of one message and the sender's first byte of the next: FIN, RTS,
 * CTS.
 *
 * The rounds (wire.h): DATA and CTS carry a round in their tag.  The early
 * bytes are round 0.  A receive that matched the RTS on its arrival places
 * them and answers CTS of round 0: the sender goes on from where it is.
 * A receive posted later takes the early DATA too if none of it was
 * dropped meanwhile (in a ping-pong the next RTS often comes in the same
 * batch as the FIN the application waits for, before the receive for it
 * is posted, and its DATA after).  Once some was dropped (nothing is kept
 * for an unexpected RTS) the receive answers CTS of round 1: the sender
 * starts again from byte 0 and the receiver places round 1 only.  Every
 * frame of round 0 precedes every frame of round 1 on the session (the
 * sender sends round 1 only after the CTS that asked for it, and the link
 * delivers in order), so a stale early frame never lands after a byte of
 * round 1: the buffer ends with round 1's bytes only.
 *
 * A receive shorter than the message (FI_ETRUNC) may see early bytes past
 * its end: the frame that crosses the end is placed up to it, later ones
 * find no transfer and are counted as dropped early DATA.  So do those of
 * a write the target refused (a bad key or range): they touch nothing.  A
 * target holds a write it cannot take yet, and the frames behind it, at
 * the link (usb4_rma_frames.c), so its early DATA waits with it.
 */
#include "usb4_proto.h"

/* Whether the session with peer agreed on early data (both offered it). */
static bool early_agreed(struct usb4_core_ep *ep, fi_addr_t peer)
{
	struct usb4_route r;

	usb4_route(ep, peer, &r);
	return r.peer && r.link && r.link->ops->dest_features &&
	       (r.link->ops->dest_features(r.link, r.peer->dest) &
		USB4_WIRE_FEATURE_RNDV_EARLY);
}

/* Only towards a peer whose link streams DATA (one that reads our memory
 * itself needs no data frames at all). */
static bool early_wanted(struct usb4_core_ep *ep, fi_addr_t dest)
{
	return usb4_params.stream_early_size &&
	       !(usb4_peer_caps(ep, dest) & USB4_LINK_CAP_BULK_READ) &&
	       early_agreed(ep, dest);
}

/* A message that fits goes whole; a longer one stops early at a whole
 * number of DATA frames (a short frame in the middle of a stream costs a
 * system call on both sides, as much as a full one). */
static size_t early_bytes(struct usb4_core_ep *ep, fi_addr_t dest, size_t len)
{
	size_t early = usb4_params.stream_early_size, chunk;
	struct usb4_route r;

	if (len <= early)
		return len;
	chunk = usb4_route(ep, dest, &r) ? 0 : usb4_route_chunk_max(&r);
	if (!chunk)
		return 0;
	return early < chunk ? chunk : early / chunk * chunk;
}

void usb4_stream_early_start(struct usb4_core_ep *ep, struct usb4_tx_op *op,
			     size_t len)
{
	if (!early_wanted(ep, op->dest))
		return;
	op->stream.round = USB4_WIRE_ROUND_EARLY;
	usb4_stream_start(ep, &op->stream, early_bytes(ep, op->dest, len));
}

/* The sender: a CTS of round 1 restarts the stream from byte 0 (its early
 * bytes were dropped).  False: a round we never send. */
bool usb4_stream_early_cts(struct usb4_core_ep *ep, struct usb4_stream *s,
			   const struct usb4_frame *f)
{
	if (f->tag == USB4_WIRE_ROUND_EARLY)
		return true;
	if (f->tag != USB4_WIRE_ROUND_AGAIN || s->round != USB4_WIRE_ROUND_EARLY)
		return false;
	s->round = USB4_WIRE_ROUND_AGAIN;
	s->sent = 0;
	return true;
}

/* The receiver: which round a new transfer takes, then its CTS. */
void usb4_xfer_early_cts(struct usb4_core_ep *ep, struct usb4_xfer *x,
			 bool early_intact, uint64_t want)
{
	bool agreed = early_agreed(ep, x->src);

	x->early = agreed && early_intact;
	x->round = agreed && !early_intact ? USB4_WIRE_ROUND_AGAIN :
					 USB4_WIRE_ROUND_EARLY;
	usb4_ctrl_send_tagged(ep, &x->ctrl, x->src, USB4_FRAME_CTS, x->msg_id,
			      x->round, want);
}

/*
 * Whether DATA f goes into x, and how many of its bytes (*len): f must be
 * of x's round and continue where the last frame ended; an early frame may
 * run past the zone's end (a shorter receive) and is cut there.
 */
bool usb4_xfer_early_fits(struct usb4_core_ep *ep, const struct usb4_xfer *x,
			  const struct usb4_frame *f, size_t *len)
{
	uint64_t room = x->zone.end - x->zone.next;

	if (f->tag != x->round) {
		ep->stats.early_dropped++;
		return false;
	}
	if (!x->zone.end || f->data != x->zone.next ||
	    (f->payload_len > room && !x->early)) {
		ep->stats.dropped_bad_xfer++;
		return false;
	}
	*len = f->payload_len < room ? f->payload_len : room;
	return true;
}

/* DATA naming no transfer: early bytes nobody waits for (the receive is not
 * posted yet: its RTS learns that it lost some; or it was shorter), or a
 * bad frame. */
void usb4_stream_early_orphan(struct usb4_core_ep *ep,
			      const struct usb4_frame *f, fi_addr_t src)
{
	if (f->tag == USB4_WIRE_ROUND_EARLY && !(f->flags & USB4_WF_READ_RESP) &&
	    early_agreed(ep, src)) {
		usb4_match_early_lost(ep, src, f->msg_id);
		ep->stats.early_dropped++;
	} else {
		ep->stats.dropped_bad_xfer++;
	}
}
