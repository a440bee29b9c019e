// SPDX-License-Identifier: MIT
/*
 * usage_event.c - the data of a usage event (dev.leakytokens.usage.v1; the
 * schema is docs/events/usage.v1.md, and a change that breaks it gets a new
 * type). Built with a bounded writer, not jansson: the writer thread makes
 * one per record, and a dozen json_t allocations each would be most of its
 * work.
 *
 * Field names follow the OpenTelemetry semantic conventions where one
 * exists (gen_ai.*, http.*, source.address, network.transport); a field
 * whose value is unknown is left out, never guessed (the GenAI convention
 * says so for token usage).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "addr.h"
#include "maps.h" /* lt_stat_name */
#include "requests.h"
#include "units.h"
#include "utf8.h"

/*
 * liblt's bounded builder (units.h): the writer thread makes every event with
 * it (a vsnprintf per character was a third of its CPU). b.len >= b.cap:
 * the event did not fit.
 */
struct lt_jw {
	struct lt_sb b;
	int comma;
};

/*
 * Inlined at every field (LT_JW_INLINE): the keys are literals, so their
 * strlen and copies become constants instead of a strlen and a memcpy call
 * per key.
 */
#define LT_JW_INLINE static inline __attribute__((always_inline))

LT_JW_INLINE void lt_jw_put(struct lt_jw *w, const char *d, size_t n)
{
	struct lt_sb *b = &w->b;

	/*
	 * What lt_sb_mem does when the piece fits (and its NUL), inline: an event
	 * is some forty pieces of one to a few dozen bytes, and a call into liblt
	 * for each was a fifth of the writer's CPU with events on.
	 */
	if (b->len + n < b->cap) {
		memcpy(b->buf + b->len, d, n);
		b->len += n;
		b->buf[b->len] = '\0';
		return;
	}
	lt_sb_mem(b, d, n);
}

/* A JSON string of s (valid UTF-8, escaped). */
static void lt_jw_str(struct lt_jw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char clean[4 * LT_REQLOG_NAME_LEN + 4];
	const char *c, *run;
	size_t n;

	/*
	 * Ids, names and routes are printable ASCII nearly always: then the bytes
	 * are the string, with no copy through the sanitizer and no escape.
	 */
	for (n = 0; (unsigned char)s[n] >= 0x20 && (unsigned char)s[n] < 0x7f && s[n] != '"' &&
		    s[n] != '\\';
	     n++)
		;
	if (!s[n] && n < sizeof(clean) / 4) {
		lt_jw_put(w, "\"", 1);
		lt_jw_put(w, s, n);
		lt_jw_put(w, "\"", 1);
		return;
	}
	lt_utf8_sanitize(s, clean, sizeof(clean));
	lt_jw_put(w, "\"", 1);
	for (run = c = clean; *c; c++) {
		unsigned char u = (unsigned char)*c;
		char esc[6] = { '\\', 'u', '0', '0', hex[u >> 4], hex[u & 15] };
		if (u != '"' && u != '\\' && u >= 0x20)
			continue;
		lt_jw_put(w, run, (size_t)(c - run));
		if (u < 0x20)
			lt_jw_put(w, esc, 6);
		else
			lt_jw_put(w, (const char[]){ '\\', (char)u }, 2);
		run = c + 1;
	}
	lt_jw_put(w, run, (size_t)(c - run));
	lt_jw_put(w, "\"", 1);
}

LT_JW_INLINE void lt_jw_key(struct lt_jw *w, const char *k)
{
	if (w->comma)
		lt_jw_put(w, ",", 1);
	lt_jw_put(w, "\"", 1);
	lt_jw_put(w, k, strlen(k));
	lt_jw_put(w, "\":", 2);
	w->comma = 1;
}

/* Strings are left out when empty (unknown). */
LT_JW_INLINE void lt_jw_s(struct lt_jw *w, const char *k, const char *v)
{
	if (!v || !v[0])
		return;
	lt_jw_key(w, k);
	lt_jw_str(w, v);
}

LT_JW_INLINE void lt_jw_u(struct lt_jw *w, const char *k, unsigned long long v)
{
	lt_jw_key(w, k);
	lt_sb_u64(&w->b, v);
}

/* milliseconds with 3 decimals, as "%.3f" of ns / 1e6 wrote them (rounded to the µs) */
static void lt_jw_ms(struct lt_jw *w, const char *k, __u64 ns)
{
	__u64 us = ns / 1000 + (ns % 1000 >= 500);
	char frac[4] = { (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
			 (char)('0' + us % 10), 0 };

	lt_jw_key(w, k);
	lt_sb_u64(&w->b, us / 1000);
	lt_jw_put(w, ".", 1);
	lt_jw_put(w, frac, 3);
}

LT_JW_INLINE void lt_jw_b(struct lt_jw *w, const char *k, int v)
{
	lt_jw_key(w, k);
	if (v)
		lt_jw_put(w, "true", 4);
	else
		lt_jw_put(w, "false", 5);
}

static const char *const lt_outcome_names[LT_REQ__MAX] = {
	[LT_REQ_COMPLETED] = "completed",
	[LT_REQ_CLIENT_GONE] = "client_gone",
	[LT_REQ_UPSTREAM_FAILED] = "upstream_failed",
	[LT_REQ_TIMED_OUT] = "timed_out",
	[LT_REQ_REJECTED] = "rejected",
	[LT_REQ_CUT] = "cut",
};

/* The tenant, as the Kafka key: the org when there is one, else the user, else the key. */
static void lt_tenant_of(const struct lt_rq_item *it, char *key, size_t len)
{
	const struct lt_reqlog_rec *r = &it->r;
	struct lt_sb b;
	char a[64];

	/* a builder, not snprintf: one per event on the writer's hot path */
	lt_sb_init(&b, key, len);
	if (it->origin == LT_EV_KERNEL) {
		lt_addr_format(it->k.saddr, a, sizeof(a));
		lt_sb_mem(&b, "src:", 4);
		lt_sb_str(&b, a);
	} else if (r->org[0]) {
		lt_sb_mem(&b, "org:", 4);
		lt_sb_str(&b, r->org);
	} else if (r->user[0]) {
		lt_sb_mem(&b, "user:", 5);
		lt_sb_str(&b, r->user);
	} else if (r->key_id[0]) {
		lt_sb_mem(&b, "key:", 4);
		lt_sb_str(&b, r->key_id);
	} else {
		lt_sb_str(&b, "anonymous");
	}
}

static void lt_usage_request(struct lt_jw *w, const struct lt_rq_item *it)
{
	const struct lt_reqlog_rec *r = &it->r;
	int usage = r->flags & LT_REQLOG_F_USAGE, rejected = r->outcome == LT_REQ_REJECTED;
	__u64 settled;

	/* what the tenant was charged in the end: the usage once known, else the reservation */
	settled = rejected ? 0 : usage ? r->tokens_in + r->tokens_out : r->tokens_reserved;
	lt_jw_s(w, "decision", rejected ? "rejected" : "admitted");
	lt_jw_s(w, "user_id", r->user);
	lt_jw_s(w, "org_id", r->org);
	lt_jw_s(w, "key_id", r->key_id);
	lt_jw_s(w, "tier", r->tier);
	lt_jw_s(w, "gen_ai.provider.name", r->provider);
	lt_jw_s(w, "gen_ai.request.model", r->model_requested);
	lt_jw_s(w, "gen_ai.response.model", r->model_served);
	if (usage) {
		lt_jw_u(w, "gen_ai.usage.input_tokens", r->tokens_in);
		lt_jw_u(w, "gen_ai.usage.output_tokens", r->tokens_out);
	}
	lt_jw_u(w, "tokens_reserved", r->tokens_reserved);
	lt_jw_u(w, "tokens_settled", settled);
	lt_jw_u(w, "http.response.status_code", r->status);
	if (it->origin == LT_EV_DECISION)
		return;
	lt_jw_s(w, "outcome", r->outcome < LT_REQ__MAX ? lt_outcome_names[r->outcome] : "unknown");
	lt_jw_s(w, "http.request.method", r->method);
	lt_jw_s(w, "http.route", r->route);
	lt_jw_s(w, "request_id", r->request_id);
	lt_jw_ms(w, "latency_ms", r->latency_ns);
	if (r->flags & LT_REQLOG_F_TTFT)
		lt_jw_ms(w, "time_to_first_token_ms", r->ttft_ns);
	lt_jw_b(w, "stream", r->flags & LT_REQLOG_F_STREAM);
}

static void lt_usage_kernel(struct lt_jw *w, const struct lt_event *e)
{
	const char *reason = lt_stat_name(e->stat);
	char a[64];

	lt_addr_format(e->saddr, a, sizeof(a));
	/* drop_* refused the packet; pass_* and dry-run's would-be drops let it through */
	lt_jw_s(w, "decision", strncmp(reason, "drop_", 5) ? "admitted" : "rejected");
	lt_jw_s(w, "reason", reason);
	lt_jw_s(w, "source.address", a);
	lt_jw_u(w, "destination.port", e->dport);
	lt_jw_s(w, "network.transport", e->proto == 6 ? "tcp" : e->proto == 17 ? "udp" : "other");
	lt_jw_b(w, "syn", e->syn);
	lt_jw_u(w, "ifindex", e->ifindex);
	lt_jw_u(w, "source_policy_id", e->policy_id);
}

int lt_usage_event(const struct lt_rq_item *it, char *buf, size_t len, char *key, size_t keylen,
		   __u64 *time_ns)
{
	static const char *const origin[] = { "gateway", "consume", "kernel" };
	struct lt_jw w = { 0 };

	lt_sb_init(&w.b, buf, len);
	lt_tenant_of(it, key, keylen);
	*time_ns = it->origin == LT_EV_KERNEL ? it->k_real_ns : it->r.start_ns;
	lt_jw_put(&w, "{", 1);
	lt_jw_s(&w, "origin", origin[it->origin <= LT_EV_KERNEL ? it->origin : 0]);
	lt_jw_s(&w, "tenant", key);
	lt_jw_u(&w, "policy_version", it->policy);
	if (it->origin == LT_EV_KERNEL)
		lt_usage_kernel(&w, &it->k);
	else
		lt_usage_request(&w, it);
	lt_jw_put(&w, "}", 1);
	return w.b.len >= w.b.cap ? -ENOSPC : (int)w.b.len;
}
