/*
 * Invariants of the fuzz targets: a broken one stops the run with a
 * crash libFuzzer reports (a trap: some libraries libfabric loads turn
 * SIGILL into exit(), which libFuzzer reports as "fuzz target exited",
 * with the line printed here above it).
 */
#ifndef FUZZ_ASSERT_H
#define FUZZ_ASSERT_H

#include <stdbool.h>
#include <stdio.h>

#define FUZZ_ASSERT(cond) \
	do { if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond); } while (0)

static inline _Noreturn void fuzz_fail(const char *file, int line,
				       const char *what)
{
	fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
	__builtin_trap();
}

#endif /* FUZZ_ASSERT_H */
