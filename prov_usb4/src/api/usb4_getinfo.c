/*
 * fi_getinfo for usb4: one template fi_info describing what we offer, and the
 * filtering of an application's hints against it.
 *
 * libfabric's core does no attribute filtering for a core provider, so every
 * field of every attribute in the hints is looked at here.  The rules:
 *   - a hint of 0 (or *_UNSPEC) means "no preference";
 *   - a hint asking for more than we have, or for something we do not do,
 *     makes the whole answer -FI_ENODATA;
 *   - otherwise the returned info states what the objects will really be:
 *     our capability limits (max_msg_size, inject_size, iov_limit, counts)
 *     and the hint's choice where the hint picks a setting (queue sizes,
 *     threading, av_type, resource_mgmt, op_flags, mem_tag_format).
 * usb4_check_*() apply the same rules to the attributes handed back to
 * fi_fabric, fi_domain and fi_endpoint, which may have been edited since.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "usb4_api.h"
#include "usb4_atomic.h"


/* Limits of a domain.  Nothing is preallocated per count; they are caps we
 * promise to honour, generous enough for a node's worth of MPI ranks. */
#define USB4_DOMAIN_CQ_CNT	1024
#define USB4_DOMAIN_EP_CNT	1024
#define USB4_DOMAIN_CNTR_CNT	1024
#define USB4_DOMAIN_MR_CNT	usb4_params.mr_max
#define USB4_MR_KEY_SIZE	sizeof(uint64_t)
#define USB4_CQ_DATA_SIZE	sizeof(uint64_t)

/*
 * Capabilities.  Primary caps must be asked for to be granted (all of them
 * when the hints name none); FI_SEND/FI_RECV/FI_READ/FI_WRITE/FI_REMOTE_*
 * modify them; secondary caps we always report.  FI_REMOTE_COMM is offered now because Open MPI and aws-ofi-nccl require it;
 * the udp link that reaches other hosts lands in the next issue.
 */
#define USB4_PRIMARY_CAPS	(FI_MSG | FI_TAGGED | FI_RMA | FI_ATOMIC | \
				 FI_DIRECTED_RECV | FI_RMA_EVENT)
#define USB4_MODIFIER_CAPS	(FI_SEND | FI_RECV | FI_READ | FI_WRITE | \
				 FI_REMOTE_READ | FI_REMOTE_WRITE)
#define USB4_SECONDARY_CAPS	(FI_MULTI_RECV | FI_SOURCE | FI_LOCAL_COMM | \
				 FI_REMOTE_COMM)
#define USB4_CAPS		(USB4_PRIMARY_CAPS | USB4_MODIFIER_CAPS | \
				 USB4_SECONDARY_CAPS)
#define USB4_TX_CAPS		(FI_MSG | FI_TAGGED | FI_SEND | FI_RMA | \
				 FI_ATOMIC | FI_READ | FI_WRITE)
#define USB4_RX_CAPS		(FI_MSG | FI_TAGGED | FI_RECV | FI_RMA | \
				 FI_ATOMIC | FI_REMOTE_READ | FI_REMOTE_WRITE | \
				 FI_RMA_EVENT | FI_DIRECTED_RECV | \
				 FI_MULTI_RECV | FI_SOURCE)
#define USB4_DOMAIN_CAPS	(FI_LOCAL_COMM | FI_REMOTE_COMM)

/*
 * Caps libfabric 2.0 put on bits that 1.x used for other things
 * (FI_HMEM_HOST_ALLOC, FI_VARIABLE_MSG), so they mean these only to a
 * caller of API 2.0 or later; spelled because 1.17 headers lack them.
 * FI_TAGGED_DIRECTED_RECV: directed receive for tagged messages, which we
 * match by source like any directed receive; FI_EXACT_DIRECTED_RECV: the
 * caller promises never to receive from FI_ADDR_UNSPEC, which asks nothing
 * of us.  FI_TAGGED_MULTI_RECV (bit 46) is not offered.
 */
#define USB4_CAP_TAGGED_DIRECTED_RECV	(1ULL << 45)
#define USB4_CAP_EXACT_DIRECTED_RECV	(1ULL << 48)
#define USB4_API2_CAPS		(USB4_CAP_TAGGED_DIRECTED_RECV | \
				 USB4_CAP_EXACT_DIRECTED_RECV)

/* The caps we offer a caller of API version. */
static uint64_t usb4_caps_at(uint32_t version)
{
	return USB4_CAPS | (FI_VERSION_GE(version, FI_VERSION(2, 0)) ?
			    USB4_API2_CAPS : 0);
}

/* Default operation flags an endpoint accepts (man fi_endpoint). */
#define USB4_TX_OP_FLAGS	(FI_COMPLETION | FI_INJECT | \
				 FI_INJECT_COMPLETE | FI_TRANSMIT_COMPLETE | \
				 FI_DELIVERY_COMPLETE)
#define USB4_RX_OP_FLAGS	(FI_COMPLETION | FI_MULTI_RECV)

/*
 * Ordering between two endpoints, kept over every link (a peer is reached
 * by one link, chosen at fi_av_insert, so we offer what all of them keep):
 *   - sends: one sender's messages reach the receiver's matching in the
 *     order sent (the shm inbox is FIFO per sender; the udp link hands a
 *     peer's frames up in sequence and holds back all of them behind one
 *     the core cannot take yet), rendezvous requests included: FI_ORDER_SAS;
 *   - atomics: over shm the initiator executes each one under the target's
 *     atomics lock before the call returns; over udp each is one request
 *     frame, executed by the target as it is handed up, in that same
 *     sequence.  Either way atomics to one peer run in issue order:
 *     FI_ORDER_ATOMIC_RAR/RAW/WAR/WAW (what MPICH and Intel MPI ask for).
 * Not kept: RMA over udp is a rendezvous (request, CTS, data), so a read or
 * an atomic issued after a write is served before the write's bytes land
 * (no RAR/RAW/WAR/WAW, no RMA_*), and a send is matched before those bytes
 * land (no SAW/SAR).  Over shm an RMA lands before an earlier send is
 * matched (no WAS/RAS).  No completion order is promised.
 */
#ifdef FI_ORDER_ATOMIC_RAR
#define USB4_ATOMIC_ORDER	(FI_ORDER_ATOMIC_RAR | FI_ORDER_ATOMIC_RAW | \
				 FI_ORDER_ATOMIC_WAR | FI_ORDER_ATOMIC_WAW)
#else
#define USB4_ATOMIC_ORDER	0ULL
#endif
#define USB4_MSG_ORDER		(FI_ORDER_SAS | USB4_ATOMIC_ORDER)
#define USB4_COMP_ORDER		0ULL
/*
 * max_order_raw/war/waw_size: the largest operations whose data ordering
 * holds.  It holds for atomics of every size we take, and atomics are the
 * only operations the order bits above cover; consumers read the sizes for
 * exactly that (MPICH bounds its native accumulates by them, and asserts on
 * 0 when it asked for ordered accumulates).
 */
#define USB4_ORDER_SIZE		USB4_ATOMIC_MAX_BYTES

/* Memory registration modes we can honour if the application offers them.
 * We never need any mode: FI_MR_LOCAL, FI_MR_ENDPOINT, FI_MR_RAW, FI_MR_HMEM
 * and the rest an application offers are left out of the answer (Open MPI's
 * btl ofi rejects an answer holding LOCAL, ENDPOINT or HMEM). */
#define USB4_MR_MODE_OFFERED	(FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | \
				 FI_MR_PROV_KEY)
/*
 * Before API 1.5 mr_mode was an enum: 0 unspecified, 1 basic, 2 scalable
 * (USB4_MR_BASIC, USB4_MR_SCALABLE: the names are gone in libfabric 2.x).
 * From 1.5 on the same two values may still be passed, each alone, meaning
 * the same thing.  As libfabric's own providers answer: an old caller with
 * no preference gets scalable (we need no mode bit), a named basic or
 * scalable is echoed, and fi_domain maps basic to its bits
 * (usb4_mr_mode_bits).
 */

/* All 64 tag bits are matched; Open MPI counts usable bits from bit 63. */
#define USB4_MEM_TAG_FORMAT	UINT64_MAX

/* Every check logs why it refused, so FI_LOG_LEVEL=info explains -FI_ENODATA. */
#define USB4_REFUSE(...) do { \
	USB4_INFO(FI_LOG_CORE, __VA_ARGS__); \
	return -FI_ENODATA; \
} while (0)

/* ---- checks ------------------------------------------------------------- */

static int usb4_check_name(const char *name, const char *ours, const char *what)
{
	if (name && strcasecmp(name, ours))
		USB4_REFUSE("%s name '%s' is not '%s'\n", what, name, ours);
	return 0;
}

int usb4_check_fabric_attr(const struct fi_fabric_attr *attr)
{
	int ret;

	if (!attr)
		return 0;
	ret = usb4_check_name(attr->name, USB4_FABRIC_NAME, "fabric");
	if (ret)
		return ret;
	ret = usb4_check_name(attr->prov_name, USB4_PROV_NAME, "provider");
	if (ret)
		return ret;
	if (attr->api_version &&
	    FI_VERSION_LT(usb4_api_version(), attr->api_version))
		USB4_REFUSE("api_version %u.%u newer than ours\n",
			    FI_MAJOR(attr->api_version),
			    FI_MINOR(attr->api_version));
	return 0;
}

/* Manual unless asked: progress inside the caller's calls, and the
 * domain's progress thread (usb4_progress.c) for endpoints that reach
 * other hosts.  FI_PROGRESS_AUTO gives every endpoint the thread. */
static int usb4_check_progress(enum fi_progress progress, const char *what)
{
	if (progress == FI_PROGRESS_AUTO && !usb4_params.progress_idle_ms)
		USB4_REFUSE("%s progress FI_PROGRESS_AUTO: no progress thread "
			    "(FI_USB4_PROGRESS_IDLE_MS=0)\n", what);
	if (progress != FI_PROGRESS_UNSPEC && progress != FI_PROGRESS_MANUAL &&
	    progress != FI_PROGRESS_AUTO)
		USB4_REFUSE("%s progress %d unknown\n", what, progress);
	return 0;
}

static int usb4_check_domain_modes(const struct fi_domain_attr *attr)
{
	switch (attr->threading) {
	case FI_THREAD_UNSPEC: case FI_THREAD_SAFE: case FI_THREAD_FID:
	case FI_THREAD_DOMAIN: case FI_THREAD_COMPLETION:
	case FI_THREAD_ENDPOINT:
		break;
	default:
		USB4_REFUSE("threading %d unknown\n", attr->threading);
	}
	if (usb4_check_progress(attr->control_progress, "control") ||
	    usb4_check_progress(attr->data_progress, "data"))
		return -FI_ENODATA;
	if (attr->resource_mgmt != FI_RM_UNSPEC &&
	    attr->resource_mgmt != FI_RM_ENABLED &&
	    attr->resource_mgmt != FI_RM_DISABLED)
		USB4_REFUSE("resource_mgmt %d unknown\n", attr->resource_mgmt);
	if (attr->av_type != FI_AV_UNSPEC && attr->av_type != FI_AV_MAP &&
	    attr->av_type != FI_AV_TABLE)
		USB4_REFUSE("av_type %d unknown\n", attr->av_type);
	if (attr->auth_key_size > USB4_CORE_KEY_MAX ||
	    (attr->auth_key_size && !attr->auth_key))
		USB4_REFUSE("domain auth_key of %zu bytes: 1 to %d taken\n",
			    attr->auth_key_size, USB4_CORE_KEY_MAX);
	if (attr->caps & ~USB4_DOMAIN_CAPS)
		USB4_REFUSE("domain caps 0x%llx not offered\n", (unsigned long long)
			    (attr->caps & ~USB4_DOMAIN_CAPS));
	return 0;
}

/* Refuses a hint above our limit; 0 means "no preference". */
#define USB4_CHECK_MAX(attr, field, limit) do { \
	if ((attr)->field > (limit)) \
		USB4_REFUSE(#field " %zu above our %zu\n", \
			    (size_t) (attr)->field, (size_t) (limit)); \
} while (0)

static int usb4_check_domain_limits(const struct fi_domain_attr *attr)
{
	USB4_CHECK_MAX(attr, mr_key_size, USB4_MR_KEY_SIZE);
	USB4_CHECK_MAX(attr, cq_data_size, USB4_CQ_DATA_SIZE);
	USB4_CHECK_MAX(attr, cq_cnt, USB4_DOMAIN_CQ_CNT);
	USB4_CHECK_MAX(attr, ep_cnt, USB4_DOMAIN_EP_CNT);
	USB4_CHECK_MAX(attr, tx_ctx_cnt, USB4_DOMAIN_EP_CNT);
	USB4_CHECK_MAX(attr, rx_ctx_cnt, USB4_DOMAIN_EP_CNT);
	USB4_CHECK_MAX(attr, max_ep_tx_ctx, 1);
	USB4_CHECK_MAX(attr, max_ep_rx_ctx, 1);
	USB4_CHECK_MAX(attr, max_ep_stx_ctx, 0);
	USB4_CHECK_MAX(attr, max_ep_srx_ctx, 0);
	USB4_CHECK_MAX(attr, cntr_cnt, USB4_DOMAIN_CNTR_CNT);
	USB4_CHECK_MAX(attr, mr_iov_limit, USB4_IOV_LIMIT);
	USB4_CHECK_MAX(attr, max_err_data, 0);
	USB4_CHECK_MAX(attr, mr_cnt, USB4_DOMAIN_MR_CNT);
	return 0;
}

int usb4_check_domain_attr(const struct fi_domain_attr *attr)
{
	int ret;

	if (!attr)
		return 0;
	ret = usb4_check_name(attr->name, USB4_DOMAIN_NAME, "domain");
	if (ret)
		return ret;
	ret = usb4_check_domain_modes(attr);
	if (ret)
		return ret;
	return usb4_check_domain_limits(attr);
}

static int usb4_check_tx_attr(const struct fi_tx_attr *attr)
{
	if (!attr)
		return 0;
	if (attr->caps & ~USB4_TX_CAPS)
		USB4_REFUSE("tx caps 0x%llx not offered\n", (unsigned long long)
			    (attr->caps & ~USB4_TX_CAPS));
	if (attr->op_flags & ~USB4_TX_OP_FLAGS)
		USB4_REFUSE("tx op_flags 0x%llx not supported\n",
			    (unsigned long long)
			    (attr->op_flags & ~USB4_TX_OP_FLAGS));
	if (attr->msg_order & ~USB4_MSG_ORDER)
		USB4_REFUSE("tx msg_order 0x%llx not kept\n",
			    (unsigned long long) attr->msg_order);
	if (attr->comp_order & ~USB4_COMP_ORDER)
		USB4_REFUSE("tx comp_order 0x%llx not kept\n",
			    (unsigned long long) attr->comp_order);
	USB4_CHECK_MAX(attr, inject_size, usb4_params.eager_size);
	USB4_CHECK_MAX(attr, size, usb4_params.tx_size);
	USB4_CHECK_MAX(attr, iov_limit, USB4_IOV_LIMIT);
	USB4_CHECK_MAX(attr, rma_iov_limit, USB4_IOV_LIMIT);
	return 0;
}

static int usb4_check_rx_attr(const struct fi_rx_attr *attr, uint64_t offered)
{
	uint64_t rx_caps = USB4_RX_CAPS | (offered & USB4_API2_CAPS);

	if (!attr)
		return 0;
	if (attr->caps & ~rx_caps)
		USB4_REFUSE("rx caps 0x%llx not offered\n", (unsigned long long)
			    (attr->caps & ~rx_caps));
	if (attr->op_flags & ~USB4_RX_OP_FLAGS)
		USB4_REFUSE("rx op_flags 0x%llx not supported\n",
			    (unsigned long long)
			    (attr->op_flags & ~USB4_RX_OP_FLAGS));
	if (attr->msg_order & ~USB4_MSG_ORDER)
		USB4_REFUSE("rx msg_order 0x%llx not kept\n",
			    (unsigned long long) attr->msg_order);
	if (attr->comp_order & ~USB4_COMP_ORDER)
		USB4_REFUSE("rx comp_order 0x%llx not kept\n",
			    (unsigned long long) attr->comp_order);
	/* total_buffered_recv is a hint we may adjust (man fi_endpoint):
	 * unexpected messages are buffered without a fixed budget. */
	USB4_CHECK_MAX(attr, size, usb4_params.rx_size);
	USB4_CHECK_MAX(attr, iov_limit, USB4_IOV_LIMIT);
	return 0;
}

static int usb4_check_ep_attr(const struct fi_ep_attr *attr)
{
	if (!attr)
		return 0;
	if (attr->type != FI_EP_UNSPEC && attr->type != FI_EP_RDM)
		USB4_REFUSE("ep type %d: only FI_EP_RDM\n", attr->type);
	if (attr->protocol != FI_PROTO_UNSPEC)
		USB4_REFUSE("protocol %u not ours\n", attr->protocol);
	USB4_CHECK_MAX(attr, max_msg_size, USB4_MAX_MSG_SIZE);
	USB4_CHECK_MAX(attr, msg_prefix_size, 0);
	USB4_CHECK_MAX(attr, max_order_raw_size, USB4_ORDER_SIZE);
	USB4_CHECK_MAX(attr, max_order_war_size, USB4_ORDER_SIZE);
	USB4_CHECK_MAX(attr, max_order_waw_size, USB4_ORDER_SIZE);
	/* One context each way; FI_SHARED_CONTEXT (SIZE_MAX) fails here too. */
	USB4_CHECK_MAX(attr, tx_ctx_cnt, 1);
	USB4_CHECK_MAX(attr, rx_ctx_cnt, 1);
	if (attr->auth_key_size > USB4_CORE_KEY_MAX ||
	    (attr->auth_key_size && !attr->auth_key))
		USB4_REFUSE("ep auth_key of %zu bytes: 1 to %d taken\n",
			    attr->auth_key_size, USB4_CORE_KEY_MAX);
	/* Any mem_tag_format fits in our 64 matched bits. */
	return 0;
}

static int usb4_check_info_top(const struct fi_info *info, uint64_t offered)
{
	if (info->caps & ~offered)
		USB4_REFUSE("caps 0x%llx not offered\n", (unsigned long long)
			    (info->caps & ~offered));
	if (usb4_check_info_addrs(info))
		return -FI_ENODATA;
	/* No passive endpoints or connection requests on RDM. */
	if (info->handle)
		USB4_REFUSE("handle given: no connection management\n");
	return 0;
}

/* Capabilities asked for that we lack, refused with the reason a user can
 * act on (the generic caps check would only say "not offered"). */
static int usb4_check_caps_lacking(const struct fi_info *info)
{
	uint64_t caps = info->caps |
			(info->tx_attr ? info->tx_attr->caps : 0) |
			(info->rx_attr ? info->rx_attr->caps : 0) |
			(info->domain_attr ? info->domain_attr->caps : 0);

	if (caps & FI_HMEM)
		USB4_REFUSE("FI_HMEM asked: usb4 moves host memory only\n");
	return 0;
}

/* Hints of a caller of API version. */
static int usb4_check_ep_info_at(const struct fi_info *info, uint32_t version)
{
	uint64_t offered = usb4_caps_at(version);

	if (!info)
		return 0;
	if (usb4_check_caps_lacking(info) ||
	    usb4_check_info_top(info, offered) ||
	    usb4_check_tx_attr(info->tx_attr) ||
	    usb4_check_rx_attr(info->rx_attr, offered) ||
	    usb4_check_ep_attr(info->ep_attr) ||
	    usb4_check_domain_attr(info->domain_attr) ||
	    usb4_check_fabric_attr(info->fabric_attr))
		return -FI_ENODATA;
	return 0;
}

/* An info handed to fi_domain/fi_endpoint: read at the running API. */
int usb4_check_ep_info(const struct fi_info *info)
{
	return usb4_check_ep_info_at(info, usb4_api_version());
}

/* ---- the answer ---------------------------------------------------------- */

/* What fi_getinfo returns for NULL hints. */
static int usb4_fill_template(struct fi_info *info, uint32_t version)
{
	uint64_t tagged_directed = usb4_caps_at(version) &
				   USB4_CAP_TAGGED_DIRECTED_RECV;

	info->caps = USB4_CAPS | tagged_directed;
	info->mode = 0;
	info->addr_format = FI_FORMAT_UNSPEC;
	*info->tx_attr = (struct fi_tx_attr) {
		.caps = USB4_TX_CAPS, .msg_order = USB4_MSG_ORDER,
		.comp_order = USB4_COMP_ORDER,
		.inject_size = usb4_params.eager_size,
		.size = usb4_params.tx_size, .iov_limit = USB4_IOV_LIMIT,
		.rma_iov_limit = USB4_IOV_LIMIT,
	};
	*info->rx_attr = (struct fi_rx_attr) {
		.caps = USB4_RX_CAPS | tagged_directed, .msg_order = USB4_MSG_ORDER,
		.comp_order = USB4_COMP_ORDER,
		.size = usb4_params.rx_size, .iov_limit = USB4_IOV_LIMIT,
	};
	*info->ep_attr = (struct fi_ep_attr) {
		.type = FI_EP_RDM, .protocol = FI_PROTO_UNSPEC,
		.protocol_version = USB4_WIRE_VERSION,
		.max_msg_size = USB4_MAX_MSG_SIZE,
		.max_order_raw_size = USB4_ORDER_SIZE,
		.max_order_war_size = USB4_ORDER_SIZE,
		.max_order_waw_size = USB4_ORDER_SIZE,
		.mem_tag_format = USB4_MEM_TAG_FORMAT,
		.tx_ctx_cnt = 1, .rx_ctx_cnt = 1,
	};
	info->fabric_attr->api_version = version;
	info->fabric_attr->prov_version = USB4_PROV_VERSION;
	info->fabric_attr->name = strdup(USB4_FABRIC_NAME);
	info->domain_attr->name = strdup(USB4_DOMAIN_NAME);
	if (!info->fabric_attr->name || !info->domain_attr->name)
		return -FI_ENOMEM;
	return 0;
}

static void usb4_fill_domain_template(struct fi_domain_attr *attr)
{
	attr->threading = FI_THREAD_SAFE;
	attr->control_progress = FI_PROGRESS_MANUAL;
	attr->data_progress = FI_PROGRESS_MANUAL;
	attr->resource_mgmt = FI_RM_ENABLED;
	attr->av_type = FI_AV_MAP;
	attr->mr_mode = 0;
	attr->mr_key_size = USB4_MR_KEY_SIZE;
	attr->cq_data_size = USB4_CQ_DATA_SIZE;
	attr->cq_cnt = USB4_DOMAIN_CQ_CNT;
	attr->ep_cnt = USB4_DOMAIN_EP_CNT;
	attr->tx_ctx_cnt = USB4_DOMAIN_EP_CNT;
	attr->rx_ctx_cnt = USB4_DOMAIN_EP_CNT;
	attr->max_ep_tx_ctx = 1;
	attr->max_ep_rx_ctx = 1;
	attr->cntr_cnt = USB4_DOMAIN_CNTR_CNT;
	attr->mr_iov_limit = USB4_IOV_LIMIT;
	attr->caps = USB4_DOMAIN_CAPS;
	attr->mr_cnt = USB4_DOMAIN_MR_CNT;
}

/*
 * Granted caps: the primary caps asked for (all of ours if none named), the
 * modifiers asked for (both if none named), and every secondary cap.
 */
static uint64_t usb4_narrow_caps(uint64_t want, uint32_t version)
{
	uint64_t offered = usb4_caps_at(version);
	uint64_t all_primary = USB4_PRIMARY_CAPS |
			       (offered & USB4_CAP_TAGGED_DIRECTED_RECV);
	uint64_t primary = want & all_primary;
	uint64_t modifiers = want & USB4_MODIFIER_CAPS;

	if (!primary)
		primary = all_primary;
	if (!modifiers)
		modifiers = USB4_MODIFIER_CAPS;
	/* A promise, granted only to whoever makes it. */
	return primary | modifiers | USB4_SECONDARY_CAPS |
	       (want & offered & USB4_CAP_EXACT_DIRECTED_RECV);
}

/* A 1.0 mode (basic or scalable) named alone, or 0 before 1.5. */
static int usb4_narrow_mr_mode_old(uint32_t version, int want,
				   int *mr_mode)
{
	if (want != 0 && want != USB4_MR_BASIC && want != USB4_MR_SCALABLE)
		USB4_REFUSE("mr_mode 0x%x at api %u.%u: basic (1) and scalable "
			    "(2) are named alone\n", want, FI_MAJOR(version),
			    FI_MINOR(version));
	*mr_mode = want ? want : USB4_MR_SCALABLE;
	return 0;
}

/*
 * mr_mode for hints.  From 1.5 on: what the caller offers among the modes we
 * can honour, 0 if none.  The 1.0 values: see USB4_MR_OLD_API.
 */
static int usb4_narrow_mr_mode(uint32_t version, int want, int *mr_mode)
{
	if (usb4_mr_mode_is_old(version, want))
		return usb4_narrow_mr_mode_old(version, want, mr_mode);
	*mr_mode = want & USB4_MR_MODE_OFFERED;
	return 0;
}

/* A hint's setting where it chose one, else ours. */
#define USB4_PICK(out, hint, field) do { \
	if ((hint)->field) \
		(out)->field = (hint)->field; \
} while (0)

static void usb4_narrow_domain(struct fi_domain_attr *out,
			       const struct fi_domain_attr *hint)
{
	USB4_PICK(out, hint, threading);
	USB4_PICK(out, hint, control_progress);
	USB4_PICK(out, hint, data_progress);
	USB4_PICK(out, hint, resource_mgmt);
	USB4_PICK(out, hint, av_type);
	/* cq_data_size and the counts stay ours: they are capabilities. */
	if (hint->caps)
		out->caps = hint->caps;
}

static void usb4_narrow_ep(struct fi_info *out, const struct fi_info *hint)
{
	if (hint->tx_attr) {
		USB4_PICK(out->tx_attr, hint->tx_attr, op_flags);
		USB4_PICK(out->tx_attr, hint->tx_attr, size);
		if (hint->tx_attr->caps)
			out->tx_attr->caps &= hint->tx_attr->caps;
	}
	if (hint->rx_attr) {
		USB4_PICK(out->rx_attr, hint->rx_attr, op_flags);
		USB4_PICK(out->rx_attr, hint->rx_attr, size);
		USB4_PICK(out->rx_attr, hint->rx_attr, total_buffered_recv);
		if (hint->rx_attr->caps)
			out->rx_attr->caps &= hint->rx_attr->caps;
	}
	if (hint->ep_attr)
		USB4_PICK(out->ep_attr, hint->ep_attr, mem_tag_format);
	out->tx_attr->caps &= out->caps;
	out->rx_attr->caps &= out->caps;
}

int usb4_info_dup(const void *src, size_t len, void **out, size_t *out_len)
{
	if (!len)
		return 0;
	*out = malloc(len);
	if (!*out)
		return -FI_ENOMEM;
	memcpy(*out, src, len);
	*out_len = len;
	return 0;
}

/* A job key the hints carry goes into the info (fi_domain and fi_endpoint
 * take it from there). */
static int usb4_copy_key(uint8_t **out, size_t *out_size, const uint8_t *key,
			 size_t size)
{
	void *copy = NULL;
	int ret = usb4_info_dup(key, size, &copy, out_size);

	*out = copy;
	return ret;
}

static int usb4_copy_keys(struct fi_info *out, const struct fi_info *hint)
{
	int ret = 0;

	if (hint->domain_attr)
		ret = usb4_copy_key(&out->domain_attr->auth_key,
				    &out->domain_attr->auth_key_size,
				    hint->domain_attr->auth_key,
				    hint->domain_attr->auth_key_size);
	if (!ret && hint->ep_attr)
		ret = usb4_copy_key(&out->ep_attr->auth_key,
				    &out->ep_attr->auth_key_size,
				    hint->ep_attr->auth_key,
				    hint->ep_attr->auth_key_size);
	return ret;
}

static int usb4_narrow(struct fi_info *out, const struct fi_info *hint,
		       uint32_t version)
{
	int ret;

	if (hint->caps)
		out->caps = usb4_narrow_caps(hint->caps, version);
	if (hint->domain_attr) {
		ret = usb4_narrow_mr_mode(version, hint->domain_attr->mr_mode,
					  &out->domain_attr->mr_mode);
		if (ret)
			return ret;
		usb4_narrow_domain(out->domain_attr, hint->domain_attr);
	} else if (FI_VERSION_LT(version, USB4_MR_OLD_API)) {
		out->domain_attr->mr_mode = USB4_MR_SCALABLE;
	}
	usb4_narrow_ep(out, hint);
	/* A domain or fabric the hints name answers with what it really is. */
	ret = usb4_narrow_shared(out, hint, version);
	return ret ? ret : usb4_copy_keys(out, hint);
}

static int usb4_check_call(uint32_t version, const char *node,
			   const char *service)
{
	if (FI_VERSION_LT(usb4_api_version(), version))
		USB4_REFUSE("api %u.%u newer than ours\n", FI_MAJOR(version),
			    FI_MINOR(version));
	return 0;
}

/* FI_REMOTE_COMM asked for, in the info's or the domain's caps. */
static bool usb4_wants_remote(const struct fi_info *hints)
{
	if (!hints)
		return false;
	return (hints->caps & FI_REMOTE_COMM) ||
	       (hints->domain_attr && (hints->domain_attr->caps & FI_REMOTE_COMM));
}

/*
 * Without an interface to other hosts (FI_USB4_IFACE, or a thunderbolt-net
 * interface that is up) only same-host peers are reachable: hints asking for
 * remote peers are refused (an info lacking the bit they asked for would be
 * a different answer than they asked), and FI_REMOTE_COMM is dropped from
 * an answer to hints that did not ask.
 */
static int usb4_limit_to_host(struct fi_info *info, const struct fi_info *hints)
{
	if (usb4_core_reaches_other_hosts())
		return 0;
	if (usb4_wants_remote(hints))
		USB4_REFUSE("FI_REMOTE_COMM asked, but no interface reaches "
			    "other hosts: set FI_USB4_IFACE or connect a "
			    "thunderbolt-net link\n");
	USB4_INFO(FI_LOG_CORE, "no interface reaches other hosts (set "
		  "FI_USB4_IFACE, or connect a thunderbolt-net link): same-host "
		  "peers only\n");
	info->caps &= ~FI_REMOTE_COMM;
	info->domain_attr->caps &= ~FI_REMOTE_COMM;
	return 0;
}

int usb4_getinfo(uint32_t version, const char *node, const char *service,
		 uint64_t flags, const struct fi_info *hints,
		 struct fi_info **info)
{
	struct fi_info *out;
	int ret;

	*info = NULL;
	ret = usb4_check_call(version, node, service);
	if (!ret && hints)
		ret = usb4_check_ep_info_at(hints, version);
	if (ret)
		return ret;
	out = usb4_allocinfo();
	if (!out)
		return -FI_ENOMEM;
	usb4_fill_domain_template(out->domain_attr);
	ret = usb4_fill_template(out, version);
	if (!ret && hints)
		ret = usb4_narrow(out, hints, version);
	if (!ret)
		ret = usb4_getinfo_addr(node, service, flags, hints, out);
	if (!ret)
		ret = usb4_limit_to_host(out, hints);
	if (ret) {
		usb4_freeinfo(out);
		return ret;
	}
	*info = out;
	return 0;
}
