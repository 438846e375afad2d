/*
 * usb4_ring_conform: one rank of a ring allreduce driven the way a
 * collective library's network plugin drives libfabric (aws-ofi-nccl's
 * SENDRECV protocol, oneCCL's ofi transport):
 *
 *  - an RDM endpoint with FI_TAGGED (no FI_DIRECTED_RECV), FI_THREAD_SAFE,
 *    FI_CONTEXT | FI_CONTEXT2, buffers registered with fi_mr_regattr
 *    (iface FI_HMEM_SYSTEM), the hints of aws-ofi-nccl's host-only set;
 *  - every step's segment cut into chunks, each its own tagged message
 *    (tag = iteration, step, chunk), up to --window sends and --window
 *    receives in flight per peer;
 *  - receives posted from FI_ADDR_UNSPEC, matched by tag alone;
 *  - --threads threads calling fi_cq_read on the one CQ at once, each
 *    handling what it reads (reducing a chunk) and posting what that
 *    makes ready;
 *  - the iterations pipelined: iteration i+1 sends while i still receives,
 *    so chunks arrive before their receive is posted (unexpected).
 *
 * Ring allreduce over float32: reduce-scatter then allgather, n-1 steps
 * each.  Step t of the reduce-scatter sends segment (r - t) mod n to the
 * right and adds the one from the left into segment (r - t - 1) mod n; the
 * allgather's step s sends (r + 1 - s) mod n and stores (r - s) mod n.  So
 * segment j ends as ((x_j + x_j+1) + x_j+2) + ... + x_j+n-1 (indices mod n),
 * summed in that order, on every rank: the driver checks it bit for bit.
 *
 *   usb4_ring_conform --rank R --nranks N --dir D --count F
 *                     [--chunk C] [--window W] [--threads T] [--iters I]
 *                     [--timeout S] [--late-recv-ms MS]
 *
 * Reads D/input.R (F float32, F a multiple of N), writes its endpoint name
 * to D/addr.R and reads the others' (the launcher provides the folder),
 * runs I allreduces (each on its own copy of the input; every result must
 * be the same), writes D/result.R and prints one line of figures.
 * --late-recv-ms: no receive is posted for MS after the start, so every
 * chunk sent meanwhile is unexpected (past the provider's unexpected
 * budget its sender is held back until the receives come).
 * Exit: 0 done; 1 a check failed; 2 usage or setup; 124 the watchdog fired.
 * Provider: FI_PROVIDER_PATH, FI_PROVIDER, FI_USB4_IFACE as usual.
 * tests/test_collective_conform.py and tests/multihost/test_xhost_collective.py
 * drive it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
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
#include <rdma/fi_tagged.h>

#define MAX_RANKS	64
#define MAX_THREADS	8
#define ADDR_MAX	64
#define CQ_BATCH	8
#define WAIT_FILE_S	30.0

/* Tag: iteration in bits 40..55, global step in 20..39, chunk in 0..19;
 * bit 63 marks the closing token. */
#define TAG(it, step, chunk) (((uint64_t) (it) << 40) | \
			      ((uint64_t) (step) << 20) | (uint64_t) (chunk))
#define TAG_DONE	(1ULL << 63)

enum op_kind { OP_SEND, OP_RECV };

/* One chunk's send or receive: the fi_context2 first (FI_CONTEXT2 mode). */
struct op {
	struct fi_context2 ctx;
	enum op_kind kind;
	int iter, step, chunk;
};

struct opts {
	int rank, nranks, count, chunk, window, threads, iters, timeout;
	int late_recv_ms;
	const char *dir;
};

static struct opts o = { .chunk = 256, .window = 16, .threads = 3,
			 .iters = 3, .timeout = 60, .rank = -1 };

/* ---- the endpoint ----------------------------------------------------- */

static struct fi_info *info;
static struct fid_fabric *fabric;
static struct fid_domain *domain;
static struct fid_av *av;
static struct fid_cq *cq;
static struct fid_ep *ep;
static struct fid_mr *work_mr, *stage_mr;
static fi_addr_t left_addr, right_addr;

/* ---- the collective's state ------------------------------------------- */

static float *input;		/* F floats */
static float *work;		/* iters x F: each iteration's buffer */
static float *stage;		/* iters x steps x seglen: where chunks land */
static int seglen, nchunks, nsteps;	/* per segment, per step, per iter */
static struct op *sends, *recvs;	/* iters x steps x chunks each */
static bool *recv_done;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int next_send, next_recv;	/* linear (iter, step, chunk) index */
static int sends_out, recvs_out, max_sends_out, max_recvs_out;
static int sends_done, recvs_done, total_ops;
static long thread_completions[MAX_THREADS];
static double recv_from;		/* no receive posted before (late-recv) */
static volatile int failed;

static _Noreturn void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "usb4_ring_conform rank %d: ", o.rank);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	/* Other threads may be inside libfabric: no exit handlers, no unload
	 * under their feet (the failure is reported, not a crash after it). */
	fflush(NULL);
	_exit(code);
}

#define CHECK(call) do {						\
	int _r = (int) (call);						\
	if (_r)								\
		die(2, "%s:%d %s = %d (%s)", __FILE__, __LINE__, #call,	\
		    _r, fi_strerror(-_r));				\
} while (0)

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static void on_alarm(int sig)
{
	static const char msg[] = "usb4_ring_conform: watchdog fired\n";

	(void) sig;
	(void) !write(2, msg, sizeof(msg) - 1);
	_exit(124);
}

static int mod(int a, int n)
{
	return ((a % n) + n) % n;
}

/* ---- which segment a step moves ---------------------------------------- */

static int rs_steps(void)
{
	return o.nranks - 1;
}

static int send_segment(int step)
{
	if (step < rs_steps())
		return mod(o.rank - step, o.nranks);
	return mod(o.rank + 1 - (step - rs_steps()), o.nranks);
}

static int recv_segment(int step)
{
	if (step < rs_steps())
		return mod(o.rank - step - 1, o.nranks);
	return mod(o.rank - (step - rs_steps()), o.nranks);
}

static int chunk_len(int chunk)
{
	int left = seglen - chunk * o.chunk;

	return left < o.chunk ? left : o.chunk;
}

static int op_index(int iter, int step, int chunk)
{
	return (iter * nsteps + step) * nchunks + chunk;
}

static float *work_chunk(int iter, int segment, int chunk)
{
	return work + (size_t) iter * o.count + (size_t) segment * seglen +
	       (size_t) chunk * o.chunk;
}

static float *stage_chunk(int iter, int step, int chunk)
{
	return stage + ((size_t) iter * nsteps + step) * seglen +
	       (size_t) chunk * o.chunk;
}

/* ---- completions -------------------------------------------------------- */

static void recv_completed(const struct op *op,
			   const struct fi_cq_tagged_entry *e)
{
	int n = chunk_len(op->chunk);
	const float *src = stage_chunk(op->iter, op->step, op->chunk);
	float *dst = work_chunk(op->iter, recv_segment(op->step), op->chunk);

	if (e->tag != TAG(op->iter, op->step, op->chunk) ||
	    e->len != (size_t) n * sizeof(float) ||
	    (e->flags & (FI_RECV | FI_TAGGED)) != (FI_RECV | FI_TAGGED)) {
		fprintf(stderr, "rank %d: receive %d/%d/%d completed with tag "
			"0x%" PRIx64 " len %zu flags 0x%" PRIx64 "\n", o.rank,
			op->iter, op->step, op->chunk, e->tag, e->len,
			e->flags);
		failed = 1;
	}
	/* Only this completion writes dst until recv_done is set: the
	 * reduction runs outside the lock, in whichever thread read it. */
	if (op->step < rs_steps()) {
		for (int i = 0; i < n; i++)
			dst[i] += src[i];
	} else {
		memcpy(dst, src, (size_t) n * sizeof(float));
	}
	pthread_mutex_lock(&lock);
	recv_done[op_index(op->iter, op->step, op->chunk)] = true;
	recvs_out--;
	recvs_done++;
	pthread_mutex_unlock(&lock);
}

static void send_completed(const struct op *op,
			   const struct fi_cq_tagged_entry *e)
{
	if ((e->flags & (FI_SEND | FI_TAGGED)) != (FI_SEND | FI_TAGGED)) {
		fprintf(stderr, "rank %d: send %d/%d/%d flags 0x%" PRIx64 "\n",
			o.rank, op->iter, op->step, op->chunk, e->flags);
		failed = 1;
	}
	pthread_mutex_lock(&lock);
	sends_out--;
	sends_done++;
	pthread_mutex_unlock(&lock);
}

static void cq_error(void)
{
	struct fi_cq_err_entry err = { 0 };

	if (fi_cq_readerr(cq, &err, 0) == 1)
		die(1, "completion error %d (%s), prov_errno %d", err.err,
		    fi_strerror(err.err), err.prov_errno);
	/* Another thread took the error entry: it reports it. */
}

/* One fi_cq_read; every entry handled by the calling thread. */
static int poll_once(int self)
{
	struct fi_cq_tagged_entry e[CQ_BATCH];
	ssize_t n = fi_cq_read(cq, e, CQ_BATCH);

	if (n == -FI_EAGAIN)
		return 0;
	if (n == -FI_EAVAIL) {
		cq_error();
		return 0;
	}
	if (n < 0)
		die(1, "fi_cq_read = %zd (%s)", n, fi_strerror((int) -n));
	for (ssize_t i = 0; i < n; i++) {
		const struct op *op = e[i].op_context;

		if (!op) {
			fprintf(stderr, "rank %d: completion without context\n",
				o.rank);
			failed = 1;
			continue;
		}
		if (op->kind == OP_RECV)
			recv_completed(op, &e[i]);
		else
			send_completed(op, &e[i]);
	}
	thread_completions[self] += n;
	return (int) n;
}

/* ---- posting ------------------------------------------------------------- */

static void post_send(int self, struct op *op)
{
	int n = chunk_len(op->chunk);
	void *buf = work_chunk(op->iter, send_segment(op->step), op->chunk);
	ssize_t ret;

	while ((ret = fi_tsend(ep, buf, (size_t) n * sizeof(float),
			       fi_mr_desc(work_mr), right_addr,
			       TAG(op->iter, op->step, op->chunk),
			       &op->ctx)) == -FI_EAGAIN)
		poll_once(self);
	if (ret)
		die(1, "fi_tsend = %zd (%s)", ret, fi_strerror((int) -ret));
}

static void post_recv(int self, struct op *op)
{
	int n = chunk_len(op->chunk);
	void *buf = stage_chunk(op->iter, op->step, op->chunk);
	ssize_t ret;

	/* From anyone: the tag alone says which chunk this is. */
	while ((ret = fi_trecv(ep, buf, (size_t) n * sizeof(float),
			       fi_mr_desc(stage_mr), FI_ADDR_UNSPEC,
			       TAG(op->iter, op->step, op->chunk), 0,
			       &op->ctx)) == -FI_EAGAIN)
		poll_once(self);
	if (ret)
		die(1, "fi_trecv = %zd (%s)", ret, fi_strerror((int) -ret));
}

/* A send is ready when its data is: the first step of an iteration sends
 * the input, a later one what the previous step received into it. */
static bool send_ready(int index)
{
	int step = index / nchunks % nsteps;

	return step == 0 || recv_done[index - nchunks];
}

/* Claims under the lock what the windows and the data allow, posts it
 * outside (posting from several threads at once). */
static void advance(int self)
{
	struct op *todo[2 * 64];
	int n = 0, max = (int) (sizeof(todo) / sizeof(todo[0])) / 2;

	pthread_mutex_lock(&lock);
	while (n < max && next_send < total_ops && sends_out < o.window &&
	       send_ready(next_send)) {
		todo[n++] = &sends[next_send++];
		if (++sends_out > max_sends_out)
			max_sends_out = sends_out;
	}
	while (n < 2 * max && next_recv < total_ops && recvs_out < o.window &&
	       now_s() >= recv_from) {
		todo[n++] = &recvs[next_recv++];
		if (++recvs_out > max_recvs_out)
			max_recvs_out = recvs_out;
	}
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < n; i++) {
		if (todo[i]->kind == OP_SEND)
			post_send(self, todo[i]);
		else
			post_recv(self, todo[i]);
	}
}

static bool all_done(void)
{
	bool done;

	pthread_mutex_lock(&lock);
	done = sends_done == total_ops && recvs_done == total_ops;
	pthread_mutex_unlock(&lock);
	return done;
}

static void *worker(void *arg)
{
	int self = (int) (intptr_t) arg;

	while (!all_done() && !failed) {
		advance(self);
		poll_once(self);
	}
	return NULL;
}

/* ---- set-up ------------------------------------------------------------- */

static void open_endpoint(void)
{
	struct fi_info *hints = fi_allocinfo();
	struct fi_av_attr av_attr = { .type = FI_AV_TABLE };
	struct fi_cq_attr cq_attr = { .format = FI_CQ_FORMAT_TAGGED };

	if (!hints)
		die(2, "fi_allocinfo");
	/* aws-ofi-nccl's SENDRECV hints, host memory only
	 * (tests/c/test_getinfo_consumers.c cites the source). */
	hints->caps = FI_LOCAL_COMM | FI_REMOTE_COMM | FI_TAGGED | FI_MSG;
	hints->mode = FI_CONTEXT | FI_CONTEXT2;
	hints->ep_attr->type = FI_EP_RDM;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_ENDPOINT |
				      FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				      FI_MR_PROV_KEY;
	hints->domain_attr->mr_key_size = 2;
	hints->domain_attr->threading = FI_THREAD_SAFE;
	hints->tx_attr->msg_order = FI_ORDER_SAS;
	hints->rx_attr->msg_order = FI_ORDER_SAS;
	/* RING_PROVIDER: the same program over another provider (checks
	 * the program, not usb4). */
	hints->fabric_attr->prov_name = strdup(getenv("RING_PROVIDER") ?
						getenv("RING_PROVIDER") : "usb4");
	CHECK(fi_getinfo(FI_VERSION(1, 6), NULL, NULL, 0, hints, &info));
	fi_freeinfo(hints);
	if (info->domain_attr->threading != FI_THREAD_SAFE)
		die(1, "threading %d, not FI_THREAD_SAFE",
		    info->domain_attr->threading);
	if (info->caps & FI_DIRECTED_RECV)
		die(1, "FI_DIRECTED_RECV granted unasked");
	/* FI_MR_LOCAL is fine (every chunk goes with its descriptor). */
	if (info->domain_attr->mr_mode & FI_MR_ENDPOINT)
		die(1, "mr_mode 0x%x: this program does not bind MRs",
		    info->domain_attr->mr_mode);
	CHECK(fi_fabric(info->fabric_attr, &fabric, NULL));
	CHECK(fi_domain(fabric, info, &domain, NULL));
	CHECK(fi_av_open(domain, &av_attr, &av, NULL));
	cq_attr.size = (size_t) 4 * o.window;
	CHECK(fi_cq_open(domain, &cq_attr, &cq, NULL));
	CHECK(fi_endpoint(domain, info, &ep, NULL));
	CHECK(fi_ep_bind(ep, &av->fid, 0));
	CHECK(fi_ep_bind(ep, &cq->fid, FI_TRANSMIT | FI_RECV));
	CHECK(fi_enable(ep));
}

/* As the plugin registers NCCL's buffers: fi_mr_regattr, host iface. */
static struct fid_mr *register_buffer(void *buf, size_t len)
{
	static uint64_t next_key = 1;	/* distinct, unless the provider's */
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct fi_mr_attr attr = {
		.mr_iov = &iov, .iov_count = 1,
		.access = FI_SEND | FI_RECV, .iface = FI_HMEM_SYSTEM,
		.requested_key = next_key++,
	};
	struct fid_mr *mr;

	CHECK(fi_mr_regattr(domain, &attr, 0, &mr));
	return mr;
}

static void path_of(char *path, size_t size, const char *what, int rank)
{
	if ((size_t) snprintf(path, size, "%s/%s.%d", o.dir, what, rank) >=
	    size)
		die(2, "path too long");
}

static void publish_name(void)
{
	char name[ADDR_MAX], path[4096], tmp[4200];
	size_t len = sizeof(name);
	FILE *f;

	CHECK(fi_getname(&ep->fid, name, &len));
	path_of(path, sizeof(path), "addr", o.rank);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "wb");
	if (!f || fwrite(name, 1, len, f) != len || fclose(f))
		die(2, "writing %s: %s", tmp, strerror(errno));
	if (rename(tmp, path))
		die(2, "rename %s: %s", path, strerror(errno));
}

static fi_addr_t insert_peer(int rank)
{
	char name[ADDR_MAX], path[4096];
	double deadline = now_s() + WAIT_FILE_S;
	fi_addr_t addr;
	size_t len = 0;
	FILE *f;

	path_of(path, sizeof(path), "addr", rank);
	while (!(f = fopen(path, "rb"))) {
		if (now_s() > deadline)
			die(2, "no %s", path);
		usleep(5000);
	}
	len = fread(name, 1, sizeof(name), f);
	fclose(f);
	if (!len)
		die(2, "%s is empty", path);
	if (fi_av_insert(av, name, 1, &addr, 0, NULL) != 1)
		die(2, "fi_av_insert of rank %d", rank);
	return addr;
}

static void read_input(void)
{
	char path[4096];
	FILE *f;

	path_of(path, sizeof(path), "input", o.rank);
	f = fopen(path, "rb");
	if (!f || fread(input, sizeof(float), (size_t) o.count, f) !=
	    (size_t) o.count)
		die(2, "reading %d floats from %s", o.count, path);
	fclose(f);
}

static void write_result(void)
{
	char path[4096];
	FILE *f;

	path_of(path, sizeof(path), "result", o.rank);
	f = fopen(path, "wb");
	if (!f || fwrite(work, sizeof(float), (size_t) o.count, f) !=
	    (size_t) o.count || fclose(f))
		die(2, "writing %s", path);
}

static void *alloc_zeroed(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		die(2, "out of memory");
	return p;
}

static void plan(void)
{
	seglen = o.count / o.nranks;
	nchunks = (seglen + o.chunk - 1) / o.chunk;
	nsteps = 2 * (o.nranks - 1);
	total_ops = o.iters * nsteps * nchunks;
	input = alloc_zeroed((size_t) o.count, sizeof(float));
	work = alloc_zeroed((size_t) o.iters * o.count, sizeof(float));
	stage = alloc_zeroed((size_t) o.iters * nsteps * seglen,
			     sizeof(float));
	sends = alloc_zeroed((size_t) total_ops, sizeof(*sends));
	recvs = alloc_zeroed((size_t) total_ops, sizeof(*recvs));
	recv_done = alloc_zeroed((size_t) total_ops, sizeof(*recv_done));
	for (int i = 0; i < total_ops; i++) {
		int chunk = i % nchunks, step = i / nchunks % nsteps,
		    iter = i / nchunks / nsteps;

		sends[i] = (struct op) { .kind = OP_SEND, .iter = iter,
					 .step = step, .chunk = chunk };
		recvs[i] = (struct op) { .kind = OP_RECV, .iter = iter,
					 .step = step, .chunk = chunk };
	}
}

/* The token's completions (nothing else is in flight by then). */
static int token_poll(void)
{
	struct fi_cq_tagged_entry e;
	ssize_t ret = fi_cq_read(cq, &e, 1);

	if (ret == -FI_EAVAIL)
		cq_error();
	else if (ret != 1 && ret != -FI_EAGAIN)
		die(1, "fi_cq_read (token) = %zd", ret);
	return ret == 1;
}

/* A token around the ring: the left neighbour has sent its last chunk
 * before its token, so nothing of this run is in flight towards us once
 * it is here (and ours is delivered before we close). */
static void closing_token(void)
{
	struct op tx = { .kind = OP_SEND }, rx = { .kind = OP_RECV };
	double deadline = now_s() + o.timeout;
	int got = 0;
	ssize_t ret;

	while ((ret = fi_trecv(ep, NULL, 0, NULL, FI_ADDR_UNSPEC, TAG_DONE, 0,
			       &rx.ctx)) == -FI_EAGAIN)
		got += token_poll();
	if (ret)
		die(1, "fi_trecv (token) = %zd", ret);
	while ((ret = fi_tsend(ep, NULL, 0, NULL, right_addr, TAG_DONE,
			       &tx.ctx)) == -FI_EAGAIN)
		got += token_poll();
	if (ret)
		die(1, "fi_tsend (token) = %zd", ret);
	while (got < 2) {
		got += token_poll();
		if (now_s() > deadline)
			die(1, "no token");
	}
}

/* ---- main ------------------------------------------------------------------ */

static void usage(void)
{
	die(2, "usage: usb4_ring_conform --rank R --nranks N --dir D "
	    "--count F [--chunk C] [--window W] [--threads T] [--iters I] "
	    "[--timeout S] [--late-recv-ms MS]");
}

static void parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--dir"))
			o.dir = v;
		else if (!strcmp(a, "--rank"))
			o.rank = atoi(v);
		else if (!strcmp(a, "--nranks"))
			o.nranks = atoi(v);
		else if (!strcmp(a, "--count"))
			o.count = atoi(v);
		else if (!strcmp(a, "--chunk"))
			o.chunk = atoi(v);
		else if (!strcmp(a, "--window"))
			o.window = atoi(v);
		else if (!strcmp(a, "--threads"))
			o.threads = atoi(v);
		else if (!strcmp(a, "--iters"))
			o.iters = atoi(v);
		else if (!strcmp(a, "--timeout"))
			o.timeout = atoi(v);
		else if (!strcmp(a, "--late-recv-ms"))
			o.late_recv_ms = atoi(v);
		else
			usage();
	}
	if (!o.dir || o.nranks < 2 || o.nranks > MAX_RANKS || o.rank < 0 ||
	    o.rank >= o.nranks || o.count <= 0 || o.count % o.nranks ||
	    o.chunk <= 0 || o.window <= 0 || o.threads < 1 ||
	    o.threads > MAX_THREADS || o.iters < 1 || o.iters >= 1 << 15 ||
	    o.timeout <= 0 || o.late_recv_ms < 0)
		usage();
}

int main(int argc, char **argv)
{
	pthread_t threads[MAX_THREADS];
	double t0, elapsed;

	parse(argc, argv);
	signal(SIGALRM, on_alarm);
	alarm((unsigned) o.timeout);
	plan();
	if (nchunks >= 1 << 20 || nsteps >= 1 << 20)
		die(2, "too many chunks or steps for the tag");
	read_input();
	for (int i = 0; i < o.iters; i++)
		memcpy(work + (size_t) i * o.count, input,
		       (size_t) o.count * sizeof(float));
	open_endpoint();
	work_mr = register_buffer(work, (size_t) o.iters * o.count *
				  sizeof(float));
	stage_mr = register_buffer(stage, (size_t) o.iters * nsteps * seglen *
				   sizeof(float));
	publish_name();
	right_addr = insert_peer(mod(o.rank + 1, o.nranks));
	left_addr = o.nranks == 2 ? right_addr :
		    insert_peer(mod(o.rank - 1, o.nranks));
	(void) left_addr;	/* receives name no source: FI_ADDR_UNSPEC */

	t0 = now_s();
	recv_from = t0 + o.late_recv_ms * 1e-3;
	for (int i = 1; i < o.threads; i++)
		if (pthread_create(&threads[i], NULL, worker,
				   (void *) (intptr_t) i))
			die(2, "pthread_create");
	worker((void *) 0);
	for (int i = 1; i < o.threads; i++)
		pthread_join(threads[i], NULL);
	elapsed = now_s() - t0;
	if (failed)
		die(1, "a completion was wrong");
	closing_token();

	for (int i = 1; i < o.iters; i++)
		if (memcmp(work, work + (size_t) i * o.count,
			   (size_t) o.count * sizeof(float)))
			die(1, "iteration %d's result differs from the first",
			    i);
	write_result();
	printf("ring: rank %d of %d, %d floats, %d iterations, %d steps x %d "
	       "chunks of %d floats, window %d, %d threads: %.3f s; "
	       "most in flight: sends %d, receives %d; completions per thread",
	       o.rank, o.nranks, o.count, o.iters, nsteps, nchunks, o.chunk,
	       o.window, o.threads, elapsed, max_sends_out, max_recvs_out);
	for (int i = 0; i < o.threads; i++)
		printf(" %ld", thread_completions[i]);
	printf("\n");
	fflush(stdout);

	fi_close(&ep->fid);
	fi_close(&work_mr->fid);
	fi_close(&stage_mr->fid);
	fi_close(&cq->fid);
	fi_close(&av->fid);
	fi_close(&domain->fid);
	fi_close(&fabric->fid);
	fi_freeinfo(info);
	return 0;
}
