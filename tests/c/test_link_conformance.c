/*
 * Link conformance: what usb4_link.h promises, checked the same way over
 * every kind of link: shm, udp over loopback, and the fake link of
 * tests/c/usb4_link_fake.c.  Every case is a function named after the
 * behaviour it checks; a case a kind cannot support is skipped with the
 * reason printed.
 *
 * Test frames are the test's own (the links never look inside): a 16-byte
 * head (the sender's ep_id, a per-stream sequence number, the length) and a
 * pattern the receiver recomputes, so a frame lost, doubled, reordered,
 * cut, corrupted or credited to the wrong sender is caught.
 *
 * Nothing spins: waiting polls every link once, then sleeps on the links'
 * wait fds (sleep_begin, poll, sleep_end) for a few ms or the next timer.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "usb4_link.h"
#include "usb4_shm.h"
#include "usb4_udp.h"
#include "usb4_link_fake.h"
#include "usb4_test.h"
#include "../../prov_usb4/src/wire.h"

#define ORDER_FRAMES	10000
#define BUDGET		16		/* frames per poll */
#define SMALL_BUDGET	4		/* the receiver-not-ready case */
#define WAIT_MS		5		/* one sleep while waiting */
#define SETTLE_MS	20		/* progress before a case closes */
#define SLACK_MS	1500		/* scheduling (valgrind, busy hosts) */
#define FAST_DEATH_MS	300		/* udp peer timeout of death cases */
#define SENDERS_MAX	4
#define EPS_MAX		4

/* ---- the kinds ---- */

struct kind {
	const char *name;
	const struct usb4_link_ops *ops;
	/* close() lingers until peers acknowledged or were declared dead:
	 * bounded by peer_timeout_ms + 1 s (udp_close); else it returns at
	 * once. */
	bool lingers;
	/* A closed peer is noticed only by its silence (peer timeout), while
	 * frames are outstanding; else at once. */
	bool silent_death;
	/* Reaches links of other processes. */
	bool cross_process;
	/* Learns of a dead peer by itself and reports it through
	 * sink.peer_down; else only when asked (peer_state, failed posts),
	 * which usb4_link.h allows: the core asks about the peers its pending
	 * work waits on. */
	bool reports_down;
	/* Holds frames back for order: a poll that fills a gap also hands up
	 * the frames held behind it, up to the reliability window, beyond its
	 * budget (usb4_link.h, poll). */
	bool holds_for_order;
	/* What a peer that closed its end is down with: -FI_ECONNRESET where
	 * closing tells peers (the udp link's close handshake), else
	 * -FI_EHOSTUNREACH (noticed as gone). */
	int closed_err;
};

static const struct kind kinds[] = {
	{ "shm", &usb4_shm_link_ops, false, false, true, false, false,
	  -FI_EHOSTUNREACH },
	{ "udp", &usb4_udp_link_ops, true, true, true, true, true,
	  -FI_ECONNRESET },
	{ "fake", &usb4_fake_link_ops, false, false, false, true, false,
	  -FI_EHOSTUNREACH },
};

static void skip(const struct kind *k, const char *what, const char *why)
{
	printf("SKIP %s/%s: %s\n", k->name, what, why);
}

static int close_bound_ms(const struct kind *k)
{
	return (k->lingers ? usb4_params.peer_timeout_ms + 1000 : 0) + SLACK_MS;
}

static int death_bound_ms(const struct kind *k)
{
	return (k->silent_death ? usb4_params.peer_timeout_ms : 0) + SLACK_MS;
}

static uint64_t now_ms(void)
{
	return usb4_now_ns() / 1000000;
}

/* ---- test frames ---- */

struct test_head {
	uint64_t src;
	uint32_t seq;
	uint32_t len;
};
#define HEAD_LEN	sizeof(struct test_head)

static unsigned char pattern(uint64_t src, uint32_t seq, size_t i)
{
	return (unsigned char) (src + seq * 131u + i * 7u + (i >> 8));
}

/* Lengths vary from a bare head to frame_max: mostly small, some large,
 * every 101st exactly frame_max. */
static size_t frame_len(uint32_t seq, size_t fm)
{
	uint32_t h = seq * 2654435761u;

	if (seq % 101 == 100)
		return fm;
	if (seq % 29 == 0)
		return HEAD_LEN + h % (fm - HEAD_LEN + 1);
	return HEAD_LEN + h % (fm < 2048 ? fm - HEAD_LEN + 1 : 2048);
}

static void frame_build(unsigned char *buf, uint64_t src, uint32_t seq,
			size_t len)
{
	struct test_head h = { .src = src, .seq = seq, .len = (uint32_t) len };

	memcpy(buf, &h, HEAD_LEN);
	for (size_t i = HEAD_LEN; i < len; i++)
		buf[i] = pattern(src, seq, i);
}

/* Splits a frame into 1..3 pieces (links gather them). */
static int frame_iov(unsigned char *buf, size_t len, uint32_t seq,
		     struct iovec *iov)
{
	int count = 1 + (int) (seq % 3);
	size_t cut1 = len / 3, cut2 = 2 * len / 3;

	if (count == 1 || len < 3) {
		iov[0] = (struct iovec) { buf, len };
		return 1;
	}
	if (count == 2) {
		iov[0] = (struct iovec) { buf, cut1 };
		iov[1] = (struct iovec) { buf + cut1, len - cut1 };
		return 2;
	}
	iov[0] = (struct iovec) { buf, cut1 };
	iov[1] = (struct iovec) { buf + cut1, cut2 - cut1 };
	iov[2] = (struct iovec) { buf + cut2, len - cut2 };
	return 3;
}

/* ---- endpoints: a link and what its sink saw ---- */

struct sender {
	uint64_t id;
	uint32_t next;		/* seq expected next */
};

struct ep {
	const struct kind *k;
	struct usb4_link *link;
	struct usb4_wire_addr addr;
	uint64_t id;
	unsigned char *rxbuf, *txbuf;
	/* the sink's record */
	struct sender senders[SENDERS_MAX];
	int nsenders;
	uint64_t frames, bad;
	int refuse;		/* refuse the next n offers */
	int refuse_mod;		/* and twice each frame whose seq % mod == 3 */
	uint32_t refusing_seq;
	int refusing_times;
	uint64_t refused;
	int in_poll_taken, most_in_poll;
	uint64_t budget_overruns;
	int downs;
	uint64_t down_id;
	int down_err;
	bool in_post;		/* a post of this endpoint is under way */
	int downs_in_post;	/* peer_down heard from inside one */
};

static struct sender *sender_of(struct ep *e, uint64_t id)
{
	for (int i = 0; i < e->nsenders; i++)
		if (e->senders[i].id == id)
			return &e->senders[i];
	if (e->nsenders == SENDERS_MAX)
		return NULL;
	e->senders[e->nsenders] = (struct sender) { .id = id };
	return &e->senders[e->nsenders++];
}

static uint32_t got_from(struct ep *e, uint64_t id)
{
	for (int i = 0; i < e->nsenders; i++)
		if (e->senders[i].id == id)
			return e->senders[i].next;
	return 0;
}

static void bad_frame(struct ep *e, const char *why, uint64_t from,
		      uint32_t seq, size_t len)
{
	if (e->bad++ < 5)
		fprintf(stderr, "%s: bad frame at %016llx: %s (from %016llx "
			"seq %u len %zu)\n", e->k->name,
			(unsigned long long) e->id, why,
			(unsigned long long) from, seq, len);
}

/* Whether the frame is the next one of its sender's stream, intact. */
static bool frame_check(struct ep *e, uint64_t from, const unsigned char *p,
			size_t len)
{
	struct test_head h;
	struct sender *s;

	if (len < HEAD_LEN) {
		bad_frame(e, "shorter than a head", from, 0, len);
		return false;
	}
	memcpy(&h, p, HEAD_LEN);
	s = sender_of(e, h.src);
	if (h.src != from || !s || h.len != len || h.seq != s->next) {
		bad_frame(e, h.src != from ? "wrong sender" :
			  h.len != len ? "wrong length" : "out of order", from,
			  h.seq, len);
		return false;
	}
	for (size_t i = HEAD_LEN; i < len; i++) {
		if (p[i] != pattern(h.src, h.seq, i)) {
			bad_frame(e, "corrupted", from, h.seq, len);
			return false;
		}
	}
	s->next++;
	return true;
}

/* Receiver not ready, on purpose: the next `refuse` offers, and twice each
 * frame whose seq % refuse_mod == 3. */
static bool refuse_now(struct ep *e, const unsigned char *p, size_t len)
{
	struct test_head h;

	if (e->refuse > 0) {
		e->refuse--;
		return true;
	}
	if (!e->refuse_mod || len < HEAD_LEN)
		return false;
	memcpy(&h, p, HEAD_LEN);
	if (h.seq % e->refuse_mod != 3)
		return false;
	if (h.seq != e->refusing_seq) {
		e->refusing_seq = h.seq;
		e->refusing_times = 0;
	}
	return e->refusing_times++ < 2;
}

static int sink_frame(void *ctx, struct usb4_link *link, uint64_t from,
		      const struct iovec *frame, int count)
{
	struct ep *e = ctx;
	size_t len = 0;

	for (int i = 0; i < count; i++) {
		memcpy(e->rxbuf + len, frame[i].iov_base, frame[i].iov_len);
		len += frame[i].iov_len;
	}
	if (refuse_now(e, e->rxbuf, len)) {
		e->refused++;
		return -FI_EAGAIN;
	}
	e->in_poll_taken++;
	if (frame_check(e, from, e->rxbuf, len))
		e->frames++;
	return 0;
}

static void sink_peer_down(void *ctx, struct usb4_link *link, uint64_t peer,
			   int err)
{
	struct ep *e = ctx;

	e->downs++;
	e->down_id = peer;
	e->down_err = err;
	if (e->in_post)
		e->downs_in_post++;
}

#define BUF_LEN		(1u << 17)	/* above any kind's frame_max */

static int ep_open(struct ep *e, const struct kind *k)
{
	struct usb4_link_cfg cfg;
	int ret;

	memset(e, 0, sizeof(*e));
	e->k = k;
	e->id = usb4_random64();
	e->rxbuf = malloc(BUF_LEN);
	e->txbuf = malloc(BUF_LEN);
	cfg = (struct usb4_link_cfg) {
		.ep_id = e->id, .reg_fd = -1,
		.sink = { .ctx = e, .frame = sink_frame,
			  .peer_down = sink_peer_down },
	};
	ret = e->rxbuf && e->txbuf ? k->ops->open(&cfg, &e->link) : -FI_ENOMEM;
	CHECK_EQ(ret, 0);
	if (ret) {
		free(e->rxbuf);
		free(e->txbuf);
		e->rxbuf = e->txbuf = NULL;
		return ret;
	}
	usb4_wire_addr_init(&e->addr, usb4_host_id(), e->id);
	k->ops->addr(e->link, &e->addr);
	return 0;
}

/* Closes the link; returns how long close() took, in ms. */
static uint64_t ep_close(struct ep *e)
{
	uint64_t t0 = now_ms();

	if (e->link)
		e->k->ops->close(e->link);
	e->link = NULL;
	free(e->rxbuf);
	free(e->txbuf);
	e->rxbuf = e->txbuf = NULL;
	t0 = now_ms() - t0;
	if (t0 > 100)
		printf("  %s: close took %llu ms\n", e->k->name,
		       (unsigned long long) t0);
	return t0;
}

static struct usb4_link_dest *dest_to(const struct ep *from, const struct ep *to)
{
	struct usb4_link_dest *d = NULL;
	int ret = from->k->ops->dest_open(&to->addr, &d);

	CHECK_EQ(ret, 0);
	return ret ? NULL : d;
}

/* ---- progress without spinning ---- */

static int poll_ep(struct ep *e, int budget)
{
	int slack = e->k->holds_for_order ? (int) usb4_params.rel_window : 0;
	int n;

	e->in_poll_taken = 0;
	n = e->k->ops->poll(e->link, budget);
	if (e->in_poll_taken > budget + slack)
		e->budget_overruns++;
	if (e->in_poll_taken > e->most_in_poll)
		e->most_in_poll = e->in_poll_taken;
	return n;
}

/* Sleeps on the links' wait fds, at most wait_ms or their next timer. */
static void sleep_on(struct ep **eps, int n, int wait_ms)
{
	struct pollfd fds[EPS_MAX];
	int began = 0, timeout = wait_ms;

	for (; began < n; began++) {
		const struct usb4_link_ops *ops = eps[began]->k->ops;
		int64_t t;

		if (!ops->sleep_begin(eps[began]->link))
			break;
		fds[began] = (struct pollfd) {
			.fd = ops->wait_fd(eps[began]->link), .events = POLLIN };
		t = ops->timer_us(eps[began]->link);
		if (t >= 0 && (t + 999) / 1000 < timeout)
			timeout = (int) ((t + 999) / 1000);
	}
	if (began == n)
		poll(fds, n, timeout);
	while (began--)
		eps[began]->k->ops->sleep_end(eps[began]->link);
}

/* Polls every link once; sleeps a little when none took anything. */
static int progress(struct ep **eps, int n, int budget)
{
	int got = 0;

	for (int i = 0; i < n; i++)
		got += poll_ep(eps[i], budget);
	if (!got)
		sleep_on(eps, n, WAIT_MS);
	return got;
}

/* Progresses until e has `want` frames from `from`, or ms pass. */
static bool wait_frames(struct ep **eps, int n, struct ep *e, uint64_t from,
			uint32_t want, int ms, int budget)
{
	uint64_t deadline = now_ms() + ms;

	while (got_from(e, from) < want && e->bad == 0 && now_ms() < deadline)
		progress(eps, n, budget);
	return got_from(e, from) >= want;
}

/* Both sides progress a while, as live peers do before they close: acks
 * owed go out, so a close finds nothing to linger for. */
static void settle(struct ep **eps, int n)
{
	uint64_t until = now_ms() + SETTLE_MS;

	for (int i = 0; i < n; i++)
		if (!eps[i]->link)
			return;
	while (now_ms() < until)
		progress(eps, n, BUDGET);
}

/* Posts frame seq of from's stream to d; while the link answers -FI_EAGAIN,
 * progresses eps (none: just sleeps).  The post's answer, or -FI_ETIMEDOUT
 * after 10 s of back-pressure. */
static int post_seq(struct ep *from, struct usb4_link_dest *d, uint32_t seq,
		    size_t len, struct ep **eps, int n)
{
	uint64_t deadline = now_ms() + 10000;
	struct iovec iov[3];
	int count, ret;

	frame_build(from->txbuf, from->id, seq, len);
	count = frame_iov(from->txbuf, len, seq, iov);
	while ((ret = from->k->ops->post(from->link, d, iov, count)) ==
	       -FI_EAGAIN) {
		if (now_ms() > deadline)
			return -FI_ETIMEDOUT;
		if (n)
			progress(eps, n, BUDGET);
		else
			usleep(1000);
	}
	return ret;
}

/* One post of frame seq, whatever the answer. */
static int post_once(struct ep *from, struct usb4_link_dest *d, uint32_t seq,
		     size_t len)
{
	struct iovec iov[3];
	int count;

	int ret;

	frame_build(from->txbuf, from->id, seq, len);
	count = frame_iov(from->txbuf, len, seq, iov);
	from->in_post = true;
	ret = from->k->ops->post(from->link, d, iov, count);
	from->in_post = false;
	return ret;
}

/* Posts frames [first, first + count) of a stream; the number posted. */
static uint32_t post_stream(struct ep *from, struct usb4_link_dest *d,
			    uint32_t first, uint32_t count, size_t fm,
			    struct ep **eps, int n)
{
	for (uint32_t seq = first; seq < first + count; seq++) {
		int ret = post_seq(from, d, seq, frame_len(seq, fm), eps, n);

		if (ret) {
			CHECK_EQ(ret, 0);
			return seq - first;
		}
	}
	return count;
}

/* Posts without anybody progressing until the link pushes back; the
 * number posted before -FI_EAGAIN (other errors fail the check). */
static uint32_t post_until_full(struct ep *from, struct usb4_link_dest *d,
				uint32_t first, size_t fm, bool *full)
{
	uint32_t seq = first;
	int ret = 0;

	for (*full = false; seq < first + 100000; seq++)
		if ((ret = post_once(from, d, seq, frame_len(seq, fm))))
			break;
	*full = ret == -FI_EAGAIN;
	CHECK(ret == 0 || ret == -FI_EAGAIN);
	return seq - first;
}

/* ---- cases ---- */

/* 10000 frames A -> B arrive exactly once, in order, intact, from A; B
 * answers A through dest_of. */
static void order_exactly_once_from_sender(const struct kind *k)
{
	struct ep a = { 0 }, b = { 0 }, *both[] = { &a, &b };
	struct usb4_link_dest *d, *back;
	size_t fm;

	if (ep_open(&a, k) || ep_open(&b, k))
		goto out_close;
	if (!(d = dest_to(&a, &b)))
		goto out_close;
	fm = k->ops->frame_max(a.link, d);
	CHECK_EQ(post_stream(&a, d, 0, ORDER_FRAMES, fm, both, 2), ORDER_FRAMES);
	CHECK(wait_frames(both, 2, &b, a.id, ORDER_FRAMES, 10000, BUDGET));
	CHECK_EQ(got_from(&b, a.id), ORDER_FRAMES);
	CHECK_EQ(b.frames, ORDER_FRAMES);
	CHECK_EQ(b.bad, 0);
	CHECK_EQ(b.budget_overruns, 0);
	back = k->ops->dest_of(b.link, a.id);
	CHECK(back != NULL);
	if (back) {
		fm = k->ops->frame_max(b.link, back);
		CHECK_EQ(post_stream(&b, back, 0, 200, fm, both, 2), 200);
		CHECK(wait_frames(both, 2, &a, b.id, 200, 5000, BUDGET));
		CHECK_EQ(a.frames, 200);
		CHECK_EQ(a.bad, 0);
	}
	k->ops->dest_close(d);
out_close:
	settle(both, 2);
	ep_close(&b);
	ep_close(&a);
}

/* Posting to a receiver that does not poll ends in -FI_EAGAIN, never in a
 * drop; once it polls, posting resumes; nothing is lost. */
static void backpressure_eagain_never_drops(const struct kind *k)
{
	struct ep a = { 0 }, b = { 0 }, *both[] = { &a, &b };
	struct usb4_link_dest *d;
	uint32_t posted, more;
	bool full;
	size_t fm;

	if (ep_open(&a, k) || ep_open(&b, k))
		goto out_close;
	if (!(d = dest_to(&a, &b)))
		goto out_close;
	fm = k->ops->frame_max(a.link, d);
	posted = post_until_full(&a, d, 0, fm, &full);
	CHECK(full);
	CHECK(posted > 0);
	printf("  %s: -FI_EAGAIN after %u frames\n", k->name, posted);
	/* still full: refused again, and a refused post is not queued */
	for (int i = 0; i < 10; i++)
		CHECK_EQ(post_once(&a, d, posted, frame_len(posted, fm)),
			 -FI_EAGAIN);
	CHECK(wait_frames(both, 2, &b, a.id, posted, 10000, BUDGET));
	CHECK_EQ(b.frames, posted);
	more = post_stream(&a, d, posted, 3 * posted, fm, both, 2);
	CHECK_EQ(more, 3 * posted);
	CHECK(wait_frames(both, 2, &b, a.id, posted + more, 10000, BUDGET));
	CHECK_EQ(b.frames, posted + more);
	CHECK_EQ(b.bad, 0);
	k->ops->dest_close(d);
out_close:
	settle(both, 2);
	ep_close(&b);
	ep_close(&a);
}

/* frame_max bytes arrive intact; frame_max + 1 is refused with
 * -FI_EMSGSIZE and nothing of it arrives. */
static void frame_max_fits_one_more_refused(const struct kind *k)
{
	struct ep a = { 0 }, b = { 0 }, *both[] = { &a, &b };
	struct usb4_link_dest *d;
	struct iovec iov[3];
	size_t fm;
	int ret, count;

	if (ep_open(&a, k) || ep_open(&b, k))
		goto out_close;
	if (!(d = dest_to(&a, &b)))
		goto out_close;
	fm = k->ops->frame_max(a.link, d);
	printf("  %s: frame_max %zu\n", k->name, fm);
	CHECK(fm >= sizeof(struct usb4_wire_hdr) + HEAD_LEN);
	CHECK(fm + 1 <= BUF_LEN);
	for (uint32_t seq = 0; seq < 3; seq++)	/* in 1, 2 and 3 pieces */
		CHECK_EQ(post_seq(&a, d, seq, fm, both, 2), 0);
	for (uint32_t pieces = 1; pieces <= 3; pieces++) {
		frame_build(a.txbuf, a.id, 3, fm + 1);
		count = frame_iov(a.txbuf, fm + 1, pieces - 1, iov);
		ret = k->ops->post(a.link, d, iov, count);
		CHECK_EQ(ret, -FI_EMSGSIZE);
	}
	CHECK_EQ(post_seq(&a, d, 3, HEAD_LEN, both, 2), 0);	/* a marker */
	CHECK(wait_frames(both, 2, &b, a.id, 4, 5000, BUDGET));
	for (int i = 0; i < 5; i++)	/* anything stray would show */
		progress(both, 2, BUDGET);
	CHECK_EQ(b.frames, 4);
	CHECK_EQ(b.bad, 0);
	k->ops->dest_close(d);
out_close:
	settle(both, 2);
	ep_close(&b);
	ep_close(&a);
}

/* A sink that answers -FI_EAGAIN for a while loses nothing: the frame is
 * offered again, in order, and a poll hands up at most its budget (plus
 * the frames a link held back for order). */
static void receiver_not_ready_loses_nothing(const struct kind *k)
{
	struct ep a = { 0 }, b = { 0 }, *both[] = { &a, &b };
	struct usb4_link_dest *d;
	uint32_t n = 1000;
	size_t fm;

	if (ep_open(&a, k) || ep_open(&b, k))
		goto out_close;
	if (!(d = dest_to(&a, &b)))
		goto out_close;
	fm = k->ops->frame_max(a.link, d);
	b.refuse = 50;
	b.refuse_mod = 7;
	CHECK_EQ(post_stream(&a, d, 0, n, fm, both, 2), n);
	CHECK(wait_frames(both, 2, &b, a.id, n, 10000, SMALL_BUDGET));
	CHECK_EQ(b.frames, n);
	CHECK_EQ(b.bad, 0);
	CHECK(b.refused >= 50 + 2 * (n / 7));
	if (b.budget_overruns)
		printf("  %s: %llu polls handed up more than their budget of %d "
		       "frames and the window held back (up to %d)\n", k->name,
		       (unsigned long long) b.budget_overruns, SMALL_BUDGET,
		       b.most_in_poll);
	CHECK_EQ(b.budget_overruns, 0);
	k->ops->dest_close(d);
out_close:
	settle(both, 2);
	ep_close(&b);
	ep_close(&a);
}

/* Progresses a alone until peer_state(d) is non-zero or ms pass. */
static int wait_peer_state(struct ep *a, struct usb4_link_dest *d, int ms)
{
	uint64_t deadline = now_ms() + ms;
	struct ep *one[] = { a };
	int state;

	while (!(state = a->k->ops->peer_state(a->link, d)) &&
	       now_ms() < deadline)
		progress(one, 1, BUDGET);
	return state;
}

/* A opens a session to B and B hears 10 frames on it: the live peer the
 * death tests then take away.  NULL when the pair cannot be set up. */
static struct usb4_link_dest *session_heard(struct ep *a, struct ep *b,
					    const struct kind *k)
{
	struct ep *both[] = { a, b };
	struct usb4_link_dest *d;

	if (ep_open(a, k) || ep_open(b, k) || !(d = dest_to(a, b)))
		return NULL;
	CHECK_EQ(post_stream(a, d, 0, 10, HEAD_LEN + 100, both, 2), 10);
	CHECK(wait_frames(both, 2, b, a->id, 10, 5000, BUDGET));
	return d;
}

/* Closing B: A's peer_state for B turns k->closed_err in bounded time,
 * A's sink hears peer_down(B) once, and posts to B fail. */
static void peer_death_reported_once(const struct kind *k)
{
	struct ep a = { 0 }, b = { 0 }, *both[] = { &a, &b }, *one[] = { &a };
	struct usb4_link_dest *d;
	uint64_t b_id, t0, took;
	int ret, state;

	if (!(d = session_heard(&a, &b, k)))
		goto out_close;
	b_id = b.id;
	ep_close(&b);
	t0 = now_ms();
	/* outstanding frames: the way a silent peer is noticed */
	ret = post_once(&a, d, 10, HEAD_LEN);
	CHECK(ret == 0 || ret == -FI_EAGAIN || ret == k->closed_err);
	state = wait_peer_state(&a, d, death_bound_ms(k));
	took = now_ms() - t0;
	printf("  %s: peer_state %d after %llu ms (bound %d)\n", k->name, state,
	       (unsigned long long) took, death_bound_ms(k));
	CHECK_EQ(state, k->closed_err);
	for (int i = 0; i < 10; i++)	/* reported on the next polls */
		progress(one, 1, BUDGET);
	CHECK(a.downs <= 1);		/* never twice */
	if (k->reports_down) {
		CHECK_EQ(a.downs, 1);
		CHECK(a.down_id == b_id);
		CHECK_EQ(a.down_err, k->closed_err);
	}
	ret = post_once(&a, d, 11, HEAD_LEN);
	CHECK_EQ(ret, k->closed_err);
	k->ops->dest_close(d);
out_close:
	settle(both, 2);
	ep_close(&b);
	ep_close(&a);
}

/*
 * B gone, A only posts to it (no progress) until its peer_state turns: the
 * verdict a post reaches is reported on A's next poll, never from inside
 * the post.  The core posts while it walks its lists (a stream pumping a
 * read response); a report inside the post freed the stream under it
 * (heap use after free in usb4_stream_progress, seen under ASan in
 * test_liveness's pulled-cable case).
 */
static void peer_down_not_inside_post(const struct kind *k)
{
	struct ep a = { 0 }, b = { 0 }, *both[] = { &a, &b }, *one[] = { &a };
	struct usb4_link_dest *d;
	uint64_t deadline;
	uint32_t seq = 10;
	int state = 0;

	if (!(d = session_heard(&a, &b, k)))
		goto out_close;
	ep_close(&b);
	deadline = now_ms() + death_bound_ms(k);
	while (!state && now_ms() < deadline) {
		post_once(&a, d, seq++, HEAD_LEN);
		state = k->ops->peer_state(a.link, d);
		usleep(1000);
	}
	printf("  %s: peer_state %d after %u posts, %d peer_down inside a "
	       "post\n", k->name, state, seq - 10, a.downs_in_post);
	for (int i = 0; i < 10; i++)	/* reported on the next polls */
		progress(one, 1, BUDGET);
	CHECK_EQ(a.downs_in_post, 0);
	if (k->reports_down && state)
		CHECK_EQ(a.downs, 1);
	k->ops->dest_close(d);
out_close:
	settle(both, 2);
	ep_close(&b);
	ep_close(&a);
}

/* c and x exchange frames both ways (x answers through dest_of). */
static void exchange_works(struct ep *x, struct ep *c, uint32_t n)
{
	struct ep *both[] = { x, c };
	const struct usb4_link_ops *ops = x->k->ops;
	struct usb4_link_dest *d = dest_to(c, x), *back;
	uint32_t from_x = got_from(c, x->id);

	if (!d)
		return;
	CHECK_EQ(post_stream(c, d, 0, n, ops->frame_max(c->link, d), both, 2), n);
	CHECK(wait_frames(both, 2, x, c->id, n, 10000, BUDGET));
	back = ops->dest_of(x->link, c->id);
	CHECK(back != NULL);
	if (back) {
		CHECK_EQ(post_stream(x, back, 0, n, ops->frame_max(x->link, back),
				     both, 2), n);
		CHECK(wait_frames(both, 2, c, x->id, from_x + n, 10000, BUDGET));
	}
	CHECK_EQ(x->bad, 0);
	CHECK_EQ(c->bad, 0);
	ops->dest_close(d);
	settle(both, 2);
}

/* The receiver closes with frames queued for it: its close and the
 * sender's stay within the linger bound, the sender works on with C. */
static void close_receiver_with_frames_queued(const struct kind *k)
{
	struct ep a = { 0 }, b = { 0 }, c = { 0 }, *ab[] = { &a, &b };
	struct usb4_link_dest *d;
	uint64_t took, until;
	uint32_t posted;
	size_t fm;
	bool full;

	if (ep_open(&a, k) || ep_open(&b, k) || ep_open(&c, k))
		goto out_close;
	if (!(d = dest_to(&a, &b)))
		goto out_close;
	fm = k->ops->frame_max(a.link, d);
	posted = post_until_full(&a, d, 0, fm, &full);
	CHECK(full);
	/* B takes nothing: frames travel and pile up at B (held, queued) */
	b.refuse = INT_MAX;
	for (until = now_ms() + 30; now_ms() < until; )
		progress(ab, 2, BUDGET);
	post_until_full(&a, d, posted, fm, &full);
	CHECK(full);
	CHECK(b.refused > 0);
	CHECK_EQ(b.frames, 0);
	took = ep_close(&b);
	printf("  %s: receiver close took %llu ms (bound %d)\n", k->name,
	       (unsigned long long) took, close_bound_ms(k));
	CHECK(took <= (uint64_t) close_bound_ms(k));
	exchange_works(&a, &c, 300);
	k->ops->dest_close(d);
	took = ep_close(&a);
	printf("  %s: sender close took %llu ms (bound %d)\n", k->name,
	       (unsigned long long) took, close_bound_ms(k));
	CHECK(took <= (uint64_t) close_bound_ms(k));
out_close:
	ep_close(&c);
	ep_close(&b);
	ep_close(&a);
}

/* B takes every frame A posted and closes at once (as a process does that
 * finalizes after its last receive): A has nothing left for B to take, so
 * A's close must not linger until B's silence declares it dead. */
static void receiver_close_lets_sender_close_promptly(const struct kind *k)
{
	struct ep a = { 0 }, b = { 0 }, *both[] = { &a, &b };
	struct usb4_link_dest *d;
	uint64_t took;

	if (ep_open(&a, k) || ep_open(&b, k))
		goto out_close;
	if (!(d = dest_to(&a, &b)))
		goto out_close;
	CHECK_EQ(post_stream(&a, d, 0, 5, HEAD_LEN + 100, both, 2), 5);
	CHECK(wait_frames(both, 2, &b, a.id, 5, 5000, BUDGET));
	k->ops->dest_close(d);
	ep_close(&b);
	took = ep_close(&a);
	printf("  %s: sender close after the receiver's took %llu ms (peer "
	       "timeout %d ms)\n", k->name, (unsigned long long) took,
	       usb4_params.peer_timeout_ms);
	CHECK(took < (uint64_t) usb4_params.peer_timeout_ms / 2);
out_close:
	ep_close(&b);
	ep_close(&a);
}

/* A thread that progresses one endpoint until it has `want` frames from
 * `from` or the deadline passes. */
struct drainer {
	pthread_t thread;
	struct ep *e;
	uint64_t from;
	uint32_t want;
	int ms;
};

static void *drain_main(void *arg)
{
	struct drainer *dr = arg;
	struct ep *one[] = { dr->e };

	wait_frames(one, 1, dr->e, dr->from, dr->want, dr->ms, BUDGET);
	return NULL;
}

/* The sender closes with frames in flight: what it posted still arrives
 * (close lingers, bounded), and the receiver works on with C. */
static void close_sender_with_frames_in_flight(const struct kind *k)
{
	struct ep a = { 0 }, b = { 0 }, c = { 0 };
	struct usb4_link_dest *d;
	struct drainer dr;
	uint32_t posted;
	uint64_t a_id, took;
	bool full;

	if (ep_open(&a, k) || ep_open(&b, k) || ep_open(&c, k))
		goto out_close;
	if (!(d = dest_to(&a, &b)))
		goto out_close;
	posted = post_until_full(&a, d, 0, k->ops->frame_max(a.link, d), &full);
	CHECK(full);
	a_id = a.id;
	dr = (struct drainer) { .e = &b, .from = a_id, .want = posted,
				.ms = close_bound_ms(k) + 2000 };
	CHECK_EQ(pthread_create(&dr.thread, NULL, drain_main, &dr), 0);
	k->ops->dest_close(d);
	took = ep_close(&a);
	printf("  %s: sender close with %u frames in flight took %llu ms "
	       "(bound %d)\n", k->name, posted, (unsigned long long) took,
	       close_bound_ms(k));
	CHECK(took <= (uint64_t) close_bound_ms(k));
	pthread_join(dr.thread, NULL);
	CHECK_EQ(got_from(&b, a_id), posted);
	CHECK_EQ(b.bad, 0);
	exchange_works(&b, &c, 300);
out_close:
	ep_close(&c);
	ep_close(&b);
	ep_close(&a);
}

static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
	sigpipes++;
}

/* The child: opens a link, sends its address, goes to sleep on it, and
 * is killed there (a crash: nothing is closed). */
static void crash_child(const struct kind *k, int to_parent)
{
	struct ep b;
	char ok = 1;

	if (ep_open(&b, k) ||
	    write(to_parent, &b.addr, sizeof(b.addr)) != sizeof(b.addr))
		_exit(1);
	if (!k->ops->sleep_begin(b.link))
		_exit(1);
	if (write(to_parent, &ok, 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

/* Opens B in a child process that dies asleep; returns its pid, B's
 * address in *addr, or -1. */
static pid_t spawn_sleeper(const struct kind *k, struct usb4_wire_addr *addr)
{
	int p[2];
	char ok = 0;
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		crash_child(k, p[1]);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], addr, sizeof(*addr)) != sizeof(*addr) ||
	    read(p[0], &ok, 1) != 1 || !ok) {
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		pid = -1;
	}
	close(p[0]);
	return pid;
}

/* A peer process killed while asleep on its link: posting to it does not
 * kill the sender (no SIGPIPE), its death shows in peer_state in bounded
 * time, and later posts to it fail. */
static void peer_crash_asleep_harmless(const struct kind *k)
{
	struct sigaction sa = { .sa_handler = on_sigpipe }, old;
	struct usb4_wire_addr baddr;
	struct usb4_link_dest *d = NULL;
	struct ep a = { 0 }, *one[] = { &a };
	pid_t pid;
	int state, ret;

	if (!k->cross_process) {
		skip(k, __func__, "reaches only links of its own process");
		return;
	}
	pid = spawn_sleeper(k, &baddr);
	CHECK(pid > 0);
	if (pid <= 0 || ep_open(&a, k)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	CHECK_EQ(k->ops->dest_open(&baddr, &d), 0);
	if (d)
		CHECK_EQ(post_seq(&a, d, 0, HEAD_LEN, one, 1), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	sigpipes = 0;
	sigaction(SIGPIPE, &sa, &old);
	for (uint32_t seq = 1; d && seq < 4; seq++)
		post_seq(&a, d, seq, HEAD_LEN, one, 1);
	state = d ? wait_peer_state(&a, d, death_bound_ms(k)) : 0;
	ret = d ? post_once(&a, d, 4, HEAD_LEN) : 0;
	sigaction(SIGPIPE, &old, NULL);
	CHECK_EQ(sigpipes, 0);
	CHECK_EQ(state, -FI_EHOSTUNREACH);
	CHECK_EQ(ret, -FI_EHOSTUNREACH);	/* later posts fail */
	if (d)
		k->ops->dest_close(d);
	ep_close(&a);
}

/* Whether fd is readable within ms. */
static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

struct waker {
	pthread_t thread;
	struct ep *a;
	struct usb4_link_dest *d;
	int ret;
};

static void *waker_main(void *arg)
{
	struct waker *w = arg;

	usleep(30 * 1000);
	w->ret = post_seq(w->a, w->d, 0, HEAD_LEN + 64, NULL, 0);
	return NULL;
}

/* Nothing to read: sleep_begin says sleep, and wait_fd stays quiet. */
static void idle_sleep_stays_quiet(struct ep *b)
{
	const struct usb4_link_ops *ops = b->k->ops;
	bool sleeps = ops->sleep_begin(b->link);
	uint64_t t0 = now_ms();

	CHECK(sleeps);
	CHECK(!readable(ops->wait_fd(b->link), 50));
	CHECK(now_ms() - t0 >= 45);
	if (sleeps)
		ops->sleep_end(b->link);
}

/* B asleep; a frame A posts from another thread makes B's wait_fd
 * readable. */
static void frame_from_thread_wakes(struct ep *a, struct ep *b,
				    struct usb4_link_dest *d)
{
	const struct usb4_link_ops *ops = b->k->ops;
	struct waker w = { .a = a, .d = d, .ret = -FI_EOTHER };
	struct ep *both[] = { a, b };
	bool woke, sleeps = ops->sleep_begin(b->link);
	uint64_t t0, took;

	CHECK(sleeps);
	CHECK_EQ(pthread_create(&w.thread, NULL, waker_main, &w), 0);
	t0 = now_ms();
	woke = readable(ops->wait_fd(b->link), 3000);
	took = now_ms() - t0;
	if (sleeps)
		ops->sleep_end(b->link);
	pthread_join(w.thread, NULL);
	CHECK_EQ(w.ret, 0);
	CHECK(woke);
	CHECK(took >= 20 && took < 3000);
	CHECK(wait_frames(both, 2, b, a->id, 1, 5000, BUDGET));
}

/* A frame already waits at B: the caller does not sleep (sleep_begin
 * false, or wait_fd readable at once). */
static void waiting_frame_prevents_sleep(struct ep *a, struct ep *b,
					 struct usb4_link_dest *d)
{
	const struct usb4_link_ops *ops = b->k->ops;
	struct ep *both[] = { a, b };
	bool woke;

	CHECK_EQ(post_seq(a, d, 1, HEAD_LEN + 64, both, 2), 0);
	if (ops->sleep_begin(b->link)) {
		woke = readable(ops->wait_fd(b->link), 0);
		printf("  %s: sleep_begin true with a frame waiting; wait_fd "
		       "%s\n", b->k->name, woke ? "readable at once" : "QUIET");
		CHECK(woke);
		ops->sleep_end(b->link);
	}
	CHECK(wait_frames(both, 2, b, a->id, 2, 5000, BUDGET));
}

/* Sleeping: idle links sleep quietly, a frame posted from another thread
 * wakes the sleeper, a frame already waiting keeps the caller awake. */
static void sleep_wakes_on_frame(const struct kind *k)
{
	struct ep a = { 0 }, b = { 0 }, *both[] = { &a, &b };
	struct usb4_link_dest *d;

	if (ep_open(&a, k) || ep_open(&b, k))
		goto out_close;
	if (!(d = dest_to(&a, &b)))
		goto out_close;
	idle_sleep_stays_quiet(&b);
	frame_from_thread_wakes(&a, &b, d);
	waiting_frame_prevents_sleep(&a, &b, d);
	CHECK_EQ(b.frames, 2);
	CHECK_EQ(b.bad, 0);
	k->ops->dest_close(d);
out_close:
	settle(both, 2);
	ep_close(&b);
	ep_close(&a);
}

/* bulk_read and bulk_write copy between our memory and the peer's. */
static void bulk_copies_peer_memory(const struct kind *k)
{
	enum { LEN = 100000 };
	struct ep a = { 0 }, b = { 0 };
	struct usb4_link_dest *d;
	unsigned char *peer = malloc(LEN), *local = malloc(LEN);
	struct iovec l[2], r[3];

	if (!(k->ops->caps & USB4_LINK_CAP_BULK_READ)) {
		skip(k, __func__, "no bulk reads (USB4_LINK_CAP_BULK_READ unset)");
		goto out_free;
	}
	if (ep_open(&a, k) || ep_open(&b, k) || !(d = dest_to(&a, &b)))
		goto out_close;
	for (size_t i = 0; i < LEN; i++)
		peer[i] = pattern(1, 2, i);
	memset(local, 0, LEN);
	l[0] = (struct iovec) { local, 777 };
	l[1] = (struct iovec) { local + 777, LEN - 777 };
	r[0] = (struct iovec) { peer, 10 };
	r[1] = (struct iovec) { peer + 10, 50000 };
	r[2] = (struct iovec) { peer + 50010, LEN - 50010 };
	CHECK_EQ(k->ops->bulk_read(d, l, 2, r, 3, LEN), 0);
	CHECK(!memcmp(local, peer, LEN));
	for (size_t i = 0; i < LEN; i++)
		local[i] = pattern(3, 4, i);
	CHECK_EQ(k->ops->bulk_write(d, l, 2, r, 3, LEN), 0);
	CHECK(!memcmp(local, peer, LEN));
	k->ops->dest_close(d);
out_close:
	ep_close(&b);
	ep_close(&a);
out_free:
	free(peer);
	free(local);
}

/* ---- running ---- */

struct test_case {
	const char *name;
	void (*run)(const struct kind *k);
	int peer_timeout_ms;	/* for the udp link; 0: the default */
};

#define CASE(fn, timeout)	{ #fn, fn, timeout }
#define FAST		FAST_DEATH_MS

static const struct test_case cases[] = {
	CASE(order_exactly_once_from_sender, 0),
	CASE(backpressure_eagain_never_drops, 0),
	CASE(frame_max_fits_one_more_refused, 0),
	CASE(receiver_not_ready_loses_nothing, 0),
	CASE(peer_death_reported_once, FAST),
	CASE(peer_down_not_inside_post, FAST),
	CASE(close_receiver_with_frames_queued, FAST),
	CASE(close_sender_with_frames_in_flight, FAST),
	CASE(receiver_close_lets_sender_close_promptly, 2000),
	CASE(peer_crash_asleep_harmless, FAST),
	CASE(sleep_wakes_on_frame, 0),
	CASE(bulk_copies_peer_memory, 0),
};

static void run_case(const struct kind *k, const struct test_case *c)
{
	int failures = usb4_test_failures, saved = usb4_params.peer_timeout_ms;
	uint64_t t0 = now_ms();

	if (c->peer_timeout_ms)
		usb4_params.peer_timeout_ms = c->peer_timeout_ms;
	c->run(k);
	usb4_params.peer_timeout_ms = saved;
	printf("%s %s/%s (%llu ms)\n",
	       usb4_test_failures > failures ? "FAIL" : "ok  ", k->name,
	       c->name, (unsigned long long) (now_ms() - t0));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;

	setvbuf(stdout, NULL, _IOLBF, 0);
	alarm(300);	/* a hang fails the run instead of stalling make check */
	usb4_params.iface = "lo";
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct kind *k = &kinds[i];

		if (only && strcmp(only, k->name))
			continue;
		if (!k->ops->available()) {
			printf("SKIP %s: not available here (no interface)\n",
			       k->name);
			continue;
		}
		for (size_t j = 0; j < sizeof(cases) / sizeof(cases[0]); j++)
			run_case(k, &cases[j]);
	}
	CHECK_EQ(usb4_fake_open_count(), 0);
	return usb4_test_done("test_link_conformance");
}
