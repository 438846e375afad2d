/*
 * For tests that play an older peer by rewriting handshakes on the way out:
 * a HELLO or HELLO_ACK loses one feature bit and gets its check again, so
 * the receiver accepts it and negotiates as with a peer that lacks it.
 */
#ifndef USB4_HELLO_STRIP_H
#define USB4_HELLO_STRIP_H

#include <endian.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "../../prov_usb4/src/wire.h"

/* CRC32C (Castagnoli, reflected), bit by bit: the handshake's check, kept
 * apart from the provider's so the test does not trust what it tests. */
static inline uint32_t usb4_test_crc32c(const unsigned char *p, size_t len)
{
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = crc >> 1 ^ (0x82f63b78u & -(crc & 1));
	}
	return ~crc;
}

/* Clears feature in the datagram d of len bytes if it is a HELLO or
 * HELLO_ACK; whether it was one. */
static inline bool usb4_test_hello_strip(unsigned char *d, size_t len,
					 uint32_t feature)
{
	const size_t crc_off = offsetof(struct usb4_wire_rel, crc);
	struct usb4_wire_rel h;
	struct usb4_wire_hello hello;
	uint32_t crc;

	if (len < sizeof(h) + sizeof(hello))
		return false;
	memcpy(&h, d, sizeof(h));
	if (h.version != USB4_WIRE_VERSION ||
	    (h.type != USB4_REL_HELLO && h.type != USB4_REL_HELLO_ACK) ||
	    h.flags)
		return false;
	memcpy(&hello, d + sizeof(h), sizeof(hello));
	hello.features = htole32(le32toh(hello.features) & ~feature);
	memcpy(d + sizeof(h), &hello, sizeof(hello));
	memset(d + crc_off, 0, sizeof(crc));
	crc = htole32(usb4_test_crc32c(d, len));
	memcpy(d + crc_off, &crc, sizeof(crc));
	return true;
}

/* The bytes of the datagram msg describes. */
static inline size_t usb4_test_msg_len(const struct msghdr *msg)
{
	size_t len = 0;

	for (size_t i = 0; i < msg->msg_iovlen; i++)
		len += msg->msg_iov[i].iov_len;
	return len;
}

typedef ssize_t (*usb4_test_sendmsg_fn)(int, const struct msghdr *, int);

/*
 * Sends the datagram of msg by real with feature cleared if it is a HELLO
 * or HELLO_ACK, counting those in *stripped.  The datagram is gathered
 * into a static buffer, so one thread at a time; a datagram longer than
 * the buffer goes as it is.  What sendmsg returns for msg.
 */
static inline ssize_t usb4_test_sendmsg_stripped(usb4_test_sendmsg_fn real,
						 int fd,
						 const struct msghdr *msg,
						 int flags, uint32_t feature,
						 atomic_ulong *stripped)
{
	static unsigned char buf[65536];
	size_t len = usb4_test_msg_len(msg), off = 0;
	struct msghdr copy = *msg;
	struct iovec one = { .iov_base = buf, .iov_len = len };

	if (len > sizeof(buf))
		return real(fd, msg, flags);
	for (size_t i = 0; i < msg->msg_iovlen; i++) {
		memcpy(buf + off, msg->msg_iov[i].iov_base,
		       msg->msg_iov[i].iov_len);
		off += msg->msg_iov[i].iov_len;
	}
	if (usb4_test_hello_strip(buf, len, feature))
		atomic_fetch_add(stripped, 1);
	copy.msg_iov = &one;
	copy.msg_iovlen = 1;
	return real(fd, &copy, flags) < 0 ? -1 : (ssize_t) len;
}

#endif
