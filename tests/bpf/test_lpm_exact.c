// SPDX-License-Identifier: MIT
/*
 * test_lpm_exact.c - the exact-prefix test on LPM tries (issue 8 item 14).
 * bpf_map_lookup_elem on an LPM trie answers with the covering entry and
 * never rewrites the key, so "lookup + memcmp" always saw an exact match.
 * lt_lpm_lookup_exact is checked on a real kernel trie (lt_lpm_key, as
 * lt_policy and lt_penalty): nested cases, then random tries against a
 * brute-force walk of every key (lt_penalty is an index since, and its
 * exact lookups are in test_penalty_index). Needs root (CAP_BPF).
 */
#include <errno.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "lt_test.h"
#include "addr.h"
#include "apply.h"
#include "maps.h"

static int fd = -1;
static char err[128];

static struct lt_lpm_key pfx(const char *s)
{
	struct lt_lpm_key k;

	if (lt_prefix_parse(s, &k, err, sizeof(err)))
		printf("# bad prefix %s: %s\n", s, err);
	return k;
}

static int put(const char *s, __u64 v)
{
	struct lt_lpm_key k = pfx(s);

	return bpf_map_update_elem(fd, &k, &v, BPF_ANY);
}

static int exact(const char *s, __u64 *v)
{
	struct lt_lpm_key k = pfx(s);

	return lt_lpm_lookup_exact(fd, &k, v);
}

static int new_trie(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);

	if (fd >= 0)
		close(fd);
	fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "lt_t_lpm", sizeof(struct lt_lpm_key),
			    sizeof(__u64), 4096, &o);
	return fd;
}

static void nested_prefixes(void)
{
	__u64 v = 0;

	CHECK(new_trie() >= 0);
	CHECK_EQ(exact("10.9.3.0/24", &v), -ENOENT); /* empty */
	CHECK_EQ(put("10.9.0.0/16", 16), 0);
	/* the bug: a plain lookup finds the /16 for the /24 */
	{
		struct lt_lpm_key k = pfx("10.9.3.0/24");

		CHECK_EQ(bpf_map_lookup_elem(fd, &k, &v), 0);
		CHECK_EQ(v, 16);
	}
	CHECK_EQ(exact("10.9.3.0/24", &v), -ENOENT);
	CHECK_EQ(exact("10.9.0.0/16", &v), 0);
	CHECK_EQ(v, 16);
	CHECK_EQ(exact("10.0.0.0/8", &v), -ENOENT); /* shorter, not stored */
	CHECK_EQ(exact("10.9.3.0/24", NULL), -ENOENT);
	CHECK_EQ(exact("10.9.0.0/16", NULL), 0);
	CHECK_EQ(put("10.9.3.0/24", 24), 0);
	CHECK_EQ(put("10.9.3.7/32", 32), 0);
	CHECK_EQ(put("2001:db8::/32", 6), 0);
	CHECK_EQ(exact("10.9.3.0/24", &v), 0);
	CHECK_EQ(v, 24);
	CHECK_EQ(exact("10.9.3.7/32", &v), 0);
	CHECK_EQ(v, 32);
	CHECK_EQ(exact("10.9.3.8/32", &v), -ENOENT);
	CHECK_EQ(exact("10.9.3.0/25", &v), -ENOENT);
	CHECK_EQ(exact("2001:db8::/32", &v), 0);
	CHECK_EQ(exact("2001:db8::/48", &v), -ENOENT);
	CHECK_EQ(exact("::/0", &v), -ENOENT);
	CHECK_EQ(put("::/0", 0), 0);
	CHECK_EQ(exact("::/0", &v), 0);
}

/* Random tries of nested v4 prefixes: the helper agrees with a full walk. */
static void random_tries_against_a_walk(void)
{
	static const char *const base[] = { "10.0.0.0/8",    "10.9.0.0/16",    "10.9.3.0/24",
					    "10.9.3.128/25", "10.9.3.7/32",    "10.9.4.0/24",
					    "10.10.0.0/16",  "0.0.0.0/0",      "192.0.2.0/24",
					    "192.0.2.0/25",  "192.0.2.128/25", "10.9.3.0/26" };
	const unsigned nb = sizeof(base) / sizeof(base[0]);
	unsigned seed = 7, round, i, mismatches = 0;

	for (round = 0; round < 300; round++) {
		unsigned in = 0;

		CHECK(new_trie() >= 0);
		for (i = 0; i < nb; i++) {
			seed = seed * 1103515245 + 12345;
			if ((seed >> 16) & 1) {
				put(base[i], i);
				in |= 1u << i;
			}
		}
		for (i = 0; i < nb; i++) {
			struct lt_lpm_key k = pfx(base[i]), w, nk;
			int walked = 0, r;
			__u64 v = ~0ULL;

			r = bpf_map_get_next_key(fd, NULL, &nk);
			while (!r) {
				walked |= !memcmp(&nk, &k, sizeof(k));
				w = nk;
				r = bpf_map_get_next_key(fd, &w, &nk);
			}
			r = lt_lpm_lookup_exact(fd, &k, &v);
			if ((r == 0) != walked || walked != !!(in & 1u << i) || (!r && v != i)) {
				if (mismatches++ < 5)
					printf("#   round %u %s: helper %d, walk %d, inserted %d\n",
					       round, base[i], r, walked, !!(in & 1u << i));
			}
		}
	}
	CHECK_EQ(mismatches, 0);
}

int main(void)
{
	if (geteuid() != 0) {
		printf("1..0 # SKIP LPM tries need root (CAP_BPF)\n");
		return 77;
	}
	RUN(nested_prefixes);
	RUN(random_tries_against_a_walk);
	if (fd >= 0)
		close(fd);
	return lt_t_done();
}
