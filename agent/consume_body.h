/* SPDX-License-Identifier: MIT */
/*
 * consume_body.h - the consume API's answer bodies (POST /api/v1/tokens/consume,
 * GET .../quota): the quota view with jansson, and the 200 and 429 bodies
 * without it. The fast builders return a malloc'd NUL-terminated string, or
 * NULL where only jansson would write the same bytes (a string that needs an
 * escape, a rate per second that is not whole, no memory): the caller then
 * takes the jansson path, so the two never disagree.
 */
#ifndef LT_AGENT_CONSUME_BODY_H
#define LT_AGENT_CONSUME_BODY_H

#include <jansson.h>
#include <linux/types.h>
#include "decide.h" /* struct lt_view */

/* ms, rounded up, or null when the ns figure saturated (beyond 584 years) */
json_t *lt_ms_json(__u64 ns);
/* {capacity, remaining, leakRate, leakRatePerSecond, fullInMs} */
json_t *lt_view_json(const struct lt_view *v);
/* lt_view_json's members + userId, orgId (NULL: null), provider, tier, charged, and apiKey
 * {id, remaining} when key_id is not NULL */
char *lt_consume_ok_body(const struct lt_view *v, const char *user, const char *org,
			 const char *provider, const char *tier, const char *key_id,
			 long long charged, long long key_remaining);
/* the 429 problem (quota-exceeded) + retryAfterMs + quota */
char *lt_consume_deny_body(const struct lt_view *v);

#endif
