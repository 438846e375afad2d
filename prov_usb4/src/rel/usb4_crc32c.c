/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every
 * rel datagram.  Software slice-by-8 everywhere; on x86-64 CPUs with SSE4.2
 * the crc32 instruction (three lanes for large buffers), and with AVX-512
 * carry-less multiplication (VPCLMULQDQ) folding for 1 KiB and more, about
 * 2.5x the three lanes on data in cache.  The path is chosen once at load
 * time with cpuid (an instruction, not a system call, so rel stays free of
 * system calls); FI_USB4_PORTABLE=1 in the environment keeps the software
 * path, so that both can be tested and measured on any machine.
 *
 * Convention: usb4_crc32c(0, buf, len) is the CRC of buf, and feeding the
 * result back as crc continues it: crc(a || b) == crc32c(crc32c(0, a), b).
 */
#include <endian.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "usb4_rel.h"

#define USB4_CRC32C_POLY	0x82F63B78u

/* table[k][b]: CRC of byte b followed by k zero bytes (slice-by-8). */
static uint32_t usb4_crc32c_table[8][256];
static bool usb4_crc32c_hw;
static bool usb4_crc32c_fold512;	/* AVX-512 carry-less multiply */
/* x^(2^k) modulo the polynomial, reflected: to move a CRC past zeros. */
static uint32_t usb4_crc32c_x2k[64];

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

/*
 * Product of two polynomials modulo the CRC polynomial, both reflected (bit
 * 31 is x^0).  Walks a's terms from x^0 up while b runs through b * x^i.
 */
static uint32_t usb4_crc32c_mulmod(uint32_t a, uint32_t b)
{
	uint32_t product = 0;

	for (uint32_t term = 1u << 31; term; term >>= 1) {
		if (a & term)
			product ^= b;
		b = (b >> 1) ^ (USB4_CRC32C_POLY & -(b & 1));
	}
	return product;
}

/* x^bits mod P, reflected. */
static uint32_t usb4_crc32c_xpow(uint64_t bits)
{
	uint32_t factor = 1u << 31;	/* x^0 */

	for (int k = 0; bits; k++, bits >>= 1)
		if (bits & 1)
			factor = usb4_crc32c_mulmod(factor, usb4_crc32c_x2k[k]);
	return factor;
}

/* x^(8 len) mod P: the factor that moves a CRC past len zero bytes. */
static uint32_t usb4_crc32c_zeros(size_t len)
{
	return usb4_crc32c_xpow((uint64_t) len * 8);
}

#define USB4_CRC32C_ZEROS_CACHE	4

/*
 * The register of crc after len more zero bytes: crc * x^(8 len) mod P.
 * Datagrams come in few sizes, so each thread remembers the factors of the
 * last lengths: one product per shift instead of one per bit of len.
 */
static uint32_t usb4_crc32c_shift(uint32_t crc, size_t len)
{
	static __thread struct { size_t len; uint32_t factor; }
		cache[USB4_CRC32C_ZEROS_CACHE];
	static __thread unsigned next;
	unsigned i;

	for (i = 0; i < USB4_CRC32C_ZEROS_CACHE; i++)
		if (cache[i].len == len && cache[i].factor)
			return usb4_crc32c_mulmod(crc, cache[i].factor);
	i = next++ % USB4_CRC32C_ZEROS_CACHE;
	cache[i].len = len;
	cache[i].factor = usb4_crc32c_zeros(len);
	return usb4_crc32c_mulmod(crc, cache[i].factor);
}

static void usb4_crc32c_powers_init(void)
{
	usb4_crc32c_x2k[0] = 1u << 30;	/* x^1 */
	for (int k = 1; k < 64; k++)
		usb4_crc32c_x2k[k] = usb4_crc32c_mulmod(usb4_crc32c_x2k[k - 1],
							usb4_crc32c_x2k[k - 1]);
}

#if defined(__x86_64__)
/*
 * Folding with carry-less multiplication (the method of Intel's "Fast CRC
 * Computation for Generic Polynomials Using PCLMULQDQ", constants derived
 * here).  A 16-byte block A, read as two little-endian words a1 (first) and
 * a2, stands for a1 x^64 + a2 in the reflected bit order.  Moved d bits
 * later it is a1 x^(d+64) + a2 x^d, which is congruent mod P to
 * clmul(a1, K(d+64)) ^ clmul(a2, K(d)) read as a 16-byte block, where
 * K(n) = x^(n-32) mod P reflected in 33 bits (the product of a 64-bit and a
 * 33-bit reflected value comes out 32 degrees short, hence n - 32).  Such
 * a block is XORed onto the data d bits on, so the message keeps its
 * residue while it shrinks to 16 bytes that the crc32 instruction finishes.
 */
struct usb4_crc32c_fold {
	uint64_t k_lo, k_hi;	/* K(d + 64) for a1, K(d) for a2 */
};

/* Distances in bits: four 64-byte accumulators 256 bytes apart, then one
 * accumulator 64 bytes on, then 16-byte lanes 48, 32 and 16 bytes on. */
static struct usb4_crc32c_fold usb4_crc32c_f2048, usb4_crc32c_f512,
			       usb4_crc32c_f384, usb4_crc32c_f256,
			       usb4_crc32c_f128;

static struct usb4_crc32c_fold usb4_crc32c_fold_by(unsigned d)
{
	return (struct usb4_crc32c_fold) {
		.k_lo = (uint64_t) usb4_crc32c_xpow(d + 64 - 32) << 1,
		.k_hi = (uint64_t) usb4_crc32c_xpow(d - 32) << 1,
	};
}

static void usb4_crc32c_fold_init(void)
{
	usb4_crc32c_f2048 = usb4_crc32c_fold_by(2048);
	usb4_crc32c_f512 = usb4_crc32c_fold_by(512);
	usb4_crc32c_f384 = usb4_crc32c_fold_by(384);
	usb4_crc32c_f256 = usb4_crc32c_fold_by(256);
	usb4_crc32c_f128 = usb4_crc32c_fold_by(128);
}
#endif

bool usb4_portable_forced(void)
{
	const char *v = getenv("FI_USB4_PORTABLE");

	return v && *v && strcmp(v, "0");
}

/* Runs at load time so the data path never races on table setup. */
__attribute__((constructor))
static void usb4_crc32c_init(void)
{
	usb4_crc32c_table_init();
	usb4_crc32c_powers_init();
#if defined(__x86_64__)
	if (usb4_portable_forced())
		return;
	__builtin_cpu_init();
	usb4_crc32c_hw = __builtin_cpu_supports("sse4.2");
	usb4_crc32c_fold512 = usb4_crc32c_hw &&
			      __builtin_cpu_supports("avx512f") &&
			      __builtin_cpu_supports("pclmul") &&
			      __builtin_cpu_supports("vpclmulqdq");
	usb4_crc32c_fold_init();
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

#define USB4_CRC32C_FOLD_MIN	1024

__attribute__((target("avx512f,vpclmulqdq,pclmul")))
static inline __m512i usb4_crc32c_fold4(__m512i acc, __m512i k, __m512i next)
{
	return _mm512_xor_si512(_mm512_xor_si512(
		_mm512_clmulepi64_epi128(acc, k, 0x00),
		_mm512_clmulepi64_epi128(acc, k, 0x11)), next);
}

/* f's constants as one 16-byte lane: k_lo for a1, k_hi for a2. */
__attribute__((target("avx512f,vpclmulqdq,pclmul")))
static inline __m128i usb4_crc32c_k1(const struct usb4_crc32c_fold *f)
{
	return _mm_set_epi64x((long long) f->k_hi, (long long) f->k_lo);
}

__attribute__((target("avx512f,vpclmulqdq,pclmul")))
static inline __m128i usb4_crc32c_fold1(__m128i acc,
					const struct usb4_crc32c_fold *f,
					__m128i next)
{
	__m128i k = usb4_crc32c_k1(f);

	return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(acc, k, 0x00),
					   _mm_clmulepi64_si128(acc, k, 0x11)),
			     next);
}

__attribute__((target("avx512f,vpclmulqdq,pclmul")))
static __m512i usb4_crc32c_k4(const struct usb4_crc32c_fold *f)
{
	return _mm512_broadcast_i32x4(usb4_crc32c_k1(f));
}

/*
 * len >= USB4_CRC32C_FOLD_MIN.  Four 64-byte accumulators (sixteen 16-byte
 * lanes) fold 256 bytes on per round, so the multiplier's latency hides;
 * then they fold into one, its four lanes into one, leftover 16-byte blocks
 * into that, and the crc32 instruction takes the last 16 bytes and the tail.
 * The register enters as data: XORed into the first four bytes.
 */
__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2")))
static uint32_t usb4_crc32c_vpclmul(uint32_t crc, const unsigned char *p,
				    size_t len)
{
	__m512i k = usb4_crc32c_k4(&usb4_crc32c_f2048);
	__m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(p),
				      _mm512_zextsi128_si512(
					      _mm_cvtsi32_si128((int) crc)));
	__m512i x1 = _mm512_loadu_si512(p + 64);
	__m512i x2 = _mm512_loadu_si512(p + 128);
	__m512i x3 = _mm512_loadu_si512(p + 192);
	__m128i acc;
	uint64_t c, w;

	for (p += 256, len -= 256; len >= 256; p += 256, len -= 256) {
		x0 = usb4_crc32c_fold4(x0, k, _mm512_loadu_si512(p));
		x1 = usb4_crc32c_fold4(x1, k, _mm512_loadu_si512(p + 64));
		x2 = usb4_crc32c_fold4(x2, k, _mm512_loadu_si512(p + 128));
		x3 = usb4_crc32c_fold4(x3, k, _mm512_loadu_si512(p + 192));
	}
	k = usb4_crc32c_k4(&usb4_crc32c_f512);
	x1 = usb4_crc32c_fold4(x0, k, x1);
	x2 = usb4_crc32c_fold4(x1, k, x2);
	x3 = usb4_crc32c_fold4(x2, k, x3);
	acc = _mm512_extracti32x4_epi32(x3, 3);
	acc = usb4_crc32c_fold1(_mm512_extracti32x4_epi32(x3, 0),
				&usb4_crc32c_f384, acc);
	acc = usb4_crc32c_fold1(_mm512_extracti32x4_epi32(x3, 1),
				&usb4_crc32c_f256, acc);
	acc = usb4_crc32c_fold1(_mm512_extracti32x4_epi32(x3, 2),
				&usb4_crc32c_f128, acc);
	for (; len >= 16; p += 16, len -= 16)
		acc = usb4_crc32c_fold1(acc, &usb4_crc32c_f128,
					_mm_loadu_si128((const void *) p));
	w = (uint64_t) _mm_cvtsi128_si64(acc);
	c = __builtin_ia32_crc32di(0, w);
	w = (uint64_t) _mm_extract_epi64(acc, 1);
	c = __builtin_ia32_crc32di(c, w);
	return usb4_crc32c_sse42((uint32_t) c, p, len);
}

/* Below this a CRC is short anyway; above, three lanes pay for combining. */
#define USB4_CRC32C_LANES_MIN	4096

/*
 * The crc32 instruction takes 3 cycles but can start one every cycle: three
 * independent lanes over three thirds of the buffer keep it busy, and CRC
 * linearity joins them: crc(A B C) = shift(crc(A), |B C|) ^ shift(crc0(B),
 * |C|) ^ crc0(C), where crc0 starts from a zero register.
 */
__attribute__((target("sse4.2")))
static uint32_t usb4_crc32c_sse42_lanes(uint32_t crc, const unsigned char *p,
					size_t len)
{
	size_t lane = len / 3 / 8 * 8;
	const unsigned char *p1 = p + lane, *p2 = p + 2 * lane;
	uint64_t c0 = crc, c1 = 0, c2 = 0;

	for (size_t i = 0; i < lane; i += 8) {
		uint64_t w0, w1, w2;
		memcpy(&w0, p + i, 8);
		memcpy(&w1, p1 + i, 8);
		memcpy(&w2, p2 + i, 8);
		c0 = __builtin_ia32_crc32di(c0, w0);
		c1 = __builtin_ia32_crc32di(c1, w1);
		c2 = __builtin_ia32_crc32di(c2, w2);
	}
	/* The third lane also takes the tail. */
	c2 = usb4_crc32c_sse42((uint32_t) c2, p2 + lane, len - 3 * lane);
	return usb4_crc32c_shift((uint32_t) c0, len - lane) ^
	       usb4_crc32c_shift((uint32_t) c1, len - 2 * lane) ^ (uint32_t) c2;
}
#endif

uint32_t usb4_crc32c(uint32_t crc, const void *data, size_t len)
{
	crc = ~crc;
#if defined(__x86_64__)
	if (usb4_crc32c_fold512 && len >= USB4_CRC32C_FOLD_MIN)
		return ~usb4_crc32c_vpclmul(crc, data, len);
	if (usb4_crc32c_hw)
		return ~(len >= USB4_CRC32C_LANES_MIN ?
			 usb4_crc32c_sse42_lanes(crc, data, len) :
			 usb4_crc32c_sse42(crc, data, len));
#endif
	return ~usb4_crc32c_sw(crc, data, len);
}

const char *usb4_crc32c_path(void)
{
	return usb4_crc32c_fold512 ? "vpclmulqdq" :
	       usb4_crc32c_hw ? "sse4.2" : "portable";
}

bool usb4_crc32c_fast(void)
{
	return usb4_crc32c_hw;
}

/* The software path alone, so tests can check both against each other. */
uint32_t usb4_crc32c_soft(uint32_t crc, const void *data, size_t len)
{
	return ~usb4_crc32c_sw(~crc, data, len);
}
