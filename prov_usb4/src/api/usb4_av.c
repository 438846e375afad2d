/*
 * fi_av: FI_AV_MAP and FI_AV_TABLE over the core's peer table.  fi_addr_t
 * values are table indices in both modes (MAP lets the provider choose them).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usb4_api.h"

static struct usb4_av *av_of(struct fid_av *fid)
{
	return usb4_container_of(fid, struct usb4_av, av_fid);
}

static void note_error(uint64_t flags, void *context, size_t i, int err)
{
	if ((flags & FI_SYNC_ERR) && context)
		((int *) context)[i] = -err;
}

static int av_insert(struct fid_av *fid, const void *addr, size_t count,
		     fi_addr_t *fi_addr, uint64_t flags, void *context)
{
	struct usb4_av *av = av_of(fid);
	const struct usb4_wire_addr *a = addr;
	int inserted = 0;

	if (flags & ~(FI_MORE | FI_SYNC_ERR))
		return -FI_EINVAL;
	if (count && !addr)
		return -FI_EINVAL;
	usb4_lock_acquire(&av->domain->lock);
	for (size_t i = 0; i < count; i++) {
		fi_addr_t out = FI_ADDR_NOTAVAIL;
		int ret = usb4_core_av_insert(&av->core, &a[i], &out);
		if (ret)
			USB4_WARN(FI_LOG_AV, "address %zu not inserted: %s\n",
				  i, fi_strerror(-ret));
		else
			inserted++;
		note_error(flags, context, i, ret);
		if (fi_addr)
			fi_addr[i] = out;
	}
	usb4_lock_release(&av->domain->lock);
	return inserted;
}

static int av_insertsvc(struct fid_av *fid, const char *node,
			const char *service, fi_addr_t *fi_addr,
			uint64_t flags, void *context)
{
	return -FI_ENOSYS;
}

static int av_insertsym(struct fid_av *fid, const char *node, size_t nodecnt,
			const char *service, size_t svccnt, fi_addr_t *fi_addr,
			uint64_t flags, void *context)
{
	return -FI_ENOSYS;
}

static int av_remove(struct fid_av *fid, fi_addr_t *fi_addr, size_t count,
		     uint64_t flags)
{
	struct usb4_av *av = av_of(fid);
	int ret = 0;

	if (flags)
		return -FI_EINVAL;
	usb4_lock_acquire(&av->domain->lock);
	for (size_t i = 0; i < count; i++) {
		int r = usb4_core_av_remove(&av->core, fi_addr[i]);
		if (r && !ret)
			ret = r;
	}
	usb4_lock_release(&av->domain->lock);
	return ret;
}

static int av_lookup(struct fid_av *fid, fi_addr_t fi_addr, void *addr,
		     size_t *addrlen)
{
	struct usb4_av *av = av_of(fid);
	struct usb4_peer *peer;
	int ret = 0;

	usb4_lock_acquire(&av->domain->lock);
	peer = usb4_core_av_peer(&av->core, fi_addr);
	if (!peer) {
		ret = -FI_EINVAL;
	} else {
		memcpy(addr, &peer->addr, *addrlen < sizeof(peer->addr) ?
		       *addrlen : sizeof(peer->addr));
		*addrlen = sizeof(peer->addr);
	}
	usb4_lock_release(&av->domain->lock);
	return ret;
}

static const char *av_straddr(struct fid_av *fid, const void *addr, char *buf,
			      size_t *len)
{
	const struct usb4_wire_addr *a = addr;
	char ip[INET6_ADDRSTRLEN] = "-", tmp[160];
	int n;

	if (a->udp_family)
		inet_ntop(a->udp_family == 4 ? AF_INET : AF_INET6, a->udp_ip,
			  ip, sizeof(ip));
	n = snprintf(tmp, sizeof(tmp), "usb4://%016llx/%u/%d/%016llx;udp=%s:%u",
		     (unsigned long long) le64toh(a->host_id),
		     le32toh(a->shm_pid), (int32_t) le32toh(a->shm_inbox_fd),
		     (unsigned long long) le64toh(a->ep_id), ip,
		     le16toh(a->udp_port));

	if (*len > 0) {
		snprintf(buf, *len, "%s", tmp);
	}
	*len = n + 1;
	return buf;
}

static int av_close(struct fid *fid)
{
	struct usb4_av *av = usb4_container_of(fid, struct usb4_av, av_fid.fid);

	if (atomic_load(&av->ref))
		return -FI_EBUSY;
	usb4_core_av_fini(&av->core);
	atomic_fetch_sub(&av->domain->ref, 1);
	free(av);
	return 0;
}

static struct fi_ops av_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = av_close,
	.bind = usb4_no_bind,
	.control = usb4_no_control,
	.ops_open = usb4_no_ops_open,
};

static struct fi_ops_av av_ops = {
	.size = sizeof(struct fi_ops_av),
	.insert = av_insert,
	.insertsvc = av_insertsvc,
	.insertsym = av_insertsym,
	.remove = av_remove,
	.lookup = av_lookup,
	.straddr = av_straddr,
};

static int check_attr(const struct fi_av_attr *attr)
{
	if (attr->type != FI_AV_UNSPEC && attr->type != FI_AV_MAP &&
	    attr->type != FI_AV_TABLE)
		return -FI_EINVAL;
	if (attr->name || (attr->flags & FI_EVENT) || attr->rx_ctx_bits)
		return -FI_ENOSYS;
	return 0;
}

int usb4_av_open(struct fid_domain *domain_fid, struct fi_av_attr *attr,
		 struct fid_av **avp, void *context)
{
	struct usb4_domain *domain =
		usb4_container_of(domain_fid, struct usb4_domain, domain_fid);
	struct usb4_av *av;
	int ret;

	if (!attr || (ret = check_attr(attr)))
		return attr ? ret : -FI_EINVAL;
	av = calloc(1, sizeof(*av));
	if (!av)
		return -FI_ENOMEM;
	ret = usb4_core_av_init(&av->core, attr->count);
	if (ret) {
		free(av);
		return ret;
	}
	av->type = attr->type == FI_AV_UNSPEC ? FI_AV_MAP : attr->type;
	av->domain = domain;
	atomic_init(&av->ref, 0);
	atomic_fetch_add(&domain->ref, 1);
	av->av_fid.fid.fclass = FI_CLASS_AV;
	av->av_fid.fid.context = context;
	av->av_fid.fid.ops = &av_fi_ops;
	av->av_fid.ops = &av_ops;
	*avp = &av->av_fid;
	return 0;
}
