// SPDX-License-Identifier: MIT
/*
 * test_config.c - config, prefix, duration and rate parsing. Every bad input
 * must give an error that names the file and the field, and leave the output
 * zeroed (nothing half-parsed).
 */
#include <errno.h>
#include <unistd.h>
#include "lt_test.h"
#include "addr.h"
#include "config.h"
#include "overrides.h"
#include "units.h"

static char err[512];

static void default_config_parses(void)
{
	struct lt_agent_config c;

	CHECK_EQ(lt_config_parse(lt_default_config, "<default>", &c, err, sizeof(err)), 0);
	CHECK_EQ(c.nports, 2);
	CHECK_EQ(c.ports[0], 8080);
	CHECK(c.xdp.flags & LT_CFG_LOADED);
	CHECK(!(c.xdp.flags & LT_CFG_DRY_RUN));
	CHECK_EQ(lt_rate_capacity(&c.xdp.dflt.conn), 20);
	CHECK_EQ(c.xdp.dflt.agg_v4, 32);
	CHECK_EQ(c.xdp.dflt.agg_v6, 64);
	CHECK(c.xdp.dflt.id != 0);
	lt_config_free(&c);
}

static void policies_inherit_from_default(void)
{
	struct lt_agent_config c;
	const char *j = "{\"default_policy\":{\"connections\":{\"capacity\":5,\"rate\":\"1/s\"},"
			"\"packets\":{\"capacity\":50,\"rate\":\"10/s\"}},"
			"\"policies\":[{\"prefix\":\"10.0.0.0/8\",\"aggregate_v4\":24},"
			"{\"prefix\":\"2001:db8::/32\",\"packets\":\"unlimited\"}],"
			"\"allowlist\":[\"127.0.0.1\",\"::1\"],\"dry_run\":true}";

	CHECK_EQ(lt_config_parse(j, "t.json", &c, err, sizeof(err)), 0);
	CHECK_EQ(c.npolicies, 2);
	CHECK_EQ(lt_rate_capacity(&c.policies[0].pol.conn), 5);
	CHECK_EQ(c.policies[0].pol.agg_v4, 24);
	CHECK_EQ(c.policies[0].key.prefixlen, 96 + 8);
	CHECK_EQ(c.policies[1].pol.pkt.period_ns, 0);
	CHECK_EQ(lt_rate_capacity(&c.policies[1].pol.conn), 5);
	CHECK(c.policies[0].pol.id != c.xdp.dflt.id);
	CHECK_EQ(c.nallow, 2);
	CHECK_EQ(c.allow[0].prefixlen, 128);
	CHECK(c.xdp.flags & LT_CFG_DRY_RUN);
	lt_config_free(&c);
}

static void policy_id_is_content(void)
{
	struct lt_src_policy a = { .agg_v4 = 32, .agg_v6 = 64 }, b = a;

	CHECK_EQ(lt_policy_id(&a), lt_policy_id(&b));
	b.agg_v4 = 24;
	CHECK(lt_policy_id(&a) != lt_policy_id(&b));
	b = a;
	b.id = 12345; /* the id field itself is not hashed */
	CHECK_EQ(lt_policy_id(&a), lt_policy_id(&b));
}

/* Each bad config: the error must mention this text (file and field). */
static const struct {
	const char *json;
	const char *msg;
} bad[] = {
	{ "{", "t.json:1:" },
	{ "[]", "t.json: /: expected a JSON object" },
	{ "{\"protected_ports\": [0]}", "/protected_ports/0" },
	{ "{\"protected_ports\": [70000]}", "/protected_ports/0" },
	{ "{\"protected_ports\": [\"80\"]}", "/protected_ports/0" },
	{ "{\"protected_ports\": 80}", "/protected_ports" },
	{ "{\"default_policy\": {\"connections\": {\"capacity\": -1, \"rate\": \"1/s\"}}}",
	  "/default_policy/connections/capacity" },
	{ "{\"default_policy\": {\"connections\": {\"capacity\": 1.5, \"rate\": \"1/s\"}}}",
	  "/default_policy/connections/capacity" },
	{ "{\"default_policy\": {\"connections\": {\"capacity\": 9223372036854775807, "
	  "\"rate\": \"1/s\"}}}",
	  "/default_policy/connections/capacity" },
	{ "{\"default_policy\": {\"connections\": {\"capacity\": 1, \"rate\": \"fast\"}}}",
	  "/default_policy/connections/rate" },
	{ "{\"default_policy\": {\"connections\": {\"capacity\": 1, \"rate\": \"10/5\"}}}",
	  "/default_policy/connections/rate" },
	{ "{\"default_policy\": {\"connections\": {\"capacity\": 1, \"rate\": \"5000000000/s\"}}}",
	  "/default_policy/connections/rate" },
	{ "{\"default_policy\": {\"connections\": {\"capacity\": 1, \"rate\": \"1/s\", \"x\": 1}}}",
	  "unknown field \"x\"" },
	{ "{\"default_policy\": {\"aggregate_v4\": 33}}", "/default_policy/aggregate_v4" },
	{ "{\"default_policy\": {\"aggregate_v6\": 0}}", "/default_policy/aggregate_v6" },
	{ "{\"policies\": [{\"prefix\": \"10.0.0.1/8\"}]}", "/policies/0/prefix" },
	{ "{\"policies\": [{\"prefix\": \"10.0.0.0/33\"}]}", "/policies/0/prefix" },
	{ "{\"policies\": [{\"aggregate_v4\": 24}]}", "/policies/0/prefix" },
	{ "{\"policies\": [{\"prefix\": \"nonsense\"}]}", "/policies/0/prefix" },
	{ "{\"allowlist\": [\"1.2.3.4\", 5]}", "/allowlist/1" },
	{ "{\"dry_run\": \"yes\"}", "/dry_run" },
	{ "{\"idle_timeout\": \"soon\"}", "/idle_timeout" },
	{ "{\"max_sources\": 1}", "/max_sources" },
	{ "{\"event_sample_every\": -1}", "/event_sample_every" },
	{ "{\"protected_port\": [80]}", "/protected_port: unknown field" },
	{ "{\"dry_run\": true, \"dry_run\": false}", "duplicate" },
	{ "{\"global\": {\"topic\": \"g\", \"buckets\": [{\"prefix\": \"o/\"}]}}",
	  "/global/topic: global buckets need /kafka/enabled" },
	{ "{\"global\": {\"buckets\": [{\"prefix\": \"o/\", \"mode\": \"share\"}]}}",
	  "/global/buckets/0/mode: expected \"replicate\" or \"lease\"" },
	{ "{\"global\": {\"buckets\": [{\"prefix\": \"k/\", \"mode\": \"lease\"}]}}",
	  "/global/buckets/0/mode: \"lease\" needs a limit" },
	{ "{\"global\": {\"buckets\": [{\"prefix\": \"o/\", \"mode\": \"lease\", "
	  "\"window\": \"500ms\"}]}}",
	  "/global/buckets/0/window" },
	{ "{\"global\": {\"session_timeout\": \"0s\"}}", "/global/session_timeout" },
	{ "{\"global\": {\"topic\": \"g\", \"grants_topic\": \"g\"}}",
	  "/global/grants_topic: must differ" },
	{ "{\"global\": {\"buckets\": [{\"prefix\": \"x/\"}]}}", "/global/buckets/0/prefix" },
	{ "{\"global\": {\"buckets\": [{\"on_stale\": \"share\"}]}}",
	  "/global/buckets/0: prefix is required" },
	{ "{\"global\": {\"buckets\": [{\"prefix\": \"o/\", \"on_stale\": \"open\"}]}}",
	  "/global/buckets/0/on_stale" },
	{ "{\"global\": {\"interval\": \"1ms\"}}", "/global/interval" },
	{ "{\"global\": {\"interval\": \"1s\", \"tau_max\": \"1s\"}}",
	  "/global/tau_max: must be at least twice /global/interval" },
	{ "{\"global\": {\"q\": 5}}", "/global/q: unknown field" },
	{ "{\"kafka\": {\"enabled\": true, \"brokers\": \"k:9092\"}, "
	  "\"global\": {\"topic\": \"leaky.usage.v1\"}}",
	  "/global/topic: must differ" },
};

static void bad_configs_name_the_field(void)
{
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct lt_agent_config c;
		int ret;

		memset(err, 0, sizeof(err));
		ret = lt_config_parse(bad[i].json, "t.json", &c, err, sizeof(err));
		CHECK_EQ(ret, -EINVAL);
		if (!strstr(err, bad[i].msg) || strncmp(err, "t.json", 6)) {
			printf("#   case %u: error '%s' does not mention '%s'\n", i, err,
			       bad[i].msg);
			lt_t_cur_failed = 1;
		}
		/* nothing half-parsed is handed back */
		CHECK(c.policies == NULL && c.allow == NULL && c.nports == 0);
	}
}

static void missing_file_is_clear(void)
{
	struct lt_agent_config c;

	CHECK_EQ(lt_config_load("/nonexistent/leaky.json", &c, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "/nonexistent/leaky.json") != NULL);
}

static void prefixes(void)
{
	struct lt_lpm_key k;
	char buf[80];

	CHECK_EQ(lt_prefix_parse("192.0.2.0/24", &k, err, sizeof(err)), 0);
	CHECK_EQ(k.prefixlen, 120);
	lt_prefix_format(&k, buf, sizeof(buf));
	CHECK(!strcmp(buf, "192.0.2.0/24"));
	CHECK_EQ(lt_prefix_parse("2001:db8::/32", &k, err, sizeof(err)), 0);
	CHECK_EQ(k.prefixlen, 32);
	lt_prefix_format(&k, buf, sizeof(buf));
	CHECK(!strcmp(buf, "2001:db8::/32"));
	CHECK_EQ(lt_prefix_parse("::1", &k, err, sizeof(err)), 0);
	CHECK_EQ(k.prefixlen, 128);
	CHECK_EQ(lt_prefix_parse("0.0.0.0/0", &k, err, sizeof(err)), 0);
	CHECK_EQ(k.prefixlen, 96);
	CHECK_EQ(lt_prefix_parse("192.0.2.1/24", &k, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "host bits") != NULL);
	CHECK_EQ(lt_prefix_parse("192.0.2.0/", &k, err, sizeof(err)), -EINVAL);
	CHECK_EQ(lt_prefix_parse("192.0.2.0/-1", &k, err, sizeof(err)), -EINVAL);
	CHECK_EQ(lt_prefix_parse("2001:db8::/129", &k, err, sizeof(err)), -EINVAL);
	CHECK_EQ(lt_prefix_parse("256.0.0.1", &k, err, sizeof(err)), -EINVAL);
	CHECK_EQ(lt_prefix_parse("", &k, err, sizeof(err)), -EINVAL);
	CHECK_EQ(lt_prefix_parse(
			 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			 "aaaaaaaaaaaaaaaaaaaa",
			 &k, err, sizeof(err)),
		 -EINVAL);
}

/* lt_addr_mask (two 64-bit ANDs) against the obvious byte loop, every length. */
static void addr_mask_every_length(void)
{
	__u32 len;
	int i;

	for (len = 0; len <= 128; len++) {
		__u8 a[16], want[16];

		for (i = 0; i < 16; i++)
			a[i] = want[i] = (__u8)(0xa5 ^ (i * 37));
		for (i = 0; i < 16; i++) {
			__u32 bit = (__u32)i * 8;

			if (len <= bit)
				want[i] = 0;
			else if (len < bit + 8)
				want[i] &= (__u8)(0xff << (8 - (len - bit)));
		}
		lt_addr_mask(a, len);
		if (memcmp(a, want, 16)) {
			printf("#   prefix length %u masked wrong\n", len);
			lt_t_cur_failed = 1;
		}
	}
}

static void durations_and_rates(void)
{
	__u64 ns, tok, per;
	char buf[32];

	CHECK_EQ(lt_duration_parse("250ms", &ns), 0);
	CHECK_EQ(ns, 250000000ULL);
	CHECK_EQ(lt_duration_parse("2d", &ns), 0);
	CHECK_EQ(ns, 2 * 86400 * LT_NS_PER_SEC);
	CHECK_EQ(lt_duration_parse("30", &ns), 0);
	CHECK_EQ(ns, 30 * LT_NS_PER_SEC);
	CHECK_EQ(lt_duration_parse("-3s", &ns), -EINVAL);
	CHECK_EQ(lt_duration_parse("3 s", &ns), -EINVAL);
	CHECK_EQ(lt_duration_parse("99999999999999999999s", &ns), -EINVAL);
	CHECK_EQ(lt_duration_parse("999999999999d", &ns), -ERANGE);
	CHECK_EQ(lt_bytes_parse("256MiB", &ns), 0);
	CHECK_EQ(ns, 256ULL << 20);
	CHECK_EQ(lt_bytes_parse("100MB", &ns), 0);
	CHECK_EQ(ns, 100000000ULL);
	CHECK_EQ(lt_bytes_parse("4096", &ns), 0);
	CHECK_EQ(ns, 4096);
	CHECK_EQ(lt_bytes_parse("1B", &ns), 0);
	CHECK_EQ(ns, 1);
	CHECK_EQ(lt_bytes_parse("1 MiB", &ns), -EINVAL);
	CHECK_EQ(lt_bytes_parse("1mib", &ns), -EINVAL);
	CHECK_EQ(lt_bytes_parse("-1MiB", &ns), -EINVAL);
	CHECK_EQ(lt_bytes_parse("20000000TiB", &ns), -ERANGE);
	CHECK_EQ(lt_rate_parse("10/s", &tok, &per), 0);
	CHECK_EQ(tok, 10);
	CHECK_EQ(per, LT_NS_PER_SEC);
	CHECK_EQ(lt_rate_parse("7/250ms", &tok, &per), 0);
	CHECK_EQ(per, 250000000ULL);
	CHECK_EQ(lt_rate_parse("1/d", &tok, &per), 0);
	CHECK_EQ(per, 86400 * LT_NS_PER_SEC);
	CHECK_EQ(lt_rate_parse("0/s", &tok, &per), -EINVAL);
	CHECK_EQ(lt_rate_parse("10", &tok, &per), -EINVAL);
	CHECK_EQ(lt_rate_parse("10/", &tok, &per), -EINVAL);
	CHECK_EQ(lt_rate_parse("10/0s", &tok, &per), -EINVAL);
	CHECK_EQ(lt_rate_parse("10/fortnight", &tok, &per), -EINVAL);
	lt_rate_format(600, 60 * LT_NS_PER_SEC, buf, sizeof(buf));
	CHECK(!strcmp(buf, "10/s"));
	lt_rate_format(7, 250000000ULL, buf, sizeof(buf));
	CHECK(!strcmp(buf, "28/s"));
	lt_rate_format(1, 100000000ULL, buf, sizeof(buf));
	CHECK(!strcmp(buf, "10/s"));
	lt_rate_format(1, 86400 * LT_NS_PER_SEC, buf, sizeof(buf));
	CHECK(!strcmp(buf, "1/d"));
	lt_rate_format(3, 7 * LT_NS_PER_SEC, buf, sizeof(buf));
	CHECK(!strcmp(buf, "3/7s"));
}

static void rate_specs(void)
{
	struct lt_rate r;

	CHECK_EQ(lt_rate_spec_parse("20:10/s", &r, err, sizeof(err)), 0);
	CHECK_EQ(lt_rate_capacity(&r), 20);
	CHECK_EQ(lt_rate_spec_parse("unlimited", &r, err, sizeof(err)), 0);
	CHECK_EQ(r.period_ns, 0);
	CHECK_EQ(lt_rate_spec_parse("-1:10/s", &r, err, sizeof(err)), -EINVAL);
	CHECK_EQ(lt_rate_spec_parse("20", &r, err, sizeof(err)), -EINVAL);
	CHECK_EQ(lt_rate_spec_parse("20:fast", &r, err, sizeof(err)), -EINVAL);
	CHECK_EQ(lt_rate_spec_parse("0:10/s", &r, err, sizeof(err)), -EINVAL);
}

/* Runtime edits: saved atomically, loaded back equal, merged over a config. */
static void overrides_round_trip_and_merge(void)
{
	char dir[] = "/tmp/lt-ov-XXXXXX", path[64];
	struct lt_overrides o, back;
	struct lt_agent_config c;
	struct lt_src_policy pol = { .agg_v4 = 24, .agg_v6 = 64 }, allow = lt_allow_policy();
	struct lt_lpm_key a, b, gone;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	CHECK_EQ(lt_overrides_load(dir, &o, err, sizeof(err)), 0); /* no file yet */
	CHECK_EQ(o.nset + o.nremoved, 0);
	CHECK_EQ(lt_rate_spec_parse("5:1/m", &pol.conn, err, sizeof(err)), 0);
	CHECK_EQ(lt_rate_spec_parse("unlimited", &pol.pkt, err, sizeof(err)), 0);
	pol.id = lt_policy_id(&pol);
	lt_prefix_parse("10.0.0.0/8", &a, err, sizeof(err));
	lt_prefix_parse("2001:db8::/32", &b, err, sizeof(err));
	lt_prefix_parse("198.51.100.0/24", &gone, err, sizeof(err));
	CHECK_EQ(lt_overrides_put(&o, &a, &pol), 0);
	CHECK_EQ(lt_overrides_put(&o, &b, &allow), 0);
	CHECK_EQ(lt_overrides_remove(&o, &gone), 0);
	o.dry_run = 1;
	CHECK_EQ(lt_overrides_save(dir, &o, err, sizeof(err)), 0);
	CHECK_EQ(lt_overrides_load(dir, &back, err, sizeof(err)), 0);
	CHECK_EQ(back.nset, 2);
	CHECK_EQ(back.nremoved, 1);
	CHECK_EQ(back.dry_run, 1);
	CHECK(!memcmp(&back.set[0].pol, &pol, sizeof(pol)));
	CHECK(back.set[1].pol.flags & LT_POL_ALLOW);

	CHECK_EQ(lt_config_parse("{\"policies\":[{\"prefix\":\"198.51.100.0/24\"},"
				 "{\"prefix\":\"10.0.0.0/8\",\"aggregate_v4\":8}]}",
				 "t.json", &c, err, sizeof(err)),
		 0);
	CHECK_EQ(lt_overrides_merge(&back, &c), 0);
	CHECK_EQ(c.npolicies, 1); /* 198.51.100.0/24 removed; 10/8 replaced */
	CHECK_EQ(c.policies[0].pol.agg_v4, 24);
	CHECK_EQ(c.nallow, 1);
	CHECK(c.xdp.flags & LT_CFG_DRY_RUN);
	lt_config_free(&c);
	lt_overrides_free(&o);
	lt_overrides_free(&back);

	/* a corrupt file is an error that names it, not a silent reset */
	snprintf(path, sizeof(path), "%s/overrides.json", dir);
	f = fopen(path, "w");
	if (f) {
		fputs("{\"set\": [{\"prefix\": \"not-an-ip\"}]}", f);
		fclose(f);
	}
	CHECK_EQ(lt_overrides_load(dir, &o, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "overrides.json") != NULL);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	RUN(default_config_parses);
	RUN(policies_inherit_from_default);
	RUN(policy_id_is_content);
	RUN(bad_configs_name_the_field);
	RUN(missing_file_is_clear);
	RUN(prefixes);
	RUN(addr_mask_every_length);
	RUN(durations_and_rates);
	RUN(rate_specs);
	RUN(overrides_round_trip_and_merge);
	return lt_t_done();
}
