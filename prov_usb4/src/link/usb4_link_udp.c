/*
 * The udp link: the link interface over one UDP socket (usb4_udp_socket.c)
 * with rel per peer (src/rel), for endpoints on other hosts.
 *
 * Sessions: one rel state per remote endpoint, in a hash by its id.  A
 * session is made when we first post to a peer, or when a peer that sent
 * us an intact HELLO (CRC, or tag under the job key) proves it got our
 * answer (usb4_rel_offer_proven): until then the HELLO is only an offer in
 * a fixed table (usb4_udp_offers.c), so nothing is allocated for a peer
 * before its handshake completes.  Sessions made so are capped
 * (USB4_UDP_ACCEPTED_MAX) and freed once their peer is down, after the
 * core heard so.  A HELLO of another version, or features we refuse, is
 * answered with REJECT and leaves nothing behind; a session's datagrams
 * count only from the address its session knows; everything else is
 * counted as foreign and dropped.
 *
 * With a job key (cfg->auth_key) every datagram is authenticated by rel
 * (usb4_rel_auth.h) and the link says so (usb4_link.authenticated).
 *
 * Frames handed up name their sender by the session they came on.  While
 * rel hands a payload up, posts answer -FI_EAGAIN (rel is not re-entered);
 * the core queues its answers and sends them after the poll.
 *
 * Closing lingers (without any caller lock) until every live peer
 * acknowledged what was posted, or is declared dead: like a socket's
 * linger, so a send that completed is not lost with the endpoint.
 */
#include <poll.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "usb4_udp.h"
#include "usb4_udp_gso.h"
#include "usb4_udp_rails.h"
#include "usb4_rel.h"
#include "usb4_rel_clock.h"
#include "../wire.h"

#define USB4_UDP_POLL_BUDGET	32
#define USB4_UDP_ACCEPTED_MAX	4096	/* sessions made by peers' HELLOs */
#define USB4_UDP_UNREACH_MAX	8	/* unreachable reports kept per poll */

/* The way to a peer: its address and endpoint id. */
struct usb4_link_dest {
	struct usb4_udp_addr addr;
	uint64_t id;
};

struct usb4_udp_link;

struct usb4_udp_session {
	struct usb4_link_dest dest;	/* where it is; dest_of hands it out */
	struct usb4_rel_peer *rel;
	struct usb4_udp_link *link;
	bool down_reported;
	bool accepted;			/* made by the peer's HELLO */
	struct usb4_udp_paths paths;	/* over our rails to the peer's */
	struct usb4_udp_mtu_watch mtu;	/* large datagrams dropped going out */
	struct usb4_udp_session *reap_next;	/* freed after the poll */
	bool unnoted;			/* on the link's unnoted list */
	struct usb4_udp_session *note_next;
	uint64_t rel_now;		/* the time of the rel call running */
};

struct usb4_udp_link_stats {
	uint64_t foreign;		/* not for us, or from the wrong place */
	uint64_t version_mismatch;	/* HELLOs we answered with REJECT */
	uint64_t ref_copies;		/* frames copied at early release */
	uint64_t hello_rejected;	/* HELLOs without a valid tag */
	uint64_t unproven;		/* DATA/ACK to an offer, without proof */
	uint64_t sessions_freed;	/* accepted sessions whose peer died */
	uint64_t sessions_refused;	/* HELLOs beyond USB4_UDP_ACCEPTED_MAX */
	uint64_t impostors;		/* HELLOs claiming an inserted peer's id
					 * from another address */
	uint64_t resolves;		/* RESOLVE queries answered */
	uint64_t unreachable;		/* ICMP port unreachable reports */
	uint64_t unreachable_lost;	/* more at once than we keep */
};

struct usb4_udp_link {
	struct usb4_link base;
	struct usb4_udp_sock *sock;	/* the primary rail's */
	struct usb4_udp_rails rails;	/* usb4_udp_rails.h */
	struct usb4_udp_sock *rx_sock;	/* the rail being polled */
	int rx_rail;
	bool rx_timed;			/* rx_now is that rail's receive's */
	uint64_t ep_id;
	size_t payload_max;		/* rel payload: one core frame */
	struct usb4_rel_pool *pool;
	struct usb4_udp_session **hash;	/* by id, open addressing */
	size_t count, cap;		/* cap: power of two */
	uint64_t idle_polled_ns;	/* last look at the socket, no session */
	unsigned idle_clock_skips;	/* idle polls left before the clock */
	unsigned timer_skips;		/* polls with sessions left before the
					 * timers look at the clock */
	uint64_t next_due;		/* no session's timer is due before */
	bool in_rel;			/* inside rel's delivery */
	uint64_t rx_now;		/* when this poll's last datagram went
					 * to rel (0: none went) */
	size_t place_hdr;		/* zone header bytes of this batch */
	char *linear;			/* a frame put together from pieces */
	struct usb4_udp_zones zones;
	struct usb4_udp_offers *offers;	/* half-open handshakes */
	size_t accepted;		/* sessions made by peers' HELLOs */
	struct usb4_udp_session *reap;	/* down, accepted: to be freed */
	struct usb4_udp_session *unnoted;	/* input came: session_note due
						 * (notes_run) */
	bool keyed;			/* job holds the job key */
	struct usb4_auth_job job;
	struct usb4_udp_link_stats stats;
	struct usb4_rel_stats gone;	/* of the sessions freed */
	/* Addresses the kernel said nobody is bound at, to hint their
	 * sessions after the poll (it may say so inside rel's xmit). */
	struct usb4_udp_addr unreach[USB4_UDP_UNREACH_MAX];
	unsigned unreach_count;
};

static struct usb4_udp_link *udp_of(struct usb4_link *link)
{
	return usb4_container_of(link, struct usb4_udp_link, base);
}

static const struct usb4_udp_link *udp_of_const(const struct usb4_link *link)
{
	return usb4_container_of(link, struct usb4_udp_link, base);
}

/* ---- sessions ---- */

/* The slot id's probe chain starts at (cap a power of two). */
static size_t home_of(uint64_t id, size_t cap)
{
	return (size_t) (id * 0x9e3779b97f4a7c15ull) & (cap - 1);
}

/* Where id's session is in hash, or the empty slot where it would go. */
static size_t slot_for(struct usb4_udp_session *const *hash, size_t cap,
		       uint64_t id)
{
	size_t i = home_of(id, cap);

	while (hash[i] && hash[i]->dest.id != id)
		i = (i + 1) & (cap - 1);
	return i;
}

static struct usb4_udp_session *session_find(const struct usb4_udp_link *l,
					     uint64_t id)
{
	return l->cap ? l->hash[slot_for(l->hash, l->cap, id)] : NULL;
}

static int hash_grow(struct usb4_udp_link *l)
{
	size_t cap = l->cap ? 2 * l->cap : 16;
	struct usb4_udp_session **hash = calloc(cap, sizeof(*hash));

	if (!hash)
		return -FI_ENOMEM;
	for (size_t i = 0; i < l->cap; i++)
		if (l->hash[i])
			hash[slot_for(hash, cap, l->hash[i]->dest.id)] = l->hash[i];
	free(l->hash);
	l->hash = hash;
	l->cap = cap;
	return 0;
}

static struct usb4_rel_cfg rel_cfg(const struct usb4_udp_link *l)
{
	return (struct usb4_rel_cfg) {
		.window = usb4_params.rel_window,
		.payload_max = l->payload_max,
		.datagram_max = usb4_udp_sock_datagram_max(l->sock),
		.rto_initial_ns = 50ull * 1000 * 1000,	/* oversubscribed hosts
							 * stall for 10s of ms */
		.rto_max_ns = 1000ull * 1000 * 1000,
		.ack_delay_ns = 200ull * 1000,
		.dead_ns = (uint64_t) usb4_params.peer_timeout_ms * 1000 * 1000,
		.keepalive_ns = (uint64_t) usb4_params.keepalive_ms * 1000 * 1000,
		.pool = l->pool,
		.job = l->keyed ? &l->job : NULL,
		.cc = usb4_params.cc,
		.hello_ext = usb4_udp_rails_ext(&l->rails),
		/* Striped frames pass each other by as much as the rails'
		 * queues differ, which may be the whole of a short round
		 * trip: a hole waits 5/4 of one, and at least 20 ms (a rail
		 * lost is handled apart: usb4_udp_rails.c). */
		.reorder_max_ns = l->rails.count > 1 ? 250ull * 1000 * 1000 : 0,
		.reorder_min_ns = l->rails.count > 1 ? 20ull * 1000 * 1000 : 0,
		/* With rails a large datagram lost is a rail going down far
		 * more likely than a path that shrank: rails handle it. */
		.path_guess = l->rails.count <= 1,
	};
}

/* A session to id at addr: from a completed offer, or a new handshake. */
static struct usb4_udp_session *session_add(struct usb4_udp_link *l,
					    uint64_t id,
					    const struct usb4_udp_addr *addr,
					    const struct usb4_rel_offer *offer)
{
	struct usb4_rel_cfg cfg = rel_cfg(l);
	struct usb4_udp_session *s;
	uint64_t now = usb4_now_ns();
	int ret;

	cfg.isn = (uint32_t) usb4_random64();
	if (2 * (l->count + 1) > l->cap && hash_grow(l))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	ret = offer ? usb4_rel_peer_accept(&s->rel, &cfg, l->ep_id, offer, now) :
		      usb4_rel_peer_open(&s->rel, &cfg, l->ep_id, id, now);
	if (ret) {
		free(s);
		return NULL;
	}
	s->dest.id = id;
	s->dest.addr = *addr;
	usb4_udp_paths_init(&s->paths, addr);
	s->link = l;
	l->hash[slot_for(l->hash, l->cap, id)] = s;
	l->count++;
	return s;
}

/* The session our first post to a peer makes: the peer's pending offer
 * completes (we asked for this peer ourselves), else a new handshake. */
static struct usb4_udp_session *session_new(struct usb4_udp_link *l,
					    uint64_t id,
					    const struct usb4_udp_addr *addr)
{
	struct usb4_udp_offer *o = usb4_udp_offer_find(l->offers, id, addr,
						       usb4_now_ns());
	struct usb4_udp_session *s = session_add(l, id, addr,
						 o ? &o->rel : NULL);

	if (s && o)
		usb4_udp_offer_done(l->offers, o, true);
	return s;
}

/* Takes slot i out of the hash, moving later entries of its probe chain
 * back so that every entry stays reachable from its home slot. */
static void hash_remove(struct usb4_udp_link *l, size_t i)
{
	size_t mask = l->cap - 1, j = i;

	l->hash[i] = NULL;
	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!l->hash[j])
			break;
		home = home_of(l->hash[j]->dest.id, l->cap);
		/* j may move to i unless its home lies in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			l->hash[i] = l->hash[j];
			l->hash[j] = NULL;
			i = j;
		}
	}
	l->count--;
}

static void stats_add(struct usb4_rel_stats *sum, const struct usb4_rel_stats *r)
{
	sum->sent += r->sent;
	sum->retransmitted += r->retransmitted;
	sum->delivered += r->delivered;
	sum->acks_sent += r->acks_sent;
	sum->not_ready += r->not_ready;
	sum->frag_sent += r->frag_sent;
	sum->frag_received += r->frag_received;
	sum->path_shrinks += r->path_shrinks;
	sum->path_raises += r->path_raises;
	for (int d = 0; d < USB4_REL_DROP_MAX; d++)
		sum->dropped[d] += r->dropped[d];
	sum->cc_cuts_loss += r->cc_cuts_loss;
	sum->cc_cuts_timeout += r->cc_cuts_timeout;
	sum->cc_cuts_delay += r->cc_cuts_delay;
	sum->ka.probes_sent += r->ka.probes_sent;
	sum->ka.probes_answered += r->ka.probes_answered;
	sum->ka.hints += r->ka.hints;
	sum->ka.hints_confirmed += r->ka.hints_confirmed;
	sum->ka.hints_refuted += r->ka.hints_refuted;
	sum->fins_sent += r->fins_sent;
	sum->fins_received += r->fins_received;
}

/* s, about to be freed, off the unnoted list. */
static void note_forget(struct usb4_udp_link *l, struct usb4_udp_session *s)
{
	struct usb4_udp_session **p = &l->unnoted;

	if (!s->unnoted)
		return;
	while (*p != s)
		p = &(*p)->note_next;
	*p = s->note_next;
	s->unnoted = false;
}

/* Frees the sessions of peers that died after making them: the core has
 * heard (peer_down) and keeps nothing of theirs. */
static void reap_sessions(struct usb4_udp_link *l)
{
	while (l->reap) {
		struct usb4_udp_session *s = l->reap;

		l->reap = s->reap_next;
		note_forget(l, s);
		hash_remove(l, slot_for(l->hash, l->cap, s->dest.id));
		stats_add(&l->gone, usb4_rel_stats(s->rel));
		usb4_rel_peer_close(s->rel);
		free(s);
		l->accepted--;
		l->stats.sessions_freed++;
	}
}

/* ---- rel's callbacks ---- */

/* Datagrams our rails' devices dropped on their way out (ENOBUFS). */
static uint64_t rails_nobufs(const struct usb4_udp_rails *r)
{
	uint64_t n = 0;

	for (int i = 0; i < r->count; i++)
		n += usb4_udp_sock_stats(r->rail[i].sock)->nobufs;
	return n;
}

/* A datagram goes at the time the rel call that sends it was made (rel
 * stamps it with that time too): the rails' and the MTU watch's clocks
 * count in milliseconds, a call sends for microseconds.  Where the clock
 * is a system call, every read costs about as much as a look at the socket
 * (test_clock_reads.c). */
static int rel_xmit(void *ctx, const struct iovec *iov, int count)
{
	struct usb4_udp_session *s = ctx;
	size_t len = usb4_iov_len(iov, (size_t) count);
	uint64_t nobufs, now = s->rel_now;
	int ret;

	/* A small datagram (a ping-pong's) goes without the MTU watch's
	 * bookkeeping: the judge would pass its answer on as it is. */
	if (len <= USB4_UDP_MTU_SMALL)
		return usb4_udp_paths_send(&s->link->rails, &s->paths, iov,
					   count, now);
	nobufs = rails_nobufs(&s->link->rails);
	ret = usb4_udp_paths_send(&s->link->rails, &s->paths, iov, count, now);
	return usb4_udp_mtu_judge(&s->mtu, len, ret,
				  rails_nobufs(&s->link->rails) != nobufs, now);
}

static uint32_t rel_path_max(void *ctx)
{
	struct usb4_udp_session *s = ctx;

	return (uint32_t) usb4_udp_sock_path_max(s->link->sock);
}

/* A frame as the core takes it: one piece, or the zone's header and the
 * payload that landed in the zone; anything else is put together first. */
static int frame_shape(struct usb4_udp_link *l, const struct iovec *in,
		       int count, struct iovec *out)
{
	size_t len = 0;

	if (count == 1 || (count == 2 && in[0].iov_len == l->place_hdr)) {
		memcpy(out, in, count * sizeof(*in));
		return count;
	}
	for (int i = 0; i < count; i++) {
		if (in[i].iov_len > l->payload_max - len)
			return 0;
		memcpy(l->linear + len, in[i].iov_base, in[i].iov_len);
		len += in[i].iov_len;
	}
	out[0] = (struct iovec) { .iov_base = l->linear, .iov_len = len };
	return 1;
}

static int rel_deliver(void *ctx, const struct iovec *payload, int count)
{
	struct usb4_udp_session *s = ctx;
	struct usb4_udp_link *l = s->link;
	struct usb4_link *link = &l->base;
	struct iovec frame[USB4_REL_PIECES_MAX];
	int n;

	if (!link->sink.frame)
		return 0;	/* closing: nobody takes it */
	n = frame_shape(l, payload, count, frame);
	if (!n)
		return 0;	/* longer than a frame: rel bounds it, never */
	return link->sink.frame(link->sink.ctx, link, s->dest.id, frame, n);
}

/* What rel calls back for s, during a call into rel made at now. */
static struct usb4_rel_io rel_io(struct usb4_udp_session *s, uint64_t now)
{
	s->rel_now = now;
	return (struct usb4_rel_io) {
		.xmit = rel_xmit, .xmit_ctx = s,
		.deliver = rel_deliver, .deliver_ctx = s,
		.path_max = rel_path_max,
	};
}

/* Rails after a rel call: the peer's rail list once it came, and the
 * frames in flight sent again when a path was retired. */
static void rails_after(struct usb4_udp_link *l, struct usb4_udp_session *s)
{
	struct usb4_rel_io io;
	uint64_t now;

	/* Looked at once, and only with rails to pair: this runs after
	 * every rel call. */
	if (!s->paths.paired && l->rails.count > 1)
		usb4_udp_paths_pair(&l->rails, &s->paths,
				    usb4_rel_peer_hello_ext(s->rel));
	if (!s->paths.resend)
		return;
	s->paths.resend = false;
	now = usb4_now_ns();
	io = rel_io(s, now);
	usb4_rel_resend_in_flight(s->rel, now, &io);
}

/* An ack on path i of s alone: an answer or a probe. */
static void rails_ack(struct usb4_udp_session *s, int i, uint64_t now)
{
	struct usb4_rel_io io = rel_io(s, now);

	s->paths.forced = i;
	usb4_rel_ack_send(s->rel, &io);
	s->paths.forced = -1;
}

/* Retired paths probed, silent ones retired. */
static void rails_timer(struct usb4_udp_link *l, struct usb4_udp_session *s,
			uint64_t now)
{
	unsigned probe = usb4_udp_paths_due(&l->rails, &s->paths, now);

	for (int i = 0; probe; i++, probe >>= 1)
		if (probe & 1)
			rails_ack(s, i, now);
}

/* Datagrams rel's sends left batched on the rails' sockets go now (all,
 * or only_ended: batches a shorter datagram closed, the end of a message
 * or a lone frame; a stream of full ones goes when 64 KiB of it are there
 * or at the end of the poll). */
static void flush_sends(struct usb4_udp_link *l, bool only_ended)
{
	for (int i = 0; i < l->rails.count; i++)
		usb4_udp_sock_flush(l->rails.rail[i].sock, only_ended);
}

/* After every rel call on s: its timer may be due sooner; a peer that
 * went down is reported once, from a poll (session_after, notes_run) and
 * never from inside a post (a post leaves its note to the next poll,
 * session_note_later): the core posts while it walks its lists, and its
 * peer_down handler frees what they hold (a stream pumping a read
 * response was freed under usb4_stream_progress). */
static void session_note(struct usb4_udp_link *l, struct usb4_udp_session *s,
			 bool may_report)
{
	uint64_t due, rails_due;
	int down;

	rails_after(l, s);
	due = usb4_rel_deadline(s->rel);
	rails_due = usb4_udp_paths_deadline(&l->rails, &s->paths);
	down = usb4_rel_down(s->rel);
	if (rails_due < due)
		due = rails_due;
	if (due < l->next_due)
		l->next_due = due;
	if (down && !s->down_reported && !may_report) {
		l->next_due = 0;	/* reported by the next poll's timers */
		l->timer_skips = 0;
		return;
	}
	if (down && !s->down_reported) {
		s->down_reported = true;
		if (l->base.sink.peer_down)
			l->base.sink.peer_down(l->base.sink.ctx, &l->base,
					       s->dest.id, down);
		if (s->accepted) {
			s->reap_next = l->reap;
			l->reap = s;
		}
	}
}

static void session_after(struct usb4_udp_link *l, struct usb4_udp_session *s)
{
	session_note(l, s, true);
}

/*
 * After input, session_note runs in the next poll (after its look at the
 * socket), not in this one: the poll that took a datagram returns its
 * completion that much sooner (about 110 instructions per datagram of a
 * ping-pong, callgrind, on the way from the receive to the CQ entry; Open
 * MPI's read right after it does not progress, see usb4_cq.c), and the
 * next poll looks at the socket before it notes (a note is about 110
 * instructions).  A post's note waits the same way (one note per poll
 * for a session posted to and heard from).  Nothing of it is late: timers
 * are microseconds apart at the least, a sleep notes first
 * (udp_sleep_begin), and a peer that went down is reported by a poll
 * either way.
 */
static void session_note_later(struct usb4_udp_link *l,
			       struct usb4_udp_session *s)
{
	if (s->unnoted)
		return;
	s->unnoted = true;
	s->note_next = l->unnoted;
	l->unnoted = s;
}

/* may_report as session_note's: a poll reports a peer gone, a sleep
 * about to begin leaves that to the poll it wakes for at once. */
static void notes_run(struct usb4_udp_link *l, bool may_report)
{
	while (l->unnoted) {
		struct usb4_udp_session *s = l->unnoted;

		l->unnoted = s->note_next;
		s->unnoted = false;
		session_note(l, s, may_report);
	}
}

/* ---- a kind of link ---- */

static bool udp_available(void)
{
	struct usb4_iface iface;

	return usb4_iface_find(usb4_params.iface, usb4_params.sysfs_root,
			       &iface, 1) > 0;
}

static bool udp_reaches(const struct usb4_wire_addr *a, uint64_t host_id)
{
	return le64toh(a->host_id) != host_id &&
	       (a->udp_family == 4 || a->udp_family == 6);
}

void usb4_udp_addr_of(const struct usb4_wire_addr *a,
		      struct usb4_udp_addr *out)
{
	out->family = a->udp_family;
	out->port = le16toh(a->udp_port);
	memcpy(out->ip, a->udp_ip, sizeof(out->ip));
}

static int udp_dest_open(const struct usb4_wire_addr *a,
			 struct usb4_link_dest **destp)
{
	struct usb4_link_dest *dest = calloc(1, sizeof(*dest));

	if (!dest)
		return -FI_ENOMEM;
	dest->id = le64toh(a->ep_id);
	usb4_udp_addr_of(a, &dest->addr);
	*destp = dest;
	return 0;
}

static void udp_dest_close(struct usb4_link_dest *dest)
{
	free(dest);
}

static bool udp_dest_eq(const struct usb4_link_dest *a,
			const struct usb4_link_dest *b)
{
	return a->id == b->id && usb4_udp_addr_eq(&a->addr, &b->addr);
}

/* Whether the core lets the peer that claims id from addr have a session
 * (it did not insert that id at another address). */
static bool may_open(struct usb4_udp_link *l, uint64_t id,
		     const struct usb4_udp_addr *addr)
{
	struct usb4_link_dest d = { .addr = *addr, .id = id };

	if (!l->base.sink.may_open ||
	    l->base.sink.may_open(l->base.sink.ctx, &l->base, id, &d))
		return true;
	l->stats.impostors++;
	return false;
}

/* ---- the link ---- */

/* With a job key every datagram is authenticated: the link vouches for
 * its peers. */
static int link_key(struct usb4_udp_link *l, const struct usb4_link_cfg *cfg)
{
	int ret;

	if (!cfg->auth_key_len)
		return 0;
	ret = usb4_auth_job_init(&l->job, cfg->auth_key, cfg->auth_key_len);
	if (ret) {
		USB4_WARN(FI_LOG_EP_CTRL, "udp: the crypto library did not "
			  "start: no authenticated link\n");
		return ret;
	}
	l->keyed = true;
	l->base.authenticated = true;
	return 0;
}

static bool ip_is_any(const uint8_t ip[16])
{
	static const uint8_t zero[16];

	return !memcmp(ip, zero, sizeof(zero));
}

/*
 * Where the link binds: the interface to other hosts on a port the kernel
 * picks, or where the application asked (cfg->bind): its IP on whatever
 * interface holds it (loopback too), or for any IP the interface to other
 * hosts, else loopback.
 */
static int bind_place(const struct usb4_link_cfg *cfg, struct usb4_iface *iface,
		      uint16_t *port, bool *more)
{
	static const uint8_t loop4[16] = { 127, 0, 0, 1 };
	static const uint8_t loop6[16] = { [15] = 1 };
	const struct usb4_wire_addr *b = cfg->bind;
	int family;

	*port = 0;
	*more = true;	/* rails on the other interfaces to other hosts */
	if (!b || (b->udp_family != 4 && b->udp_family != 6))
		return usb4_iface_find(usb4_params.iface, usb4_params.sysfs_root,
				       iface, 1) < 1 ? -FI_ENODEV : 0;
	*port = le16toh(b->udp_port);
	*more = false;
	family = b->udp_family == 4 ? AF_INET : AF_INET6;
	if (!ip_is_any(b->udp_ip)) {
		if (usb4_iface_of_ip(family, b->udp_ip, usb4_params.sysfs_root,
				     iface))
			return 0;
		USB4_WARN(FI_LOG_EP_CTRL, "udp: no interface holds the address "
			  "the endpoint was asked to bind\n");
		return -FI_EADDRNOTAVAIL;
	}
	if (usb4_iface_find(usb4_params.iface, usb4_params.sysfs_root, iface,
			    1) == 1 && iface->family == family) {
		*more = true;
		return 0;
	}
	return usb4_iface_of_ip(family, family == AF_INET ? loop4 : loop6,
				usb4_params.sysfs_root, iface) ?
	       0 : -FI_EADDRNOTAVAIL;
}

/* The kernel says nobody is bound at addr any more: kept until the poll
 * is done (this may run inside rel's xmit, which must not be re-entered). */
static void note_unreachable(void *arg, const struct usb4_udp_addr *addr)
{
	struct usb4_udp_link *l = arg;

	l->stats.unreachable++;
	for (unsigned i = 0; i < l->unreach_count; i++)
		if (usb4_udp_addr_eq(&l->unreach[i], addr))
			return;
	if (l->unreach_count == USB4_UDP_UNREACH_MAX) {
		l->stats.unreachable_lost++;	/* probes find them anyway */
		return;
	}
	l->unreach[l->unreach_count++] = *addr;
}

static int udp_open(const struct usb4_link_cfg *cfg, struct usb4_link **linkp)
{
	struct usb4_udp_link *l;
	struct usb4_udp_faults faults;
	struct usb4_iface iface;
	uint16_t port;
	bool more;
	int ret;

	ret = bind_place(cfg, &iface, &port, &more);
	if (ret)
		return ret;
	if (usb4_udp_faults_parse(usb4_params.faults, &faults)) {
		USB4_WARN(FI_LOG_EP_CTRL, "FI_USB4_FAULTS=%s not understood\n",
			  usb4_params.faults);
		return -FI_EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -FI_ENOMEM;
	l->base.ops = &usb4_udp_link_ops;
	l->base.sink = cfg->sink;
	l->ep_id = cfg->ep_id;
	l->next_due = UINT64_MAX;
	usb4_udp_zones_init(&l->zones, usb4_params.udp_placement);
	ret = link_key(l, cfg);
	if (ret)
		goto err_free_link;
	ret = usb4_udp_rails_open(&l->rails, &iface, port, more, &faults);
	if (ret)
		goto err_free_link;
	l->sock = l->rx_sock = l->rails.rail[0].sock;
	l->payload_max = usb4_udp_sock_datagram_max(l->sock) -
			 sizeof(struct usb4_wire_rel) -
			 (l->keyed ? sizeof(struct usb4_wire_auth) : 0);
	l->linear = malloc(l->payload_max);
	l->offers = malloc(sizeof(*l->offers));
	ret = l->linear && l->offers ?
	      usb4_rel_pool_open(&l->pool, usb4_params.udp_buffers) : -FI_ENOMEM;
	if (ret)
		goto err_close_sock;
	/* An offer lives as long as its peer waits for us before giving up. */
	usb4_udp_offers_init(l->offers, rel_cfg(l).dead_ns);
	usb4_udp_sock_on_unreachable(l->sock, note_unreachable, l);
	*linkp = &l->base;
	return 0;

err_close_sock:
	free(l->offers);
	free(l->linear);
	usb4_udp_rails_close(&l->rails);
err_free_link:
	usb4_auth_job_clear(&l->job);
	free(l);
	return ret;
}

static void udp_addr(const struct usb4_link *link, struct usb4_wire_addr *a)
{
	struct usb4_udp_addr self;

	usb4_udp_sock_addr(udp_of_const(link)->sock, &self);
	a->udp_family = self.family;
	a->udp_port = htole16(self.port);
	memcpy(a->udp_ip, self.ip, sizeof(a->udp_ip));
}

/* What one datagram of dest's session carries (usb4_rel_path_payload_max:
 * smaller once the handshake or a shrink said so); ours without one. */
static size_t udp_frame_max(const struct usb4_link *link,
			    const struct usb4_link_dest *dest)
{
	const struct usb4_udp_link *l = udp_of_const(link);
	const struct usb4_udp_session *s = dest ? session_find(l, dest->id) :
						  NULL;
	size_t path = s ? usb4_rel_path_payload_max(s->rel) : l->payload_max;

	return path < l->payload_max ? path : l->payload_max;
}

static int udp_post_ref(struct usb4_link *link, struct usb4_link_dest *dest,
			const struct iovec *iov, int count, int nref,
			uint64_t owner)
{
	struct usb4_udp_link *l = udp_of(link);
	struct usb4_udp_session *s;
	struct usb4_rel_io io;
	uint64_t now;
	int ret;

	if (l->in_rel)
		return -FI_EAGAIN;
	s = session_find(l, dest->id);
	if (!s && !(s = session_new(l, dest->id, &dest->addr)))
		return -FI_EAGAIN;
	now = usb4_rel_send_clock(s->rel, iov, count, nref);
	io = rel_io(s, now);
	ret = usb4_rel_send_ref(s->rel, now, iov, count, nref, owner, &io);
	usb4_rel_send_clock_done(s->rel);
	session_note_later(l, s);	/* the next poll's, as input's */
	flush_sends(l, true);
	return ret;
}

static int udp_post(struct usb4_link *link, struct usb4_link_dest *dest,
		    const struct iovec *iov, int count)
{
	return udp_post_ref(link, dest, iov, count, 0, 0);
}

static void udp_release(struct usb4_link *link, struct usb4_link_dest *dest,
			uint64_t owner)
{
	struct usb4_udp_link *l = udp_of(link);
	struct usb4_udp_session *s = session_find(l, dest->id);

	flush_sends(l, false);	/* a batch may still point at those buffers */
	if (s)
		l->stats.ref_copies += usb4_rel_copy_refs(s->rel, owner);
}

/* The marks are rel sequence numbers; peers without a session have
 * nothing in flight. */
static uint32_t udp_mark(struct usb4_link *link, struct usb4_link_dest *dest)
{
	struct usb4_udp_session *s = session_find(udp_of(link), dest->id);

	return s ? usb4_rel_next_seq(s->rel) : 0;
}

static bool udp_settled(struct usb4_link *link, struct usb4_link_dest *dest,
			uint32_t mark)
{
	struct usb4_udp_session *s = session_find(udp_of(link), dest->id);

	return !s || usb4_rel_acked_before(s->rel, mark);
}

static int udp_peer_state(struct usb4_link *link, struct usb4_link_dest *dest)
{
	struct usb4_udp_session *s = session_find(udp_of(link), dest->id);

	return s ? usb4_rel_down(s->rel) : 0;
}

static uint32_t udp_dest_features(struct usb4_link *link,
				  const struct usb4_link_dest *dest)
{
	const struct usb4_udp_session *s = session_find(udp_of(link), dest->id);

	return s ? usb4_rel_shared_features(s->rel) : 0;
}

static struct usb4_link_dest *udp_dest_of(struct usb4_link *link, uint64_t id)
{
	struct usb4_udp_session *s = session_find(udp_of(link), id);

	return s ? &s->dest : NULL;
}

/* ---- receiving ---- */

/* A HELLO of another version gets our REJECT, so that its sender can say
 * why instead of waiting for a silent peer. */
static void answer_foreign_hello(struct usb4_udp_link *l,
				 const struct usb4_rel_head *head,
				 const struct usb4_udp_addr *from)
{
	char buf[USB4_REL_REJECT_LEN];
	struct iovec iov = { .iov_base = buf };

	if (head->type != USB4_REL_HELLO || !head->crc_ok)
		return;
	if (!l->stats.version_mismatch++)
		USB4_WARN(FI_LOG_EP_CTRL, "peer %016llx speaks usb4 wire "
			  "version %u, this provider speaks %u: refused\n",
			  (unsigned long long) head->src_id, head->version,
			  USB4_WIRE_VERSION);
	iov.iov_len = usb4_rel_reject(buf, l->ep_id, head->src_id);
	usb4_udp_send(l->rx_sock, from, &iov, 1);
}

/* A HELLO of our version whose features we refuse (a job key on one side
 * only, say): REJECT, and nothing kept. */
static void refuse_hello(struct usb4_udp_link *l, uint64_t id, uint32_t seq,
			 const struct usb4_udp_addr *from)
{
	struct usb4_rel_cfg cfg = rel_cfg(l);
	char buf[USB4_REL_REJECT_LEN];
	struct iovec iov = { .iov_base = buf };

	if (!l->stats.version_mismatch++)
		USB4_WARN(FI_LOG_EP_CTRL, "peer %016llx offers features this "
			  "endpoint refuses (%s): refused\n",
			  (unsigned long long) id, l->keyed ?
			  "it has no job key" : "it requires a job key");
	iov.iov_len = usb4_rel_reject_cfg(buf, &cfg, l->ep_id, id, seq);
	usb4_udp_send(l->rx_sock, from, &iov, 1);
}

/* A HELLO from a peer we have no session with: answered from an offer
 * (the same answer while the peer repeats the same HELLO). */
static void offer_hello(struct usb4_udp_link *l, uint64_t id,
			const struct usb4_udp_addr *from,
			const struct iovec *dgram, int count)
{
	struct usb4_rel_cfg cfg = rel_cfg(l);
	char buf[USB4_REL_ANSWER_LEN];
	struct iovec iov = { .iov_base = buf };
	struct usb4_rel_offer in;
	struct usb4_udp_offer *o;
	bool fresh;
	int ret = usb4_rel_offer_read(&cfg, l->ep_id, dgram, count, &in);

	if (ret == -FI_ECONNREFUSED) {
		refuse_hello(l, id, in.peer_isn, from);
		return;
	}
	if (ret == -FI_EACCES) {
		if (!l->stats.hello_rejected++)
			USB4_WARN(FI_LOG_EP_CTRL, "HELLO from %016llx %s: "
				  "dropped\n", (unsigned long long) id,
				  l->keyed ? "without a valid job key tag" :
				  "tagged under a job key this endpoint "
				  "does not have");
		return;
	}
	if (ret) {
		l->stats.foreign++;
		return;
	}
	if (l->accepted >= USB4_UDP_ACCEPTED_MAX) {
		l->stats.sessions_refused++;
		return;
	}
	if (!may_open(l, id, from))
		return;
	o = usb4_udp_offer_make(l->offers, id, from, usb4_now_ns(), &fresh);
	if (fresh || o->rel.peer_isn != in.peer_isn ||
	    memcmp(o->rel.peer_nonce, in.peer_nonce, sizeof(in.peer_nonce))) {
		in.isn = (uint32_t) usb4_random64();
		if (l->keyed)
			usb4_auth_nonce(in.nonce);
		o->rel = in;
	}
	iov.iov_len = usb4_rel_offer_answer(&cfg, l->ep_id, &o->rel, buf);
	if (iov.iov_len)
		usb4_udp_send(l->rx_sock, from, &iov, 1);
}

/* A DATA or ACK from a peer we have no session with: if it proves it got
 * our answer to its HELLO, its session starts here. */
static struct usb4_udp_session *promote(struct usb4_udp_link *l, uint64_t id,
					const struct usb4_udp_addr *from,
					const struct iovec *dgram, int count)
{
	struct usb4_udp_offer *o = usb4_udp_offer_find(l->offers, id, from,
						       usb4_now_ns());
	struct usb4_rel_cfg cfg = rel_cfg(l);
	struct usb4_udp_session *s;

	if (!o)
		return NULL;
	if (!usb4_rel_offer_proven(&cfg, l->ep_id, &o->rel, dgram, count)) {
		l->stats.unproven++;
		return NULL;
	}
	s = session_add(l, id, from, &o->rel);
	if (!s)
		return NULL;	/* no memory now: the peer sends again */
	s->accepted = true;
	l->accepted++;
	usb4_udp_offer_done(l->offers, o, true);
	return s;
}

/* A REJECT in its sender's own version: the peer refused us, if we are
 * in a handshake with it from that address. */
static void foreign_reject(struct usb4_udp_link *l,
			   const struct usb4_rel_head *head,
			   const struct usb4_udp_addr *from)
{
	struct usb4_udp_session *s = session_find(l, head->src_id);

	if (head->type != USB4_REL_REJECT || !s ||
	    !usb4_udp_addr_eq(from, &s->dest.addr))
		return;
	usb4_rel_refused(s->rel, head);
	session_after(l, s);
}

/* The session a datagram belongs to and its path (*path), or NULL
 * (counted) when it belongs to none: not for us, another version, no valid
 * HELLO, an address that is not one of the session's paths on this rail.
 * Handshakes come on the primary rail. */
static struct usb4_udp_session *
datagram_session(struct usb4_udp_link *l, const struct usb4_udp_addr *from,
		 const struct iovec *dgram, int count, int *path)
{
	struct usb4_rel_head head;
	struct usb4_udp_session *s = NULL;

	*path = 0;
	if (usb4_rel_peek_fields(dgram, count, &head) ||
	    head.dst_id != l->ep_id || !head.src_id)
		goto foreign;
	if (head.version != USB4_WIRE_VERSION) {
		head.crc_ok = usb4_rel_crc_valid(dgram, count);
		answer_foreign_hello(l, &head, from);
		foreign_reject(l, &head, from);
		goto foreign;
	}
	s = session_find(l, head.src_id);
	if (s) {
		*path = usb4_udp_paths_find(&s->paths, l->rx_rail, from);
		if (*path >= 0)
			return s;
		goto foreign;
	}
	if (l->rx_rail)
		goto foreign;
	if (head.type == USB4_REL_HELLO) {
		offer_hello(l, head.src_id, from, dgram, count);
		return NULL;
	}
	if (head.type == USB4_REL_DATA || head.type == USB4_REL_ACK)
		s = promote(l, head.src_id, from, dgram, count);
	if (s)
		return s;
foreign:
	l->stats.foreign++;
	return NULL;
}

/* datagram_session for a header read in place (usb4_rel_head_read), with
 * no count: the common case only, the session of an id and address we
 * know; NULL sends the datagram the general way, which counts it. */
static struct usb4_udp_session *
head_session(struct usb4_udp_link *l, const struct usb4_udp_addr *from,
	     const struct usb4_wire_rel *h, int *path)
{
	struct usb4_udp_session *s;

	if (h->dst_id != l->ep_id || !h->src_id ||
	    h->version != USB4_WIRE_VERSION)
		return NULL;
	s = session_find(l, h->src_id);
	if (!s)
		return NULL;
	*path = usb4_udp_paths_find(&s->paths, l->rx_rail, from);
	return *path >= 0 ? s : NULL;
}

/* A RESOLVE query: who is bound here?  Answered with the endpoint's
 * whole address; nothing kept. */
static bool answer_resolve(struct usb4_udp_link *l,
			   const struct usb4_udp_addr *from,
			   const struct iovec *dgram, int count)
{
	struct usb4_wire_addr self;
	const struct usb4_link_sink *sink = &l->base.sink;

	/* The address is built for a query only: every datagram comes here. */
	if (!sink->self_addr || !sink->frame || !usb4_udp_resolve_is_query(dgram))
		return false;
	sink->self_addr(sink->ctx, &self);
	if (!usb4_udp_resolve_answer(l->rx_sock, l->keyed ? &l->job : NULL, &self,
				     from, dgram, count))
		return false;
	l->stats.resolves++;
	return true;
}

static void on_datagram(void *arg, const struct usb4_udp_addr *from,
			const struct iovec *dgram, int count)
{
	struct usb4_udp_link *l = arg;
	struct usb4_udp_session *s = NULL;
	struct usb4_wire_rel h;
	struct usb4_rel_io io;
	bool read;
	uint64_t now;
	int path, ret;

	usb4_udp_rail_received(&l->rails, l->rx_rail,
			       usb4_iov_len(dgram, (size_t) count));
	if (answer_resolve(l, from, dgram, count))
		return;
	/* One read of the header for the lookup and for rel. */
	read = count == 1 && usb4_rel_head_read(dgram, &h);
	if (read)
		s = head_session(l, from, &h, &path);
	if (!s) {
		read = false;
		s = datagram_session(l, from, dgram, count, &path);
	}
	if (!s)
		return;
	/* The datagrams of one receive arrived together: one clock read for
	 * a batch of up to USB4_UDP_BATCH, not one each. */
	if (!l->rx_timed) {
		l->rx_now = usb4_now_ns();
		l->rx_timed = true;
	}
	now = l->rx_now;
	io = rel_io(s, now);
	/* An ack frees what it covers: nothing batched may point there. */
	flush_sends(l, false);
	l->in_rel = true;
	/* What rel refuses it counts among its drops. */
	ret = read ? usb4_rel_input_read(s->rel, now, dgram, &h, &io) :
		     usb4_rel_input_v(s->rel, now, dgram, count, &io);
	l->in_rel = false;
	/* Only what rel authenticated tells that a path lives. */
	if (!ret && usb4_udp_path_heard(&l->rails, &s->paths, path, now))
		rails_ack(s, path, now);
	session_note_later(l, s);
}

/* DATA frames of the transfer under way are received straight into its
 * buffer: the payload lands after rel's and the zone's headers. */
static int place(void *arg, struct usb4_udp_hole *holes, int max)
{
	struct usb4_udp_link *l = arg;

	if (!l->zones.hot) {	/* no transfer under way: every poll's case */
		l->place_hdr = 0;
		return 0;
	}
	l->place_hdr = l->zones.hot->hdr_len;
	return usb4_udp_zones_predict(&l->zones, sizeof(struct usb4_wire_rel),
				      holes, max);
}

/* Retransmissions, delayed acks, refused payloads offered again, idle rings
 * released, dead peers. */
static void run_timers(struct usb4_udp_link *l, uint64_t now)
{
	if (now < l->next_due)
		return;
	flush_sends(l, false);	/* as before an ack (on_datagram) */
	l->next_due = UINT64_MAX;
	for (size_t i = 0; i < l->cap; i++) {
		struct usb4_udp_session *s = l->hash[i];
		struct usb4_rel_io io;

		if (!s)
			continue;
		if (usb4_rel_deadline(s->rel) <= now) {
			io = rel_io(s, now);
			l->in_rel = true;
			usb4_rel_timer(s->rel, now, &io);
			l->in_rel = false;
		}
		rails_timer(l, s, now);
		session_after(l, s);
	}
}

/* Sessions at an address the kernel reported unreachable probe their
 * peer now: dead unless it answers within FI_USB4_UNREACHABLE_CONFIRM (an
 * ICMP anyone can forge never kills a peer that answers). */
static void hint_unreachable(struct usb4_udp_link *l)
{
	uint64_t now, confirm_ns =
		(uint64_t) usb4_params.unreachable_confirm_ms * 1000000;

	if (!l->unreach_count)
		return;
	now = usb4_now_ns();
	for (size_t i = 0; i < l->cap; i++) {
		struct usb4_udp_session *s = l->hash[i];
		struct usb4_rel_io io;

		for (unsigned k = 0; s && k < l->unreach_count; k++) {
			if (!usb4_udp_addr_eq(&s->dest.addr, &l->unreach[k]))
				continue;
			io = rel_io(s, now);
			l->in_rel = true;
			usb4_rel_hint_unreachable(s->rel, now, confirm_ns, &io);
			l->in_rel = false;
			session_after(l, s);
		}
	}
	l->unreach_count = 0;
}

/*
 * With no session the socket carries only strangers' first words (HELLO,
 * RESOLVE), yet a look at it is a system call on every progress call: on a
 * host whose job keeps the link only for peers that may come, that doubled
 * the same-host 8 B latency (0.9 to 2.0 us).  So a link without sessions
 * looks at most every USB4_UDP_IDLE_POLL_NS; a first datagram waits that
 * much longer at worst.
 */
#define USB4_UDP_IDLE_POLL_NS	50000
/*
 * Reading the clock costs as much as the rest of an idle poll (a quarter of
 * a same-host ping-pong's samples went to clock_gettime): a spinning caller
 * reads it on one idle poll in USB4_UDP_IDLE_CLOCK_EVERY.  A woken sleeper
 * reads it on its first poll (udp_sleep_end), so a datagram that woke it is
 * looked at as soon as before.
 */
#define USB4_UDP_IDLE_CLOCK_EVERY	16
/*
 * Polls with sessions where nothing arrived per look at the timers (and the
 * clock).  They run at most this many polls late (acks due in 200 us,
 * retransmissions in 50 ms); input and a woken sleeper run them at once.
 * Where the clock is a system call (a VM whose clocksource has no vDSO
 * mode), a look on every poll of a waiting rank took two-host put latency
 * from 18 to 150-250 us (issue 13).
 */
#define USB4_UDP_TIMER_CLOCK_EVERY	8

/* Each rail's socket in turn; zone writes move datagrams of the batch of
 * the one being polled (rx_sock) out of their way. */
static int poll_rails(struct usb4_udp_link *l, int budget)
{
	int n = 0;

	for (int i = 0; i < l->rails.count; i++) {
		l->rx_rail = i;
		l->rx_sock = l->rails.rail[i].sock;
		l->rx_timed = false;
		n += usb4_udp_poll(l->rx_sock, place, on_datagram, l, budget);
	}
	l->rx_timed = false;
	l->rx_rail = 0;
	l->rx_sock = l->sock;
	return n;
}

static int udp_poll(struct usb4_link *link, int budget)
{
	struct usb4_udp_link *l = udp_of(link);
	bool owed;
	int n;

	if (!l->count) {
		uint64_t now;

		if (l->idle_clock_skips) {
			l->idle_clock_skips--;
			return 0;
		}
		l->idle_clock_skips = USB4_UDP_IDLE_CLOCK_EVERY - 1;
		now = usb4_now_ns();
		if (now - l->idle_polled_ns < USB4_UDP_IDLE_POLL_NS)
			return 0;
		l->idle_polled_ns = now;
	}
	owed = l->unnoted != NULL;
	l->rx_now = 0;
	n = poll_rails(l, budget < USB4_UDP_POLL_BUDGET ? budget :
							  USB4_UDP_POLL_BUDGET);
	/* The socket first: a datagram waits for no note.  The notes earlier
	 * input left run after the look; a poll that finds none owed leaves
	 * its own input's to the next poll (its completion goes up first). */
	if (owed)
		notes_run(l, true);
	hint_unreachable(l);
	if (n || !l->timer_skips) {	/* input may owe an ack now */
		l->timer_skips = USB4_UDP_TIMER_CLOCK_EVERY - 1;
		/* After input, the time it was taken at (microseconds ago);
		 * else the precise clock only when a deadline may be near:
		 * where it is a system call, every read counts. */
		if (l->rx_now)
			run_timers(l, l->rx_now);
		else if (!usb4_rel_clock_ahead(l->next_due))
			run_timers(l, usb4_now_ns());
	} else {
		l->timer_skips--;
	}
	flush_sends(l, false);
	reap_sessions(l);
	return n;
}

/* ---- sleeping ---- */

static int udp_wait_fd(const struct usb4_link *link)
{
	return usb4_udp_rails_fd(&udp_of_const(link)->rails);
}

static int64_t udp_timer_us(const struct usb4_link *link)
{
	const struct usb4_udp_link *l = udp_of_const(link);
	uint64_t now = usb4_now_ns();

	if (l->next_due == UINT64_MAX)
		return -1;
	return l->next_due <= now ? 0 :
	       (int64_t) ((l->next_due - now + 999) / 1000);
}

/* The socket is level-triggered: nothing to arm.  The timers of input
 * not yet noted count (usb4_core_sleep_begin asks udp_timer_us next). */
static bool udp_sleep_begin(struct usb4_link *link)
{
	notes_run(udp_of(link), false);
	flush_sends(udp_of(link), false);
	return true;
}

static void udp_sleep_end(struct usb4_link *link)
{
	udp_of(link)->idle_clock_skips = 0;
	udp_of(link)->timer_skips = 0;	/* a timer may have woken it */
}

/* ---- landing zones ---- */

static void udp_zone_open(struct usb4_link *link, struct usb4_link_zone *zone)
{
	usb4_udp_zone_open(&udp_of(link)->zones, zone);
}

static void udp_zone_close(struct usb4_link *link, struct usb4_link_zone *zone)
{
	struct usb4_udp_link *l = udp_of(link);

	usb4_udp_zone_close(&l->zones, l->rx_sock, zone);
}

static void udp_zone_write(struct usb4_link *link, struct usb4_link_zone *zone,
			   uint64_t off, const void *src, size_t len)
{
	struct usb4_udp_link *l = udp_of(link);

	usb4_udp_zone_write(&l->zones, l->rx_sock, zone, off, src, len);
}

/* ---- closing ---- */

/* Frames to live peers that rel still has to get acknowledged. */
static bool unacked(const struct usb4_udp_link *l)
{
	for (size_t i = 0; i < l->cap; i++)
		if (l->hash[i] && !usb4_rel_dead(l->hash[i]->rel) &&
		    usb4_rel_unacked(l->hash[i]->rel))
			return true;
	return false;
}

/* Sleeps until a datagram, the next timer or 1 ms. */
static void linger_wait(struct usb4_udp_link *l)
{
	struct pollfd pfd = { .fd = usb4_udp_rails_fd(&l->rails),
			      .events = POLLIN };
	int64_t us = udp_timer_us(&l->base);
	int ms = us < 0 || us > 1000 ? 1 : (int) ((us + 999) / 1000);

	poll(&pfd, 1, ms);
}

/* Like a socket's linger: what a completed send posted still reaches its
 * peer, unless the peer is dead (bounded by the peer timeout). */
static void linger(struct usb4_udp_link *l)
{
	uint64_t deadline = usb4_now_ns() +
		(uint64_t) (usb4_params.peer_timeout_ms + 1000) * 1000000;

	while (unacked(l) && usb4_now_ns() < deadline) {
		udp_poll(&l->base, USB4_UDP_POLL_BUDGET);
		linger_wait(l);
	}
}

/* The sockets' counters, summed over the rails. */
static void sock_stats_sum(const struct usb4_udp_link *l,
			   struct usb4_udp_sock_stats *k)
{
	memset(k, 0, sizeof(*k));
	for (int i = 0; i < l->rails.count; i++) {
		const struct usb4_udp_sock_stats *r =
			usb4_udp_sock_stats(l->rails.rail[i].sock);

		k->sent += r->sent;
		k->received += r->received;
		k->send_again += r->send_again;
		k->evacuated += r->evacuated;
		k->faults_dropped += r->faults_dropped;
		k->faults_duplicated += r->faults_duplicated;
		k->faults_reordered += r->faults_reordered;
		k->faults_corrupted += r->faults_corrupted;
	}
}

/* One line per rail when there are several: a rail is retired when some
 * session's path on it is. */
static void log_rails(const struct usb4_udp_link *l)
{
	bool live[USB4_UDP_RAILS_MAX] = { true, true, true, true };

	if (l->rails.count < 2)
		return;
	for (size_t i = 0; i < l->cap; i++) {
		const struct usb4_udp_paths *p = l->hash[i] ?
						 &l->hash[i]->paths : NULL;

		for (int j = 0; p && j < p->count; j++)
			if (!p->path[j].live)
				live[p->path[j].rail] = false;
	}
	usb4_udp_rails_log(&l->rails, live);
}

/* Send batching (usb4_udp_gso.h), one line per rail that batched. */
static void log_gso(const struct usb4_udp_link *l)
{
	for (int i = 0; i < l->rails.count; i++) {
		const struct usb4_udp_gso_stats *g =
			usb4_udp_sock_gso_stats(l->rails.rail[i].sock);

		if (!g->sends && !g->refused && !g->piecemeal)
			continue;
		USB4_INFO(FI_LOG_EP_DATA, "udp: gso rail %d; gso sends %llu "
			  "gso datagrams %llu gso waits %llu gso piecemeal %llu "
			  "gso lost %llu gso refused %d\n", i,
			  (unsigned long long) g->sends,
			  (unsigned long long) g->datagrams,
			  (unsigned long long) g->waits,
			  (unsigned long long) g->piecemeal,
			  (unsigned long long) g->lost, (int) g->refused);
	}
}

/* What the socket and rel saw, logged at close. */
static void log_stats(const struct usb4_udp_link *l)
{
	struct usb4_udp_sock_stats ks, *k = &ks;
	const struct usb4_udp_offers *o = l->offers;
	struct usb4_rel_stats sum = l->gone;

	sock_stats_sum(l, k);
	log_rails(l);
	log_gso(l);
	for (size_t i = 0; i < l->cap; i++)
		if (l->hash[i])
			stats_add(&sum, usb4_rel_stats(l->hash[i]->rel));
	USB4_INFO(FI_LOG_EP_DATA,
		  "udp: sent %llu received %llu busy %llu; faults dropped %llu "
		  "duplicated %llu reordered %llu corrupted %llu; rel sent %llu "
		  "retransmitted %llu delivered %llu acks %llu dropped: header "
		  "%llu dst %llu src %llu duplicate %llu window %llu "
		  "handshake %llu nobuffer %llu; foreign datagrams %llu; "
		  "version mismatches %llu; not ready %llu; frames copied at "
		  "early release %llu; holes evacuated %llu; sessions %zu; "
		  "auth rejected %llu replayed %llu unauthenticated %llu "
		  "unproven %llu; half-open made %llu evicted %llu expired "
		  "%llu promoted %llu; sessions freed %llu refused %llu; "
		  "impostors %llu; resolves answered %llu; probes sent %llu "
		  "probes answered %llu fins sent %llu fins received %llu; "
		  "unreachable reports %llu hints %llu hints confirmed %llu "
		  "hints refuted %llu\n",
		  (unsigned long long) k->sent, (unsigned long long) k->received,
		  (unsigned long long) k->send_again,
		  (unsigned long long) k->faults_dropped,
		  (unsigned long long) k->faults_duplicated,
		  (unsigned long long) k->faults_reordered,
		  (unsigned long long) k->faults_corrupted,
		  (unsigned long long) sum.sent,
		  (unsigned long long) sum.retransmitted,
		  (unsigned long long) sum.delivered,
		  (unsigned long long) sum.acks_sent,
		  (unsigned long long) sum.dropped[USB4_REL_DROP_BAD_HEADER],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_WRONG_DST],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_WRONG_SRC],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_DUPLICATE],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_OUT_OF_WINDOW],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_NO_HANDSHAKE],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_NO_BUFFER],
		  (unsigned long long) l->stats.foreign,
		  (unsigned long long) l->stats.version_mismatch,
		  (unsigned long long) sum.not_ready,
		  (unsigned long long) l->stats.ref_copies,
		  (unsigned long long) k->evacuated, l->count,
		  (unsigned long long) (l->stats.hello_rejected +
					sum.dropped[USB4_REL_DROP_BAD_TAG]),
		  (unsigned long long) sum.dropped[USB4_REL_DROP_REPLAYED],
		  (unsigned long long) sum.dropped[USB4_REL_DROP_UNAUTHENTICATED],
		  (unsigned long long) (l->stats.unproven +
					sum.dropped[USB4_REL_DROP_NO_PROOF]),
		  (unsigned long long) o->made, (unsigned long long) o->evicted,
		  (unsigned long long) o->expired,
		  (unsigned long long) o->promoted,
		  (unsigned long long) l->stats.sessions_freed,
		  (unsigned long long) l->stats.sessions_refused,
		  (unsigned long long) l->stats.impostors,
		  (unsigned long long) l->stats.resolves,
		  (unsigned long long) sum.ka.probes_sent,
		  (unsigned long long) sum.ka.probes_answered,
		  (unsigned long long) sum.fins_sent,
		  (unsigned long long) sum.fins_received,
		  (unsigned long long) l->stats.unreachable,
		  (unsigned long long) sum.ka.hints,
		  (unsigned long long) sum.ka.hints_confirmed,
		  (unsigned long long) sum.ka.hints_refuted);
	/* A line of its own: what congestion control did (rel_cc). */
	USB4_INFO(FI_LOG_EP_DATA, "udp: cc_loss_cuts %llu cc_timeout_cuts "
		  "%llu cc_delay_cuts %llu (congestion control %s)\n",
		  (unsigned long long) sum.cc_cuts_loss,
		  (unsigned long long) sum.cc_cuts_timeout,
		  (unsigned long long) sum.cc_cuts_delay,
		  usb4_params.cc ? "on" : "off");
	USB4_INFO(FI_LOG_EP_DATA, "udp: fragments sent %llu fragments "
		  "received %llu bad fragments %llu; path shrinks %llu "
		  "raises %llu\n",
		  (unsigned long long) sum.frag_sent,
		  (unsigned long long) sum.frag_received,
		  (unsigned long long) sum.dropped[USB4_REL_DROP_BAD_FRAGMENT],
		  (unsigned long long) sum.path_shrinks,
		  (unsigned long long) sum.path_raises);
}

/* Close handshake: live peers that understand it hear that we are gone
 * (twice, against a loss; a FIN lost both times is found by their probes
 * or our kernel's port unreachable), so none waits for us. */
static void send_fins(struct usb4_udp_link *l)
{
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < l->cap; i++) {
			struct usb4_udp_session *s = l->hash[i];
			struct usb4_rel_io io;

			if (!s)
				continue;
			io = rel_io(s, usb4_now_ns());
			usb4_rel_fin(s->rel, &io);
		}
	}
	flush_sends(l, false);
}

/* Peers that sent us frames linger until they hear we have them. */
static void ack_all(struct usb4_udp_link *l)
{
	for (size_t i = 0; i < l->cap; i++) {
		struct usb4_udp_session *s = l->hash[i];
		struct usb4_rel_io io;

		if (!s)
			continue;
		io = rel_io(s, usb4_now_ns());
		usb4_rel_ack_now(s->rel, &io);
	}
	flush_sends(l, false);
}

static void udp_close(struct usb4_link *link)
{
	struct usb4_udp_link *l = udp_of(link);

	/* From here on nothing reaches the core: it is gone. */
	link->sink.frame = NULL;
	link->sink.peer_down = NULL;
	ack_all(l);
	linger(l);
	send_fins(l);
	log_stats(l);
	for (size_t i = 0; i < l->cap; i++) {
		if (!l->hash[i])
			continue;
		usb4_rel_peer_close(l->hash[i]->rel);
		free(l->hash[i]);
	}
	free(l->hash);
	free(l->offers);
	usb4_auth_job_clear(&l->job);
	usb4_rel_pool_close(l->pool);
	usb4_udp_rails_close(&l->rails);
	free(l->linear);
	free(l);
}

const struct usb4_link_ops usb4_udp_link_ops = {
	.name = "udp",
	.caps = 0,
	.other_hosts = true,
	.available = udp_available,
	.reaches = udp_reaches,
	.dest_open = udp_dest_open,
	.dest_close = udp_dest_close,
	.dest_eq = udp_dest_eq,
	.resolve_start = usb4_udp_resolve_start,
	.resolve_poll = usb4_udp_resolve_poll,
	.resolve_fd = usb4_udp_resolve_fd,
	.resolve_close = usb4_udp_resolve_close,
	.open = udp_open,
	.close = udp_close,
	.addr = udp_addr,
	.frame_max = udp_frame_max,
	.post = udp_post,
	.post_ref = udp_post_ref,
	.release = udp_release,
	.mark = udp_mark,
	.settled = udp_settled,
	.poll = udp_poll,
	.peer_state = udp_peer_state,
	.dest_of = udp_dest_of,
	.dest_features = udp_dest_features,
	.wait_fd = udp_wait_fd,
	.timer_us = udp_timer_us,
	.sleep_begin = udp_sleep_begin,
	.sleep_end = udp_sleep_end,
	.zone_open = udp_zone_open,
	.zone_close = udp_zone_close,
	.zone_write = udp_zone_write,
};
