/* Explicit "not supported" answers for ops table slots we do not offer. */
#include "usb4_api.h"

int usb4_no_bind(struct fid *fid, struct fid *bfid, uint64_t flags)
{
	return -FI_ENOSYS;
}

int usb4_no_control(struct fid *fid, int command, void *arg)
{
	return -FI_ENOSYS;
}

int usb4_no_ops_open(struct fid *fid, const char *name, uint64_t flags,
		     void **ops, void *context)
{
	return -FI_ENOSYS;
}

int usb4_no_passive_ep(struct fid_fabric *fabric, struct fi_info *info,
		       struct fid_pep **pep, void *context)
{
	return -FI_ENOSYS;
}

int usb4_no_wait_open(struct fid_fabric *fabric, struct fi_wait_attr *attr,
		      struct fid_wait **waitset)
{
	return -FI_ENOSYS;
}

int usb4_no_trywait(struct fid_fabric *fabric, struct fid **fids, int count)
{
	return -FI_ENOSYS;
}
