// SPDX-License-Identifier: MIT
/*
 * test_lease.c - leases of gateway requests in flight (lib/lease.h) on the
 * real pinned lt_lease map: a child process takes leases over real
 * reservations on the mmapped lt_slots and is killed with SIGKILL; the
 * agent's settlement pass (called directly) frees each of its leases exactly
 * once, after the deadline only, never a live owner's, never another process
 * that reuses the pid, and without touching a bucket (the reservation stays
 * charged in full: nothing can be refunded twice). And gateway processes
 * admitting through gateway/admit.c on the real lt_slots, with leases on the
 * real lt_lease: never jointly over C + R*t, every lease given back. Needs
 * root (CAP_BPF).
 */
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "lt_test.h"
#include "admit.h"
#include "agent.h"
#include "decide.h"
#include "lease.h"
#include "loader.h"
#include "log.h"
#include "maps.h"
#include "units.h"

#define SEC 1000000000ULL

static struct lt_lease *L;
static __u32 NL;
static struct lt_decide_maps DM;
static char pin[80];

/* In use and not ours: the entries whose owner word is pid's. */
static long leases_of(pid_t pid)
{
	long n = 0;
	__u32 i;

	for (i = 0; i < NL; i++) {
		__u64 o = __atomic_load_n(&L[i].owner, __ATOMIC_ACQUIRE);

		n += o && (o & ((1ULL << LT_LEASE_PID_BITS) - 1)) == (__u64)pid;
	}
	return n;
}

/*
 * The child: k leases, each over a real reservation of 10 tokens on slot 3,
 * deadline at deadline_ns; then it tells the parent and waits to be killed.
 */
static pid_t holder(int k, __u64 deadline_ns)
{
	int pfd[2];
	pid_t pid;
	char c = 0;

	if (pipe(pfd))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct lt_leases l;
		struct lt_slot_seen seen;
		struct lt_view v;
		__u32 id;
		int i, ok = 1;

		close(pfd[0]);
		ok = !lt_leases_attach(&l, L, NL);
		for (i = 0; ok && i < k; i++) {
			ok = !lt_lease_take(&l, lt_now_ns(), deadline_ns, &id) &&
			     lt_decide_consume(&DM, 3, 1, ~0U, 10, lt_now_ns(), &v, &seen) ==
				     LT_ADMIT;
			if (ok)
				lt_lease_record(&l, id, 0, &seen, 1, 10);
		}
		c = ok ? 'y' : 'n';
		if (write(pfd[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	if (pid < 0 || read(pfd[0], &c, 1) != 1 || c != 'y') {
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		pid = -1;
	}
	close(pfd[0]);
	return pid;
}

static void kill_and_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void dead_owner_settled_exactly_once_live_owner_never(void)
{
	__u64 now = lt_now_ns(), word;
	long live = -1;
	pid_t pid;

	pid = holder(3, now); /* deadline already passed */
	CHECK(pid > 0);
	if (pid <= 0)
		return;
	CHECK_EQ(leases_of(pid), 3);
	/* alive, whatever the deadline: never settled */
	CHECK_EQ(lt_lease_settle(L, NL, now + 3600 * SEC, &live), 0);
	CHECK_EQ(live, 3);
	CHECK_EQ(leases_of(pid), 3);

	kill_and_reap(pid);
	word = DM.slots[3].tat;
	CHECK_EQ(lt_lease_settle(L, NL, lt_now_ns(), &live), 3);
	CHECK_EQ(live, 0);
	CHECK_EQ(leases_of(pid), 0);
	/* charged in full: the settlement touched no bucket */
	CHECK_EQ(DM.slots[3].tat, word);
	CHECK_EQ(DM.usage[3].tokens, 30);
	/* exactly once: a second pass (another agent thread, a restart) finds nothing */
	CHECK_EQ(lt_lease_settle(L, NL, lt_now_ns(), &live), 0);
	CHECK_EQ(DM.usage[3].tokens, 30);
}

static void dead_owner_waits_for_its_deadline(void)
{
	__u64 now = lt_now_ns();
	pid_t pid;

	pid = holder(1, now + 3600 * SEC);
	CHECK(pid > 0);
	if (pid <= 0)
		return;
	kill_and_reap(pid);
	CHECK_EQ(lt_lease_settle(L, NL, now, NULL), 0);
	CHECK_EQ(leases_of(pid), 1);
	CHECK_EQ(lt_lease_settle(L, NL, now + 3601 * SEC, NULL), 1);
	CHECK_EQ(leases_of(pid), 0);
}

/*
 * A lease whose owner word names a live pid of another start time (the
 * dead owner's pid was reused): settled. Its live owner's real word: not.
 */
static void reused_pid_is_not_the_owner(void)
{
	struct lt_leases me;
	__u64 now = lt_now_ns();
	__u32 id, forged;

	CHECK_EQ(lt_leases_attach(&me, L, NL), 0);
	CHECK_EQ(lt_lease_owner_of((__u32)getpid()), me.me);
	CHECK_EQ(lt_lease_take(&me, now, now, &id), 0);
	CHECK_EQ(lt_lease_take(&me, now, now, &forged), 0);
	CHECK(id != forged);
	L[forged].owner = me.me + (1ULL << LT_LEASE_PID_BITS); /* started one tick later */
	CHECK_EQ(lt_lease_settle(L, NL, now + SEC, NULL), 1);
	CHECK_EQ(L[forged].owner, 0);
	CHECK_EQ(L[id].owner, me.me);
	/* the settled entry is no longer ours to give back; ours is */
	CHECK_EQ(lt_lease_release(&me, forged), -EPERM);
	CHECK_EQ(lt_lease_release(&me, id), 0);
	CHECK_EQ(lt_lease_release(&me, id), -EPERM);
	CHECK_EQ(lt_lease_owner_of(0), 0);
	CHECK_EQ(lt_lease_owner_of(1U << LT_LEASE_PID_BITS), 0);
}

/* A full table refuses (the gateway answers 503 and reserves nothing). */
static void full_table_refuses(void)
{
	struct lt_leases me;
	__u64 now = lt_now_ns();
	__u32 i, id, got = 0;

	CHECK_EQ(lt_leases_attach(&me, L, 8), 0); /* the first 8 entries only */
	for (i = 0; i < 8; i++)
		got += !lt_lease_take(&me, now, now + SEC, &id);
	CHECK_EQ(got, 8);
	CHECK_EQ(lt_lease_take(&me, now, now + SEC, &id), -ENOSPC);
	for (i = 0; i < 8; i++)
		CHECK_EQ(lt_lease_release(&me, i), 0);
	CHECK_EQ(lt_lease_take(&me, now, now + SEC, &id), 0);
	CHECK_EQ(lt_lease_release(&me, id), 0);
}

/* The gateway's way in: the pinned map by name, mmapped, no syscall per lease. */
static void pinned_map_opens_by_name(void)
{
	struct lt_leases l;
	char err[256] = "";
	__u32 id;

	CHECK_EQ(lt_leases_open(&l, pin, err, sizeof(err)), 0);
	if (err[0])
		printf("# %s\n", err);
	CHECK_EQ(l.n, LT_MAX_LEASES);
	CHECK_EQ(lt_lease_take(&l, 1, 2, &id), 0);
	CHECK_EQ(L[id].owner, l.me); /* the same memory as the skeleton's map */
	CHECK_EQ(lt_lease_release(&l, id), 0);
	lt_leases_close(&l);
	CHECK_EQ(lt_leases_open(&l, "/nonexistent", err, sizeof(err)), -ENOENT);
}

/* ---- gateway processes on the real maps ------------------------------------- */

#define GW_PROCS 3
static const char *const GW_KEYS[4] = { "r/USER/lk_a", "k/lk_a", "o/openai/org", "p/openai" };

struct gw_shared {
	__u64 tmin, tmax; /* decision clock reads */
	__u64 net[4]; /* net admitted per limit, as the clients count it */
	__u64 failed; /* admissions that were neither OK nor LIMITED */
	int go;
};

static int gw_resolve(void *ctx, const char *key, struct lt_keyidx_val *out, char *err,
		      size_t errlen)
{
	int i;

	(void)ctx;
	(void)err;
	(void)errlen;
	for (i = 0; i < 4; i++)
		if (!strcmp(key, GW_KEYS[i])) {
			*out = (struct lt_keyidx_val){ 20 + (__u32)i, 7 };
			return 0;
		}
	return -ENOENT;
}

static void gw_forget(void *ctx, const char *key)
{
	(void)ctx;
	(void)key;
}

static void gw_minmax(struct gw_shared *sh, __u64 now)
{
	__u64 o = __atomic_load_n(&sh->tmin, __ATOMIC_RELAXED);

	while (now < o && !__atomic_compare_exchange_n(&sh->tmin, &o, now, 0, __ATOMIC_RELAXED,
						       __ATOMIC_RELAXED))
		;
	o = __atomic_load_n(&sh->tmax, __ATOMIC_RELAXED);
	while (now > o && !__atomic_compare_exchange_n(&sh->tmax, &o, now, 0, __ATOMIC_RELAXED,
						       __ATOMIC_RELAXED))
		;
}

static void gw_process(struct gw_shared *sh, unsigned seed)
{
	struct lt_admit_limit l[4];
	struct lt_reservation res;
	struct lt_admit_result out;
	struct lt_settle_result sr;
	struct lt_admitter a;
	struct lt_leases leases;
	__u64 now, end, cost, used;
	int i, v;

	if (lt_leases_attach(&leases, L, NL))
		_exit(2);
	lt_admitter_init(&a, &DM, NULL, &leases, 60 * SEC);
	a.r = (struct lt_admit_resolver){ gw_resolve, gw_forget, NULL };
	while (!__atomic_load_n(&sh->go, __ATOMIC_ACQUIRE))
		;
	end = lt_now_ns() + SEC * 4 / 10;
	while ((now = lt_now_ns()) < end) {
		cost = 1 + rand_r(&seed) % 40;
		for (i = 0; i < 4; i++)
			l[i] = (struct lt_admit_limit){ GW_KEYS[i], "x", i ? cost : 1,
							i ? LT_UNIT_TOKENS : LT_UNIT_REQUESTS };
		gw_minmax(sh, now);
		v = lt_admit(&a, l, 4, now, &res, &out);
		if (v != LT_ADM_OK) {
			if (v != LT_ADM_LIMITED)
				__atomic_fetch_add(&sh->failed, 1, __ATOMIC_RELAXED);
			continue;
		}
		used = rand_r(&seed) % (cost + 1);
		now = lt_now_ns();
		lt_admit_settle(&a, &res, used, now, &sr);
		gw_minmax(sh, now);
		for (i = 0; i < 4; i++)
			__atomic_fetch_add(&sh->net[i], i ? cost - sr.refunded[i] : 1,
					   __ATOMIC_RELAXED);
	}
	_exit(0);
}

static __u64 gw_bound(const struct gw_shared *sh, __u64 cap, __u64 per_s)
{
	return cap + (per_s * (sh->tmax - sh->tmin) + SEC - 1) / SEC;
}

static void gateway_processes_on_real_maps_stay_within_c_plus_rt(void)
{
	static const __u64 cap[4] = { 200, 3000, 1000, 2500 }, per_s[4] = { 400, 2000, 1000, 3000 };
	struct gw_shared *sh;
	pid_t pid[GW_PROCS];
	long live = -1;
	__u32 old;
	int i, st, ok = 1, was_free;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED);
	if (sh == MAP_FAILED)
		return;
	memset(sh, 0, sizeof(*sh));
	sh->tmin = ~0ULL;
	for (i = 0; i < 4; i++) {
		CHECK_EQ(lt_rate_init(&DM.rates[20 + i], cap[i], per_s[i], SEC), 0);
		memset(&DM.usage[20 + i], 0, sizeof(DM.usage[0]));
		DM.usage[20 + i].gen = 7;
		lt_slot_assign(DM.slots, 20 + (__u32)i, 20 + (__u32)i, &old, &was_free);
	}
	fflush(stdout);
	for (i = 0; i < GW_PROCS; i++) {
		pid[i] = fork();
		if (pid[i] == 0)
			gw_process(sh, 1 + (unsigned)i * 7919);
	}
	__atomic_store_n(&sh->go, 1, __ATOMIC_RELEASE);
	for (i = 0; i < GW_PROCS; i++)
		ok &= pid[i] > 0 && waitpid(pid[i], &st, 0) == pid[i] && WIFEXITED(st) &&
		      !WEXITSTATUS(st);
	CHECK(ok);
	printf("# %.3f s, 3 processes: requests %llu, key %llu, org %llu (bound %llu), pool %llu "
	       "tokens\n",
	       (double)(sh->tmax - sh->tmin) / SEC, (unsigned long long)sh->net[0],
	       (unsigned long long)sh->net[1], (unsigned long long)sh->net[2],
	       (unsigned long long)gw_bound(sh, cap[2], per_s[2]), (unsigned long long)sh->net[3]);
	CHECK(sh->net[2] > 0);
	CHECK_EQ(sh->failed, 0);
	for (i = 0; i < 4; i++) {
		CHECK(sh->net[i] <= gw_bound(sh, cap[i], per_s[i]));
		CHECK(DM.usage[20 + i].tokens >= sh->net[i]);
		CHECK(DM.usage[20 + i].tokens <= gw_bound(sh, cap[i], per_s[i]));
	}
	/* all or nothing: every bucket counts the same admissions */
	CHECK_EQ(DM.usage[20].admitted, sh->net[0]);
	for (i = 1; i < 4; i++)
		CHECK_EQ(DM.usage[20 + i].admitted, DM.usage[20].admitted);
	/* every lease was given back by its (living) owner: nothing for the agent */
	CHECK_EQ(lt_lease_settle(L, NL, lt_now_ns() + 3600 * SEC, &live), 0);
	CHECK_EQ(live, 0);
	munmap(sh, sizeof(*sh));
}

int main(void)
{
	struct lt_load_opts lo = { .max_sources = 1024 };
	struct lt_admit *sk;
	struct lt_maps m;
	size_t len[4];
	char err[256];
	__u32 old;
	int was_free;

	if (geteuid() != 0) {
		printf("1..0 # SKIP lt_lease is a BPF map: needs root\n");
		return 77;
	}
	lt_log_level = LT_LOG_WARN;
	lt_log_libbpf();
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/lt-lease-%d", (int)getpid());
	lo.pin_dir = pin;
	sk = lt_skel_load(&lo, err, sizeof(err));
	if (!sk) {
		printf("not ok 1 - load skeleton: %s\n1..1\n", err);
		lt_unpin_all(pin);
		return 1;
	}
	lt_maps_from_skel(sk, &m);
	L = lt_map_mmap(m.fd[LT_M_LEASE], &len[0]);
	DM.slots = lt_map_mmap(m.fd[LT_M_SLOTS], &len[1]);
	DM.rates = lt_map_mmap(m.fd[LT_M_RATES], &len[2]);
	DM.usage = lt_map_mmap(m.fd[LT_M_USAGE], &len[3]);
	NL = (__u32)lt_map_entries(m.fd[LT_M_LEASE]);
	if (!L || !DM.slots || !DM.rates || !DM.usage || NL != LT_MAX_LEASES) {
		printf("not ok 1 - mmap lt_lease and the slot maps\n1..1\n");
		lt_admit__destroy(sk);
		lt_unpin_all(pin);
		return 1;
	}
	/* slot 3: 1000 tokens, 1 per hour, owned by gen 1 */
	lt_rate_init(&DM.rates[1], 1000, 1, 3600 * SEC);
	DM.usage[3].gen = 1;
	lt_slot_assign(DM.slots, 3, 1, &old, &was_free);

	RUN(dead_owner_settled_exactly_once_live_owner_never);
	RUN(dead_owner_waits_for_its_deadline);
	RUN(reused_pid_is_not_the_owner);
	RUN(full_table_refuses);
	RUN(pinned_map_opens_by_name);
	RUN(gateway_processes_on_real_maps_stay_within_c_plus_rt);

	munmap(L, len[0]);
	munmap(DM.slots, len[1]);
	munmap(DM.rates, len[2]);
	munmap(DM.usage, len[3]);
	lt_admit__destroy(sk);
	lt_unpin_all(pin);
	return lt_t_done();
}
