// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "addr.h"

static const __u8 lt_v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int lt_addr_is_v4(const __u8 addr[16])
{
	return !memcmp(addr, lt_v4_mapped, sizeof(lt_v4_mapped));
}

int lt_prefix_parse(const char *s, struct lt_lpm_key *key, char *err, size_t errlen)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	struct lt_lpm_key masked;
	unsigned long len;
	int v4;

	memset(key, 0, sizeof(*key));
	if (!s || strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "not an IP prefix");
		return -EINVAL;
	}
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, key->addr + 12) == 1) {
		memcpy(key->addr, lt_v4_mapped, sizeof(lt_v4_mapped));
		v4 = 1;
	} else if (inet_pton(AF_INET6, buf, key->addr) == 1) {
		v4 = 0;
	} else {
		snprintf(err, errlen, "'%s' is not an IPv4 or IPv6 address", buf);
		return -EINVAL;
	}
	len = v4 ? 32 : 128;
	if (slash) {
		errno = 0;
		len = strtoul(slash, &end, 10);
		if (!*slash || *end || errno || len > (v4 ? 32UL : 128UL)) {
			snprintf(err, errlen, "prefix length '/%s' is not 0..%d", slash,
				 v4 ? 32 : 128);
			return -EINVAL;
		}
	}
	key->prefixlen = (__u32)len + (v4 ? 96 : 0);
	masked = *key;
	lt_addr_mask(masked.addr, masked.prefixlen);
	if (memcmp(masked.addr, key->addr, 16)) {
		snprintf(err, errlen, "'%s' has host bits set beyond /%lu", s, len);
		return -EINVAL;
	}
	return 0;
}

void lt_addr_format(const __u8 addr[16], char *buf, size_t len)
{
	if (lt_addr_is_v4(addr))
		inet_ntop(AF_INET, addr + 12, buf, len);
	else
		inet_ntop(AF_INET6, addr, buf, len);
}

void lt_prefix_format(const struct lt_lpm_key *key, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	int v4 = lt_addr_is_v4(key->addr) && key->prefixlen >= 96;

	lt_addr_format(key->addr, a, sizeof(a));
	if (!v4 && lt_addr_is_v4(key->addr))
		inet_ntop(AF_INET6, key->addr, a, sizeof(a));
	snprintf(buf, len, "%s/%u", a, v4 ? key->prefixlen - 96 : key->prefixlen);
}
