// SPDX-License-Identifier: MIT
/*
 * fuzz_body.c - libFuzzer: the JSON request bodies of the REST API, through
 * the parsers the handlers use: a limit {capacity, rate} (tiers, org quotas,
 * key limits), a source policy (PUT /admin/policies) and the control-plane
 * sections a body can reach. The first byte picks the parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "config.h"
#include "config_cp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct lt_src_policy base = { .agg_v4 = 32, .agg_v6 = 64 };
	struct lt_src_policy pol;
	struct lt_cp_config *cp;
	__u64 cap, tok, per;
	json_error_t jerr;
	char err[512];
	json_t *root;

	if (!size || size > 16384)
		return 0;
	root = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return 0;
	switch (data[0] % 3) {
	case 0:
		lt_cp_limit_parse(root, "", &cap, &tok, &per, err, sizeof(err));
		break;
	case 1:
		lt_policy_from_json(root, "", &base, &pol, err, sizeof(err));
		break;
	default:
		cp = calloc(1, sizeof(*cp));
		if (cp) {
			lt_cp_defaults(cp);
			lt_cp_parse(root, cp, err, sizeof(err));
			free(cp);
		}
	}
	json_decref(root);
	return 0;
}
