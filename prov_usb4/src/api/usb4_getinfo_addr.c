/*
 * Addresses in fi_getinfo: node and service, FI_SOURCE, the address hints
 * and the two address formats.
 *
 * node and service are looked up as libfabric's IP providers do
 * (getaddrinfo, numeric service; IPv4 and IPv6 literals and names, IPv4
 * preferred when a name has both).  What they name becomes an unresolved
 * usb4 address (wire.h, USB4_ADDR_F_UNRESOLVED): only the udp family, IP
 * and port are known.
 *   - without FI_SOURCE, node (and service) name the peer: dest_addr; it
 *     becomes a whole address when inserted into an AV (the udp link asks
 *     the endpoint bound there, usb4_core_resolve);
 *   - with FI_SOURCE, or service alone, they name where our endpoint binds:
 *     src_addr; fi_endpoint binds its udp link there (node NULL: any IP,
 *     service NULL: any port).
 * The format is FI_FORMAT_UNSPEC (struct usb4_wire_addr) unless the hints
 * ask for FI_ADDR_STR ("fi_addr_usb4://...", usb4_addr_str.c).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include "usb4_api.h"

#define USB4_REFUSE_ADDR(...) do { \
	USB4_INFO(FI_LOG_CORE, __VA_ARGS__); \
	return -FI_ENODATA; \
} while (0)

/* ---- reading an address in either format ---- */

int usb4_addr_read(uint32_t format, const void *addr, size_t len,
		   struct usb4_wire_addr *a)
{
	if (format == FI_ADDR_STR) {
		/* NUL-terminated within len */
		if (!addr || !len || !memchr(addr, '\0', len))
			return -FI_EINVAL;
		return usb4_addr_from_str(addr, a);
	}
	if (!addr || len != sizeof(*a))
		return -FI_EINVAL;
	memcpy(a, addr, sizeof(*a));
	return usb4_wire_addr_ok(a) ? 0 : -FI_EINVAL;
}

/* Whether a names a place to bind: unresolved, with a udp part. */
static bool bindable(const struct usb4_wire_addr *a)
{
	return usb4_wire_addr_unresolved(a) &&
	       (a->udp_family == 4 || a->udp_family == 6);
}

int usb4_check_info_addrs(const struct fi_info *info)
{
	struct usb4_wire_addr a;

	if (info->addr_format != FI_FORMAT_UNSPEC &&
	    info->addr_format != FI_ADDR_STR)
		USB4_REFUSE_ADDR("addr_format %u: only FI_FORMAT_UNSPEC and "
				 "FI_ADDR_STR\n", info->addr_format);
	if ((info->src_addr || info->src_addrlen) &&
	    (usb4_addr_read(info->addr_format, info->src_addr,
			    info->src_addrlen, &a) || !bindable(&a)))
		USB4_REFUSE_ADDR("src_addr is not an IP and port to bind "
				 "(node and service with FI_SOURCE)\n");
	if ((info->dest_addr || info->dest_addrlen) &&
	    usb4_addr_read(info->addr_format, info->dest_addr,
			   info->dest_addrlen, &a))
		USB4_REFUSE_ADDR("dest address is not a usb4 address\n");
	return 0;
}

bool usb4_info_bind(const struct fi_info *info, struct usb4_wire_addr *bind)
{
	return info->src_addr &&
	       !usb4_addr_read(info->addr_format, info->src_addr,
			       info->src_addrlen, bind) && bindable(bind);
}

/* ---- node and service ---- */

/* The first IPv4 answer, else the first IPv6 one. */
static const struct addrinfo *pick(const struct addrinfo *list)
{
	for (const struct addrinfo *ai = list; ai; ai = ai->ai_next)
		if (ai->ai_family == AF_INET)
			return ai;
	for (const struct addrinfo *ai = list; ai; ai = ai->ai_next)
		if (ai->ai_family == AF_INET6)
			return ai;
	return NULL;
}

static void from_addrinfo(const struct addrinfo *ai, struct usb4_wire_addr *a)
{
	uint8_t ip[16] = { 0 };
	uint16_t port;

	if (ai->ai_family == AF_INET) {
		const struct sockaddr_in *in = (const void *) ai->ai_addr;
		memcpy(ip, &in->sin_addr, 4);
		port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const void *) ai->ai_addr;
		memcpy(ip, &in6->sin6_addr, 16);
		port = ntohs(in6->sin6_port);
	}
	usb4_wire_addr_init_unresolved(a, ai->ai_family == AF_INET ? 4 : 6,
				       ip, port);
}

int usb4_name_lookup(const char *node, const char *service, bool source,
		     struct usb4_wire_addr *a)
{
	struct addrinfo hints = {
		.ai_socktype = SOCK_DGRAM,
		.ai_flags = AI_NUMERICSERV | (source ? AI_PASSIVE : 0),
	}, *list;
	const struct addrinfo *ai;
	int ret;

	if (!source && (!node || !service))
		USB4_REFUSE_ADDR("a peer needs node and service\n");
	ret = getaddrinfo(node, service ? service : "0", &hints, &list);
	if (ret)
		USB4_REFUSE_ADDR("node '%s' service '%s': %s\n",
				 node ? node : "", service ? service : "",
				 gai_strerror(ret));
	ai = pick(list);
	if (ai)
		from_addrinfo(ai, a);
	freeaddrinfo(list);
	if (!ai)
		USB4_REFUSE_ADDR("node '%s': no IPv4 or IPv6 address\n", node);
	if (!source && !le16toh(a->udp_port))
		USB4_REFUSE_ADDR("service 0 names no peer\n");
	return 0;
}

/* ---- into the info ---- */

/* An address in the info's format, allocated for fi_freeinfo. */
static int addr_dup(uint32_t format, const struct usb4_wire_addr *a,
		    void **out, size_t *len)
{
	char buf[USB4_ADDR_STR_MAX];
	size_t n = sizeof(*a);
	const void *src = a;

	if (format == FI_ADDR_STR) {
		n = (size_t) usb4_addr_to_str(a, buf, sizeof(buf)) + 1;
		src = buf;
	}
	return usb4_info_dup(src, n, out, len);
}

int usb4_getinfo_addr(const char *node, const char *service, uint64_t flags,
		      const struct fi_info *hints, struct fi_info *out)
{
	bool source = (flags & FI_SOURCE) || !node;
	struct usb4_wire_addr a;
	int ret = 0;

	out->addr_format = hints && hints->addr_format == FI_ADDR_STR ?
			   FI_ADDR_STR : FI_FORMAT_UNSPEC;
	if (node || service) {
		ret = usb4_name_lookup(node, service, source, &a);
		if (!ret)
			ret = source ? addr_dup(out->addr_format, &a,
						&out->src_addr,
						&out->src_addrlen) :
				       addr_dup(out->addr_format, &a,
						&out->dest_addr,
						&out->dest_addrlen);
	}
	if (ret || !hints)
		return ret;
	/* The hints' addresses, checked already: present exactly when their
	 * length is not 0. */
	if (!out->src_addr)
		ret = usb4_info_dup(hints->src_addr, hints->src_addrlen,
				    &out->src_addr, &out->src_addrlen);
	if (!ret && !out->dest_addr)
		ret = usb4_info_dup(hints->dest_addr, hints->dest_addrlen,
				    &out->dest_addr, &out->dest_addrlen);
	return ret;
}
