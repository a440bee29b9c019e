// SPDX-License-Identifier: MIT
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <linux/types.h>
#include <bpf/libbpf.h>
#include "log.h"

int lt_log_level = LT_LOG_INFO;
static __thread int lt_libbpf_quiet_depth;

static const char *const lt_level_names[] = { "error", "warn", "info", "debug", "trace" };

static void lt_vlog(int level, const char *fmt, va_list ap)
{
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s: ", when, ts.tv_nsec / 1000000, lt_level_names[level]);
	vfprintf(stderr, fmt, ap);
}

void lt_log_raw(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	lt_vlog(level, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int lt_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int lvl = level == LIBBPF_WARN ? LT_LOG_INFO :
		  level == LIBBPF_INFO ? LT_LOG_DEBUG :
					 LT_LOG_TRACE;

	if (lvl > lt_log_level || (lt_libbpf_quiet_depth && lt_log_level < LT_LOG_TRACE))
		return 0;
	lt_vlog(lvl, fmt, ap); /* libbpf's lines carry their own newline */
	return 0;
}

void lt_log_libbpf(void)
{
	libbpf_set_print(lt_libbpf_print);
}

void lt_log_libbpf_quiet(int on)
{
	lt_libbpf_quiet_depth += on ? 1 : -1;
}

/*
 * The rate limiter: a token bucket per kind, in a small table keyed by the
 * format string's address. Kinds past the table share its last entry, so a
 * flood of new kinds is limited too. A mutex is fine: a line is not on a
 * request's fast path, and this is what keeps it off the disk.
 */
#define LT_RL_KINDS 64

struct lt_rl_kind {
	const char *fmt;
	__u64 last_ns; /* CLOCK_MONOTONIC */
	double tokens; /* lines that may pass now */
	unsigned long long suppressed;
};

static struct lt_rl_kind lt_rl[LT_RL_KINDS];
static pthread_mutex_t lt_rl_lock = PTHREAD_MUTEX_INITIALIZER;

static __u64 lt_rl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static struct lt_rl_kind *lt_rl_find(const char *fmt, __u64 now)
{
	unsigned i;

	for (i = 0; i < LT_RL_KINDS - 1 && lt_rl[i].fmt && lt_rl[i].fmt != fmt; i++)
		;
	if (!lt_rl[i].fmt) {
		lt_rl[i].fmt = fmt;
		lt_rl[i].tokens = LT_LOG_RL_BURST;
		lt_rl[i].last_ns = now;
	}
	lt_rl[i].tokens += (double)(now - lt_rl[i].last_ns) / 1e9 * LT_LOG_RL_PER_SEC;
	if (lt_rl[i].tokens > LT_LOG_RL_BURST)
		lt_rl[i].tokens = LT_LOG_RL_BURST;
	lt_rl[i].last_ns = now;
	return &lt_rl[i];
}

static void lt_rl_summary(int level, struct lt_rl_kind *k)
{
	char what[64];

	snprintf(what, sizeof(what), "%s", k->fmt);
	what[strcspn(what, "%\n")] = '\0';
	lt_log_raw(level, "log: %llu more lines like \"%s...\" suppressed", k->suppressed, what);
	k->suppressed = 0;
}

void lt_log_vrl(const char *kind, int level, const char *fmt, va_list ap)
{
	struct lt_rl_kind *k;

	pthread_mutex_lock(&lt_rl_lock);
	k = lt_rl_find(kind, lt_rl_now());
	if (k->tokens < 1) {
		k->suppressed++;
		pthread_mutex_unlock(&lt_rl_lock);
		return;
	}
	k->tokens -= 1;
	if (k->suppressed)
		lt_rl_summary(level, k);
	lt_vlog(level, fmt, ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&lt_rl_lock);
}

void lt_log_rl(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	lt_log_vrl(fmt, level, fmt, ap);
	va_end(ap);
}

void lt_log_rl_flush(void)
{
	__u64 now = lt_rl_now();
	unsigned i;

	pthread_mutex_lock(&lt_rl_lock);
	for (i = 0; i < LT_RL_KINDS && lt_rl[i].fmt; i++) {
		struct lt_rl_kind *k = lt_rl_find(lt_rl[i].fmt, now);

		if (k->suppressed && k->tokens >= 1) {
			k->tokens -= 1;
			lt_rl_summary(LT_LOG_WARN, k);
		}
	}
	pthread_mutex_unlock(&lt_rl_lock);
}
