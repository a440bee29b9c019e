// SPDX-License-Identifier: MIT
/*
 * test_httpd.c - liblt's HTTP server (lib/httpd.c) on its own, as a second
 * front end (the gateway) would use it: a loopback server with a route table
 * whose phases write a trace. Checks that the phases run in the order
 * access -> limit -> handler -> log, that a phase that answers ends the
 * chain with its own problem response (the later phases never run, the log
 * phase still does), and the server's own answers (405, 404, 413) that run
 * no phase of the route.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <pthread.h>
#include <unistd.h>
#include <time.h>
#include "lt_test.h"
#include "httpd.h"

struct test_app {
	int unused;
};

static struct test_app app;
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static char trace[64];
static char seen_sub[64]; /* the principal the handler saw */

static void mark(char c)
{
	size_t n;

	pthread_mutex_lock(&trace_lock);
	n = strlen(trace);
	if (n + 1 < sizeof(trace))
		trace[n] = c;
	pthread_mutex_unlock(&trace_lock);
}

static int has_header(struct lt_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name) != NULL;
}

static int access_phase(struct lt_req *r, enum MHD_Result *res)
{
	mark('A');
	if (has_header(r, "X-Deny")) {
		*res = lt_problem(r, 401, "unauthorized", "Unauthorized", "Authorization",
				  "no token");
		return -1;
	}
	snprintf(r->principal.sub, sizeof(r->principal.sub), "alice");
	return 0;
}

static int limit_phase(struct lt_req *r, enum MHD_Result *res)
{
	mark('L');
	if (has_header(r, "X-Limit")) {
		*res = lt_problem(r, 429, "rate-limited", "Too many requests", NULL, "slow down");
		return -1;
	}
	return 0;
}

static enum MHD_Result handler(struct lt_req *r)
{
	mark('H');
	pthread_mutex_lock(&trace_lock);
	snprintf(seen_sub, sizeof(seen_sub), "%s", r->principal.sub);
	pthread_mutex_unlock(&trace_lock);
	return lt_reply_json(r, 200, json_pack("{s:s}", "sub", r->principal.sub));
}

static enum MHD_Result open_handler(struct lt_req *r)
{
	mark('H');
	return lt_reply_json(r, 200, json_pack("{s:s}", "url", r->url));
}

static void log_phase(struct lt_req *r)
{
	(void)r;
	mark('G');
}

static unsigned max_body(const void *cfg)
{
	(void)cfg;
	return 16;
}

static const struct lt_route routes[] = {
	{ .method = "GET",
	  .path = "/t",
	  .access = access_phase,
	  .limit = limit_phase,
	  .handler = handler },
	{ .path = "/p/", .flags = LT_ROUTE_PREFIX, .handler = open_handler },
	{ 0 },
};

static unsigned short port;

/* One request on its own connection: the status, and the body in out. */
static int request(const char *req, char *out, size_t outlen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { 5, 0 };
	char buf[4096];
	size_t got = 0;
	ssize_t n;
	int fd, status = -1;
	char *body;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return -1;
	}
	while (got + 1 < sizeof(buf) && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
	sscanf(buf, "HTTP/1.1 %d", &status);
	body = strstr(buf, "\r\n\r\n");
	snprintf(out, outlen, "%s", body ? body + 4 : "");
	return status;
}

/* The trace once the log phase has run (it follows the response). */
static void trace_after_log(char *out, size_t outlen)
{
	struct timespec ms = { 0, 1000000L };
	int i;

	for (i = 0; i < 2000; i++) {
		pthread_mutex_lock(&trace_lock);
		if (strchr(trace, 'G')) {
			snprintf(out, outlen, "%s", trace);
			memset(trace, 0, sizeof(trace));
			pthread_mutex_unlock(&trace_lock);
			return;
		}
		pthread_mutex_unlock(&trace_lock);
		nanosleep(&ms, NULL);
	}
	pthread_mutex_lock(&trace_lock);
	snprintf(out, outlen, "%s(no log)", trace);
	memset(trace, 0, sizeof(trace));
	pthread_mutex_unlock(&trace_lock);
}

#define GET(path, extra) "GET " path " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" extra "\r\n"

static void phases_run_access_limit_handler_log(void)
{
	char body[1024], t[64];

	CHECK_EQ(request(GET("/t", ""), body, sizeof(body)), 200);
	trace_after_log(t, sizeof(t));
	printf("# trace %s\n", t);
	CHECK(!strcmp(t, "ALHG"));
	CHECK(!strcmp(seen_sub, "alice")); /* the access phase's principal */
	CHECK(strstr(body, "\"sub\":\"alice\""));
}

static void failing_access_ends_chain_with_its_problem(void)
{
	char body[1024], t[64];

	CHECK_EQ(request(GET("/t", "X-Deny: 1\r\n"), body, sizeof(body)), 401);
	trace_after_log(t, sizeof(t));
	printf("# trace %s\n", t);
	CHECK(!strcmp(t, "AG")); /* no limit, no handler; logged */
	CHECK(strstr(body, "problems/unauthorized"));
	CHECK(strstr(body, "\"field\":\"Authorization\""));
}

static void failing_limit_ends_chain_with_its_problem(void)
{
	char body[1024], t[64];

	CHECK_EQ(request(GET("/t", "X-Limit: 1\r\n"), body, sizeof(body)), 429);
	trace_after_log(t, sizeof(t));
	CHECK(!strcmp(t, "ALG"));
	CHECK(strstr(body, "problems/rate-limited"));
}

static void wrong_method_405_before_any_phase(void)
{
	char body[1024], t[64];

	CHECK_EQ(request("DELETE /t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", body,
			 sizeof(body)),
		 405);
	trace_after_log(t, sizeof(t));
	CHECK(!strcmp(t, "G"));
	CHECK(strstr(body, "use GET"));
}

static void unknown_path_404_prefix_route_matches(void)
{
	char body[1024], t[64];

	CHECK_EQ(request(GET("/nothing", ""), body, sizeof(body)), 404);
	trace_after_log(t, sizeof(t));
	CHECK(!strcmp(t, "G"));
	CHECK(strstr(body, "no resource at /nothing"));
	CHECK_EQ(request(GET("/p/any/thing", ""), body, sizeof(body)), 200);
	trace_after_log(t, sizeof(t));
	CHECK(!strcmp(t, "HG")); /* no access phase declared: none runs */
	CHECK(strstr(body, "/p/any/thing"));
}

static void body_over_limit_413_before_any_phase(void)
{
	char body[1024], t[64];

	CHECK_EQ(request("GET /t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			 "Content-Length: 17\r\n\r\n01234567890123456",
			 body, sizeof(body)),
		 413);
	trace_after_log(t, sizeof(t));
	CHECK(!strcmp(t, "G"));
	CHECK(strstr(body, "limited to 16 bytes"));
}

/* A free loopback port: bound, read and released (the server binds it next). */
static unsigned short free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned short p = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    !getsockname(fd, (struct sockaddr *)&sa, &len))
		p = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return p;
}

int main(void)
{
	struct lt_httpd_opts o = { .threads = 2,
				   .conns_per_client = 16,
				   .request_timeout_ns = 10ULL * 1000000000ULL,
				   .max_body = max_body,
				   .app = &app,
				   .routes = routes,
				   .log = log_phase };
	struct lt_httpd *h = NULL;
	char listen[32], err[128];
	int i, ret = -1;

	for (i = 0; i < 5 && ret; i++) {
		port = free_port();
		snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
		o.listen = listen;
		ret = lt_httpd_start(&h, &o, err, sizeof(err));
	}
	if (ret) {
		printf("not ok 1 - server starts: %s\n1..1\n", err);
		return 1;
	}
	RUN(phases_run_access_limit_handler_log);
	RUN(failing_access_ends_chain_with_its_problem);
	RUN(failing_limit_ends_chain_with_its_problem);
	RUN(wrong_method_405_before_any_phase);
	RUN(unknown_path_404_prefix_route_matches);
	RUN(body_over_limit_413_before_any_phase);
	lt_httpd_stop(h);
	return lt_t_done();
}
