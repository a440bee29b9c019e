// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "addr.h"
#include "config.h"
#include "config_cp.h"
#include "units.h"

/* Error context: the file name and the JSON pointer being parsed. */
struct lt_cfg_ctx {
	const char *name;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int lt_cfg_fail(struct lt_cfg_ctx *x, const char *ptr,
							     const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(x->err, x->errlen, "%s: %s: %s", x->name, ptr, msg);
	return -EINVAL;
}

__u32 lt_policy_id(const struct lt_src_policy *p)
{
	struct lt_src_policy c = *p;
	const unsigned char *b = (const unsigned char *)&c;
	__u32 h = 2166136261u;
	size_t i;

	c.id = 0;
	for (i = 0; i < sizeof(c); i++)
		h = (h ^ b[i]) * 16777619u;
	return h ? h : 1;
}

int lt_rate_spec_parse(const char *spec, struct lt_rate *r, char *err, size_t errlen)
{
	unsigned long long cap;
	__u64 tok, per;
	char *end;
	int ret;

	memset(r, 0, sizeof(*r));
	if (!strcmp(spec, "unlimited"))
		return 0;
	errno = 0;
	cap = strtoull(spec, &end, 10);
	if (errno || end == spec || *end != ':' || spec[0] == '-') {
		snprintf(err, errlen, "'%s' is not CAPACITY:RATE (e.g. 20:10/s) or 'unlimited'",
			 spec);
		return -EINVAL;
	}
	if (lt_rate_parse(end + 1, &tok, &per)) {
		snprintf(err, errlen, "'%s' is not a rate like 10/s, 600/m, 1/d or 7/250ms",
			 end + 1);
		return -EINVAL;
	}
	ret = lt_rate_init(r, cap, tok, per);
	if (ret)
		snprintf(err, errlen,
			 "capacity %llu at %s is out of range (capacity 1..2^40, rate "
			 "1/10y..2e9/s)",
			 cap, end + 1);
	return ret;
}

/* {"capacity": N, "rate": "10/s"} (config_cp.c parses it) or "unlimited" */
static int lt_cfg_rate(struct lt_cfg_ctx *x, json_t *v, const char *ptr, struct lt_rate *r)
{
	__u64 cap, tok, per;
	char msg[256];

	memset(r, 0, sizeof(*r));
	if (json_is_string(v) && !strcmp(json_string_value(v), "unlimited"))
		return 0;
	if (lt_cp_limit_parse(v, ptr, &cap, &tok, &per, msg, sizeof(msg))) {
		snprintf(x->err, x->errlen, "%s: %s", x->name, msg);
		return -EINVAL;
	}
	return lt_rate_init(r, cap, tok, per); /* validated by the parse */
}

static int lt_cfg_uint(struct lt_cfg_ctx *x, json_t *v, const char *ptr, long long lo, long long hi,
		       long long *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return lt_cfg_fail(x, ptr, "expected an integer %lld..%lld", lo, hi);
	*out = json_integer_value(v);
	return 0;
}

/*
 * A policy object; fields it leaves out are inherited from *base. The config
 * file spells its fields snake_case, the REST API camelCase (api = 1), as
 * every other field of each.
 */
static int lt_cfg_policy(struct lt_cfg_ctx *x, json_t *v, const char *ptr,
			 const struct lt_src_policy *base, struct lt_src_policy *pol, int is_prefix,
			 int api)
{
	const char *key;
	json_t *val;
	char p[128];
	long long n;
	int ret;

	*pol = *base;
	if (!json_is_object(v))
		return lt_cfg_fail(x, ptr, "expected an object");
	json_object_foreach(v, key, val) {
		snprintf(p, sizeof(p), "%s/%s", ptr, key);
		if (!strcmp(key, "connections")) {
			ret = lt_cfg_rate(x, val, p, &pol->conn);
		} else if (!strcmp(key, "packets")) {
			ret = lt_cfg_rate(x, val, p, &pol->pkt);
		} else if (!strcmp(key, api ? "aggregateV4" : "aggregate_v4")) {
			ret = lt_cfg_uint(x, val, p, 1, 32, &n);
			pol->agg_v4 = (__u8)n;
		} else if (!strcmp(key, api ? "aggregateV6" : "aggregate_v6")) {
			ret = lt_cfg_uint(x, val, p, 1, 128, &n);
			pol->agg_v6 = (__u8)n;
		} else if (is_prefix && !strcmp(key, "prefix")) {
			ret = 0;
		} else {
			ret = lt_cfg_fail(x, p, "unknown field");
		}
		if (ret)
			return ret;
	}
	pol->id = lt_policy_id(pol);
	return 0;
}

static int lt_cfg_prefix(struct lt_cfg_ctx *x, json_t *v, const char *ptr, struct lt_lpm_key *k)
{
	char msg[160];

	if (!json_is_string(v))
		return lt_cfg_fail(x, ptr, "expected a prefix string like \"10.0.0.0/8\"");
	if (lt_prefix_parse(json_string_value(v), k, msg, sizeof(msg)))
		return lt_cfg_fail(x, ptr, "%s", msg);
	return 0;
}

/* Kafka names: [A-Za-z0-9._-], at most 249 bytes (Kafka's own rule). */
static int lt_cfg_topic_ok(const char *t)
{
	size_t n = strlen(t);

	return n && n < 128 && strcmp(t, ".") && strcmp(t, "..") &&
	       strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/*
 * "kafka": {"enabled", "brokers", "topic", "config_topic", "source", "outbox_max_events",
 * "message_timeout"}
 */
static int lt_cfg_kafka(struct lt_cfg_ctx *x, json_t *v, struct lt_kafka_config *k)
{
	const char *key, *s;
	json_t *val;
	char p[128];
	long long n;
	int ret;

	if (!json_is_object(v))
		return lt_cfg_fail(x, "/kafka", "expected an object");
	json_object_foreach(v, key, val) {
		snprintf(p, sizeof(p), "/kafka/%s", key);
		s = json_is_string(val) ? json_string_value(val) : NULL;
		ret = 0;
		if (!strcmp(key, "enabled")) {
			if (!json_is_boolean(val))
				return lt_cfg_fail(x, p, "expected true or false");
			k->enabled = json_is_true(val);
		} else if (!strcmp(key, "brokers")) {
			if (!s || !s[0] || strlen(s) >= sizeof(k->brokers) || strpbrk(s, " \t\r\n"))
				return lt_cfg_fail(
					x, p, "expected \"host:port[,host:port...]\" (no spaces)");
			snprintf(k->brokers, sizeof(k->brokers), "%s", s);
		} else if (!strcmp(key, "topic")) {
			if (!s || !lt_cfg_topic_ok(s))
				return lt_cfg_fail(x, p,
						   "expected a topic name of [A-Za-z0-9._-], "
						   "1..127 bytes");
			snprintf(k->topic, sizeof(k->topic), "%s", s);
		} else if (!strcmp(key, "config_topic")) {
			/* "" or null: this host neither publishes nor applies config changes */
			if (!json_is_null(val) && (!s || (s[0] && !lt_cfg_topic_ok(s))))
				return lt_cfg_fail(x, p,
						   "expected a topic name of [A-Za-z0-9._-], "
						   "1..127 bytes, or \"\" (no config sync)");
			snprintf(k->config_topic, sizeof(k->config_topic), "%s", s ? s : "");
		} else if (!strcmp(key, "source")) {
			if (!s || strlen(s) >= sizeof(k->source) ||
			    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				      "0123456789._-:/") != strlen(s))
				return lt_cfg_fail(x, p,
						   "expected a host name of [A-Za-z0-9._-:/], "
						   "\"\" = this host's");
			snprintf(k->source, sizeof(k->source), "%s", s);
		} else if (!strcmp(key, "outbox_max_events")) {
			ret = lt_cfg_uint(x, val, p, 1, 1LL << 32, &n);
			k->outbox_max = (__u64)n;
		} else if (!strcmp(key, "message_timeout")) {
			if (!s || lt_duration_parse(s, &k->message_timeout_ns) ||
			    k->message_timeout_ns < 100 * 1000000ULL ||
			    k->message_timeout_ns > 3600 * LT_NS_PER_SEC)
				return lt_cfg_fail(x, p,
						   "expected a duration from \"100ms\" to \"1h\"");
		} else {
			return lt_cfg_fail(x, p, "unknown field");
		}
		if (ret)
			return ret;
	}
	if (k->enabled && !k->brokers[0])
		return lt_cfg_fail(x, "/kafka/brokers", "required when /kafka/enabled is true");
	if (!strcmp(k->config_topic, k->topic))
		return lt_cfg_fail(x, "/kafka/config_topic",
				   "must differ from /kafka/topic (usage events)");
	return 0;
}

/* "analytics": {"minutes": "2d", "hours": "90d", "days": "400d"}: each longer than the last */
static int lt_cfg_analytics(struct lt_cfg_ctx *x, json_t *v, struct lt_analytics_config *a)
{
	static const char *const names[] = { "minutes", "hours", "days" };
	__u64 *f[] = { &a->minutes_ns, &a->hours_ns, &a->days_ns }, min[] = { 60, 3600, 86400 };
	const char *key;
	json_t *val;
	char p[128];
	unsigned i;

	if (!json_is_object(v))
		return lt_cfg_fail(x, "/analytics", "expected an object");
	json_object_foreach(v, key, val) {
		snprintf(p, sizeof(p), "/analytics/%s", key);
		for (i = 0; i < 3 && strcmp(key, names[i]); i++)
			;
		if (i == 3)
			return lt_cfg_fail(x, p, "unknown field");
		if (!json_is_string(val) || lt_duration_parse(json_string_value(val), f[i]) ||
		    *f[i] < min[i] * LT_NS_PER_SEC || *f[i] > 100ULL * 366 * 86400 * LT_NS_PER_SEC)
			return lt_cfg_fail(x, p, "expected a duration from %llus to 100 years",
					   (unsigned long long)min[i]);
	}
	if (a->hours_ns < a->minutes_ns || a->days_ns < a->hours_ns)
		return lt_cfg_fail(
			x, "/analytics",
			"each resolution must be kept at least as long as the finer one");
	return 0;
}

/* d: a duration string from lo_ns to hi_ns */
static int lt_cfg_dur(struct lt_cfg_ctx *x, json_t *v, const char *p, __u64 lo_ns, __u64 hi_ns,
		      const char *range, __u64 *out)
{
	if (!json_is_string(v) || lt_duration_parse(json_string_value(v), out) || *out < lo_ns ||
	    *out > hi_ns)
		return lt_cfg_fail(x, p, "expected a duration from %s", range);
	return 0;
}

/*
 * "global": {"topic", "interval", "tau_max", "host_ttl", "grants_topic", "session_timeout",
 *            "buckets": [{"prefix", "mode", "on_stale", "window"}]}
 */
static int lt_cfg_global(struct lt_cfg_ctx *x, json_t *v, struct lt_global_config *g)
{
	static const char *const stale[] = { "share", "last", "closed" };
	const char *key, *k2, *s;
	json_t *val, *it, *f;
	char p[160];
	size_t i;
	int ret, j;

	if (!json_is_object(v))
		return lt_cfg_fail(x, "/global", "expected an object");
	json_object_foreach(v, key, val) {
		snprintf(p, sizeof(p), "/global/%s", key);
		s = json_is_string(val) ? json_string_value(val) : NULL;
		ret = 0;
		if (!strcmp(key, "topic")) {
			if (!s || (s[0] && !lt_cfg_topic_ok(s)))
				return lt_cfg_fail(x, p,
						   "expected a topic name of [A-Za-z0-9._-], "
						   "1..127 bytes, or \"\" (no global buckets)");
			snprintf(g->topic, sizeof(g->topic), "%s", s);
		} else if (!strcmp(key, "interval")) {
			ret = lt_cfg_dur(x, val, p, 10 * 1000000ULL, 60 * LT_NS_PER_SEC,
					 "\"10ms\" to \"60s\"", &g->interval_ns);
		} else if (!strcmp(key, "tau_max")) {
			ret = lt_cfg_dur(x, val, p, 20 * 1000000ULL, 3600 * LT_NS_PER_SEC,
					 "\"20ms\" to \"1h\"", &g->tau_max_ns);
		} else if (!strcmp(key, "host_ttl")) {
			ret = lt_cfg_dur(x, val, p, LT_NS_PER_SEC, 86400 * LT_NS_PER_SEC,
					 "\"1s\" to \"1d\"", &g->host_ttl_ns);
		} else if (!strcmp(key, "grants_topic")) {
			if (!s || (s[0] && !lt_cfg_topic_ok(s)))
				return lt_cfg_fail(
					x, p,
					"expected a topic name of [A-Za-z0-9._-], "
					"1..127 bytes, or \"\" (the topic + \".grants\")");
			snprintf(g->grants_topic, sizeof(g->grants_topic), "%s", s);
		} else if (!strcmp(key, "session_timeout")) {
			ret = lt_cfg_dur(x, val, p, LT_NS_PER_SEC, 300 * LT_NS_PER_SEC,
					 "\"1s\" to \"5m\"", &g->session_ns);
		} else if (!strcmp(key, "buckets")) {
			if (!json_is_array(val) || json_array_size(val) > LT_GLOBAL_RULES)
				return lt_cfg_fail(x, p, "expected an array of at most %d rules",
						   LT_GLOBAL_RULES);
			json_array_foreach(val, i, it) {
				struct lt_global_rule *r = &g->rules[i];

				snprintf(p, sizeof(p), "/global/buckets/%zu", i);
				if (!json_is_object(it))
					return lt_cfg_fail(x, p, "expected an object");
				r->mode = LT_GM_REPLICATE;
				r->on_stale = LT_STALE_SHARE;
				r->window_ns = 60 * LT_NS_PER_SEC;
				json_object_foreach(it, k2, f) {
					snprintf(p, sizeof(p), "/global/buckets/%zu/%s", i, k2);
					s = json_is_string(f) ? json_string_value(f) : NULL;
					if (!strcmp(k2, "prefix")) {
						if (!s || !s[0] || strlen(s) >= sizeof(r->prefix) ||
						    !strchr("uokrp", s[0]) || s[1] != '/')
							return lt_cfg_fail(
								x, p,
								"expected a bucket key prefix "
								"(\"o/openai/\", \"p/\" ...)");
						snprintf(r->prefix, sizeof(r->prefix), "%s", s);
					} else if (!strcmp(k2, "mode")) {
						if (!s ||
						    (strcmp(s, "replicate") && strcmp(s, "lease")))
							return lt_cfg_fail(
								x, p,
								"expected \"replicate\" or "
								"\"lease\"");
						r->mode = strcmp(s, "lease") ? LT_GM_REPLICATE :
									       LT_GM_LEASE;
					} else if (!strcmp(k2, "window")) {
						ret = lt_cfg_dur(x, f, p, LT_NS_PER_SEC,
								 3600 * LT_NS_PER_SEC,
								 "\"1s\" to \"1h\"", &r->window_ns);
						if (ret)
							return ret;
					} else if (!strcmp(k2, "on_stale")) {
						for (j = 0; j < 3 && (!s || strcmp(s, stale[j]));
						     j++)
							;
						if (j == 3)
							return lt_cfg_fail(
								x, p,
								"expected \"share\", "
								"\"last\" or \"closed\"");
						r->on_stale = j;
					} else {
						return lt_cfg_fail(x, p, "unknown field");
					}
				}
				if (!r->prefix[0]) {
					snprintf(p, sizeof(p), "/global/buckets/%zu", i);
					return lt_cfg_fail(x, p, "prefix is required");
				}
				/* L = R * W comes from the limit every host resolves for the key */
				if (r->mode == LT_GM_LEASE && r->prefix[0] == 'k') {
					snprintf(p, sizeof(p), "/global/buckets/%zu/mode", i);
					return lt_cfg_fail(
						x, p,
						"\"lease\" needs a limit that every host "
						"resolves from the key (org, user, provider); "
						"an API key's own limit is not: use "
						"\"replicate\"");
				}
				g->nrules = (int)i + 1;
			}
		} else {
			return lt_cfg_fail(x, p, "unknown field");
		}
		if (ret)
			return ret;
	}
	if (g->tau_max_ns < 2 * g->interval_ns)
		return lt_cfg_fail(x, "/global/tau_max", "must be at least twice /global/interval");
	if (!g->grants_topic[0] && g->topic[0]) {
		if (strlen(g->topic) + 7 >= sizeof(g->grants_topic))
			return lt_cfg_fail(
				x, "/global/topic",
				"at most 120 bytes when /global/grants_topic is not set");
		snprintf(g->grants_topic, sizeof(g->grants_topic), "%s.grants", g->topic);
	}
	if (g->topic[0] && !strcmp(g->grants_topic, g->topic))
		return lt_cfg_fail(x, "/global/grants_topic", "must differ from /global/topic");
	return 0;
}

static int lt_cfg_root(struct lt_cfg_ctx *x, json_t *root, struct lt_agent_config *c)
{
	static const struct lt_src_policy builtin = { .agg_v4 = 32, .agg_v6 = 64 };
	const char *key;
	json_t *val, *it;
	char p[128];
	long long n;
	size_t i;
	int ret;

	if (!json_is_object(root))
		return lt_cfg_fail(x, "/", "expected a JSON object");
	c->xdp.dflt = builtin;
	c->xdp.dflt.id = lt_policy_id(&c->xdp.dflt);
	c->xdp.sample_mask = 63;
	c->max_sources = LT_MAX_SOURCES_DEFAULT;
	c->idle_timeout_ns = 60 * LT_NS_PER_SEC;
	snprintf(c->gateway_group, sizeof(c->gateway_group), "leaky");
	snprintf(c->kafka.topic, sizeof(c->kafka.topic), "leaky.usage.v1");
	snprintf(c->kafka.config_topic, sizeof(c->kafka.config_topic), "leaky.config.v1");
	c->kafka.outbox_max = 1000000;
	c->kafka.message_timeout_ns = 30 * LT_NS_PER_SEC;
	c->global.interval_ns = 100 * 1000000ULL;
	c->global.tau_max_ns = LT_NS_PER_SEC;
	c->global.host_ttl_ns = 30 * LT_NS_PER_SEC;
	c->global.session_ns = 6 * LT_NS_PER_SEC;
	c->analytics.minutes_ns = 2 * 86400 * LT_NS_PER_SEC;
	c->analytics.hours_ns = 90 * 86400 * LT_NS_PER_SEC;
	c->analytics.days_ns = 400 * 86400 * LT_NS_PER_SEC;

	/* default_policy first: policies inherit from it */
	val = json_object_get(root, "default_policy");
	if (val) {
		ret = lt_cfg_policy(x, val, "/default_policy", &builtin, &c->xdp.dflt, 0, 0);
		if (ret)
			return ret;
	}
	lt_cp_defaults(&c->cp);
	{
		char msg[400];

		ret = lt_cp_parse(root, &c->cp, msg, sizeof(msg));
		if (ret) {
			snprintf(x->err, x->errlen, "%s: %s", x->name, msg);
			return ret;
		}
	}
	json_object_foreach(root, key, val) {
		snprintf(p, sizeof(p), "/%s", key);
		if (!strcmp(key, "default_policy") || !strcmp(key, "api") || !strcmp(key, "jwt") ||
		    !strcmp(key, "token"))
			continue;
		if (!strcmp(key, "kafka")) {
			ret = lt_cfg_kafka(x, val, &c->kafka);
			if (ret)
				return ret;
		} else if (!strcmp(key, "global")) {
			ret = lt_cfg_global(x, val, &c->global);
			if (ret)
				return ret;
		} else if (!strcmp(key, "analytics")) {
			ret = lt_cfg_analytics(x, val, &c->analytics);
			if (ret)
				return ret;
		} else if (!strcmp(key, "protected_ports")) {
			if (!json_is_array(val) || json_array_size(val) > LT_MAX_PORTS)
				return lt_cfg_fail(x, p, "expected an array of at most %d ports",
						   LT_MAX_PORTS);
			json_array_foreach(val, i, it) {
				snprintf(p, sizeof(p), "/protected_ports/%zu", i);
				ret = lt_cfg_uint(x, it, p, 1, 65535, &n);
				if (ret)
					return ret;
				c->ports[c->nports++] = (__u16)n;
			}
		} else if (!strcmp(key, "policies")) {
			if (!json_is_array(val) || json_array_size(val) > LT_MAX_PREFIXES)
				return lt_cfg_fail(x, p, "expected an array of policies");
			c->policies = calloc(json_array_size(val) + 1, sizeof(*c->policies));
			if (!c->policies)
				return -ENOMEM;
			json_array_foreach(val, i, it) {
				struct lt_prefix_policy *pp = &c->policies[c->npolicies];

				snprintf(p, sizeof(p), "/policies/%zu", i);
				ret = lt_cfg_policy(x, it, p, &c->xdp.dflt, &pp->pol, 1, 0);
				if (ret)
					return ret;
				snprintf(p, sizeof(p), "/policies/%zu/prefix", i);
				ret = lt_cfg_prefix(x, json_object_get(it, "prefix"), p, &pp->key);
				if (ret)
					return ret;
				c->npolicies++;
			}
		} else if (!strcmp(key, "allowlist")) {
			if (!json_is_array(val) || json_array_size(val) > LT_MAX_PREFIXES)
				return lt_cfg_fail(x, p, "expected an array of prefixes");
			c->allow = calloc(json_array_size(val) + 1, sizeof(*c->allow));
			if (!c->allow)
				return -ENOMEM;
			json_array_foreach(val, i, it) {
				snprintf(p, sizeof(p), "/allowlist/%zu", i);
				ret = lt_cfg_prefix(x, it, p, &c->allow[c->nallow]);
				if (ret)
					return ret;
				c->nallow++;
			}
		} else if (!strcmp(key, "dry_run")) {
			if (!json_is_boolean(val))
				return lt_cfg_fail(x, p, "expected true or false");
			if (json_is_true(val))
				c->xdp.flags |= LT_CFG_DRY_RUN;
		} else if (!strcmp(key, "event_sample_every")) {
			/* a power of two: the sampler is a mask, no division per packet */
			ret = lt_cfg_uint(x, val, p, 0, 1 << 30, &n);
			if (!ret && (n & (n - 1)))
				ret = lt_cfg_fail(x, p, "expected 0 (off) or a power of two");
			if (ret)
				return ret;
			c->xdp.sample_mask = n ? (__u32)n - 1 : ~0U;
		} else if (!strcmp(key, "max_sources")) {
			ret = lt_cfg_uint(x, val, p, 16, 1 << 24, &n);
			if (!ret && (n & (n - 1)))
				ret = lt_cfg_fail(x, p, "expected a power of two (16 .. 16777216)");
			if (ret)
				return ret;
			c->max_sources = (__u32)n;
		} else if (!strcmp(key, "idle_timeout")) {
			if (!json_is_string(val) ||
			    lt_duration_parse(json_string_value(val), &c->idle_timeout_ns) ||
			    !c->idle_timeout_ns)
				return lt_cfg_fail(x, p,
						   "expected a duration like \"60s\" or \"5m\"");
		} else if (!strcmp(key, "gateway_group")) {
			const char *g = json_is_string(val) ? json_string_value(val) : "";

			/* POSIX portable user/group names, as useradd takes them */
			if (!g[0] || strlen(g) > 32 ||
			    strspn(g, "abcdefghijklmnopqrstuvwxyz"
				      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				      "0123456789_.-") != strlen(g) ||
			    g[0] == '-')
				return lt_cfg_fail(x, p, "expected a group name like \"leaky\"");
			snprintf(c->gateway_group, sizeof(c->gateway_group), "%s", g);
			c->gateway_group_set = 1;
		} else {
			return lt_cfg_fail(x, p, "unknown field");
		}
	}
	/* One trie holds both: a prefix cannot be allowlisted and a policy. */
	for (i = 0; i < c->nallow; i++) {
		__u32 j;

		for (j = 0; j < c->npolicies; j++) {
			if (memcmp(&c->allow[i], &c->policies[j].key, sizeof(c->allow[i])))
				continue;
			snprintf(p, sizeof(p), "/allowlist/%zu", i);
			return lt_cfg_fail(x, p, "prefix is also /policies/%u: keep one", j);
		}
	}
	if (c->global.topic[0] && c->global.nrules && !c->kafka.enabled)
		return lt_cfg_fail(x, "/global/topic", "global buckets need /kafka/enabled");
	if (c->global.topic[0] && (!strcmp(c->global.topic, c->kafka.topic) ||
				   !strcmp(c->global.topic, c->kafka.config_topic)))
		return lt_cfg_fail(x, "/global/topic",
				   "must differ from /kafka/topic and /kafka/config_topic");
	c->xdp.flags |= LT_CFG_LOADED;
	return 0;
}

void lt_config_free(struct lt_agent_config *c)
{
	free(c->policies);
	free(c->allow);
	memset(c, 0, sizeof(*c));
}

int lt_config_parse(const char *json, const char *name, struct lt_agent_config *c, char *err,
		    size_t errlen)
{
	struct lt_cfg_ctx x = { name, err, errlen };
	json_error_t jerr;
	json_t *root;
	int ret;

	memset(c, 0, sizeof(*c));
	root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s:%d:%d: %s", name, jerr.line, jerr.column, jerr.text);
		return -EINVAL;
	}
	ret = lt_cfg_root(&x, root, c);
	json_decref(root);
	if (ret)
		lt_config_free(c);
	return ret;
}

int lt_config_load(const char *path, struct lt_agent_config *c, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int ret;

	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	/* 1 MiB is far beyond any sane config; refuse rather than slurp. */
	buf = malloc(1 << 20);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	len = fread(buf, 1, (1 << 20) - 1, f);
	if (!feof(f)) {
		snprintf(err, errlen, "%s: larger than 1 MiB", path);
		ret = -EFBIG;
		goto cleanup;
	}
	buf[len] = '\0';
	ret = lt_config_parse(buf, path, c, err, errlen);
cleanup:
	free(buf);
	fclose(f);
	return ret;
}

struct lt_src_policy lt_allow_policy(void)
{
	struct lt_src_policy p = { .agg_v4 = 32, .agg_v6 = 128, .flags = LT_POL_ALLOW };

	p.id = lt_policy_id(&p);
	return p;
}

void lt_rate_spec_format(const struct lt_rate *r, char *buf, size_t len)
{
	char rate[48];

	if (!r->period_ns) {
		snprintf(buf, len, "unlimited");
		return;
	}
	lt_rate_format(r->units_per_period >> r->unit_shift, r->period_ns, rate, sizeof(rate));
	snprintf(buf, len, "%llu:%s", (unsigned long long)lt_rate_capacity(r), rate);
}

int lt_policy_from_json(json_t *v, const char *ptr, const struct lt_src_policy *base,
			struct lt_src_policy *out, char *err, size_t errlen)
{
	struct lt_cfg_ctx x = { "request", err, errlen };

	return lt_cfg_policy(&x, v, ptr, base, out, 0, 1);
}
