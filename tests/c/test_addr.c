/*
 * Addressing by node and service: fi_getinfo's node/service forms and
 * FI_SOURCE, endpoints bound where asked, FI_ADDR_STR (fi_av_straddr round
 * trip, strings into fi_av_insert, malformed ones refused per entry),
 * fi_av_insertsvc and fi_av_insertsym, and resolution of an unresolved
 * address by the endpoint bound there (in this process: the AV progresses
 * its domain's endpoints while it waits), and other threads posting and
 * progressing on the domain while an insert waits for an answer.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>

#include "usb4_test.h"
#include "usb4_fixture.h"
#include "../../prov_usb4/src/wire.h"

#define API		FI_VERSION(1, 17)
#define PREFIX		"fi_addr_usb4://"

static struct fi_info *hints(bool str)
{
	struct fi_info *h = fi_allocinfo();

	h->ep_attr->type = FI_EP_RDM;
	h->caps = FI_MSG | FI_TAGGED;
	h->fabric_attr->prov_name = strdup("usb4");
	/* several threads use one domain (test_insert_waits_unlocked) */
	h->domain_attr->threading = FI_THREAD_SAFE;
	if (str)
		h->addr_format = FI_ADDR_STR;
	return h;
}

static int getinfo(const char *node, const char *service, uint64_t flags,
		   bool str, struct fi_info **info)
{
	struct fi_info *h = hints(str);
	int ret;

	*info = NULL;
	ret = fi_getinfo(API, node, service, flags, h, info);
	fi_freeinfo(h);
	return ret;
}

static const struct usb4_wire_addr *wire(const void *p)
{
	return p;
}

static void test_node_service_forms(void)
{
	struct fi_info *info;
	uint8_t lo[4] = { 127, 0, 0, 1 }, lo6[16] = { [15] = 1 }, any[16] = { 0 };

	CHECK_EQ(getinfo("127.0.0.1", "9511", 0, false, &info), 0);
	if (info) {
		CHECK_EQ(info->dest_addrlen, 56);
		CHECK(!info->src_addr);
		CHECK(usb4_wire_addr_unresolved(wire(info->dest_addr)));
		CHECK_EQ(wire(info->dest_addr)->udp_family, 4);
		CHECK_EQ(le16toh(wire(info->dest_addr)->udp_port), 9511);
		CHECK(!memcmp(wire(info->dest_addr)->udp_ip, lo, 4));
		CHECK_EQ(info->addr_format, FI_FORMAT_UNSPEC);
	}
	fi_freeinfo(info);
	CHECK_EQ(getinfo("::1", "9511", 0, false, &info), 0);
	if (info) {
		CHECK_EQ(wire(info->dest_addr)->udp_family, 6);
		CHECK(!memcmp(wire(info->dest_addr)->udp_ip, lo6, 16));
	}
	fi_freeinfo(info);
	CHECK_EQ(getinfo("localhost", "9511", 0, false, &info), 0);
	if (info)
		CHECK_EQ(wire(info->dest_addr)->udp_family, 4);
	fi_freeinfo(info);
	/* FI_SOURCE: where we bind */
	CHECK_EQ(getinfo("127.0.0.1", "9511", FI_SOURCE, false, &info), 0);
	if (info) {
		CHECK(!info->dest_addr);
		CHECK_EQ(info->src_addrlen, 56);
		CHECK(usb4_wire_addr_unresolved(wire(info->src_addr)));
		CHECK_EQ(le16toh(wire(info->src_addr)->udp_port), 9511);
	}
	fi_freeinfo(info);
	/* service alone: any IP */
	CHECK_EQ(getinfo(NULL, "9511", 0, false, &info), 0);
	if (info) {
		CHECK(info->src_addr && !info->dest_addr);
		CHECK(info->src_addr &&
		      !memcmp(wire(info->src_addr)->udp_ip, any, 16));
	}
	fi_freeinfo(info);
	CHECK_EQ(getinfo("no-such-host.invalid", "9511", 0, false, &info),
		 -FI_ENODATA);
	CHECK_EQ(getinfo("127.0.0.1", "http", 0, false, &info), -FI_ENODATA);
	CHECK_EQ(getinfo("127.0.0.1", NULL, 0, false, &info), -FI_ENODATA);
	CHECK_EQ(getinfo("127.0.0.1", "0", 0, false, &info), -FI_ENODATA);
}

static void test_addr_str_info(void)
{
	struct fi_info *info;

	CHECK_EQ(getinfo("127.0.0.1", "9511", 0, true, &info), 0);
	if (info) {
		CHECK_EQ(info->addr_format, FI_ADDR_STR);
		CHECK(info->dest_addr &&
		      !strcmp(info->dest_addr, PREFIX "127.0.0.1:9511"));
		CHECK_EQ(info->dest_addrlen, strlen(PREFIX "127.0.0.1:9511") + 1);
	}
	fi_freeinfo(info);
	CHECK_EQ(getinfo("::1", "9511", FI_SOURCE, true, &info), 0);
	if (info)
		CHECK(info->src_addr &&
		      !strcmp(info->src_addr, PREFIX "[::1]:9511"));
	fi_freeinfo(info);
}

/* Hints that carry the addresses themselves. */
static void test_addr_hints(void)
{
	struct fi_info *h = hints(true), *info = NULL;

	h->src_addr = strdup(PREFIX "127.0.0.1:9600");
	h->src_addrlen = strlen(h->src_addr) + 1;
	CHECK_EQ(fi_getinfo(API, NULL, NULL, 0, h, &info), 0);
	if (info)
		CHECK(!strcmp(info->src_addr, PREFIX "127.0.0.1:9600"));
	fi_freeinfo(info);
	/* a whole endpoint address is not a place to bind */
	free(h->src_addr);
	h->src_addr = strdup(PREFIX "-/0000000000000001/0000000000000002/1/3/-1/3");
	h->src_addrlen = strlen(h->src_addr) + 1;
	CHECK_EQ(fi_getinfo(API, NULL, NULL, 0, h, &info), -FI_ENODATA);
	fi_freeinfo(h);
}

/* ---- objects ---- */

/* The objects of one domain: struct fx of usb4_fixture.h (fx_close), opened
 * here from node and service. */
static int box_open(struct fx *b, const char *node, const char *service,
		    uint64_t flags, bool str)
{
	struct fi_av_attr av_attr = { .type = FI_AV_MAP };
	struct fi_cq_attr cq_attr = { .format = FI_CQ_FORMAT_TAGGED };
	int ret;

	memset(b, 0, sizeof(*b));
	ret = getinfo(node, service, flags, str, &b->info);
	if (ret)
		return ret;
	if (fi_fabric(b->info->fabric_attr, &b->fabric, NULL) ||
	    fi_domain(b->fabric, b->info, &b->domain, NULL) ||
	    fi_av_open(b->domain, &av_attr, &b->av, NULL) ||
	    fi_cq_open(b->domain, &cq_attr, &b->cq, NULL))
		return -FI_EOTHER;
	return 0;
}

static int box_ep(struct fx *b, struct fid_ep **ep)
{
	int ret = fi_endpoint(b->domain, b->info, ep, NULL);

	if (ret)
		return ret;
	if (fi_ep_bind(*ep, &b->av->fid, 0) ||
	    fi_ep_bind(*ep, &b->cq->fid, FI_TRANSMIT | FI_RECV) ||
	    fi_enable(*ep))
		return -FI_EOTHER;
	return 0;
}

/* An endpoint asked to bind 127.0.0.1:port is there (a port the test
 * picks: the kernel's choice for a socket closed just before). */
static uint16_t free_port(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t len = sizeof(in);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	uint16_t port;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (void *) &in, sizeof(in));
	getsockname(fd, (void *) &in, &len);
	port = ntohs(in.sin_port);
	close(fd);
	return port;
}

static void test_bound_and_resolved(void)
{
	char service[16], str[200], str2[200], name[200], bad_svc[16];
	struct fx b;
	struct fid_ep *twin = NULL;
	size_t len = sizeof(name);
	fi_addr_t fa[4] = { 0 };
	int errs[4] = { 0 };
	uint16_t port = free_port();

	snprintf(service, sizeof(service), "%u", port);
	snprintf(bad_svc, sizeof(bad_svc), "%u", free_port());
	CHECK_EQ(box_open(&b, "127.0.0.1", service, FI_SOURCE, true), 0);
	if (!b.domain)
		goto out;
	CHECK_EQ(box_ep(&b, &b.ep), 0);
	if (!b.ep)
		goto out;
	/* getname speaks the domain's format: a whole address string */
	CHECK_EQ(fi_getname(&b.ep->fid, name, &len), 0);
	snprintf(str, sizeof(str), PREFIX "127.0.0.1:%u/", port);
	CHECK_MSG(!strncmp(name, str, strlen(str)), "getname %s", name);
	CHECK_EQ(len, strlen(name) + 1);
	/* the port is taken */
	CHECK_EQ(fi_endpoint(b.domain, b.info, &twin, NULL), -FI_EADDRINUSE);

	/* straddr round trip: the string reads back as the same address */
	len = sizeof(str2);
	CHECK(fi_av_straddr(b.av, name, str2, &len) == str2);
	CHECK(!strcmp(str2, name));

	/* the unresolved form is resolved by the endpoint bound there */
	snprintf(str, sizeof(str), PREFIX "127.0.0.1:%u", port);
	CHECK_EQ(fi_av_insert(b.av, str, 1, &fa[0], 0, NULL), 1);
	len = sizeof(str2);
	CHECK_EQ(fi_av_lookup(b.av, fa[0], str2, &len), 0);
	CHECK_MSG(!strcmp(str2, name), "resolved %s, want %s", str2, name);
	/* as an array of strings (man fi_av) too */
	{
		const char *arr[1] = { name };
		CHECK_EQ(fi_av_insert(b.av, arr, 1, &fa[1], 0, NULL), 1);
	}
	CHECK_EQ(fi_av_insertsvc(b.av, "127.0.0.1", service, &fa[2], 0, NULL),
		 1);
	CHECK_EQ(fi_av_insertsvc(b.av, str, NULL, &fa[3], 0, NULL), 1);
	CHECK_EQ(fi_av_insertsym(b.av, "127.0.0.1", 1, service, 1, &fa[0], 0,
				 NULL), 1);

	/* nobody there: every entry fails with FI_EHOSTUNREACH */
	CHECK_EQ(fi_av_insertsym(b.av, "127.0.0.2", 2, bad_svc, 2, fa,
				 FI_SYNC_ERR, errs), 0);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(errs[i], FI_EHOSTUNREACH);
		CHECK(fa[i] == FI_ADDR_NOTAVAIL);
	}
	CHECK(fi_av_insertsym(b.av, "127.0.0.1", 1, "65535", 2, fa, 0, NULL) < 0);
	CHECK(fi_av_insertsym(b.av, "localhost", 1, service, 1, fa, 0, NULL) < 0);
out:
	fx_close(&b);
}

/* An IP no interface here holds cannot be bound: fi_endpoint says so. */
static void test_bind_elsewhere(void)
{
	struct fx b;
	struct fid_ep *ep = NULL;

	CHECK_EQ(box_open(&b, "192.0.2.1", "9511", FI_SOURCE, false), 0);
	if (b.domain)
		CHECK_EQ(fi_endpoint(b.domain, b.info, &ep, NULL),
			 -FI_EADDRNOTAVAIL);
	fx_close(&b);
}

/* Malformed strings: -FI_EINVAL per entry, nothing inserted. */
static void test_malformed_strings(void)
{
	static const char *bad[] = {
		"", "usb4://127.0.0.1:5", PREFIX, PREFIX "127.0.0.1",
		PREFIX "127.0.0.1:", PREFIX "127.0.0.1:99999", PREFIX "-",
		PREFIX "[::1:5", PREFIX "::1:5", PREFIX "300.0.0.1:5",
		PREFIX "127.0.0.1:5x", PREFIX "127.0.0.1:0",
		PREFIX "-/0000000000000001/0000000000000002/1/3/-1",
		PREFIX "-/0000000000000001/0000000000000000/1/3/-1/3",
		PREFIX "-/0000000000000001/0000000000000002/1/3/-1/3/",
		PREFIX "-/zz/0000000000000002/1/3/-1/3",
		PREFIX "-/1/2/1/3/-2/3",
	};
	const size_t n = sizeof(bad) / sizeof(bad[0]);
	fi_addr_t fa[sizeof(bad) / sizeof(bad[0])];
	int errs[sizeof(bad) / sizeof(bad[0])];
	struct fx b;

	CHECK_EQ(box_open(&b, NULL, NULL, 0, true), 0);
	if (!b.av)
		goto out;
	memset(errs, 0, sizeof(errs));
	CHECK_EQ(fi_av_insert(b.av, bad, n, fa, FI_SYNC_ERR, errs), 0);
	for (size_t i = 0; i < n; i++) {
		CHECK_EQ_MSG(errs[i], FI_EINVAL, "'%s'", bad[i]);
		CHECK(fa[i] == FI_ADDR_NOTAVAIL);
	}
	CHECK_EQ(fi_av_insertsvc(b.av, "no-such-host.invalid", "5", fa, 0,
				 NULL), 0);
out:
	fx_close(&b);
}

/* The 56-byte format prints as a string that the string format takes. */
static void test_straddr_round_trip(void)
{
	struct fx u, s;
	char name[56], str[200], back[200];
	size_t len = sizeof(name), slen = sizeof(str), blen = sizeof(back);
	fi_addr_t fa;

	CHECK_EQ(box_open(&u, NULL, NULL, 0, false), 0);
	CHECK_EQ(box_open(&s, NULL, NULL, 0, true), 0);
	if (!u.domain || !s.av || box_ep(&u, &u.ep))
		goto out;
	CHECK_EQ(fi_getname(&u.ep->fid, name, &len), 0);
	CHECK(fi_av_straddr(u.av, name, str, &slen) == str);
	CHECK_MSG(!strncmp(str, PREFIX, strlen(PREFIX)), "%s", str);
	CHECK_EQ(fi_av_insert(s.av, str, 1, &fa, 0, NULL), 1);
	CHECK_EQ(fi_av_lookup(s.av, fa, back, &blen), 0);
	CHECK_MSG(!strcmp(back, str), "%s != %s", back, str);
	/* and the 56 bytes back from the string */
	CHECK_EQ(fi_av_insert(u.av, name, 1, &fa, 0, NULL), 1);
	len = sizeof(name);
	{
		char again[56];
		size_t alen = sizeof(again);
		CHECK_EQ(fi_av_lookup(u.av, fa, again, &alen), 0);
		CHECK(!memcmp(again, name, sizeof(name)));
	}
out:
	fx_close(&u);
	fx_close(&s);
}

/* ---- an insert that waits does not stop its domain ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* A thread inserting an address nobody answers: it waits the peer timeout. */
struct unanswered_insert {
	struct fid_av *av;
	char service[16];
	atomic_bool started, done;
	int ret;
	uint64_t took_ms;
};

static void *unanswered_insert_main(void *arg)
{
	struct unanswered_insert *u = arg;
	fi_addr_t fa;
	uint64_t t0 = now_ms();

	atomic_store(&u->started, true);
	u->ret = fi_av_insertsvc(u->av, "127.0.0.1", u->service, &fa, 0, NULL);
	u->took_ms = now_ms() - t0;
	atomic_store(&u->done, true);
	return NULL;
}

/* Reads n completions off cq, sleeping a millisecond between empty reads;
 * returns how many came before deadline_ms. */
static int reap(struct fid_cq *cq, int n, uint64_t deadline_ms)
{
	struct fi_cq_tagged_entry e;
	struct timespec ms = { 0, 1000000 };
	int got = 0;

	while (got < n && now_ms() < deadline_ms) {
		ssize_t r = fi_cq_read(cq, &e, 1);

		if (r == 1)
			got++;
		else
			nanosleep(&ms, NULL);
	}
	return got;
}

#define INSERT_TRIES	3	/* of the timing-bound insert, on a loaded host */

/*
 * While one thread's fi_av_insertsvc waits (up to FI_USB4_PEER_TIMEOUT) for
 * a RESOLVE answer that never comes, another thread posts a receive and a
 * send between two endpoints of the same domain and reaps both completions:
 * all of it before the insert gives up.  An insert holding the domain lock
 * while it waits would hold every post and CQ read of the domain with it.
 *
 * Both that the pair completed while the insert waited and when the insert
 * gave up depend on threads running when they would: a loaded host (make
 * -j check beside other work) may hold either off for a few hundred ms.
 * So a try that missed them is only counted if it is the last (returns
 * false to ask for another); a held lock or a wait stretched to the next
 * retry misses every try.
 */
static bool insert_waits_unlocked(struct fx *b, struct fid_ep *peer,
				  fi_addr_t fa_peer, bool last)
{
	struct unanswered_insert u = { .ret = -1 };
	struct timespec settle = { 0, 100 * 1000000L };
	char out[8] = "ping", in[8] = { 0 };
	pthread_t thread;
	int got;
	bool during;

	snprintf(u.service, sizeof(u.service), "%u", free_port());
	u.av = b->av;
	if (pthread_create(&thread, NULL, unanswered_insert_main, &u)) {
		CHECK(!"pthread_create");
		return true;
	}
	while (!atomic_load(&u.started))
		nanosleep(&settle, NULL);
	nanosleep(&settle, NULL);	/* the insert is waiting by now */
	CHECK_EQ(fi_recv(peer, in, sizeof(in), NULL, FI_ADDR_UNSPEC, NULL),
		 0);
	CHECK_EQ(fi_send(b->ep, out, sizeof(out), NULL, fa_peer, NULL), 0);
	got = reap(b->cq, 2, now_ms() + 5000);
	during = !atomic_load(&u.done);
	pthread_join(thread, NULL);
	CHECK_EQ(got, 2);
	CHECK(!memcmp(in, out, sizeof(out)));
	/* nobody answered: not inserted */
	CHECK_EQ(u.ret, 0);
	/* Never before the peer timeout (1000 ms), however loaded the host. */
	CHECK_MSG(u.took_ms >= 900, "insert gave up after %llu ms",
		  (unsigned long long) u.took_ms);
	printf("# insert gave up after %llu ms, the pair %s\n",
	       (unsigned long long) u.took_ms,
	       during ? "completed while it waited" : "completed after");
	if (!last && (!during || u.took_ms >= 1200))
		return false;
	CHECK_MSG(during, "the send/recv pair completed only after the insert "
		  "(%llu ms) gave up", (unsigned long long) u.took_ms);
	/* at the peer timeout, not after the retry due past it (at 1260 ms) */
	CHECK_MSG(u.took_ms < 1200, "insert gave up after %llu ms",
		  (unsigned long long) u.took_ms);
	return true;
}

static void test_insert_waits_unlocked(void)
{
	char name[64];
	size_t len = sizeof(name);
	struct fid_ep *peer = NULL;
	fi_addr_t fa_peer = FI_ADDR_NOTAVAIL;
	struct fx b;

	CHECK_EQ(box_open(&b, NULL, NULL, 0, false), 0);
	if (!b.domain || box_ep(&b, &b.ep) || box_ep(&b, &peer))
		goto out;
	CHECK_EQ(fi_getname(&peer->fid, name, &len), 0);
	CHECK_EQ(fi_av_insert(b.av, name, 1, &fa_peer, 0, NULL), 1);
	for (int try = 1; !insert_waits_unlocked(&b, peer, fa_peer,
						 try == INSERT_TRIES); try++)
		printf("# insert: try %d was held off, again\n", try);
out:
	if (peer)
		fi_close(&peer->fid);
	fx_close(&b);
}

int main(void)
{
	/* Unanswered questions give up after a second. */
	setenv("FI_USB4_PEER_TIMEOUT", "1000", 1);
	test_node_service_forms();
	test_addr_str_info();
	test_addr_hints();
	test_bound_and_resolved();
	test_bind_elsewhere();
	test_malformed_strings();
	test_straddr_round_trip();
	test_insert_waits_unlocked();
	return usb4_test_done("test_addr");
}
