// SPDX-License-Identifier: MIT
/* fuzz_config.c - libFuzzer: the agent's config parser (the whole JSON document). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lt_agent_config c;
	char err[512], *s;

	if (size > 65536)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (!lt_config_parse(s, "fuzz", &c, err, sizeof(err)))
		lt_config_free(&c);
	free(s);
	return 0;
}
