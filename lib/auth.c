// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include "auth.h"
#include "tenant.h"
#include "units.h"

#define LT_APIKEY_SECRET_MAX 96 /* bytes of "lk_<id>.<secret>" */

/* ---- the verified-token memo ---------------------------------------------- */

/*
 * Per-thread memo of verified tokens. A token is the same bytes every time a
 * client sends it, and verifying it (base64, HMAC or RSA/ECDSA, two JSON
 * parses) is most of a request's cost. The memo is keyed by the exact bytes
 * (compared in full), holds only tokens that verified, and the time claims
 * are checked again on every use: an expired token is refused as before.
 * A change of keys is not a concern: keys are fixed for the process.
 */
#define LT_MEMO_TOKEN_MAX 1024

struct lt_jwt_memo {
	size_t len;
	char tok[LT_MEMO_TOKEN_MAX];
	struct lt_jwt_claims c;
};

/* One memo per thread, freed when the thread ends. */
static pthread_key_t lt_memo_key;
static pthread_once_t lt_memo_once = PTHREAD_ONCE_INIT;

static void lt_memo_init(void)
{
	pthread_key_create(&lt_memo_key, free);
}

/*
 * The claims of tok: a pointer into this thread's memo on a hit (valid until
 * this thread's next verification), else *c filled by lt_jwt_verify. A hit
 * copies nothing: the claims are 6 KiB and copying them was a visible part
 * of a request's cost.
 */
static int lt_jwt_verify_memo_ref(const struct lt_jwt_verifier *v, const char *tok, int64_t now,
				  struct lt_jwt_claims *c, const struct lt_jwt_claims **out,
				  char *err, size_t errlen)
{
	size_t len = strlen(tok);
	struct lt_jwt_memo *e, *memo;
	__u64 h;
	int ret;

	*out = c;
	if (len >= LT_MEMO_TOKEN_MAX)
		return lt_jwt_verify(v, tok, len, now, c, err, errlen);
	pthread_once(&lt_memo_once, lt_memo_init);
	memo = pthread_getspecific(lt_memo_key);
	if (!memo) {
		memo = calloc(LT_AUTH_MEMO_SLOTS, sizeof(*memo));
		if (memo && pthread_setspecific(lt_memo_key, memo)) {
			free(memo);
			memo = NULL;
		}
	}
	h = lt_hash_mem(tok, len); /* a slot choice only: the bytes are compared in full */
	e = memo ? &memo[h % LT_AUTH_MEMO_SLOTS] : NULL;
	if (e && e->len == len && !memcmp(e->tok, tok, len)) {
		if (lt_jwt_expired(v, e->c.exp, now)) { /* saturating: exp may be INT64_MAX */
			snprintf(err, errlen, "token expired");
			return -EACCES;
		}
		*out = &e->c;
		return 0;
	}
	ret = lt_jwt_verify(v, tok, len, now, c, err, errlen);
	if (!ret && e) {
		memcpy(e->tok, tok, len);
		e->len = len;
		e->c = *c;
	}
	return ret;
}

int lt_jwt_verify_memo(const struct lt_jwt_verifier *v, const char *tok, int64_t now,
		       struct lt_jwt_claims *c, char *err, size_t errlen)
{
	const struct lt_jwt_claims *ref;
	int ret = lt_jwt_verify_memo_ref(v, tok, now, c, &ref, err, errlen);

	if (!ret && ref != c)
		*c = *ref;
	return ret;
}

/* ---- API keys --------------------------------------------------------------- */

/*
 * SHA-256 fetched once, with a context per thread: OpenSSL 3's one-shot
 * SHA256() looks the algorithm up in its provider store, under a lock, and
 * allocates a context on every call (6-7% of a gateway worker answering
 * API-key requests; 1.6 us against 0.6 us here). The method lives as long as
 * the process; a thread's context is freed when the thread exits.
 */
static EVP_MD *lt_sha256_md;
static pthread_key_t lt_sha256_key;
static pthread_once_t lt_sha256_once = PTHREAD_ONCE_INIT;

static void lt_sha256_ctx_free(void *c)
{
	EVP_MD_CTX_free(c);
}

static void lt_sha256_init(void)
{
	if (pthread_key_create(&lt_sha256_key, lt_sha256_ctx_free))
		return;
	lt_sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int lt_sha256(const void *p, size_t n, unsigned char out[32])
{
	EVP_MD_CTX *c;

	pthread_once(&lt_sha256_once, lt_sha256_init);
	if (!lt_sha256_md)
		return SHA256(p, n, out) ? 0 : -EIO;
	c = pthread_getspecific(lt_sha256_key);
	if (!c) {
		c = EVP_MD_CTX_new();
		if (!c || pthread_setspecific(lt_sha256_key, c)) {
			EVP_MD_CTX_free(c);
			return EVP_Digest(p, n, out, NULL, lt_sha256_md, NULL) == 1 ? 0 : -EIO;
		}
	}
	return EVP_DigestInit_ex2(c, lt_sha256_md, NULL) == 1 && EVP_DigestUpdate(c, p, n) == 1 &&
			       EVP_DigestFinal_ex(c, out, NULL) == 1 ?
		       0 :
		       -EIO;
}

/*
 * Per-thread memo of the SHA-256 of API-key secrets that matched their record:
 * a client sends the same key on every request, and the digest was most of
 * the cost of identifying it (0.6-0.9 us of a gateway worker's 10-13 us per
 * proxied request). Only the digest is memoised, never the verdict: the
 * record is read and compared on every request, so a revoked, expired or
 * re-hashed key is refused at once. A slot holds the secret's exact bytes,
 * compared in full in constant time (as CRYPTO_memcmp compares the digest);
 * a secret that did not match its record is never stored, and a slot's bytes
 * are wiped when another secret takes it.
 */
#define LT_KEY_MEMO_SLOTS 64

struct lt_key_memo {
	size_t len;
	char secret[LT_APIKEY_SECRET_MAX];
	unsigned char h[32];
};

static pthread_key_t lt_key_memo_key;
static pthread_once_t lt_key_memo_once = PTHREAD_ONCE_INIT;

static void lt_key_memo_free(void *p)
{
	explicit_bzero(p, LT_KEY_MEMO_SLOTS * sizeof(struct lt_key_memo));
	free(p);
}

static void lt_key_memo_init(void)
{
	pthread_key_create(&lt_key_memo_key, lt_key_memo_free);
}

static struct lt_key_memo *lt_key_memo_slot(const char *secret, size_t len)
{
	struct lt_key_memo *memo;

	pthread_once(&lt_key_memo_once, lt_key_memo_init);
	memo = pthread_getspecific(lt_key_memo_key);
	if (!memo) {
		memo = calloc(LT_KEY_MEMO_SLOTS, sizeof(*memo));
		if (memo && pthread_setspecific(lt_key_memo_key, memo)) {
			free(memo);
			return NULL;
		}
	}
	return memo ? &memo[lt_hash_mem(secret, len) % LT_KEY_MEMO_SLOTS] : NULL;
}

int lt_apikey_check(lt_apikey_get_fn get, void *ctx, const char *secret, int64_t now_unix,
		    struct lt_key_rec *out)
{
	unsigned char h[32];
	char id[40];
	const char *dot = strchr(secret, '.');
	size_t len = strlen(secret);
	struct lt_key_memo *m;
	struct lt_key_rec r;
	int hit;

	if (strncmp(secret, "lk_", 3) || !dot || dot - secret >= (long)sizeof(id) ||
	    len > LT_APIKEY_SECRET_MAX)
		return -EACCES;
	memcpy(id, secret, (size_t)(dot - secret));
	id[dot - secret] = '\0';
	m = lt_key_memo_slot(secret, len);
	hit = m && m->len == len && !CRYPTO_memcmp(m->secret, secret, len);
	if (hit)
		memcpy(h, m->h, sizeof(h));
	else if (lt_sha256(secret, len, h))
		return -EACCES;
	if (get(ctx, id, &r) || CRYPTO_memcmp(h, r.hash, 32) || r.revoked ||
	    (r.expires_at && now_unix >= r.expires_at))
		return -EACCES;
	if (m && !hit) {
		explicit_bzero(m->secret, sizeof(m->secret));
		memcpy(m->secret, secret, len);
		memcpy(m->h, h, sizeof(h));
		m->len = len;
	}
	*out = r;
	return 0;
}

/* ---- principal and tier ------------------------------------------------------ */

/* An empty role matches nothing: not a tier, not the admin role. */
static int lt_role_is(const char *role, const char *want)
{
	return role[0] && want[0] && !strcmp(role, want);
}

static void lt_pick_tier(const struct lt_auth_roles *ro, const struct lt_jwt_claims *c, char *tier,
			 size_t len)
{
	struct lt_sb b; /* on every request: not snprintf (lib/units.h) */
	int i, j;

	lt_sb_init(&b, tier, len);
	for (i = 0; i < ro->ntiers; i++)
		for (j = 0; j < c->nroles; j++)
			if (lt_role_is(c->roles[j], ro->tiers[i])) {
				lt_sb_str(&b, ro->tiers[i]);
				return;
			}
	lt_sb_str(&b, ro->default_tier);
}

static int lt_auth_refuse(struct lt_auth_fail *f, const char *type, const char *title,
			  const char *field, const char *detail)
{
	f->type = type;
	f->title = title;
	f->field = field;
	snprintf(f->detail, sizeof(f->detail), "%s", detail);
	return -EACCES;
}

void lt_principal_clear(struct lt_principal *p)
{
	memset(p, 0, offsetof(struct lt_principal, orgs));
	memset(&p->norgs, 0, sizeof(*p) - offsetof(struct lt_principal, norgs));
}

/*
 * An API key's principal: its owner at its tier, an admin only when its
 * record says so (read again on every use: a demoted or revoked key loses
 * the right at once, with every token issued for it).
 */
static void lt_principal_of_key(struct lt_principal *p, const struct lt_key_rec *kr)
{
	/* records made before ids were canonical may hold upper case */
	if (lt_claim_id_canon(kr->owner, p->sub, sizeof(p->sub)))
		p->sub[0] = '\0';
	lt_scopy(p->tier, sizeof(p->tier), kr->tier);
	if (kr->org[0] && !lt_claim_id_canon(kr->org, p->orgs[0], sizeof(p->orgs[0])))
		p->norgs = 1;
	lt_scopy(p->key_id, sizeof(p->key_id), kr->id);
	p->key_limit = kr->limit;
	p->admin = !!kr->admin;
}

int lt_auth_request(const struct lt_auth *a, const struct lt_auth_roles *ro, const char *auth,
		    const char *key, int64_t now, struct lt_principal *p, struct lt_auth_fail *f)
{
	const struct lt_jwt_claims *c;
	struct lt_jwt_claims cbuf;
	struct lt_key_rec kr;
	char err[256];
	int i;

	lt_principal_clear(p);
	if (!key && auth && !strncasecmp(auth, "Bearer lk_", 10))
		key = auth + 7;
	if (key) {
		if (!a->key_get || lt_apikey_check(a->key_get, a->key_ctx, key, now, &kr))
			return lt_auth_refuse(f, "unauthorized", "Unauthorized", "X-API-Key",
					      "API key is unknown, revoked or expired");
		lt_principal_of_key(p, &kr);
		return 0;
	}
	if (!auth || strncasecmp(auth, "Bearer ", 7))
		return lt_auth_refuse(f, "unauthorized", "Unauthorized", "Authorization",
				      "send 'Authorization: Bearer <JWT>' or 'X-API-Key: <key>'");
	if (lt_jwt_verify_memo_ref(a->jwt, auth + 7, now, &cbuf, &c, err, sizeof(err)))
		return lt_auth_refuse(f, "invalid-token", "Invalid token", "Authorization", err);
	/*
	 * A token issued for an API key (POST /api/v1/auth/token) is that key:
	 * its record decides (tier, org, limits, the admin right; revoked or
	 * expired refuses the token too), its roles claim does not.
	 */
	if (c->key_id[0]) {
		char sub[LT_JWT_ID_LEN];

		lt_claim_id_canon(c->sub, sub, sizeof(sub)); /* fits: same size */
		if (!a->key_get || a->key_get(a->key_ctx, c->key_id, &kr) || kr.revoked ||
		    (kr.expires_at && now >= kr.expires_at))
			return lt_auth_refuse(f, "invalid-token", "Invalid token", "Authorization",
					      "the API key this token was issued for is unknown, "
					      "revoked or expired");
		lt_principal_of_key(p, &kr);
		if (strcmp(p->sub, sub)) {
			lt_principal_clear(p);
			return lt_auth_refuse(f, "invalid-token", "Invalid token", "Authorization",
					      "the token's sub is not its API key's owner");
		}
		return 0;
	}
	/* one spelling from here on: UUID-shaped ids in lower case (tenant.h) */
	lt_claim_id_canon(c->sub, p->sub, sizeof(p->sub)); /* fits: same size */
	lt_pick_tier(ro, c, p->tier, sizeof(p->tier));
	for (i = 0; i < c->nroles; i++)
		p->admin |= lt_role_is(c->roles[i], ro->admin_role);
	for (i = 0; i < c->norgs; i++)
		lt_claim_id_canon(c->orgs[i], p->orgs[i], sizeof(p->orgs[i]));
	p->norgs = c->norgs;
	return 0;
}

/* ---- the HS256 secret ---------------------------------------------------------- */

int lt_jwt_secret(const char *state_dir, const char *cfg_secret, char *out, size_t len,
		  const char **source)
{
	const char *env = getenv("LT_JWT_SECRET");
	static __thread char path[512]; /* *source may point here */
	unsigned char rnd[48];
	FILE *f;
	size_t n;
	int fd;

	if (cfg_secret && cfg_secret[0]) {
		snprintf(out, len, "%s", cfg_secret);
		*source = "the config file";
		return 0;
	}
	if (env && env[0]) {
		snprintf(out, len, "%s", env);
		*source = "LT_JWT_SECRET";
		return 0;
	}
	snprintf(path, sizeof(path), "%s/jwt-secret", state_dir);
	*source = path;
	f = fopen(path, "r");
	if (f) {
		n = fread(out, 1, len - 1, f);
		fclose(f);
		out[n] = '\0';
		out[strcspn(out, "\n")] = '\0';
		return out[0] ? 0 : -EINVAL;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1 || lt_b64url_encode(rnd, sizeof(rnd), out, len) < 0)
		return -EIO;
	OPENSSL_cleanse(rnd, sizeof(rnd));
	/* private whatever the umask; a library does not change the process's umask */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -errno;
	}
	fprintf(f, "%s\n", out);
	if (fclose(f))
		return -errno;
	return 0;
}
