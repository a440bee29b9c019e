// SPDX-License-Identifier: MIT
/*
 * test_gw_keylimit.c - gateway/api_route.c and its config (gateway/gw_config.c):
 * the "auth" and "key_limit" options of a general API route, and the decision
 * on one request (gw_api_decide): identity per the route's auth (401 when
 * missing or of the wrong kind), then one request on the key's request bucket
 * r/<tier>/<key> through admit.c, 429 with answer.c's fields when it is spent,
 * RateLimit fields on a success, keys independent. The key store is a fake of
 * lt_apikey; the buckets live in anonymous memory, as test_admission.c does.
 */
#include <errno.h>
#include <sys/mman.h>
#include <openssl/sha.h>
#include "lt_test.h"
#include "api_route.h"
#include "routes.h"

#define NOW 1800000000LL
#define SEC 1000000000ULL
#define T0 (5000 * SEC)
#define U1 "00000000-0000-0000-0000-0000000000aa"
#define KEY1 "lk_00000000000000a1.s3cret-one"
#define KEY2 "lk_00000000000000a2.s3cret-two"

/* --- config ------------------------------------------------------------------- */

static struct gw_config *load(const char *routes, char *err, size_t errlen)
{
	char json[1024];
	struct gw_config *c = NULL;

	snprintf(json, sizeof(json),
		 "{\"services\": {\"a\": {\"urls\": [\"http://127.0.0.1:1\"]}}, \"routes\": [%s]}",
		 routes);
	if (gw_config_parse(json, strlen(json), "t.json", &c, err, errlen))
		return NULL;
	return c;
}

static const struct gw_route *route(const struct gw_config *c, const char *path)
{
	int mm;

	return gw_route_match(c, "GET", 3, path, strlen(path), &mm);
}

static void route_options_auth_and_key_limit(void)
{
	char err[256];
	struct gw_config *c = load(
		"{\"prefix\": \"/k\", \"service\": \"a\", \"auth\": \"api_key\", \"key_limit\": true},"
		"{\"prefix\": \"/l\", \"service\": \"a\", \"key_limit\": true},"
		"{\"prefix\": \"/j\", \"service\": \"a\", \"auth\": \"jwt\"},"
		"{\"prefix\": \"/n\", \"service\": \"a\", \"auth\": \"none\"},"
		"{\"prefix\": \"/p\", \"service\": \"a\"}",
		err, sizeof(err));

	CHECK(c);
	if (!c)
		return;
	CHECK(route(c, "/k")->auth == GW_AUTH_API_KEY && route(c, "/k")->key_limit);
	CHECK(route(c, "/k")->ops == &gw_api_ops);
	/* key_limit alone means auth api_key */
	CHECK(route(c, "/l")->auth == GW_AUTH_API_KEY && route(c, "/l")->key_limit);
	CHECK(route(c, "/j")->auth == GW_AUTH_JWT && !route(c, "/j")->key_limit);
	CHECK(route(c, "/j")->ops == &gw_api_ops);
	/* no auth: plain forwarding, no ops on the hot path */
	CHECK(route(c, "/n")->auth == GW_AUTH_NONE && !route(c, "/n")->ops);
	CHECK(route(c, "/p")->auth == GW_AUTH_NONE && !route(c, "/p")->ops);
	gw_config_put(c);
}

static void key_limit_without_api_keys_is_refused(void)
{
	char err[256];

	CHECK(!load(
		"{\"prefix\": \"/k\", \"service\": \"a\", \"auth\": \"jwt\", \"key_limit\": true}",
		err, sizeof(err)));
	CHECK(strstr(err, "/routes/0") && strstr(err, "key_limit"));
	CHECK(!load(
		"{\"prefix\": \"/k\", \"service\": \"a\", \"auth\": \"any\", \"key_limit\": true}",
		err, sizeof(err)));
	CHECK(!load("{\"prefix\": \"/k\", \"service\": \"a\", \"auth\": \"apikey\"}", err,
		    sizeof(err)));
	CHECK(strstr(err, "\"auth\" must be"));
	CHECK(!load("{\"prefix\": \"/k\", \"service\": \"a\", \"key_limit\": 1}", err,
		    sizeof(err)));
}

/* --- the decision ----------------------------------------------------------------- */

static struct lt_key_rec store[2];
static int nstore;

static int fake_get(void *ctx, const char *kid, struct lt_key_rec *out)
{
	(void)ctx;
	for (int i = 0; i < nstore; i++)
		if (!strcmp(store[i].id, kid)) {
			*out = store[i];
			return 0;
		}
	return -ENOENT;
}

static void add_key(const char *secret)
{
	struct lt_key_rec *r = &store[nstore++];
	const char *dot = strchr(secret, '.');

	memset(r, 0, sizeof(*r));
	memcpy(r->id, secret, (size_t)(dot - secret));
	SHA256((const unsigned char *)secret, strlen(secret), r->hash);
	snprintf(r->owner, sizeof(r->owner), "%s", U1);
	snprintf(r->tier, sizeof(r->tier), "USER");
}

/* The buckets r/USER/<key1> and r/USER/<key2>: capacity 3, 1 per second. */
static struct lt_slot *slots;
static struct lt_rate *rates;
static struct lt_usage *usage;
static struct lt_decide_maps M;
static const char *bkeys[2] = { "r/USER/lk_00000000000000a1", "r/USER/lk_00000000000000a2" };
static int resolves;

static int tres(void *ctx, const char *key, struct lt_keyidx_val *out, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	resolves++;
	for (__u32 i = 0; i < 2; i++)
		if (!strcmp(key, bkeys[i])) {
			*out = (struct lt_keyidx_val){ 10 + i, 100 + i };
			return 0;
		}
	return -ENOENT; /* no quota */
}

static void tforget(void *ctx, const char *key)
{
	(void)ctx;
	(void)key;
}

static struct lt_gw_identity *id;
static struct lt_jwt_verifier jwt;
static struct lt_admitter adm;
static const char tiers[][32] = { "ADMIN", "USER" };
static struct lt_gw_identity_opts opts;

static void setup(void)
{
	__u32 old;
	int was_free;

	nstore = 0;
	add_key(KEY1);
	add_key(KEY2);
	for (__u32 i = 0; i < 2; i++) {
		__u32 s = 10 + i;
		CHECK_EQ(lt_rate_init(&rates[s], 3, 1, SEC), 0);
		memset(&usage[s], 0, sizeof(usage[s]));
		memset(&slots[s], 0, sizeof(slots[s]));
		usage[s].gen = 100 + i;
		CHECK_EQ(lt_slot_assign(slots, s, s, &old, &was_free), 0);
	}
	opts = (struct lt_gw_identity_opts){
		.jwt = &jwt,
		.roles = { .tiers = tiers,
			   .ntiers = 2,
			   .default_tier = "USER",
			   .admin_role = "ADMIN" },
		.key_get = fake_get,
	};
	lt_gw_identity_free(id);
	id = NULL;
	CHECK_EQ(lt_gw_identity_new(&id, &opts), 0);
	lt_admitter_init(&adm, &M, NULL, NULL, 0);
	adm.r = (struct lt_admit_resolver){ tres, tforget, NULL };
}

static unsigned decide(enum gw_auth auth, int limit, const char *authz, const char *key, __u64 now,
		       struct gw_api_verdict *v)
{
	return gw_api_decide(id, &adm, auth, limit, authz, key, NULL, NOW, now, 7, v);
}

static int has(const struct lt_answer *a, const char *s)
{
	return memmem(a->head, a->head_len, s, strlen(s)) != NULL;
}

static void within_the_limit_forwards_with_ratelimit_fields_then_429(void)
{
	static struct gw_api_verdict v;

	setup();
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, KEY1, T0, &v), 0);
		CHECK_EQ(v.kind, GW_API_FORWARD);
		CHECK(has(&v.a, "RateLimit-Policy: \"key-requests\";q=3;w=3\r\n"));
		CHECK(has(&v.a, "RateLimit: \"key-requests\";r="));
		CHECK(!strcmp(v.t.key_id, "lk_00000000000000a1"));
	}
	CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, KEY1, T0, &v), 429);
	CHECK_EQ(v.kind, GW_API_LIMIT);
	/* the wait is 1 s; Retry-After is never early (whole seconds, jitter added) */
	CHECK(has(&v.a, "Retry-After: 1\r\n") || has(&v.a, "Retry-After: 2\r\n"));
	CHECK(has(&v.a, "retry-after-ms: 10"));
	CHECK(has(&v.a, "RateLimit: \"key-requests\";r=0;t="));
	CHECK(has(&v.a, "Content-Type: application/problem+json\r\n"));
	CHECK(memmem(v.a.body, v.a.body_len, "\"violated-policies\":[\"key-requests\"]", 36));
	/* the same key as Authorization: Bearer lk_...: the same bucket, still spent */
	CHECK_EQ(decide(GW_AUTH_API_KEY, 1, "Bearer " KEY1, NULL, T0, &v), 429);
	/* a second later one request has leaked out */
	CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, KEY1, T0 + SEC, &v), 0);
	CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, KEY1, T0 + SEC, &v), 429);
}

static void keys_are_independent(void)
{
	static struct gw_api_verdict v;

	setup();
	for (int i = 0; i < 3; i++)
		CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, KEY1, T0, &v), 0);
	CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, KEY1, T0, &v), 429);
	CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, KEY2, T0, &v), 0);
	CHECK(!strcmp(v.t.key_id, "lk_00000000000000a2"));
}

static void missing_or_wrong_credentials_are_401_and_take_nothing(void)
{
	static struct gw_api_verdict v;

	setup();
	resolves = 0;
	CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, NULL, T0, &v), 401);
	CHECK_EQ(v.kind, GW_API_DENY);
	CHECK(!strcmp(v.deny.field, "X-API-Key"));
	CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, "lk_00000000000000ff.nope", T0, &v), 401);
	CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, "lk_00000000000000a1.wrong", T0, &v), 401);
	CHECK_EQ(decide(GW_AUTH_API_KEY, 1, "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", NULL, T0, &v),
		 401);
	CHECK(strstr(v.deny.detail, "not a JWT"));
	CHECK_EQ(decide(GW_AUTH_JWT, 0, NULL, KEY1, T0, &v), 401);
	CHECK(strstr(v.deny.detail, "not an API key"));
	CHECK_EQ(decide(GW_AUTH_ANY, 0, NULL, NULL, T0, &v), 401);
	CHECK_EQ(resolves, 0); /* no bucket was looked at */
	/* auth without key_limit: identified, nothing taken, no RateLimit fields */
	CHECK_EQ(decide(GW_AUTH_API_KEY, 0, NULL, KEY1, T0, &v), 0);
	CHECK_EQ(v.a.head_len, 0);
	CHECK_EQ(resolves, 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, KEY1, T0, &v), 0);
}

static void a_tier_without_a_request_limit_is_403(void)
{
	static struct gw_api_verdict v;

	setup();
	snprintf(store[0].tier, sizeof(store[0].tier), "ADMIN"); /* r/ADMIN/...: no bucket */
	CHECK_EQ(decide(GW_AUTH_API_KEY, 1, NULL, KEY1, T0, &v), 403);
	CHECK_EQ(v.kind, GW_API_LIMIT);
}

static void *shmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int main(void)
{
	char err[256];

	slots = shmap(LT_MAX_SLOTS * sizeof(*slots));
	rates = shmap(LT_MAX_RATES * sizeof(*rates));
	usage = shmap(LT_MAX_SLOTS * sizeof(*usage));
	lt_jwt_init(&jwt);
	if (!slots || !rates || !usage ||
	    lt_jwt_set_secret(&jwt, "test-secret-0123456789-0123456789abcdef", err, sizeof(err))) {
		printf("not ok 1 - setup\n1..1\n");
		return 1;
	}
	M = (struct lt_decide_maps){ slots, rates, usage };
	RUN(route_options_auth_and_key_limit);
	RUN(key_limit_without_api_keys_is_refused);
	RUN(within_the_limit_forwards_with_ratelimit_fields_then_429);
	RUN(keys_are_independent);
	RUN(missing_or_wrong_credentials_are_401_and_take_nothing);
	RUN(a_tier_without_a_request_limit_is_403);
	lt_gw_identity_free(id);
	lt_jwt_free(&jwt);
	munmap(slots, LT_MAX_SLOTS * sizeof(*slots));
	munmap(rates, LT_MAX_RATES * sizeof(*rates));
	munmap(usage, LT_MAX_SLOTS * sizeof(*usage));
	return lt_t_done();
}
