// SPDX-License-Identifier: MIT
/*
 * test_utf8.c - text sent back to a client is valid UTF-8 (issue 8 item 9):
 * invalid bytes, overlong forms, surrogates and code points past U+10FFFF
 * become U+FFFD; a character is never cut; jansson accepts every output.
 */
#include <jansson.h>
#include "lt_test.h"
#include "utf8.h"

#define R "\xef\xbf\xbd"

static void table(void)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "plain ascii", "plain ascii" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
		{ "a\xff"
		  "b",
		  "a" R "b" },
		{ "a\x80\x80"
		  "b",
		  "a" R R "b" }, /* lone continuation bytes */
		{ "\xc0\xaf", R R }, /* overlong '/' */
		{ "\xe0\x80\xaf", R R R }, /* overlong, 3 bytes */
		{ "\xf0\x80\x80\xaf", R R R R }, /* overlong, 4 bytes */
		{ "\xed\xa0\x80", R R R }, /* a UTF-16 surrogate */
		{ "\xf4\x90\x80\x80", R R R R }, /* past U+10FFFF */
		{ "\xf5\x80", R R },
		{ "\xe2\x82"
		  "x",
		  R "x" }, /* an unfinished sequence mid-string: one U+FFFD */
		{ "x\xe2\x82", "x" }, /* cut at the end (by %.Ns): dropped */
		{ "x\xf0\x9f\x98", "x" },
		{ "x\xc3", "x" },
		{ "\xf0\x9f\x98\xe2\x82\xac", R "\xe2\x82\xac" },
	};
	char out[64];
	unsigned i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		lt_utf8_sanitize(t[i].in, out, sizeof(out));
		if (strcmp(out, t[i].out)) {
			printf("#   case %u: got '%s'\n", i, out);
			lt_t_cur_failed = 1;
		}
	}
}

static void never_cut_inside_a_character(void)
{
	char out[8];

	/* 3 x 3-byte characters do not fit 7 bytes + NUL: two are kept */
	CHECK_EQ(lt_utf8_sanitize("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", out, sizeof(out)), 6);
	CHECK(!strcmp(out, "\xe2\x82\xac\xe2\x82\xac"));
	CHECK_EQ(lt_utf8_sanitize("abcdef\xff", out, sizeof(out)), 6); /* no room for U+FFFD */
	CHECK_EQ(lt_utf8_sanitize("anything", out, 1), 0);
	CHECK_EQ(out[0], 0);
}

/* Random bytes: every output is a string jansson accepts. */
static void random_bytes_always_valid(void)
{
	unsigned seed = 12345, i, j, bad = 0;
	char in[48], out[160];
	json_t *s;

	for (i = 0; i < 200000; i++) {
		unsigned n = (seed = seed * 1103515245 + 12345) >> 16 & 31;

		for (j = 0; j < n; j++) {
			seed = seed * 1103515245 + 12345;
			in[j] = (char)((seed >> 16) & 0xff ? (seed >> 16) & 0xff : 'x');
		}
		in[n] = '\0';
		lt_utf8_sanitize(in, out, 16 + (i % 100));
		s = json_string(out);
		bad += !s;
		json_decref(s);
	}
	CHECK_EQ(bad, 0);
}

int main(void)
{
	RUN(table);
	RUN(never_cut_inside_a_character);
	RUN(random_bytes_always_valid);
	return lt_t_done();
}
