/* SPDX-License-Identifier: MIT */
/*
 * lt_test.h - a minimal TAP producer for the C test binaries. Each binary
 * prints "ok N - name" / "not ok N - name" lines; tests/run.sh counts them.
 * A check that fails prints where and why, and fails the current test.
 */
#ifndef LT_TEST_H
#define LT_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

static int lt_t_num, lt_t_failed_total, lt_t_cur_failed;
static const char *lt_t_name;

#define CHECK(cond)                                                                         \
	do {                                                                                \
		if (!(cond)) {                                                              \
			printf("#   %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
			lt_t_cur_failed = 1;                                                \
		}                                                                           \
	} while (0)

#define CHECK_EQ(a, b)                                                                           \
	do {                                                                                     \
		unsigned long long _a = (unsigned long long)(a), _b = (unsigned long long)(b);   \
		if (_a != _b) {                                                                  \
			printf("#   %s:%d: %s == %s failed: %llu != %llu\n", __FILE__, __LINE__, \
			       #a, #b, _a, _b);                                                  \
			lt_t_cur_failed = 1;                                                     \
		}                                                                                \
	} while (0)

static inline void lt_t_begin(const char *name)
{
	lt_t_name = name;
	lt_t_cur_failed = 0;
}

static inline void lt_t_end(void)
{
	lt_t_num++;
	printf("%sok %d - %s\n", lt_t_cur_failed ? "not " : "", lt_t_num, lt_t_name);
	fflush(stdout);
	lt_t_failed_total += lt_t_cur_failed;
}

#define RUN(fn)                  \
	do {                     \
		lt_t_begin(#fn); \
		fn();            \
		lt_t_end();      \
	} while (0)

static inline int lt_t_done(void)
{
	printf("1..%d\n", lt_t_num);
	return lt_t_failed_total ? 1 : 0;
}

#endif /* LT_TEST_H */
