/*
 * Messaging through the public libfabric API with the built provider loaded
 * (make check sets FI_PROVIDER_PATH and FI_PROVIDER=usb4).  Two endpoints in
 * this process, each with its own CQ and one AV holding both addresses; a
 * forked child with its own endpoint where a second process matters
 * (blocking reads woken by another process, rendezvous across processes).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_tagged.h>

#include "usb4_test.h"

#define API		FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION)
#define RNDV_LEN	(1u << 20)	/* well above the default eager size */
#define SPIN_MS		2000		/* give up waiting for a completion */
#define ADDR_MAX	64

/* Two endpoints with their own CQs (and optionally counters), one AV. */
struct pair {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_ep *ep[2];
	struct fid_cq *cq[2];
	struct fid_cntr *tx_cntr[2], *rx_cntr[2];
	fi_addr_t addr[2];
	char name[2][ADDR_MAX];
	size_t namelen;
};

struct pair_opts {
	enum fi_av_type av_type;
	enum fi_cq_format format;
	bool selective;
	bool counters;
	size_t cq_size;		/* 0: the provider's default */
};

static const struct pair_opts DEFAULT_OPTS = {
	.av_type = FI_AV_MAP, .format = FI_CQ_FORMAT_TAGGED,
};

static unsigned char *sbuf, *rbuf;	/* RNDV_LEN + slack each */

/* ---- helpers ------------------------------------------------------------ */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void fill(void *p, size_t len, unsigned seed)
{
	unsigned char *c = p;

	for (size_t i = 0; i < len; i++)
		c[i] = (unsigned char) (seed * 131 + i * 7 + (i >> 8));
}

static bool same_fill(const void *p, size_t len, unsigned seed)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < len; i++)
		if (c[i] != (unsigned char) (seed * 131 + i * 7 + (i >> 8)))
			return false;
	return true;
}

static struct fi_info *make_hints(enum fi_av_type av_type)
{
	struct fi_info *h = fi_allocinfo();

	h->caps = FI_MSG | FI_TAGGED | FI_DIRECTED_RECV | FI_SOURCE |
		  FI_MULTI_RECV;
	h->ep_attr->type = FI_EP_RDM;
	h->mode = FI_CONTEXT;
	h->domain_attr->threading = FI_THREAD_SAFE;
	h->domain_attr->av_type = av_type;
	h->fabric_attr->prov_name = strdup("usb4");
	return h;
}

static int open_cq(struct fid_domain *domain, enum fi_cq_format format,
		   size_t size, struct fid_cq **cq)
{
	struct fi_cq_attr attr = { .format = format, .size = size,
				   .wait_obj = FI_WAIT_UNSPEC };

	return fi_cq_open(domain, &attr, cq, NULL);
}

/* Opens one endpoint bound to av, cq (both directions) and counters. */
static int open_ep(struct pair *p, int i, const struct pair_opts *o,
		   bool enable)
{
	uint64_t sel = o->selective ? FI_SELECTIVE_COMPLETION : 0;
	int ret;

	ret = fi_endpoint(p->domain, p->info, &p->ep[i], NULL);
	if (ret)
		return ret;
	ret = open_cq(p->domain, o->format, o->cq_size, &p->cq[i]);
	if (ret)
		return ret;
	ret = fi_ep_bind(p->ep[i], &p->av->fid, 0);
	ret = ret ? ret : fi_ep_bind(p->ep[i], &p->cq[i]->fid,
				     FI_TRANSMIT | FI_RECV | sel);
	if (!ret && o->counters) {
		struct fi_cntr_attr ca = { .events = FI_CNTR_EVENTS_COMP };
		ret = fi_cntr_open(p->domain, &ca, &p->tx_cntr[i], NULL);
		ret = ret ? ret : fi_cntr_open(p->domain, &ca, &p->rx_cntr[i],
					       NULL);
		ret = ret ? ret : fi_ep_bind(p->ep[i], &p->tx_cntr[i]->fid,
					     FI_SEND);
		ret = ret ? ret : fi_ep_bind(p->ep[i], &p->rx_cntr[i]->fid,
					     FI_RECV);
	}
	if (!ret && enable)
		ret = fi_enable(p->ep[i]);
	return ret;
}

static int pair_open(struct pair *p, const struct pair_opts *o)
{
	struct fi_info *hints = make_hints(o->av_type);
	struct fi_av_attr av_attr = { .type = o->av_type };
	int ret;

	memset(p, 0, sizeof(*p));
	ret = fi_getinfo(API, NULL, NULL, 0, hints, &p->info);
	fi_freeinfo(hints);
	if (ret)
		return ret;
	ret = fi_fabric(p->info->fabric_attr, &p->fabric, NULL);
	ret = ret ? ret : fi_domain(p->fabric, p->info, &p->domain, NULL);
	ret = ret ? ret : fi_av_open(p->domain, &av_attr, &p->av, NULL);
	for (int i = 0; i < 2 && !ret; i++)
		ret = open_ep(p, i, o, true);
	for (int i = 0; i < 2 && !ret; i++) {
		p->namelen = ADDR_MAX;
		ret = fi_getname(&p->ep[i]->fid, p->name[i], &p->namelen);
	}
	/* Addresses are packed back to back for a multi-insert. */
	if (!ret) {
		char packed[2 * ADDR_MAX];
		memcpy(packed, p->name[0], p->namelen);
		memcpy(packed + p->namelen, p->name[1], p->namelen);
		if (fi_av_insert(p->av, packed, 2, p->addr, 0, NULL) != 2)
			ret = -FI_EINVAL;
	}
	return ret;
}

static void pair_close(struct pair *p)
{
	for (int i = 0; i < 2; i++) {
		if (p->ep[i])
			CHECK_EQ(fi_close(&p->ep[i]->fid), 0);
		if (p->cq[i])
			CHECK_EQ(fi_close(&p->cq[i]->fid), 0);
		if (p->tx_cntr[i])
			CHECK_EQ(fi_close(&p->tx_cntr[i]->fid), 0);
		if (p->rx_cntr[i])
			CHECK_EQ(fi_close(&p->rx_cntr[i]->fid), 0);
	}
	if (p->av)
		CHECK_EQ(fi_close(&p->av->fid), 0);
	if (p->domain)
		CHECK_EQ(fi_close(&p->domain->fid), 0);
	if (p->fabric)
		CHECK_EQ(fi_close(&p->fabric->fid), 0);
	fi_freeinfo(p->info);
	memset(p, 0, sizeof(*p));
}

/* Reads one entry (any format, up to tagged size) or gives up. */
static ssize_t read_one(struct fid_cq *cq, void *entry, fi_addr_t *src)
{
	double end = now_s() + SPIN_MS / 1e3;
	ssize_t ret;

	do {
		ret = src ? fi_cq_readfrom(cq, entry, 1, src) :
			    fi_cq_read(cq, entry, 1);
		if (ret != -FI_EAGAIN)
			return ret;
	} while (now_s() < end);
	return ret;
}

static int read_tagged(struct fid_cq *cq, struct fi_cq_tagged_entry *e)
{
	memset(e, 0, sizeof(*e));
	return (int) read_one(cq, e, NULL);
}

/* Reads one error entry; returns its err or a negative code. */
static int read_err(struct fid_cq *cq, struct fi_cq_err_entry *ee)
{
	double end = now_s() + SPIN_MS / 1e3;
	struct fi_cq_tagged_entry e;
	ssize_t ret;

	memset(ee, 0, sizeof(*ee));
	do {
		ret = fi_cq_read(cq, &e, 1);
		if (ret == -FI_EAVAIL) {
			ret = fi_cq_readerr(cq, ee, 0);
			return ret == 1 ? ee->err : (int) ret;
		}
		if (ret != -FI_EAGAIN)
			return -1000;	/* a success entry where an error was due */
	} while (now_s() < end);
	return (int) ret;
}

/* True when cq has nothing to report after progressing a few times. */
static bool cq_empty(struct fid_cq *cq)
{
	struct fi_cq_tagged_entry e;

	for (int i = 0; i < 20; i++) {
		ssize_t ret = fi_cq_read(cq, &e, 1);
		if (ret != -FI_EAGAIN)
			return false;
	}
	return true;
}

/* Progresses ep i (a zero-count read progresses, consuming no entry). */
static void progress(struct pair *p, int i)
{
	struct fi_cq_tagged_entry e;

	for (int k = 0; k < 20; k++)
		(void) fi_cq_read(p->cq[i], &e, 0);
}

static void check_entry(const struct fi_cq_tagged_entry *e, void *ctx,
			uint64_t flags, size_t len, void *buf, uint64_t data,
			uint64_t tag)
{
	CHECK(e->op_context == ctx);
	CHECK_EQ(e->flags, flags);
	CHECK_EQ(e->len, len);
	if (flags & FI_RECV) {
		CHECK(e->buf == buf);
		CHECK_EQ(e->data, data);
	}
	if (flags & FI_TAGGED)
		CHECK_EQ(e->tag, tag);
}

/* ---- fi_msg ------------------------------------------------------------- */

static void test_msg_ops(enum fi_av_type av_type)
{
	struct pair_opts o = DEFAULT_OPTS;
	struct pair p;
	struct fi_cq_tagged_entry e;
	char sctx, rctx;
	fi_addr_t src;

	o.av_type = av_type;
	CHECK_EQ(pair_open(&p, &o), 0);
	if (!p.ep[1])
		goto out;

	/* fi_send / fi_recv */
	fill(sbuf, 100, 1);
	memset(rbuf, 0, 200);
	CHECK_EQ(fi_recv(p.ep[1], rbuf, 200, NULL, FI_ADDR_UNSPEC, &rctx), 0);
	CHECK_EQ(fi_send(p.ep[0], sbuf, 100, NULL, p.addr[1], &sctx), 0);
	CHECK_EQ(read_tagged(p.cq[0], &e), 1);
	check_entry(&e, &sctx, FI_SEND | FI_MSG, 100, NULL, 0, 0);
	memset(&e, 0, sizeof(e));
	CHECK_EQ(read_one(p.cq[1], &e, &src), 1);
	check_entry(&e, &rctx, FI_RECV | FI_MSG, 100, rbuf, 0, 0);
	CHECK_EQ(src, p.addr[0]);
	CHECK(same_fill(rbuf, 100, 1));
	CHECK(cq_empty(p.cq[0]) && cq_empty(p.cq[1]));

	/* fi_sendv / fi_recvv: different splits on each side */
	{
		struct iovec siov[3] = { { sbuf, 10 }, { sbuf + 10, 0 },
					 { sbuf + 10, 290 } };
		struct iovec riov[4] = { { rbuf, 1 }, { rbuf + 100, 99 },
					 { rbuf + 1000, 150 },
					 { rbuf + 2000, 100 } };
		fill(sbuf, 300, 2);
		memset(rbuf, 0, 3000);
		CHECK_EQ(fi_recvv(p.ep[1], riov, NULL, 4, FI_ADDR_UNSPEC,
				  &rctx), 0);
		CHECK_EQ(fi_sendv(p.ep[0], siov, NULL, 3, p.addr[1], &sctx), 0);
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		check_entry(&e, &rctx, FI_RECV | FI_MSG, 300, rbuf, 0, 0);
		unsigned char expect[300];
		fill(expect, 300, 2);
		CHECK(rbuf[0] == expect[0]);
		CHECK(!memcmp(rbuf + 100, expect + 1, 99));
		CHECK(!memcmp(rbuf + 1000, expect + 100, 150));
		CHECK(!memcmp(rbuf + 2000, expect + 250, 50));
		CHECK_EQ(rbuf[2050], 0);
		CHECK_EQ(read_tagged(p.cq[0], &e), 1);
		check_entry(&e, &sctx, FI_SEND | FI_MSG, 300, NULL, 0, 0);
	}

	/* fi_sendmsg with remote CQ data / fi_recvmsg */
	{
		struct iovec siov = { sbuf, 64 }, riov = { rbuf, 64 };
		struct fi_msg sm = { .msg_iov = &siov, .iov_count = 1,
				     .addr = p.addr[1], .context = &sctx,
				     .data = 0xabcdef0123456789ull };
		struct fi_msg rm = { .msg_iov = &riov, .iov_count = 1,
				     .addr = FI_ADDR_UNSPEC, .context = &rctx };
		fill(sbuf, 64, 3);
		CHECK_EQ(fi_recvmsg(p.ep[1], &rm, 0), 0);
		CHECK_EQ(fi_sendmsg(p.ep[0], &sm, FI_REMOTE_CQ_DATA |
				    FI_COMPLETION), 0);
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		check_entry(&e, &rctx, FI_RECV | FI_MSG | FI_REMOTE_CQ_DATA,
			    64, rbuf, 0xabcdef0123456789ull, 0);
		CHECK(same_fill(rbuf, 64, 3));
		CHECK_EQ(read_tagged(p.cq[0], &e), 1);
		check_entry(&e, &sctx, FI_SEND | FI_MSG, 64, NULL, 0, 0);
	}

	/* fi_senddata */
	fill(sbuf, 33, 4);
	CHECK_EQ(fi_recv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, &rctx), 0);
	CHECK_EQ(fi_senddata(p.ep[0], sbuf, 33, NULL, 77, p.addr[1], &sctx), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &rctx, FI_RECV | FI_MSG | FI_REMOTE_CQ_DATA, 33, rbuf,
		    77, 0);
	CHECK(same_fill(rbuf, 33, 4));
	CHECK_EQ(read_tagged(p.cq[0], &e), 1);
	check_entry(&e, &sctx, FI_SEND | FI_MSG, 33, NULL, 0, 0);

	/* fi_inject: no send completion; the buffer is free at once */
	fill(sbuf, 50, 5);
	CHECK_EQ(fi_recv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, &rctx), 0);
	CHECK_EQ(fi_inject(p.ep[0], sbuf, 50, p.addr[1]), 0);
	memset(sbuf, 0, 50);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &rctx, FI_RECV | FI_MSG, 50, rbuf, 0, 0);
	CHECK(same_fill(rbuf, 50, 5));

	/* fi_injectdata, and a zero-length message */
	CHECK_EQ(fi_recv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, &rctx), 0);
	CHECK_EQ(fi_injectdata(p.ep[0], sbuf, 0, 99, p.addr[1]), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &rctx, FI_RECV | FI_MSG | FI_REMOTE_CQ_DATA, 0, rbuf,
		    99, 0);
	CHECK(cq_empty(p.cq[0]));

	/* A message to oneself (ep 1 to its own address). */
	fill(sbuf, 20, 6);
	CHECK_EQ(fi_recv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, &rctx), 0);
	CHECK_EQ(fi_send(p.ep[1], sbuf, 20, NULL, p.addr[1], &sctx), 0);
	memset(&e, 0, sizeof(e));
	CHECK_EQ(fi_cq_sreadfrom(p.cq[1], &e, 1, &src, NULL, 1000), 1);
	CHECK(e.op_context == &sctx || e.op_context == &rctx);
	memset(&e, 0, sizeof(e));
	CHECK_EQ(fi_cq_sreadfrom(p.cq[1], &e, 1, &src, NULL, 1000), 1);
	if (e.op_context == &rctx)
		CHECK_EQ(src, p.addr[1]);
	CHECK(same_fill(rbuf, 20, 6));
out:
	pair_close(&p);
}

/* ---- fi_tagged ---------------------------------------------------------- */

static void test_tagged_ops(void)
{
	struct pair p;
	struct fi_cq_tagged_entry e;
	char sctx, rctx;
	const uint64_t tag = 0x8000000000001234ull;

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	if (!p.ep[1])
		goto out;

	fill(sbuf, 100, 11);
	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 200, NULL, FI_ADDR_UNSPEC, tag, 0,
			  &rctx), 0);
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, 100, NULL, p.addr[1], tag, &sctx), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &rctx, FI_RECV | FI_TAGGED, 100, rbuf, 0, tag);
	CHECK(same_fill(rbuf, 100, 11));
	CHECK_EQ(read_tagged(p.cq[0], &e), 1);
	check_entry(&e, &sctx, FI_SEND | FI_TAGGED, 100, NULL, 0, tag);

	{
		struct iovec siov[2] = { { sbuf, 7 }, { sbuf + 7, 93 } };
		struct iovec riov[2] = { { rbuf, 50 }, { rbuf + 500, 50 } };
		CHECK_EQ(fi_trecvv(p.ep[1], riov, NULL, 2, FI_ADDR_UNSPEC,
				   tag + 1, 0, &rctx), 0);
		CHECK_EQ(fi_tsendv(p.ep[0], siov, NULL, 2, p.addr[1], tag + 1,
				   &sctx), 0);
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		check_entry(&e, &rctx, FI_RECV | FI_TAGGED, 100, rbuf, 0,
			    tag + 1);
		CHECK(same_fill(rbuf, 50, 11));
		unsigned char expect[100];
		fill(expect, 100, 11);
		CHECK(!memcmp(rbuf + 500, expect + 50, 50));
		CHECK_EQ(read_tagged(p.cq[0], &e), 1);
		check_entry(&e, &sctx, FI_SEND | FI_TAGGED, 100, NULL, 0,
			    tag + 1);
	}
	{
		struct iovec siov = { sbuf, 40 }, riov = { rbuf, 40 };
		struct fi_msg_tagged sm = { .msg_iov = &siov, .iov_count = 1,
					    .addr = p.addr[1], .tag = tag + 2,
					    .context = &sctx, .data = 5 };
		struct fi_msg_tagged rm = { .msg_iov = &riov, .iov_count = 1,
					    .addr = p.addr[0], .tag = tag + 2,
					    .context = &rctx };
		CHECK_EQ(fi_trecvmsg(p.ep[1], &rm, 0), 0);
		CHECK_EQ(fi_tsendmsg(p.ep[0], &sm, FI_REMOTE_CQ_DATA), 0);
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		check_entry(&e, &rctx, FI_RECV | FI_TAGGED | FI_REMOTE_CQ_DATA,
			    40, rbuf, 5, tag + 2);
		CHECK_EQ(read_tagged(p.cq[0], &e), 1);
		check_entry(&e, &sctx, FI_SEND | FI_TAGGED, 40, NULL, 0,
			    tag + 2);
	}

	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, 3, 0,
			  &rctx), 0);
	CHECK_EQ(fi_tsenddata(p.ep[0], sbuf, 10, NULL, 1234, p.addr[1], 3,
			      &sctx), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &rctx, FI_RECV | FI_TAGGED | FI_REMOTE_CQ_DATA, 10,
		    rbuf, 1234, 3);
	CHECK_EQ(read_tagged(p.cq[0], &e), 1);
	check_entry(&e, &sctx, FI_SEND | FI_TAGGED, 10, NULL, 0, 3);

	fill(sbuf, 30, 12);
	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, 4, 0,
			  &rctx), 0);
	CHECK_EQ(fi_tinject(p.ep[0], sbuf, 30, p.addr[1], 4), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &rctx, FI_RECV | FI_TAGGED, 30, rbuf, 0, 4);
	CHECK(same_fill(rbuf, 30, 12));

	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, 5, 0,
			  &rctx), 0);
	CHECK_EQ(fi_tinjectdata(p.ep[0], sbuf, 30, 55, p.addr[1], 5), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &rctx, FI_RECV | FI_TAGGED | FI_REMOTE_CQ_DATA, 30,
		    rbuf, 55, 5);
	CHECK(cq_empty(p.cq[0]));

	/* Tagged and untagged messages never match each other. */
	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, 0, ~0ull,
			  &rctx), 0);
	CHECK_EQ(fi_send(p.ep[0], sbuf, 8, NULL, p.addr[1], &sctx), 0);
	CHECK_EQ(read_tagged(p.cq[0], &e), 1);
	CHECK(cq_empty(p.cq[1]));
	CHECK_EQ(fi_recv(p.ep[1], rbuf + 100, 64, NULL, FI_ADDR_UNSPEC, &sctx),
		 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &sctx, FI_RECV | FI_MSG, 8, rbuf + 100, 0, 0);
	CHECK_EQ(fi_cancel(&p.ep[1]->fid, &rctx), 0);
	{
		struct fi_cq_err_entry ee;
		CHECK_EQ(read_err(p.cq[1], &ee), FI_ECANCELED);
	}
out:
	pair_close(&p);
}

/* Ignore masks, and receive order against arrival order. */
static void test_tag_masks(void)
{
	struct pair p;
	struct fi_cq_tagged_entry e;
	char c[4];

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	if (!p.ep[1])
		goto out;
	/* Posted: low byte ignored. */
	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, 0x1200,
			  0xff, &c[0]), 0);
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, 1, NULL, p.addr[1], 0x1300, &c[1]), 0);
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, 2, NULL, p.addr[1], 0x12ab, &c[1]), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &c[0], FI_RECV | FI_TAGGED, 2, rbuf, 0, 0x12ab);
	CHECK(cq_empty(p.cq[1]));
	/* The 0x1300 one waits as unexpected; a wildcard takes it. */
	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, 0, ~0ull,
			  &c[2]), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &c[2], FI_RECV | FI_TAGGED, 1, rbuf, 0, 0x1300);
	/* The high bit matters when not ignored. */
	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC,
			  1ull << 63, 0, &c[3]), 0);
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, 3, NULL, p.addr[1], 0, &c[1]), 0);
	CHECK(cq_empty(p.cq[1]));
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, 4, NULL, p.addr[1], 1ull << 63,
			  &c[1]), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &c[3], FI_RECV | FI_TAGGED, 4, rbuf, 0, 1ull << 63);
	/* First posted wins among several that match. */
	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, 7, 0,
			  &c[0]), 0);
	CHECK_EQ(fi_trecv(p.ep[1], rbuf + 64, 64, NULL, FI_ADDR_UNSPEC, 7, 0,
			  &c[2]), 0);
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, 5, NULL, p.addr[1], 7, &c[1]), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	CHECK(e.op_context == &c[0]);
	/* The unmatched tag-0 message from above is still waiting. */
	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, 0, 0,
			  &c[3]), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &c[3], FI_RECV | FI_TAGGED, 3, rbuf, 0, 0);
	CHECK_EQ(fi_cancel(&p.ep[1]->fid, &c[2]), 0);
	{
		struct fi_cq_err_entry ee;
		CHECK_EQ(read_err(p.cq[1], &ee), FI_ECANCELED);
	}
out:
	pair_close(&p);
}

/* FI_DIRECTED_RECV: ep 1 receives from ep 0 and from itself. */
static void test_directed(void)
{
	struct pair p;
	struct fi_cq_tagged_entry e;
	fi_addr_t src;
	char c[4];

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	if (!p.ep[1])
		goto out;
	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, p.addr[0], 9, 0, &c[0]), 0);
	CHECK_EQ(fi_tsend(p.ep[1], sbuf, 11, NULL, p.addr[1], 9, &c[1]), 0);
	progress(&p, 1);
	memset(&e, 0, sizeof(e));
	/* Only the send completion of ep 1 may show, not a receive. */
	CHECK_EQ(read_one(p.cq[1], &e, &src), 1);
	CHECK(e.op_context == &c[1]);
	CHECK(cq_empty(p.cq[1]));
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, 22, NULL, p.addr[1], 9, &c[2]), 0);
	memset(&e, 0, sizeof(e));
	CHECK_EQ(read_one(p.cq[1], &e, &src), 1);
	check_entry(&e, &c[0], FI_RECV | FI_TAGGED, 22, rbuf, 0, 9);
	CHECK_EQ(src, p.addr[0]);
	/* The message from ep 1 itself is taken by a receive naming it. */
	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, p.addr[1], 9, 0, &c[3]), 0);
	memset(&e, 0, sizeof(e));
	CHECK_EQ(read_one(p.cq[1], &e, &src), 1);
	check_entry(&e, &c[3], FI_RECV | FI_TAGGED, 11, rbuf, 0, 9);
	CHECK_EQ(src, p.addr[1]);
	/* Untagged too. */
	CHECK_EQ(fi_recv(p.ep[1], rbuf, 64, NULL, p.addr[1], &c[0]), 0);
	CHECK_EQ(fi_send(p.ep[0], sbuf, 5, NULL, p.addr[1], &c[2]), 0);
	CHECK_EQ(read_tagged(p.cq[0], &e), 1);
	CHECK(cq_empty(p.cq[1]));
	CHECK_EQ(fi_recv(p.ep[1], rbuf + 100, 64, NULL, p.addr[0], &c[3]), 0);
	CHECK_EQ(read_one(p.cq[1], &e, &src), 1);
	check_entry(&e, &c[3], FI_RECV | FI_MSG, 5, rbuf + 100, 0, 0);
	CHECK_EQ(src, p.addr[0]);
	CHECK_EQ(fi_cancel(&p.ep[1]->fid, &c[0]), 0);
	{
		struct fi_cq_err_entry ee;
		CHECK_EQ(read_err(p.cq[1], &ee), FI_ECANCELED);
		CHECK(ee.op_context == &c[0]);
	}
out:
	pair_close(&p);
}

/* ---- eager and rendezvous, expected and unexpected ---------------------- */

static void one_transfer(struct pair *p, size_t len, bool unexpected,
			 bool tagged, unsigned seed)
{
	struct fi_cq_tagged_entry e;
	char sctx, rctx;
	uint64_t kind = tagged ? FI_TAGGED : FI_MSG;

	fill(sbuf, len, seed);
	memset(rbuf, 0, len + 16);
	if (!unexpected)
		CHECK_EQ(tagged ?
			 fi_trecv(p->ep[1], rbuf, len + 16, NULL,
				  FI_ADDR_UNSPEC, 42, 0, &rctx) :
			 fi_recv(p->ep[1], rbuf, len + 16, NULL,
				 FI_ADDR_UNSPEC, &rctx), 0);
	CHECK_EQ(tagged ? fi_tsend(p->ep[0], sbuf, len, NULL, p->addr[1], 42,
				   &sctx) :
		 fi_send(p->ep[0], sbuf, len, NULL, p->addr[1], &sctx), 0);
	if (unexpected) {
		progress(p, 1);		/* the message arrives unmatched */
		/* A rendezvous send is not complete before the receive. */
		if (len > 8192)
			CHECK(cq_empty(p->cq[0]));
		CHECK_EQ(tagged ?
			 fi_trecv(p->ep[1], rbuf, len + 16, NULL,
				  FI_ADDR_UNSPEC, 42, 0, &rctx) :
			 fi_recv(p->ep[1], rbuf, len + 16, NULL,
				 FI_ADDR_UNSPEC, &rctx), 0);
	}
	CHECK_EQ(read_tagged(p->cq[1], &e), 1);
	check_entry(&e, &rctx, FI_RECV | kind, len, rbuf, 0, 42);
	CHECK(same_fill(rbuf, len, seed));
	CHECK_EQ(rbuf[len], 0);
	CHECK_EQ(read_tagged(p->cq[0], &e), 1);
	check_entry(&e, &sctx, FI_SEND | kind, len, NULL, 0, 42);
}

static void test_protocols(void)
{
	struct pair p;
	size_t sizes[] = { 1, 8192 - 1, 8192, 8192 + 1, 65536, RNDV_LEN };

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	if (!p.ep[1])
		goto out;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (int unexp = 0; unexp < 2; unexp++)
			for (int tagged = 0; tagged < 2; tagged++)
				one_transfer(&p, sizes[i], unexp, tagged,
					     (unsigned) (i * 4 + unexp * 2 +
							 tagged));
	/* Rendezvous from and into several segments. */
	{
		struct fi_cq_tagged_entry e;
		struct iovec siov[3] = { { sbuf, 100000 },
					 { sbuf + 200000, 1 },
					 { sbuf + 300000, 500000 } };
		struct iovec riov[2] = { { rbuf, 333333 },
					 { rbuf + 400000, 400000 } };
		unsigned char *expect = malloc(600001);
		fill(sbuf, RNDV_LEN, 77);
		memcpy(expect, sbuf, 100000);
		expect[100000] = sbuf[200000];
		memcpy(expect + 100001, sbuf + 300000, 500000);
		memset(rbuf, 0, RNDV_LEN);
		CHECK_EQ(fi_recvv(p.ep[1], riov, NULL, 2, FI_ADDR_UNSPEC, NULL),
			 0);
		CHECK_EQ(fi_sendv(p.ep[0], siov, NULL, 3, p.addr[1], NULL), 0);
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		CHECK_EQ(e.len, 600001);
		CHECK(!memcmp(rbuf, expect, 333333));
		CHECK(!memcmp(rbuf + 400000, expect + 333333, 600001 - 333333));
		CHECK_EQ(rbuf[333333], 0);
		CHECK_EQ(read_tagged(p.cq[0], &e), 1);
		CHECK_EQ(e.len, 600001);
		free(expect);
	}
out:
	pair_close(&p);
}

/* ---- FI_PEEK, FI_CLAIM, FI_DISCARD --------------------------------------- */

static ssize_t trecvmsg(struct fid_ep *ep, void *buf, size_t len,
			uint64_t tag, void *ctx, uint64_t flags)
{
	struct iovec iov = { buf, len };
	struct fi_msg_tagged m = { .msg_iov = &iov, .iov_count = buf ? 1 : 0,
				   .addr = FI_ADDR_UNSPEC, .tag = tag,
				   .context = ctx };

	return fi_trecvmsg(ep, &m, flags);
}

static void test_peek_claim(void)
{
	struct pair p;
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry ee;
	struct fi_context fctx;
	char c;

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	if (!p.ep[1])
		goto out;
	fill(sbuf, 300, 21);
	CHECK_EQ(fi_tsenddata(p.ep[0], sbuf, 300, NULL, 0x5151, p.addr[1], 100,
			      &c), 0);
	CHECK_EQ(read_tagged(p.cq[0], &e), 1);
	progress(&p, 1);

	/* Miss: FI_ENOMSG error entry. */
	CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 101, &c, FI_PEEK), 0);
	CHECK_EQ(read_err(p.cq[1], &ee), FI_ENOMSG);
	CHECK(ee.op_context == &c);
	/* Hit: length, tag and data, message stays. */
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 100, &c, FI_PEEK), 0);
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		CHECK(e.op_context == &c);
		CHECK_EQ(e.len, 300);
		CHECK_EQ(e.tag, 100);
		CHECK_EQ(e.data, 0x5151);
		CHECK(e.flags & FI_RECV && e.flags & FI_TAGGED &&
		      e.flags & FI_REMOTE_CQ_DATA);
	}
	/* PEEK|CLAIM, then a FI_CLAIM receive with the same context. */
	CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 100, &fctx, FI_PEEK | FI_CLAIM), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	CHECK(e.op_context == &fctx);
	CHECK_EQ(e.len, 300);
	/* A claimed message no longer matches plain receives or peeks. */
	CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 100, &c, FI_PEEK), 0);
	CHECK_EQ(read_err(p.cq[1], &ee), FI_ENOMSG);
	memset(rbuf, 0, 400);
	CHECK_EQ(trecvmsg(p.ep[1], rbuf, 400, 100, &fctx, FI_CLAIM), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	check_entry(&e, &fctx, FI_RECV | FI_TAGGED | FI_REMOTE_CQ_DATA, 300,
		    rbuf, 0x5151, 100);
	CHECK(same_fill(rbuf, 300, 21));
	CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 100, &c, FI_PEEK), 0);
	CHECK_EQ(read_err(p.cq[1], &ee), FI_ENOMSG);

	/* PEEK|DISCARD: reported, then gone. */
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, 10, NULL, p.addr[1], 200, &c), 0);
	CHECK_EQ(read_tagged(p.cq[0], &e), 1);
	progress(&p, 1);
	CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 200, &c, FI_PEEK | FI_DISCARD), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	CHECK_EQ(e.len, 10);
	CHECK_EQ(e.tag, 200);
	CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 200, &c, FI_PEEK), 0);
	CHECK_EQ(read_err(p.cq[1], &ee), FI_ENOMSG);

	/* PEEK|CLAIM then CLAIM|DISCARD: gone, with a completion. */
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, 10, NULL, p.addr[1], 300, &c), 0);
	CHECK_EQ(read_tagged(p.cq[0], &e), 1);
	progress(&p, 1);
	CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 300, &fctx, FI_PEEK | FI_CLAIM), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 300, &fctx, FI_CLAIM | FI_DISCARD),
		 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	CHECK(e.op_context == &fctx);
	CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 300, &c, FI_PEEK), 0);
	CHECK_EQ(read_err(p.cq[1], &ee), FI_ENOMSG);
	/* A claim naming nothing claimed is refused. */
	{
		struct fi_context other = { { 0 } };
		CHECK(trecvmsg(p.ep[1], rbuf, 10, 300, &other, FI_CLAIM) < 0);
	}

	/* Rendezvous: peek, claim, receive; the sender completes after. */
	fill(sbuf, RNDV_LEN, 22);
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, RNDV_LEN, NULL, p.addr[1], 400, &c),
		 0);
	progress(&p, 1);
	CHECK(cq_empty(p.cq[0]));
	CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 400, &fctx, FI_PEEK | FI_CLAIM), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	CHECK_EQ(e.len, RNDV_LEN);
	CHECK(cq_empty(p.cq[0]));
	memset(rbuf, 0, RNDV_LEN);
	CHECK_EQ(trecvmsg(p.ep[1], rbuf, RNDV_LEN, 400, &fctx, FI_CLAIM), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	CHECK_EQ(e.len, RNDV_LEN);
	CHECK(same_fill(rbuf, RNDV_LEN, 22));
	CHECK_EQ(read_tagged(p.cq[0], &e), 1);
	CHECK(e.op_context == &c);
	/* Rendezvous discarded: the sender still completes. */
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, RNDV_LEN, NULL, p.addr[1], 500, &c),
		 0);
	progress(&p, 1);
	CHECK_EQ(trecvmsg(p.ep[1], NULL, 0, 500, &c, FI_PEEK | FI_DISCARD), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	CHECK_EQ(read_tagged(p.cq[0], &e), 1);
	CHECK(e.op_context == &c);
out:
	pair_close(&p);
}

/* ---- FI_MULTI_RECV -------------------------------------------------------- */

static void test_multi_recv(void)
{
	struct pair p;
	struct fi_cq_tagged_entry e;
	size_t min = 100, got = sizeof(got), off = 0;
	char c;

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	if (!p.ep[1])
		goto out;
	CHECK_EQ(fi_setopt(&p.ep[1]->fid, FI_OPT_ENDPOINT,
			   FI_OPT_MIN_MULTI_RECV, &min, sizeof(min)), 0);
	CHECK_EQ(fi_getopt(&p.ep[1]->fid, FI_OPT_ENDPOINT,
			   FI_OPT_MIN_MULTI_RECV, &got, &(size_t){ sizeof(got) }),
		 0);
	CHECK_EQ(got, 100);

	/* One message waits unexpected before the buffer is posted. */
	fill(sbuf, 200, 30);
	CHECK_EQ(fi_send(p.ep[0], sbuf, 200, NULL, p.addr[1], NULL), 0);
	progress(&p, 1);
	{
		struct iovec iov = { rbuf, 1000 };
		struct fi_msg m = { .msg_iov = &iov, .iov_count = 1,
				    .addr = FI_ADDR_UNSPEC, .context = &c };
		CHECK_EQ(fi_recvmsg(p.ep[1], &m, FI_MULTI_RECV), 0);
	}
	for (int i = 1; i < 4; i++) {
		fill(sbuf, 200, 30 + i);
		CHECK_EQ(fi_senddata(p.ep[0], sbuf, 200, NULL, i, p.addr[1],
				     NULL), 0);
	}
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		CHECK(e.op_context == &c);
		CHECK(e.buf == rbuf + off);
		CHECK_EQ(e.len, 200);
		CHECK_EQ(e.flags & FI_MULTI_RECV, 0);
		CHECK(same_fill(rbuf + off, 200, 30 + i));
		off += 200;
	}
	/* 200 bytes left >= 100: still posted.  150 more leaves 50: retired. */
	fill(sbuf, 150, 40);
	CHECK_EQ(fi_send(p.ep[0], sbuf, 150, NULL, p.addr[1], NULL), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	CHECK(e.buf == rbuf + 800);
	CHECK_EQ(e.len, 150);
	CHECK(e.flags & FI_MULTI_RECV);
	CHECK(same_fill(rbuf + 800, 150, 40));
	/* Nothing posted any more: the next message waits. */
	CHECK_EQ(fi_send(p.ep[0], sbuf, 10, NULL, p.addr[1], NULL), 0);
	CHECK(cq_empty(p.cq[1]));
	CHECK_EQ(fi_recv(p.ep[1], rbuf, 10, NULL, FI_ADDR_UNSPEC, NULL), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	CHECK_EQ(e.flags & FI_MULTI_RECV, 0);
	/* Tagged multi-receive is not offered. */
	{
		struct iovec iov = { rbuf, 1000 };
		struct fi_msg_tagged m = { .msg_iov = &iov, .iov_count = 1,
					   .addr = FI_ADDR_UNSPEC };
		CHECK(fi_trecvmsg(p.ep[1], &m, FI_MULTI_RECV) < 0);
	}
	/* Cancel of a multi-receive buffer reports FI_MULTI_RECV. */
	{
		struct iovec iov = { rbuf, 1000 };
		struct fi_msg m = { .msg_iov = &iov, .iov_count = 1,
				    .addr = FI_ADDR_UNSPEC, .context = &c };
		struct fi_cq_err_entry ee;
		CHECK_EQ(fi_recvmsg(p.ep[1], &m, FI_MULTI_RECV), 0);
		CHECK_EQ(fi_cancel(&p.ep[1]->fid, &c), 0);
		CHECK_EQ(read_err(p.cq[1], &ee), FI_ECANCELED);
		CHECK(ee.flags & FI_MULTI_RECV);
	}
out:
	pair_close(&p);
}

/*
 * Unexpected messages reuse the entries of earlier ones (usb4_unexp_pool.c)
 * and keep a payload of up to 64 bytes in their entry: rounds of messages
 * of 1, 64 and 65 bytes (either side of that bound), more than the
 * endpoint keeps idle, sent before their receives; each arrives whole.
 */
#define REUSE_MSGS	80
#define REUSE_STRIDE	128

static void reuse_round(struct pair *p, unsigned round)
{
	static const size_t lens[4] = { 1, 64, 65, 8 };
	struct fi_cq_tagged_entry e;
	char ctx[REUSE_MSGS];

	for (int i = 0; i < REUSE_MSGS; i++) {
		ssize_t ret;

		fill(sbuf + REUSE_STRIDE * i, lens[i % 4], round * 1000 + i);
		/* A full inbox: the receiver takes what is in (unexpected). */
		while ((ret = fi_tinject(p->ep[0], sbuf + REUSE_STRIDE * i,
					 lens[i % 4], p->addr[1], i)) ==
		       -FI_EAGAIN)
			progress(p, 1);
		CHECK_EQ(ret, 0);
	}
	progress(p, 1);
	memset(rbuf, 0, REUSE_MSGS * REUSE_STRIDE);
	for (int i = 0; i < REUSE_MSGS; i++)
		CHECK_EQ(fi_trecv(p->ep[1], rbuf + REUSE_STRIDE * i,
				  REUSE_STRIDE, NULL, FI_ADDR_UNSPEC, i, 0,
				  &ctx[i]), 0);
	for (int i = 0; i < REUSE_MSGS; i++) {
		CHECK_EQ(read_tagged(p->cq[1], &e), 1);
		CHECK(e.op_context == &ctx[i]);
		CHECK_EQ(e.len, lens[i % 4]);
		CHECK(same_fill(rbuf + REUSE_STRIDE * i, lens[i % 4],
				round * 1000 + i));
	}
}

static void test_unexp_reuse(void)
{
	struct pair p;

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	for (unsigned round = 0; p.ep[1] && round < 3; round++)
		reuse_round(&p, round);
	CHECK(!p.ep[1] || cq_empty(p.cq[1]));
	pair_close(&p);
}

/* ---- truncation and cancel --------------------------------------------- */

static void truncated(struct pair *p, size_t len, bool unexpected)
{
	struct fi_cq_err_entry ee;
	struct fi_cq_tagged_entry e;
	char sctx, rctx;

	fill(sbuf, len, 50);
	memset(rbuf, 0xee, 64);
	if (!unexpected)
		CHECK_EQ(fi_trecv(p->ep[1], rbuf, 10, NULL, FI_ADDR_UNSPEC, 1,
				  0, &rctx), 0);
	CHECK_EQ(fi_tsend(p->ep[0], sbuf, len, NULL, p->addr[1], 1, &sctx), 0);
	if (unexpected) {
		progress(p, 1);
		CHECK_EQ(fi_trecv(p->ep[1], rbuf, 10, NULL, FI_ADDR_UNSPEC, 1,
				  0, &rctx), 0);
	}
	CHECK_EQ(read_err(p->cq[1], &ee), FI_ETRUNC);
	CHECK(ee.op_context == &rctx);
	CHECK_EQ(ee.len, 10);
	CHECK_EQ(ee.olen, len - 10);
	CHECK_EQ(ee.tag, 1);
	CHECK(ee.flags & FI_RECV && ee.flags & FI_TAGGED);
	CHECK(same_fill(rbuf, 10, 50));
	CHECK_EQ(rbuf[10], 0xee);
	/* The sender's operation itself succeeded. */
	CHECK_EQ(read_tagged(p->cq[0], &e), 1);
	CHECK(e.op_context == &sctx);
}

static void test_trunc_cancel(void)
{
	struct pair p;
	struct fi_cq_err_entry ee;
	char c;

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	if (!p.ep[1])
		goto out;
	truncated(&p, 100, false);
	truncated(&p, 100, true);
	truncated(&p, RNDV_LEN, false);
	truncated(&p, RNDV_LEN, true);

	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 10, NULL, FI_ADDR_UNSPEC, 1, 0, &c),
		 0);
	CHECK_EQ(fi_cancel(&p.ep[1]->fid, &c), 0);
	CHECK_EQ(read_err(p.cq[1], &ee), FI_ECANCELED);
	CHECK(ee.op_context == &c);
	CHECK(ee.flags & FI_RECV);
	CHECK_EQ(fi_cancel(&p.ep[1]->fid, &c), -FI_ENOENT);
	CHECK(cq_empty(p.cq[1]));
	/* The cancelled receive no longer matches. */
	CHECK_EQ(fi_tsend(p.ep[0], sbuf, 5, NULL, p.addr[1], 1, NULL), 0);
	CHECK(cq_empty(p.cq[1]));
	CHECK_EQ(fi_trecv(p.ep[1], rbuf, 10, NULL, FI_ADDR_UNSPEC, 1, 0, &c),
		 0);
	{
		struct fi_cq_tagged_entry e;
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		CHECK_EQ(e.len, 5);
	}
out:
	pair_close(&p);
}

/* ---- selective completion, delivery complete, counters ----------------- */

static void test_selective_counters(void)
{
	struct pair_opts o = DEFAULT_OPTS;
	struct pair p;
	struct fi_cq_tagged_entry e;
	char c1, c2;
	double t0, c0;

	o.selective = true;
	o.counters = true;
	CHECK_EQ(pair_open(&p, &o), 0);
	if (!p.ep[1])
		goto out;
	/* No FI_COMPLETION: counted, no entry on either side. */
	CHECK_EQ(fi_recv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, &c1), 0);
	CHECK_EQ(fi_send(p.ep[0], sbuf, 10, NULL, p.addr[1], &c2), 0);
	CHECK_EQ(fi_cntr_wait(p.rx_cntr[1], 1, 1000), 0);
	CHECK_EQ(fi_cntr_read(p.tx_cntr[0]), 1);
	CHECK(cq_empty(p.cq[0]) && cq_empty(p.cq[1]));

	/* FI_COMPLETION asked for: entries. */
	{
		struct iovec siov = { sbuf, 10 }, riov = { rbuf, 64 };
		struct fi_msg sm = { .msg_iov = &siov, .iov_count = 1,
				     .addr = p.addr[1], .context = &c2 };
		struct fi_msg rm = { .msg_iov = &riov, .iov_count = 1,
				     .addr = FI_ADDR_UNSPEC, .context = &c1 };
		CHECK_EQ(fi_recvmsg(p.ep[1], &rm, FI_COMPLETION), 0);
		CHECK_EQ(fi_sendmsg(p.ep[0], &sm, FI_COMPLETION), 0);
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		CHECK(e.op_context == &c1);
		CHECK_EQ(read_tagged(p.cq[0], &e), 1);
		CHECK(e.op_context == &c2);
	}
	CHECK_EQ(fi_cntr_read(p.tx_cntr[0]), 2);
	CHECK_EQ(fi_cntr_read(p.rx_cntr[1]), 2);
	CHECK_EQ(fi_cntr_read(p.rx_cntr[0]), 0);
	CHECK_EQ(fi_cntr_read(p.tx_cntr[1]), 0);

	/* Errors are always reported, and counted as errors. */
	CHECK_EQ(fi_recv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, &c1), 0);
	CHECK_EQ(fi_cancel(&p.ep[1]->fid, &c1), 0);
	{
		struct fi_cq_err_entry ee;
		CHECK_EQ(read_err(p.cq[1], &ee), FI_ECANCELED);
	}
	CHECK_EQ(fi_cntr_readerr(p.rx_cntr[1]), 1);
	CHECK_EQ(fi_cntr_read(p.rx_cntr[1]), 2);
	/* A wait that sees an error meanwhile, or times out. */
	t0 = now_s();
	c0 = cpu_s();
	CHECK_EQ(fi_cntr_wait(p.rx_cntr[1], 3, 200), -FI_ETIMEDOUT);
	CHECK(now_s() - t0 >= 0.190);
	CHECK(cpu_s() - c0 < 0.5 * (now_s() - t0));
	CHECK_EQ(fi_cntr_add(p.rx_cntr[1], 5), 0);
	CHECK_EQ(fi_cntr_read(p.rx_cntr[1]), 7);
	CHECK_EQ(fi_cntr_wait(p.rx_cntr[1], 3, 0), 0);
	CHECK_EQ(fi_cntr_set(p.rx_cntr[1], 1), 0);
	CHECK_EQ(fi_cntr_read(p.rx_cntr[1]), 1);
	CHECK_EQ(fi_cntr_adderr(p.rx_cntr[1], 2), 0);
	CHECK_EQ(fi_cntr_readerr(p.rx_cntr[1]), 3);
	CHECK_EQ(fi_cntr_seterr(p.rx_cntr[1], 0), 0);
	CHECK_EQ(fi_cntr_readerr(p.rx_cntr[1]), 0);

	/* Inject counts as a send too (no entry). */
	CHECK_EQ(fi_recv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, &c1), 0);
	CHECK_EQ(fi_inject(p.ep[0], sbuf, 10, p.addr[1]), 0);
	CHECK_EQ(fi_cntr_wait(p.rx_cntr[1], 2, 1000), 0);
	CHECK_EQ(fi_cntr_read(p.tx_cntr[0]), 3);
	CHECK(cq_empty(p.cq[0]) && cq_empty(p.cq[1]));

	/* Rendezvous under selective completion: counted once FIN is in. */
	fill(sbuf, RNDV_LEN, 60);
	CHECK_EQ(fi_recv(p.ep[1], rbuf, RNDV_LEN, NULL, FI_ADDR_UNSPEC, &c1), 0);
	CHECK_EQ(fi_send(p.ep[0], sbuf, RNDV_LEN, NULL, p.addr[1], &c2), 0);
	CHECK_EQ(fi_cntr_wait(p.rx_cntr[1], 3, 2000), 0);
	CHECK_EQ(fi_cntr_wait(p.tx_cntr[0], 4, 2000), 0);
	CHECK(same_fill(rbuf, RNDV_LEN, 60));
	CHECK(cq_empty(p.cq[0]) && cq_empty(p.cq[1]));
out:
	pair_close(&p);
}

static void delivery_complete(struct pair *p, size_t len)
{
	struct fi_cq_tagged_entry e;
	struct iovec siov = { sbuf, len };
	char sctx, rctx;
	struct fi_msg_tagged sm = { .msg_iov = &siov, .iov_count = 1,
				    .addr = p->addr[1], .tag = 8,
				    .context = &sctx };

	fill(sbuf, len, 70);
	CHECK_EQ(fi_tsendmsg(p->ep[0], &sm, FI_DELIVERY_COMPLETE |
			     FI_COMPLETION), 0);
	CHECK(cq_empty(p->cq[0]));
	progress(p, 1);		/* arrives unexpected: not yet delivered */
	CHECK(cq_empty(p->cq[0]));
	/* Posting the receive places the waiting message (and answers). */
	CHECK_EQ(fi_trecv(p->ep[1], rbuf, len, NULL, FI_ADDR_UNSPEC, 8, 0,
			  &rctx), 0);
	CHECK_EQ(read_tagged(p->cq[1], &e), 1);
	CHECK(same_fill(rbuf, len, 70));
	CHECK_EQ(read_tagged(p->cq[0], &e), 1);
	check_entry(&e, &sctx, FI_SEND | FI_TAGGED, len, NULL, 0, 8);
	CHECK(cq_empty(p->cq[0]));
}

static void test_delivery_complete(void)
{
	struct pair p;

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	if (!p.ep[1])
		goto out;
	delivery_complete(&p, 100);
	delivery_complete(&p, 0);
	delivery_complete(&p, RNDV_LEN);
out:
	pair_close(&p);
}

/* ---- CQ formats ------------------------------------------------------- */

static void test_cq_formats(void)
{
	enum fi_cq_format formats[3] = { FI_CQ_FORMAT_CONTEXT,
					 FI_CQ_FORMAT_MSG,
					 FI_CQ_FORMAT_DATA };
	size_t sizes[3] = { sizeof(struct fi_cq_entry),
			    sizeof(struct fi_cq_msg_entry),
			    sizeof(struct fi_cq_data_entry) };

	for (int f = 0; f < 3; f++) {
		struct pair_opts o = DEFAULT_OPTS;
		struct pair p;
		unsigned char raw[2 * sizeof(struct fi_cq_tagged_entry)];
		char rctx, sctx;

		o.format = formats[f];
		CHECK_EQ(pair_open(&p, &o), 0);
		if (!p.ep[1]) {
			pair_close(&p);
			continue;
		}
		CHECK_EQ(fi_trecv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, 6,
				  0, &rctx), 0);
		CHECK_EQ(fi_tsenddata(p.ep[0], sbuf, 48, NULL, 0x77, p.addr[1],
				      6, &sctx), 0);
		memset(raw, 0xcc, sizeof(raw));
		CHECK_EQ(read_one(p.cq[1], raw, NULL), 1);
		/* Nothing written past the entry of this format. */
		CHECK_EQ(raw[sizes[f]], 0xcc);
		CHECK_EQ(raw[sizeof(raw) - 1], 0xcc);
		CHECK(((struct fi_cq_entry *) raw)->op_context == &rctx);
		if (f >= 1) {
			struct fi_cq_msg_entry *m = (void *) raw;
			CHECK_EQ(m->flags, FI_RECV | FI_TAGGED |
				 FI_REMOTE_CQ_DATA);
			CHECK_EQ(m->len, 48);
		}
		if (f == 2) {
			struct fi_cq_data_entry *d = (void *) raw;
			CHECK(d->buf == rbuf);
			CHECK_EQ(d->data, 0x77);
		}
		memset(raw, 0xcc, sizeof(raw));
		CHECK_EQ(read_one(p.cq[0], raw, NULL), 1);
		CHECK(((struct fi_cq_entry *) raw)->op_context == &sctx);
		CHECK_EQ(raw[sizes[f]], 0xcc);
		/* Several entries in one read are packed at the format size. */
		CHECK_EQ(fi_send(p.ep[0], sbuf, 1, NULL, p.addr[1], &sctx), 0);
		CHECK_EQ(fi_send(p.ep[0], sbuf, 1, NULL, p.addr[1], &rctx), 0);
		memset(raw, 0xcc, sizeof(raw));
		CHECK_EQ(fi_cq_read(p.cq[0], raw, 2), 2);
		CHECK(((struct fi_cq_entry *) raw)->op_context == &sctx);
		CHECK(((struct fi_cq_entry *) (raw + sizes[f]))->op_context ==
		      &rctx);
		pair_close(&p);
	}
}

/* Posts n tagged receives (tags and contexts first..first+n-1) on ep 1
 * and sends them 8 bytes each from ep 0, one byte telling the message. */
static void post_and_send(struct pair *p, char *ctx, int first, int n)
{
	for (int i = first; i < first + n; i++)
		CHECK_EQ(fi_trecv(p->ep[1], rbuf + 8 * i, 8, NULL,
				  FI_ADDR_UNSPEC, i, 0, &ctx[i]), 0);
	for (int i = first; i < first + n; i++) {
		sbuf[0] = (unsigned char) (0x40 + i);
		CHECK_EQ(fi_tinject(p->ep[0], sbuf, 8, p->addr[1], i), 0);
	}
}

/* got holds n entries of size bytes for the receives first..first+n-1. */
static void check_batch(struct pair *p, const unsigned char *got, size_t size,
			const fi_addr_t *src, const char *ctx, int first,
			int n)
{
	for (int k = 0; k < n; k++) {
		const struct fi_cq_tagged_entry *e = (const void *) (got +
								k * size);
		int i = first + k;

		CHECK(e->op_context == &ctx[i]);
		CHECK_EQ(src[k], p->addr[0]);
		CHECK_EQ(rbuf[8 * i], 0x40 + i);
		if (size >= sizeof(struct fi_cq_msg_entry))
			CHECK_EQ(e->len, 8);
		if (size >= sizeof(struct fi_cq_data_entry))
			CHECK(e->buf == rbuf + 8 * i);
		if (size == sizeof(struct fi_cq_tagged_entry))
			CHECK_EQ(e->tag, (uint64_t) i);
	}
	CHECK_EQ(got[n * size], 0xcc);	/* nothing past the last one */
}

/* Posts and sends n messages from first on, progresses ep 1, reads up to
 * max entries in one fi_cq_readfrom and checks that the want first ones
 * came, those of the receives from take on. */
static void batch(struct pair *p, char *ctx, size_t size, int first, int n,
		  int max, int want, int take)
{
	unsigned char got[8 * sizeof(struct fi_cq_tagged_entry) + 1];
	fi_addr_t src[8];

	post_and_send(p, ctx, first, n);
	progress(p, 1);
	memset(got, 0xcc, sizeof(got));
	CHECK_EQ(fi_cq_readfrom(p->cq[1], got, max, src), want);
	check_batch(p, got, size, src, ctx, take, want);
}

/*
 * One read hands out several entries in order, packed at the format's
 * size, with their sources, also when they wrap around the end of the
 * CQ's ring (a CQ of 4 entries), and when the ring grew while its entries
 * wrapped (more receives posted than it holds).
 */
static void test_cq_batch_wrap(void)
{
	enum fi_cq_format formats[4] = { FI_CQ_FORMAT_CONTEXT,
					 FI_CQ_FORMAT_MSG, FI_CQ_FORMAT_DATA,
					 FI_CQ_FORMAT_TAGGED };
	size_t sizes[4] = { sizeof(struct fi_cq_entry),
			    sizeof(struct fi_cq_msg_entry),
			    sizeof(struct fi_cq_data_entry),
			    sizeof(struct fi_cq_tagged_entry) };

	for (int f = 0; f < 4; f++) {
		struct pair_opts o = DEFAULT_OPTS;
		struct pair p;
		char ctx[12];

		o.format = formats[f];
		o.cq_size = 4;
		CHECK_EQ(pair_open(&p, &o), 0);
		if (!p.ep[1])
			goto next;
		batch(&p, ctx, sizes[f], 0, 3, 2, 2, 0);	/* 2 of 3 */
		batch(&p, ctx, sizes[f], 3, 3, 8, 4, 2);	/* across the end */
		batch(&p, ctx, sizes[f], 6, 3, 1, 1, 6);	/* 2 left, wrapped */
		batch(&p, ctx, sizes[f], 9, 3, 8, 5, 7);	/* grew meanwhile */
		CHECK(cq_empty(p.cq[1]));
next:
		pair_close(&p);
	}
}

/*
 * A read right after one that returned entries answers from the CQ alone
 * (MPI reads until empty before acting: polling the links again would only
 * delay it); the read after that progresses, so nothing is left behind.
 */
static void test_read_after_entries(void)
{
	struct pair p;
	struct fi_cq_tagged_entry e;
	char rctx[2];

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	if (!p.ep[1])
		goto out;
	for (int i = 0; i < 2; i++)
		CHECK_EQ(fi_trecv(p.ep[1], rbuf + 64 * i, 64, NULL,
				  FI_ADDR_UNSPEC, 10 + i, 0, &rctx[i]), 0);
	CHECK_EQ(fi_tinject(p.ep[0], sbuf, 8, p.addr[1], 10), 0);
	CHECK_EQ(read_tagged(p.cq[1], &e), 1);
	CHECK(e.op_context == &rctx[0]);
	CHECK_EQ(fi_tinject(p.ep[0], sbuf, 8, p.addr[1], 11), 0);
	CHECK_EQ_MSG(fi_cq_read(p.cq[1], &e, 1), -FI_EAGAIN,
		     "the read right after one that returned an entry "
		     "progressed the endpoint");
	CHECK_EQ_MSG(fi_cq_read(p.cq[1], &e, 1), 1,
		     "the read after that did not progress the endpoint");
	CHECK(e.op_context == &rctx[1]);
	CHECK(cq_empty(p.cq[1]));
out:
	pair_close(&p);
}

/* ---- AV ----------------------------------------------------------------- */

static void test_av(enum fi_av_type av_type)
{
	struct pair_opts o = DEFAULT_OPTS;
	struct pair p;
	char addr[ADDR_MAX], str[128];
	size_t len = sizeof(addr);
	fi_addr_t bad = 0;

	o.av_type = av_type;
	CHECK_EQ(pair_open(&p, &o), 0);
	if (!p.ep[1])
		goto out;
	CHECK_EQ(fi_av_lookup(p.av, p.addr[1], addr, &len), 0);
	CHECK_EQ(len, p.namelen);
	CHECK(!memcmp(addr, p.name[1], p.namelen));
	/* A short buffer gets the needed size. */
	len = 4;
	memset(addr, 0, sizeof(addr));
	CHECK_EQ(fi_av_lookup(p.av, p.addr[0], addr, &len), 0);
	CHECK_EQ(len, p.namelen);
	CHECK(!memcmp(addr, p.name[0], 4));
	CHECK(fi_av_lookup(p.av, 12345, addr, &len) < 0);

	len = sizeof(str);
	CHECK(fi_av_straddr(p.av, p.name[0], str, &len) == str);
	CHECK(!strncmp(str, "fi_addr_usb4://", 15));
	CHECK_EQ(len, strlen(str) + 1);

	/* A malformed address is refused, its slot marked. */
	memcpy(addr, p.name[0], p.namelen);
	addr[0] ^= 0xff;
	CHECK_EQ(fi_av_insert(p.av, addr, 1, &bad, 0, NULL), 0);
	CHECK(bad == FI_ADDR_NOTAVAIL);

	/* An endpoint of another wire version is refused when inserted, with
	 * an error that says so (and a log line naming both versions). */
	{
		int errs[1] = { 0 };

		memcpy(addr, p.name[0], p.namelen);
		addr[5] = 1;	/* struct usb4_wire_addr.proto */
		bad = 0;
		CHECK_EQ(fi_av_insert(p.av, addr, 1, &bad, FI_SYNC_ERR, errs), 0);
		CHECK(bad == FI_ADDR_NOTAVAIL);
		CHECK_EQ(errs[0], FI_ECONNREFUSED);
	}

	/* Both ways once, so that each endpoint has the other as its last
	 * destination and its last source: a removal must still be seen. */
	{
		struct fi_cq_tagged_entry e;
		fi_addr_t src = FI_ADDR_UNSPEC;

		CHECK_EQ(fi_recv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, NULL),
			 0);
		CHECK_EQ(fi_send(p.ep[0], sbuf, 10, NULL, p.addr[1], NULL), 0);
		CHECK_EQ(read_tagged(p.cq[0], &e), 1);
		CHECK(e.flags & FI_SEND);
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		CHECK(e.flags & FI_RECV);
		CHECK_EQ(fi_recv(p.ep[0], rbuf, 64, NULL, FI_ADDR_UNSPEC, NULL),
			 0);
		CHECK_EQ(fi_send(p.ep[1], sbuf, 10, NULL, p.addr[0], NULL), 0);
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		CHECK(e.flags & FI_SEND);
		CHECK_EQ(read_one(p.cq[0], &e, &src), 1);
		CHECK(e.flags & FI_RECV);
		CHECK(src == p.addr[1]);
	}

	/* Removed: no lookup, no send, no directed receive. */
	CHECK_EQ(fi_av_remove(p.av, &p.addr[1], 1, 0), 0);
	len = sizeof(addr);
	CHECK(fi_av_lookup(p.av, p.addr[1], addr, &len) < 0);
	CHECK(fi_send(p.ep[0], sbuf, 10, NULL, p.addr[1], NULL) < 0);
	CHECK(fi_inject(p.ep[0], sbuf, 10, p.addr[1]) < 0);
	CHECK(fi_av_remove(p.av, &p.addr[1], 1, 0) < 0);
	/* Sending the other way still works; the receiver sees the source. */
	{
		struct fi_cq_tagged_entry e;
		fi_addr_t src;
		CHECK_EQ(fi_recv(p.ep[0], rbuf, 64, NULL, FI_ADDR_UNSPEC, NULL),
			 0);
		CHECK_EQ(fi_send(p.ep[1], sbuf, 10, NULL, p.addr[0], NULL), 0);
		CHECK_EQ(read_one(p.cq[0], &e, &src), 1);
		CHECK(src == FI_ADDR_NOTAVAIL);
	}
	/* Re-inserting gives a working address again. */
	{
		fi_addr_t again = FI_ADDR_NOTAVAIL;
		struct fi_cq_tagged_entry e;
		CHECK_EQ(fi_av_insert(p.av, p.name[1], 1, &again, 0, NULL), 1);
		CHECK_EQ(fi_recv(p.ep[1], rbuf, 64, NULL, FI_ADDR_UNSPEC, NULL),
			 0);
		CHECK_EQ(fi_send(p.ep[0], sbuf, 10, NULL, again, NULL), 0);
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		p.addr[1] = again;
	}
out:
	pair_close(&p);
}

/* ---- bad input -------------------------------------------------------- */

static void test_bad_input(void)
{
	struct pair p;
	struct fid_ep *ep;
	struct fid_cq *cq;
	struct fi_cq_tagged_entry e;
	char c;
	int dummy = 0;

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	if (!p.ep[1])
		goto out;

	/* A third endpoint, bound but not enabled. */
	CHECK_EQ(fi_endpoint(p.domain, p.info, &ep, NULL), 0);
	CHECK_EQ(open_cq(p.domain, FI_CQ_FORMAT_TAGGED, 0, &cq), 0);
	CHECK_EQ(fi_ep_bind(ep, &p.av->fid, 0), 0);
	CHECK_EQ(fi_ep_bind(ep, &cq->fid, FI_TRANSMIT | FI_RECV), 0);
	CHECK(fi_send(ep, sbuf, 10, NULL, p.addr[1], &c) < 0);
	CHECK(fi_recv(ep, rbuf, 10, NULL, FI_ADDR_UNSPEC, &c) < 0);
	CHECK(fi_tsend(ep, sbuf, 10, NULL, p.addr[1], 1, &c) < 0);
	CHECK(fi_trecv(ep, rbuf, 10, NULL, FI_ADDR_UNSPEC, 1, 0, &c) < 0);
	CHECK(fi_inject(ep, sbuf, 10, p.addr[1]) < 0);
	CHECK_EQ(fi_enable(ep), 0);
	CHECK(cq_empty(cq));
	CHECK(cq_empty(p.cq[1]));	/* nothing was sent to ep 1 */
	/* Now it works, and only the new receive completes. */
	{
		char name[ADDR_MAX];
		size_t len = sizeof(name);
		fi_addr_t a;
		CHECK_EQ(fi_getname(&ep->fid, name, &len), 0);
		CHECK_EQ(fi_av_insert(p.av, name, 1, &a, 0, NULL), 1);
		CHECK_EQ(fi_recv(ep, rbuf, 64, NULL, FI_ADDR_UNSPEC, &dummy),
			 0);
		CHECK_EQ(fi_send(p.ep[0], sbuf, 10, NULL, a, &c), 0);
		CHECK_EQ(read_tagged(p.cq[0], &e), 1);
		CHECK(e.op_context == &c);
		CHECK_EQ(read_tagged(cq, &e), 1);
		CHECK(e.op_context == &dummy);
		CHECK_EQ(e.len, 10);
		CHECK(cq_empty(cq));
	}
	CHECK_EQ(fi_close(&ep->fid), 0);
	CHECK_EQ(fi_close(&cq->fid), 0);

	/* An fi_addr never inserted. */
	CHECK(fi_send(p.ep[0], sbuf, 10, NULL, 777, NULL) < 0);
	CHECK(fi_tsend(p.ep[0], sbuf, 10, NULL, 777, 1, NULL) < 0);
	CHECK(fi_send(p.ep[0], sbuf, RNDV_LEN, NULL, 777, NULL) < 0);
	CHECK(fi_inject(p.ep[0], sbuf, 10, 777) < 0);
	/* iov count above the limit. */
	{
		struct iovec iov[8];
		for (int i = 0; i < 8; i++) {
			iov[i].iov_base = sbuf + i;
			iov[i].iov_len = 1;
		}
		size_t lim = p.info->tx_attr->iov_limit;
		CHECK_EQ(fi_sendv(p.ep[0], iov, NULL, lim + 1, p.addr[1], NULL),
			 -FI_EINVAL);
		CHECK_EQ(fi_recvv(p.ep[1], iov, NULL, lim + 1, FI_ADDR_UNSPEC,
				  NULL), -FI_EINVAL);
		CHECK_EQ(fi_tsendv(p.ep[0], iov, NULL, lim + 1, p.addr[1], 0,
				   NULL), -FI_EINVAL);
		CHECK_EQ(fi_trecvv(p.ep[1], iov, NULL, lim + 1, FI_ADDR_UNSPEC,
				   0, 0, NULL), -FI_EINVAL);
	}
	/* inject above inject_size. */
	{
		size_t n = p.info->tx_attr->inject_size;
		CHECK(n > 0 && n < RNDV_LEN);
		CHECK_EQ(fi_inject(p.ep[0], sbuf, n + 1, p.addr[1]),
			 -FI_EMSGSIZE);
		CHECK_EQ(fi_tinject(p.ep[0], sbuf, n + 1, p.addr[1], 0),
			 -FI_EMSGSIZE);
		CHECK_EQ(fi_injectdata(p.ep[0], sbuf, n + 1, 1, p.addr[1]),
			 -FI_EMSGSIZE);
		/* Exactly inject_size is fine. */
		CHECK_EQ(fi_recv(p.ep[1], rbuf, n, NULL, FI_ADDR_UNSPEC, NULL),
			 0);
		CHECK_EQ(fi_inject(p.ep[0], sbuf, n, p.addr[1]), 0);
		CHECK_EQ(read_tagged(p.cq[1], &e), 1);
		CHECK_EQ(e.len, n);
	}
	/* Unknown options. */
	{
		size_t v = 1, len = sizeof(v);
		CHECK_EQ(fi_setopt(&p.ep[0]->fid, FI_OPT_ENDPOINT, 12345, &v,
				   sizeof(v)), -FI_ENOPROTOOPT);
		CHECK_EQ(fi_setopt(&p.ep[0]->fid, 999, FI_OPT_MIN_MULTI_RECV,
				   &v, sizeof(v)), -FI_ENOPROTOOPT);
		CHECK_EQ(fi_getopt(&p.ep[0]->fid, FI_OPT_ENDPOINT, 12345, &v,
				   &len), -FI_ENOPROTOOPT);
	}
	CHECK(cq_empty(p.cq[0]) && cq_empty(p.cq[1]));
out:
	pair_close(&p);
}

/* ---- FI_THREAD_SAFE ------------------------------------------------------ */

#define THREADS		4
#define ROUNDS		300

struct op {
	atomic_int done;
	atomic_int err;
};

struct thread_arg {
	struct pair *p;
	int id;
	int failures;
};

/* Drains both CQs, marking whichever operations completed. */
static void reap(struct pair *p)
{
	struct fi_cq_tagged_entry e[8];

	for (int i = 0; i < 2; i++) {
		ssize_t n = fi_cq_read(p->cq[i], e, 8);
		if (n == -FI_EAVAIL) {
			struct fi_cq_err_entry ee = { 0 };
			if (fi_cq_readerr(p->cq[i], &ee, 0) == 1 &&
			    ee.op_context) {
				struct op *op = ee.op_context;
				atomic_store(&op->err, 1);
				atomic_store(&op->done, 1);
			}
			continue;
		}
		for (ssize_t k = 0; k < n; k++)
			atomic_store(&((struct op *) e[k].op_context)->done, 1);
	}
}

static bool await(struct pair *p, struct op *op)
{
	double end = now_s() + 5;

	while (!atomic_load(&op->done) && now_s() < end)
		reap(p);
	return atomic_load(&op->done) && !atomic_load(&op->err);
}

static void *pingpong(void *varg)
{
	struct thread_arg *a = varg;
	struct pair *p = a->p;
	size_t max = 70000;
	unsigned char *s = malloc(max), *r0 = malloc(max), *r1 = malloc(max);

	for (int i = 0; i < ROUNDS; i++) {
		uint64_t tag = ((uint64_t) a->id << 32) | (uint64_t) i;
		size_t len = i % 50 == 7 ? 65536 : (size_t) (i * 37 % 2000);
		struct op ops[4] = { { 0 } };
		ssize_t ret;

		fill(s, len, a->id * 1000 + i);
		memset(r1, 0, len);
		/* ping ep0 -> ep1, pong ep1 -> ep0 with the tag's top bit. */
		ret = fi_trecv(p->ep[1], r1, max, NULL, p->addr[0], tag, 0,
			       &ops[0]);
		ret = ret ? ret : fi_trecv(p->ep[0], r0, max, NULL, p->addr[1],
					   tag | (1ull << 63), 0, &ops[1]);
		while (!ret && (ret = fi_tsend(p->ep[0], s, len, NULL,
					       p->addr[1], tag, &ops[2])) ==
		       -FI_EAGAIN)
			reap(p);
		if (ret || !await(p, &ops[0]) || !same_fill(r1, len,
							   a->id * 1000 + i)) {
			a->failures++;
			break;
		}
		while ((ret = fi_tsend(p->ep[1], r1, len, NULL, p->addr[0],
				       tag | (1ull << 63), &ops[3])) ==
		       -FI_EAGAIN)
			reap(p);
		if (ret || !await(p, &ops[1]) || !await(p, &ops[2]) ||
		    !await(p, &ops[3]) || !same_fill(r0, len,
						    a->id * 1000 + i)) {
			a->failures++;
			break;
		}
	}
	free(s);
	free(r0);
	free(r1);
	return NULL;
}

static void test_threads(void)
{
	struct pair p;
	pthread_t t[THREADS];
	struct thread_arg a[THREADS];

	CHECK_EQ(pair_open(&p, &DEFAULT_OPTS), 0);
	if (!p.ep[1])
		goto out;
	CHECK_EQ(p.info->domain_attr->threading, FI_THREAD_SAFE);
	for (int i = 0; i < THREADS; i++) {
		a[i] = (struct thread_arg) { .p = &p, .id = i };
		CHECK_EQ(pthread_create(&t[i], NULL, pingpong, &a[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(a[i].failures, 0);
	}
	CHECK(cq_empty(p.cq[0]) && cq_empty(p.cq[1]));
out:
	pair_close(&p);
}

/* ---- a second process ------------------------------------------------- */

/* One endpoint of its own in a child process. */
struct single {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_ep *ep;
	struct fid_cq *cq;
	fi_addr_t peer;
};

static int single_open(struct single *s, int sock)
{
	struct fi_info *hints = make_hints(FI_AV_TABLE);
	struct fi_av_attr av_attr = { .type = FI_AV_TABLE };
	char name[ADDR_MAX], peer[ADDR_MAX];
	size_t len = sizeof(name);
	int ret;

	memset(s, 0, sizeof(*s));
	ret = fi_getinfo(API, NULL, NULL, 0, hints, &s->info);
	fi_freeinfo(hints);
	ret = ret ? ret : fi_fabric(s->info->fabric_attr, &s->fabric, NULL);
	ret = ret ? ret : fi_domain(s->fabric, s->info, &s->domain, NULL);
	ret = ret ? ret : fi_av_open(s->domain, &av_attr, &s->av, NULL);
	ret = ret ? ret : fi_endpoint(s->domain, s->info, &s->ep, NULL);
	ret = ret ? ret : open_cq(s->domain, FI_CQ_FORMAT_TAGGED, 0, &s->cq);
	ret = ret ? ret : fi_ep_bind(s->ep, &s->av->fid, 0);
	ret = ret ? ret : fi_ep_bind(s->ep, &s->cq->fid, FI_TRANSMIT | FI_RECV);
	ret = ret ? ret : fi_enable(s->ep);
	ret = ret ? ret : fi_getname(&s->ep->fid, name, &len);
	if (ret)
		return ret;
	if (write(sock, name, len) != (ssize_t) len ||
	    read(sock, peer, len) != (ssize_t) len)
		return -FI_EIO;
	return fi_av_insert(s->av, peer, 1, &s->peer, 0, NULL) == 1 ? 0 :
	       -FI_EINVAL;
}

static void single_close(struct single *s)
{
	fi_close(&s->ep->fid);
	fi_close(&s->cq->fid);
	fi_close(&s->av->fid);
	fi_close(&s->domain->fid);
	fi_close(&s->fabric->fid);
	fi_freeinfo(s->info);
}

/* The child: answers the parent's script, then exits 0 on success. */
static int child_main(int sock)
{
	struct single s;
	struct fi_cq_tagged_entry e;
	char cmd;
	int bad = 0;

	if (single_open(&s, sock))
		return 2;
	/* 1: after a pause, a small tagged message. */
	if (read(sock, &cmd, 1) != 1)
		return 3;
	usleep(100 * 1000);
	fill(sbuf, 64, 90);
	bad |= fi_tsend(s.ep, sbuf, 64, NULL, s.peer, 1, NULL) != 0;
	bad |= fi_cq_sread(s.cq, &e, 1, NULL, 5000) != 1;
	/* 2: a rendezvous message; its completion needs our progress. */
	fill(sbuf, RNDV_LEN, 91);
	bad |= fi_tsend(s.ep, sbuf, RNDV_LEN, NULL, s.peer, 2, NULL) != 0;
	bad |= fi_cq_sread(s.cq, &e, 1, NULL, 5000) != 1;
	/* 3: receive a rendezvous message and send it back. */
	memset(rbuf, 0, RNDV_LEN);
	bad |= fi_trecv(s.ep, rbuf, RNDV_LEN, NULL, s.peer, 3, 0, NULL) != 0;
	bad |= fi_cq_sread(s.cq, &e, 1, NULL, 5000) != 1;
	bad |= fi_tsend(s.ep, rbuf, RNDV_LEN, NULL, s.peer, 4, NULL) != 0;
	bad |= fi_cq_sread(s.cq, &e, 1, NULL, 5000) != 1;
	/* Wait for the parent's goodbye before tearing down. */
	if (read(sock, &cmd, 1) != 1)
		bad = 1;
	single_close(&s);
	free(sbuf);
	free(rbuf);
	return bad ? 4 : 0;
}

static void test_two_processes(void)
{
	struct single s;
	struct fi_cq_tagged_entry e;
	int sv[2], status;
	double t0, c0, wall, cpu;
	pid_t pid;

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		/* exit(), not _exit(): libfabric's destructor then frees its
		 * state, so valgrind sees no leaks in the child either. */
		close(sv[0]);
		exit(child_main(sv[1]));
	}
	close(sv[1]);
	CHECK_EQ(single_open(&s, sv[0]), 0);
	if (!s.ep)
		goto out;

	/* Idle sread: times out after the full wait, without spinning. */
	t0 = now_s();
	c0 = cpu_s();
	CHECK_EQ(fi_cq_sread(s.cq, &e, 1, NULL, 200), -FI_EAGAIN);
	wall = now_s() - t0;
	cpu = cpu_s() - c0;
	CHECK(wall >= 0.190);
	CHECK(wall < 1.0);
	CHECK(cpu < 0.5 * wall);
	if (wall < 0.190 || cpu >= 0.5 * wall)
		fprintf(stderr, "idle sread: %.3f s wall, %.3f s cpu\n", wall,
			cpu);

	/* sread wakes promptly when the child's message arrives. */
	CHECK_EQ(fi_trecv(s.ep, rbuf, 64, NULL, s.peer, 1, 0, NULL), 0);
	CHECK_EQ(write(sv[0], "1", 1), 1);
	t0 = now_s();
	c0 = cpu_s();
	CHECK_EQ(fi_cq_sread(s.cq, &e, 1, NULL, 5000), 1);
	wall = now_s() - t0;
	cpu = cpu_s() - c0;
	CHECK(wall < 1.0);	/* the child sends after 100 ms */
	CHECK(cpu < 0.5 * wall + 0.01);
	CHECK_EQ(e.len, 64);
	CHECK(same_fill(rbuf, 64, 90));

	/* Rendezvous from the child, read out of its address space. */
	memset(rbuf, 0, RNDV_LEN);
	CHECK_EQ(fi_trecv(s.ep, rbuf, RNDV_LEN, NULL, s.peer, 2, 0, NULL), 0);
	CHECK_EQ(fi_cq_sread(s.cq, &e, 1, NULL, 5000), 1);
	CHECK_EQ(e.len, RNDV_LEN);
	CHECK(same_fill(rbuf, RNDV_LEN, 91));

	/* Rendezvous to the child and back. */
	fill(sbuf, RNDV_LEN, 92);
	CHECK_EQ(fi_trecv(s.ep, rbuf, RNDV_LEN, NULL, s.peer, 4, 0, NULL), 0);
	CHECK_EQ(fi_tsend(s.ep, sbuf, RNDV_LEN, NULL, s.peer, 3, sbuf), 0);
	memset(&e, 0, sizeof(e));
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(fi_cq_sread(s.cq, &e, 1, NULL, 5000), 1);
		if (e.flags & FI_RECV)
			CHECK_EQ(e.len, RNDV_LEN);
	}
	CHECK(same_fill(rbuf, RNDV_LEN, 92));
	CHECK_EQ(write(sv[0], "2", 1), 1);
out:
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (s.ep)
		single_close(&s);
	close(sv[0]);
}

/* The receive path's fast paths and their fallbacks (matching, unexpected
 * messages, truncation, completions), run again with the CPU-specific
 * paths off. */
static void receive_paths(void)
{
	test_tagged_ops();
	test_tag_masks();
	test_peek_claim();
	test_multi_recv();
	test_unexp_reuse();
	test_trunc_cancel();
	test_selective_counters();
	test_delivery_complete();
	test_cq_formats();
	test_cq_batch_wrap();
}

int main(int argc, char **argv)
{
	bool portable_pass = getenv("FI_USB4_PORTABLE") != NULL;

	alarm(60);
	sbuf = malloc(RNDV_LEN + 64);
	rbuf = malloc(RNDV_LEN + 64);
	if (portable_pass) {
		printf("test_msg: receive paths with FI_USB4_PORTABLE=%s\n",
		       getenv("FI_USB4_PORTABLE"));
		receive_paths();
		goto out;
	}
	test_two_processes();
	test_msg_ops(FI_AV_MAP);
	test_msg_ops(FI_AV_TABLE);
	test_directed();
	test_protocols();
	receive_paths();
	test_read_after_entries();
	test_av(FI_AV_MAP);
	test_av(FI_AV_TABLE);
	test_bad_input();
	test_threads();
	if (!usb4_test_failures) {
		fflush(NULL);
		setenv("FI_USB4_PORTABLE", "1", 1);
		execv("/proc/self/exe", argv);
		CHECK(!"exec of the portable pass");
	}
out:
	free(sbuf);
	free(rbuf);
	return usb4_test_done("test_msg");
}
