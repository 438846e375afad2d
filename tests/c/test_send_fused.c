/*
 * The fused send (src/core/usb4_send_fused.c) against the general path it
 * stands in for, over both links (shm; udp on loopback with the addresses
 * given another host's id), normally and with FI_USB4_PORTABLE=1.
 *
 * Endpoint A sends to B and C.  A send of one buffer, eager and without
 * delivery acknowledgement, is fused; any other goes the general way.  So
 * every operation of fi_msg and fi_tagged is sent as two buffers (the
 * general path), then as itself (fused) to C, a peer whose route is not
 * the remembered one, to B, and to B again (the remembered route).  They
 * must be the same at the receiver (CQ entry: flags, length, CQ data; the
 * bytes) and at A (CQ entry, or none for an inject), and over udp the
 * frames the link was handed (the core's header and payload, behind rel's
 * header in the datagram, caught by defining sendmsg here) the same bytes.
 * Then sends that must not be fused (FI_DELIVERY_COMPLETE, beyond the
 * eager limit, to no peer) and the routes after them.
 *
 * Which way each send went is counted by the provider: the endpoints'
 * close lines (FI_LOG_LEVEL=info) say "eager sent N fused N"; each case
 * runs in a child whose stderr is kept, and the fused sends counted there
 * must be the ones this program expected.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include <rdma/fi_tagged.h>

#include "usb4_test.h"
#include "usb4_fixture.h"
#include "usb4_sendto_shim.h"

#define HOST_ID_OFF	8	/* struct usb4_wire_addr.host_id */
#define REL_HDR		48	/* struct usb4_wire_rel, before the frame */
#define CORE_HDR	48	/* struct usb4_wire_hdr */
#define FRAME_TYPE_OFF	1	/* usb4_wire_hdr.type */
#define FRAME_EAGER	1	/* USB4_FRAME_EAGER */
#define CAUGHT_MAX	512	/* bytes kept of a frame */
#define BIG		70000	/* past both links' eager limits */
#define TAG		0x5eed
#define DATA		0xc0ffee

/* The last eager frame handed to sendmsg (udp). */
static char caught[CAUGHT_MAX];
static size_t caught_len;

__attribute__((visibility("default")))
ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	static ssize_t (*real)(int, const struct msghdr *, int);
	char dgram[REL_HDR + CAUGHT_MAX];
	size_t len = 0;

	if (!real)
		real = (ssize_t (*)(int, const struct msghdr *, int))
		       dlsym(RTLD_NEXT, "sendmsg");
	for (size_t i = 0; i < msg->msg_iovlen; i++) {
		size_t n = msg->msg_iov[i].iov_len;

		if (len + n > sizeof(dgram))
			n = sizeof(dgram) - len;
		memcpy(dgram + len, msg->msg_iov[i].iov_base, n);
		len += n;
	}
	if (len >= REL_HDR + CORE_HDR &&
	    dgram[REL_HDR + FRAME_TYPE_OFF] == FRAME_EAGER) {
		caught_len = len - REL_HDR;
		memcpy(caught, dgram + REL_HDR, caught_len);
	}
	return real(fd, msg, flags);
}

enum op {
	OP_TSEND, OP_TSENDDATA, OP_TINJECT, OP_TINJECTDATA,
	OP_TSENDMSG,		/* CQ data given, FI_REMOTE_CQ_DATA not */
	OP_SEND, OP_SENDDATA, OP_INJECT, OP_INJECTDATA,
	OP_SENDMSG,		/* FI_REMOTE_CQ_DATA */
	OP_MAX
};

struct world {
	struct fx a, b, c;
	fi_addr_t to_b, to_c, b_from_a, c_from_a;
	bool udp;
	unsigned fused;		/* sends that must have been fused */
};

static bool is_inject(enum op op)
{
	return op == OP_TINJECT || op == OP_TINJECTDATA || op == OP_INJECT ||
	       op == OP_INJECTDATA;
}

/* The general path's twin of op: the same message as two buffers (a send
 * of several buffers is never fused), by fi_tsendmsg or fi_sendmsg with
 * the flags op implies. */
static ssize_t post_general(struct fx *f, enum op op, const void *buf,
			    size_t len, fi_addr_t dest, void *ctx)
{
	struct iovec iov[2] = {
		{ .iov_base = (void *) buf, .iov_len = len / 2 },
		{ .iov_base = (char *) buf + len / 2, .iov_len = len - len / 2 },
	};
	bool cq_data = op == OP_TSENDDATA || op == OP_TINJECTDATA ||
		       op == OP_SENDDATA || op == OP_INJECTDATA ||
		       op == OP_SENDMSG;
	uint64_t flags = (is_inject(op) ? FI_INJECT : FI_COMPLETION) |
			 (cq_data ? FI_REMOTE_CQ_DATA : 0);
	struct fi_msg_tagged tm = {
		.msg_iov = iov, .iov_count = 2, .addr = dest, .tag = TAG,
		.context = ctx, .data = DATA,
	};
	struct fi_msg m = {
		.msg_iov = iov, .iov_count = 2, .addr = dest, .context = ctx,
		.data = DATA,
	};

	return op < OP_SEND ? fi_tsendmsg(f->ep, &tm, flags) :
			      fi_sendmsg(f->ep, &m, flags);
}

static ssize_t post(struct fx *f, enum op op, const void *buf, size_t len,
		    fi_addr_t dest, void *ctx)
{
	struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
	struct fi_msg_tagged tm = {
		.msg_iov = &iov, .iov_count = 1, .addr = dest, .tag = TAG,
		.context = ctx, .data = DATA,
	};
	struct fi_msg m = {
		.msg_iov = &iov, .iov_count = 1, .addr = dest, .context = ctx,
		.data = DATA,
	};

	switch (op) {
	case OP_TSENDMSG:
		return fi_tsendmsg(f->ep, &tm, FI_COMPLETION);
	case OP_SENDMSG:
		return fi_sendmsg(f->ep, &m, FI_COMPLETION | FI_REMOTE_CQ_DATA);
	case OP_TSEND:
		return fi_tsend(f->ep, buf, len, NULL, dest, TAG, ctx);
	case OP_TSENDDATA:
		return fi_tsenddata(f->ep, buf, len, NULL, DATA, dest, TAG, ctx);
	case OP_TINJECT:
		return fi_tinject(f->ep, buf, len, dest, TAG);
	case OP_TINJECTDATA:
		return fi_tinjectdata(f->ep, buf, len, DATA, dest, TAG);
	case OP_SEND:
		return fi_send(f->ep, buf, len, NULL, dest, ctx);
	case OP_SENDDATA:
		return fi_senddata(f->ep, buf, len, NULL, DATA, dest, ctx);
	case OP_INJECT:
		return fi_inject(f->ep, buf, len, dest);
	default:
		return fi_injectdata(f->ep, buf, len, DATA, dest);
	}
}

static ssize_t post_recv(struct fx *f, enum op op, void *buf, size_t len,
			 fi_addr_t src)
{
	return op < OP_SEND ? fi_trecv(f->ep, buf, len, NULL, src, TAG, 0, NULL) :
			      fi_recv(f->ep, buf, len, NULL, src, NULL);
}

/* Reads cq until an entry (1) or error (0) comes, progressing the others:
 * manual progress moves nothing for an endpoint nobody reads. */
static int wait_cq(struct world *w, struct fid_cq *cq,
		   struct fi_cq_data_entry *e)
{
	uint64_t end = fx_now_ms() + FX_TIMEOUT_MS;
	struct fid_cq *all[3] = { w->a.cq, w->b.cq, w->c.cq };
	ssize_t ret;

	do {
		for (int i = 0; i < 3; i++)
			if (all[i] != cq)
				fi_cq_read(all[i], NULL, 0);
		ret = fi_cq_read(cq, e, 1);
	} while (ret == -FI_EAGAIN && fx_now_ms() < end);
	return ret == 1;
}

/* One message from A to B or C, received there; its entries, and over
 * udp the frame it went in (caught). */
static void exchange(struct world *w, enum op op, bool general,
		     const void *buf, size_t len, bool to_b,
		     struct fi_cq_data_entry *rx, struct fi_cq_data_entry *tx,
		     char *got)
{
	struct fx *r = to_b ? &w->b : &w->c;
	fi_addr_t src = to_b ? w->b_from_a : w->c_from_a;
	fi_addr_t dest = to_b ? w->to_b : w->to_c;
	ssize_t ret;

	memset(rx, 0, sizeof(*rx));
	memset(tx, 0, sizeof(*tx));
	caught_len = 0;
	CHECK_EQ(post_recv(r, op, got, BIG, src), 0);
	do {
		ret = general ? post_general(&w->a, op, buf, len, dest, got) :
				post(&w->a, op, buf, len, dest, got);
		if (ret == -FI_EAGAIN)
			fi_cq_read(w->a.cq, NULL, 0);
	} while (ret == -FI_EAGAIN);
	CHECK_EQ(ret, 0);
	CHECK(wait_cq(w, r->cq, rx));
	if (!is_inject(op))
		CHECK(wait_cq(w, w->a.cq, tx));
}

static void same_entry(const struct fi_cq_data_entry *x,
		       const struct fi_cq_data_entry *y, int op, size_t len)
{
	CHECK_EQ_MSG(x->flags, y->flags, "op %d len %zu", op, len);
	CHECK_EQ_MSG(x->len, y->len, "op %d len %zu", op, len);
	CHECK_EQ_MSG(x->data, y->data, "op %d len %zu", op, len);
}

/* op to B the general way, then fused to C (a route not remembered), to B
 * (the same) and to B again (the remembered route): the same entries at
 * both ends, the same bytes, and over udp the same frame. */
#define ROUNDS	4
static void rounds(struct world *w, enum op op, size_t len)
{
	static char buf[BIG], got[ROUNDS][BIG], frame[CAUGHT_MAX];
	static const bool to_b[ROUNDS] = { true, false, true, true };
	struct fi_cq_data_entry rx[ROUNDS], tx[ROUNDS];
	size_t frame_len = 0;

	for (size_t i = 0; i < len; i++)
		buf[i] = (char) (i * 7 + op);
	for (int k = 0; k < ROUNDS; k++) {
		exchange(w, op, k == 0, buf, len, to_b[k], &rx[k], &tx[k],
			 got[k]);
		CHECK_MSG(!memcmp(got[k], buf, len), "op %d len %zu round %d",
			  op, len, k);
		if (k)
			same_entry(&rx[0], &rx[k], op, len);
		if (k && !is_inject(op)) {
			same_entry(&tx[0], &tx[k], op, len);
			CHECK(tx[k].op_context == got[k]);
		}
		if (!w->udp)
			continue;
		CHECK_MSG(caught_len, "op %d len %zu round %d: no frame", op,
			  len, k);
		if (!k) {
			frame_len = caught_len;
			memcpy(frame, caught, caught_len);
			continue;
		}
		CHECK_EQ_MSG(caught_len, frame_len, "op %d len %zu round %d",
			     op, len, k);
		CHECK_MSG(!memcmp(caught, frame, frame_len),
			  "op %d len %zu round %d: the fused frame differs", op,
			  len, k);
	}
	CHECK_EQ(rx[0].len, len);
	w->fused += ROUNDS - 1;
}

/* Sends the fused path must leave to the general one, and its routes. */
static void declined(struct world *w)
{
	static char buf[BIG], got[BIG];
	struct iovec iov[2] = { { buf, 4 }, { buf + 4, 4 } };
	struct fi_msg_tagged m = {
		.msg_iov = iov, .iov_count = 1, .addr = w->to_b, .tag = TAG,
		.context = got,
	};
	struct fi_cq_data_entry rx, tx;
	fi_addr_t again;

	/* Delivery complete: an acknowledged send. */
	CHECK_EQ(fi_trecv(w->b.ep, got, BIG, NULL, w->b_from_a, TAG, 0, NULL), 0);
	CHECK_EQ(fi_tsendmsg(w->a.ep, &m, FI_COMPLETION |
			     FI_DELIVERY_COMPLETE), 0);
	CHECK(wait_cq(w, w->b.cq, &rx) && wait_cq(w, w->a.cq, &tx));
	/* The same with FI_INJECT: no acknowledgement, fused. */
	CHECK_EQ(fi_trecv(w->b.ep, got, BIG, NULL, w->b_from_a, TAG, 0, NULL), 0);
	CHECK_EQ(fi_tsendmsg(w->a.ep, &m, FI_INJECT | FI_DELIVERY_COMPLETE), 0);
	CHECK(wait_cq(w, w->b.cq, &rx));
	w->fused++;
	/* Beyond the eager limit: rendezvous, to the remembered route and to
	 * another. */
	exchange(w, OP_TSEND, false, buf, BIG, true, &rx, &tx, got);
	CHECK_EQ(rx.len, BIG);
	exchange(w, OP_TSEND, false, buf, BIG, false, &rx, &tx, got);
	CHECK_EQ(rx.len, BIG);
	/* No such peer: the general path's answer, and the route after it
	 * is found again. */
	CHECK_EQ(fi_tsend(w->a.ep, buf, 8, NULL, w->to_c + 1000, TAG, NULL),
		 -FI_EINVAL);
	exchange(w, OP_TSEND, false, buf, 8, true, &rx, &tx, got);
	w->fused++;
	/* An insert moves the AV: the route is found again. */
	again = fx_insert(&w->a, w->c.addr);
	CHECK(again != FI_ADDR_NOTAVAIL);
	exchange(w, OP_TSEND, false, buf, 8, true, &rx, &tx, got);
	exchange(w, OP_TSEND, false, buf, 8, true, &rx, &tx, got);
	w->fused += 2;
	CHECK_EQ(rx.len, 8);
}

static struct fi_info *hints(void)
{
	struct fi_info *h = fx_hints(FI_MSG | FI_TAGGED, 0);

	if (h)
		h->tx_attr->op_flags = 0;	/* as Open MPI's mtl ofi asks */
	return h;
}

static void open_world(struct world *w)
{
	CHECK_EQ(fx_open_hints(&w->a, hints()), 0);
	CHECK_EQ(fx_open_hints(&w->b, hints()), 0);
	CHECK_EQ(fx_open_hints(&w->c, hints()), 0);
	if (w->udp) {
		for (int i = 0; i < 8; i++) {
			w->a.addr[HOST_ID_OFF + i] ^= (char) 0x5a;
			w->b.addr[HOST_ID_OFF + i] ^= (char) 0x5a;
			w->c.addr[HOST_ID_OFF + i] ^= (char) 0x5a;
		}
	}
	w->to_b = fx_insert(&w->a, w->b.addr);
	w->to_c = fx_insert(&w->a, w->c.addr);
	w->b_from_a = fx_insert(&w->b, w->a.addr);
	w->c_from_a = fx_insert(&w->c, w->a.addr);
	CHECK(w->to_b != FI_ADDR_NOTAVAIL && w->to_c != FI_ADDR_NOTAVAIL &&
	      w->b_from_a != FI_ADDR_NOTAVAIL && w->c_from_a != FI_ADDR_NOTAVAIL);
}

/* The child: every case over one link; prints how many sends it expects
 * fused, then closes (the close lines say how many were). */
static int run_case(bool udp)
{
	static const size_t lens[] = { 0, 8, 40, 100 };
	struct world w = { .udp = udp };

	open_world(&w);
	for (int op = 0; op < OP_MAX && !usb4_test_failures; op++)
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
			rounds(&w, (enum op) op, lens[i]);
	declined(&w);
	fprintf(stderr, "expect fused %u\n", w.fused);
	fx_close(&w.a);
	fx_close(&w.b);
	fx_close(&w.c);
	return usb4_test_failures ? 1 : 0;
}

/* Sum of "fused N" over the close lines in log, and the expected count. */
static void count_fused(FILE *log, unsigned long *fused, unsigned long *want)
{
	char line[8192];

	*fused = 0;
	*want = ~0ul;
	while (fgets(line, sizeof(line), log)) {
		const char *at = strstr(line, " traffic: ");
		unsigned long n;

		if (sscanf(line, "expect fused %lu", &n) == 1)
			*want = n;
		if (at && (at = strstr(at, " fused ")) &&
		    sscanf(at, " fused %lu", &n) == 1)
			*fused += n;
		if (strstr(line, "CHECK"))
			fputs(line, stdout);
	}
}

/* Runs one case in a child, its stderr kept in a file. */
static void run_child(bool udp, bool portable)
{
	FILE *log = tmpfile();
	unsigned long fused, want;
	int status = -1;
	pid_t pid;

	CHECK(log != NULL);
	if (!log)
		return;
	pid = usb4_test_fork();
	if (pid == 0) {
		usb4_test_failures = 0;	/* the child's own, not the cases' before */
		dup2(fileno(log), 2);
		setenv("FI_LOG_LEVEL", "info", 1);
		setenv("FI_LOG_PROV", "usb4", 1);
		fx_link_child_env(udp, portable);
		usb4_test_child_exit(run_case(udp));
	}
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	rewind(log);
	count_fused(log, &fused, &want);
	fclose(log);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "%s%s: the child failed", udp ? "udp" : "shm",
		  portable ? " portable" : "");
	printf("%s%s: %lu sends fused, %lu expected\n", udp ? "udp" : "shm",
	       portable ? " portable" : "", fused, want);
	CHECK_EQ_MSG(fused, want, "%s%s: sends fused", udp ? "udp" : "shm",
		     portable ? " portable" : "");
}

int main(void)
{
	for (int portable = 0; portable < 2; portable++) {
		run_child(false, portable);
		run_child(true, portable);
	}
	return usb4_test_done("test_send_fused");
}
