/*
 * The cable: links move opaque frames between endpoints.  A link never looks
 * inside a frame.  Today there is one kind, shm, for peers on the same host.
 *
 * shm: every endpoint owns an inbox, a ring of fixed-size frame slots in a
 * memfd.  Same-host peers map the owner's memfd through /proc/<pid>/fd/<fd>
 * and post frames into it (many producers, one consumer).  Bulk data moves by
 * one cross-memory-attach copy (process_vm_readv) straight between the two
 * processes' buffers.  A memfd has no name in any file system, so two jobs
 * never collide and a crashed process leaves nothing behind.
 */
#ifndef USB4_LINK_H
#define USB4_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* What a same-host peer needs to map our inbox and our registrations; part of
 * the endpoint address. */
struct usb4_shm_addr {
	uint32_t pid;		/* owner process */
	int32_t fd;		/* owner's inbox memfd, opened via /proc */
	uint64_t nonce;		/* must match the ring header: guards pid/fd reuse */
	int32_t reg_fd;		/* owner's registration table memfd, -1: none */
	uint32_t reserved;
};

struct usb4_shm_link;	/* our inbox */
struct usb4_shm_peer;	/* a mapped inbox of another endpoint */

/* Called for each frame taken off the inbox; frame is valid during the call. */
typedef void (*usb4_link_rx_fn)(void *arg, const void *frame, size_t len);

int usb4_shm_link_open(struct usb4_shm_link **link, size_t slots,
		       size_t frame_max, uint64_t nonce);
void usb4_shm_link_close(struct usb4_shm_link *link);
void usb4_shm_link_addr(const struct usb4_shm_link *link,
			struct usb4_shm_addr *addr);
size_t usb4_shm_link_frame_max(const struct usb4_shm_link *link);

/* Takes up to budget frames; returns how many were taken. */
int usb4_shm_link_poll(struct usb4_shm_link *link, usb4_link_rx_fn fn,
		       void *arg, int budget);
/* Blocks until a frame may be waiting or timeout_ms passes (-1: forever). */
void usb4_shm_link_wait(struct usb4_shm_link *link, int timeout_ms);
/* Wakes a waiter in usb4_shm_link_wait (from any thread or process). */
void usb4_shm_link_kick(struct usb4_shm_link *link);
/*
 * Sleeping in poll together with other file descriptors: begin returns false
 * when a frame is already waiting; otherwise the ring's eventfd becomes
 * readable when a producer posts, until end.
 */
int usb4_shm_link_efd(const struct usb4_shm_link *link);
bool usb4_shm_link_sleep_begin(struct usb4_shm_link *link);
void usb4_shm_link_sleep_end(struct usb4_shm_link *link);

int usb4_shm_peer_open(const struct usb4_shm_addr *addr,
		       struct usb4_shm_peer **peer);
void usb4_shm_peer_close(struct usb4_shm_peer *peer);
pid_t usb4_shm_peer_pid(const struct usb4_shm_peer *peer);
/* Posts one frame gathered from iov; -FI_EAGAIN when the inbox is full. */
int usb4_shm_send(struct usb4_shm_peer *peer, const struct iovec *iov,
		  int iov_count);

/*
 * Copies len bytes from the remote iov list in process pid into the local iov
 * list, one cross-memory-attach copy.  Returns 0 or a negative FI_E* code.
 */
int usb4_shm_bulk_read(pid_t pid, const struct iovec *local, size_t local_count,
		       const struct iovec *remote, size_t remote_count,
		       size_t len);

/*
 * One-sided access on the shm link.  A domain publishes its memory
 * registrations in a table in a memfd (the registry); an initiator maps the
 * target's table, checks key, rights and bounds there, pins the entry and moves
 * the data with one cross-memory-attach copy.  The target's CPU takes no part.
 * Revoking an entry waits until no initiator holds it pinned, so memory freed
 * after fi_close of its region is never touched.
 */
struct usb4_shm_reg;		/* our table */
struct usb4_shm_reg_peer;	/* another domain's table, mapped */

/* Initiator's view of a pinned target region. */
struct usb4_shm_pin {
	struct usb4_shm_reg_peer *peer;
	uint32_t slot;
	uint64_t va;		/* target virtual address of the accessed bytes */
};

int usb4_shm_reg_open(struct usb4_shm_reg **reg, size_t capacity);
void usb4_shm_reg_close(struct usb4_shm_reg *reg);
int usb4_shm_reg_fd(const struct usb4_shm_reg *reg);
/* Publishes [base, base + len), addressed by initiators as iova + offset.
 * -FI_ENOKEY when the key is already published, -FI_ENOSPC when full. */
int usb4_shm_reg_publish(struct usb4_shm_reg *reg, uint64_t key, uint64_t base,
			 uint64_t iova, uint64_t len, uint64_t access,
			 uint32_t *slot);
void usb4_shm_reg_revoke(struct usb4_shm_reg *reg, uint32_t slot);
/* Our own table seen as a peer's: for checks of remote requests that arrive
 * as frames (udp), and for taking our own atomics lock. */
struct usb4_shm_reg_peer *usb4_shm_reg_self(struct usb4_shm_reg *reg);

int usb4_shm_reg_peer_open(pid_t pid, int fd, struct usb4_shm_reg_peer **peer);
void usb4_shm_reg_peer_close(struct usb4_shm_reg_peer *peer);
/* Checks key, the FI_REMOTE_* rights in access and [addr, addr + len) against
 * the target's table and pins the entry: 0 or -FI_EACCES. */
int usb4_shm_pin(struct usb4_shm_reg_peer *peer, uint64_t key, uint64_t addr,
		 uint64_t len, uint64_t access, struct usb4_shm_pin *pin);
void usb4_shm_unpin(struct usb4_shm_pin *pin);
void usb4_shm_unpin_all(struct usb4_shm_pin *pins, size_t count);
/* Serialises atomics on one target's memory across every process. */
void usb4_shm_atomic_lock(struct usb4_shm_reg_peer *peer);
void usb4_shm_atomic_unlock(struct usb4_shm_reg_peer *peer);

/* Copies len bytes from local into the remote iov list in process pid. */
int usb4_shm_bulk_write(pid_t pid, const struct iovec *local,
			size_t local_count, const struct iovec *remote,
			size_t remote_count, size_t len);

/* Remote access counts kept in an inbox for FI_RMA_EVENT counters. */
void usb4_shm_peer_count_rma(struct usb4_shm_peer *peer, bool write);
void usb4_shm_link_rma_counts(const struct usb4_shm_link *link,
			      uint64_t *writes, uint64_t *reads);
/* Counts an access that arrived as frames instead of cross memory attach. */
void usb4_shm_link_count_rma(struct usb4_shm_link *link, bool write);

/*
 * udp: peers on other hosts, reached over an IP interface: on USB4 hosts the
 * thunderbolt-net interface of each cable.  One non-blocking UDP socket per
 * endpoint and interface, bound to the interface's address; datagrams as
 * large as the interface MTU allows.  The link loses, duplicates and reorders:
 * the core runs it under rel.  FI_USB4_FAULTS adds faults for tests.
 */
#define USB4_IFACE_NAME_MAX	16

/* An interface the udp link can use. */
struct usb4_iface {
	char name[USB4_IFACE_NAME_MAX];
	int family;			/* AF_INET or AF_INET6 */
	uint8_t ip[16];			/* network byte order */
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

/* A peer's udp address as carried in the endpoint address. */
struct usb4_udp_addr {
	uint8_t family;			/* 4 or 6 */
	uint16_t port;			/* host order */
	uint8_t ip[16];			/* network byte order */
};

/* Fault injection rates for tests, each in [0, 1]. */
struct usb4_udp_faults {
	double drop, dup, reorder, corrupt;
};

/* Parses "drop=0.01,dup=0.01,reorder=0.01,corrupt=0.01"; 0 or -FI_EINVAL. */
int usb4_udp_faults_parse(const char *spec, struct usb4_udp_faults *faults);

struct usb4_udp_link;

/* A datagram arrives in 1..USB4_UDP_PIECES_MAX pieces: more than one when
 * a hole (below) steered part of it. */
#define USB4_UDP_PIECES_MAX	3
typedef void (*usb4_udp_rx_fn)(void *arg, const struct usb4_udp_addr *from,
			       const struct iovec *dgram, int count);

/*
 * Receive placement: bytes [off, off + len) of a datagram are received
 * straight into dest instead of the link's buffer, whatever the datagram
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

int usb4_udp_link_open(struct usb4_udp_link **link,
		       const struct usb4_iface *iface,
		       const struct usb4_udp_faults *faults);
void usb4_udp_link_close(struct usb4_udp_link *link);
void usb4_udp_link_addr(const struct usb4_udp_link *link,
			struct usb4_udp_addr *addr);
/* Largest datagram payload this interface carries without fragments. */
size_t usb4_udp_link_datagram_max(const struct usb4_udp_link *link);
int usb4_udp_link_fd(const struct usb4_udp_link *link);
/* Sends one datagram; -FI_EAGAIN when the socket buffer is full. */
int usb4_udp_send(struct usb4_udp_link *link, const struct usb4_udp_addr *to,
		  const struct iovec *iov, int count);
/* Takes up to budget datagrams without blocking; returns how many.  place
 * (may be NULL) is asked for holes first. */
int usb4_udp_poll(struct usb4_udp_link *link, usb4_udp_place_fn place,
		  usb4_udp_rx_fn fn, void *arg, int budget);
/*
 * From inside usb4_udp_poll's rx callback: the caller is about to write
 * [dest, dest + len).  Datagrams of the batch not handed up yet whose hole
 * lies there get their bytes moved back to the link's buffer first, so the
 * write cannot spoil them.
 */
void usb4_udp_evacuate(struct usb4_udp_link *link, const void *dest,
		       size_t len);

struct usb4_udp_link_stats {
	uint64_t sent, received, send_again;
	uint64_t evacuated;		/* hole bytes moved out of a write's way */
	uint64_t faults_dropped, faults_duplicated, faults_reordered,
		 faults_corrupted;
};
const struct usb4_udp_link_stats *
usb4_udp_link_stats(const struct usb4_udp_link *link);

#endif /* USB4_LINK_H */
