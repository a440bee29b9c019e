// SPDX-License-Identifier: MIT
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "apikeys.h"
#include "units.h"

static __u64 lt_id_hash(const char *s)
{
	return lt_hash_mem(s, strlen(s));
}

static struct lt_apikey_idx *lt_idx_new(unsigned slots)
{
	struct lt_apikey_idx *x = calloc(1, sizeof(*x) + slots * sizeof(x->slot[0]));

	if (x)
		x->mask = slots - 1;
	return x;
}

/* The slot of id in x: its node, or the empty slot where it would go. */
static unsigned lt_idx_probe(const struct lt_apikey_idx *x, const char *id)
{
	unsigned i = (unsigned)lt_id_hash(id) & x->mask;
	struct lt_apikey_node *n;

	/* ids are immutable once published: compared without the sequence count */
	while ((n = __atomic_load_n(&x->slot[i], __ATOMIC_ACQUIRE)) && strcmp(n->rec.id, id))
		i = (i + 1) & x->mask;
	return i;
}

int lt_apikeys_init(struct lt_apikeys *t)
{
	memset(t, 0, sizeof(*t));
	t->idx = lt_idx_new(64);
	return t->idx ? 0 : -ENOMEM;
}

void lt_apikeys_free(struct lt_apikeys *t)
{
	int i;

	for (i = 0; i < t->n; i++)
		free(t->all[i]);
	for (i = 0; i < t->nold; i++)
		free(t->old[i]);
	free(t->all);
	free(t->old);
	free(t->idx);
	memset(t, 0, sizeof(*t));
}

int lt_apikeys_get(struct lt_apikeys *t, const char *id, struct lt_key_rec *out)
{
	struct lt_apikey_idx *x = __atomic_load_n(&t->idx, __ATOMIC_ACQUIRE);
	struct lt_apikey_node *n = __atomic_load_n(&x->slot[lt_idx_probe(x, id)], __ATOMIC_ACQUIRE);
	unsigned s1, s2;

	/*
	 * The probe ended on an empty slot that a writer may have filled with
	 * another id since: then id was absent when probed, and still is.
	 */
	if (!n || strcmp(n->rec.id, id))
		return -ENOENT;
	for (;;) {
		s1 = __atomic_load_n(&n->seq, __ATOMIC_ACQUIRE);
		if (s1 & 1) { /* a writer is a few stores into this record */
			sched_yield();
			continue;
		}
		memcpy(out, &n->rec, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&n->seq, __ATOMIC_RELAXED);
		if (s1 == s2)
			return 0;
	}
}

static int lt_apikeys_grow(struct lt_apikeys *t)
{
	struct lt_apikey_idx *x = lt_idx_new((t->idx->mask + 1) * 2), **old;
	int i;

	if (!x)
		return -ENOMEM;
	old = realloc(t->old, (size_t)(t->nold + 1) * sizeof(*old));
	if (!old) {
		free(x);
		return -ENOMEM;
	}
	t->old = old;
	for (i = 0; i < t->n; i++)
		x->slot[lt_idx_probe(x, t->all[i]->rec.id)] = t->all[i];
	t->old[t->nold++] = t->idx; /* a reader may still be probing it */
	__atomic_store_n(&t->idx, x, __ATOMIC_RELEASE);
	return 0;
}

int lt_apikeys_put(struct lt_apikeys *t, const struct lt_key_rec *r)
{
	struct lt_apikey_idx *x = t->idx;
	unsigned i = lt_idx_probe(x, r->id);
	struct lt_apikey_node *n = x->slot[i], **all;
	int ret;

	if (n) { /* replace in place, under the sequence count */
		__atomic_store_n(&n->seq, n->seq + 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		memcpy(&n->rec, r, sizeof(*r));
		__atomic_store_n(&n->seq, n->seq + 1, __ATOMIC_RELEASE);
		return 0;
	}
	if (t->n == t->cap) {
		all = realloc(t->all, (size_t)(t->cap ? t->cap * 2 : 64) * sizeof(*all));
		if (!all)
			return -ENOMEM;
		t->all = all;
		t->cap = t->cap ? t->cap * 2 : 64;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->rec = *r;
	if ((unsigned)(t->n + 1) * 2 > x->mask + 1) { /* keep the load at most 1/2 */
		t->all[t->n++] = n;
		ret = lt_apikeys_grow(t);
		if (ret) {
			t->n--;
			free(n);
		}
		return ret;
	}
	t->all[t->n++] = n;
	__atomic_store_n(&x->slot[i], n, __ATOMIC_RELEASE); /* the record first */
	return 0;
}

/* ---- the pinned lt_apikey map ------------------------------------------------ */

void lt_apikey_to_map(const struct lt_key_rec *r, struct lt_apikey_key *k, struct lt_apikey_val *v)
{
	memset(k, 0, sizeof(*k));
	memset(v, 0, sizeof(*v));
	snprintf(k->id, sizeof(k->id), "%s", r->id);
	memcpy(v->hash, r->hash, sizeof(v->hash));
	snprintf(v->owner, sizeof(v->owner), "%s", r->owner);
	snprintf(v->tier, sizeof(v->tier), "%s", r->tier);
	snprintf(v->org, sizeof(v->org), "%s", r->org);
	v->capacity = r->limit.capacity;
	v->tokens = r->limit.tokens;
	v->period_ns = r->limit.period_ns;
	v->expires_at = r->expires_at;
	v->revoked = !!r->revoked;
	v->flags = r->admin ? LT_APIKEY_F_ADMIN : 0;
}

int lt_apikey_map_put(int fd, const struct lt_key_rec *r)
{
	struct lt_apikey_key k;
	struct lt_apikey_val v;
	int ret;

	if (strlen(r->id) >= sizeof(k.id))
		return -ENAMETOOLONG;
	lt_apikey_to_map(r, &k, &v);
	if (!bpf_map_update_elem(fd, &k, &v, BPF_ANY))
		return 0;
	ret = -errno;
	/* a revocation must reach the readers: an unknown key is refused too */
	if (r->revoked && (!bpf_map_delete_elem(fd, &k) || errno == ENOENT))
		return 0;
	return ret;
}

int lt_apikey_map_get(int fd, const char *id, struct lt_key_rec *out)
{
	struct lt_apikey_key k = { 0 };
	struct lt_apikey_val v;

	if (strlen(id) >= sizeof(k.id))
		return -ENOENT;
	memcpy(k.id, id, strlen(id));
	if (bpf_map_lookup_elem(fd, &k, &v))
		return errno == ENOENT ? -ENOENT : -errno;
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", k.id);
	memcpy(out->hash, v.hash, sizeof(out->hash));
	/* the map is written by the agent, but never trust a string to be ended */
	snprintf(out->owner, sizeof(out->owner), "%.*s", (int)sizeof(v.owner), v.owner);
	snprintf(out->tier, sizeof(out->tier), "%.*s", (int)sizeof(v.tier), v.tier);
	snprintf(out->org, sizeof(out->org), "%.*s", (int)sizeof(v.org), v.org);
	out->limit.capacity = v.capacity;
	out->limit.tokens = v.tokens;
	out->limit.period_ns = v.period_ns;
	out->expires_at = v.expires_at;
	out->revoked = v.revoked != 0;
	out->admin = !!(v.flags & LT_APIKEY_F_ADMIN);
	return 0;
}

int lt_apikey_map_fn(void *ctx, const char *id, struct lt_key_rec *out)
{
	return lt_apikey_map_get(*(const int *)ctx, id, out);
}

int lt_apikey_map_del(int fd, const char *id)
{
	struct lt_apikey_key k = { 0 };

	if (strlen(id) >= sizeof(k.id))
		return -ENOENT;
	memcpy(k.id, id, strlen(id));
	return bpf_map_delete_elem(fd, &k) ? -errno : 0;
}
