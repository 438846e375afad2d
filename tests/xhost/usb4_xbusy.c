/*
 * usb4_xbusy: two allreduces with a long compute phase between them, as a
 * training job runs, at the libfabric level across two hosts.
 *
 *   usb4_xbusy busy|driver --dir DIR [--busy-s S] [--bytes N] [--timeout S]
 *
 * Both open an RDM endpoint of the usb4 provider (FI_TAGGED), meet through
 * files in DIR (busy.addr, driver.addr) and run round 1 of an allreduce
 * of N bytes (default 1 MiB) of uint64: each posts the receive of the
 * other's vector (a 64-byte eager message and the N-byte vector, a
 * rendezvous across hosts), sends its own, and checks the sum.  Then the
 * busy side computes for S seconds (default 60) without one libfabric
 * call, while the driver goes straight into round 2 and polls its CQ
 * (fi_cq_read) for the busy side's vector; its own sends to the busy side
 * are in flight all that time.  Round 2 ends both.  The peer timeout
 * (FI_USB4_PEER_TIMEOUT, 5 s) is far shorter than S: only the busy side's
 * progress thread answers for it meanwhile.
 *
 * Output: "<role>: OK rounds 2 bytes N round2 S.SS s busy S.SS s" on
 * success; "<role>: FAIL round R: ..." (exit 1) when an operation fails
 * (FI_EHOSTUNREACH: the busy side was taken for dead) or data differs.
 * Exit 2: setup; 124: the watchdog (--timeout, default 180 s).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>

#include <rdma/fi_cm.h>
#include <rdma/fi_tagged.h>

#include "xhost_common.h"

#define SMALL		64
#define ADDR_MAX	256

struct xb {
	bool busy;
	const char *dir;
	double busy_s;
	size_t count;			/* uint64 per vector */
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *ep;
	fi_addr_t peer;
};

static uint64_t value(bool busy, int round, size_t i)
{
	return (busy ? 0x9e3779b97f4a7c15ull : 0xc2b2ae3d27d4eb4full) *
	       (i + 1) + (uint64_t) round * 1000003u;
}

static void put_addr(const struct xb *x)
{
	char addr[ADDR_MAX], path[4096], tmp[4200];
	size_t len = sizeof(addr);
	FILE *f;

	CHECK(fi_getname(&x->ep->fid, addr, &len));
	snprintf(path, sizeof(path), "%s/%s.addr", x->dir,
		 x->busy ? "busy" : "driver");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(f = fopen(tmp, "w")) || fwrite(addr, 1, len, f) != len ||
	    fclose(f) || rename(tmp, path))
		die(2, "cannot write %s: %s", path, strerror(errno));
}

static void get_peer(struct xb *x)
{
	char addr[ADDR_MAX], path[4096];
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.addr", x->dir,
		 x->busy ? "driver" : "busy");
	while (!(f = fopen(path, "r")))
		usleep(10000);
	len = fread(addr, 1, sizeof(addr), f);
	fclose(f);
	if (fi_av_insert(x->av, addr, 1, &x->peer, 0, NULL) != 1)
		die(2, "fi_av_insert of the peer's address (%zu bytes) failed",
		    len);
}

static void open_all(struct xb *x)
{
	xhost_domain_open(FI_TAGGED, FI_THREAD_UNSPEC, &x->info, &x->fabric,
			  &x->domain);
	xhost_av_open(x->domain, &x->av);
	xhost_ep_open(x->domain, x->info, x->av, &x->cq, &x->ep);
	CHECK(fi_enable(x->ep));
	put_addr(x);
	get_peer(x);
}

static void close_all(struct xb *x)
{
	fi_close(&x->ep->fid);
	fi_close(&x->cq->fid);
	fi_close(&x->av->fid);
	fi_close(&x->domain->fid);
	fi_close(&x->fabric->fid);
	fi_freeinfo(x->info);
}

/* Waits for n completions; an error completion fails the round. */
static void wait_done(struct xb *x, int round, int n)
{
	struct fi_cq_tagged_entry e;
	struct fi_cq_err_entry err;
	ssize_t ret;

	while (n > 0) {
		ret = fi_cq_read(x->cq, &e, 1);
		if (ret == 1) {
			n--;
			continue;
		}
		if (ret == -FI_EAGAIN) {
			usleep(200);	/* polls, as MPI does, but leaves the
					 * CPU to the other host */
			continue;
		}
		memset(&err, 0, sizeof(err));
		if (ret == -FI_EAVAIL && fi_cq_readerr(x->cq, &err, 0) == 1)
			die(1, "FAIL round %d: %s completion failed: %s", round,
			    err.flags & FI_RECV ? "receive" : "send",
			    fi_strerror(err.err));
		die(1, "FAIL round %d: fi_cq_read = %zd (%s)", round, ret,
		    fi_strerror((int) -ret));
	}
}

/* One allreduce of count uint64 (SUM), checked. */
static void allreduce(struct xb *x, int round, uint64_t *mine, uint64_t *theirs)
{
	char small_out[SMALL], small_in[SMALL];
	size_t bytes = x->count * sizeof(uint64_t);
	uint64_t tag = (uint64_t) round << 1;
	ssize_t r;

	for (size_t i = 0; i < x->count; i++)
		mine[i] = value(x->busy, round, i);
	memset(small_out, round, sizeof(small_out));
	memset(theirs, 0, bytes);
	CHECK(fi_trecv(x->ep, small_in, SMALL, NULL, x->peer, tag, 0, NULL));
	CHECK(fi_trecv(x->ep, theirs, bytes, NULL, x->peer, tag | 1, 0, NULL));
	while ((r = fi_tsend(x->ep, small_out, SMALL, NULL, x->peer, tag,
			     NULL)) == -FI_EAGAIN)
		fi_cq_read(x->cq, NULL, 0);
	if (r)
		die(1, "FAIL round %d: fi_tsend = %zd (%s)", round, r,
		    fi_strerror((int) -r));
	while ((r = fi_tsend(x->ep, mine, bytes, NULL, x->peer, tag | 1,
			     NULL)) == -FI_EAGAIN)
		fi_cq_read(x->cq, NULL, 0);
	if (r)
		die(1, "FAIL round %d: fi_tsend = %zd (%s)", round, r,
		    fi_strerror((int) -r));
	wait_done(x, round, 4);
	if (small_in[0] != (char) round || small_in[SMALL - 1] != (char) round)
		die(1, "FAIL round %d: the small message differs", round);
	for (size_t i = 0; i < x->count; i++)
		if (mine[i] + theirs[i] != value(true, round, i) +
					   value(false, round, i))
			die(1, "FAIL round %d: element %zu differs", round, i);
}

/* Work the CPU for secs without calling libfabric. */
static double compute(double secs)
{
	volatile uint64_t acc = 1;
	double t0 = now_s();

	while (now_s() - t0 < secs)
		for (int i = 0; i < 1000000; i++)
			acc = acc * 6364136223846793005ull + 1442695040888963407ull;
	return now_s() - t0;
}

static void parse(struct xb *x, int argc, char **argv, unsigned *timeout)
{
	size_t bytes = 1 << 20;

	if (argc < 2 || (strcmp(argv[1], "busy") && strcmp(argv[1], "driver")))
		die(2, "usage: usb4_xbusy busy|driver --dir DIR [--busy-s S] "
		    "[--bytes N] [--timeout S]");
	x->busy = !strcmp(argv[1], "busy");
	x->busy_s = 60;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			x->dir = argv[i + 1];
		else if (!strcmp(argv[i], "--busy-s"))
			x->busy_s = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--bytes"))
			bytes = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--timeout"))
			*timeout = (unsigned) atoi(argv[i + 1]);
		else
			die(2, "unknown option %s", argv[i]);
	}
	if (!x->dir || bytes < sizeof(uint64_t))
		die(2, "--dir is needed, --bytes at least 8");
	x->count = bytes / sizeof(uint64_t);
}

int main(int argc, char **argv)
{
	struct xb x = { 0 };
	unsigned timeout = 180;
	uint64_t *mine, *theirs;
	double t, busy = 0;

	xhost_prog = "usb4_xbusy";
	parse(&x, argc, argv, &timeout);
	xhost_role = x.busy ? "busy" : "driver";
	xhost_watchdog(timeout);
	mine = malloc(x.count * sizeof(uint64_t));
	theirs = malloc(x.count * sizeof(uint64_t));
	if (!mine || !theirs)
		die(2, "no memory for %zu elements", x.count);
	open_all(&x);
	allreduce(&x, 1, mine, theirs);
	if (x.busy)
		busy = compute(x.busy_s);
	t = now_s();
	allreduce(&x, 2, mine, theirs);
	printf("%s: OK rounds 2 bytes %zu round2 %.2f s busy %.2f s\n",
	       xhost_role, x.count * sizeof(uint64_t), now_s() - t, busy);
	fflush(stdout);
	close_all(&x);
	free(mine);
	free(theirs);
	return 0;
}
