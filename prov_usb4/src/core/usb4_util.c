/* Small services every layer uses: randomness and the clock. */
#include <errno.h>
#include <sys/random.h>
#include <time.h>

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
