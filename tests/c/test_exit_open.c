/*
 * A process that exits with its domain still open (an error path, an
 * abort, a collective library giving up) ends with its own exit code.
 *
 * The domain's progress thread runs provider code; libfabric's destructor
 * calls the provider's cleanup and then unloads the provider.  A thread
 * still running then executes unmapped code: SIGSEGV (exit 139 and a core
 * in place of the application's code), as the collective conformance
 * test's ranks did when one gave up on a stale address.  Each child here
 * opens a domain whose endpoint starts the thread (other hosts reachable:
 * FI_USB4_IFACE=lo), with the thread waking every millisecond, and calls
 * exit(EXIT_CODE) without closing anything.  Every child must end with
 * EXIT_CODE.  dlclose is this test's (exported, so libfabric's call comes
 * here): the real one, then a datagram to every UDP socket of the process
 * (as a peer's would come) and a pause, so a thread left sleeping on the
 * provider's links wakes while the provider is gone: a crash every time,
 * not once in a hundred exits.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include "usb4_test.h"

#define CHILDREN	4
#define EXIT_CODE	3
#define UNLOAD_PAUSE_NS	(50 * 1000 * 1000)
#define FD_MAX		1024

/* One datagram to each UDP socket of this process: wakes whoever polls it. */
static void poke_udp_sockets(void)
{
	static const char junk[] = "wake";
	int out = socket(AF_INET, SOCK_DGRAM, 0);

	for (int fd = 0; out >= 0 && fd < FD_MAX; fd++) {
		struct sockaddr_in a;
		socklen_t len = sizeof(a);
		int type;
		socklen_t tlen = sizeof(type);

		if (fd == out || getsockname(fd, (struct sockaddr *) &a, &len) ||
		    a.sin_family != AF_INET ||
		    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) ||
		    type != SOCK_DGRAM)
			continue;
		if (a.sin_addr.s_addr == htonl(INADDR_ANY))
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		(void) !sendto(out, junk, sizeof(junk), 0,
			       (struct sockaddr *) &a, sizeof(a));
	}
	if (out >= 0)
		close(out);
}

/* libfabric unloads the provider with this at exit.  Default visibility
 * (the build hides symbols) and exported (LDFLAGS). */
__attribute__((visibility("default")))
int dlclose(void *handle)
{
	static int (*real)(void *);
	struct timespec pause = { 0, UNLOAD_PAUSE_NS };
	int ret;

	if (!real)
		real = (int (*)(void *)) dlsym(RTLD_NEXT, "dlclose");
	ret = real(handle);
	poke_udp_sockets();
	nanosleep(&pause, NULL);
	return ret;
}

static int child(void)
{
	struct fi_info *hints = fi_allocinfo(), *info = NULL;
	struct fi_av_attr av_attr = { .type = FI_AV_TABLE };
	struct fi_cq_attr cq_attr = { .format = FI_CQ_FORMAT_TAGGED };
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *ep;
	struct timespec pause = { 0, 3 * 1000 * 1000 };

	if (!hints)
		return 2;
	hints->ep_attr->type = FI_EP_RDM;
	hints->caps = FI_TAGGED | FI_REMOTE_COMM;
	hints->domain_attr->threading = FI_THREAD_SAFE;
	hints->fabric_attr->prov_name = strdup("usb4");
	if (fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, hints, &info) ||
	    fi_fabric(info->fabric_attr, &fabric, NULL) ||
	    fi_domain(fabric, info, &domain, NULL) ||
	    fi_av_open(domain, &av_attr, &av, NULL) ||
	    fi_cq_open(domain, &cq_attr, &cq, NULL) ||
	    fi_endpoint(domain, info, &ep, NULL) ||
	    fi_ep_bind(ep, &av->fid, 0) ||
	    fi_ep_bind(ep, &cq->fid, FI_TRANSMIT | FI_RECV) ||
	    fi_enable(ep))
		return 2;
	/* The thread is up and sweeping; leave everything open. */
	nanosleep(&pause, NULL);
	exit(EXIT_CODE);
}

int main(void)
{
	int crashed = 0, other = 0;

	setenv("FI_USB4_IFACE", "lo", 1);
	setenv("FI_USB4_PROGRESS_IDLE_MS", "1", 1);
	/* One at a time: light on a machine that runs other tests beside. */
	for (int i = 0; i < CHILDREN; i++) {
		pid_t pid = usb4_test_fork();
		int st;

		if (pid == 0)
			_exit(child());
		if (pid < 0 || waitpid(pid, &st, 0) != pid)
			other++;
		else if (WIFSIGNALED(st))
			crashed++;
		else if (WEXITSTATUS(st) != EXIT_CODE)
			other++;
	}
	CHECK_EQ_MSG(crashed, 0, "%d of %d children killed by a signal at exit",
		     crashed, CHILDREN);
	CHECK_EQ_MSG(other, 0, "%d of %d children ended with another code",
		     other, CHILDREN);
	return usb4_test_done("test_exit_open");
}
