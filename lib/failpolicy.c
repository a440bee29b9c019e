// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "failpolicy.h"

void lt_fail_policy_init(struct lt_fail_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->dflt = LT_FAIL_CLOSED;
}

int lt_fail_mode_parse(const char *s, enum lt_fail_mode *out)
{
	if (s && !strcmp(s, "closed"))
		*out = LT_FAIL_CLOSED;
	else if (s && !strcmp(s, "open"))
		*out = LT_FAIL_OPEN;
	else
		return -EINVAL;
	return 0;
}

/* A tier name as the agent spells them: printable, no quote or backslash (a metric label). */
static int lt_fail_tier_ok(const char *t)
{
	size_t i;

	for (i = 0; t[i]; i++)
		if (i >= LT_FAIL_TIER_LEN - 1 || t[i] <= ' ' || t[i] > '~' || t[i] == '"' ||
		    t[i] == '\\')
			return 0;
	return i > 0;
}

int lt_fail_policy_set(struct lt_fail_policy *p, const char *tier, const char *mode, char *err,
		       size_t errlen)
{
	enum lt_fail_mode m;
	int i;

	if (lt_fail_mode_parse(mode, &m)) {
		snprintf(err, errlen,
			 "on_maps_missing: expected \"closed\" or \"open\", not \"%.32s\"",
			 mode ? mode : "(null)");
		return -EINVAL;
	}
	if (!tier || !strcmp(tier, "*")) {
		p->dflt = m;
		return 0;
	}
	if (!lt_fail_tier_ok(tier)) {
		snprintf(err, errlen, "on_maps_missing: bad tier name \"%.32s\"", tier);
		return -EINVAL;
	}
	for (i = 0; i < p->n; i++)
		if (!strcmp(p->tier[i], tier))
			break;
	if (i == LT_FAIL_MAX_TIERS) {
		snprintf(err, errlen, "on_maps_missing: at most %d tiers", LT_FAIL_MAX_TIERS);
		return -ENOSPC;
	}
	if (i == p->n) {
		snprintf(p->tier[i], sizeof(p->tier[i]), "%s", tier);
		p->n++;
	}
	p->mode[i] = m;
	return 0;
}

enum lt_fail_mode lt_fail_decide(struct lt_fail_policy *p, const char *tier)
{
	enum lt_fail_mode m = p->dflt;
	int i, idx = LT_FAIL_MAX_TIERS;

	for (i = 0; tier && i < p->n; i++)
		if (!strcmp(p->tier[i], tier)) {
			m = p->mode[i];
			idx = i;
			break;
		}
	__atomic_fetch_add(m == LT_FAIL_OPEN ? &p->opened[idx] : &p->closed[idx], 1,
			   __ATOMIC_RELAXED);
	return m;
}

void lt_fail_policy_metrics(const struct lt_fail_policy *p, struct lt_mbuf *b)
{
	static const char *const names[2] = { "lt_gateway_fail_closed_total",
					      "lt_gateway_fail_open_total" };
	static const char *const help[2] = {
		"Requests answered 503 because the shared maps were unusable (on_maps_missing: "
		"closed).",
		"Requests let through unmetered because the shared maps were unusable "
		"(on_maps_missing: open).",
	};
	int k, i;

	for (k = 0; k < 2; k++) {
		const __u64 *c = k ? p->opened : p->closed;

		lt_mbuf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", names[k], help[k], names[k]);
		for (i = 0; i < p->n; i++)
			lt_mbuf_printf(
				b, "%s{tier=\"%s\"} %llu\n", names[k], p->tier[i],
				(unsigned long long)__atomic_load_n(&c[i], __ATOMIC_RELAXED));
		lt_mbuf_printf(b, "%s{tier=\"*\"} %llu\n", names[k],
			       (unsigned long long)__atomic_load_n(&c[LT_FAIL_MAX_TIERS],
								   __ATOMIC_RELAXED));
	}
}
