// SPDX-License-Identifier: MIT
/*
 * test_httpd_reuse.c - liblt's HTTP server keeps one request state per
 * connection and reuses it for the connection's next requests (no 4.5 KiB
 * calloc per request), and a small body keeps its buffer. Nothing of one
 * request may reach the next: on one keep-alive connection, a request after
 * an authenticated one sees an anonymous principal, a request without a body
 * sees none (not the previous bytes), and bodies of every size, above and
 * below the kept-buffer size, arrive whole. Guards a performance change:
 * the old server, fresh state per request, passes it too.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "lt_test.h"
#include "httpd.h"

struct test_app {
	int unused;
};

static struct test_app app;

/* the access phase: the principal named by X-Sub, if any */
static int access_phase(struct lt_req *r, enum MHD_Result *res)
{
	const char *s = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Sub");

	(void)res;
	if (s) {
		snprintf(r->principal.sub, sizeof(r->principal.sub), "%s", s);
		snprintf(r->principal.tier, sizeof(r->principal.tier), "T");
		r->principal.admin = 1;
		r->principal.norgs = 1;
		snprintf(r->principal.orgs[0], sizeof(r->principal.orgs[0]), "org-of-%s", s);
	}
	return 0;
}

/* what the request carried: principal and body (length and a checksum) */
static enum MHD_Result echo(struct lt_req *r)
{
	unsigned long sum = 0;
	size_t i;

	for (i = 0; i < r->len; i++)
		sum = sum * 31 + (unsigned char)r->body[i];
	return lt_reply_json(r, 200,
			     json_pack("{s:s, s:s, s:b, s:i, s:b, s:I, s:I}", "sub",
				       r->principal.sub, "tier", r->principal.tier, "admin",
				       r->principal.admin, "norgs", r->principal.norgs, "body",
				       r->body != NULL, "len", (json_int_t)r->len, "sum",
				       (json_int_t)sum));
}

static unsigned max_body(const void *cfg)
{
	(void)cfg;
	return 65536;
}

static const struct lt_route routes[] = {
	{ .path = "/who", .access = access_phase, .handler = echo },
	{ .path = "/open", .handler = echo },
	{ 0 },
};

static unsigned short port;
static int fd = -1;

static int conn_open(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { 5, 0 };

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return connect(fd, (struct sockaddr *)&sa, sizeof(sa));
}

/* One request on the open connection; its JSON answer, or NULL. */
static json_t *ask(const char *path, const char *hdrs, const char *body, size_t blen)
{
	char head[512], buf[8192];
	size_t got = 0, clen = 0;
	char *end = NULL, *cl;
	ssize_t n;

	snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n",
		 path, hdrs, blen);
	if (write(fd, head, strlen(head)) != (ssize_t)strlen(head) ||
	    (blen && write(fd, body, blen) != (ssize_t)blen))
		return NULL;
	/* the head, then exactly Content-Length bytes: the connection stays open */
	while (got + 1 < sizeof(buf)) {
		n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			return NULL;
		got += (size_t)n;
		buf[got] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			cl = strcasestr(buf, "Content-Length:");
			clen = cl ? strtoul(cl + 15, NULL, 10) : 0;
		}
		if (end && got >= (size_t)(end + 4 - buf) + clen)
			break;
	}
	return end ? json_loadb(end + 4, clen, 0, NULL) : NULL;
}

static unsigned long sum_of(const char *s, size_t n)
{
	unsigned long sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum = sum * 31 + (unsigned char)s[i];
	return sum;
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "(missing)";
}

static void next_request_sees_an_anonymous_principal(void)
{
	json_t *a = ask("/who", "X-Sub: alice\r\n", "secret", 6);
	json_t *b = ask("/open", "", NULL, 0);
	json_t *c = ask("/who", "", NULL, 0); /* an access phase that sets nothing */

	CHECK(a && !strcmp(str(a, "sub"), "alice") && json_is_true(json_object_get(a, "admin")));
	CHECK(b && !strcmp(str(b, "sub"), "") && !strcmp(str(b, "tier"), ""));
	CHECK(b && json_is_false(json_object_get(b, "admin")));
	CHECK(b && json_integer_value(json_object_get(b, "norgs")) == 0);
	CHECK(c && !strcmp(str(c, "sub"), "") && json_is_false(json_object_get(c, "admin")));
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

static void next_request_without_body_sees_none(void)
{
	json_t *a = ask("/open", "", "0123456789", 10);
	json_t *b = ask("/open", "", NULL, 0);

	CHECK(a && json_integer_value(json_object_get(a, "len")) == 10);
	CHECK(b && json_is_false(json_object_get(b, "body")));
	CHECK(b && json_integer_value(json_object_get(b, "len")) == 0);
	json_decref(a);
	json_decref(b);
}

static void bodies_of_every_size_arrive_whole(void)
{
	static const size_t sizes[] = { 1, 100, 4095, 4096, 4097, 20000, 3, 60000, 7 };
	static char body[65536];
	size_t i;

	for (i = 0; i < sizeof(body); i++)
		body[i] = (char)('a' + (i * 7 + i / 13) % 26);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		/* each at its own offset: a stale prefix from the last body would show */
		const char *b = body + i * 11;
		json_t *o = ask("/open", "", b, sizes[i]);

		CHECK(o && (size_t)json_integer_value(json_object_get(o, "len")) == sizes[i]);
		CHECK(o && (unsigned long)json_integer_value(json_object_get(o, "sum")) ==
				   sum_of(b, sizes[i]));
		if (!o || (size_t)json_integer_value(json_object_get(o, "len")) != sizes[i])
			printf("#   body of %zu bytes\n", sizes[i]);
		json_decref(o);
	}
}

static unsigned short free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	unsigned short p = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s >= 0 && !bind(s, (struct sockaddr *)&sa, sizeof(sa)) &&
	    !getsockname(s, (struct sockaddr *)&sa, &len))
		p = ntohs(sa.sin_port);
	if (s >= 0)
		close(s);
	return p;
}

int main(void)
{
	struct lt_httpd_opts o = { .threads = 1,
				   .conns_per_client = 16,
				   .request_timeout_ns = 10ULL * 1000000000ULL,
				   .max_body = max_body,
				   .app = &app,
				   .routes = routes };
	struct lt_httpd *h = NULL;
	char listen[32], err[128];
	int i, ret = -1;

	for (i = 0; i < 5 && ret; i++) {
		port = free_port();
		snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
		o.listen = listen;
		ret = lt_httpd_start(&h, &o, err, sizeof(err));
	}
	if (ret || conn_open()) {
		printf("not ok 1 - server starts and accepts: %s\n1..1\n", ret ? err : "connect");
		lt_httpd_stop(h);
		return 1;
	}
	/* all on one keep-alive connection, so each request reuses the last one's state */
	RUN(next_request_sees_an_anonymous_principal);
	RUN(next_request_without_body_sees_none);
	RUN(bodies_of_every_size_arrive_whole);
	close(fd);
	lt_httpd_stop(h);
	return lt_t_done();
}
