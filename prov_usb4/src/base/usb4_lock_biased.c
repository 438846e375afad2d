/*
 * The domain lock biased to the application (usb4.h).
 *
 * With FI_THREAD_DOMAIN the application serialises its calls; the lock
 * only keeps our progress thread out while a call is in, and that thread
 * comes by once per FI_USB4_PROGRESS_IDLE_MS.  As a mutex it cost every
 * call two locked instructions, and a locked instruction waits until every
 * older store reached the cache: after a frame posted into a peer's ring,
 * that is until the slot's line crossed the cores.  perf of a same-host
 * ping-pong put the mutex at 26% of both ranks' samples.
 *
 * The application's side is Dekker's half without a fence: it stores
 * app_in = 1, then reads aside_wants (usb4_lock_acquire).  The thread, the
 * rare side, holds the mutex (which orders it against other thread-side
 * takers), stores aside_wants = 1, and calls membarrier(2)
 * MEMBARRIER_CMD_PRIVATE_EXPEDITED, which runs a full barrier on every
 * running thread of this process; then it reads app_in.  Either the
 * application's call sees aside_wants and waits, or the thread sees app_in
 * and waits for the call to end.  An application that waits gives up
 * app_in and blocks on the mutex until the thread lets go.
 *
 * Memory: the thread's release of aside_wants and the application's
 * acquire load of it order the thread's work before the next call; the
 * application's release of app_in and the thread's acquire load of it
 * order a call's work before the thread's.
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <time.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "usb4.h"

static int membarrier(int cmd)
{
	return (int) syscall(__NR_membarrier, cmd, 0, 0);
}

/* Registration is per process, and may be repeated. */
bool usb4_lock_bias(struct usb4_lock *lock)
{
	int cmds = membarrier(MEMBARRIER_CMD_QUERY);

	if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) ||
	    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED)) {
		USB4_INFO(FI_LOG_DOMAIN, "no private expedited membarrier "
			  "here: the domain lock is a mutex\n");
		return false;
	}
	return true;
}

void usb4_lock_app_wait(struct usb4_lock *lock)
{
	while (atomic_load_explicit(&lock->aside_wants, memory_order_acquire)) {
		atomic_store_explicit(&lock->app_in, 0, memory_order_release);
		/* The thread holds the mutex while it wants the lock. */
		pthread_mutex_lock(&lock->mutex);
		pthread_mutex_unlock(&lock->mutex);
		atomic_store_explicit(&lock->app_in, 1, memory_order_relaxed);
		atomic_signal_fence(memory_order_seq_cst);
	}
}

/*
 * Makes the application's store of app_in visible before its next load of
 * aside_wants, on whatever core it runs.  Registration succeeded, so this
 * cannot fail but for a kernel gone mad: then fall back on time, since a
 * call in flight ends within a scheduling period.
 */
static void barrier_app(void)
{
	if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)) {
		struct timespec pause = { 0, 10 * 1000 * 1000 };

		USB4_WARN(FI_LOG_DOMAIN, "membarrier failed: %s\n",
			  strerror(errno));
		nanosleep(&pause, NULL);
	}
}

/* The mutex is held; true once no application call is in. */
static bool want(struct usb4_lock *lock, bool wait)
{
	atomic_store_explicit(&lock->aside_wants, 1, memory_order_relaxed);
	barrier_app();
	while (atomic_load_explicit(&lock->app_in, memory_order_acquire)) {
		if (!wait) {
			atomic_store_explicit(&lock->aside_wants, 0,
					      memory_order_release);
			return false;
		}
		sched_yield();
	}
	return true;
}

bool usb4_lock_aside_try(struct usb4_lock *lock)
{
	if (!lock->enabled)
		return true;
	if (pthread_mutex_trylock(&lock->mutex))
		return false;
	if (!lock->biased || want(lock, false))
		return true;
	pthread_mutex_unlock(&lock->mutex);
	return false;
}

void usb4_lock_aside_acquire(struct usb4_lock *lock)
{
	if (!lock->enabled)
		return;
	pthread_mutex_lock(&lock->mutex);
	if (lock->biased)
		want(lock, true);
}

void usb4_lock_aside_release(struct usb4_lock *lock)
{
	if (!lock->enabled)
		return;
	if (lock->biased)
		atomic_store_explicit(&lock->aside_wants, 0,
				      memory_order_release);
	pthread_mutex_unlock(&lock->mutex);
}
