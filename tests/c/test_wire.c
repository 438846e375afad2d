/*
 * Unit tests of the wire format (prov_usb4/src/wire.h, core/usb4_wire.c):
 * every frame type survives build + parse, every malformed frame gets the
 * verdict that makes the core count and drop it, and the endpoint address
 * has the little-endian 56-byte layout peers of any host read.
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "usb4.h"
#include "../../prov_usb4/src/wire.h"
#include "usb4_test.h"

#define HDR_LEN sizeof(struct usb4_wire_hdr)

/* A frame buffer large enough for any test frame. */
static unsigned char buf[HDR_LEN + 1024];

/* Builds a header for f into buf, copies payload after it; returns the length. */
static size_t make(const struct usb4_frame *f, const void *payload, size_t plen)
{
	usb4_wire_build((struct usb4_wire_hdr *) buf, f);
	if (plen)
		memcpy(buf + HDR_LEN, payload, plen);
	return HDR_LEN + plen;
}

static struct usb4_frame base(uint8_t type)
{
	struct usb4_frame f = {
		.type = type,
		.flags = USB4_WF_TAGGED | USB4_WF_CQ_DATA,
		.src_id = 0x1122334455667788ull,
		.tag = 0xfeedfacecafebeefull,
		.data = 0x0102030405060708ull,
		.msg_id = 0xdeadbeef00000001ull,
	};
	return f;
}

static void check_same(const struct usb4_frame *a, const struct usb4_frame *b)
{
	CHECK_EQ(a->type, b->type);
	CHECK_EQ(a->flags, b->flags);
	CHECK_EQ(a->payload_len, b->payload_len);
	CHECK(a->src_id == b->src_id);
	CHECK(a->tag == b->tag);
	CHECK(a->data == b->data);
	CHECK(a->msg_id == b->msg_id);
	CHECK(a->total_len == b->total_len);
}

/* Fills an RTS payload of n segments; returns its length. */
static size_t make_rts(unsigned char *p, uint32_t n, const uint64_t *lens)
{
	struct usb4_wire_rts rts = { .iov_count = htole32(n) };
	memcpy(p, &rts, sizeof(rts));
	for (uint32_t i = 0; i < n; i++) {
		struct usb4_wire_iov iov = {
			.addr = htole64(0x10000 + i * 0x1000),
			.len = htole64(lens[i]),
		};
		memcpy(p + sizeof(rts) + i * sizeof(iov), &iov, sizeof(iov));
	}
	return sizeof(rts) + n * sizeof(struct usb4_wire_iov);
}

static void test_round_trip(void)
{
	struct usb4_frame in, out;
	char payload[100];
	unsigned char rts[512];
	uint64_t lens[3] = { 10, 20, 30 };
	size_t len;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (char) i;

	/* EAGER with payload and with zero length. */
	in = base(USB4_FRAME_EAGER);
	in.payload_len = in.total_len = sizeof(payload);
	len = make(&in, payload, sizeof(payload));
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);
	check_same(&in, &out);
	CHECK(out.payload == buf + HDR_LEN);
	CHECK(memcmp(out.payload, payload, sizeof(payload)) == 0);

	in.payload_len = in.total_len = 0;
	len = make(&in, NULL, 0);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);
	check_same(&in, &out);

	/* RTS with three segments. */
	in = base(USB4_FRAME_RTS);
	in.flags = USB4_WF_ACK_REQ;
	in.total_len = 60;
	in.payload_len = make_rts(rts, 3, lens);
	len = make(&in, rts, in.payload_len);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);
	check_same(&in, &out);
	CHECK(memcmp(out.payload, rts, in.payload_len) == 0);

	/* FIN carrying a status and ACK. */
	in = base(USB4_FRAME_FIN);
	in.flags = 0;
	in.data = (uint64_t) -FI_ETRUNC;
	in.total_len = 12345;
	len = make(&in, NULL, 0);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);
	check_same(&in, &out);

	in = base(USB4_FRAME_ACK);
	in.flags = 0;
	len = make(&in, NULL, 0);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);
	check_same(&in, &out);

	/* WRITE_DATA: remote CQ data of an RMA write, length in total_len. */
	in = base(USB4_FRAME_WRITE_DATA);
	in.flags = 0;
	in.total_len = 4096;
	len = make(&in, NULL, 0);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);
	check_same(&in, &out);

	/* Bytes on the wire are little-endian whatever the host. */
	in = base(USB4_FRAME_ACK);
	in.flags = 0;
	in.msg_id = 0x0807060504030201ull;
	make(&in, NULL, 0);
	{
		struct usb4_wire_hdr *h = (struct usb4_wire_hdr *) buf;
		unsigned char *m = (unsigned char *) &h->msg_id;
		CHECK_EQ(h->version, USB4_WIRE_VERSION);
		CHECK_EQ(h->type, USB4_FRAME_ACK);
		CHECK_EQ(m[0], 0x01);
		CHECK_EQ(m[7], 0x08);
	}
}

static void test_header_rejects(void)
{
	struct usb4_frame in = base(USB4_FRAME_EAGER), out;
	struct usb4_wire_hdr *h = (struct usb4_wire_hdr *) buf;
	size_t len;

	in.payload_len = in.total_len = 8;
	len = make(&in, "abcdefgh", 8);

	/* Shorter than a header, including empty. */
	CHECK_EQ(usb4_wire_parse(buf, 0, &out), USB4_WIRE_SHORT);
	CHECK_EQ(usb4_wire_parse(buf, HDR_LEN - 1, &out), USB4_WIRE_SHORT);

	h->version = USB4_WIRE_VERSION + 1;
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_VERSION_BAD);
	h->version = 0;
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_VERSION_BAD);
	h->version = USB4_WIRE_VERSION;

	h->type = 0;
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_TYPE_BAD);
	h->type = USB4_FRAME_TYPE_MAX;
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_TYPE_BAD);
	h->type = 0xff;
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_TYPE_BAD);
	h->type = USB4_FRAME_EAGER;

	/* The lowest bit no version defines. */
	h->flags = htole16((USB4_WF_KNOWN + 1) & ~USB4_WF_KNOWN);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_FLAGS_BAD);
	h->flags = htole16(0x8000 | USB4_WF_TAGGED);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_FLAGS_BAD);
	h->flags = htole16(USB4_WF_KNOWN);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);

	/* payload_len must equal the bytes that follow the header. */
	CHECK_EQ(usb4_wire_parse(buf, len - 1, &out), USB4_WIRE_LEN_BAD);
	CHECK_EQ(usb4_wire_parse(buf, len + 1, &out), USB4_WIRE_LEN_BAD);
	h->payload_len = htole32(0xffffffffu);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);
	h->payload_len = htole32(8);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);

	/* EAGER: total_len must equal payload_len. */
	h->total_len = htole64(9);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);
	h->total_len = htole64(7);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);
	h->total_len = htole64(UINT64_MAX);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);
}

static void test_rts_rejects(void)
{
	struct usb4_frame in = base(USB4_FRAME_RTS), out;
	unsigned char p[1024];
	uint64_t lens[USB4_WIRE_RTS_MAX_IOV + 1];
	size_t plen, len;

	for (int i = 0; i <= USB4_WIRE_RTS_MAX_IOV; i++)
		lens[i] = 100;

	/* The most segments allowed is fine... */
	plen = make_rts(p, USB4_WIRE_RTS_MAX_IOV, lens);
	in.payload_len = plen;
	in.total_len = 100 * USB4_WIRE_RTS_MAX_IOV;
	len = make(&in, p, plen);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);

	/* ...one more is not. */
	plen = make_rts(p, USB4_WIRE_RTS_MAX_IOV + 1, lens);
	in.payload_len = plen;
	in.total_len = 100 * (USB4_WIRE_RTS_MAX_IOV + 1);
	len = make(&in, p, plen);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);

	/* A huge iov_count must not be multiplied into a small payload length. */
	plen = make_rts(p, 1, lens);
	((struct usb4_wire_rts *) p)->iov_count = htole32(0x10000001u);
	in.payload_len = plen;
	in.total_len = 100;
	len = make(&in, p, plen);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);

	/* Shorter than the RTS head. */
	in.payload_len = 4;
	in.total_len = 0;
	len = make(&in, p, 4);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);

	/* iov_count disagrees with the payload length (one iov missing). */
	plen = make_rts(p, 2, lens);
	in.payload_len = plen - sizeof(struct usb4_wire_iov);
	in.total_len = 200;
	len = make(&in, p, in.payload_len);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);

	/* Segment lengths that don't sum to total_len. */
	plen = make_rts(p, 3, lens);
	in.payload_len = plen;
	in.total_len = 301;
	len = make(&in, p, plen);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);
	in.total_len = 299;
	len = make(&in, p, plen);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);
	in.total_len = 300;
	len = make(&in, p, plen);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);

	/* Segment lengths whose sum overflows 64 bits (and would wrap to 99). */
	{
		uint64_t big[2] = { UINT64_MAX, 100 };
		plen = make_rts(p, 2, big);
		in.payload_len = plen;
		in.total_len = 99;
		len = make(&in, p, plen);
		CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);
		in.total_len = UINT64_MAX;
		len = make(&in, p, plen);
		CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);
	}

	/* Zero segments: the sender's memory is not named at all (its link
	 * cannot be read by the receiver, who asks for the bytes instead), so
	 * any total_len is valid, 0 as well as the largest. */
	plen = make_rts(p, 0, lens);
	CHECK_EQ(plen, sizeof(struct usb4_wire_rts));
	in.payload_len = plen;
	for (int i = 0; i < 3; i++) {
		uint64_t totals[3] = { 0, 1, UINT64_MAX };

		in.total_len = totals[i];
		len = make(&in, p, plen);
		CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK,
			     "an RTS of no segments and total_len %llu is "
			     "refused", (unsigned long long) totals[i]);
		CHECK_MSG(out.total_len == totals[i],
			  "total_len %llu parsed as %llu",
			  (unsigned long long) totals[i],
			  (unsigned long long) out.total_len);
	}
	/* ...but still needs its 8-byte head, and no stray bytes after it. */
	in.total_len = 100;
	in.payload_len = plen - 1;
	len = make(&in, p, plen - 1);
	CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD,
		     "an RTS shorter than its head is accepted");
	in.payload_len = plen + 8;
	memset(p + plen, 0, 8);
	len = make(&in, p, plen + 8);
	CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD,
		     "an RTS of no segments with 8 bytes after its head is "
		     "accepted");
}

/* The v2 RTS head: iov_count then reserved, little-endian; no pid. */
static void test_rts_layout(void)
{
	unsigned char p[64];
	uint64_t lens[2] = { 0x0102, 0x0304 };
	size_t plen = make_rts(p, 2, lens);

	CHECK_EQ(sizeof(struct usb4_wire_rts), 8);
	CHECK_EQ(offsetof(struct usb4_wire_rts, iov_count), 0);
	CHECK_EQ(offsetof(struct usb4_wire_rts, reserved), 4);
	CHECK_EQ(offsetof(struct usb4_wire_rts, iov), 8);
	CHECK_EQ(plen, 8 + 2 * 16);
	CHECK_MSG(p[0] == 2 && p[1] == 0 && p[2] == 0 && p[3] == 0,
		  "iov_count bytes are %02x %02x %02x %02x, want 02 00 00 00",
		  p[0], p[1], p[2], p[3]);
	CHECK_MSG(p[4] == 0 && p[5] == 0 && p[6] == 0 && p[7] == 0,
		  "reserved is not zero: %02x %02x %02x %02x",
		  p[4], p[5], p[6], p[7]);
	/* Segment 1's len (0x0304) at 8 + 16 + 8, low byte first. */
	CHECK_MSG(p[32] == 0x04 && p[33] == 0x03 && p[39] == 0,
		  "segment length not little-endian: %02x %02x .. %02x",
		  p[32], p[33], p[39]);
}

/* Control frames carry everything in the header: any payload is refused. */
static void test_ctrl_rejects(void)
{
	uint8_t types[3] = { USB4_FRAME_FIN, USB4_FRAME_ACK,
			     USB4_FRAME_WRITE_DATA };

	for (int i = 0; i < 3; i++) {
		struct usb4_frame in = base(types[i]), out;
		size_t len;

		in.flags = 0;
		in.payload_len = 1;
		len = make(&in, "x", 1);
		CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);
		in.payload_len = 16;
		len = make(&in, "0123456789abcdef", 16);
		CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);
	}
}

/* The rest of the frame kinds (links that cannot read a peer's memory). */
/* A WRITE_REQ with its bytes inline (USB4_WIRE_FEATURE_WRITE_INLINE): tag =
 * total_len = the bytes after the segments, at most
 * USB4_WIRE_WRITE_INLINE_MAX; anything else is malformed. */
static void check_inline_write(void)
{
	struct usb4_frame in = base(USB4_FRAME_WRITE_REQ), out;
	struct {
		struct usb4_wire_rma_seg seg;
		char data[USB4_WIRE_WRITE_INLINE_MAX + 1];
	} p = { .seg = { .addr = htole64(0x1000), .key = htole64(0xabc) } };
	struct { uint64_t tag, total; size_t data; bool ok; } c[] = {
		{ 8, 8, 8, true },
		{ USB4_WIRE_WRITE_INLINE_MAX, USB4_WIRE_WRITE_INLINE_MAX,
		  USB4_WIRE_WRITE_INLINE_MAX, true },
		{ 8, 9, 8, false },		/* tag is not total_len */
		{ 8, 8, 7, false },		/* fewer bytes than the tag */
		{ 8, 8, 9, false },		/* more */
		{ USB4_WIRE_WRITE_INLINE_MAX + 1, USB4_WIRE_WRITE_INLINE_MAX + 1,
		  USB4_WIRE_WRITE_INLINE_MAX + 1, false },
	};

	in.flags = 0;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		in.tag = c[i].tag;
		in.total_len = c[i].total;
		p.seg.len = htole64(c[i].total);
		in.payload_len = sizeof(p.seg) + c[i].data;
		size_t len = make(&in, &p, in.payload_len);
		CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out),
			     c[i].ok ? USB4_WIRE_OK : USB4_WIRE_LEN_BAD,
			     "inline write case %zu", i);
	}
}

/* A READ_INLINE (USB4_WIRE_FEATURE_READ_INLINE): the whole answer to a read,
 * total_len = its bytes, 1 to USB4_WIRE_READ_INLINE_MAX; anything else is
 * malformed. */
static void check_inline_read(void)
{
	struct usb4_frame in = base(USB4_FRAME_READ_INLINE), out;
	char data[USB4_WIRE_READ_INLINE_MAX + 1] = "read";
	struct { uint64_t total; size_t data; bool ok; } c[] = {
		{ 8, 8, true },
		{ 1, 1, true },
		{ USB4_WIRE_READ_INLINE_MAX, USB4_WIRE_READ_INLINE_MAX, true },
		{ 0, 0, false },		/* no bytes: a FIN's job */
		{ 9, 8, false },		/* fewer bytes than total_len */
		{ 8, 9, false },		/* more */
		{ USB4_WIRE_READ_INLINE_MAX + 1, USB4_WIRE_READ_INLINE_MAX + 1,
		  false },
	};

	in.flags = 0;
	in.tag = 0;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		in.total_len = c[i].total;
		in.payload_len = c[i].data;
		size_t len = make(&in, data, in.payload_len);
		CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out),
			     c[i].ok ? USB4_WIRE_OK : USB4_WIRE_LEN_BAD,
			     "inline read case %zu", i);
		if (c[i].ok)
			CHECK_EQ(memcmp(out.payload, data, c[i].data), 0);
	}
}

static void test_stream_frames(void)
{
	struct usb4_frame in, out;
	struct usb4_wire_rma_seg segs[USB4_WIRE_RMA_MAX_SEG + 1];
	unsigned char atomic[sizeof(struct usb4_wire_atomic) + 8] = { 0 };
	size_t len;

	/* CTS: header only. */
	in = base(USB4_FRAME_CTS);
	in.flags = 0;
	in.total_len = 1 << 20;
	len = make(&in, NULL, 0);
	CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK,
		     "a CTS is refused");
	check_same(&in, &out);
	in.payload_len = 1;
	len = make(&in, "x", 1);
	CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD,
		     "a CTS with a payload is accepted");

	/* DATA and ATOMIC_RESP: total_len says how many bytes follow. */
	for (int k = 0; k < 2; k++) {
		in = base(k ? USB4_FRAME_ATOMIC_RESP : USB4_FRAME_DATA);
		in.flags = 0;
		in.payload_len = in.total_len = 8;
		len = make(&in, "abcdefgh", 8);
		CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);
		check_same(&in, &out);
		in.total_len = 9;
		len = make(&in, "abcdefgh", 8);
		CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD,
			     "frame type %d: total_len 9 for 8 payload bytes "
			     "accepted", in.type);
	}

	/* WRITE_REQ and READ_REQ: 1..RMA_MAX_SEG whole segments summing to
	 * total_len, without overflow. */
	for (int k = 0; k < 2; k++) {
		in = base(k ? USB4_FRAME_READ_REQ : USB4_FRAME_WRITE_REQ);
		in.flags = 0;
		in.tag = 0;	/* a WRITE_REQ's tag: its inline bytes */
		for (int i = 0; i <= USB4_WIRE_RMA_MAX_SEG; i++)
			segs[i] = (struct usb4_wire_rma_seg) {
				.addr = htole64(0x1000 * i), .len = htole64(10),
				.key = htole64(0xabc) };
		for (int n = 0; n <= USB4_WIRE_RMA_MAX_SEG + 1; n++) {
			bool ok = n >= 1 && n <= USB4_WIRE_RMA_MAX_SEG;

			in.payload_len = n * sizeof(segs[0]);
			in.total_len = 10 * n;
			len = make(&in, segs, in.payload_len);
			CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out),
				     ok ? USB4_WIRE_OK : USB4_WIRE_LEN_BAD,
				     "RMA request type %d of %d segments",
				     in.type, n);
		}
		in.payload_len = 2 * sizeof(segs[0]);
		in.total_len = 21;
		len = make(&in, segs, in.payload_len);
		CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD,
			     "RMA segments of 20 bytes accepted for total 21");
		in.payload_len = sizeof(segs[0]) + 1;	/* a partial segment */
		in.total_len = 10;
		len = make(&in, segs, in.payload_len);
		CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD,
			     "an RMA request with a partial segment accepted");
		segs[0].len = htole64(UINT64_MAX);	/* sum wraps to 9 */
		in.payload_len = 2 * sizeof(segs[0]);
		in.total_len = 9;
		len = make(&in, segs, in.payload_len);
		CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD,
			     "RMA segment lengths wrapping 64 bits accepted");
	}

	check_inline_write();
	check_inline_read();

	/* ATOMIC_REQ: at least its head; operands are the core's to check. */
	in = base(USB4_FRAME_ATOMIC_REQ);
	in.flags = 0;
	in.payload_len = sizeof(atomic);
	len = make(&in, atomic, sizeof(atomic));
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);
	in.payload_len = sizeof(struct usb4_wire_atomic) - 1;
	len = make(&in, atomic, in.payload_len);
	CHECK_EQ_MSG(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD,
		     "an atomic request shorter than its head accepted");
}

/* A header and a payload that lie apart parse as the same frame. */
static void test_parse_split(void)
{
	struct usb4_frame in = base(USB4_FRAME_EAGER), whole, split;
	static unsigned char hdr[HDR_LEN], payload[64];
	size_t len;

	memset(payload, 0x3c, sizeof(payload));
	in.payload_len = in.total_len = sizeof(payload);
	len = make(&in, payload, sizeof(payload));
	memcpy(hdr, buf, HDR_LEN);
	CHECK_EQ(usb4_wire_parse(buf, len, &whole), USB4_WIRE_OK);
	CHECK_EQ(usb4_wire_parse_split(hdr, payload, sizeof(payload), &split),
		 USB4_WIRE_OK);
	check_same(&whole, &split);
	CHECK_MSG(split.payload == payload,
		  "the split parse's payload does not point at the payload");
	CHECK_EQ_MSG(usb4_wire_parse_split(hdr, payload, sizeof(payload) - 1,
					   &split), USB4_WIRE_LEN_BAD,
		     "a payload one byte short of payload_len accepted");
}

/* The endpoint address: 56 bytes, little-endian whatever the host, fresh
 * from usb4_wire_addr_init with no link's part filled in. */
static void test_addr(void)
{
	struct usb4_wire_addr a;
	const unsigned char *b = (const unsigned char *) &a;
	static const unsigned char zero[16];

	CHECK_EQ(sizeof(a), 56);
	CHECK_EQ(offsetof(struct usb4_wire_addr, magic), 0);
	CHECK_EQ(offsetof(struct usb4_wire_addr, version), 4);
	CHECK_EQ(offsetof(struct usb4_wire_addr, proto), 5);
	CHECK_EQ(offsetof(struct usb4_wire_addr, flags), 6);
	CHECK_EQ(offsetof(struct usb4_wire_addr, host_id), 8);
	CHECK_EQ(offsetof(struct usb4_wire_addr, ep_id), 16);
	CHECK_EQ(offsetof(struct usb4_wire_addr, shm_pid), 24);
	CHECK_EQ(offsetof(struct usb4_wire_addr, shm_inbox_fd), 28);
	CHECK_EQ(offsetof(struct usb4_wire_addr, shm_reg_fd), 32);
	CHECK_EQ(offsetof(struct usb4_wire_addr, udp_family), 36);
	CHECK_EQ(offsetof(struct usb4_wire_addr, udp_port), 38);
	CHECK_EQ(offsetof(struct usb4_wire_addr, udp_ip), 40);

	/* Garbage before init must not survive it. */
	memset(&a, 0xa5, sizeof(a));
	usb4_wire_addr_init(&a, 0x0102030405060708ull, 0x1112131415161718ull);
	CHECK_MSG(!memcmp(b, "USB4", 4), "magic bytes are %02x %02x %02x %02x, "
		  "want \"USB4\"", b[0], b[1], b[2], b[3]);
	CHECK_EQ(le32toh(a.magic), USB4_ADDR_MAGIC);
	CHECK_EQ(b[4], USB4_ADDR_VERSION);
	CHECK_EQ_MSG(b[5], USB4_WIRE_VERSION,
		     "the address does not carry our protocol version");
	CHECK_MSG(b[6] == 0 && b[7] == 0, "flags not zero");
	for (int i = 0; i < 8; i++) {
		CHECK_EQ_MSG(b[8 + i], 8 - i, "host_id byte %d", i);
		CHECK_EQ_MSG(b[16 + i], 0x18 - i, "ep_id byte %d", i);
	}
	CHECK_EQ(le64toh(a.host_id), 0x0102030405060708ull);
	CHECK_EQ(le64toh(a.ep_id), 0x1112131415161718ull);
	CHECK_MSG(!memcmp(b + 24, zero, 4), "shm_pid not zero");
	/* No inbox and no registration table yet: -1 each. */
	for (int i = 28; i < 36; i++)
		CHECK_EQ_MSG(b[i], 0xff, "byte %d of the shm fds (want -1)", i);
	CHECK_EQ((int32_t) le32toh(a.shm_inbox_fd), -1);
	CHECK_EQ((int32_t) le32toh(a.shm_reg_fd), -1);
	/* No udp part: family 0, port 0, no address. */
	CHECK_MSG(!memcmp(b + 36, zero, 4), "udp family/reserved/port not zero");
	CHECK_MSG(!memcmp(b + 40, zero, 16), "udp_ip not zero");
}

static void test_verdict_names(void)
{
	for (int v = 0; v < USB4_WIRE_VERDICT_MAX; v++)
		CHECK(usb4_wire_verdict_names[v] != NULL &&
		      usb4_wire_verdict_names[v][0] != '\0');
}

int main(void)
{
	test_round_trip();
	test_header_rejects();
	test_rts_rejects();
	test_rts_layout();
	test_ctrl_rejects();
	test_stream_frames();
	test_parse_split();
	test_addr();
	test_verdict_names();
	return usb4_test_done("test_wire");
}
