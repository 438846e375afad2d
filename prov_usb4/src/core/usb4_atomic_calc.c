/*
 * The arithmetic of atomics: which (operation, datatype) pairs we support,
 * what rights and operand layout each needs, and how each updates the target
 * values.  Pure functions, no I/O: the protocol
 * code reads the target, calls usb4_atomic_calc(), writes the target back, all
 * under the target's atomics lock.
 */
#include <complex.h>
#include <string.h>

#include "usb4_atomic.h"

enum calc_class { CLASS_NONE, CLASS_INT, CLASS_REAL, CLASS_COMPLEX };

static enum calc_class class_of(enum fi_datatype dt)
{
	switch (dt) {
	case FI_INT8: case FI_UINT8: case FI_INT16: case FI_UINT16:
	case FI_INT32: case FI_UINT32: case FI_INT64: case FI_UINT64:
		return CLASS_INT;
	case FI_FLOAT: case FI_DOUBLE: case FI_LONG_DOUBLE:
		return CLASS_REAL;
	case FI_FLOAT_COMPLEX: case FI_DOUBLE_COMPLEX:
	case FI_LONG_DOUBLE_COMPLEX:
		return CLASS_COMPLEX;
	default:
		return CLASS_NONE;
	}
}

size_t usb4_atomic_size(enum fi_datatype dt)
{
	static const size_t sizes[] = {
		[FI_INT8] = 1, [FI_UINT8] = 1, [FI_INT16] = 2, [FI_UINT16] = 2,
		[FI_INT32] = 4, [FI_UINT32] = 4, [FI_INT64] = 8, [FI_UINT64] = 8,
		[FI_FLOAT] = sizeof(float), [FI_DOUBLE] = sizeof(double),
		[FI_FLOAT_COMPLEX] = sizeof(float complex),
		[FI_DOUBLE_COMPLEX] = sizeof(double complex),
		[FI_LONG_DOUBLE] = sizeof(long double),
		[FI_LONG_DOUBLE_COMPLEX] = sizeof(long double complex),
	};

	if ((unsigned) dt >= sizeof(sizes) / sizeof(sizes[0]))
		return 0;
	return sizes[dt];
}

/* Which operations each call family accepts (fi_atomic(3)). */
static bool op_in_kind(enum usb4_atomic_kind kind, enum fi_op op)
{
	switch (kind) {
	case USB4_ATOMIC_BASE:
		return op <= FI_BXOR || op == FI_ATOMIC_WRITE;
	case USB4_ATOMIC_FETCH:
		return op <= FI_ATOMIC_WRITE;
	case USB4_ATOMIC_COMPARE:
		return op >= FI_CSWAP && op <= FI_MSWAP;
	}
	return false;
}

/* Which operations make sense for each class of datatype. */
static bool op_in_class(enum calc_class cls, enum fi_op op)
{
	switch (op) {
	case FI_BOR: case FI_BAND: case FI_BXOR: case FI_MSWAP:
		return cls == CLASS_INT;
	case FI_MIN: case FI_MAX: case FI_LOR: case FI_LAND: case FI_LXOR:
	case FI_CSWAP_LE: case FI_CSWAP_LT: case FI_CSWAP_GE: case FI_CSWAP_GT:
		return cls == CLASS_INT || cls == CLASS_REAL;
	case FI_SUM: case FI_PROD: case FI_ATOMIC_READ: case FI_ATOMIC_WRITE:
	case FI_CSWAP: case FI_CSWAP_NE:
		return cls != CLASS_NONE;
	default:
		return false;
	}
}

bool usb4_atomic_supported(enum usb4_atomic_kind kind, enum fi_datatype dt,
			   enum fi_op op)
{
	return op_in_kind(kind, op) && op_in_class(class_of(dt), op);
}

uint64_t usb4_atomic_access(enum usb4_atomic_kind kind, enum fi_op op)
{
	if (op == FI_ATOMIC_READ)
		return FI_REMOTE_READ;
	if (kind == USB4_ATOMIC_BASE)
		return FI_REMOTE_WRITE;
	return FI_REMOTE_READ | FI_REMOTE_WRITE;
}

int usb4_atomic_gather(const struct fi_ioc *ioc, size_t n, size_t size,
		       char *buf, size_t count)
{
	size_t have = 0;

	for (size_t i = 0; i < n; i++) {
		if (ioc[i].count > count - have)
			return -FI_EINVAL;
		memcpy(buf + have * size, ioc[i].addr, ioc[i].count * size);
		have += ioc[i].count;
	}
	return have == count ? 0 : -FI_EINVAL;
}

void usb4_atomic_scatter(const struct fi_ioc *ioc, size_t n, size_t size,
			 const char *buf, size_t len)
{
	for (size_t i = 0; i < n && len; i++) {
		size_t b = ioc[i].count * size < len ? ioc[i].count * size : len;
		memcpy(ioc[i].addr, buf, b);
		buf += b;
		len -= b;
	}
}

size_t usb4_atomic_max_count(enum fi_datatype dt)
{
	size_t size = usb4_atomic_size(dt);

	return size ? USB4_ATOMIC_MAX_BYTES / size : 0;
}

/* Operations every class has; d, s and c are element lvalues. */
#define CALC_COMMON(op, d, s, c)					\
	case FI_ATOMIC_READ: break;					\
	case FI_ATOMIC_WRITE: d = s; break;				\
	case FI_CSWAP: if (c == d) d = s; break;			\
	case FI_CSWAP_NE: if (c != d) d = s; break;

/* Operations of ordered types (integers and reals). */
#define CALC_ORDERED(op, d, s, c)					\
	case FI_MIN: if (s < d) d = s; break;				\
	case FI_MAX: if (s > d) d = s; break;				\
	case FI_LOR: d = (d || s); break;				\
	case FI_LAND: d = (d && s); break;				\
	case FI_LXOR: d = ((d && !s) || (!d && s)); break;		\
	case FI_CSWAP_LE: if (c <= d) d = s; break;			\
	case FI_CSWAP_LT: if (c < d) d = s; break;			\
	case FI_CSWAP_GE: if (c >= d) d = s; break;			\
	case FI_CSWAP_GT: if (c > d) d = s; break;

/* Sum and product of reals and complex numbers. */
#define CALC_ARITH(op, d, s)						\
	case FI_SUM: d = d + s; break;					\
	case FI_PROD: d = d * s; break;

/* Integers wrap, as the hardware's atomics do; computed in an unsigned
 * type at least as wide as int (small types promote to int) because a
 * signed overflow, which operands from a peer may cause, is undefined. */
#define CALC_ARITH_WRAP(op, d, s, UT)					\
	case FI_SUM: d = (__typeof__(d)) ((UT) d + (UT) s); break;	\
	case FI_PROD: d = (__typeof__(d)) ((UT) d * (UT) s); break;

#define CALC_BITS(op, d, s, c)						\
	case FI_BOR: d = d | s; break;					\
	case FI_BAND: d = d & s; break;					\
	case FI_BXOR: d = d ^ s; break;					\
	case FI_MSWAP: d = (s & c) | (d & ~c); break;

/* One function per datatype; CASES lists the operations its class has. */
#define DEFINE_CALC(name, T, CASES)					\
static void calc_##name(enum fi_op op, size_t n, T *dst, const T *src,	\
			const T *cmp)					\
{									\
	for (size_t i = 0; i < n; i++) {				\
		T s = src ? src[i] : 0, c = cmp ? cmp[i] : 0;		\
		switch (op) {						\
		CALC_COMMON(op, dst[i], s, c)				\
		CASES							\
		default: break;						\
		}							\
	}								\
}

#define DEFINE_INT(name, T, UT) DEFINE_CALC(name, T,			\
	CALC_ARITH_WRAP(op, dst[i], s, UT)				\
	CALC_ORDERED(op, dst[i], s, c)					\
	CALC_BITS(op, dst[i], s, c))
#define DEFINE_REAL(name, T) DEFINE_CALC(name, T,			\
	CALC_ARITH(op, dst[i], s)					\
	CALC_ORDERED(op, dst[i], s, c))
#define DEFINE_COMPLEX(name, T) DEFINE_CALC(name, T,			\
	CALC_ARITH(op, dst[i], s))

DEFINE_INT(i8, int8_t, unsigned)
DEFINE_INT(u8, uint8_t, unsigned)
DEFINE_INT(i16, int16_t, unsigned)
DEFINE_INT(u16, uint16_t, unsigned)
DEFINE_INT(i32, int32_t, uint32_t)
DEFINE_INT(u32, uint32_t, uint32_t)
DEFINE_INT(i64, int64_t, uint64_t)
DEFINE_INT(u64, uint64_t, uint64_t)
DEFINE_REAL(f32, float)
DEFINE_REAL(f64, double)
DEFINE_REAL(f80, long double)
DEFINE_COMPLEX(c32, float complex)
DEFINE_COMPLEX(c64, double complex)
DEFINE_COMPLEX(c80, long double complex)

int usb4_atomic_calc(enum fi_datatype dt, enum fi_op op, size_t count,
		     void *dst, const void *src, const void *cmp)
{
	if (class_of(dt) == CLASS_NONE || !op_in_class(class_of(dt), op))
		return -FI_EOPNOTSUPP;
	switch (dt) {
	case FI_INT8: calc_i8(op, count, dst, src, cmp); break;
	case FI_UINT8: calc_u8(op, count, dst, src, cmp); break;
	case FI_INT16: calc_i16(op, count, dst, src, cmp); break;
	case FI_UINT16: calc_u16(op, count, dst, src, cmp); break;
	case FI_INT32: calc_i32(op, count, dst, src, cmp); break;
	case FI_UINT32: calc_u32(op, count, dst, src, cmp); break;
	case FI_INT64: calc_i64(op, count, dst, src, cmp); break;
	case FI_UINT64: calc_u64(op, count, dst, src, cmp); break;
	case FI_FLOAT: calc_f32(op, count, dst, src, cmp); break;
	case FI_DOUBLE: calc_f64(op, count, dst, src, cmp); break;
	case FI_LONG_DOUBLE: calc_f80(op, count, dst, src, cmp); break;
	case FI_FLOAT_COMPLEX: calc_c32(op, count, dst, src, cmp); break;
	case FI_DOUBLE_COMPLEX: calc_c64(op, count, dst, src, cmp); break;
	case FI_LONG_DOUBLE_COMPLEX: calc_c80(op, count, dst, src, cmp); break;
	default: return -FI_EOPNOTSUPP;
	}
	return 0;
}
