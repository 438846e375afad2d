/*
 * The fake link (usb4_link_fake.h): in-memory inboxes, a registry of open
 * links by endpoint id, an eventfd per link to sleep on.
 *
 * Locking: registry_lock guards the registry list and keeps every link in
 * it alive; a link's `lock` guards its inbox (q, head, count).  Order:
 * registry_lock, then an inbox lock.  A post holds both while it queues, so
 * a link that close() took out of the registry is touched by nobody.  The
 * rest of a link (contacts) is its owner's: the caller serialises calls on
 * one link.  No lock is held while the sink is called.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "usb4_link_fake.h"
#include "../../prov_usb4/src/wire.h"

/* One queued frame, copied at post. */
struct fake_frame {
	uint64_t from;		/* the posting link's ep_id */
	size_t len;
	unsigned char data[];
};

/* A dest names its peer only: posts look the peer up. */
struct usb4_link_dest {
	uint64_t id;
};

/* A peer this link knows: posted to, or heard from. */
struct fake_contact {
	uint64_t id;
	bool watched;		/* has a dest to it: report its death */
	bool heard;		/* it posted to us: dest_of answers */
	bool down_reported;
	struct usb4_link_dest *back;	/* dest_of's, owned; NULL until asked */
};

struct fake_link {
	struct usb4_link base;
	uint64_t id;
	int efd;			/* wait_fd: an eventfd */
	struct fake_link *next;		/* registry; registry_lock */
	pthread_mutex_t lock;		/* guards q, head, count */
	struct fake_frame *q[USB4_FAKE_QUEUE_FRAMES];
	unsigned head, count;
	struct fake_contact *contacts;	/* owner only */
	size_t ncontacts;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_link *registry;
static size_t registry_count;

static struct fake_link *fake_of(struct usb4_link *link)
{
	return usb4_container_of(link, struct fake_link, base);
}

static const struct fake_link *fake_of_const(const struct usb4_link *link)
{
	return usb4_container_of(link, struct fake_link, base);
}

/* ---- the registry ---- */

/* The open link with this id; the caller holds registry_lock. */
static struct fake_link *registry_find(uint64_t id)
{
	for (struct fake_link *l = registry; l; l = l->next)
		if (l->id == id)
			return l;
	return NULL;
}

static bool registry_has(uint64_t id)
{
	bool found;

	pthread_mutex_lock(&registry_lock);
	found = registry_find(id) != NULL;
	pthread_mutex_unlock(&registry_lock);
	return found;
}

static void wake(const struct fake_link *l)
{
	uint64_t one = 1;

	if (write(l->efd, &one, sizeof(one)) < 0)
		return;	/* the counter is saturated: readable anyway */
}

size_t usb4_fake_open_count(void)
{
	size_t n;

	pthread_mutex_lock(&registry_lock);
	n = registry_count;
	pthread_mutex_unlock(&registry_lock);
	return n;
}

/* ---- contacts ---- */

static struct fake_contact *contact_get(struct fake_link *l, uint64_t id)
{
	struct fake_contact *grown;

	for (size_t i = 0; i < l->ncontacts; i++)
		if (l->contacts[i].id == id)
			return &l->contacts[i];
	grown = realloc(l->contacts, (l->ncontacts + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	l->contacts = grown;
	grown[l->ncontacts] = (struct fake_contact) { .id = id };
	return &grown[l->ncontacts++];
}

/* Peers with a dest from us that closed, not reported yet. */
static bool deaths_pending(const struct fake_link *l)
{
	for (size_t i = 0; i < l->ncontacts; i++)
		if (l->contacts[i].watched && !l->contacts[i].down_reported &&
		    !registry_has(l->contacts[i].id))
			return true;
	return false;
}

static void report_deaths(struct fake_link *l)
{
	for (size_t i = 0; i < l->ncontacts; i++) {
		struct fake_contact *c = &l->contacts[i];

		if (!c->watched || c->down_reported || registry_has(c->id))
			continue;
		c->down_reported = true;
		if (l->base.sink.peer_down)
			l->base.sink.peer_down(l->base.sink.ctx, &l->base, c->id,
					       -FI_EHOSTUNREACH);
	}
}

/* ---- a kind of link ---- */

static bool fake_available(void)
{
	return true;
}

static bool fake_reaches(const struct usb4_wire_addr *a, uint64_t host_id)
{
	return a->udp_family == USB4_FAKE_FAMILY &&
	       !memcmp(a->udp_ip, USB4_FAKE_TAG, strlen(USB4_FAKE_TAG));
}

static int fake_dest_open(const struct usb4_wire_addr *a,
			  struct usb4_link_dest **destp)
{
	struct usb4_link_dest *dest;

	if (!fake_reaches(a, 0))
		return -FI_EINVAL;
	if (!registry_has(le64toh(a->ep_id)))
		return -FI_EHOSTUNREACH;
	dest = calloc(1, sizeof(*dest));
	if (!dest)
		return -FI_ENOMEM;
	dest->id = le64toh(a->ep_id);
	*destp = dest;
	return 0;
}

static void fake_dest_close(struct usb4_link_dest *dest)
{
	free(dest);
}

/* ---- the link ---- */

static int fake_open(const struct usb4_link_cfg *cfg, struct usb4_link **linkp)
{
	struct fake_link *l;

	if (!cfg->ep_id)
		return -FI_EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -FI_ENOMEM;
	l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->efd < 0) {
		free(l);
		return -FI_ENOMEM;
	}
	l->base.ops = &usb4_fake_link_ops;
	l->base.sink = cfg->sink;
	l->id = cfg->ep_id;
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_lock(&registry_lock);
	if (registry_find(l->id)) {
		pthread_mutex_unlock(&registry_lock);
		goto err_destroy;
	}
	l->next = registry;
	registry = l;
	registry_count++;
	pthread_mutex_unlock(&registry_lock);
	*linkp = &l->base;
	return 0;

err_destroy:
	pthread_mutex_destroy(&l->lock);
	close(l->efd);
	free(l);
	return -FI_EADDRINUSE;
}

/* Takes l out of the registry and wakes every other link: their next poll
 * reports l down. */
static void registry_remove(struct fake_link *l)
{
	pthread_mutex_lock(&registry_lock);
	for (struct fake_link **p = &registry; *p; p = &(*p)->next) {
		if (*p == l) {
			*p = l->next;
			registry_count--;
			break;
		}
	}
	for (struct fake_link *o = registry; o; o = o->next)
		wake(o);
	pthread_mutex_unlock(&registry_lock);
}

/* Nothing lingers: what was posted to peers is in their inboxes already. */
static void fake_close(struct usb4_link *link)
{
	struct fake_link *l = fake_of(link);

	registry_remove(l);
	for (unsigned i = 0; i < l->count; i++)
		free(l->q[(l->head + i) % USB4_FAKE_QUEUE_FRAMES]);
	for (size_t i = 0; i < l->ncontacts; i++)
		free(l->contacts[i].back);
	free(l->contacts);
	pthread_mutex_destroy(&l->lock);
	close(l->efd);
	free(l);
}

static void fake_addr(const struct usb4_link *link, struct usb4_wire_addr *a)
{
	a->udp_family = USB4_FAKE_FAMILY;
	a->udp_port = 0;
	memset(a->udp_ip, 0, sizeof(a->udp_ip));
	memcpy(a->udp_ip, USB4_FAKE_TAG, strlen(USB4_FAKE_TAG));
}

static size_t fake_frame_max(const struct usb4_link *link,
			     const struct usb4_link_dest *dest)
{
	return USB4_FAKE_FRAME_MAX;
}

/* A copy of the frame gathered from iov; NULL when too large or no
 * memory (*err says which). */
static struct fake_frame *frame_copy(uint64_t from, const struct iovec *iov,
				     int count, int *err)
{
	struct fake_frame *f;
	size_t len = 0;

	for (int i = 0; i < count; i++) {
		if (iov[i].iov_len > USB4_FAKE_FRAME_MAX - len) {
			*err = -FI_EMSGSIZE;
			return NULL;
		}
		len += iov[i].iov_len;
	}
	f = malloc(sizeof(*f) + len);
	if (!f) {
		*err = -FI_EAGAIN;
		return NULL;
	}
	f->from = from;
	f->len = 0;
	for (int i = 0; i < count; i++) {
		memcpy(f->data + f->len, iov[i].iov_base, iov[i].iov_len);
		f->len += iov[i].iov_len;
	}
	return f;
}

/* Queues f at the peer: 0, -FI_EAGAIN (inbox full), -FI_EHOSTUNREACH. */
static int inbox_put(uint64_t peer_id, struct fake_frame *f)
{
	struct fake_link *peer;
	int ret = 0;

	pthread_mutex_lock(&registry_lock);
	peer = registry_find(peer_id);
	if (!peer) {
		ret = -FI_EHOSTUNREACH;
		goto out_unlock;
	}
	pthread_mutex_lock(&peer->lock);
	if (peer->count == USB4_FAKE_QUEUE_FRAMES) {
		ret = -FI_EAGAIN;
	} else {
		peer->q[(peer->head + peer->count) % USB4_FAKE_QUEUE_FRAMES] = f;
		peer->count++;
	}
	pthread_mutex_unlock(&peer->lock);
	if (!ret)
		wake(peer);
out_unlock:
	pthread_mutex_unlock(&registry_lock);
	return ret;
}

static int fake_post(struct usb4_link *link, struct usb4_link_dest *dest,
		     const struct iovec *iov, int count)
{
	struct fake_link *l = fake_of(link);
	struct fake_contact *c = contact_get(l, dest->id);
	struct fake_frame *f;
	int ret = 0;

	if (!c)
		return -FI_EAGAIN;
	c->watched = true;
	f = frame_copy(l->id, iov, count, &ret);
	if (!f)
		return ret;
	ret = inbox_put(dest->id, f);
	if (ret)
		free(f);
	return ret;
}

/* The frame at the head of our inbox, or NULL. */
static struct fake_frame *inbox_peek(struct fake_link *l)
{
	struct fake_frame *f;

	pthread_mutex_lock(&l->lock);
	f = l->count ? l->q[l->head] : NULL;
	pthread_mutex_unlock(&l->lock);
	return f;
}

static void inbox_pop(struct fake_link *l)
{
	pthread_mutex_lock(&l->lock);
	free(l->q[l->head]);
	l->head = (l->head + 1) % USB4_FAKE_QUEUE_FRAMES;
	l->count--;
	pthread_mutex_unlock(&l->lock);
}

static int fake_poll(struct usb4_link *link, int budget)
{
	struct fake_link *l = fake_of(link);
	int taken;

	report_deaths(l);
	for (taken = 0; taken < budget; taken++) {
		struct fake_frame *f = inbox_peek(l);
		struct fake_contact *c;
		struct iovec iov;

		if (!f)
			break;
		c = contact_get(l, f->from);
		if (c)
			c->heard = true;
		iov = (struct iovec) { .iov_base = f->data, .iov_len = f->len };
		if (link->sink.frame(link->sink.ctx, link, f->from, &iov, 1) ==
		    -FI_EAGAIN)
			break;	/* offered again on the next poll */
		inbox_pop(l);
	}
	return taken;
}

static int fake_peer_state(struct usb4_link *link, struct usb4_link_dest *dest)
{
	return registry_has(dest->id) ? 0 : -FI_EHOSTUNREACH;
}

static struct usb4_link_dest *fake_dest_of(struct usb4_link *link, uint64_t id)
{
	struct fake_link *l = fake_of(link);
	struct fake_contact *c;

	for (size_t i = 0; i < l->ncontacts; i++) {
		c = &l->contacts[i];
		if (c->id != id || !c->heard)
			continue;
		if (!c->back && (c->back = calloc(1, sizeof(*c->back))))
			c->back->id = id;
		if (c->back)
			c->watched = true;
		return c->back;
	}
	return NULL;
}

/* ---- sleeping ---- */

static int fake_wait_fd(const struct usb4_link *link)
{
	return fake_of_const(link)->efd;
}

static int64_t fake_timer_us(const struct usb4_link *link)
{
	return -1;
}

/* Drains the eventfd first: a post after the check below writes it again. */
static bool fake_sleep_begin(struct usb4_link *link)
{
	struct fake_link *l = fake_of(link);
	uint64_t stale;

	if (read(l->efd, &stale, sizeof(stale)) < 0)
		stale = 0;	/* nothing was signalled */
	return !inbox_peek(l) && !deaths_pending(l);
}

static void fake_sleep_end(struct usb4_link *link)
{
}

/* Optional slots (post_ref, release, mark, settled, bulk and one-sided
 * access, landing zones) are left NULL: caps is 0. */
const struct usb4_link_ops usb4_fake_link_ops = {
	.name = "fake",
	.caps = 0,
	.other_hosts = false,
	.available = fake_available,
	.reaches = fake_reaches,
	.dest_open = fake_dest_open,
	.dest_close = fake_dest_close,
	.open = fake_open,
	.close = fake_close,
	.addr = fake_addr,
	.frame_max = fake_frame_max,
	.post = fake_post,
	.poll = fake_poll,
	.peer_state = fake_peer_state,
	.dest_of = fake_dest_of,
	.wait_fd = fake_wait_fd,
	.timer_us = fake_timer_us,
	.sleep_begin = fake_sleep_begin,
	.sleep_end = fake_sleep_end,
};
