/* SPDX-License-Identifier: MIT */
/*
 * apikeys.h - API-key records by key id, for the request path of the API
 * servers (liblt: the agent now, the gateway next).
 *
 * A lookup is O(1) and takes no lock: an open-addressing index of record
 * pointers, published with release stores, and a sequence count per record
 * so that a reader copies a record that a writer is changing either before
 * or after the change, never half of each. Writers (admin operations) are
 * serialised by the caller. Records are never removed (a revoked key stays,
 * with revoked set), so a reader never meets a freed record; an index
 * outgrown by a resize is kept until lt_apikeys_free (the sizes double, so
 * all of them together are at most the size of the last).
 */
#ifndef LT_APIKEYS_H
#define LT_APIKEYS_H

#include <stdint.h>
#include <linux/types.h>

struct lt_limit {
	__u64 capacity; /* tokens */
	__u64 tokens; /* leak: tokens per period_ns */
	__u64 period_ns;
};

struct lt_key_rec {
	char id[40]; /* "lk_" + hex */
	char name[128];
	char owner[64]; /* user UUID */
	char tier[32];
	char org[64]; /* "" = none */
	unsigned char hash[32]; /* SHA-256 of the secret */
	struct lt_limit limit;
	int64_t expires_at; /* unix s, 0 = never */
	int64_t created_at; /* unix s */
	int revoked;
	int admin; /* 1: authenticates with the admin right (granted by a JWT admin only) */
};

struct lt_apikey_node {
	unsigned seq; /* odd while a writer changes rec */
	struct lt_key_rec rec;
};

struct lt_apikey_idx {
	unsigned mask; /* slots - 1, a power of two */
	struct lt_apikey_node *slot[]; /* NULL = empty */
};

struct lt_apikeys {
	struct lt_apikey_idx *idx; /* read with acquire loads */
	struct lt_apikey_node **all; /* creation order; writers only */
	int n, cap;
	struct lt_apikey_idx **old; /* outgrown indexes, freed at the end */
	int nold;
};

int lt_apikeys_init(struct lt_apikeys *t);
void lt_apikeys_free(struct lt_apikeys *t);
/* Lock-free, from any thread: 0 and a consistent copy, or -ENOENT. */
int lt_apikeys_get(struct lt_apikeys *t, const char *id, struct lt_key_rec *out);
/* Writers, serialised by the caller: insert, or replace the record of r->id. */
int lt_apikeys_put(struct lt_apikeys *t, const struct lt_key_rec *r);

/*
 * The pinned lt_apikey map (lt_abi.h): how a process other than the agent
 * reads API-key records without SQLite, and how the agent writes them.
 */
#include "lt_abi.h"

/* The map's key and value for r (name and created_at are not in the map). */
void lt_apikey_to_map(const struct lt_key_rec *r, struct lt_apikey_key *k, struct lt_apikey_val *v);
/*
 * Writes r. If that fails for a revoked record, the entry is deleted instead
 * (fail closed) and 0 returned; otherwise -errno.
 */
int lt_apikey_map_put(int fd, const struct lt_key_rec *r);
/* Removes id (-ENOENT if absent). */
int lt_apikey_map_del(int fd, const char *id);
/* 0 and the record of id (name "", created_at 0), or -ENOENT / -errno. */
int lt_apikey_map_get(int fd, const char *id, struct lt_key_rec *out);
/* lt_apikey_map_get as an lt_apikey_get_fn (auth.h): ctx points to the fd. */
int lt_apikey_map_fn(void *ctx, const char *id, struct lt_key_rec *out);

#endif
