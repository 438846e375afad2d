/*
 * Atomics to one peer execute in issue order: what FI_ORDER_ATOMIC_RAR,
 * RAW, WAR and WAW promise (MPICH and Intel MPI ask for them).  One
 * initiator posts a run of FI_ATOMIC_WRITEs of distinct values with
 * FI_ATOMIC_READ fetches between them, without waiting: every fetch must
 * see the value of the write issued just before it, and the cell must end
 * with the last one.  A reordered pair (a fetch run before an earlier write,
 * two writes swapped) shows as a wrong value.
 *
 * Over both links: shm (the initiator runs each atomic itself) and udp over
 * loopback (FI_USB4_IFACE=lo; each atomic is a request frame the target
 * runs), the udp path being taken by giving both addresses another host's
 * id.  Both endpoints live in this process; the target is progressed by
 * reading its CQ while the initiator waits.
 */
#include <stdlib.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define OPS		600	/* above tx_size: backpressure is exercised */
#define FETCH_EVERY	5

static uint64_t values[OPS], results[OPS];

/* Progresses both ends; counts the initiator's completions. */
static int progress(struct fx *a, struct fx *b, size_t *done)
{
	struct fi_cq_data_entry e[16];
	struct fi_cq_err_entry err;
	ssize_t n;

	fi_cq_read(b->cq, NULL, 0);
	n = fi_cq_read(a->cq, e, 16);
	if (n > 0)
		*done += (size_t) n;
	if (n == -FI_EAVAIL) {
		memset(&err, 0, sizeof(err));
		fi_cq_readerr(a->cq, &err, 0);
		fprintf(stderr, "atomic failed: %s\n", fi_strerror(err.err));
		return -1;
	}
	return 0;
}

static bool is_fetch(size_t i)
{
	return i % FETCH_EVERY == FETCH_EVERY - 1;
}

static ssize_t post(struct fx *a, fi_addr_t peer, uint64_t addr,
		    uint64_t key, size_t i)
{
	if (is_fetch(i))
		return fi_fetch_atomic(a->ep, &values[i], 1, NULL, &results[i],
				       NULL, peer, addr, key, FI_UINT64,
				       FI_ATOMIC_READ, &results[i]);
	return fi_atomic(a->ep, &values[i], 1, NULL, peer, addr, key,
			 FI_UINT64, FI_ATOMIC_WRITE, &values[i]);
}

/* Posts every op, then waits for all; false on an error or a timeout. */
static bool run_ops(struct fx *a, struct fx *b, fi_addr_t peer,
		    uint64_t addr, uint64_t key)
{
	uint64_t end = fx_now_ms() + 4 * FX_TIMEOUT_MS;
	size_t posted = 0, done = 0;

	while (done < OPS && fx_now_ms() < end) {
		ssize_t ret = posted < OPS ?
			      post(a, peer, addr, key, posted) : -FI_EAGAIN;

		if (ret == 0)
			posted++;
		else if (ret != -FI_EAGAIN)
			return false;
		if ((ret || posted == OPS) && progress(a, b, &done))
			return false;
	}
	return done == OPS;
}

static void check_order(const char *link, const uint64_t *cell)
{
	uint64_t last = 0;
	int wrong = 0;

	for (size_t i = 0; i < OPS; i++) {
		if (!is_fetch(i)) {
			last = values[i];
			continue;
		}
		if (results[i] != last && !wrong++)
			fprintf(stderr, "%s: fetch #%zu saw %llu, the write "
				"before it was %llu\n", link, i,
				(unsigned long long) results[i],
				(unsigned long long) last);
	}
	CHECK_EQ_MSG(wrong, 0, "%s: fetches out of order", link);
	CHECK_EQ_MSG(*cell, last, "%s: the last write is not the last", link);
}

static void test_link(const char *link, bool udp)
{
	struct fx a, b;
	struct fid_mr *mr;
	uint64_t *cell = aligned_alloc(64, 64);
	fi_addr_t peer, back;
	bool joined;

	*cell = 0;
	for (size_t i = 0; i < OPS; i++) {
		values[i] = 1000 + i;
		results[i] = 0;
	}
	CHECK_EQ(fx_open(&a, FI_ATOMIC, FX_MR_OMPI), 0);
	CHECK_EQ(fx_open(&b, FI_ATOMIC, FX_MR_OMPI), 0);
	CHECK_EQ(fx_reg(&b, cell, 64, FI_REMOTE_READ | FI_REMOTE_WRITE, 0,
			&mr), 0);
	/* both ways: the target serves known peers */
	joined = fx_join(&a, &b, udp, &peer, &back) == 0;
	CHECK_MSG(joined, "%s: addresses not inserted", link);
	if (joined) {
		CHECK_MSG(run_ops(&a, &b, peer, fx_rma_base(&b, cell),
				  fi_mr_key(mr)), "%s: ops did not complete",
			  link);
		check_order(link, cell);
	}
	fi_close(&mr->fid);
	fx_close(&a);
	fx_close(&b);
	free(cell);
}

int main(void)
{
	alarm(120);
	/* Before libfabric reads its parameters: other hosts reachable. */
	setenv("FI_USB4_IFACE", "lo", 1);
	test_link("shm", false);
	test_link("udp", true);
	return usb4_test_done("test_atomic_order");
}
