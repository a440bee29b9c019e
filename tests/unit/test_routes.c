// SPDX-License-Identifier: MIT
/*
 * test_routes.c - leaky-gateway's route table and config (gateway/routes.c,
 * gateway/gw_config.c): prefix matching at segment boundaries, priority, method
 * filters, prefix stripping, the model map with wildcards, the LLM and native
 * provider routes, and config errors that name the bad key.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include "lt_test.h"
#include "routes.h"

static struct gw_config *load(const char *json, char *err, size_t errlen)
{
	struct gw_config *c = NULL;

	if (gw_config_parse(json, strlen(json), "t.json", &c, err, errlen))
		return NULL;
	return c;
}

static const char base_cfg[] =
	"{\"services\": {\"a\": {\"urls\": [\"http://127.0.0.1:1\"]},"
	"                \"b\": {\"urls\": [\"http://127.0.0.1:2/base/\", \"http://[::1]:3\"],"
	"                        \"balance\": \"least_conn\"}},"
	" \"routes\": ["
	"  {\"name\": \"root\", \"prefix\": \"/\", \"service\": \"a\"},"
	"  {\"name\": \"api\", \"prefix\": \"/api/\", \"service\": \"a\", \"strip_prefix\": true},"
	"  {\"name\": \"api-v2\", \"prefix\": \"/api/v2\", \"service\": \"b\"},"
	"  {\"name\": \"pinned\", \"prefix\": \"/api\", \"service\": \"b\", \"priority\": 10,"
	"   \"methods\": [\"DELETE\"]},"
	"  {\"name\": \"off\", \"prefix\": \"/off\", \"service\": \"a\", \"enabled\": false},"
	"  {\"name\": \"ro\", \"prefix\": \"/ro\", \"service\": \"a\", \"methods\": [\"GET\", \"HEAD\"]}"
	" ],"
	" \"providers\": ["
	"  {\"name\": \"openai\", \"kind\": \"openai\", \"base_url\": \"http://127.0.0.1:9090\"},"
	"  {\"name\": \"gemini\", \"kind\": \"gemini\", \"base_url\": \"http://127.0.0.1:9091/v1beta\"},"
	"  {\"name\": \"backup\", \"kind\": \"openai\", \"base_url\": \"http://127.0.0.1:9092\"}"
	" ],"
	" \"models\": ["
	"  {\"pattern\": \"*\", \"providers\": [\"openai\"]},"
	"  {\"pattern\": \"gpt-4*\", \"providers\": [\"openai\", \"backup\"]},"
	"  {\"pattern\": \"gpt-4o-mini\", \"providers\": [\"backup\"]},"
	"  {\"pattern\": \"gemini-?.?-*\", \"providers\": [\"gemini\"]}"
	" ]}";

static const struct gw_route *match(const struct gw_config *c, const char *method, const char *path,
				    int *mm)
{
	int dummy;
	return gw_route_match(c, method, strlen(method), path, strlen(path), mm ? mm : &dummy);
}

static void prefix_matches_at_segment_boundary(void)
{
	char err[256];
	struct gw_config *c = load(base_cfg, err, sizeof(err));

	CHECK(c);
	if (!c)
		return;
	CHECK(!strcmp(match(c, "GET", "/api", NULL)->name, "api"));
	CHECK(!strcmp(match(c, "GET", "/api/x", NULL)->name, "api"));
	/* "/api" must not swallow "/apix" */
	CHECK(!strcmp(match(c, "GET", "/apix", NULL)->name, "root"));
	CHECK(!strcmp(match(c, "GET", "/api/v2/models", NULL)->name, "api-v2"));
	CHECK(!strcmp(match(c, "GET", "/api/v22", NULL)->name, "api"));
	gw_config_put(c);
}

static void priority_beats_longer_prefix(void)
{
	char err[256];
	struct gw_config *c = load(base_cfg, err, sizeof(err));

	if (!c)
		return;
	CHECK(!strcmp(match(c, "DELETE", "/api/v2/x", NULL)->name, "pinned"));
	CHECK(!strcmp(match(c, "GET", "/api/v2/x", NULL)->name, "api-v2"));
	gw_config_put(c);
}

static void method_filter_and_disabled_routes(void)
{
	char err[256];
	struct gw_config *c = load(base_cfg, err, sizeof(err));
	int mm = 0;

	if (!c)
		return;
	CHECK(!strcmp(match(c, "HEAD", "/ro/x", &mm)->name, "ro"));
	/* POST /ro falls through to "/" (which allows it): no 405 when another route fits */
	CHECK(!strcmp(match(c, "POST", "/ro/x", &mm)->name, "root"));
	/* a disabled route is skipped */
	CHECK(!strcmp(match(c, "GET", "/off", NULL)->name, "root"));
	gw_config_put(c);

	c = load(
		"{\"services\": {\"a\": {\"urls\": [\"http://127.0.0.1:1\"]}},"
		" \"routes\": [{\"prefix\": \"/ro\", \"service\": \"a\", \"methods\": [\"GET\"]}]}",
		err, sizeof(err));
	CHECK(c);
	if (!c)
		return;
	CHECK(match(c, "POST", "/ro", &mm) == NULL);
	CHECK(mm == 1); /* the proxy answers 405, not 404 */
	CHECK(match(c, "GET", "/other", &mm) == NULL);
	CHECK(mm == 0);
	gw_config_put(c);
}

static void strip_prefix_keeps_query(void)
{
	char err[256], out[256];
	struct gw_config *c = load(base_cfg, err, sizeof(err));
	const struct gw_route *r;

	if (!c)
		return;
	r = match(c, "GET", "/api/users", NULL);
	CHECK_EQ(gw_route_upstream_path(r, "/api/users?id=1", 15, out, sizeof(out)), 11);
	CHECK(!strcmp(out, "/users?id=1"));
	CHECK(gw_route_upstream_path(r, "/api", 4, out, sizeof(out)) == 1 && !strcmp(out, "/"));
	CHECK(gw_route_upstream_path(r, "/api?q", 6, out, sizeof(out)) == 3 && !strcmp(out, "/?q"));
	r = match(c, "GET", "/api/v2/x", NULL); /* no strip */
	CHECK(gw_route_upstream_path(r, "/api/v2/x", 9, out, sizeof(out)) == 9 &&
	      !strcmp(out, "/api/v2/x"));
	CHECK_EQ(gw_route_upstream_path(r, "/api/v2/x", 9, out, 5), (unsigned long long)-E2BIG);
	gw_config_put(c);
}

static const char *chain(const struct gw_config *c, const char *model, unsigned i)
{
	const struct gw_model_rule *m = gw_model_lookup(c, model, strlen(model));
	return m && i < m->nproviders ? m->providers[i]->name : "-";
}

static void wildcard_models_most_specific_wins(void)
{
	char err[256];
	struct gw_config *c = load(base_cfg, err, sizeof(err));

	if (!c)
		return;
	CHECK(!strcmp(chain(c, "gpt-4o-mini", 0), "backup")); /* exact beats wildcards */
	CHECK(!strcmp(chain(c, "gpt-4o", 0), "openai"));
	CHECK(!strcmp(chain(c, "gpt-4o", 1), "backup")); /* the fallback chain, in order */
	CHECK(!strcmp(chain(c, "gemini-1.5-pro", 0), "gemini"));
	CHECK(!strcmp(chain(c, "gemini-15-pro", 0), "openai")); /* '?' is one byte */
	CHECK(!strcmp(chain(c, "llama", 0), "openai")); /* "*" catches the rest */
	CHECK(gw_glob_match("a*b*c", "axxbyyc", 7));
	CHECK(!gw_glob_match("a*b*c", "axxbyy", 6));
	CHECK(gw_glob_match("*", "", 0));
	gw_config_put(c);
}

static void llm_and_native_routes_are_generated(void)
{
	char err[256], out[256];
	struct gw_config *c = load(base_cfg, err, sizeof(err));
	const struct gw_route *r;
	int mm;

	if (!c)
		return;
	r = match(c, "POST", "/v1/chat/completions", NULL);
	CHECK(r && r->kind == GW_ROUTE_LLM && r->ops == &gw_llm_forward_ops);
	/* exact: a longer path is not the LLM endpoint */
	r = match(c, "POST", "/v1/chat/completions/x", NULL);
	CHECK(r && r->kind == GW_ROUTE_API);
	r = match(c, "POST", "/gemini/models/gemini-pro:generateContent", NULL);
	CHECK(r && r->kind == GW_ROUTE_NATIVE && r->provider &&
	      !strcmp(r->provider->name, "gemini"));
	CHECK(gw_route_upstream_path(r, "/gemini/models/x:generateContent?alt=sse", 40, out,
				     sizeof(out)) > 0);
	CHECK(!strcmp(out, "/models/x:generateContent?alt=sse"));
	CHECK(!strcmp(r->provider->url.base_path, "/v1beta"));
	CHECK(match(c, "GET", "/v1/embeddings", &mm)->kind == GW_ROUTE_API); /* LLM: POST only */
	gw_config_put(c);
}

static void provider_key_from_env_or_file_never_in_errors(void)
{
	char err[512], path[] = "/tmp/lt-gwkey-XXXXXX";
	struct gw_config *c;
	int fd = mkstemp(path);
	char json[512];

	CHECK(fd >= 0);
	CHECK(write(fd, "sk-file-secret\n", 15) == 15);
	close(fd);
	setenv("LT_TEST_GW_KEY", "sk-env-secret", 1);
	snprintf(json, sizeof(json),
		 "{\"providers\": [{\"name\": \"a\", \"kind\": \"openai\", \"base_url\": "
		 "\"http://127.0.0.1:1\", \"api_key_env\": \"LT_TEST_GW_KEY\"},"
		 "{\"name\": \"b\", \"kind\": \"anthropic\", \"base_url\": \"http://127.0.0.1:1\","
		 " \"api_key_file\": \"%s\"}]}",
		 path);
	c = load(json, err, sizeof(err));
	CHECK(c);
	if (c) {
		CHECK(!strcmp(gw_config_provider(c, "a")->api_key, "sk-env-secret"));
		CHECK(!strcmp(gw_config_provider(c, "b")->api_key, "sk-file-secret"));
		gw_config_put(c);
	}
	/* a later error in the same file does not echo the key */
	snprintf(
		json, sizeof(json),
		"{\"providers\": [{\"name\": \"a\", \"kind\": \"openai\", \"base_url\": "
		"\"http://127.0.0.1:1\", \"api_key_env\": \"LT_TEST_GW_KEY\"},"
		"{\"name\": \"b\", \"kind\": \"mistral\", \"base_url\": \"http://127.0.0.1:1\"}]}");
	CHECK(!load(json, err, sizeof(err)));
	CHECK(strstr(err, "/providers/1") && !strstr(err, "secret"));
	unsetenv("LT_TEST_GW_KEY");
	CHECK(!load(json, err, sizeof(err))); /* the variable is gone: provider 0 fails now */
	CHECK(strstr(err, "LT_TEST_GW_KEY") && strstr(err, "/providers/0"));
	unlink(path);
}

static void config_errors_name_the_key(void)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
		{ "{\"listne\": \"x\"}", "unknown key \"listne\"" },
		{ "{\"routes\": [{\"prefix\": \"api\", \"service\": \"a\"}]}", "/routes/0" },
		{ "{\"services\": {\"a\": {\"urls\": [\"ftp://x\"]}}}", "/services/a/urls/0" },
		{ "{\"routes\": [{\"prefix\": \"/a\", \"service\": \"nope\"}]}",
		  "unknown service" },
		{ "{\"providers\": [{\"name\": \"a\", \"kind\": \"openai\", \"base_url\": "
		  "\"http://127.0.0.1:1\"}], \"models\": [{\"pattern\": \"*\", \"providers\": "
		  "[\"zzz\"]}]}",
		  "unknown provider \"zzz\"" },
		{ "{\"timeouts\": {\"read_ms\": 0}}", "/timeouts" },
		{ "{\"workers\": 1, \"workers\": 2}", "duplicate" },
		{ "{\"services\": {\"a\": {\"urls\": [\"http://127.0.0.1:99999\"]}}}", "bad port" },
	};
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gw_config *c = load(cases[i].json, err, sizeof(err));
		CHECK(!c);
		if (c) {
			gw_config_put(c);
			continue;
		}
		if (!strstr(err, cases[i].want))
			printf("#   case %zu: \"%s\" lacks \"%s\"\n", i, err, cases[i].want);
		CHECK(strstr(err, cases[i].want) && !strncmp(err, "t.json", 6));
	}
}

static void embedded_default_loads(void)
{
	char err[256];
	struct gw_config *c = NULL;

	CHECK_EQ(gw_config_load(NULL, &c, err, sizeof(err)), 0);
	if (!c)
		return;
	CHECK(!strcmp(c->listen, "127.0.0.1:8080"));
	CHECK_EQ(c->nproviders, 4);
	CHECK(!strcmp(chain(c, "claude-3-5-sonnet", 0), "anthropic"));
	CHECK(!strcmp(chain(c, "gpt-4o", 0), "openai"));
	gw_config_put(c);
}

int main(void)
{
	RUN(prefix_matches_at_segment_boundary);
	RUN(priority_beats_longer_prefix);
	RUN(method_filter_and_disabled_routes);
	RUN(strip_prefix_keeps_query);
	RUN(wildcard_models_most_specific_wins);
	RUN(llm_and_native_routes_are_generated);
	RUN(provider_key_from_env_or_file_never_in_errors);
	RUN(config_errors_name_the_key);
	RUN(embedded_default_loads);
	return lt_t_done();
}
