/*
 * usb4_xrails: a stream of large tagged messages from a client in one host
 * to a server in another, osu_bw-style (a window of messages in flight),
 * every byte checked, the rate printed per interval: what
 * tests/multihost/test_rails.py measures over one and two rails, and while
 * a rail is taken down and brought back.
 *
 *   usb4_xrails server|client --dir D [--bytes N] [--msg M] [--window W]
 *               [--interval SEC] [--timeout SEC]
 *
 * Both publish their endpoint address in D/<role>.addr and read the other's.
 * The client sends N bytes (1 GiB) as messages of M bytes (4 MiB), W (8) in
 * flight; message i holds 64-bit words (i << 32 | w) * K (K odd), so any
 * byte in the wrong place shows.  The server keeps W receives posted,
 * checks each message as it completes, and answers the last one with an
 * 8-byte "done" so that the client closes only once all arrived.
 *
 * Output (stdout), t in seconds since the first message:
 *   interval t=<end> bytes=<n> rate=<MB/s>     (server, every --interval)
 *   <role>: OK|FAIL bytes <n> messages <m> bad <words> errors <cqerrs>
 *           elapsed <s> rate <MB/s>
 * Every error completion is printed as "cqerr ..." and fails the run.
 * Exit: 0 OK; 1 a check failed; 2 usage or setup; 124 the watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rdma/fi_cm.h>
#include <rdma/fi_tagged.h>

#include "xhost_common.h"

#define ADDR_MAX	64
#define WINDOW_MAX	64
#define DATA_TAG	0x5a
#define DONE_TAG	0xd0
#define WORD_K		0x9e3779b97f4a7c15ull

struct args {
	bool server;
	const char *dir;
	uint64_t bytes;
	size_t msg;
	int window;
	double interval;
	unsigned timeout;
};

struct xr {
	struct args a;
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *ep;
	fi_addr_t peer;
	char *buf[WINDOW_MAX];
	uint64_t msg_of[WINDOW_MAX];	/* the message a buffer holds */
	uint64_t bad, errors;
};

static uint64_t word(uint64_t msg, uint64_t w)
{
	return ((msg << 32) | w) * WORD_K;
}

static void fill(char *buf, size_t len, uint64_t msg)
{
	uint64_t *p = (uint64_t *) buf;

	for (size_t w = 0; w < len / 8; w++)
		p[w] = word(msg, w);
}

static uint64_t check(const char *buf, size_t len, uint64_t msg)
{
	const uint64_t *p = (const uint64_t *) buf;
	uint64_t bad = 0;

	for (size_t w = 0; w < len / 8; w++)
		bad += p[w] != word(msg, w);
	return bad;
}

/* ---- setup ---- */

static void open_all(struct xr *x)
{
	xhost_domain_open(FI_TAGGED | FI_MSG, FI_THREAD_UNSPEC, &x->info,
			  &x->fabric, &x->domain);
	xhost_av_open(x->domain, &x->av);
	xhost_ep_open(x->domain, x->info, x->av, &x->cq, &x->ep);
	CHECK(fi_enable(x->ep));
	for (int i = 0; i < x->a.window; i++)
		if (!(x->buf[i] = aligned_alloc(4096, x->a.msg)))
			die(2, "out of memory for %zu B buffers", x->a.msg);
}

static void close_all(struct xr *x)
{
	fi_close(&x->ep->fid);
	fi_close(&x->cq->fid);
	fi_close(&x->av->fid);
	fi_close(&x->domain->fid);
	fi_close(&x->fabric->fid);
	fi_freeinfo(x->info);
	for (int i = 0; i < x->a.window; i++)
		free(x->buf[i]);
}

/* Publish D/<me>.addr, read D/<them>.addr, put the peer in the AV. */
static void exchange(struct xr *x)
{
	char me[ADDR_MAX], them[ADDR_MAX], path[4096], tmp[4200];
	size_t len = sizeof(me);
	FILE *f;

	CHECK(fi_getname(&x->ep->fid, me, &len));
	snprintf(path, sizeof(path), "%s/%s.addr", x->a.dir,
		 x->a.server ? "server" : "client");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(f = fopen(tmp, "w")) || fwrite(me, len, 1, f) != 1 || fclose(f) ||
	    rename(tmp, path))
		die(2, "cannot write %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s.addr", x->a.dir,
		 x->a.server ? "client" : "server");
	while (!(f = fopen(path, "r")))
		usleep(10000);
	if (fread(them, len, 1, f) != 1)
		die(2, "short %s", path);
	fclose(f);
	if (fi_av_insert(x->av, them, 1, &x->peer, 0, NULL) != 1)
		die(2, "fi_av_insert of the peer's address failed");
}

/* ---- completions ---- */

/* The next completion's context (blocking with a short nap), or NULL after
 * an error completion (printed, counted). */
static void *next_done(struct xr *x, double t0)
{
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	ssize_t r;

	for (;;) {
		r = fi_cq_read(x->cq, &e, 1);
		if (r == 1)
			return e.op_context;
		if (r != -FI_EAGAIN && r != -FI_EAVAIL)
			die(2, "fi_cq_read = %zd (%s)", r, fi_strerror((int) -r));
		if (r == -FI_EAGAIN)
			continue;
		memset(&err, 0, sizeof(err));
		if (fi_cq_readerr(x->cq, &err, 0) != 1)
			die(2, "fi_cq_readerr failed");
		printf("cqerr t=%.3f err=%d (%s) prov_errno=%d len=%zu\n",
		       now_s() - t0, err.err, fi_strerror(err.err),
		       err.prov_errno, err.len);
		fflush(stdout);
		x->errors++;
		return NULL;
	}
}

static void post_recv(struct xr *x, int slot, uint64_t tag)
{
	ssize_t r;

	while ((r = fi_trecv(x->ep, x->buf[slot], x->a.msg, NULL, x->peer, tag,
			     0, &x->msg_of[slot])) == -FI_EAGAIN)
		fi_cq_read(x->cq, NULL, 0);
	CHECK(r);
}

static void post_send(struct xr *x, int slot, size_t len, uint64_t tag)
{
	ssize_t r;

	while ((r = fi_tsend(x->ep, x->buf[slot], len, NULL, x->peer, tag,
			     &x->msg_of[slot])) == -FI_EAGAIN)
		fi_cq_read(x->cq, NULL, 0);
	CHECK(r);
}

static int slot_of(struct xr *x, void *ctx)
{
	return (int) ((uint64_t *) ctx - x->msg_of);
}

static void summary(struct xr *x, uint64_t bytes, uint64_t msgs, double t0)
{
	double el = now_s() - t0;
	bool ok = !x->bad && !x->errors && bytes == x->a.bytes;

	printf("%s: %s bytes %" PRIu64 " messages %" PRIu64 " bad %" PRIu64
	       " errors %" PRIu64 " elapsed %.3f s rate %.1f MB/s\n",
	       x->a.server ? "server" : "client", ok ? "OK" : "FAIL", bytes,
	       msgs, x->bad, x->errors, el, bytes / el / 1e6);
	fflush(stdout);
}

/* ---- the two roles ---- */

static void run_server(struct xr *x)
{
	uint64_t total = x->a.bytes / x->a.msg, next = 0, got = 0, bytes = 0;
	uint64_t last_bytes = 0;
	double t0 = 0, last = 0;

	/* Receives match in the order posted: a buffer's message is known. */
	for (int i = 0; i < x->a.window && next < total; i++, next++) {
		x->msg_of[i] = next;
		post_recv(x, i, DATA_TAG);
	}
	while (got < total && !x->errors) {
		void *ctx = next_done(x, t0);
		int slot;

		if (!ctx)
			break;
		slot = slot_of(x, ctx);
		if (!got)
			t0 = last = now_s();
		x->bad += check(x->buf[slot], x->a.msg, x->msg_of[slot]);
		got++;
		bytes += x->a.msg;
		if (now_s() - last >= x->a.interval) {
			double t = now_s();

			printf("interval t=%.3f bytes=%" PRIu64 " rate=%.1f\n",
			       t - t0, bytes, (bytes - last_bytes) / (t - last) / 1e6);
			fflush(stdout);
			last = t;
			last_bytes = bytes;
		}
		if (next < total) {
			x->msg_of[slot] = next++;
			post_recv(x, slot, DATA_TAG);
		}
	}
	summary(x, bytes, got, t0);
	post_send(x, 0, 8, DONE_TAG);
	next_done(x, t0);
}

static void run_client(struct xr *x)
{
	uint64_t total = x->a.bytes / x->a.msg, next = 0, done = 0;
	double t0 = now_s();

	for (int i = 0; i < x->a.window && next < total; i++, next++) {
		x->msg_of[i] = next;
		fill(x->buf[i], x->a.msg, next);
		post_send(x, i, x->a.msg, DATA_TAG);
	}
	while (done < total) {
		void *ctx = next_done(x, t0);
		int slot;

		if (!ctx)
			break;
		slot = slot_of(x, ctx);
		done++;
		if (next < total) {
			x->msg_of[slot] = next;
			fill(x->buf[slot], x->a.msg, next);
			post_send(x, slot, x->a.msg, DATA_TAG);
			next++;
		}
	}
	if (!x->errors) {	/* the server's "done": everything arrived */
		post_recv(x, 0, DONE_TAG);
		next_done(x, t0);
	}
	summary(x, done * x->a.msg, done, t0);
}

static void parse(int argc, char **argv, struct args *a)
{
	*a = (struct args) { .bytes = 1ull << 30, .msg = 4u << 20, .window = 8,
			     .interval = 0.25, .timeout = 120 };
	if (argc < 2 || (strcmp(argv[1], "server") && strcmp(argv[1], "client")))
		die(2, "usage: usb4_xrails server|client --dir D [--bytes N] "
		    "[--msg M] [--window W] [--interval SEC] [--timeout SEC]");
	a->server = !strcmp(argv[1], "server");
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			a->dir = argv[i + 1];
		else if (!strcmp(argv[i], "--bytes"))
			a->bytes = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--msg"))
			a->msg = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--window"))
			a->window = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--interval"))
			a->interval = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--timeout"))
			a->timeout = (unsigned) atoi(argv[i + 1]);
		else
			die(2, "unknown option %s", argv[i]);
	}
	if (!a->dir || a->msg < 8 || a->msg % 8 || a->bytes % a->msg ||
	    a->window < 1 || a->window > WINDOW_MAX)
		die(2, "bad arguments");
}

int main(int argc, char **argv)
{
	struct xr x = { 0 };

	xhost_prog = "usb4_xrails";
	parse(argc, argv, &x.a);
	xhost_role = x.a.server ? "server" : "client";
	xhost_watchdog(x.a.timeout);
	open_all(&x);
	exchange(&x);
	if (x.a.server)
		run_server(&x);
	else
		run_client(&x);
	close_all(&x);
	return x.bad || x.errors ? 1 : 0;
}
