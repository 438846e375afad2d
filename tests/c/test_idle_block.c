/*
 * fi_cq_read called back to back on an empty CQ sleeps in the kernel once
 * nothing came for FI_USB4_IDLE_BLOCK_US (api/usb4_cq_idle.c), and only
 * then:
 *
 *   tight    a loop of empty reads waiting ~200 ms for a message uses far
 *            less CPU than wall time, and the message is handed out soon
 *            after it is sent (the shm bell wakes the reader);
 *   spaced   a loop that works ~10 us between reads (MPI_Test in a compute
 *            loop) never sleeps in a read, though its reads are close
 *            enough for the spin detection: the gap check stops it;
 *   two CQs  a loop reading two CQs back to back (Open MPI's mtl and btl
 *            ofi) never sleeps in either: a sleep on one would leave the
 *            other's news waiting;
 *   threads  two threads reading one CQ of an FI_THREAD_SAFE domain both
 *            sleep and are both served, and another thread posting sends
 *            on the same domain meanwhile is not held up by a sleeper (the
 *            domain lock is let go while it sleeps);
 *   room     a sender whose sends wait for room in the peer's full shm
 *            inbox never sleeps: the inbox's owner rings no bell when it
 *            makes room (a sleeper waited 1 ms per refill: same-host
 *            osu_bw at 8-32 KiB fell to a third);
 *   exchange a reader whose peer replies ~200 us after each of its sends
 *            (a collective's step) stops sleeping after a few exchanges:
 *            each block it woke from was followed by its own post, so the
 *            threshold doubles past the reply's delay (before, every
 *            exchange slept and paid two wake-ups);
 *   stream   a reader that only waits, for messages coming ~200 us apart,
 *            keeps sleeping: no post follows its blocks;
 *   off      with FI_USB4_IDLE_BLOCK_US=0 the tight loop never sleeps.
 *
 * A sleep is a poll() called inside fi_cq_read: this program defines poll
 * itself (the provider's call binds to the executable's definition first)
 * and counts the calls made while the counting thread is in a read.  Each
 * setting runs in a child process (the provider reads its variables once).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define CAPS		FI_MSG
#define DELAY_MS	200	/* when the message waited for is sent */
#define PROMPT_MS	20	/* it is handed out within this of its send
				 * (a block lasts 1 ms at most; a loaded
				 * host may hold the reader off longer) */
#define SPACED_MS	100	/* the spaced loop runs this long */
#define SPACED_WORK_NS	10000	/* work between its reads */
#define POSTS		40	/* sends posted while a reader sleeps */
#define POST_SLOW_NS	500000	/* a post this slow waited for a sleeper */
#define MSG_LEN		8
#define ROOM_SENDS	1024	/* 4 KiB sends: four times b's inbox */
#define ROOM_LEN	4096
#define TIGHT_TRIES	3	/* of a timing-bound case, on a loaded host */
#define EXCHANGES	40	/* exchange and stream rounds */
#define LEARNED		10	/* rounds after which the threshold has
				 * adapted (it doubles from at most 50 us
				 * past 200 us in 3) */
#define REPLY_DELAY_NS	200000	/* the peer's time to reply / send */

static _Thread_local bool reading;
static _Thread_local unsigned long polls;	/* in this thread's reads */

__attribute__((visibility("default")))
int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	static int (*real)(struct pollfd *, nfds_t, int);

	if (!real)
		real = (int (*)(struct pollfd *, nfds_t, int))
			dlsym(RTLD_NEXT, "poll");
	if (reading)
		polls++;
	return real(fds, nfds, timeout);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (uint64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
	       1000000000u + (uint64_t) (ru.ru_utime.tv_usec +
					 ru.ru_stime.tv_usec) * 1000u;
}

/* The receiver a and the sender b, each in a domain of its own. */
static struct fx a, b;
static fi_addr_t a_to_b, b_to_a;
static char sbuf[MSG_LEN], rbuf[2][MSG_LEN];

/* Sends n messages to a at start_ns + DELAY_MS; stamps the send. */
struct delayed_send {
	uint64_t start_ns, sent_ns;
	int n;
};

static void *send_later(void *arg)
{
	struct delayed_send *d = arg;
	struct fi_cq_data_entry e;
	uint64_t at = d->start_ns + DELAY_MS * 1000000ull;

	while (now_ns() < at)
		usleep(1000);
	d->sent_ns = now_ns();
	for (int i = 0; i < d->n; i++) {
		CHECK_EQ(fi_send(b.ep, sbuf, MSG_LEN, NULL, b_to_a, NULL), 0);
		CHECK_EQ(fx_wait(b.cq, &e, NULL), 1);
	}
	return NULL;
}

/* Reads a's CQ back to back until `want` entries came (by all readers);
 * what one reader saw. */
struct reader {
	atomic_int *got;
	int want;
	unsigned long reads, polls;
	uint64_t done_ns, cpu_ns;
};

static void *read_tight(void *arg)
{
	struct reader *r = arg;
	struct fi_cq_data_entry e;
	uint64_t cpu0 = thread_cpu_ns(), deadline = now_ns() + 5000000000ull;
	unsigned long polls0 = polls;

	reading = true;
	while (atomic_load(r->got) < r->want && now_ns() < deadline) {
		ssize_t ret = fi_cq_read(a.cq, &e, 1);

		r->reads++;
		if (ret == 1)
			atomic_fetch_add(r->got, 1);
		else
			CHECK_EQ(ret, -FI_EAGAIN);
	}
	reading = false;
	r->done_ns = now_ns();
	r->cpu_ns = thread_cpu_ns() - cpu0;
	r->polls = polls - polls0;
	return NULL;
}

static void post_recvs(int n)
{
	for (int i = 0; i < n; i++)
		CHECK_EQ(fi_recv(a.ep, rbuf[i], MSG_LEN, NULL, a_to_b, NULL), 0);
}

/* One reader waits for one delayed message; blocking says whether its
 * reads must have slept.  Whether they slept, and how promptly the message
 * came, depend on the reader running while it reads: on a loaded host
 * (make -j check) it may be preempted between reads, which is no spin.  So
 * a try that missed those is only counted if it is the last (returns
 * false to ask for another). */
static bool case_tight(bool blocking, bool last)
{
	atomic_int got = 0;
	struct delayed_send d = { .start_ns = now_ns(), .n = 1 };
	struct reader r = { .got = &got, .want = 1 };
	pthread_t t;
	uint64_t wall;

	post_recvs(1);
	CHECK_EQ(pthread_create(&t, NULL, send_later, &d), 0);
	read_tight(&r);
	pthread_join(t, NULL);
	wall = r.done_ns - d.start_ns;
	printf("# tight%s: %lu reads, %lu sleeps, cpu %.1f ms of %.1f ms wall, "
	       "handed out %.2f ms after the send\n", blocking ? "" : " (off)",
	       r.reads, r.polls, r.cpu_ns / 1e6, wall / 1e6,
	       ((int64_t) r.done_ns - (int64_t) d.sent_ns) / 1e6);
	CHECK_EQ(atomic_load(&got), 1);
	if (!last && (r.done_ns - d.sent_ns >= PROMPT_MS * 1000000ull ||
		      (blocking && (!r.polls || r.cpu_ns >= wall / 4))))
		return false;
	CHECK_MSG(r.done_ns - d.sent_ns < PROMPT_MS * 1000000ull,
		  "handed out %.1f ms after its send",
		  (r.done_ns - d.sent_ns) / 1e6);
	if (blocking) {
		CHECK_MSG(r.polls > 0, "a tight loop of %lu reads never slept",
			  r.reads);
		CHECK_MSG(r.cpu_ns < wall / 4, "cpu %.1f ms in %.1f ms",
			  r.cpu_ns / 1e6, wall / 1e6);
	} else {
		CHECK_MSG(r.polls == 0, "%lu sleeps with blocking off",
			  r.polls);
	}
	return true;
}

/* Sleeps, leaving the cores to the reader (a spin here would compete with
 * it on a 2-core host). */
static void pause_for(uint64_t ns)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long) ns };

	nanosleep(&ts, NULL);
}

/* b answers each of a's EXCHANGES messages REPLY_DELAY_NS after it came. */
static void *answer_late(void *arg)
{
	struct fi_cq_data_entry e;
	static char in[MSG_LEN];

	(void) arg;
	for (int i = 0; i < EXCHANGES; i++) {
		CHECK_EQ(fi_recv(b.ep, in, MSG_LEN, NULL, b_to_a, NULL), 0);
		CHECK_EQ(fx_wait(b.cq, &e, NULL), 1);
		pause_for(REPLY_DELAY_NS);
		CHECK_EQ(fi_send(b.ep, sbuf, MSG_LEN, NULL, b_to_a, NULL), 0);
		CHECK_EQ(fx_wait(b.cq, &e, NULL), 1);
	}
	return NULL;
}

/* b sends EXCHANGES messages REPLY_DELAY_NS apart, unasked. */
static void *send_spaced(void *arg)
{
	struct fi_cq_data_entry e;

	(void) arg;
	for (int i = 0; i < EXCHANGES; i++) {
		pause_for(REPLY_DELAY_NS);
		CHECK_EQ(fi_send(b.ep, sbuf, MSG_LEN, NULL, b_to_a, NULL), 0);
		CHECK_EQ(fx_wait(b.cq, &e, NULL), 1);
	}
	return NULL;
}

/* Reads a's CQ back to back until `want` more entries came; the sleeps. */
static unsigned long read_until(int want)
{
	struct fi_cq_data_entry e;
	unsigned long polls0 = polls;
	uint64_t deadline = now_ns() + 5000000000ull;

	reading = true;
	while (want > 0 && now_ns() < deadline) {
		ssize_t ret = fi_cq_read(a.cq, &e, 1);

		if (ret == 1)
			want--;
		else
			CHECK_EQ(ret, -FI_EAGAIN);
	}
	reading = false;
	CHECK_EQ(want, 0);
	return polls - polls0;
}

/* a sends, then waits for b's late answer, EXCHANGES times.  Like the
 * tight case, a try spoiled by the host's load (a reader preempted, an
 * answer later than the grown threshold) is counted only if it is the
 * last. */
static bool case_exchange(bool last)
{
	unsigned long early = 0, late = 0;
	pthread_t t;

	CHECK_EQ(pthread_create(&t, NULL, answer_late, NULL), 0);
	for (int i = 0; i < EXCHANGES; i++) {
		unsigned long sleeps;

		post_recvs(1);
		CHECK_EQ(fi_send(a.ep, sbuf, MSG_LEN, NULL, a_to_b, NULL), 0);
		sleeps = read_until(2);		/* the send's, the answer */
		*(i < LEARNED ? &early : &late) += sleeps;
	}
	pthread_join(t, NULL);
	printf("# exchange: %lu sleeps in the first %d rounds, %lu in the "
	       "last %d\n", early, LEARNED, late, EXCHANGES - LEARNED);
	if (!last && (!early || late > (EXCHANGES - LEARNED) / 6))
		return false;
	CHECK_MSG(early > 0, "the first exchanges never slept (%lu)", early);
	/* A loaded host may delay a few answers past the grown threshold. */
	CHECK_MSG(late <= (EXCHANGES - LEARNED) / 6,
		  "%lu sleeps in %d exchanges after the first %d", late,
		  EXCHANGES - LEARNED, LEARNED);
	return true;
}

/* a only waits for b's spaced messages: it keeps sleeping. */
static bool case_stream(bool last)
{
	unsigned long late = 0;
	pthread_t t;

	for (int i = 0; i < EXCHANGES; i++)
		CHECK_EQ(fi_recv(a.ep, rbuf[0], MSG_LEN, NULL, a_to_b, NULL),
			 0);
	CHECK_EQ(pthread_create(&t, NULL, send_spaced, NULL), 0);
	for (int i = 0; i < EXCHANGES; i++) {
		unsigned long sleeps = read_until(1);

		if (i >= LEARNED)
			late += sleeps;
	}
	pthread_join(t, NULL);
	printf("# stream: %lu sleeps in the last %d waits\n", late,
	       EXCHANGES - LEARNED);
	if (!last && late < (EXCHANGES - LEARNED) / 4)
		return false;
	CHECK_MSG(late >= (EXCHANGES - LEARNED) / 4,
		  "only %lu sleeps in %d waits for a stream", late,
		  EXCHANGES - LEARNED);
	return true;
}

/* Reads with SPACED_WORK_NS of work between them for SPACED_MS: never a
 * sleep. */
static void case_spaced(void)
{
	struct fi_cq_data_entry e;
	uint64_t end = now_ns() + SPACED_MS * 1000000ull, slowest = 0;
	unsigned long reads = 0, polls0 = polls;

	while (now_ns() < end) {
		uint64_t t0 = now_ns(), t1;

		reading = true;
		CHECK_EQ(fi_cq_read(a.cq, &e, 1), -FI_EAGAIN);
		reading = false;
		t1 = now_ns();
		if (t1 - t0 > slowest)
			slowest = t1 - t0;
		reads++;
		while (now_ns() - t1 < SPACED_WORK_NS)
			;	/* the application's work */
	}
	printf("# spaced: %lu reads %d us apart, %lu sleeps, slowest read "
	       "%.1f us\n", reads, SPACED_WORK_NS / 1000,
	       polls - polls0, slowest / 1e3);
	CHECK_EQ(polls - polls0, 0);
}

/* Reads a's and b's CQs in turn for SPACED_MS: never a sleep. */
static void case_two_cqs(void)
{
	struct fi_cq_data_entry e;
	uint64_t end = now_ns() + SPACED_MS * 1000000ull;
	unsigned long reads = 0, polls0 = polls;

	reading = true;
	while (now_ns() < end) {
		CHECK_EQ(fi_cq_read(a.cq, &e, 1), -FI_EAGAIN);
		CHECK_EQ(fi_cq_read(b.cq, &e, 1), -FI_EAGAIN);
		reads += 2;
	}
	reading = false;
	printf("# two CQs: %lu reads, %lu sleeps\n", reads, polls - polls0);
	CHECK_EQ(polls - polls0, 0);
}

/* a sends more than b's inbox holds while b is away, reading its CQ back
 * to back for SPACED_MS: never a sleep; then b drains and all complete. */
static void case_room(void)
{
	static char big[ROOM_LEN], bbuf[ROOM_SENDS][ROOM_LEN];
	struct fi_cq_data_entry e;
	uint64_t end;
	unsigned long polls0, reads = 0;
	int posted = 0, sent = 0, got = 0;

	for (int i = 0; i < ROOM_SENDS; i++)
		CHECK_EQ(fi_recv(b.ep, bbuf[i], ROOM_LEN, NULL, b_to_a, NULL), 0);
	while (posted < ROOM_SENDS) {
		ssize_t ret = fi_send(a.ep, big, ROOM_LEN, NULL, a_to_b, NULL);

		if (ret == -FI_EAGAIN)
			break;
		CHECK_EQ(ret, 0);
		posted++;
	}
	polls0 = polls;
	end = now_ns() + SPACED_MS * 1000000ull;
	reading = true;
	while (now_ns() < end) {
		sent += fi_cq_read(a.cq, &e, 1) == 1;
		reads++;
	}
	reading = false;
	printf("# room: %d sends posted, %lu reads while b was away, %lu "
	       "sleeps\n", posted, reads, polls - polls0);
	CHECK_EQ(polls - polls0, 0);
	end = now_ns() + FX_TIMEOUT_MS * 1000000ull;
	while ((sent < posted || got < posted) && now_ns() < end) {
		if (posted < ROOM_SENDS &&
		    fi_send(a.ep, big, ROOM_LEN, NULL, a_to_b, NULL) == 0)
			posted++;
		sent += fi_cq_read(a.cq, &e, 1) == 1;
		got += fi_cq_read(b.cq, &e, 1) == 1;
	}
	CHECK_EQ(sent, ROOM_SENDS);
	CHECK_EQ(got, ROOM_SENDS);
}

/* A thread of a's domain posting sends to b while readers sleep: no post
 * waits for a sleeper's lock.  b's receives are posted first. */
static void *post_sends(void *arg)
{
	uint64_t *slow = arg;
	static char brbuf[POSTS][MSG_LEN];

	for (int i = 0; i < POSTS; i++)
		CHECK_EQ(fi_recv(b.ep, brbuf[i], MSG_LEN, NULL, b_to_a, NULL),
			 0);
	usleep(50000);		/* the readers are asleep by now */
	for (int i = 0; i < POSTS; i++) {
		uint64_t t0 = now_ns();
		ssize_t ret = fi_inject(a.ep, sbuf, MSG_LEN, a_to_b);

		CHECK_EQ(ret, 0);
		if (now_ns() - t0 > POST_SLOW_NS)
			(*slow)++;
		usleep(2000);
	}
	return NULL;
}

/* Two readers sleep and are served while a third thread posts.  Whether
 * each reader slept, how promptly it was served and how long a post took
 * depend on the threads running when they would: on a loaded host a
 * reader preempted between its reads is no spin, so it never sleeps.  A
 * try that missed those (all else held) is only counted if it is the last
 * (returns false to ask for another). */
static bool case_threads(bool last)
{
	atomic_int got = 0;
	struct delayed_send d = { .start_ns = now_ns(), .n = 2 };
	struct reader r[2] = { { .got = &got, .want = 2 },
			       { .got = &got, .want = 2 } };
	pthread_t t[4];
	uint64_t slow = 0;

	post_recvs(2);
	CHECK_EQ(pthread_create(&t[0], NULL, read_tight, &r[0]), 0);
	CHECK_EQ(pthread_create(&t[1], NULL, read_tight, &r[1]), 0);
	CHECK_EQ(pthread_create(&t[2], NULL, post_sends, &slow), 0);
	CHECK_EQ(pthread_create(&t[3], NULL, send_later, &d), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	printf("# threads: sleeps %lu + %lu, handed out %.2f / %.2f ms after "
	       "the send; %lu of %d posts slow\n", r[0].polls, r[1].polls,
	       ((int64_t) r[0].done_ns - (int64_t) d.sent_ns) / 1e6,
	       ((int64_t) r[1].done_ns - (int64_t) d.sent_ns) / 1e6,
	       (unsigned long) slow, POSTS);
	CHECK_EQ(atomic_load(&got), 2);
	/* b drains what a's thread sent. */
	for (int i = 0; i < POSTS; i++) {
		struct fi_cq_data_entry e;

		CHECK_EQ(fx_wait(b.cq, &e, NULL), 1);
	}
	if (!last && (!r[0].polls || !r[1].polls || slow >= POSTS / 2 ||
		      r[0].done_ns - d.sent_ns >= PROMPT_MS * 1000000ull ||
		      r[1].done_ns - d.sent_ns >= PROMPT_MS * 1000000ull))
		return false;
	CHECK_MSG(r[0].polls > 0 && r[1].polls > 0, "sleeps %lu + %lu",
		  r[0].polls, r[1].polls);
	for (int i = 0; i < 2; i++)
		CHECK_MSG(r[i].done_ns - d.sent_ns < PROMPT_MS * 1000000ull,
			  "reader %d done %.1f ms after the send", i,
			  (r[i].done_ns - d.sent_ns) / 1e6);
	/* A post that met a sleeper holding the lock would wait ~1 ms: all
	 * would be slow.  A loaded host makes a few slow. */
	CHECK_MSG(slow < POSTS / 2, "%lu of %d posts slow", (unsigned long) slow,
		  POSTS);
	return true;
}

/* One message first: the link between a and b is set up before the cases
 * time anything. */
static void warm_up(void)
{
	struct fi_cq_data_entry e;

	post_recvs(1);
	CHECK_EQ(fi_send(b.ep, sbuf, MSG_LEN, NULL, b_to_a, NULL), 0);
	CHECK_EQ(fx_wait(a.cq, &e, NULL), 1);
	CHECK_EQ(fx_wait(b.cq, &e, NULL), 1);
}

static int run(bool blocking)
{
	CHECK_EQ(fx_open(&a, CAPS, 0), 0);
	CHECK_EQ(fx_open(&b, CAPS, 0), 0);
	a_to_b = fx_insert(&a, b.addr);
	b_to_a = fx_insert(&b, a.addr);
	CHECK(a_to_b != FI_ADDR_NOTAVAIL && b_to_a != FI_ADDR_NOTAVAIL);
	if (usb4_test_failures)
		return usb4_test_done("test_idle_block (set-up)");
	warm_up();
	for (int try = 1; !case_tight(blocking, try == TIGHT_TRIES); try++)
		printf("# tight: try %d was preempted, again\n", try);
	if (blocking) {
		case_spaced();
		case_two_cqs();
		case_room();
		for (int try = 1; !case_stream(try == TIGHT_TRIES); try++)
			;
		for (int try = 1; !case_exchange(try == TIGHT_TRIES); try++)
			;
		for (int try = 1; !case_threads(try == TIGHT_TRIES); try++)
			printf("# threads: try %d was preempted, again\n", try);
	}
	fx_close(&a);
	fx_close(&b);
	return usb4_test_done(blocking ? "test_idle_block" :
					 "test_idle_block (off)");
}

/* Runs one setting in a child: the provider reads FI_USB4_* once. */
static int in_child(const char *idle_block_us)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int ret;

		setenv("FI_USB4_IDLE_BLOCK_US", idle_block_us, 1);
		ret = run(strcmp(idle_block_us, "0") != 0);
		fflush(stdout);
		_exit(ret);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 1;
	return !WIFEXITED(status) || WEXITSTATUS(status);
}

int main(void)
{
	int failed;

	failed = in_child("20");
	failed |= in_child("0");
	return failed;
}
