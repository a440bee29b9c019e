// SPDX-License-Identifier: MIT
/*
 * penalty.c - the slot protocol of lt_penalty (lt_abi.h), writer side. Every
 * write runs under lt_config's wlock, so writers never race each other; the
 * order of stores is for the BPF readers (and lock-free readers here).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include "cfg.h"
#include "maps.h"
#include "penalty.h"
#include "units.h"

struct lt_pen_ctx {
	struct lt_pen_slot *slots;
	size_t slen;
	struct lt_config_val *cfg;
	size_t clen;
	int locked;
};

static int lt_pen_open(struct lt_pen_ctx *c, int pen_fd, int cfg_fd, int lock)
{
	char err[128];
	int ret;

	memset(c, 0, sizeof(*c));
	c->slots = lt_map_mmap(pen_fd, &c->slen);
	if (!c->slots)
		return -errno;
	if (lt_map_entries(pen_fd) != LT_PEN_SLOTS || c->slen < LT_PEN_SLOTS * sizeof(*c->slots)) {
		ret = -EINVAL; /* not this build's lt_penalty */
		goto fail;
	}
	c->cfg = lt_cfg_map(cfg_fd, &c->clen);
	if (!c->cfg) {
		ret = -errno;
		goto fail;
	}
	if (lock) {
		ret = lt_cfg_lock(c->cfg, err, sizeof(err));
		if (ret)
			goto fail;
		c->locked = 1;
	}
	return 0;
fail:
	if (c->cfg)
		munmap(c->cfg, c->clen);
	munmap(c->slots, c->slen);
	return ret;
}

static void lt_pen_close(struct lt_pen_ctx *c)
{
	if (c->locked)
		lt_cfg_unlock(c->cfg);
	munmap(c->cfg, c->clen);
	munmap(c->slots, c->slen);
}

static void lt_pen_words(const __u8 addr[16], __u64 *w0, __u64 *w1)
{
	memcpy(w0, addr, 8);
	memcpy(w1, addr + 8, 8);
}

/* k with the bits beyond prefixlen cleared; -EINVAL for a length > 128. */
static int lt_pen_canon(const struct lt_lpm_key *k, struct lt_lpm_key *out)
{
	if (k->prefixlen > 128)
		return -EINVAL;
	*out = *k;
	lt_addr_mask(out->addr, out->prefixlen);
	return 0;
}

static __u64 lt_pen_tag(const struct lt_config_val *cfg, const struct lt_lpm_key *k)
{
	__u64 w0, w1;

	lt_pen_words(k->addr, &w0, &w1);
	return lt_pen_hash(w0, w1, k->prefixlen, __atomic_load_n(&cfg->pen_seed, __ATOMIC_ACQUIRE));
}

static struct lt_pen_slot *lt_pen_at(struct lt_pen_ctx *c, __u64 tag, __u32 i)
{
	return &c->slots[((__u32)tag + i) & (LT_PEN_SLOTS - 1)];
}

/*
 * A consistent copy of slot s, or 0 when it is free or was rewritten while
 * read: its tag is read before and after, and must be the hash of what was
 * read (a free clears the tag first, a new slot stores it last).
 */
static int lt_pen_read(const struct lt_pen_ctx *c, const struct lt_pen_slot *s,
		       struct lt_lpm_key *k, struct lt_penalty *p)
{
	__u64 tag = __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE), w0, w1;

	if (!tag)
		return 0;
	memcpy(k->addr, s->addr, 16);
	k->prefixlen = __atomic_load_n(&s->prefixlen, __ATOMIC_RELAXED);
	p->until_ns = __atomic_load_n(&s->until_ns, __ATOMIC_RELAXED);
	p->strikes = __atomic_load_n(&s->strikes, __ATOMIC_RELAXED);
	p->reason = __atomic_load_n(&s->reason, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(&s->tag, __ATOMIC_RELAXED) != tag || k->prefixlen > 128)
		return 0;
	lt_pen_words(k->addr, &w0, &w1);
	return tag == lt_pen_hash(w0, w1, k->prefixlen,
				  __atomic_load_n(&c->cfg->pen_seed, __ATOMIC_ACQUIRE));
}

/* The slot holding exactly k (canonical) where BPF looks for it, or NULL. */
static struct lt_pen_slot *lt_pen_find(struct lt_pen_ctx *c, const struct lt_lpm_key *k)
{
	__u64 tag = lt_pen_tag(c->cfg, k);
	struct lt_pen_slot *s;
	__u32 i;

	for (i = 0; i < LT_PEN_PROBES; i++) {
		s = lt_pen_at(c, tag, i);
		if (__atomic_load_n(&s->tag, __ATOMIC_ACQUIRE) == tag &&
		    !memcmp(s->addr, k->addr, 16) && s->prefixlen == k->prefixlen)
			return s;
	}
	return NULL;
}

static int lt_popcount3(const __u64 l[3])
{
	return __builtin_popcountll(l[0]) + __builtin_popcountll(l[1]) + __builtin_popcountll(l[2]);
}

/* The writer's view of pen_lens (l[2] bit 0: LT_CFG_PEN_128), under wlock. */
static void lt_pen_lens(const struct lt_config_val *cfg, __u64 l[3])
{
	l[0] = __atomic_load_n(&cfg->pen_lens[0], __ATOMIC_ACQUIRE);
	l[1] = __atomic_load_n(&cfg->pen_lens[1], __ATOMIC_ACQUIRE);
	l[2] = !!(__atomic_load_n(&cfg->flags, __ATOMIC_ACQUIRE) & LT_CFG_PEN_128);
}

/* Word w of pen_lens |= bits (w 2: the flag), atomically. */
static void lt_pen_lens_or(struct lt_config_val *cfg, int w, __u64 bits)
{
	if (w < 2)
		__atomic_fetch_or(&cfg->pen_lens[w], bits, __ATOMIC_SEQ_CST);
	else if (bits & 1)
		__atomic_fetch_or(&cfg->flags, LT_CFG_PEN_128, __ATOMIC_SEQ_CST);
}

/* Word w of pen_lens &= bits (w 2: the flag), atomically. */
static void lt_pen_lens_and(struct lt_config_val *cfg, int w, __u64 bits)
{
	if (w < 2)
		__atomic_fetch_and(&cfg->pen_lens[w], bits, __ATOMIC_SEQ_CST);
	else if (!(bits & 1))
		__atomic_fetch_and(&cfg->flags, ~LT_CFG_PEN_128, __ATOMIC_SEQ_CST);
}

static void lt_pen_bit_set(struct lt_config_val *cfg, __u32 len)
{
	lt_pen_lens_or(cfg, (int)(len / 64), 1ULL << (len % 64));
}

/* Frees s: the tag first, so no reader matches the fields being cleared. */
static void lt_pen_free(struct lt_pen_slot *s)
{
	__atomic_store_n(&s->tag, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&s->until_ns, 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memset(s->addr, 0, 16);
	s->prefixlen = 0;
	s->strikes = 0;
	s->reason = 0;
}

/* Fills a free slot: every field first, the tag last (release). */
static void lt_pen_fill(struct lt_pen_slot *s, __u64 tag, const struct lt_lpm_key *k,
			const struct lt_penalty *p)
{
	memcpy(s->addr, k->addr, 16);
	s->prefixlen = k->prefixlen;
	s->strikes = p->strikes;
	s->reason = p->reason;
	s->_pad = 0;
	__atomic_store_n(&s->until_ns, p->until_ns, __ATOMIC_RELAXED);
	__atomic_store_n(&s->tag, tag, __ATOMIC_RELEASE);
}

/* Slot i holds tag away from its home, the first slot of its window. */
static int lt_pen_is_far(__u32 i, __u64 tag)
{
	return i != ((__u32)tag & (LT_PEN_SLOTS - 1));
}

/*
 * pen_lens := the lengths of the live slots, pen_far := how many of them
 * are away from home, and the seed set: under wlock, after the frees.
 * Bits are set before any is cleared, so a length in use is never absent.
 */
static void lt_pen_relens(struct lt_pen_ctx *c)
{
	__u64 want[3] = { 0, 0, 0 }, cur[3];
	struct lt_lpm_key k;
	struct lt_penalty p;
	__u32 i, far = 0;
	int w;

	for (i = 0; i < LT_PEN_SLOTS; i++) {
		if (!lt_pen_read(c, &c->slots[i], &k, &p))
			continue;
		want[k.prefixlen / 64] |= 1ULL << (k.prefixlen % 64);
		far += lt_pen_is_far(i, __atomic_load_n(&c->slots[i].tag, __ATOMIC_RELAXED));
	}
	__atomic_store_n(&c->cfg->pen_far, far, __ATOMIC_RELEASE);
	lt_pen_lens(c->cfg, cur);
	for (w = 0; w < 3; w++)
		if (want[w] & ~cur[w])
			lt_pen_lens_or(c->cfg, w, want[w]);
	for (w = 0; w < 3; w++)
		if (cur[w] & ~want[w])
			lt_pen_lens_and(c->cfg, w, want[w]);
}

/* A random seed with the first ban: the slots of later bans depend on it. */
static int lt_pen_seed(struct lt_pen_ctx *c)
{
	__u64 seed = 0;

	if (__atomic_load_n(&c->cfg->pen_seed, __ATOMIC_ACQUIRE))
		return 0;
	while (!seed)
		if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
			return -errno;
	__atomic_store_n(&c->cfg->pen_seed, seed, __ATOMIC_RELEASE);
	return 0;
}

/* Writes *p for canonical k under wlock: in place, or in a free slot. */
static int lt_pen_write(struct lt_pen_ctx *c, const struct lt_lpm_key *k,
			const struct lt_penalty *p)
{
	struct lt_pen_slot *s = lt_pen_find(c, k);
	__u64 lens[3], tag;
	__u32 i;
	int ret;

	if (s) {
		/* each field on its own; until_ns is what BPF decides by */
		__atomic_store_n(&s->strikes, p->strikes, __ATOMIC_RELAXED);
		__atomic_store_n(&s->reason, p->reason, __ATOMIC_RELAXED);
		__atomic_store_n(&s->until_ns, p->until_ns, __ATOMIC_RELEASE);
		return 0;
	}
	lt_pen_lens(c->cfg, lens);
	if (!(lens[k->prefixlen / 64] & (1ULL << (k->prefixlen % 64))) &&
	    lt_popcount3(lens) >= LT_PEN_LENS_MAX)
		return -E2BIG;
	ret = lt_pen_seed(c);
	if (ret)
		return ret;
	tag = lt_pen_tag(c->cfg, k);
	for (i = 0; i < LT_PEN_PROBES; i++) {
		s = lt_pen_at(c, tag, i);
		if (!__atomic_load_n(&s->tag, __ATOMIC_ACQUIRE))
			break;
	}
	if (i == LT_PEN_PROBES)
		return -ENOSPC;
	/* before the tag: BPF reads past the home slot from then on */
	if (i)
		__atomic_fetch_add(&c->cfg->pen_far, 1, __ATOMIC_SEQ_CST);
	lt_pen_fill(s, tag, k, p);
	/* after the slot: a set bit always finds a whole slot */
	lt_pen_bit_set(c->cfg, k->prefixlen);
	return 0;
}

/* Tells the BPF per-CPU penalty memo (lt_scache) that lt_penalty changed. */
static void lt_pen_changed(struct lt_pen_ctx *c)
{
	__atomic_fetch_add(&c->cfg->generation, 1, __ATOMIC_RELEASE);
}

int lt_penalty_get(int pen_fd, int cfg_fd, const struct lt_lpm_key *k, struct lt_penalty *out)
{
	struct lt_pen_ctx c;
	struct lt_pen_slot *s;
	struct lt_lpm_key ck, rk;
	struct lt_penalty p;
	int ret = lt_pen_canon(k, &ck);

	if (ret)
		return ret;
	ret = lt_pen_open(&c, pen_fd, cfg_fd, 0);
	if (ret)
		return ret;
	s = lt_pen_find(&c, &ck);
	ret = s && lt_pen_read(&c, s, &rk, &p) ? 0 : -ENOENT;
	if (!ret && out)
		*out = p;
	lt_pen_close(&c);
	return ret;
}

int lt_penalty_ban(int pen_fd, int cfg_fd, const struct lt_lpm_key *k, __u64 dur_ns, __u32 reason,
		   struct lt_penalty *out)
{
	struct lt_penalty p = {}, prev;
	struct lt_lpm_key ck, rk;
	struct lt_pen_slot *s;
	struct lt_pen_ctx c;
	__u64 now = lt_now_ns();
	int ret = lt_pen_canon(k, &ck);

	if (ret)
		return ret;
	ret = lt_pen_open(&c, pen_fd, cfg_fd, 1);
	if (ret)
		return ret;
	/* strikes carry over from a ban of this very prefix, not one covering it */
	s = lt_pen_find(&c, &ck);
	if (s && lt_pen_read(&c, s, &rk, &prev))
		p.strikes = prev.strikes;
	p.until_ns = dur_ns == ~0ULL || dur_ns > ~0ULL - now ? ~0ULL : now + dur_ns;
	p.strikes++;
	p.reason = reason;
	ret = lt_pen_write(&c, &ck, &p);
	if (!ret) {
		lt_pen_changed(&c);
		if (out)
			*out = p;
	}
	lt_pen_close(&c);
	return ret;
}

int lt_penalty_put(int pen_fd, int cfg_fd, const struct lt_lpm_key *k, const struct lt_penalty *p)
{
	struct lt_lpm_key ck;
	struct lt_pen_ctx c;
	int ret = lt_pen_canon(k, &ck);

	if (ret)
		return ret;
	ret = lt_pen_open(&c, pen_fd, cfg_fd, 1);
	if (ret)
		return ret;
	ret = lt_pen_write(&c, &ck, p);
	if (!ret)
		lt_pen_changed(&c);
	lt_pen_close(&c);
	return ret;
}

int lt_penalty_unban(int pen_fd, int cfg_fd, const struct lt_lpm_key *k)
{
	struct lt_lpm_key ck;
	struct lt_pen_slot *s;
	struct lt_pen_ctx c;
	int ret = lt_pen_canon(k, &ck);

	if (ret)
		return ret;
	ret = lt_pen_open(&c, pen_fd, cfg_fd, 1);
	if (ret)
		return ret;
	s = lt_pen_find(&c, &ck);
	if (s) {
		lt_pen_free(s);
		lt_pen_relens(&c);
		lt_pen_changed(&c);
	} else {
		ret = -ENOENT;
	}
	lt_pen_close(&c);
	return ret;
}

int lt_penalty_each(int pen_fd, int cfg_fd,
		    int (*fn)(void *ctx, const struct lt_lpm_key *k, const struct lt_penalty *p),
		    void *ctx)
{
	struct lt_lpm_key k;
	struct lt_penalty p;
	struct lt_pen_ctx c;
	__u32 i;
	int ret = lt_pen_open(&c, pen_fd, cfg_fd, 0);

	if (ret)
		return ret;
	for (i = 0; i < LT_PEN_SLOTS && !ret; i++)
		if (lt_pen_read(&c, &c.slots[i], &k, &p))
			ret = fn(ctx, &k, &p);
	lt_pen_close(&c);
	return ret;
}

static int lt_pen_count_cb(void *ctx, const struct lt_lpm_key *k, const struct lt_penalty *p)
{
	(void)k;
	(void)p;
	(*(long *)ctx)++;
	return 0;
}

long lt_penalty_count(int pen_fd, int cfg_fd)
{
	long n = 0;
	int ret = lt_penalty_each(pen_fd, cfg_fd, lt_pen_count_cb, &n);

	return ret ? ret : n;
}

int lt_penalty_expire(int pen_fd, int cfg_fd, __u64 now_ns, long *freed)
{
	struct lt_lpm_key k;
	struct lt_penalty p;
	struct lt_pen_ctx c;
	long n = 0;
	__u32 i;
	int ret = lt_pen_open(&c, pen_fd, cfg_fd, 1);

	if (freed)
		*freed = 0;
	if (ret)
		return ret;
	for (i = 0; i < LT_PEN_SLOTS; i++) {
		if (lt_pen_read(&c, &c.slots[i], &k, &p) && p.until_ns <= now_ns) {
			lt_pen_free(&c.slots[i]);
			n++;
		}
	}
	lt_pen_relens(&c);
	if (n)
		lt_pen_changed(&c);
	lt_pen_close(&c);
	if (freed)
		*freed = n;
	return 0;
}

int lt_penalty_reindex(int pen_fd, int cfg_fd, long *moved)
{
	struct lt_pen_slot *s, *home;
	struct lt_lpm_key k;
	struct lt_penalty p;
	struct lt_pen_ctx c;
	long n = 0;
	__u32 i;
	int ret = lt_pen_open(&c, pen_fd, cfg_fd, 1), r;

	if (moved)
		*moved = 0;
	if (ret)
		return ret;
	for (i = 0; i < LT_PEN_SLOTS; i++) {
		__u64 tag = __atomic_load_n(&c.slots[i].tag, __ATOMIC_ACQUIRE);

		s = &c.slots[i];
		if (!tag || s->prefixlen > 128)
			continue;
		memcpy(k.addr, s->addr, 16);
		k.prefixlen = s->prefixlen;
		home = lt_pen_find(&c, &k);
		if (home == s)
			continue;
		/* placed under another seed (or by hand): write it where BPF looks */
		p.until_ns = s->until_ns;
		p.strikes = s->strikes;
		p.reason = s->reason;
		n++;
		if (!home) {
			r = lt_pen_seed(&c);
			if (!r)
				r = lt_pen_write(&c, &k, &p);
			if (r) {
				ret = r;
				continue;
			}
		}
		lt_pen_free(s);
	}
	lt_pen_relens(&c);
	if (n)
		lt_pen_changed(&c);
	lt_pen_close(&c);
	if (moved)
		*moved = n;
	return ret;
}

int lt_penalty_match(int pen_fd, int cfg_fd, const __u8 addr[16], __u64 now_ns,
		     struct lt_lpm_key *which, struct lt_penalty *out)
{
	struct lt_lpm_key k, rk;
	struct lt_pen_slot *s;
	struct lt_penalty p;
	struct lt_pen_ctx c;
	__u64 lens[3];
	__u32 len;
	int ret = lt_pen_open(&c, pen_fd, cfg_fd, 0), hit = 0;

	if (ret)
		return ret;
	lt_pen_lens(c.cfg, lens);
	for (len = 0; len <= 128 && !hit; len++) {
		if (!(lens[len / 64] & (1ULL << (len % 64))))
			continue;
		memcpy(k.addr, addr, 16);
		k.prefixlen = len;
		lt_addr_mask(k.addr, len);
		s = lt_pen_find(&c, &k);
		if (s && lt_pen_read(&c, s, &rk, &p) && now_ns < p.until_ns) {
			hit = 1;
			if (which)
				*which = rk;
			if (out)
				*out = p;
		}
	}
	lt_pen_close(&c);
	return hit;
}

void lt_penalty_strerror(int err, char *buf, size_t len)
{
	switch (err) {
	case -ENOSPC:
		snprintf(buf, len,
			 "lt_penalty: no free slot near this prefix (the penalty box is too "
			 "full there): unban or ban a shorter prefix");
		break;
	case -E2BIG:
		snprintf(buf, len,
			 "lt_penalty: more than %d distinct prefix lengths would be banned: use "
			 "a length already in use",
			 LT_PEN_LENS_MAX);
		break;
	case -EBUSY:
		snprintf(buf, len,
			 "lt_penalty: another process holds lt_config's writer lock (stopped?); "
			 "try again");
		break;
	default:
		snprintf(buf, len, "lt_penalty: %s", strerror(-err));
	}
}
