/* SPDX-License-Identifier: MIT */
/*
 * snap.h - a published snapshot: one pointer that many threads read without a
 * lock while one writer replaces it, and the old value is freed only after
 * the last reader that could have seen it is done (an epoch scheme with two
 * reader counts, like SRCU). Used for the agent's live config (SIGHUP reload)
 * and by any process that swaps a read-mostly table under traffic.
 *
 * Readers: p = lt_snap_get(s, &tok); ... use p ...; lt_snap_put(s, tok);
 *   Wait-free in the common case (two atomic adds and two loads); a reader
 *   never sees a freed or half-written value, and never blocks the writer for
 *   longer than its own read section.
 * Writer: lt_snap_swap(s, next) publishes next, waits for the readers of the
 *   previous epoch, then frees the old value with s->free_fn. Writers are
 *   serialised by a mutex; a swap never runs inside a read section.
 */
#ifndef LT_SNAP_H
#define LT_SNAP_H

#include <pthread.h>
#include <linux/types.h>

struct lt_snap {
	void *cur; /* the published value; never NULL after init */
	__u64 epoch; /* bumped by every swap */
	/* readers inside a section, by epoch parity; own cache lines */
	struct {
		__u64 n;
		char _pad[56];
	} readers[2];
	pthread_mutex_t wlock;
	void (*free_fn)(void *);
};

void lt_snap_init(struct lt_snap *s, void *first, void (*free_fn)(void *));
/* Frees the current value; no reader or writer may be running. */
void lt_snap_destroy(struct lt_snap *s);

const void *lt_snap_get(struct lt_snap *s, unsigned *tok);
void lt_snap_put(struct lt_snap *s, unsigned tok);

/* Publishes next and frees the previous value once no reader holds it. */
void lt_snap_swap(struct lt_snap *s, void *next);

#endif
