/*
 * Resolving addresses named by node and service: each unresolved address
 * is asked about through the first kind of link that can ask (its
 * resolve_* ops; the bytes are in wire.h), all of them at once, until each is answered or
 * given up.  The core only drives the questions; what goes on the wire is
 * the link's.
 */
#include <stdlib.h>

#include "usb4_proto.h"

/* Sleep between looks while endpoints of this process may have to answer:
 * short, and in the kernel (poll), never a spin. */
#define USB4_RESOLVE_SLICE_MS	1
#define USB4_RESOLVE_IDLE_MS	10
/* Questions watched per poll(2); more wait for the next slice. */
#define USB4_RESOLVE_FDS	64

static const struct usb4_link_ops *resolving_kind(void)
{
	for (size_t k = 0; k < usb4_link_kind_count; k++)
		if (usb4_link_kinds[k]->resolve_start)
			return usb4_link_kinds[k];
	return NULL;
}

/* Starts a question for every entry that needs one; returns how many. */
static size_t start_all(const struct usb4_link_ops *ops,
			struct usb4_wire_addr *addrs, int *errs, size_t count,
			const struct usb4_core_key *key,
			struct usb4_link_resolver **rs)
{
	size_t started = 0;

	for (size_t i = 0; i < count; i++) {
		rs[i] = NULL;
		if (errs[i] || !usb4_wire_addr_unresolved(&addrs[i]))
			continue;
		if (!ops) {
			errs[i] = -FI_EHOSTUNREACH;
			continue;
		}
		errs[i] = ops->resolve_start(&addrs[i], key ? key->bytes : NULL,
					     key ? key->len : 0, &rs[i]);
		started += !errs[i];
	}
	return started;
}

/* One look at every open question; returns how many are still open. */
static size_t poll_all(const struct usb4_link_ops *ops,
		       struct usb4_wire_addr *addrs, int *errs, size_t count,
		       struct usb4_link_resolver **rs)
{
	size_t open = 0;

	for (size_t i = 0; i < count; i++) {
		int ret;

		if (!rs[i])
			continue;
		ret = ops->resolve_poll(rs[i], &addrs[i]);
		if (ret == -FI_EAGAIN) {
			open++;
			continue;
		}
		errs[i] = ret;
		ops->resolve_close(rs[i]);
		rs[i] = NULL;
	}
	return open;
}

/* Sleeps until an answer may have come, or a slice passed. */
static void wait_answers(const struct usb4_link_ops *ops,
			 struct usb4_link_resolver **rs, size_t count,
			 int timeout_ms)
{
	struct pollfd fds[USB4_RESOLVE_FDS];
	int n = 0;

	for (size_t i = 0; i < count && n < USB4_RESOLVE_FDS; i++)
		if (rs[i])
			fds[n++] = (struct pollfd) {
				.fd = ops->resolve_fd(rs[i]), .events = POLLIN };
	poll(fds, n, timeout_ms);
}

void usb4_core_resolve(struct usb4_wire_addr *addrs, int *errs, size_t count,
		       const struct usb4_core_key *key,
		       void (*progress)(void *arg), void *arg)
{
	const struct usb4_link_ops *ops = resolving_kind();
	struct usb4_link_resolver **rs;

	if (!count)
		return;
	rs = calloc(count, sizeof(*rs));
	if (!rs) {
		for (size_t i = 0; i < count; i++)
			if (!errs[i] && usb4_wire_addr_unresolved(&addrs[i]))
				errs[i] = -FI_ENOMEM;
		return;
	}
	if (start_all(ops, addrs, errs, count, key && key->len ? key : NULL,
		      rs)) {
		while (poll_all(ops, addrs, errs, count, rs)) {
			if (progress)
				progress(arg);
			wait_answers(ops, rs, count, progress ?
				     USB4_RESOLVE_SLICE_MS : USB4_RESOLVE_IDLE_MS);
		}
	}
	free(rs);
}
