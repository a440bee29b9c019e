// SPDX-License-Identifier: MIT
/*
 * test_strbuild.c - the string builder that replaced snprintf on the request
 * path (lib/units.h lt_sb): it keeps snprintf's contract exactly, so every
 * caller's text, cut and length are what they were. Compared against
 * snprintf for every buffer size from 0 to past the text, with numbers at
 * both ends of their range; then the callers' own outputs (the RateLimit
 * fields, rates, bucket keys) against the snprintf formats they replaced.
 */
#include <errno.h>
#include <stdint.h>
#include "lt_abi.h"
#include "lt_test.h"
#include "ratelimit.h"
#include "tenant.h"
#include "units.h"

/* "<a><n><b>" through the builder vs snprintf, for every cap up to the text + 2 */
static int same_as_snprintf(const char *a, unsigned long long n, const char *b)
{
	char want[128], got[128];
	size_t cap;
	int wlen, bad = 0;

	for (cap = 0; cap < sizeof(got); cap++) {
		struct lt_sb sb;

		memset(want, 'W', sizeof(want));
		memset(got, 'W', sizeof(got));
		wlen = snprintf(want, cap, "%s%llu%s", a, n, b);
		lt_sb_init(&sb, got, cap);
		lt_sb_str(&sb, a);
		lt_sb_u64(&sb, n);
		lt_sb_str(&sb, b);
		/* the same length, bytes, terminator, and nothing written past cap */
		if (sb.len != (size_t)wlen || memcmp(want, got, sizeof(got))) {
			printf("#   \"%s%llu%s\" cap %zu: len %zu want %d\n", a, n, b, cap, sb.len,
			       wlen);
			bad = 1;
		}
		if ((size_t)wlen + 2 < cap)
			break;
	}
	return !bad;
}

static void builder_matches_snprintf_at_every_size(void)
{
	static const unsigned long long nums[] = { 0,
						   1,
						   9,
						   10,
						   99,
						   100,
						   4294967295ULL,
						   4294967296ULL,
						   9007199254740991ULL,
						   UINT64_MAX - 1,
						   UINT64_MAX };
	static const char *strs[] = { "", "a", "\"USER\";q=", "u/USER/openai/" };
	size_t i, j;

	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		for (j = 0; j < sizeof(strs) / sizeof(strs[0]); j++)
			CHECK(same_as_snprintf(strs[j], nums[i], strs[(j + 1) % 4]));
}

static void rl_fields_text_unchanged(void)
{
	char pol[160], cur[160], wpol[160], wcur[160];

	lt_rl_fields("USER", 10000, 10, 9999, 1, pol, sizeof(pol), cur, sizeof(cur));
	CHECK(!strcmp(pol, "\"USER\";q=10000;w=10"));
	CHECK(!strcmp(cur, "\"USER\";r=9999;t=1"));
	/* saturated at LT_SF_INT_MAX, as before */
	lt_rl_fields("org", UINT64_MAX, UINT64_MAX, 0, UINT64_MAX, pol, sizeof(pol), cur,
		     sizeof(cur));
	snprintf(wpol, sizeof(wpol), "\"org\";q=%llu;w=%llu", (unsigned long long)LT_SF_INT_MAX,
		 (unsigned long long)LT_SF_INT_MAX);
	snprintf(wcur, sizeof(wcur), "\"org\";r=0;t=%llu", (unsigned long long)LT_SF_INT_MAX);
	CHECK(!strcmp(pol, wpol));
	CHECK(!strcmp(cur, wcur));
	/* a short buffer cuts the text and stays terminated */
	lt_rl_fields("USER", 10000, 10, 9999, 1, pol, 8, cur, 1);
	CHECK(!strcmp(pol, "\"USER\";"));
	CHECK(cur[0] == '\0');
}

static void rate_text_unchanged(void)
{
	char buf[48];

	lt_rate_format(1000, LT_NS_PER_SEC, buf, sizeof(buf));
	CHECK(!strcmp(buf, "1000/s"));
	lt_rate_format(7, 250000000ULL, buf, sizeof(buf));
	CHECK(!strcmp(buf, "28/s"));
	lt_rate_format(3, 7 * LT_NS_PER_SEC, buf, sizeof(buf));
	CHECK(!strcmp(buf, "3/7s"));
	lt_rate_format(1, 3650ULL * 86400 * LT_NS_PER_SEC, buf, sizeof(buf));
	CHECK(!strcmp(buf, "1/3650d"));
	lt_rate_format(UINT64_MAX, 3, buf, sizeof(buf));
	CHECK(!strcmp(buf, "18446744073709551615/3ns"));
	lt_rate_format(1000, LT_NS_PER_SEC, buf, 4);
	CHECK(!strcmp(buf, "100"));
}

static void bucket_keys_unchanged(void)
{
	const char *u = "00000000-0000-0000-0000-000000000001";
	char key[LT_BUCKET_KEY_LEN], small[8];

	CHECK(!lt_bucket_key(key, sizeof(key), LT_BKEY_USER, "USER", "openai", u));
	CHECK(!strcmp(key, "u/USER/openai/00000000-0000-0000-0000-000000000001"));
	CHECK(!lt_bucket_key(key, sizeof(key), LT_BKEY_ORG, NULL, "qwen", u));
	CHECK(!strcmp(key, "o/qwen/00000000-0000-0000-0000-000000000001"));
	CHECK(!lt_bucket_key(key, sizeof(key), LT_BKEY_APIKEY, NULL, NULL, "lk_0123456789abcdef"));
	CHECK(!strcmp(key, "k/lk_0123456789abcdef"));
	/* too long for the buffer: refused, and the buffer is left empty */
	CHECK_EQ(lt_bucket_key(small, sizeof(small), LT_BKEY_ORG, NULL, "qwen", u), -ENAMETOOLONG);
	CHECK(small[0] == '\0');
}

int main(void)
{
	RUN(builder_matches_snprintf_at_every_size);
	RUN(rl_fields_text_unchanged);
	RUN(rate_text_unchanged);
	RUN(bucket_keys_unchanged);
	return lt_t_done();
}
