// SPDX-License-Identifier: MIT
/*
 * fuzz_http1.c - libFuzzer: the strict HTTP/1.1 parser (lib/http1.c). The
 * first byte picks request head, response head or chunked body; the rest is
 * the message. Checks, beyond "no crash, no UB": a complete head stays inside
 * the input and every field points into it; a head that parses gives the
 * same answer when more bytes follow it; the chunked scanner gives the same
 * result, end and data fed whole or one byte at a time.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lt_http1_msg m1, m2;

static void check_head(const char *buf, size_t len, int r, const struct lt_http1_msg *m)
{
	if (r <= 0)
		return;
	if ((size_t)r > len || m->head_len != (uint32_t)r)
		abort();
	for (unsigned i = 0; i < m->nheaders; i++) {
		const struct lt_http1_header *h = &m->headers[i];
		if (h->name < buf || h->name + h->name_len > buf + r || h->value < buf ||
		    h->value + h->value_len > buf + r || !h->name_len)
			abort();
	}
	if (m->body == LT_HTTP1_BODY_LENGTH && m->content_length > LT_HTTP1_MAX_CL)
		abort();
}

static int scan_all(const char *s, size_t len, size_t step, size_t *end, uint64_t *dsum, size_t *dn)
{
	struct lt_http1_chunked c;
	size_t pos = 0;
	int r = 0;

	lt_http1_chunked_init(&c);
	*dsum = 0;
	*dn = 0;
	while (pos < len) {
		size_t n = len - pos < step ? len - pos : step, off = 0;
		while (off < n) {
			const char *d;
			size_t dl, used;
			r = lt_http1_chunked_scan(&c, s + pos + off, n - off, &used, &d, &dl);
			if (used > n - off)
				abort();
			off += used;
			if (r < 0)
				return r;
			if (r == 1) {
				if (d < s + pos || d + dl > s + pos + n || !dl)
					abort();
				for (size_t k = 0; k < dl; k++)
					*dsum = *dsum * 31 + (unsigned char)d[k];
				*dn += dl;
			} else if (r == 2) {
				*end = pos + off;
				return 2;
			}
		}
		pos += n;
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf;
	size_t len;
	int r, r2;

	if (size < 1 || size > 65536)
		return 0;
	buf = (const char *)data + 1;
	len = size - 1;
	switch (data[0] % 3) {
	case 0:
		r = lt_http1_parse_request(buf, len, 4096, &m1);
		check_head(buf, len, r, &m1);
		if (r > 0 && (size_t)r < len) {
			/* the same head with fewer trailing bytes parses the same */
			r2 = lt_http1_parse_request(buf, r, 4096, &m2);
			if (r2 != r || m2.nheaders != m1.nheaders || m2.body != m1.body ||
			    m2.content_length != m1.content_length)
				abort();
		}
		if (r == 0 && len < 4096 && lt_http1_status(r) != 400)
			abort();
		break;
	case 1:
		r = lt_http1_parse_response(buf, len, 4096, "GET", 3, &m1);
		check_head(buf, len, r, &m1);
		break;
	case 2: {
		size_t e1 = 0, e2 = 0, n1, n2;
		uint64_t s1, s2;
		r = scan_all(buf, len, len ? len : 1, &e1, &s1, &n1);
		r2 = scan_all(buf, len, 1, &e2, &s2, &n2);
		if (r != r2 || (r == 2 && e1 != e2) || (r >= 0 && (s1 != s2 || n1 != n2)))
			abort();
		break;
	}
	}
	return 0;
}
