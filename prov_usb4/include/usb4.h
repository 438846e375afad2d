/*
 * usb4 provider: what every layer shares.
 *
 * The provider descriptor, the tunables read once at load time, logging
 * shorthands and the one lock type.  Layer headers include this one; this one
 * includes no layer header.
 */
#ifndef USB4_H
#define USB4_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include <rdma/fabric.h>
#include <rdma/fi_errno.h>
#include <rdma/providers/fi_log.h>
#include <rdma/providers/fi_prov.h>

#define USB4_PROV_NAME		"usb4"
#define USB4_FABRIC_NAME	"usb4"
#define USB4_DOMAIN_NAME	"usb4"
/* Provider version: major.minor of this project, reported by fi_info. */
#define USB4_PROV_VERSION	FI_VERSION(0, 1)
/* The libfabric headers we were built against: the oldest API we serve.
 * The API we report is the running library's (api/usb4_libfabric.c). */
#define USB4_API_BUILT		FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION)

#define USB4_IOV_LIMIT		4
/* Largest message, enforced by every send: 4 GiB - 1. */
#define USB4_MAX_MSG_SIZE	((size_t) UINT32_MAX)

#define usb4_container_of(ptr, type, field) \
	((type *) ((char *) (ptr) - offsetof(type, field)))

extern struct fi_provider usb4_prov;

#define USB4_WARN(subsys, ...)	FI_WARN(&usb4_prov, subsys, __VA_ARGS__)
#define USB4_INFO(subsys, ...)	FI_INFO(&usb4_prov, subsys, __VA_ARGS__)
#define USB4_DBG(subsys, ...)	FI_DBG(&usb4_prov, subsys, __VA_ARGS__)

/*
 * Tunables.  Each is an fi_param_define'd FI_USB4_<NAME>; usb4_params_init()
 * reads them once when libfabric loads the provider.
 */
struct usb4_params {
	size_t eager_size;	/* largest message sent inline in frames */
	size_t stream_eager_size;	/* the same towards peers whose link
					 * cannot read our memory (other
					 * hosts): one frame costs less than a
					 * rendezvous round trip */
	size_t ring_slots;	/* frame slots in an endpoint's shm inbox */
	size_t tx_size;		/* outstanding sends per endpoint */
	size_t rx_size;		/* posted receives per endpoint */
	size_t cq_size;		/* default completion queue depth */
	int spin_us;		/* poll this long before blocking in sread/wait */
	int yield_us;		/* an empty fi_cq_read spinning this long yields
				 * the CPU (never sleeps); 0: never */
	size_t mr_max;		/* regions a domain can publish for RMA */
	char *iface;		/* interfaces for other hosts (comma list) */
	char *sysfs_root;	/* where to look for thunderbolt-net */
	char *faults;		/* udp fault injection for tests */
	int peer_timeout_ms;	/* silence after which a udp peer is dead */
	int unknown_access_wait_ms;	/* a remote access from a sender not
					 * yet inserted waits this long for
					 * the insert before it is refused */
	size_t rel_window;	/* datagrams in flight per udp peer */
	size_t udp_buffers;	/* bytes one udp link may hold in copies of
				 * frames (resend and reorder buffers) */
	bool udp_placement;	/* receive DATA payloads in place */
	char *auth_key;		/* the job key, when the application gives
				 * none (usb4_auth_key.c) */
	char *auth_key_file;	/* a file holding it */
	size_t unexp_peer_bytes;	/* unexpected messages one sender may
					 * have queued at an endpoint: payload
					 * copies + a fixed cost per entry */
	size_t unexp_bytes;	/* the same for all senders together */
	int progress_idle_ms;	/* the application away this long, a
				 * domain's progress thread serves its
				 * endpoints; 0: no thread */
	bool cc;		/* congestion control towards other hosts */
	int keepalive_ms;	/* an idle udp peer is probed after this */
	int unreachable_confirm_ms;	/* a peer whose address the kernel
					 * reports unreachable (ICMP) is dead
					 * unless it answers within this */
	int rail_timeout_ms;	/* silence that retires one of several rails
				 * to a udp peer */
	bool udp_gso;		/* batch small datagrams with UDP GSO */
	int idle_block_us;	/* fi_cq_read called back to back finding
				 * nothing this long blocks (briefly) in the
				 * kernel; 0: never */
	size_t stream_early_size;	/* a rendezvous to another host streams
				 * this many bytes before its CTS; 0: none */
};

extern struct usb4_params usb4_params;

void usb4_params_define(void);
void usb4_params_init(void);

/*
 * The lock of a domain and everything opened from it.  With FI_THREAD_SAFE it
 * is a mutex; with FI_THREAD_DOMAIN (and stricter) the application serialises
 * calls for us and the lock is a no-op, until a thread of our own (the
 * progress thread) shares the domain: then it is biased to the application
 * (usb4_lock_biased.c), whose calls take it without a locked instruction,
 * and the thread takes it with the _aside functions.  A mutex where the
 * bias is not possible.
 */
struct usb4_lock {
	pthread_mutex_t mutex;
	bool enabled;
	bool biased;
	_Atomic int app_in;		/* biased: an application call is in */
	_Atomic int aside_wants;	/* biased: the thread wants or holds it */
};

void usb4_lock_app_wait(struct usb4_lock *lock);
bool usb4_lock_bias(struct usb4_lock *lock);
bool usb4_lock_aside_try(struct usb4_lock *lock);
void usb4_lock_aside_acquire(struct usb4_lock *lock);
void usb4_lock_aside_release(struct usb4_lock *lock);

static inline void usb4_lock_init(struct usb4_lock *lock, bool enabled)
{
	pthread_mutex_init(&lock->mutex, NULL);
	lock->enabled = enabled;
	lock->biased = false;
	atomic_init(&lock->app_in, 0);
	atomic_init(&lock->aside_wants, 0);
}

static inline void usb4_lock_destroy(struct usb4_lock *lock)
{
	pthread_mutex_destroy(&lock->mutex);
}

static inline void usb4_lock_acquire(struct usb4_lock *lock)
{
	if (!lock->enabled)
		return;
	if (!lock->biased) {
		pthread_mutex_lock(&lock->mutex);
		return;
	}
	/* Dekker's half without the fence: the thread's membarrier is it. */
	atomic_store_explicit(&lock->app_in, 1, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&lock->aside_wants, memory_order_acquire))
		usb4_lock_app_wait(lock);
}

static inline void usb4_lock_release(struct usb4_lock *lock)
{
	if (!lock->enabled)
		return;
	if (lock->biased)
		atomic_store_explicit(&lock->app_in, 0, memory_order_release);
	else
		pthread_mutex_unlock(&lock->mutex);
}

/* Takes the lock only if nobody holds it: true when taken.  The
 * application's side. */
static inline bool usb4_lock_try(struct usb4_lock *lock)
{
	if (!lock->enabled)
		return true;
	if (lock->biased) {
		usb4_lock_acquire(lock);
		return true;
	}
	return pthread_mutex_trylock(&lock->mutex) == 0;
}

/* Makes a no-op lock real, for a thread of our own that shares the
 * domain: biased when the kernel allows, else a mutex.  Only while no
 * thread holds it (the application serialises its calls, and none is
 * inside one). */
static inline void usb4_lock_make_real(struct usb4_lock *lock)
{
	lock->biased = usb4_lock_bias(lock);
	lock->enabled = true;
}

/* ---- iovec arithmetic (usb4_iov.c) ---- */

size_t usb4_iov_len(const struct iovec *iov, size_t count);
/* Describes bytes [off, off + len) of an iov list in out, skipping empty
 * entries; returns how many entries (at most max) it used. */
int usb4_iov_slice(const struct iovec *iov, size_t count, uint64_t off,
		   size_t len, struct iovec *out, int max);
/* Copies len bytes of src into an iov list (up to USB4_IOV_LIMIT entries),
 * starting off bytes in. */
void usb4_iov_copy_in(const struct iovec *iov, size_t count, uint64_t off,
		      const void *src, size_t len);
/* Copies the first len bytes of an iov list (up to USB4_IOV_LIMIT entries)
 * into dst. */
void usb4_iov_copy_out(const struct iovec *iov, size_t count, void *dst,
		       size_t len);

/* Whether the iov list is one the caller may hand us: every entry with bytes
 * has an address, none wraps the address space, the total fits a size_t.
 * NULL with length 0 is fine. */
bool usb4_iov_valid(const struct iovec *iov, size_t count);
/* The same for one buffer, inline: what a send of one buffer checks. */
static inline bool usb4_buf_valid(const void *buf, size_t len)
{
	return !len || (buf && (uintptr_t) buf + (len - 1) >= (uintptr_t) buf);
}

/* n bytes from s to d (which do not overlap).  Up to USB4_COPY_SMALL_MAX
 * bytes, a small message's payload, in a few fixed-size moves that may
 * overlap, each inlined: at these sizes a call to memcpy costs more than
 * the copy.  Never reads outside [s, s + n) nor writes outside [d, d + n). */
#define USB4_COPY_SMALL_MAX	48
static inline void usb4_copy_small(void *dst, const void *src, size_t n)
{
	char *d = dst;
	const char *s = src;

	if (n > USB4_COPY_SMALL_MAX) {
		memcpy(d, s, n);
	} else if (n >= 16) {
		memcpy(d, s, 16);
		if (n > 32)
			memcpy(d + 16, s + 16, 16);
		memcpy(d + n - 16, s + n - 16, 16);
	} else if (n >= 8) {
		memcpy(d, s, 8);
		memcpy(d + n - 8, s + n - 8, 8);
	} else if (n >= 4) {
		memcpy(d, s, 4);
		memcpy(d + n - 4, s + n - 4, 4);
	} else if (n) {
		d[0] = s[0];
		d[n / 2] = s[n / 2];
		d[n - 1] = s[n - 1];
	}
}

/* ---- ranges of this process's memory (usb4_mapped.c) ---- */

/* Whether [start, start + len) runs past the top of a 64-bit space. */
bool usb4_range_wraps(uint64_t start, uint64_t len);
/* Whether [buf, buf + len) is memory of this process we may let peers at:
 * 0, or -FI_EINVAL for NULL, a range that wraps, a range not mapped
 * throughout or whose first or last byte cannot be read.  Length 0: 0. */
int usb4_mem_check(const void *buf, size_t len);

/* Random 64-bit value from the kernel's generator (never 0). */
uint64_t usb4_random64(void);

/* Monotonic clock in nanoseconds. */
uint64_t usb4_now_ns(void);

/* The same clock as the kernel last ticked it (a few ms behind, never a
 * system call): for checks counted in hundreds of ms on hot paths. */
uint64_t usb4_coarse_now_ns(void);

/* This process's id, without a system call each time (kept right across
 * fork). */
uint32_t usb4_pid(void);

/* Whether a process of this host has exited (its pid names nobody). */
bool usb4_pid_gone(uint32_t pid);

/* Same value in every process of one host: boot id and network namespace
 * (namespaces stand in for hosts in multi-host tests). */
uint64_t usb4_host_id(void);

/*
 * Memory other processes of this host can map: a memfd of len bytes,
 * mapped read-write here.  The fd is what an address names (peers open it
 * through /proc/<pid>/fd/<fd>).  0 or a negative FI_E* code.
 */
int usb4_shared_create(const char *name, size_t len, void **mem, int *fd);
void usb4_shared_destroy(void *mem, size_t len, int fd);

/*
 * A wait object, owned by a CQ or a counter: any number of threads sleep on
 * it at once, each on an eventfd of its own (one per thread, made on first
 * use), so one sleeper leaving or draining never hides a signal from
 * another, and a signal costs a system call only while somebody sleeps.
 *   sleeper:    fd = sleep_begin; re-check the condition; poll fd (and the
 *               links' fds); sleep_end
 *   signaller:  make the news visible; usb4_waiter_signal
 * sleep_begin and signal are sequentially consistent, so either the sleeper
 * sees the news or the signaller sees the sleeper.
 */
#include "usb4_list.h"

struct usb4_waiter {
	pthread_mutex_t lock;		/* guards sleepers */
	struct usb4_list sleepers;	/* struct usb4_sleeper */
	_Atomic unsigned count;		/* entries in sleepers */
};

/* One thread asleep on a waiter; lives on the sleeper's stack. */
struct usb4_sleeper {
	struct usb4_list link;
	int fd;
};

void usb4_waiter_init(struct usb4_waiter *w);
void usb4_waiter_fini(struct usb4_waiter *w);
void usb4_waiter_signal(struct usb4_waiter *w);
/* The fd to poll, or a negative FI_E* code (no eventfd: do not sleep). */
int usb4_waiter_sleep_begin(struct usb4_waiter *w, struct usb4_sleeper *s);
void usb4_waiter_sleep_end(struct usb4_waiter *w, struct usb4_sleeper *s);

#endif /* USB4_H */
