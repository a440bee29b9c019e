// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include "apply.h"
#include "cfg.h"
#include "log.h"
#include "penalty.h"
#include "units.h"

/*
 * Makes the hash/LPM map fd hold exactly keys[i] -> vals[i]: updates first
 * (so a prefix never disappears while it is being replaced), then deletes
 * the keys that are not wanted any more.
 */
static int lt_map_sync(int fd, const void *keys, size_t ksz, const void *vals, size_t vsz, size_t n)
{
	char *cur = NULL, *next = NULL;
	size_t i;
	int ret = 0;

	for (i = 0; i < n; i++) {
		if (bpf_map_update_elem(fd, (const char *)keys + i * ksz,
					(const char *)vals + i * vsz, BPF_ANY))
			return -errno;
	}
	cur = calloc(2, ksz);
	if (!cur)
		return -ENOMEM;
	next = cur + ksz;
	/* Restart the walk after each delete: deleting breaks get_next_key. */
	for (;;) {
		int found = 0, r = bpf_map_get_next_key(fd, NULL, next);

		while (!r) {
			int wanted = 0;

			for (i = 0; i < n && !wanted; i++)
				wanted = !memcmp(next, (const char *)keys + i * ksz, ksz);
			if (!wanted) {
				found = 1;
				break;
			}
			memcpy(cur, next, ksz);
			r = bpf_map_get_next_key(fd, cur, next);
		}
		if (!found)
			break;
		if (bpf_map_delete_elem(fd, next) && errno != ENOENT) {
			ret = -errno;
			break;
		}
	}
	free(cur);
	return ret;
}

/* lt_ports is an mmapped array: set exactly the listed ports. */
static int lt_ports_apply(int fd, const __u16 *ports, __u32 n)
{
	struct lt_port_val *pv;
	size_t len;
	__u32 i;

	pv = lt_map_mmap(fd, &len);
	if (!pv)
		return -errno;
	for (i = 0; i < LT_MAX_PORTS; i++) {
		__u32 j, want = 0;

		for (j = 0; j < n && !want; j++)
			want = ports[j] == i;
		__atomic_store_n(&pv[i].flags, want ? LT_PORT_PROTECTED : 0, __ATOMIC_RELAXED);
	}
	munmap(pv, len);
	return 0;
}

/* The latch half of an apply: the default policy, and the clock if calibrated. */
static int lt_apply_snap(struct lt_config_snap *s, void *arg)
{
	const struct lt_config *x = arg;

	s->dflt = x->dflt;
	if (x->clk_ns_per_jiffy) {
		s->clk_base_ns = x->clk_base_ns;
		s->clk_base_jiffies = x->clk_base_jiffies;
		s->clk_ns_per_jiffy = x->clk_ns_per_jiffy;
	} /* else keep the calibration made at attach */
	return 0;
}

int lt_config_apply(const struct lt_maps *m, const struct lt_agent_config *c, char *err,
		    size_t errlen)
{
	struct lt_lpm_key *pk = NULL;
	struct lt_src_policy *pp = NULL, allow = lt_allow_policy();
	__u32 i, n = c->npolicies + c->nallow;
	int ret = -ENOMEM, cfd;

	pk = calloc(n + 1, sizeof(*pk));
	pp = calloc(n + 1, sizeof(*pp));
	if (!pk || !pp)
		goto cleanup;
	for (i = 0; i < c->npolicies; i++) {
		pk[i] = c->policies[i].key;
		pp[i] = c->policies[i].pol;
	}
	for (i = 0; i < c->nallow; i++) {
		pk[c->npolicies + i] = c->allow[i];
		pp[c->npolicies + i] = allow;
	}
	ret = lt_ports_apply(m->fd[LT_M_PORTS], c->ports, c->nports);
	if (ret) {
		snprintf(err, errlen, "lt_ports: %s", strerror(-ret));
		goto cleanup;
	}
	/* before the entries: BPF reads lt_policy only with the flag */
	if (n)
		lt_cfg_flags(m->fd[LT_M_CONFIG], LT_CFG_POLICIES, 0);
	ret = lt_map_sync(m->fd[LT_M_POLICY], pk, sizeof(*pk), pp, sizeof(*pp), n);
	if (ret) {
		snprintf(err, errlen, "lt_policy: %s%s", strerror(-ret),
			 ret == -ENOSPC ? " (lt_policy is full)" : "");
		goto cleanup;
	}
	/*
	 * lt_config last, so BPF never sees the new flags before the new
	 * tables; the latch before LOADED, so BPF never sees LOADED without a
	 * policy. Each field on its own (lt_abi.h): a ban's generation bump or
	 * a dry-run toggle made meanwhile by another thread or process stays.
	 */
	cfd = m->fd[LT_M_CONFIG];
	ret = lt_cfg_update(cfd, lt_apply_snap, (void *)&c->xdp, err, errlen);
	if (ret)
		goto cleanup;
	ret = lt_cfg_set_sample_mask(cfd, c->xdp.sample_mask);
	if (!ret)
		ret = lt_cfg_flags(cfd, c->xdp.flags | LT_CFG_LOADED,
				   LT_CFG_DRY_RUN & ~c->xdp.flags);
	if (!ret)
		ret = lt_cfg_bump(cfd);
	if (ret) {
		snprintf(err, errlen, "lt_config: %s", strerror(-ret));
		goto cleanup;
	}
	ret = 0;
cleanup:
	free(pk);
	free(pp);
	return ret;
}

/* The policy a source bucket was metered by, by its content id. */
static int lt_find_policy(const struct lt_maps *m, const struct lt_config *cfg, __u32 id,
			  struct lt_src_policy *out)
{
	struct lt_lpm_key k, nk;
	int r;

	if (cfg->dflt.id == id) {
		*out = cfg->dflt;
		return 0;
	}
	r = bpf_map_get_next_key(m->fd[LT_M_POLICY], NULL, &nk);
	while (!r) {
		if (!bpf_map_lookup_elem(m->fd[LT_M_POLICY], &nk, out) && out->id == id)
			return 0;
		k = nk;
		r = bpf_map_get_next_key(m->fd[LT_M_POLICY], &k, &nk);
	}
	return -ENOENT;
}

void (*lt_sweep_race_hook)(struct lt_src_slot *s);

/* Frees the idle, empty slots of lt_src or lt_overflow (same slot layout). */
static int lt_sweep_slots(const struct lt_maps *m, const struct lt_config *cfg, int fd,
			  __u64 now_ns, __u64 idle_ns, __u64 margin, struct lt_sweep_stats *st)
{
	struct lt_src_policy pol;
	struct lt_src_slot *slots;
	size_t i, len, n;

	slots = lt_map_mmap(fd, &len);
	if (!slots)
		return -errno;
	n = (size_t)lt_map_entries(fd); /* len is page-rounded */
	for (i = 0; i < n; i++) {
		struct lt_src_slot *s = &slots[i];
		struct lt_src_key key;
		__u64 tag = __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE), last, t, conn, pkt;
		int idle, empty;

		if (!tag)
			continue;
		last = __atomic_load_n(&s->last_ns, __ATOMIC_RELAXED);
		t = now_ns > margin ? now_ns - margin : 0;
		idle = t > last && t - last >= idle_ns;
		conn = __atomic_load_n(&s->conn_tat, __ATOMIC_ACQUIRE);
		pkt = __atomic_load_n(&s->pkt_tat, __ATOMIC_ACQUIRE);
		/*
		 * Idle is not enough: a bucket still holding level must stay, or
		 * a source could reset its limit by pausing.
		 */
		empty = lt_find_policy(m, cfg, s->key.policy_id, &pol) ||
			(!lt_level_units(conn, t, &pol.conn) && !lt_level_units(pkt, t, &pol.pkt));
		if (lt_sweep_race_hook)
			lt_sweep_race_hook(s);
		/*
		 * Free only words that still hold the empty values judged above:
		 * an admission that lands after the check changed its word, so
		 * the CAS fails and the slot stays with its level. Zeroing an
		 * empty word changes no decision (an empty tat counts as s(now)),
		 * so a pkt word zeroed before a failed conn CAS is harmless.
		 */
		if (!idle || !empty ||
		    !__atomic_compare_exchange_n(&s->pkt_tat, &pkt, 0, 0, __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED) ||
		    !__atomic_compare_exchange_n(&s->conn_tat, &conn, 0, 0, __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED)) {
			st->sources_left++;
			continue;
		}
		key = s->key;
		memset(&s->key, 0, sizeof(s->key));
		if (!__atomic_compare_exchange_n(&s->tag, &tag, 0, 0, __ATOMIC_RELEASE,
						 __ATOMIC_RELAXED))
			continue;
		/*
		 * An admission between the zeroing and the release left level in
		 * a slot that is now free: take it back for its source.
		 */
		if (__atomic_load_n(&s->pkt_tat, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&s->conn_tat, __ATOMIC_ACQUIRE)) {
			__u64 zero64 = 0;

			if (__atomic_compare_exchange_n(&s->tag, &zero64, tag, 0, __ATOMIC_ACQ_REL,
							__ATOMIC_RELAXED)) {
				s->key = key;
				st->sources_left++;
			}
			continue;
		}
		st->sources_idle++;
	}
	munmap(slots, len);
	return 0;
}

int lt_sweep(const struct lt_maps *m, __u64 now_ns, __u64 idle_ns, struct lt_sweep_stats *st)
{
	struct lt_config cfg = {};
	__u64 margin;
	int r;

	memset(st, 0, sizeof(*st));
	/* also folds raw bpftool edits of lt_penalty into pen_lens */
	lt_penalty_expire(m->fd[LT_M_PENALTY], m->fd[LT_M_CONFIG], now_ns, &st->penalties_expired);

	/* BPF time is the tick clock: judge emptiness two ticks in its favour. */
	lt_cfg_read(m->fd[LT_M_CONFIG], &cfg);
	margin = 2 * cfg.clk_ns_per_jiffy;
	r = lt_sweep_slots(m, &cfg, m->fd[LT_M_SRC], now_ns, idle_ns, margin, st);
	/*
	 * lt_overflow's pairs (one per policy) go the same way: those of a
	 * policy that no longer exists are "empty" to lt_find_policy, so an
	 * edited or deleted policy's pair is freed once idle.
	 */
	if (!r && m->fd[LT_M_OVERFLOW] >= 0)
		r = lt_sweep_slots(m, &cfg, m->fd[LT_M_OVERFLOW], now_ns, idle_ns, margin, st);
	return r;
}
