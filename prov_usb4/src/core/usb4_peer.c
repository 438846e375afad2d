/*
 * Peers and the address table behind an fi_av.  An fi_addr_t is an index into
 * the table (for FI_AV_MAP and FI_AV_TABLE alike); a hash from endpoint id to
 * index answers "who sent this frame" for FI_SOURCE and directed receives.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usb4_core.h"

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/*
 * One host = one kernel boot and one network namespace: namespaces stand in
 * for hosts in multi-host tests, and shm must not cross them.
 */
uint64_t usb4_host_id(void)
{
	static uint64_t cached;
	char boot[64] = "";
	struct stat st = {0};
	uint64_t h = 0xcbf29ce484222325ull;
	int fd;

	if (cached)
		return cached;
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, boot, sizeof(boot) - 1);
		(void) n;
		close(fd);
	}
	stat("/proc/self/ns/net", &st);
	h = fnv1a(h, boot, strlen(boot));
	h = fnv1a(h, &st.st_ino, sizeof(st.st_ino));
	cached = h ? h : 1;
	return cached;
}

static size_t hash_slot(uint64_t key, size_t cap)
{
	return (size_t) (key * 0x9e3779b97f4a7c15ull) & (cap - 1);
}

static void hash_put(struct usb4_core_av *av, uint64_t key, fi_addr_t val)
{
	size_t i = hash_slot(key, av->hash_cap);

	while (av->hash_keys[i] && av->hash_keys[i] != key)
		i = (i + 1) & (av->hash_cap - 1);
	av->hash_keys[i] = key;
	av->hash_vals[i] = val;
}

/* Rebuilds the hash at a capacity of at least twice the table's size. */
static int hash_rebuild(struct usb4_core_av *av, size_t min_cap)
{
	size_t cap = 16;
	uint64_t *keys;
	fi_addr_t *vals;

	while (cap < 2 * (min_cap + av->hidden_count))
		cap <<= 1;
	keys = calloc(cap, sizeof(*keys));
	vals = calloc(cap, sizeof(*vals));
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -FI_ENOMEM;
	}
	free(av->hash_keys);
	free(av->hash_vals);
	av->hash_keys = keys;
	av->hash_vals = vals;
	av->hash_cap = cap;
	/* Hidden first: an inserted entry for the same peer overrides it. */
	for (size_t i = 0; i < av->hidden_count; i++)
		hash_put(av, av->hidden[i].addr.ep_id, USB4_HIDDEN_BIT | i);
	for (size_t i = 0; i < av->count; i++)
		if (av->peers[i].in_use)
			hash_put(av, av->peers[i].addr.ep_id, i);
	return 0;
}

int usb4_core_av_init(struct usb4_core_av *av, size_t count_hint)
{
	memset(av, 0, sizeof(*av));
	av->cap = count_hint ? count_hint : 16;
	av->peers = calloc(av->cap, sizeof(*av->peers));
	if (!av->peers)
		return -FI_ENOMEM;
	av->host_id = usb4_host_id();
	return hash_rebuild(av, av->cap);
}

static void peer_close(struct usb4_peer *peer)
{
	usb4_shm_reg_peer_close(peer->reg);
	usb4_shm_peer_close(peer->shm);
	peer->reg = NULL;
	peer->shm = NULL;
	peer->in_use = false;
}

void usb4_core_av_fini(struct usb4_core_av *av)
{
	for (size_t i = 0; i < av->count; i++)
		if (av->peers[i].in_use)
			peer_close(&av->peers[i]);
	free(av->peers);
	free(av->hidden);
	free(av->hash_keys);
	free(av->hash_vals);
	memset(av, 0, sizeof(*av));
}

static int av_reserve(struct usb4_core_av *av)
{
	struct usb4_peer *peers;
	size_t cap = av->cap * 2;

	if (av->count < av->cap)
		return 0;
	peers = realloc(av->peers, cap * sizeof(*peers));
	if (!peers)
		return -FI_ENOMEM;
	memset(peers + av->cap, 0, (cap - av->cap) * sizeof(*peers));
	av->peers = peers;
	av->cap = cap;
	return hash_rebuild(av, cap);
}

static int addr_check(const struct usb4_core_av *av, const struct usb4_addr *a)
{
	if (a->magic != USB4_ADDR_MAGIC || a->version != USB4_ADDR_VERSION ||
	    !a->ep_id)
		return -FI_EINVAL;
	if (a->udp_family != 0 && a->udp_family != 4 && a->udp_family != 6)
		return -FI_EINVAL;
	/* Another host is reachable only through its udp address. */
	if (a->host_id != av->host_id && !a->udp_family)
		return -FI_EHOSTUNREACH;
	return 0;
}

/* Same host: map its inbox, and its registry for RMA. */
static int open_shm_peer(struct usb4_peer *peer, const struct usb4_addr *a)
{
	struct usb4_shm_addr shm = {
		.pid = a->shm_pid, .fd = a->shm_fd, .nonce = a->ep_id,
		.reg_fd = a->reg_fd,
	};
	int ret = usb4_shm_peer_open(&shm, &peer->shm);

	if (ret)
		return ret;
	/* Without its registry a peer is reachable for messages only. */
	if (a->reg_fd >= 0 &&
	    usb4_shm_reg_peer_open(a->shm_pid, a->reg_fd, &peer->reg))
		peer->reg = NULL;
	peer->kind = USB4_PEER_SHM;
	return 0;
}

static void set_udp_peer(struct usb4_peer *peer, const struct usb4_addr *a)
{
	peer->kind = USB4_PEER_UDP;
	peer->udp.family = a->udp_family;
	peer->udp.port = a->udp_port;
	memcpy(peer->udp.ip, a->udp_ip, sizeof(peer->udp.ip));
}

int usb4_core_av_insert(struct usb4_core_av *av, const struct usb4_addr *addr,
			fi_addr_t *fi_addr)
{
	struct usb4_peer *peer;
	int ret;

	ret = addr_check(av, addr);
	if (ret)
		return ret;
	ret = av_reserve(av);
	if (ret)
		return ret;
	peer = &av->peers[av->count];
	if (addr->host_id == av->host_id) {
		ret = open_shm_peer(peer, addr);
		if (ret)
			return ret;
	} else {
		set_udp_peer(peer, addr);
	}
	peer->addr = *addr;
	peer->in_use = true;
	hash_put(av, addr->ep_id, av->count);
	*fi_addr = av->count++;
	return 0;
}

int usb4_core_av_remove(struct usb4_core_av *av, fi_addr_t fi_addr)
{
	struct usb4_peer *peer = usb4_core_av_peer(av, fi_addr);

	if (!peer)
		return -FI_EINVAL;
	peer_close(peer);
	/* Indices are never reused, so removal only has to fix the hash. */
	return hash_rebuild(av, av->cap);
}

struct usb4_peer *usb4_core_av_peer(struct usb4_core_av *av, fi_addr_t fi_addr)
{
	if (fi_addr != FI_ADDR_NOTAVAIL && (fi_addr & USB4_HIDDEN_BIT)) {
		fi_addr &= ~USB4_HIDDEN_BIT;
		return fi_addr < av->hidden_count ? &av->hidden[fi_addr] : NULL;
	}
	if (fi_addr >= av->count || !av->peers[fi_addr].in_use)
		return NULL;
	return &av->peers[fi_addr];
}

uint64_t usb4_core_av_id(struct usb4_core_av *av, fi_addr_t fi_addr)
{
	struct usb4_peer *peer = usb4_core_av_peer(av, fi_addr);

	return peer ? peer->addr.ep_id : 0;
}

int usb4_core_av_insert_hidden(struct usb4_core_av *av, uint64_t ep_id,
			       const struct usb4_udp_addr *udp,
			       fi_addr_t *fi_addr)
{
	struct usb4_peer *peer;

	if (av->hidden_count == av->hidden_cap) {
		size_t cap = av->hidden_cap ? av->hidden_cap * 2 : 8;
		peer = realloc(av->hidden, cap * sizeof(*peer));
		if (!peer)
			return -FI_ENOMEM;
		av->hidden = peer;
		av->hidden_cap = cap;
	}
	peer = &av->hidden[av->hidden_count];
	memset(peer, 0, sizeof(*peer));
	peer->addr.magic = USB4_ADDR_MAGIC;
	peer->addr.version = USB4_ADDR_VERSION;
	peer->addr.ep_id = ep_id;
	peer->kind = USB4_PEER_UDP;
	peer->udp = *udp;
	peer->in_use = true;
	*fi_addr = USB4_HIDDEN_BIT | av->hidden_count++;
	/* Rebuild rather than put: an inserted entry must keep precedence. */
	return hash_rebuild(av, av->cap);
}

fi_addr_t usb4_core_av_reverse(const struct usb4_core_av *av, uint64_t ep_id)
{
	size_t i;

	if (!av || !ep_id)
		return FI_ADDR_NOTAVAIL;
	i = hash_slot(ep_id, av->hash_cap);
	while (av->hash_keys[i]) {
		if (av->hash_keys[i] == ep_id)
			return av->hash_vals[i];
		i = (i + 1) & (av->hash_cap - 1);
	}
	return FI_ADDR_NOTAVAIL;
}
