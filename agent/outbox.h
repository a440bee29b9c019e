/* SPDX-License-Identifier: MIT */
/*
 * outbox.h - events to Apache Kafka through a transactional outbox in SQLite
 * (issue #10). One module for every topic the agent publishes (usage events
 * now; config changes and consumption counters later), each row naming its
 * topic.
 *
 * Write side: the code that changes state appends the event rows on its own
 * connection inside its own transaction (lt_outbox_put), so the state and
 * its event commit together or not at all. The database runs WAL with
 * synchronous=FULL (the caller sets it on its connection): a committed event
 * survives a power cut.
 *
 * Send side: one thread with its own connection and one librdkafka producer
 * (enable.idempotence=true, acks=all) reads rows in id order and produces
 * them; a row is deleted only when its delivery report says the broker
 * acknowledged it. A failed delivery sends again every row left, once
 * nothing is in flight: at least once, deduplicated downstream on
 * ce_source + ce_id (the producer's idempotence already removes its own
 * retries' duplicates). Nothing on the write side ever waits for Kafka:
 * unconfigured, down or slow, the rows wait in the table.
 *
 * The table is bounded (kafka.outbox_max_events, in events): a commit that
 * would pass the bound deletes the oldest rows in the same transaction and
 * counts their events (lt_outbox_dropped_total{reason="full"}); rows are
 * whole, so a pack can take up to 1023 events more than the excess. Newest-kept, like the request
 * log and the lt_reqlog ring: the data that is still useful when the broker
 * comes back, and the write side is never refused, so admission never is.
 *
 * Envelope: CloudEvents 1.0, Kafka protocol binding, binary mode. The row's
 * data is the message value (content-type: application/json); the
 * attributes are headers: ce_specversion "1.0", ce_id "<source>-<store>-<seq>"
 * (store: 8 hex digits drawn once per database, so a wiped state dir never
 * reuses an id; seq: the event's sequence in the outbox, never reused), ce_source, ce_type, ce_time (RFC 3339 UTC), ce_subject when
 * set. The Kafka key is the row's key (the tenant for usage events).
 */
#ifndef LT_AGENT_OUTBOX_H
#define LT_AGENT_OUTBOX_H

#include <stddef.h>
#include <linux/types.h>
#include <sqlite3.h>
#include "config.h" /* struct lt_kafka_config */

struct lt_outbox;
struct lt_mbuf;

struct lt_outbox_row {
	const char *topic; /* NULL = kafka.topic */
	const char *key; /* Kafka key; one key's events stay in order */
	const char *type; /* ce_type */
	const char *subject; /* ce_subject; NULL = none */
	__u64 time_ns; /* ce_time: CLOCK_REALTIME ns of the occurrence */
	const char *data; /* the JSON value */
	size_t len;
};

/*
 * The outbox table and its store id in db (the caller's connection; no
 * transaction open). Idempotent.
 */
int lt_outbox_schema(sqlite3 *db, char *err, size_t errlen);

/*
 * The send side for the database at path (its table made by
 * lt_outbox_schema). k->enabled must be set. Starts the producer thread; a
 * broker that cannot be reached is not an error (the rows wait). 0 or
 * -errno with err set.
 */
int lt_outbox_start(struct lt_outbox **out, const char *path, const struct lt_kafka_config *k,
		    char *err, size_t errlen);
/* Stops the thread after a short final flush (up to 2 s), frees. NULL is fine. */
void lt_outbox_stop(struct lt_outbox *ob);

/*
 * Write side, on db (one connection, one thread): prepares the insert once.
 * lt_outbox_put appends a row inside the caller's open transaction;
 * lt_outbox_trim, called before COMMIT, deletes the oldest rows beyond the
 * bound (the rows put in this transaction counted) and returns how many.
 * After a COMMIT the caller reports it: lt_outbox_committed (rows put, rows
 * trimmed). A rolled-back transaction reports nothing: its caller keeps the
 * source of the events and tries again.
 */
int lt_outbox_put(struct lt_outbox *ob, sqlite3 *db, const struct lt_outbox_row *row);
long lt_outbox_trim(struct lt_outbox *ob, sqlite3 *db, unsigned put);
void lt_outbox_committed(struct lt_outbox *ob, unsigned put, long trimmed);
/*
 * The same, packed: lt_outbox_add appends an event to a pack in memory and
 * writes a pack as one row (up to 1024 events, 1 MiB) when it is full, inside
 * the caller's open transaction; lt_outbox_add_done writes the rest, before
 * lt_outbox_trim and COMMIT, and says how many events this transaction
 * wrote (for lt_outbox_trim and lt_outbox_committed). After a ROLLBACK:
 * lt_outbox_add_discard. A pack's events keep their own key, subject, time
 * and data; the row's id is its last event's sequence (outbox.c). 0 or -errno.
 */
int lt_outbox_add(struct lt_outbox *ob, sqlite3 *db, const struct lt_outbox_row *row);
int lt_outbox_add_done(struct lt_outbox *ob, sqlite3 *db, unsigned *events);
void lt_outbox_add_discard(struct lt_outbox *ob);
/* Finalizes the write side's statements: before the caller closes db. */
void lt_outbox_release(struct lt_outbox *ob);
/*
 * Asks the send thread to checkpoint the database's -wal (PASSIVE, on its
 * own connection), so the write side's commits never wait for one: a
 * checkpoint copies pages and fsyncs the file, tens of ms under load, during
 * which events would wait in memory. Any thread; NULL is fine.
 */
void lt_outbox_checkpoint(struct lt_outbox *ob);
/*
 * A busy handler for the two writers of the outbox's database: it tries
 * again every 100 us, up to ms in all. SQLite's own (busy_timeout) sleeps
 * 1, 2, 5 ... then 100 ms between tries, so a lock held for a moment (the
 * other side's short transaction, its thread preempted on a busy CPU) cost
 * the writer tens of ms while events piled up in memory.
 */
int lt_outbox_busy_wait(sqlite3 *db, unsigned ms);
/* Events not written at all (the intake was full), counted with reason. */
void lt_outbox_dropped(struct lt_outbox *ob, const char *reason, unsigned n);

/* The lt_outbox_* and lt_kafka_* series in the Prometheus text format. */
void lt_outbox_metrics(struct lt_outbox *ob, struct lt_mbuf *b);

/* Rows waiting (not acknowledged yet). */
__u64 lt_outbox_backlog(struct lt_outbox *ob);

/* "2026-12-02T05:10:00.123456Z" */
void lt_outbox_time(__u64 ns, char *buf, size_t len);

#endif
