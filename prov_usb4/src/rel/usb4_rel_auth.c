/*
 * Datagram authentication under a job key: every primitive is libsodium's
 * (BLAKE2b for the key derivations and handshake tags, ChaCha20 and
 * Poly1305 for session tags, as RFC 8439 makes a Poly1305 key per message).
 */
#include <endian.h>
#include <string.h>

#include <sodium.h>

#include "usb4.h"
#include "usb4_rel_auth.h"

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

/* The Poly1305 tag of pieces under key at packet number pn. */
static void session_tag(const unsigned char key[USB4_AUTH_KEY_LEN],
			const struct iovec *pieces, int count, uint64_t pn,
			unsigned char tag[USB4_AUTH_TAG_LEN])
{
	unsigned char nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = { 0 };
	unsigned char otk[crypto_onetimeauth_poly1305_KEYBYTES];
	crypto_onetimeauth_poly1305_state st;
	uint64_t le = htole64(pn);

	memcpy(nonce + sizeof(nonce) - sizeof(le), &le, sizeof(le));
	crypto_stream_chacha20_ietf(otk, sizeof(otk), nonce, key);
	crypto_onetimeauth_poly1305_init(&st, otk);
	for (int i = 0; i < count; i++)
		crypto_onetimeauth_poly1305_update(&st, pieces[i].iov_base,
						   pieces[i].iov_len);
	crypto_onetimeauth_poly1305_final(&st, tag);
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
