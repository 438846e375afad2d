/*
 * Minimal unit-test support: CHECK records a failure with its location and
 * keeps going; usb4_test_done() prints the tally and gives the exit code
 * that automake's test driver reads (0 pass, 1 fail).
 */
#ifndef USB4_TEST_H
#define USB4_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int usb4_test_failures;
static int usb4_test_checks;

#define CHECK(cond) do { \
	usb4_test_checks++; \
	if (!(cond)) { \
		usb4_test_failures++; \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
			__LINE__, #cond); \
	} \
} while (0)

#define CHECK_EQ(a, b) do { \
	long long _a = (long long) (a), _b = (long long) (b); \
	usb4_test_checks++; \
	if (_a != _b) { \
		usb4_test_failures++; \
		fprintf(stderr, "%s:%d: CHECK_EQ failed: %s = %lld, %s = %lld\n", \
			__FILE__, __LINE__, #a, _a, #b, _b); \
	} \
} while (0)

/* The same, saying in words what went wrong (printf-style). */
#define CHECK_MSG(cond, ...) do { \
	usb4_test_checks++; \
	if (!(cond)) { \
		usb4_test_failures++; \
		fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, \
			__LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
	} \
} while (0)

#define CHECK_EQ_MSG(a, b, ...) do { \
	long long _a = (long long) (a), _b = (long long) (b); \
	usb4_test_checks++; \
	if (_a != _b) { \
		usb4_test_failures++; \
		fprintf(stderr, "%s:%d: CHECK_EQ failed: %s = %lld, %s = %lld: ", \
			__FILE__, __LINE__, #a, _a, #b, _b); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
	} \
} while (0)

/*
 * Children that report by exit status: fork with stdio flushed (nothing
 * buffered is written twice), and end with exit, not _exit, so that the
 * libraries' destructors run and a leak check of the child (valgrind
 * --leak-check=full follows forks) sees only what the child itself leaked.
 */
static inline pid_t usb4_test_fork(void)
{
	fflush(NULL);
	return fork();
}

static inline _Noreturn void usb4_test_child_exit(int code)
{
	exit(code);
}

static inline int usb4_test_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, usb4_test_checks,
	       usb4_test_failures);
	return usb4_test_failures ? 1 : 0;
}

#endif /* USB4_TEST_H */
