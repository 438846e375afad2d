/*
 * The provider descriptor every layer logs through.  Its entry points are
 * the libfabric face's: api/usb4_init.c fills them in when libfabric loads
 * the provider, so that a layer linked alone (unit tests, layer checks)
 * logs without the face.
 */
#include "usb4.h"

struct fi_provider usb4_prov = {
	.name = USB4_PROV_NAME,
	.version = USB4_PROV_VERSION,
	.fi_version = USB4_API_BUILT,
};
