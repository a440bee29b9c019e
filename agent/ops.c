// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "addr.h"
#include "apply.h"
#include "cfg.h"
#include "log.h"
#include "ops.h"
#include "overrides.h"
#include "penalty.h"
#include "units.h"

int lt_ops_open(struct lt_ops *o, const struct lt_maps *m, const char *state_dir, char *err,
		size_t errlen)
{
	char path[512];
	int ret;

	memset(o, 0, sizeof(*o));
	o->m = m;
	o->state_dir = state_dir;
	if (mkdir(state_dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create state dir %s: %s", state_dir, strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/leaky.db", state_dir);
	ret = lt_store_open(&o->own_st, path, err, errlen);
	if (ret)
		return ret;
	o->st = &o->own_st;
	return 0;
}

void lt_ops_close(struct lt_ops *o)
{
	if (o->st == &o->own_st)
		lt_store_close(&o->own_st);
	o->st = NULL;
}

/*
 * Serialises edits of one state dir across processes (CLI and daemon), and
 * against the daemon's reload: the state lock (overrides.h).
 */
static int lt_ops_lock(const struct lt_ops *o, char *err, size_t errlen)
{
	int fd = lt_overrides_lock(o->state_dir, err, errlen);

	return fd < 0 ? -1 : fd;
}

static void lt_ops_unlock(int fd)
{
	lt_overrides_unlock(fd);
}

int lt_policy_get_exact(const struct lt_maps *m, const struct lt_lpm_key *k,
			struct lt_src_policy *out)
{
	return lt_lpm_lookup_exact(m->fd[LT_M_POLICY], k, out);
}

/* ---- bans -------------------------------------------------------------- */

/* The store's form of a penalty's end: unix seconds, 0 = until unbanned. */
static int64_t lt_until_unix(const struct lt_penalty *p, __u64 now_mono)
{
	if (p->until_ns == ~0ULL)
		return 0;
	return (int64_t)time(NULL) +
	       (int64_t)(p->until_ns > now_mono ?
				 (p->until_ns - now_mono + LT_NS_PER_SEC - 1) / LT_NS_PER_SEC :
				 0);
}

int lt_op_ban(struct lt_ops *o, const struct lt_lpm_key *k, __u64 dur_ns, __u32 reason,
	      struct lt_penalty *out, char *err, size_t errlen)
{
	int fd = o->m->fd[LT_M_PENALTY], cfd = o->m->fd[LT_M_CONFIG], lock, ret, had;
	struct lt_penalty prev, p;
	char pfx[80];

	lock = lt_ops_lock(o, err, errlen);
	if (lock < 0)
		return -EIO;
	lt_prefix_format(k, pfx, sizeof(pfx));
	had = !lt_penalty_get(fd, cfd, k, &prev);
	/* the map first: enforcement starts now */
	ret = lt_penalty_ban(fd, cfd, k, dur_ns, reason, &p);
	if (ret) {
		lt_penalty_strerror(ret, err, errlen);
		goto out;
	}
	ret = lt_store_penalty_put(o->st, pfx, lt_until_unix(&p, lt_now_ns()), p.strikes, p.reason);
	if (ret) {
		/* not durable: undo, so a restart cannot disagree with what we said */
		if (had)
			lt_penalty_put(fd, cfd, k, &prev);
		else
			lt_penalty_unban(fd, cfd, k);
		snprintf(err, errlen, "store: cannot record the ban of %s: %s", pfx,
			 strerror(-ret));
		goto out;
	}
	if (out)
		*out = p;
out:
	lt_ops_unlock(lock);
	return ret;
}

struct lt_ban_list {
	struct lt_lpm_key *k;
	struct lt_penalty *p;
	size_t n, cap;
};

static int lt_ban_list_add(void *ctx, const struct lt_lpm_key *k, const struct lt_penalty *p)
{
	struct lt_ban_list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap * 2 + 64;
		struct lt_lpm_key *nk = realloc(l->k, cap * sizeof(*nk));
		struct lt_penalty *np;

		if (!nk)
			return -ENOMEM;
		l->k = nk;
		np = realloc(l->p, cap * sizeof(*np));
		if (!np)
			return -ENOMEM;
		l->p = np;
		l->cap = cap;
	}
	l->k[l->n] = *k;
	l->p[l->n++] = *p;
	return 0;
}

static int lt_key_cmp(const struct lt_lpm_key *a, const struct lt_lpm_key *b)
{
	int c = memcmp(a->addr, b->addr, 16);

	return c ? c : (a->prefixlen > b->prefixlen) - (a->prefixlen < b->prefixlen);
}

int lt_op_bans(const struct lt_maps *m,
	       int (*fn)(void *ctx, const struct lt_lpm_key *k, const struct lt_penalty *p),
	       void *ctx, char *err, size_t errlen)
{
	struct lt_ban_list l = { 0 };
	size_t i, j;
	int ret;

	ret = lt_penalty_each(m->fd[LT_M_PENALTY], m->fd[LT_M_CONFIG], lt_ban_list_add, &l);
	if (ret) {
		lt_penalty_strerror(ret, err, errlen);
		goto out;
	}
	/* the slots are in hash order; a person reads them by prefix */
	for (i = 1; i < l.n; i++) {
		struct lt_lpm_key k = l.k[i];
		struct lt_penalty p = l.p[i];

		for (j = i; j > 0 && lt_key_cmp(&l.k[j - 1], &k) > 0; j--) {
			l.k[j] = l.k[j - 1];
			l.p[j] = l.p[j - 1];
		}
		l.k[j] = k;
		l.p[j] = p;
	}
	for (i = 0; i < l.n && !ret; i++)
		ret = fn(ctx, &l.k[i], &l.p[i]);
out:
	free(l.k);
	free(l.p);
	return ret;
}

struct lt_find_pen {
	const char *pfx;
	int found;
};

static int lt_find_pen_cb(void *ctx, const char *prefix, int64_t until, uint32_t strikes,
			  uint32_t reason)
{
	struct lt_find_pen *f = ctx;

	(void)until;
	(void)strikes;
	(void)reason;
	f->found |= !strcmp(prefix, f->pfx);
	return 0;
}

int lt_op_unban(struct lt_ops *o, const struct lt_lpm_key *k, char *err, size_t errlen)
{
	int fd = o->m->fd[LT_M_PENALTY], cfd = o->m->fd[LT_M_CONFIG], lock, ret, had;
	struct lt_find_pen f = { 0 };
	struct lt_penalty prev;
	char pfx[80];

	lock = lt_ops_lock(o, err, errlen);
	if (lock < 0)
		return -EIO;
	lt_prefix_format(k, pfx, sizeof(pfx));
	f.pfx = pfx;
	lt_store_penalty_each(o->st, lt_find_pen_cb, &f);
	had = !lt_penalty_get(fd, cfd, k, &prev);
	if (!had && !f.found) {
		snprintf(err, errlen, "%s is not banned", pfx);
		ret = -ENOENT;
		goto out;
	}
	/* the store first: a restart must not bring back what we take out */
	ret = lt_store_penalty_del(o->st, pfx);
	if (ret) {
		snprintf(err, errlen, "store: cannot record the unban of %s: %s", pfx,
			 strerror(-ret));
		goto out;
	}
	if (had) {
		ret = lt_penalty_unban(fd, cfd, k);
		if (ret && ret != -ENOENT) {
			lt_store_penalty_put(o->st, pfx, lt_until_unix(&prev, lt_now_ns()),
					     prev.strikes, prev.reason);
			lt_penalty_strerror(ret, err, errlen);
			goto out;
		}
		ret = 0;
	}
out:
	lt_ops_unlock(lock);
	return ret;
}

/* ---- policies, allowlist, dry-run (overrides.json + lt_policy) ---------- */

/*
 * The file first: if it cannot be saved, the map is not touched; if the map
 * write fails, the file is put back. pol == NULL deletes.
 */
static int lt_policy_write(struct lt_ops *o, const struct lt_lpm_key *k,
			   const struct lt_src_policy *pol, char *err, size_t errlen)
{
	int fd = o->m->fd[LT_M_POLICY], ret;
	struct lt_overrides ov, before;
	struct lt_src_policy prev;
	int had = !lt_lpm_lookup_exact(fd, k, &prev);

	if (!pol && !had) {
		snprintf(err, errlen, "no policy or allowlist entry for exactly that prefix");
		return -ENOENT;
	}
	ret = lt_overrides_load(o->state_dir, &ov, err, errlen);
	if (ret)
		return ret;
	ret = lt_overrides_load(o->state_dir, &before, err, errlen);
	if (ret) {
		lt_overrides_free(&ov);
		return ret;
	}
	ret = pol ? lt_overrides_put(&ov, k, pol) : lt_overrides_remove(&ov, k);
	if (!ret)
		ret = lt_overrides_save(o->state_dir, &ov, err, errlen);
	if (ret)
		goto out;
	/* before the entry: BPF reads lt_policy only with the flag */
	if (pol)
		lt_cfg_flags(o->m->fd[LT_M_CONFIG], LT_CFG_POLICIES, 0);
	if (pol ? bpf_map_update_elem(fd, k, pol, BPF_ANY) : bpf_map_delete_elem(fd, k)) {
		ret = -errno;
		snprintf(err, errlen, "lt_policy: %s%s", strerror(-ret),
			 ret == -ENOSPC || ret == -E2BIG ? " (lt_policy is full)" : "");
		lt_overrides_save(o->state_dir, &before, err + strlen(err), errlen - strlen(err));
	}
out:
	lt_overrides_free(&ov);
	lt_overrides_free(&before);
	return ret;
}

int lt_op_policy_set(struct lt_ops *o, const struct lt_lpm_key *k, const struct lt_src_policy *pol,
		     char *err, size_t errlen)
{
	int lock = lt_ops_lock(o, err, errlen), ret;

	if (lock < 0)
		return -EIO;
	ret = lt_policy_write(o, k, pol, err, errlen);
	lt_ops_unlock(lock);
	return ret;
}

int lt_op_policy_del(struct lt_ops *o, const struct lt_lpm_key *k, char *err, size_t errlen)
{
	int lock = lt_ops_lock(o, err, errlen), ret;

	if (lock < 0)
		return -EIO;
	ret = lt_policy_write(o, k, NULL, err, errlen);
	lt_ops_unlock(lock);
	return ret;
}

int lt_op_allow_add(struct lt_ops *o, const struct lt_lpm_key *k, char *err, size_t errlen)
{
	struct lt_src_policy cur, allow = lt_allow_policy();
	int lock = lt_ops_lock(o, err, errlen), ret;

	if (lock < 0)
		return -EIO;
	/* the allowlist shares the policy trie: never overwrite a policy */
	if (!lt_policy_get_exact(o->m, k, &cur) && !(cur.flags & LT_POL_ALLOW)) {
		snprintf(err, errlen, "that prefix has a policy; `policy del` it first");
		ret = -EEXIST;
	} else {
		ret = lt_policy_write(o, k, &allow, err, errlen);
	}
	lt_ops_unlock(lock);
	return ret;
}

int lt_op_allow_del(struct lt_ops *o, const struct lt_lpm_key *k, char *err, size_t errlen)
{
	int lock = lt_ops_lock(o, err, errlen), ret;
	struct lt_src_policy cur;

	if (lock < 0)
		return -EIO;
	if (lt_policy_get_exact(o->m, k, &cur) || !(cur.flags & LT_POL_ALLOW)) {
		snprintf(err, errlen, "not in the allowlist");
		ret = -ENOENT;
	} else {
		ret = lt_policy_write(o, k, NULL, err, errlen);
	}
	lt_ops_unlock(lock);
	return ret;
}

int lt_op_dry_run(struct lt_ops *o, int on, char *err, size_t errlen)
{
	int cfd = o->m->fd[LT_M_CONFIG], lock, ret, was;
	struct lt_overrides ov;

	lock = lt_ops_lock(o, err, errlen);
	if (lock < 0)
		return -EIO;
	ret = lt_overrides_load(o->state_dir, &ov, err, errlen);
	if (ret)
		goto out;
	was = ov.dry_run;
	ov.dry_run = on;
	ret = lt_overrides_save(o->state_dir, &ov, err, errlen);
	if (ret)
		goto free;
	/* one bit on its own, then the generation: nothing else is rewritten */
	ret = lt_cfg_flags(cfd, on ? LT_CFG_DRY_RUN : 0, on ? 0 : LT_CFG_DRY_RUN);
	if (!ret)
		ret = lt_cfg_bump(cfd);
	if (ret) {
		snprintf(err, errlen, "lt_config: %s", strerror(-ret));
		ov.dry_run = was;
		lt_overrides_save(o->state_dir, &ov, err + strlen(err), errlen - strlen(err));
	}
free:
	lt_overrides_free(&ov);
out:
	lt_ops_unlock(lock);
	return ret;
}

/* ---- at attach and detach -------------------------------------------------- */

struct lt_pen_row {
	struct lt_lpm_key k;
	char pfx[80];
	int64_t until;
	__u32 strikes, reason;
};

struct lt_pen_rows {
	struct lt_pen_row *v;
	size_t n;
};

static int lt_collect_pen(void *ctx, const char *prefix, int64_t until, uint32_t strikes,
			  uint32_t reason)
{
	struct lt_pen_rows *rows = ctx;
	struct lt_pen_row *nv = realloc(rows->v, (rows->n + 1) * sizeof(*nv));
	char e[128];

	if (!nv)
		return -ENOMEM;
	rows->v = nv;
	memset(&nv[rows->n], 0, sizeof(nv[0]));
	if (lt_prefix_parse(prefix, &nv[rows->n].k, e, sizeof(e)))
		nv[rows->n].k.prefixlen = ~0U; /* unreadable: dropped below */
	snprintf(nv[rows->n].pfx, sizeof(nv[0].pfx), "%s", prefix);
	nv[rows->n].until = until;
	nv[rows->n].strikes = strikes;
	nv[rows->n].reason = reason;
	rows->n++;
	return 0;
}

struct lt_pen_unstored {
	struct lt_ops *o;
	const struct lt_pen_rows *rows;
	__u64 now;
	long added;
};

static int lt_record_unstored(void *ctx, const struct lt_lpm_key *k, const struct lt_penalty *p)
{
	struct lt_pen_unstored *u = ctx;
	char pfx[80];
	size_t i;

	for (i = 0; i < u->rows->n; i++)
		if (!memcmp(&u->rows->v[i].k, k, sizeof(*k)))
			return 0;
	if (p->until_ns > u->now) {
		lt_prefix_format(k, pfx, sizeof(pfx));
		u->added += !lt_store_penalty_put(u->o->st, pfx, lt_until_unix(p, u->now),
						  p->strikes, p->reason);
	}
	return 0;
}

int lt_ops_bans_sync(struct lt_ops *o, int penalty_map_new, char *err, size_t errlen)
{
	int fd = o->m->fd[LT_M_PENALTY], cfd = o->m->fd[LT_M_CONFIG], lock, ret;
	struct lt_pen_rows rows = { 0 };
	__u64 now = lt_now_ns();
	int64_t now_unix = (int64_t)time(NULL);
	long replayed = 0, dropped = 0, added = 0, moved = 0;
	struct lt_penalty p;
	size_t i;

	lock = lt_ops_lock(o, err, errlen);
	if (lock < 0)
		return -EIO;
	/*
	 * Every slot where BPF looks for it (lt_config may be new under an old
	 * lt_penalty: another seed), and pen_lens exactly the lengths in use.
	 */
	if (lt_penalty_reindex(fd, cfd, &moved))
		log_warn("bans: %ld entries of lt_penalty could not be re-indexed", moved);
	else if (moved)
		log_info("bans: %ld entries of lt_penalty re-indexed", moved);
	ret = lt_store_penalty_each(o->st, lt_collect_pen, &rows);
	if (ret) {
		snprintf(err, errlen, "store: cannot read the bans: %s", strerror(-ret));
		goto out;
	}
	for (i = 0; i < rows.n; i++) {
		struct lt_pen_row *r = &rows.v[i];
		int keep;

		if (r->k.prefixlen == ~0U || (r->until && r->until <= now_unix)) {
			keep = 0; /* expired or unreadable */
		} else if (penalty_map_new) {
			/* a reboot: the store is all there is, replay it */
			keep = !lt_penalty_ban(
				fd, cfd, &r->k,
				r->until ? (__u64)(r->until - now_unix) * LT_NS_PER_SEC : ~0ULL,
				r->reason, &p);
			if (keep && p.strikes != r->strikes && r->strikes) {
				p.strikes = r->strikes; /* as it was, not one more */
				lt_penalty_put(fd, cfd, &r->k, &p);
			}
			replayed += keep;
		} else {
			/* the pins survived: the map is the truth */
			keep = !lt_penalty_get(fd, cfd, &r->k, &p) && p.until_ns > now;
		}
		if (!keep && !lt_store_penalty_del(o->st, r->pfx))
			dropped++;
	}
	if (!penalty_map_new) {
		/* bans made in the map alone (a gateway) become durable */
		struct lt_pen_unstored u = { o, &rows, now, 0 };

		lt_penalty_each(fd, cfd, lt_record_unstored, &u);
		added = u.added;
		ret = 0;
	}
	if (replayed || dropped || added)
		log_info("bans: %ld replayed into a new lt_penalty, %ld dropped from the store, "
			 "%ld recorded from lt_penalty",
			 replayed, dropped, added);
out:
	free(rows.v);
	lt_ops_unlock(lock);
	return ret;
}

int lt_ops_forget_bans(const char *state_dir)
{
	struct lt_pen_rows rows = { 0 };
	struct lt_store st;
	char path[512], err[256];
	size_t i;
	int ret;

	snprintf(path, sizeof(path), "%s/leaky.db", state_dir);
	if (access(path, F_OK))
		return 0;
	ret = lt_store_open(&st, path, err, sizeof(err));
	if (ret)
		return ret;
	ret = lt_store_penalty_each(&st, lt_collect_pen, &rows);
	for (i = 0; !ret && i < rows.n; i++)
		ret = lt_store_penalty_del(&st, rows.v[i].pfx);
	free(rows.v);
	lt_store_close(&st);
	return ret;
}
