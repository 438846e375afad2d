/* Small services every layer uses: randomness, the clock, our pid and
 * whether another has exited, the host's id. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "usb4.h"

uint64_t usb4_random64(void)
{
	uint64_t v = 0;

	while (v == 0) {
		ssize_t got = getrandom(&v, sizeof(v), 0);
		if (got != (ssize_t) sizeof(v) && errno != EINTR)
			v = 0;
	}
	return v;
}

uint64_t usb4_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* The vDSO answers the coarse clocks from its own data page whatever the
 * clocksource: where CLOCK_MONOTONIC is a system call, this is not. */
uint64_t usb4_coarse_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t) ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static _Atomic uint32_t cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void pid_forget(void)
{
	atomic_store(&cached_pid, 0);
}

static void pid_once_init(void)
{
	pthread_atfork(NULL, NULL, pid_forget);
}

/* Pins of the registration table are taken per process, on every one-sided
 * access: getpid() is a system call since glibc 2.25. */
uint32_t usb4_pid(void)
{
	uint32_t pid = atomic_load_explicit(&cached_pid, memory_order_relaxed);

	if (!pid) {
		pthread_once(&pid_once, pid_once_init);
		pid = (uint32_t) getpid();
		atomic_store_explicit(&cached_pid, pid, memory_order_relaxed);
	}
	return pid;
}

bool usb4_pid_gone(uint32_t pid)
{
	return kill((pid_t) pid, 0) && errno == ESRCH;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t usb4_host_id(void)
{
	static uint64_t cached;
	char boot[64] = "";
	struct stat st = {0};
	uint64_t h = 0xcbf29ce484222325ull;
	int fd;

	if (cached)
		return cached;
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, boot, sizeof(boot) - 1);
		(void) n;
		close(fd);
	}
	stat("/proc/self/ns/net", &st);
	h = fnv1a(h, boot, strlen(boot));
	h = fnv1a(h, &st.st_ino, sizeof(st.st_ino));
	cached = h ? h : 1;
	return cached;
}
