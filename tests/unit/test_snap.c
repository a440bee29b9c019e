// SPDX-License-Identifier: MIT
/*
 * test_snap.c - lib/snap: readers never see a freed or half-written value
 * while a writer replaces it without pause (the SIGHUP reload of the agent's
 * config, made a unit test). A freed value is poisoned first, so a reader
 * that kept using one would read the poison (and ASan would see the free).
 */
#include <pthread.h>
#include <string.h>
#include "lt_test.h"
#include "snap.h"

struct val {
	__u64 a, b; /* b == ~a while live */
	char role[32]; /* "ADMIN" while live */
};

static void val_free(void *p)
{
	memset(p, 0, sizeof(struct val)); /* what a torn or freed read would see */
	free(p);
}

static struct val *val_new(__u64 a)
{
	struct val *v = malloc(sizeof(*v));

	v->a = a;
	v->b = ~a;
	strcpy(v->role, "ADMIN");
	return v;
}

static struct lt_snap snap;
static volatile int stop;

struct rd {
	long reads, bad;
};

static void *reader(void *arg)
{
	struct rd *r = arg;
	unsigned tok;

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		const struct val *v = lt_snap_get(&snap, &tok);
		int i;

		for (i = 0; i < 8; i++) /* a short read section, read more than once */
			r->bad += v->b != ~v->a || strcmp(v->role, "ADMIN");
		lt_snap_put(&snap, tok);
		__atomic_fetch_add(&r->reads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void readers_never_see_a_freed_value_under_constant_swaps(void)
{
	pthread_t th[3];
	struct rd rd[3] = { { 0 } };
	long i, swaps, bad = 0, reads = 0;

	lt_snap_init(&snap, val_new(0), val_free);
	for (i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, reader, &rd[i]);
	/* at least 2000 swaps, and until every reader has read under them */
	for (i = 1; i <= 200000; i++) {
		lt_snap_swap(&snap, val_new((__u64)i));
		if (i >= 2000 && __atomic_load_n(&rd[0].reads, __ATOMIC_RELAXED) > 1000 &&
		    __atomic_load_n(&rd[1].reads, __ATOMIC_RELAXED) > 1000 &&
		    __atomic_load_n(&rd[2].reads, __ATOMIC_RELAXED) > 1000)
			break;
	}
	swaps = i > 200000 ? 200000 : i;
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		bad += rd[i].bad;
		reads += rd[i].reads;
	}
	printf("# %ld reads during %ld swaps\n", reads, swaps);
	CHECK_EQ(bad, 0);
	CHECK(reads > 3000);
	CHECK_EQ(((const struct val *)snap.cur)->a, swaps);
	lt_snap_destroy(&snap);
}

int main(void)
{
	RUN(readers_never_see_a_freed_value_under_constant_swaps);
	return lt_t_done();
}
