/*
 * The tunables' defaults, in the base layer so that unit tests linking any
 * layer without the libfabric face run with exactly the provider's values.
 * usb4_params_init() (api/usb4_init.c) overrides them from FI_USB4_*.
 */
#include "usb4.h"

struct usb4_params usb4_params = {
	.eager_size = 8192,
	.stream_eager_size = 65536,
	.ring_slots = 256,
	.tx_size = 4096,
	.rx_size = 4096,
	.cq_size = 4096,
	.spin_us = 50,
	.yield_us = 20,
	.mr_max = 16384,
	.iface = NULL,
	.sysfs_root = "/sys",
	.faults = NULL,
	.peer_timeout_ms = 5000,
	.unknown_access_wait_ms = 2000,
	.rel_window = 64,
	.udp_buffers = 64u << 20,
	.udp_placement = true,
	/* 2048 eager messages of 16 KiB, or ~100k small ones, from one
	 * sender before it is slowed down; eight such senders in all. */
	.unexp_peer_bytes = 32u << 20,
	.unexp_bytes = 256u << 20,
	.progress_idle_ms = 10,
	.cc = true,
	.keepalive_ms = 1000,
	.unreachable_confirm_ms = 300,
	.rail_timeout_ms = 500,
	.udp_gso = true,
	.idle_block_us = 20,
	.stream_early_size = 262144,
};
