/*
 * The shm link: the link interface over an endpoint's inbox ring
 * (usb4_shm_ring.c) and cross memory attach (usb4_link_cma.c).  Reaches the
 * endpoints of the same host.  Capabilities: bulk reads (a receiver copies a
 * rendezvous message straight out of the sender) and one-sided access (the
 * initiator reads the target's registration table, which this link
 * publishes by its memfd in the address).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usb4_shm.h"
#include "../wire.h"

/* Senders not in the address vector whose way back we opened. */
#define USB4_SHM_HIDDEN_MAX	4096

/* The way to a peer's inbox (and its registration table). */
struct usb4_link_dest {
	struct usb4_shm_ring *ring;
	size_t map_len;
	uint64_t id;
	pid_t pid;
	int bell;		/* the owner's bell, or -1 */
	/* A lane into it is a sender's: the first link (endpoint) to post
	 * through this dest, which the endpoints of an AV share, has it;
	 * the others post into the shared slots. */
	const struct usb4_link *lane_link;
	struct usb4_shm_producer producer;
	void *table;		/* its registration table, mapped, or NULL */
	size_t table_len;
};

struct usb4_shm_link {
	struct usb4_link base;
	struct usb4_shm_ring *ring;
	size_t map_len;
	int fd;
	/* The bell: producers write a byte to bell[1] (opened through /proc,
	 * which works for a pipe, not for an eventfd) while we sleep on
	 * bell[0]. */
	int bell[2];
	int reg_fd;		/* the domain's registration table */
	struct usb4_shm_sender self;
	/* The sender of the last frame handed up: dest_of opens the way back
	 * to it.  Its trailer is read when the sender changes, not for every
	 * frame of a stream. */
	struct usb4_shm_sender current;
	struct usb4_link_dest **hidden;
	size_t hidden_count;
	/* The latest post found a peer's inbox full.  Its owner rings no bell
	 * when it makes room, so we must not sleep on it (sleep_begin). */
	bool waits_for_room;
};

static struct usb4_shm_link *shm_of(struct usb4_link *link)
{
	return usb4_container_of(link, struct usb4_shm_link, base);
}

static const struct usb4_shm_link *shm_of_const(const struct usb4_link *link)
{
	return usb4_container_of(link, struct usb4_shm_link, base);
}

/* ---- a kind of link ---- */

static bool shm_available(void)
{
	return true;
}

static bool shm_reaches(const struct usb4_wire_addr *a, uint64_t host_id)
{
	return le64toh(a->host_id) == host_id &&
	       (int32_t) le32toh(a->shm_inbox_fd) >= 0;
}

/* Maps /proc/<pid>/fd/<fd>: 0, or -FI_EHOSTUNREACH when it is gone. */
static int map_peer_fd(uint32_t pid, int fd, void **mem, size_t *len)
{
	char path[64];
	struct stat st;
	int pfd, ret = 0;

	snprintf(path, sizeof(path), "/proc/%u/fd/%d", pid, fd);
	pfd = open(path, O_RDWR | O_CLOEXEC);
	if (pfd < 0)
		return errno == ENOENT ? -FI_EHOSTUNREACH : -errno;
	if (fstat(pfd, &st) || st.st_size <= 0) {
		ret = -FI_EINVAL;
		goto out_close;
	}
	*len = st.st_size;
	*mem = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
	if (*mem == MAP_FAILED)
		ret = -errno;
out_close:
	close(pfd);
	return ret;
}

/* The owner's bell, to wake it when it sleeps; -1 if none. */
static int open_peer_bell(pid_t pid, int32_t bell)
{
	char path[64];

	if (bell < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, bell);
	return open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
}

static void shm_dest_close(struct usb4_link_dest *dest)
{
	if (!dest)
		return;
	if (dest->bell >= 0)
		close(dest->bell);
	if (dest->table)
		munmap(dest->table, dest->table_len);
	munmap(dest->ring, dest->map_len);
	free(dest);
}

static int dest_map_ring(struct usb4_link_dest *dest, uint32_t pid,
			 int inbox_fd)
{
	void *mem;
	int ret = map_peer_fd(pid, inbox_fd, &mem, &dest->map_len);

	if (ret) {
		USB4_WARN(FI_LOG_AV, "inbox %d of process %u: %s\n", inbox_fd,
			  pid, fi_strerror(-ret));
		return ret;
	}
	dest->ring = mem;
	ret = usb4_shm_ring_check(dest->ring, dest->map_len, dest->id, pid);
	if (ret) {
		munmap(mem, dest->map_len);
		dest->ring = NULL;
	}
	return ret;
}

/* The way to endpoint id's inbox (in process pid, its fd inbox_fd) and,
 * when reg_fd >= 0, to its registration table. */
static int dest_new(uint64_t id, uint32_t pid, int inbox_fd, int reg_fd,
		    struct usb4_link_dest **destp)
{
	struct usb4_link_dest *dest = calloc(1, sizeof(*dest));
	int ret;

	if (!dest)
		return -FI_ENOMEM;
	dest->id = id;
	dest->pid = pid;
	dest->bell = -1;
	ret = dest_map_ring(dest, pid, inbox_fd);
	if (ret) {
		free(dest);
		return ret;
	}
	dest->bell = open_peer_bell(pid, usb4_shm_ring_bell(dest->ring));
	/* Without its table a peer is reachable for messages only. */
	if (reg_fd >= 0 &&
	    map_peer_fd(pid, reg_fd, &dest->table, &dest->table_len))
		dest->table = NULL;
	*destp = dest;
	return 0;
}

static int shm_dest_open(const struct usb4_wire_addr *a,
			 struct usb4_link_dest **destp)
{
	return dest_new(le64toh(a->ep_id), le32toh(a->shm_pid),
			(int32_t) le32toh(a->shm_inbox_fd),
			(int32_t) le32toh(a->shm_reg_fd), destp);
}

/* ---- the link ---- */

static int shm_link_open(const struct usb4_link_cfg *cfg, struct usb4_link **linkp)
{
	size_t frame_max = sizeof(struct usb4_wire_hdr) + usb4_params.eager_size;
	struct usb4_shm_link *l = calloc(1, sizeof(*l));
	char name[64];
	void *mem;
	int ret;

	if (!l)
		return -FI_ENOMEM;
	l->base.ops = &usb4_shm_link_ops;
	l->base.sink = cfg->sink;
	/* Only processes of our user on this host can open our inbox. */
	l->base.authenticated = true;
	l->reg_fd = cfg->reg_fd;
	l->map_len = usb4_shm_ring_bytes(usb4_params.ring_slots, frame_max,
					 USB4_SHM_LANES_PER_INBOX,
					 USB4_SHM_LANE_SLOTS);
	/* The name only shows in /proc/<pid>/maps. */
	snprintf(name, sizeof(name), "usb4-inbox-%016llx",
		 (unsigned long long) cfg->ep_id);
	ret = usb4_shared_create(name, l->map_len, &mem, &l->fd);
	if (ret) {
		free(l);
		return ret;
	}
	l->ring = mem;
	/* Lets a sleeper watch the ring and other links in one poll. */
	if (pipe2(l->bell, O_NONBLOCK | O_CLOEXEC))
		l->bell[0] = l->bell[1] = -1;
	usb4_shm_ring_init(l->ring, usb4_params.ring_slots, frame_max,
			   cfg->ep_id, l->bell[1],
			   usb4_shm_fence_can_expedite(),
			   USB4_SHM_LANES_PER_INBOX, USB4_SHM_LANE_SLOTS);
	l->self = (struct usb4_shm_sender) {
		.id = cfg->ep_id, .pid = usb4_pid(), .inbox_fd = l->fd,
	};
	*linkp = &l->base;
	return 0;
}

static void shm_link_close(struct usb4_link *link)
{
	struct usb4_shm_link *l = shm_of(link);

	/* Peers that still map the ring keep its memory until they unmap;
	 * they see it retired and stop posting. */
	usb4_shm_ring_retire(l->ring);
	usb4_shared_destroy(l->ring, l->map_len, l->fd);
	for (int i = 0; i < 2; i++)
		if (l->bell[i] >= 0)
			close(l->bell[i]);
	for (size_t i = 0; i < l->hidden_count; i++)
		shm_dest_close(l->hidden[i]);
	free(l->hidden);
	free(l);
}

static void shm_addr(const struct usb4_link *link, struct usb4_wire_addr *a)
{
	const struct usb4_shm_link *l = shm_of_const(link);

	a->shm_pid = htole32(l->self.pid);
	a->shm_inbox_fd = htole32((uint32_t) l->fd);
	a->shm_reg_fd = htole32((uint32_t) l->reg_fd);
}

static size_t shm_frame_max(const struct usb4_link *link,
			    const struct usb4_link_dest *dest)
{
	return usb4_shm_ring_frame_max(dest ? dest->ring :
				       shm_of_const(link)->ring);
}

/* A full inbox nobody drains any more is a dead peer, not backpressure. */
static int shm_post(struct usb4_link *link, struct usb4_link_dest *dest,
		    const struct iovec *iov, int count)
{
	int ret;

	if (!usb4_shm_ring_live(dest->ring))
		return -FI_EHOSTUNREACH;
	if (!dest->lane_link)
		dest->lane_link = link;
	ret = usb4_shm_ring_post(dest->ring, dest->lane_link == link ?
				 &dest->producer : NULL, dest->bell,
				 &shm_of(link)->self, iov, count);
	shm_of(link)->waits_for_room = ret == -FI_EAGAIN;
	if (ret == -FI_EAGAIN && usb4_pid_gone(dest->pid))
		ret = -FI_EHOSTUNREACH;
	return ret;
}

static int shm_poll(struct usb4_link *link, int budget)
{
	struct usb4_shm_link *l = shm_of(link);
	int taken;

	for (taken = 0; taken < budget; taken++) {
		struct usb4_wire_hdr hdr;
		struct iovec frame[2];
		uint64_t id;
		int n = usb4_shm_ring_peek(l->ring, frame, &hdr, &id);

		if (!n)
			break;
		if (id != l->current.id)
			usb4_shm_ring_head_sender(l->ring, &l->current);
		if (link->sink.frame(link->sink.ctx, link, id, frame, n) ==
		    -FI_EAGAIN)
			break;	/* offered again on the next poll */
		usb4_shm_ring_pop(l->ring);
	}
	return taken;
}

/* A same-host peer is alive while its process and its inbox are. */
static int shm_peer_state(struct usb4_link *link, struct usb4_link_dest *dest)
{
	if (!usb4_shm_ring_live(dest->ring) || usb4_pid_gone(dest->pid))
		return -FI_EHOSTUNREACH;
	return 0;
}

/* The sender of the last frame handed up, when it is not in the address
 * vector: its slot's trailer says where its inbox is; the inbox proves
 * its id. */
static struct usb4_link_dest *shm_dest_of(struct usb4_link *link, uint64_t id)
{
	struct usb4_shm_link *l = shm_of(link);
	struct usb4_link_dest *dest, **grown;
	const struct usb4_shm_sender *from = &l->current;

	for (size_t i = 0; i < l->hidden_count; i++)
		if (l->hidden[i]->id == id)
			return l->hidden[i];
	if (!id || id != from->id || l->hidden_count >= USB4_SHM_HIDDEN_MAX)
		return NULL;
	grown = realloc(l->hidden, (l->hidden_count + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	l->hidden = grown;
	/* No table: a peer not in the AV is only answered. */
	if (dest_new(id, from->pid, from->inbox_fd, -1, &dest))
		return NULL;
	l->hidden[l->hidden_count++] = dest;
	return dest;
}

static int shm_wait_fd(const struct usb4_link *link)
{
	return shm_of_const(link)->bell[0];
}

static int64_t shm_timer_us(const struct usb4_link *link)
{
	return -1;
}

/* Not while a send waits for room in a peer's inbox: nothing would wake
 * us when it frees (a sleeper would wait for its timeout). */
static bool shm_sleep_begin(struct usb4_link *link)
{
	struct usb4_shm_link *l = shm_of(link);

	if (l->waits_for_room)
		return false;
	return usb4_shm_ring_sleep_begin(l->ring, l->bell[0]);
}

static void shm_sleep_end(struct usb4_link *link)
{
	usb4_shm_ring_sleep_end(shm_of(link)->ring);
}

static int shm_bulk_read(struct usb4_link_dest *dest, const struct iovec *local,
			 size_t local_count, const struct iovec *remote,
			 size_t remote_count, size_t len)
{
	return usb4_cma_read(dest->pid, local, local_count, remote,
			     remote_count, len);
}

static int shm_bulk_write(struct usb4_link_dest *dest,
			  const struct iovec *local, size_t local_count,
			  const struct iovec *remote, size_t remote_count,
			  size_t len)
{
	return usb4_cma_write(dest->pid, local, local_count, remote,
			      remote_count, len);
}

static void *shm_peer_table(struct usb4_link_dest *dest, size_t *len)
{
	*len = dest->table_len;
	return dest->table;
}

static void shm_count_remote(struct usb4_link_dest *dest, bool write)
{
	usb4_shm_ring_count_rma(dest->ring, write);
}

static void shm_remote_counts(const struct usb4_link *link, uint64_t *writes,
			      uint64_t *reads)
{
	usb4_shm_ring_rma_counts(shm_of_const(link)->ring, writes, reads);
}

const struct usb4_link_ops usb4_shm_link_ops = {
	.name = "shm",
	.caps = USB4_LINK_CAP_BULK_READ | USB4_LINK_CAP_ONE_SIDED |
		USB4_LINK_CAP_FRAME_FIXED,
	.other_hosts = false,
	.available = shm_available,
	.reaches = shm_reaches,
	.dest_open = shm_dest_open,
	.dest_close = shm_dest_close,
	.open = shm_link_open,
	.close = shm_link_close,
	.addr = shm_addr,
	.frame_max = shm_frame_max,
	.post = shm_post,
	.poll = shm_poll,
	.peer_state = shm_peer_state,
	.dest_of = shm_dest_of,
	.wait_fd = shm_wait_fd,
	.timer_us = shm_timer_us,
	.sleep_begin = shm_sleep_begin,
	.sleep_end = shm_sleep_end,
	.bulk_read = shm_bulk_read,
	.bulk_write = shm_bulk_write,
	.peer_table = shm_peer_table,
	.count_remote = shm_count_remote,
	.remote_counts = shm_remote_counts,
};
