// SPDX-License-Identifier: MIT
/* signin.c - POST /api/v1/auth/token and one-time sign-in codes (signin.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include "api.h"
#include "problem.h"
#include "signin.h"

/* ---- codes ----------------------------------------------------------------------- */

static int lt_signin_open(const char *state_dir, sqlite3 **db)
{
	char path[512];
	int rc;

	snprintf(path, sizeof(path), "%s/signin.db", state_dir);
	rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(*db, 2000);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(*db,
				  "CREATE TABLE IF NOT EXISTS codes(hash BLOB PRIMARY KEY,"
				  " expires_s INTEGER NOT NULL)",
				  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(*db);
		*db = NULL;
	}
	return rc;
}

/* SHA-256 of the code: the store never holds a usable code */
static int lt_signin_hash(const char *code, unsigned char h[32])
{
	return SHA256((const unsigned char *)code, strlen(code), h) ? 0 : -EIO;
}

int lt_signin_new(const char *state_dir, int64_t now_s, char *code, char *err, size_t errlen)
{
	unsigned char rnd[32], h[32];
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	int rc;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1 ||
	    lt_b64url_encode(rnd, sizeof(rnd), code, LT_SIGNIN_CODE_LEN + 1) !=
		    LT_SIGNIN_CODE_LEN ||
	    lt_signin_hash(code, h)) {
		OPENSSL_cleanse(rnd, sizeof(rnd));
		snprintf(err, errlen, "no random bytes for a sign-in code");
		return -EIO;
	}
	OPENSSL_cleanse(rnd, sizeof(rnd));
	rc = lt_signin_open(state_dir, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "INSERT INTO codes VALUES(?, ?)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, h, sizeof(h), SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now_s + LT_SIGNIN_TTL_S);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
	}
	sqlite3_finalize(st);
	/* the expired go, and of the rest only the newest LT_SIGNIN_KEEP stay */
	if (rc == SQLITE_OK) {
		char sql[256];

		snprintf(sql, sizeof(sql),
			 "DELETE FROM codes WHERE expires_s <= %lld OR hash NOT IN (SELECT hash "
			 "FROM codes ORDER BY expires_s DESC LIMIT %d)",
			 (long long)now_s, LT_SIGNIN_KEEP);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK)
		snprintf(err, errlen, "%s/signin.db: %s", state_dir,
			 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_close(db);
	if (rc != SQLITE_OK)
		code[0] = '\0';
	return rc == SQLITE_OK ? 0 : -EIO;
}

int lt_signin_redeem(const char *state_dir, const char *code, int64_t now_s)
{
	unsigned char h[32];
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	int rc, used = 0;

	if (strlen(code) != LT_SIGNIN_CODE_LEN || lt_signin_hash(code, h))
		return -EACCES;
	rc = lt_signin_open(state_dir, &db);
	/* one statement: two racing redeems cannot both delete the row */
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "DELETE FROM codes WHERE hash = ? AND expires_s > ?",
					-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, h, sizeof(h), SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now_s);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
		used = rc == SQLITE_OK && sqlite3_changes(db) == 1;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (rc != SQLITE_OK)
		return -EIO;
	return used ? 0 : -EACCES;
}

void lt_signin_url(const char *listen, const char *code, char *out, size_t len)
{
	snprintf(out, len, "http://%s/ui/#code=%s", listen, code);
}

/* ---- failures by client address --------------------------------------------------- */

#define LT_SIGNIN_SLOTS 1024

struct lt_signin_fail {
	unsigned char addr[16];
	int64_t since; /* unix s: the window's start */
	unsigned fails; /* 0: a free entry */
};

/*
 * Failed exchanges per client address. An entry is never taken from an
 * address while its window runs, so no other address can reset a count (a
 * direct-mapped table let two addresses in one slot take turns resetting
 * each other: unlimited guesses). When every entry is live, the addresses
 * without one share one more count, so failures from many addresses are
 * bounded too: (LT_SIGNIN_SLOTS + 1) * LT_SIGNIN_FAILS per window at most.
 * Only then can failures from elsewhere delay an address: it had none of
 * its own in the window, and an attacker needed 1024 addresses for it.
 * The table is scanned whole: 32 KiB, on failed or refused sign-ins only.
 */
static struct lt_signin_fail lt_signin_fails[LT_SIGNIN_SLOTS];
static struct lt_signin_fail lt_signin_shared; /* addresses without an entry */
static pthread_mutex_t lt_signin_lock = PTHREAD_MUTEX_INITIALIZER;

static void lt_signin_addr(struct lt_req *r, unsigned char a[16])
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	memset(a, 0, 16);
	if (sa && sa->sa_family == AF_INET) {
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		memcpy(a, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	}
}

static int lt_signin_live(const struct lt_signin_fail *f, int64_t now)
{
	return f->fails && now < f->since + LT_SIGNIN_WINDOW_S;
}

/*
 * The entry that counts a's failures (under the lock): its own live one,
 * else a free one when claim is set, else the shared one if the table is
 * full; NULL: none (nothing counted against a yet, and there is room).
 */
static struct lt_signin_fail *lt_signin_entry(const unsigned char a[16], int64_t now, int claim)
{
	struct lt_signin_fail *free_e = NULL;
	int i;

	for (i = 0; i < LT_SIGNIN_SLOTS; i++) {
		struct lt_signin_fail *f = &lt_signin_fails[i];

		if (!lt_signin_live(f, now))
			free_e = free_e ? free_e : f;
		else if (!memcmp(f->addr, a, 16))
			return f;
	}
	if (free_e && claim) {
		memcpy(free_e->addr, a, 16);
		free_e->since = now;
		free_e->fails = 0;
		return free_e;
	}
	if (free_e)
		return NULL;
	if (!lt_signin_live(&lt_signin_shared, now)) {
		lt_signin_shared.since = now;
		lt_signin_shared.fails = 0;
	}
	return &lt_signin_shared;
}

/* Seconds until this address may try again (0: now). */
static int64_t lt_signin_blocked(const unsigned char a[16], int64_t now)
{
	struct lt_signin_fail *f;
	int64_t wait = 0;

	pthread_mutex_lock(&lt_signin_lock);
	f = lt_signin_entry(a, now, 0);
	if (f && f->fails >= LT_SIGNIN_FAILS && now < f->since + LT_SIGNIN_WINDOW_S)
		wait = f->since + LT_SIGNIN_WINDOW_S - now;
	pthread_mutex_unlock(&lt_signin_lock);
	return wait;
}

static void lt_signin_failed(const unsigned char a[16], int64_t now)
{
	struct lt_signin_fail *f;

	pthread_mutex_lock(&lt_signin_lock);
	f = lt_signin_entry(a, now, 1);
	f->fails++;
	pthread_mutex_unlock(&lt_signin_lock);
}

/* ---- POST /api/v1/auth/token ---------------------------------------------------------- */

/* A 401 that counts against the client's address. */
static enum MHD_Result lt_signin_refuse(struct lt_req *r, const unsigned char a[16], int64_t now,
					const char *field, const char *detail)
{
	lt_signin_failed(a, now);
	return lt_problem(r, 401, "unauthorized", "Unauthorized", field, "%s", detail);
}

/*
 * The claims of the token for p: its sub and orgs; roles: the admin role for
 * an admin, else the tier, except a tier named like the admin role (a
 * verifier that reads roles alone would make it an admin); a key's token
 * carries its key id, which is what lib/auth.c goes by.
 */
static json_t *lt_signin_claims(struct lt_req *r, const struct lt_principal *p, int64_t now,
				int64_t ttl, json_t **roles_out)
{
	const struct lt_api *a = lt_api_of(r);
	const char *admin_role = lt_cp_of(r)->admin_role;
	json_t *c, *roles = json_array(), *orgs = json_array();
	int i;

	if (p->admin)
		json_array_append_new(roles, json_string(admin_role));
	else if (p->tier[0] && strcmp(p->tier, admin_role))
		json_array_append_new(roles, json_string(p->tier));
	for (i = 0; i < p->norgs; i++)
		json_array_append_new(orgs, json_string(p->orgs[i]));
	c = json_pack("{s:s, s:O, s:o, s:I, s:I}", "sub", p->sub, a->jwt.roles_claim, roles,
		      a->jwt.orgs_claim, orgs, "iat", (json_int_t)now, "exp",
		      (json_int_t)(now + ttl));
	if (c && p->key_id[0])
		json_object_set_new(c, LT_JWT_KEY_CLAIM, json_string(p->key_id));
	if (c && a->jwt.issuer[0])
		json_object_set_new(c, "iss", json_string(a->jwt.issuer));
	if (c && a->jwt.audience[0])
		json_object_set_new(c, "aud", json_string(a->jwt.audience));
	*roles_out = roles;
	return c;
}

static enum MHD_Result lt_signin_issue(struct lt_req *r, const struct lt_principal *p, int64_t now)
{
	const struct lt_api *a = lt_api_of(r);
	int64_t ttl = (int64_t)lt_cp_of(r)->issued_ttl_s;
	char secret[1024], tok[LT_JWT_MAX_LEN], *claims = NULL;
	json_t *c, *roles = NULL, *out;
	int ret = -ENOMEM;

	if (!a->jwt.secret || a->jwt.secret_len >= sizeof(secret))
		return lt_problem(r, 503, "no-secret", "No signing key", NULL,
				  "this agent has no HS256 secret to sign tokens with");
	c = lt_signin_claims(r, p, now, ttl, &roles);
	if (c)
		claims = json_dumps(c, JSON_COMPACT);
	if (claims) {
		memcpy(secret, a->jwt.secret, a->jwt.secret_len);
		secret[a->jwt.secret_len] = '\0';
		ret = lt_jwt_sign_hs256(secret, claims, tok, sizeof(tok));
		OPENSSL_cleanse(secret, sizeof(secret));
	}
	free(claims);
	json_decref(c);
	if (ret) {
		json_decref(roles);
		return lt_problem(r, 503, "no-token", "Token not issued", NULL,
				  "the token could not be signed (%s); try again", strerror(-ret));
	}
	out = json_pack("{s:s, s:s, s:I, s:o, s:s}", "access_token", tok, "token_type", "Bearer",
			"expires_in", (json_int_t)ttl, "roles", roles, "sub", p->sub);
	/* lib/httpd.c marks every response Cache-Control: no-store (RFC 6749 5.1 wants it here) */
	return lt_reply_json(r, 200, out);
}

enum MHD_Result lt_auth_token(struct lt_req *r)
{
	const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
	const char *xkey = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-API-Key");
	int64_t now = (int64_t)time(NULL), wait;
	struct lt_principal p;
	unsigned char addr[16];
	enum MHD_Result res;
	json_error_t jerr;
	json_t *root, *code;
	char retry[24];
	int ret;

	lt_signin_addr(r, addr);
	wait = lt_signin_blocked(addr, now);
	if (wait > 0) {
		const char *hdrs[] = { "Retry-After", retry, NULL };

		snprintf(retry, sizeof(retry), "%lld", (long long)wait);
		return lt_reply_json_h(r, 429,
				       lt_problem_json(429, "too-many-failures",
						       "Too many failed sign-ins", NULL,
						       "too many failed exchanges from this "
						       "address; try again later"),
				       "application/problem+json", hdrs);
	}
	if (r->len) {
		if (auth || xkey)
			return lt_problem(r, 400, "invalid-field", "Invalid field", "Authorization",
					  "send a sign-in code or a credential, not both");
		root = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &jerr);
		code = json_object_get(root, "signin_code");
		if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_string(code)) {
			json_decref(root);
			return lt_problem(r, 400, "invalid-field", "Invalid field", "/signin_code",
					  "the body must be {\"signin_code\": \"<code>\"}");
		}
		ret = lt_signin_redeem(lt_api_of(r)->state_dir, json_string_value(code), now);
		json_decref(root);
		if (ret == -EIO)
			return lt_problem(r, 503, "store-unavailable", "Store unavailable", NULL,
					  "sign-in codes cannot be read now; try again");
		if (ret)
			return lt_signin_refuse(r, addr, now, "/signin_code",
						"the sign-in code is unknown, used or expired");
		lt_principal_clear(&p);
		snprintf(p.sub, sizeof(p.sub), "%s", LT_SIGNIN_SUB);
		p.admin = 1;
		return lt_signin_issue(r, &p, now);
	}
	if (!xkey && (!auth || strncasecmp(auth, "Bearer lk_", 10))) {
		if (auth && !strncasecmp(auth, "Bearer ", 7))
			return lt_problem(r, 400, "invalid-field", "Invalid field", "Authorization",
					  "a JWT is used as it is; exchange an API key "
					  "(Bearer lk_...) or a sign-in code");
		return lt_signin_refuse(r, addr, now, "Authorization",
					"send 'Authorization: Bearer <API key>' or "
					"{\"signin_code\": \"<code>\"}");
	}
	if (lt_authenticate(r, &p, &res)) {
		lt_signin_failed(addr, now); /* the 401 is queued */
		return res;
	}
	return lt_signin_issue(r, &p, now);
}
