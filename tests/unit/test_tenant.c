// SPDX-License-Identifier: MIT
/*
 * test_tenant.c - one tenant, one spelling (issue 8 item 1): canonical ids,
 * the one bucket-key builder, reads that never create a bucket, and org
 * limits stored under an old upper-case spelling.
 */
#include <errno.h>
#include <unistd.h>
#include "lt_test.h"
#include "quota.h"
#include "tenant.h"
#include "units.h"

#define SEC 1000000000ULL
#define U "abcdefab-cdef-4abc-8def-abcdefabcdef"

static struct lt_slot *slots;
static struct lt_rate *rates;
static struct lt_usage *usage;
static char err[256], dbpath[64];

static void uuid_one_spelling(void)
{
	char out[LT_UUID_LEN + 1], big[256];
	static const char *const bad[] = {
		"",
		" " U,
		U " ",
		"{" U "}",
		"urn:uuid:" U,
		"abcdefabcdef4abc8defabcdefabcdef",
		"abcdefab-cdef-4abc-8def-abcdefabcde", /* 35 */
		"abcdefab-cdef-4abc-8def-abcdefabcdeff", /* 37 */
		"abcdefab_cdef-4abc-8def-abcdefabcdef",
		"gbcdefab-cdef-4abc-8def-abcdefabcdef",
		"\xd0\xb0"
		"bcdefab-cdef-4abc-8def-abcdefabcdef", /* Cyrillic a */
		"\xef\xbc\x90"
		"bcdefab-cdef-4abc-8def-abcdefabcd", /* fullwidth 0 */
		"abcdefab\xe2\x80\x90"
		"cdef-4abc-8def-abcdefabcd", /* U+2010 hyphen */
	};
	unsigned i;
	int mask;

	CHECK_EQ(lt_uuid_canon(U, out), 0);
	CHECK(!strcmp(out, U));
	CHECK(lt_uuid_canonical(U));
	CHECK(!lt_uuid_canonical("ABCDEFAB-cdef-4abc-8def-abcdefabcdef"));
	/* every case variant of the first 12 letters has one canonical form */
	for (mask = 0; mask < 1 << 12; mask++) {
		char v[LT_UUID_LEN + 1];
		int bit = 0, j;

		memcpy(v, U, sizeof(v));
		for (j = 0; v[j] && bit < 12; j++)
			if (v[j] >= 'a' && v[j] <= 'f' && (mask >> bit++ & 1))
				v[j] = (char)(v[j] - 'a' + 'A');
		CHECK(lt_uuid_ok(v));
		CHECK_EQ(lt_uuid_canon(v, out), 0);
		CHECK(!strcmp(out, U));
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!lt_uuid_ok(bad[i]));
		if (lt_uuid_canon(bad[i], out) != -EINVAL)
			printf("#   accepted '%s'\n", bad[i]), lt_t_cur_failed = 1;
	}
	CHECK(!lt_uuid_ok(NULL));

	/* claims: a UUID is lower-cased, anything else kept exactly */
	CHECK_EQ(lt_claim_id_canon("ABCDEFAB-CDEF-4ABC-8DEF-ABCDEFABCDEF", big, sizeof(big)), 0);
	CHECK(!strcmp(big, U));
	CHECK_EQ(lt_claim_id_canon("Admin-1", big, sizeof(big)), 0);
	CHECK(!strcmp(big, "Admin-1"));
	CHECK_EQ(lt_claim_id_canon("{" U "}", big, sizeof(big)), 0);
	CHECK(!strcmp(big, "{" U "}"));
	CHECK_EQ(lt_claim_id_canon(U, big, 36), -ENAMETOOLONG); /* never cut */
}

static void bucket_key_builder(void)
{
	char k[LT_BUCKET_KEY_LEN], longp[200];

	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_USER, "USER", "openai", U), 0);
	CHECK(!strcmp(k, "u/USER/openai/" U));
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_ORG, NULL, "openai", U), 0);
	CHECK(!strcmp(k, "o/openai/" U));
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_APIKEY, NULL, NULL, "lk_0011223344556677"), 0);
	CHECK(!strcmp(k, "k/lk_0011223344556677"));
	/* a raw spelling is a caller bug: refused, not keyed */
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_USER, "USER", "openai",
			       "ABCDEFAB-cdef-4abc-8def-abcdefabcdef"),
		 -EINVAL);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_ORG, NULL, "openai", "{" U "}"), -EINVAL);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_USER, "US/ER", "openai", U), -EINVAL);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_USER, "USER", "", U), -EINVAL);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_USER, "USER", "open ai", U), -EINVAL);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_APIKEY, NULL, NULL, "a/b"), -EINVAL);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_APIKEY, NULL, NULL, "\xff"), -EINVAL);
	memset(longp, 'p', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_ORG, NULL, longp, U), -ENAMETOOLONG);
	CHECK_EQ(lt_bucket_key(k, 10, LT_BKEY_ORG, NULL, "openai", U), -ENAMETOOLONG);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), (enum lt_bkey_kind)'x', NULL, "openai", U), -EINVAL);
	/* the request-rate and pool keys are length-checked like the others */
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_KEYREQ, "USER", NULL, longp), -ENAMETOOLONG);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_POOL, NULL, longp, NULL), -ENAMETOOLONG);
	CHECK_EQ(lt_bucket_key(k, 5, LT_BKEY_POOL, NULL, "openai", NULL), -ENAMETOOLONG);
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_KEYREQ, "USER", NULL, "lk_00"), 0);
	CHECK(!strcmp(k, "r/USER/lk_00"));
	CHECK_EQ(lt_bucket_key(k, sizeof(k), LT_BKEY_POOL, NULL, "openai", NULL), 0);
	CHECK(!strcmp(k, "p/openai"));
}

/* A key from outside names its bucket in one spelling only. */
static void bucket_key_canonical(void)
{
	static const char *const good[] = {
		"u/USER/openai/" U, "o/openai/" U, "k/lk_0011223344556677",
		"r/USER/lk_00",	    "p/openai",
	};
	static const char *const bad[] = {
		"u/USER/openai/ABCDEFAB-cdef-4abc-8def-abcdefabcdef", /* another case */
		"o/openai/{" U "}",
		"o/openai/" U "/",
		"o/openai//" U,
		"o/openai",
		"u/USER/" U,
		"u/USER/openai/" U "/x",
		"p/",
		"p/openai/x",
		"k/",
		"x/openai",
		"o",
		"",
		"o/open ai/" U,
		"k/lk_\x7f",
	};
	char longk[300];
	unsigned i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK_EQ(lt_bucket_key_canonical(good[i]), 1);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (lt_bucket_key_canonical(bad[i])) {
			printf("#   accepted: %s\n", bad[i]);
			CHECK(!"a non-canonical key was accepted");
		}
	memset(longk, 'p', sizeof(longk) - 1);
	longk[0] = 'p';
	longk[1] = '/';
	longk[sizeof(longk) - 1] = '\0';
	CHECK_EQ(lt_bucket_key_canonical(longk), 0);
	CHECK_EQ(lt_bucket_key_canonical(NULL), 0);
}

static struct lt_quota *open_q(struct lt_store *st)
{
	struct lt_quota_maps m = { slots, rates, usage, -1 };
	struct lt_quota *q = NULL;

	CHECK_EQ(lt_store_open(st, dbpath, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_open(&q, st, &m, err, sizeof(err)), 0);
	return q;
}

static void reads_never_create_a_bucket(void)
{
	struct lt_limit user = { 100, 10, SEC }, key = { 5, 1, SEC };
	struct lt_view v;
	struct lt_slot_seen seen;
	struct lt_store st;
	struct lt_quota *q;
	__u32 slot = 99, s;
	__u64 now = lt_now_ns();
	int fd;

	snprintf(dbpath, sizeof(dbpath), "/tmp/lt-tenant-XXXXXX");
	fd = mkstemp(dbpath);
	close(fd);
	q = open_q(&st);
	CHECK_EQ(lt_quota_limit_set(q, "tier", "USER", "*", &user, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_peek_key(q, "u/USER/openai/" U, NULL, now, &v, &slot), 0);
	CHECK_EQ(slot, 0);
	CHECK_EQ(v.capacity, 100);
	CHECK_EQ(v.remaining, 100);
	CHECK_EQ(v.full_in_ns, 0);
	CHECK_EQ(lt_quota_peek_key(q, "k/lk_1", &key, now, &v, &slot), 0);
	CHECK_EQ(v.remaining, 5);
	CHECK_EQ(lt_quota_peek_key(q, "k/lk_1", NULL, now, &v, &slot), -ENOENT);
	CHECK_EQ(lt_quota_peek_key(q, "u/NOTIER/openai/" U, NULL, now, &v, &slot), -ENOENT);
	CHECK_EQ(lt_quota_buckets(q), 0);
	/* once the bucket exists, the read sees it */
	CHECK_EQ(lt_quota_bucket(q, "u/USER/openai/" U, NULL, &s, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_consume(q, s, 30, now, &v, &seen), LT_ADMIT);
	CHECK_EQ(lt_quota_peek_key(q, "u/USER/openai/" U, NULL, now + 1000, &v, &slot), 0);
	CHECK_EQ(slot, s);
	CHECK(v.remaining == 70 || v.remaining == 69);
	CHECK_EQ(lt_quota_buckets(q), 1);
	lt_quota_close(q);
	lt_store_close(&st);
	unlink(dbpath);
}

/* An org limit stored under an upper-case id (before this fix) governs again. */
static void stored_org_limit_is_canonicalised(void)
{
	struct lt_limit org = { 50, 1, SEC }, dflt = { 100000, 1000, SEC }, l;
	struct lt_view v;
	struct lt_store st;
	struct lt_quota *q;
	__u32 s;
	int fd;

	snprintf(dbpath, sizeof(dbpath), "/tmp/lt-tenant-XXXXXX");
	fd = mkstemp(dbpath);
	close(fd);
	CHECK_EQ(lt_store_open(&st, dbpath, err, sizeof(err)), 0);
	CHECK_EQ(lt_store_limit_put(&st, "org", "*", "*", &dflt), 0);
	CHECK_EQ(lt_store_limit_put(&st, "org", "ABCDEFAB-CDEF-4ABC-8DEF-ABCDEFABCDEF", "qwen",
				    &org),
		 0);
	lt_store_close(&st);
	q = open_q(&st);
	CHECK_EQ(lt_quota_limit_get(q, "org", U, "qwen", &l), 0);
	CHECK_EQ(l.capacity, 50);
	CHECK_EQ(lt_quota_bucket(q, "o/qwen/" U, NULL, &s, err, sizeof(err)), 0);
	lt_quota_peek(q, s, lt_now_ns(), &v);
	CHECK_EQ(v.capacity, 50);
	/* and the store was rewritten: a delete under the canonical id sticks */
	CHECK_EQ(lt_quota_limit_del(q, "org", U, "qwen", err, sizeof(err)), 0);
	lt_quota_close(q);
	lt_store_close(&st);
	q = open_q(&st);
	CHECK_EQ(lt_quota_limit_get(q, "org", U, "qwen", &l), -ENOENT);
	CHECK_EQ(lt_quota_limit_get(q, "org", "ABCDEFAB-CDEF-4ABC-8DEF-ABCDEFABCDEF", "qwen", &l),
		 -ENOENT);
	lt_quota_close(q);
	lt_store_close(&st);
	unlink(dbpath);
}

int main(void)
{
	slots = calloc(LT_MAX_SLOTS, sizeof(*slots));
	rates = calloc(LT_MAX_RATES, sizeof(*rates));
	usage = calloc(LT_MAX_SLOTS, sizeof(*usage));
	RUN(uuid_one_spelling);
	RUN(bucket_key_builder);
	RUN(bucket_key_canonical);
	RUN(reads_never_create_a_bucket);
	RUN(stored_org_limit_is_canonicalised);
	free(slots);
	free(rates);
	free(usage);
	return lt_t_done();
}
