/*
 * A caller spinning on an empty CQ pays for no clock reads, yet still
 * yields the CPU: an MPI rank waits for a same-host message by calling
 * fi_cq_read back to back, and every cycle of an empty read delays the
 * moment it sees the message.  Reading the clock cost as much as the rest of
 * an empty read (the CQ's spin detection and the idle udp link each read it
 * on every call).  The endpoint has an idle udp link (FI_USB4_IFACE=lo, as
 * MPI jobs on one host run) beside its shm link.
 *
 * This program counts clock_gettime and sched_yield calls by defining them
 * itself (the provider's calls bind to the executable's definitions first)
 * and passing them on to the C library's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <rdma/fi_tagged.h>

#include "usb4_test.h"
#include "usb4_fixture.h"
#include "usb4_api.h"	/* USB4_SPIN_CLOCK_EVERY */

#define READS		200000
/* FI_USB4_YIELD_US, set below: an empty read yields once per period of
 * spinning. */
#define YIELD_US	20

/* Only the reading thread's calls count: the progress thread reads the
 * clock too, more of it the longer a loaded host stretches the loop. */
static _Thread_local bool counting;
static unsigned long clock_reads, yields;

static int (*real_clock_gettime)(clockid_t, struct timespec *);

__attribute__((visibility("default")))
int clock_gettime(clockid_t id, struct timespec *ts)
{
	if (!real_clock_gettime)
		real_clock_gettime = (int (*)(clockid_t, struct timespec *))
			dlsym(RTLD_NEXT, "clock_gettime");
	if (counting)
		clock_reads++;
	return real_clock_gettime(id, ts);
}

__attribute__((visibility("default")))
int sched_yield(void)
{
	static int (*real)(void);

	if (!real)
		real = (int (*)(void)) dlsym(RTLD_NEXT, "sched_yield");
	if (counting)
		yields++;
	return real();
}

/* The CPU time this thread has run: the periods it spun, where wall time
 * also holds what a loaded host gave to others (given away in a yield or
 * taken by preemption; a preempted spin starts its period over). */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	if (!real_clock_gettime)
		real_clock_gettime = (int (*)(clockid_t, struct timespec *))
			dlsym(RTLD_NEXT, "clock_gettime");
	real_clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

int main(void)
{
	struct fx a = { 0 }, b = { 0 };
	struct fi_cq_data_entry e;
	uint64_t t0, cpu0, ns, periods;
	unsigned long reads, yielded;
	int bad = 0;

	setenv("FI_USB4_IFACE", "lo", 1);
	setenv("FI_USB4_YIELD_US", "20", 1);
	/* The yields of a spin: without a sleep (test_idle_block.c). */
	setenv("FI_USB4_IDLE_BLOCK_US", "0", 1);
	CHECK_EQ(fx_open(&a, FI_TAGGED, 0), 0);
	CHECK_EQ(fx_open(&b, FI_TAGGED, 0), 0);
	CHECK(fx_insert(&a, b.addr) != FI_ADDR_NOTAVAIL);
	t0 = now_ns();
	cpu0 = thread_cpu_ns();
	counting = true;
	for (int i = 0; i < READS; i++)
		bad += fi_cq_read(a.cq, &e, 1) != -FI_EAGAIN;
	counting = false;
	periods = (thread_cpu_ns() - cpu0) / (YIELD_US * 1000);
	ns = now_ns() - t0;
	reads = clock_reads;
	yielded = yields;
	printf("# %d empty reads in %llu us: %lu clock reads, %lu yields "
	       "(%llu yield periods spun)\n", READS, (unsigned long long) (ns / 1000),
	       reads, yielded, (unsigned long long) periods);
	CHECK_EQ(bad, 0);
	/* Before: two per read. */
	CHECK_MSG(reads <= READS / 4, "%lu clock reads for %d empty reads",
		  reads, READS);
	/* Still yields, at most once per period of wall time and once per
	 * clock read (one in USB4_SPIN_CLOCK_EVERY reads reads it); about
	 * once per period spun (give or take a sampling step, and a period
	 * a preemption cut short). */
	CHECK_MSG(yielded >= 1 && yielded >= periods / 16 &&
		  yielded <= ns / (YIELD_US * 1000) + 1 &&
		  yielded <= READS / USB4_SPIN_CLOCK_EVERY,
		  "%lu yields in %llu periods of %d us", yielded,
		  (unsigned long long) periods, YIELD_US);
	fx_close(&a);
	fx_close(&b);
	return usb4_test_done("test_spin_clock");
}
