// SPDX-License-Identifier: MIT
/*
 * fuzz_units.c - libFuzzer: the human-unit parsers, each given the input as a
 * string: IP prefixes, rates ("10/s"), durations ("250ms"), CAPACITY:RATE
 * specs; what parses must format and parse back to the same value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "addr.h"
#include "config.h"
#include "units.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lt_lpm_key k, k2;
	__u64 tok, per, ns, tok2, per2;
	struct lt_rate r;
	char err[256], buf[128], *s;

	if (size > 256)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (!lt_prefix_parse(s, &k, err, sizeof(err))) {
		lt_prefix_format(&k, buf, sizeof(buf));
		if (lt_prefix_parse(buf, &k2, err, sizeof(err)) || memcmp(&k, &k2, sizeof(k)))
			abort(); /* a prefix we print must read back as itself */
	}
	if (!lt_rate_parse(s, &tok, &per)) {
		lt_rate_format(tok, per, buf, sizeof(buf));
		if (lt_rate_parse(buf, &tok2, &per2) ||
		    (unsigned __int128)tok * per2 != (unsigned __int128)tok2 * per)
			abort(); /* the canonical spelling is the same rate */
	}
	lt_duration_parse(s, &ns);
	lt_rate_spec_parse(s, &r, err, sizeof(err));
	free(s);
	return 0;
}
