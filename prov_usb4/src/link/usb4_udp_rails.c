/*
 * Rails: several sockets of one udp link, one per cable, and each session's
 * paths over them (see usb4_udp_rails.h for the rules).
 */
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "usb4_udp_rails.h"

#define USB4_UDP_RAIL_LIST_HDR	offsetof(struct usb4_wire_rails, rail)

/* ---- the link's rails ---- */

static int rail_open(struct usb4_udp_rails *r, const struct usb4_iface *iface,
		     uint16_t port, const struct usb4_udp_faults *faults)
{
	struct usb4_udp_rail *rail = &r->rail[r->count];
	int ret = usb4_udp_sock_open_at(&rail->sock, iface, port, faults);

	if (ret)
		return ret;
	snprintf(rail->name, sizeof(rail->name), "%s", iface->name);
	usb4_udp_sock_addr(rail->sock, &rail->self);
	memcpy(rail->mask, iface->mask, sizeof(rail->mask));
	r->count++;
	return 0;
}

/* A rail on another interface of the primary's family whose datagrams are
 * as large (a frame must fit every rail). */
static bool rail_fits(const struct usb4_udp_rails *r,
		      const struct usb4_iface *iface)
{
	const struct usb4_udp_rail *primary = &r->rail[0];

	return strcmp(iface->name, primary->name) &&
	       (iface->family == AF_INET ? 4 : 6) == primary->self.family;
}

static void rail_close_last(struct usb4_udp_rails *r)
{
	r->count--;
	usb4_udp_sock_close(r->rail[r->count].sock);
	memset(&r->rail[r->count], 0, sizeof(r->rail[r->count]));
}

int usb4_udp_rails_add(struct usb4_udp_rails *r, const struct usb4_iface *iface,
		       const struct usb4_udp_faults *faults)
{
	size_t max = usb4_udp_sock_datagram_max(r->rail[0].sock);
	int ret;

	if (r->count >= USB4_UDP_RAILS_MAX || !rail_fits(r, iface))
		return -FI_EINVAL;
	ret = rail_open(r, iface, 0, faults);
	if (ret)
		return ret;
	if (usb4_udp_sock_datagram_max(r->rail[r->count - 1].sock) < max) {
		USB4_WARN(FI_LOG_EP_CTRL, "udp: %s carries smaller datagrams "
			  "than %s: not a rail\n", iface->name, r->rail[0].name);
		rail_close_last(r);
		return -FI_EMSGSIZE;
	}
	return 0;
}

static void rails_more(struct usb4_udp_rails *r,
		       const struct usb4_udp_faults *faults)
{
	struct usb4_iface found[USB4_UDP_RAILS_MAX + 1];
	int n = usb4_iface_find(usb4_params.iface, usb4_params.sysfs_root,
				found, USB4_UDP_RAILS_MAX + 1);

	for (int i = 0; i < n; i++)
		usb4_udp_rails_add(r, &found[i], faults);
}

/* One epoll set, so that the core waits on all rails as on one fd. */
static int rails_epoll(struct usb4_udp_rails *r)
{
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epfd < 0)
		return -FI_ENOMEM;
	for (int i = 0; i < r->count; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

		if (epoll_ctl(r->epfd, EPOLL_CTL_ADD,
			      usb4_udp_sock_fd(r->rail[i].sock), &ev))
			return -FI_ENOMEM;
	}
	return 0;
}

static void rails_ext_build(struct usb4_udp_rails *r)
{
	struct usb4_wire_rails w = { .count = (uint8_t) r->count };

	for (int i = 0; i < r->count; i++) {
		const struct usb4_udp_addr *a = &r->rail[i].self;

		w.rail[i].family = a->family;
		w.rail[i].port = htole16(a->port);
		memcpy(w.rail[i].ip, a->ip, sizeof(w.rail[i].ip));
	}
	r->ext.len = (uint16_t) (USB4_UDP_RAIL_LIST_HDR +
				 r->count * sizeof(w.rail[0]));
	memcpy(r->ext.data, &w, r->ext.len);
}

int usb4_udp_rails_open(struct usb4_udp_rails *r, const struct usb4_iface *iface,
			uint16_t port, bool more,
			const struct usb4_udp_faults *faults)
{
	uint64_t timeout = (uint64_t) usb4_params.rail_timeout_ms * 1000000;
	int ret;

	memset(r, 0, sizeof(*r));
	r->epfd = -1;
	r->timeout_ns = timeout;
	r->answer_ns = timeout / 5;
	r->probe_ns = 2 * timeout / 5;
	ret = rail_open(r, iface, port, faults);
	if (ret || !more)
		return ret;
	rails_more(r, faults);
	usb4_udp_rails_ready(r);
	return 0;
}

void usb4_udp_rails_ready(struct usb4_udp_rails *r)
{
	if (r->count < 2)
		return;
	if (rails_epoll(r)) {
		USB4_WARN(FI_LOG_EP_CTRL, "udp: no epoll set for %d rails: "
			  "%s alone\n", r->count, r->rail[0].name);
		if (r->epfd >= 0)
			close(r->epfd);
		r->epfd = -1;
		while (r->count > 1)
			rail_close_last(r);
		return;
	}
	rails_ext_build(r);
}

void usb4_udp_rails_close(struct usb4_udp_rails *r)
{
	if (r->epfd >= 0)
		close(r->epfd);
	for (int i = 0; i < r->count; i++)
		usb4_udp_sock_close(r->rail[i].sock);
	r->count = 0;
	r->epfd = -1;
}

int usb4_udp_rails_fd(const struct usb4_udp_rails *r)
{
	return r->count > 1 ? r->epfd : usb4_udp_sock_fd(r->rail[0].sock);
}

const struct usb4_rel_hello_ext *
usb4_udp_rails_ext(const struct usb4_udp_rails *r)
{
	return r->count > 1 ? &r->ext : NULL;
}

void usb4_udp_rail_received(struct usb4_udp_rails *r, int rail, size_t len)
{
	r->rail[rail].stats.received++;
	r->rail[rail].stats.bytes_received += len;
}

/* ---- pairing ---- */

/* The peer's rail list: how many rails, into out; 0 when malformed. */
static int rail_list_read(const struct usb4_rel_hello_ext *ext,
			  struct usb4_udp_addr *out)
{
	struct usb4_wire_rails w;

	if (ext->len < USB4_UDP_RAIL_LIST_HDR + sizeof(w.rail[0]) ||
	    ext->len > sizeof(w))
		return 0;
	memset(&w, 0, sizeof(w));
	memcpy(&w, ext->data, ext->len);
	if (!w.count || w.count > USB4_WIRE_RAILS_MAX ||
	    ext->len != USB4_UDP_RAIL_LIST_HDR + w.count * sizeof(w.rail[0]))
		return 0;
	for (int i = 0; i < w.count; i++) {
		if ((w.rail[i].family != 4 && w.rail[i].family != 6) ||
		    !w.rail[i].port)
			return 0;
		out[i].family = w.rail[i].family;
		out[i].port = le16toh(w.rail[i].port);
		memcpy(out[i].ip, w.rail[i].ip, sizeof(out[i].ip));
	}
	return w.count;
}

/* Whether a lies in rail's subnet: a cable straight to it.  A rail with
 * no netmask reaches nobody so. */
static bool on_subnet(const struct usb4_udp_rail *rail,
		      const struct usb4_udp_addr *a)
{
	size_t len = a->family == 4 ? 4 : 16;
	bool masked = false;

	if (a->family != rail->self.family)
		return false;
	for (size_t i = 0; i < len; i++) {
		if ((a->ip[i] ^ rail->self.ip[i]) & rail->mask[i])
			return false;
		masked |= rail->mask[i] != 0;
	}
	return masked;
}

/* A verified path is live at once; any other is probed at once. */
static void path_add(struct usb4_udp_paths *p, int rail,
		     const struct usb4_udp_addr *to, bool verified)
{
	p->path[p->count++] = (struct usb4_udp_path) {
		.to = *to, .rail = (uint8_t) rail, .live = verified,
		.verified = verified };
}

void usb4_udp_paths_init(struct usb4_udp_paths *p,
			 const struct usb4_udp_addr *addr)
{
	memset(p, 0, sizeof(*p));
	p->forced = -1;
	path_add(p, 0, addr, true);	/* the handshake's */
}

void usb4_udp_paths_pair(const struct usb4_udp_rails *r,
			 struct usb4_udp_paths *p,
			 const struct usb4_rel_hello_ext *ext)
{
	struct usb4_udp_addr theirs[USB4_WIRE_RAILS_MAX];
	bool taken[USB4_WIRE_RAILS_MAX] = { true };
	int n;

	if (p->paired || r->count < 2 || !ext->len)
		return;
	p->paired = true;
	n = rail_list_read(ext, theirs);
	/* Their first rail is the address we know them by; when our primary
	 * rail does not reach it directly, routing does: no rails. */
	if (n < 2 || !usb4_udp_addr_eq(&theirs[0], &p->path[0].to) ||
	    !on_subnet(&r->rail[0], &theirs[0]))
		return;
	for (int i = 1; i < r->count; i++) {
		for (int j = 1; j < n; j++) {
			if (taken[j] || !on_subnet(&r->rail[i], &theirs[j]))
				continue;
			taken[j] = true;
			path_add(p, i, &theirs[j], false);
			break;
		}
	}
}

int usb4_udp_paths_find(const struct usb4_udp_paths *p, int rail,
			const struct usb4_udp_addr *from)
{
	for (int i = 0; i < p->count; i++)
		if (p->path[i].rail == rail &&
		    usb4_udp_addr_eq(from, &p->path[i].to))
			return i;
	return -1;
}

/* ---- sending ---- */

static void path_retire(struct usb4_udp_rails *r, struct usb4_udp_paths *p,
			int i, uint64_t now)
{
	struct usb4_udp_path *path = &p->path[i];

	if (!path->live)
		return;
	path->live = false;
	path->waiting = 0;
	path->probe_due = now + r->probe_ns;
	r->rail[path->rail].stats.retired++;
	p->resend |= p->data_sent;
	USB4_INFO(FI_LOG_EP_DATA, "udp: rail %s retired for a peer\n",
		  r->rail[path->rail].name);
}

/* What a datagram is: DATA (with its seq) or not, and its length. */
static bool is_data(const struct iovec *iov, int count, uint32_t *seq,
		    size_t *len)
{
	const struct usb4_wire_rel *h = iov[0].iov_base;

	*len = 0;
	for (int i = 0; i < count; i++)
		*len += iov[i].iov_len;
	if (iov[0].iov_len < sizeof(*h) || h->type != USB4_REL_DATA)
		return false;
	*seq = le32toh(h->seq);
	return true;
}

/* Whether DATA seq went before (a retransmission); remembers it. */
static bool data_again(struct usb4_udp_paths *p, uint32_t seq)
{
	bool again = p->data_sent && (int32_t) (seq - p->data_top) < 0;

	if (!again) {
		p->data_top = seq + 1;
		p->data_sent = true;
	}
	return again;
}

/* The first live path from `from` on (wrapping), or -1. */
static int live_from(const struct usb4_udp_paths *p, int from)
{
	for (int k = 0; k < p->count; k++) {
		int i = (from + k) % p->count;

		if (p->path[i].live)
			return i;
	}
	return -1;
}

/* Bytes a rail's socket has handed down and its interface not yet sent:
 * datagrams in the qdisc and the driver's ring still count against the
 * socket (SIOCOUTQ), so a slower cable shows a longer backlog. */
static int backlog(const struct usb4_udp_rails *r, int rail)
{
	int n = 0;

	return ioctl(usb4_udp_sock_fd(r->rail[rail].sock), SIOCOUTQ, &n) ? 0 : n;
}

/*
 * The live path for the next large datagram: the one whose rail has the
 * shortest backlog, so that each cable gets datagrams as fast as it sends
 * them (unequal cables are not held to the slowest); ties go round-robin
 * from p->next.  -1 when every path is retired.
 */
static int stripe_path(const struct usb4_udp_rails *r,
		       const struct usb4_udp_paths *p)
{
	int best = -1, best_backlog = 0;

	for (int k = 0; k < p->count; k++) {
		int i = (p->next + k) % p->count, b;

		if (!p->path[i].live)
			continue;
		b = backlog(r, p->path[i].rail);
		if (best < 0 || b < best_backlog) {
			best = i;
			best_backlog = b;
		}
	}
	return best;
}

static int path_send(struct usb4_udp_rails *r, struct usb4_udp_paths *p,
		     int i, const struct iovec *iov, int count, size_t len,
		     bool data, bool again, uint64_t now)
{
	struct usb4_udp_path *path = &p->path[i];
	struct usb4_udp_rail_stats *st = &r->rail[path->rail].stats;
	int ret = usb4_udp_send_more(r->rail[path->rail].sock, &path->to,
				     iov, count);

	if (ret) {
		if (ret != -FI_EAGAIN)
			st->send_errors++;
		return ret;
	}
	st->sent++;
	st->bytes_sent += len;
	st->retransmitted += again;
	path->said = now;
	if (data && !path->waiting)
		path->waiting = now;
	return 0;
}

int usb4_udp_paths_send(struct usb4_udp_rails *r, struct usb4_udp_paths *p,
			const struct iovec *iov, int count, uint64_t now)
{
	uint32_t seq = 0;
	size_t len;
	bool data = is_data(iov, count, &seq, &len);
	bool again = data && data_again(p, seq);
	bool stripe = data && len >= USB4_UDP_STRIPE_MIN;
	int first, ret = -FI_EAGAIN;

	if (p->forced >= 0)
		return path_send(r, p, p->forced, iov, count, len, data, again,
				 now);
	if (p->count == 1)	/* one rail: nothing to choose or retire */
		return path_send(r, p, 0, iov, count, len, data, again, now);
	first = stripe && p->count > 1 ? stripe_path(r, p) : live_from(p, 0);
	if (first < 0)	/* every path retired: the primary, while rel waits */
		return path_send(r, p, 0, iov, count, len, data, again, now);
	for (int k = 0; k < p->count; k++) {
		int i = (first + k) % p->count;

		if (!p->path[i].live)
			continue;
		ret = path_send(r, p, i, iov, count, len, data, again, now);
		if (!ret) {
			if (stripe)
				p->next = (i + 1) % p->count;
			return 0;
		}
		if (ret == -FI_EMSGSIZE)
			return ret;
		if (ret != -FI_EAGAIN && p->count > 1)
			path_retire(r, p, i, now);	/* down: no route */
	}
	return ret;
}

/* ---- liveness ---- */

/* Whether span has passed since `since`.  A timer may have read the clock
 * (now) before a send it made stamped a later time: not passed. */
static bool passed(uint64_t now, uint64_t since, uint64_t span)
{
	return now >= since && now - since >= span;
}

bool usb4_udp_path_heard(struct usb4_udp_rails *r, struct usb4_udp_paths *p,
			 int i, uint64_t now)
{
	struct usb4_udp_path *path = &p->path[i];

	path->waiting = 0;
	if (!path->verified) {
		path->verified = true;
		path->live = true;
		USB4_INFO(FI_LOG_EP_DATA, "udp: rail %s verified for a peer\n",
			  r->rail[path->rail].name);
	} else if (!path->live) {
		path->live = true;
		r->rail[path->rail].stats.revived++;
		USB4_INFO(FI_LOG_EP_DATA, "udp: rail %s live again for a "
			  "peer\n", r->rail[path->rail].name);
	}
	return p->count > 1 && passed(now, path->said, r->answer_ns);
}

unsigned usb4_udp_paths_due(struct usb4_udp_rails *r, struct usb4_udp_paths *p,
			    uint64_t now)
{
	unsigned probe = 0;

	if (p->count < 2)
		return 0;
	for (int i = 0; i < p->count; i++) {
		struct usb4_udp_path *path = &p->path[i];

		if (path->live && path->waiting &&
		    passed(now, path->waiting, r->timeout_ns))
			path_retire(r, p, i, now);
		else if (!path->live && path->probe_due <= now) {
			probe |= 1u << i;
			path->probe_due = now + r->probe_ns;
		}
	}
	return probe;
}

uint64_t usb4_udp_paths_deadline(const struct usb4_udp_rails *r,
				 const struct usb4_udp_paths *p)
{
	uint64_t due = UINT64_MAX;

	if (p->count < 2)
		return due;
	for (int i = 0; i < p->count; i++) {
		const struct usb4_udp_path *path = &p->path[i];
		uint64_t at = path->live ? (path->waiting ?
			      path->waiting + r->timeout_ns : UINT64_MAX) :
			      path->probe_due;

		if (at < due)
			due = at;
	}
	return due;
}

/* ---- what the rails did ---- */

void usb4_udp_rails_log(const struct usb4_udp_rails *r, const bool *live)
{
	for (int i = 0; i < r->count; i++) {
		const struct usb4_udp_rail *rail = &r->rail[i];
		const struct usb4_udp_rail_stats *s = &rail->stats;

		USB4_INFO(FI_LOG_EP_DATA,
			  "udp rail %s: %s; datagrams sent %llu bytes sent %llu "
			  "datagrams received %llu bytes received %llu "
			  "retransmitted %llu send errors %llu retired %llu "
			  "revived %llu\n", rail->name,
			  live[i] ? "live" : "retired",
			  (unsigned long long) s->sent,
			  (unsigned long long) s->bytes_sent,
			  (unsigned long long) s->received,
			  (unsigned long long) s->bytes_received,
			  (unsigned long long) s->retransmitted,
			  (unsigned long long) s->send_errors,
			  (unsigned long long) s->retired,
			  (unsigned long long) s->revived);
	}
}
