// SPDX-License-Identifier: MIT
/* logq.c - the request log's query: parameters, SQL and cursor (logq.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "logq.h"
#include "tenant.h"

static const char *const lt_logq_outcomes[LT_REQ__MAX] = {
	[LT_REQ_COMPLETED] = "completed",
	[LT_REQ_CLIENT_GONE] = "client_gone",
	[LT_REQ_UPSTREAM_FAILED] = "upstream_failed",
	[LT_REQ_TIMED_OUT] = "timed_out",
	[LT_REQ_REJECTED] = "rejected",
	[LT_REQ_CUT] = "cut",
};

const char *lt_logq_outcome_name(unsigned outcome)
{
	return outcome < LT_REQ__MAX ? lt_logq_outcomes[outcome] : NULL;
}

void lt_logq_init(struct lt_logq *q)
{
	memset(q, 0, sizeof(*q));
	q->outcome = -1;
	q->limit = LT_LOGS_LIMIT_DEFAULT;
}

int lt_logq_parse_time(const char *s, __u64 *ns)
{
	struct tm tm = { 0 }, want;
	const char *p;
	__u64 frac = 0, scale = 1000000000ULL;
	time_t t;

	/* strptime skips spaces and takes one-digit fields: the shape is checked first */
	if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':')
		return -EINVAL;
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p || p != s + 19)
		return -EINVAL;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (scale > 1) {
				scale /= 10;
				frac += (__u64)(*p - '0') * scale;
			}
		if (p[-1] == '.')
			return -EINVAL;
	}
	if (strcmp(p, "Z"))
		return -EINVAL;
	want = tm;
	t = timegm(&tm);
	/* up to 9999-12-31: ns fit an int64 until 2262, so later times saturate */
	if (t < 0)
		return -EINVAL;
	/* timegm rolls 02-31 over into March: a date or time that does not exist is refused */
	if (tm.tm_year != want.tm_year || tm.tm_mon != want.tm_mon || tm.tm_mday != want.tm_mday ||
	    tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min || tm.tm_sec != want.tm_sec)
		return -EINVAL;
	*ns = (__u64)t > (__u64)INT64_MAX / 1000000000ULL - 1 ? (__u64)INT64_MAX :
								(__u64)t * 1000000000ULL + frac;
	return 0;
}

/* "NNN" (100..599) or a class "Nxx" (1xx..5xx) */
static int lt_logq_status(const char *s, int *lo, int *hi)
{
	if (strlen(s) != 3 || s[0] < '1' || s[0] > '5')
		return -EINVAL;
	if ((s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X')) {
		*lo = (s[0] - '0') * 100;
		*hi = *lo + 99;
		return 0;
	}
	if (s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
		return -EINVAL;
	*lo = *hi = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	return 0;
}

/* A name filter: 1 to len - 1 printable ASCII bytes (what a record can hold). */
static int lt_logq_name(const char *v, char *out, size_t len)
{
	size_t i, n = strlen(v);

	if (!n || n >= len)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			return -EINVAL;
	memcpy(out, v, n + 1);
	return 0;
}

int lt_logq_set(struct lt_logq *q, const char *name, const char *v, const char **why)
{
	char *end;
	__u64 ns;
	size_t i;

	*why = NULL;
	if (!v)
		v = "";
	if (!strcmp(name, "method")) {
		char m[sizeof(q->method)];

		*why = "method: an HTTP method like GET or POST";
		if (lt_logq_name(v, m, sizeof(m)))
			return -EINVAL;
		for (i = 0; m[i]; i++) {
			if (m[i] >= 'a' && m[i] <= 'z')
				m[i] = (char)(m[i] - 'a' + 'A');
			if (m[i] < 'A' || m[i] > 'Z')
				return -EINVAL;
		}
		memcpy(q->method, m, sizeof(m));
		return 0;
	}
	if (!strcmp(name, "status")) {
		*why = "status: a status code (100..599) or a class (1xx..5xx)";
		return lt_logq_status(v, &q->status_lo, &q->status_hi);
	}
	if (!strcmp(name, "provider")) {
		*why = "provider: a provider name (1 to 31 bytes)";
		return lt_logq_name(v, q->provider, sizeof(q->provider));
	}
	if (!strcmp(name, "route")) {
		*why = "route: a route name (1 to 63 bytes)";
		return lt_logq_name(v, q->route, sizeof(q->route));
	}
	if (!strcmp(name, "userId") || !strcmp(name, "orgId")) {
		char *out = name[0] == 'u' ? q->user : q->org;

		*why = name[0] == 'u' ? "userId: a user id (a UUID, any case, or a token's sub)" :
					"orgId: an org id (a UUID, any case, or a token's org)";
		char id[LT_REQLOG_NAME_LEN];

		/* one spelling: what the records hold (tenant.h) */
		if (!v[0] || lt_claim_id_canon(v, id, sizeof(id)))
			return -EINVAL;
		return lt_logq_name(id, out, LT_REQLOG_NAME_LEN);
	}
	if (!strcmp(name, "keyId")) {
		*why = "keyId: an API key id like lk_0123456789abcdef";
		return lt_logq_name(v, q->key, sizeof(q->key));
	}
	if (!strcmp(name, "outcome")) {
		*why = "outcome: completed, client_gone, upstream_failed, timed_out, rejected or "
		       "cut";
		for (i = 0; i < LT_REQ__MAX; i++)
			if (!strcmp(v, lt_logq_outcomes[i])) {
				q->outcome = (int)i;
				return 0;
			}
		return -EINVAL;
	}
	if (!strcmp(name, "from") || !strcmp(name, "to")) {
		*why = name[0] == 'f' ? "from: an RFC 3339 UTC time like 2027-01-31T00:00:00Z" :
					"to: an RFC 3339 UTC time like 2027-01-31T00:00:00Z";
		if (lt_logq_parse_time(v, &ns))
			return -EINVAL;
		if (name[0] == 'f') {
			q->has_from = 1;
			q->from_ns = (__s64)ns;
		} else {
			q->has_to = 1;
			q->to_ns = (__s64)ns;
		}
		return 0;
	}
	if (!strcmp(name, "limit")) {
		long n;

		*why = "limit: an integer from 1 to 500";
		if (v[0] < '1' || v[0] > '9' || strlen(v) > 3)
			return -EINVAL;
		n = strtol(v, &end, 10);
		if (*end || n < 1 || n > LT_LOGS_LIMIT_MAX)
			return -EINVAL;
		q->limit = n;
		return 0;
	}
	if (!strcmp(name, "cursor")) {
		*why = "cursor: the next_cursor of the previous page, unchanged";
		if (lt_logq_cursor_parse(v, &q->cur_ns, &q->cur_id))
			return -EINVAL;
		q->has_cursor = 1;
		return 0;
	}
	*why = "not a parameter of this resource (method, status, provider, route, orgId, "
	       "userId, keyId, outcome, from, to, limit, cursor)";
	return -ENOENT;
}

/* ---- cursor ---------------------------------------------------------------------- */

void lt_logq_cursor(__s64 start_ns, __s64 id, char *out)
{
	unsigned char b[16];
	int i;

	for (i = 0; i < 8; i++) {
		b[i] = (unsigned char)((__u64)start_ns >> (56 - 8 * i));
		b[8 + i] = (unsigned char)((__u64)id >> (56 - 8 * i));
	}
	if (lt_b64url_encode(b, sizeof(b), out, LT_LOGS_CURSOR_LEN + 1) != LT_LOGS_CURSOR_LEN)
		out[0] = '\0'; /* cannot happen: 16 bytes are 22 characters */
}

int lt_logq_cursor_parse(const char *s, __s64 *start_ns, __s64 *id)
{
	unsigned char b[18];
	__u64 t = 0, n = 0;
	int i;

	if (strlen(s) != LT_LOGS_CURSOR_LEN ||
	    lt_b64url_decode(s, LT_LOGS_CURSOR_LEN, b, sizeof(b)) != 16)
		return -EINVAL;
	for (i = 0; i < 8; i++) {
		t = t << 8 | b[i];
		n = n << 8 | b[8 + i];
	}
	/* what lt_logq_cursor never makes: a negative time, an id that is not a rowid */
	if (t > (__u64)INT64_MAX || n > (__u64)INT64_MAX || !n)
		return -EINVAL;
	*start_ns = (__s64)t;
	*id = (__s64)n;
	return 0;
}

/* ---- SQL -------------------------------------------------------------------------- */

/*
 * Numbered parameters, each bound only when its condition is in the text.
 * The order is (start_ns DESC, id DESC) on every path: requests_start (its
 * entries end with the rowid) or a tenant index (tenant, start_ns, rowid)
 * gives it without a sort, and the cursor is a range on start_ns plus a
 * tie-break on id, which the planner seeks to (row values are not used:
 * SQLite does not seek on a row value over an index's implicit rowid).
 */
int lt_logq_sql(const struct lt_logq *q, char *sql, size_t len)
{
	size_t n;

#define ADD(...)                                                                    \
	do {                                                                        \
		n += (size_t)snprintf(sql + n, n < len ? len - n : 0, __VA_ARGS__); \
	} while (0)
	n = 0;
	ADD("SELECT " LT_LOGQ_COLUMNS " FROM requests WHERE 1");
	if (q->id)
		ADD(" AND id = ?15");
	if (q->method[0])
		ADD(" AND method = ?1");
	if (q->status_lo && q->status_lo == q->status_hi)
		ADD(" AND status = ?2");
	else if (q->status_lo)
		ADD(" AND status BETWEEN ?2 AND ?3");
	if (q->provider[0])
		ADD(" AND provider = ?4");
	if (q->route[0])
		ADD(" AND route = ?5");
	if (q->user[0])
		ADD(" AND user_id = ?6");
	if (q->org[0])
		ADD(" AND org_id = ?7");
	if (q->key[0])
		ADD(" AND key_id = ?8");
	if (q->outcome >= 0)
		ADD(" AND outcome = ?9");
	if (q->has_from)
		ADD(" AND start_ns >= ?10");
	if (q->has_to)
		ADD(" AND start_ns < ?11");
	if (q->has_cursor)
		ADD(" AND start_ns <= ?12 AND (start_ns < ?12 OR id < ?13)");
	ADD(" ORDER BY start_ns DESC, id DESC LIMIT ?14");
#undef ADD
	return n < len ? 0 : -ENOSPC;
}

int lt_logq_bind(sqlite3_stmt *st, const struct lt_logq *q)
{
	int rc = SQLITE_OK;

#define B(cond, call)                          \
	do {                                   \
		if ((cond) && rc == SQLITE_OK) \
			rc = (call);           \
	} while (0)
	B(q->id, sqlite3_bind_int64(st, 15, q->id));
	B(q->method[0], sqlite3_bind_text(st, 1, q->method, -1, SQLITE_STATIC));
	B(q->status_lo, sqlite3_bind_int(st, 2, q->status_lo));
	B(q->status_lo && q->status_lo != q->status_hi, sqlite3_bind_int(st, 3, q->status_hi));
	B(q->provider[0], sqlite3_bind_text(st, 4, q->provider, -1, SQLITE_STATIC));
	B(q->route[0], sqlite3_bind_text(st, 5, q->route, -1, SQLITE_STATIC));
	B(q->user[0], sqlite3_bind_text(st, 6, q->user, -1, SQLITE_STATIC));
	B(q->org[0], sqlite3_bind_text(st, 7, q->org, -1, SQLITE_STATIC));
	B(q->key[0], sqlite3_bind_text(st, 8, q->key, -1, SQLITE_STATIC));
	B(q->outcome >= 0, sqlite3_bind_int(st, 9, q->outcome));
	B(q->has_from, sqlite3_bind_int64(st, 10, q->from_ns));
	B(q->has_to, sqlite3_bind_int64(st, 11, q->to_ns));
	B(q->has_cursor, sqlite3_bind_int64(st, 12, q->cur_ns));
	B(q->has_cursor, sqlite3_bind_int64(st, 13, q->cur_id));
	B(1, sqlite3_bind_int64(st, 14, q->id ? 1 : q->limit + 1));
#undef B
	return rc;
}
