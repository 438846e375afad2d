/*
 * The core endpoint: its links, its operation pools, progress, sleeping and
 * completion delivery.  Sends live in usb4_proto.c, arrivals in
 * usb4_dispatch.c, matching in usb4_match.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "usb4_mr_board.h"
#include "usb4_proto.h"

/* Frames handled per link and progress call: bounds one call's time. */
#define USB4_POLL_BUDGET	64
/* How often pending sends check that their peers still live. */
#define USB4_LIVENESS_NS	(200 * 1000 * 1000ull)
/* While answers wait for room at a peer nothing wakes us: look again. */
#define USB4_CTRL_RETRY_MS	1

static int ops_init(struct usb4_core_ep *ep, size_t cap)
{
	ep->ops = calloc(cap, sizeof(*ep->ops));
	ep->ops_free = calloc(cap, sizeof(*ep->ops_free));
	if (!ep->ops || !ep->ops_free)
		return -FI_ENOMEM;
	ep->ops_cap = cap;
	for (size_t i = 0; i < cap; i++)
		ep->ops_free[i] = cap - 1 - i;
	ep->ops_free_count = cap;
	return 0;
}

bool usb4_core_reaches_other_hosts(void)
{
	for (size_t k = 0; k < usb4_link_kind_count; k++)
		if (usb4_link_kinds[k]->other_hosts &&
		    usb4_link_kinds[k]->available())
			return true;
	return false;
}

/* The inject limit: a message that goes eager over every open link. */
static size_t inject_limit(const struct usb4_core_ep *ep)
{
	size_t max = usb4_params.eager_size;

	for (size_t k = 0; k < usb4_link_kind_count; k++) {
		const struct usb4_link *link = ep->links[k].link;
		size_t eager = link ? usb4_link_eager_max(link, NULL) : max;

		if (eager < max)
			max = eager;
	}
	return max;
}

/* Every kind that has something to open here gets a link; an endpoint
 * asked to bind somewhere (bind) must get a link to other hosts there. */
static int open_links(struct usb4_core_ep *ep, const struct usb4_core_key *key,
		      const struct usb4_wire_addr *bind)
{
	struct usb4_link_cfg cfg = {
		.ep_id = ep->id,
		.reg_fd = ep->dom ? usb4_mr_table_fd(ep->dom->mrs) : -1,
		.auth_key = key && key->len ? key->bytes : NULL,
		.auth_key_len = key ? key->len : 0,
		.bind = bind,
	};
	int opened = 0;

	ep->npolled = 0;
	for (size_t k = 0; k < usb4_link_kind_count && k < USB4_LINKS_MAX; k++) {
		struct usb4_ep_link *el = &ep->links[k];
		int ret;

		el->ep = ep;
		el->kind = (uint8_t) k;
		cfg.sink = usb4_dispatch_sink(el);
		ret = usb4_link_kinds[k]->open(&cfg, &el->link);
		if (ret == -FI_ENODEV && bind && usb4_link_kinds[k]->other_hosts)
			return -FI_EADDRNOTAVAIL;
		if (ret == -FI_ENODEV)
			continue;
		if (ret)
			return ret;
		ep->polled[ep->npolled++] = el->link;
		opened++;
	}
	return opened ? 0 : -FI_ENODEV;
}

int usb4_core_ep_open(struct usb4_core_ep *ep, uint64_t caps,
		      struct usb4_core_domain *dom)
{
	return usb4_core_ep_open_keyed(ep, caps, dom, NULL);
}

int usb4_core_ep_open_keyed(struct usb4_core_ep *ep, uint64_t caps,
			    struct usb4_core_domain *dom,
			    const struct usb4_core_key *key)
{
	return usb4_core_ep_open_at(ep, caps, dom, key, NULL);
}

int usb4_core_ep_open_at(struct usb4_core_ep *ep, uint64_t caps,
			 struct usb4_core_domain *dom,
			 const struct usb4_core_key *key,
			 const struct usb4_wire_addr *bind)
{
	int ret;

	memset(ep, 0, sizeof(*ep));
	ep->id = usb4_random64();
	ep->caps = caps;
	ep->dom = dom;
	ep->board = dom ? usb4_mr_table_board(dom->mrs) : NULL;
	for (int q = 0; q < 2; q++) {
		usb4_list_init(&ep->posted[q]);
		usb4_list_init(&ep->unexp[q]);
	}
	usb4_list_init(&ep->rx_free);
	usb4_unexp_pool_init(&ep->unexp_pool);
	usb4_list_init(&ep->ctrl_pending);
	usb4_list_init(&ep->streams);
	usb4_list_init(&ep->xfers);
	ep->rx_max = usb4_params.rx_size;
	ret = usb4_unexp_budget_init(&ep->unexp_budget,
				     usb4_params.unexp_peer_bytes,
				     usb4_params.unexp_bytes);
	if (!ret)
		ret = ops_init(ep, usb4_params.tx_size);
	if (!ret)
		ret = open_links(ep, key ? key : dom ? &dom->key : NULL, bind);
	if (ret) {
		usb4_core_ep_close(ep);
		usb4_core_ep_close_links(ep);
		return ret;
	}
	ep->eager_max = inject_limit(ep);
	return 0;
}

void usb4_core_ep_flush(struct usb4_core_ep *ep, struct usb4_lock *lock)
{
	uint64_t deadline = usb4_now_ns() +
		(uint64_t) (usb4_params.peer_timeout_ms + 1000) * 1000000;
	struct timespec pause = { 0, USB4_CTRL_RETRY_MS * 1000000L };

	while (!usb4_list_empty(&ep->ctrl_pending) &&
	       usb4_now_ns() < deadline) {
		usb4_core_progress(ep);
		if (usb4_list_empty(&ep->ctrl_pending))
			break;
		usb4_lock_release(lock);
		nanosleep(&pause, NULL);
		usb4_lock_acquire(lock);
	}
}

static void free_list(struct usb4_list *head, size_t offset, bool unexp)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(head, it, tmp) {
		usb4_list_remove(it);
		if (unexp) {
			struct usb4_unexp *u = (void *) ((char *) it - offset);

			if (u->buf != u->small)
				free(u->buf);
		}
		free((char *) it - offset);
	}
}

void usb4_core_ep_close(struct usb4_core_ep *ep)
{
	usb4_core_log_stats(ep);
	/* Answers still waiting go first: their owners are freed below. */
	usb4_ctrl_drop(ep, FI_ADDR_UNSPEC);
	for (int q = 0; q < 2; q++) {
		free_list(&ep->posted[q], offsetof(struct usb4_rx_entry, link),
			  false);
		free_list(&ep->unexp[q], offsetof(struct usb4_unexp, link), true);
	}
	free_list(&ep->rx_free, offsetof(struct usb4_rx_entry, link), false);
	usb4_unexp_pool_fini(&ep->unexp_pool);
	usb4_stream_close(ep);
	/* Links linger after this, resending what peers have not
	 * acknowledged: from their own copies, not from our buffers. */
	for (size_t i = 0; i < ep->ops_cap && ep->ops; i++)
		if (ep->ops[i].busy) {
			usb4_stream_release(ep, &ep->ops[i].stream);
			free(ep->ops[i].bounce);
		}
	usb4_hidden_fini(&ep->hidden);
	usb4_unexp_budget_fini(&ep->unexp_budget);
	free(ep->ops);
	free(ep->ops_free);
	ep->ops = NULL;
	ep->ops_free = NULL;
}

void usb4_core_ep_close_links(struct usb4_core_ep *ep)
{
	for (size_t k = 0; k < USB4_LINKS_MAX; k++) {
		struct usb4_link *link = ep->links[k].link;

		if (link)
			link->ops->close(link);
		ep->links[k].link = NULL;
	}
	ep->npolled = 0;
}

void usb4_core_ep_addr(const struct usb4_core_ep *ep,
		       struct usb4_wire_addr *addr)
{
	usb4_wire_addr_init(addr, usb4_host_id(), ep->id);
	for (size_t k = 0; k < USB4_LINKS_MAX; k++) {
		const struct usb4_link *link = ep->links[k].link;

		if (link)
			link->ops->addr(link, addr);
	}
}

/* Frames dropped as malformed or not for us. */
static uint64_t dropped_total(const struct usb4_core_stats *s)
{
	uint64_t dropped = s->dropped_unknown_op + s->dropped_src_mismatch +
			   s->dropped_not_for_link + s->dropped_bad_xfer;

	for (int i = 1; i < USB4_WIRE_VERDICT_MAX; i++)
		dropped += s->dropped[i];
	return dropped;
}

/* What peers were refused or held back for: a flood, strangers. */
static void log_guard_stats(const struct usb4_core_ep *ep)
{
	const struct usb4_core_stats *s = &ep->stats;

	if (!s->unexp_full && !s->hidden_full && !s->rma_refused_unknown &&
	    !s->rma_waited_unknown && !s->rma_by_key_unknown &&
	    !s->rts_iovs_ignored && !s->hidden_freed)
		return;
	USB4_WARN(FI_LOG_EP_DATA,
		  "endpoint %016llx guards: unexp-full %llu hidden-full "
		  "%llu; rma-refused-unknown %llu rma-waited-unknown %llu "
		  "rma-by-key-unknown %llu; "
		  "rts-iovs-ignored %llu; hidden-freed %llu; "
		  "unexp-peak-bytes %zu\n",
		  (unsigned long long) ep->id,
		  (unsigned long long) s->unexp_full,
		  (unsigned long long) s->hidden_full,
		  (unsigned long long) s->rma_refused_unknown,
		  (unsigned long long) s->rma_waited_unknown,
		  (unsigned long long) s->rma_by_key_unknown,
		  (unsigned long long) s->rts_iovs_ignored,
		  (unsigned long long) s->hidden_freed,
		  ep->unexp_budget.peak);
}

/* What the endpoint carried, per link: every MPI stack's libfabric logs
 * this line alike, so a test proves usb4 moved the data without reading
 * a line only one consumer prints. */
static void log_traffic(const struct usb4_core_ep *ep)
{
	char links[128] = "";
	size_t used = 0;

	for (size_t k = 0; k < USB4_LINKS_MAX && used < sizeof(links); k++) {
		const struct usb4_ep_link *el = &ep->links[k];
		int n;

		if (!el->link)
			continue;
		n = snprintf(links + used, sizeof(links) - used,
			     "%s frames taken %llu; ", el->link->ops->name,
			     (unsigned long long) el->frames_taken);
		if (n > 0)
			used += (size_t) n;
	}
	USB4_INFO(FI_LOG_EP_DATA,
		  "endpoint %016llx traffic: %seager sent %llu fused %llu "
		  "rendezvous sent %llu unexpected %llu early data dropped "
		  "%llu; rma issued %llu atomics issued %llu\n",
		  (unsigned long long) ep->id, links,
		  (unsigned long long) ep->stats.eager_sent,
		  (unsigned long long) ep->stats.eager_fused,
		  (unsigned long long) ep->stats.rndv_sent,
		  (unsigned long long) ep->stats.unexpected,
		  (unsigned long long) ep->stats.early_dropped,
		  (unsigned long long) ep->stats.rma_ops,
		  (unsigned long long) ep->stats.atomic_ops);
}

void usb4_core_log_stats(const struct usb4_core_ep *ep)
{
	const struct usb4_core_stats *s = &ep->stats;
	uint64_t dropped = dropped_total(s);

	log_traffic(ep);
	log_guard_stats(ep);
	if (!dropped && !s->unknown_src && !s->not_ready)
		return;
	USB4_WARN(FI_LOG_EP_DATA,
		  "endpoint %016llx dropped frames: short %llu version %llu "
		  "type %llu flags %llu length %llu unknown-op %llu "
		  "src-mismatch %llu not-for-link %llu bad-transfer %llu; "
		  "from unknown sources %llu; refused for memory %llu\n",
		  (unsigned long long) ep->id,
		  (unsigned long long) s->dropped[USB4_WIRE_SHORT],
		  (unsigned long long) s->dropped[USB4_WIRE_VERSION_BAD],
		  (unsigned long long) s->dropped[USB4_WIRE_TYPE_BAD],
		  (unsigned long long) s->dropped[USB4_WIRE_FLAGS_BAD],
		  (unsigned long long) s->dropped[USB4_WIRE_LEN_BAD],
		  (unsigned long long) s->dropped_unknown_op,
		  (unsigned long long) s->dropped_src_mismatch,
		  (unsigned long long) s->dropped_not_for_link,
		  (unsigned long long) s->dropped_bad_xfer,
		  (unsigned long long) s->unknown_src,
		  (unsigned long long) s->not_ready);
}

/* ---- completions ---- */

/* Counts what a link's count gained since *seen (it only grows: peers
 * add to it) on cntr (NULL: none bound). */
static void count_news(struct usb4_counter *cntr, uint64_t now,
		       uint64_t *seen)
{
	if (now <= *seen)
		return;
	if (cntr) {
		atomic_fetch_add(&cntr->value, now - *seen);
		usb4_waiter_signal(cntr->waiter);
	}
	*seen = now;
}

void usb4_count(struct usb4_counter *cntr, bool ok)
{
	if (!cntr)
		return;
	atomic_fetch_add(ok ? &cntr->value : &cntr->err, 1);
	usb4_waiter_signal(cntr->waiter);
}

void usb4_core_report(struct usb4_cq_queue *cq, struct usb4_counter *cntr,
		      const struct usb4_cqe *e, bool want_cqe)
{
	usb4_count(cntr, true);
	if (!cq)
		return;
	if (want_cqe)
		usb4_cq_queue_push(cq, e);
	else
		usb4_cq_queue_unreserve(cq);
}

void usb4_core_report_err(struct usb4_cq_queue *cq, struct usb4_counter *cntr,
			  const struct usb4_cqe *e, int err, size_t olen)
{
	struct usb4_cqe_err ee = {
		.err = {
			.op_context = e->op_context,
			.flags = e->flags,
			.len = e->len,
			.buf = e->buf,
			.data = e->data,
			.tag = e->tag,
			.olen = olen,
			.err = -err,
			.prov_errno = err,
		},
		.src = e->src,
	};

	usb4_count(cntr, false);
	if (cq)
		usb4_cq_queue_push_err(cq, &ee);
}

void usb4_core_complete(struct usb4_core_ep *ep, bool tx,
			const struct usb4_cqe *e, bool want_cqe)
{
	usb4_core_report(tx ? ep->tx_cq : ep->rx_cq,
			 tx ? ep->tx_cntr : ep->rx_cntr, e, want_cqe);
}

void usb4_core_complete_err(struct usb4_core_ep *ep, bool tx,
			    const struct usb4_cqe *e, int err, size_t olen)
{
	usb4_core_report_err(tx ? ep->tx_cq : ep->rx_cq,
			     tx ? ep->tx_cntr : ep->rx_cntr, e, err, olen);
}

/* ---- progress ---- */

/* Peers with one-sided links count their accesses to our memory where the
 * link keeps them; move the news into the FI_REMOTE_* counters. */
static void count_remote_access(struct usb4_core_ep *ep)
{
	for (size_t k = 0; k < USB4_LINKS_MAX; k++) {
		struct usb4_ep_link *el = &ep->links[k];
		uint64_t writes, reads;

		if (!el->link || !el->link->ops->remote_counts)
			continue;
		el->link->ops->remote_counts(el->link, &writes, &reads);
		count_news(ep->rem_wr_cntr, writes, &el->remote_writes_seen);
		count_news(ep->rem_rd_cntr, reads, &el->remote_reads_seen);
	}
}

/* Idle with work pending on peers: now and then make sure they live.  Asked
 * on every idle progress call while an op waits: the coarse clock (a
 * system call there would cost every wait loop one). */
static void check_liveness(struct usb4_core_ep *ep)
{
	uint64_t now = usb4_coarse_now_ns();

	if (now - ep->liveness_ns < USB4_LIVENESS_NS)
		return;
	ep->liveness_ns = now;
	usb4_proto_reap_dead_peers(ep);
}

/* Whether a same-host peer posted a request on our board: the state word
 * read here, so that an idle progress call makes no call for it. */
static bool board_posted(struct usb4_mrt_board *b)
{
	return b && atomic_load_explicit(&b->state, memory_order_relaxed) ==
		    USB4_BOARD_POSTED;
}

int usb4_core_progress(struct usb4_core_ep *ep)
{
	int n = 0;

	ep->progress_calls++;
	if (!usb4_list_empty(&ep->ctrl_pending))
		usb4_ctrl_flush(ep);
	for (size_t i = 0; i < ep->npolled; i++) {
		struct usb4_link *link = ep->polled[i];

		n += link->ops->poll(link, USB4_POLL_BUDGET);
	}
	if (!usb4_list_empty(&ep->ctrl_pending))
		usb4_ctrl_flush(ep);
	if (!usb4_list_empty(&ep->streams))
		usb4_stream_progress(ep);
	if (ep->rem_rd_cntr || ep->rem_wr_cntr)
		count_remote_access(ep);
	if (board_posted(ep->board))
		n += usb4_board_serve(ep->dom->mrs);
	if (!n && (ep->ops_free_count < ep->ops_cap ||
		   !usb4_list_empty(&ep->ctrl_pending) ||
		   !usb4_list_empty(&ep->xfers) ||
		   !usb4_list_empty(&ep->streams)))
		check_liveness(ep);
	return n;
}

bool usb4_core_ep_other_hosts(const struct usb4_core_ep *ep)
{
	for (size_t k = 0; k < USB4_LINKS_MAX; k++)
		if (ep->links[k].link && ep->links[k].link->ops->other_hosts)
			return true;
	return false;
}

/* ---- sleeping ---- */

int usb4_core_wait_fds(const struct usb4_core_ep *ep)
{
	int n = 0;

	for (size_t k = 0; k < USB4_LINKS_MAX; k++)
		n += ep->links[k].link != NULL;
	return n;
}

static void sleep_undo(struct usb4_core_ep *ep, size_t upto)
{
	for (size_t k = 0; k < upto; k++) {
		struct usb4_link *link = ep->links[k].link;

		if (link)
			link->ops->sleep_end(link);
	}
}

bool usb4_core_sleep_begin(struct usb4_core_ep *ep, struct pollfd *fds,
			   int max, int *nfds, int *timeout_ms)
{
	for (size_t k = 0; k < USB4_LINKS_MAX; k++) {
		struct usb4_link *link = ep->links[k].link;
		int64_t timer;

		if (!link)
			continue;
		if (*nfds >= max || !link->ops->sleep_begin(link)) {
			sleep_undo(ep, k);
			return false;
		}
		fds[(*nfds)++] = (struct pollfd) {
			.fd = link->ops->wait_fd(link), .events = POLLIN };
		timer = link->ops->timer_us(link);
		if (timer >= 0 && (*timeout_ms < 0 ||
				   (timer + 999) / 1000 < *timeout_ms))
			*timeout_ms = (int) ((timer + 999) / 1000);
	}
	if (!usb4_list_empty(&ep->ctrl_pending) &&
	    (*timeout_ms < 0 || *timeout_ms > USB4_CTRL_RETRY_MS))
		*timeout_ms = USB4_CTRL_RETRY_MS;
	ep->sleepers++;
	return true;
}

void usb4_core_sleep_end(struct usb4_core_ep *ep)
{
	sleep_undo(ep, USB4_LINKS_MAX);
	ep->sleepers--;
}

void usb4_core_app_sleeps(struct usb4_core_ep *ep, bool asleep)
{
	if (ep->dom)
		usb4_board_note_sleep(ep->dom->mrs, asleep ? 1 : -1);
}

void usb4_core_wait_sleepers(struct usb4_core_ep *ep, struct usb4_lock *lock)
{
	struct timespec pause = { 0, 50 * 1000 };

	while (ep->sleepers) {
		usb4_lock_release(lock);
		nanosleep(&pause, NULL);
		usb4_lock_acquire(lock);
	}
}
