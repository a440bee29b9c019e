// SPDX-License-Identifier: MIT
/*
 * outbox.c - the transactional outbox and its Kafka producer (outbox.h).
 *
 * Threads: the write side runs on its caller's thread (the request log's
 * writer); the send side is one thread of its own that owns the producer and
 * its own connection. They share only the table (SQLite serialises the two
 * writers; both keep their transactions short) and relaxed atomic counters
 * that /metrics reads.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <librdkafka/rdkafka.h>
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "units.h"

#define LT_OB_WINDOW 50000 /* messages handed to librdkafka and not reported yet */
#define LT_OB_READ 2000 /* rows per read of the table */
#define LT_OB_IDLE_MS 20 /* wait for reports when there is nothing to send */
/*
 * The send thread and librdkafka's threads (made by it, so they inherit it)
 * run at nice LT_OB_NICE: on a saturated CPU, admission (the API's threads,
 * nice 0) and the commit of the events (the request log's writer, nice -5)
 * go first, and the events wait in the outbox (bounded) until the CPU has
 * time for them. Around its write transaction (the delete of acknowledged
 * rows), which the writer may be waiting for, the thread runs at
 * LT_OB_NICE_LOCK, so that a lock it holds is never held for long by a
 * thread the scheduler keeps off the CPU. Only with the right to come back
 * up (CAP_SYS_NICE, which attach has as root); without it, all stays at 0.
 */
#define LT_OB_NICE 10
#define LT_OB_NICE_LOCK (-5)
#define LT_OB_TOPICS 8 /* topic handles kept (usage, config, global: 3 so far) */
#define LT_OB_OLDEST_NS (250 * 1000000ULL) /* how often the oldest row is looked up */

/*
 * A pack: many events in one row (n >= 1), so the writer pays one B-tree
 * insert and the sender one read and one delete per LT_OB_PACK_EVENTS events
 * instead of per event (those were most of both threads' CPU at 100k
 * events/s). The row's id is the sequence of its last event: its events are
 * the sequences id - n + 1 .. id (ce_id), and AUTOINCREMENT's high-water
 * mark never gives them out again. A single-event row (n = 0, the layout
 * before packs, and lt_outbox_put's) is the sequence id alone.
 * The data of a pack, per event, little-endian: u64 time_ns, u16 key bytes,
 * u16 subject bytes (LT_OB_SUBJ_NONE: none, LT_OB_SUBJ_KEY: the key's), u32
 * data bytes, then key, subject and data.
 */
#define LT_OB_PACK_EVENTS 1024
#define LT_OB_PACK_BYTES (1024 * 1024)
#define LT_OB_HDR 16
#define LT_OB_SUBJ_NONE 0xffff
#define LT_OB_SUBJ_KEY 0xfffe

struct lt_ob_pack {
	char *buf;
	size_t len, cap; /* bytes */
	unsigned n; /* events in buf */
	char topic[128], type[128]; /* of every event in buf */
	__u64 time_ns; /* of the first */
	unsigned written; /* events written as rows in this transaction */
};

/* A row in flight: its events not all reported yet. */
struct lt_ob_flight {
	__s64 id; /* its last sequence */
	__u32 span; /* its events: sequences id - span + 1 .. id */
	__u32 left; /* reports still to come */
	int failed; /* one of them failed, or not all were produced: kept, sent again */
};

/* A row acknowledged whole: sequences first .. id. */
struct lt_ob_ack {
	__s64 first, id;
};

struct lt_outbox {
	struct lt_kafka_config k;
	char path[512];
	char source[128];
	char store[16]; /* 8 hex digits, drawn once per database */
	pthread_t thr;
	int thr_on;
	int stop; /* __atomic */
	int ckpt; /* __atomic: the write side asks the send thread for a checkpoint */
	/* write side (its caller's thread) */
	sqlite3 *wdb;
	sqlite3_stmt *ins, *trim, *pins, *oldrows;
	struct lt_ob_pack pack; /* events added and not written yet */
	/* counters and gauges (__atomic; /metrics reads them) */
	__s64 backlog; /* rows in the table */
	__u64 oldest_ns; /* appended_ns of the oldest row (CLOCK_REALTIME), 0 = none */
	__u64 appended, dropped_full, dropped_queue;
	__u64 produced, acked, failed, resends, inflight_g;
	/* send side (its thread only) */
	sqlite3 *db;
	sqlite3_stmt *sel, *del, *old, *cnt;
	rd_kafka_t *rk;
	/*
	 * Topic handles of rk, by name: RD_KAFKA_V_TOPIC(name) looks the topic
	 * up under the client's lock and takes and drops a reference on every
	 * message.
	 */
	struct {
		char name[128];
		rd_kafka_topic_t *rkt;
	} topics[LT_OB_TOPICS];
	unsigned ntopics;
	__s64 cursor; /* rows up to this id were handed to the producer */
	char *rbuf; /* the pack being sent (lt_ob_read_pack) */
	size_t rcap;
	long inflight;
	int rescan; /* a delivery failed: send every row again once inflight is 0 */
	int fatal; /* the idempotent producer hit a fatal error: make a new one */
	struct lt_ob_flight *fl; /* rows handed to the producer, by id: [fl_head, nfl) */
	size_t fl_head, nfl, fl_cap;
	struct lt_ob_ack *acks; /* rows acknowledged whole, not deleted yet */
	size_t nacks, cap;
	__u64 last_log_ns; /* the send thread's log limit */
	int niced; /* the send thread runs at LT_OB_NICE and may come back up */
	__u64 w_last_log_ns; /* the write side's */
};

static const char lt_ob_schema[] =
	"CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  topic TEXT NOT NULL, key TEXT NOT NULL, type TEXT NOT NULL, subject TEXT,"
	"  time_ns INTEGER NOT NULL, appended_ns INTEGER NOT NULL, data BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS outbox_meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
	"INSERT OR IGNORE INTO outbox_meta VALUES('store_id', lower(hex(randomblob(4))));";

static __u64 lt_ob_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static __u64 lt_ob_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

#define LT_OB_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define LT_OB_LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

void lt_outbox_time(__u64 ns, char *buf, size_t len)
{
	time_t sec = (time_t)(ns / 1000000000ULL);
	struct tm tm;

	gmtime_r(&sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(ns % 1000000000ULL / 1000));
}

int lt_outbox_schema(sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	char *msg = NULL;
	int rc = sqlite3_exec(db, lt_ob_schema, NULL, NULL, &msg);

	/* packs (n): an outbox made before them gets the column; its rows are singles (0) */
	if (rc == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT n FROM outbox LIMIT 0", -1, &st, NULL) != SQLITE_OK)
		rc = sqlite3_exec(db, "ALTER TABLE outbox ADD COLUMN n INTEGER NOT NULL DEFAULT 0",
				  NULL, NULL, &msg);
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "outbox schema: %s", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return -EIO;
}

/* ---- write side ------------------------------------------------------------------------ */

static int lt_ob_bind(struct lt_outbox *ob, sqlite3 *db)
{
	if (ob->wdb == db && ob->ins)
		return 0;
	lt_outbox_release(ob);
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO outbox(topic, key, type, subject, time_ns, appended_ns,"
			       " data) VALUES(?,?,?,?,?,?,?)",
			       -1, &ob->ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "DELETE FROM outbox WHERE id <= ?", -1, &ob->trim, NULL) !=
		    SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT id, max(n, 1) FROM outbox ORDER BY id", -1, &ob->oldrows,
			       NULL) != SQLITE_OK ||
	    /* the id: the high-water mark of AUTOINCREMENT plus the pack's events */
	    sqlite3_prepare_v2(db,
			       "INSERT INTO outbox(id, topic, key, type, subject, time_ns,"
			       " appended_ns, data, n) VALUES(coalesce((SELECT seq FROM"
			       " sqlite_sequence WHERE name = 'outbox'), 0) + ?6, ?1, '', ?2,"
			       " NULL, ?3, ?4, ?5, ?6)",
			       -1, &ob->pins, NULL) != SQLITE_OK) {
		log_error("outbox: %s", sqlite3_errmsg(db));
		lt_outbox_release(ob);
		return -EIO;
	}
	ob->wdb = db;
	return 0;
}

void lt_outbox_release(struct lt_outbox *ob)
{
	if (!ob)
		return;
	sqlite3_finalize(ob->ins);
	sqlite3_finalize(ob->trim);
	sqlite3_finalize(ob->pins);
	sqlite3_finalize(ob->oldrows);
	ob->ins = ob->trim = ob->pins = ob->oldrows = NULL;
	ob->wdb = NULL;
}

int lt_outbox_put(struct lt_outbox *ob, sqlite3 *db, const struct lt_outbox_row *row)
{
	sqlite3_stmt *st;
	int rc;

	if (lt_ob_bind(ob, db))
		return -EIO;
	st = ob->ins;
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, row->topic ? row->topic : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, row->key ? row->key : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, row->type, -1, SQLITE_STATIC);
	if (row->subject)
		sqlite3_bind_text(st, 4, row->subject, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)(row->time_ns & INT64_MAX));
	sqlite3_bind_int64(st, 6, (sqlite3_int64)lt_ob_real_ns());
	sqlite3_bind_blob(st, 7, row->data, (int)row->len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static __u64 lt_ob_get_le(const unsigned char *p, unsigned bytes);
static int lt_ob_cut(sqlite3 *db, __s64 id, long k);

/*
 * The oldest over events go: whole rows, and the first events of the pack
 * at the boundary (lt_ob_cut), so the bound is exact. Returns the events.
 */
long lt_outbox_trim(struct lt_outbox *ob, sqlite3 *db, unsigned put)
{
	__s64 over = LT_OB_LD(&ob->backlog) + (__s64)put - (__s64)ob->k.outbox_max, last = 0;
	__s64 id, cut_id = 0;
	long gone = 0, n, cut = 0;
	int rc = SQLITE_DONE;

	if (over <= 0 || lt_ob_bind(ob, db))
		return 0;
	sqlite3_reset(ob->oldrows);
	while (gone < over && sqlite3_step(ob->oldrows) == SQLITE_ROW) {
		id = sqlite3_column_int64(ob->oldrows, 0);
		n = (long)sqlite3_column_int64(ob->oldrows, 1);
		if (gone + n > over) { /* a pack: its first events only */
			cut_id = id;
			cut = (long)over - gone;
			break;
		}
		last = id;
		gone += n;
	}
	sqlite3_reset(ob->oldrows);
	if (last) {
		sqlite3_reset(ob->trim);
		sqlite3_bind_int64(ob->trim, 1, last);
		rc = sqlite3_step(ob->trim);
		sqlite3_reset(ob->trim);
	}
	if (rc != SQLITE_DONE)
		return 0;
	if (cut && !lt_ob_cut(db, cut_id, cut))
		gone += cut;
	return gone;
}

/* The first k events of pack id go (the row keeps its id: its last sequence). */
static int lt_ob_cut(sqlite3 *db, __s64 id, long k)
{
	sqlite3_stmt *st = NULL, *up = NULL;
	const unsigned char *d;
	size_t len, off = 0, klen, slen, dlen;
	__s64 tns = 0;
	long i;
	int ret = -EIO;

	if (sqlite3_prepare_v2(db, "SELECT data, n FROM outbox WHERE id = ?", -1, &st, NULL) ||
	    sqlite3_prepare_v2(db,
			       "UPDATE outbox SET data = ?, n = n - ?, time_ns = ? WHERE id = ?",
			       -1, &up, NULL))
		goto cleanup;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int64(st, 1) <= k)
		goto cleanup;
	d = sqlite3_column_blob(st, 0);
	len = (size_t)sqlite3_column_bytes(st, 0);
	for (i = 0; i <= k; i++) { /* past k events; the time of the next */
		if (len - off < LT_OB_HDR)
			goto cleanup;
		tns = (__s64)lt_ob_get_le(d + off, 8);
		klen = (size_t)lt_ob_get_le(d + off + 8, 2);
		slen = (size_t)lt_ob_get_le(d + off + 10, 2);
		slen = slen >= LT_OB_SUBJ_KEY ? 0 : slen;
		dlen = (size_t)lt_ob_get_le(d + off + 12, 4);
		if (i == k)
			break;
		off += LT_OB_HDR;
		if (len - off < klen + slen + dlen)
			goto cleanup;
		off += klen + slen + dlen;
	}
	sqlite3_bind_blob(up, 1, d + off, (int)(len - off), SQLITE_TRANSIENT);
	sqlite3_bind_int64(up, 2, k);
	sqlite3_bind_int64(up, 3, tns);
	sqlite3_bind_int64(up, 4, id);
	ret = sqlite3_step(up) == SQLITE_DONE ? 0 : -EIO;
cleanup:
	sqlite3_finalize(st);
	sqlite3_finalize(up);
	return ret;
}

/* ---- packs (write side) ---------------------------------------------------------------- */

static void lt_ob_le(char *p, __u64 v, unsigned bytes)
{
	unsigned i;

	for (i = 0; i < bytes; i++)
		p[i] = (char)(v >> (8 * i));
}

static __u64 lt_ob_get_le(const unsigned char *p, unsigned bytes)
{
	__u64 v = 0;
	unsigned i;

	for (i = bytes; i--;)
		v = v << 8 | p[i];
	return v;
}

/* The pack as one row, inside the caller's transaction. */
static int lt_ob_pack_write(struct lt_outbox *ob, sqlite3 *db)
{
	struct lt_ob_pack *pk = &ob->pack;
	sqlite3_stmt *st;
	int rc;

	if (!pk->n)
		return 0;
	if (lt_ob_bind(ob, db))
		return -EIO;
	st = ob->pins;
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, pk->topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pk->type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)(pk->time_ns & INT64_MAX));
	sqlite3_bind_int64(st, 4, (sqlite3_int64)lt_ob_real_ns());
	sqlite3_bind_blob(st, 5, pk->buf, (int)pk->len, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, (int)pk->n);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return -EIO;
	pk->written += pk->n;
	pk->n = 0;
	pk->len = 0;
	return 0;
}

int lt_outbox_add(struct lt_outbox *ob, sqlite3 *db, const struct lt_outbox_row *row)
{
	struct lt_ob_pack *pk = &ob->pack;
	const char *topic = row->topic ? row->topic : "";
	size_t klen = row->key ? strlen(row->key) : 0, slen = 0, need;
	unsigned sflag = LT_OB_SUBJ_NONE;
	char *p;

	if (row->subject && row->key && !strcmp(row->subject, row->key)) {
		sflag = LT_OB_SUBJ_KEY;
	} else if (row->subject) {
		slen = strlen(row->subject);
		sflag = (unsigned)slen;
	}
	need = LT_OB_HDR + klen + slen + row->len;
	/* what a pack cannot hold goes alone */
	if (klen >= LT_OB_SUBJ_KEY || slen >= LT_OB_SUBJ_KEY || need > LT_OB_PACK_BYTES ||
	    row->len > UINT32_MAX || strlen(topic) >= sizeof(pk->topic) ||
	    strlen(row->type) >= sizeof(pk->type)) {
		/* after the pack before it: sequences keep the order events were added in */
		if (lt_ob_pack_write(ob, db) || lt_outbox_put(ob, db, row))
			return -EIO;
		pk->written++;
		return 0;
	}
	if (pk->n &&
	    (pk->n == LT_OB_PACK_EVENTS || pk->len + need > LT_OB_PACK_BYTES ||
	     strcmp(pk->topic, topic) || strcmp(pk->type, row->type)) &&
	    lt_ob_pack_write(ob, db))
		return -EIO;
	if (pk->len + need > pk->cap) {
		size_t cap = pk->cap ? pk->cap : 64 * 1024;

		while (cap < pk->len + need)
			cap *= 2;
		p = realloc(pk->buf, cap);
		if (!p)
			return -ENOMEM;
		pk->buf = p;
		pk->cap = cap;
	}
	if (!pk->n) {
		snprintf(pk->topic, sizeof(pk->topic), "%s", topic);
		snprintf(pk->type, sizeof(pk->type), "%s", row->type);
		pk->time_ns = row->time_ns;
	}
	p = pk->buf + pk->len;
	lt_ob_le(p, row->time_ns, 8);
	lt_ob_le(p + 8, klen, 2);
	lt_ob_le(p + 10, sflag, 2);
	lt_ob_le(p + 12, row->len, 4);
	p += LT_OB_HDR;
	memcpy(p, row->key, klen);
	if (slen)
		memcpy(p + klen, row->subject, slen);
	memcpy(p + klen + slen, row->data, row->len);
	pk->len += need;
	pk->n++;
	return 0;
}

int lt_outbox_add_done(struct lt_outbox *ob, sqlite3 *db, unsigned *events)
{
	int ret = lt_ob_pack_write(ob, db);

	*events = ret ? 0 : ob->pack.written;
	ob->pack.written = 0;
	return ret;
}

void lt_outbox_add_discard(struct lt_outbox *ob)
{
	if (!ob)
		return;
	ob->pack.n = 0;
	ob->pack.len = 0;
	ob->pack.written = 0;
}

void lt_outbox_committed(struct lt_outbox *ob, unsigned put, long trimmed)
{
	if (!ob)
		return;
	LT_OB_ADD(&ob->appended, put);
	LT_OB_ADD(&ob->backlog, (__s64)put - trimmed);
	if (trimmed > 0) {
		LT_OB_ADD(&ob->dropped_full, (__u64)trimmed);
		if (!ob->w_last_log_ns ||
		    lt_ob_mono_ns() - ob->w_last_log_ns >= 10 * LT_NS_PER_SEC) {
			ob->w_last_log_ns = lt_ob_mono_ns();
			log_warn(
				"outbox: full (%llu events); the oldest are dropped and counted in "
				"lt_outbox_dropped_total{reason=\"full\"}",
				(unsigned long long)ob->k.outbox_max);
		}
	}
}

/* count: the tries so far; each waits LT_OB_BUSY_NS, until ms in all */
#define LT_OB_BUSY_NS 100000
static int lt_ob_busy(void *arg, int count)
{
	struct timespec nap = { 0, LT_OB_BUSY_NS };

	if ((__u64)count * LT_OB_BUSY_NS >= (__u64)(uintptr_t)arg * 1000000ULL)
		return 0;
	nanosleep(&nap, NULL);
	return 1;
}

int lt_outbox_busy_wait(sqlite3 *db, unsigned ms)
{
	return sqlite3_busy_handler(db, lt_ob_busy, (void *)(uintptr_t)ms);
}

void lt_outbox_checkpoint(struct lt_outbox *ob)
{
	if (ob)
		__atomic_store_n(&ob->ckpt, 1, __ATOMIC_RELAXED);
}

void lt_outbox_dropped(struct lt_outbox *ob, const char *reason, unsigned n)
{
	(void)reason; /* one reason so far: the intake queue */
	if (ob)
		LT_OB_ADD(&ob->dropped_queue, n);
}

__u64 lt_outbox_backlog(struct lt_outbox *ob)
{
	__s64 b = ob ? LT_OB_LD(&ob->backlog) : 0;

	return b > 0 ? (__u64)b : 0;
}

/* ---- send side ------------------------------------------------------------------------- */

/* At most one line in 10 s: a broker that is down must not flood the log. */
static int lt_ob_may_log(struct lt_outbox *ob)
{
	__u64 now = lt_ob_mono_ns();

	if (ob->last_log_ns && now - ob->last_log_ns < 10 * LT_NS_PER_SEC)
		return 0;
	ob->last_log_ns = now;
	return 1;
}

/* The row in flight that holds sequence seq, or NULL. */
static struct lt_ob_flight *lt_ob_flight_of(struct lt_outbox *ob, __s64 seq)
{
	size_t lo = ob->fl_head, hi = ob->nfl, mid;

	while (lo < hi) { /* the first row whose last sequence is >= seq */
		mid = lo + (hi - lo) / 2;
		if (ob->fl[mid].id < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == ob->nfl || ob->fl[lo].id - (__s64)ob->fl[lo].span >= seq)
		return NULL;
	return &ob->fl[lo];
}

/* A row handed to the producer (rows go in id order); NULL if out of memory. */
static struct lt_ob_flight *lt_ob_flight_add(struct lt_outbox *ob, __s64 id, __u32 span)
{
	struct lt_ob_flight *f;

	if (ob->nfl == ob->fl_cap && ob->fl_head) {
		memmove(ob->fl, ob->fl + ob->fl_head, (ob->nfl - ob->fl_head) * sizeof(*f));
		ob->nfl -= ob->fl_head;
		ob->fl_head = 0;
	}
	if (ob->nfl == ob->fl_cap) {
		f = realloc(ob->fl, (ob->fl_cap ? ob->fl_cap * 2 : 1024) * sizeof(*f));
		if (!f)
			return NULL;
		ob->fl = f;
		ob->fl_cap = ob->fl_cap ? ob->fl_cap * 2 : 1024;
	}
	f = &ob->fl[ob->nfl++];
	*f = (struct lt_ob_flight){ .id = id, .span = span, .left = span };
	return f;
}

/* A row all of whose events were acknowledged: it leaves the table on the next pass. */
static void lt_ob_acked_row(struct lt_outbox *ob, const struct lt_ob_flight *f)
{
	struct lt_ob_ack *n;

	if (ob->nacks == ob->cap) {
		n = realloc(ob->acks, (ob->cap ? ob->cap * 2 : 4096) * sizeof(*n));
		if (!n) { /* not deleted now: sent again later (at least once) */
			ob->rescan = 1;
			return;
		}
		ob->acks = n;
		ob->cap = ob->cap ? ob->cap * 2 : 4096;
	}
	ob->acks[ob->nacks++] = (struct lt_ob_ack){ f->id - (__s64)f->span + 1, f->id };
}

/* Runs inside rd_kafka_poll/flush, on the send thread. */
static void lt_ob_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct lt_outbox *ob = opaque;
	__s64 seq = (__s64)(intptr_t)m->_private;
	struct lt_ob_flight *f = lt_ob_flight_of(ob, seq);

	(void)rk;
	ob->inflight--;
	if (m->err) {
		LT_OB_ADD(&ob->failed, 1);
		ob->rescan = 1;
		if (f)
			f->failed = 1;
		if (lt_ob_may_log(ob))
			log_warn("kafka: event %lld not delivered (%s); it stays in the outbox "
				 "and is sent again",
				 (long long)seq, rd_kafka_err2str(m->err));
	} else {
		LT_OB_ADD(&ob->acked, 1);
	}
	if (!f || --f->left)
		return;
	if (!f->failed) /* the row goes once every one of its events is acknowledged */
		lt_ob_acked_row(ob, f);
	while (ob->fl_head < ob->nfl && !ob->fl[ob->fl_head].left)
		ob->fl_head++;
	if (ob->fl_head == ob->nfl)
		ob->fl_head = ob->nfl = 0;
}

static void lt_ob_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct lt_outbox *ob = opaque;
	char why[256];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, why, sizeof(why));
		log_warn("kafka: fatal producer error (%s); starting a new producer", why);
		ob->fatal = 1;
		return;
	}
	if (lt_ob_may_log(ob))
		log_warn("kafka: %s (%s); events wait in the outbox",
			 rd_kafka_err2str((rd_kafka_resp_err_t)err), reason);
}

static void lt_ob_klog(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	(void)level;
	log_debug("kafka: %s: %s", fac, buf);
}

static rd_kafka_t *lt_ob_producer(struct lt_outbox *ob, char *err, size_t errlen)
{
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	char tmo[32];
	rd_kafka_t *rk;
	static const char *const fixed[][2] = {
		{ "enable.idempotence", "true" }, /* no duplicates or reordering from retries */
		{ "acks", "all" },
		{ "client.id", "leaky-agent" },
		{ "linger.ms", "5" },
		{ "batch.num.messages", "10000" },
		{ "queue.buffering.max.messages", "100000" }, /* > LT_OB_WINDOW */
		{ "reconnect.backoff.max.ms", "1000" },
		{ "log.connection.close", "false" },
	};
	unsigned i;

	snprintf(tmo, sizeof(tmo), "%llu",
		 (unsigned long long)(ob->k.message_timeout_ns / 1000000ULL));
	if (rd_kafka_conf_set(c, "bootstrap.servers", ob->k.brokers, err, errlen) ||
	    rd_kafka_conf_set(c, "message.timeout.ms", tmo, err, errlen))
		goto fail;
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (rd_kafka_conf_set(c, fixed[i][0], fixed[i][1], err, errlen))
			goto fail;
	rd_kafka_conf_set_opaque(c, ob);
	rd_kafka_conf_set_dr_msg_cb(c, lt_ob_report);
	rd_kafka_conf_set_error_cb(c, lt_ob_error);
	rd_kafka_conf_set_log_cb(c, lt_ob_klog);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, errlen); /* owns c on success */
	if (rk)
		return rk;
fail:
	rd_kafka_conf_destroy(c);
	return NULL;
}

/* Everything in flight is abandoned (purged): sent again from the table. */
static void lt_ob_drop_producer(struct lt_outbox *ob)
{
	if (!ob->rk)
		return;
	rd_kafka_purge(ob->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(ob->rk, 0); /* their reports: failed, rescan */
	while (ob->ntopics)
		rd_kafka_topic_destroy(ob->topics[--ob->ntopics].rkt);
	rd_kafka_destroy(ob->rk);
	ob->rk = NULL;
	ob->inflight = 0;
	ob->fl_head = ob->nfl = 0;
	ob->rescan = 1;
	ob->fatal = 0;
}

static int lt_ob_cmp(const void *a, const void *b)
{
	__s64 x = ((const struct lt_ob_ack *)a)->first, y = ((const struct lt_ob_ack *)b)->first;

	return x < y ? -1 : x > y;
}

static void lt_ob_oldest(struct lt_outbox *ob)
{
	__u64 v = 0;

	sqlite3_reset(ob->old);
	if (sqlite3_step(ob->old) == SQLITE_ROW)
		v = (__u64)sqlite3_column_int64(ob->old, 0);
	sqlite3_reset(ob->old);
	__atomic_store_n(&ob->oldest_ns, v, __ATOMIC_RELAXED);
}

/*
 * Acknowledged rows leave the table: rows whose sequences follow each other
 * as one range each (no other row can have its id inside such a range). The
 * events they held are counted first: a row the write side trimmed (the
 * outbox was full) is not there, and was counted by the trim.
 */
static void lt_ob_nice(struct lt_outbox *ob, int nice)
{
	if (ob->niced)
		setpriority(PRIO_PROCESS, (id_t)gettid(), nice);
}

static void lt_ob_delete_acked(struct lt_outbox *ob)
{
	size_t i, j;
	long gone = 0;
	int rc;

	if (!ob->nacks)
		return;
	qsort(ob->acks, ob->nacks, sizeof(*ob->acks), lt_ob_cmp);
	lt_ob_nice(ob, LT_OB_NICE_LOCK); /* until COMMIT or ROLLBACK: the writer may wait */
	rc = sqlite3_exec(ob->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (i = 0; rc == SQLITE_OK && i < ob->nacks; i = j) {
		for (j = i + 1; j < ob->nacks && ob->acks[j].first == ob->acks[j - 1].id + 1; j++)
			;
		sqlite3_reset(ob->cnt);
		sqlite3_bind_int64(ob->cnt, 1, ob->acks[i].first);
		sqlite3_bind_int64(ob->cnt, 2, ob->acks[j - 1].id);
		rc = sqlite3_step(ob->cnt) == SQLITE_ROW ? SQLITE_OK : SQLITE_ERROR;
		gone += (long)sqlite3_column_int64(ob->cnt, 0);
		sqlite3_reset(ob->cnt);
		sqlite3_reset(ob->del);
		sqlite3_bind_int64(ob->del, 1, ob->acks[i].first);
		sqlite3_bind_int64(ob->del, 2, ob->acks[j - 1].id);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(ob->del) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	}
	sqlite3_reset(ob->del);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(ob->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) { /* kept: tried again on the next pass */
		sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
		lt_ob_nice(ob, LT_OB_NICE);
		if (lt_ob_may_log(ob))
			log_warn("outbox: cannot delete acknowledged events: %s",
				 sqlite3_errmsg(ob->db));
		return;
	}
	lt_ob_nice(ob, LT_OB_NICE);
	LT_OB_ADD(&ob->backlog, -(__s64)gone);
	ob->nacks = 0;
	lt_ob_oldest(ob); /* one index probe: the age gauge never outlives its row */
}

/* rk's handle of topic name (kept until the producer goes), or NULL */
static rd_kafka_topic_t *lt_ob_topic(struct lt_outbox *ob, const char *name)
{
	rd_kafka_topic_t *rkt;
	unsigned i;

	for (i = 0; i < ob->ntopics; i++)
		if (!strcmp(ob->topics[i].name, name))
			return ob->topics[i].rkt;
	if (strlen(name) >= sizeof(ob->topics[0].name) || ob->ntopics == LT_OB_TOPICS)
		return NULL;
	rkt = rd_kafka_topic_new(ob->rk, name, NULL);
	if (rkt) {
		snprintf(ob->topics[ob->ntopics].name, sizeof(ob->topics[0].name), "%s", name);
		ob->topics[ob->ntopics++].rkt = rkt;
	}
	return rkt;
}

/* when = sec (the second, 19 characters) + ".uuuuuuZ" of ns: what lt_outbox_time writes. */
static void lt_ob_time_us(const char *sec, __u64 ns, char *when)
{
	unsigned us = (unsigned)(ns % 1000000000ULL / 1000), i;

	memcpy(when, sec, 19);
	when[19] = '.';
	for (i = 0; i < 6; i++, us /= 10)
		when[25 - i] = (char)('0' + us % 10);
	when[26] = 'Z';
	when[27] = '\0';
}

/* One event to the producer: 0, or the producer's error. */
static rd_kafka_resp_err_t lt_ob_produce(struct lt_outbox *ob, const char *topic, const char *type,
					 __s64 seq, __s64 tns, const char *key, size_t klen,
					 const char *subject, size_t slen, const void *data,
					 size_t len, char sec[24], __s64 *sec_of)
{
	char id[192], when[40];
	rd_kafka_headers_t *h;
	const char *tname = topic && topic[0] ? topic : ob->k.topic;
	rd_kafka_topic_t *rkt = lt_ob_topic(ob, tname), *tmp = NULL;
	rd_kafka_resp_err_t e;
	struct lt_sb b;

	if (!rkt) /* a name the cache cannot hold: a handle for this message only */
		rkt = tmp = rd_kafka_topic_new(ob->rk, tname, NULL);
	if (!rkt) {
		e = rd_kafka_last_error();
		return e ? e : RD_KAFKA_RESP_ERR__INVALID_ARG;
	}
	/* builders, not snprintf and gmtime: the send thread pays them per event */
	lt_sb_init(&b, id, sizeof(id));
	lt_sb_str(&b, ob->source);
	lt_sb_mem(&b, "-", 1);
	lt_sb_str(&b, ob->store);
	lt_sb_mem(&b, "-", 1);
	lt_sb_u64(&b, (unsigned long long)seq);
	if (tns / 1000000000LL != *sec_of) { /* "2026-12-02T05:10:00", once a second */
		*sec_of = tns / 1000000000LL;
		lt_outbox_time((__u64)*sec_of * 1000000000ULL, when, sizeof(when));
		memcpy(sec, when, 19);
		sec[19] = '\0';
	}
	lt_ob_time_us(sec, (__u64)tns, when);
	h = rd_kafka_headers_new(8);
	rd_kafka_header_add(h, "ce_specversion", -1, "1.0", -1);
	rd_kafka_header_add(h, "ce_id", -1, id, -1);
	rd_kafka_header_add(h, "ce_source", -1, ob->source, -1);
	rd_kafka_header_add(h, "ce_type", -1, type ? type : "", -1);
	rd_kafka_header_add(h, "ce_time", -1, when, -1);
	rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
	if (subject)
		rd_kafka_header_add(h, "ce_subject", -1, subject, (ssize_t)slen);
	e = rd_kafka_producev(ob->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_KEY(key, klen),
			      RD_KAFKA_V_VALUE((void *)data, len),
			      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			      RD_KAFKA_V_TIMESTAMP((int64_t)(tns / 1000000)), RD_KAFKA_V_HEADERS(h),
			      RD_KAFKA_V_OPAQUE((void *)(intptr_t)seq), RD_KAFKA_V_END);
	if (e) /* on success the message owns them */
		rd_kafka_headers_destroy(h);
	if (tmp) /* the message holds its own reference to the topic */
		rd_kafka_topic_destroy(tmp);
	return e;
}

/*
 * The events of a pack (n of them in d, len bytes) to the producer; returns
 * how many were produced, *e the error that stopped it (0: all, or the pack
 * is malformed: *bad set).
 */
static __u32 lt_ob_produce_pack(struct lt_outbox *ob, __s64 rid, __u32 n, const char *topic,
				const char *type, const unsigned char *d, size_t len,
				rd_kafka_resp_err_t *e, int *bad, char sec[24], __s64 *sec_of)
{
	size_t off = 0, klen, slen, dlen;
	unsigned sflag;
	const char *subj;
	__u32 i;
	__s64 tns;

	*e = RD_KAFKA_RESP_ERR_NO_ERROR;
	*bad = 0;
	for (i = 0; i < n; i++) {
		if (len - off < LT_OB_HDR) {
			*bad = 1;
			return i;
		}
		tns = (__s64)lt_ob_get_le(d + off, 8);
		klen = (size_t)lt_ob_get_le(d + off + 8, 2);
		sflag = (unsigned)lt_ob_get_le(d + off + 10, 2);
		dlen = (size_t)lt_ob_get_le(d + off + 12, 4);
		slen = sflag >= LT_OB_SUBJ_KEY ? 0 : sflag;
		off += LT_OB_HDR;
		if (len - off < klen + slen + dlen) {
			*bad = 1;
			return i;
		}
		subj = sflag == LT_OB_SUBJ_NONE ? NULL :
		       sflag == LT_OB_SUBJ_KEY	? (const char *)d + off :
						  (const char *)d + off + klen;
		*e = lt_ob_produce(ob, topic, type, rid - (__s64)n + 1 + i, tns,
				   (const char *)d + off, klen, subj,
				   sflag == LT_OB_SUBJ_KEY ? klen : slen, d + off + klen + slen,
				   dlen, sec, sec_of);
		if (*e)
			return i;
		off += klen + slen + dlen;
	}
	return n;
}

/*
 * A pack's data into ob->rbuf (kept from pack to pack); its length, 0 if it
 * cannot be read (then it reads as malformed). Not through the SELECT: a
 * column value of hundreds of KiB is a malloc and a free per pack, and in
 * glibc each such large chunk consolidates every small one freed since
 * (librdkafka frees ten per message): that was a third of this thread's CPU.
 */
static size_t lt_ob_read_pack(struct lt_outbox *ob, __s64 rid)
{
	sqlite3_blob *bh = NULL;
	size_t len = 0;
	char *p;
	int n;

	if (sqlite3_blob_open(ob->db, "main", "outbox", "data", rid, 0, &bh) == SQLITE_OK) {
		n = sqlite3_blob_bytes(bh);
		if (n > 0 && (size_t)n > ob->rcap) {
			p = realloc(ob->rbuf, (size_t)n);
			if (p) {
				ob->rbuf = p;
				ob->rcap = (size_t)n;
			}
		}
		if (n > 0 && (size_t)n <= ob->rcap &&
		    sqlite3_blob_read(bh, ob->rbuf, n, 0) == SQLITE_OK)
			len = (size_t)n;
	}
	sqlite3_blob_close(bh);
	return len;
}

/* Hands rows after the cursor, up to max events, to the producer; returns the events. */
static long lt_ob_send(struct lt_outbox *ob, long max)
{
	char sec[24] = "";
	__s64 sec_of = -1; /* the second sec holds */
	const char *topic, *type;
	sqlite3_stmt *st = ob->sel;
	struct lt_ob_flight *f;
	rd_kafka_resp_err_t e;
	long n = 0;
	__s64 rid;
	__u32 rn, span, done;
	int bad;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, ob->cursor);
	sqlite3_bind_int64(st, 2, max < LT_OB_READ ? max : LT_OB_READ);
	while (n < max && sqlite3_step(st) == SQLITE_ROW) {
		rid = sqlite3_column_int64(st, 0);
		topic = (const char *)sqlite3_column_text(st, 1);
		type = (const char *)sqlite3_column_text(st, 3);
		rn = (__u32)sqlite3_column_int(st, 7);
		span = rn ? rn : 1;
		if (n && n + span > max)
			break; /* the window is full: this row next pass */
		f = lt_ob_flight_add(ob, rid, span);
		if (!f)
			break;
		bad = 0;
		if (!rn) {
			e = lt_ob_produce(ob, topic, type, rid, sqlite3_column_int64(st, 5),
					  (const char *)sqlite3_column_text(st, 2),
					  (size_t)sqlite3_column_bytes(st, 2),
					  (const char *)sqlite3_column_text(st, 4),
					  (size_t)sqlite3_column_bytes(st, 4),
					  sqlite3_column_blob(st, 6),
					  (size_t)sqlite3_column_bytes(st, 6), sec, &sec_of);
			done = !e;
		} else {
			size_t len = lt_ob_read_pack(ob, rid);

			done = lt_ob_produce_pack(ob, rid, rn, topic, type,
						  (const unsigned char *)ob->rbuf, len, &e, &bad,
						  sec, &sec_of);
		}
		ob->inflight += done;
		n += done;
		if (done == span) {
			ob->cursor = rid;
			continue;
		}
		/* only done reports will come for this row */
		f->left = done;
		if (bad) { /* cannot be sent, ever: it goes once what was produced is reported */
			log_error("outbox: event row %lld is malformed; %u of its %u events sent, "
				  "the row is deleted",
				  (long long)rid, done, span);
			ob->cursor = rid;
			if (!done) {
				lt_ob_acked_row(ob, f);
				ob->nfl--;
			}
			continue;
		}
		f->failed = 1; /* kept: sent again whole from the table */
		if (!done)
			ob->nfl--;
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !done)
			break; /* the same row next pass */
		ob->rescan = 1;
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			LT_OB_ADD(&ob->failed, 1);
			if (lt_ob_may_log(ob))
				log_warn("kafka: cannot produce event %lld: %s", (long long)rid,
					 rd_kafka_err2str(e));
		}
		break;
	}
	sqlite3_reset(st);
	LT_OB_ADD(&ob->produced, (__u64)n);
	return n;
}

static void *lt_ob_run(void *arg)
{
	struct lt_outbox *ob = arg;
	__u64 last_oldest = 0, now;
	char err[512];
	long n;

	pthread_setname_np(pthread_self(), "lt-outbox");
	/*
	 * Down only if it can come back up (LT_OB_NICE_LOCK needs CAP_SYS_NICE),
	 * and not the config outbox (sync.c, whose topic is kafka.config_topic):
	 * its rare changes have a propagation time to keep, not a volume to defer.
	 */
	ob->niced = strcmp(ob->k.topic, ob->k.config_topic) &&
		    !setpriority(PRIO_PROCESS, (id_t)gettid(), LT_OB_NICE_LOCK) &&
		    !setpriority(PRIO_PROCESS, (id_t)gettid(), LT_OB_NICE);
	if (!ob->niced)
		setpriority(PRIO_PROCESS, (id_t)gettid(), 0);
	while (!__atomic_load_n(&ob->stop, __ATOMIC_RELAXED)) {
		/* PASSIVE: never waits for the writer, which goes on appending meanwhile */
		if (__atomic_exchange_n(&ob->ckpt, 0, __ATOMIC_RELAXED))
			sqlite3_wal_checkpoint_v2(ob->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
						  NULL);
		now = lt_ob_mono_ns();
		if (now - last_oldest >= LT_OB_OLDEST_NS) {
			last_oldest = now;
			lt_ob_oldest(ob);
		}
		if (!ob->rk) {
			ob->rk = lt_ob_producer(ob, err, sizeof(err));
			if (!ob->rk) {
				if (lt_ob_may_log(ob))
					log_error("kafka: cannot make a producer: %s", err);
				usleep(1000 * 1000);
				continue;
			}
		}
		rd_kafka_poll(ob->rk, 0);
		if (ob->fatal)
			lt_ob_drop_producer(ob);
		lt_ob_delete_acked(ob);
		if (ob->rescan && !ob->inflight) {
			ob->fl_head = ob->nfl = 0; /* every report is in */
			ob->cursor = 0; /* every row left was sent and failed, or never sent */
			ob->rescan = 0;
			LT_OB_ADD(&ob->resends, 1);
		}
		__atomic_store_n(&ob->inflight_g, (__u64)ob->inflight, __ATOMIC_RELAXED);
		n = 0;
		if (ob->rk && !ob->rescan && ob->inflight < LT_OB_WINDOW)
			n = lt_ob_send(ob, LT_OB_WINDOW - ob->inflight);
		if (!n && ob->rk)
			rd_kafka_poll(ob->rk, LT_OB_IDLE_MS);
	}
	if (ob->rk) { /* what the broker takes in 2 s leaves the table; the rest waits */
		rd_kafka_flush(ob->rk, 2000);
		lt_ob_delete_acked(ob);
		lt_ob_drop_producer(ob);
	}
	return NULL;
}

int lt_outbox_start(struct lt_outbox **out, const char *path, const struct lt_kafka_config *k,
		    char *err, size_t errlen)
{
	struct lt_outbox *ob;
	sqlite3_stmt *st = NULL;
	int rc, ret = -EIO;

	*out = NULL;
	ob = calloc(1, sizeof(*ob));
	if (!ob)
		return -ENOMEM;
	ob->k = *k;
	snprintf(ob->path, sizeof(ob->path), "%s", path);
	if (k->source[0])
		snprintf(ob->source, sizeof(ob->source), "%s", k->source);
	else if (gethostname(ob->source, sizeof(ob->source) - 1) || !ob->source[0])
		snprintf(ob->source, sizeof(ob->source), "localhost");
	rc = sqlite3_open_v2(path, &ob->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	/*
	 * The send side only deletes: a delete lost to a power cut sends that
	 * event again, which consumers dedupe. NORMAL (no fsync per commit in WAL)
	 * keeps the deletes off the disk's critical path; the appends stay FULL.
	 */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(ob->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	/*
	 * Reads through a mapping of the file instead of a read() per page: the
	 * writer's commits invalidate this connection's cache, and the rows it
	 * reads again are the newest (in the page cache, often in the -wal).
	 */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(ob->db, "PRAGMA mmap_size=268435456", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = lt_outbox_busy_wait(ob->db, 2000);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(ob->db,
					"SELECT id, topic, key, type, subject, time_ns,"
					" CASE WHEN n = 0 THEN data END, n"
					" FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
					-1, &ob->sel, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(ob->db, "DELETE FROM outbox WHERE id BETWEEN ? AND ?", -1,
					&ob->del, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(ob->db,
					"SELECT coalesce(sum(max(n, 1)), 0) FROM outbox"
					" WHERE id BETWEEN ? AND ?",
					-1, &ob->cnt, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(ob->db,
					"SELECT appended_ns FROM outbox ORDER BY id LIMIT 1", -1,
					&ob->old, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(ob->db,
					"SELECT (SELECT v FROM outbox_meta WHERE k='store_id'),"
					" (SELECT coalesce(sum(max(n, 1)), 0) FROM outbox)",
					-1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
		snprintf(ob->store, sizeof(ob->store), "%s", sqlite3_column_text(st, 0));
		ob->backlog = sqlite3_column_int64(st, 1);
		ret = 0;
	}
	sqlite3_finalize(st);
	if (ret) {
		snprintf(err, errlen, "outbox %s: %s", path,
			 ob->db ? sqlite3_errmsg(ob->db) : sqlite3_errstr(rc));
		lt_outbox_stop(ob);
		return ret;
	}
	lt_ob_oldest(ob);
	/*
	 * No fastbins in glibc's malloc (process-wide; the API's threads allocate
	 * little and reuse it from their per-thread cache). The send thread holds
	 * up to LT_OB_WINDOW messages, ten allocations each (the message, its
	 * header list, a chunk per header), freed together as they are reported:
	 * past the few a thread caches per size, the small chunks went to
	 * fastbins, and every large free after them consolidated them all
	 * (malloc_consolidate, unlink_chunk: a fifth of the thread's CPU). Without
	 * fastbins a chunk is merged once, when freed. Measured by
	 * scripts/bench_kafka.sh: lt-outbox from 3.1-3.4 to 2.4-2.7 us per event.
	 */
	mallopt(M_MXFAST, 0);
	rc = pthread_create(&ob->thr, NULL, lt_ob_run, ob);
	if (rc) {
		snprintf(err, errlen, "outbox: cannot start its thread: %s", strerror(rc));
		lt_outbox_stop(ob);
		return -rc;
	}
	ob->thr_on = 1;
	log_info("kafka: events to topic %s at %s as source %s (%lld waiting in the outbox)",
		 k->topic, k->brokers, ob->source, (long long)ob->backlog);
	*out = ob;
	return 0;
}

void lt_outbox_stop(struct lt_outbox *ob)
{
	if (!ob)
		return;
	__atomic_store_n(&ob->stop, 1, __ATOMIC_RELAXED);
	if (ob->thr_on)
		pthread_join(ob->thr, NULL);
	lt_outbox_release(ob);
	sqlite3_finalize(ob->sel);
	sqlite3_finalize(ob->del);
	sqlite3_finalize(ob->cnt);
	sqlite3_finalize(ob->old);
	sqlite3_close(ob->db);
	free(ob->acks);
	free(ob->fl);
	free(ob->rbuf);
	free(ob->pack.buf);
	free(ob);
}

void lt_outbox_metrics(struct lt_outbox *ob, struct lt_mbuf *b)
{
	__u64 old, now = lt_ob_real_ns();

	lt_mbuf_printf(b,
		       "# HELP lt_outbox_enabled 1 when usage events go to Kafka (kafka.enabled).\n"
		       "# TYPE lt_outbox_enabled gauge\nlt_outbox_enabled %d\n",
		       ob ? 1 : 0);
	if (!ob)
		return;
	old = LT_OB_LD(&ob->oldest_ns);
	lt_mbuf_printf(
		b,
		"# HELP lt_outbox_backlog Events in the outbox not acknowledged by Kafka yet.\n"
		"# TYPE lt_outbox_backlog gauge\nlt_outbox_backlog %llu\n"
		"# HELP lt_outbox_max_events The outbox's bound (kafka.outbox_max_events).\n"
		"# TYPE lt_outbox_max_events gauge\nlt_outbox_max_events %llu\n"
		"# HELP lt_outbox_oldest_age_seconds Age of the oldest event waiting (0 = none).\n"
		"# TYPE lt_outbox_oldest_age_seconds gauge\nlt_outbox_oldest_age_seconds %.3f\n"
		"# HELP lt_outbox_appended_total Events committed to the outbox.\n"
		"# TYPE lt_outbox_appended_total counter\nlt_outbox_appended_total %llu\n"
		"# HELP lt_outbox_dropped_total Events lost before Kafka had them: the oldest when "
		"the outbox was full (kafka.outbox_max_events), or sampled kernel decisions that "
		"found the intake queue full.\n"
		"# TYPE lt_outbox_dropped_total counter\n"
		"lt_outbox_dropped_total{reason=\"full\"} %llu\n"
		"lt_outbox_dropped_total{reason=\"queue_full\"} %llu\n"
		"# HELP lt_kafka_produced_total Events handed to the producer (resends "
		"included).\n# TYPE lt_kafka_produced_total counter\nlt_kafka_produced_total %llu\n"
		"# HELP lt_kafka_acked_total Events the broker acknowledged (acks=all).\n"
		"# TYPE lt_kafka_acked_total counter\nlt_kafka_acked_total %llu\n"
		"# HELP lt_kafka_failed_total Deliveries that failed (the event stays and is "
		"sent again).\n# TYPE lt_kafka_failed_total counter\nlt_kafka_failed_total %llu\n"
		"# HELP lt_kafka_resends_total Times the outbox was sent again from its oldest "
		"event after a failure.\n# TYPE lt_kafka_resends_total counter\n"
		"lt_kafka_resends_total %llu\n"
		"# HELP lt_kafka_inflight Events produced and not reported yet.\n"
		"# TYPE lt_kafka_inflight gauge\nlt_kafka_inflight %llu\n",
		(unsigned long long)lt_outbox_backlog(ob), (unsigned long long)ob->k.outbox_max,
		old && now > old ? (double)(now - old) / 1e9 : 0.0,
		(unsigned long long)LT_OB_LD(&ob->appended),
		(unsigned long long)LT_OB_LD(&ob->dropped_full),
		(unsigned long long)LT_OB_LD(&ob->dropped_queue),
		(unsigned long long)LT_OB_LD(&ob->produced),
		(unsigned long long)LT_OB_LD(&ob->acked), (unsigned long long)LT_OB_LD(&ob->failed),
		(unsigned long long)LT_OB_LD(&ob->resends),
		(unsigned long long)LT_OB_LD(&ob->inflight_g));
}
