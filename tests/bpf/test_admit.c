// SPDX-License-Identifier: MIT
/*
 * test_admit.c - BPF_PROG_RUN on the real skeleton (bpf/admit.bpf.c), with
 * crafted frames and injected time. Each fixture row gives the frames, the
 * verdict of the last one and the exact delta of EVERY counter: a counter not
 * listed must not move. Needs root (CAP_BPF).
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/mman.h>
/* The fixture rows rely on zero-initialised fields by design. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

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

static struct lt_admit *skel;
static struct lt_maps M;

/* The fixture config: every case starts from exactly this. */
static const char base_config[] =
	"{"
	"\"protected_ports\": [8080, 5353],"
	"\"default_policy\": {"
	"  \"connections\": {\"capacity\": 3, \"rate\": \"1/s\"},"
	"  \"packets\": {\"capacity\": 10, \"rate\": \"10/s\"},"
	"  \"aggregate_v4\": 32, \"aggregate_v6\": 64},"
	"\"policies\": [{\"prefix\": \"198.51.100.0/24\","
	"  \"connections\": {\"capacity\": 1, \"rate\": \"1/s\"}, \"aggregate_v4\": 24}],"
	"\"allowlist\": [\"192.0.2.1/32\", \"2001:db8:aaaa::/48\"],"
	"\"event_sample_every\": 0"
	"}";

static int apply_json(const char *json)
{
	struct lt_agent_config c;
	char err[256];
	int ret;

	ret = lt_config_parse(json, "fixture", &c, err, sizeof(err));
	if (!ret)
		ret = lt_config_apply(&M, &c, err, sizeof(err));
	if (ret)
		printf("# config: %s\n", err);
	lt_config_free(&c);
	return ret;
}

static void clear_slots(int fd)
{
	size_t len;
	void *p = lt_map_mmap(fd, &len);

	if (p) {
		memset(p, 0, len);
		munmap(p, len);
	}
}

static void reset(void)
{
	clear_slots(M.fd[LT_M_SRC]);
	clear_slots(M.fd[LT_M_OVERFLOW]);
	lt_penalty_expire(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], ~0ULL, NULL); /* every ban */
	apply_json(base_config);
}

/* Runs one frame through prog at now; returns 1 for pass, 0 for drop. */
static int run_frame(int prog_fd, int is_tc, const struct pkt_spec *s, __u64 now)
{
	/* +2 (NET_IP_ALIGN): the IP header after 14 bytes of Ethernet is aligned */
	static unsigned char raw[260] __attribute__((aligned(8)));
	unsigned char *buf = raw + 2;
	int len = pkt_build(s, buf, sizeof(raw) - 2);
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = buf, .data_size_in = (__u32)len, .repeat = 1);

	skel->bss->lt_fake_now_ns = now;
	if (bpf_prog_test_run_opts(prog_fd, &o)) {
		printf("# test_run: %s\n", strerror(errno));
		return -1;
	}
	if (is_tc)
		return o.retval == TC_ACT_OK ? 1 : o.retval == TC_ACT_SHOT ? 0 : -1;
	return o.retval == XDP_PASS ? 1 : o.retval == XDP_DROP ? 0 : -1;
}

static void ban(const char *prefix, __u64 until)
{
	struct lt_penalty p = { .until_ns = until, .strikes = 1 };
	struct lt_lpm_key k;
	char err[128];

	CHECK_EQ(lt_prefix_parse(prefix, &k, err, sizeof(err)), 0);
	CHECK_EQ(lt_penalty_put(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], &k, &p), 0);
}

static void setup_ban_v4(void)
{
	ban("10.9.0.0/16", T0 + 60 * SEC);
}
static void setup_ban_v6(void)
{
	ban("2001:db8:bad::/48", T0 + 60 * SEC);
}
static void setup_ban_allowlisted(void)
{
	ban("192.0.2.1/32", T0 + 60 * SEC);
}
static void setup_ban_expired(void)
{
	ban("10.9.0.0/16", T0 - 1);
}
static void setup_dry_run(void)
{
	lt_cfg_flags(M.fd[LT_M_CONFIG], LT_CFG_DRY_RUN, 0);
}
static void setup_dry_run_ban(void)
{
	setup_dry_run();
	setup_ban_v4();
}
static void setup_no_config(void)
{
	struct lt_config_val c = {};
	__u32 z = 0;

	bpf_map_update_elem(M.fd[LT_M_CONFIG], &z, &c, BPF_ANY);
}

struct step {
	struct pkt_spec pkt;
	int count; /* frames (default 1) */
	__u64 at; /* ns after T0 */
};

struct want {
	int stat;
	int n;
};

struct tcase {
	const char *name;
	void (*setup)(void);
	struct step steps[3];
	int last_pass; /* verdict of the very last frame */
	struct want want[6]; /* every counter that moves; {0,0} ends */
	int tc; /* through lt_tc (sched_cls) instead of lt_xdp */
};

#define W(s, k)                \
	{                      \
		LT_STAT_##s, k \
	}
#define V4SYN(addr)         \
	{                   \
		.src = addr \
	}
#define V6SYN(addr)         \
	{                   \
		.src = addr \
	}

static const struct tcase cases[] = {
	{ "v4 SYN admitted", NULL, { { V4SYN("10.0.0.1") } }, 1, { W(PASS_ADMIT, 1) } },
	{ "v4 SYN over the connection limit (burst 3)",
	  NULL,
	  { { V4SYN("10.0.0.1"), 4 } },
	  0,
	  { W(PASS_ADMIT, 3), W(DROP_CONN_RATE, 1) } },
	{ "v4 ACKs are not new connections",
	  NULL,
	  { { { .ack = 1 }, 5 } },
	  1,
	  { W(PASS_ADMIT, 5) } },
	{ "v4 packets over the packet limit (burst 10)",
	  NULL,
	  { { { .ack = 1 }, 11 } },
	  0,
	  { W(PASS_ADMIT, 10), W(DROP_PKT_RATE, 1) } },
	{ "rejects not counted: one leak period later one more fits",
	  NULL,
	  { { V4SYN("10.0.0.2"), 5 },
	    { V4SYN("10.0.0.2"), 1, SEC },
	    { V4SYN("10.0.0.2"), 1, SEC } },
	  0,
	  { W(PASS_ADMIT, 4), W(DROP_CONN_RATE, 3) } },
	{ "bucket leaks: 3 seconds refill 3 connections",
	  NULL,
	  { { V4SYN("10.0.0.3"), 3 }, { V4SYN("10.0.0.3"), 3, 3 * SEC } },
	  1,
	  { W(PASS_ADMIT, 6) } },
	{ "unprotected TCP port",
	  NULL,
	  { { { .dport = 22 }, 20 } },
	  1,
	  { W(PASS_UNPROTECTED, 20) } },
	{ "UDP to a protected port is metered",
	  NULL,
	  { { { .proto = IPPROTO_UDP, .dport = 5353 }, 11 } },
	  0,
	  { W(PASS_ADMIT, 10), W(DROP_PKT_RATE, 1) } },
	{ "UDP to an unprotected port",
	  NULL,
	  { { { .proto = IPPROTO_UDP, .dport = 53 } } },
	  1,
	  { W(PASS_UNPROTECTED, 1) } },
	{ "ICMP is not metered",
	  NULL,
	  { { { .proto = IPPROTO_ICMP }, 3 } },
	  1,
	  { W(PASS_UNPROTECTED, 3) } },
	{ "non-IP (ARP)", NULL, { { { .ethertype = ETH_P_ARP } } }, 1, { W(PASS_NON_IP, 1) } },
	{ "Ethernet header only", NULL, { { { .truncate = 14 } } }, 1, { W(PASS_MALFORMED, 1) } },
	{ "truncated IPv4 header",
	  NULL,
	  { { { .truncate = 14 + 12 } } },
	  1,
	  { W(PASS_MALFORMED, 1) } },
	{ "truncated TCP header: metered as a protected port",
	  NULL,
	  { { { .truncate = 14 + 20 + 10 } } },
	  1,
	  { W(PASS_ADMIT, 1), W(AUX_NOPORT_TRUNCATED, 1) } },
	{ "truncated UDP header: metered as a protected port",
	  NULL,
	  { { { .proto = IPPROTO_UDP, .dport = 5353, .truncate = 14 + 20 + 4 } } },
	  1,
	  { W(PASS_ADMIT, 1), W(AUX_NOPORT_TRUNCATED, 1) } },
	{ "IPv4 IHL below 5", NULL, { { { .bad_ihl = 1 } } }, 1, { W(PASS_MALFORMED, 1) } },
	{ "IPv4 non-first fragment: metered as a protected port",
	  NULL,
	  { { { .frag = 1 } } },
	  1,
	  { W(PASS_ADMIT, 1), W(AUX_NOPORT_FRAGMENT, 1) } },
	{ "one VLAN tag",
	  NULL,
	  { { { .vlans = 1 }, 4 } },
	  0,
	  { W(PASS_ADMIT, 3), W(DROP_CONN_RATE, 1) } },
	{ "two VLAN tags (QinQ)",
	  NULL,
	  { { { .vlans = 2 }, 4 } },
	  0,
	  { W(PASS_ADMIT, 3), W(DROP_CONN_RATE, 1) } },
	{ "truncated VLAN tag",
	  NULL,
	  { { { .vlans = 2, .truncate = 14 + 2 } } },
	  1,
	  { W(PASS_MALFORMED, 1) } },
	{ "v6 SYN over the connection limit",
	  NULL,
	  { { V6SYN("2001:db8:1::1"), 4 } },
	  0,
	  { W(PASS_ADMIT, 3), W(DROP_CONN_RATE, 1) } },
	{ "truncated IPv6 header",
	  NULL,
	  { { { .src = "2001:db8::1", .truncate = 14 + 30 } } },
	  1,
	  { W(PASS_MALFORMED, 1) } },
	{ "v6 behind hop-by-hop + dest-opts headers is still metered",
	  NULL,
	  { { { .src = "2001:db8:1::1", .v6_opts = 2 }, 4 } },
	  0,
	  { W(PASS_ADMIT, 3), W(DROP_CONN_RATE, 1) } },
	{ "v6 first fragment is metered",
	  NULL,
	  { { { .src = "2001:db8:1::1", .v6_frag = 1 } } },
	  1,
	  { W(PASS_ADMIT, 1) } },
	{ "v6 non-first fragment: metered as a protected port",
	  NULL,
	  { { { .src = "2001:db8:1::1", .v6_frag = 2 } } },
	  1,
	  { W(PASS_ADMIT, 1), W(AUX_NOPORT_FRAGMENT, 1) } },
	{ "v6 five extension headers: walked, SYN metered",
	  NULL,
	  { { { .src = "2001:db8:1::1", .v6_opts = 5 }, 4 } },
	  0,
	  { W(PASS_ADMIT, 3), W(DROP_CONN_RATE, 1) } },
	{ "v6 truncated extension header: metered as a protected port",
	  NULL,
	  { { { .src = "2001:db8:1::1", .v6_opts = 1, .truncate = 14 + 40 + 4 } } },
	  1,
	  { W(PASS_ADMIT, 1), W(AUX_NOPORT_TRUNCATED, 1) } },
	{ "v6 /64 aggregation: addresses in one /64 share a bucket",
	  NULL,
	  { { V6SYN("2001:db8:1::1"), 2 }, { V6SYN("2001:db8:1::ffff"), 2 } },
	  0,
	  { W(PASS_ADMIT, 3), W(DROP_CONN_RATE, 1) } },
	{ "v6 different /64s do not share",
	  NULL,
	  { { V6SYN("2001:db8:1::1"), 3 }, { V6SYN("2001:db8:2::1"), 3 } },
	  1,
	  { W(PASS_ADMIT, 6) } },
	{ "policy override by prefix: 198.51.100.0/24 allows 1 connection",
	  NULL,
	  { { V4SYN("198.51.100.7"), 2 } },
	  0,
	  { W(PASS_ADMIT, 1), W(DROP_CONN_RATE, 1) } },
	{ "prefix aggregation /24: .1 and .2 share one bucket",
	  NULL,
	  { { V4SYN("198.51.100.1") }, { V4SYN("198.51.100.2") } },
	  0,
	  { W(PASS_ADMIT, 1), W(DROP_CONN_RATE, 1) } },
	{ "v4 /32 aggregation: neighbours do not share",
	  NULL,
	  { { V4SYN("10.0.0.1"), 3 }, { V4SYN("10.0.0.2"), 3 } },
	  1,
	  { W(PASS_ADMIT, 6) } },
	{ "allowlisted v4 passes unmetered",
	  NULL,
	  { { V4SYN("192.0.2.1"), 50 } },
	  1,
	  { W(PASS_ALLOWLIST, 50) } },
	{ "allowlisted v6 prefix",
	  NULL,
	  { { V6SYN("2001:db8:aaaa:1::9"), 50 } },
	  1,
	  { W(PASS_ALLOWLIST, 50) } },
	{ "penalised v4 prefix drops",
	  setup_ban_v4,
	  { { V4SYN("10.9.3.4"), 2 } },
	  0,
	  { W(DROP_PENALTY, 2) } },
	{ "penalised v6 prefix drops",
	  setup_ban_v6,
	  { { V6SYN("2001:db8:bad:1::1") } },
	  0,
	  { W(DROP_PENALTY, 1) } },
	{ "penalty expires by itself",
	  setup_ban_expired,
	  { { V4SYN("10.9.3.4") } },
	  1,
	  { W(PASS_ADMIT, 1), W(AUX_PENALTY_EXPIRED, 1) } },
	{ "penalty ends at until_ns exactly",
	  setup_ban_v4,
	  { { V4SYN("10.9.3.4"), 1, 60 * SEC - 1 }, { V4SYN("10.9.3.4"), 1, 60 * SEC } },
	  1,
	  { W(DROP_PENALTY, 1), W(PASS_ADMIT, 1), W(AUX_PENALTY_EXPIRED, 1) } },
	{ "a ban beats the allowlist",
	  setup_ban_allowlisted,
	  { { V4SYN("192.0.2.1") } },
	  0,
	  { W(DROP_PENALTY, 1) } },
	{ "penalty only on protected ports",
	  setup_ban_v4,
	  { { { .src = "10.9.3.4", .dport = 22 } } },
	  1,
	  { W(PASS_UNPROTECTED, 1) } },
	{ "dry-run counts would-be drops and passes them",
	  setup_dry_run,
	  { { V4SYN("10.0.0.1"), 5 } },
	  1,
	  { W(PASS_ADMIT, 3), W(DRYRUN_CONN_RATE, 2) } },
	{ "dry-run penalty",
	  setup_dry_run_ban,
	  { { V4SYN("10.9.0.1") } },
	  1,
	  { W(DRYRUN_PENALTY, 1) } },
	{ "dry-run packet limit",
	  setup_dry_run,
	  { { { .ack = 1 }, 12 } },
	  1,
	  { W(PASS_ADMIT, 10), W(DRYRUN_PKT_RATE, 2) } },
	{ "no config yet: pass and count",
	  setup_no_config,
	  { { V4SYN("10.0.0.1"), 2 } },
	  1,
	  { W(PASS_NO_CONFIG, 2) } },
	{ "TC: SYN over the limit",
	  NULL,
	  { { V4SYN("10.0.0.1"), 4 } },
	  0,
	  { W(PASS_ADMIT, 3), W(DROP_CONN_RATE, 1) },
	  1 },
	{ "TC: v6 over VLAN, allowlisted",
	  NULL,
	  { { { .src = "2001:db8:aaaa::1", .vlans = 1 }, 2 } },
	  1,
	  { W(PASS_ALLOWLIST, 2) },
	  1 },
	{ "TC: truncated TCP: metered as a protected port",
	  NULL,
	  { { { .truncate = 14 + 20 + 3 } } },
	  1,
	  { W(PASS_ADMIT, 1), W(AUX_NOPORT_TRUNCATED, 1) },
	  1 },
};

static int run_case(const struct tcase *tc)
{
	struct lt_stat_val before[LT_STAT__MAX], after[LT_STAT__MAX];
	int prog = bpf_program__fd(tc->tc ? skel->progs.lt_tc : skel->progs.lt_xdp);
	__u64 want[LT_STAT__MAX] = { 0 };
	int i, j, last = -1, ok = 1;

	reset();
	if (tc->setup)
		tc->setup();
	lt_stats_read(M.fd[LT_M_STATS], before);
	for (i = 0; i < 3; i++) {
		const struct step *s = &tc->steps[i];
		int n = s->count ? s->count : 1;

		if (i && !s->count && !s->pkt.src && !s->at)
			break; /* unused step: later steps always name a source */
		for (j = 0; j < n; j++)
			last = run_frame(prog, tc->tc, &s->pkt, T0 + s->at);
	}
	lt_stats_read(M.fd[LT_M_STATS], after);
	if (last != tc->last_pass) {
		printf("#   verdict of the last frame: got %s, want %s\n",
		       last == 1 ? "pass" :
		       last == 0 ? "drop" :
				   "error",
		       tc->last_pass ? "pass" : "drop");
		ok = 0;
	}
	for (i = 0; i < 6 && tc->want[i].n; i++)
		want[tc->want[i].stat] = (__u64)tc->want[i].n;
	for (i = 0; i < LT_STAT__MAX; i++) {
		__u64 d = after[i].packets - before[i].packets;

		if (i == LT_STAT_AUX_EVENT_SENT || i == LT_STAT_AUX_EVENT_LOST)
			continue;
		if (d != want[i]) {
			printf("#   counter %s moved by %llu, want %llu\n",
			       lt_stat_name((unsigned)i), (unsigned long long)d,
			       (unsigned long long)want[i]);
			ok = 0;
		}
	}
	return ok;
}

static void fixture_table(void)
{
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		lt_t_begin(cases[i].name);
		if (!run_case(&cases[i]))
			lt_t_cur_failed = 1;
		lt_t_end();
	}
}

/* A denied SYN gives its packet token back (all-or-nothing over two buckets). */
static void denied_syn_refunds_packet_token(void)
{
	struct pkt_spec syn = { .src = "10.0.0.5" }, ack = { .src = "10.0.0.5", .ack = 1 };
	int prog = bpf_program__fd(skel->progs.lt_xdp), i, passed = 0;

	reset();
	for (i = 0; i < 3; i++)
		CHECK_EQ(run_frame(prog, 0, &syn, T0), 1);
	for (i = 0; i < 5; i++)
		CHECK_EQ(run_frame(prog, 0, &syn, T0), 0); /* 5 denied SYNs */
	/* 10 - 3 packet tokens left; the 5 denied SYNs must not have used any */
	for (i = 0; i < 10; i++)
		passed += run_frame(prog, 0, &ack, T0);
	CHECK_EQ(passed, 7);
}

static void bytes_are_counted(void)
{
	struct lt_stat_val before[LT_STAT__MAX], after[LT_STAT__MAX];
	struct pkt_spec s = { .payload = 100 };
	int prog = bpf_program__fd(skel->progs.lt_xdp);

	reset();
	lt_stats_read(M.fd[LT_M_STATS], before);
	CHECK_EQ(run_frame(prog, 0, &s, T0), 1);
	lt_stats_read(M.fd[LT_M_STATS], after);
	CHECK_EQ(after[LT_STAT_PASS_ADMIT].bytes - before[LT_STAT_PASS_ADMIT].bytes,
		 14 + 20 + 20 + 100);
}

static int ev_seen;
static struct lt_event ev_last;
static int on_ev(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len >= sizeof(ev_last))
		memcpy(&ev_last, data, sizeof(ev_last));
	ev_seen++;
	return 0;
}

static void events_are_sampled(void)
{
	struct pkt_spec s = { .src = "10.0.0.9" };
	int prog = bpf_program__fd(skel->progs.lt_xdp), i;
	struct ring_buffer *rb;
	char a[64];

	reset();
	rb = ring_buffer__new(M.fd[LT_M_EVENTS], on_ev, NULL, NULL);
	CHECK(rb != NULL);
	if (!rb)
		return;
	ring_buffer__consume(rb);
	ev_seen = 0;
	apply_json("{\"protected_ports\":[8080],\"event_sample_every\":1,"
		   "\"default_policy\":{\"connections\":{\"capacity\":1,\"rate\":\"1/s\"}}}");
	for (i = 0; i < 2; i++)
		run_frame(prog, 0, &s, T0 + 5);
	ring_buffer__consume(rb);
	CHECK_EQ(ev_seen, 2);
	CHECK_EQ(ev_last.stat, LT_STAT_DROP_CONN_RATE);
	CHECK_EQ(ev_last.dport, 8080);
	CHECK_EQ(ev_last.syn, 1);
	CHECK_EQ(ev_last.ts_ns, T0 + 5);
	/* BPF_PROG_RUN's XDP frames arrive on the netns's loopback: ifindex 1 */
	CHECK_EQ(ev_last.ifindex, 1);
	lt_addr_format(ev_last.saddr, a, sizeof(a));
	CHECK(!strcmp(a, "10.0.0.9"));
	/* sampling off: nothing */
	apply_json(base_config);
	ev_seen = 0;
	run_frame(prog, 0, &s, T0 + 6);
	ring_buffer__consume(rb);
	CHECK_EQ(ev_seen, 0);
	ring_buffer__free(rb);
}

/*
 * A separate tiny table (16 slots): 64 sources cannot all have a bucket. Every
 * source either owns a slot or is metered in lt_overflow and counted; none is
 * silently dropped from metering, and no slot changes owner.
 */
static void table_full_uses_overflow_and_counts(void)
{
	struct lt_load_opts lo = { .max_sources = 16, .fake_clock = 1 };
	struct lt_stat_val before[LT_STAT__MAX], after[LT_STAT__MAX];
	struct lt_admit *small, *saved = skel;
	struct lt_maps saved_m = M;
	struct lt_src_slot *slots;
	char err[256], src[32];
	long used, slots_n = 0;
	int i, prog, owned = 0;
	size_t len;

	small = lt_skel_load(&lo, err, sizeof(err));
	CHECK(small != NULL);
	if (!small)
		return;
	skel = small;
	lt_maps_from_skel(small, &M);
	reset();
	prog = bpf_program__fd(small->progs.lt_xdp);
	lt_stats_read(M.fd[LT_M_STATS], before);
	for (i = 0; i < 64; i++) {
		struct pkt_spec s = { .src = src, .ack = 1 };

		snprintf(src, sizeof(src), "10.1.%d.%d", i / 200, i % 200 + 1);
		run_frame(prog, 0, &s, T0);
	}
	lt_stats_read(M.fd[LT_M_STATS], after);
	used = lt_src_count(M.fd[LT_M_SRC], &slots_n);
	CHECK_EQ(slots_n, 16);
	CHECK(used >= 4 && used <= 16);
	/* each slot's key hashes to its tag, and one source owns one slot */
	slots = lt_map_mmap(M.fd[LT_M_SRC], &len);
	CHECK(slots != NULL);
	for (i = 0; slots && i < 16; i++) {
		if (!slots[i].tag)
			continue;
		owned++;
		CHECK_EQ(slots[i].tag, lt_src_hash(&slots[i].key));
		CHECK_EQ(slots[i].pkt_tat != 0, 1);
	}
	if (slots)
		munmap(slots, len);
	CHECK_EQ(owned, used);
	CHECK_EQ(after[LT_STAT_AUX_TABLE_FULL].packets - before[LT_STAT_AUX_TABLE_FULL].packets,
		 64 - used);
	/*
	 * Sources with a slot pass (1 packet each); the others share the
	 * overflow bucket, still metered: its burst of 10 passes, the rest drop.
	 */
	CHECK(64 - used >= 10);
	CHECK_EQ(after[LT_STAT_PASS_ADMIT].packets - before[LT_STAT_PASS_ADMIT].packets, used + 10);
	CHECK_EQ(after[LT_STAT_DROP_PKT_RATE].packets - before[LT_STAT_DROP_PKT_RATE].packets,
		 64 - used - 10);
	lt_admit__destroy(small);
	skel = saved;
	M = saved_m;
}

/* The sweep frees idle, empty buckets and expired penalties; keeps the rest. */
static void sweep_frees_idle_empty_buckets(void)
{
	struct pkt_spec a = { .src = "10.0.0.1" }, b = { .src = "10.0.0.2" };
	int prog = bpf_program__fd(skel->progs.lt_xdp);
	struct lt_sweep_stats st;

	reset();
	setup_ban_expired();
	run_frame(prog, 0, &a, T0); /* level 1 of 3, drains in 1 s */
	run_frame(prog, 0, &b, T0 + 100 * SEC);
	CHECK_EQ(lt_src_count(M.fd[LT_M_SRC], NULL), 2);
	/* at T0+100s: a idle 100 s and empty; b just used */
	lt_sweep(&M, T0 + 100 * SEC, 60 * SEC, &st);
	CHECK_EQ(st.sources_idle, 1);
	CHECK_EQ(st.sources_left, 1);
	CHECK_EQ(st.penalties_expired, 1);
	CHECK_EQ(lt_src_count(M.fd[LT_M_SRC], NULL), 1);
	CHECK_EQ(lt_penalty_count(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG]), 0);
	/* a bucket that still holds level is kept however idle it is */
	reset();
	{
		struct pkt_spec c = { .src = "10.0.0.3" };

		CHECK_EQ(run_frame(prog, 0, &c, T0), 1);
	}
	lt_sweep(&M, T0 + 500 * 1000000ULL, 1, &st); /* 0.5 s: level not drained */
	CHECK_EQ(st.sources_idle, 0);
	CHECK_EQ(lt_src_count(M.fd[LT_M_SRC], NULL), 1);
}

/*
 * The per-CPU penalty memo: within one tick a banned source is dropped
 * without the trie; an agent unban (generation bump) applies at once.
 */
static void penalty_memo_follows_unban(void)
{
	struct pkt_spec s = { .src = "10.9.0.7" };
	int prog = bpf_program__fd(skel->progs.lt_xdp);
	struct lt_lpm_key k;
	char err[64];

	reset();
	setup_ban_v4();
	CHECK_EQ(run_frame(prog, 0, &s, T0), 0);
	CHECK_EQ(run_frame(prog, 0, &s, T0), 0); /* memo hit */
	lt_prefix_parse("10.9.0.0/16", &k, err, sizeof(err));
	CHECK_EQ(lt_penalty_unban(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], &k), 0);
	CHECK_EQ(run_frame(prog, 0, &s, T0), 1); /* same tick: not stale */
	CHECK_EQ(lt_penalty_ban(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], &k, ~0ULL, LT_PENALTY_MANUAL,
				NULL),
		 0);
	CHECK_EQ(run_frame(prog, 0, &s, T0), 0);
	/* a raw map edit (bpftool: the slot zeroed, no generation bump) applies by the next tick */
	clear_slots(M.fd[LT_M_PENALTY]);
	CHECK_EQ(run_frame(prog, 0, &s, T0 + 4000000), 1);
}

/*
 * Kernel and user space on one bucket word at once: BPF_PROG_RUN on one
 * thread, CAS from user space (through the mmapped lt_src) on another.
 * Every packet lands in exactly one outcome; a CAS loop that runs out fails
 * closed and is counted (drop_contended); and no update is lost: the final
 * word is exactly what the admitted total says.
 */
struct hammer {
	__u64 *tat;
	const struct lt_rate *r;
	volatile int *stop;
	long admitted;
};

static void *hammer_fn(void *arg)
{
	struct hammer *h = arg;
	__u64 seen;

	while (!*h->stop) {
		int v = lt_bucket_consume(h->tat, h->r, T0, 1, &seen);

		h->admitted += v == LT_ADMIT;
	}
	return NULL;
}

struct runner {
	int prog;
	__u32 repeat;
	int err;
};

static void *runner_fn(void *arg)
{
	static unsigned char raw[260] __attribute__((aligned(8)));
	struct pkt_spec s = { .src = "10.7.7.7", .ack = 1 };
	struct runner *r = arg;
	int len = pkt_build(&s, raw + 2, sizeof(raw) - 2);
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = raw + 2, .data_size_in = (__u32)len,
		    .repeat = r->repeat);

	r->err = bpf_prog_test_run_opts(r->prog, &o);
	return NULL;
}

static void kernel_and_user_cas_exact(void)
{
	struct lt_stat_val before[LT_STAT__MAX], after[LT_STAT__MAX];
	struct pkt_spec s = { .src = "10.7.7.7", .ack = 1 };
	int prog = bpf_program__fd(skel->progs.lt_xdp);
	struct runner rn = { prog, 2000000, 0 };
	struct lt_src_slot *slots, *mine = NULL;
	volatile int stop = 0;
	struct lt_agent_config c;
	struct hammer h;
	pthread_t th, tr;
	__u64 bpf_admitted, contended, s0, frac;
	size_t len;
	char err[256];
	long i, n;

	reset();
	/* a bucket that never fills: every decision is a CAS race, none a deny */
	CHECK_EQ(lt_config_parse("{\"protected_ports\":[8080],\"event_sample_every\":0,"
				 "\"default_policy\":{\"packets\":{\"capacity\":1000000000000,"
				 "\"rate\":\"1/s\"}}}",
				 "t", &c, err, sizeof(err)),
		 0);
	CHECK_EQ(lt_config_apply(&M, &c, err, sizeof(err)), 0);
	CHECK_EQ(run_frame(prog, 0, &s, T0), 1); /* creates the source's slot */
	slots = lt_map_mmap(M.fd[LT_M_SRC], &len);
	CHECK(slots != NULL);
	if (!slots) {
		lt_config_free(&c);
		return;
	}
	n = lt_map_entries(M.fd[LT_M_SRC]);
	for (i = 0; i < n; i++)
		if (slots[i].tag)
			mine = &slots[i];
	CHECK(mine != NULL);
	if (!mine)
		goto out;
	h = (struct hammer){ &mine->pkt_tat, &c.xdp.dflt.pkt, &stop, 0 };
	lt_stats_read(M.fd[LT_M_STATS], before);
	pthread_create(&th, NULL, hammer_fn, &h);
	pthread_create(&tr, NULL, runner_fn, &rn);
	pthread_join(tr, NULL);
	stop = 1;
	pthread_join(th, NULL);
	lt_stats_read(M.fd[LT_M_STATS], after);
	CHECK_EQ(rn.err, 0);
	bpf_admitted = after[LT_STAT_PASS_ADMIT].packets - before[LT_STAT_PASS_ADMIT].packets;
	contended = after[LT_STAT_DROP_CONTENDED].packets - before[LT_STAT_DROP_CONTENDED].packets;
	printf("# kernel admitted %llu, contended (failed closed) %llu, user admitted %ld\n",
	       (unsigned long long)bpf_admitted, (unsigned long long)contended, h.admitted);
	CHECK_EQ(bpf_admitted + contended, rn.repeat);
	CHECK(h.admitted > 0);
	/* one packet at T0 before the race, then every admission adds a token */
	s0 = lt_scaled(&c.xdp.dflt.pkt, T0, &frac);
	CHECK_EQ(mine->pkt_tat,
		 s0 + (frac != 0) +
			 ((1 + bpf_admitted + (__u64)h.admitted) << c.xdp.dflt.pkt.unit_shift));
out:
	munmap(slots, len);
	lt_config_free(&c);
}

/* lib/maps.c names the maps for user space; they must be the skeleton's. */
static void map_names_match_skeleton(void)
{
	struct bpf_map *map;
	int i, n = 0;

	bpf_object__for_each_map(map, skel->obj)
	{
		int found = 0;

		if (bpf_map__is_internal(map))
			continue;
		n++;
		for (i = 0; i < LT_M__MAX; i++)
			found |= !strcmp(lt_map_names[i], bpf_map__name(map));
		if (!found)
			printf("#   map %s missing from lt_map_names\n", bpf_map__name(map));
		CHECK(found);
		CHECK(strlen(bpf_map__name(map)) <= 15);
	}
	CHECK_EQ(n, LT_M__MAX);
}

int main(void)
{
	struct lt_load_opts lo = { .fake_clock = 1 };
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
	fixture_table();
	RUN(denied_syn_refunds_packet_token);
	RUN(bytes_are_counted);
	RUN(events_are_sampled);
	RUN(table_full_uses_overflow_and_counts);
	RUN(sweep_frees_idle_empty_buckets);
	RUN(penalty_memo_follows_unban);
	RUN(kernel_and_user_cas_exact);
	RUN(map_names_match_skeleton);
	lt_admit__destroy(skel);
	return lt_t_done();
}
