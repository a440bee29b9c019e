// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "answer.h"
#include "problem.h"
#include "ratelimit.h"

#define LT_NS_MS 1000000ULL
#define LT_QUOTA_EXCEEDED "https://iana.org/assignments/http-problem-types#quota-exceeded"

struct lt_out {
	char *p;
	size_t cap, len;
	int *truncated;
};

/* Appends one formatted piece whole, or nothing (and flags it). */
static __attribute__((format(printf, 2, 3))) void lt_put(struct lt_out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->p[o->len] = '\0';
		*o->truncated = 1;
		return;
	}
	o->len += (size_t)n;
}

/*
 * A policy name as a JSON string body and a Structured Field string alike:
 * [A-Za-z0-9._-] kept, anything else '_' (names come from the config; a
 * stray byte must not break a header or the JSON).
 */
static void lt_name(const char *s, char *out, size_t len)
{
	size_t i = 0;

	for (; s && *s && i + 1 < len; s++, i++) {
		unsigned char c = (unsigned char)*s;

		out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					 (c >= '0' && c <= '9') || c == '.' || c == '_' ||
					 c == '-' ?
				 (char)c :
				 '_';
	}
	out[i] = '\0';
	if (!i)
		snprintf(out, len, "limit");
}

/* A client-supplied string (the model) for a JSON message: printable ASCII, escaped. */
static void lt_jstr(const char *s, char *out, size_t len)
{
	size_t i = 0;

	for (; s && *s && i + 2 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[i++] = '\\';
			out[i++] = (char)c;
		} else {
			out[i++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
	}
	out[i] = '\0';
}

static unsigned long long lt_ull(__u64 v)
{
	return (unsigned long long)v;
}

size_t lt_openai_duration(__u64 ns, char *out, size_t len)
{
	__u64 ms = ns / LT_NS_MS + (ns % LT_NS_MS != 0), h, m, s, f;
	char frac[8] = "";
	int n;

	if (ms < 1000) {
		n = ms ? snprintf(out, len, "%llums", lt_ull(ms)) : snprintf(out, len, "0s");
	} else {
		h = ms / 3600000;
		m = ms / 60000 % 60;
		s = ms / 1000 % 60;
		f = ms % 1000;
		if (f) { /* ".5", ".25", ".125": Go drops trailing zeros */
			snprintf(frac, sizeof(frac), ".%03llu", lt_ull(f));
			while (frac[strlen(frac) - 1] == '0')
				frac[strlen(frac) - 1] = '\0';
		}
		if (h)
			n = snprintf(out, len, "%lluh%llum%llu%ss", lt_ull(h), lt_ull(m), lt_ull(s),
				     frac);
		else if (m)
			n = snprintf(out, len, "%llum%llu%ss", lt_ull(m), lt_ull(s), frac);
		else
			n = snprintf(out, len, "%llu%ss", lt_ull(s), frac);
	}
	if (n < 0 || !len)
		return 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}

/* The true wait in ms, rounded up, exact where ns saturate (then from seconds). */
static __u64 lt_wait_ms(const struct lt_view *v, __u64 ns)
{
	if (ns != ~0ULL)
		return ns / LT_NS_MS + (ns % LT_NS_MS != 0);
	return v->retry_after_s > ~0ULL / 1000 ? ~0ULL : v->retry_after_s * 1000;
}

static const char *lt_unit_name(__u32 unit)
{
	return unit == LT_UNIT_REQUESTS ? "requests" : "tokens";
}

/* The leak rate in words: "10 tokens per 1s". */
static void lt_rate_words(const struct lt_view *v, __u32 unit, char *out, size_t len)
{
	char per[48];

	lt_openai_duration(v->leak_period_ns, per, sizeof(per));
	snprintf(out, len, "%llu %s per %s", lt_ull(v->leak_tokens), lt_unit_name(unit), per);
}

static void lt_rl_lines(struct lt_out *h, const char *policy, const struct lt_view *v,
			__u64 remaining, __u64 reset_s)
{
	char pol[160], cur[160];

	if (v->unlimited)
		return;
	lt_rl_fields(policy, v->capacity,
		     lt_rl_window_s(v->capacity, v->leak_tokens, v->leak_period_ns), remaining,
		     reset_s, pol, sizeof(pol), cur, sizeof(cur));
	lt_put(h, "RateLimit-Policy: %s\r\nRateLimit: %s\r\n", pol, cur);
}

static void lt_openai_lines(struct lt_out *h, __u32 unit, const struct lt_view *v)
{
	char reset[48];

	if (v->unlimited)
		return;
	lt_openai_duration(v->full_in_ns, reset, sizeof(reset));
	lt_put(h,
	       "x-ratelimit-limit-%s: %llu\r\nx-ratelimit-remaining-%s: %llu\r\n"
	       "x-ratelimit-reset-%s: %s\r\n",
	       lt_unit_name(unit), lt_ull(v->capacity), lt_unit_name(unit), lt_ull(v->remaining),
	       lt_unit_name(unit), reset);
}

static void lt_start(struct lt_answer *a, struct lt_out *h, struct lt_out *b)
{
	memset(a, 0, sizeof(*a));
	a->head[0] = a->body[0] = '\0';
	*h = (struct lt_out){ a->head, sizeof(a->head), 0, &a->truncated };
	*b = (struct lt_out){ a->body, sizeof(a->body), 0, &a->truncated };
}

static void lt_finish(struct lt_answer *a, struct lt_out *h, struct lt_out *b)
{
	a->head_len = h->len;
	a->body_len = b->len;
}

/* An error body: OpenAI's shape, or problem+json with an optional extra member. */
static void lt_error_body(struct lt_out *h, struct lt_out *b, enum lt_answer_route route,
			  unsigned status, const char *oa_type, const char *code,
			  const char *problem_type, const char *title, const char *msg,
			  const char *extra)
{
	if (route == LT_ROUTE_OPENAI) {
		lt_put(h, "Content-Type: application/json\r\n");
		lt_put(b,
		       "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,"
		       "\"code\":\"%s\"}}",
		       msg, oa_type, code);
	} else {
		lt_put(h, "Content-Type: application/problem+json\r\n");
		lt_put(b, "{\"type\":\"%s\",\"title\":\"%s\",\"status\":%u,\"detail\":\"%s\"%s}",
		       problem_type, title, status, msg, extra ? extra : "");
	}
}

static unsigned lt_limited(struct lt_answer *a, enum lt_answer_route route,
			   const struct lt_admit_limit *lim, __u32 n,
			   const struct lt_admit_result *r, const char *model, unsigned rnd)
{
	const struct lt_view *v = &r->view;
	const struct lt_admit_limit *l = &lim[r->which];
	char pol[64], name[64], mdl[96] = "", rate[96], wait[48], msg[512], extra[400];
	__u64 wait_ms, jit, total_ms, ra_s;
	struct lt_out h, b, x;
	int trunc = 0;
	__u32 j;

	lt_start(a, &h, &b);
	a->status = 429;
	lt_name(l->policy, pol, sizeof(pol));
	wait_ms = lt_wait_ms(v, r->retry_after_ns);
	if (!wait_ms)
		wait_ms = 1; /* denied: some wait, however short */
	/* jitter: up to 10% of the wait, at most 1 s, always added (never early) */
	jit = rnd % (1 + (wait_ms / 10 < 1000 ? wait_ms / 10 : 1000));
	total_ms = wait_ms > ~0ULL - jit ? ~0ULL : wait_ms + jit;
	ra_s = total_ms / 1000 + (total_ms % 1000 != 0);
	if (ra_s > LT_SF_INT_MAX)
		ra_s = LT_SF_INT_MAX;
	lt_put(&h, "Retry-After: %llu\r\nretry-after-ms: %llu\r\n", lt_ull(ra_s),
	       lt_ull(total_ms > LT_SF_INT_MAX ? LT_SF_INT_MAX : total_ms));
	if (wait_ms > LT_ANSWER_SHOULD_RETRY_MAX_S * 1000ULL)
		lt_put(&h, "x-should-retry: false\r\n");
	lt_rl_lines(&h, pol, v, 0, ra_s);
	if (route == LT_ROUTE_OPENAI)
		lt_openai_lines(&h, l->unit, v);

	lt_openai_duration(total_ms > ~0ULL / LT_NS_MS ? ~0ULL : total_ms * LT_NS_MS, wait,
			   sizeof(wait));
	lt_rate_words(v, l->unit, rate, sizeof(rate));
	if (model) {
		lt_jstr(model, name, sizeof(name));
		snprintf(mdl, sizeof(mdl), " for %s", name);
	}
	snprintf(msg, sizeof(msg),
		 "Rate limit reached%s on %s: limit %llu %s, remaining %llu, requested %llu. "
		 "It frees at %s; please try again in %s.",
		 mdl, pol, lt_ull(v->capacity), lt_unit_name(l->unit), lt_ull(v->remaining),
		 lt_ull(l->cost), rate, wait);
	/* problem+json: every limit that refused this request, the denying one first */
	x = (struct lt_out){ extra, sizeof(extra), 0, &trunc };
	lt_put(&x, ",\"violated-policies\":[\"%s\"", pol);
	for (j = 0; j < n && j < LT_ADMIT_MAX; j++) {
		if ((int)j == r->which || !r->decided[j] || !r->views[j].retry_after_ns)
			continue;
		lt_name(lim[j].policy, name, sizeof(name));
		lt_put(&x, ",\"%s\"", name);
	}
	lt_put(&x, "]");
	if (trunc)
		snprintf(extra, sizeof(extra), ",\"violated-policies\":[\"%s\"]", pol);
	lt_error_body(&h, &b, route, 429, lt_unit_name(l->unit), "rate_limit_exceeded",
		      LT_QUOTA_EXCEEDED, "Too Many Requests", msg, extra);
	lt_finish(a, &h, &b);
	return a->status;
}

static unsigned lt_never_fits(struct lt_answer *a, enum lt_answer_route route,
			      const struct lt_admit_limit *lim, const struct lt_admit_result *r)
{
	const struct lt_admit_limit *l = &lim[r->which];
	char pol[64], msg[512], extra[96];
	struct lt_out h, b;

	lt_start(a, &h, &b);
	a->status = 400;
	lt_name(l->policy, pol, sizeof(pol));
	if (r->decided[r->which])
		lt_rl_lines(&h, pol, &r->view, r->view.remaining, r->view.full_in_s);
	if (r->decided[r->which])
		snprintf(
			msg, sizeof(msg),
			"This request reserves %llu %s, more than the %s budget's capacity of %llu "
			"%s: the reservation exceeds the budget and can never be admitted. Lower "
			"max_tokens or shorten the prompt.",
			lt_ull(l->cost), lt_unit_name(l->unit), pol, lt_ull(r->view.capacity),
			lt_unit_name(l->unit));
	else
		snprintf(msg, sizeof(msg),
			 "This request reserves %llu %s, more than the %s budget's capacity: the "
			 "reservation exceeds the budget and can never be admitted.",
			 lt_ull(l->cost), lt_unit_name(l->unit), pol);
	snprintf(extra, sizeof(extra), ",\"policy\":\"%s\"", pol);
	lt_error_body(&h, &b, route, 400, "invalid_request_error", "reservation_exceeds_budget",
		      LT_PROBLEM_BASE "reservation-exceeds-budget",
		      "Reservation exceeds the budget", msg, extra);
	lt_finish(a, &h, &b);
	return a->status;
}

unsigned lt_answer_denied(struct lt_answer *a, enum lt_answer_route route,
			  const struct lt_admit_limit *lim, __u32 n,
			  const struct lt_admit_result *r, const char *model, unsigned rnd)
{
	char pol[64] = "limit", msg[256];
	struct lt_out h, b;
	__u64 s;
	int has = r->which >= 0 && (__u32)r->which < n && r->which < LT_ADMIT_MAX;

	if (has)
		lt_name(lim[r->which].policy, pol, sizeof(pol));
	if (r->verdict == LT_ADM_LIMITED && has && r->decided[r->which])
		return lt_limited(a, route, lim, n, r, model, rnd);
	if (r->verdict == LT_ADM_NEVER_FITS && has)
		return lt_never_fits(a, route, lim, r);
	lt_start(a, &h, &b);
	if (r->verdict == LT_ADM_NO_QUOTA) {
		a->status = 403;
		snprintf(msg, sizeof(msg),
			 "No quota is configured for %s: this request is refused.", pol);
		lt_error_body(&h, &b, route, 403, "invalid_request_error", "no_quota",
			      LT_PROBLEM_BASE "no-quota", "No quota", msg, NULL);
	} else if (r->verdict == LT_ADM_UNAVAILABLE || r->verdict == LT_ADM_LIMITED) {
		a->status = 503;
		s = lt_rl_ceil_s(r->retry_after_ns ? r->retry_after_ns : 1);
		s += rnd % 2; /* a little jitter here too */
		lt_put(&h, "Retry-After: %llu\r\nretry-after-ms: %llu\r\n", lt_ull(s),
		       lt_ull(s * 1000));
		snprintf(msg, sizeof(msg),
			 "The rate limiter cannot decide on %s right now; retry in %llus.", pol,
			 lt_ull(s));
		lt_error_body(&h, &b, route, 503, "server_error", "limiter_unavailable",
			      LT_PROBLEM_BASE "limiter-unavailable", "Limiter unavailable", msg,
			      NULL);
	} else {
		a->status = 500;
		snprintf(msg, sizeof(msg), "The request's limits could not be evaluated.");
		lt_error_body(&h, &b, route, 500, "server_error", "internal_error",
			      LT_PROBLEM_BASE "internal", "Internal error", msg, NULL);
	}
	lt_finish(a, &h, &b);
	return a->status;
}

void lt_answer_ok(struct lt_answer *a, enum lt_answer_route route, const struct lt_admit_limit *lim,
		  __u32 n, const struct lt_admit_result *r)
{
	char pol[64];
	struct lt_out h, b;
	int best[2] = { -1, -1 };
	__u32 i, u;

	lt_start(a, &h, &b);
	if (r->which >= 0 && (__u32)r->which < n && r->which < LT_ADMIT_MAX) {
		lt_name(lim[r->which].policy, pol, sizeof(pol));
		lt_rl_lines(&h, pol, &r->view, r->view.remaining, r->view.full_in_s);
	}
	if (route == LT_ROUTE_OPENAI) {
		/* per unit, the limit with the least remaining share */
		for (i = 0; i < n && i < LT_ADMIT_MAX; i++) {
			const struct lt_view *v = &r->views[i], *w;

			u = lim[i].unit == LT_UNIT_REQUESTS;
			if (!r->decided[i] || v->unlimited)
				continue;
			w = best[u] < 0 ? NULL : &r->views[best[u]];
			if (!w || (unsigned __int128)v->remaining * w->capacity <
					  (unsigned __int128)w->remaining * v->capacity)
				best[u] = (int)i;
		}
		for (u = 2; u-- > 0;)
			if (best[u] >= 0)
				lt_openai_lines(&h, lim[best[u]].unit, &r->views[best[u]]);
	}
	lt_finish(a, &h, &b);
}
