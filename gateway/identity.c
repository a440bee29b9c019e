// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "identity.h"
#include "maps.h"
#include "units.h"
#include "tenant.h"

/* A cached lt_apikey record, or the fact that there is none. */
struct lt_gw_key_ent {
	char id[40]; /* "" = empty slot */
	int present; /* 0: the map has no such key (a cached -ENOENT) */
	int64_t fetched_at; /* unix s */
	struct lt_key_rec rec;
};

struct lt_gw_identity {
	const struct lt_gw_identity_opts *o;
	__u64 gen; /* keys_gen the cache was filled under */
	int last_err; /* of the last lookup that was not a plain hit or miss */
	int64_t now; /* of the request being identified */
	struct lt_gw_identity_stats st;
	struct lt_gw_key_ent ent[LT_GW_KEY_CACHE];
};

int lt_gw_identity_new(struct lt_gw_identity **out, const struct lt_gw_identity_opts *o)
{
	struct lt_gw_identity *id = calloc(1, sizeof(*id));

	if (!id)
		return -ENOMEM;
	id->o = o;
	if (o->keys_gen)
		id->gen = __atomic_load_n(o->keys_gen, __ATOMIC_ACQUIRE);
	*out = id;
	return 0;
}

void lt_gw_identity_free(struct lt_gw_identity *id)
{
	free(id);
}

void lt_gw_identity_stats(const struct lt_gw_identity *id, struct lt_gw_identity_stats *s)
{
	*s = id->st;
}

static unsigned lt_gw_slot(const char *id)
{
	__u64 h = 1469598103934665603ULL;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return (unsigned)(lt_mix64(h) & (LT_GW_KEY_CACHE - 1));
}

/* lt_apikey_get_fn over the cache; the source is opts->key_get. */
static int lt_gw_key_get(void *ctx, const char *kid, struct lt_key_rec *out)
{
	struct lt_gw_identity *id = ctx;
	struct lt_gw_key_ent *e;
	int ret;

	if (!id->o->keys_gen) { /* no generation word: every request asks the map */
		ret = id->o->key_get(id->o->key_ctx, kid, out);
		if (ret && ret != -ENOENT)
			id->last_err = ret;
		return ret;
	}
	e = &id->ent[lt_gw_slot(kid)];
	if (e->id[0] && !strcmp(e->id, kid) && id->now - e->fetched_at < LT_GW_KEY_TTL_S &&
	    id->now >= e->fetched_at) {
		id->st.hits++;
		if (!e->present)
			return -ENOENT;
		*out = e->rec;
		return 0;
	}
	id->st.misses++;
	ret = id->o->key_get(id->o->key_ctx, kid, out);
	if (ret && ret != -ENOENT) {
		id->last_err = ret; /* not the caller's fault: not cached, answered 503 */
		e->id[0] = '\0';
		return ret;
	}
	snprintf(e->id, sizeof(e->id), "%s", kid);
	e->present = !ret;
	e->fetched_at = id->now;
	if (!ret)
		e->rec = *out;
	return ret;
}

static int lt_gw_refuse(struct lt_gw_deny *d, unsigned status, const char *type, const char *title,
			const char *field, const char *detail)
{
	d->status = status;
	d->type = type;
	d->title = title;
	d->field = field;
	snprintf(d->detail, sizeof(d->detail), "%s", detail);
	return -EACCES;
}

int lt_gw_identify(struct lt_gw_identity *id, const char *authorization, const char *api_key,
		   const char *org_hint, int64_t now_unix, struct lt_gw_tenant *t,
		   struct lt_gw_deny *d)
{
	struct lt_auth a = { .jwt = id->o->jwt,
			     .key_get = id->o->key_get ? lt_gw_key_get : NULL,
			     .key_ctx = id };
	struct lt_principal p;
	struct lt_auth_fail f;
	char hint[LT_JWT_ID_LEN];
	__u64 gen;
	int i, by_key;

	memset(t, 0, sizeof(*t));
	if (id->o->keys_gen) {
		/* loaded before any lookup: a change after it is seen by the next request */
		gen = __atomic_load_n(id->o->keys_gen, __ATOMIC_ACQUIRE);
		if (gen != id->gen) {
			for (i = 0; i < LT_GW_KEY_CACHE; i++)
				id->ent[i].id[0] = '\0';
			id->gen = gen;
			id->st.flushes++;
		}
	}
	id->now = now_unix;
	id->last_err = 0;
	by_key = api_key || (authorization && !strncasecmp(authorization, "Bearer lk_", 10));
	if (by_key && !id->o->key_get)
		return lt_gw_refuse(d, 401, "unauthorized", "Unauthorized",
				    api_key ? "X-API-Key" : "Authorization",
				    "API keys are not accepted here");
	if (!by_key && authorization && !id->o->jwt)
		return lt_gw_refuse(d, 401, "invalid-token", "Invalid token", "Authorization",
				    "JWTs are not accepted here");
	if (lt_auth_request(&a, &id->o->roles, authorization, api_key, now_unix, &p, &f)) {
		if (id->last_err) {
			id->st.lookup_errors++;
			snprintf(d->detail, sizeof(d->detail),
				 "API keys cannot be checked now (lt_apikey: %s)",
				 strerror(-id->last_err));
			d->status = 503;
			d->type = "maps-unavailable";
			d->title = "Service unavailable";
			d->field = NULL;
			return -EACCES;
		}
		return lt_gw_refuse(d, 401, f.type, f.title, f.field, f.detail);
	}
	lt_scopy(t->user, sizeof(t->user), p.sub);
	lt_scopy(t->tier, sizeof(t->tier), p.tier);
	lt_scopy(t->key_id, sizeof(t->key_id), p.key_id);
	t->key_limit = p.key_limit;
	t->admin = p.admin;
	if (org_hint && lt_claim_id_canon(org_hint, hint, sizeof(hint))) {
		memset(t, 0, sizeof(*t));
		return lt_gw_refuse(d, 400, "invalid-field", "Invalid field", "X-Org-Id",
				    "X-Org-Id is too long");
	}
	if (org_hint) {
		for (i = 0; i < p.norgs && strcmp(p.orgs[i], hint); i++)
			;
		if (i == p.norgs) {
			memset(t, 0, sizeof(*t));
			return lt_gw_refuse(d, 403, "forbidden", "Forbidden", "X-Org-Id",
					    p.key_id[0] ? "X-Org-Id is not the API key's org" :
							  "the token does not list this org");
		}
		lt_scopy(t->org, sizeof(t->org), hint);
	} else if (p.norgs == 1) {
		lt_scopy(t->org, sizeof(t->org), p.orgs[0]);
	} else if (p.norgs > 1) {
		memset(t, 0, sizeof(*t));
		return lt_gw_refuse(d, 400, "org-ambiguous", "Org ambiguous", "X-Org-Id",
				    "the token lists several orgs: say which with X-Org-Id");
	}
	return 0;
}

int lt_gw_pins_open(struct lt_gw_pins *p, const char *pin_dir, char *err, size_t errlen)
{
	char path[512];
	int fd, ret;

	memset(p, 0, sizeof(*p));
	p->apikey_fd = -1;
	snprintf(path, sizeof(path), "%s/lt_config", pin_dir);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		p->cfg = lt_map_mmap(fd, &p->cfg_len);
		ret = p->cfg ? 0 : -errno;
		close(fd);
	} else {
		ret = -errno;
	}
	if (!ret && p->cfg_len < sizeof(struct lt_config_val))
		ret = -EPROTO;
	if (!ret) {
		LIBBPF_OPTS(bpf_obj_get_opts, ro, .file_flags = BPF_F_RDONLY);

		/* read-only: lookups need no more, and the pin is 0640 for the gateway */
		snprintf(path, sizeof(path), "%s/lt_apikey", pin_dir);
		p->apikey_fd = bpf_obj_get_opts(path, &ro);
		if (p->apikey_fd < 0)
			ret = -errno;
	}
	if (ret) {
		snprintf(err, errlen, "%s: %s%s", path, strerror(-ret),
			 ret == -EACCES || ret == -EPERM ?
				 " (is this user in the agent's gateway group?)" :
			 ret == -ENOENT ? " (is leaky-agent attached with this pin dir?)" :
					  "");
		lt_gw_pins_close(p);
	}
	return ret;
}

void lt_gw_pins_close(struct lt_gw_pins *p)
{
	if (p->cfg)
		munmap(p->cfg, p->cfg_len);
	if (p->apikey_fd >= 0)
		close(p->apikey_fd);
	memset(p, 0, sizeof(*p));
	p->apikey_fd = -1;
}

int lt_gw_jwt_from_agent(struct lt_jwt_verifier *v, const char *state_dir, const char *cfg_secret,
			 char *err, size_t errlen)
{
	const char *src = NULL;
	char secret[512];
	int ret;

	lt_jwt_init(v);
	ret = lt_jwt_secret(state_dir, cfg_secret, secret, sizeof(secret), &src);
	if (ret) {
		snprintf(err, errlen, "the agent's JWT secret (%s): %s", src ? src : "?",
			 strerror(-ret));
		return ret;
	}
	ret = lt_jwt_set_secret(v, secret, err, errlen);
	memset(secret, 0, sizeof(secret));
	return ret;
}
