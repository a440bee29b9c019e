/* SPDX-License-Identifier: MIT */
/*
 * resolve.h - bucket key -> slot for a process other than the agent (the
 * gateway), with a process-local cache (liblt).
 *
 * The agent is the only allocator of bucket slots. It alone writes
 * lt_keyidx, and it publishes an entry only after its store (SQLite) has the
 * bucket (#8 item 6), so the map and the store never disagree and there is
 * one source of truth. Another process:
 *   1. looks the key up in its cache: a hit costs no system call;
 *   2. on a miss, looks it up in the pinned lt_keyidx (one syscall) and
 *      caches what it finds;
 *   3. if lt_keyidx has no entry, asks the agent to create the bucket
 *      (POST /api/v1/admin/buckets {"key"}, on the agent's local API, with
 *      an ADMIN credential), then reads lt_keyidx again: the agent's answer
 *      only says "look again", the map is what is believed.
 * Why not allocate here too (CAS a free slot, insert with BPF_NOEXIST)? The
 * limit of a new bucket comes from the agent's store (tiers, org quotas,
 * keys), the store must hold the bucket before lt_keyidx shows it, and the
 * reclaim sweep runs in the agent: a second allocator would need all three.
 *
 * kill -9: this process holds no allocation state (its cache is only a
 * copy of lt_keyidx), so killing it loses nothing. Killing the agent leaves
 * every existing bucket usable (steps 1-2 need only the pins); a new key is
 * refused with -EAGAIN (answer 503, Retry-After) until the agent is back,
 * and nothing half-made is left: the agent publishes a key last.
 *
 * Reclaimed buckets: the agent may free an idle empty bucket and give its
 * slot to another key, bumping lt_usage[slot].gen first. The cache holds
 * the whole lt_keyidx value (slot and the generation the agent wrote with
 * it); a hit whose generation no longer matches lt_usage (mmapped, no
 * system call) is dropped and looked up again. That check is advisory (the
 * slot can change hands right after it): decide with lt_slot_consume_owned
 * / lt_slot_peek_owned (lt_slot.h) and r->usage, and on LT_FREED call
 * lt_bucket_forget() and resolve again. So a stale entry never charges
 * another tenant and no cache flush is needed.
 *
 * The cache is shared by the process's threads without a lock: each entry
 * is a sequence-counted copy (odd while written; a writer that finds it
 * odd does not cache), direct-mapped by key hash.
 */
#ifndef LT_RESOLVE_H
#define LT_RESOLVE_H

#include <stddef.h>
#include "lt_abi.h"

#define LT_RCACHE_SLOTS 4096 /* entries, a power of two */

struct lt_rcache_ent {
	unsigned seq; /* odd while a writer changes the entry */
	struct lt_keyidx_val val;
	char key[LT_BUCKET_KEY_LEN]; /* "" = empty */
};

struct lt_resolver {
	int keyidx_fd; /* pinned lt_keyidx */
	char agent[64]; /* IPv4 ADDR:PORT of the agent's API */
	char authorization[2048]; /* header value for the agent, e.g. "Bearer <ADMIN JWT>" */
	int timeout_ms; /* per call to the agent */
	struct lt_rcache_ent *cache; /* LT_RCACHE_SLOTS */
	struct lt_usage *usage; /* mmapped lt_usage: the slots' owner generations */
	size_t usage_len;
	/* relaxed counters, for tests and metrics */
	unsigned long long hits, stale, map_lookups, agent_calls;
};

/* Opens <pin_dir>/lt_keyidx. agent and authorization may be NULL (no creation). */
int lt_resolver_init(struct lt_resolver *r, const char *pin_dir, const char *agent,
		     const char *authorization, char *err, size_t errlen);
void lt_resolver_free(struct lt_resolver *r);

/*
 * key (lt_bucket_key's form) -> its lt_keyidx value. 0, or
 *   -ENOENT  no limit governs this key (the agent said 403): refuse the request
 *   -EINVAL  not a bucket key the agent accepts (400)
 *   -EAGAIN  the agent could not be asked or could not create it now
 *            (down, table full, store failing): try again later (503)
 *   -EACCES  the agent refused our credential
 * err says why.
 */
int lt_bucket_resolve(struct lt_resolver *r, const char *key, struct lt_keyidx_val *out, char *err,
		      size_t errlen);

/* Drops key from the cache (after a decision said its slot is not its own). */
void lt_bucket_forget(struct lt_resolver *r, const char *key);

#endif
