// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "lease.h"
#include "maps.h"

#define LT_PID_MASK ((1ULL << LT_LEASE_PID_BITS) - 1)

/*
 * The owner word of pid from /proc/<pid>/stat: start time (field 22, after
 * the parenthesised comm, which may hold spaces and parentheses itself). A
 * zombie (Z) or dead (X) process is no owner: it will never settle anything.
 */
__u64 lt_lease_owner_of(__u32 pid)
{
	char path[64], buf[1024], *p, *save = NULL, *t;
	unsigned long long start = 0;
	ssize_t n;
	int fd, i;

	if (!pid || pid > LT_PID_MASK)
		return 0;
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* fields 3.. after the comm: state is the first, starttime the 20th */
	for (i = 3, t = strtok_r(p + 1, " ", &save); t; i++, t = strtok_r(NULL, " ", &save)) {
		if (i == 3 && (*t == 'Z' || *t == 'X'))
			return 0;
		if (i == 22) {
			if (sscanf(t, "%llu", &start) != 1)
				return 0;
			break;
		}
	}
	if (i != 22)
		return 0;
	return (__u64)pid | (start << LT_LEASE_PID_BITS);
}

__u64 lt_lease_owner_self(void)
{
	return lt_lease_owner_of((__u32)getpid());
}

int lt_leases_attach(struct lt_leases *l, struct lt_lease *map, __u32 n)
{
	memset(l, 0, sizeof(*l));
	l->map = map;
	l->n = n;
	l->me = lt_lease_owner_self();
	return l->me ? 0 : -ESRCH;
}

int lt_leases_open(struct lt_leases *l, const char *pin_dir, char *err, size_t errlen)
{
	char path[512];
	size_t len = 0;
	void *p;
	long n;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/lt_lease", pin_dir);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s (is leaky-agent attached?)", path, strerror(errno));
		return ret;
	}
	n = lt_map_entries(fd);
	p = n > 0 ? lt_map_mmap(fd, &len) : NULL;
	ret = p ? 0 : n < 0 ? (int)n : -errno;
	close(fd); /* the mapping stays */
	if (ret) {
		snprintf(err, errlen, "%s: cannot mmap: %s", path, strerror(-ret));
		return ret;
	}
	ret = lt_leases_attach(l, p, (__u32)n);
	if (ret) {
		munmap(p, len);
		snprintf(err, errlen, "cannot read this process's start time in /proc");
		return ret;
	}
	l->map_len = len;
	return 0;
}

void lt_leases_close(struct lt_leases *l)
{
	if (l->map && l->map_len)
		munmap(l->map, l->map_len);
	l->map = NULL;
	l->map_len = 0;
}

int lt_lease_take(struct lt_leases *l, __u64 now_ns, __u64 deadline_ns, __u32 *id)
{
	__u32 start, i, k;

	if (!l->me)
		return -ESRCH;
	if (!l->n)
		return -ENOSPC;
	/* threads start at different places: they rarely race for one entry */
	start = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);
	for (i = 0; i < l->n; i++) {
		struct lt_lease *e = &l->map[(start + i) % l->n];
		__u64 free_ = 0;

		if (__atomic_load_n(&e->owner, __ATOMIC_RELAXED))
			continue;
		if (!__atomic_compare_exchange_n(&e->owner, &free_, l->me, 0, __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED))
			continue;
		k = (start + i) % l->n;
		/* ours alone now: the agent only reads an entry whose owner is alive */
		e->n = 0;
		e->taken_ns = now_ns;
		__atomic_store_n(&e->deadline_ns, deadline_ns, __ATOMIC_RELEASE);
		__atomic_store_n(&l->next, k + 1, __ATOMIC_RELAXED);
		*id = k;
		return 0;
	}
	return -ENOSPC;
}

static void lt_lease_fill(struct lt_lease_res *r, const struct lt_slot_seen *seen)
{
	r->rate = seen->rate;
	r->tat = seen->tat;
	r->meta = seen->meta;
	r->cost_units = seen->cost_units;
	r->slot = seen->slot;
}

void lt_lease_record(struct lt_leases *l, __u32 id, __u32 i, const struct lt_slot_seen *seen,
		     __u32 gen, __u64 cost_tokens)
{
	struct lt_lease *e = &l->map[id % l->n];

	if (i >= LT_LEASE_RES_MAX)
		return;
	lt_lease_fill(&e->res[i], seen);
	e->res[i].gen = gen;
	e->res[i].cost_tokens = cost_tokens;
	if (e->n < i + 1)
		__atomic_store_n(&e->n, i + 1, __ATOMIC_RELEASE);
}

void lt_lease_update(struct lt_leases *l, __u32 id, __u32 i, const struct lt_slot_seen *seen)
{
	struct lt_lease *e = &l->map[id % l->n];

	if (i < LT_LEASE_RES_MAX)
		__atomic_store_n(&e->res[i].cost_units, seen->cost_units, __ATOMIC_RELEASE);
}

int lt_lease_release(struct lt_leases *l, __u32 id)
{
	struct lt_lease *e = &l->map[id % l->n];
	__u64 me = l->me;

	return __atomic_compare_exchange_n(&e->owner, &me, 0, 0, __ATOMIC_ACQ_REL,
					   __ATOMIC_RELAXED) ?
		       0 :
		       -EPERM;
}

long lt_lease_settle(struct lt_lease *map, __u32 n, __u64 now_ns, long *live)
{
	long settled = 0, inuse = 0;
	__u64 owner, deadline;
	__u32 i;

	for (i = 0; i < n; i++) {
		struct lt_lease *e = &map[i];

		owner = __atomic_load_n(&e->owner, __ATOMIC_ACQUIRE);
		if (!owner)
			continue;
		deadline = __atomic_load_n(&e->deadline_ns, __ATOMIC_ACQUIRE);
		/* alive: the same pid with the same start time (never a reused pid) */
		if (deadline > now_ns || lt_lease_owner_of((__u32)(owner & LT_PID_MASK)) == owner) {
			inuse++;
			continue;
		}
		/*
		 * The owner is dead: nobody else writes this entry, so the CAS
		 * fails only if another settler freed it (and maybe somebody took
		 * it again) meanwhile; either way it is not ours to count.
		 */
		if (__atomic_compare_exchange_n(&e->owner, &owner, 0, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			settled++;
	}
	if (live)
		*live = inuse;
	return settled;
}
