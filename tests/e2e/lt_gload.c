// SPDX-License-Identifier: MIT
/*
 * lt_gload - drives POST /api/v1/tokens/consume (or any JSON POST) at a paced rate over
 * keep-alive connections, one thread each, and prints one line per request:
 *   <send unix ns> <answer unix ns> <HTTP status>
 * so that a script knows when each admission happened (between the two times) on the
 * same clock as the agents' event times (CLOCK_REALTIME). For tests/e2e/test_global.sh
 * and scripts/bench_global.sh: the overshoot of a global bucket over all hosts.
 *
 * usage: lt_gload -a IPV4:PORT -p PATH -H 'Name: value' -b BODY -r RATE -d SECONDS [-c CONNS]
 *   RATE requests/s over all connections (each paced at RATE/CONNS; a slow answer delays
 *   only its own connection's next request).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GL_MAX_CONNS 64
#define GL_MAX_HDRS 8

struct gl_rec {
	uint64_t send_ns, recv_ns;
	int status;
};

struct gl_conn {
	pthread_t thr;
	double period_ns;
	uint64_t t0_ns, end_ns;
	struct gl_rec *rec;
	size_t n, cap;
};

static struct sockaddr_in addr;
static char req[8192];
static size_t req_len;

static uint64_t gl_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int gl_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One request on fd: the status, or -1 (the connection is gone). */
static int gl_once(int fd)
{
	char buf[16384], *hend, *cl;
	size_t len = 0, need;
	ssize_t k;
	int status;

	for (size_t off = 0; off < req_len; off += (size_t)k) {
		k = write(fd, req + off, req_len - off);
		if (k <= 0)
			return -1;
	}
	for (;;) {
		k = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (k <= 0)
			return -1;
		len += (size_t)k;
		buf[len] = 0;
		hend = strstr(buf, "\r\n\r\n");
		if (!hend)
			continue;
		cl = strcasestr(buf, "\r\ncontent-length:");
		need = (size_t)(hend + 4 - buf) +
		       (cl && cl < hend ? strtoul(cl + 17, NULL, 10) : 0);
		if (len >= need)
			break;
		if (need >= sizeof(buf))
			return -1;
	}
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	return status;
}

static void *gl_run(void *arg)
{
	struct gl_conn *c = arg;
	uint64_t due, now;
	size_t i;
	int fd = -1, st;

	for (i = 0;; i++) {
		due = c->t0_ns + (uint64_t)(c->period_ns * (double)i);
		if (due >= c->end_ns)
			break;
		now = gl_real_ns();
		if (due > now) {
			struct timespec ts = { .tv_sec = (time_t)((due - now) / 1000000000ULL),
					       .tv_nsec = (long)((due - now) % 1000000000ULL) };

			nanosleep(&ts, NULL);
		}
		if (fd < 0)
			fd = gl_connect();
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 1024;
			c->rec = realloc(c->rec, c->cap * sizeof(*c->rec));
			if (!c->rec)
				exit(2);
		}
		c->rec[c->n].send_ns = gl_real_ns();
		st = fd < 0 ? -1 : gl_once(fd);
		c->rec[c->n].recv_ns = gl_real_ns();
		c->rec[c->n++].status = st;
		if (st < 0 && fd >= 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *a = NULL, *path = "/api/v1/tokens/consume", *body = NULL, *hdr[GL_MAX_HDRS];
	struct gl_conn conns[GL_MAX_CONNS] = { 0 };
	double rate = 0, dur = 0;
	unsigned nc = 1, nh = 0, i;
	char host[64];
	uint64_t t0;
	int opt, port, n;
	size_t j;

	while ((opt = getopt(argc, argv, "a:p:H:b:r:d:c:")) != -1) {
		switch (opt) {
		case 'a':
			a = optarg;
			break;
		case 'p':
			path = optarg;
			break;
		case 'H':
			if (nh < GL_MAX_HDRS)
				hdr[nh++] = optarg;
			break;
		case 'b':
			body = optarg;
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 'd':
			dur = atof(optarg);
			break;
		case 'c':
			nc = (unsigned)atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (!a || !body || rate <= 0 || dur <= 0 || !nc || nc > GL_MAX_CONNS ||
	    sscanf(a, "%63[0-9.]:%d", host, &port) != 2)
		goto usage;
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
		goto usage;
	n = snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: %s\r\n", path, a);
	for (i = 0; i < nh; i++)
		n += snprintf(req + n, sizeof(req) - (size_t)n, "%s\r\n", hdr[i]);
	n += snprintf(req + n, sizeof(req) - (size_t)n,
		      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		      strlen(body), body);
	if (n >= (int)sizeof(req))
		goto usage;
	req_len = (size_t)n;
	t0 = gl_real_ns();
	for (i = 0; i < nc; i++) {
		conns[i].period_ns = 1e9 * nc / rate;
		/* staggered: the connections' requests interleave evenly */
		conns[i].t0_ns = t0 + (uint64_t)(1e9 / rate * i);
		conns[i].end_ns = t0 + (uint64_t)(dur * 1e9);
		if (pthread_create(&conns[i].thr, NULL, gl_run, &conns[i]))
			return 2;
	}
	for (i = 0; i < nc; i++)
		pthread_join(conns[i].thr, NULL);
	for (i = 0; i < nc; i++)
		for (j = 0; j < conns[i].n; j++)
			printf("%llu %llu %d\n", (unsigned long long)conns[i].rec[j].send_ns,
			       (unsigned long long)conns[i].rec[j].recv_ns, conns[i].rec[j].status);
	for (i = 0; i < nc; i++)
		free(conns[i].rec);
	return 0;
usage:
	fprintf(stderr, "usage: lt_gload -a IPV4:PORT [-p PATH] [-H 'Name: value']... -b BODY "
			"-r RATE -d SECONDS [-c CONNS]\n");
	return 2;
}
