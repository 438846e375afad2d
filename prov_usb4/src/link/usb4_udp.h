/*
 * The udp link (private to src/link): peers on other hosts, reached over an
 * IP interface: on USB4 hosts the thunderbolt-net interface of each cable.
 * One non-blocking UDP socket per endpoint, bound to the interface's
 * address; datagrams as large as the interface MTU allows.  The socket
 * loses, duplicates and reorders, so the link runs rel (src/rel) per peer:
 * one session per remote endpoint, found by its id in O(1).  FI_USB4_FAULTS
 * adds faults for tests.
 */
#ifndef USB4_UDP_H
#define USB4_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "usb4.h"
#include "usb4_link.h"
#include "usb4_rel.h"

/* ---- interfaces (usb4_link_iface.c) ---- */

#define USB4_IFACE_NAME_MAX	16

/* An interface the udp link can use. */
struct usb4_iface {
	char name[USB4_IFACE_NAME_MAX];
	int family;			/* AF_INET or AF_INET6 */
	uint8_t ip[16];			/* network byte order */
	uint8_t mask[16];		/* its subnet's netmask, likewise */
	unsigned mtu;
	bool thunderbolt;		/* driven by thunderbolt-net */
	unsigned speed_gbps, lanes;	/* of the USB4 link, 0 if unknown */
};

/*
 * Interfaces the udp link should use: those named in names (a comma list, as
 * in FI_USB4_IFACE), else every thunderbolt-net interface that is up.
 * sysfs_root is "/sys" except in tests.  Returns how many were found.
 */
int usb4_iface_find(const char *names, const char *sysfs_root,
		    struct usb4_iface *out, int max);
/* The interface that is up and holds ip (family AF_INET or AF_INET6, ip
 * in network byte order), whatever names it: 1 when found, else 0. */
int usb4_iface_of_ip(int family, const uint8_t ip[16], const char *sysfs_root,
		     struct usb4_iface *out);

/* ---- the socket (usb4_udp_socket.c) ---- */

/* A peer's udp address as carried in the endpoint address. */
struct usb4_udp_addr {
	uint8_t family;			/* 4 or 6 */
	uint16_t port;			/* host order */
	uint8_t ip[16];			/* network byte order */
};

bool usb4_udp_addr_eq(const struct usb4_udp_addr *a,
		      const struct usb4_udp_addr *b);
/* a as a socket address in *ss; its length. */
socklen_t usb4_udp_sockaddr(const struct usb4_udp_addr *a,
			    struct sockaddr_storage *ss);
struct usb4_wire_addr;
/* The udp part of an endpoint address (usb4_link_udp.c). */
void usb4_udp_addr_of(const struct usb4_wire_addr *a,
		      struct usb4_udp_addr *out);

/* Fault injection rates for tests, each in [0, 1]. */
struct usb4_udp_faults {
	double drop, dup, reorder, corrupt;
};

/* Parses "drop=0.01,dup=0.01,reorder=0.01,corrupt=0.01"; 0 or -FI_EINVAL. */
int usb4_udp_faults_parse(const char *spec, struct usb4_udp_faults *faults);

struct usb4_udp_sock;

/* A datagram arrives in 1..USB4_UDP_PIECES_MAX pieces: more than one when
 * a hole (below) steered part of it. */
#define USB4_UDP_PIECES_MAX	3
typedef void (*usb4_udp_rx_fn)(void *arg, const struct usb4_udp_addr *from,
			       const struct iovec *dgram, int count);

/*
 * Receive placement: bytes [off, off + len) of a datagram are received
 * straight into dest instead of the socket's buffer, whatever the datagram
 * turns out to be (the caller guesses which datagram comes next, and must
 * be ready for dest to hold bytes of another one).
 */
struct usb4_udp_hole {
	size_t off, len;
	void *dest;
};
/* Fills holes for the first datagrams of the next receive, at most max;
 * returns how many it filled. */
typedef int (*usb4_udp_place_fn)(void *arg, struct usb4_udp_hole *holes,
				 int max);

int usb4_udp_sock_open(struct usb4_udp_sock **sock,
		       const struct usb4_iface *iface,
		       const struct usb4_udp_faults *faults);
/* The same on a chosen port (0: the kernel picks); -FI_EADDRINUSE when
 * another socket has it. */
int usb4_udp_sock_open_at(struct usb4_udp_sock **sock,
			  const struct usb4_iface *iface, uint16_t port,
			  const struct usb4_udp_faults *faults);
void usb4_udp_sock_close(struct usb4_udp_sock *sock);
void usb4_udp_sock_addr(const struct usb4_udp_sock *sock,
			struct usb4_udp_addr *addr);
/* Largest datagram payload this interface carries without fragments. */
size_t usb4_udp_sock_datagram_max(const struct usb4_udp_sock *sock);
/* The same read again from the interface now (its MTU may have been
 * lowered), at most the size at open; 0: unknown. */
size_t usb4_udp_sock_path_max(const struct usb4_udp_sock *sock);
int usb4_udp_sock_fd(const struct usb4_udp_sock *sock);
/* Sends one datagram; -FI_EAGAIN when the socket buffer is full. */
int usb4_udp_send(struct usb4_udp_sock *sock, const struct usb4_udp_addr *to,
		  const struct iovec *iov, int count);
/* The same, but the datagram may wait in the socket's batch (UDP GSO on an
 * interface of small frames, usb4_udp_gso.h) until usb4_udp_sock_flush,
 * which the caller owes before the pieces' buffers may change (rel's
 * payloads stay until acked: the link flushes before each datagram it
 * hands rel, before rel's timers, and at the end of a poll):
 * 0 then says only that it was taken; a batch the kernel refuses is a
 * loss. */
int usb4_udp_send_more(struct usb4_udp_sock *sock,
		       const struct usb4_udp_addr *to, const struct iovec *iov,
		       int count);
/* Sends what usb4_udp_send_more batched (only_ended: only a batch that a
 * shorter datagram closed, which nothing can extend). */
void usb4_udp_sock_flush(struct usb4_udp_sock *sock, bool only_ended);
struct usb4_udp_gso_stats;
const struct usb4_udp_gso_stats *
usb4_udp_sock_gso_stats(const struct usb4_udp_sock *sock);
/* Takes up to budget datagrams without blocking; returns how many.  place
 * (may be NULL) is asked for holes first.  It asks the kernel for as many
 * as usb4_udp_batch_next says. */
int usb4_udp_poll(struct usb4_udp_sock *sock, usb4_udp_place_fn place,
		  usb4_udp_rx_fn fn, void *arg, int budget);
/* How many datagrams a receive asks for after one that asked for want and
 * got got (negative: an error): one while they come one at a time (a
 * ping-pong), since every datagram a receive asks for beyond those queued
 * costs the kernel one more, empty, look at the queue; the whole batch
 * once a receive filled what it asked for (a stream). */
static inline int usb4_udp_batch_next(int want, int got, int batch)
{
	return got > 0 && got >= want ? batch : 1;
}

/*
 * From inside usb4_udp_poll's rx callback: the caller is about to write
 * [dest, dest + len), or to forget it.  Datagrams of the batch not handed up
 * yet whose hole lies there get their bytes moved back to the socket's
 * buffer first, so the write cannot spoil them.
 */
void usb4_udp_evacuate(struct usb4_udp_sock *sock, const void *dest,
		       size_t len);

/* The kernel reports that nobody is bound at addr (an ICMP port
 * unreachable answered a datagram we sent there): unauthenticated, a hint. */
typedef void (*usb4_udp_unreach_fn)(void *arg, const struct usb4_udp_addr *addr);
/* Who hears of unreachable ports (fn NULL: nobody; they are counted). */
void usb4_udp_sock_on_unreachable(struct usb4_udp_sock *sock,
				  usb4_udp_unreach_fn fn, void *arg);

/* ---- the error queue (usb4_udp_errqueue.c) ---- */

/* Asks the kernel to queue ICMP errors on fd (IP_RECVERR / IPV6_RECVERR). */
int usb4_udp_errqueue_on(int fd, int family);
/* Takes what is queued, calls fn for each port unreachable (the address
 * the failed datagram went to, converted by addr_of); returns how many
 * errors it took. */
int usb4_udp_errqueue_drain(int fd, usb4_udp_unreach_fn fn, void *arg,
			    void (*addr_of)(const struct sockaddr_storage *,
					    struct usb4_udp_addr *));

struct usb4_udp_sock_stats {
	uint64_t sent, received, send_again;
	uint64_t nobufs;		/* of send_again: ENOBUFS, the datagram
					 * dropped on its way out (the device,
					 * or a veth peer's MTU) */
	uint64_t icmp_errors;		/* error-queue entries taken */
	uint64_t evacuated;		/* hole bytes moved out of a write's way */
	uint64_t faults_dropped, faults_duplicated, faults_reordered,
		 faults_corrupted;
};
const struct usb4_udp_sock_stats *
usb4_udp_sock_stats(const struct usb4_udp_sock *sock);

/* ---- the interface's MTU (usb4_udp_mtu.c) ---- */

/* The socket's datagrams are never split into IP fragments: one larger
 * than the interface carries fails with EMSGSIZE.  0 or -errno. */
int usb4_udp_mtu_no_fragments(int fd, int family);
/* The largest UDP payload interface ifname carries now; 0: unknown. */
size_t usb4_udp_mtu_datagram_max(int fd, const char *ifname, int family);

/*
 * Large datagrams to one peer that the device keeps dropping on their way
 * out (ENOBUFS: with IP_RECVERR, a full queue or, on a veth, a peer end
 * whose MTU is smaller) while smaller ones go: after
 * USB4_UDP_MTU_BLOCKED_NS of nothing but that, a send answers -FI_EMSGSIZE
 * instead of -FI_EAGAIN, so rel sends smaller datagrams.  A queue that is
 * only full lets a large datagram through well within that time.
 */
#define USB4_UDP_MTU_BLOCKED_NS	(100ull * 1000 * 1000)

struct usb4_udp_mtu_watch {
	uint64_t blocked_since;		/* 0: a large datagram went last */
};

/* Datagrams this small are never suspected (rel's floor, IPv6's minimum
 * MTU less headers): the judge passes their answer on as it is. */
#define USB4_UDP_MTU_SMALL	1232u

/* ret: what usb4_udp_send answered for a datagram of len bytes, nobufs
 * whether that was ENOBUFS; what the sender is told. */
int usb4_udp_mtu_judge(struct usb4_udp_mtu_watch *w, size_t len, int ret,
		       bool nobufs, uint64_t now);

/* ---- receive placement (usb4_udp_place.c) ---- */

/*
 * The landing zones of one link: for each, where the next payload bytes of
 * its stream go.  The zone that took the last payload, and the zones of the
 * same peer after it, are where the next datagrams most likely belong.
 */
struct usb4_udp_zones {
	struct usb4_list list;		/* zones in the order opened */
	struct usb4_link_zone *hot;	/* took the last payload */
	uint32_t chunk;			/* that payload's size */
	bool enabled;			/* FI_USB4_UDP_PLACEMENT */
};

void usb4_udp_zones_init(struct usb4_udp_zones *z, bool enabled);
void usb4_udp_zone_open(struct usb4_udp_zones *z, struct usb4_link_zone *zone);
void usb4_udp_zone_close(struct usb4_udp_zones *z, struct usb4_udp_sock *sock,
			 struct usb4_link_zone *zone);
void usb4_udp_zone_write(struct usb4_udp_zones *z, struct usb4_udp_sock *sock,
			 struct usb4_link_zone *zone, uint64_t off,
			 const void *src, size_t len);
/* Holes for the next receive: a payload follows link_hdr bytes of the
 * link's header and its zone's hdr_len. */
int usb4_udp_zones_predict(struct usb4_udp_zones *z, size_t link_hdr,
			   struct usb4_udp_hole *holes, int max);

/* ---- half-open handshakes (usb4_udp_offers.c) ---- */

/*
 * HELLOs from peers we have no session with, answered and waiting for the
 * peer's proof (usb4_rel_offer_proven): a fixed table, so a flood of HELLOs
 * costs no memory.  An offer is found by its peer's id and address in at
 * most USB4_UDP_OFFER_PROBE slots; a new one takes a free or expired slot
 * there, else the oldest (a flood shortens every offer's life instead of
 * growing the table).
 */
#define USB4_UDP_OFFERS		256
#define USB4_UDP_OFFER_PROBE	8

struct usb4_udp_offer {
	struct usb4_rel_offer rel;
	struct usb4_udp_addr addr;
	uint64_t made;			/* ns; 0: the slot is free */
};

struct usb4_udp_offers {
	struct usb4_udp_offer slot[USB4_UDP_OFFERS];
	uint64_t ttl_ns;		/* an offer's life */
	uint64_t made, evicted, expired, promoted;
};

void usb4_udp_offers_init(struct usb4_udp_offers *o, uint64_t ttl_ns);
/* The live offer to id at addr, or NULL. */
struct usb4_udp_offer *usb4_udp_offer_find(struct usb4_udp_offers *o,
					   uint64_t id,
					   const struct usb4_udp_addr *addr,
					   uint64_t now);
/* A slot for an offer to id at addr: its live offer, else a new one
 * (made set, rel zeroed but for remote_id; the caller fills it). */
struct usb4_udp_offer *usb4_udp_offer_make(struct usb4_udp_offers *o,
					   uint64_t id,
					   const struct usb4_udp_addr *addr,
					   uint64_t now, bool *fresh);
/* The offer became a session (promoted) or is no longer wanted. */
void usb4_udp_offer_done(struct usb4_udp_offers *o, struct usb4_udp_offer *offer,
			 bool promoted);

/* ---- who is bound here (usb4_udp_resolve.c) ---- */

/* Whether dgram's first bytes name a RESOLVE query: a test of two bytes,
 * so that other datagrams cost the responder nothing more. */
bool usb4_udp_resolve_is_query(const struct iovec *dgram);

/* Whether dgram is a RESOLVE query (wire.h); if so, answers it from sock
 * with self, tagged under job when there is one (NULL: none), and keeps
 * nothing.  Returns whether dgram was a query. */
bool usb4_udp_resolve_answer(struct usb4_udp_sock *sock,
			     const struct usb4_auth_job *job,
			     const struct usb4_wire_addr *self,
			     const struct usb4_udp_addr *from,
			     const struct iovec *dgram, int count);
/* The asking side, as the link ops resolve_* (usb4_link.h). */
int usb4_udp_resolve_start(const struct usb4_wire_addr *addr,
			   const void *auth_key, size_t auth_key_len,
			   struct usb4_link_resolver **r);
int usb4_udp_resolve_poll(struct usb4_link_resolver *r,
			  struct usb4_wire_addr *out);
int usb4_udp_resolve_fd(const struct usb4_link_resolver *r);
void usb4_udp_resolve_close(struct usb4_link_resolver *r);

extern const struct usb4_link_ops usb4_udp_link_ops;

#endif /* USB4_UDP_H */
