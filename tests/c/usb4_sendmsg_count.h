/*
 * For tests that count the datagrams the provider sends: the test's own
 * sendmsg counts each one in `datagrams` and passes it on.  Include
 * usb4_sendto_shim.h beside it so that datagrams sent by sendto count too.
 * The test links with -Wl,--export-dynamic so the provider calls it.
 */
#ifndef USB4_SENDMSG_COUNT_H
#define USB4_SENDMSG_COUNT_H

#include <dlfcn.h>
#include <stdatomic.h>
#include <sys/socket.h>

static atomic_ulong datagrams;

/* Default visibility (the build hides symbols) and exported (LDFLAGS). */
__attribute__((visibility("default")))
ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	static ssize_t (*real)(int, const struct msghdr *, int);

	if (!real)
		real = (ssize_t (*)(int, const struct msghdr *, int))
		       dlsym(RTLD_NEXT, "sendmsg");
	atomic_fetch_add(&datagrams, 1);
	return real(fd, msg, flags);
}

#endif
