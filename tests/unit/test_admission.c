// SPDX-License-Identifier: MIT
/*
 * test_admission.c - gateway/admit.c: all-or-nothing admission of one request
 * over several limits, the verdicts (which limit denied, never-fits before
 * 429, the longest wait), a reclaimed bucket resolved again, settlement
 * (refund only what is left, charge an excess) and, on memory shared by
 * several processes (MAP_SHARED, as the pinned maps are mmapped), that
 * concurrent admissions never jointly exceed C + R*t on any bucket and never
 * leave one limit charged without the others. (Named test_admission: the
 * BPF suite already has a test_admit.)
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "lt_test.h"
#include "admit.h"
#include "units.h"

#define SEC 1000000000ULL
#define T0 (5000 * SEC)

static struct lt_slot *slots;
static struct lt_rate *rates;
static struct lt_usage *usage;
static struct lt_decide_maps M;

/* A resolver over a fixed table: key -> (slot, gen). */
struct tres {
	const char *key[8];
	struct lt_keyidx_val val[8];
	int err[8]; /* returned instead, if set */
	int stale_once[8]; /* first answer has gen - 1 */
	int forgets;
};

static int tres_resolve(void *ctx, const char *key, struct lt_keyidx_val *out, char *err,
			size_t errlen)
{
	struct tres *t = ctx;
	int i;

	for (i = 0; i < 8 && t->key[i]; i++) {
		if (strcmp(t->key[i], key))
			continue;
		if (t->err[i]) {
			snprintf(err, errlen, "test error");
			return t->err[i];
		}
		*out = t->val[i];
		if (t->stale_once[i] > 0) {
			t->stale_once[i]--;
			out->gen--;
		}
		return 0;
	}
	return -ENOENT;
}

static void tres_forget(void *ctx, const char *key)
{
	(void)key;
	((struct tres *)ctx)->forgets++;
}

/* Bucket i of the table on slot 10 + i: capacity cap, leak tokens/period, level pre. */
static void mkb(struct tres *t, int i, const char *key, __u64 cap, __u64 tokens, __u64 period,
		__u64 pre)
{
	struct lt_slot_seen s;
	struct lt_view v;
	__u32 slot = 10 + (__u32)i, old;
	int was_free;

	t->key[i] = key;
	t->val[i] = (struct lt_keyidx_val){ slot, 100 + (__u32)i };
	CHECK_EQ(lt_rate_init(&rates[slot], cap, tokens, period), 0);
	memset(&usage[slot], 0, sizeof(usage[slot]));
	usage[slot].gen = 100 + (__u32)i;
	CHECK_EQ(lt_slot_assign(slots, slot, slot, &old, &was_free), 0);
	if (pre)
		CHECK_EQ(lt_decide_consume(&M, slot, 100 + (__u32)i, ~0U, pre, T0, &v, &s),
			 LT_ADMIT);
}

static void admitter(struct lt_admitter *a, struct tres *t, struct lt_leases *l)
{
	lt_admitter_init(a, &M, NULL, l, 60 * SEC);
	a->r = (struct lt_admit_resolver){ tres_resolve, tres_forget, t };
}

/* The usual four limits of an LLM request. */
static void four(struct lt_admit_limit *l, __u64 cost)
{
	l[0] = (struct lt_admit_limit){ "r/USER/lk_1", "key-requests", 1, LT_UNIT_REQUESTS };
	l[1] = (struct lt_admit_limit){ "k/lk_1", "key-tokens", cost, LT_UNIT_TOKENS };
	l[2] = (struct lt_admit_limit){ "o/openai/org", "org-tokens", cost, LT_UNIT_TOKENS };
	l[3] = (struct lt_admit_limit){ "p/openai", "provider-pool", cost, LT_UNIT_TOKENS };
}

static void later_denial_leaves_earlier_buckets_exactly_as_before(void)
{
	struct tres t = { 0 };
	struct lt_admitter a;
	struct lt_admit_limit l[4];
	struct lt_reservation res;
	struct lt_admit_result out;
	struct lt_slot before[4];
	struct lt_usage ub[4];
	int i;

	mkb(&t, 0, "r/USER/lk_1", 10, 1, SEC, 3);
	mkb(&t, 1, "k/lk_1", 1000, 10, SEC, 200);
	mkb(&t, 2, "o/openai/org", 100, 10, SEC, 80); /* 20 left: 50 does not fit */
	mkb(&t, 3, "p/openai", 100000, 1000, SEC, 5);
	admitter(&a, &t, NULL);
	four(l, 50);
	for (i = 0; i < 4; i++) {
		before[i] = slots[10 + i];
		ub[i] = usage[10 + i];
	}
	CHECK_EQ(lt_admit(&a, l, 4, T0, &res, &out), LT_ADM_LIMITED);
	CHECK_EQ(out.which, 2);
	CHECK_EQ(res.n, 0);
	CHECK_EQ(out.view.capacity, 100);
	CHECK_EQ(out.view.remaining, 20);
	CHECK_EQ(out.retry_after_ns, 3 * SEC); /* 30 tokens at 10/s */
	CHECK_EQ(out.view.retry_after_s, 3);
	for (i = 0; i < 4; i++) {
		CHECK_EQ(slots[10 + i].tat, before[i].tat);
		CHECK_EQ(usage[10 + i].tokens, ub[i].tokens);
		CHECK_EQ(usage[10 + i].admitted, ub[i].admitted);
	}
	/* exactly when it said, it fits */
	CHECK_EQ(lt_admit(&a, l, 4, T0 + 3 * SEC, &res, &out), LT_ADM_OK);
	CHECK_EQ(res.n, 4);
	CHECK_EQ(out.which, 2); /* the tightest: org at 0 of 100 */
	CHECK_EQ(out.view.remaining, 0);
}

static void never_fits_is_not_a_429_even_behind_a_denial(void)
{
	struct tres t = { 0 };
	struct lt_admitter a;
	struct lt_admit_limit l[4];
	struct lt_reservation res;
	struct lt_admit_result out;

	mkb(&t, 0, "r/USER/lk_1", 10, 1, SEC, 10); /* full: denies */
	mkb(&t, 1, "k/lk_1", 1000, 10, SEC, 0);
	mkb(&t, 2, "o/openai/org", 100, 10, SEC, 0); /* 500 can never fit */
	mkb(&t, 3, "p/openai", 100000, 1000, SEC, 0);
	admitter(&a, &t, NULL);
	four(l, 500);
	CHECK_EQ(lt_admit(&a, l, 4, T0, &res, &out), LT_ADM_NEVER_FITS);
	CHECK_EQ(out.which, 2);
	CHECK_EQ(out.view.capacity, 100);
	CHECK_EQ(usage[11].admitted, 0);
	/* and as the first limit decided */
	four(l, 5000);
	l[0].cost = 11;
	mkb(&t, 0, "r/USER/lk_1", 10, 1, SEC, 0);
	CHECK_EQ(lt_admit(&a, l, 4, T0, &res, &out), LT_ADM_NEVER_FITS);
	CHECK_EQ(out.which, 0);
	CHECK_EQ(a.never_fits, 2);
}

static void the_longest_wait_is_reported(void)
{
	struct tres t = { 0 };
	struct lt_admitter a;
	struct lt_admit_limit l[4];
	struct lt_reservation res;
	struct lt_admit_result out;

	mkb(&t, 0, "r/USER/lk_1", 10, 1, SEC, 10); /* 1 request in 1 s */
	mkb(&t, 1, "k/lk_1", 1000, 10, SEC, 0);
	mkb(&t, 2, "o/openai/org", 100, 1, SEC, 100); /* 50 tokens in 50 s */
	mkb(&t, 3, "p/openai", 100000, 1000, SEC, 0);
	admitter(&a, &t, NULL);
	four(l, 50);
	CHECK_EQ(lt_admit(&a, l, 4, T0, &res, &out), LT_ADM_LIMITED);
	CHECK_EQ(out.which, 2);
	CHECK_EQ(out.retry_after_ns, 50 * SEC);
	CHECK(out.decided[0] && out.decided[2]);
	CHECK_EQ(out.views[0].retry_after_ns, SEC);
}

static void reclaimed_bucket_is_resolved_again_bounded(void)
{
	struct tres t = { 0 };
	struct lt_admitter a;
	struct lt_admit_limit l[4];
	struct lt_reservation res;
	struct lt_admit_result out;

	mkb(&t, 0, "r/USER/lk_1", 10, 1, SEC, 0);
	mkb(&t, 1, "k/lk_1", 1000, 10, SEC, 0);
	mkb(&t, 2, "o/openai/org", 100, 10, SEC, 0);
	mkb(&t, 3, "p/openai", 100000, 1000, SEC, 0);
	admitter(&a, &t, NULL);
	four(l, 5);
	t.stale_once[2] = 1; /* the cache had the slot's previous owner */
	CHECK_EQ(lt_admit(&a, l, 4, T0, &res, &out), LT_ADM_OK);
	CHECK_EQ(t.forgets, 1);
	CHECK_EQ(usage[12].tokens, 5);
	lt_admit_cancel(&a, &res, T0);
	CHECK_EQ(usage[12].tokens, 0);
	CHECK_EQ(usage[10].admitted, 0);

	t.stale_once[2] = 1000; /* reclaimed again and again: 503, nothing held */
	CHECK_EQ(lt_admit(&a, l, 4, T0, &res, &out), LT_ADM_UNAVAILABLE);
	CHECK_EQ(t.forgets, 1 + LT_ADMIT_RESOLVE_TRIES);
	CHECK(out.retry_after_ns > 0);
	CHECK_EQ(usage[10].admitted + usage[11].admitted, 0);

	t.stale_once[2] = 0;
	t.err[3] = -ENOENT; /* no limit governs the pool's key */
	CHECK_EQ(lt_admit(&a, l, 4, T0, &res, &out), LT_ADM_NO_QUOTA);
	CHECK_EQ(out.which, 3);
	t.err[3] = -EAGAIN; /* the agent is down */
	CHECK_EQ(lt_admit(&a, l, 4, T0, &res, &out), LT_ADM_UNAVAILABLE);
	CHECK_EQ(usage[10].admitted + usage[11].admitted + usage[12].admitted, 0);
	CHECK_EQ(lt_admit(&a, l, 0, T0, &res, &out), LT_ADM_BAD_REQUEST);
	CHECK_EQ(lt_admit(&a, l, LT_ADMIT_MAX + 1, T0, &res, &out), LT_ADM_BAD_REQUEST);
}

static void settle_refunds_the_difference_and_charges_an_excess(void)
{
	static struct lt_lease lmem[4];
	struct tres t = { 0 };
	struct lt_admitter a;
	struct lt_admit_limit l[4];
	struct lt_reservation res;
	struct lt_admit_result out;
	struct lt_settle_result sr;
	struct lt_leases leases;
	struct lt_view v;
	int i;

	mkb(&t, 0, "r/USER/lk_1", 10, 1, SEC, 0);
	mkb(&t, 1, "k/lk_1", 1000, 10, SEC, 0);
	mkb(&t, 2, "o/openai/org", 200, 10, SEC, 0);
	mkb(&t, 3, "p/openai", 100000, 1000, SEC, 0);
	memset(lmem, 0, sizeof(lmem));
	CHECK_EQ(lt_leases_attach(&leases, lmem, 4), 0);
	admitter(&a, &t, &leases);
	four(l, 100);
	CHECK_EQ(lt_admit(&a, l, 4, T0, &res, &out), LT_ADM_OK);
	CHECK(res.has_lease);
	CHECK_EQ(lmem[res.lease].owner, leases.me);
	CHECK_EQ(lmem[res.lease].n, 4);
	CHECK_EQ(lmem[res.lease].res[2].cost_tokens, 100);
	CHECK_EQ(lmem[res.lease].deadline_ns, T0 + 60 * SEC);
	lt_admit_settle(&a, &res, 30, T0, &sr);
	CHECK_EQ(sr.refunded[0], 0); /* the request stays counted */
	for (i = 1; i < 4; i++) {
		CHECK_EQ(sr.refunded[i], 70);
		CHECK_EQ(usage[10 + i].tokens, 30);
	}
	CHECK_EQ(usage[10].tokens, 1);
	CHECK_EQ(lmem[0].owner + lmem[1].owner + lmem[2].owner + lmem[3].owner, 0);
	lt_admit_settle(&a, &res, 0, T0, &sr); /* spent: nothing twice */
	CHECK_EQ(sr.refunded[1], 0);
	CHECK_EQ(usage[11].tokens, 30);

	/* 5 s later 50 of the org's 130 have leaked: only 30 of the 70 are left */
	CHECK_EQ(lt_admit(&a, l, 4, T0, &res, &out), LT_ADM_OK);
	lt_admit_settle(&a, &res, 30, T0 + 10 * SEC, &sr);
	CHECK_EQ(sr.refunded[2], 30);

	/* used more than reserved: the excess is a debt, past the capacity */
	mkb(&t, 2, "o/openai/org", 200, 10, SEC, 0);
	CHECK_EQ(lt_admit(&a, l, 4, T0, &res, &out), LT_ADM_OK);
	lt_admit_settle(&a, &res, 350, T0, &sr);
	CHECK_EQ(sr.charged[2], 250);
	CHECK_EQ(sr.uncharged[2], 0);
	CHECK_EQ(usage[12].tokens, 350);
	CHECK_EQ(lt_decide_peek(&M, 12, 102, ~0U, T0, &v), 0);
	CHECK_EQ(v.remaining, 0);
	CHECK_EQ(v.full_in_ns, 35 * SEC); /* 350 tokens at 10/s */
	/* the debt stops at twice the capacity */
	CHECK_EQ(lt_admit(&a, l, 4, T0 + 35 * SEC, &res, &out), LT_ADM_OK);
	lt_admit_settle(&a, &res, 1000, T0 + 35 * SEC, &sr);
	CHECK_EQ(sr.charged[2], 300);
	CHECK_EQ(sr.uncharged[2], 600);
	CHECK_EQ(a.excess_uncharged, 600);
}

/* ---- concurrency: processes and threads on one shared budget ---------------- */

#define PROCS 3
#define THREADS 2
#define KEYS 2

struct shared {
	__u64 tmin, tmax; /* decision clock reads */
	__u64 net[4 + KEYS]; /* net tokens admitted per bucket, as the clients count them */
	int go;
};

static struct shared *sh;

static void atomic_min(__u64 *p, __u64 v)
{
	__u64 o = __atomic_load_n(p, __ATOMIC_RELAXED);

	while (v < o &&
	       !__atomic_compare_exchange_n(p, &o, v, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void atomic_max(__u64 *p, __u64 v)
{
	__u64 o = __atomic_load_n(p, __ATOMIC_RELAXED);

	while (v > o &&
	       !__atomic_compare_exchange_n(p, &o, v, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static struct tres CT;

struct worker {
	int id;
	unsigned seed;
};

/* Two keys of one user on one org budget and one provider pool. */
static void *worker(void *arg)
{
	struct worker *w = arg;
	struct lt_admitter a;
	struct lt_admit_limit l[4];
	struct lt_reservation res;
	struct lt_admit_result out;
	struct lt_settle_result sr;
	__u64 now, deadline, cost, used;
	int k, i;

	admitter(&a, &CT, NULL);
	while (!__atomic_load_n(&sh->go, __ATOMIC_ACQUIRE))
		;
	deadline = lt_now_ns() + SEC / 2;
	while ((now = lt_now_ns()) < deadline) {
		k = (int)(rand_r(&w->seed) % KEYS);
		cost = 1 + rand_r(&w->seed) % 40;
		l[0] = (struct lt_admit_limit){ CT.key[4 + k], "key-requests", 1,
						LT_UNIT_REQUESTS };
		l[1] = (struct lt_admit_limit){ CT.key[k], "key-tokens", cost, LT_UNIT_TOKENS };
		l[2] = (struct lt_admit_limit){ CT.key[2], "org-tokens", cost, LT_UNIT_TOKENS };
		l[3] = (struct lt_admit_limit){ CT.key[3], "provider-pool", cost, LT_UNIT_TOKENS };
		atomic_min(&sh->tmin, now);
		if (lt_admit(&a, l, 4, now, &res, &out) != LT_ADM_OK)
			continue;
		atomic_max(&sh->tmax, now);
		used = rand_r(&w->seed) % (cost + 1);
		now = lt_now_ns();
		lt_admit_settle(&a, &res, used, now, &sr);
		atomic_max(&sh->tmax, now);
		__atomic_fetch_add(&sh->net[4 + k], 1, __ATOMIC_RELAXED);
		for (i = 1; i < 4; i++)
			__atomic_fetch_add(&sh->net[i == 1 ? k : i], cost - sr.refunded[i],
					   __ATOMIC_RELAXED);
	}
	return NULL;
}

static void run_process(int p)
{
	pthread_t th[THREADS];
	struct worker w[THREADS];
	int i;

	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ p * THREADS + i, (unsigned)(p * 7919 + i * 104729 + 1) };
		pthread_create(&th[i], NULL, worker, &w[i]);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
}

/* C + R*t in whole tokens, t between the first and the last decision. */
static __u64 bound(__u64 cap, __u64 per_s)
{
	__u64 t = sh->tmax - sh->tmin;

	return cap + (per_s * t + SEC - 1) / SEC;
}

static void concurrent_admissions_never_jointly_exceed_c_plus_rt(void)
{
	pid_t pid[PROCS];
	int p, st, ok = 1;

	memset(&CT, 0, sizeof(CT));
	mkb(&CT, 0, "k/lk_a", 3000, 2000, SEC, 0);
	mkb(&CT, 1, "k/lk_b", 3000, 2000, SEC, 0);
	mkb(&CT, 2, "o/openai/org", 1000, 1000, SEC, 0); /* the tight one */
	mkb(&CT, 3, "p/openai", 2500, 3000, SEC, 0);
	mkb(&CT, 4, "r/USER/lk_a", 100, 200, SEC, 0);
	mkb(&CT, 5, "r/USER/lk_b", 100, 200, SEC, 0);
	memset(sh, 0, sizeof(*sh));
	sh->tmin = ~0ULL;
	fflush(stdout);
	for (p = 0; p < PROCS; p++) {
		pid[p] = fork();
		if (pid[p] == 0) {
			run_process(p);
			_exit(0);
		}
	}
	__atomic_store_n(&sh->go, 1, __ATOMIC_RELEASE);
	for (p = 0; p < PROCS; p++)
		ok &= waitpid(pid[p], &st, 0) == pid[p] && WIFEXITED(st) && !WEXITSTATUS(st);
	CHECK(ok);
	printf("# %.3f s: org %llu (bound %llu), pool %llu, keys %llu + %llu tokens, "
	       "%llu + %llu requests\n",
	       (double)(sh->tmax - sh->tmin) / SEC, (unsigned long long)sh->net[2],
	       (unsigned long long)bound(1000, 1000), (unsigned long long)sh->net[3],
	       (unsigned long long)sh->net[0], (unsigned long long)sh->net[1],
	       (unsigned long long)sh->net[4], (unsigned long long)sh->net[5]);
	CHECK(sh->net[2] > 0);
	/* every bucket, as the clients count it: at most C + R*t */
	CHECK(sh->net[2] <= bound(1000, 1000));
	CHECK(sh->net[3] <= bound(2500, 3000));
	CHECK(sh->net[0] <= bound(3000, 2000));
	CHECK(sh->net[1] <= bound(3000, 2000));
	CHECK(sh->net[4] <= bound(100, 200));
	CHECK(sh->net[5] <= bound(100, 200));
	/*
	 * All or nothing: every admitted request holds all four limits, so the
	 * buckets' decision counters agree exactly. Tokens: a bucket holds at
	 * least what the clients hold (an undo or a refund racing others may
	 * give back less than it took, never more: lt_slot_refund), and the
	 * bucket's own net stays within C + R*t too.
	 */
	CHECK_EQ(usage[14].admitted, sh->net[4]);
	CHECK_EQ(usage[15].admitted, sh->net[5]);
	CHECK_EQ(usage[14].admitted + usage[15].admitted, usage[12].admitted);
	CHECK_EQ(usage[12].admitted, usage[13].admitted);
	CHECK_EQ(usage[10].admitted + usage[11].admitted, usage[13].admitted);
	CHECK(usage[12].tokens >= sh->net[2] && usage[12].tokens <= bound(1000, 1000));
	CHECK(usage[13].tokens >= sh->net[3] && usage[13].tokens <= bound(2500, 3000));
	CHECK(usage[10].tokens >= sh->net[0] && usage[10].tokens <= bound(3000, 2000));
	CHECK(usage[11].tokens >= sh->net[1] && usage[11].tokens <= bound(3000, 2000));
}

static void *shmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int main(void)
{
	slots = shmap(LT_MAX_SLOTS * sizeof(*slots));
	rates = shmap(LT_MAX_RATES * sizeof(*rates));
	usage = shmap(LT_MAX_SLOTS * sizeof(*usage));
	sh = shmap(sizeof(*sh));
	if (!slots || !rates || !usage || !sh) {
		printf("not ok 1 - shared memory\n1..1\n");
		return 1;
	}
	M = (struct lt_decide_maps){ slots, rates, usage };
	RUN(later_denial_leaves_earlier_buckets_exactly_as_before);
	RUN(never_fits_is_not_a_429_even_behind_a_denial);
	RUN(the_longest_wait_is_reported);
	RUN(reclaimed_bucket_is_resolved_again_bounded);
	RUN(settle_refunds_the_difference_and_charges_an_excess);
	RUN(concurrent_admissions_never_jointly_exceed_c_plus_rt);
	munmap(slots, LT_MAX_SLOTS * sizeof(*slots));
	munmap(rates, LT_MAX_RATES * sizeof(*rates));
	munmap(usage, LT_MAX_SLOTS * sizeof(*usage));
	munmap(sh, sizeof(*sh));
	return lt_t_done();
}
