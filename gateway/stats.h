/* SPDX-License-Identifier: MIT */
/*
 * stats.h - the gateway's Prometheus metrics (README "Gateway metrics").
 *
 * The master maps one shared anonymous region before it forks the workers.
 * Each worker counts into its own block of it (one writer per block: relaxed
 * loads and stores, no locked instruction, no system call per request); the
 * master sums the blocks when it is scraped, on its own listener
 * (`metrics.listen`, or --metrics), so a scrape never lands on one worker
 * of several and never waits on the traffic. A worker that is replaced keeps
 * its predecessor's block: counters stay monotonic across restarts.
 *
 * Routes are series by name, in a table of GW_STATS_ROUTES names that the
 * master fills at each config load (a name is never reused for another
 * route); routes beyond it are counted under route="_other", never dropped.
 */
#ifndef GW_STATS_H
#define GW_STATS_H

#include <stdint.h>
#include "exchange.h"
#include "failpolicy.h"
#include "gw_config.h"
#include "metrics.h"

#define GW_STATS_ROUTES 128 /* named route series; then "_other" and "_none" */

/* Master, before forking: the region for `workers` blocks. 0 or -errno. */
int gw_stats_open(unsigned workers);
void gw_stats_close(void);

/* Gives each route of cfg its series (master: creates them; worker: finds them). */
void gw_stats_attach(struct gw_config *cfg, int create);

/* Worker idx's block is the one this process counts into (after fork). */
void gw_stats_worker(unsigned idx);

/*
 * One finished exchange: route (NULL when none matched), the status sent to
 * the client (0: none), its duration in ns, and how it ended.
 */
void gw_stats_request(const struct gw_route *route, unsigned status, uint64_t dur_ns,
		      enum gw_outcome outcome);
/* A client connection accepted (+1) or closed (-1). */
void gw_stats_conn(int delta);
/* A worker's fail policy counters, copied into its block (the worker's sweep). */
void gw_stats_fail_copy(const struct lt_fail_policy *p);

/* Master: worker idx died and is replaced (before its successor runs); a reload applied (ok) or refused. */
void gw_stats_worker_restarted(unsigned idx);
void gw_stats_reload(int ok, uint64_t generation);

/* Every counter, summed over the workers, in the Prometheus text format. */
void gw_stats_write(struct lt_mbuf *b);

/*
 * The master's metrics listener: a non-blocking listening socket on addr
 * (HOST:PORT), or -errno with a sentence in err.
 */
int gw_metrics_listen(const char *addr, char *err, size_t errlen);
/*
 * Answers the connections waiting on lfd: GET /metrics (the text of
 * gw_stats_write, then extra's), 404 for another path, 405 for another
 * method, 400 for a malformed head. Reads up to GW_METRICS_CONNS of them
 * side by side and blocks at most ~1 s per call: a client that has not
 * sent its head by then is cut, and silent clients cannot make a scrape
 * wait behind them.
 */
#define GW_METRICS_CONNS 256
#define GW_METRICS_HEAD 8192 /* bytes of a request head, at most */
void gw_metrics_serve(int lfd, void (*extra)(struct lt_mbuf *b, void *arg), void *arg);

#endif
