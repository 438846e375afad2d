/*
 * A registry of no link kinds: the layer checks (Makefile.am) link the core
 * and the api with it, so that any call they make into a link other than
 * through struct usb4_link_ops fails to link.
 */
#include "usb4_link.h"

const struct usb4_link_ops *const usb4_link_kinds[] = { NULL };
const size_t usb4_link_kind_count = 0;
