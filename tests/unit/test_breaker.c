// SPDX-License-Identifier: MIT
/*
 * test_breaker.c - lib/breaker.c: every transition of the circuit breaker on
 * a fake clock, slots and name collisions, two processes on one shared
 * table, and a probe whose process is killed (kill -9) not wedging HALF_OPEN.
 * The table is MAP_SHARED anonymous memory laid out as the lt_breaker map
 * (no BPF needed); the agent's API suite runs the same code on the pin.
 */
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "breaker.h"
#include "lt_test.h"

static const struct lt_brk_policy POL = { .fail_threshold = 3,
					  .recovery_ms = 1000,
					  .probes = 2,
					  .probe_timeout_ms = 500 };

static struct lt_breaker_val *shared_tab(uint32_t n)
{
	void *p = mmap(NULL, n * sizeof(struct lt_breaker_val), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void unshare_tab(struct lt_breaker_val *t, uint32_t n)
{
	munmap(t, n * sizeof(*t));
}

static struct lt_breaker_val *tab;
static struct lt_breakers B;

static void fresh(void)
{
	memset(tab, 0, LT_MAX_BREAKERS * sizeof(*tab));
	lt_breakers_init_mem(&B, tab, LT_MAX_BREAKERS, &POL);
}

static int allow(const char *n, uint64_t now, struct lt_brk_verdict *v)
{
	return lt_breaker_allow_at(&B, n, now, v);
}

static enum lt_brk_state state_of(const char *n)
{
	struct lt_brk_info i;

	return lt_breaker_get(&B, n, &i) ? (enum lt_brk_state) - 1 : i.state;
}

/* Trips "p" with fail_threshold failures at time now. */
static void trip(const char *n, uint64_t now)
{
	struct lt_brk_verdict v;
	uint32_t i;

	for (i = 0; i < POL.fail_threshold; i++) {
		allow(n, now, &v);
		lt_breaker_report_at(&B, n, LT_BRK_FAIL_5XX, 0, now);
	}
}

static void closed_counts_consecutive_failures_and_a_success_clears_them(void)
{
	struct lt_brk_verdict v;
	struct lt_brk_info i;

	fresh();
	CHECK_EQ(allow("openai", 100, &v), 1);
	CHECK_EQ(v.state, LT_BRK_CLOSED);
	CHECK_EQ(v.probe, 0);
	lt_breaker_report_at(&B, "openai", LT_BRK_FAIL_5XX, 0, 100);
	lt_breaker_report_at(&B, "openai", LT_BRK_FAIL_TIMEOUT, 0, 101);
	CHECK(!lt_breaker_get(&B, "openai", &i));
	CHECK_EQ(i.failures, 2);
	CHECK_EQ(i.state, LT_BRK_CLOSED);
	lt_breaker_report_at(&B, "openai", LT_BRK_SUCCESS, 0, 102);
	lt_breaker_get(&B, "openai", &i);
	CHECK_EQ(i.failures, 0);
	/* two more failures: still below the threshold of 3 */
	lt_breaker_report_at(&B, "openai", LT_BRK_FAIL_CONNECT, 0, 103);
	lt_breaker_report_at(&B, "openai", LT_BRK_FAIL_STREAM, 0, 104);
	CHECK_EQ(state_of("openai"), LT_BRK_CLOSED);
	CHECK_EQ(allow("openai", 105, &v), 1);
}

static void closed_to_open_at_the_threshold_for_each_failure_kind(void)
{
	static const enum lt_brk_outcome kinds[] = { LT_BRK_FAIL_5XX, LT_BRK_FAIL_TIMEOUT,
						     LT_BRK_FAIL_CONNECT, LT_BRK_FAIL_STREAM };
	struct lt_brk_verdict v;
	struct lt_brk_info i;
	unsigned k, j;

	for (k = 0; k < 4; k++) {
		fresh();
		for (j = 0; j < POL.fail_threshold; j++)
			lt_breaker_report_at(&B, "svc:users", kinds[k], 0, 1000 + j);
		CHECK(!lt_breaker_get(&B, "svc:users", &i));
		CHECK_EQ(i.state, LT_BRK_OPEN);
		CHECK_EQ(i.t_ms, 1002 + POL.recovery_ms); /* from the tripping failure */
		CHECK_EQ(i.opened_at_ms, 1002);
		CHECK_EQ(i.trips, 1);
		CHECK_EQ(i.last_cause, kinds[k]);
		CHECK_EQ(allow("svc:users", 1003, &v), 0);
	}
}

static void open_denies_until_the_recovery_timeout_and_says_until(void)
{
	struct lt_brk_verdict v;
	struct lt_brk_info i;

	fresh();
	trip("gemini", 5000);
	CHECK_EQ(allow("gemini", 5000, &v), 0);
	CHECK_EQ(v.allowed, 0);
	CHECK_EQ(v.state, LT_BRK_OPEN);
	CHECK_EQ(v.until_ms, 6000);
	CHECK_EQ(v.retry_after_ms, 1000);
	CHECK_EQ(allow("gemini", 5999, &v), 0);
	CHECK_EQ(v.retry_after_ms, 1);
	/* a late success or failure of a request let in before the trip changes nothing */
	lt_breaker_report_at(&B, "gemini", LT_BRK_SUCCESS, 0, 5500);
	lt_breaker_report_at(&B, "gemini", LT_BRK_FAIL_5XX, 0, 5500);
	lt_breaker_get(&B, "gemini", &i);
	CHECK_EQ(i.state, LT_BRK_OPEN);
	CHECK_EQ(i.t_ms, 6000);
	CHECK_EQ(i.denied, 2);
	CHECK_EQ(i.trips, 1);
}

static void open_to_half_open_after_recovery_with_bounded_probes(void)
{
	struct lt_brk_verdict v;
	struct lt_brk_info i;

	fresh();
	trip("qwen", 0);
	CHECK_EQ(allow("qwen", 1000, &v), 1); /* recovery over: the first probe */
	CHECK_EQ(v.probe, 1);
	CHECK_EQ(v.state, LT_BRK_HALF_OPEN);
	CHECK_EQ(allow("qwen", 1001, &v), 1); /* probes = 2 */
	CHECK_EQ(v.probe, 1);
	CHECK_EQ(allow("qwen", 1002, &v), 0); /* the third waits for the round */
	CHECK_EQ(v.state, LT_BRK_HALF_OPEN);
	CHECK_EQ(v.until_ms, 1000 + POL.probe_timeout_ms);
	lt_breaker_get(&B, "qwen", &i);
	CHECK_EQ(i.issued, 2);
	CHECK_EQ(i.succeeded, 0);
}

static void half_open_closes_when_every_probe_succeeded(void)
{
	struct lt_brk_verdict v;
	struct lt_brk_info i;

	fresh();
	trip("qwen", 0);
	allow("qwen", 1000, &v);
	allow("qwen", 1000, &v);
	lt_breaker_report_at(&B, "qwen", LT_BRK_SUCCESS, 0, 1100);
	CHECK_EQ(state_of("qwen"), LT_BRK_HALF_OPEN); /* one of two */
	lt_breaker_get(&B, "qwen", &i);
	CHECK_EQ(i.succeeded, 1);
	lt_breaker_report_at(&B, "qwen", LT_BRK_SUCCESS, 0, 1200);
	lt_breaker_get(&B, "qwen", &i);
	CHECK_EQ(i.state, LT_BRK_CLOSED);
	CHECK_EQ(i.failures, 0);
	CHECK_EQ(i.issued, 0);
	CHECK_EQ(allow("qwen", 1201, &v), 1);
	CHECK_EQ(v.probe, 0);
}

static void half_open_failure_opens_again(void)
{
	struct lt_brk_verdict v;
	struct lt_brk_info i;

	fresh();
	trip("anthropic", 0);
	allow("anthropic", 1000, &v);
	lt_breaker_report_at(&B, "anthropic", LT_BRK_SUCCESS, 0, 1010);
	lt_breaker_report_at(&B, "anthropic", LT_BRK_FAIL_TIMEOUT, 0, 1020); /* one is enough */
	lt_breaker_get(&B, "anthropic", &i);
	CHECK_EQ(i.state, LT_BRK_OPEN);
	CHECK_EQ(i.t_ms, 1020 + POL.recovery_ms);
	CHECK_EQ(i.trips, 2);
	CHECK_EQ(allow("anthropic", 1500, &v), 0);
	CHECK_EQ(allow("anthropic", 2020, &v), 1); /* and recovers again */
	CHECK_EQ(v.probe, 1);
}

static void provider_429_opens_at_once_for_its_own_retry_after(void)
{
	struct lt_brk_verdict v;
	struct lt_brk_info i;

	fresh();
	lt_breaker_report_at(&B, "openai", LT_BRK_RATE_LIMITED, 20000, 100); /* one 429 */
	lt_breaker_get(&B, "openai", &i);
	CHECK_EQ(i.state, LT_BRK_OPEN);
	CHECK_EQ(i.t_ms, 20100); /* its retry-after, not recovery_ms */
	CHECK_EQ(i.last_cause, LT_BRK_RATE_LIMITED);
	CHECK_EQ(allow("openai", 20099, &v), 0);
	CHECK_EQ(v.retry_after_ms, 1);
	/* a shorter 429 later does not bring it back early; a longer one extends */
	lt_breaker_report_at(&B, "openai", LT_BRK_RATE_LIMITED, 10, 200);
	lt_breaker_get(&B, "openai", &i);
	CHECK_EQ(i.t_ms, 20100);
	lt_breaker_report_at(&B, "openai", LT_BRK_RATE_LIMITED, 30000, 200);
	lt_breaker_get(&B, "openai", &i);
	CHECK_EQ(i.t_ms, 30200);
	CHECK_EQ(i.trips, 1);
	/* without a retry-after: recovery_ms; from HALF_OPEN too */
	CHECK_EQ(allow("openai", 30200, &v), 1);
	lt_breaker_report_at(&B, "openai", LT_BRK_RATE_LIMITED, 0, 30300);
	lt_breaker_get(&B, "openai", &i);
	CHECK_EQ(i.state, LT_BRK_OPEN);
	CHECK_EQ(i.t_ms, 30300 + POL.recovery_ms);
}

static void reset_closes_from_any_state(void)
{
	struct lt_brk_verdict v;
	struct lt_brk_info i;

	fresh();
	CHECK_EQ(lt_breaker_reset(&B, "never-seen"), -ENOENT);
	trip("openai", 0);
	CHECK_EQ(lt_breaker_reset(&B, "openai"), 0);
	lt_breaker_get(&B, "openai", &i);
	CHECK_EQ(i.state, LT_BRK_CLOSED);
	CHECK_EQ(i.last_cause, LT_BRK_RESET);
	CHECK_EQ(i.trips, 1); /* history stays */
	CHECK_EQ(allow("openai", 1, &v), 1);
	trip("openai", 0);
	allow("openai", 1000, &v); /* HALF_OPEN */
	CHECK_EQ(lt_breaker_reset(&B, "openai"), 0);
	CHECK_EQ(state_of("openai"), LT_BRK_CLOSED);
	CHECK_EQ(lt_breaker_reset(&B, "bad/name"), -EINVAL);
}

static void policy_in_the_slot_overrides_the_default(void)
{
	struct lt_brk_policy p = { .fail_threshold = 1, .recovery_ms = 50 }; /* probes: default */
	struct lt_brk_verdict v;
	struct lt_brk_info i;

	fresh();
	CHECK_EQ(lt_breaker_configure(&B, "svc:fast", &p), 0);
	lt_breaker_report_at(&B, "svc:fast", LT_BRK_FAIL_5XX, 0, 10);
	lt_breaker_get(&B, "svc:fast", &i);
	CHECK_EQ(i.state, LT_BRK_OPEN);
	CHECK_EQ(i.t_ms, 60);
	CHECK_EQ(i.policy.fail_threshold, 1);
	CHECK_EQ(i.policy.probes, POL.probes);
	CHECK_EQ(allow("svc:fast", 60, &v), 1);
}

static void names_are_checked_and_a_full_window_fails_open(void)
{
	static struct lt_breaker_val small[4];
	struct lt_breakers b;
	struct lt_brk_verdict v;
	char nm[16];
	int i;

	fresh();
	CHECK_EQ(allow("", 0, &v), -EINVAL);
	CHECK_EQ(v.allowed, 1);
	CHECK_EQ(allow("a b", 0, &v), -EINVAL);
	CHECK_EQ(allow("a/b", 0, &v), -EINVAL);
	CHECK_EQ(allow("0123456789012345678901234567890123456789012345678", 0, &v), -EINVAL);
	CHECK_EQ(allow("012345678901234567890123456789012345678901234567" + 1, 0, &v), 1);
	/* 4 slots: 4 names share them (their indexes collide), each with its own state */
	lt_breakers_init_mem(&b, small, 4, &POL);
	for (i = 0; i < 4; i++) {
		snprintf(nm, sizeof(nm), "p%d", i);
		CHECK_EQ(lt_breaker_allow_at(&b, nm, 0, &v), 1);
	}
	for (i = 0; i < 3; i++)
		lt_breaker_report_at(&b, "p2", LT_BRK_FAIL_5XX, 0, 0);
	for (i = 0; i < 4; i++) {
		snprintf(nm, sizeof(nm), "p%d", i);
		CHECK_EQ(lt_breaker_allow_at(&b, nm, 1, &v), i == 2 ? 0 : 1);
	}
	CHECK_EQ(lt_breaker_allow_at(&b, "p4", 0, &v), -ENOSPC); /* no slot: allowed */
	CHECK_EQ(v.allowed, 1);
}

/* The hash of lib/breaker.c, to build a collision by hand. */
static __u64 brk_hash(const char *s)
{
	__u64 h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	h = lt_mix64(h);
	return h ? h : 1;
}

static void same_hash_other_name_is_probed_past(void)
{
	__u64 h = brk_hash("openai");
	__u32 i0 = (__u32)h & (LT_MAX_BREAKERS - 1);
	struct lt_brk_verdict v;
	struct lt_brk_info in;

	fresh();
	/* a slot another name holds under openai's 64-bit hash */
	tab[i0].tag = h;
	snprintf(tab[i0].name, sizeof(tab[i0].name), "impostor");
	tab[i0].named = 1;
	tab[i0].st.word = 1ULL | (1ULL << 22) * 999999; /* OPEN for a long time */
	CHECK_EQ(allow("openai", 0, &v), 1); /* not the impostor's state */
	CHECK_EQ(tab[(i0 + 1) & (LT_MAX_BREAKERS - 1)].tag, h);
	CHECK(!lt_breaker_get(&B, "openai", &in));
	CHECK(!strcmp(in.name, "openai"));
	CHECK(!lt_breaker_info(&B, i0, &in));
	CHECK(!strcmp(in.name, "impostor"));
}

static void a_claim_left_unnamed_is_completed_by_the_next_user(void)
{
	__u64 h = brk_hash("gemini");
	__u32 i0 = (__u32)h & (LT_MAX_BREAKERS - 1);
	struct lt_brk_verdict v;
	struct lt_brk_info in;

	fresh();
	tab[i0].tag = h; /* claimed, then the claimer was killed */
	CHECK_EQ(allow("gemini", 0, &v), 1);
	CHECK_EQ(tab[i0].named, 1);
	CHECK(!strcmp(tab[i0].name, "gemini"));
	CHECK(!lt_breaker_info(&B, i0, &in));
	CHECK(!strcmp(in.name, "gemini"));
	CHECK_EQ(tab[(i0 + 1) & (LT_MAX_BREAKERS - 1)].tag, 0); /* no second slot */
}

static void bitfield_view_matches_the_word(void)
{
	struct lt_brk_verdict v;
	__u64 h = brk_hash("openai");
	struct lt_breaker_val *s = &tab[(__u32)h & (LT_MAX_BREAKERS - 1)];

	fresh();
	trip("openai", 7);
	CHECK_EQ(s->st.f.state, LT_BRK_OPEN);
	CHECK_EQ(s->st.f.t_ms, 7 + POL.recovery_ms);
	allow("openai", 7 + POL.recovery_ms, &v);
	allow("openai", 7 + POL.recovery_ms, &v);
	lt_breaker_report_at(&B, "openai", LT_BRK_SUCCESS, 0, 2000);
	CHECK_EQ(s->st.f.state, LT_BRK_HALF_OPEN);
	CHECK_EQ(s->st.f.issued, 2);
	CHECK_EQ(s->st.f.succeeded, 1);
	CHECK_EQ(s->st.f.t_ms, 7 + POL.recovery_ms + POL.probe_timeout_ms);
	fresh();
	lt_breaker_report_at(&B, "openai", LT_BRK_FAIL_5XX, 0, 1);
	CHECK_EQ(s->st.f.failures, 1);
}

static void two_processes_share_one_state(void)
{
	struct lt_brk_verdict v;
	pid_t pid;
	int st;

	fresh();
	pid = fork();
	if (pid == 0) {
		/* the other gateway process: its failures trip the shared breaker */
		trip("openai", 100);
		_exit(state_of("openai") == LT_BRK_OPEN ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ(allow("openai", 101, &v), 0); /* seen here */
	CHECK_EQ(v.until_ms, 100 + POL.recovery_ms);
	pid = fork();
	if (pid == 0) {
		lt_breaker_reset(&B, "openai");
		_exit(0);
	}
	waitpid(pid, &st, 0);
	CHECK_EQ(allow("openai", 102, &v), 1);
	CHECK_EQ(v.probe, 0);
}

static void probe_killed_mid_request_does_not_wedge_half_open(void)
{
	struct lt_brk_verdict v;
	int pfd[2], st;
	char c;
	pid_t pid;

	fresh();
	trip("openai", 0);
	allow("openai", 1000, &v); /* probe 1 of 2: this process, it answers */
	CHECK(!pipe(pfd));
	pid = fork();
	if (pid == 0) {
		struct lt_brk_verdict cv;

		lt_breaker_allow_at(&B, "openai", 1000, &cv); /* probe 2, then never reports */
		c = cv.probe ? 'p' : 'n';
		if (write(pfd[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	CHECK_EQ(read(pfd[0], &c, 1), 1);
	CHECK_EQ(c, 'p');
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	close(pfd[0]);
	close(pfd[1]);
	lt_breaker_report_at(&B, "openai", LT_BRK_SUCCESS, 0, 1100);
	/* the dead probe's place is held until the round's deadline, not forever */
	CHECK_EQ(allow("openai", 1000 + POL.probe_timeout_ms - 1, &v), 0);
	CHECK_EQ(allow("openai", 1000 + POL.probe_timeout_ms, &v), 1);
	CHECK_EQ(v.probe, 1);
	CHECK_EQ(allow("openai", 1000 + POL.probe_timeout_ms, &v), 0); /* one re-issued */
	lt_breaker_report_at(&B, "openai", LT_BRK_SUCCESS, 0, 1600);
	CHECK_EQ(state_of("openai"), LT_BRK_CLOSED);
}

/*
 * Processes hammer one breaker with every outcome and are killed at random
 * instructions: the word is always a valid state, and the breaker still
 * recovers by the rules alone (no reset).
 */
static void killed_at_any_instruction_leaves_a_working_breaker(void)
{
	static const enum lt_brk_outcome o[] = { LT_BRK_SUCCESS, LT_BRK_FAIL_5XX,
						 LT_BRK_RATE_LIMITED, LT_BRK_SUCCESS };
	struct lt_brk_verdict v;
	struct lt_brk_info in;
	pid_t pid[3];
	int round, k, st;
	uint64_t t;

	fresh();
	for (round = 0; round < 5; round++) {
		for (k = 0; k < 3; k++) {
			pid[k] = fork();
			if (pid[k] == 0) {
				unsigned seed = (unsigned)getpid();

				/* bounded: ends by itself should the parent die first */
				for (t = 0; t < 50000000; t++) {
					lt_breaker_allow_at(&B, "openai", t, &v);
					lt_breaker_report_at(&B, "openai", o[rand_r(&seed) & 3],
							     rand_r(&seed) % 3000, t);
				}
				_exit(0);
			}
		}
		usleep(20000 + (useconds_t)round * 7000);
		for (k = 0; k < 3; k++) {
			kill(pid[k], SIGKILL);
			waitpid(pid[k], &st, 0);
		}
		CHECK(!lt_breaker_get(&B, "openai", &in));
		CHECK(in.state <= LT_BRK_HALF_OPEN);
		if (in.state == LT_BRK_HALF_OPEN)
			CHECK(in.issued >= 1 && in.issued <= POL.probes &&
			      in.succeeded < POL.probes);
		if (in.state == LT_BRK_CLOSED)
			CHECK(!in.issued && !in.succeeded && !in.t_ms &&
			      in.failures < POL.fail_threshold);
	}
	/* far in the future every deadline is over: probes, successes, closed */
	t = 1ULL << 40;
	for (k = 0; k < 64 && state_of("openai") != LT_BRK_CLOSED; k++) {
		if (allow("openai", t, &v) == 1)
			lt_breaker_report_at(&B, "openai", LT_BRK_SUCCESS, 0, t);
		else
			t += 10000;
	}
	CHECK_EQ(state_of("openai"), LT_BRK_CLOSED);
}

static void retry_after_headers_in_ms(void)
{
	CHECK_EQ(lt_breaker_retry_after_ms("20", NULL, NULL, NULL), 20000);
	CHECK_EQ(lt_breaker_retry_after_ms(" 1.5 ", NULL, NULL, NULL), 1500);
	CHECK_EQ(lt_breaker_retry_after_ms(NULL, "250", NULL, NULL), 250);
	CHECK_EQ(lt_breaker_retry_after_ms(NULL, NULL, "6m0s", NULL), 360000);
	CHECK_EQ(lt_breaker_retry_after_ms(NULL, NULL, "1h2m3.5s", NULL), 3723500);
	CHECK_EQ(lt_breaker_retry_after_ms(NULL, NULL, "20ms", "1s"), 1000); /* the largest */
	CHECK_EQ(lt_breaker_retry_after_ms("1", "1500", "3s", "2s"), 3000);
	CHECK_EQ(lt_breaker_retry_after_ms("soon", "-5", "6x", "ms"), 0); /* ignored */
	CHECK_EQ(lt_breaker_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", NULL, NULL, NULL), 0);
	CHECK_EQ(lt_breaker_retry_after_ms("99999999", NULL, NULL, NULL), 24ULL * 3600 * 1000);
	CHECK_EQ(lt_breaker_retry_after_ms(NULL, NULL, NULL, NULL), 0);
}

int main(void)
{
	tab = shared_tab(LT_MAX_BREAKERS);
	if (!tab) {
		printf("Bail out! mmap\n");
		return 1;
	}
	RUN(closed_counts_consecutive_failures_and_a_success_clears_them);
	RUN(closed_to_open_at_the_threshold_for_each_failure_kind);
	RUN(open_denies_until_the_recovery_timeout_and_says_until);
	RUN(open_to_half_open_after_recovery_with_bounded_probes);
	RUN(half_open_closes_when_every_probe_succeeded);
	RUN(half_open_failure_opens_again);
	RUN(provider_429_opens_at_once_for_its_own_retry_after);
	RUN(reset_closes_from_any_state);
	RUN(policy_in_the_slot_overrides_the_default);
	RUN(names_are_checked_and_a_full_window_fails_open);
	RUN(same_hash_other_name_is_probed_past);
	RUN(a_claim_left_unnamed_is_completed_by_the_next_user);
	RUN(bitfield_view_matches_the_word);
	RUN(two_processes_share_one_state);
	RUN(probe_killed_mid_request_does_not_wedge_half_open);
	RUN(killed_at_any_instruction_leaves_a_working_breaker);
	RUN(retry_after_headers_in_ms);
	unshare_tab(tab, LT_MAX_BREAKERS);
	return lt_t_done();
}
