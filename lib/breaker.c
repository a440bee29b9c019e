// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include "breaker.h"
#include "maps.h"

/* The state word (lt_abi.h, struct lt_breaker_val). */
#define W_STATE(w) ((unsigned)((w)&3))
#define W_FAIL(w) ((unsigned)(((w) >> 2) & 0xff))
#define W_ISSUED(w) ((unsigned)(((w) >> 10) & 0x3f))
#define W_SUCC(w) ((unsigned)(((w) >> 16) & 0x3f))
#define W_T(w) ((w) >> 22)
#define W_T_MAX ((1ULL << 42) - 1)

static __u64 lt_brk_word(unsigned state, unsigned fail, unsigned issued, unsigned succ, __u64 t)
{
	if (t > W_T_MAX)
		t = W_T_MAX;
	return (__u64)(state & 3) | (__u64)(fail & 0xff) << 2 | (__u64)(issued & 0x3f) << 10 |
	       (__u64)(succ & 0x3f) << 16 | t << 22;
}

uint64_t lt_brk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int lt_breaker_name_ok(const char *name)
{
	size_t i;

	for (i = 0; name[i]; i++) {
		char c = name[i];

		if (i >= LT_BREAKER_NAME_LEN - 1 ||
		    !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return 0;
	}
	return i > 0;
}

static __u64 lt_brk_hash(const char *name)
{
	__u64 h = 1469598103934665603ULL;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 1099511628211ULL;
	h = lt_mix64(h);
	return h ? h : 1;
}

/* Every user of a slot whose name is not written yet writes it: the same bytes. */
static void lt_brk_name(struct lt_breaker_val *s, const char *name)
{
	char buf[LT_BREAKER_NAME_LEN] = { 0 };

	memcpy(buf, name, strlen(name));
	memcpy(s->name, buf, sizeof(buf));
	__atomic_store_n(&s->named, 1, __ATOMIC_RELEASE);
}

/* name's slot (claimed when create), or NULL and *err. name must be valid. */
static struct lt_breaker_val *lt_brk_slot(const struct lt_breakers *b, const char *name, int create,
					  int *err)
{
	__u64 h = lt_brk_hash(name), tag;
	__u32 i0 = (__u32)h & (b->n - 1), k;
	struct lt_breaker_val *s;

	for (k = 0; k < LT_BREAKER_PROBES && k < b->n; k++) {
		s = &b->tab[(i0 + k) & (b->n - 1)];
		tag = __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE);
		if (!tag) {
			/* slots are never freed: name is not further on */
			if (!create) {
				*err = -ENOENT;
				return NULL;
			}
			if (__atomic_compare_exchange_n(&s->tag, &tag, h, 0, __ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE)) {
				lt_brk_name(s, name);
				return s;
			}
			/* tag now holds the winner's hash: maybe ours */
		}
		if (tag != h)
			continue;
		if (!__atomic_load_n(&s->named, __ATOMIC_ACQUIRE)) {
			lt_brk_name(s, name); /* its claimer died before naming it */
			return s;
		}
		if (!strncmp(s->name, name, LT_BREAKER_NAME_LEN))
			return s;
		/* another name under the same 64-bit hash: probe past it */
	}
	*err = create ? -ENOSPC : -ENOENT;
	return NULL;
}

static uint32_t lt_brk_field(const __u32 *f, uint32_t dflt, uint32_t lo, uint32_t hi)
{
	uint32_t v = __atomic_load_n(f, __ATOMIC_RELAXED);

	if (!v)
		v = dflt;
	return v < lo ? lo : v > hi ? hi : v;
}

static void lt_brk_policy_of(const struct lt_breakers *b, const struct lt_breaker_val *s,
			     struct lt_brk_policy *p)
{
	p->fail_threshold = lt_brk_field(&s->fail_threshold, b->dflt.fail_threshold, 1, 255);
	p->recovery_ms = lt_brk_field(&s->recovery_ms, b->dflt.recovery_ms, 1, UINT32_MAX);
	p->probes = lt_brk_field(&s->probes, b->dflt.probes, 1, 63);
	p->probe_timeout_ms =
		lt_brk_field(&s->probe_timeout_ms, b->dflt.probe_timeout_ms, 1, UINT32_MAX);
}

void lt_breakers_init_mem(struct lt_breakers *b, struct lt_breaker_val *tab, uint32_t n,
			  const struct lt_brk_policy *dflt)
{
	b->tab = tab;
	b->n = n;
	b->map_len = 0;
	b->dflt = dflt ? *dflt : LT_BRK_POLICY_DEFAULT;
}

int lt_breakers_open(struct lt_breakers *b, int map_fd, const struct lt_brk_policy *dflt)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	size_t len;
	void *p;

	memset(b, 0, sizeof(*b));
	if (bpf_obj_get_info_by_fd(map_fd, &info, &ilen))
		return -errno;
	if (info.value_size != sizeof(struct lt_breaker_val) || !info.max_entries ||
	    (info.max_entries & (info.max_entries - 1)))
		return -EPROTO; /* not this build's lt_breaker */
	p = lt_map_mmap(map_fd, &len);
	if (!p)
		return -errno;
	lt_breakers_init_mem(b, p, info.max_entries, dflt);
	b->map_len = len;
	return 0;
}

void lt_breakers_close(struct lt_breakers *b)
{
	if (b->tab && b->map_len)
		munmap(b->tab, b->map_len);
	memset(b, 0, sizeof(*b));
}

int lt_breaker_allow_at(struct lt_breakers *b, const char *name, uint64_t now,
			struct lt_brk_verdict *v)
{
	struct lt_breaker_val *s;
	struct lt_brk_policy pol;
	__u64 old, nw, t;
	unsigned iss, suc;
	int ret = 0, tries;

	memset(v, 0, sizeof(*v));
	v->allowed = 1;
	if (!lt_breaker_name_ok(name))
		return -EINVAL;
	s = lt_brk_slot(b, name, 1, &ret);
	if (!s)
		return ret; /* no slot: no breaker, the request goes */
	old = __atomic_load_n(&s->st.word, __ATOMIC_ACQUIRE);
	for (tries = 0; tries < LT_BRK_CAS_TRIES; tries++) {
		t = W_T(old);
		switch (W_STATE(old)) {
		case LT_BRK_OPEN:
			if (now < t)
				goto deny;
			lt_brk_policy_of(b, s, &pol);
			nw = lt_brk_word(LT_BRK_HALF_OPEN, 0, 1, 0, now + pol.probe_timeout_ms);
			break;
		case LT_BRK_HALF_OPEN:
			lt_brk_policy_of(b, s, &pol);
			iss = W_ISSUED(old);
			suc = W_SUCC(old);
			if (iss < pol.probes)
				nw = lt_brk_word(LT_BRK_HALF_OPEN, 0, iss + 1, suc, t);
			else if (now >= t) /* the round's unanswered probes are lost: re-issue */
				nw = lt_brk_word(LT_BRK_HALF_OPEN, 0, suc + 1, suc,
						 now + pol.probe_timeout_ms);
			else
				goto deny;
			break;
		default: /* CLOSED, or a word no state names (read as CLOSED) */
			v->state = LT_BRK_CLOSED;
			return 1;
		}
		if (__atomic_compare_exchange_n(&s->st.word, &old, nw, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			v->probe = 1;
			v->state = LT_BRK_HALF_OPEN;
			return 1;
		}
	}
	return -EAGAIN; /* allowed: the word moved under us LT_BRK_CAS_TRIES times */
deny:
	__atomic_fetch_add(&s->denied, 1, __ATOMIC_RELAXED);
	v->allowed = 0;
	v->state = (enum lt_brk_state)W_STATE(old);
	v->until_ms = t;
	v->retry_after_ms = t > now ? t - now : 0;
	return 0;
}

int lt_breaker_allow(struct lt_breakers *b, const char *name, struct lt_brk_verdict *v)
{
	return lt_breaker_allow_at(b, name, lt_brk_now_ms(), v);
}

int lt_breaker_report_at(struct lt_breakers *b, const char *name, enum lt_brk_outcome o,
			 uint64_t retry_after_ms, uint64_t now)
{
	struct lt_breaker_val *s;
	struct lt_brk_policy pol;
	__u64 old, nw, until;
	unsigned st, f, suc;
	int ret = 0, tries, trip;

	if (!lt_breaker_name_ok(name) || (unsigned)o > LT_BRK_RATE_LIMITED)
		return -EINVAL;
	s = lt_brk_slot(b, name, 1, &ret);
	if (!s)
		return ret;
	lt_brk_policy_of(b, s, &pol);
	old = __atomic_load_n(&s->st.word, __ATOMIC_ACQUIRE);
	for (tries = 0; tries < LT_BRK_CAS_TRIES; tries++) {
		st = W_STATE(old) > LT_BRK_HALF_OPEN ? LT_BRK_CLOSED : W_STATE(old);
		trip = 0;
		if (o == LT_BRK_SUCCESS) {
			if (st == LT_BRK_OPEN || (st == LT_BRK_CLOSED && !W_FAIL(old)))
				return 0; /* nothing to change: no write to the shared line */
			suc = W_SUCC(old) + 1;
			if (st == LT_BRK_CLOSED || suc >= pol.probes)
				nw = lt_brk_word(LT_BRK_CLOSED, 0, 0, 0, 0);
			else
				nw = lt_brk_word(LT_BRK_HALF_OPEN, 0, W_ISSUED(old), suc, W_T(old));
		} else if (o == LT_BRK_RATE_LIMITED) {
			until = now + (retry_after_ms ? retry_after_ms : pol.recovery_ms);
			if (st == LT_BRK_OPEN && W_T(old) >= until)
				return 0; /* already out for longer */
			nw = lt_brk_word(LT_BRK_OPEN, 0, 0, 0, until);
			trip = st != LT_BRK_OPEN;
		} else {
			if (st == LT_BRK_OPEN)
				return 0;
			f = W_FAIL(old) + 1;
			if (st == LT_BRK_HALF_OPEN || f >= pol.fail_threshold) {
				nw = lt_brk_word(LT_BRK_OPEN, 0, 0, 0, now + pol.recovery_ms);
				trip = 1;
			} else {
				nw = lt_brk_word(LT_BRK_CLOSED, f > 255 ? 255 : f, 0, 0, 0);
			}
		}
		if (__atomic_compare_exchange_n(&s->st.word, &old, nw, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			if (trip) { /* hints for operators, after the fact */
				__atomic_store_n(&s->opened_at_ms, now, __ATOMIC_RELAXED);
				__atomic_store_n(&s->last_cause, (__u32)o, __ATOMIC_RELAXED);
				__atomic_fetch_add(&s->trips, 1, __ATOMIC_RELAXED);
			}
			return 0;
		}
	}
	return -EAGAIN;
}

int lt_breaker_report(struct lt_breakers *b, const char *name, enum lt_brk_outcome o,
		      uint64_t retry_after_ms)
{
	return lt_breaker_report_at(b, name, o, retry_after_ms, lt_brk_now_ms());
}

int lt_breaker_reset(struct lt_breakers *b, const char *name)
{
	struct lt_breaker_val *s;
	int ret = 0;

	if (!lt_breaker_name_ok(name))
		return -EINVAL;
	s = lt_brk_slot(b, name, 0, &ret);
	if (!s)
		return ret;
	/* a plain store: the reset wins over whatever was in flight */
	__atomic_store_n(&s->st.word, lt_brk_word(LT_BRK_CLOSED, 0, 0, 0, 0), __ATOMIC_RELEASE);
	__atomic_store_n(&s->last_cause, (__u32)LT_BRK_RESET, __ATOMIC_RELAXED);
	return 0;
}

int lt_breaker_configure(struct lt_breakers *b, const char *name, const struct lt_brk_policy *p)
{
	struct lt_breaker_val *s;
	int ret = 0;

	if (!lt_breaker_name_ok(name))
		return -EINVAL;
	s = lt_brk_slot(b, name, 1, &ret);
	if (!s)
		return ret;
	__atomic_store_n(&s->fail_threshold, p->fail_threshold, __ATOMIC_RELAXED);
	__atomic_store_n(&s->recovery_ms, p->recovery_ms, __ATOMIC_RELAXED);
	__atomic_store_n(&s->probes, p->probes, __ATOMIC_RELAXED);
	__atomic_store_n(&s->probe_timeout_ms, p->probe_timeout_ms, __ATOMIC_RELAXED);
	return 0;
}

int lt_breaker_register(struct lt_breakers *b, const char *name)
{
	int ret = 0;

	if (!lt_breaker_name_ok(name))
		return -EINVAL;
	return lt_brk_slot(b, name, 1, &ret) ? 0 : ret;
}

static void lt_brk_info_of(const struct lt_breakers *b, const struct lt_breaker_val *s,
			   struct lt_brk_info *out)
{
	__u64 w = __atomic_load_n(&s->st.word, __ATOMIC_ACQUIRE);

	memset(out, 0, sizeof(*out));
	if (__atomic_load_n(&s->named, __ATOMIC_ACQUIRE))
		snprintf(out->name, sizeof(out->name), "%.*s", (int)sizeof(s->name) - 1, s->name);
	out->state = W_STATE(w) > LT_BRK_HALF_OPEN ? LT_BRK_CLOSED : (enum lt_brk_state)W_STATE(w);
	out->failures = W_FAIL(w);
	out->issued = W_ISSUED(w);
	out->succeeded = W_SUCC(w);
	out->t_ms = W_T(w);
	out->opened_at_ms = __atomic_load_n(&s->opened_at_ms, __ATOMIC_RELAXED);
	out->trips = __atomic_load_n(&s->trips, __ATOMIC_RELAXED);
	out->denied = __atomic_load_n(&s->denied, __ATOMIC_RELAXED);
	out->last_cause = __atomic_load_n(&s->last_cause, __ATOMIC_RELAXED);
	lt_brk_policy_of(b, s, &out->policy);
}

int lt_breaker_info(const struct lt_breakers *b, uint32_t i, struct lt_brk_info *out)
{
	if (i >= b->n || !__atomic_load_n(&b->tab[i].tag, __ATOMIC_ACQUIRE))
		return -ENOENT;
	lt_brk_info_of(b, &b->tab[i], out);
	return 0;
}

int lt_breaker_get(const struct lt_breakers *b, const char *name, struct lt_brk_info *out)
{
	struct lt_breaker_val *s;
	int ret = 0;

	if (!lt_breaker_name_ok(name))
		return -ENOENT;
	s = lt_brk_slot(b, name, 0, &ret);
	if (!s)
		return ret;
	lt_brk_info_of(b, s, out);
	return 0;
}

const char *lt_brk_state_name(unsigned state)
{
	static const char *const names[] = { "closed", "open", "half_open" };

	return state < 3 ? names[state] : "closed";
}

const char *lt_brk_outcome_name(unsigned o)
{
	static const char *const names[LT_BRK__OUTCOME_MAX] = {
		[LT_BRK_SUCCESS] = "success",	   [LT_BRK_FAIL_5XX] = "5xx",
		[LT_BRK_FAIL_TIMEOUT] = "timeout", [LT_BRK_FAIL_CONNECT] = "connect",
		[LT_BRK_FAIL_STREAM] = "stream",   [LT_BRK_RATE_LIMITED] = "rate_limited",
		[LT_BRK_RESET] = "reset",
	};

	return o < LT_BRK__OUTCOME_MAX ? names[o] : "unknown";
}

/* ---- a provider's "come back later", in ms ------------------------------------- */

#define LT_BRK_RETRY_MAX_MS (24ULL * 3600 * 1000) /* a day: beyond is a broken header */

/* "12", "12.5" (units of unit_ms); -1 when s is not a plain non-negative number. */
static long double lt_brk_num(const char **p)
{
	const char *s = *p;
	long double v = 0, scale = 1;
	int digits = 0;

	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (*s++ - '0');
		digits++;
	}
	if (*s == '.') {
		s++;
		while (*s >= '0' && *s <= '9') {
			scale /= 10;
			v += (*s++ - '0') * scale;
			digits++;
		}
	}
	*p = s;
	return digits ? v : -1;
}

static const char *lt_brk_trim(const char *s)
{
	while (s && (*s == ' ' || *s == '\t'))
		s++;
	return s;
}

/* OpenAI's duration: one or more <number><h|m|s|ms>, e.g. "6m0s", "1.5s", "20ms". */
static long double lt_brk_duration_ms(const char *s)
{
	long double total = 0, v;
	int parts = 0;

	s = lt_brk_trim(s);
	while (*s && *s != ' ' && *s != '\t') {
		v = lt_brk_num(&s);
		if (v < 0)
			return -1;
		if (!strncmp(s, "ms", 2)) {
			s += 2;
		} else if (*s == 'h') {
			v *= 3600000;
			s++;
		} else if (*s == 'm') {
			v *= 60000;
			s++;
		} else if (*s == 's') {
			v *= 1000;
			s++;
		} else {
			return -1;
		}
		total += v;
		parts++;
	}
	return parts && !*lt_brk_trim(s) ? total : -1;
}

/* A plain number (seconds or ms), nothing after it but blanks. */
static long double lt_brk_plain(const char *s, long double unit_ms)
{
	long double v;

	s = lt_brk_trim(s);
	v = lt_brk_num(&s);
	return v >= 0 && !*lt_brk_trim(s) ? v * unit_ms : -1;
}

/* Retry-After as an HTTP-date (RFC 9110 IMF-fixdate): ms from now, or -1. */
static long double lt_brk_http_date(const char *s)
{
	struct tm tm = { 0 };
	const char *end = strptime(lt_brk_trim(s), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	time_t t, now = time(NULL);

	if (!end || *lt_brk_trim(end))
		return -1;
	t = timegm(&tm);
	return t > now ? (long double)(t - now) * 1000 : 0;
}

uint64_t lt_breaker_retry_after_ms(const char *retry_after, const char *retry_after_ms,
				   const char *reset_requests, const char *reset_tokens)
{
	long double best = 0, v;

	if (retry_after) {
		v = lt_brk_plain(retry_after, 1000);
		if (v < 0)
			v = lt_brk_http_date(retry_after);
		if (v > best)
			best = v;
	}
	if (retry_after_ms && (v = lt_brk_plain(retry_after_ms, 1)) > best)
		best = v;
	if (reset_requests && (v = lt_brk_duration_ms(reset_requests)) > best)
		best = v;
	if (reset_tokens && (v = lt_brk_duration_ms(reset_tokens)) > best)
		best = v;
	if (best > LT_BRK_RETRY_MAX_MS)
		best = LT_BRK_RETRY_MAX_MS;
	return (uint64_t)(best + 0.999L); /* up: never come back early */
}
