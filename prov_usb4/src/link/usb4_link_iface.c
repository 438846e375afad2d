/*
 * Interface discovery for the udp link: which IP interfaces are USB4 cables.
 * A host-to-host USB4 link shows up as a net device driven by thunderbolt-net;
 * its xdomain parent in sysfs holds the link's speed and lane count.
 * Everything is read under a sysfs root so tests can point at a fake tree.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usb4_udp.h"

#define USB4_TB_DRIVER	"thunderbolt-net"

/* Reads the first line of a sysfs file; "" when absent. */
static void read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (!f)
		return;
	if (!fgets(buf, len, f))
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

static unsigned read_uint(const char *path)
{
	char line[64];

	read_line(path, line, sizeof(line));
	return (unsigned) strtoul(line, NULL, 10);
}

static bool is_thunderbolt(const char *root, const char *name)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/class/net/%s/device/driver", root, name);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	return !strcmp(base ? base + 1 : target, USB4_TB_DRIVER);
}

/* Speed ("20.0 Gb/s") and lanes of the xdomain device above the service. */
static void read_link_speed(const char *root, struct usb4_iface *iface)
{
	char path[PATH_MAX + 16], dev[PATH_MAX];

	snprintf(path, sizeof(path), "%s/class/net/%s/device/..", root,
		 iface->name);
	if (!realpath(path, dev))
		return;
	snprintf(path, sizeof(path), "%s/rx_speed", dev);
	iface->speed_gbps = read_uint(path);
	snprintf(path, sizeof(path), "%s/rx_lanes", dev);
	iface->lanes = read_uint(path);
}

static bool name_listed(const char *names, const char *name)
{
	size_t len = strlen(name);

	for (const char *p = names; *p; ) {
		size_t n = strcspn(p, ",");
		if (n == len && !strncmp(p, name, n))
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

static bool already_found(const struct usb4_iface *out, int count,
			  const char *name)
{
	for (int i = 0; i < count; i++)
		if (!strcmp(out[i].name, name))
			return true;
	return false;
}

/* IPv4 first; IPv6 only when global (link-local needs a scope id). */
static bool usable_addr(const struct ifaddrs *ifa)
{
	if (!ifa->ifa_addr)
		return false;
	if (ifa->ifa_addr->sa_family == AF_INET)
		return true;
	if (ifa->ifa_addr->sa_family != AF_INET6)
		return false;
	const struct sockaddr_in6 *a = (const void *) ifa->ifa_addr;
	return !IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr);
}

/* The netmask of the interface's subnet: which peers it reaches directly
 * (rails pair up by it). */
static void fill_mask(const struct ifaddrs *ifa, struct usb4_iface *iface)
{
	const struct sockaddr *m = ifa->ifa_netmask;

	if (!m || m->sa_family != iface->family)
		return;
	if (iface->family == AF_INET)
		memcpy(iface->mask, &((const struct sockaddr_in *)
				      (const void *) m)->sin_addr, 4);
	else
		memcpy(iface->mask, &((const struct sockaddr_in6 *)
				      (const void *) m)->sin6_addr, 16);
}

static void fill(const char *root, const struct ifaddrs *ifa,
		 struct usb4_iface *iface)
{
	char path[PATH_MAX];

	memset(iface, 0, sizeof(*iface));
	snprintf(iface->name, sizeof(iface->name), "%s", ifa->ifa_name);
	iface->family = ifa->ifa_addr->sa_family;
	if (iface->family == AF_INET)
		memcpy(iface->ip, &((const struct sockaddr_in *)
				    (const void *) ifa->ifa_addr)->sin_addr, 4);
	else
		memcpy(iface->ip, &((const struct sockaddr_in6 *)
				    (const void *) ifa->ifa_addr)->sin6_addr, 16);
	fill_mask(ifa, iface);
	snprintf(path, sizeof(path), "%s/class/net/%s/mtu", root, iface->name);
	iface->mtu = read_uint(path);
	if (!iface->mtu)
		iface->mtu = 1500;
	iface->thunderbolt = is_thunderbolt(root, iface->name);
	if (iface->thunderbolt)
		read_link_speed(root, iface);
}

/* Two passes so an interface's IPv4 address wins over its IPv6 one. */
int usb4_iface_find(const char *names, const char *sysfs_root,
		    struct usb4_iface *out, int max)
{
	struct ifaddrs *list, *ifa;
	int count = 0;

	if (getifaddrs(&list))
		return 0;
	for (int pass = 0; pass < 2; pass++) {
		for (ifa = list; ifa && count < max; ifa = ifa->ifa_next) {
			int want = pass ? AF_INET6 : AF_INET;
			if (!usable_addr(ifa) || ifa->ifa_addr->sa_family != want ||
			    !(ifa->ifa_flags & IFF_UP) ||
			    already_found(out, count, ifa->ifa_name))
				continue;
			if (names && *names ? !name_listed(names, ifa->ifa_name) :
			    !is_thunderbolt(sysfs_root, ifa->ifa_name))
				continue;
			fill(sysfs_root, ifa, &out[count++]);
		}
	}
	freeifaddrs(list);
	return count;
}

static bool holds_ip(const struct ifaddrs *ifa, int family, const uint8_t *ip)
{
	if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != family)
		return false;
	if (family == AF_INET)
		return !memcmp(&((const struct sockaddr_in *) (const void *)
				 ifa->ifa_addr)->sin_addr, ip, 4);
	return !memcmp(&((const struct sockaddr_in6 *) (const void *)
			 ifa->ifa_addr)->sin6_addr, ip, 16);
}

/* The interface that holds ip, whatever its driver or FI_USB4_IFACE say:
 * an endpoint asked to bind there (loopback included). */
int usb4_iface_of_ip(int family, const uint8_t ip[16], const char *sysfs_root,
		     struct usb4_iface *out)
{
	struct ifaddrs *list, *ifa;
	int found = 0;

	if (getifaddrs(&list))
		return 0;
	for (ifa = list; ifa && !found; ifa = ifa->ifa_next) {
		if (!(ifa->ifa_flags & IFF_UP) || !holds_ip(ifa, family, ip))
			continue;
		fill(sysfs_root, ifa, out);
		found = 1;
	}
	freeifaddrs(list);
	return found;
}
