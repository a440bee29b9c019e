/* SPDX-License-Identifier: MIT */
/*
 * lt_abi.h - the maps' keys and values, shared by kernel and user space.
 * bpf/, agent/, gateway/, bench/ and tests/ all include this one file; a map
 * layout is never written twice. Fixed-width types, explicit padding, size
 * asserts. Every map name fits in 15 characters so bpftool shows it whole.
 *
 * Addresses: one 16-byte form for both families. IPv4 is stored IPv4-mapped
 * (::ffff:a.b.c.d), so an IPv4 /24 is an LPM prefix of 96 + 24 = 120 bits and
 * one trie serves v4 and v6.
 */
#ifndef LT_ABI_H
#define LT_ABI_H

#include <linux/types.h>
#include "lt_bucket.h"

/* Map names, as pinned under the pin dir (default /sys/fs/bpf/leaky). */
#define LT_PIN_DIR_DEFAULT "/sys/fs/bpf/leaky"

#define LT_MAX_SOURCES_DEFAULT 65536 /* lt_src slots (power of 2); set at first load */
#define LT_MAX_PORTS 65536 /* lt_ports: one entry per port number */
#define LT_MAX_PREFIXES 16384 /* lt_policy entries (lt_penalty: LT_PEN_SLOTS) */
#define LT_MAX_SLOTS (1U << 20) /* lt_slots: L7 buckets */
#define LT_MAX_RATES 65536 /* lt_rates: L7 rate table (tiers, org quotas, API keys) */
#define LT_EVENTS_BYTES (256 * 1024) /* lt_events ring buffer */

/*
 * Stat indexes. APPEND-ONLY: the agent's status, the metrics and the tests
 * read them by number. The "outcome" group counts every packet exactly once;
 * the "aux" group counts extra facts about some packets.
 */
enum lt_stat {
	/* outcomes: passed */
	LT_STAT_PASS_NON_IP = 0, /* not IPv4/IPv6 (ARP, LLDP, ...) */
	LT_STAT_PASS_MALFORMED = 1, /* truncated or bad header: the stack drops it */
	LT_STAT_PASS_UNPROTECTED = 2, /* not TCP/UDP, or port not protected */
	LT_STAT_PASS_FRAGMENT = 3, /* retired (#7): fragments are metered now */
	LT_STAT_PASS_ALLOWLIST = 4,
	LT_STAT_PASS_ADMIT = 5, /* metered and within its buckets */
	LT_STAT_PASS_NO_CONFIG = 6, /* agent has not written lt_config yet */
	/* outcomes: dropped (or, in dry-run, passed and counted here instead) */
	LT_STAT_DROP_PENALTY = 7,
	LT_STAT_DROP_CONN_RATE = 8,
	LT_STAT_DROP_PKT_RATE = 9,
	LT_STAT_DROP_CONTENDED = 10, /* CAS retries exhausted: fail closed */
	LT_STAT_DRYRUN_PENALTY = 11,
	LT_STAT_DRYRUN_CONN_RATE = 12,
	LT_STAT_DRYRUN_PKT_RATE = 13,
	LT_STAT_DRYRUN_CONTENDED = 14,
	/* aux */
	LT_STAT_AUX_TABLE_FULL = 15, /* lt_src full: source metered in lt_overflow */
	LT_STAT_AUX_PENALTY_EXPIRED = 16, /* penalty entry found but over */
	LT_STAT_AUX_EVENT_LOST = 17, /* sampled event, ring buffer full */
	LT_STAT_AUX_EVENT_SENT = 18,
	/*
	 * Appended (#7). Outcomes: every drop has its dry-run twin right after
	 * it (lt_dryrun_stat), unlike the ranges above.
	 */
	LT_STAT_DROP_FRAG_TINY = 19, /* IPv4 first fragment shorter than its L4 header (RFC 1858) */
	LT_STAT_DRYRUN_FRAG_TINY = 20,
	LT_STAT_DROP_FRAG_OVERLAP = 21, /* IPv4 TCP fragment at offset 8 bytes (RFC 3128) */
	LT_STAT_DRYRUN_FRAG_OVERLAP = 22,
	LT_STAT_DROP_UNPARSEABLE = 23, /* source unreadable: > LT_VLAN_MAX tags, TC pull failed */
	LT_STAT_DRYRUN_UNPARSEABLE = 24,
	/* aux: why a packet was metered as if addressed to a protected port */
	LT_STAT_AUX_NOPORT_FRAGMENT = 25, /* non-first fragment (v4 or v6) */
	LT_STAT_AUX_NOPORT_HEADERS =
		26, /* L4 behind more IPv6 ext headers than walked, or ESP/AH */
	LT_STAT_AUX_NOPORT_TRUNCATED = 27, /* L4 header cut short */
	LT_STAT_AUX_TC_PULLED = 28, /* TC: headers pulled out of a non-linear skb */
	LT_STAT_AUX_OVERFLOW_FULL = 29, /* no lt_overflow pair for the policy: dropped */
	LT_STAT__OUTCOME_END = LT_STAT_AUX_TABLE_FULL, /* of the first range */
	LT_STAT__MAX = 30,
};

/* lt_stats: PERCPU_ARRAY[LT_STAT__MAX]. Written by BPF only. */
struct lt_stat_val {
	__u64 packets;
	__u64 bytes; /* frame length as seen by the hook (generic XDP: GSO-sized) */
};
_Static_assert(sizeof(struct lt_stat_val) == 16, "lt_stat_val is ABI");

/* lt_policy: LPM_TRIE keys; the prefix form every API takes (lt_penalty too). */
struct lt_lpm_key {
	__u32 prefixlen; /* bits of addr that match, 0..128 (v4: 96 + len) */
	__u8 addr[16]; /* network order; v4 is ::ffff:a.b.c.d */
};
_Static_assert(sizeof(struct lt_lpm_key) == 20, "lt_lpm_key is ABI");

/* Why a source sits in the penalty box. Append-only. */
enum lt_penalty_reason {
	LT_PENALTY_MANUAL = 0, /* operator: leaky-agent ban, bpftool */
	LT_PENALTY_ABUSE = 1, /* gateway/agent: repeated limit violations */
	LT_PENALTY_AUTH = 2, /* gateway: repeated auth failures */
	LT_PENALTY_GATEWAY = 3, /* gateway: kept sending after 429s (escalation, lib/escal.h) */
};

/*
 * A ban, as the user-space API (lib/penalty.h) reads and writes it. Active
 * while now < until_ns (CLOCK_MONOTONIC, ns); expires by itself, the agent
 * frees expired entries.
 */
struct lt_penalty {
	__u64 until_ns; /* CLOCK_MONOTONIC ns; ~0 = until unbanned */
	__u32 strikes; /* how many times this prefix was banned */
	__u32 reason; /* enum lt_penalty_reason */
};
_Static_assert(sizeof(struct lt_penalty) == 16, "lt_penalty is ABI");

/*
 * lt_penalty, the penalty box: ARRAY[LT_PEN_SLOTS] of struct lt_pen_slot,
 * BPF_F_MMAPABLE. An index the verifier inlines: it was an LPM trie, and a
 * trie lookup is a helper call that cost ~0.8x the empty XDP program per
 * packet (make bench), more than all the parsing.
 *
 * Where a ban sits: a prefix (addr masked to prefixlen, v4 as ::ffff:a.b.c.d
 * with prefixlen 96 + n) has tag = lt_pen_hash(addr, prefixlen, pen_seed),
 * never 0, and sits in one of the LT_PEN_PROBES slots from
 * tag & (LT_PEN_SLOTS - 1) (wrapping). tag 0 = a free slot.
 *
 * How BPF reads it: lt_config_val.pen_lens is the set of prefix lengths that
 * have at least one slot (bit n = length n; length 128 is flags'
 * LT_CFG_PEN_128, each bit set and cleared atomically on its own). For each
 * length in the set, the source is masked to it, hashed and its window
 * compared: tag, then addr and prefixlen. A length nobody banned costs
 * nothing. A slot is filled at the first free slot of its window, so most
 * sit at their home (the window's first slot); while lt_config_val.pen_far
 * says that every one does (0), BPF compares the home slot only: a source
 * nobody banned costs one slot per length instead of LT_PEN_PROBES (the
 * most of the path of a new source, make bench). A slot zeroed by hand
 * leaves pen_far as it was: never a miss, at worst the full window. A source is dropped while ANY entry covering it is active (an
 * expired /32 does not hide an active /24 around it). At most
 * LT_PEN_LENS_MAX bits are ever set (a ban of a further length is refused,
 * -E2BIG), which bounds both the per-packet walk and its verification.
 *
 * Writers: lib/penalty.c only (the agent's ban/unban/expiry, the gateway's
 * escalation, replay at start), serialised by lt_config's wlock across
 * threads and processes. Order, so a reader never takes half a slot for a
 * ban: a new slot gets addr, prefixlen, until_ns, strikes, reason first and
 * its tag last (release); its length's bit is set after that. An update of
 * a live slot stores until_ns, strikes and reason each as one word. A free
 * clears the tag first, then the rest. A reader that races a free or a
 * reuse of the slot can match the wrong entry only on a 64-bit tag
 * collision on top of the race. A bit is cleared only by a writer that then
 * finds no slot of that length (and sets it back if one appeared).
 * pen_seed (random, set with the first ban) keeps sources from choosing
 * addresses that fill one window, which would make them unbannable.
 *
 * Break glass: `bpftool map dump` shows every slot (key = slot index);
 * writing a slot's value as all zeros unbans it (README). A bpftool write
 * bypasses the generation bump: it applies within one tick (lt_scache).
 */
/*
 * A ban whose window is full is refused (-ENOSPC): rare while the box is
 * sparse (one refusal was seen in a test of 2048 bans in 32768 slots; this
 * table is twice that), and the operator can ban a shorter prefix instead.
 */
#define LT_PEN_SLOTS 65536 /* power of 2: four times LT_MAX_PREFIXES */
#define LT_PEN_PROBES 4
#define LT_PEN_LENS 129 /* prefix lengths 0..128 */
#define LT_PEN_LENS_MAX 8 /* distinct prefix lengths banned at once (lookups per packet) */

struct lt_pen_slot {
	__u64 tag; /* lt_pen_hash(addr, prefixlen, pen_seed); 0 = free */
	__u8 addr[16]; /* network order, masked to prefixlen; v4 is ::ffff:a.b.c.d */
	__u32 prefixlen; /* 0..128 (v4: 96 + len) */
	__u32 strikes; /* how many times this prefix was banned */
	__u64 until_ns; /* CLOCK_MONOTONIC ns; ~0 = until unbanned; 0 = not banned */
	__u32 reason; /* enum lt_penalty_reason */
	__u32 _pad;
};
_Static_assert(sizeof(struct lt_pen_slot) == 48, "lt_pen_slot is ABI (mmapped)");

#define LT_POL_ALLOW (1U << 0) /* allowlist: pass without metering */

/*
 * Per-source policy: lt_policy value (by source prefix) and the default in
 * lt_config. A rate with period_ns == 0 does not limit. The allowlist lives
 * in the same trie (flags LT_POL_ALLOW), so a packet costs one policy lookup:
 * the most specific prefix wins, allowlist entry or policy alike.
 */
struct lt_src_policy {
	struct lt_rate conn; /* new TCP connections (SYN without ACK) */
	struct lt_rate pkt; /* packets to protected ports */
	__u8 agg_v4; /* sources are bucketed per /agg_v4, 1..32 */
	__u8 agg_v6; /* sources are bucketed per /agg_v6, 1..128 */
	__u16 flags; /* LT_POL_* */
	__u32 id; /* content hash: buckets are kept per (source, id) */
};
_Static_assert(sizeof(struct lt_src_policy) == 88, "lt_src_policy is ABI");

/* A source prefix at its policy's aggregation: what a bucket pair belongs to. */
struct lt_src_key {
	__u8 addr[16]; /* masked to prefixlen */
	__u32 prefixlen; /* 96 + agg_v4 or agg_v6 */
	__u32 policy_id; /* policy the bucket is metered by */
};
_Static_assert(sizeof(struct lt_src_key) == 24, "lt_src_key is ABI");

/*
 * lt_src: ARRAY[max_sources] of slots, BPF_F_MMAPABLE; lt_overflow:
 * ARRAY[LT_OVERFLOW_SLOTS], BPF_F_MMAPABLE, the same slots for sources that
 * found no room in lt_src.
 * An open-addressing table in an array, because an array lookup is inlined
 * by the verifier while a HASH lookup is a helper call (~25 ns here, the
 * largest cost of the whole packet path; see make bench).
 *
 * A source's slot is one of LT_SRC_PROBES consecutive slots from
 * lt_src_hash(key) & (max_sources - 1); tag is that 64-bit hash (never 0).
 * Claiming: CAS tag 0 -> hash; every CPU claims the first free slot of the
 * window, so two CPUs racing for one new source meet in the same slot. When
 * all slots of the window belong to other sources the table is "full" for
 * this source: it is metered in lt_overflow and counted (aux_table_full).
 * key is written after the claim, for operators (bpftool) and the sweep.
 * Both tats are CAS-updated by any CPU; last_ns is a plain store (a hint for
 * the agent's idle sweep). The sweep frees a slot only by CAS: each tat from
 * the empty value it judged to 0, then the tag; an admission landing after
 * its check makes the CAS fail and the slot keeps its level.
 */
#define LT_SRC_PROBES 4

/*
 * lt_overflow holds one bucket pair per policy, not one for all: a word is in
 * its policy's units (lt_bucket.h), so a pair shared by policies of different
 * rates read one policy's tat with another's scale (issue #7: one packet of a
 * fast policy put a slow policy's overflow bucket minutes in the future).
 * Slots are found and claimed like lt_src's, keyed by {addr 0, prefixlen 0,
 * policy_id}. The agent frees the slots of policies that no longer exist
 * (lt_overflow_release). A policy that finds no slot is dropped and counted
 * (aux_overflow_full): fail closed, never another policy's pair.
 */
#define LT_OVERFLOW_SLOTS 1024

struct lt_src_slot {
	__u64 tag; /* lt_src_hash(&key); 0 = free */
	struct lt_src_key key;
	__u64 conn_tat; /* lt_bucket word for new connections */
	__u64 pkt_tat; /* lt_bucket word for packets */
	__u64 last_ns; /* ns (BPF tick clock) of the last metered packet */
	__u64 _pad; /* one cache line per slot */
};
_Static_assert(sizeof(struct lt_src_slot) == 64, "lt_src_slot is ABI");

/* 64-bit mix of a source key (murmur3 finaliser per word); never 0. */
static __always_inline __u64 lt_mix64(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/*
 * lt_penalty's tag of a masked prefix (w0, w1: its 16 bytes); never 0. Three
 * multiplies, not six: it runs per prefix length per packet, and the tag
 * only filters (a match compares the whole prefix). The final lt_mix64
 * matters: a bare multiply never moves the last octet of an IPv4 address
 * (the top byte of w1) into the low bits that pick the slot.
 */
static __always_inline __u64 lt_pen_hash(__u64 w0, __u64 w1, __u32 prefixlen, __u64 seed)
{
	__u64 h = lt_mix64((w0 ^ seed) * 0x9e3779b97f4a7c15ULL ^ w1 ^ prefixlen);

	return h ? h : 1;
}

/*
 * Three multiplies, not six (three lt_mix64 rounds): it runs on every metered
 * packet (make bench: ~0.15x the empty program). A change of this function
 * orphans the slots of a pinned lt_src: their sources start over with a
 * fresh bucket once, and the sweep frees the old slots.
 */
static __always_inline __u64 lt_src_hash_w(__u64 w0, __u64 w1, __u32 prefixlen, __u32 policy_id)
{
	__u64 h = lt_mix64((w0 ^ 0x9e3779b97f4a7c15ULL) * 0xc4ceb9fe1a85ec53ULL ^ w1 ^
			   ((__u64)prefixlen << 32 | policy_id));

	return h ? h : 1;
}

/* The same of a key in memory (w0, w1: its 16 address bytes). */
static __always_inline __u64 lt_src_hash(const struct lt_src_key *k)
{
	__u64 w0, w1;

	__builtin_memcpy(&w0, k->addr, 8);
	__builtin_memcpy(&w1, k->addr + 8, 8);
	return lt_src_hash_w(w0, w1, k->prefixlen, k->policy_id);
}

/* lt_config flags. */
#define LT_CFG_DRY_RUN (1U << 0) /* count would-be drops, pass them */
#define LT_CFG_LOADED (1U << 1) /* the agent has written this config */
/*
 * lt_policy may hold entries. BPF skips the trie (a helper call, ~0.4x the
 * empty program even when empty) without it. Set by every writer of
 * lt_policy before it inserts (lt_config_apply, the policy/allow edits);
 * never cleared while the pins live.
 */
#define LT_CFG_POLICIES (1U << 2)
/* lt_penalty has a slot of prefix length 128 (v4 /32, v6 /128): pen_lens' 129th bit */
#define LT_CFG_PEN_128 (1U << 3)

/*
 * The clock. bpf_ktime_get_ns() costs ~35 ns per packet on this kind of VM,
 * more than the rest of the path together; bpf_jiffies64() is inlined and
 * free. So XDP/TC time is the tick clock mapped onto CLOCK_MONOTONIC:
 *   now_ns = clk_base_ns + (jiffies64 - clk_base_jiffies) * clk_ns_per_jiffy
 * calibrated by the agent at attach (lt_clock_probe, lt_clock_derive): the
 * base is a jiffies edge and clk_ns_per_jiffy the kernel's exact tick length
 * (TICK_NSEC = round(1e9 / HZ)), derived, not guessed. It moves in steps of
 * one tick (1-10 ms). It never runs ahead of CLOCK_MONOTONIC (the safe side:
 * buckets stricter, penalties longer), and lags it by less than one tick plus
 * the latency of the tick interrupt (up to ~2 ms seen on a busy VM); call
 * that lag L. A penalty's until_ns (written in CLOCK_MONOTONIC) is honoured
 * to L, and a per-source bucket over a window t admits at most C + R*(t + L).
 * lt_slots (L7) do not use it: user space reads CLOCK_MONOTONIC itself.
 */

/*
 * The configuration as one consistent set: what the agent's config holds and
 * what a reader of lt_config gets (lt_cfg_read). User space only: the map
 * value is struct lt_config_val.
 */
struct lt_config {
	struct lt_src_policy dflt; /* for sources no lt_policy prefix matches */
	__u32 flags; /* LT_CFG_* */
	__u32 sample_mask; /* event when (per-CPU count & mask) == 0; ~0 = none */
	__u64 generation; /* bumped on every config or penalty write */
	__u64 clk_base_ns; /* CLOCK_MONOTONIC ns at a jiffies edge */
	__u64 clk_base_jiffies; /* jiffies64 from that edge on */
	__u64 clk_ns_per_jiffy; /* TICK_NSEC of the running kernel */
};

/* The values BPF must read as a set: one copy of lt_config_val's latch. */
struct lt_config_snap {
	struct lt_src_policy dflt; /* for sources no lt_policy prefix matches */
	__u64 clk_base_ns; /* CLOCK_MONOTONIC ns at a jiffies edge */
	__u64 clk_base_jiffies; /* jiffies64 from that edge on */
	__u64 clk_ns_per_jiffy; /* TICK_NSEC of the running kernel */
	__u64 _pad[2]; /* 128 bytes: two cache lines */
};
_Static_assert(sizeof(struct lt_config_snap) == 128, "lt_config_snap is ABI");

/*
 * lt_config: ARRAY[1] of struct lt_config_val, BPF_F_MMAPABLE. Written by
 * the agent and the CLI (through the mmap, lib/cfg.c), read by BPF on every
 * packet. Nobody ever rewrites the value as a whole.
 *
 * Invariant 1, words on their own: flags, sample_mask and generation are
 * single aligned words, each read by itself. flags changes only by atomic
 * or/and of the bits a writer owns, generation only by atomic add,
 * sample_mask by a store. No writer reads-modifies-writes anything else, so
 * no writer's change is lost to another's, in any thread or process.
 *
 * Invariant 2, the latch: the values BPF needs as a set (the default policy
 * and the clock) live in snap[2], and snap[seq & 1] is current. A writer
 * takes wlock, copies the current snap into snap[(seq + 1) & 1] with its
 * change, then increments seq (the release). So the current copy is never
 * written; the other copy is written only while it is not current. A
 * reader reads seq, copies snap[seq & 1], and reads seq again: if it did not
 * move, the copy is whole (for the copy to be rewritten, seq must first
 * move past it). Loads keep program order on x86 (TSO), and the copy's
 * address depends on seq; a weaker architecture needs a read barrier
 * before the second read of seq.
 *   BPF retries a moved seq LT_CFG_READ_TRIES times, then falls back
 * safely: the clock to bpf_ktime_get_ns() (exact, ~35 ns), the default
 * policy to failing closed (counted drop_contended). A writer moves seq at
 * human rates, so this never happens outside a stress test.
 *
 * Invariant 3, no lock anyone waits for: wlock serialises latch writers
 * and penalty-box writers (lt_penalty, pen_lens, pen_seed), never a reader. It holds the writer's pid (0 = free). A writer
 * stopped or killed while holding it leaves the current copy intact; a
 * killed owner's lock is taken over (kill(pid, 0) says ESRCH, so writers
 * must share a pid namespace); a stopped owner makes other writers give up
 * after a bounded wait (-EBUSY naming the pid).
 */
#define LT_CFG_READ_TRIES 2

struct lt_config_val {
	__u64 seq; /* snap[seq & 1] is current; only ever incremented */
	__u64 generation; /* atomic add; the BPF penalty memo's key */
	__u32 flags; /* LT_CFG_*, atomic or/and per bit */
	__u32 sample_mask; /* event when (per-CPU count & mask) == 0; ~0 = none */
	__u32 wlock; /* pid of the latch or penalty-box writer, 0 = free */
	/*
	 * pen_far: how many live lt_penalty slots are not at their home (the
	 * first slot of their window). While it is 0, BPF reads only the home
	 * slot per prefix length (see lt_penalty). Written by lib/penalty.c
	 * under wlock: incremented before such a slot's tag is stored,
	 * recounted from the slots after frees (unban, expiry, reindex). Taken
	 * from the padding (0 in older pins: a recount at start sets it).
	 */
	__u32 pen_far;
	/*
	 * keys_gen: bumped (atomic add, after the write) by the agent on every
	 * change of lt_apikey. Readers that cache API-key records (the gateway's
	 * identity) compare it on every request and drop their cache when it
	 * moved: a revocation is seen on the next request, without a syscall.
	 * Taken from the padding (append-only: 0 in older pins, never moved).
	 */
	__u64 keys_gen;
	/* bit n: lt_penalty has a slot of prefix length n (128: LT_CFG_PEN_128) */
	__u64 pen_lens[2];
	__u64 pen_seed; /* lt_pen_hash seed, set once (random) with the first ban */
	struct lt_config_snap snap[2]; /* on their own cache lines */
};
_Static_assert(sizeof(struct lt_config_val) == 320, "lt_config_val is ABI");
_Static_assert(__builtin_offsetof(struct lt_config_val, keys_gen) == 32, "keys_gen is ABI");

/*
 * lt_ports: ARRAY[65536] indexed by port (host order), BPF_F_MMAPABLE.
 * 8 bytes: an mmapped array strides by round_up(value_size, 8), so every
 * mmapped value is a multiple of 8 to keep user space's indexing right.
 */
#define LT_PORT_PROTECTED (1U << 0)
struct lt_port_val {
	__u32 flags; /* LT_PORT_* */
	__u32 _pad;
};
_Static_assert(sizeof(struct lt_port_val) == 8, "lt_port_val is ABI (mmapped)");

/* lt_events: RINGBUF records. */
struct lt_event {
	__u64 ts_ns; /* CLOCK_MONOTONIC ns */
	__u8 saddr[16]; /* v4-mapped */
	__u32 stat; /* enum lt_stat: the outcome */
	__u32 ifindex;
	__u16 dport; /* host order */
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 syn; /* 1 = new TCP connection */
	__u32 policy_id;
};
_Static_assert(sizeof(struct lt_event) == 40, "lt_event is ABI");

/*
 * lt_slots: ARRAY[LT_MAX_SLOTS], BPF_F_MMAPABLE. The L7 buckets (per user,
 * org, API key, provider), mmapped by every process that admits. Both
 * halves change together, by one 16-byte CAS, with the protocol of
 * lt_slot.h (the only code that touches them): tat is the lt_bucket word in
 * units of lt_rates[rid]; meta = rid (bits 0..15) | gen (16..23) |
 * refunded (24..63). 16 bytes, 16-aligned: one cache line per decision.
 * (Pins of the previous layout, {tat, __u32 rate_id, __u32 flags = 0}, read
 * the same: rate_id < 2^16 is rid, gen 0, refunded 0.)
 */
struct lt_slot {
	__u64 tat; /* lt_bucket word, units of lt_rates[rid]; >= 2^63: see lt_slot.h */
	__u64 meta; /* rid | gen << 16 | refunded << 24, see lt_slot.h */
} __attribute__((aligned(16)));
_Static_assert(sizeof(struct lt_slot) == 16, "lt_slot is ABI");

/* lt_rates: ARRAY[LT_MAX_RATES] of struct lt_rate, BPF_F_MMAPABLE. */

/*
 * lt_keyidx: HASH (no prealloc) bucket key -> (slot in lt_slots, owner
 * generation), written by the agent only. Keys are "u/<tier>/<provider>/
 * <userId>", "o/<provider>/<orgId>", "k/<keyId>", NUL-padded.
 *
 * Buckets are reclaimed: the agent frees a bucket that has been empty for its
 * idle time (lt_slot_free_if_empty: the slot word becomes LT_TAT_FREE), then
 * deletes its entry here, and may later give the slot to another key. Each
 * time a slot is given to a key, lt_usage[slot].gen is bumped BEFORE the slot
 * is assigned (lt_slot_assign, a full barrier) and the entry here is written
 * AFTER, carrying that gen.
 *
 * The cache rule, for any process that caches this map (the gateway): cache
 * key -> {slot, gen} as read here, and decide only with lt_slot_consume_owned
 * / lt_slot_peek_owned (lt_slot.h), which compare lt_usage[slot].gen with the
 * cached gen before and after the decision. LT_FREED means the bucket is
 * gone or the slot belongs to another key now: drop the cache entry and look
 * the key up here again (a miss: ask the agent to create the bucket). So a
 * stale entry never charges another tenant, and no cache flush is needed.
 */
#define LT_BUCKET_KEY_LEN 128
struct lt_keyidx_key {
	char key[LT_BUCKET_KEY_LEN]; /* NUL-padded */
};
struct lt_keyidx_val {
	__u32 slot; /* index into lt_slots / lt_usage */
	__u32 gen; /* lt_usage[slot].gen when the slot was given to this key */
};
_Static_assert(sizeof(struct lt_keyidx_key) == 128, "lt_keyidx_key is ABI");
_Static_assert(sizeof(struct lt_keyidx_val) == 8, "lt_keyidx_val is ABI");

/*
 * lt_usage: ARRAY[LT_MAX_SLOTS] of per-bucket usage, BPF_F_MMAPABLE, indexed
 * like lt_slots. Atomic adds by whoever decides; read by the admin API.
 * gen is the slot's owner generation (see lt_keyidx): written by the agent
 * only, bumped each time the slot is given to a key; counters are zeroed
 * then, gen never.
 */
struct lt_usage {
	__u64 admitted; /* decisions admitted */
	__u64 rejected; /* decisions denied (429) */
	__u64 tokens; /* tokens admitted */
	__u32 gen; /* owner generation of the slot */
	__u32 _pad;
};
_Static_assert(sizeof(struct lt_usage) == 32, "lt_usage is ABI");

/*
 * lt_apikey: HASH (no prealloc) API-key id -> record, LT_MAX_APIKEYS
 * entries. Written by the agent only: on every key create, update and
 * revoke, after its store (SQLite) has the change, and rebuilt from the
 * store at start (entries the store does not have are removed). Read by any
 * process that authenticates API keys (liblt lt_apikey_map_get: the
 * gateway), which never opens SQLite; no BPF program reads it. So a
 * revocation takes effect in every reader at once and shows in
 * `bpftool map dump pinned <pin>/lt_apikey` (revoked 1).
 *
 * A value changes by one bpf_map_update_elem: a HASH map without prealloc
 * links a new element and frees the old one after an RCU grace period, so a
 * reader copies either the old record or the new one, never half of each.
 * If the agent cannot write a revocation here, it deletes the entry instead
 * (a delete never allocates): an unknown key is refused as well (fail closed).
 */
#define LT_MAX_APIKEYS 65536
#define LT_APIKEY_ID_LEN 40 /* "lk_" + 16 hex digits, NUL-padded */
struct lt_apikey_key {
	char id[LT_APIKEY_ID_LEN];
};
struct lt_apikey_val {
	__u8 hash[32]; /* SHA-256 of the whole key "lk_<id>.<secret>" */
	char owner[64]; /* user id, canonical (tenant.h) */
	char tier[32];
	char org[64]; /* "" = none */
	__u64 capacity; /* tokens: the key's own bucket */
	__u64 tokens; /* leak: tokens per period_ns */
	__u64 period_ns; /* ns */
	__s64 expires_at; /* unix s; 0 = never */
	__u32 revoked; /* 1 = refused from now on */
	/*
	 * LT_APIKEY_F_*. Taken from the padding (append-only: 0 in older pins,
	 * so an older agent's keys read as plain keys, never as admins).
	 */
	__u32 flags;
};
#define LT_APIKEY_F_ADMIN (1U << 0) /* the key (and its exchanged JWTs) has the admin right */
_Static_assert(sizeof(struct lt_apikey_key) == 40, "lt_apikey_key is ABI");
_Static_assert(sizeof(struct lt_apikey_val) == 232, "lt_apikey_val is ABI");

/*
 * lt_upstream: HASH (no prealloc) (service, upstream URL) -> the last active
 * health check of that upstream, LT_MAX_UPSTREAMS entries. Written by the
 * leaky-gateway master after every check (gateway/proxy.c), one whole value
 * per bpf_map_update_elem, so a reader copies one check, never half of two;
 * with several gateways checking one upstream, the last check wins. Read by
 * the agent (GET /api/v1/admin/upstreams, the dashboard's Routes view) and by
 * `bpftool map dump`; no BPF program reads it. An entry is never deleted by
 * its writer: one whose checked_ms is older than 3 intervals is stale (its
 * gateway stopped, or the service left its config), and readers say so.
 */
#define LT_MAX_UPSTREAMS 1024
struct lt_upstream_key {
	char service[64]; /* the gateway config's service name, NUL-padded */
	char upstream[128]; /* "http://host:port" as lt_gateway_upstream_up labels it */
};
struct lt_upstream_val {
	__u64 checked_ms; /* unix ms: the last check */
	__u64 changed_ms; /* unix ms: the last change of healthy (or the first check) */
	__u32 healthy; /* 1: the last check passed (2xx/3xx within its timeout) */
	__u32 fails; /* consecutive failed checks */
	__u32 latency_us; /* us: the last passing check */
	__u32 interval_ms; /* ms: the check's interval */
	__u32 pid; /* the gateway master that wrote it */
	__u32 _pad;
	char why[64]; /* why the last check failed; "" when it passed */
};
_Static_assert(sizeof(struct lt_upstream_key) == 192, "lt_upstream_key is ABI");
_Static_assert(sizeof(struct lt_upstream_val) == 104, "lt_upstream_val is ABI");

/*
 * lt_lease: ARRAY[LT_MAX_LEASES] of struct lt_lease, BPF_F_MMAPABLE: the
 * reservations of gateway requests in flight (lib/lease.h), so that those
 * of a gateway process that dies mid-request are settled by the agent. No
 * BPF program reads it; bpftool dumps it with its fields.
 *
 * Who writes what. An entry is free while owner == 0. A gateway takes one
 * by one CAS of owner 0 -> its owner word (pid | start time, below), then,
 * as the only writer of that entry, fills deadline_ns, taken_ns, n and res;
 * it gives the entry back after settling the request itself (its refunds
 * through lt_slot_refund first, then one CAS owner -> 0). The agent only
 * reads, and frees an entry (CAS owner -> 0, counted) when its owner is
 * dead (no such pid, or a pid of another start time) and deadline_ns has
 * passed (0: never written, passed). That settlement charges the whole
 * reservation: it gives nothing back, the tokens leak away at the bucket's
 * rate. So no kill -9 at any instruction can refund twice: the agent never
 * refunds, and a dead owner refunds nothing more. res is what was reserved
 * (for bpftool, and the slot_seen records a refund needs).
 *
 * Owner word: pid in bits 0..23 (PID_MAX_LIMIT is 2^22) and the process's
 * start time (/proc/<pid>/stat field 22, clock ticks since boot) in bits
 * 24..63, so a reused pid is never taken for the dead owner. The agent and
 * the gateways must share a pid namespace.
 */
#define LT_MAX_LEASES 16384
#define LT_LEASE_RES_MAX 4 /* limits per request: key requests, key tokens, user/org, pool */
#define LT_LEASE_PID_BITS 24

struct lt_lease_res {
	struct lt_rate rate; /* the rate decided on (lt_slot_seen.rate) */
	__u64 tat; /* the word the admission's CAS wrote, units of rate */
	__u64 meta; /* the slot's meta decided on: rid | gen << 16 | refunded << 24 */
	__u64 cost_units; /* units still refundable */
	__u64 cost_tokens; /* tokens reserved */
	__u32 slot; /* index into lt_slots */
	__u32 gen; /* lt_usage[slot].gen of the bucket's owner key */
};
_Static_assert(sizeof(struct lt_lease_res) == 80, "lt_lease_res is ABI");

struct lt_lease {
	__u64 owner; /* 0 = free; pid | start_ticks << 24; changed by CAS only */
	__u64 deadline_ns; /* CLOCK_MONOTONIC ns; a dead owner's lease is settled after it */
	__u64 taken_ns; /* CLOCK_MONOTONIC ns of the admission */
	__u32 n; /* res[0..n) are reservations */
	__u32 _pad;
	struct lt_lease_res res[LT_LEASE_RES_MAX];
};
_Static_assert(sizeof(struct lt_lease) == 352, "lt_lease is ABI (mmapped: a multiple of 8)");

/* How a program is attached to an interface. */
enum lt_attach_mode {
	LT_MODE_XDP_NATIVE = 1,
	LT_MODE_XDP_GENERIC = 2,
	LT_MODE_TC = 3,
};

#define LT_IFACE_OWN_CLSACT (1U << 0) /* the agent created the clsact qdisc */

/*
 * lt_ifaces: HASH ifindex -> attachment. Written by the agent only: the
 * registry that `status` and `detach` read (no BPF program touches it).
 */
struct lt_iface {
	__u32 mode; /* enum lt_attach_mode */
	__u32 flags; /* LT_IFACE_* */
	__u64 attached_ns; /* CLOCK_REALTIME ns of the attach */
	char name[16]; /* interface name at attach time */
};
_Static_assert(sizeof(struct lt_iface) == 32, "lt_iface is ABI");

/* Address helpers shared by BPF and user space. */

/* ~0 << (64 - n) for n in 0..64, as the mask of the first n bits of 8 bytes. */
static __always_inline __u64 lt_prefix_mask64(__u32 n)
{
	__u64 m = n >= 64 ? ~0ULL : n ? ~0ULL << (64 - n) : 0;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	m = __builtin_bswap64(m); /* addr bytes are in network order */
#endif
	return m;
}

/* Clears the bits of addr beyond prefixlen: two 64-bit ANDs, no byte loop. */
static __always_inline void lt_addr_mask(__u8 addr[16], __u32 prefixlen)
{
	__u64 w0, w1;

	__builtin_memcpy(&w0, addr, 8);
	__builtin_memcpy(&w1, addr + 8, 8);
	w0 &= lt_prefix_mask64(prefixlen);
	w1 &= lt_prefix_mask64(prefixlen > 64 ? prefixlen - 64 : 0);
	__builtin_memcpy(addr, &w0, 8);
	__builtin_memcpy(addr + 8, &w1, 8);
}

/*
 * Usage records (issue #9): every gateway request leaves one record for the
 * agent, through shared memory, without a system call and without waiting.
 *
 * lt_reqlog: ARRAY[LT_REQLOG_SLOTS] of struct lt_reqlog_rec, and
 * lt_reqlog_ctl: ARRAY[1] of struct lt_reqlog_ctl, both BPF_F_MMAPABLE; no
 * BPF program touches them. A multi-producer ring (lib/reqlog.c is the only
 * code that reads or writes it): every record has a position p, taken by an
 * atomic fetch-add on ctl.head, and lives in slot p & (LT_REQLOG_SLOTS - 1).
 *
 * The slot's publication pair {seq, owner} changes only as a whole: a claim
 * is one 16-byte CAS (cmpxchg16b, as lt_slot.h); seq alone moves after that.
 *   seq = (p + 1) << 2 | state, 0 = never used; state LT_REQLOG_BUSY (the
 *   owner is writing p), LT_REQLOG_PUB (p is readable), LT_REQLOG_DEAD (p was
 *   abandoned: its owner died mid-write, the consumer took the slot back).
 *   owner = the pid of the process that claimed the slot.
 * A slot's seq only grows, so a value of seq is never seen twice (no ABA).
 *
 * Producer (any process, lt_reqlog_put): claims p, then CASes the slot from
 * {seq < p, not BUSY} to {BUSY(p), pid}, writes the payload, and stores
 * seq = PUB(p) with release. It never waits: if the slot is BUSY (an older
 * writer still in it) or already holds a later position, it gives its
 * record up (gave_up). Claiming over a PUB record that the consumer has not
 * read yet (position >= tail) overwrites it (overwritten): the ring keeps
 * the newest records when the agent is slow.
 *
 * Consumer (the agent only; one per ring): reads positions in order from
 * tail. PUB(p): copy the payload, then read seq again (acquire); unchanged
 * means the copy is whole, because a payload is written only by the holder
 * of a BUSY claim and every claim changes seq first. A later position in
 * the slot, or a seq that moved during the copy: p was lapped. BUSY(p)
 * whose owner is dead (kill(owner, 0) == ESRCH): the slot is taken back
 * (CAS to DEAD(p)) and p is counted died. p still missing after the
 * consumer's stale time (a producer stopped or preempted mid-write, or one
 * that gave up): counted unpublished. So every position below head is
 * either delivered once or counted in exactly one dropped_* counter, and a
 * torn record is never delivered. A slot is taken back only from a dead
 * owner, so no stale writer can scribble over a later record; a dead
 * process's pid is checked in the consumer's pid namespace (producers and
 * the agent must share it, as lt_config's wlock).
 */
#define LT_REQLOG_SLOTS 8192 /* power of 2: at 10k requests/s, 0.8 s of backlog */
#define LT_REQLOG_BUSY 1U
#define LT_REQLOG_PUB 2U
#define LT_REQLOG_DEAD 3U

struct lt_reqlog_ctl {
	__u64 head; /* positions claimed (fetch-add by producers) */
	__u64 _pad0[7]; /* head alone on its cache line: every producer writes it */
	__u64 tail; /* next position the consumer reads; written by the consumer only */
	__u64 consumed; /* records delivered to the consumer */
	__u64 dropped_lapped; /* consumer: overwritten before it was read */
	__u64 dropped_unpublished; /* consumer: still unwritten after its stale time */
	__u64 dropped_died; /* consumer: its producer died mid-write */
	__u64 gave_up; /* producers: slot held by another writer (also counted above) */
	__u64 overwritten; /* producers: unread record replaced (also counted above) */
	__u64 _pad1[1];
};
_Static_assert(sizeof(struct lt_reqlog_ctl) == 128, "lt_reqlog_ctl is ABI");

/* How a request ended (append-only; the agent's store and API name them). */
enum lt_reqlog_outcome {
	LT_REQ_COMPLETED = 0, /* the response was sent whole */
	LT_REQ_CLIENT_GONE = 1, /* the client disconnected first */
	LT_REQ_UPSTREAM_FAILED = 2, /* connect, read or protocol error upstream */
	LT_REQ_TIMED_OUT = 3, /* an upstream timeout answered 504 */
	LT_REQ_REJECTED = 4, /* answered by the gateway itself (401, 4xx, 429, 503) */
	LT_REQ_CUT = 5, /* stream ended by the gateway at its reservation */
	LT_REQ__MAX = 6,
};

#define LT_REQLOG_F_STREAM (1U << 0) /* the response was a stream (SSE) */
#define LT_REQLOG_F_USAGE (1U << 1) /* tokens_in/out are usage (provider or counted) */
#define LT_REQLOG_F_TTFT (1U << 2) /* ttft_ns is set */
/*
 * A decision of the agent's own consume API (issue #10), not a gateway
 * request: the agent's consumer keeps it in the request log (source
 * "consume"), the usage rollups and, when kafka.enabled is set, the usage
 * events; never in the GenAI histograms. Written while the agent has a store.
 */
#define LT_REQLOG_F_DECISION (1U << 3)

#define LT_REQLOG_ID_LEN 64
#define LT_REQLOG_NAME_LEN 64
#define LT_REQLOG_SHORT_LEN 32
#define LT_REQLOG_LIMIT_LEN 24

/* Strings are NUL-terminated within their field (cut if longer), "" = unknown. */
struct lt_reqlog_rec {
	__u64 seq; /* publication word, see above */
	__u64 owner; /* pid of the producer that claimed the slot */
	/* payload */
	__u64 start_ns; /* CLOCK_REALTIME ns: when the request arrived */
	__u64 latency_ns; /* ns from arrival to the last byte answered */
	__u64 ttft_ns; /* ns from arrival to the first response byte (F_TTFT) */
	__u64 tokens_reserved; /* tokens reserved at admission */
	__u64 tokens_in; /* input tokens used (F_USAGE) */
	__u64 tokens_out; /* output tokens used (F_USAGE) */
	__u16 status; /* HTTP status answered to the client */
	__u8 outcome; /* enum lt_reqlog_outcome */
	__u8 _pad0;
	__u16 client_port; /* host order */
	__u16 flags; /* LT_REQLOG_F_* */
	__u8 client_addr[16]; /* v4-mapped; all zero = unknown */
	char method[8]; /* "POST" */
	char request_id[LT_REQLOG_ID_LEN]; /* X-Request-Id as sent upstream */
	char route[LT_REQLOG_NAME_LEN]; /* the route that served it */
	char user[LT_REQLOG_NAME_LEN]; /* tenant: canonical user id */
	char org[LT_REQLOG_NAME_LEN]; /* tenant: canonical org id */
	char tier[LT_REQLOG_SHORT_LEN];
	char key_id[40]; /* API key id (LT_APIKEY_ID_LEN) */
	char provider[LT_REQLOG_SHORT_LEN];
	char model_requested[LT_REQLOG_NAME_LEN];
	char model_served[LT_REQLOG_NAME_LEN];
	/*
	 * The limit that refused the request, as its RateLimit-Policy names it
	 * ("key-requests", "key-tokens", "user-tokens", "org-tokens",
	 * "provider-pool"); "" when admitted or refused before admission. Was
	 * _reserved: a producer built before it leaves it zero ("").
	 */
	char limit[LT_REQLOG_LIMIT_LEN];
	__u8 _reserved[56 - LT_REQLOG_LIMIT_LEN]; /* room for fields to come without a new layout */
} __attribute__((aligned(16)));
_Static_assert(sizeof(struct lt_reqlog_rec) == 640, "lt_reqlog_rec is ABI (mmapped)");

/*
 * lt_breaker: ARRAY[LT_MAX_BREAKERS] of struct lt_breaker_val,
 * BPF_F_MMAPABLE. Circuit breakers per provider and per upstream service,
 * shared by every gateway process through the mmap (lib/breaker.c is the
 * only code that changes them); the agent lists and resets them. No BPF
 * program reads it.
 *
 * Slots. A name's slot is the first of up to LT_BREAKER_PROBES consecutive
 * slots from lt_mix64(fnv1a(name)) & (LT_MAX_BREAKERS - 1) whose tag is that
 * 64-bit hash (never 0), claimed by CAS tag 0 -> hash. The name is written
 * after the claim, then named = 1 (release); whoever finds named == 0 on its
 * own tag writes the same bytes again, so a claimer killed between the two
 * leaves a slot the next user completes. A slot whose name differs from the
 * caller's under the same tag (a 64-bit collision) is probed past. Slots are
 * never freed (names come from the config: providers and services).
 *
 * The state is one word changed only by CAS (a process killed at any
 * instruction leaves the old word or the new one):
 *   bits  0..1   state, enum lt_brk_state
 *   bits  2..9   failures: consecutive failures while CLOSED (saturating)
 *   bits 10..15  issued: HALF_OPEN probes let through this round
 *   bits 16..21  succeeded: HALF_OPEN probes that succeeded
 *   bits 22..63  t_ms, CLOCK_MONOTONIC ms: OPEN until then; HALF_OPEN the
 *                round's deadline, after which probes that never reported
 *                (their process died) are presumed lost and re-issued
 * The bit-field view st.f (same word) is for BTF: bpftool prints it by name.
 * Policy words (0 = the reader's default) and the counters are single words
 * read on their own; opened_at_ms and last_cause are hints for operators.
 */
#define LT_MAX_BREAKERS 1024 /* power of two */
#define LT_BREAKER_PROBES 16 /* slots a name may take, from its hash */
#define LT_BREAKER_NAME_LEN 48 /* bytes, NUL included */

enum lt_brk_state {
	LT_BRK_CLOSED = 0,
	LT_BRK_OPEN = 1,
	LT_BRK_HALF_OPEN = 2,
};

struct lt_breaker_bits {
	__u64 state : 2; /* enum lt_brk_state */
	__u64 failures : 8; /* consecutive, while CLOSED */
	__u64 issued : 6; /* HALF_OPEN probes let through */
	__u64 succeeded : 6; /* HALF_OPEN probes that succeeded */
	__u64 t_ms : 42; /* CLOCK_MONOTONIC ms: OPEN until / HALF_OPEN deadline */
};

struct lt_breaker_val {
	__u64 tag; /* 64-bit hash of name; 0 = free */
	union {
		__u64 word; /* the state, CAS only */
		struct lt_breaker_bits f; /* the same word, for bpftool */
	} st;
	char name[LT_BREAKER_NAME_LEN]; /* NUL-padded */
	__u32 named; /* 1 once name is written */
	__u32 fail_threshold; /* consecutive failures that open; 0 = default */
	__u32 recovery_ms; /* ms OPEN before probes; 0 = default */
	__u32 probes; /* HALF_OPEN probes, all must succeed to close; 0 = default */
	__u32 probe_timeout_ms; /* ms a probe may stay unanswered; 0 = default */
	__u32 last_cause; /* enum lt_brk_outcome (lib/breaker.h) of the last trip */
	__u64 opened_at_ms; /* CLOCK_MONOTONIC ms of the last trip */
	__u64 trips; /* times it opened (atomic add) */
	__u64 denied; /* requests refused while open (atomic add) */
	__u64 _pad[2]; /* 128 bytes: two cache lines */
};
_Static_assert(sizeof(struct lt_breaker_bits) == 8, "lt_breaker_bits is ABI");
_Static_assert(sizeof(struct lt_breaker_val) == 128, "lt_breaker_val is ABI");

/*
 * lt_escal: ARRAY[LT_ESC_SLOTS] of struct lt_esc_slot, BPF_F_MMAPABLE. The
 * gateways' escalation to the kernel (issue #9 item 8, lib/escal.h): per
 * client source, the rejections that ignored a Retry-After within the
 * window, the last wait announced, and the strikes that make the next ban
 * longer. Shared by every worker of every gateway process on the host
 * through the mmap (lib/escal.c is the only code that changes it); no BPF
 * program reads it (the bans it leads to go to lt_penalty, which XDP reads).
 *
 * Slot 0 is the header: its tag is the hash seed (random, set once by CAS
 * from 0 by the first gateway), never a source. A source (addr as
 * lt_lpm_key, v4 as ::ffff:a.b.c.d) has tag = lt_pen_hash(addr, 128, seed)
 * and sits in one of the LT_ESC_PROBES slots from tag & (LT_ESC_SLOTS - 1)
 * (wrapping, slot 0 skipped), claimed by CAS tag 0 -> tag; a slot whose
 * source has gone quiet (window over, strikes decayed to 0, no ban running)
 * is taken over by CAS tag old -> new. addr is written after the claim, for
 * bpftool only: the tag identifies the source. Each of win, quiet and strk
 * is one word changed only by CAS (a process killed at any instruction
 * leaves the old word or the new one). Times are CLOCK_MONOTONIC ms, as
 * lt_penalty's until_ns is CLOCK_MONOTONIC ns.
 */
#define LT_ESC_SLOTS 16384 /* power of two; 64 bytes each: 1 MiB */
#define LT_ESC_PROBES 4
#define LT_ESC_COUNT_BITS 24
#define LT_ESC_COUNT_MAX ((1U << LT_ESC_COUNT_BITS) - 1)
#define LT_ESC_WAIT_MAX_MS ((1U << LT_ESC_COUNT_BITS) - 1) /* ~4.6 h; longer waits saturate */
#define LT_ESC_STRIKES_BITS 16
#define LT_ESC_STRIKES_MAX ((1U << LT_ESC_STRIKES_BITS) - 1)

struct lt_esc_slot {
	__u64 tag; /* lt_pen_hash(addr, 128, seed); 0 = free; slot 0: the seed */
	/* bits 0..23 rejections counted in the window; 24..63 its start, ms */
	__u64 win;
	/* bits 0..23 the shortest wait announced, ms; 24..63 when (the 429's time), ms */
	__u64 quiet;
	/* bits 0..15 strikes (bans so far, after decay); 16..63 the last ban's end, ms */
	__u64 strk;
	__u8 addr[16]; /* the source, network order (v4 as ::ffff:a.b.c.d); for bpftool */
	__u64 bans; /* bans this slot's sources got (atomic add; a counter for operators) */
	__u64 _pad;
};
_Static_assert(sizeof(struct lt_esc_slot) == 64, "lt_esc_slot is ABI (mmapped)");

#endif /* LT_ABI_H */
