/* SPDX-License-Identifier: MIT */
/*
 * failpolicy.h - what the gateway does when the shared maps are missing or
 * cannot be opened (the agent never attached, was detached, or the gateway
 * user is not in the pins' group): per tier, config key
 * `on_maps_missing`:
 *   "closed"  (the default) answer 503 problem+json: no request passes
 *             unmetered, a budget is never exceeded because a map was gone;
 *   "open"    let the request through unmetered, and count it
 *             (lt_gateway_fail_open_total{tier}), so an operator sees that
 *             limits were not enforced and for whom.
 * Tiers not listed follow the policy's default (closed unless set). The
 * decision takes no lock and makes no system call; it never fails.
 */
#ifndef LT_FAILPOLICY_H
#define LT_FAILPOLICY_H

#include <stddef.h>
#include <linux/types.h>
#include "metrics.h" /* struct lt_mbuf */

#define LT_FAIL_MAX_TIERS 16
#define LT_FAIL_TIER_LEN 32

enum lt_fail_mode {
	LT_FAIL_CLOSED = 0, /* 503 */
	LT_FAIL_OPEN = 1, /* through, unmetered, counted */
};

struct lt_fail_policy {
	enum lt_fail_mode dflt; /* tiers not listed */
	int n;
	char tier[LT_FAIL_MAX_TIERS][LT_FAIL_TIER_LEN];
	enum lt_fail_mode mode[LT_FAIL_MAX_TIERS];
	/* counters, relaxed atomics: [i] per listed tier, [LT_FAIL_MAX_TIERS] the others */
	__u64 opened[LT_FAIL_MAX_TIERS + 1]; /* requests let through unmetered */
	__u64 closed[LT_FAIL_MAX_TIERS + 1]; /* requests answered 503 */
};

/* Every tier closed: the documented default. */
void lt_fail_policy_init(struct lt_fail_policy *p);

/* "closed" or "open" into *out; -EINVAL otherwise. */
int lt_fail_mode_parse(const char *s, enum lt_fail_mode *out);

/*
 * Sets tier's mode from the config word (tier NULL or "*": the default).
 * -EINVAL (bad word, bad tier name) or -ENOSPC, with a sentence in err.
 * Configuration time only: not concurrent with lt_fail_decide.
 */
int lt_fail_policy_set(struct lt_fail_policy *p, const char *tier, const char *mode, char *err,
		       size_t errlen);

/*
 * The maps are unusable for a request of tier (NULL or unknown: the
 * default): LT_FAIL_OPEN (send it on, unmetered) or LT_FAIL_CLOSED (answer
 * 503, Retry-After). Counted either way.
 */
enum lt_fail_mode lt_fail_decide(struct lt_fail_policy *p, const char *tier);

/* lt_gateway_fail_open_total{tier} and lt_gateway_fail_closed_total{tier}. */
void lt_fail_policy_metrics(const struct lt_fail_policy *p, struct lt_mbuf *b);

#endif
