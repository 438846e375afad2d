/*
 * The usb4 frame format: the one place that defines bytes on the wire.
 *
 * Every frame is a fixed little-endian header followed by a payload whose
 * meaning depends on the frame type.  Everything that comes off a link is
 * untrusted: usb4_wire_parse() checks version, type and lengths before any
 * other code looks at a frame.
 *
 * Version history
 *   1  eager, rendezvous request (RTS) and finish (FIN), delivery ack,
 *      remote CQ data of an RMA write (WRITE_DATA); for links without
 *      cross memory attach: clear-to-send (CTS), DATA, RMA write and read
 *      requests, atomic request and response.
 */
#ifndef USB4_WIRE_H
#define USB4_WIRE_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>

#define USB4_WIRE_VERSION	1

enum usb4_frame_type {
	USB4_FRAME_EAGER = 1,	/* whole message inline after the header */
	USB4_FRAME_RTS,		/* rendezvous: "read my buffer", iov list follows */
	USB4_FRAME_FIN,		/* rendezvous done: receiver copied; status in data */
	USB4_FRAME_ACK,		/* eager message placed (FI_DELIVERY_COMPLETE) */
	USB4_FRAME_WRITE_DATA,	/* an RMA write landed: CQ data in data, length
				 * in total_len */
	USB4_FRAME_CTS,		/* receiver ready: send total_len bytes of msg_id */
	USB4_FRAME_DATA,	/* bytes of msg_id at offset data */
	USB4_FRAME_WRITE_REQ,	/* RMA write of total_len bytes: segments follow,
				 * CQ data in data when flagged */
	USB4_FRAME_READ_REQ,	/* RMA read of total_len bytes: segments follow */
	USB4_FRAME_ATOMIC_REQ,	/* struct usb4_wire_atomic, operands, compares */
	USB4_FRAME_ATOMIC_RESP,	/* status in data, previous values follow */
	USB4_FRAME_TYPE_MAX
};

/* Header flags. */
#define USB4_WF_TAGGED		(1u << 0)	/* matched against tagged receives */
#define USB4_WF_CQ_DATA		(1u << 1)	/* data field is remote CQ data */
#define USB4_WF_ACK_REQ		(1u << 2)	/* sender wants an ACK on placement */
#define USB4_WF_READ_RESP	(1u << 3)	/* DATA answers our own READ_REQ */
#define USB4_WF_KNOWN		(USB4_WF_TAGGED | USB4_WF_CQ_DATA | \
				 USB4_WF_ACK_REQ | USB4_WF_READ_RESP)

/*
 * Frame header, 48 bytes, all fields little-endian.
 *   version      USB4_WIRE_VERSION
 *   type         enum usb4_frame_type
 *   flags        USB4_WF_*
 *   payload_len  bytes that follow the header in this frame
 *   src_id       random id of the sending endpoint (its address names it)
 *   tag          message tag (tagged frames)
 *   data         remote CQ data (EAGER/RTS), status as -FI_E* (FIN)
 *   msg_id       sender's operation id, echoed by FIN and ACK
 *   total_len    message length (EAGER/RTS), bytes placed (FIN)
 */
struct usb4_wire_hdr {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t payload_len;
	uint64_t src_id;
	uint64_t tag;
	uint64_t data;
	uint64_t msg_id;
	uint64_t total_len;
};
_Static_assert(sizeof(struct usb4_wire_hdr) == 48, "wire header is 48 bytes");

/* One remote buffer segment of a rendezvous request. */
struct usb4_wire_iov {
	uint64_t addr;
	uint64_t len;
};
_Static_assert(sizeof(struct usb4_wire_iov) == 16, "wire iov is 16 bytes");

/* RTS payload: the sender's process and buffer, read by the receiver. */
struct usb4_wire_rts {
	uint32_t pid;
	uint32_t iov_count;
	struct usb4_wire_iov iov[];
};
_Static_assert(sizeof(struct usb4_wire_rts) == 8, "rts payload head is 8 bytes");

#define USB4_WIRE_RTS_MAX_IOV	16

/* One target segment of an RMA request, checked by the target. */
struct usb4_wire_rma_seg {
	uint64_t addr;
	uint64_t len;
	uint64_t key;
};
_Static_assert(sizeof(struct usb4_wire_rma_seg) == 24, "rma seg is 24 bytes");

#define USB4_WIRE_RMA_MAX_SEG	4

/* Head of an ATOMIC_REQ payload; operands (count elements) and, for compare
 * atomics, as many compare values follow. */
struct usb4_wire_atomic {
	uint8_t kind;		/* base, fetch, compare */
	uint8_t op;		/* enum fi_op */
	uint16_t datatype;	/* enum fi_datatype */
	uint32_t count;
	uint64_t addr;
	uint64_t key;
};
_Static_assert(sizeof(struct usb4_wire_atomic) == 24, "atomic head is 24 bytes");

/* A validated frame in host byte order; payload points into the frame. */
struct usb4_frame {
	uint8_t type;
	uint16_t flags;
	uint32_t payload_len;
	uint64_t src_id;
	uint64_t tag;
	uint64_t data;
	uint64_t msg_id;
	uint64_t total_len;
	const void *payload;
};

/* Why a frame was dropped; each cause has its own counter. */
enum usb4_wire_verdict {
	USB4_WIRE_OK = 0,
	USB4_WIRE_SHORT,	/* shorter than a header */
	USB4_WIRE_VERSION_BAD,
	USB4_WIRE_TYPE_BAD,
	USB4_WIRE_FLAGS_BAD,
	USB4_WIRE_LEN_BAD,	/* payload_len disagrees with frame or type */
	USB4_WIRE_VERDICT_MAX
};

extern const char *const usb4_wire_verdict_names[USB4_WIRE_VERDICT_MAX];

enum usb4_wire_verdict usb4_wire_parse(const void *buf, size_t len,
				       struct usb4_frame *frame);
/* The same for a frame whose header (sizeof(struct usb4_wire_hdr) bytes)
 * and payload lie apart. */
enum usb4_wire_verdict usb4_wire_parse_split(const void *hdr_buf,
					     const void *payload,
					     size_t payload_len,
					     struct usb4_frame *frame);
void usb4_wire_build(struct usb4_wire_hdr *hdr, const struct usb4_frame *frame);

/*
 * The reliability header (rel) that leads every datagram of a lossy link
 * (udp).  48 bytes, little-endian.  A DATA datagram carries one core frame
 * (struct usb4_wire_hdr and its payload) after this header.
 *   version   USB4_WIRE_VERSION
 *   type      enum usb4_rel_type
 *   flags     0 (reserved)
 *   crc       CRC32C of the whole datagram computed with this field 0
 *   src_id    sender's endpoint id (its incarnation)
 *   dst_id    receiver's endpoint id
 *   seq       DATA: sequence number; HELLO/HELLO_ACK: sender's first seq
 *   ack       next sequence number the sender expects from the receiver
 *   sack      bit i set: seq ack + 1 + i has arrived (selective ack)
 *   window    frames the sender can still buffer beyond ack
 *   len       payload bytes after the header
 */
enum usb4_rel_type {
	USB4_REL_HELLO = 1,	/* handshake request: my first seq, my window */
	USB4_REL_HELLO_ACK,	/* handshake answer: same fields */
	USB4_REL_DATA,		/* one payload, acks piggybacked */
	USB4_REL_ACK,		/* acks only */
	USB4_REL_TYPE_MAX
};

struct usb4_wire_rel {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t crc;
	uint64_t src_id;
	uint64_t dst_id;
	uint32_t seq;
	uint32_t ack;
	uint64_t sack;
	uint32_t window;
	uint32_t len;
};
_Static_assert(sizeof(struct usb4_wire_rel) == 48, "rel header is 48 bytes");

#endif /* USB4_WIRE_H */
