/* SPDX-License-Identifier: MIT */
/*
 * identity.h - who is calling the gateway: credentials -> tenant, with the
 * agent's own code (lib/auth.c lt_auth_request and lt_apikey_check,
 * lib/tenant.c canonical ids, lib/jwt.c), so the two can never disagree.
 *
 *   X-API-Key: lk_<id>.<secret>, or Authorization: Bearer lk_<id>.<secret>
 *       the record of <id> from the pinned lt_apikey map (the agent writes
 *       it), through a process-local cache; refused when unknown, revoked
 *       or expired (expiry checked against now on every request).
 *   Authorization: Bearer <JWT>
 *       HS256 with the agent's secret (lt_gw_jwt_from_agent), and whatever
 *       RS256/ES256 keys the caller adds to the verifier.
 *
 * The cache. One lt_gw_identity per worker thread (no locks): a
 * direct-mapped table of key id -> record (or "no such key"). The agent adds
 * 1 to lt_config_val.keys_gen (mmapped, lt_abi.h) after every write to
 * lt_apikey; each request reads that word (one load, no system call) and
 * empties the cache when it moved. So a revocation or a limit change
 * applies from the next request on, in every gateway process. An entry is
 * also fetched again once it is LT_GW_KEY_TTL_S old, so an operator's
 * `bpftool map update` of lt_apikey (which does not bump keys_gen) applies
 * within that time. A request whose key is in the cache makes no system
 * call; a miss costs one bpf_map_lookup_elem.
 */
#ifndef LT_GW_IDENTITY_H
#define LT_GW_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "auth.h"

#define LT_GW_KEY_CACHE 512 /* entries per thread, a power of two */
#define LT_GW_KEY_TTL_S 2 /* s: a cached record is fetched again after this */

/*
 * The credential fields a route reads, in bytes with the NUL: a longer one is
 * refused with 400 before any route runs (gateway/proxy.c), never taken as
 * absent while the upstream still gets it.
 */
#define LT_GW_AUTHORIZATION_MAX 4096
#define LT_GW_API_KEY_MAX 512
#define LT_GW_ORG_ID_MAX 128

/* The caller, canonical (tenant.h). */
struct lt_gw_tenant {
	char user[LT_JWT_ID_LEN]; /* user id: JWT sub or the key's owner */
	char org[LT_JWT_ID_LEN]; /* "" = none: the user's own budget */
	char tier[32];
	char key_id[40]; /* "" unless authenticated by an API key */
	struct lt_limit key_limit; /* the key's own bucket (zero for a JWT) */
	int admin; /* a JWT with the admin role */
};

/* Why a request is refused: status and an RFC 9457 problem. */
struct lt_gw_deny {
	unsigned status; /* 401, 403 (org not the caller's), 400 (org ambiguous), 503 (maps) */
	const char *type; /* "unauthorized" | "invalid-token" | "forbidden" | ... */
	const char *title;
	const char *field; /* the header at fault */
	char detail[256];
};

struct lt_gw_identity_opts {
	const struct lt_jwt_verifier *jwt; /* NULL: JWTs are refused */
	struct lt_auth_roles roles; /* tiers from JWT roles, as the agent's config says */
	/* where key records come from: lt_apikey_map_fn with &fd of the pinned
	 * lt_apikey (lt_gw_pins); NULL: API keys are refused */
	lt_apikey_get_fn key_get;
	void *key_ctx;
	/* &keys_gen of the mmapped lt_config; NULL: no cache, a lookup per request */
	const __u64 *keys_gen;
};

struct lt_gw_identity_stats {
	__u64 hits, misses, flushes; /* cache */
	__u64 lookup_errors; /* lt_apikey could not be read (503) */
};

struct lt_gw_identity;

/* One per worker thread. -ENOMEM. opts (and what it points to) must outlive it. */
int lt_gw_identity_new(struct lt_gw_identity **out, const struct lt_gw_identity_opts *o);
void lt_gw_identity_free(struct lt_gw_identity *id);

/*
 * authorization, api_key, org_hint: raw header values (Authorization,
 * X-API-Key, X-Org-Id), NULL when absent. now_unix: the request's time.
 * The tenant's org: an API key's own org; for a JWT, X-Org-Id when the
 * token lists it (403 otherwise), else its only org, else none (400 when it
 * lists several and X-Org-Id does not say which). An API key with an
 * X-Org-Id other than its own org is 403.
 * 0 and *t, or -EACCES and *d (t zeroed).
 */
int lt_gw_identify(struct lt_gw_identity *id, const char *authorization, const char *api_key,
		   const char *org_hint, int64_t now_unix, struct lt_gw_tenant *t,
		   struct lt_gw_deny *d);

void lt_gw_identity_stats(const struct lt_gw_identity *id, struct lt_gw_identity_stats *s);

/* The pinned maps identity reads: lt_apikey (fd) and lt_config (mmapped). */
struct lt_gw_pins {
	int apikey_fd;
	struct lt_config_val *cfg;
	size_t cfg_len;
};

/* Opens both under pin_dir; -errno and a sentence in err (nothing stays open). */
int lt_gw_pins_open(struct lt_gw_pins *p, const char *pin_dir, char *err, size_t errlen);
void lt_gw_pins_close(struct lt_gw_pins *p);

/*
 * A verifier with the agent's HS256 secret (lt_jwt_secret: cfg_secret, then
 * $LT_JWT_SECRET, then <state_dir>/jwt-secret). The gateway's user must be
 * able to read that file, or be given the secret. -errno and err.
 */
int lt_gw_jwt_from_agent(struct lt_jwt_verifier *v, const char *state_dir, const char *cfg_secret,
			 char *err, size_t errlen);

#endif
