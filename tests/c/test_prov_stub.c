/*
 * A stand-in for the provider descriptor of prov_usb4/src/api/usb4_init.c, so
 * unit tests can link the messaging core and the links (libusb4core.la)
 * without the libfabric face (the tunables' defaults live in the core).
 */
#include "usb4.h"

struct fi_provider usb4_prov = {
	.name = USB4_PROV_NAME,
	.version = USB4_PROV_VERSION,
	.fi_version = USB4_API_VERSION,
};
