/*
 * mpitest.h - helpers shared by the MPI test programs in tests/mpi.
 *
 * Every program verifies the data it receives, reports the first mismatch
 * with enough context to find it (rank, peer, size, offset), and exits
 * nonzero through MPI_Abort so that mpirun fails the whole job.  Rank 0
 * prints "OK <name>" once everything passed.
 */
#ifndef USB4_MPITEST_H
#define USB4_MPITEST_H

#include <mpi.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Message sizes that cover empty, eager, medium and rendezvous paths. */
static const size_t mt_sizes[] = {
	0, 1, 8, 64, 1000, 4096, 8192, 16384, 65536, 65537, 262144,
	1u << 20, 4u << 20,
};
#define MT_NSIZES (sizeof(mt_sizes) / sizeof(mt_sizes[0]))
#define MT_MAX_SIZE (4u << 20)

static inline int mt_rank(void)
{
	int rank;

	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	return rank;
}

static inline int mt_size(void)
{
	int size;

	MPI_Comm_size(MPI_COMM_WORLD, &size);
	return size;
}

/* Print a failure with the rank prefixed, then abort the whole job. */
static inline void mt_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL rank %d: ", mt_rank());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

#define MT_CHECK(cond, ...)                                              \
	do {                                                             \
		if (!(cond))                                             \
			mt_fail(__VA_ARGS__);                            \
	} while (0)

/* Abort unless an MPI call succeeded; names the call that failed. */
#define MT_MPI(call)                                                     \
	do {                                                             \
		int mt_rc_ = (call);                                     \
		if (mt_rc_ != MPI_SUCCESS) {                             \
			char mt_msg_[MPI_MAX_ERROR_STRING];              \
			int mt_len_ = 0;                                 \
			MPI_Error_string(mt_rc_, mt_msg_, &mt_len_);     \
			mt_fail("%s:%d: %s returned %d (%s)", __FILE__,  \
				__LINE__, #call, mt_rc_, mt_msg_);       \
		}                                                        \
	} while (0)

/*
 * Byte i of a message identified by seed.  Depends on the high bits of the
 * offset too, so a block landing at the wrong offset (a misplaced
 * rendezvous chunk, a wrong rail) does not verify by accident.
 */
static inline uint8_t mt_byte(uint32_t seed, size_t i)
{
	uint32_t x = seed * 2654435761u ^ (uint32_t)i ^ (uint32_t)(i >> 11) * 40503u;

	x ^= x >> 15;
	x *= 2246822519u;
	x ^= x >> 13;
	return (uint8_t)x;
}

static inline uint32_t mt_seed(int src, int dst, int tag, size_t size, int iter)
{
	return (uint32_t)src * 1000003u + (uint32_t)dst * 10007u +
	       (uint32_t)tag * 101u + (uint32_t)size * 7u + (uint32_t)iter;
}

static inline void mt_fill(void *buf, size_t len, uint32_t seed)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = mt_byte(seed, i);
}

/* Abort at the first byte that differs from the pattern. */
static inline void mt_verify(const void *buf, size_t len, uint32_t seed,
			     const char *what, int peer)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		if (p[i] != mt_byte(seed, i))
			mt_fail("%s: data mismatch from rank %d, size %zu, offset %zu: got 0x%02x want 0x%02x",
				what, peer, len, i, p[i], mt_byte(seed, i));
	}
}

/* Check the source, tag and byte count of a completed receive. */
static inline void mt_check_status(const MPI_Status *st, int src, int tag,
				   size_t len, const char *what)
{
	int count;

	MPI_Get_count(st, MPI_BYTE, &count);
	MT_CHECK(st->MPI_SOURCE == src, "%s: status source %d, want %d", what,
		 st->MPI_SOURCE, src);
	MT_CHECK(st->MPI_TAG == tag, "%s: status tag %d, want %d", what,
		 st->MPI_TAG, tag);
	MT_CHECK(count == (int)len, "%s: status count %d, want %zu", what,
		 count, len);
}

static inline void *mt_alloc(size_t len)
{
	void *p = malloc(len ? len : 1);

	MT_CHECK(p != NULL, "out of memory allocating %zu bytes", len);
	return p;
}

static inline void mt_ok(const char *name)
{
	MPI_Barrier(MPI_COMM_WORLD);
	if (mt_rank() == 0) {
		printf("OK %s\n", name);
		fflush(stdout);
	}
}

#endif /* USB4_MPITEST_H */
