/* SPDX-License-Identifier: MIT */
/*
 * utf8.h - text that goes back to a client is valid UTF-8 (liblt). JSON
 * (RFC 8259) is UTF-8, and jansson refuses anything else: a problem detail
 * that quotes client bytes, or that a "%.Ns" cut inside a character, would
 * otherwise turn a 4xx into a 500.
 */
#ifndef LT_UTF8_H
#define LT_UTF8_H

#include <stddef.h>

/*
 * Copies in to out (outlen > 0, always NUL-terminated) as valid UTF-8
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
 * Each maximal invalid subsequence becomes U+FFFD; a sequence left
 * incomplete at the very end of in (a cut, not a lie) is dropped. out is
 * never cut inside a character. Returns the bytes written, without the NUL.
 */
size_t lt_utf8_sanitize(const char *in, char *out, size_t outlen);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if none starts there. */
size_t lt_utf8_seq(const unsigned char *s);

#endif
