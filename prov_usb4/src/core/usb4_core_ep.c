/*
 * The core endpoint: its inbox, its operation pools, progress and
 * completion delivery.  Protocols live in usb4_proto.c, matching in
 * usb4_match.c.
 */
#include <stdlib.h>
#include <string.h>

#include "usb4_core.h"
#include "usb4_proto.h"

/* Frames handled per progress call: bounds the time one call takes. */
#define USB4_POLL_BUDGET	64
/* How often pending sends check that their peers still live. */
#define USB4_LIVENESS_NS	(200 * 1000 * 1000ull)

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
	struct usb4_iface iface;

	return usb4_iface_find(usb4_params.iface, usb4_params.sysfs_root,
			       &iface, 1) > 0;
}

/*
 * The udp link to other hosts, on the first interface that qualifies
 * (FI_USB4_IFACE, else thunderbolt-net interfaces that are up).  None is
 * fine: same-host peers still work over shm.
 */
static int open_udp(struct usb4_core_ep *ep)
{
	struct usb4_iface iface;
	struct usb4_udp_faults faults;
	int ret;

	if (usb4_iface_find(usb4_params.iface, usb4_params.sysfs_root,
			    &iface, 1) < 1)
		return 0;
	if (usb4_udp_faults_parse(usb4_params.faults, &faults)) {
		USB4_WARN(FI_LOG_EP_CTRL, "FI_USB4_FAULTS=%s not understood\n",
			  usb4_params.faults);
		return -FI_EINVAL;
	}
	ret = usb4_udp_link_open(&ep->udp, &iface, &faults);
	if (ret)
		return ret;
	ep->udp_payload_max = usb4_udp_link_datagram_max(ep->udp) -
			      sizeof(struct usb4_wire_rel);
	ep->udp_linear = malloc(ep->udp_payload_max);
	return ep->udp_linear ? 0 : -FI_ENOMEM;
}

int usb4_core_ep_open(struct usb4_core_ep *ep, uint64_t caps,
		      struct usb4_core_domain *dom)
{
	size_t frame_max = sizeof(struct usb4_wire_hdr) + usb4_params.eager_size;
	int ret;

	memset(ep, 0, sizeof(*ep));
	ep->id = usb4_random64();
	ep->caps = caps;
	ep->dom = dom;
	for (int q = 0; q < 2; q++) {
		usb4_list_init(&ep->posted[q]);
		usb4_list_init(&ep->unexp[q]);
	}
	usb4_list_init(&ep->rx_free);
	usb4_list_init(&ep->ctrl_pending);
	usb4_list_init(&ep->streams);
	usb4_list_init(&ep->xfers);
	ep->rx_max = usb4_params.rx_size;
	ret = ops_init(ep, usb4_params.tx_size);
	if (ret)
		goto err_free_ops;
	ret = usb4_shm_link_open(&ep->shm, usb4_params.ring_slots, frame_max,
				 ep->id);
	if (ret)
		goto err_free_ops;
	ep->eager_max = usb4_shm_link_frame_max(ep->shm) -
			sizeof(struct usb4_wire_hdr);
	if (ep->eager_max > usb4_params.eager_size)
		ep->eager_max = usb4_params.eager_size;
	ret = open_udp(ep);
	if (ret)
		goto err_close_shm;
	return 0;

err_close_shm:
	usb4_shm_link_close(ep->shm);
err_free_ops:
	free(ep->ops);
	free(ep->ops_free);
	return ret;
}

static void free_list(struct usb4_list *head, size_t offset, bool unexp)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(head, it, tmp) {
		usb4_list_remove(it);
		if (unexp)
			free(((struct usb4_unexp *) ((char *) it - offset))->buf);
		free((char *) it - offset);
	}
}

void usb4_core_ep_close(struct usb4_core_ep *ep)
{
	usb4_core_log_stats(ep);
	for (int q = 0; q < 2; q++) {
		free_list(&ep->posted[q], offsetof(struct usb4_rx_entry, link),
			  false);
		free_list(&ep->unexp[q], offsetof(struct usb4_unexp, link), true);
	}
	free_list(&ep->rx_free, offsetof(struct usb4_rx_entry, link), false);
	free_list(&ep->ctrl_pending, offsetof(struct usb4_ctrl, link), false);
	usb4_stream_close(ep);
	/* rel lingers below, resending what peers have not acknowledged: from
	 * its own copies, not from buffers that are about to go. */
	for (size_t i = 0; i < ep->ops_cap; i++)
		if (ep->ops[i].busy) {
			usb4_stream_release(ep, &ep->ops[i].stream);
			free(ep->ops[i].bounce);
		}
	usb4_transport_close(ep);
	usb4_shm_link_close(ep->shm);
	free(ep->ops);
	free(ep->ops_free);
	ep->shm = NULL;
	ep->ops = NULL;
	ep->ops_free = NULL;
}

void usb4_core_ep_addr(const struct usb4_core_ep *ep, struct usb4_addr *addr)
{
	struct usb4_shm_addr shm;

	memset(addr, 0, sizeof(*addr));
	addr->magic = USB4_ADDR_MAGIC;
	addr->version = USB4_ADDR_VERSION;
	addr->host_id = usb4_host_id();
	addr->ep_id = ep->id;
	usb4_shm_link_addr(ep->shm, &shm);
	addr->shm_pid = shm.pid;
	addr->shm_fd = shm.fd;
	addr->reg_fd = ep->dom && ep->dom->reg ?
		       usb4_shm_reg_fd(ep->dom->reg) : -1;
	if (ep->udp) {
		struct usb4_udp_addr udp;
		usb4_udp_link_addr(ep->udp, &udp);
		addr->udp_family = udp.family;
		addr->udp_port = udp.port;
		memcpy(addr->udp_ip, udp.ip, sizeof(addr->udp_ip));
	}
}


void usb4_core_log_stats(const struct usb4_core_ep *ep)
{
	const struct usb4_core_stats *s = &ep->stats;
	uint64_t dropped = s->dropped_unknown_op;

	for (int i = 1; i < USB4_WIRE_VERDICT_MAX; i++)
		dropped += s->dropped[i];
	if (!dropped && !s->unknown_src)
		return;
	USB4_WARN(FI_LOG_EP_DATA,
		  "endpoint %016llx dropped frames: short %llu version %llu "
		  "type %llu flags %llu length %llu unknown-op %llu; "
		  "from unknown sources %llu\n", (unsigned long long) ep->id,
		  (unsigned long long) s->dropped[USB4_WIRE_SHORT],
		  (unsigned long long) s->dropped[USB4_WIRE_VERSION_BAD],
		  (unsigned long long) s->dropped[USB4_WIRE_TYPE_BAD],
		  (unsigned long long) s->dropped[USB4_WIRE_FLAGS_BAD],
		  (unsigned long long) s->dropped[USB4_WIRE_LEN_BAD],
		  (unsigned long long) s->dropped_unknown_op,
		  (unsigned long long) s->unknown_src);
}

/* ---- completions ---- */

static void count(struct usb4_counter *cntr, bool ok)
{
	if (cntr)
		atomic_fetch_add(ok ? &cntr->value : &cntr->err, 1);
}

void usb4_core_report(struct usb4_cq_queue *cq, struct usb4_counter *cntr,
		      const struct usb4_cqe *e, bool want_cqe)
{
	count(cntr, true);
	if (want_cqe && cq && usb4_cq_queue_push(cq, e))
		USB4_WARN(FI_LOG_CQ, "out of memory: completion lost\n");
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
			.err = err,
			.prov_errno = -err,
		},
		.src = e->src,
	};

	count(cntr, false);
	if (cq && usb4_cq_queue_push_err(cq, &ee))
		USB4_WARN(FI_LOG_CQ, "out of memory: error completion lost\n");
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

static void on_frame(void *arg, const void *buf, size_t len)
{
	struct usb4_core_ep *ep = arg;
	struct usb4_frame frame;
	enum usb4_wire_verdict v = usb4_wire_parse(buf, len, &frame);

	if (v != USB4_WIRE_OK) {
		ep->stats.dropped[v]++;
		USB4_DBG(FI_LOG_EP_DATA, "dropped frame: %s\n",
			 usb4_wire_verdict_names[v]);
		return;
	}
	usb4_proto_handle(ep, &frame);
}

/* Peers count their accesses to our memory in our inbox; move the news
 * into the counters bound with FI_REMOTE_READ / FI_REMOTE_WRITE. */
static void count_remote_access(struct usb4_core_ep *ep)
{
	uint64_t writes, reads;

	usb4_shm_link_rma_counts(ep->shm, &writes, &reads);
	if (ep->rem_wr_cntr && writes != ep->rem_writes_seen)
		atomic_fetch_add(&ep->rem_wr_cntr->value,
				 writes - ep->rem_writes_seen);
	if (ep->rem_rd_cntr && reads != ep->rem_reads_seen)
		atomic_fetch_add(&ep->rem_rd_cntr->value,
				 reads - ep->rem_reads_seen);
	ep->rem_writes_seen = writes;
	ep->rem_reads_seen = reads;
}

/* Idle with sends outstanding: now and then make sure their peers live. */
static void check_liveness(struct usb4_core_ep *ep)
{
	uint64_t now = usb4_now_ns();

	if (now - ep->liveness_ns < USB4_LIVENESS_NS)
		return;
	ep->liveness_ns = now;
	usb4_proto_reap_dead_peers(ep);
}

int usb4_core_progress(struct usb4_core_ep *ep)
{
	int n;

	if (!usb4_list_empty(&ep->ctrl_pending))
		usb4_proto_flush_ctrl(ep);
	n = usb4_shm_link_poll(ep->shm, on_frame, ep, USB4_POLL_BUDGET);
	if (ep->udp) {
		n += usb4_transport_progress_udp(ep);
		/* Answers to udp frames wait until rel's delivery is over. */
		if (!usb4_list_empty(&ep->ctrl_pending))
			usb4_proto_flush_ctrl(ep);
	}
	if (!usb4_list_empty(&ep->streams))
		usb4_stream_progress(ep);
	if (ep->rem_rd_cntr || ep->rem_wr_cntr)
		count_remote_access(ep);
	if (!n && ep->ops_free_count < ep->ops_cap)
		check_liveness(ep);
	return n;
}

void usb4_core_wait(struct usb4_core_ep *ep, int timeout_ms)
{
	usb4_transport_wait_us(ep, timeout_ms < 0 ? -1 :
			       (int64_t) timeout_ms * 1000);
}

void usb4_core_nap(struct usb4_core_ep *ep, int64_t timeout_us)
{
	usb4_transport_wait_us(ep, timeout_us);
}

bool usb4_core_talks_to_other_hosts(const struct usb4_core_ep *ep)
{
	return ep->session_count > 0;
}

void usb4_core_kick(struct usb4_core_ep *ep)
{
	usb4_shm_link_kick(ep->shm);
}
