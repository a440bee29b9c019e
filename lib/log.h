/* SPDX-License-Identifier: MIT */
/* log.h - leveled logging for the user-space programs (redis serverLog style). */
#ifndef LT_LOG_H
#define LT_LOG_H

enum lt_log_level { LT_LOG_ERROR = 0, LT_LOG_WARN, LT_LOG_INFO, LT_LOG_DEBUG, LT_LOG_TRACE };

extern int lt_log_level;

void lt_log_raw(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The level is tested before the arguments are evaluated. */
#define lt_log(lvl, ...)                                \
	do {                                            \
		if ((lvl) <= lt_log_level)              \
			lt_log_raw((lvl), __VA_ARGS__); \
	} while (0)
#define log_error(...) lt_log(LT_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) lt_log(LT_LOG_WARN, __VA_ARGS__)
#define log_info(...) lt_log(LT_LOG_INFO, __VA_ARGS__)
#define log_debug(...) lt_log(LT_LOG_DEBUG, __VA_ARGS__)

/*
 * Rate-limited lines, for what a client can make happen at will (a slow or
 * abandoned connection, a flood of failing requests): each kind of line (its
 * format string) passes LT_LOG_RL_BURST lines, then LT_LOG_RL_PER_SEC a
 * second; the rest are counted, and the next line of that kind that passes
 * (or lt_log_rl_flush) says how many were suppressed.
 */
#define LT_LOG_RL_BURST 10
#define LT_LOG_RL_PER_SEC 1
#include <stdarg.h>
void lt_log_rl(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* kind: the format string of the line, or of the line it was made from */
void lt_log_vrl(const char *kind, int level, const char *fmt, va_list ap);
/* Reports every kind with suppressed lines whose bucket has room again. */
void lt_log_rl_flush(void);
#define log_error_rl(...)                                     \
	do {                                                  \
		if (LT_LOG_ERROR <= lt_log_level)             \
			lt_log_rl(LT_LOG_ERROR, __VA_ARGS__); \
	} while (0)
#define log_warn_rl(...)                                     \
	do {                                                 \
		if (LT_LOG_WARN <= lt_log_level)             \
			lt_log_rl(LT_LOG_WARN, __VA_ARGS__); \
	} while (0)

/* Routes libbpf's own output through lt_log, one level quieter. */
void lt_log_libbpf(void);

/*
 * Between lt_log_libbpf_quiet(1) and (0) this thread's libbpf warnings are
 * dropped (still shown at -vv): for probes whose failure is an answer, e.g.
 * "Parent Qdisc doesn't exists" from asking for a TC filter where there is none.
 */
void lt_log_libbpf_quiet(int on);

#endif
