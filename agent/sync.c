// SPDX-License-Identifier: MIT
/*
 * sync.c - config sync across hosts (sync.h; the records are
 * docs/events/config.v1.md).
 *
 * Threads: local changes run on the API's threads under the admin lock; the
 * consumer is one thread of its own that takes the same lock for each record
 * it applies, so a local change and a remote one never interleave, and the
 * hybrid clock (hlc_ms) is only touched under that lock. The outbox's send
 * side is its own thread (outbox.c) with its own connection to leaky.db.
 * The counters /metrics reads are relaxed atomics; the per-origin table has
 * its own small mutex, so a scrape never waits for a change.
 *
 * The store's connection is shared by the whole agent. A transaction here
 * (BEGIN IMMEDIATE ... COMMIT) is short: one object and its record. A bucket
 * row that the consume path writes on the same connection meanwhile commits
 * with it; only a ROLLBACK (the store failing) would take such a row back,
 * and quota.c rebuilds the index from the pinned maps at the next start.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include <openssl/evp.h>
#include "addr.h"
#include "breaker.h"
#include "config_cp.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "outbox.h"
#include "penalty.h"
#include "quota.h"
#include "sync.h"
#include "tenant.h"
#include "units.h"

#define LT_SYNC_ORIGINS 64 /* hosts listed in the status; more are counted, not listed */
#define LT_SYNC_POLL_MS 100 /* the consumer's wait for a record (its stop latency) */
#define LT_SYNC_META_NS (10 * LT_NS_PER_SEC) /* partitions looked up again this often */
#define LT_HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/"

enum lt_sync_result {
	LT_SR_APPLIED,
	LT_SR_DUPLICATE, /* the version it already has: its own record, or a replay */
	LT_SR_STALE, /* older than the version it has: a newer write won */
	LT_SR_INVALID, /* not a config.v1 record: skipped */
	LT_SR_FAILED, /* valid, newer, but could not be applied here: skipped, logged */
	LT_SR_FUTURE, /* a version more than LT_SYNC_AHEAD_MS ahead of this clock: skipped */
	LT_SR__MAX
};

static const char *const lt_sr_name[LT_SR__MAX] = { "applied", "duplicate", "stale",
						    "invalid", "failed",    "future" };

/*
 * How far ahead of this host's clock a version may be. Every host's hybrid
 * clock follows the greatest version it reads, so one record stamped in the
 * year 2^63 ms (a broken clock, a hand-made record) would have won every
 * object it named for ever, and pushed the next local version past what
 * json_int_t holds, which every other host then refuses: config sync would
 * stop everywhere, silently. Clocks on hosts kept by NTP differ by far less.
 */
#define LT_SYNC_AHEAD_MS (3600 * 1000ULL)

struct lt_sync_origin {
	char host[128];
	__u64 version_ms; /* the greatest version of this host in force here */
	__u64 records; /* records of this host read since start */
	double lag_ms; /* of the last one read: read time - its event time */
	__u64 read_ms; /* when (unix ms), 0 = none since start */
};

struct lt_sync {
	struct lt_sync_deps d;
	struct lt_kafka_config k;
	char host[128];
	char topic[128];
	struct lt_outbox *ob;
	/* under d.lock */
	__u64 hlc_ms;
	sqlite3_stmt *get_ver, *put_obj, *coalesce, *put_off;
	/* the consumer thread */
	pthread_t thr;
	int thr_on, stop; /* stop: __atomic */
	rd_kafka_t *rk;
	int nparts; /* partitions assigned */
	__u64 meta_ns, last_log_ns;
	/* counters (__atomic) */
	__u64 results[LT_SR__MAX];
	__u64 published;
	/* origins (olock) */
	pthread_mutex_t olock;
	struct lt_sync_origin orig[LT_SYNC_ORIGINS];
	int norig;
};

static const char lt_sync_schema[] =
	"CREATE TABLE IF NOT EXISTS sync_objects(key TEXT PRIMARY KEY, ver_ms INTEGER NOT NULL,"
	"  ver_host TEXT NOT NULL, deleted INTEGER NOT NULL, data TEXT);"
	"CREATE TABLE IF NOT EXISTS sync_offsets(topic TEXT NOT NULL, part INTEGER NOT NULL,"
	"  next INTEGER NOT NULL, PRIMARY KEY(topic, part));";

static __u64 lt_real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * 1000ULL + (__u64)ts.tv_nsec / 1000000ULL;
}

static __u64 lt_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/* (ms, host) order: by ms, then by host bytewise. */
static int lt_ver_cmp(__u64 ams, const char *ah, __u64 bms, const char *bh)
{
	if (ams != bms)
		return ams < bms ? -1 : 1;
	return strcmp(ah, bh);
}

#define LT_SY_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define LT_SY_LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

/* ---- origins ----------------------------------------------------------------------- */

static struct lt_sync_origin *lt_origin(struct lt_sync *s, const char *host)
{
	int i;

	for (i = 0; i < s->norig; i++)
		if (!strcmp(s->orig[i].host, host))
			return &s->orig[i];
	if (s->norig == LT_SYNC_ORIGINS)
		return NULL;
	memset(&s->orig[s->norig], 0, sizeof(s->orig[0]));
	snprintf(s->orig[s->norig].host, sizeof(s->orig[0].host), "%s", host);
	return &s->orig[s->norig++];
}

static void lt_origin_version(struct lt_sync *s, const char *host, __u64 ms)
{
	struct lt_sync_origin *o;

	pthread_mutex_lock(&s->olock);
	o = lt_origin(s, host);
	if (o && ms > o->version_ms)
		o->version_ms = ms;
	pthread_mutex_unlock(&s->olock);
}

static void lt_origin_read(struct lt_sync *s, const char *host, __u64 event_ms)
{
	struct lt_sync_origin *o;
	__u64 now = lt_real_ns();

	pthread_mutex_lock(&s->olock);
	o = lt_origin(s, host);
	if (o) {
		o->records++;
		o->read_ms = now / 1000000ULL;
		o->lag_ms = (double)((__s64)now - (__s64)(event_ms * 1000000ULL)) / 1e6;
	}
	pthread_mutex_unlock(&s->olock);
}

/* ---- objects: their state as JSON, and back ------------------------------------------- */

/* "<a>/<b>" with a, b names (tier, provider) or an org id: splits at the first '/'. */
static int lt_split2(const char *id, char *a, size_t alen, char *b, size_t blen)
{
	const char *sl = strchr(id, '/');

	if (!sl || (size_t)(sl - id) >= alen || strlen(sl + 1) >= blen)
		return -EINVAL;
	snprintf(a, alen, "%.*s", (int)(sl - id), id);
	snprintf(b, blen, "%s", sl + 1);
	return 0;
}

/* A limit's id, checked canonical: tier "<tier>/<provider>", org "<org id|*>/<provider>". */
static int lt_limit_id(const char *kind, const char *id, char *name, size_t nlen, char *prov,
		       size_t plen)
{
	char canon[LT_UUID_LEN + 1];

	if (lt_split2(id, name, nlen, prov, plen))
		return -EINVAL;
	if (strcmp(prov, "*") && !lt_cp_name_ok(prov))
		return -EINVAL;
	if (!strcmp(kind, "tier"))
		return lt_cp_name_ok(name) ? 0 : -EINVAL;
	if (!strcmp(name, "*"))
		return 0;
	return !lt_uuid_canon(name, canon) && !strcmp(canon, name) ? 0 : -EINVAL;
}

static int lt_prefix_id(const char *id, struct lt_lpm_key *k)
{
	char e[128], buf[80];

	if (lt_prefix_parse(id, k, e, sizeof(e)))
		return -EINVAL;
	lt_prefix_format(k, buf, sizeof(buf));
	return strcmp(buf, id) ? -EINVAL : 0;
}

static void lt_hex(const unsigned char *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static int lt_unhex(const char *s, unsigned char *out, size_t n)
{
	size_t i;
	unsigned v;

	if (!s || strlen(s) != 2 * n || strspn(s, "0123456789abcdef") != 2 * n)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* A penalty's end on the wall clock (unix ms), 0 = until unbanned. */
static __u64 lt_pen_until_ms(const struct lt_penalty *p)
{
	__u64 mono = lt_now_ns();

	if (p->until_ns == ~0ULL)
		return 0;
	return lt_real_ms() + (p->until_ns > mono ? (p->until_ns - mono) / 1000000ULL : 0);
}

/*
 * The state of kind/id here as the data of a record: *out a new object, or
 * NULL when the object does not exist. -EINVAL: not a kind/id of config.v1.
 */
static int lt_sync_read(struct lt_sync *s, const char *kind, const char *id, json_t **out)
{
	char name[LT_NAME_MAX + 8], prov[LT_NAME_MAX + 8], buf[80];
	struct lt_lpm_key pk;
	struct lt_limit l;
	struct lt_key_rec kr;
	struct lt_penalty pen;
	struct lt_src_policy pol;

	*out = NULL;
	if (!strcmp(kind, "tier") || !strcmp(kind, "org")) {
		if (lt_limit_id(kind, id, name, sizeof(name), prov, sizeof(prov)))
			return -EINVAL;
		if (!lt_quota_limit_get(s->d.q, kind, name, prov, &l))
			*out = json_pack("{s:I, s:I, s:I}", "capacity", (json_int_t)l.capacity,
					 "tokens", (json_int_t)l.tokens, "periodNs",
					 (json_int_t)l.period_ns);
	} else if (!strcmp(kind, "provider")) {
		if (!lt_cp_name_ok(id))
			return -EINVAL;
		if (lt_quota_provider_known(s->d.q, id))
			*out = json_pack("{s:s}", "name", id);
	} else if (!strcmp(kind, "apikey")) {
		if (strncmp(id, "lk_", 3) || strlen(id) >= sizeof(kr.id))
			return -EINVAL;
		if (!lt_keys_get(s->d.keys, id, &kr)) {
			char hex[65];

			lt_hex(kr.hash, sizeof(kr.hash), hex);
			*out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b}",
					 "name", kr.name, "owner", kr.owner, "tier", kr.tier,
					 "sha256", hex, "capacity", (json_int_t)kr.limit.capacity,
					 "tokens", (json_int_t)kr.limit.tokens, "periodNs",
					 (json_int_t)kr.limit.period_ns, "expiresAt",
					 (json_int_t)kr.expires_at, "createdAt",
					 (json_int_t)kr.created_at, "revoked", kr.revoked);
			json_object_set_new(*out, "orgId",
					    kr.org[0] ? json_string(kr.org) : json_null());
			json_object_set_new(*out, "admin", json_boolean(kr.admin));
		}
	} else if (!strcmp(kind, "penalty")) {
		if (lt_prefix_id(id, &pk))
			return -EINVAL;
		if (!lt_penalty_get(s->d.m->fd[LT_M_PENALTY], s->d.m->fd[LT_M_CONFIG], &pk, &pen))
			*out = json_pack("{s:I, s:i, s:i}", "untilMs",
					 (json_int_t)lt_pen_until_ms(&pen), "strikes",
					 (int)pen.strikes, "reason", (int)pen.reason);
	} else if (!strcmp(kind, "policy")) {
		if (lt_prefix_id(id, &pk))
			return -EINVAL;
		if (!lt_policy_get_exact(s->d.m, &pk, &pol)) {
			if (pol.flags & LT_POL_ALLOW) {
				*out = json_pack("{s:b}", "allow", 1);
			} else {
				*out = json_pack("{s:b, s:i, s:i}", "allow", 0, "aggregateV4",
						 (int)pol.agg_v4, "aggregateV6", (int)pol.agg_v6);
				lt_rate_spec_format(&pol.conn, buf, sizeof(buf));
				json_object_set_new(*out, "connections", json_string(buf));
				lt_rate_spec_format(&pol.pkt, buf, sizeof(buf));
				json_object_set_new(*out, "packets", json_string(buf));
			}
		}
	} else {
		return -EINVAL;
	}
	return 0;
}

/* A non-negative integer member, or -EINVAL. */
static int lt_ju(json_t *o, const char *name, __u64 *out)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EINVAL;
	*out = (__u64)json_integer_value(v);
	return 0;
}

static int lt_js(json_t *o, const char *name, char *out, size_t len)
{
	const char *v = json_string_value(json_object_get(o, name));

	if (!v || strlen(v) >= len)
		return -EINVAL;
	snprintf(out, len, "%s", v);
	return 0;
}

static int lt_apply_limit(struct lt_sync *s, const char *kind, const char *id, json_t *data,
			  char *err, size_t errlen)
{
	char name[LT_NAME_MAX + 8], prov[LT_NAME_MAX + 8];
	struct lt_limit l;
	int ret;

	if (lt_limit_id(kind, id, name, sizeof(name), prov, sizeof(prov)))
		return -EINVAL;
	if (!data) {
		ret = lt_quota_limit_del(s->d.q, kind, name, prov, err, errlen);
		return ret == -ENOENT ? 0 : ret;
	}
	if (lt_ju(data, "capacity", &l.capacity) || lt_ju(data, "tokens", &l.tokens) ||
	    lt_ju(data, "periodNs", &l.period_ns))
		return -EINVAL;
	return lt_quota_limit_set(s->d.q, kind, name, prov, &l, err, errlen);
}

static int lt_apply_provider(struct lt_sync *s, const char *id, json_t *data, char *err,
			     size_t errlen)
{
	int ret;

	if (!lt_cp_name_ok(id))
		return -EINVAL;
	if (!data) {
		ret = lt_quota_provider_del(s->d.q, id, err, errlen);
		return ret == -ENOENT ? 0 : ret;
	}
	ret = lt_quota_provider_add(s->d.q, id, err, errlen);
	if (!ret && s->d.brk)
		lt_breaker_register(s->d.brk, id);
	return ret;
}

static int lt_apply_apikey(struct lt_sync *s, const char *id, json_t *data)
{
	struct lt_key_rec r = { 0 };
	__u64 exp, created;
	json_t *org, *admin;

	if (strncmp(id, "lk_", 3) || strlen(id) >= sizeof(r.id))
		return -EINVAL;
	if (!data) { /* never published (a key is revoked, not deleted): fail closed */
		int ret = lt_keys_revoke(s->d.keys, id);

		return ret == -ENOENT ? 0 : ret;
	}
	snprintf(r.id, sizeof(r.id), "%s", id);
	org = json_object_get(data, "orgId");
	if (lt_js(data, "name", r.name, sizeof(r.name)) ||
	    lt_js(data, "owner", r.owner, sizeof(r.owner)) ||
	    lt_js(data, "tier", r.tier, sizeof(r.tier)) ||
	    (org && !json_is_null(org) && lt_js(data, "orgId", r.org, sizeof(r.org))) ||
	    lt_unhex(json_string_value(json_object_get(data, "sha256")), r.hash, sizeof(r.hash)) ||
	    lt_ju(data, "capacity", &r.limit.capacity) || lt_ju(data, "tokens", &r.limit.tokens) ||
	    lt_ju(data, "periodNs", &r.limit.period_ns) || lt_ju(data, "expiresAt", &exp) ||
	    lt_ju(data, "createdAt", &created) ||
	    !json_is_boolean(json_object_get(data, "revoked")))
		return -EINVAL;
	r.expires_at = (int64_t)exp;
	r.created_at = (int64_t)created;
	r.revoked = json_is_true(json_object_get(data, "revoked"));
	/* absent in the records of older hosts: a plain key */
	admin = json_object_get(data, "admin");
	if (admin && !json_is_boolean(admin))
		return -EINVAL;
	r.admin = json_is_true(admin);
	return lt_keys_put(s->d.keys, &r);
}

static int lt_apply_penalty(struct lt_sync *s, const char *id, json_t *data, char *err,
			    size_t errlen)
{
	int fd = s->d.m->fd[LT_M_PENALTY], cfd = s->d.m->fd[LT_M_CONFIG], ret;
	struct lt_lpm_key k;
	struct lt_penalty p = { 0 };
	__u64 until, strikes, reason, now = lt_real_ms();

	if (lt_prefix_id(id, &k))
		return -EINVAL;
	if (data && (lt_ju(data, "untilMs", &until) || lt_ju(data, "strikes", &strikes) ||
		     lt_ju(data, "reason", &reason) || strikes > UINT32_MAX || reason > UINT32_MAX))
		return -EINVAL;
	if (!data || (until && until <= now)) { /* unbanned, or over by now */
		ret = lt_penalty_unban(fd, cfd, &k);
		if (ret && ret != -ENOENT) {
			lt_penalty_strerror(ret, err, errlen);
			return ret;
		}
		return lt_store_penalty_del(s->d.st, id);
	}
	p.until_ns = until ? lt_now_ns() + (until - now) * 1000000ULL : ~0ULL;
	p.strikes = (__u32)strikes;
	p.reason = (__u32)reason;
	ret = lt_penalty_put(fd, cfd, &k, &p);
	if (ret) {
		lt_penalty_strerror(ret, err, errlen);
		return ret;
	}
	return lt_store_penalty_put(s->d.st, id, until ? (int64_t)((until + 999) / 1000) : 0,
				    p.strikes, p.reason);
}

static int lt_apply_policy(struct lt_sync *s, const char *id, json_t *data, char *err,
			   size_t errlen)
{
	struct lt_ops ops = { .m = s->d.m, .state_dir = s->d.state_dir, .st = s->d.st };
	struct lt_src_policy pol = { 0 };
	struct lt_lpm_key k;
	char c[80], p[80];
	__u64 a4, a6;
	int ret;

	if (lt_prefix_id(id, &k))
		return -EINVAL;
	if (!data) {
		ret = lt_op_policy_del(&ops, &k, err, errlen);
		return ret == -ENOENT ? 0 : ret;
	}
	if (json_is_true(json_object_get(data, "allow"))) {
		pol = lt_allow_policy();
	} else {
		if (lt_js(data, "connections", c, sizeof(c)) ||
		    lt_js(data, "packets", p, sizeof(p)) || lt_ju(data, "aggregateV4", &a4) ||
		    lt_ju(data, "aggregateV6", &a6) || a4 < 1 || a4 > 32 || a6 < 1 || a6 > 128 ||
		    lt_rate_spec_parse(c, &pol.conn, err, errlen) ||
		    lt_rate_spec_parse(p, &pol.pkt, err, errlen))
			return -EINVAL;
		pol.agg_v4 = (__u8)a4;
		pol.agg_v6 = (__u8)a6;
		pol.id = lt_policy_id(&pol);
	}
	return lt_op_policy_set(&ops, &k, &pol, err, errlen);
}

/* Makes kind/id here what data says (NULL: the object does not exist). */
static int lt_sync_apply(struct lt_sync *s, const char *kind, const char *id, json_t *data,
			 char *err, size_t errlen)
{
	err[0] = '\0';
	if (data && !json_is_object(data))
		return -EINVAL;
	if (!strcmp(kind, "tier") || !strcmp(kind, "org"))
		return lt_apply_limit(s, kind, id, data, err, errlen);
	if (!strcmp(kind, "provider"))
		return lt_apply_provider(s, id, data, err, errlen);
	if (!strcmp(kind, "apikey"))
		return lt_apply_apikey(s, id, data);
	if (!strcmp(kind, "penalty"))
		return lt_apply_penalty(s, id, data, err, errlen);
	if (!strcmp(kind, "policy"))
		return lt_apply_policy(s, id, data, err, errlen);
	return -EINVAL;
}

/* ---- versions and the outbox ------------------------------------------------------------ */

static int lt_sync_prepare(struct lt_sync *s)
{
	sqlite3 *db = s->d.st->db;

	if (sqlite3_prepare_v2(db, "SELECT ver_ms, ver_host FROM sync_objects WHERE key=?", -1,
			       &s->get_ver, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO sync_objects VALUES(?,?,?,?,?)", -1,
			       &s->put_obj, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "DELETE FROM outbox WHERE topic=? AND key=?", -1, &s->coalesce,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO sync_offsets VALUES(?,?,?)", -1,
			       &s->put_off, NULL) != SQLITE_OK) {
		log_error("sync: %s", sqlite3_errmsg(db));
		return -EIO;
	}
	return 0;
}

/* The version key has here: 1 and (*ms, host), or 0 (never written nor applied). */
static int lt_sync_version(struct lt_sync *s, const char *key, __u64 *ms, char *host, size_t len)
{
	int found = 0;

	sqlite3_reset(s->get_ver);
	sqlite3_bind_text(s->get_ver, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(s->get_ver) == SQLITE_ROW) {
		*ms = (__u64)sqlite3_column_int64(s->get_ver, 0);
		snprintf(host, len, "%s", (const char *)sqlite3_column_text(s->get_ver, 1));
		found = 1;
	}
	sqlite3_reset(s->get_ver);
	sqlite3_clear_bindings(s->get_ver);
	return found;
}

static int lt_sync_put_obj(struct lt_sync *s, const char *key, __u64 ms, const char *host,
			   const char *data)
{
	int rc;

	sqlite3_reset(s->put_obj);
	sqlite3_bind_text(s->put_obj, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->put_obj, 2, (sqlite3_int64)ms);
	sqlite3_bind_text(s->put_obj, 3, host, -1, SQLITE_STATIC);
	sqlite3_bind_int(s->put_obj, 4, !data);
	if (data)
		sqlite3_bind_text(s->put_obj, 5, data, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s->put_obj, 5);
	rc = sqlite3_step(s->put_obj);
	sqlite3_reset(s->put_obj);
	sqlite3_clear_bindings(s->put_obj);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/*
 * Publishes kind/id as data (NULL = deleted) at a new version, inside the
 * caller's transaction: its version row and its outbox row. An older record
 * of the same object still waiting in the outbox is deleted (the new one
 * supersedes it): the outbox holds at most one record per object, however
 * long Kafka is away. *coalesced: the rows so deleted.
 */
static int lt_sync_publish(struct lt_sync *s, const char *kind, const char *id, json_t *data,
			   long *coalesced)
{
	char key[256];
	char *d = NULL, *v = NULL;
	json_t *rec;
	__u64 now = lt_real_ms(), ms;
	int ret = -EIO;

	*coalesced = 0;
	snprintf(key, sizeof(key), "%s/%s", kind, id);
	ms = now > s->hlc_ms ? now : s->hlc_ms + 1;
	rec = json_pack("{s:s, s:s, s:{s:I, s:s}, s:b, s:O?}", "kind", kind, "id", id, "version",
			"ms", (json_int_t)ms, "host", s->host, "deleted", !data, "data", data);
	if (rec)
		v = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	if (data)
		d = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
	if (!v || (data && !d))
		goto out;
	if (lt_sync_put_obj(s, key, ms, s->host, d))
		goto out;
	sqlite3_reset(s->coalesce);
	sqlite3_bind_text(s->coalesce, 1, s->topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->coalesce, 2, key, -1, SQLITE_STATIC);
	if (sqlite3_step(s->coalesce) != SQLITE_DONE) {
		sqlite3_reset(s->coalesce);
		goto out;
	}
	*coalesced = sqlite3_changes(s->d.st->db);
	sqlite3_reset(s->coalesce);
	{
		struct lt_outbox_row row = { .topic = s->topic,
					     .key = key,
					     .type = LT_CONFIG_TYPE,
					     .subject = key,
					     .time_ns = lt_real_ns(),
					     .data = v,
					     .len = strlen(v) };

		if (lt_outbox_put(s->ob, s->d.st->db, &row))
			goto out;
	}
	__atomic_store_n(&s->hlc_ms, ms, __ATOMIC_RELAXED);
	ret = 0;
out:
	json_decref(rec);
	free(d);
	free(v);
	return ret;
}

int lt_sync_change(struct lt_sync *s, const char *kind, const char *id, lt_sync_fn fn, void *ctx,
		   char *err, size_t errlen)
{
	json_t *prev = NULL, *cur = NULL;
	char e2[256];
	long coalesced = 0;
	int ret;

	if (!s)
		return fn(ctx, err, errlen);
	if (id[0] && lt_sync_read(s, kind, id, &prev)) {
		snprintf(err, errlen, "sync: %s/%s is not an object of config.v1", kind, id);
		return -EINVAL;
	}
	if (lt_store_begin(s->d.st)) {
		json_decref(prev);
		snprintf(err, errlen, "store: cannot start a transaction");
		return -EIO;
	}
	ret = fn(ctx, err, errlen);
	if (ret) {
		lt_store_rollback(s->d.st);
		json_decref(prev);
		return ret;
	}
	ret = lt_sync_read(s, kind, id, &cur);
	if (!ret)
		ret = lt_sync_publish(s, kind, id, cur, &coalesced);
	else
		log_error("sync: %s/%s is not an object of config.v1", kind, id);
	if (!ret)
		ret = lt_store_commit(s->d.st);
	if (ret) {
		lt_store_rollback(s->d.st);
		/* the store has the object as it was: so do the maps and memory again */
		if (lt_sync_apply(s, kind, id, prev, e2, sizeof(e2)))
			log_error("sync: %s/%s could not be put back (%s); a restart reloads it "
				  "from the store",
				  kind, id, e2);
		snprintf(err, errlen,
			 "store: the change of %s/%s and its config record could "
			 "not be committed; nothing was changed",
			 kind, id);
		ret = -EIO;
	} else {
		lt_outbox_committed(s->ob, 1, coalesced);
		LT_SY_ADD(&s->published, 1);
		lt_origin_version(s, s->host, s->hlc_ms);
	}
	json_decref(prev);
	json_decref(cur);
	return ret;
}

/* ---- the consumer -------------------------------------------------------------------------- */

static int lt_sync_may_log(struct lt_sync *s)
{
	__u64 now = lt_now_ns();

	if (s->last_log_ns && now - s->last_log_ns < 10 * LT_NS_PER_SEC)
		return 0;
	s->last_log_ns = now;
	return 1;
}

/*
 * One record, inside the caller's transaction: parsed, compared with the
 * version here, applied when newer. *origin and *event_ms are set for a
 * valid record.
 */
static enum lt_sync_result lt_sync_take(struct lt_sync *s, const rd_kafka_message_t *m,
					char *origin, size_t olen)
{
	const char *kind, *id, *host;
	char key[256], have_host[128], err[256];
	json_t *rec, *ver, *data;
	json_error_t jerr;
	__u64 ms, have_ms;
	char *d = NULL;
	int deleted, ret;
	enum lt_sync_result res = LT_SR_INVALID;

	rec = m->payload ? json_loadb(m->payload, m->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	kind = json_string_value(json_object_get(rec, "kind"));
	id = json_string_value(json_object_get(rec, "id"));
	ver = json_object_get(rec, "version");
	host = json_string_value(json_object_get(ver, "host"));
	data = json_object_get(rec, "data");
	deleted = json_is_true(json_object_get(rec, "deleted"));
	if (!kind || !id || !host || !host[0] || strlen(host) >= sizeof(have_host) ||
	    strspn(host, LT_HOST_CHARS) != strlen(host) || lt_ju(ver, "ms", &ms) ||
	    !json_is_boolean(json_object_get(rec, "deleted")) ||
	    (deleted ? data && !json_is_null(data) : !json_is_object(data)) ||
	    (size_t)snprintf(key, sizeof(key), "%s/%s", kind, id) >= sizeof(key) ||
	    m->key_len != strlen(key) || memcmp(m->key, key, m->key_len))
		goto out;
	snprintf(origin, olen, "%s", host);
	if (ms > lt_real_ms() + LT_SYNC_AHEAD_MS) {
		res = LT_SR_FUTURE;
		if (lt_sync_may_log(s))
			log_warn("sync: %s from %s has version %llu ms, more than %llu ms ahead of "
				 "this host's clock; skipped (is a clock wrong?)",
				 key, host, (unsigned long long)ms,
				 (unsigned long long)LT_SYNC_AHEAD_MS);
		goto out;
	}
	if (ms > s->hlc_ms) /* the clock never falls behind a version it has seen */
		__atomic_store_n(&s->hlc_ms, ms, __ATOMIC_RELAXED);
	if (lt_sync_version(s, key, &have_ms, have_host, sizeof(have_host))) {
		int c = lt_ver_cmp(ms, host, have_ms, have_host);

		if (c <= 0) {
			res = c ? LT_SR_STALE : LT_SR_DUPLICATE;
			goto out;
		}
	}
	if (!deleted)
		d = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
	ret = deleted || d ? lt_sync_apply(s, kind, id, deleted ? NULL : data, err, sizeof(err)) :
			     -ENOMEM;
	if (ret == -EINVAL) { /* an id or a field this version cannot read */
		res = LT_SR_INVALID;
		goto out;
	}
	if (ret || lt_sync_put_obj(s, key, ms, host, d)) {
		if (lt_sync_may_log(s))
			log_warn("sync: %s from %s (version %llu) not applied: %s", key, host,
				 (unsigned long long)ms, err[0] ? err : strerror(ret ? -ret : EIO));
		res = LT_SR_FAILED;
		goto out;
	}
	res = LT_SR_APPLIED;
	lt_origin_version(s, host, ms);
out:
	if (res == LT_SR_INVALID && lt_sync_may_log(s))
		log_warn("sync: a record at %s [%d] offset %lld is not a config.v1 record; skipped",
			 s->topic, (int)m->partition, (long long)m->offset);
	free(d);
	json_decref(rec);
	return res;
}

static void lt_sync_handle(struct lt_sync *s, const rd_kafka_message_t *m)
{
	char origin[128] = "";
	rd_kafka_timestamp_type_t tt;
	enum lt_sync_result res;
	__s64 ts;
	int rc;

	for (;;) { /* the store busy or failing: this record waits, nothing after it runs */
		pthread_mutex_lock(s->d.lock);
		if (!lt_store_begin(s->d.st))
			break;
		pthread_mutex_unlock(s->d.lock);
		if (__atomic_load_n(&s->stop, __ATOMIC_RELAXED))
			return; /* not recorded: read again at the next start */
		usleep(100 * 1000);
	}
	res = lt_sync_take(s, m, origin, sizeof(origin));
	sqlite3_reset(s->put_off);
	sqlite3_bind_text(s->put_off, 1, s->topic, -1, SQLITE_STATIC);
	sqlite3_bind_int(s->put_off, 2, (int)m->partition);
	sqlite3_bind_int64(s->put_off, 3, (sqlite3_int64)m->offset + 1);
	rc = sqlite3_step(s->put_off);
	sqlite3_reset(s->put_off);
	sqlite3_clear_bindings(s->put_off);
	if (rc != SQLITE_DONE || lt_store_commit(s->d.st)) {
		lt_store_rollback(s->d.st);
		pthread_mutex_unlock(s->d.lock);
		if (lt_sync_may_log(s))
			log_warn("sync: cannot record the record at %s [%d] offset %lld; it is "
				 "read again at the next start",
				 s->topic, (int)m->partition, (long long)m->offset);
		return;
	}
	pthread_mutex_unlock(s->d.lock);
	LT_SY_ADD(&s->results[res], 1);
	ts = rd_kafka_message_timestamp(m, &tt);
	if (origin[0] && ts > 0)
		lt_origin_read(s, origin, (__u64)ts);
}

static void lt_sync_kerr(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct lt_sync *s = opaque;

	(void)rk;
	if (lt_sync_may_log(s))
		log_warn("sync: kafka: %s (%s); config changes of other hosts wait",
			 rd_kafka_err2str((rd_kafka_resp_err_t)err), reason);
}

static void lt_sync_klog(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	(void)level;
	log_debug("sync: kafka: %s: %s", fac, buf);
}

static rd_kafka_t *lt_sync_consumer(struct lt_sync *s, char *err, size_t errlen)
{
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	char group[200];
	rd_kafka_t *rk;
	static const char *const fixed[][2] = {
		{ "client.id", "leaky-agent-sync" },
		{ "enable.auto.commit", "false" }, /* offsets live in leaky.db */
		{ "enable.auto.offset.store", "false" },
		{ "auto.offset.reset", "earliest" },
		{ "fetch.wait.max.ms", "100" }, /* S: a record waits at most this at the broker */
		{ "fetch.error.backoff.ms", "100" },
		{ "reconnect.backoff.max.ms", "1000" },
		{ "log.connection.close", "false" },
	};
	unsigned i;

	snprintf(group, sizeof(group), "leaky-config-%s", s->host);
	if (rd_kafka_conf_set(c, "bootstrap.servers", s->k.brokers, err, errlen) ||
	    rd_kafka_conf_set(c, "group.id", group, err, errlen))
		goto fail;
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (rd_kafka_conf_set(c, fixed[i][0], fixed[i][1], err, errlen))
			goto fail;
	rd_kafka_conf_set_opaque(c, s);
	rd_kafka_conf_set_error_cb(c, lt_sync_kerr);
	rd_kafka_conf_set_log_cb(c, lt_sync_klog);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, errlen);
	if (rk) {
		rd_kafka_poll_set_consumer(rk);
		return rk;
	}
fail:
	rd_kafka_conf_destroy(c);
	return NULL;
}

/* The next offset of part from leaky.db, or RD_KAFKA_OFFSET_BEGINNING. */
static __s64 lt_sync_offset(struct lt_sync *s, int part)
{
	sqlite3_stmt *st = NULL;
	__s64 off = RD_KAFKA_OFFSET_BEGINNING;

	pthread_mutex_lock(s->d.lock);
	if (sqlite3_prepare_v2(s->d.st->db,
			       "SELECT next FROM sync_offsets WHERE topic=? AND part=?", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, s->topic, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, part);
		if (sqlite3_step(st) == SQLITE_ROW)
			off = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(s->d.lock);
	return off;
}

/*
 * Every partition of the topic, each from its stored offset: done at start
 * and again when the topic has more partitions than assigned.
 */
static void lt_sync_assign(struct lt_sync *s)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_topic_t *t;
	rd_kafka_resp_err_t e;
	int n = 0, i;

	t = rd_kafka_topic_new(s->rk, s->topic, NULL);
	if (!t)
		return;
	e = rd_kafka_metadata(s->rk, 0, t, &md, 2000);
	if (!e && md->topic_cnt == 1 && !md->topics[0].err)
		n = md->topics[0].partition_cnt;
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	if (n <= s->nparts) {
		if (!n && lt_sync_may_log(s))
			log_info("sync: topic %s not found yet (%s); looking again", s->topic,
				 e ? rd_kafka_err2str(e) : "no partitions");
		return;
	}
	l = rd_kafka_topic_partition_list_new(n);
	for (i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, s->topic, i)->offset = lt_sync_offset(s, i);
	e = rd_kafka_assign(s->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		log_warn("sync: cannot assign %s: %s", s->topic, rd_kafka_err2str(e));
		return;
	}
	log_info("sync: reading %s, %d partitions", s->topic, n);
	s->nparts = n;
}

static void *lt_sync_run(void *arg)
{
	struct lt_sync *s = arg;
	rd_kafka_message_t *m;
	__u64 now;

	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		now = lt_now_ns();
		if (!s->nparts || now - s->meta_ns >= LT_SYNC_META_NS) {
			s->meta_ns = now;
			lt_sync_assign(s);
			if (!s->nparts) {
				usleep(200 * 1000);
				continue;
			}
		}
		m = rd_kafka_consumer_poll(s->rk, LT_SYNC_POLL_MS);
		if (!m)
			continue;
		if (!m->err)
			lt_sync_handle(s, m);
		else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && lt_sync_may_log(s))
			log_warn("sync: kafka: %s", rd_kafka_message_errstr(m));
		rd_kafka_message_destroy(m);
	}
	return NULL;
}

/* ---- start, stop ---------------------------------------------------------------------------- */

static int lt_sync_load(struct lt_sync *s)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(s->d.st->db,
				"SELECT ver_host, max(ver_ms) FROM sync_objects GROUP BY ver_host",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return -EIO;
	while (sqlite3_step(st) == SQLITE_ROW) {
		__u64 ms = (__u64)sqlite3_column_int64(st, 1);

		lt_origin_version(s, (const char *)sqlite3_column_text(st, 0), ms);
		if (ms > s->hlc_ms)
			s->hlc_ms = ms;
	}
	sqlite3_finalize(st);
	return 0;
}

int lt_sync_start(struct lt_sync **out, const struct lt_sync_deps *d,
		  const struct lt_kafka_config *k, char *err, size_t errlen)
{
	struct lt_kafka_config ok;
	struct lt_sync *s;
	char *msg = NULL;
	int ret;

	*out = NULL;
	if (!k->enabled || !k->config_topic[0])
		return 0;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->d = *d;
	s->k = *k;
	pthread_mutex_init(&s->olock, NULL);
	snprintf(s->topic, sizeof(s->topic), "%s", k->config_topic);
	if (k->source[0])
		snprintf(s->host, sizeof(s->host), "%s", k->source);
	else if (gethostname(s->host, sizeof(s->host) - 1) || !s->host[0])
		snprintf(s->host, sizeof(s->host), "localhost");
	if (sqlite3_exec(d->st->db, lt_sync_schema, NULL, NULL, &msg) != SQLITE_OK ||
	    lt_outbox_schema(d->st->db, err, errlen) || lt_sync_prepare(s) || lt_sync_load(s)) {
		if (msg)
			snprintf(err, errlen, "sync schema: %s", msg);
		else if (!err[0])
			snprintf(err, errlen, "sync: %s", sqlite3_errmsg(d->st->db));
		sqlite3_free(msg);
		lt_sync_stop(s);
		return -EIO;
	}
	ok = *k;
	snprintf(ok.topic, sizeof(ok.topic), "%s", k->config_topic);
	ret = lt_outbox_start(&s->ob, d->db_path, &ok, err, errlen);
	s->d.db_path = NULL; /* the caller's buffer */
	if (ret) {
		lt_sync_stop(s);
		return ret;
	}
	s->rk = lt_sync_consumer(s, err, errlen);
	if (!s->rk) {
		lt_sync_stop(s);
		return -EINVAL;
	}
	log_info("sync: config changes to and from %s as host %s (version %llu)", s->topic, s->host,
		 (unsigned long long)s->hlc_ms);
	*out = s;
	return 0;
}

int lt_sync_listen(struct lt_sync *s, char *err, size_t errlen)
{
	int ret;

	if (!s)
		return 0;
	ret = pthread_create(&s->thr, NULL, lt_sync_run, s);
	if (ret) {
		snprintf(err, errlen, "sync: cannot start its thread: %s", strerror(ret));
		return -ret;
	}
	s->thr_on = 1;
	return 0;
}

void lt_sync_stop(struct lt_sync *s)
{
	if (!s)
		return;
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
	if (s->thr_on)
		pthread_join(s->thr, NULL);
	if (s->rk) {
		rd_kafka_consumer_close(s->rk);
		rd_kafka_destroy(s->rk);
	}
	lt_outbox_stop(s->ob); /* its last records get 2 s to leave; the rest wait in leaky.db */
	sqlite3_finalize(s->get_ver);
	sqlite3_finalize(s->put_obj);
	sqlite3_finalize(s->coalesce);
	sqlite3_finalize(s->put_off);
	pthread_mutex_destroy(&s->olock);
	free(s);
}

/* ---- status and metrics -------------------------------------------------------------------- */

/* sha256 over every object's key, version, deleted flag and data, in key order. */
static json_t *lt_sync_objects(struct lt_sync *s, json_t *o)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char h[32];
	char hex[65], line[64];
	sqlite3_stmt *st = NULL;
	json_int_t n = 0, dead = 0;
	const char *t;
	unsigned hl = 0;

	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    sqlite3_prepare_v2(s->d.st->db,
			       "SELECT key, ver_ms, ver_host, deleted, data FROM sync_objects "
			       "ORDER BY key",
			       -1, &st, NULL) != SQLITE_OK) {
		EVP_MD_CTX_free(md);
		sqlite3_finalize(st);
		return o;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		t = (const char *)sqlite3_column_text(st, 0);
		EVP_DigestUpdate(md, t, strlen(t));
		snprintf(line, sizeof(line), "\t%lld\t", (long long)sqlite3_column_int64(st, 1));
		EVP_DigestUpdate(md, line, strlen(line));
		t = (const char *)sqlite3_column_text(st, 2);
		EVP_DigestUpdate(md, t, strlen(t));
		snprintf(line, sizeof(line), "\t%d\t", sqlite3_column_int(st, 3));
		EVP_DigestUpdate(md, line, strlen(line));
		t = (const char *)sqlite3_column_text(st, 4);
		if (t)
			EVP_DigestUpdate(md, t, strlen(t));
		EVP_DigestUpdate(md, "\n", 1);
		n++;
		dead += sqlite3_column_int(st, 3);
	}
	sqlite3_finalize(st);
	EVP_DigestFinal_ex(md, h, &hl);
	EVP_MD_CTX_free(md);
	lt_hex(h, sizeof(h), hex);
	json_object_set_new(o, "objects", json_integer(n));
	json_object_set_new(o, "tombstones", json_integer(dead));
	json_object_set_new(o, "digest", json_string(hex));
	return o;
}

json_t *lt_sync_status(struct lt_sync *s)
{
	json_t *o, *arr, *res, *parts;
	sqlite3_stmt *st = NULL;
	char when[40];
	__u64 ms;
	int i;

	if (!s)
		return json_pack("{s:b}", "enabled", 0);
	pthread_mutex_lock(s->d.lock);
	ms = s->hlc_ms;
	o = json_pack("{s:b, s:s, s:s, s:I, s:I}", "enabled", 1, "host", s->host, "topic", s->topic,
		      "versionMs", (json_int_t)ms, "outboxBacklog",
		      (json_int_t)lt_outbox_backlog(s->ob));
	lt_sync_objects(s, o);
	parts = json_array();
	if (sqlite3_prepare_v2(s->d.st->db,
			       "SELECT part, next FROM sync_offsets WHERE topic=? ORDER BY part",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, s->topic, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(parts,
					      json_pack("{s:i, s:I}", "partition",
							sqlite3_column_int(st, 0), "nextOffset",
							(json_int_t)sqlite3_column_int64(st, 1)));
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(s->d.lock);
	json_object_set_new(o, "partitions", parts);
	res = json_object();
	for (i = 0; i < LT_SR__MAX; i++)
		json_object_set_new(res, lt_sr_name[i],
				    json_integer((json_int_t)LT_SY_LD(&s->results[i])));
	json_object_set_new(res, "published", json_integer((json_int_t)LT_SY_LD(&s->published)));
	json_object_set_new(o, "records", res);
	arr = json_array();
	pthread_mutex_lock(&s->olock);
	for (i = 0; i < s->norig; i++) {
		const struct lt_sync_origin *g = &s->orig[i];
		json_t *e = json_pack("{s:s, s:I, s:I}", "host", g->host, "versionMs",
				      (json_int_t)g->version_ms, "records", (json_int_t)g->records);

		if (g->read_ms) {
			lt_outbox_time(g->read_ms * 1000000ULL, when, sizeof(when));
			json_object_set_new(e, "lagMs", json_real(g->lag_ms));
			json_object_set_new(e, "lastReadAt", json_string(when));
		} else {
			json_object_set_new(e, "lagMs", json_null());
			json_object_set_new(e, "lastReadAt", json_null());
		}
		json_array_append_new(arr, e);
	}
	pthread_mutex_unlock(&s->olock);
	json_object_set_new(o, "origins", arr);
	return o;
}

void lt_sync_metrics(struct lt_sync *s, struct lt_mbuf *b)
{
	int i;

	lt_mbuf_printf(b,
		       "# HELP lt_config_sync_enabled 1 when admin changes are synced through "
		       "Kafka (kafka.config_topic).\n"
		       "# TYPE lt_config_sync_enabled gauge\nlt_config_sync_enabled %d\n",
		       s ? 1 : 0);
	if (!s)
		return;
	lt_mbuf_printf(
		b,
		"# HELP lt_config_sync_version_ms The config version in force here: the greatest "
		"version (hybrid clock, unix ms) written or applied.\n"
		"# TYPE lt_config_sync_version_ms gauge\nlt_config_sync_version_ms %llu\n"
		"# HELP lt_config_sync_outbox_backlog Config records not acknowledged by Kafka "
		"yet.\n# TYPE lt_config_sync_outbox_backlog gauge\n"
		"lt_config_sync_outbox_backlog %llu\n"
		"# HELP lt_config_sync_published_total Admin changes published.\n"
		"# TYPE lt_config_sync_published_total counter\n"
		"lt_config_sync_published_total %llu\n"
		"# HELP lt_config_sync_records_total Config records read, by what became of "
		"them.\n# TYPE lt_config_sync_records_total counter\n",
		(unsigned long long)__atomic_load_n(&s->hlc_ms, __ATOMIC_RELAXED),
		(unsigned long long)lt_outbox_backlog(s->ob),
		(unsigned long long)LT_SY_LD(&s->published));
	for (i = 0; i < LT_SR__MAX; i++)
		lt_mbuf_printf(b, "lt_config_sync_records_total{result=\"%s\"} %llu\n",
			       lt_sr_name[i], (unsigned long long)LT_SY_LD(&s->results[i]));
	pthread_mutex_lock(&s->olock);
	/* hosts are [A-Za-z0-9._-:/] (checked on every record): safe in a label */
	lt_mbuf_printf(b, "# HELP lt_config_sync_origin_version_ms The greatest version of each "
			  "host in force here (unix ms).\n"
			  "# TYPE lt_config_sync_origin_version_ms gauge\n");
	for (i = 0; i < s->norig; i++)
		lt_mbuf_printf(b, "lt_config_sync_origin_version_ms{origin=\"%s\"} %llu\n",
			       s->orig[i].host, (unsigned long long)s->orig[i].version_ms);
	lt_mbuf_printf(b, "# HELP lt_config_sync_lag_seconds Propagation lag of the last record "
			  "of each host: read here minus its event time.\n"
			  "# TYPE lt_config_sync_lag_seconds gauge\n");
	for (i = 0; i < s->norig; i++)
		if (s->orig[i].read_ms)
			lt_mbuf_printf(b, "lt_config_sync_lag_seconds{origin=\"%s\"} %.6f\n",
				       s->orig[i].host, s->orig[i].lag_ms / 1e3);
	pthread_mutex_unlock(&s->olock);
}
