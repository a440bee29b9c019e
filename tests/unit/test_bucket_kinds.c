// SPDX-License-Identifier: MIT
/*
 * test_bucket_kinds.c - the buckets a gateway request needs besides a user's
 * or an org's: an API key's request bucket "r/<tier>/<keyId>" (cost 1 per
 * request, limited by its tier's "keyreq" limit) and the provider-wide pool
 * "p/<provider>" (the "pool" limit of the provider), each with a "*"
 * default: built by lt_bucket_key, made by the agent with their limits
 * (what POST /api/v1/admin/buckets calls), refused without one, and read
 * from the config (token.key_requests, token.provider_pools).
 */
#include <errno.h>
#include <unistd.h>
#include "lt_test.h"
#include "config.h"
#include "quota.h"
#include "tenant.h"
#include "units.h"
#include "log.h"

#define SEC 1000000000ULL

static void keys_are_built_from_canonical_parts(void)
{
	char k[LT_BUCKET_KEY_LEN];

	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_KEYREQ, "USER", NULL, "lk_0123456789abcdef"),
		 0);
	CHECK(!strcmp(k, "r/USER/lk_0123456789abcdef"));
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_POOL, NULL, "openai", NULL), 0);
	CHECK(!strcmp(k, "p/openai"));
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_KEYREQ, NULL, NULL, "lk_1"), -EINVAL);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_KEYREQ, "US/ER", NULL, "lk_1"), -EINVAL);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_POOL, NULL, "", NULL), -EINVAL);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_POOL, NULL, "open ai", NULL), -EINVAL);
}

static void the_agent_makes_them_with_their_limits(void)
{
	struct lt_limit user_req = { 5, 1, SEC }, any_req = { 50, 10, SEC },
			pool = { 100000, 1000, SEC }, any_pool = { 7000, 70, SEC };
	struct lt_slot *slots = calloc(LT_MAX_SLOTS, sizeof(*slots));
	struct lt_rate *rates = calloc(LT_MAX_RATES, sizeof(*rates));
	struct lt_usage *usage = calloc(LT_MAX_SLOTS, sizeof(*usage));
	struct lt_quota_maps m = { slots, rates, usage, -1 };
	char db[] = "/tmp/lt-kinds-XXXXXX", err[256];
	struct lt_quota *q = NULL;
	struct lt_store st;
	struct lt_view v;
	__u32 h;
	int fd = mkstemp(db);

	close(fd);
	CHECK_EQ(lt_store_open(&st, db, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_open(&q, &st, &m, err, sizeof(err)), 0);
	/* no limit yet: refused, nothing made */
	CHECK_EQ(lt_quota_bucket(q, "p/openai", NULL, &h, err, sizeof(err)), -ENOENT);
	CHECK_EQ(lt_quota_bucket(q, "r/USER/lk_1", NULL, &h, err, sizeof(err)), -ENOENT);
	CHECK_EQ(lt_quota_buckets(q), 0);
	CHECK_EQ(lt_quota_limit_set(q, "keyreq", "USER", "*", &user_req, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_limit_set(q, "keyreq", "*", "*", &any_req, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_limit_set(q, "pool", "*", "openai", &pool, err, sizeof(err)), 0);

	CHECK_EQ(lt_quota_bucket(q, "r/USER/lk_1", NULL, &h, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_peek(q, h, lt_now_ns(), &v), 0);
	CHECK_EQ(v.capacity, 5);
	CHECK_EQ(lt_quota_bucket(q, "r/ADMIN/lk_2", NULL, &h, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_peek(q, h, lt_now_ns(), &v), 0);
	CHECK_EQ(v.capacity, 50); /* the "*" default */
	CHECK_EQ(lt_quota_bucket(q, "p/openai", NULL, &h, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_peek(q, h, lt_now_ns(), &v), 0);
	CHECK_EQ(v.capacity, 100000);
	CHECK_EQ(lt_quota_bucket(q, "p/qwen", NULL, &h, err, sizeof(err)), -ENOENT);
	CHECK_EQ(lt_quota_limit_set(q, "pool", "*", "*", &any_pool, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "p/qwen", NULL, &h, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_peek(q, h, lt_now_ns(), &v), 0);
	CHECK_EQ(v.capacity, 7000);
	/* a changed limit rebases the live bucket, as for tiers and orgs */
	pool.capacity = 200000;
	CHECK_EQ(lt_quota_limit_set(q, "pool", "*", "openai", &pool, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "p/openai", NULL, &h, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_peek(q, h, lt_now_ns(), &v), 0);
	CHECK_EQ(v.capacity, 200000);
	lt_quota_close(q);
	lt_store_close(&st);
	unlink(db);
	free(slots);
	free(rates);
	free(usage);
}

static void the_config_names_them(void)
{
	struct lt_agent_config c;
	char err[256] = "";
	int i, pools = 0, reqs = 0;

	CHECK_EQ(lt_config_parse(
			 "{\"token\":{\"providers\":[\"openai\"],"
			 "\"provider_pools\":{\"openai\":{\"capacity\":1000,\"rate\":\"10/s\"},"
			 "\"*\":{\"capacity\":500,\"rate\":\"5/s\"}},"
			 "\"key_requests\":{\"USER\":{\"capacity\":60,\"rate\":\"1/s\"}}}}",
			 "kinds", &c, err, sizeof(err)),
		 0);
	if (err[0])
		printf("# %s\n", err);
	for (i = 0; i < c.cp.nlimits; i++) {
		const struct lt_cp_limit *l = &c.cp.limits[i];

		pools += !strcmp(l->kind, "pool") && !strcmp(l->name, "*");
		reqs += !strcmp(l->kind, "keyreq") && !strcmp(l->name, "USER") &&
			!strcmp(l->provider, "*") && l->capacity == 60;
	}
	CHECK_EQ(pools, 2);
	CHECK_EQ(reqs, 1);
	lt_config_free(&c);
	CHECK(lt_config_parse("{\"token\":{\"key_requests\":{\"U/S\":{\"capacity\":1,"
			      "\"rate\":\"1/s\"}}}}",
			      "bad", &c, err, sizeof(err)) != 0);
	CHECK(strstr(err, "/token/key_requests/U/S") != NULL);
	lt_config_free(&c);
}

int main(void)
{
	lt_log_level = LT_LOG_WARN;
	RUN(keys_are_built_from_canonical_parts);
	RUN(the_agent_makes_them_with_their_limits);
	RUN(the_config_names_them);
	return lt_t_done();
}
