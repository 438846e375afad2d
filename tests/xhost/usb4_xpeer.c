/*
 * usb4_xpeer: cross-host robustness workloads for the usb4 provider, at the
 * libfabric level.  Two processes, one per host, meet through files in a
 * shared folder; tests/multihost/test_xhost_fabric.py drives them.
 *
 *   usb4_xpeer server|client transfer --dir D --bytes N [--seed S]
 *   usb4_xpeer server|client pending  --dir D
 *   usb4_xpeer server|client mrclose  --dir D
 *   usb4_xpeer server|client mrwrite  --dir D
 *   common: [--window W] [--timeout SEC]
 *   transfer only: [--rogue] [--max-msg N] [--fixed-len N]
 *
 * transfer  The client follows a plan both sides derive from (N, seed): a
 *           mix of tagged sends (1 B .. 4 MiB: eager and rendezvous) and
 *           RMA writes (64 KiB .. 1 MiB) into the server's 8 MiB region, W
 *           operations in flight.  Every message's content is a function
 *           of its sequence number, which its first bytes carry: the server
 *           checks each message against the plan (a lost, doubled or
 *           reordered message shows up as the wrong sequence in the wrong
 *           receive) and both sides keep FNV-1a-64 (over 8-byte words) of
 *           all message payload in order.  At the end the client reads the
 *           whole region back with fi_read and compares it with its mirror,
 *           sends END (counts and checksums); the server checks its region,
 *           makes sure no extra message follows, answers RESULT.  The
 *           client creates D/connected when its first write completes (the
 *           server has answered it).  --max-msg N: messages up to N bytes
 *           (4 MiB by default; the second op is one of N); --fixed-len N:
 *           only tagged sends of N bytes (a bandwidth figure at that size).
 *           With --rogue (tests/multihost/test_rogue_host.py: a third host
 *           attacks the two), the server also registers a guard region
 *           (GUARD_LEN bytes of guard_byte(), remote read and write) that
 *           nobody in the job touches and posts a bait receive (tag
 *           TAG_BAIT from any source) that nobody in the job sends to;
 *           both are published in D/server.info for the attacker.  The
 *           client waits for D/go before its first operation (the
 *           attacker may race the handshake first), and halfway through
 *           the plan, with nothing in flight, creates D/midway and reads
 *           the server's region back 64 KiB at a time, checking each read
 *           against its mirror, until D/attack.done exists: live traffic
 *           while the attack runs.  At the end the server prints one
 *           "rogue:" line (guard intact or how many bytes changed, what
 *           became of the bait, remote-write completions seen), writes
 *           what the bait received to D/bait.bin, and fails if the guard
 *           changed or a remote write completed.
 *
 * pending   The client leaves operations pending on the server (rendezvous
 *           sends the server never matches, a stream of fi_read/fi_write, a
 *           directed fi_trecv), prints "armed" and creates D/armed, then
 *           watches the server's pid.  When the test SIGKILLs the server the
 *           client measures how long each pending op takes to complete
 *           with an error; it passes if every pending send, RMA op and the
 *           directed receive fails
 *           (FI_EHOSTUNREACH or FI_EIO) within FI_USB4_PEER_TIMEOUT + 1 s.
 *
 * pulled    The same ops pending, but the cable is pulled (the test takes the
 *           interfaces down and writes the time it did, CLOCK_REALTIME
 *           seconds, into D/pulled): every op the client has pending fails
 *           within FI_USB4_PEER_TIMEOUT + 1 s of the pull, and so does the
 *           server's receive directed at the client (the side that only
 *           receives: it learns of the dead peer by its probes).  Each side
 *           prints "pulled: OK" or "pulled: FAIL" and exits 0 or 1.
 *
 * mrclose  The client reads the server's whole region (8 MiB) in one fi_read.
 *           The server watches its remote-read counter (FI_RMA_EVENT) and,
 *           the moment it ticks (the response is posted, much of it not yet
 *           acknowledged), closes the region, printing how long fi_close
 *           took; then it serves on until the client, having checked every
 *           byte it read, says END.
 *
 * mrwrite  The client writes 256 MiB into the server's 256 MiB region in
 *           one fi_write.  The server progresses until the stream has
 *           reached 1 MiB into the region, closes the region (printing how
 *           long fi_close took), at once fills the buffer with its own
 *           pattern (as an allocator handing the memory out again would),
 *           and keeps progressing.  The client prints how its write
 *           completed (success, an error, or none within 20 s) and puts
 *           that in D/client.result; the server progresses 1 s more, then
 *           checks every byte of its pattern, prints how many bytes differ
 *           (and how many of those hold the client's data) and creates
 *           D/server.done, which the client waits for before it closes.
 *
 * Exit: 0 everything matched (mrwrite: ran to the end, the test judges
 * its figures); 1 a check failed; 2 usage or setup; 124 the
 * watchdog fired.  Provider: FI_PROVIDER_PATH, FI_USB4_IFACE as usual.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <rdma/fi_tagged.h>

#include "xhost_common.h"

#define MAX_MSG_DEFAULT	(4u << 20)	/* largest tagged message, bytes */
#define MAX_MSG_LIMIT	(64u << 20)	/* --max-msg at most */
#define EAGER_MAX	8192u		/* provider's default eager limit */
#define REGION		(1u << 20)	/* one RMA write region, bytes */
#define NREGIONS	8		/* server's RMA buffer = NREGIONS * REGION */
#define RMA_LEN		((size_t) NREGIONS * REGION)
#define MAX_WINDOW	32

#define TAG_DATA	0x1000
#define TAG_END		0x1001
#define TAG_RESULT	0x1002
#define TAG_STUCK	0x2000		/* pending: the server never receives it */
#define TAG_NEVER	0x2001		/* pending: nobody ever sends it */
#define TAG_BAIT	0x3000		/* rogue: only an attacker sends it */

#define GUARD_LEN	(64u << 10)	/* rogue: the region nobody may touch */
#define BAIT_LEN	(64u << 10)	/* rogue: the bait receive's buffer */
#define LIVE_READ	(64u << 10)	/* rogue: one read while under attack */
#define ATTACK_MAX_S	120.0		/* rogue: longest wait for a file */

#define KILL_GRACE_S	1.0	/* pending: allowed beyond the peer timeout */
#define LANDED_S	0.25	/* pending: an RMA op may still succeed this
				 * long after the kill (it landed before) */

/* ---- small helpers ---------------------------------------------------- */

/* splitmix64: the plan and every payload come from it. */
static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#define FNV_OFFSET	0xcbf29ce484222325ull
#define FNV_PRIME	0x100000001b3ull

/* FNV-1a, 64 bit, over little-endian 8-byte words then the tail bytes. */
static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		h = (h ^ w) * FNV_PRIME;
	}
	for (; i < len; i++)
		h = (h ^ b[i]) * FNV_PRIME;
	return h;
}

/* The bytes of plan op i; a message carries its sequence number first. */
static void fill(void *buf, size_t len, uint64_t seed, uint64_t op, int64_t seq)
{
	uint64_t s = seed ^ (op * 0xd1b54a32d192ed03ull), w;
	unsigned char *p = buf;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		w = mix(&s);
		memcpy(p + i, &w, 8);
	}
	w = mix(&s);
	memcpy(p + i, &w, len - i);
	if (seq >= 0) {
		uint64_t le = htole64((uint64_t) seq);
		memcpy(p, &le, len < 8 ? len : 8);
	}
}

/* ---- the plan ---------------------------------------------------------- */

enum op_kind { OP_SEND, OP_WRITE };

/* transfer --max-msg: the largest tagged message (and the first op);
 * --fixed-len: every op a tagged send of that many bytes (a bandwidth
 * figure at one size), 0: the mix. */
static size_t max_msg = MAX_MSG_DEFAULT;
static size_t fixed_len;

struct plan_op {
	enum op_kind kind;
	size_t len;
	int64_t seq;		/* OP_SEND: message sequence number */
	int region;		/* OP_WRITE: region and offset in it */
	size_t off;
};

struct plan {
	struct plan_op *op;
	size_t nops, nsends, *send_op;	/* send_op[seq]: its index in op[] */
	uint64_t msg_bytes, rma_bytes;
};

static size_t send_len(uint64_t *s)
{
	uint64_t r = mix(s) % 10;

	if (r < 4) {		/* eager: log-uniform 1 .. EAGER_MAX */
		size_t top = (size_t) 1 << (mix(s) % 14);
		size_t len = 1 + mix(s) % top;
		return len > EAGER_MAX ? EAGER_MAX : len;
	}
	if (r < 7)		/* rendezvous, medium */
		return EAGER_MAX + 1 + mix(s) % (256 * 1024 - EAGER_MAX);
	return 256 * 1024 + 1 + mix(s) % (max_msg - 256 * 1024);
}

/* Ops until bytes are planned; the first three are 1 B, 4 MiB, eager max. */
static void make_plan(struct plan *pl, uint64_t bytes, uint64_t seed)
{
	static const size_t first[] = { 1, 0, EAGER_MAX, EAGER_MAX + 1 };
	uint64_t s = seed, total = 0;
	size_t cap = 1024;

	memset(pl, 0, sizeof(*pl));
	pl->op = malloc(cap * sizeof(*pl->op));
	pl->send_op = malloc(cap * sizeof(*pl->send_op));
	while (total < bytes || pl->nops < 2) {
		struct plan_op *o;
		if (pl->nops == cap) {
			cap *= 2;
			pl->op = realloc(pl->op, cap * sizeof(*pl->op));
			pl->send_op = realloc(pl->send_op, cap * sizeof(*pl->send_op));
		}
		if (!pl->op || !pl->send_op)
			die(2, "out of memory for the plan");
		o = &pl->op[pl->nops];
		if (fixed_len || pl->nops < 4 || mix(&s) % 4) {
			o->kind = OP_SEND;
			o->len = fixed_len ? fixed_len :
				 pl->nops == 1 ? max_msg :
				 pl->nops < 4 ? first[pl->nops] : send_len(&s);
			o->seq = (int64_t) pl->nsends;
			pl->send_op[pl->nsends++] = pl->nops;
			pl->msg_bytes += o->len;
		} else {
			o->kind = OP_WRITE;
			o->len = 64 * 1024 + mix(&s) % (REGION - 64 * 1024 + 1);
			o->region = (int) (mix(&s) % NREGIONS);
			o->off = mix(&s) % (REGION - o->len + 1);
			o->seq = -1;
			pl->rma_bytes += o->len;
		}
		total += o->len;
		pl->nops++;
	}
}

/* ---- the fabric ---------------------------------------------------------- */

struct info_file {		/* what each side publishes in D/<role>.info */
	char addr[256];
	uint64_t addrlen;
	uint64_t rma_addr, rma_key, rma_len;
	int64_t pid;
	uint64_t guard_addr, guard_key, guard_len;	/* rogue: server's guard */
};

struct xp {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_cq *cq;
	struct fid_av *av;
	struct fid_ep *ep;
	struct fid_mr *mr;
	struct fid_cntr *rd_cntr;	/* mrclose server: remote reads */
	char *rma;			/* server: the region others write */
	bool rogue;			/* transfer --rogue */
	struct fid_mr *guard_mr;	/* rogue server: the guard region */
	char *guard;
	fi_addr_t peer;
	struct info_file me, them;
	const char *dir;
};

static void fabric_open(struct xp *x, bool count_reads)
{
	xhost_domain_open(FI_TAGGED | FI_RMA | FI_DIRECTED_RECV |
			  (count_reads ? FI_RMA_EVENT : 0), FI_THREAD_UNSPEC,
			  &x->info, &x->fabric, &x->domain);
	xhost_av_open(x->domain, &x->av);
	xhost_ep_open(x->domain, x->info, x->av, &x->cq, &x->ep);
	if (count_reads) {
		struct fi_cntr_attr attr = { .events = FI_CNTR_EVENTS_COMP };

		CHECK(fi_cntr_open(x->domain, &attr, &x->rd_cntr, NULL));
		CHECK(fi_ep_bind(x->ep, &x->rd_cntr->fid, FI_REMOTE_READ));
	}
	CHECK(fi_enable(x->ep));
}

static void fabric_close(struct xp *x)
{
	CHECK(fi_close(&x->ep->fid));	/* logs the udp counters */
	if (x->mr)
		CHECK(fi_close(&x->mr->fid));
	if (x->guard_mr)
		CHECK(fi_close(&x->guard_mr->fid));
	if (x->rd_cntr)
		CHECK(fi_close(&x->rd_cntr->fid));
	CHECK(fi_close(&x->av->fid));
	CHECK(fi_close(&x->cq->fid));
	CHECK(fi_close(&x->domain->fid));
	CHECK(fi_close(&x->fabric->fid));
	fi_freeinfo(x->info);
}

static void register_rma(struct xp *x)
{
	x->rma = calloc(1, RMA_LEN);
	if (!x->rma)
		die(2, "out of memory for the RMA region");
	CHECK(fi_mr_reg(x->domain, x->rma, RMA_LEN,
			FI_REMOTE_READ | FI_REMOTE_WRITE, 0, xhost_next_key(), 0,
			&x->mr, NULL));
	x->me.rma_addr = (uintptr_t) x->rma;
	x->me.rma_key = fi_mr_key(x->mr);
	x->me.rma_len = RMA_LEN;
}

static uint8_t guard_byte(size_t i)
{
	return (uint8_t) ((i * 89) ^ (i >> 7) ^ 0x5a);
}

/* rogue: a region with known bytes that no one in the job touches. */
static void register_guard(struct xp *x)
{
	if (!(x->guard = malloc(GUARD_LEN)))
		die(2, "out of memory for the guard region");
	for (size_t i = 0; i < GUARD_LEN; i++)
		x->guard[i] = (char) guard_byte(i);
	CHECK(fi_mr_reg(x->domain, x->guard, GUARD_LEN,
			FI_REMOTE_READ | FI_REMOTE_WRITE, 0, xhost_next_key(), 0,
			&x->guard_mr, NULL));
	x->me.guard_addr = (uintptr_t) x->guard;
	x->me.guard_key = fi_mr_key(x->guard_mr);
	x->me.guard_len = GUARD_LEN;
}

static size_t guard_changed(const struct xp *x)
{
	size_t n = 0;

	for (size_t i = 0; i < GUARD_LEN; i++)
		n += (uint8_t) x->guard[i] != guard_byte(i);
	return n;
}

/* Publish D/<me>.info, read D/<them>.info, put the peer in the AV. */
static void exchange(struct xp *x, bool server)
{
	char path[4096], tmp[4200], hex[2 * sizeof(x->me.addr) + 1];
	size_t len = sizeof(x->me.addr);
	FILE *f;

	CHECK(fi_getname(&x->ep->fid, x->me.addr, &len));
	x->me.addrlen = len;
	x->me.pid = getpid();
	for (size_t i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", (unsigned char) x->me.addr[i]);
	printf("addr %s\n", hex);
	fflush(stdout);
	snprintf(path, sizeof(path), "%s/%s.info", x->dir, server ? "server" : "client");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(f = fopen(tmp, "w")) || fwrite(&x->me, sizeof(x->me), 1, f) != 1 ||
	    fclose(f) || rename(tmp, path))
		die(2, "cannot write %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s.info", x->dir, server ? "client" : "server");
	while (!(f = fopen(path, "r")))
		usleep(10000);
	if (fread(&x->them, sizeof(x->them), 1, f) != 1)
		die(2, "short %s", path);
	fclose(f);
	if (fi_av_insert(x->av, x->them.addr, 1, &x->peer, 0, NULL) != 1)
		die(2, "fi_av_insert of the peer's address failed");
}

/* ---- completions ---------------------------------------------------------- */

/*
 * One completion, good or bad: 1 and *e filled, or 0 (none yet).  Errors
 * land in *err with e->op_context set from it and the return is -1.
 */
static int next_completion(struct xp *x, struct fi_cq_tagged_entry *e,
			   struct fi_cq_err_entry *err)
{
	ssize_t r = fi_cq_read(x->cq, e, 1);

	if (r == 1)
		return 1;
	if (r == -FI_EAGAIN)
		return 0;
	if (r != -FI_EAVAIL)
		die(2, "fi_cq_read = %zd (%s)", r, fi_strerror((int) -r));
	memset(err, 0, sizeof(*err));
	r = fi_cq_readerr(x->cq, err, 0);
	if (r != 1)
		die(2, "fi_cq_readerr = %zd (%s)", r, fi_strerror((int) -r));
	e->op_context = err->op_context;
	e->flags = err->flags;
	e->len = err->len;
	e->tag = err->tag;
	return -1;
}

/* ---- transfer: client ---------------------------------------------------- */

struct slot {			/* one operation in flight, its buffer */
	char *buf;
	bool busy;
	const struct plan_op *op;
};

struct client {
	struct xp *x;
	struct plan *pl;
	struct slot slot[MAX_WINDOW];
	int window, inflight;
	bool region_busy[NREGIONS];
	bool answered;			/* D/connected made */
	char *mirror;			/* what the server's region should hold */
};

/* Creates D/<name>, for whoever waits on this process's progress. */
static void mark_file(struct xp *x, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", x->dir, name);
	if ((fd = creat(path, 0644)) < 0)
		die(2, "cannot create %s", path);
	close(fd);
}

static void client_complete(struct client *c, bool wait)
{
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	int r;

	do {
		r = next_completion(c->x, &e, &err);
		if (r < 0)
			die(1, "operation failed: %s (%d), prov errno %d, len %zu",
			    fi_strerror(err.err), err.err, err.prov_errno, err.len);
		if (r > 0) {
			struct slot *s = e.op_context;
			if (s < c->slot || s >= c->slot + c->window || !s->busy)
				die(1, "completion with a context we never posted");
			if (s->op->kind == OP_WRITE)
				c->region_busy[s->op->region] = false;
			/* A write completes once the server answered it:
			 * the session between the two stands. */
			if (s->op->kind == OP_WRITE && !c->answered) {
				mark_file(c->x, "connected");
				c->answered = true;
			}
			s->busy = false;
			c->inflight--;
		}
	} while (wait && r == 0);
}

static struct slot *free_slot(struct client *c)
{
	for (;;) {
		for (int i = 0; i < c->window; i++)
			if (!c->slot[i].busy)
				return &c->slot[i];
		client_complete(c, true);
	}
}

static void client_post(struct client *c, struct slot *s)
{
	const struct plan_op *o = s->op;
	struct xp *x = c->x;
	ssize_t r;

	for (;;) {
		if (o->kind == OP_SEND)
			r = fi_tsend(x->ep, s->buf, o->len, NULL, x->peer,
				     TAG_DATA, s);
		else
			r = fi_write(x->ep, s->buf, o->len, NULL, x->peer,
				     x->them.rma_addr + (uint64_t) o->region * REGION + o->off,
				     x->them.rma_key, s);
		if (r != -FI_EAGAIN)
			break;
		client_complete(c, false);
	}
	if (r)
		die(2, "%s = %zd (%s)", o->kind == OP_SEND ? "fi_tsend" : "fi_write",
		    r, fi_strerror((int) -r));
	s->busy = true;
	c->inflight++;
}

/* Reads the server's region back, 1 MiB per fi_read, and compares. */
static void client_read_back(struct client *c)
{
	struct xp *x = c->x;
	char *back = malloc(RMA_LEN);
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	int left = NREGIONS, r;

	if (!back)
		die(2, "out of memory");
	for (int i = 0; i < NREGIONS; i++) {
		ssize_t rr;
		while ((rr = fi_read(x->ep, back + (size_t) i * REGION, REGION, NULL,
				     x->peer, x->them.rma_addr + (uint64_t) i * REGION,
				     x->them.rma_key, back)) == -FI_EAGAIN)
			;
		if (rr)
			die(2, "fi_read = %zd (%s)", rr, fi_strerror((int) -rr));
	}
	while (left) {
		if ((r = next_completion(x, &e, &err)) < 0)
			die(1, "fi_read failed: %s", fi_strerror(err.err));
		left -= r;
	}
	for (size_t i = 0; i < RMA_LEN; i++)
		if (back[i] != c->mirror[i])
			die(1, "fi_read back: byte %zu is %02x, want %02x", i,
			    (unsigned char) back[i], (unsigned char) c->mirror[i]);
	free(back);
}

struct end_msg {
	uint64_t nsends, msg_bytes, msg_fnv, rma_fnv, status;
};

static bool dir_has(const struct xp *x, const char *name);
static bool progress_until_file(struct xp *x, const char *name, double secs);

/* rogue: one 64 KiB read of the server's region, checked against the
 * mirror; the job's own traffic while the attacker works. */
static void client_live_read(struct client *c, char *back, uint64_t k)
{
	struct xp *x = c->x;
	size_t off = (size_t) (k % (RMA_LEN / LIVE_READ)) * LIVE_READ;
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	ssize_t rr;
	int r;

	while ((rr = fi_read(x->ep, back, LIVE_READ, NULL, x->peer,
			     x->them.rma_addr + off, x->them.rma_key, back)) == -FI_EAGAIN)
		;
	if (rr)
		die(2, "fi_read = %zd (%s)", rr, fi_strerror((int) -rr));
	while (!(r = next_completion(x, &e, &err)))
		;
	if (r < 0)
		die(1, "read %" PRIu64 " under attack failed: %s", k, fi_strerror(err.err));
	if (memcmp(back, c->mirror + off, LIVE_READ))
		die(1, "read %" PRIu64 " under attack: offset %zu differs from the mirror",
		    k, off);
}

/* rogue: halfway, nothing in flight: D/midway, then reads until the
 * attacker says D/attack.done. */
static void client_under_attack(struct client *c)
{
	char *back = malloc(LIVE_READ);
	double t0 = now_s();
	uint64_t k = 0;

	if (!back)
		die(2, "out of memory");
	while (c->inflight)
		client_complete(c, true);
	mark_file(c->x, "midway");
	while (!dir_has(c->x, "attack.done")) {
		if (now_s() - t0 > ATTACK_MAX_S)
			die(2, "no D/attack.done after %.0f s", ATTACK_MAX_S);
		client_live_read(c, back, k++);
	}
	printf("rogue: client read %" PRIu64 " x %u bytes back while attacked, "
	       "%.2f s\n", k, LIVE_READ, now_s() - t0);
	free(back);
}

/* Post recv, then send, wait for both. */
static void exchange_msgs(struct xp *x, void *out, uint64_t out_tag, void *in,
			  uint64_t in_tag, size_t len)
{
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	int left = 0, r;

	if (in) {
		CHECK(fi_trecv(x->ep, in, len, NULL, x->peer, in_tag, 0, in));
		left++;
	}
	if (out) {
		/* Delivery complete: the sender may close its endpoint at once. */
		struct iovec iov = { .iov_base = out, .iov_len = len };
		struct fi_msg_tagged msg = { .msg_iov = &iov, .iov_count = 1,
					     .addr = x->peer, .tag = out_tag,
					     .context = out };
		CHECK(fi_tsendmsg(x->ep, &msg, FI_DELIVERY_COMPLETE));
		left++;
	}
	while (left) {
		if ((r = next_completion(x, &e, &err)) < 0)
			die(1, "control message failed: %s", fi_strerror(err.err));
		if (r && in && e.op_context == in && e.len != len)
			die(1, "control message of %zu bytes, want %zu", e.len, len);
		left -= r;
	}
}

static void summary(const char *who, uint64_t bytes, uint64_t msgs, uint64_t rma,
		    uint64_t msg_fnv, uint64_t rma_fnv, double t, bool ok)
{
	printf("%s: %s bytes %" PRIu64 " messages %" PRIu64 " rma_bytes %" PRIu64
	       " msg_fnv %016" PRIx64 " rma_fnv %016" PRIx64
	       " elapsed %.3f s rate %.1f MB/s\n", who, ok ? "OK" : "FAIL", bytes,
	       msgs, rma, msg_fnv, rma_fnv, t, t > 0 ? bytes / t / 1e6 : 0.0);
	fflush(stdout);
}

static int client_transfer(struct xp *x, struct plan *pl, uint64_t seed, int window)
{
	struct client c = { .x = x, .pl = pl, .window = window };
	struct end_msg end = { 0 }, result = { 0 };
	uint64_t msg_fnv = FNV_OFFSET;
	double t0 = now_s(), t;

	c.mirror = calloc(1, RMA_LEN);
	for (int i = 0; i < window; i++)
		if (!(c.slot[i].buf = malloc(max_msg)))
			die(2, "out of memory");
	if (!c.mirror)
		die(2, "out of memory");
	if (x->rogue && !progress_until_file(x, "go", ATTACK_MAX_S))
		die(2, "no D/go after %.0f s", ATTACK_MAX_S);
	for (size_t i = 0; i < pl->nops; i++) {
		const struct plan_op *o = &pl->op[i];
		struct slot *s;

		if (x->rogue && i == pl->nops / 2)
			client_under_attack(&c);
		s = free_slot(&c);
		if (o->kind == OP_WRITE)
			while (c.region_busy[o->region])
				client_complete(&c, true);
		s->op = o;
		fill(s->buf, o->len, seed, i, o->seq);
		if (o->kind == OP_SEND) {
			msg_fnv = fnv(msg_fnv, s->buf, o->len);
		} else {
			memcpy(c.mirror + (size_t) o->region * REGION + o->off, s->buf, o->len);
			c.region_busy[o->region] = true;
		}
		client_post(&c, s);
	}
	while (c.inflight)
		client_complete(&c, true);
	t = now_s() - t0;
	client_read_back(&c);
	end = (struct end_msg) { pl->nsends, pl->msg_bytes, msg_fnv,
				 fnv(FNV_OFFSET, c.mirror, RMA_LEN), 0 };
	exchange_msgs(x, &end, TAG_END, &result, TAG_RESULT, sizeof(end));
	bool ok = result.status == 0 && result.nsends == end.nsends &&
		  result.msg_fnv == end.msg_fnv && result.rma_fnv == end.rma_fnv;
	if (!ok)
		fprintf(stderr, "xpeer client: server reports status %" PRIu64
			" messages %" PRIu64 " msg_fnv %016" PRIx64 " rma_fnv %016"
			PRIx64 "\n", result.status, result.nsends, result.msg_fnv,
			result.rma_fnv);
	summary("client", pl->msg_bytes + pl->rma_bytes, pl->nsends, pl->rma_bytes,
		msg_fnv, end.rma_fnv, t, ok);
	for (int i = 0; i < window; i++)
		free(c.slot[i].buf);
	free(c.mirror);
	return ok ? 0 : 1;
}

/* ---- transfer: server ---------------------------------------------------- */

struct server {
	struct xp *x;
	struct plan *pl;
	uint64_t seed;
	int window;
	char *buf[MAX_WINDOW], *want;
	bool done[MAX_WINDOW];
	size_t len[MAX_WINDOW];
	uint64_t tag[MAX_WINDOW];
	size_t posted, consumed;	/* receives posted / checked, in order */
	uint64_t msg_fnv;
	struct end_msg end;
	bool end_done;
	char *bait;			/* rogue: the bait receive's buffer */
	size_t bait_len;		/* what it received */
	int bait_state;			/* BAIT_* */
	int bait_err;
	uint64_t remote_writes;		/* rogue: remote-write completions */
};

enum { BAIT_POSTED, BAIT_MATCHED, BAIT_FAILED };

static void server_post(struct server *sv)
{
	int i = (int) (sv->posted % sv->window);

	sv->done[i] = false;
	CHECK(fi_trecv(sv->x->ep, sv->buf[i], max_msg, NULL, sv->x->peer,
		       TAG_DATA, 0, &sv->buf[i]));
	sv->posted++;
}

/* Receive k (k-th posted) must hold message k of the plan, byte for byte. */
static void server_check(struct server *sv, size_t k, const char *got,
			 size_t len, uint64_t tag)
{
	const struct plan_op *o = &sv->pl->op[sv->pl->send_op[k]];
	uint64_t seq = 0;

	memcpy(&seq, got, len < 8 ? len : 8);
	seq = le64toh(seq);
	if (tag != TAG_DATA || len != o->len)
		die(1, "message %zu: tag %#" PRIx64 " len %zu (seq field %" PRIu64
		    "), want len %zu: lost, doubled or reordered", k, tag, len,
		    seq, o->len);
	fill(sv->want, o->len, sv->seed, sv->pl->send_op[k], o->seq);
	if (memcmp(got, sv->want, len)) {
		size_t i = 0;
		while (got[i] == sv->want[i])
			i++;
		die(1, "message %zu (len %zu, seq field %" PRIu64 "): byte %zu is "
		    "%02x, want %02x", k, len, seq, i, (unsigned char) got[i],
		    (unsigned char) sv->want[i]);
	}
	sv->msg_fnv = fnv(sv->msg_fnv, got, len);
}

/* rogue: a completion only the attacker can cause; true if it was one. */
static bool server_rogue_completion(struct server *sv,
				    const struct fi_cq_tagged_entry *e)
{
	if (e->flags & FI_REMOTE_WRITE) {
		sv->remote_writes++;
		fprintf(stderr, "xpeer server: remote-write completion, data %#"
			PRIx64 " len %zu\n", (uint64_t) e->data, e->len);
		return true;
	}
	if (e->op_context != sv->bait)
		return false;
	sv->bait_state = BAIT_MATCHED;
	sv->bait_len = e->len;
	return true;
}

static void server_complete(struct server *sv, bool wait)
{
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	int r;

	do {
		r = next_completion(sv->x, &e, &err);
		if (r < 0 && sv->bait && e.op_context == sv->bait) {
			sv->bait_state = BAIT_FAILED;
			sv->bait_err = err.err;
			return;
		}
		if (r < 0)
			die(1, "receive failed: %s (%d), len %zu", fi_strerror(err.err),
			    err.err, err.len);
	} while (wait && r == 0);
	if (r == 0)
		return;
	if (sv->bait && server_rogue_completion(sv, &e))
		return;
	if (e.op_context == &sv->end) {
		if (e.len != sizeof(sv->end))
			die(1, "END of %zu bytes", e.len);
		sv->end_done = true;
		return;
	}
	char **b = e.op_context;
	if (b < sv->buf || b >= sv->buf + sv->window)
		die(1, "completion with a context we never posted");
	int i = (int) (b - sv->buf);
	sv->done[i] = true;
	sv->len[i] = e.len;
	sv->tag[i] = e.tag;
	/* Completions may come in any order; messages are checked in order. */
	while (sv->consumed < sv->posted && sv->done[sv->consumed % sv->window]) {
		int j = (int) (sv->consumed % sv->window);
		server_check(sv, sv->consumed, sv->buf[j], sv->len[j], sv->tag[j]);
		sv->consumed++;
		if (sv->posted < sv->pl->nsends)
			server_post(sv);
	}
}

/* rogue: cancels the bait if it is still posted, keeps what it got in
 * D/bait.bin, prints the verdicts; nonzero if the guard changed or a
 * remote write completed. */
static uint64_t server_rogue_end(struct server *sv)
{
	struct xp *x = sv->x;
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	size_t changed = guard_changed(x);
	char text[64], path[4096];
	FILE *f;
	int r;

	if (sv->bait_state == BAIT_POSTED) {
		double t0 = now_s();

		CHECK(fi_cancel(&x->ep->fid, sv->bait));
		/* A bait an attacker's rendezvous holds may not cancel. */
		while ((r = next_completion(x, &e, &err)) == 0 && now_s() - t0 < 2.0)
			;
		if (r == 0)
			printf("rogue: the bait did not cancel within 2 s\n");
		if (r > 0 && !server_rogue_completion(sv, &e))
			die(1, "unexpected completion while cancelling the bait");
		if (r < 0 && err.err != FI_ECANCELED)
			sv->bait_state = BAIT_FAILED, sv->bait_err = err.err;
	}
	snprintf(path, sizeof(path), "%s/bait.bin", x->dir);
	if (!(f = fopen(path, "w")) ||
	    fwrite(sv->bait, 1, sv->bait_len, f) != sv->bait_len || fclose(f))
		die(2, "cannot write %s", path);
	if (sv->bait_state == BAIT_MATCHED)
		snprintf(text, sizeof(text), "matched %zu bytes", sv->bait_len);
	else if (sv->bait_state == BAIT_FAILED)
		snprintf(text, sizeof(text), "failed with error %d", sv->bait_err);
	else
		snprintf(text, sizeof(text), "untouched");
	printf("rogue: guard %zu of %u bytes changed; bait %s; remote writes %"
	       PRIu64 "\n", changed, GUARD_LEN, text, sv->remote_writes);
	return changed || sv->remote_writes ? 8 : 0;
}

/* After END, no message may follow: a doubled one would land here. */
static bool no_extra_message(struct server *sv)
{
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	double t0 = now_s();
	int r;

	CHECK(fi_trecv(sv->x->ep, sv->buf[0], max_msg, NULL, sv->x->peer,
		       TAG_DATA, 0, sv->buf));
	while (now_s() - t0 < 0.2)
		if ((r = next_completion(sv->x, &e, &err)) > 0) {
			fprintf(stderr, "xpeer server: extra message of %zu bytes after END\n",
				e.len);
			return false;
		}
	CHECK(fi_cancel(&sv->x->ep->fid, sv->buf));
	while ((r = next_completion(sv->x, &e, &err)) == 0)
		;
	if (r > 0 || err.err != FI_ECANCELED) {
		fprintf(stderr, "xpeer server: cancelled receive: %s\n",
			r > 0 ? "completed with data" : fi_strerror(err.err));
		return false;
	}
	return true;
}

static int server_transfer(struct xp *x, struct plan *pl, uint64_t seed, int window)
{
	struct server sv = { .x = x, .pl = pl, .seed = seed, .window = window,
			     .msg_fnv = FNV_OFFSET };
	struct end_msg result;
	double t0 = now_s(), t;
	uint64_t rma_fnv;

	if (!(sv.want = malloc(max_msg)))
		die(2, "out of memory");
	for (int i = 0; i < window; i++)
		if (!(sv.buf[i] = malloc(max_msg)))
			die(2, "out of memory");
	CHECK(fi_trecv(x->ep, &sv.end, sizeof(sv.end), NULL, x->peer, TAG_END, 0,
		       &sv.end));
	if (x->rogue) {
		if (!(sv.bait = calloc(1, BAIT_LEN)))
			die(2, "out of memory");
		CHECK(fi_trecv(x->ep, sv.bait, BAIT_LEN, NULL, FI_ADDR_UNSPEC,
			       TAG_BAIT, 0, sv.bait));
	}
	while (sv.posted < pl->nsends && sv.posted < (size_t) window)
		server_post(&sv);
	while (sv.consumed < pl->nsends || !sv.end_done)
		server_complete(&sv, true);
	t = now_s() - t0;
	rma_fnv = fnv(FNV_OFFSET, x->rma, RMA_LEN);
	result = (struct end_msg) { sv.consumed, pl->msg_bytes, sv.msg_fnv, rma_fnv, 0 };
	if (sv.end.nsends != pl->nsends || sv.end.msg_fnv != sv.msg_fnv) {
		fprintf(stderr, "xpeer server: END says %" PRIu64 " messages fnv %016"
			PRIx64 ", received %zu fnv %016" PRIx64 "\n", sv.end.nsends,
			sv.end.msg_fnv, sv.consumed, sv.msg_fnv);
		result.status |= 1;
	}
	if (sv.end.rma_fnv != rma_fnv) {
		fprintf(stderr, "xpeer server: RMA region fnv %016" PRIx64
			", client's mirror %016" PRIx64 "\n", rma_fnv, sv.end.rma_fnv);
		result.status |= 2;
	}
	if (!no_extra_message(&sv))
		result.status |= 4;
	if (x->rogue)
		result.status |= server_rogue_end(&sv);
	exchange_msgs(x, &result, TAG_RESULT, NULL, 0, sizeof(result));
	summary("server", pl->msg_bytes + pl->rma_bytes, sv.consumed, pl->rma_bytes,
		sv.msg_fnv, rma_fnv, t, result.status == 0);
	for (int i = 0; i < window; i++)
		free(sv.buf[i]);
	free(sv.want);
	free(sv.bait);
	return result.status ? 1 : 0;
}

/* ---- pending ------------------------------------------------------------- */

enum pend_kind { P_STUCK_SEND, P_READ, P_WRITE, P_RECV };
static const char *pend_name[] = { "send", "read", "write", "recv" };

struct pend {
	enum pend_kind kind;
	size_t len;
	char *buf;
	bool busy, at_kill;	/* in flight; was in flight when the kill was seen */
	int err;		/* 0: success */
	double done_at;		/* seconds after the kill */
	uint64_t okays;		/* successful rounds before the kill */
	bool posted;		/* false: waiting to be (re)posted */
};

/* D/pulled, once the test wrote it: the time of the pull, as now_s()
 * would have said then; else -1. */
static double pulled_at(struct xp *x)
{
	char path[4096];
	struct timespec ts;
	double wall = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/pulled", x->dir);
	if (!(f = fopen(path, "r")))
		return -1;
	if (fscanf(f, "%lf", &wall) != 1)
		wall = 0;
	fclose(f);
	if (wall <= 0)
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	return now_s() - ((double) ts.tv_sec + ts.tv_nsec / 1e9 - wall);
}

static bool pid_gone(int64_t pid)
{
	char path[64], stat[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%" PRId64 "/stat", pid);
	if (!(f = fopen(path, "r")))
		return true;
	n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = 0;
	p = strrchr(stat, ')');	/* state follows the command name */
	return !p || p[2] == 'Z' || p[2] == 'X';
}

/* Posts p once; false on backpressure (-FI_EAGAIN): try again later. */
static bool pend_post(struct xp *x, struct pend *p)
{
	ssize_t r;
	uint64_t raddr = x->them.rma_addr + (p->kind == P_WRITE ? RMA_LEN / 2 : 0);

	switch (p->kind) {
	case P_STUCK_SEND:
		r = fi_tsend(x->ep, p->buf, p->len, NULL, x->peer, TAG_STUCK, p);
		break;
	case P_READ:
		r = fi_read(x->ep, p->buf, p->len, NULL, x->peer, raddr,
			    x->them.rma_key, p);
		break;
	case P_WRITE:
		r = fi_write(x->ep, p->buf, p->len, NULL, x->peer, raddr,
			     x->them.rma_key, p);
		break;
	default:
		r = fi_trecv(x->ep, p->buf, p->len, NULL, x->peer, TAG_NEVER, 0, p);
	}
	if (r == -FI_EAGAIN)
		return false;
	if (r)
		die(2, "posting a %s = %zd (%s)", pend_name[p->kind], r, fi_strerror((int) -r));
	p->busy = true;
	p->posted = true;
	return true;
}

/* A send to the dead peer: how it fails and how fast. */
static void send_after_death(struct xp *x, char *buf)
{
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	double t0 = now_s();
	ssize_t r = fi_tsend(x->ep, buf, 64, NULL, x->peer, TAG_STUCK, buf);
	int c;

	if (r) {
		printf("pending: new send to the dead peer: returns %zd (%s) at once\n",
		       r, fi_strerror((int) -r));
		return;
	}
	while ((c = next_completion(x, &e, &err)) == 0 && now_s() - t0 < 10)
		;
	printf("pending: new send to the dead peer: %s after %.3f s\n",
	       c < 0 ? fi_strerror(err.err) : c > 0 ? "completed OK" : "still pending",
	       now_s() - t0);
}

static void pend_complete(struct pend *p, int err, double since_kill)
{
	p->busy = false;
	p->err = err;
	p->done_at = since_kill;
}

/* When the server went away (killed, or the cable pulled), or -1. */
static double server_gone_at(struct xp *x, bool pulled, double t)
{
	if (pulled)
		return pulled_at(x);
	return pid_gone(x->them.pid) ? t : -1;
}

/*
 * Arms the pending ops, then waits for the server to die (or the cable to
 * be pulled); returns the number of pending ops that broke the rule.
 */
static int client_pending(struct xp *x, bool pulled)
{
	const char *what = pulled ? "pulled" : "pending";
	const char *env = getenv("FI_USB4_PEER_TIMEOUT");
	double limit = (env ? atof(env) : 5000.0) / 1000.0 + KILL_GRACE_S;
	struct pend p[] = {
		{ .kind = P_STUCK_SEND, .len = 1u << 20 },
		{ .kind = P_STUCK_SEND, .len = max_msg },
		{ .kind = P_STUCK_SEND, .len = 64 * 1024 },
		{ .kind = P_READ, .len = max_msg }, { .kind = P_READ, .len = max_msg },
		{ .kind = P_WRITE, .len = max_msg }, { .kind = P_WRITE, .len = max_msg },
		{ .kind = P_RECV, .len = 4096 },
	};
	const int n = (int) (sizeof(p) / sizeof(p[0]));
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	double t0 = now_s(), t_kill = -1, last = 0;
	bool armed = false;
	int bad = 0, left;

	for (int i = 0; i < n; i++) {
		if (!(p[i].buf = malloc(p[i].len)))
			die(2, "out of memory");
		memset(p[i].buf, 0x5a, p[i].len);
	}
	for (;;) {
		for (int i = 0; t_kill < 0 && i < n; i++)
			if (!p[i].posted)
				pend_post(x, &p[i]);
		int r = next_completion(x, &e, &err);
		double t = now_s();
		if (r) {
			struct pend *q = e.op_context;
			if (q < p || q >= p + n || !q->busy)
				die(1, "completion with a context we never posted");
			if (t_kill < 0 && (r < 0 || q->kind == P_STUCK_SEND || q->kind == P_RECV))
				die(1, "%s completed %s before the server died",
				    pend_name[q->kind], r < 0 ? fi_strerror(err.err) : "OK");
			if (t_kill < 0) {	/* RMA round done: another one */
				q->okays++;
				q->busy = q->posted = false;
			} else {
				pend_complete(q, r < 0 ? err.err : 0, t - t_kill);
				if (r < 0)
					printf("pending: %s %zu B: error %d (%s) %.3f s after the kill\n",
					       pend_name[q->kind], q->len, err.err,
					       fi_strerror(err.err), t - t_kill);
				else
					printf("pending: %s %zu B: completed OK %.3f s after the kill\n",
					       pend_name[q->kind], q->len, t - t_kill);
			}
		}
		if (!armed && t - t0 > 0.5 && p[0].posted && p[1].posted && p[2].posted) {
			mark_file(x, "armed");
			printf("pending: armed\n");
			fflush(stdout);
			armed = true;
		}
		if (t_kill < 0 && t - last > 0.001) {
			last = t;
			if ((t_kill = server_gone_at(x, pulled, t)) >= 0) {
				for (int i = 0; i < n; i++)
					p[i].at_kill = p[i].busy;
				printf("pending: server %s after %.3f s armed\n",
				       pulled ? "cable pulled" : "pid gone", t - t0);
				fflush(stdout);
			}
		}
		if (t_kill < 0)
			continue;
		left = 0;
		for (int i = 0; i < n; i++)
			left += p[i].busy;
		if (!left || t - t_kill > limit + 2.0)
			break;
	}
	double worst = 0;
	int npend = 0;
	for (int i = 0; i < n; i++) {
		struct pend *q = &p[i];
		bool ok_err = q->err == FI_EHOSTUNREACH || q->err == FI_EIO;
		if (!q->at_kill)
			continue;
		npend++;
		if (q->busy) {
			printf("pending: %s %zu B: STILL PENDING %.1f s after the kill\n",
			       pend_name[q->kind], q->len, now_s() - t_kill);
			bad++;
			continue;
		}
		if (q->done_at > worst)
			worst = q->done_at;
		if (q->done_at > limit || (q->err && !ok_err) ||
		    (!q->err && (q->kind == P_STUCK_SEND || q->kind == P_RECV ||
				 q->done_at > LANDED_S))) {
			printf("pending: %s %zu B: BAD (err %d, %.3f s)\n",
			       pend_name[q->kind], q->len, q->err, q->done_at);
			bad++;
		}
	}
	/* The directed receive must have failed too (checked above). */
	struct pend *rv = &p[n - 1];
	if (!rv->busy)
		printf("pending: recv from the dead peer: completed by the provider "
		       "with %s\n", rv->err ? fi_strerror(rv->err) : "success");
	send_after_death(x, p[0].buf);
	printf("%s: %s: %d ops pending at the kill, slowest failed %.3f s after "
	       "it, limit %.3f s, %d bad\n", what, bad || !npend ? "FAIL" : "OK",
	       npend, worst, limit, bad);
	for (int i = 0; i < n; i++)
		free(p[i].buf);
	return bad || !npend ? 1 : 0;
}

/* Keeps the peer's ops pending: serves RMA, never receives TAG_STUCK.
 * Pulled: its receive directed at the client must fail within the peer
 * timeout + 1 s of the pull. */
static int server_pending(struct xp *x, bool pulled)
{
	static char never[16];
	const char *env = getenv("FI_USB4_PEER_TIMEOUT");
	double limit = (env ? atof(env) : 5000.0) / 1000.0 + KILL_GRACE_S;
	double t_pull = -1, took;
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	int r;

	CHECK(fi_trecv(x->ep, never, sizeof(never), NULL, x->peer, TAG_NEVER, 0, never));
	printf("pending: server serving, pid %d\n", (int) getpid());
	fflush(stdout);
	while (!(r = next_completion(x, &e, &err)))
		if (pulled && t_pull < 0)
			t_pull = pulled_at(x);
	if (!pulled || r > 0 || e.op_context != never) {
		fprintf(stderr, "xpeer server: unexpected completion (%s)\n",
			r < 0 ? fi_strerror(err.err) : "OK");
		return 1;
	}
	if (t_pull < 0)
		t_pull = pulled_at(x);
	took = t_pull < 0 ? -1 : now_s() - t_pull;
	printf("pulled: server recv from the client: error %d (%s) %.3f s after "
	       "the pull, limit %.3f s\n", err.err, fi_strerror(err.err), took,
	       limit);
	r = t_pull >= 0 && took <= limit && err.err == FI_EHOSTUNREACH;
	printf("pulled: %s\n", r ? "OK" : "FAIL");
	return r ? 0 : 1;
}

/* ---- mrclose: a region closed while its read response is unacknowledged -- */

static uint8_t region_byte(size_t i)
{
	return (uint8_t) ((i * 131) ^ (i >> 9));
}

static int client_mrclose(struct xp *x)
{
	char *back = malloc(RMA_LEN);
	struct end_msg end = { 0 };
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	ssize_t rr;
	int r;

	if (!back)
		die(2, "out of memory");
	while ((rr = fi_read(x->ep, back, RMA_LEN, NULL, x->peer,
			     x->them.rma_addr, x->them.rma_key, back)) == -FI_EAGAIN)
		;
	if (rr)
		die(2, "fi_read = %zd (%s)", rr, fi_strerror((int) -rr));
	while (!(r = next_completion(x, &e, &err)))
		;
	if (r < 0)
		die(1, "fi_read failed: %s", fi_strerror(err.err));
	for (size_t i = 0; i < RMA_LEN; i++)
		if ((uint8_t) back[i] != region_byte(i))
			die(1, "read byte %zu is %02x, want %02x", i,
			    (unsigned char) back[i], region_byte(i));
	printf("mrclose: client read %zu bytes, all as written\n", (size_t) RMA_LEN);
	exchange_msgs(x, &end, TAG_END, NULL, 0, sizeof(end));
	free(back);
	return 0;
}

static int server_mrclose(struct xp *x)
{
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	struct end_msg end;
	double t0;
	int r;

	CHECK(fi_trecv(x->ep, &end, sizeof(end), NULL, x->peer, TAG_END, 0, &end));
	while (fi_cntr_read(x->rd_cntr) < 1)
		;
	t0 = now_s();
	CHECK(fi_close(&x->mr->fid));
	x->mr = NULL;
	printf("mrclose: fi_close of the region took %.6f s\n", now_s() - t0);
	while (!(r = next_completion(x, &e, &err)))
		;
	if (r < 0)
		die(1, "END failed: %s", fi_strerror(err.err));
	printf("mrclose: server got END\n");
	return 0;
}

/* ---- mrwrite: a region closed while a write into it streams in ----------- */

#define MRW_LEN		((size_t) 256 << 20)	/* region and write, bytes */
#define MRW_WATCH	((size_t) 1 << 20)	/* under way once written here */
#define MRW_PROBE	((size_t) 64 << 10)	/* grid of the "reached" probe */
#define MRW_GRACE_S	1.0	/* progress after the client's verdict */
#define MRW_WAIT_S	20.0	/* longest wait for a completion or a file */

/* The client writes odd bytes, the server's refill is even: a byte that
 * differs from the refill and is odd is the client's data arriving late. */
static uint8_t mrw_client_byte(size_t i)
{
	return (uint8_t) (((i >> 3) * 0x9d) | 1);
}

static uint8_t mrw_server_byte(size_t i)
{
	return (uint8_t) (((i * 131) ^ (i >> 11)) & 0xfe);
}

static void register_mrwrite(struct xp *x)
{
	x->rma = malloc(MRW_LEN);
	if (!x->rma)
		die(2, "out of memory for the region");
	memset(x->rma, 0, MRW_LEN);	/* resident, as a reused buffer is */
	CHECK(fi_mr_reg(x->domain, x->rma, MRW_LEN, FI_REMOTE_WRITE, 0,
			xhost_next_key(), 0, &x->mr, NULL));
	x->me.rma_addr = (uintptr_t) x->rma;
	x->me.rma_key = fi_mr_key(x->mr);
	x->me.rma_len = MRW_LEN;
}

static bool dir_has(const struct xp *x, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", x->dir, name);
	return access(path, F_OK) == 0;
}

static void dir_put(const struct xp *x, const char *name, const char *text)
{
	char path[4096], tmp[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", x->dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(f = fopen(tmp, "w")) || fputs(text, f) < 0 || fclose(f) ||
	    rename(tmp, path))
		die(2, "cannot write %s: %s", path, strerror(errno));
}

/* Progresses (no completion expected) until D/name exists or secs pass;
 * naps 0.1 ms between reads.  False on timeout. */
static bool progress_until_file(struct xp *x, const char *name, double secs)
{
	const struct timespec nap = { 0, 100 * 1000 };
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	double t0 = now_s(), checked = 0;
	int r;

	for (;;) {
		double t = now_s();
		if ((r = next_completion(x, &e, &err)) != 0)
			die(1, "unexpected %s completion while waiting for %s",
			    r < 0 ? fi_strerror(err.err) : "successful", name);
		if (name && t - checked > 0.01) {
			checked = t;
			if (dir_has(x, name))
				return true;
		}
		if (t - t0 > secs)
			return !name;
		nanosleep(&nap, NULL);
	}
}

/* How far the write had come: the last probe point it has written. */
static size_t mrw_reached(const volatile uint8_t *region)
{
	size_t top = 0;

	for (size_t off = 0; off < MRW_LEN; off += MRW_PROBE)
		if (region[off])
			top = off + 1;
	return top;
}

static int server_mrwrite(struct xp *x)
{
	volatile uint8_t *region = (volatile uint8_t *) x->rma;
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	size_t differ = 0, theirs = 0, first = 0, last = 0, reached;
	double t0 = now_s(), took;

	while (!region[MRW_WATCH]) {
		if (next_completion(x, &e, &err))
			die(1, "unexpected completion before the close");
		if (now_s() - t0 > MRW_WAIT_S)
			die(1, "the write never reached offset %zu", MRW_WATCH);
	}
	reached = mrw_reached(region);
	t0 = now_s();
	CHECK(fi_close(&x->mr->fid));
	took = now_s() - t0;
	x->mr = NULL;
	for (size_t i = 0; i < MRW_LEN; i++)
		x->rma[i] = (char) mrw_server_byte(i);
	printf("mrwrite: server: closed the region when the write had reached "
	       "%.1f MiB of %zu MiB; fi_close of the region took %.6f s\n",
	       reached / 1048576.0, MRW_LEN >> 20, took);
	if (!progress_until_file(x, "client.result", MRW_WAIT_S + 5))
		printf("mrwrite: server: no word from the client\n");
	progress_until_file(x, NULL, MRW_GRACE_S);
	for (size_t i = 0; i < MRW_LEN; i++) {
		uint8_t b = (uint8_t) x->rma[i];
		if (b == mrw_server_byte(i))
			continue;
		if (!differ++)
			first = i;
		last = i;
		theirs += b == mrw_client_byte(i);
	}
	printf("mrwrite: server: after the close and refill, %zu of %zu bytes "
	       "differ from the refill (%zu hold the client's data), first at "
	       "%zu, last at %zu\n", differ, MRW_LEN, theirs, first, last);
	dir_put(x, "server.done", "done\n");
	return 0;
}

/* Waits for the write's completion: "success", "error N (...)" or none. */
static void mrw_wait_write(struct xp *x, char *verdict, size_t len, double *at)
{
	const struct timespec nap = { 0, 1000 * 1000 };
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	double t0 = now_s();
	int r;

	while (!(r = next_completion(x, &e, &err)) && now_s() - t0 < MRW_WAIT_S)
		if (now_s() - t0 > 1.0)	/* the stream takes ~0.3 s: stop spinning */
			nanosleep(&nap, NULL);
	*at = now_s() - t0;
	if (r > 0)
		snprintf(verdict, len, "success");
	else if (r < 0)
		snprintf(verdict, len, "error %d (%s)", err.err, fi_strerror(err.err));
	else
		snprintf(verdict, len, "none");
}

static int client_mrwrite(struct xp *x)
{
	char *buf = malloc(MRW_LEN), verdict[128], line[256];
	double at;
	ssize_t rr;

	if (!buf)
		die(2, "out of memory");
	for (size_t i = 0; i < MRW_LEN; i++)
		buf[i] = (char) mrw_client_byte(i);
	while ((rr = fi_write(x->ep, buf, MRW_LEN, NULL, x->peer, x->them.rma_addr,
			      x->them.rma_key, buf)) == -FI_EAGAIN)
		;
	if (rr)
		die(2, "fi_write = %zd (%s)", rr, fi_strerror((int) -rr));
	mrw_wait_write(x, verdict, sizeof(verdict), &at);
	snprintf(line, sizeof(line), "mrwrite: client: fi_write of %zu bytes "
		 "completed with %s after %.3f s\n", MRW_LEN, verdict, at);
	fputs(line, stdout);
	dir_put(x, "client.result", line);
	if (!progress_until_file(x, "server.done", MRW_WAIT_S + 10))
		printf("mrwrite: client: the server never finished\n");
	free(buf);
	return 0;
}

/* ---- main ------------------------------------------------------------------ */

static void usage(void)
{
	die(2, "usage: usb4_xpeer server|client transfer|pending|pulled|mrclose|mrwrite --dir D "
	    "[--bytes N] [--seed S] [--window W] [--timeout SEC] [--rogue] "
	    "[--max-msg N] [--fixed-len N]");
}

int main(int argc, char **argv)
{
	struct xp x = { 0 };
	uint64_t bytes = 64u << 20, seed = 1;
	int window = 8, timeout = 300, rc;
	bool server, transfer, mrclose, mrwrite, pulled;

	if (argc < 3)
		usage();
	server = !strcmp(argv[1], "server");
	transfer = !strcmp(argv[2], "transfer");
	mrclose = !strcmp(argv[2], "mrclose");
	mrwrite = !strcmp(argv[2], "mrwrite");
	pulled = !strcmp(argv[2], "pulled");
	if ((!server && strcmp(argv[1], "client")) ||
	    (!transfer && !mrclose && !mrwrite && !pulled &&
	     strcmp(argv[2], "pending")))
		usage();
	xhost_prog = "xpeer";
	xhost_role = argv[1];
	for (int i = 3; i < argc; i += 2) {
		if (!strcmp(argv[i], "--rogue") && transfer) {
			x.rogue = true;
			i--;	/* a flag: no value */
		} else if (i + 1 == argc) {
			usage();
		} else if (!strcmp(argv[i], "--dir"))
			x.dir = argv[i + 1];
		else if (!strcmp(argv[i], "--bytes"))
			bytes = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--max-msg"))
			max_msg = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--fixed-len"))
			fixed_len = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--window"))
			window = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--timeout"))
			timeout = atoi(argv[i + 1]);
		else
			usage();
	}
	if (!x.dir || window < 1 || window > MAX_WINDOW || timeout < 1 ||
	    max_msg < 256 * 1024 + 1 || max_msg > MAX_MSG_LIMIT ||
	    fixed_len > max_msg)
		usage();
	xhost_watchdog((unsigned) timeout);
	setvbuf(stdout, NULL, _IOLBF, 0);

	fabric_open(&x, server && mrclose);
	if (server && mrwrite)
		register_mrwrite(&x);
	else if (server)
		register_rma(&x);
	if (server && x.rogue)
		register_guard(&x);
	if (server && mrclose)
		for (size_t i = 0; i < RMA_LEN; i++)
			x.rma[i] = (char) region_byte(i);
	exchange(&x, server);
	if (mrclose) {
		rc = server ? server_mrclose(&x) : client_mrclose(&x);
	} else if (mrwrite) {
		rc = server ? server_mrwrite(&x) : client_mrwrite(&x);
	} else if (transfer) {
		struct plan pl;
		make_plan(&pl, bytes, seed);
		rc = server ? server_transfer(&x, &pl, seed, window)
			    : client_transfer(&x, &pl, seed, window);
		free(pl.op);
		free(pl.send_op);
	} else {
		rc = server ? server_pending(&x, pulled) :
			      client_pending(&x, pulled);
	}
	fabric_close(&x);
	free(x.rma);
	free(x.guard);
	return rc;
}
