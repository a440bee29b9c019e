/* SPDX-License-Identifier: MIT */
/*
 * jwt.h - JSON Web Token verification with OpenSSL: HS256 (shared secret),
 * RS256 and ES256 (PEM public keys or a JWKS file, selected by kid).
 * Rejects alg "none", algorithm confusion (a key is only ever used with its
 * own algorithm), bad base64url, oversized tokens, any "crit" header (no
 * extension is understood); checks exp/nbf/iat with a leeway (saturating),
 * and iss/aud when configured. Claims are read whole or refused: a roles or
 * orgs claim with too many or too long values is an invalid token, never
 * cut to fit. Error messages never echo the token.
 */
#ifndef LT_JWT_H
#define LT_JWT_H

#include <stddef.h>
#include <stdint.h>

#define LT_JWT_MAX_LEN 8192 /* bytes of a compact token */
#define LT_JWT_MAX_ROLES 16
#define LT_JWT_MAX_ORGS 32
#define LT_JWT_ID_LEN 128 /* sub, role and org strings, NUL included */

enum lt_jwt_alg { LT_JWT_HS256 = 1, LT_JWT_RS256 = 2, LT_JWT_ES256 = 3 };

struct lt_jwt_key {
	char kid[64]; /* "" = any kid (PEM keys) */
	int alg; /* enum lt_jwt_alg */
	void *pkey; /* EVP_PKEY * */
};

struct lt_jwt_verifier {
	unsigned char *secret; /* HS256; NULL = HS256 not accepted */
	size_t secret_len;
	struct lt_jwt_key *keys;
	int nkeys;
	char issuer[256]; /* "" = not checked */
	char audience[256]; /* "" = not checked */
	int64_t leeway_s;
	char roles_claim[64]; /* default "roles" */
	char orgs_claim[64]; /* default "orgs" */
};

struct lt_jwt_claims {
	char sub[LT_JWT_ID_LEN];
	char roles[LT_JWT_MAX_ROLES][LT_JWT_ID_LEN];
	int nroles;
	char orgs[LT_JWT_MAX_ORGS][LT_JWT_ID_LEN];
	int norgs;
	int64_t exp, nbf, iat; /* 0 = absent */
	/*
	 * "lt_key": the API key a token was issued for by the agent's
	 * POST /api/v1/auth/token ("" = none). lib/auth.c then authenticates it
	 * as that key (its owner, tier and limits, only while the key is live).
	 */
	char key_id[40];
};
#define LT_JWT_KEY_CLAIM "lt_key"

void lt_jwt_init(struct lt_jwt_verifier *v);
void lt_jwt_free(struct lt_jwt_verifier *v);
int lt_jwt_set_secret(struct lt_jwt_verifier *v, const char *secret, char *err, size_t errlen);
/* A PEM public key (RSA -> RS256, P-256 EC -> ES256). */
int lt_jwt_add_pem(struct lt_jwt_verifier *v, const char *path, char *err, size_t errlen);
/* Every RSA and P-256 key of a JWKS document (keys without kid are refused). */
int lt_jwt_add_jwks(struct lt_jwt_verifier *v, const char *path, char *err, size_t errlen);

/* 0 and claims, or -EACCES/-EINVAL with a reason fit for a 401 body. */
int lt_jwt_verify(const struct lt_jwt_verifier *v, const char *token, size_t len, int64_t now_s,
		  struct lt_jwt_claims *c, char *err, size_t errlen);

/* 1 if now_s is past exp plus the leeway (saturating: no overflow at INT64_MAX). */
int lt_jwt_expired(const struct lt_jwt_verifier *v, int64_t exp, int64_t now_s);

/* Mints an HS256 token over a JSON claims object (for demos and tests). */
int lt_jwt_sign_hs256(const char *secret, const char *claims_json, char *out, size_t outlen);

/* base64url without padding; return the output length or -1. */
long lt_b64url_encode(const unsigned char *in, size_t len, char *out, size_t outlen);
long lt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen);

#endif
