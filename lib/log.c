// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
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
