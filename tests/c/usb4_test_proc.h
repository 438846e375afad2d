/*
 * The provider's shared memory as /proc shows it: another process's memfd
 * mapped through /proc/<pid>/fd/<fd>, as a same-host peer maps the shm inbox
 * and the registration table; and counts of our own memfds, so that a test
 * can tell nothing was left behind.  For the tests of the shm link and of
 * the registration table.
 */
#ifndef USB4_TEST_PROC_H
#define USB4_TEST_PROC_H

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
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

/* Entries of /proc/self/fd (-1: unreadable), and in *usb4_memfds the ones
 * that are our memfds. */
static inline int usb4_test_count_fds(int *usb4_memfds)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	*usb4_memfds = 0;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[PATH_MAX], target[PATH_MAX];
		ssize_t len;

		if (e->d_name[0] == '.')
			continue;
		n++;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len > 0) {
			target[len] = '\0';
			*usb4_memfds += !!strstr(target, "memfd:usb4-");
		}
	}
	closedir(d);
	return n;
}

/* Our memfd mappings still in the address space; -1: unreadable. */
static inline int usb4_test_count_usb4_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += !!strstr(line, "memfd:usb4-");
	fclose(f);
	return n;
}

/* Files of ours in /dev/shm (a memfd never shows there). */
static inline int usb4_test_count_dev_shm_usb4(void)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		/* Other jobs' files (vader_segment.<host>...) do not count. */
		if (!strncmp(e->d_name, "usb4-", 5))
			n++;
	closedir(d);
	return n;
}

#endif /* USB4_TEST_PROC_H */
