/*
 * How an empty fi_cq_read waits, when the application reads back to back.
 *
 * MPI_Wait calls fi_cq_read in a tight loop.  Spinning costs a whole core
 * for as long as the cable is slow (a shaped 10 Gbit/s link, a peer that
 * computes): on the hardware that core is the job's.  So a run of empty
 * reads goes through three stages:
 *
 *   spin   the first FI_USB4_IDLE_BLOCK_US (20 us when set) of a run: no
 *          entry handed out, no frame taken in by the links: a reply that
 *          comes within it (a ping-pong) is seen as soon as before;
 *   block  after that, an empty read sleeps in the kernel on the CQ's
 *          waiter and its endpoints' links (usb4_wait_block: a datagram,
 *          the shm bell, a completion by another thread, fi_cq_signal),
 *          for at most USB4_CQ_BLOCK_MS and never past the links' next
 *          timer, without the domain lock;
 *   yield  with blocking off (FI_USB4_IDLE_BLOCK_US=0), or while frames
 *          arrive without completing anything, a read yields the CPU once
 *          per FI_USB4_YIELD_US as before.
 *
 * A loop that computes between reads (MPI_Test) must never block: the
 * run is judged a spin by the clock sampled every USB4_SPIN_CLOCK_EVERY
 * reads (usb4_api.h: the reads between only count themselves, inline), and a block needs more: the read that finds the threshold passed
 * arms it, and only a read that comes at once after it (within
 * USB4_TIGHT_GAP_NS of the armed one, which costs one clock read) blocks.
 * After a block the next read, if at once, blocks again; any frame ends
 * the quiet run, so the next block waits for the threshold again.
 *
 * A block costs the waker's latency (a sleeping CPU wakes in tens of us; in
 * a VM more): harmless while the peer streams at the cable's rate, ruinous
 * in an exchange, where the woken rank's reply is what its peer waits for:
 * the peer then waits past the threshold too, sleeps, and every step of a
 * collective pays both wake-ups (oneCCL's 8 B allreduce across two hosts
 * took 117 us instead of 16).  So the threshold adapts per CQ: a block
 * after which its domain saw a post (a send, write, read or atomic) before
 * the CQ's next quiet run sat on an exchange's path, and doubles it, up to
 * USB4_IDLE_BLOCK_MAX_US; a block followed by no post (a wait for a
 * stream, for acks, for a slow peer) halves it, down to
 * FI_USB4_IDLE_BLOCK_US.  Waits longer than the maximum still sleep.
 * Posts are counted per domain, under the lock the post takes anyway, not
 * per thread: a thread-local in a provider that libfabric loads with
 * dlopen costs a __tls_get_addr call on every send, and same-host osu_bw
 * at 64 B-2 KiB is that sensitive to the sender's per-message cost.
 *
 * A thread that polls several CQs or counters in one loop (Open MPI polls
 * mtl ofi's and btl ofi's CQs) never blocks in any of them: a sleep on one
 * CQ's links would leave the others' news waiting.  Each thread remembers
 * the last CQ or counter it read; a read that follows one of another
 * object is no spin on this CQ.
 */
#include "usb4_api.h"

/* Empty reads closer together than this are a caller spinning on the CQ. */
#define USB4_TIGHT_LOOP_NS	(20 * 1000)
/* From the read that armed a block to the next one: more than this and the
 * caller did work in between (a compute loop testing now and then), not a
 * wait.  An empty read with a udp link costs ~1-2 us; MPI's progress loop
 * adds its other components' polls. */
#define USB4_TIGHT_GAP_NS	(5 * 1000)
/* The threshold an exchange drives a CQ to: past a millisecond of waiting
 * a wake-up's cost is small beside the wait. */
#define USB4_IDLE_BLOCK_MAX_US	1000

/* The CQ or counter this thread read last.  Initial-exec: the provider
 * is loaded with dlopen, where the general model makes every read call
 * __tls_get_addr; one pointer fits the static TLS room glibc keeps for
 * libraries loaded so. */
static __thread const void *last_read __attribute__((tls_model("initial-exec")));

bool usb4_cq_idle_enter(const void *obj)
{
	bool same = last_read == obj;

	last_read = obj;
	return same;
}

void usb4_cq_idle_busy(struct usb4_cq_idle *s)
{
	s->last_sample_ns = 0;
	s->quiet_since_ns = 0;
	s->armed_ns = 0;
	s->empty_reads = 0;
}

void usb4_cq_idle_blocked(struct usb4_cq_idle *s, uint64_t now_ns)
{
	s->armed_ns = now_ns;
	s->posts_at_wake = *s->posts;
	s->woke = true;
}

uint64_t usb4_cq_idle_block_after_ns(const struct usb4_cq_idle *s)
{
	uint64_t base = (uint64_t) usb4_params.idle_block_us * 1000;

	return s->block_after_ns ? s->block_after_ns : base;
}

/* A quiet run begins: learn from the block before it, if one ended since
 * the previous run began. */
static void adapt(struct usb4_cq_idle *s)
{
	uint64_t base = (uint64_t) usb4_params.idle_block_us * 1000;
	uint64_t max = (uint64_t) USB4_IDLE_BLOCK_MAX_US * 1000;
	uint64_t t = usb4_cq_idle_block_after_ns(s);

	if (!s->woke)
		return;
	s->woke = false;
	if (*s->posts != s->posts_at_wake)
		t = t * 2 < max ? t * 2 : (max > base ? max : base);
	else
		t = t / 2 > base ? t / 2 : base;
	s->block_after_ns = t;
}

/* An armed read: blocks if it came at once. */
static enum usb4_cq_idle_act armed_read(struct usb4_cq_idle *s,
					uint64_t entry_ns)
{
	if (entry_ns - s->armed_ns <= USB4_TIGHT_GAP_NS)
		return USB4_CQ_IDLE_BLOCK;
	/* The caller works between reads: start over. */
	s->armed_ns = 0;
	s->quiet_since_ns = 0;
	s->last_sample_ns = entry_ns;
	s->spin_since_ns = entry_ns;
	return USB4_CQ_IDLE_SPIN;
}

/* A read that read the clock: arms a block after a quiet run of
 * idle_block_us, else yields once per yield_us of spinning. */
static enum usb4_cq_idle_act sampled_read(struct usb4_cq_idle *s, int frames,
					  uint64_t now)
{
	uint64_t block = usb4_params.idle_block_us ?
			 usb4_cq_idle_block_after_ns(s) : 0;
	uint64_t yield = (uint64_t) usb4_params.yield_us * 1000;

	if (now - s->last_sample_ns >
	    USB4_SPIN_CLOCK_EVERY * USB4_TIGHT_LOOP_NS) {
		s->spin_since_ns = now;
		s->quiet_since_ns = 0;
	}
	s->last_sample_ns = now;
	if (!frames && !s->quiet_since_ns) {
		adapt(s);
		block = usb4_params.idle_block_us ?
			usb4_cq_idle_block_after_ns(s) : 0;
		s->quiet_since_ns = now;
	}
	if (block && s->quiet_since_ns && now - s->quiet_since_ns >= block) {
		s->armed_ns = now;
		return USB4_CQ_IDLE_SPIN;
	}
	if (!yield || now - s->spin_since_ns < yield)
		return USB4_CQ_IDLE_SPIN;
	s->spin_since_ns = now;	/* the next yield_us from here */
	return USB4_CQ_IDLE_YIELD;
}

enum usb4_cq_idle_act usb4_cq_idle_empty_slow(struct usb4_cq_idle *s,
					      int frames, bool alone,
					      uint64_t entry_ns)
{
	/* News came (a reply may follow at once), or the loop polls others. */
	if (frames || !alone) {
		s->quiet_since_ns = 0;
		s->armed_ns = 0;
	}
	if (s->armed_ns)
		return armed_read(s, entry_ns);
	if ((!usb4_params.yield_us && !usb4_params.idle_block_us) ||
	    ++s->empty_reads % USB4_SPIN_CLOCK_EVERY)
		return USB4_CQ_IDLE_SPIN;
	return sampled_read(s, frames || !alone, usb4_now_ns());
}
