/*
 * What a same-host get or put of a few bytes costs through cross-memory
 * attach on this machine: process_vm_readv and process_vm_writev of
 * `bytes` (default 8) from and into a forked child, beside the cheapest
 * system call (getppid).  The shm link's one-sided copy is these calls;
 * how much more than a bare system call they take (the kernel pins the
 * target's page each time) differs between machines, which is why gets,
 * puts and atomics of up to 256 B are first offered on the target's board
 * (src/core/usb4_mr_board.c).
 *
 *   gcc -O2 bench/cma_cost.c -o /tmp/cma_cost && /tmp/cma_cost [bytes]
 *
 * Prints the median of 5 rounds of 100,000 calls each, in ns per call.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CALLS	100000
#define ROUNDS	5

enum call { CALL_READ, CALL_WRITE, CALL_NULL };

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;

	return (x > y) - (x < y);
}

/* ns per call, median of ROUNDS. */
static double time_call(enum call c, pid_t child, void *there, size_t bytes)
{
	char here[4096];
	struct iovec l = { here, bytes }, r = { there, bytes };
	double ns[ROUNDS];

	for (int k = 0; k < ROUNDS; k++) {
		double t = now_ns();

		for (int i = 0; i < CALLS; i++) {
			ssize_t n = 0;

			if (c == CALL_READ)
				n = process_vm_readv(child, &l, 1, &r, 1, 0);
			else if (c == CALL_WRITE)
				n = process_vm_writev(child, &l, 1, &r, 1, 0);
			else
				syscall(SYS_getppid);
			if (n < 0) {
				perror("process_vm");
				exit(1);
			}
		}
		ns[k] = (now_ns() - t) / CALLS;
	}
	qsort(ns, ROUNDS, sizeof(ns[0]), by_value);
	return ns[ROUNDS / 2];
}

int main(int argc, char **argv)
{
	static char target[4096] __attribute__((aligned(4096)));
	size_t bytes = argc > 1 ? strtoul(argv[1], NULL, 0) : 8;
	pid_t child;

	if (!bytes || bytes > sizeof(target)) {
		fprintf(stderr, "bytes: 1-%zu\n", sizeof(target));
		return 2;
	}
	target[0] = 1;	/* mapped before the fork: the child shares it */
	child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	printf("process_vm_readv %zu B  %.0f ns\n", bytes,
	       time_call(CALL_READ, child, target, bytes));
	printf("process_vm_writev %zu B %.0f ns\n", bytes,
	       time_call(CALL_WRITE, child, target, bytes));
	printf("getppid              %.0f ns\n",
	       time_call(CALL_NULL, child, target, bytes));
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return 0;
}
