/*
 * Atomics, gets and puts of up to USB4_BOARD_DATA bytes between processes
 * of one host, applied by the target's progress from its registration
 * table's board (usb4_mr_board.h) instead of by the initiator through the
 * link's copy.
 *
 * Why: each of the copy's system calls pins the target's page, and what
 * that costs differs from machine to machine: an atomic's read and write
 * back about 1.3 us together on an Intel VM, a single 8-byte get or put
 * 1.5 us on an AMD EPYC VM (README "Same host, one-sided"), where Open
 * MPI's osc rdma makes an accumulate of 2 or more elements a get and a
 * put.  A target
 * that is progressing (osc rdma's target sits in a fence or a flush) sees
 * the posted line, applies the request with loads and stores and hands
 * the line back: a few cache lines between the cores.
 *
 * Why it cannot hang: a claimant does not post to an owner whose
 * application sleeps in the kernel (the board counts its endpoints: a post
 * rings no bell), waits for the owner to take the request at most
 * USB4_BOARD_WAIT_NS or until the owner goes to sleep, then withdraws it
 * (CAS POSTED -> FREE) and does the operation itself through the link's
 * copy, the way that needs no target CPU; after a withdrawal it skips the
 * board for the next 1, 2, 4 ... up to USB4_BOARD_SKIP requests to that
 * target as withdrawals follow each other, and from 1 again once one is
 * taken: a target that was off its CPU for a moment costs one request by
 * the copy, not USB4_BOARD_SKIP of them, and one that computes its
 * initiators one wait per USB4_BOARD_SKIP operations once the run is
 * long.  A claimant serves its own board while it waits: two processes
 * that post to each other at once (each other's targets, as in a
 * one-sided exchange) take each other's requests instead of both
 * withdrawing.  Once the owner
 * took a request (TAKEN) it finishes it within its progress call.
 *
 * Atomicity: the owner applies an atomic under the same target lock
 * (usb4_mr_atomic_lock) that initiators' cross-memory-attach atomics and
 * the frame path take, so the three ways exclude each other.
 */
#include <string.h>

#include "usb4_mr_board.h"

/* Longest wait for the owner to take a posted request. */
#define USB4_BOARD_WAIT_NS	5000
/* Spins between clock reads while waiting (the clock may be a system
 * call). */
#define USB4_BOARD_SPINS	64
/* Spins between checks that an owner applying our request still lives. */
#define USB4_BOARD_OWNER_CHECK	(1u << 20)
/* Most requests sent by the link's bulk copy after a withdrawn one. */
#define USB4_BOARD_SKIP		64

/* ---- the owner's side ---- */

/* Operand bytes an atomic of len target bytes carries in. */
static size_t atomic_operands(enum usb4_atomic_kind kind, enum fi_op op,
			      size_t len)
{
	return (op == FI_ATOMIC_READ ? 0 : len) +
	       (kind == USB4_ATOMIC_COMPARE ? len : 0);
}

static int serve_atomic(struct usb4_mr_table *self, struct usb4_mrt_board *b,
			uint64_t key, uint64_t addr, uint32_t len)
{
	enum fi_datatype dt = b->datatype;
	enum fi_op op = b->atomic_op;
	enum usb4_atomic_kind kind = b->kind;
	unsigned char in[USB4_BOARD_DATA], old[USB4_BOARD_DATA];
	size_t size, nin;
	struct usb4_pin pin;
	int ret;

	if (kind > USB4_ATOMIC_COMPARE || !usb4_atomic_supported(kind, dt, op))
		return -FI_EINVAL;
	size = usb4_atomic_size(dt);
	nin = atomic_operands(kind, op, len);
	if (len % size || nin > sizeof(in))
		return -FI_EINVAL;
	memcpy(in, b->data, nin);	/* the claimant's line may change */
	ret = usb4_mr_pin(self, key, addr, len, usb4_atomic_access(kind, op),
			  &pin);
	if (ret)
		return ret;
	if (pin.va % (size > 8 ? 8 : size)) {
		usb4_mr_unpin(&pin);
		return -FI_EINVAL;
	}
	usb4_mr_atomic_lock(self);
	memcpy(old, (void *) (uintptr_t) pin.va, len);
	usb4_atomic_calc(dt, op, len / size, (void *) (uintptr_t) pin.va,
			 op == FI_ATOMIC_READ ? NULL : in,
			 kind == USB4_ATOMIC_COMPARE ? in + len : NULL);
	usb4_mr_atomic_unlock(self);
	usb4_mr_unpin(&pin);
	memcpy(b->data, old, len);
	return 0;
}

/* A get's bytes into the slot, or a put's out of it: the key, rights and
 * range are checked in our own table first, so a refused put touches
 * nothing. */
static int serve_rma(struct usb4_mr_table *self, struct usb4_mrt_board *b,
		     bool write, uint64_t key, uint64_t addr, uint32_t len)
{
	struct usb4_pin pin;
	int ret;

	ret = usb4_mr_pin(self, key, addr, len,
			  write ? FI_REMOTE_WRITE : FI_REMOTE_READ, &pin);
	if (ret)
		return ret;
	if (write)
		memcpy((void *) (uintptr_t) pin.va, b->data, len);
	else
		memcpy(b->data, (const void *) (uintptr_t) pin.va, len);
	usb4_mr_unpin(&pin);
	return 0;
}

/* The request's fields are read once, after the CAS that took it. */
static int serve_one(struct usb4_mr_table *self, struct usb4_mrt_board *b)
{
	uint64_t key = b->key, addr = b->addr;
	uint32_t len = b->len;
	uint16_t op = b->op;

	if (!len || len > USB4_BOARD_DATA)
		return -FI_EINVAL;
	switch (op) {
	case USB4_BOARD_ATOMIC:
		return serve_atomic(self, b, key, addr, len);
	case USB4_BOARD_READ:
	case USB4_BOARD_WRITE:
		return serve_rma(self, b, op == USB4_BOARD_WRITE, key, addr,
				 len);
	default:
		return -FI_EINVAL;
	}
}

int usb4_board_serve(struct usb4_mr_table *self)
{
	struct usb4_mrt_board *b = usb4_mr_table_board(self);
	uint32_t posted = USB4_BOARD_POSTED;

	if (!b || atomic_load_explicit(&b->state, memory_order_relaxed) !=
		  USB4_BOARD_POSTED)
		return 0;
	if (!atomic_compare_exchange_strong_explicit(&b->state, &posted,
						     USB4_BOARD_TAKEN,
						     memory_order_acquire,
						     memory_order_relaxed))
		return 0;
	b->status = serve_one(self, b);
	b->served++;
	atomic_store_explicit(&b->state, USB4_BOARD_DONE, memory_order_release);
	return 1;
}

void usb4_board_note_sleep(struct usb4_mr_table *self, int delta)
{
	struct usb4_mrt_board *b = usb4_mr_table_board(self);

	if (b)
		atomic_fetch_add_explicit(&b->asleep, (uint32_t) delta,
					  memory_order_relaxed);
}

/* ---- the claimant's side ---- */

/* The slot, claimed for us; NULL: go by the link's bulk copy. */
static struct usb4_mrt_board *claim(struct usb4_mr_table *peer)
{
	struct usb4_mrt_board *b = usb4_mr_table_board(peer);
	struct usb4_board_pace *pace = usb4_mr_table_board_pace(peer);
	uint32_t state = USB4_BOARD_FREE;

	if (!b || usb4_mr_table_owner(peer) == usb4_pid())
		return NULL;	/* nobody else would serve our own table */
	if (atomic_load_explicit(&b->asleep, memory_order_relaxed))
		return NULL;	/* a bell would cost more than the copy */
	if (pace->skip) {
		pace->skip--;
		return NULL;
	}
	if (atomic_compare_exchange_strong_explicit(&b->state, &state,
						    USB4_BOARD_CLAIMED,
						    memory_order_acquire,
						    memory_order_relaxed)) {
		b->claimant = usb4_pid();
		return b;
	}
	/* Busy: another initiator's, or left by one that died. */
	if (state != USB4_BOARD_TAKEN && usb4_pid_gone(b->claimant))
		atomic_compare_exchange_strong(&b->state, &state,
					       USB4_BOARD_FREE);
	pace->skip = USB4_BOARD_SKIP / 4;
	return NULL;
}

/* Whether a request still POSTED has waited long enough: the owner went to
 * sleep, or did not take it in USB4_BOARD_WAIT_NS (clock read every
 * USB4_BOARD_SPINS spins, from the first such). */
static bool waited_enough(struct usb4_mrt_board *b, unsigned spins,
			  uint64_t *start)
{
	if (atomic_load_explicit(&b->asleep, memory_order_relaxed))
		return true;
	if (spins % USB4_BOARD_SPINS)
		return false;
	if (!*start) {
		*start = usb4_now_ns();
		return false;
	}
	return usb4_now_ns() - *start >= USB4_BOARD_WAIT_NS;
}

/* A request was withdrawn: skip the board for the next pace->after (at
 * least 1) and twice that after the next withdrawal. */
static void back_off(struct usb4_board_pace *pace)
{
	pace->skip = pace->after ? pace->after : 1;
	pace->after = pace->skip * 2 < USB4_BOARD_SKIP ? pace->skip * 2 :
							  USB4_BOARD_SKIP;
}

/* Posts the filled request and waits for the owner's verdict; 1 when it
 * was withdrawn untouched. */
static int post_and_wait(struct usb4_mr_table *peer, struct usb4_mr_table *self,
			 struct usb4_mrt_board *b)
{
	uint64_t start = 0;

	atomic_store_explicit(&b->state, USB4_BOARD_POSTED,
			      memory_order_release);
	for (unsigned spins = 1;; spins++) {
		uint32_t s = atomic_load_explicit(&b->state,
						  memory_order_acquire);

		if (s == USB4_BOARD_DONE) {
			usb4_mr_table_board_pace(peer)->after = 0;
			return b->status;
		}
		if (s == USB4_BOARD_TAKEN && !(spins % USB4_BOARD_OWNER_CHECK) &&
		    usb4_pid_gone(usb4_mr_table_owner(peer)))
			return -FI_EHOSTUNREACH;	/* the slot died with it */
		if (self)
			usb4_board_serve(self);	/* its owner may wait */
		if (s != USB4_BOARD_POSTED || !waited_enough(b, spins, &start))
			continue;	/* TAKEN: the owner is applying it */
		if (atomic_compare_exchange_strong(&b->state, &s,
						   USB4_BOARD_FREE)) {
			back_off(usb4_mr_table_board_pace(peer));
			return 1;
		}
	}
}

static void release(struct usb4_mrt_board *b)
{
	atomic_store_explicit(&b->state, USB4_BOARD_FREE, memory_order_release);
}

static void fill(struct usb4_mrt_board *b, uint16_t op, uint64_t key,
		 uint64_t addr, size_t len)
{
	b->op = op;
	b->key = key;
	b->addr = addr;
	b->len = (uint32_t) len;
}

int usb4_board_atomic(struct usb4_mr_table *peer, struct usb4_mr_table *self,
		      enum usb4_atomic_kind kind,
		      enum fi_datatype dt, enum fi_op op, uint64_t key,
		      uint64_t addr, size_t len, const char *src,
		      const char *cmp, char *old)
{
	size_t nin = atomic_operands(kind, op, len);
	struct usb4_mrt_board *b;
	int ret;

	if (!len || len > USB4_BOARD_DATA || nin > USB4_BOARD_DATA ||
	    !(b = claim(peer)))
		return 1;
	fill(b, USB4_BOARD_ATOMIC, key, addr, len);
	b->datatype = (uint16_t) dt;
	b->atomic_op = (uint8_t) op;
	b->kind = (uint8_t) kind;
	if (op != FI_ATOMIC_READ)
		memcpy(b->data, src, len);
	if (kind == USB4_ATOMIC_COMPARE)
		memcpy(b->data + nin - len, cmp, len);
	ret = post_and_wait(peer, self, b);
	if (ret == 1)
		return 1;
	if (!ret)
		memcpy(old, b->data, len);
	release(b);
	return ret;
}

int usb4_board_rma(struct usb4_mr_table *peer, struct usb4_mr_table *self,
		   bool write, uint64_t key,
		   uint64_t addr, const struct iovec *iov, size_t iov_count,
		   size_t len)
{
	struct usb4_mrt_board *b;
	int ret;

	if (!len || len > USB4_BOARD_DATA || !usb4_mr_table_board_rma(peer) ||
	    !(b = claim(peer)))
		return 1;
	fill(b, write ? USB4_BOARD_WRITE : USB4_BOARD_READ, key, addr, len);
	if (write)
		usb4_iov_copy_out(iov, iov_count, b->data, len);
	ret = post_and_wait(peer, self, b);
	if (ret == 1)
		return 1;
	if (!ret && !write)
		usb4_iov_copy_in(iov, iov_count, 0, b->data, len);
	release(b);
	return ret;
}
