/*
 * Provider entry: the fi_provider descriptor, its tunables, fi_prov_ini.
 * The only symbol the library exports is fi_prov_ini.
 */
#include "usb4_api.h"

static void usb4_cleanup(void)
{
	/* Before anything they use goes, and before the unload. */
	usb4_progress_halt_all();
	usb4_ep_tombstones_free();
}

void usb4_params_define(void)
{
	fi_param_define(&usb4_prov, "eager_size", FI_PARAM_SIZE_T,
			"Largest message sent inline in one frame; larger ones "
			"use rendezvous with a single copy (default: %zu)",
			usb4_params.eager_size);
	fi_param_define(&usb4_prov, "udp_eager_size", FI_PARAM_SIZE_T,
			"Largest message sent inline to a peer on another "
			"host, at most one datagram (default: %zu)",
			usb4_params.stream_eager_size);
	fi_param_define(&usb4_prov, "ring_slots", FI_PARAM_SIZE_T,
			"Frame slots in each endpoint's shared-memory inbox, "
			"rounded up to a power of two (default: %zu)",
			usb4_params.ring_slots);
	fi_param_define(&usb4_prov, "tx_size", FI_PARAM_SIZE_T,
			"Outstanding sends per endpoint (default: %zu)",
			usb4_params.tx_size);
	fi_param_define(&usb4_prov, "rx_size", FI_PARAM_SIZE_T,
			"Posted receives per endpoint (default: %zu)",
			usb4_params.rx_size);
	fi_param_define(&usb4_prov, "cq_size", FI_PARAM_SIZE_T,
			"Initial completion queue depth; queues grow instead "
			"of losing completions (default: %zu)",
			usb4_params.cq_size);
	fi_param_define(&usb4_prov, "mr_max", FI_PARAM_SIZE_T,
			"Memory regions with remote access one domain can "
			"publish (default: %zu)", usb4_params.mr_max);
	fi_param_define(&usb4_prov, "iface", FI_PARAM_STRING,
			"Interfaces that reach other hosts, comma separated "
			"(default: every thunderbolt-net interface that is up)");
	fi_param_define(&usb4_prov, "sysfs_root", FI_PARAM_STRING,
			"Where interface discovery reads sysfs (default: /sys)");
	fi_param_define(&usb4_prov, "faults", FI_PARAM_STRING,
			"Faults the udp link injects on receive, for tests: "
			"drop=R,dup=R,reorder=R,corrupt=R with rates R in "
			"[0, 1] (default: none)");
	fi_param_define(&usb4_prov, "peer_timeout", FI_PARAM_INT,
			"Milliseconds without an answer after which a peer on "
			"another host is dead and its operations fail "
			"(default: %d)", usb4_params.peer_timeout_ms);
	fi_param_define(&usb4_prov, "unknown_access_wait", FI_PARAM_INT,
			"Milliseconds a remote write, read or atomic from a "
			"peer the application has not inserted (over a link "
			"without a job key) waits for that insert before it is "
			"refused with FI_EACCES (default: %d)",
			usb4_params.unknown_access_wait_ms);
	fi_param_define(&usb4_prov, "auth_key", FI_PARAM_STRING,
			"Job key: every datagram to and from other hosts is "
			"authenticated with it; give every endpoint of the job "
			"the same (default: none; the auth_key attribute "
			"overrides it)");
	fi_param_define(&usb4_prov, "auth_key_file", FI_PARAM_STRING,
			"File holding the job key, when FI_USB4_AUTH_KEY is "
			"not set (one trailing newline is not part of it)");
	fi_param_define(&usb4_prov, "rel_window", FI_PARAM_SIZE_T,
			"Datagrams in flight to one peer on another host "
			"(default: %zu)", usb4_params.rel_window);
	fi_param_define(&usb4_prov, "portable", FI_PARAM_BOOL,
			"CPU-specific fast paths (the CRC32C instructions) "
			"off, as on a CPU without them; read when the provider "
			"loads (default: 0)");
	fi_param_define(&usb4_prov, "yield_us", FI_PARAM_INT,
			"When fi_cq_read is called in a tight loop on an empty "
			"CQ, after this many microseconds each further empty "
			"read yields the CPU (it never sleeps); 0 never yields "
			"(default: %d)", usb4_params.yield_us);
	fi_param_define(&usb4_prov, "udp_buffers", FI_PARAM_SIZE_T,
			"Bytes one endpoint's udp link may hold in copies of "
			"frames (resend and reorder buffers, for all its peers "
			"together); beyond it sends wait (default: %zu)",
			usb4_params.udp_buffers);
	fi_param_define(&usb4_prov, "udp_placement", FI_PARAM_BOOL,
			"Receive the payloads of bulk transfers from other "
			"hosts straight into their destination (default: %d)",
			(int) usb4_params.udp_placement);
	fi_param_define(&usb4_prov, "unexp_peer_bytes", FI_PARAM_SIZE_T,
			"Bytes of unexpected messages one sender may have "
			"queued at an endpoint (payloads plus a fixed cost per "
			"message); past it the sender is held back until the "
			"application receives (default: %zu)",
			usb4_params.unexp_peer_bytes);
	fi_param_define(&usb4_prov, "unexp_bytes", FI_PARAM_SIZE_T,
			"Bytes of unexpected messages all senders together may "
			"have queued at an endpoint (default: %zu)",
			usb4_params.unexp_bytes);
	fi_param_define(&usb4_prov, "spin_us", FI_PARAM_INT,
			"Microseconds a blocking call polls before it sleeps "
			"in the kernel (default: %d)", usb4_params.spin_us);
	fi_param_define(&usb4_prov, "progress_idle_ms", FI_PARAM_INT,
			"Each domain with an endpoint that reaches other hosts "
			"(or opened with FI_PROGRESS_AUTO) has a progress "
			"thread: once the application has not called into an "
			"endpoint for this many milliseconds, the thread "
			"acknowledges, answers and delivers for it, so that a "
			"busy application is not taken for dead; 0: no thread, "
			"progress only inside the application's calls, and "
			"FI_PROGRESS_AUTO is not offered (default: %d)",
			usb4_params.progress_idle_ms);
	fi_param_define(&usb4_prov, "cc", FI_PARAM_BOOL,
			"Congestion control towards other hosts: the bytes in "
			"flight to a peer adapt to loss and queueing delay; "
			"off (0) sends up to FI_USB4_REL_WINDOW datagrams "
			"whatever the path takes (default: %d)",
			(int) usb4_params.cc);
	fi_param_define(&usb4_prov, "keepalive", FI_PARAM_INT,
			"Milliseconds a peer on another host may be silent "
			"before it is probed; unanswered, it is dead "
			"FI_USB4_PEER_TIMEOUT after it was last heard (0: no "
			"probes; default: %d)",
			usb4_params.keepalive_ms);
	fi_param_define(&usb4_prov, "unreachable_confirm", FI_PARAM_INT,
			"When the kernel reports a peer's port unreachable "
			"(ICMP, which anyone can forge), milliseconds the peer "
			"has to answer probes before it is dead (default: %d)",
			usb4_params.unreachable_confirm_ms);
	fi_param_define(&usb4_prov, "rail_timeout_ms", FI_PARAM_INT,
			"Milliseconds of silence after which one of several "
			"rails (cables) to a peer on another host is retired "
			"and its frames go on the others; keep it well below "
			"FI_USB4_PEER_TIMEOUT (default: %d)",
			usb4_params.rail_timeout_ms);
	fi_param_define(&usb4_prov, "udp_gso", FI_PARAM_BOOL,
			"On interfaces of small frames (MTU up to 16 KiB), "
			"send runs of datagrams to a peer on another host in "
			"one system call with UDP GSO where the kernel offers "
			"it (default: %d)", (int) usb4_params.udp_gso);
	fi_param_define(&usb4_prov, "idle_block_us", FI_PARAM_INT,
			"When fi_cq_read is called back to back on an empty "
			"CQ and nothing (no entry, no frame) came for this "
			"many microseconds, each further empty read sleeps in "
			"the kernel until news, a timer or 1 ms; a caller "
			"that works between reads never sleeps; 0 never "
			"sleeps (default: %d)", usb4_params.idle_block_us);
	fi_param_define(&usb4_prov, "rndv_early_size", FI_PARAM_SIZE_T,
			"A rendezvous send to a peer on another host streams "
			"up to this many bytes right after its request, "
			"before the receiver's clear-to-send; 0 waits for it "
			"(default: %zu)", usb4_params.stream_early_size);
}

/* Reads a size parameter, keeping the default outside [lo, hi]. */
static void get_size(const char *name, size_t *value, size_t lo, size_t hi)
{
	size_t v;

	if (fi_param_get_size_t(&usb4_prov, name, &v) != FI_SUCCESS)
		return;
	if (v < lo || v > hi) {
		USB4_WARN(FI_LOG_CORE, "FI_USB4_%s=%zu outside [%zu, %zu], "
			  "keeping %zu\n", name, v, lo, hi, *value);
		return;
	}
	*value = v;
}

void usb4_params_init(void)
{
	int spin;

	get_size("eager_size", &usb4_params.eager_size, 64, 1 << 20);
	get_size("udp_eager_size", &usb4_params.stream_eager_size, 64, 1 << 16);
	get_size("udp_buffers", &usb4_params.udp_buffers, 1 << 20, (size_t) 1 << 36);
	get_size("ring_slots", &usb4_params.ring_slots, 4, 1 << 16);
	get_size("tx_size", &usb4_params.tx_size, 16, 1 << 20);
	get_size("rx_size", &usb4_params.rx_size, 16, 1 << 20);
	get_size("cq_size", &usb4_params.cq_size, 16, 1 << 24);
	get_size("mr_max", &usb4_params.mr_max, 16, 1 << 22);
	get_size("rel_window", &usb4_params.rel_window, 4, 1024);
	get_size("unexp_peer_bytes", &usb4_params.unexp_peer_bytes, 4096,
		 (size_t) 1 << 40);
	get_size("unexp_bytes", &usb4_params.unexp_bytes, 4096,
		 (size_t) 1 << 40);
	if (fi_param_get_int(&usb4_prov, "spin_us", &spin) == FI_SUCCESS &&
	    spin >= 0)
		usb4_params.spin_us = spin;
	if (fi_param_get_int(&usb4_prov, "yield_us", &spin) == FI_SUCCESS &&
	    spin >= 0)
		usb4_params.yield_us = spin;
	if (fi_param_get_bool(&usb4_prov, "udp_placement", &spin) == FI_SUCCESS)
		usb4_params.udp_placement = spin != 0;
	if (fi_param_get_int(&usb4_prov, "peer_timeout", &spin) == FI_SUCCESS &&
	    spin > 0)
		usb4_params.peer_timeout_ms = spin;
	if (fi_param_get_int(&usb4_prov, "progress_idle_ms", &spin) ==
	    FI_SUCCESS && spin >= 0)
		usb4_params.progress_idle_ms = spin;
	if (fi_param_get_int(&usb4_prov, "unknown_access_wait", &spin) ==
	    FI_SUCCESS && spin >= 0)
		usb4_params.unknown_access_wait_ms = spin;
	if (fi_param_get_bool(&usb4_prov, "cc", &spin) == FI_SUCCESS)
		usb4_params.cc = spin != 0;
	if (fi_param_get_int(&usb4_prov, "keepalive", &spin) == FI_SUCCESS &&
	    spin >= 0)
		usb4_params.keepalive_ms = spin;
	if (fi_param_get_int(&usb4_prov, "unreachable_confirm", &spin) ==
	    FI_SUCCESS && spin > 0)
		usb4_params.unreachable_confirm_ms = spin;
	fi_param_get_str(&usb4_prov, "iface", &usb4_params.iface);
	fi_param_get_str(&usb4_prov, "sysfs_root", &usb4_params.sysfs_root);
	fi_param_get_str(&usb4_prov, "faults", &usb4_params.faults);
	fi_param_get_str(&usb4_prov, "auth_key", &usb4_params.auth_key);
	fi_param_get_str(&usb4_prov, "auth_key_file", &usb4_params.auth_key_file);
	if (fi_param_get_bool(&usb4_prov, "udp_gso", &spin) == FI_SUCCESS)
		usb4_params.udp_gso = spin != 0;
	if (fi_param_get_int(&usb4_prov, "rail_timeout_ms", &spin) ==
	    FI_SUCCESS && spin > 0)
		usb4_params.rail_timeout_ms = spin;
	if (fi_param_get_int(&usb4_prov, "idle_block_us", &spin) ==
	    FI_SUCCESS && spin >= 0)
		usb4_params.idle_block_us = spin;
	get_size("rndv_early_size", &usb4_params.stream_early_size, 0,
		 (size_t) 1 << 30);
}

FI_EXT_INI
{
	if (usb4_libfabric_init())
		return NULL;
	usb4_prov.getinfo = usb4_getinfo;
	usb4_prov.fabric = usb4_fabric_open;
	usb4_prov.cleanup = usb4_cleanup;
	usb4_params_define();
	usb4_params_init();
	return &usb4_prov;
}
