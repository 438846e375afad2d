/*
 * Datagram authentication of rel sessions under a job key (libsodium).
 *
 * A job key is what every endpoint of one job was given (FI_USB4_AUTH_KEY,
 * the auth_key attribute).  With one, every rel datagram ends in a trailer
 * (struct usb4_wire_auth, wire.h):
 *   - handshake datagrams (HELLO, HELLO_ACK, REJECT) carry a keyed BLAKE2b
 *     tag under the job key: only a holder of the key can start a session;
 *   - session datagrams (DATA, ACK) carry a Poly1305 tag under a one-time
 *     key from ChaCha20, keyed per direction with a session key derived from
 *     the job key, both endpoints' ids and both sides' handshake nonces, at
 *     a packet number that never repeats in that direction: only the two
 *     endpoints of the session can make one, and a replayed one is seen.
 * The payload is not encrypted: the key protects who may talk, not what is
 * said (a host on the cable still reads the bytes).
 */
#ifndef USB4_REL_AUTH_H
#define USB4_REL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define USB4_AUTH_KEY_LEN	32
#define USB4_AUTH_NONCE_LEN	16
#define USB4_AUTH_TAG_LEN	16
#define USB4_AUTH_REPLAY_BITS	256	/* packet numbers behind the newest
					 * that may still arrive, once */

/* The job key, as derived from what the job was given. */
struct usb4_auth_job {
	unsigned char key[USB4_AUTH_KEY_LEN];
};

/* One session's keys and packet numbers. */
struct usb4_auth_session {
	unsigned char tx_key[USB4_AUTH_KEY_LEN];
	unsigned char rx_key[USB4_AUTH_KEY_LEN];
	uint64_t tx_pn;		/* last packet number sent */
	uint64_t rx_top;	/* highest packet number accepted */
	uint64_t rx_seen[USB4_AUTH_REPLAY_BITS / 64];	/* bit i: rx_top - i */
};

/* Derives the job key from len bytes of key material (len > 0).
 * -FI_ENOSYS when the crypto library cannot start. */
int usb4_auth_job_init(struct usb4_auth_job *job, const void *material,
		       size_t len);

/* Forgets the key (before the memory goes back). */
void usb4_auth_job_clear(struct usb4_auth_job *job);

/* A fresh random handshake nonce (after usb4_auth_job_init). */
void usb4_auth_nonce(unsigned char nonce[USB4_AUTH_NONCE_LEN]);

/* The tag of a handshake datagram given in pieces (the trailer excluded). */
void usb4_auth_hs_tag(const struct usb4_auth_job *job,
		      const struct iovec *pieces, int count,
		      unsigned char tag[USB4_AUTH_TAG_LEN]);
bool usb4_auth_hs_check(const struct usb4_auth_job *job,
			const struct iovec *pieces, int count,
			const unsigned char tag[USB4_AUTH_TAG_LEN]);

/* The keys of the session between local and remote, from both nonces; the
 * peer derives the same keys with the roles swapped. */
void usb4_auth_session_init(struct usb4_auth_session *s,
			    const struct usb4_auth_job *job,
			    uint64_t local_id, uint64_t remote_id,
			    const unsigned char local_nonce[USB4_AUTH_NONCE_LEN],
			    const unsigned char remote_nonce[USB4_AUTH_NONCE_LEN]);

/* Tags a session datagram (the trailer excluded) with the next packet
 * number, which it returns through *pn. */
void usb4_auth_seal(struct usb4_auth_session *s, const struct iovec *pieces,
		    int count, uint64_t *pn,
		    unsigned char tag[USB4_AUTH_TAG_LEN]);

/* Whether a received session datagram carries a valid tag for packet
 * number pn (nothing is remembered: see usb4_auth_replay_*). */
bool usb4_auth_verify(const struct usb4_auth_session *s,
		      const struct iovec *pieces, int count, uint64_t pn,
		      const unsigned char tag[USB4_AUTH_TAG_LEN]);

/* Whether pn was seen already or is too old to tell; then marks it seen
 * (only after the tag was verified: a forgery must not move the window). */
bool usb4_auth_replayed(const struct usb4_auth_session *s, uint64_t pn);
void usb4_auth_accept_pn(struct usb4_auth_session *s, uint64_t pn);

/* Poly1305 of pieces under a one-time key: by libcrypto when bulk (and
 * it is available), else by libsodium; the same tag either way (tests
 * compare the two). */
void usb4_auth_poly1305(const unsigned char *otk, const struct iovec *pieces,
			int count, bool bulk, unsigned char *tag);
/* Who tags bulk datagrams here: "libcrypto", or "libsodium" (libcrypto's
 * Poly1305 missing, or FI_USB4_PORTABLE=1). */
const char *usb4_auth_bulk_path(void);

#endif /* USB4_REL_AUTH_H */
