// SPDX-License-Identifier: MIT
/*
 * test_keyidx.c - lt_keyidx (a real BPF hash map, as other processes read it)
 * and the store move together. While the store refuses writes (a full disk,
 * made here with PRAGMA query_only), 301 new buckets fail: none may appear in
 * lt_keyidx, and once the store works again every key gets its own slot.
 * Also: an entry the store does not have is removed at open. Needs root.
 */
#include <errno.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "lt_test.h"
#include "quota.h"
#include "units.h"

#define SEC 1000000000ULL

static struct lt_slot *slots;
static struct lt_rate *rates;
static struct lt_usage *usage;
static char err[256], dbpath[64];
static int kfd = -1;

static struct lt_quota *open_q(struct lt_store *st)
{
	struct lt_quota_maps m = { slots, rates, usage, kfd };
	struct lt_quota *q = NULL;

	CHECK_EQ(lt_store_open(st, dbpath, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_open(&q, st, &m, err, sizeof(err)), 0);
	return q;
}

/* Entries of lt_keyidx; fails the test if two share a slot. */
static long keyidx_entries(void)
{
	static __u8 seen[LT_MAX_SLOTS];
	struct lt_keyidx_key k, nk;
	struct lt_keyidx_val v;
	long n = 0;
	int r;

	memset(seen, 0, sizeof(seen));
	r = bpf_map_get_next_key(kfd, NULL, &nk);
	while (!r) {
		k = nk;
		if (!bpf_map_lookup_elem(kfd, &k, &v)) {
			if (seen[v.slot & (LT_MAX_SLOTS - 1)]++)
				printf("#   slot %u has two keys (one is %s)\n", v.slot, k.key);
			CHECK_EQ(seen[v.slot & (LT_MAX_SLOTS - 1)], 1);
			n++;
		}
		r = bpf_map_get_next_key(kfd, &k, &nk);
	}
	return n;
}

static int keyidx_has(const char *key, __u32 *slot)
{
	struct lt_keyidx_key k = { 0 };
	struct lt_keyidx_val v;

	snprintf(k.key, sizeof(k.key), "%s", key);
	if (bpf_map_lookup_elem(kfd, &k, &v))
		return 0;
	*slot = v.slot;
	return 1;
}

static void a_failed_store_write_publishes_no_key_and_shares_no_slot(void)
{
	struct lt_limit lim = { 100, 10, SEC };
	struct lt_store st;
	struct lt_quota *q;
	char key[64];
	__u32 s, ks, first;
	int i, fd;

	snprintf(dbpath, sizeof(dbpath), "/tmp/lt-keyidx-XXXXXX");
	fd = mkstemp(dbpath);
	close(fd);
	q = open_q(&st);
	CHECK_EQ(lt_quota_limit_set(q, "org", "*", "*", &lim, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "o/openai/first", NULL, &first, err, sizeof(err)), 0);
	CHECK_EQ(keyidx_entries(), 1);

	/* the disk is full: every new bucket fails, and nothing is published */
	CHECK_EQ(sqlite3_exec(st.db, "PRAGMA query_only=ON", NULL, NULL, NULL), SQLITE_OK);
	for (i = 0; i < 301; i++) {
		snprintf(key, sizeof(key), "o/openai/org%d", i);
		CHECK_EQ(lt_quota_bucket(q, key, NULL, &s, err, sizeof(err)), -EIO);
	}
	CHECK(strstr(err, "store") != NULL);
	CHECK_EQ(keyidx_entries(), 1);
	CHECK(!keyidx_has("o/openai/org0", &ks));
	CHECK_EQ(lt_quota_buckets(q), 1);

	/* space again: each key gets its own slot, published as stored */
	CHECK_EQ(sqlite3_exec(st.db, "PRAGMA query_only=OFF", NULL, NULL, NULL), SQLITE_OK);
	for (i = 0; i < 301; i++) {
		snprintf(key, sizeof(key), "o/openai/org%d", i);
		CHECK_EQ(lt_quota_bucket(q, key, NULL, &s, err, sizeof(err)), 0);
		CHECK(s != first);
		CHECK(keyidx_has(key, &ks));
		CHECK_EQ(ks, s & (LT_MAX_SLOTS - 1));
	}
	CHECK_EQ(keyidx_entries(), 302);
	CHECK_EQ(lt_quota_buckets(q), 302);
	lt_quota_close(q);
	lt_store_close(&st);

	/* an lt_keyidx entry the store never recorded is gone after a restart */
	{
		struct lt_keyidx_key k = { 0 };
		struct lt_keyidx_val v = { .slot = 99999 }; /* nobody's */

		snprintf(k.key, sizeof(k.key), "o/openai/ghost");
		CHECK_EQ(bpf_map_update_elem(kfd, &k, &v, BPF_ANY), 0);
		CHECK_EQ(keyidx_entries(), 303); /* 302 + the ghost */
	}
	q = open_q(&st);
	CHECK(!keyidx_has("o/openai/ghost", &ks));
	CHECK_EQ(keyidx_entries(), 302);
	lt_quota_close(q);
	lt_store_close(&st);
	unlink(dbpath);
}

int main(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);

	kfd = bpf_map_create(BPF_MAP_TYPE_HASH, "lt_keyidx", sizeof(struct lt_keyidx_key),
			     sizeof(struct lt_keyidx_val), 1 << 16, &o);
	if (kfd < 0) {
		printf("Bail out! cannot create a BPF hash map (needs root): %s\n",
		       strerror(errno));
		return 1;
	}
	slots = calloc(LT_MAX_SLOTS, sizeof(*slots));
	rates = calloc(LT_MAX_RATES, sizeof(*rates));
	usage = calloc(LT_MAX_SLOTS, sizeof(*usage));
	RUN(a_failed_store_write_publishes_no_key_and_shares_no_slot);
	free(slots);
	free(rates);
	free(usage);
	close(kfd);
	return lt_t_done();
}
