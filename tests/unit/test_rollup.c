// SPDX-License-Identifier: MIT
/*
 * test_rollup.c - the analytics retention (agent/rollup.c lt_rollup_compact) on the real
 * schema at fixed clocks: a row is compacted into the next resolution, or deleted, only once
 * its whole minute, hour or day is older than the retention, and nothing is lost on the way.
 * The edge cases are the first minutes of an hour and of a day, where a row that starts before
 * the retention still holds requests from inside it.
 */
#include <stdio.h>
#include <string.h>
#include <sqlite3.h>
#include "lt_test.h"
#include "rollup.h"

#define NS 1000000000ULL
#define DAY0 1796169600LL /* 2026-12-02T00:00:00Z */

static sqlite3 *db_new(void)
{
	sqlite3 *db = NULL;
	char err[256];

	CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
	CHECK(!lt_rollup_schema(db, err, sizeof(err)));
	return db;
}

static void put(sqlite3 *db, long long res, long long ts, long long requests)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "INSERT INTO rollup VALUES(%lld, %lld, 'u', '', '', 'openai', 'm', %lld, %lld,"
		 " 0, 0, 0, 0, 0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0)",
		 res, ts, requests, requests);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
}

static long long one(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;

	CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
	if (st && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static long long at(sqlite3 *db, long long res, long long ts)
{
	char sql[160];

	snprintf(sql, sizeof(sql),
		 "SELECT coalesce(sum(requests), 0) FROM rollup WHERE res = %lld AND ts = %lld",
		 res, ts);
	return one(db, sql);
}

/* 10:01 with hours kept 1h: the 09:59 minute is in the hour that began 61 min ago. */
static void an_hour_that_ended_inside_the_retention_stays_an_hour(void)
{
	struct lt_analytics_config r = { 60 * NS, 3600 * NS, 86400 * NS };
	long long now = DAY0 + 10 * 3600 + 60;
	sqlite3 *db = db_new();

	put(db, 60, DAY0 + 9 * 3600 + 59 * 60, 5); /* 09:59, ended 1 min ago */
	put(db, 60, DAY0 + 10 * 3600, 10); /* 10:00, ended now */
	put(db, 60, DAY0 + 9 * 3600 + 57 * 60, 2); /* 09:57, ended 3 min ago */
	CHECK(lt_rollup_compact(db, &r, (__u64)now * NS) == SQLITE_OK);
	CHECK_EQ(at(db, 60, DAY0 + 10 * 3600), 10); /* its minute is not over 1m ago */
	CHECK_EQ(at(db, 60, DAY0 + 9 * 3600 + 59 * 60), 0); /* ended 1m ago: into its hour, */
	CHECK_EQ(at(db, 3600, DAY0 + 9 * 3600), 7); /* with 09:57, ... */
	CHECK_EQ(at(db, 86400, DAY0), 0); /* ... which is not a day yet */
	CHECK_EQ(one(db, "SELECT sum(requests) FROM rollup"), 17);

	/* an hour later, 09:00 ended 1h ago: into today's day row, nothing lost */
	CHECK(lt_rollup_compact(db, &r, (__u64)(now + 3600) * NS) == SQLITE_OK);
	CHECK_EQ(at(db, 3600, DAY0 + 9 * 3600), 0);
	CHECK_EQ(at(db, 86400, DAY0), 7);
	CHECK_EQ(at(db, 3600, DAY0 + 10 * 3600), 10);
	CHECK_EQ(one(db, "SELECT sum(requests) FROM rollup"), 17);
	sqlite3_close(db);
}

/* 00:01 with days kept 1d: yesterday's row still holds the last day's 23:59. */
static void a_day_is_deleted_only_when_it_ended_before_the_retention(void)
{
	struct lt_analytics_config r = { 60 * NS, 3600 * NS, 86400 * NS };
	long long now = DAY0 + 60;
	sqlite3 *db = db_new();

	put(db, 86400, DAY0 - 86400, 4); /* yesterday: ended 1 min ago */
	put(db, 86400, DAY0 - 2 * 86400, 3); /* the day before: ended a day and 1 min ago */
	CHECK(lt_rollup_compact(db, &r, (__u64)now * NS) == SQLITE_OK);
	CHECK_EQ(at(db, 86400, DAY0 - 86400), 4);
	CHECK_EQ(at(db, 86400, DAY0 - 2 * 86400), 0);
	sqlite3_close(db);
}

/* Compacting twice (the loop runs every minute) neither doubles nor drops a row. */
static void compaction_is_idempotent(void)
{
	struct lt_analytics_config r = { 60 * NS, 3600 * NS, 400 * 86400ULL * NS };
	long long now = DAY0 + 12 * 3600 + 30 * 60, t;
	sqlite3 *db = db_new();

	for (t = now - 5 * 3600; t < now; t += 60)
		put(db, 60, t - t % 60, 1);
	CHECK(lt_rollup_compact(db, &r, (__u64)now * NS) == SQLITE_OK);
	CHECK(lt_rollup_compact(db, &r, (__u64)now * NS) == SQLITE_OK);
	CHECK_EQ(one(db, "SELECT sum(requests) FROM rollup"), 300);
	CHECK_EQ(one(db, "SELECT count(*) FROM rollup WHERE res = 86400"), 1);
	CHECK_EQ(one(db, "SELECT count(*) FROM rollup WHERE res = 3600"), 2); /* 11:00, 12:00 */
	sqlite3_close(db);
}

int main(void)
{
	RUN(an_hour_that_ended_inside_the_retention_stays_an_hour);
	RUN(a_day_is_deleted_only_when_it_ended_before_the_retention);
	RUN(compaction_is_idempotent);
	return lt_t_done();
}
