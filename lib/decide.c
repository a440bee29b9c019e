// SPDX-License-Identifier: MIT
#include <string.h>
#include "decide.h"
#include "units.h"

#define LT_VIEW_AHEAD_NS 1000ULL /* remaining is reported as of now + 1 us */

/*
 * Seconds, rounded up, until the bucket is empty: ceil(tat * period / upp)
 * in 128 bits, so that a slow bucket (a year per token) reads true where
 * the 64-bit ns form saturates.
 */
static __u64 lt_until_s(__u64 x, __u64 now, const struct lt_rate *r)
{
	unsigned __int128 t;

	if (!r->period_ns)
		return 0;
	t = ((unsigned __int128)x * r->period_ns + r->units_per_period - 1) / r->units_per_period;
	if (t <= now)
		return 0;
	t = (t - now + LT_NS_PER_SEC - 1) / LT_NS_PER_SEC;
	return t > ~0ULL ? ~0ULL : (__u64)t;
}

/* Seconds until cost more tokens fit (0 if now), exact where ns saturates. */
static __u64 lt_retry_after_s(__u64 tat, __u64 now, const struct lt_rate *r, __u64 cost)
{
	__u64 c;

	if (!r->period_ns)
		return 0;
	if (cost > (r->cap_units >> r->unit_shift))
		return ~0ULL;
	c = cost << r->unit_shift;
	return tat + c <= r->cap_units ? 0 : lt_until_s(tat + c - r->cap_units, now, r);
}

void lt_view_fill(const struct lt_rate *r, __u64 tat, __u64 now, __u64 cost, int v,
		  struct lt_view *out)
{
	out->unlimited = !r->period_ns;
	out->capacity = r->period_ns ? lt_rate_capacity(r) : 0;
	/*
	 * As of a microsecond later: a restart from empty charges up to one unit
	 * more than the exact rate (never early, lt_bucket.h), which at this very
	 * nanosecond showed as a whole token missing (10000 - 25 read 9974). An L7
	 * unit is well under a microsecond (lt_rate_init_l7), and no client can
	 * ask again sooner.
	 */
	out->remaining = r->period_ns ? lt_remaining_tokens(tat, now + LT_VIEW_AHEAD_NS, r) : ~0ULL;
	out->retry_after_ns = v == LT_DENY ? lt_retry_after_ns(tat, now, r, cost) : 0;
	out->full_in_ns = lt_drain_ns(tat, now, r);
	out->full_in_s = lt_until_s(tat, now, r);
	out->retry_after_s = v == LT_DENY ? lt_retry_after_s(tat, now, r, cost) : 0;
	out->leak_tokens = r->period_ns ? r->units_per_period >> r->unit_shift : 0;
	out->leak_period_ns = r->period_ns;
}

int lt_decide_consume(const struct lt_decide_maps *m, __u32 slot, __u32 gen, __u32 gen_mask,
		      __u64 cost, __u64 now_ns, struct lt_view *v, struct lt_slot_seen *resv)
{
	struct lt_usage *u;
	int verdict = LT_CONTENDED, i;

	slot &= LT_MAX_SLOTS - 1;
	u = &m->usage[slot];
	/* each LT_CONTENDED is LT_CAS_TRIES CASes that others won: bounded */
	for (i = 0; i < LT_DECIDE_TRIES; i++) {
		verdict = lt_slot_consume_owned(m->slots, m->rates, m->usage, slot, gen, gen_mask,
						now_ns, cost, resv);
		if (verdict != LT_CONTENDED)
			break;
	}
	memset(v, 0, sizeof(*v));
	v->slot = slot;
	if (verdict == LT_CONTENDED || verdict == LT_FREED) {
		resv->cost_units = 0;
		return verdict;
	}
	lt_view_fill(&resv->rate, resv->tat, now_ns, cost, verdict, v);
	if (verdict == LT_ADMIT) {
		__atomic_fetch_add(&u->admitted, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&u->tokens, cost, __ATOMIC_RELAXED);
	} else if (verdict == LT_DENY) {
		__atomic_fetch_add(&u->rejected, 1, __ATOMIC_RELAXED);
	}
	return verdict;
}

__u64 lt_decide_refund(const struct lt_decide_maps *m, struct lt_slot_seen *resv, __u64 tokens,
		       __u64 now_ns)
{
	struct lt_usage *u = &m->usage[resv->slot & (LT_MAX_SLOTS - 1)];
	__u32 shift = resv->rate.unit_shift;
	__u64 units, given = 0, back, held = resv->cost_units;
	int i;

	if (!held)
		return 0;
	units = tokens > (resv->cost_units >> shift) ? resv->cost_units : tokens << shift;
	for (i = 0; i < LT_DECIDE_TRIES; i++)
		if (lt_slot_refund(m->slots, resv, units, now_ns, &given) != LT_CONTENDED)
			break;
	/*
	 * The whole tokens of the reservation's units before minus after: the
	 * usage counter then keeps the whole tokens it still holds (floor),
	 * never more, so it stays within C + R*t as the bucket does, and the
	 * parts of a reservation settled in several refunds add up to at most
	 * its cost. given >> shift alone left a whole token counted for a refund
	 * short of a sliver (the refund counter's 2^q granules).
	 */
	back = (held >> shift) - ((held - given) >> shift);
	if (back)
		__atomic_fetch_sub(&u->tokens, back, __ATOMIC_RELAXED);
	return back;
}

void lt_decide_undo(const struct lt_decide_maps *m, struct lt_slot_seen *resv, __u64 now_ns)
{
	struct lt_usage *u = &m->usage[resv->slot & (LT_MAX_SLOTS - 1)];

	if (!resv->cost_units)
		return;
	lt_decide_refund(m, resv, ~0ULL, now_ns);
	__atomic_fetch_sub(&u->admitted, 1, __ATOMIC_RELAXED);
}

__u64 lt_decide_charge(const struct lt_decide_maps *m, __u32 slot, __u32 gen, __u32 gen_mask,
		       __u64 tokens, __u64 now_ns, struct lt_slot_seen *resv, int *verdict)
{
	__u64 added;
	int v = LT_CONTENDED, i;

	slot &= LT_MAX_SLOTS - 1;
	for (i = 0; i < LT_DECIDE_TRIES; i++) {
		v = lt_slot_charge_owned(m->slots, m->rates, m->usage, slot, gen, gen_mask, now_ns,
					 tokens, resv);
		if (v != LT_CONTENDED)
			break;
	}
	if (verdict)
		*verdict = v;
	if (v)
		return 0;
	added = resv->cost_units >> resv->rate.unit_shift;
	if (added)
		__atomic_fetch_add(&m->usage[slot].tokens, added, __ATOMIC_RELAXED);
	return added;
}

__u64 lt_decide_debit(const struct lt_decide_maps *m, __u32 slot, __u32 gen, __u32 gen_mask,
		      __u64 tokens, __u32 max_caps, __u64 now_ns, struct lt_slot_seen *resv,
		      int *verdict)
{
	struct lt_slot_seen own, *seen = resv ? resv : &own;
	int v = LT_CONTENDED, i;

	for (i = 0; i < LT_DECIDE_TRIES; i++) {
		v = lt_slot_debit_owned(m->slots, m->rates, m->usage, slot, gen, gen_mask, now_ns,
					tokens, max_caps, seen);
		if (v != LT_CONTENDED)
			break;
	}
	if (verdict)
		*verdict = v;
	if (v)
		seen->cost_units = 0;
	return v ? 0 : seen->cost_units >> seen->rate.unit_shift;
}

__u64 lt_decide_undebit(const struct lt_decide_maps *m, struct lt_slot_seen *resv, __u64 now_ns)
{
	__u64 given = 0;
	int i;

	if (!resv->cost_units)
		return 0;
	for (i = 0; i < LT_DECIDE_TRIES; i++)
		if (lt_slot_refund(m->slots, resv, resv->cost_units, now_ns, &given) !=
		    LT_CONTENDED)
			break;
	return given >> resv->rate.unit_shift;
}

int lt_decide_peek(const struct lt_decide_maps *m, __u32 slot, __u32 gen, __u32 gen_mask,
		   __u64 now_ns, struct lt_view *v)
{
	struct lt_slot_seen seen;
	int ret;

	slot &= LT_MAX_SLOTS - 1;
	memset(v, 0, sizeof(*v));
	v->slot = slot;
	ret = lt_slot_peek_owned(m->slots, m->rates, m->usage, slot, gen, gen_mask, now_ns, &seen);
	if (ret)
		return ret;
	lt_view_fill(&seen.rate, seen.tat, now_ns, 0, LT_ADMIT, v);
	return 0;
}
