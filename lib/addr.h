/* SPDX-License-Identifier: MIT */
/* addr.h - IPv4/IPv6 prefixes in the 16-byte v4-mapped form of lt_abi.h. */
#ifndef LT_ADDR_H
#define LT_ADDR_H

#include <stddef.h>
#include "lt_abi.h"

/*
 * "10.0.0.0/8", "192.0.2.7" (= /32), "2001:db8::/32", "::1" (= /128).
 * Host bits must be zero. Returns 0 or -EINVAL with a message in err.
 */
int lt_prefix_parse(const char *s, struct lt_lpm_key *key, char *err, size_t errlen);

/* Writes the prefix back in the operator's notation ("10.0.0.0/8"). */
void lt_prefix_format(const struct lt_lpm_key *key, char *buf, size_t len);

/* Same for a bare 16-byte address. */
void lt_addr_format(const __u8 addr[16], char *buf, size_t len);

int lt_addr_is_v4(const __u8 addr[16]);

#endif
