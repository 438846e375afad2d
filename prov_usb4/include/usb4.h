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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rdma/fabric.h>
#include <rdma/fi_errno.h>
#include <rdma/providers/fi_log.h>
#include <rdma/providers/fi_prov.h>

#define USB4_PROV_NAME		"usb4"
#define USB4_FABRIC_NAME	"usb4"
#define USB4_DOMAIN_NAME	"usb4"
/* Provider version: major.minor of this project, reported by fi_info. */
#define USB4_PROV_VERSION	FI_VERSION(0, 1)
/* Highest libfabric API we implement: the headers we were built against. */
#define USB4_API_VERSION	FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION)

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
	size_t udp_eager_size;	/* the same towards other hosts: one datagram
				 * costs less than a rendezvous round trip */
	size_t ring_slots;	/* frame slots in an endpoint's shm inbox */
	size_t tx_size;		/* outstanding sends per endpoint */
	size_t rx_size;		/* posted receives per endpoint */
	size_t cq_size;		/* default completion queue depth */
	int spin_us;		/* poll this long before blocking in sread/wait */
	size_t mr_max;		/* regions a domain can publish for RMA */
	char *iface;		/* interfaces for other hosts (comma list) */
	char *sysfs_root;	/* where to look for thunderbolt-net */
	char *faults;		/* udp fault injection for tests */
	int peer_timeout_ms;	/* silence after which a udp peer is dead */
	size_t rel_window;	/* datagrams in flight per udp peer */
	int idle_nap_us;	/* longest nap of a CQ read spinning on nothing */
};

extern struct usb4_params usb4_params;

void usb4_params_define(void);
void usb4_params_init(void);

/*
 * The lock of a domain and everything opened from it.  With FI_THREAD_SAFE it
 * is a mutex; with FI_THREAD_DOMAIN (and stricter) the application serialises
 * calls for us and the lock is a no-op.
 */
struct usb4_lock {
	pthread_mutex_t mutex;
	bool enabled;
};

static inline void usb4_lock_init(struct usb4_lock *lock, bool enabled)
{
	pthread_mutex_init(&lock->mutex, NULL);
	lock->enabled = enabled;
}

static inline void usb4_lock_destroy(struct usb4_lock *lock)
{
	pthread_mutex_destroy(&lock->mutex);
}

static inline void usb4_lock_acquire(struct usb4_lock *lock)
{
	if (lock->enabled)
		pthread_mutex_lock(&lock->mutex);
}

static inline void usb4_lock_release(struct usb4_lock *lock)
{
	if (lock->enabled)
		pthread_mutex_unlock(&lock->mutex);
}

/* Random 64-bit value from the kernel's generator (never 0). */
uint64_t usb4_random64(void);

/* Monotonic clock in nanoseconds. */
uint64_t usb4_now_ns(void);

#endif /* USB4_H */
