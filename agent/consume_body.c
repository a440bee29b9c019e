// SPDX-License-Identifier: MIT
/*
 * consume_body.c - the bodies of the consume API's answers: the quota view as
 * jansson builds it, and the same bytes written without jansson for the two
 * answers most requests get (200 and 429). tests/unit/test_consume_body.c
 * holds the two to the same bytes.
 */
#include <stdlib.h>
#include <string.h>
#include "consume_body.h"
#include "problem.h"
#include "units.h"

/* ms, rounded up, or null when the ns figure saturated (beyond 584 years) */
json_t *lt_ms_json(__u64 ns)
{
	if (ns == ~0ULL)
		return json_null();
	return json_integer((json_int_t)(ns / 1000000 + (ns % 1000000 != 0)));
}

json_t *lt_view_json(const struct lt_view *v)
{
	char rate[48] = "unlimited";
	json_t *o;

	if (!v->unlimited)
		lt_rate_format(v->leak_tokens, v->leak_period_ns, rate, sizeof(rate));
	o = json_pack("{s:I, s:I, s:s, s:f}", "capacity", (json_int_t)v->capacity, "remaining",
		      (json_int_t)(v->unlimited ? 0 : v->remaining), "leakRate", rate,
		      "leakRatePerSecond",
		      v->unlimited ? 0.0 :
				     (double)v->leak_tokens * 1e9 / (double)v->leak_period_ns);
	json_object_set_new(o, "fullInMs", lt_ms_json(v->full_in_ns));
	return o;
}

/*
 * The consume 200 body without jansson: building and dumping a dozen json_t
 * per request (and printf_fp for the real) was a tenth of the request's cost.
 * The bytes are exactly what lt_view_json + json_dumps(JSON_COMPACT) give;
 * anything outside the common shape (a string that needs escaping, a rate
 * per second that is not a whole number) returns -1 and the caller takes
 * the jansson path, so the two can never disagree.
 */
struct lt_jbuf {
	char *p, *end;
	int full;
};

static void lt_jb_raw(struct lt_jbuf *b, const char *s, size_t n)
{
	if (b->full || (size_t)(b->end - b->p) <= n) {
		b->full = 1;
		return;
	}
	memcpy(b->p, s, n);
	b->p += n;
}

static void lt_jb_lit(struct lt_jbuf *b, const char *s)
{
	lt_jb_raw(b, s, strlen(s));
}

/* a JSON string; -1 if it would need an escape (the caller falls back) */
static int lt_jb_str(struct lt_jbuf *b, const char *s)
{
	const char *q;

	for (q = s; *q; q++)
		if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
			return -1;
	lt_jb_raw(b, "\"", 1);
	lt_jb_raw(b, s, (size_t)(q - s));
	lt_jb_raw(b, "\"", 1);
	return 0;
}

static void lt_jb_int(struct lt_jbuf *b, long long v)
{
	char d[24], *q = d + sizeof(d);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	do
		*--q = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--q = '-';
	lt_jb_raw(b, q, (size_t)(d + sizeof(d) - q));
}

/* lt_ms_json's value: whole ms rounded up, null for ~0 (beyond 2^64 ns) */
static void lt_jb_ms(struct lt_jbuf *b, __u64 ns)
{
	if (ns == ~0ULL)
		lt_jb_lit(b, "null");
	else
		lt_jb_int(b, (long long)(ns / 1000000 + (ns % 1000000 != 0)));
}

/* The members of lt_view_json, in its order: -1 where only jansson would write them alike. */
static int lt_jb_view(struct lt_jbuf *b, const struct lt_view *v)
{
	char rate[48] = "unlimited";
	double per_s = 0.0;
	int bad = 0;

	if (!v->unlimited) {
		lt_rate_format(v->leak_tokens, v->leak_period_ns, rate, sizeof(rate));
		per_s = (double)v->leak_tokens * 1e9 / (double)v->leak_period_ns;
	}
	/* jansson prints a whole double below 1e15 as its integer and ".0" */
	if (!(per_s >= 0.0 && per_s < 1e15) || per_s != (double)(long long)per_s)
		return -1;
	lt_jb_lit(b, "\"capacity\":");
	lt_jb_int(b, (long long)v->capacity);
	lt_jb_lit(b, ",\"remaining\":");
	lt_jb_int(b, (long long)(v->unlimited ? 0 : v->remaining));
	lt_jb_lit(b, ",\"leakRate\":");
	bad |= lt_jb_str(b, rate);
	lt_jb_lit(b, ",\"leakRatePerSecond\":");
	lt_jb_int(b, (long long)per_s);
	lt_jb_lit(b, ".0,\"fullInMs\":");
	lt_jb_ms(b, v->full_in_ns);
	return bad;
}

char *lt_consume_ok_body(const struct lt_view *v, const char *user, const char *org,
			 const char *provider, const char *tier, const char *key_id,
			 long long charged, long long key_remaining)
{
	char *out = malloc(1024);
	struct lt_jbuf b;
	int bad = 0;

	if (!out)
		return NULL;
	b = (struct lt_jbuf){ out, out + 1024, 0 };
	lt_jb_lit(&b, "{");
	bad |= lt_jb_view(&b, v);
	lt_jb_lit(&b, ",\"userId\":");
	bad |= lt_jb_str(&b, user);
	lt_jb_lit(&b, ",\"orgId\":");
	if (org)
		bad |= lt_jb_str(&b, org);
	else
		lt_jb_lit(&b, "null");
	lt_jb_lit(&b, ",\"provider\":");
	bad |= lt_jb_str(&b, provider);
	lt_jb_lit(&b, ",\"tier\":");
	bad |= lt_jb_str(&b, tier);
	lt_jb_lit(&b, ",\"charged\":");
	lt_jb_int(&b, charged);
	if (key_id) {
		lt_jb_lit(&b, ",\"apiKey\":{\"id\":");
		bad |= lt_jb_str(&b, key_id);
		lt_jb_lit(&b, ",\"remaining\":");
		lt_jb_int(&b, key_remaining);
		lt_jb_lit(&b, "}");
	}
	lt_jb_lit(&b, "}");
	if (bad || b.full) {
		free(out);
		return NULL;
	}
	*b.p = '\0';
	return out;
}

/* The consume 429 body (lt_problem_json + retryAfterMs + quota) the same way: most answers
 * to a client that ignores its limit are these. */
char *lt_consume_deny_body(const struct lt_view *v)
{
	char *out = malloc(1024);
	struct lt_jbuf b;
	int bad;

	if (!out)
		return NULL;
	b = (struct lt_jbuf){ out, out + 1024, 0 };
	lt_jb_lit(&b, "{\"type\":\"" LT_PROBLEM_BASE "quota-exceeded\",\"title\":\"Too Many "
		      "Requests\",\"status\":429,\"detail\":\"the bucket cannot take these tokens "
		      "now\",\"field\":\"/tokens\",\"retryAfterMs\":");
	lt_jb_ms(&b, v->retry_after_ns);
	lt_jb_lit(&b, ",\"quota\":{");
	bad = lt_jb_view(&b, v);
	lt_jb_lit(&b, "}}");
	if (bad || b.full) {
		free(out);
		return NULL;
	}
	*b.p = '\0';
	return out;
}
