/*
 * Who is bound at IP:port: the RESOLVE query and answer of the udp link
 * (struct usb4_wire_resolve, wire.h).  An application that names its peer
 * by node and service holds an unresolved address; inserting it asks the
 * endpoint bound there for its whole address (ids, shm part), after which
 * everything is as if it had been exchanged out of band.
 *
 * The responder (usb4_udp_resolve_answer) answers from its endpoint's
 * socket and keeps nothing; its answer is exactly as long as the query.
 * The asker (usb4_udp_resolve_*) uses a socket of its own, so no endpoint
 * is needed to ask; it asks again with a doubling interval until the peer
 * timeout (FI_USB4_PEER_TIMEOUT) has passed.  With a job key an answer
 * counts only with a valid tag under it: a host without the key cannot
 * send the asker somewhere else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "usb4_udp.h"
#include "usb4_rel_auth.h"
#include "../wire.h"

#define USB4_RESOLVE_FIRST_NS	(20ull * 1000 * 1000)	/* first retry */
#define USB4_RESOLVE_MAX_NS	(1000ull * 1000 * 1000)	/* retry interval cap */

struct usb4_link_resolver {
	int fd;
	struct sockaddr_storage to;
	socklen_t to_len;
	struct usb4_wire_resolve query;
	bool keyed;
	struct usb4_auth_job job;
	uint64_t deadline, next_ns, interval_ns;
	uint64_t sent, unauthenticated, malformed;
};

/* What an answer's tag covers: its bytes before the tag field. */
static struct iovec tagged_part(const struct usb4_wire_resolve *m)
{
	return (struct iovec) { .iov_base = (void *) m,
				.iov_len = USB4_RESOLVE_TAGGED_LEN };
}

/* A datagram of exactly one resolve message, put together from pieces. */
static bool gather(const struct iovec *dgram, int count,
		   struct usb4_wire_resolve *m)
{
	size_t len = 0;

	for (int i = 0; i < count; i++) {
		if (dgram[i].iov_len > sizeof(*m) - len)
			return false;
		memcpy((char *) m + len, dgram[i].iov_base, dgram[i].iov_len);
		len += dgram[i].iov_len;
	}
	return len == sizeof(*m);
}

/* ---- the responder ---- */

bool usb4_udp_resolve_is_query(const struct iovec *dgram)
{
	return dgram[0].iov_len >= 2 &&
	       ((const uint8_t *) dgram[0].iov_base)[0] == USB4_WIRE_VERSION &&
	       ((const uint8_t *) dgram[0].iov_base)[1] == USB4_RESOLVE_QUERY;
}

bool usb4_udp_resolve_answer(struct usb4_udp_sock *sock,
			     const struct usb4_auth_job *job,
			     const struct usb4_wire_addr *self,
			     const struct usb4_udp_addr *from,
			     const struct iovec *dgram, int count)
{
	struct usb4_wire_resolve m;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };

	if (!usb4_udp_resolve_is_query(dgram))
		return false;
	/* A query of another length is not answered: the answer would not
	 * be the same size. */
	if (!gather(dgram, count, &m))
		return true;
	m.type = USB4_RESOLVE_ANSWER;
	m.flags = htole16(job ? USB4_REL_F_AUTH : 0);
	m.reserved = 0;
	m.addr = *self;
	memset(m.tag, 0, sizeof(m.tag));
	if (job) {
		struct iovec tagged = tagged_part(&m);

		usb4_auth_hs_tag(job, &tagged, 1, m.tag);
	}
	usb4_udp_send(sock, from, &iov, 1);
	return true;
}

/* ---- the asker ---- */

int usb4_udp_resolve_start(const struct usb4_wire_addr *addr,
			   const void *auth_key, size_t auth_key_len,
			   struct usb4_link_resolver **rp)
{
	struct usb4_link_resolver *r;
	struct usb4_udp_addr to;
	int ret;

	if ((addr->udp_family != 4 && addr->udp_family != 6) ||
	    !le16toh(addr->udp_port))
		return -FI_EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -FI_ENOMEM;
	if (auth_key_len) {
		ret = usb4_auth_job_init(&r->job, auth_key, auth_key_len);
		if (ret)
			goto err_free;
		r->keyed = true;
	}
	usb4_udp_addr_of(addr, &to);
	r->to_len = usb4_udp_sockaddr(&to, &r->to);
	r->fd = socket(r->to.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
		       SOCK_CLOEXEC, 0);
	if (r->fd < 0) {
		ret = -errno;
		goto err_free;
	}
	r->query.version = USB4_WIRE_VERSION;
	r->query.type = USB4_RESOLVE_QUERY;
	_Static_assert(sizeof(r->query.nonce) == USB4_AUTH_NONCE_LEN,
		       "a RESOLVE nonce is a handshake nonce");
	usb4_auth_nonce(r->query.nonce);
	r->deadline = usb4_now_ns() +
		      (uint64_t) usb4_params.peer_timeout_ms * 1000000;
	r->interval_ns = USB4_RESOLVE_FIRST_NS;
	*rp = r;
	return 0;

err_free:
	usb4_auth_job_clear(&r->job);
	free(r);
	return ret;
}

/* Whether m answers our query: our nonce, a whole address, and with a job
 * key a valid tag (else counted). */
static bool answer_ok(struct usb4_link_resolver *r,
		      const struct usb4_wire_resolve *m)
{
	struct iovec tagged = tagged_part(m);

	if (m->version != USB4_WIRE_VERSION || m->type != USB4_RESOLVE_ANSWER ||
	    memcmp(m->nonce, r->query.nonce, sizeof(m->nonce)) ||
	    !usb4_wire_addr_ok(&m->addr) || usb4_wire_addr_unresolved(&m->addr) ||
	    !m->addr.ep_id) {
		r->malformed++;
		return false;
	}
	if (!r->keyed)
		return true;
	if (!(le16toh(m->flags) & USB4_REL_F_AUTH)) {
		r->unauthenticated++;
		return false;
	}
	if (!usb4_auth_hs_check(&r->job, &tagged, 1, m->tag)) {
		r->unauthenticated++;
		return false;
	}
	return true;
}

/* Takes what arrived: 0 with *out set on a good answer. */
static int take_answers(struct usb4_link_resolver *r, struct usb4_wire_addr *out)
{
	struct usb4_wire_resolve m;
	ssize_t n;

	while ((n = recv(r->fd, &m, sizeof(m), MSG_DONTWAIT | MSG_TRUNC)) >= 0) {
		if (n != (ssize_t) sizeof(m)) {
			r->malformed++;
			continue;
		}
		if (answer_ok(r, &m)) {
			*out = m.addr;
			return 0;
		}
	}
	return -FI_EAGAIN;
}

int usb4_udp_resolve_poll(struct usb4_link_resolver *r,
			  struct usb4_wire_addr *out)
{
	uint64_t now;

	if (!take_answers(r, out))
		return 0;
	now = usb4_now_ns();
	/* The deadline first: a retry due after it must not stretch the wait
	 * past the peer timeout. */
	if (now >= r->deadline) {
		USB4_WARN(FI_LOG_AV, "nobody at the address answered %llu "
			  "RESOLVE queries (%llu answers without a valid job "
			  "key tag, %llu malformed)\n",
			  (unsigned long long) r->sent,
			  (unsigned long long) r->unauthenticated,
			  (unsigned long long) r->malformed);
		return -FI_EHOSTUNREACH;
	}
	if (now < r->next_ns)
		return -FI_EAGAIN;
	/* A full socket buffer or an unreachable route: asked again later. */
	if (sendto(r->fd, &r->query, sizeof(r->query), 0, (void *) &r->to,
		   r->to_len) == (ssize_t) sizeof(r->query))
		r->sent++;
	r->next_ns = now + r->interval_ns;
	if (r->interval_ns < USB4_RESOLVE_MAX_NS)
		r->interval_ns *= 2;
	return -FI_EAGAIN;
}

int usb4_udp_resolve_fd(const struct usb4_link_resolver *r)
{
	return r->fd;
}

void usb4_udp_resolve_close(struct usb4_link_resolver *r)
{
	if (!r)
		return;
	close(r->fd);
	usb4_auth_job_clear(&r->job);
	free(r);
}
