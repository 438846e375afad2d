/*
 * The board of a registration table (usb4_mr_board.c): one slot in the
 * table's shared memory where a process of the same host posts an atomic,
 * a get or a put on the owner's registered memory, and the owner's
 * progress applies it with plain loads and stores.
 *
 * Layout, after the table's entries (the header's features say it is
 * there: USB4_MRT_BOARD).  Every field but state is written by one side at
 * a time, handed over by state:
 *   state      FREE -> CLAIMED (a claimant, CAS) -> POSTED (claimant,
 *              release) -> TAKEN (owner, CAS) -> DONE (owner, release) ->
 *              FREE (claimant, release); or POSTED -> FREE (the claimant
 *              withdraws, CAS: the owner did not take it in time).
 *   claimant   pid of the process that claimed the slot
 *   key, addr, len, op, datatype, atomic_op, kind   the request
 *              (len: bytes at the target)
 *   status     the owner's verdict, 0 or -FI_E*
 *   served     requests the owner applied (the owner's, for tests)
 *   asleep     the owner's endpoints its application sleeps on in the
 *              kernel now (the owner's, atomic): nobody would take a
 *              request soon, so a claimant does not post one
 *   op         USB4_BOARD_ATOMIC; USB4_BOARD_READ or USB4_BOARD_WRITE on
 *              tables that also set USB4_MRT_BOARD_RMA
 *   data       in: the operands (source, then compare) or a put's bytes;
 *              out: the old values or a get's bytes
 * Everything in it is untrusted by the owner: checked like a frame.
 */
#ifndef USB4_MR_BOARD_H
#define USB4_MR_BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "usb4_atomic.h"
#include "usb4_core.h"

/* Bytes of data the slot carries: operands in, old values out. */
#define USB4_BOARD_DATA		256

/* Header feature bit of a table with a board (bit 9: issue 13's bit for
 * atomics, see wire.h's history). */
#define USB4_MRT_BOARD		(1u << 9)
/* Header feature bit of a table whose owner also serves gets and puts on
 * its board; an older owner would refuse them (bit 10, see wire.h). */
#define USB4_MRT_BOARD_RMA	(1u << 10)

enum usb4_board_state {
	USB4_BOARD_FREE,
	USB4_BOARD_CLAIMED,
	USB4_BOARD_POSTED,
	USB4_BOARD_TAKEN,
	USB4_BOARD_DONE,
};

enum usb4_board_op {
	USB4_BOARD_READ = 1,
	USB4_BOARD_WRITE = 2,
	USB4_BOARD_ATOMIC = 3,
};

struct usb4_mrt_board {
	_Atomic uint32_t state;
	_Atomic uint32_t asleep;
	uint32_t claimant;
	uint32_t len;
	uint64_t key;
	uint64_t addr;
	int32_t status;
	uint16_t op;
	uint16_t datatype;
	uint8_t atomic_op;
	uint8_t kind;
	uint8_t pad[6];
	unsigned char data[USB4_BOARD_DATA];
	uint64_t served;	/* apart: the claimant never reads it */
	uint64_t reserved;
};
/* Up to 16 bytes of data share the request's line: an 8-byte
 * compare-and-swap moves one line each way. */
_Static_assert(offsetof(struct usb4_mrt_board, data) == 48,
	       "the data starts in the request's line");
_Static_assert(sizeof(struct usb4_mrt_board) == 64 + USB4_BOARD_DATA,
	       "five lines");

/* The board of a table (ours or a view of a peer's), NULL without one. */
struct usb4_mrt_board *usb4_mr_table_board(struct usb4_mr_table *table);
/* Whether the table's owner serves gets and puts on its board. */
bool usb4_mr_table_board_rma(const struct usb4_mr_table *table);
/* The pid of the process that owns a table. */
uint32_t usb4_mr_table_owner(const struct usb4_mr_table *table);
/* How a view's requests keep off the board after its owner did not take
 * one in time: the next `skip` go by the link's bulk copy; `after` is what
 * the next withdrawal sets skip to (0: 1), doubled by each withdrawal up to
 * USB4_BOARD_SKIP and back to 0 when a request is taken. */
struct usb4_board_pace {
	unsigned skip;
	unsigned after;
};
struct usb4_board_pace *usb4_mr_table_board_pace(struct usb4_mr_table *table);

/* Owner: applies the posted request, if there is one; 1 if it did. */
int usb4_board_serve(struct usb4_mr_table *self);
/* Owner: one of its endpoints goes to sleep in the kernel (+1) or is back
 * (-1). */
void usb4_board_note_sleep(struct usb4_mr_table *self, int delta);

/*
 * Claimant: an atomic on len bytes at (key, addr) of the view's owner
 * (operands src and, for a compare, cmp; old values into old).  Returns 1
 * when the board did not take it (none, busy, ours, the owner asleep or
 * not taking it in time: nothing was done, use the link's copy), else the
 * owner's verdict, 0 or -FI_E*.  While it waits it serves self's board
 * (our own table, or NULL): an owner that posts to us at the same time
 * waits on us as we wait on it.
 */
int usb4_board_atomic(struct usb4_mr_table *peer, struct usb4_mr_table *self,
		      enum usb4_atomic_kind kind,
		      enum fi_datatype dt, enum fi_op op, uint64_t key,
		      uint64_t addr, size_t len, const char *src,
		      const char *cmp, char *old);

/*
 * Claimant: a get (write false: len bytes at (key, addr) into iov) or a put
 * (write true: from iov) of up to USB4_BOARD_DATA bytes on the view's
 * owner.  Returns, and serves self, as usb4_board_atomic: 1 when the board
 * did not take it
 * (nothing was done: use the link's copy), else the owner's verdict; a
 * refused put leaves the owner's memory untouched, a refused get the iov.
 */
int usb4_board_rma(struct usb4_mr_table *peer, struct usb4_mr_table *self,
		   bool write, uint64_t key,
		   uint64_t addr, const struct iovec *iov, size_t iov_count,
		   size_t len);

#endif /* USB4_MR_BOARD_H */
