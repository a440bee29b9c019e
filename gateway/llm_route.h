/* SPDX-License-Identifier: MIT */
/*
 * llm_route.h - the ops of the gateway's LLM routes (OpenAI-compatible
 * endpoints and the per-provider native prefixes): who is calling, what the
 * request may cost at worst, admission of that cost on every limit at once,
 * the provider (breakers, fallback chain), the usage the answer reports, the
 * cut of a stream at its reservation, settlement, and the usage record.
 *
 * The pieces are liblt's and the gateway's own modules; this file only
 * orders them:
 *   gateway/identity.c   credentials -> tenant (the agent's auth code)
 *   gateway/llm_body.c   body -> model, output limit, prompt bound, rewrite
 *   gateway/admit.c      all-or-nothing admission, settlement, leases
 *   gateway/answer.c     429 / 4xx / RateLimit fields
 *   gateway/llm_usage.c  usage from JSON and SSE, output count, the cut
 *   lib/breaker.c        shared circuit breakers
 *   lib/reqlog.c         the usage record to the agent
 *
 * What is charged (the rule, also in README.md):
 *   - the answer reported usage (JSON usage, the stream's usage event):
 *     exactly that, the rest of the reservation is given back;
 *   - a stream without usage: its counted output (bytes of generated text, an
 *     upper bound) plus the prompt bound;
 *   - the client left: the gateway goes on reading the provider's answer for
 *     admission.keep_reading_ms to learn its usage, as above; if it does not
 *     end by then, the whole reservation is charged;
 *   - the provider was never reached (connect refused): nothing (undone);
 *   - the provider failed after the request went (5xx, timeout, broken
 *     stream) without reporting usage: the whole reservation (it may have
 *     generated; the bound is what it can have cost);
 *   - the gateway process died: its lease stays, and the agent settles it
 *     by charging the whole reservation after the lease deadline.
 */
#ifndef GW_LLM_ROUTE_H
#define GW_LLM_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include "escalate.h"
#include "exchange.h"

#define GW_LLM_MAX_TIERS 16

struct gw_llm_tier {
	char name[32];
	uint64_t default_output_tokens; /* output allowance when the client sets none */
	int fail_open; /* maps missing: 1 = forward unmetered (counted), 0 = 503 */
};

/* The "admission" object of the gateway's config (defaults in llm_route.c). */
struct gw_llm_opts {
	char pin_dir[256]; /* the agent's pinned maps */
	char agent[64]; /* the agent's API, IPv4 ADDR:PORT: it makes new buckets */
	char state_dir[256]; /* the agent's state dir: its JWT secret (jwt-secret) */
	char admin_role[32];
	char default_tier[32];
	unsigned ntiers; /* in the agent's tier_order */
	struct gw_llm_tier tiers[GW_LLM_MAX_TIERS];
	uint32_t keep_reading_ms; /* after the client left, to learn the usage */
	uint32_t lease_ms; /* a request's lease deadline after admission */
	uint32_t max_body; /* bytes of an LLM request body */
	/* escalation to the kernel (gateway/escalate.h): "escalation" */
	struct gw_esc_opts esc;
	/* circuit breakers per provider (lib/breaker.h), shared by every gateway process */
	uint32_t brk_fail_threshold; /* consecutive failures that open it */
	uint32_t brk_recovery_ms; /* open this long before a probe */
	uint32_t brk_probes; /* half-open probes that must succeed */
	uint32_t brk_probe_timeout_ms; /* an unanswered probe is re-issued after this */
};

/* Fills o with the documented defaults. */
void gw_llm_opts_default(struct gw_llm_opts *o);
/* Reads the "admission" object (jansson json_t *, NULL = defaults). -EINVAL and err. */
int gw_llm_opts_parse(const void *json_admission, struct gw_llm_opts *o, char *err, size_t errlen);

/*
 * Opens what admission needs (pins, the JWT secret) and registers the LLM
 * and native route ops. Called once by the master before the workers fork.
 * Missing maps are not an error: requests then follow each tier's fail
 * policy, and the maps are looked for again at most once a second.
 */
int gw_llm_init(const struct gw_llm_opts *o, char *err, size_t errlen);
void gw_llm_fini(void);

/*
 * What the general API routes (gateway/api_route.c) share with the LLM
 * routes: the worker's identity cache and an admitter over the same maps,
 * without leases (a request-unit charge is final: nothing is left for the
 * agent to settle). -ENOENT while the maps are missing (looked for again at
 * most once a second).
 */
struct lt_gw_identity;
struct lt_admitter;
int gw_llm_shared(struct lt_gw_identity **id, struct lt_admitter **adm);

extern const struct gw_route_ops gw_llm_ops;

#endif
