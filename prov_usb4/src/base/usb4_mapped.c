/*
 * Whether a range of addresses is memory this process maps: what memory
 * registration asks before it lets peers at a buffer.
 *
 * The whole range is checked with msync(MS_ASYNC), which since Linux 2.6.19
 * writes nothing back: it only walks the mappings that cover the range and
 * fails with ENOMEM at the first hole.  Its cost grows with the number of
 * mappings the range spans, not with its pages, so a region of many GiB
 * costs what a small one does (mincore would fill a byte per page, a probe
 * per page would fault every page in).  A mapping without read access
 * (a guard page) is not a hole to msync; its first and last bytes are
 * therefore read through process_vm_readv, which reports EFAULT instead of
 * faulting.  A PROT_NONE page strictly inside the range is not caught; a
 * peer's access to it fails when it happens, as for memory unmapped after
 * registration.
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "usb4.h"

bool usb4_range_wraps(uint64_t start, uint64_t len)
{
	return len && start + (len - 1) < start;
}

/* Every page of [addr, addr + len) belongs to some mapping. */
static bool pages_mapped(uintptr_t addr, size_t len)
{
	uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
	uintptr_t start = addr & ~(page - 1);

	/* The kernel rounds the length up to whole pages itself. */
	return msync((void *) start, addr - start + len, MS_ASYNC) == 0 ||
	       errno != ENOMEM;
}

/* The byte at addr can be read.  Where the kernel refuses cross-memory
 * reads altogether (a seccomp filter) we cannot tell, and say yes. */
static bool byte_readable(uintptr_t addr)
{
	char byte;
	struct iovec local = { &byte, 1 };
	struct iovec remote = { (void *) addr, 1 };

	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 1 ||
	       errno != EFAULT;
}

int usb4_mem_check(const void *buf, size_t len)
{
	uintptr_t addr = (uintptr_t) buf;

	if (!len)
		return 0;
	if (!buf || usb4_range_wraps(addr, len) || !pages_mapped(addr, len) ||
	    !byte_readable(addr) || !byte_readable(addr + len - 1))
		return -FI_EINVAL;
	return 0;
}
