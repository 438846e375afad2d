/*
 * Answers: control frames (FIN, ACK, CTS, WRITE_DATA, ATOMIC_RESP) the core
 * sends while it handles something else.  Their storage belongs to what
 * they answer and exists before they are needed (usb4_core.h, struct
 * usb4_ctrl), so no answer is lost for want of memory.  When the peer has
 * no room an answer waits on ep->ctrl_pending, in order, and goes out on
 * the next progress call; nothing overtakes what already waits.
 */
#include <stdlib.h>
#include <string.h>

#include "usb4_proto.h"

static int ctrl_post(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl)
{
	struct iovec iov[2] = {
		{ .iov_base = &ctrl->hdr, .iov_len = sizeof(ctrl->hdr) },
		{ .iov_base = (void *) ctrl->payload, .iov_len = ctrl->len },
	};
	int ret = usb4_post(ep, ctrl->dest, iov, ctrl->len ? 2 : 1);

	if (ret && ret != -FI_EAGAIN)
		USB4_DBG(FI_LOG_EP_DATA, "answer to %llu dropped: %s\n",
			 (unsigned long long) ctrl->dest, fi_strerror(-ret));
	return ret;
}

/* The answer left (or can never leave): its owner may go. */
static void ctrl_left(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl)
{
	void (*done)(struct usb4_core_ep *, struct usb4_ctrl *) = ctrl->on_sent;

	ctrl->queued = false;
	ctrl->on_sent = NULL;
	if (done)
		done(ep, ctrl);
}

static void ctrl_go(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl,
		    fi_addr_t dest, const struct usb4_frame *f,
		    const void *payload)
{
	usb4_ctrl_unqueue(ctrl);
	ctrl->dest = dest;
	ctrl->len = f->payload_len;
	ctrl->payload = payload;
	usb4_wire_build(&ctrl->hdr, f);
	if (usb4_list_empty(&ep->ctrl_pending) &&
	    ctrl_post(ep, ctrl) != -FI_EAGAIN) {
		ctrl_left(ep, ctrl);
		return;
	}
	ctrl->queued = true;
	usb4_list_insert_tail(&ep->ctrl_pending, &ctrl->link);
}

void usb4_ctrl_send(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl,
		    fi_addr_t dest, uint8_t type, uint64_t msg_id,
		    int64_t status, uint64_t len)
{
	struct usb4_frame f = {
		.type = type, .src_id = ep->id, .data = (uint64_t) status,
		.msg_id = msg_id, .total_len = len,
	};

	ctrl_go(ep, ctrl, dest, &f, NULL);
}

/* The same with a tag (a CTS's round, USB4_WIRE_FEATURE_RNDV_EARLY). */
void usb4_ctrl_send_tagged(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl,
			   fi_addr_t dest, uint8_t type, uint64_t msg_id,
			   uint64_t tag, uint64_t len)
{
	struct usb4_frame f = {
		.type = type, .src_id = ep->id, .tag = tag, .msg_id = msg_id,
		.total_len = len,
	};
	ctrl_go(ep, ctrl, dest, &f, NULL);
}

void usb4_ctrl_send_data(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl,
			 fi_addr_t dest, uint8_t type, uint64_t msg_id,
			 int64_t status, const void *data, size_t len)
{
	struct usb4_frame f = {
		.type = type, .src_id = ep->id, .data = (uint64_t) status,
		.msg_id = msg_id, .total_len = len, .payload_len = len,
	};

	ctrl_go(ep, ctrl, dest, &f, data);
}

/* A standalone answer frees itself once sent. */
static void ctrl_free(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl)
{
	free(ctrl);
}

struct usb4_ctrl *usb4_ctrl_new(size_t payload)
{
	struct usb4_ctrl *ctrl = calloc(1, sizeof(*ctrl) + payload);

	if (!ctrl)
		return NULL;
	usb4_list_init(&ctrl->link);
	ctrl->on_sent = ctrl_free;
	ctrl->payload = ctrl + 1;
	return ctrl;
}

void usb4_ctrl_then(struct usb4_core_ep *ep, struct usb4_ctrl *ctrl,
		    void (*done)(struct usb4_core_ep *, struct usb4_ctrl *))
{
	if (ctrl->queued)
		ctrl->on_sent = done;
	else
		done(ep, ctrl);
}

void usb4_ctrl_unqueue(struct usb4_ctrl *ctrl)
{
	if (!ctrl->queued)
		return;
	usb4_list_remove(&ctrl->link);
	ctrl->queued = false;
}

void usb4_ctrl_flush(struct usb4_core_ep *ep)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->ctrl_pending, it, tmp) {
		struct usb4_ctrl *ctrl = usb4_container_of(it, struct usb4_ctrl,
							   link);
		if (ctrl_post(ep, ctrl) == -FI_EAGAIN)
			return;
		usb4_list_remove(it);
		ctrl_left(ep, ctrl);
	}
}

void usb4_ctrl_drop(struct usb4_core_ep *ep, fi_addr_t dest)
{
	struct usb4_list *it, *tmp;

	usb4_list_foreach_safe(&ep->ctrl_pending, it, tmp) {
		struct usb4_ctrl *ctrl = usb4_container_of(it, struct usb4_ctrl,
							   link);
		if (dest != FI_ADDR_UNSPEC && !usb4_same_peer(ep, ctrl->dest, dest))
			continue;
		usb4_list_remove(it);
		ctrl_left(ep, ctrl);
	}
}
