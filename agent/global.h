/* SPDX-License-Identifier: MIT */
/*
 * global.h - global limits across hosts over Apache Kafka (issue #10, item 4;
 * the record format is docs/events/global.v1.md, the bound README "Global
 * limits across hosts").
 *
 * A bucket whose key matches a rule of the config's "global" section is
 * global, in the mode of the rule. Mode replicate: every host
 *   - publishes, every S (global.interval), one record per global bucket it
 *     holds: its own cumulative spend on it in the current window (the
 *     window is the epoch of this host's counter: it starts when the host
 *     starts tracking the bucket, so a restart never lowers a published
 *     value), stamped with the time it was read (the event time);
 *   - reads every partition of global.topic and keeps, per (host, bucket),
 *     the greatest (window, tokens) seen: a duplicate or an older record
 *     changes nothing, a greater one debits the increase onto the local
 *     bucket (lt_slot_debit, include/lt_slot.h), so that every local decider
 *     (kernel-side users of lt_slots, the gateway, the consume API) sees the
 *     other hosts' spend with no work per request.
 * Staleness: the sync is stale when a live host's newest record (by event
 * time) is older than tau_max, or this host's own records are not
 * acknowledged within it; then each rule's on_stale applies until it is fresh
 * again (share: this host's spend is debited N_live - 1 more times, so it gets
 * L / N_live; closed: the bucket is held full; last: nothing changes).
 *
 * Measured: per origin host the replication delay (read here minus event
 * time) and tau, the age of the newest record of a bucket stream when the
 * next one is applied (the longest time another host's spend stayed unseen
 * here), since start or the last POST /api/v1/global/measure.
 *
 * Mode lease (for hard caps; records: docs/events/grant.v1.md): every host
 * adds its demand to its records of the bucket (its spend in the current
 * window W, its rate, the lease it wants); every agent is a member of one
 * consumer group on the global topic, and the member that owns a bucket's
 * partition is its allocator: it grants cumulative per-host leases for each
 * window, summing to at most L = R * W, on the grants topic, which every
 * host reads whole. Each host keeps its spend in the window within its
 * lease by a hold on its local bucket (so every local decider obeys it with
 * no work per request). The invariant and the bound are in global.c
 * ("mode lease") and README "Global limits across hosts".
 *
 * Nothing here is on the admission path: a decision never waits for Kafka or
 * for this thread.
 */
#ifndef LT_AGENT_GLOBAL_H
#define LT_AGENT_GLOBAL_H

#include <stddef.h>
#include <jansson.h>
#include "config.h"

struct lt_global;
struct lt_quota;
struct lt_mbuf;

#define LT_GLOBAL_TYPE "dev.leakytokens.global.v1"
#define LT_GRANT_TYPE "dev.leakytokens.grant.v1"

/*
 * Starts the global-limits thread (g->topic and g->nrules set, Kafka
 * enabled; otherwise *out = NULL and 0). -errno with err set.
 */
int lt_global_start(struct lt_global **out, struct lt_quota *q, const struct lt_kafka_config *k,
		    const struct lt_global_config *g, char *err, size_t errlen);
void lt_global_stop(struct lt_global *g);

/* GET /api/v1/global/status: a new JSON object. */
json_t *lt_global_status(struct lt_global *g);
/* POST /api/v1/global/measure: starts a new measurement (tau and delay maxima). */
void lt_global_measure(struct lt_global *g);
/* The lt_global_* series. */
void lt_global_metrics(struct lt_global *g, struct lt_mbuf *b);

#endif
