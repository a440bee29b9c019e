// SPDX-License-Identifier: MIT
/*
 * proxy.c - leaky-gateway's data path: master, workers, the per-worker epoll
 * loop, upstream pools, the exchange state machine and the hook API of
 * exchange.h. See proxy.h for the process model.
 *
 * One worker, one thread, one epoll. Every fd is added once with
 * EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET and never modified: readiness is kept in
 * can_read/can_write flags, so a read stopped before EAGAIN (back-pressure,
 * a request still in progress) is resumed from the flag, not from a new edge
 * (PROBE-NOTES §10 traps). Objects closed during a batch of events are freed
 * after the batch (a later event of the same batch may still name them).
 * Work that must not run inside another object's handler (the next pipelined
 * request, resuming a paused read) goes on a kick list run after each event.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <malloc.h>
#include <jansson.h>
#include <bpf/bpf.h>
#include "lt_abi.h"
#include "escalate.h"
#include "identity.h"
#include "log.h"
#include "problem.h"
#include "proxy.h"
#include "stats.h"
#include "routes.h"
#include "tls.h"

#define OUT_HIGH (256u << 10) /* bytes pending for a peer: stop reading the other side */
#define OUT_LOW (64u << 10) /* resume below this */
#define READ_CHUNK (64u << 10)
#define MAX_EDITS 24
#define HEALTH_SLOTS 256

/* --- small helpers --------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

struct buf {
	char *p;
	size_t off, len, cap; /* data is p[off..len) */
};

static inline size_t buf_avail(const struct buf *b)
{
	return b->len - b->off;
}

/* buf_reserve's slow path: compact, then grow */
static int buf_grow(struct buf *b, size_t extra)
{
	if (b->off) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->len + extra <= b->cap)
			return 0;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/*
 * Room for extra more bytes. The common case (room already) inline: heads are
 * built piece by piece, ~40 calls a proxied request (5% of its instructions
 * were this call).
 */
static __always_inline int buf_reserve(struct buf *b, size_t extra)
{
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + extra <= b->cap)
		return 0;
	return buf_grow(b, extra);
}

static inline int buf_put(struct buf *b, const void *d, size_t n)
{
	if (!n) /* nothing to copy, and maybe no buffer yet: memcpy wants one */
		return 0;
	if (buf_reserve(b, n))
		return -ENOMEM;
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return 0;
}

/* inline: most strings are literals, whose strlen then folds */
static __always_inline int buf_puts(struct buf *b, const char *s)
{
	return buf_put(b, s, strlen(s));
}

/*
 * A number, and a "Name: value" line: the heads of every exchange are built
 * with these, not printf (vfprintf was ~10% of a worker's CPU on the 429 path).
 */
static int buf_u64(struct buf *b, uint64_t v)
{
	char d[20];
	size_t i = sizeof(d);

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10));
	return buf_put(b, d + i, sizeof(d) - i);
}

static int buf_field(struct buf *b, const char *name, const char *value)
{
	return buf_puts(b, name) | buf_put(b, ": ", 2) | buf_puts(b, value) | buf_put(b, "\r\n", 2);
}

__attribute__((format(printf, 2, 3))) static int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (buf_reserve(b, 256))
		return -ENOMEM;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= b->cap - b->len) {
		if (buf_reserve(b, n + 1))
			return -ENOMEM;
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += n;
	return 0;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->off = b->len = b->cap = 0;
}

/* xorshift128+, seeded per worker from getrandom: request ids, not secrets */
static uint64_t rng_s[2];

static uint64_t rng_next(void)
{
	uint64_t s1 = rng_s[0];
	const uint64_t s0 = rng_s[1];

	rng_s[0] = s0;
	s1 ^= s1 << 23;
	rng_s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return rng_s[1] + s0;
}

static void hex64(char *out, uint64_t v)
{
	static const char hx[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--, v >>= 4)
		out[i] = hx[v & 15];
}

static int ci_eq(const char *a, size_t n, const char *lower)
{
	size_t i;

	for (i = 0; i < n && lower[i]; i++) {
		unsigned char c = a[i];
		if (c >= 'A' && c <= 'Z')
			c |= 0x20;
		if (c != (unsigned char)lower[i])
			return 0;
	}
	return i == n && !lower[i];
}

/* --- worker state ---------------------------------------------------------------------- */

enum obj_kind { OBJ_LISTEN = 1, OBJ_CLIENT, OBJ_UPSTREAM, OBJ_SIGNAL };

struct obj {
	uint8_t kind;
	uint8_t dead; /* closed in this batch; freed after it */
	uint8_t kicked; /* on the kick list */
	struct obj *kick_next;
	struct obj *free_next;
};

enum client_state {
	C_HEAD = 0, /* waiting for (the rest of) a request head */
	C_BODY, /* request body arriving (wanted: held; else streamed upstream) */
	C_WAIT, /* request complete; response in progress */
	C_CLOSING, /* flushing the last bytes, then close */
};

struct exchange;

struct client {
	struct obj o;
	int fd;
	enum client_state state;
	struct buf in, out;
	struct sockaddr_storage peer;
	char peer_text[INET6_ADDRSTRLEN]; /* peer as X-Forwarded-For gives it; "" until needed */
	struct gw_exchange *x;
	uint64_t deadline_ms; /* of the current state (header, body, idle, send) */
	uint64_t head_start_ms; /* first byte of the current head */
	unsigned can_read : 1, can_write : 1, rdhup : 1, shut : 1;
	unsigned keep_alive : 1; /* of the current request */
	struct client *prev, *next; /* every client, for the timeout sweep */
};

struct pool;

enum up_state { U_CONNECTING = 0, U_BUSY, U_IDLE, U_HANDSHAKE /* TLS, after the TCP connect */ };

struct upstream {
	struct obj o;
	int fd;
	enum up_state state;
	struct pool *pool;
	struct buf in, out;
	struct gw_exchange *x;
	uint64_t idle_since_ms;
	unsigned can_read : 1, can_write : 1, reused : 1, paused : 1;
	struct upstream *pool_next, *pool_prev;
	struct ssl_st *ssl; /* https upstream (tls.h), else NULL */
};

struct pool {
	char key[GW_HOST_MAX + 16]; /* hostport, "tls:" first for https */
	char host[GW_HOST_MAX]; /* the name the certificate must carry (https) */
	unsigned tls : 1;
	struct sockaddr_storage sa;
	socklen_t salen;
	struct upstream *idle; /* LIFO: the most recently used first (warm, least likely closed) */
	unsigned nidle;
	unsigned active; /* busy connections, for least_conn */
	struct pool *next;
};

struct edit {
	char *name;
	char *value; /* NULL: delete */
};

struct gw_exchange {
	struct client *c; /* NULL once the client left (gw_keep_reading) */
	struct upstream *u;
	struct gw_config *cfg;
	const struct gw_route *route;
	const struct gw_route_ops *ops;
	char *head; /* copy of the request head; req points into it */
	struct lt_http1_msg req;
	char *rhead; /* copy of the response head; resp points into it */
	struct lt_http1_msg resp;
	unsigned resp_parsed : 1, head_sent : 1, answered : 1, want_body : 1, body_held : 1,
		req_done : 1, resp_done : 1, cut : 1, upstream_chosen : 1, retried_stale : 1,
		reframe_chunked : 1, reframe_raw : 1, close_client : 1, finished : 1,
		body_blocked : 1; /* the streamed request body waits for the upstream */
	uint64_t body_max;
	struct buf body; /* held request body (want_body, or small and complete) */
	uint64_t req_left; /* streamed request body bytes still to come (CL) */
	struct lt_http1_chunked req_ch, resp_ch;
	uint64_t resp_left; /* response body bytes to come (CL) */
	/* upstream choice */
	struct gw_url url; /* copied: a provider may be replaced on reload */
	struct gw_url *cfg_url; /* the config's url (runtime pool cache), or NULL */
	char *path; /* upstream path + query */
	struct gw_timeouts t;
	struct edit req_edits[MAX_EDITS];
	unsigned nreq_edits;
	struct edit resp_adds[MAX_EDITS];
	unsigned nresp_adds;
	struct buf resp_lines; /* gw_add_response_lines: whole "Name: value\r\n" lines */
	struct buf reqhead; /* serialized upstream request head, for a retry */
	unsigned retries_left;
	uint64_t connect_deadline_ms, read_deadline_ms, total_deadline_ms, keep_deadline_ms;
	uint32_t keep_ms;
	char *cut_piece;
	size_t cut_len;
	void *user;
	char rid[129];
	char traceparent[56];
	struct gw_stats st;
	struct gw_exchange *prev, *next; /* every live exchange */
};

static struct {
	int epfd, lfd, sfd;
	struct obj listen_obj, signal_obj;
	struct gw_config *cfg;
	const char *config_path;
	struct client *clients;
	unsigned nclients;
	struct gw_exchange *xs;
	struct pool *pools;
	struct obj *kick, **kick_tail;
	struct obj *dead;
	int draining;
	uint64_t drain_deadline_ms;
	unsigned idx;
	volatile struct health_slot *health;
} W;

struct health_slot {
	char key[GW_HOST_MAX + 8 + GW_PATH_MAX];
	uint32_t used;
	uint32_t healthy; /* 1 healthy, 0 not */
	uint32_t latency_us; /* of the last successful check */
	uint32_t fails; /* consecutive */
	uint64_t changed_ms; /* unix ms of the last change of healthy; 0: not checked yet */
};

static void kick(struct obj *o)
{
	if (o->kicked || o->dead)
		return;
	o->kicked = 1;
	o->kick_next = NULL;
	*W.kick_tail = o;
	W.kick_tail = &o->kick_next;
}

static void bury(struct obj *o)
{
	o->dead = 1;
	o->free_next = W.dead;
	W.dead = o;
}

/* --- the exchange API (exchange.h) ---------------------------------------------- */

const char *gw_outcome_name(enum gw_outcome o)
{
	static const char *const n[] = { "completed",	   "answered", "cut",	 "client-gone",
					 "upstream-error", "timeout",  "aborted" };
	return (unsigned)o < sizeof(n) / sizeof(n[0]) ? n[o] : "?";
}

const struct lt_http1_msg *gw_req(const struct gw_exchange *x)
{
	return &x->req;
}

const char *gw_req_header(const struct gw_exchange *x, const char *lower, size_t *len)
{
	const struct lt_http1_header *h = lt_http1_find(&x->req, lower);

	if (!h)
		return NULL;
	if (len)
		*len = h->value_len;
	return h->value;
}

const struct sockaddr_storage *gw_peer(const struct gw_exchange *x)
{
	static struct sockaddr_storage none;

	return x->c ? &x->c->peer : &none;
}

const struct gw_route *gw_route(const struct gw_exchange *x)
{
	return x->route;
}

const struct gw_config *gw_config_of(const struct gw_exchange *x)
{
	return x->cfg;
}

const char *gw_request_id(const struct gw_exchange *x)
{
	return x->rid;
}

const struct lt_http1_msg *gw_resp(const struct gw_exchange *x)
{
	return x->resp_parsed ? &x->resp : NULL;
}

const struct gw_stats *gw_stats(const struct gw_exchange *x)
{
	return &x->st;
}

void gw_set_user(struct gw_exchange *x, void *p)
{
	x->user = p;
}

void *gw_user(const struct gw_exchange *x)
{
	return x->user;
}

void gw_want_body(struct gw_exchange *x, size_t max_bytes)
{
	x->want_body = 1;
	x->body_max = max_bytes;
}

int gw_set_body(struct gw_exchange *x, const char *body, size_t len)
{
	x->body.off = x->body.len = 0;
	if (buf_put(&x->body, body, len))
		return -ENOMEM;
	x->body_held = 1;
	return 0;
}

static int is_reserved_req_header(const char *name, size_t n)
{
	return lt_http1_is_hop(NULL, name, n) || ci_eq(name, n, "host") ||
	       ci_eq(name, n, "content-length");
}

static int add_edit(struct edit *e, unsigned *n, const char *name, const char *value)
{
	if (*n >= MAX_EDITS)
		return -E2BIG;
	e[*n].name = strdup(name);
	e[*n].value = value ? strdup(value) : NULL;
	if (!e[*n].name || (value && !e[*n].value)) {
		free(e[*n].name);
		free(e[*n].value);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

static int valid_field(const char *name, const char *value)
{
	static const char tch[] = "!#$%&'*+-.^_`|~";

	if (!*name)
		return 0;
	for (const char *s = name; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(tch, *s)))
			return 0;
	for (const char *s = value ? value : ""; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return 0;
	return 1;
}

int gw_set_request_header(struct gw_exchange *x, const char *name, const char *value)
{
	if (!valid_field(name, value) || is_reserved_req_header(name, strlen(name)))
		return -EINVAL;
	return add_edit(x->req_edits, &x->nreq_edits, name, value);
}

int gw_del_request_header(struct gw_exchange *x, const char *name)
{
	if (!valid_field(name, NULL) || is_reserved_req_header(name, strlen(name)))
		return -EINVAL;
	return add_edit(x->req_edits, &x->nreq_edits, name, NULL);
}

int gw_add_response_header(struct gw_exchange *x, const char *name, const char *value)
{
	if (!valid_field(name, value) || !value)
		return -EINVAL;
	return add_edit(x->resp_adds, &x->nresp_adds, name, value);
}

/*
 * What a byte may be in a response field line (RFC 9110): FC_TCHAR a field
 * name's byte, FC_CTL a control byte no value may carry (HTAB may). A table,
 * not a search of the tchar set per byte: every answered request's RateLimit
 * lines pass through gw_add_response_lines (it was 4% of a worker on the 429
 * path). Ranges only, none overlapping (-Woverride-init).
 */
enum { FC_TCHAR = 1, FC_CTL = 2 };
static const uint8_t field_class[256] = {
	[0 ... 8] = FC_CTL,	  [0x0a ... 0x1f] = FC_CTL,  [0x7f] = FC_CTL,
	['0' ... '9'] = FC_TCHAR, ['A' ... 'Z'] = FC_TCHAR,  ['a' ... 'z'] = FC_TCHAR,
	['!'] = FC_TCHAR,	  ['#' ... '\''] = FC_TCHAR, ['*'] = FC_TCHAR,
	['+'] = FC_TCHAR,	  ['-'] = FC_TCHAR,	     ['.'] = FC_TCHAR,
	['^'] = FC_TCHAR,	  ['_'] = FC_TCHAR,	     ['`'] = FC_TCHAR,
	['|'] = FC_TCHAR,	  ['~'] = FC_TCHAR,
};

int gw_add_response_lines(struct gw_exchange *x, const char *lines, size_t len)
{
	size_t i = 0, n;
	const char *cr;
	uint64_t w;

	/* whole lines, each "token: value" with no control byte but its CRLF */
	while (i < len) {
		for (n = i; n < len && (field_class[(unsigned char)lines[n]] & FC_TCHAR); n++)
			;
		if (n == i || n == len || lines[n] != ':')
			return -EINVAL;
		i = n + 1;
		cr = memchr(lines + i, '\r', len - i);
		if (!cr || cr + 1 == lines + len || cr[1] != '\n')
			return -EINVAL;
		/* the value up to its CR: 8 bytes at a time, then the tail */
		for (n = cr - lines; i + 8 <= n; i += 8) {
			memcpy(&w, lines + i, 8);
			if (lt_http1_ctl_in_word(w))
				break;
		}
		for (; i < n; i++)
			if (field_class[(unsigned char)lines[i]] & FC_CTL)
				return -EINVAL;
		i = n + 2;
	}
	return buf_put(&x->resp_lines, lines, len) ? -ENOMEM : 0;
}

void gw_keep_reading(struct gw_exchange *x, uint32_t ms)
{
	x->keep_ms = ms;
}

int gw_cut_with(struct gw_exchange *x, const char *data, size_t len)
{
	free(x->cut_piece);
	x->cut_piece = malloc(len ? len : 1);
	if (!x->cut_piece)
		return -ENOMEM;
	memcpy(x->cut_piece, data, len);
	x->cut_len = len;
	return 0;
}

static int set_path(struct gw_exchange *x, const char *path)
{
	char rest[8192];
	size_t bl = strlen(x->url.base_path), pl;
	int r;

	free(x->path);
	x->path = NULL;
	if (!path) {
		r = gw_route_upstream_path(x->route, x->req.target, x->req.target_len, rest,
					   sizeof(rest));
		if (r < 0)
			return r;
		path = rest;
	}
	pl = strlen(path);
	if (bl + pl >= 8192)
		return -E2BIG;
	/* base path + path, once per request: no printf */
	x->path = malloc(bl + pl + 1);
	if (!x->path)
		return -ENOMEM;
	memcpy(x->path, x->url.base_path, bl);
	memcpy(x->path + bl, path, pl + 1);
	return 0;
}

static int add_upstream_headers(struct gw_exchange *x, const char *const *h)
{
	for (; h && h[0] && h[1]; h += 2) {
		int r = gw_set_request_header(x, h[0], h[1]);
		if (r)
			return r;
	}
	return 0;
}

int gw_set_upstream(struct gw_exchange *x, const struct gw_upstream_req *u)
{
	char why[300];
	int r = gw_url_parse(u->base_url, &x->url, 0, why, sizeof(why));

	if (r) {
		log_warn_rl("route %s: %s", x->route->name, why);
		return r;
	}
	x->cfg_url = NULL;
	if ((r = set_path(x, u->path)) || (r = add_upstream_headers(x, u->headers)))
		return r;
	if (u->connect_timeout_ms)
		x->t.connect_ms = u->connect_timeout_ms;
	if (u->read_timeout_ms)
		x->t.read_ms = u->read_timeout_ms;
	if (u->total_timeout_ms)
		x->t.total_ms = u->total_timeout_ms;
	x->upstream_chosen = 1;
	return 0;
}

int gw_use_provider(struct gw_exchange *x, const struct gw_provider *p, const char *path)
{
	char bearer[4200];
	int r;

	x->url = p->url;
	x->cfg_url = (struct gw_url *)&p->url;
	if ((r = set_path(x, path)))
		return r;
	x->t = p->timeouts;
	if (p->api_key) {
		switch (p->kind) {
		case GW_PROV_OPENAI:
		case GW_PROV_QWEN:
			snprintf(bearer, sizeof(bearer), "Bearer %s", p->api_key);
			r = gw_set_request_header(x, "Authorization", bearer);
			explicit_bzero(bearer, sizeof(bearer));
			break;
		case GW_PROV_GEMINI:
			r = gw_set_request_header(x, "x-goog-api-key", p->api_key);
			break;
		case GW_PROV_ANTHROPIC:
			r = gw_set_request_header(x, "x-api-key", p->api_key);
			if (!r && !lt_http1_find(&x->req, "anthropic-version"))
				r = gw_set_request_header(x, "anthropic-version", "2023-06-01");
			break;
		}
		if (r)
			return r;
	}
	x->upstream_chosen = 1;
	return 0;
}

/* --- answers --------------------------------------------------------------------- */

static const char *reason(unsigned s)
{
	switch (s) {
	case 200:
		return "OK";
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
	case 413:
		return "Content Too Large";
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
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Status";
}

static void client_close(struct client *c);
static void client_flush(struct client *c);

/*
 * The wait a local 429 announces, ms: its retry-after-ms (exact, what the
 * OpenAI SDKs read first), else Retry-After (seconds), else 1 s.
 */
static uint64_t answer_wait_ms(const struct gw_exchange *x)
{
	uint64_t ms = 1000, v;
	char *end;

	for (unsigned i = 0; i < x->nresp_adds; i++) {
		const struct edit *e = &x->resp_adds[i];
		int in_ms = !strcasecmp(e->name, "retry-after-ms");

		if (!e->value || (!in_ms && strcasecmp(e->name, "retry-after")))
			continue;
		errno = 0;
		v = strtoull(e->value, &end, 10);
		if (errno || end == e->value || *end)
			continue;
		if (in_ms)
			return v;
		ms = v > UINT64_MAX / 1000 ? UINT64_MAX : v * 1000;
	}
	return ms;
}

int gw_answer(struct gw_exchange *x, unsigned status, const char *ctype, const char *body,
	      size_t len)
{
	struct client *c = x->c;
	int r = 0;

	if (x->head_sent || x->answered)
		return -EALREADY;
	x->answered = 1;
	x->st.status = status;
	if (!c)
		return GW_ANSWERED;
	/* every 429 the gateway itself answers, on any route, counts against the client */
	if (status == 429)
		gw_esc_on_429(&c->peer, x->st.start_ns, answer_wait_ms(x));
	/* a request whose body was not read cannot be followed by another on this connection */
	if (!x->req_done || W.draining || !c->keep_alive)
		x->close_client = 1;
	r |= buf_put(&c->out, "HTTP/1.1 ", 9);
	r |= buf_u64(&c->out, status);
	r |= buf_put(&c->out, " ", 1);
	r |= buf_puts(&c->out, reason(status));
	r |= buf_put(&c->out, "\r\n", 2);
	if (ctype)
		r |= buf_field(&c->out, "Content-Type", ctype);
	r |= buf_put(&c->out, "Content-Length: ", 16);
	r |= buf_u64(&c->out, len);
	r |= buf_put(&c->out, "\r\n", 2);
	r |= buf_field(&c->out, "X-Request-Id", x->rid);
	for (unsigned i = 0; i < x->nresp_adds; i++)
		r |= buf_field(&c->out, x->resp_adds[i].name, x->resp_adds[i].value);
	if (x->resp_lines.len)
		r |= buf_put(&c->out, x->resp_lines.p, x->resp_lines.len);
	if (x->close_client)
		r |= buf_puts(&c->out, "Connection: close\r\n");
	r |= buf_puts(&c->out, "\r\n");
	if (len && !(x->req.method_len == 4 && !memcmp(x->req.method, "HEAD", 4)))
		r |= buf_put(&c->out, body, len);
	x->head_sent = 1;
	return r ? -ENOMEM : GW_ANSWERED;
}

int gw_answer_problem(struct gw_exchange *x, unsigned status, const char *type, const char *title,
		      const char *detail)
{
	json_t *j = lt_problem_json(status, type, title, NULL, detail);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int r;

	if (s)
		r = gw_answer(x, status, "application/problem+json", s, strlen(s));
	else
		r = gw_answer(x, status, "application/problem+json", lt_problem_internal,
			      strlen(lt_problem_internal));
	free(s);
	json_decref(j);
	return r;
}

/* An answer before any exchange exists (malformed head, too many connections). */
static void client_answer_raw(struct client *c, unsigned status, const char *type,
			      const char *detail)
{
	json_t *j = lt_problem_json(status, type, reason(status), NULL, detail);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	const char *b = s ? s : lt_problem_internal;

	buf_printf(&c->out,
		   "HTTP/1.1 %u %s\r\nContent-Type: application/problem+json\r\n"
		   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		   status, reason(status), strlen(b), b);
	free(s);
	json_decref(j);
	c->state = C_CLOSING;
	c->deadline_ms = coarse_ms() + 2000;
	client_flush(c);
}

/* --- pools and upstream connections --------------------------------------------- */

static struct pool *pool_get(struct gw_url *url)
{
	struct pool *p;

	if (url->rt_pool)
		return url->rt_pool;
	char key[sizeof(p->key)];

	snprintf(key, sizeof(key), "%s%s", url->tls ? "tls:" : "", url->hostport);
	for (p = W.pools; p; p = p->next)
		if (!strcmp(p->key, key))
			break;
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return NULL;
		memcpy(p->key, key, sizeof(key));
		p->tls = url->tls;
		snprintf(p->host, sizeof(p->host), "%s", url->host);
		if (url->sa.family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&p->sa;
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(url->port);
			memcpy(&s6->sin6_addr, url->sa.addr, 16);
			p->salen = sizeof(*s6);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&p->sa;
			s4->sin_family = AF_INET;
			s4->sin_port = htons(url->port);
			memcpy(&s4->sin_addr, url->sa.addr, 4);
			p->salen = sizeof(*s4);
		}
		p->next = W.pools;
		W.pools = p;
	}
	url->rt_pool = p;
	return p;
}

static void pool_remove(struct upstream *u)
{
	struct pool *p = u->pool;

	if (u->pool_prev)
		u->pool_prev->pool_next = u->pool_next;
	else
		p->idle = u->pool_next;
	if (u->pool_next)
		u->pool_next->pool_prev = u->pool_prev;
	u->pool_next = u->pool_prev = NULL;
	p->nidle--;
}

static void upstream_close(struct upstream *u)
{
	if (u->o.dead)
		return;
	if (u->state == U_IDLE)
		pool_remove(u);
	else if (u->pool && u->pool->active)
		u->pool->active--;
	if (u->ssl) {
		gw_tls_free(u->ssl); /* no close_notify: the request is over either way */
		u->ssl = NULL;
	}
	close(u->fd);
	u->fd = -1;
	u->x = NULL;
	bury(&u->o);
}

static void pool_put(struct upstream *u)
{
	struct pool *p = u->pool;

	if (p->active)
		p->active--;
	u->state = U_IDLE;
	u->x = NULL;
	u->in.off = u->in.len = 0;
	u->out.off = u->out.len = 0;
	u->paused = 0;
	u->idle_since_ms = coarse_ms();
	u->pool_prev = NULL;
	u->pool_next = p->idle;
	if (p->idle)
		p->idle->pool_prev = u;
	p->idle = u;
	p->nidle++;
}

static struct upstream *upstream_new(struct pool *p, int *err)
{
	struct upstream *u = calloc(1, sizeof(*u));
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
	int one = 1;

	if (!u) {
		*err = -ENOMEM;
		return NULL;
	}
	u->o.kind = OBJ_UPSTREAM;
	u->pool = p;
	u->fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		*err = -errno;
		free(u);
		return NULL;
	}
	setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(u->fd, (struct sockaddr *)&p->sa, p->salen) && errno != EINPROGRESS) {
		*err = -errno;
		close(u->fd);
		free(u);
		return NULL;
	}
	if (p->tls) {
		char why[256];
		u->ssl = gw_tls_new(W.cfg->tls_ca_file, p->host, u->fd, why, sizeof(why));
		if (!u->ssl) {
			log_warn_rl("upstream %s: %s", p->key, why);
			*err = -EPROTO;
			close(u->fd);
			free(u);
			return NULL;
		}
	}
	ev.data.ptr = u;
	if (epoll_ctl(W.epfd, EPOLL_CTL_ADD, u->fd, &ev)) {
		*err = -errno;
		gw_tls_free(u->ssl);
		close(u->fd);
		free(u);
		return NULL;
	}
	u->state = U_CONNECTING;
	p->active++;
	return u;
}

/* --- exchange life ----------------------------------------------------------------- */

static void x_unlink(struct gw_exchange *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		W.xs = x->next;
	if (x->next)
		x->next->prev = x->prev;
}

/*
 * Freed exchanges kept for the next requests, with their serialised-head and
 * response-lines buffers: an exchange is 5 KiB plus two 4 KiB buffers, and
 * allocating them per request was ~5% of a worker, brk calls included
 * (worker_run sets the trim threshold for the rest).
 */
#define X_SPARE_MAX 64
#ifdef __SANITIZE_ADDRESS__
/* a spare is poisoned: a use after x_free is still reported under ASan */
#include <sanitizer/asan_interface.h>
#define X_POISON(x) ASAN_POISON_MEMORY_REGION((x), sizeof(*(x)))
#define X_UNPOISON(x) ASAN_UNPOISON_MEMORY_REGION((x), sizeof(*(x)))
#else
#define X_POISON(x) ((void)(x))
#define X_UNPOISON(x) ((void)(x))
#endif
static struct gw_exchange *x_spare[X_SPARE_MAX];
static unsigned x_nspare;

static struct gw_exchange *x_alloc(void)
{
	struct gw_exchange *x;
	struct buf reqhead, resp_lines;

	if (!x_nspare)
		return calloc(1, sizeof(*x));
	x = x_spare[--x_nspare];
	X_UNPOISON(x);
	reqhead = x->reqhead;
	resp_lines = x->resp_lines;
	/*
	 * Zeroed but for the two header arrays (3 KiB of the ~6): no slot past
	 * nheaders is read, client_start and the response parser write the rest.
	 */
	memset(x, 0, offsetof(struct gw_exchange, req.headers));
	memset(&x->req.body, 0,
	       offsetof(struct gw_exchange, resp.headers) - offsetof(struct gw_exchange, req.body));
	memset(&x->resp.body, 0, sizeof(*x) - offsetof(struct gw_exchange, resp.body));
	x->reqhead = reqhead;
	x->resp_lines = resp_lines;
	return x;
}

static void x_free(struct gw_exchange *x)
{
	for (unsigned i = 0; i < x->nreq_edits; i++) {
		free(x->req_edits[i].name);
		if (x->req_edits[i].value) {
			explicit_bzero(x->req_edits[i].value, strlen(x->req_edits[i].value));
			free(x->req_edits[i].value);
		}
	}
	for (unsigned i = 0; i < x->nresp_adds; i++) {
		free(x->resp_adds[i].name);
		free(x->resp_adds[i].value);
	}
	if (x->reqhead.p)
		explicit_bzero(x->reqhead.p, x->reqhead.len);
	buf_free(&x->body);
	free(x->head);
	free(x->rhead);
	free(x->path);
	free(x->cut_piece);
	gw_config_put(x->cfg);
	/* a buffer that grew past the usual head stays out of the spares */
	if (x_nspare < X_SPARE_MAX && x->reqhead.cap <= 16384 && x->resp_lines.cap <= 16384) {
		x->reqhead.off = x->reqhead.len = 0;
		x->resp_lines.off = x->resp_lines.len = 0;
		x_spare[x_nspare++] = x;
		X_POISON(x);
		return;
	}
	buf_free(&x->reqhead);
	buf_free(&x->resp_lines);
	free(x);
}

static void client_next_request(struct client *c);

/*
 * Ends an exchange: on_done once, the upstream back to its pool when it can
 * carry another request, the client to its next request or closed.
 */
static void x_finish(struct gw_exchange *x, enum gw_outcome out)
{
	struct client *c = x->c;
	struct upstream *u = x->u;

	if (x->finished)
		return;
	x->finished = 1;
	x->st.end_ns = now_ns();
	gw_stats_request(x->route, x->st.status, x->st.end_ns - x->st.start_ns, out);
	if (x->ops && x->ops->on_done)
		x->ops->on_done(x, out);
	if (u) {
		int reuse = out == GW_OUT_COMPLETED && x->resp_done && x->req_done &&
			    x->resp.keep_alive && !buf_avail(&u->in) && !buf_avail(&u->out) &&
			    u->state == U_BUSY && !W.draining;
		u->x = NULL;
		if (reuse)
			pool_put(u);
		else
			upstream_close(u);
		x->u = NULL;
	}
	x_unlink(x);
	if (c) {
		c->x = NULL;
		if (out != GW_OUT_COMPLETED && out != GW_OUT_ANSWERED && out != GW_OUT_CUT)
			x->close_client = 1;
		if (x->close_client || !c->keep_alive || !x->req_done || W.draining) {
			c->state = C_CLOSING;
			c->deadline_ms = coarse_ms() + (x->cfg->client_send_timeout_ms);
			client_flush(c);
		} else {
			client_next_request(c);
		}
	}
	x_free(x);
}

/* An upstream failure: retry (stale pooled connection, or idempotent), or answer 502/504. */
static void x_fail(struct gw_exchange *x, enum gw_outcome out, const char *why);

/* --- request forwarding ------------------------------------------------------------ */

static int edit_overrides(const struct gw_exchange *x, const char *name, size_t n)
{
	for (unsigned i = 0; i < x->nreq_edits; i++)
		if (strlen(x->req_edits[i].name) == n &&
		    !strncasecmp(x->req_edits[i].name, name, n))
			return 1;
	return 0;
}

static int build_request(struct gw_exchange *x)
{
	struct buf *b = &x->reqhead;
	const struct lt_http1_msg *m = &x->req;
	/*
	 * Our own services learn the client's address (X-Forwarded-For, the
	 * client's list with its address appended, as nginx's
	 * $proxy_add_x_forwarded_for). A provider is a third party: it gets the
	 * client's field untouched and never the address.
	 */
	int xff = x->route && x->route->service && x->c;
	const char *addr = "";
	int r = 0;

	if (xff) {
		/* once per connection: inet_ntop is a sprintf per octet */
		char *t = x->c->peer_text;
		const struct sockaddr_storage *ss = &x->c->peer;
		if (!t[0] && ss->ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, t,
				  sizeof(x->c->peer_text));
		else if (!t[0])
			inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, t,
				  sizeof(x->c->peer_text));
		addr = t;
	}
	b->off = b->len = 0;
	r |= buf_put(b, m->method, m->method_len);
	r |= buf_puts(b, " ");
	r |= buf_puts(b, x->path);
	r |= buf_puts(b, " HTTP/1.1\r\nHost: ");
	r |= buf_puts(b, x->url.hostport);
	r |= buf_puts(b, "\r\n");
	for (unsigned i = 0; i < m->nheaders; i++) {
		const struct lt_http1_header *h = &m->headers[i];
		if ((int)i == m->host_idx || lt_http1_is_hop(m, h->name, h->name_len) ||
		    ci_eq(h->name, h->name_len, "content-length") ||
		    ci_eq(h->name, h->name_len, "expect") ||
		    ci_eq(h->name, h->name_len, "x-request-id") ||
		    ci_eq(h->name, h->name_len, "traceparent") ||
		    (xff && ci_eq(h->name, h->name_len, "x-forwarded-for")) ||
		    (x->nreq_edits && edit_overrides(x, h->name, h->name_len)))
			continue;
		r |= buf_put(b, h->name, h->name_len);
		r |= buf_puts(b, ": ");
		r |= buf_put(b, h->value, h->value_len);
		r |= buf_puts(b, "\r\n");
	}
	for (unsigned i = 0; i < x->nreq_edits; i++) {
		const struct edit *e = &x->req_edits[i];
		int later = 0;
		if (!e->value)
			continue;
		/* the last set of a name wins */
		for (unsigned k = i + 1; k < x->nreq_edits; k++)
			later |= !strcasecmp(x->req_edits[k].name, e->name);
		if (later)
			continue;
		r |= buf_field(b, e->name, e->value);
	}
	if (xff) {
		r |= buf_puts(b, "X-Forwarded-For: ");
		for (unsigned i = 0; i < m->nheaders; i++) {
			const struct lt_http1_header *h = &m->headers[i];
			if (!ci_eq(h->name, h->name_len, "x-forwarded-for") || !h->value_len)
				continue;
			r |= buf_put(b, h->value, h->value_len);
			r |= buf_puts(b, ", ");
		}
		r |= buf_puts(b, addr);
		r |= buf_put(b, "\r\n", 2);
	}
	r |= buf_field(b, "X-Request-Id", x->rid);
	r |= buf_field(b, "traceparent", x->traceparent);
	if (x->body_held || m->body == LT_HTTP1_BODY_LENGTH) {
		r |= buf_put(b, "Content-Length: ", 16);
		r |= buf_u64(b, x->body_held ? buf_avail(&x->body) : m->content_length);
		r |= buf_put(b, "\r\n", 2);
	} else if (m->body == LT_HTTP1_BODY_CHUNKED) {
		r |= buf_puts(b, "Transfer-Encoding: chunked\r\n");
	}
	r |= buf_puts(b, "\r\n");
	return r ? -ENOMEM : 0;
}

static void upstream_flush(struct upstream *u);

/* Picks a base URL of the route's service: healthy first, by the service's balance. */
static struct gw_url *pick_service_url(const struct gw_route *r, const struct gw_url *avoid)
{
	struct gw_service *s = (struct gw_service *)r->service;
	struct gw_url *best = NULL;
	unsigned best_active = ~0u;

	if (!s || !s->nurls)
		return NULL;
	for (unsigned k = 0; k < s->nurls; k++) {
		unsigned i = (s->rr + k) % s->nurls;
		struct gw_url *u = &s->urls[i];
		if (u->health_slot >= 0 && W.health && !W.health[u->health_slot].healthy)
			continue;
		if (u == avoid && s->nurls > 1)
			continue; /* a retry goes to another URL */
		if (s->balance == GW_BAL_ROUND_ROBIN) {
			best = u;
			break;
		}
		struct pool *p = pool_get(u);
		unsigned a = p ? p->active : 0;
		if (a < best_active) {
			best = u;
			best_active = a;
		}
	}
	s->rr++;
	return best;
}

static void x_connect(struct gw_exchange *x, int fresh);

/* Chooses the upstream (ops, or the route's service) and sends the request. */
static void x_start_upstream(struct gw_exchange *x, unsigned attempt)
{
	int r;

	if (x->ops && x->ops->pick_upstream && (attempt || !x->upstream_chosen)) {
		r = x->ops->pick_upstream(x, attempt);
		if (r == GW_ANSWERED || x->answered) {
			x_finish(x, GW_OUT_ANSWERED);
			return;
		}
		if (r < 0) {
			gw_answer_problem(x, 500, "internal", "Internal Server Error",
					  "the route failed to choose an upstream");
			x_finish(x, GW_OUT_ANSWERED);
			return;
		}
	}
	if (!x->upstream_chosen || (attempt && x->route->service)) {
		struct gw_url *u = pick_service_url(x->route, attempt ? x->cfg_url : NULL);
		if (!u) {
			gw_answer_problem(x, 503, "no-upstream", "Service Unavailable",
					  "no healthy upstream for this route");
			x_finish(x, GW_OUT_UPSTREAM_ERROR);
			return;
		}
		x->url = *u;
		x->cfg_url = u;
		if ((r = set_path(x, NULL))) {
			gw_answer_problem(x, 414, "uri-too-long", "URI Too Long",
					  "the upstream path is too long");
			x_finish(x, GW_OUT_ANSWERED);
			return;
		}
		x->upstream_chosen = 1;
	}
	if (build_request(x)) {
		gw_answer_problem(x, 500, "internal", "Internal Server Error", "out of memory");
		x_finish(x, GW_OUT_ANSWERED);
		return;
	}
	x_connect(x, 0);
}

static void x_connect(struct gw_exchange *x, int fresh)
{
	struct pool *p = x->cfg_url ? pool_get(x->cfg_url) : NULL;
	struct upstream *u = NULL;
	uint64_t now = coarse_ms();
	int err = 0;

	if (!p) {
		struct gw_url tmp = x->url;
		tmp.rt_pool = NULL;
		p = pool_get(&tmp);
	}
	if (!p) {
		x_fail(x, GW_OUT_UPSTREAM_ERROR, "out of memory");
		return;
	}
	x->st.attempts++;
	while (!fresh && p->idle) {
		u = p->idle;
		pool_remove(u);
		if (now - u->idle_since_ms < x->cfg->upstream_idle_ms) {
			u->reused = 1;
			p->active++;
			break;
		}
		u->state = U_BUSY; /* not in the pool any more */
		p->active++;
		upstream_close(u);
		u = NULL;
	}
	if (!u) {
		u = upstream_new(p, &err);
		if (!u) {
			x_fail(x, GW_OUT_UPSTREAM_ERROR, strerror(-err));
			return;
		}
		u->reused = 0;
		x->connect_deadline_ms = now + x->t.connect_ms;
	} else {
		u->state = U_BUSY;
		x->connect_deadline_ms = 0;
	}
	u->x = x;
	x->u = u;
	if (buf_put(&u->out, x->reqhead.p + x->reqhead.off, buf_avail(&x->reqhead)) ||
	    (x->body_held && buf_put(&u->out, x->body.p + x->body.off, buf_avail(&x->body)))) {
		x_fail(x, GW_OUT_UPSTREAM_ERROR, "out of memory");
		return;
	}
	if (x->body_held)
		x->st.req_body_bytes = buf_avail(&x->body);
	x->st.upstream_ns = now_ns();
	x->read_deadline_ms = now + x->t.read_ms;
	if (u->state == U_BUSY || u->can_write)
		upstream_flush(u);
	/* the client's streamed body may be waiting for an upstream */
	if (x->c && x->body_blocked) {
		x->body_blocked = 0;
		kick(&x->c->o);
	}
}

static void x_fail(struct gw_exchange *x, enum gw_outcome out, const char *why)
{
	struct upstream *u = x->u;
	int idem = !!(gw_method_bit(x->req.method, x->req.method_len) & GW_M_IDEMPOTENT);
	int replayable =
		x->req_done && (x->body_held || x->req.body == LT_HTTP1_BODY_NONE ||
				(x->req.body == LT_HTTP1_BODY_LENGTH && !x->req.content_length));

	if (u) {
		u->x = NULL;
		upstream_close(u);
		x->u = NULL;
	}
	if (!x->head_sent && !x->st.first_byte_ns && replayable && x->c) {
		/* a pooled connection the upstream had closed: once, on a fresh one */
		if (u && u->reused && !x->retried_stale && out == GW_OUT_UPSTREAM_ERROR) {
			x->retried_stale = 1;
			x_connect(x, 1);
			return;
		}
		if (idem && x->retries_left) {
			x->retries_left--;
			log_debug("retrying %s on another upstream: %s", x->rid, why);
			x_start_upstream(x, x->st.attempts);
			return;
		}
	}
	log_warn_rl("upstream %s failed for request %s: %s", x->url.hostport, x->rid, why);
	if (!x->head_sent && x->c) {
		if (out == GW_OUT_TIMEOUT)
			gw_answer_problem(x, 504, "upstream-timeout", "Gateway Timeout", why);
		else
			gw_answer_problem(x, 502, "upstream-error", "Bad Gateway", why);
		x->answered = 0; /* the outcome below says why */
	} else if (x->c) {
		x->close_client = 1; /* a truncated response: the client must see the close */
	}
	x_finish(x, out);
}

/* --- response relay ---------------------------------------------------------------- */

static int client_out_piece(struct gw_exchange *x, const char *d, size_t n)
{
	struct client *c = x->c;
	char hdr[24];
	int r = 0;

	if (!c || !n)
		return 0;
	if (x->reframe_chunked) {
		int hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
		r |= buf_put(&c->out, hdr, hl);
		r |= buf_put(&c->out, d, n);
		r |= buf_put(&c->out, "\r\n", 2);
	} else {
		r |= buf_put(&c->out, d, n);
	}
	return r;
}

/* One decoded piece of the response: observer first, then (re-framed) out. */
static int relay_data(struct gw_exchange *x, const char *d, size_t n)
{
	x->st.resp_body_bytes += n;
	if (x->ops && x->ops->on_response_data && !x->cut) {
		int v = x->ops->on_response_data(x, d, n);
		if (v == GW_CUT) {
			x->cut = 1;
			return 1;
		}
		if (v == GW_REPLACED)
			return 0;
	}
	if (x->reframe_chunked || x->reframe_raw)
		return client_out_piece(x, d, n) ? -ENOMEM : 0;
	return 0;
}

int gw_emit(struct gw_exchange *x, const char *data, size_t len)
{
	if (!len || !x->c)
		return 0;
	return client_out_piece(x, data, len) ? -ENOMEM : 0;
}

static int send_response_head(struct gw_exchange *x)
{
	struct client *c = x->c;
	const struct lt_http1_msg *m = &x->resp;
	int r = 0, observed = x->ops && x->ops->on_response_data;

	if (!c)
		return 0;
	if (m->body != LT_HTTP1_BODY_NONE) {
		if (x->req.minor == 0 && (m->body == LT_HTTP1_BODY_CHUNKED || observed)) {
			x->reframe_raw =
				1; /* HTTP/1.0 takes no chunks: de-chunk, close at the end */
			x->close_client = 1;
		} else if (observed || m->body == LT_HTTP1_BODY_CLOSE) {
			x->reframe_chunked = 1;
		}
	}
	if (!c->keep_alive || W.draining)
		x->close_client = 1;
	r |= buf_put(&c->out, "HTTP/1.1 ", 9);
	r |= buf_u64(&c->out, m->status);
	r |= buf_put(&c->out, " ", 1);
	r |= buf_put(&c->out, m->reason, m->reason_len);
	r |= buf_puts(&c->out, "\r\n");
	for (unsigned i = 0; i < m->nheaders; i++) {
		const struct lt_http1_header *h = &m->headers[i];
		if (lt_http1_is_hop(m, h->name, h->name_len) ||
		    ci_eq(h->name, h->name_len, "x-request-id") ||
		    ((x->reframe_chunked || x->reframe_raw) &&
		     ci_eq(h->name, h->name_len, "content-length")))
			continue;
		r |= buf_put(&c->out, h->name, h->name_len);
		r |= buf_puts(&c->out, ": ");
		r |= buf_put(&c->out, h->value, h->value_len);
		r |= buf_puts(&c->out, "\r\n");
	}
	for (unsigned i = 0; i < x->nresp_adds; i++)
		r |= buf_field(&c->out, x->resp_adds[i].name, x->resp_adds[i].value);
	if (x->resp_lines.len)
		r |= buf_put(&c->out, x->resp_lines.p, x->resp_lines.len);
	r |= buf_field(&c->out, "X-Request-Id", x->rid);
	if (x->reframe_chunked)
		r |= buf_puts(&c->out, "Transfer-Encoding: chunked\r\n");
	else if (!x->reframe_raw && m->body == LT_HTTP1_BODY_CHUNKED)
		r |= buf_puts(&c->out, "Transfer-Encoding: chunked\r\n");
	if (x->close_client)
		r |= buf_puts(&c->out, "Connection: close\r\n");
	else if (x->req.minor == 0)
		r |= buf_puts(&c->out, "Connection: keep-alive\r\n");
	r |= buf_puts(&c->out, "\r\n");
	x->head_sent = 1;
	x->st.status = m->status;
	return r ? -ENOMEM : 0;
}

static void x_end_response(struct gw_exchange *x)
{
	struct client *c = x->c;

	x->resp_done = 1;
	x->st.resp_complete = 1;
	if (c && x->reframe_chunked)
		buf_puts(&c->out, "0\r\n\r\n");
	if (!c) {
		x_finish(x, GW_OUT_CLIENT_GONE);
		return;
	}
	x_finish(x, GW_OUT_COMPLETED);
}

static void x_do_cut(struct gw_exchange *x)
{
	struct client *c = x->c;

	if (c) {
		if (x->cut_piece && x->cut_len) {
			if (x->reframe_chunked || x->reframe_raw)
				client_out_piece(x, x->cut_piece, x->cut_len);
			else
				buf_put(&c->out, x->cut_piece, x->cut_len);
		}
		if (x->reframe_chunked)
			buf_puts(&c->out, "0\r\n\r\n");
		else
			x->close_client = 1; /* a passed-through length cannot be honoured */
	}
	if (x->u) {
		upstream_close(x->u);
		x->u = NULL;
	}
	x_finish(x, c ? GW_OUT_CUT : GW_OUT_CLIENT_GONE);
}

/*
 * Moves response body bytes from u->in to the client (as framed, or
 * re-framed) and through the observer. Returns 1 when the exchange ended.
 */
static int relay_body(struct gw_exchange *x)
{
	struct upstream *u = x->u;
	struct client *c = x->c;

	while (buf_avail(&u->in)) {
		const char *p = u->in.p + u->in.off;
		size_t n = buf_avail(&u->in);
		int pass = !x->reframe_chunked && !x->reframe_raw;

		switch (x->resp.body) {
		case LT_HTTP1_BODY_LENGTH:
		case LT_HTTP1_BODY_CLOSE: {
			if (x->resp.body == LT_HTTP1_BODY_LENGTH && n > x->resp_left)
				n = x->resp_left;
			if (relay_data(x, p, n) > 0) {
				x_do_cut(x);
				return 1;
			}
			if (pass && c && buf_put(&c->out, p, n))
				goto nomem;
			u->in.off += n;
			if (x->resp.body == LT_HTTP1_BODY_LENGTH) {
				x->resp_left -= n;
				if (!x->resp_left) {
					x_end_response(x);
					return 1;
				}
			}
			break;
		}
		case LT_HTTP1_BODY_CHUNKED: {
			const char *d;
			size_t dl, used;
			int r = lt_http1_chunked_scan(&x->resp_ch, p, n, &used, &d, &dl);
			if (r < 0) {
				x_fail(x, GW_OUT_UPSTREAM_ERROR, lt_http1_strerror(r));
				return 1;
			}
			if (r == 1 && relay_data(x, d, dl) > 0) {
				x_do_cut(x);
				return 1;
			}
			if (pass && c && buf_put(&c->out, p, used))
				goto nomem;
			u->in.off += used;
			if (r == 2) {
				x_end_response(x);
				return 1;
			}
			break;
		}
		default:
			x_end_response(x);
			return 1;
		}
	}
	if (c)
		client_flush(c);
	return 0;
nomem:
	x_fail(x, GW_OUT_UPSTREAM_ERROR, "out of memory");
	return 1;
}

/* Parses the response head in u->in; 1 when the exchange ended or moved on. */
static int on_response_head(struct gw_exchange *x)
{
	struct upstream *u = x->u;
	int r;

	for (;;) {
		r = lt_http1_parse_response(u->in.p + u->in.off, buf_avail(&u->in),
					    x->cfg->max_head_bytes * 2, x->req.method,
					    x->req.method_len, &x->resp);
		if (r == LT_HTTP1_PARTIAL)
			return 0;
		if (r < 0) {
			x_fail(x, GW_OUT_UPSTREAM_ERROR, lt_http1_strerror(r));
			return 1;
		}
		if (x->resp.status >= 100 && x->resp.status < 200) {
			/* interim (100 Continue, 103): the client never asked us for one */
			u->in.off += r;
			continue;
		}
		break;
	}
	/* the head is copied so that u->in can be compacted while the exchange lives */
	x->rhead = malloc(r);
	if (!x->rhead) {
		x_fail(x, GW_OUT_UPSTREAM_ERROR, "out of memory");
		return 1;
	}
	memcpy(x->rhead, u->in.p + u->in.off, r);
	{
		ptrdiff_t d = x->rhead - (u->in.p + u->in.off);
		x->resp.reason += d;
		for (unsigned i = 0; i < x->resp.nheaders; i++) {
			x->resp.headers[i].name += d;
			x->resp.headers[i].value += d;
		}
	}
	u->in.off += r;
	x->resp_parsed = 1;
	x->st.upstream_status = x->resp.status;
	x->resp_left = x->resp.content_length;
	lt_http1_chunked_init(&x->resp_ch);
	if (x->ops && x->ops->on_response_head) {
		int v = x->ops->on_response_head(x);
		if (v == GW_RETRY && x->c && x->req_done &&
		    (x->body_held || x->req.body == LT_HTTP1_BODY_NONE)) {
			/* a fallback: forget this response, ask pick_upstream again */
			upstream_close(u);
			x->u = NULL;
			x->resp_parsed = 0;
			free(x->rhead);
			x->rhead = NULL;
			x->st.first_byte_ns = 0;
			x->upstream_chosen = 0;
			x_start_upstream(x, x->st.attempts);
			return 1;
		}
		if (v == GW_ANSWERED || x->answered) {
			upstream_close(u);
			x->u = NULL;
			x_finish(x, GW_OUT_ANSWERED);
			return 1;
		}
	}
	if (send_response_head(x)) {
		x_fail(x, GW_OUT_UPSTREAM_ERROR, "out of memory");
		return 1;
	}
	if (x->resp.body == LT_HTTP1_BODY_NONE ||
	    (x->resp.body == LT_HTTP1_BODY_LENGTH && !x->resp_left)) {
		x_end_response(x);
		return 1;
	}
	return 0;
}

static ssize_t up_read(struct upstream *u, void *b, size_t n)
{
	return u->ssl ? gw_tls_read(u->ssl, b, n) : read(u->fd, b, n);
}

static ssize_t up_send(struct upstream *u, const void *b, size_t n)
{
	return u->ssl ? gw_tls_write(u->ssl, b, n) : send(u->fd, b, n, MSG_NOSIGNAL);
}

static void upstream_read(struct upstream *u)
{
	struct gw_exchange *x = u->x;

	if (u->state == U_IDLE) {
		/* an idle pooled connection that became readable: closed or misbehaving */
		char tmp[64];
		/* over TLS, a record the server sends after a response (a session
		 * ticket) is read here and leaves the connection usable (EAGAIN) */
		ssize_t n = u->ssl ? gw_tls_read(u->ssl, tmp, sizeof(tmp)) :
				     recv(u->fd, tmp, sizeof(tmp), 0);
		if (n >= 0 || (errno != EAGAIN && errno != EINTR))
			upstream_close(u);
		u->can_read = 0;
		return;
	}
	if (!x)
		return;
	while (u->can_read) {
		ssize_t n;
		size_t want;

		if (x->c && buf_avail(&x->c->out) > OUT_HIGH) {
			u->paused = 1; /* resumed by client_flush when the client drains */
			return;
		}
		u->paused = 0;
		if (buf_reserve(&u->in, READ_CHUNK / 4)) {
			x_fail(x, GW_OUT_UPSTREAM_ERROR, "out of memory");
			return;
		}
		want = u->in.cap - u->in.len;
		n = up_read(u, u->in.p + u->in.len, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				u->can_read = 0;
				return;
			}
			x_fail(x, GW_OUT_UPSTREAM_ERROR, strerror(errno));
			return;
		}
		if (n == 0) {
			u->can_read = 0;
			if (x->resp_parsed && x->resp.body == LT_HTTP1_BODY_CLOSE) {
				x->resp.keep_alive = 0;
				if (!relay_body(x))
					x_end_response(x);
				return;
			}
			x_fail(x, GW_OUT_UPSTREAM_ERROR,
			       x->resp_parsed ? "upstream closed mid-response" :
						"upstream closed before answering");
			return;
		}
		u->in.len += n;
		if ((size_t)n < want && !u->ssl)
			u->can_read =
				0; /* drained (see client_read); TLS reads a record at a time */
		if (!x->st.first_byte_ns)
			x->st.first_byte_ns = now_ns();
		x->read_deadline_ms = coarse_ms() + x->t.read_ms;
		if (!x->resp_parsed) {
			if (on_response_head(x))
				return;
			if (!x->resp_parsed)
				continue;
		}
		if (relay_body(x))
			return;
	}
}

static void upstream_flush(struct upstream *u)
{
	if (u->state == U_CONNECTING || u->state == U_HANDSHAKE)
		return; /* upstream_event flushes once the connection is up */
	while (buf_avail(&u->out)) {
		ssize_t n = up_send(u, u->out.p + u->out.off, buf_avail(&u->out));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				u->can_write = 0;
				return;
			}
			if (u->x)
				x_fail(u->x, GW_OUT_UPSTREAM_ERROR, strerror(errno));
			else
				upstream_close(u);
			return;
		}
		u->out.off += n;
	}
	u->out.off = u->out.len = 0;
	/* the client's streamed body waited on this buffer draining (only then: a kick
	 * that always fired would feed itself through client_body's flush) */
	if (u->x && u->x->c && u->x->body_blocked) {
		u->x->body_blocked = 0;
		kick(&u->x->c->o);
	}
}

static void upstream_event(struct upstream *u, uint32_t ev)
{
	if (u->state == U_CONNECTING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			if (u->x)
				x_fail(u->x, GW_OUT_UPSTREAM_ERROR,
				       err == ECONNREFUSED ? "connection refused" : strerror(err));
			else
				upstream_close(u);
			return;
		}
		if (u->ssl) {
			u->state = U_HANDSHAKE; /* the connect deadline covers it too */
		} else {
			u->state = U_BUSY;
			if (u->x)
				u->x->connect_deadline_ms = 0;
		}
	}
	if (u->state == U_HANDSHAKE) {
		char why[300];
		int r = gw_tls_handshake(u->ssl, why, sizeof(why));
		if (r > 0)
			return;
		if (r < 0) {
			if (u->x)
				x_fail(u->x, GW_OUT_UPSTREAM_ERROR, why);
			else
				upstream_close(u);
			return;
		}
		u->state = U_BUSY;
		if (u->x)
			u->x->connect_deadline_ms = 0;
		ev |= EPOLLIN | EPOLLOUT; /* edge-triggered: try both now */
	}
	if (u->ssl)
		ev |= EPOLLIN | EPOLLOUT; /* a TLS read may wait on a write and back */
	if (ev & EPOLLOUT)
		u->can_write = 1;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		u->can_read = 1;
	if (u->can_write && buf_avail(&u->out) && u->state == U_BUSY)
		upstream_flush(u);
	if (!u->o.dead && u->can_read && u->state != U_CONNECTING)
		upstream_read(u);
}

/* --- client side -------------------------------------------------------------------- */

static void client_close(struct client *c)
{
	if (c->o.dead)
		return;
	if (c->x) {
		struct gw_exchange *x = c->x;
		c->x = NULL;
		x->c = NULL;
		if (x->keep_ms && x->u && !x->resp_done && x->req_done) {
			/* keep reading the upstream for the route (usage), bounded */
			x->keep_deadline_ms = coarse_ms() + x->keep_ms;
		} else {
			x_finish(x, GW_OUT_CLIENT_GONE);
		}
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		W.clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	W.nclients--;
	gw_stats_conn(-1);
	close(c->fd);
	c->fd = -1;
	bury(&c->o);
}

static void client_flush(struct client *c)
{
	while (buf_avail(&c->out)) {
		ssize_t n = send(c->fd, c->out.p + c->out.off, buf_avail(&c->out), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				c->can_write = 0;
				break;
			}
			client_close(c);
			return;
		}
		c->out.off += n;
		if (c->state == C_WAIT || c->state == C_CLOSING)
			c->deadline_ms = coarse_ms() + W.cfg->client_send_timeout_ms;
	}
	if (!buf_avail(&c->out)) {
		c->out.off = c->out.len = 0;
		if (c->state == C_CLOSING && !c->shut) {
			/*
			 * Lingering close (as nginx): close() with unread bytes would send a
			 * RST that can destroy the answer before the client reads it. Send
			 * FIN, discard what comes until the client's EOF or a short deadline.
			 */
			shutdown(c->fd, SHUT_WR);
			c->shut = 1;
			c->deadline_ms = coarse_ms() + 2000;
			if (!c->can_read)
				return;
			kick(&c->o);
		}
	}
	if (c->x && c->x->u && c->x->u->paused && buf_avail(&c->out) < OUT_LOW)
		kick(&c->x->u->o);
}

static void set_request_id(struct gw_exchange *x)
{
	const struct lt_http1_header *h = lt_http1_find(&x->req, "x-request-id");
	const struct lt_http1_header *t = lt_http1_find(&x->req, "traceparent");
	int ok = h && h->value_len && h->value_len < sizeof(x->rid);

	for (uint32_t i = 0; ok && i < h->value_len; i++) {
		char ch = h->value[i];
		ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		     (ch >= '0' && ch <= '9') || strchr("-_.:/+=", ch);
	}
	if (ok) {
		memcpy(x->rid, h->value, h->value_len);
		x->rid[h->value_len] = 0;
	} else {
		hex64(x->rid, rng_next());
		hex64(x->rid + 16, rng_next());
		x->rid[32] = 0;
	}
	/* W3C: version 00, 32 hex trace-id, 16 hex parent-id, 2 hex flags, not all zero */
	ok = t && t->value_len == 55;
	for (int i = 0; ok && i < 55; i++) {
		char ch = t->value[i];
		if (i == 2 || i == 35 || i == 52)
			ok = ch == '-';
		else
			ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
	}
	if (ok && (memcmp(t->value, "00", 2) ||
		   !strncmp(t->value + 3, "00000000000000000000000000000000", 32) ||
		   !strncmp(t->value + 36, "0000000000000000", 16)))
		ok = 0;
	if (ok) {
		memcpy(x->traceparent, t->value, 55);
		x->traceparent[55] = 0;
	} else {
		/* "00-" trace-id "-" parent-id "-00" */
		char *tp = x->traceparent;
		memcpy(tp, "00-", 3);
		hex64(tp + 3, rng_next());
		hex64(tp + 19, rng_next());
		tp[35] = '-';
		hex64(tp + 36, rng_next() | 1);
		memcpy(tp + 52, "-00", 4);
	}
}

/* Request body bytes in c->in: held (want_body), or streamed to the upstream. */
static void client_body(struct client *c)
{
	struct gw_exchange *x = c->x;

	while (x && !x->req_done && buf_avail(&c->in)) {
		const char *p = c->in.p + c->in.off;
		size_t n = buf_avail(&c->in);

		if (!x->want_body && (!x->u || buf_avail(&x->u->out) > OUT_HIGH)) {
			/* no upstream yet, or back-pressure: x_connect / upstream_flush resume */
			x->body_blocked = 1;
			return;
		}
		if (x->req.body == LT_HTTP1_BODY_LENGTH) {
			if (n > x->req_left)
				n = x->req_left;
			if (x->want_body) {
				if (buf_put(&x->body, p, n))
					goto nomem;
			} else {
				if (buf_put(&x->u->out, p, n))
					goto nomem;
				x->st.req_body_bytes += n;
			}
			c->in.off += n;
			x->req_left -= n;
			if (!x->req_left)
				x->req_done = 1;
		} else {
			const char *d;
			size_t dl, used;
			int r = lt_http1_chunked_scan(&x->req_ch, p, n, &used, &d, &dl);
			if (r < 0) {
				x->req_done = 0;
				gw_answer_problem(x, 400, "bad-chunk", "Bad Request",
						  lt_http1_strerror(r));
				x->close_client = 1;
				if (x->u) {
					upstream_close(x->u);
					x->u = NULL;
				}
				x_finish(x, GW_OUT_ANSWERED);
				return;
			}
			if (x->want_body) {
				if (r == 1 && buf_put(&x->body, d, dl))
					goto nomem;
			} else {
				if (buf_put(&x->u->out, p, used))
					goto nomem;
				x->st.req_body_bytes += r == 1 ? dl : 0;
			}
			c->in.off += used;
			if (r == 2)
				x->req_done = 1;
		}
		if (x->want_body && buf_avail(&x->body) > x->body_max) {
			gw_answer_problem(x, 413, "body-too-large", "Content Too Large",
					  "the request body is larger than this route accepts");
			x->close_client = 1;
			x_finish(x, GW_OUT_ANSWERED);
			return;
		}
	}
	if (!x)
		return;
	if (x->u && !x->want_body)
		upstream_flush(x->u);
	if (!x->req_done) {
		c->deadline_ms = coarse_ms() + x->cfg->client_body_timeout_ms;
		return;
	}
	c->state = C_WAIT;
	c->deadline_ms = 0;
	if (x->want_body && !x->u) {
		x->body_held = 1;
		if (x->ops && x->ops->on_request_body) {
			int v = x->ops->on_request_body(x, x->body.p + x->body.off,
							buf_avail(&x->body));
			if (v == GW_ANSWERED || x->answered) {
				x_finish(x, GW_OUT_ANSWERED);
				return;
			}
			if (v < 0) {
				gw_answer_problem(x, 500, "internal", "Internal Server Error",
						  "the route failed on the request body");
				x_finish(x, GW_OUT_ANSWERED);
				return;
			}
		}
		x_start_upstream(x, 0);
	}
	return;
nomem:
	gw_answer_problem(x, 500, "internal", "Internal Server Error", "out of memory");
	x->close_client = 1;
	x_finish(x, GW_OUT_ANSWERED);
}

static const struct {
	const char *name;
	size_t max; /* bytes with the NUL: what the routes read (identity.h) */
} gw_single_fields[] = { { "authorization", LT_GW_AUTHORIZATION_MAX },
			 { "x-api-key", LT_GW_API_KEY_MAX },
			 { "x-org-id", LT_GW_ORG_ID_MAX } };

/*
 * One pass over the fields, on every request: a credential field twice, or
 * longer than the routes read it, is answered 400 here (1), before admission
 * or forwarding; 0 when none is.
 */
static int gw_check_credential_fields(struct gw_exchange *x, const struct lt_http1_msg *m)
{
	enum { NF = sizeof(gw_single_fields) / sizeof(gw_single_fields[0]) };
	unsigned seen[NF] = { 0 }, i, k;
	const char *type = NULL;
	char d[96];

	for (i = 0; i < m->nheaders && !type; i++) {
		const struct lt_http1_header *h = &m->headers[i];

		for (k = 0; k < NF && !lt_http1_name_is(h, gw_single_fields[k].name); k++)
			;
		if (k == NF)
			continue;
		if (seen[k]++) {
			type = "duplicate-field";
			snprintf(d, sizeof(d), "the %s field appears more than once",
				 gw_single_fields[k].name);
		} else if (h->value_len >= gw_single_fields[k].max) {
			type = "field-too-long";
			snprintf(d, sizeof(d), "the %s field is longer than %zu bytes",
				 gw_single_fields[k].name, gw_single_fields[k].max - 1);
		}
	}
	if (!type)
		return 0;
	gw_answer_problem(x, 400, type, "Bad Request", d);
	x_finish(x, GW_OUT_ANSWERED);
	return 1;
}

/* A complete head at c->in: build the exchange, route it, run on_request_head. */
static void client_start(struct client *c, int head_len, const struct lt_http1_msg *parsed)
{
	struct gw_exchange *x = x_alloc();
	struct lt_http1_msg *m;
	const char *base = c->in.p + c->in.off;
	int mismatch = 0, v;

	if (!x || !(x->head = malloc(head_len))) {
		if (x) {
			buf_free(&x->reqhead);
			buf_free(&x->resp_lines);
		}
		free(x);
		client_answer_raw(c, 503, "overloaded", "out of memory");
		return;
	}
	x->st.start_ns = now_ns();
	memcpy(x->head, base, head_len);
	m = &x->req;
	/*
	 * lt_http1 parsed in place: move the pointers to the copy. Only the
	 * fields the request has are copied, not all LT_HTTP1_MAX_HEADERS slots
	 * (1.5 KiB a request; slots past nheaders are never read).
	 */
	{
		ptrdiff_t d = x->head - base;
		size_t hoff = offsetof(struct lt_http1_msg, headers);
		size_t toff = offsetof(struct lt_http1_msg, body);

		memcpy(m, parsed, hoff);
		memcpy((char *)m + toff, (const char *)parsed + toff, sizeof(*m) - toff);
		m->method += d;
		m->target += d;
		for (unsigned i = 0; i < m->nheaders; i++) {
			m->headers[i] = parsed->headers[i];
			m->headers[i].name += d;
			m->headers[i].value += d;
		}
	}
	c->in.off += head_len;
	x->c = c;
	c->x = x;
	c->keep_alive = m->keep_alive;
	x->cfg = gw_config_get(W.cfg);
	x->t = x->cfg->timeouts;
	x->prev = NULL;
	x->next = W.xs;
	if (W.xs)
		W.xs->prev = x;
	W.xs = x;
	set_request_id(x);
	x->req_left = m->body == LT_HTTP1_BODY_LENGTH ? m->content_length : 0;
	x->req_done = m->body == LT_HTTP1_BODY_NONE ||
		      (m->body == LT_HTTP1_BODY_LENGTH && !m->content_length);
	lt_http1_chunked_init(&x->req_ch);
	x->total_deadline_ms = 0;
	c->state = x->req_done ? C_WAIT : C_BODY;
	c->deadline_ms = x->req_done ? 0 : coarse_ms() + x->cfg->client_body_timeout_ms;

	x->route =
		gw_route_match(x->cfg, m->method, m->method_len, m->target, m->path_len, &mismatch);
	if (!x->route) {
		if (mismatch)
			gw_answer_problem(x, 405, "method-not-allowed", "Method Not Allowed",
					  "this route does not accept the method");
		else
			gw_answer_problem(x, 404, "no-route", "Not Found",
					  "no route for this path");
		x_finish(x, GW_OUT_ANSWERED);
		return;
	}
	/*
	 * A credential is one field: with two, the gateway would judge the first
	 * while the upstream may read the last (RFC 9110 lists neither as a list).
	 */
	if (gw_check_credential_fields(x, m))
		return;
	x->ops = x->route->ops;
	x->t = x->route->timeouts;
	x->retries_left = x->route->retries;
	x->total_deadline_ms = coarse_ms() + x->t.total_ms;
	if (x->ops && x->ops->on_request_head) {
		v = x->ops->on_request_head(x);
		if (v == GW_ANSWERED || x->answered) {
			x_finish(x, GW_OUT_ANSWERED);
			return;
		}
		if (v < 0) {
			gw_answer_problem(x, 500, "internal", "Internal Server Error",
					  "the route failed on the request head");
			x_finish(x, GW_OUT_ANSWERED);
			return;
		}
		x->total_deadline_ms = coarse_ms() + x->t.total_ms;
	}
	if (x->want_body && m->body == LT_HTTP1_BODY_LENGTH && m->content_length > x->body_max) {
		gw_answer_problem(x, 413, "body-too-large", "Content Too Large",
				  "the request body is larger than this route accepts");
		x->close_client = 1;
		x_finish(x, GW_OUT_ANSWERED);
		return;
	}
	/* a small body already here in full is held too: the request stays replayable */
	if (!x->want_body && m->body == LT_HTTP1_BODY_LENGTH && m->content_length &&
	    m->content_length <= 65536 && buf_avail(&c->in) >= m->content_length) {
		if (buf_put(&x->body, c->in.p + c->in.off, m->content_length)) {
			gw_answer_problem(x, 500, "internal", "Internal Server Error",
					  "out of memory");
			x_finish(x, GW_OUT_ANSWERED);
			return;
		}
		c->in.off += m->content_length;
		x->body_held = 1;
		x->req_left = 0;
		x->req_done = 1;
		c->state = C_WAIT;
		c->deadline_ms = 0;
	}
	if (m->expect_continue && !x->req_done && m->minor == 1 && !buf_avail(&c->in))
		buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
	if (!x->want_body)
		x_start_upstream(x, 0);
	if (c->x == x && !x->req_done && !c->o.dead)
		client_body(c);
}

static void client_parse(struct client *c)
{
	while (!c->o.dead && c->state == C_HEAD && buf_avail(&c->in)) {
		static struct lt_http1_msg m; /* one worker, one thread: parsed, then copied */
		int r = lt_http1_parse_request(c->in.p + c->in.off, buf_avail(&c->in),
					       W.cfg->max_head_bytes, &m);
		if (r == LT_HTTP1_PARTIAL) {
			if (!c->head_start_ms) {
				c->head_start_ms = coarse_ms();
				c->deadline_ms = c->head_start_ms + W.cfg->client_header_timeout_ms;
			}
			return;
		}
		if (r < 0) {
			log_debug("client request refused: %s", lt_http1_strerror(r));
			client_answer_raw(c, lt_http1_status(r),
					  lt_http1_status(r) == 431 ? "header-too-large" :
								      "malformed-request",
					  lt_http1_strerror(r));
			return;
		}
		c->head_start_ms = 0;
		client_start(c, r, &m);
	}
}

static void client_read(struct client *c)
{
	while (!c->o.dead && c->can_read) {
		ssize_t n;
		size_t want;

		if (c->state == C_CLOSING) {
			/* discard: the answer is on its way, then the close */
			char tmp[4096];
			n = read(c->fd, tmp, sizeof(tmp));
			if (n > 0)
				continue;
			if (n < 0 && errno == EINTR)
				continue;
			c->can_read = 0;
			if (n == 0 || (n < 0 && errno != EAGAIN))
				client_close(c);
			return;
		}
		if (c->state == C_WAIT || (c->state == C_BODY && c->x && !c->x->want_body &&
					   (!c->x->u || buf_avail(&c->x->u->out) > OUT_HIGH))) {
			if (c->state == C_BODY)
				c->x->body_blocked = 1;
			return; /* resumed by a kick: pipelined bytes wait in the socket */
		}
		if (buf_avail(&c->in) >= W.cfg->max_head_bytes + READ_CHUNK)
			return;
		if (buf_reserve(&c->in, 4096)) {
			client_close(c);
			return;
		}
		want = c->in.cap - c->in.len;
		n = read(c->fd, c->in.p + c->in.len, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				c->can_read = 0;
				break;
			}
			client_close(c);
			return;
		}
		if (n == 0) {
			c->can_read = 0;
			client_close(c);
			return;
		}
		c->in.len += n;
		/*
		 * A short read drained the socket: under EPOLLET whatever arrives later
		 * raises a new event, so the EAGAIN read is a syscall saved per request.
		 */
		if ((size_t)n < want)
			c->can_read = 0;
		if (c->state == C_HEAD)
			client_parse(c);
		else if (c->state == C_BODY)
			client_body(c);
	}
	if (!c->o.dead && c->state == C_HEAD)
		client_parse(c);
}

static void client_next_request(struct client *c)
{
	c->state = C_HEAD;
	c->head_start_ms = 0;
	c->deadline_ms = coarse_ms() + W.cfg->client_idle_timeout_ms;
	client_flush(c);
	if (!c->o.dead && (buf_avail(&c->in) || c->can_read))
		kick(&c->o);
}

static void client_event(struct client *c, uint32_t ev)
{
	if (ev & (EPOLLERR | EPOLLHUP)) {
		client_close(c);
		return;
	}
	if (ev & EPOLLRDHUP)
		c->rdhup = 1;
	if (ev & EPOLLOUT) {
		c->can_write = 1;
		if (buf_avail(&c->out))
			client_flush(c);
	}
	if (c->o.dead)
		return;
	if (ev & (EPOLLIN | EPOLLRDHUP))
		c->can_read = 1;
	/* a client that closed its side while its response is on the way has left */
	if (c->rdhup && c->state == C_WAIT && c->x) {
		client_close(c);
		return;
	}
	client_read(c);
}

static void accept_all(void)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(W.lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client *c;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
		int one = 1;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_warn_rl("accept: %s", strerror(errno));
			return;
		}
		if (W.nclients >= W.cfg->max_connections) {
			static const char busy[] =
				"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
				"application/problem+json\r\nContent-Length: 94\r\nConnection: "
				"close\r\n\r\n{\"type\":\"" LT_PROBLEM_BASE
				"overloaded\",\"title\":\"Service Unavailable\",\"status\":503}";
			if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				(void)0;
			close(fd);
			log_warn_rl(
				"connection refused: %u open connections (limits.max_connections)",
				W.nclients);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->o.kind = OBJ_CLIENT;
		c->fd = fd;
		c->peer = ss;
		c->state = C_HEAD;
		c->deadline_ms = coarse_ms() + W.cfg->client_idle_timeout_ms;
		ev.data.ptr = c;
		if (epoll_ctl(W.epfd, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			free(c);
			continue;
		}
		c->next = W.clients;
		if (W.clients)
			W.clients->prev = c;
		W.clients = c;
		W.nclients++;
		gw_stats_conn(1);
	}
}

/* --- timeouts ------------------------------------------------------------------------ */

static void sweep(void)
{
	uint64_t now = coarse_ms();
	struct gw_exchange *x, *xn;
	struct client *c, *cn;

	for (x = W.xs; x; x = xn) {
		xn = x->next;
		if (x->finished)
			continue;
		if (!x->c && x->keep_deadline_ms && now >= x->keep_deadline_ms) {
			x_finish(x, GW_OUT_CLIENT_GONE);
			continue;
		}
		if (!x->u || x->resp_done)
			continue;
		if (x->connect_deadline_ms && now >= x->connect_deadline_ms) {
			x_fail(x, GW_OUT_TIMEOUT, "upstream connect timeout");
		} else if (x->total_deadline_ms && now >= x->total_deadline_ms) {
			x_fail(x, GW_OUT_TIMEOUT, "upstream total timeout");
		} else if (x->req_done && !buf_avail(&x->u->out) && !x->u->paused &&
			   x->read_deadline_ms && now >= x->read_deadline_ms) {
			x_fail(x, GW_OUT_TIMEOUT, "upstream read timeout");
		}
	}
	for (c = W.clients; c; c = cn) {
		cn = c->next;
		if (c->o.dead || !c->deadline_ms || now < c->deadline_ms)
			continue;
		if (c->state == C_HEAD && c->head_start_ms) {
			log_warn_rl("client closed: request head not complete within %u ms",
				    W.cfg->client_header_timeout_ms);
			client_answer_raw(c, 408, "header-timeout",
					  "the request head did not arrive in time");
			c->deadline_ms = now + 1000;
		} else if (c->state == C_WAIT && !buf_avail(&c->out)) {
			c->deadline_ms = 0; /* waiting on the upstream: its timeouts rule */
		} else {
			client_close(c);
		}
	}
	/* idle pooled upstream connections past upstream_idle_ms */
	for (struct pool *p = W.pools; p; p = p->next) {
		struct upstream *u = p->idle, *un;
		for (; u; u = un) {
			un = u->pool_next;
			if (now - u->idle_since_ms >= W.cfg->upstream_idle_ms)
				upstream_close(u);
		}
	}
}

/* --- worker loop ----------------------------------------------------------------------- */

static int listen_socket(const struct sockaddr_storage *ss, socklen_t sl)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, sl) || listen(fd, 4096)) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static void health_attach(struct gw_config *cfg, int create);

/*
 * The worker's scheduling policy (config "scheduling"). Under SCHED_OTHER a
 * worker woken by a client's or an upstream's packet preempts the sender
 * (wakeup preemption), runs one request, sleeps again: a context switch, an
 * address-space switch on this VM, for every hop. SCHED_BATCH tasks never
 * preempt on wakeup, so the sender finishes its own batch first and the worker
 * then finds several requests ready per epoll_wait. Measured with
 * scripts/bench_gw.sh (GW_BENCH_SCHED=normal against the default, paired
 * with nginx): the workers' context switches fell from 0.5-0.8 to 0.1-0.35
 * per request, CPU per request from 0.91-0.97x nginx's to 0.74-0.80x. The
 * cost: a woken worker waits for a CPU-bound neighbour's slice, so on a
 * host shared with CPU hogs "normal" has the shorter tail. A policy other
 * than these two (an operator's chrt) is left alone.
 */
static void worker_sched(const struct gw_config *cfg)
{
	struct sched_param sp = { 0 };
	int cur = sched_getscheduler(0), want = cfg->sched_batch ? SCHED_BATCH : SCHED_OTHER;

	if (cur == want || (cur != SCHED_OTHER && cur != SCHED_BATCH))
		return;
	if (sched_setscheduler(0, want, &sp))
		log_warn("worker %u: scheduling policy %s: %s", W.idx,
			 cfg->sched_batch ? "batch" : "normal", strerror(errno));
}

static void (*reload_hook)(const struct gw_config *cfg);

void gw_set_reload_hook(void (*fn)(const struct gw_config *cfg))
{
	reload_hook = fn;
}

static void worker_reload(void)
{
	struct gw_config *n;
	char err[512];

	if (!W.config_path)
		return;
	if (gw_config_load(W.config_path, &n, err, sizeof(err))) {
		log_error("worker %u: reload refused, keeping generation %llu: %s", W.idx,
			  (unsigned long long)W.cfg->generation, err);
		return;
	}
	health_attach(n, 0);
	gw_stats_attach(n, 0);
	gw_config_put(W.cfg);
	W.cfg = n;
	worker_sched(n);
	if (reload_hook)
		reload_hook(n);
	log_info("worker %u: config reloaded from %s", W.idx, W.config_path);
}

static void worker_start_drain(void)
{
	struct client *c, *cn;

	if (W.draining)
		return;
	W.draining = 1;
	W.drain_deadline_ms = coarse_ms() + W.cfg->drain_timeout_ms;
	if (W.lfd >= 0) {
		epoll_ctl(W.epfd, EPOLL_CTL_DEL, W.lfd, NULL);
		close(W.lfd);
		W.lfd = -1;
	}
	for (c = W.clients; c; c = cn) {
		cn = c->next;
		if (!c->x && c->state == C_HEAD && !buf_avail(&c->in) && !buf_avail(&c->out))
			client_close(c);
	}
}

static int worker_run(unsigned idx, const struct sockaddr_storage *ss, socklen_t sl)
{
	struct epoll_event evs[256];
	sigset_t mask;
	uint64_t last_sweep = 0;

	W.idx = idx;
	W.kick_tail = &W.kick;
	gw_stats_worker(idx);
	if (getrandom(rng_s, sizeof(rng_s), 0) != sizeof(rng_s))
		rng_s[0] = now_ns() ^ getpid(), rng_s[1] = 0x9e3779b97f4a7c15ull;
	rng_s[1] |= 1;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	W.epfd = epoll_create1(EPOLL_CLOEXEC);
	W.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	W.lfd = listen_socket(ss, sl);
	if (W.epfd < 0 || W.sfd < 0 || W.lfd < 0) {
		log_error("worker %u: cannot listen: %s", idx,
			  strerror(W.lfd < 0 ? -W.lfd : errno));
		return 1;
	}
	worker_sched(W.cfg);
	/*
	 * glibc gives the top of the heap back (brk) once 128 KiB of it is free:
	 * with requests' buffers freed at the top, that was a brk down and up
	 * (and page faults) every few requests. 4 MiB stays mapped instead.
	 */
	mallopt(M_TRIM_THRESHOLD, 4 << 20);
	W.listen_obj.kind = OBJ_LISTEN;
	W.signal_obj.kind = OBJ_SIGNAL;
	epoll_ctl(W.epfd, EPOLL_CTL_ADD, W.lfd,
		  &(struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.ptr = &W.listen_obj });
	epoll_ctl(W.epfd, EPOLL_CTL_ADD, W.sfd,
		  &(struct epoll_event){ .events = EPOLLIN, .data.ptr = &W.signal_obj });
	log_info("worker %u (pid %d) listening", idx, getpid());

	for (;;) {
		int n = epoll_wait(W.epfd, evs, 256, 100);
		uint64_t now;

		for (int i = 0; i < n; i++) {
			struct obj *o = evs[i].data.ptr;
			if (o->dead)
				continue;
			switch (o->kind) {
			case OBJ_LISTEN:
				if (!W.draining)
					accept_all();
				break;
			case OBJ_SIGNAL: {
				struct signalfd_siginfo si;
				while (read(W.sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGHUP)
						worker_reload();
					else
						worker_start_drain();
				}
				break;
			}
			case OBJ_CLIENT:
				client_event((struct client *)o, evs[i].events);
				break;
			case OBJ_UPSTREAM:
				upstream_event((struct upstream *)o, evs[i].events);
				break;
			}
			while (W.kick) {
				struct obj *k = W.kick;
				W.kick = k->kick_next;
				if (!W.kick)
					W.kick_tail = &W.kick;
				k->kicked = 0;
				if (k->dead)
					continue;
				if (k->kind == OBJ_CLIENT) {
					struct client *c = (struct client *)k;
					if (c->state == C_HEAD)
						client_parse(c);
					else if (c->state == C_BODY)
						client_body(c);
					if (!c->o.dead)
						client_read(c);
				} else if (k->kind == OBJ_UPSTREAM) {
					struct upstream *u = (struct upstream *)k;
					if (u->x && u->x->c)
						client_flush(u->x->c);
					if (!u->o.dead)
						upstream_read(u);
				}
			}
		}
		while (W.dead) {
			struct obj *o = W.dead;
			W.dead = o->free_next;
			if (o->kind == OBJ_CLIENT) {
				struct client *c = (struct client *)o;
				buf_free(&c->in);
				buf_free(&c->out);
			} else if (o->kind == OBJ_UPSTREAM) {
				struct upstream *u = (struct upstream *)o;
				buf_free(&u->in);
				buf_free(&u->out);
			}
			free(o);
		}
		now = coarse_ms();
		if (now - last_sweep >= 100) {
			last_sweep = now;
			sweep();
		}
		if (W.draining) {
			if (!W.xs && !W.clients)
				break;
			if (now >= W.drain_deadline_ms) {
				while (W.xs)
					x_finish(W.xs, GW_OUT_ABORTED);
				break;
			}
		}
	}
	log_info("worker %u drained, exiting", idx);
	return 0;
}

/* --- health checks (master) ------------------------------------------------------- */

static volatile struct health_slot *health_table;

static int health_find(const char *key, int create)
{
	for (int i = 0; i < HEALTH_SLOTS; i++) {
		volatile struct health_slot *s = &health_table[i];
		if (__atomic_load_n(&s->used, __ATOMIC_ACQUIRE)) {
			if (!strcmp((const char *)s->key, key))
				return i;
			continue;
		}
		if (!create)
			return -1;
		snprintf((char *)s->key, sizeof(s->key), "%s", key);
		s->healthy = 1;
		__atomic_store_n(&s->used, 1, __ATOMIC_RELEASE);
		return i;
	}
	return -1;
}

static void health_key(const struct gw_service *s, const struct gw_url *u, char *k, size_t n)
{
	snprintf(k, n, "%s%s%s", u->hostport, u->base_path, s->health_path);
}

/* Gives each checked URL its slot (master: creates them; worker: finds them). */
static void health_attach(struct gw_config *cfg, int create)
{
	char key[sizeof(((struct health_slot *)0)->key)];

	if (!health_table)
		return;
	for (unsigned i = 0; i < cfg->nservices; i++) {
		struct gw_service *s = &cfg->services[i];
		for (unsigned k = 0; k < s->nurls; k++) {
			s->urls[k].health_slot = -1;
			if (!s->health_interval_ms)
				continue;
			health_key(s, &s->urls[k], key, sizeof(key));
			s->urls[k].health_slot = health_find(key, create);
		}
	}
}

/* The master's part of a scrape: each checked upstream's state and last latency. */
static void health_metrics(struct lt_mbuf *b, void *arg)
{
	const struct gw_config *cfg = arg ? *(struct gw_config *const *)arg : NULL;
	static const char *const hdr[2] = {
		"# HELP lt_gateway_upstream_up 1 when the last active health check of the "
		"upstream passed.\n# TYPE lt_gateway_upstream_up gauge\n",
		"# HELP lt_gateway_upstream_check_seconds Latency of the last passing health "
		"check.\n# TYPE lt_gateway_upstream_check_seconds gauge\n",
	};

	if (!cfg || !health_table)
		return;
	for (int k = 0; k < 2; k++) {
		lt_mbuf_printf(b, "%s", hdr[k]);
		for (unsigned i = 0; i < cfg->nservices; i++) {
			const struct gw_service *s = &cfg->services[i];
			for (unsigned j = 0; j < s->nurls; j++) {
				const struct gw_url *u = &s->urls[j];
				volatile struct health_slot *h;
				if (u->health_slot < 0)
					continue;
				h = &health_table[u->health_slot];
				/* names and addresses are checked at load: no quote or backslash */
				lt_mbuf_printf(b, "%s{service=\"%s\",upstream=\"%s%s\"} ",
					       k ? "lt_gateway_upstream_check_seconds" :
						   "lt_gateway_upstream_up",
					       s->name, u->tls ? "https://" : "http://",
					       u->hostport);
				if (k)
					lt_mbuf_printf(b, "%.6f\n", h->latency_us / 1e6);
				else
					lt_mbuf_printf(b, "%u\n", h->healthy ? 1u : 0u);
			}
		}
	}
}

/*
 * One blocking check: GET path, a 2xx/3xx status within timeout_ms, over TLS
 * for an https URL (verified as requests are: a check that passes where
 * requests fail would send traffic to it). Latency in µs, or -1.
 */
static long health_check(const struct gw_url *u, const char *ca_file, const char *path,
			 uint32_t timeout_ms, char *why, size_t whylen)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)timeout_ms * 1000000ull;
	char req[1024], resp[256];
	size_t got = 0, off = 0;
	struct ssl_st *ssl = NULL;
	long ret = -1;
	int fd, len, phase = 0; /* 0 connecting, 1 TLS handshake, 2 sending, 3 reading */

	if (u->sa.family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(u->port);
		memcpy(&s6->sin6_addr, u->sa.addr, 16);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(u->port);
		memcpy(&s4->sin_addr, u->sa.addr, 4);
		sl = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	len = snprintf(req, sizeof(req),
		       "GET %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: leaky-gateway-health\r\n"
		       "Connection: close\r\n\r\n",
		       u->base_path, path, u->hostport);
	if (connect(fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS) {
		snprintf(why, whylen, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (u->tls && !(ssl = gw_tls_new(ca_file, u->host, fd, why, whylen))) {
		close(fd);
		return -1;
	}
	for (;;) {
		uint64_t now = now_ns();
		/* TLS may want either direction in any phase */
		struct pollfd pfd = { fd,
				      ssl && phase ? POLLIN | POLLOUT :
				      phase == 3   ? POLLIN :
						     POLLOUT,
				      0 };
		ssize_t n;
		if (now >= deadline) {
			snprintf(why, whylen, "no answer within %u ms", timeout_ms);
			break;
		}
		if (poll(&pfd, 1, (deadline - now) / 1000000 + 1) <= 0)
			continue;
		if (phase == 0) {
			int err = 0;
			socklen_t el = sizeof(err);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
			if (err) {
				snprintf(why, whylen, "connect: %s", strerror(err));
				break;
			}
			phase = ssl ? 1 : 2;
		}
		if (phase == 1) {
			int r = gw_tls_handshake(ssl, why, whylen);
			if (r < 0)
				break;
			if (r > 0) {
				usleep(1000); /* both directions polled: avoid a busy loop */
				continue;
			}
			phase = 2;
		}
		if (phase == 2) {
			n = ssl ? gw_tls_write(ssl, req + off, len - off) :
				  send(fd, req + off, len - off, MSG_NOSIGNAL);
			if (n < 0 && errno == EAGAIN)
				continue;
			if (n <= 0) {
				snprintf(why, whylen, "send failed");
				break;
			}
			off += n;
			if (off < (size_t)len)
				continue;
			phase = 3;
		}
		n = ssl ? gw_tls_read(ssl, resp + got, sizeof(resp) - 1 - got) :
			  read(fd, resp + got, sizeof(resp) - 1 - got);
		if (n < 0 && errno == EAGAIN) {
			if (ssl)
				usleep(1000);
			continue;
		}
		if (n <= 0) {
			snprintf(why, whylen, "closed before a status line");
			break;
		}
		got += n;
		resp[got] = 0;
		if (got >= 12) {
			int st = atoi(resp + 9);
			if (strncmp(resp, "HTTP/1.", 7) || st < 200 || st >= 400) {
				snprintf(why, whylen, "status %d", st);
				break;
			}
			ret = (long)((now_ns() - t0) / 1000);
			break;
		}
	}
	gw_tls_free(ssl);
	close(fd);
	return ret;
}

/*
 * The checks' results for the agent: the pinned lt_upstream (lt_abi.h), so
 * its dashboard shows the health the gateway routes by. The map is opened
 * again every 10 s (the agent may attach after the gateway starts, or pin a
 * new map after a detach); without it nothing but this is lost.
 */
static char health_pin_dir[256];
static int health_map_fd = -1;
static uint64_t health_map_opened_ms;

void gw_health_publish(const char *pin_dir)
{
	snprintf(health_pin_dir, sizeof(health_pin_dir), "%s", pin_dir ? pin_dir : "");
}

static void health_map_put(const struct gw_service *s, const struct gw_url *u,
			   volatile struct health_slot *h, uint64_t wall_ms, const char *why)
{
	static int warned;
	struct lt_upstream_key k;
	struct lt_upstream_val v;
	char path[512];

	if (!health_pin_dir[0])
		return;
	if (health_map_fd < 0 || coarse_ms() - health_map_opened_ms >= 10000) {
		if (health_map_fd >= 0)
			close(health_map_fd);
		snprintf(path, sizeof(path), "%s/lt_upstream", health_pin_dir);
		health_map_fd = bpf_obj_get(path);
		health_map_opened_ms = coarse_ms();
		if (health_map_fd < 0 && !warned++)
			log_warn("health checks: %s: %s; the agent's dashboard will not show them "
				 "until it is there",
				 path, strerror(errno));
	}
	if (health_map_fd < 0)
		return;
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	snprintf(k.service, sizeof(k.service), "%s", s->name);
	snprintf(k.upstream, sizeof(k.upstream), "%s%s", u->tls ? "https://" : "http://",
		 u->hostport);
	v.checked_ms = wall_ms;
	v.changed_ms = h->changed_ms;
	v.healthy = h->healthy;
	v.fails = h->fails;
	v.latency_us = h->latency_us;
	v.interval_ms = s->health_interval_ms;
	v.pid = (uint32_t)getpid();
	snprintf(v.why, sizeof(v.why), "%s", why);
	if (bpf_map_update_elem(health_map_fd, &k, &v, BPF_ANY) && warned++ < 2)
		log_warn("health checks: lt_upstream: %s", strerror(errno));
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void health_run(struct gw_config *cfg, uint64_t *next_ms)
{
	uint64_t now = coarse_ms(), soonest = now + 1000;

	for (unsigned i = 0; i < cfg->nservices; i++) {
		struct gw_service *s = &cfg->services[i];
		if (!s->health_interval_ms)
			continue;
		for (unsigned k = 0; k < s->nurls; k++) {
			struct gw_url *u = &s->urls[k];
			volatile struct health_slot *h;
			char why[128] = "";
			long us;
			if (u->health_slot < 0)
				continue;
			h = &health_table[u->health_slot];
			us = health_check(u, cfg->tls_ca_file, s->health_path, s->health_timeout_ms,
					  why, sizeof(why));
			if (us >= 0) {
				if (!h->healthy)
					log_warn(
						"upstream %s of service %s is healthy again (%ld us)",
						u->hostport, s->name, us);
				else
					log_debug("upstream %s of service %s healthy (%ld us)",
						  u->hostport, s->name, us);
				if (!h->healthy || !h->changed_ms)
					h->changed_ms = wall_ms();
				h->latency_us = us;
				h->fails = 0;
				h->healthy = 1;
				why[0] = '\0';
			} else {
				h->fails++;
				if (h->healthy)
					log_warn("upstream %s of service %s is unhealthy: %s",
						 u->hostport, s->name, why);
				if (h->healthy || !h->changed_ms)
					h->changed_ms = wall_ms();
				h->healthy = 0;
			}
			health_map_put(s, u, h, wall_ms(), why);
		}
		if (now + s->health_interval_ms < soonest)
			soonest = now + s->health_interval_ms;
	}
	*next_ms = soonest;
}

/* --- master --------------------------------------------------------------------------- */

int gw_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon;
	char *end;
	unsigned long port;

	memset(ss, 0, sizeof(*ss));
	if (*s == '[') {
		const char *e = strchr(s, ']');
		if (!e || e[1] != ':' || (size_t)(e - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, e - s - 1);
		host[e - s - 1] = 0;
		colon = e + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, colon - s);
		host[colon - s] = 0;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (*end || colon[1] == 0 || port > 65535 || errno)
		return -EINVAL;
	if (!*host || !strcmp(host, "*"))
		strcpy(host, "0.0.0.0");
	if (strchr(host, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -EINVAL;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -EINVAL;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*len = sizeof(*s4);
	}
	return 0;
}

static int metrics_fd = -1; /* the master's metrics listener, not the workers' */

static pid_t spawn_worker(unsigned idx, const struct sockaddr_storage *ss, socklen_t sl, int sfd)
{
	pid_t master = getpid(), pid = fork();

	if (pid == 0) {
		/*
		 * A master killed with -9 must not leave workers serving on the port
		 * under no supervision (and no SIGHUP): they drain and exit with it.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != master)
			_exit(1);
		close(sfd);
		if (metrics_fd >= 0)
			close(metrics_fd);
		_exit(worker_run(idx, ss, sl));
	}
	return pid;
}

int gw_proxy_run(const struct gw_proxy_opts *o, struct gw_config *cfg)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	const char *listen = o->listen ? o->listen : cfg->listen;
	unsigned nw = o->workers ? o->workers : cfg->workers;
	char metrics[GW_HOST_MAX];
	pid_t *pids;
	uint64_t *born;
	sigset_t mask;
	int sfd, mfd, probe, stopping = 0, alive;
	uint64_t next_health = 0, stop_deadline = 0;

	if (!nw) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		nw = n > 0 ? n : 1;
	}
	/* read once, as listen: a reload does not move the listener */
	snprintf(metrics, sizeof(metrics), "%s", o->metrics ? o->metrics : cfg->metrics_listen);
	if (gw_parse_listen(listen, &ss, &sl)) {
		log_error("bad listen address \"%s\" (want HOST:PORT, [V6]:PORT)", listen);
		gw_config_put(cfg);
		return 2;
	}
	/* a clear error now rather than N workers failing: the port must be free or shared */
	probe = listen_socket(&ss, sl);
	if (probe < 0) {
		log_error("cannot listen on %s: %s", listen, strerror(-probe));
		gw_config_put(cfg);
		return 1;
	}
	close(probe);
	signal(SIGPIPE, SIG_IGN);
	health_table = mmap(NULL, sizeof(struct health_slot) * HEALTH_SLOTS, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (health_table == MAP_FAILED) {
		health_table = NULL;
		log_error("mmap: %s", strerror(errno));
		gw_config_put(cfg);
		return 1;
	}
	W.health = health_table;
	health_attach(cfg, 1);
	if ((sfd = gw_stats_open(nw))) {
		log_error("mmap: %s", strerror(-sfd));
		gw_config_put(cfg);
		return 1;
	}
	gw_stats_attach(cfg, 1);
	mfd = -1;
	if (metrics[0]) {
		char err[512];
		mfd = gw_metrics_listen(metrics, err, sizeof(err));
		if (mfd < 0) {
			log_error("%s", err);
			gw_config_put(cfg);
			return 1;
		}
		log_info("metrics on http://%s/metrics", metrics);
	}
	metrics_fd = mfd;
	W.cfg = cfg;
	W.config_path = o->config_path;
	pids = calloc(nw, sizeof(*pids));
	born = calloc(nw, sizeof(*born));
	if (!pids || !born) {
		free(pids);
		free(born);
		gw_config_put(cfg);
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	log_info("leaky-gateway listening on %s with %u workers (config %s)", listen, nw,
		 cfg->source);
	for (unsigned i = 0; i < nw; i++) {
		pids[i] = spawn_worker(i, &ss, sl, sfd);
		born[i] = coarse_ms();
	}
	for (;;) {
		struct pollfd pfd[2] = { { sfd, POLLIN, 0 }, { mfd, POLLIN, 0 } };
		uint64_t now = coarse_ms();
		int wait = 1000;

		if (!stopping && next_health <= now)
			health_run(W.cfg, &next_health);
		if (!stopping)
			wait = next_health > now ? (int)(next_health - now) : 0;
		if (wait > 1000)
			wait = 1000;
		if (poll(pfd, mfd >= 0 ? 2 : 1, wait) > 0) {
			struct signalfd_siginfo si;
			if (mfd >= 0 && (pfd[1].revents & POLLIN))
				gw_metrics_serve(mfd, health_metrics, &W.cfg);
			if ((pfd[0].revents & POLLIN) && read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP && !stopping && o->config_path) {
					struct gw_config *n;
					char err[512];
					if (gw_config_load(o->config_path, &n, err, sizeof(err))) {
						log_error(
							"reload refused, the current config stays: %s",
							err);
						gw_stats_reload(0, 0);
					} else {
						health_attach(n, 1);
						gw_stats_attach(n, 1);
						gw_stats_reload(1, n->generation);
						gw_config_put(W.cfg);
						W.cfg = n;
						next_health = 0;
						for (unsigned i = 0; i < nw; i++)
							if (pids[i] > 0)
								kill(pids[i], SIGHUP);
						log_info("config reloaded from %s", o->config_path);
					}
				} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
					if (!stopping) {
						log_info("stopping: draining in-flight requests");
						stopping = 1;
						stop_deadline = coarse_ms() +
								W.cfg->drain_timeout_ms + 5000;
						for (unsigned i = 0; i < nw; i++)
							if (pids[i] > 0)
								kill(pids[i], SIGTERM);
					}
				}
			}
		}
		for (;;) {
			int st;
			pid_t pid = waitpid(-1, &st, WNOHANG);
			if (pid <= 0)
				break;
			for (unsigned i = 0; i < nw; i++) {
				if (pids[i] != pid)
					continue;
				pids[i] = 0;
				if (stopping)
					break;
				log_warn("worker %u (pid %d) %s %d; starting a new one", i, pid,
					 WIFSIGNALED(st) ? "killed by signal" : "exited with",
					 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
				/* a worker that dies at once every time: do not spin */
				if (coarse_ms() - born[i] < 1000)
					usleep(500000);
				gw_stats_worker_restarted(i);
				pids[i] = spawn_worker(i, &ss, sl, sfd);
				born[i] = coarse_ms();
			}
		}
		alive = 0;
		for (unsigned i = 0; i < nw; i++)
			alive += pids[i] > 0;
		if (stopping && !alive)
			break;
		if (stopping && coarse_ms() > stop_deadline) {
			for (unsigned i = 0; i < nw; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGKILL);
		}
	}
	log_info("stopped");
	close(sfd);
	if (mfd >= 0)
		close(mfd);
	metrics_fd = -1;
	gw_stats_close();
	free(pids);
	free(born);
	gw_config_put(W.cfg);
	munmap((void *)health_table, sizeof(struct health_slot) * HEALTH_SLOTS);
	return 0;
}
