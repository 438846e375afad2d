/*
 * A mixed workload run while the provider's allocations fail (failmalloc.c,
 * preloaded): no message or completion may be lost to out-of-memory.
 *
 *   LD_PRELOAD=failmalloc.so FAILMALLOC_RATE=0.2 FAILMALLOC_SEED=3 \
 *   FI_PROVIDER_PATH=.libs FI_PROVIDER=usb4 ./oom_workload [ROUNDS [WATCHDOG_S]]
 *
 * Two endpoints in this process, each with its own fabric, domain, AV and a
 * deliberately small CQ (it has to grow), talk over the shm link: A sends and
 * writes, B receives and is written to.  Once both are set up the program
 * arms failmalloc, then runs ROUNDS rounds (default 30) of:
 *
 *   BATCH tagged messages, 1 B to 1 MiB (eager up to 8 KiB, rendezvous
 *   above), each with a tag and content derived from its sequence number,
 *   sent with fi_tsend, fi_tsenddata, fi_tinjectdata or fi_tsendmsg with
 *   FI_DELIVERY_COMPLETE and remote CQ data; received expected (posted before
 *   the send), unexpected (posted after the message arrived) or by
 *   fi_trecvmsg FI_PEEK|FI_CLAIM then FI_CLAIM;
 *   WRITES fi_writedata into B's registered region, remote CQ data = their
 *   sequence number; ATOMICS fi_atomic FI_SUM on a counter in that region.
 *
 * Every post answered -FI_EAGAIN is retried after reading both CQs.  The run
 * fails when a message does not arrive exactly once with the right length,
 * tag, data and bytes (and nothing past them); when an operation gets no
 * completion, two, or an error one (a peek's FI_ENOMSG excepted); when a
 * write's notification is missing or doubled; when the atomic counter is
 * off; when anything is left over; and when a round makes no progress for
 * QUIET_MS (a hang) or the whole run outlasts the watchdog.
 *
 * Exit: 0 pass, 1 failed checks, 2 set-up failed, 3 watchdog.  The last lines
 * give failmalloc's counts.  Only the provider's allocations fail, never
 * this program's (it checks its own anyway).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fi_tagged.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define ROUNDS_DEFAULT	30
#define WATCHDOG_S	60		/* whole run */
#define QUIET_MS	5000		/* a round without any event: stuck */
#define IDLE_NAP_MS	10		/* idle longer: nap 1 ms between reads */
#define BATCH		24		/* messages per round */
#define WRITES		3		/* fi_writedata per round */
#define ATOMICS		2		/* fi_atomic per round */
#define CQ_DEPTH	8		/* small: the queues must grow */
#define CQ_READ		4		/* entries per fi_cq_read */
#define GUARD		64		/* bytes past a receive buffer */
#define GUARD_BYTE	0xa5
#define WRITE_SLOT	(256 * 1024)	/* B's region: one slot per write */
#define REGION_LEN	(WRITES * WRITE_SLOT + 64)
#define COUNTER_OFF	(WRITES * WRITE_SLOT)
#define TAG_BASE	0x4f4d000000000000ull
#define DATA_BASE	0xda7a000000000000ull
#define OP_MAGIC	0x6f70u
#define WRITE_SEED(i)	((1ull << 40) | (i))	/* fx_fill seed of write i */
#define FAILS_SHOWN	40

static const size_t msg_sizes[] = {
	1, 7, 64, 1000, 4096, 8191, 8192, 8193, 32768, 200000, 1 << 20,
};
static const size_t write_sizes[] = { 1, 100, 4096, 65536, WRITE_SLOT };

enum mode { M_EXPECTED, M_UNEXPECTED, M_PEEK, M_MODES };
enum how { H_TSEND, H_TSENDDATA, H_INJECTDATA, H_SENDMSG_DC, H_HOWS };
enum op_kind { OP_SEND, OP_RECV, OP_PEEK, OP_WRITE, OP_ATOMIC };

static const char *const mode_names[] = { "expected", "unexpected",
					  "peek+claim" };
static const char *const how_names[] = { "fi_tsend", "fi_tsenddata",
					 "fi_tinjectdata",
					 "fi_tsendmsg(DELIVERY_COMPLETE)" };

/* One posted operation; its address is the context libfabric hands back. */
struct op {
	struct fi_context ctx;	/* first: FI_PEEK|FI_CLAIM keeps state here */
	uint16_t magic;
	enum op_kind kind;
	void *owner;		/* struct msg, struct write or struct atom */
	uint64_t seq;		/* the owner's sequence number */
	int pending;		/* posted and not completed yet */
	unsigned completions, errors;
};

/* FI_PEEK|FI_CLAIM: peek until found, then claim with the same context. */
enum peek_state { P_IDLE, P_PEEKING, P_FOUND, P_DONE };

struct msg {
	uint64_t seq, tag, data;
	size_t len;
	enum mode mode;
	enum how how;
	char *sbuf, *rbuf;
	struct op send, recv;	/* recv also carries the peek */
	enum peek_state peek;
	bool recv_done;		/* its receive completed, well or not */
	unsigned delivered;
};

struct write {
	uint64_t seq;
	size_t len, off;
	char *lbuf;
	struct op op;
	unsigned notified;
};

struct atom {
	uint64_t value;
	struct op op;
};

struct side {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *ep;
	fi_addr_t peer;
	char name[FX_ADDR_MAX];
	size_t namelen;
};

struct run {
	struct side a, b;		/* a sends and writes, b receives */
	size_t inject_max;
	char *region;			/* b's, registered */
	struct fid_mr *mr;
	uint64_t rkey, rbase;
	struct msg *msgs;		/* every round's, kept to the end */
	struct write *writes;
	struct atom *atoms;
	size_t nmsgs, nwrites, natoms;
	size_t cap_msgs, cap_writes, cap_atoms;
	uint64_t seed;
	unsigned long progress;		/* events other than peek misses */
	uint64_t counter_expect;
	unsigned long ok, err_entries, enomsg, spurious, failures;
	unsigned long count_mode[M_MODES], count_how[H_HOWS], rndv;
};

static volatile sig_atomic_t current_round = -1;

/* ---- reporting ---- */

static void fail(struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failures++ >= FAILS_SHOWN)
		return;
	va_start(ap, fmt);
	fputs("oom_workload: FAIL: ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
}

static void *xmalloc(size_t len)
{
	void *p = malloc(len);

	if (!p) {
		/* failmalloc never fails this program's allocations. */
		fprintf(stderr, "oom_workload: the test's own malloc(%zu) failed\n",
			len);
		exit(2);
	}
	return p;
}

/* SIGALRM: only async-signal-safe calls. */
static void on_watchdog(int sig)
{
	static const char msg[] = "oom_workload: WATCHDOG: the run did not "
				  "finish in time (hang) in round ";
	char num[16], *p = num + sizeof(num);
	int round = current_round;
	ssize_t ignored;

	(void) sig;
	*--p = '\n';
	do {
		*--p = (char) ('0' + (round < 0 ? 0 : round % 10));
		round /= 10;
	} while (round > 0);
	ignored = write(STDOUT_FILENO, msg, sizeof(msg) - 1);
	ignored = write(STDOUT_FILENO, p, (size_t) (num + sizeof(num) - p));
	(void) ignored;
	_exit(3);
}

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t z = a * 0x9e3779b97f4a7c15ull + b + 0x632be59bd9b4e019ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- set-up ---- */

static int side_open(struct side *s)
{
	struct fi_info *hints = fx_hints(FI_TAGGED | FI_RMA | FI_ATOMIC,
					 FX_MR_OMPI);
	struct fi_cq_attr cqa = { .format = FI_CQ_FORMAT_TAGGED,
				  .size = CQ_DEPTH };
	struct fi_av_attr ava = { .type = FI_AV_MAP };
	int ret;

	memset(s, 0, sizeof(*s));
	if (!hints)
		return -FI_ENOMEM;
	hints->tx_attr->op_flags = 0;	/* delivery complete only when asked */
	ret = fi_getinfo(FX_API, NULL, NULL, 0, hints, &s->info);
	fi_freeinfo(hints);
	if (ret)
		return ret;
	if ((ret = fi_fabric(s->info->fabric_attr, &s->fabric, NULL)) ||
	    (ret = fi_domain(s->fabric, s->info, &s->domain, NULL)) ||
	    (ret = fi_av_open(s->domain, &ava, &s->av, NULL)) ||
	    (ret = fi_cq_open(s->domain, &cqa, &s->cq, NULL)) ||
	    (ret = fi_endpoint(s->domain, s->info, &s->ep, NULL)) ||
	    (ret = fi_ep_bind(s->ep, &s->av->fid, 0)) ||
	    (ret = fi_ep_bind(s->ep, &s->cq->fid, FI_TRANSMIT | FI_RECV)) ||
	    (ret = fi_enable(s->ep)))
		return ret;
	s->namelen = sizeof(s->name);
	return fi_getname(&s->ep->fid, s->name, &s->namelen);
}

static void side_close(struct side *s)
{
	if (s->ep)
		fi_close(&s->ep->fid);
	if (s->cq)
		fi_close(&s->cq->fid);
	if (s->av)
		fi_close(&s->av->fid);
	if (s->domain)
		fi_close(&s->domain->fid);
	if (s->fabric)
		fi_close(&s->fabric->fid);
	if (s->info)
		fi_freeinfo(s->info);
}

static fi_addr_t insert_peer(struct side *s, const void *name)
{
	fi_addr_t fa = FI_ADDR_NOTAVAIL;

	if (fi_av_insert(s->av, name, 1, &fa, 0, NULL) != 1)
		return FI_ADDR_NOTAVAIL;
	return fa;
}

static int run_open(struct run *r, int rounds)
{
	int ret;

	if ((ret = side_open(&r->a)) || (ret = side_open(&r->b)))
		return ret;
	/* Both ways: b answers (FIN, ACK) only peers in its AV. */
	r->a.peer = insert_peer(&r->a, r->b.name);
	r->b.peer = insert_peer(&r->b, r->a.name);
	if (r->a.peer == FI_ADDR_NOTAVAIL || r->b.peer == FI_ADDR_NOTAVAIL)
		return -FI_EINVAL;
	r->inject_max = r->a.info->tx_attr->inject_size;
	r->region = xmalloc(REGION_LEN);
	memset(r->region, 0, REGION_LEN);
	ret = fi_mr_reg(r->b.domain, r->region, REGION_LEN,
			FI_REMOTE_READ | FI_REMOTE_WRITE, 0, 0, 0, &r->mr, NULL);
	if (ret)
		return ret;
	r->rkey = fi_mr_key(r->mr);
	r->rbase = r->b.info->domain_attr->mr_mode & FI_MR_VIRT_ADDR ?
		   (uint64_t) (uintptr_t) r->region : 0;
	r->msgs = calloc((size_t) rounds * BATCH, sizeof(*r->msgs));
	r->writes = calloc((size_t) rounds * WRITES, sizeof(*r->writes));
	r->atoms = calloc((size_t) rounds * ATOMICS, sizeof(*r->atoms));
	if (!r->msgs || !r->writes || !r->atoms)
		return -FI_ENOMEM;
	r->cap_msgs = (size_t) rounds * BATCH;
	r->cap_writes = (size_t) rounds * WRITES;
	r->cap_atoms = (size_t) rounds * ATOMICS;
	return 0;
}

static void run_close(struct run *r)
{
	if (r->mr)
		fi_close(&r->mr->fid);
	side_close(&r->a);
	side_close(&r->b);
	free(r->region);
	free(r->msgs);
	free(r->writes);
	free(r->atoms);
}

/* ---- completions ---- */

static void op_init(struct op *op, enum op_kind kind, void *owner,
		    uint64_t seq)
{
	memset(op, 0, sizeof(*op));
	op->magic = OP_MAGIC;
	op->kind = kind;
	op->owner = owner;
	op->seq = seq;
}

static bool inside(const void *p, const void *base, size_t len)
{
	return (const char *) p >= (const char *) base &&
	       (const char *) p < (const char *) base + len;
}

/* The op behind a context, or NULL when it is none of ours. */
static struct op *op_of(struct run *r, void *ctx)
{
	struct op *op = ctx;

	if (!inside(ctx, r->msgs, r->cap_msgs * sizeof(*r->msgs)) &&
	    !inside(ctx, r->writes, r->cap_writes * sizeof(*r->writes)) &&
	    !inside(ctx, r->atoms, r->cap_atoms * sizeof(*r->atoms)))
		return NULL;
	return op->magic == OP_MAGIC ? op : NULL;
}

static const char *kind_of(size_t len)
{
	return len > 8192 ? "rendezvous" : "eager";
}

static void check_cq_data(struct run *r, const struct msg *m, uint64_t flags,
			  uint64_t data, const char *what)
{
	bool want = m->how != H_TSEND;

	if (want != !!(flags & FI_REMOTE_CQ_DATA) || (want && data != m->data))
		fail(r, "message %llu: %s: remote CQ data %s (flags 0x%llx, "
		     "data 0x%llx)", (unsigned long long) m->seq, what,
		     want ? "missing or wrong" : "unasked",
		     (unsigned long long) flags, (unsigned long long) data);
}

/* A receive completed successfully: the message must be whole and alone. */
static void check_delivery(struct run *r, struct msg *m,
			   const struct fi_cq_tagged_entry *e)
{
	size_t bad;

	if (++m->delivered > 1)
		fail(r, "message %llu delivered %u times",
		     (unsigned long long) m->seq, m->delivered);
	if (e->len != m->len || e->tag != m->tag ||
	    (e->flags & (FI_RECV | FI_TAGGED)) != (FI_RECV | FI_TAGGED))
		fail(r, "message %llu: receive entry len %zu tag 0x%llx flags "
		     "0x%llx, want len %zu tag 0x%llx",
		     (unsigned long long) m->seq, e->len,
		     (unsigned long long) e->tag,
		     (unsigned long long) e->flags, m->len,
		     (unsigned long long) m->tag);
	check_cq_data(r, m, e->flags, e->data, "receive");
	bad = fx_verify(m->rbuf, m->len, m->seq, 0);
	if (bad != m->len)
		fail(r, "message %llu (%zu B): byte %zu is wrong",
		     (unsigned long long) m->seq, m->len, bad);
	for (size_t i = 0; i < GUARD; i++)
		if ((uint8_t) m->rbuf[m->len + i] != GUARD_BYTE) {
			fail(r, "message %llu: written past its end (+%zu)",
			     (unsigned long long) m->seq, i);
			break;
		}
}

static void on_peek(struct run *r, struct msg *m,
		    const struct fi_cq_tagged_entry *e, int err)
{
	if (err == FI_ENOMSG) {
		r->enomsg++;	/* not here yet: peek again */
		m->peek = P_IDLE;
		return;
	}
	r->progress++;
	if (err) {
		fail(r, "message %llu: peek failed: %s",
		     (unsigned long long) m->seq, fi_strerror(err));
		m->peek = P_DONE;
		m->recv_done = true;
		return;
	}
	if (e->len != m->len || e->tag != m->tag)
		fail(r, "message %llu: peek saw len %zu tag 0x%llx",
		     (unsigned long long) m->seq, e->len,
		     (unsigned long long) e->tag);
	check_cq_data(r, m, e->flags, e->data, "peek");
	m->peek = P_FOUND;
}

static void on_op(struct run *r, struct op *op,
		  const struct fi_cq_tagged_entry *e, int err)
{
	struct msg *m = op->owner;
	struct write *w = op->owner;
	struct atom *at = op->owner;

	if (op->pending <= 0) {
		r->spurious++;
		fail(r, "a completion (err %d) for an operation with none "
		     "outstanding (kind %d, %llu)", err, (int) op->kind,
		     (unsigned long long) op->seq);
		return;
	}
	op->pending--;
	op->completions++;
	op->errors += err != 0;
	if (op->kind == OP_PEEK) {
		on_peek(r, m, e, err);
		return;
	}
	r->progress++;
	if (err) {
		fail(r, "%s %llu completed with error %d (%s)",
		     op->kind == OP_SEND ? "the send of message" :
		     op->kind == OP_RECV ? "the receive of message" :
		     op->kind == OP_WRITE ? "write" : "atomic",
		     (unsigned long long) op->seq, err, fi_strerror(err));
		if (op->kind == OP_RECV)
			m->recv_done = true;
		return;
	}
	switch (op->kind) {
	case OP_SEND:
		if (e->len != m->len ||
		    (e->flags & (FI_SEND | FI_TAGGED)) != (FI_SEND | FI_TAGGED))
			fail(r, "message %llu: send entry len %zu flags 0x%llx",
			     (unsigned long long) m->seq, e->len,
			     (unsigned long long) e->flags);
		break;
	case OP_RECV:
		check_delivery(r, m, e);
		m->recv_done = true;
		break;
	case OP_WRITE:
		if (e->len != w->len || !(e->flags & FI_WRITE))
			fail(r, "write %llu: entry len %zu flags 0x%llx",
			     (unsigned long long) w->seq, e->len,
			     (unsigned long long) e->flags);
		break;
	case OP_ATOMIC:
		r->counter_expect += at->value;
		break;
	case OP_PEEK:
		break;
	}
}

/* Remote CQ data of an fi_writedata landing in b's region. */
static void on_write_data(struct run *r, const struct fi_cq_tagged_entry *e)
{
	uint64_t idx = e->data ^ DATA_BASE;
	struct write *w;

	r->progress++;
	if (idx >= r->nwrites) {
		fail(r, "write notification with unknown data 0x%llx",
		     (unsigned long long) e->data);
		return;
	}
	w = &r->writes[idx];
	if (++w->notified > 1)
		fail(r, "write %llu notified %u times",
		     (unsigned long long) w->seq, w->notified);
	if (e->len != w->len)
		fail(r, "write %llu: notification len %zu, want %zu",
		     (unsigned long long) w->seq, e->len, w->len);
	if (fx_verify(r->region + w->off, w->len, WRITE_SEED(w->seq), 0) !=
	    w->len)
		fail(r, "write %llu: the region does not hold its bytes",
		     (unsigned long long) w->seq);
}

static void on_entry(struct run *r, const struct fi_cq_tagged_entry *e,
		     int err)
{
	struct op *op;

	if (!e->op_context && !err && (e->flags & FI_REMOTE_WRITE) &&
	    (e->flags & FI_REMOTE_CQ_DATA)) {
		on_write_data(r, e);
		return;
	}
	op = op_of(r, e->op_context);
	if (!op) {
		r->spurious++;
		fail(r, "a completion with an unknown context %p (flags "
		     "0x%llx, err %d)", e->op_context,
		     (unsigned long long) e->flags, err);
		return;
	}
	on_op(r, op, e, err);
}

/* Reads one side's CQ until it is empty; returns the entries read. */
static unsigned long pump_side(struct run *r, struct side *s)
{
	struct fi_cq_tagged_entry e[CQ_READ];
	unsigned long events = 0;

	for (int k = 0; k < 64; k++) {
		ssize_t n = fi_cq_read(s->cq, e, CQ_READ);

		if (n == -FI_EAVAIL) {
			struct fi_cq_err_entry ee = { 0 };
			struct fi_cq_tagged_entry as = { 0 };
			if (fi_cq_readerr(s->cq, &ee, 0) != 1) {
				fail(r, "fi_cq_readerr found nothing");
				break;
			}
			r->err_entries++;
			as = (struct fi_cq_tagged_entry) {
				.op_context = ee.op_context, .flags = ee.flags,
				.len = ee.len, .buf = ee.buf, .data = ee.data,
				.tag = ee.tag };
			on_entry(r, &as, ee.err ? ee.err : FI_EOTHER);
			events++;
			continue;
		}
		if (n == -FI_EAGAIN)
			break;
		if (n < 0) {
			fail(r, "fi_cq_read: %s", fi_strerror((int) -n));
			break;
		}
		r->ok += (unsigned long) n;
		for (ssize_t i = 0; i < n; i++)
			on_entry(r, &e[i], 0);
		events += (unsigned long) n;
	}
	return events;
}

/* Reads both CQs (which progresses both endpoints). */
static unsigned long pump(struct run *r)
{
	return pump_side(r, &r->a) + pump_side(r, &r->b);
}

/* ---- posting ---- */

/* Between two tries of a post: read the CQs; nap once it takes long. */
static void retry_pause(struct run *r, uint64_t since)
{
	if (!pump(r) && fx_now_ms() - since > IDLE_NAP_MS)
		usleep(1000);
}

/* Retries a post while it answers -FI_EAGAIN, for QUIET_MS at most. */
#define RETRY(r, ret, call) \
	for (uint64_t t0_ = fx_now_ms(); \
	     ((ret) = (call)) == -FI_EAGAIN && fx_now_ms() - t0_ < QUIET_MS;) \
		retry_pause(r, t0_)

/* Books a post's result: true when it is outstanding now. */
static bool posted(struct run *r, ssize_t ret, struct op *op,
		   const char *what, uint64_t seq)
{
	if (ret) {
		fail(r, "%s %llu: %s", what, (unsigned long long) seq,
		     ret == -FI_EAGAIN ? "-FI_EAGAIN for the whole wait" :
		     fi_strerror((int) -ret));
		return false;
	}
	if (op)
		op->pending++;
	return true;
}

static void post_send(struct run *r, struct msg *m)
{
	struct side *a = &r->a;
	struct iovec iov = { m->sbuf, m->len };
	struct fi_msg_tagged tm = {
		.msg_iov = &iov, .iov_count = 1, .addr = a->peer,
		.tag = m->tag, .context = &m->send.ctx, .data = m->data,
	};
	ssize_t ret;

	switch (m->how) {
	case H_TSEND:
		RETRY(r, ret, fi_tsend(a->ep, m->sbuf, m->len, NULL, a->peer,
				       m->tag, &m->send.ctx));
		break;
	case H_TSENDDATA:
		RETRY(r, ret, fi_tsenddata(a->ep, m->sbuf, m->len, NULL, m->data,
					   a->peer, m->tag, &m->send.ctx));
		break;
	case H_INJECTDATA:
		RETRY(r, ret, fi_tinjectdata(a->ep, m->sbuf, m->len, m->data,
					     a->peer, m->tag));
		if (!ret)
			memset(m->sbuf, 0, m->len);	/* ours again at once */
		posted(r, ret, NULL, "inject of message", m->seq);
		return;
	default:
		RETRY(r, ret, fi_tsendmsg(a->ep, &tm, FI_DELIVERY_COMPLETE |
					  FI_COMPLETION | FI_REMOTE_CQ_DATA));
		break;
	}
	posted(r, ret, &m->send, "send of message", m->seq);
}

static void post_recv(struct run *r, struct msg *m, uint64_t flags)
{
	struct iovec iov = { m->rbuf, m->len + GUARD };
	struct fi_msg_tagged tm = {
		.msg_iov = &iov, .iov_count = 1, .addr = FI_ADDR_UNSPEC,
		.tag = m->tag, .context = &m->recv.ctx,
	};
	ssize_t ret;

	m->recv.kind = OP_RECV;
	if (flags)
		RETRY(r, ret, fi_trecvmsg(r->b.ep, &tm, flags));
	else
		RETRY(r, ret, fi_trecv(r->b.ep, m->rbuf, m->len + GUARD, NULL,
				       FI_ADDR_UNSPEC, m->tag, 0,
				       &m->recv.ctx));
	if (!posted(r, ret, &m->recv, "receive of message", m->seq))
		m->recv_done = true;
}

static void post_peek(struct run *r, struct msg *m)
{
	struct fi_msg_tagged tm = {
		.addr = FI_ADDR_UNSPEC, .tag = m->tag, .context = &m->recv.ctx,
	};
	ssize_t ret;

	m->recv.kind = OP_PEEK;
	RETRY(r, ret, fi_trecvmsg(r->b.ep, &tm, FI_PEEK | FI_CLAIM));
	if (posted(r, ret, &m->recv, "peek of message", m->seq)) {
		m->peek = P_PEEKING;
	} else {
		m->peek = P_DONE;
		m->recv_done = true;
	}
}

/* Peeks that missed look again; found ones are claimed. */
static void advance_peeks(struct run *r, struct msg *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (m[i].mode != M_PEEK)
			continue;
		if (m[i].peek == P_IDLE) {
			post_peek(r, &m[i]);
		} else if (m[i].peek == P_FOUND) {
			m[i].peek = P_DONE;
			post_recv(r, &m[i], FI_CLAIM);
		}
	}
}

static void post_write(struct run *r, struct write *w)
{
	ssize_t ret;

	RETRY(r, ret, fi_writedata(r->a.ep, w->lbuf, w->len, NULL,
				   DATA_BASE ^ w->seq, r->a.peer,
				   r->rbase + w->off, r->rkey, &w->op.ctx));
	posted(r, ret, &w->op, "write", w->seq);
}

static void post_atomic(struct run *r, struct atom *at)
{
	ssize_t ret;

	RETRY(r, ret, fi_atomic(r->a.ep, &at->value, 1, NULL, r->a.peer,
				r->rbase + COUNTER_OFF, r->rkey, FI_UINT64,
				FI_SUM, &at->op.ctx));
	posted(r, ret, &at->op, "atomic", at->op.seq);
}

/* ---- rounds ---- */

static void plan_msg(struct run *r, struct msg *m, uint64_t seq)
{
	uint64_t h = mix(r->seed, seq);

	m->seq = seq;
	m->tag = TAG_BASE | seq;
	m->data = DATA_BASE ^ seq;
	m->len = msg_sizes[h % (sizeof(msg_sizes) / sizeof(msg_sizes[0]))];
	m->mode = (enum mode) ((h >> 16) % M_MODES);
	m->how = (enum how) ((h >> 32) % H_HOWS);
	if (m->how == H_INJECTDATA && m->len > r->inject_max)
		m->how = H_TSENDDATA;
	m->sbuf = xmalloc(m->len);
	fx_fill(m->sbuf, m->len, seq, 0);
	m->rbuf = xmalloc(m->len + GUARD);
	memset(m->rbuf, GUARD_BYTE, m->len + GUARD);
	op_init(&m->send, OP_SEND, m, seq);
	op_init(&m->recv, OP_RECV, m, seq);
	r->count_mode[m->mode]++;
	r->count_how[m->how]++;
	r->rndv += m->len > r->inject_max;
}

static void plan_write(struct run *r, struct write *w, uint64_t idx, int slot)
{
	w->seq = idx;
	w->len = write_sizes[mix(r->seed ^ 0x77, idx) %
			     (sizeof(write_sizes) / sizeof(write_sizes[0]))];
	w->off = (size_t) slot * WRITE_SLOT;
	w->lbuf = xmalloc(w->len);
	fx_fill(w->lbuf, w->len, WRITE_SEED(idx), 0);
	op_init(&w->op, OP_WRITE, w, idx);
}

static bool msg_settled(const struct msg *m)
{
	return (m->how == H_INJECTDATA || m->send.completions) && m->recv_done;
}

static bool write_settled(const struct write *w)
{
	return w->op.completions && (w->op.errors || w->notified);
}

struct round {
	struct msg *m;
	struct write *w;
	struct atom *at;
};

static bool round_settled(const struct round *rd)
{
	for (int i = 0; i < BATCH; i++)
		if (!msg_settled(&rd->m[i]))
			return false;
	for (int i = 0; i < WRITES; i++)
		if (!write_settled(&rd->w[i]))
			return false;
	for (int i = 0; i < ATOMICS; i++)
		if (!rd->at[i].op.completions)
			return false;
	return true;
}

/* Names everything of a stuck round that never finished. */
static void report_stuck(struct run *r, const struct round *rd)
{
	for (int i = 0; i < BATCH; i++) {
		const struct msg *m = &rd->m[i];
		if (msg_settled(m))
			continue;
		fail(r, "message %llu (%zu B %s, %s, %s) never finished: send "
		     "%s, receive %s%s", (unsigned long long) m->seq, m->len,
		     kind_of(m->len), mode_names[m->mode], how_names[m->how],
		     m->how == H_INJECTDATA ? "injected" :
		     m->send.completions ? "completed" : "NOT completed",
		     m->recv_done ? "completed" : "NOT completed",
		     m->mode == M_PEEK && m->peek != P_DONE ?
		     " (peek did not find it)" : "");
	}
	for (int i = 0; i < WRITES; i++) {
		const struct write *w = &rd->w[i];
		if (!write_settled(w))
			fail(r, "write %llu (%zu B): completion %s, remote CQ "
			     "data %s", (unsigned long long) w->seq, w->len,
			     w->op.completions ? "in" : "MISSING",
			     w->notified ? "in" : "MISSING");
	}
	for (int i = 0; i < ATOMICS; i++)
		if (!rd->at[i].op.completions)
			fail(r, "atomic %llu: completion MISSING",
			     (unsigned long long) rd->at[i].op.seq);
}

/* Reads the CQs until the round is settled; false when it got stuck. */
static bool wait_round(struct run *r, const struct round *rd)
{
	uint64_t last = fx_now_ms();
	unsigned long seen = r->progress;

	while (!round_settled(rd)) {
		advance_peeks(r, rd->m, BATCH);
		pump(r);
		if (r->progress != seen) {
			seen = r->progress;
			last = fx_now_ms();
		} else if (fx_now_ms() - last > QUIET_MS) {
			printf("oom_workload: round %d: nothing happened for "
			       "%d ms\n", (int) current_round, QUIET_MS);
			report_stuck(r, rd);
			return false;
		} else {
			/* Not a busy loop for the whole wait. */
			usleep(fx_now_ms() - last > IDLE_NAP_MS ? 1000 : 20);
		}
	}
	return true;
}

static void free_round(const struct round *rd)
{
	for (int i = 0; i < BATCH; i++) {
		free(rd->m[i].sbuf);
		free(rd->m[i].rbuf);
	}
	for (int i = 0; i < WRITES; i++)
		free(rd->w[i].lbuf);
}

/*
 * One round: expected receives; sends interleaved with writes, then
 * atomics; a few CQ reads so the rest arrive unexpected; their receives;
 * the peeks and claims as the wait goes.
 */
static bool run_round(struct run *r)
{
	struct round rd = { r->msgs + r->nmsgs, r->writes + r->nwrites,
			    r->atoms + r->natoms };
	bool ok;

	for (int i = 0; i < BATCH; i++)
		plan_msg(r, &rd.m[i], r->nmsgs + i);
	for (int i = 0; i < WRITES; i++)
		plan_write(r, &rd.w[i], r->nwrites + i, i);
	for (int i = 0; i < ATOMICS; i++) {
		rd.at[i].value = r->natoms + i + 1;
		op_init(&rd.at[i].op, OP_ATOMIC, &rd.at[i], r->natoms + i);
	}
	r->nmsgs += BATCH;
	r->nwrites += WRITES;
	r->natoms += ATOMICS;

	for (int i = 0; i < BATCH; i++)
		if (rd.m[i].mode == M_EXPECTED)
			post_recv(r, &rd.m[i], 0);
	for (int i = 0; i < BATCH; i++) {
		post_send(r, &rd.m[i]);
		if (i % (BATCH / WRITES) == 0)
			post_write(r, &rd.w[i / (BATCH / WRITES)]);
	}
	for (int i = 0; i < ATOMICS; i++)
		post_atomic(r, &rd.at[i]);
	for (int i = 0; i < 4; i++)
		pump(r);
	for (int i = 0; i < BATCH; i++)
		if (rd.m[i].mode == M_UNEXPECTED)
			post_recv(r, &rd.m[i], 0);
	ok = wait_round(r, &rd);
	if (ok)
		free_round(&rd);	/* a stuck op may still use its buffers */
	return ok;
}

/* ---- the end ---- */

/* Nothing may be left: no message waiting at b, no entry in either CQ. */
static void check_leftovers(struct run *r)
{
	struct fi_msg_tagged tm = { .addr = FI_ADDR_UNSPEC, .ignore = ~0ull };
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry ee = { 0 };
	struct fi_context probe;
	uint64_t end;
	ssize_t ret;

	for (int i = 0; i < 20; i++)
		pump(r);	/* anything still coming counts as spurious */
	tm.context = &probe;
	ret = fi_trecvmsg(r->b.ep, &tm, FI_PEEK);
	if (ret) {
		fail(r, "the final peek: %s", fi_strerror((int) -ret));
		return;
	}
	end = fx_now_ms() + QUIET_MS;
	do {
		ret = fi_cq_read(r->b.cq, &e, 1);
	} while (ret == -FI_EAGAIN && fx_now_ms() < end);
	if (ret == 1)
		fail(r, "a message nobody sent was waiting: tag 0x%llx, %zu B",
		     (unsigned long long) e.tag, e.len);
	else if (ret != -FI_EAVAIL || fi_cq_readerr(r->b.cq, &ee, 0) != 1 ||
		 ee.op_context != &probe || ee.err != FI_ENOMSG)
		fail(r, "the final peek got no FI_ENOMSG (%zd, err %d)", ret,
		     ee.err);
	if (pump(r))
		fail(r, "completions after the end");
}

static void summary(struct run *r, int rounds_done)
{
	printf("oom_workload: %d rounds: %zu messages (%lu expected, %lu "
	       "unexpected, %lu peek+claim; %lu fi_tsend, %lu fi_tsenddata, "
	       "%lu fi_tinjectdata, %lu delivery-complete; %lu rendezvous), "
	       "%zu writes, %zu atomics\n", rounds_done, r->nmsgs,
	       r->count_mode[M_EXPECTED], r->count_mode[M_UNEXPECTED],
	       r->count_mode[M_PEEK], r->count_how[H_TSEND],
	       r->count_how[H_TSENDDATA], r->count_how[H_INJECTDATA],
	       r->count_how[H_SENDMSG_DC], r->rndv, r->nwrites, r->natoms);
	printf("oom_workload: completions %lu ok, %lu error (%lu peek "
	       "misses), %lu spurious\n", r->ok, r->err_entries, r->enomsg,
	       r->spurious);
}

/* failmalloc's entry points, when it is preloaded. */
struct failmalloc {
	int (*arm)(double rate);
	void (*disarm)(void);
	void (*report)(FILE *out);
};

static void failmalloc_find(struct failmalloc *fm)
{
	fm->arm = (int (*)(double)) dlsym(RTLD_DEFAULT, "failmalloc_arm");
	fm->disarm = (void (*)(void)) dlsym(RTLD_DEFAULT, "failmalloc_disarm");
	fm->report = (void (*)(FILE *)) dlsym(RTLD_DEFAULT,
					      "failmalloc_report");
}

/* The checks once the rounds are over (all of them, or up to a stuck one). */
static void finish(struct run *r, bool all_rounds)
{
	uint64_t counter;

	if (!all_rounds)
		return;		/* the stuck round was reported */
	check_leftovers(r);
	memcpy(&counter, r->region + COUNTER_OFF, sizeof(counter));
	if (counter != r->counter_expect)
		fail(r, "atomic counter %llu, want %llu",
		     (unsigned long long) counter,
		     (unsigned long long) r->counter_expect);
}

int main(int argc, char **argv)
{
	const char *rate_env = getenv("FAILMALLOC_RATE");
	const char *seed_env = getenv("FAILMALLOC_SEED");
	int rounds = argc > 1 ? atoi(argv[1]) : ROUNDS_DEFAULT;
	int watchdog = argc > 2 ? atoi(argv[2]) : WATCHDOG_S;
	double rate = rate_env ? atof(rate_env) : 0;
	struct failmalloc fm;
	struct run r = { .seed = seed_env ? strtoull(seed_env, NULL, 0) : 1 };
	int ret, done;

	if (rounds < 1 || watchdog < 1) {
		fprintf(stderr, "usage: %s [ROUNDS [WATCHDOG_S]]\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_watchdog);
	alarm((unsigned) watchdog);
	failmalloc_find(&fm);
	if (!fm.arm && rate > 0) {
		fprintf(stderr, "oom_workload: FAILMALLOC_RATE=%g but "
			"failmalloc is not preloaded\n", rate);
		return 2;
	}
	if ((ret = run_open(&r, rounds))) {
		fprintf(stderr, "oom_workload: set-up failed: %s\n",
			fi_strerror(-ret));
		return 2;
	}
	printf("oom_workload: rate %g seed %llu rounds %d\n", rate,
	       (unsigned long long) r.seed, rounds);
	if (fm.arm && fm.arm(rate)) {
		fprintf(stderr, "oom_workload: failmalloc cannot find the "
			"provider's code\n");
		return 2;
	}
	for (done = 0; done < rounds; done++) {
		current_round = done;
		if (!run_round(&r))
			break;
	}
	if (fm.disarm)
		fm.disarm();	/* the checks and the teardown run unharmed */
	finish(&r, done == rounds);
	summary(&r, done);
	if (fm.report)
		fm.report(stdout);
	printf("oom_workload: %s (%lu failures%s)\n", r.failures ? "FAIL" :
	       "PASS", r.failures, r.failures > FAILS_SHOWN ?
	       ", the first ones shown" : "");
	run_close(&r);
	return r.failures ? 1 : 0;
}
