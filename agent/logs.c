// SPDX-License-Identifier: MIT
/* logs.c - GET /api/v1/logs and /api/v1/logs/{id} (logs.h). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "api.h"
#include "keys.h"
#include "logq.h"
#include "logs.h"
#include "problem.h"
#include "requests.h"
#include "units.h"
#include "utf8.h"

/* ---- parameters ---------------------------------------------------------------- */

#define LT_LOGS_PARAMS 16 /* more arguments than parameters is a 400 anyway */
/*
 * Any principal can ask for its own rows, and the agent has few API threads
 * (the consume API's): a non-admin's query waits at most LT_LOGS_WAIT_MS for the read
 * connection (else 429, the thread goes back to other requests) and runs at
 * most LT_LOGS_BUDGET_MS (else 422). Queued behind one another, 40 loops of
 * a filter matching nothing on 100,000 rows held every API thread: consume
 * and /healthz took 1.3-2 s (tests/e2e/test_logs_flood.sh). The wait must
 * stay short: an API thread serves its connections one request at a time,
 * so a request behind 32 flooding ones waits 32 times it (50 ms: 1.6 s).
 */
#define LT_LOGS_WAIT_MS 5
#define LT_LOGS_BUDGET_MS 500
/*
 * And all queries together get at most a quarter of one API thread: a bucket
 * of query time (capacity LT_LOGS_SHARE_CAP_NS, refilled at LT_LOGS_SHARE per
 * second); a query that finds it empty is a 429 at once. Without it one
 * thread ran query after query, and a request queued on that thread behind
 * them waited for all of them.
 */
#define LT_LOGS_SHARE_NUM 1
#define LT_LOGS_SHARE_DEN 4
#define LT_LOGS_SHARE_CAP_NS (500 * 1000000LL)

static struct {
	pthread_mutex_t lock;
	long long level_ns; /* query time that may still be spent; may go below 0 */
	__u64 at_ns; /* of the last refill */
} lt_logs_share = { PTHREAD_MUTEX_INITIALIZER, LT_LOGS_SHARE_CAP_NS, 0 };

/* 1 if a query may start now (the share has time left), after a refill */
static int lt_logs_share_take(void)
{
	__u64 now = lt_now_ns();
	int ok;

	pthread_mutex_lock(&lt_logs_share.lock);
	if (lt_logs_share.at_ns) {
		__u64 add = (now - lt_logs_share.at_ns) * LT_LOGS_SHARE_NUM / LT_LOGS_SHARE_DEN;
		lt_logs_share.level_ns = add >= (__u64)LT_LOGS_SHARE_CAP_NS ?
						 LT_LOGS_SHARE_CAP_NS :
						 lt_logs_share.level_ns + (long long)add;
		if (lt_logs_share.level_ns > LT_LOGS_SHARE_CAP_NS)
			lt_logs_share.level_ns = LT_LOGS_SHARE_CAP_NS;
	}
	lt_logs_share.at_ns = now;
	ok = lt_logs_share.level_ns > 0;
	pthread_mutex_unlock(&lt_logs_share.lock);
	return ok;
}

static void lt_logs_share_spend(__u64 ns)
{
	pthread_mutex_lock(&lt_logs_share.lock);
	lt_logs_share.level_ns -= (long long)(ns > (__u64)LLONG_MAX ? LLONG_MAX : ns);
	pthread_mutex_unlock(&lt_logs_share.lock);
}

struct lt_logs_parse {
	struct lt_logq *q;
	const char *bad, *why; /* the first bad parameter, and what it takes */
	int status; /* 400 */
	const char *seen[LT_LOGS_PARAMS];
	int nseen;
};

static enum MHD_Result lt_logs_arg(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct lt_logs_parse *ps = cls;
	int i;

	(void)kind;
	for (i = 0; i < ps->nseen; i++)
		if (!strcmp(ps->seen[i], k)) {
			ps->bad = k;
			ps->why = "given more than once";
			return MHD_NO;
		}
	if (ps->nseen == LT_LOGS_PARAMS) {
		ps->bad = k;
		ps->why = "too many parameters";
		return MHD_NO;
	}
	ps->seen[ps->nseen++] = k;
	if (lt_logq_set(ps->q, k, v, &ps->why)) {
		ps->bad = k;
		return MHD_NO;
	}
	return MHD_YES;
}

static int lt_logs_in_org(const struct lt_principal *p, const char *org)
{
	int i;

	for (i = 0; i < p->norgs; i++)
		if (!strcmp(p->orgs[i], org))
			return 1;
	return 0;
}

/*
 * A non-admin's filters are forced to its own rows: its user id and, for an
 * API key (or a token issued for one), its key id. Filters that name another
 * tenant are refused (403) rather than silently emptied, so a client learns
 * its mistake. 0, or -1 with the 403 queued in *res.
 */
static int lt_logs_scope(struct lt_req *r, struct lt_logq *q, enum MHD_Result *res)
{
	const struct lt_principal *p = &r->principal;
	struct lt_key_rec kr;
	char owner[LT_JWT_ID_LEN];

	if (p->admin)
		return 0;
	/*
	 * A record holds sizeof(q->user) - 1 bytes of a user id: a longer sub
	 * is stored cut, so a sub of exactly that length cannot be told from
	 * the cut of a longer one (another tenant's rows): both are refused.
	 */
	if (!p->sub[0] || strlen(p->sub) >= sizeof(q->user) - 1) {
		*res = lt_problem(r, 403, "forbidden", "Forbidden", "Authorization",
				  "this credential names no user the request log can show");
		return -1;
	}
	if (q->user[0] && strcmp(q->user, p->sub)) {
		*res = lt_problem(r, 403, "forbidden", "Forbidden", "userId",
				  "a non-admin sees only its own requests (userId is its sub)");
		return -1;
	}
	if (q->org[0] && !lt_logs_in_org(p, q->org)) {
		*res = lt_problem(r, 403, "forbidden", "Forbidden", "orgId",
				  "the credential does not list this org");
		return -1;
	}
	if (p->key_id[0] && q->key[0] && strcmp(q->key, p->key_id)) {
		*res = lt_problem(r, 403, "forbidden", "Forbidden", "keyId",
				  "an API key sees only its own requests");
		return -1;
	}
	if (!p->key_id[0] && q->key[0] &&
	    (lt_keys_get(lt_api_of(r)->keys, q->key, &kr) ||
	     lt_claim_id_canon(kr.owner, owner, sizeof(owner)) || strcmp(owner, p->sub))) {
		*res = lt_problem(r, 403, "forbidden", "Forbidden", "keyId",
				  "not an API key of this user");
		return -1;
	}
	snprintf(q->user, sizeof(q->user), "%s", p->sub);
	if (p->key_id[0])
		snprintf(q->key, sizeof(q->key), "%s", p->key_id);
	return 0;
}

/* ---- rows ------------------------------------------------------------------------ */

/* A stored string as JSON: "" (unknown) is null; bytes that are not UTF-8 are replaced. */
static json_t *lt_logs_str(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	char buf[4 * LT_REQLOG_NAME_LEN];

	if (!s || !s[0])
		return json_null();
	lt_utf8_sanitize((const char *)s, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *lt_logs_row(sqlite3_stmt *st)
{
	__s64 start = sqlite3_column_int64(st, 1);
	int flags = sqlite3_column_int(st, 15), outcome = sqlite3_column_int(st, 14);
	const unsigned char *served = sqlite3_column_text(st, 12);
	const char *oname = lt_logq_outcome_name((unsigned)outcome);
	time_t sec = (time_t)(start / 1000000000LL);
	char when[48];
	struct tm tm;
	json_t *o = json_object();

	if (!o)
		return NULL;
	gmtime_r(&sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(start % 1000000000LL / 1000000));
#define SET(k, v) json_object_set_new(o, k, v)
	SET("id", json_integer((json_int_t)sqlite3_column_int64(st, 0)));
	SET("time", json_string(when));
	SET("request_id", lt_logs_str(st, 2));
	SET("source", json_string(flags & LT_REQLOG_F_DECISION ? "consume" : "gateway"));
	SET("method", lt_logs_str(st, 3));
	SET("route", lt_logs_str(st, 4));
	SET("status", json_integer(sqlite3_column_int(st, 13)));
	SET("outcome", json_string(oname ? oname : "unknown"));
	SET("provider", lt_logs_str(st, 10));
	SET("model", lt_logs_str(st, served && served[0] ? 12 : 11));
	SET("user_id", lt_logs_str(st, 6));
	SET("org_id", lt_logs_str(st, 7));
	SET("tier", lt_logs_str(st, 8));
	SET("key_id", lt_logs_str(st, 9));
	SET("client", lt_logs_str(st, 5));
	SET("tokens_reserved", json_integer((json_int_t)sqlite3_column_int64(st, 16)));
	SET("tokens_in", flags & LT_REQLOG_F_USAGE ?
				 json_integer((json_int_t)sqlite3_column_int64(st, 17)) :
				 json_null());
	SET("tokens_out", flags & LT_REQLOG_F_USAGE ?
				  json_integer((json_int_t)sqlite3_column_int64(st, 18)) :
				  json_null());
	SET("latency_ms", json_real((double)sqlite3_column_int64(st, 19) / 1e6));
	SET("ttft_ms", flags & LT_REQLOG_F_TTFT ?
			       json_real((double)sqlite3_column_int64(st, 20) / 1e6) :
			       json_null());
	SET("limit", lt_logs_str(st, 21));
#undef SET
	return o;
}

/*
 * Runs q on the read connection: items (up to q->limit) into *items, and
 * *next the cursor after the last one when more rows follow (else "").
 * An SQLite result code.
 */
static int lt_logs_run(struct lt_requests *rq, const struct lt_logq *q, int admin, json_t *items,
		       char *next)
{
	char sql[768];
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	__s64 last_ns = 0, last_id = 0;
	long n = 0;
	int rc, busy;
	__u64 t0;

	next[0] = '\0';
	if (!admin && !lt_logs_share_take())
		return SQLITE_BUSY;
	/* an ADMIN (the dashboard, a billing export) waits its turn: it is trusted not to flood */
	db = lt_requests_rdb_bounded(rq, admin ? 10000 : LT_LOGS_WAIT_MS, LT_LOGS_BUDGET_MS, &busy);
	if (!db)
		return busy ? SQLITE_BUSY : SQLITE_CANTOPEN;
	t0 = lt_now_ns();
	rc = lt_logq_sql(q, sql, sizeof(sql)) ? SQLITE_TOOBIG :
						sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = lt_logq_bind(st, q);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row;

		if (n == q->limit) { /* the extra row: a next page exists */
			lt_logq_cursor(last_ns, last_id, next);
			rc = SQLITE_DONE;
			break;
		}
		row = lt_logs_row(st);
		if (!row || json_array_append_new(items, row)) {
			rc = SQLITE_NOMEM;
			break;
		}
		last_ns = sqlite3_column_int64(st, 1);
		last_id = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
		n++;
	}
	sqlite3_finalize(st);
	lt_requests_rdb_done(rq);
	if (!admin)
		lt_logs_share_spend(lt_now_ns() - t0);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static enum MHD_Result lt_logs_unavailable(struct lt_req *r, int rc)
{
	if (rc == SQLITE_BUSY) {
		const char *hdrs[] = { "Retry-After", "1", NULL };
		json_t *o = lt_problem_json(429, "log-busy", "Too Many Requests", NULL,
					    "another request-log query is running; retry");
		return lt_reply_json_h(r, 429, o, "application/problem+json", hdrs);
	}
	if (rc == SQLITE_INTERRUPT)
		return lt_problem(r, 422, "query-too-broad", "Query too broad", NULL,
				  "the query ran past its %d ms budget: narrow it with from/to or "
				  "an id filter",
				  LT_LOGS_BUDGET_MS);
	return lt_problem(r, 503, "store-unavailable", "Store unavailable", NULL,
			  "the request log cannot be read now: %s", sqlite3_errstr(rc));
}

enum MHD_Result lt_logs_list(struct lt_req *r)
{
	struct lt_logq q;
	struct lt_logs_parse ps = { .q = &q };
	char next[LT_LOGS_CURSOR_LEN + 1];
	enum MHD_Result res;
	json_t *items;
	int rc;

	lt_logq_init(&q);
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, lt_logs_arg, &ps);
	if (ps.bad)
		return lt_problem(r, 400, "invalid-field", "Invalid field", ps.bad, "%.32s: %s",
				  ps.bad, ps.why ? ps.why : "invalid");
	if (q.has_from && q.has_to && q.from_ns >= q.to_ns)
		return lt_problem(r, 400, "invalid-field", "Invalid field", "from",
				  "from must be before to");
	if (lt_logs_scope(r, &q, &res))
		return res;
	items = json_array();
	if (!items)
		return lt_problem(r, 503, "out-of-memory", "Out of memory", NULL, "try again");
	rc = lt_logs_run(lt_api_of(r)->requests, &q, r->principal.admin, items, next);
	if (rc != SQLITE_OK) {
		json_decref(items);
		return lt_logs_unavailable(r, rc);
	}
	return lt_reply_json(r, 200,
			     json_pack("{s:o, s:o}", "items", items, "next_cursor",
				       next[0] ? json_string(next) : json_null()));
}

enum MHD_Result lt_logs_one(struct lt_req *r)
{
	const char *s = r->url + strlen("/api/v1/logs/");
	struct lt_logq q;
	char next[LT_LOGS_CURSOR_LEN + 1];
	enum MHD_Result res;
	unsigned long long id = 0;
	json_t *items, *it;
	size_t i;
	int rc;

	lt_logq_init(&q);
	for (i = 0; s[i] >= '0' && s[i] <= '9' && i < 19; i++)
		id = id * 10 + (unsigned)(s[i] - '0');
	if (!i || s[i] || !id || id > (unsigned long long)INT64_MAX)
		return lt_problem(r, 400, "invalid-field", "Invalid field", "id",
				  "id: the integer id of a request log item");
	q.id = (__s64)id;
	if (lt_logs_scope(r, &q, &res))
		return res;
	items = json_array();
	if (!items)
		return lt_problem(r, 503, "out-of-memory", "Out of memory", NULL, "try again");
	rc = lt_logs_run(lt_api_of(r)->requests, &q, r->principal.admin, items, next);
	if (rc != SQLITE_OK) {
		json_decref(items);
		return lt_logs_unavailable(r, rc);
	}
	it = json_array_get(items, 0);
	if (!it) {
		json_decref(items);
		/* another tenant's row reads as absent: its existence is not told */
		return lt_problem(r, 404, "not-found", "Not found", "id",
				  "no request log item %llu (or not yours)", id);
	}
	json_incref(it);
	json_decref(items);
	return lt_reply_json(r, 200, it);
}
