// SPDX-License-Identifier: MIT
#include <errno.h>
#include "clock.h"

#define LT_HZ_MIN 10
#define LT_HZ_MAX 100000

int lt_clock_derive(const struct lt_jiffy_edge *e0, const struct lt_jiffy_edge *e1,
		    __u64 latency_ns, __u64 *ns_per_jiffy, __u32 *hz)
{
	__u64 jd, lo, hi, mid, est, span;
	__u32 h, found = 0, n = 0;

	if (e1->j <= e0->j || e0->k_after < e0->k_before || e1->k_after < e1->k_before ||
	    e1->k_before < e0->k_after)
		return -EINVAL;
	jd = e1->j - e0->j;
	/* the interval between the two edges, widened by the latency */
	lo = e1->k_before - e0->k_after;
	hi = e1->k_after - e0->k_before;
	lo = lo > latency_ns ? lo - latency_ns : 0;
	hi += latency_ns;
	mid = lo + (hi - lo) / 2;
	if (!mid)
		return -ERANGE;
	/* HZ = 1e9 * jd / mid, rounded; its neighbours are the only candidates */
	est = (1000000000ULL * jd + mid / 2) / mid;
	for (h = est > 1 ? (__u32)est - 1 : 1; h <= est + 1; h++) {
		if (h < LT_HZ_MIN || h > LT_HZ_MAX)
			continue;
		span = jd * lt_tick_nsec(h);
		if (span >= lo && span <= hi) {
			found = h;
			n++;
		}
	}
	if (n != 1)
		return -ERANGE;
	*hz = found;
	*ns_per_jiffy = lt_tick_nsec(found);
	return 0;
}

__u64 lt_clock_base(const struct lt_jiffy_edge *e0, const struct lt_jiffy_edge *e1,
		    __u64 ns_per_jiffy)
{
	/*
	 * An edge is seen late by the tick interrupt's latency, never early:
	 * the earlier of the two edges (carried to e1) is nearer the ideal.
	 */
	__u64 a = e0->k_before + (e1->j - e0->j) * ns_per_jiffy;

	return a < e1->k_before ? a : e1->k_before;
}
