/*
 * rel's datagram size per session, and seqs sent as fragments when a frame
 * no longer fits it (see usb4_rel_frag.h).  No system calls: the link
 * re-reads its interface's MTU and says so through usb4_rel_io.path_max.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_rel_frag.h"
#include "../wire.h"

#define FRAG_HDR	sizeof(struct usb4_wire_frag)
#define FRAG_UNIT	USB4_WIRE_FRAG_UNIT
#define FRAG_PIECES	(USB4_REL_REF_MAX + 2)	/* header and a payload slice */

/*
 * Datagram sizes a shrinking path steps down to when the link cannot say
 * the new one: the MTUs paths really have (jumbo 9000, Ethernet 1500, IPv6's
 * minimum 1280), less IPv6's and UDP's headers (so IPv4 fits too).
 * Stepping to the next one costs one detection per step, where halving
 * from 65 KiB to Ethernet would take six.
 */
static const uint32_t usb4_rel_plateaus[] = {
	9000 - 48, 1500 - 48, USB4_REL_PATH_FLOOR,
};

/* ---- the session's datagram size ---- */

void usb4_rel_path_init(struct usb4_rel_path *p, uint32_t local_max,
			uint32_t overhead)
{
	*p = (struct usb4_rel_path) { .max = local_max, .known = local_max,
				      .overhead = overhead };
}

void usb4_rel_path_learn(struct usb4_rel_path *p, uint32_t peer_max,
			 uint32_t peer_features)
{
	/* A peer that says less than a header's worth says nonsense: its
	 * datagrams are then bounded by ours alone. */
	if (peer_max > p->overhead + FRAG_HDR + FRAG_UNIT && peer_max < p->max)
		p->max = peer_max;
	p->known = p->max;
	p->frag = peer_features & USB4_WIRE_FEATURE_FRAG;
}

size_t usb4_rel_path_room(const struct usb4_rel_path *p)
{
	return p->max > p->overhead ? p->max - p->overhead : 0;
}

bool usb4_rel_path_frags(const struct usb4_rel_path *p, size_t len)
{
	return p->frag && len > usb4_rel_path_room(p);
}

/* Payload bytes a fragment carries: whole units, except the last. */
static size_t usb4_rel_frag_chunk(const struct usb4_rel_path *p)
{
	size_t room = usb4_rel_path_room(p);

	return room > FRAG_HDR ? (room - FRAG_HDR) / FRAG_UNIT * FRAG_UNIT : 0;
}

uint32_t usb4_rel_path_dgram(const struct usb4_rel_path *p, size_t len)
{
	if (usb4_rel_path_frags(p, len))
		return (uint32_t) (p->overhead + FRAG_HDR +
				   usb4_rel_frag_chunk(p));
	return (uint32_t) (p->overhead + len);
}

/* The next common size below dgram; 0 at the floor. */
static uint32_t usb4_rel_plateau_below(uint32_t dgram)
{
	for (size_t i = 0; i < sizeof(usb4_rel_plateaus) /
			       sizeof(usb4_rel_plateaus[0]); i++)
		if (usb4_rel_plateaus[i] < dgram)
			return usb4_rel_plateaus[i];
	return 0;
}

bool usb4_rel_path_shrink(struct usb4_rel_path *p, uint32_t dgram,
			  uint32_t limit, uint64_t remote_id, const char *why,
			  struct usb4_rel_stats *st)
{
	uint32_t cur = dgram < p->max ? dgram : p->max;
	uint32_t next = limit && limit < cur ? limit :
			usb4_rel_plateau_below(cur);

	/* Room for at least one unit per fragment, or nothing moves. */
	if (next <= p->overhead + FRAG_HDR + FRAG_UNIT || next >= p->max)
		return false;
	USB4_WARN(FI_LOG_EP_DATA, "peer %016llx: path shrank, datagrams of at "
		  "most %u bytes from now (were %u): %s\n",
		  (unsigned long long) remote_id, next, p->max, why);
	p->max = next;
	if (limit && limit < cur)	/* the interface says so: known */
		p->known = next;
	st->path_shrinks++;
	return true;
}

void usb4_rel_path_guessed(struct usb4_rel_path *p, uint64_t now)
{
	if (!p->raise_ns)
		p->raise_ns = USB4_REL_PATH_RAISE_FIRST_NS;
	else if (p->raised && p->raise_ns < USB4_REL_PATH_RAISE_MAX_NS)
		p->raise_ns *= 2;
	p->raised = false;
	p->raise_at = now + p->raise_ns;
}

bool usb4_rel_path_raise(struct usb4_rel_path *p, uint64_t now,
			 uint64_t remote_id, struct usb4_rel_stats *st)
{
	if (!p->raise_at || now < p->raise_at)
		return false;
	p->raise_at = 0;
	if (p->max >= p->known)
		return false;
	USB4_INFO(FI_LOG_EP_DATA, "peer %016llx: path tried at %u bytes again "
		  "(shrank to %u by a guess)\n", (unsigned long long) remote_id,
		  p->known, p->max);
	p->max = p->known;
	p->raised = true;
	st->path_raises++;
	return true;
}

/* ---- sending a seq as fragments ---- */

int usb4_rel_frag_send(const struct usb4_rel_path *p,
		       const struct iovec *payload, int count, size_t len,
		       usb4_rel_frag_emit_fn emit, void *ctx,
		       struct usb4_rel_stats *st)
{
	size_t chunk = usb4_rel_frag_chunk(p);
	struct usb4_wire_frag fh = { .total = htole32((uint32_t) len) };
	struct iovec iov[FRAG_PIECES];

	if (!chunk)
		return -FI_EMSGSIZE;
	iov[0] = (struct iovec) { .iov_base = &fh, .iov_len = sizeof(fh) };
	for (size_t off = 0; off < len; off += chunk) {
		size_t take = len - off < chunk ? len - off : chunk;
		int n = usb4_iov_slice(payload, (size_t) count, off, take,
				       iov + 1, FRAG_PIECES - 1);
		int ret;

		fh.offset = htole32((uint32_t) off);
		ret = emit(ctx, iov, n + 1);
		if (ret && !off)
			return ret;
		if (ret)
			return 0;	/* lost on the way: the seq goes again */
		st->frag_sent++;
	}
	return 0;
}

/* ---- putting a seq together ---- */

/* A seq partly held: total bytes, then a bitmap of the units held. */
struct usb4_rel_reasm {
	uint32_t seq, total, have;	/* have: units held */
	unsigned char *buf;		/* NULL: the slot holds nothing */
};

static uint32_t usb4_rel_units(uint32_t bytes)
{
	return (bytes + FRAG_UNIT - 1) / FRAG_UNIT;
}

void usb4_rel_frags_init(struct usb4_rel_frags *f, struct usb4_rel_pool *pool,
			 size_t payload_max, uint32_t slots)
{
	*f = (struct usb4_rel_frags) {
		.pool = pool, .slots = slots,
		.total_max = payload_max > USB4_REL_FRAG_TOTAL_MAX ?
			     payload_max : USB4_REL_FRAG_TOTAL_MAX,
	};
}

static void usb4_rel_reasm_drop(struct usb4_rel_frags *f,
				struct usb4_rel_reasm *r)
{
	if (!r->buf)
		return;
	usb4_rel_pool_put(f->pool, r->buf);
	r->buf = NULL;
	f->busy--;
}

/* Copies len bytes from offset off of the pieces (the caller checked that
 * they exist). */
static void usb4_rel_frag_gather(void *dst, const struct iovec *payload,
				 int count, size_t off, size_t len)
{
	struct iovec part[USB4_REL_PIECES_MAX];
	int n = usb4_iov_slice(payload, (size_t) count, off, len, part,
			       USB4_REL_PIECES_MAX);
	char *d = dst;

	for (int i = 0; i < n; i++) {
		memcpy(d, part[i].iov_base, part[i].iov_len);
		d += part[i].iov_len;
	}
}

/* A fragment's header, checked against the datagram and our limits:
 * false when it lies outside its total, breaks the unit rule or names a
 * total we never take. */
static bool usb4_rel_frag_header(const struct usb4_rel_frags *f,
				 const struct iovec *payload, int count,
				 size_t len, uint32_t *off, uint32_t *total)
{
	struct usb4_wire_frag fh;
	size_t flen;

	if (len <= FRAG_HDR)
		return false;
	usb4_rel_frag_gather(&fh, payload, count, 0, FRAG_HDR);
	*off = le32toh(fh.offset);
	*total = le32toh(fh.total);
	flen = len - FRAG_HDR;
	return *total && *total <= f->total_max && !(*off % FRAG_UNIT) &&
	       *off < *total && flen <= *total - *off &&
	       (*off + flen == *total || !(flen % FRAG_UNIT));
}

/* The slot for seq: the one holding it, else a fresh buffer (a stale seq
 * in the slot is forgotten: rel's window never spans two of a slot). */
static struct usb4_rel_reasm *usb4_rel_reasm_get(struct usb4_rel_frags *f,
						 uint32_t seq, uint32_t total,
						 int *err)
{
	struct usb4_rel_reasm *r = &f->slot[seq & (f->slots - 1)];
	size_t bitmap = (usb4_rel_units(total) + 7) / 8;

	if (r->buf && r->seq == seq) {
		*err = r->total == total ? 0 : -FI_EINVAL;
		return r;
	}
	usb4_rel_reasm_drop(f, r);
	r->buf = usb4_rel_pool_get(f->pool, (size_t) total + bitmap);
	if (!r->buf && f->busy) {
		usb4_rel_frags_yield(f, seq);
		r->buf = usb4_rel_pool_get(f->pool, (size_t) total + bitmap);
	}
	if (!r->buf) {
		*err = -FI_EAGAIN;
		return r;
	}
	memset(r->buf + total, 0, bitmap);
	r->seq = seq;
	r->total = total;
	r->have = 0;
	f->busy++;
	*err = 0;
	return r;
}

/* Marks units [first, end) held; returns how many were new. */
static uint32_t usb4_rel_reasm_mark(struct usb4_rel_reasm *r, uint32_t first,
				    uint32_t end)
{
	unsigned char *bits = r->buf + r->total;
	uint32_t fresh = 0;

	for (uint32_t u = first; u < end; u++) {
		if (bits[u / 8] & (1u << (u % 8)))
			continue;
		bits[u / 8] |= (unsigned char) (1u << (u % 8));
		fresh++;
	}
	return fresh;
}

int usb4_rel_frag_take(struct usb4_rel_frags *f, uint32_t seq,
		       const struct iovec *payload, int count, size_t len,
		       struct iovec *whole, struct usb4_rel_stats *st)
{
	struct usb4_rel_reasm *r;
	uint32_t off, total, flen;
	int err;

	if (!usb4_rel_frag_header(f, payload, count, len, &off, &total))
		return -FI_EINVAL;
	if (!f->slot && !(f->slot = calloc(f->slots, sizeof(*f->slot))))
		return -FI_EAGAIN;
	r = usb4_rel_reasm_get(f, seq, total, &err);
	if (err)
		return err;
	flen = (uint32_t) (len - FRAG_HDR);
	usb4_rel_frag_gather(r->buf + off, payload, count, FRAG_HDR, flen);
	r->have += usb4_rel_reasm_mark(r, off / FRAG_UNIT,
				       usb4_rel_units(off + flen));
	st->frag_received++;
	if (r->have < usb4_rel_units(total))
		return -FI_EINPROGRESS;
	*whole = (struct iovec) { .iov_base = r->buf, .iov_len = total };
	r->buf = NULL;		/* the caller's now */
	f->busy--;
	return 0;
}

void usb4_rel_frags_yield(struct usb4_rel_frags *f, uint32_t keep)
{
	for (uint32_t i = 0; f->busy && i < f->slots; i++)
		if (f->slot[i].buf && f->slot[i].seq != keep)
			usb4_rel_reasm_drop(f, &f->slot[i]);
}

void usb4_rel_frags_trim(struct usb4_rel_frags *f)
{
	if (f->busy)
		return;
	free(f->slot);
	f->slot = NULL;
}

void usb4_rel_frags_close(struct usb4_rel_frags *f)
{
	for (uint32_t i = 0; f->slot && i < f->slots; i++)
		usb4_rel_reasm_drop(f, &f->slot[i]);
	free(f->slot);
	f->slot = NULL;
}
