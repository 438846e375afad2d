/*
 * Rails (private to the udp link): several cables to one peer.
 *
 * A link opens one socket per usable interface (FI_USB4_IFACE, or every
 * thunderbolt-net interface), at most USB4_UDP_RAILS_MAX: its rails.  The
 * endpoint address names the first (the primary); the handshake carries
 * the whole list (struct usb4_wire_rails, as rel's opaque hello extension)
 * when the endpoint has more than one.  A session's paths pair our rails
 * with the peer's: a peer rail is reached from the rail whose subnet holds
 * it (a directly connected cable); rails on subnets we do not share are
 * ignored, and a peer whose primary address is not on our primary rail's
 * subnet (reached through routing) keeps the primary path alone.
 *
 * Sending: each large DATA datagram goes to the live path whose socket has
 * the fewest bytes not yet sent by its interface (round-robin on ties), so
 * each cable is fed as fast as it drains and a slower one does not hold a
 * faster one back; the next takes over when a socket is full.  Small ones
 * and acks take the first live path.  A path whose socket refuses to send (the interface went
 * down) is retired at once; one that carried DATA and heard nothing for
 * FI_USB4_RAIL_TIMEOUT_MS is retired then.  Either way the frames in flight
 * are sent again on the others (usb4_rel_resend_in_flight).  A peer that
 * talks to us on a path hears from us on it too (an ack at least every
 * timeout / 5 while it does), so silence means a dead path, not a quiet
 * peer.  A retired path gets an ack every 2 * timeout / 5 (its probe) and is
 * live again once an authenticated datagram of the session comes on it.
 * A path the peer's rail list adds starts out the same way, probed at once
 * and used only once the session was heard on it: the list is the peer's
 * word, and a peer could name a third host's address to aim our data at it.
 *
 * Receiving: a session's datagrams count only from a paired peer address
 * on the socket of its rail; the link checks that (usb4_udp_paths_find)
 * before rel sees the datagram, and calls usb4_udp_path_heard only for
 * what rel accepted.
 */
#ifndef USB4_UDP_RAILS_H
#define USB4_UDP_RAILS_H

#include <stdbool.h>
#include <stdint.h>

#include "usb4_udp.h"
#include "usb4_rel.h"
#include "../wire.h"

#define USB4_UDP_RAILS_MAX	USB4_WIRE_RAILS_MAX
#define USB4_UDP_STRIPE_MIN	8192	/* DATA datagrams this large stripe */

struct usb4_udp_rail_stats {
	uint64_t sent, bytes_sent;
	uint64_t received, bytes_received;
	uint64_t retransmitted;		/* DATA sent again on this rail */
	uint64_t send_errors;		/* the socket refused (not full) */
	uint64_t retired, revived;	/* paths on this rail */
};

/* One socket of the link, on one interface. */
struct usb4_udp_rail {
	struct usb4_udp_sock *sock;
	char name[USB4_IFACE_NAME_MAX];
	struct usb4_udp_addr self;
	uint8_t mask[16];		/* its subnet, network byte order */
	struct usb4_udp_rail_stats stats;
};

struct usb4_udp_rails {
	struct usb4_udp_rail rail[USB4_UDP_RAILS_MAX];
	int count;
	int epfd;			/* every rail's socket, when count > 1 */
	struct usb4_rel_hello_ext ext;	/* our rail list, when count > 1 */
	uint64_t timeout_ns;		/* silence that retires a path */
	uint64_t answer_ns;		/* longest we stay silent on a path the
					 * peer talks to us on */
	uint64_t probe_ns;		/* between probes of a retired path */
};

/* A session's way over one of our rails to one of the peer's. */
struct usb4_udp_path {
	struct usb4_udp_addr to;
	uint8_t rail;
	bool live;
	bool verified;			/* an authenticated datagram of the
					 * session came on it */
	uint64_t said;			/* our last datagram on it (ns) */
	uint64_t waiting;		/* first DATA since we last heard on
					 * it; 0: none */
	uint64_t probe_due;		/* retired: the next probe */
};

struct usb4_udp_paths {
	struct usb4_udp_path path[USB4_UDP_RAILS_MAX];
	int count;			/* 1: the primary path only */
	int next;			/* round robin of large datagrams */
	int forced;			/* the next send's path, or -1 */
	bool paired;			/* the peer's rail list was looked at */
	bool resend;			/* a path was retired: resend in flight */
	bool data_sent;
	uint32_t data_top;		/* past the highest DATA seq sent */
};

/* Opens the primary rail on iface at port (0: the kernel picks) and, when
 * more, one more per other usable interface.  Leaves r empty on error. */
int usb4_udp_rails_open(struct usb4_udp_rails *r, const struct usb4_iface *iface,
			uint16_t port, bool more,
			const struct usb4_udp_faults *faults);
/* The same in steps (tests use them): one more rail on iface (another
 * interface of the primary's family, datagrams as large); then the epoll
 * set and the rail list, once every rail is there. */
int usb4_udp_rails_add(struct usb4_udp_rails *r, const struct usb4_iface *iface,
		       const struct usb4_udp_faults *faults);
void usb4_udp_rails_ready(struct usb4_udp_rails *r);
void usb4_udp_rails_close(struct usb4_udp_rails *r);
/* What to wait on: the one socket, or an epoll set of them all. */
int usb4_udp_rails_fd(const struct usb4_udp_rails *r);
/* The rail list for our handshake, or NULL with a single rail. */
const struct usb4_rel_hello_ext *
usb4_udp_rails_ext(const struct usb4_udp_rails *r);

/* A session's paths before pairing: the primary one, to addr. */
void usb4_udp_paths_init(struct usb4_udp_paths *p,
			 const struct usb4_udp_addr *addr);
/* Pairs our rails with the peer's list (from its handshake), once. */
void usb4_udp_paths_pair(const struct usb4_udp_rails *r,
			 struct usb4_udp_paths *p,
			 const struct usb4_rel_hello_ext *ext);
/* The path a datagram from `from` on rail belongs to, or -1. */
int usb4_udp_paths_find(const struct usb4_udp_paths *p, int rail,
			const struct usb4_udp_addr *from);
/* Sends one rel datagram on the path its kind and the rails' state pick
 * (rel's xmit). */
int usb4_udp_paths_send(struct usb4_udp_rails *r, struct usb4_udp_paths *p,
			const struct iovec *iov, int count, uint64_t now);
/* An authenticated datagram of the session came on path i: it lives.
 * Returns whether we owe the peer an answer on it now. */
bool usb4_udp_path_heard(struct usb4_udp_rails *r, struct usb4_udp_paths *p,
			 int i, uint64_t now);
/* Retires paths silent too long; returns the paths to probe now (bit i:
 * path i), their next probe set. */
unsigned usb4_udp_paths_due(struct usb4_udp_rails *r, struct usb4_udp_paths *p,
			    uint64_t now);
/* When usb4_udp_paths_due next has work (UINT64_MAX: never). */
uint64_t usb4_udp_paths_deadline(const struct usb4_udp_rails *r,
				 const struct usb4_udp_paths *p);
/* Counts a datagram of len bytes received on rail. */
void usb4_udp_rail_received(struct usb4_udp_rails *r, int rail, size_t len);
/* One line per rail (INFO): state, bytes, datagrams, retransmissions,
 * times retired; live[i] false when a path on rail i is retired. */
void usb4_udp_rails_log(const struct usb4_udp_rails *r, const bool *live);

#endif /* USB4_UDP_RAILS_H */
