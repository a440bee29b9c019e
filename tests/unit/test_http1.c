// SPDX-License-Identifier: MIT
/*
 * test_http1.c - the strict HTTP/1.1 parser (lib/http1.c): valid heads parse
 * in place, every smuggling and malformation shape is refused with its own
 * error and status, and the chunked scanner finds the end of a body in any
 * split without re-encoding it.
 */
#include "lt_test.h"
#include "http1.h"

static struct lt_http1_msg m;

static int req(const char *s)
{
	return lt_http1_parse_request(s, strlen(s), LT_HTTP1_DEFAULT_MAX_HEAD, &m);
}

static int resp(const char *s, const char *method)
{
	return lt_http1_parse_response(s, strlen(s), LT_HTTP1_DEFAULT_MAX_HEAD, method,
				       method ? strlen(method) : 0, &m);
}

static void valid_request_parses_in_place(void)
{
	const char *s = "POST /v1/chat?x=1 HTTP/1.1\r\nHost: a\r\nX-API-Key:  k1 \r\n"
			"Content-Length: 5\r\n\r\nhello";
	CHECK_EQ(req(s), strlen(s) - 5);
	CHECK(m.method == s && m.method_len == 4);
	CHECK(m.target == s + 5 && m.target_len == 12 && m.path_len == 8);
	CHECK_EQ(m.minor, 1);
	CHECK_EQ(m.nheaders, 3);
	CHECK(m.headers[1].value_len == 2 && !memcmp(m.headers[1].value, "k1", 2));
	CHECK_EQ(m.body, LT_HTTP1_BODY_LENGTH);
	CHECK_EQ(m.content_length, 5);
	CHECK(m.keep_alive);
	CHECK_EQ(m.host_idx, 0);
}

static void incomplete_head_is_partial(void)
{
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\r\n"), LT_HTTP1_PARTIAL);
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\r\n\r"), LT_HTTP1_PARTIAL);
	CHECK_EQ(req("GET / HTTP/1.1\r"), LT_HTTP1_PARTIAL);
	CHECK_EQ(req(""), LT_HTTP1_PARTIAL);
}

static void leading_empty_line_is_skipped(void)
{
	CHECK(req("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	CHECK(m.method_len == 3);
}

static void two_content_lengths_rejected_even_equal(void)
{
	CHECK_EQ(
		req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
		LT_HTTP1_E_CL_DUP);
	CHECK_EQ(
		req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n"),
		LT_HTTP1_E_CL_DUP);
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"),
		 LT_HTTP1_E_CL_DUP);
	CHECK_EQ(lt_http1_status(LT_HTTP1_E_CL_DUP), 400);
}

static void content_length_with_transfer_encoding_rejected(void)
{
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
		     "Transfer-Encoding: chunked\r\n\r\n"),
		 LT_HTTP1_E_CL_AND_TE);
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		     "Content-Length: 5\r\n\r\n"),
		 LT_HTTP1_E_CL_AND_TE);
}

static void content_length_not_digits_rejected(void)
{
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"),
		 LT_HTTP1_E_CL_VALUE);
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n"),
		 LT_HTTP1_E_CL_VALUE);
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n"),
		 LT_HTTP1_E_CL_VALUE);
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"),
		 LT_HTTP1_E_CL_VALUE);
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n"),
		 LT_HTTP1_E_CL_VALUE);
}

static void transfer_encoding_other_than_chunked_rejected(void)
{
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
		 LT_HTTP1_E_TE_UNSUPPORTED);
	CHECK_EQ(lt_http1_status(LT_HTTP1_E_TE_UNSUPPORTED), 501);
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
		 LT_HTTP1_E_TE_UNSUPPORTED);
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"),
		 LT_HTTP1_E_TE_UNSUPPORTED);
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"),
		 LT_HTTP1_E_TE_BAD);
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		     "Transfer-Encoding: chunked\r\n\r\n"),
		 LT_HTTP1_E_TE_BAD);
	CHECK_EQ(req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), LT_HTTP1_E_TE_BAD);
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n") > 0);
	CHECK_EQ(m.body, LT_HTTP1_BODY_CHUNKED);
}

static void obs_fold_rejected(void)
{
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  continued\r\n\r\n"),
		 LT_HTTP1_E_OBS_FOLD);
	CHECK_EQ(req("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), LT_HTTP1_E_OBS_FOLD);
}

static void bare_lf_rejected(void)
{
	CHECK_EQ(req("GET / HTTP/1.1\nHost: a\r\n\r\n"), LT_HTTP1_E_BARE_LF);
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\n\r\n"), LT_HTTP1_E_BARE_LF);
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\r\n\n"), LT_HTTP1_E_BARE_LF);
	CHECK_EQ(req("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), LT_HTTP1_E_BARE_LF);
}

static void bare_cr_rejected(void)
{
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), LT_HTTP1_E_BARE_CR);
	CHECK_EQ(req("GET / HTTP/1.1\rHost: a\r\n\r\n"), LT_HTTP1_E_BARE_CR);
}

static void whitespace_before_colon_rejected(void)
{
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), LT_HTTP1_E_WS_BEFORE_COLON);
	CHECK_EQ(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n"),
		 LT_HTTP1_E_WS_BEFORE_COLON);
}

static void invalid_token_chars_rejected(void)
{
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n"), LT_HTTP1_E_NAME);
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n"), LT_HTTP1_E_NAME);
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), LT_HTTP1_E_NO_COLON);
	CHECK_EQ(req("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), LT_HTTP1_E_METHOD);
	CHECK_EQ(req("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), LT_HTTP1_E_TARGET);
	CHECK_EQ(req("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), LT_HTTP1_E_VERSION);
	CHECK_EQ(req("GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n"), LT_HTTP1_E_TARGET);
	CHECK_EQ(req("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), LT_HTTP1_E_TARGET);
	CHECK(req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n"), LT_HTTP1_E_VALUE);
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n"), LT_HTTP1_E_VALUE);
	{
		static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0z\r\n\r\n";
		CHECK_EQ(lt_http1_parse_request(nul, sizeof(nul) - 1, 16384, &m), LT_HTTP1_E_VALUE);
	}
}

static void version_checked(void)
{
	CHECK_EQ(req("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), LT_HTTP1_E_VERSION_UNSUPPORTED);
	CHECK_EQ(lt_http1_status(LT_HTTP1_E_VERSION_UNSUPPORTED), 505);
	CHECK_EQ(req("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), LT_HTTP1_E_VERSION);
	CHECK_EQ(req("GET / http/1.1\r\nHost: a\r\n\r\n"), LT_HTTP1_E_VERSION);
	CHECK(req("GET / HTTP/1.0\r\n\r\n") > 0);
	CHECK(!m.keep_alive);
	CHECK(req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") > 0);
	CHECK(m.keep_alive);
}

static void host_required_once(void)
{
	CHECK_EQ(req("GET / HTTP/1.1\r\n\r\n"), LT_HTTP1_E_HOST);
	CHECK_EQ(req("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), LT_HTTP1_E_HOST);
}

static void huge_header_is_431(void)
{
	char big[20000];
	int n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	memset(big + n, 'a', sizeof(big) - n - 1);
	big[sizeof(big) - 1] = 0;
	/* incomplete and already beyond the limit: no need to wait for the rest */
	CHECK_EQ(req(big), LT_HTTP1_E_TOO_LARGE);
	CHECK_EQ(lt_http1_status(LT_HTTP1_E_TOO_LARGE), 431);
	memcpy(big + sizeof(big) - 5, "\r\n\r\n", 5);
	CHECK_EQ(req(big), LT_HTTP1_E_TOO_LARGE);
}

static void too_many_headers_is_431(void)
{
	char buf[8192];
	int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < LT_HTTP1_MAX_HEADERS; i++)
		n += snprintf(buf + n, sizeof(buf) - n, "X-%d: v\r\n", i);
	snprintf(buf + n, sizeof(buf) - n, "\r\n");
	CHECK_EQ(req(buf), LT_HTTP1_E_TOO_MANY);
	CHECK_EQ(lt_http1_status(LT_HTTP1_E_TOO_MANY), 431);
}

static void connection_tokens_are_hop_by_hop(void)
{
	CHECK(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n"
		  "Keep-Alive: 5\r\nTE: trailers\r\nX-Kept: 2\r\n\r\n") > 0);
	CHECK(!m.keep_alive);
	CHECK(m.conn_other);
	CHECK(lt_http1_is_hop(&m, "x-secret", 8));
	CHECK(lt_http1_is_hop(&m, "Keep-Alive", 10));
	CHECK(lt_http1_is_hop(&m, "TE", 2));
	CHECK(lt_http1_is_hop(&m, "Proxy-Authorization", 19));
	CHECK(lt_http1_is_hop(&m, "Upgrade", 7));
	CHECK(lt_http1_is_hop(&m, "Trailer", 7));
	CHECK(!lt_http1_is_hop(&m, "X-Kept", 6));
	CHECK(!lt_http1_is_hop(&m, "X-Secre", 7));
}

static void response_framing(void)
{
	CHECK(resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", NULL) > 0);
	CHECK(m.status == 200 && m.body == LT_HTTP1_BODY_LENGTH && m.content_length == 3);
	CHECK(m.keep_alive);
	CHECK(resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "HEAD") > 0);
	CHECK_EQ(m.body, LT_HTTP1_BODY_NONE);
	CHECK(resp("HTTP/1.1 204 No Content\r\n\r\n", "GET") > 0);
	CHECK_EQ(m.body, LT_HTTP1_BODY_NONE);
	CHECK(resp("HTTP/1.1 200 OK\r\n\r\n", "GET") > 0);
	CHECK(m.body == LT_HTTP1_BODY_CLOSE && !m.keep_alive);
	CHECK(resp("HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\n\r\n", "GET") > 0);
	CHECK_EQ(m.body, LT_HTTP1_BODY_CHUNKED);
	CHECK_EQ(resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", NULL),
		 LT_HTTP1_E_CL_DUP);
	CHECK_EQ(resp("HTTP/1.1 20 OK\r\n\r\n", NULL), LT_HTTP1_E_STATUS);
	CHECK_EQ(resp("HTTP/1.1 200 OK\nX: 1\r\n\r\n", NULL), LT_HTTP1_E_BARE_LF);
	CHECK_EQ(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", NULL),
		 LT_HTTP1_E_TE_BAD);
}

/* Scans s in pieces of step bytes; returns the scanner's last result, data concatenated. */
static int scan(const char *s, size_t len, size_t step, char *out, size_t *outlen, size_t *end)
{
	struct lt_http1_chunked c;
	size_t pos = 0;
	int r = 0;

	lt_http1_chunked_init(&c);
	*outlen = 0;
	while (pos < len) {
		size_t n = len - pos < step ? len - pos : step, off = 0;
		while (off < n) {
			const char *d;
			size_t dl, used;
			r = lt_http1_chunked_scan(&c, s + pos + off, n - off, &used, &d, &dl);
			if (r < 0)
				return r;
			off += used;
			if (r == 1) {
				memcpy(out + *outlen, d, dl);
				*outlen += dl;
			} else if (r == 2) {
				*end = pos + off;
				return 2;
			}
		}
		pos += n;
	}
	return r;
}

static void chunked_end_found_in_any_split(void)
{
	static const char body[] = "5\r\nhello\r\n1a;ext=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
				   "0\r\nX-Trailer: t\r\n\r\nGET / HTTP/1.1\r\n";
	size_t want = strlen(body) - strlen("GET / HTTP/1.1\r\n");
	char out[256];
	size_t outlen, end;

	for (size_t step = 1; step <= sizeof(body); step++) {
		end = 0;
		CHECK_EQ(scan(body, strlen(body), step, out, &outlen, &end), 2);
		CHECK_EQ(end, want);
		CHECK_EQ(outlen, 31);
		CHECK(!memcmp(out, "helloabcdefghijklmnopqrstuvwxyz", 31));
	}
}

static void chunked_bad_sizes_rejected(void)
{
	char out[64];
	size_t ol, end;
#define SCAN(s) scan(s, strlen(s), 64, out, &ol, &end)
	CHECK_EQ(SCAN("g\r\n"), LT_HTTP1_E_CHUNK_SIZE);
	CHECK_EQ(SCAN("\r\n"), LT_HTTP1_E_CHUNK_SIZE);
	CHECK_EQ(SCAN("-1\r\n"), LT_HTTP1_E_CHUNK_SIZE);
	CHECK_EQ(SCAN("0x5\r\n"), LT_HTTP1_E_CHUNK_SIZE);
	/* 2^64 + 5 would wrap to 5 in a 64-bit accumulator: refused, not wrapped */
	CHECK_EQ(SCAN("10000000000000005\r\nhello\r\n0\r\n\r\n"), LT_HTTP1_E_CHUNK_SIZE);
	CHECK_EQ(SCAN("5\nhello\r\n"), LT_HTTP1_E_CHUNK_SIZE);
	CHECK_EQ(SCAN("5\r\rhello\r\n"), LT_HTTP1_E_CHUNK_EXT);
	CHECK_EQ(SCAN("5 x\r\nhello\r\n"), LT_HTTP1_E_CHUNK_EXT);
	CHECK_EQ(SCAN("5;a\x01\r\nhello\r\n"), LT_HTTP1_E_CHUNK_EXT);
	CHECK_EQ(SCAN("5\r\nhelloX\r\n"), LT_HTTP1_E_CHUNK_CRLF);
	CHECK_EQ(SCAN("5\r\nhello\n0\r\n\r\n"), LT_HTTP1_E_CHUNK_CRLF);
	CHECK_EQ(SCAN("0\r\n : x\r\n\r\n"), LT_HTTP1_E_TRAILER);
	CHECK_EQ(SCAN("0\r\nX: y\n\r\n"), LT_HTTP1_E_TRAILER);
	CHECK_EQ(SCAN("5 ;a=b\r\nhello\r\n0\r\n\r\n"), 2);
#undef SCAN
}

int main(void)
{
	RUN(valid_request_parses_in_place);
	RUN(incomplete_head_is_partial);
	RUN(leading_empty_line_is_skipped);
	RUN(two_content_lengths_rejected_even_equal);
	RUN(content_length_with_transfer_encoding_rejected);
	RUN(content_length_not_digits_rejected);
	RUN(transfer_encoding_other_than_chunked_rejected);
	RUN(obs_fold_rejected);
	RUN(bare_lf_rejected);
	RUN(bare_cr_rejected);
	RUN(whitespace_before_colon_rejected);
	RUN(invalid_token_chars_rejected);
	RUN(version_checked);
	RUN(host_required_once);
	RUN(huge_header_is_431);
	RUN(too_many_headers_is_431);
	RUN(connection_tokens_are_hop_by_hop);
	RUN(response_framing);
	RUN(chunked_end_found_in_any_split);
	RUN(chunked_bad_sizes_rejected);
	return lt_t_done();
}
