/* Internal to the core: protocol and matching entry points. */
#ifndef USB4_PROTO_H
#define USB4_PROTO_H

#include "usb4_core.h"

/* An incoming message, from a frame just taken off the link or from the
 * unexpected queue. */
struct usb4_msg_in {
	uint8_t type;		/* USB4_FRAME_EAGER or USB4_FRAME_RTS */
	uint16_t wflags;
	fi_addr_t src;
	uint64_t tag, data, msg_id, total_len;
	const void *payload;	/* eager bytes */
	pid_t pid;		/* rendezvous source process */
	size_t riov_count;
	const struct iovec *riov;
};

void usb4_proto_handle(struct usb4_core_ep *ep, const struct usb4_frame *f);
void usb4_proto_flush_ctrl(struct usb4_core_ep *ep);
void usb4_proto_reap_dead_peers(struct usb4_core_ep *ep);
void usb4_proto_send_write_data(struct usb4_core_ep *ep, fi_addr_t dest,
				uint64_t data, uint64_t len);
void usb4_proto_send_ctrl(struct usb4_core_ep *ep, fi_addr_t dest,
			  uint8_t type, uint64_t msg_id, int64_t status,
			  uint64_t len);

/* usb4_match.c */
void usb4_match_arrival(struct usb4_core_ep *ep, const struct usb4_msg_in *m);
/* Places a message into a posted receive, answers the sender, completes.
 * Frees the receive, and returns true, unless it is a multi-receive buffer
 * with room left. */
bool usb4_match_deliver(struct usb4_core_ep *ep, struct usb4_rx_entry *rx,
			const struct usb4_msg_in *m);

#endif /* USB4_PROTO_H */
