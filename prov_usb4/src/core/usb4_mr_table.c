/*
 * The registration table: a domain's regions with remote access, in shared
 * memory so that links with one-sided access can publish it to peers.  The
 * core checks every remote access here, whichever way it arrives.
 *
 * Pins are held per process: an entry has USB4_MRT_PINNERS slots, each
 * {pid, count} in one 64-bit word (0 = free), so the owner can tell a pin
 * held by a live process (wait for it) from one a dead process left
 * (clear it), however long the live one takes.
 *
 * Entry protocol (gen is a per-entry generation, even = live, odd = dead):
 *   publish  (owner)     fill key/base/iova/len/access, then gen++ (release):
 *                        the entry goes live.
 *   revoke   (owner)     gen++ (seq_cst): dead; drain then waits until every
 *                        slot is free, clearing those of dead processes.
 *   pin      (anyone)    g = gen (acquire), odd -> miss; read the fields;
 *                        count++ in our process's slot, or claim a free one
 *                        (seq_cst CAS); gen (seq_cst) != g -> unpin, miss.
 *   unpin                count-- (CAS; the slot is freed at 0).
 * Revoke's gen++ and pin's CAS are each followed by a seq_cst load of the
 * other word, so either the pinner sees the entry die or the owner sees it
 * pinned and waits: memory is never accessed after fi_close of its region.
 * Everything read from a peer's table is untrusted: capacity and slots are
 * checked against the mapping's size before use.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usb4_core.h"
#include "usb4_mr_board.h"

#define USB4_MRT_MAGIC		0x3347455234425355ull	/* "USB4REG3" */
/* Processes that may hold pins on one region at once; more wait. */
#define USB4_MRT_PINNERS	4
/* A drain still waiting on our own process after this long is a bug. */
#define USB4_MRT_SELF_WARN_NS	(2ull * 1000 * 1000 * 1000)

struct usb4_mrt_entry {
	_Atomic uint64_t gen;
	uint64_t key;
	uint64_t base;		/* owner's virtual address of byte 0 */
	uint64_t iova;		/* what initiators use as the address of byte 0 */
	uint64_t len;
	uint64_t access;	/* FI_REMOTE_READ | FI_REMOTE_WRITE */
	uint32_t ever;		/* ever published: linear probing goes on */
	uint32_t reserved;
	/* pid << 32 | pins that process holds; 0 = free */
	_Atomic uint64_t pinners[USB4_MRT_PINNERS];
	uint64_t pad[5];
};
_Static_assert(sizeof(struct usb4_mrt_entry) == 128, "entry is two cache lines");

struct usb4_mrt_header {
	uint64_t magic;
	uint32_t owner_pid;
	uint32_t capacity;	/* power of two */
	/* Holder pid of the atomics lock, 0 = free.  One lock per target:
	 * atomics of any length on any address exclude each other. */
	_Atomic uint32_t atomic_lock;
	uint32_t features;	/* USB4_MRT_BOARD: a board after the entries;
				 * USB4_MRT_BOARD_RMA: it serves gets, puts */
	struct usb4_mrt_entry entries[];
};

struct usb4_mr_table {
	struct usb4_mrt_header *hdr;
	size_t map_len;
	uint32_t capacity;	/* ours, checked against the mapping */
	int fd;			/* -1 for a view of a peer's table */
	struct usb4_mrt_board *board;	/* NULL: the owner has none */
	bool board_rma;		/* the owner serves gets and puts on it */
	struct usb4_board_pace board_pace;	/* a view's */
};

static size_t table_bytes(size_t capacity)
{
	return sizeof(struct usb4_mrt_header) +
	       capacity * sizeof(struct usb4_mrt_entry);
}

static uint32_t key_slot(uint64_t key, uint32_t capacity)
{
	return (uint32_t) ((key * 0x9e3779b97f4a7c15ull) >> 32) & (capacity - 1);
}

int usb4_mr_table_open(struct usb4_mr_table **tablep, size_t capacity)
{
	struct usb4_mr_table *t = calloc(1, sizeof(*t));
	size_t cap = 16;
	void *mem;
	int ret;

	if (!t)
		return -FI_ENOMEM;
	while (cap < capacity)
		cap <<= 1;
	t->map_len = table_bytes(cap) + sizeof(struct usb4_mrt_board);
	ret = usb4_shared_create("usb4-registrations", t->map_len, &mem, &t->fd);
	if (ret) {
		free(t);
		return ret;
	}
	t->hdr = mem;
	t->capacity = cap;
	t->hdr->owner_pid = usb4_pid();
	t->hdr->capacity = cap;
	t->hdr->features = USB4_MRT_BOARD | USB4_MRT_BOARD_RMA;
	t->board = (void *) ((char *) mem + table_bytes(cap));
	t->board_rma = true;
	for (size_t i = 0; i < cap; i++)
		atomic_init(&t->hdr->entries[i].gen, 1);
	t->hdr->magic = USB4_MRT_MAGIC;
	*tablep = t;
	return 0;
}

void usb4_mr_table_close(struct usb4_mr_table *t)
{
	if (!t)
		return;
	t->hdr->magic = 0;
	usb4_shared_destroy(t->hdr, t->map_len, t->fd);
	free(t);
}

int usb4_mr_table_fd(const struct usb4_mr_table *t)
{
	return t ? t->fd : -1;
}

struct usb4_mr_table *usb4_mr_table_view(void *mem, size_t len)
{
	struct usb4_mrt_header *h = mem;
	struct usb4_mr_table *t;
	bool board;

	if (!mem || len < sizeof(*h) || h->magic != USB4_MRT_MAGIC)
		return NULL;
	if (!h->capacity || (h->capacity & (h->capacity - 1)) ||
	    table_bytes(h->capacity) > len)
		return NULL;
	board = h->features & USB4_MRT_BOARD;
	if (board && len - table_bytes(h->capacity) <
		     sizeof(struct usb4_mrt_board))
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->hdr = h;
	t->map_len = len;
	t->capacity = h->capacity;
	t->fd = -1;
	/* An older owner's table has none: its views do without. */
	if (board) {
		t->board = (void *) ((char *) mem + table_bytes(h->capacity));
		t->board_rma = h->features & USB4_MRT_BOARD_RMA;
	}
	return t;
}

void usb4_mr_table_view_free(struct usb4_mr_table *view)
{
	free(view);
}

struct usb4_mrt_board *usb4_mr_table_board(struct usb4_mr_table *t)
{
	return t ? t->board : NULL;
}

bool usb4_mr_table_board_rma(const struct usb4_mr_table *t)
{
	return t && t->board && t->board_rma;
}

uint32_t usb4_mr_table_owner(const struct usb4_mr_table *t)
{
	return t->hdr->owner_pid;
}

struct usb4_board_pace *usb4_mr_table_board_pace(struct usb4_mr_table *t)
{
	return &t->board_pace;
}

static bool entry_live(struct usb4_mrt_entry *e)
{
	return !(atomic_load_explicit(&e->gen, memory_order_acquire) & 1);
}

static bool entry_pinned(struct usb4_mrt_entry *e)
{
	for (int i = 0; i < USB4_MRT_PINNERS; i++)
		if (atomic_load(&e->pinners[i]))
			return true;
	return false;
}

/* A dead entry nobody holds may be reused. */
static bool entry_free(struct usb4_mrt_entry *e)
{
	return !entry_live(e) && !entry_pinned(e);
}

int usb4_mr_table_publish(struct usb4_mr_table *t, uint64_t key, uint64_t base,
			  uint64_t iova, uint64_t len, uint64_t access,
			  uint32_t *slot)
{
	struct usb4_mrt_entry *free_e = NULL;
	uint32_t cap = t->capacity, i = key_slot(key, cap);

	/* Peers trust base + len as the owner's memory: never empty, never
	 * past the top of the address space, however addressed. */
	if (!len || usb4_range_wraps(base, len) || usb4_range_wraps(iova, len))
		return -FI_EINVAL;
	for (uint32_t n = 0; n < cap; n++, i = (i + 1) & (cap - 1)) {
		struct usb4_mrt_entry *e = &t->hdr->entries[i];
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
	*slot = free_e - t->hdr->entries;
	return 0;
}

void usb4_mr_table_revoke(struct usb4_mr_table *t, uint32_t slot)
{
	atomic_fetch_add(&t->hdr->entries[slot].gen, 1);
}

/* Clears the slots of processes that died holding pins; true when every
 * slot is free. */
static bool drained(struct usb4_mrt_entry *e, bool *self)
{
	bool done = true;

	*self = false;
	for (int i = 0; i < USB4_MRT_PINNERS; i++) {
		uint64_t w = atomic_load(&e->pinners[i]);
		uint32_t pid = (uint32_t) (w >> 32);

		if (!w)
			continue;
		if (usb4_pid_gone(pid)) {
			atomic_compare_exchange_strong(&e->pinners[i], &w, 0);
			continue;
		}
		*self |= pid == usb4_pid();
		done = false;
	}
	return done;
}

void usb4_mr_table_drain(struct usb4_mr_table *t, uint32_t slot)
{
	struct usb4_mrt_entry *e = &t->hdr->entries[slot];
	uint64_t start = usb4_now_ns();
	struct timespec pause = { 0, 50 * 1000 };
	bool self, warned = false;

	while (!drained(e, &self)) {
		if (self && !warned &&
		    usb4_now_ns() - start > USB4_MRT_SELF_WARN_NS) {
			USB4_WARN(FI_LOG_MR, "a region being closed is still "
				  "pinned by this process after 2 s\n");
			warned = true;
		}
		nanosleep(&pause, NULL);
	}
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
static int find_key(struct usb4_mr_table *t, uint64_t key,
		    struct usb4_mrt_entry *copy, uint64_t *gen)
{
	uint32_t cap = t->capacity, i = key_slot(key, cap);

	for (uint32_t n = 0; n < cap; n++, i = (i + 1) & (cap - 1)) {
		struct usb4_mrt_entry *e = &t->hdr->entries[i];
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

/* Takes a pin for this process: its slot, or a free one; the slot index,
 * or -1 when every slot is held by other processes. */
static int hold(struct usb4_mrt_entry *e, uint32_t me)
{
	for (int i = 0; i < USB4_MRT_PINNERS; i++) {
		uint64_t w = atomic_load(&e->pinners[i]);

		while ((uint32_t) (w >> 32) == me)
			if (atomic_compare_exchange_weak(&e->pinners[i], &w, w + 1))
				return i;
	}
	for (int i = 0; i < USB4_MRT_PINNERS; i++) {
		uint64_t w = 0;

		if (atomic_compare_exchange_strong(&e->pinners[i], &w,
						   (uint64_t) me << 32 | 1))
			return i;
		if ((uint32_t) (w >> 32) == me)	/* a thread of ours took it */
			return hold(e, me);
	}
	return -1;
}

static void release(struct usb4_mrt_entry *e, int holder)
{
	uint64_t w = atomic_load(&e->pinners[holder]), next;

	do
		next = (uint32_t) w == 1 ? 0 : w - 1;
	while (!atomic_compare_exchange_weak(&e->pinners[holder], &w, next));
}

int usb4_mr_pin(struct usb4_mr_table *t, uint64_t key, uint64_t addr,
		uint64_t len, uint64_t access, struct usb4_pin *pin)
{
	struct usb4_mrt_entry copy, *e;
	uint64_t gen;
	int slot = t ? find_key(t, key, &copy, &gen) : -1, holder;

	if (slot < 0 || (copy.access & access) != access ||
	    !in_bounds(copy.iova, copy.len, addr, len))
		return -FI_EACCES;
	e = &t->hdr->entries[slot];
	holder = hold(e, usb4_pid());
	if (holder < 0)
		return -FI_EAGAIN;
	if (atomic_load(&e->gen) != gen) {
		release(e, holder);
		return -FI_EACCES;
	}
	pin->table = t;
	pin->slot = slot;
	pin->holder = (uint8_t) holder;
	pin->va = copy.base + (addr - copy.iova);
	return 0;
}

void usb4_mr_unpin(struct usb4_pin *pin)
{
	release(&pin->table->hdr->entries[pin->slot], pin->holder);
}

void usb4_mr_unpin_all(struct usb4_pin *pins, size_t count)
{
	for (size_t i = 0; i < count; i++)
		usb4_mr_unpin(&pins[i]);
}

/* Spin-then-sleep lock; a holder that died is noticed and displaced. */
void usb4_mr_atomic_lock(struct usb4_mr_table *t)
{
	_Atomic uint32_t *lock = &t->hdr->atomic_lock;
	uint32_t me = usb4_pid(), holder;
	struct timespec pause = { 0, 1000 };

	for (unsigned spins = 0;; spins++) {
		holder = 0;
		if (atomic_compare_exchange_weak(lock, &holder, me))
			return;
		if (spins < 64)
			continue;
		if (holder && usb4_pid_gone(holder))
			atomic_compare_exchange_strong(lock, &holder, 0);
		nanosleep(&pause, NULL);
	}
}

void usb4_mr_atomic_unlock(struct usb4_mr_table *t)
{
	atomic_store_explicit(&t->hdr->atomic_lock, 0, memory_order_release);
}

/* ---- the domain's side ---- */

int usb4_core_domain_open(struct usb4_core_domain *dom, size_t mr_max)
{
	return usb4_mr_table_open(&dom->mrs, mr_max);
}

void usb4_core_domain_close(struct usb4_core_domain *dom)
{
	usb4_mr_table_close(dom->mrs);
	dom->mrs = NULL;
}

int usb4_core_mr_publish(struct usb4_core_domain *dom, uint64_t key,
			 const void *base, uint64_t len, uint64_t iova,
			 uint64_t access, struct usb4_core_mr *mr)
{
	int ret = usb4_mr_table_publish(dom->mrs, key, (uintptr_t) base, iova,
					len, access, &mr->slot);

	mr->published = ret == 0;
	return ret;
}
