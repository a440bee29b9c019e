// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * admit.bpf.c - admission in the kernel. One code path (lt_admit), two attach
 * points: lt_xdp (XDP, native or generic) and lt_tc (TC ingress, sched_cls).
 *
 * For packets to a protected port: penalty box (an index in an array) ->
 * policy trie (allowlist or policy, most specific prefix wins) -> per-source
 * leaky buckets (new TCP connections and packets). Every packet lands in
 * exactly one outcome counter.
 *
 * Cost model (make bench, this kind of VM): array lookups and bpf_jiffies64()
 * are inlined by the verifier and cost ~0; every other map lookup or helper,
 * and every BPF-to-BPF call, is a call of ~10-35 ns (each return pays the
 * SRSO return thunk). So the path makes at most one call, the policy trie,
 * and only once a policy exists (LT_CFG_POLICIES), plus one for a sampled
 * event (lt_emit_out); the penalty box is read inline, one slot per banned
 * prefix length while every slot sits at its home. See lt_abi.h for the
 * clock, the penalty index and the lt_src table.
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

/* The penalty box: an index in an array, read by lt_pen_check (lt_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LT_PEN_SLOTS);
	__type(key, __u32);
	__type(value, struct lt_pen_slot);
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

/* One overflow bucket pair per policy (lt_abi.h): buckets never mix units. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LT_OVERFLOW_SLOTS);
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

/* API-key records for user-space readers (lt_abi.h); no program reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LT_MAX_APIKEYS);
	__type(key, struct lt_apikey_key);
	__type(value, struct lt_apikey_val);
} lt_apikey SEC(".maps");

/* Usage records of the gateway for the agent (lt_abi.h); no program reads them. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lt_reqlog_ctl);
} lt_reqlog_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LT_REQLOG_SLOTS);
	__type(key, __u32);
	__type(value, struct lt_reqlog_rec);
} lt_reqlog SEC(".maps");
/* Circuit breakers of the gateways (lt_abi.h); no program reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LT_MAX_BREAKERS);
	__type(key, __u32);
	__type(value, struct lt_breaker_val);
} lt_breaker SEC(".maps");

/* The gateways' upstream health checks for the agent (lt_abi.h); no program reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LT_MAX_UPSTREAMS);
	__type(key, struct lt_upstream_key);
	__type(value, struct lt_upstream_val);
} lt_upstream SEC(".maps");

/* The gateways' escalation state (lt_abi.h); mmapped, no program reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LT_ESC_SLOTS);
	__type(key, __u32);
	__type(value, struct lt_esc_slot);
} lt_escal SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct lt_iface);
} lt_ifaces SEC(".maps");

/* Gateway requests in flight (lt_abi.h); mmapped, no program reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LT_MAX_LEASES);
	__type(key, __u32);
	__type(value, struct lt_lease);
} lt_lease SEC(".maps");

/*
 * Per-CPU memo of work that only changes once per tick, or only with a
 * config word. XDP time moves in ticks, so within one:
 *  - every packet of a policy computes the same s(now): keyed by (now,
 *    policy content id);
 *  - the penalty verdict of the last source seen is reused instead of the
 *    index walk (a window per banned prefix length): keyed by (now,
 *    lt_config generation, address). Every ban/unban (lib/penalty.c) bumps
 *    the generation, so its changes apply at once; a raw bpftool edit
 *    applies within one tick.
 *  - the banned prefix lengths as a list, keyed by the very words of
 *    pen_lens it was derived from (lt_pen_lens): exact at every packet,
 *    whoever wrote the words.
 */
struct lt_scache {
	__u64 now_ns;
	__u32 policy_id;
	__u32 valid;
	__u64 pkt_s, pkt_ceil; /* s(now), ceil(now * rate) of pol->pkt */
	__u64 conn_s, conn_ceil; /* same for pol->conn */
	__u64 pen_w[2]; /* last source looked up in lt_penalty (lt_pkt.sw) */
	__u64 pen_now_ns; /* 0 = empty */
	__u64 pen_gen; /* lt_config.generation at lookup */
	__u64 pen_until_ns; /* 0 = no entry matched, 1 = only expired ones, else active */
	/* lt_pen_lens: the list of pen_lens_key's lengths (see there) */
	__u64 pen_lens_key[2]; /* pen_lens[0], pen_lens[1] it was derived from */
	__u64 pen_lens_key128; /* flags & LT_CFG_PEN_128 it was derived from */
	__u64 pen_list; /* byte n: a length + 1, 0 ends it; LT_PEN_LIST_BITS: too many */
	__u64 dflt_seq; /* lt_config seq + 1 that dflt was copied at; 0 = none */
	struct lt_src_policy dflt; /* lt_config's default policy, whole */
};

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

/* Index of the one set bit of b (de Bruijn): BPF has no ctz instruction. */
static const __u8 lt_debruijn64[64] = {
	0,  1,	2,  53, 3,  7,	54, 27, 4,  38, 41, 8,	34, 55, 48, 28, 62, 5,	39, 46, 44, 42,
	22, 9,	24, 35, 59, 56, 49, 18, 29, 11, 63, 52, 6,  26, 37, 40, 33, 47, 61, 45, 43, 21,
	23, 58, 17, 10, 51, 25, 36, 32, 60, 20, 57, 16, 50, 31, 19, 15, 30, 14, 13, 12,
};

static __always_inline __u32 lt_bit_index(__u64 b)
{
	return lt_debruijn64[(b * 0x022fdd63cc95386dULL) >> 58];
}

/*
 * lt_prefix_mask64 for every prefix length, as a table: a variable shift
 * would need branches for 0 and 64, and each branch multiplies the states
 * the verifier walks through the loop below.
 */
#define LT_PM(n) ((n) >= 64 ? ~0ULL : (n) <= 0 ? 0ULL : ~0ULL << ((64 - (n)) & 63))
#define LT_PMB(n) __builtin_bswap64(LT_PM(n))
#define LT_PM1(n)                         \
	{                                 \
		LT_PMB(n), LT_PMB((n)-64) \
	}
#define LT_PM4(n) LT_PM1(n), LT_PM1(n + 1), LT_PM1(n + 2), LT_PM1(n + 3)
#define LT_PM16(n) LT_PM4(n), LT_PM4(n + 4), LT_PM4(n + 8), LT_PM4(n + 12)
#define LT_PM64(n) LT_PM16(n), LT_PM16(n + 16), LT_PM16(n + 32), LT_PM16(n + 48)
static const __u64 lt_pfx_mask[LT_PEN_LENS][2] = { LT_PM64(0), LT_PM64(64), LT_PM1(128) };

/*
 * The until_ns of the lt_penalty entry for the source (w0, w1) masked to
 * len, or 0 when there is none. Only the home slot while far is 0
 * (lt_config_val.pen_far: every slot is at its home).
 */
static __always_inline __u64 lt_pen_window(__u64 w0, __u64 w1, __u32 len, __u64 seed, __u32 far)
{
	__u64 m0, m1, tag;
	const struct lt_pen_slot *s;
	__u32 idx, i;

	m0 = w0 & lt_pfx_mask[len][0];
	m1 = w1 & lt_pfx_mask[len][1];
	tag = lt_pen_hash(m0, m1, len, seed);
#pragma unroll
	for (i = 0; i < LT_PEN_PROBES; i++) {
		if (i == 1 && !far)
			return 0;
		idx = ((__u32)tag + i) & (LT_PEN_SLOTS - 1);
		s = bpf_map_lookup_elem(&lt_penalty, &idx);
		if (!s)
			return 0;
		/* tag first, the rest after (lt_abi.h: a new slot's tag is stored last) */
		if (*(volatile const __u64 *)&s->tag != tag)
			continue;
		lt_barrier();
		if (*(const __u64 *)&s->addr[0] == m0 && *(const __u64 *)&s->addr[8] == m1 &&
		    s->prefixlen == len)
			return *(volatile const __u64 *)&s->until_ns;
	}
	return 0;
}

/*
 * The walk over pen_lens' bits: one window per length in use, at most
 * LT_PEN_LENS_MAX per word (the writers never set more bits in all). Each
 * word is walked by its own loop, so the length's base is a constant to the
 * verifier; one branch per step, so its states do not multiply. Only for a
 * set of bits the list below cannot hold (a raw edit of lt_config).
 */
static __always_inline __u64 lt_pen_walk_bits(__u64 l0, __u64 l1, __u64 f128, __u64 w0, __u64 w1,
					      __u64 now, __u64 seed, __u32 far)
{
	__u64 bits, b, until, found = 0;
	__u32 n, w;

	/* length 128, the exact one (v4 /32, v6 /128), is a flag (lt_abi.h) */
	if (f128) {
		until = lt_pen_window(w0, w1, 128, seed, far);
		if (now < until)
			return until;
		found |= until;
	}
#pragma unroll
	for (w = 0; w < 2; w++) {
		bits = w ? l1 : l0;
		for (n = 0; n < LT_PEN_LENS_MAX && bits; n++) {
			b = bits & -bits;
			bits ^= b;
			until = lt_pen_window(w0, w1, w * 64 + (lt_bit_index(b) & 63), seed, far);
			if (now < until)
				return until;
			found |= until;
		}
	}
	return found ? 1 : 0;
}

/* lt_scache.pen_list when pen_lens has more lengths than a list holds */
#define LT_PEN_LIST_BITS (~0ULL)

/*
 * pen_lens (l0, l1, f128) as a list: byte n is the n-th length + 1 (128
 * first, then ascending), 0 ends it. LT_PEN_LIST_BITS when more than
 * LT_PEN_LENS_MAX lengths are set.
 */
static __always_inline __u64 lt_pen_list_of(__u64 l0, __u64 l1, __u64 f128)
{
	__u64 list = 0, bits, b;
	__u32 n = 0, k, w;

	if (f128) {
		list = 129;
		n = 1;
	}
#pragma unroll
	for (w = 0; w < 2; w++) {
		bits = w ? l1 : l0;
		for (k = 0; k < LT_PEN_LENS_MAX && bits; k++) {
			b = bits & -bits;
			bits ^= b;
			if (n >= LT_PEN_LENS_MAX)
				return LT_PEN_LIST_BITS;
			list |= (__u64)(w * 64 + (lt_bit_index(b) & 63) + 1) << ((n * 8) & 63);
			n++;
		}
		if (bits)
			return LT_PEN_LIST_BITS;
	}
	return list;
}

/*
 * The penalty box for source (w0, w1) at now (lt_abi.h: any active entry
 * covering the source bans it): the active entry's until_ns (> now), else 1
 * (<= now) when only expired entries cover it, else 0. One window per prefix
 * length in use. The lengths come from the per-CPU list derived from
 * pen_lens (lt_pen_list_of), re-derived whenever a word of pen_lens differs
 * from the words it was derived from: so the walk follows every change of
 * pen_lens at the very next packet, by any writer, and reads one word per
 * length instead of finding the next bit (this walk is most of the work of
 * a packet the memo does not know).
 */
static __always_inline __u64 lt_pen_check(const struct lt_config_val *cfg, struct lt_scache *sc,
					  __u64 w0, __u64 w1, __u64 now)
{
	__u64 l0 = *(volatile const __u64 *)&cfg->pen_lens[0];
	__u64 l1 = *(volatile const __u64 *)&cfg->pen_lens[1];
	__u64 f128 = *(volatile const __u32 *)&cfg->flags & LT_CFG_PEN_128;
	__u64 list, seed, until, found = 0;
	__u32 n, len, far;

	if (l0 != sc->pen_lens_key[0] || l1 != sc->pen_lens_key[1] || f128 != sc->pen_lens_key128) {
		sc->pen_list = lt_pen_list_of(l0, l1, f128);
		sc->pen_lens_key[0] = l0;
		sc->pen_lens_key[1] = l1;
		sc->pen_lens_key128 = f128;
	}
	list = sc->pen_list;
	if (!list)
		return 0;
	seed = *(volatile const __u64 *)&cfg->pen_seed;
	far = *(volatile const __u32 *)&cfg->pen_far;
	if (list == LT_PEN_LIST_BITS)
		return lt_pen_walk_bits(l0, l1, f128, w0, w1, now, seed, far);
#pragma unroll
	for (n = 0; n < LT_PEN_LENS_MAX; n++) {
		len = list & 0xff;
		if (!len || len > LT_PEN_LENS)
			break;
		list >>= 8;
		until = lt_pen_window(w0, w1, len - 1, seed, far);
		if (now < until)
			return until;
		found |= until;
	}
	return found ? 1 : 0;
}

struct lt_pkt {
	union {
		__u8 saddr[16]; /* v4-mapped, network order */
		__u64 sw[2]; /* the same, as two words (compares, the memo) */
	};
	__u16 dport; /* 0 when noport */
	__u8 proto;
	__u8 syn;
	__u32 policy_id;
	__u64 len; /* frame bytes (TC: skb->len, not the linear part) */
	__u8 noport; /* enum lt_noport */
};

/*
 * The sampled event itself: out of line, so that what only a sampled
 * decision needs (the event's fields, the ring buffer) is not kept live
 * through every packet's path (make bench: ~0.1x the empty program on the
 * pass path). A BPF-to-BPF call costs ~10 ns, paid by sampled decisions only.
 */
static __noinline void lt_emit_out(const struct lt_pkt *p, __u32 stat, __u64 now, __u32 ifindex)
{
	struct lt_stat_val *sv;
	struct lt_event *e;
	__u32 idx;

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

/* Sampled event: every (sample_mask + 1)-th decision of an outcome per CPU. */
static __always_inline void lt_emit(const struct lt_config_val *cfg, struct lt_pkt *p, __u32 stat,
				    __u64 seq, __u64 now, void *ctx, int tc)
{
	if (seq & cfg->sample_mask)
		return;
	/*
	 * The ifindex is read here, not per packet (three dependent loads for
	 * XDP), and passed as a value: the verifier refuses a ctx pointer
	 * offset by a subprogram.
	 */
	lt_emit_out(p, stat, now,
		    tc ? ((struct __sk_buff *)ctx)->ifindex :
			 ((struct xdp_md *)ctx)->ingress_ifindex);
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

/*
 * Finds the slot tagged tag among LT_SRC_PROBES from tag & mask, or claims
 * the first free one of them (CAS 0 -> tag) for the key (m0, m1: its
 * address words, plen, pid). NULL when all belong to others.
 * An index, not a pointer, is remembered for the claim: clang would fold a
 * pointer test into pointer arithmetic that the verifier rejects.
 */
static __always_inline struct lt_src_slot *lt_slot_find(void *map, __u32 mask, __u64 tag, __u64 m0,
							__u64 m1, __u32 plen, __u32 pid)
{
	__u32 idx, i, free_idx = ~0U;
	struct lt_src_slot *s;
	__u64 seen;

	for (i = 0; i < LT_SRC_PROBES; i++) {
		idx = ((__u32)tag + i) & mask;
		s = bpf_map_lookup_elem(map, &idx);
		if (!s)
			break;
		seen = *(volatile __u64 *)&s->tag;
		if (seen == tag)
			return s;
		if (!seen && free_idx == ~0U)
			free_idx = idx;
	}
	s = free_idx != ~0U ? bpf_map_lookup_elem(map, &free_idx) : NULL;
	if (s) {
		seen = __sync_val_compare_and_swap(&s->tag, 0, tag);
		if (!seen) {
			/* for operators (bpftool) and the sweep: the tag decides */
			__builtin_memcpy(s->key.addr, &m0, 8);
			__builtin_memcpy(s->key.addr + 8, &m1, 8);
			s->key.prefixlen = plen;
			s->key.policy_id = pid;
			return s;
		}
		if (seen == tag)
			return s; /* another CPU claimed it for this source */
	}
	return NULL;
}

/*
 * The source's slot in lt_src, claimed if new. When its window is full, the
 * policy's own pair in lt_overflow (counted); NULL when that table has no
 * room for the policy either (counted; the caller fails closed). The key
 * stays in registers (lt_src_hash_w): it is written out only on a claim.
 */
static __always_inline struct lt_src_slot *lt_src_get(const struct lt_src_policy *pol, __u64 w0,
						      __u64 w1)
{
	struct lt_src_slot *s;
	__u64 m0, m1;
	__u32 agg;

	/* v4 is ::ffff:a.b.c.d (lt_v4_mapped_w1) */
	if (!w0 && (__u32)w1 == (__u32)lt_v4_mapped_w1(0))
		agg = 96 + (pol->agg_v4 > 32 ? 32 : pol->agg_v4);
	else
		agg = pol->agg_v6 > 128 ? 128 : pol->agg_v6;
	/* the verifier loses the clamps above when clang merges them: again, opaquely */
	asm volatile("" : "+r"(agg));
	if (agg > 128)
		agg = 128;
	m0 = w0 & lt_pfx_mask[agg][0];
	m1 = w1 & lt_pfx_mask[agg][1];
	s = lt_slot_find(&lt_src, lt_src_mask, lt_src_hash_w(m0, m1, agg, pol->id), m0, m1, agg,
			 pol->id);
	if (s)
		return s;
	lt_count(LT_STAT_AUX_TABLE_FULL, 0);
	/* the overflow pair of the policy: key with no address */
	s = lt_slot_find(&lt_overflow, LT_OVERFLOW_SLOTS - 1, lt_src_hash_w(0, 0, 0, pol->id), 0, 0,
			 0, pol->id);
	if (!s)
		lt_count(LT_STAT_AUX_OVERFLOW_FULL, 0);
	return s;
}

static __always_inline __u32 lt_rate_stat(int v, __u32 rate_stat)
{
	return v == LT_CONTENDED ? LT_STAT_DROP_CONTENDED : rate_stat;
}

/* The dry-run twin of a drop outcome (lt_abi.h: two layouts in the enum). */
static __always_inline __u32 lt_dryrun_stat(__u32 stat)
{
	if (stat <= LT_STAT_DROP_CONTENDED)
		return stat + (LT_STAT_DRYRUN_PENALTY - LT_STAT_DROP_PENALTY);
	return stat + 1;
}

#define LT_MORE 2 /* lt_admit: pull more of the skb and call again (TC only) */

/*
 * The shared path. Returns 1 to pass, 0 to drop, LT_MORE when headers lie
 * beyond the readable bytes and the caller may pull (wire_len > readable).
 *
 * The invariant (issue #7): a frame from a known source passes unmetered only
 * when its destination port is known and not protected, or it is not a
 * ported protocol. Every other frame from a known source (port protected,
 * fragment, truncated L4, chain too long) goes through the penalty box, the
 * policy and the source's packet bucket, so no frame shape the stack still
 * accepts carries a banned or limited source past them. A frame whose source
 * cannot be read passes only when the stack is certain to drop it (no L3
 * header, bad version or ihl: see lt_parse_*), and is dropped otherwise.
 *
 * Order: the port (when it can be read) is looked at before the source-keyed
 * decisions only so that traffic to unprotected ports pays no penalty lookup;
 * a port that cannot be read never skips them.
 */
static __always_inline int lt_admit(void *data, void *data_end, __u32 wire_len, void *ctx, int tc,
				    int may_pull)
{
	struct lt_cursor c = { .pos = data, .end = data_end };
	struct lt_pkt p = { .len = wire_len };
	const struct lt_src_policy *pol;
	const struct lt_config_val *cfg;
	struct lt_port_val *port;
	struct lt_src_slot *st;
	struct lt_scache *sc;
	__u32 stat, zero = 0, dport;
	__u64 now = 0, seen, seq;
	/* readable bytes end before the frame does: headers may be unpulled */
	int cut = (__u32)(data_end - data) < wire_len;
	int proto, v, drop = 0;

	cfg = bpf_map_lookup_elem(&lt_config, &zero);
	if (!cfg || !(cfg->flags & LT_CFG_LOADED)) {
		lt_count(LT_STAT_PASS_NO_CONFIG, p.len);
		return 1;
	}

	proto = lt_parse_eth(&c);
	if (proto >= 0) {
		if (proto == bpf_htons(ETH_P_IP)) {
			proto = lt_parse_ipv4(&c, p.sw, &p.noport);
		} else if (proto == bpf_htons(ETH_P_IPV6)) {
			proto = lt_parse_ipv6(&c, p.sw, &p.noport);
		} else {
			stat = LT_STAT_PASS_NON_IP;
			goto out;
		}
	}
	switch (proto) {
	case LT_P_TRUNC:
		/*
		 * Cut inside Ethernet/VLAN/IP: the stack drops the frame
		 * (eth_type_trans, pskb_may_pull of the IP header), unless the
		 * rest is only not pulled yet.
		 */
		if (!cut) {
			stat = LT_STAT_PASS_MALFORMED;
			goto out;
		}
		if (may_pull)
			return LT_MORE;
		/* unreadable: fail closed */
		__attribute__((fallthrough));
	case LT_P_DEEP:
		stat = LT_STAT_DROP_UNPARSEABLE;
		goto drop_early;
	case LT_P_BAD:
		stat = LT_STAT_PASS_MALFORMED;
		goto out;
	case LT_P_TINY:
		stat = LT_STAT_DROP_FRAG_TINY;
		goto drop_early;
	case LT_P_OVERLAP:
		stat = LT_STAT_DROP_FRAG_OVERLAP;
		goto drop_early;
	}
	/* The source is known from here on. */
	p.proto = proto;
	if (p.noport == LT_NOPORT_TRUNCATED && cut && may_pull)
		return LT_MORE; /* an extension header not pulled yet */
	if (!p.noport) {
		v = lt_parse_l4(&c, proto, &p.dport, &p.syn, &p.noport);
		if (v == LT_P_TRUNC) {
			if (cut && may_pull)
				return LT_MORE;
			p.noport = LT_NOPORT_TRUNCATED;
		} else if (v) {
			stat = LT_STAT_PASS_UNPROTECTED; /* no ports: nothing listens */
			goto out;
		}
	}
	if (!p.noport) {
		dport = p.dport;
		port = bpf_map_lookup_elem(&lt_ports, &dport);
		if (!port || !(port->flags & LT_PORT_PROTECTED)) {
			stat = LT_STAT_PASS_UNPROTECTED;
			goto out;
		}
	} else {
		/* metered as if addressed to a protected port */
		lt_count(LT_STAT_AUX_NOPORT_FRAGMENT + p.noport - LT_NOPORT_FRAGMENT, 0);
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
	/* A ban is an explicit act: it beats the allowlist. */
	if (lt_no_pen_cache || sc->pen_now_ns != now || sc->pen_gen != cfg->generation ||
	    sc->pen_w[0] != p.sw[0] || sc->pen_w[1] != p.sw[1]) {
		sc->pen_until_ns = lt_pen_check(cfg, sc, p.sw[0], p.sw[1], now);
		sc->pen_now_ns = now;
		sc->pen_gen = cfg->generation;
		sc->pen_w[0] = p.sw[0];
		sc->pen_w[1] = p.sw[1];
	}
	if (sc->pen_until_ns) {
		if (now < sc->pen_until_ns) {
			stat = LT_STAT_DROP_PENALTY;
			drop = 1;
			goto verdict;
		}
		lt_count(LT_STAT_AUX_PENALTY_EXPIRED, 0);
	}

	pol = NULL;
	if (cfg->flags & LT_CFG_POLICIES) {
		/* here, not at the top: its stores are paid only with policies */
		struct lt_lpm_key lk = { .prefixlen = 128 };

		__builtin_memcpy(lk.addr, p.saddr, 16);
		pol = bpf_map_lookup_elem(&lt_policy, &lk);
	}
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
	st = lt_src_get(pol, p.sw[0], p.sw[1]);
	if (!st) {
		/* no bucket for this source: fail closed (lt_src_get counted why) */
		stat = LT_STAT_DROP_PKT_RATE;
		drop = 1;
		goto verdict;
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
	goto verdict;

drop_early:
	/* shapes dropped whoever sent them: no source, or a fragment attack */
	drop = 1;
	now = lt_now(cfg);
verdict:
	if (drop && (cfg->flags & LT_CFG_DRY_RUN)) {
		stat = lt_dryrun_stat(stat);
		drop = 0;
	}
	seq = lt_count(stat, p.len);
	lt_emit(cfg, &p, stat, seq, now, ctx, tc);
	return !drop;
out:
	lt_count(stat, p.len);
	return 1;
}

SEC("xdp")
int lt_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	/* Without xdp.frags the frame is always whole: never LT_MORE. */
	return lt_admit(data, data_end, data_end - data, ctx, 0, 0) ? XDP_PASS : XDP_DROP;
}

/*
 * TC sees skbs whose headers may sit in page frags (GRO, large sends, packet
 * sockets). First pull what holds every header but IPv6 extensions: Ethernet
 * + LT_VLAN_MAX tags + IPv4 with options + TCP = 14 + 32 + 60 + 20. If the
 * walk still runs off the linear part, pull up to LT_TC_PULL_MAX and decide
 * on that: a chain longer than that is metered as port-unknown.
 */
#define LT_TC_PULL 128
#define LT_TC_PULL_MAX 2048

/* A failed pull leaves the headers unreadable: fail closed, counted. */
static __always_inline int lt_tc_unpulled(__u32 len)
{
	const struct lt_config *cfg;
	__u32 zero = 0, stat = LT_STAT_DROP_UNPARSEABLE;

	cfg = bpf_map_lookup_elem(&lt_config, &zero);
	if (!cfg || !(cfg->flags & LT_CFG_LOADED)) {
		lt_count(LT_STAT_PASS_NO_CONFIG, len);
		return TC_ACT_OK;
	}
	if (cfg->flags & LT_CFG_DRY_RUN) {
		lt_count(lt_dryrun_stat(stat), len);
		return TC_ACT_OK;
	}
	lt_count(stat, len);
	return TC_ACT_SHOT;
}

SEC("tc")
int lt_tc(struct __sk_buff *skb)
{
	__u32 len = skb->len, want;
	int v;

	if ((long)skb->data_end - (long)skb->data < (long)len &&
	    (long)skb->data_end - (long)skb->data < LT_TC_PULL) {
		want = len < LT_TC_PULL ? len : LT_TC_PULL;
		if (bpf_skb_pull_data(skb, want))
			return lt_tc_unpulled(len);
		lt_count(LT_STAT_AUX_TC_PULLED, 0);
	}
	v = lt_admit((void *)(long)skb->data, (void *)(long)skb->data_end, len, skb, 1, 1);
	if (v == LT_MORE) {
		want = len < LT_TC_PULL_MAX ? len : LT_TC_PULL_MAX;
		if (bpf_skb_pull_data(skb, want))
			return lt_tc_unpulled(len);
		lt_count(LT_STAT_AUX_TC_PULLED, 0);
		v = lt_admit((void *)(long)skb->data, (void *)(long)skb->data_end, len, skb, 1, 0);
	}
	return v ? TC_ACT_OK : TC_ACT_SHOT;
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
