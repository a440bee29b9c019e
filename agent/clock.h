/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the tick clock's calibration (lt_abi.h: the clock): the exact
 * jiffy length of the running kernel, derived from two observed jiffies
 * edges. Pure: the probe runs are in loader.c (lt_clock_calibrate).
 */
#ifndef LT_AGENT_CLOCK_H
#define LT_AGENT_CLOCK_H

#include <linux/types.h>

/*
 * One jiffies edge as user space sees it: the last probe that read the old
 * jiffies value ran at ktime k_before, the first that read j at k_after.
 */
struct lt_jiffy_edge {
	__u64 k_before; /* CLOCK_MONOTONIC ns */
	__u64 k_after; /* CLOCK_MONOTONIC ns */
	__u64 j; /* jiffies64 from the edge on */
};

/* The kernel's jiffy length for an integer HZ: TICK_NSEC = round(1e9 / HZ). */
static inline __u64 lt_tick_nsec(__u32 hz)
{
	return (1000000000ULL + hz / 2) / hz;
}

/*
 * Jiffies advance by one every TICK_NSEC of CLOCK_MONOTONIC exactly (the
 * tick's jiffies update counts whole TICK_NSEC periods), so two edges
 * J jiffies apart are J * TICK_NSEC apart, up to each edge's bracket and the
 * tick interrupt's latency (at most latency_ns). The one integer HZ whose
 * J * TICK_NSEC fits the measured interval is the kernel's.
 * Returns 0 with *ns_per_jiffy = TICK_NSEC and *hz; -EINVAL for edges out
 * of order; -ERANGE when no HZ or more than one fits (measure again over a
 * longer interval).
 */
int lt_clock_derive(const struct lt_jiffy_edge *e0, const struct lt_jiffy_edge *e1,
		    __u64 latency_ns, __u64 *ns_per_jiffy, __u32 *hz);

/* The clock's base: an ideal edge, so the clock never runs ahead of it. */
__u64 lt_clock_base(const struct lt_jiffy_edge *e0, const struct lt_jiffy_edge *e1,
		    __u64 ns_per_jiffy);

#endif
