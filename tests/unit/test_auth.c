// SPDX-License-Identifier: MIT
/*
 * test_auth.c - liblt's authentication (lib/auth.c) without an HTTP server:
 * HS256 tokens and API keys become a principal; roles become a tier in
 * config order; an empty role is nothing; the per-thread memo of verified
 * tokens re-checks expiry on every use; API keys are refused when revoked,
 * expired or wrong, memoised digest or not; the HS256 secret comes from the config, then
 * LT_JWT_SECRET, then <state-dir>/jwt-secret (made private).
 */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/sha.h>
#include "lt_test.h"
#include "auth.h"

#define SECRET "0123456789abcdef0123456789abcdef-auth"
#define NOW 1800000000LL
#define U "abcdefab-cdef-4abc-8def-abcdefabcdef"

static const char tiers[][32] = { "ENTERPRISE", "PRO", "USER" };
static const struct lt_auth_roles roles = { .tiers = tiers,
					    .ntiers = 3,
					    .default_tier = "FREE",
					    .admin_role = "ADMIN" };
static struct lt_jwt_verifier jwt;
static char tok[4096], hdr[4200];

static void mint(const char *claims)
{
	CHECK(!lt_jwt_sign_hs256(SECRET, claims, tok, sizeof(tok)));
	snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
}

/* One API key record, served by the test's own "store". */
static struct lt_key_rec key;
static int key_gets;

static int key_get(void *ctx, const char *id, struct lt_key_rec *out)
{
	(void)ctx;
	key_gets++;
	if (strcmp(id, key.id))
		return -ENOENT;
	*out = key;
	return 0;
}

static const struct lt_auth auth = { .jwt = &jwt, .key_get = key_get };

static void roles_pick_the_first_configured_tier(void)
{
	struct lt_principal p;
	struct lt_auth_fail f;

	/* config order wins over the token's order; the sub is made canonical */
	mint("{\"sub\":\"ABCDEFAB-CDEF-4ABC-8DEF-ABCDEFABCDEF\",\"roles\":[\"USER\",\"PRO\"],"
	     "\"orgs\":[\"" U "\"],\"exp\":1900000000}");
	CHECK(!lt_auth_request(&auth, &roles, hdr, NULL, NOW, &p, &f));
	CHECK(!strcmp(p.tier, "PRO"));
	CHECK(!strcmp(p.sub, U));
	CHECK_EQ(p.admin, 0);
	CHECK_EQ(p.norgs, 1);
	CHECK(!p.key_id[0]);
	/* no configured role: the default tier; ADMIN is a right, not a tier */
	mint("{\"sub\":\"" U "\",\"roles\":[\"ADMIN\",\"GUEST\"],\"exp\":1900000000}");
	CHECK(!lt_auth_request(&auth, &roles, hdr, NULL, NOW, &p, &f));
	CHECK(!strcmp(p.tier, "FREE"));
	CHECK_EQ(p.admin, 1);
}

static void empty_role_matches_nothing(void)
{
	const struct lt_auth_roles empty_admin = {
		.tiers = tiers, .ntiers = 3, .default_tier = "FREE", .admin_role = ""
	};
	struct lt_principal p;
	struct lt_auth_fail f;

	mint("{\"sub\":\"" U "\",\"roles\":[\"\"],\"exp\":1900000000}");
	CHECK(!lt_auth_request(&auth, &empty_admin, hdr, NULL, NOW, &p, &f));
	CHECK_EQ(p.admin, 0);
	CHECK(!strcmp(p.tier, "FREE"));
}

static void refusals_name_the_header(void)
{
	struct lt_principal p;
	struct lt_auth_fail f;

	CHECK_EQ(lt_auth_request(&auth, &roles, NULL, NULL, NOW, &p, &f),
		 (unsigned long long)-EACCES);
	CHECK(!strcmp(f.type, "unauthorized") && !strcmp(f.field, "Authorization"));
	CHECK_EQ(lt_auth_request(&auth, &roles, "Basic eDp5", NULL, NOW, &p, &f),
		 (unsigned long long)-EACCES);
	/* signed with another secret */
	CHECK(!lt_jwt_sign_hs256("another-secret-another-secret-xx",
				 "{\"sub\":\"" U "\",\"exp\":1900000000}", tok, sizeof(tok)));
	snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
	CHECK_EQ(lt_auth_request(&auth, &roles, hdr, NULL, NOW, &p, &f),
		 (unsigned long long)-EACCES);
	CHECK(!strcmp(f.type, "invalid-token") && !strcmp(f.field, "Authorization"));
	CHECK(!p.sub[0] && !p.admin);
}

static void memo_rechecks_expiry(void)
{
	struct lt_principal p;
	struct lt_auth_fail f;
	struct lt_jwt_claims c;
	char err[128];

	/* exp = NOW + 10, leeway 5 */
	mint("{\"sub\":\"" U "\",\"roles\":[\"USER\"],\"exp\":1800000010}");
	CHECK(!lt_auth_request(&auth, &roles, hdr, NULL, NOW, &p, &f)); /* verified, memoised */
	CHECK(!lt_jwt_verify_memo(&jwt, tok, NOW + 15, &c, err, sizeof(err))); /* in leeway */
	CHECK_EQ(lt_jwt_verify_memo(&jwt, tok, NOW + 16, &c, err, sizeof(err)),
		 (unsigned long long)-EACCES);
	CHECK_EQ(lt_auth_request(&auth, &roles, hdr, NULL, NOW + 16, &p, &f),
		 (unsigned long long)-EACCES);
	CHECK(!strcmp(f.type, "invalid-token"));
	/* a memoised token is the same bytes: one byte more is verified afresh */
	snprintf(hdr, sizeof(hdr), "Bearer %sx", tok);
	CHECK_EQ(lt_auth_request(&auth, &roles, hdr, NULL, NOW, &p, &f),
		 (unsigned long long)-EACCES);
}

static void api_key_principal_and_refusals(void)
{
	const char *secret = "lk_0011223344556677.c2VjcmV0LXNlY3JldC1zZWNyZXQ";
	struct lt_principal p;
	struct lt_auth_fail f;

	memset(&key, 0, sizeof(key));
	snprintf(key.id, sizeof(key.id), "lk_0011223344556677");
	snprintf(key.owner, sizeof(key.owner), "ABCDEFAB-CDEF-4ABC-8DEF-ABCDEFABCDEF");
	snprintf(key.tier, sizeof(key.tier), "PRO");
	key.limit.capacity = 7;
	SHA256((const unsigned char *)secret, strlen(secret), key.hash);
	key.expires_at = NOW + 100;
	CHECK(!lt_auth_request(&auth, &roles, NULL, secret, NOW, &p, &f));
	CHECK(!strcmp(p.sub, U) && !strcmp(p.tier, "PRO") && !strcmp(p.key_id, key.id));
	CHECK_EQ(p.key_limit.capacity, 7);
	CHECK_EQ(p.admin, 0);
	/* Authorization: Bearer lk_... is an API key too */
	snprintf(hdr, sizeof(hdr), "Bearer %s", secret);
	CHECK(!lt_auth_request(&auth, &roles, hdr, NULL, NOW, &p, &f));
	/* expired at expires_at, not after */
	CHECK_EQ(lt_auth_request(&auth, &roles, NULL, secret, NOW + 100, &p, &f),
		 (unsigned long long)-EACCES);
	CHECK(!strcmp(f.field, "X-API-Key"));
	/* one changed byte of the secret */
	snprintf(hdr, sizeof(hdr), "%s", secret);
	hdr[strlen(hdr) - 1] ^= 1;
	CHECK_EQ(lt_auth_request(&auth, &roles, NULL, hdr, NOW, &p, &f),
		 (unsigned long long)-EACCES);
	key.revoked = 1;
	CHECK_EQ(lt_auth_request(&auth, &roles, NULL, secret, NOW, &p, &f),
		 (unsigned long long)-EACCES);
	/* not even looked up when not of the form lk_<id>.<secret> */
	key_gets = 0;
	CHECK_EQ(lt_auth_request(&auth, &roles, NULL, "lk_nodot", NOW, &p, &f),
		 (unsigned long long)-EACCES);
	CHECK_EQ(key_gets, 0);
}

/*
 * The per-thread memo of API-key digests keeps every check: a memoised secret
 * is refused once its record's hash changes (a new secret), is revoked or
 * expires; a secret one byte off or one byte longer is not taken for it.
 */
static void api_key_memo_keeps_every_check(void)
{
	const char *old_s = "lk_8899aabbccddeeff.b2xkLXNlY3JldC1vbGQtc2VjcmV0";
	const char *new_s = "lk_8899aabbccddeeff.bmV3LXNlY3JldC1uZXctc2VjcmV0";
	char longer[128], off[128];
	struct lt_principal p;
	struct lt_auth_fail f;

	memset(&key, 0, sizeof(key));
	snprintf(key.id, sizeof(key.id), "lk_8899aabbccddeeff");
	snprintf(key.owner, sizeof(key.owner), U);
	snprintf(key.tier, sizeof(key.tier), "USER");
	SHA256((const unsigned char *)old_s, strlen(old_s), key.hash);
	for (int i = 0; i < 3; i++) /* memoised on the first */
		CHECK(!lt_auth_request(&auth, &roles, NULL, old_s, NOW, &p, &f));
	snprintf(longer, sizeof(longer), "%sA", old_s);
	CHECK_EQ(lt_auth_request(&auth, &roles, NULL, longer, NOW, &p, &f),
		 (unsigned long long)-EACCES);
	snprintf(off, sizeof(off), "%s", old_s);
	off[20] ^= 1;
	CHECK_EQ(lt_auth_request(&auth, &roles, NULL, off, NOW, &p, &f),
		 (unsigned long long)-EACCES);
	/* the record now holds another secret's hash: the memoised one is refused */
	SHA256((const unsigned char *)new_s, strlen(new_s), key.hash);
	CHECK_EQ(lt_auth_request(&auth, &roles, NULL, old_s, NOW, &p, &f),
		 (unsigned long long)-EACCES);
	CHECK(!lt_auth_request(&auth, &roles, NULL, new_s, NOW, &p, &f));
	CHECK(!lt_auth_request(&auth, &roles, NULL, new_s, NOW, &p, &f));
	key.expires_at = NOW;
	CHECK_EQ(lt_auth_request(&auth, &roles, NULL, new_s, NOW, &p, &f),
		 (unsigned long long)-EACCES);
	key.expires_at = 0;
	key.revoked = 1;
	CHECK_EQ(lt_auth_request(&auth, &roles, NULL, new_s, NOW, &p, &f),
		 (unsigned long long)-EACCES);
	key.revoked = 0;
	CHECK(!lt_auth_request(&auth, &roles, NULL, new_s, NOW, &p, &f));
}

static void secret_config_then_env_then_file(void)
{
	char dir[] = "/tmp/lt-auth-XXXXXX", out[256], again[256], path[300];
	const char *src;
	struct stat st;

	CHECK(mkdtemp(dir));
	setenv("LT_JWT_SECRET", "from-env", 1);
	CHECK(!lt_jwt_secret(dir, "from-config", out, sizeof(out), &src));
	CHECK(!strcmp(out, "from-config") && !strcmp(src, "the config file"));
	CHECK(!lt_jwt_secret(dir, "", out, sizeof(out), &src));
	CHECK(!strcmp(out, "from-env") && !strcmp(src, "LT_JWT_SECRET"));
	unsetenv("LT_JWT_SECRET");
	umask(022);
	CHECK(!lt_jwt_secret(dir, NULL, out, sizeof(out), &src));
	CHECK_EQ(strlen(out), 64); /* 48 random bytes, base64url */
	snprintf(path, sizeof(path), "%s/jwt-secret", dir);
	CHECK(!strcmp(src, path));
	CHECK(!stat(path, &st) && (st.st_mode & 0777) == 0600);
	CHECK(!lt_jwt_secret(dir, NULL, again, sizeof(again), &src)); /* made once */
	CHECK(!strcmp(out, again));
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	char err[128];

	lt_jwt_init(&jwt);
	jwt.leeway_s = 5;
	if (lt_jwt_set_secret(&jwt, SECRET, err, sizeof(err))) {
		printf("Bail out! %s\n", err);
		return 1;
	}
	RUN(roles_pick_the_first_configured_tier);
	RUN(empty_role_matches_nothing);
	RUN(refusals_name_the_header);
	RUN(memo_rechecks_expiry);
	RUN(api_key_principal_and_refusals);
	RUN(api_key_memo_keeps_every_check);
	RUN(secret_config_then_env_then_file);
	lt_jwt_free(&jwt);
	return lt_t_done();
}
