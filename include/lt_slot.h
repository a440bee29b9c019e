/* SPDX-License-Identifier: MIT */
/*
 * lt_slot.h - the L7 slot protocol, both halves, in one place: decide, peek
 * and refund (every process that admits: agent, gateway) and rebase, assign
 * and free (the owner of lt_rates: the agent). User space only (no BPF
 * program touches lt_slots); it works on the mmapped lt_slots and lt_rates
 * of lt_abi.h and makes no system call.
 *
 * The word. A slot (struct lt_slot, 16 bytes, 16-aligned) is one value of
 * two halves that only ever change together, by one 16-byte compare-and-swap
 * (lock cmpxchg16b):
 *   tat   the lt_bucket word, in units of lt_rates[rid]. A real tat is below
 *         2^63 (tat <= s(2^60 ns) + capacity < 2^63); LT_TAT_FREE (2^63) marks
 *         a freed slot, and any other value >= 2^63 (LT_TAT_LEGACY_BUSY, left
 *         by agents before this protocol) is read as a full bucket.
 *   meta  bits  0..15  rid: index into lt_rates
 *         bits 16..23  gen: bumped by every change of rid (rebase, assign, free)
 *         bits 24..63  refunded: every refund adds ceil(units >> q) to it, mod
 *                      2^40, q = lt_refund_shift(rate); see lt_slot_refund.
 *
 * So the rate a word is measured in is part of the word: a rebase is a single
 * CAS from (old tat, old rid) to (rebased tat, new rid). No writer ever holds
 * a slot: a process killed or stopped at any instruction leaves either the
 * old value or the new one, and nothing anybody waits for.
 *
 * Rates. lt_rates[rid] is written (by the agent) only while no slot names
 * rid, and is published by the CAS that moves a slot onto it. A decider
 * copies rates[rid] and then validates that the slot still names (rid, gen):
 * an admission by its CAS, which compares both halves; a deny, a peek or an
 * unlimited admission by reading meta again after the copy (a seqlock read
 * whose sequence is meta). So no verdict ever comes from an old word paired
 * with a new rate, or from a rate entry rewritten under the reader (a freed
 * rid that is reused changes the slot's gen). Limit: gen is 8 bits, so a
 * reader stopped across exactly 256k rate changes of its one slot could be
 * fooled; refunded makes it 2^40 refunds on top.
 *
 * Progress. Every function here makes a bounded number of attempts
 * (LT_CAS_TRIES, LT_SLOT_OWNER_TRIES) and then returns LT_CONTENDED /
 * -EAGAIN: each lost CAS means another process made progress (lock-free),
 * and the caller gives its defined answer (the agent: 503 + Retry-After).
 *
 * Time. now_ns is CLOCK_MONOTONIC read once per decision by the caller. The
 * bound C + R*t holds over decision times (the clock reads). Measured in the
 * real time of the CASes instead, a decider that read its clock d ns before
 * its CAS acts as of d ns ago: over any real-time window t the admitted total
 * is at most C + R*(t + d), d the longest read-to-CAS delay (a preempted
 * decider's d is its preemption). tests/unit/test_slot.c shows both.
 */
#ifndef LT_SLOT_H
#define LT_SLOT_H

#ifdef __bpf__
#error "lt_slot.h is user space only: BPF programs do not touch lt_slots"
#endif

#include <errno.h>
#include "lt_abi.h"

#define LT_TAT_LIMIT (1ULL << 63) /* a real tat is below this */
#define LT_TAT_FREE (1ULL << 63) /* a freed slot (lt_slot_free_if_empty) */
#define LT_TAT_LEGACY_BUSY (~0ULL) /* the old protocol's lock, read as "full" */

#define LT_META_RID_MASK 0xffffULL
#define LT_META_GEN_SHIFT 16
#define LT_META_REF_SHIFT 24
#define LT_META_REF_BITS 40
#define LT_META_ID_MASK 0xffffffULL /* rid and gen: which rate, which epoch */
#define LT_REF_UNITS_BITS 36 /* cap_units >> lt_refund_shift < 2^36 */
#define LT_REF_STALE (1ULL << 39) /* refunded moved this far: the record is void */

/* Bound on the owner's CAS attempts (rebase, assign, free). */
#ifndef LT_SLOT_OWNER_TRIES
#define LT_SLOT_OWNER_TRIES 4096
#endif

/* Tests define it to act inside a decider's read-validate window. */
#ifndef LT_SLOT_RACE_HOOK
#define LT_SLOT_RACE_HOOK(s) \
	do {                 \
	} while (0)
#endif

_Static_assert(LT_MAX_RATES == 1 << 16, "rid is 16 bits of meta");
_Static_assert(LT_MAX_SLOTS && !(LT_MAX_SLOTS & (LT_MAX_SLOTS - 1)), "slot mask");

static __always_inline __u32 lt_meta_rid(__u64 meta)
{
	return (__u32)(meta & LT_META_RID_MASK);
}

static __always_inline __u32 lt_meta_gen(__u64 meta)
{
	return (__u32)(meta >> LT_META_GEN_SHIFT) & 0xff;
}

static __always_inline __u64 lt_meta_refunded(__u64 meta)
{
	return meta >> LT_META_REF_SHIFT;
}

/* The same refunded count on rate rid, in the next gen: every rate change. */
static __always_inline __u64 lt_meta_move(__u64 meta, __u32 rid)
{
	__u64 gen = (lt_meta_gen(meta) + 1) & 0xff;

	return (meta & ~LT_META_ID_MASK) | (gen << LT_META_GEN_SHIFT) | (rid & LT_META_RID_MASK);
}

/*
 * The one write primitive: if *s is (*tat, *meta), make it (ntat, nmeta) and
 * return 1; otherwise return 0 with (*tat, *meta) = the current value, read
 * atomically. Full barrier either way.
 */
static __always_inline int lt_slot_cas(struct lt_slot *s, __u64 *tat, __u64 *meta, __u64 ntat,
				       __u64 nmeta)
{
#if defined(__x86_64__)
	__u64 t = *tat, m = *meta;
	__u8 ok;

	__asm__ __volatile__("lock cmpxchg16b %1\n\tsete %0"
			     : "=q"(ok), "+m"(*s), "+a"(t), "+d"(m)
			     : "b"(ntat), "c"(nmeta)
			     : "memory", "cc");
	*tat = t;
	*meta = m;
	return ok;
#else
	unsigned __int128 exp = ((unsigned __int128)*meta << 64) | *tat;
	unsigned __int128 nv = ((unsigned __int128)nmeta << 64) | ntat;
	int ok = __atomic_compare_exchange_n((unsigned __int128 *)s, &exp, nv, 0, __ATOMIC_SEQ_CST,
					     __ATOMIC_SEQ_CST);

	*tat = (__u64)exp;
	*meta = (__u64)(exp >> 64);
	return ok;
#endif
}

/* An atomic snapshot of both halves (a CAS that changes nothing). */
static __always_inline void lt_slot_read(struct lt_slot *s, __u64 *tat, __u64 *meta)
{
	*tat = __atomic_load_n(&s->tat, __ATOMIC_RELAXED);
	*meta = __atomic_load_n(&s->meta, __ATOMIC_RELAXED);
	lt_slot_cas(s, tat, meta, *tat, *meta);
}

/*
 * What a decision saw, validated as one consistent (word, rate) pair. After
 * LT_ADMIT it is also the reservation that lt_slot_refund needs: keep it
 * until the request is settled (a copy is fine: it points at nothing, but
 * refund through one copy only: each refund updates cost_units and
 * under_units in the copy it is given, and a second copy that did not see
 * them would give back again and count the first copy's refund as its own).
 */
struct lt_slot_seen {
	struct lt_rate rate; /* lt_rates[rid] as decided on */
	__u64 tat; /* after LT_ADMIT: the word our CAS wrote; else the word decided on */
	__u64 meta; /* the meta decided on (rid, gen, refunded) */
	__u64 cost_units; /* LT_ADMIT: units still refundable (0 if nothing to give back) */
	/*
	 * LT_ADMIT: units of level under the reservation when it was made, plus
	 * what it gave back since: the most that refunds can have moved its top
	 * down (see lt_slot_refund).
	 */
	__u64 under_units;
	__u32 slot; /* index into lt_slots */
	__u32 _pad;
};

/* Scaled time s(now) and ceil(now * rate) of one rate. */
static __always_inline __u64 lt_slot_s(const struct lt_rate *r, __u64 now_ns, __u64 *s_ceil)
{
	__u64 frac, s = lt_scaled(r, now_ns, &frac);

	*s_ceil = s + (frac != 0);
	return s;
}

/*
 * One decision of cost_tokens on slot at now_ns: no system call, one CAS.
 * Returns LT_ADMIT (out is a reservation), LT_DENY, LT_TOO_BIG (cost >
 * capacity), LT_FREED (the slot was freed: look the key up again) or
 * LT_CONTENDED (LT_CAS_TRIES lost CASes or changes of meta in a row).
 */
static __always_inline int lt_slot_consume(struct lt_slot *slots, const struct lt_rate *rates,
					   __u32 slot, __u64 now_ns, __u64 cost_tokens,
					   struct lt_slot_seen *out)
{
	struct lt_slot *s = &slots[slot & (LT_MAX_SLOTS - 1)];
	__u64 tat, meta, m2, sc, sceil, cost, nt;
	struct lt_rate r; /* a local copy: registers, not a store-load round trip */
	int i, v;

	meta = __atomic_load_n(&s->meta, __ATOMIC_ACQUIRE);
	tat = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
	for (i = 0; i < LT_CAS_TRIES; i++) {
		r = rates[lt_meta_rid(meta)];
		LT_SLOT_RACE_HOOK(s);
		if (!r.period_ns) {
			v = LT_ADMIT; /* unlimited: nothing to write, validate below */
		} else if (cost_tokens > (r.cap_units >> r.unit_shift)) {
			v = LT_TOO_BIG;
		} else {
			cost = cost_tokens << r.unit_shift;
			sc = lt_slot_s(&r, now_ns, &sceil);
			v = lt_gcra_step(tat, sc, sceil, r.cap_units, cost, &nt);
			if (v == LT_ADMIT) {
				/* compares rid and gen too: the pair is validated */
				if (lt_slot_cas(s, &tat, &meta, nt, meta)) {
					out->rate = r;
					out->tat = nt;
					out->meta = meta;
					out->cost_units = cost;
					/* its bottom, nt - cost, is never below s */
					out->under_units = nt - cost - sc;
					out->slot = slot & (LT_MAX_SLOTS - 1);
					return LT_ADMIT;
				}
				continue; /* (tat, meta) is the current value */
			}
		}
		if (tat >= LT_TAT_LIMIT) {
			if (tat == LT_TAT_FREE) {
				v = LT_FREED;
			} else if (r.period_ns) {
				/* a legacy lock word: from now on, a full bucket */
				lt_slot_s(&r, now_ns, &sceil);
				if (lt_slot_cas(s, &tat, &meta, sceil + r.cap_units, meta))
					tat = sceil + r.cap_units;
				continue;
			}
		}
		/* no CAS: validate that the slot still names this rate (seqlock read) */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		m2 = __atomic_load_n(&s->meta, __ATOMIC_ACQUIRE);
		if (m2 == meta) {
			out->rate = r;
			out->tat = tat;
			out->meta = meta;
			out->cost_units = 0;
			out->slot = slot & (LT_MAX_SLOTS - 1);
			return v;
		}
		meta = m2;
		tat = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
	}
	out->cost_units = 0;
	out->slot = slot & (LT_MAX_SLOTS - 1);
	return LT_CONTENDED;
}

/*
 * The slot's state without changing it: out->tat and out->rate are one
 * consistent pair (a legacy lock word is reported as a full bucket).
 * Returns 0, LT_FREED or LT_CONTENDED.
 */
static inline int lt_slot_peek(struct lt_slot *slots, const struct lt_rate *rates, __u32 slot,
			       __u64 now_ns, struct lt_slot_seen *out)
{
	struct lt_slot *s = &slots[slot & (LT_MAX_SLOTS - 1)];
	__u64 tat, meta, m2, sceil;
	int i;

	out->slot = slot & (LT_MAX_SLOTS - 1);
	out->cost_units = 0;
	meta = __atomic_load_n(&s->meta, __ATOMIC_ACQUIRE);
	tat = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
	for (i = 0; i < LT_CAS_TRIES; i++) {
		out->rate = rates[lt_meta_rid(meta)];
		LT_SLOT_RACE_HOOK(s);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		m2 = __atomic_load_n(&s->meta, __ATOMIC_ACQUIRE);
		if (m2 == meta) {
			out->meta = meta;
			out->tat = tat;
			if (tat == LT_TAT_FREE)
				return LT_FREED;
			if (tat >= LT_TAT_LIMIT) {
				/* a legacy lock word: reported as full from now */
				out->tat = 0;
				if (out->rate.period_ns) {
					lt_slot_s(&out->rate, now_ns, &sceil);
					out->tat = sceil + out->rate.cap_units;
				}
			}
			return 0;
		}
		/* meta moved under us: take an atomic snapshot and try again */
		lt_slot_read(s, &tat, &meta);
	}
	return LT_CONTENDED;
}

/*
 * q of the refund counter: counts units >> q, so that two capacities
 * (the most a bucket can admit while one reservation is still refundable)
 * fit far inside the 40 bits and a wrap can never look small.
 */
static __always_inline __u32 lt_refund_shift(const struct lt_rate *r)
{
	__u32 bits = 64 - (__u32)__builtin_clzll(r->cap_units | 1);

	return bits > LT_REF_UNITS_BITS ? bits - LT_REF_UNITS_BITS : 0;
}

/*
 * Gives back up to units of the reservation res (the lt_slot_seen of an
 * LT_ADMIT), only what it still adds to the level. *given = the units
 * given back (res->cost_units shrinks by it, so a reservation can be settled
 * in several parts). Returns 0, or LT_CONTENDED with nothing given.
 *
 * The rule, FIFO leak (a bucket drains its oldest units first): the
 * reservation occupied [res->tat - cost, res->tat) of the unit line when it
 * was admitted. Admissions after it stack above it; a refund of one of them
 * leaves it where it is, a refund of an earlier one (below it) or its own
 * moves it DOWN. So it has moved down by at most D = min(the units refunded
 * since by anybody, the growth of meta's refunded times 2^q, which
 * over-estimates them; res->under_units, the level under it when it was
 * admitted plus its own refunds since). The second bound holds because a
 * refund below it takes nothing below s_ceil (see x below): its bottom,
 * >= s at its admission, stays >= s_ceil of every later refund, so the
 * refunds below it total at most the level that was under it. Without it a
 * refund that settles after refunds of reservations ABOVE it gave back that
 * much less. So its top is at least e = res->tat - D, and what it still
 * adds to the level is at least min(cost, e - s_ceil(now)). Giving back
 * exactly that keeps the invariant that proves C + R*t:
 *   for every t1 <= now:  tat >= R*t1 + (net units admitted at times >= t1)
 * (net = cost - refunded, counted at the admission's time): for t1 after
 * the admission, the units above the reservation are exactly the later
 * admissions' net, and the refund takes nothing below s_ceil(now) >= R*t1.
 * After the bucket drained past the reservation, or after a rate change or
 * a free of the slot (rid or gen differ), it gives back nothing. What the
 * over-estimate of D still costs: a refund that comes after refunds of
 * reservations above it gives back less only when the level under it was
 * larger than what was refunded since (never more).
 * tests/unit/test_slot.c checks C + R*t over random interleavings with an
 * exact rational oracle.
 */
static inline int lt_slot_refund(struct lt_slot *slots, struct lt_slot_seen *res, __u64 units,
				 __u64 now_ns, __u64 *given)
{
	struct lt_slot *s = &slots[res->slot & (LT_MAX_SLOTS - 1)];
	const struct lt_rate *r = &res->rate;
	__u64 tat, meta, dref, below, e, sceil, x;
	__u32 q;
	int i;

	*given = 0;
	if (units > res->cost_units)
		units = res->cost_units;
	if (!units || !r->period_ns)
		return 0;
	q = lt_refund_shift(r);
	lt_slot_s(r, now_ns, &sceil);
	meta = __atomic_load_n(&s->meta, __ATOMIC_ACQUIRE);
	tat = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
	for (i = 0; i < LT_CAS_TRIES; i++) {
		if ((meta ^ res->meta) & LT_META_ID_MASK)
			return 0; /* another rate or a freed slot: the reservation is gone */
		dref = (lt_meta_refunded(meta) - lt_meta_refunded(res->meta)) &
		       ((1ULL << LT_META_REF_BITS) - 1);
		if (dref >= LT_REF_STALE || tat >= LT_TAT_LIMIT)
			return 0;
		below = dref << q;
		if (below > res->under_units)
			below = res->under_units;
		if (below >= res->tat)
			return 0;
		e = res->tat - below;
		if (e <= sceil || tat <= sceil)
			return 0; /* it has leaked (or the bucket is empty) */
		x = e - sceil;
		if (x > tat - sceil)
			x = tat - sceil;
		if (x > units)
			x = units;
		if (lt_slot_cas(s, &tat, &meta, tat - x,
				meta + (((x + (1ULL << q) - 1) >> q) << LT_META_REF_SHIFT))) {
			res->cost_units -= x;
			res->under_units += x;
			*given = x;
			return 0;
		}
	}
	return LT_CONTENDED;
}

/*
 * lt_slot_debit: adds tokens to the slot's level whatever its capacity, in
 * one CAS, saturating at max_caps capacities of level (and the word below
 * LT_TAT_LIMIT): out->cost_units says what was added. The one function that
 * puts spend that no admission of this process decided onto a bucket:
 *   - a debt for usage that a reservation did not cover, found after the
 *     fact (the gateway's reconcile when a provider used more than was
 *     reserved): lt_slot_charge, max_caps 2;
 *   - the spend of other hosts on a global bucket (agent/global.c), and the
 *     holds of its on_stale policies: max_caps LT_DEBIT_CAPS_GLOBAL.
 * Later admissions then wait until the bucket has leaked it, so the bucket
 * accounts for every token really used, and over any window the total is at
 * most C + R*t plus the debits not (yet) added. It is an admission stacked on
 * top like any other (the refund rule above holds: it changes no refunded
 * count). out is a reservation of what was added (lt_slot_refund can give
 * it back). Returns 0, LT_FREED or LT_CONTENDED (nothing added).
 */
#define LT_DEBIT_CAPS_GLOBAL 64 /* a global bucket's level: at most 64 capacities */

static inline int lt_slot_debit(struct lt_slot *slots, const struct lt_rate *rates, __u32 slot,
				__u64 now_ns, __u64 tokens, __u32 max_caps,
				struct lt_slot_seen *out)
{
	struct lt_slot *s = &slots[slot & (LT_MAX_SLOTS - 1)];
	__u64 tat, meta, m2, sc, sceil, base, level, room, x, top;
	struct lt_rate r;
	int i;

	out->slot = slot & (LT_MAX_SLOTS - 1);
	out->cost_units = 0;
	meta = __atomic_load_n(&s->meta, __ATOMIC_ACQUIRE);
	tat = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
	for (i = 0; i < LT_CAS_TRIES; i++) {
		if (tat == LT_TAT_FREE)
			return LT_FREED;
		r = rates[lt_meta_rid(meta)];
		LT_SLOT_RACE_HOOK(s);
		x = 0;
		if (r.period_ns && tat < LT_TAT_LIMIT && tokens) {
			sc = lt_slot_s(&r, now_ns, &sceil);
			base = tat <= sc ? sceil : tat;
			level = base - sc;
			/* cap_units < 2^62: max_caps * cap saturates instead of wrapping */
			top = r.cap_units > (LT_TAT_LIMIT - 1) / (max_caps ? max_caps : 1) ?
				      LT_TAT_LIMIT - 1 :
				      (__u64)max_caps * r.cap_units;
			room = level < top ? top - level : 0;
			if (room > LT_TAT_LIMIT - 1 - base)
				room = LT_TAT_LIMIT - 1 - base;
			x = tokens > (room >> r.unit_shift) ? room : tokens << r.unit_shift;
		}
		if (x) {
			if (lt_slot_cas(s, &tat, &meta, base + x, meta)) {
				out->rate = r;
				out->tat = base + x;
				out->meta = meta;
				out->cost_units = x;
				out->under_units = level;
				return 0;
			}
			continue;
		}
		/* nothing to add (unlimited, a legacy full word, no room): validate the rate */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		m2 = __atomic_load_n(&s->meta, __ATOMIC_ACQUIRE);
		if (m2 == meta) {
			out->rate = r;
			out->tat = tat;
			out->meta = meta;
			return 0;
		}
		meta = m2;
		tat = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
	}
	return LT_CONTENDED;
}

/* A debt of uncovered usage (the gateway's reconcile): lt_slot_debit up to twice the capacity. */
static inline int lt_slot_charge(struct lt_slot *slots, const struct lt_rate *rates, __u32 slot,
				 __u64 now_ns, __u64 tokens, struct lt_slot_seen *out)
{
	return lt_slot_debit(slots, rates, slot, now_ns, tokens, 2, out);
}

/* Level in units of the old rate, carried over into rate n, rounded up. */
static inline __u64 lt_slot_carry(__u64 tat, const struct lt_rate *o, const struct lt_rate *n,
				  __u64 now_ns)
{
	__u64 level, sceil;

	if (!o->period_ns || !n->period_ns)
		return 0;
	level = tat >= LT_TAT_LIMIT ? o->cap_units : lt_level_units(tat, now_ns, o);
	if (!level)
		return 0;
	/* old units -> tokens -> new units, rounded up (never a gift) */
	if (n->unit_shift >= o->unit_shift) {
		__u32 d = n->unit_shift - o->unit_shift;

		level = level > (LT_CAP_UNITS_MAX >> d) ? LT_CAP_UNITS_MAX : level << d;
	} else {
		__u32 d = o->unit_shift - n->unit_shift;

		level = (level + (1ULL << d) - 1) >> d;
	}
	lt_slot_s(n, now_ns, &sceil);
	return sceil + level;
}

/*
 * Owner side (the agent). rates[nid] must be written before the call (and
 * not rewritten while any slot names nid).
 *
 * lt_slot_rebase: moves a live slot to rate nid keeping its level in tokens
 * (rounded up), in one CAS. *old_rid: the rid it left (for refcounts).
 * Returns 0, -ENOENT (the slot is free) or -EAGAIN (contended).
 */
static inline int lt_slot_rebase(struct lt_slot *slots, const struct lt_rate *rates, __u32 slot,
				 __u32 nid, __u64 now_ns, __u32 *old_rid)
{
	struct lt_slot *s = &slots[slot & (LT_MAX_SLOTS - 1)];
	struct lt_rate o, n = rates[nid & LT_META_RID_MASK];
	__u64 tat, meta, nt;
	int i;

	meta = __atomic_load_n(&s->meta, __ATOMIC_ACQUIRE);
	tat = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
	for (i = 0; i < LT_SLOT_OWNER_TRIES; i++) {
		if (tat == LT_TAT_FREE)
			return -ENOENT;
		o = rates[lt_meta_rid(meta)];
		nt = lt_slot_carry(tat, &o, &n, now_ns);
		/* the CAS validates meta, so o was the slot's rate all along */
		if (lt_slot_cas(s, &tat, &meta, nt, lt_meta_move(meta, nid))) {
			*old_rid = lt_meta_rid(meta);
			return 0;
		}
	}
	return -EAGAIN;
}

/*
 * lt_slot_assign: starts slot empty on rate nid, whatever it held (a new
 * bucket, a freed slot reused, a slot of a lost database). *old_rid as above;
 * *was_free = the slot was LT_TAT_FREE. Returns 0 or -EAGAIN.
 */
static inline int lt_slot_assign(struct lt_slot *slots, __u32 slot, __u32 nid, __u32 *old_rid,
				 int *was_free)
{
	struct lt_slot *s = &slots[slot & (LT_MAX_SLOTS - 1)];
	__u64 tat, meta;
	int i;

	meta = __atomic_load_n(&s->meta, __ATOMIC_ACQUIRE);
	tat = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
	for (i = 0; i < LT_SLOT_OWNER_TRIES; i++) {
		if (lt_slot_cas(s, &tat, &meta, 0, lt_meta_move(meta, nid))) {
			*old_rid = lt_meta_rid(meta);
			*was_free = tat == LT_TAT_FREE;
			return 0;
		}
	}
	return -EAGAIN;
}

/*
 * lt_slot_release: frees slot whatever its level, in one CAS to
 * (LT_TAT_FREE, rid 0, gen + 1): for a bucket that is forgotten (its key is
 * gone), so that its rate id is named by nobody. *old_rid as above. Returns
 * 0, -ENOENT (already free) or -EAGAIN.
 */
static inline int lt_slot_release(struct lt_slot *slots, __u32 slot, __u32 *old_rid)
{
	struct lt_slot *s = &slots[slot & (LT_MAX_SLOTS - 1)];
	__u64 tat, meta;
	int i;

	meta = __atomic_load_n(&s->meta, __ATOMIC_ACQUIRE);
	tat = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
	for (i = 0; i < LT_SLOT_OWNER_TRIES; i++) {
		if (tat == LT_TAT_FREE)
			return -ENOENT;
		if (lt_slot_cas(s, &tat, &meta, LT_TAT_FREE, lt_meta_move(meta, 0))) {
			*old_rid = lt_meta_rid(meta);
			return 0;
		}
	}
	return -EAGAIN;
}

/*
 * lt_slot_free_if_empty: frees slot if its bucket has been empty for at
 * least min_empty_ns at now_ns, in one CAS to (LT_TAT_FREE, rid 0, gen + 1):
 * deciders then get LT_FREED, and refunds of its reservations give nothing.
 * A level is never lost: a bucket that is not empty is not freed, and an
 * admission racing the free either lands first (the CAS fails) or sees
 * LT_FREED. *old_rid as above. Returns 0, -EBUSY (not empty long enough),
 * -ENOENT (already free) or -EAGAIN.
 */
static inline int lt_slot_free_if_empty(struct lt_slot *slots, const struct lt_rate *rates,
					__u32 slot, __u64 now_ns, __u64 min_empty_ns,
					__u32 *old_rid)
{
	struct lt_slot *s = &slots[slot & (LT_MAX_SLOTS - 1)];
	struct lt_rate o;
	__u64 tat, meta, empty_at;
	int i;

	meta = __atomic_load_n(&s->meta, __ATOMIC_ACQUIRE);
	tat = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
	for (i = 0; i < LT_SLOT_OWNER_TRIES; i++) {
		if (tat == LT_TAT_FREE)
			return -ENOENT;
		o = rates[lt_meta_rid(meta)];
		if (o.period_ns) {
			if (tat >= LT_TAT_LIMIT)
				return -EBUSY;
			empty_at = lt_time_of_units(&o, tat);
			if (empty_at > now_ns || now_ns - empty_at < min_empty_ns)
				return -EBUSY;
		}
		if (lt_slot_cas(s, &tat, &meta, LT_TAT_FREE, lt_meta_move(meta, 0))) {
			*old_rid = lt_meta_rid(meta);
			return 0;
		}
	}
	return -EAGAIN;
}

/*
 * Ownership (bucket reclaim, see lt_keyidx in lt_abi.h). A slot is given to a
 * key as: gen[slot] += 1, then lt_slot_assign (a full barrier), then the key
 * is published with that gen. A caller that found the slot earlier (a cached
 * lt_keyidx entry, or the agent's own lookup) holds (slot, gen) and decides
 * with these, which compare gen[slot] with it before and after the decision:
 *   - if the slot was given to another key before our CAS, our CAS read its
 *     new meta, so it came after that assign, which came after the gen store:
 *     the check after the decision sees the new gen; an admission made there
 *     is taken back at once (it never reached its own tenant's bucket), and
 *     the answer is LT_FREED;
 *   - if our CAS came first, the slot was still ours (a free needs an empty,
 *     idle bucket and fails after our admission; a free before it changes
 *     meta and fails our CAS).
 * gen_mask: the bits of gen the caller kept (~0U for a full lt_keyidx gen).
 */
static __always_inline int lt_slot_owned(const struct lt_usage *usage, __u32 slot, __u32 gen,
					 __u32 gen_mask)
{
	return !((__atomic_load_n(&usage[slot & (LT_MAX_SLOTS - 1)].gen, __ATOMIC_ACQUIRE) ^ gen) &
		 gen_mask);
}

static inline int lt_slot_consume_owned(struct lt_slot *slots, const struct lt_rate *rates,
					const struct lt_usage *usage, __u32 slot, __u32 gen,
					__u32 gen_mask, __u64 now_ns, __u64 cost_tokens,
					struct lt_slot_seen *out)
{
	__u64 given;
	int v, i;

	out->slot = slot & (LT_MAX_SLOTS - 1);
	out->cost_units = 0;
	if (!lt_slot_owned(usage, slot, gen, gen_mask))
		return LT_FREED;
	v = lt_slot_consume(slots, rates, slot, now_ns, cost_tokens, out);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (lt_slot_owned(usage, slot, gen, gen_mask))
		return v;
	/* charged to the slot's new owner: give it all back (bounded, as all here) */
	for (i = 0; v == LT_ADMIT && out->cost_units && i < 4; i++)
		lt_slot_refund(slots, out, out->cost_units, now_ns, &given);
	out->cost_units = 0;
	return LT_FREED;
}

/* lt_slot_debit on a slot held as (slot, gen), as lt_slot_consume_owned. */
static inline int lt_slot_debit_owned(struct lt_slot *slots, const struct lt_rate *rates,
				      const struct lt_usage *usage, __u32 slot, __u32 gen,
				      __u32 gen_mask, __u64 now_ns, __u64 tokens, __u32 max_caps,
				      struct lt_slot_seen *out)
{
	__u64 given;
	int v, i;

	out->slot = slot & (LT_MAX_SLOTS - 1);
	out->cost_units = 0;
	if (!lt_slot_owned(usage, slot, gen, gen_mask))
		return LT_FREED;
	v = lt_slot_debit(slots, rates, slot, now_ns, tokens, max_caps, out);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (lt_slot_owned(usage, slot, gen, gen_mask))
		return v;
	for (i = 0; !v && out->cost_units && i < 4; i++)
		lt_slot_refund(slots, out, out->cost_units, now_ns, &given);
	out->cost_units = 0;
	return LT_FREED;
}

/* lt_slot_charge on a slot held as (slot, gen), as lt_slot_consume_owned. */
static inline int lt_slot_charge_owned(struct lt_slot *slots, const struct lt_rate *rates,
				       const struct lt_usage *usage, __u32 slot, __u32 gen,
				       __u32 gen_mask, __u64 now_ns, __u64 tokens,
				       struct lt_slot_seen *out)
{
	return lt_slot_debit_owned(slots, rates, usage, slot, gen, gen_mask, now_ns, tokens, 2,
				   out);
}

static inline int lt_slot_peek_owned(struct lt_slot *slots, const struct lt_rate *rates,
				     const struct lt_usage *usage, __u32 slot, __u32 gen,
				     __u32 gen_mask, __u64 now_ns, struct lt_slot_seen *out)
{
	int v;

	if (!lt_slot_owned(usage, slot, gen, gen_mask))
		return LT_FREED;
	v = lt_slot_peek(slots, rates, slot, now_ns, out);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return lt_slot_owned(usage, slot, gen, gen_mask) ? v : LT_FREED;
}

#endif /* LT_SLOT_H */
