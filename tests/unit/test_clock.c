// SPDX-License-Identifier: MIT
/*
 * test_clock.c - the tick clock's calibration (agent/clock.c) on synthetic
 * probe readings: for each HZ, two jiffies edges as the probes would see
 * them (brackets of a few us, the tick interrupt late by up to 60 us). The
 * derivation must name the exact HZ and the kernel's TICK_NSEC, including
 * HZ values that are not 100/250/300/1000.
 */
#include <errno.h>
#include "lt_test.h"
#include "clock.h"

#define MS 1000000ULL
#define US 1000ULL

/* Edges of an ideal tick stream from t0, seen late by lat, bracketed. */
static struct lt_jiffy_edge edge(__u64 t0, __u64 tick, __u64 n, __u64 j0, __u64 lat, __u64 before,
				 __u64 after)
{
	__u64 seen = t0 + n * tick + lat;

	return (struct lt_jiffy_edge){ .k_before = seen - before,
				       .k_after = seen + after,
				       .j = j0 + n };
}

static void tick_nsec_matches_the_kernel_formula(void)
{
	CHECK_EQ(lt_tick_nsec(100), 10000000);
	CHECK_EQ(lt_tick_nsec(250), 4000000);
	CHECK_EQ(lt_tick_nsec(300), 3333333);
	CHECK_EQ(lt_tick_nsec(1000), 1000000);
	CHECK_EQ(lt_tick_nsec(1024), 976563); /* (1e9 + 512) / 1024 */
	CHECK_EQ(lt_tick_nsec(128), 7812500);
}

static void derives_exact_tick_for_any_integer_hz(void)
{
	static const struct {
		__u32 hz;
		__u64 interval_ns; /* between the two edges */
	} rows[] = {
		{ 100, 250 * MS },   { 250, 250 * MS },	  { 300, 250 * MS }, { 1000, 250 * MS },
		{ 1024, 250 * MS },  { 128, 250 * MS },	  { 24, 250 * MS },  { 32, 250 * MS },
		{ 48, 250 * MS },    { 64, 250 * MS },	  { 512, 250 * MS }, { 1200, 250 * MS },
		{ 2000, 1000 * MS }, { 4000, 1000 * MS }, { 10, 1000 * MS },
	};
	/* latency of each edge's tick interrupt, and the probe brackets */
	static const __u64 lat[][2] = {
		{ 0, 0 }, { 60 * US, 0 }, { 0, 60 * US }, { 7 * US, 41 * US }
	};
	unsigned int r, l;

	for (r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		__u64 tick = lt_tick_nsec(rows[r].hz), n = rows[r].interval_ns / tick;

		for (l = 0; l < sizeof(lat) / sizeof(lat[0]); l++) {
			__u64 t0 = 5000 * MS + 123457, npj = 0, base;
			struct lt_jiffy_edge e0 = edge(t0, tick, 0, 4294667296ULL, lat[l][0],
						       2 * US, 1 * US),
					     e1 = edge(t0, tick, n, 4294667296ULL, lat[l][1],
						       15 * US, 3 * US);
			__u32 hz = 0;
			int ret = lt_clock_derive(&e0, &e1, 100 * US, &npj, &hz);

			if (ret || hz != rows[r].hz || npj != tick)
				printf("#   HZ=%u latency %llu/%llu us: ret %d, HZ %u, tick %llu\n",
				       rows[r].hz, (unsigned long long)(lat[l][0] / US),
				       (unsigned long long)(lat[l][1] / US), ret, hz,
				       (unsigned long long)npj);
			CHECK_EQ(ret, 0);
			CHECK_EQ(hz, rows[r].hz);
			CHECK_EQ(npj, tick);
			/* the base is an ideal edge to within the brackets: never a tick off */
			base = lt_clock_base(&e0, &e1, tick);
			CHECK(base + 15 * US >= t0 + n * tick);
			CHECK(base <= t0 + n * tick + 60 * US);
		}
	}
}

/* Too short an interval for the HZ: two candidates fit, so it says so. */
static void ambiguous_measurement_is_refused(void)
{
	__u64 tick = lt_tick_nsec(4000), npj = 0;
	struct lt_jiffy_edge e0 = edge(1000 * MS, tick, 0, 1000, 0, US, US),
			     e1 = edge(1000 * MS, tick, 1000, 1000, 0, US, US); /* 250 ms */
	__u32 hz = 0;

	CHECK_EQ(lt_clock_derive(&e0, &e1, 100 * US, &npj, &hz), -ERANGE);
	CHECK_EQ(lt_clock_derive(&e1, &e0, 100 * US, &npj, &hz), -EINVAL);
	CHECK_EQ(lt_clock_derive(&e0, &e0, 100 * US, &npj, &hz), -EINVAL);
}

int main(void)
{
	RUN(tick_nsec_matches_the_kernel_formula);
	RUN(derives_exact_tick_for_any_integer_hz);
	RUN(ambiguous_measurement_is_refused);
	return lt_t_done();
}
