/*
 * The usb4 wire format: the one place that defines bytes that leave the
 * process, whether in a frame, in a datagram's reliability header or in an
 * endpoint address.
 *
 * Every multi-byte field is little-endian.  Everything that comes off a link
 * is untrusted: usb4_wire_parse() checks version, type and lengths before
 * any other code looks at a frame, and the core checks every offset, length
 * and key against its own state before use.
 *
 * Version history (USB4_WIRE_VERSION; one number for frames, the reliability
 * header, the shm inbox and the address)
 *   1  eager, rendezvous request (RTS) and finish (FIN), delivery ack,
 *      remote CQ data of an RMA write (WRITE_DATA); for links without
 *      cross memory attach: clear-to-send (CTS), DATA, RMA write and read
 *      requests, atomic request and response.
 *   2  the handshake (HELLO, HELLO_ACK) carries the protocol version,
 *      feature bits and the largest datagram; REJECT answers a HELLO of a
 *      version we do not speak; RTS no longer names a process (the link the
 *      frame came on knows its sender); the address is little-endian and
 *      carries the protocol version.
 *   3  the handshake carries a nonce; with a job key every datagram ends in
 *      an authentication trailer (USB4_REL_F_AUTH) and HELLOs offer the
 *      required feature USB4_WIRE_FEATURE_AUTH; a responder keeps nothing
 *      for a peer until that peer proves it got our HELLO_ACK.
 *      Later, without a new number (older endpoints drop what they do not
 *      know): an address may be unresolved (USB4_ADDR_F_UNRESOLVED: only
 *      the udp part is known, from a node and service); the udp link
 *      answers RESOLVE queries (struct usb4_wire_resolve) with its
 *      endpoint's full address.
 *      Optional feature USB4_WIRE_FEATURE_PROBE: an ACK may carry
 *      USB4_REL_F_PROBE ("answer now": keepalive probes of an idle
 *      session) or USB4_REL_F_FIN ("this endpoint is closed").
 *      Rails (feature USB4_WIRE_FEATURE_RAILS): a HELLO or HELLO_ACK of an
 *      endpoint with several udp sockets carries its rail list (struct
 *      usb4_wire_rails) after struct usb4_wire_hello.
 *      Issue 12, negotiated: USB4_WIRE_FEATURE_FRAG: a session sends
 *      datagrams of at most the smaller side's HELLO datagram_max, and a
 *      frame that no longer fits goes as fragments of its seq
 *      (USB4_REL_F_FRAG, struct usb4_wire_frag).
 *      Issue 13, negotiated: USB4_WIRE_FEATURE_WRITE_INLINE: a WRITE_REQ
 *      whose tag is not 0 carries the write's tag (= total_len, at most
 *      USB4_WIRE_WRITE_INLINE_MAX) bytes after its segments; the target
 *      places them and answers FIN: one round trip, no CTS and DATA.
 *      Issue 13, negotiated: USB4_WIRE_FEATURE_XXH3: a DATA or ACK
 *      flagged USB4_REL_F_XXH3 carries the low 32 bits of XXH3 (64-bit,
 *      seed 0) in the crc field instead of CRC32C.  Sent only to a peer
 *      that offered the feature, by a sender without CRC instructions (or
 *      with FI_USB4_PORTABLE=1); handshake datagrams keep CRC32C.
 *      Issue 13, negotiated: USB4_WIRE_FEATURE_READ_INLINE: a READ_REQ of
 *      at most USB4_WIRE_READ_INLINE_MAX bytes is answered, when it
 *      succeeds, by one READ_INLINE frame holding the bytes instead of
 *      DATA and FIN: the two datagrams of a small MPI_Get's answer become
 *      one.  Errors still answer FIN.
 *      Issue 13, shm inbox flag USB4_SHM_LANES (usb4_shm_lane.c): behind
 *      the shared slots, single-producer lanes; the shared slots stay
 *      where they were, so producers and owners without lanes still talk.
 *      Issue 13, shm inbox flag USB4_SHM_SMALL (usb4_shm_small.c): the
 *      owner reads small frames in its lanes (an eager message of up to
 *      40 bytes: tag, data and payload, the wire header rebuilt by the
 *      owner); producers write them only to owners that set it.
 *      Issue 13, negotiated: USB4_WIRE_FEATURE_RNDV_EARLY: DATA and CTS
 *      carry a round in tag.  An RTS to a peer that offered the feature
 *      is followed at once by DATA of round 0 (the message's first bytes,
 *      no CTS awaited).  A receiver that matched the RTS on arrival
 *      places them and answers CTS of round 0: the sender goes on from
 *      where it is.  One that matched it later dropped them and answers
 *      CTS of round 1: the sender starts again from byte 0 in round 1,
 *      and only that round's DATA is placed.
 *      Issue 13, shm inbox flag USB4_SHM_PACKED (usb4_shm_packed.c): the
 *      owner reads packed lanes (records of 16-byte cells back to back,
 *      several small messages per line) of producers that mark their lane
 *      so when they claim it; producers pack only for owners that set it,
 *      so old producers and old owners keep slotted lanes.
 *      Issue 13, shm inbox flag USB4_SHM_PACKED_D32: the owner reads packed
 *      records that carry CQ data of up to 32 bits in their header word;
 *      producers write them only to owners that set it.
 *      Issue 13, registration table feature USB4_MRT_BOARD (bit 9 of the
 *      table header's features, core/usb4_mr_board.h): after the entries,
 *      a board where a same-host initiator posts an atomic of up to
 *      256 bytes for the owner's progress to apply; initiators
 *      use it only on tables that set the bit, and an older initiator
 *      never looks past the entries.
 *      Issue 13, registration table feature USB4_MRT_BOARD_RMA (bit 10):
 *      the owner also serves gets and puts of up to 256 bytes posted on
 *      its board (op READ 1, WRITE 2); initiators post them only to
 *      tables that set it, as an older owner refuses any op but ATOMIC.
 */
#ifndef USB4_WIRE_H
#define USB4_WIRE_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USB4_WIRE_VERSION	3

/*
 * Feature bits, exchanged at connection time (HELLO, the shm inbox header).
 * The low 16 bits are optional: a feature is used when both sides offer it.
 * The high 16 bits are required: a peer that lacks one we offer in that half
 * is refused.
 *   USB4_WIRE_FEATURE_AUTH  datagrams are authenticated under a job key:
 *                           required, so a keyed and an unkeyed endpoint
 *                           never talk.
 *   USB4_WIRE_FEATURE_PROBE the peer answers an ACK flagged
 *                           USB4_REL_F_PROBE at once and understands
 *                           USB4_REL_F_FIN (keepalives, close handshake):
 *                           only such a peer is sent those flags.
 *   USB4_WIRE_FEATURE_FRAG  optional: we reassemble a seq sent as fragments
 *                           (USB4_REL_F_FRAG), so a frame queued before the
 *                           path was known to be smaller still gets through.
 */
#define USB4_WIRE_FEATURE_PROBE		(1u << 0)
#define USB4_WIRE_FEATURE_FRAG		(1u << 1)
/* One line: tests/fuzz/make_corpus.py reads unions of names off one line. */
#define USB4_WIRE_FEATURES	(USB4_WIRE_FEATURE_PROBE | USB4_WIRE_FEATURE_FRAG | USB4_WIRE_FEATURE_WRITE_INLINE | USB4_WIRE_FEATURE_XXH3 | USB4_WIRE_FEATURE_READ_INLINE | USB4_WIRE_FEATURE_RNDV_EARLY)
#define USB4_WIRE_FEATURES_REQUIRED	0xffff0000u
#define USB4_WIRE_FEATURE_AUTH		(1u << 16)
/*   USB4_WIRE_FEATURE_RAILS the HELLO/HELLO_ACK carries the sender's rail
 *                           list (struct usb4_wire_rails): optional. */
#define USB4_WIRE_FEATURE_RAILS		(1u << 2)
/*   USB4_WIRE_FEATURE_WRITE_INLINE  optional: we take a WRITE_REQ whose
 *                           tag is not 0 with its bytes inline; only a peer
 *                           that offered it is sent one (an older target
 *                           would drop it as malformed). */
#define USB4_WIRE_FEATURE_WRITE_INLINE	(1u << 5)
/* Most bytes of an inline write: small enough for any path's datagram. */
#define USB4_WIRE_WRITE_INLINE_MAX	256
/*   USB4_WIRE_FEATURE_READ_INLINE  optional: we take a READ_INLINE frame
 *                           as the whole answer to our READ_REQ; only a
 *                           peer that offered it is sent one (an older
 *                           initiator would drop the frame type). */
#define USB4_WIRE_FEATURE_READ_INLINE	(1u << 6)
/* Most bytes of a read answered inline: one datagram on any path. */
#define USB4_WIRE_READ_INLINE_MAX	256
/*   USB4_WIRE_FEATURE_XXH3  optional: we check a datagram flagged
 *                           USB4_REL_F_XXH3 with XXH3 (a check that is fast
 *                           without CRC instructions, usb4_rel_check.c);
 *                           when both sides offer it, a sender without
 *                           those instructions uses it for DATA and ACK.
 *                           Unused with a job key: the tag replaces the
 *                           check. */
#define USB4_WIRE_FEATURE_XXH3		(1u << 3)
/*   USB4_WIRE_FEATURE_RNDV_EARLY  optional: we take DATA of round 0 that
 *                           follows an RTS before our CTS, and we restart
 *                           a stream from byte 0 on a CTS of round 1
 *                           (version history); only a peer that offered
 *                           it is sent early DATA or a round other than
 *                           0 (an older receiver would take early DATA
 *                           for a transfer it does not have). */
#define USB4_WIRE_FEATURE_RNDV_EARLY	(1u << 7)
/* Rounds of a stream (the tag of DATA and CTS). */
#define USB4_WIRE_ROUND_EARLY		0	/* may start before CTS */
#define USB4_WIRE_ROUND_AGAIN		1	/* from byte 0, after CTS */

/* ---- endpoint address -------------------------------------------------- */

#define USB4_ADDR_MAGIC		0x34425355u	/* "USB4" */
#define USB4_ADDR_VERSION	3		/* layout of this struct */

/*
 * An endpoint address as fi_getname returns it: 56 bytes, the most
 * aws-ofi-nccl accepts.  A link reaches the endpoint through its own part:
 * same-host peers the shm fields, others the udp ones.
 *   magic, version  USB4_ADDR_MAGIC, USB4_ADDR_VERSION
 *   proto           the endpoint's USB4_WIRE_VERSION
 *   flags           USB4_ADDR_F_*; 0 in an address fi_getname returns
 *   host_id         same value on every endpoint of one host (boot id and
 *                   network namespace)
 *   ep_id           random per endpoint: its incarnation, never 0
 *   shm_pid         owning process
 *   shm_inbox_fd    the inbox memfd in shm_pid, opened via /proc
 *   shm_reg_fd      the domain's registration table memfd, -1: none
 *   udp_family      4 or 6; 0: the endpoint has no udp link
 *   udp_port        the udp link's port
 *   udp_ip          its address, network byte order (IPv4 in the first 4)
 */
#define USB4_ADDR_F_UNRESOLVED	(1u << 0)	/* only udp_* is known: the
						 * endpoint bound there (node
						 * and service); host_id and
						 * ep_id are 0 until a RESOLVE
						 * answer names them */
#define USB4_ADDR_F_KNOWN	USB4_ADDR_F_UNRESOLVED

struct usb4_wire_addr {
	uint32_t magic;
	uint8_t version;
	uint8_t proto;
	uint16_t flags;
	uint64_t host_id;
	uint64_t ep_id;
	uint32_t shm_pid;
	int32_t shm_inbox_fd;
	int32_t shm_reg_fd;
	uint8_t udp_family;
	uint8_t reserved;
	uint16_t udp_port;
	uint8_t udp_ip[16];
};
_Static_assert(sizeof(struct usb4_wire_addr) == 56, "address is 56 bytes");

/* An address with no link's part filled in yet. */
static inline void usb4_wire_addr_init(struct usb4_wire_addr *a,
				       uint64_t host_id, uint64_t ep_id)
{
	*a = (struct usb4_wire_addr) {
		.magic = htole32(USB4_ADDR_MAGIC),
		.version = USB4_ADDR_VERSION,
		.proto = USB4_WIRE_VERSION,
		.host_id = htole64(host_id),
		.ep_id = htole64(ep_id),
		.shm_inbox_fd = (int32_t) htole32((uint32_t) -1),
		.shm_reg_fd = (int32_t) htole32((uint32_t) -1),
	};
}

/* Whether a is shaped like a usb4 address of this layout (any protocol
 * version: inserting one of another is refused with a reason). */
static inline bool usb4_wire_addr_ok(const struct usb4_wire_addr *a)
{
	return le32toh(a->magic) == USB4_ADDR_MAGIC &&
	       a->version == USB4_ADDR_VERSION;
}

/* An address that names only where an endpoint is bound: family 4 or 6,
 * ip (network byte order, IPv4 in the first 4), port (host order). */
static inline void usb4_wire_addr_init_unresolved(struct usb4_wire_addr *a,
						  uint8_t family,
						  const uint8_t ip[16],
						  uint16_t port)
{
	usb4_wire_addr_init(a, 0, 0);
	a->flags = htole16(USB4_ADDR_F_UNRESOLVED);
	a->udp_family = family;
	a->udp_port = htole16(port);
	for (int i = 0; i < 16; i++)
		a->udp_ip[i] = ip[i];
}

static inline bool usb4_wire_addr_unresolved(const struct usb4_wire_addr *a)
{
	return le16toh(a->flags) & USB4_ADDR_F_UNRESOLVED;
}

/* ---- core frames -------------------------------------------------------- */

enum usb4_frame_type {
	USB4_FRAME_EAGER = 1,	/* whole message inline after the header */
	USB4_FRAME_RTS,		/* rendezvous: the message waits at the sender */
	USB4_FRAME_FIN,		/* rendezvous or RMA done: status in data */
	USB4_FRAME_ACK,		/* eager message placed (FI_DELIVERY_COMPLETE) */
	USB4_FRAME_WRITE_DATA,	/* a one-sided RMA write landed: CQ data in
				 * data, length in total_len */
	USB4_FRAME_CTS,		/* receiver ready: send total_len bytes of msg_id */
	USB4_FRAME_DATA,	/* bytes of msg_id at offset data */
	USB4_FRAME_WRITE_REQ,	/* RMA write of total_len bytes: segments follow,
				 * then the bytes when tag (inline length) is
				 * not 0; CQ data in data when flagged */
	USB4_FRAME_READ_REQ,	/* RMA read of total_len bytes: segments follow */
	USB4_FRAME_ATOMIC_REQ,	/* struct usb4_wire_atomic, operands, compares */
	USB4_FRAME_ATOMIC_RESP,	/* status in data, previous values follow */
	USB4_FRAME_READ_INLINE,	/* a small read's bytes: answers READ_REQ
				 * whole (USB4_WIRE_FEATURE_READ_INLINE) */
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
 * Frame header, 48 bytes.
 *   version      USB4_WIRE_VERSION
 *   type         enum usb4_frame_type
 *   flags        USB4_WF_*
 *   payload_len  bytes that follow the header in this frame
 *   src_id       the sender's endpoint id; the receiver knows its sender
 *                from the link (the session or inbox slot the frame came
 *                on) and drops a frame whose src_id disagrees
 *   tag          message tag (tagged frames); the stream's round (DATA,
 *                CTS: USB4_WIRE_FEATURE_RNDV_EARLY)
 *   data         remote CQ data (EAGER/RTS), status as -FI_E* (FIN, ACK,
 *                ATOMIC_RESP), offset (DATA)
 *   msg_id       sender's operation id, echoed by FIN, ACK, CTS and DATA
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

/*
 * RTS payload: where the message waits in the sender's memory.  Only a link
 * that reads the sender's memory itself (cross memory attach) uses the
 * segments; the process they belong to is the link's knowledge of the
 * sender, never a field of the frame.
 */
struct usb4_wire_rts {
	uint32_t iov_count;
	uint32_t reserved;
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

/* ---- the reliability header of lossy links (udp) ------------------------ */

/*
 * Leads every datagram of the udp link.  48 bytes.  A DATA datagram carries
 * one core frame (struct usb4_wire_hdr and its payload) after this header;
 * HELLO, HELLO_ACK and REJECT carry a struct usb4_wire_hello.
 *   version   USB4_WIRE_VERSION.  version and type keep their place in
 *             every version, so a HELLO of any version can be answered.
 *   type      enum usb4_rel_type
 *   flags     USB4_REL_F_AUTH or 0; an ACK to a peer that offered
 *             USB4_WIRE_FEATURE_PROBE may also carry USB4_REL_F_PROBE
 *             (answer with an ACK at once, never with a PROBE) or
 *             USB4_REL_F_FIN (the sender closed its endpoint)
 *   crc       CRC32C of the whole datagram computed with this field 0
 *             (trailer-less: header and payload); with USB4_REL_F_XXH3
 *             the low 32 bits of XXH3_64bits of the same bytes instead;
 *             0 and unused when the datagram is authenticated
 *   src_id    sender's endpoint id (its incarnation)
 *   dst_id    receiver's endpoint id
 *   seq       DATA: sequence number; HELLO/HELLO_ACK: sender's first seq
 *   ack       next sequence number the sender expects from the receiver
 *   sack      bit i set: seq ack + 1 + i has arrived (selective ack)
 *   window    frames the sender can still take beyond ack
 *   len       payload bytes after the header (the trailer not counted)
 *
 * With USB4_REL_F_AUTH the datagram ends in struct usb4_wire_auth after the
 * payload (usb4_rel_auth.h): its tag covers header and payload.
 */
enum usb4_rel_type {
	USB4_REL_HELLO = 1,	/* handshake request */
	USB4_REL_HELLO_ACK,	/* handshake answer */
	USB4_REL_DATA,		/* one payload, acks piggybacked */
	USB4_REL_ACK,		/* acks only */
	USB4_REL_REJECT,	/* "I do not speak your version or features" */
	USB4_REL_TYPE_MAX
};

#define USB4_REL_F_AUTH		(1u << 0)
#define USB4_REL_F_PROBE	(1u << 1)	/* ACK only: "answer now" */
#define USB4_REL_F_FIN		(1u << 2)	/* ACK only: "closed" */
#define USB4_REL_F_FRAG		(1u << 3)	/* DATA: a fragment of seq;
						 * struct usb4_wire_frag leads
						 * the payload */
#define USB4_REL_F_XXH3		(1u << 4)	/* DATA, ACK: crc is XXH3's
						 * (USB4_WIRE_FEATURE_XXH3) */

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

/*
 * Leads the payload of a DATA datagram flagged USB4_REL_F_FRAG: bytes
 * [offset, offset + len - 8) of the seq's payload of total bytes.  offset is
 * a multiple of USB4_WIRE_FRAG_UNIT, and so is every fragment's length but
 * the one that ends at total; every fragment of a seq names the same total
 * (1 .. the receiver's largest payload).  The receiver acknowledges the seq
 * once it holds every byte; the sender resends all of it until then.
 */
#define USB4_WIRE_FRAG_UNIT	64u

struct usb4_wire_frag {
	uint32_t offset;
	uint32_t total;
};
_Static_assert(sizeof(struct usb4_wire_frag) == 8, "fragment header is 8 bytes");

/*
 * Trailer of an authenticated datagram.
 *   pn    packet number: 0 on handshake datagrams (tagged under the job
 *         key), from 1 up per direction of a session (tagged under its key)
 *   tag   the tag
 */
struct usb4_wire_auth {
	uint64_t pn;
	uint8_t tag[16];
};
_Static_assert(sizeof(struct usb4_wire_auth) == 24, "auth trailer is 24 bytes");

/*
 * Payload of HELLO, HELLO_ACK and REJECT.
 *   proto         the sender's USB4_WIRE_VERSION
 *   features      the sender's feature bits (USB4_WIRE_FEATURES)
 *   datagram_max  the largest datagram the sender can receive, header
 *                 included: a session's datagrams are at most the smaller
 *                 of both sides' (usb4_rel_path_payload_max)
 *   nonce         random per session: with a job key, the session's keys
 *                 are derived from both sides' nonces (usb4_rel_auth.h)
 * A HELLO_ACK's ack field is the HELLO's seq: the proof that the answer
 * comes from whoever got the HELLO.
 */
struct usb4_wire_hello {
	uint16_t proto;
	uint16_t reserved;
	uint32_t features;
	uint32_t datagram_max;
	uint32_t reserved2;
	uint8_t nonce[16];
};
_Static_assert(sizeof(struct usb4_wire_hello) == 32, "hello is 32 bytes");

/*
 * After struct usb4_wire_hello, when the sender offers
 * USB4_WIRE_FEATURE_RAILS: the udp sockets (rails) it receives on, one per
 * interface, the first being the one its endpoint address names.  Only
 * count rails are sent: 4 + 20 * count bytes.
 *   count     1..USB4_WIRE_RAILS_MAX
 *   family    4 or 6
 *   port      the socket's port
 *   ip        its address, network byte order (IPv4 in the first 4)
 */
#define USB4_WIRE_RAILS_MAX	4

struct usb4_wire_rail {
	uint8_t family;
	uint8_t reserved;
	uint16_t port;
	uint8_t ip[16];
};
_Static_assert(sizeof(struct usb4_wire_rail) == 20, "rail is 20 bytes");

struct usb4_wire_rails {
	uint8_t count;
	uint8_t reserved[3];
	struct usb4_wire_rail rail[USB4_WIRE_RAILS_MAX];
};
_Static_assert(sizeof(struct usb4_wire_rails) == 84, "rail list is 84 bytes");

/* ---- resolving an address (the udp link) -------------------------------- */

/*
 * Who is bound at IP:port?  A datagram of its own, told from rel datagrams
 * by its type byte (rel types stay below 0x40), sent to an unresolved
 * address (USB4_ADDR_F_UNRESOLVED); the udp link bound there answers with
 * its endpoint's full address, to anyone (a query carries no tag: asking
 * proves nothing, and the address grants nothing).  96 bytes both ways, one
 * answer per query, none to a datagram of another length: a forged source
 * address gets a reflection of the same size at most, never an
 * amplification, and the responder keeps no state.
 *   version  USB4_WIRE_VERSION (the first byte, as in every datagram)
 *   type     USB4_RESOLVE_QUERY or USB4_RESOLVE_ANSWER
 *   flags    USB4_REL_F_AUTH: tag is set (the responder has a job key)
 *   reserved 0
 *   nonce    random per query; the answer echoes it
 *   addr     query: zero; answer: the responder's address as fi_getname
 *            returns it
 *   tag      with a job key, the keyed BLAKE2b (usb4_auth_hs_tag) of the
 *            answer's first 80 bytes (nonce included) under the job key;
 *            zero otherwise.  An asker with a job key drops an answer
 *            without a valid tag; one without a key cannot check it and
 *            takes the answer (its HELLOs are then dropped by the keyed
 *            responder: see USB4_WIRE_FEATURE_AUTH).
 */
enum usb4_resolve_type {
	USB4_RESOLVE_QUERY = 0x51,	/* 'Q' */
	USB4_RESOLVE_ANSWER = 0x41,	/* 'A' */
};

struct usb4_wire_resolve {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t reserved;
	uint8_t nonce[16];
	struct usb4_wire_addr addr;
	uint8_t tag[16];
};
_Static_assert(sizeof(struct usb4_wire_resolve) == 96, "resolve is 96 bytes");
#define USB4_RESOLVE_TAGGED_LEN	offsetof(struct usb4_wire_resolve, tag)

#endif /* USB4_WIRE_H */
