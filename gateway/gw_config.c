// SPDX-License-Identifier: MIT
/* gw_config.c - leaky-gateway's JSON config: parse, validate, resolve, snapshot (see gw_config.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "api_route.h"
#include "gw_config.h"
#include "tls.h"
#include "llm_route.h"
#include "proxy.h"
#include "routes.h"

const char gw_config_default_json[] =
	"{\n"
	"  \"listen\": \"127.0.0.1:8080\",\n"
	"  \"providers\": [\n"
	"    {\"name\": \"openai\", \"kind\": \"openai\", \"base_url\": \"http://127.0.0.1:9100\"},\n"
	"    {\"name\": \"gemini\", \"kind\": \"gemini\", \"base_url\": \"http://127.0.0.1:9100\"},\n"
	"    {\"name\": \"qwen\", \"kind\": \"qwen\", \"base_url\": \"http://127.0.0.1:9100\"},\n"
	"    {\"name\": \"anthropic\", \"kind\": \"anthropic\", \"base_url\": \"http://127.0.0.1:9100\"}\n"
	"  ],\n"
	"  \"models\": [\n"
	"    {\"pattern\": \"gemini-*\", \"providers\": [\"gemini\"]},\n"
	"    {\"pattern\": \"qwen*\", \"providers\": [\"qwen\"]},\n"
	"    {\"pattern\": \"claude-*\", \"providers\": [\"anthropic\"]},\n"
	"    {\"pattern\": \"*\", \"providers\": [\"openai\"]}\n"
	"  ]\n"
	"}\n";

static const char *const default_llm_paths[] = { "/v1/chat/completions", "/v1/completions",
						 "/v1/embeddings", "/v1/responses",
						 "/v1/messages" };

const char *gw_provider_kind_name(enum gw_provider_kind k)
{
	static const char *const n[] = { "openai", "gemini", "qwen", "anthropic" };
	return (unsigned)k < 4 ? n[k] : "?";
}

struct ctx {
	const char *source;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int fail(struct ctx *c, const char *ptr,
						      const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s: %s: %s", c->source, ptr, msg);
	return -EINVAL;
}

/* Refuses keys outside allowed (a typo is an error, not a silent default). */
static int check_keys(struct ctx *c, const char *ptr, json_t *o, const char *const *allowed)
{
	const char *k;
	json_t *v;

	if (!json_is_object(o))
		return fail(c, ptr, "must be an object");
	json_object_foreach(o, k, v) {
		const char *const *a = allowed;
		while (*a && strcmp(*a, k))
			a++;
		if (!*a)
			return fail(c, ptr, "unknown key \"%.64s\"", k);
	}
	return 0;
}

static int get_u32(struct ctx *c, const char *ptr, json_t *o, const char *key, uint32_t lo,
		   uint32_t hi, uint32_t *out)
{
	json_t *v = json_object_get(o, key);
	json_int_t n;

	if (!v)
		return 0;
	if (!json_is_integer(v))
		return fail(c, ptr, "\"%s\" must be an integer", key);
	n = json_integer_value(v);
	if (n < lo || n > hi)
		return fail(c, ptr, "\"%s\" must be in [%u, %u]", key, lo, hi);
	*out = n;
	return 0;
}

static int get_bool(struct ctx *c, const char *ptr, json_t *o, const char *key, int *out)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return fail(c, ptr, "\"%s\" must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

static int get_str(struct ctx *c, const char *ptr, json_t *o, const char *key, char *out,
		   size_t outlen, int required)
{
	json_t *v = json_object_get(o, key);

	if (!v) {
		if (required)
			return fail(c, ptr, "\"%s\" is required", key);
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0)
		return fail(c, ptr, "\"%s\" must be a non-empty string", key);
	if (json_string_length(v) >= outlen)
		return fail(c, ptr, "\"%s\" is longer than %zu bytes", key, outlen - 1);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int resolve(struct gw_url *u, int names)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;

	if (inet_pton(AF_INET, u->host, u->sa.addr) == 1) {
		u->sa.family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, u->host, u->sa.addr) == 1) {
		u->sa.family = AF_INET6;
		return 0;
	}
	if (!names)
		return -EHOSTUNREACH;
	if (getaddrinfo(u->host, NULL, &hints, &ai) || !ai)
		return -ENOENT;
	u->sa.family = ai->ai_family;
	if (ai->ai_family == AF_INET)
		memcpy(u->sa.addr, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
	else
		memcpy(u->sa.addr, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
	freeaddrinfo(ai);
	return 0;
}

int gw_url_parse(const char *s, struct gw_url *u, int resolve_names, char *why, size_t whylen)
{
	const char *h, *e, *p;
	size_t hl;
	unsigned long port;

	memset(u, 0, sizeof(*u));
	u->health_slot = -1;
	if (!strncmp(s, "http://", 7)) {
		h = s + 7;
		u->port = 80;
	} else if (!strncmp(s, "https://", 8)) {
		h = s + 8;
		u->tls = 1;
		u->port = 443;
	} else {
		snprintf(why, whylen, "base URL \"%.128s\" must start with http:// or https://", s);
		return -EINVAL;
	}
	p = strchr(h, '/');
	if (!p)
		p = h + strlen(h);
	if (*h == '[') {
		e = memchr(h, ']', p - h);
		if (!e) {
			snprintf(why, whylen, "base URL \"%.128s\": unclosed [", s);
			return -EINVAL;
		}
		hl = e - h - 1;
		h++;
		e++;
	} else {
		e = memchr(h, ':', p - h);
		if (!e)
			e = p;
		hl = e - h;
	}
	if (!hl || hl >= sizeof(u->host)) {
		snprintf(why, whylen, "base URL \"%.128s\": bad host", s);
		return -EINVAL;
	}
	memcpy(u->host, h, hl);
	if (e < p) {
		char *end;
		errno = 0;
		port = *e == ':' ? strtoul(e + 1, &end, 10) : 0;
		if (*e != ':' || end != p || !port || port > 65535 || e + 1 == p) {
			snprintf(why, whylen, "base URL \"%.128s\": bad port", s);
			return -EINVAL;
		}
		u->port = port;
	}
	if (strlen(p) >= sizeof(u->base_path)) {
		snprintf(why, whylen, "base URL \"%.128s\": path too long", s);
		return -EINVAL;
	}
	strcpy(u->base_path, p);
	for (size_t n = strlen(u->base_path); n && u->base_path[n - 1] == '/'; n--)
		u->base_path[n - 1] = 0;
	if (strchr(u->host, ':'))
		snprintf(u->hostport, sizeof(u->hostport), "[%s]:%u", u->host, u->port);
	else
		snprintf(u->hostport, sizeof(u->hostport), "%s:%u", u->host, u->port);
	if (resolve(u, resolve_names)) {
		snprintf(why, whylen, "cannot resolve host \"%.128s\"%s", u->host,
			 resolve_names ? "" : " (only literal addresses here)");
		return -EHOSTUNREACH;
	}
	return 0;
}

static int parse_url(struct ctx *c, const char *ptr, const char *s, struct gw_url *u)
{
	char why[300];

	if (gw_url_parse(s, u, 1, why, sizeof(why)))
		return fail(c, ptr, "%s", why);
	return 0;
}

static int parse_timeouts(struct ctx *c, const char *ptr, json_t *o, struct gw_timeouts *t)
{
	static const char *const keys[] = { "connect_ms", "read_ms", "total_ms", NULL };
	int err;

	if (!o)
		return 0;
	if ((err = check_keys(c, ptr, o, keys)) ||
	    (err = get_u32(c, ptr, o, "connect_ms", 1, 600000, &t->connect_ms)) ||
	    (err = get_u32(c, ptr, o, "read_ms", 1, 3600000, &t->read_ms)) ||
	    (err = get_u32(c, ptr, o, "total_ms", 1, 86400000, &t->total_ms)))
		return err;
	return 0;
}

static char *read_key_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char buf[4096];
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return n ? strdup(buf) : NULL;
}

static int parse_provider(struct ctx *c, const char *ptr, json_t *o, struct gw_provider *p,
			  const struct gw_config *cfg)
{
	static const char *const keys[] = { "name",	    "kind",	"base_url", "api_key_env",
					    "api_key_file", "timeouts", NULL };
	char kind[32] = "", url[1024] = "", env[128] = "", file[GW_PATH_MAX] = "";
	int err;

	if ((err = check_keys(c, ptr, o, keys)) ||
	    (err = get_str(c, ptr, o, "name", p->name, sizeof(p->name), 1)) ||
	    (err = get_str(c, ptr, o, "kind", kind, sizeof(kind), 1)) ||
	    (err = get_str(c, ptr, o, "base_url", url, sizeof(url), 1)) ||
	    (err = get_str(c, ptr, o, "api_key_env", env, sizeof(env), 0)) ||
	    (err = get_str(c, ptr, o, "api_key_file", file, sizeof(file), 0)))
		return err;
	for (const char *s = p->name; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '_'))
			return fail(c, ptr, "\"name\" may hold only a-z, 0-9, - and _");
	for (p->kind = 0; p->kind < 4; p->kind++)
		if (!strcmp(kind, gw_provider_kind_name(p->kind)))
			break;
	if (p->kind == 4)
		return fail(c, ptr, "\"kind\" must be openai, gemini, qwen or anthropic");
	if (*env && *file)
		return fail(c, ptr, "give api_key_env or api_key_file, not both");
	if ((err = parse_url(c, ptr, url, &p->url)))
		return err;
	p->timeouts = cfg->timeouts;
	if ((err = parse_timeouts(c, ptr, json_object_get(o, "timeouts"), &p->timeouts)))
		return err;
	if (*env) {
		const char *v = getenv(env);
		if (!v || !*v)
			return fail(c, ptr, "environment variable %s (api_key_env) is not set",
				    env);
		p->api_key = strdup(v);
	} else if (*file) {
		p->api_key = read_key_file(file);
		if (!p->api_key)
			return fail(c, ptr, "api_key_file %.128s: unreadable or empty", file);
	}
	if ((*env || *file) && !p->api_key)
		return -ENOMEM;
	return 0;
}

static int parse_service(struct ctx *c, const char *ptr, const char *name, json_t *o,
			 struct gw_service *s)
{
	static const char *const keys[] = { "urls", "balance", "health", NULL };
	static const char *const hkeys[] = { "path", "interval_ms", "timeout_ms", NULL };
	char bal[32] = "round_robin";
	json_t *urls = json_object_get(o, "urls"), *h;
	size_t i;
	json_t *u;
	int err;

	if (strlen(name) >= sizeof(s->name) || !*name)
		return fail(c, ptr, "service name too long or empty");
	strcpy(s->name, name);
	if ((err = check_keys(c, ptr, o, keys)) ||
	    (err = get_str(c, ptr, o, "balance", bal, sizeof(bal), 0)))
		return err;
	if (!strcmp(bal, "round_robin"))
		s->balance = GW_BAL_ROUND_ROBIN;
	else if (!strcmp(bal, "least_conn"))
		s->balance = GW_BAL_LEAST_CONN;
	else
		return fail(c, ptr, "\"balance\" must be round_robin or least_conn");
	if (!json_is_array(urls) || !json_array_size(urls) ||
	    json_array_size(urls) > GW_SERVICE_URLS_MAX)
		return fail(c, ptr, "\"urls\" must be an array of 1 to %d base URLs",
			    GW_SERVICE_URLS_MAX);
	json_array_foreach(urls, i, u) {
		char p2[300];
		snprintf(p2, sizeof(p2), "%s/urls/%zu", ptr, i);
		if (!json_is_string(u))
			return fail(c, p2, "must be a string");
		if ((err = parse_url(c, p2, json_string_value(u), &s->urls[i])))
			return err;
	}
	s->nurls = json_array_size(urls);
	h = json_object_get(o, "health");
	if (h) {
		char p2[300];
		snprintf(p2, sizeof(p2), "%s/health", ptr);
		s->health_interval_ms = 2000;
		s->health_timeout_ms = 1000;
		if ((err = check_keys(c, p2, h, hkeys)) ||
		    (err = get_str(c, p2, h, "path", s->health_path, sizeof(s->health_path), 1)) ||
		    (err = get_u32(c, p2, h, "interval_ms", 100, 3600000,
				   &s->health_interval_ms)) ||
		    (err = get_u32(c, p2, h, "timeout_ms", 10, 60000, &s->health_timeout_ms)))
			return err;
		if (s->health_path[0] != '/')
			return fail(c, p2, "\"path\" must start with /");
	}
	return 0;
}

static int parse_methods(struct ctx *c, const char *ptr, json_t *a, unsigned *out)
{
	size_t i;
	json_t *m;

	if (!a) {
		*out = GW_M_ALL;
		return 0;
	}
	if (!json_is_array(a) || !json_array_size(a))
		return fail(c, ptr, "\"methods\" must be a non-empty array of method names");
	*out = 0;
	json_array_foreach(a, i, m) {
		unsigned b;
		if (!json_is_string(m))
			return fail(c, ptr, "\"methods\" must hold strings");
		b = gw_method_bit(json_string_value(m), json_string_length(m));
		if (b == GW_M_OTHER)
			return fail(c, ptr, "unknown method \"%.32s\"", json_string_value(m));
		*out |= b;
	}
	return 0;
}

static int check_prefix(struct ctx *c, const char *ptr, const char *p)
{
	if (p[0] != '/')
		return fail(c, ptr, "\"prefix\" must start with /");
	for (const char *s = p; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f || *s == '?' || *s == '#')
			return fail(c, ptr, "\"prefix\" holds a byte a path cannot");
	return 0;
}

static int parse_route(struct ctx *c, const char *ptr, json_t *o, struct gw_route *r,
		       const struct gw_config *cfg)
{
	static const char *const keys[] = {
		"name",		  "prefix",   "exact",	   "service", "methods",
		"strip_prefix",	  "priority", "enabled",   "retries", "timeouts",
		"max_body_bytes", "auth",     "key_limit", NULL
	};
	static const char *const auths[] = { "none", "api_key", "jwt", "any", NULL };
	char svc[GW_NAME_MAX] = "", auth[16] = "";
	int exact = 0, strip = 0, enabled = 1, key_limit = 0, err;
	uint32_t prio = 0, retries = 0, maxb = 0;
	json_t *pv = json_object_get(o, "priority");

	if ((err = check_keys(c, ptr, o, keys)) ||
	    (err = get_str(c, ptr, o, "prefix", r->prefix, sizeof(r->prefix), 1)) ||
	    (err = get_str(c, ptr, o, "name", r->name, sizeof(r->name), 0)) ||
	    (err = get_str(c, ptr, o, "service", svc, sizeof(svc), 1)) ||
	    (err = get_bool(c, ptr, o, "exact", &exact)) ||
	    (err = get_bool(c, ptr, o, "strip_prefix", &strip)) ||
	    (err = get_bool(c, ptr, o, "enabled", &enabled)) ||
	    (err = get_u32(c, ptr, o, "retries", 0, 5, &retries)) ||
	    (err = get_u32(c, ptr, o, "max_body_bytes", 1, 1u << 30, &maxb)) ||
	    (err = get_str(c, ptr, o, "auth", auth, sizeof(auth), 0)) ||
	    (err = get_bool(c, ptr, o, "key_limit", &key_limit)) ||
	    (err = check_prefix(c, ptr, r->prefix)) ||
	    (err = parse_methods(c, ptr, json_object_get(o, "methods"), &r->methods)))
		return err;
	if (pv) {
		if (!json_is_integer(pv) || json_integer_value(pv) < -1000000 ||
		    json_integer_value(pv) > 1000000)
			return fail(c, ptr,
				    "\"priority\" must be an integer in [-1000000, 1000000]");
		prio = (uint32_t)(int)json_integer_value(pv);
	}
	if (!*r->name)
		snprintf(r->name, sizeof(r->name), "%.60s", r->prefix);
	r->auth = key_limit ? GW_AUTH_API_KEY : GW_AUTH_NONE;
	if (*auth) {
		for (r->auth = 0; auths[r->auth] && strcmp(auths[r->auth], auth); r->auth++)
			;
		if (!auths[r->auth])
			return fail(c, ptr, "\"auth\" must be none, api_key, jwt or any");
	}
	/* a JWT caller has no key bucket: "any" would let it pass unlimited */
	if (key_limit && r->auth != GW_AUTH_API_KEY)
		return fail(c, ptr,
			    "\"key_limit\" limits API keys: it needs \"auth\": \"api_key\"");
	r->key_limit = key_limit;
	r->ops = r->auth != GW_AUTH_NONE ? &gw_api_ops : NULL;
	r->kind = GW_ROUTE_API;
	r->prefix_len = strlen(r->prefix);
	if (r->prefix_len > 1 && r->prefix[r->prefix_len - 1] == '/' && !exact)
		r->prefix[--r->prefix_len] = 0;
	r->exact = exact;
	r->strip_prefix = strip;
	r->enabled = enabled;
	r->priority = (int)prio;
	r->retries = retries;
	r->max_body = maxb ? maxb : cfg->max_body_bytes;
	r->timeouts = cfg->timeouts;
	if ((err = parse_timeouts(c, ptr, json_object_get(o, "timeouts"), &r->timeouts)))
		return err;
	for (unsigned i = 0; i < cfg->nservices; i++)
		if (!strcmp(cfg->services[i].name, svc))
			r->service = &cfg->services[i];
	if (!r->service)
		return fail(c, ptr, "unknown service \"%.64s\"", svc);
	return 0;
}

const struct gw_provider *gw_config_provider(const struct gw_config *c, const char *name)
{
	for (unsigned i = 0; i < c->nproviders; i++)
		if (!strcmp(c->providers[i].name, name))
			return &c->providers[i];
	return NULL;
}

static int route_cmp(const void *a, const void *b)
{
	const struct gw_route *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (x->prefix_len != y->prefix_len)
		return x->prefix_len > y->prefix_len ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void config_free(struct gw_config *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->nproviders; i++) {
		if (c->providers[i].api_key) {
			explicit_bzero(c->providers[i].api_key, strlen(c->providers[i].api_key));
			free(c->providers[i].api_key);
		}
	}
	json_decref(c->admission);
	free(c->services);
	free(c->routes);
	free(c->providers);
	free(c->models);
	free(c);
}

static int parse_root(struct ctx *c, json_t *root, struct gw_config *cfg)
{
	static const char *const keys[] = { "listen",	  "workers",   "limits",    "timeouts",
					    "services",	  "routes",    "providers", "models",
					    "llm",	  "admission", "tls",	    "metrics",
					    "scheduling", NULL };
	static const char *const lkeys[] = { "max_connections", "max_head_bytes", "max_body_bytes",
					     NULL };
	static const char *const tkeys[] = { "client_header_ms", "client_body_ms",
					     "client_idle_ms",	 "client_send_ms",
					     "drain_ms",	 "upstream_idle_ms",
					     "connect_ms",	 "read_ms",
					     "total_ms",	 NULL };
	static const char *const llmkeys[] = { "enabled", "paths", "native_prefixes", NULL };
	json_t *o, *v, *services, *routes, *providers, *models, *llm, *paths = NULL;
	const char *k;
	size_t i, nllm_paths;
	uint32_t maxb = 1 << 20;
	int err, llm_on = 1, native_on = 1;
	unsigned n;

	if ((err = check_keys(c, "/", root, keys)) ||
	    (err = get_str(c, "/", root, "listen", cfg->listen, sizeof(cfg->listen), 0)) ||
	    (err = get_u32(c, "/", root, "workers", 0, 256, &cfg->workers)))
		return err;
	if ((v = json_object_get(root, "scheduling"))) {
		const char *sv = json_string_value(v);
		if (!sv || (strcmp(sv, "batch") && strcmp(sv, "normal")))
			return fail(c, "/scheduling", "must be \"batch\" or \"normal\"");
		cfg->sched_batch = !strcmp(sv, "batch");
	}
	if ((o = json_object_get(root, "limits")) &&
	    ((err = check_keys(c, "/limits", o, lkeys)) ||
	     (err = get_u32(c, "/limits", o, "max_connections", 1, 1000000,
			    &cfg->max_connections)) ||
	     (err = get_u32(c, "/limits", o, "max_head_bytes", 1024, 1 << 20,
			    &cfg->max_head_bytes)) ||
	     (err = get_u32(c, "/limits", o, "max_body_bytes", 1, 1u << 30, &maxb))))
		return err;
	cfg->max_body_bytes = maxb;
	if ((o = json_object_get(root, "timeouts")) &&
	    ((err = check_keys(c, "/timeouts", o, tkeys)) ||
	     (err = get_u32(c, "/timeouts", o, "client_header_ms", 10, 3600000,
			    &cfg->client_header_timeout_ms)) ||
	     (err = get_u32(c, "/timeouts", o, "client_body_ms", 10, 3600000,
			    &cfg->client_body_timeout_ms)) ||
	     (err = get_u32(c, "/timeouts", o, "client_idle_ms", 10, 3600000,
			    &cfg->client_idle_timeout_ms)) ||
	     (err = get_u32(c, "/timeouts", o, "client_send_ms", 10, 3600000,
			    &cfg->client_send_timeout_ms)) ||
	     (err = get_u32(c, "/timeouts", o, "drain_ms", 0, 3600000, &cfg->drain_timeout_ms)) ||
	     (err = get_u32(c, "/timeouts", o, "upstream_idle_ms", 10, 3600000,
			    &cfg->upstream_idle_ms)) ||
	     (err = get_u32(c, "/timeouts", o, "connect_ms", 1, 600000,
			    &cfg->timeouts.connect_ms)) ||
	     (err = get_u32(c, "/timeouts", o, "read_ms", 1, 3600000, &cfg->timeouts.read_ms)) ||
	     (err = get_u32(c, "/timeouts", o, "total_ms", 1, 86400000, &cfg->timeouts.total_ms))))
		return err;

	if ((o = json_object_get(root, "metrics"))) {
		static const char *const mkeys[] = { "listen", NULL };
		struct sockaddr_storage ss;
		socklen_t sl;
		if ((err = check_keys(c, "/metrics", o, mkeys)) ||
		    (err = get_str(c, "/metrics", o, "listen", cfg->metrics_listen,
				   sizeof(cfg->metrics_listen), 0)))
			return err;
		if (cfg->metrics_listen[0] && gw_parse_listen(cfg->metrics_listen, &ss, &sl))
			return fail(c, "/metrics/listen", "\"%s\" is not HOST:PORT or [V6]:PORT",
				    cfg->metrics_listen);
	}
	if ((o = json_object_get(root, "tls"))) {
		static const char *const tlskeys[] = { "ca_file", NULL };
		if ((err = check_keys(c, "/tls", o, tlskeys)) ||
		    (err = get_str(c, "/tls", o, "ca_file", cfg->tls_ca_file,
				   sizeof(cfg->tls_ca_file), 0)))
			return err;
		if (cfg->tls_ca_file[0]) {
			char why[512];
			if (gw_tls_check_ca(cfg->tls_ca_file, why, sizeof(why)))
				return fail(c, "/tls/ca_file", "%s", why);
		}
	}

	services = json_object_get(root, "services");
	if (services && !json_is_object(services))
		return fail(c, "/services", "must be an object of name -> service");
	cfg->services = calloc(json_object_size(services) + 1, sizeof(*cfg->services));
	if (!cfg->services)
		return -ENOMEM;
	json_object_foreach(services, k, v) {
		char p[128];
		snprintf(p, sizeof(p), "/services/%.64s", k);
		if ((err = parse_service(c, p, k, v, &cfg->services[cfg->nservices])))
			return err;
		cfg->nservices++;
	}

	providers = json_object_get(root, "providers");
	if (providers && !json_is_array(providers))
		return fail(c, "/providers", "must be an array");
	cfg->providers = calloc(json_array_size(providers) + 1, sizeof(*cfg->providers));
	if (!cfg->providers)
		return -ENOMEM;
	json_array_foreach(providers, i, v) {
		char p[64];
		snprintf(p, sizeof(p), "/providers/%zu", i);
		if ((err = parse_provider(c, p, v, &cfg->providers[i], cfg))) {
			cfg->nproviders = i + 1; /* free its key */
			return err;
		}
		cfg->nproviders = i + 1;
		for (n = 0; n < i; n++)
			if (!strcmp(cfg->providers[n].name, cfg->providers[i].name))
				return fail(c, p, "duplicate provider name \"%s\"",
					    cfg->providers[i].name);
	}

	models = json_object_get(root, "models");
	if (models && !json_is_array(models))
		return fail(c, "/models", "must be an array");
	cfg->models = calloc(json_array_size(models) + 1, sizeof(*cfg->models));
	if (!cfg->models)
		return -ENOMEM;
	json_array_foreach(models, i, v) {
		static const char *const mkeys[] = { "pattern", "providers", NULL };
		struct gw_model_rule *m = &cfg->models[i];
		json_t *pl = json_object_get(v, "providers"), *pn;
		char p[64];
		size_t j;

		snprintf(p, sizeof(p), "/models/%zu", i);
		if ((err = check_keys(c, p, v, mkeys)) ||
		    (err = get_str(c, p, v, "pattern", m->pattern, sizeof(m->pattern), 1)))
			return err;
		if (!json_is_array(pl) || !json_array_size(pl) ||
		    json_array_size(pl) > GW_CHAIN_MAX)
			return fail(c, p, "\"providers\" must list 1 to %d provider names",
				    GW_CHAIN_MAX);
		json_array_foreach(pl, j, pn) {
			const struct gw_provider *pp =
				json_is_string(pn) ?
					gw_config_provider(cfg, json_string_value(pn)) :
					NULL;
			if (!pp)
				return fail(c, p, "unknown provider \"%.64s\"",
					    json_is_string(pn) ? json_string_value(pn) : "?");
			m->providers[j] = pp;
		}
		m->nproviders = json_array_size(pl);
		cfg->nmodels++;
	}

	/* admission (gateway/llm_route.c): validated here so a bad one refuses the whole file */
	if ((v = json_object_get(root, "admission"))) {
		struct gw_llm_opts lo;
		char e[256];

		if (gw_llm_opts_parse(v, &lo, e, sizeof(e)))
			return fail(c, "/admission", "%s", e);
		cfg->admission = json_incref(v);
	}
	llm = json_object_get(root, "llm");
	if (llm) {
		if ((err = check_keys(c, "/llm", llm, llmkeys)) ||
		    (err = get_bool(c, "/llm", llm, "enabled", &llm_on)) ||
		    (err = get_bool(c, "/llm", llm, "native_prefixes", &native_on)))
			return err;
		paths = json_object_get(llm, "paths");
		if (paths && !json_is_array(paths))
			return fail(c, "/llm/paths", "must be an array of paths");
	}
	if (!cfg->nproviders)
		llm_on = native_on = 0;
	nllm_paths = paths ? json_array_size(paths) :
			     sizeof(default_llm_paths) / sizeof(default_llm_paths[0]);

	routes = json_object_get(root, "routes");
	if (routes && !json_is_array(routes))
		return fail(c, "/routes", "must be an array");
	cfg->routes = calloc(json_array_size(routes) + nllm_paths + cfg->nproviders + 1,
			     sizeof(*cfg->routes));
	if (!cfg->routes)
		return -ENOMEM;
	json_array_foreach(routes, i, v) {
		char p[64];
		snprintf(p, sizeof(p), "/routes/%zu", i);
		if ((err = parse_route(c, p, v, &cfg->routes[cfg->nroutes], cfg)))
			return err;
		cfg->routes[cfg->nroutes].order = cfg->nroutes;
		cfg->nroutes++;
	}
	for (i = 0; llm_on && i < nllm_paths; i++) {
		struct gw_route *r = &cfg->routes[cfg->nroutes];
		const char *s;
		char p[64];

		snprintf(p, sizeof(p), "/llm/paths/%zu", i);
		if (paths) {
			json_t *e = json_array_get(paths, i);
			if (!json_is_string(e) || json_string_length(e) >= sizeof(r->prefix))
				return fail(c, p, "must be a path");
			s = json_string_value(e);
		} else {
			s = default_llm_paths[i];
		}
		if ((err = check_prefix(c, p, s)))
			return err;
		strcpy(r->prefix, s);
		snprintf(r->name, sizeof(r->name), "llm:%.58s", s);
		r->kind = GW_ROUTE_LLM;
		r->prefix_len = strlen(s);
		r->exact = 1;
		r->enabled = 1;
		r->methods = GW_M_POST;
		r->max_body = cfg->max_body_bytes;
		r->timeouts = cfg->timeouts;
		r->ops = gw_routes_ops(GW_ROUTE_LLM);
		r->order = cfg->nroutes++;
	}
	for (n = 0; native_on && n < cfg->nproviders; n++) {
		struct gw_route *r = &cfg->routes[cfg->nroutes];
		const struct gw_provider *pp = &cfg->providers[n];

		snprintf(r->prefix, sizeof(r->prefix), "/%s", pp->name);
		snprintf(r->name, sizeof(r->name), "native:%.56s", pp->name);
		r->kind = GW_ROUTE_NATIVE;
		r->prefix_len = strlen(r->prefix);
		r->strip_prefix = 1;
		r->enabled = 1;
		r->methods = GW_M_ALL;
		r->max_body = cfg->max_body_bytes;
		r->timeouts = pp->timeouts;
		r->provider = pp;
		r->ops = gw_routes_ops(GW_ROUTE_NATIVE);
		r->order = cfg->nroutes++;
	}
	qsort(cfg->routes, cfg->nroutes, sizeof(*cfg->routes), route_cmp);
	return 0;
}

int gw_config_parse(const char *json, size_t len, const char *source, struct gw_config **out,
		    char *err, size_t errlen)
{
	static uint64_t generation;
	struct ctx c = { source, err, errlen };
	struct gw_config *cfg;
	json_error_t je;
	json_t *root;
	int r;

	*out = NULL;
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		snprintf(err, errlen, "%s:%d:%d: %s", source, je.line, je.column, je.text);
		return -EINVAL;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		json_decref(root);
		snprintf(err, errlen, "%s: out of memory", source);
		return -ENOMEM;
	}
	snprintf(cfg->source, sizeof(cfg->source), "%s", source);
	snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:8080");
	cfg->client_header_timeout_ms = 10000;
	cfg->client_body_timeout_ms = 30000;
	cfg->client_idle_timeout_ms = 60000;
	cfg->client_send_timeout_ms = 60000;
	cfg->drain_timeout_ms = 30000;
	cfg->upstream_idle_ms = 30000;
	cfg->max_connections = 10000;
	cfg->sched_batch = 1;
	cfg->max_head_bytes = LT_HTTP1_DEFAULT_MAX_HEAD;
	cfg->timeouts = (struct gw_timeouts){ 3000, 60000, 300000 };
	r = parse_root(&c, root, cfg);
	json_decref(root);
	if (r) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "%s: out of memory", source);
		config_free(cfg);
		return r;
	}
	cfg->refs = 1;
	cfg->generation = ++generation;
	*out = cfg;
	return 0;
}

int gw_config_load(const char *path, struct gw_config **out, char *err, size_t errlen)
{
	FILE *f;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int r;

	if (!path)
		return gw_config_parse(gw_config_default_json, strlen(gw_config_default_json),
				       "(embedded default)", out, err, errlen);
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		*out = NULL;
		return r;
	}
	for (;;) {
		if (n == cap) {
			char *nb;
			cap = cap ? cap * 2 : 8192;
			if (cap > (16u << 20) || !(nb = realloc(buf, cap))) {
				free(buf);
				fclose(f);
				snprintf(err, errlen, "%s: too large or out of memory", path);
				*out = NULL;
				return -ENOMEM;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (!got)
			break;
	}
	fclose(f);
	r = gw_config_parse(buf, n, path, out, err, errlen);
	free(buf);
	return r;
}

struct gw_config *gw_config_get(struct gw_config *c)
{
	c->refs++;
	return c;
}

void gw_config_put(struct gw_config *c)
{
	if (c && --c->refs == 0)
		config_free(c);
}
