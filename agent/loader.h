/* SPDX-License-Identifier: MIT */
/*
 * loader.h - loads bpf/admit.bpf.c, pins and reuses its maps, attaches it to
 * interfaces (XDP native -> generic fallback, or TC ingress) and detaches.
 */
#ifndef LT_AGENT_LOADER_H
#define LT_AGENT_LOADER_H

#include <stddef.h>
#include "lt_abi.h"
#include "admit.skel.h"
#include "maps.h"

#define LT_TC_HANDLE 0x1eaf
#define LT_TC_PRIO 1

/* What the operator asks for; LT_REQ_XDP tries native then generic. */
enum lt_mode_req {
	LT_REQ_XDP = 0,
	LT_REQ_XDP_NATIVE,
	LT_REQ_XDP_GENERIC,
	LT_REQ_TC,
};

struct lt_load_opts {
	const char *pin_dir; /* NULL: do not pin (tests, bench) */
	__u32 max_sources; /* lt_src entries */
	int fake_clock; /* tests: read time from lt_fake_now_ns */
	int no_pen_cache; /* bench: disable the per-CPU penalty memo */
};

/* Opens and loads the skeleton; reuses compatible pinned maps, pins new ones. */
struct lt_admit *lt_skel_load(const struct lt_load_opts *o, char *err, size_t errlen);

int lt_mode_req_parse(const char *s, enum lt_mode_req *out);
const char *lt_mode_name(__u32 mode);

/*
 * Attaches to ifname (or adopts our own program already there, replacing it
 * atomically) and records it in lt_ifaces. Returns 0 or -errno with err set:
 * -ENODEV unknown interface, -EBUSY another program is attached.
 */
int lt_iface_attach(struct lt_admit *skel, const char *ifname, enum lt_mode_req req, char *err,
		    size_t errlen);

/* Detaches what lt_ifaces records for ifindex and forgets it. */
int lt_iface_detach(int ifaces_fd, __u32 ifindex, char *err, size_t errlen);

/* If a program of ours is attached to ifindex: its id and mode, else 0. */
__u32 lt_iface_prog(__u32 ifindex, __u32 mode);

/* The skeleton's map fds, in lt_maps order. */
void lt_maps_from_skel(struct lt_admit *skel, struct lt_maps *m);

/*
 * Maps bpf_jiffies64() onto CLOCK_MONOTONIC (see lt_config in lt_abi.h):
 * fills cfg->clk_* (an ideal jiffies edge and TICK_NSEC). Takes ~270 ms (HZ <= 400) or ~1.3 s.
 */
int lt_clock_calibrate(struct lt_admit *skel, struct lt_config *cfg, char *err, size_t errlen);

/* Removes every pin under pin_dir (and the dir). */
int lt_unpin_all(const char *pin_dir);

#endif
