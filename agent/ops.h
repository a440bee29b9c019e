/* SPDX-License-Identifier: MIT */
/*
 * ops.h - the runtime edits of the XDP side: ban, unban, policy set/del,
 * allow add/del, dry-run. ONE implementation of each, used by the command
 * line (commands.c) and the REST API (api_admin.c) alike, so an edit made by
 * one front end is seen, kept and undone exactly as one made by the other.
 *
 * Where each kind of state lives, and which copy wins (README "State"):
 *   bans          lt_penalty (live) + leaky.db `penalties` (its durable copy,
 *                 written by the same operation). While the pins live the
 *                 map wins: at start the store is made equal to it (so a
 *                 bpftool or gateway edit is kept). When the map is new (a
 *                 reboot), the store is replayed into it.
 *   policies,     config file + <state-dir>/overrides.json (the runtime edits,
 *   allowlist,    replacing the config's entry for the same prefix); lt_policy
 *   dry-run       and lt_config are derived from them at every attach/SIGHUP.
 * Prefixes are canonical (lt_prefix_parse, then lt_prefix_format): any
 * spelling of one prefix is one entry in the maps, the store and the file.
 * Edits are serialised across processes by <state-dir>/edits.lock.
 */
#ifndef LT_AGENT_OPS_H
#define LT_AGENT_OPS_H

#include <stddef.h>
#include "config.h"
#include "maps.h"
#include "store.h"

struct lt_ops {
	const struct lt_maps *m;
	const char *state_dir;
	struct lt_store *st; /* leaky.db: the daemon's, or own_st opened by lt_ops_open */
	struct lt_store own_st;
};

/* For a process without a store open (the CLI): opens <state-dir>/leaky.db. */
int lt_ops_open(struct lt_ops *o, const struct lt_maps *m, const char *state_dir, char *err,
		size_t errlen);
void lt_ops_close(struct lt_ops *o);

/* Each returns 0 or -errno with err set; nothing is half-applied. */
int lt_op_ban(struct lt_ops *o, const struct lt_lpm_key *k, __u64 dur_ns, __u32 reason,
	      struct lt_penalty *out, char *err, size_t errlen);
/* -ENOENT: neither the map nor the store had it. */
int lt_op_unban(struct lt_ops *o, const struct lt_lpm_key *k, char *err, size_t errlen);
int lt_op_policy_set(struct lt_ops *o, const struct lt_lpm_key *k, const struct lt_src_policy *pol,
		     char *err, size_t errlen);
/* -ENOENT: no entry for exactly that prefix. */
int lt_op_policy_del(struct lt_ops *o, const struct lt_lpm_key *k, char *err, size_t errlen);
/* -EEXIST: the prefix has a policy. */
int lt_op_allow_add(struct lt_ops *o, const struct lt_lpm_key *k, char *err, size_t errlen);
/* -ENOENT: not in the allowlist. */
int lt_op_allow_del(struct lt_ops *o, const struct lt_lpm_key *k, char *err, size_t errlen);
int lt_op_dry_run(struct lt_ops *o, int on, char *err, size_t errlen);

/*
 * The bans in lt_penalty, sorted by prefix (address, then length), for
 * `leaky-agent bans` and GET /v1/admin/penalties alike: 0, or -errno with err
 * set. fn returning non-zero stops the walk.
 */
int lt_op_bans(const struct lt_maps *m,
	       int (*fn)(void *ctx, const struct lt_lpm_key *k, const struct lt_penalty *p),
	       void *ctx, char *err, size_t errlen);

/* The lt_policy entry for exactly k (an LPM lookup returns covering ones). */
int lt_policy_get_exact(const struct lt_maps *m, const struct lt_lpm_key *k,
			struct lt_src_policy *out);

/*
 * At attach: penalty_map_new = lt_penalty was created by this attach. Then
 * the store is replayed into the map; else the map wins and the store is
 * made equal to it. Expired bans are dropped from both.
 */
int lt_ops_bans_sync(struct lt_ops *o, int penalty_map_new, char *err, size_t errlen);

/* `detach`: the runtime edits of this install are forgotten, bans included. */
int lt_ops_forget_bans(const char *state_dir);

#endif
