// SPDX-License-Identifier: MIT
/*
 * rollup.c - usage rollups and the analytics API (rollup.h).
 *
 * One table for every resolution: res (seconds: 60, 3600, 86400) and ts (the
 * bucket's start, unix seconds) lead the primary key, so a time range is one
 * index range. Additive columns only (counts, sums and histogram buckets):
 * a compaction or a batch merges into an existing row by addition, so the
 * same minute may be written by many batches, and an hour row may be made
 * from minutes in several passes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "api.h"
#include "log.h"
#include "metrics.h" /* struct lt_mbuf */
#include "requests.h"
#include "rollup.h"
#include "units.h"

/* Latency bucket bounds, ms; the last bucket is +Inf. */
static const __u64 lt_ru_le_ms[LT_RU_LAT_N - 1] = { 1,	 2,    5,    10,   25,	  50,	 100,  250,
						    500, 1000, 2500, 5000, 10000, 30000, 60000 };

#define LT_RU_DIMS 5 /* user, org, key, provider, model */
#define LT_RU_SUMS (7 + LT_RU_LAT_N)

struct lt_ru_row {
	__s64 ts; /* minute start, unix s */
	char dim[LT_RU_DIMS][LT_REQLOG_NAME_LEN];
	/* requests, admitted, rejected, tokens_in, tokens_out, tokens_settled, lat_n, h[] */
	__s64 v[LT_RU_SUMS];
	int used;
};

#define LT_RU_SLOTS 8192 /* 2x a writer transaction (4096): open addressing never fills */

struct lt_rollup {
	struct lt_ru_row *rows;
	/* the slots in use, n of them: a flush or a discard touches these, not all
	 * LT_RU_SLOTS rows (a scan of ~6 MB per batch was most of the writer's time) */
	unsigned *idx;
	unsigned n;
	sqlite3 *db;
	sqlite3_stmt *up;
};

#define LT_RU_COLS                                                                                 \
	"requests, admitted, rejected, tokens_in, tokens_out, tokens_settled, lat_n, h0, h1, h2, " \
	"h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15"
#define LT_RU_KEY "res, ts, user_id, org_id, key_id, provider, model"
#define LT_RU_ADD                                                                               \
	"requests = requests + excluded.requests, admitted = admitted + excluded.admitted,"     \
	" rejected = rejected + excluded.rejected, tokens_in = tokens_in + excluded.tokens_in," \
	" tokens_out = tokens_out + excluded.tokens_out,"                                       \
	" tokens_settled = tokens_settled + excluded.tokens_settled,"                           \
	" lat_n = lat_n + excluded.lat_n, h0 = h0 + excluded.h0, h1 = h1 + excluded.h1,"        \
	" h2 = h2 + excluded.h2, h3 = h3 + excluded.h3, h4 = h4 + excluded.h4,"                 \
	" h5 = h5 + excluded.h5, h6 = h6 + excluded.h6, h7 = h7 + excluded.h7,"                 \
	" h8 = h8 + excluded.h8, h9 = h9 + excluded.h9, h10 = h10 + excluded.h10,"              \
	" h11 = h11 + excluded.h11, h12 = h12 + excluded.h12, h13 = h13 + excluded.h13,"        \
	" h14 = h14 + excluded.h14, h15 = h15 + excluded.h15"
#define LT_RU_SUMCOLS                                                                           \
	"sum(requests), sum(admitted), sum(rejected), sum(tokens_in), sum(tokens_out),"         \
	" sum(tokens_settled), sum(lat_n), sum(h0), sum(h1), sum(h2), sum(h3), sum(h4),"        \
	" sum(h5), sum(h6), sum(h7), sum(h8), sum(h9), sum(h10), sum(h11), sum(h12), sum(h13)," \
	" sum(h14), sum(h15)"

static const char lt_ru_schema[] =
	"CREATE TABLE IF NOT EXISTS rollup(res INTEGER NOT NULL, ts INTEGER NOT NULL,"
	"  user_id TEXT NOT NULL, org_id TEXT NOT NULL, key_id TEXT NOT NULL,"
	"  provider TEXT NOT NULL, model TEXT NOT NULL,"
	"  requests INTEGER NOT NULL, admitted INTEGER NOT NULL, rejected INTEGER NOT NULL,"
	"  tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,"
	"  tokens_settled INTEGER NOT NULL, lat_n INTEGER NOT NULL,"
	"  h0 INTEGER NOT NULL, h1 INTEGER NOT NULL, h2 INTEGER NOT NULL, h3 INTEGER NOT NULL,"
	"  h4 INTEGER NOT NULL, h5 INTEGER NOT NULL, h6 INTEGER NOT NULL, h7 INTEGER NOT NULL,"
	"  h8 INTEGER NOT NULL, h9 INTEGER NOT NULL, h10 INTEGER NOT NULL, h11 INTEGER NOT NULL,"
	"  h12 INTEGER NOT NULL, h13 INTEGER NOT NULL, h14 INTEGER NOT NULL, h15 INTEGER NOT NULL,"
	"  PRIMARY KEY(" LT_RU_KEY ")) WITHOUT ROWID;";

int lt_rollup_schema(sqlite3 *db, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(db, lt_ru_schema, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "rollup schema: %s", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return -EIO;
}

struct lt_rollup *lt_rollup_new(void)
{
	struct lt_rollup *ru = calloc(1, sizeof(*ru));

	if (ru) {
		ru->rows = calloc(LT_RU_SLOTS, sizeof(*ru->rows));
		ru->idx = calloc(LT_RU_SLOTS / 2, sizeof(*ru->idx));
	}
	if (ru && (!ru->rows || !ru->idx)) {
		free(ru->rows);
		free(ru->idx);
		free(ru);
		ru = NULL;
	}
	return ru;
}

void lt_rollup_release(struct lt_rollup *ru)
{
	if (!ru)
		return;
	sqlite3_finalize(ru->up);
	ru->up = NULL;
	ru->db = NULL;
}

void lt_rollup_free(struct lt_rollup *ru)
{
	if (!ru)
		return;
	lt_rollup_release(ru);
	free(ru->rows);
	free(ru->idx);
	free(ru);
}

/* per record: each dimension a word at a time (lt_hash_mem), not a multiply per byte */
static __u64 lt_ru_hash(__s64 ts, char dim[][LT_REQLOG_NAME_LEN])
{
	__u64 h = 1469598103934665603ULL ^ (__u64)ts;
	int i;

	for (i = 0; i < LT_RU_DIMS; i++)
		h = (h ^ lt_hash_mem(dim[i], strlen(dim[i]))) * 1099511628211ULL;
	return h ^ (h >> 29);
}

void lt_rollup_add(struct lt_rollup *ru, const struct lt_rq_item *it)
{
	const struct lt_reqlog_rec *r = &it->r;
	char dim[LT_RU_DIMS][LT_REQLOG_NAME_LEN];
	struct lt_ru_row *row;
	int usage = r->flags & LT_REQLOG_F_USAGE, rejected = r->outcome == LT_REQ_REJECTED;
	__s64 ts = (__s64)(r->start_ns / 1000000000ULL);
	unsigned i, b;
	__u64 h, ms;

	if (!ru || it->origin == LT_EV_KERNEL || ru->n >= LT_RU_SLOTS / 2)
		return;
	ts -= ts % 60;
	/*
	 * Zeroed whole (rows are compared with memcmp), then copied: one record
	 * per consume passes here, and five snprintf("%s") (vfprintf) were the
	 * largest item of the writer thread's profile at 100,000 decisions/s.
	 */
	memset(dim, 0, sizeof(dim));
	lt_scopy(dim[0], sizeof(dim[0]), r->user);
	lt_scopy(dim[1], sizeof(dim[1]), r->org);
	lt_scopy(dim[2], sizeof(dim[2]), r->key_id);
	lt_scopy(dim[3], sizeof(dim[3]), r->provider);
	lt_scopy(dim[4], sizeof(dim[4]), r->model_served[0] ? r->model_served : r->model_requested);
	h = lt_ru_hash(ts, dim);
	for (i = 0;; i++) {
		row = &ru->rows[(h + i) & (LT_RU_SLOTS - 1)];
		if (!row->used) {
			row->used = 1;
			row->ts = ts;
			memcpy(row->dim, dim, sizeof(dim));
			memset(row->v, 0, sizeof(row->v));
			ru->idx[ru->n++] = (unsigned)((h + i) & (LT_RU_SLOTS - 1));
			break;
		}
		if (row->ts == ts && !memcmp(row->dim, dim, sizeof(dim)))
			break;
	}
	row->v[0]++;
	row->v[rejected ? 2 : 1]++;
	if (usage) {
		row->v[3] += (__s64)r->tokens_in;
		row->v[4] += (__s64)r->tokens_out;
	}
	if (!rejected)
		row->v[5] += (__s64)(usage ? r->tokens_in + r->tokens_out : r->tokens_reserved);
	if (it->origin == LT_EV_GATEWAY) { /* a consume decision has no latency of its own */
		ms = r->latency_ns / 1000000ULL;
		for (b = 0; b < LT_RU_LAT_N - 1 && ms > lt_ru_le_ms[b]; b++)
			;
		row->v[6]++;
		row->v[7 + b]++;
	}
}

int lt_rollup_flush(struct lt_rollup *ru, sqlite3 *db)
{
	unsigned i, j;
	int rc = SQLITE_OK;

	if (!ru || !ru->n)
		return SQLITE_OK;
	if (ru->db != db) {
		lt_rollup_release(ru);
		rc = sqlite3_prepare_v2(
			db,
			"INSERT INTO rollup(" LT_RU_KEY ", " LT_RU_COLS ") VALUES(60,"
			" ?,?,?,?,?,?, ?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
			" ON CONFLICT(" LT_RU_KEY ") DO UPDATE SET " LT_RU_ADD,
			-1, &ru->up, NULL);
		if (rc != SQLITE_OK)
			return rc;
		ru->db = db;
	}
	for (i = 0; rc == SQLITE_OK && i < ru->n; i++) {
		struct lt_ru_row *row = &ru->rows[ru->idx[i]];

		sqlite3_reset(ru->up);
		sqlite3_bind_int64(ru->up, 1, row->ts);
		for (j = 0; j < LT_RU_DIMS; j++)
			sqlite3_bind_text(ru->up, 2 + (int)j, row->dim[j], -1, SQLITE_STATIC);
		for (j = 0; j < LT_RU_SUMS; j++)
			sqlite3_bind_int64(ru->up, 2 + LT_RU_DIMS + (int)j, row->v[j]);
		rc = sqlite3_step(ru->up);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_reset(ru->up);
	lt_rollup_discard(ru); /* what failed is rolled back with its batch */
	return rc;
}

void lt_rollup_discard(struct lt_rollup *ru)
{
	unsigned i;

	if (!ru || !ru->n)
		return;
	for (i = 0; i < ru->n; i++)
		ru->rows[ru->idx[i]].used = 0;
	ru->n = 0;
}

/*
 * A row moves on (or out) only once its whole interval is older than the retention, never by
 * its start: a minute-old record in the hour that began 61 minutes ago is still "the last hour",
 * and with hours kept 1h it used to be folded into the day and vanish from an hourly query.
 */
int lt_rollup_compact(sqlite3 *db, const struct lt_analytics_config *r, __u64 now_ns)
{
	static const struct {
		__s64 from, to;
	} step[] = { { 60, 3600 }, { 3600, 86400 } };
	__s64 now = (__s64)(now_ns / 1000000000ULL),
	      keep[2] = { (__s64)(r->minutes_ns / 1000000000ULL),
			  (__s64)(r->hours_ns / 1000000000ULL) };
	char sql[2048];
	unsigned i;
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

	for (i = 0; rc == SQLITE_OK && i < 2; i++) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO rollup(" LT_RU_KEY ", " LT_RU_COLS
			 ") SELECT %lld, ts - ts %% %lld,"
			 " user_id, org_id, key_id, provider, model, " LT_RU_SUMCOLS
			 " FROM rollup WHERE res = %lld AND ts <= %lld GROUP BY 2, 3, 4, 5, 6, 7"
			 " ON CONFLICT(" LT_RU_KEY ") DO UPDATE SET " LT_RU_ADD ";"
			 "DELETE FROM rollup WHERE res = %lld AND ts <= %lld;",
			 (long long)step[i].to, (long long)step[i].to, (long long)step[i].from,
			 (long long)(now - keep[i] - step[i].from), (long long)step[i].from,
			 (long long)(now - keep[i] - step[i].from));
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof(sql), "DELETE FROM rollup WHERE res = 86400 AND ts <= %lld",
			 (long long)(now - (__s64)(r->days_ns / 1000000000ULL) - 86400));
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		log_warn("analytics: compaction: %s (tried again later)", sqlite3_errmsg(db));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rc;
}

/* ---- the API ------------------------------------------------------------------------------ */

/* Linear within the bucket that holds the p-quantile; +Inf reports its lower bound. */
static double lt_ru_quantile(const __s64 *h, __s64 n, double p)
{
	double rank = p * (double)n, cum = 0, lo, hi;
	unsigned b;

	for (b = 0; b < LT_RU_LAT_N; b++) {
		if (h[b] && cum + (double)h[b] >= rank) {
			lo = b ? (double)lt_ru_le_ms[b - 1] : 0;
			if (b == LT_RU_LAT_N - 1)
				return lo;
			hi = (double)lt_ru_le_ms[b];
			return lo + (hi - lo) * (rank - cum) / (double)h[b];
		}
		cum += (double)h[b];
	}
	return 0;
}

static json_t *lt_ru_point(const __s64 *v)
{
	json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "requests", (json_int_t)v[0],
			      "admitted", (json_int_t)v[1], "rejected", (json_int_t)v[2],
			      "inputTokens", (json_int_t)v[3], "outputTokens", (json_int_t)v[4],
			      "tokensSettled", (json_int_t)v[5]);

	if (o)
		json_object_set_new(o, "latencyMs",
				    v[6] ? json_pack("{s:f, s:f, s:f}", "p50",
						     lt_ru_quantile(v + 7, v[6], 0.50), "p95",
						     lt_ru_quantile(v + 7, v[6], 0.95), "p99",
						     lt_ru_quantile(v + 7, v[6], 0.99)) :
					   json_null());
	return o;
}

static void lt_ru_time(__s64 s, char *buf, size_t len)
{
	time_t t = (time_t)s;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "2026-12-02T05:00:00Z" (a fraction is allowed and cut) -> unix s */
static int lt_ru_parse_time(const char *s, __s64 *out)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);

	if (!p)
		return -EINVAL;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if (strcmp(p, "Z"))
		return -EINVAL;
	*out = (__s64)timegm(&tm);
	return *out < 0 ? -EINVAL : 0;
}

static const char *const lt_ru_filters[LT_RU_DIMS][2] = {
	{ "userId", "user_id" },    { "orgId", "org_id" }, { "keyId", "key_id" },
	{ "provider", "provider" }, { "model", "model" },
};

struct lt_ru_query {
	__s64 from, to, step; /* unix s; step in s */
	const char *f[LT_RU_DIMS]; /* NULL = any */
	long limit;
};

#define LT_RU_MAX_POINTS 10000

static const char *lt_ru_arg(struct lt_req *r, const char *k)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, k);
}

/* from, to, step and the filters; 0, or a 400 queued in *res (-1). */
static int lt_ru_parse(struct lt_req *r, struct lt_ru_query *q, int need_step, enum MHD_Result *res)
{
	const char *from = lt_ru_arg(r, "from"), *to = lt_ru_arg(r, "to"),
		   *step = lt_ru_arg(r, "step");
	__u64 ns;
	unsigned i;

	memset(q, 0, sizeof(*q));
	q->to = (__s64)time(NULL) + 1;
	if (to && lt_ru_parse_time(to, &q->to)) {
		*res = lt_problem(r, 400, "invalid-field", "Invalid field", "to",
				  "to: an RFC 3339 UTC time like 2027-01-31T00:00:00Z");
		return -1;
	}
	q->from = q->to - 3600;
	if (from && lt_ru_parse_time(from, &q->from)) {
		*res = lt_problem(r, 400, "invalid-field", "Invalid field", "from",
				  "from: an RFC 3339 UTC time like 2027-01-31T00:00:00Z");
		return -1;
	}
	if (q->from >= q->to) {
		*res = lt_problem(r, 400, "invalid-field", "Invalid field", "from",
				  "from must be before to");
		return -1;
	}
	q->step = 60;
	if (step && (lt_duration_parse(step, &ns) || ns % (60 * LT_NS_PER_SEC) || !ns ||
		     ns > 366 * 86400 * LT_NS_PER_SEC)) {
		*res = lt_problem(r, 400, "invalid-field", "Invalid field", "step",
				  "step: a whole number of minutes like 1m, 15m, 1h or 1d");
		return -1;
	}
	if (step)
		q->step = (__s64)(ns / LT_NS_PER_SEC);
	if (need_step && (q->to - q->from) / q->step > LT_RU_MAX_POINTS) {
		*res = lt_problem(r, 400, "invalid-field", "Invalid field", "step",
				  "at most %d steps from from to to: take a longer step",
				  LT_RU_MAX_POINTS);
		return -1;
	}
	for (i = 0; i < LT_RU_DIMS; i++) {
		q->f[i] = lt_ru_arg(r, lt_ru_filters[i][0]);
		if (q->f[i] && (!q->f[i][0] || strlen(q->f[i]) >= LT_REQLOG_NAME_LEN)) {
			*res = lt_problem(r, 400, "invalid-field", "Invalid field",
					  lt_ru_filters[i][0], "%s: 1 to %d bytes",
					  lt_ru_filters[i][0], LT_REQLOG_NAME_LEN - 1);
			return -1;
		}
	}
	return 0;
}

/* "ts >= ? AND ts < ? AND user_id = ? ..." with its bindings from index *idx. */
static void lt_ru_where(const struct lt_ru_query *q, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "ts >= ?1 AND ts < ?2");
	unsigned i;

	for (i = 0; i < LT_RU_DIMS && n < len; i++)
		if (q->f[i])
			n += (size_t)snprintf(buf + n, len - n, " AND %s = ?%u",
					      lt_ru_filters[i][1], i + 4);
}

static void lt_ru_bind(sqlite3_stmt *st, const struct lt_ru_query *q)
{
	unsigned i;

	sqlite3_bind_int64(st, 1, q->from);
	sqlite3_bind_int64(st, 2, q->to);
	sqlite3_bind_int64(st, 3, q->step);
	for (i = 0; i < LT_RU_DIMS; i++)
		if (q->f[i])
			sqlite3_bind_text(st, (int)i + 4, q->f[i], -1, SQLITE_TRANSIENT);
}

/* RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled. */
static void lt_ru_csv_field(struct lt_mbuf *b, const unsigned char *s)
{
	const char *v = s ? (const char *)s : "";

	if (!strpbrk(v, ",\"\r\n")) {
		lt_mbuf_printf(b, ",%s", v);
		return;
	}
	lt_mbuf_printf(b, ",\"");
	for (; *v; v++)
		lt_mbuf_printf(b, *v == '"' ? "\"\"" : "%c", *v);
	lt_mbuf_printf(b, "\"");
}

enum MHD_Result lt_analytics_usage(struct lt_req *r, int csv)
{
	struct lt_requests *rq = lt_api_of(r)->requests;
	char where[256], sql[1024], when[32];
	struct lt_mbuf b = { 0 };
	struct lt_ru_query q;
	enum MHD_Result res;
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	json_t *points = NULL, *p;
	__s64 v[LT_RU_SUMS], tot[LT_RU_SUMS] = { 0 };
	int rc, i;

	if (lt_ru_parse(r, &q, 1, &res))
		return res;
	db = lt_requests_rdb(rq);
	if (!db)
		return lt_problem(r, 500, "internal", "Internal error", NULL,
				  "the analytics store is not available (see the agent's log)");
	lt_ru_where(&q, where, sizeof(where));
	if (csv) /* billing: one line per step and tenant, provider, key and model */
		snprintf(
			sql, sizeof(sql),
			"SELECT ts - ts %% ?3 AS t, org_id, user_id, key_id, provider, model, " LT_RU_SUMCOLS
			" FROM rollup WHERE %s GROUP BY 1, 2, 3, 4, 5, 6"
			" ORDER BY 1, 2, 3, 4, 5, 6",
			where);
	else
		snprintf(sql, sizeof(sql),
			 "SELECT ts - ts %% ?3 AS t, " LT_RU_SUMCOLS
			 " FROM rollup WHERE %s GROUP BY 1 ORDER BY 1",
			 where);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		lt_ru_bind(st, &q);
	if (csv)
		lt_mbuf_printf(&b, "time,org_id,user_id,key_id,provider,model,requests,admitted,"
				   "rejected,input_tokens,output_tokens,tokens_settled\r\n");
	else
		points = json_array();
	while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int base = csv ? 6 : 1;

		for (i = 0; i < LT_RU_SUMS; i++) {
			v[i] = sqlite3_column_int64(st, base + i);
			tot[i] += v[i];
		}
		lt_ru_time(sqlite3_column_int64(st, 0), when, sizeof(when));
		if (csv) {
			lt_mbuf_printf(&b, "%s", when);
			for (i = 1; i < 6; i++)
				lt_ru_csv_field(&b, sqlite3_column_text(st, i));
			lt_mbuf_printf(&b, ",%lld,%lld,%lld,%lld,%lld,%lld\r\n", (long long)v[0],
				       (long long)v[1], (long long)v[2], (long long)v[3],
				       (long long)v[4], (long long)v[5]);
			continue;
		}
		p = lt_ru_point(v);
		if (p)
			json_object_set_new(p, "time", json_string(when));
		if (!p || json_array_append_new(points, p)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	lt_requests_rdb_done(rq);
	if (rc != SQLITE_DONE || b.oom) {
		json_decref(points);
		free(b.p);
		return lt_problem(r, 500, "internal", "Internal error", NULL,
				  "reading the rollups: %s", sqlite3_errstr(rc));
	}
	if (csv) {
		res = lt_send(r, 200, "text/csv; charset=utf-8", b.p ? b.p : strdup(""), NULL);
		return res;
	}
	p = lt_ru_point(tot);
	{
		json_t *out, *f = json_object();
		char from[32], to[32];

		for (i = 0; i < LT_RU_DIMS; i++)
			if (q.f[i])
				json_object_set_new(f, lt_ru_filters[i][0], json_string(q.f[i]));
		lt_ru_time(q.from, from, sizeof(from));
		lt_ru_time(q.to, to, sizeof(to));
		out = json_pack("{s:s, s:s, s:I, s:o, s:o, s:o}", "from", from, "to", to,
				"stepSeconds", (json_int_t)q.step, "filters", f, "points", points,
				"total", p);
		return lt_reply_json(r, 200, out);
	}
}

/* ---- top ------------------------------------------------------------------------------------ */

#define LT_RU_TOP_MAX 100

struct lt_ru_fill {
	char key[LT_BUCKET_KEY_LEN];
	__u64 capacity, remaining;
	double used; /* fraction of the capacity in use */
};

struct lt_ru_top {
	struct lt_quota *q;
	__u64 now;
	struct lt_ru_fill *v;
	long n, limit;
};

/* Keeps the limit buckets fullest so far, fullest first (insertion into a short list). */
static int lt_ru_top_cb(void *ctx, const char *key, uint32_t slot)
{
	struct lt_ru_top *t = ctx;
	struct lt_view v;
	__u32 handle;
	double used;
	long i;

	(void)slot; /* the index's slot has no generation: read through the key */
	if (lt_quota_peek_key(t->q, key, NULL, t->now, &v, &handle) || !handle || v.unlimited ||
	    !v.capacity)
		return 0;
	used = (double)(v.capacity - (v.remaining < v.capacity ? v.remaining : v.capacity)) /
	       (double)v.capacity;
	if (t->n == t->limit && used <= t->v[t->n - 1].used)
		return 0;
	i = t->n < t->limit ? t->n++ : t->n - 1;
	for (; i > 0 && t->v[i - 1].used < used; i--)
		t->v[i] = t->v[i - 1];
	snprintf(t->v[i].key, sizeof(t->v[i].key), "%s", key);
	t->v[i].capacity = v.capacity;
	t->v[i].remaining = v.remaining;
	t->v[i].used = used;
	return 0;
}

enum MHD_Result lt_analytics_top(struct lt_req *r)
{
	struct lt_api *a = lt_api_of(r);
	const char *ls = lt_ru_arg(r, "limit");
	struct lt_ru_top t = { .q = a->q, .now = lt_now_ns(), .limit = 10 };
	struct lt_ru_query q;
	enum MHD_Result res;
	json_t *closest, *limited, *o;
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	char *end, where[256], sql[1024];
	long i;
	int rc;

	if (ls) {
		errno = 0;
		t.limit = strtol(ls, &end, 10);
		if (errno || end == ls || *end || t.limit < 1 || t.limit > LT_RU_TOP_MAX)
			return lt_problem(r, 400, "invalid-field", "Invalid field", "limit",
					  "limit: an integer from 1 to %d", LT_RU_TOP_MAX);
	}
	if (lt_ru_parse(r, &q, 0, &res))
		return res;
	t.v = calloc((size_t)t.limit, sizeof(*t.v));
	if (!t.v)
		return lt_problem(r, 500, "internal", "Internal error", NULL, "out of memory");
	/* closest to their limits: every bucket in use, now */
	lt_store_bucket_each(a->st, lt_ru_top_cb, &t);
	closest = json_array();
	for (i = 0; i < t.n; i++)
		json_array_append_new(closest,
				      json_pack("{s:s, s:I, s:I, s:f}", "bucket", t.v[i].key,
						"capacity", (json_int_t)t.v[i].capacity,
						"remaining", (json_int_t)t.v[i].remaining,
						"utilization", t.v[i].used));
	free(t.v);
	/* the most limited: rejections in [from, to) by tenant */
	limited = json_array();
	db = lt_requests_rdb(a->requests);
	if (!db) {
		json_decref(closest);
		json_decref(limited);
		return lt_problem(r, 500, "internal", "Internal error", NULL,
				  "the analytics store is not available (see the agent's log)");
	}
	lt_ru_where(&q, where, sizeof(where));
	snprintf(sql, sizeof(sql),
		 "SELECT CASE WHEN org_id != '' THEN 'org:' || org_id"
		 " WHEN user_id != '' THEN 'user:' || user_id"
		 " WHEN key_id != '' THEN 'key:' || key_id ELSE 'anonymous' END AS tenant,"
		 " sum(rejected) AS rej, sum(requests) FROM rollup WHERE %s"
		 " GROUP BY 1 HAVING rej > 0 ORDER BY rej DESC, 1 LIMIT %ld",
		 where, t.limit);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		lt_ru_bind(st, &q);
	while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		o = json_pack("{s:s, s:I, s:I}", "tenant", (const char *)sqlite3_column_text(st, 0),
			      "rejected", (json_int_t)sqlite3_column_int64(st, 1), "requests",
			      (json_int_t)sqlite3_column_int64(st, 2));
		if (!o || json_array_append_new(limited, o)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	lt_requests_rdb_done(a->requests);
	if (rc != SQLITE_DONE) {
		json_decref(closest);
		json_decref(limited);
		return lt_problem(r, 500, "internal", "Internal error", NULL,
				  "reading the rollups: %s", sqlite3_errstr(rc));
	}
	return lt_reply_json(
		r, 200, json_pack("{s:o, s:o}", "closestToLimit", closest, "mostLimited", limited));
}
