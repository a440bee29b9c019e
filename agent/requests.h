/* SPDX-License-Identifier: MIT */
/*
 * requests.h - the agent's side of the usage records (issue #9): a consumer
 * thread drains the lt_reqlog ring (lib/reqlog.c) into OpenTelemetry GenAI
 * histograms for /metrics and, through a bounded queue and a writer thread,
 * into a capped SQLite table (requests.db in the state dir) for the request
 * log and analytics, read by GET /api/v1/logs (agent/logs.c) and
 * GET /api/v1/admin/requests (gateway records only). Consume decisions are
 * rows of it too (F_DECISION, source "consume").
 *
 * Nothing here can stall the ring: a full queue, a full disk or any store
 * error drops the record from the store only, and counts it.
 */
#ifndef LT_AGENT_REQUESTS_H
#define LT_AGENT_REQUESTS_H

#include <stddef.h>
#include <linux/types.h>
#include <microhttpd.h>

#include "lt_abi.h"

struct lt_requests;
struct lt_maps;
struct lt_mbuf;
struct lt_req;
struct lt_kafka_config;
struct lt_analytics_config;

/*
 * One unit of work of the writer: a gateway record, a consume decision (both
 * as ring records) or a sampled kernel decision.
 */
enum lt_ev_origin { LT_EV_GATEWAY, LT_EV_DECISION, LT_EV_KERNEL };

struct lt_rq_item {
	struct lt_reqlog_rec r; /* LT_EV_GATEWAY, LT_EV_DECISION */
	struct lt_event k; /* LT_EV_KERNEL */
	__u64 k_real_ns; /* LT_EV_KERNEL: k.ts_ns as CLOCK_REALTIME ns */
	__u64 policy; /* the policy version in force when the agent read it */
	__u32 origin; /* enum lt_ev_origin */
};

#define LT_USAGE_TYPE "dev.leakytokens.usage.v1"
#define LT_USAGE_KEY_LEN 160

/*
 * The usage event of it (docs/events/usage.v1.md): its JSON data into buf,
 * its tenant (the Kafka key, ce_subject) into key, and its time. Returns the
 * data's length, or -ENOSPC.
 */
int lt_usage_event(const struct lt_rq_item *it, char *buf, size_t len, char *key, size_t keylen,
		   __u64 *time_ns);

/*
 * mmaps the ring from the maps and starts both threads. requests.db keeps
 * the newest keep_rows records, none older than max_age_ns (by arrival;
 * token.request_log_rows and token.request_log_max_age), in a file of at
 * most max_bytes (token.request_log_max_bytes; the oldest rows go first,
 * and after a full disk the bound drops below the size it filled at), and consume
 * decisions as rows up to consume_rate a second (0 = all;
 * token.request_log_consume_rate). A store that cannot
 * be opened is logged and leaves the metrics running (records then count as
 * store drops); only a ring that cannot be mapped is an error.
 */
int lt_requests_start(struct lt_requests **out, const struct lt_maps *m, const char *state_dir,
		      __u32 keep_rows, __u64 max_age_ns, __u64 max_bytes, __u32 consume_rate,
		      const struct lt_kafka_config *k, const struct lt_analytics_config *an,
		      const __u64 *policy, char *err, size_t errlen);
/*
 * The read connection of requests.db for the analytics API, held until
 * lt_requests_rdb_done (NULL: no store; then nothing is held).
 */
#include <sqlite3.h>
sqlite3 *lt_requests_rdb(struct lt_requests *q);
/*
 * The request log's tables and indexes on db (made, or brought up to date);
 * an SQLite result code, *msg (sqlite3_free) on error. For tests and benches.
 */
int lt_requests_schema(sqlite3 *db, char **msg);
void lt_requests_rdb_done(struct lt_requests *q);
/*
 * The read connection for a caller any principal can reach (the request log):
 * waited for at most wait_ms (else NULL and *busy = 1: the API thread goes
 * back to other requests instead of queueing behind a query), and each
 * statement run on it before lt_requests_rdb_done ends with SQLITE_INTERRUPT
 * past budget_ms. NULL and *busy = 0: no store.
 */
sqlite3 *lt_requests_rdb_bounded(struct lt_requests *q, unsigned wait_ms, unsigned budget_ms,
				 int *busy);
/*
 * Usage events (issue #10), when k (may be NULL) is enabled: every record and
 * decision also becomes an event in the outbox of requests.db, in the
 * transaction that stores it (agent/outbox.h), and a producer thread sends
 * them. The consumer then never drops a record for a full queue: it leaves
 * it in the ring. The ring position of the last record committed is kept in
 * the same transaction, and a start after a kill -9 reads again from there
 * what the ring still holds. policy: the policy version word read for each
 * event (lt_config's generation), NULL = 0.
 */
/*
 * A consume API decision for the request log (source "consume"), the usage
 * rollups and, when events are on, as an event: lock-free, no system call
 * (a record in the pinned lt_reqlog ring, so it survives the agent's death
 * until read). status: 200, 429 or 422. Strings may be NULL.
 */
struct sockaddr;
struct lt_decision {
	const char *user, *org, *tier, *key_id, *provider;
	const char *limit; /* the limit that refused it ("user-tokens"...), NULL = admitted */
	const char *request_id; /* the client's X-Request-Id, kept when it is a plain token */
	const struct sockaddr *client; /* NULL = unknown */
	__u64 tokens;
	__u64 latency_ns; /* arrival to the decision */
	unsigned status;
};
void lt_requests_decision(struct lt_requests *q, const struct lt_decision *d);
/* A sampled kernel decision as an event (events on only; else nothing). */
void lt_requests_kernel(struct lt_requests *q, const struct lt_event *e);
/* Stops the threads (what the queue holds is written first) and frees. NULL is fine. */
void lt_requests_stop(struct lt_requests *q);

/* The GenAI histograms and lt_reqlog_* counters in the Prometheus text format. */
void lt_requests_metrics(struct lt_requests *q, struct lt_mbuf *b);

/* GET /api/v1/admin/requests?limit=&since= (after the admin access phase). */
enum MHD_Result lt_requests_get(struct lt_req *r);

#endif
