/*
 * The core's side of memory registration: a domain's regions are published
 * in the shm link's registry so same-host initiators can check and use them.
 */
#include "usb4_core.h"

int usb4_core_domain_open(struct usb4_core_domain *dom, size_t mr_max)
{
	return usb4_shm_reg_open(&dom->reg, mr_max);
}

void usb4_core_domain_close(struct usb4_core_domain *dom)
{
	usb4_shm_reg_close(dom->reg);
	dom->reg = NULL;
}

int usb4_core_mr_publish(struct usb4_core_domain *dom, uint64_t key,
			 const void *base, uint64_t len, uint64_t iova,
			 uint64_t access, struct usb4_core_mr *mr)
{
	int ret = usb4_shm_reg_publish(dom->reg, key, (uintptr_t) base, iova,
				       len, access, &mr->slot);

	mr->published = ret == 0;
	return ret;
}

void usb4_core_mr_revoke(struct usb4_core_domain *dom, struct usb4_core_mr *mr)
{
	if (!mr->published)
		return;
	usb4_shm_reg_revoke(dom->reg, mr->slot);
	mr->published = false;
}
