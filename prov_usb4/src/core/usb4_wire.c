/*
 * Frame validation and construction: converts between the little-endian wire
 * header and the host-order struct usb4_frame, once, here.
 */
#include <string.h>

#include "../wire.h"

const char *const usb4_wire_verdict_names[USB4_WIRE_VERDICT_MAX] = {
	[USB4_WIRE_OK] = "ok",
	[USB4_WIRE_SHORT] = "short",
	[USB4_WIRE_VERSION_BAD] = "bad_version",
	[USB4_WIRE_TYPE_BAD] = "bad_type",
	[USB4_WIRE_FLAGS_BAD] = "bad_flags",
	[USB4_WIRE_LEN_BAD] = "bad_length",
};

/* An RTS describes exactly total_len bytes in at most MAX_IOV segments, or
 * none at all (its receiver asks for the bytes instead of reading them). */
static enum usb4_wire_verdict check_rts(const struct usb4_frame *frame)
{
	struct usb4_wire_rts rts;
	struct usb4_wire_iov iov;
	uint64_t sum = 0;
	const char *p = frame->payload;

	if (frame->payload_len < sizeof(rts))
		return USB4_WIRE_LEN_BAD;
	memcpy(&rts, p, sizeof(rts));
	rts.iov_count = le32toh(rts.iov_count);
	if (rts.iov_count > USB4_WIRE_RTS_MAX_IOV ||
	    frame->payload_len != sizeof(rts) + rts.iov_count * sizeof(iov))
		return USB4_WIRE_LEN_BAD;
	for (uint32_t i = 0; i < rts.iov_count; i++) {
		memcpy(&iov, p + sizeof(rts) + i * sizeof(iov), sizeof(iov));
		uint64_t len = le64toh(iov.len);
		if (len > UINT64_MAX - sum)
			return USB4_WIRE_LEN_BAD;
		sum += len;
	}
	return !rts.iov_count || sum == frame->total_len ?
	       USB4_WIRE_OK : USB4_WIRE_LEN_BAD;
}

/* RMA requests: 1..MAX_SEG segments whose lengths sum to total_len; an
 * inline write (tag, USB4_WIRE_FEATURE_WRITE_INLINE) is followed by all of
 * its bytes. */
static enum usb4_wire_verdict check_rma(const struct usb4_frame *frame)
{
	struct usb4_wire_rma_seg seg;
	uint64_t inl = frame->type == USB4_FRAME_WRITE_REQ ? frame->tag : 0;
	size_t n;
	uint64_t sum = 0;

	if (inl && (inl != frame->total_len ||
		    inl > USB4_WIRE_WRITE_INLINE_MAX ||
		    inl >= frame->payload_len))
		return USB4_WIRE_LEN_BAD;
	n = (frame->payload_len - inl) / sizeof(seg);
	if ((frame->payload_len - inl) % sizeof(seg) || !n ||
	    n > USB4_WIRE_RMA_MAX_SEG)
		return USB4_WIRE_LEN_BAD;
	for (size_t i = 0; i < n; i++) {
		memcpy(&seg, (const char *) frame->payload + i * sizeof(seg),
		       sizeof(seg));
		uint64_t len = le64toh(seg.len);
		if (len > UINT64_MAX - sum)
			return USB4_WIRE_LEN_BAD;
		sum += len;
	}
	return sum == frame->total_len ? USB4_WIRE_OK : USB4_WIRE_LEN_BAD;
}

static enum usb4_wire_verdict check_payload(const struct usb4_frame *frame)
{
	switch (frame->type) {
	case USB4_FRAME_CTS:
		return frame->payload_len == 0 ? USB4_WIRE_OK : USB4_WIRE_LEN_BAD;
	case USB4_FRAME_DATA:
	case USB4_FRAME_ATOMIC_RESP:
		return frame->total_len == frame->payload_len ?
		       USB4_WIRE_OK : USB4_WIRE_LEN_BAD;
	case USB4_FRAME_WRITE_REQ:
	case USB4_FRAME_READ_REQ:
		return check_rma(frame);
	case USB4_FRAME_ATOMIC_REQ:
		/* Operand sizes depend on the datatype: the core checks them. */
		return frame->payload_len >= sizeof(struct usb4_wire_atomic) ?
		       USB4_WIRE_OK : USB4_WIRE_LEN_BAD;
	case USB4_FRAME_EAGER:
		return frame->total_len == frame->payload_len ?
		       USB4_WIRE_OK : USB4_WIRE_LEN_BAD;
	case USB4_FRAME_READ_INLINE:
		return frame->total_len == frame->payload_len &&
		       frame->payload_len && frame->payload_len <=
		       USB4_WIRE_READ_INLINE_MAX ? USB4_WIRE_OK :
						   USB4_WIRE_LEN_BAD;
	case USB4_FRAME_RTS:
		return check_rts(frame);
	case USB4_FRAME_FIN:
	case USB4_FRAME_ACK:
	case USB4_FRAME_WRITE_DATA:
		return frame->payload_len == 0 ? USB4_WIRE_OK : USB4_WIRE_LEN_BAD;
	default:
		return USB4_WIRE_TYPE_BAD;
	}
}

enum usb4_wire_verdict usb4_wire_parse(const void *buf, size_t len,
				       struct usb4_frame *frame)
{
	if (len < sizeof(struct usb4_wire_hdr))
		return USB4_WIRE_SHORT;
	return usb4_wire_parse_split(buf,
				     (const char *) buf +
				     sizeof(struct usb4_wire_hdr),
				     len - sizeof(struct usb4_wire_hdr), frame);
}

enum usb4_wire_verdict usb4_wire_parse_split(const void *hdr_buf,
					     const void *payload,
					     size_t payload_len,
					     struct usb4_frame *frame)
{
	struct usb4_wire_hdr hdr;

	memcpy(&hdr, hdr_buf, sizeof(hdr));
	if (hdr.version != USB4_WIRE_VERSION)
		return USB4_WIRE_VERSION_BAD;
	if (hdr.type == 0 || hdr.type >= USB4_FRAME_TYPE_MAX)
		return USB4_WIRE_TYPE_BAD;
	frame->type = hdr.type;
	frame->flags = le16toh(hdr.flags);
	if (frame->flags & ~USB4_WF_KNOWN)
		return USB4_WIRE_FLAGS_BAD;
	frame->payload_len = le32toh(hdr.payload_len);
	if (frame->payload_len != payload_len)
		return USB4_WIRE_LEN_BAD;
	frame->src_id = le64toh(hdr.src_id);
	frame->tag = le64toh(hdr.tag);
	frame->data = le64toh(hdr.data);
	frame->msg_id = le64toh(hdr.msg_id);
	frame->total_len = le64toh(hdr.total_len);
	frame->payload = payload;
	/* check_payload's case for the frame of every small message, without
	 * the call and the switch. */
	if (frame->type == USB4_FRAME_EAGER)
		return frame->total_len == frame->payload_len ?
		       USB4_WIRE_OK : USB4_WIRE_LEN_BAD;
	return check_payload(frame);
}

void usb4_wire_build(struct usb4_wire_hdr *hdr, const struct usb4_frame *frame)
{
	hdr->version = USB4_WIRE_VERSION;
	hdr->type = frame->type;
	hdr->flags = htole16(frame->flags);
	hdr->payload_len = htole32(frame->payload_len);
	hdr->src_id = htole64(frame->src_id);
	hdr->tag = htole64(frame->tag);
	hdr->data = htole64(frame->data);
	hdr->msg_id = htole64(frame->msg_id);
	hdr->total_len = htole64(frame->total_len);
}
