/* SPDX-License-Identifier: MIT */
/*
 * reqlog.h - usage records from the gateway to the agent through the pinned
 * lt_reqlog ring (the protocol is in lt_abi.h; this is its only code).
 * Producer: lt_reqlog_put, one call per finished request, no system call,
 * never waits, never fails (a record it cannot place is counted, by the
 * consumer, as dropped). Consumer: lt_reqlog_next, the agent's alone.
 */
#ifndef LT_REQLOG_H
#define LT_REQLOG_H

#include <stddef.h>
#include <linux/types.h>
#include "lt_abi.h"

struct lt_reqlog {
	struct lt_reqlog_ctl *ctl;
	struct lt_reqlog_rec *recs;
	__u64 mask; /* slots - 1 */
	size_t ctl_len, recs_len; /* mapped sizes, for munmap; 0 = not ours */
	/* consumer only */
	__u64 stale_ns; /* how long a missing position is waited for */
	__u64 wait_pos; /* the position waited for since wait_since_ns */
	__u64 wait_since_ns; /* 0 = not waiting */
};

/*
 * What a finished request tells the log. Strings may be NULL (= unknown) and
 * are cut to their field in struct lt_reqlog_rec. Times in ns.
 */
struct lt_reqlog_in {
	const char *request_id, *method, *route;
	const char *user, *org, *tier, *key_id; /* the tenant, canonical ids */
	const char *provider, *model_requested, *model_served;
	const char *limit; /* the limit that refused it (lt_abi.h); NULL = admitted */
	const __u8 *client_addr; /* 16 bytes, v4-mapped (lt_abi.h); NULL = unknown */
	__u16 client_port; /* host order */
	__u16 status; /* HTTP status answered */
	__u32 outcome; /* enum lt_reqlog_outcome */
	__u32 flags; /* LT_REQLOG_F_*: F_USAGE when tokens_in/out are known */
	__u64 start_ns; /* CLOCK_REALTIME ns of arrival; 0 = now */
	__u64 latency_ns; /* arrival to last byte */
	__u64 ttft_ns; /* arrival to first response byte; 0 = none */
	__u64 tokens_reserved, tokens_in, tokens_out;
};

/*
 * Opens and mmaps lt_reqlog_ctl and lt_reqlog under pin_dir (read-write fds:
 * the pins need the gateway's group, mode 0660). 0 or -errno with err set.
 */
int lt_reqlog_open(struct lt_reqlog *rl, const char *pin_dir, char *err, size_t errlen);
/* The ring on memory already mapped (the agent's maps, tests): slots a power of 2. */
int lt_reqlog_attach(struct lt_reqlog *rl, void *ctl, void *recs, __u64 slots);
void lt_reqlog_close(struct lt_reqlog *rl);

/*
 * Producer: logs one record. Lock-free; safe from any thread and process;
 * makes no system call and never waits. Returns 0 if the record was
 * published, -EBUSY if its slot was held by another writer (the consumer
 * counts it dropped), -ENODEV if rl is not open. Callers may ignore it.
 */
int lt_reqlog_put(struct lt_reqlog *rl, const struct lt_reqlog_in *in);

/* The two halves of lt_reqlog_put, for tests that stop a producer mid-write. */
struct lt_reqlog_rec *lt_reqlog_claim(struct lt_reqlog *rl, __u64 *pos);
void lt_reqlog_publish(struct lt_reqlog_rec *r, __u64 pos);
/* Fills a record's payload from in (no publication). */
void lt_reqlog_fill(struct lt_reqlog_rec *r, const struct lt_reqlog_in *in);

/*
 * Consumer (one per ring): the next record in order into *out (payload and
 * seq; 1), or 0 when nothing is ready now. Never blocks. Positions it gives
 * up on are counted in ctl->dropped_* (lt_abi.h). now_ns: CLOCK_MONOTONIC.
 */
int lt_reqlog_next(struct lt_reqlog *rl, struct lt_reqlog_rec *out, __u64 now_ns);

/* Records still to read (head - tail; may include positions being written). */
__u64 lt_reqlog_backlog(const struct lt_reqlog *rl);

#define LT_REQLOG_STALE_NS_DEFAULT (250 * 1000000ULL)

#endif
