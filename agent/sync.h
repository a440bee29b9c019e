/* SPDX-License-Identifier: MIT */
/*
 * sync.h - config sync across hosts over Apache Kafka (issue #10, item 3;
 * the record format is docs/events/config.v1.md).
 *
 * Publish: every change made through the admin API (tier and org limits,
 * providers, API keys (hash only), penalties, source policies) becomes one
 * record on kafka.config_topic. The Kafka key is the object ("<kind>/<id>",
 * canonical ids); the value is the object's whole state after the change,
 * its version and a deleted flag (a delete is a tombstone that keeps its
 * version). The record goes through the transactional outbox in leaky.db
 * (outbox.h), committed in the same SQLite transaction as the change where
 * the change is in SQLite, so a broker that is down, or a kill -9, loses
 * nothing.
 *
 * Apply: one consumer per agent assigns every partition of the topic itself
 * (no group rebalance) and keeps its next offsets in leaky.db, written in the
 * transaction that applies the record: a first start reads from the
 * beginning, a restart continues where it stopped, and a replay (offsets
 * reset) changes nothing. A record is applied when its version is greater
 * than the version the object has here (last writer wins); its own records
 * come back with the version they already have and are skipped. Compaction
 * is never relied on: tombstones are kept (sync_objects) with their version.
 *
 * Versions are a hybrid logical clock: (ms, host), ms = max(wall clock ms,
 * the greatest ms this host has written or applied + 1), compared by ms, then
 * by host (bytewise). One host never writes the same ms twice, and two hosts
 * never tie (kafka.source must be unique per host), so every host picks the
 * same winner of concurrent writes.
 *
 * Nothing here is on the admission path: a consume never waits for Kafka or
 * for this thread.
 */
#ifndef LT_AGENT_SYNC_H
#define LT_AGENT_SYNC_H

#include <stddef.h>
#include <linux/types.h>
#include <jansson.h>
#include "config.h"
#include "maps.h"
#include "store.h"

struct lt_sync;
struct lt_quota;
struct lt_keys;
struct lt_breakers;
struct lt_mbuf;

#define LT_CONFIG_TYPE "dev.leakytokens.config.v1"

struct lt_sync_deps {
	struct lt_store *st; /* leaky.db: changes, versions, offsets and the outbox */
	const char *db_path;
	struct lt_quota *q;
	struct lt_keys *keys;
	struct lt_breakers *brk; /* may be NULL */
	const struct lt_maps *m; /* penalties and policies */
	const char *state_dir;
	pthread_mutex_t *lock; /* the admin lock: one writer of the config at a time */
};

/*
 * Starts publishing (k->enabled and k->config_topic set; otherwise *out =
 * NULL and 0). -errno with err set.
 */
int lt_sync_start(struct lt_sync **out, const struct lt_sync_deps *d,
		  const struct lt_kafka_config *k, char *err, size_t errlen);
/*
 * Starts applying other hosts' changes (the consumer thread), once d->lock
 * is initialised; publishing works from lt_sync_start on. NULL is fine.
 */
int lt_sync_listen(struct lt_sync *s, char *err, size_t errlen);
void lt_sync_stop(struct lt_sync *s);

/*
 * A local change of one object, made by fn under the caller's admin lock.
 * With sync off (s NULL) it is fn alone. Otherwise fn runs inside a store
 * transaction, then the object's new state is published in that same
 * transaction (outbox row + its version). If fn fails, nothing is published;
 * if the publication cannot be recorded, the object is put back as it was
 * and -EIO returned with err set. kind: "tier", "org", "provider", "apikey",
 * "penalty", "policy"; id as in docs/events/config.v1.md. An id that is ""
 * when called (an API key being created) is a new object that fn names by
 * filling the buffer id points to.
 */
typedef int (*lt_sync_fn)(void *ctx, char *err, size_t errlen);
int lt_sync_change(struct lt_sync *s, const char *kind, const char *id, lt_sync_fn fn, void *ctx,
		   char *err, size_t errlen);

/* GET /api/v1/sync/status: a new JSON object. */
json_t *lt_sync_status(struct lt_sync *s);
/* The lt_config_sync_* series. */
void lt_sync_metrics(struct lt_sync *s, struct lt_mbuf *b);

#endif
