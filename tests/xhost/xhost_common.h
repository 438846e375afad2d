/*
 * What the cross-host test programs (usb4_xpeer, usb4_xmulti, usb4_xdriver)
 * share: the clock, dying with a message, checking fi_* calls, opening the
 * fabric, domain and endpoint, a watchdog.
 * Each program sets xhost_prog (its name) and, if it has one, xhost_role.
 */
#ifndef XHOST_COMMON_H
#define XHOST_COMMON_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

static const char *xhost_prog = "xhost";
static const char *xhost_role = "";

static inline double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static inline _Noreturn void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s%s%s: ", xhost_prog, *xhost_role ? " " : "",
		xhost_role);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* Every fi_* call that returns 0 or -FI_E*. */
#define CHECK(call) do {						\
	int _r = (int) (call);						\
	if (_r)								\
		die(2, "%s:%d %s = %d (%s)", __FILE__, __LINE__, #call,	\
		    _r, fi_strerror(-_r));				\
} while (0)

/*
 * Keys: drawn by the provider (FI_MR_PROV_KEY), or, with XHOST_USER_KEYS=1
 * in the environment, chosen here (1, 2, ...): the provider serves a peer
 * it has not inserted only on keys it drew, so tests of that refusal use
 * chosen keys.
 */
static inline bool xhost_user_keys(void)
{
	const char *v = getenv("XHOST_USER_KEYS");

	return v && *v == '1';
}

/* The requested_key of the next fi_mr_reg (ignored with drawn keys). */
static inline uint64_t xhost_next_key(void)
{
	static uint64_t next = 0x1000;

	return next++;
}

/* The usb4 fabric and a domain for RDM endpoints with these caps;
 * FI_THREAD_UNSPEC keeps the provider's threading. */
static inline void xhost_domain_open(uint64_t caps,
				     enum fi_threading threading,
				     struct fi_info **info,
				     struct fid_fabric **fabric,
				     struct fid_domain **domain)
{
	struct fi_info *hints = fi_allocinfo();

	if (!hints)
		die(2, "fi_allocinfo failed");
	hints->ep_attr->type = FI_EP_RDM;
	hints->caps = caps;
	hints->domain_attr->threading = threading;
	hints->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				      (xhost_user_keys() ? 0 : FI_MR_PROV_KEY);
	hints->fabric_attr->prov_name = strdup("usb4");
	CHECK(fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, hints, info));
	fi_freeinfo(hints);
	CHECK(fi_fabric((*info)->fabric_attr, fabric, NULL));
	CHECK(fi_domain(*fabric, *info, domain, NULL));
}

static inline void xhost_av_open(struct fid_domain *domain, struct fid_av **av)
{
	struct fi_av_attr av_attr = { .type = FI_AV_TABLE };

	CHECK(fi_av_open(domain, &av_attr, av, NULL));
}

/* An endpoint with a tagged CQ of its own, bound to av and the CQ, not
 * enabled yet (the caller may bind more first). */
static inline void xhost_ep_open(struct fid_domain *domain,
				 struct fi_info *info, struct fid_av *av,
				 struct fid_cq **cq, struct fid_ep **ep)
{
	struct fi_cq_attr cq_attr = { .format = FI_CQ_FORMAT_TAGGED };

	CHECK(fi_cq_open(domain, &cq_attr, cq, NULL));
	CHECK(fi_endpoint(domain, info, ep, NULL));
	CHECK(fi_ep_bind(*ep, &av->fid, 0));
	CHECK(fi_ep_bind(*ep, &(*cq)->fid, FI_TRANSMIT | FI_RECV));
}

static inline void xhost_on_alarm(int sig)
{
	static const char msg[] = ": watchdog fired, giving up\n";

	(void) sig;
	(void) !write(2, xhost_prog, strlen(xhost_prog));
	(void) !write(2, msg, sizeof(msg) - 1);
	_exit(124);
}

/* Exits with 124 after seconds, whatever the program is doing. */
static inline void xhost_watchdog(unsigned seconds)
{
	signal(SIGALRM, xhost_on_alarm);
	alarm(seconds);
}

#endif /* XHOST_COMMON_H */
