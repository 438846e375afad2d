/*
 * Stand-ins for what prov_usb4/src/api/usb4_init.c defines, so unit tests can
 * link the messaging core and the links (libusb4core.la) without the libfabric
 * face.  The defaults must match usb4_init.c.
 */
#include "usb4.h"

struct usb4_params usb4_params = {
	.eager_size = 8192,
	.udp_eager_size = 16384,
	.ring_slots = 256,
	.tx_size = 4096,
	.rx_size = 4096,
	.cq_size = 4096,
	.spin_us = 50,
	.sysfs_root = "/sys",
	.peer_timeout_ms = 5000,
	.rel_window = 64,
	.idle_nap_us = 1000,
	.mr_max = 16384,
};

struct fi_provider usb4_prov = {
	.name = USB4_PROV_NAME,
	.version = USB4_PROV_VERSION,
	.fi_version = USB4_API_VERSION,
};
