// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * admit.bpf.c - admission in the kernel. One code path (lt_admit), two attach
 * points: lt_xdp (XDP, native or generic) and lt_tc (TC ingress, sched_cls).
 *
 * For packets to a protected port: penalty box -> policy trie (allowlist or
 * policy, most specific prefix wins) -> per-source leaky buckets (new TCP
 * connections and packets). Every packet lands in exactly one outcome counter.
 *
 * Cost model (make bench, this kind of VM): array lookups and bpf_jiffies64()
 * are inlined by the verifier and cost ~0; every other map lookup or helper is
 * a call of 13-35 ns. So the path makes two calls (penalty and policy tries)
 * for a metered packet and one for a penalised one; everything else is
 * arrays. See lt_abi.h for the clock and the lt_src table.
 *
 * Concurrency model. lt_config, lt_ports, lt_penalty, lt_policy are written by
 * the agent (element-atomic updates) and only read here. lt_src/lt_overflow
 * bucket words are updated by CAS from every CPU; lt_slots words by CAS from
 * every CPU and process. No locks: a decision is one CAS per bucket.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "parse.bpf.h"
#include "lt_abi.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Load-time knobs, set by the loader before load. */
const volatile __u8 lt_fake_clock = 0; /* tests: time is lt_fake_now_ns */
const volatile __u32 lt_src_mask = LT_MAX_SOURCES_DEFAULT - 1; /* lt_src slots - 1 */
const volatile __u8 lt_no_pen_cache = 0; /* bench: measure the uncached penalty path */

const volatile __u8 lt_check_now = 0; /* tests: compare every now with ktime */

__u64 lt_fake_now_ns = 0;
/* lt_check_now: now - bpf_ktime_get_ns() per decision, and how many missed */
__s64 lt_now_dev_min = 0, lt_now_dev_max = 0;
__u64 lt_now_checked = 0, lt_now_off = 0;
__u64 lt_now_tol_ns = 0; /* set by the test: |deviation| allowed */
/* lt_clock_probe writes these; the agent calibrates lt_config's clock. */
__u64 lt_probe_ktime_ns = 0;
__u64 lt_probe_jiffies = 0;

/* Read per lt_abi.h's invariants: single words, or the latch (lt_cfg_*). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lt_config_val);
} lt_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LT_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct lt_port_val);
} lt_ports SEC(".maps");

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

/* Bounded on purpose: a full table never evicts a source's bucket silently. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LT_MAX_SOURCES_DEFAULT);
	__type(key, __u32);
	__type(value, struct lt_src_slot);
} lt_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lt_src_slot);
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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LT_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct lt_usage);
} lt_usage SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LT_MAX_SLOTS);
	__type(key, struct lt_keyidx_key);
	__type(value, struct lt_keyidx_val);
} lt_keyidx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct lt_iface);
} lt_ifaces SEC(".maps");

/*
 * Per-CPU memo of work that only changes once per tick. XDP time moves in
 * ticks, so within one:
 *  - every packet of a policy computes the same s(now): keyed by (now,
 *    policy content id);
 *  - the penalty verdict of the last source seen is reused instead of an LPM
 *    lookup (a helper call, ~14 ns): keyed by (now, lt_config generation,
 *    address). The agent bumps the generation on every ban/unban, so its
 *    changes apply at once; a raw bpftool edit applies within one tick.
 */
struct lt_scache {
	__u64 now_ns;
	__u32 policy_id;
	__u32 valid;
	__u64 pkt_s, pkt_ceil; /* s(now), ceil(now * rate) of pol->pkt */
	__u64 conn_s, conn_ceil; /* same for pol->conn */
	__u8 pen_addr[16]; /* last source looked up in lt_penalty */
	__u64 pen_now_ns; /* 0 = empty */
	__u64 pen_gen; /* lt_config.generation at lookup */
	__u64 pen_until_ns; /* 0 = not banned */
	__u32 pen_found; /* an lt_penalty entry matched (active or expired) */
	__u32 _pad;
	__u64 dflt_seq; /* lt_config seq + 1 that dflt was copied at; 0 = none */
	struct lt_src_policy dflt; /* lt_config's default policy, whole */
};

static __always_inline int lt_addr_eq(const __u8 a[16], const __u8 b[16])
{
	__u64 a0, a1, b0, b1;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	return a0 == b0 && a1 == b1;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lt_scache);
} lt_scache SEC(".maps");

static __always_inline void lt_scaled_pair(const struct lt_rate *r, __u64 now, __u64 *s,
					   __u64 *s_ceil)
{
	__u64 frac = 0;

	*s = r->period_ns ? lt_scaled(r, now, &frac) : 0;
	*s_ceil = *s + (frac != 0);
}

/* Keeps the compiler from moving loads across it (see the latch in lt_abi.h). */
#define lt_barrier() asm volatile("" ::: "memory")

/*
 * The tick clock from the latch: base and tick length from one copy. After
 * LT_CFG_READ_TRIES moved seqs it falls back to the exact clock.
 */
static __always_inline __u64 lt_clock_now(const struct lt_config_val *cfg)
{
	const struct lt_config_snap *s;
	__u64 seq, base_ns, base_j, npj, j = bpf_jiffies64();
	int i;

#pragma unroll
	for (i = 0; i < LT_CFG_READ_TRIES; i++) {
		seq = *(volatile const __u64 *)&cfg->seq;
		s = &cfg->snap[seq & 1];
		base_ns = *(volatile const __u64 *)&s->clk_base_ns;
		base_j = *(volatile const __u64 *)&s->clk_base_jiffies;
		npj = *(volatile const __u64 *)&s->clk_ns_per_jiffy;
		lt_barrier();
		if (*(volatile const __u64 *)&cfg->seq == seq)
			return base_ns + (j - base_j) * npj;
	}
	return bpf_ktime_get_ns();
}

static __always_inline __u64 lt_now(const struct lt_config_val *cfg)
{
	__u64 now;
	__s64 dev;

	if (lt_fake_clock)
		return lt_fake_now_ns;
	now = lt_clock_now(cfg);
	if (lt_check_now) {
		dev = (__s64)(now - bpf_ktime_get_ns());
		if (dev < lt_now_dev_min)
			lt_now_dev_min = dev;
		if (dev > lt_now_dev_max)
			lt_now_dev_max = dev;
		__sync_fetch_and_add(&lt_now_checked, 1);
		if ((dev < 0 ? -dev : dev) > (__s64)lt_now_tol_ns)
			__sync_fetch_and_add(&lt_now_off, 1);
	}
	return now;
}

/*
 * The default policy from the latch, copied whole into the per-CPU memo once
 * per publication (a copy per packet cost ~5 ns); -1 if seq kept moving.
 */
static __always_inline int lt_cfg_dflt(const struct lt_config_val *cfg, struct lt_scache *sc)
{
	__u64 seq = *(volatile const __u64 *)&cfg->seq;
	int i;

	if (sc->dflt_seq == seq + 1)
		return 0;
#pragma unroll
	for (i = 0; i < LT_CFG_READ_TRIES; i++) {
		__builtin_memcpy(&sc->dflt, &cfg->snap[seq & 1].dflt, sizeof(sc->dflt));
		lt_barrier();
		if (*(volatile const __u64 *)&cfg->seq == seq) {
			sc->dflt_seq = seq + 1;
			return 0;
		}
		seq = *(volatile const __u64 *)&cfg->seq;
	}
	sc->dflt_seq = 0;
	return -1;
}

struct lt_pkt {
	__u8 saddr[16];
	__u16 dport;
	__u8 proto;
	__u8 syn;
	__u32 policy_id;
	__u64 len;
};

/* Sampled event: every (sample_mask + 1)-th decision of an outcome per CPU. */
static __always_inline void lt_emit(const struct lt_config_val *cfg, struct lt_pkt *p, __u32 stat,
				    __u64 seq, __u64 now, __u32 ifindex)
{
	struct lt_stat_val *sv;
	struct lt_event *e;
	__u32 idx;

	if (seq & cfg->sample_mask)
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

/* Counts the packet; returns the per-CPU count before it (for sampling). */
static __always_inline __u64 lt_count(__u32 stat, __u64 len)
{
	struct lt_stat_val *sv = bpf_map_lookup_elem(&lt_stats, &stat);
	__u64 seq = 0;

	if (sv) {
		seq = sv->packets++;
		sv->bytes += len;
	}
	return seq;
}

static __always_inline int lt_is_v4(const __u8 a[16])
{
	__u64 w0;
	__u32 w1;

	__builtin_memcpy(&w0, a, 8);
	__builtin_memcpy(&w1, a + 8, 4);
	return !w0 && w1 == bpf_htonl(0x0000ffff);
}

/* The source's slot in lt_src, claimed if new; lt_overflow when no room. */
static __always_inline struct lt_src_slot *lt_src_get(const struct lt_src_policy *pol,
						      const struct lt_pkt *p)
{
	struct lt_src_key key = {};
	__u32 agg, idx, i, free_idx = ~0U;
	struct lt_src_slot *s;
	__u64 tag, seen;

	agg = lt_is_v4(p->saddr) ? 96 + (pol->agg_v4 > 32 ? 32 : pol->agg_v4) :
				   (pol->agg_v6 > 128 ? 128 : pol->agg_v6);
	__builtin_memcpy(key.addr, p->saddr, 16);
	lt_addr_mask(key.addr, agg);
	key.prefixlen = agg;
	key.policy_id = pol->id;
	tag = lt_src_hash(&key);

	for (i = 0; i < LT_SRC_PROBES; i++) {
		idx = ((__u32)tag + i) & lt_src_mask;
		s = bpf_map_lookup_elem(&lt_src, &idx);
		if (!s)
			break;
		seen = *(volatile __u64 *)&s->tag;
		if (seen == tag)
			return s;
		/*
		 * An index, not a pointer: clang would fold a pointer test into
		 * pointer arithmetic that the verifier rejects.
		 */
		if (!seen && free_idx == ~0U)
			free_idx = idx;
	}
	s = free_idx != ~0U ? bpf_map_lookup_elem(&lt_src, &free_idx) : NULL;
	if (s) {
		seen = __sync_val_compare_and_swap(&s->tag, 0, tag);
		if (!seen) {
			s->key = key;
			return s;
		}
		if (seen == tag)
			return s; /* another CPU claimed it for this source */
	}
	lt_count(LT_STAT_AUX_TABLE_FULL, 0);
	idx = 0;
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
	struct lt_lpm_key lk = { .prefixlen = 128 };
	const struct lt_src_policy *pol;
	const struct lt_config_val *cfg;
	struct lt_port_val *port;
	struct lt_src_slot *st;
	struct lt_scache *sc;
	struct lt_penalty *pen;
	__u32 stat, zero = 0, dport;
	__u64 now = 0, seen, seq;
	int proto, v, drop = 0;

	cfg = bpf_map_lookup_elem(&lt_config, &zero);
	if (!cfg || !(cfg->flags & LT_CFG_LOADED)) {
		lt_count(LT_STAT_PASS_NO_CONFIG, p.len);
		return 1;
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
	dport = p.dport;
	port = bpf_map_lookup_elem(&lt_ports, &dport);
	if (!port || !(port->flags & LT_PORT_PROTECTED)) {
		stat = LT_STAT_PASS_UNPROTECTED;
		goto out;
	}

	/*
	 * The clock is read once per decision (lt_abi.h: the tick clock), and
	 * only where it is needed.
	 */
	now = lt_now(cfg);
	sc = bpf_map_lookup_elem(&lt_scache, &zero);
	if (!sc) {
		stat = LT_STAT_PASS_ADMIT; /* unreachable: per-CPU entry 0 exists */
		goto out;
	}
	__builtin_memcpy(lk.addr, p.saddr, 16);
	/* A ban is an explicit act: it beats the allowlist. */
	if (lt_no_pen_cache || sc->pen_now_ns != now || sc->pen_gen != cfg->generation ||
	    !lt_addr_eq(sc->pen_addr, p.saddr)) {
		pen = bpf_map_lookup_elem(&lt_penalty, &lk);
		sc->pen_found = pen != NULL;
		sc->pen_until_ns = pen ? pen->until_ns : 0;
		sc->pen_now_ns = now;
		sc->pen_gen = cfg->generation;
		__builtin_memcpy(sc->pen_addr, p.saddr, 16);
	}
	if (sc->pen_found) {
		if (now < sc->pen_until_ns) {
			stat = LT_STAT_DROP_PENALTY;
			drop = 1;
			goto verdict;
		}
		lt_count(LT_STAT_AUX_PENALTY_EXPIRED, 0);
	}

	pol = bpf_map_lookup_elem(&lt_policy, &lk);
	if (!pol) {
		if (lt_cfg_dflt(cfg, sc)) {
			stat = LT_STAT_DROP_CONTENDED; /* fail closed */
			drop = 1;
			goto verdict;
		}
		pol = &sc->dflt;
	}
	/*
	 * Opaque to clang: it would fold the two pointers into arithmetic on
	 * the unchecked lookup result, which the verifier rejects.
	 */
	asm volatile("" : "+r"(pol));
	if (pol->flags & LT_POL_ALLOW) {
		stat = LT_STAT_PASS_ALLOWLIST;
		goto out;
	}
	p.policy_id = pol->id;
	st = lt_src_get(pol, &p);
	if (!st) {
		stat = LT_STAT_PASS_ADMIT; /* unreachable: lt_overflow always exists */
		goto out;
	}
	st->last_ns = now;

	if (!sc->valid || sc->now_ns != now || sc->policy_id != pol->id) {
		lt_scaled_pair(&pol->pkt, now, &sc->pkt_s, &sc->pkt_ceil);
		lt_scaled_pair(&pol->conn, now, &sc->conn_s, &sc->conn_ceil);
		sc->now_ns = now;
		sc->policy_id = pol->id;
		sc->valid = 1;
	}

	/*
	 * All-or-nothing over the two buckets: packets first, then the
	 * connection bucket for a SYN; a denied SYN refunds its packet token.
	 * CAS retries exhausted (LT_CONTENDED) fail closed: no overshoot.
	 */
	v = lt_bucket_consume_at(&st->pkt_tat, &pol->pkt, sc->pkt_s, sc->pkt_ceil, 1, &seen);
	if (v != LT_ADMIT) {
		stat = lt_rate_stat(v, LT_STAT_DROP_PKT_RATE);
		drop = 1;
		goto verdict;
	}
	if (p.syn) {
		__u64 pkt_after = seen;

		v = lt_bucket_consume_at(&st->conn_tat, &pol->conn, sc->conn_s, sc->conn_ceil, 1,
					 &seen);
		if (v != LT_ADMIT) {
			lt_bucket_undo(&st->pkt_tat, &pol->pkt, sc->pkt_ceil, pkt_after, 1);
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
	seq = lt_count(stat, p.len);
	lt_emit(cfg, &p, stat, seq, now, ifindex);
	return !drop;
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

/* Run once by the agent (BPF_PROG_RUN) to calibrate lt_config's clock. */
SEC("xdp")
int lt_clock_probe(struct xdp_md *ctx)
{
	(void)ctx;
	lt_probe_jiffies = bpf_jiffies64();
	lt_probe_ktime_ns = bpf_ktime_get_ns();
	return XDP_PASS;
}
