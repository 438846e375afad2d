/*
 * The kinds of link this build has, in order of preference: a peer is
 * reached by the first kind that reaches it (same host: shm, else udp).
 * The only place that names them all.
 */
#include "usb4_shm.h"
#include "usb4_udp.h"

const struct usb4_link_ops *const usb4_link_kinds[] = {
	&usb4_shm_link_ops,
	&usb4_udp_link_ops,
};

const size_t usb4_link_kind_count =
	sizeof(usb4_link_kinds) / sizeof(usb4_link_kinds[0]);
