// SPDX-License-Identifier: MIT
/*
 * api_admin.c - admin resources under /api/v1/admin/ (ADMIN role):
 * tiers, org quotas, providers, API keys (+ usage), penalties and source
 * policies. Writes go to the store and the maps together or not at all.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include "addr.h"
#include "api.h"
#include "cfg.h"
#include "apply.h"
#include "config_cp.h"
#include "keys.h"
#include "ops.h"
#include "sync.h"
#include "units.h"
#include "utf8.h"

#define SEG_MAX 6

/*
 * One JSON style for the whole API: camelCase fields, times in RFC 3339,
 * enums as strings, and a resource reads back in the shape it was written
 * ({capacity, rate} limits, rates in their canonical spelling: "60/m" reads
 * back as "1/s").
 */
static json_t *lt_limit_json(const struct lt_limit *l)
{
	char rate[48];

	lt_rate_format(l->tokens, l->period_ns, rate, sizeof(rate));
	return json_pack("{s:I, s:s}", "capacity", (json_int_t)l->capacity, "rate", rate);
}

/* A policy's rate: {capacity, rate} as it was written, or "unlimited". */
static json_t *lt_rate_json(const struct lt_rate *r)
{
	char rate[48];

	if (!r->period_ns)
		return json_string("unlimited");
	lt_rate_format(r->units_per_period >> r->unit_shift, r->period_ns, rate, sizeof(rate));
	return json_pack("{s:I, s:s}", "capacity", (json_int_t)lt_rate_capacity(r), "rate", rate);
}

static json_t *lt_time_json(int64_t unix_s)
{
	char when[40];

	lt_rfc3339(unix_s, when, sizeof(when));
	return json_string(when);
}

static json_t *lt_body(struct lt_req *r, enum MHD_Result *res)
{
	json_error_t jerr;
	json_t *root = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &jerr);

	if (!json_is_object(root)) {
		json_decref(root);
		*res = lt_problem(r, 400, "malformed-json", "Malformed JSON", NULL,
				  "body must be a JSON object%s%s", root ? "" : ": ",
				  root ? "" : jerr.text);
		return NULL;
	}
	return root;
}

static enum MHD_Result lt_405(struct lt_req *r)
{
	return lt_problem(r, 405, "method-not-allowed", "Method not allowed", NULL,
			  "%s is not supported on %.128s", r->method, r->url);
}

/* ---- config sync: each change below is of one object, published by sync.h ---------- */

enum lt_adm_kind {
	LT_ADM_LIMIT_SET,
	LT_ADM_LIMIT_DEL,
	LT_ADM_PROV_ADD,
	LT_ADM_PROV_DEL,
	LT_ADM_KEY_NEW,
	LT_ADM_KEY_SET,
	LT_ADM_KEY_REVOKE,
	LT_ADM_BAN,
	LT_ADM_UNBAN,
	LT_ADM_POL_SET,
	LT_ADM_POL_DEL,
};

struct lt_adm_op {
	enum lt_adm_kind op;
	struct lt_api *a;
	struct lt_ops *ops;
	const char *kind, *name, *provider; /* limits; name: providers */
	const struct lt_limit *l;
	struct lt_key_rec *k;
	char *secret;
	size_t slen;
	const struct lt_lpm_key *pk; /* penalties, policies */
	__u64 dur;
	__u32 reason;
	struct lt_penalty *pen;
	const struct lt_src_policy *pol;
};

static int lt_adm_do(void *ctx, char *err, size_t errlen)
{
	struct lt_adm_op *o = ctx;

	switch (o->op) {
	case LT_ADM_LIMIT_SET:
		return lt_quota_limit_set(o->a->q, o->kind, o->name, o->provider, o->l, err,
					  errlen);
	case LT_ADM_LIMIT_DEL:
		return lt_quota_limit_del(o->a->q, o->kind, o->name, o->provider, err, errlen);
	case LT_ADM_PROV_ADD:
		return lt_quota_provider_add(o->a->q, o->name, err, errlen);
	case LT_ADM_PROV_DEL:
		return lt_quota_provider_del(o->a->q, o->name, err, errlen);
	case LT_ADM_KEY_NEW:
		return lt_keys_create(o->a->keys, o->k, o->secret, o->slen);
	case LT_ADM_KEY_SET:
		return lt_keys_update(o->a->keys, o->k);
	case LT_ADM_KEY_REVOKE:
		return lt_keys_revoke(o->a->keys, o->k->id);
	case LT_ADM_BAN:
		return lt_op_ban(o->ops, o->pk, o->dur, o->reason, o->pen, err, errlen);
	case LT_ADM_UNBAN:
		return lt_op_unban(o->ops, o->pk, err, errlen);
	case LT_ADM_POL_SET:
		return lt_op_policy_set(o->ops, o->pk, o->pol, err, errlen);
	case LT_ADM_POL_DEL:
		return lt_op_policy_del(o->ops, o->pk, err, errlen);
	}
	return -EINVAL;
}

/* o's change, published to the other hosts when config sync is on (kind/id: sync.h). */
static int lt_adm_change(struct lt_req *r, const char *kind, const char *id, struct lt_adm_op *o,
			 char *err, size_t errlen)
{
	o->a = lt_api_of(r);
	return lt_sync_change(o->a->sync, kind, id, lt_adm_do, o, err, errlen);
}

/* The id of a limit, a penalty or a policy (docs/events/config.v1.md). */
static const char *lt_adm_id2(char *buf, size_t len, const char *a, const char *b)
{
	snprintf(buf, len, "%s/%s", a, b);
	return buf;
}

static const char *lt_adm_pfx(char *buf, size_t len, const struct lt_lpm_key *k)
{
	lt_prefix_format(k, buf, len);
	return buf;
}

/* ---- tiers and org quotas ------------------------------------------------------ */

struct lt_lim_acc {
	json_t *obj;
	int by_name;
};

static void lt_lim_cb(void *ctx, const char *name, const char *provider, const struct lt_limit *l)
{
	struct lt_lim_acc *a = ctx;
	json_t *o = a->obj;

	if (a->by_name) {
		o = json_object_get(a->obj, name);
		if (!o) {
			o = json_object();
			json_object_set_new(a->obj, name, o);
		}
	}
	json_object_set_new(o, provider, lt_limit_json(l));
}

/* kind "tier"/"org": GET all of name, or PUT/DELETE name/provider */
static enum MHD_Result lt_limits_res(struct lt_req *r, const char *kind, const char *name,
				     const char *provider)
{
	struct lt_lim_acc acc = { json_object(), 0 };
	struct lt_limit l;
	struct lt_adm_op op = { .kind = kind, .name = name, .provider = provider, .l = &l };
	enum MHD_Result res;
	char err[256], id[96];
	json_t *body;
	int ret;

	if (!provider) {
		if (strcmp(r->method, "GET")) {
			json_decref(acc.obj);
			return lt_405(r);
		}
		lt_quota_limit_each(lt_api_of(r)->q, kind, name, lt_lim_cb, &acc);
		if (!json_object_size(acc.obj) && !strcmp(kind, "tier")) {
			json_decref(acc.obj);
			return lt_problem(r, 404, "not-found", "Not found", "tier",
					  "no tier '%.32s'", name);
		}
		return lt_reply_json(r, 200,
				     json_pack("{s:s, s:o}", kind, name, "providers", acc.obj));
	}
	json_decref(acc.obj);
	/*
	 * A limit can be read and deleted whatever its provider: deleting a
	 * provider keeps its limits (adding it again brings them back), and the
	 * operator can still clean them up. Setting one needs a known provider.
	 */
	if (!strcmp(r->method, "GET")) {
		if (!lt_quota_limit_get(lt_api_of(r)->q, kind, name, provider, &l))
			return lt_reply_json(r, 200, lt_limit_json(&l));
		if (strcmp(provider, "*") && !lt_quota_provider_known(lt_api_of(r)->q, provider))
			return lt_problem(r, 400, "unknown-provider", "Unknown provider",
					  "provider", "provider '%.32s' is not configured",
					  provider);
		return lt_problem(r, 404, "not-found", "Not found", "provider",
				  "no %s limit of its own for '%.32s'", kind, provider);
	}
	if (!strcmp(r->method, "DELETE")) {
		op.op = LT_ADM_LIMIT_DEL;
		ret = lt_adm_change(r, kind, lt_adm_id2(id, sizeof(id), name, provider), &op, err,
				    sizeof(err));
		if (ret == -ENOENT)
			return lt_problem(r, 404, "not-found", "Not found", NULL, "%s", err);
		if (ret)
			return lt_problem(r, 503, "store-unavailable", "Store unavailable", NULL,
					  "%s; nothing was changed", err);
		return lt_reply_json(r, 200, json_pack("{s:b}", "deleted", 1));
	}
	if (strcmp(r->method, "PUT"))
		return lt_405(r);
	if (strcmp(provider, "*") && !lt_quota_provider_known(lt_api_of(r)->q, provider))
		return lt_problem(r, 400, "unknown-provider", "Unknown provider", "provider",
				  "provider '%.32s' is not configured", provider);
	body = lt_body(r, &res);
	if (!body)
		return res;
	if (lt_cp_limit_parse(body, "", &l.capacity, &l.tokens, &l.period_ns, err, sizeof(err))) {
		json_decref(body);
		return lt_problem(r, 400, "invalid-field", "Invalid field",
				  err[0] == '/' ? err : NULL, "%s", err);
	}
	json_decref(body);
	op.op = LT_ADM_LIMIT_SET;
	ret = lt_adm_change(r, kind, lt_adm_id2(id, sizeof(id), name, provider), &op, err,
			    sizeof(err));
	if (ret == -ERANGE)
		return lt_problem(r, 400, "invalid-limit", "Limit not applied", NULL, "%s", err);
	if (ret)
		return lt_problem(r, 503, "store-unavailable", "Store unavailable", NULL,
				  "%s; nothing was changed", err);
	return lt_reply_json(r, 200, lt_limit_json(&l)); /* as GET reads it */
}

static enum MHD_Result lt_tiers_all(struct lt_req *r)
{
	struct lt_lim_acc acc = { json_object(), 1 };
	json_t *order = json_array();
	int i;

	if (strcmp(r->method, "GET")) {
		json_decref(acc.obj);
		json_decref(order);
		return lt_405(r);
	}
	lt_quota_limit_each(lt_api_of(r)->q, "tier", NULL, lt_lim_cb, &acc);
	for (i = 0; i < lt_cp_of(r)->ntiers; i++)
		json_array_append_new(order, json_string(lt_cp_of(r)->tier_order[i]));
	return lt_reply_json(r, 200,
			     json_pack("{s:o, s:o, s:s}", "tiers", acc.obj, "order", order,
				       "defaultTier", lt_cp_of(r)->default_tier));
}

/* ---- providers --------------------------------------------------------------- */

static void lt_prov_cb(void *ctx, const char *name)
{
	json_array_append_new(ctx, json_string(name));
}

static enum MHD_Result lt_providers(struct lt_req *r, const char *name)
{
	struct lt_adm_op op = { .name = name };
	json_t *arr, *body, *n;
	enum MHD_Result res;
	char err[256];
	int ret;

	if (!name && !strcmp(r->method, "GET")) {
		arr = json_array();
		lt_quota_provider_each(lt_api_of(r)->q, lt_prov_cb, arr);
		return lt_reply_json(r, 200, json_pack("{s:o}", "providers", arr));
	}
	if (!name && !strcmp(r->method, "POST")) {
		body = lt_body(r, &res);
		if (!body)
			return res;
		n = json_object_get(body, "name");
		if (!json_is_string(n) || !lt_cp_name_ok(json_string_value(n)) ||
		    json_object_size(body) != 1) {
			json_decref(body);
			return lt_problem(
				r, 400, "invalid-field", "Invalid field", "/name",
				"name: 1-31 letters, digits, '-' or '_' (the only field)");
		}
		op.op = LT_ADM_PROV_ADD;
		op.name = json_string_value(n);
		ret = lt_adm_change(r, "provider", op.name, &op, err, sizeof(err));
		if (ret) {
			json_decref(body);
			return lt_problem(r, ret == -ENOSPC ? 409 : 500, "provider",
					  "Provider not added", "/name", "%s", err);
		}
		if (lt_api_of(r)->brk) /* listed as a closed breaker from now on */
			lt_breaker_register(lt_api_of(r)->brk, json_string_value(n));
		res = lt_reply_json(r, 201, json_pack("{s:s}", "name", json_string_value(n)));
		json_decref(body);
		return res;
	}
	if (name && !strcmp(r->method, "DELETE")) {
		op.op = LT_ADM_PROV_DEL;
		ret = lt_adm_change(r, "provider", name, &op, err, sizeof(err));
		if (ret)
			return lt_problem(r, ret == -ENOENT ? 404 : 500, "provider", "Provider",
					  NULL, "%s", err);
		return lt_reply_json(r, 200, json_pack("{s:b}", "deleted", 1));
	}
	return lt_405(r);
}

/* ---- API keys ------------------------------------------------------------------ */

static int lt_parse_time(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);

	if (!end || *end)
		return -EINVAL;
	*out = (int64_t)timegm(&tm);
	return 0;
}

static json_t *lt_key_json(const struct lt_key_rec *k)
{
	json_t *o;

	o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:o}", "id", k->id, "name", k->name, "owner",
		      k->owner, "tier", k->tier, "limits", lt_limit_json(&k->limit), "revoked",
		      k->revoked, "createdAt", lt_time_json(k->created_at));
	json_object_set_new(o, "orgId", k->org[0] ? json_string(k->org) : json_null());
	json_object_set_new(o, "expiresAt",
			    k->expires_at ? lt_time_json(k->expires_at) : json_null());
	json_object_set_new(o, "admin", json_boolean(k->admin));
	return o;
}

static void lt_key_list_cb(void *ctx, const struct lt_key_rec *k)
{
	json_array_append_new(ctx, lt_key_json(k));
}

/*
 * Whether the caller may give k the rights it asks for (k as it would be
 * stored; was_admin: k had the admin right before this change). An API key
 * (or a token exchanged for one) acting as an admin never grants the admin
 * right, and never makes or extends a key past its own expiry: a key that
 * could mint keys like itself would outlive its own revocation or expiry
 * through them. Granting it takes an admin signed in with a JWT (the
 * identity provider's, or one a sign-in code gave). A plain key cannot get
 * here (admin resources need the admin right). 0, or -1 with a 403 queued.
 */
static int lt_key_grant_ok(struct lt_req *r, const struct lt_key_rec *k, int was_admin,
			   int expiry_set, enum MHD_Result *res)
{
	const struct lt_principal *p = &r->principal;
	struct lt_key_rec own;

	if (!p->key_id[0])
		return 0;
	if (k->admin && !was_admin) {
		*res = lt_problem(r, 403, "forbidden", "Forbidden", "/admin",
				  "only an admin signed in with a JWT may grant the admin right; "
				  "API key %s cannot make keys with its own rights",
				  p->key_id);
		return -1;
	}
	if (!expiry_set)
		return 0;
	/* the caller's own record, read a moment ago to sign it in: gone now, refuse */
	if (lt_keys_get(lt_api_of(r)->keys, p->key_id, &own)) {
		*res = lt_problem(r, 403, "forbidden", "Forbidden", "/expiresAt",
				  "API key %s cannot be read now: its expiry cannot be checked",
				  p->key_id);
		return -1;
	}
	if (!own.expires_at)
		return 0;
	if (!k->expires_at || k->expires_at > own.expires_at) {
		*res = lt_problem(r, 403, "forbidden", "Forbidden", "/expiresAt",
				  "API key %s expires at %lld (unix s): the keys it makes or "
				  "changes must expire no later",
				  p->key_id, (long long)own.expires_at);
		return -1;
	}
	return 0;
}

/* Fills rec from a create/update body; on error queues a 4xx and returns -1. */
static int lt_key_fields(struct lt_req *r, json_t *b, struct lt_key_rec *k, int create,
			 enum MHD_Result *res)
{
	static const char *const allowed[] = { "name",	 "owner",     "tier", "orgId",
					       "limits", "expiresAt", "admin" };
	int was_admin = k->admin;
	const char *f;
	json_t *v;
	char err[256];
	unsigned i;

	json_object_foreach(b, f, v) {
		int ok = 0;

		for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
			ok |= !strcmp(f, allowed[i]);
		if (!ok || (!create &&
			    (!strcmp(f, "owner") || !strcmp(f, "tier") || !strcmp(f, "orgId")))) {
			*res = lt_problem(r, 400, "unknown-field", "Unknown field", f,
					  "field '%.32s' cannot be %s", f,
					  create ? "set" : "changed");
			return -1;
		}
	}
	v = json_object_get(b, "name");
	if (v || create) {
		if (!json_is_string(v) || !*json_string_value(v) ||
		    strlen(json_string_value(v)) >= sizeof(k->name)) {
			*res = lt_problem(r, 400, "invalid-field", "Invalid field", "/name",
					  "name: a non-empty string of at most 127 bytes");
			return -1;
		}
		snprintf(k->name, sizeof(k->name), "%s", json_string_value(v));
	}
	if (create) {
		v = json_object_get(b, "owner");
		if (!json_is_string(v) || lt_uuid_canon(json_string_value(v), k->owner)) {
			*res = lt_problem(r, 400, "invalid-field", "Invalid field", "/owner",
					  "owner must be a user UUID");
			return -1;
		}
		v = json_object_get(b, "tier");
		if (!json_is_string(v) ||
		    !lt_quota_tier_exists(lt_api_of(r)->q, json_string_value(v))) {
			*res = lt_problem(r, 400, "invalid-field", "Invalid field", "/tier",
					  "tier must name a configured tier");
			return -1;
		}
		snprintf(k->tier, sizeof(k->tier), "%s", json_string_value(v));
		v = json_object_get(b, "orgId");
		if (v && !json_is_null(v)) {
			if (!json_is_string(v) || lt_uuid_canon(json_string_value(v), k->org)) {
				*res = lt_problem(r, 400, "invalid-field", "Invalid field",
						  "/orgId", "orgId must be a UUID");
				return -1;
			}
		}
	}
	v = json_object_get(b, "limits");
	if (v || create) {
		if (lt_cp_limit_parse(v, "/limits", &k->limit.capacity, &k->limit.tokens,
				      &k->limit.period_ns, err, sizeof(err))) {
			*res = lt_problem(r, 400, "invalid-field", "Invalid field", "/limits", "%s",
					  err);
			return -1;
		}
	}
	v = json_object_get(b, "expiresAt");
	if (v) {
		if (json_is_null(v)) {
			k->expires_at = 0;
		} else if (!json_is_string(v) ||
			   lt_parse_time(json_string_value(v), &k->expires_at) ||
			   k->expires_at <= (int64_t)time(NULL)) {
			*res = lt_problem(r, 400, "invalid-field", "Invalid field", "/expiresAt",
					  "expiresAt: a future time like 2027-01-31T00:00:00Z");
			return -1;
		}
	}
	v = json_object_get(b, "admin");
	if (v) {
		if (!json_is_boolean(v)) {
			*res = lt_problem(r, 400, "invalid-field", "Invalid field", "/admin",
					  "admin: true or false");
			return -1;
		}
		k->admin = json_is_true(v);
	}
	/* a new key is checked for its expiry even when it has none (never) */
	return lt_key_grant_ok(r, k, create ? 0 : was_admin,
			       create || json_object_get(b, "expiresAt"), res);
}

static enum MHD_Result lt_keys_res(struct lt_req *r, const char *id, const char *sub)
{
	struct lt_key_rec k = { 0 };
	char secret[LT_KEY_SECRET_LEN + 8], bucket[LT_BUCKET_KEY_LEN], err[256];
	struct lt_adm_op op = { .k = &k, .secret = secret, .slen = sizeof(secret) };
	enum MHD_Result res;
	json_t *b, *o;
	int ret;

	if (!id) {
		if (!strcmp(r->method, "GET")) {
			json_t *arr = json_array();

			lt_keys_each(lt_api_of(r)->keys, lt_key_list_cb, arr);
			return lt_reply_json(r, 200, json_pack("{s:o}", "keys", arr));
		}
		if (strcmp(r->method, "POST"))
			return lt_405(r);
		b = lt_body(r, &res);
		if (!b)
			return res;
		if (lt_key_fields(r, b, &k, 1, &res)) {
			json_decref(b);
			return res;
		}
		json_decref(b);
		op.op = LT_ADM_KEY_NEW; /* k.id is "": the key gets its id in there */
		ret = lt_adm_change(r, "apikey", k.id, &op, err, sizeof(err));
		if (ret)
			return lt_problem(r, 500, "store", "Store error", NULL,
					  "key not created: %s", strerror(-ret));
		o = lt_key_json(&k);
		json_object_set_new(o, "secret", json_string(secret)); /* shown once */
		return lt_reply_json(r, 201, o);
	}
	if (lt_keys_get(lt_api_of(r)->keys, id, &k))
		return lt_problem(r, 404, "not-found", "Not found", NULL, "no API key %.40s", id);
	if (sub) {
		struct lt_view v;
		struct lt_usage u = { 0 };
		__u32 slot;

		if (strcmp(sub, "usage") || strcmp(r->method, "GET"))
			return lt_problem(r, 404, "not-found", "Not found", NULL,
					  "no such resource");
		/* a read: a key never used has no bucket, and gets none here */
		if (lt_bucket_key(bucket, sizeof(bucket), LT_BKEY_APIKEY, NULL, NULL, k.id) ||
		    lt_quota_peek_key(lt_api_of(r)->q, bucket, &k.limit, lt_now_ns(), &v, &slot))
			return lt_problem(r, 503, "no-bucket", "No bucket", NULL,
					  "API key %.40s has no usable limit", k.id);
		if (slot)
			lt_quota_usage(lt_api_of(r)->q, slot, &u);
		return lt_reply_json(r, 200,
				     json_pack("{s:s, s:I, s:I, s:I, s:I}", "id", k.id, "admitted",
					       (json_int_t)u.admitted, "rejected",
					       (json_int_t)u.rejected, "tokens",
					       (json_int_t)u.tokens, "remaining",
					       (json_int_t)v.remaining));
	}
	if (!strcmp(r->method, "GET"))
		return lt_reply_json(r, 200, lt_key_json(&k));
	if (!strcmp(r->method, "DELETE")) {
		op.op = LT_ADM_KEY_REVOKE;
		ret = lt_adm_change(r, "apikey", k.id, &op, err, sizeof(err));
		if (ret)
			return lt_problem(r, 500, "store", "Store error", NULL,
					  "key not revoked: %s", strerror(-ret));
		k.revoked = 1;
		return lt_reply_json(r, 200, lt_key_json(&k));
	}
	if (strcmp(r->method, "PATCH"))
		return lt_405(r);
	b = lt_body(r, &res);
	if (!b)
		return res;
	ret = lt_key_fields(r, b, &k, 0, &res);
	json_decref(b);
	if (ret)
		return res;
	op.op = LT_ADM_KEY_SET;
	ret = lt_adm_change(r, "apikey", k.id, &op, err, sizeof(err));
	if (ret)
		return lt_problem(r, 500, "store", "Store error", NULL, "key not updated: %s",
				  strerror(-ret));
	return lt_reply_json(r, 200, lt_key_json(&k));
}

/* ---- upstream health (the gateways' checks, lt_upstream) ------------------------ */

/* A bounded string of the map as JSON (the writer NUL-pads, but never trust it). */
static json_t *lt_map_str(const char *s, size_t n)
{
	char buf[256], out[4 * sizeof(buf)];

	snprintf(buf, sizeof(buf), "%.*s", (int)(n < sizeof(buf) ? n : sizeof(buf) - 1), s);
	lt_utf8_sanitize(buf, out, sizeof(out));
	return json_string(out);
}

/*
 * GET /api/v1/admin/upstreams: each upstream a gateway checks, as its master
 * last published it in lt_upstream. state: "up" or "down" by the last check,
 * "stale" when that check is older than 3 intervals plus 2 s (the gateway
 * stopped checking it: stopped, or the service left its config).
 */
static enum MHD_Result lt_upstreams(struct lt_req *r)
{
	int fd = lt_api_of(r)->maps->fd[LT_M_UPSTREAM];
	struct lt_upstream_key k, nk;
	struct lt_upstream_val v;
	struct timespec ts;
	json_t *arr;
	__u64 now_ms;
	int ret;

	if (strcmp(r->method, "GET"))
		return lt_405(r);
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (__u64)ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000;
	arr = json_array();
	ret = fd >= 0 ? bpf_map_get_next_key(fd, NULL, &nk) : -1;
	while (!ret) {
		k = nk;
		if (!bpf_map_lookup_elem(fd, &k, &v)) {
			int stale = v.checked_ms + 3ULL * v.interval_ms + 2000 < now_ms;
			json_t *o = json_pack(
				"{s:o, s:o, s:s, s:b, s:i, s:f, s:o, s:o, s:i, s:i}", "service",
				lt_map_str(k.service, sizeof(k.service)), "upstream",
				lt_map_str(k.upstream, sizeof(k.upstream)), "state",
				stale	  ? "stale" :
				v.healthy ? "up" :
					    "down",
				"healthy", (int)!!v.healthy, "fails", (int)v.fails, "latencyMs",
				v.latency_us / 1000.0, "checkedAt",
				lt_time_json((int64_t)(v.checked_ms / 1000)), "changedAt",
				v.changed_ms ? lt_time_json((int64_t)(v.changed_ms / 1000)) :
					       json_null(),
				"intervalMs", (int)v.interval_ms, "gatewayPid", (int)v.pid);

			json_object_set_new(o, "lastError",
					    v.why[0] ? lt_map_str(v.why, sizeof(v.why)) :
						       json_null());
			json_array_append_new(arr, o);
		}
		ret = bpf_map_get_next_key(fd, &k, &nk);
	}
	return lt_reply_json(r, 200, json_pack("{s:o}", "upstreams", arr));
}

/* ---- penalties and source policies (the XDP maps) ---------------------------- */

static const char *lt_qarg(struct lt_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static const char *const lt_reasons[] = { [LT_PENALTY_MANUAL] = "manual",
					  [LT_PENALTY_ABUSE] = "abuse",
					  [LT_PENALTY_AUTH] = "auth",
					  [LT_PENALTY_GATEWAY] = "gateway-escalation" };

/* One penalty as GET lists it and POST returns it; expiresAt null = until unbanned. */
static json_t *lt_penalty_json(const struct lt_lpm_key *k, const struct lt_penalty *pen, __u64 now)
{
	char buf[80];
	json_t *o;

	lt_prefix_format(k, buf, sizeof(buf));
	o = json_pack("{s:s, s:s, s:i}", "prefix", buf, "reason",
		      pen->reason < sizeof(lt_reasons) / sizeof(lt_reasons[0]) ?
			      lt_reasons[pen->reason] :
			      "unknown",
		      "strikes", (int)pen->strikes);
	if (pen->until_ns == ~0ULL)
		json_object_set_new(o, "expiresAt", json_null());
	else /* the map holds monotonic ns: seconds from now, rounded up, on the wall clock */
		json_object_set_new(
			o, "expiresAt",
			lt_time_json((int64_t)time(NULL) +
				     (int64_t)(pen->until_ns > now ?
						       (pen->until_ns - now + LT_NS_PER_SEC - 1) /
							       LT_NS_PER_SEC :
						       0)));
	return o;
}

struct lt_pen_json {
	json_t *arr;
	__u64 now;
};

static int lt_pen_json_add(void *ctx, const struct lt_lpm_key *k, const struct lt_penalty *p)
{
	struct lt_pen_json *pj = ctx;

	json_array_append_new(pj->arr, lt_penalty_json(k, p, pj->now));
	return 0;
}

static enum MHD_Result lt_penalties(struct lt_req *r)
{
	struct lt_maps *m = lt_api_of(r)->maps;
	struct lt_ops ops = { .m = m,
			      .state_dir = lt_api_of(r)->state_dir,
			      .st = lt_api_of(r)->st };
	struct lt_lpm_key k;
	struct lt_penalty pen;
	struct lt_adm_op op = { .ops = &ops, .pk = &k, .pen = &pen };
	char err[256], id[80];
	enum MHD_Result res;
	const char *pfx;
	const char *f;
	json_t *b, *v;
	__u64 dur = 3600 * LT_NS_PER_SEC, now = lt_now_ns();
	__u32 reason = LT_PENALTY_MANUAL;
	int ret;

	if (!strcmp(r->method, "GET")) {
		struct lt_pen_json pj = { json_array(), now };

		if (lt_op_bans(m, lt_pen_json_add, &pj, err, sizeof(err))) {
			json_decref(pj.arr);
			return lt_problem(r, 500, "map", "Penalty box unreadable", NULL, "%s", err);
		}
		return lt_reply_json(r, 200, json_pack("{s:o}", "penalties", pj.arr));
	}
	if (!strcmp(r->method, "DELETE")) {
		pfx = lt_qarg(r, "prefix");
		if (!pfx || lt_prefix_parse(pfx, &k, err, sizeof(err)))
			return lt_problem(r, 400, "invalid-field", "Invalid field", "prefix",
					  "?prefix= must be an IP prefix");
		op.op = LT_ADM_UNBAN;
		ret = lt_adm_change(r, "penalty", lt_adm_pfx(id, sizeof(id), &k), &op, err,
				    sizeof(err));
		if (ret == -ENOENT)
			return lt_problem(r, 404, "not-found", "Not found", "prefix", "%s", err);
		if (ret)
			return lt_problem(r, 503, "store-unavailable", "Unban not applied", NULL,
					  "%s; nothing was changed", err);
		return lt_reply_json(r, 200, json_pack("{s:b}", "deleted", 1));
	}
	if (strcmp(r->method, "POST"))
		return lt_405(r);
	b = lt_body(r, &res);
	if (!b)
		return res;
	v = json_object_get(b, "prefix");
	if (!json_is_string(v) || lt_prefix_parse(json_string_value(v), &k, err, sizeof(err))) {
		json_decref(b);
		return lt_problem(r, 400, "invalid-field", "Invalid field", "/prefix",
				  "prefix must be an IP prefix like 192.0.2.0/24");
	}
	v = json_object_get(b, "duration");
	if (v && (!json_is_string(v) || lt_duration_parse(json_string_value(v), &dur) || !dur ||
		  dur > 3650 * 86400 * LT_NS_PER_SEC)) {
		json_decref(b);
		return lt_problem(r, 400, "invalid-field", "Invalid field", "/duration",
				  "duration like \"10m\", \"2h\" (up to 10 years)");
	}
	v = json_object_get(b, "reason");
	if (v) {
		const char *s = json_string_value(v);

		for (reason = 0; s && reason < sizeof(lt_reasons) / sizeof(lt_reasons[0]); reason++)
			if (!strcmp(s, lt_reasons[reason]))
				break;
		if (!s || reason == sizeof(lt_reasons) / sizeof(lt_reasons[0])) {
			json_decref(b);
			return lt_problem(r, 400, "invalid-field", "Invalid field", "/reason",
					  "reason: manual, abuse, auth or gateway-escalation");
		}
	}
	json_object_foreach(b, f, v) {
		if (strcmp(f, "prefix") && strcmp(f, "duration") && strcmp(f, "reason")) {
			res = lt_problem(r, 400, "unknown-field", "Unknown field", f,
					 "field '%.32s' is not part of a penalty", f);
			json_decref(b);
			return res;
		}
	}
	json_decref(b);
	op.op = LT_ADM_BAN;
	op.dur = dur;
	op.reason = reason;
	ret = lt_adm_change(r, "penalty", lt_adm_pfx(id, sizeof(id), &k), &op, err, sizeof(err));
	if (ret == -ENOSPC || ret == -E2BIG)
		return lt_problem(r, 507, "map-full", "Penalty box full", "/prefix", "%s", err);
	if (ret)
		return lt_problem(r, 503, "store-unavailable", "Ban not applied", NULL,
				  "%s; nothing was changed", err);
	return lt_reply_json(r, 201, lt_penalty_json(&k, &pen, now));
}

/* One policy as GET lists it and PUT returns it. */
static json_t *lt_policy_json(const struct lt_lpm_key *k, const struct lt_src_policy *pol)
{
	char buf[80];

	lt_prefix_format(k, buf, sizeof(buf));
	return json_pack("{s:s, s:b, s:o, s:o, s:i, s:i}", "prefix", buf, "allow",
			 !!(pol->flags & LT_POL_ALLOW), "connections", lt_rate_json(&pol->conn),
			 "packets", lt_rate_json(&pol->pkt), "aggregateV4", pol->agg_v4,
			 "aggregateV6", pol->agg_v6);
}

static enum MHD_Result lt_policies(struct lt_req *r)
{
	struct lt_maps *m = lt_api_of(r)->maps;
	struct lt_ops ops = { .m = m,
			      .state_dir = lt_api_of(r)->state_dir,
			      .st = lt_api_of(r)->st };
	struct lt_src_policy pol, base;
	struct lt_config cfg = { 0 };
	struct lt_lpm_key k, nk;
	struct lt_adm_op op = { .ops = &ops, .pk = &k, .pol = &pol };
	enum MHD_Result res;
	char err[256], id[80];
	const char *pfx = lt_qarg(r, "prefix");
	json_t *b;
	int ret;

	if (!strcmp(r->method, "GET")) {
		json_t *arr = json_array();

		ret = bpf_map_get_next_key(m->fd[LT_M_POLICY], NULL, &nk);
		while (!ret) {
			k = nk;
			if (!bpf_map_lookup_elem(m->fd[LT_M_POLICY], &k, &pol))
				json_array_append_new(arr, lt_policy_json(&k, &pol));
			ret = bpf_map_get_next_key(m->fd[LT_M_POLICY], &k, &nk);
		}
		return lt_reply_json(r, 200, json_pack("{s:o}", "policies", arr));
	}
	if (!pfx || lt_prefix_parse(pfx, &k, err, sizeof(err)))
		return lt_problem(r, 400, "invalid-field", "Invalid field", "prefix",
				  "?prefix= must be an IP prefix");
	if (!strcmp(r->method, "DELETE")) {
		op.op = LT_ADM_POL_DEL;
		ret = lt_adm_change(r, "policy", lt_adm_pfx(id, sizeof(id), &k), &op, err,
				    sizeof(err));
		if (ret)
			return lt_problem(r, ret == -ENOENT ? 404 : 507, "policy", "Policy",
					  "prefix", "%s", err);
		return lt_reply_json(r, 200, json_pack("{s:b}", "deleted", 1));
	}
	if (strcmp(r->method, "PUT"))
		return lt_405(r);
	b = lt_body(r, &res);
	if (!b)
		return res;
	lt_cfg_read(m->fd[LT_M_CONFIG], &cfg);
	base = cfg.dflt;
	ret = lt_policy_from_json(b, "", &base, &pol, err, sizeof(err));
	json_decref(b);
	if (ret)
		return lt_problem(r, 400, "invalid-field", "Invalid field", NULL, "%s", err);
	op.op = LT_ADM_POL_SET;
	ret = lt_adm_change(r, "policy", lt_adm_pfx(id, sizeof(id), &k), &op, err, sizeof(err));
	if (ret)
		return lt_problem(r, 507, "policy", "Policy not applied", NULL, "%s", err);
	return lt_reply_json(r, 200, lt_policy_json(&k, &pol));
}

/* ---- circuit breakers (lib/breaker.h; the gateways decide, the agent shows and resets) ---- */

/* A CLOCK_MONOTONIC ms instant as RFC 3339 (rounded up: never earlier than it is). */
static json_t *lt_mono_ms_json(__u64 t_ms, __u64 now_mono_ms, __u64 now_real_ms)
{
	long long real = (long long)now_real_ms + ((long long)t_ms - (long long)now_mono_ms);

	return lt_time_json((real + 999) / 1000);
}

static json_t *lt_breaker_json(const struct lt_brk_info *i)
{
	__u64 mono = lt_brk_now_ms(), real;
	struct timespec ts;
	json_t *o;

	clock_gettime(CLOCK_REALTIME, &ts);
	real = (__u64)ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000;
	o = json_pack(
		"{s:s, s:s, s:i, s:o, s:o, s:{s:i, s:i, s:i}, s:I, s:I, s:o, s:{s:i, s:I, "
		"s:i, s:I}}",
		"name", i->name, "state", lt_brk_state_name(i->state), "failures", (int)i->failures,
		"openedAt", i->trips ? lt_mono_ms_json(i->opened_at_ms, mono, real) : json_null(),
		"until",
		i->state != LT_BRK_CLOSED ? lt_mono_ms_json(i->t_ms, mono, real) : json_null(),
		"probes", "issued", (int)i->issued, "succeeded", (int)i->succeeded, "max",
		(int)i->policy.probes, "trips", (json_int_t)i->trips, "denied",
		(json_int_t)i->denied, "lastCause",
		i->trips || i->last_cause ? json_string(lt_brk_outcome_name(i->last_cause)) :
					    json_null(),
		"policy", "failThreshold", (int)i->policy.fail_threshold, "recoveryMs",
		(json_int_t)i->policy.recovery_ms, "probes", (int)i->policy.probes,
		"probeTimeoutMs", (json_int_t)i->policy.probe_timeout_ms);
	return o;
}

/* GET /breakers, POST /breakers/{name}/reset */
static enum MHD_Result lt_breakers_res(struct lt_req *r, const char *name, const char *action)
{
	struct lt_breakers *b = lt_api_of(r)->brk;
	struct lt_brk_info info;
	json_t *arr;
	__u32 i;

	if (!b)
		return lt_problem(r, 503, "maps-unavailable", "Breakers unavailable", NULL,
				  "lt_breaker is not mapped");
	if (!name) {
		if (strcmp(r->method, "GET"))
			return lt_405(r);
		arr = json_array();
		for (i = 0; i < b->n; i++)
			if (!lt_breaker_info(b, i, &info) && info.name[0])
				json_array_append_new(arr, lt_breaker_json(&info));
		return lt_reply_json(r, 200, json_pack("{s:o}", "breakers", arr));
	}
	if (!action || strcmp(action, "reset"))
		return lt_problem(r, 404, "not-found", "Not found", NULL, "no resource at %.128s",
				  r->url);
	if (strcmp(r->method, "POST"))
		return lt_405(r);
	if (lt_breaker_reset(b, name) || lt_breaker_get(b, name, &info))
		return lt_problem(r, 404, "not-found", "No such breaker", "name",
				  "no breaker named '%.48s'", name);
	return lt_reply_json(r, 200, lt_breaker_json(&info));
}

/* ---- routing ---------------------------------------------------------------------- */

int lt_admin_route(struct lt_req *r, const struct lt_principal *p, enum MHD_Result *res)
{
	char path[512], *seg[SEG_MAX], *save = NULL, *t, org[LT_UUID_LEN + 1];
	int n = 0;

	(void)p;
	if (strlen(r->url) >= sizeof(path))
		return -1;
	snprintf(path, sizeof(path), "%s", r->url + 14);
	for (t = strtok_r(path, "/", &save); t && n < SEG_MAX; t = strtok_r(NULL, "/", &save))
		seg[n++] = t;
	if (!n || t)
		return -1;
	pthread_mutex_lock(&lt_api_of(r)->admin_lock);
	if (!strcmp(seg[0], "tiers") && n == 1)
		*res = lt_tiers_all(r);
	else if (!strcmp(seg[0], "tiers") && n <= 3 && lt_cp_name_ok(seg[1]))
		*res = lt_limits_res(r, "tier", seg[1], n == 3 ? seg[2] : NULL);
	else if (!strcmp(seg[0], "orgs") && n >= 3 && n <= 4 && !strcmp(seg[2], "quotas") &&
		 (!lt_uuid_canon(seg[1], org) || !strcmp(seg[1], "default")))
		*res = lt_limits_res(r, "org", strcmp(seg[1], "default") ? org : "*",
				     n == 4 ? seg[3] : NULL); /* org: one spelling */
	else if (!strcmp(seg[0], "providers") && n <= 2)
		*res = lt_providers(r, n == 2 ? seg[1] : NULL);
	else if (!strcmp(seg[0], "keys") && n <= 3)
		*res = lt_keys_res(r, n >= 2 ? seg[1] : NULL, n == 3 ? seg[2] : NULL);
	else if (!strcmp(seg[0], "penalties") && n == 1)
		*res = lt_penalties(r);
	else if (!strcmp(seg[0], "policies") && n == 1)
		*res = lt_policies(r);
	else if (!strcmp(seg[0], "upstreams") && n == 1)
		*res = lt_upstreams(r);
	else if (!strcmp(seg[0], "breakers") && (n == 1 || n == 3))
		*res = lt_breakers_res(r, n == 3 ? seg[1] : NULL, n == 3 ? seg[2] : NULL);
	else {
		pthread_mutex_unlock(&lt_api_of(r)->admin_lock);
		return -1;
	}
	pthread_mutex_unlock(&lt_api_of(r)->admin_lock);
	return 0;
}
