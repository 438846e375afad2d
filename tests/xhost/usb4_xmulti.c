/*
 * usb4_xmulti: cross-host workloads for the usb4 provider with several
 * endpoints, completion queues or threads in one process.  Like usb4_xpeer,
 * two processes, one per host, meet through files in a shared folder;
 * tests/multihost/test_xhost_multi.py drives them and judges the figures
 * they print (exit 0 means the workload ran to its end, not that the
 * figures are good).
 *
 *   usb4_xmulti server|client cqpoll    --dir D [--calls N]
 *   usb4_xmulti server|client pingpong2 --dir D [--iters N]
 *   usb4_xmulti server|client linger    --dir D
 *   usb4_xmulti server|client peers     --dir D [--peers N]
 *   common: [--timeout SEC]
 *
 * cqpoll     One 8-byte exchange with the server, then the client calls
 *            fi_cq_read on its empty CQ N times (default 20000; at most
 *            3 s) and prints the calling thread's voluntary and
 *            involuntary context switches (getrusage RUSAGE_THREAD) and
 *            the longest single call.
 * pingpong2  Each side has two endpoints with a CQ each, both of which have
 *            exchanged a message with the other host, and polls both CQs in
 *            one progress loop (as Open MPI polls mtl ofi's and btl ofi's).
 *            An 8-byte ping-pong runs on the second pair; the client prints
 *            the median, 10th and 90th percentile round trip of N (default
 *            1000, after 100 unmeasured ones; at most 20 s).
 * linger     The client's FI_THREAD_SAFE domain holds E1 and E2 with a CQ
 *            each.  E1 exchanges a message with the server; the client
 *            creates D/client.ready; the test stops the server (SIGSTOP)
 *            and creates D/server.stopped; E1 sends 16 x 4 KiB that stay
 *            unacknowledged.  Thread T2 calls fi_cq_read on E2's CQ every
 *            0.1 ms while the main thread closes E1; the client prints how
 *            long fi_close(E1) took and T2's longest fi_cq_read.
 * peers      The client opens N endpoints (default 32), each with its CQ;
 *            the server one.  Each prints its VmRSS (resident) and VmData
 *            (private virtual) at three points: after setup (endpoints
 *            open, peers in the AV, buffers touched), idle (one 8-byte
 *            message from each client endpoint, one reply to each, 0.2 s
 *            of progress), and after 1 MiB from each client endpoint to
 *            the server (checked byte for byte).
 *
 * Exit: 0 ran to the end; 1 a check failed; 2 usage or setup; 124 the
 * watchdog fired.  Provider: FI_PROVIDER_PATH, FI_USB4_IFACE as usual.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_tagged.h>

#include "xhost_common.h"

#define MAX_NODES	64	/* endpoints per process */
#define ADDR_MAX	64	/* bytes of one endpoint name (usb4: 56) */
#define WAIT_S		20.0	/* longest wait for one completion or file */

#define TAG_HELLO	0x10
#define TAG_REPLY	0x11
#define TAG_PING	0x20
#define TAG_PONG	0x21
#define TAG_DATA	0x30

#define CQPOLL_CAP_S	3.0	/* cqpoll: longest measuring time */
#define PP_WARMUP	100	/* pingpong2: unmeasured round trips */
#define PP_CAP_S	20.0	/* pingpong2: longest measuring time */
#define LINGER_SENDS	16	/* linger: sends left unacknowledged */
#define LINGER_LEN	4096	/* linger: bytes each (eager over udp) */
#define PEER_MSG	((size_t) 1 << 20)	/* peers: bytes per endpoint */
#define SETTLE_S	0.2	/* peers: progress before measuring */

/* ---- small helpers -------------------------------------------------------- */

static void nap_us(long us)
{
	struct timespec t = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&t, NULL);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* VmRSS (or another field of /proc/self/status) in KiB. */
static long status_kib(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		die(2, "cannot open /proc/self/status");
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':') {
			kib = atol(line + n + 1);
			break;
		}
	fclose(f);
	return kib;
}

/* ---- files in the shared folder ----------------------------------------- */

static const char *run_dir;

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", run_dir, name);
}

static bool file_exists(const char *name)
{
	char path[4096];

	path_of(path, sizeof(path), name);
	return access(path, F_OK) == 0;
}

static void file_put(const char *name, const void *data, size_t len)
{
	char path[4096], tmp[4200];
	FILE *f;

	path_of(path, sizeof(path), name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(f = fopen(tmp, "w")) || fwrite(data, 1, len, f) != len ||
	    fclose(f) || rename(tmp, path))
		die(2, "cannot write %s: %s", path, strerror(errno));
}

static void file_get(const char *name, void *data, size_t len)
{
	char path[4096];
	FILE *f;

	path_of(path, sizeof(path), name);
	while (!(f = fopen(path, "r")))
		nap_us(10000);
	if (fread(data, 1, len, f) != len)
		die(2, "short %s", path);
	fclose(f);
}

/* ---- the fabric ---------------------------------------------------------- */

struct node {			/* one endpoint and its CQ */
	struct fid_ep *ep;
	struct fid_cq *cq;
	fi_addr_t peer;		/* the other side's endpoint it talks to */
};

struct fab {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct node node[MAX_NODES];
	int nnodes;
};

struct addr_file {		/* D/<role>.addrs */
	int64_t pid;
	uint32_t count;
	char addr[MAX_NODES][ADDR_MAX];
};

static void fab_open(struct fab *f)
{
	xhost_domain_open(FI_TAGGED | FI_DIRECTED_RECV, FI_THREAD_SAFE,
			  &f->info, &f->fabric, &f->domain);
	xhost_av_open(f->domain, &f->av);
}

static void node_open(struct fab *f)
{
	struct node *n;

	if (f->nnodes == MAX_NODES)
		die(2, "at most %d endpoints", MAX_NODES);
	n = &f->node[f->nnodes++];
	xhost_ep_open(f->domain, f->info, f->av, &n->cq, &n->ep);
	CHECK(fi_enable(n->ep));
}

static void node_close(struct node *n)
{
	if (n->ep)
		CHECK(fi_close(&n->ep->fid));
	if (n->cq)
		CHECK(fi_close(&n->cq->fid));
	n->ep = NULL;
	n->cq = NULL;
}

static void fab_close(struct fab *f)
{
	for (int i = 0; i < f->nnodes; i++)
		node_close(&f->node[i]);
	CHECK(fi_close(&f->av->fid));
	CHECK(fi_close(&f->domain->fid));
	CHECK(fi_close(&f->fabric->fid));
	fi_freeinfo(f->info);
}

/*
 * Publishes our endpoints' names in D/<me>.addrs, reads the other side's
 * and puts them in the AV: them[i] is the other side's endpoint i.
 */
static void exchange(struct fab *f, bool server, fi_addr_t *them, int *nthem,
		     int64_t *their_pid)
{
	static struct addr_file mine, theirs;

	memset(&mine, 0, sizeof(mine));
	mine.pid = getpid();
	mine.count = (uint32_t) f->nnodes;
	for (int i = 0; i < f->nnodes; i++) {
		size_t len = ADDR_MAX;
		CHECK(fi_getname(&f->node[i].ep->fid, mine.addr[i], &len));
	}
	file_put(server ? "server.addrs" : "client.addrs", &mine, sizeof(mine));
	file_get(server ? "client.addrs" : "server.addrs", &theirs, sizeof(theirs));
	if (!theirs.count || theirs.count > MAX_NODES)
		die(2, "the other side publishes %u endpoints", theirs.count);
	for (uint32_t i = 0; i < theirs.count; i++)
		if (fi_av_insert(f->av, theirs.addr[i], 1, &them[i], 0, NULL) != 1)
			die(2, "fi_av_insert of the other side's endpoint %u failed", i);
	*nthem = (int) theirs.count;
	if (their_pid)
		*their_pid = theirs.pid;
}

/* ---- completions ---------------------------------------------------------- */

/* 1: a completion in *e; 0: none yet.  Errors are fatal. */
static int poll_cq(struct fid_cq *cq, struct fi_cq_tagged_entry *e)
{
	struct fi_cq_err_entry err = { 0 };
	ssize_t r = fi_cq_read(cq, e, 1);

	if (r == 1)
		return 1;
	if (r == -FI_EAGAIN)
		return 0;
	if (r == -FI_EAVAIL && fi_cq_readerr(cq, &err, 0) == 1)
		die(1, "operation failed: %s (%d)", fi_strerror(err.err), err.err);
	die(2, "fi_cq_read = %zd (%s)", r, fi_strerror((int) -r));
	return -1;
}

/* Polls every CQ of f until want completions came (any CQ) or WAIT_S. */
static void wait_completions(struct fab *f, int want, const char *what)
{
	struct fi_cq_tagged_entry e;
	double t0 = now_s();
	long spins = 0;

	while (want > 0) {
		int got = 0;
		for (int i = 0; i < f->nnodes; i++)
			got += poll_cq(f->node[i].cq, &e);
		want -= got;
		if (got)
			continue;
		if (now_s() - t0 > WAIT_S)
			die(1, "%s: %d completions missing after %.0f s", what,
			    want, WAIT_S);
		if (++spins > 100000)	/* long waits: stop hogging a core */
			nap_us(100);
	}
}

/* Progresses every CQ (no completion expected) until D/name exists or,
 * name NULL, secs have passed; naps 0.1 ms between rounds. */
static void progress_until(struct fab *f, const char *name, double secs)
{
	struct fi_cq_tagged_entry e;
	double t0 = now_s(), checked = 0;

	for (;;) {
		double t = now_s();
		for (int i = 0; i < f->nnodes; i++)
			if (f->node[i].cq && poll_cq(f->node[i].cq, &e))
				die(1, "unexpected completion on endpoint %d: "
				    "flags %#" PRIx64 " tag %#" PRIx64 " len %zu",
				    i, e.flags, e.tag, e.len);
		if (name && t - checked > 0.01) {
			checked = t;
			if (file_exists(name))
				return;
		}
		if (t - t0 > secs) {
			if (name)
				die(1, "no %s after %.0f s", name, secs);
			return;
		}
		nap_us(100);
	}
}

/* One 8-byte hello from the client's node n to the server's, and back. */
static void hello(struct fab *f, int n, bool server)
{
	static uint64_t out = 0x68656c6c6f, in[MAX_NODES];
	struct node *nd = &f->node[n];

	CHECK(fi_trecv(nd->ep, &in[n], sizeof(in[n]), NULL, nd->peer,
		       server ? TAG_HELLO : TAG_REPLY, 0, &in[n]));
	if (server)
		wait_completions(f, 1, "hello");
	CHECK(fi_tsend(nd->ep, &out, sizeof(out), NULL, nd->peer,
		       server ? TAG_REPLY : TAG_HELLO, &out));
	wait_completions(f, server ? 1 : 2, "hello");
}

/* ---- cqpoll: an empty fi_cq_read must not block ---------------------------- */

static int client_cqpoll(struct fab *f, long calls)
{
	struct fi_cq_tagged_entry e;
	struct rusage r0, r1;
	double t0, longest = 0, t;
	long made = 0, slow = 0;

	hello(f, 0, false);
	getrusage(RUSAGE_THREAD, &r0);
	t0 = now_s();
	for (; made < calls && (t = now_s()) - t0 < CQPOLL_CAP_S; made++) {
		if (fi_cq_read(f->node[0].cq, &e, 1) != -FI_EAGAIN)
			die(1, "the empty CQ returned something");
		double d = now_s() - t;
		if (d > longest)
			longest = d;
		slow += d > 100e-6;
	}
	t = now_s() - t0;
	getrusage(RUSAGE_THREAD, &r1);
	printf("cqpoll: %ld empty fi_cq_read calls in %.3f s after one exchange "
	       "with the other host: voluntary context switches %ld, "
	       "involuntary %ld, longest call %.1f us, calls over 100 us %ld\n",
	       made, t, r1.ru_nvcsw - r0.ru_nvcsw, r1.ru_nivcsw - r0.ru_nivcsw,
	       longest * 1e6, slow);
	file_put("client.done", "done\n", 5);
	return 0;
}

static int server_cqpoll(struct fab *f)
{
	hello(f, 0, true);
	progress_until(f, "client.done", WAIT_S + CQPOLL_CAP_S);
	return 0;
}

/* ---- pingpong2: a ping-pong on one of two CQs polled together ------------- */

/* One progress loop round over both CQs; node 1's completions count. */
static int pp_round(struct fab *f)
{
	struct fi_cq_tagged_entry e;
	int got = poll_cq(f->node[1].cq, &e);

	if (poll_cq(f->node[0].cq, &e))
		die(1, "a completion on the idle endpoint");
	return got;
}

static void pp_wait(struct fab *f, int want)
{
	double t0 = now_s();

	while (want > 0) {
		want -= pp_round(f);
		if (now_s() - t0 > WAIT_S)
			die(1, "ping-pong: no completion after %.0f s", WAIT_S);
	}
}

static void pp_report(double *rtt, long n, double secs)
{
	const char *pauses = getenv("USB4_XMULTI_PAUSES");

	qsort(rtt, (size_t) n, sizeof(*rtt), cmp_double);
	printf("pingpong2: %ld round trips of 8 B on one of two CQs polled "
	       "together in %.3f s: median %.1f us, p10 %.1f us, p90 %.1f us "
	       "(pauses %s)\n", n, secs, rtt[n / 2] * 1e6,
	       rtt[n / 10] * 1e6, rtt[n * 9 / 10] * 1e6,
	       pauses ? pauses : "default");
}

static int client_pingpong2(struct fab *f, long iters)
{
	struct node *b = &f->node[1];
	uint64_t out = 0, in = 0;
	double *rtt = calloc((size_t) iters, sizeof(*rtt)), t0, start;
	long done = 0;

	if (!rtt)
		die(2, "out of memory");
	hello(f, 0, false);
	hello(f, 1, false);
	start = now_s();
	for (long i = 0; i < PP_WARMUP + iters; i++) {
		if (i == PP_WARMUP)
			start = now_s();
		if (i >= PP_WARMUP && now_s() - start > PP_CAP_S)
			break;
		out = (uint64_t) i;
		CHECK(fi_trecv(b->ep, &in, sizeof(in), NULL, b->peer, TAG_PONG, 0, &in));
		t0 = now_s();
		CHECK(fi_tsend(b->ep, &out, sizeof(out), NULL, b->peer, TAG_PING, &out));
		pp_wait(f, 2);
		if (in != out)
			die(1, "pong %" PRIu64 " for ping %" PRIu64, in, out);
		if (i >= PP_WARMUP)
			rtt[done++] = now_s() - t0;
	}
	/* The server stops after this many: tell it with the last ping. */
	out = UINT64_MAX;
	CHECK(fi_tsend(b->ep, &out, sizeof(out), NULL, b->peer, TAG_PING, &out));
	pp_wait(f, 1);
	pp_report(rtt, done, now_s() - start);
	free(rtt);
	file_put("client.done", "done\n", 5);
	return 0;
}

static int server_pingpong2(struct fab *f)
{
	struct node *b = &f->node[1];
	uint64_t in = 0, out;

	hello(f, 0, true);
	hello(f, 1, true);
	for (;;) {
		CHECK(fi_trecv(b->ep, &in, sizeof(in), NULL, b->peer, TAG_PING, 0, &in));
		pp_wait(f, 1);
		if (in == UINT64_MAX)
			break;
		out = in;
		CHECK(fi_tsend(b->ep, &out, sizeof(out), NULL, b->peer, TAG_PONG, &out));
		pp_wait(f, 1);
	}
	progress_until(f, "client.done", WAIT_S);
	return 0;
}

/* ---- linger: fi_close of an endpoint and the domain lock ------------------ */

struct poller {			/* thread T2 */
	struct fid_cq *cq;
	atomic_bool stop, closing;
	long calls, calls_closing;
	double longest, longest_before;	/* longest call; before the close */
};

static void *poller_run(void *arg)
{
	struct poller *p = arg;
	struct fi_cq_tagged_entry e;

	while (!atomic_load(&p->stop)) {
		bool closing = atomic_load(&p->closing);
		double t = now_s();
		if (poll_cq(p->cq, &e))
			die(1, "a completion on E2");
		t = now_s() - t;
		p->calls++;
		p->calls_closing += closing;
		if (t > p->longest)
			p->longest = t;
		if (!closing && t > p->longest_before)
			p->longest_before = t;
		nap_us(100);
	}
	return NULL;
}

/* Sends that stay unacknowledged: the server is stopped. */
static int linger_sends(struct fab *f, char *buf)
{
	struct node *e1 = &f->node[0];
	struct fi_cq_tagged_entry e;
	double t0 = now_s();
	int done = 0;

	for (int i = 0; i < LINGER_SENDS; i++)
		CHECK(fi_tsend(e1->ep, buf + (size_t) i * LINGER_LEN, LINGER_LEN,
			       NULL, e1->peer, TAG_DATA, buf));
	while (done < LINGER_SENDS && now_s() - t0 < 1.0) {
		done += poll_cq(e1->cq, &e);
		nap_us(100);
	}
	return done;
}

static int client_linger(struct fab *f)
{
	static char buf[LINGER_SENDS * LINGER_LEN];
	struct poller p = { .cq = f->node[1].cq };
	char pid[32];
	pthread_t t2;
	double t0, took;
	int done;

	hello(f, 0, false);
	snprintf(pid, sizeof(pid), "%d\n", (int) getpid());
	file_put("client.ready", pid, strlen(pid));
	printf("linger: client ready\n");
	fflush(stdout);
	progress_until(f, "server.stopped", WAIT_S);
	memset(buf, 0x6c, sizeof(buf));
	done = linger_sends(f, buf);
	if (pthread_create(&t2, NULL, poller_run, &p))
		die(2, "pthread_create failed");
	nap_us(50000);		/* T2's calls before the close: the baseline */
	atomic_store(&p.closing, true);
	t0 = now_s();
	node_close(&f->node[0]);	/* T1 */
	took = now_s() - t0;
	atomic_store(&p.closing, false);
	nap_us(100000);
	atomic_store(&p.stop, true);
	pthread_join(t2, NULL);
	printf("linger: %d sends of %d B to the stopped peer, %d completed; "
	       "fi_close(E1) took %.3f s; meanwhile T2 made %ld fi_cq_read calls "
	       "on E2's CQ (%ld in all), the longest took %.3f ms (%.3f ms "
	       "before the close)\n", LINGER_SENDS, LINGER_LEN, done, took,
	       p.calls_closing, p.calls, p.longest * 1e3, p.longest_before * 1e3);
	return 0;
}

static int server_linger(struct fab *f)
{
	hello(f, 0, true);
	printf("linger: server pid %d answered\n", (int) getpid());
	fflush(stdout);
	/* Stopped by the test from here on, then killed. */
	progress_until(f, "client.done", 600);
	return 0;
}

/* ---- peers: memory per remote peer ---------------------------------------- */

static uint8_t peer_byte(int sender, size_t i)
{
	return (uint8_t) ((i * 151 + (i >> 13)) ^ (uint8_t) (sender * 37 + 1));
}

static void *touched(size_t len)
{
	void *p = malloc(len);

	if (!p)
		die(2, "out of memory");
	memset(p, 0xee, len);
	return p;
}

/* Memory of the process at one point: resident and private virtual. */
struct mem {
	long rss, data;		/* VmRSS, VmData: KiB */
};

static struct mem mem_now(void)
{
	return (struct mem) { status_kib("VmRSS"), status_kib("VmData") };
}

static void mem_line(const char *who, int neps, int npeers, const struct mem m[3])
{
	printf("peers: %s %d endpoint(s), %d peer(s): VmRSS KiB setup %ld idle "
	       "%ld (+%ld) after %ld (+%ld); VmData KiB setup %ld idle %ld (+%ld) "
	       "after %ld (+%ld)\n", who, neps, npeers, m[0].rss, m[1].rss,
	       m[1].rss - m[0].rss, m[2].rss, m[2].rss - m[0].rss, m[0].data,
	       m[1].data, m[1].data - m[0].data, m[2].data, m[2].data - m[0].data);
}

/* Both sides at the end: neither closes while the other may need acks. */
static void peers_done(struct fab *f, bool server)
{
	file_put(server ? "server.done" : "client.done", "1\n", 2);
	progress_until(f, server ? "client.done" : "server.done", WAIT_S);
}

static int server_peers(struct fab *f, fi_addr_t *them, int npeers)
{
	struct node *n = &f->node[0];
	char *buf = touched((size_t) npeers * PEER_MSG);
	static uint64_t small[MAX_NODES], reply = 0x7265706c79;
	struct mem m[3];

	m[0] = mem_now();
	for (int i = 0; i < npeers; i++)
		CHECK(fi_trecv(n->ep, &small[i], sizeof(small[i]), NULL, them[i],
			       TAG_HELLO, 0, &small[i]));
	wait_completions(f, npeers, "small messages");
	for (int i = 0; i < npeers; i++)
		CHECK(fi_tsend(n->ep, &reply, sizeof(reply), NULL, them[i],
			       TAG_REPLY, &reply));
	wait_completions(f, npeers, "replies");
	progress_until(f, NULL, SETTLE_S);
	m[1] = mem_now();
	/* The client measured too; it sends once our receives are posted. */
	progress_until(f, "client.idle", WAIT_S);
	for (int i = 0; i < npeers; i++)
		CHECK(fi_trecv(n->ep, buf + (size_t) i * PEER_MSG, PEER_MSG, NULL,
			       them[i], TAG_DATA, 0, buf));
	file_put("server.idle", "1\n", 2);
	wait_completions(f, npeers, "1 MiB messages");
	for (int i = 0; i < npeers; i++)
		for (size_t j = 0; j < PEER_MSG; j++)
			if ((uint8_t) buf[(size_t) i * PEER_MSG + j] != peer_byte(i, j))
				die(1, "peer %d: byte %zu is wrong", i, j);
	progress_until(f, NULL, SETTLE_S);
	m[2] = mem_now();
	mem_line("server", f->nnodes, npeers, m);
	peers_done(f, true);
	free(buf);
	return 0;
}

static int client_peers(struct fab *f, fi_addr_t server)
{
	char *buf = touched((size_t) f->nnodes * PEER_MSG);
	static uint64_t hi = 0x68656c6c6f, in[MAX_NODES];
	struct mem m[3];

	for (int i = 0; i < f->nnodes; i++)
		for (size_t j = 0; j < PEER_MSG; j++)
			buf[(size_t) i * PEER_MSG + j] = (char) peer_byte(i, j);
	m[0] = mem_now();
	for (int i = 0; i < f->nnodes; i++) {
		struct node *n = &f->node[i];
		CHECK(fi_trecv(n->ep, &in[i], sizeof(in[i]), NULL, server,
			       TAG_REPLY, 0, &in[i]));
		CHECK(fi_tsend(n->ep, &hi, sizeof(hi), NULL, server, TAG_HELLO, &hi));
	}
	wait_completions(f, 2 * f->nnodes, "small messages");
	progress_until(f, NULL, SETTLE_S);
	m[1] = mem_now();
	file_put("client.idle", "1\n", 2);
	progress_until(f, "server.idle", WAIT_S);
	for (int i = 0; i < f->nnodes; i++)
		CHECK(fi_tsend(f->node[i].ep, buf + (size_t) i * PEER_MSG, PEER_MSG,
			       NULL, server, TAG_DATA, buf));
	wait_completions(f, f->nnodes, "1 MiB sends");
	progress_until(f, NULL, SETTLE_S);
	m[2] = mem_now();
	mem_line("client", f->nnodes, 1, m);
	peers_done(f, false);
	free(buf);
	return 0;
}

/* ---- main ------------------------------------------------------------------ */

enum workload { W_CQPOLL, W_PINGPONG2, W_LINGER, W_PEERS };

static const char *const workload_name[] = { "cqpoll", "pingpong2", "linger",
					      "peers" };

struct args {
	bool server;
	enum workload w;
	long count;		/* --calls, --iters or --peers */
	int timeout;
};

static void usage(void)
{
	die(2, "usage: usb4_xmulti server|client cqpoll|pingpong2|linger|peers "
	    "--dir D [--calls N] [--iters N] [--peers N] [--timeout SEC]");
}

static void parse(int argc, char **argv, struct args *a)
{
	static const long count_default[] = { 20000, 1000, 0, 32 };
	int w;

	if (argc < 3 || (strcmp(argv[1], "server") && strcmp(argv[1], "client")))
		usage();
	a->server = !strcmp(argv[1], "server");
	for (w = 0; w < 4 && strcmp(argv[2], workload_name[w]); w++)
		;
	if (w == 4 || (argc - 3) % 2)
		usage();
	a->w = (enum workload) w;
	a->count = count_default[w];
	a->timeout = 120;
	for (int i = 3; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			run_dir = argv[i + 1];
		else if (!strcmp(argv[i], "--calls") || !strcmp(argv[i], "--iters") ||
			 !strcmp(argv[i], "--peers"))
			a->count = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--timeout"))
			a->timeout = atoi(argv[i + 1]);
		else
			usage();
	}
	if (!run_dir || a->timeout < 1 || (a->w != W_LINGER && a->count < 1) ||
	    (a->w == W_PEERS && a->count > MAX_NODES))
		usage();
}

/* Endpoints per side: peers' client has N, pingpong2 and linger's client 2. */
static int nodes_for(const struct args *a)
{
	if (a->w == W_PEERS)
		return a->server ? 1 : (int) a->count;
	if (a->w == W_PINGPONG2)
		return 2;
	return a->w == W_LINGER && !a->server ? 2 : 1;
}

static int run(struct fab *f, const struct args *a, fi_addr_t *them, int nthem)
{
	for (int i = 0; i < f->nnodes; i++)
		f->node[i].peer = them[i < nthem ? i : 0];
	switch (a->w) {
	case W_CQPOLL:
		return a->server ? server_cqpoll(f) : client_cqpoll(f, a->count);
	case W_PINGPONG2:
		return a->server ? server_pingpong2(f) : client_pingpong2(f, a->count);
	case W_LINGER:
		return a->server ? server_linger(f) : client_linger(f);
	default:
		return a->server ? server_peers(f, them, nthem)
				 : client_peers(f, them[0]);
	}
}

int main(int argc, char **argv)
{
	static struct fab f;
	static fi_addr_t them[MAX_NODES];
	struct args a;
	int nthem, rc;

	parse(argc, argv, &a);
	xhost_prog = "xmulti";
	xhost_role = argv[1];
	xhost_watchdog((unsigned) a.timeout);
	setvbuf(stdout, NULL, _IOLBF, 0);

	fab_open(&f);
	for (int i = nodes_for(&a); i > 0; i--)
		node_open(&f);
	exchange(&f, a.server, them, &nthem, NULL);
	rc = run(&f, &a, them, nthem);
	fab_close(&f);
	if (a.w == W_LINGER && !a.server)
		file_put("client.done", "done\n", 5);
	return rc;
}
