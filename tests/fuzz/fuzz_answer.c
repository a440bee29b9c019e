// SPDX-License-Identifier: MIT
/*
 * fuzz_answer.c - libFuzzer: gateway/answer.c on arbitrary admission results
 * (every view field, verdict, limit index and cost taken from the input) with
 * arbitrary policy names and model strings: the header block is whole
 * "Name: value\r\n" lines within its buffer, the body within its buffer and
 * valid JSON, and a never-fits verdict is never a 429.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "answer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void lines_whole(const struct lt_answer *a)
{
	const char *p = a->head, *eol, *colon;

	if (a->head_len >= sizeof(a->head) || strlen(a->head) != a->head_len)
		abort();
	while (*p) {
		eol = strstr(p, "\r\n");
		if (!eol)
			abort();
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p || memchr(p, '\n', (size_t)(eol - p)) ||
		    strcspn(p, " \":") != (size_t)(colon - p))
			abort();
		p = eol + 2;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lt_admit_limit lim[LT_ADMIT_MAX];
	char names[LT_ADMIT_MAX][48], model[80];
	struct lt_admit_result r;
	struct lt_answer a;
	size_t off = 0, i, n;
	json_t *j;

	if (size < sizeof(r) + 4)
		return 0;
	memcpy(&r, data, sizeof(r));
	off = sizeof(r);
	for (i = 0; i < LT_ADMIT_MAX; i++) {
		n = off < size ? data[off++] % sizeof(names[i]) : 0;
		if (n > size - off)
			n = size - off;
		memcpy(names[i], data + off, n);
		names[i][n] = '\0';
		off += n;
		lim[i] = (struct lt_admit_limit){ "k", names[i], 0, (__u32)(i & 1) };
		if (off + 8 <= size) {
			memcpy(&lim[i].cost, data + off, 8);
			off += 8;
		}
		lim[i].unit = off < size ? data[off++] & 1 : 0;
	}
	n = size - off < sizeof(model) - 1 ? size - off : sizeof(model) - 1;
	memcpy(model, data + off, n);
	model[n] = '\0';
	r.which = r.which % (LT_ADMIT_MAX + 2) - 1;
	for (i = 0; i < LT_ADMIT_MAX; i++)
		r.decided[i] &= 1;
	if (r.verdict == LT_ADM_OK) {
		lt_answer_ok(&a, (enum lt_answer_route)(size & 1), lim, LT_ADMIT_MAX, &r);
	} else {
		lt_answer_denied(&a, (enum lt_answer_route)(size & 1), lim, LT_ADMIT_MAX, &r,
				 model[0] ? model : NULL, (unsigned)size * 2654435761U);
		if (r.verdict == LT_ADM_NEVER_FITS && a.status == 429)
			abort();
	}
	lines_whole(&a);
	if (a.body_len >= sizeof(a.body) || strlen(a.body) != a.body_len)
		abort();
	if (a.body_len) {
		j = json_loadb(a.body, a.body_len, 0, NULL);
		if (!j)
			abort();
		json_decref(j);
	}
	return 0;
}
