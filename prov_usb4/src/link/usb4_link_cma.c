/*
 * Bulk copies between processes of one host by cross memory attach: one
 * process_vm_readv moves the data from the peer's buffer into ours.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "usb4_shm.h"

#define USB4_CMA_IOV_MAX	64

typedef ssize_t (*cma_fn)(pid_t, const struct iovec *, unsigned long,
			  const struct iovec *, unsigned long, unsigned long);

/* One system call per USB4_CMA_IOV_MAX segments of either list. */
static int cma_copy(cma_fn fn, pid_t pid, const struct iovec *local,
		    size_t local_count, const struct iovec *remote,
		    size_t remote_count, size_t len)
{
	struct iovec lv[USB4_CMA_IOV_MAX], rv[USB4_CMA_IOV_MAX];
	size_t done = 0;

	while (done < len) {
		int ln = usb4_iov_slice(local, local_count, done, len - done, lv,
					USB4_CMA_IOV_MAX);
		int rn = usb4_iov_slice(remote, remote_count, done, len - done,
					rv, USB4_CMA_IOV_MAX);
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
		done += got;
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
