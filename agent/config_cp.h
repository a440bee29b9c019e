/* SPDX-License-Identifier: MIT */
/* config_cp.h - parsing of the control-plane config sections (see config_cp.c). */
#ifndef LT_AGENT_CONFIG_CP_H
#define LT_AGENT_CONFIG_CP_H

#include <jansson.h>
#include "config.h"

void lt_cp_defaults(struct lt_cp_config *cp);
int lt_cp_parse(json_t *root, struct lt_cp_config *cp, char *err, size_t errlen);
int lt_cp_name_ok(const char *s);
/* {"capacity": N, "rate": "N/s"} at JSON pointer ptr. */
int lt_cp_limit_parse(json_t *v, const char *ptr, __u64 *cap, __u64 *tok, __u64 *per, char *err,
		      size_t errlen);

#endif
