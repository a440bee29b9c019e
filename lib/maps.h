/* SPDX-License-Identifier: MIT */
/*
 * maps.h - the pinned maps from user space: open by name under the pin dir,
 * read the per-CPU counters, name the stat indexes.
 */
#ifndef LT_MAPS_H
#define LT_MAPS_H

#include <stddef.h>
#include "lt_abi.h"

enum lt_map_id {
	LT_M_CONFIG,
	LT_M_PORTS,
	LT_M_PENALTY,
	LT_M_POLICY,
	LT_M_SRC,
	LT_M_OVERFLOW,
	LT_M_STATS,
	LT_M_EVENTS,
	LT_M_SLOTS,
	LT_M_RATES,
	LT_M_IFACES,
	LT_M_SCACHE,
	LT_M_USAGE,
	LT_M_KEYIDX,
	LT_M_APIKEY,
	LT_M_REQLOG_CTL,
	LT_M_REQLOG,
	LT_M_LEASE,
	LT_M_BREAKER,
	LT_M_ESCAL,
	LT_M_UPSTREAM,
	LT_M__MAX,
};

/* Names as in bpf/admit.bpf.c (tests/bpf checks they match the skeleton). */
extern const char *const lt_map_names[LT_M__MAX];

struct lt_maps {
	int fd[LT_M__MAX];
};

/* Opens every pinned map; on error nothing stays open. */
int lt_maps_open(const char *pin_dir, struct lt_maps *m, char *err, size_t errlen);
void lt_maps_close(struct lt_maps *m);

/* Sums the per-CPU lt_stats into out[LT_STAT__MAX]. */
int lt_stats_read(int stats_fd, struct lt_stat_val *out);

const char *lt_stat_name(unsigned int stat);

/*
 * mmaps a BPF_F_MMAPABLE array (lt_slots, lt_rates) read-write; NULL on error
 * with errno set. The fd must not be BPF_F_RDONLY (such fds cannot be
 * mmapped at all). *len gets the mapped size for munmap.
 */
void *lt_map_mmap(int fd, size_t *len);

/* max_entries of a map, or -errno. */
long lt_map_entries(int fd);

/*
 * The value stored for exactly this prefix in an LPM trie (lt_policy,
 * lt_penalty): 0 and *value, or -ENOENT when the prefix itself is not in the
 * trie, even if a shorter prefix covers it, or -errno. A plain
 * bpf_map_lookup_elem() answers with the covering entry and leaves the key
 * as it was, so it cannot tell "10.9.3.0/24" from a "10.9.0.0/16" above it.
 * value may be NULL. Three syscalls at most; a concurrent writer between them
 * can make the answer stale, as with any lookup.
 */
int lt_lpm_lookup_exact(int fd, const struct lt_lpm_key *key, void *value);

/* Entries in a hash or LPM map (walks the keys). */
long lt_map_count(int fd);

/* Protected ports in lt_ports. */
long lt_ports_count(int ports_fd);

/* Claimed slots in lt_src (mmapped) and the slot count. */
long lt_src_count(int src_fd, long *slots);

#endif
