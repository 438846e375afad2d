/*
 * fi_cq: reads progress the bound endpoints, then copy entries out in the
 * format the CQ was opened with.  A read called back to back on an empty
 * CQ may block briefly once nothing came for FI_USB4_IDLE_BLOCK_US
 * (usb4_cq_idle.c); sread sleeps on the CQ's own waiter and its endpoints'
 * links.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_api.h"

static struct usb4_cq *cq_of(struct fid_cq *fid)
{
	return usb4_container_of(fid, struct usb4_cq, cq_fid);
}

/*
 * Whether a read progresses the endpoints first.  Not right after a read
 * that returned entries: MPI's progress loop reads until the CQ is empty
 * before it acts on what it got, and that read polled every link an
 * instant ago, so polling them again (a system call on the udp link) only
 * delays the answer a ping-pong waits for.  The read after that one
 * progresses, as does every read of a caller that finds nothing.
 */
static bool read_progresses(struct usb4_cq *cq)
{
	bool skip = cq->handed_out;

	cq->handed_out = false;
	return !skip;
}

/* The CQ's endpoints progressed: most CQs have one (mtl ofi's, btl
 * ofi's), called straight, not through the set's loop. */
static int cq_progress(struct usb4_cq *cq)
{
	if (cq->eps.count == 1)
		return usb4_core_progress(cq->eps.eps[0]);
	return usb4_ep_set_progress(&cq->eps);
}

/* Inline: it is most of an empty read, which a waiting rank repeats. */
static inline ssize_t cq_readfrom_locked(struct usb4_cq *cq, void *buf,
					 size_t count, fi_addr_t *src_addr,
					 int *frames)
{
	size_t n;

	*frames = read_progresses(cq) ? cq_progress(cq) : 0;
	/* Nothing queued, the common case of a rank waiting: no calls. */
	if (!cq->queue.count && !cq->queue.err_count)
		return -FI_EAGAIN;
	if (usb4_cq_queue_peek_err(&cq->queue))
		return -FI_EAVAIL;
	n = usb4_cq_queue_take(&cq->queue, buf, cq->entry_size, src_addr,
			       count);
	cq->handed_out = n > 0;
	return n ? (ssize_t) n : -FI_EAGAIN;
}

/* Longest an empty read sleeps: what the CQ's links cannot wake (another
 * domain, the application's other transports) waits no longer. */
#define USB4_CQ_BLOCK_MS	1

/* What ends an empty read's block: an entry or an error to hand out. */
static bool cq_has_entry(void *arg)
{
	struct usb4_cq *cq = arg;

	return usb4_cq_queue_peek(&cq->queue) ||
	       usb4_cq_queue_peek_err(&cq->queue);
}

/*
 * A caller spinning on the empty CQ (usb4_cq_idle.c) sleeps on its links,
 * its waiter (entries queued by another thread, fi_cq_signal) and their
 * timers, the domain lock let go meanwhile; then reads once more, so what
 * woke it is handed out by this call.
 */
static ssize_t cq_block(struct usb4_cq *cq, void *buf, size_t count,
			fi_addr_t *src_addr, int *frames)
{
	usb4_wait_block(cq->domain, &cq->waiter, &cq->eps, USB4_CQ_BLOCK_MS,
			cq_has_entry, cq);
	usb4_cq_idle_blocked(&cq->idle, usb4_now_ns());
	cq->handed_out = false;		/* progress again */
	return cq_readfrom_locked(cq, buf, count, src_addr, frames);
}

static ssize_t cq_readfrom(struct fid_cq *fid, void *buf, size_t count,
			   fi_addr_t *src_addr)
{
	struct usb4_cq *cq = cq_of(fid);
	enum usb4_cq_idle_act act = USB4_CQ_IDLE_SPIN;
	bool alone = usb4_cq_idle_enter(cq);
	uint64_t entry_ns = 0;
	ssize_t ret;
	int frames;

	usb4_lock_acquire(&cq->domain->lock);
	if (usb4_cq_idle_armed(&cq->idle))
		entry_ns = usb4_now_ns();
	ret = cq_readfrom_locked(cq, buf, count, src_addr, &frames);
	if (ret == -FI_EAGAIN)
		act = usb4_cq_idle_empty(&cq->idle, frames, alone, entry_ns);
	if (act == USB4_CQ_IDLE_BLOCK)
		ret = cq_block(cq, buf, count, src_addr, &frames);
	/* Something came: the caller acts on it before it reads again, so the
	 * next empty read starts a new run. */
	if (ret != -FI_EAGAIN)
		usb4_cq_idle_busy(&cq->idle);
	else if (frames && act == USB4_CQ_IDLE_BLOCK)	/* woken by frames:
							 * a new quiet run */
		usb4_cq_idle_empty(&cq->idle, frames, true, 0);
	usb4_lock_release(&cq->domain->lock);
	/* The spin is the CQ's state, kept under its lock; the yield is not. */
	if (act == USB4_CQ_IDLE_YIELD)
		sched_yield();
	return ret;
}

static ssize_t cq_read(struct fid_cq *fid, void *buf, size_t count)
{
	return cq_readfrom(fid, buf, count, NULL);
}

static ssize_t cq_readerr(struct fid_cq *fid, struct fi_cq_err_entry *buf,
			  uint64_t flags)
{
	struct usb4_cq *cq = cq_of(fid);
	const struct usb4_cqe_err *ee;
	ssize_t ret = -FI_EAGAIN;

	usb4_lock_acquire(&cq->domain->lock);
	usb4_ep_set_progress(&cq->eps);
	ee = usb4_cq_queue_peek_err(&cq->queue);
	if (ee) {
		void *user_data = buf->err_data;
		*buf = ee->err;
		/* We carry no provider error data: say so in err_data_size. */
		buf->err_data = user_data;
		buf->err_data_size = 0;
		usb4_cq_queue_pop_err(&cq->queue);
		ret = 1;
	}
	usb4_lock_release(&cq->domain->lock);
	return ret;
}

/* sread's condition: an entry (or an error) waits, or fi_cq_signal. */
static bool cq_ready(void *arg)
{
	struct usb4_cq *cq = arg;

	return cq->signaled || usb4_cq_queue_peek(&cq->queue) ||
	       usb4_cq_queue_peek_err(&cq->queue);
}

static ssize_t cq_sreadfrom(struct fid_cq *fid, void *buf, size_t count,
			    fi_addr_t *src_addr, const void *cond, int timeout)
{
	struct usb4_cq *cq = cq_of(fid);
	uint64_t deadline = usb4_deadline(timeout);
	ssize_t ret;

	if (cq->wait_obj == FI_WAIT_NONE)
		return -FI_ENOSYS;
	usb4_lock_acquire(&cq->domain->lock);
	for (;;) {
		int frames;

		ret = cq_readfrom_locked(cq, buf, count, src_addr, &frames);
		if (ret != -FI_EAGAIN || cq->signaled)
			break;
		int left = usb4_ms_left(deadline);
		if (left == 0)
			break;
		usb4_wait(cq->domain, &cq->waiter, &cq->eps, left, cq_ready, cq);
	}
	cq->signaled = false;
	usb4_lock_release(&cq->domain->lock);
	return ret;
}

static ssize_t cq_sread(struct fid_cq *fid, void *buf, size_t count,
			const void *cond, int timeout)
{
	return cq_sreadfrom(fid, buf, count, NULL, cond, timeout);
}

static int cq_signal(struct fid_cq *fid)
{
	struct usb4_cq *cq = cq_of(fid);

	usb4_lock_acquire(&cq->domain->lock);
	cq->signaled = true;
	usb4_lock_release(&cq->domain->lock);
	usb4_waiter_signal(&cq->waiter);
	return 0;
}

static const char *cq_strerror(struct fid_cq *fid, int prov_errno,
			       const void *err_data, char *buf, size_t len)
{
	const char *msg = fi_strerror(prov_errno < 0 ? -prov_errno : prov_errno);

	if (buf && len) {
		strncpy(buf, msg, len - 1);
		buf[len - 1] = '\0';
		return buf;
	}
	return msg;
}

static int cq_close(struct fid *fid)
{
	struct usb4_cq *cq = usb4_container_of(fid, struct usb4_cq, cq_fid.fid);

	if (atomic_load(&cq->ref))
		return -FI_EBUSY;
	usb4_cq_queue_fini(&cq->queue);
	usb4_ep_set_fini(&cq->eps);
	usb4_waiter_fini(&cq->waiter);
	atomic_fetch_sub(&cq->domain->ref, 1);
	free(cq);
	return 0;
}

static struct fi_ops cq_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = cq_close,
	.bind = usb4_no_bind,
	.control = usb4_no_control,
	.ops_open = usb4_no_ops_open,
};

static struct fi_ops_cq cq_ops = {
	.size = sizeof(struct fi_ops_cq),
	.read = cq_read,
	.readfrom = cq_readfrom,
	.readerr = cq_readerr,
	.sread = cq_sread,
	.sreadfrom = cq_sreadfrom,
	.signal = cq_signal,
	.strerror = cq_strerror,
};

static size_t entry_size(enum fi_cq_format format)
{
	switch (format) {
	case FI_CQ_FORMAT_UNSPEC:
	case FI_CQ_FORMAT_CONTEXT:
		return sizeof(struct fi_cq_entry);
	case FI_CQ_FORMAT_MSG:
		return sizeof(struct fi_cq_msg_entry);
	case FI_CQ_FORMAT_DATA:
		return sizeof(struct fi_cq_data_entry);
	case FI_CQ_FORMAT_TAGGED:
		return sizeof(struct fi_cq_tagged_entry);
	default:
		return 0;
	}
}

static int check_attr(const struct fi_cq_attr *attr)
{
	if (!entry_size(attr->format))
		return -FI_EINVAL;
	if (attr->wait_obj != FI_WAIT_NONE && attr->wait_obj != FI_WAIT_UNSPEC)
		return -FI_ENOSYS;
	if (attr->wait_cond != FI_CQ_COND_NONE || (attr->flags & FI_AFFINITY))
		return -FI_ENOSYS;
	return 0;
}

int usb4_cq_open(struct fid_domain *domain_fid, struct fi_cq_attr *attr,
		 struct fid_cq **cqp, void *context)
{
	struct usb4_domain *domain =
		usb4_container_of(domain_fid, struct usb4_domain, domain_fid);
	struct usb4_cq *cq;
	int ret;

	if (!attr || (ret = check_attr(attr)))
		return attr ? ret : -FI_EINVAL;
	cq = calloc(1, sizeof(*cq));
	if (!cq)
		return -FI_ENOMEM;
	usb4_waiter_init(&cq->waiter);
	ret = usb4_cq_queue_init(&cq->queue,
				 attr->size ? attr->size : usb4_params.cq_size,
				 &cq->waiter);
	if (ret) {
		usb4_waiter_fini(&cq->waiter);
		free(cq);
		return ret;
	}
	cq->domain = domain;
	cq->idle.posts = &domain->posts;
	cq->format = attr->format;
	cq->entry_size = entry_size(attr->format);
	cq->wait_obj = attr->wait_obj;
	atomic_init(&cq->ref, 0);
	atomic_fetch_add(&domain->ref, 1);
	cq->cq_fid.fid.fclass = FI_CLASS_CQ;
	cq->cq_fid.fid.context = context;
	cq->cq_fid.fid.ops = &cq_fi_ops;
	cq->cq_fid.ops = &cq_ops;
	*cqp = &cq->cq_fid;
	return 0;
}
