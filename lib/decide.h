/* SPDX-License-Identifier: MIT */
/*
 * decide.h - one decision on one L7 bucket, and what the client is told
 * about it (liblt: the agent's consume API and the gateway's admission run
 * this same code).
 *
 * Every process that admits (leaky-agent, leaky-gateway) maps lt_slots,
 * lt_rates and lt_usage and decides on a bucket named by (slot, gen): gen is
 * the slot's owner generation as the caller found it (lt_keyidx's value,
 * or the agent's own index), compared under gen_mask with lt_usage[slot].gen
 * before and after the CAS (lt_slot_consume_owned, lt_slot.h), so a stale
 * handle gets LT_FREED and never charges another key's bucket.
 *
 * A handle packs (slot, 12 bits of gen) in one __u32, for callers that keep
 * one word per bucket (the agent's lt_quota_bucket); lt_keyidx's full gen
 * is used with gen_mask ~0U.
 *
 * Progress: each function makes at most LT_DECIDE_TRIES protocol attempts of
 * LT_CAS_TRIES CASes each, then reports LT_CONTENDED (others made progress).
 * No system call, no lock, no allocation.
 *
 * Usage counters (lt_usage): an admission adds 1 decision and cost tokens, a
 * denial 1 rejection; a refund takes back the tokens it gave back, an undo
 * the decision as well (the request was never admitted).
 */
#ifndef LT_DECIDE_H
#define LT_DECIDE_H

#include "lt_slot.h"

/* lt_slot_consume attempts (of LT_CAS_TRIES CASes each) before LT_CONTENDED. */
#define LT_DECIDE_TRIES 4

/* A bucket handle: the slot in the low 20 bits, 12 bits of its owner gen above. */
#define LT_HANDLE_GEN_SHIFT 20
#define LT_HANDLE_GEN_MASK 0xfffU
_Static_assert(LT_MAX_SLOTS == 1U << LT_HANDLE_GEN_SHIFT, "handle layout");

static inline __u32 lt_handle(__u32 slot, __u32 gen)
{
	return (slot & (LT_MAX_SLOTS - 1)) | (gen & LT_HANDLE_GEN_MASK) << LT_HANDLE_GEN_SHIFT;
}

static inline __u32 lt_handle_slot(__u32 h)
{
	return h & (LT_MAX_SLOTS - 1);
}

static inline __u32 lt_handle_gen(__u32 h)
{
	return h >> LT_HANDLE_GEN_SHIFT;
}

/* The mmapped maps a decision touches. */
struct lt_decide_maps {
	struct lt_slot *slots; /* lt_slots */
	struct lt_rate *rates; /* lt_rates */
	struct lt_usage *usage; /* lt_usage */
};

/* What a decision saw: for response bodies and the RateLimit fields. */
struct lt_view {
	__u64 capacity; /* tokens */
	__u64 remaining; /* tokens that fit now */
	__u64 retry_after_ns; /* until the request would fit (denied only); ~0 = beyond 2^64 ns */
	__u64 retry_after_s; /* the same in seconds, rounded up, exact to 2^64 s */
	__u64 full_in_ns; /* until the bucket is empty again (full quota); ~0 = beyond 2^64 ns */
	__u64 full_in_s; /* the same in seconds, rounded up, exact to 2^64 s */
	__u64 leak_tokens; /* leak rate: leak_tokens per leak_period_ns */
	__u64 leak_period_ns;
	__u32 slot;
	int unlimited;
};

/*
 * The view of a bucket of rate r whose word is tat, at now_ns, for a
 * request of cost tokens that got verdict (retry_after_* for LT_DENY only,
 * else 0). tat 0 is an empty bucket (one not made yet).
 */
void lt_view_fill(const struct lt_rate *r, __u64 tat, __u64 now_ns, __u64 cost, int verdict,
		  struct lt_view *out);

/*
 * One decision of cost tokens on (slot, gen) at now_ns: an lt_verdict and
 * the view. LT_CONTENDED and LT_FREED leave the view empty (but for slot).
 * After LT_ADMIT, *resv is the reservation for lt_decide_refund /
 * lt_decide_undo (a plain copy: it points at nothing).
 */
int lt_decide_consume(const struct lt_decide_maps *m, __u32 slot, __u32 gen, __u32 gen_mask,
		      __u64 cost, __u64 now_ns, struct lt_view *v, struct lt_slot_seen *resv);

/*
 * Gives back up to tokens of a reservation, only what it still adds to the
 * level (lt_slot_refund): returns the whole tokens given back. Can be called
 * several times on one reservation (settling usage in parts); tokens ~0 =
 * all that is left.
 */
__u64 lt_decide_refund(const struct lt_decide_maps *m, struct lt_slot_seen *resv, __u64 tokens,
		       __u64 now_ns);

/* All-or-nothing over several buckets: takes a reservation back entirely. */
void lt_decide_undo(const struct lt_decide_maps *m, struct lt_slot_seen *resv, __u64 now_ns);

/*
 * Charges tokens that no reservation covered (lt_slot_charge: a debt that
 * may take the level above capacity, up to twice it): returns the tokens
 * added, *resv what was added (refundable like a reservation). *verdict
 * (may be NULL): 0, LT_FREED or LT_CONTENDED.
 */
__u64 lt_decide_charge(const struct lt_decide_maps *m, __u32 slot, __u32 gen, __u32 gen_mask,
		       __u64 tokens, __u64 now_ns, struct lt_slot_seen *resv, int *verdict);

/*
 * Puts tokens on the bucket that no local decision admitted (another host's
 * spend on a global bucket, an on_stale hold: agent/global.c), with
 * lt_slot_debit saturating at max_caps capacities. Unlike lt_decide_charge it
 * leaves lt_usage alone: lt_usage.tokens stays this host's own spend, which
 * is what the host publishes. Returns the tokens added; *verdict (may be
 * NULL): 0, LT_FREED or LT_CONTENDED.
 */
__u64 lt_decide_debit(const struct lt_decide_maps *m, __u32 slot, __u32 gen, __u32 gen_mask,
		      __u64 tokens, __u32 max_caps, __u64 now_ns, struct lt_slot_seen *resv,
		      int *verdict);

/* Gives back what a debit (lt_decide_debit's *resv) still adds to the level; lt_usage untouched. */
__u64 lt_decide_undebit(const struct lt_decide_maps *m, struct lt_slot_seen *resv, __u64 now_ns);

/* The view without consuming: 0, or LT_FREED / LT_CONTENDED (view empty). */
int lt_decide_peek(const struct lt_decide_maps *m, __u32 slot, __u32 gen, __u32 gen_mask,
		   __u64 now_ns, struct lt_view *v);

#endif
