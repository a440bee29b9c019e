// SPDX-License-Identifier: MIT
/*
 * config_cp.c - the control-plane sections of the config: "api", "jwt" and
 * "token". Same conventions as config.c: strict, errors cite the JSON pointer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include "config.h"
#include "config_cp.h"
#include "units.h"

__attribute__((format(printf, 4, 5))) static int lt_fail(char *err, size_t errlen, const char *ptr,
							 const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s: %s", ptr, msg);
	return -EINVAL;
}

static int lt_str(json_t *v, const char *ptr, char *out, size_t len, char *err, size_t errlen)
{
	if (json_is_null(v))
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) >= len)
		return lt_fail(err, errlen, ptr, "expected a string of at most %zu bytes", len - 1);
	snprintf(out, len, "%s", json_string_value(v));
	return 0;
}

/* A name: letters, digits, '-', '_' (providers, tiers). */
int lt_cp_name_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (!n || n >= 32)
		return 0;
	for (i = 0; i < n; i++)
		if (!(s[i] == '-' || s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

int lt_cp_limit_parse(json_t *v, const char *ptr, __u64 *cap, __u64 *tok, __u64 *per, char *err,
		      size_t errlen)
{
	json_t *c = json_object_get(v, "capacity"), *r = json_object_get(v, "rate");
	struct lt_rate chk;
	const char *k;
	json_t *x;
	char p[160];

	if (!json_is_object(v))
		return lt_fail(err, errlen, ptr, "expected {\"capacity\": N, \"rate\": \"N/s\"}");
	json_object_foreach(v, k, x) {
		if (strcmp(k, "capacity") && strcmp(k, "rate"))
			return lt_fail(err, errlen, ptr, "unknown field \"%s\"", k);
	}
	snprintf(p, sizeof(p), "%s/capacity", ptr);
	if (!json_is_integer(c) || json_integer_value(c) < 1 || json_integer_value(c) > (1LL << 40))
		return lt_fail(err, errlen, p, "expected an integer 1..2^40 (tokens)");
	snprintf(p, sizeof(p), "%s/rate", ptr);
	if (!json_is_string(r) || lt_rate_parse(json_string_value(r), tok, per))
		return lt_fail(err, errlen, p, "expected a leak rate like \"100/s\", \"6000/m\"");
	*cap = (__u64)json_integer_value(c);
	if (lt_rate_init(&chk, *cap, *tok, *per))
		return lt_fail(err, errlen, p, "out of range (1 per 10 years .. 2e9/s)");
	return 0;
}

static int lt_limits(json_t *v, const char *ptr, const char *kind, const char *name,
		     struct lt_cp_config *cp, char *err, size_t errlen)
{
	const char *prov;
	json_t *x;
	char p[160];
	int ret;

	if (!json_is_object(v))
		return lt_fail(err, errlen, ptr, "expected {\"<provider>|*\": {capacity, rate}}");
	json_object_foreach(v, prov, x) {
		struct lt_cp_limit *l;

		snprintf(p, sizeof(p), "%s/%s", ptr, prov);
		if (strcmp(prov, "*") && !lt_cp_name_ok(prov))
			return lt_fail(err, errlen, p, "not a provider name");
		if (cp->nlimits == LT_CP_MAX_LIMITS)
			return lt_fail(err, errlen, p, "too many limits");
		l = &cp->limits[cp->nlimits];
		ret = lt_cp_limit_parse(x, p, &l->capacity, &l->tokens, &l->period_ns, err, errlen);
		if (ret)
			return ret;
		snprintf(l->kind, sizeof(l->kind), "%s", kind);
		snprintf(l->name, sizeof(l->name), "%s", name);
		snprintf(l->provider, sizeof(l->provider), "%s", prov);
		cp->nlimits++;
	}
	return 0;
}

/* token.key_requests: {"<tier>|*": {capacity, rate}}, the request rate of API keys by tier. */
static int lt_key_requests(json_t *v, const char *ptr, struct lt_cp_config *cp, char *err,
			   size_t errlen)
{
	const char *tier;
	json_t *x;
	char p[160];
	int ret;

	if (!json_is_object(v))
		return lt_fail(err, errlen, ptr, "expected {\"<tier>|*\": {capacity, rate}}");
	json_object_foreach(v, tier, x) {
		struct lt_cp_limit *l;

		snprintf(p, sizeof(p), "%s/%s", ptr, tier);
		if (strcmp(tier, "*") && !lt_cp_name_ok(tier))
			return lt_fail(err, errlen, p, "not a tier name");
		if (cp->nlimits == LT_CP_MAX_LIMITS)
			return lt_fail(err, errlen, p, "too many limits");
		l = &cp->limits[cp->nlimits];
		ret = lt_cp_limit_parse(x, p, &l->capacity, &l->tokens, &l->period_ns, err, errlen);
		if (ret)
			return ret;
		snprintf(l->kind, sizeof(l->kind), "keyreq");
		snprintf(l->name, sizeof(l->name), "%s", tier);
		snprintf(l->provider, sizeof(l->provider), "*");
		cp->nlimits++;
	}
	return 0;
}

void lt_cp_defaults(struct lt_cp_config *cp)
{
	memset(cp, 0, sizeof(*cp));
	snprintf(cp->listen, sizeof(cp->listen), "127.0.0.1:9090");
	cp->max_body = 16384;
	cp->threads = 2;
	cp->conns_per_client = 256;
	cp->request_timeout_ns = 10 * LT_NS_PER_SEC;
	cp->jwt_leeway_s = 30;
	cp->issued_ttl_s = 900;
	strcpy(cp->roles_claim, "roles");
	strcpy(cp->orgs_claim, "orgs");
	strcpy(cp->admin_role, "ADMIN");
	strcpy(cp->default_tier, "USER");
	cp->max_buckets = LT_MAX_SLOTS - 1;
	cp->bucket_idle_ns = 600 * LT_NS_PER_SEC;
	cp->request_log_rows = 100000;
	cp->request_log_age_ns = 30 * 86400 * LT_NS_PER_SEC;
	cp->request_log_max_bytes = LT_REQUEST_LOG_MAX_BYTES;
	cp->request_log_consume_rate = 1000;
}

int lt_cp_parse(json_t *root, struct lt_cp_config *cp, char *err, size_t errlen)
{
	json_t *api = json_object_get(root, "api"), *jwt = json_object_get(root, "jwt");
	json_t *tok = json_object_get(root, "token"), *v, *x;
	const char *k;
	char p[160];
	size_t i;
	int ret;

	if (api) {
		if (!json_is_object(api))
			return lt_fail(err, errlen, "/api", "expected an object");
		json_object_foreach(api, k, v) {
			snprintf(p, sizeof(p), "/api/%s", k);
			if (!strcmp(k, "listen")) {
				ret = lt_str(v, p, cp->listen, sizeof(cp->listen), err, errlen);
				if (!ret && !strrchr(cp->listen, ':'))
					ret = lt_fail(err, errlen, p, "expected ADDR:PORT");
			} else if (!strcmp(k, "max_body")) {
				ret = json_is_integer(v) && json_integer_value(v) >= 256 &&
						      json_integer_value(v) <= (1 << 20) ?
					      0 :
					      lt_fail(err, errlen, p,
						      "expected 256..1048576 bytes");
				if (!ret)
					cp->max_body = (__u32)json_integer_value(v);
			} else if (!strcmp(k, "threads")) {
				ret = json_is_integer(v) && json_integer_value(v) >= 1 &&
						      json_integer_value(v) <= 64 ?
					      0 :
					      lt_fail(err, errlen, p, "expected 1..64");
				if (!ret)
					cp->threads = (__u32)json_integer_value(v);
			} else if (!strcmp(k, "max_conns_per_client")) {
				ret = json_is_integer(v) && json_integer_value(v) >= 1 &&
						      json_integer_value(v) <= 4096 ?
					      0 :
					      lt_fail(err, errlen, p, "expected 1..4096");
				if (!ret)
					cp->conns_per_client = (__u32)json_integer_value(v);
			} else if (!strcmp(k, "request_timeout")) {
				ret = json_is_string(v) &&
						      !lt_duration_parse(json_string_value(v),
									 &cp->request_timeout_ns) &&
						      cp->request_timeout_ns >= LT_NS_PER_SEC &&
						      cp->request_timeout_ns <=
							      3600 * LT_NS_PER_SEC ?
					      0 :
					      lt_fail(err, errlen, p,
						      "expected a duration from \"1s\" to \"1h\"");
			} else {
				ret = lt_fail(err, errlen, p, "unknown field");
			}
			if (ret)
				return ret;
		}
	}
	if (jwt) {
		if (!json_is_object(jwt))
			return lt_fail(err, errlen, "/jwt", "expected an object");
		json_object_foreach(jwt, k, v) {
			snprintf(p, sizeof(p), "/jwt/%s", k);
			if (!strcmp(k, "hs256_secret"))
				ret = lt_str(v, p, cp->jwt_secret, sizeof(cp->jwt_secret), err,
					     errlen);
			else if (!strcmp(k, "jwks"))
				ret = lt_str(v, p, cp->jwt_jwks, sizeof(cp->jwt_jwks), err, errlen);
			else if (!strcmp(k, "issuer"))
				ret = lt_str(v, p, cp->jwt_issuer, sizeof(cp->jwt_issuer), err,
					     errlen);
			else if (!strcmp(k, "audience"))
				ret = lt_str(v, p, cp->jwt_audience, sizeof(cp->jwt_audience), err,
					     errlen);
			else if (!strcmp(k, "roles_claim"))
				ret = lt_str(v, p, cp->roles_claim, sizeof(cp->roles_claim), err,
					     errlen);
			else if (!strcmp(k, "orgs_claim"))
				ret = lt_str(v, p, cp->orgs_claim, sizeof(cp->orgs_claim), err,
					     errlen);
			else if (!strcmp(k, "admin_role")) {
				ret = lt_str(v, p, cp->admin_role, sizeof(cp->admin_role), err,
					     errlen);
				/* an empty admin role would match an empty role claim */
				if (!ret && !lt_cp_name_ok(cp->admin_role))
					ret = lt_fail(err, errlen, p, "expected a role name");
			} else if (!strcmp(k, "leeway")) {
				__u64 ns = 0;

				ret = json_is_string(
					      v) && !lt_duration_parse(json_string_value(v), &ns) &&
						      ns <= 3600 * LT_NS_PER_SEC ?
					      0 :
					      lt_fail(err, errlen, p,
						      "expected a duration up to 1h");
				cp->jwt_leeway_s = ns / LT_NS_PER_SEC;
			} else if (!strcmp(k, "issued_token_ttl")) {
				__u64 ns = 0;

				ret = json_is_string(
					      v) && !lt_duration_parse(json_string_value(v), &ns) &&
						      ns >= LT_NS_PER_SEC &&
						      ns <= 86400 * LT_NS_PER_SEC ?
					      0 :
					      lt_fail(err, errlen, p,
						      "expected a duration from 1s to 1d");
				if (!ret)
					cp->issued_ttl_s = ns / LT_NS_PER_SEC;
			} else if (!strcmp(k, "public_keys")) {
				ret = json_is_array(v) && json_array_size(v) <= 8 ?
					      0 :
					      lt_fail(err, errlen, p, "expected up to 8 PEM paths");
				json_array_foreach(v, i, x) {
					snprintf(p, sizeof(p), "/jwt/public_keys/%zu", i);
					if (!ret)
						ret = lt_str(x, p, cp->jwt_pem[cp->njwt_pem++],
							     sizeof(cp->jwt_pem[0]), err, errlen);
				}
			} else {
				ret = lt_fail(err, errlen, p, "unknown field");
			}
			if (ret)
				return ret;
		}
	}
	if (tok) {
		if (!json_is_object(tok))
			return lt_fail(err, errlen, "/token", "expected an object");
		json_object_foreach(tok, k, v) {
			snprintf(p, sizeof(p), "/token/%s", k);
			if (!strcmp(k, "providers")) {
				ret = json_is_array(v) &&
						      json_array_size(v) <= LT_CP_MAX_PROVIDERS ?
					      0 :
					      lt_fail(err, errlen, p, "expected an array of names");
				json_array_foreach(v, i, x) {
					snprintf(p, sizeof(p), "/token/providers/%zu", i);
					if (!ret && (!json_is_string(x) ||
						     !lt_cp_name_ok(json_string_value(x))))
						ret = lt_fail(err, errlen, p,
							      "not a provider name");
					if (!ret)
						snprintf(cp->providers[cp->nproviders++], 32, "%s",
							 json_string_value(x));
				}
			} else if (!strcmp(k, "tier_order")) {
				ret = json_is_array(v) && json_array_size(v) <= LT_CP_MAX_TIERS ?
					      0 :
					      lt_fail(err, errlen, p, "expected an array of tiers");
				json_array_foreach(v, i, x) {
					snprintf(p, sizeof(p), "/token/tier_order/%zu", i);
					if (!ret && (!json_is_string(x) ||
						     !lt_cp_name_ok(json_string_value(x))))
						ret = lt_fail(err, errlen, p, "not a tier name");
					if (!ret)
						snprintf(cp->tier_order[cp->ntiers++], 32, "%s",
							 json_string_value(x));
				}
			} else if (!strcmp(k, "default_tier")) {
				ret = lt_str(v, p, cp->default_tier, sizeof(cp->default_tier), err,
					     errlen);
				if (!ret && !lt_cp_name_ok(cp->default_tier))
					ret = lt_fail(err, errlen, p, "expected a tier name");
			} else if (!strcmp(k, "tiers")) {
				const char *t;

				ret = json_is_object(v) ?
					      0 :
					      lt_fail(err, errlen, p, "expected an object");
				json_object_foreach(v, t, x) {
					snprintf(p, sizeof(p), "/token/tiers/%s", t);
					if (!ret && !lt_cp_name_ok(t))
						ret = lt_fail(err, errlen, p, "not a tier name");
					if (!ret)
						ret = lt_limits(x, p, "tier", t, cp, err, errlen);
				}
			} else if (!strcmp(k, "org_default")) {
				ret = lt_limits(v, p, "org", "*", cp, err, errlen);
			} else if (!strcmp(k, "provider_pools")) {
				/* {"<provider>|*": {capacity, rate}}: p/<provider> buckets */
				ret = lt_limits(v, p, "pool", "*", cp, err, errlen);
			} else if (!strcmp(k, "key_requests")) {
				/* {"<tier>|*": {capacity, rate}}: r/<tier>/<keyId> buckets */
				ret = lt_key_requests(v, p, cp, err, errlen);
			} else if (!strcmp(k, "max_buckets")) {
				ret = json_is_integer(v) && json_integer_value(v) >= 16 &&
						      json_integer_value(v) < LT_MAX_SLOTS ?
					      0 :
					      lt_fail(err, errlen, p, "expected 16..%u",
						      LT_MAX_SLOTS - 1);
				if (!ret)
					cp->max_buckets = (__u32)json_integer_value(v);
			} else if (!strcmp(k, "bucket_idle")) {
				__u64 ns = 0;

				ret = json_is_string(
					      v) && !lt_duration_parse(json_string_value(v), &ns) &&
						      ns <= 30 * 86400 * LT_NS_PER_SEC ?
					      0 :
					      lt_fail(err, errlen, p,
						      "expected a duration up to 30d");
				if (!ret)
					cp->bucket_idle_ns = ns;
			} else if (!strcmp(k, "request_log_rows")) {
				ret = json_is_integer(v) && json_integer_value(v) >= 1 &&
						      json_integer_value(v) <= 100000000 ?
					      0 :
					      lt_fail(err, errlen, p, "expected 1..100000000");
				if (!ret)
					cp->request_log_rows = (__u32)json_integer_value(v);
			} else if (!strcmp(k, "request_log_max_bytes")) {
				__u64 n = 0;
				int ok = 0;

				/* bytes, or "256MiB": the schema alone takes some 100 KiB */
				if (json_is_integer(v) && json_integer_value(v) >= 0) {
					n = (__u64)json_integer_value(v);
					ok = 1;
				} else if (json_is_string(v)) {
					ok = !lt_bytes_parse(json_string_value(v), &n);
				}
				ret = ok && n >= (1ULL << 20) && n <= (1ULL << 40) ?
					      0 :
					      lt_fail(err, errlen, p,
						      "expected a size from 1MiB to 1TiB "
						      "(bytes, or \"256MiB\")");
				if (!ret)
					cp->request_log_max_bytes = n;
			} else if (!strcmp(k, "request_log_consume_rate")) {
				ret = json_is_integer(v) && json_integer_value(v) >= 0 &&
						      json_integer_value(v) <= 1000000000 ?
					      0 :
					      lt_fail(err, errlen, p,
						      "expected 0 (all) to 1000000000 rows/s");
				if (!ret)
					cp->request_log_consume_rate = (__u32)json_integer_value(v);
			} else if (!strcmp(k, "request_log_max_age")) {
				__u64 ns = 0;

				ret = json_is_string(
					      v) && !lt_duration_parse(json_string_value(v), &ns) &&
						      ns >= LT_NS_PER_SEC &&
						      ns <= 3650 * 86400 * LT_NS_PER_SEC ?
					      0 :
					      lt_fail(err, errlen, p,
						      "expected a duration from 1s to 3650d");
				if (!ret)
					cp->request_log_age_ns = ns;
			} else {
				ret = lt_fail(err, errlen, p, "unknown field");
			}
			if (ret)
				return ret;
		}
	}
	return 0;
}
