/*
 * Control frames (FIN, ACK, CTS, WRITE_DATA, ATOMIC_RESP) are answers the
 * core sends while it handles other frames.  When the peer's inbox or rel's
 * window is full, or when sending would re-enter rel, they wait here, in
 * order, and go out on the next progress call.
 */
#include <stdlib.h>
#include <string.h>

#include "usb4_proto.h"

static int ctrl_post(struct usb4_core_ep *ep, const struct usb4_ctrl *ctrl)
{
	struct iovec iov[2] = {
		{ .iov_base = (void *) &ctrl->hdr, .iov_len = sizeof(ctrl->hdr) },
		{ .iov_base = (void *) ctrl->payload, .iov_len = ctrl->len },
	};

	if (!usb4_core_av_peer(ep->av, ctrl->dest)) {
		USB4_WARN(FI_LOG_EP_DATA, "cannot answer a peer that is not "
			  "in the address vector\n");
		return 0;	/* nothing to retry */
	}
	return usb4_transport_post(ep, ctrl->dest, iov, ctrl->len ? 2 : 1);
}

static void ctrl_send(struct usb4_core_ep *ep, fi_addr_t dest,
		      const struct usb4_frame *f, const void *payload)
{
	struct usb4_ctrl *ctrl = malloc(sizeof(*ctrl) + f->payload_len);

	if (!ctrl) {
		USB4_WARN(FI_LOG_EP_DATA, "out of memory: control frame lost\n");
		return;
	}
	ctrl->dest = dest;
	ctrl->len = f->payload_len;
	usb4_wire_build(&ctrl->hdr, f);
	memcpy(ctrl->payload, payload, f->payload_len);
	/* In order: nothing overtakes frames already waiting. */
	if (usb4_list_empty(&ep->ctrl_pending) &&
	    ctrl_post(ep, ctrl) != -FI_EAGAIN) {
		free(ctrl);
		return;
	}
	usb4_list_insert_tail(&ep->ctrl_pending, &ctrl->link);
}

void usb4_proto_send_ctrl(struct usb4_core_ep *ep, fi_addr_t dest,
			  uint8_t type, uint64_t msg_id, int64_t status,
			  uint64_t len)
{
	struct usb4_frame f = {
		.type = type,
		.src_id = ep->id,
		.data = (uint64_t) status,
		.msg_id = msg_id,
		.total_len = len,
	};

	ctrl_send(ep, dest, &f, NULL);
}

void usb4_proto_send_resp(struct usb4_core_ep *ep, fi_addr_t dest,
			  uint64_t msg_id, int64_t status, const void *data,
			  size_t len)
{
	struct usb4_frame f = {
		.type = USB4_FRAME_ATOMIC_RESP,
		.src_id = ep->id,
		.data = (uint64_t) status,
		.msg_id = msg_id,
		.total_len = len,
		.payload_len = len,
	};

	ctrl_send(ep, dest, &f, data);
}

void usb4_proto_flush_ctrl(struct usb4_core_ep *ep)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->ctrl_pending, it, tmp) {
		struct usb4_ctrl *ctrl = usb4_container_of(it, struct usb4_ctrl,
							   link);
		if (ctrl_post(ep, ctrl) == -FI_EAGAIN)
			return;
		usb4_list_remove(it);
		free(ctrl);
	}
}

/* Frames for a dead peer would wait forever. */
void usb4_proto_drop_ctrl(struct usb4_core_ep *ep, fi_addr_t dest)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->ctrl_pending, it, tmp) {
		struct usb4_ctrl *ctrl = usb4_container_of(it, struct usb4_ctrl,
							   link);
		if (!usb4_same_peer(ep, ctrl->dest, dest))
			continue;
		usb4_list_remove(it);
		free(ctrl);
	}
}
