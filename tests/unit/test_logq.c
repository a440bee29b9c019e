// SPDX-License-Identifier: MIT
/*
 * test_logq.c - the request log's query (agent/logq.c): the cursor codec
 * (round trip at the edges, one spelling, refusals), the parameters (what
 * each takes and refuses, ids canonical), and the SQL on the real schema
 * (lt_requests_schema): every filter shape pages by index without a sort,
 * and keyset pages over rows that share a time see every row once, in order.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sqlite3.h>
#include "logq.h"
#include "lt_test.h"
#include "requests.h"

static void cursor_round_trip_at_the_edges(void)
{
	static const __s64 v[][2] = { { 0, 1 },
				      { 1, 1 },
				      { 1796199606123456789LL, 42 },
				      { INT64_MAX, INT64_MAX },
				      { 255, 256 } };
	char c[LT_LOGS_CURSOR_LEN + 1];
	__s64 t, id;
	unsigned i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		lt_logq_cursor(v[i][0], v[i][1], c);
		CHECK_EQ(strlen(c), LT_LOGS_CURSOR_LEN);
		CHECK(strspn(c,
			     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
		      LT_LOGS_CURSOR_LEN);
		CHECK(!lt_logq_cursor_parse(c, &t, &id));
		CHECK(t == v[i][0] && id == v[i][1]);
	}
}

static void cursor_refuses_what_it_never_makes(void)
{
	static const char *const bad[] = {
		"",
		"abc",
		"AAAAAAAAAAAAAAAAAAAAAAA", /* 23 */
		"AAAAAAAAAAAAAAAAAAAAA", /* 21 */
		"AAAAAAAAAAAAAAAAAAAAAA", /* id 0 */
		"AAAAAAAAAAAAAAAAAAAAAB", /* spare bits set: a second spelling of a cursor */
		"_____________________w", /* time and id negative as int64 */
		"AAAAAAAAAAAAAAAAAAAAA=", /* padding */
		"AAAAAAAAAAA+AAAAAAAAAQ", /* base64, not base64url */
		"AAAAAAAAAAA AAAAAAAAAQ",
		"AAAAAAAAAAAAAAAAAAAAAQ\n",
	};
	__s64 t = 7, id = 7;
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (lt_logq_cursor_parse(bad[i], &t, &id) != -EINVAL)
			printf("#   accepted: '%s'\n", bad[i]);
		CHECK(lt_logq_cursor_parse(bad[i], &t, &id) == -EINVAL);
	}
	CHECK(t == 7 && id == 7); /* nothing written on refusal */
	CHECK(!lt_logq_cursor_parse("AAAAAAAAAAAAAAAAAAAAAQ", &t, &id) && t == 0 && id == 1);
}

static int set(struct lt_logq *q, const char *k, const char *v)
{
	const char *why;

	return lt_logq_set(q, k, v, &why);
}

static void parameters_take_and_refuse(void)
{
	static const char *const good[][2] = {
		{ "method", "post" },
		{ "status", "429" },
		{ "status", "4xx" },
		{ "status", "5XX" },
		{ "status", "100" },
		{ "provider", "openai" },
		{ "route", "/v1/chat" },
		{ "keyId", "lk_0123" },
		{ "outcome", "cut" },
		{ "limit", "1" },
		{ "limit", "500" },
		{ "from", "2026-12-02T00:00:00Z" },
		{ "to", "2026-12-02T00:00:00.123456789Z" },
		{ "from", "2028-02-29T23:59:59Z" },
		{ "userId", "alice" },
	};
	static const char *const badv[][2] = {
		{ "method", "" },
		{ "method", "G3T" },
		{ "method", "VERYLONGMETHOD" },
		{ "status", "600" },
		{ "status", "6xx" },
		{ "status", "099" },
		{ "status", "4x" },
		{ "status", "4xxx" },
		{ "status", " 429" },
		{ "provider", "" },
		{ "provider", "a b" },
		{ "userId", "" },
		{ "orgId", "" },
		{ "keyId", "" },
		{ "outcome", "Rejected" },
		{ "limit", "0" },
		{ "limit", "501" },
		{ "limit", "-1" },
		{ "limit", "1e2" },
		{ "limit", "0050" },
		{ "from", "2026-12-02" },
		{ "from", "2026-12-02T00:00:00" },
		{ "to", "2026-12-02 00:00:00Z" },
		{ "from", "2026-1-2T00:00:00Z" },
		{ "from", "2026-12-02T00:00:00.Z" },
		/* a day or time that does not exist is refused, not rolled over into the next */
		{ "from", "2026-02-31T00:00:00Z" },
		{ "to", "2026-04-31T00:00:00Z" },
		{ "from", "2025-02-29T00:00:00Z" },
		{ "from", "2026-12-02T24:00:00Z" },
		{ "from", "2026-12-02T23:60:00Z" },
		{ "cursor", "x" },
	};
	struct lt_logq q;
	char longv[200];
	unsigned i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		lt_logq_init(&q);
		if (set(&q, good[i][0], good[i][1]))
			printf("#   refused %s=%s\n", good[i][0], good[i][1]);
		CHECK(!set(&q, good[i][0], good[i][1]));
	}
	for (i = 0; i < sizeof(badv) / sizeof(badv[0]); i++) {
		lt_logq_init(&q);
		if (set(&q, badv[i][0], badv[i][1]) != -EINVAL)
			printf("#   took %s=%s\n", badv[i][0], badv[i][1]);
		CHECK(set(&q, badv[i][0], badv[i][1]) == -EINVAL);
	}
	memset(longv, 'a', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	CHECK(set(&q, "route", longv) == -EINVAL); /* longer than a record holds */
	CHECK(set(&q, "userid", "x") == -ENOENT); /* names are exact */
	CHECK(set(&q, "offset", "10") == -ENOENT);

	lt_logq_init(&q);
	CHECK(q.limit == LT_LOGS_LIMIT_DEFAULT && q.outcome == -1);
	CHECK(!set(&q, "userId", "ABCDEF00-0000-0000-0000-00000000000A"));
	CHECK(!strcmp(q.user, "abcdef00-0000-0000-0000-00000000000a")); /* canonical */
	CHECK(!set(&q, "orgId", "Team-Blue")); /* not a UUID: exact */
	CHECK(!strcmp(q.org, "Team-Blue"));
	CHECK(!set(&q, "method", "get") && !strcmp(q.method, "GET"));
	CHECK(!set(&q, "status", "4xx") && q.status_lo == 400 && q.status_hi == 499);
	CHECK(!set(&q, "status", "404") && q.status_lo == 404 && q.status_hi == 404);
	CHECK(!set(&q, "outcome", "timed_out") && q.outcome == LT_REQ_TIMED_OUT);
	CHECK(!set(&q, "from", "2026-12-02T00:00:01.5Z"));
	CHECK(q.has_from && q.from_ns == 1796169601500000000LL);
}

static sqlite3 *db_with_rows(int n, int same_time)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *msg = NULL;
	int i;

	CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
	CHECK(lt_requests_schema(db, &msg) == SQLITE_OK);
	sqlite3_free(msg);
	CHECK(sqlite3_prepare_v2(
		      db,
		      "INSERT INTO requests(start_ns, request_id, method, route,"
		      " client_addr, client_port, user_id, org_id, tier, key_id, provider,"
		      " model_requested, model_served, status, outcome, flags,"
		      " tokens_reserved, tokens_in, tokens_out, latency_ns, ttft_ns,"
		      " limit_name) VALUES(?1, 'r', 'POST', ?2, '', 0, ?3, '', '', ?4,"
		      " 'openai', '', '', ?5, 0, 0, 0, 0, 0, 0, 0, '')",
		      -1, &st, NULL) == SQLITE_OK);
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (i = 0; i < n; i++) {
		char u[8], k[8];

		snprintf(u, sizeof(u), "u%d", i % 5);
		snprintf(k, sizeof(k), "k%d", i % 3);
		sqlite3_reset(st);
		/* ids grow with i; times go in runs of same_time equal values, not in id order */
		sqlite3_bind_int64(st, 1, 1000000 + (__s64)((i * 7919) % n) / same_time);
		sqlite3_bind_text(st, 2, i % 2 ? "a" : "b", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, u, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, k, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(st, 5, i % 4 ? 200 : 429);
		CHECK(sqlite3_step(st) == SQLITE_DONE);
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_finalize(st);
	return db;
}

/* The plan of q: 1 if it seeks or walks an index and never sorts. */
static int plan_ok(sqlite3 *db, const struct lt_logq *q, const char *want_index)
{
	char sql[1024], ex[1100], plan[1024] = "";
	sqlite3_stmt *st = NULL;
	int ok = 1;

	CHECK(!lt_logq_sql(q, sql, sizeof(sql)));
	snprintf(ex, sizeof(ex), "EXPLAIN QUERY PLAN %s", sql);
	CHECK(sqlite3_prepare_v2(db, ex, -1, &st, NULL) == SQLITE_OK);
	CHECK(lt_logq_bind(st, q) == SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 3);

		snprintf(plan + strlen(plan), sizeof(plan) - strlen(plan), "%s; ", d);
		if (strstr(d, "TEMP B-TREE") || (strstr(d, "SCAN") && !strstr(d, "INDEX")))
			ok = 0;
	}
	sqlite3_finalize(st);
	if (!strstr(plan, want_index))
		ok = 0;
	if (!ok)
		printf("#   plan of %s: %s (want %s)\n", sql, plan, want_index);
	return ok;
}

static void every_filter_shape_pages_by_index_without_a_sort(void)
{
	sqlite3 *db = db_with_rows(2000, 3);
	struct lt_logq q;

	lt_logq_init(&q);
	CHECK(plan_ok(db, &q, "requests_start"));
	CHECK(!set(&q, "cursor", "AAAAAAAAAAAAAAAAAAAAAQ"));
	CHECK(plan_ok(db, &q, "requests_start")); /* a deep page: the same seek */
	lt_logq_init(&q);
	CHECK(!set(&q, "userId", "u1") && !set(&q, "cursor", "AAAAAAAAAAAAAAAAAAAAAQ"));
	CHECK(plan_ok(db, &q, "requests_user"));
	lt_logq_init(&q);
	CHECK(!set(&q, "orgId", "o1") && !set(&q, "status", "4xx"));
	CHECK(plan_ok(db, &q, "requests_org"));
	lt_logq_init(&q);
	CHECK(!set(&q, "keyId", "k1") && !set(&q, "from", "2026-12-02T00:00:00Z"));
	CHECK(plan_ok(db, &q, "requests_key"));
	lt_logq_init(&q); /* a non-admin API key: user and key forced */
	CHECK(!set(&q, "userId", "u1") && !set(&q, "keyId", "k1") && !set(&q, "route", "a"));
	CHECK(plan_ok(db, &q, "INDEX requests_"));
	lt_logq_init(&q);
	CHECK(!set(&q, "method", "POST") && !set(&q, "provider", "openai") &&
	      !set(&q, "status", "429") && !set(&q, "outcome", "completed") &&
	      !set(&q, "to", "2099-01-01T00:00:00Z"));
	CHECK(plan_ok(db, &q, "requests_start"));
	sqlite3_close(db);
}

/* Pages of limit rows through the whole table: ids in (start_ns, id) descending order. */
static int page_all(sqlite3 *db, struct lt_logq *q, __s64 *ids, int max)
{
	char sql[1024];
	sqlite3_stmt *st;
	int n = 0, pages = 0, rows;
	__s64 lt = 0, lid = 0;

	CHECK(!lt_logq_sql(q, sql, sizeof(sql)));
	for (;;) {
		st = NULL;
		CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
		CHECK(lt_logq_bind(st, q) == SQLITE_OK);
		rows = 0;
		while (sqlite3_step(st) == SQLITE_ROW && rows < q->limit) {
			if (n < max)
				ids[n] = sqlite3_column_int64(st, 0);
			n++;
			rows++;
			lid = sqlite3_column_int64(st, 0);
			lt = sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
		if (rows < q->limit || ++pages > 10000)
			break;
		if (!q->has_cursor) {
			q->has_cursor = 1;
			CHECK(lt_logq_sql(q, sql, sizeof(sql)) == 0);
		}
		q->cur_ns = lt;
		q->cur_id = lid;
	}
	return n;
}

static void keyset_pages_see_every_row_once_in_order_with_equal_times(void)
{
	enum { N = 1000 };
	static __s64 got[N + 10], want[N + 10];
	sqlite3 *db = db_with_rows(N, 7); /* runs of 7 rows share a start_ns */
	sqlite3_stmt *st = NULL;
	struct lt_logq q;
	int n = 0, m, limit;

	CHECK(sqlite3_prepare_v2(db, "SELECT id FROM requests ORDER BY start_ns DESC, id DESC", -1,
				 &st, NULL) == SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW && n < N)
		want[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	CHECK_EQ(n, N);
	for (limit = 1; limit <= 500; limit = limit * 3 + 1) { /* 1, 4, 13, 40, 121, 364 */
		lt_logq_init(&q);
		q.limit = limit;
		m = page_all(db, &q, got, N + 10);
		CHECK_EQ(m, N);
		CHECK(!memcmp(got, want, sizeof(want[0]) * N));
	}
	/* a filter pages the same way: user u2 is every 5th row */
	lt_logq_init(&q);
	CHECK(!set(&q, "userId", "u2"));
	q.limit = 6;
	m = page_all(db, &q, got, N + 10);
	CHECK_EQ(m, N / 5);
	sqlite3_close(db);
}

int main(void)
{
	RUN(cursor_round_trip_at_the_edges);
	RUN(cursor_refuses_what_it_never_makes);
	RUN(parameters_take_and_refuse);
	RUN(every_filter_shape_pages_by_index_without_a_sort);
	RUN(keyset_pages_see_every_row_once_in_order_with_equal_times);
	return lt_t_done();
}
