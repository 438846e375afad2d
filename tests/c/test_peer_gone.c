/*
 * A peer on another host that goes away: every operation involving it ends,
 * on the side that only waits to receive too.  Two processes on this host
 * talk over udp on loopback (FI_USB4_IFACE=lo; each inserts the other's
 * address with another host's id, so the udp link carries them), with a
 * short peer timeout; the parent holds a receive directed at the child
 * (FI_DIRECTED_RECV) that the child never sends to.
 *
 *   killed  kill -9 the child: the parent's probes meet the kernel's port
 *           unreachable, which the link confirms by probes, so the receive
 *           fails with FI_EHOSTUNREACH in well under the peer timeout; a
 *           receive posted later naming the child fails at once, and so
 *           does a send.  (Before: the receive stayed posted forever.)
 *   closed  the child closes its endpoint: it tells the parent (FIN), whose
 *           receive fails with FI_ECONNRESET at once; neither close lingers
 *           for the peer timeout, and the parent logs "closed its endpoint",
 *           never "stopped answering".
 *   forged  a forged ICMP port unreachable naming the live child (sent from
 *           a raw socket, as an attacker on the cable could) changes
 *           nothing: the parent's probes are answered, the receive stays
 *           posted, messages still flow; the parent's close line counts the
 *           hint as refuted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>

#include <rdma/fi_tagged.h>

#include "usb4_test.h"
#include "usb4_fixture.h"
#include "../../prov_usb4/src/wire.h"

#define PEER_TIMEOUT_MS	3000
#define KEEPALIVE_MS	200
#define CONFIRM_MS	300
#define TAG_PING	1
#define TAG_PONG	2
#define TAG_NEVER	9

enum mode { MODE_KILLED, MODE_CLOSED, MODE_FORGED };

struct child {
	pid_t pid;
	int to, from;		/* pipes to and from it */
	char addr[FX_ADDR_MAX];
};

static bool read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n <= 0)
			return false;
		p += n;
		len -= (size_t) n;
	}
	return true;
}

/* One completion within ms (polling gently): 1, 0 with *err filled, or
 * -FI_ETIMEDOUT. */
static int wait_cqe(struct fid_cq *cq, struct fi_cq_err_entry *err, int ms)
{
	uint64_t end = fx_now_ms() + (uint64_t) ms;
	struct fi_cq_tagged_entry e;

	do {
		ssize_t ret = fi_cq_read(cq, &e, 1);

		if (ret == 1)
			return 1;
		if (ret == -FI_EAVAIL) {
			memset(err, 0, sizeof(*err));
			return fi_cq_readerr(cq, err, 0) == 1 ? 0 : -FI_EOTHER;
		}
		usleep(200);
	} while (fx_now_ms() < end);
	return -FI_ETIMEDOUT;
}

/* The child: answers every PING from the parent with a PONG until it is
 * killed, or (MODE_CLOSED) until the parent says close: it closes, tells
 * how long that took, and exits. */
static int child_main(enum mode mode, int from_parent, int to_parent)
{
	struct fx c;
	char paddr[FX_ADDR_MAX];
	fi_addr_t parent;
	uint64_t in = 0, out = 0, t0, took;
	struct fi_cq_err_entry err;
	char cmd;

	if (fx_open(&c, FI_TAGGED | FI_DIRECTED_RECV, 0) ||
	    write(to_parent, c.addr, FX_ADDR_MAX) != FX_ADDR_MAX ||
	    !read_all(from_parent, paddr, sizeof(paddr)))
		return 2;
	fx_other_host(paddr);
	parent = fx_insert(&c, paddr);
	if (parent == FI_ADDR_NOTAVAIL)
		return 3;
	for (;;) {
		if (fi_trecv(c.ep, &in, sizeof(in), NULL, parent, TAG_PING, 0,
			     NULL))
			return 4;
		while (wait_cqe(c.cq, &err, 100) != 1) {
			struct pollfd p = { .fd = from_parent, .events = POLLIN };

			if (mode != MODE_CLOSED || poll(&p, 1, 0) != 1)
				continue;
			if (!read_all(from_parent, &cmd, 1))
				return 5;
			t0 = fx_now_ms();
			fx_close(&c);
			took = fx_now_ms() - t0;
			return write(to_parent, &took, sizeof(took)) ==
			       sizeof(took) ? 0 : 6;
		}
		out = in + 1;
		while (fi_tsend(c.ep, &out, sizeof(out), NULL, parent,
				TAG_PONG, NULL) == -FI_EAGAIN)
			fi_cq_read(c.cq, NULL, 0);
		if (wait_cqe(c.cq, &err, FX_TIMEOUT_MS) != 1)
			return 7;
	}
}

static bool spawn(struct child *ch, enum mode mode)
{
	int to[2], from[2];

	if (pipe(to) || pipe(from))
		return false;
	ch->pid = fork();
	if (ch->pid == 0) {
		close(to[1]);
		close(from[0]);
		_exit(child_main(mode, to[0], from[1]));
	}
	close(to[0]);
	close(from[1]);
	ch->to = to[1];
	ch->from = from[0];
	if (!read_all(ch->from, ch->addr, sizeof(ch->addr)))
		return false;
	fx_other_host(ch->addr);
	return true;
}

static void reap(struct child *ch, bool kill_it)
{
	if (kill_it)
		kill(ch->pid, SIGKILL);
	waitpid(ch->pid, NULL, 0);
	close(ch->to);
	close(ch->from);
}

/* One PING answered by a PONG: the session works both ways. */
static bool ping(struct fx *p, fi_addr_t child, uint64_t n)
{
	struct fi_cq_err_entry err;
	uint64_t in = 0;

	if (fi_trecv(p->ep, &in, sizeof(in), NULL, child, TAG_PONG, 0, NULL) ||
	    fi_tsend(p->ep, &n, sizeof(n), NULL, child, TAG_PING, NULL))
		return false;
	return wait_cqe(p->cq, &err, FX_TIMEOUT_MS) == 1 &&
	       wait_cqe(p->cq, &err, FX_TIMEOUT_MS) == 1 && in == n + 1;
}

/* The parent's log from here on goes to a file (the child's stays). */
static int log_to_file(char *path)
{
	int fd = mkstemp(path), saved = dup(2);

	fflush(stderr);
	dup2(fd, 2);
	close(fd);
	return saved;
}

/* The log back on the old stderr; its text (caller frees). */
static char *log_back(int saved, const char *path)
{
	FILE *f;
	char *text = calloc(1, 1 << 20);
	size_t n = 0;

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	f = fopen(path, "r");
	if (f) {
		n = fread(text, 1, (1 << 20) - 1, f);
		fclose(f);
	}
	text[n] = 0;
	unlink(path);
	return text;
}

/* Prints the log's lines that hold what the test looks at. */
static void show(const char *name, const char *log)
{
	const char *keys[] = { "udp: sent", "closed its endpoint",
			       "stopped answering" };

	for (const char *line = log; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t) (end - line) : strlen(line);

		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			if (memmem(line, len, keys[k], strlen(keys[k]))) {
				printf("  %s log: %.*s\n", name, (int) len,
				       line);
				break;
			}
		}
		line += len + (end != NULL);
	}
}

/* ---- a forged ICMP port unreachable ---- */

static uint16_t csum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t) (p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t) p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t) ~sum);
}

/* Tells the kernel, as a router would, that a datagram from `from` to `to`
 * (IPv4 udp addresses of endpoints) met a closed port; false when this
 * process may not send raw packets. */
static bool forge_unreachable(const struct usb4_wire_addr *from,
			      const struct usb4_wire_addr *to)
{
	struct {
		struct icmphdr icmp;
		struct iphdr ip;
		struct udphdr udp;
	} __attribute__((packed)) pkt = { 0 };
	struct sockaddr_in dst = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	bool sent;

	if (fd < 0)
		return false;
	pkt.icmp.type = ICMP_DEST_UNREACH;
	pkt.icmp.code = ICMP_PORT_UNREACH;
	pkt.ip.version = 4;
	pkt.ip.ihl = 5;
	pkt.ip.ttl = 64;
	pkt.ip.protocol = IPPROTO_UDP;
	pkt.ip.tot_len = htons(sizeof(pkt.ip) + sizeof(pkt.udp) + 8);
	memcpy(&pkt.ip.saddr, from->udp_ip, 4);
	memcpy(&pkt.ip.daddr, to->udp_ip, 4);
	pkt.ip.check = csum(&pkt.ip, sizeof(pkt.ip));
	pkt.udp.source = htons(le16toh(from->udp_port));
	pkt.udp.dest = htons(le16toh(to->udp_port));
	pkt.udp.len = htons(sizeof(pkt.udp) + 8);
	pkt.icmp.checksum = csum(&pkt, sizeof(pkt));
	memcpy(&dst.sin_addr, from->udp_ip, 4);
	sent = sendto(fd, &pkt, sizeof(pkt), 0, (void *) &dst, sizeof(dst)) ==
	       (ssize_t) sizeof(pkt);
	close(fd);
	return sent;
}

/* ---- the cases ---- */

struct run {
	struct child ch;
	struct fx p;
	fi_addr_t child;
	char log_path[64];
	int saved_stderr;
};

/* Child up, parent's endpoint open, both inserted, one PING answered; a
 * receive directed at the child posted (never matched). */
static bool run_start(struct run *r, enum mode mode)
{
	static uint64_t never;

	memset(r, 0, sizeof(*r));
	if (!spawn(&r->ch, mode))
		return false;
	strcpy(r->log_path, "/tmp/usb4_peer_gone_XXXXXX");
	r->saved_stderr = log_to_file(r->log_path);
	if (fx_open(&r->p, FI_TAGGED | FI_DIRECTED_RECV, 0) ||
	    write(r->ch.to, r->p.addr, FX_ADDR_MAX) != FX_ADDR_MAX)
		return false;
	r->child = fx_insert(&r->p, r->ch.addr);
	return r->child != FI_ADDR_NOTAVAIL && ping(&r->p, r->child, 10) &&
	       fi_trecv(r->p.ep, &never, sizeof(never), NULL, r->child,
			TAG_NEVER, 0, NULL) == 0;
}

/* Closes the parent's endpoint; its log (caller frees); *took: the close. */
static char *run_end(struct run *r, const char *name, uint64_t *took)
{
	uint64_t t0 = fx_now_ms();
	char *log;

	fx_close(&r->p);
	*took = fx_now_ms() - t0;
	log = log_back(r->saved_stderr, r->log_path);
	show(name, log);
	return log;
}

static void test_killed(void)
{
	struct fi_cq_err_entry err;
	struct run r;
	uint64_t t0, took, x = 0;

	CHECK(run_start(&r, MODE_KILLED));
	reap(&r.ch, true);
	t0 = fx_now_ms();
	CHECK_EQ(wait_cqe(r.p.cq, &err, PEER_TIMEOUT_MS * 3), 0);
	took = fx_now_ms() - t0;
	CHECK_EQ(err.err, FI_EHOSTUNREACH);
	CHECK(err.flags & FI_RECV);
	/* probes after KEEPALIVE_MS meet the port unreachable, confirmed
	 * within CONFIRM_MS: well under the peer timeout */
	CHECK(took < PEER_TIMEOUT_MS / 2);
	/* later operations naming the dead peer end at once */
	CHECK_EQ(fi_trecv(r.p.ep, &x, sizeof(x), NULL, r.child, TAG_NEVER, 0,
			  NULL), 0);
	CHECK_EQ(wait_cqe(r.p.cq, &err, 100), 0);
	CHECK_EQ(err.err, FI_EHOSTUNREACH);
	CHECK_EQ(fi_tsend(r.p.ep, &x, sizeof(x), NULL, r.child, TAG_PING,
			  NULL), -FI_EHOSTUNREACH);
	free(run_end(&r, "killed", &t0));
	printf("  killed: the receive directed at the killed peer failed "
	       "after %llu ms (peer timeout %d ms); close took %llu ms\n",
	       (unsigned long long) took, PEER_TIMEOUT_MS,
	       (unsigned long long) t0);
	CHECK(t0 < 1000);
}

static void test_closed(void)
{
	struct fi_cq_err_entry err;
	struct run r;
	uint64_t t0, took, child_took = UINT64_MAX, parent_took;
	char *log;

	CHECK(run_start(&r, MODE_CLOSED));
	t0 = fx_now_ms();
	CHECK_EQ(write(r.ch.to, "c", 1), 1);
	CHECK_EQ(wait_cqe(r.p.cq, &err, PEER_TIMEOUT_MS * 3), 0);
	took = fx_now_ms() - t0;
	CHECK_EQ(err.err, FI_ECONNRESET);
	CHECK(read_all(r.ch.from, &child_took, sizeof(child_took)));
	reap(&r.ch, false);
	log = run_end(&r, "closed", &parent_took);
	printf("  closed: receive failed %llu ms after the child was told to "
	       "close; child close %llu ms, parent close %llu ms\n",
	       (unsigned long long) took, (unsigned long long) child_took,
	       (unsigned long long) parent_took);
	CHECK(took < 1000);
	CHECK(child_took < 1000);
	CHECK(parent_took < 1000);
	CHECK(strstr(log, "closed its endpoint") != NULL);
	CHECK(strstr(log, "stopped answering") == NULL);
	CHECK(strstr(log, "fins received 1") != NULL);
	free(log);
}

static void test_forged(void)
{
	struct fi_cq_err_entry err;
	struct run r;
	uint64_t took;
	char *log;
	bool forged;

	CHECK(run_start(&r, MODE_FORGED));
	forged = forge_unreachable((struct usb4_wire_addr *) r.p.addr,
				   (struct usb4_wire_addr *) r.ch.addr);
	if (!forged)
		printf("SKIP forged: no raw socket here\n");
	/* the probes go, the child answers: nothing ends */
	CHECK_EQ(wait_cqe(r.p.cq, &err, 4 * CONFIRM_MS), -FI_ETIMEDOUT);
	CHECK(ping(&r.p, r.child, 20));
	reap(&r.ch, true);
	CHECK_EQ(wait_cqe(r.p.cq, &err, PEER_TIMEOUT_MS * 3), 0);
	log = run_end(&r, "forged", &took);
	if (forged) {
		CHECK(strstr(log, "hints refuted 1") != NULL);
	}
	free(log);
}

int main(void)
{
	char port[16];

	alarm(120);
	setenv("FI_USB4_IFACE", "lo", 1);
	snprintf(port, sizeof(port), "%d", PEER_TIMEOUT_MS);
	setenv("FI_USB4_PEER_TIMEOUT", port, 1);
	snprintf(port, sizeof(port), "%d", KEEPALIVE_MS);
	setenv("FI_USB4_KEEPALIVE", port, 1);
	snprintf(port, sizeof(port), "%d", CONFIRM_MS);
	setenv("FI_USB4_UNREACHABLE_CONFIRM", port, 1);
	setenv("FI_LOG_LEVEL", "info", 1);
	test_killed();
	test_closed();
	test_forged();
	return usb4_test_done("test_peer_gone");
}
