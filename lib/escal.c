// SPDX-License-Identifier: MIT
/* escal.c - the lt_escal slot protocol and the strike arithmetic (see escal.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <bpf/bpf.h>
#include "escal.h"
#include "maps.h"
#include "penalty.h"
#include "units.h"

#define LT_ESC_LOW ((1ULL << LT_ESC_COUNT_BITS) - 1)
#define LT_ESC_SLOW ((1ULL << LT_ESC_STRIKES_BITS) - 1)

static __u64 lt_esc_pack(__u64 t_ms, __u64 low)
{
	return t_ms << LT_ESC_COUNT_BITS | (low & LT_ESC_LOW);
}

static __u64 lt_esc_t(__u64 w)
{
	return w >> LT_ESC_COUNT_BITS;
}

static __u64 lt_esc_low(__u64 w)
{
	return w & LT_ESC_LOW;
}

__u32 lt_esc_decayed(__u32 s, __u64 end_ms, __u64 now_ms, __u64 decay_ms)
{
	__u64 gone;

	if (!s || now_ms <= end_ms)
		return s;
	if (!decay_ms)
		return 0;
	gone = (now_ms - end_ms) / decay_ms;
	return gone >= s ? 0 : s - (__u32)gone;
}

__u64 lt_esc_ttl_ms(const struct lt_esc_policy *p, __u32 s)
{
	__u64 t = p->ttl_ms;

	/* doubling by steps: no shift past 63, no overflow, stops at the cap */
	while (s-- > 1 && t < p->max_ttl_ms)
		t = t > p->max_ttl_ms / 2 ? p->max_ttl_ms : t * 2;
	return t < p->max_ttl_ms ? t : p->max_ttl_ms;
}

void lt_escal_init_mem(struct lt_escal *e, void *tab, __u32 n)
{
	memset(e, 0, sizeof(*e));
	e->tab = tab;
	e->n = n;
	e->pen_fd = e->cfg_fd = -1;
}

static int lt_esc_fd(const char *pin_dir, int id, char *err, size_t errlen)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", pin_dir, lt_map_names[id]);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		fd = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-fd));
	}
	return fd;
}

int lt_escal_open(struct lt_escal *e, const char *pin_dir, char *err, size_t errlen)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	size_t len;
	void *p;
	int fd, ret;

	lt_escal_init_mem(e, NULL, 0);
	fd = lt_esc_fd(pin_dir, LT_M_ESCAL, err, errlen);
	if (fd < 0)
		return fd;
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen) ||
	    info.value_size != sizeof(struct lt_esc_slot) || info.max_entries < 2 ||
	    (info.max_entries & (info.max_entries - 1))) {
		snprintf(err, errlen, "%s/lt_escal: not this build's map", pin_dir);
		close(fd);
		return -EPROTO;
	}
	p = lt_map_mmap(fd, &len);
	ret = p ? 0 : -errno;
	close(fd);
	if (ret) {
		snprintf(err, errlen, "%s/lt_escal: mmap: %s", pin_dir, strerror(-ret));
		return ret;
	}
	lt_escal_init_mem(e, p, info.max_entries);
	e->map_len = len;
	e->pen_fd = lt_esc_fd(pin_dir, LT_M_PENALTY, err, errlen);
	if (e->pen_fd < 0) {
		ret = e->pen_fd;
		goto fail;
	}
	e->cfg_fd = lt_esc_fd(pin_dir, LT_M_CONFIG, err, errlen);
	if (e->cfg_fd < 0) {
		ret = e->cfg_fd;
		goto fail;
	}
	return 0;
fail:
	lt_escal_close(e);
	return ret;
}

void lt_escal_close(struct lt_escal *e)
{
	if (e->tab && e->map_len)
		munmap(e->tab, e->map_len);
	if (e->pen_fd >= 0)
		close(e->pen_fd);
	if (e->cfg_fd >= 0)
		close(e->cfg_fd);
	lt_escal_init_mem(e, NULL, 0);
}

/* The hash seed in slot 0's tag, set once (random) by whoever comes first. */
static __u64 lt_esc_seed(struct lt_escal *e)
{
	__u64 seed = __atomic_load_n(&e->tab[0].tag, __ATOMIC_ACQUIRE), mine = 0, zero = 0;

	if (seed)
		return seed;
	while (!mine)
		if (getrandom(&mine, sizeof(mine), 0) != sizeof(mine))
			mine = lt_now_ns() ^ (__u64)getpid() << 32; /* never fails in practice */
	if (__atomic_compare_exchange_n(&e->tab[0].tag, &zero, mine, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return mine;
	return zero; /* the winner's */
}

static __u64 lt_esc_tag(struct lt_escal *e, const __u8 addr[16])
{
	__u64 w0, w1;

	memcpy(&w0, addr, 8);
	memcpy(&w1, addr + 8, 8);
	return lt_pen_hash(w0, w1, 128, lt_esc_seed(e));
}

static struct lt_esc_slot *lt_esc_at(struct lt_escal *e, __u64 tag, __u32 i)
{
	/* slot 0 is the header */
	return &e->tab[1 + (__u32)((tag + i) % (e->n - 1))];
}

/* A slot whose source can be forgotten: nothing of it would matter any more. */
static int lt_esc_stale(const struct lt_esc_slot *s, const struct lt_esc_policy *p, __u64 now)
{
	__u64 w = __atomic_load_n(&s->win, __ATOMIC_ACQUIRE);
	__u64 q = __atomic_load_n(&s->quiet, __ATOMIC_ACQUIRE);
	__u64 k = __atomic_load_n(&s->strk, __ATOMIC_ACQUIRE);
	__u64 end = k >> LT_ESC_STRIKES_BITS;

	if (lt_esc_low(w) && now < lt_esc_t(w) + p->window_ms)
		return 0;
	if (now < lt_esc_t(q) + lt_esc_low(q))
		return 0;
	if (now < end)
		return 0;
	return !lt_esc_decayed((__u32)(k & LT_ESC_SLOW), end, now, p->decay_ms);
}

/* The source's slot: found, claimed free, or taken over from a stale source; NULL if none. */
static struct lt_esc_slot *lt_esc_slot(struct lt_escal *e, const struct lt_esc_policy *p,
				       const __u8 addr[16], __u64 now, int claim)
{
	__u64 tag = lt_esc_tag(e, addr), cur;
	struct lt_esc_slot *s, *free_, *stale;
	int tries;
	__u32 i;

	for (tries = 0; tries < 4; tries++) {
		free_ = stale = NULL;
		for (i = 0; i < LT_ESC_PROBES; i++) {
			s = lt_esc_at(e, tag, i);
			cur = __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE);
			if (cur == tag)
				return s;
			if (!cur && !free_)
				free_ = s;
			else if (cur && !stale && lt_esc_stale(s, p, now))
				stale = s;
		}
		if (!claim)
			return NULL;
		s = free_ ? free_ : stale;
		if (!s)
			return NULL; /* every slot near it is busy: untracked */
		cur = free_ ? 0 : __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE);
		if (__atomic_compare_exchange_n(&s->tag, &cur, tag, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			/* ours: what the previous source left is forgotten */
			__atomic_store_n(&s->win, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&s->quiet, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&s->strk, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&s->bans, 0, __ATOMIC_RELEASE);
			memcpy(s->addr, addr, 16);
			return s;
		}
		/* someone else claimed it (perhaps for this very source): look again */
	}
	return NULL;
}

/*
 * The quiet word after a 429 at now announcing wait: a new quiet period if
 * the last one is over, else the same one ending at the earlier deadline.
 */
static __u64 lt_esc_quiet_next(__u64 q, __u64 now, __u64 wait)
{
	__u64 t0 = lt_esc_t(q), until = t0 + lt_esc_low(q), mine;

	if (wait > LT_ESC_WAIT_MAX_MS)
		wait = LT_ESC_WAIT_MAX_MS;
	mine = now + wait;
	if (!t0 || now >= until)
		return lt_esc_pack(now, wait);
	return lt_esc_pack(t0, (mine < until ? mine : until) - t0);
}

int lt_escal_rejected(struct lt_escal *e, const struct lt_esc_policy *p, const __u8 addr[16],
		      __u64 arrival_ms, __u64 now_ms, __u64 wait_ms, struct lt_esc_verdict *v)
{
	struct lt_esc_slot *s;
	__u64 q, nq, w, nw, k, nk, t0, end;
	__u32 c, st;
	int i;

	memset(v, 0, sizeof(*v));
	if (!p->rejections || !p->window_ms || !p->ttl_ms || p->max_ttl_ms < p->ttl_ms)
		return -EINVAL;
	if (!e->tab || e->n < 2 || !now_ms)
		return 0;
	s = lt_esc_slot(e, p, addr, now_ms, 1);
	if (!s)
		return 0;
	v->tracked = 1;

	/* did it ignore a wait announced before it arrived? then the new announcement */
	q = __atomic_load_n(&s->quiet, __ATOMIC_ACQUIRE);
	for (i = 0; i < LT_ESC_TRIES; i++) {
		t0 = lt_esc_t(q);
		v->counted = t0 && t0 < arrival_ms && arrival_ms < t0 + lt_esc_low(q);
		nq = lt_esc_quiet_next(q, now_ms, wait_ms);
		if (nq == q || __atomic_compare_exchange_n(&s->quiet, &q, nq, 0, __ATOMIC_ACQ_REL,
							   __ATOMIC_ACQUIRE))
			break;
	}
	if (!v->counted)
		return 0;

	/* one more in the window; the one that reaches rejections starts a new window and bans */
	w = __atomic_load_n(&s->win, __ATOMIC_ACQUIRE);
	for (i = 0;; i++) {
		if (i == LT_ESC_TRIES)
			return 0; /* contended beyond reason: this count is dropped */
		c = (__u32)lt_esc_low(w);
		if (!c || now_ms >= lt_esc_t(w) + p->window_ms)
			c = 1; /* a new window from this one */
		else if (c < LT_ESC_COUNT_MAX)
			c++;
		nw = lt_esc_pack(c == 1 ? now_ms : lt_esc_t(w), c);
		v->ban = c >= p->rejections;
		if (v->ban)
			nw = lt_esc_pack(now_ms, 0); /* this offence is spent */
		if (__atomic_compare_exchange_n(&s->win, &w, nw, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			break;
	}
	v->count = c;
	if (!v->ban)
		return 0;

	/* the strike: decayed since the last ban ended, plus this one; the TTL doubles */
	k = __atomic_load_n(&s->strk, __ATOMIC_ACQUIRE);
	for (i = 0; i < LT_ESC_TRIES; i++) {
		end = k >> LT_ESC_STRIKES_BITS;
		st = lt_esc_decayed((__u32)(k & LT_ESC_SLOW), end, now_ms, p->decay_ms);
		if (st < LT_ESC_STRIKES_MAX)
			st++;
		v->strikes = st;
		v->ttl_ms = lt_esc_ttl_ms(p, st);
		nk = (now_ms + v->ttl_ms) << LT_ESC_STRIKES_BITS | st;
		if (__atomic_compare_exchange_n(&s->strk, &k, nk, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			break;
	}
	__atomic_fetch_add(&s->bans, 1, __ATOMIC_RELAXED);
	return 0;
}

int lt_escal_ban(struct lt_escal *e, const __u8 addr[16], const struct lt_esc_verdict *v,
		 struct lt_penalty *out)
{
	struct lt_lpm_key k = { .prefixlen = 128 };
	struct lt_penalty p;
	int ret;

	if (e->pen_fd < 0 || e->cfg_fd < 0)
		return -EBADF;
	memcpy(k.addr, addr, 16);
	ret = lt_penalty_ban(e->pen_fd, e->cfg_fd, &k, v->ttl_ms * 1000000ULL, LT_PENALTY_GATEWAY,
			     &p);
	if (ret)
		return ret;
	/*
	 * lt_penalty_ban counts strikes while the entry lives, and the agent
	 * frees it once expired: the strikes that decide the TTL are ours, so
	 * the entry says the same (one more word store under the same lock).
	 */
	if (p.strikes != v->strikes) {
		p.strikes = v->strikes;
		ret = lt_penalty_put(e->pen_fd, e->cfg_fd, &k, &p);
	}
	if (!ret && out)
		*out = p;
	return ret;
}

int lt_escal_get(struct lt_escal *e, const __u8 addr[16], struct lt_esc_slot *out)
{
	struct lt_esc_policy none = { 0 };
	struct lt_esc_slot *s;

	if (!e->tab || e->n < 2)
		return -ENOENT;
	s = lt_esc_slot(e, &none, addr, 0, 0);
	if (!s)
		return -ENOENT;
	memcpy(out, s, sizeof(*out));
	return 0;
}
