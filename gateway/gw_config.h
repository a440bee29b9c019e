/* SPDX-License-Identifier: MIT */
/*
 * gw_config.h - leaky-gateway's configuration (JSON, jansson): listen address,
 * workers, limits, timeouts, upstream services, routes, LLM providers and the
 * model map. One loaded config is an immutable snapshot: a worker swaps the
 * whole snapshot on SIGHUP and in-flight exchanges keep the one they started
 * with (a reference count, single-threaded per worker).
 *
 * Provider keys come from api_key_env or api_key_file, are kept only in
 * struct gw_provider.api_key, and are never logged or echoed in errors.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define GW_NAME_MAX 64
#define GW_HOST_MAX 256
#define GW_PATH_MAX 256
#define GW_SERVICE_URLS_MAX 16
#define GW_CHAIN_MAX 8 /* providers in one model's fallback chain */

struct gw_route_ops;

struct gw_timeouts {
	uint32_t connect_ms; /* TCP connect to the upstream */
	uint32_t read_ms; /* between two reads of the upstream response */
	uint32_t total_ms; /* from the request head to the end of the response */
};

/* A parsed base URL: http://host:port/base. */
struct gw_url {
	unsigned
		tls : 1; /* https: TLS verified against the config's tls.ca_file or the system store */
	uint16_t port;
	char host[GW_HOST_MAX]; /* a literal IPv4/IPv6 address or a name (resolved at load) */
	char hostport[GW_HOST_MAX + 8]; /* the Host field, and the pool key with the address */
	char base_path[GW_PATH_MAX]; /* "" or "/v1beta" (no trailing slash) */
	/* the address, resolved when the config is loaded */
	struct {
		uint16_t family; /* AF_INET or AF_INET6 */
		uint8_t addr[16];
	} sa;
	/* a worker's own runtime state (each process has its own copy of a snapshot) */
	void *rt_pool; /* the worker's upstream pool for this address, found once */
	int health_slot; /* index in the master's health table, -1: not checked */
};

/*
 * Parses "http(s)://host[:port][/base]" into u. resolve_names: names go through
 * getaddrinfo (config load); else only literal addresses (no DNS in a worker's
 * loop). 0, or -EINVAL / -EHOSTUNREACH with the reason in why.
 */
int gw_url_parse(const char *s, struct gw_url *u, int resolve_names, char *why, size_t whylen);

enum gw_provider_kind { GW_PROV_OPENAI = 0, GW_PROV_GEMINI, GW_PROV_QWEN, GW_PROV_ANTHROPIC };
const char *gw_provider_kind_name(enum gw_provider_kind k);

struct gw_provider {
	char name[GW_NAME_MAX];
	enum gw_provider_kind kind;
	struct gw_url url;
	char *api_key; /* NULL when none is configured; never logged */
	struct gw_timeouts timeouts;
};

/* model pattern ('*' any run, '?' one char) -> ordered providers (the fallback chain) */
struct gw_model_rule {
	char pattern[128];
	unsigned nproviders;
	const struct gw_provider *providers[GW_CHAIN_MAX];
};

enum gw_balance { GW_BAL_ROUND_ROBIN = 0, GW_BAL_LEAST_CONN };

struct gw_service {
	char name[GW_NAME_MAX];
	enum gw_balance balance;
	unsigned nurls;
	struct gw_url urls[GW_SERVICE_URLS_MAX];
	/* active health check: GET path every interval_ms; 0 = none (always healthy) */
	char health_path[GW_PATH_MAX];
	uint32_t health_interval_ms;
	uint32_t health_timeout_ms;
	unsigned rr; /* a worker's round-robin cursor (runtime state, per process) */
};

enum gw_route_kind {
	GW_ROUTE_API = 0, /* general API route: prefix -> service */
	GW_ROUTE_LLM, /* OpenAI-compatible endpoint: model -> provider chain */
	GW_ROUTE_NATIVE, /* /openai/..., /gemini/...: pass-through to one provider */
};

#define GW_M_GET (1u << 0)
#define GW_M_HEAD (1u << 1)
#define GW_M_POST (1u << 2)
#define GW_M_PUT (1u << 3)
#define GW_M_DELETE (1u << 4)
#define GW_M_PATCH (1u << 5)
#define GW_M_OPTIONS (1u << 6)
#define GW_M_OTHER (1u << 7)
#define GW_M_ALL 0xffu
/* RFC 9110 9.2.2 idempotent methods: retried on another upstream, the rest never */
#define GW_M_IDEMPOTENT (GW_M_GET | GW_M_HEAD | GW_M_PUT | GW_M_DELETE | GW_M_OPTIONS)

/* Who may call a general API route ("auth"; gateway/api_route.c checks it). */
enum gw_auth {
	GW_AUTH_NONE = 0, /* anyone: nothing is checked (the default) */
	GW_AUTH_API_KEY, /* an API key (X-API-Key, or Authorization: Bearer lk_...) */
	GW_AUTH_JWT, /* a JWT (Authorization: Bearer) */
	GW_AUTH_ANY, /* either */
};

struct gw_route {
	char name[GW_NAME_MAX];
	enum gw_route_kind kind;
	char prefix[GW_PATH_MAX];
	uint32_t prefix_len;
	unsigned exact : 1; /* the path must equal prefix (LLM endpoints) */
	unsigned strip_prefix : 1;
	unsigned enabled : 1;
	unsigned methods; /* GW_M_* */
	int priority; /* higher first; then the longer prefix */
	unsigned retries; /* extra attempts on another upstream, idempotent methods only */
	struct gw_timeouts timeouts;
	uint64_t max_body; /* bytes a route may hold with gw_want_body */
	const struct gw_service *service; /* API */
	const struct gw_provider *provider; /* NATIVE */
	const struct gw_route_ops *ops; /* NULL: plain forwarding */
	enum gw_auth auth; /* API routes */
	/* API routes: each request takes 1 from the caller's key request bucket r/<tier>/<key>
	 * (the agent's token.key_requests), all or nothing with admit.c; needs auth api_key */
	unsigned key_limit : 1;
	unsigned order; /* position in the file, the last tie-break */
	int stats_slot; /* its series in the shared metrics (stats.h); a process's own */
};

struct gw_config {
	unsigned refs; /* snapshots held: the worker's current one plus in-flight exchanges */
	uint64_t generation; /* increases on each successful load */
	char source[GW_PATH_MAX]; /* file name, or "(embedded default)" */
	char listen[GW_HOST_MAX];
	char metrics_listen[GW_HOST_MAX]; /* "metrics": {"listen"}; "" = no metrics listener */
	unsigned workers; /* 0 = one per CPU */
	/*
	 * Workers run SCHED_BATCH ("scheduling": "batch", the default): a worker
	 * woken by a packet does not preempt the client or upstream that sent it,
	 * so it wakes once for a batch of events instead of once per packet
	 * (proxy.c worker_sched has the figures and the cost). "normal": SCHED_OTHER.
	 */
	int sched_batch;
	/* client side */
	uint32_t client_header_timeout_ms; /* from the first byte to the end of the head */
	uint32_t client_body_timeout_ms; /* between two reads of a request body */
	uint32_t client_idle_timeout_ms; /* keep-alive wait for the next request */
	uint32_t client_send_timeout_ms; /* a response that the client does not read */
	uint32_t drain_timeout_ms; /* SIGTERM: in-flight exchanges get this long */
	uint32_t max_connections; /* client connections per worker */
	uint32_t max_head_bytes; /* request head; beyond: 431 */
	uint64_t max_body_bytes; /* default gw_want_body bound */
	uint32_t upstream_idle_ms; /* pooled upstream connections older than this are closed */
	struct gw_timeouts timeouts; /* route defaults */
	char tls_ca_file
		[GW_PATH_MAX]; /* https upstreams: trusted CAs (PEM); "" = the system store */
	unsigned nservices, nroutes, nproviders, nmodels;
	struct gw_service *services;
	struct gw_route *routes; /* sorted: priority desc, prefix length desc, order */
	struct gw_provider *providers;
	struct gw_model_rule *models;
	void *admission; /* json_t of "admission" (validated; gateway/llm_route.c reads it), or NULL */
};

/*
 * Loads and validates a config: path NULL for the embedded default. 0 and
 * *out (refs 1), or -EINVAL/-ENOENT/-ENOMEM with a one-line reason in err
 * (the file and the JSON pointer of the bad key). Nothing is half-applied.
 */
int gw_config_load(const char *path, struct gw_config **out, char *err, size_t errlen);
/* The same from a JSON text (tests, the embedded default). */
int gw_config_parse(const char *json, size_t len, const char *source, struct gw_config **out,
		    char *err, size_t errlen);
struct gw_config *gw_config_get(struct gw_config *c);
void gw_config_put(struct gw_config *c);

/* The embedded default config text. */
extern const char gw_config_default_json[];

const struct gw_provider *gw_config_provider(const struct gw_config *c, const char *name);

#endif
