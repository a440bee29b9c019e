// SPDX-License-Identifier: MIT
#include <string.h>
#include "answer.h"
#include "problem.h"
#include "ratelimit.h"

#define LT_NS_MS 1000000ULL
#define LT_QUOTA_EXCEEDED "https://iana.org/assignments/http-problem-types#quota-exceeded"

/*
 * An output buffer built without printf (a 429 is the reject path: its CPU
 * cost is a benchmark row). Pieces are appended whole or not at all: a
 * piece that does not fit sets over, and lt_mark/lt_undo roll a header line
 * back to its start, so the block only ever holds whole lines.
 */
struct lt_out {
	char *p;
	size_t cap, len;
	int over;
};

static void lt_init(struct lt_out *o, char *p, size_t cap)
{
	*o = (struct lt_out){ p, cap, 0, 0 };
	p[0] = '\0';
}

/*
 * Inlined, with lt_s: most pieces are literals, whose strlen the compiler
 * then folds (the strlen calls were 10% of a 429's user-space instructions).
 */
static __always_inline void lt_mem(struct lt_out *o, const char *s, size_t n)
{
	if (o->over || n >= o->cap - o->len) {
		o->over = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static __always_inline void lt_s(struct lt_out *o, const char *s)
{
	lt_mem(o, s, strlen(s));
}

static void lt_u(struct lt_out *o, __u64 v)
{
	char d[20];
	size_t i = sizeof(d);

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10));
	lt_mem(o, d + i, sizeof(d) - i);
}

/* Commits the line begun at mark, or takes it back whole if it did not fit. */
static int lt_line_end(struct lt_out *o, size_t mark, int *truncated)
{
	if (!o->over)
		return 0;
	o->len = mark;
	o->p[mark] = '\0';
	o->over = 0;
	*truncated = 1;
	return -1;
}

/* One "Name: value\r\n" line with a number value. */
static void lt_hu(struct lt_out *h, const char *name, __u64 v, int *truncated)
{
	size_t mark = h->len;

	lt_s(h, name);
	lt_s(h, ": ");
	lt_u(h, v);
	lt_s(h, "\r\n");
	lt_line_end(h, mark, truncated);
}

/* One "Name: value\r\n" line with a string value (already safe). */
static void lt_hs(struct lt_out *h, const char *name, const char *v, int *truncated)
{
	size_t mark = h->len;

	lt_s(h, name);
	lt_s(h, ": ");
	lt_s(h, v);
	lt_s(h, "\r\n");
	lt_line_end(h, mark, truncated);
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
		memcpy(out, "limit", sizeof("limit"));
}

/* A client-supplied string (the model) inside a JSON string: printable ASCII, escaped. */
static void lt_jstr(struct lt_out *o, const char *s, size_t max)
{
	size_t i;

	for (i = 0; s && s[i] && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[2] = { '\\', (char)c };

		if (c == '"' || c == '\\')
			lt_mem(o, e, 2);
		else
			lt_mem(o, c >= 0x20 && c < 0x7f ? (const char *)&s[i] : "?", 1);
	}
}

static void lt_dur(struct lt_out *o, __u64 ns)
{
	__u64 ms = ns / LT_NS_MS + (ns % LT_NS_MS != 0), h, m, s, f;
	char frac[4];
	int k;

	if (ms < 1000) {
		lt_u(o, ms);
		lt_s(o, ms ? "ms" : "s");
		return;
	}
	h = ms / 3600000;
	m = ms / 60000 % 60;
	s = ms / 1000 % 60;
	f = ms % 1000;
	if (h) {
		lt_u(o, h);
		lt_s(o, "h");
	}
	if (h || m) {
		lt_u(o, m);
		lt_s(o, "m");
	}
	lt_u(o, s);
	if (f) { /* ".5", ".25", ".125": Go drops trailing zeros */
		frac[0] = (char)('0' + f / 100);
		frac[1] = (char)('0' + f / 10 % 10);
		frac[2] = (char)('0' + f % 10);
		for (k = 3; frac[k - 1] == '0'; k--)
			;
		lt_s(o, ".");
		lt_mem(o, frac, (size_t)k);
	}
	lt_s(o, "s");
}

size_t lt_openai_duration(__u64 ns, char *out, size_t len)
{
	struct lt_out o;
	char buf[48];

	if (!len)
		return 0;
	lt_init(&o, buf, sizeof(buf));
	lt_dur(&o, ns);
	if (o.len >= len)
		o.len = len - 1;
	memcpy(out, buf, o.len);
	out[o.len] = '\0';
	return o.len;
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

static void lt_rl_lines(struct lt_out *h, const char *policy, const struct lt_view *v,
			__u64 remaining, __u64 reset_s, int *truncated)
{
	char pol[160], cur[160];

	if (v->unlimited)
		return;
	lt_rl_fields(policy, v->capacity,
		     lt_rl_window_s(v->capacity, v->leak_tokens, v->leak_period_ns), remaining,
		     reset_s, pol, sizeof(pol), cur, sizeof(cur));
	lt_hs(h, "RateLimit-Policy", pol, truncated);
	lt_hs(h, "RateLimit", cur, truncated);
}

static void lt_openai_lines(struct lt_out *h, __u32 unit, const struct lt_view *v, int *truncated)
{
	size_t mark;

	if (v->unlimited)
		return;
	mark = h->len;
	lt_s(h, "x-ratelimit-limit-");
	lt_s(h, lt_unit_name(unit));
	lt_s(h, ": ");
	lt_u(h, v->capacity);
	lt_s(h, "\r\nx-ratelimit-remaining-");
	lt_s(h, lt_unit_name(unit));
	lt_s(h, ": ");
	lt_u(h, v->remaining);
	lt_s(h, "\r\nx-ratelimit-reset-");
	lt_s(h, lt_unit_name(unit));
	lt_s(h, ": ");
	lt_dur(h, v->full_in_ns);
	lt_s(h, "\r\n");
	lt_line_end(h, mark, truncated);
}

/* The start of an error body, up to the opening quote of its message. */
static void lt_body_open(struct lt_out *h, struct lt_out *b, enum lt_answer_route route,
			 const char *problem_type, const char *title, unsigned status,
			 int *truncated)
{
	if (route == LT_ROUTE_OPENAI) {
		lt_hs(h, "Content-Type", "application/json", truncated);
		lt_s(b, "{\"error\":{\"message\":\"");
	} else {
		lt_hs(h, "Content-Type", "application/problem+json", truncated);
		lt_s(b, "{\"type\":\"");
		lt_s(b, problem_type);
		lt_s(b, "\",\"title\":\"");
		lt_s(b, title);
		lt_s(b, "\",\"status\":");
		lt_u(b, status);
		lt_s(b, ",\"detail\":\"");
	}
}

/* The end of an error body after its message; extra: members of problem+json. */
static void lt_body_close(struct lt_out *b, enum lt_answer_route route, const char *oa_type,
			  const char *code, const char *extra)
{
	lt_s(b, "\"");
	if (route == LT_ROUTE_OPENAI) {
		lt_s(b, ",\"type\":\"");
		lt_s(b, oa_type);
		lt_s(b, "\",\"param\":null,\"code\":\"");
		lt_s(b, code);
		lt_s(b, "\"}}");
	} else {
		lt_s(b, extra ? extra : "");
		lt_s(b, "}");
	}
}

/* A body that did not fit (never with sane inputs): a short one of the same shape. */
static void lt_body_fallback(struct lt_answer *a, struct lt_out *b, enum lt_answer_route route,
			     const char *problem_type, const char *title, const char *oa_type,
			     const char *code)
{
	int t = 0;
	struct lt_out h;
	char hb[64];

	if (!b->over)
		return;
	a->truncated = 1;
	lt_init(&h, hb, sizeof(hb));
	lt_init(b, a->body, sizeof(a->body));
	if (route == LT_ROUTE_OPENAI)
		lt_s(b, "{\"error\":{\"message\":\"");
	else {
		lt_body_open(&h, b, route, problem_type, title, a->status, &t);
	}
	lt_s(b, title);
	lt_body_close(b, route, oa_type, code, NULL);
}

static void lt_start(struct lt_answer *a, struct lt_out *h, struct lt_out *b)
{
	a->status = 0;
	a->truncated = 0;
	lt_init(h, a->head, sizeof(a->head));
	lt_init(b, a->body, sizeof(a->body));
}

static void lt_finish(struct lt_answer *a, struct lt_out *h, struct lt_out *b)
{
	a->head_len = h->len;
	a->body_len = b->len;
}

static unsigned lt_limited(struct lt_answer *a, enum lt_answer_route route,
			   const struct lt_admit_limit *lim, __u32 n,
			   const struct lt_admit_result *r, const char *model, unsigned rnd)
{
	const struct lt_view *v = &r->view;
	const struct lt_admit_limit *l = &lim[r->which];
	const char *unit = lt_unit_name(l->unit);
	__u64 wait_ms, jit, total_ms, ra_s;
	char pol[64], name[64];
	struct lt_out h, b;
	size_t mark;
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
	lt_hu(&h, "Retry-After", ra_s, &a->truncated);
	lt_hu(&h, "retry-after-ms", total_ms > LT_SF_INT_MAX ? LT_SF_INT_MAX : total_ms,
	      &a->truncated);
	if (wait_ms > LT_ANSWER_SHOULD_RETRY_MAX_S * 1000ULL)
		lt_hs(&h, "x-should-retry", "false", &a->truncated);
	lt_rl_lines(&h, pol, v, 0, ra_s, &a->truncated);
	if (route == LT_ROUTE_OPENAI)
		lt_openai_lines(&h, l->unit, v, &a->truncated);

	lt_body_open(&h, &b, route, LT_QUOTA_EXCEEDED, "Too Many Requests", 429, &a->truncated);
	lt_s(&b, "Rate limit reached");
	if (model) {
		lt_s(&b, " for ");
		lt_jstr(&b, model, 64);
	}
	lt_s(&b, " on ");
	lt_s(&b, pol);
	lt_s(&b, ": limit ");
	lt_u(&b, v->capacity);
	lt_s(&b, " ");
	lt_s(&b, unit);
	lt_s(&b, ", remaining ");
	lt_u(&b, v->remaining);
	lt_s(&b, ", requested ");
	lt_u(&b, l->cost);
	lt_s(&b, ". It frees at ");
	lt_u(&b, v->leak_tokens);
	lt_s(&b, " ");
	lt_s(&b, unit);
	lt_s(&b, " per ");
	lt_dur(&b, v->leak_period_ns);
	lt_s(&b, "; please try again in ");
	lt_dur(&b, total_ms > ~0ULL / LT_NS_MS ? ~0ULL : total_ms * LT_NS_MS);
	lt_s(&b, ".\"");
	if (route == LT_ROUTE_OPENAI) {
		lt_s(&b, ",\"type\":\"");
		lt_s(&b, unit);
		lt_s(&b, "\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}");
	} else {
		/* every limit that refused this request, the denying one first */
		lt_s(&b, ",\"violated-policies\":[\"");
		lt_s(&b, pol);
		lt_s(&b, "\"");
		for (j = 0; j < n && j < LT_ADMIT_MAX; j++) {
			if ((int)j == r->which || !r->decided[j] || !r->views[j].retry_after_ns)
				continue;
			lt_name(lim[j].policy, name, sizeof(name));
			mark = b.len;
			lt_s(&b, ",\"");
			lt_s(&b, name);
			lt_s(&b, "\"");
			if (b.over) { /* never with 4 names of 63 bytes; stay valid JSON */
				b.len = mark;
				b.over = 0;
			}
		}
		lt_s(&b, "]}");
	}
	lt_body_fallback(a, &b, route, LT_QUOTA_EXCEEDED, "Too Many Requests", unit,
			 "rate_limit_exceeded");
	lt_finish(a, &h, &b);
	return a->status;
}

static unsigned lt_never_fits(struct lt_answer *a, enum lt_answer_route route,
			      const struct lt_admit_limit *lim, const struct lt_admit_result *r)
{
	const struct lt_admit_limit *l = &lim[r->which];
	const char *unit = lt_unit_name(l->unit);
	char pol[64];
	struct lt_out h, b;

	lt_start(a, &h, &b);
	a->status = 400;
	lt_name(l->policy, pol, sizeof(pol));
	if (r->decided[r->which])
		lt_rl_lines(&h, pol, &r->view, r->view.remaining, r->view.full_in_s, &a->truncated);
	lt_body_open(&h, &b, route, LT_PROBLEM_BASE "reservation-exceeds-budget",
		     "Reservation exceeds the budget", 400, &a->truncated);
	lt_s(&b, "This request reserves ");
	lt_u(&b, l->cost);
	lt_s(&b, " ");
	lt_s(&b, unit);
	lt_s(&b, ", more than the ");
	lt_s(&b, pol);
	lt_s(&b, " budget's capacity");
	if (r->decided[r->which]) {
		lt_s(&b, " of ");
		lt_u(&b, r->view.capacity);
		lt_s(&b, " ");
		lt_s(&b, unit);
	}
	lt_s(&b, ": the reservation exceeds the budget and can never be admitted. Lower "
		 "max_tokens or shorten the prompt.");
	lt_s(&b, "\"");
	if (route == LT_ROUTE_OPENAI) {
		lt_s(&b, ",\"type\":\"invalid_request_error\",\"param\":null,"
			 "\"code\":\"reservation_exceeds_budget\"}}");
	} else {
		lt_s(&b, ",\"policy\":\"");
		lt_s(&b, pol);
		lt_s(&b, "\"}");
	}
	lt_body_fallback(a, &b, route, LT_PROBLEM_BASE "reservation-exceeds-budget",
			 "Reservation exceeds the budget", "invalid_request_error",
			 "reservation_exceeds_budget");
	lt_finish(a, &h, &b);
	return a->status;
}

unsigned lt_answer_denied(struct lt_answer *a, enum lt_answer_route route,
			  const struct lt_admit_limit *lim, __u32 n,
			  const struct lt_admit_result *r, const char *model, unsigned rnd)
{
	char pol[64];
	struct lt_out h, b;
	__u64 s;
	int has = r->which >= 0 && (__u32)r->which < n && r->which < LT_ADMIT_MAX;

	memcpy(pol, "limit", sizeof("limit"));
	if (has)
		lt_name(lim[r->which].policy, pol, sizeof(pol));
	if (r->verdict == LT_ADM_LIMITED && has && r->decided[r->which])
		return lt_limited(a, route, lim, n, r, model, rnd);
	if (r->verdict == LT_ADM_NEVER_FITS && has)
		return lt_never_fits(a, route, lim, r);
	lt_start(a, &h, &b);
	if (r->verdict == LT_ADM_NO_QUOTA) {
		a->status = 403;
		lt_body_open(&h, &b, route, LT_PROBLEM_BASE "no-quota", "No quota", 403,
			     &a->truncated);
		lt_s(&b, "No quota is configured for ");
		lt_s(&b, pol);
		lt_s(&b, ": this request is refused.");
		lt_body_close(&b, route, "invalid_request_error", "no_quota", NULL);
	} else if (r->verdict == LT_ADM_UNAVAILABLE || r->verdict == LT_ADM_LIMITED) {
		a->status = 503;
		s = lt_rl_ceil_s(r->retry_after_ns ? r->retry_after_ns : 1);
		if (s > LT_SF_INT_MAX)
			s = LT_SF_INT_MAX;
		s += rnd % 2; /* a little jitter here too */
		lt_hu(&h, "Retry-After", s, &a->truncated);
		lt_hu(&h, "retry-after-ms", s * 1000, &a->truncated);
		lt_body_open(&h, &b, route, LT_PROBLEM_BASE "limiter-unavailable",
			     "Limiter unavailable", 503, &a->truncated);
		lt_s(&b, "The rate limiter cannot decide on ");
		lt_s(&b, pol);
		lt_s(&b, " right now; retry in ");
		lt_u(&b, s);
		lt_s(&b, "s.");
		lt_body_close(&b, route, "server_error", "limiter_unavailable", NULL);
	} else {
		a->status = 500;
		lt_body_open(&h, &b, route, LT_PROBLEM_BASE "internal", "Internal error", 500,
			     &a->truncated);
		lt_s(&b, "The request's limits could not be evaluated.");
		lt_body_close(&b, route, "server_error", "internal_error", NULL);
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
		lt_rl_lines(&h, pol, &r->view, r->view.remaining, r->view.full_in_s, &a->truncated);
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
				lt_openai_lines(&h, lim[best[u]].unit, &r->views[best[u]],
						&a->truncated);
	}
	lt_finish(a, &h, &b);
}
