/*
 * Bulk copies between processes of one host by cross memory attach: one
 * process_vm_readv moves the data from the peer's buffer into ours.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "usb4.h"
#include "usb4_link.h"

#define USB4_CMA_IOV_MAX	64

/*
 * Copies the first len bytes described by src (count entries) into dst,
 * trimmed to len; returns the number of entries used.
 */
static size_t iov_trim(struct iovec *dst, const struct iovec *src,
		       size_t count, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < count && len && n < USB4_CMA_IOV_MAX; i++) {
		size_t take = src[i].iov_len < len ? src[i].iov_len : len;
		if (!take)
			continue;
		dst[n].iov_base = src[i].iov_base;
		dst[n].iov_len = take;
		len -= take;
		n++;
	}
	return n;
}

/* Drops the first done bytes of an iov list in place. */
static void iov_advance(struct iovec **iov, size_t *count, size_t done)
{
	while (*count && done >= (*iov)->iov_len) {
		done -= (*iov)->iov_len;
		(*iov)++;
		(*count)--;
	}
	if (*count && done) {
		(*iov)->iov_base = (char *) (*iov)->iov_base + done;
		(*iov)->iov_len -= done;
	}
}

typedef ssize_t (*cma_fn)(pid_t, const struct iovec *, unsigned long,
			  const struct iovec *, unsigned long, unsigned long);

static int cma_copy(cma_fn fn, pid_t pid, const struct iovec *local,
		    size_t local_count, const struct iovec *remote,
		    size_t remote_count, size_t len)
{
	struct iovec lv[USB4_CMA_IOV_MAX], rv[USB4_CMA_IOV_MAX];
	struct iovec *l = lv, *r = rv;
	size_t ln = iov_trim(lv, local, local_count, len);
	size_t rn = iov_trim(rv, remote, remote_count, len);

	while (len) {
		ssize_t got = fn(pid, l, ln, r, rn, 0);
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
		iov_advance(&l, &ln, got);
		iov_advance(&r, &rn, got);
	}
	return 0;
}

int usb4_shm_bulk_read(pid_t pid, const struct iovec *local, size_t local_count,
		       const struct iovec *remote, size_t remote_count,
		       size_t len)
{
	return cma_copy(process_vm_readv, pid, local, local_count, remote,
			remote_count, len);
}

int usb4_shm_bulk_write(pid_t pid, const struct iovec *local,
			size_t local_count, const struct iovec *remote,
			size_t remote_count, size_t len)
{
	return cma_copy(process_vm_writev, pid, local, local_count, remote,
			remote_count, len);
}
