/* SPDX-License-Identifier: MIT */
/*
 * overrides.h - runtime edits made with `policy`, `allow` and `dry-run`,
 * kept in <state-dir>/overrides.json so that an attach or a SIGHUP, which
 * re-apply the config file, do not silently undo them. Merged over the config:
 * an override replaces the config's entry for the same prefix; a deleted
 * prefix is remembered as removed.
 */
#ifndef LT_AGENT_OVERRIDES_H
#define LT_AGENT_OVERRIDES_H

#include <stddef.h>
#include "config.h"

struct lt_overrides {
	struct lt_prefix_policy *set; /* policies and allowlist entries (LT_POL_ALLOW) */
	__u32 nset;
	struct lt_lpm_key *removed; /* prefixes deleted at run time */
	__u32 nremoved;
	int dry_run; /* -1 not overridden, 0 off, 1 on */
};

/* A missing file is an empty set of overrides. */
int lt_overrides_load(const char *state_dir, struct lt_overrides *o, char *err, size_t errlen);
/* Atomic: written to a temporary file, then renamed. */
int lt_overrides_save(const char *state_dir, const struct lt_overrides *o, char *err,
		      size_t errlen);
void lt_overrides_free(struct lt_overrides *o);

int lt_overrides_put(struct lt_overrides *o, const struct lt_lpm_key *k,
		     const struct lt_src_policy *pol);
int lt_overrides_remove(struct lt_overrides *o, const struct lt_lpm_key *k);

/*
 * The state lock: every runtime edit (ops.c: CLI and API alike) and every
 * "read the config and the overrides, apply them" (attach, SIGHUP) holds it,
 * in any thread or process, so an edit lands either before a reload reads
 * the overrides (and is in them) or after it applied them (and stays).
 * flock on <state_dir>/edits.lock, taken by a fresh open each time (so two
 * threads of one process exclude each other too; never nest it): a killed
 * holder releases it; a stopped one makes others give up after 10 s with a
 * message. Returns the lock's fd (for lt_overrides_unlock) or -errno.
 */
int lt_overrides_lock(const char *state_dir, char *err, size_t errlen);
void lt_overrides_unlock(int fd);

/* Applies o to a parsed config (before lt_config_apply). */
int lt_overrides_merge(const struct lt_overrides *o, struct lt_agent_config *c);

#endif
