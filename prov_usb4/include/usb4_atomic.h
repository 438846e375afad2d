/* Atomic operations: support table and arithmetic (core, no I/O). */
#ifndef USB4_ATOMIC_H
#define USB4_ATOMIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rdma/fi_atomic.h>

#include "usb4.h"

/* Largest atomic payload per operation, in bytes. */
#define USB4_ATOMIC_MAX_BYTES	4096

enum usb4_atomic_kind {
	USB4_ATOMIC_BASE,	/* fi_atomic */
	USB4_ATOMIC_FETCH,	/* fi_fetch_atomic */
	USB4_ATOMIC_COMPARE,	/* fi_compare_atomic */
};

size_t usb4_atomic_size(enum fi_datatype dt);
bool usb4_atomic_supported(enum usb4_atomic_kind kind, enum fi_datatype dt,
			   enum fi_op op);
size_t usb4_atomic_max_count(enum fi_datatype dt);
/* The remote rights an operation needs on its target. */
uint64_t usb4_atomic_access(enum usb4_atomic_kind kind, enum fi_op op);
/* Gathers exactly count elements of size from an ioc list into buf;
 * -FI_EINVAL when the list holds more or fewer. */
int usb4_atomic_gather(const struct fi_ioc *ioc, size_t n, size_t size,
		       char *buf, size_t count);
/* Scatters at most len bytes of buf over an ioc list. */
void usb4_atomic_scatter(const struct fi_ioc *ioc, size_t n, size_t size,
			 const char *buf, size_t len);

/* Updates count elements of dst with operand src and compare cmp (either
 * may be NULL where the operation takes none). */
int usb4_atomic_calc(enum fi_datatype dt, enum fi_op op, size_t count,
		     void *dst, const void *src, const void *cmp);

#endif /* USB4_ATOMIC_H */
