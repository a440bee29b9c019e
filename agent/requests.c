// SPDX-License-Identifier: MIT
/*
 * requests.c - usage records: ring -> GenAI metrics and the request log
 * (requests.h). Two threads:
 *   consumer  drains lt_reqlog in order (lib/reqlog.c), counts each record
 *             into the histograms, hands it to the queue; never waits on
 *             anything but its poll interval.
 *   writer    empties the queue into requests.db in batches (one
 *             transaction each), then trims the table to its row cap.
 * The histograms have one writer (the consumer) and many readers (/metrics):
 * relaxed atomic loads and stores, no lock. The store is a file of its own,
 * so its batches never hold the control plane's leaky.db write lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include "addr.h"
#include "api.h"
#include "log.h"
#include "logq.h"
#include "maps.h"
#include "metrics.h"
#include "outbox.h"
#include "reqlog.h"
#include "requests.h"
#include "rollup.h"
#include "units.h"
#include "utf8.h"

/* OpenTelemetry GenAI semantic conventions: the ExplicitBucketBoundaries they give. */
static const __u64 lt_tok_le[] = {
	1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864
}; /* tokens */
static const double lt_dur_le[] = { 0.01, 0.02, 0.04, 0.08,  0.16,  0.32,  0.64,
				    1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92 }; /* s */
static const double lt_ttft_le[] = { 0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
				     0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,	 10.0 }; /* s */
#define LT_N(a) (sizeof(a) / sizeof((a)[0]))
#define LT_TOK_N LT_N(lt_tok_le)
#define LT_DUR_N LT_N(lt_dur_le)
#define LT_TTFT_N LT_N(lt_ttft_le)

#define LT_RQ_PROVIDERS 64 /* series by provider (the config allows 64); then "_OTHER" */
/*
 * Records between the consumer and the writer: two arrays of this many items
 * (704 bytes each), one filling while the writer commits the other, so a
 * commit (an fsync with synchronous=FULL) carries everything that arrived
 * during the previous one: group commit, the batch growing with the disk's
 * latency. The commit rate, not the record rate, is what the disk pays for.
 * With the ring (LT_REQLOG_SLOTS), it is what absorbs a slow commit: at
 * 100,000 decisions/s, 16384 + 8192 records are 245 ms (a shared disk's
 * fdatasync took up to 120 ms, and the writer's CPU share on a saturated
 * 2-core host paused it as long). Memory: 2 x 16384 x 704 bytes = 22 MiB
 * at most, touched only as deep as the largest backlog seen.
 */
#define LT_RQ_QUEUE 16384
#define LT_RQ_CHUNK 256 /* records the consumer moves under one hold of q_lock */
#define LT_RQ_POLL_NS (5 * 1000000ULL) /* consumer sleep when the ring is empty */
/*
 * Batches start at least this far apart. A batch's own work (its transaction,
 * the row and age caps, the byte bound's pragmas, the rollup upserts, the WAL
 * pages) does not depend on its size: with a batch per consumer poll (5 ms)
 * the writer took 0.33-0.36 us per consume decision at 100,000/s, with this
 * gap 0.21-0.23 us, CPU taken from the API's threads on a busy host. 25 ms of
 * records is 2,500 at that rate, far inside LT_RQ_QUEUE; rows (and their
 * events) show 25 ms later at most.
 */
#define LT_RQ_BATCH_GAP_NS (25 * 1000000ULL)

/* Counts per bucket (not cumulative), sums in the unit of the observation. */
struct lt_rq_hist_tok {
	__u64 b[LT_TOK_N + 1], sum, count;
};
struct lt_rq_hist_dur {
	__u64 b[LT_DUR_N + 1], sum_ns, count;
};
struct lt_rq_hist_ttft {
	__u64 b[LT_TTFT_N + 1], sum_ns, count;
};

struct lt_rq_series {
	char provider[LT_REQLOG_SHORT_LEN]; /* label-safe; written before nseries counts it */
	struct lt_rq_hist_tok tok[2]; /* input, output */
	struct lt_rq_hist_dur dur;
	struct lt_rq_hist_ttft ttft;
};

enum { LT_RQ_QUEUE_FULL, LT_RQ_STORE_ERROR, LT_RQ_NO_STORE, LT_RQ_CONSUME_RATE, LT_RQ__DROP };

struct lt_requests {
	struct lt_reqlog rl;
	pthread_t consumer, writer;
	int consumer_on, writer_on;
	int stop; /* __atomic */
	/* metrics */
	unsigned nseries; /* __atomic: series[0..nseries) are in use */
	struct lt_rq_series series[LT_RQ_PROVIDERS + 1]; /* the last is "_OTHER" */
	__u64 stored; /* rows written */
	__u64 store_dropped[LT_RQ__DROP]; /* consumed, not kept */
	/* queue (q_lock) */
	pthread_mutex_t q_lock;
	pthread_cond_t q_cond;
	struct lt_rq_item *queue; /* filled by the consumer: [0, q_len) */
	struct lt_rq_item *spare; /* the writer's batch; swapped with queue when it takes one */
	unsigned q_len;
	/* store: db (writer thread), rdb (API threads, under rdb_lock) */
	sqlite3 *db, *rdb;
	pthread_mutex_t rdb_lock;
	__u64 rdb_deadline_ns; /* lt_requests_rdb_bounded's budget (CLOCK_MONOTONIC), under rdb_lock */
	sqlite3_stmt *ins;
	__s64 keep; /* rows */
	__u64 max_age_ns; /* records older than this (by arrival) are deleted */
	/*
	 * The byte bound of requests.db (lt_rq_trim_bytes): its size, page_count
	 * * page_size, stays under max_bytes, or under the size at which the disk
	 * filled (full_bytes, 0 = never) when that is smaller. The writer owns
	 * both; db_bytes is its last reading, for /metrics.
	 */
	__u64 max_bytes; /* bytes */
	__u64 full_bytes; /* bytes; one writer, relaxed atomics */
	__u64 db_bytes; /* bytes; one writer, relaxed atomics */
	__u64 bytes_trimmed; /* rows deleted for the byte bound; one writer */
	int vacuum_ok; /* auto_vacuum is INCREMENTAL: free pages can leave the file */
	/*
	 * Consume decisions stored as rows, per second at most (0 = all): a
	 * leaky bucket of the writer's own (capacity: 100 ms of them). A row
	 * costs the writer about 6 us of CPU (insert and later delete, with the
	 * indexes), as much as the decision itself; a flood of consume calls
	 * would otherwise take a core from the API's threads and fill the queue,
	 * which drops records and their rollups. Past the rate a decision still
	 * counts in the rollups and events; only its row is left out, counted
	 * in lt_reqlog_store_dropped_total{reason="consume_rate"}.
	 */
	__u32 consume_rate; /* rows/s */
	__u64 consume_level_ns,
		consume_at_ns; /* writer only: bucket level (ns of rows), last update */
	char store_path[512];
	__u64 wal_pages; /* pages of -wal that call for a checkpoint */
	/* usage events (issue #10); NULL = off */
	struct lt_outbox *ob;
	const __u64 *policy; /* lt_config's generation */
	sqlite3_stmt *pos; /* the ring position committed, in the batch's transaction */
	/* usage rollups (the writer's) */
	struct lt_rollup *ru;
	struct lt_analytics_config an;
};

static __u64 lt_rq_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static void lt_rq_add(__u64 *p, __u64 v)
{
	/* one writer: a relaxed load and store, never torn for the readers */
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

/* A record's strings are whatever a process wrote: NUL-terminate each field. */
static void lt_rq_terminate(struct lt_reqlog_rec *r)
{
#define T(f) r->f[sizeof(r->f) - 1] = '\0'
	T(method);
	T(request_id);
	T(route);
	T(user);
	T(org);
	T(tier);
	T(key_id);
	T(provider);
	T(model_requested);
	T(model_served);
	T(limit);
#undef T
}

/* A Prometheus label value that needs no escaping: [A-Za-z0-9._-], else '_'. */
static void lt_rq_label(char *dst, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i]; i++) {
		char c = src[i];

		dst[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					 (c >= '0' && c <= '9') || c == '.' || c == '-' ||
					 c == '_' ?
				 c :
				 '_';
	}
	dst[i] = '\0';
}

static struct lt_rq_series *lt_rq_series_for(struct lt_requests *q, const char *provider)
{
	char name[LT_REQLOG_SHORT_LEN];
	unsigned i, n = q->nseries; /* only this thread changes it */

	lt_rq_label(name, provider, sizeof(name));
	for (i = 0; i < n; i++)
		if (!strcmp(q->series[i].provider, name))
			return &q->series[i];
	if (n == LT_RQ_PROVIDERS)
		return &q->series[LT_RQ_PROVIDERS];
	memcpy(q->series[n].provider, name, sizeof(name));
	__atomic_store_n(&q->nseries, n + 1, __ATOMIC_RELEASE); /* the name first */
	return &q->series[n];
}

static void lt_rq_tok(struct lt_rq_hist_tok *h, __u64 v)
{
	unsigned i;

	for (i = 0; i < LT_TOK_N && v > lt_tok_le[i]; i++)
		;
	lt_rq_add(&h->b[i], 1);
	lt_rq_add(&h->sum, v);
	lt_rq_add(&h->count, 1);
}

/* Bucket of ns against boundaries in seconds: le means ns <= le * 1e9. */
static unsigned lt_rq_bucket_ns(__u64 ns, const double *le, unsigned n)
{
	unsigned i;

	for (i = 0; i < n && (double)ns > le[i] * 1e9; i++)
		;
	return i;
}

/*
 * GenAI metrics describe model calls: records with a provider. Tokens only
 * when the usage is known (F_USAGE): the convention forbids guessing.
 */
static void lt_rq_observe(struct lt_requests *q, const struct lt_reqlog_rec *r)
{
	struct lt_rq_series *s;

	if (!r->provider[0])
		return;
	s = lt_rq_series_for(q, r->provider);
	if (r->flags & LT_REQLOG_F_USAGE) {
		lt_rq_tok(&s->tok[0], r->tokens_in);
		lt_rq_tok(&s->tok[1], r->tokens_out);
	}
	lt_rq_add(&s->dur.b[lt_rq_bucket_ns(r->latency_ns, lt_dur_le, LT_DUR_N)], 1);
	lt_rq_add(&s->dur.sum_ns, r->latency_ns);
	lt_rq_add(&s->dur.count, 1);
	if (r->flags & LT_REQLOG_F_TTFT) {
		lt_rq_add(&s->ttft.b[lt_rq_bucket_ns(r->ttft_ns, lt_ttft_le, LT_TTFT_N)], 1);
		lt_rq_add(&s->ttft.sum_ns, r->ttft_ns);
		lt_rq_add(&s->ttft.count, 1);
	}
}

/* ---- consumer -------------------------------------------------------------------- */

static __u64 lt_rq_policy(const struct lt_requests *q)
{
	return q->policy ? __atomic_load_n(q->policy, __ATOMIC_RELAXED) : 0;
}

/*
 * The consumer and the writer run a little ahead of the API's threads
 * (nice LT_RQ_NICE; needs CAP_SYS_NICE, which attach has as root; without it
 * they stay at 0). Their work per record is fixed, so they cannot take more
 * than the records cost; but at a saturated CPU a fair share of it was less
 * than that, the ring lapped and events were lost. What the priority moves is
 * when the work is done, not how much of it there is.
 */
#define LT_RQ_NICE (-5)

static void lt_rq_nice(void)
{
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), LT_RQ_NICE))
		log_debug("request log: thread priority stays (%s)", strerror(errno));
}

/* An item for the writer at the end of the queue, under q_lock (q_len < LT_RQ_QUEUE). */
static struct lt_rq_item *lt_rq_slot(struct lt_requests *q, enum lt_ev_origin origin)
{
	struct lt_rq_item *it = &q->queue[q->q_len++];

	it->origin = origin;
	it->policy = lt_rq_policy(q);
	return it;
}

/* A sampled kernel decision (the daemon's thread). */
static void lt_rq_enqueue_kernel(struct lt_requests *q, const struct lt_event *k, __u64 k_real_ns)
{
	struct lt_rq_item *it;

	if (!q->db)
		return;
	pthread_mutex_lock(&q->q_lock);
	if (q->q_len < LT_RQ_QUEUE) {
		it = lt_rq_slot(q, LT_EV_KERNEL);
		it->k = *k;
		it->k_real_ns = k_real_ns;
	} else {
		lt_outbox_dropped(q->ob, "queue_full", 1);
	}
	pthread_mutex_unlock(&q->q_lock);
}

/*
 * Up to LT_RQ_CHUNK records from the ring straight into the queue, under
 * q_lock: one lock and one copy per record (the ring's), and the writer's
 * swap waits at most a chunk (tens of us). With events on, a full queue
 * leaves the records in the ring, which keeps them; with events off, what
 * does not fit is read and counted (the ring must not lap the histograms).
 * Returns the records read.
 */
static unsigned lt_rq_take(struct lt_requests *q)
{
	struct lt_reqlog_rec *r, spill;
	__u64 now = lt_rq_now(); /* once a chunk: a stale wait is 250 ms, a chunk tens of us */
	unsigned n = 0;
	int full;

	pthread_mutex_lock(&q->q_lock);
	for (; n < LT_RQ_CHUNK; n++) {
		full = !q->db || q->q_len >= LT_RQ_QUEUE;
		if (full && q->ob && q->db)
			break;
		r = full ? &spill : &q->queue[q->q_len].r;
		if (lt_reqlog_next(&q->rl, r, now) != 1)
			break;
		lt_rq_terminate(r);
		if (!(r->flags & LT_REQLOG_F_DECISION))
			lt_rq_observe(q, r);
		if (!full) {
			lt_rq_slot(q, r->flags & LT_REQLOG_F_DECISION ? LT_EV_DECISION :
									LT_EV_GATEWAY);
		} else if (!q->db) {
			if (!(r->flags & LT_REQLOG_F_DECISION))
				lt_rq_add(&q->store_dropped[LT_RQ_NO_STORE], 1);
		} else { /* a decision too: its rollup is in the same store */
			__atomic_fetch_add(&q->store_dropped[LT_RQ_QUEUE_FULL], 1,
					   __ATOMIC_RELAXED);
		}
	}
	pthread_mutex_unlock(&q->q_lock);
	return n;
}

static void *lt_rq_consume(void *arg)
{
	struct lt_requests *q = arg;
	struct timespec nap = { 0, LT_RQ_POLL_NS };
	unsigned n, got;

	pthread_setname_np(pthread_self(), "lt-rq-consume"); /* per-thread CPU in bench_kafka */
	lt_rq_nice();
	while (!__atomic_load_n(&q->stop, __ATOMIC_RELAXED)) {
		for (n = 0; n < LT_RQ_QUEUE && (got = lt_rq_take(q)); n += got)
			;
		/*
		 * The writer takes what is there; it also wakes on its own. A signal
		 * without a waiter is no system call (glibc), so this costs a futex
		 * wake only when the writer sleeps: at most once per poll.
		 */
		if (n)
			pthread_cond_signal(&q->q_cond);
		if (n < LT_RQ_QUEUE)
			nanosleep(&nap, NULL);
	}
	return NULL;
}

/* ---- store ---------------------------------------------------------------------------- */

/*
 * auto_vacuum=INCREMENTAL must come before the first table: it lets the byte
 * bound give free pages back to the file system (PRAGMA incremental_vacuum).
 * A database made without it is converted once at open (lt_rq_vacuum_mode).
 */
static const char lt_rq_schema[] =
	"PRAGMA auto_vacuum=INCREMENTAL;"
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS requests(id INTEGER PRIMARY KEY,"
	"  start_ns INTEGER NOT NULL, request_id TEXT NOT NULL, method TEXT NOT NULL,"
	"  route TEXT NOT NULL, client_addr TEXT NOT NULL, client_port INTEGER NOT NULL,"
	"  user_id TEXT NOT NULL, org_id TEXT NOT NULL, tier TEXT NOT NULL, key_id TEXT NOT NULL,"
	"  provider TEXT NOT NULL, model_requested TEXT NOT NULL, model_served TEXT NOT NULL,"
	"  status INTEGER NOT NULL, outcome INTEGER NOT NULL, flags INTEGER NOT NULL,"
	"  tokens_reserved INTEGER NOT NULL, tokens_in INTEGER NOT NULL,"
	"  tokens_out INTEGER NOT NULL, latency_ns INTEGER NOT NULL, ttft_ns INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS requests_start ON requests(start_ns);"
	"CREATE TABLE IF NOT EXISTS rq_meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);";

/*
 * After the table (and lt_rq_migrate): the request log's indexes. Pages are
 * read newest first by (start_ns, id) (agent/logs.c): requests_start, whose
 * entries end with the rowid, serves the unfiltered keyset; a tenant filter
 * (and a non-admin's forced one) is selective, so it has its own (tenant,
 * start_ns) index and a deep page seeks instead of scanning. The other
 * filters (method, status, provider, route, outcome) match a good share of
 * the rows and are checked while walking requests_start: every index is
 * paid by every record the writer stores, consume decisions included.
 */
static const char lt_rq_indexes[] =
	"CREATE INDEX IF NOT EXISTS requests_user ON requests(user_id, start_ns);"
	"CREATE INDEX IF NOT EXISTS requests_org ON requests(org_id, start_ns);"
	"CREATE INDEX IF NOT EXISTS requests_key ON requests(key_id, start_ns);";

/* Columns added after the first layout: a requests.db made before them gets them here. */
static int lt_rq_migrate(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT limit_name FROM requests LIMIT 0", -1, &st, NULL);

	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		return SQLITE_OK;
	return sqlite3_exec(db,
			    "ALTER TABLE requests ADD COLUMN limit_name TEXT NOT NULL DEFAULT ''",
			    NULL, NULL, NULL);
}

int lt_requests_schema(sqlite3 *db, char **msg)
{
	int rc = sqlite3_exec(db, lt_rq_schema, NULL, NULL, msg);

	if (rc == SQLITE_OK)
		rc = lt_rq_migrate(db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, lt_rq_indexes, NULL, NULL, msg);
	return rc;
}

static const char lt_rq_insert[] =
	"INSERT INTO requests(start_ns, request_id, method, route, client_addr, client_port,"
	" user_id, org_id, tier, key_id, provider, model_requested, model_served, status,"
	" outcome, flags, tokens_reserved, tokens_in, tokens_out, latency_ns, ttft_ns,"
	" limit_name) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

static __s64 lt_rq_i64(__u64 v)
{
	return v > (__u64)INT64_MAX ? INT64_MAX : (__s64)v;
}

static int lt_rq_bind(sqlite3_stmt *st, const struct lt_reqlog_rec *r)
{
	static const __u8 zero[16];
	char addr[64] = "";
	int i = 1;

	if (memcmp(r->client_addr, zero, sizeof(zero)))
		lt_addr_format(r->client_addr, addr, sizeof(addr));
	sqlite3_reset(st);
	sqlite3_bind_int64(st, i++, lt_rq_i64(r->start_ns));
#define S(f) sqlite3_bind_text(st, i++, (f), -1, SQLITE_TRANSIENT)
	S(r->request_id);
	S(r->method);
	S(r->route);
	S(addr);
	sqlite3_bind_int(st, i++, r->client_port);
	S(r->user);
	S(r->org);
	S(r->tier);
	S(r->key_id);
	S(r->provider);
	S(r->model_requested);
	S(r->model_served);
#undef S
	sqlite3_bind_int(st, i++, r->status);
	sqlite3_bind_int(st, i++, r->outcome);
	sqlite3_bind_int(st, i++, r->flags);
	sqlite3_bind_int64(st, i++, lt_rq_i64(r->tokens_reserved));
	sqlite3_bind_int64(st, i++, lt_rq_i64(r->tokens_in));
	sqlite3_bind_int64(st, i++, lt_rq_i64(r->tokens_out));
	sqlite3_bind_int64(st, i++, lt_rq_i64(r->latency_ns));
	sqlite3_bind_int64(st, i++, lt_rq_i64(r->ttft_ns));
	sqlite3_bind_text(st, i++, r->limit, -1, SQLITE_TRANSIENT);
	return sqlite3_step(st);
}

/* The event of one item into the outbox (inside the batch's transaction). */
static int lt_rq_event(struct lt_requests *q, const struct lt_rq_item *it)
{
	char data[4096], key[LT_USAGE_KEY_LEN];
	struct lt_outbox_row row = { .type = LT_USAGE_TYPE };
	int n = lt_usage_event(it, data, sizeof(data), key, sizeof(key), &row.time_ns);

	if (n < 0)
		return SQLITE_TOOBIG;
	row.key = key;
	row.subject = key;
	row.data = data;
	row.len = (size_t)n;
	return lt_outbox_add(q->ob, q->db, &row) ? SQLITE_IOERR : SQLITE_OK;
}

/*
 * 1 if a consume decision may be a row at now (consume_rate), else counts it.
 * Writer only; now is read once per batch, not per record (a batch is written
 * in well under a millisecond).
 */
static int lt_rq_consume_row(struct lt_requests *q, __u64 now)
{
	__u64 per = q->consume_rate ? LT_NS_PER_SEC / q->consume_rate : 0;
	__u64 leaked = now - q->consume_at_ns;

	if (!q->consume_rate)
		return 1;
	/*
	 * GCRA-like: the level drains in real time, a row adds 1/rate s, and
	 * 100 ms of them fit (at least one): a burst of a whole second would be
	 * one long batch while the queue behind it fills.
	 */
	q->consume_level_ns = q->consume_level_ns > leaked ? q->consume_level_ns - leaked : 0;
	q->consume_at_ns = now;
	if (q->consume_level_ns + per > (per > LT_NS_PER_SEC / 10 ? per : LT_NS_PER_SEC / 10)) {
		lt_rq_add(&q->store_dropped[LT_RQ_CONSUME_RATE], 1);
		return 0;
	}
	q->consume_level_ns += per;
	return 1;
}

/* Rows older than max_age_ns go (by arrival: start_ns, CLOCK_REALTIME). */
static int lt_rq_trim_age(struct lt_requests *q)
{
	struct timespec ts;
	char sql[96];
	__u64 now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
	snprintf(sql, sizeof(sql), "DELETE FROM requests WHERE start_ns < %lld",
		 (long long)lt_rq_i64(now > q->max_age_ns ? now - q->max_age_ns : 0));
	return sqlite3_exec(q->db, sql, NULL, NULL, NULL);
}

static __s64 lt_rq_pragma(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	__s64 v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The database's size and the part of it in use (not on the freelist), in bytes. */
static int lt_rq_size(sqlite3 *db, __u64 *file, __u64 *used)
{
	__s64 psz = lt_rq_pragma(db, "PRAGMA page_size"),
	      pc = lt_rq_pragma(db, "PRAGMA page_count"),
	      fl = lt_rq_pragma(db, "PRAGMA freelist_count");

	if (psz <= 0 || pc < 0 || fl < 0 || fl > pc)
		return -EIO;
	*file = (__u64)pc * (__u64)psz;
	*used = (__u64)(pc - fl) * (__u64)psz;
	return 0;
}

/*
 * The byte bound, inside the writer's transaction, after its rows went in:
 * what the transaction commits is under the bound. In WAL mode the database
 * file only changes at a checkpoint, which copies committed pages and cuts
 * the file to the committed size, so the file never holds more than the
 * largest size a transaction committed (the batch in flight is in the -wal).
 * requests.db also holds the usage rollups and the events outbox (their own
 * retention); only request rows are deleted here, oldest first. Marks, for a
 * bound B: nothing happens until the file passes 15/16 B; then the oldest
 * rows go until what is in use is under 7/8 B (so a trim runs once per B/16
 * of new rows, not on every batch), and free pages past that leave the file
 * (incremental vacuum). Rows to delete are estimated from the file's use per
 * row (an upper bound on a row's share), then measured again.
 * Returns an SQLite code; the rows deleted are counted when the batch commits.
 */
static int lt_rq_trim_bytes(struct lt_requests *q, __u64 *deleted)
{
	__u64 bound = q->max_bytes, file, used, high, low, want;
	__s64 lo_id, hi_id, rows, del, psz;
	char sql[128];
	int rc = SQLITE_OK, i;

	*deleted = 0;
	if (q->full_bytes && q->full_bytes < bound)
		bound = q->full_bytes;
	if (!bound || lt_rq_size(q->db, &file, &used))
		return SQLITE_OK;
	high = bound - bound / 16;
	low = bound - bound / 8;
	if (file <= high)
		return SQLITE_OK;
	lo_id = lt_rq_pragma(q->db, "SELECT min(id) FROM requests");
	hi_id = lt_rq_pragma(q->db, "SELECT max(id) FROM requests");
	rows = lo_id > 0 && hi_id >= lo_id ? hi_id - lo_id + 1 : 0;
	for (i = 0; i < 16 && used > low && rows > 0; i++) {
		/* the share of rows that is the share of bytes over the low mark, 64 at least */
		want = (__u64)((unsigned __int128)(used - low) * (__u64)rows / used);
		del = want < 64 ? 64 : (__s64)want;
		del = del > rows ? rows : del;
		snprintf(sql, sizeof(sql), "DELETE FROM requests WHERE id < %lld",
			 (long long)(lo_id + del));
		rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return rc;
		*deleted += (__u64)sqlite3_changes(q->db);
		lo_id += del;
		rows -= del;
		if (lt_rq_size(q->db, &file, &used))
			return SQLITE_OK;
	}
	if (used > high && !rows) {
		static __u64 last_ns;

		if (lt_rq_now() - last_ns >= 60 * LT_NS_PER_SEC) {
			last_ns = lt_rq_now();
			log_warn(
				"request log: %s holds %llu bytes of usage rollups and events "
				"and no request row, over %llu of token.request_log_max_bytes%s; "
				"the rollups (analytics.*) and the outbox (kafka.outbox_max_events) "
				"have their own retention",
				q->store_path, (unsigned long long)used, (unsigned long long)bound,
				bound < q->max_bytes ? " (lowered: the disk was full)" : "");
		}
	}
	/* free pages past the low mark (or past what is in use) go back to the file system */
	psz = lt_rq_pragma(q->db, "PRAGMA page_size");
	if (q->vacuum_ok && psz > 0 && file > (used > low ? used : low)) {
		__u64 give = (file - (used > low ? used : low)) / (__u64)psz;

		snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%llu)",
			 (unsigned long long)give);
		if (give)
			rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
	}
	return rc;
}

/*
 * A batch failed with SQLITE_FULL: the file system has no room for the file
 * to grow. From now on (until a restart) the byte bound is the size the file
 * has now, less 1/8, so the next batch first deletes the oldest rows and
 * goes into the pages they leave free: the request log keeps its newest
 * rows instead of refusing every record until someone frees the disk.
 */
static int lt_rq_wal_size(struct lt_requests *q, __u64 bound);

static void lt_rq_disk_full(struct lt_requests *q, int rc)
{
	__u64 file, used;

	if ((rc & 0xff) != SQLITE_FULL || lt_rq_size(q->db, &file, &used))
		return;
	if (q->full_bytes && q->full_bytes <= file)
		return;
	__atomic_store_n(&q->full_bytes, file - file / 8, __ATOMIC_RELAXED);
	lt_rq_wal_size(q, q->full_bytes); /* and a -wal in proportion */
	log_error("request log: %s: the disk is full at %llu bytes (ENOSPC); requests.db is kept "
		  "under %llu bytes from now on (the oldest rows go) until the agent restarts; "
		  "free space, or set token.request_log_max_bytes (now %llu) below the free space",
		  q->store_path, (unsigned long long)file, (unsigned long long)q->full_bytes,
		  (unsigned long long)q->max_bytes);
}

/*
 * One transaction; on any error nothing of the batch stays, and it is
 * counted. With events on, each item's event is in the same transaction as
 * its row, and so is the ring position of the last record.
 */
static int lt_rq_write(struct lt_requests *q, const struct lt_rq_item *b, unsigned n, int final)
{
	static __u64 last_log_ns;
	char sql[128];
	int rc = sqlite3_exec(q->db, "BEGIN", NULL, NULL, NULL);
	unsigned i, rows = 0, events = 0;
	__s64 last = 0, ring_pos = -1;
	__u64 by_bytes = 0, file, used, now = lt_rq_now();
	long trimmed = 0;

	for (i = 0; rc == SQLITE_OK && i < n; i++) {
		if (b[i].origin != LT_EV_KERNEL) {
			ring_pos = (__s64)(b[i].r.seq >> 2) - 1;
			lt_rollup_add(q->ru, &b[i]);
		}
		if (b[i].origin == LT_EV_GATEWAY ||
		    (b[i].origin == LT_EV_DECISION && lt_rq_consume_row(q, now))) {
			rc = lt_rq_bind(q->ins, &b[i].r);
			rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
			/* now: the outbox's inserts in this loop change the last rowid too */
			last = sqlite3_last_insert_rowid(q->db);
			rows++;
		}
		if (rc == SQLITE_OK && q->ob)
			rc = lt_rq_event(q, &b[i]);
	}
	/* the events in packs of many per row (outbox.h), written before the trims */
	if (rc == SQLITE_OK && q->ob && lt_outbox_add_done(q->ob, q->db, &events))
		rc = SQLITE_IOERR;
	if (rc == SQLITE_OK && rows) {
		/* the row cap: ids only grow, so the oldest are those below last - keep */
		snprintf(sql, sizeof(sql), "DELETE FROM requests WHERE id <= %lld",
			 (long long)(last - q->keep));
		rc = last > q->keep ? sqlite3_exec(q->db, sql, NULL, NULL, NULL) : SQLITE_OK;
	}
	if (rc == SQLITE_OK && rows) /* the age cap: an index range, empty most of the time */
		rc = lt_rq_trim_age(q);
	if (rc == SQLITE_OK && q->ob && ring_pos >= 0) {
		sqlite3_reset(q->pos);
		sqlite3_bind_int64(q->pos, 1, ring_pos);
		rc = sqlite3_step(q->pos);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		sqlite3_reset(q->pos);
	}
	if (rc == SQLITE_OK)
		rc = lt_rollup_flush(q->ru, q->db);
	if (rc == SQLITE_OK && events)
		trimmed = lt_outbox_trim(q->ob, q->db, events);
	if (rc == SQLITE_OK) /* the byte bound, last: on all that this transaction commits */
		rc = lt_rq_trim_bytes(q, &by_bytes);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		lt_rq_add(&q->stored, rows);
		lt_rq_add(&q->bytes_trimmed, by_bytes);
		if (!lt_rq_size(q->db, &file, &used))
			__atomic_store_n(&q->db_bytes, file, __ATOMIC_RELAXED);
		lt_outbox_committed(q->ob, events, trimmed);
		return 0;
	}
	if (q->ins)
		sqlite3_reset(q->ins);
	sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	lt_outbox_add_discard(q->ob);
	lt_rollup_discard(q->ru);
	lt_rq_disk_full(q, rc);
	/*
	 * With events on, a batch is not given up: the writer tries it again, the
	 * queue fills, and the consumer leaves the records in the ring. At exit
	 * it stays uncommitted, and the next start reads it again (lt_rq_rewind).
	 */
	if (q->ob) {
		if (lt_rq_now() - last_log_ns >= 10 * LT_NS_PER_SEC) {
			last_log_ns = lt_rq_now();
			log_warn(
				"request log: %u records and their events not stored yet: %s (%s); "
				"trying again",
				n, sqlite3_errstr(rc), q->store_path);
		}
		if (!final)
			return -EAGAIN;
		log_warn("request log: %u records left uncommitted at exit; read again at the "
			 "next start",
			 n);
		return -EIO;
	}
	for (i = 0, rows = 0; i < n; i++)
		rows += b[i].origin != LT_EV_KERNEL;
	__atomic_fetch_add(&q->store_dropped[LT_RQ_STORE_ERROR], rows, __ATOMIC_RELAXED);
	if (lt_rq_now() - last_log_ns >= 10 * LT_NS_PER_SEC) { /* at most one line in 10 s */
		last_log_ns = lt_rq_now();
		log_warn("request log: %u records not stored: %s (%s); counted in "
			 "lt_reqlog_store_dropped_total",
			 n, sqlite3_errstr(rc), q->store_path);
	}
	return -EIO;
}

/* The age cap, and the byte bound (a bound lowered since the last batch). */
static void lt_rq_trim_idle(struct lt_requests *q)
{
	__u64 deleted = 0, file, used, bound;
	char wal[sizeof(q->store_path) + 8];
	struct stat st;
	int rc = sqlite3_exec(q->db, "BEGIN", NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		rc = lt_rq_trim_age(q);
	if (rc == SQLITE_OK)
		rc = lt_rq_trim_bytes(q, &deleted);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		lt_rq_disk_full(q, rc);
		return;
	}
	lt_rq_add(&q->bytes_trimmed, deleted);
	if (!lt_rq_size(q->db, &file, &used))
		__atomic_store_n(&q->db_bytes, file, __ATOMIC_RELAXED);
	/*
	 * The -wal keeps its largest size until a write restarts it after a
	 * complete checkpoint (journal_size_limit applies then); an idle agent
	 * writes nothing, so it is cut here: after a burst, or a full disk, the
	 * space goes back to the file system instead of waiting for traffic.
	 */
	snprintf(wal, sizeof(wal), "%s-wal", q->store_path);
	bound = q->full_bytes && q->full_bytes < q->max_bytes ? q->full_bytes : q->max_bytes;
	if (!stat(wal, &st) && (__u64)st.st_size > bound / 8)
		sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
}

/* *until = CLOCK_REALTIME (what pthread_cond_timedwait measures by) + ns */
static void lt_rq_until(struct timespec *until, __u64 ns)
{
	clock_gettime(CLOCK_REALTIME, until);
	until->tv_sec += (time_t)(ns / LT_NS_PER_SEC);
	until->tv_nsec += (long)(ns % LT_NS_PER_SEC);
	if (until->tv_nsec >= 1000000000L) {
		until->tv_sec++;
		until->tv_nsec -= 1000000000L;
	}
}

static void *lt_rq_writer(void *arg)
{
	struct lt_requests *q = arg;
	struct lt_rq_item *batch = q->spare; /* the writer's array between two swaps */
	struct timespec until;
	__u64 last_compact = 0, last_trim = 0, last_batch = 0;
	unsigned n;
	int stop;

	pthread_setname_np(pthread_self(), "lt-rq-writer");
	lt_rq_nice();
	for (;;) {
		if (lt_rq_now() - last_compact >= 60 * LT_NS_PER_SEC) { /* old minutes into hours */
			struct timespec rt;

			clock_gettime(CLOCK_REALTIME, &rt);
			last_compact = lt_rq_now();
			lt_rollup_compact(q->db, &q->an,
					  (__u64)rt.tv_sec * 1000000000ULL + (__u64)rt.tv_nsec);
		}
		pthread_mutex_lock(&q->q_lock);
		stop = __atomic_load_n(&q->stop, __ATOMIC_RELAXED);
		/* the consumer's signals come every poll: wait out the gap (a stop ends it) */
		while (!stop && lt_rq_now() - last_batch < LT_RQ_BATCH_GAP_NS) {
			lt_rq_until(&until, LT_RQ_BATCH_GAP_NS - (lt_rq_now() - last_batch));
			pthread_cond_timedwait(&q->q_cond, &q->q_lock, &until);
			stop = __atomic_load_n(&q->stop, __ATOMIC_RELAXED);
		}
		if (!q->q_len && !stop) {
			lt_rq_until(&until, 100 * 1000000ULL); /* a batch at least every 100 ms */
			pthread_cond_timedwait(&q->q_cond, &q->q_lock, &until);
		}
		/* everything waiting, by a swap of the arrays: no copy of the items */
		n = q->q_len;
		if (n) {
			q->spare = q->queue;
			q->queue = batch;
			batch = q->spare;
			q->q_len = 0;
		}
		pthread_mutex_unlock(&q->q_lock);
		/*
		 * With no traffic no batch trims: the age cap is applied on its own
		 * once a second, so old rows leave on time on an idle agent too.
		 */
		if (!n && !stop && lt_rq_now() - last_trim >= LT_NS_PER_SEC) {
			last_trim = lt_rq_now();
			lt_rq_trim_idle(q);
		}
		if (n)
			last_trim = last_batch = lt_rq_now();
		while (n && lt_rq_write(q, batch, n, stop) == -EAGAIN) {
			struct timespec nap = { 0, 100 * 1000000L };

			nanosleep(&nap, NULL);
			stop = __atomic_load_n(&q->stop, __ATOMIC_RELAXED);
		}
		if (stop && !n)
			break;
	}
	return NULL;
}

/*
 * Free pages can leave the file only with auto_vacuum=INCREMENTAL, which a
 * database made before the byte bound does not have: it is converted once,
 * by a VACUUM (a copy of the file: it needs as much free space again, and
 * time in proportion to the size). If that fails (a full disk), the bound
 * still holds from the size the file has: deleted rows leave free pages that
 * new rows reuse; the file only does not shrink.
 */
static void lt_rq_vacuum_mode(struct lt_requests *q)
{
	__u64 t0, file = 0, used = 0;
	int rc;

	if (lt_rq_pragma(q->db, "PRAGMA auto_vacuum") == 2) {
		q->vacuum_ok = 1;
		return;
	}
	t0 = lt_rq_now();
	lt_rq_size(q->db, &file, &used);
	rc = sqlite3_exec(q->db, "PRAGMA auto_vacuum=INCREMENTAL; VACUUM", NULL, NULL, NULL);
	q->vacuum_ok = rc == SQLITE_OK && lt_rq_pragma(q->db, "PRAGMA auto_vacuum") == 2;
	if (q->vacuum_ok)
		log_info("request log: %s (%llu bytes) converted to incremental vacuum in %llu ms, "
			 "once, so that token.request_log_max_bytes can shrink it",
			 q->store_path, (unsigned long long)file,
			 (unsigned long long)((lt_rq_now() - t0) / 1000000));
	else
		log_warn("request log: %s cannot be converted to incremental vacuum (%s); "
			 "token.request_log_max_bytes keeps it from growing but cannot shrink it",
			 q->store_path, sqlite3_errmsg(q->db));
}

/*
 * The -wal file next to requests.db: checkpointed every 1/16 of the bound
 * (16..1000 pages; SQLite's default is 1000) and cut back to 1/8 of it
 * after a checkpoint, so it stays small beside a small bound. (A checkpoint
 * waits for readers; the log's queries are bounded in time: logs.c.)
 */
/*
 * With events on, the writer does not checkpoint itself: past the same
 * number of pages its commit asks the outbox's send thread to (on its own
 * connection, PASSIVE), so the fsync of the database file and the copy of
 * the pages are off the path from the ring to a durable event.
 */
static int lt_rq_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct lt_requests *q = arg;

	(void)db;
	(void)name;
	if (pages >= (int)q->wal_pages)
		lt_outbox_checkpoint(q->ob);
	return SQLITE_OK;
}

static int lt_rq_wal_size(struct lt_requests *q, __u64 bound)
{
	__s64 psz = lt_rq_pragma(q->db, "PRAGMA page_size");
	__u64 pages = bound / 16 / (__u64)(psz > 0 ? psz : 4096);
	char sql[128];
	int rc;

	pages = pages < 16 ? 16 : pages > 1000 ? 1000 : pages;
	q->wal_pages = pages;
	snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint=%llu; PRAGMA journal_size_limit=%llu",
		 (unsigned long long)pages, (unsigned long long)(bound / 8));
	rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
	if (q->ob) /* replaces the automatic checkpoint (sqlite3_wal_hook) */
		sqlite3_wal_hook(q->db, lt_rq_wal_hook, q);
	return rc;
}

static int lt_rq_store_open(struct lt_requests *q, const char *state_dir, int events)
{
	char *msg = NULL, oerr[256];
	int rc;

	snprintf(q->store_path, sizeof(q->store_path), "%s/requests.db", state_dir);
	rc = sqlite3_open_v2(q->store_path, &q->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc == SQLITE_OK)
		rc = lt_requests_schema(q->db, &msg);
	if (rc == SQLITE_OK)
		lt_rq_vacuum_mode(q);
	if (rc == SQLITE_OK)
		rc = lt_rq_wal_size(q, q->max_bytes);
	/* a writer never waits long for a lock: a batch it cannot write is dropped */
	if (rc == SQLITE_OK)
		rc = lt_outbox_busy_wait(q->db, 200);
	/*
	 * Pages read through a mapping, not a pread() each: the outbox's sender
	 * changes pages between two batches, which empties this connection's
	 * cache, and every batch read its pages back (a tenth of the writer's CPU).
	 */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(q->db, "PRAGMA mmap_size=268435456", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(q->db, lt_rq_insert, -1, &q->ins, NULL);
	/* an outbox: its commits must survive a power cut, not only a crash */
	if (rc == SQLITE_OK && lt_rollup_schema(q->db, oerr, sizeof(oerr))) {
		msg = sqlite3_mprintf("%s", oerr);
		rc = SQLITE_ERROR;
	}
	if (rc == SQLITE_OK && events)
		rc = sqlite3_exec(q->db, "PRAGMA synchronous=FULL", NULL, NULL, &msg);
	if (rc == SQLITE_OK && events && lt_outbox_schema(q->db, oerr, sizeof(oerr))) {
		msg = sqlite3_mprintf("%s", oerr);
		rc = SQLITE_ERROR;
	}
	if (rc == SQLITE_OK && events)
		rc = sqlite3_prepare_v2(q->db,
					"INSERT OR REPLACE INTO rq_meta VALUES('ring_pos', ?)", -1,
					&q->pos, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_open_v2(q->store_path, &q->rdb,
				     SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(q->rdb, 1000);
	if (rc == SQLITE_OK) {
		__u64 file, used;

		if (!lt_rq_size(q->db, &file, &used))
			__atomic_store_n(&q->db_bytes, file, __ATOMIC_RELAXED);
		return 0;
	}
	log_warn("request log: %s: %s; records are counted but not kept", q->store_path,
		 msg   ? msg :
		 q->db ? sqlite3_errmsg(q->db) :
			 sqlite3_errstr(rc));
	sqlite3_free(msg);
	sqlite3_finalize(q->ins);
	sqlite3_finalize(q->pos);
	sqlite3_close(q->rdb);
	sqlite3_close(q->db);
	q->ins = q->pos = NULL;
	q->rdb = q->db = NULL;
	return -EIO;
}

/*
 * After a kill -9, records the consumer had read but the writer had not
 * committed are still in the pinned ring unless producers lapped them: the
 * tail goes back to the position after the last one committed. Positions
 * the ring no longer holds are counted lapped by lt_reqlog_next, as always.
 */
static void lt_rq_rewind(struct lt_requests *q)
{
	sqlite3_stmt *st = NULL;
	__u64 tail, head, from;
	__s64 pos = -1;

	if (sqlite3_prepare_v2(q->db, "SELECT v FROM rq_meta WHERE k='ring_pos'", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		pos = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (pos < 0 || !q->rl.ctl)
		return;
	from = (__u64)pos + 1;
	tail = __atomic_load_n(&q->rl.ctl->tail, __ATOMIC_RELAXED);
	head = __atomic_load_n(&q->rl.ctl->head, __ATOMIC_RELAXED);
	/* a position from another ring (the pins were made again) is not ours to rewind to */
	if (from >= tail || head - from > q->rl.mask + 1)
		return;
	__atomic_store_n(&q->rl.ctl->tail, from, __ATOMIC_RELEASE);
	log_info("request log: reading again %llu records read but not committed before the "
		 "last stop",
		 (unsigned long long)(tail - from));
}

int lt_requests_start(struct lt_requests **out, const struct lt_maps *m, const char *state_dir,
		      __u32 keep_rows, __u64 max_age_ns, __u64 max_bytes, __u32 consume_rate,
		      const struct lt_kafka_config *k, const struct lt_analytics_config *an,
		      const __u64 *policy, char *err, size_t errlen)
{
	int events = k && k->enabled;
	struct lt_requests *q;
	size_t clen, rlen;
	void *ctl, *recs;
	long slots;
	int ret;

	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->q_lock, NULL);
	pthread_cond_init(&q->q_cond, NULL);
	pthread_mutex_init(&q->rdb_lock, NULL);
	q->keep = keep_rows ? keep_rows : 1;
	q->max_age_ns = max_age_ns;
	q->max_bytes = max_bytes;
	q->consume_rate = consume_rate;
	ctl = lt_map_mmap(m->fd[LT_M_REQLOG_CTL], &clen);
	recs = lt_map_mmap(m->fd[LT_M_REQLOG], &rlen);
	slots = lt_map_entries(m->fd[LT_M_REQLOG]);
	ret = ctl && recs && slots > 0 ? lt_reqlog_attach(&q->rl, ctl, recs, (__u64)slots) : -errno;
	if (ret) {
		snprintf(err, errlen, "cannot map lt_reqlog: %s", strerror(-ret));
		if (ctl)
			munmap(ctl, clen);
		if (recs)
			munmap(recs, rlen);
		lt_requests_stop(q);
		return ret;
	}
	q->rl.ctl_len = clen;
	q->rl.recs_len = rlen;
	q->queue = malloc(sizeof(*q->queue) * LT_RQ_QUEUE);
	q->spare = malloc(sizeof(*q->spare) * LT_RQ_QUEUE);
	q->policy = policy;
	if (an)
		q->an = *an;
	else /* the config's defaults */
		q->an = (struct lt_analytics_config){ 2 * 86400 * LT_NS_PER_SEC,
						      90 * 86400 * LT_NS_PER_SEC,
						      400 * 86400 * LT_NS_PER_SEC };
	q->ru = lt_rollup_new();
	if (q->queue && q->spare)
		lt_rq_store_open(q, state_dir, events);
	if (events && !q->db) {
		snprintf(err, errlen, "kafka.enabled needs the outbox in %s (see the log)",
			 q->store_path);
		lt_requests_stop(q);
		return -EIO;
	}
	if (events) {
		lt_rq_rewind(q);
		ret = lt_outbox_start(&q->ob, q->store_path, k, err, errlen);
		if (ret) {
			lt_requests_stop(q);
			return ret;
		}
		lt_rq_wal_size(q, q->max_bytes); /* checkpoints by the outbox's thread */
	}
	memcpy(q->series[LT_RQ_PROVIDERS].provider, "_OTHER", 7);
	ret = pthread_create(&q->consumer, NULL, lt_rq_consume, q);
	q->consumer_on = !ret;
	if (!ret && q->db) {
		ret = pthread_create(&q->writer, NULL, lt_rq_writer, q);
		q->writer_on = !ret;
	}
	if (ret) {
		snprintf(err, errlen, "request log: cannot start a thread: %s", strerror(ret));
		lt_requests_stop(q);
		return -ret;
	}
	log_info("request log: consuming lt_reqlog (%ld slots, %llu behind) into %s", slots,
		 (unsigned long long)lt_reqlog_backlog(&q->rl),
		 q->db ? q->store_path : "metrics only");
	*out = q;
	return 0;
}

void lt_requests_stop(struct lt_requests *q)
{
	if (!q)
		return;
	__atomic_store_n(&q->stop, 1, __ATOMIC_RELAXED);
	if (q->consumer_on)
		pthread_join(q->consumer, NULL);
	pthread_mutex_lock(&q->q_lock);
	pthread_cond_signal(&q->q_cond);
	pthread_mutex_unlock(&q->q_lock);
	if (q->writer_on)
		pthread_join(q->writer, NULL);
	lt_outbox_stop(q->ob); /* after the writer: its last batch's events get a chance */
	q->ob = NULL;
	lt_rollup_free(q->ru);
	sqlite3_finalize(q->pos);
	sqlite3_finalize(q->ins);
	sqlite3_close(q->rdb);
	sqlite3_close(q->db);
	lt_reqlog_close(&q->rl);
	free(q->queue);
	free(q->spare);
	pthread_mutex_destroy(&q->q_lock);
	pthread_cond_destroy(&q->q_cond);
	pthread_mutex_destroy(&q->rdb_lock);
	free(q);
}

/* ---- /metrics ------------------------------------------------------------------------ */

#define LD(p) ((unsigned long long)__atomic_load_n((p), __ATOMIC_RELAXED))

static void lt_rq_write_tok(struct lt_mbuf *b, const char *prov, const char *type,
			    const struct lt_rq_hist_tok *h)
{
	unsigned long long cum = 0;
	unsigned i;

	for (i = 0; i <= LT_TOK_N; i++) {
		cum += LD(&h->b[i]);
		if (i < LT_TOK_N)
			lt_mbuf_printf(
				b,
				"gen_ai_client_token_usage_bucket{gen_ai_provider_name=\"%s\","
				"gen_ai_token_type=\"%s\",le=\"%llu\"} %llu\n",
				prov, type, (unsigned long long)lt_tok_le[i], cum);
		else
			lt_mbuf_printf(
				b,
				"gen_ai_client_token_usage_bucket{gen_ai_provider_name=\"%s\","
				"gen_ai_token_type=\"%s\",le=\"+Inf\"} %llu\n",
				prov, type, cum);
	}
	lt_mbuf_printf(b,
		       "gen_ai_client_token_usage_sum{gen_ai_provider_name=\"%s\","
		       "gen_ai_token_type=\"%s\"} %llu\n",
		       prov, type, LD(&h->sum));
	lt_mbuf_printf(b,
		       "gen_ai_client_token_usage_count{gen_ai_provider_name=\"%s\","
		       "gen_ai_token_type=\"%s\"} %llu\n",
		       prov, type, LD(&h->count));
}

static void lt_rq_write_sec(struct lt_mbuf *b, const char *name, const char *prov, const __u64 *bk,
			    const double *le, unsigned n, const __u64 *sum_ns, const __u64 *count)
{
	unsigned long long cum = 0;
	unsigned i;

	for (i = 0; i <= n; i++) {
		cum += LD(&bk[i]);
		if (i < n)
			lt_mbuf_printf(b, "%s_bucket{gen_ai_provider_name=\"%s\",le=\"%g\"} %llu\n",
				       name, prov, le[i], cum);
		else
			lt_mbuf_printf(b,
				       "%s_bucket{gen_ai_provider_name=\"%s\",le=\"+Inf\"} %llu\n",
				       name, prov, cum);
	}
	lt_mbuf_printf(b, "%s_sum{gen_ai_provider_name=\"%s\"} %.9f\n", name, prov,
		       (double)LD(sum_ns) / 1e9);
	lt_mbuf_printf(b, "%s_count{gen_ai_provider_name=\"%s\"} %llu\n", name, prov, LD(count));
}

void lt_requests_metrics(struct lt_requests *q, struct lt_mbuf *b)
{
	static const char *const drop_reason[] = { "queue_full", "store_error", "no_store",
						   "consume_rate" };
	unsigned n, i, j;
	const struct lt_rq_series *s;
	const struct lt_reqlog_ctl *c;
	unsigned long long full;

	if (!q)
		return;
	c = q->rl.ctl;
	n = __atomic_load_n(&q->nseries, __ATOMIC_ACQUIRE);
	lt_mbuf_printf(b, "# HELP gen_ai_client_token_usage Input and output tokens used per "
			  "request (OpenTelemetry GenAI; provider-reported usage only).\n"
			  "# TYPE gen_ai_client_token_usage histogram\n");
	for (i = 0; i <= LT_RQ_PROVIDERS; i++) {
		if (i >= n && i < LT_RQ_PROVIDERS)
			continue;
		s = &q->series[i];
		if (i == LT_RQ_PROVIDERS && !LD(&s->dur.count))
			continue;
		for (j = 0; j < 2; j++)
			if (LD(&s->tok[j].count))
				lt_rq_write_tok(b, s->provider, j ? "output" : "input", &s->tok[j]);
	}
	lt_mbuf_printf(b, "# HELP gen_ai_server_request_duration Seconds from a request's arrival "
			  "at the gateway to its last byte (OpenTelemetry GenAI).\n"
			  "# TYPE gen_ai_server_request_duration histogram\n");
	for (i = 0; i <= LT_RQ_PROVIDERS; i++) {
		if ((i >= n && i < LT_RQ_PROVIDERS) || !LD(&q->series[i].dur.count))
			continue;
		s = &q->series[i];
		lt_rq_write_sec(b, "gen_ai_server_request_duration", s->provider, s->dur.b,
				lt_dur_le, LT_DUR_N, &s->dur.sum_ns, &s->dur.count);
	}
	lt_mbuf_printf(b, "# HELP gen_ai_server_time_to_first_token Seconds from a request's "
			  "arrival to the first response byte (OpenTelemetry GenAI).\n"
			  "# TYPE gen_ai_server_time_to_first_token histogram\n");
	for (i = 0; i <= LT_RQ_PROVIDERS; i++) {
		if ((i >= n && i < LT_RQ_PROVIDERS) || !LD(&q->series[i].ttft.count))
			continue;
		s = &q->series[i];
		lt_rq_write_sec(b, "gen_ai_server_time_to_first_token", s->provider, s->ttft.b,
				lt_ttft_le, LT_TTFT_N, &s->ttft.sum_ns, &s->ttft.count);
	}
	lt_mbuf_printf(b,
		       "# HELP lt_reqlog_consumed_total Usage records the agent read from "
		       "lt_reqlog.\n# TYPE lt_reqlog_consumed_total counter\n"
		       "lt_reqlog_consumed_total %llu\n"
		       "# HELP lt_reqlog_dropped_total Usage records lost before the agent read "
		       "them: overwritten (lapped), never written in time (unpublished), or their "
		       "producer died mid-write.\n# TYPE lt_reqlog_dropped_total counter\n"
		       "lt_reqlog_dropped_total{reason=\"lapped\"} %llu\n"
		       "lt_reqlog_dropped_total{reason=\"unpublished\"} %llu\n"
		       "lt_reqlog_dropped_total{reason=\"producer_died\"} %llu\n"
		       "# HELP lt_reqlog_producer_gave_up_total Records producers could not place "
		       "(slot held by another writer); also in lt_reqlog_dropped_total.\n"
		       "# TYPE lt_reqlog_producer_gave_up_total counter\n"
		       "lt_reqlog_producer_gave_up_total %llu\n"
		       "# HELP lt_reqlog_backlog Records written and not read yet.\n"
		       "# TYPE lt_reqlog_backlog gauge\nlt_reqlog_backlog %llu\n"
		       "# HELP lt_reqlog_stored_total Records kept in the request log.\n"
		       "# TYPE lt_reqlog_stored_total counter\nlt_reqlog_stored_total %llu\n"
		       "# HELP lt_reqlog_store_dropped_total Records read but not kept in the "
		       "request log (metrics have them).\n"
		       "# TYPE lt_reqlog_store_dropped_total counter\n",
		       LD(&c->consumed), LD(&c->dropped_lapped), LD(&c->dropped_unpublished),
		       LD(&c->dropped_died), LD(&c->gave_up),
		       (unsigned long long)lt_reqlog_backlog(&q->rl), LD(&q->stored));
	for (i = 0; i < LT_RQ__DROP; i++)
		lt_mbuf_printf(b, "lt_reqlog_store_dropped_total{reason=\"%s\"} %llu\n",
			       drop_reason[i], LD(&q->store_dropped[i]));
	full = LD(&q->full_bytes);
	lt_mbuf_printf(b,
		       "# HELP lt_reqlog_db_bytes Size of requests.db (page_count * page_size) at "
		       "the last write.\n# TYPE lt_reqlog_db_bytes gauge\nlt_reqlog_db_bytes %llu\n"
		       "# HELP lt_reqlog_db_max_bytes The bound on requests.db in force: "
		       "token.request_log_max_bytes, or less after the disk was full.\n"
		       "# TYPE lt_reqlog_db_max_bytes gauge\nlt_reqlog_db_max_bytes %llu\n"
		       "# HELP lt_reqlog_size_deleted_total Request-log rows deleted, oldest "
		       "first, to keep requests.db under its bound.\n"
		       "# TYPE lt_reqlog_size_deleted_total counter\n"
		       "lt_reqlog_size_deleted_total %llu\n",
		       LD(&q->db_bytes),
		       full && full < q->max_bytes ? full : (unsigned long long)q->max_bytes,
		       LD(&q->bytes_trimmed));
	lt_outbox_metrics(q->ob, b);
}

/* ---- GET /api/v1/admin/requests ---------------------------------------------------- */

static const char *const lt_outcomes[LT_REQ__MAX] = {
	[LT_REQ_COMPLETED] = "completed",
	[LT_REQ_CLIENT_GONE] = "client_gone",
	[LT_REQ_UPSTREAM_FAILED] = "upstream_failed",
	[LT_REQ_TIMED_OUT] = "timed_out",
	[LT_REQ_REJECTED] = "rejected",
	[LT_REQ_CUT] = "cut",
};

static json_t *lt_rq_str(const unsigned char *s)
{
	char buf[4 * LT_REQLOG_NAME_LEN];

	lt_utf8_sanitize(s ? (const char *)s : "", buf, sizeof(buf));
	return json_string(buf);
}

static json_t *lt_rq_row(sqlite3_stmt *st)
{
	__s64 start = sqlite3_column_int64(st, 1), lat = sqlite3_column_int64(st, 20),
	      ttft = sqlite3_column_int64(st, 21);
	int flags = sqlite3_column_int(st, 16), outcome = sqlite3_column_int(st, 15);
	char when[48];
	time_t sec = (time_t)(start / 1000000000LL);
	struct tm tm;
	json_t *o;

	gmtime_r(&sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(start % 1000000000LL / 1000000));
	o = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:i}", "id",
		      (json_int_t)sqlite3_column_int64(st, 0), "time", when, "requestId",
		      lt_rq_str(sqlite3_column_text(st, 2)), "method",
		      lt_rq_str(sqlite3_column_text(st, 3)), "route",
		      lt_rq_str(sqlite3_column_text(st, 4)), "clientAddress",
		      lt_rq_str(sqlite3_column_text(st, 5)), "clientPort",
		      sqlite3_column_int(st, 6));
	if (!o)
		return NULL;
	json_object_set_new(o, "userId", lt_rq_str(sqlite3_column_text(st, 7)));
	json_object_set_new(o, "orgId", lt_rq_str(sqlite3_column_text(st, 8)));
	json_object_set_new(o, "tier", lt_rq_str(sqlite3_column_text(st, 9)));
	json_object_set_new(o, "keyId", lt_rq_str(sqlite3_column_text(st, 10)));
	json_object_set_new(o, "provider", lt_rq_str(sqlite3_column_text(st, 11)));
	json_object_set_new(o, "requestedModel", lt_rq_str(sqlite3_column_text(st, 12)));
	json_object_set_new(o, "servedModel", lt_rq_str(sqlite3_column_text(st, 13)));
	json_object_set_new(o, "status", json_integer(sqlite3_column_int(st, 14)));
	json_object_set_new(o, "outcome",
			    json_string(outcome >= 0 && outcome < LT_REQ__MAX ?
						lt_outcomes[outcome] :
						"unknown"));
	json_object_set_new(o, "stream", json_boolean(flags & LT_REQLOG_F_STREAM));
	json_object_set_new(o, "tokensReserved",
			    json_integer((json_int_t)sqlite3_column_int64(st, 17)));
	json_object_set_new(o, "inputTokens",
			    flags & LT_REQLOG_F_USAGE ?
				    json_integer((json_int_t)sqlite3_column_int64(st, 18)) :
				    json_null());
	json_object_set_new(o, "outputTokens",
			    flags & LT_REQLOG_F_USAGE ?
				    json_integer((json_int_t)sqlite3_column_int64(st, 19)) :
				    json_null());
	json_object_set_new(o, "latencyMs", json_real((double)lat / 1e6));
	json_object_set_new(o, "timeToFirstTokenMs",
			    flags & LT_REQLOG_F_TTFT ? json_real((double)ttft / 1e6) : json_null());
	return o;
}

#define LT_RQ_LIMIT_MAX 1000
_Static_assert(LT_REQLOG_F_DECISION == 8, "the SQL below names F_DECISION as 8");

enum MHD_Result lt_requests_get(struct lt_req *r)
{
	struct lt_requests *q = lt_api_of(r)->requests;
	const char *ls = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
	const char *ss = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "since");
	sqlite3_stmt *st = NULL;
	json_t *list, *row;
	__u64 since = 0;
	long limit = 100;
	char *end;
	int rc;

	if (ls) {
		errno = 0;
		limit = strtol(ls, &end, 10);
		if (errno || end == ls || *end || limit < 1 || limit > LT_RQ_LIMIT_MAX)
			return lt_problem(r, 400, "invalid-field", "Invalid field", "limit",
					  "limit: an integer from 1 to %d", LT_RQ_LIMIT_MAX);
	}
	if (ss && lt_logq_parse_time(ss, &since))
		return lt_problem(r, 400, "invalid-field", "Invalid field", "since",
				  "since: an RFC 3339 UTC time like 2027-01-31T00:00:00Z");
	if (!q || !q->rdb)
		return lt_problem(r, 500, "internal", "Internal error", NULL,
				  "the request log store is not available (see the agent's log)");
	list = json_array();
	pthread_mutex_lock(&q->rdb_lock);
	rc = sqlite3_prepare_v2(q->rdb,
				"SELECT id, start_ns, request_id, method, route, client_addr,"
				" client_port, user_id, org_id, tier, key_id, provider,"
				" model_requested, model_served, status, outcome, flags,"
				" tokens_reserved, tokens_in, tokens_out, latency_ns, ttft_ns"
				" FROM requests WHERE start_ns >= ? AND (flags & 8) = 0"
				" ORDER BY id DESC LIMIT ?", /* gateway records: not F_DECISION */
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, lt_rq_i64(since));
		sqlite3_bind_int64(st, 2, limit);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			row = lt_rq_row(st);
			if (!row || json_array_append_new(list, row)) {
				rc = SQLITE_NOMEM;
				break;
			}
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->rdb_lock);
	if (rc != SQLITE_DONE || !list) {
		json_decref(list);
		return lt_problem(r, 500, "internal", "Internal error", NULL,
				  "reading the request log: %s", sqlite3_errstr(rc));
	}
	return lt_reply_json(r, 200, json_pack("{s:o}", "requests", list));
}

/* ---- usage events: the intake of decisions and kernel samples ------------------------ */

/* A client's X-Request-Id is kept only when it is a plain token ([A-Za-z0-9._:-], 1..63). */
static const char *lt_rq_plain_id(const char *s)
{
	size_t i;

	if (!s || !s[0])
		return NULL;
	for (i = 0; s[i]; i++)
		if (i >= LT_REQLOG_ID_LEN - 1 ||
		    !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == ':' ||
		      s[i] == '-'))
			return NULL;
	return s;
}

void lt_requests_decision(struct lt_requests *q, const struct lt_decision *d)
{
	__u8 addr[16] = { 0 };
	struct lt_reqlog_in in = {
		.method = "POST",
		.route = "/api/v1/tokens/consume",
		.request_id = lt_rq_plain_id(d->request_id),
		.user = d->user,
		.org = d->org,
		.tier = d->tier,
		.key_id = d->key_id,
		.provider = d->provider,
		.limit = d->limit,
		.status = (__u16)d->status,
		.outcome = d->status == 200 ? LT_REQ_COMPLETED : LT_REQ_REJECTED,
		.flags = LT_REQLOG_F_DECISION,
		.tokens_reserved = d->tokens,
		.latency_ns = d->latency_ns,
	};

	if (!q || !q->db)
		return;
	if (d->client && d->client->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)d->client;

		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &a->sin_addr, 4);
		in.client_port = ntohs(a->sin_port);
		in.client_addr = addr;
	} else if (d->client && d->client->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)d->client;

		memcpy(addr, &a->sin6_addr, 16);
		in.client_port = ntohs(a->sin6_port);
		in.client_addr = addr;
	}
	lt_reqlog_put(&q->rl, &in); /* a full ring counts it, never waits */
}

void lt_requests_kernel(struct lt_requests *q, const struct lt_event *e)
{
	struct timespec rt, mono;
	__u64 r, m;

	if (!q || !q->ob)
		return;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	r = (__u64)rt.tv_sec * 1000000000ULL + (__u64)rt.tv_nsec;
	m = (__u64)mono.tv_sec * 1000000000ULL + (__u64)mono.tv_nsec;
	lt_rq_enqueue_kernel(q, e, m > e->ts_ns && r > m - e->ts_ns ? r - (m - e->ts_ns) : r);
}

sqlite3 *lt_requests_rdb(struct lt_requests *q)
{
	if (!q || !q->rdb)
		return NULL;
	pthread_mutex_lock(&q->rdb_lock);
	return q->rdb;
}

static int lt_rq_past_budget(void *arg)
{
	return lt_rq_now() >= *(const __u64 *)arg;
}

sqlite3 *lt_requests_rdb_bounded(struct lt_requests *q, unsigned wait_ms, unsigned budget_ms,
				 int *busy)
{
	struct timespec ts;

	*busy = 0;
	if (!q || !q->rdb)
		return NULL;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	ts.tv_sec += wait_ms / 1000 + ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	if (pthread_mutex_timedlock(&q->rdb_lock, &ts)) {
		*busy = 1;
		return NULL;
	}
	q->rdb_deadline_ns = lt_rq_now() + (__u64)budget_ms * 1000000ULL;
	/* every 1000 VM steps (a few µs): a query past its budget ends with SQLITE_INTERRUPT */
	sqlite3_progress_handler(q->rdb, 1000, lt_rq_past_budget, &q->rdb_deadline_ns);
	return q->rdb;
}

void lt_requests_rdb_done(struct lt_requests *q)
{
	sqlite3_progress_handler(q->rdb, 0, NULL, NULL);
	pthread_mutex_unlock(&q->rdb_lock);
}
