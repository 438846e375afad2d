/*
 * What the kernel says about datagrams we sent (IP_RECVERR): ICMP errors
 * queued on the socket's error queue.  Only one matters here: port
 * unreachable, the kernel of the peer's host telling us nobody is bound at
 * the address any more (its process exited).  ICMP is not authenticated,
 * so this is a hint for the link, never a verdict (usb4_rel_hint_unreachable).
 *
 * With IP_RECVERR an unconnected UDP socket also keeps the error as its
 * pending error, so the next receive (or send) fails once with it instead
 * of doing its work; the datagrams stay queued.  The socket drains this
 * queue then and tries again (usb4_udp_socket.c).
 */
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "usb4_udp.h"

/* At most this many queued errors per drain: each is one system call. */
#define USB4_UDP_ERRQUEUE_BUDGET	64

int usb4_udp_errqueue_on(int fd, int family)
{
	int on = 1;

	if (family == AF_INET)
		return setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof(on));
	return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof(on));
}

/* The extended error in one error-queue message's control data, or NULL. */
static const struct sock_extended_err *ee_of(struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c;
	     c = CMSG_NXTHDR(msg, c)) {
		if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
		    (c->cmsg_level == IPPROTO_IPV6 &&
		     c->cmsg_type == IPV6_RECVERR))
			return (const struct sock_extended_err *) CMSG_DATA(c);
	}
	return NULL;
}

static bool is_port_unreachable(const struct sock_extended_err *ee)
{
	return (ee->ee_origin == SO_EE_ORIGIN_ICMP ||
		ee->ee_origin == SO_EE_ORIGIN_ICMP6) &&
	       ee->ee_errno == ECONNREFUSED;
}

int usb4_udp_errqueue_drain(int fd, usb4_udp_unreach_fn fn, void *arg,
			    void (*addr_of)(const struct sockaddr_storage *,
					    struct usb4_udp_addr *))
{
	int n = 0;

	while (n < USB4_UDP_ERRQUEUE_BUDGET) {
		char ctl[512], byte;
		struct sockaddr_storage to;
		struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
		struct msghdr msg = {
			.msg_name = &to, .msg_namelen = sizeof(to),
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl, .msg_controllen = sizeof(ctl),
		};
		const struct sock_extended_err *ee;
		struct usb4_udp_addr a;

		memset(&to, 0, sizeof(to));
		if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			break;
		n++;
		ee = ee_of(&msg);
		/* msg_name: where the datagram that met the error was going */
		if (!ee || !is_port_unreachable(ee) || !fn || !msg.msg_namelen)
			continue;
		addr_of(&to, &a);
		fn(arg, &a);
	}
	return n;
}
