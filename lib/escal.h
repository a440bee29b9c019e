/* SPDX-License-Identifier: MIT */
/*
 * escal.h - escalation to the kernel (issue #9 item 8): a client source that
 * keeps sending after the gateway's 429s goes into the penalty box
 * (lt_penalty, through lib/penalty.c), where XDP drops its packets before
 * user space sees them.
 *
 * Where the state lives, and why. The counting is shared by every worker of
 * every gateway process on the host, so it cannot be process memory; it is
 * the pinned, mmapped lt_escal map (lt_abi.h), which the agent creates and
 * gives to the gateway group with the other gateway pins (agent/pins.c). Not
 * the penalty entries themselves: those are written under lt_config's writer
 * lock (the penalty box's one-writer protocol) and the agent frees them once
 * expired, while a count must be taken on every 429 without a lock and the
 * strikes must outlive the ban they caused. lt_escal is bounded
 * (LT_ESC_SLOTS sources, 1 MiB) and every change is one CAS on one word.
 *
 * What counts. A 429 counts against its source when the request arrived
 * after an earlier 429 to that source and before the wait that 429
 * announced (retry-after-ms) was over: the client ignored a Retry-After. A
 * client that waits as told is never counted, however many 429s it gets.
 * The source's announced wait is the earliest deadline among the 429s of
 * its current quiet period (several connections or API keys behind one
 * address each wait for their own deadline; the earliest of them is the one
 * no honest client runs ahead of). rejections counted 429s within window_ms
 * (a fixed window from the first counted one) ban the source.
 *
 * How long. A ban's TTL doubles with each strike and is capped:
 *     ttl(s) = min(ttl_ms * 2^(s - 1), max_ttl_ms)   for the s-th strike
 * and strikes decay by themselves: one strike is forgotten per decay_ms
 * after the last ban ended, so
 *     s = max(0, s_prev - floor((now - end_prev) / decay_ms)) + 1.
 * A source that stays quiet for s_prev * decay_ms after its ban starts over
 * at ttl_ms.
 *
 * Bounds and approximations (all in the client's favour but one): a source
 * that finds its LT_ESC_PROBES slots taken by active sources is not counted
 * (untracked); a slot taken over from a quiet source while a process still
 * updates the old one may carry one count over; a CAS that keeps failing
 * (LT_ESC_TRIES) drops that one count.
 */
#ifndef LT_ESCAL_H
#define LT_ESCAL_H

#include <stddef.h>
#include "lt_abi.h"

#define LT_ESC_TRIES 64 /* CAS attempts on one word before a count is dropped */

struct lt_esc_policy {
	__u32 rejections; /* counted 429s within window_ms that ban; 0 = escalation off */
	__u64 window_ms;
	__u64 ttl_ms; /* the first ban */
	__u64 max_ttl_ms; /* the cap of the doubling */
	__u64 decay_ms; /* one strike forgotten per decay_ms after the last ban ended */
};

/* Strikes left of s after the ban that ended at end_ms, at now_ms (the decay above). */
__u32 lt_esc_decayed(__u32 s, __u64 end_ms, __u64 now_ms, __u64 decay_ms);

/* The TTL of the s-th strike (s >= 1), ms: min(ttl_ms << (s - 1), max_ttl_ms). */
__u64 lt_esc_ttl_ms(const struct lt_esc_policy *p, __u32 s);

struct lt_escal {
	struct lt_esc_slot *tab; /* the mmapped lt_escal (or test memory) */
	__u32 n; /* slots, a power of two >= 2 */
	size_t map_len; /* 0: not ours to unmap */
	int pen_fd, cfg_fd; /* lt_penalty, lt_config; -1 when not open */
};

struct lt_esc_verdict {
	int tracked; /* the source has a slot */
	int counted; /* this 429 ignored an announced wait */
	__u32 count; /* counted 429s in the source's window, this one included */
	int ban; /* this 429 reached rejections: the caller bans (lt_escal_ban) */
	__u32 strikes; /* the ban's strike, after decay */
	__u64 ttl_ms; /* the ban's TTL */
};

/* Test memory (n slots, MAP_SHARED between processes if they are to share it). */
void lt_escal_init_mem(struct lt_escal *e, void *tab, __u32 n);

/*
 * Opens lt_escal, lt_penalty and lt_config under pin_dir (read-write: the
 * gateway group's 0660 pins). -errno and a one-line err; nothing stays open.
 */
int lt_escal_open(struct lt_escal *e, const char *pin_dir, char *err, size_t errlen);
void lt_escal_close(struct lt_escal *e);

/*
 * A 429 to source addr (16 bytes, v4 as ::ffff:a.b.c.d): the request arrived
 * at arrival_ms, the answer goes at now_ms and announces wait_ms. Counts it
 * (lock-free) and fills *v. At most one caller per offence gets v->ban. 0,
 * or -EINVAL for a bad policy.
 */
int lt_escal_rejected(struct lt_escal *e, const struct lt_esc_policy *p, const __u8 addr[16],
		      __u64 arrival_ms, __u64 now_ms, __u64 wait_ms, struct lt_esc_verdict *v);

/*
 * Bans addr (/32 or /128) for v->ttl_ms in lt_penalty with reason
 * LT_PENALTY_GATEWAY and v->strikes, through lib/penalty.c (under
 * lt_config's writer lock). *out (may be NULL): the entry. -errno
 * (lt_penalty_strerror explains).
 */
int lt_escal_ban(struct lt_escal *e, const __u8 addr[16], const struct lt_esc_verdict *v,
		 struct lt_penalty *out);

/* The slot of addr, for tests and tools: a copy, or -ENOENT. */
int lt_escal_get(struct lt_escal *e, const __u8 addr[16], struct lt_esc_slot *out);

#endif
