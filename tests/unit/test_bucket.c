// SPDX-License-Identifier: MIT
/*
 * test_bucket.c - the leaky bucket (include/lt_bucket.h) with synthetic time.
 * Tests are named by behaviour, nginx-tests style. Exactness is checked with
 * 128-bit rational arithmetic against the definition:
 *   over any interval t, admitted <= C + R*t          (never an overshoot)
 *   under steady demand, admitted >= C + R*t - 1      (at the shifts used here;
 *   the bound for every shift is in lt_bucket.h, proved by test_bucket_bounds.c)
 */
#include <pthread.h>
#include <errno.h>
#include "lt_test.h"
#include "lt_bucket.h"

#define NS 1ULL
#define US (1000 * NS)
#define MS (1000 * US)
#define SEC (1000 * MS)
#define DAY (86400 * SEC)
#define YEAR (365 * DAY)

/* 1: the rates below are L7 rates (lt_rate_init_l7: 128-bit paths, fine units) */
static int l7;

static int rinit(struct lt_rate *r, __u64 cap, __u64 tok, __u64 per)
{
	return l7 ? lt_rate_init_l7(r, cap, tok, per) : lt_rate_init(r, cap, tok, per);
}

static __u64 consume(__u64 *tat, const struct lt_rate *r, __u64 now, __u64 n)
{
	__u64 seen;

	return lt_bucket_consume(tat, r, now, n, &seen);
}

static void burst_exhausted(void)
{
	struct lt_rate r;
	__u64 tat = 0;
	int i;

	CHECK_EQ(lt_rate_init(&r, 10, 1, SEC), 0);
	for (i = 0; i < 10; i++)
		CHECK_EQ(consume(&tat, &r, 5 * SEC, 1), LT_ADMIT);
	CHECK_EQ(consume(&tat, &r, 5 * SEC, 1), LT_DENY);
	CHECK_EQ(lt_remaining_tokens(tat, 5 * SEC, &r), 0);
}

static void rejects_not_counted(void)
{
	struct lt_rate r;
	__u64 tat = 0, before;
	int i;

	CHECK_EQ(lt_rate_init(&r, 5, 1, SEC), 0);
	CHECK_EQ(consume(&tat, &r, SEC, 5), LT_ADMIT);
	before = tat;
	for (i = 0; i < 1000; i++)
		CHECK_EQ(consume(&tat, &r, SEC + i * MS / 2, 1), LT_DENY);
	CHECK_EQ(tat, before);
	/* One leak period later exactly one token fits, as if nobody had asked. */
	CHECK_EQ(consume(&tat, &r, 2 * SEC, 1), LT_ADMIT);
	CHECK_EQ(consume(&tat, &r, 2 * SEC, 1), LT_DENY);
}

static void clock_backwards(void)
{
	struct lt_rate r;
	__u64 tat = 0, hi;

	CHECK_EQ(lt_rate_init(&r, 3, 1, SEC), 0);
	CHECK_EQ(consume(&tat, &r, 100 * SEC, 3), LT_ADMIT);
	hi = tat;
	/* A reader whose clock is behind is stricter, never looser. */
	CHECK_EQ(consume(&tat, &r, 50 * SEC, 1), LT_DENY);
	CHECK_EQ(consume(&tat, &r, 0, 1), LT_DENY);
	CHECK_EQ(tat, hi);
	CHECK_EQ(lt_remaining_tokens(tat, 50 * SEC, &r), 0);
	/* Time resumes: the bucket continues where it was. */
	CHECK_EQ(consume(&tat, &r, 101 * SEC - 1, 1), LT_DENY);
	CHECK_EQ(consume(&tat, &r, 101 * SEC, 1), LT_ADMIT);
	CHECK(tat >= hi);
}

static void retry_after_exact(void)
{
	static const __u64 rates[][3] = {
		/* capacity, tokens, period_ns */
		{ 10, 1, SEC },	       { 100, 7, 3 * SEC },
		{ 1, 1, DAY },	       { 1000000000, 1000000000, SEC },
		{ 5, 999999999, SEC }, { 64, 3, 7 * MS },
	};
	unsigned int i;

	for (i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		struct lt_rate r;
		__u64 tat = 0, now = 12345 * SEC + 678, cost = rates[i][0], ra, probe;

		CHECK_EQ(lt_rate_init(&r, rates[i][0], rates[i][1], rates[i][2]), 0);
		CHECK_EQ(consume(&tat, &r, now, cost), LT_ADMIT);
		now += 1;
		cost = rates[i][0] / 2 + 1;
		ra = lt_retry_after_ns(tat, now, &r, cost);
		CHECK(ra > 0);
		probe = tat;
		CHECK_EQ(consume(&probe, &r, now + ra - 1, cost), LT_DENY);
		CHECK_EQ(consume(&probe, &r, now + ra, cost), LT_ADMIT);
		/* And never sooner than the true rate allows: cost/R. */
		CHECK((unsigned __int128)(ra + 1) * rates[i][1] >=
		      (unsigned __int128)cost * rates[i][2] - rates[i][2] / 1000000);
	}
}

static void cost_over_capacity(void)
{
	struct lt_rate r;
	__u64 tat = 0;

	CHECK_EQ(lt_rate_init(&r, 100, 10, SEC), 0);
	CHECK_EQ(consume(&tat, &r, SEC, 101), LT_TOO_BIG);
	CHECK_EQ(consume(&tat, &r, SEC, ~0ULL), LT_TOO_BIG);
	CHECK_EQ(tat, 0);
	CHECK_EQ(lt_retry_after_ns(tat, SEC, &r, 101), ~0ULL);
	CHECK_EQ(consume(&tat, &r, SEC, 100), LT_ADMIT); /* exactly C is fine */
}

/*
 * Replays a log of (time, cost, admitted) and checks every interval between
 * two decisions against C + R*t, in exact rational arithmetic.
 */
struct ev {
	__u64 t;
	__u64 n;
};

static int check_no_overshoot(const struct ev *ev, int n, __u64 cap, __u64 tok, __u64 per)
{
	int i, j;

	for (i = 0; i < n; i++) {
		unsigned __int128 sum = 0;

		for (j = i; j < n; j++) {
			sum += ev[j].n;
			/* (sum - C) * per <= tok * (tj - ti) */
			if (sum > cap &&
			    (sum - cap) * per > (unsigned __int128)tok * (ev[j].t - ev[i].t))
				return 0;
		}
	}
	return 1;
}

static __u64 xs = 88172645463325252ULL;
static __u64 rnd(void)
{
	xs ^= xs << 13;
	xs ^= xs >> 7;
	xs ^= xs << 17;
	return xs;
}

static void never_overshoots_random(void)
{
	static const __u64 rates[][3] = {
		{ 10, 1, SEC },		{ 100, 7, 3 * SEC },
		{ 3, 1, DAY },		{ 1000, 1000000000, SEC },
		{ 50, 999999999, SEC }, { 7, 3, 7 * MS },
		{ 1, 1, US },		{ 12, 5, 11 * NS },
	};
	static struct ev ev[3000];
	unsigned int i;

	for (i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		__u64 cap = rates[i][0], tok = rates[i][1], per = rates[i][2];
		__u64 tat = 0, now = rnd() % (10 * YEAR);
		/* mean gap: the time one token takes, so demand is ~2x the rate */
		__u64 gap = per / tok ? per / tok : 1;
		struct lt_rate r;
		int n = 0, k;

		CHECK_EQ(rinit(&r, cap, tok, per), 0);
		for (k = 0; k < 3000; k++) {
			__u64 cost = 1 + rnd() % (cap < 4 ? cap : 4);

			now += rnd() % (gap + 1);
			if (consume(&tat, &r, now, cost) == LT_ADMIT) {
				ev[n].t = now;
				ev[n].n = cost;
				n++;
			}
		}
		CHECK(n > 0);
		CHECK(check_no_overshoot(ev, n, cap, tok, per));
	}
}

/* Steady demand (a request every dt) admits at least C + R*t - 1. */
static void steady_demand_at_least(__u64 cap, __u64 tok, __u64 per, __u64 start, __u64 dt,
				   __u64 steps)
{
	struct lt_rate r;
	__u64 tat = 0, now = start, k, admitted = 0;
	unsigned __int128 lhs, rhs;

	CHECK_EQ(rinit(&r, cap, tok, per), 0);
	for (k = 0; k < steps; k++, now += dt) {
		/* greedy: take as much as fits, the way a saturating client would */
		__u64 n = lt_remaining_tokens(tat, now, &r);

		if (n && consume(&tat, &r, now, n) == LT_ADMIT)
			admitted += n;
	}
	now -= dt;
	/* admitted >= C + tok*(now-start)/per - 1  <=>  (admitted+1-C)*per >= tok*t */
	lhs = (unsigned __int128)(admitted + 1 - cap) * per;
	rhs = (unsigned __int128)tok * (now - start);
	CHECK(lhs >= rhs);
	/* and never above C + R*t */
	CHECK((unsigned __int128)(admitted - cap) * per <= rhs);
}

static void one_per_day_exact(void)
{
	struct lt_rate r;
	__u64 tat = 0, t0 = 3 * SEC + 7;

	CHECK_EQ(lt_rate_init(&r, 1, 1, DAY), 0);
	CHECK_EQ(consume(&tat, &r, t0, 1), LT_ADMIT);
	CHECK_EQ(consume(&tat, &r, t0 + DAY - 1, 1), LT_DENY);
	/* restart rounding costs at most one unit of time: period >> shift */
	CHECK_EQ(consume(&tat, &r, t0 + DAY + (DAY >> r.unit_shift) + 1, 1), LT_ADMIT);
	steady_demand_at_least(2, 1, DAY, 5 * SEC, 3 * 3600 * SEC, 8 * 30);
}

static void billion_per_second_exact(void)
{
	struct lt_rate r;
	__u64 tat = 0, now = 7 * SEC + 3, i;

	CHECK_EQ(lt_rate_init(&r, 1000000000, 1000000000, SEC), 0);
	CHECK_EQ(consume(&tat, &r, now, 1000000000), LT_ADMIT);
	/* every ms exactly a million tokens leak: take them, not one more */
	for (i = 1; i <= 1000; i++) {
		CHECK_EQ(consume(&tat, &r, now + i * MS, 1000001), LT_DENY);
		CHECK_EQ(consume(&tat, &r, now + i * MS, 1000000), LT_ADMIT);
	}
	steady_demand_at_least(1000, 1000000000, SEC, 11, 333, 100000);
	steady_demand_at_least(10, 999999999, SEC, 5, 7, 100000);
}

static void ten_year_uptime(void)
{
	struct lt_rate r;
	__u64 now = 10 * YEAR + 123456789, tat = 0, ra;

	/* fastest rate: s(t) grows 4 units/ns; still far from 2^64 */
	CHECK_EQ(lt_rate_init(&r, 1000000000, 1000000000, SEC), 0);
	CHECK_EQ(consume(&tat, &r, now, 1000000000), LT_ADMIT);
	CHECK_EQ(consume(&tat, &r, now, 1), LT_DENY);
	ra = lt_retry_after_ns(tat, now, &r, 500000000);
	CHECK_EQ(ra, 500 * MS);
	CHECK_EQ(consume(&tat, &r, now + ra, 500000000), LT_ADMIT);
	steady_demand_at_least(100, 3, SEC, 10 * YEAR, 77 * MS, 10000);
	/* the limit of the range: 36 years */
	tat = 0;
	CHECK_EQ(consume(&tat, &r, LT_NOW_MAX_NS, 1000000000), LT_ADMIT);
	CHECK_EQ(consume(&tat, &r, LT_NOW_MAX_NS, 1), LT_DENY);
	CHECK_EQ(consume(&tat, &r, LT_NOW_MAX_NS + SEC, 1000000000), LT_ADMIT);
}

static void rate_init_ranges(void)
{
	struct lt_rate r;

	CHECK_EQ(lt_rate_init(&r, 0, 1, SEC), -EINVAL);
	CHECK_EQ(lt_rate_init(&r, 1, 0, SEC), -EINVAL);
	CHECK_EQ(lt_rate_init(&r, 1, 1, 0), -EINVAL);
	CHECK_EQ(lt_rate_init(&r, 1, 1, 10 * YEAR), 0);
	CHECK_EQ(lt_rate_init(&r, 1, 2000000000, SEC), 0);
	CHECK_EQ(lt_rate_init(&r, 1, 5000000000ULL, SEC), -ERANGE);
	CHECK_EQ(lt_rate_init(&r, 1ULL << 62, 1, SEC), -ERANGE);
	CHECK_EQ(lt_rate_init(&r, 1ULL << 40, 1000, SEC), 0);
	CHECK(r.unit_shift >= 1);
	CHECK_EQ(lt_rate_capacity(&r), 1ULL << 40);
}

static void remaining_and_drain(void)
{
	struct lt_rate r;
	__u64 tat = 0, now = 100 * SEC;

	CHECK_EQ(lt_rate_init(&r, 100, 10, SEC), 0);
	CHECK_EQ(lt_remaining_tokens(tat, now, &r), 100);
	CHECK_EQ(consume(&tat, &r, now, 40), LT_ADMIT);
	CHECK_EQ(lt_remaining_tokens(tat, now, &r), 60);
	CHECK_EQ(lt_drain_ns(tat, now, &r), 4 * SEC);
	CHECK_EQ(lt_remaining_tokens(tat, now + SEC, &r), 70);
	CHECK_EQ(lt_remaining_tokens(tat, now + 10 * SEC, &r), 100);
	CHECK_EQ(lt_drain_ns(tat, now + 10 * SEC, &r), 0);
}

static void unlimited_rate_admits(void)
{
	struct lt_rate r = { 0 };
	__u64 tat = 0;

	CHECK_EQ(consume(&tat, &r, SEC, 1ULL << 50), LT_ADMIT);
	CHECK_EQ(tat, 0);
}

static void refund_restores(void)
{
	struct lt_rate r;
	__u64 tat = 0, after, frac, s;

	CHECK_EQ(lt_rate_init(&r, 10, 1, SEC), 0);
	CHECK_EQ(consume(&tat, &r, SEC, 6), LT_ADMIT);
	CHECK_EQ(consume(&tat, &r, SEC, 4), LT_ADMIT);
	after = tat;
	s = lt_scaled(&r, SEC, &frac);
	CHECK_EQ(lt_bucket_undo(&tat, &r, s + (frac != 0), after, 4), 0);
	CHECK_EQ(lt_remaining_tokens(tat, SEC, &r), 4);
	CHECK_EQ(consume(&tat, &r, SEC, 4), LT_ADMIT);
	CHECK_EQ(consume(&tat, &r, SEC, 1), LT_DENY);
}

/* Two threads on one word with a frozen clock: exactly C admitted. */
struct race {
	__u64 *tat;
	struct lt_rate *r;
	__u64 admitted;
};

static void *race_fn(void *arg)
{
	struct race *x = arg;
	__u64 seen;
	int i, v;

	for (i = 0; i < 2000000; i++) {
		do
			v = lt_bucket_consume(x->tat, x->r, 42 * SEC, 1, &seen);
		while (v == LT_CONTENDED);
		x->admitted += v == LT_ADMIT;
	}
	return NULL;
}

static void concurrent_cas_exact(void)
{
	struct lt_rate r;
	__u64 tat = 0;
	struct race a = { &tat, &r, 0 }, b = { &tat, &r, 0 };
	pthread_t ta, tb;

	CHECK_EQ(lt_rate_init(&r, 1000000, 1, SEC), 0);
	pthread_create(&ta, NULL, race_fn, &a);
	pthread_create(&tb, NULL, race_fn, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK_EQ(a.admitted + b.admitted, 1000000);
}

/* The reciprocal division and the 32-bit mulhi, against the compiler's. */
static void reciprocal_division_exact(void)
{
	static const __u64 cs[] = {
		1, 2, 3, 7, 1000, 999999999, 1000000000, 86400000000000ULL, (1ULL << 63) + 1, ~0ULL
	};
	unsigned int i, k;

	for (i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
		for (k = 0; k < 20000; k++) {
			__u64 a = k < 4 ? (k < 2 ? k : ~0ULL - k) : rnd() >> (k % 64), r, q;

			q = lt_divrem(a, cs[i], ~0ULL / cs[i], &r);
			CHECK_EQ(q, a / cs[i]);
			CHECK_EQ(r, a % cs[i]);
		}
	}
	for (k = 0; k < 100000; k++) {
		__u64 a = rnd(), b = rnd(), al = (__u32)a, ah = a >> 32, bl = (__u32)b,
		      bh = b >> 32;
		__u64 ll = al * bl, hl = ah * bl, lh = al * bh, hh = ah * bh;
		__u64 mid = (ll >> 32) + (__u32)hl + (__u32)lh;

		/* the BPF branch of lt_mulhi64, spelled out, against __int128 */
		CHECK_EQ(hh + (hl >> 32) + (lh >> 32) + (mid >> 32), lt_mulhi64(a, b));
	}
}

/*
 * The L7 rates: the same bounds at units the 64-bit form cannot hold (a
 * unit of 1 token a day is 79 ns, not 0.66 s), so a fresh "2 a day" admits
 * its second request at once, not up to 0.66 s later, and a restart never
 * costs more than a unit of time at any of the slow rates here.
 */
static void slow_l7_rates_have_fine_units(void)
{
	static const __u64 slow[][3] = {
		{ 2, 1, DAY }, { 10, 10, 30 * DAY }, { 3, 1, 7 * DAY }, { 1, 1, 10 * YEAR }
	};
	struct lt_rate r, b;
	__u64 tat, t0 = 3 * SEC + 7, unit;
	unsigned i;

	for (i = 0; i < sizeof(slow) / sizeof(slow[0]); i++) {
		CHECK_EQ(lt_rate_init_l7(&r, slow[i][0], slow[i][1], slow[i][2]), 0);
		CHECK_EQ(lt_rate_init(&b, slow[i][0], slow[i][1], slow[i][2]), 0);
		CHECK(r.unit_shift > b.unit_shift); /* finer than the 64-bit form could */
		unit = lt_time_of_units(&r, 1);
		CHECK(unit <= ((slow[i][2] / slow[i][1]) >> 39) + 1); /* 2^40 units a token */
		/* a whole capacity at the start: the last within one unit */
		tat = 0;
		CHECK_EQ(consume(&tat, &r, t0, slow[i][0] > 1 ? slow[i][0] - 1 : 1), LT_ADMIT);
		if (slow[i][0] > 1)
			CHECK_EQ(consume(&tat, &r, t0 + unit, 1), LT_ADMIT);
		CHECK_EQ(consume(&tat, &r, t0 + unit, 1), LT_DENY);
		/* and no token before its time: one period per token, a unit late at most */
		CHECK_EQ(consume(&tat, &r, t0 + slow[i][2] / slow[i][1] - 1, 1), LT_DENY);
		CHECK_EQ(consume(&tat, &r, t0 + slow[i][2] / slow[i][1] + 2 * unit, 1), LT_ADMIT);
	}
	/* 2 a day: the 64-bit units refused the second request of a fresh bucket */
	CHECK_EQ(lt_rate_init(&b, 2, 1, DAY), 0);
	tat = 0;
	CHECK_EQ(consume(&tat, &b, t0, 1), LT_ADMIT);
	CHECK_EQ(consume(&tat, &b, t0 + 1 * MS, 1), LT_DENY);
	CHECK(lt_retry_after_ns(tat, t0 + 1 * MS, &b, 1) > 100 * MS);
	/* the exact bounds hold at L7 units too */
	l7 = 1;
	never_overshoots_random();
	steady_demand_at_least(2, 1, DAY, 5 * SEC, 3 * 3600 * SEC, 8 * 30);
	steady_demand_at_least(10, 10, 30 * DAY, 5 * SEC, 7 * 3600 * SEC, 8 * 30);
	steady_demand_at_least(1000, 1000000000, SEC, 11, 333, 100000);
	steady_demand_at_least(100, 3, SEC, 10 * YEAR, 77 * MS, 10000);
	l7 = 0;
}

static void muldiv_matches_128bit(void)
{
	int i;

	for (i = 0; i < 100000; i++) {
		__u64 c = 1 + rnd() % (1ULL << 40), b = rnd() % (~0ULL / c), a = rnd() >> 4, rem;
		unsigned __int128 want = (unsigned __int128)a * b / c;

		if (want >> 64)
			continue;
		CHECK_EQ(lt_muldiv(a, b, c, ~0ULL / c, &rem), (__u64)want);
		CHECK_EQ(rem, (__u64)((unsigned __int128)a * b % c));
	}
	/* b * c beyond 2^64 (the L7 rates): the 128-bit path */
	for (i = 0; i < 100000; i++) {
		__u64 c = (1ULL << 40) + rnd() % (1ULL << 52),
		      b = (1ULL << 40) + rnd() % (1ULL << 44), a = rnd() >> 4, rem;
		unsigned __int128 want = (unsigned __int128)a * b / c;

		if (want >> 64)
			continue;
		CHECK_EQ(lt_muldiv(a, b, c, ~0ULL / c, &rem), (__u64)want);
		CHECK_EQ(rem, (__u64)((unsigned __int128)a * b % c));
	}
}

int main(void)
{
	RUN(burst_exhausted);
	RUN(rejects_not_counted);
	RUN(clock_backwards);
	RUN(retry_after_exact);
	RUN(cost_over_capacity);
	RUN(never_overshoots_random);
	RUN(one_per_day_exact);
	RUN(billion_per_second_exact);
	RUN(ten_year_uptime);
	RUN(rate_init_ranges);
	RUN(remaining_and_drain);
	RUN(unlimited_rate_admits);
	RUN(refund_restores);
	RUN(concurrent_cas_exact);
	RUN(muldiv_matches_128bit);
	RUN(slow_l7_rates_have_fine_units);
	RUN(reciprocal_division_exact);
	return lt_t_done();
}
