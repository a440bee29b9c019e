// SPDX-License-Identifier: MIT
/*
 * fuzz_logq.c - libFuzzer: the request log's query parameters (agent/logq.c),
 * all untrusted query-string values. Input: "name=value" lines, as many as
 * fit. Nothing is half-applied: after any value, taken or refused, the query
 * is in range and its SQL fits its buffer. A cursor that parses is exactly
 * the one lt_logq_cursor makes of what it parsed to (one spelling per
 * position); a time parses to a value that fits an int64.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "logq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, *line, *save = NULL, sql[1024], c[LT_LOGS_CURSOR_LEN + 1];
	struct lt_logq q;
	const char *why;
	__s64 t, id;
	__u64 ns;

	if (size > 4096)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	lt_logq_init(&q);
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		if (!eq)
			continue;
		*eq = '\0';
		if (lt_logq_set(&q, line, eq + 1, &why) && !why)
			abort(); /* every refusal says why */
		if (!lt_logq_cursor_parse(eq + 1, &t, &id)) {
			lt_logq_cursor(t, id, c);
			if (strcmp(c, eq + 1) || t < 0 || id < 1)
				abort(); /* one spelling, in range */
		}
		if (!lt_logq_parse_time(eq + 1, &ns) && ns > (__u64)INT64_MAX)
			abort();
	}
	if (q.limit < 1 || q.limit > LT_LOGS_LIMIT_MAX || lt_logq_sql(&q, sql, sizeof(sql)))
		abort(); /* any accepted query builds */
	free(s);
	return 0;
}
