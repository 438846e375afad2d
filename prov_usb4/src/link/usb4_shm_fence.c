/*
 * The shm inbox's asymmetric fence: producers post millions of frames, an
 * owner goes to sleep rarely, so the owner pays for both sides' fences.
 *
 * The bell's handshake (usb4_shm_ring.c) is Dekker's: a producer publishes
 * a frame, then reads `sleepers`; a sleeper counts itself, then reads the
 * ring.  Each side needs a full fence between its store and its load.  A
 * producer's fence comes right after its store into a slot line the
 * consumer holds, so it stalls until that line has crossed the cores: perf
 * of a same-host ping-pong put ring_bell at 12% of both ranks' samples, and
 * a window of sends pays it once per send.
 *
 * membarrier(2) MEMBARRIER_CMD_GLOBAL_EXPEDITED makes every running thread
 * of every process registered for it execute a full barrier before it
 * returns (a thread that is not running has passed one in the context
 * switch).  A sleeper that calls it after counting itself has then fenced
 * for every registered producer, which needs only a compiler barrier.  An
 * owner whose kernel offers the command says so in its ring (USB4_SHM
 * flags), and a producer that is registered trusts it; any other pair
 * fences as before.
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "usb4_shm.h"

static int membarrier(int cmd)
{
	return (int) syscall(__NR_membarrier, cmd, 0, 0);
}

bool usb4_shm_fence_can_expedite(void)
{
	static atomic_int offered = -1;		/* -1: not asked yet */
	int known = atomic_load_explicit(&offered, memory_order_relaxed);

	if (known < 0) {
		int cmds = membarrier(MEMBARRIER_CMD_QUERY);

		known = cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
			(cmds & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
		atomic_store_explicit(&offered, known, memory_order_relaxed);
	}
	return known;
}

_Atomic uint32_t usb4_shm_fence_pid;

/* Registration belongs to a process: a child of fork registers again
 * (the cached pid changes with it). */
bool usb4_shm_fence_register(void)
{
	static _Atomic uint32_t refused_pid;
	uint32_t pid = usb4_pid();

	if (atomic_load_explicit(&usb4_shm_fence_pid, memory_order_relaxed) == pid)
		return true;
	if (atomic_load_explicit(&refused_pid, memory_order_relaxed) == pid ||
	    !usb4_shm_fence_can_expedite())
		return false;
	if (membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)) {
		USB4_WARN(FI_LOG_EP_DATA, "membarrier registration refused "
			  "(%s): shm posts fence for themselves\n",
			  strerror(errno));
		atomic_store_explicit(&refused_pid, pid, memory_order_relaxed);
		return false;
	}
	atomic_store_explicit(&usb4_shm_fence_pid, pid, memory_order_relaxed);
	return true;
}

int usb4_shm_fence_expedite(void)
{
	return membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) ? -errno : 0;
}
