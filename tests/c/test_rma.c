/*
 * RMA through libfabric (fi_rma, fi_mr, fi_cntr) on the usb4 provider.
 *
 * A forked target process opens its own endpoint, registers regions with
 * remote rights, sends its address and keys through a socketpair and then
 * serves commands (fill, verify, checksum, read its CQ and counters, close a
 * region) while progressing its endpoint.  The parent is the initiator.  The
 * suite runs twice: with Open MPI btl ofi's mr_mode (virtual addresses,
 * provider keys) and with mr_mode 0 (user keys, 0-based offsets).  A last
 * part has one process target itself.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define MIB		(1024 * 1024)
#define BIG_LEN		(8 * MIB + 4096)
#define SMALL_LEN	4096
#define MAP_LEN		(64 * 1024)
#define RMA_CAPS	(FI_RMA | FI_RMA_EVENT)
#define CQ_DATA		0x1122334455667788ull

/* The target's regions. */
enum { R_BIG, R_RO, R_WO, R_MAP, R_SMALL, R_COUNT };

/* Commands the target serves. */
enum {
	C_FILL,		/* region, off, len, arg = seed */
	C_VERIFY,	/* status 0 or 1 + first bad offset */
	C_SUM,		/* v[0] = checksum of the region */
	C_CQ,		/* one CQ entry: status 1 (v: flags, len, data),
			 * 0 error (v[0] = err), < 0 none */
	C_CQ_EMPTY,	/* status 1 if the CQ holds nothing */
	C_CNTR,		/* v[] = the four counters */
	C_CLOSE,	/* fi_close the region's MR, then free its memory */
	C_EXIT,
};

static const uint64_t region_access[R_COUNT] = {
	[R_BIG] = FI_REMOTE_READ | FI_REMOTE_WRITE,
	[R_RO] = FI_REMOTE_READ,
	[R_WO] = FI_REMOTE_WRITE,
	[R_MAP] = FI_REMOTE_READ | FI_REMOTE_WRITE,
	[R_SMALL] = FI_REMOTE_READ | FI_REMOTE_WRITE,
};
static const size_t region_len[R_COUNT] = {
	BIG_LEN, SMALL_LEN, SMALL_LEN, MAP_LEN, SMALL_LEN,
};

/* ---- the target process --------------------------------------------- */

struct target {
	struct fx fx;
	char *buf[R_COUNT];
	struct fid_mr *mr[R_COUNT];
};

static int target_setup(struct target *t, uint64_t mr_mode,
			struct fx_hello *h)
{
	int ret = fx_open(&t->fx, RMA_CAPS, mr_mode);

	if (ret)
		return ret;
	memset(h, 0, sizeof(*h));
	for (int i = 0; i < R_COUNT; i++) {
		if (i == R_MAP) {
			t->buf[i] = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (t->buf[i] == MAP_FAILED)
				return -FI_ENOMEM;
		} else {
			t->buf[i] = aligned_alloc(4096, region_len[i]);
		}
		fx_fill(t->buf[i], region_len[i], 100 + i, 0);
		ret = fx_reg(&t->fx, t->buf[i], region_len[i],
			     region_access[i], 0xabc0 + i, &t->mr[i]);
		if (ret)
			return ret;
		h->region[i] = (struct fx_region) {
			.addr = fx_rma_base(&t->fx, t->buf[i]),
			.key = fi_mr_key(t->mr[i]),
			.len = region_len[i],
		};
	}
	memcpy(h->addr, t->fx.addr, t->fx.addrlen);
	h->addrlen = t->fx.addrlen;
	h->pid = getpid();
	h->nregions = R_COUNT;
	return 0;
}

static void target_cq(struct target *t, struct fx_reply *r)
{
	struct fi_cq_data_entry e;
	struct fi_cq_err_entry err;
	int ret = fx_wait(t->fx.cq, &e, &err);

	r->status = ret;
	if (ret == 1) {
		r->v[0] = e.flags;
		r->v[1] = e.len;
		r->v[2] = e.data;
	} else if (ret == 0) {
		r->v[0] = (uint64_t) err.err;
	}
}

static struct fx_reply target_do(struct target *t, const struct fx_cmd *c)
{
	struct fx_reply r = { 0 };
	char *b = c->region >= 0 && c->region < R_COUNT ? t->buf[c->region] :
		  NULL;
	size_t off;

	switch (c->op) {
	case C_FILL:
		fx_fill(b + c->off, c->len, c->arg, c->off);
		break;
	case C_VERIFY:
		off = fx_verify(b + c->off, c->len, c->arg, c->off);
		r.status = off == c->len ? 0 : (int64_t) off + 1;
		break;
	case C_SUM:
		r.v[0] = fx_sum(b, region_len[c->region]);
		break;
	case C_CQ:
		target_cq(t, &r);
		break;
	case C_CQ_EMPTY:
		r.status = fx_cq_empty(t->fx.cq);
		break;
	case C_CNTR:
		for (int i = 0; i < FX_CNTRS; i++)
			r.v[i] = fi_cntr_read(t->fx.cntr[i]);
		break;
	case C_CLOSE:
		r.status = fi_close(&t->mr[c->region]->fid);
		t->mr[c->region] = NULL;
		if (c->region == R_MAP)
			munmap(t->buf[R_MAP], MAP_LEN);
		else
			free(t->buf[c->region]);
		t->buf[c->region] = NULL;
		break;
	}
	return r;
}

static void target_teardown(struct target *t)
{
	for (int i = 0; i < R_COUNT; i++) {
		if (!t->mr[i])
			continue;
		fi_close(&t->mr[i]->fid);
		if (i == R_MAP)
			munmap(t->buf[i], MAP_LEN);
		else
			free(t->buf[i]);
	}
	fx_close(&t->fx);
}

/* Serves commands until C_EXIT; between commands progresses the endpoint
 * (a counter read) so remote CQ data and counts arrive. */
static int target_main(int sock, uint64_t mr_mode)
{
	struct target t = { 0 };
	struct fx_hello h;
	struct fx_cmd c;
	struct fx_reply r;
	int ret = target_setup(&t, mr_mode, &h);

	if (ret) {
		fprintf(stderr, "target setup: %s\n", fi_strerror(-ret));
		return 2;
	}
	if (fx_send_all(sock, &h, sizeof(h)))
		return 2;
	for (;;) {
		if (!fx_readable(sock, 1)) {
			fi_cntr_read(t.fx.cntr[FX_CNTR_REM_WR]);
			continue;
		}
		if (fx_recv_all(sock, &c, sizeof(c)) || c.op == C_EXIT)
			break;
		r = target_do(&t, &c);
		if (fx_send_all(sock, &r, sizeof(r)))
			break;
	}
	target_teardown(&t);
	return 0;
}

/* Forks a target; *sock is the parent's end of the command channel. */
static pid_t spawn_target(uint64_t mr_mode, int *sock)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		alarm(60);
		exit(target_main(sv[1], mr_mode));
	}
	close(sv[1]);
	*sock = sv[0];
	return pid;
}

/* ---- the initiator -------------------------------------------------- */

struct init {
	struct fx fx;
	int sock;
	fi_addr_t peer;
	struct fx_hello h;
	char *lbuf;		/* BIG_LEN local buffer */
	size_t iov_limit, rma_iov_limit, inject_size;
};

static const struct fx_region *reg(const struct init *s, int i)
{
	return &s->h.region[i];
}

static int64_t remote_verify(struct init *s, int region, uint64_t off,
			     uint64_t len, uint64_t seed)
{
	return fx_call(s->sock, C_VERIFY, region, off, len, seed).status;
}

static void remote_fill(struct init *s, int region, uint64_t off,
			uint64_t len, uint64_t seed)
{
	CHECK_EQ(fx_call(s->sock, C_FILL, region, off, len, seed).status, 0);
}

static uint64_t remote_sum(struct init *s, int region)
{
	return fx_call(s->sock, C_SUM, region, 0, 0, 0).v[0];
}

/* One completion for context with the given op flags. */
static void expect_ok(struct init *s, void *ctx, uint64_t op, size_t len)
{
	struct fi_cq_data_entry e;
	struct fi_cq_err_entry err;
	int ret = fx_wait(s->fx.cq, &e, &err);

	CHECK_EQ(ret, 1);
	if (ret != 1) {
		if (ret == 0)
			fprintf(stderr, "  error completion: %s\n",
				fi_strerror(err.err));
		return;
	}
	CHECK(e.op_context == ctx);
	CHECK_EQ(e.flags & (FI_RMA | FI_READ | FI_WRITE), FI_RMA | op);
	CHECK_EQ(e.len, len);
}

static void expect_err(struct init *s, void *ctx, int err_code)
{
	struct fi_cq_err_entry err;
	int ret = fx_wait(s->fx.cq, NULL, &err);

	CHECK_EQ(ret, 0);
	if (ret)
		return;
	CHECK_EQ(err.err, err_code);
	CHECK(err.op_context == ctx);
	CHECK(fx_cq_empty(s->fx.cq));
}

/* fi_write then fi_read of len bytes at off of the big region. */
static void rma_size(struct init *s, size_t len, uint64_t off, uint64_t seed)
{
	const struct fx_region *r = reg(s, R_BIG);
	int ctx;

	remote_fill(s, R_BIG, 0, BIG_LEN, 7);
	fx_fill(s->lbuf, len, seed, off);
	CHECK_EQ(fi_write(s->fx.ep, s->lbuf, len, NULL, s->peer, r->addr + off,
			  r->key, &ctx), 0);
	expect_ok(s, &ctx, FI_WRITE, len);
	/* Delivery complete: the target holds the data already. */
	CHECK_EQ(remote_verify(s, R_BIG, off, len, seed), 0);
	CHECK_EQ(remote_verify(s, R_BIG, 0, off, 7), 0);
	CHECK_EQ(remote_verify(s, R_BIG, off + len, BIG_LEN - off - len, 7), 0);

	remote_fill(s, R_BIG, off, len, seed + 1);
	memset(s->lbuf, 0, len + 16);
	CHECK_EQ(fi_read(s->fx.ep, s->lbuf, len, NULL, s->peer, r->addr + off,
			 r->key, &ctx), 0);
	expect_ok(s, &ctx, FI_READ, len);
	CHECK_EQ(fx_verify(s->lbuf, len, seed + 1, off), len);
	CHECK_EQ(s->lbuf[len], 0);
}

static void test_sizes(struct init *s)
{
	static const size_t sizes[] = {
		1, 3, 8, 64, 4095, 4096, 65536 + 13, MIB + 1, 8 * MIB,
	};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		rma_size(s, sizes[i], sizes[i] == 8 * MIB ? 4096 : 5, 20 + i);
}

/* Splits len bytes of base into n uneven local pieces, 64 bytes apart. */
static size_t split_local(char *base, size_t len, size_t n, struct iovec *iov)
{
	size_t left = len, at = 0;

	for (size_t i = 0; i < n; i++) {
		size_t piece = i + 1 == n ? left : left / (n - i) + i * 3;
		iov[i].iov_base = base + at + i * 64;
		iov[i].iov_len = piece;
		left -= piece;
		at += piece;
	}
	return at + n * 64;
}

/* Gathers iov into flat (or scatters flat into iov). */
static void iov_copy(struct iovec *iov, size_t n, char *flat, bool gather)
{
	for (size_t i = 0; i < n; i++) {
		if (gather)
			memcpy(flat, iov[i].iov_base, iov[i].iov_len);
		else
			memcpy(iov[i].iov_base, flat, iov[i].iov_len);
		flat += iov[i].iov_len;
	}
}

static void test_vectors(struct init *s)
{
	const struct fx_region *r = reg(s, R_BIG);
	struct iovec iov[16];
	size_t n = s->iov_limit < 16 ? s->iov_limit : 16, len = 10007;
	char *flat = malloc(len);
	int ctx;

	split_local(s->lbuf, len, n, iov);
	fx_fill(flat, len, 41, 100);
	iov_copy(iov, n, flat, false);
	CHECK_EQ(fi_writev(s->fx.ep, iov, NULL, n, s->peer, r->addr + 100,
			   r->key, &ctx), 0);
	expect_ok(s, &ctx, FI_WRITE, len);
	CHECK_EQ(remote_verify(s, R_BIG, 100, len, 41), 0);

	remote_fill(s, R_BIG, 100, len, 42);
	memset(s->lbuf, 0, 2 * len);
	CHECK_EQ(fi_readv(s->fx.ep, iov, NULL, n, s->peer, r->addr + 100,
			  r->key, &ctx), 0);
	expect_ok(s, &ctx, FI_READ, len);
	iov_copy(iov, n, flat, true);
	CHECK_EQ(fx_verify(flat, len, 42, 100), len);
	free(flat);
}

/* fi_writemsg/fi_readmsg: iov_limit local pieces onto rma_iov_limit remote
 * segments scattered over the big region. */
static void test_msg_calls(struct init *s)
{
	const struct fx_region *r = reg(s, R_BIG);
	size_t n = s->iov_limit < 16 ? s->iov_limit : 16;
	size_t m = s->rma_iov_limit < 16 ? s->rma_iov_limit : 16;
	struct iovec iov[16];
	struct fi_rma_iov rio[16];
	size_t len = 0;
	int ctx;

	for (size_t j = 0; j < m; j++) {
		rio[j] = (struct fi_rma_iov) {
			.addr = r->addr + 3 + j * 70000, .len = 1000 + j * 777,
			.key = r->key,
		};
		len += rio[j].len;
	}
	split_local(s->lbuf, len, n, iov);
	struct fi_msg_rma msg = {
		.msg_iov = iov, .iov_count = n, .addr = s->peer,
		.rma_iov = rio, .rma_iov_count = m, .context = &ctx,
	};
	char *flat = malloc(len), *p = flat;
	fx_fill(flat, len, 55, 0);
	iov_copy(iov, n, flat, false);
	remote_fill(s, R_BIG, 0, BIG_LEN, 8);
	CHECK_EQ(fi_writemsg(s->fx.ep, &msg, FI_COMPLETION |
			     FI_DELIVERY_COMPLETE), 0);
	expect_ok(s, &ctx, FI_WRITE, len);
	for (size_t j = 0, at = 0; j < m; at += rio[j].len, j++) {
		uint64_t off = rio[j].addr - r->addr;
		CHECK_EQ(fx_verify(flat + at, rio[j].len, 55, at), rio[j].len);
		fx_fill(p, rio[j].len, 56, off);	/* expected read-back */
		p += rio[j].len;
		CHECK_EQ(fx_call(s->sock, C_FILL, R_BIG, off, rio[j].len,
				 56).status, 0);
	}
	/* Bytes between the segments are untouched by the write. */
	CHECK_EQ(remote_verify(s, R_BIG, 0, 3, 8), 0);
	CHECK_EQ(remote_verify(s, R_BIG, 3 + 1000, 70000 - 1000, 8), 0);
	memset(s->lbuf, 0, len + n * 64);
	CHECK_EQ(fi_readmsg(s->fx.ep, &msg, FI_COMPLETION), 0);
	expect_ok(s, &ctx, FI_READ, len);
	char *got = malloc(len);
	iov_copy(iov, n, got, true);
	CHECK(!memcmp(got, flat, len));
	free(got);
	free(flat);
}

static void test_inject(struct init *s)
{
	const struct fx_region *r = reg(s, R_SMALL);
	size_t len = s->inject_size < 64 ? s->inject_size : 64;

	CHECK(s->inject_size > 0);
	fx_fill(s->lbuf, len, 61, 16);
	CHECK_EQ(fi_inject_write(s->fx.ep, s->lbuf, len, s->peer, r->addr + 16,
				 r->key), 0);
	memset(s->lbuf, 0, len);	/* the buffer is ours again at once */
	CHECK(fx_cq_empty(s->fx.cq));
	CHECK_EQ(remote_verify(s, R_SMALL, 16, len, 61), 0);
	CHECK_EQ(fi_inject_write(s->fx.ep, s->lbuf, s->inject_size + 1,
				 s->peer, r->addr, r->key), -FI_EMSGSIZE);
}

/* Remote CQ data reaches the target's CQ. */
static void expect_remote_data(struct init *s, uint64_t data, size_t len)
{
	struct fx_reply rep = fx_call(s->sock, C_CQ, 0, 0, 0, 0);

	CHECK_EQ(rep.status, 1);
	CHECK_EQ(rep.v[0] & (FI_REMOTE_WRITE | FI_REMOTE_CQ_DATA),
		 FI_REMOTE_WRITE | FI_REMOTE_CQ_DATA);
	CHECK_EQ(rep.v[0] & (FI_READ | FI_WRITE | FI_SEND), 0);
	CHECK_EQ(rep.v[2], data);
	CHECK_EQ(rep.v[1], len);
	CHECK_EQ(fx_call(s->sock, C_CQ_EMPTY, 0, 0, 0, 0).status, 1);
}

static void test_writedata(struct init *s)
{
	const struct fx_region *r = reg(s, R_BIG);
	size_t len = 100000;
	int ctx;

	fx_fill(s->lbuf, len, 71, 0);
	CHECK_EQ(fi_writedata(s->fx.ep, s->lbuf, len, NULL, CQ_DATA, s->peer,
			      r->addr, r->key, &ctx), 0);
	expect_ok(s, &ctx, FI_WRITE, len);
	CHECK_EQ(remote_verify(s, R_BIG, 0, len, 71), 0);
	expect_remote_data(s, CQ_DATA, len);

	r = reg(s, R_SMALL);
	len = s->inject_size < 32 ? s->inject_size : 32;
	fx_fill(s->lbuf, len, 72, 0);
	CHECK_EQ(fi_inject_writedata(s->fx.ep, s->lbuf, len, 0xfeedull,
				     s->peer, r->addr, r->key), 0);
	CHECK(fx_cq_empty(s->fx.cq));
	CHECK_EQ(remote_verify(s, R_SMALL, 0, len, 72), 0);
	expect_remote_data(s, 0xfeedull, len);
	/* Plain writes raise nothing at the target. */
	CHECK_EQ(fx_call(s->sock, C_CQ_EMPTY, 0, 0, 0, 0).status, 1);
}

/* Counters: ours with FI_READ / FI_WRITE, the target's with FI_REMOTE_*. */
static void test_counters(struct init *s)
{
	const struct fx_region *r = reg(s, R_SMALL);
	uint64_t rd = fi_cntr_read(s->fx.cntr[FX_CNTR_RD]);
	uint64_t wr = fi_cntr_read(s->fx.cntr[FX_CNTR_WR]);
	uint64_t wr_err = fi_cntr_readerr(s->fx.cntr[FX_CNTR_WR]);
	struct fx_reply before = fx_call(s->sock, C_CNTR, 0, 0, 0, 0), after;
	int ctx;

	for (int i = 0; i < 3; i++) {
		CHECK_EQ(fi_write(s->fx.ep, s->lbuf, 100, NULL, s->peer,
				  r->addr, r->key, &ctx), 0);
		expect_ok(s, &ctx, FI_WRITE, 100);
	}
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(fi_read(s->fx.ep, s->lbuf, 100, NULL, s->peer,
				 r->addr, r->key, &ctx), 0);
		expect_ok(s, &ctx, FI_READ, 100);
	}
	CHECK_EQ(fi_inject_write(s->fx.ep, s->lbuf, 8, s->peer, r->addr,
				 r->key), 0);
	CHECK_EQ(fi_cntr_read(s->fx.cntr[FX_CNTR_WR]), wr + 4);
	CHECK_EQ(fi_cntr_read(s->fx.cntr[FX_CNTR_RD]), rd + 2);
	/* A refused write counts as an error on the write counter. */
	CHECK_EQ(fi_write(s->fx.ep, s->lbuf, 8, NULL, s->peer, r->addr,
			  r->key ^ 0x5a5a5a5a5a5a5a5aull, &ctx), 0);
	expect_err(s, &ctx, FI_EACCES);
	CHECK_EQ(fi_cntr_readerr(s->fx.cntr[FX_CNTR_WR]), wr_err + 1);
	CHECK_EQ(fi_cntr_read(s->fx.cntr[FX_CNTR_WR]), wr + 4);
	after = fx_call(s->sock, C_CNTR, 0, 0, 0, 0);
	CHECK_EQ(after.v[FX_CNTR_REM_WR] - before.v[FX_CNTR_REM_WR], 4);
	CHECK_EQ(after.v[FX_CNTR_REM_RD] - before.v[FX_CNTR_REM_RD], 2);
	/* The target initiated nothing. */
	CHECK_EQ(after.v[FX_CNTR_WR], 0);
	CHECK_EQ(after.v[FX_CNTR_RD], 0);
}

/* Checksums of every target region still served. */
static uint64_t target_sums(struct init *s, bool with_map)
{
	uint64_t h = 0;

	for (int i = 0; i < R_COUNT; i++)
		if (i != R_MAP || with_map)
			h = h * 31 + remote_sum(s, i);
	return h;
}

/* A good write after a refused access still works. */
static void still_works(struct init *s)
{
	const struct fx_region *r = reg(s, R_SMALL);
	int ctx;

	fx_fill(s->lbuf, 256, 99, 512);
	CHECK_EQ(fi_write(s->fx.ep, s->lbuf, 256, NULL, s->peer, r->addr + 512,
			  r->key, &ctx), 0);
	expect_ok(s, &ctx, FI_WRITE, 256);
	CHECK_EQ(remote_verify(s, R_SMALL, 512, 256, 99), 0);
	remote_fill(s, R_SMALL, 0, SMALL_LEN, 100 + R_SMALL);
}

struct bad_case {
	const char *name;
	bool write;
	int region;		/* key and base of this region */
	uint64_t key_xor;
	bool abs_addr;		/* addr is absolute, else region base + addr */
	uint64_t addr, len;
};

static void run_bad(struct init *s, const struct bad_case *b, bool with_map)
{
	const struct fx_region *r = reg(s, b->region);
	uint64_t addr = b->abs_addr ? b->addr : r->addr + b->addr;
	uint64_t before = target_sums(s, with_map);
	int errs = usb4_test_failures;
	ssize_t ret;
	int ctx;

	fx_fill(s->lbuf, b->len, 5, 0);
	ret = b->write ?
	      fi_write(s->fx.ep, s->lbuf, b->len, NULL, s->peer, addr,
		       r->key ^ b->key_xor, &ctx) :
	      fi_read(s->fx.ep, s->lbuf, b->len, NULL, s->peer, addr,
		      r->key ^ b->key_xor, &ctx);
	CHECK_EQ(ret, 0);
	if (!ret)
		expect_err(s, &ctx, FI_EACCES);
	if (!b->write)
		CHECK_EQ(fx_verify(s->lbuf, b->len, 5, 0), b->len);
	CHECK_EQ(target_sums(s, with_map), before);
	still_works(s);
	if (errs != usb4_test_failures)
		fprintf(stderr, "  in bad case: %s\n", b->name);
}

static void test_bad_input(struct init *s)
{
	static const struct bad_case cases[] = {
		{ "write, unknown key", true, R_SMALL, 0x5a5a5a5a5a5a5a5aull,
		  false, 0, 8 },
		{ "read, unknown key", false, R_SMALL, 0x77ull << 40, false,
		  0, 8 },
		{ "write past the end", true, R_SMALL, 0, false,
		  SMALL_LEN - 4, 8 },
		{ "read past the end", false, R_SMALL, 0, false,
		  SMALL_LEN - 4, 8 },
		{ "write one byte past", true, R_SMALL, 0, false,
		  SMALL_LEN, 1 },
		{ "write overflowing addr + len", true, R_SMALL, 0, true,
		  UINT64_MAX - 3, 8 },
		{ "read overflowing addr + len", false, R_SMALL, 0, true,
		  UINT64_MAX - 3, 8 },
		{ "read from a write-only region", false, R_WO, 0, false,
		  0, 64 },
		{ "write into a read-only region", true, R_RO, 0, false,
		  0, 64 },
		{ "write larger than the region", true, R_SMALL, 0, false,
		  0, SMALL_LEN + 1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_bad(s, &cases[i], true);
	/* Below the base: only meaningful with virtual addresses. */
	if (s->fx.mr_mode & FI_MR_VIRT_ADDR) {
		struct bad_case below = { "write below the base", true,
					  R_SMALL, 0, false, -8ull, 16 };
		run_bad(s, &below, true);
	}
	/* Good first segment, bad second: nothing is written. */
	const struct fx_region *r = reg(s, R_SMALL);
	struct iovec iov = { s->lbuf, 128 };
	struct fi_rma_iov rio[2] = {
		{ r->addr, 64, r->key },
		{ r->addr + SMALL_LEN - 32, 64, r->key },
	};
	struct fi_msg_rma msg = { .msg_iov = &iov, .iov_count = 1,
				  .addr = s->peer, .rma_iov = rio,
				  .rma_iov_count = 2, .context = &iov };
	uint64_t before = target_sums(s, true);
	if (s->rma_iov_limit >= 2) {
		CHECK_EQ(fi_writemsg(s->fx.ep, &msg, FI_COMPLETION), 0);
		expect_err(s, &iov, FI_EACCES);
		CHECK_EQ(target_sums(s, true), before);
	}
}

/* Calls that cannot be right are refused at once, with nothing queued. */
static void test_invalid_args(struct init *s)
{
	const struct fx_region *r = reg(s, R_BIG);
	struct iovec iov[17];
	struct fi_rma_iov rio[17];
	struct fi_msg_rma msg = { .msg_iov = iov, .addr = s->peer,
				  .rma_iov = rio };
	size_t n = s->iov_limit + 1, m = s->rma_iov_limit + 1;
	uint64_t before = target_sums(s, true);

	if (n > 17 || m > 17)
		return;
	for (size_t i = 0; i < 17; i++) {
		iov[i] = (struct iovec) { s->lbuf + i * 16, 16 };
		rio[i] = (struct fi_rma_iov) { r->addr + i * 16, 16, r->key };
	}
	CHECK(fi_writev(s->fx.ep, iov, NULL, n, s->peer, r->addr, r->key,
			NULL) < 0);
	CHECK(fi_readv(s->fx.ep, iov, NULL, n, s->peer, r->addr, r->key,
		       NULL) < 0);
	msg.iov_count = 1;
	msg.rma_iov_count = m;
	iov[0].iov_len = m * 16;
	CHECK(fi_writemsg(s->fx.ep, &msg, FI_COMPLETION) < 0);
	/* Local and remote lengths differ. */
	msg.rma_iov_count = 2;
	CHECK(fi_writemsg(s->fx.ep, &msg, FI_COMPLETION) < 0);
	CHECK(fi_readmsg(s->fx.ep, &msg, FI_COMPLETION) < 0);
	msg.rma_iov_count = 0;
	CHECK(fi_writemsg(s->fx.ep, &msg, FI_COMPLETION) < 0);
	/* An address not in the AV. */
	CHECK(fi_write(s->fx.ep, s->lbuf, 8, NULL, s->peer + 100, r->addr,
		       r->key, NULL) < 0);
	CHECK(fx_cq_empty(s->fx.cq));
	CHECK_EQ(target_sums(s, true), before);
}

/* The target closes a region (and frees its memory) while we hold its key. */
static void test_closed_region(struct init *s)
{
	const struct fx_region *r = reg(s, R_MAP);
	struct bad_case w = { "write to a closed region", true, R_MAP, 0,
			      false, 0, 64 };
	struct bad_case rd = { "read from a closed region", false, R_MAP, 0,
			       false, 128, 64 };
	int ctx;

	fx_fill(s->lbuf, 64, 100 + R_MAP, 0);
	CHECK_EQ(fi_write(s->fx.ep, s->lbuf, 64, NULL, s->peer, r->addr,
			  r->key, &ctx), 0);
	expect_ok(s, &ctx, FI_WRITE, 64);
	CHECK_EQ(fx_call(s->sock, C_CLOSE, R_MAP, 0, 0, 0).status, 0);
	run_bad(s, &w, false);
	run_bad(s, &rd, false);
}

/* Provider keys are random 64-bit values: distinct, not the address, not a
 * sequence.  User keys are taken as given and must be unique. */
static void test_keys(struct init *s)
{
	enum { N = 8 };
	struct fid_mr *mr[N];
	uint64_t key[N];
	char *buf = s->lbuf;
	bool high = false;

	for (int i = 0; i < N; i++) {
		CHECK_EQ(fx_reg(&s->fx, buf + i * 4096, 4096, FI_REMOTE_READ |
				FI_REMOTE_WRITE, 500 + i, &mr[i]), 0);
		key[i] = fi_mr_key(mr[i]);
	}
	if (s->fx.mr_mode & FI_MR_PROV_KEY) {
		for (int i = 0; i < N; i++) {
			high |= key[i] >> 32 != 0;
			CHECK(key[i] != (uint64_t) (uintptr_t) (buf + i * 4096));
			CHECK(key[i] != FI_KEY_NOTAVAIL);
			for (int j = 0; j < i; j++) {
				uint64_t d = key[i] > key[j] ? key[i] - key[j] :
					     key[j] - key[i];
				CHECK(d > 0xffff);
			}
		}
		CHECK(high);
		/* The target's keys too. */
		for (int i = 0; i < R_COUNT; i++)
			for (int j = 0; j < i; j++)
				CHECK(reg(s, i)->key != reg(s, j)->key);
	} else {
		struct fid_mr *dup = NULL;

		for (int i = 0; i < N; i++)
			CHECK_EQ(key[i], 500 + i);
		CHECK_EQ(fx_reg(&s->fx, buf, 64, FI_REMOTE_READ, 503, &dup),
			 -FI_ENOKEY);
		CHECK(reg(s, R_BIG)->key == 0xabc0 + R_BIG);
		CHECK_EQ(reg(s, R_BIG)->addr, 0);	/* offset addressing */
	}
	for (int i = 0; i < N; i++)
		CHECK_EQ(fi_close(&mr[i]->fid), 0);
	if (!(s->fx.mr_mode & FI_MR_PROV_KEY)) {
		/* A closed region's key may be used again. */
		CHECK_EQ(fx_reg(&s->fx, buf, 64, FI_REMOTE_READ, 503, &mr[0]),
			 0);
		CHECK_EQ(fi_close(&mr[0]->fid), 0);
	}
}

static void run_suite(uint64_t mr_mode, int sock, pid_t pid)
{
	struct init s = { .sock = sock };
	int ret = fx_open(&s.fx, RMA_CAPS, mr_mode);

	printf("suite mr_mode 0x%llx\n", (unsigned long long) mr_mode);
	CHECK_EQ(ret, 0);
	CHECK_EQ(fx_recv_all(sock, &s.h, sizeof(s.h)), 0);
	if (ret || s.h.nregions != R_COUNT) {
		fprintf(stderr, "suite 0x%llx: set-up failed (%s)\n",
			(unsigned long long) mr_mode, fi_strerror(-ret));
		fx_close(&s.fx);
		return;
	}
	CHECK_EQ(s.fx.mr_mode, mr_mode);
	CHECK((s.fx.info->caps & RMA_CAPS) == RMA_CAPS);
	s.iov_limit = s.fx.info->tx_attr->iov_limit;
	s.rma_iov_limit = s.fx.info->tx_attr->rma_iov_limit;
	s.inject_size = s.fx.info->tx_attr->inject_size;
	CHECK(s.iov_limit >= 1 && s.rma_iov_limit >= 1);
	s.peer = fx_insert(&s.fx, s.h.addr);
	CHECK(s.peer != FI_ADDR_NOTAVAIL);
	s.lbuf = aligned_alloc(4096, BIG_LEN + 4096);
	memset(s.lbuf, 0, BIG_LEN + 4096);

	test_sizes(&s);
	test_vectors(&s);
	test_msg_calls(&s);
	test_inject(&s);
	test_writedata(&s);
	test_counters(&s);
	test_keys(&s);
	test_bad_input(&s);
	test_invalid_args(&s);
	test_closed_region(&s);

	fx_call(sock, C_EXIT, 0, 0, 0, 0);
	CHECK_EQ(fx_reap(pid), 0);
	close(sock);
	free(s.lbuf);
	fx_close(&s.fx);
}

/* One process, its own address in its AV. */
static void test_self(void)
{
	struct fx f;
	struct fid_mr *mr;
	struct fi_cq_data_entry e;
	size_t len = 300000;
	char *src = malloc(len), *dst = calloc(1, len);
	fi_addr_t me;
	uint64_t base, key;
	int ctx;

	CHECK_EQ(fx_open(&f, RMA_CAPS, FX_MR_OMPI), 0);
	me = fx_insert(&f, f.addr);
	CHECK(me != FI_ADDR_NOTAVAIL);
	CHECK_EQ(fx_reg(&f, dst, len, FI_REMOTE_READ | FI_REMOTE_WRITE, 0,
			&mr), 0);
	base = fx_rma_base(&f, dst);
	key = fi_mr_key(mr);
	fx_fill(src, len, 3, 0);
	CHECK_EQ(fi_writedata(f.ep, src, len, NULL, 42, me, base, key, &ctx),
		 0);
	for (int i = 0; i < 2; i++) {
		/* The write's completion and the remote CQ data, any order. */
		CHECK_EQ(fx_wait(f.cq, &e, NULL), 1);
		if (e.flags & FI_REMOTE_CQ_DATA) {
			CHECK_EQ(e.data, 42);
			CHECK(e.flags & FI_REMOTE_WRITE);
		} else {
			CHECK(e.op_context == &ctx);
			CHECK_EQ(e.flags & (FI_RMA | FI_WRITE),
				 FI_RMA | FI_WRITE);
		}
	}
	CHECK(!memcmp(src, dst, len));
	memset(src, 0, len);
	CHECK_EQ(fi_read(f.ep, src, len, NULL, me, base, key, &ctx), 0);
	CHECK_EQ(fx_wait(f.cq, &e, NULL), 1);
	CHECK_EQ(fx_verify(src, len, 3, 0), len);
	CHECK_EQ(fi_cntr_read(f.cntr[FX_CNTR_REM_WR]), 1);
	CHECK_EQ(fi_cntr_read(f.cntr[FX_CNTR_REM_RD]), 1);
	CHECK_EQ(fi_close(&mr->fid), 0);
	/* After fi_close the key is dead, locally too. */
	CHECK_EQ(fi_write(f.ep, src, 8, NULL, me, base, key, &ctx), 0);
	struct fi_cq_err_entry err;
	CHECK_EQ(fx_wait(f.cq, NULL, &err), 0);
	CHECK_EQ(err.err, FI_EACCES);
	fx_close(&f);
	free(src);
	free(dst);
}

int main(void)
{
	static const uint64_t modes[] = { FX_MR_OMPI, FX_MR_USER };
	int sock[2];
	pid_t pid[2];

	alarm(120);
	/* Fork every target before this process touches libfabric. */
	for (int i = 0; i < 2; i++) {
		pid[i] = spawn_target(modes[i], &sock[i]);
		CHECK(pid[i] > 0);
		if (pid[i] <= 0)
			return usb4_test_done("test_rma");
	}
	for (int i = 0; i < 2; i++)
		run_suite(modes[i], sock[i], pid[i]);
	test_self();
	return usb4_test_done("test_rma");
}
