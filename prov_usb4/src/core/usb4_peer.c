/*
 * Peers: the address table behind an fi_av, each endpoint's hidden entries,
 * and who sent a frame.  An fi_addr_t is an index into the AV's table (for
 * FI_AV_MAP and FI_AV_TABLE alike), or USB4_HIDDEN_BIT and an index into an
 * endpoint's hidden table (with the entry's generation, see
 * USB4_HIDDEN_GEN_MASK).  A map from endpoint id to index answers "which
 * entry is this sender" in O(1); hidden entries of peers that went down are
 * freed in O(1) and reused.
 *
 * A frame's sender is what its link says (the session or slot it came
 * on), and only an entry reached over that same kind of link can be it: an
 * id claimed over another kind of link names nobody.
 */
#include <stdlib.h>
#include <string.h>

#include "usb4_proto.h"

/* ---- a peer table: peers and an id -> index map ---- */

/* An index of at least twice the table's capacity, of the entries in use. */
static int table_reindex(struct usb4_peer_table *t)
{
	struct usb4_id_map index;

	if (usb4_id_map_init(&index, t->cap))
		return -FI_ENOMEM;
	for (size_t i = 0; i < t->count; i++)
		if (t->peers[i].in_use)
			usb4_id_map_put(&index, t->peers[i].id, i);
	usb4_id_map_fini(&t->index);
	t->index = index;
	return 0;
}

static int table_init(struct usb4_peer_table *t, size_t cap)
{
	memset(t, 0, sizeof(*t));
	t->cap = cap;
	t->peers = calloc(cap, sizeof(*t->peers));
	return t->peers ? table_reindex(t) : -FI_ENOMEM;
}

static void table_fini(struct usb4_peer_table *t)
{
	free(t->peers);
	usb4_id_map_fini(&t->index);
	memset(t, 0, sizeof(*t));
}

/* Room for one more entry at peers[count]. */
static int table_reserve(struct usb4_peer_table *t)
{
	struct usb4_peer *peers;
	size_t cap = t->cap ? 2 * t->cap : 8;

	if (t->count < t->cap)
		return 0;
	peers = realloc(t->peers, cap * sizeof(*peers));
	if (!peers)
		return -FI_ENOMEM;
	memset(peers + t->cap, 0, (cap - t->cap) * sizeof(*peers));
	t->peers = peers;
	t->cap = cap;
	t->gen++;
	return table_reindex(t);
}

/* Indexes the entry filled in at peers[i]; an id already there now names
 * it.  Never fails: the index has room for the whole table. */
static size_t table_add(struct usb4_peer_table *t, size_t i)
{
	usb4_id_map_put(&t->index, t->peers[i].id, i);
	t->gen++;
	return i;
}

/* The index of id's entry, or -1. */
static ssize_t table_find(const struct usb4_peer_table *t, uint64_t id)
{
	const uint64_t *i = usb4_id_map_find(&t->index, id);

	return i ? (ssize_t) *i : -1;
}

/* ---- the address vector ---- */

int usb4_core_av_init(struct usb4_core_av *av, size_t count_hint)
{
	av->host_id = usb4_host_id();
	return table_init(&av->t, count_hint ? count_hint : 16);
}

static void peer_close(struct usb4_peer *peer)
{
	usb4_mr_table_view_free(peer->table);
	if (peer->dest)
		usb4_link_kinds[peer->kind]->dest_close(peer->dest);
	peer->table = NULL;
	peer->dest = NULL;
	peer->in_use = false;
}

void usb4_core_av_fini(struct usb4_core_av *av)
{
	for (size_t i = 0; i < av->t.count; i++)
		if (av->t.peers[i].in_use)
			peer_close(&av->t.peers[i]);
	table_fini(&av->t);
}

static int addr_check(const struct usb4_wire_addr *a)
{
	if (!usb4_wire_addr_ok(a) || !a->ep_id)
		return -FI_EINVAL;
	if (a->proto != USB4_WIRE_VERSION) {
		USB4_WARN(FI_LOG_AV, "endpoint %016llx speaks usb4 wire "
			  "version %u, this provider speaks %u: not inserted\n",
			  (unsigned long long) le64toh(a->ep_id), a->proto,
			  USB4_WIRE_VERSION);
		return -FI_ECONNREFUSED;
	}
	return 0;
}

/* The first kind of link that reaches addr from here. */
static int pick_kind(const struct usb4_wire_addr *a, uint64_t host_id)
{
	for (size_t k = 0; k < usb4_link_kind_count; k++)
		if (usb4_link_kinds[k]->reaches(a, host_id))
			return (int) k;
	return -FI_EHOSTUNREACH;
}

/* Opens the way to the peer, and its registrations when its kind reaches
 * them without the peer's CPU. */
static int peer_open(struct usb4_peer *peer, const struct usb4_wire_addr *a,
		     int kind)
{
	const struct usb4_link_ops *ops = usb4_link_kinds[kind];
	int ret = ops->dest_open(a, &peer->dest);
	size_t len = 0;
	void *table;

	if (ret)
		return ret;
	peer->kind = (uint8_t) kind;
	peer->down = 0;
	peer->addr = *a;
	peer->id = le64toh(a->ep_id);
	if (ops->caps & USB4_LINK_CAP_ONE_SIDED) {
		table = ops->peer_table(peer->dest, &len);
		peer->table = usb4_mr_table_view(table, len);
	}
	peer->in_use = true;
	return 0;
}

int usb4_core_av_insert(struct usb4_core_av *av,
			const struct usb4_wire_addr *addr, fi_addr_t *fi_addr)
{
	int kind, ret;

	ret = addr_check(addr);
	if (ret)
		return ret;
	kind = pick_kind(addr, av->host_id);
	if (kind < 0)
		return kind;
	ret = table_reserve(&av->t);
	if (ret)
		return ret;
	ret = peer_open(&av->t.peers[av->t.count], addr, kind);
	if (ret)
		return ret;
	*fi_addr = table_add(&av->t, av->t.count++);
	return 0;
}

int usb4_core_av_remove(struct usb4_core_av *av, fi_addr_t fi_addr)
{
	struct usb4_peer *peer = usb4_core_av_peer(av, fi_addr);

	if (!peer)
		return -FI_EINVAL;
	peer_close(peer);
	av->t.gen++;
	/* Indices are never reused, so removal only has to fix the index. */
	return table_reindex(&av->t);
}

struct usb4_peer *usb4_core_av_peer(struct usb4_core_av *av, fi_addr_t fi_addr)
{
	if (!av || fi_addr >= av->t.count || !av->t.peers[fi_addr].in_use)
		return NULL;
	return &av->t.peers[fi_addr];
}

fi_addr_t usb4_core_av_reverse(const struct usb4_core_av *av, uint64_t ep_id)
{
	ssize_t i = av ? table_find(&av->t, ep_id) : -1;

	return i < 0 ? FI_ADDR_NOTAVAIL : (fi_addr_t) i;
}

/* ---- hidden entries of one endpoint ---- */

static fi_addr_t hidden_addr(const struct usb4_peer_table *h, size_t i)
{
	return USB4_HIDDEN_BIT | i |
	       (fi_addr_t) (h->peers[i].gen & USB4_HIDDEN_GEN_MASK)
			<< USB4_HIDDEN_INDEX_BITS;
}

/* The hidden entry an fi_addr names, if it is still the one it named. */
static struct usb4_peer *hidden_peer(struct usb4_peer_table *h, fi_addr_t a)
{
	size_t i = (size_t) (a & ((1ull << USB4_HIDDEN_INDEX_BITS) - 1));
	uint32_t gen = (uint32_t) (a >> USB4_HIDDEN_INDEX_BITS) &
		       USB4_HIDDEN_GEN_MASK;

	if (i >= h->count || !h->peers[i].in_use ||
	    (h->peers[i].gen & USB4_HIDDEN_GEN_MASK) != gen)
		return NULL;
	return &h->peers[i];
}

/* An unused entry: a freed one, else a new one (-FI_EAGAIN: at the cap or
 * out of memory). */
static int hidden_slot(struct usb4_core_ep *ep, size_t *slot)
{
	struct usb4_peer_table *h = &ep->hidden;

	if (h->free_head) {
		*slot = h->free_head - 1;
		h->free_head = h->peers[*slot].next_free;
		return 0;
	}
	if (h->count >= USB4_HIDDEN_MAX) {
		ep->stats.hidden_full++;
		return -FI_EAGAIN;
	}
	if (table_reserve(h))
		return -FI_EAGAIN;
	*slot = h->count++;
	return 0;
}

static fi_addr_t hidden_add(struct usb4_core_ep *ep, uint8_t kind,
			    uint64_t id, int *err)
{
	struct usb4_peer_table *h = &ep->hidden;
	struct usb4_link *link = ep->links[kind].link;
	struct usb4_link_dest *dest = link->ops->dest_of ?
				      link->ops->dest_of(link, id) : NULL;
	size_t i;

	if (!dest)
		return FI_ADDR_NOTAVAIL;
	if (hidden_slot(ep, &i)) {
		*err = -FI_EAGAIN;
		return FI_ADDR_NOTAVAIL;
	}
	h->peers[i] = (struct usb4_peer) {
		.id = id, .kind = kind, .in_use = true, .dest = dest,
		.gen = h->peers[i].gen,
	};
	return hidden_addr(h, table_add(h, i));
}

static fi_addr_t hidden_find(const struct usb4_peer_table *h, uint64_t id)
{
	ssize_t i = table_find(h, id);

	return i < 0 ? FI_ADDR_NOTAVAIL : hidden_addr(h, (size_t) i);
}

fi_addr_t usb4_hidden_of(struct usb4_core_ep *ep, uint8_t kind, uint64_t id)
{
	fi_addr_t a = hidden_find(&ep->hidden, id);
	struct usb4_peer *peer = usb4_peer_of(ep, a);

	return peer && peer->kind == kind ? a : FI_ADDR_NOTAVAIL;
}

void usb4_hidden_free(struct usb4_core_ep *ep, fi_addr_t a)
{
	struct usb4_peer_table *h = &ep->hidden;
	struct usb4_peer *peer = (a & USB4_HIDDEN_BIT) ? hidden_peer(h, a) :
							  NULL;

	if (!peer)
		return;
	usb4_id_map_remove(&h->index, peer->id);
	peer->in_use = false;
	peer->dest = NULL;	/* the link's, and going */
	peer->gen++;
	peer->next_free = h->free_head;
	h->free_head = (uint32_t) (peer - h->peers) + 1;
	h->gen++;
	ep->stats.hidden_freed++;
}

void usb4_hidden_fini(struct usb4_peer_table *hidden)
{
	/* The dests belong to the links (dest_of). */
	table_fini(hidden);
}

/* ---- lookups ---- */

struct usb4_peer *usb4_peer_of(struct usb4_core_ep *ep, fi_addr_t fi_addr)
{
	if (fi_addr == FI_ADDR_NOTAVAIL || fi_addr == FI_ADDR_UNSPEC)
		return NULL;
	if (fi_addr & USB4_HIDDEN_BIT)
		return hidden_peer(&ep->hidden, fi_addr);
	return usb4_core_av_peer(ep->av, fi_addr);
}

struct usb4_link *usb4_peer_link(struct usb4_core_ep *ep,
				 const struct usb4_peer *peer)
{
	return peer ? ep->links[peer->kind].link : NULL;
}

/* The entry named by id, of any kind (FI_ADDR_NOTAVAIL: none). */
static fi_addr_t entry_of(struct usb4_core_ep *ep, uint64_t id)
{
	fi_addr_t a = usb4_core_av_reverse(ep->av, id);

	return a != FI_ADDR_NOTAVAIL ? a : hidden_find(&ep->hidden, id);
}

/* a if it is reached over this kind of link, else FI_ADDR_NOTAVAIL. */
static fi_addr_t of_kind(struct usb4_core_ep *ep, fi_addr_t a, uint8_t kind)
{
	struct usb4_peer *peer = usb4_peer_of(ep, a);

	return peer && peer->kind == kind ? a : FI_ADDR_NOTAVAIL;
}

fi_addr_t usb4_peer_find(struct usb4_core_ep *ep, uint8_t kind, uint64_t id)
{
	return of_kind(ep, entry_of(ep, id), kind);
}

fi_addr_t usb4_peer_resolve(struct usb4_core_ep *ep, uint8_t kind,
			    uint64_t id, int *err)
{
	fi_addr_t a = entry_of(ep, id);

	*err = 0;
	/* Known by that id over another kind of link: nobody. */
	if (a != FI_ADDR_NOTAVAIL)
		return of_kind(ep, a, kind);
	return hidden_add(ep, kind, id, err);
}

bool usb4_same_peer(struct usb4_core_ep *ep, fi_addr_t a, fi_addr_t b)
{
	struct usb4_peer *pa, *pb;

	if (a == b)
		return true;
	pa = usb4_peer_of(ep, a);
	pb = usb4_peer_of(ep, b);
	return pa && pb && pa->id == pb->id && pa->kind == pb->kind;
}

fi_addr_t usb4_report_src_hidden(struct usb4_core_ep *ep, fi_addr_t a)
{
	struct usb4_peer *peer, *inserted;
	fi_addr_t b;

	peer = usb4_peer_of(ep, a);
	b = peer ? usb4_core_av_reverse(ep->av, peer->id) : FI_ADDR_NOTAVAIL;
	inserted = usb4_core_av_peer(ep->av, b);
	return inserted && inserted->kind == peer->kind ? b : FI_ADDR_NOTAVAIL;
}

bool usb4_peer_may_access(struct usb4_core_ep *ep, fi_addr_t src)
{
	struct usb4_link *link;

	if (!(src & USB4_HIDDEN_BIT))
		return usb4_core_av_peer(ep->av, src) != NULL;
	link = usb4_peer_link(ep, usb4_peer_of(ep, src));
	return link && link->authenticated;
}
