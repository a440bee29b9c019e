// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "quota.h"
#include "tenant.h"
#include "units.h"
#include <bpf/bpf.h>

struct lt_limit_ent {
	char kind[8]; /* "tier" | "org" */
	char name[64];
	char provider[LT_NAME_MAX];
	struct lt_limit l;
};

struct lt_rate_ent {
	__u32 refs; /* buckets using this id; 0 = free (id 0 is "unlimited") */
};

struct lt_idx_ent {
	char *key; /* NULL = empty */
	__u32 slot;
	__u32 gen; /* lt_usage[slot].gen when the slot was given to key */
	__u64 made_ns; /* lt_now_ns() when this process indexed it: idle from then on */
};

struct lt_quota {
	pthread_rwlock_t lock;
	struct lt_store *st;
	struct lt_quota_maps m;
	struct lt_decide_maps dm; /* the same maps, for lib/decide.c */
	char providers[LT_PROVIDER_MAX][LT_NAME_MAX];
	int nproviders;
	__u64 prov_gen; /* the providers' version (lt_prov_gen_bump); atomic, set under lock */
	struct lt_limit_ent *limits;
	int nlimits;
	struct lt_rate_ent *rates; /* [LT_MAX_RATES] */
	struct lt_idx_ent *idx; /* open addressing, power-of-2 capacity */
	__u32 idx_cap, idx_used;
	__u32 next_slot; /* slot 0 is never used; slots >= next_slot never were */
	__u32 rates_hi; /* ids >= rates_hi have never been used */
	__u32 *free_slots; /* reclaimed slots below next_slot, a stack */
	__u32 nfree, free_cap;
	__u32 max_slots; /* usable slots: 1..max_slots */
	__u64 idle_ns; /* a bucket empty this long is reclaimed */
	__u32 scan_pos; /* where the next reclaim pass starts in idx */
	__u64 last_full_pass_ns; /* on-demand reclaim when full: at most 1/s */
	__u64 table_full, reclaimed; /* counters (atomics): lt_quota_stats */
	__u64 full_logged_ns;
};

/* ---- index ------------------------------------------------------------- */

/* on every consume: a word at a time (lt_hash_mem), the key's bytes without its NUL */
static __u64 lt_strhash(const char *s)
{
	return lt_hash_mem(s, strlen(s));
}

static struct lt_idx_ent *lt_idx_find(struct lt_quota *q, const char *key)
{
	__u32 i = (__u32)lt_strhash(key) & (q->idx_cap - 1);

	while (q->idx[i].key) {
		if (!strcmp(q->idx[i].key, key))
			return &q->idx[i];
		i = (i + 1) & (q->idx_cap - 1);
	}
	return NULL;
}

static int lt_idx_insert(struct lt_quota *q, char *key, __u32 slot, __u32 gen)
{
	__u32 i;

	if ((q->idx_used + 1) * 2 > q->idx_cap) {
		struct lt_idx_ent *old = q->idx;
		__u32 oc = q->idx_cap, j;

		q->idx = calloc(oc * 2, sizeof(*q->idx));
		if (!q->idx) {
			q->idx = old;
			return -ENOMEM;
		}
		q->idx_cap = oc * 2;
		for (j = 0; j < oc; j++) {
			if (!old[j].key)
				continue;
			i = (__u32)lt_strhash(old[j].key) & (q->idx_cap - 1);
			while (q->idx[i].key)
				i = (i + 1) & (q->idx_cap - 1);
			q->idx[i] = old[j];
		}
		free(old);
	}
	i = (__u32)lt_strhash(key) & (q->idx_cap - 1);
	while (q->idx[i].key)
		i = (i + 1) & (q->idx_cap - 1);
	q->idx[i].key = key;
	q->idx[i].slot = slot;
	q->idx[i].gen = gen;
	q->idx[i].made_ns = lt_now_ns();
	q->idx_used++;
	return 0;
}

/* Removes e, shifting back the entries of its probe run (no tombstones). */
static void lt_idx_remove(struct lt_quota *q, struct lt_idx_ent *e)
{
	__u32 mask = q->idx_cap - 1, i = (__u32)(e - q->idx), j = i, h;

	free(e->key);
	e->key = NULL;
	for (;;) {
		j = (j + 1) & mask;
		if (!q->idx[j].key)
			break;
		h = (__u32)lt_strhash(q->idx[j].key) & mask;
		/* an entry whose home lies cyclically in (i, j] stays where it is */
		if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
			continue;
		q->idx[i] = q->idx[j];
		q->idx[j].key = NULL;
		i = j;
	}
	q->idx_used--;
}

static void lt_idx_unpublish(struct lt_quota *q, const char *key)
{
	struct lt_keyidx_key k = { 0 };

	if (q->m.keyidx_fd < 0)
		return;
	snprintf(k.key, sizeof(k.key), "%s", key);
	bpf_map_delete_elem(q->m.keyidx_fd, &k);
}

/* Publishes key -> (slot, gen) in lt_keyidx for other processes and bpftool. */
static int lt_idx_publish(struct lt_quota *q, const char *key, __u32 slot, __u32 gen)
{
	struct lt_keyidx_key k = { 0 };
	struct lt_keyidx_val v = { .slot = slot, .gen = gen };

	if (q->m.keyidx_fd < 0)
		return 0;
	snprintf(k.key, sizeof(k.key), "%s", key);
	return bpf_map_update_elem(q->m.keyidx_fd, &k, &v, BPF_ANY) ? -errno : 0;
}

/* ---- rates ------------------------------------------------------------- */

/* The id of rate r in lt_rates, shared with every bucket of the same rate. */
static int lt_rate_get(struct lt_quota *q, const struct lt_rate *r, __u32 *id)
{
	__u32 i, free_id = 0;

	if (!r->period_ns) {
		*id = 0; /* unlimited */
		return 0;
	}
	/* distinct rates are few (tiers x providers, org quotas, keys): scan them */
	for (i = 1; i < q->rates_hi; i++) {
		if (q->rates[i].refs && !memcmp(&q->m.rates[i], r, sizeof(*r))) {
			*id = i;
			return 0;
		}
		if (!q->rates[i].refs && !free_id)
			free_id = i;
	}
	if (!free_id && q->rates_hi < LT_MAX_RATES)
		free_id = q->rates_hi++;
	if (!free_id)
		return -ENOSPC;
	q->m.rates[free_id] = *r;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	*id = free_id;
	return 0;
}

static void lt_rate_ref(struct lt_quota *q, __u32 id, int delta)
{
	if (id && id < LT_MAX_RATES) {
		q->rates[id].refs += (__u32)delta;
		if (id >= q->rates_hi)
			q->rates_hi = id + 1;
	}
}

/*
 * Moves slot to rate id nid keeping its level (in tokens): one CAS of
 * lt_slot.h, so a kill at any point leaves the slot usable. Under the write
 * lock (the refcounts are ours).
 */
static int lt_quota_rebase_slot(struct lt_quota *q, __u32 slot, __u32 nid, __u64 now)
{
	__u32 oid;
	int ret;

	ret = lt_slot_rebase(q->m.slots, q->m.rates, slot, nid, now, &oid);
	if (ret) {
		log_warn("quota: rebase of slot %u: %s", slot, strerror(-ret));
		return ret;
	}
	lt_rate_ref(q, oid, -1);
	lt_rate_ref(q, nid, +1);
	return 0;
}

/* The rate id a slot names now. */
static __u32 lt_quota_slot_rid(struct lt_quota *q, __u32 slot)
{
	return lt_meta_rid(__atomic_load_n(&q->m.slots[slot].meta, __ATOMIC_ACQUIRE));
}

/* ---- limits -------------------------------------------------------------- */

static struct lt_limit_ent *lt_limit_find(struct lt_quota *q, const char *kind, const char *name,
					  const char *provider)
{
	int i;

	for (i = 0; i < q->nlimits; i++) {
		struct lt_limit_ent *e = &q->limits[i];

		if (!strcmp(e->kind, kind) && !strcmp(e->name, name) &&
		    !strcmp(e->provider, provider))
			return e;
	}
	return NULL;
}

/* The limit that governs a bucket key; -ENOENT if none. */
static int lt_key_limit(struct lt_quota *q, const char *key, struct lt_limit *out)
{
	char kind, a[64] = "", b[64] = "";
	struct lt_limit_ent *e = NULL;
	const char *p = key + 2, *slash;

	kind = key[0];
	if (kind == 'u') { /* u/<tier>/<provider>/<user> */
		slash = strchr(p, '/');
		if (!slash || slash - p >= (long)sizeof(a))
			return -EINVAL;
		memcpy(a, p, (size_t)(slash - p));
		p = slash + 1;
		slash = strchr(p, '/');
		if (!slash || slash - p >= (long)sizeof(b))
			return -EINVAL;
		memcpy(b, p, (size_t)(slash - p));
		e = lt_limit_find(q, "tier", a, b);
		if (!e)
			e = lt_limit_find(q, "tier", a, "*");
	} else if (kind == 'o') { /* o/<provider>/<org> */
		slash = strchr(p, '/');
		if (!slash || slash - p >= (long)sizeof(b))
			return -EINVAL;
		memcpy(b, p, (size_t)(slash - p));
		snprintf(a, sizeof(a), "%s", slash + 1);
		e = lt_limit_find(q, "org", a, b);
		if (!e)
			e = lt_limit_find(q, "org", a, "*");
		if (!e)
			e = lt_limit_find(q, "org", "*", b);
		if (!e)
			e = lt_limit_find(q, "org", "*", "*");
	} else if (kind == 'r') { /* r/<tier>/<keyId>: the key's request rate, by tier */
		slash = strchr(p, '/');
		if (!slash || slash - p >= (long)sizeof(a))
			return -EINVAL;
		memcpy(a, p, (size_t)(slash - p));
		e = lt_limit_find(q, "keyreq", a, "*");
		if (!e)
			e = lt_limit_find(q, "keyreq", "*", "*");
	} else if (kind == 'p') { /* p/<provider>: the provider-wide pool */
		if (strlen(p) >= sizeof(b))
			return -EINVAL;
		snprintf(b, sizeof(b), "%s", p);
		e = lt_limit_find(q, "pool", "*", b);
		if (!e)
			e = lt_limit_find(q, "pool", "*", "*");
	}
	if (!e)
		return -ENOENT;
	*out = e->l;
	return 0;
}

static int lt_limit_rate(const struct lt_limit *l, struct lt_rate *r)
{
	return lt_rate_init_l7(r, l->capacity, l->tokens, l->period_ns);
}

/* Re-derives every non-key bucket's rate; rebases those that changed. */
static int lt_rebase_all(struct lt_quota *q)
{
	__u64 now = lt_now_ns();
	struct lt_rate r, last = { 0 };
	struct lt_limit l;
	__u32 i, id, last_id = 0;
	int ret, have_last = 0;

	for (i = 0; i < q->idx_cap; i++) {
		struct lt_idx_ent *e = &q->idx[i];

		if (!e->key || e->key[0] == 'k')
			continue;
		/*
		 * Nothing governs it any more (its limit was deleted): it keeps the
		 * last limit it had, level and all, until a limit governs it again.
		 * Deleting a limit never makes a live bucket unlimited.
		 */
		if (lt_key_limit(q, e->key, &l))
			continue;
		if (lt_limit_rate(&l, &r))
			continue;
		if (!memcmp(&q->m.rates[lt_quota_slot_rid(q, e->slot)], &r, sizeof(r)))
			continue;
		/* the buckets of one changed limit all move to the same rate */
		if (have_last && !memcmp(&last, &r, sizeof(r)) && q->rates[last_id].refs) {
			id = last_id;
		} else {
			ret = lt_rate_get(q, &r, &id);
			if (ret)
				return ret;
			last = r;
			last_id = id;
			have_last = 1;
		}
		ret = lt_quota_rebase_slot(q, e->slot, id, now);
		if (ret)
			return ret;
	}
	return 0;
}

/* A slot back on the free stack (under the write lock). */
static int lt_free_push(struct lt_quota *q, __u32 slot)
{
	if (q->nfree == q->free_cap) {
		__u32 nc = q->free_cap ? q->free_cap * 2 : 256, *n;

		n = realloc(q->free_slots, nc * sizeof(*n));
		if (!n)
			return -ENOMEM; /* the slot is lost until the next start */
		q->free_slots = n;
		q->free_cap = nc;
	}
	q->free_slots[q->nfree++] = slot;
	return 0;
}

/*
 * Forgets a bucket: lt_keyidx first (no other process finds it any more),
 * then the store, then this process's index. Under the write lock.
 */
static int lt_bucket_drop(struct lt_quota *q, const char *key)
{
	struct lt_idx_ent *e = lt_idx_find(q, key);
	__u32 oid;
	int ret;

	if (!e)
		return -ENOENT;
	lt_idx_unpublish(q, key);
	ret = lt_store_bucket_del(q->st, key);
	if (ret) {
		lt_idx_publish(q, key, e->slot, e->gen);
		return ret;
	}
	/* off its rate in one CAS before the id can be reused (lt_slot.h) */
	if (!lt_slot_release(q->m.slots, e->slot, &oid))
		lt_rate_ref(q, oid, -1);
	lt_free_push(q, e->slot);
	lt_idx_remove(q, e);
	return 0;
}

/*
 * At open: a bucket that no limit governs and whose slot carries no rate
 * (the maps are new, or an older agent made it unlimited when its limit was
 * deleted) has no last limit to keep. It is forgotten, so it is refused like
 * any new bucket without a limit, never admitted as unlimited.
 */
static int lt_drop_orphans(struct lt_quota *q)
{
	struct lt_limit l;
	char **dead = NULL;
	size_t n = 0, i;
	__u32 j;
	int ret = 0;

	for (j = 0; j < q->idx_cap; j++) {
		struct lt_idx_ent *e = &q->idx[j];
		char **nd;

		if (!e->key || e->key[0] == 'k' || !lt_key_limit(q, e->key, &l) ||
		    lt_quota_slot_rid(q, e->slot))
			continue;
		nd = realloc(dead, (n + 1) * sizeof(*dead));
		if (!nd || !(nd[n] = strdup(e->key))) {
			dead = nd ? nd : dead;
			ret = -ENOMEM;
			break;
		}
		dead = nd;
		n++;
	}
	for (i = 0; i < n; i++) {
		if (!ret)
			ret = lt_bucket_drop(q, dead[i]);
		free(dead[i]);
	}
	free(dead);
	if (n)
		log_info("quota: %zu buckets without a limit or a last rate forgotten", n);
	return ret;
}

/*
 * At open: lt_keyidx holds exactly the store's buckets. An entry the store
 * does not have (left by a crash, or by an older agent that published before
 * its insert failed) would send a reader to a slot that is not its own.
 */
static void lt_keyidx_reconcile(struct lt_quota *q)
{
	struct lt_keyidx_key k, nk, *dead = NULL;
	struct lt_keyidx_val v;
	size_t n = 0, i;
	int r;

	if (q->m.keyidx_fd < 0)
		return;
	r = bpf_map_get_next_key(q->m.keyidx_fd, NULL, &nk);
	while (!r) {
		struct lt_idx_ent *e;

		k = nk;
		k.key[sizeof(k.key) - 1] = '\0';
		e = lt_idx_find(q, k.key);
		if (bpf_map_lookup_elem(q->m.keyidx_fd, &nk, &v) || !e || e->slot != v.slot ||
		    e->gen != v.gen) {
			struct lt_keyidx_key *nd = realloc(dead, (n + 1) * sizeof(*dead));

			if (!nd)
				break;
			dead = nd;
			dead[n++] = nk;
		}
		r = bpf_map_get_next_key(q->m.keyidx_fd, &nk, &nk);
	}
	for (i = 0; i < n; i++)
		bpf_map_delete_elem(q->m.keyidx_fd, &dead[i]);
	free(dead);
	if (n)
		log_warn("quota: removed %zu lt_keyidx entries the store does not have", n);
}

/* ---- public -------------------------------------------------------------- */

/*
 * The provider list is read on every consume and changed by an admin now and
 * then. Each thread reads it from its own copy, taken again when the list's
 * version moves: no shared lock word written per request (two API threads
 * bounced its cache line). Versions come from one process-wide counter, so a
 * list freed and another made at the same address never share one.
 */
static __u64 lt_prov_gen_last;

/* a new version of q's provider list: under q->lock (write), after the change */
static void lt_prov_gen_bump(struct lt_quota *q)
{
	__atomic_store_n(&q->prov_gen, __atomic_add_fetch(&lt_prov_gen_last, 1, __ATOMIC_RELAXED),
			 __ATOMIC_RELEASE);
}

struct lt_prov_copy {
	const struct lt_quota *q;
	__u64 gen;
	int n;
	char names[LT_PROVIDER_MAX][LT_NAME_MAX];
};

static __thread struct lt_prov_copy lt_prov_copy;

static int lt_load_provider(void *ctx, const char *name)
{
	struct lt_quota *q = ctx;

	if (q->nproviders < LT_PROVIDER_MAX)
		snprintf(q->providers[q->nproviders++], LT_NAME_MAX, "%s", name);
	lt_prov_gen_bump(q);
	return 0;
}

static int lt_load_limit(void *ctx, const char *kind, const char *name, const char *provider,
			 const struct lt_limit *l)
{
	struct lt_quota *q = ctx;
	struct lt_limit_ent *n = realloc(q->limits, (size_t)(q->nlimits + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	q->limits = n;
	memset(&n[q->nlimits], 0, sizeof(*n));
	snprintf(n[q->nlimits].kind, sizeof(n->kind), "%s", kind);
	snprintf(n[q->nlimits].name, sizeof(n->name), "%s", name);
	snprintf(n[q->nlimits].provider, sizeof(n->provider), "%s", provider);
	n[q->nlimits].l = *l;
	q->nlimits++;
	return 0;
}

/*
 * A rate id is rewritten only while no slot names it (lt_slot.h). So the
 * refcounts come from the slots themselves, every one of them, not only
 * those the store knows: a slot of a lost database, or one a stale cache
 * (the gateway) still decides on, keeps its rate id out of reuse until a
 * CAS moves it off (assign, rebase, release). 1M slots: a 16 MiB scan.
 */
static void lt_count_rate_refs(struct lt_quota *q)
{
	__u32 i, rid;

	for (i = 1; i < LT_MAX_SLOTS; i++) {
		if (__atomic_load_n(&q->m.slots[i].tat, __ATOMIC_RELAXED) == LT_TAT_FREE)
			continue;
		rid = lt_quota_slot_rid(q, i);
		if (rid)
			lt_rate_ref(q, rid, +1);
	}
}

static int lt_load_bucket(void *ctx, const char *key, uint32_t slot)
{
	struct lt_quota *q = ctx;
	__u32 rid, gen;
	char *k;
	int was_free;

	if (!slot || slot >= LT_MAX_SLOTS)
		return 0;
	gen = __atomic_load_n(&q->m.usage[slot].gen, __ATOMIC_ACQUIRE);
	k = strdup(key);
	if (!k || lt_idx_insert(q, k, slot, gen)) {
		free(k);
		return -ENOMEM;
	}
	/*
	 * Freed in the map but still stored: a reclaim stopped between its two
	 * steps. It was empty when freed, so it starts empty again (on no rate;
	 * lt_rebase_all or the key's limit puts it back on its own).
	 */
	if (__atomic_load_n(&q->m.slots[slot].tat, __ATOMIC_ACQUIRE) == LT_TAT_FREE &&
	    lt_slot_assign(q->m.slots, slot, 0, &rid, &was_free))
		return -EAGAIN;
	lt_idx_publish(q, key, slot, gen); /* a fresh lt_keyidx after lost pins */
	if (slot >= q->next_slot)
		q->next_slot = slot + 1;
	return 0;
}

/*
 * Org limits stored before org ids were canonical may be named in upper
 * case, and would never match a bucket key again: rename them in the store
 * and in memory. Where both spellings exist, the canonical one wins.
 */
static int lt_canon_org_limits(struct lt_quota *q)
{
	char canon[LT_UUID_LEN + 1];
	struct lt_limit_ent *e;
	int i, ret;

	for (i = 0; i < q->nlimits; i++) {
		e = &q->limits[i];
		if (strcmp(e->kind, "org") || lt_uuid_canon(e->name, canon) ||
		    !strcmp(canon, e->name))
			continue;
		if (!lt_limit_find(q, "org", canon, e->provider)) {
			ret = lt_store_limit_put(q->st, "org", canon, e->provider, &e->l);
			if (ret)
				return ret;
		}
		ret = lt_store_limit_del(q->st, "org", e->name, e->provider);
		if (ret)
			return ret;
		log_warn("quota: org limit '%s/%s' renamed to its canonical id %s", e->name,
			 e->provider, canon);
		if (lt_limit_find(q, "org", canon, e->provider)) {
			*e = q->limits[--q->nlimits];
			i--;
		} else {
			snprintf(e->name, sizeof(e->name), "%s", canon);
		}
	}
	return 0;
}

/* At open: every slot below next_slot that no stored bucket holds is free. */
static int lt_free_build(struct lt_quota *q)
{
	__u8 *used = calloc(LT_MAX_SLOTS / 8, 1);
	__u32 i;
	int ret = 0;

	if (!used)
		return -ENOMEM;
	for (i = 0; i < q->idx_cap; i++)
		if (q->idx[i].key)
			used[q->idx[i].slot / 8] |= (__u8)(1U << (q->idx[i].slot % 8));
	for (i = q->next_slot; i-- > 1 && !ret;)
		if (!(used[i / 8] & (1U << (i % 8))))
			ret = lt_free_push(q, i);
	free(used);
	return ret;
}

int lt_quota_open(struct lt_quota **qp, struct lt_store *st, const struct lt_quota_maps *m,
		  char *err, size_t errlen)
{
	struct lt_quota *q = calloc(1, sizeof(*q));
	int ret = -ENOMEM;

	if (!q)
		return -ENOMEM;
	pthread_rwlock_init(&q->lock, NULL);
	q->st = st;
	q->m = *m;
	q->dm = (struct lt_decide_maps){ m->slots, m->rates, m->usage };
	q->next_slot = 1;
	q->rates_hi = 1;
	q->max_slots = LT_MAX_SLOTS - 1;
	q->idle_ns = LT_QUOTA_IDLE_DEFAULT_NS;
	q->idx_cap = 1024;
	q->idx = calloc(q->idx_cap, sizeof(*q->idx));
	q->rates = calloc(LT_MAX_RATES, sizeof(*q->rates));
	if (!q->idx || !q->rates)
		goto fail;
	ret = lt_store_provider_each(st, lt_load_provider, q);
	if (!ret)
		ret = lt_store_limit_each(st, lt_load_limit, q);
	if (!ret)
		ret = lt_canon_org_limits(q);
	if (!ret)
		ret = lt_store_bucket_each(st, lt_load_bucket, q);
	if (!ret)
		lt_count_rate_refs(q);
	if (!ret)
		ret = lt_free_build(q);
	if (!ret)
		ret = lt_drop_orphans(q);
	if (!ret)
		ret = lt_rebase_all(q); /* limits may have changed while we were down */
	if (!ret)
		lt_keyidx_reconcile(q);
	if (ret) {
		snprintf(err, errlen, "loading the quota state: %s", strerror(-ret));
		goto fail;
	}
	log_info("quota: %d providers, %d limits, %u buckets", q->nproviders, q->nlimits,
		 q->idx_used);
	*qp = q;
	return 0;
fail:
	lt_quota_close(q);
	return ret;
}

void lt_quota_close(struct lt_quota *q)
{
	__u32 i;

	if (!q)
		return;
	for (i = 0; q->idx && i < q->idx_cap; i++)
		free(q->idx[i].key);
	free(q->idx);
	free(q->rates);
	free(q->limits);
	free(q->free_slots);
	pthread_rwlock_destroy(&q->lock);
	free(q);
}

int lt_quota_provider_known(struct lt_quota *q, const char *name)
{
	struct lt_prov_copy *c = &lt_prov_copy;
	int i;

	/* a change seen here (acquire) is copied under the lock that ordered it */
	if (c->q != q || c->gen != __atomic_load_n(&q->prov_gen, __ATOMIC_ACQUIRE)) {
		pthread_rwlock_rdlock(&q->lock);
		c->q = q;
		c->gen = q->prov_gen;
		c->n = q->nproviders;
		memcpy(c->names, q->providers, (size_t)c->n * sizeof(q->providers[0]));
		pthread_rwlock_unlock(&q->lock);
	}
	for (i = 0; i < c->n; i++)
		if (!strcmp(c->names[i], name))
			return 1;
	return 0;
}

int lt_quota_provider_add(struct lt_quota *q, const char *name, char *err, size_t errlen)
{
	int ret = 0, i;

	pthread_rwlock_wrlock(&q->lock);
	for (i = 0; i < q->nproviders; i++)
		if (!strcmp(q->providers[i], name))
			goto out; /* idempotent */
	if (q->nproviders == LT_PROVIDER_MAX) {
		snprintf(err, errlen, "at most %d providers", LT_PROVIDER_MAX);
		ret = -ENOSPC;
		goto out;
	}
	ret = lt_store_provider_put(q->st, name);
	if (ret) {
		snprintf(err, errlen, "store: cannot save provider");
		goto out;
	}
	snprintf(q->providers[q->nproviders++], LT_NAME_MAX, "%s", name);
	lt_prov_gen_bump(q);
out:
	pthread_rwlock_unlock(&q->lock);
	return ret;
}

int lt_quota_provider_del(struct lt_quota *q, const char *name, char *err, size_t errlen)
{
	int i, ret = -ENOENT;

	pthread_rwlock_wrlock(&q->lock);
	for (i = 0; i < q->nproviders; i++) {
		if (strcmp(q->providers[i], name))
			continue;
		ret = lt_store_provider_del(q->st, name);
		if (ret) {
			snprintf(err, errlen, "store: cannot delete provider");
			break;
		}
		memmove(q->providers[i], q->providers[i + 1],
			(size_t)(q->nproviders - i - 1) * sizeof(q->providers[0]));
		q->nproviders--;
		lt_prov_gen_bump(q);
		break;
	}
	if (ret == -ENOENT)
		snprintf(err, errlen, "no provider '%s'", name);
	pthread_rwlock_unlock(&q->lock);
	return ret;
}

void lt_quota_provider_each(struct lt_quota *q, void (*cb)(void *ctx, const char *name), void *ctx)
{
	int i;

	pthread_rwlock_rdlock(&q->lock);
	for (i = 0; i < q->nproviders; i++)
		cb(ctx, q->providers[i]);
	pthread_rwlock_unlock(&q->lock);
}

int lt_quota_limit_set(struct lt_quota *q, const char *kind, const char *name, const char *provider,
		       const struct lt_limit *l, char *err, size_t errlen)
{
	struct lt_limit_ent *e, saved = { 0 };
	struct lt_rate r;
	int ret, existed;

	if (lt_limit_rate(l, &r)) {
		snprintf(err, errlen, "capacity or rate out of range");
		return -ERANGE;
	}
	pthread_rwlock_wrlock(&q->lock);
	e = lt_limit_find(q, kind, name, provider);
	existed = e != NULL;
	if (e)
		saved = *e;
	/* the store first: if it fails, nothing changed anywhere */
	ret = lt_store_limit_put(q->st, kind, name, provider, l);
	if (ret) {
		snprintf(err, errlen, "store: cannot save the limit");
		goto out;
	}
	if (e)
		e->l = *l;
	else
		ret = lt_load_limit(q, kind, name, provider, l);
	if (!ret)
		ret = lt_rebase_all(q);
	if (ret) {
		/* put the old limit back in both places */
		if (existed) {
			e = lt_limit_find(q, kind, name, provider);
			e->l = saved.l;
			lt_store_limit_put(q->st, kind, name, provider, &saved.l);
		} else {
			lt_store_limit_del(q->st, kind, name, provider);
			q->nlimits--;
		}
		lt_rebase_all(q);
		snprintf(err, errlen, "applying the limit: %s", strerror(-ret));
	}
out:
	pthread_rwlock_unlock(&q->lock);
	return ret;
}

int lt_quota_limit_del(struct lt_quota *q, const char *kind, const char *name, const char *provider,
		       char *err, size_t errlen)
{
	struct lt_limit_ent *e;
	int ret;

	pthread_rwlock_wrlock(&q->lock);
	e = lt_limit_find(q, kind, name, provider);
	if (!e) {
		snprintf(err, errlen, "no such limit");
		ret = -ENOENT;
		goto out;
	}
	ret = lt_store_limit_del(q->st, kind, name, provider);
	if (ret) {
		snprintf(err, errlen, "store: cannot delete the limit");
		goto out;
	}
	*e = q->limits[--q->nlimits];
	ret = lt_rebase_all(q);
out:
	pthread_rwlock_unlock(&q->lock);
	return ret;
}

int lt_quota_limit_get(struct lt_quota *q, const char *kind, const char *name, const char *provider,
		       struct lt_limit *out)
{
	struct lt_limit_ent *e;

	pthread_rwlock_rdlock(&q->lock);
	e = lt_limit_find(q, kind, name, provider);
	if (e)
		*out = e->l;
	pthread_rwlock_unlock(&q->lock);
	return e ? 0 : -ENOENT;
}

void lt_quota_limit_each(struct lt_quota *q, const char *kind, const char *name,
			 void (*cb)(void *ctx, const char *name, const char *provider,
				    const struct lt_limit *l),
			 void *ctx)
{
	int i;

	pthread_rwlock_rdlock(&q->lock);
	for (i = 0; i < q->nlimits; i++) {
		struct lt_limit_ent *e = &q->limits[i];

		if (!strcmp(e->kind, kind) && (!name || !strcmp(e->name, name)))
			cb(ctx, e->name, e->provider, &e->l);
	}
	pthread_rwlock_unlock(&q->lock);
}

int lt_quota_tier_exists(struct lt_quota *q, const char *tier)
{
	int i, found = 0;

	pthread_rwlock_rdlock(&q->lock);
	for (i = 0; i < q->nlimits && !found; i++)
		found = !strcmp(q->limits[i].kind, "tier") && !strcmp(q->limits[i].name, tier);
	pthread_rwlock_unlock(&q->lock);
	return found;
}

/* ---- reclaim ------------------------------------------------------------- */

/*
 * Has the bucket of e been empty for idle_ns at now, and known that long?
 * (A read, no change.) A bucket never used reads empty since boot (tat 0):
 * without the second test, one made for a request was idle for
 * token.bucket_idle already, and the next sweep (every second) could free it
 * between the agent's answer and that request's first decision: a gateway
 * then found no lt_keyidx entry right after the agent made it, and answered
 * 503 limiter_unavailable. Its idle time starts at its making (or at this
 * process's start, for one loaded from the store).
 */
static int lt_reclaimable(struct lt_quota *q, const struct lt_idx_ent *e, __u64 now, __u64 idle_ns)
{
	struct lt_slot_seen seen;
	__u64 empty_at;

	if (now < e->made_ns || now - e->made_ns < idle_ns)
		return 0;
	if (lt_slot_peek(q->m.slots, q->m.rates, e->slot, now, &seen))
		return 0;
	if (!seen.rate.period_ns)
		return 1;
	if (seen.tat >= LT_TAT_LIMIT)
		return 0;
	empty_at = lt_time_of_units(&seen.rate, seen.tat);
	return empty_at <= now && now - empty_at >= idle_ns;
}

/*
 * Frees the bucket of key if it is still empty and idle, under the write
 * lock: the slot word first (lt_slot_free_if_empty: one CAS, so an admission
 * racing it either lands first and keeps the bucket, or sees LT_FREED), then
 * the store, then lt_keyidx and this process's index. If the store cannot
 * forget it, the slot is given back to the key, empty as it was.
 */
static int lt_reclaim_one(struct lt_quota *q, const char *key, __u64 now, __u64 idle_ns)
{
	struct lt_idx_ent *e = lt_idx_find(q, key);
	__u32 oid, rid;
	int ret, was_free;

	if (!e)
		return -ENOENT;
	/* collected under the read lock: the key may have been freed and made again since */
	if (now < e->made_ns || now - e->made_ns < idle_ns)
		return -EBUSY;
	ret = lt_slot_free_if_empty(q->m.slots, q->m.rates, e->slot, now, idle_ns, &oid);
	if (ret)
		return ret;
	ret = lt_store_bucket_del(q->st, key);
	if (ret) {
		lt_slot_assign(q->m.slots, e->slot, oid, &rid, &was_free);
		return ret;
	}
	lt_idx_unpublish(q, key);
	lt_rate_ref(q, oid, -1);
	lt_free_push(q, e->slot);
	lt_idx_remove(q, e);
	__atomic_fetch_add(&q->reclaimed, 1, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Keys of up to scan entries of idx from q->scan_pos whose buckets look
 * reclaimable; the caller holds the lock (read or write). *keys is malloc'd.
 */
static size_t lt_reclaim_collect(struct lt_quota *q, __u64 now, __u64 idle_ns, __u32 scan,
				 char ***keys)
{
	char **v = NULL, **nv;
	size_t n = 0;
	__u32 i;

	if (scan > q->idx_cap)
		scan = q->idx_cap;
	for (i = 0; i < scan; i++) {
		struct lt_idx_ent *e = &q->idx[(q->scan_pos + i) & (q->idx_cap - 1)];

		if (!e->key || !lt_reclaimable(q, e, now, idle_ns))
			continue;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv || !(nv[n] = strdup(e->key))) {
			v = nv ? nv : v;
			break;
		}
		v = nv;
		n++;
	}
	q->scan_pos = (q->scan_pos + scan) & (q->idx_cap - 1);
	*keys = v;
	return n;
}

static long lt_reclaim_keys(struct lt_quota *q, char **keys, size_t n, __u64 now, __u64 idle_ns)
{
	long freed = 0;
	size_t i;
	int stop = 0;

	for (i = 0; i < n; i++) {
		if (!stop) {
			int ret = lt_reclaim_one(q, keys[i], now, idle_ns);

			freed += !ret;
			/* a failing store: try again on the next pass */
			stop = ret && ret != -EBUSY && ret != -ENOENT && ret != -EAGAIN;
		}
		free(keys[i]);
	}
	free(keys);
	return freed;
}

long lt_quota_reclaim(struct lt_quota *q, __u64 now_ns, __u32 scan)
{
	__u64 idle;
	char **keys;
	size_t n;

	/* find candidates under the read lock: decisions go on meanwhile */
	pthread_rwlock_rdlock(&q->lock);
	idle = q->idle_ns;
	n = lt_reclaim_collect(q, now_ns, idle, scan ? scan : q->idx_cap, &keys);
	pthread_rwlock_unlock(&q->lock);
	if (!n) {
		free(keys);
		return 0;
	}
	pthread_rwlock_wrlock(&q->lock);
	n = (size_t)lt_reclaim_keys(q, keys, n, now_ns, idle);
	pthread_rwlock_unlock(&q->lock);
	if (n)
		log_debug("quota: reclaimed %zu idle empty buckets", n);
	return (long)n;
}

void lt_quota_set_limits(struct lt_quota *q, __u32 max_buckets, __u64 idle_ns)
{
	pthread_rwlock_wrlock(&q->lock);
	q->max_slots = max_buckets && max_buckets < LT_MAX_SLOTS ? max_buckets : LT_MAX_SLOTS - 1;
	q->idle_ns = idle_ns;
	pthread_rwlock_unlock(&q->lock);
}

void lt_quota_stats(struct lt_quota *q, struct lt_quota_stats *st)
{
	pthread_rwlock_rdlock(&q->lock);
	st->buckets = q->idx_used;
	st->max_buckets = q->max_slots;
	pthread_rwlock_unlock(&q->lock);
	st->table_full = __atomic_load_n(&q->table_full, __ATOMIC_RELAXED);
	st->reclaimed = __atomic_load_n(&q->reclaimed, __ATOMIC_RELAXED);
}

unsigned lt_quota_fullest(struct lt_quota *q, __u64 now_ns, struct lt_fill *out, unsigned k)
{
	unsigned n = 0, i, j;
	struct lt_view v;
	double r;

	pthread_rwlock_rdlock(&q->lock);
	for (i = 0; k && i < q->idx_cap; i++) {
		const struct lt_idx_ent *e = &q->idx[i];

		if (!e->key || lt_quota_peek(q, lt_handle(e->slot, e->gen), now_ns, &v) ||
		    v.unlimited || !v.capacity || v.remaining >= v.capacity)
			continue;
		r = (double)(v.capacity - v.remaining) / (double)v.capacity;
		if (n == k && r <= out[n - 1].ratio)
			continue;
		/* insertion into out[], kept sorted, fullest first */
		for (j = n < k ? n++ : n - 1; j && out[j - 1].ratio < r; j--)
			out[j] = out[j - 1];
		snprintf(out[j].key, sizeof(out[j].key), "%s", e->key);
		out[j].ratio = r;
	}
	pthread_rwlock_unlock(&q->lock);
	return n;
}

/*
 * A slot for a new bucket, under the write lock: a reclaimed one, else a
 * never used one; when there is none, one reclaim pass over the whole index
 * (at most once a second), then -ENOSPC. *from_free says where it came from.
 */
static int lt_slot_pick(struct lt_quota *q, __u32 *s, int *from_free, char *err, size_t errlen)
{
	__u64 now;
	char **keys;
	size_t n;

	for (;;) {
		if (q->nfree) {
			*s = q->free_slots[q->nfree - 1];
			*from_free = 1;
			return 0;
		}
		if (q->next_slot <= q->max_slots) {
			*s = q->next_slot;
			*from_free = 0;
			return 0;
		}
		now = lt_now_ns();
		if (q->last_full_pass_ns && now - q->last_full_pass_ns < LT_NS_PER_SEC)
			break;
		q->last_full_pass_ns = now;
		n = lt_reclaim_collect(q, now, q->idle_ns, q->idx_cap, &keys);
		if (lt_reclaim_keys(q, keys, n, now, q->idle_ns) <= 0)
			break;
	}
	__atomic_fetch_add(&q->table_full, 1, __ATOMIC_RELAXED);
	now = lt_now_ns();
	if (now - q->full_logged_ns >= 10 * LT_NS_PER_SEC) {
		q->full_logged_ns = now;
		log_warn("quota: the bucket table is full (%u buckets); new buckets are refused "
			 "until idle ones are reclaimed",
			 q->max_slots);
	}
	snprintf(err, errlen,
		 "bucket table is full (%u buckets in use, none idle and empty); retry later",
		 q->max_slots);
	return -ENOSPC;
}

int lt_quota_bucket(struct lt_quota *q, const char *key, const struct lt_limit *key_limit,
		    __u32 *slot, char *err, size_t errlen)
{
	struct lt_idx_ent *e;
	struct lt_limit l;
	struct lt_rate r;
	char *k;
	__u32 id, s, oid, gen;
	int ret, was_free, from_free;

	pthread_rwlock_rdlock(&q->lock);
	e = lt_idx_find(q, key);
	if (e)
		*slot = lt_handle(e->slot, e->gen);
	pthread_rwlock_unlock(&q->lock);
	if (e)
		return 0;

	pthread_rwlock_wrlock(&q->lock);
	e = lt_idx_find(q, key); /* another thread may have made it meanwhile */
	if (e) {
		*slot = lt_handle(e->slot, e->gen);
		ret = 0;
		goto out;
	}
	if (key[0] == 'k') {
		if (!key_limit) {
			ret = -ENOENT;
			snprintf(err, errlen, "no limit for this key");
			goto out;
		}
		l = *key_limit;
		ret = 0;
	} else {
		ret = lt_key_limit(q, key, &l);
	}
	if (ret) {
		snprintf(err, errlen, "no quota is configured for this tier or org and provider");
		goto out;
	}
	if (lt_limit_rate(&l, &r)) {
		ret = -ERANGE;
		snprintf(err, errlen, "quota out of range");
		goto out;
	}
	if (strlen(key) >= LT_BUCKET_KEY_LEN) {
		ret = -ENAMETOOLONG;
		snprintf(err, errlen, "bucket key longer than %d bytes", LT_BUCKET_KEY_LEN - 1);
		goto out;
	}
	ret = lt_slot_pick(q, &s, &from_free, err, errlen);
	if (ret)
		goto out;
	ret = lt_rate_get(q, &r, &id);
	if (ret) {
		snprintf(err, errlen, "rate table is full (max %u)", LT_MAX_RATES - 1);
		goto out;
	}
	k = strdup(key);
	if (!k) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/*
	 * The store, then this process's index, then the slot, then lt_keyidx
	 * (what other processes read): each failure undoes the steps before it,
	 * and the slot leaves the free list (or next_slot moves) only on
	 * success. So key -> s is visible only once it is durable, and s is
	 * never handed to two keys. gen moves before the assign (lt_slot.h,
	 * ownership): a holder of an older (s, gen) gets LT_FREED, never this
	 * key's bucket.
	 */
	ret = lt_store_bucket_put(q->st, key, s);
	if (ret) {
		free(k);
		snprintf(err, errlen, "store: cannot record the bucket: %s", strerror(-ret));
		ret = -EIO;
		goto out;
	}
	gen = __atomic_load_n(&q->m.usage[s].gen, __ATOMIC_RELAXED) + 1;
	ret = lt_idx_insert(q, k, s, gen);
	if (ret) {
		free(k);
		lt_store_bucket_del(q->st, key);
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	__atomic_store_n(&q->m.usage[s].gen, gen, __ATOMIC_RELEASE);
	ret = lt_slot_assign(q->m.slots, s, id, &oid, &was_free);
	if (ret) {
		lt_idx_remove(q, lt_idx_find(q, key));
		lt_store_bucket_del(q->st, key);
		snprintf(err, errlen, "bucket slot %u is contended", s);
		goto out;
	}
	/* the refcounts follow what the slots name (lt_count_rate_refs) */
	if (!was_free)
		lt_rate_ref(q, oid, -1);
	lt_rate_ref(q, id, +1);
	__atomic_store_n(&q->m.usage[s].admitted, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&q->m.usage[s].rejected, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&q->m.usage[s].tokens, 0, __ATOMIC_RELAXED);
	ret = lt_idx_publish(q, key, s, gen);
	if (ret) {
		if (!lt_slot_release(q->m.slots, s, &oid))
			lt_rate_ref(q, oid, -1);
		lt_idx_remove(q, lt_idx_find(q, key));
		lt_store_bucket_del(q->st, key);
		snprintf(err, errlen, "lt_keyidx: %s", strerror(-ret));
		ret = -EIO;
		goto out;
	}
	if (from_free)
		q->nfree--;
	else
		q->next_slot++;
	*slot = lt_handle(s, gen);
out:
	pthread_rwlock_unlock(&q->lock);
	return ret;
}

int lt_quota_key_limit(struct lt_quota *q, const char *key, const struct lt_limit *l)
{
	struct lt_idx_ent *e;
	struct lt_rate r;
	__u32 id;
	int ret = 0;

	if (lt_limit_rate(l, &r))
		return -ERANGE;
	pthread_rwlock_wrlock(&q->lock);
	e = lt_idx_find(q, key);
	if (e && memcmp(&q->m.rates[lt_quota_slot_rid(q, e->slot)], &r, sizeof(r))) {
		ret = lt_rate_get(q, &r, &id);
		if (!ret)
			ret = lt_quota_rebase_slot(q, e->slot, id, lt_now_ns());
	}
	pthread_rwlock_unlock(&q->lock);
	return ret;
}

static const struct lt_decide_maps *lt_qdm(const struct lt_quota *q)
{
	return &q->dm;
}

int lt_quota_consume(struct lt_quota *q, __u32 handle, __u64 cost, __u64 now_ns, struct lt_view *v,
		     struct lt_slot_seen *resv)
{
	return lt_decide_consume(lt_qdm(q), lt_handle_slot(handle), lt_handle_gen(handle),
				 LT_HANDLE_GEN_MASK, cost, now_ns, v, resv);
}

__u64 lt_quota_refund(struct lt_quota *q, struct lt_slot_seen *resv, __u64 tokens, __u64 now_ns)
{
	return lt_decide_refund(lt_qdm(q), resv, tokens, now_ns);
}

void lt_quota_undo(struct lt_quota *q, struct lt_slot_seen *resv, __u64 now_ns)
{
	lt_decide_undo(lt_qdm(q), resv, now_ns);
}

int lt_quota_peek(struct lt_quota *q, __u32 handle, __u64 now_ns, struct lt_view *v)
{
	return lt_decide_peek(lt_qdm(q), lt_handle_slot(handle), lt_handle_gen(handle),
			      LT_HANDLE_GEN_MASK, now_ns, v);
}

int lt_quota_peek_key(struct lt_quota *q, const char *key, const struct lt_limit *key_limit,
		      __u64 now_ns, struct lt_view *v, __u32 *slot)
{
	struct lt_idx_ent *e;
	struct lt_limit l;
	struct lt_rate r;
	__u32 s = 0;
	int ret = 0;

	pthread_rwlock_rdlock(&q->lock);
	e = lt_idx_find(q, key);
	if (e)
		s = lt_handle(e->slot, e->gen);
	if (key[0] == 'k')
		ret = key_limit ? (l = *key_limit, 0) : -ENOENT;
	else
		ret = lt_key_limit(q, key, &l);
	pthread_rwlock_unlock(&q->lock);
	*slot = s;
	if (s) {
		int pr = lt_quota_peek(q, s, now_ns, v);

		if (!pr)
			return 0;
		if (pr != LT_FREED)
			return -EAGAIN;
		*slot = 0; /* reclaimed meanwhile: it reads as a bucket not made yet */
	}
	if (ret)
		return ret;
	if (lt_limit_rate(&l, &r))
		return -ERANGE;
	memset(v, 0, sizeof(*v));
	lt_view_fill(&r, 0, now_ns, 0, LT_ADMIT, v); /* no bucket yet: empty */
	return 0;
}

void lt_quota_usage(struct lt_quota *q, __u32 handle, struct lt_usage *out)
{
	__u32 slot = lt_handle_slot(handle);

	out->admitted = __atomic_load_n(&q->m.usage[slot].admitted, __ATOMIC_RELAXED);
	out->rejected = __atomic_load_n(&q->m.usage[slot].rejected, __ATOMIC_RELAXED);
	out->tokens = __atomic_load_n(&q->m.usage[slot].tokens, __ATOMIC_RELAXED);
}

__u32 lt_quota_buckets(struct lt_quota *q)
{
	__u32 n;

	pthread_rwlock_rdlock(&q->lock);
	n = q->idx_used;
	pthread_rwlock_unlock(&q->lock);
	return n;
}

void lt_quota_each(struct lt_quota *q, const char *prefix,
		   void (*cb)(void *ctx, const char *key, __u32 handle), void *ctx)
{
	size_t n = strlen(prefix);
	__u32 i;

	pthread_rwlock_rdlock(&q->lock);
	for (i = 0; i < q->idx_cap; i++) {
		const struct lt_idx_ent *e = &q->idx[i];

		if (e->key && !strncmp(e->key, prefix, n))
			cb(ctx, e->key, lt_handle(e->slot, e->gen));
	}
	pthread_rwlock_unlock(&q->lock);
}

__u64 lt_quota_debit(struct lt_quota *q, __u32 handle, __u64 tokens, __u32 max_caps, __u64 now_ns,
		     struct lt_slot_seen *resv, int *verdict)
{
	return lt_decide_debit(lt_qdm(q), lt_handle_slot(handle), lt_handle_gen(handle),
			       LT_HANDLE_GEN_MASK, tokens, max_caps, now_ns, resv, verdict);
}

__u64 lt_quota_undebit(struct lt_quota *q, struct lt_slot_seen *resv, __u64 now_ns)
{
	return lt_decide_undebit(lt_qdm(q), resv, now_ns);
}
