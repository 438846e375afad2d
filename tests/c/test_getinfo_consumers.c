/*
 * The getinfo conformance table: for each hint set a known libfabric
 * consumer sends, what usb4 answers (asserted attribute by attribute) or
 * the refusal and the reason it logs.  The hints are read from each
 * consumer's source; the comment above each names file and version.
 *
 * API versions: a consumer asks for the newest API it knows and falls back
 * when libfabric answers -FI_ENOSYS (a libfabric older than the request).
 * Built against libfabric 1.17 headers, a request above 1.17 never reaches
 * a provider, so each set is asked at the version its fallback reaches on
 * 1.17.  (The provider's version following the running libfabric is
 * another change; there the newer requests apply.)
 *
 * Two children: one with FI_USB4_IFACE=lo (other hosts reachable: what a
 * cluster has), one without (same-host peers only).  The provider reads its
 * parameters once, so each setting gets its own process.  Both log at info
 * level into a capture file, where each refusal's reason is looked up.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include "usb4_test.h"

#define LOG_MAX		65536
#define MR_BASIC_BITS	(FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY)
#define ATOMIC_ORDER	(FI_ORDER_ATOMIC_RAR | FI_ORDER_ATOMIC_RAW | \
			 FI_ORDER_ATOMIC_WAR | FI_ORDER_ATOMIC_WAW)

/* ---- the provider's log, captured per call ------------------------------ */

static FILE *log_file;
static int saved_stderr = -1;
static char log_text[LOG_MAX];

static void capture_begin(void)
{
	fflush(stderr);
	if (!log_file)
		log_file = tmpfile();
	if (!log_file)
		return;
	if (saved_stderr < 0)
		saved_stderr = dup(2);
	if (ftruncate(fileno(log_file), 0) == 0)
		rewind(log_file);
	dup2(fileno(log_file), 2);
}

static const char *capture_end(void)
{
	size_t n = 0;

	fflush(stderr);
	log_text[0] = '\0';
	if (!log_file)
		return log_text;
	dup2(saved_stderr, 2);
	rewind(log_file);
	n = fread(log_text, 1, sizeof(log_text) - 1, log_file);
	log_text[n] = '\0';
	return log_text;
}

/* fi_getinfo with its log captured. */
static int getinfo_logged(uint32_t version, const struct fi_info *h,
			  struct fi_info **info, const char **log)
{
	int ret;

	*info = NULL;
	capture_begin();
	ret = fi_getinfo(version, NULL, NULL, 0, (struct fi_info *) h, info);
	*log = capture_end();
	return ret;
}

static void expect_refused(const char *who, uint32_t version,
			   const struct fi_info *h, const char *reason)
{
	struct fi_info *info;
	const char *log;
	int ret = getinfo_logged(version, h, &info, &log);

	CHECK_EQ_MSG(ret, -FI_ENODATA, "%s: refused", who);
	CHECK_MSG(strstr(log, reason) != NULL, "%s: reason '%s' not logged:\n%s",
		  who, reason, log);
	fi_freeinfo(info);
}

static struct fi_info *expect_answer(const char *who, uint32_t version,
				     const struct fi_info *h)
{
	struct fi_info *info;
	const char *log;
	int ret = getinfo_logged(version, h, &info, &log);

	CHECK_EQ_MSG(ret, 0, "%s: answered; log:\n%s", who, log);
	if (info) {
		/* What every consumer reads (see /work/shared/CONSUMERS.md). */
		CHECK_EQ_MSG(info->mode, 0, "%s: we need no mode", who);
		CHECK_EQ_MSG(info->ep_attr->type, FI_EP_RDM, "%s", who);
		CHECK_MSG(info->ep_attr->mem_tag_format & (1ULL << 63), "%s", who);
		CHECK_MSG(info->domain_attr->cq_data_size >= 4, "%s", who);
		CHECK_EQ_MSG(info->domain_attr->mr_mode &
			     (FI_MR_LOCAL | FI_MR_ENDPOINT | FI_MR_HMEM |
			      FI_MR_RAW), 0, "%s: modes we never need", who);
		CHECK_MSG(!strcmp(info->fabric_attr->prov_name, "usb4"), "%s", who);
		CHECK_EQ_MSG(info->next, NULL, "%s: one answer", who);
	}
	return info;
}

static struct fi_info *hints_new(void)
{
	struct fi_info *h = fi_allocinfo();

	if (!h)
		exit(2);
	h->fabric_attr->prov_name = strdup("usb4");
	return h;
}

/* ---- Open MPI ----------------------------------------------------------- */

/* Open MPI 4.1.4, ompi/mca/mtl/ofi/mtl_ofi_component.c
 * (ompi_mtl_ofi_component_init): API 1.5. */
static struct fi_info *ompi41_mtl(void)
{
	struct fi_info *h = hints_new();

	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->ep_attr->type = FI_EP_RDM;
	h->caps = FI_TAGGED | FI_LOCAL_COMM | FI_REMOTE_COMM | FI_DIRECTED_RECV;
	h->tx_attr->msg_order = FI_ORDER_SAS;
	h->rx_attr->msg_order = FI_ORDER_SAS;
	h->tx_attr->op_flags = FI_COMPLETION;
	h->rx_attr->op_flags = FI_COMPLETION;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->domain_attr->cq_data_size = sizeof(int);
	h->domain_attr->av_type = FI_AV_MAP;
	h->domain_attr->resource_mgmt = FI_RM_ENABLED;
	return h;
}

/* Open MPI 4.1.4, opal/mca/btl/ofi/btl_ofi_component.c
 * (mca_btl_ofi_component_init, one-sided mode): API 1.5. */
static struct fi_info *ompi41_btl(void)
{
	struct fi_info *h = hints_new();

	h->caps = FI_RMA | FI_ATOMIC;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->ep_attr->type = FI_EP_RDM;
	h->domain_attr->mr_mode = FI_MR_ALLOCATED | FI_MR_PROV_KEY |
				  FI_MR_VIRT_ADDR;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->tx_attr->iov_limit = 1;
	h->rx_attr->iov_limit = 1;
	h->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
	return h;
}

/* Open MPI 5.0.x, ompi/mca/mtl/ofi/mtl_ofi_component.c (open-mpi/ompi at
 * a8fcaa81): asks FI_HMEM with FI_MR_HMEM | FI_MR_ALLOCATED first, at API
 * 1.18 (-FI_ENOSYS on 1.17: then 1.9), passing opal_common_ofi's shared
 * fabric and domain (NULL on the first call); on -FI_ENODATA it retries
 * without FI_HMEM and FI_MR_HMEM. */
static struct fi_info *ompi50_mtl(bool hmem)
{
	struct fi_info *h = hints_new();

	if (hmem) {
		h->caps |= FI_HMEM;
		h->domain_attr->mr_mode |= FI_MR_HMEM;
	}
	h->domain_attr->mr_mode |= FI_MR_ALLOCATED;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->ep_attr->type = FI_EP_RDM;
	h->caps |= FI_MSG | FI_TAGGED | FI_LOCAL_COMM | FI_REMOTE_COMM |
		   FI_DIRECTED_RECV;
	h->tx_attr->msg_order = FI_ORDER_SAS;
	h->rx_attr->msg_order = FI_ORDER_SAS;
	h->rx_attr->op_flags = FI_COMPLETION;
	h->tx_attr->op_flags = FI_COMPLETION;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->domain_attr->cq_data_size = sizeof(int);
	h->domain_attr->av_type = FI_AV_MAP;
	h->domain_attr->resource_mgmt = FI_RM_ENABLED;
	return h;
}

/* Open MPI 5.0.x, opal/mca/btl/ofi/btl_ofi_component.c (open-mpi/ompi at
 * 007b52af; MCA_BTL_OFI_REQUESTED_MR_MODE holds FI_MR_ENDPOINT there):
 * btl_ofi_mode 2 (FULL_SUPPORT) asks RMA, ATOMIC and MSG; FI_HMEM first,
 * API 1.18 then 1.9, with the shared fabric and domain. */
static struct fi_info *ompi50_btl(bool hmem)
{
	struct fi_info *h = hints_new();

	h->domain_attr->mr_mode = FI_MR_ALLOCATED | FI_MR_PROV_KEY |
				  FI_MR_VIRT_ADDR | FI_MR_ENDPOINT;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->ep_attr->type = FI_EP_RDM;
	h->caps = FI_RMA | FI_ATOMIC | FI_MSG;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->tx_attr->iov_limit = 1;
	h->rx_attr->iov_limit = 1;
	h->tx_attr->op_flags = FI_DELIVERY_COMPLETE | FI_COMPLETION;
	h->rx_attr->op_flags = FI_COMPLETION;
	if (hmem) {
		h->caps |= FI_HMEM;
		h->domain_attr->mr_mode |= FI_MR_HMEM;
	}
	return h;
}

/* ---- MPICH, Intel MPI, oneCCL, aws-ofi-nccl ----------------------------- */

/* MPICH 5.0, src/mpid/ch4/netmod/ofi/ofi_init.c and ofi_capability_sets.h
 * (the default set for a provider it does not know, as CONSUMERS.md
 * records it): native RMA and atomics with atomic ordering first, API 2.5;
 * Intel MPI 2021.18 (MPICH based, closed source; its
 * MPIR_CVAR_CH4_OFI_CAPABILITY_SETS_DEBUG=1 output) asks the same orders.
 * Built on 1.17 they are asked at 1.17. */
static struct fi_info *mpich50(void)
{
	struct fi_info *h = hints_new();

	h->caps = FI_MSG | FI_TAGGED | FI_RMA | FI_ATOMIC | FI_DIRECTED_RECV;
	h->mode = FI_CONTEXT;
	h->ep_attr->type = FI_EP_RDM;
	h->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				  FI_MR_PROV_KEY;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->domain_attr->control_progress = FI_PROGRESS_MANUAL;
	h->domain_attr->data_progress = FI_PROGRESS_MANUAL;
	h->domain_attr->av_type = FI_AV_TABLE;
	h->tx_attr->msg_order = FI_ORDER_SAS | ATOMIC_ORDER;
	h->rx_attr->msg_order = FI_ORDER_SAS | ATOMIC_ORDER;
	h->tx_attr->op_flags = FI_DELIVERY_COMPLETE | FI_COMPLETION;
	h->rx_attr->op_flags = FI_COMPLETION;
	h->ep_attr->max_order_waw_size = 8;
	return h;
}

/* oneCCL 2022.1, src/atl/ofi/atl_ofi_helper.cpp (atl_ofi_get_prov_list
 * hints, as CONSUMERS.md records them): API 1.10, tagged, FI_CONTEXT,
 * manual progress, FI_AV_TABLE. */
static struct fi_info *oneccl(void)
{
	struct fi_info *h = hints_new();

	h->caps = FI_TAGGED;
	h->mode = FI_CONTEXT;
	h->ep_attr->type = FI_EP_RDM;
	h->domain_attr->resource_mgmt = FI_RM_ENABLED;
	h->domain_attr->control_progress = FI_PROGRESS_MANUAL;
	h->domain_attr->data_progress = FI_PROGRESS_MANUAL;
	h->domain_attr->av_type = FI_AV_TABLE;
	return h;
}

/* aws-ofi-nccl 1.21, src/nccl_ofi_sendrecv.cpp (get_hints, SENDRECV
 * protocol): API 1.20, 1.18, then 1.6 (the one a 1.17 libfabric answers). */
static struct fi_info *nccl_sendrecv(void)
{
	struct fi_info *h = hints_new();

	h->caps = FI_TAGGED | FI_MSG | FI_LOCAL_COMM | FI_REMOTE_COMM;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->ep_attr->type = FI_EP_RDM;
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_ENDPOINT |
				  FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				  FI_MR_PROV_KEY;
	h->domain_attr->threading = FI_THREAD_SAFE;
	h->tx_attr->msg_order = FI_ORDER_SAS;
	h->rx_attr->msg_order = FI_ORDER_SAS;
	return h;
}

/* aws-ofi-nccl 1.21, src/nccl_ofi_rdma.cpp (get_hints, RDMA protocol):
 * fi_writedata into device memory, so FI_HMEM with FI_MR_HMEM, API 1.18. */
static struct fi_info *nccl_rdma(void)
{
	struct fi_info *h = nccl_sendrecv();

	h->caps = FI_MSG | FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_WRITE |
		  FI_LOCAL_COMM | FI_REMOTE_COMM | FI_HMEM;
	h->domain_attr->mr_mode |= FI_MR_HMEM;
	return h;
}

/* ---- the table ---------------------------------------------------------- */

static void row_ompi41(void)
{
	struct fi_info *h = ompi41_mtl(), *info;

	info = expect_answer("ompi 4.1 mtl", FI_VERSION(1, 5), h);
	if (info) {
		CHECK_EQ(info->caps & (FI_TAGGED | FI_DIRECTED_RECV |
				       FI_LOCAL_COMM | FI_REMOTE_COMM),
			 FI_TAGGED | FI_DIRECTED_RECV | FI_LOCAL_COMM |
			 FI_REMOTE_COMM);
		CHECK_EQ(info->domain_attr->mr_mode, 0);
		CHECK_EQ(info->domain_attr->threading, FI_THREAD_DOMAIN);
		CHECK(info->tx_attr->msg_order & FI_ORDER_SAS);
		CHECK_EQ(info->tx_attr->op_flags, FI_COMPLETION);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);

	h = ompi41_btl();
	info = expect_answer("ompi 4.1 btl", FI_VERSION(1, 5), h);
	if (info) {
		CHECK(info->caps & FI_RMA && info->caps & FI_ATOMIC);
		CHECK_EQ(info->domain_attr->mr_mode, MR_BASIC_BITS);
		CHECK(info->tx_attr->op_flags & FI_DELIVERY_COMPLETE);
		CHECK(info->tx_attr->iov_limit >= 1);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);
}

static void row_ompi50(void)
{
	struct fi_info *h = ompi50_mtl(true), *info;

	expect_refused("ompi 5.0 mtl, FI_HMEM", FI_VERSION(1, 9), h,
		       "FI_HMEM asked: usb4 moves host memory only");
	fi_freeinfo(h);
	h = ompi50_mtl(false);
	info = expect_answer("ompi 5.0 mtl", FI_VERSION(1, 9), h);
	if (info) {
		CHECK(info->caps & FI_MSG && info->caps & FI_TAGGED);
		CHECK_EQ(info->domain_attr->mr_mode, FI_MR_ALLOCATED);
		CHECK_EQ(info->domain_attr->threading, FI_THREAD_DOMAIN);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);

	h = ompi50_btl(true);
	expect_refused("ompi 5.0 btl, FI_HMEM", FI_VERSION(1, 9), h,
		       "FI_HMEM asked");
	fi_freeinfo(h);
	h = ompi50_btl(false);
	info = expect_answer("ompi 5.0 btl", FI_VERSION(1, 9), h);
	if (info) {
		CHECK(info->caps & FI_RMA && info->caps & FI_ATOMIC &&
		      info->caps & FI_MSG);
		/* FI_MR_ENDPOINT offered, not needed: left out. */
		CHECK_EQ(info->domain_attr->mr_mode, MR_BASIC_BITS);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);
}

static void row_mpich(void)
{
	struct fi_info *h = mpich50(), *info;

	info = expect_answer("mpich 5.0 / impi 2021.18", FI_VERSION(1, 17), h);
	if (info) {
		CHECK_EQ(info->tx_attr->msg_order & (FI_ORDER_SAS | ATOMIC_ORDER),
			 FI_ORDER_SAS | ATOMIC_ORDER);
		CHECK_EQ(info->rx_attr->msg_order & (FI_ORDER_SAS | ATOMIC_ORDER),
			 FI_ORDER_SAS | ATOMIC_ORDER);
		/* MPICH bounds ordered accumulates by these; 0 would assert. */
		CHECK(info->ep_attr->max_order_waw_size >= 8);
		CHECK(info->ep_attr->max_order_raw_size >= 8);
		CHECK(info->ep_attr->max_order_war_size >= 8);
		CHECK_EQ(info->domain_attr->av_type, FI_AV_TABLE);
		CHECK_EQ(info->domain_attr->mr_mode, MR_BASIC_BITS);
		fi_freeinfo(info);
	}
	/* Orders not kept stay refused, with the bits named. */
	h->tx_attr->msg_order |= FI_ORDER_RAW;
	expect_refused("mpich, RMA RAW", FI_VERSION(1, 17), h,
		       "tx msg_order");
	h->tx_attr->msg_order &= ~FI_ORDER_RAW;
	h->ep_attr->max_order_waw_size = (size_t) 1 << 20;
	expect_refused("mpich, 1 MiB WAW", FI_VERSION(1, 17), h,
		       "max_order_waw_size");
	fi_freeinfo(h);
}

static void row_oneccl_nccl(void)
{
	struct fi_info *h = oneccl(), *info;

	info = expect_answer("oneccl 2022.1", FI_VERSION(1, 10), h);
	if (info) {
		CHECK(info->caps & FI_TAGGED);
		CHECK_EQ(info->domain_attr->av_type, FI_AV_TABLE);
		CHECK_EQ(info->domain_attr->data_progress, FI_PROGRESS_MANUAL);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);

	h = nccl_sendrecv();
	info = expect_answer("aws-ofi-nccl sendrecv", FI_VERSION(1, 6), h);
	if (info) {
		CHECK_EQ(info->domain_attr->mr_mode, MR_BASIC_BITS);
		CHECK_EQ(info->domain_attr->threading, FI_THREAD_SAFE);
		CHECK(64 - __builtin_clzll(info->ep_attr->mem_tag_format) >= 33);
		CHECK(info->src_addrlen <= 56);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);

	h = nccl_rdma();
	expect_refused("aws-ofi-nccl rdma", FI_VERSION(1, 17), h,
		       "FI_HMEM asked");
	fi_freeinfo(h);
}

/* Every mode bit libfabric 1.17 defines, alone and together: we need none,
 * so each is accepted and the answer's mode is 0. */
static void row_modes(void)
{
	static const uint64_t modes[] = {
		FI_CONTEXT, FI_CONTEXT2, FI_MSG_PREFIX, FI_ASYNC_IOV,
		FI_RX_CQ_DATA, FI_LOCAL_MR, FI_NOTIFY_FLAGS_ONLY,
		FI_RESTRICTED_COMP, FI_BUFFERED_RECV,
	};
	uint64_t all = 0;
	struct fi_info *h, *info;

	for (size_t i = 0; i <= sizeof(modes) / sizeof(modes[0]); i++) {
		h = hints_new();
		h->mode = i < sizeof(modes) / sizeof(modes[0]) ? modes[i] : all;
		if (i < sizeof(modes) / sizeof(modes[0]))
			all |= modes[i];
		info = expect_answer("mode bits", FI_VERSION(1, 17), h);
		fi_freeinfo(info);
		fi_freeinfo(h);
	}
}

/* The 1.0 mr_mode values, answered as libfabric's util code does. */
static void row_mr_old(void)
{
	struct fi_info *h = ompi41_mtl(), *info;

	h->caps &= ~FI_REMOTE_COMM;
	h->domain_attr->mr_mode = 0;
	info = expect_answer("api 1.4, no mode", FI_VERSION(1, 4), h);
	if (info)
		CHECK_EQ(info->domain_attr->mr_mode, 2);	/* scalable */
	fi_freeinfo(info);
	h->domain_attr->mr_mode = 1;				/* basic */
	info = expect_answer("api 1.4, basic", FI_VERSION(1, 4), h);
	if (info)
		CHECK_EQ(info->domain_attr->mr_mode, 1);
	fi_freeinfo(info);
	info = expect_answer("api 1.17, basic alone", FI_VERSION(1, 17), h);
	if (info)
		CHECK_EQ(info->domain_attr->mr_mode, 1);
	fi_freeinfo(info);
	h->domain_attr->mr_mode = 2;
	info = expect_answer("api 1.17, scalable alone", FI_VERSION(1, 17), h);
	if (info)
		CHECK_EQ(info->domain_attr->mr_mode, 2);
	fi_freeinfo(info);
	h->domain_attr->mr_mode = 1 | FI_MR_LOCAL;
	expect_refused("basic with a bit", FI_VERSION(1, 17), h,
		       "named alone");
	h->domain_attr->data_progress = FI_PROGRESS_AUTO;
	h->domain_attr->mr_mode = 0;
	expect_refused("auto progress", FI_VERSION(1, 17), h,
		       "FI_PROGRESS_AUTO");
	fi_freeinfo(h);
}

/* ---- the shared domain (Open MPI 5.0.10+ one-sided) --------------------- */

struct opened {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
};

static bool open_from(struct opened *o, struct fi_info *h, uint32_t version)
{
	o->info = expect_answer("shared: opener", version, h);
	fi_freeinfo(h);
	if (!o->info)
		return false;
	CHECK_EQ(fi_fabric(o->info->fabric_attr, &o->fabric, NULL), 0);
	CHECK_EQ(fi_domain(o->fabric, o->info, &o->domain, NULL), 0);
	return true;
}

static void close_opened(struct opened *o)
{
	fi_close(&o->domain->fid);
	fi_close(&o->fabric->fid);
	fi_freeinfo(o->info);
}

/* The mtl opened the domain (mr_mode ALLOCATED: user keys, offsets); the
 * btl's hints name it and offer VIRT_ADDR and PROV_KEY: the answer must be
 * the domain's mode, or the btl addresses by VA with keys it never got. */
static void test_shared_mtl_then_btl(void)
{
	struct opened o;
	struct fi_info *h, *info;
	struct fid_mr *mr;
	static char buf[4096];

	if (!open_from(&o, ompi50_mtl(false), FI_VERSION(1, 9)))
		return;
	h = ompi50_btl(false);
	h->domain_attr->domain = o.domain;
	h->fabric_attr->fabric = o.fabric;
	info = expect_answer("shared: btl on the mtl's domain", FI_VERSION(1, 9),
			     h);
	if (info) {
		CHECK(info->domain_attr->domain == o.domain);
		CHECK(info->fabric_attr->fabric == o.fabric);
		CHECK_EQ(info->domain_attr->mr_mode, FI_MR_ALLOCATED);
		CHECK_EQ(info->domain_attr->threading, FI_THREAD_DOMAIN);
		CHECK(info->caps & FI_RMA && info->caps & FI_ATOMIC);
		fi_freeinfo(info);
	}
	/* The domain keeps the caller's key: the mode the answer said. */
	CHECK_EQ(fi_mr_reg(o.domain, buf, sizeof(buf), FI_REMOTE_WRITE, 0, 77,
			   0, &mr, NULL), 0);
	CHECK_EQ(fi_mr_key(mr), 77);
	fi_close(&mr->fid);
	/* Asking more thread safety than the domain was opened with. */
	h->domain_attr->threading = FI_THREAD_SAFE;
	expect_refused("shared: safer threading", FI_VERSION(1, 9), h,
		       "shared domain: opened with threading");
	h->domain_attr->domain = NULL;
	h->fabric_attr->fabric = NULL;
	fi_freeinfo(h);
	close_opened(&o);
}

/* A domain that needs provider keys and virtual addresses, named by hints
 * that offer neither: refused. */
static void test_shared_refused(void)
{
	struct opened o;
	struct fi_info *h;

	if (!open_from(&o, ompi41_btl(), FI_VERSION(1, 5)))
		return;
	h = ompi41_mtl();
	h->domain_attr->domain = o.domain;
	expect_refused("shared: mtl on the btl's domain", FI_VERSION(1, 5), h,
		       "shared domain: opened with mr_mode 0x70");
	h->domain_attr->domain = NULL;
	/* A fid that is not a usb4 domain. */
	h->fabric_attr->fabric = (struct fid_fabric *) o.domain;
	expect_refused("shared: not our fabric", FI_VERSION(1, 5), h,
		       "not a usb4 fabric");
	h->fabric_attr->fabric = NULL;
	fi_freeinfo(h);
	close_opened(&o);
}

/* ---- the two settings ----------------------------------------------------- */

static int with_iface(void)
{
	row_ompi41();
	row_ompi50();
	row_mpich();
	row_oneccl_nccl();
	row_modes();
	row_mr_old();
	test_shared_mtl_then_btl();
	test_shared_refused();
	return usb4_test_done("test_getinfo_consumers (FI_USB4_IFACE=lo)");
}

/* Same-host only: remote peers asked for are refused, with the way out;
 * hints that do not ask get an answer without FI_REMOTE_COMM. */
static int without_iface(void)
{
	struct fi_info *h = ompi41_mtl(), *info;

	expect_refused("mtl, no iface", FI_VERSION(1, 5), h,
		       "set FI_USB4_IFACE or connect a thunderbolt-net link");
	fi_freeinfo(h);
	h = ompi41_mtl();
	h->caps &= ~FI_REMOTE_COMM;
	h->domain_attr->caps = FI_REMOTE_COMM;
	expect_refused("domain caps, no iface", FI_VERSION(1, 5), h,
		       "FI_REMOTE_COMM asked");
	h->domain_attr->caps = 0;
	info = expect_answer("mtl local only, no iface", FI_VERSION(1, 5), h);
	if (info) {
		CHECK(info->caps & FI_LOCAL_COMM);
		CHECK(!(info->caps & FI_REMOTE_COMM));
		CHECK(!(info->domain_attr->caps & FI_REMOTE_COMM));
		fi_freeinfo(info);
	}
	fi_freeinfo(h);
	return usb4_test_done("test_getinfo_consumers (no iface)");
}

static int run_child(bool iface)
{
	pid_t pid = usb4_test_fork();
	int st;

	if (pid == 0) {
		if (iface)
			setenv("FI_USB4_IFACE", "lo", 1);
		else
			unsetenv("FI_USB4_IFACE");
		setenv("FI_LOG_LEVEL", "info", 1);
		usb4_test_child_exit(iface ? with_iface() : without_iface());
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 1;
	return WEXITSTATUS(st);
}

int main(void)
{
	int failed = run_child(true) | run_child(false);

	CHECK_EQ(failed, 0);
	return usb4_test_done("test_getinfo_consumers");
}
