/* SPDX-License-Identifier: MIT */
/*
 * requests.h - the agent's side of the usage records (issue #9): a consumer
 * thread drains the lt_reqlog ring (lib/reqlog.c) into OpenTelemetry GenAI
 * histograms for /metrics and, through a bounded queue and a writer thread,
 * into a capped SQLite table (requests.db in the state dir) for the request
 * log and analytics, read by GET /api/v1/admin/requests.
 *
 * Nothing here can stall the ring: a full queue, a full disk or any store
 * error drops the record from the store only, and counts it.
 */
#ifndef LT_AGENT_REQUESTS_H
#define LT_AGENT_REQUESTS_H

#include <stddef.h>
#include <linux/types.h>
#include <microhttpd.h>

struct lt_requests;
struct lt_maps;
struct lt_mbuf;
struct lt_req;

/*
 * mmaps the ring from the maps and starts both threads. requests.db keeps
 * the newest keep_rows records, none older than max_age_ns (by arrival;
 * token.request_log_rows and token.request_log_max_age). A store that cannot
 * be opened is logged and leaves the metrics running (records then count as
 * store drops); only a ring that cannot be mapped is an error.
 */
int lt_requests_start(struct lt_requests **out, const struct lt_maps *m, const char *state_dir,
		      __u32 keep_rows, __u64 max_age_ns, char *err, size_t errlen);
/* Stops the threads (what the queue holds is written first) and frees. NULL is fine. */
void lt_requests_stop(struct lt_requests *q);

/* The GenAI histograms and lt_reqlog_* counters in the Prometheus text format. */
void lt_requests_metrics(struct lt_requests *q, struct lt_mbuf *b);

/* GET /api/v1/admin/requests?limit=&since= (after the admin access phase). */
enum MHD_Result lt_requests_get(struct lt_req *r);

#endif
