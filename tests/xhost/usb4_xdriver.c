/*
 * usb4_xdriver: one usb4 endpoint that a test drives against a fake peer
 * (tests/fakepeer.py) speaking the udp link's protocol from a Python socket.
 * tests/test_fake_peer.py compiles and runs it.
 *
 *   usb4_xdriver [--op none|tsend|write|read] [--len N] [--recv TAG]...
 *                [--wait-ms MS] [--stop-after K] [--timeout SEC] [--mr LEN]
 *                [--recv-after-ms MS] [--insert-after-ms MS]
 *
 * 1. Opens an FI_EP_RDM endpoint (FI_TAGGED, FI_RMA) of the usb4 provider
 *    (FI_PROVIDER_PATH, FI_USB4_IFACE as usual: with FI_USB4_IFACE=lo the
 *    udp link binds 127.0.0.1) and prints "addr <hex>" (fi_getname).
 *    With --mr LEN (also FI_ATOMIC) it registers LEN bytes, byte i holding
 *    (7 * i + 3) & 0xff, for remote reads, writes and atomics and prints
 *    "mr addr=<hex> key=<hex> len=<n>" (FI_MR_VIRT_ADDR: addr is where
 *    peers address byte 0).
 * 2. Reads lines from stdin: "peer <hex>" inserts an address into the AV
 *    (fi_addr 0, 1, ... in order; printed as "inserted <i> fi_addr <a>" or
 *    "insert <i> failed <ret>"), "go" ends the list (so does EOF).  With
 *    --insert-after-ms the inserts happen that long after the operation,
 *    while it reads the CQ (a target that inserts its initiator late).
 * 3. Posts a tagged receive (4 KiB, tag exact) for every --recv (or only
 *    --recv-after-ms after the operation, while it reads the CQ), then the
 *    operation towards fi_addr 0: a tagged send of N bytes (tag 0x7; 64 KiB
 *    by default, rendezvous over udp), or an fi_write / fi_read of N bytes
 *    at remote address 0x10000 key 0x1234 (the fake peer accepts anything).
 * 4. Reads the CQ for --wait-ms (1000) after the post, printing every
 *    completion and error completion as it comes; stops early after
 *    --stop-after K of them.  Prints "end", then "mr bytes <hex>" (the
 *    registered region as it is now) with --mr, closes everything, exits 0.
 *
 * Output lines (t: seconds since the operation was posted, CLOCK_MONOTONIC):
 *   cqe t=<s> ctx=<name> flags=<hex> <names> len=<n> tag=<hex> data=<hex>
 *   cqerr t=<s> ctx=<name> err=<e> (<strerror>) prov_errno=<p> flags=<hex>
 *         <names> len=<n>
 * ctx: "op" for the operation, "recv<tag>" for a receive, "?" otherwise.
 *
 * Exit: 0 ran to the end (the test judges what it printed); 2 usage or
 * setup; 124 the watchdog (--timeout, 20 s) fired.
 */
#define _GNU_SOURCE
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

#define ADDR_MAX	64		/* bytes; usb4 addresses are 56 */
#define PEERS_MAX	8
#define RECVS_MAX	8
#define RECV_LEN	4096
#define SEND_TAG	0x7
#define RMA_ADDR	0x10000
#define RMA_KEY		0x1234
#define NAP_NS		200000		/* between empty CQ reads */

enum op { OP_NONE, OP_TSEND, OP_WRITE, OP_READ };

struct args {
	enum op op;
	size_t len;
	uint64_t recv_tag[RECVS_MAX];
	int nrecv;
	long wait_ms;
	int stop_after;		/* 0: never */
	unsigned timeout_s;
	size_t mr_len;		/* 0: no region */
	long recv_after_ms;	/* -1: receives before the operation */
	long insert_after_ms;	/* -1: peers inserted before it */
};

struct driver {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_cq *cq;
	struct fid_av *av;
	struct fid_ep *ep;
	fi_addr_t peer[PEERS_MAX];
	int npeers;
	unsigned char late_addr[PEERS_MAX][ADDR_MAX];	/* --insert-after-ms */
	int late_len[PEERS_MAX];
	char *buf;			/* the operation's buffer */
	unsigned char *mr_buf;		/* --mr: the registered region */
	struct fid_mr *mr;
	char recv_buf[RECVS_MAX][RECV_LEN];
	char ctx_op;			/* contexts: their addresses name them */
	char ctx_recv[RECVS_MAX];
	double t0;
};

/* ---- arguments ------------------------------------------------------------ */

static enum op parse_op(const char *s)
{
	static const char *const names[] = { "none", "tsend", "write", "read" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i]))
			return (enum op) i;
	die(2, "unknown --op %s", s);
	return OP_NONE;
}

static void parse_args(int argc, char **argv, struct args *a)
{
	*a = (struct args) { .op = OP_NONE, .len = 64 * 1024, .wait_ms = 1000,
			     .timeout_s = 20, .recv_after_ms = -1,
			     .insert_after_ms = -1 };
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!val)
			die(2, "%s needs a value", opt);
		i++;
		if (!strcmp(opt, "--op"))
			a->op = parse_op(val);
		else if (!strcmp(opt, "--len"))
			a->len = strtoull(val, NULL, 0);
		else if (!strcmp(opt, "--recv") && a->nrecv < RECVS_MAX)
			a->recv_tag[a->nrecv++] = strtoull(val, NULL, 0);
		else if (!strcmp(opt, "--wait-ms"))
			a->wait_ms = strtol(val, NULL, 0);
		else if (!strcmp(opt, "--stop-after"))
			a->stop_after = atoi(val);
		else if (!strcmp(opt, "--timeout"))
			a->timeout_s = (unsigned) atoi(val);
		else if (!strcmp(opt, "--recv-after-ms"))
			a->recv_after_ms = strtol(val, NULL, 0);
		else if (!strcmp(opt, "--insert-after-ms"))
			a->insert_after_ms = strtol(val, NULL, 0);
		else if (!strcmp(opt, "--mr"))
			a->mr_len = strtoull(val, NULL, 0);
		else
			die(2, "unknown option %s", opt);
	}
	if (a->len == 0)
		die(2, "--len must be at least 1");
}

/* ---- the endpoint --------------------------------------------------------- */

static void open_endpoint(struct driver *d, const struct args *a)
{
	xhost_domain_open(FI_TAGGED | FI_RMA | (a->mr_len ? FI_ATOMIC : 0),
			  FI_THREAD_UNSPEC, &d->info, &d->fabric, &d->domain);
	xhost_av_open(d->domain, &d->av);
	xhost_ep_open(d->domain, d->info, d->av, &d->cq, &d->ep);
	CHECK(fi_enable(d->ep));
}

/* --mr: the region peers may read, write and update. */
static void register_region(struct driver *d, const struct args *a)
{
	if (!a->mr_len)
		return;
	d->mr_buf = malloc(a->mr_len);
	if (!d->mr_buf)
		die(2, "out of memory");
	for (size_t i = 0; i < a->mr_len; i++)
		d->mr_buf[i] = (unsigned char) (7 * i + 3);
	CHECK(fi_mr_reg(d->domain, d->mr_buf, a->mr_len,
			FI_REMOTE_READ | FI_REMOTE_WRITE, 0, xhost_next_key(), 0,
			&d->mr, NULL));
	printf("mr addr=0x%" PRIx64 " key=0x%" PRIx64 " len=%zu\n",
	       (uint64_t) (uintptr_t) d->mr_buf, fi_mr_key(d->mr), a->mr_len);
}

static void print_region(struct driver *d, const struct args *a)
{
	if (!d->mr)
		return;
	printf("mr bytes ");
	for (size_t i = 0; i < a->mr_len; i++)
		printf("%02x", d->mr_buf[i]);
	printf("\n");
}

static void close_endpoint(struct driver *d)
{
	if (d->mr)
		CHECK(fi_close(&d->mr->fid));
	CHECK(fi_close(&d->ep->fid));
	CHECK(fi_close(&d->av->fid));
	CHECK(fi_close(&d->cq->fid));
	CHECK(fi_close(&d->domain->fid));
	CHECK(fi_close(&d->fabric->fid));
	fi_freeinfo(d->info);
}

static void print_addr(struct driver *d)
{
	unsigned char addr[ADDR_MAX];
	size_t len = sizeof(addr);

	CHECK(fi_getname(&d->ep->fid, addr, &len));
	printf("addr ");
	for (size_t i = 0; i < len; i++)
		printf("%02x", addr[i]);
	printf("\n");
}

static int unhex(const char *s, unsigned char *out, size_t max)
{
	size_t n = 0;
	unsigned byte;

	while (s[0] && s[1] && s[0] != '\n' && n < max) {
		if (sscanf(s, "%2x", &byte) != 1)
			return -1;
		out[n++] = (unsigned char) byte;
		s += 2;
	}
	return (int) n;
}

static void insert_peer(struct driver *d, int i, const unsigned char *addr)
{
	int ret = fi_av_insert(d->av, addr, 1, &d->peer[i], 0, NULL);

	if (ret == 1)
		printf("inserted %d fi_addr %" PRIu64 "\n", i,
		       (uint64_t) d->peer[i]);
	else
		printf("insert %d failed %d\n", i, ret);
}

/* "peer <hex>" lines until "go" or EOF. */
static void read_peers(struct driver *d, const struct args *a)
{
	char line[512];
	unsigned char addr[ADDR_MAX];

	while (fgets(line, sizeof(line), stdin)) {
		int len;

		if (!strncmp(line, "go", 2))
			break;
		if (strncmp(line, "peer ", 5) || d->npeers == PEERS_MAX ||
		    (len = unhex(line + 5, addr, sizeof(addr))) <= 0)
			die(2, "bad input line: %s", line);
		if (a->insert_after_ms >= 0) {
			memcpy(d->late_addr[d->npeers], addr, (size_t) len);
			d->late_len[d->npeers] = len;
		} else {
			insert_peer(d, d->npeers, addr);
		}
		d->npeers++;
	}
	printf("ready\n");
}

/* ---- the operation -------------------------------------------------------- */

static int report_one(struct driver *d);

static void post_recvs(struct driver *d, const struct args *a)
{
	for (int i = 0; i < a->nrecv; i++) {
		CHECK(fi_trecv(d->ep, d->recv_buf[i], RECV_LEN, NULL,
			       FI_ADDR_UNSPEC, a->recv_tag[i], 0,
			       &d->ctx_recv[i]));
		printf("recv posted tag 0x%" PRIx64 "\n", a->recv_tag[i]);
	}
}

static ssize_t post_op(struct driver *d, const struct args *a)
{
	fi_addr_t dest = d->npeers ? d->peer[0] : FI_ADDR_UNSPEC;

	switch (a->op) {
	case OP_TSEND:
		return fi_tsend(d->ep, d->buf, a->len, NULL, dest, SEND_TAG,
				&d->ctx_op);
	case OP_WRITE:
		return fi_write(d->ep, d->buf, a->len, NULL, dest, RMA_ADDR,
				RMA_KEY, &d->ctx_op);
	case OP_READ:
		return fi_read(d->ep, d->buf, a->len, NULL, dest, RMA_ADDR,
			       RMA_KEY, &d->ctx_op);
	default:
		return 0;
	}
}

static void post(struct driver *d, const struct args *a)
{
	static const char *const names[] = { "none", "tsend", "write", "read" };
	ssize_t ret;

	d->buf = malloc(a->len);
	if (!d->buf)
		die(2, "out of memory");
	memset(d->buf, 0xa5, a->len);
	if (a->recv_after_ms < 0)
		post_recvs(d, a);
	d->t0 = now_s();
	if (a->op != OP_NONE && !d->npeers)
		die(2, "--op %s needs a peer", names[a->op]);
	do {
		ret = post_op(d, a);
		if (ret == -FI_EAGAIN)
			report_one(d);	/* progress while the provider is busy */
	} while (ret == -FI_EAGAIN && now_s() - d->t0 < 5.0);
	if (ret)
		printf("post %s failed %zd (%s) t=%.6f\n", names[a->op], ret,
		       fi_strerror((int) -ret), now_s() - d->t0);
	else
		printf("posted %s len %zu t=%.6f\n", names[a->op], a->len,
		       now_s() - d->t0);
}

/* ---- completions ---------------------------------------------------------- */

static const char *ctx_name(struct driver *d, void *ctx, char *buf, size_t n)
{
	if (ctx == &d->ctx_op)
		return "op";
	for (int i = 0; i < RECVS_MAX; i++)
		if (ctx == &d->ctx_recv[i]) {
			snprintf(buf, n, "recv%d", i);
			return buf;
		}
	return "?";
}

static void flag_names(uint64_t flags, char *buf, size_t n)
{
	static const struct { uint64_t flag; const char *name; } known[] = {
		{ FI_SEND, "SEND" }, { FI_RECV, "RECV" }, { FI_TAGGED, "TAGGED" },
		{ FI_MSG, "MSG" }, { FI_RMA, "RMA" }, { FI_READ, "READ" },
		{ FI_WRITE, "WRITE" }, { FI_REMOTE_READ, "REMOTE_READ" },
		{ FI_REMOTE_WRITE, "REMOTE_WRITE" },
		{ FI_REMOTE_CQ_DATA, "REMOTE_CQ_DATA" },
	};
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if ((flags & known[i].flag) && used < n)
			used += snprintf(buf + used, n - used, "%s%s",
					 used ? "|" : "", known[i].name);
	if (!used)
		snprintf(buf, n, "-");
}

/* One completion or error completion printed: 1, or 0 when none waits. */
static int report_one(struct driver *d)
{
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	char names[128], cbuf[16];
	ssize_t r = fi_cq_read(d->cq, &e, 1);

	if (r == 1) {
		flag_names(e.flags, names, sizeof(names));
		printf("cqe t=%.6f ctx=%s flags=0x%" PRIx64 " %s len=%zu "
		       "tag=0x%" PRIx64 " data=0x%" PRIx64 "\n", now_s() - d->t0,
		       ctx_name(d, e.op_context, cbuf, sizeof(cbuf)),
		       (uint64_t) e.flags, names, e.len, (uint64_t) e.tag,
		       (uint64_t) e.data);
		return 1;
	}
	if (r == -FI_EAGAIN)
		return 0;
	if (r != -FI_EAVAIL)
		die(2, "fi_cq_read = %zd (%s)", r, fi_strerror((int) -r));
	memset(&err, 0, sizeof(err));
	r = fi_cq_readerr(d->cq, &err, 0);
	if (r != 1)
		die(2, "fi_cq_readerr = %zd (%s)", r, fi_strerror((int) -r));
	flag_names(err.flags, names, sizeof(names));
	printf("cqerr t=%.6f ctx=%s err=%d (%s) prov_errno=%d flags=0x%" PRIx64
	       " %s len=%zu\n", now_s() - d->t0,
	       ctx_name(d, err.op_context, cbuf, sizeof(cbuf)), err.err,
	       fi_strerror(err.err), err.prov_errno, (uint64_t) err.flags,
	       names, err.len);
	return 1;
}

static void report(struct driver *d, const struct args *a)
{
	const struct timespec nap = { .tv_nsec = NAP_NS };
	double end = d->t0 + a->wait_ms / 1000.0;
	bool recvs_late = a->recv_after_ms >= 0;
	bool inserts_late = a->insert_after_ms >= 0;
	int seen = 0;

	while (now_s() < end && (!a->stop_after || seen < a->stop_after)) {
		int n;

		if (inserts_late &&
		    now_s() - d->t0 >= a->insert_after_ms / 1000.0) {
			for (int i = 0; i < d->npeers; i++)
				insert_peer(d, i, d->late_addr[i]);
			inserts_late = false;
		}

		if (recvs_late && now_s() - d->t0 >= a->recv_after_ms / 1000.0) {
			post_recvs(d, a);
			recvs_late = false;
		}
		n = report_one(d);

		seen += n;
		if (!n)
			nanosleep(&nap, NULL);
	}
	printf("end t=%.6f completions %d\n", now_s() - d->t0, seen);
}

int main(int argc, char **argv)
{
	struct driver d = { .npeers = 0 };
	struct args a;

	xhost_prog = "xdriver";
	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_args(argc, argv, &a);
	xhost_watchdog(a.timeout_s);
	open_endpoint(&d, &a);
	print_addr(&d);
	register_region(&d, &a);
	read_peers(&d, &a);
	post(&d, &a);
	report(&d, &a);
	print_region(&d, &a);
	close_endpoint(&d);
	free(d.buf);
	free(d.mr_buf);
	printf("closed\n");
	return 0;
}
