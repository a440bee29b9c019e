/* SPDX-License-Identifier: MIT */
/*
 * quota.h - the token quota engine: providers, tier and org limits, the
 * bucket index (who -> slot in lt_slots), and decisions on the shared
 * mmapped buckets. Durable state goes to the store; levels stay in the maps.
 *
 * Buckets, by key:
 *   "u/<tier>/<provider>/<userId>"  a user's pool at a tier (JWT roles)
 *   "o/<provider>/<orgId>"          an org's pool, shared by its users
 *   "k/<keyId>"                     an API key's own limit (all providers)
 *   "r/<tier>/<keyId>"              an API key's request rate ("keyreq" limit of its tier)
 *   "p/<provider>"                  the provider-wide pool ("pool" limit of the provider)
 *
 * Concurrency: one rwlock guards the index and the limit tables; a decision
 * holds it for reading only to find the slot, then CASes the bucket word
 * lock-free. Limit changes (write lock) rebase every affected bucket with the
 * one-CAS protocol of lt_slot.h: levels are kept, never reset.
 */
#ifndef LT_AGENT_QUOTA_H
#define LT_AGENT_QUOTA_H

#include <pthread.h>
#include <stddef.h>
#include "decide.h"
#include "store.h"

#define LT_PROVIDER_MAX 64
#define LT_NAME_MAX 32 /* provider and tier names */

struct lt_quota;

struct lt_quota_maps {
	struct lt_slot *slots; /* mmapped lt_slots */
	struct lt_rate *rates; /* mmapped lt_rates */
	struct lt_usage *usage; /* mmapped lt_usage */
	int keyidx_fd; /* lt_keyidx, or -1 (tests without BPF) */
};

int lt_quota_open(struct lt_quota **q, struct lt_store *st, const struct lt_quota_maps *m,
		  char *err, size_t errlen);
void lt_quota_close(struct lt_quota *q);

/* Providers. */
int lt_quota_provider_known(struct lt_quota *q, const char *name);
int lt_quota_provider_add(struct lt_quota *q, const char *name, char *err, size_t errlen);
int lt_quota_provider_del(struct lt_quota *q, const char *name, char *err, size_t errlen);
/* Calls cb for each provider name, in order; under the read lock. */
void lt_quota_provider_each(struct lt_quota *q, void (*cb)(void *ctx, const char *name), void *ctx);

/*
 * Limits: kind "tier" (name = tier) or "org" (name = org id, "*" = the
 * default for orgs without their own); provider "*" = any provider.
 * Setting one rebases the live buckets it governs (levels kept).
 */
int lt_quota_limit_set(struct lt_quota *q, const char *kind, const char *name, const char *provider,
		       const struct lt_limit *l, char *err, size_t errlen);
int lt_quota_limit_del(struct lt_quota *q, const char *kind, const char *name, const char *provider,
		       char *err, size_t errlen);
int lt_quota_limit_get(struct lt_quota *q, const char *kind, const char *name, const char *provider,
		       struct lt_limit *out);
void lt_quota_limit_each(struct lt_quota *q, const char *kind, const char *name,
			 void (*cb)(void *ctx, const char *name, const char *provider,
				    const struct lt_limit *l),
			 void *ctx);
int lt_quota_tier_exists(struct lt_quota *q, const char *tier);

/*
 * Ensures the bucket for key exists (allocating a slot) with the rate its
 * limits give, and returns its handle in *slot: the slot in the low 20 bits,
 * 12 bits of the slot's owner generation above (lt_keyidx in lt_abi.h). The
 * functions below that take a handle return LT_FREED when the bucket was
 * reclaimed since (look the key up again), never another key's bucket.
 * -ENOENT: no limit governs it. -ENOSPC: the bucket table is full (counted,
 * lt_quota_stats), after one reclaim pass. -EIO: the store failed; nothing
 * changed. key_limit is used for "k/" keys.
 */
int lt_quota_bucket(struct lt_quota *q, const char *key, const struct lt_limit *key_limit,
		    __u32 *slot, char *err, size_t errlen);

/*
 * The decisions of lib/decide.h on a handle of lt_quota_bucket.
 * One decision of cost tokens on slot at now: an lt_verdict, and the view.
 * LT_CONTENDED (every CAS lost to others) and LT_FREED leave the view empty;
 * the API answers 503 with Retry-After. After LT_ADMIT, *resv is the
 * reservation for lt_quota_refund / lt_quota_undo.
 */
int lt_quota_consume(struct lt_quota *q, __u32 slot, __u64 cost, __u64 now_ns, struct lt_view *v,
		     struct lt_slot_seen *resv);
/*
 * Gives back up to tokens of a reservation, only what it still adds to the
 * level (lt_slot_refund): returns the whole tokens given back. Can be called
 * several times on one reservation (the gateway settles usage).
 */
__u64 lt_quota_refund(struct lt_quota *q, struct lt_slot_seen *resv, __u64 tokens, __u64 now_ns);
/* All-or-nothing over several buckets: takes a reservation back entirely. */
void lt_quota_undo(struct lt_quota *q, struct lt_slot_seen *resv, __u64 now_ns);
/* The view without consuming: 0, or LT_FREED / LT_CONTENDED (view empty). */
int lt_quota_peek(struct lt_quota *q, __u32 slot, __u64 now_ns, struct lt_view *v);
/*
 * The view of the bucket for key, never creating it: a read never allocates
 * a slot. A key without a bucket reads as empty (the full quota) at the
 * limit that would govern it, with *slot = 0. -ENOENT: no limit governs it.
 * key_limit is used for "k/" keys, as in lt_quota_bucket.
 */
int lt_quota_peek_key(struct lt_quota *q, const char *key, const struct lt_limit *key_limit,
		      __u64 now_ns, struct lt_view *v, __u32 *slot);
void lt_quota_usage(struct lt_quota *q, __u32 slot, struct lt_usage *out);

/* Rebases a "k/" bucket to new key limits. */
int lt_quota_key_limit(struct lt_quota *q, const char *key, const struct lt_limit *l);

/*
 * Calls cb(ctx, key, handle) for every bucket whose key starts with prefix,
 * under the read lock (cb must not call back into the quota engine's write
 * side): for the global-limits thread (global.h), not for the request path.
 */
void lt_quota_each(struct lt_quota *q, const char *prefix,
		   void (*cb)(void *ctx, const char *key, __u32 handle), void *ctx);
/*
 * Puts tokens of spend that no local admission decided (another host's, a
 * hold) on the bucket of handle: lt_decide_debit, saturating at max_caps
 * capacities. Returns the tokens added; *resv (may be NULL) what was added,
 * for lt_quota_undebit; *verdict 0, LT_FREED or LT_CONTENDED.
 */
__u64 lt_quota_debit(struct lt_quota *q, __u32 handle, __u64 tokens, __u32 max_caps, __u64 now_ns,
		     struct lt_slot_seen *resv, int *verdict);
/* Gives back what a debit still adds to the level (a hold lifted). */
__u64 lt_quota_undebit(struct lt_quota *q, struct lt_slot_seen *resv, __u64 now_ns);

/* Buckets in use, of LT_MAX_SLOTS. */
__u32 lt_quota_buckets(struct lt_quota *q);

/*
 * Bounded state. A bucket that has been empty for idle_ns is reclaimed: its
 * slot is freed (lt_slot_free_if_empty), its lt_keyidx entry and store row
 * deleted, and the slot reused for another key. An empty bucket holds no
 * level, so forgetting it never resets a limit, however short idle_ns is.
 * max_buckets bounds the slots used (tests make it small).
 */
#define LT_QUOTA_IDLE_DEFAULT_NS 600000000000ULL /* 10 min */
void lt_quota_set_limits(struct lt_quota *q, __u32 max_buckets, __u64 idle_ns);
/* One pass over up to scan index entries (0 = all); returns buckets freed. */
long lt_quota_reclaim(struct lt_quota *q, __u64 now_ns, __u32 scan);

struct lt_quota_stats {
	__u64 buckets; /* in use */
	__u64 max_buckets;
	__u64 table_full; /* new buckets refused because the table was full */
	__u64 reclaimed; /* buckets freed since start */
};
void lt_quota_stats(struct lt_quota *q, struct lt_quota_stats *st);

/* A bucket and the share of its capacity in use (lt_quota_fullest). */
struct lt_fill {
	char key[LT_BUCKET_KEY_LEN];
	double ratio; /* (capacity - remaining) / capacity, 0..1 */
};
/*
 * The up to k fullest limited buckets at now_ns, fullest first, into out[k]; empty and
 * unlimited ones are left out. Reads every bucket (O(buckets)) under the read lock: for
 * /metrics (the "tenants near their limit" alert), not for the request path.
 */
unsigned lt_quota_fullest(struct lt_quota *q, __u64 now_ns, struct lt_fill *out, unsigned k);

#endif
