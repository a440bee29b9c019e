// SPDX-License-Identifier: MIT
/* routes.c - route matching, prefix stripping, the model map, route-kind ops (see routes.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include "routes.h"

unsigned gw_method_bit(const char *m, size_t n)
{
	switch (n) {
	case 3:
		if (!memcmp(m, "GET", 3))
			return GW_M_GET;
		if (!memcmp(m, "PUT", 3))
			return GW_M_PUT;
		break;
	case 4:
		if (!memcmp(m, "POST", 4))
			return GW_M_POST;
		if (!memcmp(m, "HEAD", 4))
			return GW_M_HEAD;
		break;
	case 5:
		if (!memcmp(m, "PATCH", 5))
			return GW_M_PATCH;
		break;
	case 6:
		if (!memcmp(m, "DELETE", 6))
			return GW_M_DELETE;
		break;
	case 7:
		if (!memcmp(m, "OPTIONS", 7))
			return GW_M_OPTIONS;
		break;
	}
	return GW_M_OTHER;
}

static int prefix_matches(const struct gw_route *r, const char *path, size_t len)
{
	if (r->exact)
		return len == r->prefix_len && !memcmp(path, r->prefix, len);
	if (len < r->prefix_len || memcmp(path, r->prefix, r->prefix_len))
		return 0;
	/* "/" matches everything; otherwise the prefix ends at a segment boundary */
	return r->prefix_len == 1 || len == r->prefix_len || path[r->prefix_len] == '/';
}

const struct gw_route *gw_route_match(const struct gw_config *c, const char *method,
				      size_t method_len, const char *path, size_t path_len,
				      int *method_mismatch)
{
	unsigned bit = gw_method_bit(method, method_len);

	*method_mismatch = 0;
	/* routes are sorted by priority, prefix length, file order: the first match wins */
	for (unsigned i = 0; i < c->nroutes; i++) {
		const struct gw_route *r = &c->routes[i];
		if (!r->enabled || !prefix_matches(r, path, path_len))
			continue;
		if (!(r->methods & bit)) {
			*method_mismatch = 1;
			continue;
		}
		return r;
	}
	return NULL;
}

int gw_route_upstream_path(const struct gw_route *r, const char *target, size_t len, char *out,
			   size_t outlen)
{
	size_t skip = 0, n;

	if (r->strip_prefix && r->prefix_len > 1 && len >= r->prefix_len &&
	    !memcmp(target, r->prefix, r->prefix_len))
		skip = r->prefix_len;
	target += skip;
	len -= skip;
	n = len;
	if (!len || target[0] != '/') {
		/* "/api" stripped from "/api" or "/api?q" leaves "" or "?q": send "/" + rest */
		if (len + 2 > outlen)
			return -E2BIG;
		out[0] = '/';
		memcpy(out + 1, target, len);
		out[len + 1] = 0;
		return len + 1;
	}
	if (n + 1 > outlen)
		return -E2BIG;
	memcpy(out, target, n);
	out[n] = 0;
	return n;
}

int gw_glob_match(const char *p, const char *s, size_t len)
{
	const char *star = NULL;
	size_t i = 0, mark = 0;

	/* iterative glob with one backtrack point: linear-ish, no recursion */
	while (i < len) {
		if (*p == '*') {
			star = p++;
			mark = i;
		} else if (*p && (*p == '?' || *p == s[i])) {
			p++;
			i++;
		} else if (star) {
			p = star + 1;
			i = ++mark;
		} else {
			return 0;
		}
	}
	while (*p == '*')
		p++;
	return !*p;
}

static unsigned literal_chars(const char *p)
{
	unsigned n = 0;

	for (; *p; p++)
		n += *p != '*' && *p != '?';
	return n;
}

const struct gw_model_rule *gw_model_lookup(const struct gw_config *c, const char *model,
					    size_t len)
{
	const struct gw_model_rule *best = NULL;
	unsigned best_lit = 0;

	for (unsigned i = 0; i < c->nmodels; i++) {
		const struct gw_model_rule *m = &c->models[i];
		if (!strpbrk(m->pattern, "*?")) {
			if (strlen(m->pattern) == len && !memcmp(m->pattern, model, len))
				return m;
			continue;
		}
		if (gw_glob_match(m->pattern, model, len)) {
			unsigned lit = literal_chars(m->pattern);
			if (!best || lit > best_lit) {
				best = m;
				best_lit = lit;
			}
		}
	}
	return best;
}

/* --- route-kind ops ------------------------------------------------------------ */

static int llm_head(struct gw_exchange *x)
{
	gw_want_body(x, gw_route(x)->max_body);
	return GW_CONTINUE;
}

/* Until gateway/llm_route.c: read "model", forward to the first provider of its chain. */
static int llm_body(struct gw_exchange *x, const char *body, size_t len)
{
	const struct gw_model_rule *rule;
	json_error_t je;
	json_t *root, *model;
	char detail[200];
	int r;

	root = json_loadb(body, len, 0, &je);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return gw_answer_problem(x, 400, "bad-json", "Bad Request",
					 "the body must be a JSON object");
	}
	model = json_object_get(root, "model");
	if (!json_is_string(model)) {
		json_decref(root);
		return gw_answer_problem(x, 400, "missing-model", "Bad Request",
					 "\"model\" (a string) is required");
	}
	rule = gw_model_lookup(gw_config_of(x), json_string_value(model),
			       json_string_length(model));
	if (!rule) {
		snprintf(detail, sizeof(detail), "no provider serves model \"%.64s\"",
			 json_string_value(model));
		json_decref(root);
		return gw_answer_problem(x, 400, "unknown-model", "Bad Request", detail);
	}
	json_decref(root);
	r = gw_use_provider(x, rule->providers[0], NULL);
	return r < 0 ? r : GW_CONTINUE;
}

const struct gw_route_ops gw_llm_forward_ops = {
	.name = "llm-forward",
	.on_request_head = llm_head,
	.on_request_body = llm_body,
};

static int native_head(struct gw_exchange *x)
{
	int r = gw_use_provider(x, gw_route(x)->provider, NULL);
	return r < 0 ? r : GW_CONTINUE;
}

const struct gw_route_ops gw_native_ops = {
	.name = "native",
	.on_request_head = native_head,
};

static const struct gw_route_ops *kind_ops[3] = {
	[GW_ROUTE_API] = NULL,
	[GW_ROUTE_LLM] = &gw_llm_forward_ops,
	[GW_ROUTE_NATIVE] = &gw_native_ops,
};

void gw_routes_set_ops(enum gw_route_kind kind, const struct gw_route_ops *ops)
{
	if ((unsigned)kind < 3)
		kind_ops[kind] = ops;
}

const struct gw_route_ops *gw_routes_ops(enum gw_route_kind kind)
{
	return (unsigned)kind < 3 ? kind_ops[kind] : NULL;
}
