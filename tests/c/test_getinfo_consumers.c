/*
 * The getinfo conformance table: for each hint set a known libfabric
 * consumer sends, what usb4 answers (asserted attribute by attribute) or
 * the refusal and the reason it logs.  The hints are read from each
 * consumer's source (public copies in the code index); the comment above
 * each names repository, file, function and the copy read, and says so
 * where a set still comes from /work/shared/CONSUMERS.md's summary.
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
 * (ompi_mtl_ofi_component_init): API 1.5.
 * NOT read from a v4.1.x source: the code index holds open-mpi/ompi
 * copies from before 4.0 and from 5.0 on, none on the v4.1.x line, so
 * this set is still /work/shared/CONSUMERS.md's summary (issue 11). */
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
 * (mca_btl_ofi_component_init, one-sided mode): API 1.5.
 * NOT read from a v4.1.x source (see ompi41_mtl): CONSUMERS.md's summary. */
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

/* Open MPI 5.0.x, ompi/mca/mtl/ofi/mtl_ofi_component.c,
 * ompi_mtl_ofi_component_init, the hint block after "no_hmem:" (read in
 * open-mpi/ompi: the 5.0-line copy with *accelerator_support and no
 * shared domain, and main at a8fcaa81; the block is the same in both).
 * The tag itself could not be pinned: the index keeps copies by commit,
 * not by tag.  FI_HMEM with FI_MR_HMEM | FI_MR_ALLOCATED first, at API
 * 1.18 (-FI_ENOSYS on 1.17: then 1.9); on -FI_ENODATA it clears FI_HMEM
 * and FI_MR_HMEM only, so FI_MR_ALLOCATED stays.  Progress: the MCA
 * default "unspec" (FI_PROGRESS_UNSPEC); av "map"; cq_data_size
 * sizeof(int) under the default tag mode "auto"; FI_THREAD_DOMAIN without
 * MPI_THREAD_MULTIPLE. */
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

/* Open MPI, opal/mca/btl/ofi/btl_ofi_component.c,
 * mca_btl_ofi_component_init (open-mpi/ompi main at 007b52af, the copy
 * that passes opal_common_ofi's fabric and domain, as 5.0.10+ does):
 * MCA_BTL_OFI_REQUESTED_MR_MODE = ALLOCATED | PROV_KEY | VIRT_ADDR |
 * ENDPOINT; btl_ofi_mode 2 (FULL_SUPPORT) asks RMA, ATOMIC and MSG;
 * FI_THREAD_DOMAIN without MPI or progress threads; tx op_flags
 * DELIVERY_COMPLETE | COMPLETION, rx COMPLETION; progress from
 * btl_ofi_progress_mode ("unspec" -> FI_PROGRESS_UNSPEC); FI_HMEM first,
 * API 1.18 (-FI_ENOSYS on 1.17: then 1.9). */
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

/* The same function in the earlier 5.0-line copy of open-mpi/ompi (no
 * shared fabric or domain, what 5.0.x before 5.0.10 sends): no threading
 * hint (FI_THREAD_UNSPEC), tx op_flags FI_DELIVERY_COMPLETE alone, no rx
 * op_flags; the rest as ompi50_btl. */
static struct fi_info *ompi50_btl_early(bool hmem)
{
	struct fi_info *h = ompi50_btl(hmem);

	h->domain_attr->threading = FI_THREAD_UNSPEC;
	h->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
	h->rx_attr->op_flags = 0;
	return h;
}

/* ---- MPICH, Intel MPI, oneCCL, aws-ofi-nccl ----------------------------- */

/* MPICH, src/mpid/ch4/netmod/ofi/init_provider.c (find_provider, pmodels/
 * mpich at 56acb531) and init_settings.c (MPIDI_OFI_init_hints, at
 * 86671eec); the 5.0.x tag could not be pinned in the index.  With runtime
 * checks (the ch4:ofi build for any provider):
 *  1. fi_getinfo(version, NULL hints): the provider's full list;
 *  2. one is picked by the "default" (optimal) and "minimal" capability
 *     sets (MPIDI_OFI_match_provider: cq_data_size >= 4, FI_TAGGED,
 *     FI_MSG | FI_MULTI_RECV, FI_RMA, FI_ATOMICS with the four atomic
 *     orders in tx msg_order);
 *  3. hints from MPIDI_OFI_init_hints, then caps := the picked info's caps
 *     and prov_name := its name; retried with the picked info's tx
 *     msg_order, then its mr_mode;
 *  4. the answer's threading must be FI_THREAD_DOMAIN, or MPI_Init fails
 *     (**ofi_provider_mismatch).
 * version is fi_version() unless the set names one.  Set values (data,
 * tagged, AM, RMA, atomics, AV table, the three MR bits on; auto progress
 * off) are the default set as MPIDI_OFI_CAPABILITY_SETS_DEBUG showed it
 * (CONSUMERS.md): the index holds no copy of that table from the 4.x/5.x
 * line.  mem_tag_format is left 0: its masks come from that table too.
 * Intel MPI 2021.18 is closed source; its ch4 derives from MPICH and its
 * debug output shows the same sets, so this row stands for it as well. */
static struct fi_info *mpich_hints(const struct fi_info *picked)
{
	struct fi_info *h = hints_new();

	h->mode = FI_CONTEXT | FI_ASYNC_IOV | FI_RX_CQ_DATA | FI_CONTEXT2;
	h->caps = picked->caps;
	h->domain_attr->cq_data_size = 4;	/* MPIDI_OFI_MIN_CQ_DATA_SIZE */
	h->addr_format = FI_FORMAT_UNSPEC;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->domain_attr->data_progress = FI_PROGRESS_MANUAL;
	h->domain_attr->control_progress = FI_PROGRESS_MANUAL;
	h->domain_attr->resource_mgmt = FI_RM_ENABLED;
	h->domain_attr->av_type = FI_AV_TABLE;
	h->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				  FI_MR_PROV_KEY | FI_MR_ENDPOINT;
	h->domain_attr->mode = FI_RESTRICTED_COMP;
	h->tx_attr->op_flags = FI_COMPLETION | FI_DELIVERY_COMPLETE;
	h->tx_attr->msg_order = FI_ORDER_SAS | ATOMIC_ORDER;
	h->tx_attr->comp_order = FI_ORDER_NONE;
	h->rx_attr->op_flags = FI_COMPLETION;
	h->rx_attr->total_buffered_recv = 0;
	h->ep_attr->type = FI_EP_RDM;
	return h;
}

/* oneCCL, src/atl/ofi/atl_ofi.cpp (init: base_hints; the C++ copies with
 * global_data.fi_major/minor_version and CCL_ENABLE_OFI_HMEM, the line
 * 2021.x-2022.x is on; the 2022.1 tag could not be pinned): FI_CONTEXT,
 * RDM, FI_RM_ENABLED, manual control and data progress, caps FI_TAGGED
 * (older copies add FI_DIRECTED_RECV; FI_HMEM only with verbs).  No
 * av_type in the hints: FI_AV_TABLE goes to fi_av_open.  API from
 * CCL_ATL_OFI_MAJOR/MINOR_VERSION, 1.10 by default (CONSUMERS.md; the
 * default's definition is not in the index). */
static struct fi_info *oneccl(void)
{
	struct fi_info *h = hints_new();

	h->caps = FI_TAGGED;
	h->mode = FI_CONTEXT;
	h->ep_attr->type = FI_EP_RDM;
	h->domain_attr->resource_mgmt = FI_RM_ENABLED;
	h->domain_attr->control_progress = FI_PROGRESS_MANUAL;
	h->domain_attr->data_progress = FI_PROGRESS_MANUAL;
	return h;
}

/* aws-ofi-nccl (aws/aws-ofi-nccl), SENDRECV protocol: src/nccl_ofi_sendrecv.cpp
 * at 0b8bc0fa0b7ad26e31e15f0533e0f52028fad62a, sendrecv_get_hints and
 * nccl_net_ofi_sendrecv_init.  caps LOCAL_COMM | REMOTE_COMM | TAGGED |
 * MSG; mr_mode LOCAL | ENDPOINT, then VIRT_ADDR | ALLOCATED | PROV_KEY;
 * mr_key_size from OFI_NCCL_MR_KEY_SIZE (2 by default: include/
 * nccl_ofi_param.h at 2e5dfba97571ab784b9d967dc6a75c012407d149);
 * CONTEXT | CONTEXT2; RDM; FI_THREAD_SAFE; control and data progress from
 * OFI_NCCL_PROGRESS_MODEL (unset: FI_PROGRESS_UNSPEC, "the provider's
 * default", as the earlier copies of the function said outright; AUTO and
 * MANUAL when set); SAS both ways.  With req_gdr it adds FI_HMEM, FI_RMA |
 * FI_READ (cuda_flush off, the default) and FI_MR_HMEM.  Tries in order:
 * req_gdr at 1.20 (only when DMA-BUF is viable: a GPU), req_gdr at 1.18,
 * req_gdr at 1.6, then host-only at 1.6. */
static struct fi_info *nccl_sendrecv_gdr(bool gdr, enum fi_progress progress)
{
	struct fi_info *h = hints_new();

	h->caps = FI_LOCAL_COMM | FI_REMOTE_COMM | FI_TAGGED | FI_MSG;
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_ENDPOINT;
	h->domain_attr->mr_key_size = 2;
	if (gdr) {
		h->caps |= FI_HMEM | FI_RMA | FI_READ;
		h->domain_attr->mr_mode |= FI_MR_HMEM;
	}
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->ep_attr->type = FI_EP_RDM;
	h->domain_attr->threading = FI_THREAD_SAFE;
	h->domain_attr->control_progress = progress;
	h->domain_attr->data_progress = progress;
	h->domain_attr->mr_mode |= FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				   FI_MR_PROV_KEY;
	h->tx_attr->msg_order = FI_ORDER_SAS;
	h->rx_attr->msg_order = FI_ORDER_SAS;
	return h;
}

/* aws-ofi-nccl, RDMA protocol: src/nccl_ofi_rdma.cpp at
 * 8d3c29554fdb120cdb6efc49cb202d17bd025c3f, get_hints and
 * nccl_net_ofi_rdma_init.  caps MSG | RMA | HMEM, LOCAL_COMM |
 * REMOTE_COMM; CONTEXT | CONTEXT2; RDM; mr_mode LOCAL | HMEM | VIRT_ADDR |
 * ALLOCATED | PROV_KEY; mr_key_size as above; FI_THREAD_COMPLETION;
 * progress as above; cq_data_size 4 (fi_writedata's immediate data).  One
 * try only, FI_HMEM always, at API 1.20 with DMA-BUF viable, else 1.18;
 * no host-only fallback.  hmem false: the same set without FI_HMEM and
 * FI_MR_HMEM, what a host-memory build of the protocol would ask. */
static struct fi_info *nccl_rdma_hmem(bool hmem, enum fi_progress progress)
{
	struct fi_info *h = hints_new();

	h->caps = FI_MSG | FI_RMA | FI_LOCAL_COMM | FI_REMOTE_COMM;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->ep_attr->type = FI_EP_RDM;
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
				  FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	if (hmem) {
		h->caps |= FI_HMEM;
		h->domain_attr->mr_mode |= FI_MR_HMEM;
	}
	h->domain_attr->mr_key_size = 2;
	h->domain_attr->threading = FI_THREAD_COMPLETION;
	h->domain_attr->control_progress = progress;
	h->domain_attr->data_progress = progress;
	h->domain_attr->cq_data_size = 4;
	return h;
}

static struct fi_info *nccl_rdma(void)
{
	return nccl_rdma_hmem(true, FI_PROGRESS_UNSPEC);
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

	h = ompi50_btl_early(true);
	expect_refused("ompi 5.0 btl (early), FI_HMEM", FI_VERSION(1, 9), h,
		       "FI_HMEM asked");
	fi_freeinfo(h);
	h = ompi50_btl_early(false);
	info = expect_answer("ompi 5.0 btl (early)", FI_VERSION(1, 9), h);
	if (info) {
		CHECK(info->caps & FI_RMA && info->caps & FI_ATOMIC &&
		      info->caps & FI_MSG);
		CHECK_EQ(info->domain_attr->mr_mode, MR_BASIC_BITS);
		CHECK(info->tx_attr->op_flags & FI_DELIVERY_COMPLETE);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);
}

/* What MPICH's provider pick reads from the NULL-hints list. */
static void check_mpich_pick(const struct fi_info *p)
{
	CHECK_MSG(p->domain_attr->cq_data_size >= 4, "mpich pick: data");
	CHECK_MSG(p->caps & FI_TAGGED, "mpich pick: tagged");
	CHECK_EQ_MSG(p->caps & (FI_MSG | FI_MULTI_RECV), FI_MSG | FI_MULTI_RECV,
		     "mpich pick: active messages");
	CHECK_MSG(p->caps & FI_RMA, "mpich pick: rma");
	CHECK_MSG(p->caps & FI_ATOMIC, "mpich pick: atomics");
	CHECK_EQ_MSG(p->tx_attr->msg_order & ATOMIC_ORDER, ATOMIC_ORDER,
		     "mpich pick: atomic orders");
}

static void row_mpich(void)
{
	struct fi_info *picked, *h, *info;
	const char *log;

	/* Step 1: no hints at all, as find_provider asks. */
	CHECK_EQ(getinfo_logged(FI_VERSION(1, 17), NULL, &picked, &log), 0);
	if (!picked)
		return;
	CHECK_MSG(!strcmp(picked->fabric_attr->prov_name, "usb4"), "%s",
		  picked->fabric_attr->prov_name);
	check_mpich_pick(picked);

	/* Steps 3 and 4: the optimal hints are answered first time, with the
	 * threading MPI_Init checks. */
	h = mpich_hints(picked);
	info = expect_answer("mpich / impi", FI_VERSION(1, 17), h);
	if (info) {
		CHECK_EQ(info->domain_attr->threading, FI_THREAD_DOMAIN);
		CHECK_EQ(info->tx_attr->msg_order & (FI_ORDER_SAS | ATOMIC_ORDER),
			 FI_ORDER_SAS | ATOMIC_ORDER);
		/* MPICH bounds ordered accumulates by these; 0 would assert. */
		CHECK(info->ep_attr->max_order_waw_size >= 8);
		CHECK(info->ep_attr->max_order_raw_size >= 8);
		CHECK(info->ep_attr->max_order_war_size >= 8);
		CHECK_EQ(info->domain_attr->av_type, FI_AV_TABLE);
		/* FI_MR_ENDPOINT offered, not needed: left out. */
		CHECK_EQ(info->domain_attr->mr_mode, MR_BASIC_BITS);
		CHECK_EQ(info->domain_attr->data_progress, FI_PROGRESS_MANUAL);
		CHECK(info->caps & FI_MULTI_RECV);
		fi_freeinfo(info);
	}

	/* Not MPICH's hints: the provider's own limits, named when refused. */
	h->tx_attr->msg_order |= FI_ORDER_RAW;
	expect_refused("mpich, RMA RAW", FI_VERSION(1, 17), h,
		       "tx msg_order");
	h->tx_attr->msg_order &= ~FI_ORDER_RAW;
	h->ep_attr->max_order_waw_size = (size_t) 1 << 20;
	expect_refused("mpich, 1 MiB WAW", FI_VERSION(1, 17), h,
		       "max_order_waw_size");
	fi_freeinfo(h);
	fi_freeinfo(picked);
}

/* fi_av_open with FI_AV_TABLE on a domain whose info said another type. */
static void check_av_table_opens(struct fi_info *info)
{
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av = NULL;
	struct fi_av_attr attr = { .type = FI_AV_TABLE, .count = 16 };

	if (fi_fabric(info->fabric_attr, &fabric, NULL)) {
		CHECK_MSG(0, "fi_fabric");
		return;
	}
	if (fi_domain(fabric, info, &domain, NULL) == 0) {
		CHECK_EQ(fi_av_open(domain, &attr, &av, NULL), 0);
		if (av)
			fi_close(&av->fid);
		fi_close(&domain->fid);
	} else {
		CHECK_MSG(0, "fi_domain");
	}
	fi_close(&fabric->fid);
}

/* A request above the running libfabric's API never reaches a provider:
 * libfabric 1.17 answers -FI_ENOSYS itself; a newer one asks us, and the
 * answer must be the refusal named. */
static void expect_newer_api(const char *who, uint32_t version,
			     const struct fi_info *h, const char *reason)
{
	struct fi_info *info;
	const char *log;

	if (FI_VERSION_LT(fi_version(), version)) {
		CHECK_EQ_MSG(getinfo_logged(version, h, &info, &log),
			     -FI_ENOSYS, "%s: libfabric %u.%u", who,
			     FI_MAJOR(fi_version()), FI_MINOR(fi_version()));
		fi_freeinfo(info);
	} else {
		expect_refused(who, version, h, reason);
	}
}

/* The SENDRECV protocol's four tries: the three with FI_HMEM are refused
 * (usb4 moves host memory only: a GPU build would pass device buffers),
 * the host-only one is answered, whatever OFI_NCCL_PROGRESS_MODEL says. */
static void row_nccl_sendrecv(void)
{
	static const enum fi_progress progress[] = {
		FI_PROGRESS_UNSPEC, FI_PROGRESS_AUTO, FI_PROGRESS_MANUAL,
	};
	struct fi_info *h, *info;

	h = nccl_sendrecv_gdr(true, FI_PROGRESS_UNSPEC);
	expect_newer_api("aws-ofi-nccl sendrecv, gdr, 1.20", FI_VERSION(1, 20),
			 h, "FI_HMEM asked");
	expect_newer_api("aws-ofi-nccl sendrecv, gdr, 1.18", FI_VERSION(1, 18),
			 h, "FI_HMEM asked");
	expect_refused("aws-ofi-nccl sendrecv, gdr", FI_VERSION(1, 6), h,
		       "FI_HMEM asked");
	fi_freeinfo(h);

	for (size_t i = 0; i < sizeof(progress) / sizeof(progress[0]); i++) {
		h = nccl_sendrecv_gdr(false, progress[i]);
		info = expect_answer("aws-ofi-nccl sendrecv", FI_VERSION(1, 6),
				     h);
		if (info) {
			CHECK_EQ(info->domain_attr->mr_mode, MR_BASIC_BITS);
			CHECK_EQ(info->domain_attr->threading, FI_THREAD_SAFE);
			CHECK_EQ(info->caps & (FI_TAGGED | FI_MSG |
					       FI_REMOTE_COMM | FI_HMEM),
				 FI_TAGGED | FI_MSG | FI_REMOTE_COMM);
			CHECK(info->domain_attr->mr_key_size >= 2);
			if (progress[i] != FI_PROGRESS_UNSPEC)
				CHECK_EQ(info->domain_attr->data_progress,
					 progress[i]);
			CHECK(64 - __builtin_clzll(
				info->ep_attr->mem_tag_format) >= 33);
			CHECK(info->src_addrlen <= 56);
			fi_freeinfo(info);
		}
		fi_freeinfo(h);
	}
}

/* The RDMA protocol asks FI_HMEM, once, with no host-only try: refused
 * (the plugin then says "No eligible providers" and NCCL falls back to
 * the SENDRECV protocol when OFI_NCCL_PROTOCOL is not forced).  Without
 * FI_HMEM the same set is answered: RMA with 4 bytes of immediate data,
 * FI_THREAD_COMPLETION, no FI_MR_ENDPOINT (which the protocol refuses). */
static void row_nccl_rdma(void)
{
	struct fi_info *h = nccl_rdma(), *info;

	expect_newer_api("aws-ofi-nccl rdma, 1.20", FI_VERSION(1, 20), h,
			 "FI_HMEM asked");
	expect_newer_api("aws-ofi-nccl rdma, 1.18", FI_VERSION(1, 18), h,
			 "FI_HMEM asked");
	expect_refused("aws-ofi-nccl rdma at 1.17", FI_VERSION(1, 17), h,
		       "FI_HMEM asked");
	fi_freeinfo(h);

	h = nccl_rdma_hmem(false, FI_PROGRESS_UNSPEC);
	info = expect_answer("aws-ofi-nccl rdma, host memory",
			     FI_VERSION(1, 17), h);
	if (info) {
		CHECK_EQ(info->caps & (FI_MSG | FI_RMA | FI_HMEM),
			 FI_MSG | FI_RMA);
		CHECK(info->domain_attr->cq_data_size >= 4);
		CHECK_EQ(info->domain_attr->threading, FI_THREAD_COMPLETION);
		CHECK_EQ(info->domain_attr->mr_mode, MR_BASIC_BITS);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);
}

static void row_oneccl_nccl(void)
{
	struct fi_info *h = oneccl(), *info;

	info = expect_answer("oneccl 2022.1", FI_VERSION(1, 10), h);
	if (info) {
		CHECK(info->caps & FI_TAGGED);
		CHECK_EQ(info->domain_attr->data_progress, FI_PROGRESS_MANUAL);
		/* Not asked in the hints: oneCCL names FI_AV_TABLE at
		 * fi_av_open, which must take it. */
		check_av_table_opens(info);
		fi_freeinfo(info);
	}
	fi_freeinfo(h);

	row_nccl_sendrecv();
	row_nccl_rdma();
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
	/* Auto progress (the domain's progress thread) is offered when
	 * asked; an unknown model is refused with its reason. */
	h->domain_attr->data_progress = FI_PROGRESS_AUTO;
	h->domain_attr->mr_mode = 0;
	info = expect_answer("auto progress", FI_VERSION(1, 17), h);
	if (info)
		CHECK_EQ(info->domain_attr->data_progress, FI_PROGRESS_AUTO);
	fi_freeinfo(info);
	h->domain_attr->data_progress = (enum fi_progress) 7;
	expect_refused("unknown progress", FI_VERSION(1, 17), h,
		       "progress 7 unknown");
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
