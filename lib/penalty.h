/* SPDX-License-Identifier: MIT */
/*
 * penalty.h - the penalty box (lt_penalty, an index in an array: lt_abi.h)
 * from user space. The only code that writes it: the agent's ban, unban,
 * expiry and replay, the CLI, and the gateway's escalation (#9) all call
 * these, so the slot protocol and the prefix-length set (pen_lens) are kept
 * in one place. Writers serialise on lt_config's wlock (lib/cfg.h), in any
 * thread or process; readers take no lock.
 *
 * Every function takes the lt_penalty fd and the lt_config fd (its pen_seed
 * places the slots, its pen_lens lists the lengths in use, its generation
 * tells the BPF memo that something changed). Prefixes are lt_lpm_key
 * (v4 as ::ffff:a.b.c.d, prefixlen 96 + n); bits beyond prefixlen are
 * ignored. Returns 0 or -errno: -ENOENT not banned, -ENOSPC no free slot
 * near the prefix, -E2BIG a ban would make more than LT_PEN_LENS_MAX
 * distinct prefix lengths, -EBUSY another writer holds wlock (stopped?).
 */
#ifndef LT_PENALTY_H
#define LT_PENALTY_H

#include <stddef.h>
#include "lt_abi.h"

/* The ban of exactly this prefix (not one covering it). */
int lt_penalty_get(int pen_fd, int cfg_fd, const struct lt_lpm_key *k, struct lt_penalty *out);

/*
 * Bans k for dur_ns (~0 = until unbanned) from now: a ban of the same prefix
 * gets one more strike and the new end and reason. *out (may be NULL): the
 * entry as written.
 */
int lt_penalty_ban(int pen_fd, int cfg_fd, const struct lt_lpm_key *k, __u64 dur_ns, __u32 reason,
		   struct lt_penalty *out);

/* Writes exactly *p for k (an undo, a replay that keeps the strikes). */
int lt_penalty_put(int pen_fd, int cfg_fd, const struct lt_lpm_key *k, const struct lt_penalty *p);

int lt_penalty_unban(int pen_fd, int cfg_fd, const struct lt_lpm_key *k);

/*
 * Calls fn for every ban (a consistent copy of each slot; a slot written
 * meanwhile may be missed or seen once). fn returning non-zero stops.
 */
int lt_penalty_each(int pen_fd, int cfg_fd,
		    int (*fn)(void *ctx, const struct lt_lpm_key *k, const struct lt_penalty *p),
		    void *ctx);

/* Bans in the box, or -errno. */
long lt_penalty_count(int pen_fd, int cfg_fd);

/*
 * Frees the entries with until_ns <= now_ns and makes pen_lens exactly the
 * lengths of the entries left (so a raw bpftool edit is folded in here).
 * *freed (may be NULL): how many.
 */
int lt_penalty_expire(int pen_fd, int cfg_fd, __u64 now_ns, long *freed);

/*
 * Puts every entry where lt_pen_hash says it is (after lt_config was
 * recreated under a surviving lt_penalty: another seed) and rebuilds
 * pen_lens. *moved (may be NULL): entries moved; -ENOSPC if one found no
 * slot (it stays where it was, unreachable, and is counted in *moved).
 */
int lt_penalty_reindex(int pen_fd, int cfg_fd, long *moved);

/*
 * What the BPF program decides for source addr at now_ns: 1 and the active
 * entry covering it (*which, *out; either may be NULL), 0 when none is
 * active. Walks pen_lens as BPF does.
 */
int lt_penalty_match(int pen_fd, int cfg_fd, const __u8 addr[16], __u64 now_ns,
		     struct lt_lpm_key *which, struct lt_penalty *out);

/* One line for a -errno of the functions above: what failed, what to do. */
void lt_penalty_strerror(int err, char *buf, size_t len);

#endif
