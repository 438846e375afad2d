/*
 * What the cross-host test programs (usb4_xpeer, usb4_xmulti, usb4_xdriver)
 * share: the clock, dying with a message, checking fi_* calls, a watchdog.
 * Each program sets xhost_prog (its name) and, if it has one, xhost_role.
 */
#ifndef XHOST_COMMON_H
#define XHOST_COMMON_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fi_errno.h>

static const char *xhost_prog = "xhost";
static const char *xhost_role = "";

static inline double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static inline _Noreturn void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s%s%s: ", xhost_prog, *xhost_role ? " " : "",
		xhost_role);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* Every fi_* call that returns 0 or -FI_E*. */
#define CHECK(call) do {						\
	int _r = (int) (call);						\
	if (_r)								\
		die(2, "%s:%d %s = %d (%s)", __FILE__, __LINE__, #call,	\
		    _r, fi_strerror(-_r));				\
} while (0)

static inline void xhost_on_alarm(int sig)
{
	static const char msg[] = ": watchdog fired, giving up\n";

	(void) sig;
	(void) !write(2, xhost_prog, strlen(xhost_prog));
	(void) !write(2, msg, sizeof(msg) - 1);
	_exit(124);
}

/* Exits with 124 after seconds, whatever the program is doing. */
static inline void xhost_watchdog(unsigned seconds)
{
	signal(SIGALRM, xhost_on_alarm);
	alarm(seconds);
}

#endif /* XHOST_COMMON_H */
