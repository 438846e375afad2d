/*
 * Frames to a peer over the link that reaches it: the core's only way onto
 * the cable.  Optional link operations fall back to what a link without
 * them means (post_ref copies, nothing to release, always settled).
 */
#include "usb4_proto.h"

/* The peer and its link; NULL when either is missing. */
static struct usb4_link *link_to(struct usb4_core_ep *ep, fi_addr_t dest,
				 struct usb4_peer **peer)
{
	*peer = usb4_peer_of(ep, dest);
	return usb4_peer_link(ep, *peer);
}

int usb4_post_ref(struct usb4_core_ep *ep, fi_addr_t dest,
		  const struct iovec *iov, int count, int nref, uint64_t owner)
{
	struct usb4_peer *peer;
	struct usb4_link *link = link_to(ep, dest, &peer);

	if (!peer)
		return -FI_EINVAL;
	if (!link)
		return -FI_EHOSTUNREACH;
	if (!nref || !link->ops->post_ref)
		return link->ops->post(link, peer->dest, iov, count);
	return link->ops->post_ref(link, peer->dest, iov, count, nref, owner);
}

int usb4_post(struct usb4_core_ep *ep, fi_addr_t dest,
	      const struct iovec *iov, int count)
{
	return usb4_post_ref(ep, dest, iov, count, 0, 0);
}

void usb4_release(struct usb4_core_ep *ep, fi_addr_t dest, uint64_t owner)
{
	struct usb4_peer *peer;
	struct usb4_link *link = link_to(ep, dest, &peer);

	if (link && link->ops->release)
		link->ops->release(link, peer->dest, owner);
}

uint32_t usb4_mark(struct usb4_core_ep *ep, fi_addr_t dest)
{
	struct usb4_peer *peer;
	struct usb4_link *link = link_to(ep, dest, &peer);

	return link && link->ops->mark ? link->ops->mark(link, peer->dest) : 0;
}

bool usb4_settled(struct usb4_core_ep *ep, fi_addr_t dest, uint32_t mark)
{
	struct usb4_peer *peer;
	struct usb4_link *link = link_to(ep, dest, &peer);

	return !link || !link->ops->settled ||
	       link->ops->settled(link, peer->dest, mark);
}

static size_t payload_max(struct usb4_core_ep *ep, fi_addr_t dest)
{
	struct usb4_peer *peer;
	struct usb4_link *link = link_to(ep, dest, &peer);
	size_t max = link ? link->ops->frame_max(link, peer->dest) : 0;

	return max > sizeof(struct usb4_wire_hdr) ?
	       max - sizeof(struct usb4_wire_hdr) : 0;
}

/* Towards a peer whose link cannot read our memory, a message up to one
 * frame (bounded by stream_eager_size: one frame costs less than a round
 * trip) goes eager; else up to eager_size. */
size_t usb4_eager_max(struct usb4_core_ep *ep, fi_addr_t dest)
{
	size_t max = payload_max(ep, dest);
	size_t limit = usb4_peer_caps(ep, dest) & USB4_LINK_CAP_BULK_READ ?
		       usb4_params.eager_size : usb4_params.stream_eager_size;

	return max < limit ? max : limit;
}

size_t usb4_chunk_max(struct usb4_core_ep *ep, fi_addr_t dest)
{
	return payload_max(ep, dest);
}

int usb4_peer_state(struct usb4_core_ep *ep, fi_addr_t dest)
{
	struct usb4_peer *peer;
	struct usb4_link *link = link_to(ep, dest, &peer);

	if (!peer)
		return -FI_EINVAL;
	if (!link)
		return -FI_EHOSTUNREACH;
	return link->ops->peer_state ? link->ops->peer_state(link, peer->dest) : 0;
}
