/* SPDX-License-Identifier: MIT */
/*
 * cfg.h - lt_config from user space, through its mmap: reads that are
 * consistent and writes that never lose another writer's change, in any
 * thread or process (the invariants are next to struct lt_config_val in
 * lt_abi.h). Every function takes the map fd (pinned or the skeleton's).
 */
#ifndef LT_CFG_H
#define LT_CFG_H

#include <stddef.h>
#include "lt_abi.h"

/* A consistent copy of lt_config (seq-checked); -errno on error. */
int lt_cfg_read(int cfg_fd, struct lt_config *out);

/* generation += 1 (atomic): tells the BPF penalty memo that lt_penalty changed. */
int lt_cfg_bump(int cfg_fd);

/* flags |= set, then flags &= ~clear (atomic, only those bits). */
int lt_cfg_flags(int cfg_fd, __u32 set, __u32 clear);

int lt_cfg_set_sample_mask(int cfg_fd, __u32 mask);

/*
 * Latch write: under wlock, the new snap starts as a copy of the current
 * one, fn edits it, and it is published (seq += 1). fn returning non-zero
 * aborts with that value and publishes nothing. -EBUSY with err naming the
 * pid when another live writer holds wlock for more than ~2 s.
 */
int lt_cfg_update(int cfg_fd, int (*fn)(struct lt_config_snap *s, void *arg), void *arg, char *err,
		  size_t errlen);

/* On an mmapped value: the same, for callers that keep the mapping. */
void lt_cfg_view(const struct lt_config_val *v, struct lt_config *out);

/* lt_config's value, mmapped read-write (munmap(v, *len)); NULL with errno. */
struct lt_config_val *lt_cfg_map(int cfg_fd, size_t *len);

/*
 * wlock on a mapped value, for writers that must exclude each other beyond
 * the latch (the penalty box, lib/penalty.c): -EBUSY with err naming the
 * pid after ~2 s, as lt_cfg_update. Not reentrant.
 */
int lt_cfg_lock(struct lt_config_val *v, char *err, size_t errlen);
void lt_cfg_unlock(struct lt_config_val *v);

#endif
