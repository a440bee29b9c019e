// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * admit.bpf.c - admission in the kernel. One code path (lt_admit), two attach
 * points: lt_xdp (XDP, native or generic) and lt_tc (TC ingress, sched_cls).
 *
 * For packets to a protected port: allowlist -> penalty box -> per-source
 * leaky buckets (new TCP connections and packets), policy by source prefix.
 * Every packet lands in exactly one outcome counter (enum lt_stat).
 *
 * Concurrency model. lt_config, lt_ports, lt_allow, lt_penalty, lt_policy are
 * written by the agent (element-atomic map updates) and only read here.
 * lt_src/lt_overflow bucket words are updated by CAS from every CPU; lt_slots
 * words by CAS from every CPU and process. No locks: a decision is one CAS.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "parse.bpf.h"
#include "lt_abi.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Load-time knob: tests set it so the clock below is lt_fake_now_ns. */
const volatile __u8 lt_fake_clock = 0;
__u64 lt_fake_now_ns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lt_config);
} lt_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LT_MAX_PORTS);
	__type(key, __u16);
	__type(value, struct lt_port_val);
} lt_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LT_MAX_PREFIXES);
	__type(key, struct lt_lpm_key);
	__type(value, struct lt_allow_val);
} lt_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LT_MAX_PREFIXES);
	__type(key, struct lt_lpm_key);
	__type(value, struct lt_penalty);
} lt_penalty SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LT_MAX_PREFIXES);
	__type(key, struct lt_lpm_key);
	__type(value, struct lt_src_policy);
} lt_policy SEC(".maps");

/*
 * Bounded on purpose (not LRU): a full table must never evict a source's
 * bucket silently. New sources then share lt_overflow and are counted.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LT_MAX_SOURCES_DEFAULT);
	__type(key, struct lt_src_key);
	__type(value, struct lt_src_state);
} lt_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lt_src_state);
} lt_overflow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LT_STAT__MAX);
	__type(key, __u32);
	__type(value, struct lt_stat_val);
} lt_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, LT_EVENTS_BYTES);
} lt_events SEC(".maps");

/* L7 buckets and their rates: mmapped by the gateway and the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LT_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct lt_slot);
} lt_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LT_MAX_RATES);
	__type(key, __u32);
	__type(value, struct lt_rate);
} lt_rates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct lt_iface);
} lt_ifaces SEC(".maps");

static __always_inline __u64 lt_now(void)
{
	if (lt_fake_clock)
		return lt_fake_now_ns;
	return bpf_ktime_get_ns();
}

struct lt_pkt {
	__u8 saddr[16];
	__u16 dport;
	__u8 proto;
	__u8 syn;
	__u32 policy_id;
	__u64 len;
};

/* Sampled event; a full ring is counted, never waited on. */
static __always_inline void lt_emit(const struct lt_config *cfg, struct lt_pkt *p, __u32 stat,
				    __u64 now, __u32 ifindex)
{
	struct lt_stat_val *sv;
	struct lt_event *e;
	__u32 idx;

	if (!cfg->sample_every || bpf_get_prandom_u32() % cfg->sample_every)
		return;
	e = bpf_ringbuf_reserve(&lt_events, sizeof(*e), 0);
	idx = e ? LT_STAT_AUX_EVENT_SENT : LT_STAT_AUX_EVENT_LOST;
	sv = bpf_map_lookup_elem(&lt_stats, &idx);
	if (sv)
		sv->packets++;
	if (!e)
		return;
	e->ts_ns = now;
	__builtin_memcpy(e->saddr, p->saddr, 16);
	e->stat = stat;
	e->ifindex = ifindex;
	e->dport = p->dport;
	e->proto = p->proto;
	e->syn = p->syn;
	e->policy_id = p->policy_id;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void lt_count(__u32 stat, __u64 len)
{
	struct lt_stat_val *sv = bpf_map_lookup_elem(&lt_stats, &stat);

	if (sv) {
		sv->packets++;
		sv->bytes += len;
	}
}

/* Finds or creates the source's bucket pair; NULL never (overflow fallback). */
static __always_inline struct lt_src_state *lt_src_get(const struct lt_src_policy *pol,
							struct lt_pkt *p)
{
	struct lt_src_key key = {};
	struct lt_src_state zero = {}, *st;
	__u32 agg, idx = 0;

	agg = (p->saddr[10] == 0xff && p->saddr[11] == 0xff &&
	       !(p->saddr[0] | p->saddr[1] | p->saddr[2] | p->saddr[3] | p->saddr[4] |
		 p->saddr[5] | p->saddr[6] | p->saddr[7] | p->saddr[8] | p->saddr[9])) ?
		      96 + (pol->agg_v4 > 32 ? 32 : pol->agg_v4) :
		      (pol->agg_v6 > 128 ? 128 : pol->agg_v6);
	__builtin_memcpy(key.addr, p->saddr, 16);
	lt_addr_mask(key.addr, agg);
	key.prefixlen = agg;
	key.policy_id = pol->id;

	st = bpf_map_lookup_elem(&lt_src, &key);
	if (st)
		return st;
	/* -EEXIST: another CPU created it first; -E2BIG: the table is full. */
	bpf_map_update_elem(&lt_src, &key, &zero, BPF_NOEXIST);
	st = bpf_map_lookup_elem(&lt_src, &key);
	if (st)
		return st;
	lt_count(LT_STAT_AUX_TABLE_FULL, 0);
	return bpf_map_lookup_elem(&lt_overflow, &idx);
}

static __always_inline __u32 lt_rate_stat(int v, __u32 rate_stat)
{
	return v == LT_CONTENDED ? LT_STAT_DROP_CONTENDED : rate_stat;
}

/* The shared path. Returns 1 to pass, 0 to drop. */
static __always_inline int lt_admit(void *data, void *data_end, __u32 ifindex)
{
	struct lt_cursor c = { .pos = data, .end = data_end };
	struct lt_pkt p = { .len = data_end - data };
	const struct lt_src_policy *pol;
	struct lt_lpm_key lk = { .prefixlen = 128 };
	const struct lt_config *cfg;
	struct lt_src_state *st;
	struct lt_penalty *pen;
	__u32 stat, zero = 0;
	__u64 now = 0, seen;
	int proto, v, drop = 0;

	cfg = bpf_map_lookup_elem(&lt_config, &zero);
	if (!cfg || !(cfg->flags & LT_CFG_LOADED)) {
		stat = LT_STAT_PASS_NO_CONFIG;
		goto out;
	}

	proto = lt_parse_eth(&c);
	if (proto < 0) {
		stat = LT_STAT_PASS_MALFORMED;
		goto out;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		proto = lt_parse_ipv4(&c, p.saddr);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		proto = lt_parse_ipv6(&c, p.saddr);
	} else {
		stat = LT_STAT_PASS_NON_IP;
		goto out;
	}
	if (proto == -2) {
		stat = LT_STAT_PASS_FRAGMENT;
		goto out;
	}
	if (proto < 0) {
		stat = LT_STAT_PASS_MALFORMED;
		goto out;
	}
	p.proto = proto;
	if (proto == IPPROTO_TCP) {
		if (lt_parse_tcp(&c, &p.dport, &p.syn) < 0) {
			stat = LT_STAT_PASS_MALFORMED;
			goto out;
		}
	} else if (proto == IPPROTO_UDP) {
		if (lt_parse_udp(&c, &p.dport) < 0) {
			stat = LT_STAT_PASS_MALFORMED;
			goto out;
		}
	} else {
		stat = LT_STAT_PASS_UNPROTECTED;
		goto out;
	}
	if (!bpf_map_lookup_elem(&lt_ports, &p.dport)) {
		stat = LT_STAT_PASS_UNPROTECTED;
		goto out;
	}

	__builtin_memcpy(lk.addr, p.saddr, 16);
	if (bpf_map_lookup_elem(&lt_allow, &lk)) {
		stat = LT_STAT_PASS_ALLOWLIST;
		goto out;
	}

	/* Clock read once per decision, after the cheap exits. */
	now = lt_now();
	pen = bpf_map_lookup_elem(&lt_penalty, &lk);
	if (pen) {
		if (now < pen->until_ns) {
			stat = LT_STAT_DROP_PENALTY;
			drop = 1;
			goto verdict;
		}
		lt_count(LT_STAT_AUX_PENALTY_EXPIRED, 0);
	}

	pol = bpf_map_lookup_elem(&lt_policy, &lk);
	if (!pol)
		pol = &cfg->dflt;
	p.policy_id = pol->id;
	st = lt_src_get(pol, &p);
	if (!st) {
		stat = LT_STAT_PASS_ADMIT; /* unreachable: lt_overflow always exists */
		goto out;
	}
	st->last_ns = now;

	/*
	 * All-or-nothing over the two buckets: packets first, then the
	 * connection bucket for a SYN; a denied SYN refunds its packet token.
	 */
	v = lt_bucket_consume(&st->pkt_tat, &pol->pkt, now, 1, &seen);
	if (v != LT_ADMIT) {
		stat = lt_rate_stat(v, LT_STAT_DROP_PKT_RATE);
		drop = 1;
		goto verdict;
	}
	if (p.syn) {
		v = lt_bucket_consume(&st->conn_tat, &pol->conn, now, 1, &seen);
		if (v != LT_ADMIT) {
			lt_bucket_refund(&st->pkt_tat, &pol->pkt, 1);
			stat = lt_rate_stat(v, LT_STAT_DROP_CONN_RATE);
			drop = 1;
			goto verdict;
		}
	}
	stat = LT_STAT_PASS_ADMIT;

verdict:
	if (drop && (cfg->flags & LT_CFG_DRY_RUN)) {
		/* DROP_x and DRYRUN_x are parallel ranges of the enum. */
		stat += LT_STAT_DRYRUN_PENALTY - LT_STAT_DROP_PENALTY;
		drop = 0;
	}
	lt_emit(cfg, &p, stat, now, ifindex);
out:
	lt_count(stat, p.len);
	return !drop;
}

SEC("xdp")
int lt_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return lt_admit(data, data_end, ctx->ingress_ifindex) ? XDP_PASS : XDP_DROP;
}

/* Ethernet + 2 VLAN tags + IPv6 + TCP: what must be linear to decide. */
#define LT_TC_PULL (14 + 8 + 40 + 20)

SEC("tc")
int lt_tc(struct __sk_buff *skb)
{
	void *data, *data_end;

	/* Headers of a non-linear skb may sit in frags; pull what exists. */
	if ((long)skb->data_end - (long)skb->data < LT_TC_PULL)
		bpf_skb_pull_data(skb, skb->len < LT_TC_PULL ? skb->len : LT_TC_PULL);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	return lt_admit(data, data_end, skb->ifindex) ? TC_ACT_OK : TC_ACT_SHOT;
}
