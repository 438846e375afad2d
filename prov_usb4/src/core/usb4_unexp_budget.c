/*
 * The unexpected queue's bounds.  Messages nobody has posted a receive for
 * are kept (a copy of an eager payload, an entry per message), and a peer
 * sending them nonstop would otherwise grow the receiver without limit.
 * Every queued message is charged its cost to its sender (by endpoint id,
 * which outlives the sender's table entry) and to the endpoint's total;
 * past FI_USB4_UNEXP_PEER_BYTES or FI_USB4_UNEXP_BYTES the arrival is
 * refused with -FI_EAGAIN, its link holds the frame (receiver not ready)
 * and the sender is slowed down, never the receiver grown.
 *
 * One exception keeps every sender moving: a sender with nothing queued
 * may always queue one message (within the total), so a single message
 * larger than the per-peer bound waits for a receive without blocking the
 * messages that follow it forever.
 */
#include <stdlib.h>

#include "usb4_proto.h"

/* What one queued message costs beyond its payload: its entry and the
 * allocator's overhead of it and of the payload copy. */
#define USB4_UNEXP_ENTRY_COST	(sizeof(struct usb4_unexp) + 64)

size_t usb4_unexp_cost(uint64_t payload_len)
{
	return (size_t) payload_len + USB4_UNEXP_ENTRY_COST;
}

int usb4_unexp_budget_init(struct usb4_unexp_budget *b, size_t peer_max,
			   size_t total_max)
{
	b->peer_max = peer_max;
	b->total_max = total_max;
	b->total = b->peak = 0;
	return usb4_id_map_init(&b->per_peer, 16);
}

void usb4_unexp_budget_fini(struct usb4_unexp_budget *b)
{
	usb4_id_map_fini(&b->per_peer);
}

int usb4_unexp_charge(struct usb4_unexp_budget *b, uint64_t id, size_t cost)
{
	uint64_t *have = usb4_id_map_find(&b->per_peer, id);
	uint64_t mine = have ? *have : 0;

	/* Overflow-safe: total <= total_max always. */
	if (cost > b->total_max - b->total)
		return -FI_EAGAIN;
	if (mine && (mine >= b->peer_max || cost > b->peer_max - mine))
		return -FI_EAGAIN;
	/* A peer already charged is added to in place: a put would look
	 * its slot up a second time. */
	if (have)
		*have += cost;
	else if (usb4_id_map_put(&b->per_peer, id, cost))
		return -FI_EAGAIN;
	b->total += cost;
	if (b->total > b->peak)
		b->peak = b->total;
	return 0;
}

void usb4_unexp_uncharge(struct usb4_unexp_budget *b, uint64_t id,
			 size_t cost)
{
	uint64_t *have = usb4_id_map_find(&b->per_peer, id);

	b->total -= cost;
	if (!have)
		return;
	if (*have <= cost)
		usb4_id_map_remove(&b->per_peer, id);
	else
		*have -= cost;
}
