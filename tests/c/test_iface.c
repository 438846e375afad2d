/*
 * Unit tests of interface discovery (prov_usb4/src/link/usb4_link_iface.c)
 * against a fake sysfs tree, and of the FI_USB4_FAULTS parser
 * (usb4_udp_socket.c), both declared in the udp link's private header
 * (prov_usb4/src/link/usb4_udp.h).  Discovery lists the machine's real
 * interfaces (getifaddrs) and reads everything else under the sysfs root it
 * is given, so the tree below decides whether `lo`, which every machine has
 * up, looks like a thunderbolt-net cable:
 *
 *   <root>/class/net/lo/mtu
 *   <root>/class/net/lo/device -> ../../../bus/thunderbolt/devices/0-1/0-1.0
 *   <root>/bus/thunderbolt/devices/0-1/{rx_speed,rx_lanes}    (the xdomain)
 *   <root>/bus/thunderbolt/devices/0-1/0-1.0/driver -> ../../../drivers/<drv>
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usb4.h"
#include "usb4_udp.h"
#include "usb4_test.h"

#define MAX_IFACES	8
#define XDOMAIN		"bus/thunderbolt/devices/0-1"
#define SERVICE		XDOMAIN "/0-1.0"

/* What the fake tree says about `lo`; NULL leaves the file out. */
struct fake_lo {
	const char *driver;	/* basename of the service's driver link */
	const char *mtu;
	const char *rx_speed;
	const char *rx_lanes;
};

static char root[256];	/* the fake sysfs root, under TMPDIR */

static void put_file(const char *rel, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fprintf(f, "%s\n", text);
	fclose(f);
}

static void put_dir(const char *rel)
{
	char path[PATH_MAX], *p;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	mkdir(path, 0755);
}

static void put_link(const char *rel, const char *target)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	CHECK_EQ(symlink(target, path), 0);
}

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	return remove(path);
}

static void tree_remove(void)
{
	nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh root holding what lo describes (an empty tree for NULL). */
static void tree_make(const struct fake_lo *lo)
{
	char target[PATH_MAX];

	tree_remove();
	CHECK_EQ(mkdir(root, 0700), 0);
	if (!lo)
		return;
	put_dir("class/net/lo");
	put_dir(SERVICE);
	if (lo->mtu)
		put_file("class/net/lo/mtu", lo->mtu);
	put_link("class/net/lo/device", "../../../" SERVICE);
	if (lo->driver) {
		snprintf(target, sizeof(target), "../../../drivers/%s",
			 lo->driver);
		put_dir("bus/thunderbolt/drivers");
		put_link(SERVICE "/driver", target);
	}
	if (lo->rx_speed)
		put_file(XDOMAIN "/rx_speed", lo->rx_speed);
	if (lo->rx_lanes)
		put_file(XDOMAIN "/rx_lanes", lo->rx_lanes);
}

static int find(const char *names, struct usb4_iface *out)
{
	memset(out, 0xa5, MAX_IFACES * sizeof(*out));
	return usb4_iface_find(names, root, out, MAX_IFACES);
}

static bool is_loopback_v4(const struct usb4_iface *i)
{
	struct in_addr lo = { htonl(INADDR_LOOPBACK) };

	return i->family == AF_INET && !memcmp(i->ip, &lo, 4);
}

static const struct fake_lo tb_lo = {
	.driver = "thunderbolt-net", .mtu = "65520",
	.rx_speed = "20.0 Gb/s", .rx_lanes = "2",
};

/* No names: only interfaces the tree marks thunderbolt-net qualify. */
static void test_detect_thunderbolt(void)
{
	struct usb4_iface out[MAX_IFACES];

	tree_make(&tb_lo);
	CHECK_EQ(find(NULL, out), 1);
	CHECK(!strcmp(out[0].name, "lo"));
	CHECK(out[0].thunderbolt);
	CHECK_EQ(out[0].speed_gbps, 20);
	CHECK_EQ(out[0].lanes, 2);
	CHECK_EQ(out[0].mtu, 65520);
	CHECK(is_loopback_v4(&out[0]));	/* IPv4 wins over ::1 */
	CHECK_EQ(find("", out), 1);	/* an empty list means no list */
	CHECK_EQ(usb4_iface_find(NULL, root, out, 0), 0);
}

static void test_speed_and_lanes_variants(void)
{
	struct usb4_iface out[MAX_IFACES];
	struct fake_lo lo = tb_lo;

	lo.rx_speed = "40.0 Gb/s";
	lo.rx_lanes = "1";
	tree_make(&lo);
	CHECK_EQ(find(NULL, out), 1);
	CHECK_EQ(out[0].speed_gbps, 40);
	CHECK_EQ(out[0].lanes, 1);

	lo.rx_speed = NULL;		/* older kernels: no speed files */
	lo.rx_lanes = NULL;
	lo.mtu = NULL;
	tree_make(&lo);
	CHECK_EQ(find(NULL, out), 1);
	CHECK(out[0].thunderbolt);
	CHECK_EQ(out[0].speed_gbps, 0);
	CHECK_EQ(out[0].lanes, 0);
	CHECK_EQ(out[0].mtu, 1500);	/* unreadable mtu: the default */
}

static void test_other_driver_not_found(void)
{
	struct usb4_iface out[MAX_IFACES];
	struct fake_lo lo = tb_lo;

	lo.driver = "e1000e";
	tree_make(&lo);
	CHECK_EQ(find(NULL, out), 0);
	lo.driver = "thunderbolt-net-not";	/* the whole basename counts */
	tree_make(&lo);
	CHECK_EQ(find(NULL, out), 0);
	lo.driver = NULL;			/* no driver bound */
	tree_make(&lo);
	CHECK_EQ(find(NULL, out), 0);
	tree_make(NULL);			/* not in sysfs at all */
	CHECK_EQ(find(NULL, out), 0);
}

/* Named interfaces qualify whatever drives them. */
static void test_names_override_driver(void)
{
	struct usb4_iface out[MAX_IFACES];
	struct fake_lo lo = tb_lo;

	lo.driver = "e1000e";
	lo.mtu = "9000";
	tree_make(&lo);
	CHECK_EQ(find("lo", out), 1);
	CHECK(!strcmp(out[0].name, "lo"));
	CHECK(!out[0].thunderbolt);
	CHECK_EQ(out[0].speed_gbps, 0);	/* read only for thunderbolt-net */
	CHECK_EQ(out[0].lanes, 0);
	CHECK_EQ(out[0].mtu, 9000);
	CHECK(is_loopback_v4(&out[0]));

	tree_make(NULL);
	CHECK_EQ(find("lo", out), 1);
	CHECK_EQ(out[0].mtu, 1500);

	tree_make(&tb_lo);
	CHECK_EQ(find("lo", out), 1);
	CHECK(out[0].thunderbolt);
	CHECK_EQ(out[0].speed_gbps, 20);
}

static void test_unknown_names(void)
{
	struct usb4_iface out[MAX_IFACES];

	tree_make(&tb_lo);
	CHECK_EQ(find("usb4nosuch0", out), 0);
	CHECK_EQ(find("l", out), 0);		/* no prefix matches */
	CHECK_EQ(find("lo0", out), 0);
	CHECK_EQ(find("LO", out), 0);
	CHECK_EQ(find(",", out), 0);
}

static void test_comma_lists(void)
{
	struct usb4_iface out[MAX_IFACES];

	tree_make(&tb_lo);
	CHECK_EQ(find("usb4nosuch0,lo", out), 1);
	CHECK(!strcmp(out[0].name, "lo"));
	CHECK_EQ(find("lo,usb4nosuch0", out), 1);
	CHECK_EQ(find("lo,lo", out), 1);	/* once, with its IPv4 address */
	CHECK(is_loopback_v4(&out[0]));
	CHECK_EQ(find(",lo,", out), 1);
	CHECK_EQ(find("usb4nosuch0,usb4nosuch1", out), 0);
}

static void test_faults_parse(void)
{
	struct usb4_udp_faults f;

	CHECK_EQ(usb4_udp_faults_parse(NULL, &f), 0);
	CHECK(f.drop == 0 && f.dup == 0 && f.reorder == 0 && f.corrupt == 0);
	CHECK_EQ(usb4_udp_faults_parse("", &f), 0);
	CHECK_EQ(usb4_udp_faults_parse("drop=0.01", &f), 0);
	CHECK(f.drop == 0.01 && f.dup == 0 && f.reorder == 0 && f.corrupt == 0);
	CHECK_EQ(usb4_udp_faults_parse(
			 "drop=0.1,dup=0.2,reorder=0.3,corrupt=0.4", &f), 0);
	CHECK(f.drop == 0.1 && f.dup == 0.2 && f.reorder == 0.3 &&
	      f.corrupt == 0.4);
	CHECK_EQ(usb4_udp_faults_parse("corrupt=1,drop=0", &f), 0);
	CHECK(f.corrupt == 1 && f.drop == 0);
	CHECK_EQ(usb4_udp_faults_parse("dup=0.5,dup=0.25", &f), 0);
	CHECK(f.dup == 0.25);			/* the last one counts */
	CHECK_EQ(usb4_udp_faults_parse("reorder=1e-3", &f), 0);
	CHECK(f.reorder == 1e-3);

	static const char *const bad[] = {
		"drop=1.5", "drop=-0.1", "drop=inf", "loss=0.1", "DROP=0.1",
		"drop", "drop=", "drop=abc", "=0.1", "drop=0.1;dup=0.1",
		"drop=0.1 dup=0.1", "drop=0.1x", "drop=0.1,,dup=0.1",
		"dropdropdropdropdrop=0.1", ",drop=0.1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = usb4_udp_faults_parse(bad[i], &f);
		if (ret != -FI_EINVAL)
			fprintf(stderr, "faults spec \"%s\" accepted\n", bad[i]);
		CHECK_EQ(ret, -FI_EINVAL);
	}
}

int main(void)
{
	snprintf(root, sizeof(root), "%s/usb4-test-sysfs-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	test_detect_thunderbolt();
	test_speed_and_lanes_variants();
	test_other_driver_not_found();
	test_names_override_driver();
	test_unknown_names();
	test_comma_lists();
	test_faults_parse();
	tree_remove();
	return usb4_test_done("test_iface");
}
