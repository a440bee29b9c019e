// SPDX-License-Identifier: MIT
#include <stdlib.h>
#include <unistd.h>
#include "snap.h"

void lt_snap_init(struct lt_snap *s, void *first, void (*free_fn)(void *))
{
	s->cur = first;
	s->epoch = 0;
	s->readers[0].n = s->readers[1].n = 0;
	s->free_fn = free_fn ? free_fn : free;
	pthread_mutex_init(&s->wlock, NULL);
}

void lt_snap_destroy(struct lt_snap *s)
{
	if (s->cur)
		s->free_fn(s->cur);
	s->cur = NULL;
	pthread_mutex_destroy(&s->wlock);
}

/*
 * The reader announces itself in the count of the epoch it read, then reads
 * the epoch again (both seq_cst, against the writer's seq_cst epoch bump and
 * count read: one of the two sides sees the other). If the epoch moved, the
 * writer may already have stopped waiting for that count: step back, retry.
 * If it did not, the writer that replaces the value we are about to load
 * bumps the epoch afterwards and then waits for this count to drain.
 */
const void *lt_snap_get(struct lt_snap *s, unsigned *tok)
{
	__u64 e;

	for (;;) {
		e = __atomic_load_n(&s->epoch, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&s->readers[e & 1].n, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&s->epoch, __ATOMIC_SEQ_CST) == e)
			break;
		__atomic_fetch_sub(&s->readers[e & 1].n, 1, __ATOMIC_RELEASE);
	}
	*tok = (unsigned)(e & 1);
	return __atomic_load_n(&s->cur, __ATOMIC_ACQUIRE);
}

void lt_snap_put(struct lt_snap *s, unsigned tok)
{
	__atomic_fetch_sub(&s->readers[tok & 1].n, 1, __ATOMIC_RELEASE);
}

void lt_snap_swap(struct lt_snap *s, void *next)
{
	void *old;
	__u64 e;

	pthread_mutex_lock(&s->wlock);
	old = __atomic_exchange_n(&s->cur, next, __ATOMIC_SEQ_CST);
	e = __atomic_load_n(&s->epoch, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->epoch, e + 1, __ATOMIC_SEQ_CST);
	/* readers of epoch e may hold old; later ones see next */
	while (__atomic_load_n(&s->readers[e & 1].n, __ATOMIC_SEQ_CST))
		usleep(50);
	pthread_mutex_unlock(&s->wlock);
	if (old && old != next)
		s->free_fn(old);
}
