// SPDX-License-Identifier: MIT
/*
 * test_escal.c - lib/escal.c, escalation to the kernel: the strike and TTL
 * arithmetic (doubling, cap, decay), what counts as ignoring a Retry-After,
 * the window, the slots of a bounded table, and two processes counting into
 * one window. The table is MAP_SHARED anonymous memory laid out as the
 * lt_escal map (no BPF needed); tests/netns/test_gw_escalation.sh runs the
 * same code on the pin with XDP dropping the banned source.
 */
#include <errno.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "escal.h"
#include "lt_test.h"

#define S 1000ULL /* ms */

static const struct lt_esc_policy POL = {
	.rejections = 5,
	.window_ms = 10 * S,
	.ttl_ms = 30 * S,
	.max_ttl_ms = 3600 * S,
	.decay_ms = 600 * S,
};

static struct lt_esc_slot *tab;
static struct lt_escal E;

static void fresh(__u32 n)
{
	memset(tab, 0, LT_ESC_SLOTS * sizeof(*tab));
	lt_escal_init_mem(&E, tab, n);
}

static void addr_of(__u8 a[16], unsigned host)
{
	memset(a, 0, 16);
	a[10] = a[11] = 0xff;
	a[12] = 10;
	a[13] = (__u8)(host >> 16);
	a[14] = (__u8)(host >> 8);
	a[15] = (__u8)host;
}

/* A 429 arriving at arrival, answered at now, announcing wait. */
static struct lt_esc_verdict rej(const struct lt_esc_policy *p, const __u8 a[16], __u64 arrival,
				 __u64 now, __u64 wait)
{
	struct lt_esc_verdict v;

	CHECK_EQ(lt_escal_rejected(&E, p, a, arrival, now, wait, &v), 0);
	return v;
}

static void ttl_doubles_per_strike_and_stops_at_the_cap(void)
{
	static const __u64 want[] = { 0, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600 };
	struct lt_esc_policy p = POL;

	for (__u32 s = 1; s < sizeof(want) / sizeof(want[0]); s++)
		CHECK_EQ(lt_esc_ttl_ms(&POL, s), want[s] * S);
	CHECK_EQ(lt_esc_ttl_ms(&POL, 65535), 3600 * S);
	CHECK_EQ(lt_esc_ttl_ms(&POL, 0), 30 * S); /* never below the first */
	/* near the top of the range: no overflow, no shift past 63 bits */
	p.ttl_ms = 1ULL << 62;
	p.max_ttl_ms = ~0ULL;
	CHECK_EQ(lt_esc_ttl_ms(&p, 2), 1ULL << 63);
	CHECK_EQ(lt_esc_ttl_ms(&p, 3), ~0ULL);
	CHECK_EQ(lt_esc_ttl_ms(&p, 200), ~0ULL);
	p.ttl_ms = p.max_ttl_ms = 5 * S;
	CHECK_EQ(lt_esc_ttl_ms(&p, 7), 5 * S);
}

static void strikes_decay_one_per_period_after_the_ban_ended(void)
{
	const __u64 end = 100 * S, d = POL.decay_ms;

	CHECK_EQ(lt_esc_decayed(3, end, end - 1, d), 3); /* the ban still runs */
	CHECK_EQ(lt_esc_decayed(3, end, end, d), 3);
	CHECK_EQ(lt_esc_decayed(3, end, end + d - 1, d), 3);
	CHECK_EQ(lt_esc_decayed(3, end, end + d, d), 2);
	CHECK_EQ(lt_esc_decayed(3, end, end + 2 * d + d / 2, d), 1);
	CHECK_EQ(lt_esc_decayed(3, end, end + 3 * d, d), 0);
	CHECK_EQ(lt_esc_decayed(3, end, ~0ULL, d), 0);
	CHECK_EQ(lt_esc_decayed(0, end, end + 1, d), 0);
	CHECK_EQ(lt_esc_decayed(4, end, end + 1, 0), 0); /* no decay period: forgotten at once */
}

static void a_client_that_ignores_retry_after_is_banned_after_n(void)
{
	struct lt_esc_verdict v;
	struct lt_esc_slot s;
	__u8 a[16];
	__u64 t = 1000 * S;

	fresh(LT_ESC_SLOTS);
	addr_of(a, 1);
	/* the first 429 announces a wait: nothing was ignored yet */
	v = rej(&POL, a, t - 1, t, 500);
	CHECK(v.tracked && !v.counted && !v.ban);
	for (unsigned i = 1; i <= POL.rejections; i++) {
		/* straight back, 1 ms later: inside the announced wait */
		v = rej(&POL, a, t + i, t + i, 500);
		CHECK(v.counted);
		CHECK_EQ(v.count, i);
		CHECK_EQ(v.ban, i == POL.rejections);
	}
	CHECK_EQ(v.strikes, 1);
	CHECK_EQ(v.ttl_ms, POL.ttl_ms);
	CHECK_EQ(lt_escal_get(&E, a, &s), 0);
	CHECK_EQ(s.bans, 1);
	CHECK(!memcmp(s.addr, a, 16));
	/* the offence is spent: the next one starts a new count */
	v = rej(&POL, a, t + 10, t + 10, 500);
	CHECK(v.counted && v.count == 1 && !v.ban);
}

static void a_client_that_waits_as_told_is_never_counted(void)
{
	struct lt_esc_verdict v;
	__u8 a[16];
	__u64 t = 1000 * S, wait = 1;

	fresh(LT_ESC_SLOTS);
	addr_of(a, 2);
	/* thousands of 429s, every retry exactly when told, waits from 1 ms to ~2 s */
	for (unsigned i = 0; i < 5000; i++) {
		v = rej(&POL, a, t, t + 1, wait);
		CHECK(v.tracked && !v.counted && !v.ban);
		t = t + 1 + wait;
		wait = (wait * 7 + 3) % 2000 + 1;
	}
}

static void the_earliest_wait_of_a_quiet_period_holds(void)
{
	struct lt_esc_verdict v;
	__u8 a[16];
	__u64 t = 1000 * S;

	fresh(LT_ESC_SLOTS);
	addr_of(a, 3);
	/* two API keys behind one address: key A must wait 60 s, key B 200 ms */
	v = rej(&POL, a, t - 10, t, 60 * S);
	v = rej(&POL, a, t - 5, t + 100, 200);
	CHECK(!v.counted); /* B's request was sent before A's 429 */
	/* B comes back when told (t + 300): not counted, and a new quiet period */
	v = rej(&POL, a, t + 300, t + 301, 200);
	CHECK(!v.counted);
	/* A comes back when told: not counted either */
	v = rej(&POL, a, t + 60 * S, t + 60 * S, 60 * S);
	CHECK(!v.counted);
	/* requests sent before any 429 reached the client are not counted */
	v = rej(&POL, a, t + 60 * S - 5, t + 60 * S + 1, 60 * S);
	CHECK(!v.counted);
}

static void counted_429s_spread_beyond_the_window_do_not_ban(void)
{
	struct lt_esc_policy p = POL;
	struct lt_esc_verdict v;
	__u8 a[16];
	__u64 t = 1000 * S;

	p.rejections = 3;
	p.window_ms = 1 * S;
	fresh(LT_ESC_SLOTS);
	addr_of(a, 4);
	rej(&p, a, t, t, 100 * S); /* a long wait: everything after it ignores it */
	v = rej(&p, a, t + 10, t + 10, 100 * S);
	CHECK(v.counted && v.count == 1);
	v = rej(&p, a, t + 600, t + 600, 100 * S);
	CHECK_EQ(v.count, 2);
	v = rej(&p, a, t + 1010, t + 1010, 100 * S); /* the window from t + 10 is over */
	CHECK(v.counted && v.count == 1 && !v.ban);
	v = rej(&p, a, t + 1500, t + 1500, 100 * S);
	v = rej(&p, a, t + 2000, t + 2000, 100 * S);
	CHECK(v.count == 3 && v.ban);
}

/* Bans a (counted 429s from now), returns the verdict of the one that banned. */
static struct lt_esc_verdict offend(const __u8 a[16], __u64 now)
{
	struct lt_esc_verdict v = { 0 };

	rej(&POL, a, now, now, 1 * S);
	for (unsigned i = 1; i <= POL.rejections; i++)
		v = rej(&POL, a, now + i, now + i, 1 * S);
	CHECK(v.ban);
	return v;
}

static void repeat_offences_double_and_quiet_sources_decay(void)
{
	struct lt_esc_verdict v;
	__u8 a[16];
	__u64 t = 1000 * S;

	fresh(LT_ESC_SLOTS);
	addr_of(a, 5);
	v = offend(a, t);
	CHECK_EQ(v.strikes, 1);
	CHECK_EQ(v.ttl_ms, 30 * S);
	t += v.ttl_ms + 10; /* let back in, and at it again at once */
	v = offend(a, t);
	CHECK_EQ(v.strikes, 2);
	CHECK_EQ(v.ttl_ms, 60 * S);
	t += v.ttl_ms + 10;
	v = offend(a, t);
	CHECK_EQ(v.strikes, 3);
	CHECK_EQ(v.ttl_ms, 120 * S);
	/* one decay period of good behaviour after the ban: one strike forgotten */
	t += v.ttl_ms + POL.decay_ms;
	v = offend(a, t);
	CHECK_EQ(v.strikes, 3); /* 3 - 1 + 1 */
	CHECK_EQ(v.ttl_ms, 120 * S);
	/* quiet for long enough: starts over */
	t += v.ttl_ms + 3 * POL.decay_ms;
	v = offend(a, t);
	CHECK_EQ(v.strikes, 1);
	CHECK_EQ(v.ttl_ms, 30 * S);
	/* the cap */
	for (int i = 0; i < 12; i++) {
		t += v.ttl_ms + 1;
		v = offend(a, t);
	}
	CHECK_EQ(v.strikes, 13);
	CHECK_EQ(v.ttl_ms, POL.max_ttl_ms);
}

static void sources_are_separate_and_the_table_is_bounded(void)
{
	struct lt_esc_verdict v;
	unsigned tracked = 0, i;
	__u8 a[16], b[16];
	__u64 t = 1000 * S;

	/* 8 slots, 7 for sources (slot 0 is the seed) */
	fresh(8);
	for (i = 0; i < 100; i++) {
		addr_of(a, 100 + i);
		v = rej(&POL, a, t, t, 5 * S);
		tracked += v.tracked;
	}
	CHECK(tracked >= 4 && tracked <= 7); /* the rest: untracked, never a crash */
	CHECK(tab[0].tag != 0); /* the seed */
	/* two sources never share a count */
	fresh(LT_ESC_SLOTS);
	addr_of(a, 6);
	addr_of(b, 7);
	rej(&POL, a, t, t, 5 * S);
	rej(&POL, b, t, t, 5 * S);
	for (i = 1; i < POL.rejections; i++)
		CHECK(!rej(&POL, a, t + i, t + i, 5 * S).ban);
	v = rej(&POL, b, t + 9, t + 9, 5 * S);
	CHECK(v.counted && v.count == 1 && !v.ban);
	/* a full window of quiet sources: a new source takes the slot of one */
	fresh(8);
	for (i = 0; i < 100; i++) {
		addr_of(a, 100 + i);
		rej(&POL, a, t, t, 5 * S);
	}
	addr_of(a, 999);
	v = rej(&POL, a, t + 60 * S, t + 60 * S, 5 * S);
	CHECK(v.tracked && !v.counted);
}

static void bad_policies_are_refused(void)
{
	struct lt_esc_policy p = POL;
	struct lt_esc_verdict v;
	__u8 a[16];

	fresh(LT_ESC_SLOTS);
	addr_of(a, 8);
	p.rejections = 0;
	CHECK_EQ(lt_escal_rejected(&E, &p, a, 1, 2, 3, &v), -EINVAL);
	p = POL;
	p.max_ttl_ms = p.ttl_ms - 1;
	CHECK_EQ(lt_escal_rejected(&E, &p, a, 1, 2, 3, &v), -EINVAL);
	p = POL;
	p.window_ms = 0;
	CHECK_EQ(lt_escal_rejected(&E, &p, a, 1, 2, 3, &v), -EINVAL);
	/* a ban without the pins: an error, not a crash */
	v.ttl_ms = 1;
	v.strikes = 1;
	CHECK_EQ(lt_escal_ban(&E, a, &v, NULL), -EBADF);
}

static void two_processes_count_into_one_window(void)
{
	struct lt_esc_policy p = POL;
	struct lt_esc_slot s;
	__u8 a[16];
	pid_t pid[2];
	int k, st;

	p.rejections = 100;
	p.window_ms = 1ULL << 30;
	fresh(LT_ESC_SLOTS);
	addr_of(a, 9);
	/* the longest wait: every later 429 ignored it */
	rej(&p, a, 1, 1, LT_ESC_WAIT_MAX_MS);
	for (k = 0; k < 2; k++) {
		pid[k] = fork();
		if (pid[k] == 0) {
			struct lt_esc_verdict v;
			int bad = 0;

			for (int i = 0; i < 5000; i++)
				bad |= lt_escal_rejected(&E, &p, a, 2, 3, 1000, &v) || !v.counted;
			_exit(bad);
		}
	}
	for (k = 0; k < 2; k++) {
		waitpid(pid[k], &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	/* 10000 counted 429s, one ban per 100 of them: exactly 100, none lost, none twice */
	CHECK_EQ(lt_escal_get(&E, a, &s), 0);
	CHECK_EQ(s.bans, 100);
	CHECK_EQ(s.win & LT_ESC_COUNT_MAX, 0);
	CHECK_EQ(s.strk & LT_ESC_STRIKES_MAX, 100);
}

int main(void)
{
	void *p = mmap(NULL, LT_ESC_SLOTS * sizeof(struct lt_esc_slot), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		printf("Bail out! mmap\n");
		return 1;
	}
	tab = p;
	RUN(ttl_doubles_per_strike_and_stops_at_the_cap);
	RUN(strikes_decay_one_per_period_after_the_ban_ended);
	RUN(a_client_that_ignores_retry_after_is_banned_after_n);
	RUN(a_client_that_waits_as_told_is_never_counted);
	RUN(the_earliest_wait_of_a_quiet_period_holds);
	RUN(counted_429s_spread_beyond_the_window_do_not_ban);
	RUN(repeat_offences_double_and_quiet_sources_decay);
	RUN(sources_are_separate_and_the_table_is_bounded);
	RUN(bad_policies_are_refused);
	RUN(two_processes_count_into_one_window);
	munmap(p, LT_ESC_SLOTS * sizeof(struct lt_esc_slot));
	return lt_t_done();
}
