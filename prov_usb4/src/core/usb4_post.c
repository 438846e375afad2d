/*
 * Frames to a peer over the link that reaches it: the core's only way onto
 * the cable.  Optional link operations fall back to what a link without
 * them means (post_ref copies, nothing to release, always settled).
 */
#include "usb4_proto.h"

uint32_t usb4_route_caps(const struct usb4_route *r)
{
	return r->link ? r->link->ops->caps : 0;
}

uint32_t usb4_peer_caps(struct usb4_core_ep *ep, fi_addr_t fi_addr)
{
	struct usb4_route r;

	usb4_route(ep, fi_addr, &r);
	return usb4_route_caps(&r);
}

static size_t link_payload_max(const struct usb4_link *link,
			       const struct usb4_link_dest *dest)
{
	size_t max = link->ops->frame_max(link, dest);

	return max > sizeof(struct usb4_wire_hdr) ?
	       max - sizeof(struct usb4_wire_hdr) : 0;
}

static size_t payload_max(const struct usb4_route *r)
{
	return r->link ? link_payload_max(r->link, r->peer->dest) : 0;
}

/* Towards a peer whose link cannot read our memory, a message up to one
 * frame (bounded by stream_eager_size: one frame costs less than a round
 * trip) goes eager; else up to eager_size. */
size_t usb4_link_eager_max(const struct usb4_link *link,
			   const struct usb4_link_dest *dest)
{
	size_t max = link_payload_max(link, dest);
	size_t limit = link->ops->caps & USB4_LINK_CAP_BULK_READ ?
		       usb4_params.eager_size : usb4_params.stream_eager_size;

	return max < limit ? max : limit;
}

static size_t eager_max(const struct usb4_route *r)
{
	return r->link ? usb4_link_eager_max(r->link, r->peer->dest) : 0;
}

int usb4_route(struct usb4_core_ep *ep, fi_addr_t dest, struct usb4_route *r)
{
	r->peer = usb4_peer_of(ep, dest);
	r->link = usb4_peer_link(ep, r->peer);
	r->eager_max = 0;	/* usb4_route_send's */
	if (!r->peer)
		return -FI_EINVAL;
	if (!r->link)
		return -FI_EHOSTUNREACH;
	return r->peer->down;
}

/* An entry keeps its place and its dest while its table's generation
 * stays: the memo holds until either table changes.  The eager limit is
 * read again every time: a lossy link's frame size towards a dest
 * changes (after its handshake, or when the path shrinks). */
int usb4_route_send(struct usb4_core_ep *ep, fi_addr_t dest,
		    const struct usb4_route **r)
{
	struct usb4_route_memo *m = &ep->tx_route;
	uint64_t av_gen = ep->av ? ep->av->t.gen : 0;
	int ret;

	*r = &m->route;
	if (m->route.peer && m->dest == dest && m->av_gen == av_gen &&
	    m->hidden_gen == ep->hidden.gen) {
		m->route.eager_max = eager_max(&m->route);
		return m->route.peer->down;
	}
	ret = usb4_route(ep, dest, &m->route);
	if (ret)
		m->route.peer = NULL;
	else
		m->route.eager_max = eager_max(&m->route);
	m->dest = dest;
	m->av_gen = av_gen;
	m->hidden_gen = ep->hidden.gen;
	return ret;
}

int usb4_route_post(const struct usb4_route *r, const struct iovec *iov,
		    int count)
{
	return r->link->ops->post(r->link, r->peer->dest, iov, count);
}

int usb4_route_post_ref(const struct usb4_route *r, const struct iovec *iov,
			int count, int nref, uint64_t owner)
{
	if (!nref || !r->link->ops->post_ref)
		return usb4_route_post(r, iov, count);
	return r->link->ops->post_ref(r->link, r->peer->dest, iov, count, nref,
				      owner);
}

int usb4_post(struct usb4_core_ep *ep, fi_addr_t dest,
	      const struct iovec *iov, int count)
{
	struct usb4_route r;
	int ret = usb4_route(ep, dest, &r);

	return ret ? ret : usb4_route_post(&r, iov, count);
}

void usb4_release(struct usb4_core_ep *ep, fi_addr_t dest, uint64_t owner)
{
	struct usb4_route r;

	/* A peer that is down too: its link lets go of our buffers. */
	usb4_route(ep, dest, &r);
	if (r.link && r.link->ops->release)
		r.link->ops->release(r.link, r.peer->dest, owner);
}

uint32_t usb4_mark(struct usb4_core_ep *ep, fi_addr_t dest)
{
	struct usb4_route r;

	return !usb4_route(ep, dest, &r) && r.link->ops->mark ?
	       r.link->ops->mark(r.link, r.peer->dest) : 0;
}

bool usb4_settled(struct usb4_core_ep *ep, fi_addr_t dest, uint32_t mark)
{
	struct usb4_route r;

	return usb4_route(ep, dest, &r) || !r.link->ops->settled ||
	       r.link->ops->settled(r.link, r.peer->dest, mark);
}

size_t usb4_route_chunk_max(const struct usb4_route *r)
{
	return payload_max(r);
}

int usb4_peer_state(struct usb4_core_ep *ep, fi_addr_t dest)
{
	struct usb4_route r;
	int ret = usb4_route(ep, dest, &r);

	if (ret)
		return ret;
	return r.link->ops->peer_state ?
	       r.link->ops->peer_state(r.link, r.peer->dest) : 0;
}
