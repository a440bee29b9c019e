// SPDX-License-Identifier: MIT
/*
 * test_contention.c - what happens when the bounded CAS loop runs out. The
 * BPF side fails closed on LT_CONTENDED (drop_contended) because a retry
 * loop must be bounded there. Built with LT_CAS_TRIES=1 so that two threads
 * really do run out: a contended call must change nothing, and the word must
 * still account for exactly the admitted calls.
 */
#define LT_CAS_TRIES 1
#include <pthread.h>
#include "lt_test.h"
#include "lt_bucket.h"

#define T_NOW (77ULL * 1000000000ULL)

struct side {
	__u64 *tat;
	const struct lt_rate *r;
	long admitted, contended;
	pthread_barrier_t *start;
};

static void *side_fn(void *arg)
{
	struct side *s = arg;
	__u64 seen;
	int i;

	pthread_barrier_wait(s->start);
	for (i = 0; i < 3000000; i++) {
		int v = lt_bucket_consume(s->tat, s->r, T_NOW, 1, &seen);

		s->admitted += v == LT_ADMIT;
		s->contended += v == LT_CONTENDED;
	}
	return NULL;
}

/*
 * Rounds until the two threads really overlapped: on a loaded machine one
 * may finish before the other is scheduled. Every round must be exact.
 */
static void contended_calls_change_nothing(void)
{
	struct lt_rate r;
	__u64 tat, s0, frac;
	long contended = 0;
	int round;

	CHECK_EQ(lt_rate_init(&r, 1000000000000ULL, 1, 1000000000ULL), 0);
	s0 = lt_scaled(&r, T_NOW, &frac);
	for (round = 0; round < 50 && !contended; round++) {
		pthread_barrier_t start;
		struct side a = { &tat, &r, 0, 0, &start }, b = { &tat, &r, 0, 0, &start };
		pthread_t ta, tb;

		tat = 0;
		pthread_barrier_init(&start, NULL, 2);
		pthread_create(&ta, NULL, side_fn, &a);
		pthread_create(&tb, NULL, side_fn, &b);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		pthread_barrier_destroy(&start);
		printf("# round %d: admitted %ld, contended %ld\n", round, a.admitted + b.admitted,
		       a.contended + b.contended);
		CHECK_EQ(a.admitted + b.admitted + a.contended + b.contended, 6000000);
		/* first call restarts the empty bucket at ceil(s), each admit adds 1 token */
		CHECK_EQ(tat,
			 s0 + (frac != 0) + ((__u64)(a.admitted + b.admitted) << r.unit_shift));
		contended = a.contended + b.contended;
	}
	CHECK(contended > 0); /* the race really happened */
}

int main(void)
{
	RUN(contended_calls_change_nothing);
	return lt_t_done();
}
