/*
 * shm registry: a domain's memory registrations published in a memfd so that
 * same-host initiators check and pin them without the target's CPU.
 *
 * Entry protocol (gen is a per-entry generation, even = live, odd = dead):
 *   publish  (owner)     fill key/base/iova/len/access, then gen++ (release):
 *                        the entry goes live.
 *   revoke   (owner)     gen++ (seq_cst): dead; then wait until users == 0.
 *   pin      (initiator) g = gen (acquire), odd -> miss; read the fields;
 *                        users++ (seq_cst); gen (seq_cst) != g -> users--, miss.
 *   unpin    (initiator) users-- (release).
 * Revoke's gen++ and pin's users++ are each followed by a seq_cst load of the
 * other word, so either the initiator sees the entry die or the owner sees it
 * pinned and waits: memory is never accessed after fi_close of its region.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "usb4.h"
#include "usb4_link.h"

#define USB4_REG_MAGIC		0x3147455234425355ull	/* "USB4REG1" */
/* A pinned entry's initiator died: stop waiting for it after this long. */
#define USB4_REG_DRAIN_NS	(2ull * 1000 * 1000 * 1000)

struct usb4_reg_entry {
	_Atomic uint64_t gen;
	uint64_t key;
	uint64_t base;		/* owner's virtual address of byte 0 */
	uint64_t iova;		/* what initiators use as the address of byte 0 */
	uint64_t len;
	uint64_t access;	/* FI_REMOTE_READ | FI_REMOTE_WRITE */
	_Atomic uint32_t users;	/* initiators holding a pin */
	uint32_t ever;		/* ever published: linear probing goes on */
	uint64_t reserved;
};
_Static_assert(sizeof(struct usb4_reg_entry) == 64, "entry is a cache line");

struct usb4_reg_table {
	uint64_t magic;
	uint32_t owner_pid;
	uint32_t capacity;	/* power of two */
	/* Holder pid of the atomics lock, 0 = free.  One lock per target:
	 * atomics of any length on any address exclude each other. */
	_Atomic uint32_t atomic_lock;
	uint32_t reserved;
	struct usb4_reg_entry entries[];
};

struct usb4_shm_reg_peer {
	struct usb4_reg_table *table;
	size_t map_len;
};

struct usb4_shm_reg {
	struct usb4_reg_table *table;
	size_t map_len;
	int fd;
	struct usb4_shm_reg_peer self;	/* our table through the peer API */
};

static size_t table_bytes(size_t capacity)
{
	return sizeof(struct usb4_reg_table) +
	       capacity * sizeof(struct usb4_reg_entry);
}

static uint32_t key_slot(uint64_t key, uint32_t capacity)
{
	return (uint32_t) ((key * 0x9e3779b97f4a7c15ull) >> 32) & (capacity - 1);
}

int usb4_shm_reg_open(struct usb4_shm_reg **regp, size_t capacity)
{
	struct usb4_shm_reg *reg = calloc(1, sizeof(*reg));
	size_t cap = 16;
	int ret;

	if (!reg)
		return -FI_ENOMEM;
	while (cap < capacity)
		cap <<= 1;
	reg->fd = memfd_create("usb4-registry", MFD_CLOEXEC);
	if (reg->fd < 0) {
		ret = -errno;
		goto err_free_reg;
	}
	reg->map_len = table_bytes(cap);
	if (ftruncate(reg->fd, reg->map_len)) {
		ret = -errno;
		goto err_close_fd;
	}
	reg->table = mmap(NULL, reg->map_len, PROT_READ | PROT_WRITE,
			  MAP_SHARED, reg->fd, 0);
	if (reg->table == MAP_FAILED) {
		ret = -errno;
		goto err_close_fd;
	}
	reg->table->owner_pid = getpid();
	reg->table->capacity = cap;
	for (size_t i = 0; i < cap; i++)
		atomic_init(&reg->table->entries[i].gen, 1);
	reg->table->magic = USB4_REG_MAGIC;
	reg->self.table = reg->table;
	reg->self.map_len = reg->map_len;
	*regp = reg;
	return 0;

err_close_fd:
	close(reg->fd);
err_free_reg:
	free(reg);
	return ret;
}

void usb4_shm_reg_close(struct usb4_shm_reg *reg)
{
	if (!reg)
		return;
	reg->table->magic = 0;
	munmap(reg->table, reg->map_len);
	close(reg->fd);
	free(reg);
}

int usb4_shm_reg_fd(const struct usb4_shm_reg *reg)
{
	return reg->fd;
}

struct usb4_shm_reg_peer *usb4_shm_reg_self(struct usb4_shm_reg *reg)
{
	return &reg->self;
}

static bool entry_live(struct usb4_reg_entry *e)
{
	return !(atomic_load_explicit(&e->gen, memory_order_acquire) & 1);
}

/* A dead entry nobody holds may be reused. */
static bool entry_free(struct usb4_reg_entry *e)
{
	return !entry_live(e) && atomic_load(&e->users) == 0;
}

int usb4_shm_reg_publish(struct usb4_shm_reg *reg, uint64_t key, uint64_t base,
			 uint64_t iova, uint64_t len, uint64_t access,
			 uint32_t *slot)
{
	struct usb4_reg_table *t = reg->table;
	struct usb4_reg_entry *free_e = NULL;
	uint32_t i = key_slot(key, t->capacity);

	for (uint32_t n = 0; n < t->capacity; n++, i = (i + 1) & (t->capacity - 1)) {
		struct usb4_reg_entry *e = &t->entries[i];
		if (entry_live(e) && e->key == key)
			return -FI_ENOKEY;
		if (!free_e && entry_free(e))
			free_e = e;
		if (!e->ever)
			break;
	}
	if (!free_e)
		return -FI_ENOSPC;
	free_e->key = key;
	free_e->base = base;
	free_e->iova = iova;
	free_e->len = len;
	free_e->access = access;
	free_e->ever = 1;
	atomic_fetch_add_explicit(&free_e->gen, 1, memory_order_release);
	*slot = free_e - t->entries;
	return 0;
}

void usb4_shm_reg_revoke(struct usb4_shm_reg *reg, uint32_t slot)
{
	struct usb4_reg_entry *e = &reg->table->entries[slot];
	uint64_t deadline = usb4_now_ns() + USB4_REG_DRAIN_NS;
	struct timespec pause = { 0, 50 * 1000 };

	atomic_fetch_add(&e->gen, 1);
	while (atomic_load(&e->users)) {
		if (usb4_now_ns() > deadline) {
			USB4_WARN(FI_LOG_MR, "region still pinned after 2 s: "
				  "an initiator died mid-access\n");
			atomic_store(&e->users, 0);
			break;
		}
		nanosleep(&pause, NULL);
	}
}

/* ---- initiator side ---- */

static int peer_check(const struct usb4_reg_table *t, size_t map_len, pid_t pid)
{
	if (map_len < sizeof(*t) || t->magic != USB4_REG_MAGIC ||
	    t->owner_pid != (uint32_t) pid)
		return -FI_EADDRNOTAVAIL;
	if (!t->capacity || (t->capacity & (t->capacity - 1)) ||
	    table_bytes(t->capacity) > map_len)
		return -FI_EINVAL;
	return 0;
}

int usb4_shm_reg_peer_open(pid_t pid, int fd, struct usb4_shm_reg_peer **peerp)
{
	struct usb4_shm_reg_peer *peer;
	struct stat st;
	char path[64];
	int pfd, ret;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, fd);
	pfd = open(path, O_RDWR | O_CLOEXEC);
	if (pfd < 0)
		return errno == ENOENT ? -FI_EHOSTUNREACH : -errno;
	peer = calloc(1, sizeof(*peer));
	if (!peer || fstat(pfd, &st)) {
		ret = peer ? -errno : -FI_ENOMEM;
		goto err_free_peer;
	}
	peer->map_len = st.st_size;
	peer->table = mmap(NULL, peer->map_len, PROT_READ | PROT_WRITE,
			   MAP_SHARED, pfd, 0);
	if (peer->table == MAP_FAILED) {
		ret = -errno;
		goto err_free_peer;
	}
	ret = peer_check(peer->table, peer->map_len, pid);
	if (ret) {
		munmap(peer->table, peer->map_len);
		goto err_free_peer;
	}
	close(pfd);
	*peerp = peer;
	return 0;

err_free_peer:
	free(peer);
	close(pfd);
	return ret;
}

void usb4_shm_reg_peer_close(struct usb4_shm_reg_peer *peer)
{
	if (!peer)
		return;
	munmap(peer->table, peer->map_len);
	free(peer);
}

/* Bounds in the initiator's address space, overflow-safe. */
static bool in_bounds(uint64_t iova, uint64_t region_len, uint64_t addr,
		      uint64_t len)
{
	if (addr < iova)
		return false;
	uint64_t off = addr - iova;
	return len <= region_len && off <= region_len - len;
}

/* The live entry holding key, or -1; fields copied while live. */
static int find_key(struct usb4_reg_table *t, uint64_t key,
		    struct usb4_reg_entry *copy, uint64_t *gen)
{
	uint32_t cap = t->capacity, i = key_slot(key, cap);

	for (uint32_t n = 0; n < cap; n++, i = (i + 1) & (cap - 1)) {
		struct usb4_reg_entry *e = &t->entries[i];
		uint64_t g = atomic_load_explicit(&e->gen, memory_order_acquire);
		if (!(g & 1) && e->key == key) {
			copy->base = e->base;
			copy->iova = e->iova;
			copy->len = e->len;
			copy->access = e->access;
			*gen = g;
			return (int) i;
		}
		if (!e->ever)
			break;
	}
	return -1;
}

int usb4_shm_pin(struct usb4_shm_reg_peer *peer, uint64_t key, uint64_t addr,
		 uint64_t len, uint64_t access, struct usb4_shm_pin *pin)
{
	struct usb4_reg_table *t = peer->table;
	struct usb4_reg_entry copy, *e;
	uint64_t gen;
	int slot = find_key(t, key, &copy, &gen);

	if (slot < 0 || (copy.access & access) != access ||
	    !in_bounds(copy.iova, copy.len, addr, len))
		return -FI_EACCES;
	e = &t->entries[slot];
	atomic_fetch_add(&e->users, 1);
	if (atomic_load(&e->gen) != gen) {
		atomic_fetch_sub(&e->users, 1);
		return -FI_EACCES;
	}
	pin->peer = peer;
	pin->slot = slot;
	pin->va = copy.base + (addr - copy.iova);
	return 0;
}

void usb4_shm_unpin(struct usb4_shm_pin *pin)
{
	atomic_fetch_sub_explicit(&pin->peer->table->entries[pin->slot].users,
				  1, memory_order_release);
}

void usb4_shm_unpin_all(struct usb4_shm_pin *pins, size_t count)
{
	for (size_t i = 0; i < count; i++)
		usb4_shm_unpin(&pins[i]);
}

/* Spin-then-sleep lock; a holder that died is noticed and displaced. */
void usb4_shm_atomic_lock(struct usb4_shm_reg_peer *peer)
{
	_Atomic uint32_t *lock = &peer->table->atomic_lock;
	uint32_t me = getpid(), holder;
	struct timespec pause = { 0, 1000 };

	for (unsigned spins = 0;; spins++) {
		holder = 0;
		if (atomic_compare_exchange_weak(lock, &holder, me))
			return;
		if (spins < 64)
			continue;
		if (holder && kill(holder, 0) && errno == ESRCH)
			atomic_compare_exchange_strong(lock, &holder, 0);
		nanosleep(&pause, NULL);
	}
}

void usb4_shm_atomic_unlock(struct usb4_shm_reg_peer *peer)
{
	atomic_store_explicit(&peer->table->atomic_lock, 0, memory_order_release);
}
