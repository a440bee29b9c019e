// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "lt_abi.h"
#include "tenant.h"
#include "units.h"

static int lt_hex(char c)
{
	if (c >= '0' && c <= '9')
		return 1;
	if (c >= 'a' && c <= 'f')
		return 1;
	return c >= 'A' && c <= 'F' ? 2 : 0; /* 2: upper case */
}

/* 0 not a UUID, 1 canonical, 2 a UUID with upper-case digits. */
static int lt_uuid_class(const char *s)
{
	int i, cls = 1, h;

	if (!s || strnlen(s, LT_UUID_LEN + 1) != LT_UUID_LEN)
		return 0;
	for (i = 0; i < LT_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
			continue;
		}
		h = lt_hex(s[i]);
		if (!h)
			return 0;
		if (h == 2)
			cls = 2;
	}
	return cls;
}

int lt_uuid_ok(const char *s)
{
	return lt_uuid_class(s) != 0;
}

int lt_uuid_canonical(const char *s)
{
	return lt_uuid_class(s) == 1;
}

/* a UUID (cls != 0) in lower case */
static void lt_uuid_lower(const char *s, int cls, char out[LT_UUID_LEN + 1])
{
	int i;

	if (cls == 1) {
		memcpy(out, s, LT_UUID_LEN + 1);
		return;
	}
	for (i = 0; i < LT_UUID_LEN; i++)
		out[i] = s[i] >= 'A' && s[i] <= 'F' ? (char)(s[i] - 'A' + 'a') : s[i];
	out[LT_UUID_LEN] = '\0';
}

int lt_uuid_canon(const char *s, char out[LT_UUID_LEN + 1])
{
	int cls = lt_uuid_class(s);

	if (!cls)
		return -EINVAL;
	lt_uuid_lower(s, cls, out);
	return 0;
}

int lt_claim_id_canon(const char *s, char *out, size_t outlen)
{
	size_t n = strlen(s);
	int cls;

	if (n >= outlen)
		return -ENAMETOOLONG;
	/* classified once: it runs on every authenticated request */
	cls = lt_uuid_class(s);
	if (cls)
		lt_uuid_lower(s, cls, out);
	else
		memcpy(out, s, n + 1);
	return 0;
}

/* A name part of a key: non-empty printable ASCII without '/'. */
static int lt_part_ok(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (*s == '/' || (unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

int lt_bucket_key(char *out, size_t outlen, enum lt_bkey_kind kind, const char *tier,
		  const char *provider, const char *id)
{
	struct lt_sb b;
	size_t n;

	/* built on every consume: the builder (lib/units.h), not snprintf */
	lt_sb_init(&b, out, outlen);
	switch (kind) {
	case LT_BKEY_USER:
		if (!lt_part_ok(tier) || !lt_part_ok(provider) || !lt_uuid_canonical(id))
			return -EINVAL;
		lt_sb_str(&b, "u/");
		lt_sb_str(&b, tier);
		lt_sb_str(&b, "/");
		lt_sb_str(&b, provider);
		lt_sb_str(&b, "/");
		lt_sb_str(&b, id);
		break;
	case LT_BKEY_ORG:
		if (!lt_part_ok(provider) || !lt_uuid_canonical(id))
			return -EINVAL;
		lt_sb_str(&b, "o/");
		lt_sb_str(&b, provider);
		lt_sb_str(&b, "/");
		lt_sb_str(&b, id);
		break;
	case LT_BKEY_APIKEY:
		if (!lt_part_ok(id))
			return -EINVAL;
		lt_sb_str(&b, "k/");
		lt_sb_str(&b, id);
		break;
	case LT_BKEY_KEYREQ:
		if (!lt_part_ok(tier) || !lt_part_ok(id))
			return -EINVAL;
		lt_sb_str(&b, "r/");
		lt_sb_str(&b, tier);
		lt_sb_str(&b, "/");
		lt_sb_str(&b, id);
		break;
	case LT_BKEY_POOL:
		if (!lt_part_ok(provider))
			return -EINVAL;
		lt_sb_str(&b, "p/");
		lt_sb_str(&b, provider);
		break;
	default:
		return -EINVAL;
	}
	n = b.len;
	if (n >= outlen || n >= LT_BUCKET_KEY_LEN) {
		if (outlen)
			out[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

int lt_bucket_key_canonical(const char *key)
{
	char copy[LT_BUCKET_KEY_LEN], again[LT_BUCKET_KEY_LEN], *part[4] = { 0 }, *p;
	unsigned n = 0, want;

	if (!key || strlen(key) >= sizeof(copy) || key[0] == '\0' || key[1] != '/')
		return 0;
	memcpy(copy, key, strlen(key) + 1);
	for (p = copy + 2; n < 4; n++) {
		part[n] = p;
		p = strchr(p, '/');
		if (!p) {
			n++;
			break;
		}
		*p++ = '\0';
	}
	if (p) /* more parts than any kind has */
		return 0;
	switch (key[0]) {
	case LT_BKEY_USER:
		want = 3;
		break;
	case LT_BKEY_ORG:
	case LT_BKEY_KEYREQ:
		want = 2;
		break;
	case LT_BKEY_APIKEY:
	case LT_BKEY_POOL:
		want = 1;
		break;
	default:
		return 0;
	}
	if (n != want)
		return 0;
	switch (key[0]) {
	case LT_BKEY_USER:
		n = lt_bucket_key(again, sizeof(again), LT_BKEY_USER, part[0], part[1], part[2]);
		break;
	case LT_BKEY_ORG:
		n = lt_bucket_key(again, sizeof(again), LT_BKEY_ORG, NULL, part[0], part[1]);
		break;
	case LT_BKEY_KEYREQ:
		n = lt_bucket_key(again, sizeof(again), LT_BKEY_KEYREQ, part[0], NULL, part[1]);
		break;
	case LT_BKEY_APIKEY:
		n = lt_bucket_key(again, sizeof(again), LT_BKEY_APIKEY, NULL, NULL, part[0]);
		break;
	default:
		n = lt_bucket_key(again, sizeof(again), LT_BKEY_POOL, NULL, part[0], NULL);
	}
	return n == 0 && !strcmp(again, key);
}
