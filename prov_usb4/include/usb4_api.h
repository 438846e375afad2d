/*
 * The libfabric face: one struct per fid class, each embedding its fid first.
 * Thin: validates arguments, takes the domain lock, calls the core.
 */
#ifndef USB4_API_H
#define USB4_API_H

#include <stdatomic.h>

#include <rdma/fi_atomic.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_rma.h>
#include <rdma/fi_tagged.h>

#include "usb4.h"
#include "usb4_core.h"

struct usb4_fabric {
	struct fid_fabric fabric_fid;
	atomic_int ref;
};

/*
 * mr_mode values of API 1.0, still taken alone from later callers; the names
 * (FI_MR_BASIC, FI_MR_SCALABLE) are gone from libfabric 2.x headers.  Basic
 * means provider keys, virtual addresses and allocated memory; scalable
 * means none of those bits.
 */
#define USB4_MR_BASIC		1
#define USB4_MR_SCALABLE	2
#define USB4_MR_OLD_API		FI_VERSION(1, 5)	/* the first with bits */
#define USB4_MR_BASIC_BITS	(FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | \
				 FI_MR_PROV_KEY)
/* The mode bits an mr_mode value stands for. */
uint64_t usb4_mr_mode_bits(uint64_t mr_mode);

/* Whether a hint's mr_mode is in the 1.0 encoding (a value, not bits). */
static inline bool usb4_mr_mode_is_old(uint32_t version, int want)
{
	return FI_VERSION_LT(version, USB4_MR_OLD_API) ||
	       (want & (USB4_MR_BASIC | USB4_MR_SCALABLE));
}

/* What a domain was opened with: a later fi_getinfo naming the domain in
 * its hints is answered with these (usb4_getinfo_shared.c). */
struct usb4_domain_opened {
	enum fi_threading threading;
	uint64_t mr_mode;		/* as fi_domain got it (1.0 values too) */
	uint64_t caps;			/* the info's */
	uint64_t domain_caps;		/* domain_attr's */
	enum fi_resource_mgmt resource_mgmt;
	enum fi_av_type av_type;
	bool auto_progress;		/* FI_PROGRESS_AUTO asked for */
};

struct usb4_progress;	/* usb4_progress.c */

struct usb4_domain {
	struct fid_domain domain_fid;
	struct usb4_fabric *fabric;
	struct usb4_lock lock;		/* guards everything opened from here */
	unsigned long posts;		/* sends, writes, reads and atomics
					 * posted, under the lock: a CQ's idle
					 * block learns from it (usb4_cq_idle.c) */
	enum fi_threading threading;
	uint64_t mr_mode;		/* mode bits (usb4_mr_mode_bits) */
	uint64_t caps;
	uint32_t addr_format;		/* FI_FORMAT_UNSPEC or FI_ADDR_STR: how
					 * its AVs and endpoints take and give
					 * addresses */
	struct usb4_domain_opened opened;
	atomic_int ref;
	struct usb4_list mrs;		/* usb4_mr, for user-key lookups */
	struct usb4_list eps;		/* usb4_ep: their pins go before a
					 * region's revocation */
	struct usb4_core_domain core;	/* published regions */
	struct usb4_progress *progress;	/* its thread, once started (set
					 * under the lock) */
};

struct usb4_eq;	/* usb4_eq.c */
int usb4_eq_report_err(struct usb4_eq *eq, const struct fi_eq_err_entry *entry);
void usb4_eq_hold(struct usb4_eq *eq);
void usb4_eq_release(struct usb4_eq *eq);

struct usb4_av {
	struct fid_av av_fid;
	struct usb4_domain *domain;
	enum fi_av_type type;
	struct usb4_core_av core;
	atomic_int ref;
};

/* The endpoints a CQ or counter progresses when it is read or waited on;
 * any number (guarded by the domain lock). */
struct usb4_ep_set {
	struct usb4_core_ep **eps;
	size_t count, cap;
};

int usb4_ep_set_add(struct usb4_ep_set *set, struct usb4_core_ep *ep);
void usb4_ep_set_del(struct usb4_ep_set *set, struct usb4_core_ep *ep);
void usb4_ep_set_fini(struct usb4_ep_set *set);
/* Progresses every endpoint; the frames their links took in. */
int usb4_ep_set_progress(const struct usb4_ep_set *set);

/*
 * How a CQ read back to back waits (usb4_cq_idle.c): spin, yield, or block
 * in the kernel once nothing came for FI_USB4_IDLE_BLOCK_US.  Guarded by
 * the domain lock.
 */
struct usb4_cq_idle {
	uint64_t spin_since_ns;		/* a run of tight empty reads began,
					 * or its latest yield */
	uint64_t quiet_since_ns;	/* ... with no frame either (0: not
					 * in such a run) */
	uint64_t last_sample_ns;	/* the latest read that read the
					 * clock */
	uint64_t armed_ns;		/* a block is due if the next read
					 * comes at once after this (0: not) */
	unsigned empty_reads;		/* in the run, to sample the clock */
	uint64_t block_after_ns;	/* quiet this long arms a block: from
					 * FI_USB4_IDLE_BLOCK_US up to
					 * USB4_IDLE_BLOCK_MAX_US (0: not yet
					 * set) */
	const unsigned long *posts;	/* its domain's posts */
	unsigned long posts_at_wake;	/* *posts when its latest block
					 * ended */
	bool woke;			/* a block ended since the last
					 * quiet run began */
};

enum usb4_cq_idle_act {
	USB4_CQ_IDLE_SPIN,
	USB4_CQ_IDLE_YIELD,		/* sched_yield, without the lock */
	USB4_CQ_IDLE_BLOCK,		/* sleep on the links (usb4_wait_block) */
};

/* A read of obj (a CQ or counter) by this thread begins: whether this
 * thread's previous read was of obj too (it polls nothing else). */
bool usb4_cq_idle_enter(const void *obj);
/* A read handed out entries: the next empty one starts a new run. */
void usb4_cq_idle_busy(struct usb4_cq_idle *s);
/* When the caller must read the clock on entering a read (0: needn't).
 * Inline, as is the common case of usb4_cq_idle_empty below: a waiting
 * rank pays them on every turn of its loop. */
static inline bool usb4_cq_idle_armed(const struct usb4_cq_idle *s)
{
	return s->armed_ns != 0;
}
/* Empty reads per look at the clock: a look costs as much as the rest of an
 * empty read, which a caller spinning on the CQ repeats back to back. */
#define USB4_SPIN_CLOCK_EVERY	16
enum usb4_cq_idle_act usb4_cq_idle_empty_slow(struct usb4_cq_idle *s,
					      int frames, bool alone,
					      uint64_t entry_ns);
/* An empty read whose progress took in `frames`; alone: the thread's
 * previous read was of this CQ; entry_ns: the clock on entering it when
 * armed.  What it does before it returns.  A quiet read in the middle of
 * a run (no frame, nothing armed, not a read that samples the clock) only
 * counts itself. */
static inline enum usb4_cq_idle_act
usb4_cq_idle_empty(struct usb4_cq_idle *s, int frames, bool alone,
		   uint64_t entry_ns)
{
	if (!frames && alone && !s->armed_ns &&
	    (s->empty_reads + 1) % USB4_SPIN_CLOCK_EVERY) {
		s->empty_reads++;
		return USB4_CQ_IDLE_SPIN;
	}
	return usb4_cq_idle_empty_slow(s, frames, alone, entry_ns);
}
/* A block ended at now_ns: the next read, if at once, blocks again. */
void usb4_cq_idle_blocked(struct usb4_cq_idle *s, uint64_t now_ns);
/* How long a quiet run lasts before a read arms a block, now. */
uint64_t usb4_cq_idle_block_after_ns(const struct usb4_cq_idle *s);

/* A send, write, read or atomic is posted on the domain (caller holds its
 * lock): a block that a post follows sat on an exchange's path. */
static inline void usb4_cq_idle_note_post(struct usb4_domain *domain)
{
	domain->posts++;
}

struct usb4_cq {
	struct fid_cq cq_fid;
	struct usb4_domain *domain;
	enum fi_cq_format format;
	size_t entry_size;
	enum fi_wait_obj wait_obj;
	struct usb4_cq_queue queue;
	struct usb4_waiter waiter;	/* its own: sread sleeps here */
	struct usb4_ep_set eps;		/* progressed on read */
	bool signaled;			/* fi_cq_signal: end one sread */
	struct usb4_cq_idle idle;	/* how an empty read waits */
	bool handed_out;		/* the latest read returned entries */
	atomic_int ref;
};

struct usb4_cntr {
	struct fid_cntr cntr_fid;
	struct usb4_domain *domain;
	struct usb4_counter counter;
	struct usb4_waiter waiter;	/* its own: fi_cntr_wait sleeps here */
	struct usb4_ep_set eps;
	atomic_int ref;
};

struct usb4_mr {
	struct fid_mr mr_fid;
	struct usb4_domain *domain;
	struct usb4_list link;		/* in domain->mrs */
	struct iovec iov[USB4_IOV_LIMIT];
	size_t iov_count;
	uint64_t access;
	uint64_t offset;		/* address peers use for byte 0 */
	struct usb4_core_mr core;
};

/* Counters an endpoint binds: FI_SEND, FI_RECV, FI_READ, FI_WRITE,
 * FI_REMOTE_READ, FI_REMOTE_WRITE. */
#define USB4_EP_CNTRS	6

struct usb4_ep {
	struct fid_ep ep_fid;
	struct usb4_domain *domain;
	struct usb4_av *av;
	struct usb4_cq *tx_cq, *rx_cq;
	struct usb4_cntr *cntrs[USB4_EP_CNTRS];
	struct usb4_eq *eq;
	uint64_t tx_op_flags, rx_op_flags;
	bool tx_selective, rx_selective;
	bool enabled;
	struct usb4_list dom_link;	/* in domain->eps */
	/* What the progress thread last saw of the application's calls
	 * (usb4_progress.c); guarded by the domain lock. */
	uint64_t app_calls;		/* core.progress_calls then */
	uint64_t app_seen_ns;		/* when they last changed */
	struct usb4_core_ep core;
};

/*
 * The domain's progress thread (usb4_progress.c).  start: at fi_enable of
 * an endpoint that reaches other hosts, or of any endpoint of a domain
 * opened with FI_PROGRESS_AUTO (nothing when FI_USB4_PROGRESS_IDLE_MS is
 * 0); called without the lock, by the application, which serialises its
 * calls on a FI_THREAD_DOMAIN domain.  let_go: an endpoint left
 * domain->eps (caller holds the lock); the thread stops watching its
 * links.  stop: at domain close, joins the thread.  halt_all: at the
 * provider's cleanup (before libfabric unloads it), joins every thread of
 * domains the application left open.
 */
int usb4_progress_start(struct usb4_domain *domain, struct usb4_ep *ep);
void usb4_progress_let_go(struct usb4_domain *domain);
void usb4_progress_stop(struct usb4_domain *domain);
void usb4_progress_halt_all(void);

/*
 * A closed endpoint's fid stays readable (usb4_ep_closed.c): fi_close keeps
 * the struct with ops that answer -FI_EBADF, so closing it again or posting
 * on it is an error, not a use after free.  The last few are kept; the
 * provider's cleanup frees them.
 */
void usb4_ep_bury(struct usb4_ep *ep);
void usb4_ep_tombstones_free(void);

/*
 * usb4_libfabric.c: the running libfabric.  init (from fi_prov_ini) takes its
 * API version as ours and finds its fi_dupinfo/fi_freeinfo; every fi_info
 * we hand to libfabric is made and freed by these, never by fi_allocinfo().
 */
int usb4_libfabric_init(void);
uint32_t usb4_api_version(void);
struct fi_info *usb4_allocinfo(void);
void usb4_freeinfo(struct fi_info *info);
/* Our own fabric and domain objects, or NULL for another provider's (or
 * nothing): hints may name either. */
struct usb4_fabric *usb4_fabric_of(struct fid_fabric *fid);
struct usb4_domain *usb4_domain_of(struct fid_domain *fid);
/* usb4_getinfo_shared.c: an answer to hints naming a domain or fabric
 * states that object's real attributes, or -FI_ENODATA when the hints need
 * something it was not opened with. */
int usb4_narrow_shared(struct fi_info *out, const struct fi_info *hints,
		       uint32_t version);

/* A copy of len bytes at src for an fi_info field that fi_freeinfo frees,
 * in *out and *out_len; nothing when len is 0.  -FI_ENOMEM. */
int usb4_info_dup(const void *src, size_t len, void **out, size_t *out_len);
/* usb4_getinfo.c */
int usb4_getinfo(uint32_t version, const char *node, const char *service,
		 uint64_t flags, const struct fi_info *hints,
		 struct fi_info **info);
/* Checks attributes passed to fi_fabric/fi_domain/fi_endpoint against ours. */
int usb4_check_fabric_attr(const struct fi_fabric_attr *attr);
int usb4_check_domain_attr(const struct fi_domain_attr *attr);
/* The job key: attr_len bytes at attr_key (the auth_key attribute), else
 * the environment's; key->len 0: none.  -FI_EINVAL: unusable. */
int usb4_auth_key_resolve(const void *attr_key, size_t attr_len,
			  struct usb4_core_key *key);
int usb4_check_ep_info(const struct fi_info *info);

/* Addresses in fi_getinfo (usb4_getinfo_addr.c): node and service into
 * the info's src_addr or dest_addr, and its addr_format. */
int usb4_getinfo_addr(const char *node, const char *service, uint64_t flags,
		      const struct fi_info *hints, struct fi_info *out);
/* addr_format, src_addr and dest_addr of hints or of an info handed back:
 * 0 or -FI_ENODATA (logged). */
int usb4_check_info_addrs(const struct fi_info *info);
/* Where an info asks the endpoint to bind (its src_addr): false if none. */
bool usb4_info_bind(const struct fi_info *info, struct usb4_wire_addr *bind);
/* node and service as an unresolved address: a peer's, or with source a
 * place to bind (node NULL: any IP; service NULL: any port).
 * -FI_ENODATA (logged) when they name nothing. */
int usb4_name_lookup(const char *node, const char *service, bool source,
		     struct usb4_wire_addr *a);
/* An address as format carries it: 56 bytes, or a NUL-terminated
 * FI_ADDR_STR string within len.  0 or -FI_EINVAL. */
int usb4_addr_read(uint32_t format, const void *addr, size_t len,
		   struct usb4_wire_addr *a);

/* FI_ADDR_STR (usb4_addr_str.c): "fi_addr_usb4://..." and back. */
#define USB4_ADDR_STR_PREFIX	"fi_addr_usb4://"
#define USB4_ADDR_STR_MAX	160	/* the longest string, NUL included */
/* Like snprintf: the length of the whole string. */
int usb4_addr_to_str(const struct usb4_wire_addr *a, char *buf, size_t len);
int usb4_addr_from_str(const char *s, struct usb4_wire_addr *a);

/* Object constructors, one file each. */
int usb4_fabric_open(struct fi_fabric_attr *attr, struct fid_fabric **fabric,
		     void *context);
int usb4_domain_open(struct fid_fabric *fabric, struct fi_info *info,
		     struct fid_domain **domain, void *context);
int usb4_eq_open(struct fid_fabric *fabric, struct fi_eq_attr *attr,
		 struct fid_eq **eq, void *context);
int usb4_av_open(struct fid_domain *domain, struct fi_av_attr *attr,
		 struct fid_av **av, void *context);
int usb4_cq_open(struct fid_domain *domain, struct fi_cq_attr *attr,
		 struct fid_cq **cq, void *context);
int usb4_cntr_open(struct fid_domain *domain, struct fi_cntr_attr *attr,
		   struct fid_cntr **cntr, void *context);
int usb4_ep_open(struct fid_domain *domain, struct fi_info *info,
		 struct fid_ep **ep, void *context);
extern struct fi_ops_mr usb4_mr_ops;
extern struct fi_ops_msg usb4_msg_ops;
extern struct fi_ops_tagged usb4_tagged_ops;
extern struct fi_ops_rma usb4_rma_ops;
extern struct fi_ops_atomic usb4_atomic_ops;
int usb4_query_atomic(struct fid_domain *domain, enum fi_datatype datatype,
		      enum fi_op op, struct fi_atomic_attr *attr,
		      uint64_t flags);

/* Data-path entry points shared by fi_msg and fi_tagged (usb4_msg.c). */
ssize_t usb4_ep_send(struct fid_ep *fid, const struct iovec *iov, size_t count,
		     fi_addr_t dest, uint64_t tag, uint64_t data,
		     void *context, uint64_t flags);
ssize_t usb4_ep_recv(struct fid_ep *fid, const struct iovec *iov, size_t count,
		     fi_addr_t src, uint64_t tag, uint64_t ignore,
		     void *context, uint64_t flags);
ssize_t usb4_ep_inject(struct fid_ep *fid, const void *buf, size_t len,
		       fi_addr_t dest, uint64_t tag, uint64_t data,
		       uint64_t flags);
size_t usb4_ep_inject_limit(struct fid_ep *fid);

/* Deadlines for calls with a timeout in ms (-1: none). */
uint64_t usb4_deadline(int timeout_ms);
int usb4_ms_left(uint64_t deadline_ns);

/*
 * Waits for news of a CQ or counter without spinning: progresses its
 * endpoints for spin_us, then sleeps in the kernel on its waiter and its
 * endpoints' links until news, a link timer or timeout_ms.  ready() says
 * whether the caller's condition holds (then it returns at once).  Called
 * with the domain lock held; returns with it held.
 */
void usb4_wait(struct usb4_domain *domain, struct usb4_waiter *waiter,
	       const struct usb4_ep_set *eps, int timeout_ms,
	       bool (*ready)(void *arg), void *arg);
/* The same without the spin: sleeps at once (unless ready or a link has
 * news), at most timeout_ms and until the links' next timer. */
void usb4_wait_block(struct usb4_domain *domain, struct usb4_waiter *waiter,
		     const struct usb4_ep_set *eps, int timeout_ms,
		     bool (*ready)(void *arg), void *arg);

/* Not-supported stubs for ops table slots. */
int usb4_no_bind(struct fid *fid, struct fid *bfid, uint64_t flags);
int usb4_no_control(struct fid *fid, int command, void *arg);
int usb4_no_ops_open(struct fid *fid, const char *name, uint64_t flags,
		     void **ops, void *context);
int usb4_no_passive_ep(struct fid_fabric *fabric, struct fi_info *info,
		       struct fid_pep **pep, void *context);
int usb4_no_wait_open(struct fid_fabric *fabric, struct fi_wait_attr *attr,
		      struct fid_wait **waitset);
int usb4_no_trywait(struct fid_fabric *fabric, struct fid **fids, int count);

#endif /* USB4_API_H */
