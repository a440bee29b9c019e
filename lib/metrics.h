/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - Prometheus counters for the API servers (the agent, and the
 * gateway next), shared through liblt.
 *
 * Per request the cost is O(1) and takes no lock: a series (tier, provider)
 * is found in a lock-free open-addressing table and counted with relaxed
 * atomics. A series is claimed once with a compare-and-swap and never moves
 * or goes away. When the table is full, a new series is not created and the
 * decision is counted in lt_metric_series_dropped_total, never silently.
 *
 * The exposition writer grows its buffer: /metrics is never cut mid-line.
 */
#ifndef LT_METRICS_H
#define LT_METRICS_H

#include <stdarg.h>
#include <stddef.h>
#include <linux/types.h>

#define LT_MET_NAME_MAX 32 /* bytes of a tier or provider name, NUL included */

enum lt_met_verdict { LT_MET_ADMITTED, LT_MET_DENIED, LT_MET_TOO_BIG };

struct lt_met_series {
	__u64 tag; /* 0 empty, 1 being claimed, else the name hash (>= 2) */
	char tier[LT_MET_NAME_MAX], provider[LT_MET_NAME_MAX];
	__u64 admitted, denied, too_big; /* decisions */
	__u64 tokens; /* admitted */
};

struct lt_met_table {
	unsigned mask; /* capacity - 1, a power of two */
	__u64 dropped; /* decisions whose series found no room */
	struct lt_met_series *s;
};

/* capacity: a power of two (series). */
int lt_met_init(struct lt_met_table *t, unsigned capacity);
void lt_met_free(struct lt_met_table *t);
/* Counts one decision. Lock-free; safe from any number of threads. */
void lt_met_count(struct lt_met_table *t, const char *tier, const char *provider,
		  enum lt_met_verdict v, __u64 tokens);
/* The series in use, for the exposition: NULL after the last. *i starts at 0. */
const struct lt_met_series *lt_met_next(const struct lt_met_table *t, unsigned *i);

/* A growable text buffer: appends never truncate; on out-of-memory it says so. */
struct lt_mbuf {
	char *p;
	size_t len, cap;
	int oom;
};

void lt_mbuf_printf(struct lt_mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes every series of t in the Prometheus text format. */
void lt_met_write(const struct lt_met_table *t, struct lt_mbuf *b);

#endif
