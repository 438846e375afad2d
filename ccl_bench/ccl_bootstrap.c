/* The communicator's unique id from rank 0 to the other ranks, without MPI:
 *   USB4_CCL_ID_FILE=path     rank 0 writes the id to path.tmp.<pid> and
 *                             renames it to path (atomic); the others wait
 *                             for path to appear and read it.  The file must
 *                             not exist before the run (the launcher gives a
 *                             fresh path); rank 0 removes it once every rank
 *                             has joined the communicator.
 *   USB4_CCL_ID_ADDR=host:port  rank 0 listens there and sends the id to each
 *                             of the n-1 ranks that connect.
 * Ranks wait up to USB4_CCL_ID_TIMEOUT seconds (default 60) for rank 0. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ccl_bench.h"

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double deadline(void)
{
	const char *s = getenv("USB4_CCL_ID_TIMEOUT");

	return now_sec() + (s ? atof(s) : 60.0);
}

static int write_all(int fd, const void *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int id_file_write(const char *path, const onecclUniqueId *id)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	f = fopen(tmp, "wb");
	if (!f)
		return -1;
	if (fwrite(id, sizeof(*id), 1, f) != 1) {
		fclose(f);
		unlink(tmp);
		return -1;
	}
	if (fclose(f) || rename(tmp, path)) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int id_file_read(const char *path, onecclUniqueId *id)
{
	double end = deadline();
	FILE *f;

	while (!(f = fopen(path, "rb"))) {
		if (errno != ENOENT || now_sec() > end)
			return -1;
		usleep(10000);
	}
	if (fread(id, sizeof(*id), 1, f) != 1) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

/* "host:port" (the last colon splits, so "[::1]" style needs no port
 * games: IPv6 literals are given without brackets, e.g. ::1:29500) */
static struct addrinfo *resolve(const char *addr, int passive)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	struct addrinfo *res = NULL;
	char host[256];
	const char *colon = strrchr(addr, ':');

	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return NULL;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res))
		return NULL;
	return res;
}

static int listen_on(const char *addr)
{
	struct addrinfo *ai = resolve(addr, 1);
	int fd, one = 1;

	if (!ai)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
			bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64))) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static int id_socket_serve(const char *addr, const onecclUniqueId *id,
			   int nranks)
{
	int lfd = listen_on(addr);
	double end = deadline();
	int served = 0;

	if (lfd < 0)
		return -1;
	while (served < nranks - 1 && now_sec() < end) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 100) <= 0)
			continue;
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		if (!write_all(fd, id, sizeof(*id)))
			served++;
		close(fd);
	}
	close(lfd);
	return served == nranks - 1 ? 0 : -1;
}

static int connect_to(const char *addr)
{
	struct addrinfo *ai = resolve(addr, 0);
	int fd;

	if (!ai)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static int id_socket_fetch(const char *addr, onecclUniqueId *id)
{
	double end = deadline();
	int fd, rc;

	while ((fd = connect_to(addr)) < 0) {
		if (now_sec() > end)
			return -1;
		usleep(20000);
	}
	rc = read_all(fd, id, sizeof(*id));
	close(fd);
	return rc;
}

int ccl_id_share(onecclUniqueId *id, int rank, int nranks)
{
	const char *file = getenv("USB4_CCL_ID_FILE");
	const char *addr = getenv("USB4_CCL_ID_ADDR");
	int rc;

	if (rank == 0 && onecclGetUniqueId(id) != onecclSuccess)
		return -1;
	if (file)
		rc = rank == 0 ? id_file_write(file, id) : id_file_read(file, id);
	else if (addr)
		rc = rank == 0 ? id_socket_serve(addr, id, nranks) :
				 id_socket_fetch(addr, id);
	else
		rc = nranks == 1 ? 0 : -1;
	if (rc)
		fprintf(stderr, "ccl_bench: rank %d: unique id not shared through "
			"%s: %s\n", rank, file ? file : addr ? addr :
			"(set USB4_CCL_ID_FILE or USB4_CCL_ID_ADDR)",
			errno ? strerror(errno) : "timeout");
	return rc;
}

/* every rank has joined: the id file has served its purpose */
void ccl_id_done(int rank)
{
	const char *file = getenv("USB4_CCL_ID_FILE");

	if (rank == 0 && file)
		unlink(file);
}
