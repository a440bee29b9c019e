// SPDX-License-Identifier: MIT
/*
 * test_usage_event.c - the data of a usage event (agent/usage_event.c): what
 * a producer wrote into a record is untrusted bytes, and every event must
 * still be one valid JSON object (jansson parses it back) with the tenant as
 * its key; a buffer too small is -ENOSPC, never a cut object.
 */
#include <errno.h>
#include <jansson.h>
#include "lt_test.h"
#include "requests.h"

static struct lt_rq_item lt_item(void)
{
	struct lt_rq_item it = { .origin = LT_EV_GATEWAY, .policy = 7 };

	snprintf(it.r.user, sizeof(it.r.user), "00000000-0000-0000-0000-000000000001");
	snprintf(it.r.provider, sizeof(it.r.provider), "openai");
	snprintf(it.r.method, sizeof(it.r.method), "POST");
	it.r.status = 200;
	it.r.tokens_reserved = 100;
	it.r.start_ns = 1700000000123456789ULL;
	return it;
}

static json_t *lt_parse(const struct lt_rq_item *it, char *key, size_t keylen)
{
	char buf[4096];
	__u64 t;
	int n = lt_usage_event(it, buf, sizeof(buf), key, keylen, &t);

	CHECK(n > 0);
	return n > 0 ? json_loadb(buf, (size_t)n, 0, NULL) : NULL;
}

static void hostile_strings_stay_valid_json(void)
{
	struct lt_rq_item it = lt_item();
	char key[LT_USAGE_KEY_LEN];
	json_t *o;

	/* a quote, a backslash, control bytes, invalid UTF-8, a cut multibyte character */
	memcpy(it.r.model_requested, "a\"b\\c\n\x01\xff\xc3", 10);
	snprintf(it.r.route, sizeof(it.r.route), "/x\"}{");
	o = lt_parse(&it, key, sizeof(key));
	CHECK(o != NULL);
	CHECK(!strncmp(json_string_value(json_object_get(o, "gen_ai.request.model")),
		       "a\"b\\c\n\x01", 7));
	CHECK(!strcmp(json_string_value(json_object_get(o, "http.route")), "/x\"}{"));
	json_decref(o);
}

static void tenant_is_org_then_user_then_key(void)
{
	struct lt_rq_item it = lt_item();
	char key[LT_USAGE_KEY_LEN];
	json_t *o;

	o = lt_parse(&it, key, sizeof(key));
	CHECK(!strcmp(key, "user:00000000-0000-0000-0000-000000000001"));
	CHECK(!strcmp(json_string_value(json_object_get(o, "tenant")), key));
	json_decref(o);
	snprintf(it.r.org, sizeof(it.r.org), "org-1");
	o = lt_parse(&it, key, sizeof(key));
	CHECK(!strcmp(key, "org:org-1"));
	json_decref(o);
	it.r.org[0] = it.r.user[0] = '\0';
	snprintf(it.r.key_id, sizeof(it.r.key_id), "lk_1");
	o = lt_parse(&it, key, sizeof(key));
	CHECK(!strcmp(key, "key:lk_1"));
	json_decref(o);
	it.r.key_id[0] = '\0';
	o = lt_parse(&it, key, sizeof(key));
	CHECK(!strcmp(key, "anonymous"));
	json_decref(o);
}

static void usage_only_when_known(void)
{
	struct lt_rq_item it = lt_item();
	char key[LT_USAGE_KEY_LEN];
	json_t *o;

	o = lt_parse(&it, key, sizeof(key));
	CHECK(!json_object_get(o, "gen_ai.usage.input_tokens"));
	CHECK_EQ(json_integer_value(json_object_get(o, "tokens_settled")),
		 100); /* charged in full */
	json_decref(o);
	it.r.flags = LT_REQLOG_F_USAGE;
	it.r.tokens_in = 30;
	it.r.tokens_out = 12;
	o = lt_parse(&it, key, sizeof(key));
	CHECK_EQ(json_integer_value(json_object_get(o, "gen_ai.usage.input_tokens")), 30);
	CHECK_EQ(json_integer_value(json_object_get(o, "gen_ai.usage.output_tokens")), 12);
	CHECK_EQ(json_integer_value(json_object_get(o, "tokens_settled")), 42);
	CHECK_EQ(json_integer_value(json_object_get(o, "policy_version")), 7);
	json_decref(o);
}

static void small_buffer_is_enospc(void)
{
	struct lt_rq_item it = lt_item();
	char key[LT_USAGE_KEY_LEN], buf[4096];
	__u64 t;
	int n = lt_usage_event(&it, buf, sizeof(buf), key, sizeof(key), &t), i;

	CHECK(n > 0);
	CHECK_EQ(t, it.r.start_ns);
	for (i = 1; i <= n; i++) /* room for n bytes and the NUL, or -ENOSPC */
		CHECK_EQ(lt_usage_event(&it, buf, (size_t)i, key, sizeof(key), &t), -ENOSPC);
	CHECK_EQ(lt_usage_event(&it, buf, (size_t)n + 1, key, sizeof(key), &t), n);
}

/* latency_ms is ns / 1e6 with 3 decimals, rounded to the µs: 1234567 ns is 1.235 */
static void latency_ms_three_decimals(void)
{
	static const struct {
		__u64 ns;
		const char *text;
	} cases[] = { { 0, "0.000" },
		      { 499, "0.000" },
		      { 500, "0.001" },
		      { 1234567, "1.235" },
		      { 999999, "1.000" },
		      { 1000000, "1.000" },
		      { 60000000000ULL, "60000.000" },
		      { 18446744073709551615ULL, "18446744073709.552" } };
	char key[LT_USAGE_KEY_LEN], buf[4096], want[64];
	__u64 t;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct lt_rq_item it = lt_item();
		int n;

		it.r.latency_ns = cases[i].ns;
		n = lt_usage_event(&it, buf, sizeof(buf), key, sizeof(key), &t);
		CHECK(n > 0);
		snprintf(want, sizeof(want), "\"latency_ms\":%s,", cases[i].text);
		if (!strstr(buf, want))
			printf("# %llu ns: want %s in %s\n", (unsigned long long)cases[i].ns, want,
			       buf);
		CHECK(strstr(buf, want) != NULL);
	}
}

static void kernel_decision(void)
{
	struct lt_rq_item it = { .origin = LT_EV_KERNEL, .k_real_ns = 5 };
	char key[LT_USAGE_KEY_LEN];
	json_t *o;

	it.k.saddr[10] = it.k.saddr[11] = 0xff;
	it.k.saddr[12] = 192;
	it.k.saddr[15] = 1;
	it.k.stat = LT_STAT_DROP_CONN_RATE;
	it.k.dport = 443;
	it.k.proto = 6;
	it.k.syn = 1;
	o = lt_parse(&it, key, sizeof(key));
	CHECK(!strcmp(key, "src:192.0.0.1"));
	CHECK(!strcmp(json_string_value(json_object_get(o, "decision")), "rejected"));
	CHECK(!strcmp(json_string_value(json_object_get(o, "reason")), "drop_conn_rate"));
	CHECK(!strcmp(json_string_value(json_object_get(o, "network.transport")), "tcp"));
	CHECK(json_is_true(json_object_get(o, "syn")));
	json_decref(o);
	it.k.stat = LT_STAT_DRYRUN_CONN_RATE; /* dry run: counted, let through */
	o = lt_parse(&it, key, sizeof(key));
	CHECK(!strcmp(json_string_value(json_object_get(o, "decision")), "admitted"));
	json_decref(o);
}

int main(void)
{
	RUN(hostile_strings_stay_valid_json);
	RUN(tenant_is_org_then_user_then_key);
	RUN(usage_only_when_known);
	RUN(small_buffer_is_enospc);
	RUN(latency_ms_three_decimals);
	RUN(kernel_decision);
	return lt_t_done();
}
