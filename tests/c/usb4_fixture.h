/*
 * Shared set-up of the C tests that go through libfabric: open the usb4
 * fabric, domain, AV, CQ, counters and one RDM endpoint for given caps and
 * mr_mode; register regions; wait for completions; and a small pipe protocol
 * for tests that fork a target process (hello with its address and regions,
 * then command/reply pairs).  Include after usb4_test.h.
 */
#ifndef USB4_FIXTURE_H
#define USB4_FIXTURE_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_atomic.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "../../prov_usb4/src/wire.h"

#define FX_API		FI_VERSION(1, 17)
/* Open MPI btl ofi's registration mode. */
#define FX_MR_OMPI	(FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY)
/* User keys, 0-based offset addressing. */
#define FX_MR_USER	0
#define FX_ADDR_MAX	64
#define FX_TIMEOUT_MS	5000

/* Counters: our reads and writes, peers' reads and writes of our memory. */
enum { FX_CNTR_RD, FX_CNTR_WR, FX_CNTR_REM_RD, FX_CNTR_REM_WR, FX_CNTRS };

struct fx {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_cntr *cntr[FX_CNTRS];
	struct fid_ep *ep;
	uint64_t mr_mode;
	char addr[FX_ADDR_MAX];
	size_t addrlen;
};

static inline uint64_t fx_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline struct fi_info *fx_hints(uint64_t caps, uint64_t mr_mode)
{
	struct fi_info *h = fi_allocinfo();

	if (!h)
		return NULL;
	h->fabric_attr->prov_name = strdup("usb4");
	h->caps = caps;
	h->ep_attr->type = FI_EP_RDM;
	h->domain_attr->mr_mode = (int) mr_mode;
	h->domain_attr->threading = FI_THREAD_SAFE;
	h->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
	return h;
}

static inline int fx_bind_cntrs(struct fx *f)
{
	static const uint64_t flags[FX_CNTRS] = {
		FI_READ, FI_WRITE, FI_REMOTE_READ, FI_REMOTE_WRITE,
	};
	struct fi_cntr_attr ca = { .events = FI_CNTR_EVENTS_COMP };
	int ret;

	for (int i = 0; i < FX_CNTRS; i++) {
		ret = fi_cntr_open(f->domain, &ca, &f->cntr[i], NULL);
		if (!ret)
			ret = fi_ep_bind(f->ep, &f->cntr[i]->fid, flags[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/* What Open MPI's mtl ofi asks for: tagged messages, one thread per
 * domain, no default op flags. */
static inline struct fi_info *fx_mtl_ofi_hints(void)
{
	struct fi_info *h = fx_hints(FI_TAGGED, 0);

	if (h) {
		h->domain_attr->threading = FI_THREAD_DOMAIN;
		h->tx_attr->op_flags = 0;
	}
	return h;
}

/* Opens everything for hints (fx_hints, edited; freed here) with a CQ of
 * format; returns 0 or the first failing call's code. */
static inline int fx_open_format(struct fx *f, struct fi_info *hints,
				 enum fi_cq_format format)
{
	struct fi_cq_attr cqa = { .format = format, .size = 256 };
	struct fi_av_attr ava = { .type = FI_AV_MAP };
	uint64_t caps = hints ? hints->caps : 0;
	int ret;

	memset(f, 0, sizeof(*f));
	if (!hints)
		return -FI_ENOMEM;
	ret = fi_getinfo(FX_API, NULL, NULL, 0, hints, &f->info);
	fi_freeinfo(hints);
	if (ret)
		return ret;
	f->mr_mode = f->info->domain_attr->mr_mode;
	if ((ret = fi_fabric(f->info->fabric_attr, &f->fabric, NULL)) ||
	    (ret = fi_domain(f->fabric, f->info, &f->domain, NULL)) ||
	    (ret = fi_av_open(f->domain, &ava, &f->av, NULL)) ||
	    (ret = fi_cq_open(f->domain, &cqa, &f->cq, NULL)) ||
	    (ret = fi_endpoint(f->domain, f->info, &f->ep, NULL)) ||
	    (ret = fi_ep_bind(f->ep, &f->av->fid, 0)) ||
	    (ret = fi_ep_bind(f->ep, &f->cq->fid, FI_TRANSMIT | FI_RECV)))
		return ret;
	if ((caps & FI_RMA_EVENT) && (ret = fx_bind_cntrs(f)))
		return ret;
	if ((ret = fi_enable(f->ep)))
		return ret;
	f->addrlen = sizeof(f->addr);
	return fi_getname(&f->ep->fid, f->addr, &f->addrlen);
}

/* Opens everything for hints with a CQ of FI_CQ_FORMAT_DATA. */
static inline int fx_open_hints(struct fx *f, struct fi_info *hints)
{
	return fx_open_format(f, hints, FI_CQ_FORMAT_DATA);
}

/* Opens everything; returns 0 or the first failing call's code. */
static inline int fx_open(struct fx *f, uint64_t caps, uint64_t mr_mode)
{
	return fx_open_hints(f, fx_hints(caps, mr_mode));
}

static inline void fx_close(struct fx *f)
{
	if (f->ep)
		fi_close(&f->ep->fid);
	for (int i = 0; i < FX_CNTRS; i++)
		if (f->cntr[i])
			fi_close(&f->cntr[i]->fid);
	if (f->cq)
		fi_close(&f->cq->fid);
	if (f->av)
		fi_close(&f->av->fid);
	if (f->domain)
		fi_close(&f->domain->fid);
	if (f->fabric)
		fi_close(&f->fabric->fid);
	if (f->info)
		fi_freeinfo(f->info);
	memset(f, 0, sizeof(*f));
}

static inline fi_addr_t fx_insert(struct fx *f, const void *addr)
{
	fi_addr_t fa = FI_ADDR_NOTAVAIL;

	if (fi_av_insert(f->av, addr, 1, &fa, 0, NULL) != 1)
		return FI_ADDR_NOTAVAIL;
	return fa;
}

/* Makes the address of an endpoint of this host name another host, so the
 * provider reaches it by the udp link (over loopback), not by shm. */
static inline void fx_other_host(char *addr)
{
	char *host_id = addr + offsetof(struct usb4_wire_addr, host_id);

	for (int i = 0; i < 8; i++)
		host_id[i] ^= (char) 0x5a;
}

/*
 * Puts a and b in each other's address vector: a's handle for b in *to_b,
 * b's for a in *to_a.  With udp each is told the other is on another host
 * (fx_other_host), so the udp link over loopback carries them.  0, or -1
 * when an insert failed.
 */
static inline int fx_join(struct fx *a, struct fx *b, bool udp,
			  fi_addr_t *to_b, fi_addr_t *to_a)
{
	char addr_a[FX_ADDR_MAX], addr_b[FX_ADDR_MAX];

	memcpy(addr_a, a->addr, sizeof(addr_a));
	memcpy(addr_b, b->addr, sizeof(addr_b));
	if (udp) {
		fx_other_host(addr_a);
		fx_other_host(addr_b);
	}
	*to_b = fx_insert(a, addr_b);
	*to_a = fx_insert(b, addr_a);
	return *to_b != FI_ADDR_NOTAVAIL && *to_a != FI_ADDR_NOTAVAIL ? 0 : -1;
}

/* Registers [buf, buf + len); with user keys, key is the requested key. */
static inline int fx_reg(struct fx *f, void *buf, size_t len, uint64_t access,
			 uint64_t key, struct fid_mr **mr)
{
	return fi_mr_reg(f->domain, buf, len, access, 0, key, 0, mr, NULL);
}

/* The address a peer uses for byte 0 of a region registered at buf. */
static inline uint64_t fx_rma_base(const struct fx *f, const void *buf)
{
	return f->mr_mode & FI_MR_VIRT_ADDR ? (uint64_t) (uintptr_t) buf : 0;
}

/*
 * Waits for one completion on cq, reading `also` (when not NULL) between
 * tries so that its endpoint progresses too (a target that answers only
 * when progressed): 1 with *e filled, 0 with *err filled for an error
 * completion, -FI_ETIMEDOUT when nothing came.
 */
static inline int fx_wait_also(struct fid_cq *cq, struct fid_cq *also,
			       struct fi_cq_data_entry *e,
			       struct fi_cq_err_entry *err)
{
	uint64_t end = fx_now_ms() + FX_TIMEOUT_MS;
	struct fi_cq_data_entry scratch;
	struct fi_cq_err_entry escratch;
	ssize_t ret;

	e = e ? e : &scratch;
	err = err ? err : &escratch;
	do {
		if (also)
			fi_cq_read(also, NULL, 0);
		ret = fi_cq_read(cq, e, 1);
		if (ret == 1)
			return 1;
		if (ret == -FI_EAVAIL) {
			memset(err, 0, sizeof(*err));
			return fi_cq_readerr(cq, err, 0) == 1 ? 0 : -FI_EOTHER;
		}
		if (ret != -FI_EAGAIN)
			return (int) ret;
	} while (fx_now_ms() < end);
	return -FI_ETIMEDOUT;
}

static inline int fx_wait(struct fid_cq *cq, struct fi_cq_data_entry *e,
			  struct fi_cq_err_entry *err)
{
	return fx_wait_also(cq, NULL, e, err);
}

/* a's operation, with b progressing: 1 done, 0 an error completion (in
 * *err when err is given), -1 nothing came in time. */
static inline int fx_wait_op(struct fx *a, struct fx *b,
			     struct fi_cq_err_entry *err)
{
	int ret = fx_wait_also(a->cq, b->cq, NULL, err);

	return ret >= 0 ? ret : -1;
}

/* Nothing more queued (success or error) on cq. */
static inline bool fx_cq_empty(struct fid_cq *cq)
{
	struct fi_cq_data_entry e;

	return fi_cq_read(cq, &e, 1) == -FI_EAGAIN;
}

/* In a child that runs one case per link and mode: the provider's paths
 * (FI_USB4_PORTABLE) and, for udp, loopback with congestion control off
 * (the case gives its addresses another host's id). */
static inline void fx_link_child_env(bool udp, bool portable)
{
	setenv("FI_USB4_PORTABLE", portable ? "1" : "0", 1);
	if (udp) {
		setenv("FI_USB4_IFACE", "lo", 1);
		setenv("FI_USB4_CC", "0", 1);
	}
}

/* Runs run(udp) in a child per link and mode: shm, then udp on loopback,
 * each normally and with FI_USB4_PORTABLE=1 (fx_link_child_env); a child
 * that fails (exit status not 0) is a failure here. */
static inline void fx_each_link_child(int (*run)(bool udp))
{
	for (int i = 0; i < 4; i++) {
		bool udp = i & 1, portable = i & 2;
		int status = -1;
		pid_t pid = usb4_test_fork();

		if (pid == 0) {
			usb4_test_failures = 0;
			fx_link_child_env(udp, portable);
			usb4_test_child_exit(run(udp));
		}
		CHECK(pid > 0);
		waitpid(pid, &status, 0);
		CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "%s%s: the child failed", udp ? "udp" : "shm",
			  portable ? " portable" : "");
	}
}

/* ---- pipe protocol with a forked process ---------------------------- */

#define FX_REGIONS_MAX	8

struct fx_region {
	uint64_t addr;		/* what the initiator passes as address */
	uint64_t key;
	uint64_t len;
};

struct fx_hello {
	char addr[FX_ADDR_MAX];
	uint64_t addrlen;
	uint32_t pid;
	uint32_t nregions;
	struct fx_region region[FX_REGIONS_MAX];
};

struct fx_cmd {
	int32_t op;
	int32_t region;
	uint64_t off, len, arg;
};

struct fx_reply {
	int64_t status;
	uint64_t v[4];
};

static inline int fx_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t) n;
	}
	return 0;
}

static inline int fx_recv_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t) n;
	}
	return 0;
}

/* Waits up to ms for fd to become readable: 1 readable, 0 not yet. */
static inline int fx_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) > 0;
}

/* Sends a command and waits for its reply; status -1000 on a dead peer. */
static inline struct fx_reply fx_call(int fd, int op, int region, uint64_t off,
				      uint64_t len, uint64_t arg)
{
	struct fx_cmd c = { .op = op, .region = region, .off = off,
			    .len = len, .arg = arg };
	struct fx_reply r = { .status = -1000 };

	if (fx_send_all(fd, &c, sizeof(c)) || fx_recv_all(fd, &r, sizeof(r)))
		r.status = -1000;
	return r;
}

/* Reaps a child: its exit status, or -1 if it did not exit normally. */
static inline int fx_reap(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Deterministic byte pattern for data checks: byte i of pattern seed. */
static inline uint8_t fx_pat(uint64_t seed, uint64_t i)
{
	uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull;

	x ^= x >> 29;
	return (uint8_t) (x ^ (x >> 17));
}

/* Fills buf with bytes first .. first + len - 1 of pattern seed. */
static inline void fx_fill(void *buf, size_t len, uint64_t seed,
			   uint64_t first)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = fx_pat(seed, first + i);
}

/* Offset of the first byte that differs from fx_fill's, or len. */
static inline size_t fx_verify(const void *buf, size_t len, uint64_t seed,
			       uint64_t first)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != fx_pat(seed, first + i))
			return i;
	return len;
}

/* FNV-1a over a buffer. */
static inline uint64_t fx_sum(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#endif /* USB4_FIXTURE_H */
