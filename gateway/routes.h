/* SPDX-License-Identifier: MIT */
/*
 * routes.h - the gateway's one route table (two kinds: general API routes and
 * LLM routes, see gw_config.h), the model map, and where each route kind's ops
 * (exchange.h) are plugged in.
 *
 * Matching: the enabled routes whose prefix matches the path (a prefix match
 * ends at a '/' boundary or is the whole path: "/api" matches "/api" and
 * "/api/x", never "/apix"; exact routes match the whole path) and whose
 * method filter allows the method; of those the highest priority, then the
 * longest prefix, then the first in the file.
 */
#ifndef GW_ROUTES_H
#define GW_ROUTES_H

#include <stddef.h>
#include "gw_config.h"
#include "exchange.h"

/* 405 when a route matched the path but not the method: *method_mismatch set. */
const struct gw_route *gw_route_match(const struct gw_config *c, const char *method,
				      size_t method_len, const char *path, size_t path_len,
				      int *method_mismatch);

/* GW_M_* bit of a method name. */
unsigned gw_method_bit(const char *method, size_t len);

/*
 * The path sent upstream: the route's prefix removed when strip_prefix (and
 * "/" when nothing is left), the query kept. Written to out (NUL-terminated);
 * its length, or -E2BIG.
 */
int gw_route_upstream_path(const struct gw_route *r, const char *target, size_t target_len,
			   char *out, size_t outlen);

/*
 * The model map: the rule for a model name. An exact pattern wins over
 * wildcards; among wildcards the one with the most literal characters, then
 * the first in the file. NULL when none matches.
 */
const struct gw_model_rule *gw_model_lookup(const struct gw_config *c, const char *model,
					    size_t len);
/* Glob match: '*' any run (also empty), '?' one byte. */
int gw_glob_match(const char *pattern, const char *s, size_t len);

/*
 * Route-kind ops. The LLM and NATIVE routes use what is registered here when
 * a config is loaded (gateway/main.c registers them before the first load);
 * until the lead's gateway/llm_route.c registers its own, gw_llm_forward_ops
 * forwards an LLM request to the first provider of its model's chain.
 */
void gw_routes_set_ops(enum gw_route_kind kind, const struct gw_route_ops *ops);
const struct gw_route_ops *gw_routes_ops(enum gw_route_kind kind);
extern const struct gw_route_ops gw_llm_forward_ops;
extern const struct gw_route_ops gw_native_ops;

#endif
