// SPDX-License-Identifier: MIT
/*
 * llm_json.c - the allocation-free JSON scanner (contract in llm_json.h).
 * Grammar: RFC 8259. Where jansson refuses more (\u0000 without
 * JSON_ALLOW_NUL, lone surrogates, integers beyond json_int_t, real
 * overflow), this refuses too, so it never reads a body jansson would not.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "llm_json.h"

struct sc {
	const unsigned char *s;
	size_t n, i;
	struct lt_jscan *j;
	lt_jscan_cb cb;
	void *ctx;
};

static void ws(struct sc *c)
{
	while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' ||
			       c->s[c->i] == '\r'))
		c->i++;
}

static int hex4(struct sc *c, unsigned *v)
{
	unsigned k, d;
	unsigned char h;

	if (c->n - c->i < 4)
		return -EINVAL;
	for (*v = 0, k = 0; k < 4; k++) {
		h = c->s[c->i + k];
		if (h >= '0' && h <= '9')
			d = h - '0';
		else if ((h | 0x20) >= 'a' && (h | 0x20) <= 'f')
			d = (h | 0x20) - 'a' + 10;
		else
			return -EINVAL;
		*v = *v << 4 | d;
	}
	c->i += 4;
	return 0;
}

/* One UTF-8 sequence at s[i] (RFC 3629), within n; its length or 0. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
	unsigned char b = s[0], lo = 0x80, hi = 0xbf;
	size_t need, k;

	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		need = 2;
	else if (b >= 0xe0 && b <= 0xef) {
		need = 3;
		lo = b == 0xe0 ? 0xa0 : 0x80;
		hi = b == 0xed ? 0x9f : 0xbf;
	} else if (b >= 0xf0 && b <= 0xf4) {
		need = 4;
		lo = b == 0xf0 ? 0x90 : 0x80;
		hi = b == 0xf4 ? 0x8f : 0xbf;
	} else
		return 0;
	if (avail < need || s[1] < lo || s[1] > hi)
		return 0;
	for (k = 2; k < need; k++)
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	return need;
}

/* At the opening quote: validates the string, sets v/vlen/dlen. */
static int string(struct sc *c, const char **v, size_t *vlen, size_t *dlen)
{
	size_t start = ++c->i, d = 0, k;
	unsigned u, u2;
	unsigned char b;

	while (c->i < c->n) {
		b = c->s[c->i];
		if (b == '"') {
			*v = (const char *)c->s + start;
			*vlen = c->i - start;
			*dlen = d;
			c->i++;
			return 0;
		}
		if (b < 0x20)
			return -EINVAL;
		if (b == '\\') {
			if (++c->i >= c->n)
				return -EINVAL;
			b = c->s[c->i++];
			if (b == 'u') {
				if (hex4(c, &u) || !u)
					return -EINVAL;
				if (u >= 0xdc00 && u <= 0xdfff)
					return -EINVAL; /* a lone low surrogate */
				if (u >= 0xd800 && u <= 0xdbff) {
					if (c->n - c->i < 2 || c->s[c->i] != '\\' ||
					    c->s[c->i + 1] != 'u')
						return -EINVAL;
					c->i += 2;
					if (hex4(c, &u2) || u2 < 0xdc00 || u2 > 0xdfff)
						return -EINVAL;
					d += 4;
				} else {
					d += u < 0x80 ? 1 : u < 0x800 ? 2 : 3;
				}
			} else if (strchr("\"\\/bfnrt", b) && b) {
				d++;
			} else {
				return -EINVAL;
			}
			continue;
		}
		k = utf8_len(c->s + c->i, c->n - c->i);
		if (!k)
			return -EINVAL;
		c->i += k;
		d += k;
	}
	return -EINVAL;
}

static int number(struct sc *c, enum lt_jtok *t)
{
	size_t start = c->i, len;
	bool real = false;
	char buf[64], *end;
	double d;

	if (c->i < c->n && c->s[c->i] == '-')
		c->i++;
	if (c->i >= c->n)
		return -EINVAL;
	if (c->s[c->i] == '0') {
		c->i++;
	} else if (c->s[c->i] >= '1' && c->s[c->i] <= '9') {
		while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9')
			c->i++;
	} else {
		return -EINVAL;
	}
	if (c->i < c->n && c->s[c->i] == '.') {
		real = true;
		if (++c->i >= c->n || c->s[c->i] < '0' || c->s[c->i] > '9')
			return -EINVAL;
		while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9')
			c->i++;
	}
	if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
		real = true;
		c->i++;
		if (c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-'))
			c->i++;
		if (c->i >= c->n || c->s[c->i] < '0' || c->s[c->i] > '9')
			return -EINVAL;
		while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9')
			c->i++;
	}
	len = c->i - start;
	if (len >= sizeof(buf))
		return -EINVAL; /* jansson reads it; the caller falls back */
	memcpy(buf, c->s + start, len);
	buf[len] = 0;
	errno = 0;
	if (real) {
		d = strtod(buf, &end);
		if (isinf(d) || errno == ERANGE)
			return -EINVAL;
		*t = LT_J_REAL;
		return 0;
	}
	c->j->ival = strtoll(buf, &end, 10);
	if (errno == ERANGE)
		return -EINVAL;
	*t = LT_J_INT;
	return 0;
}

static int lit(struct sc *c, const char *w, size_t wl)
{
	if (c->n - c->i < wl || memcmp(c->s + c->i, w, wl))
		return -EINVAL;
	c->i += wl;
	return 0;
}

static int value(struct sc *c);

static int container(struct sc *c, bool obj)
{
	struct lt_jscan *j = c->j;
	unsigned d = j->depth;
	size_t count = 0;
	const char *k;
	size_t kl, dl;
	int rc;

	if (d >= LT_JSCAN_DEPTH)
		return -EINVAL;
	c->cb(c->ctx, j, obj ? LT_J_OBJ : LT_J_ARR);
	c->i++;
	ws(c);
	if (c->i < c->n && c->s[c->i] == (obj ? '}' : ']')) {
		c->i++;
		goto end;
	}
	for (;;) {
		if (obj) {
			ws(c);
			if (c->i >= c->n || c->s[c->i] != '"' || string(c, &k, &kl, &dl))
				return -EINVAL;
			ws(c);
			if (c->i >= c->n || c->s[c->i] != ':')
				return -EINVAL;
			c->i++;
			j->path[d].key = k;
			j->path[d].klen = kl;
			j->path[d].esc =
				kl != dl; /* every escape is longer than what it stands for */
		} else {
			j->path[d].key = NULL;
			j->path[d].klen = 0;
			j->path[d].esc = false;
		}
		j->path[d].idx = count++;
		j->depth = d + 1;
		rc = value(c);
		j->depth = d;
		if (rc)
			return rc;
		ws(c);
		if (c->i >= c->n)
			return -EINVAL;
		if (c->s[c->i] == ',') {
			c->i++;
			continue;
		}
		if (c->s[c->i] != (obj ? '}' : ']'))
			return -EINVAL;
		c->i++;
		break;
	}
end:
	j->count = count;
	j->end_obj = obj;
	c->cb(c->ctx, j, LT_J_END);
	return 0;
}

static int value(struct sc *c)
{
	struct lt_jscan *j = c->j;
	enum lt_jtok t;

	ws(c);
	if (c->i >= c->n)
		return -EINVAL;
	switch (c->s[c->i]) {
	case '{':
		return container(c, true);
	case '[':
		return container(c, false);
	case '"':
		if (string(c, &j->v, &j->vlen, &j->dlen))
			return -EINVAL;
		t = LT_J_STR;
		break;
	case 't':
		if (lit(c, "true", 4))
			return -EINVAL;
		j->bval = true;
		t = LT_J_BOOL;
		break;
	case 'f':
		if (lit(c, "false", 5))
			return -EINVAL;
		j->bval = false;
		t = LT_J_BOOL;
		break;
	case 'n':
		if (lit(c, "null", 4))
			return -EINVAL;
		t = LT_J_NULL;
		break;
	default:
		if (number(c, &t))
			return -EINVAL;
	}
	c->cb(c->ctx, j, t);
	return 0;
}

int lt_jscan(const char *s, size_t n, lt_jscan_cb cb, void *ctx)
{
	struct lt_jscan j;
	struct sc c = { .s = (const unsigned char *)s, .n = n, .j = &j, .cb = cb, .ctx = ctx };

	j.depth = 0;
	ws(&c);
	if (c.i >= n || (s[c.i] != '{' && s[c.i] != '['))
		return -EINVAL;
	if (value(&c))
		return -EINVAL;
	ws(&c);
	return c.i == n ? 0 : -EINVAL;
}
