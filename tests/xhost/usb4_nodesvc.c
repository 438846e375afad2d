/*
 * A client and a server that name each other the usual way, by node and
 * service, in the style of libfabric's examples (fabtests):
 *
 *   usb4_nodesvc server NODE|- SERVICE [str]
 *       fi_getinfo(FI_SOURCE, NODE or NULL, SERVICE) -> endpoint bound there;
 *       waits for the client's address, then answers its messages.
 *   usb4_nodesvc client NODE SERVICE [str]
 *       fi_getinfo(NODE, SERVICE) -> fi_av_insert(info->dest_addr), then a
 *       few untagged and tagged messages both ways, one fi_write and one
 *       fi_read of the server's buffer.
 * "str" asks for FI_ADDR_STR.  Each side prints "<role>: OK ..." at the end
 * and exits 0; any failure exits non-zero with the call that failed.
 */
#include <inttypes.h>
#include <stdbool.h>

#include <rdma/fi_cm.h>
#include <rdma/fi_rma.h>
#include <rdma/fi_tagged.h>

#include "xhost_common.h"

#define ROUNDS		4
#define MSG_LEN		64
#define RMA_LEN		4096
#define ADDR_MAX	256
#define WAIT_MS		30000

struct side {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *ep;
	struct fid_mr *mr;
	char rma[RMA_LEN];
	fi_addr_t peer;
};

/* What the server tells the client about its buffer. */
struct rma_target {
	uint64_t key, addr;
};

static void open_side(struct side *s, const char *node, const char *service,
		      uint64_t flags, bool str)
{
	struct fi_info *hints = fi_allocinfo();
	struct fi_cq_attr cq_attr = { .format = FI_CQ_FORMAT_TAGGED,
				      .wait_obj = FI_WAIT_UNSPEC };
	struct fi_av_attr av_attr = { .type = FI_AV_MAP };

	hints->ep_attr->type = FI_EP_RDM;
	hints->caps = FI_MSG | FI_TAGGED | FI_RMA;
	hints->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				      FI_MR_PROV_KEY;
	hints->fabric_attr->prov_name = strdup("usb4");
	if (str)
		hints->addr_format = FI_ADDR_STR;
	CHECK(fi_getinfo(FI_VERSION(1, 17), node, service, flags, hints,
			 &s->info));
	fi_freeinfo(hints);
	CHECK(fi_fabric(s->info->fabric_attr, &s->fabric, NULL));
	CHECK(fi_domain(s->fabric, s->info, &s->domain, NULL));
	CHECK(fi_av_open(s->domain, &av_attr, &s->av, NULL));
	CHECK(fi_cq_open(s->domain, &cq_attr, &s->cq, NULL));
	CHECK(fi_endpoint(s->domain, s->info, &s->ep, NULL));
	CHECK(fi_ep_bind(s->ep, &s->av->fid, 0));
	CHECK(fi_ep_bind(s->ep, &s->cq->fid, FI_TRANSMIT | FI_RECV));
	CHECK(fi_enable(s->ep));
	CHECK(fi_mr_reg(s->domain, s->rma, sizeof(s->rma),
			FI_REMOTE_READ | FI_REMOTE_WRITE, 0, 0, 0, &s->mr,
			NULL));
}

static void close_side(struct side *s)
{
	fi_close(&s->mr->fid);
	fi_close(&s->ep->fid);
	fi_close(&s->av->fid);
	fi_close(&s->cq->fid);
	fi_close(&s->domain->fid);
	fi_close(&s->fabric->fid);
	fi_freeinfo(s->info);
}

/* One completion, or death. */
static void wait_one(struct side *s, const char *what)
{
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err = { 0 };
	ssize_t n = fi_cq_sread(s->cq, &e, 1, NULL, WAIT_MS);

	if (n == 1)
		return;
	if (n == -FI_EAVAIL && fi_cq_readerr(s->cq, &err, 0) == 1)
		die(3, "%s failed: %s", what, fi_strerror(err.err));
	die(3, "%s: no completion (%zd)", what, n);
}

static void send_msg(struct side *s, const void *buf, size_t len,
		     const char *what)
{
	CHECK(fi_send(s->ep, buf, len, NULL, s->peer, NULL));
	wait_one(s, what);
}

static void recv_msg(struct side *s, void *buf, size_t len, const char *what)
{
	CHECK(fi_recv(s->ep, buf, len, NULL, FI_ADDR_UNSPEC, NULL));
	wait_one(s, what);
}

static void fill(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char) (seed * 31 + i * 7);
}

static void expect(const char *buf, size_t len, unsigned seed, const char *what)
{
	char want[RMA_LEN];

	fill(want, len, seed);
	if (memcmp(buf, want, len))
		die(4, "%s: wrong bytes", what);
}

/* Tagged: the client sends tag i, the server answers with tag 100 + i. */
static void tagged_rounds(struct side *s, bool client)
{
	char buf[MSG_LEN];

	for (unsigned i = 0; i < ROUNDS; i++) {
		if (client) {
			fill(buf, sizeof(buf), i);
			CHECK(fi_tsend(s->ep, buf, sizeof(buf), NULL, s->peer,
				       i, NULL));
			wait_one(s, "tsend");
			CHECK(fi_trecv(s->ep, buf, sizeof(buf), NULL, s->peer,
				       100 + i, 0, NULL));
			wait_one(s, "trecv");
			expect(buf, sizeof(buf), 100 + i, "tagged answer");
		} else {
			CHECK(fi_trecv(s->ep, buf, sizeof(buf), NULL,
				       FI_ADDR_UNSPEC, i, 0, NULL));
			wait_one(s, "trecv");
			expect(buf, sizeof(buf), i, "tagged message");
			fill(buf, sizeof(buf), 100 + i);
			CHECK(fi_tsend(s->ep, buf, sizeof(buf), NULL, s->peer,
				       100 + i, NULL));
			wait_one(s, "tsend");
		}
	}
}

static int server(const char *node, const char *service, bool str)
{
	struct side s = { 0 };
	char addr[ADDR_MAX], msg[MSG_LEN] = "bye";
	struct rma_target t;

	open_side(&s, node, service, FI_SOURCE, str);
	printf("server: ready\n");
	fflush(stdout);
	memset(addr, 0, sizeof(addr));
	recv_msg(&s, addr, sizeof(addr), "recv client address");
	if (fi_av_insert(s.av, addr, 1, &s.peer, 0, NULL) != 1)
		die(3, "inserting the client's address failed");
	t.key = fi_mr_key(s.mr);
	t.addr = s.info->domain_attr->mr_mode & FI_MR_VIRT_ADDR ?
		 (uint64_t) (uintptr_t) s.rma : 0;
	send_msg(&s, &t, sizeof(t), "send rma target");
	tagged_rounds(&s, false);
	recv_msg(&s, msg, sizeof(msg), "recv done");
	expect(s.rma, RMA_LEN, 7, "buffer after fi_write");
	send_msg(&s, "bye", 4, "send bye");
	close_side(&s);
	printf("server: OK\n");
	return 0;
}

static int client(const char *node, const char *service, bool str)
{
	struct side s = { 0 };
	char addr[ADDR_MAX], msg[MSG_LEN];
	size_t len = sizeof(addr);
	struct rma_target t;
	char local[RMA_LEN];
	double t0;

	open_side(&s, node, service, 0, str);
	t0 = now_s();
	if (fi_av_insert(s.av, s.info->dest_addr, 1, &s.peer, 0, NULL) != 1)
		die(3, "inserting %s:%s failed", node, service);
	printf("client: resolved in %.3f s\n", now_s() - t0);
	CHECK(fi_getname(&s.ep->fid, addr, &len));
	send_msg(&s, addr, len, "send address");
	recv_msg(&s, &t, sizeof(t), "recv rma target");
	tagged_rounds(&s, true);
	fill(local, sizeof(local), 7);
	CHECK(fi_write(s.ep, local, sizeof(local), NULL, s.peer, t.addr, t.key,
		       NULL));
	wait_one(&s, "fi_write");
	memset(local, 0, sizeof(local));
	CHECK(fi_read(s.ep, local, sizeof(local), NULL, s.peer, t.addr, t.key,
		      NULL));
	wait_one(&s, "fi_read");
	expect(local, sizeof(local), 7, "fi_read");
	send_msg(&s, "done", 5, "send done");
	recv_msg(&s, msg, sizeof(msg), "recv bye");
	if (strcmp(msg, "bye"))
		die(4, "no bye");
	close_side(&s);
	printf("client: OK\n");
	return 0;
}

int main(int argc, char **argv)
{
	bool str = argc > 4 && !strcmp(argv[4], "str");
	const char *node;

	xhost_prog = "usb4_nodesvc";
	if (argc < 4)
		die(1, "usage: usb4_nodesvc server|client NODE|- SERVICE [str]");
	xhost_role = argv[1];
	node = strcmp(argv[2], "-") ? argv[2] : NULL;
	alarm(120);
	if (!strcmp(argv[1], "server"))
		return server(node, argv[3], str);
	if (!strcmp(argv[1], "client"))
		return client(node, argv[3], str);
	die(1, "role %s: server or client", argv[1]);
}
