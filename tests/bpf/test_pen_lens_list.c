// SPDX-License-Identifier: MIT
/*
 * test_pen_lens_list.c - the per-CPU list of banned prefix lengths that the
 * XDP/TC penalty walk reads (bpf/admit.bpf.c, lt_pen_check): it is derived
 * from lt_config's pen_lens and keyed by the very words it came from, so
 * the walk follows every change of pen_lens at the next packet, whoever
 * wrote it (lib/penalty.c, or a raw edit of the mmapped lt_config, which
 * bumps no generation); a list of LT_PEN_LENS_MAX lengths, length 128 among
 * them, finds each; and a set of more lengths than a list holds (only a raw
 * edit makes one: the writers refuse, -E2BIG) is still walked whole.
 * BPF_PROG_RUN on the real skeleton with injected time, every packet in a
 * new tick so no verdict comes from the per-source memo. Needs root.
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

	now_ns += TICK;
	skel->bss->lt_fake_now_ns = now_ns;
	if (bpf_prog_test_run_opts(fd, &o))
		return -1;
	if (tc)
		return o.retval == TC_ACT_OK ? 1 : o.retval == TC_ACT_SHOT ? 0 : -1;
	return o.retval == XDP_PASS ? 1 : o.retval == XDP_DROP ? 0 : -1;
}

static int ban(const char *prefix)
{
	struct lt_penalty p = { .until_ns = ~0ULL, .strikes = 1 };
	struct lt_lpm_key k = pfx(prefix);

	return lt_penalty_put(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], &k, &p);
}

static void reset(void)
{
	lt_penalty_expire(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], ~0ULL, NULL);
}

/* pen_lens bit of length len (128: the flag), set or cleared as a raw edit would. */
static void raw_len_bit(struct lt_config_val *v, __u32 len, int on)
{
	if (len == 128) {
		if (on)
			__atomic_fetch_or(&v->flags, LT_CFG_PEN_128, __ATOMIC_SEQ_CST);
		else
			__atomic_fetch_and(&v->flags, ~LT_CFG_PEN_128, __ATOMIC_SEQ_CST);
		return;
	}
	if (on)
		__atomic_fetch_or(&v->pen_lens[len / 64], 1ULL << (len % 64), __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_and(&v->pen_lens[len / 64], ~(1ULL << (len % 64)), __ATOMIC_SEQ_CST);
}

/*
 * A ban written into lt_penalty by hand, where BPF looks for it, without
 * lib/penalty.c (so without its -E2BIG): the slot by syscall as bpftool
 * would, then its length's bit. 0, or -1 when its window is taken.
 */
static int raw_ban(struct lt_config_val *v, const char *prefix)
{
	struct lt_lpm_key k = pfx(prefix);
	struct lt_pen_slot s = {}, cur;
	__u64 w0, w1, tag;
	__u32 idx, i;

	lt_addr_mask(k.addr, k.prefixlen);
	memcpy(&w0, k.addr, 8);
	memcpy(&w1, k.addr + 8, 8);
	tag = lt_pen_hash(w0, w1, k.prefixlen, __atomic_load_n(&v->pen_seed, __ATOMIC_ACQUIRE));
	memcpy(s.addr, k.addr, 16);
	s.prefixlen = k.prefixlen;
	s.until_ns = ~0ULL;
	s.strikes = 1;
	s.tag = tag;
	for (i = 0; i < LT_PEN_PROBES; i++) {
		idx = ((__u32)tag + i) & (LT_PEN_SLOTS - 1);
		if (bpf_map_lookup_elem(M.fd[LT_M_PENALTY], &idx, &cur) || cur.tag)
			continue;
		if (bpf_map_update_elem(M.fd[LT_M_PENALTY], &idx, &s, BPF_ANY))
			return -1;
		raw_len_bit(v, k.prefixlen, 1);
		return 0;
	}
	return -1;
}

/*
 * No generation bump: only the words of pen_lens change, and the next packet
 * (of another source, in a new tick) is walked by the new set, both ways.
 */
static void raw_edit_of_pen_lens_is_followed_at_the_next_packet(void)
{
	struct lt_config_val *v;
	__u64 gen;
	size_t l;

	reset();
	v = lt_cfg_map(M.fd[LT_M_CONFIG], &l);
	CHECK(v != NULL);
	if (!v)
		return;
	CHECK_EQ(ban("10.9.0.0/16"), 0);
	CHECK_EQ(ban("10.8.1.1/32"), 0);
	CHECK_EQ(run("10.9.0.1", 0), 0);
	CHECK_EQ(run("10.8.1.1", 0), 0);
	gen = __atomic_load_n(&v->generation, __ATOMIC_ACQUIRE);
	raw_len_bit(v, 112, 0);
	CHECK_EQ(run("10.9.0.2", 0), 1); /* the list no longer holds /16 */
	CHECK_EQ(run("10.8.1.1", 0), 0); /* ... and still holds 128 */
	raw_len_bit(v, 112, 1);
	CHECK_EQ(run("10.9.0.3", 0), 0);
	CHECK_EQ(run("10.9.0.3", 1), 0); /* TC reads the same list */
	raw_len_bit(v, 128, 0);
	CHECK_EQ(run("10.8.1.1", 0), 1);
	raw_len_bit(v, 128, 1);
	CHECK_EQ(run("10.8.1.1", 0), 0);
	/* a length that appears by a raw edit alone, slot and bit */
	CHECK_EQ(raw_ban(v, "10.7.7.0/24"), 0);
	CHECK_EQ(run("10.7.7.7", 0), 0);
	CHECK_EQ(run("10.7.8.7", 0), 1);
	CHECK_EQ(__atomic_load_n(&v->generation, __ATOMIC_ACQUIRE), gen);
	munmap(v, l);
}

/* Eight lengths, 128 among them (first in the list), v4 and v6: each drops its sources only. */
static void a_full_list_finds_every_length(void)
{
	static const char *const bans[LT_PEN_LENS_MAX] = {
		"1.2.3.4/32",	"20.0.0.0/8",	"21.1.0.0/16",	"22.1.1.0/24",
		"23.16.0.0/12", "24.1.16.0/20", "25.1.1.16/28", "2001:db8:5::/64",
	};
	static const char *const in[LT_PEN_LENS_MAX] = {
		"1.2.3.4",   "20.200.1.1", "21.1.200.1", "22.1.1.200",
		"23.31.1.1", "24.1.31.1",  "25.1.1.31",	 "2001:db8:5::77",
	};
	static const char *const out[LT_PEN_LENS_MAX] = {
		"1.2.3.5",   "19.200.1.1", "21.2.200.1", "22.1.2.200",
		"23.32.1.1", "24.1.32.1",  "25.1.1.32",	 "2001:db8:6::77",
	};
	int i;

	reset();
	for (i = 0; i < LT_PEN_LENS_MAX; i++)
		CHECK_EQ(ban(bans[i]), 0);
	CHECK_EQ(ban("26.0.0.0/30"), -E2BIG); /* the writers stop at LT_PEN_LENS_MAX */
	for (i = 0; i < LT_PEN_LENS_MAX; i++) {
		CHECK_EQ(run(in[i], 0), 0);
		CHECK_EQ(run(in[i], 1), 0);
		CHECK_EQ(run(out[i], 0), 1);
	}
}

/* A ninth length, by a raw edit: more than a list holds, and still walked. */
static void more_lengths_than_a_list_holds_are_all_walked(void)
{
	struct lt_config_val *v;
	size_t l;

	a_full_list_finds_every_length();
	v = lt_cfg_map(M.fd[LT_M_CONFIG], &l);
	CHECK(v != NULL);
	if (!v)
		return;
	CHECK_EQ(raw_ban(v, "26.0.0.0/30"), 0);
	CHECK_EQ(run("26.0.0.3", 0), 0);
	CHECK_EQ(run("26.0.0.3", 1), 0);
	CHECK_EQ(run("26.0.0.4", 0), 1);
	/* and the eight others, through the same walk */
	CHECK_EQ(run("1.2.3.4", 0), 0);
	CHECK_EQ(run("2001:db8:5::77", 0), 0);
	CHECK_EQ(run("25.1.1.31", 0), 0);
	CHECK_EQ(run("25.1.1.32", 0), 1);
	munmap(v, l);
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
	RUN(raw_edit_of_pen_lens_is_followed_at_the_next_packet);
	RUN(a_full_list_finds_every_length);
	RUN(more_lengths_than_a_list_holds_are_all_walked);
	lt_admit__destroy(skel);
	return lt_t_done();
}
