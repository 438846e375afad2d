/*
 * fi_eq: the event queue of a fabric.
 *
 * RDM endpoints make no connection events, so the EQ carries what the
 * application writes with fi_eq_write and asynchronous errors the provider
 * reports.  Events are kept in arrival order in a list, errors in a second
 * list that takes precedence (a read while an error waits gives -FI_EAVAIL).
 * fi_eq_sread blocks on a condition variable: no spinning.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "usb4_api.h"

#define USB4_EQ_DEFAULT_SIZE	256

/* One event as written: its type and a copy of its bytes. */
struct usb4_eq_event {
	struct usb4_list link;
	uint32_t event;
	size_t len;
	unsigned char data[];
};

struct usb4_eq_error {
	struct usb4_list link;
	struct fi_eq_err_entry entry;
};

/* All fields after the fid are guarded by mutex. */
struct usb4_eq {
	struct fid_eq eq_fid;
	struct usb4_fabric *fabric;
	pthread_mutex_t mutex;
	pthread_cond_t cond;		/* signalled when an entry arrives */
	struct usb4_list events;	/* usb4_eq_event, oldest first */
	struct usb4_list errors;	/* usb4_eq_error, oldest first */
	size_t count, size;		/* entries queued, capacity */
	bool overrun;			/* a write found the queue full */
	enum fi_wait_obj wait_obj;
	atomic_int ref;			/* endpoints bound to us */
};

static struct usb4_eq *usb4_eq_of(struct fid_eq *fid)
{
	return usb4_container_of(fid, struct usb4_eq, eq_fid);
}

/* Queues an error; the caller holds the mutex. */
static int usb4_eq_push_error(struct usb4_eq *eq,
			      const struct fi_eq_err_entry *entry)
{
	struct usb4_eq_error *err = calloc(1, sizeof(*err));

	if (!err)
		return -FI_ENOMEM;
	err->entry = *entry;
	err->entry.err_data = NULL;
	err->entry.err_data_size = 0;
	usb4_list_insert_tail(&eq->errors, &err->link);
	pthread_cond_broadcast(&eq->cond);
	return 0;
}

/*
 * Reports an asynchronous error to the application (provider-internal entry
 * point for the endpoint and AV code).
 */
int usb4_eq_report_err(struct usb4_eq *eq, const struct fi_eq_err_entry *entry)
{
	int ret;

	pthread_mutex_lock(&eq->mutex);
	ret = usb4_eq_push_error(eq, entry);
	pthread_mutex_unlock(&eq->mutex);
	return ret;
}

/* Endpoints hold the EQ they are bound to so fi_close can say -FI_EBUSY. */
void usb4_eq_hold(struct usb4_eq *eq)
{
	atomic_fetch_add(&eq->ref, 1);
}

void usb4_eq_release(struct usb4_eq *eq)
{
	atomic_fetch_sub(&eq->ref, 1);
}

/*
 * Takes the head entry into buf; the caller holds the mutex.  Errors first;
 * an overrun shows as an error once the good events are drained.
 */
static ssize_t usb4_eq_take(struct usb4_eq *eq, uint32_t *event, void *buf,
			    size_t len, uint64_t flags)
{
	struct usb4_eq_event *ev;
	size_t ev_len;

	if (!usb4_list_empty(&eq->errors))
		return -FI_EAVAIL;
	if (usb4_list_empty(&eq->events))
		return eq->overrun ? -FI_EAVAIL : -FI_EAGAIN;
	ev = usb4_container_of(eq->events.next, struct usb4_eq_event, link);
	if (len < ev->len)
		return -FI_ETOOSMALL;
	if (event)
		*event = ev->event;
	memcpy(buf, ev->data, ev->len);
	ev_len = ev->len;
	if (!(flags & FI_PEEK)) {
		usb4_list_remove(&ev->link);
		eq->count--;
		free(ev);
	}
	return (ssize_t) ev_len;
}

static ssize_t usb4_eq_read(struct fid_eq *fid, uint32_t *event, void *buf,
			    size_t len, uint64_t flags)
{
	struct usb4_eq *eq = usb4_eq_of(fid);
	ssize_t ret;

	if (flags & ~FI_PEEK)
		return -FI_EBADFLAGS;
	if (len && !buf)
		return -FI_EINVAL;
	pthread_mutex_lock(&eq->mutex);
	ret = usb4_eq_take(eq, event, buf, len, flags);
	pthread_mutex_unlock(&eq->mutex);
	return ret;
}

/* Fills buf from the head error, keeping the caller's err_data buffer. */
static void usb4_eq_copy_err(struct fi_eq_err_entry *buf,
			     const struct fi_eq_err_entry *src)
{
	void *user_data = buf->err_data;
	size_t user_size = buf->err_data_size;

	*buf = *src;
	/* We keep no error data: the caller's buffer stays empty. */
	buf->err_data = user_size ? user_data : NULL;
	buf->err_data_size = 0;
}

static ssize_t usb4_eq_readerr(struct fid_eq *fid, struct fi_eq_err_entry *buf,
			       uint64_t flags)
{
	struct usb4_eq *eq = usb4_eq_of(fid);
	struct usb4_eq_error *err;
	ssize_t ret = sizeof(*buf);

	if (flags & ~FI_PEEK)
		return -FI_EBADFLAGS;
	if (!buf)
		return -FI_EINVAL;
	pthread_mutex_lock(&eq->mutex);
	if (!usb4_list_empty(&eq->errors)) {
		err = usb4_container_of(eq->errors.next, struct usb4_eq_error,
					link);
		usb4_eq_copy_err(buf, &err->entry);
		if (!(flags & FI_PEEK)) {
			usb4_list_remove(&err->link);
			free(err);
		}
	} else if (eq->overrun && usb4_list_empty(&eq->events)) {
		usb4_eq_copy_err(buf, &(struct fi_eq_err_entry) {
			.fid = &eq->eq_fid.fid, .err = FI_EOVERRUN });
	} else {
		ret = -FI_EAGAIN;
	}
	pthread_mutex_unlock(&eq->mutex);
	return ret;
}

static ssize_t usb4_eq_write(struct fid_eq *fid, uint32_t event,
			     const void *buf, size_t len, uint64_t flags)
{
	struct usb4_eq *eq = usb4_eq_of(fid);
	struct usb4_eq_event *ev;

	if (flags)
		return -FI_EBADFLAGS;
	if (len && !buf)
		return -FI_EINVAL;
	ev = malloc(sizeof(*ev) + len);
	if (!ev)
		return -FI_ENOMEM;
	ev->event = event;
	ev->len = len;
	memcpy(ev->data, buf, len);
	pthread_mutex_lock(&eq->mutex);
	if (eq->count >= eq->size) {
		/* Fatal by the man page: later writes fail, reads drain. */
		eq->overrun = true;
		pthread_mutex_unlock(&eq->mutex);
		free(ev);
		return -FI_EOVERRUN;
	}
	usb4_list_insert_tail(&eq->events, &ev->link);
	eq->count++;
	pthread_cond_broadcast(&eq->cond);
	pthread_mutex_unlock(&eq->mutex);
	return (ssize_t) len;
}

/* CLOCK_MONOTONIC deadline timeout_ms from now (the condvar's clock). */
static struct timespec usb4_eq_deadline(int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static ssize_t usb4_eq_sread(struct fid_eq *fid, uint32_t *event, void *buf,
			     size_t len, int timeout, uint64_t flags)
{
	struct usb4_eq *eq = usb4_eq_of(fid);
	struct timespec deadline = usb4_eq_deadline(timeout > 0 ? timeout : 0);
	ssize_t ret;
	int rc = 0;

	if (eq->wait_obj == FI_WAIT_NONE)
		return -FI_EINVAL;	/* forbidden by man fi_eq */
	if (flags & ~FI_PEEK)
		return -FI_EBADFLAGS;
	if (len && !buf)
		return -FI_EINVAL;
	pthread_mutex_lock(&eq->mutex);
	for (;;) {
		ret = usb4_eq_take(eq, event, buf, len, flags);
		if (ret != -FI_EAGAIN || timeout == 0 || rc == ETIMEDOUT)
			break;
		if (timeout < 0)
			pthread_cond_wait(&eq->cond, &eq->mutex);
		else
			rc = pthread_cond_timedwait(&eq->cond, &eq->mutex,
						    &deadline);
	}
	pthread_mutex_unlock(&eq->mutex);
	return ret;
}

static const char *usb4_eq_strerror(struct fid_eq *fid, int prov_errno,
				    const void *err_data, char *buf, size_t len)
{
	/* Our prov_errno values are fabric errnos. */
	const char *str = fi_strerror(prov_errno < 0 ? -prov_errno :
				      prov_errno);

	if (buf && len) {
		strncpy(buf, str, len - 1);
		buf[len - 1] = '\0';
	}
	return str;
}

static void usb4_eq_drain(struct usb4_eq *eq)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&eq->events, it, tmp)
		free(usb4_container_of(it, struct usb4_eq_event, link));
	usb4_list_foreach_safe(&eq->errors, it, tmp)
		free(usb4_container_of(it, struct usb4_eq_error, link));
}

static int usb4_eq_close(struct fid *fid)
{
	struct usb4_eq *eq = usb4_container_of(fid, struct usb4_eq,
					       eq_fid.fid);

	if (atomic_load(&eq->ref))
		return -FI_EBUSY;
	usb4_eq_drain(eq);
	pthread_cond_destroy(&eq->cond);
	pthread_mutex_destroy(&eq->mutex);
	atomic_fetch_sub(&eq->fabric->ref, 1);
	free(eq);
	return 0;
}

static struct fi_ops usb4_eq_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = usb4_eq_close,
	.bind = usb4_no_bind,
	.control = usb4_no_control,
	.ops_open = usb4_no_ops_open,
};

static struct fi_ops_eq usb4_eq_ops = {
	.size = sizeof(struct fi_ops_eq),
	.read = usb4_eq_read,
	.readerr = usb4_eq_readerr,
	.write = usb4_eq_write,
	.sread = usb4_eq_sread,
	.strerror = usb4_eq_strerror,
};

/* Only waits through fi_eq_sread: no fd or mutex to hand out. */
static int usb4_eq_check_attr(const struct fi_eq_attr *attr)
{
	if (attr->flags & ~(uint64_t) (FI_WRITE | FI_AFFINITY))
		return -FI_EBADFLAGS;
	if (attr->wait_obj != FI_WAIT_NONE && attr->wait_obj != FI_WAIT_UNSPEC)
		return -FI_ENOSYS;
	return 0;
}

static int usb4_eq_init_sync(struct usb4_eq *eq)
{
	pthread_condattr_t cattr;
	int ret;

	ret = pthread_condattr_init(&cattr);
	if (ret)
		return -ret;
	/* Timed waits must not jump with the wall clock. */
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	ret = pthread_cond_init(&eq->cond, &cattr);
	pthread_condattr_destroy(&cattr);
	if (ret)
		return -ret;
	pthread_mutex_init(&eq->mutex, NULL);
	return 0;
}

int usb4_eq_open(struct fid_fabric *fabric, struct fi_eq_attr *attr,
		 struct fid_eq **eq_fid, void *context)
{
	struct fi_eq_attr dflt = { .wait_obj = FI_WAIT_NONE };
	struct usb4_eq *eq;
	int ret;

	if (!fabric || !eq_fid)
		return -FI_EINVAL;
	attr = attr ? attr : &dflt;
	ret = usb4_eq_check_attr(attr);
	if (ret)
		return ret;
	eq = calloc(1, sizeof(*eq));
	if (!eq)
		return -FI_ENOMEM;
	ret = usb4_eq_init_sync(eq);
	if (ret) {
		free(eq);
		return ret;
	}
	eq->fabric = usb4_container_of(fabric, struct usb4_fabric, fabric_fid);
	usb4_list_init(&eq->events);
	usb4_list_init(&eq->errors);
	eq->size = attr->size ? attr->size : USB4_EQ_DEFAULT_SIZE;
	eq->wait_obj = attr->wait_obj;
	eq->eq_fid.fid = (struct fid) { .fclass = FI_CLASS_EQ,
					.context = context,
					.ops = &usb4_eq_fi_ops };
	eq->eq_fid.ops = &usb4_eq_ops;
	atomic_fetch_add(&eq->fabric->ref, 1);
	*eq_fid = &eq->eq_fid;
	return 0;
}
