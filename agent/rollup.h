/* SPDX-License-Identifier: MIT */
/*
 * rollup.h - usage analytics (issue #10 item 2): per-minute rollups in
 * requests.db per (user, org, API key, provider, model), written by the
 * request log's writer in the same transaction as the records they count,
 * compacted into hours and then days, and deleted after the configured
 * retention. Read by GET /api/v1/analytics/{usage,usage.csv,top}.
 *
 * Counted: gateway requests (requests, admitted, rejected, input and output
 * tokens when the usage is known, tokens settled, latency) and consume API
 * decisions (requests, admitted, rejected, tokens settled; no latency).
 * Latency percentiles come from a fixed histogram (LT_RU_LAT_N buckets in
 * ms), so they are exact to a bucket: linear within it.
 */
#ifndef LT_AGENT_ROLLUP_H
#define LT_AGENT_ROLLUP_H

#include <stddef.h>
#include <linux/types.h>
#include <microhttpd.h>
#include <sqlite3.h>

struct lt_rq_item;
struct lt_req;
struct lt_requests;

#define LT_RU_LAT_N 16 /* latency buckets: 15 bounds and +Inf */

#include "config.h" /* struct lt_analytics_config: the retention */

int lt_rollup_schema(sqlite3 *db, char *err, size_t errlen);

/*
 * Aggregates a batch in memory (one upsert per distinct minute and tenant,
 * not one per record), then writes it inside the caller's transaction.
 */
struct lt_rollup;
struct lt_rollup *lt_rollup_new(void);
void lt_rollup_free(struct lt_rollup *ru);
void lt_rollup_add(struct lt_rollup *ru, const struct lt_rq_item *it);
int lt_rollup_flush(struct lt_rollup *ru, sqlite3 *db); /* SQLITE_OK or an error */
/* Forgets what was added (its batch was rolled back before the flush). */
void lt_rollup_discard(struct lt_rollup *ru);
/* Releases the prepared statements (before db closes). */
void lt_rollup_release(struct lt_rollup *ru);

/*
 * Minutes into hours, hours into days, old days out (own transaction).
 * now_ns: CLOCK_REALTIME. Returns SQLITE_OK or an error.
 */
int lt_rollup_compact(sqlite3 *db, const struct lt_analytics_config *r, __u64 now_ns);

/* The API (after the admin access phase); read on the request log's read connection. */
enum MHD_Result lt_analytics_usage(struct lt_req *r, int csv);
enum MHD_Result lt_analytics_top(struct lt_req *r);

#endif
