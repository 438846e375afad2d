/*
 * Unit tests of the udp link's rails (prov_usb4/src/link/usb4_udp_rails.c):
 * our rails pair with a peer's rail list by subnet (a chain's rails on
 * subnets we do not share are ignored, a routed peer keeps one path), bad
 * lists pair nothing; large DATA stripes round-robin over loopback sockets
 * while small datagrams and acks keep to the first path; a path whose
 * socket refuses is retired at once and the datagram goes on another; a
 * silent one is retired after the rail timeout, probed, and live again when
 * heard; a peer talking on a path is answered on it.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "usb4_udp_rails.h"
#include "usb4_test.h"

#define MS	1000000ull

static struct usb4_udp_addr addr4(const char *ip, uint16_t port)
{
	struct usb4_udp_addr a = { .family = 4, .port = port };

	inet_pton(AF_INET, ip, a.ip);
	return a;
}

/* Rails without sockets, for pairing: ip/prefix each. */
static void fake_rails(struct usb4_udp_rails *r, const char *const *ips,
		       const int *prefix, int n)
{
	memset(r, 0, sizeof(*r));
	r->epfd = -1;
	r->count = n;
	for (int i = 0; i < n; i++) {
		uint32_t mask = prefix[i] ? htonl(~0u << (32 - prefix[i])) : 0;

		r->rail[i].self = addr4(ips[i], 1000 + i);
		memcpy(r->rail[i].mask, &mask, 4);
	}
}

/* A peer's rail list as its handshake carries it. */
static struct usb4_rel_hello_ext rail_list(const struct usb4_udp_addr *a,
					   int n)
{
	struct usb4_wire_rails w = { .count = (uint8_t) n };
	struct usb4_rel_hello_ext ext;

	for (int i = 0; i < n; i++) {
		w.rail[i].family = a[i].family;
		w.rail[i].port = htole16(a[i].port);
		memcpy(w.rail[i].ip, a[i].ip, 16);
	}
	ext.len = (uint16_t) (4 + 20 * n);
	memcpy(ext.data, &w, ext.len);
	return ext;
}

/* Two cables to one peer, plus one of the peer's to a third host. */
static void test_pairing_by_subnet(void)
{
	static const char *const ours[] = { "10.77.1.1", "10.77.2.1" };
	static const int prefix[] = { 24, 24 };
	struct usb4_udp_addr theirs[] = {
		addr4("10.77.1.2", 7000), addr4("10.77.9.2", 7001),
		addr4("10.77.2.2", 7002),
	};
	struct usb4_rel_hello_ext ext = rail_list(theirs, 3);
	struct usb4_udp_rails r;
	struct usb4_udp_paths p;

	fake_rails(&r, ours, prefix, 2);
	usb4_udp_paths_init(&p, &theirs[0]);
	usb4_udp_paths_pair(&r, &p, &ext);
	CHECK_EQ(p.count, 2);
	CHECK(usb4_udp_addr_eq(&p.path[0].to, &theirs[0]) && !p.path[0].rail);
	CHECK(usb4_udp_addr_eq(&p.path[1].to, &theirs[2]));
	CHECK_EQ(p.path[1].rail, 1);
	CHECK_EQ(usb4_udp_paths_find(&p, 1, &theirs[2]), 1);
	CHECK_EQ(usb4_udp_paths_find(&p, 0, &theirs[2]), -1);	/* wrong rail */
	CHECK_EQ(usb4_udp_paths_find(&p, 1, &theirs[1]), -1);	/* unpaired */
	CHECK_EQ(usb4_udp_paths_find(&p, 0, &theirs[0]), 0);
	/* Once: a later list changes nothing. */
	ext = rail_list(theirs, 2);
	usb4_udp_paths_pair(&r, &p, &ext);
	CHECK_EQ(p.count, 2);
}

/* A chain: our tb0 and tb1 go to different neighbours; a neighbour's list
 * shares only the primary's subnet: one path.  A peer whose primary is
 * not on our primary's subnet (routed) keeps the primary path alone. */
static void test_pairing_chain_and_routed(void)
{
	static const char *const ours[] = { "10.77.1.2", "10.77.2.1" };
	static const int prefix[] = { 24, 24 };
	struct usb4_udp_addr left[] = {		/* the host before us */
		addr4("10.77.1.1", 7000), addr4("10.77.0.1", 7001),
	};
	struct usb4_udp_addr far[] = {		/* two hops away */
		addr4("10.77.3.2", 7000), addr4("10.77.2.9", 7001),
	};
	struct usb4_rel_hello_ext ext = rail_list(left, 2);
	struct usb4_udp_rails r;
	struct usb4_udp_paths p;

	fake_rails(&r, ours, prefix, 2);
	usb4_udp_paths_init(&p, &left[0]);
	usb4_udp_paths_pair(&r, &p, &ext);
	CHECK_EQ(p.count, 1);
	ext = rail_list(far, 2);
	usb4_udp_paths_init(&p, &far[0]);
	usb4_udp_paths_pair(&r, &p, &ext);
	CHECK_EQ(p.count, 1);
	/* A list whose first rail is not the address we know the peer by. */
	ext = rail_list(left, 2);
	usb4_udp_paths_init(&p, &far[0]);
	usb4_udp_paths_pair(&r, &p, &ext);
	CHECK_EQ(p.count, 1);
}

/* Malformed lists pair nothing (and never read past what came). */
static void test_pairing_bad_lists(void)
{
	static const char *const ours[] = { "10.77.1.1", "10.77.2.1" };
	static const int prefix[] = { 24, 24 };
	struct usb4_udp_addr theirs[] = {
		addr4("10.77.1.2", 7000), addr4("10.77.2.2", 7002),
	};
	struct usb4_rel_hello_ext good = rail_list(theirs, 2), ext;
	struct usb4_udp_rails r;
	struct usb4_udp_paths p;

	fake_rails(&r, ours, prefix, 2);
	for (int c = 0; c < 6; c++) {
		ext = good;
		switch (c) {
		case 0: ext.data[0] = 5; break;		/* count > 4 */
		case 1: ext.data[0] = 0; break;		/* count 0 */
		case 2: ext.len -= 1; break;		/* length disagrees */
		case 3: ext.data[4 + 20] = 7; break;	/* family 7 */
		case 4: memset(&ext.data[4 + 20 + 2], 0, 2); break; /* port 0 */
		case 5: ext.len = 3; break;		/* no room for a rail */
		}
		usb4_udp_paths_init(&p, &theirs[0]);
		usb4_udp_paths_pair(&r, &p, &ext);
		CHECK_MSG(p.count == 1, "bad list %d paired", c);
	}
	/* A rail without a netmask reaches nobody directly. */
	memset(r.rail[1].mask, 0, 16);
	usb4_udp_paths_init(&p, &theirs[0]);
	usb4_udp_paths_pair(&r, &p, &good);
	CHECK_EQ(p.count, 1);
}

/* ---- over loopback sockets ---- */

static struct usb4_iface lo_iface(const char *name, const char *ip)
{
	struct usb4_iface f = { .family = AF_INET, .mtu = 65536 };

	snprintf(f.name, sizeof(f.name), "%s", name);
	inet_pton(AF_INET, ip, f.ip);
	inet_pton(AF_INET, "255.0.0.0", f.mask);
	return f;
}

struct counter {
	int n;
	size_t len;
};

static void count_rx(void *arg, const struct usb4_udp_addr *from,
		     const struct iovec *dgram, int count)
{
	struct counter *c = arg;

	(void) from;
	c->n++;
	c->len += usb4_iov_len(dgram, (size_t) count);
}

/* Datagrams waiting on sock (after a short wait for loopback). */
static int drain(struct usb4_udp_sock *sock)
{
	struct counter c = { 0 };
	struct pollfd pfd = { .fd = usb4_udp_sock_fd(sock), .events = POLLIN };
	int got;

	while (poll(&pfd, 1, 20) > 0 &&
	       (got = usb4_udp_poll(sock, NULL, count_rx, &c, 8)) > 0)
		;
	return c.n;
}

/* A rel datagram: header (type, seq) and len payload bytes. */
static int send_rel(struct usb4_udp_rails *r, struct usb4_udp_paths *p,
		    uint8_t type, uint32_t seq, size_t len, uint64_t now)
{
	static char payload[16384];
	struct usb4_wire_rel h = { .version = USB4_WIRE_VERSION, .type = type,
				   .seq = htole32(seq) };
	struct iovec iov[2] = { { &h, sizeof(h) }, { payload, len } };

	return usb4_udp_paths_send(r, p, iov, 2, now);
}

struct two_rails {
	struct usb4_udp_rails r;	/* ours: 127.0.0.1, 127.0.0.2 */
	struct usb4_udp_sock *peer[2];	/* the peer's: 127.0.0.3, .4 */
	struct usb4_udp_paths p;
};

static void two_rails_open(struct two_rails *t)
{
	struct usb4_iface a = lo_iface("lo", "127.0.0.1"),
			  b = lo_iface("lo-b", "127.0.0.2"),
			  c = lo_iface("peer0", "127.0.0.3"),
			  d = lo_iface("peer1", "127.0.0.4");
	struct usb4_udp_addr theirs[2];
	struct usb4_rel_hello_ext ext;

	CHECK_EQ(usb4_udp_rails_open(&t->r, &a, 0, false, NULL), 0);
	CHECK_EQ(usb4_udp_rails_add(&t->r, &b, NULL), 0);
	CHECK_EQ(usb4_udp_rails_add(&t->r, &a, NULL), -FI_EINVAL); /* again */
	usb4_udp_rails_ready(&t->r);
	CHECK_EQ(t->r.count, 2);
	CHECK(usb4_udp_rails_ext(&t->r) != NULL);
	CHECK_EQ(usb4_udp_rails_ext(&t->r)->len, 4 + 2 * 20);
	CHECK(usb4_udp_rails_fd(&t->r) >= 0);
	CHECK_EQ(usb4_udp_sock_open(&t->peer[0], &c, NULL), 0);
	CHECK_EQ(usb4_udp_sock_open(&t->peer[1], &d, NULL), 0);
	usb4_udp_sock_addr(t->peer[0], &theirs[0]);
	usb4_udp_sock_addr(t->peer[1], &theirs[1]);
	ext = rail_list(theirs, 2);
	usb4_udp_paths_init(&t->p, &theirs[0]);
	usb4_udp_paths_pair(&t->r, &t->p, &ext);
	CHECK_EQ(t->p.count, 2);
	CHECK(!t->p.path[1].live);	/* until the session is heard on it */
	usb4_udp_path_heard(&t->r, &t->p, 1, 1);
	CHECK(t->p.path[1].live);
	CHECK_EQ(t->r.rail[1].stats.revived, 0);
}

static void two_rails_close(struct two_rails *t)
{
	usb4_udp_sock_close(t->peer[0]);
	usb4_udp_sock_close(t->peer[1]);
	usb4_udp_rails_close(&t->r);
}

/* Large DATA alternates, small DATA and acks keep to path 0; a DATA sent
 * again counts as a retransmission of its rail; the epoll set wakes for
 * either socket. */
static void test_striping(void)
{
	struct two_rails t;
	struct pollfd pfd;

	two_rails_open(&t);
	for (uint32_t seq = 0; seq < 10; seq++)
		CHECK_EQ(send_rel(&t.r, &t.p, USB4_REL_DATA, seq, 9000, 1), 0);
	CHECK_EQ(drain(t.peer[0]), 5);
	CHECK_EQ(drain(t.peer[1]), 5);
	for (uint32_t seq = 10; seq < 14; seq++)
		CHECK_EQ(send_rel(&t.r, &t.p, USB4_REL_DATA, seq, 100, 1), 0);
	CHECK_EQ(send_rel(&t.r, &t.p, USB4_REL_ACK, 14, 0, 1), 0);
	CHECK_EQ(drain(t.peer[0]), 5);
	CHECK_EQ(drain(t.peer[1]), 0);
	CHECK_EQ(t.r.rail[0].stats.sent, 10);
	CHECK_EQ(t.r.rail[1].stats.sent, 5);
	CHECK_EQ(t.r.rail[1].stats.bytes_sent, 5 * (9000 + 48));
	CHECK_EQ(t.r.rail[0].stats.retransmitted + t.r.rail[1].stats.retransmitted,
		 0);
	CHECK_EQ(send_rel(&t.r, &t.p, USB4_REL_DATA, 3, 9000, 1), 0);
	CHECK_EQ(t.r.rail[0].stats.retransmitted + t.r.rail[1].stats.retransmitted,
		 1);
	drain(t.peer[0]);
	drain(t.peer[1]);
	/* The epoll set is readable when the second rail's socket is. */
	{
		struct usb4_udp_addr to;
		struct iovec one = { "x", 1 };

		usb4_udp_sock_addr(t.r.rail[1].sock, &to);
		CHECK_EQ(usb4_udp_send(t.peer[1], &to, &one, 1), 0);
	}
	pfd = (struct pollfd) { .fd = usb4_udp_rails_fd(&t.r), .events = POLLIN };
	CHECK_EQ(poll(&pfd, 1, 1000), 1);
	two_rails_close(&t);
}

/* A socket that refuses (port 0 stands for a downed interface: no route)
 * retires its path at once; the datagram goes on the other one, and the
 * frames in flight are to be sent again. */
static void test_send_error_retires(void)
{
	struct two_rails t;

	two_rails_open(&t);
	CHECK_EQ(send_rel(&t.r, &t.p, USB4_REL_DATA, 0, 9000, 1), 0);
	t.p.path[1].to.port = 0;
	CHECK_EQ(send_rel(&t.r, &t.p, USB4_REL_DATA, 1, 9000, 2), 0);
	CHECK(!t.p.path[1].live);
	CHECK(t.p.resend);
	CHECK_EQ(t.r.rail[1].stats.retired, 1);
	CHECK_EQ(t.r.rail[1].stats.send_errors, 1);
	CHECK_EQ(drain(t.peer[0]), 2);
	for (uint32_t seq = 2; seq < 6; seq++)
		CHECK_EQ(send_rel(&t.r, &t.p, USB4_REL_DATA, seq, 9000, 3), 0);
	CHECK_EQ(drain(t.peer[0]), 4);	/* all on the live path */
	two_rails_close(&t);
}

/* DATA on a path and nothing heard on it for the rail timeout: retired,
 * probed every probe_ns, live again when heard; a path we were silent on
 * too long owes the peer an answer. */
static void test_silence_retires_probe_revives(void)
{
	struct two_rails t;
	uint64_t t0 = 1000 * MS, timeout;

	two_rails_open(&t);
	timeout = t.r.timeout_ns;
	CHECK(timeout > 0 && t.r.probe_ns < timeout && t.r.answer_ns < timeout);
	CHECK_EQ(usb4_udp_paths_deadline(&t.r, &t.p), UINT64_MAX);
	CHECK_EQ(send_rel(&t.r, &t.p, USB4_REL_DATA, 0, 9000, t0), 0);
	CHECK_EQ(send_rel(&t.r, &t.p, USB4_REL_DATA, 1, 9000, t0), 0);
	CHECK_EQ(usb4_udp_paths_deadline(&t.r, &t.p), t0 + timeout);
	/* A timer that read the clock before the send (its rel timer sent
	 * it) sees the send in its future: no silence, nothing owed. */
	CHECK_EQ(usb4_udp_paths_due(&t.r, &t.p, t0 - 1), 0);
	CHECK(t.p.path[0].live && t.p.path[1].live);
	CHECK(!usb4_udp_path_heard(&t.r, &t.p, 1, t0 - 1));
	t.p.path[1].waiting = t0;
	/* Path 0 hears an answer, path 1 does not. */
	CHECK(!usb4_udp_path_heard(&t.r, &t.p, 0, t0 + 1));
	CHECK_EQ(usb4_udp_paths_due(&t.r, &t.p, t0 + timeout - 1), 0);
	CHECK(t.p.path[1].live);
	CHECK_EQ(usb4_udp_paths_due(&t.r, &t.p, t0 + timeout), 0);
	CHECK(!t.p.path[1].live && t.p.path[0].live);
	CHECK(t.p.resend);
	CHECK_EQ(usb4_udp_paths_deadline(&t.r, &t.p),
		 t0 + timeout + t.r.probe_ns);
	CHECK_EQ(usb4_udp_paths_due(&t.r, &t.p, t0 + timeout + t.r.probe_ns),
		 1u << 1);
	CHECK_EQ(usb4_udp_paths_due(&t.r, &t.p, t0 + timeout + t.r.probe_ns),
		 0);	/* the next probe is a probe_ns later */
	/* Heard again (an authenticated datagram on it): live, and after so
	 * long a silence on it we owe the peer an answer there. */
	CHECK(usb4_udp_path_heard(&t.r, &t.p, 1, t0 + 2 * timeout));
	CHECK(t.p.path[1].live);
	CHECK_EQ(t.r.rail[1].stats.revived, 1);
	CHECK_EQ(usb4_udp_paths_deadline(&t.r, &t.p), UINT64_MAX);
	/* Just said something on it: no answer owed. */
	CHECK_EQ(send_rel(&t.r, &t.p, USB4_REL_ACK, 0, 0, t0 + 3 * timeout), 0);
	CHECK(usb4_udp_paths_find(&t.p, 0, &t.p.path[0].to) == 0);
	t.p.forced = 1;
	CHECK_EQ(send_rel(&t.r, &t.p, USB4_REL_ACK, 0, 0, t0 + 3 * timeout), 0);
	t.p.forced = -1;
	CHECK(!usb4_udp_path_heard(&t.r, &t.p, 1, t0 + 3 * timeout + 1));
	CHECK_EQ(drain(t.peer[1]), 2);	/* the striped DATA and the forced ack */
	drain(t.peer[0]);
	two_rails_close(&t);
}

/* One rail: one path, no list in the handshake, nothing to time. */
/* A rail the peer's list names is its word only: nothing large goes
 * there before the session is heard on it, only the probe asking it to
 * answer (due at once); then it stripes. */
static void test_listed_rail_verified_first(void)
{
	struct two_rails t;
	struct usb4_udp_rails *r = &t.r;
	struct usb4_udp_paths *p = &t.p;

	two_rails_open(&t);
	p->path[1].live = false;	/* as pairing leaves it */
	p->path[1].verified = false;
	for (uint32_t seq = 0; seq < 4; seq++)
		CHECK_EQ(send_rel(r, p, USB4_REL_DATA, seq, 9000, 1), 0);
	CHECK_EQ(drain(t.peer[0]), 4);
	CHECK_EQ(drain(t.peer[1]), 0);
	CHECK_EQ(usb4_udp_paths_deadline(r, p), 0);
	CHECK_EQ(usb4_udp_paths_due(r, p, 2), 1u << 1);
	usb4_udp_path_heard(r, p, 1, 3);
	for (uint32_t seq = 4; seq < 8; seq++)
		CHECK_EQ(send_rel(r, p, USB4_REL_DATA, seq, 9000, 4), 0);
	CHECK_EQ(drain(t.peer[0]), 2);
	CHECK_EQ(drain(t.peer[1]), 2);
	CHECK_EQ(r->rail[1].stats.retired, 0);
	CHECK_EQ(r->rail[1].stats.revived, 0);
	two_rails_close(&t);
}

static void test_single_rail(void)
{
	struct usb4_iface a = lo_iface("lo", "127.0.0.1");
	struct usb4_udp_rails r;
	struct usb4_udp_paths p;
	struct usb4_udp_addr to = addr4("127.0.0.1", 9);

	CHECK_EQ(usb4_udp_rails_open(&r, &a, 0, false, NULL), 0);
	usb4_udp_rails_ready(&r);
	CHECK_EQ(r.count, 1);
	CHECK(usb4_udp_rails_ext(&r) == NULL);
	CHECK_EQ(usb4_udp_rails_fd(&r), usb4_udp_sock_fd(r.rail[0].sock));
	usb4_udp_paths_init(&p, &to);
	CHECK_EQ(send_rel(&r, &p, USB4_REL_DATA, 0, 9000, 1), 0);
	CHECK_EQ(usb4_udp_paths_due(&r, &p, 1ull << 62), 0);
	CHECK_EQ(usb4_udp_paths_deadline(&r, &p), UINT64_MAX);
	CHECK(!usb4_udp_path_heard(&r, &p, 0, 1ull << 62));
	usb4_udp_rails_close(&r);
}

int main(void)
{
	test_pairing_by_subnet();
	test_pairing_chain_and_routed();
	test_pairing_bad_lists();
	test_striping();
	test_send_error_retires();
	test_silence_retires_probe_revives();
	test_listed_rail_verified_first();
	test_single_rail();
	return usb4_test_done("test_udp_rails");
}
