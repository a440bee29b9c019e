/* SPDX-License-Identifier: MIT */
/* units.h - human units parsed once into fixed point (nginx "10r/s" style). */
#ifndef LT_UNITS_H
#define LT_UNITS_H

#include <stddef.h>
#include <string.h>
#include <linux/types.h>

#define LT_NS_PER_SEC 1000000000ULL

/* "250ms", "10s", "5m", "1h", "2d", "1w"; a bare number is seconds. */
int lt_duration_parse(const char *s, __u64 *ns);

/*
 * "512KiB", "256MiB", "2GiB", "1TiB" (powers of 1024), "100MB", "1GB"
 * (powers of 1000), "4096B" or a bare number: bytes. -EINVAL or -ERANGE.
 */
int lt_bytes_parse(const char *s, __u64 *bytes);

/*
 * "10/s", "600/m", "1/d", "7/3s", "100/250ms": tokens per period.
 * Returns 0 or -EINVAL.
 */
int lt_rate_parse(const char *s, __u64 *tokens, __u64 *period_ns);

/* Writes "N/s"-style text for tokens per period_ns. */
void lt_rate_format(__u64 tokens, __u64 period_ns, char *buf, size_t len);

/*
 * A bounded string builder with snprintf's contract, for text built on every
 * request: the text is cut to fit the buffer (NUL-terminated whenever cap > 0)
 * and len counts what the whole text takes, so len >= cap means it was cut.
 * snprintf sets up a FILE on each call, which cost more than the few bytes
 * it wrote (about 6% of a consume, in eight calls).
 */
struct lt_sb {
	char *buf;
	size_t cap; /* bytes of buf */
	size_t len; /* bytes of the whole text so far, NUL excluded */
};

void lt_sb_init(struct lt_sb *b, char *buf, size_t cap);

/*
 * n bytes as they are. Inline, with lt_sb_str: the pieces are a few bytes,
 * mostly literals whose strlen the compiler then folds, where each piece was
 * a call and a strlen (the RateLimit fields of a consume: 1,280 -> 1,066
 * instructions).
 */
static inline void lt_sb_mem(struct lt_sb *b, const char *s, size_t n)
{
	if (b->len + 1 < b->cap) {
		size_t room = b->cap - 1 - b->len;
		size_t k = n < room ? n : room;

		memcpy(b->buf + b->len, s, k);
		b->buf[b->len + k] = '\0';
	}
	b->len += n;
}

static inline void lt_sb_str(struct lt_sb *b, const char *s)
{
	lt_sb_mem(b, s, strlen(s));
}

void lt_sb_u64(struct lt_sb *b, unsigned long long v); /* decimal */
/* snprintf(dst, cap, "%s", src) on a request's path: cut to fit; returns strlen(src) */
size_t lt_scopy(char *dst, size_t cap, const char *src);

/* "2027-01-31T00:00:00Z" (RFC 3339, UTC) for seconds since the epoch. */
void lt_rfc3339(long long unix_s, char *buf, size_t len);

/*
 * A 64-bit hash of n bytes for in-process tables (never stored, never shared
 * with another process): FNV-1a over 8-byte words, the high bits folded into
 * the low ones, so any mask of it picks a slot. A word at a time: a bucket
 * key or a token hashed byte by byte was one dependent multiply per byte.
 */
__u64 lt_hash_mem(const void *p, size_t n);

/* Monotonic clock, the one bpf_ktime_get_ns() reads. */
__u64 lt_now_ns(void);

#endif
