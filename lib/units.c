// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "units.h"

/* A suffix and what one of it is worth (ns, bytes). */
struct lt_unit {
	const char *suffix;
	__u64 mul;
};

static const struct lt_unit lt_time_units[] = {
	{ "ns", 1ULL },
	{ "us", 1000ULL },
	{ "ms", 1000000ULL },
	{ "s", LT_NS_PER_SEC },
	{ "m", 60 * LT_NS_PER_SEC },
	{ "h", 3600 * LT_NS_PER_SEC },
	{ "d", 86400 * LT_NS_PER_SEC },
	{ "w", 7 * 86400 * LT_NS_PER_SEC },
};

static const struct lt_unit lt_byte_units[] = {
	{ "B", 1ULL },		 { "KiB", 1ULL << 10 },
	{ "MiB", 1ULL << 20 },	 { "GiB", 1ULL << 30 },
	{ "TiB", 1ULL << 40 },	 { "kB", 1000ULL },
	{ "KB", 1000ULL },	 { "MB", 1000000ULL },
	{ "GB", 1000000000ULL }, { "TB", 1000000000000ULL },
};

/*
 * "<digits><suffix>" times the suffix's worth, a bare number times bare.
 * -EINVAL for anything else (a sign, a space, an unknown suffix, more digits
 * than 64 bits hold), -ERANGE when the product does not fit.
 */
static int lt_unit_parse(const char *s, const struct lt_unit *u, size_t nu, __u64 bare, __u64 *out)
{
	unsigned long long n;
	__u64 mul = bare;
	size_t i;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		for (i = 0; i < nu && strcmp(end, u[i].suffix); i++)
			;
		if (i == nu)
			return -EINVAL;
		mul = u[i].mul;
	}
	if (n > ~0ULL / mul)
		return -ERANGE;
	*out = n * mul;
	return 0;
}

int lt_duration_parse(const char *s, __u64 *ns)
{
	return lt_unit_parse(s, lt_time_units, sizeof(lt_time_units) / sizeof(lt_time_units[0]),
			     LT_NS_PER_SEC, ns);
}

int lt_bytes_parse(const char *s, __u64 *bytes)
{
	return lt_unit_parse(s, lt_byte_units, sizeof(lt_byte_units) / sizeof(lt_byte_units[0]), 1,
			     bytes);
}

int lt_rate_parse(const char *s, __u64 *tokens, __u64 *period_ns)
{
	unsigned long long n;
	const char *per;
	char buf[32];
	char *end;
	int err;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || *end != '/' || !n)
		return -EINVAL;
	per = end + 1;
	if (!*per)
		return -EINVAL;
	/* "/s" means "/1s" */
	if (!isdigit((unsigned char)*per)) {
		if (strlen(per) + 2 > sizeof(buf))
			return -EINVAL;
		snprintf(buf, sizeof(buf), "1%s", per);
		per = buf;
	} else if (!isalpha((unsigned char)per[strlen(per) - 1])) {
		return -EINVAL; /* "10/5" has no unit */
	}
	err = lt_duration_parse(per, period_ns);
	if (err)
		return err;
	if (!*period_ns)
		return -EINVAL;
	*tokens = n;
	return 0;
}

__u64 lt_hash_mem(const void *p, size_t n)
{
	const unsigned char *c = p;
	__u64 h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		__u64 w;

		memcpy(&w, c + i, 8);
		h = (h ^ w) * 1099511628211ULL;
	}
	for (; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ULL;
	/* a multiply moves bits only upwards: fold the high ones into the slot bits */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

void lt_sb_init(struct lt_sb *b, char *buf, size_t cap)
{
	b->buf = buf;
	b->cap = cap;
	b->len = 0;
	if (cap)
		buf[0] = '\0';
}

size_t lt_scopy(char *dst, size_t cap, const char *src)
{
	struct lt_sb b;

	lt_sb_init(&b, dst, cap);
	lt_sb_str(&b, src);
	return b.len;
}

void lt_sb_u64(struct lt_sb *b, unsigned long long v)
{
	char d[20], *q = d + sizeof(d);

	do
		*--q = (char)('0' + v % 10);
	while (v /= 10);
	lt_sb_mem(b, q, (size_t)(d + sizeof(d) - q));
}

void lt_rate_format(__u64 tokens, __u64 period_ns, char *buf, size_t len)
{
	static const struct {
		__u64 ns;
		const char *name;
	} per[] = { { LT_NS_PER_SEC, "s" },
		    { 60 * LT_NS_PER_SEC, "m" },
		    { 3600 * LT_NS_PER_SEC, "h" },
		    { 86400 * LT_NS_PER_SEC, "d" } },
	  div[] = { { 86400 * LT_NS_PER_SEC, "d" },
		    { 3600 * LT_NS_PER_SEC, "h" },
		    { 60 * LT_NS_PER_SEC, "m" },
		    { LT_NS_PER_SEC, "s" },
		    { 1000000, "ms" },
		    { 1000, "us" },
		    { 1, "ns" } };
	struct lt_sb b;
	unsigned int i;

	/* on every consume reply: the builder, not snprintf; the same text */
	lt_sb_init(&b, buf, len);
	/* "10/s" rather than "1/100ms": a whole number of tokens per unit */
	for (i = 0; i < sizeof(per) / sizeof(per[0]); i++) {
		if (tokens > ~0ULL / per[i].ns || (tokens * per[i].ns) % period_ns)
			continue;
		lt_sb_u64(&b, tokens * per[i].ns / period_ns);
		lt_sb_str(&b, "/");
		lt_sb_str(&b, per[i].name);
		return;
	}
	for (i = 0; i < sizeof(div) / sizeof(div[0]); i++) {
		if (period_ns % div[i].ns)
			continue;
		lt_sb_u64(&b, tokens);
		lt_sb_str(&b, "/");
		if (period_ns != div[i].ns)
			lt_sb_u64(&b, period_ns / div[i].ns);
		lt_sb_str(&b, div[i].name);
		return;
	}
}

__u64 lt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * LT_NS_PER_SEC + (__u64)ts.tv_nsec;
}

void lt_rfc3339(long long unix_s, char *buf, size_t len)
{
	time_t t = (time_t)unix_s;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "1970-01-01T00:00:00Z");
}
