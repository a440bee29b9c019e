// SPDX-License-Identifier: MIT
/* stats.c - the gateway's Prometheus metrics (stats.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include "http1.h"
#include "log.h"
#include "proxy.h"
#include "stats.h"

#define GW_ST_OTHER GW_STATS_ROUTES /* routes beyond the table */
#define GW_ST_NONE (GW_STATS_ROUTES + 1) /* no route matched */
#define GW_ST_SERIES (GW_STATS_ROUTES + 2)
#define GW_ST_CLASSES 6 /* status 1xx..5xx, and [0]: nothing was sent */
#define GW_ST_OUTCOMES 8

/* OpenTelemetry's http.server.request.duration boundaries, in µs. */
static const uint64_t gw_st_le_us[] = {
	5000,	10000,	25000,	 50000,	  75000,   100000,  250000,
	500000, 750000, 1000000, 2500000, 5000000, 7500000, 10000000
};
#define GW_ST_LE (sizeof(gw_st_le_us) / sizeof(gw_st_le_us[0]))

struct gw_st_series {
	uint64_t req[GW_ST_CLASSES];
	uint64_t le[GW_ST_LE + 1]; /* per bucket (not cumulative); [GW_ST_LE] = +Inf */
	uint64_t sum_us;
};

struct gw_st_block {
	struct gw_st_series s[GW_ST_SERIES];
	uint64_t outcome[GW_ST_OUTCOMES];
	uint64_t accepted; /* client connections */
	int64_t open; /* client connections now */
	struct lt_fail_policy fail; /* the worker's, copied by its sweep */
};

struct gw_st_shm {
	uint32_t used[GW_STATS_ROUTES]; /* route names, filled by the master */
	char name[GW_STATS_ROUTES][GW_NAME_MAX];
	uint64_t restarts, reloads_ok, reloads_refused, generation;
	unsigned workers;
	struct gw_st_block w[]; /* one per worker */
};

static struct gw_st_shm *shm;
static size_t shm_len;
static struct gw_st_block *self; /* this worker's block; NULL in the master */

/* One writer per word: a relaxed load and store, no locked instruction. */
static inline void bump(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static inline uint64_t get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

int gw_stats_open(unsigned workers)
{
	if (!workers)
		return -EINVAL;
	shm_len = sizeof(*shm) + (size_t)workers * sizeof(struct gw_st_block);
	shm = mmap(NULL, shm_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED) {
		shm = NULL;
		return -errno;
	}
	shm->workers = workers;
	for (unsigned i = 0; i < workers; i++)
		lt_fail_policy_init(&shm->w[i].fail);
	return 0;
}

void gw_stats_close(void)
{
	if (shm)
		munmap(shm, shm_len);
	shm = NULL;
	self = NULL;
}

static int route_slot(const char *name, int create)
{
	for (int i = 0; i < GW_STATS_ROUTES; i++) {
		if (__atomic_load_n(&shm->used[i], __ATOMIC_ACQUIRE)) {
			if (!strcmp(shm->name[i], name))
				return i;
			continue;
		}
		if (!create)
			return GW_ST_OTHER;
		snprintf(shm->name[i], sizeof(shm->name[i]), "%s", name);
		__atomic_store_n(&shm->used[i], 1, __ATOMIC_RELEASE);
		return i;
	}
	return GW_ST_OTHER;
}

void gw_stats_attach(struct gw_config *cfg, int create)
{
	for (unsigned i = 0; i < cfg->nroutes; i++)
		cfg->routes[i].stats_slot = shm ? route_slot(cfg->routes[i].name, create) : -1;
}

void gw_stats_worker(unsigned idx)
{
	self = shm && idx < shm->workers ? &shm->w[idx] : NULL;
	/* a predecessor killed with connections open: they died with it */
	if (self)
		__atomic_store_n(&self->open, 0, __ATOMIC_RELAXED);
}

void gw_stats_request(const struct gw_route *route, unsigned status, uint64_t dur_ns,
		      enum gw_outcome outcome)
{
	struct gw_st_series *s;
	uint64_t us = dur_ns / 1000;
	unsigned b = 0;

	if (!self)
		return;
	s = &self->s[!route		    ? GW_ST_NONE :
		     route->stats_slot >= 0 ? route->stats_slot :
					      GW_ST_OTHER];
	bump(&s->req[status >= 100 && status < 600 ? status / 100 : 0], 1);
	while (b < GW_ST_LE && us > gw_st_le_us[b])
		b++;
	bump(&s->le[b], 1);
	bump(&s->sum_us, us);
	bump(&self->outcome[(unsigned)outcome < GW_ST_OUTCOMES ? outcome : GW_ST_OUTCOMES - 1], 1);
}

void gw_stats_conn(int delta)
{
	if (!self)
		return;
	if (delta > 0)
		bump(&self->accepted, 1);
	__atomic_store_n(&self->open, __atomic_load_n(&self->open, __ATOMIC_RELAXED) + delta,
			 __ATOMIC_RELAXED);
}

void gw_stats_fail_copy(const struct lt_fail_policy *p)
{
	if (!self)
		return;
	/* only the counters move between copies: a scrape may see a tier's pair one sweep late */
	memcpy(&self->fail, p, sizeof(*p));
}

void gw_stats_worker_restarted(unsigned idx)
{
	if (!shm)
		return;
	bump(&shm->restarts, 1);
	/* the dead worker's connections died with it; its successor may not have run yet */
	if (idx < shm->workers)
		__atomic_store_n(&shm->w[idx].open, 0, __ATOMIC_RELAXED);
}

void gw_stats_reload(int ok, uint64_t generation)
{
	if (!shm)
		return;
	bump(ok ? &shm->reloads_ok : &shm->reloads_refused, 1);
	if (ok)
		__atomic_store_n(&shm->generation, generation, __ATOMIC_RELAXED);
}

/* A label value as the text format wants it: \ " and newline escaped. */
static void label(struct lt_mbuf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			lt_mbuf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			lt_mbuf_printf(b, "\\n");
		else
			lt_mbuf_printf(b, "%c", *v);
	}
}

static const char *series_name(unsigned i)
{
	return i == GW_ST_OTHER ? "_other" : i == GW_ST_NONE ? "_none" : shm->name[i];
}

static void sum_series(unsigned i, struct gw_st_series *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned w = 0; w < shm->workers; w++) {
		const struct gw_st_series *s = &shm->w[w].s[i];
		for (unsigned k = 0; k < GW_ST_CLASSES; k++)
			t->req[k] += get(&s->req[k]);
		for (unsigned k = 0; k <= GW_ST_LE; k++)
			t->le[k] += get(&s->le[k]);
		t->sum_us += get(&s->sum_us);
	}
}

/* The workers' fail policies as one: per tier name, summed. */
static void sum_fail(struct lt_fail_policy *t)
{
	const int other = LT_FAIL_MAX_TIERS;

	lt_fail_policy_init(t);
	for (unsigned w = 0; w < shm->workers; w++) {
		struct lt_fail_policy p;
		memcpy(&p, &shm->w[w].fail, sizeof(p));
		if (p.n < 0 || p.n > LT_FAIL_MAX_TIERS)
			continue; /* torn mid-copy: the next scrape has it */
		for (int i = 0; i < p.n; i++) {
			int j;
			p.tier[i][LT_FAIL_TIER_LEN - 1] = '\0';
			for (j = 0; j < t->n && strcmp(t->tier[j], p.tier[i]); j++)
				;
			if (j == t->n && t->n < LT_FAIL_MAX_TIERS) {
				memcpy(t->tier[j], p.tier[i], LT_FAIL_TIER_LEN);
				t->mode[j] = p.mode[i];
				t->n++;
			} else if (j == t->n) {
				j = other;
			}
			t->opened[j] += p.opened[i];
			t->closed[j] += p.closed[i];
		}
		t->opened[other] += p.opened[other];
		t->closed[other] += p.closed[other];
	}
}

void gw_stats_write(struct lt_mbuf *b)
{
	static const char *const cls[] = { "none", "1xx", "2xx", "3xx", "4xx", "5xx" };
	struct lt_fail_policy fp;
	uint64_t accepted = 0, v[GW_ST_OUTCOMES] = { 0 };
	int64_t open = 0;

	if (!shm)
		return;
	lt_mbuf_printf(b, "# HELP lt_gateway_requests_total Requests finished, by route and the "
			  "status class sent (none: nothing was sent).\n"
			  "# TYPE lt_gateway_requests_total counter\n");
	for (unsigned i = 0; i < GW_ST_SERIES; i++) {
		struct gw_st_series t;
		if (i < GW_STATS_ROUTES && !__atomic_load_n(&shm->used[i], __ATOMIC_ACQUIRE))
			continue;
		sum_series(i, &t);
		for (unsigned k = 0; k < GW_ST_CLASSES; k++) {
			if (!t.req[k] && k != 2)
				continue;
			lt_mbuf_printf(b, "lt_gateway_requests_total{route=\"");
			label(b, series_name(i));
			lt_mbuf_printf(b, "\",code=\"%s\"} %llu\n", cls[k],
				       (unsigned long long)t.req[k]);
		}
	}
	lt_mbuf_printf(b, "# HELP lt_gateway_request_duration_seconds From the complete request "
			  "head to the last byte sent, by route.\n"
			  "# TYPE lt_gateway_request_duration_seconds histogram\n");
	for (unsigned i = 0; i < GW_ST_SERIES; i++) {
		struct gw_st_series t;
		uint64_t cum = 0;
		if (i < GW_STATS_ROUTES && !__atomic_load_n(&shm->used[i], __ATOMIC_ACQUIRE))
			continue;
		sum_series(i, &t);
		for (unsigned k = 0; k <= GW_ST_LE; k++) {
			cum += t.le[k];
			lt_mbuf_printf(b, "lt_gateway_request_duration_seconds_bucket{route=\"");
			label(b, series_name(i));
			if (k < GW_ST_LE)
				lt_mbuf_printf(b, "\",le=\"%g\"} %llu\n", gw_st_le_us[k] / 1e6,
					       (unsigned long long)cum);
			else
				lt_mbuf_printf(b, "\",le=\"+Inf\"} %llu\n",
					       (unsigned long long)cum);
		}
		lt_mbuf_printf(b, "lt_gateway_request_duration_seconds_sum{route=\"");
		label(b, series_name(i));
		lt_mbuf_printf(b, "\"} %.6f\n", t.sum_us / 1e6);
		lt_mbuf_printf(b, "lt_gateway_request_duration_seconds_count{route=\"");
		label(b, series_name(i));
		lt_mbuf_printf(b, "\"} %llu\n", (unsigned long long)cum);
	}
	for (unsigned w = 0; w < shm->workers; w++) {
		for (unsigned k = 0; k < GW_ST_OUTCOMES; k++)
			v[k] += get(&shm->w[w].outcome[k]);
		accepted += get(&shm->w[w].accepted);
		open += __atomic_load_n(&shm->w[w].open, __ATOMIC_RELAXED);
	}
	lt_mbuf_printf(b, "# HELP lt_gateway_exchanges_total Exchanges by how they ended.\n"
			  "# TYPE lt_gateway_exchanges_total counter\n");
	for (unsigned k = 0; k <= GW_OUT_ABORTED; k++)
		lt_mbuf_printf(b, "lt_gateway_exchanges_total{outcome=\"%s\"} %llu\n",
			       gw_outcome_name((enum gw_outcome)k), (unsigned long long)v[k]);
	lt_mbuf_printf(b,
		       "# HELP lt_gateway_connections_accepted_total Client connections accepted.\n"
		       "# TYPE lt_gateway_connections_accepted_total counter\n"
		       "lt_gateway_connections_accepted_total %llu\n"
		       "# HELP lt_gateway_connections Client connections open.\n"
		       "# TYPE lt_gateway_connections gauge\n"
		       "lt_gateway_connections %lld\n",
		       (unsigned long long)accepted, (long long)(open > 0 ? open : 0));
	sum_fail(&fp);
	lt_fail_policy_metrics(&fp, b);
	lt_mbuf_printf(b,
		       "# HELP lt_gateway_workers Worker processes configured.\n"
		       "# TYPE lt_gateway_workers gauge\n"
		       "lt_gateway_workers %u\n"
		       "# HELP lt_gateway_worker_restarts_total Workers that died and were "
		       "replaced.\n"
		       "# TYPE lt_gateway_worker_restarts_total counter\n"
		       "lt_gateway_worker_restarts_total %llu\n"
		       "# HELP lt_gateway_config_reloads_total SIGHUP reloads, applied or refused "
		       "(the old config stays).\n"
		       "# TYPE lt_gateway_config_reloads_total counter\n"
		       "lt_gateway_config_reloads_total{result=\"applied\"} %llu\n"
		       "lt_gateway_config_reloads_total{result=\"refused\"} %llu\n",
		       shm->workers, (unsigned long long)get(&shm->restarts),
		       (unsigned long long)get(&shm->reloads_ok),
		       (unsigned long long)get(&shm->reloads_refused));
}

/* --- the master's listener --------------------------------------------------------- */

int gw_metrics_listen(const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1, ret;

	if (gw_parse_listen(addr, &ss, &sl)) {
		snprintf(err, errlen, "bad metrics listen address \"%s\" (want HOST:PORT)", addr);
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 64)) {
		ret = -errno;
		close(fd);
		goto fail;
	}
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s for metrics: %s", addr, strerror(-ret));
	return ret;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready (events) until deadline_ms: 1, or 0 when the time is up. */
static int wait_fd(int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = mono_ms();
		struct pollfd p = { fd, events, 0 };
		int n;
		if (now >= deadline_ms)
			return 0;
		n = poll(&p, 1, (int)(deadline_ms - now));
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return 0;
	}
}

static void send_all(int fd, const char *p, size_t n, uint64_t deadline_ms)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0) {
			p += k;
			n -= (size_t)k;
		} else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!wait_fd(fd, POLLOUT, deadline_ms))
				return;
		} else {
			return;
		}
	}
}

static void reply(int fd, unsigned status, const char *reason, const char *ctype, const char *body,
		  size_t len, int head_only, uint64_t deadline_ms)
{
	char h[256];
	int n = snprintf(h, sizeof(h),
			 "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n",
			 status, reason, ctype, len);

	send_all(fd, h, (size_t)n, deadline_ms);
	if (!head_only)
		send_all(fd, body, len, deadline_ms);
}

/* A connection's head was read whole (head > 0, m), or can never be (head < 0): answers it. */
static void metrics_answer(int fd, int head, const struct lt_http1_msg *m,
			   void (*extra)(struct lt_mbuf *b, void *arg), void *arg,
			   uint64_t deadline)
{
	if (head <= 0) {
		static const char bad[] = "malformed request\n";
		reply(fd, 400, "Bad Request", "text/plain", bad, sizeof(bad) - 1, 0, deadline);
	} else if (!((m->method_len == 3 && !memcmp(m->method, "GET", 3)) ||
		     (m->method_len == 4 && !memcmp(m->method, "HEAD", 4)))) {
		static const char bad[] = "only GET /metrics\n";
		reply(fd, 405, "Method Not Allowed", "text/plain", bad, sizeof(bad) - 1, 0,
		      deadline);
	} else if (m->path_len != 8 || memcmp(m->target, "/metrics", 8)) {
		static const char bad[] = "not found: the metrics are at /metrics\n";
		reply(fd, 404, "Not Found", "text/plain", bad, sizeof(bad) - 1, 0, deadline);
	} else {
		struct lt_mbuf b = { 0 };
		gw_stats_write(&b);
		if (extra)
			extra(&b, arg);
		if (b.oom) {
			static const char bad[] = "out of memory\n";
			reply(fd, 503, "Service Unavailable", "text/plain", bad, sizeof(bad) - 1, 0,
			      deadline);
		} else {
			reply(fd, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.p, b.len,
			      m->method_len == 4, deadline);
		}
		free(b.p);
	}
	shutdown(fd, SHUT_WR);
}

/*
 * The connections of one call, read side by side: served one at a time, a
 * silent client held the master for its whole second while the scrapes
 * queued behind it (100 silent connections delayed a real scrape by 19 s,
 * past any scrape_timeout). Only the master calls this: static tables, the
 * heads apart (their pages are touched only by clients that send bytes).
 */
static struct metrics_conn {
	int fd;
	size_t len;
	uint64_t since_ms; /* accepted at */
} metrics_conns[GW_METRICS_CONNS];
static char metrics_heads[GW_METRICS_CONNS][GW_METRICS_HEAD];

void gw_metrics_serve(int lfd, void (*extra)(struct lt_mbuf *b, void *arg), void *arg)
{
	/*
	 * The master's other work waits at most budget_ms per call. Connections
	 * are accepted until accept_ms, so each one has at least
	 * budget_ms - accept_ms to send its head (a scraper sends it with its
	 * first packet). When the table is full, the oldest is cut for a new
	 * one if it had grace_ms, else the new ones wait in the backlog: a flood
	 * of silent connections cannot cut a scraper before its head is read.
	 */
	const uint64_t budget_ms = 1000, accept_ms = 800, grace_ms = 200;
	uint64_t start = mono_ms(), deadline = start + budget_ms;
	struct pollfd p[GW_METRICS_CONNS + 1];
	unsigned n = 0, i;

	for (;;) {
		uint64_t now = mono_ms();
		int accepting = now < start + accept_ms, k;

		while (accepting) {
			unsigned j = n;
			int fd;

			if (n == GW_METRICS_CONNS) {
				for (i = j = 0; i < n; i++)
					if (metrics_conns[i].since_ms < metrics_conns[j].since_ms)
						j = i;
				if (now - metrics_conns[j].since_ms < grace_ms)
					break;
			}
			fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0)
				break;
			if (j < n)
				close(metrics_conns[j].fd);
			else
				n++;
			metrics_conns[j] = (struct metrics_conn){ fd, 0, now };
		}
		if (!n || now >= deadline)
			break;
		for (i = 0; i < n; i++)
			p[i] = (struct pollfd){ metrics_conns[i].fd, POLLIN, 0 };
		p[n] = (struct pollfd){ lfd, POLLIN, 0 };
		/* while accepting: wake for the listener, at most every grace_ms (a full table) */
		k = poll(p, n + (accepting && n < GW_METRICS_CONNS ? 1 : 0),
			 (int)(accepting ? grace_ms : deadline - now));
		if (k < 0 && errno != EINTR)
			break;
		/* downwards: the last connection moves into a finished one's place */
		for (i = n; k > 0 && i-- > 0;) {
			struct metrics_conn *c = &metrics_conns[i];
			char *buf = metrics_heads[i];
			struct lt_http1_msg m;
			ssize_t r;
			int head, done = 0;

			if (!p[i].revents)
				continue;
			r = recv(c->fd, buf + c->len, GW_METRICS_HEAD - c->len, 0);
			if (r > 0) {
				c->len += (size_t)r;
				head = lt_http1_parse_request(buf, c->len, GW_METRICS_HEAD, &m);
				if (head == LT_HTTP1_PARTIAL && c->len == GW_METRICS_HEAD)
					head = -1; /* a head that can never end */
				done = head != LT_HTTP1_PARTIAL;
				if (done)
					metrics_answer(c->fd, head, &m, extra, arg, deadline);
			} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
				done = 1; /* gone: nothing to answer */
			}
			if (done) {
				close(c->fd);
				if (i != --n) {
					*c = metrics_conns[n];
					memcpy(buf, metrics_heads[n], c->len);
				}
			}
		}
	}
	/* too slow: cut */
	for (i = 0; i < n; i++)
		close(metrics_conns[i].fd);
}
