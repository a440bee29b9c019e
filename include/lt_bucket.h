/* SPDX-License-Identifier: MIT */
/*
 * lt_bucket.h - the leaky bucket. Shared by kernel and user space: compiled by
 * clang -target bpf into the programs in bpf/ and by gcc into agent/, gateway/, tests/.
 *
 * Form: GCRA (virtual scheduling), so the whole state of a bucket is one
 * 64-bit word, the theoretical arrival time "tat", updated by compare-and-swap.
 * Zero is a valid, empty bucket, so a zeroed map is a table of empty buckets.
 *
 * Units. A token is 2^unit_shift "units"; time is scaled into units by
 *   s(t) = floor(t_ns * units_per_period / period_ns)
 * computed exactly in 64 bits (see lt_muldiv). The level of a bucket at t is
 * max(tat - s(t), 0) units. Consuming n tokens is admitted when
 * level + n <= capacity, and then tat grows by n tokens' worth of units.
 *
 * Why never an overshoot: leak is credited with floor(), and a bucket that
 * restarts from empty restarts at ceil(t * rate). Rounding can therefore only
 * lose time, never gain it: over any interval t the admitted total is at most
 * C + R*t (t between the decisions' clock reads).
 *
 * The lower bound. Under steady demand (a client that takes every whole
 * token that fits, asking at least once per (C - 1)/R so the bucket never
 * drains empty) the admitted total over t is MORE than
 *   C + R*t - 1 token - 2 units        (2 units = 2^(1 - unit_shift) tokens)
 * one token because only whole tokens are taken, two units of rounding (the
 * restart's ceil and the last floor). In whole tokens: at least
 * floor(C + R*t) - 1, for every unit_shift >= 1. The fastest rates force the
 * smallest shift (2*10^9/s: 1, 10^9/s: 2), where the rounding part is 1 and
 * 0.5 token; in BPF's 64-bit math the slowest force a coarse unit (1
 * token per 10 years: 2^5 units per token, so a restart may lose 114 days
 * of leak). The L7 rates (lt_rate_init_l7, decided in user space with
 * 128-bit products) keep 2^40 units per token down to the slowest rate:
 * a restart loses at most 287 us there, and 79 ns at a token a day. (The former
 * "C + R*t - 2 units" left out the whole-token part: a deficit of 1.48
 * tokens was measured at shift 1.) tests/unit/test_bucket.c and
 * test_bucket_bounds.c prove both bounds at the edges and at shifts 1, 2, 3.
 *
 * A clock that goes backwards (another CPU or process read it a little
 * earlier) only makes s(t) smaller, i.e. the check stricter: tat never moves
 * back, so nothing is lost and nothing is over-admitted.
 *
 * Ranges (enforced by lt_rate_init): rate from 1 token per 10 years to
 * 2*10^9 tokens/s, capacity from 1 to 2^62 units, now_ns up to 2^60 ns
 * (36 years of uptime) without overflow.
 */
#ifndef LT_BUCKET_H
#define LT_BUCKET_H

#include <linux/types.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/*
 * Compiled form of "capacity C tokens, leak R = tokens/period". 40 bytes.
 * period_inv lets the hot path divide by period_ns with multiplications: a
 * 64-bit division is 10-40 ns in BPF here, the largest cost of a decision.
 */
struct lt_rate {
	__u64 period_ns; /* leak period, ns; 0 = this rate does not limit */
	__u64 units_per_period; /* leak per period, units (tokens << unit_shift) */
	__u64 cap_units; /* capacity, units (tokens << unit_shift) */
	__u64 period_inv; /* floor((2^64 - 1) / period_ns) */
	__u32 unit_shift; /* log2(units per token), 1..40 */
	__u32 _pad;
};
_Static_assert(sizeof(struct lt_rate) == 40, "lt_rate is ABI");

/* Append-only: the values cross into stats and events. */
enum lt_verdict {
	LT_ADMIT = 0,
	LT_DENY = 1, /* not now; retry_after says when */
	LT_TOO_BIG = 2, /* cost > capacity: never admissible, a client error */
	LT_CONTENDED = 3, /* CAS lost LT_CAS_TRIES times in a row */
	LT_FREED = 4, /* the L7 slot was freed (lt_slot.h): look the key up again */
};

/*
 * Bound on CAS retries. The verifier needs a constant; user space simply calls
 * again (some other writer made progress, so the loop is lock-free).
 */
#ifndef LT_CAS_TRIES
#define LT_CAS_TRIES 16
#endif

#define LT_UNITS_PER_NS_MAX 4ULL /* units/ns: keeps s(2^60 ns) <= 2^62 */
#define LT_CAP_UNITS_MAX (1ULL << 62)
#define LT_NOW_MAX_NS (1ULL << 60)
#define LT_SHIFT_MAX 40

/* High 64 bits of a 64x64 product (BPF has no 128-bit multiply). */
static __always_inline __u64 lt_mulhi64(__u64 a, __u64 b)
{
#if defined(__SIZEOF_INT128__) && !defined(__bpf__)
	return (__u64)(((unsigned __int128)a * b) >> 64);
#else
	__u64 al = (__u32)a, ah = a >> 32, bl = (__u32)b, bh = b >> 32;
	__u64 ll = al * bl, hl = ah * bl, lh = al * bh, hh = ah * bh;
	__u64 mid = (ll >> 32) + (__u32)hl + (__u32)lh;

	return hh + (hl >> 32) + (lh >> 32) + (mid >> 32);
#endif
}

/*
 * a / c and a % c, exact, given inv = floor((2^64 - 1) / c): the estimate
 * mulhi(a, inv) is at most 2 below the quotient and never above it.
 */
static __always_inline __u64 lt_divrem(__u64 a, __u64 c, __u64 inv, __u64 *rem)
{
	__u64 q = lt_mulhi64(a, inv), r = a - q * c;

	if (r >= c) {
		q++;
		r -= c;
	}
	if (r >= c) {
		q++;
		r -= c;
	}
	*rem = r;
	return q;
}

/*
 * floor(a * b / c) for a*b/c < 2^64. In BPF (only 64-bit ops) b*c <= 2^64
 * too; user space takes the 128-bit path when r * b could overflow, which
 * is what lets lt_rate_init_l7 give slow L7 rates fine units.
 */
static __always_inline __u64 lt_muldiv(__u64 a, __u64 b, __u64 c, __u64 inv, __u64 *rem)
{
	__u64 r, q = lt_divrem(a, c, inv, &r);

#if defined(__SIZEOF_INT128__) && !defined(__bpf__)
	if (b > inv) { /* inv = floor((2^64 - 1) / c): r * b may not fit */
		unsigned __int128 p = (unsigned __int128)r * b;

		*rem = (__u64)(p % c);
		return q * b + (__u64)(p / c);
	}
#endif
	return q * b + lt_divrem(r * b, c, inv, rem);
}

/* Scaled time s(now), plus whether it was exact (for the ceil of a restart). */
static __always_inline __u64 lt_scaled(const struct lt_rate *r, __u64 now_ns, __u64 *frac)
{
	return lt_muldiv(now_ns, r->units_per_period, r->period_ns, r->period_inv, frac);
}

/*
 * One decision on a bucket word; pure, no side effects. s is s(now) and
 * s_ceil is ceil(now * rate) (s, or s + 1 when s(now) was not exact): both
 * depend on now only, so a CAS retry loop computes them once.
 * cost_units must be <= r->cap_units (checked before scaling the cost).
 */
static __always_inline int lt_gcra_step(__u64 tat, __u64 s, __u64 s_ceil, __u64 cap_units,
					__u64 cost_units, __u64 *new_tat)
{
	if (tat <= s) {
		/* Empty: restart at ceil(now * rate), never earlier. */
		*new_tat = s_ceil + cost_units;
		return LT_ADMIT;
	}
	if (tat - s > cap_units - cost_units)
		return LT_DENY; /* rejects are not counted: tat unchanged */
	*new_tat = tat + cost_units;
	return LT_ADMIT;
}

/*
 * Smallest t with s(t) >= x: ceil(x * period / units_per_period), or ~0
 * when that is beyond 2^64 ns (a slow bucket: capacity 2^40 at a token a
 * year needs 10^12 years); never a wrapped, early time.
 */
static __always_inline __u64 lt_time_of_units(const struct lt_rate *r, __u64 x)
{
	__u64 q = x / r->units_per_period, rem = x % r->units_per_period;
	__u64 p, t;

	if (q > ~0ULL / r->period_ns)
		return ~0ULL;
#if defined(__SIZEOF_INT128__) && !defined(__bpf__)
	if (r->units_per_period > r->period_inv) { /* an lt_rate_init_l7 rate */
		unsigned __int128 w = (unsigned __int128)rem * r->period_ns;

		p = (__u64)(w / r->units_per_period) + (w % r->units_per_period != 0);
		t = q * r->period_ns + p;
		return t < q * r->period_ns ? ~0ULL : t;
	}
#endif
	p = rem * r->period_ns;
	t = q * r->period_ns + p / r->units_per_period + (p % r->units_per_period != 0);
	return t < q * r->period_ns ? ~0ULL : t;
}

/* Level in units at now (0 when empty or unlimited). */
static __always_inline __u64 lt_level_units(__u64 tat, __u64 now_ns, const struct lt_rate *r)
{
	__u64 frac, s;

	if (!r->period_ns)
		return 0;
	s = lt_scaled(r, now_ns, &frac);

	return tat > s ? tat - s : 0;
}

/* Whole tokens that could be consumed at now. */
static __always_inline __u64 lt_remaining_tokens(__u64 tat, __u64 now_ns, const struct lt_rate *r)
{
	__u64 level;

	if (!r->period_ns)
		return ~0ULL;
	level = lt_level_units(tat, now_ns, r);
	return level >= r->cap_units ? 0 : (r->cap_units - level) >> r->unit_shift;
}

/* ns from now until cost_tokens would be admitted (0 if now); ~0 if never. */
static __always_inline __u64 lt_retry_after_ns(__u64 tat, __u64 now_ns, const struct lt_rate *r,
					       __u64 cost_tokens)
{
	__u64 cost, t;

	if (!r->period_ns)
		return 0;
	if (cost_tokens > (r->cap_units >> r->unit_shift))
		return ~0ULL;
	cost = cost_tokens << r->unit_shift;
	if (tat + cost <= r->cap_units)
		return 0;
	/* Admitted once s(t) >= tat + cost - cap. */
	t = lt_time_of_units(r, tat + cost - r->cap_units);
	if (t == ~0ULL)
		return ~0ULL; /* beyond 2^64 ns: saturate, never wrap early */
	return t > now_ns ? t - now_ns : 0;
}

/* ns from now until the bucket is empty again (full quota available); ~0 if beyond 2^64 ns. */
static __always_inline __u64 lt_drain_ns(__u64 tat, __u64 now_ns, const struct lt_rate *r)
{
	__u64 t;

	if (!r->period_ns)
		return 0;
	t = lt_time_of_units(r, tat);
	if (t == ~0ULL)
		return ~0ULL;
	return t > now_ns ? t - now_ns : 0;
}

/*
 * Consume cost_tokens from the bucket word at *tat, shared with every other
 * CPU and process, given s = s(now) and s_ceil (see lt_gcra_step). Returns an
 * lt_verdict; *tat_seen is the word the decision was made on (after a
 * successful CAS, the new word).
 */
static __always_inline int lt_bucket_consume_at(__u64 *tat, const struct lt_rate *r, __u64 s,
						__u64 s_ceil, __u64 cost_tokens, __u64 *tat_seen)
{
	__u64 old, nv, seen, cost, cap;
	int i, v;

	old = *(volatile __u64 *)tat;
	*tat_seen = old;
	if (!r->period_ns)
		return LT_ADMIT;
	cap = r->cap_units;
	if (cost_tokens > (cap >> r->unit_shift))
		return LT_TOO_BIG;
	cost = cost_tokens << r->unit_shift;
	for (i = 0; i < LT_CAS_TRIES; i++) {
		v = lt_gcra_step(old, s, s_ceil, cap, cost, &nv);
		if (v != LT_ADMIT)
			return v;
		seen = __sync_val_compare_and_swap(tat, old, nv);
		if (seen == old) {
			*tat_seen = nv;
			return LT_ADMIT;
		}
		old = seen;
		*tat_seen = old;
	}
	return LT_CONTENDED;
}

/* lt_bucket_consume_at with s(now) computed here. */
static __always_inline int lt_bucket_consume(__u64 *tat, const struct lt_rate *r, __u64 now_ns,
					     __u64 cost_tokens, __u64 *tat_seen)
{
	__u64 s = 0, frac = 0;

	if (r->period_ns)
		s = lt_scaled(r, now_ns, &frac);
	return lt_bucket_consume_at(tat, r, s, s + (frac != 0), cost_tokens, tat_seen);
}

/*
 * Undo an admission of cost_tokens on a plain word (the per-source words;
 * the L7 slots have lt_slot_refund), given tat_after, the word our CAS wrote
 * (*tat_seen), and s_ceil of now. Only while the word is still tat_after:
 * then nothing was stacked on the admission, and it still adds
 * min(cost, tat_after - s_ceil) units to the level; exactly that is given
 * back. If the word moved on, the undo does nothing (fails closed). Blind
 * subtraction would give back units that had leaked, or units that belong
 * to a later restart of a drained bucket (double credit).
 * Returns 0 if it gave something back, -1 otherwise.
 */
static __always_inline int lt_bucket_undo(__u64 *tat, const struct lt_rate *r, __u64 s_ceil,
					  __u64 tat_after, __u64 cost_tokens)
{
	__u64 x;

	if (!r->period_ns || tat_after <= s_ceil)
		return -1;
	x = tat_after - s_ceil;
	if (x > (cost_tokens << r->unit_shift))
		x = cost_tokens << r->unit_shift;
	return __sync_val_compare_and_swap(tat, tat_after, tat_after - x) == tat_after ? 0 : -1;
}

#ifndef __bpf__
/*
 * User space only: compile "capacity tokens, leak tokens per period_ns" into
 * an lt_rate. Returns 0 or -ERANGE (out of the documented ranges) / -EINVAL.
 * Lives here so the agent, the gateway and the tests share one definition.
 */
static inline __u64 lt_gcd(__u64 a, __u64 b)
{
	while (b) {
		__u64 t = a % b;

		a = b;
		b = t;
	}
	return a;
}

static inline int lt_rate_init_k(struct lt_rate *r, __u64 capacity_tokens, __u64 leak_tokens,
				 __u64 period_ns, int bpf)
{
	__u64 g, tok, per;
	__u32 k, best = 0;

	__builtin_memset(r, 0, sizeof(*r));
	if (!capacity_tokens || !leak_tokens || !period_ns)
		return -22; /* -EINVAL */
	g = lt_gcd(leak_tokens, period_ns);
	tok = leak_tokens / g;
	per = period_ns / g;
	for (k = 1; k <= LT_SHIFT_MAX; k++) {
		if (tok > (~0ULL >> k))
			break;
		if (bpf && (tok << k) > ~0ULL / per) /* rem * b in lt_muldiv, 64-bit */
			break;
		if ((tok << k) > LT_UNITS_PER_NS_MAX * per) /* 36 years of s(t) */
			break;
		if (capacity_tokens > (LT_CAP_UNITS_MAX >> k))
			break;
		best = k;
	}
	if (!best)
		return -34; /* -ERANGE */
	r->period_ns = per;
	r->period_inv = ~0ULL / per;
	r->units_per_period = tok << best;
	r->cap_units = capacity_tokens << best;
	r->unit_shift = best;
	return 0;
}

/* A rate the BPF programs decide by (the per-source policies): 64-bit math. */
static inline int lt_rate_init(struct lt_rate *r, __u64 capacity_tokens, __u64 leak_tokens,
			       __u64 period_ns)
{
	return lt_rate_init_k(r, capacity_tokens, leak_tokens, period_ns, 1);
}

/*
 * An L7 rate (lt_rates, decided in user space only, with the 128-bit paths
 * above): units as fine as the other ranges allow. With the 64-bit bound a
 * slow rate got coarse units (1 token a day: 2^17 units per token, 0.66 s
 * each), and since an empty bucket restarts a unit late (never early), the
 * second of "2 a day" was refused for up to 0.66 s, "10 a month" up to 4 s.
 * Here those are 2^40 units per token: a unit is 79 ns and 236 ns.
 */
static inline int lt_rate_init_l7(struct lt_rate *r, __u64 capacity_tokens, __u64 leak_tokens,
				  __u64 period_ns)
{
	return lt_rate_init_k(r, capacity_tokens, leak_tokens, period_ns, 0);
}

static inline __u64 lt_rate_capacity(const struct lt_rate *r)
{
	return r->cap_units >> r->unit_shift;
}
#endif /* !__bpf__ */

#endif /* LT_BUCKET_H */
