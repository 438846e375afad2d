/*
 * A udp link with no session costs a same-host exchange nothing: two
 * endpoints of one process on one host (shm link) with an interface to
 * other hosts named (FI_USB4_IFACE=lo, as MPI jobs on one host run: they ask
 * FI_REMOTE_COMM) ping-pong ROUNDS messages; the udp socket must be looked at
 * far fewer times than there are progress calls.  Each look is a recvmmsg
 * system call, or a recvfrom when it asks for one datagram (an idle look
 * does), which this program counts by defining both itself (the provider's
 * calls bind to the executable's definitions first) and passing them on to
 * the C library's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <rdma/fi_tagged.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define ROUNDS		5000
/* An idle link looks at most once per USB4_UDP_IDLE_POLL_NS (50 us); the
 * check allows twice that rate for each endpoint, and fewer looks than
 * round trips (a count: a loaded host stretches the wall time, and with it
 * the rate's allowance, but not the looks).  Before: one look per progress
 * call, at least one per endpoint and round trip. */
#define LOOK_NS		25000

static atomic_ulong looks;

/* Default visibility (the build hides symbols) and exported (LDFLAGS). */
__attribute__((visibility("default")))
int recvmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags,
	     struct timespec *timeout)
{
	static int (*real)(int, struct mmsghdr *, unsigned int, int,
			   struct timespec *);

	if (!real)
		real = (int (*)(int, struct mmsghdr *, unsigned int, int,
				struct timespec *)) dlsym(RTLD_NEXT, "recvmmsg");
	atomic_fetch_add(&looks, 1);
	return real(fd, msgs, n, flags, timeout);
}

__attribute__((visibility("default")))
ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
		 struct sockaddr *addr, socklen_t *addrlen)
{
	static ssize_t (*real)(int, void *, size_t, int, struct sockaddr *,
			       socklen_t *);

	if (!real)
		real = (ssize_t (*)(int, void *, size_t, int, struct sockaddr *,
				    socklen_t *)) dlsym(RTLD_NEXT, "recvfrom");
	atomic_fetch_add(&looks, 1);
	return real(fd, buf, len, flags, addr, addrlen);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int wait_one(struct fid_cq *cq)
{
	struct fi_cq_data_entry e;
	struct fi_cq_err_entry err;

	return fx_wait(cq, &e, &err);
}

int main(void)
{
	struct fx a = { 0 }, b = { 0 };
	fi_addr_t to_b, to_a;
	uint64_t msg = 0, t0, ns, allowed;
	unsigned long before, seen;

	setenv("FI_USB4_IFACE", "lo", 1);
	CHECK_EQ(fx_open(&a, FI_TAGGED, 0), 0);
	CHECK_EQ(fx_open(&b, FI_TAGGED, 0), 0);
	to_b = fx_insert(&a, b.addr);
	to_a = fx_insert(&b, a.addr);
	CHECK(to_b != FI_ADDR_NOTAVAIL && to_a != FI_ADDR_NOTAVAIL);
	before = atomic_load(&looks);
	t0 = now_ns();
	for (int i = 0; i < ROUNDS && !usb4_test_failures; i++) {
		CHECK_EQ(fi_trecv(b.ep, &msg, sizeof(msg), NULL, to_a, 1, 0, NULL), 0);
		CHECK_EQ(fi_tsend(a.ep, &msg, sizeof(msg), NULL, to_b, 1, NULL), 0);
		CHECK_EQ(wait_one(b.cq), 1);
		CHECK_EQ(wait_one(a.cq), 1);
	}
	ns = now_ns() - t0;
	seen = atomic_load(&looks) - before;
	allowed = 2 * (ns / LOOK_NS + 1);
	printf("# %d same-host round trips in %llu us: %lu looks at the udp "
	       "sockets (allowed %llu)\n", ROUNDS,
	       (unsigned long long) (ns / 1000), seen,
	       (unsigned long long) allowed);
	CHECK(seen <= allowed && seen < ROUNDS);
	fx_close(&a);
	fx_close(&b);
	return usb4_test_done("test_idle_udp");
}
