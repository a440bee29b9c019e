/* SPDX-License-Identifier: MIT */
/*
 * ratelimit.h - the numbers a client is told about a leaky bucket: the
 * RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-
 * headers-11), Retry-After, and absolute times (liblt).
 *
 * Honest numbers for slow buckets: a field is the real value, or, when the
 * real value does not fit the field's type, the largest value the type can
 * carry (which is then a lower bound, never a lie in the client's favour).
 * The draft's q, w, r and t are Structured Field Integers, at most 15
 * digits (RFC 8941 3.3.1): they saturate at LT_SF_INT_MAX.
 *   q  the capacity C, tokens
 *   w  the window C/R: seconds for an empty bucket to drain a full one
 *   r  the tokens that fit now (0 when this request was refused)
 *   t  seconds until the bucket is empty again (refused: until this
 *      request would fit)
 * An RFC 3339 time is written only up to 9999-12-31T23:59:59Z; beyond
 * that (or when the delay itself is beyond 2^64 ns) it is absent (null).
 */
#ifndef LT_RATELIMIT_H
#define LT_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define LT_SF_INT_MAX 999999999999999ULL

/* ceil(ns / 1 s), at least 1: a Retry-After is never early. No overflow. */
uint64_t lt_rl_ceil_s(uint64_t ns);

/*
 * The window C/R in seconds, rounded up, at least 1, saturated at
 * LT_SF_INT_MAX: capacity tokens at leak_tokens per leak_period_ns.
 * 0 if the bucket does not limit (leak_tokens or leak_period_ns 0).
 */
uint64_t lt_rl_window_s(uint64_t capacity, uint64_t leak_tokens, uint64_t leak_period_ns);

/*
 * RateLimit-Policy: "<policy>";q=<quota>;w=<window_s> and
 * RateLimit:        "<policy>";r=<remaining>;t=<reset_s>,
 * each number saturated at LT_SF_INT_MAX.
 */
void lt_rl_fields(const char *policy, uint64_t quota, uint64_t window_s, uint64_t remaining,
		  uint64_t reset_s, char *pol, size_t plen, char *cur, size_t clen);

/*
 * now_unix + delta_s as "YYYY-MM-DDTHH:MM:SSZ"; -ERANGE (and "") when it
 * would be after 9999-12-31T23:59:59Z.
 */
int lt_rl_rfc3339_after(int64_t now_unix, uint64_t delta_s, char *out, size_t len);

#endif
