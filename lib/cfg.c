// SPDX-License-Identifier: MIT
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include "cfg.h"
#include "maps.h"

#define LT_CFG_LOCK_WAIT_NS (2000ULL * 1000 * 1000)

struct lt_config_val *lt_cfg_map(int fd, size_t *len)
{
	struct lt_config_val *v = lt_map_mmap(fd, len);

	if (v && *len < sizeof(*v)) {
		munmap(v, *len);
		errno = EINVAL;
		return NULL;
	}
	return v;
}

void lt_cfg_view(const struct lt_config_val *v, struct lt_config *out)
{
	const struct lt_config_snap *s;
	__u64 seq;

	/*
	 * User space may retry without bound: a copy is rewritten only after
	 * a publication, so this loops only while writers keep publishing.
	 */
	do {
		seq = __atomic_load_n(&v->seq, __ATOMIC_ACQUIRE);
		s = &v->snap[seq & 1];
		memcpy(&out->dflt, &s->dflt, sizeof(out->dflt));
		out->clk_base_ns = s->clk_base_ns;
		out->clk_base_jiffies = s->clk_base_jiffies;
		out->clk_ns_per_jiffy = s->clk_ns_per_jiffy;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while (__atomic_load_n(&v->seq, __ATOMIC_RELAXED) != seq);
	out->flags = __atomic_load_n(&v->flags, __ATOMIC_RELAXED);
	out->sample_mask = __atomic_load_n(&v->sample_mask, __ATOMIC_RELAXED);
	out->generation = __atomic_load_n(&v->generation, __ATOMIC_RELAXED);
}

int lt_cfg_read(int cfg_fd, struct lt_config *out)
{
	struct lt_config_val *v;
	size_t len;

	v = lt_cfg_map(cfg_fd, &len);
	if (!v)
		return -errno;
	lt_cfg_view(v, out);
	munmap(v, len);
	return 0;
}

int lt_cfg_bump(int cfg_fd)
{
	struct lt_config_val *v;
	size_t len;

	v = lt_cfg_map(cfg_fd, &len);
	if (!v)
		return -errno;
	__atomic_fetch_add(&v->generation, 1, __ATOMIC_RELEASE);
	munmap(v, len);
	return 0;
}

int lt_cfg_flags(int cfg_fd, __u32 set, __u32 clear)
{
	struct lt_config_val *v;
	size_t len;

	v = lt_cfg_map(cfg_fd, &len);
	if (!v)
		return -errno;
	if (set)
		__atomic_fetch_or(&v->flags, set, __ATOMIC_RELEASE);
	if (clear)
		__atomic_fetch_and(&v->flags, ~clear, __ATOMIC_RELEASE);
	munmap(v, len);
	return 0;
}

int lt_cfg_set_sample_mask(int cfg_fd, __u32 mask)
{
	struct lt_config_val *v;
	size_t len;

	v = lt_cfg_map(cfg_fd, &len);
	if (!v)
		return -errno;
	__atomic_store_n(&v->sample_mask, mask, __ATOMIC_RELEASE);
	munmap(v, len);
	return 0;
}

static __u64 lt_cfg_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/*
 * Threads of one process share a pid, so wlock alone cannot tell them apart:
 * they queue on this first (the agent's API threads ban while a reload
 * writes the latch; the gateway's workers will escalate bans).
 */
static pthread_mutex_t lt_cfg_thread_lock = PTHREAD_MUTEX_INITIALIZER;

/* wlock: CAS 0 -> pid; a dead owner's lock is taken over. */
int lt_cfg_lock(struct lt_config_val *v, char *err, size_t errlen)
{
	__u32 me = (__u32)getpid(), cur;
	__u64 deadline = lt_cfg_mono_ns() + LT_CFG_LOCK_WAIT_NS;
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(LT_CFG_LOCK_WAIT_NS / 1000000000ULL);
	if (pthread_mutex_timedlock(&lt_cfg_thread_lock, &until)) {
		snprintf(err, errlen, "lt_config is being written by another thread; try again");
		return -EBUSY;
	}
	for (;;) {
		cur = 0;
		if (__atomic_compare_exchange_n(&v->wlock, &cur, me, 0, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return 0;
		if (cur != me && kill((pid_t)cur, 0) && errno == ESRCH &&
		    __atomic_compare_exchange_n(&v->wlock, &cur, me, 0, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return 0;
		if (lt_cfg_mono_ns() > deadline) {
			snprintf(err, errlen,
				 "lt_config is being written by pid %u (stopped?); try again", cur);
			pthread_mutex_unlock(&lt_cfg_thread_lock);
			return -EBUSY;
		}
		usleep(50);
	}
}

void lt_cfg_unlock(struct lt_config_val *v)
{
	__atomic_store_n(&v->wlock, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&lt_cfg_thread_lock);
}

int lt_cfg_update(int cfg_fd, int (*fn)(struct lt_config_snap *s, void *arg), void *arg, char *err,
		  size_t errlen)
{
	struct lt_config_val *v;
	struct lt_config_snap next;
	size_t len;
	__u64 seq;
	int ret;

	v = lt_cfg_map(cfg_fd, &len);
	if (!v) {
		ret = -errno;
		snprintf(err, errlen, "lt_config: %s", strerror(-ret));
		return ret;
	}
	ret = lt_cfg_lock(v, err, errlen);
	if (ret)
		goto cleanup;
	/* Under wlock nobody else publishes: seq and snap[seq & 1] hold still. */
	seq = __atomic_load_n(&v->seq, __ATOMIC_ACQUIRE);
	memcpy(&next, &v->snap[seq & 1], sizeof(next));
	ret = fn(&next, arg);
	if (!ret) {
		memcpy(&v->snap[(seq + 1) & 1], &next, sizeof(next));
		__atomic_store_n(&v->seq, seq + 1, __ATOMIC_RELEASE);
	}
	lt_cfg_unlock(v);
cleanup:
	munmap(v, len);
	return ret;
}
