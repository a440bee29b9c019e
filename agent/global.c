// SPDX-License-Identifier: MIT
/*
 * global.c - global limits across hosts, mode replicate (global.h; records:
 * docs/events/global.v1.md).
 *
 * One thread owns the producer, the consumer and the tables below; it takes
 * g->mu around each change so that the API's status read sees one state. The
 * quota engine is called outside g->mu except for the debits (lt_quota_debit
 * takes no lock of the quota engine: it is a CAS on the mmapped slot).
 *
 * Why the overshoot is bounded (README "Global limits across hosts"): host i
 * admits against a bucket that holds its own admissions and the debits of the
 * others' spend; host j's spend up to the event time e of the newest record
 * applied here has been debited. Over any window [t1, t2] ending in an
 * admission on i, i's admissions plus the debits added in the window are at
 * most C + R*(t2 - t1) (the bucket's own bound: a debit is an admission
 * stacked on top); the others' spend in the window exceeds the debits by at
 * most their spend since their newest applied record, which is at most
 * min(lambda_j * tau, C + R * tau) (lambda_j: j's admission rate; j's own copy
 * of the bucket bounds what j can admit in tau). tau is measured here.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include "decide.h"
#include "global.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "quota.h"
#include "tenant.h"
#include "units.h"

#define LT_GL_HOSTS 16 /* other hosts tracked; more are counted and ignored */
#define LT_GL_BUCKETS 4096 /* global buckets tracked on this host */
#define LT_GL_HASH (2 * LT_GL_BUCKETS) /* open addressing, at most half full */
#define LT_GL_HOLDS 32 /* closed: holds kept for lifting; older ones simply leak */
#define LT_GL_META_NS (10 * LT_NS_PER_SEC) /* partitions looked up again this often */
/*
 * A record whose time or window is further ahead of our clock than this is
 * refused (invalid): windows only grow, so one stamped years ahead (a
 * publisher's clock wrong at its start, or a forged record) would hide every
 * later window of that host until our clock caught up, and its liveness would
 * never age (the config sync refuses versions an hour ahead alike).
 */
#define LT_GL_FUTURE_MS (3600ULL * 1000)
#define LT_GL_HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/"

enum lt_gl_result {
	LT_GR_APPLIED, /* a greater value: the increase was debited */
	LT_GR_DUPLICATE, /* not greater than what is known (duplicate, reordered, own) */
	LT_GR_BASELINE, /* first value of a window older than this agent: taken as known */
	LT_GR_UNKNOWN, /* no global rule here, or no limit governs the key here */
	LT_GR_INVALID, /* not a global.v1 record */
	LT_GR_CLIPPED, /* applied, but only what that host's bucket can have let through */
	LT_GR__MAX
};

static const char *const lt_gr_name[LT_GR__MAX] = { "applied", "duplicate", "baseline",
						    "unknown", "invalid",   "clipped" };

static const char *const lt_stale_name[] = { "share", "last", "closed" };

struct lt_gl_origin {
	char host[128];
	__u64 records; /* bucket records read since start */
	__u64 last_event_ms; /* newest event time read (heartbeat or bucket record) */
	__u64 last_read_ms; /* when, unix ms */
	__u64 delay_ms_last, delay_ms_max; /* read here - event time */
	__u64 tau_ms_max; /* the longest unseen age of a stream of it (see lt_gl_take) */
	__u64 measured; /* bucket records in the current measurement */
};

struct lt_gl_remote {
	__u64 window; /* the origin's window (its epoch, unix ms); 0 = none seen */
	__u64 tokens; /* greatest cumulative spend seen in window */
	__u64 last_event_ms; /* event time of the newest record applied of this stream */
	__u64 last_raised_ms; /* our clock (unix ms) when last_event_ms last grew */
	__u64 debited; /* tokens debited here since start */
};

struct lt_gl_bucket {
	char key[LT_BUCKET_KEY_LEN];
	__u32 handle; /* lt_quota_bucket's */
	int rule;
	int seen; /* in the index at this scan */
	/*
	 * In the index (handle valid, published). A bucket reclaimed here (empty
	 * for idle_timeout) keeps its entry untracked: the other hosts' counts in
	 * rem[] stay known, so when their spend makes it again only the increase
	 * is debited, never their whole window a second time.
	 */
	int tracked;
	__u64 window; /* our epoch: unix ms when we started counting */
	__u64 base; /* lt_usage.tokens at the epoch's start */
	__u64 cum; /* our cumulative spend in window, published (monotone) */
	__u64 share_cum; /* share: cum already multiplied */
	__u64 stale_debited; /* tokens debited by on_stale */
	struct lt_slot_seen holds[LT_GL_HOLDS];
	int nholds;
	struct lt_gl_remote rem[LT_GL_HOSTS];
};

struct lt_global {
	struct lt_quota *q;
	struct lt_kafka_config k;
	struct lt_global_config c;
	char host[128];
	__u64 start_ms; /* windows of others older than this are a baseline */
	rd_kafka_t *prk, *crk;
	pthread_t thr;
	int thr_on, stop; /* stop: __atomic */
	int nparts;
	__u64 meta_ns, next_tick_ns, last_log_ns;
	__u64 tick_ms; /* event time of the current tick */
	__u64 prev_tick_ms; /* of the tick before (our start before the first) */
	pthread_mutex_t mu; /* everything below */
	struct lt_gl_origin orig[LT_GL_HOSTS];
	int norig;
	struct lt_gl_bucket *b; /* [LT_GL_BUCKETS] */
	int nb;
	int *hidx; /* [LT_GL_HASH]: key -> index in b + 1, 0 = empty; entries are never removed */
	int stale, nlive;
	int scanned; /* the index has been scanned once: buckets found since are new */
	__u64 stale_since_ms, stale_total; /* stale_total: times it became stale */
	__u64 last_acked_ms; /* event time of our newest record the broker acknowledged */
	__u64 last_sent_ms; /* event time of our newest record handed to librdkafka */
	__u64 first_sent_ms; /* of our first: nothing is overdue before tau_max from it */
	__u64 measure_ms; /* start of the current measurement */
	__u64 results[LT_GR__MAX];
	__u64 clipped_tokens; /* claimed by records beyond what lt_gl_most allows, not debited */
	__u64 published, dropped, acked, failed;
	__u64 seq; /* of our records (ce_id), on the thread */
	__u64 hosts_ignored;
};

static __u64 lt_gl_real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * 1000ULL + (__u64)ts.tv_nsec / 1000000ULL;
}

static int lt_gl_may_log(struct lt_global *g)
{
	__u64 now = lt_now_ns();

	if (now - g->last_log_ns < 5 * LT_NS_PER_SEC)
		return 0;
	g->last_log_ns = now;
	return 1;
}

static int lt_gl_rule(const struct lt_global *g, const char *key)
{
	int i;

	for (i = 0; i < g->c.nrules; i++)
		if (!strncmp(key, g->c.rules[i].prefix, strlen(g->c.rules[i].prefix)))
			return i;
	return -1;
}

static __u32 lt_gl_hash(const char *s)
{
	__u64 h = 1469598103934665603ULL; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return (__u32)(h ^ (h >> 32)) & (LT_GL_HASH - 1);
}

/* The slot of key in hidx: its entry, or the empty one where it would go. */
static __u32 lt_gl_probe(const struct lt_global *g, const char *key)
{
	__u32 i = lt_gl_hash(key);

	while (g->hidx[i] && strcmp(g->b[g->hidx[i] - 1].key, key))
		i = (i + 1) & (LT_GL_HASH - 1);
	return i;
}

static struct lt_gl_bucket *lt_gl_find(struct lt_global *g, const char *key)
{
	__u32 i = lt_gl_probe(g, key);

	return g->hidx[i] ? &g->b[g->hidx[i] - 1] : NULL;
}

/* hidx again from b[] (an entry was given another key: rare, the table was full). */
static void lt_gl_rehash(struct lt_global *g)
{
	int i;

	memset(g->hidx, 0, LT_GL_HASH * sizeof(*g->hidx));
	for (i = 0; i < g->nb; i++)
		g->hidx[lt_gl_probe(g, g->b[i].key)] = i + 1;
}

/*
 * The origin entry of host, made if new. A full table reuses the entry of the
 * host heard from longest ago once it is past host_ttl (not live), with what
 * every bucket knew of it: hosts whose names change (a pod's on each restart)
 * would otherwise fill it for good, and every host after the 16th would be
 * ignored, its spend never debited. A dead host that comes back is then new:
 * its window is debited whole again (more refused, never more admitted).
 */
static int lt_gl_origin(struct lt_global *g, const char *host, __u64 now_ms)
{
	__u64 ttl = g->c.host_ttl_ns / 1000000ULL;
	int i, oi = -1;

	for (i = 0; i < g->norig; i++)
		if (!strcmp(g->orig[i].host, host))
			return i;
	if (g->norig < LT_GL_HOSTS) {
		oi = g->norig++;
	} else {
		for (i = 0; i < g->norig; i++)
			if (g->orig[i].last_event_ms + ttl < now_ms &&
			    (oi < 0 || g->orig[i].last_event_ms < g->orig[oi].last_event_ms))
				oi = i;
		if (oi < 0) {
			g->hosts_ignored++;
			return -1;
		}
		for (i = 0; i < g->nb; i++)
			memset(&g->b[i].rem[oi], 0, sizeof(g->b[i].rem[oi]));
	}
	memset(&g->orig[oi], 0, sizeof(g->orig[0]));
	snprintf(g->orig[oi].host, sizeof(g->orig[0].host), "%s", host);
	return oi;
}

/*
 * A new tracked bucket (under g->mu): our window starts now. A bucket made
 * since we started counts from 0 (lt_quota_bucket zeroes lt_usage); one that
 * was there when we started counts from its count now (what it spent before
 * was published by the agent before us, or never).
 */
static struct lt_gl_bucket *lt_gl_track(struct lt_global *g, const char *key, __u32 handle,
					int rule)
{
	struct lt_gl_bucket *b = NULL;
	struct lt_usage u;
	int i, reused = 0;

	if (g->nb < LT_GL_BUCKETS) {
		b = &g->b[g->nb++];
	} else {
		reused = 1;
		/* full: an untracked entry goes (what it knew of the others with it) */
		for (i = 0; i < g->nb && !b; i++)
			if (!g->b[i].tracked)
				b = &g->b[i];
		if (!b)
			return NULL;
	}
	memset(b, 0, sizeof(*b));
	snprintf(b->key, sizeof(b->key), "%s", key);
	b->handle = handle;
	b->rule = rule;
	b->seen = 1;
	b->tracked = 1;
	if (reused)
		lt_gl_rehash(g);
	else
		g->hidx[lt_gl_probe(g, key)] = g->nb;
	lt_quota_usage(g->q, handle, &u);
	b->base = g->scanned ? 0 : u.tokens;
	b->window = g->tick_ms ? g->tick_ms : lt_gl_real_ms();
	return b;
}

/* Debits tokens onto b's bucket; a reclaimed slot is looked up (made) again once. */
static __u64 lt_gl_debit(struct lt_global *g, struct lt_gl_bucket *b, __u64 tokens, __u32 caps,
			 struct lt_slot_seen *resv)
{
	char err[160];
	__u64 added;
	__u32 h;
	int v;

	v = LT_FREED;
	added = 0;
	if (b->tracked)
		added = lt_quota_debit(g->q, b->handle, tokens, caps, lt_now_ns(), resv, &v);
	if (v == LT_FREED && !lt_quota_bucket(g->q, b->key, NULL, &h, err, sizeof(err))) {
		/* a new slot: its own count starts a new window of ours */
		b->handle = h;
		b->tracked = 1;
		b->base = 0; /* a new bucket: lt_usage starts at 0 */
		b->cum = 0;
		b->share_cum = 0;
		b->nholds = 0;
		b->window = lt_gl_real_ms();
		added = lt_quota_debit(g->q, b->handle, tokens, caps, lt_now_ns(), resv, &v);
	}
	if (v && lt_gl_may_log(g))
		log_warn("global: cannot debit %llu tokens on %s (%s)", (unsigned long long)tokens,
			 b->key, v == LT_CONTENDED ? "contended" : "reclaimed");
	return added;
}

/* ---- apply: one record of another host ---------------------------------------------------- */

/*
 * The most another host can have spent on b in span_ms of its clock: its copy
 * of the bucket (the same limit) admits at most C + R*t, and the gateway's
 * reconcile may charge one more capacity past that (lt_slot_charge's 2
 * capacities); + 1 ms for whole-ms times. A record that claims more is a
 * wrong or hostile producer on the topic: believing it would hold the
 * bucket closed for up to LT_DEBIT_CAPS_GLOBAL capacities. Unlimited or
 * unknown limits: no bound.
 */
static __u64 lt_gl_most(struct lt_global *g, const struct lt_gl_bucket *b, __u64 span_ms)
{
	struct lt_view v;
	unsigned __int128 leak;

	if (!b->tracked || lt_quota_peek(g->q, b->handle, lt_now_ns(), &v) || v.unlimited ||
	    !v.leak_period_ns)
		return ~0ULL;
	leak = (unsigned __int128)v.leak_tokens * ((unsigned __int128)span_ms + 1) * 1000000 /
		       v.leak_period_ns +
	       1;
	leak += 2 * (unsigned __int128)v.capacity;
	return leak > ~0ULL ? ~0ULL : (__u64)leak;
}

static int lt_gl_ju(json_t *o, const char *name, __u64 *out)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EINVAL;
	*out = (__u64)json_integer_value(v);
	return 0;
}

/*
 * Under g->mu. Takes the record, debits the increase. The tau sample is the
 * age of the stream's newest applied record when this one is applied: the
 * longest time any spend of that host on that bucket stayed unseen here (its
 * spend up to that record's event time was debited). A stream's first record
 * counts from the publisher's tick before it (prev_time).
 */
static enum lt_gl_result lt_gl_take(struct lt_global *g, const rd_kafka_message_t *m)
{
	__u64 window, tokens, ev, prev, now_ms = lt_gl_real_ms(), d, tau, ref;
	const char *host, *key;
	struct lt_gl_bucket *b;
	struct lt_gl_remote *r;
	struct lt_gl_origin *o;
	char err[160], bkey[LT_BUCKET_KEY_LEN];
	json_t *rec, *hb;
	json_error_t je;
	enum lt_gl_result res;
	int oi, rule;
	__u32 h;

	rec = json_loadb(m->payload, m->len, 0, &je);
	if (!json_is_object(rec))
		goto invalid;
	host = json_string_value(json_object_get(rec, "host"));
	if (!host || !host[0] || strlen(host) >= sizeof(g->orig[0].host) ||
	    strspn(host, LT_GL_HOST_CHARS) != strlen(host) || lt_gl_ju(rec, "time", &ev))
		goto invalid;
	if (ev > now_ms + LT_GL_FUTURE_MS)
		goto ahead;
	if (!strcmp(host, g->host)) {
		json_decref(rec);
		return LT_GR_DUPLICATE; /* our own */
	}
	oi = lt_gl_origin(g, host, now_ms);
	if (oi < 0) {
		json_decref(rec);
		return LT_GR_UNKNOWN;
	}
	o = &g->orig[oi];
	d = now_ms > ev ? now_ms - ev : 0;
	if (ev > o->last_event_ms)
		o->last_event_ms = ev;
	o->last_read_ms = now_ms;
	hb = json_object_get(rec, "heartbeat");
	if (json_is_true(hb)) {
		json_decref(rec);
		return LT_GR_DUPLICATE; /* liveness only */
	}
	key = json_string_value(json_object_get(rec, "bucket"));
	if (!key || !key[0] || strlen(key) >= sizeof(bkey) || lt_gl_ju(rec, "window", &window) ||
	    !window || lt_gl_ju(rec, "tokens", &tokens) || lt_gl_ju(rec, "prev_time", &prev) ||
	    prev > ev)
		goto invalid;
	if (window > now_ms + LT_GL_FUTURE_MS) {
		ev = window;
		goto ahead;
	}
	/* one spelling per bucket: a variant would make a second bucket and fill the table */
	if (!lt_bucket_key_canonical(key))
		goto invalid;
	snprintf(bkey, sizeof(bkey), "%s", key);
	json_decref(rec);
	o->records++;
	o->measured++;
	o->delay_ms_last = d;
	if (d > o->delay_ms_max)
		o->delay_ms_max = d;
	rule = lt_gl_rule(g, bkey);
	if (rule < 0)
		return LT_GR_UNKNOWN;
	b = lt_gl_find(g, bkey);
	if (!b) {
		/* its first spend reaches us before ours: make the bucket here */
		if (lt_quota_bucket(g->q, bkey, NULL, &h, err, sizeof(err)))
			return LT_GR_UNKNOWN;
		b = lt_gl_track(g, bkey, h, rule);
		if (!b)
			return LT_GR_UNKNOWN;
	}
	r = &b->rem[oi];
	/*
	 * Everything it spent up to the newest record we applied of this stream
	 * has been debited; a first record covers spend since the publisher's
	 * tick before it (when the bucket had none it had not published).
	 */
	ref = r->last_event_ms ? r->last_event_ms : prev;
	res = LT_GR_DUPLICATE;
	if (window < r->window || (window == r->window && tokens <= r->tokens)) {
		/* nothing new */
	} else if (!r->window && window < g->start_ms) {
		/* a window that ran before we started: what it spent then is not ours to know */
		res = LT_GR_BASELINE;
	} else {
		__u64 from = window == r->window ? ref : window;
		__u64 inc = window == r->window ? tokens - r->tokens : tokens;
		__u64 span = ev > from ? ev - from : 0, most;

		/*
		 * Behind the stream's newest time (a record stamped ahead, forged or
		 * before the sender's clock stepped back): the time waited here since
		 * that time was taken. Its span was 0, so every later record was
		 * clipped to 2C + R*1 ms + 1 for up to LT_GL_FUTURE_MS, whatever time
		 * had passed (one record that added nothing did it). A forger gains
		 * nothing by it: its own record's time already sets its span.
		 */
		if (window == r->window && ev < from && now_ms > r->last_raised_ms &&
		    now_ms - r->last_raised_ms > span)
			span = now_ms - r->last_raised_ms;
		most = lt_gl_most(g, b, span);

		if (inc > most) {
			/*
			 * More than that host's own bucket can have let through since
			 * its last record (or its window's start): not believed. What is
			 * taken is what the stream is known to have reached, so its real
			 * records count again once they pass it.
			 */
			g->clipped_tokens += inc - most;
			tokens = (window == r->window ? r->tokens : 0) + most;
			inc = most;
			res = LT_GR_CLIPPED;
		} else {
			res = LT_GR_APPLIED;
		}
		r->debited += lt_gl_debit(g, b, inc, LT_DEBIT_CAPS_GLOBAL, NULL);
	}
	if (res != LT_GR_DUPLICATE) {
		r->window = window;
		r->tokens = tokens;
	}
	if (ev > r->last_event_ms) {
		r->last_event_ms = ev;
		r->last_raised_ms = now_ms;
	}
	/*
	 * The clock after the debit: until its CAS the spend was unseen here. + 1:
	 * both times are whole ms (floored), the true span can be 1 ms longer.
	 */
	now_ms = lt_gl_real_ms() + 1;
	tau = now_ms > ref ? now_ms - ref : 0;
	if (tau > o->tau_ms_max)
		o->tau_ms_max = tau;
	return res;
ahead:
	/* said once in a while: a host whose clock is that far ahead is not heard at all */
	if (lt_gl_may_log(g))
		log_warn("global: a record of host %s is %llu s ahead of this host's clock "
			 "(at most %llu s): refused",
			 host, (unsigned long long)((ev - now_ms) / 1000), LT_GL_FUTURE_MS / 1000);
invalid:
	json_decref(rec);
	return LT_GR_INVALID;
}

/* ---- publish: our spend, every S ------------------------------------------------------------ */

static void lt_gl_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct lt_global *g = opaque;
	__u64 ev = (__u64)(uintptr_t)m->_private; /* the record's event time (lt_gl_send) */

	(void)rk;
	pthread_mutex_lock(&g->mu);
	if (m->err) {
		g->failed++;
	} else {
		g->acked++;
		if (ev > g->last_acked_ms)
			g->last_acked_ms = ev;
	}
	pthread_mutex_unlock(&g->mu);
}

/* One record, CloudEvents 1.0 in Kafka binary mode (docs/events/global.v1.md). */
static void lt_gl_send(struct lt_global *g, const char *key, json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT), id[192], when[40];
	rd_kafka_headers_t *h;
	rd_kafka_resp_err_t e;

	if (!s)
		return;
	/* ce_id: host, this run (start ms, 32 bits hex), sequence */
	snprintf(id, sizeof(id), "%s-%08x-%llu", g->host, (unsigned)(g->start_ms & 0xffffffffU),
		 (unsigned long long)++g->seq);
	lt_outbox_time(g->tick_ms * 1000000ULL, when, sizeof(when));
	h = rd_kafka_headers_new(8);
	rd_kafka_header_add(h, "ce_specversion", -1, "1.0", -1);
	rd_kafka_header_add(h, "ce_id", -1, id, -1);
	rd_kafka_header_add(h, "ce_source", -1, g->host, -1);
	rd_kafka_header_add(h, "ce_type", -1, LT_GLOBAL_TYPE, -1);
	rd_kafka_header_add(h, "ce_time", -1, when, -1);
	rd_kafka_header_add(h, "ce_subject", -1, key, -1);
	rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
	e = rd_kafka_producev(g->prk, RD_KAFKA_V_TOPIC(g->c.topic),
			      RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(s, strlen(s)),
			      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			      RD_KAFKA_V_TIMESTAMP((int64_t)g->tick_ms),
			      RD_KAFKA_V_OPAQUE((void *)(uintptr_t)g->tick_ms),
			      RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
	free(s);
	/* a value lost is harmless: the next one carries the whole cumulative count */
	if (e) {
		rd_kafka_headers_destroy(h); /* on success the message owns them */
		g->dropped++;
	} else {
		g->published++;
	}
}

struct lt_gl_scan {
	struct lt_global *g;
	int rule;
	char (*keys)[LT_BUCKET_KEY_LEN];
	__u32 *handles;
	int n, cap;
};

static void lt_gl_scan_cb(void *ctx, const char *key, __u32 handle)
{
	struct lt_gl_scan *s = ctx;

	/* under the quota engine's read lock: only copy */
	if (s->n == s->cap)
		return;
	snprintf(s->keys[s->n], LT_BUCKET_KEY_LEN, "%s", key);
	s->handles[s->n++] = handle;
}

/* Staleness and N_live (under g->mu), at now_ms. */
static void lt_gl_staleness(struct lt_global *g, __u64 now_ms)
{
	__u64 tau_max = g->c.tau_max_ns / 1000000ULL, ttl = g->c.host_ttl_ns / 1000000ULL;
	int i, stale = 0, live = 1;

	for (i = 0; i < g->norig; i++) {
		const struct lt_gl_origin *o = &g->orig[i];
		/* a host whose clock is ahead of ours sends times past now: age 0, not 2^64 - x */
		__u64 age = now_ms > o->last_event_ms ? now_ms - o->last_event_ms : 0;

		/* live: heard from within host_ttl (by event time, so a dead sync keeps
		 * the hosts it knew live for that long) */
		if (!o->last_event_ms || age > ttl)
			continue;
		live++;
		if (age > tau_max)
			stale = 1;
	}
	/* our own spend has not reached the broker within tau_max */
	if (g->first_sent_ms) {
		__u64 ref =
			g->last_acked_ms > g->first_sent_ms ? g->last_acked_ms : g->first_sent_ms;

		if (g->last_sent_ms > ref + tau_max && now_ms > ref + tau_max)
			stale = 1;
	}
	if (stale && !g->stale) {
		g->stale_since_ms = now_ms;
		g->stale_total++;
		log_warn("global: the sync is older than tau_max (%llu ms): on_stale applies",
			 (unsigned long long)tau_max);
	} else if (!stale && g->stale) {
		log_info("global: the sync is fresh again after %llu ms",
			 (unsigned long long)(now_ms - g->stale_since_ms));
	}
	g->stale = stale;
	g->nlive = live;
}

/* on_stale of b's rule while stale (under g->mu); lifting the holds once fresh. */
static void lt_gl_on_stale(struct lt_global *g, struct lt_gl_bucket *b)
{
	int how = g->c.rules[b->rule].on_stale, i;

	if (!g->stale) {
		for (i = 0; i < b->nholds; i++)
			lt_quota_undebit(g->q, &b->holds[i], lt_now_ns());
		b->nholds = 0;
		b->share_cum = b->cum;
		return;
	}
	if (how == LT_STALE_SHARE) {
		/* each of the N_live - 1 others is taken to spend what we spend */
		if (b->cum > b->share_cum && g->nlive > 1)
			b->stale_debited +=
				lt_gl_debit(g, b, (b->cum - b->share_cum) * (__u64)(g->nlive - 1),
					    LT_DEBIT_CAPS_GLOBAL, NULL);
		b->share_cum = b->cum;
	} else if (how == LT_STALE_CLOSED) {
		/*
		 * Held at twice the capacity, topped up every S: nothing is admitted
		 * while stale (leaking back below the capacity takes C/R > S). The holds
		 * are given back when the sync is fresh. A top-up that lands right on
		 * the last hold (nothing stacked between: the usual case) extends it,
		 * so a long outage keeps one hold; the reservation keeps the meta of
		 * its first part, which only over-counts the refunds since (a refund
		 * gives back less, never more). Past LT_GL_HOLDS separate holds, the
		 * newest leak instead.
		 */
		struct lt_slot_seen h, *last = b->nholds ? &b->holds[b->nholds - 1] : NULL;
		__u64 added = lt_gl_debit(g, b, ~0ULL >> 2, 2, &h);

		b->stale_debited += added;
		if (!added || !h.cost_units)
			return;
		if (last && last->tat == h.tat - h.cost_units &&
		    !((last->meta ^ h.meta) & LT_META_ID_MASK) && last->slot == h.slot) {
			last->tat = h.tat;
			last->cost_units += h.cost_units;
		} else if (b->nholds < LT_GL_HOLDS) {
			b->holds[b->nholds++] = h;
		}
	}
}

static void lt_gl_tick(struct lt_global *g)
{
	static char keys[LT_GL_BUCKETS][LT_BUCKET_KEY_LEN];
	static __u32 handles[LT_GL_BUCKETS];
	struct lt_gl_scan sc = { .g = g, .keys = keys, .handles = handles, .cap = LT_GL_BUCKETS };
	struct lt_gl_bucket *b;
	struct lt_usage u;
	json_t *v;
	int i, r;

	/* the event time first: every count read below is spend up to at least it */
	g->prev_tick_ms = g->tick_ms ? g->tick_ms : g->start_ms;
	g->tick_ms = lt_gl_real_ms();
	for (r = 0; r < g->c.nrules; r++)
		lt_quota_each(g->q, g->c.rules[r].prefix, lt_gl_scan_cb, &sc);
	pthread_mutex_lock(&g->mu);
	for (i = 0; i < g->nb; i++)
		g->b[i].seen = 0;
	for (i = 0; i < sc.n; i++) {
		r = lt_gl_rule(g, keys[i]);
		b = lt_gl_find(g, keys[i]);
		if (r < 0)
			continue;
		if (!b) {
			b = lt_gl_track(g, keys[i], handles[i], r);
			if (!b)
				continue;
		} else if (!b->tracked || b->handle != handles[i]) {
			/* the bucket was reclaimed and made again: a new window, from 0 */
			b->handle = handles[i];
			b->tracked = 1;
			b->base = 0;
			b->cum = b->share_cum = 0;
			b->nholds = 0;
			b->window = g->tick_ms;
		}
		b->seen = 1;
	}
	g->scanned = 1;
	/* what the index no longer has (reclaimed: it was empty) is no longer published */
	for (i = 0; i < g->nb; i++)
		if (!g->b[i].seen)
			g->b[i].tracked = 0;
	lt_gl_staleness(g, g->tick_ms);
	for (i = 0; i < g->nb; i++) {
		b = &g->b[i];
		if (!b->tracked)
			continue;
		lt_quota_usage(g->q, b->handle, &u);
		/* a refund lowers lt_usage: the published count keeps its maximum */
		if (u.tokens >= b->base && u.tokens - b->base > b->cum)
			b->cum = u.tokens - b->base;
		lt_gl_on_stale(g, b);
		v = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "host", g->host, "bucket",
			      b->key, "window", (json_int_t)b->window, "tokens", (json_int_t)b->cum,
			      "time", (json_int_t)g->tick_ms, "prev_time",
			      (json_int_t)g->prev_tick_ms, "interval_ms",
			      (json_int_t)(g->c.interval_ns / 1000000ULL));
		if (v)
			lt_gl_send(g, b->key, v);
		json_decref(v);
	}
	{
		char hk[160];

		snprintf(hk, sizeof(hk), "host/%s", g->host);
		v = json_pack("{s:s, s:b, s:I}", "host", g->host, "heartbeat", 1, "time",
			      (json_int_t)g->tick_ms);
		if (v)
			lt_gl_send(g, hk, v);
		json_decref(v);
	}
	g->last_sent_ms = g->tick_ms;
	if (!g->first_sent_ms)
		g->first_sent_ms = g->tick_ms;
	pthread_mutex_unlock(&g->mu);
}

/* ---- the thread ---------------------------------------------------------------------------- */

static void lt_gl_assign(struct lt_global *g)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_topic_t *t;
	rd_kafka_resp_err_t e;
	int n = 0, i;

	t = rd_kafka_topic_new(g->crk, g->c.topic, NULL);
	if (!t)
		return;
	e = rd_kafka_metadata(g->crk, 0, t, &md, 1000);
	if (!e && md->topic_cnt == 1 && !md->topics[0].err)
		n = md->topics[0].partition_cnt;
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	if (n <= g->nparts)
		return;
	l = rd_kafka_topic_partition_list_new(n);
	/*
	 * From the end: a host that starts knows the others' windows from their
	 * next record on (the bucket levels it saw before a restart are in the
	 * pinned maps); partitions new since the last look are read whole.
	 */
	for (i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, g->c.topic, i)->offset =
			g->nparts ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
	e = rd_kafka_assign(g->crk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		log_warn("global: cannot assign %s: %s", g->c.topic, rd_kafka_err2str(e));
		return;
	}
	log_info("global: reading %s, %d partitions", g->c.topic, n);
	g->nparts = n;
}

static void *lt_gl_run(void *arg)
{
	struct lt_global *g = arg;
	rd_kafka_message_t *m;
	enum lt_gl_result res;
	__u64 now;
	int wait_ms;

	g->next_tick_ns = lt_now_ns();
	while (!__atomic_load_n(&g->stop, __ATOMIC_RELAXED)) {
		now = lt_now_ns();
		if (!g->nparts || now - g->meta_ns >= LT_GL_META_NS) {
			g->meta_ns = now;
			lt_gl_assign(g);
		}
		if (now >= g->next_tick_ns) {
			lt_gl_tick(g);
			/* on the grid of S: a late tick does not push the next ones */
			g->next_tick_ns += g->c.interval_ns;
			if (g->next_tick_ns <= now)
				g->next_tick_ns = now + g->c.interval_ns;
		}
		rd_kafka_poll(g->prk, 0); /* delivery reports */
		now = lt_now_ns();
		wait_ms = g->next_tick_ns > now ? (int)((g->next_tick_ns - now) / 1000000ULL) : 0;
		if (wait_ms > 20)
			wait_ms = 20;
		if (!g->nparts) {
			usleep((useconds_t)wait_ms * 1000);
			continue;
		}
		m = rd_kafka_consumer_poll(g->crk, wait_ms);
		if (!m)
			continue;
		if (!m->err) {
			pthread_mutex_lock(&g->mu);
			res = lt_gl_take(g, m);
			g->results[res]++;
			pthread_mutex_unlock(&g->mu);
		} else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && lt_gl_may_log(g)) {
			log_warn("global: kafka: %s", rd_kafka_message_errstr(m));
		}
		rd_kafka_message_destroy(m);
	}
	return NULL;
}

static void lt_gl_kerr(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct lt_global *g = opaque;

	(void)rk;
	if (lt_gl_may_log(g))
		log_warn("global: kafka: %s (%s); global buckets go by on_stale once the sync "
			 "is older than tau_max",
			 rd_kafka_err2str((rd_kafka_resp_err_t)err), reason);
}

static void lt_gl_klog(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	(void)level;
	log_debug("global: kafka: %s: %s", fac, buf);
}

static rd_kafka_t *lt_gl_client(struct lt_global *g, int consumer, char *err, size_t errlen)
{
	static const char *const pfix[][2] = {
		{ "client.id", "leaky-agent-global" },
		{ "acks", "all" },
		{ "linger.ms", "1" }, /* a tick's records leave together, at once */
		{ "queue.buffering.max.messages", "100000" },
		{ "reconnect.backoff.max.ms", "1000" },
		{ "log.connection.close", "false" },
	};
	static const char *const cfix[][2] = {
		{ "client.id", "leaky-agent-global" },
		{ "enable.auto.commit", "false" }, /* every host reads every record, from now */
		{ "enable.auto.offset.store", "false" },
		{ "enable.partition.eof", "false" },
		{ "fetch.wait.max.ms", "10" }, /* part of tau: keep it far below S */
		{ "fetch.error.backoff.ms", "50" },
		{ "reconnect.backoff.max.ms", "1000" },
		{ "log.connection.close", "false" },
	};
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	char v[200];
	rd_kafka_t *rk;
	unsigned i, n = consumer ? sizeof(cfix) / sizeof(cfix[0]) : sizeof(pfix) / sizeof(pfix[0]);

	if (rd_kafka_conf_set(c, "bootstrap.servers", g->k.brokers, err, errlen))
		goto fail;
	for (i = 0; i < n; i++)
		if (rd_kafka_conf_set(c, consumer ? cfix[i][0] : pfix[i][0],
				      consumer ? cfix[i][1] : pfix[i][1], err, errlen))
			goto fail;
	if (consumer) {
		snprintf(v, sizeof(v), "leaky-global-%s", g->host);
		if (rd_kafka_conf_set(c, "group.id", v, err, errlen))
			goto fail;
	} else {
		/* a value older than tau_max is superseded anyway: give up on it */
		snprintf(v, sizeof(v), "%llu", (unsigned long long)(g->c.tau_max_ns / 1000000ULL));
		if (rd_kafka_conf_set(c, "message.timeout.ms", v, err, errlen))
			goto fail;
		rd_kafka_conf_set_dr_msg_cb(c, lt_gl_dr);
	}
	rd_kafka_conf_set_opaque(c, g);
	rd_kafka_conf_set_error_cb(c, lt_gl_kerr);
	rd_kafka_conf_set_log_cb(c, lt_gl_klog);
	rk = rd_kafka_new(consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, c, err, errlen);
	if (rk) {
		if (consumer)
			rd_kafka_poll_set_consumer(rk);
		return rk;
	}
fail:
	rd_kafka_conf_destroy(c);
	return NULL;
}

int lt_global_start(struct lt_global **out, struct lt_quota *q, const struct lt_kafka_config *k,
		    const struct lt_global_config *c, char *err, size_t errlen)
{
	struct lt_global *g;
	int ret;

	*out = NULL;
	if (!k->enabled || !c->topic[0] || !c->nrules)
		return 0;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->b = calloc(LT_GL_BUCKETS, sizeof(*g->b));
	g->hidx = calloc(LT_GL_HASH, sizeof(*g->hidx));
	if (!g->b || !g->hidx) {
		free(g->b);
		free(g->hidx);
		free(g);
		return -ENOMEM;
	}
	g->q = q;
	g->k = *k;
	g->c = *c;
	pthread_mutex_init(&g->mu, NULL);
	if (k->source[0])
		snprintf(g->host, sizeof(g->host), "%s", k->source);
	else if (gethostname(g->host, sizeof(g->host) - 1) || !g->host[0])
		snprintf(g->host, sizeof(g->host), "localhost");
	g->start_ms = lt_gl_real_ms();
	g->measure_ms = g->start_ms;
	g->prk = lt_gl_client(g, 0, err, errlen);
	g->crk = g->prk ? lt_gl_client(g, 1, err, errlen) : NULL;
	if (!g->crk) {
		lt_global_stop(g);
		return -EINVAL;
	}
	ret = pthread_create(&g->thr, NULL, lt_gl_run, g);
	if (ret) {
		snprintf(err, errlen, "global: cannot start its thread: %s", strerror(ret));
		lt_global_stop(g);
		return -ret;
	}
	g->thr_on = 1;
	log_info("global: %d rule(s) replicated through %s as host %s, every %llu ms, tau_max "
		 "%llu ms",
		 c->nrules, c->topic, g->host, (unsigned long long)(c->interval_ns / 1000000ULL),
		 (unsigned long long)(c->tau_max_ns / 1000000ULL));
	*out = g;
	return 0;
}

void lt_global_stop(struct lt_global *g)
{
	if (!g)
		return;
	__atomic_store_n(&g->stop, 1, __ATOMIC_RELAXED);
	if (g->thr_on)
		pthread_join(g->thr, NULL);
	if (g->crk) {
		rd_kafka_consumer_close(g->crk);
		rd_kafka_destroy(g->crk);
	}
	if (g->prk) {
		rd_kafka_flush(g->prk, 500);
		rd_kafka_destroy(g->prk);
	}
	pthread_mutex_destroy(&g->mu);
	free(g->b);
	free(g->hidx);
	free(g);
}

/* ---- status and metrics -------------------------------------------------------------------- */

void lt_global_measure(struct lt_global *g)
{
	int i;

	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	g->measure_ms = lt_gl_real_ms();
	for (i = 0; i < g->norig; i++) {
		g->orig[i].tau_ms_max = 0;
		g->orig[i].delay_ms_max = 0;
		g->orig[i].measured = 0;
	}
	pthread_mutex_unlock(&g->mu);
}

json_t *lt_global_status(struct lt_global *g)
{
	json_t *o = json_object(), *a, *rules, *rem, *x;
	__u64 now = lt_gl_real_ms(), remote;
	int i, j;

	if (!o)
		return NULL;
	json_object_set_new(o, "enabled", json_boolean(g != NULL));
	if (!g)
		return o;
	rules = json_array();
	for (i = 0; i < g->c.nrules; i++)
		json_array_append_new(rules,
				      json_pack("{s:s, s:s, s:s}", "prefix", g->c.rules[i].prefix,
						"mode", "replicate", "onStale",
						lt_stale_name[g->c.rules[i].on_stale]));
	pthread_mutex_lock(&g->mu);
	json_object_set_new(o, "host", json_string(g->host));
	json_object_set_new(o, "topic", json_string(g->c.topic));
	json_object_set_new(o, "intervalMs",
			    json_integer((json_int_t)(g->c.interval_ns / 1000000)));
	json_object_set_new(o, "tauMaxMs", json_integer((json_int_t)(g->c.tau_max_ns / 1000000)));
	json_object_set_new(o, "rules", rules);
	json_object_set_new(o, "stale", json_boolean(g->stale));
	json_object_set_new(o, "staleSinceMs",
			    g->stale ? json_integer((json_int_t)g->stale_since_ms) : json_null());
	json_object_set_new(o, "staleTimes", json_integer((json_int_t)g->stale_total));
	json_object_set_new(o, "liveHosts", json_integer(g->nlive ? g->nlive : 1));
	json_object_set_new(o, "measureSinceMs", json_integer((json_int_t)g->measure_ms));
	json_object_set_new(o, "nowMs", json_integer((json_int_t)now));
	json_object_set_new(o, "lastAckedMs", json_integer((json_int_t)g->last_acked_ms));
	json_object_set_new(o, "published", json_integer((json_int_t)g->published));
	json_object_set_new(o, "acked", json_integer((json_int_t)g->acked));
	json_object_set_new(o, "dropped", json_integer((json_int_t)(g->dropped + g->failed)));
	x = json_object();
	for (i = 0; i < LT_GR__MAX; i++)
		json_object_set_new(x, lt_gr_name[i], json_integer((json_int_t)g->results[i]));
	json_object_set_new(o, "records", x);
	json_object_set_new(o, "clippedTokens", json_integer((json_int_t)g->clipped_tokens));
	a = json_array();
	for (i = 0; i < g->norig; i++) {
		const struct lt_gl_origin *p = &g->orig[i];

		json_array_append_new(
			a, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "host", p->host,
				     "records", (json_int_t)p->records, "measured",
				     (json_int_t)p->measured, "lastEventMs",
				     (json_int_t)p->last_event_ms, "delayMsLast",
				     (json_int_t)p->delay_ms_last, "delayMsMax",
				     (json_int_t)p->delay_ms_max, "tauMsMax",
				     (json_int_t)p->tau_ms_max, "ageMs",
				     (json_int_t)(p->last_event_ms && now > p->last_event_ms ?
							  now - p->last_event_ms :
							  0)));
	}
	json_object_set_new(o, "origins", a);
	a = json_array();
	for (i = 0; i < g->nb; i++) {
		const struct lt_gl_bucket *b = &g->b[i];

		rem = json_object();
		remote = 0;
		for (j = 0; j < g->norig; j++) {
			if (!b->rem[j].window)
				continue;
			remote += b->rem[j].debited;
			json_object_set_new(rem, g->orig[j].host,
					    json_pack("{s:I, s:I, s:I, s:I}", "window",
						      (json_int_t)b->rem[j].window, "tokens",
						      (json_int_t)b->rem[j].tokens, "debited",
						      (json_int_t)b->rem[j].debited, "lastEventMs",
						      (json_int_t)b->rem[j].last_event_ms));
		}
		json_array_append_new(a,
				      json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:o}", "key",
						b->key, "tracked", b->tracked, "window",
						(json_int_t)b->window, "tokens", (json_int_t)b->cum,
						"remoteDebited", (json_int_t)remote, "staleDebited",
						(json_int_t)b->stale_debited, "remote", rem));
	}
	json_object_set_new(o, "buckets", a);
	pthread_mutex_unlock(&g->mu);
	return o;
}

void lt_global_metrics(struct lt_global *g, struct lt_mbuf *b)
{
	int i;

	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	lt_mbuf_printf(b,
		       "# HELP lt_global_stale 1 while the global-limit sync is older than "
		       "tau_max (on_stale applies).\n# TYPE lt_global_stale gauge\n"
		       "lt_global_stale %d\n"
		       "# HELP lt_global_live_hosts Hosts heard from within host_ttl, this one "
		       "included (N_live).\n# TYPE lt_global_live_hosts gauge\n"
		       "lt_global_live_hosts %d\n"
		       "# HELP lt_global_published_total Global-limit records handed to Kafka.\n"
		       "# TYPE lt_global_published_total counter\nlt_global_published_total %llu\n"
		       "# HELP lt_global_records_total Global-limit records read, by what became "
		       "of them.\n# TYPE lt_global_records_total counter\n",
		       g->stale, g->nlive ? g->nlive : 1, (unsigned long long)g->published);
	for (i = 0; i < LT_GR__MAX; i++)
		lt_mbuf_printf(b, "lt_global_records_total{result=\"%s\"} %llu\n", lt_gr_name[i],
			       (unsigned long long)g->results[i]);
	lt_mbuf_printf(b,
		       "# HELP lt_global_clipped_tokens_total Tokens that records of other hosts "
		       "claimed beyond what their bucket can have let through, not debited.\n"
		       "# TYPE lt_global_clipped_tokens_total counter\n"
		       "lt_global_clipped_tokens_total %llu\n",
		       (unsigned long long)g->clipped_tokens);
	lt_mbuf_printf(b, "# HELP lt_global_tau_seconds The longest time another host's spend "
			  "stayed unseen here in the current measurement (tau).\n"
			  "# TYPE lt_global_tau_seconds gauge\n");
	/* hosts are [A-Za-z0-9._-:/] (checked on every record): safe in a label */
	for (i = 0; i < g->norig; i++)
		lt_mbuf_printf(b, "lt_global_tau_seconds{origin=\"%s\"} %.3f\n", g->orig[i].host,
			       (double)g->orig[i].tau_ms_max / 1e3);
	pthread_mutex_unlock(&g->mu);
}
