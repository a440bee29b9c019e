// SPDX-License-Identifier: MIT
#include <string.h>
#include "utf8.h"

#define LT_REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* RFC 3629 section 4: the exact well-formed byte sequences. */
size_t lt_utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return c ? 1 : 0;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;

		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;

		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80 ?
			       4 :
			       0;
	}
	return 0;
}

/*
 * The maximal subpart at s (Unicode 3.9, "U+FFFD substitution"): a valid
 * lead byte and the continuation bytes that could still complete it; 0 if
 * s[0] cannot start a sequence. Stops at the NUL.
 */
static size_t lt_utf8_prefix(const unsigned char *s)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf, b;
	size_t need, k;

	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;
		hi = c == 0xed ? 0x9f : 0xbf;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;
	} else {
		return 0;
	}
	for (k = 1; k < need; k++) {
		b = s[k];
		if (k == 1 ? b < lo || b > hi : (b & 0xc0) != 0x80)
			break;
	}
	return k;
}

size_t lt_utf8_sanitize(const char *in, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0, n, p;

	if (!outlen)
		return 0;
	while (*s) {
		n = lt_utf8_seq(s);
		if (n) {
			if (o + n >= outlen)
				break;
			memcpy(out + o, s, n);
			o += n;
			s += n;
			continue;
		}
		p = lt_utf8_prefix(s);
		if (p && !s[p])
			break; /* cut at the end: drop the fragment */
		if (o + 3 >= outlen)
			break;
		memcpy(out + o, LT_REPLACEMENT, 3);
		o += 3;
		s += p ? p : 1; /* one U+FFFD per maximal invalid subsequence */
	}
	out[o] = '\0';
	return o;
}
