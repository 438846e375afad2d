/*
 * Unit tests of the shm link (link/usb4_link_shm.c, link/usb4_link_cma.c):
 * the inbox ring seen from its own peer mapping and from a forked producer,
 * backpressure, blocking waits that neither return early nor spin, the
 * cross-memory-attach bulk read, and that nothing is left in /dev/shm.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "usb4.h"
#include "usb4_link.h"
#include "usb4_test.h"

#define FRAME_MAX	1000
#define SLOTS		8
#define CHILD_FRAMES	20000

/* Frames handed up by usb4_shm_link_poll, copied out. */
struct rx_log {
	size_t count;
	size_t lens[64];
	unsigned char data[64][1024];
	uint64_t next_seq;	/* child test: expected sequence number */
	size_t bad;
};

static void rx_store(void *arg, const void *frame, size_t len)
{
	struct rx_log *log = arg;

	if (log->count < 64) {
		log->lens[log->count] = len;
		memcpy(log->data[log->count], frame, len < 1024 ? len : 1024);
	}
	log->count++;
}

static void fill(unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char) (seed * 31 + i * 7);
}

static int check_fill(const unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char) (seed * 31 + i * 7))
			return 0;
	return 1;
}

static double now_s(void)
{
	return (double) usb4_now_ns() / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int count_dev_shm_usb4(void)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		/* Our segments would be named usb4-inbox-* / usb4-registry;
		 * other jobs' files (vader_segment.<host>...) do not count. */
		if (!strncmp(e->d_name, "usb4-", 5))
			n++;
	closedir(d);
	return n;
}

/* Sizes 0..frame_max, FIFO, full ring, oversized frame, via a self mapping. */
static void test_self(void)
{
	struct usb4_shm_link *link;
	struct usb4_shm_peer *peer;
	struct usb4_shm_addr addr;
	static struct rx_log log;
	static unsigned char out[2048];
	size_t fmax;
	int ret;

	CHECK_EQ(usb4_shm_link_open(&link, SLOTS, FRAME_MAX, 0x1234), 0);
	fmax = usb4_shm_link_frame_max(link);
	CHECK(fmax >= FRAME_MAX && fmax < FRAME_MAX + 128);
	usb4_shm_link_addr(link, &addr);
	CHECK_EQ(addr.pid, getpid());
	CHECK_EQ(addr.nonce, 0x1234);
	CHECK_EQ(usb4_shm_peer_open(&addr, &peer), 0);
	CHECK_EQ(usb4_shm_peer_pid(peer), getpid());

	/* Every size from 0 to frame_max, in batches that fill the ring. */
	for (size_t base = 0; base <= fmax; base += SLOTS) {
		size_t n = 0;
		memset(&log, 0, sizeof(log));
		for (size_t len = base; len <= fmax && n < SLOTS; len++, n++) {
			struct iovec iov[2];
			fill(out, len, (unsigned) len);
			/* Gather from two pieces to exercise the iov copy. */
			iov[0].iov_base = out;
			iov[0].iov_len = len / 3;
			iov[1].iov_base = out + len / 3;
			iov[1].iov_len = len - len / 3;
			CHECK_EQ(usb4_shm_send(peer, iov, 2), 0);
		}
		CHECK_EQ(usb4_shm_link_poll(link, rx_store, &log, 64), (int) n);
		CHECK_EQ(log.count, n);
		for (size_t i = 0; i < n; i++) {
			CHECK_EQ(log.lens[i], base + i);
			CHECK(check_fill(log.data[i], base + i,
					 (unsigned) (base + i)));
		}
	}

	/* Full ring: -FI_EAGAIN, and room again once polled. */
	memset(&log, 0, sizeof(log));
	for (int i = 0; i < SLOTS; i++) {
		struct iovec iov = { out, 4 };
		out[0] = (unsigned char) i;
		CHECK_EQ(usb4_shm_send(peer, &iov, 1), 0);
	}
	{
		struct iovec iov = { out, 4 };
		out[0] = 0xee;
		CHECK_EQ(usb4_shm_send(peer, &iov, 1), -FI_EAGAIN);
		CHECK_EQ(usb4_shm_send(peer, &iov, 1), -FI_EAGAIN);
		/* Poll just one: exactly one slot comes back. */
		CHECK_EQ(usb4_shm_link_poll(link, rx_store, &log, 1), 1);
		CHECK_EQ(usb4_shm_send(peer, &iov, 1), 0);
		CHECK_EQ(usb4_shm_send(peer, &iov, 1), -FI_EAGAIN);
		CHECK_EQ(usb4_shm_link_poll(link, rx_store, &log, 64), SLOTS);
		CHECK_EQ(log.count, SLOTS + 1);
		for (int i = 0; i < SLOTS; i++)
			CHECK_EQ(log.data[i][0], i);
		CHECK_EQ(log.data[SLOTS][0], 0xee);
		CHECK_EQ(usb4_shm_link_poll(link, rx_store, &log, 64), 0);
	}

	/* Oversized frame, even split across iovs; the ring is untouched. */
	{
		static unsigned char big[4096];
		struct iovec iov[2] = { { big, fmax }, { big, 1 } };
		CHECK_EQ(usb4_shm_send(peer, iov, 1), 0);
		CHECK_EQ(usb4_shm_send(peer, iov, 2), -FI_EMSGSIZE);
		memset(&log, 0, sizeof(log));
		CHECK_EQ(usb4_shm_link_poll(link, rx_store, &log, 64), 1);
		CHECK_EQ(log.lens[0], fmax);
	}

	/* Wrong nonce (pid/fd reuse guard) and wrong pid: no mapping. */
	{
		struct usb4_shm_peer *bad = NULL;
		struct usb4_shm_addr a = addr;
		a.nonce ^= 1;
		ret = usb4_shm_peer_open(&a, &bad);
		CHECK(ret < 0);
		a = addr;
		a.fd = 9999;
		CHECK(usb4_shm_peer_open(&a, &bad) < 0);
		a = addr;
		a.pid = getppid();
		CHECK(usb4_shm_peer_open(&a, &bad) < 0);
	}

	/* A poll on an empty ring hands nothing up. */
	CHECK_EQ(usb4_shm_link_poll(link, rx_store, &log, 64), 0);

	usb4_shm_peer_close(peer);
	usb4_shm_link_close(link);
}

/* Child: posts CHILD_FRAMES sequenced frames of varying size, then exits. */
static void child_produce(const struct usb4_shm_addr *addr, int start_fd)
{
	struct usb4_shm_peer *peer;
	static unsigned char out[FRAME_MAX];
	char go;

	if (usb4_shm_peer_open(addr, &peer))
		_exit(2);
	/* Let the parent block first so the wake-up path is exercised. */
	if (read(start_fd, &go, 1) != 1)
		_exit(3);
	usleep(50 * 1000);
	for (uint64_t seq = 0; seq < CHILD_FRAMES; seq++) {
		size_t len = 8 + (seq * 13) % (FRAME_MAX - 8);
		struct iovec iov = { out, len };
		memcpy(out, &seq, 8);
		fill(out + 8, len - 8, (unsigned) seq);
		while (usb4_shm_send(peer, &iov, 1) == -FI_EAGAIN)
			sched_yield();
	}
	usb4_shm_peer_close(peer);
	_exit(0);
}

static void rx_check_seq(void *arg, const void *frame, size_t len)
{
	struct rx_log *log = arg;
	uint64_t seq;
	const unsigned char *p = frame;

	if (len < 8) {
		log->bad++;
		return;
	}
	memcpy(&seq, p, 8);
	if (seq != log->next_seq ||
	    len != 8 + (seq * 13) % (FRAME_MAX - 8) ||
	    !check_fill(p + 8, len - 8, (unsigned) seq))
		log->bad++;
	log->next_seq = seq + 1;
	log->count++;
}

/* A forked producer; the parent blocks in usb4_shm_link_wait between polls. */
static void test_child_producer(void)
{
	struct usb4_shm_link *link;
	struct usb4_shm_addr addr;
	static struct rx_log log;
	int pipefd[2], status;
	double t0, c0, waited, cpu;
	pid_t pid;
	size_t waits = 0;

	CHECK_EQ(usb4_shm_link_open(&link, SLOTS, FRAME_MAX, usb4_random64()), 0);
	usb4_shm_link_addr(link, &addr);

	/* Idle wait: not early, not spinning. */
	t0 = now_s();
	c0 = cpu_s();
	usb4_shm_link_wait(link, 200);
	waited = now_s() - t0;
	cpu = cpu_s() - c0;
	CHECK(waited >= 0.190);
	CHECK(waited < 1.0);
	CHECK(cpu < 0.05);
	if (waited < 0.190 || cpu >= 0.05)
		fprintf(stderr, "idle wait: %.3f s wall, %.3f s cpu\n",
			waited, cpu);

	CHECK_EQ(pipe(pipefd), 0);
	pid = fork();
	if (pid == 0) {
		close(pipefd[1]);
		child_produce(&addr, pipefd[0]);
	}
	close(pipefd[0]);
	memset(&log, 0, sizeof(log));
	CHECK_EQ(write(pipefd[1], "g", 1), 1);

	/* The child sleeps 50 ms before its first frame: the wait must wake
	 * for it well before the 5 s timeout. */
	t0 = now_s();
	usb4_shm_link_wait(link, 5000);
	CHECK(now_s() - t0 < 2.0);

	t0 = now_s();
	while (log.count < CHILD_FRAMES && now_s() - t0 < 8.0) {
		if (!usb4_shm_link_poll(link, rx_check_seq, &log, 32)) {
			usb4_shm_link_wait(link, 1000);
			waits++;
		}
	}
	CHECK_EQ(log.count, CHILD_FRAMES);
	CHECK_EQ(log.bad, 0);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(pipefd[1]);
	usb4_shm_link_close(link);
}

/* Child for the bulk tests: keeps its buffers alive until told to go. */
static void child_hold(int go_fd)
{
	char c;

	(void) !read(go_fd, &c, 1);
	_exit(0);
}

static void test_bulk_read(void)
{
	/* Set up before fork: the child has the same addresses and contents. */
	static unsigned char src_a[3000], src_b[50000], src_c[7];
	static unsigned char dst_a[100], dst_b[60000];
	unsigned char expect[53007];
	struct iovec remote[3] = {
		{ src_a, sizeof(src_a) }, { src_b, sizeof(src_b) },
		{ src_c, sizeof(src_c) },
	};
	struct iovec local[2] = { { dst_a, sizeof(dst_a) }, { dst_b, sizeof(dst_b) } };
	size_t total = sizeof(src_a) + sizeof(src_b) + sizeof(src_c);
	int pipefd[2], status;
	pid_t pid;

	fill(src_a, sizeof(src_a), 1);
	fill(src_b, sizeof(src_b), 2);
	fill(src_c, sizeof(src_c), 3);
	memcpy(expect, src_a, sizeof(src_a));
	memcpy(expect + sizeof(src_a), src_b, sizeof(src_b));
	memcpy(expect + sizeof(src_a) + sizeof(src_b), src_c, sizeof(src_c));

	CHECK_EQ(pipe(pipefd), 0);
	pid = fork();
	if (pid == 0) {
		close(pipefd[1]);
		child_hold(pipefd[0]);
	}
	close(pipefd[0]);
	/* Scribble over our copies so only the child's data can pass. */
	memset(src_a, 0, sizeof(src_a));
	memset(src_b, 0, sizeof(src_b));
	memset(src_c, 0, sizeof(src_c));

	CHECK_EQ(usb4_shm_bulk_read(pid, local, 2, remote, 3, total), 0);
	CHECK(memcmp(dst_a, expect, sizeof(dst_a)) == 0);
	CHECK(memcmp(dst_b, expect + sizeof(dst_a), total - sizeof(dst_a)) == 0);

	/* A prefix only: the rest of the local buffer is untouched. */
	memset(dst_a, 0xaa, sizeof(dst_a));
	memset(dst_b, 0xaa, sizeof(dst_b));
	CHECK_EQ(usb4_shm_bulk_read(pid, local, 2, remote, 3, 3050), 0);
	CHECK(memcmp(dst_a, expect, 100) == 0);
	CHECK(memcmp(dst_b, expect + 100, 2950) == 0);
	CHECK_EQ(dst_b[2950], 0xaa);

	/* Zero bytes is a no-op. */
	CHECK_EQ(usb4_shm_bulk_read(pid, local, 2, remote, 3, 0), 0);

	/* A remote range the child doesn't map. */
	{
		struct iovec bad = { (void *) 16, 100 };
		CHECK(usb4_shm_bulk_read(pid, local, 2, &bad, 1, 100) < 0);
	}

	CHECK_EQ(write(pipefd[1], "g", 1), 1);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	close(pipefd[1]);

	/* The child is gone (and reaped): its pid no longer exists. */
	CHECK_EQ(usb4_shm_bulk_read(pid, local, 2, remote, 3, total),
		 -FI_EHOSTUNREACH);
}

/* Many links opened and closed leave no trace in /dev/shm. */
static void test_no_residue(void)
{
	struct usb4_shm_link *links[4];
	int before = count_dev_shm_usb4();

	for (int i = 0; i < 4; i++)
		CHECK_EQ(usb4_shm_link_open(&links[i], 16, 256, i + 1), 0);
	CHECK_EQ(count_dev_shm_usb4(), before);
	for (int i = 0; i < 4; i++)
		usb4_shm_link_close(links[i]);
	CHECK_EQ(count_dev_shm_usb4(), 0);
	CHECK_EQ(before, 0);
	usb4_shm_link_close(NULL);
	usb4_shm_peer_close(NULL);
}

int main(void)
{
	alarm(30);
	test_self();
	test_child_producer();
	test_bulk_read();
	test_no_residue();
	return usb4_test_done("test_shm_ring");
}
