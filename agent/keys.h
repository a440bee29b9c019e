/* SPDX-License-Identifier: MIT */
/*
 * keys.h - API keys: created with a secret shown once ("lk_<id>.<random>"),
 * stored as a SHA-256 hash, limited by their own bucket ("k/<id>"), revocable
 * and expiring. A key authenticates as its owner at its tier.
 */
#ifndef LT_AGENT_KEYS_H
#define LT_AGENT_KEYS_H

#include <pthread.h>
#include "quota.h"
#include "store.h"

#define LT_KEY_SECRET_LEN 96

struct lt_keys;

int lt_keys_open(struct lt_keys **k, struct lt_store *st, struct lt_quota *q, char *err,
		 size_t errlen);
void lt_keys_close(struct lt_keys *k);

/* Fills rec->id and secret (NUL-terminated); rec's other fields are input. */
int lt_keys_create(struct lt_keys *k, struct lt_key_rec *rec, char *secret, size_t slen);
/* 0 and the record for a valid, unrevoked, unexpired secret; -EACCES otherwise. */
int lt_keys_auth(struct lt_keys *k, const char *secret, int64_t now_unix, struct lt_key_rec *out);
int lt_keys_get(struct lt_keys *k, const char *id, struct lt_key_rec *out);
/* Replaces name/limit/expiry of id (limits apply live). */
int lt_keys_update(struct lt_keys *k, const struct lt_key_rec *rec);
int lt_keys_revoke(struct lt_keys *k, const char *id);
/*
 * Makes id exactly rec (created if new): what another host published
 * (sync.h). The store first; then the records, the key's bucket and
 * lt_apikey. -errno: as it was before.
 */
int lt_keys_put(struct lt_keys *k, const struct lt_key_rec *rec);
/*
 * Writes every key to the pinned lt_apikey map (fd) and removes entries the
 * store does not have; from then on every create, update and revoke writes
 * it too (lt_abi.h). -errno with err set.
 */
int lt_keys_publish(struct lt_keys *k, int map_fd, char *err, size_t errlen);
/*
 * The word to bump after every write to lt_apikey: &keys_gen of the mmapped
 * lt_config (lt_abi.h). Readers that cache key records (the gateway) drop
 * their cache when it moves, so a revocation applies on their next request.
 */
void lt_keys_set_gen(struct lt_keys *k, __u64 *keys_gen);
void lt_keys_each(struct lt_keys *k, void (*cb)(void *ctx, const struct lt_key_rec *r), void *ctx);

#endif
