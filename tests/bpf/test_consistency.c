// SPDX-License-Identifier: MIT
/*
 * test_consistency.c - races between the agent's writers and the BPF
 * readers (BPF_PROG_RUN on the real skeleton): the sweep against admissions,
 * clock calibration and config writes against packets, config writers
 * against each other. Needs root (CAP_BPF).
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>
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

static struct lt_admit *fake; /* lt_fake_clock: time is set per frame */
static struct lt_maps FM;

static int apply_json(const struct lt_maps *m, const char *json)
{
	struct lt_agent_config c;
	char err[256];
	int ret;

	ret = lt_config_parse(json, "fixture", &c, err, sizeof(err));
	if (!ret)
		ret = lt_config_apply(m, &c, err, sizeof(err));
	if (ret)
		printf("# config: %s\n", err);
	lt_config_free(&c);
	return ret;
}

/* One frame through lt_xdp; 1 pass, 0 drop, -1 error. */
static int xdp_run(struct lt_admit *sk, const struct pkt_spec *s, __u32 repeat)
{
	static __thread unsigned char raw[260] __attribute__((aligned(8)));
	int len = pkt_build(s, raw + 2, sizeof(raw) - 2);
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = raw + 2, .data_size_in = (__u32)len,
		    .repeat = repeat);

	if (bpf_prog_test_run_opts(bpf_program__fd(sk->progs.lt_xdp), &o))
		return -1;
	return o.retval == XDP_PASS ? 1 : o.retval == XDP_DROP ? 0 : -1;
}

static int fake_run(const struct pkt_spec *s, __u64 now)
{
	fake->bss->lt_fake_now_ns = now;
	return xdp_run(fake, s, 1);
}

/* --- item 5: the sweep against admissions ------------------------------- */

static const struct pkt_spec sweep_src = { .src = "10.5.5.5", .ack = 1 };
static int hook_admitted;

/* Lands a full burst on the slot after the sweep judged it empty. */
static void admit_during_sweep(struct lt_src_slot *s)
{
	int i;

	(void)s;
	for (i = 0; i < 10; i++)
		hook_admitted += fake_run(&sweep_src, T0 + 100 * SEC) == 1;
}

static void clear_src(const struct lt_maps *m)
{
	size_t len;
	void *p = lt_map_mmap(m->fd[LT_M_SRC], &len);

	if (p) {
		memset(p, 0, len);
		munmap(p, len);
	}
}

/*
 * A source idle for 100 s has an empty bucket; the sweep judges it so, and
 * before it frees the slot the source sends its whole burst (capacity 10).
 * The slot must keep that level: the next packet in the same instant is
 * denied. (The old sweep zeroed the words with plain stores: the burst was
 * forgiven and the source got a second one.)
 */
static void sweep_never_forgives_a_racing_admission(void)
{
	struct lt_sweep_stats st;
	int i, admitted = 0;

	clear_src(&FM);
	CHECK_EQ(apply_json(&FM, "{\"protected_ports\":[8080],\"event_sample_every\":0,"
				 "\"default_policy\":{\"packets\":{\"capacity\":10,"
				 "\"rate\":\"1/s\"}}}"),
		 0);
	CHECK_EQ(fake_run(&sweep_src, T0), 1);
	hook_admitted = 0;
	lt_sweep_race_hook = admit_during_sweep;
	CHECK_EQ(lt_sweep(&FM, T0 + 100 * SEC, 60 * SEC, &st), 0);
	lt_sweep_race_hook = NULL;
	CHECK_EQ(hook_admitted, 10);
	CHECK_EQ(st.sources_idle, 0);
	CHECK_EQ(lt_src_count(FM.fd[LT_M_SRC], NULL), 1);
	for (i = 0; i < 10; i++)
		admitted += fake_run(&sweep_src, T0 + 100 * SEC) == 1;
	CHECK_EQ(admitted, 0);
	/* once really idle and empty, the sweep frees it */
	CHECK_EQ(lt_sweep(&FM, T0 + 200 * SEC, 60 * SEC, &st), 0);
	CHECK_EQ(st.sources_idle, 1);
	CHECK_EQ(lt_src_count(FM.fd[LT_M_SRC], NULL), 0);
}

int main(void)
{
	struct lt_load_opts lo = { .fake_clock = 1, .max_sources = 1024 };
	char err[256];

	if (geteuid() != 0) {
		printf("1..0 # SKIP BPF_PROG_RUN needs root\n");
		return 77;
	}
	lt_log_level = LT_LOG_WARN;
	lt_log_libbpf();
	fake = lt_skel_load(&lo, err, sizeof(err));
	if (!fake) {
		printf("not ok 1 - load skeleton: %s\n1..1\n", err);
		return 1;
	}
	lt_maps_from_skel(fake, &FM);
	RUN(sweep_never_forgives_a_racing_admission);
	lt_admit__destroy(fake);
	return lt_t_done();
}
