/*
 * For tests that interpose sendmsg to count or rewrite datagrams: the udp
 * link sends a small datagram by sendto, which this routes through the
 * test's own sendmsg, so every datagram passes the same interposer.
 */
#ifndef USB4_SENDTO_SHIM_H
#define USB4_SENDTO_SHIM_H

#include <sys/socket.h>
#include <sys/uio.h>

__attribute__((visibility("default")))
ssize_t sendto(int fd, const void *buf, size_t len, int flags,
	       const struct sockaddr *to, socklen_t tolen)
{
	struct iovec one = { .iov_base = (void *) buf, .iov_len = len };
	struct msghdr msg = { .msg_name = (void *) to, .msg_namelen = tolen,
			      .msg_iov = &one, .msg_iovlen = 1 };

	return sendmsg(fd, &msg, flags);
}

#endif
