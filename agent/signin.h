/* SPDX-License-Identifier: MIT */
/*
 * signin.h - signing in to the dashboard (issue #11): short-lived JWTs for
 * the page, and one-time sign-in links.
 *
 * POST /api/v1/auth/token exchanges a credential for a JWT signed with the
 * agent's HS256 secret, valid jwt.issued_token_ttl (900 s by default):
 *   - an API key (Authorization: Bearer lk_..., or X-API-Key): the token is
 *     bound to the key (claim "lt_key", lib/auth.c): it authenticates as
 *     that key and nothing more (its owner, tier, org and limits; an admin
 *     only if the key is an admin key, checked on every use), and stops
 *     working when the key is revoked or expires;
 *   - a sign-in code ({"signin_code": "..."}): an ADMIN token.
 * A JWT is not exchanged (it is used as it is): 400. Wrong, used or expired
 * credentials are a 401; an address with LT_SIGNIN_FAILS failures in
 * LT_SIGNIN_WINDOW_S gets 429 until its window ends (no other address can
 * reset its count; when 1024 addresses have live counts, the others share
 * one: signin.c).
 *
 * Sign-in codes: 32 random bytes, base64url (43 characters), valid 10
 * minutes, single use. Only their SHA-256 is kept, in <state-dir>/signin.db
 * (SQLite, 0600), so `leaky-agent attach` (at start) and `leaky-agent
 * signin-link` (any time, root) make them, and the running agent redeems
 * them with one DELETE: a code is used once even if two requests race.
 * The link is http://<api listen>/ui/#code=<code>: the code is in the URL's
 * fragment, which a browser never sends to a server, so it reaches no
 * access log; the page posts it to /api/v1/auth/token.
 */
#ifndef LT_AGENT_SIGNIN_H
#define LT_AGENT_SIGNIN_H

#include <stddef.h>
#include <stdint.h>
#include <microhttpd.h>

#define LT_SIGNIN_CODE_LEN 43 /* characters: base64url of 32 bytes */
#define LT_SIGNIN_TTL_S 600
#define LT_SIGNIN_KEEP 16 /* unused codes kept at most: the newest */
#define LT_SIGNIN_FAILS 20 /* failed exchanges per client address per window */
#define LT_SIGNIN_WINDOW_S 60
#define LT_SIGNIN_SUB "dashboard-admin" /* the sub of a token a sign-in code gives */

/*
 * A new code into code (LT_SIGNIN_CODE_LEN + 1 bytes), its hash stored in
 * <state_dir>/signin.db. 0, or -errno with err set.
 */
int lt_signin_new(const char *state_dir, int64_t now_s, char *code, char *err, size_t errlen);
/* 0 if code is a live code (it is used up now), -EACCES if not, -EIO on a store error. */
int lt_signin_redeem(const char *state_dir, const char *code, int64_t now_s);
/* "http://<listen>/ui/#code=<code>" */
void lt_signin_url(const char *listen, const char *code, char *out, size_t len);

struct lt_req;
/* POST /api/v1/auth/token (no access phase: it authenticates itself). */
enum MHD_Result lt_auth_token(struct lt_req *r);

#endif
