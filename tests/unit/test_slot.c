// SPDX-License-Identifier: MIT
/*
 * test_slot.c - the L7 slot protocol (include/lt_slot.h) on anonymous shared
 * memory standing in for the mmapped lt_slots/lt_rates:
 *   no writer killed or stopped at any point leaves a slot anybody waits on;
 *   a verdict never pairs a word with a rate it was not measured in;
 *   a refund gives back only what is still in the bucket (exact oracle);
 *   a word in any state is usable.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "lt_test.h"

/* Runs once inside the next decider's read-validate window (then clears). */
struct lt_slot;
static void (*race_fn)(struct lt_slot *s);
#define LT_SLOT_RACE_HOOK(s)                                    \
	do {                                                    \
		if (race_fn) {                                  \
			void (*f_)(struct lt_slot *) = race_fn; \
			race_fn = NULL;                         \
			f_(s);                                  \
		}                                               \
	} while (0)

#include "lt_slot.h"
#include "quota.h"
#include "units.h"
#include "log.h"

#define US 1000ULL
#define MS (1000 * US)
#define SEC (1000 * MS)

static struct lt_slot *slots;
static struct lt_rate *rates;
static struct lt_usage *usage;

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * SEC + (__u64)ts.tv_nsec;
}

static __u64 xs = 0x2545f4914f6cdd1dULL;
static __u64 rnd(void)
{
	xs ^= xs << 13;
	xs ^= xs >> 7;
	xs ^= xs << 17;
	return xs;
}

static void *shared(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

/* A fresh slot on rate rid, empty. */
static void fresh(__u32 slot, __u32 rid)
{
	__u32 old;
	int was_free;

	CHECK_EQ(lt_slot_assign(slots, slot, rid, &old, &was_free), 0);
}

static int consume(__u32 slot, __u64 now, __u64 n, struct lt_slot_seen *seen)
{
	struct lt_slot_seen tmp;

	return lt_slot_consume(slots, rates, slot, now, n, seen ? seen : &tmp);
}

/* ---- item 7: no lock survives its owner ----------------------------------- */

#define KSLOTS 8

/* Rebases KSLOTS slots between rates 1 and 2 for ever, deciding in between. */
static void __attribute__((noreturn)) rebaser(void)
{
	struct lt_slot_seen seen;
	__u32 rid = 1, old, i;
	__u64 given;

	for (;;) {
		for (i = 1; i <= KSLOTS; i++) {
			lt_slot_rebase(slots, rates, i, rid, mono_ns(), &old);
			if (lt_slot_consume(slots, rates, i, mono_ns(), 1, &seen) == LT_ADMIT)
				lt_slot_refund(slots, &seen, 1, mono_ns(), &given);
		}
		rid = rid == 1 ? 2 : 1;
	}
}

/* Every operation on every slot answers, and soon: nobody holds anything. */
static void check_all_usable(const char *what, int trial)
{
	struct lt_slot_seen seen;
	__u32 i, old;
	__u64 t0 = mono_ns(), given;
	int v;

	for (i = 1; i <= KSLOTS; i++) {
		v = consume(i, mono_ns(), 1, &seen);
		if (v != LT_ADMIT && v != LT_DENY) {
			printf("# %s, trial %d: slot %u decides %d\n", what, trial, i, v);
			lt_t_cur_failed = 1;
		}
		if (v == LT_ADMIT)
			CHECK_EQ(lt_slot_refund(slots, &seen, 1, mono_ns(), &given), 0);
		CHECK_EQ(lt_slot_peek(slots, rates, i, mono_ns(), &seen), 0);
		CHECK_EQ(lt_slot_rebase(slots, rates, i, 1 + (__u32)(trial & 1), mono_ns(), &old),
			 0);
		v = consume(i, mono_ns(), 1, NULL);
		CHECK(v == LT_ADMIT || v == LT_DENY);
	}
	/* bounded: a handful of CASes per slot, nowhere near a second */
	if (mono_ns() - t0 > SEC) {
		printf("# %s, trial %d: took %llu ms\n", what, trial,
		       (unsigned long long)((mono_ns() - t0) / MS));
		lt_t_cur_failed = 1;
	}
}

static void rebase_killed_or_stopped_leaves_slots_usable(void)
{
	int trial, status;

	CHECK_EQ(lt_rate_init(&rates[1], 50, 10, SEC), 0);
	CHECK_EQ(lt_rate_init(&rates[2], 7, 1, MS), 0);
	for (trial = 0; trial < 160 && !lt_t_cur_failed; trial++) {
		int sig = trial & 1 ? SIGKILL : SIGSTOP;
		pid_t pid;

		pid = fork();
		if (pid < 0) {
			CHECK(pid >= 0);
			return;
		}
		if (!pid)
			rebaser();
		usleep((useconds_t)(200 + rnd() % 2000));
		kill(pid, sig);
		if (sig == SIGSTOP)
			waitpid(pid, &status, WUNTRACED); /* stopped mid-whatever */
		/* the stopped owner never comes back while we decide and rebase */
		check_all_usable(sig == SIGKILL ? "SIGKILL" : "SIGSTOP", trial);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
}

/*
 * The same at the agent's level: an agent killed while it changes a limit
 * (which rebases every bucket of the tier) restarts, re-applies the stored
 * limits and decides, each under a time limit.
 */
static void agent_killed_mid_limit_change_restarts(void)
{
	struct lt_limit a = { 100, 10, SEC }, b = { 300, 7, SEC };
	struct lt_quota_maps m = { slots, rates, usage, -1 };
	char db[64] = "/tmp/lt-slot-XXXXXX", err[256], key[64];
	struct lt_view v;
	struct lt_slot_seen seen;
	struct lt_store st;
	struct lt_quota *q;
	__u32 s, i;
	int fd, trial, status;
	__u64 t0;

	memset(slots, 0, 64 * sizeof(*slots));
	fd = mkstemp(db);
	close(fd);
	CHECK_EQ(lt_store_open(&st, db, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_open(&q, &st, &m, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_limit_set(q, "tier", "T", "*", &a, err, sizeof(err)), 0);
	for (i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "u/T/p/%u", i);
		CHECK_EQ(lt_quota_bucket(q, key, NULL, &s, err, sizeof(err)), 0);
	}
	lt_quota_close(q);
	lt_store_close(&st);
	for (trial = 0; trial < 12 && !lt_t_cur_failed; trial++) {
		pid_t pid = fork();

		if (!pid) {
			if (lt_store_open(&st, db, err, sizeof(err)) ||
			    lt_quota_open(&q, &st, &m, err, sizeof(err)))
				_exit(1);
			for (i = 0;; i++)
				lt_quota_limit_set(q, "tier", "T", "*", i & 1 ? &a : &b, err,
						   sizeof(err));
		}
		usleep((useconds_t)(20000 + rnd() % 30000));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		t0 = mono_ns();
		CHECK_EQ(lt_store_open(&st, db, err, sizeof(err)), 0);
		CHECK_EQ(lt_quota_open(&q, &st, &m, err, sizeof(err)), 0);
		for (i = 0; i < 40; i++) {
			int vd;

			snprintf(key, sizeof(key), "u/T/p/%u", i);
			CHECK_EQ(lt_quota_bucket(q, key, NULL, &s, err, sizeof(err)), 0);
			vd = lt_quota_consume(q, s, 1, lt_now_ns(), &v, &seen);
			CHECK(vd == LT_ADMIT || vd == LT_DENY);
			CHECK_EQ(lt_quota_peek(q, s, lt_now_ns(), &v), 0);
			CHECK(v.capacity == 100 || v.capacity == 300);
		}
		lt_quota_close(q);
		lt_store_close(&st);
		if (mono_ns() - t0 > 5 * SEC) {
			printf("# trial %d: restart took %llu ms\n", trial,
			       (unsigned long long)((mono_ns() - t0) / MS));
			lt_t_cur_failed = 1;
		}
	}
	unlink(db);
}

/*
 * ABI level: whatever a writer of any version left in a slot (the old
 * protocol's lock word, a freed slot, a rate id never written, any gen and
 * refund count), every operation answers and the slot can be put right.
 */
static void word_in_any_state_is_usable(void)
{
	static const __u64 tats[] = { 0,
				      1,
				      12345 * SEC,
				      LT_TAT_LIMIT - 1,
				      LT_TAT_FREE,
				      LT_TAT_FREE + 5,
				      LT_TAT_LEGACY_BUSY };
	static const __u32 rids[] = { 0, 1, 77 };
	struct lt_slot_seen seen;
	__u64 now = 1000 * SEC, given;
	unsigned int i, j, k;
	__u32 old;
	int v, was_free;

	CHECK_EQ(lt_rate_init(&rates[1], 10, 1, SEC), 0);
	memset(&rates[77], 0, sizeof(rates[77])); /* never written: unlimited */
	for (i = 0; i < sizeof(tats) / sizeof(tats[0]); i++) {
		for (j = 0; j < sizeof(rids) / sizeof(rids[0]); j++) {
			for (k = 0; k < 4; k++) {
				__u64 meta = rids[j] | (rnd() & ~LT_META_RID_MASK);

				slots[3].tat = tats[i];
				slots[3].meta = meta;
				v = consume(3, now, 1, &seen);
				CHECK(v == LT_ADMIT || v == LT_DENY || v == LT_FREED);
				CHECK_EQ(v == LT_FREED, tats[i] == LT_TAT_FREE);
				if (v == LT_ADMIT)
					CHECK_EQ(lt_slot_refund(slots, &seen, 1, now, &given), 0);
				v = lt_slot_peek(slots, rates, 3, now, &seen);
				CHECK_EQ(v, tats[i] == LT_TAT_FREE ? LT_FREED : 0);
				CHECK(v || seen.tat < LT_TAT_LIMIT); /* a lock reads as a level */
				v = lt_slot_rebase(slots, rates, 3, 1, now, &old);
				CHECK_EQ(v, tats[i] == LT_TAT_FREE ? -ENOENT : 0);
				v = lt_slot_free_if_empty(slots, rates, 3, now, 0, &old);
				CHECK(v == 0 || v == -EBUSY || v == -ENOENT);
				CHECK_EQ(lt_slot_assign(slots, 3, 1, &old, &was_free), 0);
				/* and now it is an ordinary empty bucket of rate 1 */
				CHECK_EQ(consume(3, now, 10, NULL), LT_ADMIT);
				CHECK_EQ(consume(3, now, 1, NULL), LT_DENY);
				CHECK_EQ(consume(3, now + SEC, 1, NULL), LT_ADMIT);
			}
		}
	}
	/* the old lock word, left by a killed agent of the previous protocol, is
	 * a full bucket from the first decision on: it drains and serves again */
	slots[4].tat = LT_TAT_LEGACY_BUSY;
	slots[4].meta = 1;
	CHECK_EQ(consume(4, now, 1, NULL), LT_DENY);
	CHECK_EQ(consume(4, now + 10 * SEC + 1, 10, NULL), LT_ADMIT);
}

/* ---- a verdict is never made of a word and another rate -------------------- */

static __u32 race_to;
static void race_rebase(struct lt_slot *s)
{
	__u32 old;

	CHECK_EQ(lt_slot_rebase(slots, rates, (__u32)(s - slots), race_to, 1000 * SEC, &old), 0);
}

/*
 * The decider reads the word and its rate; the agent rebases in between. A
 * full bucket of capacity 10 becomes 10 used of 100: the decision must be
 * made on (rebased word, new rate) and admit, not deny on (old word, new
 * rate) or (old word, old rate) after the change. And the other way round.
 */
static void deny_never_pairs_old_word_with_new_rate(void)
{
	struct lt_slot_seen seen;
	__u64 now = 1000 * SEC;

	CHECK_EQ(lt_rate_init(&rates[1], 10, 1, SEC), 0);
	CHECK_EQ(lt_rate_init(&rates[2], 100, 1, SEC), 0);
	fresh(5, 1);
	CHECK_EQ(consume(5, now, 10, NULL), LT_ADMIT);
	race_to = 2;
	race_fn = race_rebase;
	CHECK_EQ(consume(5, now, 5, &seen), LT_ADMIT);
	CHECK_EQ(lt_rate_capacity(&seen.rate), 100);
	CHECK_EQ(lt_remaining_tokens(seen.tat, now, &seen.rate), 85);

	/* stricter: 10 used of 100 becomes 10 used of 10 under the decider */
	fresh(6, 2);
	CHECK_EQ(consume(6, now, 10, NULL), LT_ADMIT);
	race_to = 1;
	race_fn = race_rebase;
	CHECK_EQ(consume(6, now, 5, &seen), LT_DENY);
	CHECK_EQ(lt_rate_capacity(&seen.rate), 10);
	/* a peek too reports one consistent pair */
	race_to = 2;
	race_fn = race_rebase;
	CHECK_EQ(lt_slot_peek(slots, rates, 6, now, &seen), 0);
	CHECK_EQ(lt_rate_capacity(&seen.rate), 100);
	CHECK_EQ(lt_remaining_tokens(seen.tat, now, &seen.rate), 90);
}

/* ---- item 12: a freed rate id rewritten under a decider -------------------- */

static void race_reuse(struct lt_slot *s)
{
	__u32 slot = (__u32)(s - slots), old;

	/* the agent moves the slot away, frees id 1, reuses it for another rate
	 * (a plain, non-atomic rewrite) and moves the slot back onto it */
	CHECK_EQ(lt_slot_rebase(slots, rates, slot, 2, 1000 * SEC, &old), 0);
	CHECK_EQ(lt_rate_init(&rates[1], 1000, 1, SEC), 0);
	CHECK_EQ(lt_slot_rebase(slots, rates, slot, 1, 1000 * SEC, &old), 0);
}

static void reused_rate_id_is_never_read_stale(void)
{
	struct lt_slot_seen seen;
	__u64 now = 1000 * SEC;

	CHECK_EQ(lt_rate_init(&rates[1], 10, 1, SEC), 0);
	CHECK_EQ(lt_rate_init(&rates[2], 20, 1, SEC), 0);
	fresh(7, 1);
	CHECK_EQ(consume(7, now, 10, NULL), LT_ADMIT);
	race_fn = race_reuse;
	/* same rid, same tat units? no: gen moved, so the copy taken before the
	 * rewrite is thrown away and the decision uses the new rates[1] */
	CHECK_EQ(consume(7, now, 500, &seen), LT_ADMIT);
	CHECK_EQ(lt_rate_capacity(&seen.rate), 1000);
	CHECK_EQ(lt_meta_rid(seen.meta), 1);
}

/*
 * The agent never rewrites a rate id that some slot still names, even a
 * slot its store does not know (a lost database, or a slot a stale gateway
 * cache decides on): e480f8a counted only the store's buckets and handed
 * id 1 to the first new limit, rewriting it under that slot.
 */
static void rate_id_named_by_a_leftover_slot_is_not_reused(void)
{
	struct lt_limit l = { 100, 10, SEC };
	struct lt_quota_maps m = { slots, rates, usage, -1 };
	char db[64] = "/tmp/lt-slot-XXXXXX", err[256];
	struct lt_rate before;
	struct lt_store st;
	struct lt_quota *q;
	__u32 s;
	int fd;

	memset(slots, 0, LT_MAX_SLOTS * sizeof(*slots));
	memset(rates, 0, 64 * sizeof(*rates));
	CHECK_EQ(lt_rate_init(&rates[1], 7, 1, SEC), 0);
	before = rates[1];
	slots[40].tat = 123;
	slots[40].meta = 1; /* names rid 1; no store knows it */
	fd = mkstemp(db);
	close(fd);
	CHECK_EQ(lt_store_open(&st, db, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_open(&q, &st, &m, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_limit_set(q, "tier", "T", "*", &l, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "u/T/p/a", NULL, &s, err, sizeof(err)), 0);
	CHECK(lt_meta_rid(slots[s].meta) != 1);
	CHECK(!memcmp(&rates[1], &before, sizeof(before)));
	CHECK_EQ(consume(40, 1000 * SEC, 7, NULL), LT_ADMIT); /* still its own rate */
	lt_quota_close(q);
	lt_store_close(&st);
	unlink(db);
}

/* ---- item 8: refunds ------------------------------------------------------ */

static __u64 refund_tokens(struct lt_slot_seen *r, __u64 tokens, __u64 now)
{
	__u64 given = 0;

	CHECK_EQ(lt_slot_refund(slots, r, tokens << r->rate.unit_shift, now, &given), 0);
	return given >> r->rate.unit_shift;
}

/*
 * The case: C = 10 at 1/s. A takes 10 at 100 s, the bucket drains,
 * B restarts it at 111 s and takes 10, A refunds 10: nothing of A is in the
 * bucket any more, so nothing comes back, and C is denied at 111 s.
 */
static void refund_after_drain_gives_nothing_back(void)
{
	struct lt_slot_seen a, b;

	CHECK_EQ(lt_rate_init(&rates[1], 10, 1, SEC), 0);
	fresh(8, 1);
	CHECK_EQ(consume(8, 100 * SEC, 10, &a), LT_ADMIT);
	CHECK_EQ(consume(8, 111 * SEC, 10, &b), LT_ADMIT);
	CHECK_EQ(refund_tokens(&a, 10, 111 * SEC), 0);
	CHECK_EQ(consume(8, 111 * SEC, 10, NULL), LT_DENY);
	/* half drained: half comes back, exactly */
	fresh(8, 1);
	CHECK_EQ(consume(8, 100 * SEC, 10, &a), LT_ADMIT);
	CHECK_EQ(refund_tokens(&a, 10, 105 * SEC), 5);
	CHECK_EQ(consume(8, 105 * SEC, 10, NULL), LT_ADMIT);
	CHECK_EQ(consume(8, 105 * SEC, 1, NULL), LT_DENY);
}

/*
 * A refund below moves the reservations above it down; their own refund
 * must not count units that have leaked since. A 5 and B 5 at 100 s; A gives
 * back 4 at 101 s (1 leaked); at 104 s only 2 of B remain, C takes 8, and B's
 * refund may give back 2, not 5 (5 would let D take 13 at 104 s, C = 10).
 */
static void refund_after_refunds_below_is_not_double_counted(void)
{
	struct lt_slot_seen a, b, c;

	CHECK_EQ(lt_rate_init(&rates[1], 10, 1, SEC), 0);
	fresh(9, 1);
	CHECK_EQ(consume(9, 100 * SEC, 5, &a), LT_ADMIT);
	CHECK_EQ(consume(9, 100 * SEC, 5, &b), LT_ADMIT);
	CHECK_EQ(refund_tokens(&a, 5, 101 * SEC), 4);
	CHECK_EQ(consume(9, 104 * SEC, 8, &c), LT_ADMIT);
	CHECK(refund_tokens(&b, 5, 104 * SEC) <= 2);
	CHECK_EQ(consume(9, 104 * SEC, 3, NULL), LT_DENY);
	/* C is on top and nothing moved it: all 8 come back */
	CHECK_EQ(refund_tokens(&c, 8, 104 * SEC), 8);
}

/*
 * Settling order does not matter when the level under a reservation is
 * smaller than what was refunded above it: A, B and C (100 each) stacked on an
 * empty bucket, given back whole in each of the 6 orders, all come back and
 * the bucket is empty again. Before res->under_units, a reservation settled
 * after those above it counted their refunds as its own displacement: A got
 * back nothing after B and C.
 */
static void refund_order_of_settlement_does_not_matter(void)
{
	static const int ord[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
				       { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
	struct lt_slot_seen r[3];
	int p, i;

	CHECK_EQ(lt_rate_init(&rates[1], 1000, 1, SEC), 0);
	for (p = 0; p < 6; p++) {
		fresh(12, 1);
		for (i = 0; i < 3; i++)
			CHECK_EQ(consume(12, 100 * SEC, 100, &r[i]), LT_ADMIT);
		for (i = 0; i < 3; i++)
			CHECK_EQ(refund_tokens(&r[ord[p][i]], 100, 100 * SEC), 100);
		CHECK_EQ(lt_remaining_tokens(slots[12].tat, 100 * SEC, &rates[1]), 1000);
	}
	/* with 50 under A (an earlier admission never settled), A loses at most those 50 */
	fresh(12, 1);
	CHECK_EQ(consume(12, 100 * SEC, 50, NULL), LT_ADMIT);
	for (i = 0; i < 3; i++)
		CHECK_EQ(consume(12, 100 * SEC, 100, &r[i]), LT_ADMIT);
	CHECK_EQ(refund_tokens(&r[2], 100, 100 * SEC), 100);
	CHECK_EQ(refund_tokens(&r[1], 100, 100 * SEC), 100);
	CHECK(refund_tokens(&r[0], 100, 100 * SEC) >= 50);
}

/* A reservation given back in parts: never more than it was. */
static void refund_in_parts_never_exceeds_cost(void)
{
	struct lt_slot_seen a;

	CHECK_EQ(lt_rate_init(&rates[1], 100, 1, SEC), 0);
	fresh(10, 1);
	CHECK_EQ(consume(10, 100 * SEC, 30, &a), LT_ADMIT);
	CHECK_EQ(refund_tokens(&a, 10, 100 * SEC), 10);
	CHECK_EQ(refund_tokens(&a, 15, 100 * SEC), 15);
	CHECK_EQ(refund_tokens(&a, 15, 100 * SEC), 5);
	CHECK_EQ(refund_tokens(&a, 1, 100 * SEC), 0);
	CHECK_EQ(lt_remaining_tokens(slots[10].tat, 100 * SEC, &rates[1]), 100);
}

/*
 * The oracle. Each admission i at time t_i counts its net units (cost minus
 * what its refunds gave back); for every window [t_i, t_j] the net total is
 * at most C + R*(t_j - t_i), in exact 128-bit rational arithmetic.
 */
struct adm {
	__u64 t; /* ns */
	__u64 net; /* units */
};

static int window_ok(const struct adm *ev, int n, const struct lt_rate *r, int quiet)
{
	int i, j;

	for (i = 0; i < n; i++) {
		unsigned __int128 sum = 0;

		for (j = i; j < n; j++) {
			sum += ev[j].net;
			/* (sum - cap) * period <= units_per_period * (tj - ti) */
			if (sum > r->cap_units &&
			    (sum - r->cap_units) * r->period_ns >
				    (unsigned __int128)r->units_per_period * (ev[j].t - ev[i].t)) {
				if (quiet)
					return 0;
				printf("# window [%llu, %llu] ns: %llu units net > C + R*t\n",
				       (unsigned long long)ev[i].t, (unsigned long long)ev[j].t,
				       (unsigned long long)sum);
				return 0;
			}
		}
	}
	return 1;
}

/* e480f8a's lt_quota_refund: subtract the cost from the word, whatever. */
static __u64 blind_refund(struct lt_slot *s, __u64 units)
{
	__u64 tat = s->tat, meta = s->meta;

	while (!lt_slot_cas(s, &tat, &meta, tat > units ? tat - units : 0, meta))
		;
	return units;
}

#define NADM 1500

static int l7; /* refund_run on an L7 rate (lt_rate_init_l7: the quota's, finer units) */

/* Random interleavings of consume and refund; 1 = within C + R*t. */
static int refund_run(__u64 cap, __u64 tok, __u64 per, int blind)
{
	static struct adm ev[NADM];
	static struct lt_slot_seen res[NADM];
	__u64 gap = per / tok ? per / tok : 1, now = rnd() % (1000 * SEC);
	int n = 0, k;

	CHECK_EQ(l7 ? lt_rate_init_l7(&rates[1], cap, tok, per) :
		      lt_rate_init(&rates[1], cap, tok, per),
		 0);
	fresh(11, 1);
	for (k = 0; k < 4 * NADM && n < NADM; k++) {
		now += rnd() % (2 * gap + 1);
		if (rnd() % 5 < 3) {
			__u64 cost = 1 + rnd() % (cap < 6 ? cap : cap / 3);

			if (consume(11, now, cost, &res[n]) == LT_ADMIT) {
				ev[n].t = now;
				ev[n].net = res[n].cost_units;
				n++;
			}
		} else if (n) {
			/* settle a random outstanding reservation, part or whole */
			int i = (int)(rnd() % (__u64)(n < 8 ? n : 8)) + n - (n < 8 ? n : 8);
			__u64 units = 1 + rnd() % (res[i].cost_units ? res[i].cost_units : 1);
			__u64 given = 0;

			if (!res[i].cost_units)
				continue;
			if (blind) {
				given = blind_refund(&slots[11], units);
				res[i].cost_units -= units;
			} else {
				CHECK_EQ(lt_slot_refund(slots, &res[i], units, now, &given), 0);
			}
			ev[i].net -= given;
		}
	}
	return window_ok(ev, n, &rates[1], blind);
}

/* The oracles' rates: capacity, tokens per period, period (ns): tiny to 2^40, 7 ms to 10 years. */
static const __u64 cfg[][3] = {
	{ 10, 1, SEC },
	{ 100, 7, 3 * SEC },
	{ 3, 1, 86400 * SEC },
	{ 1000, 1000000, SEC },
	{ 50, 999999999, SEC },
	{ 7, 3, 7 * MS },
	{ 1ULL << 40, 1, 3650ULL * 86400 * SEC },
};

static void refunds_never_exceed_c_plus_rt_random(void)
{
	unsigned int i;
	int r, blind_caught = 0;

	for (i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++) {
		for (r = 0; r < 6; r++)
			CHECK(refund_run(cfg[i][0], cfg[i][1], cfg[i][2], 0));
		/* the same schedules with e480f8a's refund do break it (so they
		 * reach the case) */
		for (r = 0; r < 6; r++)
			blind_caught += !refund_run(cfg[i][0], cfg[i][1], cfg[i][2], 1);
	}
	CHECK(blind_caught > 0);
	/* the rates the agent gives L7 buckets (2^40 units a token where 64 bits held fewer) */
	l7 = 1;
	for (i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++)
		for (r = 0; r < 6; r++)
			CHECK(refund_run(cfg[i][0], cfg[i][1], cfg[i][2], 0));
	l7 = 0;
}

/*
 * The adversary's oracle: admissions, charges (lt_slot_charge, up to 2C of
 * level) and refunds of any outstanding reservation or charge, in parts, in
 * any order, with drains (long gaps) and bursts (no time at all). The
 * invariant behind C + R*t, tat >= R*t1 + net(>= t1), counts the charges
 * too, so every window that ENDS at an admission holds at most C + R*t of
 * net (admissions and charges both); windows ending at a charge may not.
 */
struct adv {
	__u64 t; /* ns */
	__u64 net; /* units */
	int admit; /* 1 = an admission, 0 = a charge */
};

static __u64 adv_stale; /* ns: a refund's clock read this much before its CAS, at most */

static int adv_ok(const struct adv *ev, int n, const struct lt_rate *r)
{
	int i, j;

	for (i = 0; i < n; i++) {
		unsigned __int128 sum = 0;

		for (j = i; j < n; j++) {
			sum += ev[j].net;
			if (!ev[j].admit)
				continue;
			if (sum > r->cap_units && (sum - r->cap_units) * r->period_ns >
							  (unsigned __int128)r->units_per_period *
								  (ev[j].t - ev[i].t + adv_stale)) {
				printf("# adv window [%d %llu, %d %llu] ns: %llu units net > C + R*t\n",
				       i, (unsigned long long)ev[i].t, j,
				       (unsigned long long)ev[j].t, (unsigned long long)sum);
				return 0;
			}
		}
	}
	return 1;
}

#define NADV 600

static int adv_run(__u64 cap, __u64 tok, __u64 per)
{
	static struct adv ev[NADV];
	static struct lt_slot_seen res[NADV];
	__u64 gap = per / tok ? per / tok : 1, now = rnd() % (1000 * SEC);
	int n = 0, k;

	CHECK_EQ(l7 ? lt_rate_init_l7(&rates[1], cap, tok, per) :
		      lt_rate_init(&rates[1], cap, tok, per),
		 0);
	fresh(13, 1);
	for (k = 0; k < 6 * NADV && n < NADV; k++) {
		__u64 c = rnd() % 16;

		if (c < 3)
			now += rnd() % (2 * gap + 1);
		else if (c == 3)
			now += rnd() % (cap * gap + 1);
		c = rnd() % 10;
		if (c < 4) {
			__u64 cost = 1 + rnd() % (cap < 6 ? cap : cap / (1 + rnd() % 4));

			if (consume(13, now, cost, &res[n]) == LT_ADMIT) {
				ev[n].t = now;
				ev[n].net = res[n].cost_units;
				ev[n].admit = 1;
				n++;
			}
		} else if (c < 5) {
			__u64 cost = 1 + rnd() % (cap < 6 ? cap : cap / 2);

			CHECK_EQ(lt_slot_charge(slots, rates, 13, now, cost, &res[n]), 0);
			if (res[n].cost_units) {
				ev[n].t = now;
				ev[n].net = res[n].cost_units;
				ev[n].admit = 0;
				n++;
			}
		} else if (n) {
			int i = (int)(rnd() % (__u64)n);
			__u64 units, given = 0, t;

			if (!res[i].cost_units)
				continue;
			units = rnd() % 3 ? res[i].cost_units : 1 + rnd() % res[i].cost_units;
			if (rnd() % 4 == 0 && (res[i].rate.unit_shift || 1))
				units = 1 + rnd() % (1ULL << (res[i].rate.unit_shift + 1));
			/* its clock read before its CAS, never before its admission */
			t = now - (adv_stale ? rnd() % (adv_stale + 1) : 0);
			if (t < ev[i].t)
				t = ev[i].t;
			CHECK_EQ(lt_slot_refund(slots, &res[i], units, t, &given), 0);
			ev[i].net -= given;
		}
	}
	return adv_ok(ev, n, &rates[1]);
}

static void refunds_and_charges_adversarial(void)
{
	unsigned int i;
	int r, bad = 0;
	int runs = getenv("ADV_RUNS") ? atoi(getenv("ADV_RUNS")) : 20;

	for (l7 = 0; l7 < 2; l7++)
		for (i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++)
			for (r = 0; r < runs; r++)
				if (!adv_run(cfg[i][0], cfg[i][1], cfg[i][2])) {
					printf("# cfg %u l7 %d run %d\n", i, l7, r);
					bad++;
					break;
				}
	l7 = 0;
	/*
	 * Refunds whose clock was read up to S before their CAS (a settler
	 * preempted between the two): within C + R*(t + S), the bound the header
	 * states for deciders. res->under_units does not make a stale refund below
	 * a reservation cost a second R*S when that reservation settles (with the
	 * oracle's S taken out, these schedules do break C + R*t: they reach it).
	 */
	{
		adv_stale = (getenv("ADV_STALE_MS") ? strtoull(getenv("ADV_STALE_MS"), NULL, 10) :
						      1000) *
			    MS;
		for (i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++)
			for (r = 0; r < runs; r++)
				if (!adv_run(cfg[i][0], cfg[i][1], cfg[i][2])) {
					printf("# stale cfg %u run %d\n", i, r);
					bad++;
					break;
				}
		adv_stale = 0;
	}
	CHECK_EQ(bad, 0);
}

/* Two threads consume and refund one word with a frozen clock: net <= C. */
struct rthr {
	__u64 net; /* units */
	__u64 now;
};

static void *refund_thread(void *arg)
{
	struct rthr *t = arg;
	struct lt_slot_seen r;
	__u64 given;
	int i, v;

	for (i = 0; i < 300000; i++) {
		v = consume(12, t->now, 1 + (__u64)(i % 3), &r);
		if (v != LT_ADMIT)
			continue;
		t->net += r.cost_units;
		if (i % 2) {
			while (lt_slot_refund(slots, &r, r.cost_units / 2 + 1, t->now, &given))
				;
			t->net -= given;
		}
	}
	return NULL;
}

static void concurrent_refunds_never_exceed_capacity(void)
{
	struct rthr a = { 0, 500 * SEC }, b = { 0, 500 * SEC };
	pthread_t ta, tb;

	CHECK_EQ(lt_rate_init(&rates[1], 100000, 1, SEC), 0);
	fresh(12, 1);
	pthread_create(&ta, NULL, refund_thread, &a);
	pthread_create(&tb, NULL, refund_thread, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK(a.net + b.net <= rates[1].cap_units);
	/* and what stayed admitted is exactly what the word holds */
	CHECK(a.net + b.net <= lt_level_units(slots[12].tat, 500 * SEC, &rates[1]) + 1);
}

/*
 * lt_slot_debit (another host's spend on a global bucket, an on_stale hold,
 * the gateway's uncovered usage as lt_slot_charge): stacked on top of the
 * level whatever the capacity, saturating at max_caps capacities; later
 * admissions wait until it has leaked; what is still in the bucket of it can
 * be given back like a reservation.
 */
static void debit_saturates_and_blocks_until_leaked(void)
{
	struct lt_slot_seen d;

	CHECK_EQ(lt_rate_init(&rates[1], 10, 1, SEC), 0);
	/* charge = debit at 2 capacities: 25 tokens asked, 20 added */
	fresh(9, 1);
	CHECK_EQ(lt_slot_charge(slots, rates, 9, 100 * SEC, 25, &d), 0);
	CHECK_EQ(d.cost_units >> d.rate.unit_shift, 20);
	CHECK_EQ(consume(9, 110 * SEC, 1, NULL), LT_DENY); /* level 10: nothing fits */
	CHECK_EQ(consume(9, 111 * SEC, 1, NULL), LT_ADMIT);
	/* a global debit: up to LT_DEBIT_CAPS_GLOBAL capacities, all 25 */
	fresh(9, 1);
	CHECK_EQ(lt_slot_debit(slots, rates, 9, 100 * SEC, 25, LT_DEBIT_CAPS_GLOBAL, &d), 0);
	CHECK_EQ(d.cost_units >> d.rate.unit_shift, 25);
	CHECK_EQ(consume(9, 115 * SEC, 1, NULL), LT_DENY); /* level 10 */
	CHECK_EQ(consume(9, 116 * SEC, 1, NULL), LT_ADMIT);
	/* saturating: never past max_caps capacities, whatever is asked */
	fresh(9, 1);
	CHECK_EQ(lt_slot_debit(slots, rates, 9, 100 * SEC, ~0ULL >> 2, 3, &d), 0);
	CHECK_EQ(d.cost_units >> d.rate.unit_shift, 30);
	CHECK_EQ(lt_slot_debit(slots, rates, 9, 100 * SEC, 5, 3, &d), 0);
	CHECK_EQ(d.cost_units, 0);
	/* a hold lifted: what has not leaked comes back, and admissions fit again */
	fresh(9, 1);
	CHECK_EQ(consume(9, 100 * SEC, 4, NULL), LT_ADMIT);
	CHECK_EQ(lt_slot_debit(slots, rates, 9, 100 * SEC, 100, 2, &d), 0);
	CHECK_EQ(d.cost_units >> d.rate.unit_shift, 16);
	CHECK_EQ(consume(9, 102 * SEC, 1, NULL), LT_DENY);
	CHECK_EQ(refund_tokens(&d, 100, 102 * SEC), 16); /* the 4 below leaked first */
	CHECK_EQ(consume(9, 102 * SEC, 8, NULL), LT_ADMIT);
	CHECK_EQ(consume(9, 102 * SEC, 1, NULL), LT_DENY); /* 2 left + 8 = 10 */
	/* unlimited: nothing to add, no error */
	lt_rate_init(&rates[2], 0, 0, 0);
	fresh(10, 2);
	CHECK_EQ(lt_slot_debit(slots, rates, 10, 100 * SEC, 5, 2, &d), 0);
	CHECK_EQ(d.cost_units, 0);
}

int main(void)
{
	slots = shared(LT_MAX_SLOTS * sizeof(*slots));
	rates = shared(LT_MAX_RATES * sizeof(*rates));
	usage = shared(LT_MAX_SLOTS * sizeof(*usage));
	lt_log_level = LT_LOG_WARN;
	alarm(120); /* a hang is a failure, not a stuck suite */
	RUN(rebase_killed_or_stopped_leaves_slots_usable);
	RUN(agent_killed_mid_limit_change_restarts);
	RUN(word_in_any_state_is_usable);
	RUN(deny_never_pairs_old_word_with_new_rate);
	RUN(reused_rate_id_is_never_read_stale);
	RUN(rate_id_named_by_a_leftover_slot_is_not_reused);
	RUN(refund_after_drain_gives_nothing_back);
	RUN(refund_after_refunds_below_is_not_double_counted);
	RUN(refund_order_of_settlement_does_not_matter);
	RUN(refund_in_parts_never_exceeds_cost);
	RUN(refunds_never_exceed_c_plus_rt_random);
	RUN(refunds_and_charges_adversarial);
	RUN(concurrent_refunds_never_exceed_capacity);
	RUN(debit_saturates_and_blocks_until_leaked);
	return lt_t_done();
}
