/* SPDX-License-Identifier: MIT */
/*
 * http1.h - a strict HTTP/1.1 message-head parser and chunked-body scanner
 * (RFC 9110, RFC 9112) for the gateway's data path. Debian packages no
 * maintained parser (PROBE-NOTES.md §10), so this one is ours, fuzzed
 * (tests/fuzz/fuzz_http1.c) and tested shape by shape (tests/unit/test_http1.c).
 *
 * Parsing is in place: names, values and the target point into the caller's
 * buffer, nothing is copied or allocated. A head is parsed again from the
 * start when more bytes arrive (heads are small, and a restart keeps the
 * parser free of state).
 *
 * Strictness, where RFC 9112 lets a recipient choose (a proxy that is
 * lenient where the next hop is strict, or the other way round, is how
 * requests are smuggled):
 *   - lines end with CRLF; a bare LF or a bare CR anywhere in a head is 400;
 *   - obs-fold (a field line starting with SP or HTAB) is 400 (9112 5.2);
 *   - whitespace between a field name and its colon is 400 (9112 5.1);
 *   - a field name that is not a token, a value with a CTL other than HTAB
 *     (NUL, CR, LF, DEL, ...) is 400;
 *   - two Content-Length fields are 400 even when their values are equal,
 *     and so is a list value "5, 5" (9112 6.3 lets a recipient accept equal
 *     values; we do not, so no hop can disagree on which one counts);
 *   - Content-Length with Transfer-Encoding is 400 (9112 6.3 says the
 *     message "ought to be handled as an error"; we reject it rather than
 *     let Transfer-Encoding win);
 *   - Transfer-Encoding must be exactly "chunked" (case-insensitive) in one
 *     field: a well-formed list of other codings ("gzip, chunked",
 *     "chunked, chunked", "xchunked") is 501 in a request (9112 6.1), and
 *     anything else (a quoted or malformed value, two fields, a TE in
 *     HTTP/1.0, any other coding in a response) is 400;
 *   - a request needs exactly one Host in HTTP/1.1 (9112 3.2);
 *   - the request-target is origin-form ("/...") or "*" for OPTIONS; the
 *     absolute and authority forms are 400 (we are not a forward proxy);
 *   - a head larger than max_head bytes, or with more than
 *     LT_HTTP1_MAX_HEADERS fields, is 431;
 *   - an HTTP version other than 1.0 or 1.1 is 505.
 * Up to LT_HTTP1_MAX_EMPTY_LINES empty lines before a request line are
 * skipped (9112 2.2 asks a server to ignore at least one).
 */
#ifndef LT_HTTP1_H
#define LT_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define LT_HTTP1_MAX_HEADERS 64
#define LT_HTTP1_MAX_EMPTY_LINES 4
#define LT_HTTP1_DEFAULT_MAX_HEAD 16384 /* bytes */

/* Errors, negative; each maps to one status (lt_http1_status). */
enum lt_http1_err {
	LT_HTTP1_PARTIAL = 0, /* not an error: the head is not complete yet */
	LT_HTTP1_E_BARE_LF = -1, /* LF without CR before it */
	LT_HTTP1_E_BARE_CR = -2, /* CR not followed by LF */
	LT_HTTP1_E_METHOD = -3, /* method is not a token */
	LT_HTTP1_E_TARGET = -4, /* request-target form or bytes */
	LT_HTTP1_E_VERSION = -5, /* not HTTP/DIGIT.DIGIT */
	LT_HTTP1_E_VERSION_UNSUPPORTED = -6, /* HTTP/2.0 etc. (505) */
	LT_HTTP1_E_STATUS = -7, /* status-line */
	LT_HTTP1_E_NAME = -8, /* field name is not a token, or empty */
	LT_HTTP1_E_WS_BEFORE_COLON = -9,
	LT_HTTP1_E_NO_COLON = -10,
	LT_HTTP1_E_OBS_FOLD = -11,
	LT_HTTP1_E_VALUE = -12, /* CTL in a field value */
	LT_HTTP1_E_TOO_LARGE = -13, /* head > max_head (431) */
	LT_HTTP1_E_TOO_MANY = -14, /* > LT_HTTP1_MAX_HEADERS fields (431) */
	LT_HTTP1_E_CL_DUP = -15, /* two Content-Length fields, or a list */
	LT_HTTP1_E_CL_VALUE = -16, /* not 1*DIGIT, or above LT_HTTP1_MAX_CL */
	LT_HTTP1_E_CL_AND_TE = -17,
	LT_HTTP1_E_TE_BAD = -18, /* TE not exactly chunked, or in HTTP/1.0 */
	LT_HTTP1_E_TE_UNSUPPORTED = -19, /* a well-formed list of other codings (501) */
	LT_HTTP1_E_HOST = -20, /* no Host, or two, in HTTP/1.1 */
	LT_HTTP1_E_CHUNK_SIZE = -21, /* not hex, empty, or above 2^60 */
	LT_HTTP1_E_CHUNK_EXT = -22, /* CTL in a chunk extension */
	LT_HTTP1_E_CHUNK_CRLF = -23, /* data not followed by CRLF */
	LT_HTTP1_E_TRAILER = -24, /* a bad trailer line, or trailers > limit */
};

/* The largest Content-Length accepted: 2^53 bytes, far above any body limit. */
#define LT_HTTP1_MAX_CL (1ull << 53)

struct lt_http1_header {
	const char *name;
	const char *value; /* OWS trimmed both sides */
	uint32_t name_len;
	uint32_t value_len;
};

/* What the parser knows about framing and the connection, for both kinds. */
#define LT_HTTP1_BODY_NONE 0 /* no body: no CL, no TE (request), or 1xx/204/304 */
#define LT_HTTP1_BODY_LENGTH 1 /* content_length bytes (may be 0) */
#define LT_HTTP1_BODY_CHUNKED 2
#define LT_HTTP1_BODY_CLOSE 3 /* response only: until the connection closes */

struct lt_http1_msg {
	/* request */
	const char *method, *target;
	uint32_t method_len, target_len;
	uint32_t path_len; /* target up to '?' */
	/* response */
	unsigned status;
	const char *reason;
	uint32_t reason_len;
	/* both */
	unsigned minor; /* HTTP/1.minor */
	uint32_t head_len; /* bytes of the head, final CRLF included */
	unsigned nheaders;
	struct lt_http1_header headers[LT_HTTP1_MAX_HEADERS];
	unsigned body; /* LT_HTTP1_BODY_* */
	uint64_t content_length; /* bytes, when body == LT_HTTP1_BODY_LENGTH */
	unsigned keep_alive : 1; /* 1.1 without "close", or 1.0 with "keep-alive" */
	unsigned conn_other : 1; /* Connection names fields beyond close/keep-alive */
	unsigned expect_continue : 1; /* Expect: 100-continue */
	unsigned upgrade : 1; /* an Upgrade field is present */
	int host_idx; /* index of Host in headers, or -1 */
};

/*
 * Whether some byte of w (8 bytes of a field value, any order) is below 0x20
 * or is DEL: a value's bytes are checked 8 at a time while this is 0, and one
 * by one from the word where it is not (HTAB, the legal control byte, is
 * flagged too). Exact for the word as a whole, not for which byte.
 */
static inline int lt_http1_ctl_in_word(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t del = w ^ (0x7f * ones);

	return !!((((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & highs);
}

/*
 * Parses a request head from buf[0..len). Returns the head length (> 0) when
 * complete, LT_HTTP1_PARTIAL (0) when more bytes are needed (and len is
 * still within max_head), or a negative enum lt_http1_err.
 */
int lt_http1_parse_request(const char *buf, size_t len, size_t max_head, struct lt_http1_msg *m);

/*
 * Parses a response head. req_method (the request's, may be NULL) decides
 * that a response to HEAD has no body; 1xx, 204 and 304 have none either.
 * A response with neither CL nor TE is BODY_CLOSE (read until EOF).
 */
int lt_http1_parse_response(const char *buf, size_t len, size_t max_head, const char *req_method,
			    uint32_t req_method_len, struct lt_http1_msg *m);

/* The status a server answers for an error (400, 431, 501, 505). */
unsigned lt_http1_status(int err);
/* A short English phrase for an error, for a problem body or a log line. */
const char *lt_http1_strerror(int err);

/*
 * Hop-by-hop fields (RFC 9110 7.6.1): Connection, Keep-Alive, Proxy-Connection,
 * Proxy-Authenticate, Proxy-Authorization, TE, Trailer, Transfer-Encoding,
 * Upgrade, plus every field the message's Connection fields name. A proxy
 * drops them when it forwards (it frames the body itself).
 */
int lt_http1_is_hop(const struct lt_http1_msg *m, const char *name, size_t name_len);

/* Case-insensitive name comparison against a NUL-terminated lowercase name. */
int lt_http1_name_is(const struct lt_http1_header *h, const char *lower);
/* The first field with that (lowercase) name, or NULL. */
const struct lt_http1_header *lt_http1_find(const struct lt_http1_msg *m, const char *lower);

/*
 * The chunked-body scanner: finds the end of a chunked body, and the data
 * bytes in it, without copying or re-encoding (a proxy forwards the bytes as
 * they came). Its state carries over between calls, so the body can arrive
 * in any pieces.
 */
struct lt_http1_chunked {
	uint64_t remaining; /* data bytes left in the current chunk */
	uint32_t line; /* bytes of the current size/ext/trailer line */
	uint32_t trailer; /* bytes of trailer section so far */
	uint8_t state;
	uint8_t digits;
};

#define LT_HTTP1_CHUNK_MAX_LINE 4096 /* bytes of a chunk-size line or trailer line */
#define LT_HTTP1_CHUNK_MAX_TRAILER 16384 /* bytes of the whole trailer section */

static inline void lt_http1_chunked_init(struct lt_http1_chunked *c)
{
	c->remaining = 0;
	c->line = c->trailer = 0;
	c->state = 0;
	c->digits = 0;
}

/*
 * Scans buf[0..len). *used is set to the bytes consumed. Returns:
 *   1  a data span: *data and *dlen point into buf, and *used ends right after it;
 *   0  buf is consumed and the body goes on;
 *   2  the body ended: *used ends right after its last byte (the final CRLF);
 *  <0  an enum lt_http1_err.
 * A caller that wants only the end loops until 2 and ignores the spans.
 */
int lt_http1_chunked_scan(struct lt_http1_chunked *c, const char *buf, size_t len, size_t *used,
			  const char **data, size_t *dlen);

#endif
