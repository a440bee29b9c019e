// SPDX-License-Identifier: MIT
/*
 * test_gw_identity.c - gateway/identity.c: credentials -> tenant with the
 * agent's auth code, and the API-key cache that keys_gen invalidates: a
 * revocation applies on the next request, a cached key costs no lookup.
 * The key source is a counted fake of lt_apikey; keys_gen a plain word.
 */
#include <errno.h>
#include <openssl/sha.h>
#include "identity.h"
#include "lt_test.h"

#define NOW 1800000000LL
#define U1 "00000000-0000-0000-0000-0000000000aa"
#define O1 "10000000-0000-0000-0000-000000000001"
#define O2 "10000000-0000-0000-0000-000000000002"
#define KEY1 "lk_00000000000000a1.s3cret-one"
#define KEY2 "lk_00000000000000a2.s3cret-two"

/* The fake lt_apikey: what the agent has written, and how often it was read. */
static struct lt_key_rec store[4];
static int nstore, lookups, fail_with;

static int fake_get(void *ctx, const char *id, struct lt_key_rec *out)
{
	int i;

	(void)ctx;
	lookups++;
	if (fail_with)
		return fail_with;
	for (i = 0; i < nstore; i++)
		if (!strcmp(store[i].id, id)) {
			*out = store[i];
			return 0;
		}
	return -ENOENT;
}

static struct lt_key_rec *add_key(const char *secret, const char *owner, const char *org)
{
	struct lt_key_rec *r = &store[nstore++];
	const char *dot = strchr(secret, '.');

	memset(r, 0, sizeof(*r));
	memcpy(r->id, secret, (size_t)(dot - secret));
	SHA256((const unsigned char *)secret, strlen(secret), r->hash);
	snprintf(r->owner, sizeof(r->owner), "%s", owner);
	snprintf(r->tier, sizeof(r->tier), "PRO");
	snprintf(r->org, sizeof(r->org), "%s", org);
	r->limit = (struct lt_limit){ .capacity = 1000, .tokens = 10, .period_ns = 1000000000 };
	return r;
}

static const char tiers[][32] = { "ADMIN", "PRO", "USER" };
static struct lt_jwt_verifier jwt;
static __u64 keys_gen; /* lt_config_val.keys_gen, as the agent bumps it */
static struct lt_gw_identity_opts opts;
static struct lt_gw_identity *id;
static struct lt_gw_tenant t;
static struct lt_gw_deny d;

static void setup(void)
{
	nstore = lookups = fail_with = 0;
	keys_gen = 7;
	opts = (struct lt_gw_identity_opts){
		.jwt = &jwt,
		.roles = { .tiers = tiers,
			   .ntiers = 3,
			   .default_tier = "USER",
			   .admin_role = "ADMIN" },
		.key_get = fake_get,
		.key_ctx = NULL,
		.keys_gen = &keys_gen,
	};
	lt_gw_identity_free(id);
	id = NULL;
	if (lt_gw_identity_new(&id, &opts))
		abort();
}

static int ident(const char *authz, const char *key, const char *org, int64_t now)
{
	return lt_gw_identify(id, authz, key, org, now, &t, &d);
}

static void api_key_resolves_to_its_tenant_both_header_forms(void)
{
	setup();
	/* an owner stored before ids were canonical: the tenant is lower-case */
	add_key(KEY1, "00000000-0000-0000-0000-0000000000AA", O1);
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), 0);
	CHECK(!strcmp(t.user, U1));
	CHECK(!strcmp(t.tier, "PRO"));
	CHECK(!strcmp(t.org, O1));
	CHECK(!strcmp(t.key_id, "lk_00000000000000a1"));
	CHECK_EQ(t.key_limit.capacity, 1000);
	CHECK_EQ(t.admin, 0);
	CHECK_EQ(ident("Bearer " KEY1, NULL, NULL, NOW), 0);
	CHECK(!strcmp(t.key_id, "lk_00000000000000a1"));
	CHECK_EQ(ident(NULL, KEY1, O1, NOW), 0); /* its own org, said again */
}

static void a_cached_key_costs_no_lookup(void)
{
	struct lt_gw_identity_stats s;
	int i;

	setup();
	add_key(KEY1, U1, "");
	for (i = 0; i < 100; i++)
		CHECK_EQ(ident(NULL, KEY1, NULL, NOW), 0);
	CHECK_EQ(lookups, 1);
	lt_gw_identity_stats(id, &s);
	CHECK_EQ(s.misses, 1);
	CHECK_EQ(s.hits, 99);
	CHECK_EQ(t.org[0], 0); /* no org: the user's own budget */
}

static void revocation_applies_on_the_next_request(void)
{
	struct lt_key_rec *r;

	setup();
	r = add_key(KEY1, U1, O1);
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), 0);
	r->revoked = 1; /* the agent writes lt_apikey ... */
	keys_gen++; /* ... then bumps keys_gen */
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), -EACCES);
	CHECK_EQ(d.status, 401);
	CHECK(!strcmp(d.field, "X-API-Key"));
	CHECK(strstr(d.detail, "revoked") != NULL);
	CHECK_EQ(lookups, 2);
	CHECK_EQ(t.user[0], 0);
}

static void a_limit_change_applies_on_the_next_request(void)
{
	struct lt_key_rec *r;

	setup();
	r = add_key(KEY1, U1, O1);
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), 0);
	r->limit.capacity = 5;
	snprintf(r->tier, sizeof(r->tier), "USER");
	keys_gen++;
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), 0);
	CHECK_EQ(t.key_limit.capacity, 5);
	CHECK(!strcmp(t.tier, "USER"));
}

static void a_map_edit_without_a_bump_applies_after_the_ttl(void)
{
	struct lt_key_rec *r;

	setup();
	r = add_key(KEY1, U1, O1);
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), 0);
	r->revoked = 1; /* bpftool map update: keys_gen unchanged */
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW + LT_GW_KEY_TTL_S - 1), 0);
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW + LT_GW_KEY_TTL_S), -EACCES);
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW - 5), -EACCES); /* a clock step back refetches */
}

static void expiry_is_checked_on_every_request_cached_or_not(void)
{
	struct lt_key_rec *r;

	setup();
	r = add_key(KEY1, U1, O1);
	r->expires_at = NOW + 1;
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), 0);
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW + 1), -EACCES);
	CHECK_EQ(d.status, 401);
	CHECK_EQ(lookups, 1); /* the cached record said when */
}

static void unknown_and_wrong_keys_are_401_and_unknown_is_cached_until_a_bump(void)
{
	setup();
	add_key(KEY1, U1, O1);
	CHECK_EQ(ident(NULL, "lk_00000000000000a1.wrong", NULL, NOW), -EACCES);
	CHECK_EQ(d.status, 401);
	CHECK_EQ(ident(NULL, KEY2, NULL, NOW), -EACCES);
	CHECK_EQ(ident(NULL, KEY2, NULL, NOW), -EACCES);
	CHECK_EQ(lookups, 2); /* a2's absence is cached too */
	add_key(KEY2, U1, ""); /* created: the agent bumps */
	keys_gen++;
	CHECK_EQ(ident(NULL, KEY2, NULL, NOW), 0);
	CHECK_EQ(ident(NULL, "not-a-key", NULL, NOW), -EACCES);
	CHECK_EQ(ident(NULL, "lk_nodot", NULL, NOW), -EACCES);
	CHECK_EQ(d.status, 401);
}

static void missing_credentials_are_401_naming_the_header(void)
{
	setup();
	CHECK_EQ(ident(NULL, NULL, NULL, NOW), -EACCES);
	CHECK_EQ(d.status, 401);
	CHECK(!strcmp(d.field, "Authorization"));
	CHECK(strstr(d.detail, "X-API-Key") != NULL);
	CHECK_EQ(ident("Basic dXNlcjpwYXNz", NULL, NULL, NOW), -EACCES);
	CHECK_EQ(d.status, 401);
	CHECK_EQ(ident("Bearer not.a.jwt", NULL, NULL, NOW), -EACCES);
	CHECK(!strcmp(d.type, "invalid-token"));
}

static void a_store_that_cannot_be_read_is_503_and_not_cached(void)
{
	setup();
	add_key(KEY1, U1, O1);
	fail_with = -EPERM;
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), -EACCES);
	CHECK_EQ(d.status, 503);
	CHECK(strstr(d.detail, "lt_apikey") != NULL);
	fail_with = 0;
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), 0);
	CHECK_EQ(lookups, 2);
}

static void api_keys_refused_when_no_source(void)
{
	setup();
	opts.key_get = NULL;
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), -EACCES);
	CHECK_EQ(d.status, 401);
	CHECK(strstr(d.detail, "not accepted") != NULL);
}

static void no_generation_word_means_a_lookup_per_request(void)
{
	struct lt_key_rec *r;

	setup();
	opts.keys_gen = NULL;
	r = add_key(KEY1, U1, O1);
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), 0);
	r->revoked = 1;
	CHECK_EQ(ident(NULL, KEY1, NULL, NOW), -EACCES);
	CHECK_EQ(lookups, 2);
}

static void bearer(char *out, size_t len, const char *claims)
{
	char tok[2048];

	if (lt_jwt_sign_hs256("test-secret-0123456789-0123456789abcdef", claims, tok, sizeof(tok)))
		abort();
	snprintf(out, len, "Bearer %s", tok);
}

static void jwt_resolves_user_tier_and_org(void)
{
	char h[2100];

	setup();
	bearer(h, sizeof(h),
	       "{\"sub\":\"00000000-0000-0000-0000-0000000000AA\",\"roles\":[\"PRO\"],"
	       "\"orgs\":[\"" O1 "\"],\"exp\":1900000000}");
	CHECK_EQ(ident(h, NULL, NULL, NOW), 0);
	CHECK(!strcmp(t.user, U1));
	CHECK(!strcmp(t.tier, "PRO"));
	CHECK(!strcmp(t.org, O1)); /* its only org */
	CHECK_EQ(t.key_id[0], 0);
	CHECK_EQ(t.admin, 0);
	CHECK_EQ(ident(h, NULL, O2, NOW), -EACCES); /* not its org */
	CHECK_EQ(d.status, 403);
	CHECK(!strcmp(d.field, "X-Org-Id"));
	CHECK_EQ(ident(h, NULL, NULL, 1900000000 + 3600), -EACCES); /* expired */
	CHECK_EQ(d.status, 401);
	CHECK(!strcmp(d.type, "invalid-token"));
	CHECK_EQ(lookups, 0);
}

static void jwt_with_several_orgs_needs_x_org_id(void)
{
	char h[2100];

	setup();
	bearer(h, sizeof(h),
	       "{\"sub\":\"" U1 "\",\"roles\":[\"USER\",\"ADMIN\"],\"orgs\":[\"" O1 "\",\"" O2
	       "\"],\"exp\":1900000000}");
	CHECK_EQ(ident(h, NULL, NULL, NOW), -EACCES);
	CHECK_EQ(d.status, 400);
	CHECK_EQ(ident(h, NULL, "10000000-0000-0000-0000-000000000002", NOW), 0);
	CHECK(!strcmp(t.org, O2));
	CHECK(!strcmp(t.tier, "ADMIN")); /* the first configured tier the roles name */
	CHECK_EQ(t.admin, 1);
	bearer(h, sizeof(h), "{\"sub\":\"bob\",\"exp\":1900000000}");
	CHECK_EQ(ident(h, NULL, NULL, NOW), 0);
	CHECK(!strcmp(t.user, "bob"));
	CHECK(!strcmp(t.tier, "USER")); /* the default */
	CHECK_EQ(t.org[0], 0);
}

static void api_key_with_another_org_is_403(void)
{
	setup();
	add_key(KEY1, U1, O1);
	CHECK_EQ(ident(NULL, KEY1, O2, NOW), -EACCES);
	CHECK_EQ(d.status, 403);
	CHECK(strstr(d.detail, "API key") != NULL);
}

int main(void)
{
	char err[256];

	lt_jwt_init(&jwt);
	if (lt_jwt_set_secret(&jwt, "test-secret-0123456789-0123456789abcdef", err, sizeof(err))) {
		printf("Bail out! %s\n", err);
		return 1;
	}
	RUN(api_key_resolves_to_its_tenant_both_header_forms);
	RUN(a_cached_key_costs_no_lookup);
	RUN(revocation_applies_on_the_next_request);
	RUN(a_limit_change_applies_on_the_next_request);
	RUN(a_map_edit_without_a_bump_applies_after_the_ttl);
	RUN(expiry_is_checked_on_every_request_cached_or_not);
	RUN(unknown_and_wrong_keys_are_401_and_unknown_is_cached_until_a_bump);
	RUN(missing_credentials_are_401_naming_the_header);
	RUN(a_store_that_cannot_be_read_is_503_and_not_cached);
	RUN(api_keys_refused_when_no_source);
	RUN(no_generation_word_means_a_lookup_per_request);
	RUN(jwt_resolves_user_tier_and_org);
	RUN(jwt_with_several_orgs_needs_x_org_id);
	RUN(api_key_with_another_org_is_403);
	lt_gw_identity_free(id);
	lt_jwt_free(&jwt);
	return lt_t_done();
}
