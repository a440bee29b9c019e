// SPDX-License-Identifier: MIT
/*
 * lt_loadgen - an open-loop HTTP/1.1 load generator for `make bench` (scripts/bench_gw.sh):
 * requests are scheduled at a fixed rate, request i at t0 + i/rate, whatever the server
 * does, and each latency is measured from its SCHEDULED time, not from when it could be
 * sent. A server that stalls therefore shows its stall in every request scheduled behind
 * it (no coordinated omission, as wrk2 does it; Debian has no wrk2, and h2load --rps
 * reports no percentiles). Debian's wrk measures closed-loop throughput; this measures
 * latency at a given rate.
 *
 * One thread, one epoll; C keep-alive connections (one request in flight each, no
 * pipelining); a request due while every connection is busy waits in a queue (its wait
 * counts). The first WARMUP seconds of the schedule are sent but not recorded. Responses
 * must carry Content-Length (the bench's upstream, the gateway and nginx all do).
 *
 * usage: lt_loadgen -u http://IPV4:PORT/PATH -r RATE -d SECONDS [-c CONNS] [-w WARMUP_S]
 *                   [-H 'Name: value']... [-b BODY]
 * -b: every request a POST carrying BODY (with its Content-Length); without it, a GET.
 * prints one line: rate=... sent=... done=... errors=... non2xx=... p50_us=... p90_us=...
 *                  p99_us=... p999_us=... max_us=... (latencies of the recorded requests)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LG_BUF 65536
#define LG_MAX_HDRS 8

struct conn {
	int fd;
	int busy;
	uint64_t sched_ns; /* of the request in flight */
	size_t len; /* bytes in buf */
	char buf[LG_BUF];
};

static struct sockaddr_in addr;
static char req[4096];
static size_t req_len;
static struct conn *conns;
static unsigned nconns;
static int epfd;
/* idle connections (a FIFO, so that every connection is used) and due requests */
static unsigned *idle, idle_head, idle_n;
static uint64_t *queue;
static size_t q_head, q_n, q_cap;
static uint64_t *lat;
static size_t nlat;
static uint64_t warm_end_ns;
static unsigned long long sent, done, errors, non2xx, reconnects;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int conn_open(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* a blocking connect: done once per connection, before the clock starts */
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev)) {
		close(c->fd);
		c->fd = -1;
		return -errno;
	}
	c->busy = 0;
	c->len = 0;
	return 0;
}

static void idle_push(unsigned i)
{
	idle[(idle_head + idle_n++) % nconns] = i;
}

static void send_on(struct conn *c, uint64_t sched)
{
	size_t off = 0;

	c->busy = 1;
	c->sched_ns = sched;
	sent++;
	/* a few hundred bytes into an empty socket buffer: one send, never EAGAIN */
	while (off < req_len) {
		ssize_t n = send(c->fd, req + off, req_len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errors++;
			c->busy = 0;
			return;
		}
		off += n;
	}
}

/* A request is due at sched: on an idle connection, else queued. */
static void dispatch(uint64_t sched)
{
	if (idle_n) {
		unsigned i = idle[idle_head];
		idle_head = (idle_head + 1) % nconns;
		idle_n--;
		send_on(&conns[i], sched);
		return;
	}
	if (q_n == q_cap) {
		errors++; /* the queue holds a whole run: never */
		return;
	}
	queue[(q_head + q_n++) % q_cap] = sched;
}

static void conn_free_again(struct conn *c)
{
	if (q_n) {
		uint64_t s = queue[q_head];
		q_head = (q_head + 1) % q_cap;
		q_n--;
		send_on(c, s);
		return;
	}
	idle_push((unsigned)(c - conns));
}

static void conn_reset(struct conn *c)
{
	if (c->busy)
		errors++;
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	reconnects++;
	if (conn_open(c)) {
		c->fd = -1;
		return;
	}
	conn_free_again(c);
}

/* The length of one complete response at buf, 0 if incomplete, -1 if unusable. */
static long response_len(const char *b, size_t n, unsigned *status)
{
	const char *end = memmem(b, n, "\r\n\r\n", 4), *p;
	long head, cl = -1;

	if (!end)
		return n >= LG_BUF ? -1 : 0;
	head = end + 4 - b;
	if (n < 13 || memcmp(b, "HTTP/1.", 7))
		return -1;
	*status = (unsigned)atoi(b + 9);
	for (p = memchr(b, '\n', head); p && p < end; p = memchr(p + 1, '\n', end - p)) {
		if (!strncasecmp(p + 1, "content-length:", 15)) {
			cl = atol(p + 16);
			break;
		}
	}
	if (cl < 0 || head + cl > LG_BUF)
		return -1;
	return (size_t)(head + cl) <= n ? head + cl : 0;
}

static void conn_read(struct conn *c, uint64_t now)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, LG_BUF - c->len, MSG_DONTWAIT);
		unsigned status = 0;
		long rl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			conn_reset(c);
			return;
		}
		c->len += n;
		while (c->len && (rl = response_len(c->buf, c->len, &status)) != 0) {
			if (rl < 0 || !c->busy) {
				conn_reset(c);
				return;
			}
			done++;
			if (status < 200 || status > 299)
				non2xx++;
			if (c->sched_ns >= warm_end_ns)
				lat[nlat++] = now - c->sched_ns;
			memmove(c->buf, c->buf + rl, c->len - rl);
			c->len -= rl;
			c->busy = 0;
			conn_free_again(c);
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(double p)
{
	size_t i;

	if (!nlat)
		return 0;
	i = (size_t)(p * (double)(nlat - 1) + 0.5);
	return (double)lat[i] / 1000.0;
}

static void usage(void)
{
	fprintf(stderr, "usage: lt_loadgen -u http://IPV4:PORT/PATH -r RATE -d SECONDS "
			"[-c CONNS] [-w WARMUP_S] [-H 'Name: value']... [-b BODY]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *url = NULL, *body = NULL, *hdrs[LG_MAX_HDRS];
	double rate = 0, secs = 0, warm = 0;
	unsigned nh = 0, port;
	char host[64], path[1024];
	uint64_t t0, interval, total, i = 0, next, end;
	struct epoll_event evs[256];
	int opt;

	nconns = 64;
	while ((opt = getopt(argc, argv, "u:r:d:c:w:H:b:")) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 'd':
			secs = atof(optarg);
			break;
		case 'c':
			nconns = (unsigned)atoi(optarg);
			break;
		case 'w':
			warm = atof(optarg);
			break;
		case 'b':
			body = optarg;
			break;
		case 'H':
			if (nh == LG_MAX_HDRS)
				usage();
			hdrs[nh++] = optarg;
			break;
		default:
			usage();
		}
	}
	if (!url || (body && strlen(body) > 2048) || rate <= 0 || secs <= 0 || !nconns ||
	    nconns > 100000 || warm < 0 ||
	    sscanf(url, "http://%63[0-9.]:%u%1023s", host, &port, path) != 3 || port > 65535)
		usage();
	addr.sin_family = AF_INET;
	addr.sin_port = htons(port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
		usage();
	req_len = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s:%u\r\n",
			   body ? "POST" : "GET", path, host, port);
	if (body)
		req_len += snprintf(req + req_len, sizeof(req) - req_len, "Content-Length: %zu\r\n",
				    strlen(body));
	for (unsigned k = 0; k < nh; k++)
		req_len += snprintf(req + req_len, sizeof(req) - req_len, "%s\r\n", hdrs[k]);
	req_len += snprintf(req + req_len, sizeof(req) - req_len, "\r\n%s", body ? body : "");
	if (req_len >= sizeof(req))
		usage();

	total = (uint64_t)(rate * (secs + warm));
	interval = (uint64_t)(1e9 / rate);
	q_cap = total + 1;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	conns = calloc(nconns, sizeof(*conns));
	idle = calloc(nconns, sizeof(*idle));
	queue = calloc(q_cap, sizeof(*queue));
	lat = calloc(total + 1, sizeof(*lat));
	if (epfd < 0 || !conns || !idle || !queue || !lat) {
		fprintf(stderr, "lt_loadgen: out of memory\n");
		return 1;
	}
	for (unsigned k = 0; k < nconns; k++) {
		int r = conn_open(&conns[k]);
		if (r) {
			fprintf(stderr, "lt_loadgen: connect %s:%u: %s\n", host, port,
				strerror(-r));
			return 1;
		}
		idle_push(k);
	}

	t0 = now_ns() + 1000000;
	warm_end_ns = t0 + (uint64_t)(warm * 1e9);
	end = t0 + total * interval;
	for (;;) {
		uint64_t now = now_ns();
		struct timespec to;
		int n;

		while (i < total && (next = t0 + i * interval) <= now) {
			dispatch(next);
			i++;
		}
		if (i == total && done + errors >= sent && !q_n)
			break;
		if (i == total && now > end + 5000000000ULL) {
			errors += sent - done; /* still unanswered 5 s after the last was due */
			break;
		}
		if (i < total) {
			uint64_t d = t0 + i * interval - now;
			to.tv_sec = d / 1000000000ULL;
			to.tv_nsec = d % 1000000000ULL;
		} else {
			to.tv_sec = 0;
			to.tv_nsec = 50000000;
		}
		n = epoll_pwait2(epfd, evs, 256, &to, NULL);
		now = now_ns();
		for (int k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;
			if (c->fd >= 0)
				conn_read(c, now);
		}
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	printf("rate=%.0f sent=%llu done=%llu errors=%llu non2xx=%llu reconnects=%llu "
	       "recorded=%zu p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n",
	       rate, sent, done, errors, non2xx, reconnects, nlat, pct(0.50), pct(0.90), pct(0.99),
	       pct(0.999), nlat ? (double)lat[nlat - 1] / 1000.0 : 0.0);
	for (unsigned k = 0; k < nconns; k++)
		if (conns[k].fd >= 0)
			close(conns[k].fd);
	free(conns);
	free(idle);
	free(queue);
	free(lat);
	return 0;
}
