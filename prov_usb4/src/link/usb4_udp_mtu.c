/*
 * The udp link's datagram size against the interface's MTU (private to
 * src/link): the socket never lets the kernel split a datagram into IP
 * fragments (one lost fragment would lose the whole datagram, and a far
 * end with a smaller MTU drops them anyway), so a datagram larger than the
 * interface carries fails with EMSGSIZE; the interface's MTU is then read
 * again and rel sends smaller datagrams (usb4_rel_io.path_max).  Large
 * datagrams the device keeps dropping (ENOBUFS) count as refused too.
 */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "usb4_udp.h"

int usb4_udp_mtu_no_fragments(int fd, int family)
{
	int v4 = IP_PMTUDISC_DO, v6 = IPV6_PMTUDISC_DO;

	if (family == AF_INET)
		return setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v4,
				  sizeof(v4)) ? -errno : 0;
	return setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v6,
			  sizeof(v6)) ? -errno : 0;
}

size_t usb4_udp_mtu_datagram_max(int fd, const char *ifname, int family)
{
	struct ifreq ifr;
	size_t headers = family == AF_INET ? 20 + 8 : 40 + 8;

	if (!ifname || !*ifname || strlen(ifname) >= sizeof(ifr.ifr_name))
		return 0;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, strlen(ifname));
	if (ioctl(fd, SIOCGIFMTU, &ifr) || ifr.ifr_mtu <= (int) headers)
		return 0;
	return (size_t) ifr.ifr_mtu - headers;
}

int usb4_udp_mtu_judge(struct usb4_udp_mtu_watch *w, size_t len, int ret,
		       bool nobufs, uint64_t now)
{
	if (len <= USB4_UDP_MTU_SMALL)
		return ret;
	if (ret != -FI_EAGAIN || !nobufs) {
		w->blocked_since = 0;
		return ret;
	}
	if (!w->blocked_since) {
		w->blocked_since = now ? now : 1;
		return ret;
	}
	if (now - w->blocked_since < USB4_UDP_MTU_BLOCKED_NS)
		return ret;
	w->blocked_since = 0;
	return -FI_EMSGSIZE;
}
