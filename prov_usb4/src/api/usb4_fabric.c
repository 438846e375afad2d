/* fi_fabric: the root object; opens domains and event queues. */
#include <stdlib.h>

#include "usb4_api.h"

static int fabric_close(struct fid *fid)
{
	struct usb4_fabric *fabric =
		usb4_container_of(fid, struct usb4_fabric, fabric_fid.fid);

	if (atomic_load(&fabric->ref))
		return -FI_EBUSY;
	free(fabric);
	return 0;
}

static struct fi_ops fabric_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = fabric_close,
	.bind = usb4_no_bind,
	.control = usb4_no_control,
	.ops_open = usb4_no_ops_open,
};

static struct fi_ops_fabric fabric_ops = {
	.size = sizeof(struct fi_ops_fabric),
	.domain = usb4_domain_open,
	.passive_ep = usb4_no_passive_ep,
	.eq_open = usb4_eq_open,
	.wait_open = usb4_no_wait_open,
	.trywait = usb4_no_trywait,
};

struct usb4_fabric *usb4_fabric_of(struct fid_fabric *fid)
{
	if (!fid || fid->fid.fclass != FI_CLASS_FABRIC ||
	    fid->fid.ops != &fabric_fi_ops)
		return NULL;
	return usb4_container_of(fid, struct usb4_fabric, fabric_fid);
}

int usb4_fabric_open(struct fi_fabric_attr *attr, struct fid_fabric **fabricp,
		     void *context)
{
	struct usb4_fabric *fabric;
	int ret = usb4_check_fabric_attr(attr);

	if (ret)
		return ret;
	fabric = calloc(1, sizeof(*fabric));
	if (!fabric)
		return -FI_ENOMEM;
	fabric->fabric_fid.fid.fclass = FI_CLASS_FABRIC;
	fabric->fabric_fid.fid.context = context;
	fabric->fabric_fid.fid.ops = &fabric_fi_ops;
	fabric->fabric_fid.ops = &fabric_ops;
	atomic_init(&fabric->ref, 0);
	*fabricp = &fabric->fabric_fid;
	return 0;
}
