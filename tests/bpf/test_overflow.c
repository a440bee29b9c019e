// SPDX-License-Identifier: MIT
/*
 * test_overflow.c - issue #7 item 4: lt_overflow keeps one bucket pair per
 * policy. A bucket word is in its policy's units, so a pair shared by a fast
 * and a slow policy read the fast one's tat with the slow one's scale: one
 * packet of a fast policy's overflow source put the default policy's
 * overflow bucket minutes in the future. BPF_PROG_RUN on a skeleton with a
 * 16-slot lt_src, so that sources overflow. Needs root.
 */
#include <errno.h>
#include <unistd.h>
#include <sys/mman.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "lt_test.h"
#include "pktbuild.h"
#include "apply.h"
#include "config.h"
#include "loader.h"
#include "log.h"
#include "maps.h"

#define SEC 1000000000ULL
#define T0 (1000 * SEC)

static struct lt_admit *skel;
static struct lt_maps M;

/* default: slow (1000 packets, 1/h); 198.51.100.0/24: fast (2e9/s). */
static const char config[] =
	"{"
	"\"protected_ports\": [8080],"
	"\"default_policy\": {\"packets\": {\"capacity\": 1000, \"rate\": \"1/h\"}},"
	"\"policies\": [{\"prefix\": \"198.51.100.0/24\","
	"  \"packets\": {\"capacity\": 1000000000000, \"rate\": \"2000000000/s\"}}],"
	"\"event_sample_every\": 0"
	"}";
static const char config_no_fast[] = "{"
				     "\"protected_ports\": [8080],"
				     "\"default_policy\": {\"packets\": {\"capacity\": 1000, "
				     "\"rate\": \"1/h\"}},"
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

/* One ACK from src at now: 1 pass, 0 drop; *overflowed if it had no lt_src slot. */
static int send_from(const char *src, __u64 now, int *overflowed)
{
	static unsigned char raw[260] __attribute__((aligned(8)));
	struct pkt_spec s = { .src = src, .ack = 1 };
	struct lt_stat_val b[LT_STAT__MAX], a[LT_STAT__MAX];
	int len = pkt_build(&s, raw + 2, sizeof(raw) - 2);
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = raw + 2, .data_size_in = (__u32)len,
		    .repeat = 1);

	skel->bss->lt_fake_now_ns = now;
	lt_stats_read(M.fd[LT_M_STATS], b);
	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.lt_xdp), &o))
		return -1;
	lt_stats_read(M.fd[LT_M_STATS], a);
	if (overflowed)
		*overflowed =
			a[LT_STAT_AUX_TABLE_FULL].packets != b[LT_STAT_AUX_TABLE_FULL].packets;
	return o.retval == XDP_PASS;
}

/* Sends from fresh addresses of prefix fmt until one lands in lt_overflow. */
static int send_overflowed(const char *fmt, int *next, __u64 now)
{
	char src[32];
	int i, of = 0, v = -1;

	for (i = 0; i < 200 && !of; i++) {
		snprintf(src, sizeof(src), fmt, (*next)++);
		v = send_from(src, now, &of);
	}
	return of ? v : -1;
}

static long overflow_slots_used(void)
{
	struct lt_src_slot *s;
	long used = 0;
	size_t len, i;

	s = lt_map_mmap(M.fd[LT_M_OVERFLOW], &len);
	if (!s)
		return -1;
	for (i = 0; i < LT_OVERFLOW_SLOTS; i++)
		used += s[i].tag != 0;
	munmap(s, len);
	return used;
}

static void fast_policy_overflow_does_not_blackhole_default(void)
{
	int next_slow = 1, next_fast = 1, i;

	CHECK_EQ(apply_json(config), 0);
	/* fill the 16 slots with default-policy sources */
	for (i = 0; i < 64; i++)
		send_overflowed("10.1.0.%d", &next_slow, T0);
	/* a default-policy overflow source is admitted (its pair has room) */
	CHECK_EQ(send_overflowed("10.2.0.%d", &next_slow, T0), 1);
	/* one packet of a fast-policy source that overflows too */
	CHECK_EQ(send_overflowed("198.51.100.%d", &next_fast, T0 + 1), 1);
	/* default-policy overflow sources still pass, at once and later */
	CHECK_EQ(send_overflowed("10.3.0.%d", &next_slow, T0 + 2), 1);
	CHECK_EQ(send_overflowed("10.4.0.%d", &next_slow, T0 + SEC), 1);
	/* two policies, two pairs */
	CHECK_EQ(overflow_slots_used(), 2);
}

/* The default pair still meters: its burst of 1000 is shared by its sources. */
static void overflow_pair_still_meters(void)
{
	int next = 1, passed = 0, i, v;

	CHECK_EQ(apply_json(config), 0);
	for (i = 0; i < 1100; i++) {
		v = send_overflowed("fd00:0:0:%x::1", &next, T0 + 5 * SEC);
		if (v < 0)
			break;
		passed += v;
	}
	CHECK_EQ(i, 1100);
	CHECK(passed > 0);
	CHECK(passed <= 1000);
}

/* A deleted policy's pair is freed by the sweep once idle; the default's stays. */
static void sweep_frees_pair_of_deleted_policy(void)
{
	struct lt_sweep_stats st;
	int next = 200;

	CHECK_EQ(send_overflowed("198.51.100.%d", &next, T0 + 10 * SEC), 1);
	CHECK_EQ(overflow_slots_used(), 2);
	CHECK_EQ(apply_json(config_no_fast), 0);
	CHECK_EQ(lt_sweep(&M, T0 + 100 * SEC, 60 * SEC, &st), 0);
	CHECK_EQ(overflow_slots_used(), 1); /* the default pair holds level */
}

int main(void)
{
	struct lt_load_opts lo = { .fake_clock = 1, .max_sources = 16 };
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
	RUN(fast_policy_overflow_does_not_blackhole_default);
	RUN(overflow_pair_still_meters);
	RUN(sweep_frees_pair_of_deleted_policy);
	lt_admit__destroy(skel);
	return lt_t_done();
}
