/* SPDX-License-Identifier: MIT */
/*
 * auth.h - who is calling (liblt: the agent's API now, the gateway next).
 * A request carries a JWT (Authorization: Bearer <JWT>) or an API key
 * (X-API-Key: <key>, or Authorization: Bearer lk_...); either becomes one
 * lt_principal: a canonical user id, its orgs, its tier and whether it may
 * administer.
 *
 *   JWT      verified by lib/jwt.c; the tier is the first configured tier a
 *            token's roles name (config order), else the default tier; an
 *            empty role matches nothing (not a tier, not the admin role).
 *   API key  "lk_<id>.<secret>": the record of <id> (from whatever store the
 *            caller names: the agent's in-memory table, or the pinned
 *            lt_apikey map for any other process), the SHA-256 of the whole
 *            key compared in constant time, not revoked, not expired. It
 *            authenticates as its owner at its tier; as an admin only when
 *            the record has the admin flag (an "admin key", made by a JWT
 *            admin: agent/api_admin.c), never because of its tier's name.
 *   key JWT  a JWT with the "lt_key" claim (issued by the agent's
 *            POST /api/v1/auth/token for an API key): authenticates as that
 *            key, looked up again on every use (so revoking or demoting the
 *            key kills the token's rights), whatever its roles claim says;
 *            its sub must be the key's owner.
 *
 * Verified tokens are memoised per thread (LT_AUTH_MEMO_SLOTS entries) by
 * their exact bytes; expiry is checked again on every use.
 */
#ifndef LT_AUTH_H
#define LT_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include "apikeys.h"
#include "jwt.h"

/* Who is calling, after authentication. Ids are canonical (tenant.h). */
struct lt_principal {
	char sub[LT_JWT_ID_LEN]; /* user id */
	char tier[32];
	int admin;
	char orgs[LT_JWT_MAX_ORGS][LT_JWT_ID_LEN];
	int norgs;
	char key_id[40]; /* "" unless authenticated by an API key */
	struct lt_limit key_limit;
};

/*
 * An anonymous principal: every field but orgs[], which is read only below
 * norgs (4 KiB less to clear on every request).
 */
void lt_principal_clear(struct lt_principal *p);

/* How roles become a tier and the admin right (from the config). */
struct lt_auth_roles {
	const char (*tiers)[32]; /* ntiers names; the first a token's roles name wins */
	int ntiers;
	const char *default_tier;
	const char *admin_role;
};

/* An API-key record by id: 0 and *out, or -ENOENT. Lock-free for the callers. */
typedef int (*lt_apikey_get_fn)(void *ctx, const char *id, struct lt_key_rec *out);

struct lt_auth {
	const struct lt_jwt_verifier *jwt;
	lt_apikey_get_fn key_get; /* NULL: API keys are not accepted */
	void *key_ctx;
};

/* Why a request was refused: what its 401 problem names. */
struct lt_auth_fail {
	const char *type; /* problem type: "unauthorized" | "invalid-token" */
	const char *title;
	const char *field; /* the header at fault */
	char detail[256];
};

/*
 * authorization and api_key are the raw header values (NULL = absent).
 * 0 and *p, or -EACCES and *f (p is zeroed).
 */
int lt_auth_request(const struct lt_auth *a, const struct lt_auth_roles *roles,
		    const char *authorization, const char *api_key, int64_t now_unix,
		    struct lt_principal *p, struct lt_auth_fail *f);

/* An API key's record: 0 when valid, unrevoked and unexpired; else -EACCES. */
int lt_apikey_check(lt_apikey_get_fn get, void *ctx, const char *secret, int64_t now_unix,
		    struct lt_key_rec *out);

/* lt_jwt_verify through this thread's memo of verified tokens. */
#define LT_AUTH_MEMO_SLOTS 64
int lt_jwt_verify_memo(const struct lt_jwt_verifier *v, const char *tok, int64_t now_unix,
		       struct lt_jwt_claims *c, char *err, size_t errlen);

/*
 * The HS256 secret: cfg_secret if set, then $LT_JWT_SECRET, then
 * <state_dir>/jwt-secret (made once, 0600, 48 random bytes base64url).
 * *source names where it came from (valid until this thread's next call).
 */
int lt_jwt_secret(const char *state_dir, const char *cfg_secret, char *out, size_t len,
		  const char **source);

#endif
