// SPDX-License-Identifier: MIT
/*
 * httpd.c - the HTTP server of liblt (libmicrohttpd, epoll, thread pool):
 * response helpers, request phases (access -> limit -> handler -> log), the
 * body limit, the framing rule and the defences against slow clients. Moved
 * whole from the agent's api.c so that a second front end (the gateway)
 * serves with the same code.
 *
 * A slow client cannot block others: connections are multiplexed by epoll,
 * each is bounded in memory (headers) and time (the request deadline below),
 * and bodies beyond the configured limit are refused with 413 without being
 * read into memory.
 */
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "httpd.h"
#include "jwt.h"
#include "log.h"
#include "problem.h"
#include "units.h"

struct lt_http_conns;

struct lt_httpd {
	struct MHD_Daemon *d;
	struct lt_httpd_opts o;
	struct lt_http_conns *conns; /* open connections, for the request deadline */
};

/* ---- responses ---------------------------------------------------------- */

enum MHD_Result lt_send(struct lt_req *r, unsigned status, const char *ctype, char *body,
			const char *const *hdrs)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	int i;

	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	for (i = 0; hdrs && hdrs[i]; i += 2)
		MHD_add_response_header(resp, hdrs[i], hdrs[i + 1]);
	r->status = status;
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result lt_reply_json_h(struct lt_req *r, unsigned status, json_t *body, const char *ctype,
				const char *const *hdrs)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (!s) {
		/* a bug or out of memory: say so rather than drop the connection */
		log_error_rl("api: %s %.128s -> 500: the response (status %u) could not be built",
			     r->method, r->url, status);
		s = strdup(lt_problem_internal);
		return s ? lt_send(r, 500, "application/problem+json", s, NULL) : MHD_NO;
	}
	return lt_send(r, status, ctype, s, hdrs);
}

enum MHD_Result lt_reply_json(struct lt_req *r, unsigned status, json_t *body)
{
	return lt_reply_json_h(r, status, body, "application/json", NULL);
}

enum MHD_Result lt_problem(struct lt_req *r, unsigned status, const char *type, const char *title,
			   const char *field, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	/* a 5xx is our failure, not the client's: the operator needs its cause */
	if (status >= 500)
		log_error_rl("api: %s %.128s -> %u %s: %s", r->method, r->url, status, title,
			     detail);
	return lt_reply_json_h(r, status, lt_problem_json(status, type, title, field, detail),
			       "application/problem+json", NULL);
}

/* ---- request phases ----------------------------------------------------------- */

static int lt_route_match(const struct lt_route *rt, const char *url)
{
	if (rt->flags & LT_ROUTE_PREFIX)
		return !strncmp(url, rt->path, strlen(rt->path));
	return !strcmp(url, rt->path);
}

/*
 * The first route whose path matches answers: a method it does not serve
 * is a 405 before any phase runs; then access, limit, handler, each phase
 * that answers ending the chain. No route: 404.
 */
static enum MHD_Result lt_route(struct lt_httpd *a, struct lt_req *r)
{
	const struct lt_route *rt;
	enum MHD_Result res;

	for (rt = a->o.routes; rt && rt->path; rt++)
		if (lt_route_match(rt, r->url))
			break;
	if (!rt || !rt->path)
		return lt_problem(r, 404, "not-found", "Not found", NULL, "no resource at %.128s",
				  r->url);
	r->route = rt;
	if (rt->method && strcmp(r->method, rt->method))
		return lt_problem(r, 405, "method-not-allowed", "Method not allowed", NULL,
				  "use %s", rt->method);
	if (rt->access && rt->access(r, &res))
		return res;
	if (rt->limit && rt->limit(r, &res))
		return res;
	return rt->handler(r);
}

struct lt_framing {
	int content_length, transfer_encoding; /* how many of each header */
};

static enum MHD_Result lt_count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
					const char *value)
{
	struct lt_framing *f = cls;

	(void)kind;
	(void)value;
	if (!strcasecmp(key, "Content-Length"))
		f->content_length++;
	else if (!strcasecmp(key, "Transfer-Encoding"))
		f->transfer_encoding++;
	return MHD_YES;
}

/*
 * RFC 9112 6.3: a request whose length is ambiguous is refused with 400 and
 * the connection closed, so no proxy in front of us can frame it otherwise
 * (request smuggling). Two Content-Length headers are refused even when they
 * agree (RFC 9110 8.6 allows either; one rule is simpler to audit), and so is
 * Content-Length with Transfer-Encoding. libmicrohttpd already refuses a
 * list value ("5, 5") with its own 400.
 */
static int lt_framing_ok(struct MHD_Connection *conn, const char **why)
{
	struct lt_framing f = { 0 };

	MHD_get_connection_values(conn, MHD_HEADER_KIND, lt_count_framing, &f);
	if (f.content_length > 1) {
		*why = "more than one Content-Length header";
		return 0;
	}
	if (f.content_length && f.transfer_encoding) {
		*why = "both Content-Length and Transfer-Encoding";
		return 0;
	}
	return 1;
}

/* ---- slow clients -------------------------------------------------------------
 *
 * libmicrohttpd's connection timeout restarts with every byte, so a client
 * that trickles one header line every few seconds holds its connection for
 * ever; 4096 of them took every connection slot. Three defences:
 *  - at most api.max_conns_per_client connections from one source address
 *    (MHD_OPTION_PER_IP_CONNECTION_LIMIT);
 *  - a deadline for the whole request, head and body, that bytes do not
 *    extend: each connection records when its current request began (its
 *    opening, or the end of the previous request), and a sweeper closes,
 *    once a second, those still receiving after api.request_timeout;
 *  - libmicrohttpd's own log lines, one per abandoned connection, go
 *    through the rate-limited logger.
 * The sweeper closes with shutdown(2), which makes the connection's own
 * thread see the end of the stream and clean up; it holds the list's lock,
 * and a connection leaves the list (NOTIFY_CLOSED) before its socket is
 * closed, so the descriptor cannot have been reused by then.
 */
struct lt_http_conn {
	struct lt_http_conn *prev, *next;
	int fd;
	__u64 since_ns; /* the current request began (atomic) */
	int receiving; /* 1 until its response is queued (atomic) */
	/*
	 * The request state, made at the connection's first request and reused
	 * by the next ones (only its connection's thread touches it): no 4.5
	 * KiB calloc and free per request, and a small body keeps its buffer.
	 */
	struct lt_req *req;
	int req_busy; /* req is the current request's */
};

struct lt_http_conns {
	pthread_mutex_t lock;
	struct lt_http_conn head; /* circular list */
	pthread_t sweeper;
	int stop; /* atomic */
	__u64 timeout_ns;
	unsigned long long closed; /* by the deadline, in total */
};

static void lt_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_ctx,
			   enum MHD_ConnectionNotificationCode code)
{
	struct lt_http_conns *cs = ((struct lt_httpd *)cls)->conns;
	struct lt_http_conn *c = *socket_ctx;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		c = calloc(1, sizeof(*c));
		if (!c || !ci) {
			free(c);
			return; /* untracked: MHD's own idle timeout still applies */
		}
		c->fd = ci->connect_fd;
		c->since_ns = lt_now_ns();
		c->receiving = 1;
		pthread_mutex_lock(&cs->lock);
		c->next = cs->head.next;
		c->prev = &cs->head;
		cs->head.next->prev = c;
		cs->head.next = c;
		pthread_mutex_unlock(&cs->lock);
		*socket_ctx = c;
	} else if (c) { /* MHD_CONNECTION_NOTIFY_CLOSED: before its socket is closed */
		pthread_mutex_lock(&cs->lock);
		c->prev->next = c->next;
		c->next->prev = c->prev;
		pthread_mutex_unlock(&cs->lock);
		/* its last request has completed (MHD_connection_close_ said so first) */
		if (c->req) {
			free(c->req->buf);
			free(c->req);
		}
		free(c);
		*socket_ctx = NULL;
	}
}

static void *lt_conn_sweeper(void *arg)
{
	struct lt_http_conns *cs = arg;
	struct timespec tick = { 0, 250 * 1000000L };
	unsigned ticks = 0;

	while (!__atomic_load_n(&cs->stop, __ATOMIC_RELAXED)) {
		struct lt_http_conn *c;
		unsigned n = 0;
		__u64 now;

		nanosleep(&tick, NULL);
		if (++ticks % 4)
			continue; /* a second between sweeps; a quick exit on stop */
		pthread_mutex_lock(&cs->lock);
		now = lt_now_ns(); /* after the sleep: no request here began after it */
		for (c = cs->head.next; c != &cs->head; c = c->next) {
			__u64 since;

			if (!__atomic_load_n(&c->receiving, __ATOMIC_ACQUIRE))
				continue;
			since = __atomic_load_n(&c->since_ns, __ATOMIC_RELAXED);
			if (since >= now || now - since < cs->timeout_ns)
				continue;
			__atomic_store_n(&c->receiving, 0, __ATOMIC_RELAXED); /* once */
			shutdown(c->fd, SHUT_RDWR);
			n++;
		}
		cs->closed += n;
		pthread_mutex_unlock(&cs->lock);
		if (n)
			log_warn_rl("api: closed %u connections that sent no whole request in "
				    "%llu s (%llu in all)",
				    n, (unsigned long long)(cs->timeout_ns / LT_NS_PER_SEC),
				    cs->closed);
		lt_log_rl_flush();
	}
	return NULL;
}

/* The request on c has been read: its deadline no longer applies. */
static void lt_conn_received(struct lt_req *r)
{
	if (r->cc)
		__atomic_store_n(&r->cc->receiving, 0, __ATOMIC_RELEASE);
}

/* The request on c is over: the next one, if any, starts its clock now. */
static void lt_conn_next(struct lt_req *r)
{
	if (!r->cc)
		return;
	__atomic_store_n(&r->cc->since_ns, lt_now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&r->cc->receiving, 1, __ATOMIC_RELEASE);
}

static void lt_mhd_log_kind(const char *kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	lt_log_vrl(kind, LT_LOG_WARN, fmt, ap);
	va_end(ap);
}

static void lt_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	if (LT_LOG_WARN > lt_log_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n') /* MHD ends its lines; ours add one */
		line[--n] = '\0';
	lt_mhd_log_kind(fmt, "http: %s", line);
}

/*
 * libmicrohttpd's per-connection memory pool holds the request head (parsed
 * in place), its header records and the response head. MHD 0.9.75 zeroes it
 * on every request: the whole pool when it resets for the next request, and
 * the unused part of the read buffer (half the pool) when it shrinks it
 * before replying. At 32 KiB that was 48 KiB of memset per request, the
 * largest user-space cost of a consume (15% of the agent's CPU samples).
 * 16 KiB holds a request head of about 15 KiB: a bearer token of
 * LT_JWT_MAX_LEN and several KiB of other fields. A longer head gets MHD's
 * 431 and the connection is closed (tests/e2e/test_http_head_limit.sh).
 */
#define LT_HTTP_POOL_BYTES 16384u
_Static_assert(LT_HTTP_POOL_BYTES >= LT_JWT_MAX_LEN + 4096, "the pool must hold the largest token");

/*
 * 4096 connections need as many descriptors; a service manager's default
 * soft limit is often 1024, at which accept() fails and every client is
 * refused. Raise the soft limit as far as the hard one allows.
 */
#define LT_API_MAX_CONNS 4096u

static void lt_api_nofile(void)
{
	struct rlimit rl;
	rlim_t want = LT_API_MAX_CONNS + 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur < want)
		log_warn("api: open files limited to %llu (ulimit -n): fewer than %u clients can "
			 "connect at once",
			 (unsigned long long)rl.rlim_cur, LT_API_MAX_CONNS);
}

static int lt_conns_start(struct lt_httpd *a, __u64 timeout_ns)
{
	struct lt_http_conns *cs = calloc(1, sizeof(*cs));

	if (!cs)
		return -ENOMEM;
	pthread_mutex_init(&cs->lock, NULL);
	cs->head.next = cs->head.prev = &cs->head;
	cs->timeout_ns = timeout_ns;
	if (pthread_create(&cs->sweeper, NULL, lt_conn_sweeper, cs)) {
		pthread_mutex_destroy(&cs->lock);
		free(cs);
		return -EAGAIN;
	}
	a->conns = cs;
	return 0;
}

static void lt_conns_stop(struct lt_httpd *a)
{
	struct lt_http_conns *cs = a->conns;

	if (!cs)
		return;
	__atomic_store_n(&cs->stop, 1, __ATOMIC_RELAXED);
	pthread_join(cs->sweeper, NULL);
	pthread_mutex_destroy(&cs->lock);
	free(cs);
	a->conns = NULL;
}

/* A body buffer larger than this is freed when its request completes. */
#define LT_REQ_BODY_KEEP 4096u

/* The state of a new request on cc (NULL: an untracked connection). */
static struct lt_req *lt_req_new(struct lt_http_conn *cc)
{
	struct lt_req *r = cc && !cc->req_busy ? cc->req : NULL;
	char *buf;
	size_t cap;

	if (!r) {
		r = malloc(sizeof(*r));
		if (!r)
			return NULL;
		r->buf = NULL;
		r->cap = 0;
		if (cc && !cc->req_busy && !cc->req)
			cc->req = r; /* kept for the connection's next requests */
	}
	if (cc && r == cc->req)
		cc->req_busy = 1;
	buf = r->buf;
	cap = r->cap;
	memset(r, 0, offsetof(struct lt_req, principal));
	r->buf = buf;
	r->cap = cap;
	r->cc = cc;
	lt_principal_clear(&r->principal);
	return r;
}

static void lt_req_done(struct lt_req *r)
{
	struct lt_http_conn *cc = r->cc;

	if (cc && r == cc->req) {
		if (r->cap > LT_REQ_BODY_KEEP) {
			free(r->buf);
			r->buf = NULL;
			r->cap = 0;
		}
		cc->req_busy = 0;
		return;
	}
	free(r->buf);
	free(r);
}

static enum MHD_Result lt_handle(struct lt_httpd *a, const void *cp, struct MHD_Connection *conn,
				 const char *url, const char *method, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct lt_req *r = *con_cls;

	if (!r) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

		r = lt_req_new(ci ? ci->socket_context : NULL);
		if (!r)
			return MHD_NO;
		r->app = a->o.app;
		r->conn = conn;
		r->method = method;
		r->url = url;
		r->start_ns = lt_now_ns();
		*con_cls = r;
		/*
		 * Answered once the body is drained, not now: a reply queued
		 * before the body is read is often lost to the RST that closing
		 * a socket with unread data sends.
		 */
		if (!lt_framing_ok(conn, &r->bad_framing))
			r->too_big = 1; /* never buffer the body */
		return MHD_YES;
	}
	if (r->bad_framing && !*upload_size) {
		const char *hdrs[] = { "Connection", "close", NULL };
		char d[160];

		snprintf(d, sizeof(d), "the request has %s (RFC 9112 6.3)", r->bad_framing);
		return lt_reply_json_h(
			r, 400,
			lt_problem_json(400, "bad-framing", "Ambiguous message length", NULL, d),
			"application/problem+json", hdrs);
	}
	if (*upload_size) {
		unsigned max_body = a->o.max_body ? a->o.max_body(cp) : 0;

		/* refuse, do not buffer, what is over the limit */
		if (r->too_big || r->len + *upload_size > max_body) {
			r->too_big = 1;
			r->body = NULL;
			r->len = 0;
		} else {
			size_t need = r->len + *upload_size + 1;

			if (need > r->cap) {
				char *nb = realloc(r->buf, need);

				if (!nb)
					return MHD_NO;
				r->buf = nb;
				r->cap = need;
			}
			memcpy(r->buf + r->len, upload, *upload_size);
			r->len += *upload_size;
			r->buf[r->len] = '\0';
			r->body = r->buf;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	r->cfg = cp;
	lt_conn_received(r);
	if (r->too_big)
		return lt_problem(r, 413, "body-too-large", "Body too large", NULL,
				  "request bodies are limited to %u bytes",
				  a->o.max_body ? a->o.max_body(cp) : 0);
	return lt_route(a, r);
}

/* Every call reads one config snapshot, held until it returns. */
static enum MHD_Result lt_handler(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct lt_httpd *a = cls;
	const void *cp = NULL;
	enum MHD_Result ret;
	unsigned tok = 0;

	(void)version;
	if (a->o.cfg)
		cp = lt_snap_get(a->o.cfg, &tok);
	ret = lt_handle(a, cp, conn, url, method, upload, upload_size, con_cls);
	if (*con_cls)
		((struct lt_req *)*con_cls)->cfg = NULL; /* not valid after this call */
	if (a->o.cfg)
		lt_snap_put(a->o.cfg, tok);
	return ret;
}

static void lt_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct lt_httpd *a = cls;
	struct lt_req *r = *con_cls;

	(void)conn;
	(void)toe;
	if (!r)
		return;
	if (r->status && a->o.log)
		a->o.log(r); /* the log phase */
	lt_conn_next(r);
	lt_req_done(r);
	*con_cls = NULL;
}

int lt_httpd_start(struct lt_httpd **out, const struct lt_httpd_opts *o, char *err, size_t errlen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct lt_httpd *a;
	char host[64];
	char *colon;
	long port;

	snprintf(host, sizeof(host), "%s", o->listen);
	colon = strrchr(host, ':');
	if (!colon) {
		snprintf(err, errlen, "api listen '%s' is not ADDR:PORT", o->listen);
		return -EINVAL;
	}
	*colon = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "api listen '%s' is not an IPv4 ADDR:PORT", o->listen);
		return -EINVAL;
	}
	sa.sin_port = htons((unsigned short)port);
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->o = *o;
	a->o.listen = NULL; /* the caller's, read only here */
	lt_api_nofile();
	if (lt_conns_start(a, o->request_timeout_ns)) {
		free(a);
		return -ENOMEM;
	}
	a->d = MHD_start_daemon(
		MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, lt_handler, a,
		/* first, or MHD warns that it may log through its own logger */
		MHD_OPTION_EXTERNAL_LOGGER, lt_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
		(struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, o->threads,
		MHD_OPTION_CONNECTION_LIMIT, LT_API_MAX_CONNS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		o->conns_per_client, MHD_OPTION_CONNECTION_TIMEOUT, 15u,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)LT_HTTP_POOL_BYTES,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_NOTIFY_COMPLETED, lt_completed, a,
		MHD_OPTION_NOTIFY_CONNECTION, lt_conn_notify, a, MHD_OPTION_END);
	if (!a->d) {
		lt_conns_stop(a);
		free(a);
		snprintf(err, errlen, "cannot listen on %s (in use, or not a local address?)",
			 o->listen);
		return -EADDRINUSE;
	}
	log_info("api: listening on http://%s", o->listen);
	*out = a;
	return 0;
}

void lt_httpd_stop(struct lt_httpd *a)
{
	if (!a)
		return;
	if (a->d)
		MHD_stop_daemon(a->d);
	lt_conns_stop(a);
	free(a);
}
