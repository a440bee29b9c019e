// SPDX-License-Identifier: MIT
/*
 * test_consistency.c - races between the agent's writers and the BPF
 * readers (BPF_PROG_RUN on the real skeleton): the sweep against admissions,
 * clock calibration and config writes against packets, config writers
 * against each other. Needs root (CAP_BPF).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "lt_test.h"
#include "pktbuild.h"
#include <signal.h>
#include <sys/wait.h>
#include "addr.h"
#include "agent.h"
#include "apply.h"
#include "cfg.h"
#include "config.h"
#include "loader.h"
#include "log.h"
#include "maps.h"
#include "penalty.h"

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

/* --- item 2: torn reads of lt_config ---------------------------------- */

static struct lt_admit *real; /* the tick clock; lt_check_now */
static struct lt_maps RM;

/* Consistent read of lt_config as the agent does it. */
static int cfg_get(int fd, struct lt_config *c)
{
	return lt_cfg_read(fd, c);
}

struct clk {
	__u64 base_ns, base_j, npj;
};

static int put_clock(struct lt_config_snap *s, void *arg)
{
	const struct clk *k = arg;

	s->clk_base_ns = k->base_ns;
	s->clk_base_jiffies = k->base_j;
	s->clk_ns_per_jiffy = k->npj;
	return 0;
}

/* How a recalibrating agent writes the clock. */
static int write_clock(int fd, const struct clk *k)
{
	char err[128];

	return lt_cfg_update(fd, put_clock, (void *)k, err, sizeof(err));
}

struct rewriter {
	int fd;
	struct clk a, b;
	volatile int stop;
	long writes;
};

/*
 * Two calibrations of the same line whose bases are 800 s apart, as after
 * an agent restart: any mix of their fields is off by 800 s.
 */
static void *rewrite_clock(void *arg)
{
	struct rewriter *w = arg;

	while (!w->stop) {
		write_clock(w->fd, (w->writes & 1) ? &w->b : &w->a);
		w->writes++;
	}
	return NULL;
}

static int run_repeat(struct lt_admit *sk, const struct pkt_spec *s, __u32 repeat)
{
	int len;
	unsigned char raw[260] __attribute__((aligned(8)));
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = raw + 2, .repeat = repeat);

	len = pkt_build(s, raw + 2, sizeof(raw) - 2);
	o.data_size_in = (__u32)len;
	return bpf_prog_test_run_opts(bpf_program__fd(sk->progs.lt_xdp), &o) ? -errno : 0;
}

/*
 * With the real tick clock, every decision's now (compared in BPF with
 * bpf_ktime_get_ns(), lt_check_now) is on the calibrated line, never a mix of
 * two calibrations, while another thread rewrites the calibration without pause.
 */
static void tick_clock_never_torn_by_recalibration(void)
{
	struct pkt_spec s = { .src = "10.6.6.6", .ack = 1 };
	struct lt_config c;
	struct rewriter w = { .fd = RM.fd[LT_M_CONFIG] };
	pthread_t th;
	__u64 shift;
	int i;

	CHECK_EQ(cfg_get(RM.fd[LT_M_CONFIG], &c), 0);
	CHECK(c.clk_ns_per_jiffy > 0);
	shift = 800 * SEC / c.clk_ns_per_jiffy;
	w.a = (struct clk){ c.clk_base_ns, c.clk_base_jiffies, c.clk_ns_per_jiffy };
	w.b = (struct clk){ c.clk_base_ns + shift * c.clk_ns_per_jiffy, c.clk_base_jiffies + shift,
			    c.clk_ns_per_jiffy };
	/*
	 * Any mix of the two calibrations' fields is 800 s off, so 100 ms
	 * catches every torn read; it also allows for a tick interrupt that a
	 * loaded VM delivers late (jiffies itself lags then: not a tear). The
	 * lag bound is tick_clock_never_ahead_of_monotonic_lags_under_two_ticks's.
	 */
	real->bss->lt_now_tol_ns = 100 * 1000 * 1000;
	real->bss->lt_now_checked = 0;
	real->bss->lt_now_off = 0;
	real->bss->lt_now_dev_min = 0;
	real->bss->lt_now_dev_max = 0;
	pthread_create(&th, NULL, rewrite_clock, &w);
	for (i = 0; i < 40; i++)
		CHECK_EQ(run_repeat(real, &s, 100000), 0);
	w.stop = 1;
	pthread_join(th, NULL);
	printf("# %llu decisions during %ld calibration writes; now - ktime in [%lld, %lld] ns, "
	       "tick %llu ns; %llu torn (off by more than 100 ms)\n",
	       (unsigned long long)real->bss->lt_now_checked, w.writes,
	       (long long)real->bss->lt_now_dev_min, (long long)real->bss->lt_now_dev_max,
	       (unsigned long long)c.clk_ns_per_jiffy, (unsigned long long)real->bss->lt_now_off);
	CHECK_EQ(real->bss->lt_now_checked, 4000000);
	CHECK(w.writes > 100);
	CHECK_EQ(real->bss->lt_now_off, 0);
	write_clock(RM.fd[LT_M_CONFIG], &w.a);
}

/*
 * The calibrated tick clock against CLOCK_MONOTONIC over 2 s: every
 * decision's now is never ahead of it (up to 0.5 ms for the calibration's
 * probe brackets) and lags it by less than two ticks (one tick plus the tick
 * interrupt's latency). A wrong tick length drifts out of that (HZ=1024 taken
 * for 1000, as the old calibration did: 48 ms in 2 s).
 */
static void tick_clock_never_ahead_of_monotonic_lags_under_two_ticks(void)
{
	struct pkt_spec s = { .src = "10.6.6.8", .ack = 1 };
	struct lt_config c;
	int i;

	CHECK_EQ(cfg_get(RM.fd[LT_M_CONFIG], &c), 0);
	/*
	 * Lag: one tick plus the tick interrupt's latency, which a VM can
	 * stretch by ms (lt_abi.h); two ticks allow for it. Ahead: never, up to
	 * the 0.5 ms of the calibration's probe brackets (checked below).
	 */
	real->bss->lt_now_tol_ns = 2 * c.clk_ns_per_jiffy;
	real->bss->lt_now_checked = 0;
	real->bss->lt_now_off = 0;
	real->bss->lt_now_dev_min = 0;
	real->bss->lt_now_dev_max = 0;
	for (i = 0; i < 20; i++) {
		CHECK_EQ(run_repeat(real, &s, 10000), 0);
		usleep(100 * 1000);
	}
	printf("# over 2 s: now - CLOCK_MONOTONIC in [%lld, %lld] ns, tick %llu ns\n",
	       (long long)real->bss->lt_now_dev_min, (long long)real->bss->lt_now_dev_max,
	       (unsigned long long)c.clk_ns_per_jiffy);
	CHECK_EQ(real->bss->lt_now_checked, 200000);
	CHECK_EQ(real->bss->lt_now_off, 0);
	CHECK(real->bss->lt_now_dev_max <= 500 * 1000);
}

struct policy_rewriter {
	const struct lt_maps *m;
	struct lt_agent_config allow, meter;
	volatile int stop;
	long writes;
};

static int put_dflt(struct lt_config_snap *s, void *arg)
{
	s->dflt = *(const struct lt_src_policy *)arg;
	return 0;
}

/* How a reload writes the default policy (lt_config_apply's latch write). */
static int write_dflt(int fd, const struct lt_src_policy *p)
{
	char err[128];

	return lt_cfg_update(fd, put_dflt, (void *)p, err, sizeof(err));
}

static void *rewrite_policy(void *arg)
{
	struct policy_rewriter *w = arg;

	while (!w->stop) {
		write_dflt(w->m->fd[LT_M_CONFIG],
			   (w->writes & 1) ? &w->meter.xdp.dflt : &w->allow.xdp.dflt);
		w->writes++;
	}
	return NULL;
}

/*
 * A reload rewrites the default policy while packets read it: the default
 * alternates between an allowlist policy (id A, no bucket) and a metered
 * one (id B). A packet that mixed them would meter a bucket under id A.
 */
static void default_policy_never_torn_by_reload(void)
{
	struct lt_stat_val before[LT_STAT__MAX], after[LT_STAT__MAX];
	struct pkt_spec s = { .src = "10.6.6.7", .ack = 1 };
	struct policy_rewriter w = { .m = &RM };
	struct lt_src_slot *slots;
	char err[256];
	size_t len, n, i;
	long torn = 0, metered = 0;
	__u64 passed, contended;
	pthread_t th;
	int k;

	CHECK_EQ(lt_config_parse("{\"protected_ports\":[8080],\"event_sample_every\":0,"
				 "\"default_policy\":{\"packets\":{\"capacity\":1000000000000,"
				 "\"rate\":\"1000000000/s\"}}}",
				 "meter", &w.meter, err, sizeof(err)),
		 0);
	CHECK_EQ(lt_config_parse("{\"protected_ports\":[8080],\"event_sample_every\":0}", "allow",
				 &w.allow, err, sizeof(err)),
		 0);
	w.allow.xdp.dflt.flags |= LT_POL_ALLOW;
	w.allow.xdp.dflt.id = lt_policy_id(&w.allow.xdp.dflt);
	CHECK(w.allow.xdp.dflt.id != w.meter.xdp.dflt.id);
	clear_src(&RM);
	lt_stats_read(RM.fd[LT_M_STATS], before);
	pthread_create(&th, NULL, rewrite_policy, &w);
	for (k = 0; k < 20; k++)
		CHECK_EQ(run_repeat(real, &s, 50000), 0);
	w.stop = 1;
	pthread_join(th, NULL);
	lt_stats_read(RM.fd[LT_M_STATS], after);
	slots = lt_map_mmap(RM.fd[LT_M_SRC], &len);
	CHECK(slots != NULL);
	n = slots ? (size_t)lt_map_entries(RM.fd[LT_M_SRC]) : 0;
	for (i = 0; i < n; i++) {
		if (!slots[i].tag)
			continue;
		torn += slots[i].key.policy_id != w.meter.xdp.dflt.id;
		metered++;
	}
	if (slots)
		munmap(slots, len);
	passed = after[LT_STAT_PASS_ALLOWLIST].packets - before[LT_STAT_PASS_ALLOWLIST].packets +
		 after[LT_STAT_PASS_ADMIT].packets - before[LT_STAT_PASS_ADMIT].packets;
	contended = after[LT_STAT_DROP_CONTENDED].packets - before[LT_STAT_DROP_CONTENDED].packets;
	printf("# %ld reloads; %llu packets allowlisted or admitted, %llu failed closed "
	       "(latch kept moving); %ld buckets, %ld under a torn policy\n",
	       w.writes, (unsigned long long)passed, (unsigned long long)contended, metered, torn);
	CHECK(w.writes > 100);
	CHECK_EQ(passed + contended, 1000000);
	CHECK_EQ(torn, 0);
	lt_config_free(&w.meter);
	lt_config_free(&w.allow);
}

/* --- item 3: writers of lt_config in threads and processes -------------- */

struct shared { /* MAP_SHARED: the parent's reload thread and the child see it */
	volatile long reloads_started, reloads_done, stop, stop_bans;
	long toggles, checked, undone;
};

struct racer {
	const struct lt_opts *o;
	struct lt_maps *m;
	struct shared *sh;
	int id;
	long n, undone;
};

#define BAN_PREFIXES 128 /* per thread, banned over and over until the reloads are done */
#define TOGGLES 30 /* the reloads go on until the second process made these */
#define RELOADS_MAX 20000

static void *ban_loop(void *arg)
{
	struct racer *r = arg;
	struct lt_lpm_key k;
	char pfx[64], err[64];
	int i;

	for (i = 0; !r->sh->stop_bans; i++) {
		snprintf(pfx, sizeof(pfx), "10.%d.0.%d/32", 100 + r->id, i % BAN_PREFIXES);
		lt_prefix_parse(pfx, &k, err, sizeof(err));
		r->n += !lt_penalty_ban(r->m->fd[LT_M_PENALTY], r->m->fd[LT_M_CONFIG], &k, ~0ULL,
					LT_PENALTY_MANUAL, NULL);
	}
	return NULL;
}

/*
 * Reloads (the daemon's SIGHUP path) with a new default policy each time;
 * each must still be there after.
 */
static void *reload_loop(void *arg)
{
	struct racer *r = arg;
	struct lt_agent_config c;
	struct lt_config now;
	char err[256];
	FILE *f;
	int i, ret;

	for (i = 0; i < RELOADS_MAX && r->sh->toggles < TOGGLES; i++) {
		f = fopen(r->o->config, "w");
		if (!f)
			break;
		fprintf(f,
			"{\"protected_ports\":[8080],\"event_sample_every\":0,"
			"\"default_policy\":{\"packets\":{\"capacity\":%d,\"rate\":\"1/s\"}}}",
			1000 + i);
		fclose(f);
		__atomic_fetch_add(&r->sh->reloads_started, 1, __ATOMIC_SEQ_CST);
		ret = lt_config_reload(r->o, r->m, NULL, &c, err, sizeof(err));
		__atomic_fetch_add(&r->sh->reloads_done, 1, __ATOMIC_SEQ_CST);
		if (ret) {
			printf("# reload: %s\n", err);
			break;
		}
		r->n++;
		usleep(1000); /* bans and toggles meanwhile: none may undo this reload */
		r->undone += !cfg_get(r->m->fd[LT_M_CONFIG], &now) && now.dflt.id != c.xdp.dflt.id;
		lt_config_free(&c);
		usleep(1000);
	}
	return NULL;
}

/*
 * The second process: `leaky-agent dry-run on|off`. A reload also writes
 * the bit, from the overrides the toggle saved, so the bit must hold from
 * the toggle on, until a reload that began after it has finished (polled
 * every 50 us: a reload that read the overrides before the toggle and wrote
 * the bit after it would show here, until the next reload heals it).
 */
static void toggle_loop(struct lt_opts *o, struct shared *sh, int cfg_fd)
{
	char *args[1];
	struct lt_config now;
	long s1;
	int on;

	if (!freopen("/dev/null", "w", stdout))
		return;
	o->args = args;
	o->nargs = 1;
	while (!sh->stop && sh->toggles < TOGGLES) {
		on = !(sh->toggles & 1);
		args[0] = on ? "on" : "off";
		if (lt_cmd_dry_run(o))
			break;
		sh->toggles++;
		s1 = __atomic_load_n(&sh->reloads_started, __ATOMIC_SEQ_CST);
		sh->checked++;
		do {
			if (cfg_get(cfg_fd, &now))
				return;
			if (!!(now.flags & LT_CFG_DRY_RUN) != on) {
				sh->undone++;
				break;
			}
			usleep(50);
		} while (__atomic_load_n(&sh->reloads_done, __ATOMIC_SEQ_CST) <= s1 && !sh->stop);
	}
}

/*
 * The state dir holds only files (overrides, lock, store): remove them all.
 * Passes until one finds nothing: unlinking while reading a tmpfs
 * directory can skip entries.
 */
static void rm_flat_dir(const char *dir)
{
	char path[512];
	struct dirent *de;
	int pass, found = 1;

	for (pass = 0; pass < 10 && found; pass++) {
		DIR *d = opendir(dir);

		found = 0;
		while (d && (de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			found += !unlink(path);
		}
		if (d)
			closedir(d);
	}
	rmdir(dir);
}

/*
 * Bans from two threads, reloads from a third, `dry-run on|off` from a
 * second process, all at once: every write survives. The generation counts
 * every write exactly, no reload's default policy and no toggle is undone
 * by another writer (a reload re-reads the toggle's saved override under the
 * state lock), every ban is in lt_penalty with all its strikes.
 */
static void config_writers_in_threads_and_processes_lose_nothing(void)
{
	struct lt_load_opts lo = { .fake_clock = 1, .max_sources = 1024 };
	struct racer bans[2] = {}, reload = {};
	char pin[64], state[] = "/tmp/lt-kclock-state-XXXXXX", err[256], path[128], conf[160];
	struct lt_opts o = {};
	struct lt_config c0, c1;
	struct lt_admit *sk;
	struct lt_maps m;
	struct shared *sh;
	pthread_t tb[2], tr;
	pid_t child;
	int i, st = 0;

	snprintf(pin, sizeof(pin), "/sys/fs/bpf/lt-kclock-race-%d", (int)getpid());
	lo.pin_dir = pin;
	CHECK(mkdtemp(state) != NULL);
	sk = lt_skel_load(&lo, err, sizeof(err));
	CHECK(sk != NULL);
	if (!sk) {
		printf("# %s\n", err);
		return;
	}
	lt_maps_from_skel(sk, &m);
	CHECK_EQ(apply_json(&m, "{\"protected_ports\":[8080]}"), 0);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED);
	if (sh == MAP_FAILED)
		goto out;
	memset(sh, 0, sizeof(*sh));
	CHECK_EQ(cfg_get(m.fd[LT_M_CONFIG], &c0), 0);
	o.pin_dir = pin;
	o.state_dir = state;
	snprintf(conf, sizeof(conf), "%s/leaky.json", state);
	o.config = conf;
	fflush(stdout);
	child = fork();
	if (child == 0) {
		toggle_loop(&o, sh, m.fd[LT_M_CONFIG]);
		_exit(0);
	}
	for (i = 0; i < 2; i++) {
		bans[i] = (struct racer){ .m = &m, .sh = sh, .id = i };
		pthread_create(&tb[i], NULL, ban_loop, &bans[i]);
	}
	reload = (struct racer){ .o = &o, .m = &m, .sh = sh };
	pthread_create(&tr, NULL, reload_loop, &reload);
	pthread_join(tr, NULL);
	sh->stop_bans = 1;
	for (i = 0; i < 2; i++)
		pthread_join(tb[i], NULL);
	sh->stop = 1;
	waitpid(child, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ(cfg_get(m.fd[LT_M_CONFIG], &c1), 0);
	printf("# %ld bans, %ld reloads (%ld undone), %ld dry-run toggles (%ld read back, %ld "
	       "undone); generation +%llu\n",
	       bans[0].n + bans[1].n, reload.n, reload.undone, sh->toggles, sh->checked, sh->undone,
	       (unsigned long long)(c1.generation - c0.generation));
	CHECK(bans[0].n > 100 && bans[1].n > 100);
	CHECK(reload.n > 10);
	CHECK_EQ(sh->toggles, TOGGLES);
	CHECK_EQ(sh->checked, sh->toggles);
	CHECK_EQ(reload.undone, 0);
	CHECK_EQ(sh->undone, 0);
	CHECK_EQ(c1.generation - c0.generation, bans[0].n + bans[1].n + reload.n + sh->toggles);
	CHECK_EQ(lt_penalty_count(m.fd[LT_M_PENALTY], m.fd[LT_M_CONFIG]), 2 * BAN_PREFIXES);
	for (i = 0; i < 2 * BAN_PREFIXES; i++) {
		struct lt_racer_strikes {
			int t, j;
		} w = { i / BAN_PREFIXES, i % BAN_PREFIXES };
		struct lt_penalty p = {};
		struct lt_lpm_key k;
		long want = bans[w.t].n / BAN_PREFIXES + (w.j < bans[w.t].n % BAN_PREFIXES);

		snprintf(path, sizeof(path), "10.%d.0.%d/32", 100 + w.t, w.j);
		lt_prefix_parse(path, &k, err, sizeof(err));
		lt_penalty_get(m.fd[LT_M_PENALTY], m.fd[LT_M_CONFIG], &k, &p);
		if (p.strikes != want) {
			printf("#   %s: %u strikes, %ld bans\n", path, p.strikes, want);
			CHECK_EQ(p.strikes, want);
			break;
		}
	}
	munmap(sh, sizeof(*sh));
out:
	lt_admit__destroy(sk);
	lt_unpin_all(pin);
	rm_flat_dir(state);
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

	real = lt_admit__open();
	if (real)
		real->rodata->lt_check_now = 1;
	if (!real || lt_admit__load(real)) {
		printf("not ok 2 - load skeleton (real clock)\n1..2\n");
		lt_admit__destroy(real);
		lt_admit__destroy(fake);
		return 1;
	}
	lt_maps_from_skel(real, &RM);
	{
		struct lt_agent_config c;

		if (lt_config_parse("{\"protected_ports\":[8080],\"event_sample_every\":0,"
				    "\"default_policy\":{\"packets\":{\"capacity\":"
				    "1000000000000,\"rate\":\"1000000000/s\"}}}",
				    "real", &c, err, sizeof(err)) ||
		    lt_clock_calibrate(real, &c.xdp, err, sizeof(err)) ||
		    lt_config_apply(&RM, &c, err, sizeof(err)))
			printf("# setup: %s\n", err);
		lt_config_free(&c);
	}
	RUN(tick_clock_never_ahead_of_monotonic_lags_under_two_ticks);
	RUN(tick_clock_never_torn_by_recalibration);
	RUN(default_policy_never_torn_by_reload);
	RUN(config_writers_in_threads_and_processes_lose_nothing);
	lt_admit__destroy(real);
	lt_admit__destroy(fake);
	return lt_t_done();
}
