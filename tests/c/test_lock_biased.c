/*
 * The domain lock biased to the application (usb4_lock_biased.c) still
 * excludes: an "application" thread (usb4_lock_acquire/release, no locked
 * instruction) and a "progress" thread (the _aside functions, trylock and
 * waiting acquire both) each run a critical section that checks nobody
 * else is inside and bumps a plain counter.  Overlaps are counted; lost
 * increments show in the total.  Then the same with the mutex (a lock made
 * real where the bias is refused) and with FI_THREAD_SAFE's plain lock.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "usb4_test.h"
#include "usb4.h"

#define APP_ROUNDS	2000000
#define ASIDE_ROUNDS	4000

struct shared {
	struct usb4_lock lock;
	atomic_int inside;		/* sections running now */
	atomic_bool app_done;
	unsigned long counter;		/* plain: the lock guards it */
	unsigned long overlaps;
	unsigned long aside_taken;
};

static void section(struct shared *s)
{
	if (atomic_fetch_add_explicit(&s->inside, 1, memory_order_relaxed))
		s->overlaps++;
	s->counter++;
	atomic_fetch_sub_explicit(&s->inside, 1, memory_order_relaxed);
}

static void *aside_main(void *arg)
{
	struct shared *s = arg;

	for (int i = 0; i < ASIDE_ROUNDS ||
			!atomic_load(&s->app_done); i++) {
		bool taken = i % 2 ? usb4_lock_aside_try(&s->lock) : true;

		if (!(i % 2))
			usb4_lock_aside_acquire(&s->lock);
		if (!taken)
			continue;
		section(s);
		s->aside_taken++;
		usb4_lock_aside_release(&s->lock);
	}
	return NULL;
}

static void run(const char *what, bool enabled, bool make_real)
{
	struct shared s = { 0 };
	pthread_t t;

	usb4_lock_init(&s.lock, enabled);
	if (make_real)
		usb4_lock_make_real(&s.lock);
	CHECK_EQ(pthread_create(&t, NULL, aside_main, &s), 0);
	for (int i = 0; i < APP_ROUNDS; i++) {
		usb4_lock_acquire(&s.lock);
		section(&s);
		usb4_lock_release(&s.lock);
	}
	atomic_store(&s.app_done, true);
	pthread_join(t, NULL);
	printf("# %s (biased %d): %lu sections, %lu by the thread, %lu "
	       "overlaps\n", what, s.lock.biased, s.counter, s.aside_taken,
	       s.overlaps);
	CHECK_EQ_MSG(s.overlaps, 0, "%s: sections overlapped", what);
	CHECK_EQ_MSG(s.counter, APP_ROUNDS + s.aside_taken,
		     "%s: increments lost", what);
	CHECK_MSG(s.aside_taken >= ASIDE_ROUNDS / 2,
		  "%s: the thread got the lock %lu times", what,
		  s.aside_taken);
	usb4_lock_destroy(&s.lock);
}

int main(void)
{
	struct usb4_lock probe;

	alarm(120);
	usb4_lock_init(&probe, false);
	usb4_lock_make_real(&probe);
	if (!probe.biased)
		printf("# no membarrier here: the biased lock is not "
		       "tested\n");
	usb4_lock_destroy(&probe);
	run("made real (biased where possible)", false, true);
	run("FI_THREAD_SAFE mutex", true, false);
	return usb4_test_done("test_lock_biased");
}
