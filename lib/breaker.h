/* SPDX-License-Identifier: MIT */
/*
 * breaker.h - circuit breakers per provider and per upstream service, shared
 * by every gateway process through the pinned, mmapped lt_breaker map
 * (liblt: the gateway decides and reports, the agent lists and resets).
 * The slot layout and the state word are in lt_abi.h (struct lt_breaker_val).
 *
 *   CLOSED     every request goes through. A failure (5xx, timeout,
 *              connection error, a stream that broke) adds one to the
 *              consecutive failures, a success clears them; at
 *              fail_threshold the breaker opens for recovery_ms. A provider
 *              429 opens it at once, for the provider's own Retry-After /
 *              x-ratelimit-reset-* (lt_breaker_retry_after_ms), recovery_ms
 *              when it gave none.
 *   OPEN       every request is refused until t_ms ("until"); the first
 *              request after that moves it to HALF_OPEN and is its first probe.
 *   HALF_OPEN  at most `probes` requests go through; when that many have
 *              succeeded it closes, and any failure opens it again. A probe
 *              that never reports (its process was killed: kill -9
 *              mid-request) holds its place only until the round's deadline,
 *              probe_timeout_ms after the round began: then the probes not
 *              answered are presumed lost and issued again. So HALF_OPEN never
 *              wedges; set probe_timeout_ms above the route's total timeout,
 *              or a slow live probe is doubled (never more than `probes`
 *              more per deadline).
 *
 * Concurrency: the state is one 64-bit word changed by CAS only, so any
 * process may be killed at any instruction and leaves either the old state
 * or the new one. Nothing here makes a system call (the clock is read with
 * clock_gettime, a vDSO call). A CLOSED breaker's allow, and a success while
 * CLOSED with no failures counted, only read the word: the common path
 * writes no shared cache line. CAS loops are bounded (LT_BRK_CAS_TRIES);
 * when they run out, allow answers "allowed" (a breaker protects the
 * provider, it is not a limit) and report drops the outcome.
 *
 * Names: 1..47 bytes of [A-Za-z0-9._:-]. The convention: a provider's
 * breaker is its provider name ("openai"), an upstream service's is
 * "svc:<name>". A name that finds no slot (LT_BREAKER_PROBES taken by other
 * names) is always allowed, and lt_breaker_allow says so (-ENOSPC).
 */
#ifndef LT_BREAKER_H
#define LT_BREAKER_H

#include <stddef.h>
#include <stdint.h>
#include "lt_abi.h"

/* What a finished request says about its upstream. Append-only (lt_breaker_val.last_cause). */
enum lt_brk_outcome {
	LT_BRK_SUCCESS = 0, /* any answer that is not a failure below (4xx included) */
	LT_BRK_FAIL_5XX = 1,
	LT_BRK_FAIL_TIMEOUT = 2,
	LT_BRK_FAIL_CONNECT = 3, /* connect refused/reset, DNS, TLS */
	LT_BRK_FAIL_STREAM = 4, /* the upstream broke a response mid-stream */
	LT_BRK_RATE_LIMITED = 5, /* provider 429: open for its retry-after */
	LT_BRK_RESET = 6, /* (last_cause only) reset by an operator */
	LT_BRK__OUTCOME_MAX,
};

/* Policy; a 0 field in a slot means the handle's default. */
struct lt_brk_policy {
	uint32_t fail_threshold; /* consecutive failures, 1..255 */
	uint32_t recovery_ms; /* ms OPEN before the first probe */
	uint32_t probes; /* HALF_OPEN probes, 1..63, all must succeed */
	uint32_t probe_timeout_ms; /* ms before an unanswered probe is re-issued */
};
#define LT_BRK_POLICY_DEFAULT                          \
	((struct lt_brk_policy){ .fail_threshold = 5,  \
				 .recovery_ms = 30000, \
				 .probes = 1,          \
				 .probe_timeout_ms = 60000 })

#define LT_BRK_CAS_TRIES 64

/* A process's view of the shared table. */
struct lt_breakers {
	struct lt_breaker_val *tab; /* mmapped lt_breaker (or test memory) */
	uint32_t n; /* slots, a power of two */
	size_t map_len; /* munmap length; 0 = not ours to unmap */
	struct lt_brk_policy dflt;
};

/* mmaps the lt_breaker map (an fd of the pin or the skeleton). -errno. */
int lt_breakers_open(struct lt_breakers *b, int map_fd, const struct lt_brk_policy *dflt);
/* Over memory the caller owns (tests: MAP_SHARED|MAP_ANONYMOUS); n a power of two. */
void lt_breakers_init_mem(struct lt_breakers *b, struct lt_breaker_val *tab, uint32_t n,
			  const struct lt_brk_policy *dflt);
void lt_breakers_close(struct lt_breakers *b);

/* 1 if name is a valid breaker name. */
int lt_breaker_name_ok(const char *name);

/* The answer of lt_breaker_allow. */
struct lt_brk_verdict {
	int allowed; /* 1: send the request (then report its outcome) */
	int probe; /* 1: it is a HALF_OPEN probe */
	enum lt_brk_state state; /* after the decision */
	uint64_t until_ms; /* denied: CLOCK_MONOTONIC ms when a request may go again */
	uint64_t retry_after_ms; /* denied: until_ms - now, for a 503's Retry-After */
};

/*
 * May a request go to name's upstream now? Returns v->allowed (1 or 0); a
 * name that is invalid (-EINVAL) or finds no slot (-ENOSPC) is allowed and
 * the error returned, so the caller can count it. The _at variants take
 * the time (CLOCK_MONOTONIC ms) from the caller: tests use a fake clock.
 */
int lt_breaker_allow(struct lt_breakers *b, const char *name, struct lt_brk_verdict *v);
int lt_breaker_allow_at(struct lt_breakers *b, const char *name, uint64_t now_ms,
			struct lt_brk_verdict *v);

/*
 * The outcome of a request that lt_breaker_allow let through. retry_after_ms
 * is read for LT_BRK_RATE_LIMITED only (0: recovery_ms). 0, or -EINVAL /
 * -ENOSPC / -EAGAIN (CAS tries exhausted: the outcome is dropped).
 */
int lt_breaker_report(struct lt_breakers *b, const char *name, enum lt_brk_outcome o,
		      uint64_t retry_after_ms);
int lt_breaker_report_at(struct lt_breakers *b, const char *name, enum lt_brk_outcome o,
			 uint64_t retry_after_ms, uint64_t now_ms);

/* Back to CLOSED with no failures (an operator's reset). 0 or -ENOENT / -EINVAL. */
int lt_breaker_reset(struct lt_breakers *b, const char *name);

/*
 * Claims name's slot if needed and sets its policy (0 fields: the readers'
 * defaults). Shared: every process sees it. 0 or -EINVAL / -ENOSPC.
 */
int lt_breaker_configure(struct lt_breakers *b, const char *name, const struct lt_brk_policy *p);

/* Claims name's slot (CLOSED) without touching its policy. 0 or -EINVAL / -ENOSPC. */
int lt_breaker_register(struct lt_breakers *b, const char *name);

/* A breaker as the agent lists it. */
struct lt_brk_info {
	char name[LT_BREAKER_NAME_LEN];
	enum lt_brk_state state;
	uint32_t failures, issued, succeeded;
	uint64_t t_ms; /* OPEN: until; HALF_OPEN: the probe round's deadline */
	uint64_t opened_at_ms, trips, denied;
	uint32_t last_cause; /* enum lt_brk_outcome */
	struct lt_brk_policy policy; /* effective (defaults filled in) */
};

/* Slot i's breaker: 0 and *out, or -ENOENT for a free slot. */
int lt_breaker_info(const struct lt_breakers *b, uint32_t i, struct lt_brk_info *out);
/* By name: 0 and *out, or -ENOENT. */
int lt_breaker_get(const struct lt_breakers *b, const char *name, struct lt_brk_info *out);

const char *lt_brk_state_name(unsigned state); /* "closed", "open", "half_open" */
const char *lt_brk_outcome_name(unsigned o);

/* CLOCK_MONOTONIC in ms: the breakers' time base. */
uint64_t lt_brk_now_ms(void);

/*
 * How long a provider's 429 asks us to stay away, in ms: the largest of
 * Retry-After (delta-seconds), retry-after-ms, and OpenAI's
 * x-ratelimit-reset-requests / -tokens durations ("1s", "6m0s", "20ms",
 * "1h2m3.5s"). Any argument may be NULL; unparseable values are ignored.
 * 0 when none says anything.
 */
uint64_t lt_breaker_retry_after_ms(const char *retry_after, const char *retry_after_ms,
				   const char *reset_requests, const char *reset_tokens);

#endif
