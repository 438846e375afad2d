/*
 * A domain's progress thread: a busy application is not a dead one.
 *
 * Progress is the application's (manual): its CQ, counter and data calls
 * run the endpoints' links, which acknowledge, answer and deliver.  A rank
 * that computes for longer than the peer timeout without calling in would
 * then look dead to its peers, who hear nothing from its links.  This
 * thread stands in for the application while it is away, and only then:
 *
 *   present  the endpoint was progressed by somebody else since the thread
 *            last looked (core.progress_calls moved), or an application
 *            thread sleeps on its links (sread, fi_cntr_wait): the thread
 *            keeps out of the way and looks again FI_USB4_PROGRESS_IDLE_MS
 *            later.  It holds no lock while it waits and watches no link,
 *            so traffic does not wake it: the cost to the application is
 *            one trylock per endpoint sweep every idle period.
 *   absent   nobody progressed it for FI_USB4_PROGRESS_IDLE_MS: the thread
 *            runs the same core progress as the application's calls, then
 *            sleeps in poll() on the endpoint's links (woken by a datagram
 *            or a peer's bell) and their next timer, and progresses again.
 *
 * The domain lock is taken with the thread's side of it (usb4.h: _aside)
 * and with trylock, so the thread never makes the application wait; a
 * thread that finds it held 10 times in a row (the
 * application is in a call on another endpoint, say) takes it anyway, so
 * an endpoint the application ignores is still served.  After a sleep on
 * links it must take the lock to let go of them.  One thread per domain,
 * started by the first endpoint that needs it, joined at domain close; an
 * eventfd (the kick) wakes it when an endpoint comes or goes.  Closing an
 * endpoint takes it out of domain->eps under the lock, kicks the thread
 * and waits until the thread let go of its links (core.sleepers), before
 * the links close.
 *
 * A process may exit with its domains open.  libfabric then calls the
 * provider's cleanup and unloads it; a thread still in provider code
 * would run unmapped code at its next wake (a peer's datagram): SIGSEGV in
 * place of the application's exit code.  So every running thread is in a
 * list, and the cleanup halts them all first (usb4_progress_halt_all).
 */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "usb4_api.h"
#include "usb4_list.h"

/* Failed trylocks in a row after which the thread waits for the lock. */
#define USB4_PROGRESS_TRY_MAX	10
/* Longest wait for one thread to stop at unload: it may have to take a
 * domain lock another application thread holds for a moment. */
#define USB4_PROGRESS_HALT_S	2

struct usb4_progress {
	struct usb4_domain *domain;
	pthread_t thread;
	uint32_t pid;			/* the process that started it */
	int kick_fd;			/* eventfd: stop, an endpoint came or
					 * went */
	atomic_bool stop;
	struct usb4_list live;		/* in live_threads while listed */
	bool listed;
	bool halted;			/* joined by usb4_progress_halt_all */
	/* The thread's own. */
	struct pollfd *fds;		/* [0]: kick_fd, then armed links */
	int nfds, fds_cap;
	struct usb4_ep **armed;		/* endpoints whose links it sleeps on */
	size_t narmed, armed_cap;
	unsigned misses;		/* failed trylocks in a row */
};

/* Every thread started and not yet joined, of this process. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct usb4_list live_threads = { &live_threads, &live_threads };

static uint64_t idle_ns(void)
{
	return (uint64_t) usb4_params.progress_idle_ms * 1000000;
}

/* Whether the application was at ep within the idle period (updates what
 * the thread saw).  Caller holds the lock. */
static bool app_present(struct usb4_ep *ep, uint64_t now)
{
	if (ep->core.progress_calls != ep->app_calls || ep->core.sleepers) {
		ep->app_calls = ep->core.progress_calls;
		ep->app_seen_ns = now;
		return true;
	}
	return now - ep->app_seen_ns < idle_ns();
}

static void lower_timeout(int *timeout_ms, int ms)
{
	if (*timeout_ms < 0 || ms < *timeout_ms)
		*timeout_ms = ms;
}

/* Room for want more fds and one more armed endpoint. */
static bool room(struct usb4_progress *p, int want)
{
	if (p->nfds + want > p->fds_cap) {
		int cap = 2 * (p->nfds + want);
		struct pollfd *fds = realloc(p->fds, cap * sizeof(*fds));

		if (!fds)
			return false;
		p->fds = fds;
		p->fds_cap = cap;
	}
	if (p->narmed == p->armed_cap) {
		size_t cap = p->armed_cap ? 2 * p->armed_cap : 8;
		struct usb4_ep **armed = realloc(p->armed, cap * sizeof(*armed));

		if (!armed)
			return false;
		p->armed = armed;
		p->armed_cap = cap;
	}
	return true;
}

/* Progresses an endpoint the application left, then arms its links for
 * the sleep; a link with news already (or no memory) means look again
 * soon. */
static void serve(struct usb4_progress *p, struct usb4_ep *ep,
		  int *timeout_ms)
{
	int t = *timeout_ms;

	usb4_core_progress(&ep->core);
	ep->app_calls = ep->core.progress_calls;	/* ours, not theirs */
	if (!room(p, usb4_core_wait_fds(&ep->core)) ||
	    !usb4_core_sleep_begin(&ep->core, p->fds, p->fds_cap, &p->nfds,
				   &t)) {
		lower_timeout(timeout_ms, 1);
		return;
	}
	p->armed[p->narmed++] = ep;
	*timeout_ms = t;
}

/* One sweep of the domain's endpoints under the lock: the timeout of the
 * sleep that follows (-1: until kicked). */
static int sweep(struct usb4_progress *p)
{
	uint64_t now = usb4_now_ns();
	int timeout_ms = -1;
	struct usb4_list *it;

	p->nfds = 1;
	usb4_list_foreach(&p->domain->eps, it) {
		struct usb4_ep *ep = usb4_container_of(it, struct usb4_ep,
						       dom_link);

		if (!ep->enabled)
			continue;
		if (app_present(ep, now))	/* look again when idle */
			lower_timeout(&timeout_ms,
				      (int) ((ep->app_seen_ns + idle_ns() - now +
					      999999) / 1000000));
		else
			serve(p, ep, &timeout_ms);
	}
	/* Background work: a millisecond is fine grain enough, and a link
	 * whose timer is due keeps the thread from spinning. */
	return timeout_ms == 0 ? 1 : timeout_ms;
}

static void disarm(struct usb4_progress *p)
{
	while (p->narmed)
		usb4_core_sleep_end(&p->armed[--p->narmed]->core);
}

/* Takes the domain lock: at once if free; waits for it when the thread
 * must let go of links it slept on, or after too many misses. */
static bool take_lock(struct usb4_progress *p)
{
	struct usb4_lock *lock = &p->domain->lock;

	if (usb4_lock_aside_try(lock)) {
		p->misses = 0;
		return true;
	}
	if (!p->narmed && ++p->misses < USB4_PROGRESS_TRY_MAX)
		return false;
	usb4_lock_aside_acquire(lock);
	p->misses = 0;
	return true;
}

static void drain_kicks(int fd)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* nothing there: woken by a link */
	}
}

static void *progress_main(void *arg)
{
	struct usb4_progress *p = arg;
	int timeout_ms;

	while (!atomic_load(&p->stop)) {
		if (take_lock(p)) {
			disarm(p);
			timeout_ms = sweep(p);
			usb4_lock_aside_release(&p->domain->lock);
		} else {
			p->nfds = 1;
			timeout_ms = usb4_params.progress_idle_ms;
		}
		poll(p->fds, p->nfds, timeout_ms);
		if (p->fds[0].revents)
			drain_kicks(p->kick_fd);
	}
	if (p->narmed) {
		usb4_lock_aside_acquire(&p->domain->lock);
		disarm(p);
		usb4_lock_aside_release(&p->domain->lock);
	}
	return NULL;
}

static void kick(struct usb4_progress *p)
{
	uint64_t one = 1;

	if (write(p->kick_fd, &one, sizeof(one)) < 0) {
		/* the counter is full: the thread is awake anyway */
	}
}

static void progress_free(struct usb4_progress *p)
{
	if (p->kick_fd >= 0)
		close(p->kick_fd);
	free(p->fds);
	free(p->armed);
	free(p);
}

/* A thread that takes none of the application's signals. */
static int spawn(struct usb4_progress *p)
{
	sigset_t all, old;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&p->thread, NULL, progress_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return -FI_EAGAIN;
	pthread_setname_np(p->thread, "usb4-progress");
	return 0;
}

static int progress_open(struct usb4_domain *domain)
{
	struct usb4_progress *p = calloc(1, sizeof(*p));
	int ret;

	if (!p)
		return -FI_ENOMEM;
	p->domain = domain;
	p->pid = usb4_pid();
	p->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->fds_cap = 8;
	p->fds = calloc(p->fds_cap, sizeof(*p->fds));
	if (p->kick_fd < 0 || !p->fds) {
		progress_free(p);
		return -FI_ENOMEM;
	}
	p->fds[0] = (struct pollfd) { .fd = p->kick_fd, .events = POLLIN };
	p->nfds = 1;
	ret = spawn(p);
	if (ret) {
		progress_free(p);
		return ret;
	}
	pthread_mutex_lock(&live_lock);
	usb4_list_insert_tail(&live_threads, &p->live);
	p->listed = true;
	pthread_mutex_unlock(&live_lock);
	domain->progress = p;
	return 0;
}

int usb4_progress_start(struct usb4_domain *domain, struct usb4_ep *ep)
{
	int ret = 0;

	if (!usb4_params.progress_idle_ms ||
	    (!domain->opened.auto_progress &&
	     !usb4_core_ep_other_hosts(&ep->core)))
		return 0;
	/* FI_THREAD_DOMAIN: the application promised to serialise its calls,
	 * not to share the domain with our thread. */
	if (!domain->lock.enabled)
		usb4_lock_make_real(&domain->lock);
	usb4_lock_acquire(&domain->lock);
	ep->app_calls = ep->core.progress_calls;
	ep->app_seen_ns = usb4_now_ns();
	if (domain->progress)
		kick(domain->progress);
	else
		ret = progress_open(domain);
	usb4_lock_release(&domain->lock);
	if (ret)
		USB4_WARN(FI_LOG_DOMAIN, "no progress thread: %s; peers may "
			  "time out a busy application\n", fi_strerror(-ret));
	return ret;
}

void usb4_progress_let_go(struct usb4_domain *domain)
{
	if (domain->progress)
		kick(domain->progress);
}

void usb4_progress_stop(struct usb4_domain *domain)
{
	struct usb4_progress *p = domain->progress;
	bool mine;

	if (!p)
		return;
	domain->progress = NULL;
	/* A child of fork has the domain but not the thread; a halted thread
	 * was joined already. */
	pthread_mutex_lock(&live_lock);
	mine = p->pid == usb4_pid() && !p->halted;
	if (p->listed) {
		usb4_list_remove(&p->live);
		p->listed = false;
	}
	pthread_mutex_unlock(&live_lock);
	if (mine) {
		atomic_store(&p->stop, true);
		kick(p);
		pthread_join(p->thread, NULL);
	}
	progress_free(p);
}

/* Stops and joins every thread of this process, its domain left as it is
 * (the application never closed it): called before the provider is
 * unloaded.  A thread that does not stop in time is left, detached. */
void usb4_progress_halt_all(void)
{
	struct usb4_list *it, *tmp;
	struct timespec until;

	pthread_mutex_lock(&live_lock);
	usb4_list_foreach_safe(&live_threads, it, tmp) {
		struct usb4_progress *p = usb4_container_of(it,
				struct usb4_progress, live);

		usb4_list_remove(&p->live);
		p->listed = false;
		if (p->pid != usb4_pid())
			continue;	/* a child of fork: not its thread */
		p->halted = true;
		atomic_store(&p->stop, true);
		kick(p);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += USB4_PROGRESS_HALT_S;
		if (pthread_timedjoin_np(p->thread, NULL, &until)) {
			USB4_WARN(FI_LOG_DOMAIN, "progress thread did not stop "
				  "at unload\n");
			pthread_detach(p->thread);
		}
	}
	pthread_mutex_unlock(&live_lock);
}
