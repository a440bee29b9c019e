// SPDX-License-Identifier: MIT
/* http1.c - strict HTTP/1.1 head parser and chunked scanner (see http1.h for the rules). */
#include <string.h>
#include "http1.h"

/* tchar (RFC 9110 5.6.2) */
static const unsigned char tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
	['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
	['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
	['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
	['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
	['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
	['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
	['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
	['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
	['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static inline int is_vchar_or_obs(unsigned char c)
{
	return (c > 0x20 && c != 0x7f);
}

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? c | 0x20 : c;
}

static int ci_eq(const char *a, size_t alen, const char *lower_b)
{
	size_t blen = strlen(lower_b);

	if (alen != blen)
		return 0;
	for (size_t i = 0; i < alen; i++)
		if (lower((unsigned char)a[i]) != (unsigned char)lower_b[i])
			return 0;
	return 1;
}

int lt_http1_name_is(const struct lt_http1_header *h, const char *lower_name)
{
	return ci_eq(h->name, h->name_len, lower_name);
}

const struct lt_http1_header *lt_http1_find(const struct lt_http1_msg *m, const char *lower_name)
{
	for (unsigned i = 0; i < m->nheaders; i++)
		if (lt_http1_name_is(&m->headers[i], lower_name))
			return &m->headers[i];
	return NULL;
}

/*
 * Finds the end of the line starting at pos: 1 with *eol at its CR, 0 when
 * the line is not complete, or a bare LF/CR error.
 */
static int line_end(const char *buf, size_t len, size_t pos, size_t *eol)
{
	const char *end = buf + len;
	/* two vector scans, not a byte loop: every head line of every request */
	const char *p = memchr(buf + pos, '\r', len - pos);

	if (memchr(buf + pos, '\n', (p ? p : end) - (buf + pos)))
		return LT_HTTP1_E_BARE_LF;
	if (!p || p + 1 == end)
		return 0;
	if (p[1] != '\n')
		return LT_HTTP1_E_BARE_CR;
	*eol = p - buf;
	return 1;
}

/* "HTTP/1.1" at s (8 bytes): 0 with *minor, or an error. */
static int parse_version(const char *s, size_t n, unsigned *minor)
{
	if (n != 8 || memcmp(s, "HTTP/", 5) || s[6] != '.' || s[5] < '0' || s[5] > '9' ||
	    s[7] < '0' || s[7] > '9')
		return LT_HTTP1_E_VERSION;
	if (s[5] != '1' || s[7] > '1')
		return LT_HTTP1_E_VERSION_UNSUPPORTED;
	*minor = s[7] - '0';
	return 0;
}

static int parse_request_line(const char *l, size_t n, struct lt_http1_msg *m)
{
	size_t i = 0, t;
	int err;

	while (i < n && tchar[(unsigned char)l[i]])
		i++;
	if (i == 0 || i >= n || l[i] != ' ')
		return LT_HTTP1_E_METHOD;
	m->method = l;
	m->method_len = i;
	t = ++i;
	while (i < n && l[i] > 0x20 && l[i] < 0x7f)
		i++;
	if (i == t || i >= n || l[i] != ' ')
		return LT_HTTP1_E_TARGET;
	m->target = l + t;
	m->target_len = i - t;
	if (m->target[0] == '*') {
		if (m->target_len != 1 || m->method_len != 7 || memcmp(m->method, "OPTIONS", 7))
			return LT_HTTP1_E_TARGET;
	} else if (m->target[0] != '/') {
		return LT_HTTP1_E_TARGET;
	}
	{
		const char *q = memchr(m->target, '?', m->target_len);
		m->path_len = q ? (uint32_t)(q - m->target) : m->target_len;
	}
	err = parse_version(l + i + 1, n - i - 1, &m->minor);
	return err;
}

static int parse_status_line(const char *l, size_t n, struct lt_http1_msg *m)
{
	int err;

	if (n < 12)
		return n >= 8 && !memcmp(l, "HTTP/", 5) &&
				       parse_version(l, 8, &m->minor) ==
					       LT_HTTP1_E_VERSION_UNSUPPORTED ?
			       LT_HTTP1_E_VERSION_UNSUPPORTED :
			       LT_HTTP1_E_STATUS;
	err = parse_version(l, 8, &m->minor);
	if (err)
		return err;
	if (l[8] != ' ' || l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' || l[11] < '0' ||
	    l[11] > '9')
		return LT_HTTP1_E_STATUS;
	m->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	m->reason = l + n;
	m->reason_len = 0;
	if (n == 12)
		return 0;
	if (l[12] != ' ')
		return LT_HTTP1_E_STATUS;
	for (size_t i = 13; i < n; i++)
		if (!is_vchar_or_obs((unsigned char)l[i]) && l[i] != ' ' && l[i] != '\t')
			return LT_HTTP1_E_STATUS;
	m->reason = l + 13;
	m->reason_len = n - 13;
	return 0;
}

/* One field line l[0..n) (no CRLF) into h. */
static int parse_field(const char *l, size_t n, struct lt_http1_header *h)
{
	size_t i = 0, v, e, k;
	uint64_t w;

	if (n && (l[0] == ' ' || l[0] == '\t'))
		return LT_HTTP1_E_OBS_FOLD;
	while (i < n && tchar[(unsigned char)l[i]])
		i++;
	if (i == n)
		return i ? LT_HTTP1_E_NO_COLON : LT_HTTP1_E_NAME;
	if (l[i] != ':') {
		if (i && (l[i] == ' ' || l[i] == '\t'))
			return LT_HTTP1_E_WS_BEFORE_COLON;
		return LT_HTTP1_E_NAME;
	}
	if (i == 0)
		return LT_HTTP1_E_NAME;
	v = i + 1;
	while (v < n && (l[v] == ' ' || l[v] == '\t'))
		v++;
	e = n;
	while (e > v && (l[e - 1] == ' ' || l[e - 1] == '\t'))
		e--;
	/* 8 bytes at a time while no byte is a control byte (keys, dates, ids) */
	for (k = v; k + 8 <= e; k += 8) {
		memcpy(&w, l + k, 8);
		if (lt_http1_ctl_in_word(w))
			break;
	}
	for (; k < e; k++) {
		unsigned char c = l[k];
		if (!is_vchar_or_obs(c) && c != ' ' && c != '\t')
			return LT_HTTP1_E_VALUE;
	}
	h->name = l;
	h->name_len = i;
	h->value = l + v;
	h->value_len = e - v;
	return 0;
}

/* A comma-separated list of tokens (each with optional ;params), for a TE we do not accept. */
static int is_token_list(const char *s, size_t n)
{
	size_t i = 0;
	int need = 1;

	while (i < n) {
		if (s[i] == ' ' || s[i] == '\t') {
			i++;
		} else if (s[i] == ',') {
			if (need)
				return 0;
			need = 1;
			i++;
		} else if (tchar[(unsigned char)s[i]] && need) {
			while (i < n && (tchar[(unsigned char)s[i]] || s[i] == ';' || s[i] == '=' ||
					 s[i] == ' ' || s[i] == '\t'))
				i++;
			need = 0;
		} else {
			return 0;
		}
	}
	return !need;
}

/* Connection tokens: close, keep-alive, anything else. */
static void scan_connection(const char *s, size_t n, int *close, int *ka, int *other)
{
	size_t i = 0;

	while (i < n) {
		size_t b;
		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
			i++;
		b = i;
		while (i < n && s[i] != ',' && s[i] != ' ' && s[i] != '\t')
			i++;
		if (i == b)
			break;
		if (ci_eq(s + b, i - b, "close"))
			*close = 1;
		else if (ci_eq(s + b, i - b, "keep-alive"))
			*ka = 1;
		else
			*other = 1;
	}
}

enum { KIND_REQUEST, KIND_RESPONSE };

static int parse_head(const char *buf, size_t len, size_t max_head, int kind,
		      const char *req_method, uint32_t req_method_len, struct lt_http1_msg *m)
{
	size_t pos = 0, eol;
	int r, empty = 0, ncl = 0, nte = 0, nhost = 0, chunked = 0;
	int close = 0, ka = 0, other = 0;

	m->method = m->target = m->reason = NULL;
	m->method_len = m->target_len = m->path_len = m->reason_len = 0;
	m->status = 0;
	m->nheaders = 0;
	m->body = LT_HTTP1_BODY_NONE;
	m->content_length = 0;
	m->keep_alive = m->conn_other = m->expect_continue = m->upgrade = 0;
	m->host_idx = -1;

	if (kind == KIND_REQUEST) {
		while (empty < LT_HTTP1_MAX_EMPTY_LINES && pos < len &&
		       (buf[pos] == '\r' || buf[pos] == '\n')) {
			if (buf[pos] == '\n')
				return LT_HTTP1_E_BARE_LF;
			if (pos + 1 >= len)
				goto partial;
			if (buf[pos + 1] != '\n')
				return LT_HTTP1_E_BARE_CR;
			pos += 2;
			empty++;
		}
	}
	r = line_end(buf, len, pos, &eol);
	if (r <= 0)
		goto out_partial;
	r = kind == KIND_REQUEST ? parse_request_line(buf + pos, eol - pos, m) :
				   parse_status_line(buf + pos, eol - pos, m);
	if (r)
		return r;
	pos = eol + 2;
	for (;;) {
		struct lt_http1_header *h;
		const char *v;
		uint32_t vl;

		r = line_end(buf, len, pos, &eol);
		if (r <= 0)
			goto out_partial;
		if (eol == pos) {
			pos += 2;
			break;
		}
		if (eol + 2 > max_head)
			return LT_HTTP1_E_TOO_LARGE;
		if (m->nheaders >= LT_HTTP1_MAX_HEADERS)
			return LT_HTTP1_E_TOO_MANY;
		h = &m->headers[m->nheaders];
		r = parse_field(buf + pos, eol - pos, h);
		if (r)
			return r;
		pos = eol + 2;
		v = h->value;
		vl = h->value_len;
		switch (h->name_len) {
		case 4:
			if (lt_http1_name_is(h, "host")) {
				if (++nhost > 1)
					return LT_HTTP1_E_HOST;
				m->host_idx = m->nheaders;
			}
			break;
		case 6:
			if (lt_http1_name_is(h, "expect") && ci_eq(v, vl, "100-continue"))
				m->expect_continue = 1;
			break;
		case 7:
			if (lt_http1_name_is(h, "upgrade"))
				m->upgrade = 1;
			break;
		case 10:
			if (lt_http1_name_is(h, "connection"))
				scan_connection(v, vl, &close, &ka, &other);
			break;
		case 14:
			if (lt_http1_name_is(h, "content-length")) {
				uint64_t cl = 0;
				if (++ncl > 1 || memchr(v, ',', vl))
					return LT_HTTP1_E_CL_DUP;
				if (vl == 0 || vl > 16)
					return LT_HTTP1_E_CL_VALUE;
				for (uint32_t k = 0; k < vl; k++) {
					if (v[k] < '0' || v[k] > '9')
						return LT_HTTP1_E_CL_VALUE;
					cl = cl * 10 + (v[k] - '0');
				}
				if (cl > LT_HTTP1_MAX_CL)
					return LT_HTTP1_E_CL_VALUE;
				m->content_length = cl;
			}
			break;
		case 17:
			if (lt_http1_name_is(h, "transfer-encoding")) {
				if (++nte > 1)
					return LT_HTTP1_E_TE_BAD;
				if (ci_eq(v, vl, "chunked"))
					chunked = 1;
				else if (kind == KIND_REQUEST && is_token_list(v, vl))
					return LT_HTTP1_E_TE_UNSUPPORTED;
				else
					return LT_HTTP1_E_TE_BAD;
			}
			break;
		}
		m->nheaders++;
	}
	if (pos > max_head)
		return LT_HTTP1_E_TOO_LARGE;
	m->head_len = pos;
	if (ncl && nte)
		return LT_HTTP1_E_CL_AND_TE;
	if (nte && m->minor == 0)
		return LT_HTTP1_E_TE_BAD;
	if (kind == KIND_REQUEST && m->minor == 1 && nhost != 1)
		return LT_HTTP1_E_HOST;
	m->keep_alive = m->minor == 1 ? !close : (ka && !close);
	m->conn_other = other;
	if (chunked)
		m->body = LT_HTTP1_BODY_CHUNKED;
	else if (ncl)
		m->body = LT_HTTP1_BODY_LENGTH;
	if (kind == KIND_RESPONSE) {
		if (m->status < 200 || m->status == 204 || m->status == 304 ||
		    (req_method && ci_eq(req_method, req_method_len, "head"))) {
			m->body = LT_HTTP1_BODY_NONE;
			m->content_length = 0;
		} else if (!chunked && !ncl) {
			m->body = LT_HTTP1_BODY_CLOSE;
			m->keep_alive = 0;
		}
	}
	return (int)pos;

out_partial:
	if (r < 0)
		return r;
partial:
	if (len >= max_head)
		return LT_HTTP1_E_TOO_LARGE;
	return LT_HTTP1_PARTIAL;
}

int lt_http1_parse_request(const char *buf, size_t len, size_t max_head, struct lt_http1_msg *m)
{
	return parse_head(buf, len, max_head, KIND_REQUEST, NULL, 0, m);
}

int lt_http1_parse_response(const char *buf, size_t len, size_t max_head, const char *req_method,
			    uint32_t req_method_len, struct lt_http1_msg *m)
{
	return parse_head(buf, len, max_head, KIND_RESPONSE, req_method, req_method_len, m);
}

unsigned lt_http1_status(int err)
{
	switch (err) {
	case LT_HTTP1_E_TOO_LARGE:
	case LT_HTTP1_E_TOO_MANY:
		return 431;
	case LT_HTTP1_E_TE_UNSUPPORTED:
		return 501;
	case LT_HTTP1_E_VERSION_UNSUPPORTED:
		return 505;
	default:
		return 400;
	}
}

const char *lt_http1_strerror(int err)
{
	switch (err) {
	case LT_HTTP1_PARTIAL:
		return "incomplete head";
	case LT_HTTP1_E_BARE_LF:
		return "bare LF (lines end with CRLF)";
	case LT_HTTP1_E_BARE_CR:
		return "bare CR";
	case LT_HTTP1_E_METHOD:
		return "invalid method";
	case LT_HTTP1_E_TARGET:
		return "invalid request-target (origin-form only)";
	case LT_HTTP1_E_VERSION:
		return "invalid HTTP version";
	case LT_HTTP1_E_VERSION_UNSUPPORTED:
		return "HTTP version not supported";
	case LT_HTTP1_E_STATUS:
		return "invalid status line";
	case LT_HTTP1_E_NAME:
		return "invalid field name";
	case LT_HTTP1_E_WS_BEFORE_COLON:
		return "whitespace between field name and colon";
	case LT_HTTP1_E_NO_COLON:
		return "field line without colon";
	case LT_HTTP1_E_OBS_FOLD:
		return "obsolete line folding";
	case LT_HTTP1_E_VALUE:
		return "control character in a field value";
	case LT_HTTP1_E_TOO_LARGE:
		return "header section too large";
	case LT_HTTP1_E_TOO_MANY:
		return "too many header fields";
	case LT_HTTP1_E_CL_DUP:
		return "more than one Content-Length";
	case LT_HTTP1_E_CL_VALUE:
		return "invalid Content-Length";
	case LT_HTTP1_E_CL_AND_TE:
		return "Content-Length with Transfer-Encoding";
	case LT_HTTP1_E_TE_BAD:
		return "Transfer-Encoding must be exactly chunked";
	case LT_HTTP1_E_TE_UNSUPPORTED:
		return "transfer coding not implemented (chunked only)";
	case LT_HTTP1_E_HOST:
		return "exactly one Host field is required";
	case LT_HTTP1_E_CHUNK_SIZE:
		return "invalid chunk size";
	case LT_HTTP1_E_CHUNK_EXT:
		return "invalid chunk extension";
	case LT_HTTP1_E_CHUNK_CRLF:
		return "chunk data not followed by CRLF";
	case LT_HTTP1_E_TRAILER:
		return "invalid trailer section";
	}
	return "malformed message";
}

/* A token in a comma-separated Connection value? */
static int list_has(const char *s, size_t n, const char *name, size_t name_len)
{
	size_t i = 0;

	while (i < n) {
		size_t b;
		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
			i++;
		b = i;
		while (i < n && s[i] != ',' && s[i] != ' ' && s[i] != '\t')
			i++;
		if (i - b == name_len) {
			size_t k = 0;
			while (k < name_len && lower(s[b + k]) == lower(name[k]))
				k++;
			if (k == name_len)
				return 1;
		}
	}
	return 0;
}

int lt_http1_is_hop(const struct lt_http1_msg *m, const char *name, size_t n)
{
	static const char *const hop[] = { "connection",
					   "keep-alive",
					   "proxy-connection",
					   "proxy-authenticate",
					   "proxy-authorization",
					   "te",
					   "trailer",
					   "transfer-encoding",
					   "upgrade" };

	/* by length first: every response field of every request comes through here */
	static const unsigned char hop_len[] = { 10, 10, 16, 18, 19, 2, 7, 17, 7 };

	_Static_assert(sizeof(hop_len) == sizeof(hop) / sizeof(hop[0]), "hop_len");
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (n == hop_len[i] && ci_eq(name, n, hop[i]))
			return 1;
	if (!m || !m->conn_other)
		return 0;
	for (unsigned i = 0; i < m->nheaders; i++) {
		const struct lt_http1_header *h = &m->headers[i];
		if (h->name_len == 10 && lt_http1_name_is(h, "connection") &&
		    list_has(h->value, h->value_len, name, n))
			return 1;
	}
	return 0;
}

/* --- chunked scanner -------------------------------------------------------- */

enum {
	C_SIZE = 0, /* hex digits */
	C_SIZE_WS, /* BWS after the size, before ';' or CR */
	C_EXT, /* after ';' up to CR */
	C_SIZE_LF, /* CR seen at the end of the size line */
	C_DATA,
	C_DATA_CR,
	C_DATA_LF,
	C_TR_START, /* start of a trailer line, or the final CRLF */
	C_TR_NAME,
	C_TR_VALUE,
	C_TR_LF,
	C_END_LF,
	C_DONE,
};

static inline int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int lt_http1_chunked_scan(struct lt_http1_chunked *c, const char *buf, size_t len, size_t *used,
			  const char **data, size_t *dlen)
{
	size_t i = 0;

	while (i < len) {
		unsigned char ch = buf[i];

		switch (c->state) {
		case C_SIZE: {
			int h = hexval(ch);
			if (h >= 0) {
				/* 15 hex digits: sizes stay below 2^60, no overflow. */
				if (++c->digits > 15)
					goto bad_size;
				c->remaining = (c->remaining << 4) | h;
				i++;
				break;
			}
			if (!c->digits)
				goto bad_size;
			if (ch == ' ' || ch == '\t')
				c->state = C_SIZE_WS;
			else if (ch == ';')
				c->state = C_EXT;
			else if (ch == '\r')
				c->state = C_SIZE_LF;
			else
				goto bad_size;
			c->line = c->digits;
			i++;
			break;
		}
		case C_SIZE_WS:
			if (ch == ';')
				c->state = C_EXT;
			else if (ch == '\r')
				c->state = C_SIZE_LF;
			else if (ch != ' ' && ch != '\t')
				goto bad_ext;
			if (++c->line > LT_HTTP1_CHUNK_MAX_LINE)
				goto bad_ext;
			i++;
			break;
		case C_EXT:
			if (ch == '\r')
				c->state = C_SIZE_LF;
			else if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
				goto bad_ext;
			if (++c->line > LT_HTTP1_CHUNK_MAX_LINE)
				goto bad_ext;
			i++;
			break;
		case C_SIZE_LF:
			if (ch != '\n')
				goto bad_ext;
			i++;
			c->digits = 0;
			c->line = 0;
			c->state = c->remaining ? C_DATA : C_TR_START;
			break;
		case C_DATA: {
			size_t n = len - i;
			if (n > c->remaining)
				n = c->remaining;
			*data = buf + i;
			*dlen = n;
			c->remaining -= n;
			if (!c->remaining)
				c->state = C_DATA_CR;
			*used = i + n;
			return 1;
		}
		case C_DATA_CR:
			if (ch != '\r')
				goto bad_crlf;
			c->state = C_DATA_LF;
			i++;
			break;
		case C_DATA_LF:
			if (ch != '\n')
				goto bad_crlf;
			c->state = C_SIZE;
			i++;
			break;
		case C_TR_START:
			if (ch == '\r') {
				c->state = C_END_LF;
			} else if (tchar[ch]) {
				c->state = C_TR_NAME;
				c->line = 1;
			} else {
				goto bad_trailer;
			}
			if (++c->trailer > LT_HTTP1_CHUNK_MAX_TRAILER)
				goto bad_trailer;
			i++;
			break;
		case C_TR_NAME:
			if (ch == ':')
				c->state = C_TR_VALUE;
			else if (!tchar[ch])
				goto bad_trailer;
			if (++c->trailer > LT_HTTP1_CHUNK_MAX_TRAILER)
				goto bad_trailer;
			i++;
			break;
		case C_TR_VALUE:
			if (ch == '\r')
				c->state = C_TR_LF;
			else if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
				goto bad_trailer;
			if (++c->trailer > LT_HTTP1_CHUNK_MAX_TRAILER)
				goto bad_trailer;
			i++;
			break;
		case C_TR_LF:
			if (ch != '\n')
				goto bad_trailer;
			c->state = C_TR_START;
			i++;
			break;
		case C_END_LF:
			if (ch != '\n')
				goto bad_trailer;
			c->state = C_DONE;
			*used = i + 1;
			return 2;
		case C_DONE:
			*used = i;
			return 2;
		}
	}
	*used = i;
	return c->state == C_DONE ? 2 : 0;

bad_size:
	*used = i;
	return LT_HTTP1_E_CHUNK_SIZE;
bad_ext:
	*used = i;
	return LT_HTTP1_E_CHUNK_EXT;
bad_crlf:
	*used = i;
	return LT_HTTP1_E_CHUNK_CRLF;
bad_trailer:
	*used = i;
	return LT_HTTP1_E_TRAILER;
}
