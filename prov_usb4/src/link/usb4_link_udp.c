/*
 * udp link: one non-blocking UDP socket per endpoint and interface, bound to
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

#include "usb4.h"
#include "usb4_link.h"

#define USB4_UDP_BATCH		8	/* datagrams per recvmmsg */
#define USB4_UDP_MAX		65507	/* largest UDP payload over IPv4 */
#define USB4_UDP_SOCKBUF	(8 << 20)

struct usb4_udp_link {
	int fd;
	int family;
	struct usb4_udp_addr self;
	size_t datagram_max;
	struct usb4_udp_faults faults;
	bool faulty;
	uint64_t rng;
	char *bufs;			/* USB4_UDP_BATCH receive buffers */
	char *held;			/* a datagram held back to reorder it */
	size_t held_len;
	struct usb4_udp_addr held_from;
	struct usb4_udp_link_stats stats;
};

/* ---- addresses ---- */

static socklen_t to_sockaddr(const struct usb4_udp_addr *a,
			     struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == 4) {
		struct sockaddr_in *in = (void *) ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(a->port);
		memcpy(&in->sin_addr, a->ip, 4);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (void *) ss;
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
static double chance(struct usb4_udp_link *link)
{
	link->rng ^= link->rng >> 12;
	link->rng ^= link->rng << 25;
	link->rng ^= link->rng >> 27;
	return (double) ((link->rng * 0x2545f4914f6cdd1dull) >> 11) /
	       (double) (1ull << 53);
}

/* ---- open and close ---- */

static int bind_socket(struct usb4_udp_link *link, const struct usb4_iface *iface)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int size = USB4_UDP_SOCKBUF;

	link->self.family = iface->family == AF_INET ? 4 : 6;
	memcpy(link->self.ip, iface->ip, 16);
	link->fd = socket(iface->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			  0);
	if (link->fd < 0)
		return -errno;
	/* Large buffers absorb bursts of 64 KiB datagrams; root may exceed
	 * rmem_max, others get what the kernel allows. */
	if (setsockopt(link->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)))
		setsockopt(link->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (setsockopt(link->fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)))
		setsockopt(link->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (bind(link->fd, (void *) &ss, to_sockaddr(&link->self, &ss)) ||
	    getsockname(link->fd, (void *) &ss, &len))
		return -errno;
	from_sockaddr(&ss, &link->self);
	return 0;
}

static size_t datagram_max(const struct usb4_iface *iface)
{
	size_t headers = iface->family == AF_INET ? 20 + 8 : 40 + 8;
	size_t max = iface->mtu > headers ? iface->mtu - headers : 0;

	return max < USB4_UDP_MAX ? max : USB4_UDP_MAX;
}

int usb4_udp_link_open(struct usb4_udp_link **linkp,
		       const struct usb4_iface *iface,
		       const struct usb4_udp_faults *faults)
{
	struct usb4_udp_link *link = calloc(1, sizeof(*link));
	int ret;

	if (!link)
		return -FI_ENOMEM;
	link->datagram_max = datagram_max(iface);
	link->bufs = malloc(USB4_UDP_BATCH * link->datagram_max);
	link->held = malloc(link->datagram_max);
	if (!link->bufs || !link->held) {
		ret = -FI_ENOMEM;
		goto err_free_link;
	}
	ret = bind_socket(link, iface);
	if (ret)
		goto err_close_fd;
	if (faults) {
		link->faults = *faults;
		link->faulty = faults->drop || faults->dup || faults->reorder ||
			       faults->corrupt;
	}
	link->rng = usb4_random64();
	*linkp = link;
	return 0;

err_close_fd:
	USB4_WARN(FI_LOG_EP_CTRL, "udp socket on %s: %s\n", iface->name,
		  fi_strerror(-ret));
	if (link->fd >= 0)
		close(link->fd);
err_free_link:
	free(link->bufs);
	free(link->held);
	free(link);
	return ret;
}

void usb4_udp_link_close(struct usb4_udp_link *link)
{
	if (!link)
		return;
	close(link->fd);
	free(link->bufs);
	free(link->held);
	free(link);
}

void usb4_udp_link_addr(const struct usb4_udp_link *link,
			struct usb4_udp_addr *addr)
{
	*addr = link->self;
}

size_t usb4_udp_link_datagram_max(const struct usb4_udp_link *link)
{
	return link->datagram_max;
}

int usb4_udp_link_fd(const struct usb4_udp_link *link)
{
	return link->fd;
}

const struct usb4_udp_link_stats *
usb4_udp_link_stats(const struct usb4_udp_link *link)
{
	return &link->stats;
}

/* ---- data ---- */

int usb4_udp_send(struct usb4_udp_link *link, const struct usb4_udp_addr *to,
		  const struct iovec *iov, int count)
{
	struct sockaddr_storage ss;
	struct msghdr msg = {
		.msg_name = &ss,
		.msg_namelen = to_sockaddr(to, &ss),
		.msg_iov = (struct iovec *) iov,
		.msg_iovlen = count,
	};

	if (sendmsg(link->fd, &msg, 0) >= 0) {
		link->stats.sent++;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
		link->stats.send_again++;
		return -FI_EAGAIN;
	}
	return errno == EMSGSIZE ? -FI_EMSGSIZE : -FI_EIO;
}

/* Hands a datagram up, through the fault injector when one is configured. */
static void deliver(struct usb4_udp_link *link, usb4_udp_rx_fn fn, void *arg,
		    const struct usb4_udp_addr *from, char *buf, size_t len)
{
	if (!link->faulty) {
		fn(arg, from, buf, len);
		return;
	}
	if (chance(link) < link->faults.drop) {
		link->stats.faults_dropped++;
		return;
	}
	if (len && chance(link) < link->faults.corrupt) {
		buf[(size_t) (chance(link) * len) % len] ^= 0x5a;
		link->stats.faults_corrupted++;
	}
	if (!link->held_len && chance(link) < link->faults.reorder) {
		memcpy(link->held, buf, len);
		link->held_len = len;
		link->held_from = *from;
		link->stats.faults_reordered++;
		return;
	}
	fn(arg, from, buf, len);
	if (chance(link) < link->faults.dup) {
		link->stats.faults_duplicated++;
		fn(arg, from, buf, len);
	}
	if (link->held_len) {
		size_t held = link->held_len;
		link->held_len = 0;
		fn(arg, &link->held_from, link->held, held);
	}
}

int usb4_udp_poll(struct usb4_udp_link *link, usb4_udp_rx_fn fn, void *arg,
		  int budget)
{
	struct mmsghdr msgs[USB4_UDP_BATCH];
	struct iovec iov[USB4_UDP_BATCH];
	struct sockaddr_storage from[USB4_UDP_BATCH];
	int want = budget < USB4_UDP_BATCH ? budget : USB4_UDP_BATCH;
	int got;

	for (int i = 0; i < want; i++) {
		iov[i].iov_base = link->bufs + i * link->datagram_max;
		iov[i].iov_len = link->datagram_max;
		msgs[i].msg_hdr = (struct msghdr) {
			.msg_name = &from[i], .msg_namelen = sizeof(from[i]),
			.msg_iov = &iov[i], .msg_iovlen = 1,
		};
	}
	got = recvmmsg(link->fd, msgs, want, MSG_DONTWAIT, NULL);
	if (got <= 0)
		return 0;
	for (int i = 0; i < got; i++) {
		struct usb4_udp_addr a;
		from_sockaddr(&from[i], &a);
		link->stats.received++;
		deliver(link, fn, arg, &a, iov[i].iov_base, msgs[i].msg_len);
	}
	return got;
}
