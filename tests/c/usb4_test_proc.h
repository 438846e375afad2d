/*
 * Another process's memory as a same-host peer of the provider sees it: a
 * memfd mapped through /proc/<pid>/fd/<fd> (the shm inbox, the registration
 * table).  For the tests of the shm link and of the registration table.
 */
#ifndef USB4_TEST_PROC_H
#define USB4_TEST_PROC_H

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* Maps /proc/<pid>/fd/<fd> read-write, as a peer does; NULL on failure. */
static inline void *usb4_test_map_proc_fd(pid_t pid, int fd, size_t *len)
{
	char path[64];
	struct stat st;
	void *mem;
	int pfd;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, fd);
	pfd = open(path, O_RDWR | O_CLOEXEC);
	if (pfd < 0)
		return NULL;
	if (fstat(pfd, &st) || st.st_size <= 0) {
		close(pfd);
		return NULL;
	}
	*len = st.st_size;
	mem = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
	close(pfd);
	return mem == MAP_FAILED ? NULL : mem;
}

#endif /* USB4_TEST_PROC_H */
