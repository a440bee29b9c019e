// SPDX-License-Identifier: MIT
/*
 * server.c - leaky-stub's HTTP/1.1 server: N worker threads, each with its own epoll set,
 * sharing one listening socket (EPOLLEXCLUSIVE, so a second stub on the same port fails to
 * bind instead of silently splitting the traffic as SO_REUSEPORT would). Every connection is
 * non-blocking and edge-triggered, registered once; a connection that waits (latency, chunk
 * delay, hang) holds a timerfd or nothing, never a thread, so a slow stream never delays
 * another request. The request is parsed in place; the answer is written into one buffer per
 * connection and sent with one send() when it fits.
 *
 * Concurrency: a connection belongs to the worker that accepted it; the only shared state is
 * the counters (atomics) and the response id (atomic).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <zlib.h>

#include "stub.h"

#define HEAD_MAX 16384 /* bytes of a request head; more is a 431 */
#define MAX_HEADERS 100
#define OUT_BATCH 16384 /* bytes of events generated before a send */
#define READ_CHUNK 16384
/* A connection closed by us drains what the client still sends for this long: closing with
 * unread input would send an RST that can destroy the answer (a 413 or 431) in flight. */
#define LINGER_MS 2000

enum src_kind { SRC_LISTEN, SRC_WAKE, SRC_SOCK, SRC_TIMER };

struct src {
	enum src_kind kind;
	struct conn *c;
};

enum cstate {
	C_IDLE, /* reading a request */
	C_WAIT, /* the answer is ready, held back by x-stub-latency-ms */
	C_HANG, /* x-stub-hang: never answers */
	C_WRITE, /* sending; a stream generates more as it drains */
	C_DELAY, /* a stream between two events (x-stub-chunk-delay-ms) */
	C_LINGER, /* answered and shut down for writing; discards input until EOF or LINGER_MS */
};

struct worker {
	int ep;
	pthread_t th;
	struct conn *live; /* every open connection, for the shutdown */
	struct conn *dead; /* closed in this batch, freed after it */
	struct stub_buf scratch;
	struct stub_buf gz; /* a JSON answer, gzip-compressed for a client that accepts it */
};

struct conn {
	struct src sk, tm;
	int fd, tfd;
	struct worker *w;
	struct conn *prev, *next, *next_dead;
	bool dead;
	enum cstate state;
	/* input: the current request starts at in[0]; req_len is its size once parsed */
	char *in;
	size_t in_len, in_cap, req_len;
	bool peer_eof, rd_full, sent_continue;
	/* output */
	struct stub_buf out;
	size_t out_off;
	bool close_after, chunked, streaming, cut_after_flush;
	/* the LLM answer in progress */
	enum stub_shape shape; /* STUB_NO_SHAPE: not an LLM request */
	struct stub_req req;
	struct stub_gen gen;
	uint32_t chunk_delay_ms, latency_ms;
	uint32_t chunk_bytes, eol; /* x-stub-chunk-bytes, x-stub-eol */
	int64_t disc_after; /* events (stream) or body bytes (JSON); -1: never */
	uint32_t events;
	/* usage written into out, and the part of it already credited to the counters */
	uint64_t pend_p, pend_c, pend_g, cred_p, cred_c, cred_g;
	struct stub_buf body; /* a chunked request body, decoded */
};

static int listen_fd = -1, wake_fd = -1;
static struct src listen_src = { SRC_LISTEN, NULL }, wake_src = { SRC_WAKE, NULL };
static uint64_t next_id;
static volatile int stopping;

/* --- the request head ------------------------------------------------------------------ */

struct hdr {
	const char *name, *val;
	size_t nlen, vlen;
};

struct head {
	const char *method, *target;
	size_t mlen, tlen, head_len;
	int minor; /* HTTP/1.<minor> */
	int64_t clen; /* -1: none */
	bool chunked, conn_close, conn_keep, expect_continue;
	unsigned nh;
	struct hdr h[MAX_HEADERS];
};

static bool tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-.^_`|~", c);
}

static bool token_eq(const char *p, size_t n, const char *lit)
{
	return n == strlen(lit) && !strncasecmp(p, lit, n);
}

/* A comma-separated header value contains the token lit. */
static bool list_has(const char *v, size_t n, const char *lit)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (token_eq(v + s, e - s, lit))
			return true;
	}
	return false;
}

/* Returns 1 with h filled, 0 when the head is incomplete, or an HTTP status to answer. */
static int parse_head(const char *p, size_t n, struct head *h)
{
	const char *end = n ? memmem(p, n, "\r\n\r\n", 4) : NULL, *q, *le;

	if (!end)
		return n > HEAD_MAX ? 431 : 0;
	if ((size_t)(end - p) + 4 > HEAD_MAX)
		return 431;
	memset(h, 0, offsetof(struct head, h));
	h->clen = -1;
	h->head_len = (size_t)(end - p) + 4;
	/* request line: method SP target SP HTTP/1.x */
	q = p;
	while (q < end && tchar((unsigned char)*q))
		q++;
	if (q == p || q >= end || *q != ' ')
		return 400;
	h->method = p;
	h->mlen = (size_t)(q - p);
	h->target = ++q;
	while (q<end && * q> ' ' && *q != 0x7f)
		q++;
	h->tlen = (size_t)(q - h->target);
	if (!h->tlen || q + 9 > end || *q != ' ' || memcmp(q + 1, "HTTP/1.", 7) ||
	    (q[8] != '0' && q[8] != '1') || q[9] != '\r')
		return 400;
	h->minor = q[8] - '0';
	q += 11;
	while (q < end + 2) {
		const char *colon, *v, *ve;

		le = memmem(q, (size_t)(end + 2 - q), "\r\n", 2);
		colon = q;
		while (colon < le && tchar((unsigned char)*colon))
			colon++;
		/* no name, a space before the colon, or an obs-fold line: refused */
		if (colon == q || colon >= le || *colon != ':')
			return 400;
		v = colon + 1;
		while (v < le && (*v == ' ' || *v == '\t'))
			v++;
		ve = le;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *x = v; x < ve; x++)
			if ((unsigned char)*x < 0x20 && *x != '\t')
				return 400;
		if (h->nh == MAX_HEADERS)
			return 431;
		h->h[h->nh++] = (struct hdr){ q, v, (size_t)(colon - q), (size_t)(ve - v) };
		if (token_eq(q, (size_t)(colon - q), "content-length")) {
			int64_t cl = 0;

			if (v == ve || ve - v > 15)
				return 400;
			for (const char *x = v; x < ve; x++) {
				if (*x < '0' || *x > '9')
					return 400;
				cl = cl * 10 + (*x - '0');
			}
			/* two lengths are a smuggling shape, even when equal */
			if (h->clen >= 0)
				return 400;
			h->clen = cl;
		} else if (token_eq(q, (size_t)(colon - q), "transfer-encoding")) {
			if (h->chunked || !token_eq(v, (size_t)(ve - v), "chunked"))
				return 501;
			h->chunked = true;
		} else if (token_eq(q, (size_t)(colon - q), "connection")) {
			h->conn_close |= list_has(v, (size_t)(ve - v), "close");
			h->conn_keep |= list_has(v, (size_t)(ve - v), "keep-alive");
		} else if (token_eq(q, (size_t)(colon - q), "expect")) {
			if (!token_eq(v, (size_t)(ve - v), "100-continue"))
				return 417;
			h->expect_continue = true;
		}
		q = le + 2;
	}
	if (h->chunked && (h->clen >= 0 || h->minor == 0))
		return 400;
	return 1;
}

static const struct hdr *find_hdr(const struct head *h, const char *name)
{
	for (unsigned i = 0; i < h->nh; i++)
		if (token_eq(h->h[i].name, h->h[i].nlen, name))
			return &h->h[i];
	return NULL;
}

/*
 * A chunked body at p[0..n): 1 when whole (decoded into out, *used bytes of p), 0 when more
 * is needed, 400 when malformed, 413 when the decoded body exceeds max.
 */
static int dechunk(const char *p, size_t n, struct stub_buf *out, size_t *used, uint64_t max)
{
	size_t i = 0;

	out->len = 0;
	for (;;) {
		uint64_t sz = 0;
		size_t digits = 0;
		const char *le;

		while (i < n && digits <= 15 &&
		       ((p[i] >= '0' && p[i] <= '9') ||
			((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f'))) {
			sz = sz * 16 +
			     (uint64_t)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
			i++;
			digits++;
		}
		if (i == n)
			return 0;
		if (!digits || digits > 15)
			return 400;
		le = memmem(p + i, n - i, "\r\n", 2);
		if (!le)
			return n - i > 1024 ? 400 : 0;
		if (p[i] != '\r' && p[i] != ';')
			return 400;
		i = (size_t)(le - p) + 2;
		if (sz == 0)
			break;
		if (out->len + sz > max)
			return 413;
		if (n - i < sz + 2)
			return 0;
		if (p[i + sz] != '\r' || p[i + sz + 1] != '\n')
			return 400;
		stub_buf_add(out, p + i, sz);
		i += sz + 2;
	}
	/* trailers, up to an empty line */
	for (;;) {
		const char *le = memmem(p + i, n - i, "\r\n", 2);

		if (!le)
			return n - i > HEAD_MAX ? 400 : 0;
		if (le == p + i) {
			*used = i + 2;
			return 1;
		}
		i = (size_t)(le - p) + 2;
	}
}

/* --- connections ----------------------------------------------------------------------- */

static void conn_close(struct conn *c)
{
	struct worker *w = c->w;

	if (c->dead)
		return;
	c->dead = true;
	close(c->fd);
	if (c->tfd >= 0)
		close(c->tfd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->live = c->next;
	if (c->next)
		c->next->prev = c->prev;
	/* Another event of this batch may still name c: freed after the batch. */
	c->next_dead = w->dead;
	w->dead = c;
}

static void conn_free(struct conn *c)
{
	free(c->in);
	stub_buf_free(&c->out);
	stub_buf_free(&c->body);
	free(c);
}

/* The client went away before the answer was whole. */
static void conn_gone(struct conn *c)
{
	if (c->shape != STUB_NO_SHAPE && c->state != C_IDLE)
		stub_count(c->shape, client_gone, 1);
	conn_close(c);
}

static int arm_timer(struct conn *c, uint32_t ms)
{
	struct itimerspec it = { 0 };

	if (c->tfd < 0) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = &c->tm };

		c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (c->tfd < 0)
			return -errno;
		if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->tfd, &ev))
			return -errno;
	}
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	if (!ms)
		it.it_value.tv_nsec = 1; /* zero would disarm */
	if (timerfd_settime(c->tfd, 0, &it, NULL))
		return -errno;
	return 0;
}

/* Reads what the socket holds, up to the input limit (then rd_full: no new edge will come). */
static void do_read(struct conn *c)
{
	size_t limit = HEAD_MAX + stub_opts.max_body + READ_CHUNK;

	for (;;) {
		ssize_t n;
		size_t want;

		if (c->in_len >= limit) {
			c->rd_full = true;
			return;
		}
		if (c->in_cap - c->in_len < READ_CHUNK && c->in_cap < limit) {
			size_t cap = c->in_cap ? c->in_cap * 2 : READ_CHUNK;
			char *p;

			if (cap > limit)
				cap = limit;
			p = realloc(c->in, cap);
			if (!p) {
				c->peer_eof = true;
				return;
			}
			c->in = p;
			c->in_cap = cap;
		}
		want = c->in_cap - c->in_len;
		n = recv(c->fd, c->in + c->in_len, want, 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			/* A short read emptied the socket: the next byte brings a new edge. */
			if ((size_t)n < want)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		c->peer_eof = true;
		return;
	}
}

static const char *reason(unsigned s)
{
	switch (s) {
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 413:
		return "Content Too Large";
	case 417:
		return "Expectation Failed";
	case 422:
		return "Unprocessable Content";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 529:
		return "Overloaded";
	default:
		return s < 300 ? "OK" : s < 500 ? "Client Error" : "Server Error";
	}
}

/* The status line and the headers every answer has; the caller adds its own and the CRLF. */
static void head_start(struct conn *c, const struct head *h, unsigned status, const char *ctype)
{
	const struct hdr *rid = h ? find_hdr(h, "x-request-id") : NULL;

	stub_buf_printf(&c->out, "HTTP/1.1 %u %s\r\nServer: leaky-stub\r\nContent-Type: %s\r\n",
			status, reason(status), ctype);
	if (c->close_after)
		stub_buf_str(&c->out, "Connection: close\r\n");
	else if (h && h->minor == 0)
		stub_buf_str(&c->out, "Connection: keep-alive\r\n");
	/* echoed when it is short and printable, so a test can match answers to requests */
	if (rid && rid->vlen <= 128) {
		bool ok = true;

		for (size_t i = 0; i < rid->vlen; i++)
			ok &= rid->val[i] > ' ' && rid->val[i] < 0x7f;
		if (ok) {
			stub_buf_str(&c->out, "x-request-id: ");
			stub_buf_add(&c->out, rid->val, rid->vlen);
			stub_buf_str(&c->out, "\r\n");
		}
	}
}

/* A whole answer with a body, into out. */
static void answer(struct conn *c, const struct head *h, unsigned status, const char *ctype,
		   const char *extra, const char *body, size_t blen)
{
	head_start(c, h, status, ctype);
	if (extra)
		stub_buf_str(&c->out, extra);
	stub_buf_printf(&c->out, "Content-Length: %zu\r\n\r\n", blen);
	stub_buf_add(&c->out, body, blen);
}

/*
 * body gzip-compressed into out, as the providers' own servers answer a client that sends
 * Accept-Encoding: gzip (OpenAI's do): 0, or -1 when zlib fails (then sent as is).
 */
static int gzip_into(const char *body, size_t blen, struct stub_buf *out)
{
	z_stream z = { 0 };
	uLong cap;
	int r;

	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return -1;
	cap = deflateBound(&z, (uLong)blen) + 32;
	out->len = 0;
	if (out->cap < cap) {
		char *p = realloc(out->p, cap);

		if (!p) {
			deflateEnd(&z);
			return -1;
		}
		out->p = p;
		out->cap = cap;
	}
	z.next_in = (Bytef *)body;
	z.avail_in = (uInt)blen;
	z.next_out = (Bytef *)out->p;
	z.avail_out = (uInt)cap;
	r = deflate(&z, Z_FINISH);
	out->len = z.total_out;
	deflateEnd(&z);
	return r == Z_STREAM_END ? 0 : -1;
}

/* A provider-shaped error answer; 429s carry the headers clients retry on. */
static void answer_error(struct conn *c, const struct head *h, enum stub_family f, unsigned status,
			 unsigned retry_s, const char *msg)
{
	struct stub_buf *b = &c->w->scratch;
	char extra[512] = "";

	b->len = 0;
	stub_error_body(f, status, retry_s, msg, b);
	if (status == 429)
		snprintf(extra, sizeof(extra),
			 "Retry-After: %u\r\nretry-after-ms: %u\r\n"
			 "x-ratelimit-limit-requests: 60\r\nx-ratelimit-remaining-requests: 0\r\n"
			 "x-ratelimit-reset-requests: %us\r\nx-ratelimit-limit-tokens: 100000\r\n"
			 "x-ratelimit-remaining-tokens: 0\r\nx-ratelimit-reset-tokens: %us\r\n",
			 retry_s, retry_s * 1000, retry_s, retry_s);
	answer(c, h, status, "application/json", extra, b->p, b->len);
}

/* --- routing --------------------------------------------------------------------------- */

/* The shape of an LLM path (the target without its query), or STUB_NO_SHAPE. For Gemini the
 * model is copied from the path and *sse says whether the query asked for alt=sse. */
static enum stub_shape route(const char *t, size_t n, char *model, bool *stream, bool *sse)
{
	const char *qm = memchr(t, '?', n), *colon, *m;
	size_t pn = qm ? (size_t)(qm - t) : n;
	static const struct {
		const char *path;
		enum stub_shape s;
	} fixed[] = {
		{ "/v1/chat/completions", STUB_OPENAI_CHAT },
		{ "/v1/completions", STUB_OPENAI_COMPLETIONS },
		{ "/v1/embeddings", STUB_OPENAI_EMBEDDINGS },
		{ "/v1/responses", STUB_OPENAI_RESPONSES },
		{ "/v1beta/openai/chat/completions", STUB_GEMINI_OPENAI },
		{ "/compatible-mode/v1/chat/completions", STUB_DASHSCOPE },
		{ "/v1/messages", STUB_ANTHROPIC },
	};

	*stream = *sse = false;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (token_eq(t, pn, fixed[i].path) && !memcmp(t, fixed[i].path, pn))
			return fixed[i].s;
	if (pn > 15 && !memcmp(t, "/v1beta/models/", 15))
		m = t + 15;
	else if (pn > 11 && !memcmp(t, "/v1/models/", 11))
		m = t + 11;
	else
		return STUB_NO_SHAPE;
	colon = memchr(m, ':', pn - (size_t)(m - t));
	if (!colon || colon == m || memchr(m, '/', (size_t)(colon - m)) ||
	    (size_t)(colon - m) > STUB_MAX_MODEL)
		return STUB_NO_SHAPE;
	if (token_eq(colon, pn - (size_t)(colon - t), ":generateContent")) {
		*stream = false;
	} else if (token_eq(colon, pn - (size_t)(colon - t), ":streamGenerateContent")) {
		*stream = true;
		if (qm) {
			/* alt=sse as one of the query's parameters */
			const char *q = qm + 1, *e = t + n;

			while (q < e) {
				const char *amp = memchr(q, '&', (size_t)(e - q));
				size_t len = amp ? (size_t)(amp - q) : (size_t)(e - q);

				if (len == 7 && !memcmp(q, "alt=sse", 7))
					*sse = true;
				q += len + 1;
			}
		}
	} else {
		return STUB_NO_SHAPE;
	}
	memcpy(model, m, (size_t)(colon - m));
	model[colon - m] = 0;
	return STUB_GEMINI;
}

static bool path_is(const struct head *h, const char *path)
{
	const char *qm = memchr(h->target, '?', h->tlen);
	size_t pn = qm ? (size_t)(qm - h->target) : h->tlen;

	return pn == strlen(path) && !memcmp(h->target, path, pn);
}

static bool method_is(const struct head *h, const char *m)
{
	return h->mlen == strlen(m) && !memcmp(h->method, m, h->mlen);
}

/* The family for an answer on a path that is not an LLM endpoint. */
static enum stub_family family_of_path(const struct head *h)
{
	if (h->tlen >= 7 && !memcmp(h->target, "/v1beta", 7))
		return STUB_FAM_GEMINI;
	if (h->tlen >= 12 && !memcmp(h->target, "/v1/messages", 12))
		return STUB_FAM_ANTHROPIC;
	return STUB_FAM_OPENAI;
}

/* An x-stub-* integer: absent keeps *v; otherwise decimal within [lo, hi]. */
static int ctl_uint(const struct head *h, const char *name, uint64_t lo, uint64_t hi, uint64_t *v)
{
	const struct hdr *x = find_hdr(h, name);
	uint64_t n = 0;

	if (!x)
		return 0;
	if (!x->vlen || x->vlen > 10)
		return -1;
	for (size_t i = 0; i < x->vlen; i++) {
		if (x->val[i] < '0' || x->val[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(x->val[i] - '0');
	}
	if (n < lo || n > hi)
		return -1;
	*v = n;
	return 0;
}

static int ctl_bool(const struct head *h, const char *name, bool *v)
{
	const struct hdr *x = find_hdr(h, name);

	if (!x)
		return 0;
	if (token_eq(x->val, x->vlen, "1") || token_eq(x->val, x->vlen, "true") ||
	    token_eq(x->val, x->vlen, "yes"))
		*v = true;
	else if (token_eq(x->val, x->vlen, "0") || token_eq(x->val, x->vlen, "false") ||
		 token_eq(x->val, x->vlen, "no"))
		*v = false;
	else
		return -1;
	return 0;
}

static void echo_json(struct conn *c, const struct head *h, size_t body_len)
{
	struct stub_buf *b = &c->w->scratch;

	b->len = 0;
	stub_buf_str(b, "{\"method\":");
	stub_buf_json_str(b, h->method, h->mlen);
	stub_buf_str(b, ",\"target\":");
	stub_buf_json_str(b, h->target, h->tlen);
	stub_buf_printf(b, ",\"version\":\"HTTP/1.%d\",\"headers\":[", h->minor);
	for (unsigned i = 0; i < h->nh; i++) {
		stub_buf_str(b, i ? ",[" : "[");
		stub_buf_json_str(b, h->h[i].name, h->h[i].nlen);
		stub_buf_str(b, ",");
		stub_buf_json_str(b, h->h[i].val, h->h[i].vlen);
		stub_buf_str(b, "]");
	}
	stub_buf_printf(b, "],\"body_bytes\":%zu}", body_len);
	answer(c, h, 200, "application/json", NULL, b->p, b->len);
}

/* x-stub-content-type: absent keeps ct; a visible ASCII value shorter than len replaces it. */
static int ctl_type(const struct head *h, char *ct, size_t len)
{
	const struct hdr *x = find_hdr(h, "x-stub-content-type");

	if (!x)
		return 0;
	if (!x->vlen || x->vlen >= len)
		return -1;
	for (size_t i = 0; i < x->vlen; i++)
		if (x->val[i] < ' ' || x->val[i] > '~')
			return -1;
	memcpy(ct, x->val, x->vlen);
	ct[x->vlen] = 0;
	return 0;
}

/* An LLM request: controls, body, then the answer (held back by the latency). */
static void dispatch_llm(struct conn *c, const struct head *h, enum stub_shape s, const char *body,
			 size_t blen, const char *path_model, bool stream, bool sse)
{
	enum stub_family f = stub_shape_family(s);
	uint32_t st = stub_opt_get(status);
	uint64_t status = st ? st : 200, lat = stub_opt_get(latency_ms);
	uint64_t delay = stub_opt_get(chunk_delay_ms), tokens = stub_opt_get(tokens);
	uint64_t retry = stub_opt_get(retry_after_s), per = stub_opt_get(event_tokens);
	uint64_t cbytes = stub_opt_get(chunk_bytes), eol = stub_opt_get(eol);
	int64_t d = stub_opt_get(disconnect_after), e = stub_opt_get(error_after);
	uint64_t disc = d < 0 ? UINT64_MAX : (uint64_t)d,
		 err_after = e < 0 ? UINT64_MAX : (uint64_t)e;
	bool hang = stub_opt_get(hang), ignore = stub_opt_get(ignore_max_tokens);
	bool garray = stub_opt_get(gemini_array), gz = stub_opt_get(gzip);
	struct stub_req *r = &c->req;
	char err[256], ctype[sizeof(stub_opts.content_type)];
	uint32_t n;
	bool capped = false;

	c->shape = s;
	stub_count(s, requests, 1);
	if (ctl_uint(h, "x-stub-status", 200, 599, &status) ||
	    ctl_uint(h, "x-stub-latency-ms", 0, 600000, &lat) ||
	    ctl_uint(h, "x-stub-chunk-delay-ms", 0, 600000, &delay) ||
	    ctl_uint(h, "x-stub-tokens", 0, STUB_MAX_TOKENS, &tokens) ||
	    ctl_uint(h, "x-stub-retry-after", 0, 86400, &retry) ||
	    ctl_uint(h, "x-stub-disconnect-after", 0, UINT32_MAX, &disc) ||
	    ctl_uint(h, "x-stub-error-after", 0, UINT32_MAX, &err_after) ||
	    ctl_uint(h, "x-stub-event-tokens", 1, STUB_MAX_TOKENS, &per) ||
	    ctl_uint(h, "x-stub-chunk-bytes", 0, 1 << 20, &cbytes) ||
	    ctl_uint(h, "x-stub-eol", 0, 3, &eol) || ctl_bool(h, "x-stub-hang", &hang) ||
	    ctl_bool(h, "x-stub-ignore-max-tokens", &ignore) ||
	    ctl_bool(h, "x-stub-gemini-array", &garray) || ctl_bool(h, "x-stub-gzip", &gz) ||
	    ctl_type(h, strcpy(ctype, stub_opts.content_type), sizeof(ctype))) {
		stub_count(s, errors, 1);
		answer_error(c, h, f, 400, 0,
			     "a x-stub-* header has a bad value (see leaky-stub --help)");
		return;
	}
	c->latency_ms = (uint32_t)lat;
	c->chunk_delay_ms = (uint32_t)delay;
	c->chunk_bytes = (uint32_t)cbytes;
	c->eol = (uint32_t)eol;
	c->disc_after = disc == UINT64_MAX ? -1 : (int64_t)disc;
	if (hang) {
		stub_count(s, hung, 1);
		c->state = C_HANG;
		return;
	}
	c->state = c->latency_ms ? C_WAIT : C_WRITE;
	if (status != 200) {
		char msg[160];

		snprintf(msg, sizeof(msg),
			 "leaky-stub: status %u on request (x-stub-status or --status)",
			 (unsigned)status);
		stub_count(s, errors, 1);
		answer_error(c, h, f, (unsigned)status, (unsigned)retry, msg);
		goto cut;
	}
	memset(r, 0, sizeof(*r));
	r->shape = s;
	if (stub_parse(s, body, blen, r, err, sizeof(err))) {
		stub_count(s, errors, 1);
		answer_error(c, h, f, 400, 0, err);
		goto cut;
	}
	if (s == STUB_GEMINI) {
		snprintf(r->model, sizeof(r->model), "%s", path_model);
		r->stream = stream;
		r->gemini_sse = sse && !garray;
	}
	n = (uint32_t)tokens;
	if (r->limit > 0 && (uint64_t)r->limit < tokens && !ignore) {
		n = (uint32_t)r->limit;
		capped = true;
	}
	stub_gen_init(&c->gen, r, n, capped, __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED));
	stub_gen_per_event(&c->gen, (uint32_t)per);
	if (err_after != UINT64_MAX)
		c->gen.err_after = (int64_t)err_after;
	if (!r->stream) {
		struct stub_buf *b = &c->w->scratch;

		const struct hdr *ae = find_hdr(h, "accept-encoding");

		b->len = 0;
		stub_gen_json(&c->gen, b);
		if ((gz || (ae && list_has(ae->val, ae->vlen, "gzip"))) &&
		    !gzip_into(b->p, b->len, &c->w->gz))
			answer(c, h, 200, ctype[0] ? ctype : "application/json",
			       "Content-Encoding: gzip\r\n", c->w->gz.p, c->w->gz.len);
		else
			answer(c, h, 200, ctype[0] ? ctype : "application/json", NULL, b->p,
			       b->len);
		c->pend_p = c->gen.rep_prompt;
		c->pend_c = c->gen.rep_completion;
		c->pend_g = c->gen.gen_tokens;
		goto cut;
	}
	stub_count(s, streams, 1);
	if (gz) {
		/*
		 * A provider that compresses a stream it was asked to send plain: the
		 * whole stream, generated at once, in one gzip body (what a client
		 * that cannot decode it sees is the same as for a flushed one).
		 */
		struct stub_buf *b = &c->w->scratch;

		b->len = 0;
		while (stub_gen_event(&c->gen, b))
			;
		if (gzip_into(b->p, b->len, &c->w->gz)) {
			answer_error(c, h, f, 500, 0, "leaky-stub: gzip failed");
			goto cut;
		}
		answer(c, h, 200, ctype[0] ? ctype : stub_gen_content_type(r),
		       "Content-Encoding: gzip\r\nCache-Control: no-cache\r\n", c->w->gz.p,
		       c->w->gz.len);
		c->pend_p = c->gen.rep_prompt;
		c->pend_c = c->gen.rep_completion;
		c->pend_g = c->gen.gen_tokens;
		goto cut;
	}
	c->streaming = true;
	/* HTTP/1.0 has no chunked framing: the end of the stream is the end of the connection. */
	c->chunked = h->minor == 1;
	if (!c->chunked)
		c->close_after = true;
	head_start(c, h, 200, ctype[0] ? ctype : stub_gen_content_type(r));
	stub_buf_str(&c->out,
		     c->chunked ? "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n" :
				  "Cache-Control: no-cache\r\n\r\n");
	return;
cut:
	/* A JSON answer cut after K bytes of its body: no usage is credited, none was readable. */
	if (c->disc_after >= 0) {
		const char *eoh = memmem(c->out.p, c->out.len, "\r\n\r\n", 4);
		size_t keep = (size_t)(eoh - c->out.p) + 4 + (size_t)c->disc_after;

		if (keep < c->out.len) {
			c->out.len = keep;
			c->pend_p = c->pend_c = c->pend_g = 0;
			c->cut_after_flush = true;
		}
	}
}

/* Routes one whole request; its answer goes into out (or is held: C_WAIT, C_HANG). */
static void dispatch(struct conn *c, const struct head *h, const char *body, size_t blen)
{
	char model[STUB_MAX_MODEL + 1];
	bool stream, sse;
	enum stub_shape s = route(h->target, h->tlen, model, &stream, &sse);

	c->state = C_WRITE;
	if (s != STUB_NO_SHAPE) {
		if (!method_is(h, "POST")) {
			answer_error(c, h, stub_shape_family(s), 405, 0,
				     "this endpoint takes POST");
			return;
		}
		dispatch_llm(c, h, s, body, blen, model, stream, sse);
		return;
	}
	if (path_is(h, "/stub/stats") && method_is(h, "GET")) {
		struct stub_buf *b = &c->w->scratch;

		b->len = 0;
		stub_stats_json(b);
		answer(c, h, 200, "application/json", NULL, b->p, b->len);
	} else if (path_is(h, "/stub/reset") && method_is(h, "POST")) {
		stub_stats_reset();
		answer(c, h, 200, "application/json", NULL, "{\"reset\":true}", 14);
	} else if (path_is(h, "/stub/config") && (method_is(h, "GET") || method_is(h, "POST"))) {
		struct stub_buf *b = &c->w->scratch;
		char err[256];

		if (method_is(h, "POST") && stub_config_apply(body, blen, err, sizeof(err))) {
			answer_error(c, h, STUB_FAM_OPENAI, 400, 0, err);
			return;
		}
		b->len = 0;
		stub_config_json(b);
		answer(c, h, 200, "application/json", NULL, b->p, b->len);
	} else if (path_is(h, "/stub/echo")) {
		echo_json(c, h, blen);
	} else if ((path_is(h, "/healthz") || path_is(h, "/stub/health")) && method_is(h, "GET")) {
		answer(c, h, 200, "application/json", NULL, "{\"status\":\"ok\"}", 15);
	} else {
		answer_error(c, h, family_of_path(h), 404, 0, "leaky-stub: no such endpoint");
	}
}

/* Tries to take one request from the input. Returns true when one was dispatched (or
 * refused), false when more input is needed. */
static bool take_request(struct conn *c)
{
	struct head h;
	int rc = parse_head(c->in, c->in_len, &h);
	const char *body;
	size_t blen;

	if (rc == 0) {
		if (c->rd_full)
			goto too_large;
		return false;
	}
	if (rc != 1) {
		c->close_after = true;
		c->state = C_WRITE;
		answer_error(c, NULL, STUB_FAM_OPENAI, (unsigned)rc, 0,
			     rc == 431 ? "request head too large" :
			     rc == 501 ? "unsupported transfer-encoding" :
			     rc == 417 ? "unsupported expectation" :
					 "malformed HTTP request");
		return true;
	}
	c->close_after = h.conn_close || (h.minor == 0 && !h.conn_keep);
	if (h.chunked) {
		size_t used = 0;

		rc = dechunk(c->in + h.head_len, c->in_len - h.head_len, &c->body, &used,
			     stub_opts.max_body);
		if (rc == 0) {
			if (c->rd_full)
				goto too_large;
			goto more;
		}
		if (rc != 1) {
			c->close_after = true;
			c->state = C_WRITE;
			answer_error(c, &h, family_of_path(&h), (unsigned)rc, 0,
				     rc == 413 ? "request body too large" :
						 "malformed chunked body");
			return true;
		}
		c->req_len = h.head_len + used;
		body = c->body.p ? c->body.p : "";
		blen = c->body.len;
	} else {
		uint64_t cl = h.clen < 0 ? 0 : (uint64_t)h.clen;

		if (cl > stub_opts.max_body)
			goto too_large_h;
		if (c->in_len - h.head_len < cl)
			goto more;
		c->req_len = h.head_len + cl;
		body = c->in + h.head_len;
		blen = cl;
	}
	dispatch(c, &h, body, blen);
	return true;
more:
	if (h.expect_continue && !c->sent_continue) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		c->sent_continue = true;
		/* 25 bytes into an idle socket: a short write is not worth a state. */
		if (send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
			c->peer_eof = true;
	}
	return false;
too_large_h:
	c->close_after = true;
	c->state = C_WRITE;
	answer_error(c, &h, family_of_path(&h), 413, 0, "request body too large");
	return true;
too_large:
	c->close_after = true;
	c->state = C_WRITE;
	answer_error(c, NULL, STUB_FAM_OPENAI, 413, 0, "request too large");
	return true;
}

/* What the sent part of the answer reported goes to the counters. */
static void credit(struct conn *c)
{
	if (c->shape == STUB_NO_SHAPE)
		return;
	if (c->pend_p > c->cred_p)
		stub_count(c->shape, prompt_tokens, c->pend_p - c->cred_p);
	if (c->pend_c > c->cred_c)
		stub_count(c->shape, completion_tokens, c->pend_c - c->cred_c);
	if (c->pend_g > c->cred_g)
		stub_count(c->shape, generated_tokens, c->pend_g - c->cred_g);
	c->cred_p = c->pend_p;
	c->cred_c = c->pend_c;
	c->cred_g = c->pend_g;
}

/*
 * An event's line ends rewritten (x-stub-eol): every CRLF, CR or LF becomes
 * the one asked for. JSON text holds no raw CR or LF, so only the SSE
 * framing (and a Gemini array's blanks) change.
 */
static void rewrite_eol(struct stub_buf *ev, struct stub_buf *tmp, uint32_t eol)
{
	static const char *const ends[] = { NULL, "\n", "\r\n", "\r" };
	size_t i;

	tmp->len = 0;
	for (i = 0; i < ev->len; i++) {
		if (ev->p[i] != '\r' && ev->p[i] != '\n') {
			stub_buf_add(tmp, ev->p + i, 1);
			continue;
		}
		if (ev->p[i] == '\r' && i + 1 < ev->len && ev->p[i + 1] == '\n')
			i++;
		stub_buf_str(tmp, ends[eol]);
	}
	ev->len = 0;
	stub_buf_add(ev, tmp->p, tmp->len);
}

/* Appends an event to out, framed: one chunk, or chunks of at most chunk_bytes. */
static void frame(struct conn *c, const char *p, size_t n)
{
	size_t step = c->chunk_bytes && c->chunked ? c->chunk_bytes : n, k;

	for (; n; p += k, n -= k) {
		k = n < step ? n : step;
		if (c->chunked)
			stub_buf_printf(&c->out, "%zx\r\n", k);
		stub_buf_add(&c->out, p, k);
		if (c->chunked)
			stub_buf_add(&c->out, "\r\n", 2);
	}
}

/* Generates the next events of a stream into out, framed. */
static void produce(struct conn *c)
{
	struct stub_buf *ev = &c->w->scratch;

	while (c->out.len < OUT_BATCH) {
		if (c->disc_after >= 0 && c->events >= (uint64_t)c->disc_after)
			break;
		ev->len = 0;
		if (!stub_gen_event(&c->gen, ev))
			break;
		c->events++;
		if (c->gen.errored) {
			stub_count(c->shape, stream_errors, 1);
			c->gen.errored = false;
		}
		if (c->eol)
			rewrite_eol(ev, &c->w->gz, c->eol);
		frame(c, ev->p, ev->len);
		c->pend_p = c->gen.rep_prompt;
		c->pend_c = c->gen.rep_completion;
		c->pend_g = c->gen.gen_tokens;
		/* with a delay each event goes out alone, then the timer */
		if (c->chunk_delay_ms)
			break;
	}
	/* produce() never runs past disc_after, so a finished generator is a whole stream */
	if (c->gen.ev >= c->gen.nev && c->chunked)
		stub_buf_add(&c->out, "0\r\n\r\n", 5);
}

static bool stream_done(const struct conn *c)
{
	return c->gen.ev >= c->gen.nev;
}

/* The answer is sent: the next request, if any, starts at in[0]. */
static void finish(struct conn *c)
{
	if (c->close_after) {
		shutdown(c->fd, SHUT_WR);
		c->state = C_LINGER;
		c->shape = STUB_NO_SHAPE;
		if (!c->peer_eof && arm_timer(c, LINGER_MS))
			conn_close(c);
		return;
	}
	memmove(c->in, c->in + c->req_len, c->in_len - c->req_len);
	c->in_len -= c->req_len;
	c->req_len = 0;
	c->state = C_IDLE;
	c->shape = STUB_NO_SHAPE;
	c->streaming = c->chunked = c->cut_after_flush = c->sent_continue = false;
	c->events = 0;
	c->disc_after = -1;
	c->pend_p = c->pend_c = c->pend_g = c->cred_p = c->cred_c = c->cred_g = 0;
	if (c->body.cap > 65536)
		stub_buf_free(&c->body);
	if (c->rd_full) {
		c->rd_full = false;
		do_read(c);
	}
}

/* Runs the connection's state machine until it has to wait for the socket or a timer. */
static void drive(struct conn *c)
{
	while (!c->dead) {
		switch (c->state) {
		case C_IDLE:
			if (take_request(c)) {
				if (c->state == C_WAIT && arm_timer(c, c->latency_ms))
					conn_close(c);
				continue;
			}
			if (c->peer_eof)
				conn_close(c);
			return;
		case C_WAIT:
		case C_HANG:
		case C_DELAY:
			if (c->peer_eof)
				conn_gone(c);
			return;
		case C_LINGER:
			do {
				c->in_len = 0;
				c->rd_full = false;
				do_read(c);
			} while (c->rd_full && !c->peer_eof);
			if (c->peer_eof)
				conn_close(c);
			return;
		case C_WRITE:
			if (c->out_off < c->out.len) {
				ssize_t n = send(c->fd, c->out.p + c->out_off,
						 c->out.len - c->out_off, MSG_NOSIGNAL);

				if (n >= 0) {
					c->out_off += (size_t)n;
					continue;
				}
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					conn_gone(c);
				else if (c->peer_eof)
					conn_gone(c);
				return; /* EPOLLOUT brings us back */
			}
			c->out.len = c->out_off = 0;
			credit(c);
			if (c->cut_after_flush ||
			    (c->streaming && c->disc_after >= 0 &&
			     c->events >= (uint64_t)c->disc_after && !stream_done(c))) {
				stub_count(c->shape, cut, 1);
				conn_close(c);
				return;
			}
			if (c->streaming && !stream_done(c)) {
				if (c->peer_eof) {
					conn_gone(c);
					return;
				}
				if (c->chunk_delay_ms && c->events > 0) {
					c->state = C_DELAY;
					if (arm_timer(c, c->chunk_delay_ms))
						conn_close(c);
					return;
				}
				produce(c);
				continue;
			}
			finish(c);
			continue;
		}
	}
}

static void on_timer(struct conn *c)
{
	uint64_t ticks;

	while (read(c->tfd, &ticks, sizeof(ticks)) < 0 && errno == EINTR)
		;
	if (c->state == C_LINGER) {
		conn_close(c);
		return;
	}
	if (c->state == C_WAIT || c->state == C_DELAY) {
		c->state = C_WRITE;
		if (c->streaming && c->state == C_WRITE && c->out.len == c->out_off)
			produce(c);
		drive(c);
	}
}

static void on_accept(struct worker *w)
{
	for (int i = 0; i < 64; i++) {
		int one = 1, fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev;
		struct conn *c;

		if (fd < 0)
			return; /* EAGAIN: another worker took it; EMFILE: the next edge retries */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->tfd = -1;
		c->w = w;
		c->sk = (struct src){ SRC_SOCK, c };
		c->tm = (struct src){ SRC_TIMER, c };
		c->shape = STUB_NO_SHAPE;
		c->disc_after = -1;
		c->next = w->live;
		if (w->live)
			w->live->prev = c;
		w->live = c;
		ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
		ev.data.ptr = &c->sk;
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev)) {
			conn_close(c);
			continue;
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[128];

	while (!stopping) {
		int n = epoll_wait(w->ep, evs, 128, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			struct src *s = evs[i].data.ptr;
			struct conn *c = s->c;

			switch (s->kind) {
			case SRC_LISTEN:
				on_accept(w);
				break;
			case SRC_WAKE:
				break;
			case SRC_SOCK:
				if (c->dead)
					break;
				if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					do_read(c);
				if (evs[i].events & (EPOLLHUP | EPOLLERR))
					c->peer_eof = true;
				drive(c);
				break;
			case SRC_TIMER:
				if (!c->dead)
					on_timer(c);
				break;
			}
		}
		while (w->dead) {
			struct conn *c = w->dead;

			w->dead = c->next_dead;
			conn_free(c);
		}
	}
	while (w->live)
		conn_close(w->live);
	while (w->dead) {
		struct conn *c = w->dead;

		w->dead = c->next_dead;
		conn_free(c);
	}
	return NULL;
}

/* "host:port", "[v6]:port" or ":port"; port 0 picks a free one (printed on stdout). */
static int open_listener(const char *addr)
{
	char host[128], port[16];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, one = 1, rc;

	if (!colon || strlen(colon + 1) >= sizeof(port) || !colon[1] ||
	    (size_t)(colon - addr) >= sizeof(host)) {
		fprintf(stderr, "leaky-stub: --listen %s: expected HOST:PORT\n", addr);
		return -EINVAL;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host) - 2);
		host[strlen(host) - 2] = 0;
	}
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (rc) {
		fprintf(stderr, "leaky-stub: --listen %s: %s\n", addr, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto cleanup;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 4096)) {
		rc = -errno;
		fprintf(stderr, "leaky-stub: --listen %s: %s\n", addr, strerror(errno));
		goto cleanup;
	}
	if (!getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		char h[INET6_ADDRSTRLEN] = "?";
		unsigned p = 0;

		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
			p = ntohs(a->sin_port);
			printf("leaky-stub: listening on %s:%u\n", h, p);
		} else {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
			p = ntohs(a->sin6_port);
			printf("leaky-stub: listening on [%s]:%u\n", h, p);
		}
		fflush(stdout);
	}
	freeaddrinfo(ai);
	return fd;
cleanup:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

int stub_serve(void)
{
	struct worker *ws = NULL;
	unsigned nw = stub_opts.threads, started = 0;
	sigset_t set;
	struct rlimit rl;
	int rc = 0, sig;

	/* Many connections: the soft descriptor limit up to the hard one. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* the workers inherit the mask: only sigwait below takes the signals */
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	listen_fd = open_listener(stub_opts.listen);
	if (listen_fd < 0)
		return listen_fd;
	wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ws = calloc(nw, sizeof(*ws));
	if (wake_fd < 0 || !ws) {
		rc = -ENOMEM;
		goto cleanup;
	}
	for (unsigned i = 0; i < nw; i++) {
		struct epoll_event le = { .events = EPOLLIN | EPOLLEXCLUSIVE,
					  .data.ptr = &listen_src };
		struct epoll_event we = { .events = EPOLLIN, .data.ptr = &wake_src };

		ws[i].ep = epoll_create1(EPOLL_CLOEXEC);
		if (ws[i].ep < 0 || epoll_ctl(ws[i].ep, EPOLL_CTL_ADD, listen_fd, &le) ||
		    epoll_ctl(ws[i].ep, EPOLL_CTL_ADD, wake_fd, &we)) {
			rc = -errno;
			fprintf(stderr, "leaky-stub: epoll: %s\n", strerror(errno));
			if (ws[i].ep >= 0)
				close(ws[i].ep);
			goto cleanup;
		}
		if ((rc = -pthread_create(&ws[i].th, NULL, worker_main, &ws[i]))) {
			close(ws[i].ep);
			goto cleanup;
		}
		started++;
	}
	while (sigwait(&set, &sig))
		;
	rc = 0;
cleanup:
	stopping = 1;
	if (wake_fd >= 0) {
		uint64_t one = 1;

		if (write(wake_fd, &one, sizeof(one)) < 0)
			rc = rc ? rc : -errno;
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(ws[i].th, NULL);
		close(ws[i].ep);
		stub_buf_free(&ws[i].scratch);
		stub_buf_free(&ws[i].gz);
	}
	free(ws);
	if (wake_fd >= 0)
		close(wake_fd);
	close(listen_fd);
	return rc;
}
