/* SPDX-License-Identifier: MIT */
/*
 * lease.h - leases on gateway requests in flight (the pinned lt_lease map of
 * lt_abi.h), both halves (liblt): a gateway takes one before it reserves and
 * gives it back after it settled the request; the agent settles those whose
 * owner died.
 *
 * The rule when a gateway dies mid-request (kill -9, OOM, a crash): its
 * reservations stay charged in full. The agent frees the lease once the
 * owner is gone and the deadline passed, gives nothing back, and counts it.
 * Nothing stays reserved forever (the tokens leak away at the bucket's
 * rate, as any admitted tokens do), no lease entry is lost, and since only
 * the living owner ever refunds, no interleaving of a kill with a refund
 * and a settlement can give tokens back twice.
 *
 * No system call on the gateway's path: the map is mmapped once; taking and
 * giving back are one CAS each on the owner word, the rest plain stores by
 * the entry's only writer.
 *
 * The owner word is the process's (pid, start time): a worker forked after
 * lt_leases_open must open (or attach) again in the child, or its leases
 * would name its parent. Threads of one process share one struct lt_leases.
 */
#ifndef LT_LEASE_H
#define LT_LEASE_H

#include <stddef.h>
#include "lt_slot.h"

struct lt_leases {
	struct lt_lease *map; /* mmapped lt_lease (or test memory) */
	__u32 n; /* entries */
	__u64 me; /* this process's owner word (lt_lease_owner_self) */
	__u32 next; /* where the next search starts (atomic, shared by threads) */
	size_t map_len; /* for munmap; 0 = not ours */
};

/* Maps <pin_dir>/lt_lease read-write. -errno with err set. */
int lt_leases_open(struct lt_leases *l, const char *pin_dir, char *err, size_t errlen);
/* The same on memory the caller owns (tests, or an fd already mmapped). */
int lt_leases_attach(struct lt_leases *l, struct lt_lease *map, __u32 n);
void lt_leases_close(struct lt_leases *l);

/* pid | start time of the calling process (lt_abi.h), or 0 if unreadable. */
__u64 lt_lease_owner_self(void);
/* The owner word of pid as it runs now; 0 if there is no such process. */
__u64 lt_lease_owner_of(__u32 pid);

/*
 * Takes a free entry for a request whose own settlement is due by
 * deadline_ns (CLOCK_MONOTONIC): 0 and *id, or -ENOSPC (every entry in use:
 * answer 503, reserve nothing) or -ESRCH (the owner word is unknown).
 */
int lt_lease_take(struct lt_leases *l, __u64 now_ns, __u64 deadline_ns, __u32 *id);

/* Records reservation i of lease id (after its LT_ADMIT; i < LT_LEASE_RES_MAX). */
void lt_lease_record(struct lt_leases *l, __u32 id, __u32 i, const struct lt_slot_seen *seen,
		     __u32 gen, __u64 cost_tokens);

/* Updates the refundable part of reservation i after a refund. */
void lt_lease_update(struct lt_leases *l, __u32 id, __u32 i, const struct lt_slot_seen *seen);

/* Gives lease id back (its owner only). 0, or -EPERM if it is not ours (settled). */
int lt_lease_release(struct lt_leases *l, __u32 id);

/*
 * The agent's pass: frees every lease whose owner is dead and whose
 * deadline passed at now_ns, charging its reservations in full. Returns the
 * leases settled; *live (may be NULL) gets the leases left in use.
 */
long lt_lease_settle(struct lt_lease *map, __u32 n, __u64 now_ns, long *live);

#endif
