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
 * Ownership: a program is ours when it uses one of our maps. Two installs
 * (two pin dirs) run programs of the same name on different maps; neither may
 * replace or detach the other's. The set of our map ids comes from the
 * loaded skeleton or from the pins (commands that run without a skeleton).
 */
#define LT_OWNER_MAX 32
struct lt_owner {
	__u32 map_ids[LT_OWNER_MAX];
	__u32 n;
};
void lt_owner_from_skel(struct lt_admit *skel, struct lt_owner *own);
/* No pin dir: an empty set (nothing is ours). */
int lt_owner_from_pins(const char *pin_dir, struct lt_owner *own);

/* What sits on an interface's hook: XDP (any mode), or our TC handle/prio. */
struct lt_hook {
	__u32 prog_id; /* 0: the hook is free */
	__u32 mode; /* enum lt_attach_mode prog_id is attached in */
	int ours; /* it uses one of the owner's maps */
	int leaky; /* it is a leaky-tokens program (by name), ours or not */
	char name[16]; /* its BPF name */
	__u32 map_ids[LT_OWNER_MAX];
	__u32 nmaps;
};
/* mode: LT_MODE_TC for the TC hook, any XDP mode for the XDP hook. Probes quietly. */
void lt_hook_query(const struct lt_owner *own, __u32 ifindex, __u32 mode, struct lt_hook *h);
/*
 * Names a program that is not ours, for an error: its name and id and, for
 * another leaky-tokens install, the pin dir of its maps (found in bpffs).
 */
void lt_hook_describe(const struct lt_hook *h, char *buf, size_t len);

/*
 * Before anything is created: -ENODEV unknown interface, -EBUSY a program
 * that is not ours (own: from the pins, if any) holds the hook. err says which.
 */
int lt_iface_precheck(const struct lt_owner *own, const char *ifname, enum lt_mode_req req,
		      char *err, size_t errlen);

/*
 * Attaches to ifname (or adopts our own program already there, replacing it
 * atomically) and records it in lt_ifaces. Returns 0 or -errno with err set:
 * -ENODEV unknown interface, -EBUSY a program that is not ours is attached
 * (never replaced; err names it, and the pin dir of another install's maps).
 */
int lt_iface_attach(struct lt_admit *skel, const char *ifname, enum lt_mode_req req, char *err,
		    size_t errlen);

/*
 * Forgets ifindex's record in lt_ifaces and detaches our program from it; a
 * program that is not ours (another install's, or a foreign one) is left alone.
 */
int lt_iface_detach(const struct lt_owner *own, int ifaces_fd, __u32 ifindex, char *err,
		    size_t errlen);

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
