// SPDX-License-Identifier: MIT
/*
 * test_decide.c - lib/decide.c, the decisions the agent's consume API and the
 * gateway's admission share, on plain memory standing in for the mmapped
 * lt_slots/lt_rates/lt_usage: verdicts and the view at exact times, refunds
 * of only what a reservation still adds, an undo that leaves the word as it
 * was, a stale owner generation that charges nothing, and the counters.
 * (Moved from agent/quota.c: test_quota, test_quota_state, test_reclaim and
 * test_slot run the same code through the agent's lt_quota_* callers.)
 */
#include <stdlib.h>
#include "lt_test.h"
#include "decide.h"

#define SEC 1000000000ULL
#define T0 (1000 * SEC) /* a clock far from 0 */

static struct lt_slot *slots;
static struct lt_rate *rates;
static struct lt_usage *usage;
static struct lt_decide_maps m;

/* slot on rate rid (capacity cap, leak tokens per period), empty, owned by gen. */
static void mk(__u32 slot, __u32 rid, __u64 cap, __u64 tokens, __u64 period, __u32 gen)
{
	__u32 old;
	int was_free;

	if (period)
		CHECK_EQ(lt_rate_init(&rates[rid], cap, tokens, period), 0);
	usage[slot].gen = gen;
	usage[slot].admitted = usage[slot].rejected = usage[slot].tokens = 0;
	CHECK_EQ(lt_slot_assign(slots, slot, period ? rid : 0, &old, &was_free), 0);
}

static void verdicts_and_views_at_exact_times(void)
{
	struct lt_slot_seen res;
	struct lt_view v;
	__u64 word;

	mk(5, 1, 100, 10, SEC, 7);
	CHECK_EQ(lt_decide_consume(&m, 5, 7, ~0U, 60, T0, &v, &res), LT_ADMIT);
	CHECK_EQ(v.capacity, 100);
	CHECK_EQ(v.remaining, 40);
	CHECK_EQ(v.retry_after_ns, 0);
	CHECK_EQ(v.full_in_ns, 6 * SEC);
	CHECK_EQ(v.full_in_s, 6);
	CHECK_EQ(v.leak_tokens, 1); /* 10/s, normalised to 1 per 100 ms */
	CHECK_EQ(v.leak_period_ns, SEC / 10);
	CHECK_EQ(v.slot, 5);
	CHECK(!v.unlimited);
	CHECK_EQ(res.slot, 5);
	CHECK_EQ(res.cost_units, 60ULL << rates[1].unit_shift);
	CHECK_EQ(usage[5].admitted, 1);
	CHECK_EQ(usage[5].tokens, 60);

	word = slots[5].tat;
	/* 41 more needs 1 token to leak: 100 ms, 1 s rounded up */
	CHECK_EQ(lt_decide_consume(&m, 5, 7, ~0U, 41, T0, &v, &res), LT_DENY);
	CHECK_EQ(v.remaining, 40);
	CHECK_EQ(v.retry_after_ns, SEC / 10);
	CHECK_EQ(v.retry_after_s, 1);
	CHECK_EQ(res.cost_units, 0);
	CHECK_EQ(usage[5].rejected, 1);
	CHECK_EQ(slots[5].tat, word); /* rejects are not counted */

	/* more than the capacity: never fits, nothing changes, no retry time */
	CHECK_EQ(lt_decide_consume(&m, 5, 7, ~0U, 101, T0, &v, &res), LT_TOO_BIG);
	CHECK_EQ(v.capacity, 100);
	CHECK_EQ(v.retry_after_ns, 0);
	CHECK_EQ(slots[5].tat, word);
	CHECK_EQ(usage[5].rejected, 1);
	CHECK_EQ(usage[5].admitted, 1);

	/* exactly when the retry time said, 41 fit */
	CHECK_EQ(lt_decide_consume(&m, 5, 7, ~0U, 41, T0 + SEC / 10, &v, &res), LT_ADMIT);
	CHECK_EQ(v.remaining, 0);
}

static void refund_gives_back_only_what_is_left(void)
{
	struct lt_slot_seen res;
	struct lt_view v;

	mk(6, 2, 100, 10, SEC, 1);
	CHECK_EQ(lt_decide_consume(&m, 6, 1, ~0U, 60, T0, &v, &res), LT_ADMIT);
	/* 3 s later 30 tokens have leaked: only 30 of the 60 are still there */
	CHECK_EQ(lt_decide_refund(&m, &res, ~0ULL, T0 + 3 * SEC), 30);
	CHECK_EQ(usage[6].tokens, 30);
	CHECK_EQ(lt_decide_peek(&m, 6, 1, ~0U, T0 + 3 * SEC, &v), 0);
	CHECK_EQ(v.remaining, 100);
	/* nothing twice */
	CHECK_EQ(lt_decide_refund(&m, &res, ~0ULL, T0 + 3 * SEC), 0);

	/* in parts: 10, then 15, then the rest (35) */
	CHECK_EQ(lt_decide_consume(&m, 6, 1, ~0U, 60, T0 + 20 * SEC, &v, &res), LT_ADMIT);
	CHECK_EQ(lt_decide_refund(&m, &res, 10, T0 + 20 * SEC), 10);
	CHECK_EQ(lt_decide_refund(&m, &res, 15, T0 + 20 * SEC), 15);
	CHECK_EQ(lt_decide_refund(&m, &res, 1000, T0 + 20 * SEC), 35);
	CHECK_EQ(res.cost_units, 0);
	CHECK_EQ(lt_decide_peek(&m, 6, 1, ~0U, T0 + 20 * SEC, &v), 0);
	CHECK_EQ(v.remaining, 100);
}

static void undo_leaves_the_word_as_it_was(void)
{
	struct lt_slot_seen a, b;
	struct lt_view v;
	__u64 word;

	mk(7, 3, 1000, 1, SEC, 3);
	CHECK_EQ(lt_decide_consume(&m, 7, 3, ~0U, 10, T0, &v, &a), LT_ADMIT);
	word = slots[7].tat;
	CHECK_EQ(lt_decide_consume(&m, 7, 3, ~0U, 20, T0, &v, &b), LT_ADMIT);
	lt_decide_undo(&m, &b, T0);
	CHECK_EQ(slots[7].tat, word);
	CHECK_EQ(usage[7].admitted, 1);
	CHECK_EQ(usage[7].tokens, 10);
	CHECK_EQ(b.cost_units, 0);
	lt_decide_undo(&m, &b, T0); /* a second undo changes nothing */
	CHECK_EQ(slots[7].tat, word);
	CHECK_EQ(usage[7].admitted, 1);
}

static void stale_owner_generation_charges_nothing(void)
{
	struct lt_slot_seen res;
	struct lt_view v;
	__u64 word;
	__u32 h;

	mk(8, 4, 100, 10, SEC, 0x1234);
	h = lt_handle(8, 0x1234);
	CHECK_EQ(lt_handle_slot(h), 8);
	CHECK_EQ(lt_handle_gen(h), 0x234);
	CHECK_EQ(lt_decide_consume(&m, lt_handle_slot(h), lt_handle_gen(h), LT_HANDLE_GEN_MASK, 5,
				   T0, &v, &res),
		 LT_ADMIT);
	word = slots[8].tat;
	usage[8].gen = 0x1235; /* the slot was given to another key */
	CHECK_EQ(lt_decide_consume(&m, lt_handle_slot(h), lt_handle_gen(h), LT_HANDLE_GEN_MASK, 5,
				   T0, &v, &res),
		 LT_FREED);
	CHECK_EQ(lt_decide_consume(&m, 8, 0x1234, ~0U, 5, T0, &v, &res), LT_FREED);
	CHECK_EQ(res.cost_units, 0);
	CHECK_EQ(v.capacity, 0);
	CHECK_EQ(slots[8].tat, word);
	CHECK_EQ(usage[8].admitted, 1);
	CHECK_EQ(usage[8].rejected, 0);
	CHECK_EQ(lt_decide_peek(&m, 8, 0x1234, ~0U, T0, &v), LT_FREED);
	CHECK_EQ(lt_decide_peek(&m, 8, 0x1235, ~0U, T0, &v), 0);
	CHECK_EQ(v.remaining, 95);
}

static void unlimited_and_freed_slots(void)
{
	struct lt_slot_seen res;
	struct lt_view v;
	__u32 old;

	mk(9, 0, 0, 0, 0, 1);
	CHECK_EQ(lt_decide_consume(&m, 9, 1, ~0U, 1000000, T0, &v, &res), LT_ADMIT);
	CHECK(v.unlimited);
	CHECK_EQ(v.remaining, ~0ULL);
	CHECK_EQ(res.cost_units, 0); /* nothing to give back */
	CHECK_EQ(lt_decide_refund(&m, &res, ~0ULL, T0), 0);

	mk(10, 5, 100, 10, SEC, 1);
	CHECK_EQ(lt_slot_release(slots, 10, &old), 0);
	CHECK_EQ(lt_decide_consume(&m, 10, 1, ~0U, 1, T0, &v, &res), LT_FREED);
	CHECK_EQ(usage[10].admitted + usage[10].rejected, 0);
}

/* A view of a bucket that does not exist yet (the agent's peek of a key). */
static void view_of_an_empty_bucket(void)
{
	struct lt_rate r;
	struct lt_view v;

	CHECK_EQ(lt_rate_init(&r, 500, 1, 60 * SEC), 0);
	lt_view_fill(&r, 0, T0, 0, LT_ADMIT, &v);
	CHECK_EQ(v.capacity, 500);
	CHECK_EQ(v.remaining, 500);
	CHECK_EQ(v.full_in_ns, 0);
	CHECK_EQ(v.leak_tokens, 1);
	CHECK_EQ(v.leak_period_ns, 60 * SEC);
}

int main(void)
{
	slots = calloc(LT_MAX_SLOTS, sizeof(*slots));
	rates = calloc(LT_MAX_RATES, sizeof(*rates));
	usage = calloc(LT_MAX_SLOTS, sizeof(*usage));
	m = (struct lt_decide_maps){ slots, rates, usage };
	RUN(verdicts_and_views_at_exact_times);
	RUN(refund_gives_back_only_what_is_left);
	RUN(undo_leaves_the_word_as_it_was);
	RUN(stale_owner_generation_charges_nothing);
	RUN(unlimited_and_freed_slots);
	RUN(view_of_an_empty_bucket);
	free(slots);
	free(rates);
	free(usage);
	return lt_t_done();
}
