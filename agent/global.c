// SPDX-License-Identifier: MIT
/*
 * global.c - global limits across hosts, modes replicate and lease (global.h;
 * records: docs/events/global.v1.md, docs/events/grant.v1.md; the lease
 * invariant and bound: "mode lease" below).
 *
 * One thread owns the producer, the consumers (the global topic's reader, and
 * for lease rules the allocators' group member and the grants reader) and the
 * tables below; it takes g->mu around each change so that the API's status
 * read sees one state. The group's rebalance callback runs on that thread too
 * (inside its poll of the group consumer), outside g->mu. The quota engine is
 * called outside g->mu except for the debits and peeks (lt_quota_debit takes
 * no lock of the quota engine: it is a CAS on the mmapped slot).
 *
 * Why the overshoot of replicate is bounded (README "Global limits across hosts"): host i
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
	LT_GR_LEASE, /* a lease bucket's record: demand for its allocator, nothing to debit */
	LT_GR__MAX
};

static const char *const lt_gr_name[LT_GR__MAX] = { "applied", "duplicate", "baseline", "unknown",
						    "invalid", "clipped",   "lease" };

static const char *const lt_stale_name[] = { "share", "last", "closed" };

/* What a warning is about: each kind is said at most once in 5 s, on its own. */
enum lt_gl_log { LT_GL_LOG_DEBIT, LT_GL_LOG_AHEAD, LT_GL_LOG_KAFKA, LT_GL_LOG__MAX };

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
	/* mode lease (lt_ls_enforce): this host's side of the lease */
	__u64 l_win; /* the window of the fields below: its start, unix ms; 0 = none yet */
	__u64 l_base; /* cum when l_win began here */
	__u64 l_spent; /* our spend in l_win (cum - l_base) */
	__u64 l_granted; /* our lease in l_win as granted (the greatest seen) */
	__u64 l_eff; /* what we admit against in l_win: l_granted, or on_stale's */
	__u64 l_last; /* l_eff at the end of the window before (on_stale last) */
	__u64 l_limit; /* L = R * W of the bucket, tokens a window */
	__u64 l_want; /* the cumulative lease we ask for in l_win */
	__u64 l_rate; /* our recent spend, tokens/s (EWMA over ticks) */
	__u64 l_rate_cum, l_rate_ms; /* cum and tick time of the last rate sample */
	__u64 l_rate_rej; /* lt_usage.rejected at the last rate sample */
	__u64 l_track_ms; /* when we began asking (a grant is overdue tau_max after it) */
	__u64 l_held; /* tokens held in l_win to keep our headroom within the lease */
	int l_stale; /* on_stale applies to this bucket (sync stale, or no grant for tau_max) */
	struct lt_gl_remote rem[LT_GL_HOSTS];
};

/*
 * Mode lease: what this host knows of the leases of one bucket (every host
 * reads every grant record), and, when this host is its allocator, the
 * demand of every host. Grants are cumulative per (host, window) and merged
 * with max, so duplicates, replays and reordering change nothing; g[] holds
 * two windows (the current one and the next, by (window / W) & 1).
 */
#define LT_AL_BUCKETS 1024
#define LT_AL_PARTS 256 /* partitions of the global topic an allocator can own */

struct lt_al_grant {
	__u64 window; /* start, unix ms */
	__u64 tokens; /* cumulative lease of the host in window */
};

struct lt_al_hb {
	struct lt_al_grant g[2];
	/* the host's newest demand record (the allocator's input) */
	__u64 d_window, d_spent, d_want, d_rate, d_ms;
};

struct lt_al_bucket {
	char key[LT_BUCKET_KEY_LEN];
	__u64 w_ms; /* W of its rule */
	int part; /* partition of its records (the demand's, which the grants use too) */
	__u64 grant_ms; /* event time of the newest grant record read */
	__u64 sent_ms; /* allocator: when it last published a grant record of it */
	__u64 limit; /* L the allocator used last (status only) */
	struct lt_al_hb h[LT_GL_HOSTS]; /* by g->ah index */
};

struct lt_al_part {
	int owned; /* assigned to us in the allocators' group */
	int ready; /* owned, and the grants partition read up to hwm: we may grant */
	__s64 hwm; /* grants partition's high watermark when it was assigned (-1 unknown) */
	__s64 gpos; /* grants partition: next offset our grants reader takes */
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
	__u64 meta_ns, next_tick_ns;
	__u64 last_log_ns[LT_GL_LOG__MAX]; /* per kind: one kind never hides another */
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
	/* mode lease */
	int nlease; /* rules of mode lease */
	rd_kafka_t *ark; /* the allocators' group on the global topic (the demand) */
	rd_kafka_t *grk; /* every grant record, all partitions, no group */
	int ngparts; /* grants partitions assigned to grk */
	char ah[LT_GL_HOSTS][128]; /* hosts in leases; [0] is this one */
	__u64 ah_ms[LT_GL_HOSTS]; /* when each was last heard of in a lease record */
	int nah;
	struct lt_al_bucket *al; /* [LT_AL_BUCKETS] */
	int nal;
	int *alidx; /* [LT_GL_HASH]: key -> index in al + 1 */
	struct lt_al_part part[LT_AL_PARTS];
	__u64 epoch_ms; /* allocator: when our current assignment began */
	__u64 next_bound_ns; /* the next window boundary of a lease rule (a tick there) */
	__u64 bound_ms; /* that boundary, unix ms */
	__u64 late_ms_max; /* the latest a tick ran after its time, boundary or grid (delta) */
	__u64 grants_sent, demand_res[LT_GR__MAX], grant_res[LT_GR__MAX];
	__u64 rebalances;
};

static __u64 lt_gl_real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * 1000ULL + (__u64)ts.tv_nsec / 1000000ULL;
}

static int lt_gl_may_log(struct lt_global *g, enum lt_gl_log kind)
{
	__u64 now = lt_now_ns();

	if (now - g->last_log_ns[kind] < 5 * LT_NS_PER_SEC)
		return 0;
	g->last_log_ns[kind] = now;
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
	return (__u32)lt_hash_mem(s, strlen(s)) & (LT_GL_HASH - 1);
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
	if (v && lt_gl_may_log(g, LT_GL_LOG_DEBIT))
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
	/* a lease bucket's record is its allocator's input (lt_al_take_demand) */
	if (g->c.rules[rule].mode == LT_GM_LEASE)
		return LT_GR_LEASE;
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
	if (lt_gl_may_log(g, LT_GL_LOG_AHEAD))
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

/*
 * One record, CloudEvents 1.0 in Kafka binary mode (docs/events/global.v1.md,
 * docs/events/grant.v1.md), to topic (partition part, or the partitioner's
 * when RD_KAFKA_PARTITION_UA).
 */
static void lt_gl_send_to(struct lt_global *g, const char *topic, int32_t part, const char *type,
			  const char *key, json_t *v)
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
	rd_kafka_header_add(h, "ce_type", -1, type, -1);
	rd_kafka_header_add(h, "ce_time", -1, when, -1);
	rd_kafka_header_add(h, "ce_subject", -1, key, -1);
	rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
	e = rd_kafka_producev(g->prk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
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

static void lt_gl_send(struct lt_global *g, const char *key, json_t *v)
{
	lt_gl_send_to(g, g->c.topic, RD_KAFKA_PARTITION_UA, LT_GLOBAL_TYPE, key, v);
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

static __u64 lt_gl_hold(struct lt_global *g, struct lt_gl_bucket *b, __u64 tokens);
static void lt_gl_lift(struct lt_global *g, struct lt_gl_bucket *b);

/* on_stale of b's rule while stale (under g->mu); lifting the holds once fresh. */
static void lt_gl_on_stale(struct lt_global *g, struct lt_gl_bucket *b)
{
	int how = g->c.rules[b->rule].on_stale;

	if (!g->stale) {
		lt_gl_lift(g, b);
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
		 * are given back when the sync is fresh (lt_gl_hold, lt_gl_lift).
		 */
		b->stale_debited += lt_gl_hold(g, b, ~0ULL >> 2);
	}
}

/*
 * Debits tokens onto b's bucket (saturating at twice its capacity) as a hold
 * that is given back later (lt_gl_lift): closed's, and lease's. A top-up
 * that lands right on the last hold (nothing stacked between: the usual
 * case) extends it, so a long outage keeps one hold; the reservation keeps
 * the meta of its first part, which only over-counts the refunds since (a
 * refund gives back less, never more). Past LT_GL_HOLDS separate holds, the
 * newest leak instead. Returns the tokens added.
 */
static __u64 lt_gl_hold(struct lt_global *g, struct lt_gl_bucket *b, __u64 tokens)
{
	struct lt_slot_seen h, *last = b->nholds ? &b->holds[b->nholds - 1] : NULL;
	__u64 added = lt_gl_debit(g, b, tokens, 2, &h);

	if (!added || !h.cost_units)
		return added;
	if (last && last->tat == h.tat - h.cost_units &&
	    !((last->meta ^ h.meta) & LT_META_ID_MASK) && last->slot == h.slot) {
		last->tat = h.tat;
		last->cost_units += h.cost_units;
	} else if (b->nholds < LT_GL_HOLDS) {
		b->holds[b->nholds++] = h;
	}
	return added;
}

static void lt_gl_lift(struct lt_global *g, struct lt_gl_bucket *b)
{
	int i;

	for (i = 0; i < b->nholds; i++)
		lt_quota_undebit(g->q, &b->holds[i], lt_now_ns());
	b->nholds = 0;
}

/* ---- mode lease ----------------------------------------------------------------------------- */
/*
 * The allocator of a lease bucket is the member of the allocators' group
 * (every agent, one consumer group on the global topic) that owns the
 * partition the bucket's records land in; every host reads every grant.
 *
 * THE INVARIANT, kept by the allocator and checked by every reader: for each
 * bucket and window w (W long, aligned to unix time),
 *
 *	sum over hosts h of lease_h(w) <= L = R * W
 *
 * where lease_h(w) is the greatest cumulative lease granted to h for w. A
 * lease only grows within its window (grants merge with max) and dies with
 * it (its TTL is the window's end), so nothing is ever taken back. An
 * allocator grants from L minus what it knows is granted, and it knows all
 * that any earlier allocator granted: it grants nothing on a partition
 * before its grants reader has read that partition of the grants topic up
 * to the high watermark taken when the partition was assigned to it, and a
 * revoked allocator flushes its producer before it lets the partition go.
 * A reader refuses a grant record whose leases, merged into what it knows,
 * would sum above L (a forged record, or one of a zombie allocator).
 *
 * Each host keeps its own spend in the window within its lease (lt_ls_enforce,
 * every S and at each window boundary): a hold on its local bucket leaves at
 * most (lease - spent - R*S) tokens of headroom, and a full hold (twice the
 * capacity) once less than R*S of the lease is left. Until the next tick, at
 * most S + delta later (delta: how late a tick runs), the bucket leaks
 * R*(S + delta) back, so a host spends at most lease + R*delta in a window
 * (and the full hold stays above the capacity while C >= R*(S + delta)), and
 * all hosts together at most
 *
 *	L + N * R * delta
 *
 * (README "Global limits across hosts" has the whole bound, with on_stale,
 * clock skew and a zombie allocator).
 */

static __u64 lt_ls_wms(const struct lt_global *g, int rule)
{
	return g->c.rules[rule].window_ns / 1000000ULL;
}

/* L of the bucket key: R * W tokens (what it leaks in one window) by the limit here; 0 = none. */
static __u64 lt_ls_limit(struct lt_global *g, const char *key, __u64 w_ms)
{
	unsigned __int128 l;
	struct lt_view v;
	__u32 slot;

	if (lt_quota_peek_key(g->q, key, NULL, lt_now_ns(), &v, &slot) || v.unlimited ||
	    !v.leak_period_ns)
		return 0;
	l = (unsigned __int128)v.leak_tokens * w_ms * 1000000ULL / v.leak_period_ns;
	return l > (1ULL << 52) ? 1ULL << 52 : (__u64)l;
}

static __u64 lt_al_get(const struct lt_al_hb *hb, __u64 win, __u64 w_ms)
{
	const struct lt_al_grant *x = &hb->g[(win / w_ms) & 1];

	return x->window == win ? x->tokens : 0;
}

/* Max-merge of a cumulative lease; 1 if it grew. */
static int lt_al_merge(struct lt_al_hb *hb, __u64 win, __u64 w_ms, __u64 tokens)
{
	struct lt_al_grant *x = &hb->g[(win / w_ms) & 1];

	if (x->window > win)
		return 0; /* the slot holds a later window: this one is over */
	if (x->window < win) {
		x->window = win;
		x->tokens = tokens;
		return tokens > 0;
	}
	if (tokens <= x->tokens)
		return 0;
	x->tokens = tokens;
	return 1;
}

static __u64 lt_al_sum(const struct lt_global *g, const struct lt_al_bucket *a, __u64 win)
{
	__u64 s = 0;
	int i;

	for (i = 0; i < g->nah; i++)
		s += lt_al_get(&a->h[i], win, a->w_ms);
	return s;
}

/* No lease of host i is in force (every window it holds has ended) and no demand of it is fresh. */
static int lt_al_host_idle(const struct lt_global *g, int i, __u64 now_ms)
{
	int j, k;

	for (j = 0; j < g->nal; j++)
		for (k = 0; k < 2; k++)
			if (g->al[j].h[i].g[k].tokens &&
			    g->al[j].h[i].g[k].window + g->al[j].w_ms > now_ms)
				return 0;
	return 1;
}

/*
 * The index of host in the lease tables, made if new. A full table (16
 * hosts) reuses the entry of a host not heard of for host_ttl whose leases
 * have all ended (dropping one in force would let its tokens be granted
 * twice); otherwise -1 and the record is refused (counted).
 */
static int lt_al_host(struct lt_global *g, const char *host, __u64 now_ms)
{
	__u64 ttl = g->c.host_ttl_ns / 1000000ULL, oldest = ~0ULL;
	int i, j, oi = -1;

	for (i = 0; i < g->nah; i++) {
		if (strcmp(g->ah[i], host))
			continue;
		if (now_ms > g->ah_ms[i])
			g->ah_ms[i] = now_ms;
		return i;
	}
	if (g->nah < LT_GL_HOSTS) {
		i = g->nah++;
	} else {
		for (i = 1; i < g->nah; i++)
			if (g->ah_ms[i] + ttl < now_ms && g->ah_ms[i] < oldest &&
			    lt_al_host_idle(g, i, now_ms)) {
				oldest = g->ah_ms[i];
				oi = i;
			}
		if (oi < 0) {
			g->hosts_ignored++;
			return -1;
		}
		i = oi;
		for (j = 0; j < g->nal; j++)
			memset(&g->al[j].h[i], 0, sizeof(g->al[j].h[i]));
	}
	snprintf(g->ah[i], sizeof(g->ah[i]), "%s", host);
	g->ah_ms[i] = now_ms;
	return i;
}

static void lt_al_rehash(struct lt_global *g)
{
	__u32 h;
	int i;

	memset(g->alidx, 0, LT_GL_HASH * sizeof(*g->alidx));
	for (i = 0; i < g->nal; i++) {
		h = lt_gl_hash(g->al[i].key);
		while (g->alidx[h])
			h = (h + 1) & (LT_GL_HASH - 1);
		g->alidx[h] = i + 1;
	}
}

/* The lease entry of key (W w_ms), made if make; a full table reuses one with nothing in force. */
static struct lt_al_bucket *lt_al_find(struct lt_global *g, const char *key, __u64 w_ms, int make,
				       __u64 now_ms)
{
	struct lt_al_bucket *a = NULL;
	__u32 h = lt_gl_hash(key);
	int i, j, k, busy;

	while (g->alidx[h] && strcmp(g->al[g->alidx[h] - 1].key, key))
		h = (h + 1) & (LT_GL_HASH - 1);
	if (g->alidx[h])
		return &g->al[g->alidx[h] - 1];
	if (!make)
		return NULL;
	if (g->nal < LT_AL_BUCKETS) {
		a = &g->al[g->nal++];
		g->alidx[h] = g->nal;
	} else {
		for (i = 0; i < g->nal && !a; i++) {
			busy = 0;
			for (j = 0; j < g->nah && !busy; j++)
				for (k = 0; k < 2; k++)
					busy |= g->al[i].h[j].g[k].window + g->al[i].w_ms > now_ms;
			if (!busy)
				a = &g->al[i];
		}
		if (!a)
			return NULL;
	}
	memset(a, 0, sizeof(*a));
	snprintf(a->key, sizeof(a->key), "%s", key);
	a->w_ms = w_ms;
	a->part = -1;
	if (g->nal == LT_AL_BUCKETS)
		lt_al_rehash(g);
	return a;
}

/* A lease record's common checks: host, bucket of a lease rule; -1 when not one. */
static int lt_al_rule(struct lt_global *g, json_t *rec, const char **host, const char **key)
{
	int rule;

	*host = json_string_value(json_object_get(rec, "host"));
	*key = json_string_value(json_object_get(rec, "bucket"));
	if (!*host || !*key || !(*host)[0] || strlen(*host) >= sizeof(g->ah[0]) ||
	    strspn(*host, LT_GL_HOST_CHARS) != strlen(*host) || strlen(*key) >= LT_BUCKET_KEY_LEN ||
	    !lt_bucket_key_canonical(*key))
		return -1; /* a variant spelling would take a lease entry of its own */
	rule = lt_gl_rule(g, *key);
	if (rule < 0 || g->c.rules[rule].mode != LT_GM_LEASE)
		return -1;
	return rule;
}

/*
 * Under g->mu. A demand record (a lease bucket's record on the global topic,
 * read by the allocators' group member that owns its partition). LT_GR__MAX:
 * not a lease record (replicate buckets, heartbeats), not counted.
 */
static enum lt_gl_result lt_al_take_demand(struct lt_global *g, const rd_kafka_message_t *m)
{
	__u64 now_ms = lt_gl_real_ms(), win, spent, want, rate, ev, w_ms;
	struct lt_al_bucket *a;
	const char *host, *key;
	enum lt_gl_result res = LT_GR_INVALID;
	struct lt_al_hb *hb;
	json_error_t je;
	json_t *rec;
	int rule, hi;

	rec = json_loadb(m->payload, m->len, 0, &je);
	if (!json_is_object(rec) || !json_object_get(rec, "lease_window")) {
		json_decref(rec);
		return LT_GR__MAX;
	}
	rule = lt_al_rule(g, rec, &host, &key);
	if (rule < 0) {
		res = LT_GR_UNKNOWN;
		goto out;
	}
	w_ms = lt_ls_wms(g, rule);
	if (lt_gl_ju(rec, "lease_window", &win) || lt_gl_ju(rec, "spent", &spent) ||
	    lt_gl_ju(rec, "want", &want) || lt_gl_ju(rec, "rate", &rate) ||
	    lt_gl_ju(rec, "time", &ev) || win % w_ms || win > now_ms + w_ms ||
	    ev > now_ms + LT_GL_FUTURE_MS)
		goto out; /* a future window, or not a demand */
	hi = lt_al_host(g, host, now_ms);
	a = hi < 0 ? NULL : lt_al_find(g, key, w_ms, 1, now_ms);
	if (!a) {
		res = LT_GR_UNKNOWN;
		goto out;
	}
	a->part = m->partition;
	hb = &a->h[hi];
	res = LT_GR_DUPLICATE;
	if (ev >= hb->d_ms) {
		hb->d_window = win;
		hb->d_spent = spent;
		hb->d_want = want;
		hb->d_rate = rate;
		hb->d_ms = ev;
		res = LT_GR_APPLIED;
	}
out:
	json_decref(rec);
	return res;
}

/*
 * Under g->mu. A grant record (every host reads every one): its leases are
 * merged with max. Refused (invalid): a window not of the rule's W, one past
 * the next window, a lease above L, leases summing above L, or leases that,
 * merged into what this host knows, would sum above L.
 */
static enum lt_gl_result lt_al_take_grant(struct lt_global *g, const rd_kafka_message_t *m)
{
	__u64 now_ms = lt_gl_real_ms(), win, w_ms, ev, l, v, sum = 0, merged[LT_GL_HOSTS];
	int idx[LT_GL_HOSTS], n = 0, rule, i, grew = 0;
	enum lt_gl_result res = LT_GR_INVALID;
	struct lt_al_bucket *a;
	const char *host, *key, *h;
	json_t *rec, *leases, *x;
	json_error_t je;

	rec = json_loadb(m->payload, m->len, 0, &je);
	if (!json_is_object(rec))
		goto out;
	rule = lt_al_rule(g, rec, &host, &key);
	if (rule < 0) {
		res = host && key ? LT_GR_UNKNOWN : LT_GR_INVALID;
		goto out;
	}
	w_ms = lt_ls_wms(g, rule);
	leases = json_object_get(rec, "leases");
	if (lt_gl_ju(rec, "window", &win) || lt_gl_ju(rec, "time", &ev) || win % w_ms ||
	    win > now_ms + w_ms + g->c.tau_max_ns / 1000000ULL || ev > now_ms + LT_GL_FUTURE_MS ||
	    !json_is_object(leases) || json_object_size(leases) > LT_GL_HOSTS)
		goto out;
	l = lt_ls_limit(g, key, w_ms);
	if (!l) {
		res = LT_GR_UNKNOWN;
		goto out;
	}
	json_object_foreach(leases, h, x) {
		if (!json_is_integer(x) || json_integer_value(x) < 0 ||
		    (__u64)json_integer_value(x) > l || strspn(h, LT_GL_HOST_CHARS) != strlen(h) ||
		    !h[0] || strlen(h) >= sizeof(g->ah[0]))
			goto out;
		sum += (__u64)json_integer_value(x);
		if (sum > l)
			goto out;
	}
	a = lt_al_find(g, key, w_ms, 1, now_ms);
	if (!a) {
		res = LT_GR_UNKNOWN;
		goto out;
	}
	json_object_foreach(leases, h, x) {
		i = lt_al_host(g, h, now_ms);
		if (i < 0) {
			res = LT_GR_UNKNOWN;
			goto out;
		}
		idx[n] = i;
		merged[n++] = (__u64)json_integer_value(x);
	}
	/* what the merge would make of the window's sum */
	sum = 0;
	for (i = 0; i < g->nah; i++) {
		int j;

		v = lt_al_get(&a->h[i], win, w_ms);
		for (j = 0; j < n; j++)
			if (idx[j] == i && merged[j] > v)
				v = merged[j];
		sum += v;
	}
	if (sum > l)
		goto out;
	for (i = 0; i < n; i++)
		grew |= lt_al_merge(&a->h[idx[i]], win, w_ms, merged[i]);
	a->part = m->partition;
	if (ev > a->grant_ms)
		a->grant_ms = ev;
	res = grew ? LT_GR_APPLIED : LT_GR_DUPLICATE;
out:
	json_decref(rec);
	return res;
}

/* One grant record: the leases of a's window win (docs/events/grant.v1.md). */
static void lt_al_publish(struct lt_global *g, struct lt_al_bucket *a, __u64 win, __u64 l,
			  __u64 now_ms)
{
	json_t *v, *leases = json_object();
	__u64 t;
	int i;

	if (!leases)
		return;
	for (i = 0; i < g->nah; i++) {
		t = lt_al_get(&a->h[i], win, a->w_ms);
		if (t)
			json_object_set_new(leases, g->ah[i], json_integer((json_int_t)t));
	}
	v = json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:I, s:I, s:I}", "host", g->host, "bucket",
		      a->key, "window", (json_int_t)win, "window_ms", (json_int_t)a->w_ms, "limit",
		      (json_int_t)l, "leases", leases, "epoch", (json_int_t)g->epoch_ms, "time",
		      (json_int_t)now_ms, "expires", (json_int_t)(win + a->w_ms));
	if (!v)
		return;
	lt_gl_send_to(g, g->c.grants_topic, a->part, LT_GRANT_TYPE, a->key, v);
	json_decref(v);
	g->grants_sent++;
}

/*
 * Under g->mu, every tick: the allocator's round over the buckets of the
 * partitions it owns and is ready on. Shares follow demand: each host with a
 * fresh demand (newer than tau_max) asks for a cumulative lease (its spend in
 * the window plus its recent rate over 4 S, at least L / (8 N) — the
 * publisher computes it); the allocator grants what it asks from the
 * unallocated rest L - sum (sum: each host's lease, or its reported spend in
 * the window if more: what it spent under on_stale while no allocator
 * granted), and when the asks exceed the rest, splits the rest in proportion
 * to them. A lease raised to cover a host's spend keeps the sum within L. Nothing is taken back. In the last 3 S of a
 * window the next window is granted ahead (by rate), so a boundary costs no
 * round trip. A grant record per bucket and window goes out every S while
 * demand is fresh: a host that hears none for tau_max is stale.
 */
static void lt_al_allocate(struct lt_global *g, __u64 now_ms)
{
	__u64 s_ms = g->c.interval_ns / 1000000ULL, tau = g->c.tau_max_ns / 1000000ULL;
	__u64 add[LT_GL_HOSTS], held[LT_GL_HOSTS], win, cur, l, sum, rest, tot, want, floor;
	struct lt_al_bucket *a;
	struct lt_al_hb *hb;
	int i, j, k, fresh, rule, changed;

	for (i = 0; i < g->nal; i++) {
		a = &g->al[i];
		if (a->part < 0 || a->part >= LT_AL_PARTS || !g->part[a->part].ready)
			continue;
		rule = lt_gl_rule(g, a->key);
		if (rule < 0 || g->c.rules[rule].mode != LT_GM_LEASE)
			continue;
		fresh = 0;
		for (j = 0; j < g->nah; j++)
			fresh += a->h[j].d_ms && a->h[j].d_ms + tau >= now_ms;
		if (!fresh)
			continue;
		l = lt_ls_limit(g, a->key, a->w_ms);
		if (!l)
			continue;
		a->limit = l;
		floor = l / (8 * (__u64)fresh) ? l / (8 * (__u64)fresh) : 1;
		cur = now_ms - now_ms % a->w_ms;
		for (k = 0; k < 2; k++) {
			win = cur + (__u64)k * a->w_ms;
			if (k && now_ms + 3 * s_ms < win)
				break;
			/*
			 * What each host holds of the window: its lease, or what it says it
			 * spent if more (spend under on_stale, while no allocator granted:
			 * the rest is granted from what is left after it, never again).
			 */
			sum = 0;
			for (j = 0; j < g->nah; j++) {
				hb = &a->h[j];
				held[j] = lt_al_get(hb, win, a->w_ms);
				if (hb->d_window == win && hb->d_spent > held[j])
					held[j] = hb->d_spent;
				sum += held[j];
			}
			rest = l > sum ? l - sum : 0;
			tot = 0;
			for (j = 0; j < g->nah; j++) {
				hb = &a->h[j];
				add[j] = 0;
				if (!hb->d_ms || hb->d_ms + tau < now_ms)
					continue;
				if (!k && hb->d_window == win) {
					want = hb->d_want;
				} else {
					want = hb->d_rate * 4 * s_ms / 1000;
					if (want < floor)
						want = floor;
				}
				if (want > l)
					want = l;
				add[j] = want > held[j] ? want - held[j] : 0;
				tot += add[j];
			}
			changed = 0;
			for (j = 0; j < g->nah; j++) {
				if (!add[j])
					continue;
				if (tot > rest)
					add[j] = (__u64)((unsigned __int128)add[j] * rest / tot);
				if (add[j])
					changed |= lt_al_merge(&a->h[j], win, a->w_ms,
							       held[j] + add[j]);
			}
			if (changed || !k || lt_al_sum(g, a, win))
				lt_al_publish(g, a, win, l, now_ms);
		}
		a->sent_ms = now_ms;
	}
}

/*
 * Under g->mu, in the tick, for a bucket of a lease rule: this host's side.
 * Works out the window's spend and lease, keeps the bucket's headroom within
 * the lease by a hold, and adds the demand fields to the bucket's record v.
 */
static void lt_ls_enforce(struct lt_global *g, struct lt_gl_bucket *b, const struct lt_usage *u,
			  json_t *v)
{
	__u64 now = g->tick_ms, w = lt_ls_wms(g, b->rule), cur = now - now % w;
	__u64 s_ms = g->c.interval_ns / 1000000ULL, tau = g->c.tau_max_ns / 1000000ULL;
	__u64 ref, eff, floor, inst, l, room, lead;
	struct lt_al_bucket *a;
	struct lt_view view;
	int nlive = g->nlive ? g->nlive : 1;

	if (b->l_win != cur) {
		/* a new window, a new lease: the holds of the last one go */
		b->l_last = b->l_win ? b->l_eff : 0;
		if (b->l_win)
			lt_gl_lift(g, b);
		/* a bucket made in this window: all it spent is in it */
		b->l_base = !b->l_win && b->window >= cur ? 0 : b->cum;
		b->l_win = cur;
		b->l_held = 0;
		if (!b->l_track_ms)
			b->l_track_ms = now;
	}
	b->l_spent = b->cum >= b->l_base ? b->cum - b->l_base : 0;
	l = lt_ls_limit(g, b->key, w);
	b->l_limit = l;
	a = lt_al_find(g, b->key, w, 1, now);
	b->l_granted = a ? lt_al_get(&a->h[0], cur, w) : 0;
	/* a grant record comes every S while we ask: none for tau_max is a stale lease */
	ref = a && a->grant_ms > b->l_track_ms ? a->grant_ms : b->l_track_ms;
	b->l_stale = g->stale || now > ref + tau;
	eff = b->l_granted;
	if (b->l_stale) {
		if (g->c.rules[b->rule].on_stale == LT_STALE_SHARE && l / (__u64)nlive > eff)
			eff = l / (__u64)nlive;
		else if (g->c.rules[b->rule].on_stale == LT_STALE_LAST && b->l_last > eff)
			eff = b->l_last;
		/* closed: no more than was granted, and nothing in a window granted nothing */
	}
	b->l_eff = eff;
	/* a hold table about to fill is made one hold again (a lift and a hold, microseconds apart) */
	if (b->nholds >= LT_GL_HOLDS - 1)
		lt_gl_lift(g, b);
	/*
	 * The headroom left is the lease's rest minus what the bucket leaks back
	 * before the next tick (R * S): so a host spends at most its lease, plus
	 * R * delta when a tick runs delta late. A rest below R * S is held
	 * whole (that much of a lease goes unused: a hard cap errs on the side
	 * of refusing).
	 */
	lead = (__u64)((unsigned __int128)l * s_ms / w);
	room = eff > b->l_spent + lead ? eff - b->l_spent - lead : 0;
	/*
	 * More lease than headroom while holds are on (a grant came after the
	 * lease ran out): they go, and the hold below is made for the new room
	 * (a lift and a hold, microseconds apart).
	 */
	if (room && b->nholds && !lt_quota_peek(g->q, b->handle, lt_now_ns(), &view) &&
	    !view.unlimited && view.remaining < room)
		lt_gl_lift(g, b);
	if (!lt_quota_peek(g->q, b->handle, lt_now_ns(), &view) && !view.unlimited) {
		if (!room)
			b->l_held += lt_gl_hold(g, b, ~0ULL >> 2);
		else if (view.remaining > room)
			b->l_held += lt_gl_hold(g, b, view.remaining - room);
	}
	/*
	 * The recent demand, tokens/s, over at least S/2 (a boundary tick can be
	 * close to a grid one): what was admitted, and what was refused at the
	 * bucket's mean cost (a host held by its lease admits little; its
	 * refusals say what it would spend).
	 */
	if (!b->l_rate_ms || now < b->l_rate_ms || u->rejected < b->l_rate_rej) {
		b->l_rate_ms = now;
		b->l_rate_cum = b->cum;
		b->l_rate_rej = u->rejected;
	} else if (now - b->l_rate_ms >= s_ms / 2) {
		__u64 mean = u->admitted ? u->tokens / u->admitted : 1;

		inst = (b->cum - b->l_rate_cum +
			(u->rejected - b->l_rate_rej) * (mean ? mean : 1)) *
		       1000 / (now - b->l_rate_ms);
		b->l_rate_rej = u->rejected;
		b->l_rate = (b->l_rate * 3 + inst) / 4;
		if (inst > b->l_rate)
			b->l_rate = inst; /* a rise is taken at once, a fall slowly */
		b->l_rate_ms = now;
		b->l_rate_cum = b->cum;
	}
	floor = l / (8 * (__u64)nlive) ? l / (8 * (__u64)nlive) : 1;
	b->l_want = b->l_rate * 4 * s_ms / 1000;
	if (b->l_want < floor)
		b->l_want = floor;
	b->l_want += b->l_spent;
	if (!v)
		return;
	json_object_set_new(v, "lease_window", json_integer((json_int_t)cur));
	json_object_set_new(v, "spent", json_integer((json_int_t)b->l_spent));
	json_object_set_new(v, "lease", json_integer((json_int_t)b->l_granted));
	json_object_set_new(v, "want", json_integer((json_int_t)b->l_want));
	json_object_set_new(v, "rate", json_integer((json_int_t)b->l_rate));
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
		if (g->c.rules[b->rule].mode != LT_GM_LEASE)
			lt_gl_on_stale(g, b);
		v = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "host", g->host, "bucket",
			      b->key, "window", (json_int_t)b->window, "tokens", (json_int_t)b->cum,
			      "time", (json_int_t)g->tick_ms, "prev_time",
			      (json_int_t)g->prev_tick_ms, "interval_ms",
			      (json_int_t)(g->c.interval_ns / 1000000ULL));
		if (g->c.rules[b->rule].mode == LT_GM_LEASE)
			lt_ls_enforce(g, b, &u, v);
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
	if (g->nlease)
		lt_al_allocate(g, g->tick_ms);
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

/*
 * The allocators' group (mode lease) assigns or revokes partitions of the
 * global topic. Assigned: we may grant on a partition once the grants reader
 * has read it up to the high watermark taken now (all that earlier owners
 * granted, since a revoked owner flushes first). Revoked: what we granted
 * leaves before the next owner takes its watermark.
 */
static void lt_al_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct lt_global *g = opaque;
	int64_t lo, hi;
	int i, p;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		for (i = 0; i < parts->cnt; i++) {
			p = parts->elems[i].partition;
			parts->elems[i].offset = RD_KAFKA_OFFSET_END; /* fresh demand only */
			if (p < 0 || p >= LT_AL_PARTS)
				continue;
			if (rd_kafka_query_watermark_offsets(g->grk, g->c.grants_topic, p, &lo, &hi,
							     2000))
				hi = -1; /* asked again before the first grant */
			pthread_mutex_lock(&g->mu);
			g->part[p].owned = 1;
			g->part[p].ready = 0;
			g->part[p].hwm = hi;
			pthread_mutex_unlock(&g->mu);
		}
		pthread_mutex_lock(&g->mu);
		g->epoch_ms = lt_gl_real_ms();
		g->rebalances++;
		pthread_mutex_unlock(&g->mu);
		rd_kafka_assign(rk, parts);
		log_info("global: allocator of %d partition(s) of %s", parts->cnt, g->c.topic);
	} else {
		/*
		 * Revoked in a rebalance: our grants leave before the group moves on
		 * (it waits for every member's revoke), so the next owner's watermark
		 * holds them. Lost (our session expired: the partition may have a new
		 * owner already): what is still queued is dropped instead, so that it
		 * cannot land after the new owner took its watermark (a zombie's
		 * grants: README "Global limits across hosts").
		 */
		if (rd_kafka_assignment_lost(rk))
			rd_kafka_purge(g->prk, RD_KAFKA_PURGE_F_QUEUE);
		else
			rd_kafka_flush(g->prk, 2000);
		pthread_mutex_lock(&g->mu);
		for (i = 0; i < parts->cnt; i++) {
			p = parts->elems[i].partition;
			if (p >= 0 && p < LT_AL_PARTS)
				g->part[p].owned = g->part[p].ready = 0;
		}
		g->rebalances++;
		pthread_mutex_unlock(&g->mu);
		rd_kafka_assign(rk, NULL);
	}
}

/*
 * The grants reader takes every partition of the grants topic from the
 * records of the last two windows on (offsets_for_times): what is older has
 * expired. New partitions are taken when the metadata shows them.
 */
static void lt_al_assign_grants(struct lt_global *g)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *l;
	__u64 wmax = 0, ts;
	rd_kafka_topic_t *t;
	int64_t lo, hi;
	int n = 0, i;

	t = rd_kafka_topic_new(g->grk, g->c.grants_topic, NULL);
	if (!t)
		return;
	if (!rd_kafka_metadata(g->grk, 0, t, &md, 1000) && md->topic_cnt == 1 && !md->topics[0].err)
		n = md->topics[0].partition_cnt;
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	if (n <= g->ngparts)
		return;
	if (n > LT_AL_PARTS)
		n = LT_AL_PARTS;
	if (g->nparts > n)
		log_warn("global: %s has %d partitions, fewer than the %d of %s: the buckets of "
			 "the others get no grants (give it as many)",
			 g->c.grants_topic, n, g->nparts, g->c.topic);
	for (i = 0; i < g->c.nrules; i++)
		if (g->c.rules[i].mode == LT_GM_LEASE && lt_ls_wms(g, i) > wmax)
			wmax = lt_ls_wms(g, i);
	ts = lt_gl_real_ms() - 2 * wmax - g->c.tau_max_ns / 1000000ULL;
	l = rd_kafka_topic_partition_list_new(n);
	for (i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, g->c.grants_topic, i)->offset = (int64_t)ts;
	if (rd_kafka_offsets_for_times(g->grk, l, 2000)) {
		rd_kafka_topic_partition_list_destroy(l);
		return; /* tried again at the next look */
	}
	for (i = 0; i < n; i++) {
		if (l->elems[i].offset < 0) {
			/* nothing that recent: from the end, as it is now */
			if (rd_kafka_query_watermark_offsets(g->grk, g->c.grants_topic, i, &lo, &hi,
							     2000)) {
				rd_kafka_topic_partition_list_destroy(l);
				return;
			}
			l->elems[i].offset = hi;
		}
		pthread_mutex_lock(&g->mu);
		g->part[i].gpos = l->elems[i].offset;
		pthread_mutex_unlock(&g->mu);
	}
	if (rd_kafka_assign(g->grk, l)) {
		rd_kafka_topic_partition_list_destroy(l);
		return;
	}
	rd_kafka_topic_partition_list_destroy(l);
	log_info("global: reading the grants of %s, %d partitions", g->c.grants_topic, n);
	g->ngparts = n;
}

/* Owned partitions become ready once the grants reader has passed their watermark. */
static void lt_al_ready(struct lt_global *g)
{
	int64_t lo, hi;
	int p, ready;

	for (p = 0; p < LT_AL_PARTS && p < g->ngparts; p++) {
		if (!g->part[p].owned || g->part[p].ready)
			continue;
		if (g->part[p].hwm < 0) {
			if (rd_kafka_query_watermark_offsets(g->grk, g->c.grants_topic, p, &lo, &hi,
							     1000))
				continue;
			g->part[p].hwm = hi;
		}
		pthread_mutex_lock(&g->mu);
		ready = g->part[p].gpos >= g->part[p].hwm;
		g->part[p].ready = ready;
		pthread_mutex_unlock(&g->mu);
		if (ready)
			log_info("global: allocator of partition %d (its grants read up to offset "
				 "%lld)",
				 p, (long long)g->part[p].hwm);
	}
}

/* Demand (the allocators' group) and grants, all that is waiting, without blocking. */
static void lt_al_poll(struct lt_global *g)
{
	rd_kafka_message_t *m;
	enum lt_gl_result res;
	int i;

	for (i = 0; i < 1000; i++) {
		m = rd_kafka_consumer_poll(g->ark, 0);
		if (!m)
			break;
		if (!m->err) {
			pthread_mutex_lock(&g->mu);
			res = lt_al_take_demand(g, m);
			if (res < LT_GR__MAX)
				g->demand_res[res]++;
			pthread_mutex_unlock(&g->mu);
		}
		rd_kafka_message_destroy(m);
	}
	if (!g->ngparts)
		return;
	for (i = 0; i < 1000; i++) {
		m = rd_kafka_consumer_poll(g->grk, 0);
		if (!m)
			break;
		if (!m->err) {
			pthread_mutex_lock(&g->mu);
			res = lt_al_take_grant(g, m);
			g->grant_res[res]++;
			if (m->partition >= 0 && m->partition < LT_AL_PARTS &&
			    m->offset + 1 > g->part[m->partition].gpos)
				g->part[m->partition].gpos = m->offset + 1;
			pthread_mutex_unlock(&g->mu);
		}
		rd_kafka_message_destroy(m);
	}
}

/* The next window boundary of a lease rule after now (unix ms); 0 = no lease rule. */
static __u64 lt_ls_next_bound(const struct lt_global *g, __u64 now_ms)
{
	__u64 b = 0, w, x;
	int i;

	for (i = 0; i < g->c.nrules; i++) {
		if (g->c.rules[i].mode != LT_GM_LEASE)
			continue;
		w = lt_ls_wms(g, i);
		x = now_ms - now_ms % w + w;
		if (!b || x < b)
			b = x;
	}
	return b;
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
		if (!g->nparts || (g->nlease && !g->ngparts) || now - g->meta_ns >= LT_GL_META_NS) {
			g->meta_ns = now;
			lt_gl_assign(g);
			if (g->nlease)
				lt_al_assign_grants(g);
		}
		if (g->nlease && g->next_bound_ns && now >= g->next_bound_ns) {
			/* a lease window ends: its spend is read at its boundary */
			lt_al_ready(g);
			lt_gl_tick(g);
			if (g->tick_ms > g->bound_ms && g->tick_ms - g->bound_ms > g->late_ms_max)
				g->late_ms_max = g->tick_ms - g->bound_ms;
			g->next_bound_ns = 0;
		} else if (now >= g->next_tick_ns) {
			if (g->nlease)
				lt_al_ready(g);
			/* delta counts the grid's lateness too: a late tick is a longer leak */
			if ((now - g->next_tick_ns) / 1000000ULL > g->late_ms_max)
				g->late_ms_max = (now - g->next_tick_ns) / 1000000ULL;
			lt_gl_tick(g);
			/* on the grid of S: a late tick does not push the next ones */
			g->next_tick_ns += g->c.interval_ns;
			if (g->next_tick_ns <= now)
				g->next_tick_ns = now + g->c.interval_ns;
		}
		if (g->nlease && !g->next_bound_ns) {
			__u64 rn = lt_gl_real_ms();

			g->bound_ms = lt_ls_next_bound(g, rn);
			g->next_bound_ns = lt_now_ns() + (g->bound_ms - rn) * 1000000ULL;
		}
		if (g->nlease)
			lt_al_poll(g);
		rd_kafka_poll(g->prk, 0); /* delivery reports */
		now = lt_now_ns();
		wait_ms = g->next_tick_ns > now ? (int)((g->next_tick_ns - now) / 1000000ULL) : 0;
		if (g->nlease && g->next_bound_ns) {
			__u64 wb =
				g->next_bound_ns > now ? (g->next_bound_ns - now) / 1000000ULL : 0;

			if (wb < (__u64)wait_ms)
				wait_ms = (int)wb;
		}
		if (wait_ms > (g->nlease ? 5 : 20))
			wait_ms = g->nlease ? 5 : 20;
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
		} else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF &&
			   lt_gl_may_log(g, LT_GL_LOG_KAFKA)) {
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
	if (lt_gl_may_log(g, LT_GL_LOG_KAFKA))
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
	if (consumer == 1 || consumer == 3) {
		/* no offsets are committed: a group id of its own, for the metadata only */
		snprintf(v, sizeof(v), "leaky-%s-%s", consumer == 1 ? "global" : "grants", g->host);
		if (rd_kafka_conf_set(c, "group.id", v, err, errlen))
			goto fail;
	} else if (!consumer) {
		/* a value older than tau_max is superseded anyway: give up on it */
		snprintf(v, sizeof(v), "%llu", (unsigned long long)(g->c.tau_max_ns / 1000000ULL));
		if (rd_kafka_conf_set(c, "message.timeout.ms", v, err, errlen))
			goto fail;
		rd_kafka_conf_set_dr_msg_cb(c, lt_gl_dr);
	}
	rd_kafka_conf_set_opaque(c, g);
	rd_kafka_conf_set_error_cb(c, lt_gl_kerr);
	rd_kafka_conf_set_log_cb(c, lt_gl_klog);
	if (consumer == 2) {
		/* the allocators' group: one group for every agent on the topic */
		snprintf(v, sizeof(v), "leaky-lease.%s", g->c.topic);
		if (rd_kafka_conf_set(c, "group.id", v, err, errlen))
			goto fail;
		snprintf(v, sizeof(v), "%llu", (unsigned long long)(g->c.session_ns / 1000000ULL));
		if (rd_kafka_conf_set(c, "session.timeout.ms", v, err, errlen))
			goto fail;
		snprintf(v, sizeof(v), "%llu",
			 (unsigned long long)(g->c.session_ns / 1000000ULL / 4 ?: 1));
		if (rd_kafka_conf_set(c, "heartbeat.interval.ms", v, err, errlen))
			goto fail;
		if (rd_kafka_conf_set(c, "auto.offset.reset", "latest", err, errlen))
			goto fail;
		rd_kafka_conf_set_rebalance_cb(c, lt_al_rebalance);
	}
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
	g->al = calloc(LT_AL_BUCKETS, sizeof(*g->al));
	g->alidx = calloc(LT_GL_HASH, sizeof(*g->alidx));
	if (!g->b || !g->hidx || !g->al || !g->alidx) {
		free(g->b);
		free(g->hidx);
		free(g->al);
		free(g->alidx);
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
	for (ret = 0; ret < c->nrules; ret++)
		g->nlease += c->rules[ret].mode == LT_GM_LEASE;
	snprintf(g->ah[0], sizeof(g->ah[0]), "%s", g->host); /* this host is [0] of every lease */
	g->nah = 1;
	g->prk = lt_gl_client(g, 0, err, errlen);
	g->crk = g->prk ? lt_gl_client(g, 1, err, errlen) : NULL;
	if (g->crk && g->nlease) {
		rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);

		g->grk = lt_gl_client(g, 3, err, errlen);
		g->ark = g->grk ? lt_gl_client(g, 2, err, errlen) : NULL;
		rd_kafka_topic_partition_list_add(sub, c->topic, RD_KAFKA_PARTITION_UA);
		if (g->ark && rd_kafka_subscribe(g->ark, sub)) {
			snprintf(err, errlen, "global: cannot join the allocators' group on %s",
				 c->topic);
			rd_kafka_destroy(g->ark);
			g->ark = NULL;
		}
		rd_kafka_topic_partition_list_destroy(sub);
	}
	if (!g->crk || (g->nlease && !g->ark)) {
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
	log_info("global: %d rule(s) (%d lease) through %s as host %s, every %llu ms, tau_max "
		 "%llu ms",
		 c->nrules, g->nlease, c->topic, g->host,
		 (unsigned long long)(c->interval_ns / 1000000ULL),
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
	if (g->ark) {
		/* leaves the group now (the revoke flushes our grants): the next owner need not wait */
		rd_kafka_consumer_close(g->ark);
		rd_kafka_destroy(g->ark);
	}
	if (g->grk) {
		rd_kafka_consumer_close(g->grk);
		rd_kafka_destroy(g->grk);
	}
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
	free(g->al);
	free(g->alidx);
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
	g->late_ms_max = 0; /* delta, for the lease bound */
	for (i = 0; i < g->norig; i++) {
		g->orig[i].tau_ms_max = 0;
		g->orig[i].delay_ms_max = 0;
		g->orig[i].measured = 0;
	}
	pthread_mutex_unlock(&g->mu);
}

/*
 * Under g->mu: the allocator's side (partitions owned and ready, epoch,
 * grants sent, records read) and every lease known here, current window.
 */
static json_t *lt_al_status(struct lt_global *g, __u64 now)
{
	json_t *o = json_object(), *owned = json_array(), *ready = json_array(), *a, *h, *x, *y;
	__u64 win, t, sum;
	int i, j;

	for (i = 0; i < LT_AL_PARTS; i++) {
		if (g->part[i].owned)
			json_array_append_new(owned, json_integer(i));
		if (g->part[i].ready)
			json_array_append_new(ready, json_integer(i));
	}
	json_object_set_new(o, "owned", owned);
	json_object_set_new(o, "ready", ready);
	json_object_set_new(o, "epochMs", json_integer((json_int_t)g->epoch_ms));
	json_object_set_new(o, "rebalances", json_integer((json_int_t)g->rebalances));
	json_object_set_new(o, "grantsSent", json_integer((json_int_t)g->grants_sent));
	json_object_set_new(o, "lateMsMax", json_integer((json_int_t)g->late_ms_max));
	json_object_set_new(o, "hostsIgnored", json_integer((json_int_t)g->hosts_ignored));
	x = json_object();
	y = json_object();
	for (i = 0; i < LT_GR__MAX; i++) {
		json_object_set_new(x, lt_gr_name[i], json_integer((json_int_t)g->demand_res[i]));
		json_object_set_new(y, lt_gr_name[i], json_integer((json_int_t)g->grant_res[i]));
	}
	json_object_set_new(o, "demandRecords", x);
	json_object_set_new(o, "grantRecords", y);
	a = json_array();
	for (i = 0; i < g->nal; i++) {
		const struct lt_al_bucket *b = &g->al[i];

		win = now - now % b->w_ms;
		h = json_object();
		sum = 0;
		for (j = 0; j < g->nah; j++) {
			t = lt_al_get(&b->h[j], win, b->w_ms);
			sum += t;
			if (t)
				json_object_set_new(h, g->ah[j], json_integer((json_int_t)t));
		}
		json_array_append_new(a, json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:o}", "key",
						   b->key, "partition", b->part, "window",
						   (json_int_t)win, "limit", (json_int_t)b->limit,
						   "sum", (json_int_t)sum, "grantMs",
						   (json_int_t)b->grant_ms, "leases", h));
	}
	json_object_set_new(o, "buckets", a);
	return o;
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
	for (i = 0; i < g->c.nrules; i++) {
		json_t *r = json_pack("{s:s, s:s, s:s}", "prefix", g->c.rules[i].prefix, "mode",
				      g->c.rules[i].mode == LT_GM_LEASE ? "lease" : "replicate",
				      "onStale", lt_stale_name[g->c.rules[i].on_stale]);

		if (r && g->c.rules[i].mode == LT_GM_LEASE)
			json_object_set_new(r, "windowMs",
					    json_integer((json_int_t)lt_ls_wms(g, i)));
		json_array_append_new(rules, r);
	}
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
		x = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:o}", "key", b->key, "tracked",
			      b->tracked, "window", (json_int_t)b->window, "tokens",
			      (json_int_t)b->cum, "remoteDebited", (json_int_t)remote,
			      "staleDebited", (json_int_t)b->stale_debited, "remote", rem);
		if (x && g->c.rules[b->rule].mode == LT_GM_LEASE)
			json_object_set_new(
				x, "lease",
				json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "window",
					  (json_int_t)b->l_win, "limit", (json_int_t)b->l_limit,
					  "granted", (json_int_t)b->l_granted, "effective",
					  (json_int_t)b->l_eff, "spent", (json_int_t)b->l_spent,
					  "want", (json_int_t)b->l_want, "rate",
					  (json_int_t)b->l_rate, "held", (json_int_t)b->l_held,
					  "stale", b->l_stale));
		json_array_append_new(a, x);
	}
	json_object_set_new(o, "buckets", a);
	if (g->nlease)
		json_object_set_new(o, "lease", lt_al_status(g, now));
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
	if (g->nlease) {
		int owned = 0;

		for (i = 0; i < LT_AL_PARTS; i++)
			owned += !!g->part[i].owned;
		lt_mbuf_printf(
			b,
			"# HELP lt_global_lease_late_seconds The latest this host's lease tick ran "
			"(delta of the bound L + N*R*delta).\n"
			"# TYPE lt_global_lease_late_seconds gauge\nlt_global_lease_late_seconds %.3f\n"
			"# HELP lt_global_lease_partitions_owned Partitions of the global topic this "
			"host allocates leases for.\n# TYPE lt_global_lease_partitions_owned gauge\n"
			"lt_global_lease_partitions_owned %d\n"
			"# HELP lt_global_lease_grants_sent_total Lease grant records this host sent "
			"as an allocator.\n# TYPE lt_global_lease_grants_sent_total counter\n"
			"lt_global_lease_grants_sent_total %llu\n"
			"# HELP lt_global_lease_rebalances_total Assignments of the allocators' "
			"group seen by this host.\n# TYPE lt_global_lease_rebalances_total counter\n"
			"lt_global_lease_rebalances_total %llu\n"
			"# HELP lt_global_lease_grant_records_total Grant records read, by what "
			"became of them.\n# TYPE lt_global_lease_grant_records_total counter\n",
			(double)g->late_ms_max / 1e3, owned, (unsigned long long)g->grants_sent,
			(unsigned long long)g->rebalances);
		for (i = 0; i < LT_GR__MAX; i++)
			lt_mbuf_printf(b,
				       "lt_global_lease_grant_records_total{result=\"%s\"} %llu\n",
				       lt_gr_name[i], (unsigned long long)g->grant_res[i]);
	}
	pthread_mutex_unlock(&g->mu);
}
