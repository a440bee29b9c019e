// SPDX-License-Identifier: MIT
/*
 * api.c - the agent's routes on the liblt HTTP server (lib/httpd.c: the
 * daemon, body limit, slow-client defences, request phases): their access
 * phases (authentication, admin right), the token API of the product brief,
 * health and Prometheus metrics, and the log phase (request metrics). Admin
 * resources are in api_admin.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "api.h"
#include "consume_body.h"
#include "keys.h"
#include "log.h"
#include "logs.h"
#include "metrics.h"
#include "penalty.h"
#include "problem.h"
#include "ratelimit.h"
#include "requests.h"
#include "rollup.h"
#include "signin.h"
#include "global.h"
#include "sync.h"
#include "tenant.h"
#include "ui.h"
#include "units.h"

#define LT_MAX_TOKENS (1ULL << 40) /* per request; far above any LLM call */

/* ---- metrics ------------------------------------------------------------ */

/* Series (tier x provider): far above what the config allows (64 providers). */
#define LT_MET_SERIES 8192
static const double lt_hist_le[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
				     0.01,   0.025,   0.05,   0.1,   0.25,   1.0 };
#define LT_HIST_N (sizeof(lt_hist_le) / sizeof(lt_hist_le[0]))
#define LT_FILL_TOP 10 /* buckets in lt_bucket_fill_ratio: the fullest, bounded cardinality */

/* Every count is a relaxed atomic: no lock on the request path. */
struct lt_api_metrics {
	struct lt_met_table series; /* decisions by tier and provider (lib/metrics.c) */
	__u64 http[6]; /* by status class 1xx..5xx (index 1..5) */
	__u64 hist[LT_HIST_N + 1];
	__u64 hist_sum_ns, hist_count;
};

static void lt_met_decision(struct lt_api *a, const char *tier, const char *provider, int verdict,
			    __u64 tokens)
{
	lt_met_count(&a->metrics->series, tier, provider,
		     verdict == LT_ADMIT ? LT_MET_ADMITTED :
		     verdict == LT_DENY	 ? LT_MET_DENIED :
					   LT_MET_TOO_BIG,
		     tokens);
}

static void lt_met_request(struct lt_api *a, unsigned status, __u64 ns)
{
	struct lt_api_metrics *m = a->metrics;
	double sec = (double)ns / 1e9;
	unsigned i;

	for (i = 0; i < LT_HIST_N && sec > lt_hist_le[i]; i++)
		;
	__atomic_fetch_add(&m->hist[i], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&m->hist_sum_ns, ns, __ATOMIC_RELAXED);
	__atomic_fetch_add(&m->hist_count, 1, __ATOMIC_RELAXED);
	if (status / 100 < 6)
		__atomic_fetch_add(&m->http[status / 100], 1, __ATOMIC_RELAXED);
}

/* ---- authentication -------------------------------------------------------- */

/* API keys for lib/auth.c: the agent's lock-free in-memory records. */
static int lt_api_key_get(void *ctx, const char *id, struct lt_key_rec *out)
{
	return lt_keys_get(ctx, id, out);
}

int lt_authenticate(struct lt_req *r, struct lt_principal *p, enum MHD_Result *res)
{
	const struct lt_auth a = { .jwt = &lt_api_of(r)->jwt,
				   .key_get = lt_api_key_get,
				   .key_ctx = lt_api_of(r)->keys };
	const struct lt_auth_roles ro = { .tiers = lt_cp_of(r)->tier_order,
					  .ntiers = lt_cp_of(r)->ntiers,
					  .default_tier = lt_cp_of(r)->default_tier,
					  .admin_role = lt_cp_of(r)->admin_role };
	struct lt_auth_fail f;

	if (!lt_auth_request(&a, &ro,
			     MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization"),
			     MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-API-Key"),
			     (int64_t)time(NULL), p, &f))
		return 0;
	*res = lt_problem(r, 401, f.type, f.title, f.field, "%s", f.detail);
	return -1;
}

static int lt_in_org(const struct lt_principal *p, const char *org)
{
	int i;

	/* both canonical: an exact comparison */
	for (i = 0; i < p->norgs; i++)
		if (!strcmp(p->orgs[i], org))
			return 1;
	return 0;
}

/* ---- the token API --------------------------------------------------------- */

/* When the bucket is empty again, RFC 3339; null when not representable. */
static json_t *lt_full_at_json(const struct lt_view *v)
{
	char when[40];

	if (v->full_in_ns == ~0ULL ||
	    lt_rl_rfc3339_after((int64_t)time(NULL), v->full_in_s, when, sizeof(when)))
		return json_null();
	return json_string(when);
}

/* What the RateLimit fields say about a bucket (lib/problem.h). */
static struct lt_rl_view lt_rl_of(const struct lt_view *v)
{
	struct lt_rl_view rl = {
		.capacity = v->capacity,
		.window_s = v->unlimited ?
				    1 :
				    lt_rl_window_s(v->capacity, v->leak_tokens, v->leak_period_ns),
		.remaining = v->remaining,
		.full_in_s = v->full_in_s,
		.retry_after_ns = v->retry_after_ns,
		.retry_after_s = v->retry_after_s,
	};

	return rl;
}

/*
 * Why a bucket could not be found or made (lt_quota_bucket's -errno): no
 * limit is the caller's problem (403); a full table or a failing store is
 * the server's, and temporary (503, nothing was changed).
 */
static enum MHD_Result lt_bucket_problem(struct lt_req *r, int ret, const char *err)
{
	if (ret == -ENOENT || ret == -ERANGE || ret == -ENAMETOOLONG)
		return lt_problem(r, 403, "no-quota", "No quota", "/provider", "%s", err);
	if (ret == -ENOSPC)
		return lt_problem(r, 503, "bucket-table-full", "Bucket table full", NULL, "%s",
				  err);
	return lt_problem(r, 503, "store-unavailable", "Store unavailable", NULL,
			  "%s; nothing was changed, try again later", err);
}

struct lt_consume_req {
	char user[LT_UUID_LEN + 1], org_buf[LT_UUID_LEN + 1]; /* canonical */
	const char *org, *provider; /* org: NULL or org_buf */
	__u64 tokens;
};

/* Strict body validation; on error a 400/422 is queued and -1 returned. */
static int lt_parse_consume(struct lt_req *r, json_t *root, struct lt_consume_req *c,
			    enum MHD_Result *res)
{
	json_t *u = json_object_get(root, "userId"), *o = json_object_get(root, "orgId");
	json_t *pv = json_object_get(root, "provider"), *t = json_object_get(root, "tokens");
	const char *k;
	json_t *v;

	json_object_foreach(root, k, v) {
		if (strcmp(k, "userId") && strcmp(k, "orgId") && strcmp(k, "provider") &&
		    strcmp(k, "tokens")) {
			*res = lt_problem(r, 400, "unknown-field", "Unknown field", k,
					  "field '%.64s' is not part of this request", k);
			return -1;
		}
	}
	if (!json_is_string(u) || lt_uuid_canon(json_string_value(u), c->user)) {
		*res = lt_problem(r, 400, "invalid-field", "Invalid field", "/userId",
				  "userId must be a UUID string");
		return -1;
	}
	c->org = NULL;
	if (o && !json_is_null(o) &&
	    (!json_is_string(o) || lt_uuid_canon(json_string_value(o), c->org_buf))) {
		*res = lt_problem(r, 400, "invalid-field", "Invalid field", "/orgId",
				  "orgId must be a UUID string (or absent)");
		return -1;
	}
	if (!json_is_string(pv)) {
		*res = lt_problem(r, 400, "invalid-field", "Invalid field", "/provider",
				  "provider must be a string");
		return -1;
	}
	if (!lt_quota_provider_known(lt_api_of(r)->q, json_string_value(pv))) {
		*res = lt_problem(r, 400, "unknown-provider", "Unknown provider", "/provider",
				  "provider '%.32s' is not configured", json_string_value(pv));
		return -1;
	}
	if (!json_is_integer(t) || json_integer_value(t) < 1 ||
	    (__u64)json_integer_value(t) > LT_MAX_TOKENS) {
		*res = lt_problem(r, 400, "invalid-field", "Invalid field", "/tokens",
				  "tokens must be an integer from 1 to %llu",
				  (unsigned long long)LT_MAX_TOKENS);
		return -1;
	}
	if (o && json_is_string(o))
		c->org = c->org_buf;
	c->provider = json_string_value(pv);
	c->tokens = (__u64)json_integer_value(t);
	return 0;
}

/*
 * The common consume body without jansson (json_loadb was a hashtable, four
 * strings and an integer on the heap per request). It takes only a flat
 * object of the four known keys, each once, with escape-free printable ASCII
 * strings and plain positive integers, and only when every field is valid:
 * anything else (including every error) returns -1 and the caller parses
 * with jansson, so errors and edge cases keep exactly one implementation.
 */
#define LT_FAST_STR 64

static const char *lt_fj_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* a string into out (NUL-terminated); NULL if unusual */
static const char *lt_fj_str(const char *p, const char *end, char *out, size_t len)
{
	size_t n = 0;

	if (p >= end || *p++ != '"')
		return NULL;
	for (; p < end && *p != '"'; p++) {
		if (*p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e ||
		    n + 1 >= len)
			return NULL;
		out[n++] = *p;
	}
	if (p >= end)
		return NULL;
	out[n] = '\0';
	return p + 1;
}

static int lt_consume_fast(struct lt_req *r, struct lt_consume_req *c, char *prov)
{
	const char *p = r->body, *end = r->body + r->len;
	char key[16], user[LT_FAST_STR], org[LT_FAST_STR];
	unsigned seen = 0, bit;
	int org_null = 0;
	__u64 tokens = 0;

	if (!p)
		return -1;
	p = lt_fj_ws(p, end);
	if (p >= end || *p++ != '{')
		return -1;
	for (;;) {
		p = lt_fj_ws(p, end);
		p = lt_fj_str(p, end, key, sizeof(key));
		if (!p)
			return -1;
		p = lt_fj_ws(p, end);
		if (p >= end || *p++ != ':')
			return -1;
		p = lt_fj_ws(p, end);
		if (!strcmp(key, "userId")) {
			bit = 1;
			p = lt_fj_str(p, end, user, sizeof(user));
		} else if (!strcmp(key, "orgId")) {
			bit = 2;
			if (end - p >= 4 && !memcmp(p, "null", 4)) {
				org_null = 1;
				p += 4;
			} else {
				p = lt_fj_str(p, end, org, sizeof(org));
			}
		} else if (!strcmp(key, "provider")) {
			bit = 4;
			p = lt_fj_str(p, end, prov, LT_FAST_STR);
		} else if (!strcmp(key, "tokens")) {
			int digits = 0;

			bit = 8;
			if (p >= end || *p < '1' || *p > '9')
				return -1;
			for (; p < end && *p >= '0' && *p <= '9' && digits < 16; p++, digits++)
				tokens = tokens * 10 + (__u64)(*p - '0');
		} else {
			return -1;
		}
		if (!p || (seen & bit))
			return -1;
		seen |= bit;
		p = lt_fj_ws(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}')
			break;
		return -1;
	}
	if (lt_fj_ws(p + 1, end) != end || (seen & 13) != 13)
		return -1;
	if (tokens < 1 || tokens > LT_MAX_TOKENS || lt_uuid_canon(user, c->user))
		return -1;
	c->org = NULL;
	if ((seen & 2) && !org_null) {
		if (lt_uuid_canon(org, c->org_buf))
			return -1;
		c->org = c->org_buf;
	}
	if (!lt_quota_provider_known(lt_api_of(r)->q, prov))
		return -1;
	c->provider = prov;
	c->tokens = tokens;
	return 0;
}

static enum MHD_Result lt_consume(struct lt_req *r)
{
	struct lt_api *a = lt_api_of(r);
	struct lt_view v = { 0 }, kv = { 0 };
	struct lt_slot_seen res_, kres;
	struct lt_consume_req c;
	const struct lt_principal *p = &r->principal; /* the route's access phase */
	char key[LT_BUCKET_KEY_LEN], kkey[LT_BUCKET_KEY_LEN], err[256];
	const char *name; /* the policy the RateLimit fields name */
	char prov[LT_FAST_STR];
	struct lt_rl_view rl;
	struct lt_hdrs h;
	__u32 slot, kslot = 0;
	__u64 now;
	enum MHD_Result res;
	json_error_t jerr;
	json_t *root, *out;
	int verdict, kverdict = LT_ADMIT, ret, attempt;

	root = NULL; /* json_decref(NULL) is a no-op: the fast path holds no json_t */
	if (lt_consume_fast(r, &c, prov)) {
		root = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(root)) {
			json_decref(root);
			return lt_problem(r, 400, "malformed-json", "Malformed JSON", NULL,
					  "body must be a JSON object: %s",
					  root ? "not an object" : jerr.text);
		}
		if (lt_parse_consume(r, root, &c, &res)) {
			json_decref(root);
			return res;
		}
	}
	/* Authorisation: nobody spends another tenant's quota (ids canonical). */
	if (!p->admin && strcmp(c.user, p->sub)) {
		json_decref(root);
		return lt_problem(r, 403, "forbidden", "Forbidden", "/userId",
				  "a USER may consume only for itself (sub)");
	}
	if (c.org && !p->admin && !lt_in_org(p, c.org)) {
		json_decref(root);
		return lt_problem(r, 403, "forbidden", "Forbidden", "/orgId",
				  "the token does not list this org in its org claim");
	}
	if (c.org)
		ret = lt_bucket_key(key, sizeof(key), LT_BKEY_ORG, NULL, c.provider, c.org);
	else
		ret = lt_bucket_key(key, sizeof(key), LT_BKEY_USER, p->tier, c.provider, c.user);
	if (ret) {
		json_decref(root);
		return lt_problem(r, 400, "invalid-field", "Invalid field", "/provider",
				  "no bucket key can be built for this tier and provider");
	}
	/* a bucket reclaimed between its lookup and the decision: look it up again */
	for (attempt = 0; attempt < 3; attempt++) {
		ret = lt_quota_bucket(a->q, key, NULL, &slot, err, sizeof(err));
		if (ret) {
			json_decref(root);
			return lt_bucket_problem(r, ret, err);
		}
		if (p->key_id[0]) {
			snprintf(err, sizeof(err), "the API key id cannot name a bucket");
			ret = lt_bucket_key(kkey, sizeof(kkey), LT_BKEY_APIKEY, NULL, NULL,
					    p->key_id);
			if (!ret)
				ret = lt_quota_bucket(a->q, kkey, &p->key_limit, &kslot, err,
						      sizeof(err));
			if (ret) {
				json_decref(root);
				return lt_bucket_problem(r, ret == -ENOENT ? -EIO : ret, err);
			}
		}
		now = lt_now_ns(); /* read once per decision */
		if (kslot)
			kverdict = lt_quota_consume(a->q, kslot, c.tokens, now, &kv, &kres);
		verdict = kverdict == LT_ADMIT ?
				  lt_quota_consume(a->q, slot, c.tokens, now, &v, &res_) :
				  kverdict;
		if (kslot && kverdict == LT_ADMIT && verdict != LT_ADMIT)
			lt_quota_undo(a->q, &kres, now); /* all or nothing */
		if (verdict != LT_FREED)
			break;
	}
	if (verdict == LT_CONTENDED || verdict == LT_FREED) {
		const char *hdrs[] = { "Retry-After", "1", NULL };

		json_decref(root);
		out = lt_problem_json(503, "contended", "Bucket contended", NULL,
				      "the bucket is changing under heavy contention; retry");
		return lt_reply_json_h(r, 503, out, "application/problem+json", hdrs);
	}
	if (kverdict != LT_ADMIT)
		v = kv; /* the key's own limit is what refused */
	name = kverdict != LT_ADMIT ? "api-key" : c.org ? "org" : p->tier;
	lt_met_decision(a, c.org ? "org" : p->tier, c.provider, verdict, c.tokens);
	{
		struct lt_decision d = {
			.user = c.user,
			.org = c.org,
			.tier = c.org ? "org" : p->tier,
			.key_id = kslot ? p->key_id : NULL,
			.provider = c.provider,
			.tokens = c.tokens,
			.status = verdict == LT_TOO_BIG ? 422 :
				  verdict == LT_DENY	? 429 :
							  200,
			/* as the gateway names its limits (RateLimit-Policy, the request log) */
			.limit = verdict == LT_ADMIT  ? NULL :
				 kverdict != LT_ADMIT ? "key-tokens" :
				 c.org		      ? "org-tokens" :
							"user-tokens",
			.request_id = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
								  "X-Request-Id"),
			.latency_ns = now - r->start_ns,
		};
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

		d.client = ci ? ci->client_addr : NULL;
		lt_requests_decision(a->requests, &d);
	}
	rl = lt_rl_of(&v);
	lt_hdrs_init(&h);
	lt_rl_headers(&h, name, &rl, verdict != LT_ADMIT); /* fits: 3 of LT_HDRS_MAX */

	if (verdict == LT_TOO_BIG) {
		json_decref(root);
		return lt_problem(r, 422, "cost-exceeds-capacity", "Tokens exceed capacity",
				  "/tokens",
				  "%llu tokens can never fit a bucket of capacity %llu; split the "
				  "request",
				  (unsigned long long)c.tokens, (unsigned long long)v.capacity);
	}
	if (verdict == LT_DENY) {
		char *fast = lt_consume_deny_body(&v);

		if (fast) {
			json_decref(root);
			return lt_send(r, 429, "application/problem+json", fast, h.kv);
		}
		out = lt_problem_json(429, "quota-exceeded", "Too Many Requests", "/tokens",
				      "the bucket cannot take these tokens now");
		json_object_set_new(out, "retryAfterMs", lt_ms_json(v.retry_after_ns));
		json_object_set_new(out, "quota", lt_view_json(&v));
		json_decref(root);
		return lt_reply_json_h(r, 429, out, "application/problem+json", h.kv);
	}
	{
		char *fast = lt_consume_ok_body(&v, c.user, c.org, c.provider,
						c.org ? "org" : p->tier, kslot ? p->key_id : NULL,
						(long long)c.tokens, (long long)kv.remaining);

		if (fast) {
			json_decref(root);
			return lt_send(r, 200, "application/json", fast, h.kv);
		}
		out = lt_view_json(&v);
		json_object_set_new(out, "userId", json_string(c.user));
		json_object_set_new(out, "orgId", c.org ? json_string(c.org) : json_null());
		json_object_set_new(out, "provider", json_string(c.provider));
		json_object_set_new(out, "tier", json_string(c.org ? "org" : p->tier));
		json_object_set_new(out, "charged", json_integer((json_int_t)c.tokens));
		if (kslot)
			json_object_set_new(out, "apiKey",
					    json_pack("{s:s, s:I}", "id", p->key_id, "remaining",
						      (json_int_t)kv.remaining));
		json_decref(root);
		return lt_reply_json_h(r, 200, out, "application/json", h.kv);
	}
}

/*
 * POST /api/v1/admin/buckets {"key"}: the bucket of a bucket key, made for
 * another process (the gateway's lt_bucket_resolve, lib/resolve.h) that
 * found no lt_keyidx entry for it. The agent stays the only allocator: the
 * limit comes from its store, the store holds the bucket before lt_keyidx
 * shows it, and the reclaim sweep is its own. Only a key exactly as
 * lt_bucket_key() builds it from canonical parts is accepted. An API key's
 * request bucket (r/<tier>/<keyId>) is limited by the "keyreq" limit of its
 * tier, the provider pool (p/<provider>) by the "pool" limit of the provider
 * (both with "*" defaults: token.key_requests and token.provider_pools).
 */
static enum MHD_Result lt_buckets_post(struct lt_req *r)
{
	char key[LT_BUCKET_KEY_LEN], re[LT_BUCKET_KEY_LEN], buf[LT_BUCKET_KEY_LEN], err[256];
	char *part[4], *save = NULL, *t;
	const struct lt_limit *kl = NULL;
	const char *provider = NULL;
	struct lt_key_rec kr;
	json_error_t jerr;
	json_t *root, *jk;
	int n = 0, ret = -EINVAL;
	__u32 slot;

	root = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &jerr);
	jk = json_object_get(root, "key");
	if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_string(jk) ||
	    json_string_length(jk) >= sizeof(key)) {
		json_decref(root);
		return lt_problem(
			r, 400, "invalid-field", "Invalid field", "/key",
			"the body must be {\"key\": \"<bucket key>\"}, the key under %d bytes",
			LT_BUCKET_KEY_LEN);
	}
	snprintf(key, sizeof(key), "%s", json_string_value(jk));
	json_decref(root);
	snprintf(buf, sizeof(buf), "%s", key);
	for (t = strtok_r(buf, "/", &save); t && n < 4; t = strtok_r(NULL, "/", &save))
		part[n++] = t;
	if (!t && n == 4 && !strcmp(part[0], "u")) {
		provider = part[2];
		ret = lt_bucket_key(re, sizeof(re), LT_BKEY_USER, part[1], part[2], part[3]);
	} else if (!t && n == 3 && !strcmp(part[0], "o")) {
		provider = part[1];
		ret = lt_bucket_key(re, sizeof(re), LT_BKEY_ORG, NULL, part[1], part[2]);
	} else if (!t && n == 2 && !strcmp(part[0], "k")) {
		ret = lt_bucket_key(re, sizeof(re), LT_BKEY_APIKEY, NULL, NULL, part[1]);
	} else if (!t && n == 3 && !strcmp(part[0], "r")) {
		ret = lt_bucket_key(re, sizeof(re), LT_BKEY_KEYREQ, part[1], NULL, part[2]);
	} else if (!t && n == 2 && !strcmp(part[0], "p")) {
		provider = part[1];
		ret = lt_bucket_key(re, sizeof(re), LT_BKEY_POOL, NULL, part[1], NULL);
	}
	/* one spelling: what the builder makes of the parts must be the key */
	if (ret || strcmp(re, key))
		return lt_problem(
			r, 400, "invalid-field", "Invalid field", "/key",
			"not a canonical bucket key (u/<tier>/<provider>/<userId>, "
			"o/<provider>/<orgId>, k/<keyId>, r/<tier>/<keyId> or p/<provider>)");
	if (provider && !lt_quota_provider_known(lt_api_of(r)->q, provider))
		return lt_problem(r, 400, "unknown-provider", "Unknown provider", "/key",
				  "the key's provider is not configured");
	if (!provider) {
		/* k/<keyId> and r/<tier>/<keyId>: a live key (of that tier) */
		if (lt_keys_get(lt_api_of(r)->keys, part[0][0] == 'r' ? part[2] : part[1], &kr) ||
		    kr.revoked || (part[0][0] == 'r' && strcmp(kr.tier, part[1])))
			return lt_problem(r, 403, "no-quota", "No quota", "/key",
					  "no such API key (of this tier), or it is revoked");
		if (part[0][0] == 'k')
			kl = &kr.limit;
	}
	ret = lt_quota_bucket(lt_api_of(r)->q, key, kl, &slot, err, sizeof(err));
	if (ret)
		return lt_bucket_problem(r, ret, err);
	return lt_reply_json(r, 200, json_pack("{s:s, s:I}", "key", key, "slot", (json_int_t)slot));
}

/*
 * GET /api/v1/tokens/quota[?userId=&provider=] and /quota/org?orgId=&provider=
 * A read never creates a bucket: a tenant without one reads as empty, at
 * the limit that would govern it (the full quota).
 */
static enum MHD_Result lt_quota_get(struct lt_req *r, int org)
{
	const char *raw = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
						      org ? "orgId" : "userId");
	const char *prov = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "provider");
	struct lt_view v;
	const struct lt_principal *p = &r->principal; /* the route's access phase */
	char key[LT_BUCKET_KEY_LEN], id[LT_UUID_LEN + 1];
	json_t *out;
	__u32 slot;
	int ret;

	if (!raw || lt_uuid_canon(raw, id))
		return lt_problem(r, 400, "invalid-field", "Invalid field",
				  org ? "orgId" : "userId", "%s must be a UUID",
				  org ? "orgId" : "userId");
	if (!prov || !lt_quota_provider_known(lt_api_of(r)->q, prov))
		return lt_problem(r, 400, "unknown-provider", "Unknown provider", "provider",
				  "provider is missing or not configured");
	if (!p->admin && (org ? !lt_in_org(p, id) : !!strcmp(id, p->sub)))
		return lt_problem(r, 403, "forbidden", "Forbidden", org ? "orgId" : "userId",
				  org ? "the token does not list this org" :
					"a USER may read only its own quota");
	if (org)
		ret = lt_bucket_key(key, sizeof(key), LT_BKEY_ORG, NULL, prov, id);
	else
		ret = lt_bucket_key(key, sizeof(key), LT_BKEY_USER, p->tier, prov, id);
	if (!ret)
		ret = lt_quota_peek_key(lt_api_of(r)->q, key, NULL, lt_now_ns(), &v, &slot);
	if (ret == -EAGAIN)
		return lt_problem(r, 503, "contended", "Bucket contended", NULL,
				  "the bucket is changing under heavy contention; retry");
	if (ret)
		return lt_problem(r, 403, "no-quota", "No quota", "provider",
				  "no quota is configured for this tier or org and provider");
	out = lt_view_json(&v);
	json_object_set_new(out, org ? "orgId" : "userId", json_string(id));
	json_object_set_new(out, "provider", json_string(prov));
	json_object_set_new(out, "tier", json_string(org ? "org" : p->tier));
	json_object_set_new(out, "fullAt", lt_full_at_json(&v));
	return lt_reply_json(r, 200, out);
}

/* ---- health and metrics ----------------------------------------------------- */

static enum MHD_Result lt_metrics(struct lt_req *r)
{
	struct lt_api_metrics *m = lt_api_of(r)->metrics;
	struct lt_stat_val st[LT_STAT__MAX];
	struct lt_quota_stats qs;
	struct lt_mbuf b = { 0 };
	unsigned i;
	__u64 cum = 0;

#define P(...) lt_mbuf_printf(&b, __VA_ARGS__)
	lt_met_write(&m->series, &b);
	P("# HELP lt_http_responses_total API responses by status class.\n"
	  "# TYPE lt_http_responses_total counter\n");
	for (i = 1; i < 6; i++)
		P("lt_http_responses_total{code=\"%uxx\"} %llu\n", i,
		  (unsigned long long)__atomic_load_n(&m->http[i], __ATOMIC_RELAXED));
	P("# HELP lt_http_request_duration_seconds API latency.\n"
	  "# TYPE lt_http_request_duration_seconds histogram\n");
	for (i = 0; i <= LT_HIST_N; i++) {
		cum += __atomic_load_n(&m->hist[i], __ATOMIC_RELAXED);
		if (i < LT_HIST_N)
			P("lt_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
			  lt_hist_le[i], (unsigned long long)cum);
		else
			P("lt_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			  (unsigned long long)cum);
	}
	P("lt_http_request_duration_seconds_sum %.9f\n",
	  (double)__atomic_load_n(&m->hist_sum_ns, __ATOMIC_RELAXED) / 1e9);
	P("lt_http_request_duration_seconds_count %llu\n",
	  (unsigned long long)__atomic_load_n(&m->hist_count, __ATOMIC_RELAXED));
	lt_quota_stats(lt_api_of(r)->q, &qs);
	P("# HELP lt_buckets_max L7 buckets that can be in use (token.max_buckets).\n"
	  "# TYPE lt_buckets_max gauge\nlt_buckets_max %llu\n",
	  (unsigned long long)qs.max_buckets);
	P("# HELP lt_bucket_table_full_total New buckets refused: the table was full.\n"
	  "# TYPE lt_bucket_table_full_total counter\nlt_bucket_table_full_total %llu\n",
	  (unsigned long long)qs.table_full);
	P("# HELP lt_buckets_reclaimed_total Idle empty buckets freed for reuse.\n"
	  "# TYPE lt_buckets_reclaimed_total counter\nlt_buckets_reclaimed_total %llu\n",
	  (unsigned long long)qs.reclaimed);
	P("# HELP lt_leases_settled_total Gateway leases settled by the agent after their owner "
	  "died (reservations charged in full).\n"
	  "# TYPE lt_leases_settled_total counter\nlt_leases_settled_total %llu\n",
	  __atomic_load_n(&lt_api_of(r)->leases_settled, __ATOMIC_RELAXED));
	{
		static const char *const kinds[] = { ['u'] = "user",
						     ['o'] = "org",
						     ['k'] = "key",
						     ['r'] = "key_requests",
						     ['p'] = "provider" };
		struct lt_fill top[LT_FILL_TOP];
		unsigned n = lt_quota_fullest(lt_api_of(r)->q, lt_now_ns(), top, LT_FILL_TOP);
		const char *p;

		P("# HELP lt_bucket_fill_ratio Share of capacity in use of the %d fullest L7 "
		  "buckets (empty ones are not listed).\n"
		  "# TYPE lt_bucket_fill_ratio gauge\n",
		  LT_FILL_TOP);
		for (i = 0; i < n; i++) {
			unsigned char c = (unsigned char)top[i].key[0];

			P("lt_bucket_fill_ratio{kind=\"%s\",bucket=\"",
			  c < sizeof(kinds) / sizeof(kinds[0]) && kinds[c] ? kinds[c] : "other");
			/* a label value escapes \\ and \" (keys hold no control bytes) */
			for (p = top[i].key; *p; p++)
				P(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
			P("\"} %.6f\n", top[i].ratio);
		}
	}
	lt_requests_metrics(lt_api_of(r)->requests, &b);
	lt_sync_metrics(lt_api_of(r)->sync, &b);
	lt_global_metrics(lt_api_of(r)->global, &b);
	if (lt_api_of(r)->brk) {
		struct lt_brk_info bi;

		/* names are [A-Za-z0-9._:-] (lt_breaker_name_ok): safe in a label */
		P("# HELP lt_breaker_state Circuit breaker: 0 closed, 1 open, 2 half-open.\n"
		  "# TYPE lt_breaker_state gauge\n");
		for (i = 0; i < lt_api_of(r)->brk->n; i++)
			if (!lt_breaker_info(lt_api_of(r)->brk, i, &bi) && bi.name[0])
				P("lt_breaker_state{name=\"%s\"} %u\n", bi.name,
				  (unsigned)bi.state);
		P("# HELP lt_breaker_trips_total Times a circuit breaker opened.\n"
		  "# TYPE lt_breaker_trips_total counter\n");
		for (i = 0; i < lt_api_of(r)->brk->n; i++)
			if (!lt_breaker_info(lt_api_of(r)->brk, i, &bi) && bi.name[0])
				P("lt_breaker_trips_total{name=\"%s\"} %llu\n", bi.name,
				  (unsigned long long)bi.trips);
	}
	if (lt_api_of(r)->maps && !lt_stats_read(lt_api_of(r)->maps->fd[LT_M_STATS], st)) {
		P("# HELP lt_xdp_packets_total Packets by XDP/TC outcome.\n"
		  "# TYPE lt_xdp_packets_total counter\n");
		for (i = 0; i < LT_STAT__MAX; i++)
			P("lt_xdp_packets_total{outcome=\"%s\"} %llu\n", lt_stat_name(i),
			  (unsigned long long)st[i].packets);
		P("# HELP lt_map_entries Map fill.\n# TYPE lt_map_entries gauge\n");
		P("lt_map_entries{map=\"lt_src\"} %ld\n",
		  lt_src_count(lt_api_of(r)->maps->fd[LT_M_SRC], NULL));
		P("lt_map_entries{map=\"lt_penalty\"} %ld\n",
		  lt_penalty_count(lt_api_of(r)->maps->fd[LT_M_PENALTY],
				   lt_api_of(r)->maps->fd[LT_M_CONFIG]));
		P("lt_map_entries{map=\"lt_policy\"} %ld\n",
		  lt_map_count(lt_api_of(r)->maps->fd[LT_M_POLICY]));
	}
	P("lt_map_entries{map=\"lt_lease\"} %ld\n",
	  __atomic_load_n(&lt_api_of(r)->leases_live, __ATOMIC_RELAXED));
	P("lt_map_entries{map=\"lt_slots\"} %llu\n", (unsigned long long)qs.buckets);
#undef P
	if (b.oom) {
		free(b.p);
		return lt_problem(r, 500, "internal", "Internal error", NULL,
				  "out of memory writing the metrics");
	}
	return lt_send(r, 200, "text/plain; version=0.0.4", b.p, NULL);
}

/* ---- routes and phases --------------------------------------------------------- */

/* The access phase of the token API: any authenticated principal (r->principal). */
static int lt_access_user(struct lt_req *r, enum MHD_Result *res)
{
	return lt_authenticate(r, &r->principal, res);
}

/* The access phase of admin resources: authenticated, with the admin role. */
static int lt_access_admin(struct lt_req *r, enum MHD_Result *res)
{
	if (lt_authenticate(r, &r->principal, res))
		return -1;
	if (r->principal.admin)
		return 0;
	*res = lt_problem(r, 403, "forbidden", "Forbidden", "Authorization",
			  "admin resources need the %s role", lt_cp_of(r)->admin_role);
	return -1;
}

static enum MHD_Result lt_healthz(struct lt_req *r)
{
	return lt_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static enum MHD_Result lt_readyz(struct lt_req *r)
{
	/* Not ready while enforcement is missing somewhere, same rule as `status`. */
	if (!__atomic_load_n(&lt_api_of(r)->attached, __ATOMIC_RELAXED))
		return lt_reply_json(r, 503,
				     json_pack("{s:s, s:s}", "status", "not ready", "reason",
					       "an interface lost the program (see "
					       "`leaky-agent status`)"));
	return lt_reply_json(r, 200,
			     json_pack("{s:s, s:I}", "status", "ready", "buckets",
				       (json_int_t)lt_quota_buckets(lt_api_of(r)->q)));
}

static enum MHD_Result lt_quota_user(struct lt_req *r)
{
	return lt_quota_get(r, 0);
}

static enum MHD_Result lt_quota_org(struct lt_req *r)
{
	return lt_quota_get(r, 1);
}

/* Under /api/v1/admin/, after the admin access phase. */
static enum MHD_Result lt_admin(struct lt_req *r)
{
	enum MHD_Result res;

	if (!strcmp(r->url, "/api/v1/admin/buckets"))
		return !strcmp(r->method, "POST") ?
			       lt_buckets_post(r) :
			       lt_problem(r, 405, "method-not-allowed", "Method not allowed", NULL,
					  "use POST");
	if (!strcmp(r->url, "/api/v1/admin/requests"))
		return !strcmp(r->method, "GET") ?
			       lt_requests_get(r) :
			       lt_problem(r, 405, "method-not-allowed", "Method not allowed", NULL,
					  "use GET");
	if (lt_admin_route(r, &r->principal, &res) == 0)
		return res;
	return lt_problem(r, 404, "not-found", "Not found", NULL, "no resource at %.128s", r->url);
}

/* GET /api/v1/sync/status: the config version applied here, per origin host, and the lag. */
static enum MHD_Result lt_sync_get(struct lt_req *r)
{
	return lt_reply_json(r, 200, lt_sync_status(lt_api_of(r)->sync));
}

/* GET /api/v1/global/status: global buckets, the other hosts, tau and staleness. */
static enum MHD_Result lt_global_get(struct lt_req *r)
{
	return lt_reply_json(r, 200, lt_global_status(lt_api_of(r)->global));
}

/* POST /api/v1/global/measure: tau and delay maxima start again from now. */
static enum MHD_Result lt_global_post(struct lt_req *r)
{
	lt_global_measure(lt_api_of(r)->global);
	return lt_reply_json(r, 200, lt_global_status(lt_api_of(r)->global));
}

static enum MHD_Result lt_an_usage(struct lt_req *r)
{
	return lt_analytics_usage(r, 0);
}

static enum MHD_Result lt_an_csv(struct lt_req *r)
{
	return lt_analytics_usage(r, 1);
}

static const struct lt_route lt_routes[] = {
	{ .method = "GET", .path = "/healthz", .handler = lt_healthz },
	{ .method = "GET", .path = "/readyz", .handler = lt_readyz },
	{ .method = "GET", .path = "/metrics", .handler = lt_metrics },
	{ .method = "POST",
	  .path = "/api/v1/tokens/consume",
	  .access = lt_access_user,
	  .handler = lt_consume },
	{ .method = "GET",
	  .path = "/api/v1/tokens/quota",
	  .access = lt_access_user,
	  .handler = lt_quota_user },
	{ .method = "GET",
	  .path = "/api/v1/tokens/quota/org",
	  .access = lt_access_user,
	  .handler = lt_quota_org },
	{ .method = "GET",
	  .path = "/api/v1/analytics/usage",
	  .access = lt_access_admin,
	  .handler = lt_an_usage },
	{ .method = "GET",
	  .path = "/api/v1/analytics/usage.csv",
	  .access = lt_access_admin,
	  .handler = lt_an_csv },
	{ .method = "GET",
	  .path = "/api/v1/analytics/top",
	  .access = lt_access_admin,
	  .handler = lt_analytics_top },
	{ .method = "GET",
	  .path = "/api/v1/logs",
	  .access = lt_access_user,
	  .handler = lt_logs_list },
	{ .method = "GET",
	  .path = "/api/v1/logs/",
	  .flags = LT_ROUTE_PREFIX,
	  .access = lt_access_user,
	  .handler = lt_logs_one },
	/* it authenticates what it exchanges itself: a sign-in code is not an identity */
	{ .method = "POST", .path = "/api/v1/auth/token", .handler = lt_auth_token },
	{ .method = "GET",
	  .path = "/api/v1/sync/status",
	  .access = lt_access_admin,
	  .handler = lt_sync_get },
	{ .method = "GET",
	  .path = "/api/v1/global/status",
	  .access = lt_access_admin,
	  .handler = lt_global_get },
	{ .method = "POST",
	  .path = "/api/v1/global/measure",
	  .access = lt_access_admin,
	  .handler = lt_global_post },
	{ .path = "/api/v1/admin/",
	  .flags = LT_ROUTE_PREFIX,
	  .access = lt_access_admin,
	  .handler = lt_admin },
	/* the dashboard (agent/ui.c): static files, the data comes from the routes above */
	{ .path = "/ui", .flags = LT_ROUTE_PREFIX, .handler = lt_ui_serve },
	{ 0 },
};

/* The log phase: request counts and latency. */
static void lt_api_log(struct lt_req *r)
{
	lt_met_request(lt_api_of(r), (unsigned)r->status, lt_now_ns() - r->start_ns);
}

static unsigned lt_api_max_body(const void *cfg)
{
	return ((const struct lt_cp_config *)cfg)->max_body;
}

int lt_api_start(struct lt_api *a, char *err, size_t errlen)
{
	struct lt_httpd_opts o = { .cfg = &a->cp,
				   .max_body = lt_api_max_body,
				   .app = a,
				   .routes = lt_routes,
				   .log = lt_api_log };
	const struct lt_cp_config *cp;
	char listen[64];
	unsigned tok;
	int ret;

	/* read once: a reload does not move the listener or the pool */
	cp = lt_snap_get(&a->cp, &tok);
	snprintf(listen, sizeof(listen), "%s", cp->listen);
	o.threads = cp->threads;
	o.conns_per_client = cp->conns_per_client;
	o.request_timeout_ns = cp->request_timeout_ns;
	lt_snap_put(&a->cp, tok);
	o.listen = listen;
	a->metrics = calloc(1, sizeof(*a->metrics));
	if (!a->metrics)
		return -ENOMEM;
	if (lt_met_init(&a->metrics->series, LT_MET_SERIES)) {
		free(a->metrics);
		a->metrics = NULL;
		return -ENOMEM;
	}
	pthread_mutex_init(&a->admin_lock, NULL);
	ret = lt_httpd_start(&a->http, &o, err, errlen);
	if (ret) {
		lt_met_free(&a->metrics->series);
		free(a->metrics);
		a->metrics = NULL;
	}
	return ret;
}

void lt_api_stop(struct lt_api *a)
{
	lt_httpd_stop(a->http);
	a->http = NULL;
	if (a->metrics) {
		lt_met_free(&a->metrics->series);
		free(a->metrics);
		a->metrics = NULL;
	}
}
