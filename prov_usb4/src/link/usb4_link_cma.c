/*
 * Bulk copies between processes of one host by cross memory attach: one
 * process_vm_readv moves the data from the peer's buffer into ours.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "usb4_shm.h"

#define USB4_CMA_IOV_MAX	64

/* Where a copy stands in one iov list. */
struct cursor {
	const struct iovec *iov;
	size_t count;
	size_t off;		/* bytes of iov[0] already done */
};

/* Up to USB4_CMA_IOV_MAX entries from the cursor, len bytes at most;
 * returns how many. */
static unsigned long cursor_fill(const struct cursor *c, struct iovec *out,
				 size_t len)
{
	unsigned long n = 0;
	size_t off = c->off;

	for (size_t i = 0; i < c->count && len && n < USB4_CMA_IOV_MAX; i++) {
		size_t avail = c->iov[i].iov_len - off;
		size_t take = avail < len ? avail : len;

		if (take) {
			out[n].iov_base = (char *) c->iov[i].iov_base + off;
			out[n++].iov_len = take;
			len -= take;
		}
		off = 0;
	}
	return n;
}

static void cursor_advance(struct cursor *c, size_t done)
{
	while (c->count && done >= c->iov[0].iov_len - c->off) {
		done -= c->iov[0].iov_len - c->off;
		c->iov++;
		c->count--;
		c->off = 0;
	}
	if (c->count)
		c->off += done;
}

typedef ssize_t (*cma_fn)(pid_t, const struct iovec *, unsigned long,
			  const struct iovec *, unsigned long, unsigned long);

/* One system call per USB4_CMA_IOV_MAX segments of either list. */
static int cma_copy(cma_fn fn, pid_t pid, const struct iovec *local,
		    size_t local_count, const struct iovec *remote,
		    size_t remote_count, size_t len)
{
	struct iovec lv[USB4_CMA_IOV_MAX], rv[USB4_CMA_IOV_MAX];
	struct cursor l = { local, local_count, 0 }, r = { remote, remote_count, 0 };

	while (len) {
		unsigned long ln = cursor_fill(&l, lv, len);
		unsigned long rn = cursor_fill(&r, rv, len);
		ssize_t got;

		if (!ln || !rn)
			return -FI_EINVAL;	/* the lists hold less than len */
		got = fn(pid, lv, ln, rv, rn, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			USB4_WARN(FI_LOG_EP_DATA, "cross memory attach with %d: %s\n",
				  (int) pid, strerror(errno));
			return errno == ESRCH ? -FI_EHOSTUNREACH :
			       errno == EFAULT ? -FI_EFAULT : -FI_EIO;
		}
		if (got == 0)
			return -FI_EIO;
		len -= got;
		cursor_advance(&l, got);
		cursor_advance(&r, got);
	}
	return 0;
}

int usb4_cma_read(pid_t pid, const struct iovec *local, size_t local_count,
		  const struct iovec *remote, size_t remote_count, size_t len)
{
	return cma_copy(process_vm_readv, pid, local, local_count, remote,
			remote_count, len);
}

int usb4_cma_write(pid_t pid, const struct iovec *local, size_t local_count,
		   const struct iovec *remote, size_t remote_count, size_t len)
{
	return cma_copy(process_vm_writev, pid, local, local_count, remote,
			remote_count, len);
}
