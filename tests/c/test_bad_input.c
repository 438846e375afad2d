/*
 * Bad input on the API side (issue 10): what an application gets wrong must
 * come back as an error code or an error completion, never as a crash, a
 * silent success or a hang.
 *
 *   - fi_mr_reg of nothing, of a NULL or unmapped buffer, of a range that
 *     wraps the address space: refused, nothing registered;
 *   - RMA reads, writes and atomics outside a registered region (overflow of
 *     addr + len included), in both addressing modes: error completion, and
 *     every byte around the region as it was;
 *   - posts from a NULL buffer with bytes: -FI_EINVAL at post time;
 *   - fi_close of an endpoint twice, posts on a closed endpoint: an error;
 *   - rendezvous and delivery-complete sends to a same-host receiver that
 *     never inserted the sender: both sides complete.
 *
 * The provider is loaded through FI_PROVIDER_PATH (make check sets it).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <rdma/fi_tagged.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define PAGE		4096
#define RNDV_LEN	(1u << 20)	/* above any eager limit */
#define EAGER_LEN	256
#define RMA_CAPS	(FI_MSG | FI_TAGGED | FI_RMA | FI_ATOMIC | FI_SOURCE)

/* ---- same host, sender never inserted by the receiver ---------------- */

/* What the receiver reports back: per message, its length, its source
 * and whether its bytes were right. */
struct rx_report {
	int64_t status[2];
	uint64_t len[2];
	uint64_t src[2];
	uint64_t intact[2];
};

/* One wildcard receive, completed within the fixture's timeout. */
static int64_t receive_one(struct fx *f, void *buf, size_t len,
			   uint64_t *got, fi_addr_t *src)
{
	struct fi_cq_data_entry e;
	uint64_t end = fx_now_ms() + FX_TIMEOUT_MS;
	ssize_t ret;

	ret = fi_recv(f->ep, buf, len, NULL, FI_ADDR_UNSPEC, NULL);
	if (ret)
		return ret;
	do {
		ret = fi_cq_readfrom(f->cq, &e, 1, src);
		if (ret == 1) {
			*got = e.len;
			return 0;
		}
		if (ret != -FI_EAGAIN)
			return ret;
	} while (fx_now_ms() < end);
	return -FI_ETIMEDOUT;
}

/* The receiver: tells its address, never inserts the sender, receives a
 * rendezvous message and a delivery-complete eager one. */
static int receiver_main(int sock)
{
	static const size_t lens[2] = { RNDV_LEN, EAGER_LEN };
	struct rx_report rep;
	struct fx f;
	char *buf = malloc(RNDV_LEN);
	fi_addr_t src;
	int ret = fx_open(&f, FI_MSG | FI_SOURCE, FX_MR_OMPI);

	memset(&rep, 0, sizeof(rep));
	if (ret || !buf)
		return 2;
	if (fx_send_all(sock, f.addr, FX_ADDR_MAX))
		return 3;
	for (int i = 0; i < 2; i++) {
		memset(buf, 0, RNDV_LEN);
		src = 0;
		rep.status[i] = receive_one(&f, buf, RNDV_LEN, &rep.len[i],
					    &src);
		rep.src[i] = src;
		rep.intact[i] = fx_verify(buf, lens[i], 40 + i, 0) == lens[i];
	}
	ret = fx_send_all(sock, &rep, sizeof(rep));
	/* Stay until the sender is done: its completion may need us. */
	fx_recv_all(sock, &rep, 1);
	fx_close(&f);
	free(buf);
	return ret ? 4 : 0;
}

static void test_not_inserted_receiver(void)
{
	static const size_t lens[2] = { RNDV_LEN, EAGER_LEN };
	char addr[FX_ADDR_MAX], *buf = malloc(RNDV_LEN);
	struct fi_cq_data_entry e;
	struct fi_cq_err_entry err;
	struct rx_report rep;
	struct fx f;
	fi_addr_t peer;
	int sv[2], ctx[2];
	pid_t pid;

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = usb4_test_fork();
	if (pid == 0) {
		close(sv[0]);
		alarm(30);
		usb4_test_child_exit(receiver_main(sv[1]));
	}
	close(sv[1]);
	CHECK_EQ(fx_recv_all(sv[0], addr, sizeof(addr)), 0);
	CHECK_EQ(fx_open(&f, FI_MSG, FX_MR_OMPI), 0);
	peer = fx_insert(&f, addr);
	CHECK(peer != FI_ADDR_NOTAVAIL);
	for (int i = 0; i < 2 && peer != FI_ADDR_NOTAVAIL; i++) {
		/* fx_open's endpoints send with FI_DELIVERY_COMPLETE. */
		fx_fill(buf, lens[i], 40 + i, 0);
		CHECK_EQ(fi_send(f.ep, buf, lens[i], NULL, peer, &ctx[i]), 0);
		int ret = fx_wait(f.cq, &e, &err);

		CHECK_EQ_MSG(ret, 1, "send %d (%zu bytes) to a receiver that "
			     "never inserted us did not complete", i, lens[i]);
		if (ret == 1)
			CHECK(e.op_context == &ctx[i]);
	}
	CHECK_EQ(fx_recv_all(sv[0], &rep, sizeof(rep)), 0);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(rep.status[i], 0);
		CHECK_EQ(rep.len[i], lens[i]);
		CHECK(rep.src[i] == FI_ADDR_NOTAVAIL);
		CHECK(rep.intact[i]);
	}
	CHECK_EQ(fx_send_all(sv[0], "x", 1), 0);
	CHECK_EQ(fx_reap(pid), 0);
	close(sv[0]);
	fx_close(&f);
	free(buf);
}

/* ---- memory registration ---------------------------------------------- */

/* fi_mr_reg that must be refused with -FI_EINVAL, leaving nothing behind. */
static void reg_refused(struct fx *f, const void *buf, size_t len,
			uint64_t offset, const char *what)
{
	struct fid_mr *mr = NULL;
	int ret = fi_mr_reg(f->domain, buf, len, FI_REMOTE_READ |
			    FI_REMOTE_WRITE, offset, 0x77, 0, &mr, NULL);

	CHECK_EQ_MSG(ret, -FI_EINVAL, "fi_mr_reg of %s", what);
	if (!ret)
		fi_close(&mr->fid);
}

static void test_mr_reg(uint64_t mr_mode)
{
	struct fx f;
	struct fid_mr *mr;
	char *map, stack_byte = 1;
	struct iovec iov[2];
	struct fi_mr_attr attr = { .mr_iov = iov, .iov_count = 2,
				   .access = FI_SEND | FI_RECV,
				   .iface = FI_HMEM_SYSTEM };

	CHECK_EQ(fx_open(&f, RMA_CAPS, mr_mode), 0);
	map = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(map != MAP_FAILED);
	if (!f.ep || map == MAP_FAILED)
		goto out;
	reg_refused(&f, map, 0, 0, "length 0");
	reg_refused(&f, NULL, 0, 0, "NULL, length 0");
	reg_refused(&f, NULL, 64, 0, "NULL with a length");
	reg_refused(&f, map, SIZE_MAX, 0, "SIZE_MAX bytes");
	/* The attack: everything from a stack byte to the top. */
	reg_refused(&f, &stack_byte, SIZE_MAX - (uintptr_t) &stack_byte, 0,
		    "a stack byte up to 2^64 - 1");
	reg_refused(&f, (void *) (uintptr_t) (UINT64_MAX - 31), 64, 0,
		    "a range wrapping past 2^64");
	/* A hole in the middle, then a guard page at the end. */
	CHECK_EQ(munmap(map + PAGE, PAGE), 0);
	reg_refused(&f, map, 3 * PAGE, 0, "a range with an unmapped page");
	reg_refused(&f, map + PAGE + 8, 64, 0, "an unmapped page");
	CHECK_EQ(mprotect(map + 2 * PAGE, PAGE, PROT_NONE), 0);
	reg_refused(&f, map + 2 * PAGE - 8, 16, 0, "a range into PROT_NONE");
	/* With offset addressing, the range peers name must not wrap. */
	if (!(mr_mode & FI_MR_VIRT_ADDR))
		reg_refused(&f, map, 64, UINT64_MAX - 31,
			    "an offset wrapping past 2^64");
	/* Vectors and attributes: one bad entry spoils the registration. */
	iov[0] = (struct iovec) { map, 64 };
	iov[1] = (struct iovec) { NULL, 64 };
	CHECK_EQ(fi_mr_regv(f.domain, iov, 2, FI_SEND, 0, 0x78, 0, &mr, NULL),
		 -FI_EINVAL);
	CHECK_EQ(fi_mr_regattr(f.domain, &attr, 0, &mr), -FI_EINVAL);
	iov[1] = (struct iovec) { map + PAGE, 64 };
	CHECK_EQ(fi_mr_regattr(f.domain, &attr, 0, &mr), -FI_EINVAL);
	/* Nothing was lost: the same key registers a good buffer. */
	CHECK_EQ(fi_mr_reg(f.domain, map, PAGE, FI_REMOTE_READ, 0, 0x77, 0,
			   &mr, NULL), 0);
	CHECK_EQ(fi_close(&mr->fid), 0);
	munmap(map, PAGE);
	munmap(map + 2 * PAGE, PAGE);
out:
	fx_close(&f);
}

/* ---- RMA outside a region --------------------------------------------- */

#define GUARD		256	/* bytes on each side of the region */
#define REGION_LEN	1024

struct oob_case {
	const char *name;
	int64_t off;		/* from the region's first byte */
	uint64_t abs_addr;	/* used instead when nonzero */
	size_t len;
};

/* One access by kind (0 read, 1 write, 2 atomic) that must fail with an
 * FI_EACCES completion and touch no byte of the target or local buffer. */
static void oob_access(struct fx *f, fi_addr_t me, struct fid_mr *mr,
		       char *target, int kind, const struct oob_case *c)
{
	static const char *kinds[] = { "read", "write", "atomic" };
	uint64_t addr = c->abs_addr ? c->abs_addr :
			fx_rma_base(f, target + GUARD) + (uint64_t) c->off;
	uint64_t key = fi_mr_key(mr), tsum = fx_sum(target, 2 * GUARD +
							 REGION_LEN);
	char local[2 * REGION_LEN];
	struct fi_cq_err_entry err;
	ssize_t ret;
	int ctx;

	fx_fill(local, sizeof(local), 9, 0);
	if (kind == 0)
		ret = fi_read(f->ep, local, c->len, NULL, me, addr, key, &ctx);
	else if (kind == 1)
		ret = fi_write(f->ep, local, c->len, NULL, me, addr, key, &ctx);
	else
		ret = fi_atomic(f->ep, local, c->len / 8, NULL, me, addr, key,
				FI_UINT64, FI_SUM, &ctx);
	CHECK_EQ_MSG(ret, 0, "%s %s", kinds[kind], c->name);
	if (!ret)
		CHECK_EQ_MSG(fx_wait(f->cq, NULL, &err), 0, "%s %s: no error "
			     "completion", kinds[kind], c->name);
	if (!ret && err.err)
		CHECK_EQ_MSG(err.err, FI_EACCES, "%s %s", kinds[kind], c->name);
	CHECK_MSG(fx_sum(target, 2 * GUARD + REGION_LEN) == tsum,
		  "%s %s changed the target", kinds[kind], c->name);
	CHECK_MSG(fx_verify(local, sizeof(local), 9, 0) == sizeof(local),
		  "%s %s changed the local buffer", kinds[kind], c->name);
}

static void test_rma_out_of_region(uint64_t mr_mode)
{
	const struct oob_case cases[] = {
		{ "past the end", REGION_LEN - 8, 0, 16 },
		{ "just after the end", REGION_LEN, 0, 8 },
		{ "longer than the region", 0, 0, REGION_LEN + 8 },
		{ "before the start", -8, 0, 16 },
		{ "addr + len wrapping past 2^64", 0, UINT64_MAX - 7, 16 },
		{ "at 2^64 - 8", 0, UINT64_MAX - 7, 8 },
	};
	char *target = malloc(2 * GUARD + REGION_LEN);
	struct fid_mr *mr = NULL;
	struct fx f;
	fi_addr_t me;

	CHECK_EQ(fx_open(&f, RMA_CAPS, mr_mode), 0);
	if (!f.ep || !target)
		goto out;
	me = fx_insert(&f, f.addr);
	fx_fill(target, 2 * GUARD + REGION_LEN, 1, 0);
	CHECK_EQ(fx_reg(&f, target + GUARD, REGION_LEN, FI_REMOTE_READ |
			FI_REMOTE_WRITE, 0x99, &mr), 0);
	if (!mr || me == FI_ADDR_NOTAVAIL)
		goto out;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Offsets start at 0: "before the start" wraps there. */
		if (cases[i].off < 0 && !(mr_mode & FI_MR_VIRT_ADDR))
			continue;
		for (int kind = 0; kind < 3; kind++)
			oob_access(&f, me, mr, target, kind, &cases[i]);
	}
	CHECK(fx_verify(target, 2 * GUARD + REGION_LEN, 1, 0) ==
	      2 * GUARD + REGION_LEN);
	CHECK_EQ(fi_close(&mr->fid), 0);
out:
	fx_close(&f);
	free(target);
}

/* ---- NULL buffers at post time ---------------------------------------- */

static void test_null_buffers(void)
{
	struct iovec null_iov = { NULL, 8 }, empty_iov = { NULL, 0 };
	uint64_t result, operand = 1;
	struct fi_cq_data_entry e;
	struct fid_mr *mr = NULL;
	char target[64];
	struct fx f;
	fi_addr_t me;
	int ctx;

	CHECK_EQ(fx_open(&f, RMA_CAPS, FX_MR_OMPI), 0);
	if (!f.ep)
		goto out;
	me = fx_insert(&f, f.addr);
	CHECK_EQ(fx_reg(&f, target, sizeof(target), FI_REMOTE_READ |
			FI_REMOTE_WRITE, 0, &mr), 0);
	if (!mr)
		goto out;
	uint64_t base = fx_rma_base(&f, target), key = fi_mr_key(mr);

	CHECK_EQ(fi_send(f.ep, NULL, 10, NULL, me, &ctx), -FI_EINVAL);
	CHECK_EQ(fi_sendv(f.ep, &null_iov, NULL, 1, me, &ctx), -FI_EINVAL);
	CHECK_EQ(fi_senddata(f.ep, NULL, 10, NULL, 7, me, &ctx), -FI_EINVAL);
	CHECK_EQ(fi_inject(f.ep, NULL, 10, me), -FI_EINVAL);
	CHECK_EQ(fi_injectdata(f.ep, NULL, 10, 7, me), -FI_EINVAL);
	CHECK_EQ(fi_tsend(f.ep, NULL, 10, NULL, me, 1, &ctx), -FI_EINVAL);
	CHECK_EQ(fi_tinject(f.ep, NULL, 10, me, 1), -FI_EINVAL);
	CHECK_EQ(fi_tsenddata(f.ep, NULL, 10, NULL, 7, me, 1, &ctx),
		 -FI_EINVAL);
	CHECK_EQ(fi_recv(f.ep, NULL, 10, NULL, FI_ADDR_UNSPEC, &ctx),
		 -FI_EINVAL);
	CHECK_EQ(fi_recvv(f.ep, &null_iov, NULL, 1, FI_ADDR_UNSPEC, &ctx),
		 -FI_EINVAL);
	CHECK_EQ(fi_trecv(f.ep, NULL, 10, NULL, FI_ADDR_UNSPEC, 1, 0, &ctx),
		 -FI_EINVAL);
	CHECK_EQ(fi_write(f.ep, NULL, 8, NULL, me, base, key, &ctx),
		 -FI_EINVAL);
	CHECK_EQ(fi_read(f.ep, NULL, 8, NULL, me, base, key, &ctx),
		 -FI_EINVAL);
	CHECK_EQ(fi_writev(f.ep, &null_iov, NULL, 1, me, base, key, &ctx),
		 -FI_EINVAL);
	CHECK_EQ(fi_readv(f.ep, &null_iov, NULL, 1, me, base, key, &ctx),
		 -FI_EINVAL);
	CHECK_EQ(fi_inject_write(f.ep, NULL, 8, me, base, key), -FI_EINVAL);
	CHECK_EQ(fi_writedata(f.ep, NULL, 8, NULL, 7, me, base, key, &ctx),
		 -FI_EINVAL);
	CHECK_EQ(fi_atomic(f.ep, NULL, 1, NULL, me, base, key, FI_UINT64,
			   FI_SUM, &ctx), -FI_EINVAL);
	CHECK_EQ(fi_inject_atomic(f.ep, NULL, 1, me, base, key, FI_UINT64,
				  FI_SUM), -FI_EINVAL);
	CHECK_EQ(fi_fetch_atomic(f.ep, &operand, 1, NULL, NULL, NULL, me, base,
				 key, FI_UINT64, FI_SUM, &ctx), -FI_EINVAL);
	/* An iov whose entries add up past SIZE_MAX. */
	struct iovec huge[2] = { { target, SIZE_MAX / 2 + 1 },
				 { target, SIZE_MAX / 2 + 1 } };
	CHECK_EQ(fi_sendv(f.ep, huge, NULL, 2, me, &ctx), -FI_EINVAL);
	CHECK(fx_cq_empty(f.cq));
	/* NULL with length 0 stays legal, and so does a read-only atomic. */
	CHECK_EQ(fi_recv(f.ep, NULL, 0, NULL, FI_ADDR_UNSPEC, &ctx), 0);
	CHECK_EQ(fi_sendv(f.ep, &empty_iov, NULL, 1, me, &ctx), 0);
	CHECK_EQ(fx_wait(f.cq, &e, NULL), 1);
	CHECK_EQ(fx_wait(f.cq, &e, NULL), 1);
	CHECK_EQ(e.len, 0);
	CHECK_EQ(fi_fetch_atomic(f.ep, NULL, 1, NULL, &result, NULL, me, base,
				 key, FI_UINT64, FI_ATOMIC_READ, &ctx), 0);
	CHECK_EQ(fx_wait(f.cq, &e, NULL), 1);
	CHECK(fx_cq_empty(f.cq));
	CHECK_EQ(fi_close(&mr->fid), 0);
out:
	fx_close(&f);
}

/* ---- a closed endpoint ------------------------------------------------- */

static void test_closed_endpoint(void)
{
	struct fx f, other;
	struct fid_ep *ep;
	char buf[64] = { 0 }, name[FX_ADDR_MAX];
	size_t namelen = sizeof(name);
	uint64_t operand = 1;
	fi_addr_t me;
	int ctx;

	CHECK_EQ(fx_open(&f, RMA_CAPS, FX_MR_OMPI), 0);
	CHECK_EQ(fx_open(&other, RMA_CAPS, FX_MR_OMPI), 0);
	if (!f.ep || !other.ep)
		goto out;
	me = fx_insert(&f, f.addr);
	ep = f.ep;
	CHECK_EQ(fi_close(&ep->fid), 0);
	f.ep = NULL;
	CHECK_EQ(fi_close(&ep->fid), -FI_EBADF);
	CHECK_EQ(fi_send(ep, buf, 8, NULL, me, &ctx), -FI_EBADF);
	CHECK_EQ(fi_inject(ep, buf, 8, me), -FI_EBADF);
	CHECK_EQ(fi_recv(ep, buf, 8, NULL, FI_ADDR_UNSPEC, &ctx), -FI_EBADF);
	CHECK_EQ(fi_tsend(ep, buf, 8, NULL, me, 1, &ctx), -FI_EBADF);
	CHECK_EQ(fi_trecv(ep, buf, 8, NULL, FI_ADDR_UNSPEC, 1, 0, &ctx),
		 -FI_EBADF);
	CHECK_EQ(fi_write(ep, buf, 8, NULL, me, 0, 1, &ctx), -FI_EBADF);
	CHECK_EQ(fi_read(ep, buf, 8, NULL, me, 0, 1, &ctx), -FI_EBADF);
	CHECK_EQ(fi_atomic(ep, &operand, 1, NULL, me, 0, 1, FI_UINT64, FI_SUM,
			   &ctx), -FI_EBADF);
	CHECK_EQ(fi_cancel(&ep->fid, &ctx), -FI_EBADF);
	CHECK_EQ(fi_getname(&ep->fid, name, &namelen), -FI_EBADF);
	CHECK_EQ(fi_ep_bind(ep, &f.cq->fid, FI_TRANSMIT), -FI_EBADF);
	CHECK_EQ(fi_enable(ep), -FI_EBADF);
	CHECK_EQ(fi_setopt(&ep->fid, FI_OPT_ENDPOINT, FI_OPT_MIN_MULTI_RECV,
			   &namelen, sizeof(namelen)), -FI_EBADF);
	CHECK(fx_cq_empty(f.cq));
	/* The domain, CQ and the other endpoints carry on. */
	CHECK_EQ(fi_recv(other.ep, buf, sizeof(buf), NULL, FI_ADDR_UNSPEC,
			 &ctx), 0);
	me = fx_insert(&other, other.addr);
	CHECK_EQ(fi_send(other.ep, buf, 8, NULL, me, &ctx), 0);
	CHECK_EQ(fx_wait(other.cq, NULL, NULL), 1);
	CHECK_EQ(fx_wait(other.cq, NULL, NULL), 1);
	/* Many closes: the oldest tombstones go, the newest still answer. */
	for (int i = 0; i < 300; i++) {
		CHECK_EQ(fi_endpoint(f.domain, f.info, &ep, NULL), 0);
		CHECK_EQ(fi_close(&ep->fid), 0);
	}
	CHECK_EQ(fi_close(&ep->fid), -FI_EBADF);
out:
	fx_close(&other);
	fx_close(&f);
}

int main(void)
{
	alarm(120);
	/* Fork before this process touches libfabric. */
	test_not_inserted_receiver();
	test_mr_reg(FX_MR_OMPI);
	test_mr_reg(FX_MR_USER);
	test_rma_out_of_region(FX_MR_OMPI);
	test_rma_out_of_region(FX_MR_USER);
	test_null_buffers();
	test_closed_endpoint();
	return usb4_test_done("test_bad_input");
}
