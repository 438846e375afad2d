/*
 * Atomics through libfabric (fi_atomic) on the usb4 provider.
 *
 * A forked target process registers an array and two counters and serves
 * until told to exit; the parent is the initiator.  For every (datatype, op)
 * pair of libfabric 1.17 the query calls must agree with each other and with
 * the support we claim; every supported pair runs through each call family
 * (plain, v, msg, inject) with count 1 and count 4, and the target and the
 * fetched values are compared with a reference computed here from the
 * formulas of fi_atomic(3).  Unsupported pairs must fail and leave the target
 * alone.  Last, the parent and two forked workers hammer one counter in the
 * target with fetch-add and compare-swap loops.
 */
#include <complex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define AT_CAPS		(FI_ATOMIC | FI_RMA)
#define ARR_LEN		4096
#define CNT_LEN		64
#define WIN		8	/* elements read and written around a test */
#define ELEM_MAX	32	/* long double complex */
#define N_DT		(FI_UINT128 + 1)
#define N_OP		FI_ATOMIC_OP_LAST
#define CONC_ITERS	20000
#define CONC_PROCS	3	/* the parent and two workers */

enum { R_ARR, R_CNT, R_RO, R_COUNT };
enum { C_SUM, C_EXIT };
enum kind { K_BASE, K_FETCH, K_COMPARE, K_COUNT };

static const char *kind_name[K_COUNT] = { "atomic", "fetch", "compare" };

/* ---- what the provider claims (DESIGN: what MPI one-sided needs) ------ */

static size_t dt_size(int dt)
{
	switch (dt) {
	case FI_INT8: case FI_UINT8: return 1;
	case FI_INT16: case FI_UINT16: return 2;
	case FI_INT32: case FI_UINT32: case FI_FLOAT: return 4;
	case FI_INT64: case FI_UINT64: case FI_DOUBLE: return 8;
	case FI_FLOAT_COMPLEX: return sizeof(float complex);
	case FI_DOUBLE_COMPLEX: return sizeof(double complex);
	case FI_LONG_DOUBLE: return sizeof(long double);
	case FI_LONG_DOUBLE_COMPLEX: return sizeof(long double complex);
	default: return 16;	/* 128-bit integers */
	}
}

static bool dt_int(int dt) { return dt <= FI_UINT64; }
static bool dt_signed(int dt) { return dt_int(dt) && !(dt & 1); }
static bool dt_real(int dt)
{
	return dt == FI_FLOAT || dt == FI_DOUBLE || dt == FI_LONG_DOUBLE;
}
static bool dt_cplx(int dt)
{
	return dt == FI_FLOAT_COMPLEX || dt == FI_DOUBLE_COMPLEX ||
	       dt == FI_LONG_DOUBLE_COMPLEX;
}

static bool expect_supported(enum kind k, int dt, int op)
{
	bool in_kind = k == K_BASE ? op <= FI_BXOR || op == FI_ATOMIC_WRITE :
		       k == K_FETCH ? op <= FI_ATOMIC_WRITE :
		       op >= FI_CSWAP && op <= FI_MSWAP;
	bool bits = op == FI_BOR || op == FI_BAND || op == FI_BXOR ||
		    op == FI_MSWAP;
	bool cplx_ok = op == FI_SUM || op == FI_PROD || op == FI_ATOMIC_READ ||
		       op == FI_ATOMIC_WRITE || op == FI_CSWAP ||
		       op == FI_CSWAP_NE;

	if (!in_kind)
		return false;
	if (dt_int(dt))
		return true;
	if (dt_real(dt))
		return !bits;
	if (dt_cplx(dt))
		return cplx_ok;
	return false;
}

/* ---- values and the reference -------------------------------------- */

/* One element, wide: integers in u (signed ones sign-extended). */
struct num {
	uint64_t u;
	long double r;
	long double complex z;
};

static void put(int dt, void *p, const struct num *n)
{
	switch (dt) {
	case FI_INT8: *(int8_t *) p = (int8_t) n->u; break;
	case FI_UINT8: *(uint8_t *) p = (uint8_t) n->u; break;
	case FI_INT16: *(int16_t *) p = (int16_t) n->u; break;
	case FI_UINT16: *(uint16_t *) p = (uint16_t) n->u; break;
	case FI_INT32: *(int32_t *) p = (int32_t) n->u; break;
	case FI_UINT32: *(uint32_t *) p = (uint32_t) n->u; break;
	case FI_INT64: *(int64_t *) p = (int64_t) n->u; break;
	case FI_UINT64: *(uint64_t *) p = n->u; break;
	case FI_FLOAT: *(float *) p = (float) n->r; break;
	case FI_DOUBLE: *(double *) p = (double) n->r; break;
	case FI_LONG_DOUBLE: *(long double *) p = n->r; break;
	case FI_FLOAT_COMPLEX: *(float complex *) p = (float complex) n->z;
		break;
	case FI_DOUBLE_COMPLEX: *(double complex *) p = (double complex) n->z;
		break;
	case FI_LONG_DOUBLE_COMPLEX: *(long double complex *) p = n->z; break;
	default: memset(p, (int) n->u, 16); break;
	}
}

static struct num get(int dt, const void *p)
{
	struct num n = { 0 };

	switch (dt) {
	case FI_INT8: n.u = (uint64_t) (int64_t) *(const int8_t *) p; break;
	case FI_UINT8: n.u = *(const uint8_t *) p; break;
	case FI_INT16: n.u = (uint64_t) (int64_t) *(const int16_t *) p; break;
	case FI_UINT16: n.u = *(const uint16_t *) p; break;
	case FI_INT32: n.u = (uint64_t) (int64_t) *(const int32_t *) p; break;
	case FI_UINT32: n.u = *(const uint32_t *) p; break;
	case FI_INT64: case FI_UINT64: memcpy(&n.u, p, 8); break;
	case FI_FLOAT: n.r = *(const float *) p; break;
	case FI_DOUBLE: n.r = *(const double *) p; break;
	case FI_LONG_DOUBLE: n.r = *(const long double *) p; break;
	case FI_FLOAT_COMPLEX: n.z = *(const float complex *) p; break;
	case FI_DOUBLE_COMPLEX: n.z = *(const double complex *) p; break;
	case FI_LONG_DOUBLE_COMPLEX: n.z = *(const long double complex *) p;
		break;
	default: n.u = *(const uint8_t *) p; break;
	}
	return n;
}

static bool num_eq(int dt, const struct num *a, const struct num *b)
{
	if (dt_real(dt))
		return a->r == b->r;
	if (dt_cplx(dt))
		return creall(a->z) == creall(b->z) &&
		       cimagl(a->z) == cimagl(b->z);
	return a->u == b->u;
}

/* An element of type dt made from a small integer (exact in every type). */
static void make(int dt, void *p, int64_t v)
{
	struct num n = { .u = (uint64_t) v, .r = (long double) v,
			 .z = (long double) v + (long double) v / 2 * I };

	put(dt, p, &n);
}

/* -1, 0, 1 as a compares to b (integers by the type's signedness). */
static int order(int dt, const struct num *a, const struct num *b)
{
	if (dt_real(dt))
		return a->r < b->r ? -1 : a->r > b->r;
	if (dt_signed(dt))
		return (int64_t) a->u < (int64_t) b->u ? -1 :
		       (int64_t) a->u > (int64_t) b->u;
	return a->u < b->u ? -1 : a->u > b->u;
}

static bool truth(int dt, const struct num *a)
{
	return dt_real(dt) ? a->r != 0 : a->u != 0;
}

/* Whether a compare-swap of op stores the operand (fi_atomic(3)). */
static bool swaps(int dt, int op, const struct num *t, const struct num *c)
{
	int o = dt_cplx(dt) ? (num_eq(dt, c, t) ? 0 : 2) : order(dt, c, t);

	switch (op) {
	case FI_CSWAP: return o == 0;
	case FI_CSWAP_NE: return o != 0;
	case FI_CSWAP_LE: return o <= 0;
	case FI_CSWAP_LT: return o < 0;
	case FI_CSWAP_GE: return o >= 0;
	case FI_CSWAP_GT: return o > 0;
	}
	return false;
}

/* The new target for target t, operand s and compare c. */
static struct num reference(int dt, int op, struct num t, struct num s,
			    struct num c)
{
	struct num r = t;
	bool logic = false, lv = false;

	switch (op) {
	case FI_MIN: if (order(dt, &s, &t) < 0) r = s; break;
	case FI_MAX: if (order(dt, &s, &t) > 0) r = s; break;
	case FI_SUM: r.u = t.u + s.u; r.r = t.r + s.r; r.z = t.z + s.z; break;
	case FI_PROD: r.u = t.u * s.u; r.r = t.r * s.r; r.z = t.z * s.z; break;
	case FI_LOR: logic = true; lv = truth(dt, &t) || truth(dt, &s); break;
	case FI_LAND: logic = true; lv = truth(dt, &t) && truth(dt, &s); break;
	case FI_LXOR: logic = true; lv = truth(dt, &t) != truth(dt, &s); break;
	case FI_BOR: r.u = t.u | s.u; break;
	case FI_BAND: r.u = t.u & s.u; break;
	case FI_BXOR: r.u = t.u ^ s.u; break;
	case FI_ATOMIC_READ: break;
	case FI_ATOMIC_WRITE: r = s; break;
	case FI_MSWAP: r.u = (s.u & c.u) | (t.u & ~c.u); break;
	default: if (swaps(dt, op, &t, &c)) r = s; break;
	}
	if (logic) {
		r.u = lv;
		r.r = lv;
	}
	return r;
}

/* Operand sets: element i of target, operand and compare.  Element 0 has
 * t > s, 1 t < s, 2 t == s, 3 t > s; compare is equal, above, equal, below
 * the target; zeros exercise the logical operations. */
static const int64_t t_init[4] = { 5, 0, -3, 6 };
static const int64_t s_init[4] = { 0, 4, -3, 2 };
static const int64_t c_init[4] = { 5, 1, -3, 2 };

/* ---- the target process --------------------------------------------- */

static int target_main(int sock)
{
	static const uint64_t access[R_COUNT] = {
		FI_REMOTE_READ | FI_REMOTE_WRITE,
		FI_REMOTE_READ | FI_REMOTE_WRITE, FI_REMOTE_READ,
	};
	static const size_t len[R_COUNT] = { ARR_LEN, CNT_LEN, CNT_LEN };
	struct fx f;
	struct fid_mr *mr[R_COUNT];
	char *buf[R_COUNT];
	struct fx_hello h = { .nregions = R_COUNT };
	struct fx_cmd c;
	int ret = fx_open(&f, AT_CAPS, FX_MR_OMPI);

	for (int i = 0; i < R_COUNT && !ret; i++) {
		buf[i] = aligned_alloc(64, len[i]);
		memset(buf[i], 0, len[i]);
		ret = fx_reg(&f, buf[i], len[i], access[i], 0, &mr[i]);
		h.region[i] = (struct fx_region) {
			.addr = fx_rma_base(&f, buf[i]),
			.key = ret ? 0 : fi_mr_key(mr[i]), .len = len[i],
		};
	}
	if (ret)
		return 2;
	memcpy(h.addr, f.addr, f.addrlen);
	h.addrlen = f.addrlen;
	h.pid = getpid();
	if (fx_send_all(sock, &h, sizeof(h)))
		return 2;
	for (;;) {
		struct fx_reply r = { 0 };

		if (!fx_readable(sock, 1)) {
			fi_cq_read(f.cq, NULL, 0);
			continue;
		}
		if (fx_recv_all(sock, &c, sizeof(c)) || c.op == C_EXIT)
			break;
		r.v[0] = fx_sum(buf[c.region], len[c.region]);
		if (fx_send_all(sock, &r, sizeof(r)))
			break;
	}
	for (int i = 0; i < R_COUNT; i++) {
		fi_close(&mr[i]->fid);
		free(buf[i]);
	}
	fx_close(&f);
	return 0;
}

/* ---- the initiator -------------------------------------------------- */

struct init {
	struct fx fx;
	fi_addr_t peer;
	struct fx_hello h;
	int sock;
};

static void wait_done(struct init *s, void *ctx, enum kind k)
{
	struct fi_cq_data_entry e;
	struct fi_cq_err_entry err;
	int ret = fx_wait(s->fx.cq, &e, &err);

	CHECK_EQ(ret, 1);
	if (ret == 0)
		fprintf(stderr, "  error completion: %s\n",
			fi_strerror(err.err));
	if (ret != 1)
		return;
	CHECK(e.op_context == ctx);
	CHECK(e.flags & FI_ATOMIC);
	CHECK_EQ(e.flags & (FI_READ | FI_WRITE),
		 k == K_BASE ? FI_WRITE : FI_READ);
}

/* Writes the window (guards and targets) into the target array. */
static void win_store(struct init *s, const char *win, size_t bytes)
{
	const struct fx_region *r = &s->h.region[R_ARR];
	int ctx;

	CHECK_EQ(fi_write(s->fx.ep, win, bytes, NULL, s->peer, r->addr,
			  r->key, &ctx), 0);
	CHECK_EQ(fx_wait(s->fx.cq, NULL, NULL), 1);
}

static void win_load(struct init *s, char *win, size_t bytes)
{
	const struct fx_region *r = &s->h.region[R_ARR];
	int ctx;

	CHECK_EQ(fi_read(s->fx.ep, win, bytes, NULL, s->peer, r->addr,
			 r->key, &ctx), 0);
	CHECK_EQ(fx_wait(s->fx.cq, NULL, NULL), 1);
}

/* One operation on count elements starting at element first of the
 * window, issued through call variant v of kind k. */
struct at_call {
	enum kind k;
	int dt, op, v;
	size_t first, count;
	const char *src, *cmp;
	char *res;
};

static ssize_t issue(struct init *s, const struct at_call *a, void *ctx)
{
	const struct fx_region *r = &s->h.region[R_ARR];
	size_t sz = dt_size(a->dt), n1 = a->count > 1 ? 1 : a->count;
	uint64_t addr = r->addr + a->first * sz;
	struct fid_ep *ep = s->fx.ep;
	/* Two pieces each: 1 + rest of operand, compare and result. */
	struct fi_ioc src[2] = { { (void *) a->src, n1 },
				 { (void *) (a->src + sz), a->count - n1 } };
	struct fi_ioc cmp[2] = { { (void *) a->cmp, n1 },
				 { (void *) (a->cmp + sz), a->count - n1 } };
	struct fi_ioc res[2] = { { a->res, a->count > 1 ? a->count - 1 : 1 },
				 { a->res + (a->count - 1) * sz, 1 } };
	size_t nv = a->count > 1 ? 2 : 1, h = a->count / 2;
	struct fi_rma_ioc rio[2] = { { addr, a->count - h, r->key },
				     { addr + (a->count - h) * sz, h, r->key } };
	struct fi_msg_atomic msg = {
		.msg_iov = src, .iov_count = nv, .addr = s->peer,
		.rma_iov = rio, .rma_iov_count = h ? 2 : 1,
		.datatype = a->dt, .op = a->op, .context = ctx,
	};

	switch (a->k * 4 + a->v) {
	case K_BASE * 4 + 0:
		return fi_atomic(ep, a->src, a->count, NULL, s->peer, addr,
				 r->key, a->dt, a->op, ctx);
	case K_BASE * 4 + 1:
		return fi_atomicv(ep, src, NULL, nv, s->peer, addr, r->key,
				  a->dt, a->op, ctx);
	case K_BASE * 4 + 2:
		return fi_atomicmsg(ep, &msg, FI_COMPLETION);
	case K_BASE * 4 + 3:
		return fi_inject_atomic(ep, a->src, a->count, s->peer, addr,
					r->key, a->dt, a->op);
	case K_FETCH * 4 + 0:
		return fi_fetch_atomic(ep, a->src, a->count, NULL, a->res,
				       NULL, s->peer, addr, r->key, a->dt,
				       a->op, ctx);
	case K_FETCH * 4 + 1:
		return fi_fetch_atomicv(ep, src, NULL, nv, res, NULL, nv,
					s->peer, addr, r->key, a->dt, a->op,
					ctx);
	case K_FETCH * 4 + 2:
		return fi_fetch_atomicmsg(ep, &msg, res, NULL, nv,
					  FI_COMPLETION);
	case K_COMPARE * 4 + 0:
		return fi_compare_atomic(ep, a->src, a->count, NULL, a->cmp,
					 NULL, a->res, NULL, s->peer, addr,
					 r->key, a->dt, a->op, ctx);
	case K_COMPARE * 4 + 1:
		return fi_compare_atomicv(ep, src, NULL, nv, cmp, NULL, nv,
					  res, NULL, nv, s->peer, addr, r->key,
					  a->dt, a->op, ctx);
	case K_COMPARE * 4 + 2:
		return fi_compare_atomicmsg(ep, &msg, cmp, NULL, nv, res, NULL,
					    nv, FI_COMPLETION);
	}
	return -FI_ENOSYS;
}

static int variants(enum kind k)
{
	return k == K_BASE ? 4 : 3;
}

/* Builds a window: guards around t_init, operands and compares. */
static void build(int dt, char *win, char *src, char *cmp, size_t first,
		  size_t count)
{
	size_t sz = dt_size(dt);

	/* Zero the padding of long double (10 bytes in 16) too. */
	memset(win, 0, WIN * sz);
	memset(src, 0, WIN * sz);
	memset(cmp, 0, WIN * sz);
	for (size_t i = 0; i < WIN; i++)
		make(dt, win + i * sz, 40 + (int64_t) i);
	for (size_t i = 0; i < count; i++) {
		size_t e = count == 1 ? 1 : i;	/* count 1 uses element 1 */
		make(dt, win + (first + i) * sz, t_init[e]);
		make(dt, src + i * sz, s_init[e]);
		make(dt, cmp + i * sz, c_init[e]);
	}
}

static bool run_one(struct init *s, struct at_call *a)
{
	size_t sz = dt_size(a->dt), bytes = WIN * sz;
	char win[WIN * ELEM_MAX], after[WIN * ELEM_MAX];
	char src[WIN * ELEM_MAX], cmp[WIN * ELEM_MAX], res[WIN * ELEM_MAX];
	int fails = usb4_test_failures, ctx;
	ssize_t ret;

	build(a->dt, win, src, cmp, a->first, a->count);
	memset(res, 0x6b, sizeof(res));
	win_store(s, win, bytes);
	a->src = src;
	a->cmp = cmp;
	a->res = res;
	ret = issue(s, a, &ctx);
	CHECK_EQ(ret, 0);
	if (!ret && !(a->k == K_BASE && a->v == 3))
		wait_done(s, &ctx, a->k);
	CHECK(fx_cq_empty(s->fx.cq));
	win_load(s, after, bytes);
	for (size_t i = 0; i < WIN; i++) {
		struct num got = get(a->dt, after + i * sz);
		struct num want = get(a->dt, win + i * sz);
		size_t j = i - a->first;

		if (i >= a->first && j < a->count) {
			struct num old = want;
			want = reference(a->dt, a->op, old,
					 get(a->dt, src + j * sz),
					 get(a->dt, cmp + j * sz));
			put(a->dt, win + i * sz, &want);  /* to the type */
			want = get(a->dt, win + i * sz);
			if (a->k != K_BASE) {
				struct num f = get(a->dt, res + j * sz);
				CHECK(num_eq(a->dt, &f, &old));
			}
		}
		CHECK(num_eq(a->dt, &got, &want));
	}
	return fails == usb4_test_failures;
}

/* An unsupported pair fails (negative return or an FI_EOPNOTSUPP error
 * completion) and leaves target and result alone. */
static bool run_unsupported(struct init *s, struct at_call *a)
{
	size_t sz = dt_size(a->dt), bytes = WIN * sz;
	char win[WIN * ELEM_MAX], after[WIN * ELEM_MAX];
	char src[WIN * ELEM_MAX], cmp[WIN * ELEM_MAX], res[WIN * ELEM_MAX];
	int fails = usb4_test_failures, ctx;
	struct fi_cq_err_entry err;
	ssize_t ret;

	build(a->dt, win, src, cmp, a->first, a->count);
	memset(res, 0x6b, sizeof(res));
	win_store(s, win, bytes);
	a->src = src;
	a->cmp = cmp;
	a->res = res;
	ret = issue(s, a, &ctx);
	if (ret == 0) {
		CHECK_EQ(fx_wait(s->fx.cq, NULL, &err), 0);
		CHECK_EQ(err.err, FI_EOPNOTSUPP);
		CHECK(err.op_context == (a->v == 3 && a->k == K_BASE ?
					 NULL : (void *) &ctx));
	} else {
		CHECK(ret < 0);
	}
	CHECK(fx_cq_empty(s->fx.cq));
	win_load(s, after, bytes);
	CHECK(!memcmp(after, win, bytes));
	for (size_t i = 0; i < sizeof(res); i++)
		if (res[i] != 0x6b) {
			CHECK(!"result buffer written");
			break;
		}
	return fails == usb4_test_failures;
}

/* fi_query_atomic and fi_*atomicvalid agree with each other and with what
 * we claim; returns whether the pair is supported. */
static bool check_query(struct init *s, enum kind k, int dt, int op)
{
	static const uint64_t qflags[K_COUNT] = {
		0, FI_FETCH_ATOMIC, FI_COMPARE_ATOMIC,
	};
	struct fi_atomic_attr attr = { 0 };
	size_t count = 0;
	int q = fi_query_atomic(s->fx.domain, dt, op, &attr, qflags[k]);
	int v = k == K_BASE ? fi_atomicvalid(s->fx.ep, dt, op, &count) :
		k == K_FETCH ? fi_fetch_atomicvalid(s->fx.ep, dt, op, &count) :
		fi_compare_atomicvalid(s->fx.ep, dt, op, &count);
	bool want = expect_supported(k, dt, op);

	CHECK_EQ(q == 0, v == 0);
	CHECK_EQ(v == 0, want);
	if (q == 0 && v == 0) {
		CHECK_EQ(attr.size, dt_size(dt));
		CHECK_EQ(attr.count, count);
		CHECK(count >= 4);
	} else {
		CHECK(q < 0 && v < 0);
	}
	if ((q == 0) != want || (v == 0) != want)
		fprintf(stderr, "  %s dt %d op %d: query %d valid %d\n",
			kind_name[k], dt, op, q, v);
	return v == 0;
}

static void test_table(struct init *s)
{
	int pairs = 0, runs = 0, unsupported = 0;

	for (int k = 0; k < K_COUNT; k++)
		for (int dt = 0; dt < N_DT; dt++)
			for (int op = 0; op < N_OP; op++) {
				bool ok = check_query(s, k, dt, op);
				struct at_call a = { .k = k, .dt = dt,
						     .op = op };

				pairs++;
				for (a.v = 0; a.v < variants(k); a.v++)
					for (int c = 0; c < 2; c++) {
						a.count = c ? 4 : 1;
						a.first = c ? 2 : 3;
						bool good = ok ?
							run_one(s, &a) :
							run_unsupported(s, &a);
						if (!good)
							fprintf(stderr,
							"  %s v%d dt %d op %d "
							"count %zu\n",
							kind_name[k], a.v, dt,
							op, a.count);
						ok ? runs++ : unsupported++;
					}
			}
	printf("table: %d (kind, datatype, op) triples, %d supported runs, "
	       "%d unsupported runs\n", pairs, runs, unsupported);
}

/* Refused with an error completion (or a negative return), target intact. */
static void expect_refused(struct init *s, ssize_t ret, uint64_t before,
			   const char *what)
{
	struct fi_cq_err_entry err;
	int fails = usb4_test_failures;

	CHECK(ret <= 0);
	if (ret == 0) {
		CHECK_EQ(fx_wait(s->fx.cq, NULL, &err), 0);
		CHECK(err.err == FI_EINVAL || err.err == FI_EACCES);
	}
	CHECK(fx_cq_empty(s->fx.cq));
	CHECK_EQ(fx_call(s->sock, C_SUM, R_ARR, 0, 0, 0).v[0], before);
	if (fails != usb4_test_failures)
		fprintf(stderr, "  bad shape: %s\n", what);
}

/* Element counts that overflow a byte length, a good segment followed by
 * a bad one, result lists that do not match the operation. */
static void test_bad_shapes(struct init *s)
{
	const struct fx_region *arr = &s->h.region[R_ARR];
	uint64_t src[8] = { 1, 1, 1, 1, 1, 1, 1, 1 }, res[8] = { 0 };
	uint64_t before = fx_call(s->sock, C_SUM, R_ARR, 0, 0, 0).v[0];
	/* (2^62 + 1) four-byte elements are 4 bytes modulo 2^64. */
	size_t huge = ((size_t) 1 << 62) + 1;
	struct fi_ioc ioc = { src, 1 }, rioc = { res, 8 };
	struct fi_rma_ioc rio[2] = {
		{ arr->addr, 1, arr->key },
		{ arr->addr + 8, 1, arr->key ^ 0x99ull },
	};
	struct fi_msg_atomic msg = {
		.msg_iov = &ioc, .iov_count = 1, .addr = s->peer,
		.rma_iov = rio, .rma_iov_count = 2, .datatype = FI_UINT64,
		.op = FI_SUM, .context = &ioc,
	};
	int ctx;

	expect_refused(s, fi_atomic(s->fx.ep, src, huge, NULL, s->peer,
				    arr->addr, arr->key, FI_UINT32, FI_SUM,
				    &ctx), before, "count * size wraps");
	/* Segment counts whose sum wraps to the operand count. */
	rio[0].count = 1ull << 63;
	rio[1] = (struct fi_rma_ioc) { arr->addr, (1ull << 63) + 1, arr->key };
	ioc.count = 1;
	expect_refused(s, fi_atomicmsg(s->fx.ep, &msg, FI_COMPLETION), before,
		       "segment counts wrap");
	/* Good first segment, unknown key in the second: nothing changes. */
	ioc.count = 2;
	rio[0] = (struct fi_rma_ioc) { arr->addr, 1, arr->key };
	rio[1] = (struct fi_rma_ioc) { arr->addr + 8, 1, arr->key ^ 0x99ull };
	expect_refused(s, fi_atomicmsg(s->fx.ep, &msg, FI_COMPLETION), before,
		       "second segment refused");
	rio[1] = (struct fi_rma_ioc) { arr->addr + ARR_LEN, 1, arr->key };
	expect_refused(s, fi_fetch_atomicmsg(s->fx.ep, &msg, &rioc, NULL, 1,
					     FI_COMPLETION), before,
		       "second segment out of bounds (fetch)");
	/* A result list longer than the operation. */
	rio[1] = (struct fi_rma_ioc) { arr->addr + 8, 1, arr->key };
	rioc.count = (size_t) 1 << 40;
	expect_refused(s, fi_fetch_atomicmsg(s->fx.ep, &msg, &rioc, NULL, 1,
					     FI_COMPLETION), before,
		       "result list longer than the operation");
	CHECK_EQ(res[0], 0);
}

/* READ with no operand buffer; misaligned, wrongly keyed and read-only
 * targets give error completions and touch nothing. */
static void test_edges(struct init *s)
{
	const struct fx_region *arr = &s->h.region[R_ARR];
	const struct fx_region *ro = &s->h.region[R_RO];
	uint64_t one = 1, res = 0, before;
	struct fi_cq_err_entry err;
	char win[64];
	int ctx;

	for (int i = 0; i < 8; i++)
		make(FI_UINT64, win + i * 8, 1000 + i);
	win_store(s, win, sizeof(win));
	CHECK_EQ(fi_fetch_atomic(s->fx.ep, NULL, 1, NULL, &res, NULL, s->peer,
				 arr->addr + 8, arr->key, FI_UINT64,
				 FI_ATOMIC_READ, &ctx), 0);
	wait_done(s, &ctx, K_FETCH);
	CHECK_EQ(res, 1001);

	before = fx_call(s->sock, C_SUM, R_ARR, 0, 0, 0).v[0];
	struct { const char *name; uint64_t addr, key; int err; } bad[] = {
		{ "misaligned", arr->addr + 1, arr->key, FI_EINVAL },
		{ "misaligned by 4", arr->addr + 12, arr->key, FI_EINVAL },
		{ "unknown key", arr->addr, arr->key ^ 0x1234ull, FI_EACCES },
		{ "past the end", arr->addr + ARR_LEN - 4, arr->key,
		  FI_EACCES },
		{ "read-only region", ro->addr, ro->key, FI_EACCES },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fails = usb4_test_failures;

		CHECK_EQ(fi_atomic(s->fx.ep, &one, 1, NULL, s->peer,
				   bad[i].addr, bad[i].key, FI_UINT64, FI_SUM,
				   &ctx), 0);
		CHECK_EQ(fx_wait(s->fx.cq, NULL, &err), 0);
		CHECK_EQ(err.err, bad[i].err);
		CHECK(err.op_context == &ctx);
		res = 77;
		CHECK_EQ(fi_fetch_atomic(s->fx.ep, &one, 1, NULL, &res, NULL,
					 s->peer, bad[i].addr, bad[i].key,
					 FI_UINT64, FI_SUM, &ctx), 0);
		CHECK_EQ(fx_wait(s->fx.cq, NULL, &err), 0);
		CHECK_EQ(err.err, bad[i].err);
		CHECK_EQ(res, 77);
		if (fails != usb4_test_failures)
			fprintf(stderr, "  edge case: %s\n", bad[i].name);
	}
	CHECK_EQ(fx_call(s->sock, C_SUM, R_ARR, 0, 0, 0).v[0], before);
	/* A read-only region may still be read atomically. */
	CHECK_EQ(fi_fetch_atomic(s->fx.ep, NULL, 1, NULL, &res, NULL, s->peer,
				 ro->addr, ro->key, FI_UINT64, FI_ATOMIC_READ,
				 &ctx), 0);
	wait_done(s, &ctx, K_FETCH);
	CHECK_EQ(res, 0);
	/* More elements than advertised is refused. */
	size_t max = 0;
	CHECK_EQ(fi_atomicvalid(s->fx.ep, FI_UINT8, FI_SUM, &max), 0);
	CHECK(max >= 4 && max <= ARR_LEN);
	test_bad_shapes(s);
	/* And the endpoint still works. */
	res = 0;
	CHECK_EQ(fi_fetch_atomic(s->fx.ep, &one, 1, NULL, &res, NULL, s->peer,
				 arr->addr, arr->key, FI_UINT64, FI_SUM, &ctx),
		 0);
	wait_done(s, &ctx, K_FETCH);
	CHECK_EQ(res, 1000);
}

/* ---- concurrency ---------------------------------------------------- */

/* 20,000 fetch-adds of 1 on counter 0 and 20,000 compare-swap increments
 * on counter 1 of the target; returns the number of failed checks. */
static int hammer(struct fx *f, fi_addr_t peer, const struct fx_region *r)
{
	uint64_t one = 1, old, prev = 0, guess = 0, next;
	int bad = 0, ctx;

	for (int i = 0; i < CONC_ITERS; i++) {
		if (fi_fetch_atomic(f->ep, &one, 1, NULL, &old, NULL, peer,
				    r->addr, r->key, FI_UINT64, FI_SUM,
				    &ctx) || fx_wait(f->cq, NULL, NULL) != 1)
			return bad + 1;
		/* Others add too, but our own view only grows. */
		bad += i && old <= prev;
		prev = old;
	}
	for (int done = 0; done < CONC_ITERS;) {
		next = guess + 1;
		if (fi_compare_atomic(f->ep, &next, 1, NULL, &guess, NULL, &old,
				      NULL, peer, r->addr + 8, r->key,
				      FI_UINT64, FI_CSWAP, &ctx) ||
		    fx_wait(f->cq, NULL, NULL) != 1)
			return bad + 1;
		if (old == guess) {
			done++;
			guess = next;
		} else {
			guess = old;
		}
	}
	return bad;
}

static int worker_main(const struct fx_hello *h, int go)
{
	struct fx f;
	fi_addr_t peer;
	char c;
	int bad;

	if (fx_open(&f, AT_CAPS, FX_MR_OMPI))
		return 2;
	peer = fx_insert(&f, h->addr);
	if (peer == FI_ADDR_NOTAVAIL || fx_recv_all(go, &c, 1))
		return 2;
	bad = hammer(&f, peer, &h->region[R_CNT]);
	fx_close(&f);
	return bad ? 1 : 0;
}

static void test_concurrency(struct init *s, const pid_t *workers,
			     const int *go)
{
	const struct fx_region *r = &s->h.region[R_CNT];
	uint64_t v[2] = { 1, 1 };
	int ctx;

	for (int i = 0; i < CONC_PROCS - 1; i++)
		CHECK_EQ(fx_send_all(go[i], "g", 1), 0);
	CHECK_EQ(hammer(&s->fx, s->peer, r), 0);
	for (int i = 0; i < CONC_PROCS - 1; i++)
		CHECK_EQ(fx_reap(workers[i]), 0);
	CHECK_EQ(fi_read(s->fx.ep, v, sizeof(v), NULL, s->peer, r->addr,
			 r->key, &ctx), 0);
	CHECK_EQ(fx_wait(s->fx.cq, NULL, NULL), 1);
	CHECK_EQ(v[0], CONC_PROCS * CONC_ITERS);
	CHECK_EQ(v[1], CONC_PROCS * CONC_ITERS);
}

/* ---- main ----------------------------------------------------------- */

/* Atomics on our own memory through our own address. */
static void test_self(void)
{
	struct fx f;
	struct fid_mr *mr;
	uint64_t *cell = aligned_alloc(64, 64), one = 5, res = 0;
	fi_addr_t me;
	int ctx;

	memset(cell, 0, 64);
	cell[0] = 10;
	CHECK_EQ(fx_open(&f, AT_CAPS, FX_MR_USER), 0);
	me = fx_insert(&f, f.addr);
	CHECK_EQ(fx_reg(&f, cell, 64, FI_REMOTE_READ | FI_REMOTE_WRITE, 9,
			&mr), 0);
	CHECK_EQ(fi_fetch_atomic(f.ep, &one, 1, NULL, &res, NULL, me, 0, 9,
				 FI_UINT64, FI_SUM, &ctx), 0);
	CHECK_EQ(fx_wait(f.cq, NULL, NULL), 1);
	CHECK_EQ(res, 10);
	CHECK_EQ(cell[0], 15);
	CHECK_EQ(fi_inject_atomic(f.ep, &one, 1, me, 8, 9, FI_UINT64,
				  FI_ATOMIC_WRITE), 0);
	CHECK_EQ(cell[1], 5);
	CHECK(fx_cq_empty(f.cq));
	CHECK_EQ(fi_close(&mr->fid), 0);
	fx_close(&f);
	free(cell);
}

int main(void)
{
	struct init s = { 0 };
	int sv[2], go[CONC_PROCS - 1][2], go_w[CONC_PROCS - 1];
	pid_t target, workers[CONC_PROCS - 1];
	int ret;

	alarm(150);
	/* Every process is forked before this one touches libfabric. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return 1;
	target = fork();
	if (target == 0) {
		close(sv[0]);
		exit(target_main(sv[1]));
	}
	close(sv[1]);
	s.sock = sv[0];
	CHECK_EQ(fx_recv_all(s.sock, &s.h, sizeof(s.h)), 0);
	for (int i = 0; i < CONC_PROCS - 1; i++) {
		CHECK_EQ(pipe(go[i]), 0);
		workers[i] = fork();
		if (workers[i] == 0) {
			close(go[i][1]);
			exit(worker_main(&s.h, go[i][0]));
		}
		close(go[i][0]);
		go_w[i] = go[i][1];
	}
	ret = fx_open(&s.fx, AT_CAPS, FX_MR_OMPI);
	CHECK_EQ(ret, 0);
	if (ret)
		return usb4_test_done("test_atomic");
	CHECK(s.fx.info->caps & FI_ATOMIC);
	s.peer = fx_insert(&s.fx, s.h.addr);
	CHECK(s.peer != FI_ADDR_NOTAVAIL);

	test_table(&s);
	test_edges(&s);
	test_concurrency(&s, workers, go_w);
	test_self();

	fx_call(s.sock, C_EXIT, 0, 0, 0, 0);
	CHECK_EQ(fx_reap(target), 0);
	fx_close(&s.fx);
	return usb4_test_done("test_atomic");
}
