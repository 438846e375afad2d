/*
 * A VM whose clocksource has no vDSO mode, played on any host: preloaded
 * (LD_PRELOAD, bench/compare_hosts.py --syscall-clock), this makes every
 * read of a precise clock a system call, as it is on such a VM (the
 * issue 13 reviewer's AMD EPYC: about 200 ns a read instead of 30-60).
 * The coarse clocks stay in the vDSO, as they do there: the kernel keeps
 * them in the vDSO's data page whatever the clocksource.
 *
 * Built as a shared object: gcc -shared -fPIC -O2 -o clock_syscall.so
 * clock_syscall.c (-ldl on a glibc before 2.34).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_fn)(clockid_t, struct timespec *);

static bool coarse(clockid_t id)
{
	return id == CLOCK_MONOTONIC_COARSE || id == CLOCK_REALTIME_COARSE;
}

/* The C library's own, for the clocks a VM keeps in the vDSO. */
static int vdso_read(clockid_t id, struct timespec *ts)
{
	static clock_fn next;

	if (!next)
		next = (clock_fn) dlsym(RTLD_NEXT, "clock_gettime");
	return next ? next(id, ts) : (int) syscall(SYS_clock_gettime, id, ts);
}

__attribute__((visibility("default")))
int clock_gettime(clockid_t id, struct timespec *ts)
{
	if (coarse(id))
		return vdso_read(id, ts);
	return (int) syscall(SYS_clock_gettime, id, ts);
}
