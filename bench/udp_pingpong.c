/*
 * udp_pingpong: the raw UDP floor between two hosts, in OSU's output format.
 *
 *   server:  udp_pingpong -s [-B addr] [-p port] [-b] [-P] [-t idle_sec]
 *   client:  udp_pingpong -c <server addr> [-p port] [-b] [-P] [-m max] [-M max_datagram]
 *                         [-i iters] [-x warmup]
 *
 * Latency (default): for every size 0, 1, 2, 4, ... up to the largest
 * datagram (-M, default 65507; give mtu - 28 to stay unfragmented) the
 * client sends one datagram and waits in a blocking recvfrom for the
 * server's echo of the same length; half the round trip in microseconds.
 * -P (both ends) polls with non-blocking receives instead: no sleep and
 * wake-up per message, as MPI stacks that busy-poll (on a VM the wake-up
 * of an idle vCPU alone can cost tens of microseconds).
 *
 * Bandwidth (-b): for every message size 8 B .. -m (default 1 MiB) the
 * client sends a window of messages, each chopped into datagrams of at most
 * -M bytes, then waits for the server's ack of the whole window; MB/s
 * (10^6 bytes per second, as OSU) of payload.  Every datagram starts with a
 * header (window id, datagrams in the window); a window that loses a
 * datagram is not acked within ACK_TIMEOUT_MS and is sent again under a new
 * id: losses are counted and printed, never hidden.
 *
 * The server runs until it has been idle for -t seconds (default 10) or is
 * killed; it echoes (latency) or counts and acks (bandwidth).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define UDP_MAX_DATAGRAM 65507		/* IPv4 UDP payload limit, bytes */
#define DEFAULT_PORT 18515
#define DEFAULT_BW_MAX (1 << 20)	/* bytes */
#define BW_MIN 8			/* bytes: room for the header */
#define WINDOW_BYTES (1 << 20)		/* at most this much in flight, bytes */
#define WINDOW_MSGS 64			/* messages per window (OSU's osu_bw) */
#define SOCK_BUF (16 << 20)		/* socket buffers, bytes */
#define ACK_TIMEOUT_MS 200
#define LAT_LARGE 8192			/* sizes above: fewer iterations, bytes */

/* Bandwidth datagram header, host order (both ends are this program). */
struct bw_hdr {
	uint32_t window;	/* window id, never 0 */
	uint32_t count;		/* datagrams in the window */
};

struct opts {
	int server;
	const char *peer;	/* client: server address */
	const char *bind_addr;	/* server: local address, default any */
	int port;
	int bw;
	size_t max_size;	/* largest message */
	size_t max_dgram;	/* largest datagram */
	int iters;		/* 0: OSU defaults */
	int warmup;
	int idle_sec;
	int poll;		/* spin on MSG_DONTWAIT instead of blocking */
};

static int recv_flags;	/* MSG_DONTWAIT under -P */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what)
{
	fprintf(stderr, "udp_pingpong: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: udp_pingpong -s [-B addr] [-p port] [-b] [-P] [-t idle_sec]\n"
		"       udp_pingpong -c server [-p port] [-b] [-P] [-m max_size] "
		"[-M max_datagram] [-i iters] [-x warmup]\n");
	exit(2);
}

static int set_timeout(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* A UDP socket with large buffers, bound (server) or connected (client). */
static int open_socket(const struct opts *o)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(o->port) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int buf = SOCK_BUF;

	if (fd < 0)
		die("socket");
	/* FORCE variants pass rmem_max as root; fall back to the capped ones. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	if (o->server) {
		int one = 1;

		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		sa.sin_addr.s_addr = htonl(INADDR_ANY);
		if (o->bind_addr && inet_pton(AF_INET, o->bind_addr, &sa.sin_addr) != 1)
			usage();
		if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)))
			die("bind");
	} else {
		if (inet_pton(AF_INET, o->peer, &sa.sin_addr) != 1)
			usage();
		if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)))
			die("connect");
	}
	return fd;
}

/* Server, latency: echo every datagram to its sender until idle_sec idle. */
static void serve_echo(int fd, char *buf, int idle_sec)
{
	struct sockaddr_in from;
	socklen_t len = sizeof(from);
	double last = now_us();
	ssize_t n;

	for (;;) {
		len = sizeof(from);
		n = recvfrom(fd, buf, UDP_MAX_DATAGRAM, recv_flags, (struct sockaddr *) &from, &len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (recv_flags && errno == EAGAIN && now_us() - last < idle_sec * 1e6)
				continue;
			return;	/* idle timeout */
		}
		last = now_us();
		if (sendto(fd, buf, n, 0, (struct sockaddr *) &from, len) < 0)
			die("sendto");
	}
}

/* Server, bandwidth: count a window's datagrams, ack it when complete. */
static void serve_bw(int fd, char *buf)
{
	struct sockaddr_in from;
	socklen_t len;
	struct bw_hdr h, cur = { 0, 0 };
	uint32_t got = 0;
	ssize_t n;

	for (;;) {
		len = sizeof(from);
		n = recvfrom(fd, buf, UDP_MAX_DATAGRAM, 0, (struct sockaddr *) &from, &len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if ((size_t) n < sizeof(h))
			continue;
		memcpy(&h, buf, sizeof(h));
		if (h.window != cur.window) {
			cur = h;
			got = 0;
		}
		if (++got == cur.count &&
		    sendto(fd, &cur.window, sizeof(cur.window), 0,
			   (struct sockaddr *) &from, len) < 0)
			die("sendto");
	}
}

static int lat_iters(const struct opts *o, size_t size, int warmup)
{
	if (warmup)
		return o->warmup ? o->warmup : (size > LAT_LARGE ? 10 : 100);
	return o->iters ? o->iters : (size > LAT_LARGE ? 1000 : 10000);
}

/* One round trip of size bytes; -1 on a lost or short echo. */
static int round_trip(int fd, char *sbuf, char *rbuf, size_t size)
{
	ssize_t n;

	if (send(fd, sbuf, size, 0) != (ssize_t) size)
		die("send");
	do
		n = recv(fd, rbuf, UDP_MAX_DATAGRAM, recv_flags);
	while (n < 0 && (errno == EINTR || (recv_flags && errno == EAGAIN)));
	return n == (ssize_t) size ? 0 : -1;
}

static void client_latency(int fd, const struct opts *o, char *sbuf, char *rbuf)
{
	size_t size, top = o->max_dgram;
	long lost = 0;

	printf("# usb4 raw UDP ping-pong (%s)\n",
	       recv_flags ? "polling non-blocking recv" : "blocking recvfrom");
	printf("# Size          Latency (us)\n");
	set_timeout(fd, ACK_TIMEOUT_MS);
	for (size = 0; size <= top; size = size ? (size * 2 > top && size < top ? top : size * 2) : 1) {
		int i, warm = lat_iters(o, size, 1), iters = lat_iters(o, size, 0);
		double t0 = 0;

		for (i = 0; i < warm + iters; i++) {
			if (i == warm)
				t0 = now_us();
			if (round_trip(fd, sbuf, rbuf, size))
				lost++;
		}
		printf("%-10zu%18.2f\n", size, (now_us() - t0) / iters / 2);
		fflush(stdout);
	}
	if (lost)
		printf("# lost round trips (timed out after %d ms each): %ld\n",
		       ACK_TIMEOUT_MS, lost);
}

/* Sends one window; returns 0 once acked, -1 if the ack did not come. */
static int send_window(int fd, char *sbuf, size_t size, int msgs, size_t dgram,
		       uint32_t window)
{
	size_t per_msg = (size + dgram - 1) / dgram;
	struct bw_hdr h = { window, (uint32_t) (per_msg * msgs) };
	uint32_t ack;
	int m;

	memcpy(sbuf, &h, sizeof(h));
	for (m = 0; m < msgs; m++) {
		size_t off;

		for (off = 0; off < size; off += dgram) {
			size_t len = size - off < dgram ? size - off : dgram;

			if (len < sizeof(h))
				len = sizeof(h);
			while (send(fd, sbuf, len, 0) < 0)
				if (errno != ENOBUFS && errno != EINTR)
					die("send");
		}
	}
	for (;;) {
		ssize_t n = recv(fd, &ack, sizeof(ack), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == sizeof(ack) && ack == window)
			return 0;
	}
}

static void client_bw(int fd, const struct opts *o, char *sbuf)
{
	uint32_t window = 0;
	long lost = 0;
	size_t size;

	printf("# usb4 raw UDP streaming bandwidth (datagrams of at most %zu B, "
	       "window acked)\n", o->max_dgram);
	printf("# Size      Bandwidth (MB/s)\n");
	set_timeout(fd, ACK_TIMEOUT_MS);
	for (size = BW_MIN; size <= o->max_size; size *= 2) {
		int msgs = WINDOW_BYTES / size < WINDOW_MSGS ? (int) (WINDOW_BYTES / size) : WINDOW_MSGS;
		int warm = o->warmup ? o->warmup : 10;
		int iters = o->iters ? o->iters : (size > LAT_LARGE ? 20 : 100);
		double t0 = 0;
		int i;

		if (msgs < 1)
			msgs = 1;
		for (i = 0; i < warm + iters; i++) {
			if (i == warm)
				t0 = now_us();
			while (send_window(fd, sbuf, size, msgs, o->max_dgram, ++window))
				lost++;
		}
		printf("%-10zu%18.2f\n", size,
		       (double) size * msgs * iters / (now_us() - t0));
		fflush(stdout);
	}
	printf("# windows resent after a lost datagram: %ld\n", lost);
}

static void parse(int argc, char **argv, struct opts *o)
{
	int c;

	*o = (struct opts) { .port = DEFAULT_PORT, .max_size = DEFAULT_BW_MAX,
			     .max_dgram = UDP_MAX_DATAGRAM, .idle_sec = 10 };
	while ((c = getopt(argc, argv, "sc:B:p:bPm:M:i:x:t:")) != -1) {
		switch (c) {
		case 's': o->server = 1; break;
		case 'c': o->peer = optarg; break;
		case 'B': o->bind_addr = optarg; break;
		case 'p': o->port = atoi(optarg); break;
		case 'b': o->bw = 1; break;
		case 'P': o->poll = 1; break;
		case 'm': o->max_size = strtoul(optarg, NULL, 0); break;
		case 'M': o->max_dgram = strtoul(optarg, NULL, 0); break;
		case 'i': o->iters = atoi(optarg); break;
		case 'x': o->warmup = atoi(optarg); break;
		case 't': o->idle_sec = atoi(optarg); break;
		default: usage();
		}
	}
	if (o->server == !!o->peer || o->port <= 0 || o->port > 65535 ||
	    o->max_dgram < BW_MIN || o->max_dgram > UDP_MAX_DATAGRAM ||
	    o->max_size < BW_MIN || o->iters < 0 || o->warmup < 0 || o->idle_sec < 1)
		usage();
}

int main(int argc, char **argv)
{
	static char sbuf[UDP_MAX_DATAGRAM], rbuf[UDP_MAX_DATAGRAM];
	struct opts o;
	int fd;

	parse(argc, argv, &o);
	if (o.poll && !o.bw)
		recv_flags = MSG_DONTWAIT;
	memset(sbuf, 0xa5, sizeof(sbuf));
	fd = open_socket(&o);
	if (o.server) {
		set_timeout(fd, o.idle_sec * 1000);
		if (o.bw)
			serve_bw(fd, rbuf);
		else
			serve_echo(fd, rbuf, o.idle_sec);
	} else if (o.bw) {
		client_bw(fd, &o, sbuf);
	} else {
		client_latency(fd, &o, sbuf, rbuf);
	}
	close(fd);
	return 0;
}
