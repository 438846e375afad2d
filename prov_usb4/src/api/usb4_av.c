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

/*
 * FI_ADDR_STR addresses come as an array of strings (char **, man fi_av)
 * or, as info->dest_addr holds one, as NUL-terminated strings back to
 * back.  Told apart by the first bytes: no pointer a process can hold
 * spells "fi_addr_" (its top bytes would make it non-canonical).
 */
static const char *str_at(const void *addr, size_t i, const char **next)
{
	if (memcmp(addr, USB4_ADDR_STR_PREFIX, 8))
		return ((const char *const *) addr)[i];
	if (!i)
		*next = addr;
	else
		*next += strlen(*next) + 1;
	return *next;
}

/* The addresses an insert names, in the domain's format; errs[i] says
 * why entry i cannot be read. */
static void read_addrs(struct usb4_av *av, const void *addr, size_t count,
		       struct usb4_wire_addr *out, int *errs)
{
	const struct usb4_wire_addr *a = addr;
	const char *next = NULL;

	for (size_t i = 0; i < count; i++) {
		if (av->domain->addr_format != FI_ADDR_STR) {
			out[i] = a[i];
			errs[i] = 0;
			continue;
		}
		errs[i] = usb4_addr_from_str(str_at(addr, i, &next), &out[i]);
		if (errs[i])
			USB4_WARN(FI_LOG_AV, "address %zu is not a usb4 address "
				  "string (" USB4_ADDR_STR_PREFIX "...)\n", i);
	}
}

/* While an insert waits for answers: endpoints of this domain may be the
 * ones asked.  One pass under the domain lock, taken for the pass only, so
 * that the domain's other threads post and progress between passes. */
static void progress_domain(void *arg)
{
	struct usb4_domain *domain = arg;
	struct usb4_list *it;

	usb4_lock_acquire(&domain->lock);
	usb4_list_foreach(&domain->eps, it) {
		struct usb4_ep *ep = usb4_container_of(it, struct usb4_ep,
						       dom_link);
		if (ep->enabled)
			usb4_core_progress(&ep->core);
	}
	usb4_lock_release(&domain->lock);
}

/*
 * Inserts count addresses: unresolved ones are resolved first, all at
 * once; an entry that fails gets FI_ADDR_NOTAVAIL and its error.  Called
 * without the domain lock: resolving waits up to the peer timeout and
 * touches only its own sockets (the domain's key is fixed at fi_domain),
 * so the lock is taken for the progress passes and the table only.
 */
static int insert_addrs(struct usb4_av *av, struct usb4_wire_addr *a,
			int *errs, size_t count, fi_addr_t *fi_addr,
			uint64_t flags, void *context)
{
	int inserted = 0;

	usb4_core_resolve(a, errs, count, &av->domain->core.key,
			  progress_domain, av->domain);
	usb4_lock_acquire(&av->domain->lock);
	for (size_t i = 0; i < count; i++) {
		fi_addr_t out = FI_ADDR_NOTAVAIL;
		int ret = errs[i];

		if (!ret)
			ret = usb4_core_av_insert(&av->core, &a[i], &out);
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

/* Room for count addresses and their verdicts. */
static int scratch(size_t count, struct usb4_wire_addr **a, int **errs)
{
	*a = calloc(count ? count : 1, sizeof(**a));
	*errs = calloc(count ? count : 1, sizeof(**errs));
	if (*a && *errs)
		return 0;
	free(*a);
	free(*errs);
	return -FI_ENOMEM;
}

static int av_insert(struct fid_av *fid, const void *addr, size_t count,
		     fi_addr_t *fi_addr, uint64_t flags, void *context)
{
	struct usb4_av *av = av_of(fid);
	struct usb4_wire_addr *a;
	int *errs, ret;

	if (flags & ~(FI_MORE | FI_SYNC_ERR))
		return -FI_EINVAL;
	if (count && !addr)
		return -FI_EINVAL;
	ret = scratch(count, &a, &errs);
	if (ret)
		return ret;
	read_addrs(av, addr, count, a, errs);
	ret = insert_addrs(av, a, errs, count, fi_addr, flags, context);
	free(a);
	free(errs);
	return ret;
}

/* node and service, or an FI_ADDR_STR string as node with service NULL. */
static int av_insertsvc(struct fid_av *fid, const char *node,
			const char *service, fi_addr_t *fi_addr,
			uint64_t flags, void *context)
{
	struct usb4_av *av = av_of(fid);
	struct usb4_wire_addr a;
	int err;

	if (flags & ~(FI_MORE | FI_SYNC_ERR))
		return -FI_EINVAL;
	if (!node)
		return -FI_EINVAL;
	if (!service && !strncmp(node, USB4_ADDR_STR_PREFIX,
				 strlen(USB4_ADDR_STR_PREFIX)))
		err = usb4_addr_from_str(node, &a);
	else
		err = usb4_name_lookup(node, service, false, &a) ?
		      -FI_EINVAL : 0;
	return insert_addrs(av, &a, &err, 1, fi_addr, flags, context);
}

/* Entry n of a symmetric insert: node + n / svccnt, port + n % svccnt. */
static void sym_entry(const struct usb4_wire_addr *first, size_t n,
		      size_t svccnt, struct usb4_wire_addr *a)
{
	uint64_t step = n / svccnt;
	int last = first->udp_family == 4 ? 3 : 15;

	*a = *first;
	a->udp_port = htole16((uint16_t) (le16toh(first->udp_port) +
					  n % svccnt));
	/* big-endian add with carry */
	for (int i = last; i >= 0 && step; i--) {
		uint64_t sum = a->udp_ip[i] + (step & 0xff);
		a->udp_ip[i] = (uint8_t) sum;
		step = (step >> 8) + (sum >> 8);
	}
}

/* Numeric IPs only: a host name with a numeric suffix is not supported. */
static int av_insertsym(struct fid_av *fid, const char *node, size_t nodecnt,
			const char *service, size_t svccnt, fi_addr_t *fi_addr,
			uint64_t flags, void *context)
{
	struct usb4_av *av = av_of(fid);
	size_t count = nodecnt * svccnt;
	struct usb4_wire_addr first, *a;
	unsigned char probe[16];
	int *errs, ret;

	if ((flags & ~(FI_MORE | FI_SYNC_ERR)) || !node || !service ||
	    !nodecnt || !svccnt || count / svccnt != nodecnt ||
	    (inet_pton(AF_INET, node, probe) != 1 &&
	     inet_pton(AF_INET6, node, probe) != 1) ||
	    usb4_name_lookup(node, service, false, &first) ||
	    le16toh(first.udp_port) + svccnt - 1 > UINT16_MAX)
		return -FI_EINVAL;
	ret = scratch(count, &a, &errs);
	if (ret)
		return ret;
	for (size_t n = 0; n < count; n++)
		sym_entry(&first, n, svccnt, &a[n]);
	ret = insert_addrs(av, a, errs, count, fi_addr, flags, context);
	free(a);
	free(errs);
	return ret;
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

/* Copies an address out in the domain's format, as much as fits. */
static void addr_out(uint32_t format, const struct usb4_wire_addr *a,
		     void *addr, size_t *addrlen)
{
	char str[USB4_ADDR_STR_MAX];
	const void *src = a;
	size_t len = sizeof(*a);

	if (format == FI_ADDR_STR) {
		len = (size_t) usb4_addr_to_str(a, str, sizeof(str)) + 1;
		src = str;
	}
	memcpy(addr, src, *addrlen < len ? *addrlen : len);
	*addrlen = len;
}

static int av_lookup(struct fid_av *fid, fi_addr_t fi_addr, void *addr,
		     size_t *addrlen)
{
	struct usb4_av *av = av_of(fid);
	struct usb4_peer *peer;
	int ret = 0;

	usb4_lock_acquire(&av->domain->lock);
	peer = usb4_core_av_peer(&av->core, fi_addr);
	if (!peer)
		ret = -FI_EINVAL;
	else
		addr_out(av->domain->addr_format, &peer->addr, addr, addrlen);
	usb4_lock_release(&av->domain->lock);
	return ret;
}

/* "fi_addr_usb4://...", which fi_av_insert takes back under FI_ADDR_STR;
 * an address that is neither a usb4 address nor such a string reads
 * "fi_addr_usb4://invalid". */
static const char *av_straddr(struct fid_av *fid, const void *addr, char *buf,
			      size_t *len)
{
	struct usb4_av *av = av_of(fid);
	struct usb4_wire_addr a;
	char tmp[USB4_ADDR_STR_MAX];
	int n;

	if (av->domain->addr_format == FI_ADDR_STR ?
	    usb4_addr_from_str(addr, &a) : !usb4_wire_addr_ok(addr))
		n = snprintf(tmp, sizeof(tmp), USB4_ADDR_STR_PREFIX "invalid");
	else
		n = usb4_addr_to_str(av->domain->addr_format == FI_ADDR_STR ?
				     &a : addr, tmp, sizeof(tmp));
	if (*len > 0)
		snprintf(buf, *len, "%s", tmp);
	*len = (size_t) n + 1;
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
