// SPDX-License-Identifier: MIT
/*
 * test_exchange.c - the route hook API (gateway/exchange.h) as the LLM route
 * will use it, through a real gateway process: a forked leaky-gateway (one
 * worker) with test ops registered for the LLM route kind, in front of
 * build/san/tests/gw_upstream. The ops ask for the body, rewrite it, choose a
 * provider (its key goes upstream), observe SSE pieces and cut the stream with
 * their own final event, fall back to a second provider on a 503, and record
 * each exchange's outcome (on_done) in a file the test reads.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "lt_test.h"
#include "proxy.h"
#include "routes.h"

static int gw_port, up_port;
static pid_t gw_pid, up_pid;
static char done_path[64];

/* --- the test route ops (run in the gateway's worker) --------------------------- */

struct st {
	int pieces;
	unsigned attempt;
};

static int t_head(struct gw_exchange *x)
{
	struct st *s = calloc(1, sizeof(*s));

	gw_set_user(x, s);
	gw_want_body(x, 1024);
	gw_add_response_header(x, "X-Route", "test");
	/* whole lines (gw_add_response_lines): a block that is not field lines is refused whole */
	if (gw_add_response_lines(x, "X-Bad: a\r\nX-Split: b\nc\r\n", 24) != -EINVAL ||
	    gw_add_response_lines(x, "X-Nocrlf: a", 11) != -EINVAL ||
	    gw_add_response_lines(x, "Bad Name: a\r\n", 13) != -EINVAL ||
	    /* a control byte deep in a long value (the 8-byte scan), a DEL, a bare CR */
	    gw_add_response_lines(x, "X-Long: 0123456789abcdef\x01ghij\r\n", 31) != -EINVAL ||
	    gw_add_response_lines(x, "X-Del: 01234567\x7f\r\n", 18) != -EINVAL ||
	    gw_add_response_lines(x, "X-Cr: 0123456789\rX: b\r\n", 23) != -EINVAL ||
	    gw_add_response_lines(x, ": no name\r\n", 11) != -EINVAL ||
	    gw_add_response_lines(x, "X-A: a\r\nX-B: b\r", 15) != -EINVAL)
		gw_add_response_header(x, "X-Lines-Check", "failed");
	/* HTAB and obs-text are value bytes */
	gw_add_response_lines(x, "X-Lines: a\r\nX-Lines-Two: b c\r\n", 30);
	gw_add_response_lines(x, "X-Lines-Long: 0123456789\tabcdef\xc3\xa9xyz\r\n", 38);
	return GW_CONTINUE;
}

static int t_body(struct gw_exchange *x, const char *body, size_t len)
{
	const struct lt_http1_msg *m = gw_req(x);
	const struct gw_config *c = gw_config_of(x);
	const char *path = "/echo";

	if (len >= 6 && !memcmp(body, "answer", 6))
		return gw_answer(x, 418, "text/plain", "teapot", 6);
	if (m->path_len == 4 && !memcmp(m->target, "/cut", 4))
		path = "/sse/10/20";
	if (m->path_len == 9 && !memcmp(m->target, "/fallback", 9))
		path = "/status/503";
	if (m->path_len == 5 && !memcmp(m->target, "/gone", 5)) {
		path = "/sse/10/30";
		gw_keep_reading(x, 5000);
	}
	gw_set_body(x, "{\"rewritten\":true}", 18);
	gw_del_request_header(x, "X-API-Key");
	return gw_use_provider(x, &c->providers[0], path) ? -EINVAL : GW_CONTINUE;
}

static int t_pick(struct gw_exchange *x, unsigned attempt)
{
	struct st *s = gw_user(x);

	s->attempt = attempt;
	/* the fallback chain: the second provider answers */
	return gw_use_provider(x, &gw_config_of(x)->providers[1], "/echo");
}

static int t_resp_head(struct gw_exchange *x)
{
	return gw_resp(x)->status == 503 ? GW_RETRY : GW_CONTINUE;
}

static int t_data(struct gw_exchange *x, const char *d, size_t n)
{
	struct st *s = gw_user(x);
	static const char fin[] = "data: {\"error\":\"budget\"}\n\n";

	(void)d;
	(void)n;
	if (++s->pieces == 3 && gw_req(x)->path_len == 4) {
		gw_cut_with(x, fin, sizeof(fin) - 1);
		return GW_CUT;
	}
	return GW_CONTINUE;
}

static void t_done(struct gw_exchange *x, enum gw_outcome o)
{
	struct st *s = gw_user(x);
	FILE *f = fopen(done_path, "a");

	if (f) {
		fprintf(f, "%.*s %s status=%u up=%u attempts=%u pieces=%d complete=%u\n",
			(int)gw_req(x)->path_len, gw_req(x)->target, gw_outcome_name(o),
			gw_stats(x)->status, gw_stats(x)->upstream_status, gw_stats(x)->attempts,
			s ? s->pieces : -1, gw_stats(x)->resp_complete);
		fclose(f);
	}
	free(s);
}

static const struct gw_route_ops test_ops = {
	.name = "test",
	.on_request_head = t_head,
	.on_request_body = t_body,
	.pick_upstream = t_pick,
	.on_response_head = t_resp_head,
	.on_response_data = t_data,
	.on_done = t_done,
};

/* --- the client side -------------------------------------------------------------- */

/* One request on a new connection; the whole response (until close) into out. */
static size_t roundtrip(const char *req, char *out, size_t cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(gw_port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = { 10, 0 };
	size_t len = 0;
	ssize_t n;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (int i = 0; i < 100 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)); i++) {
		close(fd);
		usleep(50000);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		close(fd);
		return 0;
	}
	while (len + 1 < cap && (n = read(fd, out + len, cap - 1 - len)) > 0)
		len += n;
	out[len] = 0;
	close(fd);
	return len;
}

static char resp[65536];

static void post(const char *path, const char *body)
{
	char req[2048];

	snprintf(req, sizeof(req),
		 "POST %s HTTP/1.1\r\nHost: t\r\nX-API-Key: client-key\r\nConnection: close\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 path, strlen(body), body);
	roundtrip(req, resp, sizeof(resp));
}

static int done_has(const char *line)
{
	char buf[4096];
	FILE *f;
	size_t n;

	for (int i = 0; i < 50; i++) {
		f = fopen(done_path, "r");
		n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = 0;
		if (strstr(buf, line))
			return 1;
		usleep(20000);
	}
	printf("#   on_done lines:\n%s", buf);
	return 0;
}

static void body_rewritten_and_provider_key_sent(void)
{
	post("/v1/chat/completions", "{\"model\":\"m\"}");
	CHECK(strstr(resp, "HTTP/1.1 200 "));
	CHECK(strstr(resp, "X-Route: test"));
	CHECK(strstr(resp, "\r\nX-Lines: a\r\nX-Lines-Two: b c\r\n"));
	CHECK(strstr(resp, "\r\nX-Lines-Long: 0123456789\tabcdef\xc3\xa9xyz\r\n"));
	CHECK(!strstr(resp, "X-Lines-Check") && !strstr(resp, "X-Bad") && !strstr(resp, "Nocrlf"));
	/* the upstream echoes what it got: the rewritten body, the provider's key, no client key */
	CHECK(strstr(resp, "{\"rewritten\":true}"));
	CHECK(strstr(resp, "Authorization: Bearer sk-test-provider"));
	CHECK(!strstr(resp, "client-key"));
	CHECK(done_has("/v1/chat/completions completed status=200 up=200 attempts=1"));
}

static void observer_cuts_the_stream_with_its_final_event(void)
{
	post("/cut", "{}");
	CHECK(strstr(resp, "Transfer-Encoding: chunked"));
	CHECK(strstr(resp, "{\"i\":1}"));
	CHECK(!strstr(resp, "{\"i\":2}")); /* the third piece and later never reach the client */
	CHECK(strstr(resp, "data: {\"error\":\"budget\"}"));
	CHECK(strstr(resp, "\r\n0\r\n\r\n")); /* a clean end of the chunked body */
	CHECK(done_has("/cut cut status=200 up=200 attempts=1 pieces=3"));
}

static void response_head_retry_falls_back(void)
{
	post("/fallback", "{}");
	CHECK(strstr(resp, "HTTP/1.1 200 "));
	CHECK(strstr(resp, "sk-test-second"));
	CHECK(done_has("/fallback completed status=200 up=200 attempts=2"));
}

static void ops_answer_directly(void)
{
	post("/v1/chat/completions", "answer me");
	CHECK(strstr(resp, "HTTP/1.1 418 "));
	CHECK(strstr(resp, "\r\n\r\nteapot"));
	CHECK(done_has("/v1/chat/completions answered status=418 up=0 attempts=0"));
}

static void body_over_the_bound_is_413(void)
{
	char big[3000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	post("/v1/chat/completions", big);
	CHECK(strstr(resp, "HTTP/1.1 413 "));
	CHECK(strstr(resp, "application/problem+json"));
	CHECK(done_has("answered status=413"));
}

/* The client leaves after the first event; the route keeps reading to the end. */
static void client_gone_keeps_reading_the_upstream(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(gw_port) };
	static const char req[] = "POST /gone HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}";
	struct timeval tv = { 10, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char buf[4096];
	size_t len = 0;
	ssize_t n;

	buf[0] = 0;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CHECK(!connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == sizeof(req) - 1);
	while (len + 1 < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
		len += n;
		buf[len] = 0;
		if (strstr(buf, "{\"i\":0}"))
			break;
	}
	close(fd);
	CHECK(strstr(buf, "{\"i\":0}"));
	/* all 10 pieces observed after the client left, the response read to its end */
	CHECK(done_has("/gone client-gone status=200 up=200 attempts=1 pieces=10 complete=1"));
}

static pid_t spawn_upstream(void)
{
	char port[16];
	pid_t p = fork();

	if (p == 0) {
		snprintf(port, sizeof(port), "%d", up_port);
		if (!freopen("/dev/null", "w", stdout))
			_exit(1);
		execl("build/san/tests/gw_upstream", "gw_upstream", port, (char *)NULL);
		_exit(127);
	}
	return p;
}

static pid_t spawn_gateway(void)
{
	pid_t p = fork();

	if (p == 0) {
		char json[1024], err[256], listen[32];
		struct gw_config *cfg;
		struct gw_proxy_opts o = { .workers = 1 };

		snprintf(json, sizeof(json),
			 "{\"providers\": ["
			 "{\"name\": \"p1\", \"kind\": \"openai\", \"base_url\": "
			 "\"http://127.0.0.1:%d\", \"api_key_env\": \"LT_TEST_P1\"},"
			 "{\"name\": \"p2\", \"kind\": \"openai\", \"base_url\": "
			 "\"http://127.0.0.1:%d\", \"api_key_env\": \"LT_TEST_P2\"}],"
			 " \"models\": [{\"pattern\": \"*\", \"providers\": [\"p1\", \"p2\"]}],"
			 " \"llm\": {\"paths\": [\"/v1/chat/completions\", \"/cut\", \"/fallback\","
			 " \"/gone\"]}}",
			 up_port, up_port);
		setenv("LT_TEST_P1", "sk-test-provider", 1);
		setenv("LT_TEST_P2", "sk-test-second", 1);
		gw_routes_set_ops(GW_ROUTE_LLM, &test_ops);
		if (gw_config_parse(json, strlen(json), "test", &cfg, err, sizeof(err))) {
			fprintf(stderr, "test_exchange: %s\n", err);
			_exit(1);
		}
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", gw_port);
		o.listen = listen;
		_exit(gw_proxy_run(&o, cfg));
	}
	return p;
}

int main(void)
{
	int st;

	gw_port = 21000 + getpid() % 9000;
	up_port = gw_port + 9000;
	snprintf(done_path, sizeof(done_path), "/tmp/lt-exchange-%d.done", getpid());
	unlink(done_path);
	if (access("build/san/tests/gw_upstream", X_OK)) {
		printf("Bail out! build/san/tests/gw_upstream is missing (make all)\n");
		return 1;
	}
	up_pid = spawn_upstream();
	/* the upstream listens before the first request goes to it */
	for (int i = 0; i < 200; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(up_port) };
		int fd = socket(AF_INET, SOCK_STREAM, 0), r;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (!r)
			break;
		usleep(25000);
	}
	gw_pid = spawn_gateway();
	RUN(body_rewritten_and_provider_key_sent);
	RUN(observer_cuts_the_stream_with_its_final_event);
	RUN(response_head_retry_falls_back);
	RUN(ops_answer_directly);
	RUN(body_over_the_bound_is_413);
	RUN(client_gone_keeps_reading_the_upstream);
	kill(gw_pid, SIGTERM);
	kill(up_pid, SIGKILL);
	waitpid(gw_pid, &st, 0);
	waitpid(up_pid, NULL, 0);
	unlink(done_path);
	lt_t_begin("the gateway exits 0 on SIGTERM");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	lt_t_end();
	return lt_t_done();
}
