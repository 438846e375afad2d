/*
 * A fake link, for tests only (it lives in tests/c and is never part of the
 * provider): the links of one process exchange frames through bounded
 * in-memory queues, behind struct usb4_link_ops like every real kind.
 *
 * What it offers, and how
 *   - Each link owns an inbox of USB4_FAKE_QUEUE_FRAMES frames that every
 *     sender shares (like the shm inbox): a post into a full inbox answers
 *     -FI_EAGAIN, so back-pressure is real; frames are copied at post.
 *   - Frames of at most USB4_FAKE_FRAME_MAX bytes (larger: -FI_EMSGSIZE).
 *   - The sender a frame names is the link that posted it (its ep_id from
 *     usb4_link_cfg), never a field of the frame.
 *   - A refused frame (sink->frame answers -FI_EAGAIN) stays at the head of
 *     the inbox and is offered again on a later poll; that poll hands up
 *     nothing more.
 *   - A dest is the peer's id: every post looks the peer up in a registry
 *     of open links, so a closed peer answers -FI_EHOSTUNREACH (post,
 *     peer_state, dest_open).  The death of a peer is reported once, by
 *     sink->peer_down(-FI_EHOSTUNREACH), on the next poll of every link
 *     that has a dest to it: a link that posted to it, or handed out its
 *     dest_of (dests themselves belong to no link).
 *   - dest_of answers for peers that posted to us.
 *   - wait_fd is an eventfd that a post into the inbox (and the close of any
 *     link, for peer_down) makes readable; timer_us is always -1;
 *     sleep_begin drains the eventfd and answers false when a frame or an
 *     unreported peer death already waits.
 *   - No bulk or one-sided access (caps 0), no post_ref, marks or landing
 *     zones: the optional slots are NULL.
 *   - Thread safety: as the contract says, calls on one link are
 *     serialised by the caller; different links may be used from different
 *     threads at once (the registry and each inbox have a lock).
 *
 * Address: the caller fills ep_id (usb4_wire_addr_init with the link's
 * cfg.ep_id, as the core does); addr() marks the udp part as fake:
 * udp_family = USB4_FAKE_FAMILY (neither 4 nor 6, so the udp link never
 * reaches it) and udp_ip starting with USB4_FAKE_TAG; udp_port is 0.
 * dest_open finds the peer by ep_id in the registry.  Only links of the
 * same process are reachable.
 */
#ifndef USB4_LINK_FAKE_H
#define USB4_LINK_FAKE_H

#include <stddef.h>

#include "usb4_link.h"

#define USB4_FAKE_FAMILY	0xfa
#define USB4_FAKE_TAG		"fake"		/* first bytes of udp_ip */
#define USB4_FAKE_FRAME_MAX	4096		/* bytes per frame */
#define USB4_FAKE_QUEUE_FRAMES	64		/* frames an inbox holds */

extern const struct usb4_link_ops usb4_fake_link_ops;

/* Fake links open now (for leak checks). */
size_t usb4_fake_open_count(void);

#endif /* USB4_LINK_FAKE_H */
