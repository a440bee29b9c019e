// SPDX-License-Identifier: MIT
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "metrics.h"
#include "units.h"

int lt_met_init(struct lt_met_table *t, unsigned capacity)
{
	if (!capacity || (capacity & (capacity - 1)))
		return -EINVAL;
	t->s = calloc(capacity, sizeof(*t->s));
	if (!t->s)
		return -ENOMEM;
	t->mask = capacity - 1;
	t->dropped = 0;
	return 0;
}

void lt_met_free(struct lt_met_table *t)
{
	free(t->s);
	t->s = NULL;
}

static __u64 lt_met_hash(const char *a, const char *b)
{
	/* each part hashed on its own: "ab"+"c" differs from "a"+"bc" */
	__u64 h = lt_hash_mem(a, strlen(a)) * 1099511628211ULL ^ lt_hash_mem(b, strlen(b));

	return h < 2 ? h + 2 : h;
}

/* The series for (tier, provider), claimed if new; NULL when the table is full. */
static struct lt_met_series *lt_met_find(struct lt_met_table *t, const char *tier,
					 const char *provider)
{
	__u64 h = lt_met_hash(tier, provider);
	unsigned i, n;

	for (i = (unsigned)h & t->mask, n = 0; n <= t->mask; i = (i + 1) & t->mask, n++) {
		struct lt_met_series *s = &t->s[i];
		__u64 tag = __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE), zero = 0;

		if (!tag && __atomic_compare_exchange_n(&s->tag, &zero, 1, 0, __ATOMIC_ACQUIRE,
							__ATOMIC_ACQUIRE)) {
			snprintf(s->tier, sizeof(s->tier), "%s", tier);
			snprintf(s->provider, sizeof(s->provider), "%s", provider);
			__atomic_store_n(&s->tag, h, __ATOMIC_RELEASE); /* names first */
			return s;
		}
		/* Another thread is writing this slot's names: a few stores away. */
		while ((tag = __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE)) == 1)
			sched_yield();
		if (tag == h && !strncmp(s->tier, tier, sizeof(s->tier) - 1) &&
		    !strncmp(s->provider, provider, sizeof(s->provider) - 1))
			return s;
	}
	return NULL;
}

void lt_met_count(struct lt_met_table *t, const char *tier, const char *provider,
		  enum lt_met_verdict v, __u64 tokens)
{
	struct lt_met_series *s = lt_met_find(t, tier, provider);

	if (!s) {
		__atomic_fetch_add(&t->dropped, 1, __ATOMIC_RELAXED);
		return;
	}
	if (v == LT_MET_ADMITTED) {
		__atomic_fetch_add(&s->admitted, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&s->tokens, tokens, __ATOMIC_RELAXED);
	} else if (v == LT_MET_DENIED) {
		__atomic_fetch_add(&s->denied, 1, __ATOMIC_RELAXED);
	} else {
		__atomic_fetch_add(&s->too_big, 1, __ATOMIC_RELAXED);
	}
}

const struct lt_met_series *lt_met_next(const struct lt_met_table *t, unsigned *i)
{
	for (; *i <= t->mask; (*i)++)
		if (__atomic_load_n(&t->s[*i].tag, __ATOMIC_ACQUIRE) >= 2)
			return &t->s[(*i)++];
	return NULL;
}

void lt_mbuf_printf(struct lt_mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = b->cap ? b->cap : 4096;
			char *p;

			while (cap - b->len <= (size_t)n)
				cap *= 2;
			p = realloc(b->p, cap);
			if (!p) {
				b->oom = 1;
				return;
			}
			b->p = p;
			b->cap = cap;
		}
	}
}

#define LT_LOAD(x) ((unsigned long long)__atomic_load_n(&(x), __ATOMIC_RELAXED))

void lt_met_write(const struct lt_met_table *t, struct lt_mbuf *b)
{
	const struct lt_met_series *s;
	unsigned i = 0;

	lt_mbuf_printf(b, "# HELP lt_token_decisions_total Token consume decisions.\n"
			  "# TYPE lt_token_decisions_total counter\n");
	while ((s = lt_met_next(t, &i))) {
		lt_mbuf_printf(b,
			       "lt_token_decisions_total{verdict=\"admitted\",tier=\"%s\","
			       "provider=\"%s\"} %llu\n",
			       s->tier, s->provider, LT_LOAD(s->admitted));
		lt_mbuf_printf(b,
			       "lt_token_decisions_total{verdict=\"rejected\",reason=\"quota\","
			       "tier=\"%s\",provider=\"%s\"} %llu\n",
			       s->tier, s->provider, LT_LOAD(s->denied));
		lt_mbuf_printf(b,
			       "lt_token_decisions_total{verdict=\"rejected\",reason=\"too_big\","
			       "tier=\"%s\",provider=\"%s\"} %llu\n",
			       s->tier, s->provider, LT_LOAD(s->too_big));
	}
	lt_mbuf_printf(b, "# HELP lt_tokens_charged_total Tokens admitted.\n"
			  "# TYPE lt_tokens_charged_total counter\n");
	for (i = 0; (s = lt_met_next(t, &i));)
		lt_mbuf_printf(b, "lt_tokens_charged_total{tier=\"%s\",provider=\"%s\"} %llu\n",
			       s->tier, s->provider, LT_LOAD(s->tokens));
	lt_mbuf_printf(b,
		       "# HELP lt_metric_series_dropped_total Decisions not counted in a series "
		       "because the series table (%u) was full.\n"
		       "# TYPE lt_metric_series_dropped_total counter\n"
		       "lt_metric_series_dropped_total %llu\n",
		       t->mask + 1, LT_LOAD(t->dropped));
}
