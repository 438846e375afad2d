/*
 * Which clock a send reads (usb4_rel_clock.c).  Where CLOCK_MONOTONIC is
 * a system call (a VM whose clocksource has no vDSO mode), every precise
 * read is on the critical path of a hop; the coarse clock stays in the
 * vDSO on every VM.
 */
#ifndef USB4_REL_CLOCK_H
#define USB4_REL_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "usb4_rel.h"

/* The time a send of iov[0..count) (nref of them references) to peer
 * takes, read from the clock it needs; until usb4_rel_send_clock_done,
 * the frames it stamps with a coarse time time no round trip. */
uint64_t usb4_rel_send_clock(struct usb4_rel_peer *peer,
			     const struct iovec *iov, int count, int nref);

/* The send is over: later stamps are the caller's precise times again. */
void usb4_rel_send_clock_done(struct usb4_rel_peer *peer);

/* Whether a deadline at due (precise clock) is surely still ahead, by the
 * coarse clock alone: a timer loop that finds nothing due reads no precise
 * clock.  Near due (within a tick) it says no: the caller reads the
 * precise clock and is never late for this. */
bool usb4_rel_clock_ahead(uint64_t due);

#endif /* USB4_REL_CLOCK_H */
