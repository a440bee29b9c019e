/* SPDX-License-Identifier: MIT */
/*
 * answer.h - what the gateway answers about its limits (leaky-gateway): the
 * 429 of a request that does not fit now, the 4xx of one that never can, the
 * 503 / 403 of admission failures, and the RateLimit fields of a success.
 * Pure functions: header lines and a body as bytes for the proxy to send,
 * from lt_admit()'s result; no allocation, no clock, bounded output.
 *
 * A 429 describes the limit that denied, never one that passed (clients that
 * read a passing limit's reset retry at the wrong time):
 *   Retry-After        whole seconds, never below the true wait, plus a
 *                      little jitter (up to 10% of the wait, at most 1 s) so
 *                      clients that were refused together do not return
 *                      together; retry-after-ms the same wait in ms, which
 *                      the official OpenAI SDKs read first
 *   RateLimit-Policy   "<policy>";q=<capacity>;w=<window s> and
 *   RateLimit          "<policy>";r=0;t=<wait s> (lib/ratelimit.c, one
 *                      implementation with the agent)
 *   x-ratelimit-{limit,remaining,reset}-{requests|tokens} (OpenAI routes):
 *                      the denying limit's unit only; reset is the time until
 *                      that bucket is full again, in OpenAI's duration format
 *   x-should-retry: false when the wait exceeds 60 s (what openai-node
 *                      honours): clients fail fast instead of hammering
 * Body: on OpenAI routes {"error":{"message","type":"requests"|"tokens",
 * "param":null,"code":"rate_limit_exceeded"}} (the shape api.openai.com
 * sends); elsewhere application/problem+json of type quota-exceeded
 * (draft-ietf-httpapi-ratelimit-headers) with "violated-policies".
 *
 * A request that can never fit (its cost exceeds a limit's capacity) gets
 * 400 with a message saying the reservation exceeds the budget: never 429.
 */
#ifndef LT_GW_ANSWER_H
#define LT_GW_ANSWER_H

#include <stddef.h>
#include "admit.h"

#define LT_ANSWER_HEAD_MAX 1536
#define LT_ANSWER_BODY_MAX 1536
#define LT_ANSWER_SHOULD_RETRY_MAX_S 60 /* openai-node's longest honoured wait */

enum lt_answer_route {
	LT_ROUTE_OPENAI = 0, /* OpenAI-compatible: x-ratelimit-*, OpenAI error bodies */
	LT_ROUTE_GENERIC = 1, /* other routes: problem+json */
};

struct lt_answer {
	unsigned status; /* 0 on a success (lt_answer_ok adds headers only) */
	/* "Name: value\r\n" lines, Content-Type included; no status line, no empty line */
	char head[LT_ANSWER_HEAD_MAX];
	size_t head_len;
	char body[LT_ANSWER_BODY_MAX];
	size_t body_len;
	int truncated; /* a field did not fit and was left out (never for sane policies) */
};

/*
 * The answer to a request lt_admit() did not admit (r->verdict != LT_ADM_OK):
 * 429, 400 (never fits), 403 (no quota), 503 (unavailable) or 500. limits
 * and n as given to lt_admit. rnd: any random value (the jitter); model may
 * be NULL (named in the OpenAI message when given). Returns a->status.
 */
unsigned lt_answer_denied(struct lt_answer *a, enum lt_answer_route route,
			  const struct lt_admit_limit *limits, __u32 n,
			  const struct lt_admit_result *r, const char *model, unsigned rnd);

/*
 * The header lines of an admitted request's response: RateLimit-Policy and
 * RateLimit of the tightest limit (r->which), and on OpenAI routes the
 * x-ratelimit-* of the tightest request limit and the tightest token limit.
 */
void lt_answer_ok(struct lt_answer *a, enum lt_answer_route route,
		  const struct lt_admit_limit *limits, __u32 n, const struct lt_admit_result *r);

/*
 * ns in OpenAI's reset format (Go durations): rounded up to the ms, "0s",
 * "12ms", "1s", "51.189s", "6m0s", "1h2m3.5s". Returns the length.
 */
size_t lt_openai_duration(__u64 ns, char *out, size_t len);

#endif
