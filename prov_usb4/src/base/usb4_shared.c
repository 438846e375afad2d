/*
 * Memory shared with other processes of the host: a memfd, named only in
 * /proc/<pid>/maps, so two jobs never collide and a crashed process leaves
 * nothing behind.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "usb4.h"

int usb4_shared_create(const char *name, size_t len, void **mem, int *fdp)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	void *p;
	int ret;

	if (fd < 0) {
		ret = -errno;
		USB4_WARN(FI_LOG_CORE, "memfd_create: %s\n", strerror(errno));
		return ret;
	}
	if (ftruncate(fd, len)) {
		ret = -errno;
		goto err_close_fd;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		goto err_close_fd;
	}
	*mem = p;
	*fdp = fd;
	return 0;

err_close_fd:
	close(fd);
	return ret;
}

void usb4_shared_destroy(void *mem, size_t len, int fd)
{
	if (mem)
		munmap(mem, len);
	if (fd >= 0)
		close(fd);
}
