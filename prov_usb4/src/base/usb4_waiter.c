/*
 * Wait objects of CQs and counters (contract in usb4.h).
 *
 * Each sleeping thread polls an eventfd of its own, made on the thread's
 * first sleep and closed when the thread exits.  A thread drains its fd
 * before it registers, so a signal meant for an earlier sleep of the same
 * thread wakes it at most once more, spuriously.
 */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "usb4.h"

static pthread_key_t thread_fd_key;
static pthread_once_t thread_fd_once = PTHREAD_ONCE_INIT;
static __thread int thread_fd = -1;

static void thread_fd_close(void *arg)
{
	close((int) (intptr_t) arg - 1);
}

static void thread_fd_key_init(void)
{
	pthread_key_create(&thread_fd_key, thread_fd_close);
}

/* This thread's eventfd, drained. */
static int thread_fd_get(void)
{
	uint64_t stale;

	if (thread_fd < 0) {
		pthread_once(&thread_fd_once, thread_fd_key_init);
		thread_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (thread_fd < 0)
			return -errno;
		/* Stored + 1: a key's value of 0 means "nothing to close". */
		pthread_setspecific(thread_fd_key,
				    (void *) (intptr_t) (thread_fd + 1));
	}
	if (read(thread_fd, &stale, sizeof(stale)) < 0 && errno != EAGAIN)
		return -errno;
	return thread_fd;
}

void usb4_waiter_init(struct usb4_waiter *w)
{
	pthread_mutex_init(&w->lock, NULL);
	usb4_list_init(&w->sleepers);
	atomic_init(&w->count, 0);
}

void usb4_waiter_fini(struct usb4_waiter *w)
{
	pthread_mutex_destroy(&w->lock);
}

static void __attribute__((noinline)) wake_sleepers(struct usb4_waiter *w)
{
	struct usb4_list *it;
	uint64_t one = 1;

	pthread_mutex_lock(&w->lock);
	usb4_list_foreach(&w->sleepers, it) {
		struct usb4_sleeper *s = usb4_container_of(it,
				struct usb4_sleeper, link);
		/* Fails only when the count is saturated: readable anyway. */
		if (write(s->fd, &one, sizeof(one)) < 0)
			continue;
	}
	pthread_mutex_unlock(&w->lock);
}

/* Every completion calls this: the test without a sleeper stays a few
 * instructions (the wake-up's stack frame lives in wake_sleepers). */
void usb4_waiter_signal(struct usb4_waiter *w)
{
	if (w && atomic_load(&w->count))
		wake_sleepers(w);
}

int usb4_waiter_sleep_begin(struct usb4_waiter *w, struct usb4_sleeper *s)
{
	s->fd = thread_fd_get();
	if (s->fd < 0)
		return s->fd;
	pthread_mutex_lock(&w->lock);
	usb4_list_insert_tail(&w->sleepers, &s->link);
	atomic_fetch_add(&w->count, 1);
	pthread_mutex_unlock(&w->lock);
	return s->fd;
}

void usb4_waiter_sleep_end(struct usb4_waiter *w, struct usb4_sleeper *s)
{
	pthread_mutex_lock(&w->lock);
	usb4_list_remove(&s->link);
	atomic_fetch_sub(&w->count, 1);
	pthread_mutex_unlock(&w->lock);
}
