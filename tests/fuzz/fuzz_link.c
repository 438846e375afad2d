/*
 * The two link kinds of the core fuzz target (see fuzz_link.h), and the
 * registry the core picks them from (usb4_link_kinds).  One process, one
 * endpoint: each kind has at most one link open at a time, so the state is
 * a table indexed by kind.
 */
#include <endian.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_assert.h"
#include "fuzz_link.h"
#include "../../prov_usb4/src/wire.h"

#define PEERS_DOWN_MAX	8	/* peers a run can declare down */
#define PATTERN		0xb5	/* what bulk_read "copies" */

struct usb4_link_dest {
	uint64_t id;
	struct usb4_link_dest *next;	/* dest_of's, in the link's list */
};

struct fuzz_link {
	struct usb4_link base;
	unsigned kind;
	uint64_t ep_id;
	struct usb4_link_dest *hidden;	/* handed out by dest_of */
};

/* Guarded by nothing: the target is single-threaded. */
static struct {
	struct fuzz_link *open[FUZZ_LINK_KINDS];
	int room[FUZZ_LINK_KINDS];
	struct { unsigned kind; uint64_t id; int err; } down[PEERS_DOWN_MAX];
	size_t n_down;
	int bulk_err;
	size_t n_open;			/* links and dests */
	fuzz_post_hook hook;
} fz;

static struct fuzz_link *fl(struct usb4_link *link)
{
	return usb4_container_of(link, struct fuzz_link, base);
}

/* ---- the harness's side ---- */

void fuzz_link_reset(fuzz_post_hook hook)
{
	for (unsigned k = 0; k < FUZZ_LINK_KINDS; k++)
		fz.room[k] = FUZZ_ROOM_UNLIMITED;
	fz.n_down = 0;
	fz.bulk_err = 0;
	fz.hook = hook;
}

struct usb4_link *fuzz_link_of(unsigned kind)
{
	return kind < FUZZ_LINK_KINDS && fz.open[kind] ?
	       &fz.open[kind]->base : NULL;
}

int fuzz_link_deliver(unsigned kind, uint64_t from, const struct iovec *iov,
		      int count)
{
	struct usb4_link *link = fuzz_link_of(kind);

	if (!link)
		return 0;
	return link->sink.frame(link->sink.ctx, link, from, iov, count);
}

static int peer_err(unsigned kind, uint64_t id)
{
	for (size_t i = 0; i < fz.n_down; i++)
		if (fz.down[i].kind == kind && fz.down[i].id == id)
			return fz.down[i].err;
	return 0;
}

void fuzz_link_peer_down(unsigned kind, uint64_t peer, int err)
{
	struct usb4_link *link = fuzz_link_of(kind);

	/* A link reports a death once. */
	if (!link || peer_err(kind, peer) || fz.n_down == PEERS_DOWN_MAX)
		return;
	fz.down[fz.n_down].kind = kind;
	fz.down[fz.n_down].id = peer;
	fz.down[fz.n_down++].err = err;
	link->sink.peer_down(link->sink.ctx, link, peer, err);
}

void fuzz_link_set_room(unsigned kind, int room)
{
	fz.room[kind % FUZZ_LINK_KINDS] = room;
}

void fuzz_link_set_bulk_err(int err)
{
	fz.bulk_err = err;
}

size_t fuzz_link_open_count(void)
{
	return fz.n_open;
}

void fuzz_link_addr(struct usb4_wire_addr *addr, unsigned kind,
		    uint64_t ep_id)
{
	usb4_wire_addr_init(addr, 0, ep_id);
	addr->udp_family = FUZZ_FAMILY;
	memcpy(addr->udp_ip, "fuzz", 4);
	addr->udp_ip[FUZZ_ADDR_KIND_AT] = (uint8_t) kind;
}

/* ---- dests ---- */

static struct usb4_link_dest *dest_new(uint64_t id)
{
	struct usb4_link_dest *d = calloc(1, sizeof(*d));

	if (d) {
		d->id = id;
		fz.n_open++;
	}
	return d;
}

static void dest_free(struct usb4_link_dest *d)
{
	fz.n_open--;
	free(d);
}

static int dest_open(const struct usb4_wire_addr *addr,
		     struct usb4_link_dest **dest)
{
	*dest = dest_new(le64toh(addr->ep_id));
	return *dest ? 0 : -FI_ENOMEM;
}

static struct usb4_link_dest *dest_of(struct usb4_link *link, uint64_t peer)
{
	struct fuzz_link *l = fl(link);
	struct usb4_link_dest *d;

	for (d = l->hidden; d; d = d->next)
		if (d->id == peer)
			return d;
	d = dest_new(peer);
	if (d) {
		d->next = l->hidden;
		l->hidden = d;
	}
	return d;
}

/* ---- a kind, before any endpoint ---- */

static bool available(void)
{
	return true;
}

static bool reaches_kind(const struct usb4_wire_addr *addr, unsigned kind)
{
	return addr->udp_family == FUZZ_FAMILY &&
	       !memcmp(addr->udp_ip, "fuzz", 4) &&
	       addr->udp_ip[FUZZ_ADDR_KIND_AT] == kind;
}

static bool reaches_frames(const struct usb4_wire_addr *a, uint64_t host_id)
{
	return reaches_kind(a, FUZZ_KIND_FRAMES);
}

static bool reaches_bulk(const struct usb4_wire_addr *a, uint64_t host_id)
{
	return reaches_kind(a, FUZZ_KIND_BULK);
}

/* ---- one link ---- */

static int open_kind(const struct usb4_link_cfg *cfg, struct usb4_link **link,
		     unsigned kind, const struct usb4_link_ops *ops)
{
	struct fuzz_link *l;

	FUZZ_ASSERT(!fz.open[kind]);	/* one endpoint at a time */
	l = calloc(1, sizeof(*l));
	if (!l)
		return -FI_ENOMEM;
	l->base.ops = ops;
	l->base.sink = cfg->sink;
	l->kind = kind;
	l->ep_id = cfg->ep_id;
	fz.open[kind] = l;
	fz.n_open++;
	*link = &l->base;
	return 0;
}

static void link_close(struct usb4_link *link)
{
	struct fuzz_link *l = fl(link);

	while (l->hidden) {
		struct usb4_link_dest *d = l->hidden;

		l->hidden = d->next;
		dest_free(d);
	}
	fz.open[l->kind] = NULL;
	fz.n_open--;
	free(l);
}

static void link_addr(const struct usb4_link *link, struct usb4_wire_addr *a)
{
	a->udp_family = FUZZ_FAMILY;
	memcpy(a->udp_ip, "fuzz", 4);
	a->udp_ip[FUZZ_ADDR_KIND_AT] = (uint8_t) fl((struct usb4_link *) link)->kind;
}

static size_t frame_max(const struct usb4_link *link,
			const struct usb4_link_dest *dest)
{
	return FUZZ_LINK_FRAME_MAX;
}

/* The frame in one buffer of exactly its size (ASan sees its bounds); every
 * byte the core points at is read. */
static unsigned char *gather(const struct iovec *iov, int count, size_t *len)
{
	size_t n = usb4_iov_len(iov, (size_t) count), off = 0;
	unsigned char *buf = malloc(n ? n : 1);

	FUZZ_ASSERT(buf);
	for (int i = 0; i < count; i++) {
		FUZZ_ASSERT(iov[i].iov_base || !iov[i].iov_len);
		if (iov[i].iov_len)
			memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	*len = n;
	return buf;
}

/* What the core may put on a cable: a frame that parses, from itself. */
static void check_posted(const struct fuzz_link *l, const unsigned char *buf,
			 size_t len)
{
	struct usb4_frame f;

	FUZZ_ASSERT(len <= FUZZ_LINK_FRAME_MAX);
	FUZZ_ASSERT(usb4_wire_parse(buf, len, &f) == USB4_WIRE_OK);
	FUZZ_ASSERT(f.src_id == l->ep_id);
}

static int post(struct usb4_link *link, struct usb4_link_dest *dest,
		const struct iovec *iov, int count)
{
	struct fuzz_link *l = fl(link);
	int err = peer_err(l->kind, dest->id);
	unsigned char *buf;
	size_t len;

	FUZZ_ASSERT(count >= 1);
	buf = gather(iov, count, &len);
	if (len > FUZZ_LINK_FRAME_MAX) {
		free(buf);
		return -FI_EMSGSIZE;
	}
	check_posted(l, buf, len);
	if (!err && !fz.room[l->kind])
		err = -FI_EAGAIN;
	if (!err) {
		if (fz.room[l->kind] > 0)
			fz.room[l->kind]--;
		if (fz.hook)
			fz.hook(l->kind, dest->id, buf, len);
	}
	free(buf);
	return err;
}

static int poll_none(struct usb4_link *link, int budget)
{
	return 0;		/* frames come from the harness */
}

static int peer_state(struct usb4_link *link, struct usb4_link_dest *dest)
{
	return peer_err(fl(link)->kind, dest->id);
}

static int wait_fd(const struct usb4_link *link)
{
	return -1;
}

static int64_t timer_us(const struct usb4_link *link)
{
	return -1;
}

static bool sleep_begin(struct usb4_link *link)
{
	return false;
}

static void sleep_end(struct usb4_link *link)
{
}

/* ---- bulk access (FUZZ_KIND_BULK) ---- */

static void check_bulk(const struct iovec *local, size_t local_count,
		       const struct iovec *remote, size_t remote_count,
		       size_t len)
{
	FUZZ_ASSERT(local_count <= USB4_IOV_LIMIT);
	FUZZ_ASSERT(len <= usb4_iov_len(local, local_count));
	FUZZ_ASSERT(len <= usb4_iov_len(remote, remote_count));
}

static int bulk_read(struct usb4_link_dest *dest, const struct iovec *local,
		     size_t local_count, const struct iovec *remote,
		     size_t remote_count, size_t len)
{
	check_bulk(local, local_count, remote, remote_count, len);
	if (fz.bulk_err)
		return fz.bulk_err;
	for (size_t i = 0; i < local_count && len; i++) {
		size_t n = local[i].iov_len < len ? local[i].iov_len : len;

		memset(local[i].iov_base, PATTERN, n);
		len -= n;
	}
	return 0;
}

static int bulk_write(struct usb4_link_dest *dest, const struct iovec *local,
		      size_t local_count, const struct iovec *remote,
		      size_t remote_count, size_t len)
{
	size_t n;

	check_bulk(local, local_count, remote, remote_count, len);
	free(gather(local, (int) local_count, &n));
	return fz.bulk_err;
}

static void *peer_table(struct usb4_link_dest *dest, size_t *len)
{
	*len = 0;
	return NULL;
}

static void count_remote(struct usb4_link_dest *dest, bool write)
{
}

static void remote_counts(const struct usb4_link *link, uint64_t *writes,
			  uint64_t *reads)
{
	*writes = 0;
	*reads = 0;
}

/* ---- the registry ---- */

static const struct usb4_link_ops frames_ops, bulk_ops;

static int open_frames(const struct usb4_link_cfg *cfg, struct usb4_link **l)
{
	return open_kind(cfg, l, FUZZ_KIND_FRAMES, &frames_ops);
}

static int open_bulk(const struct usb4_link_cfg *cfg, struct usb4_link **l)
{
	return open_kind(cfg, l, FUZZ_KIND_BULK, &bulk_ops);
}

#define FUZZ_COMMON_OPS \
	.other_hosts = true, .available = available, \
	.dest_open = dest_open, .dest_close = dest_free, \
	.close = link_close, .addr = link_addr, .frame_max = frame_max, \
	.post = post, .poll = poll_none, .peer_state = peer_state, \
	.dest_of = dest_of, .wait_fd = wait_fd, .timer_us = timer_us, \
	.sleep_begin = sleep_begin, .sleep_end = sleep_end

static const struct usb4_link_ops frames_ops = {
	.name = "fuzz-frames",
	.caps = 0,
	.reaches = reaches_frames,
	.open = open_frames,
	FUZZ_COMMON_OPS,
};

static const struct usb4_link_ops bulk_ops = {
	.name = "fuzz-bulk",
	.caps = USB4_LINK_CAP_BULK_READ | USB4_LINK_CAP_ONE_SIDED,
	.reaches = reaches_bulk,
	.open = open_bulk,
	.bulk_read = bulk_read,
	.bulk_write = bulk_write,
	.peer_table = peer_table,
	.count_remote = count_remote,
	.remote_counts = remote_counts,
	FUZZ_COMMON_OPS,
};

const struct usb4_link_ops *const usb4_link_kinds[] = {
	&frames_ops, &bulk_ops, NULL,
};
const size_t usb4_link_kind_count = FUZZ_LINK_KINDS;
