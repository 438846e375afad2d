/*
 * The links of the core fuzz target (fuzz_core.c): a registry of two link
 * kinds that carry nothing anywhere.  The harness hands frames to the core
 * through the sink a link was opened with (fuzz_link_deliver), and what the
 * core posts is checked and counted here, never sent.
 *
 *   kind FUZZ_KIND_FRAMES  caps 0: rendezvous by CTS/DATA, RMA and atomics
 *                          as frames (like the udp link)
 *   kind FUZZ_KIND_BULK    USB4_LINK_CAP_BULK_READ | _ONE_SIDED: RTS with
 *                          segments read by bulk_read, WRITE_DATA notices
 *                          (like the shm link); bulk_read writes a pattern
 *                          into the local buffers and never dereferences a
 *                          remote address; peer_table is NULL
 *
 * An address is reached by the kind named in udp_ip[FUZZ_ADDR_KIND_AT] of
 * an address whose udp_family is FUZZ_FAMILY.  A dest is the peer's id.
 * Every frame the core posts must parse (usb4_wire_parse), name the
 * link's endpoint as its source and fit frame_max: otherwise the run traps
 * (the core may never put a malformed frame on a cable).
 */
#ifndef FUZZ_LINK_H
#define FUZZ_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "usb4_link.h"

#define FUZZ_KIND_FRAMES	0u
#define FUZZ_KIND_BULK		1u
#define FUZZ_LINK_KINDS		2u
#define FUZZ_FAMILY		0xfb
#define FUZZ_ADDR_KIND_AT	4	/* udp_ip[4]: the kind */
#define FUZZ_LINK_FRAME_MAX	1024u	/* bytes per frame, header included */
#define FUZZ_ROOM_UNLIMITED	(-1)

/* Called for every frame the core posts (after the link's own checks),
 * with the frame gathered into one buffer; NULL: none. */
typedef void (*fuzz_post_hook)(unsigned kind, uint64_t dest_id,
			       const void *frame, size_t len);

/* Forgets every setting: room unlimited, no peer down, bulk succeeds. */
void fuzz_link_reset(fuzz_post_hook hook);
/* The link of this kind the endpoint opened (NULL: none open). */
struct usb4_link *fuzz_link_of(unsigned kind);
/* Hands a frame (one or two pieces) to the core as arriving from `from`;
 * the sink's verdict (0 or -FI_EAGAIN). */
int fuzz_link_deliver(unsigned kind, uint64_t from, const struct iovec *iov,
		      int count);
/* Tells the core that peer is down over this kind (sink->peer_down); from
 * now on posts to it and peer_state answer err. */
void fuzz_link_peer_down(unsigned kind, uint64_t peer, int err);
/* Frames the kind's link accepts before it answers -FI_EAGAIN. */
void fuzz_link_set_room(unsigned kind, int room);
/* What bulk_read and bulk_write answer (0 or a negative FI_E*). */
void fuzz_link_set_bulk_err(int err);
/* Links and dests open now: 0 once the endpoint and AV are closed. */
size_t fuzz_link_open_count(void);
/* An address the registry reaches over kind. */
void fuzz_link_addr(struct usb4_wire_addr *addr, unsigned kind,
		    uint64_t ep_id);

#endif /* FUZZ_LINK_H */
