/* SPDX-License-Identifier: MIT */
/*
 * admit.h - admission of one gateway request over all of its limits at once,
 * and its settlement when the response ends (leaky-gateway).
 *
 * A request names up to LT_ADMIT_MAX limits, each a bucket key (lt_bucket_key)
 * and a cost: the API key's request bucket (cost 1), the key's token bucket,
 * the user's token bucket or the org's, the provider-wide pool (token costs:
 * the reservation, the request's worst case). lt_admit() consumes them in
 * order with lib/decide.c, each one CAS on the shared mmapped lt_slots:
 *   - all admit: the request holds a reservation (and a lease, lib/lease.h);
 *   - one does not: the ones already taken are undone (lt_slot_refund of the
 *     whole reservation, at once, so the earlier buckets are exactly as
 *     before unless they leaked meanwhile) and the verdict names the limit
 *     that denied, with its view.
 * No lock and no system call on the way (a key seen before resolves from
 * lib/resolve.c's cache); every loop is bounded.
 *
 * Never fits. A cost above a limit's capacity can never be admitted: that is
 * LT_ADM_NEVER_FITS (answer 4xx), never 429, even when another limit denied
 * first (a 429 would be retried forever). A denial looks at the limits after
 * the denying one without consuming them, to find such a limit, and reports
 * the denying limit whose wait is longest (the client's true wait).
 *
 * Settling. lt_admit_settle() takes the real usage (tokens) and, on every
 * token-unit limit, gives back cost - used through lt_slot_refund (only what
 * the reservation still adds to the level: never more than has not leaked),
 * or, when used > cost, charges the excess with lt_slot_charge: a debt that
 * may take the level above capacity (up to 2x). Why a forced charge and not a
 * plain consume that may fail: with the safe reservation bound (the default)
 * usage never exceeds the reservation, so admitted usage <= admitted
 * reservations <= C + R*t exactly, and this path never runs; with an
 * estimate that can be exceeded, the forced charge keeps every token really
 * used in the bucket (later admissions wait for it to leak), whereas a
 * failing consume would let the excess go uncounted on every request. The
 * request-unit limit keeps its cost 1. Refunds first, then the lease goes:
 * a kill -9 in between leaves a lease the agent settles by charging in full
 * (nothing is refunded twice).
 */
#ifndef LT_GW_ADMIT_H
#define LT_GW_ADMIT_H

#include <stddef.h>
#include "decide.h"
#include "lease.h"
#include "resolve.h"

#define LT_ADMIT_MAX LT_LEASE_RES_MAX /* limits per request */
#define LT_ADMIT_RESOLVE_TRIES 3 /* LT_FREED -> forget -> resolve again, at most */

/* What a limit's cost counts. */
enum lt_admit_unit {
	LT_UNIT_TOKENS = 0, /* the reservation; settled to the real usage */
	LT_UNIT_REQUESTS = 1, /* 1 per request; kept as is by lt_admit_settle */
};

/* One limit of a request. */
struct lt_admit_limit {
	const char *key; /* bucket key, as lt_bucket_key builds it */
	const char *policy; /* name clients see (RateLimit-Policy, messages), e.g. "key-requests" */
	__u64 cost; /* tokens (requests for LT_UNIT_REQUESTS) */
	__u32 unit; /* enum lt_admit_unit */
};

/* How buckets are found: lib/resolve.c by default (lt_admitter_init). */
struct lt_admit_resolver {
	int (*resolve)(void *ctx, const char *key, struct lt_keyidx_val *out, char *err,
		       size_t errlen);
	void (*forget)(void *ctx, const char *key);
	void *ctx;
};

struct lt_admitter {
	struct lt_decide_maps m; /* mmapped lt_slots, lt_rates, lt_usage */
	struct lt_admit_resolver r;
	struct lt_leases *leases; /* NULL: no leases (tests) */
	__u64 lease_ns; /* a request's lease deadline: admission + lease_ns */
	/* relaxed counters */
	unsigned long long admitted, limited, never_fits, unavailable, excess_charged,
		excess_uncharged;
};

/*
 * m: the mapped maps; res: a resolver of lib/resolve.c (lt_resolver_init);
 * leases: lt_leases_open'ed, or NULL; lease_ns: how long after admission a
 * dead gateway's lease may be settled (the upstream's total timeout plus a
 * margin: a live request is never settled, whatever the deadline).
 */
void lt_admitter_init(struct lt_admitter *a, const struct lt_decide_maps *m,
		      struct lt_resolver *res, struct lt_leases *leases, __u64 lease_ns);

enum lt_admit_verdict {
	LT_ADM_OK = 0, /* all admitted: the reservation is held */
	LT_ADM_LIMITED = 1, /* 429: limits[which] does not fit now; view.retry_after_* */
	LT_ADM_NEVER_FITS = 2, /* 4xx: cost > limits[which]'s capacity, never admissible */
	LT_ADM_UNAVAILABLE = 3, /* 503: contended, bucket not resolvable now, lease table full */
	LT_ADM_NO_QUOTA = 4, /* 403: no limit governs limits[which]'s key */
	LT_ADM_BAD_REQUEST = 5, /* 500: a key that is not a bucket key, n out of range */
};

/* A request's reservation: hold it until lt_admit_settle / lt_admit_cancel. */
struct lt_reservation {
	__u32 n; /* limits */
	__u32 lease; /* lease id when has_lease */
	int has_lease;
	struct lt_slot_seen seen[LT_ADMIT_MAX]; /* lt_slot_refund's records */
	struct lt_keyidx_val kv[LT_ADMIT_MAX]; /* (slot, gen) each was decided on */
	__u64 cost[LT_ADMIT_MAX]; /* tokens / requests reserved */
	__u32 unit[LT_ADMIT_MAX];
};

struct lt_admit_result {
	int verdict; /* enum lt_admit_verdict */
	int which; /* the limit that denied (LIMITED, NEVER_FITS, NO_QUOTA), or on OK the
		    * tightest one (least remaining for its capacity); -1 if none */
	struct lt_view view; /* views[which], or zeroes */
	struct lt_view views[LT_ADMIT_MAX]; /* as decided; denied: as peeked at the cost */
	int decided[LT_ADMIT_MAX]; /* 1 where views[i] is meaningful */
	__u64 retry_after_ns; /* LIMITED / UNAVAILABLE: the true wait (never early) */
	char err[192]; /* UNAVAILABLE, NO_QUOTA, BAD_REQUEST: why, for logs */
};

/*
 * Admits one request over limits[0..n): fills *res (on LT_ADM_OK) and *out.
 * now_ns: CLOCK_MONOTONIC, read once by the caller. Returns out->verdict.
 */
int lt_admit(struct lt_admitter *a, const struct lt_admit_limit *limits, __u32 n, __u64 now_ns,
	     struct lt_reservation *res, struct lt_admit_result *out);

/* What lt_admit_settle did, per limit (tokens). */
struct lt_settle_result {
	__u64 refunded[LT_ADMIT_MAX]; /* given back (<= cost - used: leaked tokens are gone) */
	__u64 charged[LT_ADMIT_MAX]; /* excess charged above the reservation */
	__u64 uncharged[LT_ADMIT_MAX]; /* excess beyond the debt cap, or on a lost bucket */
};

/*
 * The response ended with used tokens (LT_UNIT_TOKENS limits; request limits
 * keep their cost): refund or charge the difference, then give the lease
 * back. The reservation is spent afterwards (a second call does nothing).
 * out may be NULL.
 */
void lt_admit_settle(struct lt_admitter *a, struct lt_reservation *res, __u64 used_tokens,
		     __u64 now_ns, struct lt_settle_result *out);

/*
 * The request never reached the provider (the gateway failed before sending
 * it): every limit is undone, the request ones too, and the lease given back.
 */
void lt_admit_cancel(struct lt_admitter *a, struct lt_reservation *res, __u64 now_ns);

#endif
