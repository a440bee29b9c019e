// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "apply.h"
#include "log.h"
#include "units.h"

/*
 * Makes the hash/LPM map fd hold exactly keys[i] -> vals[i]: updates first
 * (so a prefix never disappears while it is being replaced), then deletes
 * the keys that are not wanted any more.
 */
static int lt_map_sync(int fd, const void *keys, size_t ksz, const void *vals, size_t vsz,
		       size_t n)
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

int lt_config_apply(const struct lt_maps *m, const struct lt_agent_config *c, char *err,
		    size_t errlen)
{
	struct lt_port_val *pv = NULL;
	struct lt_allow_val *av = NULL;
	struct lt_lpm_key *pk = NULL;
	struct lt_src_policy *pp = NULL;
	struct lt_config cur = {}, next = c->xdp;
	__u32 zero = 0, i;
	int ret = -ENOMEM;

	pv = calloc(c->nports + 1, sizeof(*pv));
	av = calloc(c->nallow + 1, sizeof(*av));
	pk = calloc(c->npolicies + 1, sizeof(*pk));
	pp = calloc(c->npolicies + 1, sizeof(*pp));
	if (!pv || !av || !pk || !pp)
		goto cleanup;
	for (i = 0; i < c->npolicies; i++) {
		pk[i] = c->policies[i].key;
		pp[i] = c->policies[i].pol;
	}
	ret = lt_map_sync(m->fd[LT_M_PORTS], c->ports, sizeof(c->ports[0]), pv, sizeof(*pv),
			  c->nports);
	if (ret) {
		snprintf(err, errlen, "lt_ports: %s", strerror(-ret));
		goto cleanup;
	}
	ret = lt_map_sync(m->fd[LT_M_ALLOW], c->allow, sizeof(*c->allow), av, sizeof(*av),
			  c->nallow);
	if (ret) {
		snprintf(err, errlen, "lt_allow: %s", strerror(-ret));
		goto cleanup;
	}
	ret = lt_map_sync(m->fd[LT_M_POLICY], pk, sizeof(*pk), pp, sizeof(*pp), c->npolicies);
	if (ret) {
		snprintf(err, errlen, "lt_policy: %s", strerror(-ret));
		goto cleanup;
	}
	if (!bpf_map_lookup_elem(m->fd[LT_M_CONFIG], &zero, &cur))
		next.generation = cur.generation + 1;
	if (bpf_map_update_elem(m->fd[LT_M_CONFIG], &zero, &next, BPF_ANY)) {
		ret = -errno;
		snprintf(err, errlen, "lt_config: %s", strerror(-ret));
		goto cleanup;
	}
	ret = 0;
cleanup:
	free(pv);
	free(av);
	free(pk);
	free(pp);
	return ret;
}

int lt_penalty_ban(int fd, const struct lt_lpm_key *key, __u64 dur_ns, __u32 reason)
{
	struct lt_penalty p = {};
	struct lt_lpm_key k = *key;
	__u64 now = lt_now_ns();

	/* LPM lookup would return a covering prefix; we want this exact one. */
	if (!bpf_map_lookup_elem(fd, &k, &p) && memcmp(&k, key, sizeof(k)))
		memset(&p, 0, sizeof(p));
	p.until_ns = dur_ns == ~0ULL || dur_ns > ~0ULL - now ? ~0ULL : now + dur_ns;
	p.strikes++;
	p.reason = reason;
	if (bpf_map_update_elem(fd, key, &p, BPF_ANY))
		return -errno;
	return 0;
}

int lt_penalty_unban(int fd, const struct lt_lpm_key *key)
{
	if (bpf_map_delete_elem(fd, key))
		return -errno;
	return 0;
}

/* The policy a source bucket was metered by, by its content id. */
static int lt_find_policy(const struct lt_maps *m, __u32 id, struct lt_src_policy *out)
{
	struct lt_lpm_key k, nk;
	struct lt_config cfg;
	__u32 zero = 0;
	int r;

	if (!bpf_map_lookup_elem(m->fd[LT_M_CONFIG], &zero, &cfg) && cfg.dflt.id == id) {
		*out = cfg.dflt;
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

int lt_sweep(const struct lt_maps *m, __u64 now_ns, __u64 idle_ns, struct lt_sweep_stats *st)
{
	struct lt_src_key sk, snk, *dead = NULL;
	struct lt_lpm_key pk, pnk, *pdead = NULL;
	size_t ndead = 0, cap = 0, npdead = 0, pcap = 0, i;
	struct lt_src_policy pol;
	struct lt_src_state s;
	struct lt_penalty p;
	int r;

	memset(st, 0, sizeof(*st));
	/* Collect first, delete after: deleting during a walk restarts it. */
	r = bpf_map_get_next_key(m->fd[LT_M_PENALTY], NULL, &pnk);
	while (!r) {
		if (!bpf_map_lookup_elem(m->fd[LT_M_PENALTY], &pnk, &p) && p.until_ns <= now_ns) {
			if (npdead == pcap) {
				void *n = realloc(pdead, (pcap = pcap * 2 + 16) * sizeof(*pdead));

				if (!n)
					break;
				pdead = n;
			}
			pdead[npdead++] = pnk;
		}
		pk = pnk;
		r = bpf_map_get_next_key(m->fd[LT_M_PENALTY], &pk, &pnk);
	}
	for (i = 0; i < npdead; i++)
		st->penalties_expired += !bpf_map_delete_elem(m->fd[LT_M_PENALTY], &pdead[i]);

	r = bpf_map_get_next_key(m->fd[LT_M_SRC], NULL, &snk);
	while (!r) {
		if (!bpf_map_lookup_elem(m->fd[LT_M_SRC], &snk, &s)) {
			int idle = now_ns > s.last_ns && now_ns - s.last_ns >= idle_ns;
			/*
			 * Idle is not enough: a bucket still holding level must
			 * stay, or a source could reset its limit by pausing.
			 */
			int empty = lt_find_policy(m, snk.policy_id, &pol) ||
				    (!lt_level_units(s.conn_tat, now_ns, &pol.conn) &&
				     !lt_level_units(s.pkt_tat, now_ns, &pol.pkt));
			if (idle && empty) {
				if (ndead == cap) {
					void *n = realloc(dead, (cap = cap * 2 + 64) * sizeof(*dead));

					if (!n)
						break;
					dead = n;
				}
				dead[ndead++] = snk;
			} else {
				st->sources_left++;
			}
		}
		sk = snk;
		r = bpf_map_get_next_key(m->fd[LT_M_SRC], &sk, &snk);
	}
	/*
	 * Accepted race: a packet may refill a bucket between our check and the
	 * delete; it loses at most that one packet's charge.
	 */
	for (i = 0; i < ndead; i++)
		st->sources_idle += !bpf_map_delete_elem(m->fd[LT_M_SRC], &dead[i]);
	free(dead);
	free(pdead);
	return 0;
}
