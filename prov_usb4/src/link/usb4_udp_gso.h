/*
 * Send batching with UDP GSO (private to src/link; usb4_udp_gso.c).
 *
 * On an interface with small frames (thunderbolt-net's 4 KiB DMA frames,
 * MTU 4084) a bulk transfer is a stream of datagrams of one size, each a
 * system call and a trip down the stack.  With UDP_SEGMENT (man 7 udp) the
 * kernel takes up to 64 KiB of equal datagrams in one sendmsg and cuts them
 * apart late (or the device does): each still arrives as its own datagram,
 * so the receiver and the wire format do not change.
 *
 * The socket hands datagrams to the batch instead of sending them; whoever
 * called into rel flushes the batch before it returns (the link, after
 * every rel call).  Pieces of a datagram smaller than
 * USB4_UDP_GSO_COPY_MAX are copied (rel builds headers on its stack),
 * larger ones are referred to: rel keeps payloads until they are acked,
 * which cannot happen before they are sent.
 *
 * A kernel that refuses GSO on the socket (older than 4.18, no checksum
 * offload on the device: EIO) turns batching off for the socket; a batch
 * the kernel does not take goes datagram by datagram, and what fails then
 * is a loss rel repairs.  A datagram the interface refused (EMSGSIZE) turns
 * batching off for USB4_UDP_GSO_PAUSE_NS, so that rel sees its
 * retransmissions refused and shrinks the path.
 */
#ifndef USB4_UDP_GSO_H
#define USB4_UDP_GSO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define USB4_UDP_GSO_SEGS	64	/* datagrams per send: the kernel's
					 * UDP_MAX_SEGMENTS on every version */
#define USB4_UDP_GSO_BYTES	65507	/* payload per send (IPv4's largest) */
#define USB4_UDP_GSO_DGRAM_MAX	16384	/* larger datagrams go alone: few
					 * fit in a batch, nothing to save */
#define USB4_UDP_GSO_IOV	256	/* pieces per send */
#define USB4_UDP_GSO_COPY_MAX	256	/* pieces this small are copied */
#define USB4_UDP_GSO_COPY_ROOM	(USB4_UDP_GSO_SEGS * 4 * USB4_UDP_GSO_COPY_MAX)
#define USB4_UDP_GSO_PAUSE_NS	(1000ull * 1000 * 1000)
#define USB4_UDP_GSO_WAIT_MS	10	/* a full socket buffer drains this
					 * long before a batch goes piecemeal */

struct usb4_udp_gso_stats {
	uint64_t sends;		/* sendmsg calls that carried a batch */
	uint64_t datagrams;	/* datagrams they carried */
	uint64_t waits;		/* batches that waited for buffer room */
	uint64_t piecemeal;	/* batches sent datagram by datagram */
	uint64_t lost;		/* datagrams of those that failed */
	bool refused;		/* the kernel has no GSO for the socket */
};

struct usb4_udp_gso {
	bool on;		/* the socket batches */
	uint64_t paused_until;	/* after an EMSGSIZE (usb4_now_ns); 0 */
	/* the batch: datagrams of seg bytes, the last maybe shorter */
	struct sockaddr_storage to;
	socklen_t to_len;
	size_t seg, total;
	int segs, niov;
	bool closed;		/* a shorter datagram ended it */
	int first[USB4_UDP_GSO_SEGS + 1];	/* iov index of each datagram */
	struct iovec iov[USB4_UDP_GSO_IOV];
	size_t copied;
	unsigned char *copy;	/* USB4_UDP_GSO_COPY_ROOM bytes */
	struct usb4_udp_gso_stats stats;
};

/* Batching for fd when want and its datagrams are at most datagram_max
 * bytes (small frames) and the kernel knows UDP_SEGMENT; 0 or -FI_ENOMEM. */
int usb4_udp_gso_init(struct usb4_udp_gso *g, int fd, size_t datagram_max,
		      bool want);
void usb4_udp_gso_fini(struct usb4_udp_gso *g);
/* Takes the datagram iov[0..count) to `to` into the batch: true.  false:
 * the caller sends it itself now (what was batched went first). */
bool usb4_udp_gso_add(struct usb4_udp_gso *g, int fd,
		      const struct sockaddr_storage *to, socklen_t to_len,
		      const struct iovec *iov, int count);
/* Sends the batch; 0, or -errno of the sendmsg when the kernel took none
 * of it (the batch stays: flush again, or usb4_udp_gso_piecemeal). */
int usb4_udp_gso_flush(struct usb4_udp_gso *g, int fd);
/* Sends the batch datagram by datagram and empties it; errors are losses.
 * Returns the last error (-errno), or 0. */
int usb4_udp_gso_piecemeal(struct usb4_udp_gso *g, int fd);
static inline bool usb4_udp_gso_pending(const struct usb4_udp_gso *g)
{
	return g->segs != 0;
}

#endif /* USB4_UDP_GSO_H */
