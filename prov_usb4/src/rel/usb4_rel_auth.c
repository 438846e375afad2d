/*
 * Datagram authentication under a job key: BLAKE2b for the key derivations
 * and handshake tags, ChaCha20 and Poly1305 for session tags (RFC 8439
 * makes a Poly1305 key per message), all from libsodium -- except Poly1305
 * over bulk datagrams, which comes from OpenSSL's libcrypto: its vector
 * code (AVX2, AVX-512) tags a 64 KiB datagram 2.5x as fast as libsodium
 * 1.0.18 here, but a call costs about 1 us, so small datagrams stay with
 * libsodium.  Both compute the same function: the tag does not depend on
 * which library made it.  FI_USB4_PORTABLE=1 keeps every datagram on
 * libsodium.
 */
#include <endian.h>
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "usb4.h"
#include "usb4_rel.h"
#include "usb4_rel_auth.h"

/* Datagrams at least this long are tagged by libcrypto's Poly1305. */
#define USB4_AUTH_BULK	4096

/* Domain separation: each use of the job key hashes its own label first. */
static const char job_label[] = "usb4 v3 job key";
static const char hs_label[] = "usb4 v3 handshake";
static const char session_label[] = "usb4 v3 session";

int usb4_auth_job_init(struct usb4_auth_job *job, const void *material,
		       size_t len)
{
	crypto_generichash_state st;

	if (!len || sodium_init() < 0)
		return -FI_ENOSYS;
	crypto_generichash_init(&st, NULL, 0, sizeof(job->key));
	crypto_generichash_update(&st, (const void *) job_label,
				  sizeof(job_label));
	crypto_generichash_update(&st, material, len);
	crypto_generichash_final(&st, job->key, sizeof(job->key));
	return 0;
}

void usb4_auth_job_clear(struct usb4_auth_job *job)
{
	sodium_memzero(job, sizeof(*job));
}

void usb4_auth_nonce(unsigned char nonce[USB4_AUTH_NONCE_LEN])
{
	randombytes_buf(nonce, USB4_AUTH_NONCE_LEN);
}

static void hash_pieces(crypto_generichash_state *st,
			const struct iovec *pieces, int count)
{
	for (int i = 0; i < count; i++)
		crypto_generichash_update(st, pieces[i].iov_base,
					  pieces[i].iov_len);
}

void usb4_auth_hs_tag(const struct usb4_auth_job *job,
		      const struct iovec *pieces, int count,
		      unsigned char tag[USB4_AUTH_TAG_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, job->key, sizeof(job->key),
				USB4_AUTH_TAG_LEN);
	crypto_generichash_update(&st, (const void *) hs_label,
				  sizeof(hs_label));
	hash_pieces(&st, pieces, count);
	crypto_generichash_final(&st, tag, USB4_AUTH_TAG_LEN);
}

bool usb4_auth_hs_check(const struct usb4_auth_job *job,
			const struct iovec *pieces, int count,
			const unsigned char tag[USB4_AUTH_TAG_LEN])
{
	unsigned char want[USB4_AUTH_TAG_LEN];

	usb4_auth_hs_tag(job, pieces, count, want);
	return crypto_verify_16(want, tag) == 0;
}

/* The key of the direction from -> to. */
static void direction_key(unsigned char key[USB4_AUTH_KEY_LEN],
			  const struct usb4_auth_job *job,
			  uint64_t from_id, uint64_t to_id,
			  const unsigned char *from_nonce,
			  const unsigned char *to_nonce)
{
	crypto_generichash_state st;
	uint64_t ids[2] = { htole64(from_id), htole64(to_id) };

	crypto_generichash_init(&st, job->key, sizeof(job->key),
				USB4_AUTH_KEY_LEN);
	crypto_generichash_update(&st, (const void *) session_label,
				  sizeof(session_label));
	crypto_generichash_update(&st, (const void *) ids, sizeof(ids));
	crypto_generichash_update(&st, from_nonce, USB4_AUTH_NONCE_LEN);
	crypto_generichash_update(&st, to_nonce, USB4_AUTH_NONCE_LEN);
	crypto_generichash_final(&st, key, USB4_AUTH_KEY_LEN);
}

void usb4_auth_session_init(struct usb4_auth_session *s,
			    const struct usb4_auth_job *job,
			    uint64_t local_id, uint64_t remote_id,
			    const unsigned char local_nonce[USB4_AUTH_NONCE_LEN],
			    const unsigned char remote_nonce[USB4_AUTH_NONCE_LEN])
{
	memset(s, 0, sizeof(*s));
	direction_key(s->tx_key, job, local_id, remote_id, local_nonce,
		      remote_nonce);
	direction_key(s->rx_key, job, remote_id, local_id, remote_nonce,
		      local_nonce);
}

static void poly1305_small(const unsigned char *otk, const struct iovec *pieces,
			   int count, unsigned char *tag)
{
	crypto_onetimeauth_poly1305_state st;

	crypto_onetimeauth_poly1305_init(&st, otk);
	for (int i = 0; i < count; i++)
		crypto_onetimeauth_poly1305_update(&st, pieces[i].iov_base,
						   pieces[i].iov_len);
	crypto_onetimeauth_poly1305_final(&st, tag);
}

/* Each thread's libcrypto Poly1305 context, made on first use. */
static pthread_key_t bulk_key;
static pthread_once_t bulk_once = PTHREAD_ONCE_INIT;
static EVP_MAC *bulk_mac;	/* NULL: libsodium for every datagram */

static void bulk_ctx_free(void *ctx)
{
	EVP_MAC_CTX_free(ctx);
}

static void bulk_init(void)
{
	if (usb4_portable_forced() ||
	    pthread_key_create(&bulk_key, bulk_ctx_free))
		return;
	bulk_mac = EVP_MAC_fetch(NULL, "POLY1305", NULL);
}

static EVP_MAC_CTX *bulk_ctx(void)
{
	EVP_MAC_CTX *ctx;

	pthread_once(&bulk_once, bulk_init);
	if (!bulk_mac)
		return NULL;
	ctx = pthread_getspecific(bulk_key);
	if (!ctx && (ctx = EVP_MAC_CTX_new(bulk_mac)))
		pthread_setspecific(bulk_key, ctx);
	return ctx;
}

/* libcrypto's Poly1305; false when it is not to be had (then libsodium's
 * does it). */
static bool poly1305_bulk(const unsigned char *otk, const struct iovec *pieces,
			  int count, unsigned char *tag)
{
	EVP_MAC_CTX *ctx = bulk_ctx();
	size_t len;

	if (!ctx || !EVP_MAC_init(ctx, otk, crypto_onetimeauth_poly1305_KEYBYTES,
				  NULL))
		return false;
	for (int i = 0; i < count; i++)
		if (!EVP_MAC_update(ctx, pieces[i].iov_base, pieces[i].iov_len))
			return false;
	return EVP_MAC_final(ctx, tag, &len, USB4_AUTH_TAG_LEN) &&
	       len == USB4_AUTH_TAG_LEN;
}

static bool bulk_wanted(const struct iovec *pieces, int count)
{
	size_t len = 0;

	for (int i = 0; i < count; i++)
		len += pieces[i].iov_len;
	return len >= USB4_AUTH_BULK;
}

const char *usb4_auth_bulk_path(void)
{
	return bulk_ctx() ? "libcrypto" : "libsodium";
}

void usb4_auth_poly1305(const unsigned char *otk, const struct iovec *pieces,
			int count, bool bulk, unsigned char *tag)
{
	if (!bulk || !poly1305_bulk(otk, pieces, count, tag))
		poly1305_small(otk, pieces, count, tag);
}

/* The Poly1305 tag of pieces under key at packet number pn. */
static void session_tag(const unsigned char key[USB4_AUTH_KEY_LEN],
			const struct iovec *pieces, int count, uint64_t pn,
			unsigned char tag[USB4_AUTH_TAG_LEN])
{
	unsigned char nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = { 0 };
	unsigned char otk[crypto_onetimeauth_poly1305_KEYBYTES];
	uint64_t le = htole64(pn);

	memcpy(nonce + sizeof(nonce) - sizeof(le), &le, sizeof(le));
	crypto_stream_chacha20_ietf(otk, sizeof(otk), nonce, key);
	usb4_auth_poly1305(otk, pieces, count, bulk_wanted(pieces, count), tag);
	sodium_memzero(otk, sizeof(otk));
}

void usb4_auth_seal(struct usb4_auth_session *s, const struct iovec *pieces,
		    int count, uint64_t *pn,
		    unsigned char tag[USB4_AUTH_TAG_LEN])
{
	*pn = ++s->tx_pn;
	session_tag(s->tx_key, pieces, count, *pn, tag);
}

bool usb4_auth_verify(const struct usb4_auth_session *s,
		      const struct iovec *pieces, int count, uint64_t pn,
		      const unsigned char tag[USB4_AUTH_TAG_LEN])
{
	unsigned char want[USB4_AUTH_TAG_LEN];

	if (!pn)
		return false;	/* packet numbers start at 1 */
	session_tag(s->rx_key, pieces, count, pn, want);
	return crypto_verify_16(want, tag) == 0;
}

static bool seen_bit(const uint64_t *seen, uint64_t i)
{
	return seen[i / 64] >> (i % 64) & 1;
}

bool usb4_auth_replayed(const struct usb4_auth_session *s, uint64_t pn)
{
	if (pn > s->rx_top)
		return false;
	if (s->rx_top - pn >= USB4_AUTH_REPLAY_BITS)
		return true;	/* too old to tell: treated as seen */
	return seen_bit(s->rx_seen, s->rx_top - pn);
}

/* Moves the window up by shift packet numbers. */
static void window_shift(uint64_t *seen, uint64_t shift)
{
	const unsigned words = USB4_AUTH_REPLAY_BITS / 64;

	if (shift >= USB4_AUTH_REPLAY_BITS) {
		memset(seen, 0, words * sizeof(*seen));
		return;
	}
	for (unsigned w = words; w-- > 0;) {
		uint64_t v = 0;
		uint64_t src = shift / 64, bits = shift % 64;

		if (w >= src) {
			v = seen[w - src] << bits;
			if (bits && w > src)
				v |= seen[w - src - 1] >> (64 - bits);
		}
		seen[w] = v;
	}
}

void usb4_auth_accept_pn(struct usb4_auth_session *s, uint64_t pn)
{
	if (pn > s->rx_top) {
		window_shift(s->rx_seen, pn - s->rx_top);
		s->rx_top = pn;
	}
	s->rx_seen[(s->rx_top - pn) / 64] |= 1ull << ((s->rx_top - pn) % 64);
}
