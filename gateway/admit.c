// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "admit.h"

#define LT_ADM_BUSY_RETRY_NS 1000000000ULL /* 503s say: retry in a second */

static int lt_adm_resolve(void *ctx, const char *key, struct lt_keyidx_val *out, char *err,
			  size_t errlen)
{
	return lt_bucket_resolve(ctx, key, out, err, errlen);
}

static void lt_adm_forget(void *ctx, const char *key)
{
	lt_bucket_forget(ctx, key);
}

void lt_admitter_init(struct lt_admitter *a, const struct lt_decide_maps *m,
		      struct lt_resolver *res, struct lt_leases *leases, __u64 lease_ns)
{
	memset(a, 0, sizeof(*a));
	a->m = *m;
	a->r = (struct lt_admit_resolver){ lt_adm_resolve, lt_adm_forget, res };
	a->leases = leases;
	a->lease_ns = lease_ns;
}

/*
 * One limit: resolve, decide; a bucket reclaimed under us (LT_FREED) is
 * forgotten and resolved again, a bounded number of times. Returns an
 * lt_verdict, or the resolver's -errno.
 */
static int lt_adm_one(struct lt_admitter *a, const struct lt_admit_limit *l, __u64 now,
		      struct lt_keyidx_val *kv, struct lt_slot_seen *seen, struct lt_view *v,
		      char *err, size_t errlen)
{
	int t, ret;

	for (t = 0; t < LT_ADMIT_RESOLVE_TRIES; t++) {
		ret = a->r.resolve(a->r.ctx, l->key, kv, err, errlen);
		if (ret)
			return ret < 0 ? ret : -EIO;
		ret = lt_decide_consume(&a->m, kv->slot, kv->gen, ~0U, l->cost, now, v, seen);
		if (ret != LT_FREED)
			return ret;
		a->r.forget(a->r.ctx, l->key);
	}
	snprintf(err, errlen, "bucket %.128s was reclaimed under %d decisions in a row", l->key,
		 LT_ADMIT_RESOLVE_TRIES);
	return LT_FREED;
}

/*
 * The view of limit l at its cost without consuming: 0, or -1 (not
 * resolvable or not readable now: left out of the answer).
 */
static int lt_adm_peek(struct lt_admitter *a, const struct lt_admit_limit *l, __u64 now,
		       struct lt_view *v)
{
	struct lt_keyidx_val kv;
	struct lt_slot_seen s;
	char err[64];
	int verdict;

	if (a->r.resolve(a->r.ctx, l->key, &kv, err, sizeof(err)))
		return -1;
	if (lt_slot_peek_owned(a->m.slots, a->m.rates, a->m.usage, kv.slot, kv.gen, ~0U, now, &s))
		return -1;
	if (!s.rate.period_ns)
		verdict = LT_ADMIT;
	else if (l->cost > lt_rate_capacity(&s.rate))
		verdict = LT_TOO_BIG;
	else
		verdict = lt_retry_after_ns(s.tat, now, &s.rate, l->cost) ? LT_DENY : LT_ADMIT;
	lt_view_fill(&s.rate, s.tat, now, l->cost, verdict, v);
	v->slot = kv.slot;
	return verdict;
}

/*
 * limits[i] denied: the answer is the denying limit with the longest wait,
 * unless some limit can never fit (then that one, as LT_ADM_NEVER_FITS).
 * Limits before i were admitted a moment ago (they fit); those after i are
 * peeked at their cost.
 */
static void lt_adm_denied(struct lt_admitter *a, const struct lt_admit_limit *lim, __u32 n, __u32 i,
			  __u64 now, struct lt_admit_result *out)
{
	__u32 j;
	int v;

	out->verdict = LT_ADM_LIMITED;
	out->which = (int)i;
	for (j = i + 1; j < n; j++) {
		v = lt_adm_peek(a, &lim[j], now, &out->views[j]);
		if (v < 0)
			continue;
		out->decided[j] = 1;
		if (v == LT_TOO_BIG) {
			out->verdict = LT_ADM_NEVER_FITS;
			out->which = (int)j;
			return;
		}
		if (v == LT_DENY &&
		    out->views[j].retry_after_ns > out->views[out->which].retry_after_ns)
			out->which = (int)j;
	}
}

/* a's remaining share of its capacity is below b's (exact, in 128 bits). */
static int lt_adm_tighter(const struct lt_view *a, const struct lt_view *b)
{
	return (unsigned __int128)a->remaining * b->capacity <
	       (unsigned __int128)b->remaining * a->capacity;
}

int lt_admit(struct lt_admitter *a, const struct lt_admit_limit *lim, __u32 n, __u64 now,
	     struct lt_reservation *res, struct lt_admit_result *out)
{
	__u32 i, k;
	int v = LT_ADMIT, ret;

	memset(out, 0, sizeof(*out));
	out->which = -1;
	res->n = 0;
	res->has_lease = 0;
	if (!n || n > LT_ADMIT_MAX) {
		snprintf(out->err, sizeof(out->err), "%u limits (1..%d)", n, LT_ADMIT_MAX);
		out->verdict = LT_ADM_BAD_REQUEST;
		return out->verdict;
	}
	if (a->leases) {
		/* the lease first: a request that holds tokens always has one */
		ret = lt_lease_take(a->leases, now, now + a->lease_ns, &res->lease);
		if (ret) {
			snprintf(out->err, sizeof(out->err),
				 "lease table full (%u requests in flight)", a->leases->n);
			out->verdict = LT_ADM_UNAVAILABLE;
			out->retry_after_ns = LT_ADM_BUSY_RETRY_NS;
			__atomic_fetch_add(&a->unavailable, 1, __ATOMIC_RELAXED);
			return out->verdict;
		}
		res->has_lease = 1;
	}
	for (i = 0; i < n; i++) {
		v = lt_adm_one(a, &lim[i], now, &res->kv[i], &res->seen[i], &out->views[i],
			       out->err, sizeof(out->err));
		out->decided[i] = v == LT_ADMIT || v == LT_DENY || v == LT_TOO_BIG;
		if (v != LT_ADMIT)
			break;
		res->cost[i] = lim[i].cost;
		res->unit[i] = lim[i].unit;
		res->n = i + 1;
		if (res->has_lease)
			lt_lease_record(a->leases, res->lease, i, &res->seen[i], res->kv[i].gen,
					lim[i].cost);
	}
	if (i == n) {
		out->verdict = LT_ADM_OK;
		for (k = 0; k < n; k++)
			if (!out->views[k].unlimited &&
			    (out->which < 0 || lt_adm_tighter(&out->views[k], &out->view)))
				out->which = (int)k, out->view = out->views[k];
		__atomic_fetch_add(&a->admitted, 1, __ATOMIC_RELAXED);
		return LT_ADM_OK;
	}
	/* all or nothing: take back what was taken, latest first */
	for (k = res->n; k-- > 0;)
		lt_decide_undo(&a->m, &res->seen[k], now);
	res->n = 0;
	if (res->has_lease)
		lt_lease_release(a->leases, res->lease);
	res->has_lease = 0;
	switch (v) {
	case LT_DENY:
		lt_adm_denied(a, lim, n, i, now, out);
		break;
	case LT_TOO_BIG:
		out->verdict = LT_ADM_NEVER_FITS;
		out->which = (int)i;
		break;
	case -ENOENT:
		out->verdict = LT_ADM_NO_QUOTA;
		out->which = (int)i;
		break;
	case -EINVAL:
		out->verdict = LT_ADM_BAD_REQUEST;
		out->which = (int)i;
		break;
	case LT_CONTENDED:
		snprintf(out->err, sizeof(out->err), "bucket %.128s is contended", lim[i].key);
		/* fall through */
	default: /* LT_FREED too often, agent down, -EACCES, ... */
		out->verdict = LT_ADM_UNAVAILABLE;
		out->which = (int)i;
		out->retry_after_ns = LT_ADM_BUSY_RETRY_NS;
		break;
	}
	if (out->verdict == LT_ADM_LIMITED)
		out->retry_after_ns = out->views[out->which].retry_after_ns;
	if (out->which >= 0 && out->decided[out->which])
		out->view = out->views[out->which];
	if (out->verdict == LT_ADM_LIMITED)
		__atomic_fetch_add(&a->limited, 1, __ATOMIC_RELAXED);
	else if (out->verdict == LT_ADM_NEVER_FITS)
		__atomic_fetch_add(&a->never_fits, 1, __ATOMIC_RELAXED);
	else if (out->verdict == LT_ADM_UNAVAILABLE)
		__atomic_fetch_add(&a->unavailable, 1, __ATOMIC_RELAXED);
	return out->verdict;
}

void lt_admit_settle(struct lt_admitter *a, struct lt_reservation *res, __u64 used, __u64 now,
		     struct lt_settle_result *out)
{
	struct lt_settle_result dummy;
	struct lt_slot_seen debt;
	__u64 excess, got;
	__u32 i;

	if (!out)
		out = &dummy;
	memset(out, 0, sizeof(*out));
	for (i = 0; i < res->n; i++) {
		if (res->unit[i] != LT_UNIT_TOKENS)
			continue;
		if (used < res->cost[i]) {
			out->refunded[i] =
				lt_decide_refund(&a->m, &res->seen[i], res->cost[i] - used, now);
			if (res->has_lease)
				lt_lease_update(a->leases, res->lease, i, &res->seen[i]);
		} else if (used > res->cost[i]) {
			excess = used - res->cost[i];
			got = lt_decide_charge(&a->m, res->kv[i].slot, res->kv[i].gen, ~0U, excess,
					       now, &debt, NULL);
			out->charged[i] = got;
			out->uncharged[i] = excess - got;
			__atomic_fetch_add(&a->excess_charged, got, __ATOMIC_RELAXED);
			__atomic_fetch_add(&a->excess_uncharged, excess - got, __ATOMIC_RELAXED);
		}
	}
	/* refunds done: only now may the lease go (a kill before leaves it charged) */
	if (res->has_lease)
		lt_lease_release(a->leases, res->lease);
	res->has_lease = 0;
	res->n = 0;
}

void lt_admit_cancel(struct lt_admitter *a, struct lt_reservation *res, __u64 now)
{
	__u32 k;

	for (k = res->n; k-- > 0;)
		lt_decide_undo(&a->m, &res->seen[k], now);
	if (res->has_lease)
		lt_lease_release(a->leases, res->lease);
	res->has_lease = 0;
	res->n = 0;
}
