/* SPDX-License-Identifier: MIT */
/*
 * store.h - the control plane's durable state in SQLite (WAL): providers,
 * tier and org limits, the bucket index (tenant -> slot in lt_slots), API
 * keys and penalties. Bucket levels are not here: they live in the pinned
 * lt_slots map, so the two together resume exactly after a restart.
 */
#ifndef LT_AGENT_STORE_H
#define LT_AGENT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>
#include <linux/types.h>
#include "apikeys.h" /* struct lt_limit, struct lt_key_rec */

struct lt_store {
	sqlite3 *db;
};

/* A capacity and a leak rate, as stored (tokens per period). */
int lt_store_open(struct lt_store *s, const char *path, char *err, size_t errlen);
void lt_store_close(struct lt_store *s);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK: a change is all or nothing. */
int lt_store_begin(struct lt_store *s);
int lt_store_commit(struct lt_store *s);
void lt_store_rollback(struct lt_store *s);

/* kind: "tier" (name = tier) or "org" (name = org UUID, "*" = default); provider "*" = any */
int lt_store_limit_put(struct lt_store *s, const char *kind, const char *name, const char *provider,
		       const struct lt_limit *l);
int lt_store_limit_del(struct lt_store *s, const char *kind, const char *name,
		       const char *provider);
typedef int (*lt_limit_cb)(void *ctx, const char *kind, const char *name, const char *provider,
			   const struct lt_limit *l);
int lt_store_limit_each(struct lt_store *s, lt_limit_cb cb, void *ctx);

int lt_store_provider_put(struct lt_store *s, const char *name);
int lt_store_provider_del(struct lt_store *s, const char *name);
int lt_store_provider_each(struct lt_store *s, int (*cb)(void *ctx, const char *name), void *ctx);

int lt_store_bucket_put(struct lt_store *s, const char *key, uint32_t slot);
int lt_store_bucket_del(struct lt_store *s, const char *key);
int lt_store_bucket_each(struct lt_store *s, int (*cb)(void *ctx, const char *key, uint32_t slot),
			 void *ctx);

int lt_store_key_put(struct lt_store *s, const struct lt_key_rec *k);
int lt_store_key_each(struct lt_store *s, int (*cb)(void *ctx, const struct lt_key_rec *k),
		      void *ctx);

int lt_store_penalty_put(struct lt_store *s, const char *prefix, int64_t until_unix,
			 uint32_t strikes, uint32_t reason);
int lt_store_penalty_del(struct lt_store *s, const char *prefix);
int lt_store_penalty_each(struct lt_store *s,
			  int (*cb)(void *ctx, const char *prefix, int64_t until_unix,
				    uint32_t strikes, uint32_t reason),
			  void *ctx);

/* meta key/value: "seeded" etc. */
int lt_store_meta_get(struct lt_store *s, const char *k, char *v, size_t vlen);
int lt_store_meta_put(struct lt_store *s, const char *k, const char *v);

#endif
