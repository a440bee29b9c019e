/* SPDX-License-Identifier: MIT */
/* apply.h - writes a parsed config into the maps, and the runtime map edits. */
#ifndef LT_AGENT_APPLY_H
#define LT_AGENT_APPLY_H

#include <stddef.h>
#include "config.h"
#include "maps.h"

/*
 * Makes lt_ports, lt_allow, lt_policy and lt_config equal to c. Entries not
 * in c are removed. lt_config is written last, so BPF never sees the new
 * flags before the new tables. Buckets and penalties are left alone.
 */
int lt_config_apply(const struct lt_maps *m, const struct lt_agent_config *c, char *err,
		    size_t errlen);

/* Bans and unbans: lib/penalty.h (shared with the gateway). */

/* Deletes expired penalties and idle, empty source buckets. */
struct lt_sweep_stats {
	long penalties_expired;
	long sources_idle;
	long sources_left;
};
/*
 * Tests only (NULL otherwise): called for each claimed slot after the sweep
 * judged it and before it frees it, to land an admission in between.
 */
extern void (*lt_sweep_race_hook)(struct lt_src_slot *s);
int lt_sweep(const struct lt_maps *m, __u64 now_ns, __u64 idle_ns, struct lt_sweep_stats *st);

#endif
