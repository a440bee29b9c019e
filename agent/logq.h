/* SPDX-License-Identifier: MIT */
/*
 * logq.h - the request log's query (GET /api/v1/logs, agent/logs.c): its
 * parameters parsed into one struct, the SQL built from it, and the opaque
 * page cursor. No HTTP and no database handle here, so the unit test and
 * the fuzz harness drive it directly.
 *
 * Pages are newest first, by (start_ns, id) descending: keyset pagination,
 * so page N costs what page 1 costs (an index seek, never an OFFSET). The
 * cursor is the (start_ns, id) of the last row of a page, 16 bytes as
 * base64url (22 characters); the next page holds the rows strictly before it.
 */
#ifndef LT_AGENT_LOGQ_H
#define LT_AGENT_LOGQ_H

#include <stddef.h>
#include <linux/types.h>
#include <sqlite3.h>

#include "jwt.h" /* LT_JWT_ID_LEN */
#include "lt_abi.h" /* LT_REQLOG_* field sizes */

#define LT_LOGS_LIMIT_DEFAULT 50 /* rows per page */
#define LT_LOGS_LIMIT_MAX 500
#define LT_LOGS_CURSOR_LEN 22 /* characters, without the NUL */

/* One query. Strings "" = no filter; ids canonical (tenant.h). */
struct lt_logq {
	char method[8];
	int status_lo, status_hi; /* status in [lo, hi]; 0, 0 = any */
	char provider[LT_REQLOG_SHORT_LEN];
	char route[LT_REQLOG_NAME_LEN];
	char user[LT_REQLOG_NAME_LEN], org[LT_REQLOG_NAME_LEN];
	char key[40];
	int outcome; /* enum lt_reqlog_outcome, -1 = any */
	int has_from, has_to;
	__s64 from_ns, to_ns; /* CLOCK_REALTIME ns: from <= start_ns < to */
	int has_cursor;
	__s64 cur_ns, cur_id; /* rows strictly before (cur_ns, cur_id) */
	__s64 id; /* one row (GET /api/v1/logs/{id}); 0 = a page */
	long limit; /* rows per page */
};

void lt_logq_init(struct lt_logq *q);

/*
 * Sets parameter name from its raw value (a query-string argument). 0, or
 * -EINVAL for a value it does not take and -ENOENT for a name it does not
 * know; *why then says what is expected (a static string).
 */
int lt_logq_set(struct lt_logq *q, const char *name, const char *value, const char **why);

/* The outcome names of the API, by enum lt_reqlog_outcome; NULL past the end. */
const char *lt_logq_outcome_name(unsigned outcome);

/* "2026-12-02T01:00:00Z", "...:00.123Z": CLOCK_REALTIME ns. 0 or -EINVAL. */
int lt_logq_parse_time(const char *s, __u64 *ns);

/* The cursor of a row; out holds LT_LOGS_CURSOR_LEN + 1 bytes. */
void lt_logq_cursor(__s64 start_ns, __s64 id, char *out);
/*
 * A cursor back into (start_ns, id): 0, or -EINVAL for anything that is not
 * exactly a cursor lt_logq_cursor makes (length, alphabet, spare bits,
 * negative values).
 */
int lt_logq_cursor_parse(const char *s, __s64 *start_ns, __s64 *id);

/*
 * The SELECT of the query (its columns: LT_LOGQ_COLUMNS, in that order),
 * limit + 1 rows so the caller knows whether a next page exists. 0, or
 * -ENOSPC if len is too small (512 bytes always fit).
 */
#define LT_LOGQ_COLUMNS                                                                        \
	"id, start_ns, request_id, method, route, client_addr, user_id, org_id, tier, key_id," \
	" provider, model_requested, model_served, status, outcome, flags, tokens_reserved,"   \
	" tokens_in, tokens_out, latency_ns, ttft_ns, limit_name"
int lt_logq_sql(const struct lt_logq *q, char *sql, size_t len);
/* Binds q's values to a statement prepared from lt_logq_sql. */
int lt_logq_bind(sqlite3_stmt *st, const struct lt_logq *q);

#endif
