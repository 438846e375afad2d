/*
 * Send batching with UDP GSO: see usb4_udp_gso.h.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "usb4.h"
#include "usb4_udp_gso.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT	103	/* linux/udp.h, older libc headers lack it */
#endif

int usb4_udp_gso_init(struct usb4_udp_gso *g, int fd, size_t datagram_max,
		      bool want)
{
	int zero = 0;

	memset(g, 0, sizeof(*g));
	if (!want || datagram_max > USB4_UDP_GSO_DGRAM_MAX)
		return 0;
	/* Setting the socket's default segment size (none) asks the kernel
	 * whether it knows UDP_SEGMENT at all. */
	if (setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &zero, sizeof(zero))) {
		g->stats.refused = true;
		return 0;
	}
	g->copy = malloc(USB4_UDP_GSO_COPY_ROOM);
	if (!g->copy)
		return -FI_ENOMEM;
	g->on = true;
	return 0;
}

void usb4_udp_gso_fini(struct usb4_udp_gso *g)
{
	free(g->copy);
	g->copy = NULL;
	g->on = false;
}

static void clear(struct usb4_udp_gso *g)
{
	g->segs = g->niov = 0;
	g->total = g->seg = g->copied = 0;
	g->closed = false;
}

/* Room for the datagram at the batch's end, pieces and copies. */
static bool fits(const struct usb4_udp_gso *g, const struct iovec *iov,
		 int count, size_t len, const struct sockaddr_storage *to,
		 socklen_t to_len)
{
	size_t copies = 0;

	if (!g->segs)
		return true;
	if (g->closed || len > g->seg || g->segs == USB4_UDP_GSO_SEGS ||
	    len > USB4_UDP_GSO_BYTES - g->total ||
	    count > USB4_UDP_GSO_IOV - g->niov || to_len != g->to_len ||
	    memcmp(to, &g->to, to_len))
		return false;
	for (int i = 0; i < count; i++)
		if (iov[i].iov_len <= USB4_UDP_GSO_COPY_MAX)
			copies += iov[i].iov_len;
	return copies <= USB4_UDP_GSO_COPY_ROOM - g->copied;
}

static void append(struct usb4_udp_gso *g, const struct iovec *iov, int count,
		   size_t len)
{
	if (!g->segs)
		g->seg = len;
	g->first[g->segs++] = g->niov;
	for (int i = 0; i < count; i++) {
		struct iovec piece = iov[i];

		if (!piece.iov_len)
			continue;
		if (piece.iov_len <= USB4_UDP_GSO_COPY_MAX) {
			memcpy(g->copy + g->copied, piece.iov_base,
			       piece.iov_len);
			piece.iov_base = g->copy + g->copied;
			g->copied += piece.iov_len;
		}
		g->iov[g->niov++] = piece;
	}
	g->first[g->segs] = g->niov;
	g->total += len;
	g->closed = len < g->seg;
}

/* The clock is read only while a pause lasts. */
static bool paused(struct usb4_udp_gso *g)
{
	if (!g->paused_until)
		return false;
	if (usb4_now_ns() < g->paused_until)
		return true;
	g->paused_until = 0;
	return false;
}

bool usb4_udp_gso_add(struct usb4_udp_gso *g, int fd,
		      const struct sockaddr_storage *to, socklen_t to_len,
		      const struct iovec *iov, int count)
{
	size_t len = 0;

	for (int i = 0; i < count; i++)
		len += iov[i].iov_len;
	if (!g->on || paused(g) || len > USB4_UDP_GSO_DGRAM_MAX || !len ||
	    count > USB4_UDP_GSO_IOV) {
		if (g->segs && usb4_udp_gso_flush(g, fd))
			usb4_udp_gso_piecemeal(g, fd);
		return false;
	}
	if (!fits(g, iov, count, len, to, to_len) && usb4_udp_gso_flush(g, fd))
		usb4_udp_gso_piecemeal(g, fd);
	if (!g->segs) {
		memcpy(&g->to, to, to_len);
		g->to_len = to_len;
	}
	append(g, iov, count, len);
	return true;
}

/* One sendmsg of iov[from, to) (datagrams of seg bytes when seg). */
static int send_pieces(struct usb4_udp_gso *g, int fd, int from, int to,
		       uint16_t seg)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} ctrl;
	struct msghdr msg = {
		.msg_name = &g->to,
		.msg_namelen = g->to_len,
		.msg_iov = g->iov + from,
		.msg_iovlen = (size_t) (to - from),
	};

	if (seg) {
		struct cmsghdr *cm;

		memset(&ctrl, 0, sizeof(ctrl));
		msg.msg_control = ctrl.buf;
		msg.msg_controllen = sizeof(ctrl.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = IPPROTO_UDP;
		cm->cmsg_type = UDP_SEGMENT;
		cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
		memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
	}
	return sendmsg(fd, &msg, 0) >= 0 ? 0 : -errno;
}

static int send_batch(struct usb4_udp_gso *g, int fd)
{
	return send_pieces(g, fd, 0, g->niov,
			   g->segs > 1 ? (uint16_t) g->seg : 0);
}

/* What a refused batch says of the kernel: no GSO for this socket. */
static bool gso_unsupported(int err)
{
	return err == -EIO || err == -EINVAL || err == -EOPNOTSUPP ||
	       err == -ENOPROTOOPT;
}

int usb4_udp_gso_flush(struct usb4_udp_gso *g, int fd)
{
	int ret;

	if (!g->segs)
		return 0;
	ret = send_batch(g, fd);
	if (ret == -EAGAIN || ret == -EWOULDBLOCK || ret == -ENOBUFS) {
		/* The socket's buffer (or the device's queue) is full: rel
		 * would wait for room too, and the batch refers to rel's
		 * payloads only while this call lasts. */
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		g->stats.waits++;
		poll(&p, 1, USB4_UDP_GSO_WAIT_MS);
		ret = send_batch(g, fd);
	}
	if (ret) {
		if (g->segs > 1 && gso_unsupported(ret)) {
			g->on = false;
			g->stats.refused = true;
		}
		return ret;
	}
	g->stats.sends++;
	g->stats.datagrams += (uint64_t) g->segs;
	clear(g);
	return 0;
}

int usb4_udp_gso_piecemeal(struct usb4_udp_gso *g, int fd)
{
	int last = 0;

	if (!g->segs)
		return 0;
	g->stats.piecemeal++;
	for (int i = 0; i < g->segs; i++) {
		int ret = send_pieces(g, fd, g->first[i], g->first[i + 1], 0);

		if (!ret)
			continue;
		last = ret;
		g->stats.lost++;
		if (ret == -EMSGSIZE)
			g->paused_until = usb4_now_ns() +
					  USB4_UDP_GSO_PAUSE_NS;
	}
	clear(g);
	return last;
}
