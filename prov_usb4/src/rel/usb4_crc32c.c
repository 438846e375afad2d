/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every
 * rel datagram.  Software slice-by-8 everywhere; on x86-64 CPUs with SSE4.2
 * the crc32 instruction, chosen once at load time with cpuid (an instruction,
 * not a system call, so rel stays free of system calls).
 *
 * Convention: usb4_crc32c(0, buf, len) is the CRC of buf, and feeding the
 * result back as crc continues it: crc(a || b) == crc32c(crc32c(0, a), b).
 */
#include <endian.h>
#include <stdbool.h>
#include <string.h>

#include "usb4_rel.h"

#define USB4_CRC32C_POLY	0x82F63B78u

/* table[k][b]: CRC of byte b followed by k zero bytes (slice-by-8). */
static uint32_t usb4_crc32c_table[8][256];
static bool usb4_crc32c_hw;

static void usb4_crc32c_table_init(void)
{
	for (uint32_t b = 0; b < 256; b++) {
		uint32_t crc = b;
		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (USB4_CRC32C_POLY & -(crc & 1));
		usb4_crc32c_table[0][b] = crc;
	}
	for (uint32_t b = 0; b < 256; b++)
		for (int k = 1; k < 8; k++) {
			uint32_t prev = usb4_crc32c_table[k - 1][b];
			usb4_crc32c_table[k][b] = (prev >> 8) ^
				usb4_crc32c_table[0][prev & 0xff];
		}
}

/* Runs at load time so the data path never races on table setup. */
__attribute__((constructor))
static void usb4_crc32c_init(void)
{
	usb4_crc32c_table_init();
#if defined(__x86_64__)
	__builtin_cpu_init();
	usb4_crc32c_hw = __builtin_cpu_supports("sse4.2");
#endif
}

/* Works on the inverted register; callers invert on entry and exit. */
static uint32_t usb4_crc32c_sw(uint32_t crc, const unsigned char *p,
			       size_t len)
{
	const uint32_t (*t)[256] = usb4_crc32c_table;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w = le64toh(w) ^ crc;
		crc = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^
		      t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
		      t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^
		      t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
	}
	while (len--)
		crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t usb4_crc32c_sse42(uint32_t crc, const unsigned char *p,
				  size_t len)
{
	uint64_t c = crc;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
	}
	crc = (uint32_t) c;
	while (len--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

uint32_t usb4_crc32c(uint32_t crc, const void *data, size_t len)
{
	crc = ~crc;
#if defined(__x86_64__)
	if (usb4_crc32c_hw)
		return ~usb4_crc32c_sse42(crc, data, len);
#endif
	return ~usb4_crc32c_sw(crc, data, len);
}

/* The software path alone, so tests can check both against each other. */
uint32_t usb4_crc32c_soft(uint32_t crc, const void *data, size_t len)
{
	return ~usb4_crc32c_sw(~crc, data, len);
}
