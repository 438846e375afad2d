/*
 * fi_getinfo, fi_fabric/fi_domain/fi_eq and memory registration of the built
 * provider, loaded through libfabric (make check sets FI_PROVIDER_PATH and
 * FI_PROVIDER=usb4).  The consumer profiles are the hints of
 * /work/shared/CONSUMERS.md: each must get the attributes its user checks.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>

#include "usb4_test.h"

#define API_1_5		FI_VERSION(1, 5)
#define API_1_6		FI_VERSION(1, 6)
#define MR_BAD_MODES	(FI_MR_LOCAL | FI_MR_ENDPOINT | FI_MR_HMEM)

#define USB4_KEY_MAX_TEST	1024	/* USB4_CORE_KEY_MAX, the longest key taken */

static struct fi_info *new_hints(void)
{
	struct fi_info *h = fi_allocinfo();

	if (!h) {
		fprintf(stderr, "fi_allocinfo failed\n");
		exit(1);
	}
	h->fabric_attr->prov_name = strdup("usb4");
	return h;
}

/* main() names loopback (FI_USB4_IFACE=lo) unless the caller named an
 * interface: the profiles ask FI_REMOTE_COMM, refused without one
 * (test_getinfo_consumers covers that case). */
static bool remote_expected(void)
{
	const char *iface = getenv("FI_USB4_IFACE");

	return iface && *iface;
}

/* Without an interface, hints asking for remote peers only get nothing. */
static void test_remote_only(void)
{
	struct fi_info *h = fi_allocinfo(), *info = NULL;

	h->ep_attr->type = FI_EP_RDM;
	h->caps = FI_TAGGED | FI_REMOTE_COMM;
	CHECK_EQ(fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, h, &info),
		 remote_expected() ? 0 : -FI_ENODATA);
	fi_freeinfo(info);
	fi_freeinfo(h);
}

/* Attributes every consumer reads from a usb4 answer. */
static void check_common(const struct fi_info *info)
{
	CHECK(!strcmp(info->fabric_attr->prov_name, "usb4"));
	CHECK(info->fabric_attr->name && info->domain_attr->name);
	CHECK_EQ(info->ep_attr->type, FI_EP_RDM);
	CHECK(info->ep_attr->mem_tag_format & (1ULL << 63));
	CHECK(info->domain_attr->cq_data_size >= 4);
	CHECK(info->src_addrlen <= 56);
	CHECK_EQ(info->domain_attr->mr_mode & MR_BAD_MODES, 0);
	CHECK_EQ(info->domain_attr->max_ep_tx_ctx, 1);
	CHECK_EQ(info->mode, 0);
	CHECK(info->tx_attr->msg_order & FI_ORDER_SAS);
}

static void test_null_hints(void)
{
	struct fi_info *info = NULL;

	CHECK_EQ(fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, NULL, &info), 0);
	if (!info)
		return;
	check_common(info);
	CHECK(info->caps & FI_MSG && info->caps & FI_TAGGED);
	CHECK(info->caps & FI_DIRECTED_RECV && info->caps & FI_SOURCE);
	CHECK(info->caps & FI_RMA && info->caps & FI_ATOMIC);
	CHECK(info->caps & FI_RMA_EVENT);
	CHECK(info->tx_attr->rma_iov_limit >= 1);
	CHECK_EQ(info->addr_format, FI_FORMAT_UNSPEC);
	CHECK_EQ(info->domain_attr->threading, FI_THREAD_SAFE);
	CHECK_EQ(info->domain_attr->data_progress, FI_PROGRESS_MANUAL);
	CHECK_EQ(info->domain_attr->av_type, FI_AV_MAP);
	CHECK_EQ(info->domain_attr->cq_data_size, 8);
	CHECK_EQ(info->ep_attr->max_msg_size, 0xffffffffULL);
	CHECK(info->tx_attr->inject_size > 0);
	CHECK_EQ(info->domain_attr->mr_mode, 0);
	fi_freeinfo(info);
}

/* Open MPI 4.1 mtl ofi. */
static struct fi_info *mtl_ofi_hints(void)
{
	struct fi_info *h = new_hints();

	h->caps = FI_TAGGED | FI_LOCAL_COMM | FI_REMOTE_COMM |
		  FI_DIRECTED_RECV;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->ep_attr->type = FI_EP_RDM;
	h->tx_attr->msg_order = FI_ORDER_SAS;
	h->rx_attr->msg_order = FI_ORDER_SAS;
	h->tx_attr->op_flags = FI_COMPLETION;
	h->rx_attr->op_flags = FI_COMPLETION;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->domain_attr->av_type = FI_AV_MAP;
	h->domain_attr->resource_mgmt = FI_RM_ENABLED;
	h->domain_attr->mr_mode = 0;
	h->domain_attr->cq_data_size = 4;
	return h;
}

/* aws-ofi-nccl, SENDRECV protocol, at the API it falls back to. */
static struct fi_info *nccl_hints(void)
{
	struct fi_info *h = new_hints();

	h->caps = FI_TAGGED | FI_MSG | FI_LOCAL_COMM | FI_REMOTE_COMM;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->ep_attr->type = FI_EP_RDM;
	h->tx_attr->msg_order = FI_ORDER_SAS;
	h->rx_attr->msg_order = FI_ORDER_SAS;
	h->domain_attr->threading = FI_THREAD_SAFE;
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_ENDPOINT |
				  FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				  FI_MR_PROV_KEY;
	return h;
}

/* Open MPI 4.1 btl ofi: needs RMA and atomics, which come later. */
static struct fi_info *btl_ofi_hints(void)
{
	struct fi_info *h = new_hints();

	h->caps = FI_RMA | FI_ATOMIC;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->ep_attr->type = FI_EP_RDM;
	h->domain_attr->mr_mode = FI_MR_ALLOCATED | FI_MR_PROV_KEY |
				  FI_MR_VIRT_ADDR;
	h->tx_attr->iov_limit = 1;
	h->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
	return h;
}

/*
 * The API we serve is the running libfabric's (api/usb4_libfabric.c): its
 * own version is answered, and so are the versions aws-ofi-nccl tries (1.20,
 * 1.18) when it is at least that new.  Anything newer than the running
 * library is refused: by libfabric itself (-FI_ENOSYS) or by us.
 */
static bool api_follows_libfabric(const struct fi_info *h)
{
	const uint32_t running = fi_version();
	const uint32_t versions[] = { running, FI_VERSION(1, 18),
				      FI_VERSION(1, 20),
				      FI_VERSION(FI_MAJOR(running),
						 FI_MINOR(running) + 1),
				      FI_VERSION(99, 0) };
	struct fi_info *info = NULL;
	size_t i;
	int ret;

	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		bool newer = FI_VERSION_LT(running, versions[i]);

		ret = fi_getinfo(versions[i], NULL, NULL, 0, h, &info);
		if (newer && ((ret != -FI_ENODATA && ret != -FI_ENOSYS) ||
			      info))
			return false;
		if (!newer && (ret || !info ||
			       info->fabric_attr->api_version != versions[i]))
			return false;
		fi_freeinfo(info);
		info = NULL;
	}
	return true;
}

static void test_profiles(void)
{
	struct fi_info *h, *info = NULL;

	h = mtl_ofi_hints();
	CHECK_EQ(fi_getinfo(API_1_5, NULL, NULL, 0, h, &info), 0);
	if (info) {
		check_common(info);
		CHECK(info->caps & FI_TAGGED && info->caps & FI_DIRECTED_RECV);
		CHECK(!(info->caps & FI_MSG));	/* primary caps not asked */
		CHECK(info->caps & FI_LOCAL_COMM && info->caps & FI_SEND);
		/* Remote peers only with an interface to other hosts. */
		CHECK_EQ(!!(info->caps & FI_REMOTE_COMM), remote_expected());
		CHECK_EQ(info->domain_attr->threading, FI_THREAD_DOMAIN);
		CHECK_EQ(info->domain_attr->mr_mode, 0);
		CHECK_EQ(info->tx_attr->op_flags, FI_COMPLETION);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);

	h = nccl_hints();
	info = NULL;
	CHECK(api_follows_libfabric(h));
	CHECK_EQ(fi_getinfo(API_1_6, NULL, NULL, 0, h, &info), 0);
	if (info) {
		check_common(info);
		CHECK(info->caps & FI_TAGGED && info->caps & FI_MSG);
		CHECK_EQ(info->domain_attr->threading, FI_THREAD_SAFE);
		CHECK_EQ(info->domain_attr->mr_mode, FI_MR_VIRT_ADDR |
			 FI_MR_ALLOCATED | FI_MR_PROV_KEY);
		CHECK(64 - __builtin_clzll(info->ep_attr->mem_tag_format) >= 33);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);

	/* Open MPI's btl ofi (one-sided MPI): RMA and atomics with provider
	 * keys, virtual addresses and no FI_MR_LOCAL/ENDPOINT/HMEM. */
	h = btl_ofi_hints();
	info = NULL;
	CHECK_EQ(fi_getinfo(API_1_5, NULL, NULL, 0, h, &info), 0);
	if (info) {
		check_common(info);
		CHECK(info->caps & FI_RMA && info->caps & FI_ATOMIC);
		CHECK_EQ(info->domain_attr->mr_mode, FI_MR_VIRT_ADDR |
			 FI_MR_ALLOCATED | FI_MR_PROV_KEY);
		CHECK(info->tx_attr->op_flags & FI_DELIVERY_COMPLETE);
		CHECK(info->tx_attr->iov_limit >= 1);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);
}

/* Makes the hints ask for something usb4 cannot give; false when done. */
static bool make_impossible(struct fi_info *h, int i)
{
	switch (i) {
	case 0: h->ep_attr->type = FI_EP_MSG; break;
	case 1: h->ep_attr->type = FI_EP_DGRAM; break;
	case 2: h->caps = FI_MSG | FI_COLLECTIVE; break;
	case 3: h->caps = FI_TAGGED | FI_TRIGGER; break;
	case 4: h->domain_attr->cq_data_size = 16; break;
	case 5: h->tx_attr->inject_size = (size_t) 1 << 30; break;
	case 6: h->ep_attr->max_msg_size = (size_t) 1 << 40; break;
	case 7: h->tx_attr->iov_limit = 1024; break;
	case 8: h->tx_attr->size = (size_t) 1 << 30; break;
	case 9: free(h->fabric_attr->name);
		h->fabric_attr->name = strdup("other"); break;
	case 10: free(h->domain_attr->name);
		h->domain_attr->name = strdup("other"); break;
	case 11: free(h->fabric_attr->prov_name);
		h->fabric_attr->prov_name = strdup("tcp"); break;
	case 12: h->addr_format = FI_SOCKADDR_IN; break;
	case 13: h->ep_attr->msg_prefix_size = 8; break;
	case 14: h->ep_attr->auth_key_size = 4; break;
	case 15: h->ep_attr->tx_ctx_cnt = 2; break;
	case 16: h->ep_attr->rx_ctx_cnt = FI_SHARED_CONTEXT; break;
	case 17: h->domain_attr->av_type = (enum fi_av_type) 99; break;
	case 18: h->domain_attr->max_ep_tx_ctx = 2; break;
	case 19: h->tx_attr->rma_iov_limit = 1024; break;
	case 20: h->rx_attr->iov_limit = 1024; break;
	case 21: h->caps = FI_TAGGED | FI_HMEM; break;
	case 22: h->tx_attr->msg_order = FI_ORDER_SAS | FI_ORDER_RAW; break;
	case 23: h->domain_attr->auth_key_size = 4; break;
	case 24: h->domain_attr->data_progress = (enum fi_progress) 99; break;
	default: return false;
	}
	return true;
}

static void test_impossible(void)
{
	struct fi_info *h, *info;
	int i;

	for (i = 0; ; i++) {
		h = nccl_hints();
		if (!make_impossible(h, i)) {
			fi_freeinfo(h);
			break;
		}
		info = NULL;
		if (fi_getinfo(API_1_6, NULL, NULL, 0, h, &info) != -FI_ENODATA) {
			fprintf(stderr, "impossible hints #%d accepted\n", i);
			CHECK(0);
		}
		fi_freeinfo(info);
		fi_freeinfo(h);
	}
	info = NULL;
	h = nccl_hints();
	CHECK(api_follows_libfabric(h));
	/* A node that names nothing (node and service are looked up). */
	CHECK_EQ(fi_getinfo(API_1_6, "no-such-host.invalid", "1234", 0, h,
			    &info), -FI_ENODATA);
	fi_freeinfo(h);
}

static void opens_endpoint(struct fi_info *info);

/* Progress: manual unless the hints ask for FI_PROGRESS_AUTO (the
 * domain's progress thread then serves every endpoint); a domain opened
 * manual is not offered as auto. */
static void test_progress(void)
{
	struct fi_info *h = nccl_hints(), *info = NULL, *again = NULL;
	struct fid_fabric *fabric;
	struct fid_domain *domain;

	CHECK_EQ(fi_getinfo(API_1_6, NULL, NULL, 0, h, &info), 0);
	if (info) {
		CHECK_EQ(info->domain_attr->data_progress, FI_PROGRESS_MANUAL);
		CHECK_EQ(info->domain_attr->control_progress,
			 FI_PROGRESS_MANUAL);
		fi_freeinfo(info);
		info = NULL;
	}
	h->domain_attr->data_progress = FI_PROGRESS_AUTO;
	h->domain_attr->control_progress = FI_PROGRESS_AUTO;
	CHECK_EQ(fi_getinfo(API_1_6, NULL, NULL, 0, h, &info), 0);
	if (!info) {
		fi_freeinfo(h);
		return;
	}
	CHECK_EQ(info->domain_attr->data_progress, FI_PROGRESS_AUTO);
	CHECK_EQ(info->domain_attr->control_progress, FI_PROGRESS_AUTO);
	opens_endpoint(info);
	/* A domain opened manual, named in hints asking auto: refused. */
	info->domain_attr->data_progress = FI_PROGRESS_MANUAL;
	info->domain_attr->control_progress = FI_PROGRESS_MANUAL;
	CHECK_EQ(fi_fabric(info->fabric_attr, &fabric, NULL), 0);
	CHECK_EQ(fi_domain(fabric, info, &domain, NULL), 0);
	h->domain_attr->domain = domain;
	CHECK_EQ(fi_getinfo(API_1_6, NULL, NULL, 0, h, &again), -FI_ENODATA);
	h->domain_attr->data_progress = FI_PROGRESS_UNSPEC;
	h->domain_attr->control_progress = FI_PROGRESS_UNSPEC;
	CHECK_EQ(fi_getinfo(API_1_6, NULL, NULL, 0, h, &again), 0);
	if (again)
		CHECK_EQ(again->domain_attr->data_progress, FI_PROGRESS_MANUAL);
	h->domain_attr->domain = NULL;
	fi_freeinfo(again);
	fi_close(&domain->fid);
	fi_close(&fabric->fid);
	fi_freeinfo(info);
	fi_freeinfo(h);
}

/* Hints that pick a setting get it back. */
static void test_echo(void)
{
	struct fi_info *h = nccl_hints(), *info = NULL;

	h->domain_attr->av_type = FI_AV_TABLE;
	h->domain_attr->resource_mgmt = FI_RM_DISABLED;
	h->ep_attr->mem_tag_format = 0x0000ffffffffffffULL;
	h->tx_attr->size = 64;
	h->ep_attr->type = FI_EP_UNSPEC;
	CHECK_EQ(fi_getinfo(API_1_6, NULL, NULL, 0, h, &info), 0);
	if (info) {
		CHECK_EQ(info->domain_attr->av_type, FI_AV_TABLE);
		CHECK_EQ(info->domain_attr->resource_mgmt, FI_RM_DISABLED);
		CHECK_EQ(info->ep_attr->mem_tag_format, 0x0000ffffffffffffULL);
		CHECK_EQ(info->tx_attr->size, 64);
		CHECK_EQ(info->ep_attr->type, FI_EP_RDM);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);
}

/* Before API 1.5 mr_mode was an enum: no preference gets 2 (scalable),
 * basic (1) is answered as asked, anything else refused. */
static void test_old_api(void)
{
	struct fi_info *h = mtl_ofi_hints(), *info = NULL;

	CHECK_EQ(fi_getinfo(FI_VERSION(1, 4), NULL, NULL, 0, h, &info), 0);
	if (info)
		CHECK_EQ(info->domain_attr->mr_mode, 2);
	fi_freeinfo(info);
	info = NULL;
	h->domain_attr->mr_mode = 1;
	CHECK_EQ(fi_getinfo(FI_VERSION(1, 4), NULL, NULL, 0, h, &info), 0);
	if (info)
		CHECK_EQ(info->domain_attr->mr_mode, 1);
	fi_freeinfo(info);
	info = NULL;
	h->domain_attr->mr_mode = 3;
	CHECK_EQ(fi_getinfo(FI_VERSION(1, 4), NULL, NULL, 0, h, &info),
		 -FI_ENODATA);
	fi_freeinfo(h);
}

/* A domain opened in basic mode (API 1.0's value 1) works as its bits say:
 * provider keys, virtual addresses. */
static void test_mr_basic(struct fid_domain *domain)
{
	static char buf[4096];
	struct fid_mr *mr[2];

	for (int i = 0; i < 2; i++)
		CHECK_EQ(fi_mr_reg(domain, buf, sizeof(buf), FI_REMOTE_READ, 0,
				   42, 0, &mr[i], NULL), 0);
	CHECK(fi_mr_key(mr[0]) != 42 || fi_mr_key(mr[1]) != 42);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(fi_close(&mr[i]->fid), 0);
}

static struct fi_info *basic_hints(void)
{
	struct fi_info *h = mtl_ofi_hints();

	h->domain_attr->mr_mode = 1;
	return h;
}

static double now_s(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_eq_sread_timeout(struct fid_eq *eq)
{
	struct fi_eq_entry entry;
	uint32_t event;
	double t0 = now_s(CLOCK_MONOTONIC);
	double c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
	ssize_t ret = fi_eq_sread(eq, &event, &entry, sizeof(entry), 100, 0);
	double wall = now_s(CLOCK_MONOTONIC) - t0;
	double cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;

	CHECK_EQ(ret, -FI_EAGAIN);
	CHECK(wall >= 0.095);
	CHECK(cpu < 0.03);	/* blocked, not spinning */
}

static void test_eq(struct fid_fabric *fabric)
{
	struct fi_eq_attr attr = { .wait_obj = FI_WAIT_UNSPEC };
	struct fi_eq_entry in = { .context = &attr, .data = 42 }, out;
	struct fid_eq *eq;
	uint32_t event = 0;

	attr.wait_obj = FI_WAIT_FD;
	CHECK_EQ(fi_eq_open(fabric, &attr, &eq, NULL), -FI_ENOSYS);
	attr.wait_obj = FI_WAIT_UNSPEC;
	CHECK_EQ(fi_eq_open(fabric, &attr, &eq, NULL), 0);
	CHECK_EQ(fi_eq_read(eq, &event, &out, sizeof(out), 0), -FI_EAGAIN);
	CHECK_EQ(fi_eq_write(eq, FI_NOTIFY, &in, sizeof(in), 0), sizeof(in));
	CHECK_EQ(fi_eq_read(eq, &event, &out, 4, 0), -FI_ETOOSMALL);
	CHECK_EQ(fi_eq_read(eq, &event, &out, sizeof(out), FI_PEEK),
		 sizeof(out));
	CHECK_EQ(fi_eq_sread(eq, &event, &out, sizeof(out), 100, 0),
		 sizeof(out));
	CHECK_EQ(event, FI_NOTIFY);
	CHECK(out.context == &attr && out.data == 42);
	CHECK_EQ(fi_eq_read(eq, &event, &out, sizeof(out), 0), -FI_EAGAIN);
	test_eq_sread_timeout(eq);
	CHECK_EQ(fi_close(&fabric->fid), -FI_EBUSY);	/* the EQ holds it */
	CHECK_EQ(fi_close(&eq->fid), 0);
}

/* Provider keys: random, distinct, not the address. */
static void test_mr_prov_key(struct fid_domain *domain)
{
	static char buf[2][4096];
	struct fid_mr *mr[2];
	struct iovec iov = { .iov_base = buf[0], .iov_len = sizeof(buf[0]) };
	struct fi_mr_attr attr = { .mr_iov = &iov, .iov_count = 1,
				   .access = FI_SEND | FI_RECV,
				   .iface = FI_HMEM_CUDA };
	int i;

	for (i = 0; i < 2; i++)
		CHECK_EQ(fi_mr_reg(domain, buf[i], sizeof(buf[i]),
				   FI_SEND | FI_RECV, 0, 0, 0, &mr[i], NULL), 0);
	CHECK(fi_mr_key(mr[0]) != fi_mr_key(mr[1]));
	for (i = 0; i < 2; i++) {
		CHECK(fi_mr_key(mr[i]) != (uint64_t) (uintptr_t) buf[i]);
		CHECK(fi_mr_desc(mr[i]) != NULL);
	}
	CHECK_EQ(fi_mr_regattr(domain, &attr, 0, &mr[0]), -FI_ENOSYS);
	CHECK_EQ(fi_mr_reg(domain, buf[0], 1, 1ULL << 62, 0, 0, 0, &mr[0],
			   NULL), -FI_EINVAL);
	CHECK_EQ(fi_close(&domain->fid), -FI_EBUSY);	/* MRs hold it */
	for (i = 0; i < 2; i++)
		CHECK_EQ(fi_close(&mr[i]->fid), 0);
}

/* User keys (mr_mode 0): the requested key, unique in the domain. */
static void test_mr_user_key(struct fid_domain *domain)
{
	static char buf[4096];
	struct fid_mr *mr, *dup;

	CHECK_EQ(fi_mr_reg(domain, buf, sizeof(buf), FI_SEND, 0, 42, 0, &mr,
			   NULL), 0);
	CHECK_EQ(fi_mr_key(mr), 42);
	CHECK_EQ(fi_mr_reg(domain, buf, sizeof(buf), FI_SEND, 0, 42, 0, &dup,
			   NULL), -FI_ENOKEY);
	CHECK_EQ(fi_close(&mr->fid), 0);
	CHECK_EQ(fi_mr_reg(domain, buf, sizeof(buf), FI_SEND, 0, 42, 0, &mr,
			   NULL), 0);
	CHECK_EQ(fi_close(&mr->fid), 0);
}

/* Opens fabric and domain from a profile's answer and runs fn on it. */
static void with_domain(struct fi_info *h, uint32_t version,
			void (*fn)(struct fid_domain *), bool eq)
{
	struct fi_info *info = NULL;
	struct fid_fabric *fabric;
	struct fid_domain *domain;

	CHECK_EQ(fi_getinfo(version, NULL, NULL, 0, h, &info), 0);
	fi_freeinfo(h);
	if (!info)
		return;
	CHECK_EQ(fi_fabric(info->fabric_attr, &fabric, NULL), 0);
	if (eq)
		test_eq(fabric);
	CHECK_EQ(fi_domain(fabric, info, &domain, NULL), 0);
	fn(domain);
	CHECK_EQ(fi_close(&domain->fid), 0);
	CHECK_EQ(fi_close(&fabric->fid), 0);
	fi_freeinfo(info);
}

/* fi_fabric, fi_domain and fi_endpoint take info, and close again. */
static void opens_endpoint(struct fi_info *info)
{
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_ep *ep;

	CHECK_EQ(fi_fabric(info->fabric_attr, &fabric, NULL), 0);
	CHECK_EQ(fi_domain(fabric, info, &domain, NULL), 0);
	CHECK_EQ(fi_endpoint(domain, info, &ep, NULL), 0);
	CHECK_EQ(fi_close(&ep->fid), 0);
	CHECK_EQ(fi_close(&domain->fid), 0);
	CHECK_EQ(fi_close(&fabric->fid), 0);
}

/* A job key in the hints comes back in the info, and fi_domain and
 * fi_endpoint take it; one longer than we take is refused. */
static void test_auth_key(void)
{
	static uint8_t key[] = "job key", ep_key[] = "endpoint key";
	static uint8_t big[USB4_KEY_MAX_TEST + 1];
	struct fi_info *h = nccl_hints(), *info = NULL;

	h->domain_attr->auth_key = key;
	h->domain_attr->auth_key_size = sizeof(key) - 1;
	h->ep_attr->auth_key = ep_key;
	h->ep_attr->auth_key_size = sizeof(ep_key) - 1;
	CHECK_EQ(fi_getinfo(API_1_6, NULL, NULL, 0, h, &info), 0);
	if (info) {
		CHECK_EQ(info->domain_attr->auth_key_size, sizeof(key) - 1);
		CHECK(info->domain_attr->auth_key != key &&
		      !memcmp(info->domain_attr->auth_key, key, sizeof(key) - 1));
		CHECK_EQ(info->ep_attr->auth_key_size, sizeof(ep_key) - 1);
		opens_endpoint(info);
	}
	fi_freeinfo(info);
	/* The hints' keys are ours to free: fi_freeinfo must not see them. */
	h->domain_attr->auth_key = big;
	h->domain_attr->auth_key_size = sizeof(big);
	h->ep_attr->auth_key = NULL;
	h->ep_attr->auth_key_size = 0;
	info = NULL;
	CHECK_EQ(fi_getinfo(API_1_6, NULL, NULL, 0, h, &info), -FI_ENODATA);
	h->domain_attr->auth_key = NULL;
	h->domain_attr->auth_key_size = 0;
	fi_freeinfo(h);
}

/*
 * Caps of API 2.0 that sit on bits 1.x used for other things: a 2.x caller
 * gets FI_TAGGED_DIRECTED_RECV (bit 45) and FI_EXACT_DIRECTED_RECV (bit 48),
 * and an endpoint opens with them; FI_TAGGED_MULTI_RECV (bit 46) is refused;
 * a 1.x caller naming bit 48 (FI_VARIABLE_MSG there) is refused.  Runs its
 * 2.x half only under a libfabric 2.x (scripts/test.sh runs make check
 * under one too).
 */
#define CAP2_TAGGED_DIRECTED_RECV	(1ULL << 45)
#define CAP2_TAGGED_MULTI_RECV		(1ULL << 46)
#define CAP2_EXACT_DIRECTED_RECV	(1ULL << 48)

static void test_api2_caps(void)
{
	const uint32_t running = fi_version();
	struct fi_info *h = new_hints(), *info = NULL;

	h->caps = FI_TAGGED | CAP2_EXACT_DIRECTED_RECV;
	CHECK_EQ(fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, h, &info),
		 -FI_ENODATA);
	fi_freeinfo(h);
	if (FI_MAJOR(running) < 2) {
		printf("# test_api2_caps: libfabric %u.%u, 2.x half not run\n",
		       FI_MAJOR(running), FI_MINOR(running));
		return;
	}
	h = new_hints();
	h->caps = FI_TAGGED | CAP2_TAGGED_MULTI_RECV;
	CHECK_EQ(fi_getinfo(running, NULL, NULL, 0, h, &info), -FI_ENODATA);
	h->caps = FI_TAGGED | CAP2_TAGGED_DIRECTED_RECV |
		  CAP2_EXACT_DIRECTED_RECV;
	info = NULL;
	CHECK_EQ(fi_getinfo(running, NULL, NULL, 0, h, &info), 0);
	fi_freeinfo(h);
	if (!info)
		return;
	CHECK(info->caps & CAP2_TAGGED_DIRECTED_RECV);
	CHECK(info->caps & CAP2_EXACT_DIRECTED_RECV);
	CHECK(info->rx_attr->caps & CAP2_TAGGED_DIRECTED_RECV);
	opens_endpoint(info);
	fi_freeinfo(info);
}

int main(void)
{
	setenv("FI_USB4_IFACE", "lo", 0);
	test_null_hints();
	test_profiles();
	test_impossible();
	test_echo();
	test_progress();
	test_old_api();
	test_remote_only();
	test_auth_key();
	test_api2_caps();
	with_domain(nccl_hints(), API_1_6, test_mr_prov_key, true);
	with_domain(mtl_ofi_hints(), API_1_5, test_mr_user_key, false);
	with_domain(basic_hints(), FI_VERSION(1, 4), test_mr_basic, false);
	return usb4_test_done("test_getinfo");
}
