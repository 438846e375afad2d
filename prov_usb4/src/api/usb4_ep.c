/*
 * fi_endpoint (FI_EP_RDM): binding, enabling, names, options, cancel.
 * The data path lives in usb4_msg.c and usb4_tagged.c.
 */
#include <stdlib.h>
#include <string.h>

#include "usb4_api.h"

static struct usb4_ep *ep_of_fid(struct fid *fid)
{
	return usb4_container_of(fid, struct usb4_ep, ep_fid.fid);
}

/* One CQ per direction and one counter per event, as libfabric's util
 * code enforces: a second would leave the first pointing at us. */
static int bind_cq(struct usb4_ep *ep, struct usb4_cq *cq, uint64_t flags)
{
	int ret;

	if (flags & ~(FI_TRANSMIT | FI_RECV | FI_SELECTIVE_COMPLETION))
		return -FI_EBADFLAGS;
	if (((flags & FI_TRANSMIT) && ep->tx_cq) ||
	    ((flags & FI_RECV) && ep->rx_cq))
		return -FI_EINVAL;
	ret = usb4_ep_set_add(&cq->eps, &ep->core);
	if (ret)
		return ret;
	if (flags & FI_TRANSMIT) {
		ep->tx_cq = cq;
		ep->core.tx_cq = &cq->queue;
		ep->tx_selective = flags & FI_SELECTIVE_COMPLETION;
		atomic_fetch_add(&cq->ref, 1);
	}
	if (flags & FI_RECV) {
		ep->rx_cq = cq;
		ep->core.rx_cq = &cq->queue;
		ep->rx_selective = flags & FI_SELECTIVE_COMPLETION;
		atomic_fetch_add(&cq->ref, 1);
	}
	return 0;
}

/* The counters an endpoint can bind: its slot here and in the core. */
static const uint64_t cntr_flags[USB4_EP_CNTRS] = {
	FI_SEND, FI_RECV, FI_READ, FI_WRITE, FI_REMOTE_READ, FI_REMOTE_WRITE,
};

static struct usb4_counter **core_cntr_slot(struct usb4_ep *ep, int i)
{
	struct usb4_counter **slots[USB4_EP_CNTRS] = {
		&ep->core.tx_cntr, &ep->core.rx_cntr,
		&ep->core.rd_cntr, &ep->core.wr_cntr,
		&ep->core.rem_rd_cntr, &ep->core.rem_wr_cntr,
	};

	return slots[i];
}

static int bind_cntr(struct usb4_ep *ep, struct usb4_cntr *cntr, uint64_t flags)
{
	int ret;

	if (flags & ~(FI_SEND | FI_RECV | FI_READ | FI_WRITE |
		      FI_REMOTE_READ | FI_REMOTE_WRITE))
		return -FI_EBADFLAGS;
	for (int i = 0; i < USB4_EP_CNTRS; i++)
		if ((flags & cntr_flags[i]) && ep->cntrs[i])
			return -FI_EINVAL;
	ret = usb4_ep_set_add(&cntr->eps, &ep->core);
	if (ret)
		return ret;
	for (int i = 0; i < USB4_EP_CNTRS; i++) {
		if (!(flags & cntr_flags[i]))
			continue;
		ep->cntrs[i] = cntr;
		*core_cntr_slot(ep, i) = &cntr->counter;
		atomic_fetch_add(&cntr->ref, 1);
	}
	return 0;
}

static int ep_bind(struct fid *fid, struct fid *bfid, uint64_t flags)
{
	struct usb4_ep *ep = ep_of_fid(fid);
	int ret = 0;

	if (ep->enabled)
		return -FI_EOPBADSTATE;
	usb4_lock_acquire(&ep->domain->lock);
	switch (bfid->fclass) {
	case FI_CLASS_AV:
		if (ep->av) {
			ret = -FI_EINVAL;
			break;
		}
		ep->av = usb4_container_of(bfid, struct usb4_av, av_fid.fid);
		ep->core.av = &ep->av->core;
		atomic_fetch_add(&ep->av->ref, 1);
		break;
	case FI_CLASS_CQ:
		ret = bind_cq(ep, usb4_container_of(bfid, struct usb4_cq,
						    cq_fid.fid), flags);
		break;
	case FI_CLASS_CNTR:
		ret = bind_cntr(ep, usb4_container_of(bfid, struct usb4_cntr,
						      cntr_fid.fid), flags);
		break;
	case FI_CLASS_EQ:
		if (ep->eq) {
			ret = -FI_EINVAL;
			break;
		}
		ep->eq = (struct usb4_eq *) bfid;
		usb4_eq_hold(ep->eq);
		break;
	default:
		ret = -FI_EINVAL;
	}
	usb4_lock_release(&ep->domain->lock);
	return ret;
}

static int ep_enable(struct usb4_ep *ep)
{
	int ret;

	if (!ep->av)
		return -FI_ENOAV;
	if ((!ep->tx_cq && !ep->cntrs[0]) || (!ep->rx_cq && !ep->cntrs[1]))
		return -FI_ENOCQ;
	ep->enabled = true;
	ret = usb4_progress_start(ep->domain, ep);
	/* Without the thread only a domain that promised progress fails. */
	return ep->domain->opened.auto_progress ? ret : 0;
}

static int ep_control(struct fid *fid, int command, void *arg)
{
	struct usb4_ep *ep = ep_of_fid(fid);
	uint64_t *flags = arg;

	switch (command) {
	case FI_ENABLE:
		return ep_enable(ep);
	case FI_GETOPSFLAG:
		if (!flags)
			return -FI_EINVAL;
		if ((*flags & FI_TRANSMIT) && (*flags & FI_RECV))
			return -FI_EINVAL;
		*flags = *flags & FI_TRANSMIT ? ep->tx_op_flags | FI_TRANSMIT :
			 ep->rx_op_flags | FI_RECV;
		return 0;
	case FI_SETOPSFLAG:
		if (!flags || ((*flags & FI_TRANSMIT) && (*flags & FI_RECV)))
			return -FI_EINVAL;
		if (*flags & FI_TRANSMIT)
			ep->tx_op_flags = *flags & ~FI_TRANSMIT;
		else
			ep->rx_op_flags = *flags & ~FI_RECV;
		return 0;
	default:
		return -FI_ENOSYS;
	}
}

static void unbind_all(struct usb4_ep *ep)
{
	struct usb4_cq *cqs[2] = { ep->tx_cq, ep->rx_cq };

	for (int i = 0; i < USB4_EP_CNTRS; i++) {
		if (!ep->cntrs[i])
			continue;
		usb4_ep_set_del(&ep->cntrs[i]->eps, &ep->core);
		atomic_fetch_sub(&ep->cntrs[i]->ref, 1);
	}
	for (int i = 0; i < 2; i++) {
		if (!cqs[i])
			continue;
		usb4_ep_set_del(&cqs[i]->eps, &ep->core);
		atomic_fetch_sub(&cqs[i]->ref, 1);
	}
	if (ep->av)
		atomic_fetch_sub(&ep->av->ref, 1);
	if (ep->eq)
		usb4_eq_release(ep->eq);
}

/* Threads asleep in sread or fi_cntr_wait with this endpoint's links in
 * their poll wake up and let go of it (they no longer find it bound), and
 * so does the domain's progress thread (it no longer finds it in the
 * domain). */
static void wake_sleepers(struct usb4_ep *ep)
{
	usb4_progress_let_go(ep->domain);
	if (ep->tx_cq)
		usb4_waiter_signal(&ep->tx_cq->waiter);
	if (ep->rx_cq)
		usb4_waiter_signal(&ep->rx_cq->waiter);
	for (int i = 0; i < USB4_EP_CNTRS; i++)
		if (ep->cntrs[i])
			usb4_waiter_signal(&ep->cntrs[i]->waiter);
	usb4_core_wait_sleepers(&ep->core, &ep->domain->lock);
}

/*
 * Answers still waiting for room go out first (the lock is released while
 * that sleeps), then the core's state goes under the lock, sleepers let go
 * of the links, and the links linger for acknowledgements without the lock:
 * other threads of the domain carry on meanwhile.
 */
static int ep_close(struct fid *fid)
{
	struct usb4_ep *ep = ep_of_fid(fid);
	struct usb4_domain *domain = ep->domain;

	usb4_lock_acquire(&domain->lock);
	usb4_core_ep_flush(&ep->core, &domain->lock);
	usb4_core_ep_close(&ep->core);
	unbind_all(ep);
	usb4_list_remove(&ep->dom_link);
	wake_sleepers(ep);
	usb4_lock_release(&domain->lock);
	usb4_core_ep_close_links(&ep->core);
	atomic_fetch_sub(&domain->ref, 1);
	usb4_ep_bury(ep);
	return 0;
}

static struct fi_ops ep_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = ep_close,
	.bind = ep_bind,
	.control = ep_control,
	.ops_open = usb4_no_ops_open,
};

/* ---- fi_ops_ep ---- */

static ssize_t ep_cancel(fid_t fid, void *context)
{
	struct usb4_ep *ep = ep_of_fid(fid);
	ssize_t ret;

	usb4_lock_acquire(&ep->domain->lock);
	ret = usb4_core_cancel(&ep->core, context);
	usb4_lock_release(&ep->domain->lock);
	return ret;
}

static int ep_getopt(fid_t fid, int level, int optname, void *optval,
		     size_t *optlen)
{
	struct usb4_ep *ep = ep_of_fid(fid);

	if (level != FI_OPT_ENDPOINT || optname != FI_OPT_MIN_MULTI_RECV)
		return -FI_ENOPROTOOPT;
	if (!optval || !optlen || *optlen < sizeof(size_t))
		return -FI_ETOOSMALL;
	*(size_t *) optval = ep->core.min_multi_recv;
	*optlen = sizeof(size_t);
	return 0;
}

static int ep_setopt(fid_t fid, int level, int optname, const void *optval,
		     size_t optlen)
{
	struct usb4_ep *ep = ep_of_fid(fid);

	if (level != FI_OPT_ENDPOINT || optname != FI_OPT_MIN_MULTI_RECV)
		return -FI_ENOPROTOOPT;
	if (!optval || optlen != sizeof(size_t))
		return -FI_EINVAL;
	ep->core.min_multi_recv = *(const size_t *) optval;
	return 0;
}

static int no_ctx(struct fid_ep *sep, int index, void *attr,
		  struct fid_ep **ctx_ep, void *context)
{
	return -FI_ENOSYS;
}

static ssize_t ep_rx_size_left(struct fid_ep *fid)
{
	struct usb4_ep *ep = usb4_container_of(fid, struct usb4_ep, ep_fid);

	return ep->core.rx_max - ep->core.rx_posted;
}

static ssize_t ep_tx_size_left(struct fid_ep *fid)
{
	struct usb4_ep *ep = usb4_container_of(fid, struct usb4_ep, ep_fid);

	return ep->core.ops_free_count;
}

static struct fi_ops_ep ep_ops = {
	.size = sizeof(struct fi_ops_ep),
	.cancel = ep_cancel,
	.getopt = ep_getopt,
	.setopt = ep_setopt,
	.tx_ctx = (void *) no_ctx,
	.rx_ctx = (void *) no_ctx,
	.rx_size_left = ep_rx_size_left,
	.tx_size_left = ep_tx_size_left,
};

/* ---- fi_ops_cm: an RDM endpoint only has a name ---- */

/* The address in the domain's format: 56 bytes, or FI_ADDR_STR text. */
static int ep_getname(fid_t fid, void *addr, size_t *addrlen)
{
	struct usb4_ep *ep = ep_of_fid(fid);
	struct usb4_wire_addr a;
	char str[USB4_ADDR_STR_MAX];
	size_t have = *addrlen;

	usb4_core_ep_addr(&ep->core, &a);
	if (ep->domain->addr_format != FI_ADDR_STR) {
		*addrlen = sizeof(a);
		if (have < sizeof(a))
			return -FI_ETOOSMALL;
		memcpy(addr, &a, sizeof(a));
		return 0;
	}
	*addrlen = (size_t) usb4_addr_to_str(&a, str, sizeof(str)) + 1;
	if (have < *addrlen)
		return -FI_ETOOSMALL;
	memcpy(addr, str, *addrlen);
	return 0;
}

static int cm_setname(fid_t fid, void *addr, size_t addrlen)
{
	return -FI_ENOSYS;
}

static int cm_getpeer(struct fid_ep *ep, void *addr, size_t *addrlen)
{
	return -FI_ENOSYS;
}

static int cm_connect(struct fid_ep *ep, const void *addr, const void *param,
		      size_t paramlen)
{
	return -FI_ENOSYS;
}

static int cm_listen(struct fid_pep *pep)
{
	return -FI_ENOSYS;
}

static int cm_accept(struct fid_ep *ep, const void *param, size_t paramlen)
{
	return -FI_ENOSYS;
}

static int cm_reject(struct fid_pep *pep, fid_t handle, const void *param,
		     size_t paramlen)
{
	return -FI_ENOSYS;
}

static int cm_shutdown(struct fid_ep *ep, uint64_t flags)
{
	return -FI_ENOSYS;
}

static int cm_join(struct fid_ep *ep, const void *addr, uint64_t flags,
		   struct fid_mc **mc, void *context)
{
	return -FI_ENOSYS;
}

static struct fi_ops_cm ep_cm_ops = {
	.size = sizeof(struct fi_ops_cm),
	.setname = cm_setname,
	.getname = ep_getname,
	.getpeer = cm_getpeer,
	.connect = cm_connect,
	.listen = cm_listen,
	.accept = cm_accept,
	.reject = cm_reject,
	.shutdown = cm_shutdown,
	.join = cm_join,
};

/* The core endpoint, with its own job key when the application gives one,
 * bound where its src_addr says (FI_SOURCE with node and service). */
static int ep_open_core(struct usb4_ep *ep, const struct fi_info *info,
			struct usb4_domain *domain)
{
	struct usb4_wire_addr where;
	const struct usb4_wire_addr *bind =
		usb4_info_bind(info, &where) ? &where : NULL;
	struct usb4_core_key *key;
	int ret;

	if (!info->ep_attr || !info->ep_attr->auth_key_size)
		return usb4_core_ep_open_at(&ep->core, info->caps,
					    &domain->core, NULL, bind);
	key = malloc(sizeof(*key));
	if (!key)
		return -FI_ENOMEM;
	ret = usb4_auth_key_resolve(info->ep_attr->auth_key,
				    info->ep_attr->auth_key_size, key);
	if (!ret)
		ret = usb4_core_ep_open_at(&ep->core, info->caps,
					   &domain->core, key, bind);
	memset(key, 0, sizeof(*key));
	free(key);
	return ret;
}

int usb4_ep_open(struct fid_domain *domain_fid, struct fi_info *info,
		 struct fid_ep **epp, void *context)
{
	struct usb4_domain *domain =
		usb4_container_of(domain_fid, struct usb4_domain, domain_fid);
	struct usb4_ep *ep;
	int ret;

	if (!info || (ret = usb4_check_ep_info(info)))
		return info ? ret : -FI_EINVAL;
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -FI_ENOMEM;
	ret = ep_open_core(ep, info, domain);
	if (ret) {
		free(ep);
		return ret;
	}
	ep->domain = domain;
	usb4_lock_acquire(&domain->lock);
	usb4_list_insert_tail(&domain->eps, &ep->dom_link);
	usb4_lock_release(&domain->lock);
	ep->tx_op_flags = info->tx_attr ? info->tx_attr->op_flags : 0;
	ep->rx_op_flags = info->rx_attr ? info->rx_attr->op_flags : 0;
	atomic_fetch_add(&domain->ref, 1);
	ep->ep_fid.fid.fclass = FI_CLASS_EP;
	ep->ep_fid.fid.context = context;
	ep->ep_fid.fid.ops = &ep_fi_ops;
	ep->ep_fid.ops = &ep_ops;
	ep->ep_fid.cm = &ep_cm_ops;
	ep->ep_fid.msg = &usb4_msg_ops;
	ep->ep_fid.tagged = &usb4_tagged_ops;
	ep->ep_fid.rma = &usb4_rma_ops;
	ep->ep_fid.atomic = &usb4_atomic_ops;
	*epp = &ep->ep_fid;
	return 0;
}
