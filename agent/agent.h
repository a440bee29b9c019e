/* SPDX-License-Identifier: MIT */
/* agent.h - leaky-agent's commands; main.c parses the command line into lt_opts. */
#ifndef LT_AGENT_H
#define LT_AGENT_H

#include "loader.h"

#define LT_STATE_DIR_DEFAULT "/var/lib/leaky-tokens"
#define LT_MAX_IFACES 64

struct lt_opts {
	const char *pin_dir;
	const char *state_dir;
	const char *config; /* NULL: embedded default */
	const char *ifaces[LT_MAX_IFACES];
	int nifaces;
	enum lt_mode_req mode;
	int keep_maps;
	int events; /* attach: print sampled events as JSON lines on stdout */
	int json; /* status: machine-readable */
	const char *ban_for; /* ban: duration, "forever" */
	const char *ban_reason; /* ban: manual|abuse|auth */
	const char *conn; /* policy set: CAP:RATE */
	const char *packets; /* policy set: CAP:RATE */
	int agg_v4, agg_v6; /* policy set: 0 = inherit */
	const char *api; /* attach: --api ADDR:PORT */
	const char *gateway_group; /* attach: --gateway-group, over the config's */
	const char *sub, *roles, *orgs, *ttl; /* mint-token */
	char **args; /* positional words after the command */
	int nargs;
};

/* Each returns a process exit code; errors are one clear line on stderr. */
int lt_cmd_attach(struct lt_opts *o);
int lt_cmd_detach(struct lt_opts *o);
int lt_cmd_status(struct lt_opts *o);
int lt_cmd_policy(struct lt_opts *o);
int lt_cmd_ban(struct lt_opts *o);
int lt_cmd_unban(struct lt_opts *o);
int lt_cmd_allow(struct lt_opts *o);
int lt_cmd_dry_run(struct lt_opts *o);
int lt_cmd_check_config(struct lt_opts *o);
int lt_cmd_mint_token(struct lt_opts *o);
int lt_cmd_signin_link(struct lt_opts *o);

/*
 * attach and SIGHUP: the config file and the runtime edits over it, read and
 * applied under the state lock (lt_overrides_lock), so an edit made
 * meanwhile by the CLI or the API is either in what is read or lands after
 * the apply, never undone. clock, if set, carries the calibration into the
 * apply. On error *c is left empty.
 */
struct lt_agent_config;
struct lt_maps;
int lt_config_reload(const struct lt_opts *o, const struct lt_maps *m,
		     const struct lt_config *clock, struct lt_agent_config *c, char *err,
		     size_t errlen);

/* 0 when this process may load BPF and attach; else prints why, returns 1. */
int lt_need_privileges(void);

#endif
