/* SPDX-License-Identifier: MIT */
/*
 * tenant.h - canonical tenant ids and the one bucket-key builder (liblt:
 * shared by leaky-agent and leaky-gateway; includes only include/ and lib/).
 *
 * One tenant, one spelling. Every id is canonicalised once, where it enters
 * (request body, query string, admin path, JWT claims, API-key record), and
 * every bucket key is built from canonical ids by lt_bucket_key() alone, so
 * two spellings of one tenant can never reach two buckets.
 *
 *   user and org ids (request fields, admin paths, key owners):
 *       a UUID, exactly 8-4-4-4-12 ASCII hex digits, any letter case on
 *       input; the canonical form is lower case. Anything else is refused,
 *       not repaired: braces, "urn:uuid:", missing hyphens, spaces,
 *       non-ASCII look-alikes (fullwidth digits, Cyrillic letters).
 *   JWT "sub" and org-claim entries:
 *       a UUID-shaped value is lower-cased like a request id; any other value
 *       is kept byte for byte (RFC 7519 compares StringOrURI case-sensitively)
 *       and so can never equal a UUID given in a request.
 *   API-key ids ("lk_" + 16 lower-case hex, generated), provider names, tier
 *   names and roles:
 *       case-sensitive and exact. Only configured names are accepted, so a
 *       variant spelling is refused (400) rather than given a bucket.
 */
#ifndef LT_TENANT_H
#define LT_TENANT_H

#include <stddef.h>

#define LT_UUID_LEN 36 /* characters, without the NUL */

/* 1 if s is a UUID in the accepted input form (any case), else 0. */
int lt_uuid_ok(const char *s);

/* The canonical (lower-case) form of a UUID; -EINVAL if s is not one. */
int lt_uuid_canon(const char *s, char out[LT_UUID_LEN + 1]);

/* 1 if s is a UUID already in canonical form. */
int lt_uuid_canonical(const char *s);

/*
 * An id from a token claim: a UUID is lower-cased, anything else is copied
 * exactly. -ENAMETOOLONG if it does not fit outlen (nothing is cut).
 */
int lt_claim_id_canon(const char *s, char *out, size_t outlen);

/* What a bucket limits (the first byte of its key). */
enum lt_bkey_kind {
	LT_BKEY_USER = 'u', /* "u/<tier>/<provider>/<userId>": a user's pool at a tier */
	LT_BKEY_ORG = 'o', /* "o/<provider>/<orgId>": an org's pool, shared by its users */
	LT_BKEY_APIKEY = 'k', /* "k/<keyId>": an API key's own limit (all providers) */
	/* "r/<tier>/<keyId>": an API key's request rate (cost 1 per request), by its tier */
	LT_BKEY_KEYREQ = 'r',
	LT_BKEY_POOL = 'p', /* "p/<provider>": the provider-wide pool, shared by everyone */
};

/*
 * Builds the bucket key (the lt_keyidx key) for kind from canonical parts:
 * tier is used by LT_BKEY_USER and KEYREQ, provider by USER, ORG and POOL,
 * id by all but POOL. Returns 0, or
 * -EINVAL when a part is empty, holds '/' or a non-printable byte, or an id
 * is not canonical (a caller that skipped canonicalisation fails loudly),
 * or -ENAMETOOLONG past LT_BUCKET_KEY_LEN - 1 bytes or outlen.
 */
int lt_bucket_key(char *out, size_t outlen, enum lt_bkey_kind kind, const char *tier,
		  const char *provider, const char *id);

/*
 * 1 if key is exactly what lt_bucket_key builds from its own parts (a known
 * kind, the right number of parts, canonical ids), else 0: a key that came
 * from outside (another host's record) names a bucket only in one spelling.
 */
int lt_bucket_key_canonical(const char *key);

#endif
