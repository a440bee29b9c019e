// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include "ratelimit.h"
#include "units.h"

#define LT_RL_NS 1000000000ULL
#define LT_RL_YEAR_9999_END 253402300799LL /* 9999-12-31T23:59:59Z, Unix seconds */

static uint64_t lt_sf(uint64_t v)
{
	return v > LT_SF_INT_MAX ? LT_SF_INT_MAX : v;
}

uint64_t lt_rl_ceil_s(uint64_t ns)
{
	uint64_t s = ns / LT_RL_NS + (ns % LT_RL_NS != 0);

	return s ? s : 1;
}

uint64_t lt_rl_window_s(uint64_t capacity, uint64_t leak_tokens, uint64_t leak_period_ns)
{
	/* capacity * period fits 128 bits; so does the divisor */
	unsigned __int128 num = (unsigned __int128)capacity * leak_period_ns;
	unsigned __int128 den = (unsigned __int128)leak_tokens * LT_RL_NS, w;

	if (!leak_tokens || !leak_period_ns)
		return 0;
	w = num / den + (num % den != 0);
	if (!w)
		return 1;
	return w > LT_SF_INT_MAX ? LT_SF_INT_MAX : (uint64_t)w;
}

void lt_rl_fields(const char *policy, uint64_t quota, uint64_t window_s, uint64_t remaining,
		  uint64_t reset_s, char *pol, size_t plen, char *cur, size_t clen)
{
	struct lt_sb b;

	/* on every decision: the builder (lib/units.h), not snprintf; the same text */
	lt_sb_init(&b, pol, plen);
	lt_sb_str(&b, "\"");
	lt_sb_str(&b, policy);
	lt_sb_str(&b, "\";q=");
	lt_sb_u64(&b, lt_sf(quota));
	lt_sb_str(&b, ";w=");
	lt_sb_u64(&b, lt_sf(window_s));
	lt_sb_init(&b, cur, clen);
	lt_sb_str(&b, "\"");
	lt_sb_str(&b, policy);
	lt_sb_str(&b, "\";r=");
	lt_sb_u64(&b, lt_sf(remaining));
	lt_sb_str(&b, ";t=");
	lt_sb_u64(&b, lt_sf(reset_s));
}

int lt_rl_rfc3339_after(int64_t now_unix, uint64_t delta_s, char *out, size_t len)
{
	struct tm tm;
	time_t t;

	if (len)
		out[0] = '\0';
	if (now_unix < 0 || now_unix > LT_RL_YEAR_9999_END ||
	    delta_s > (uint64_t)(LT_RL_YEAR_9999_END - now_unix))
		return -ERANGE;
	t = (time_t)(now_unix + (int64_t)delta_s);
	if (!gmtime_r(&t, &tm) || !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return -ERANGE;
	return 0;
}
