/*
 * FI_ADDR_STR for usb4: an endpoint address as text, and back.
 *
 *   fi_addr_usb4://LOC/HOST/EP/PID/INBOX/REG/PROTO   a whole address
 *   fi_addr_usb4://LOC                               unresolved: node and
 *                                                    service only
 *   LOC    a.b.c.d:port | [v6]:port | "-" (no udp link; whole addresses)
 *   HOST   host_id, 16 hex digits        EP     ep_id, 16 hex digits
 *   PID    shm_pid (decimal)             INBOX, REG  shm fds (decimal, -1)
 *   PROTO  the endpoint's wire version (decimal)
 * Every field of struct usb4_wire_addr is there, so a string made here
 * parses back to the same 56 bytes.  Anything else is refused whole.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_api.h"

static int loc_str(const struct usb4_wire_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (a->udp_family != 4 && a->udp_family != 6)
		return snprintf(buf, len, "-");
	inet_ntop(a->udp_family == 4 ? AF_INET : AF_INET6, a->udp_ip, ip,
		  sizeof(ip));
	return snprintf(buf, len, a->udp_family == 4 ? "%s:%u" : "[%s]:%u",
			ip, le16toh(a->udp_port));
}

int usb4_addr_to_str(const struct usb4_wire_addr *a, char *buf, size_t len)
{
	char loc[INET6_ADDRSTRLEN + 16];

	loc_str(a, loc, sizeof(loc));
	if (usb4_wire_addr_unresolved(a))
		return snprintf(buf, len, USB4_ADDR_STR_PREFIX "%s", loc);
	return snprintf(buf, len, USB4_ADDR_STR_PREFIX
			"%s/%016" PRIx64 "/%016" PRIx64 "/%" PRIu32 "/%" PRId32
			"/%" PRId32 "/%u", loc, le64toh(a->host_id),
			le64toh(a->ep_id), le32toh(a->shm_pid),
			(int32_t) le32toh(a->shm_inbox_fd),
			(int32_t) le32toh(a->shm_reg_fd), a->proto);
}

/* IP and port at s, up to the first '/' or the end; *end after it. */
static int parse_loc(const char *s, const char **end, uint8_t *family,
		     uint8_t ip[16], uint16_t *port)
{
	char host[INET6_ADDRSTRLEN];
	const char *colon, *close = NULL;
	size_t n;
	char *tail;
	unsigned long p;

	if (*s == '[') {
		close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -FI_EINVAL;
		n = (size_t) (close - s - 1);
		colon = close + 1;
		s++;
	} else {
		colon = strchr(s, ':');
		if (!colon)
			return -FI_EINVAL;
		n = (size_t) (colon - s);
	}
	if (!n || n >= sizeof(host))
		return -FI_EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	memset(ip, 0, 16);
	*family = close ? 6 : 4;
	if (inet_pton(close ? AF_INET6 : AF_INET, host, ip) != 1)
		return -FI_EINVAL;
	if (colon[1] < '0' || colon[1] > '9')
		return -FI_EINVAL;
	errno = 0;
	p = strtoul(colon + 1, &tail, 10);
	if (errno || p > UINT16_MAX || (*tail && *tail != '/'))
		return -FI_EINVAL;
	*port = (uint16_t) p;
	*end = tail;
	return 0;
}

/* One '/'-led field of the whole form: a number in base, within [lo, hi]. */
static int parse_field(const char **s, int base, int64_t lo, uint64_t hi,
		       uint64_t *out)
{
	char *tail;
	const char *p = *s;

	if (*p != '/' || !((p[1] >= '0' && p[1] <= '9') ||
			   (base == 16 && ((p[1] | 0x20) >= 'a' &&
					   (p[1] | 0x20) <= 'f')) ||
			   (lo < 0 && p[1] == '-')))
		return -FI_EINVAL;
	errno = 0;
	if (lo < 0) {
		long long v = strtoll(p + 1, &tail, base);
		if (errno || v < lo || v > (long long) hi)
			return -FI_EINVAL;
		*out = (uint64_t) v;
	} else {
		unsigned long long v = strtoull(p + 1, &tail, base);
		if (errno || v > hi)
			return -FI_EINVAL;
		*out = v;
	}
	*s = tail;
	return 0;
}

static int parse_whole(const char *s, struct usb4_wire_addr *a)
{
	uint64_t host, ep, pid, inbox, reg, proto;

	if (parse_field(&s, 16, 0, UINT64_MAX, &host) ||
	    parse_field(&s, 16, 1, UINT64_MAX, &ep) ||
	    parse_field(&s, 10, 0, UINT32_MAX, &pid) ||
	    parse_field(&s, 10, -1, INT32_MAX, &inbox) ||
	    parse_field(&s, 10, -1, INT32_MAX, &reg) ||
	    parse_field(&s, 10, 1, UINT8_MAX, &proto) || *s)
		return -FI_EINVAL;
	a->host_id = htole64(host);
	a->ep_id = htole64(ep);
	a->shm_pid = htole32((uint32_t) pid);
	a->shm_inbox_fd = (int32_t) htole32((uint32_t) (int32_t) inbox);
	a->shm_reg_fd = (int32_t) htole32((uint32_t) (int32_t) reg);
	a->proto = (uint8_t) proto;
	return 0;
}

int usb4_addr_from_str(const char *s, struct usb4_wire_addr *a)
{
	const size_t plen = strlen(USB4_ADDR_STR_PREFIX);
	uint8_t family = 0, ip[16] = { 0 };
	uint16_t port = 0;
	const char *rest;

	if (!s || strncmp(s, USB4_ADDR_STR_PREFIX, plen))
		return -FI_EINVAL;
	s += plen;
	if (*s == '-') {
		rest = s + 1;
	} else if (parse_loc(s, &rest, &family, ip, &port)) {
		return -FI_EINVAL;
	}
	if (!*rest) {
		/* node and service only: something must be named */
		if (!family || !port)
			return -FI_EINVAL;
		usb4_wire_addr_init_unresolved(a, family, ip, port);
		return 0;
	}
	usb4_wire_addr_init(a, 0, 0);
	a->udp_family = family;
	a->udp_port = htole16(port);
	memcpy(a->udp_ip, ip, sizeof(a->udp_ip));
	return parse_whole(rest, a);
}
