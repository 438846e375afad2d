/*
 * Binding and waiting through the public libfabric API (make check sets
 * FI_PROVIDER_PATH and FI_PROVIDER=usb4): one CQ per direction and one
 * counter per event on an endpoint (fi_endpoint: a second binding is
 * -FI_EINVAL and leaves the first in place), any number of endpoints on one
 * CQ or counter, and fi_cq_sread / fi_cntr_wait waking when their event
 * arrives however many other threads wait, or stopped waiting, on the same
 * endpoints (fi_cq, fi_cntr).
 *
 * Everything runs in this process, in FI_THREAD_SAFE domains with
 * FI_WAIT_UNSPEC CQs and counters over the shm link.  Messages come from an
 * endpoint of a second domain; a receive waits on the target beforehand, so
 * every message completes there.  Each case runs under a watchdog that fails
 * the program instead of letting it hang.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define CAPS		(FI_MSG | FI_RMA | FI_RMA_EVENT)
#define MANY_EPS	40	/* more than one CQ or counter held until now */
#define WAITERS		4
#define SHORT_MS	300	/* a completion already due has had time */
#define LONG_MS		3000	/* a waiter's timeout: far above any wake-up */
#define SLICE_MS	20	/* the short waits of a thread that gives up */
#define IMPATIENT_S	0.4	/* ... and when it stops */
#define SEND_S		0.5	/* when the message waited for is sent */
#define WAKE_MANY_S	0.5	/* a wait on 40 endpoints must wake within */
#define WAKE_SHARED_S	1.0	/* ... one that shares its endpoint ... */
#define WAKE_OWN_S	0.2	/* ... one alone on its endpoint ... */
#define CASE_S		12	/* the watchdog: no case takes this long */
#define MSG_LEN		8

/* A fabric, domain and AV; the endpoints come and go per case. */
struct dom {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
};

/* An endpoint in its own domain that sends the messages waited for. */
struct sender {
	struct dom d;
	struct fid_ep *ep;
	struct fid_cq *cq;
};

static char sbuf[MSG_LEN], rbuf[MANY_EPS][MSG_LEN];

/* ---- watchdog ---------------------------------------------------------- */

static const char *current_case;

static void on_watchdog(int sig)
{
	static const char msg[] = "test_waits: watchdog fired in ";

	(void) sig;
	if (write(2, msg, sizeof(msg) - 1) < 0 ||
	    write(2, current_case, strlen(current_case)) < 0 ||
	    write(2, "\n", 1) < 0)
		_exit(1);
	_exit(1);
}

/* Arms the watchdog for the case that starts now. */
static void watchdog(const char *name)
{
	current_case = name;
	signal(SIGALRM, on_watchdog);
	alarm(CASE_S);
}

/* Names the variant behind the failures since failures_before, if any. */
static void name_failures(int failures_before, const char *variant)
{
	if (usb4_test_failures != failures_before)
		fprintf(stderr, "  (the failures above: %s)\n", variant);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
	double left = t - now_s();

	if (left > 0)
		usleep((useconds_t) (left * 1e6));
}

/* ---- set-up ------------------------------------------------------------ */

static int dom_open(struct dom *d)
{
	struct fi_info *hints = fx_hints(CAPS, FX_MR_OMPI);
	struct fi_av_attr ava = { .type = FI_AV_MAP };
	int ret;

	memset(d, 0, sizeof(*d));
	if (!hints)
		return -FI_ENOMEM;
	hints->tx_attr->op_flags = 0;
	ret = fi_getinfo(FX_API, NULL, NULL, 0, hints, &d->info);
	fi_freeinfo(hints);
	ret = ret ? ret : fi_fabric(d->info->fabric_attr, &d->fabric, NULL);
	ret = ret ? ret : fi_domain(d->fabric, d->info, &d->domain, NULL);
	return ret ? ret : fi_av_open(d->domain, &ava, &d->av, NULL);
}

static void dom_close(struct dom *d)
{
	if (d->av)
		CHECK_EQ(fi_close(&d->av->fid), 0);
	if (d->domain)
		CHECK_EQ(fi_close(&d->domain->fid), 0);
	if (d->fabric)
		CHECK_EQ(fi_close(&d->fabric->fid), 0);
	fi_freeinfo(d->info);
	memset(d, 0, sizeof(*d));
}

static int cq_open(struct dom *d, struct fid_cq **cq)
{
	struct fi_cq_attr attr = { .format = FI_CQ_FORMAT_DATA,
				   .wait_obj = FI_WAIT_UNSPEC };

	return fi_cq_open(d->domain, &attr, cq, NULL);
}

static int cntr_open(struct dom *d, struct fid_cntr **cntr)
{
	struct fi_cntr_attr attr = { .events = FI_CNTR_EVENTS_COMP,
				     .wait_obj = FI_WAIT_UNSPEC };

	return fi_cntr_open(d->domain, &attr, cntr, NULL);
}

/* An endpoint bound to d's AV, not yet enabled. */
static int ep_open(struct dom *d, struct fid_ep **ep)
{
	int ret = fi_endpoint(d->domain, d->info, ep, NULL);

	return ret ? ret : fi_ep_bind(*ep, &d->av->fid, 0);
}

/* Inserts ep's address into av; FI_ADDR_NOTAVAIL on failure. */
static fi_addr_t ep_addr(struct fid_ep *ep, struct fid_av *av)
{
	char name[FX_ADDR_MAX];
	size_t len = sizeof(name);
	fi_addr_t fa = FI_ADDR_NOTAVAIL;

	if (fi_getname(&ep->fid, name, &len) ||
	    fi_av_insert(av, name, 1, &fa, 0, NULL) != 1)
		return FI_ADDR_NOTAVAIL;
	return fa;
}

static int sender_open(struct sender *s)
{
	int ret = dom_open(&s->d);

	ret = ret ? ret : ep_open(&s->d, &s->ep);
	ret = ret ? ret : cq_open(&s->d, &s->cq);
	ret = ret ? ret : fi_ep_bind(s->ep, &s->cq->fid, FI_TRANSMIT | FI_RECV);
	return ret ? ret : fi_enable(s->ep);
}

static void sender_close(struct sender *s)
{
	if (s->ep)
		CHECK_EQ(fi_close(&s->ep->fid), 0);
	if (s->cq)
		CHECK_EQ(fi_close(&s->cq->fid), 0);
	dom_close(&s->d);
}

/* Injects one message to dest; returns when it was handed over. */
static double send_now(struct sender *s, fi_addr_t dest)
{
	CHECK_EQ(fi_inject(s->ep, sbuf, MSG_LEN, dest), 0);
	return now_s();
}

/* Reads up to n entries, each within SHORT_MS; returns how many came. */
static int drain(struct fid_cq *cq, int n)
{
	struct fi_cq_data_entry e;
	int got = 0;

	while (got < n && fi_cq_sread(cq, &e, 1, NULL, SHORT_MS) == 1)
		got++;
	return got;
}

static bool cq_empty(struct fid_cq *cq)
{
	struct fi_cq_data_entry e;

	return fi_cq_read(cq, &e, 1) == -FI_EAGAIN;
}

/* ---- one CQ per direction, one counter per event ------------------------ */

/*
 * An endpoint with cq1 on both directions refuses cq2 on dir; messages to
 * itself still complete on cq1 only, and everything closes.
 */
static void check_second_cq_refused(uint64_t dir)
{
	struct dom d;
	struct fid_ep *ep = NULL;
	struct fid_cq *cq1 = NULL, *cq2 = NULL;
	fi_addr_t self;

	CHECK_EQ(dom_open(&d), 0);
	CHECK_EQ(ep_open(&d, &ep), 0);
	CHECK_EQ(cq_open(&d, &cq1), 0);
	CHECK_EQ(cq_open(&d, &cq2), 0);
	if (!cq2)
		goto out;
	CHECK_EQ(fi_ep_bind(ep, &cq1->fid, FI_TRANSMIT | FI_RECV), 0);
	CHECK_EQ(fi_ep_bind(ep, &cq2->fid, dir), -FI_EINVAL);
	CHECK_EQ(fi_enable(ep), 0);
	self = ep_addr(ep, d.av);
	CHECK_EQ(fi_recv(ep, rbuf[0], MSG_LEN, NULL, FI_ADDR_UNSPEC, NULL), 0);
	CHECK_EQ(fi_send(ep, sbuf, MSG_LEN, NULL, self, NULL), 0);
	CHECK_EQ(drain(cq1, 2), 2);	/* the send's and the receive's */
	CHECK(cq_empty(cq2));
out:
	if (ep)
		CHECK_EQ(fi_close(&ep->fid), 0);
	if (cq1)
		CHECK_EQ(fi_close(&cq1->fid), 0);
	if (cq2)
		CHECK_EQ(fi_close(&cq2->fid), 0);
	dom_close(&d);
}

static void test_second_transmit_cq_is_refused(void)
{
	int before = usb4_test_failures;

	watchdog(__func__);
	check_second_cq_refused(FI_TRANSMIT);
	name_failures(before, "a second CQ for FI_TRANSMIT");
}

static void test_second_recv_cq_is_refused(void)
{
	int before = usb4_test_failures;

	watchdog(__func__);
	check_second_cq_refused(FI_RECV);
	name_failures(before, "a second CQ for FI_RECV");
}

/* The address a peer uses for byte 0 of a region registered at buf. */
static uint64_t rma_base(const struct dom *d, const void *buf)
{
	return d->info->domain_attr->mr_mode & FI_MR_VIRT_ADDR ?
	       (uint64_t) (uintptr_t) buf : 0;
}

/*
 * One operation of ep on its own memory that counts under event; returns
 * the number of CQ entries it makes.
 */
static int count_once(struct fid_ep *ep, fi_addr_t self, uint64_t event,
		      uint64_t base, uint64_t key)
{
	switch (event) {
	case FI_SEND:
	case FI_RECV:
		CHECK_EQ(fi_recv(ep, rbuf[0], MSG_LEN, NULL, FI_ADDR_UNSPEC,
				 NULL), 0);
		CHECK_EQ(fi_send(ep, sbuf, MSG_LEN, NULL, self, NULL), 0);
		return 2;
	case FI_READ:
	case FI_REMOTE_READ:
		CHECK_EQ(fi_read(ep, rbuf[0], MSG_LEN, NULL, self, base, key,
				 NULL), 0);
		return 1;
	default:
		CHECK_EQ(fi_write(ep, sbuf, MSG_LEN, NULL, self, base, key,
				  NULL), 0);
		return 1;
	}
}

/* As check_second_cq_refused, for a second counter on event. */
static void check_second_cntr_refused(uint64_t event)
{
	static char region[4096];
	struct dom d;
	struct fid_ep *ep = NULL;
	struct fid_cq *cq = NULL;
	struct fid_cntr *c1 = NULL, *c2 = NULL;
	struct fid_mr *mr = NULL;
	int entries;

	CHECK_EQ(dom_open(&d), 0);
	CHECK_EQ(ep_open(&d, &ep), 0);
	CHECK_EQ(cq_open(&d, &cq), 0);
	CHECK_EQ(cntr_open(&d, &c1), 0);
	CHECK_EQ(cntr_open(&d, &c2), 0);
	CHECK_EQ(fi_mr_reg(d.domain, region, sizeof(region),
			   FI_REMOTE_READ | FI_REMOTE_WRITE, 0, 0, 0, &mr,
			   NULL), 0);
	if (!mr)
		goto out;
	CHECK_EQ(fi_ep_bind(ep, &cq->fid, FI_TRANSMIT | FI_RECV), 0);
	CHECK_EQ(fi_ep_bind(ep, &c1->fid, event), 0);
	CHECK_EQ(fi_ep_bind(ep, &c2->fid, event), -FI_EINVAL);
	CHECK_EQ(fi_enable(ep), 0);
	entries = count_once(ep, ep_addr(ep, d.av), event,
			     rma_base(&d, region), fi_mr_key(mr));
	CHECK_EQ(drain(cq, entries), entries);
	CHECK_EQ(fi_cntr_wait(c1, 1, SHORT_MS), 0);
	CHECK_EQ(fi_cntr_read(c2), 0);
out:
	if (ep)
		CHECK_EQ(fi_close(&ep->fid), 0);
	if (mr)
		CHECK_EQ(fi_close(&mr->fid), 0);
	if (cq)
		CHECK_EQ(fi_close(&cq->fid), 0);
	if (c1)
		CHECK_EQ(fi_close(&c1->fid), 0);
	if (c2)
		CHECK_EQ(fi_close(&c2->fid), 0);
	dom_close(&d);
}

static void test_second_counter_for_an_event_is_refused(void)
{
	static const struct { uint64_t event; const char *name; } events[] = {
		{ FI_SEND, "a second counter for FI_SEND" },
		{ FI_RECV, "a second counter for FI_RECV" },
		{ FI_READ, "a second counter for FI_READ" },
		{ FI_WRITE, "a second counter for FI_WRITE" },
		{ FI_REMOTE_READ, "a second counter for FI_REMOTE_READ" },
		{ FI_REMOTE_WRITE, "a second counter for FI_REMOTE_WRITE" },
	};

	watchdog(__func__);
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		int before = usb4_test_failures;

		check_second_cntr_refused(events[i].event);
		name_failures(before, events[i].name);
	}
}

/* ---- many endpoints on one CQ and one counter --------------------------- */

/* Sends one message to dest from another thread at at_s. */
struct delayed_send {
	struct sender *s;
	fi_addr_t dest;
	double at_s;		/* when to send */
	double sent_s;		/* when it was handed over */
	pthread_t thread;
};

static void *delayed_send_main(void *arg)
{
	struct delayed_send *ds = arg;

	sleep_until(ds->at_s);
	ds->sent_s = send_now(ds->s, ds->dest);
	return NULL;
}

static void delayed_send(struct delayed_send *ds, struct sender *s,
			 fi_addr_t dest, double delay_s)
{
	*ds = (struct delayed_send) { .s = s, .dest = dest,
				      .at_s = now_s() + delay_s };
	CHECK_EQ(pthread_create(&ds->thread, NULL, delayed_send_main, ds), 0);
}

struct many {
	struct dom d;
	struct fid_cq *cq;
	struct fid_cntr *cntr;
	struct fid_ep *ep[MANY_EPS];
	int cq_binds, cntr_binds;
};

static void many_open(struct many *m)
{
	memset(m, 0, sizeof(*m));
	CHECK_EQ(dom_open(&m->d), 0);
	CHECK_EQ(cq_open(&m->d, &m->cq), 0);
	CHECK_EQ(cntr_open(&m->d, &m->cntr), 0);
	for (int i = 0; i < MANY_EPS && m->cntr; i++) {
		if (ep_open(&m->d, &m->ep[i]))
			break;
		m->cq_binds += !fi_ep_bind(m->ep[i], &m->cq->fid,
					   FI_TRANSMIT | FI_RECV);
		m->cntr_binds += !fi_ep_bind(m->ep[i], &m->cntr->fid,
					     FI_SEND | FI_RECV);
		(void) fi_enable(m->ep[i]);	/* refused without a CQ */
	}
}

static void many_close(struct many *m)
{
	for (int i = 0; i < MANY_EPS; i++)
		if (m->ep[i])
			CHECK_EQ(fi_close(&m->ep[i]->fid), 0);
	if (m->cq)
		CHECK_EQ(fi_close(&m->cq->fid), 0);
	if (m->cntr)
		CHECK_EQ(fi_close(&m->cntr->fid), 0);
	dom_close(&m->d);
}

/*
 * Posts a receive on ep, has the sender send to dest 0.2 s later from
 * another thread, and waits on the CQ (or, with threshold, the counter);
 * the wait must end with the message within WAKE_MANY_S.
 */
static void check_wakes_for(struct many *m, struct sender *s, struct fid_ep *ep,
			    fi_addr_t dest, uint64_t threshold)
{
	struct delayed_send ds;
	struct fi_cq_data_entry e;
	double late;

	CHECK_EQ(fi_recv(ep, rbuf[0], MSG_LEN, NULL, FI_ADDR_UNSPEC, NULL), 0);
	delayed_send(&ds, s, dest, 0.2);
	if (threshold)
		CHECK_EQ(fi_cntr_wait(m->cntr, threshold, LONG_MS), 0);
	else
		CHECK_EQ(fi_cq_sread(m->cq, &e, 1, NULL, LONG_MS), 1);
	late = now_s();
	pthread_join(ds.thread, NULL);
	late -= ds.sent_s;
	CHECK(late < WAKE_MANY_S);
	if (late >= WAKE_MANY_S)
		fprintf(stderr, "%s wait on %d endpoints ended %.3f s after "
			"the send\n", threshold ? "fi_cntr_wait" : "fi_cq_sread",
			MANY_EPS, late);
}

static void test_many_endpoints_share_a_cq_and_a_counter(void)
{
	struct sender s;
	struct many m;
	struct fid_ep *last;
	fi_addr_t dest;

	watchdog(__func__);
	CHECK_EQ(sender_open(&s), 0);
	many_open(&m);
	CHECK_EQ(m.cq_binds, MANY_EPS);
	CHECK_EQ(m.cntr_binds, MANY_EPS);
	last = m.ep[MANY_EPS - 1];
	dest = last ? ep_addr(last, s.d.av) : FI_ADDR_NOTAVAIL;
	CHECK(dest != FI_ADDR_NOTAVAIL);
	if (dest != FI_ADDR_NOTAVAIL) {
		check_wakes_for(&m, &s, last, dest, 0);
		check_wakes_for(&m, &s, last, dest, 2);	/* the 2nd receive */
	}
	many_close(&m);
	sender_close(&s);
}

/* ---- several waiters ----------------------------------------------------- */

/* One blocking wait in a thread of its own: a CQ read or a counter wait. */
struct waiter {
	struct fid_cq *cq;	/* either this ... */
	struct fid_cntr *cntr;	/* ... or this, with threshold */
	uint64_t threshold;
	int timeout_ms;
	double until_s;		/* repeat until then (0: wait once) */
	long ret;		/* the last wait's result */
	double done_s;		/* when it returned */
	pthread_t thread;
};

static long wait_once(struct waiter *w)
{
	struct fi_cq_data_entry e;

	if (w->cq)
		return fi_cq_sread(w->cq, &e, 1, NULL, w->timeout_ms);
	return fi_cntr_wait(w->cntr, w->threshold, w->timeout_ms);
}

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	do
		w->ret = wait_once(w);
	while (now_s() < w->until_s);
	w->done_s = now_s();
	return NULL;
}

static void waiter_start(struct waiter *w)
{
	CHECK_EQ(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

/* A thread that waits in short slices (for nothing) until it stops. */
static struct waiter impatient(struct fid_cq *cq, struct fid_cntr *cntr)
{
	return (struct waiter) { .cq = cq, .cntr = cntr, .threshold = 1000,
				 .timeout_ms = SLICE_MS };
}

static struct waiter patient(struct fid_cq *cq, struct fid_cntr *cntr)
{
	return (struct waiter) { .cq = cq, .cntr = cntr, .threshold = 1,
				 .timeout_ms = LONG_MS };
}

/*
 * The target side of the shared-endpoint cases: endpoint e[0] (and e[1]
 * where a case wants a second one) of one domain, with CQs and counters
 * bound as the case says.  A receive waits on e[0].
 */
struct target {
	struct dom d;
	struct fid_ep *e[2];
	struct fid_cq *cq[2];
	struct fid_cntr *cntr[2];
	fi_addr_t dest;		/* e[0] in the sender's AV */
};

static void target_close(struct target *t)
{
	for (int i = 0; i < 2; i++)
		if (t->e[i])
			CHECK_EQ(fi_close(&t->e[i]->fid), 0);
	for (int i = 0; i < 2; i++) {
		if (t->cq[i])
			CHECK_EQ(fi_close(&t->cq[i]->fid), 0);
		if (t->cntr[i])
			CHECK_EQ(fi_close(&t->cntr[i]->fid), 0);
	}
	dom_close(&t->d);
}

/* Opens ep 0 .. n-1 (not enabled), both CQs and both counters. */
static int target_open(struct target *t, int n)
{
	int ret;

	memset(t, 0, sizeof(*t));
	ret = dom_open(&t->d);
	for (int i = 0; i < 2 && !ret; i++) {
		ret = cq_open(&t->d, &t->cq[i]);
		ret = ret ? ret : cntr_open(&t->d, &t->cntr[i]);
		ret = ret ? ret : i < n ? ep_open(&t->d, &t->e[i]) : 0;
	}
	return ret;
}

/* Enables the endpoints, names e[0] to s, and posts the receive. */
static int target_ready(struct target *t, struct sender *s)
{
	int ret = 0;

	for (int i = 0; i < 2 && !ret; i++)
		ret = t->e[i] ? fi_enable(t->e[i]) : 0;
	if (ret)
		return ret;
	t->dest = ep_addr(t->e[0], s->d.av);
	if (t->dest == FI_ADDR_NOTAVAIL)
		return -FI_EINVAL;
	return (int) fi_recv(t->e[0], rbuf[0], MSG_LEN, NULL, FI_ADDR_UNSPEC,
			     NULL);
}

/*
 * The patient waiter p goes to sleep on the target; at 0.05 s the impatient
 * one starts waiting in SLICE_MS slices, and stops after its last one times
 * out at IMPATIENT_S; at SEND_S the sender sends to e[0].  p must return
 * with its event within WAKE_SHARED_S of the send.
 */
static void check_patient_wakes(struct target *t, struct sender *s,
				struct waiter *p, struct waiter *imp,
				const char *name)
{
	double t0 = now_s(), sent;
	int ret = target_ready(t, s);

	CHECK_EQ(ret, 0);
	if (ret)
		return;
	imp->until_s = t0 + IMPATIENT_S;
	waiter_start(p);
	sleep_until(t0 + 0.05);
	waiter_start(imp);
	pthread_join(imp->thread, NULL);
	CHECK_EQ(imp->ret, imp->cq ? -FI_EAGAIN : -FI_ETIMEDOUT);
	sleep_until(t0 + SEND_S);
	sent = send_now(s, t->dest);
	pthread_join(p->thread, NULL);
	CHECK_EQ(p->ret, p->cq ? 1 : 0);
	CHECK(p->done_s - sent < WAKE_SHARED_S);
	if (p->done_s - sent >= WAKE_SHARED_S)
		fprintf(stderr, "%s: the wait ended %.3f s after the send "
			"(ret %ld)\n", name, p->done_s - sent, p->ret);
}

/* Impatient: sread on e's CQ.  Patient: fi_cntr_wait on e's recv counter. */
static void test_cntr_wait_wakes_after_cq_sread_on_its_endpoint_timed_out(void)
{
	struct sender s;
	struct target t;
	struct waiter p, imp;

	watchdog(__func__);
	CHECK_EQ(sender_open(&s), 0);
	CHECK_EQ(target_open(&t, 1), 0);
	CHECK_EQ(fi_ep_bind(t.e[0], &t.cq[0]->fid, FI_TRANSMIT | FI_RECV), 0);
	CHECK_EQ(fi_ep_bind(t.e[0], &t.cntr[0]->fid, FI_RECV), 0);
	p = patient(NULL, t.cntr[0]);
	imp = impatient(t.cq[0], NULL);
	check_patient_wakes(&t, &s, &p, &imp, __func__);
	target_close(&t);
	sender_close(&s);
}

/* Impatient: fi_cntr_wait on e's send counter.  Patient: sread on e's CQ. */
static void test_cq_sread_wakes_after_cntr_wait_on_its_endpoint_timed_out(void)
{
	struct sender s;
	struct target t;
	struct waiter p, imp;

	watchdog(__func__);
	CHECK_EQ(sender_open(&s), 0);
	CHECK_EQ(target_open(&t, 1), 0);
	CHECK_EQ(fi_ep_bind(t.e[0], &t.cq[0]->fid, FI_TRANSMIT | FI_RECV), 0);
	CHECK_EQ(fi_ep_bind(t.e[0], &t.cntr[0]->fid, FI_SEND), 0);
	p = patient(t.cq[0], NULL);
	imp = impatient(NULL, t.cntr[0]);
	check_patient_wakes(&t, &s, &p, &imp, __func__);
	target_close(&t);
	sender_close(&s);
}

/* Impatient: sread on e's transmit CQ.  Patient: sread on its recv CQ. */
static void test_recv_cq_sread_wakes_after_transmit_cq_sread_timed_out(void)
{
	struct sender s;
	struct target t;
	struct waiter p, imp;

	watchdog(__func__);
	CHECK_EQ(sender_open(&s), 0);
	CHECK_EQ(target_open(&t, 1), 0);
	CHECK_EQ(fi_ep_bind(t.e[0], &t.cq[0]->fid, FI_RECV), 0);
	CHECK_EQ(fi_ep_bind(t.e[0], &t.cq[1]->fid, FI_TRANSMIT), 0);
	p = patient(t.cq[0], NULL);
	imp = impatient(t.cq[1], NULL);
	check_patient_wakes(&t, &s, &p, &imp, __func__);
	target_close(&t);
	sender_close(&s);
}

/*
 * Two endpoints of one domain.  Impatient: sread on a CQ bound to e[0] and
 * e[1].  Patient: fi_cntr_wait on e[0]'s recv counter.
 */
static void test_cntr_wait_wakes_after_sread_on_a_cq_of_two_eps_timed_out(void)
{
	struct sender s;
	struct target t;
	struct waiter p, imp;

	watchdog(__func__);
	CHECK_EQ(sender_open(&s), 0);
	CHECK_EQ(target_open(&t, 2), 0);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(fi_ep_bind(t.e[i], &t.cq[0]->fid,
				    FI_TRANSMIT | FI_RECV), 0);
	CHECK_EQ(fi_ep_bind(t.e[0], &t.cntr[0]->fid, FI_RECV), 0);
	p = patient(NULL, t.cntr[0]);
	imp = impatient(t.cq[0], NULL);
	check_patient_wakes(&t, &s, &p, &imp, __func__);
	target_close(&t);
	sender_close(&s);
}

/* Endpoint i of d with a CQ of its own and a receive posted, named to s. */
static int own_waiter_open(struct dom *d, struct sender *s, int i,
			   struct fid_ep **ep, struct fid_cq **cq,
			   fi_addr_t *dest)
{
	int ret = ep_open(d, ep);

	ret = ret ? ret : cq_open(d, cq);
	ret = ret ? ret : fi_ep_bind(*ep, &(*cq)->fid, FI_TRANSMIT | FI_RECV);
	ret = ret ? ret : fi_enable(*ep);
	if (ret)
		return ret;
	*dest = ep_addr(*ep, s->d.av);
	if (*dest == FI_ADDR_NOTAVAIL)
		return -FI_EINVAL;
	return (int) fi_recv(*ep, rbuf[i], MSG_LEN, NULL, FI_ADDR_UNSPEC, NULL);
}

/*
 * WAITERS threads, each in fi_cq_sread on its own CQ and endpoint of one
 * domain; the sender sends to each in turn, 0.25 s apart.  Each must return
 * within WAKE_OWN_S of its own message, whatever the others do.
 */
static void test_each_waiter_wakes_for_its_own_message(void)
{
	struct sender s;
	struct dom d;
	struct fid_ep *ep[WAITERS] = { NULL };
	struct fid_cq *cq[WAITERS] = { NULL };
	struct waiter w[WAITERS];
	fi_addr_t dest[WAITERS];
	double sent[WAITERS], t0;
	int ret;

	watchdog(__func__);
	CHECK_EQ(sender_open(&s), 0);
	ret = dom_open(&d);
	for (int i = 0; i < WAITERS && !ret; i++)
		ret = own_waiter_open(&d, &s, i, &ep[i], &cq[i], &dest[i]);
	CHECK_EQ(ret, 0);
	if (ret)
		goto out;
	t0 = now_s();
	for (int i = 0; i < WAITERS; i++) {
		w[i] = patient(cq[i], NULL);
		waiter_start(&w[i]);
	}
	for (int i = 0; i < WAITERS; i++) {
		sleep_until(t0 + 0.2 + 0.25 * i);
		sent[i] = send_now(&s, dest[i]);
	}
	for (int i = 0; i < WAITERS; i++) {
		pthread_join(w[i].thread, NULL);
		CHECK_EQ(w[i].ret, 1);
		CHECK(w[i].done_s - sent[i] < WAKE_OWN_S);
		if (w[i].done_s - sent[i] >= WAKE_OWN_S)
			fprintf(stderr, "%s: waiter %d woke %.3f s after its "
				"send\n", __func__, i, w[i].done_s - sent[i]);
	}
out:
	for (int i = 0; i < WAITERS; i++) {
		if (ep[i])
			CHECK_EQ(fi_close(&ep[i]->fid), 0);
		if (cq[i])
			CHECK_EQ(fi_close(&cq[i]->fid), 0);
	}
	dom_close(&d);
	sender_close(&s);
}

/*
 * An endpoint joins a CQ while a thread sleeps on the CQ: the sleeper lets
 * go of exactly what it armed.  (It used to disarm the CQ's endpoints as
 * they were when it woke, the newcomer among them, which left that
 * endpoint's inbox believing a sleeper less than it had: a later sleeper on
 * it was never rung and slept out its timeout.)
 */
static void test_endpoint_joins_a_cq_while_a_thread_sleeps(void)
{
	struct sender s;
	struct dom d;
	struct fid_ep *ep[2] = { NULL };
	struct fid_cq *cq = NULL;
	struct waiter w;
	fi_addr_t dest = FI_ADDR_NOTAVAIL;
	double sent;
	int ret;

	watchdog(__func__);
	CHECK_EQ(sender_open(&s), 0);
	ret = dom_open(&d);
	ret = ret ? ret : cq_open(&d, &cq);
	ret = ret ? ret : ep_open(&d, &ep[0]);
	ret = ret ? ret : fi_ep_bind(ep[0], &cq->fid, FI_TRANSMIT | FI_RECV);
	ret = ret ? ret : fi_enable(ep[0]);
	CHECK_EQ(ret, 0);
	if (ret)
		goto out;
	/* A thread sleeps on the CQ, which holds ep[0] only ... */
	w = (struct waiter) { .cq = cq, .timeout_ms = SHORT_MS };
	waiter_start(&w);
	usleep(100 * 1000);
	/* ... while ep[1] joins it. */
	ret = ep_open(&d, &ep[1]);
	ret = ret ? ret : fi_ep_bind(ep[1], &cq->fid, FI_TRANSMIT | FI_RECV);
	ret = ret ? ret : fi_enable(ep[1]);
	CHECK_EQ(ret, 0);
	pthread_join(w.thread, NULL);
	CHECK_EQ(w.ret, -FI_EAGAIN);
	if (ret)
		goto out;
	dest = ep_addr(ep[1], s.d.av);
	CHECK(dest != FI_ADDR_NOTAVAIL);
	CHECK_EQ(fi_recv(ep[1], rbuf[0], MSG_LEN, NULL, FI_ADDR_UNSPEC, NULL),
		 0);
	/* A new sleeper, woken by a message to ep[1]. */
	w = patient(cq, NULL);
	waiter_start(&w);
	usleep(200 * 1000);
	sent = send_now(&s, dest);
	pthread_join(w.thread, NULL);
	CHECK_EQ(w.ret, 1);
	CHECK(w.done_s - sent < WAKE_OWN_S);
	if (w.done_s - sent >= WAKE_OWN_S)
		fprintf(stderr, "%s: the sleeper woke %.3f s after the send\n",
			__func__, w.done_s - sent);
out:
	for (int i = 0; i < 2; i++)
		if (ep[i])
			CHECK_EQ(fi_close(&ep[i]->fid), 0);
	if (cq)
		CHECK_EQ(fi_close(&cq->fid), 0);
	dom_close(&d);
	sender_close(&s);
}

/*
 * An endpoint closes while another thread sleeps on its CQ: the close wakes
 * the sleeper and waits until it let go of the endpoint's links before they
 * go; the sleeper goes on waiting (and times out) on what is left.
 */
static void test_endpoint_closes_while_a_thread_sleeps_on_its_cq(void)
{
	struct dom d;
	struct fid_ep *ep = NULL;
	struct fid_cq *cq = NULL;
	struct waiter w;
	double t0, closed;
	int ret;

	watchdog(__func__);
	ret = dom_open(&d);
	ret = ret ? ret : cq_open(&d, &cq);
	ret = ret ? ret : ep_open(&d, &ep);
	ret = ret ? ret : fi_ep_bind(ep, &cq->fid, FI_TRANSMIT | FI_RECV);
	ret = ret ? ret : fi_enable(ep);
	CHECK_EQ(ret, 0);
	if (ret)
		goto out;
	w = (struct waiter) { .cq = cq, .timeout_ms = 1000 };
	waiter_start(&w);
	usleep(100 * 1000);
	t0 = now_s();
	CHECK_EQ(fi_close(&ep->fid), 0);
	closed = now_s() - t0;
	ep = NULL;
	CHECK(closed < 0.5);
	if (closed >= 0.5)
		fprintf(stderr, "%s: fi_close took %.3f s\n", __func__, closed);
	pthread_join(w.thread, NULL);
	CHECK_EQ(w.ret, -FI_EAGAIN);
out:
	if (ep)
		CHECK_EQ(fi_close(&ep->fid), 0);
	if (cq)
		CHECK_EQ(fi_close(&cq->fid), 0);
	dom_close(&d);
}

int main(void)
{
	test_second_transmit_cq_is_refused();
	test_second_recv_cq_is_refused();
	test_second_counter_for_an_event_is_refused();
	test_many_endpoints_share_a_cq_and_a_counter();
	test_cntr_wait_wakes_after_cq_sread_on_its_endpoint_timed_out();
	test_cq_sread_wakes_after_cntr_wait_on_its_endpoint_timed_out();
	test_recv_cq_sread_wakes_after_transmit_cq_sread_timed_out();
	test_cntr_wait_wakes_after_sread_on_a_cq_of_two_eps_timed_out();
	test_each_waiter_wakes_for_its_own_message();
	test_endpoint_joins_a_cq_while_a_thread_sleeps();
	test_endpoint_closes_while_a_thread_sleeps_on_its_cq();
	alarm(0);
	return usb4_test_done("test_waits");
}
