/*
 * Unit tests of the frame format (prov_usb4/src/wire.h, core/usb4_wire.c):
 * every frame type survives build + parse, and every malformed frame gets the
 * verdict that makes the core count and drop it.
 */
#include <endian.h>
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
	struct usb4_wire_rts rts = { .pid = htole32(1234),
				     .iov_count = htole32(n) };
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

	/* Zero segments describe zero bytes. */
	plen = make_rts(p, 0, lens);
	in.payload_len = plen;
	in.total_len = 0;
	len = make(&in, p, plen);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_OK);
	in.total_len = 1;
	len = make(&in, p, plen);
	CHECK_EQ(usb4_wire_parse(buf, len, &out), USB4_WIRE_LEN_BAD);
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
	test_ctrl_rejects();
	test_verdict_names();
	return usb4_test_done("test_wire");
}
