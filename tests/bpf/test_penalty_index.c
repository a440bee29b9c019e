// SPDX-License-Identifier: MIT
/*
 * test_penalty_index.c - the penalty box as an index in an array (lt_abi.h,
 * lib/penalty.c), through BPF_PROG_RUN on the real skeleton with injected
 * time: bans by /32, /24 and an IPv6 /64 drop exactly the sources they
 * cover; the prefix-length set (pen_lens) follows bans and unbans; a slot
 * zeroed by hand (bpftool, agent down) unbans; expiry frees slots and their
 * length; an expired ban does not hide an active one around it; a length
 * set lost with lt_config is rebuilt; neighbouring prefixes do not crowd
 * one window; a ban away from its home slot (pen_far) stays found when its
 * home is freed or zeroed by hand. Needs root (CAP_BPF).
 */
#include <errno.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include "lt_test.h"
#include "pktbuild.h"
#include "addr.h"
#include "apply.h"
#include "cfg.h"
#include "config.h"
#include "loader.h"
#include "log.h"
#include "maps.h"
#include "penalty.h"

#define SEC 1000000000ULL
#define T0 (1000 * SEC)
#define TICK (4 * 1000 * 1000ULL) /* > one tick at any HZ: the memo's key moves */

static struct lt_admit *skel;
static struct lt_maps M;
static __u64 now_ns = T0;

static const char config[] = "{\"protected_ports\": [8080], \"event_sample_every\": 0,"
			     "\"default_policy\": {"
			     "  \"connections\": {\"capacity\": 1000000, \"rate\": \"1000000/s\"},"
			     "  \"packets\": {\"capacity\": 1000000, \"rate\": \"1000000/s\"}}}";

static struct lt_lpm_key pfx(const char *s)
{
	struct lt_lpm_key k;
	char err[128];

	if (lt_prefix_parse(s, &k, err, sizeof(err)))
		printf("#   %s: %s\n", s, err);
	return k;
}

/* 1 pass, 0 drop, -1 error: a SYN to the protected port from src, by XDP or TC. */
static int run(const char *src, int tc)
{
	static unsigned char raw[260] __attribute__((aligned(8)));
	struct pkt_spec s = { .src = src };
	unsigned char *buf = raw + 2;
	int len = pkt_build(&s, buf, sizeof(raw) - 2);
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = buf, .data_size_in = (__u32)len, .repeat = 1);
	int fd = bpf_program__fd(tc ? skel->progs.lt_tc : skel->progs.lt_xdp);

	/* every call a new tick: no verdict comes from the per-CPU memo */
	now_ns += TICK;
	skel->bss->lt_fake_now_ns = now_ns;
	if (bpf_prog_test_run_opts(fd, &o))
		return -1;
	if (tc)
		return o.retval == TC_ACT_OK ? 1 : o.retval == TC_ACT_SHOT ? 0 : -1;
	return o.retval == XDP_PASS ? 1 : o.retval == XDP_DROP ? 0 : -1;
}

static int ban(const char *prefix, __u64 until)
{
	struct lt_penalty p = { .until_ns = until, .strikes = 1 };
	struct lt_lpm_key k = pfx(prefix);

	return lt_penalty_put(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], &k, &p);
}

static int unban(const char *prefix)
{
	struct lt_lpm_key k = pfx(prefix);

	return lt_penalty_unban(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], &k);
}

/* pen_lens bit of a prefix length (v4 /n is 96 + n). */
static int len_bit(__u32 len)
{
	struct lt_config_val *v;
	size_t l;
	int bit;

	v = lt_cfg_map(M.fd[LT_M_CONFIG], &l);
	if (!v)
		return -1;
	bit = len == 128 ? !!(v->flags & LT_CFG_PEN_128) :
			   !!(__atomic_load_n(&v->pen_lens[len / 64], __ATOMIC_ACQUIRE) &
			      (1ULL << (len % 64)));
	munmap(v, l);
	return bit;
}

static int lens_count(void)
{
	struct lt_config_val *v;
	size_t l;
	int n;

	v = lt_cfg_map(M.fd[LT_M_CONFIG], &l);
	if (!v)
		return -1;
	n = __builtin_popcountll(v->pen_lens[0]) + __builtin_popcountll(v->pen_lens[1]) +
	    !!(v->flags & LT_CFG_PEN_128);
	munmap(v, l);
	return n;
}

static __u64 stat(__u32 idx)
{
	struct lt_stat_val st[LT_STAT__MAX];

	lt_stats_read(M.fd[LT_M_STATS], st);
	return st[idx].packets;
}

static void reset(void)
{
	lt_penalty_expire(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], ~0ULL, NULL);
}

static void banned_by_32(void)
{
	reset();
	CHECK_EQ(run("10.1.2.3", 0), 1);
	CHECK_EQ(ban("10.1.2.3/32", ~0ULL), 0);
	CHECK_EQ(run("10.1.2.3", 0), 0);
	CHECK_EQ(run("10.1.2.3", 1), 0); /* TC: the same index */
	CHECK_EQ(run("10.1.2.4", 0), 1);
	CHECK_EQ(run("10.1.2.2", 0), 1);
	CHECK_EQ(len_bit(128), 1);
	CHECK_EQ(lens_count(), 1);
}

static void banned_by_24(void)
{
	reset();
	CHECK_EQ(ban("10.2.3.0/24", ~0ULL), 0);
	CHECK_EQ(run("10.2.3.0", 0), 0);
	CHECK_EQ(run("10.2.3.77", 0), 0);
	CHECK_EQ(run("10.2.3.255", 1), 0);
	CHECK_EQ(run("10.2.4.1", 0), 1);
	CHECK_EQ(run("10.2.2.255", 0), 1);
	{
		/* a key with host bits beyond its length is the same prefix */
		struct lt_lpm_key k = pfx("10.2.3.0/24");

		k.addr[15] = 9;
		CHECK_EQ(lt_penalty_unban(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], &k), 0);
	}
	CHECK_EQ(run("10.2.3.77", 0), 1);
}

static void banned_by_v6_64(void)
{
	reset();
	CHECK_EQ(ban("2001:db8:1:2::/64", ~0ULL), 0);
	CHECK_EQ(run("2001:db8:1:2::99", 0), 0);
	CHECK_EQ(run("2001:db8:1:2:ffff:ffff:ffff:ffff", 1), 0);
	CHECK_EQ(run("2001:db8:1:3::1", 0), 1);
	CHECK_EQ(run("10.2.3.77", 0), 1);
	CHECK_EQ(len_bit(64), 1);
}

/*
 * The length set follows the bans: one bit per length in use, cleared with
 * the last ban of its length (a length nobody banned costs no lookup), kept
 * while another ban of that length remains.
 */
static void length_bits_follow_bans(void)
{
	reset();
	CHECK_EQ(lens_count(), 0);
	CHECK_EQ(ban("10.3.0.1/32", ~0ULL), 0);
	CHECK_EQ(ban("10.3.1.0/24", ~0ULL), 0);
	CHECK_EQ(ban("10.3.2.0/24", ~0ULL), 0);
	CHECK_EQ(ban("2001:db8:3::/48", ~0ULL), 0);
	CHECK_EQ(lens_count(), 3);
	CHECK_EQ(len_bit(120) && len_bit(128) && len_bit(48), 1);
	CHECK_EQ(unban("10.3.1.0/24"), 0);
	CHECK_EQ(len_bit(120), 1); /* 10.3.2.0/24 still needs it */
	CHECK_EQ(run("10.3.2.5", 0), 0);
	CHECK_EQ(unban("10.3.2.0/24"), 0);
	CHECK_EQ(len_bit(120), 0);
	CHECK_EQ(run("10.3.0.1", 0), 0); /* other lengths untouched */
	CHECK_EQ(run("2001:db8:3::7", 0), 0);
	CHECK_EQ(unban("10.3.2.0/24"), -ENOENT);
}

/*
 * Without its length's bit a ban is not looked up: the bit is the index's
 * contract. Bits lost with lt_config (a recreated pin, another seed) or
 * never set (a slot written by hand) are rebuilt by reindex at start and by
 * every sweep (lt_penalty_expire), which finds the ban again.
 */
static void lost_length_bits_are_rebuilt(void)
{
	struct lt_config_val *v;
	size_t l;
	long moved = -1;

	reset();
	CHECK_EQ(ban("10.4.0.0/16", ~0ULL), 0);
	CHECK_EQ(ban("2001:db8:4::1/128", ~0ULL), 0);
	CHECK_EQ(run("10.4.9.9", 0), 0);
	v = lt_cfg_map(M.fd[LT_M_CONFIG], &l);
	CHECK(v != NULL);
	if (!v)
		return;
	/* as if lt_config were recreated under the surviving lt_penalty */
	memset(v->pen_lens, 0, sizeof(v->pen_lens));
	__atomic_fetch_and(&v->flags, ~LT_CFG_PEN_128, __ATOMIC_SEQ_CST);
	CHECK_EQ(run("10.4.9.9", 0), 1);
	CHECK_EQ(lt_penalty_expire(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], now_ns, NULL), 0);
	CHECK_EQ(run("10.4.9.9", 0), 0);
	CHECK_EQ(run("2001:db8:4::1", 0), 0);
	/* and with another seed: the slots must move where BPF now looks */
	memset(v->pen_lens, 0, sizeof(v->pen_lens));
	__atomic_fetch_and(&v->flags, ~LT_CFG_PEN_128, __ATOMIC_SEQ_CST);
	v->pen_seed ^= 0x5a5a5a5a5a5a5a5aULL;
	CHECK_EQ(lt_penalty_reindex(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], &moved), 0);
	CHECK_EQ(moved, 2);
	CHECK_EQ(run("10.4.9.9", 0), 0);
	CHECK_EQ(run("2001:db8:4::1", 1), 0);
	CHECK_EQ(run("2001:db8:4::2", 0), 1);
	CHECK_EQ(lt_penalty_count(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG]), 2);
	munmap(v, l);
}

/* The break glass of the README: with the agent down, bpftool writes the slot as zeros. */
static void unban_by_bpftool_zeroing_the_slot(void)
{
	struct lt_pen_slot s, zero = {};
	struct lt_lpm_key k = pfx("10.5.0.0/16");
	__u32 i, found = 0;

	reset();
	CHECK_EQ(ban("10.5.0.0/16", ~0ULL), 0);
	CHECK_EQ(ban("10.6.0.0/16", ~0ULL), 0);
	CHECK_EQ(run("10.5.1.1", 0), 0);
	/* what `bpftool map dump` + `bpftool map update ... value 0 ...` do: syscalls */
	for (i = 0; i < LT_PEN_SLOTS; i++) {
		if (bpf_map_lookup_elem(M.fd[LT_M_PENALTY], &i, &s) || !s.tag ||
		    memcmp(s.addr, k.addr, 16) || s.prefixlen != k.prefixlen)
			continue;
		CHECK_EQ(bpf_map_update_elem(M.fd[LT_M_PENALTY], &i, &zero, BPF_ANY), 0);
		found++;
	}
	CHECK_EQ(found, 1);
	CHECK_EQ(run("10.5.1.1", 0), 1); /* next tick, no generation bump needed */
	CHECK_EQ(run("10.6.1.1", 0), 0);
	CHECK_EQ(lt_penalty_count(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG]), 1);
}

/* A ban ends at until_ns by itself; the sweep frees its slot and its length. */
static void expiry_frees_slot_and_length(void)
{
	__u64 exp0, until;
	long freed = 0;

	reset();
	until = now_ns + 1 * SEC;
	CHECK_EQ(ban("10.7.0.0/24", until), 0);
	CHECK_EQ(ban("10.8.0.1/32", ~0ULL), 0);
	CHECK_EQ(run("10.7.0.5", 0), 0);
	now_ns = until;
	exp0 = stat(LT_STAT_AUX_PENALTY_EXPIRED);
	CHECK_EQ(run("10.7.0.5", 0), 1);
	CHECK_EQ(stat(LT_STAT_AUX_PENALTY_EXPIRED) - exp0, 1);
	CHECK_EQ(lt_penalty_expire(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], now_ns, &freed), 0);
	CHECK_EQ(freed, 1);
	CHECK_EQ(len_bit(120), 0);
	CHECK_EQ(lt_penalty_count(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG]), 1);
	CHECK_EQ(run("10.7.0.5", 0), 1);
	CHECK_EQ(stat(LT_STAT_AUX_PENALTY_EXPIRED) - exp0, 1); /* nothing found any more */
	CHECK_EQ(run("10.8.0.1", 0), 0);
}

/*
 * An expired /32 does not hide the active /24 around it: the LPM trie
 * answered with the most specific entry only, so until the sweep deleted the
 * /32 its source passed (aux_penalty_expired).
 */
static void expired_ban_does_not_hide_active_one(void)
{
	reset();
	CHECK_EQ(ban("10.9.1.0/24", ~0ULL), 0);
	CHECK_EQ(ban("10.9.1.7/32", now_ns + TICK / 2), 0);
	CHECK_EQ(run("10.9.1.7", 0), 0); /* the /32 is over by now, the /24 is not */
	CHECK_EQ(run("10.9.1.7", 1), 0);
}

/* Strikes carry over from a ban of the very prefix only, as before. */
static void ban_inside_a_ban_starts_at_one_strike(void)
{
	struct lt_lpm_key k16 = pfx("10.10.0.0/16"), k24 = pfx("10.10.3.0/24");
	int pf = M.fd[LT_M_PENALTY], cf = M.fd[LT_M_CONFIG];
	struct lt_penalty p;

	reset();
	CHECK_EQ(lt_penalty_ban(pf, cf, &k16, 60 * SEC, LT_PENALTY_MANUAL, NULL), 0);
	CHECK_EQ(lt_penalty_ban(pf, cf, &k16, 60 * SEC, LT_PENALTY_MANUAL, NULL), 0);
	CHECK_EQ(lt_penalty_ban(pf, cf, &k16, 60 * SEC, LT_PENALTY_MANUAL, &p), 0);
	CHECK_EQ(p.strikes, 3);
	CHECK_EQ(lt_penalty_ban(pf, cf, &k24, 60 * SEC, LT_PENALTY_ABUSE, NULL), 0);
	CHECK_EQ(lt_penalty_get(pf, cf, &k24, &p), 0);
	CHECK_EQ(p.strikes, 1);
	CHECK_EQ(p.reason, LT_PENALTY_ABUSE);
	CHECK_EQ(lt_penalty_get(pf, cf, &k16, &p), 0);
	CHECK_EQ(p.strikes, 3);
	CHECK_EQ(lt_penalty_count(pf, cf), 2);
}

/* The limits say what they are, and a refused ban changes nothing. */
static void limits_refuse_cleanly(void)
{
	int pf = M.fd[LT_M_PENALTY], cf = M.fd[LT_M_CONFIG];
	struct lt_config_val *v;
	struct lt_lpm_key k;
	char s[64];
	__u32 n, a, same[LT_PEN_PROBES + 1], idx0 = 0;
	size_t l;

	reset();
	for (n = 0; n < LT_PEN_LENS_MAX; n++) {
		snprintf(s, sizeof(s), "10.11.0.0/%u", 16 + n);
		CHECK_EQ(ban(s, ~0ULL), 0);
	}
	CHECK_EQ(ban("12.0.0.0/8", ~0ULL), -E2BIG);
	CHECK_EQ(lens_count(), LT_PEN_LENS_MAX);
	CHECK_EQ(ban("10.13.0.0/16", ~0ULL), 0); /* a length in use is fine */
	/* LT_PEN_PROBES + 1 addresses whose window is the same: the last finds no slot */
	reset();
	CHECK_EQ(ban("10.14.0.1/32", ~0ULL), 0); /* sets the seed */
	v = lt_cfg_map(cf, &l);
	CHECK(v != NULL);
	if (!v)
		return;
	n = 0;
	for (a = 0; a < (1U << 24) && n <= LT_PEN_PROBES; a++) {
		/* ::ffff:11.a.b.c as lt_parse_ipv4 reads it (lt_v4_mapped_w1) */
		__u64 w1 = ((__u64)__builtin_bswap32(0x0b000000U | a) << 32) | 0xffff0000ULL, tag;
		__u32 idx;

		tag = lt_pen_hash(0, w1, 128, v->pen_seed);
		idx = (__u32)tag & (LT_PEN_SLOTS - 1);
		if (!n)
			idx0 = idx;
		if (idx == idx0)
			same[n++] = a;
	}
	munmap(v, l);
	CHECK_EQ(n, LT_PEN_PROBES + 1);
	for (n = 0; n <= LT_PEN_PROBES; n++) {
		memset(&k, 0, sizeof(k));
		k.prefixlen = 128;
		k.addr[10] = k.addr[11] = 0xff;
		k.addr[12] = 11;
		k.addr[13] = (__u8)(same[n] >> 16);
		k.addr[14] = (__u8)(same[n] >> 8);
		k.addr[15] = (__u8)same[n];
		/*
		 * For ever: lt_penalty_ban times a ban from the real clock, the program
		 * here reads the fake one (T0 and on); 60 s from a machine up for less
		 * than T0 had already ended when the first packet came (a fresh CI VM).
		 */
		CHECK_EQ(lt_penalty_ban(pf, cf, &k, ~0ULL, LT_PENALTY_ABUSE, NULL),
			 n < LT_PEN_PROBES ? 0 : -ENOSPC);
	}
	CHECK_EQ(lt_penalty_count(pf, cf), 1 + LT_PEN_PROBES);
	snprintf(s, sizeof(s), "11.%u.%u.%u", same[0] >> 16 & 255, same[0] >> 8 & 255,
		 same[0] & 255);
	CHECK_EQ(run(s, 0), 0);
	snprintf(s, sizeof(s), "11.%u.%u.%u", same[LT_PEN_PROBES] >> 16 & 255,
		 same[LT_PEN_PROBES] >> 8 & 255, same[LT_PEN_PROBES] & 255);
	CHECK_EQ(run(s, 0), 1);
}

/*
 * Neighbouring addresses spread over the slots: a hash that kept the last
 * octet out of the slot index put every 10.x.y.* into one window of
 * LT_PEN_PROBES slots.
 */
static void neighbours_spread_over_slots(void)
{
	char s[64];
	int i, refused = 0;

	reset();
	for (i = 0; i < 512; i++) {
		snprintf(s, sizeof(s), "10.17.%d.%d/32", i / 256, i % 256);
		refused += ban(s, ~0ULL) != 0;
		snprintf(s, sizeof(s), "2001:db8:17:%x::/64", i);
		refused += ban(s, ~0ULL) != 0;
	}
	CHECK_EQ(refused, 0);
	CHECK_EQ(lt_penalty_count(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG]), 1024);
	CHECK_EQ(run("10.17.1.255", 0), 0);
	CHECK_EQ(run("10.17.2.0", 0), 1);
	CHECK_EQ(run("2001:db8:17:1ff::1", 0), 0);
	CHECK_EQ(run("2001:db8:17:200::1", 0), 1);
}

/*
 * n IPv4 /32 prefixes 11.x.y.z whose windows start at one slot under the
 * current seed (set by a ban first), as strings; returns how many were found.
 */
static int same_home(int n, char out[][32])
{
	size_t l;
	struct lt_config_val *v = lt_cfg_map(M.fd[LT_M_CONFIG], &l);
	__u32 a, idx, idx0 = 0;
	int got = 0;

	if (!v)
		return 0;
	for (a = 0; a < (1U << 24) && got < n; a++) {
		/* ::ffff:11.a.b.c as lt_parse_ipv4 reads it (lt_v4_mapped_w1) */
		__u64 w1 = ((__u64)__builtin_bswap32(0x0b000000U | a) << 32) | 0xffff0000ULL;

		idx = (__u32)lt_pen_hash(0, w1, 128, v->pen_seed) & (LT_PEN_SLOTS - 1);
		if (!got)
			idx0 = idx;
		if (idx == idx0)
			snprintf(out[got++], 32, "11.%u.%u.%u", a >> 16 & 255, a >> 8 & 255,
				 a & 255);
	}
	munmap(v, l);
	return got;
}

static __u32 pen_far(void)
{
	struct lt_config_val *v;
	size_t l;
	__u32 far;

	v = lt_cfg_map(M.fd[LT_M_CONFIG], &l);
	if (!v)
		return ~0U;
	far = __atomic_load_n(&v->pen_far, __ATOMIC_ACQUIRE);
	munmap(v, l);
	return far;
}

/*
 * BPF reads only the home slot of a window while pen_far is 0. A ban that
 * found its home taken sits further on, counts in pen_far, and stays found
 * when the ban at its home goes: by unban, or by the break glass (zeroing
 * the home slot by hand, which does not touch pen_far).
 */
static void ban_away_from_home_is_found(void)
{
	char a[3][32], p[40];
	struct lt_pen_slot s, zero = {};
	struct lt_lpm_key k;
	__u32 i, found = 0;

	reset();
	CHECK_EQ(ban("10.20.0.1/32", ~0ULL), 0); /* sets the seed */
	CHECK_EQ(same_home(3, a), 3);
	CHECK_EQ(pen_far(), 0);
	snprintf(p, sizeof(p), "%s/32", a[0]);
	CHECK_EQ(ban(p, ~0ULL), 0);
	CHECK_EQ(pen_far(), 0);
	snprintf(p, sizeof(p), "%s/32", a[1]);
	CHECK_EQ(ban(p, ~0ULL), 0);
	CHECK_EQ(pen_far(), 1);
	CHECK_EQ(run(a[0], 0), 0);
	CHECK_EQ(run(a[1], 0), 0);
	CHECK_EQ(run(a[2], 1), 1);
	snprintf(p, sizeof(p), "%s/32", a[0]);
	CHECK_EQ(unban(p), 0);
	CHECK_EQ(pen_far(), 1); /* a[1] is still away from its home */
	CHECK_EQ(run(a[0], 0), 1);
	CHECK_EQ(run(a[1], 0), 0);
	CHECK_EQ(run(a[1], 1), 0);
	/* the break glass on a home slot: a[1] stays banned */
	snprintf(p, sizeof(p), "%s/32", a[2]);
	CHECK_EQ(ban(p, ~0ULL), 0); /* takes the free home */
	CHECK_EQ(run(a[2], 0), 0);
	k = pfx(p);
	for (i = 0; i < LT_PEN_SLOTS; i++) {
		if (bpf_map_lookup_elem(M.fd[LT_M_PENALTY], &i, &s) || !s.tag ||
		    memcmp(s.addr, k.addr, 16) || s.prefixlen != k.prefixlen)
			continue;
		CHECK_EQ(bpf_map_update_elem(M.fd[LT_M_PENALTY], &i, &zero, BPF_ANY), 0);
		found++;
	}
	CHECK_EQ(found, 1);
	CHECK_EQ(run(a[2], 0), 1);
	CHECK_EQ(run(a[1], 0), 0);
	CHECK_EQ(run(a[1], 1), 0);
	snprintf(p, sizeof(p), "%s/32", a[1]);
	CHECK_EQ(unban(p), 0);
	CHECK_EQ(pen_far(), 0);
	CHECK_EQ(run(a[1], 0), 1);
}

/* A pen_far lost with lt_config (a recreated pin) is recounted by the sweep. */
static void lost_far_count_is_rebuilt(void)
{
	struct lt_config_val *v;
	char a[2][32], p[40];
	size_t l;

	reset();
	CHECK_EQ(ban("10.21.0.1/32", ~0ULL), 0);
	CHECK_EQ(same_home(2, a), 2);
	snprintf(p, sizeof(p), "%s/32", a[0]);
	CHECK_EQ(ban(p, ~0ULL), 0);
	snprintf(p, sizeof(p), "%s/32", a[1]);
	CHECK_EQ(ban(p, ~0ULL), 0);
	CHECK_EQ(pen_far(), 1);
	v = lt_cfg_map(M.fd[LT_M_CONFIG], &l);
	CHECK(v != NULL);
	if (!v)
		return;
	__atomic_store_n(&v->pen_far, 0, __ATOMIC_RELEASE);
	CHECK_EQ(run(a[1], 0), 1); /* the contract: pen_far 0 says home slots only */
	CHECK_EQ(lt_penalty_expire(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], now_ns, NULL), 0);
	CHECK_EQ(pen_far(), 1);
	CHECK_EQ(run(a[1], 0), 0);
	CHECK_EQ(run(a[0], 1), 0);
	munmap(v, l);
}

/* What BPF decides, user space (the gateway) decides the same way. */
static void user_space_match_agrees(void)
{
	struct lt_lpm_key k = pfx("10.15.0.9/32"), which;
	struct lt_penalty p;

	reset();
	CHECK_EQ(ban("10.15.0.0/16", ~0ULL), 0);
	CHECK_EQ(
		lt_penalty_match(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], k.addr, now_ns, &which, &p),
		1);
	CHECK_EQ(which.prefixlen, 112);
	k = pfx("10.16.0.9/32");
	CHECK_EQ(
		lt_penalty_match(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], k.addr, now_ns, NULL, NULL),
		0);
}

int main(void)
{
	struct lt_load_opts lo = { .fake_clock = 1 };
	struct lt_agent_config c;
	char err[256];

	if (geteuid() != 0) {
		printf("1..0 # SKIP BPF_PROG_RUN needs root\n");
		return 77;
	}
	lt_log_level = LT_LOG_WARN;
	lt_log_libbpf();
	skel = lt_skel_load(&lo, err, sizeof(err));
	if (!skel) {
		printf("not ok 1 - load skeleton: %s\n1..1\n", err);
		return 1;
	}
	lt_maps_from_skel(skel, &M);
	if (lt_config_parse(config, "fixture", &c, err, sizeof(err)) ||
	    lt_config_apply(&M, &c, err, sizeof(err))) {
		printf("not ok 1 - config: %s\n1..1\n", err);
		return 1;
	}
	lt_config_free(&c);
	RUN(banned_by_32);
	RUN(banned_by_24);
	RUN(banned_by_v6_64);
	RUN(length_bits_follow_bans);
	RUN(lost_length_bits_are_rebuilt);
	RUN(unban_by_bpftool_zeroing_the_slot);
	RUN(expiry_frees_slot_and_length);
	RUN(expired_ban_does_not_hide_active_one);
	RUN(ban_inside_a_ban_starts_at_one_strike);
	RUN(limits_refuse_cleanly);
	RUN(neighbours_spread_over_slots);
	RUN(user_space_match_agrees);
	RUN(ban_away_from_home_is_found);
	RUN(lost_far_count_is_rebuilt);
	lt_admit__destroy(skel);
	return lt_t_done();
}
