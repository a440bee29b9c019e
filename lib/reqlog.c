// SPDX-License-Identifier: MIT
/*
 * reqlog.c - the lt_reqlog ring (protocol and its reasoning: lt_abi.h).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include "maps.h"
#include "reqlog.h"

#define LT_RL_CLAIM_TRIES 8 /* CAS failures before a producer gives its record up */

/*
 * The producer's pid, read once per process: getpid() is a system call, and
 * a put makes none. A child forked after the first open reads its own.
 */
static __u32 lt_rl_pid;
static pthread_once_t lt_rl_once = PTHREAD_ONCE_INIT;

static void lt_rl_child(void)
{
	lt_rl_pid = (__u32)getpid();
}

static void lt_rl_pid_init(void)
{
	lt_rl_pid = (__u32)getpid();
	pthread_atfork(NULL, NULL, lt_rl_child);
}

static inline __u64 lt_rl_seq(__u64 pos, __u64 state)
{
	return (pos + 1) << 2 | state;
}

/* {seq, owner} -> {nseq, nowner} if it is still {*seq, *owner}; else reads both. */
static inline int lt_rl_cas16(struct lt_reqlog_rec *r, __u64 *seq, __u64 *owner, __u64 nseq,
			      __u64 nowner)
{
#if defined(__x86_64__)
	__u64 s = *seq, o = *owner;
	__u8 ok;

	__asm__ __volatile__("lock cmpxchg16b %1\n\tsete %0"
			     : "=q"(ok), "+m"(*(unsigned __int128 *)r), "+a"(s), "+d"(o)
			     : "b"(nseq), "c"(nowner)
			     : "memory", "cc");
	*seq = s;
	*owner = o;
	return ok;
#else
	unsigned __int128 exp = ((unsigned __int128)*owner << 64) | *seq;
	unsigned __int128 nv = ((unsigned __int128)nowner << 64) | nseq;
	int ok = __atomic_compare_exchange_n((unsigned __int128 *)r, &exp, nv, 0, __ATOMIC_SEQ_CST,
					     __ATOMIC_SEQ_CST);

	*seq = (__u64)exp;
	*owner = (__u64)(exp >> 64);
	return ok;
#endif
}

int lt_reqlog_attach(struct lt_reqlog *rl, void *ctl, void *recs, __u64 slots)
{
	if (!ctl || !recs || !slots || (slots & (slots - 1)) || ((unsigned long)recs & 15))
		return -EINVAL;
	pthread_once(&lt_rl_once, lt_rl_pid_init);
	memset(rl, 0, sizeof(*rl));
	rl->ctl = ctl;
	rl->recs = recs;
	rl->mask = slots - 1;
	rl->stale_ns = LT_REQLOG_STALE_NS_DEFAULT;
	return 0;
}

/* One pinned array, mmapped; checks it is the layout this build writes. */
static void *lt_rl_map(const char *pin_dir, const char *name, __u32 value_size, __u32 *entries,
		       size_t *len, char *err, size_t errlen)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	char path[512];
	void *p = NULL;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s%s", path, strerror(-ret),
			 ret == -ENOENT ? " (is leaky-agent attached with this pin dir?)" :
			 ret == -EACCES ? " (the pins need this user's group, mode 0660)" :
					  "");
		errno = -ret;
		return NULL;
	}
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen)) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
	} else if (info.value_size != value_size || !info.max_entries ||
		   (info.max_entries & (info.max_entries - 1))) {
		ret = -EINVAL;
		snprintf(err, errlen, "%s does not match this build (value %u bytes, want %u)",
			 path, info.value_size, value_size);
	} else {
		p = lt_map_mmap(fd, len);
		ret = p ? 0 : -errno;
		if (!p)
			snprintf(err, errlen, "cannot mmap %s: %s", path, strerror(-ret));
		*entries = info.max_entries;
	}
	close(fd);
	errno = -ret;
	return p;
}

int lt_reqlog_open(struct lt_reqlog *rl, const char *pin_dir, char *err, size_t errlen)
{
	size_t clen = 0, rlen = 0;
	void *ctl, *recs = NULL;
	__u32 n = 0, slots = 0;
	int ret;

	memset(rl, 0, sizeof(*rl));
	ctl = lt_rl_map(pin_dir, "lt_reqlog_ctl", sizeof(struct lt_reqlog_ctl), &n, &clen, err,
			errlen);
	if (ctl)
		recs = lt_rl_map(pin_dir, "lt_reqlog", sizeof(struct lt_reqlog_rec), &slots, &rlen,
				 err, errlen);
	if (!ctl || !recs) {
		ret = -errno;
		goto cleanup;
	}
	ret = lt_reqlog_attach(rl, ctl, recs, slots);
	if (ret) {
		snprintf(err, errlen, "lt_reqlog: bad geometry (%u slots)", slots);
		goto cleanup;
	}
	rl->ctl_len = clen;
	rl->recs_len = rlen;
	return 0;
cleanup:
	if (recs)
		munmap(recs, rlen);
	if (ctl)
		munmap(ctl, clen);
	memset(rl, 0, sizeof(*rl));
	return ret ? ret : -EIO;
}

void lt_reqlog_close(struct lt_reqlog *rl)
{
	if (rl->recs_len)
		munmap(rl->recs, rl->recs_len);
	if (rl->ctl_len)
		munmap(rl->ctl, rl->ctl_len);
	memset(rl, 0, sizeof(*rl));
}

/* ---- producer --------------------------------------------------------------- */

struct lt_reqlog_rec *lt_reqlog_claim(struct lt_reqlog *rl, __u64 *pos)
{
	struct lt_reqlog_ctl *c = rl->ctl;
	struct lt_reqlog_rec *r;
	__u64 p, seq, owner, n;
	int tries, over = 0;

	p = __atomic_fetch_add(&c->head, 1, __ATOMIC_RELAXED);
	r = &rl->recs[p & rl->mask];
	seq = __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE);
	owner = __atomic_load_n(&r->owner, __ATOMIC_RELAXED);
	for (tries = 0; tries < LT_RL_CLAIM_TRIES; tries++) {
		n = seq >> 2; /* position + 1 of what the slot holds, 0 = never used */
		/* an older writer still in it, or a later position already: give up */
		if ((seq & 3) == LT_REQLOG_BUSY || n > p)
			break;
		over = (seq & 3) == LT_REQLOG_PUB &&
		       n > __atomic_load_n(&c->tail, __ATOMIC_RELAXED);
		if (lt_rl_cas16(r, &seq, &owner, lt_rl_seq(p, LT_REQLOG_BUSY), lt_rl_pid)) {
			if (over)
				__atomic_fetch_add(&c->overwritten, 1, __ATOMIC_RELAXED);
			*pos = p;
			return r;
		}
	}
	__atomic_fetch_add(&c->gave_up, 1, __ATOMIC_RELAXED);
	return NULL;
}

void lt_reqlog_publish(struct lt_reqlog_rec *r, __u64 pos)
{
	/* release: the payload is visible before the consumer can see PUB */
	__atomic_store_n(&r->seq, lt_rl_seq(pos, LT_REQLOG_PUB), __ATOMIC_RELEASE);
}

static void lt_rl_str(char *dst, size_t len, const char *src)
{
	size_t n;

	if (!src)
		return; /* the payload was zeroed */
	n = strnlen(src, len - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

#define LT_RL_STR(r, f, s) lt_rl_str((r)->f, sizeof((r)->f), (s))

void lt_reqlog_fill(struct lt_reqlog_rec *r, const struct lt_reqlog_in *in)
{
	struct timespec ts;

	memset(&r->start_ns, 0, sizeof(*r) - offsetof(struct lt_reqlog_rec, start_ns));
	r->start_ns = in->start_ns;
	if (!r->start_ns && !clock_gettime(CLOCK_REALTIME, &ts)) /* vDSO: no system call */
		r->start_ns = (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
	r->latency_ns = in->latency_ns;
	r->ttft_ns = in->ttft_ns;
	r->tokens_reserved = in->tokens_reserved;
	r->tokens_in = in->tokens_in;
	r->tokens_out = in->tokens_out;
	r->status = in->status;
	r->outcome = (__u8)(in->outcome < LT_REQ__MAX ? in->outcome : LT_REQ_COMPLETED);
	r->client_port = in->client_port;
	r->flags = (__u16)(in->flags | (in->ttft_ns ? LT_REQLOG_F_TTFT : 0));
	if (in->client_addr)
		memcpy(r->client_addr, in->client_addr, sizeof(r->client_addr));
	LT_RL_STR(r, method, in->method);
	LT_RL_STR(r, request_id, in->request_id);
	LT_RL_STR(r, route, in->route);
	LT_RL_STR(r, user, in->user);
	LT_RL_STR(r, org, in->org);
	LT_RL_STR(r, tier, in->tier);
	LT_RL_STR(r, key_id, in->key_id);
	LT_RL_STR(r, provider, in->provider);
	LT_RL_STR(r, model_requested, in->model_requested);
	LT_RL_STR(r, model_served, in->model_served);
	LT_RL_STR(r, limit, in->limit);
}

int lt_reqlog_put(struct lt_reqlog *rl, const struct lt_reqlog_in *in)
{
	struct lt_reqlog_rec *r;
	__u64 pos;

	if (!rl || !rl->ctl || !in)
		return -ENODEV;
	r = lt_reqlog_claim(rl, &pos);
	if (!r)
		return -EBUSY;
	lt_reqlog_fill(r, in);
	lt_reqlog_publish(r, pos);
	return 0;
}

/* ---- consumer --------------------------------------------------------------- */

/* Only ESRCH is death: EPERM (another user's live process) is alive. */
static int lt_rl_dead(__u64 pid)
{
	return pid && pid < (1ULL << 31) && kill((pid_t)pid, 0) && errno == ESRCH;
}

static void lt_rl_count(__u64 *ctr, __u64 n)
{
	__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

int lt_reqlog_next(struct lt_reqlog *rl, struct lt_reqlog_rec *out, __u64 now_ns)
{
	struct lt_reqlog_ctl *c = rl->ctl;
	__u64 head, tail, seq, seq2, owner, n, slots = rl->mask + 1;
	struct lt_reqlog_rec *r;

	if (!c)
		return 0;
	/* every pass moves tail forward or returns: bounded by head - tail */
	for (;;) {
		tail = __atomic_load_n(&c->tail, __ATOMIC_RELAXED);
		head = __atomic_load_n(&c->head, __ATOMIC_ACQUIRE);
		if (head <= tail) {
			rl->wait_since_ns = 0;
			return 0;
		}
		if (head - tail > slots) { /* lapped by whole turns: those are gone */
			lt_rl_count(&c->dropped_lapped, head - slots - tail);
			__atomic_store_n(&c->tail, head - slots, __ATOMIC_RELEASE);
			continue;
		}
		r = &rl->recs[tail & rl->mask];
		seq = __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE);
		n = seq >> 2;
		if (n == tail + 1 && (seq & 3) == LT_REQLOG_PUB) {
			memcpy(out, r, sizeof(*out));
			/* the copy's loads complete before seq is read again */
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			seq2 = __atomic_load_n(&r->seq, __ATOMIC_RELAXED);
			__atomic_store_n(&c->tail, tail + 1, __ATOMIC_RELEASE);
			rl->wait_since_ns = 0;
			if (seq2 == seq) {
				out->seq = seq;
				lt_rl_count(&c->consumed, 1);
				return 1;
			}
			lt_rl_count(&c->dropped_lapped, 1); /* rewritten while we copied */
			continue;
		}
		if (n > tail + 1 || (n == tail + 1 && (seq & 3) == LT_REQLOG_DEAD)) {
			lt_rl_count(n > tail + 1 ? &c->dropped_lapped : &c->dropped_died, 1);
			__atomic_store_n(&c->tail, tail + 1, __ATOMIC_RELEASE);
			rl->wait_since_ns = 0;
			continue;
		}
		/*
		 * Not there yet: being written (BUSY(tail)), or the slot still holds
		 * an older position (its producer has not claimed it, or gave up).
		 * A BUSY slot whose owner died is taken back: a dead process writes
		 * nothing more, so the slot is safe to reuse.
		 */
		if ((seq & 3) == LT_REQLOG_BUSY) {
			owner = __atomic_load_n(&r->owner, __ATOMIC_RELAXED);
			if (__atomic_load_n(&r->seq, __ATOMIC_ACQUIRE) == seq &&
			    lt_rl_dead(owner) &&
			    __atomic_compare_exchange_n(&r->seq, &seq,
							lt_rl_seq(n - 1, LT_REQLOG_DEAD), 0,
							__ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
				continue; /* looked at again: DEAD(tail) is counted died */
		}
		if (!rl->wait_since_ns || rl->wait_pos != tail) {
			rl->wait_pos = tail;
			rl->wait_since_ns = now_ns ? now_ns : 1;
			return 0;
		}
		if (now_ns - rl->wait_since_ns < rl->stale_ns)
			return 0;
		lt_rl_count(&c->dropped_unpublished, 1);
		__atomic_store_n(&c->tail, tail + 1, __ATOMIC_RELEASE);
		rl->wait_since_ns = 0;
	}
}

__u64 lt_reqlog_backlog(const struct lt_reqlog *rl)
{
	__u64 h, t;

	if (!rl->ctl)
		return 0;
	h = __atomic_load_n(&rl->ctl->head, __ATOMIC_RELAXED);
	t = __atomic_load_n(&rl->ctl->tail, __ATOMIC_RELAXED);
	return h > t ? h - t : 0;
}
