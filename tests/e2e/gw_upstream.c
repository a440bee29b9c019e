// SPDX-License-Identifier: MIT
/*
 * gw_upstream.c - the upstream of tests/e2e/test_gw_proxy.sh: a small HTTP/1.1
 * keep-alive server (a thread per connection) whose answers are chosen by path,
 * so the test controls framing and timing exactly:
 *   /echo            200, the raw request (head and body) as received, Content-Length
 *   /cl/N            N bytes of a fixed pattern, Content-Length
 *   /chunked/N       N bytes of the same pattern in chunks of 1..4096 bytes
 *   /sse/N/MS        N SSE events, one chunk each, MS ms apart
 *   /close/N         N bytes, no length: the body ends when the connection closes
 *   /hop             200 with hop-by-hop fields (Connection: X-Hop, X-Hop, Keep-Alive, Trailer)
 *   /hang            reads the request and never answers
 *   /health          200 "ok" (503 when the file named by --sick exists)
 *   /status/NNN      that status, empty body
 *   /flaky           200 on a connection's first request; a later one is read and the
 *                    connection closed without an answer (a keep-alive race, made certain)
 *   anything else    200 "path=<path> port=<port>"
 * usage: gw_upstream PORT [--sick FILE]   (prints "ready" when listening)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "http1.h"

static int port;
static const char *sick_file;

static int wall(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p += w;
		n -= w;
	}
	return 0;
}

static int wstr(int fd, const char *s)
{
	return wall(fd, s, strlen(s));
}

static void pattern(char *p, size_t n, size_t off)
{
	for (size_t i = 0; i < n; i++)
		p[i] = 'a' + (off + i) % 26;
}

static int serve(int fd, const char *req, size_t head_len, size_t body_len,
		 const struct lt_http1_msg *m, unsigned nreq)
{
	char path[512], hdr[512];
	char *buf;
	size_t n = m->path_len < sizeof(path) - 1 ? m->path_len : sizeof(path) - 1;
	unsigned a = 0, b = 0;

	memcpy(path, m->target, n);
	path[n] = 0;
	if (!strcmp(path, "/echo")) {
		snprintf(
			hdr, sizeof(hdr),
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n",
			head_len + body_len);
		return wstr(fd, hdr) || wall(fd, req, head_len + body_len);
	}
	if (sscanf(path, "/cl/%u", &a) == 1) {
		buf = malloc(a + 1);
		pattern(buf, a, 0);
		snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", a);
		int r = wstr(fd, hdr) || wall(fd, buf, a);
		free(buf);
		return r;
	}
	if (sscanf(path, "/chunked/%u", &a) == 1) {
		size_t off = 0, step = 1;
		char tmp[4096 + 32];
		if (wstr(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
			return -1;
		while (off < a) {
			size_t k = a - off < step ? a - off : step;
			int h = snprintf(tmp, sizeof(tmp), "%zx\r\n", k);
			pattern(tmp + h, k, off);
			memcpy(tmp + h + k, "\r\n", 2);
			if (wall(fd, tmp, h + k + 2))
				return -1;
			off += k;
			step = step * 3 % 4093 + 1;
		}
		return wstr(fd, "0\r\n\r\n");
	}
	if (sscanf(path, "/sse/%u/%u", &a, &b) == 2) {
		if (wstr(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			     "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"))
			return -1;
		for (unsigned i = 0; i < a; i++) {
			char ev[128], ch[160];
			int el = snprintf(ev, sizeof(ev), "data: {\"i\":%u}\n\n", i);
			int cl = snprintf(ch, sizeof(ch), "%x\r\n%s\r\n", el, ev);
			if (wall(fd, ch, cl))
				return -1;
			usleep(b * 1000);
		}
		return wstr(fd, "0\r\n\r\n");
	}
	if (sscanf(path, "/close/%u", &a) == 1) {
		buf = malloc(a + 1);
		pattern(buf, a, 0);
		wstr(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
		wall(fd, buf, a);
		free(buf);
		return -1; /* close */
	}
	if (!strcmp(path, "/flaky")) {
		if (nreq > 1)
			return -1;
		return wstr(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh");
	}
	if (!strcmp(path, "/hop"))
		return wstr(fd,
			    "HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: secret\r\n"
			    "Keep-Alive: timeout=5\r\nTrailer: X-T\r\nProxy-Authenticate: Basic\r\n"
			    "X-Kept: 1\r\nContent-Length: 2\r\n\r\nok");
	if (!strcmp(path, "/hang")) {
		sleep(600);
		return -1;
	}
	if (!strcmp(path, "/health")) {
		if (sick_file && access(sick_file, F_OK) == 0)
			return wstr(fd, "HTTP/1.1 503 Sick\r\nContent-Length: 0\r\n\r\n");
		return wstr(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	}
	if (sscanf(path, "/status/%u", &a) == 1) {
		snprintf(hdr, sizeof(hdr), "HTTP/1.1 %u X\r\nContent-Length: 0\r\n\r\n", a);
		return wstr(fd, hdr);
	}
	{
		char body[700];
		int bl = snprintf(body, sizeof(body), "path=%s port=%d", path, port);
		snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", bl);
		return wstr(fd, hdr) || wall(fd, body, bl);
	}
}

static void *conn(void *arg)
{
	int fd = (int)(long)arg;
	size_t cap = 1 << 20, len = 0;
	char *in = malloc(cap);
	struct lt_http1_msg m;
	unsigned nreq = 0;

	for (;;) {
		int r = lt_http1_parse_request(in, len, 65536, &m);
		if (r < 0)
			break;
		if (r == 0) {
			ssize_t n = read(fd, in + len, cap - len);
			if (n <= 0)
				break;
			len += n;
			continue;
		}
		/* the whole body (CL or chunked) before answering */
		size_t body = 0;
		if (m.body == LT_HTTP1_BODY_LENGTH) {
			while (len < r + m.content_length && len < cap) {
				ssize_t n = read(fd, in + len, cap - len);
				if (n <= 0)
					goto out;
				len += n;
			}
			body = m.content_length;
		} else if (m.body == LT_HTTP1_BODY_CHUNKED) {
			struct lt_http1_chunked c;
			size_t pos = r;
			lt_http1_chunked_init(&c);
			for (;;) {
				const char *d;
				size_t dl, used;
				int s = pos < len ? lt_http1_chunked_scan(&c, in + pos, len - pos,
									  &used, &d, &dl) :
						    0;
				if (s < 0)
					goto out;
				if (pos < len)
					pos += used;
				if (s == 2)
					break;
				if (pos >= len) {
					ssize_t n = read(fd, in + len, cap - len);
					if (n <= 0)
						goto out;
					len += n;
				}
			}
			body = pos - r;
		}
		if (serve(fd, in, r, body, &m, ++nreq) || !m.keep_alive)
			break;
		memmove(in, in + r + body, len - r - body);
		len -= r + body;
	}
out:
	free(in);
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int lfd, one = 1;

	if (argc < 2) {
		fprintf(stderr, "usage: gw_upstream PORT [--sick FILE]\n");
		return 2;
	}
	port = atoi(argv[1]);
	if (argc >= 4 && !strcmp(argv[2], "--sick"))
		sick_file = argv[3];
	signal(SIGPIPE, SIG_IGN);
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1024)) {
		perror("gw_upstream: bind");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		printf("accept\n");
		fflush(stdout);
		if (pthread_create(&t, NULL, conn, (void *)(long)fd)) {
			close(fd);
			continue;
		}
		pthread_detach(t);
	}
}
