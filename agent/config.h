/* SPDX-License-Identifier: MIT */
/*
 * config.h - the agent's JSON config: protected ports, default and per-prefix
 * source policies, allowlist, dry-run. Parsed whole and validated before any
 * map is touched; errors cite the file and the JSON pointer of the field.
 */
#ifndef LT_AGENT_CONFIG_H
#define LT_AGENT_CONFIG_H

#include <stddef.h>
#include "lt_abi.h"

struct lt_prefix_policy {
	struct lt_lpm_key key;
	struct lt_src_policy pol;
};

/* Control plane (REST API, JWT, token quotas). */
#define LT_CP_MAX_PROVIDERS 64
#define LT_CP_MAX_TIERS 16
#define LT_CP_MAX_LIMITS 256
/*
 * token.request_log_max_bytes by default: the 100000 rows of the default row
 * cap take some 40 MB with their indexes; the rest is room for the rollups.
 */
#define LT_REQUEST_LOG_MAX_BYTES (256ULL << 20)

struct lt_cp_limit {
	char kind
		[8]; /* "tier" | "org" | "pool" (provider pools) | "keyreq" (API-key request rates) */
	char name[64]; /* tier name, or "*" for the default org quota */
	char provider[32]; /* or "*" */
	__u64 capacity, tokens, period_ns;
};

struct lt_cp_config {
	char listen[64]; /* ADDR:PORT */
	__u32 max_body; /* bytes */
	__u32 threads;
	__u32 conns_per_client; /* open connections from one source address */
	__u64 request_timeout_ns; /* a whole request (head and body) must arrive in this */
	char jwt_secret[256]; /* "" = from LT_JWT_SECRET or the state dir */
	char jwt_pem[8][256];
	int njwt_pem;
	char jwt_jwks[256];
	char jwt_issuer[256], jwt_audience[256];
	__u64 jwt_leeway_s;
	char roles_claim[64], orgs_claim[64], admin_role[32];
	__u64 issued_ttl_s; /* tokens POST /api/v1/auth/token issues live this long */
	char providers[LT_CP_MAX_PROVIDERS][32];
	int nproviders;
	char tier_order[LT_CP_MAX_TIERS][32]; /* first tier a token's roles contain wins */
	int ntiers;
	char default_tier[32];
	struct lt_cp_limit limits[LT_CP_MAX_LIMITS]; /* seeds the store on first start */
	int nlimits;
	__u32 max_buckets; /* L7 buckets in use at most (lt_slots) */
	__u64 bucket_idle_ns; /* a bucket empty this long is reclaimed */
	__u32 request_log_rows; /* usage records kept in requests.db (read at start) */
	__u64 request_log_age_ns; /* and none older than this (read at start) */
	__u64 request_log_max_bytes; /* and requests.db no larger (bytes; read at start) */
	__u32 request_log_consume_rate; /* consume decisions kept as rows per s (0 = all; start) */
};

/*
 * Usage events to Apache Kafka (agent/outbox.h; the "kafka" section). Read at
 * start only: a SIGHUP reload keeps the producer it has.
 */
struct lt_kafka_config {
	int enabled; /* default off: no outbox rows, no producer */
	char brokers[512]; /* bootstrap.servers, "host:port,..." */
	char topic[128]; /* usage events */
	char config_topic[128]; /* admin changes to and from every host (sync.h); "" = no sync */
	char source[128]; /* ce_source and the ce_id prefix; "" = the host name */
	__u64 outbox_max; /* events kept unacknowledged at most; then the oldest go */
	__u64 message_timeout_ns; /* a send not acknowledged in this is sent again */
};

/*
 * Global limits across hosts (agent/global.h; the "global" section, read at
 * start). A rule makes every bucket whose key starts with prefix global.
 */
#define LT_GLOBAL_RULES 16
enum lt_global_mode { LT_GM_REPLICATE = 0, LT_GM_LEASE = 1 };
enum lt_on_stale {
	LT_STALE_SHARE = 0, /* L / N_live: this host spends as if each live host spent as much */
	LT_STALE_LAST = 1, /* keep the last state: admit against the local bucket alone */
	LT_STALE_CLOSED = 2, /* refuse everything on the bucket until the sync is fresh */
};
struct lt_global_rule {
	char prefix[128]; /* bucket keys ("o/openai/" ...) */
	int mode; /* enum lt_global_mode */
	int on_stale; /* enum lt_on_stale */
	__u64 window_ns; /* lease: W, the window a lease is for (L = R * W tokens a window) */
};
struct lt_global_config {
	char topic[128]; /* "" = no global buckets */
	__u64 interval_ns; /* S: each host publishes every S */
	__u64 tau_max_ns; /* the sync is stale when a live host's newest record is older */
	__u64 host_ttl_ns; /* a host is live (counts in N_live) this long after its last record */
	char grants_topic[128]; /* lease: the allocators' grants ("" = topic + ".grants") */
	__u64 session_ns; /* lease: the allocators' group session timeout (failover time) */
	struct lt_global_rule rules[LT_GLOBAL_RULES];
	int nrules;
};

/* Usage rollups (agent/rollup.h; the "analytics" section): how long each resolution stays. */
struct lt_analytics_config {
	__u64 minutes_ns; /* per-minute rows older than this are compacted into hours */
	__u64 hours_ns; /* per-hour rows older than this into days */
	__u64 days_ns; /* per-day rows older than this are deleted */
};

struct lt_agent_config {
	struct lt_cp_config cp;
	struct lt_kafka_config kafka;
	struct lt_analytics_config analytics;
	struct lt_global_config global;
	__u16 ports[LT_MAX_PORTS];
	__u32 nports;
	struct lt_config xdp; /* default policy, flags, sampling */
	struct lt_prefix_policy *policies;
	__u32 npolicies;
	struct lt_lpm_key *allow;
	__u32 nallow;
	__u32 max_sources; /* lt_src entries; fixed when the map is created */
	__u64 idle_timeout_ns; /* sweep buckets idle (and empty) this long */
	char gateway_group[64]; /* owns the gateway's pins (agent/pins.h) */
	int gateway_group_set; /* named in the file: a missing group is an error */
};

/* The embedded default config (agent/default-config.json), NUL-terminated. */
extern const char lt_default_config[];

/* name is used in error messages ("<default>" for the embedded one). */
int lt_config_parse(const char *json, const char *name, struct lt_agent_config *c, char *err,
		    size_t errlen);
int lt_config_load(const char *path, struct lt_agent_config *c, char *err, size_t errlen);
void lt_config_free(struct lt_agent_config *c);

/*
 * "CAP:RATE" (e.g. "20:10/s") or "unlimited" into an lt_rate; the command
 * line helpers use the same words as the file.
 */
int lt_rate_spec_parse(const char *spec, struct lt_rate *r, char *err, size_t errlen);

/* "CAP:TOKENS/PERIOD" (lt_rate_spec_parse's words) or "unlimited". */
void lt_rate_spec_format(const struct lt_rate *r, char *buf, size_t len);

/* Content hash: buckets are namespaced by it (see lt_src_key.policy_id). */
__u32 lt_policy_id(const struct lt_src_policy *p);

/* A policy object (connections, packets, aggregate_*) over base. */
#include <jansson.h>
int lt_policy_from_json(json_t *v, const char *ptr, const struct lt_src_policy *base,
			struct lt_src_policy *out, char *err, size_t errlen);

/* The lt_policy value of an allowlist entry. */
struct lt_src_policy lt_allow_policy(void);

#endif
