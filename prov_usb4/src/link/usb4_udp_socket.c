/*
 * The udp link's socket: one non-blocking UDP socket per endpoint, bound to
 * the interface's address on a port the kernel picks.  Datagrams are opaque
 * here; faults for tests (FI_USB4_FAULTS) are injected on the receive side.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "usb4_udp.h"
#include "usb4_udp_gso.h"

#define USB4_UDP_BATCH		8	/* datagrams per recvmmsg */
#define USB4_UDP_MAX		65507	/* largest UDP payload over IPv4 */
#define USB4_UDP_SOCKBUF	(8 << 20)

/* One received datagram: where its bytes went. */
struct rx_dgram {
	struct iovec piece[USB4_UDP_PIECES_MAX];
	int count;
	size_t len;
	bool dropped;		/* by the fault injector */
	int hole_piece;		/* the piece in a hole, or -1 */
	char *spare;		/* where that piece fits in the slot's buffer */
};

struct usb4_udp_sock {
	int fd;
	struct usb4_udp_addr self;
	size_t datagram_max;
	int family;			/* AF_INET or AF_INET6 */
	char ifname[USB4_IFACE_NAME_MAX];	/* re-read on EMSGSIZE */
	struct usb4_udp_faults faults;
	bool faulty;
	uint64_t rng;
	char *bufs;			/* USB4_UDP_BATCH receive buffers */
	char *held;			/* a datagram held back to reorder it */
	size_t held_len;
	struct usb4_udp_addr held_from;
	/* The receive batch being handed up: datagrams from batch_next on are
	 * still to go (usb4_udp_evacuate). */
	struct rx_dgram batch[USB4_UDP_BATCH];
	int batch_count, batch_next;
	int rx_want;			/* datagrams the next recvmmsg asks for */
	usb4_udp_unreach_fn unreach;	/* hears of ICMP port unreachable */
	void *unreach_arg;
	struct usb4_udp_sock_stats stats;
	struct usb4_udp_gso gso;	/* datagrams batched for one send */
};

/* ---- addresses ---- */

socklen_t usb4_udp_sockaddr(const struct usb4_udp_addr *a,
			    struct sockaddr_storage *ss)
{
	/* Only the bytes the kernel reads (namelen), per datagram sent. */
	if (a->family == 4) {
		struct sockaddr_in *in = (void *) ss;
		memset(in, 0, sizeof(*in));
		in->sin_family = AF_INET;
		in->sin_port = htons(a->port);
		memcpy(&in->sin_addr, a->ip, 4);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (void *) ss;
	memset(in6, 0, sizeof(*in6));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(a->port);
	memcpy(&in6->sin6_addr, a->ip, 16);
	return sizeof(*in6);
}

static void from_sockaddr(const struct sockaddr_storage *ss,
			  struct usb4_udp_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *) ss;
		a->family = 4;
		a->port = ntohs(in->sin_port);
		memcpy(a->ip, &in->sin_addr, 4);
	} else {
		const struct sockaddr_in6 *in6 = (const void *) ss;
		a->family = 6;
		a->port = ntohs(in6->sin6_port);
		memcpy(a->ip, &in6->sin6_addr, 16);
	}
}

bool usb4_udp_addr_eq(const struct usb4_udp_addr *a,
		      const struct usb4_udp_addr *b)
{
	/* Constant lengths: compared inline, not by a memcmp call, for every
	 * datagram received (its path is found by its source). */
	if (a->family != b->family || a->port != b->port)
		return false;
	return a->family == 4 ? !memcmp(a->ip, b->ip, 4) :
				!memcmp(a->ip, b->ip, 16);
}

/* ---- faults ---- */

int usb4_udp_faults_parse(const char *spec, struct usb4_udp_faults *f)
{
	memset(f, 0, sizeof(*f));
	for (const char *p = spec ? spec : ""; *p; ) {
		char key[16];
		double v;
		int used = 0;

		if (sscanf(p, "%15[a-z]=%lf%n", key, &v, &used) != 2 ||
		    !(v >= 0 && v <= 1))	/* also refuses NaN */
			return -FI_EINVAL;
		if (!strcmp(key, "drop"))
			f->drop = v;
		else if (!strcmp(key, "dup"))
			f->dup = v;
		else if (!strcmp(key, "reorder"))
			f->reorder = v;
		else if (!strcmp(key, "corrupt"))
			f->corrupt = v;
		else
			return -FI_EINVAL;
		p += used;
		if (*p == ',')
			p++;
		else if (*p)
			return -FI_EINVAL;
	}
	return 0;
}

/* xorshift64*: cheap randomness for fault decisions. */
static double chance(struct usb4_udp_sock *sock)
{
	sock->rng ^= sock->rng >> 12;
	sock->rng ^= sock->rng << 25;
	sock->rng ^= sock->rng >> 27;
	return (double) ((sock->rng * 0x2545f4914f6cdd1dull) >> 11) /
	       (double) (1ull << 53);
}

/* ---- open and close ---- */

static int bind_socket(struct usb4_udp_sock *sock, const struct usb4_iface *iface,
		       uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int size = USB4_UDP_SOCKBUF;

	sock->self.family = iface->family == AF_INET ? 4 : 6;
	memcpy(sock->self.ip, iface->ip, 16);
	sock->self.port = port;
	sock->fd = socket(iface->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			  0);
	if (sock->fd < 0)
		return -errno;
	/* Large buffers absorb bursts of 64 KiB datagrams; root may exceed
	 * rmem_max, others get what the kernel allows. */
	if (setsockopt(sock->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)))
		setsockopt(sock->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (setsockopt(sock->fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)))
		setsockopt(sock->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	/* ICMP errors (a peer's port unreachable) are queued for us. */
	if (usb4_udp_errqueue_on(sock->fd, iface->family))
		USB4_WARN(FI_LOG_EP_CTRL, "udp: no ICMP errors on this socket "
			  "(%s): a peer that exits is found by probes only\n",
			  strerror(errno));
	if (usb4_udp_mtu_no_fragments(sock->fd, iface->family))
		USB4_WARN(FI_LOG_EP_CTRL, "udp socket on %s: datagrams may be "
			  "split into IP fragments\n", iface->name);
	if (bind(sock->fd, (void *) &ss, usb4_udp_sockaddr(&sock->self, &ss)) ||
	    getsockname(sock->fd, (void *) &ss, &len))
		return errno == EADDRINUSE ? -FI_EADDRINUSE :
		       errno == EADDRNOTAVAIL ? -FI_EADDRNOTAVAIL : -errno;
	from_sockaddr(&ss, &sock->self);
	return 0;
}

static size_t datagram_max(const struct usb4_iface *iface)
{
	size_t headers = iface->family == AF_INET ? 20 + 8 : 40 + 8;
	size_t max = iface->mtu > headers ? iface->mtu - headers : 0;

	return max < USB4_UDP_MAX ? max : USB4_UDP_MAX;
}

int usb4_udp_sock_open(struct usb4_udp_sock **sockp,
		       const struct usb4_iface *iface,
		       const struct usb4_udp_faults *faults)
{
	return usb4_udp_sock_open_at(sockp, iface, 0, faults);
}

int usb4_udp_sock_open_at(struct usb4_udp_sock **sockp,
			  const struct usb4_iface *iface, uint16_t port,
			  const struct usb4_udp_faults *faults)
{
	struct usb4_udp_sock *sock = calloc(1, sizeof(*sock));
	int ret;

	if (!sock)
		return -FI_ENOMEM;
	sock->datagram_max = datagram_max(iface);
	sock->family = iface->family;
	memcpy(sock->ifname, iface->name, sizeof(sock->ifname));
	sock->ifname[sizeof(sock->ifname) - 1] = '\0';
	sock->bufs = malloc(USB4_UDP_BATCH * sock->datagram_max);
	sock->rx_want = 1;
	sock->held = malloc(sock->datagram_max);
	if (!sock->bufs || !sock->held) {
		ret = -FI_ENOMEM;
		goto err_free_link;
	}
	sock->fd = -1;
	ret = bind_socket(sock, iface, port);
	if (!ret)
		ret = usb4_udp_gso_init(&sock->gso, sock->fd,
					sock->datagram_max, usb4_params.udp_gso);
	if (ret)
		goto err_close_fd;
	if (faults) {
		sock->faults = *faults;
		sock->faulty = faults->drop || faults->dup || faults->reorder ||
			       faults->corrupt;
	}
	sock->rng = usb4_random64();
	*sockp = sock;
	return 0;

err_close_fd:
	USB4_WARN(FI_LOG_EP_CTRL, "udp socket on %s port %u: %s\n",
		  iface->name, port, fi_strerror(-ret));
	if (sock->fd >= 0)
		close(sock->fd);
err_free_link:
	free(sock->bufs);
	free(sock->held);
	free(sock);
	return ret;
}

void usb4_udp_sock_close(struct usb4_udp_sock *sock)
{
	if (!sock)
		return;
	usb4_udp_sock_flush(sock, false);
	usb4_udp_gso_fini(&sock->gso);
	close(sock->fd);
	free(sock->bufs);
	free(sock->held);
	free(sock);
}

void usb4_udp_sock_addr(const struct usb4_udp_sock *sock,
			struct usb4_udp_addr *addr)
{
	*addr = sock->self;
}

size_t usb4_udp_sock_datagram_max(const struct usb4_udp_sock *sock)
{
	return sock->datagram_max;
}

size_t usb4_udp_sock_path_max(const struct usb4_udp_sock *sock)
{
	size_t now = usb4_udp_mtu_datagram_max(sock->fd, sock->ifname,
					       sock->family);

	return now < sock->datagram_max ? now : sock->datagram_max;
}

int usb4_udp_sock_fd(const struct usb4_udp_sock *sock)
{
	return sock->fd;
}

void usb4_udp_sock_on_unreachable(struct usb4_udp_sock *sock,
				  usb4_udp_unreach_fn fn, void *arg)
{
	sock->unreach = fn;
	sock->unreach_arg = arg;
}

/* The socket's pending error was an ICMP error: what the error queue
 * holds goes to whoever listens.  Whether it was (errno after a failed
 * receive or send). */
static bool took_errors(struct usb4_udp_sock *sock, int err)
{
	int n;

	if (err != ECONNREFUSED && err != EHOSTUNREACH && err != ENETUNREACH &&
	    err != EHOSTDOWN && err != ENETDOWN && err != EPROTO)
		return false;
	n = usb4_udp_errqueue_drain(sock->fd, sock->unreach, sock->unreach_arg,
				    from_sockaddr);
	sock->stats.icmp_errors += (uint64_t) n;
	return true;
}

const struct usb4_udp_sock_stats *
usb4_udp_sock_stats(const struct usb4_udp_sock *sock)
{
	return &sock->stats;
}

/* ---- data ---- */

/*
 * A datagram of at most USB4_UDP_LINEAR_MAX bytes is put together here and
 * goes by sendto: the kernel then copies no message header and imports no
 * iovec array (a ping-pong's send and receive pair took 1.38 us against
 * 1.52 with sendmsg of a header and a payload piece, on the development VM).
 */
#define USB4_UDP_LINEAR_MAX	256

/* Sends msg once; a small one gathered into one buffer and by sendto,
 * one in one piece (rel's short send) by sendto from where it is. */
static ssize_t send_once(int fd, const struct msghdr *msg)
{
	char buf[USB4_UDP_LINEAR_MAX];
	size_t len = 0;

	if (msg->msg_iovlen == 1)
		return sendto(fd, msg->msg_iov[0].iov_base,
			      msg->msg_iov[0].iov_len, 0, msg->msg_name,
			      msg->msg_namelen);
	for (size_t i = 0; i < msg->msg_iovlen; i++) {
		const struct iovec *v = &msg->msg_iov[i];

		if (v->iov_len > sizeof(buf) - len)
			return sendmsg(fd, msg, 0);
		memcpy(buf + len, v->iov_base, v->iov_len);
		len += v->iov_len;
	}
	return sendto(fd, buf, len, 0, msg->msg_name, msg->msg_namelen);
}

int usb4_udp_send(struct usb4_udp_sock *sock, const struct usb4_udp_addr *to,
		  const struct iovec *iov, int count)
{
	struct sockaddr_storage ss;
	struct msghdr msg = {
		.msg_name = &ss,
		.msg_namelen = usb4_udp_sockaddr(to, &ss),
		.msg_iov = (struct iovec *) iov,
		.msg_iovlen = count,
	};

	usb4_udp_sock_flush(sock, false);	/* what was batched goes first */
	/* A pending ICMP error fails the send once, unsent: report, retry. */
	if (send_once(sock->fd, &msg) >= 0 ||
	    (took_errors(sock, errno) && send_once(sock->fd, &msg) >= 0)) {
		sock->stats.sent++;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
		sock->stats.send_again++;
		sock->stats.nobufs += errno == ENOBUFS;
		return -FI_EAGAIN;
	}
	return errno == EMSGSIZE ? -FI_EMSGSIZE : -FI_EIO;
}

int usb4_udp_send_more(struct usb4_udp_sock *sock,
		       const struct usb4_udp_addr *to, const struct iovec *iov,
		       int count)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (!sock->gso.on)
		return usb4_udp_send(sock, to, iov, count);
	len = usb4_udp_sockaddr(to, &ss);
	if (!usb4_udp_gso_add(&sock->gso, sock->fd, &ss, len, iov, count))
		return usb4_udp_send(sock, to, iov, count);
	sock->stats.sent++;
	return 0;
}

void usb4_udp_sock_flush(struct usb4_udp_sock *sock, bool only_ended)
{
	int ret;

	if (!usb4_udp_gso_pending(&sock->gso) ||
	    (only_ended && !sock->gso.closed))
		return;
	ret = usb4_udp_gso_flush(&sock->gso, sock->fd);
	if (ret && took_errors(sock, -ret))
		ret = usb4_udp_gso_flush(&sock->gso, sock->fd);
	if (ret) {
		sock->stats.send_again += ret == -EAGAIN || ret == -ENOBUFS;
		usb4_udp_gso_piecemeal(&sock->gso, sock->fd);
	}
}

const struct usb4_udp_gso_stats *
usb4_udp_sock_gso_stats(const struct usb4_udp_sock *sock)
{
	return &sock->gso.stats;
}

/* ---- receiving, in pieces ---- */


/* Byte i of the datagram. */
static char *rx_byte(struct rx_dgram *d, size_t i)
{
	for (int p = 0; p < d->count; p++) {
		if (i < d->piece[p].iov_len)
			return (char *) d->piece[p].iov_base + i;
		i -= d->piece[p].iov_len;
	}
	return NULL;
}

/* A copy of the whole datagram into the held buffer (for reordering). */
static void hold(struct usb4_udp_sock *sock, const struct rx_dgram *d,
		 const struct usb4_udp_addr *from)
{
	size_t off = 0;

	for (int p = 0; p < d->count; p++) {
		memcpy(sock->held + off, d->piece[p].iov_base,
		       d->piece[p].iov_len);
		off += d->piece[p].iov_len;
	}
	sock->held_len = off;
	sock->held_from = *from;
}

/*
 * Loss and corruption strike a whole receive batch before any datagram of it
 * is handed up, as on a wire.  (Part of a datagram may lie in a hole: a
 * byte flipped there later could land on data the core already took from
 * another datagram.)
 */
static void wire_faults(struct usb4_udp_sock *sock, struct rx_dgram *d)
{
	d->dropped = chance(sock) < sock->faults.drop;
	if (d->dropped) {
		sock->stats.faults_dropped++;
		return;
	}
	if (d->len && chance(sock) < sock->faults.corrupt) {
		*rx_byte(d, (size_t) (chance(sock) * d->len) % d->len) ^= 0x5a;
		sock->stats.faults_corrupted++;
	}
}

/* Hands a datagram up, reordered or doubled when faults are configured. */
static void deliver(struct usb4_udp_sock *sock, usb4_udp_rx_fn fn, void *arg,
		    const struct usb4_udp_addr *from, struct rx_dgram *d)
{
	if (!sock->faulty) {
		fn(arg, from, d->piece, d->count);
		return;
	}
	if (d->dropped)
		return;
	if (!sock->held_len && chance(sock) < sock->faults.reorder) {
		hold(sock, d, from);
		sock->stats.faults_reordered++;
		return;
	}
	fn(arg, from, d->piece, d->count);
	if (chance(sock) < sock->faults.dup) {
		sock->stats.faults_duplicated++;
		fn(arg, from, d->piece, d->count);
	}
	if (sock->held_len) {
		struct iovec held = { .iov_base = sock->held,
				      .iov_len = sock->held_len };
		sock->held_len = 0;
		fn(arg, &sock->held_from, &held, 1);
	}
}

/* Receive vector of datagram slot i: its own buffer, with the hole (if any)
 * pointing elsewhere.  Returns the number of iovecs. */
static int rx_layout(struct usb4_udp_sock *sock, int i,
		     const struct usb4_udp_hole *hole, struct iovec *iov)
{
	char *buf = sock->bufs + (size_t) i * sock->datagram_max;
	size_t max = sock->datagram_max;

	if (!hole || !hole->len || hole->off >= max ||
	    hole->len > max - hole->off) {
		iov[0] = (struct iovec) { .iov_base = buf, .iov_len = max };
		return 1;
	}
	iov[0] = (struct iovec) { .iov_base = buf, .iov_len = hole->off };
	iov[1] = (struct iovec) { .iov_base = hole->dest, .iov_len = hole->len };
	iov[2] = (struct iovec) { .iov_base = buf + hole->off + hole->len,
				  .iov_len = max - hole->off - hole->len };
	return 3;
}

/* The pieces that len received bytes filled (iov[1] is the hole when
 * there are three). */
static void rx_pieces(const struct iovec *iov, int n, size_t len,
		      struct rx_dgram *d)
{
	d->count = 0;
	d->len = len;
	d->dropped = false;
	d->hole_piece = -1;
	d->spare = (char *) iov[0].iov_base + iov[0].iov_len;
	for (int p = 0; p < n && len; p++) {
		size_t take = iov[p].iov_len < len ? iov[p].iov_len : len;

		if (!take)
			continue;
		if (n == 3 && p == 1)
			d->hole_piece = d->count;
		d->piece[d->count++] = (struct iovec) {
			.iov_base = iov[p].iov_base, .iov_len = take };
		len -= take;
	}
	if (!d->count)	/* an empty datagram: one empty piece */
		d->piece[d->count++] = (struct iovec) { .iov_base = iov[0].iov_base };
}

void usb4_udp_evacuate(struct usb4_udp_sock *sock, const void *dest,
		       size_t len)
{
	const char *lo = dest, *hi = lo + len;

	for (int i = sock->batch_next; i < sock->batch_count; i++) {
		struct rx_dgram *d = &sock->batch[i];
		struct iovec *hole;

		if (d->hole_piece < 0)
			continue;
		hole = &d->piece[d->hole_piece];
		if ((const char *) hole->iov_base >= hi ||
		    lo >= (const char *) hole->iov_base + hole->iov_len)
			continue;
		memcpy(d->spare, hole->iov_base, hole->iov_len);
		hole->iov_base = d->spare;
		d->hole_piece = -1;
		sock->stats.evacuated++;
	}
}

/* One datagram into iov's buffer; -1 with errno. */
static ssize_t recv_one(int fd, const struct iovec *iov,
			struct sockaddr_storage *from)
{
	socklen_t len = sizeof(*from);

	return recvfrom(fd, iov->iov_base, iov->iov_len, MSG_DONTWAIT,
			(struct sockaddr *) from, &len);
}

/*
 * usb4_udp_poll of one datagram into one piece, the socket's first
 * buffer: a ping-pong's every receive and a spinning rank's every empty
 * look.  recvfrom, not recvmmsg: with no message header to copy and no
 * iovec array to import, an empty look costs the kernel a quarter less
 * (166 against 226 ns on the development VM), and a datagram that arrives
 * meanwhile waits for a shorter loop.  Nor are the batch's arrays laid
 * out and read back: the datagram goes up as it came.
 */
static int poll_one(struct usb4_udp_sock *sock, usb4_udp_rx_fn fn,
		    void *arg)
{
	struct iovec iov = { .iov_base = sock->bufs,
			     .iov_len = sock->datagram_max };
	struct sockaddr_storage from;
	struct usb4_udp_addr a;
	ssize_t n = recv_one(sock->fd, &iov, &from);

	/* A pending ICMP error fails the receive once; the datagram waits. */
	if (n < 0 && took_errors(sock, errno))
		n = recv_one(sock->fd, &iov, &from);
	sock->rx_want = usb4_udp_batch_next(1, n < 0 ? -1 : 1, USB4_UDP_BATCH);
	if (n < 0)
		return 0;
	sock->stats.received++;
	from_sockaddr(&from, &a);
	iov.iov_len = (size_t) n;
	if (!sock->faulty) {
		fn(arg, &a, &iov, 1);
		return 1;
	}
	rx_pieces(&iov, 1, (size_t) n, &sock->batch[0]);
	wire_faults(sock, &sock->batch[0]);
	deliver(sock, fn, arg, &a, &sock->batch[0]);
	return 1;
}

int usb4_udp_poll(struct usb4_udp_sock *sock, usb4_udp_place_fn place,
		  usb4_udp_rx_fn fn, void *arg, int budget)
{
	struct mmsghdr msgs[USB4_UDP_BATCH];
	struct iovec iov[USB4_UDP_BATCH][USB4_UDP_PIECES_MAX];
	struct usb4_udp_hole holes[USB4_UDP_BATCH];
	struct sockaddr_storage from[USB4_UDP_BATCH];
	struct rx_dgram *d = sock->batch;
	int want = budget < sock->rx_want ? budget : sock->rx_want;
	int nholes = place ? place(arg, holes, want) : 0;
	int got;

	if (want == 1 && !nholes)
		return poll_one(sock, fn, arg);
	for (int i = 0; i < want; i++) {
		int n = rx_layout(sock, i, i < nholes ? &holes[i] : NULL, iov[i]);

		msgs[i].msg_hdr = (struct msghdr) {
			.msg_name = &from[i], .msg_namelen = sizeof(from[i]),
			.msg_iov = iov[i], .msg_iovlen = n,
		};
	}
	got = recvmmsg(sock->fd, msgs, (unsigned) want, MSG_DONTWAIT, NULL);
	/* A pending ICMP error fails the receive once; the datagrams wait. */
	if (got < 0 && took_errors(sock, errno))
		got = recvmmsg(sock->fd, msgs, (unsigned) want, MSG_DONTWAIT,
			       NULL);
	sock->rx_want = usb4_udp_batch_next(want, got, USB4_UDP_BATCH);
	if (got <= 0)
		return 0;
	for (int i = 0; i < got; i++) {
		rx_pieces(iov[i], (int) msgs[i].msg_hdr.msg_iovlen,
			  msgs[i].msg_len, &d[i]);
		sock->stats.received++;
		if (sock->faulty)
			wire_faults(sock, &d[i]);
	}
	sock->batch_count = got;
	for (int i = 0; i < got; i++) {
		struct usb4_udp_addr a;

		from_sockaddr(&from[i], &a);
		sock->batch_next = i + 1;
		deliver(sock, fn, arg, &a, &d[i]);
	}
	sock->batch_count = sock->batch_next = 0;
	return got;
}
