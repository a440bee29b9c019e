// SPDX-License-Identifier: MIT
/* llm_route.c - the LLM routes' ops (see llm_route.h for the order and the charging rule). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "admit.h"
#include "answer.h"
#include "breaker.h"
#include "gw_config.h"
#include "failpolicy.h"
#include "identity.h"
#include "llm_body.h"
#include "llm_route.h"
#include "stats.h"
#include "llm_usage.h"
#include "log.h"
#include "maps.h"
#include "reqlog.h"
#include "resolve.h"
#include "routes.h"
#include "tenant.h"

#define GW_LLM_JSON_MAX (1u << 20) /* bytes of a JSON answer held to read its usage */
#define GW_LLM_RETRY_MAPS_NS 1000000000ULL /* look for missing maps at most once a second */

/* What a worker process holds (set before fork; each worker has its own copy). */
static struct {
	struct gw_llm_opts o;
	int ready; /* maps open: admission runs */
	uint64_t next_try_ns;
	struct lt_decide_maps dm;
	void *maps_mem[3];
	size_t maps_len[3];
	struct lt_resolver res;
	int res_ok;
	struct lt_leases leases;
	int leases_ok;
	struct lt_admitter adm;
	struct lt_admitter api_adm; /* the API routes': no leases */
	struct lt_breakers brk;
	int brk_ok;
	struct lt_reqlog rl;
	int rl_ok;
	struct lt_gw_pins pins;
	int pins_ok;
	struct lt_jwt_verifier jwt;
	int jwt_ok;
	char tiers[GW_LLM_MAX_TIERS][32];
	struct lt_gw_identity *id;
	struct lt_gw_identity_opts io;
	char admin_bearer[1024];
	struct lt_fail_policy fail;
} G;

/* One exchange. */
struct llm_x {
	struct lt_gw_tenant t;
	int authed;
	int metered; /* admission ran (0: fail-open, or never got that far) */
	struct lt_llm_req req;
	int parsed;
	struct lt_llm_resv resv;
	const struct gw_model_rule *rule;
	struct gw_model_rule native_rule; /* a native route's one provider */
	unsigned chain; /* index in rule->providers of the one in use */
	const struct gw_provider *prov;
	char path[GW_PATH_MAX + 64];
	char *body; /* the rewritten body, or NULL */
	char keys[LT_ADMIT_MAX][LT_BUCKET_KEY_LEN];
	struct lt_admit_limit lim[LT_ADMIT_MAX];
	unsigned nlim;
	struct lt_reservation res;
	int held; /* res holds a reservation */
	int sent; /* the request went to a provider */
	struct lt_admit_result ar;
	int brk_probe;
	/* the answer */
	int sse; /* the response is an event stream */
	int json_array; /* a Gemini stream: if its answer is JSON, an array of events */
	int stream_ready;
	struct lt_llm_sse s;
	struct lt_llm_buf out;
	char *json; /* a JSON answer, held to read its usage (bounded) */
	size_t json_len, json_cap;
	int json_over;
	unsigned status;
	uint64_t retry_after_ms; /* a provider's 429 */
	int cut;
	int refused; /* the answer was refused (encoded): charged the whole reservation */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

void gw_llm_opts_default(struct gw_llm_opts *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->pin_dir, sizeof(o->pin_dir), "%s", LT_PIN_DIR_DEFAULT);
	snprintf(o->agent, sizeof(o->agent), "127.0.0.1:9090");
	snprintf(o->state_dir, sizeof(o->state_dir), "/var/lib/leaky-tokens");
	snprintf(o->admin_role, sizeof(o->admin_role), "ADMIN");
	snprintf(o->default_tier, sizeof(o->default_tier), "USER");
	o->ntiers = 2;
	snprintf(o->tiers[0].name, sizeof(o->tiers[0].name), "ADMIN");
	o->tiers[0].default_output_tokens = 4096;
	snprintf(o->tiers[1].name, sizeof(o->tiers[1].name), "USER");
	o->tiers[1].default_output_tokens = 1024;
	o->keep_reading_ms = 5000;
	o->lease_ms = 600000;
	o->max_body = 4u << 20;
	gw_esc_opts_default(&o->esc);
	o->brk_fail_threshold = LT_BRK_POLICY_DEFAULT.fail_threshold;
	o->brk_recovery_ms = LT_BRK_POLICY_DEFAULT.recovery_ms;
	o->brk_probes = LT_BRK_POLICY_DEFAULT.probes;
	o->brk_probe_timeout_ms = LT_BRK_POLICY_DEFAULT.probe_timeout_ms;
}

static int opt_str(json_t *a, const char *k, char *out, size_t len, char *err, size_t errlen)
{
	json_t *v = json_object_get(a, k);

	if (!v)
		return 0;
	if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= len) {
		snprintf(err, errlen, "/admission/%s: must be a non-empty string under %zu bytes",
			 k, len);
		return -EINVAL;
	}
	snprintf(out, len, "%s", json_string_value(v));
	return 0;
}

static int opt_u32(json_t *a, const char *k, uint32_t lo, uint32_t hi, uint32_t *out, char *err,
		   size_t errlen)
{
	json_t *v = json_object_get(a, k);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		snprintf(err, errlen, "/admission/%s: must be an integer in [%u, %u]", k, lo, hi);
		return -EINVAL;
	}
	*out = json_integer_value(v);
	return 0;
}

int gw_llm_opts_parse(const void *json_admission, struct gw_llm_opts *o, char *err, size_t errlen)
{
	static const char *const known[] = { "pin_dir",		"agent",	"state_dir",
					     "admin_role",	"default_tier", "tiers",
					     "keep_reading_ms", "lease_ms",	"max_body",
					     "escalation",	"breaker",	NULL };
	json_t *a = (json_t *)json_admission, *v, *t;
	const char *k;
	size_t i;
	int r = 0;

	gw_llm_opts_default(o);
	if (!a)
		return 0;
	if (!json_is_object(a)) {
		snprintf(err, errlen, "/admission: must be an object");
		return -EINVAL;
	}
	json_object_foreach(a, k, v) {
		const char *const *p = known;
		while (*p && strcmp(*p, k))
			p++;
		if (!*p) {
			snprintf(err, errlen, "/admission: unknown key \"%.64s\"", k);
			return -EINVAL;
		}
	}
	r = r ?: opt_str(a, "pin_dir", o->pin_dir, sizeof(o->pin_dir), err, errlen);
	r = r ?: opt_str(a, "agent", o->agent, sizeof(o->agent), err, errlen);
	r = r ?: opt_str(a, "state_dir", o->state_dir, sizeof(o->state_dir), err, errlen);
	r = r ?: opt_str(a, "admin_role", o->admin_role, sizeof(o->admin_role), err, errlen);
	r = r ?: opt_str(a, "default_tier", o->default_tier, sizeof(o->default_tier), err, errlen);
	r = r ?: opt_u32(a, "keep_reading_ms", 0, 600000, &o->keep_reading_ms, err, errlen);
	r = r ?: opt_u32(a, "lease_ms", 1000, 86400000, &o->lease_ms, err, errlen);
	r = r ?: opt_u32(a, "max_body", 1024, 64u << 20, &o->max_body, err, errlen);
	if (r)
		return r;
	v = json_object_get(a, "tiers");
	if (v) {
		/* [{"name","default_output_tokens","on_maps_missing"}], in the agent's tier order */
		if (!json_is_array(v) || !json_array_size(v) ||
		    json_array_size(v) > GW_LLM_MAX_TIERS) {
			snprintf(err, errlen, "/admission/tiers: an array of 1..%d tiers",
				 GW_LLM_MAX_TIERS);
			return -EINVAL;
		}
		o->ntiers = 0;
		json_array_foreach(v, i, t) {
			struct gw_llm_tier *tt = &o->tiers[o->ntiers++];
			json_t *n = json_object_get(t, "name"), *d, *f;

			if (!json_is_object(t) || !json_is_string(n) || !json_string_length(n) ||
			    json_string_length(n) >= sizeof(tt->name)) {
				snprintf(err, errlen, "/admission/tiers/%zu/name: a tier name", i);
				return -EINVAL;
			}
			snprintf(tt->name, sizeof(tt->name), "%s", json_string_value(n));
			tt->default_output_tokens = 1024;
			d = json_object_get(t, "default_output_tokens");
			if (d && (!json_is_integer(d) || json_integer_value(d) < 1 ||
				  (uint64_t)json_integer_value(d) > LT_LLM_MAX_OUTPUT_TOKENS)) {
				snprintf(
					err, errlen,
					"/admission/tiers/%zu/default_output_tokens: an integer in "
					"[1, %llu]",
					i, (unsigned long long)LT_LLM_MAX_OUTPUT_TOKENS);
				return -EINVAL;
			}
			if (d)
				tt->default_output_tokens = json_integer_value(d);
			f = json_object_get(t, "on_maps_missing");
			if (f && (!json_is_string(f) || (strcmp(json_string_value(f), "open") &&
							 strcmp(json_string_value(f), "closed")))) {
				snprintf(
					err, errlen,
					"/admission/tiers/%zu/on_maps_missing: \"open\" or \"closed\"",
					i);
				return -EINVAL;
			}
			tt->fail_open = f && !strcmp(json_string_value(f), "open");
		}
	}
	v = json_object_get(a, "breaker");
	if (v) {
		if (!json_is_object(v)) {
			snprintf(err, errlen, "/admission/breaker: must be an object");
			return -EINVAL;
		}
		r = r ?: opt_u32(v, "fail_threshold", 1, 255, &o->brk_fail_threshold, err, errlen);
		r = r ?: opt_u32(v, "recovery_ms", 1, 86400000, &o->brk_recovery_ms, err, errlen);
		r = r ?: opt_u32(v, "probes", 1, 63, &o->brk_probes, err, errlen);
		r = r	  ?:
			    opt_u32(v, "probe_timeout_ms", 1, 86400000, &o->brk_probe_timeout_ms,
				    err, errlen);
		if (r)
			return r;
	}
	return gw_esc_opts_parse(json_object_get(a, "escalation"), &o->esc, err, errlen);
}

static const struct gw_llm_tier *tier_of(const char *name)
{
	for (unsigned i = 0; i < G.o.ntiers; i++)
		if (!strcmp(G.o.tiers[i].name, name))
			return &G.o.tiers[i];
	return NULL;
}

/* --- the maps ------------------------------------------------------------------ */

static void maps_close(void)
{
	for (int i = 0; i < 3; i++)
		if (G.maps_mem[i])
			munmap(G.maps_mem[i], G.maps_len[i]);
	memset(G.maps_mem, 0, sizeof(G.maps_mem));
	if (G.res_ok)
		lt_resolver_free(&G.res);
	if (G.leases_ok)
		lt_leases_close(&G.leases);
	if (G.brk_ok)
		lt_breakers_close(&G.brk);
	if (G.rl_ok)
		lt_reqlog_close(&G.rl);
	if (G.id)
		lt_gw_identity_free(G.id);
	if (G.pins_ok)
		lt_gw_pins_close(&G.pins);
	G.id = NULL;
	G.res_ok = G.leases_ok = G.brk_ok = G.rl_ok = G.pins_ok = G.ready = 0;
}

static int map_mem(int id, void **mem, size_t *len, char *err, size_t errlen)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", G.o.pin_dir, lt_map_names[id]);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	*mem = lt_map_mmap(fd, len);
	close(fd);
	if (!*mem) {
		snprintf(err, errlen, "%s: mmap failed", path);
		return -EIO;
	}
	return 0;
}

/* Opens every shared map admission needs; on failure nothing stays open. */
static int maps_open(char *err, size_t errlen)
{
	static const int ids[3] = { LT_M_SLOTS, LT_M_RATES, LT_M_USAGE };
	struct lt_gw_identity_opts *io = &G.io; /* must outlive G.id */
	char path[512];
	int r, fd;

	for (int i = 0; i < 3; i++) {
		r = map_mem(ids[i], &G.maps_mem[i], &G.maps_len[i], err, errlen);
		if (r)
			goto fail;
	}
	G.dm.slots = G.maps_mem[0];
	G.dm.rates = G.maps_mem[1];
	G.dm.usage = G.maps_mem[2];
	r = lt_resolver_init(&G.res, G.o.pin_dir, G.o.agent,
			     G.admin_bearer[0] ? G.admin_bearer : NULL, err, errlen);
	if (r)
		goto fail;
	G.res_ok = 1;
	r = lt_leases_open(&G.leases, G.o.pin_dir, err, errlen);
	if (r)
		goto fail;
	G.leases_ok = 1;
	lt_admitter_init(&G.adm, &G.dm, &G.res, &G.leases, (uint64_t)G.o.lease_ms * 1000000ULL);
	lt_admitter_init(&G.api_adm, &G.dm, &G.res, NULL, 0);
	snprintf(path, sizeof(path), "%s/%s", G.o.pin_dir, "lt_breaker");
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		struct lt_brk_policy bp = { G.o.brk_fail_threshold, G.o.brk_recovery_ms,
					    G.o.brk_probes, G.o.brk_probe_timeout_ms };
		if (!lt_breakers_open(&G.brk, fd, &bp))
			G.brk_ok = 1;
		close(fd);
	}
	if (!lt_reqlog_open(&G.rl, G.o.pin_dir, err, errlen))
		G.rl_ok = 1;
	r = lt_gw_pins_open(&G.pins, G.o.pin_dir, err, errlen);
	if (r)
		goto fail;
	G.pins_ok = 1;
	memset(io, 0, sizeof(*io));
	io->jwt = G.jwt_ok ? &G.jwt : NULL;
	io->roles.tiers = (const char(*)[32])G.tiers;
	io->roles.ntiers = G.o.ntiers;
	io->roles.default_tier = G.o.default_tier;
	io->roles.admin_role = G.o.admin_role;
	io->key_get = lt_apikey_map_fn;
	io->key_ctx = &G.pins.apikey_fd;
	io->keys_gen = &G.pins.cfg->keys_gen;
	r = lt_gw_identity_new(&G.id, io);
	if (r) {
		snprintf(err, errlen, "identity: %s", strerror(-r));
		goto fail;
	}
	G.ready = 1;
	return 0;
fail:
	maps_close();
	return r;
}

/* Admission is possible: the maps are open, or were found again just now. */
static int maps_ready(void)
{
	char err[256];
	uint64_t now;

	if (G.ready)
		return 1;
	now = mono_ns();
	if (now < G.next_try_ns)
		return 0;
	G.next_try_ns = now + GW_LLM_RETRY_MAPS_NS;
	if (maps_open(err, sizeof(err))) {
		lt_log_rl(LT_LOG_WARN, "gateway: shared maps unavailable (%s)", err);
		return 0;
	}
	lt_log(LT_LOG_INFO, "gateway: shared maps open under %s", G.o.pin_dir);
	return 1;
}

/*
 * A lease names its owner by pid and start time, and the master forks the
 * workers after gw_llm_init: each worker must own its leases as itself, so
 * that the agent settles them when that worker dies (and not while the
 * master lives on).
 */
static void after_fork_child(void)
{
	if (G.leases_ok)
		G.leases.me = lt_lease_owner_self();
}

static void llm_reload(const struct gw_config *cfg);

int gw_llm_init(const struct gw_llm_opts *o, char *err, size_t errlen)
{
	char secret[256], tok[1024], claims[256];
	const char *src;
	int r;

	memset(&G, 0, sizeof(G));
	G.o = *o;
	lt_fail_policy_init(&G.fail);
	for (unsigned i = 0; i < o->ntiers; i++)
		if (lt_fail_policy_set(&G.fail, o->tiers[i].name,
				       o->tiers[i].fail_open ? "open" : "closed", err, errlen))
			return -EINVAL;
	for (unsigned i = 0; i < o->ntiers; i++)
		snprintf(G.tiers[i], sizeof(G.tiers[i]), "%s", o->tiers[i].name);
	r = lt_gw_jwt_from_agent(&G.jwt, o->state_dir, NULL, err, errlen);
	if (!r) {
		G.jwt_ok = 1;
		/* an ADMIN credential for the agent's bucket API (the agent makes buckets) */
		snprintf(claims, sizeof(claims),
			 "{\"sub\":\"leaky-gateway\",\"roles\":[\"%s\"],\"iat\":%lld,"
			 "\"exp\":%lld}",
			 o->admin_role, (long long)time(NULL),
			 (long long)time(NULL) + 10LL * 366 * 86400);
		if (!lt_jwt_secret(o->state_dir, NULL, secret, sizeof(secret), &src) &&
		    !lt_jwt_sign_hs256(secret, claims, tok, sizeof(tok)))
			snprintf(G.admin_bearer, sizeof(G.admin_bearer), "Bearer %s", tok);
		explicit_bzero(secret, sizeof(secret));
	} else {
		lt_log(LT_LOG_WARN, "gateway: JWTs refused and new buckets not made: %s", err);
	}
	if (maps_open(err, errlen))
		lt_log(LT_LOG_WARN,
		       "gateway: shared maps unavailable (%s); each tier's "
		       "on_maps_missing applies until they are",
		       err);
	/* every 429 the gateway answers, on any route, counts (gateway/proxy.c calls it) */
	gw_esc_init(&o->esc, o->pin_dir);
	gw_routes_set_ops(GW_ROUTE_LLM, &gw_llm_ops);
	gw_routes_set_ops(GW_ROUTE_NATIVE, &gw_llm_ops);
	pthread_atfork(NULL, NULL, after_fork_child);
	gw_set_reload_hook(llm_reload);
	return 0;
}

/*
 * SIGHUP in a worker: the admission options of the new file apply to the
 * next request (tier allowances and fail policies, body bound, lease and
 * keep-reading times, breaker defaults, escalation). What was opened at start
 * (the pins, the agent's address, its secret, the admin role) needs a restart:
 * a change there is logged and the old value kept. The config was validated
 * before the hook runs; a failure here still keeps the old options whole.
 */
static void llm_reload(const struct gw_config *cfg)
{
	struct gw_llm_opts n;
	struct lt_fail_policy fp;
	char err[256];

	if (gw_llm_opts_parse(cfg->admission, &n, err, sizeof(err))) {
		lt_log(LT_LOG_WARN, "gateway: admission options kept: %s", err);
		return;
	}
	if (strcmp(n.agent, G.o.agent) || strcmp(n.state_dir, G.o.state_dir) ||
	    strcmp(n.admin_role, G.o.admin_role))
		lt_log(LT_LOG_WARN, "gateway: admission agent, state_dir and admin_role "
				    "changes apply on restart; the running ones stay");
	memcpy(n.pin_dir, G.o.pin_dir, sizeof(n.pin_dir));
	memcpy(n.agent, G.o.agent, sizeof(n.agent));
	memcpy(n.state_dir, G.o.state_dir, sizeof(n.state_dir));
	memcpy(n.admin_role, G.o.admin_role, sizeof(n.admin_role));
	lt_fail_policy_init(&fp);
	for (unsigned i = 0; i < n.ntiers; i++)
		if (lt_fail_policy_set(&fp, n.tiers[i].name,
				       n.tiers[i].fail_open ? "open" : "closed", err,
				       sizeof(err))) {
			lt_log(LT_LOG_WARN, "gateway: admission options kept: %s", err);
			return;
		}
	/* the counters are the tiers', not the file's: carry them over by name */
	for (int i = 0; i < fp.n; i++)
		for (int j = 0; j < G.fail.n; j++)
			if (!strcmp(fp.tier[i], G.fail.tier[j])) {
				fp.opened[i] = G.fail.opened[j];
				fp.closed[i] = G.fail.closed[j];
			}
	fp.opened[LT_FAIL_MAX_TIERS] = G.fail.opened[LT_FAIL_MAX_TIERS];
	fp.closed[LT_FAIL_MAX_TIERS] = G.fail.closed[LT_FAIL_MAX_TIERS];
	G.o = n;
	G.fail = fp;
	gw_stats_fail_copy(&G.fail);
	gw_esc_reload(&G.o.esc);
	for (unsigned i = 0; i < G.o.ntiers; i++)
		snprintf(G.tiers[i], sizeof(G.tiers[i]), "%s", n.tiers[i].name);
	G.io.roles.ntiers = G.o.ntiers;
	G.adm.lease_ns = (uint64_t)G.o.lease_ms * 1000000ULL;
	if (G.brk_ok)
		G.brk.dflt = (struct lt_brk_policy){ G.o.brk_fail_threshold, G.o.brk_recovery_ms,
						     G.o.brk_probes, G.o.brk_probe_timeout_ms };
	lt_log(LT_LOG_INFO, "gateway: admission options reloaded");
}

void gw_llm_fini(void)
{
	gw_esc_fini();
	maps_close();
}

int gw_llm_shared(struct lt_gw_identity **id, struct lt_admitter **adm)
{
	if (!maps_ready())
		return -ENOENT;
	*id = G.id;
	*adm = &G.api_adm;
	return 0;
}

/* --- per exchange -------------------------------------------------------------- */

/* A field's value as a C string (copied into buf), or NULL when absent or too long. */
static const char *field(const struct lt_http1_msg *m, const char *lower, char *buf, size_t len)
{
	const struct lt_http1_header *h = lt_http1_find(m, lower);

	if (!h || h->value_len >= len)
		return NULL;
	memcpy(buf, h->value, h->value_len);
	buf[h->value_len] = 0;
	return buf;
}

/* The OpenAI-compatible routes speak OpenAI's error shape; the others problem+json. */
static int openai_route(const struct llm_x *lx)
{
	return !lx->parsed || (lx->req.shape != LT_LLM_GEMINI && lx->req.shape != LT_LLM_ANTHROPIC);
}

static int answer_error(struct gw_exchange *x, struct llm_x *lx, unsigned status, const char *type,
			const char *code, const char *param, const char *msg)
{
	json_t *o;
	char *s;
	int r;

	if (!openai_route(lx))
		return gw_answer_problem(x, status, code, type, msg);
	o = json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", msg, "type", type, "param",
		      param, "code", code);
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s)
		return -ENOMEM;
	r = gw_answer(x, status, "application/json", s, strlen(s));
	free(s);
	return r;
}

/* The lines of an lt_answer ("Name: value\r\n"...) as response fields. */
static int add_lines(struct gw_exchange *x, const char *p, size_t len)
{
	char name[64], value[512];
	const char *end = p + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', end - p), *colon;
		size_t nl, vl;

		if (!eol)
			break;
		colon = memchr(p, ':', eol - p);
		if (colon && (nl = colon - p) < sizeof(name)) {
			const char *v = colon + 1;
			while (v < eol && *v == ' ')
				v++;
			vl = eol - v;
			if (vl && v[vl - 1] == '\r')
				vl--;
			if (vl < sizeof(value) && strncasecmp(p, "content-type", nl)) {
				memcpy(name, p, nl);
				name[nl] = 0;
				memcpy(value, v, vl);
				value[vl] = 0;
				if (gw_add_response_header(x, name, value))
					return -ENOMEM;
			}
		}
		p = eol + 1;
	}
	return 0;
}

static int send_answer(struct gw_exchange *x, const struct lt_answer *a)
{
	const char *ct = "application/json";

	if (add_lines(x, a->head, a->head_len))
		return -ENOMEM;
	if (memmem(a->head, a->head_len, "problem+json", 12))
		ct = "application/problem+json";
	return gw_answer(x, a->status, ct, a->body, a->body_len);
}

/* The shape of an LLM request path (after a native prefix was stripped). */
static int shape_of(const char *path, size_t len, enum lt_llm_shape *shape)
{
	static const struct {
		const char *suffix;
		enum lt_llm_shape shape;
	} t[] = {
		{ "/chat/completions", LT_LLM_CHAT }, { "/completions", LT_LLM_COMPLETIONS },
		{ "/embeddings", LT_LLM_EMBEDDINGS }, { "/responses", LT_LLM_RESPONSES },
		{ "/messages", LT_LLM_ANTHROPIC },
	};
	const char *q = memchr(path, '?', len);

	if (q)
		len = q - path;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = strlen(t[i].suffix);
		if (len >= n && !memcmp(path + len - n, t[i].suffix, n)) {
			*shape = t[i].shape;
			return 0;
		}
	}
	if (memmem(path, len, ":generateContent", 16) ||
	    memmem(path, len, ":streamGenerateContent", 22)) {
		*shape = LT_LLM_GEMINI;
		return 0;
	}
	return -ENOENT;
}

static enum lt_llm_provider llm_provider(enum gw_provider_kind k)
{
	switch (k) {
	case GW_PROV_GEMINI:
		return LT_LLM_P_GEMINI;
	case GW_PROV_QWEN:
		return LT_LLM_P_QWEN;
	case GW_PROV_ANTHROPIC:
		return LT_LLM_P_ANTHROPIC;
	default:
		return LT_LLM_P_OPENAI;
	}
}

/*
 * Where an OpenAI-shaped request goes on a provider of kind k: its
 * OpenAI-compatible endpoint. tail is the request path after "/v1".
 */
static int compat_path(enum gw_provider_kind k, const char *tail, char *out, size_t len)
{
	static const char *const pre[] = {
		[GW_PROV_OPENAI] = "/v1",
		[GW_PROV_GEMINI] = "/v1beta/openai", /* ai.google.dev/gemini-api/docs/openai */
		[GW_PROV_QWEN] = "/compatible-mode/v1", /* DashScope compatible mode */
		[GW_PROV_ANTHROPIC] = "/v1", /* Anthropic's OpenAI SDK compatibility */
	};
	int n = snprintf(out, len, "%s%s", pre[(unsigned)k < 4 ? k : 0], tail);

	return n < 0 || (size_t)n >= len ? -E2BIG : 0;
}

static void llm_x_free(struct llm_x *lx)
{
	if (!lx)
		return;
	if (lx->parsed)
		lt_llm_req_release(&lx->req);
	if (lx->stream_ready)
		lt_llm_sse_release(&lx->s);
	free(lx->out.p);
	free(lx->body);
	free(lx->json);
	free(lx);
}

static int on_head(struct gw_exchange *x)
{
	char auth[LT_GW_AUTHORIZATION_MAX], key[LT_GW_API_KEY_MAX], org[LT_GW_ORG_ID_MAX];
	struct lt_gw_deny d;
	struct llm_x *lx = calloc(1, sizeof(*lx));

	if (!lx)
		return -ENOMEM;
	gw_set_user(x, lx);
	if (maps_ready()) {
		if (lt_gw_identify(G.id, field(gw_req(x), "authorization", auth, sizeof(auth)),
				   field(gw_req(x), "x-api-key", key, sizeof(key)),
				   field(gw_req(x), "x-org-id", org, sizeof(org)), time(NULL),
				   &lx->t, &d)) {
			lx->status = d.status;
			if (d.status == 401)
				gw_add_response_header(x, "WWW-Authenticate", "Bearer");
			return answer_error(x, lx, d.status,
					    d.status == 401 ? "invalid_request_error" :
							      "permission_error",
					    d.type, d.field, d.detail);
		}
		lx->authed = 1;
		/*
		 * User and org buckets are keyed by UUIDs (lt_bucket_key): a token
		 * naming another kind of id ("auth0|abc", an e-mail) is refused
		 * here with its reason, where building the keys answered 500.
		 */
		if (!lt_uuid_canonical(lx->t.org[0] ? lx->t.org : lx->t.user)) {
			lx->status = 403;
			return answer_error(
				x, lx, 403, "permission_error", "forbidden",
				lx->t.org[0] ? "X-Org-Id" : "Authorization",
				lx->t.org[0] ? "X-Org-Id is not an org id (a UUID): org budgets "
					       "are kept per org UUID" :
					       "the credential's user (the token's sub) is not a "
					       "user id (a UUID): budgets are kept per user UUID");
		}
	}
	gw_want_body(x, G.o.max_body);
	return GW_CONTINUE;
}

/* The buckets of this request on provider p, in the order they are taken. */
static int build_limits(struct llm_x *lx, const struct gw_provider *p)
{
	const struct lt_gw_tenant *t = &lx->t;
	__u64 cost = lx->resv.total_tokens;
	unsigned n = 0;
	int r = 0;

	if (t->key_id[0]) {
		r = r	  ?:
			    lt_bucket_key(lx->keys[n], sizeof(lx->keys[n]), LT_BKEY_KEYREQ, t->tier,
					  NULL, t->key_id);
		lx->lim[n] =
			(struct lt_admit_limit){ lx->keys[n], "key-requests", 1, LT_UNIT_REQUESTS };
		n++;
		r = r	  ?:
			    lt_bucket_key(lx->keys[n], sizeof(lx->keys[n]), LT_BKEY_APIKEY, NULL,
					  NULL, t->key_id);
		lx->lim[n] =
			(struct lt_admit_limit){ lx->keys[n], "key-tokens", cost, LT_UNIT_TOKENS };
		n++;
	}
	if (t->org[0]) {
		r = r	  ?:
			    lt_bucket_key(lx->keys[n], sizeof(lx->keys[n]), LT_BKEY_ORG, NULL,
					  p->name, t->org);
		lx->lim[n] =
			(struct lt_admit_limit){ lx->keys[n], "org-tokens", cost, LT_UNIT_TOKENS };
	} else {
		r = r	  ?:
			    lt_bucket_key(lx->keys[n], sizeof(lx->keys[n]), LT_BKEY_USER, t->tier,
					  p->name, t->user);
		lx->lim[n] =
			(struct lt_admit_limit){ lx->keys[n], "user-tokens", cost, LT_UNIT_TOKENS };
	}
	n++;
	r = r ?: lt_bucket_key(lx->keys[n], sizeof(lx->keys[n]), LT_BKEY_POOL, NULL, p->name, NULL);
	lx->lim[n] = (struct lt_admit_limit){ lx->keys[n], "provider-pool", cost, LT_UNIT_TOKENS };
	n++;
	lx->nlim = n;
	return r;
}

/* The next provider of the chain, from index from, whose breaker lets a request go. */
static const struct gw_provider *next_provider(struct llm_x *lx, unsigned from, uint64_t *retry_ms)
{
	struct lt_brk_verdict v;

	*retry_ms = 0;
	for (unsigned i = from; i < lx->rule->nproviders; i++) {
		const struct gw_provider *p = lx->rule->providers[i];
		if (lx->req.shape == LT_LLM_ANTHROPIC && p->kind != GW_PROV_ANTHROPIC)
			continue;
		if (G.brk_ok && !lt_breaker_allow(&G.brk, p->name, &v) && !v.allowed) {
			if (!*retry_ms || v.retry_after_ms < *retry_ms)
				*retry_ms = v.retry_after_ms;
			continue;
		}
		lx->chain = i;
		lx->brk_probe = G.brk_ok ? v.probe : 0;
		return p;
	}
	return NULL;
}

/* Admits the request on provider p: GW_CONTINUE, or the answer already given. */
static int admit_on(struct gw_exchange *x, struct llm_x *lx, const struct gw_provider *p)
{
	struct lt_answer a;
	int r;

	if (build_limits(lx, p))
		return answer_error(x, lx, 500, "server_error", "internal", NULL,
				    "the request's bucket keys could not be built");
	r = lt_admit(&G.adm, lx->lim, lx->nlim, mono_ns(), &lx->res, &lx->ar);
	if (r == LT_ADM_OK) {
		lx->held = 1;
		lx->metered = 1;
		lt_answer_ok(&a, openai_route(lx) ? LT_ROUTE_OPENAI : LT_ROUTE_GENERIC, lx->lim,
			     lx->nlim, &lx->ar);
		if (add_lines(x, a.head, a.head_len))
			return -ENOMEM;
		return GW_CONTINUE;
	}
	lt_answer_denied(&a, openai_route(lx) ? LT_ROUTE_OPENAI : LT_ROUTE_GENERIC, lx->lim,
			 lx->nlim, &lx->ar, lx->req.model, (unsigned)mono_ns());
	lx->status = a.status;
	if (r == LT_ADM_UNAVAILABLE || r == LT_ADM_NO_QUOTA || r == LT_ADM_BAD_REQUEST)
		lt_log_rl(LT_LOG_WARN, "gateway: admission %d for %s: %s", r,
			  lx->ar.which >= 0 ? lx->lim[lx->ar.which].key : "?", lx->ar.err);
	return send_answer(x, &a);
}

/* Points the exchange at provider p: path, rewritten body. */
static int use_provider(struct gw_exchange *x, struct llm_x *lx, const struct gw_provider *p)
{
	const struct gw_route *rt = gw_route(x);
	const struct lt_http1_msg *m = gw_req(x);
	const char *path = NULL;

	if (rt->kind == GW_ROUTE_LLM) {
		/* the request path after "/v1" (the routes are /v1/...), query kept */
		const char *tail = m->target + 3;
		char t[GW_PATH_MAX + 1];
		size_t tl = m->target_len - 3;

		if (m->target_len < 3 || tl >= sizeof(t))
			return -E2BIG;
		memcpy(t, tail, tl);
		t[tl] = 0;
		if (compat_path(lx->req.shape == LT_LLM_ANTHROPIC ? GW_PROV_OPENAI : p->kind, t,
				lx->path, sizeof(lx->path)))
			return -E2BIG;
		path = lx->path;
	}
	lx->prov = p;
	return gw_use_provider(x, p, path);
}

/* Maps missing, tier open: forward to the model's first provider, unmetered. */
static int fail_open(struct gw_exchange *x, struct llm_x *lx, const char *body, size_t len)
{
	const struct gw_route *rt = gw_route(x);
	const struct gw_model_rule *rule;
	json_t *root, *model;

	if (rt->kind == GW_ROUTE_NATIVE)
		return gw_use_provider(x, rt->provider, NULL) ?: GW_CONTINUE;
	root = json_loadb(body, len, 0, NULL);
	model = json_object_get(root, "model");
	rule = json_is_string(model) ? gw_model_lookup(gw_config_of(x), json_string_value(model),
						       json_string_length(model)) :
				       NULL;
	json_decref(root);
	if (!rule)
		return answer_error(x, lx, 400, "invalid_request_error", "invalid_request", "model",
				    "a known \"model\" is required");
	/* the path the provider expects for this shape (its OpenAI-compatible endpoint) */
	if (shape_of(gw_req(x)->target, gw_req(x)->target_len, &lx->req.shape))
		lx->req.shape = LT_LLM_CHAT;
	return use_provider(x, lx, rule->providers[0]) ?: GW_CONTINUE;
}

static int on_body(struct gw_exchange *x, const char *body, size_t len)
{
	struct llm_x *lx = gw_user(x);
	const struct gw_route *rt = gw_route(x);
	const struct lt_http1_msg *m = gw_req(x);
	struct lt_llm_parse_opts po;
	const struct gw_provider *p;
	const struct gw_llm_tier *tier;
	char path[GW_PATH_MAX + 1], model[LT_LLM_MODEL_MAX], msg[320];
	bool pstream = false, psse = false;
	uint64_t retry_ms;
	size_t nlen;
	int r;

	if (!lx->authed) {
		/*
		 * The maps are missing, so nobody can be identified or metered: the
		 * default tier's on_maps_missing says whether the request goes on
		 * unmetered (counted) or is refused with 503.
		 */
		enum lt_fail_mode m = lt_fail_decide(&G.fail, G.o.default_tier);
		/* the rare path: the copy costs nothing a metered request pays */
		gw_stats_fail_copy(&G.fail);
		if (m == LT_FAIL_OPEN)
			return fail_open(x, lx, body, len);
		gw_add_response_header(x, "Retry-After", "1");
		return answer_error(x, lx, 503, "server_error", "limits_unavailable", NULL,
				    "the shared limit maps are unavailable; try again later");
	}
	/* which shape: the route's path (native prefixes: after the prefix) */
	if (rt->kind == GW_ROUTE_NATIVE) {
		r = gw_route_upstream_path(rt, m->target, m->target_len, path, sizeof(path));
		if (r < 0)
			return answer_error(x, lx, 414, "invalid_request_error", "path-too-long",
					    NULL, "the request path is too long");
	} else {
		nlen = m->target_len < sizeof(path) - 1 ? m->target_len : sizeof(path) - 1;
		memcpy(path, m->target, nlen);
		path[nlen] = 0;
	}
	memset(&po, 0, sizeof(po));
	if (shape_of(path, strlen(path), &po.shape)) {
		/* not an LLM call (a models list, a file...): forwarded as is */
		return rt->kind == GW_ROUTE_NATIVE ?
			       gw_use_provider(x, rt->provider, NULL) :
			       answer_error(x, lx, 404, "invalid_request_error", "unknown_url",
					    NULL, "no such LLM endpoint");
	}
	if (po.shape == LT_LLM_GEMINI) {
		if (lt_llm_gemini_path(path, strlen(path), model, sizeof(model), &pstream, &psse))
			return answer_error(x, lx, 400, "invalid_request_error", "bad-path", NULL,
					    "not a generateContent path");
		po.path_model = model;
		po.path_stream = pstream;
	}
	po.provider = rt->kind == GW_ROUTE_NATIVE  ? llm_provider(rt->provider->kind) :
		      po.shape == LT_LLM_ANTHROPIC ? LT_LLM_P_ANTHROPIC :
						     LT_LLM_P_OPENAI;
	r = lt_llm_parse(&po, body, len, &lx->req);
	lx->parsed = 1;
	if (r == -ENOMEM)
		return -ENOMEM;
	if (r)
		return answer_error(x, lx, 400, "invalid_request_error", "invalid_request",
				    lx->req.err_field, lx->req.err);
	/*
	 * streamGenerateContent: an event stream, or (without alt=sse) one JSON
	 * array read element by element. Which one is the answer's content type,
	 * not our reading of the query: a query the provider reads otherwise
	 * (alt=sse&alt=json, $alt, an escape) got an array with alt=sse seen here,
	 * and the array then went through as a plain JSON answer, never cut.
	 */
	lx->json_array = po.shape == LT_LLM_GEMINI && pstream;
	(void)psse;
	tier = tier_of(lx->t.tier);
	lt_llm_reserve(&lx->req, tier ? tier->default_output_tokens : 1024, &lx->resv);

	/* the provider: the native route's own, or the model's chain */
	if (rt->kind == GW_ROUTE_NATIVE) {
		lx->native_rule.nproviders = 1;
		lx->native_rule.providers[0] = rt->provider;
		lx->rule = &lx->native_rule;
	} else {
		lx->rule = gw_model_lookup(gw_config_of(x), lx->req.model, strlen(lx->req.model));
		if (!lx->rule) {
			snprintf(msg, sizeof(msg), "The model `%.200s` does not exist here.",
				 lx->req.model);
			return answer_error(x, lx, 404, "invalid_request_error", "model_not_found",
					    "model", msg);
		}
	}
	p = next_provider(lx, 0, &retry_ms);
	if (!p) {
		snprintf(msg, sizeof(msg), "%llu", (unsigned long long)(retry_ms + 999) / 1000);
		gw_add_response_header(x, "Retry-After", msg);
		snprintf(msg, sizeof(msg),
			 "no provider for model %.200s is available now (circuit open)",
			 lx->req.model);
		lx->status = 503;
		return answer_error(x, lx, 503, "server_error", "provider_unavailable", NULL, msg);
	}
	r = admit_on(x, lx, p);
	if (r != GW_CONTINUE)
		return r;
	/*
	 * The usage and the stream's cut are read from the answer's bytes: a
	 * compressed answer (clients such as Node's fetch ask for gzip and br)
	 * would hide both, so the provider is asked for none.
	 */
	r = gw_set_request_header(x, "Accept-Encoding", "identity");
	if (r)
		return r;
	r = lt_llm_rewrite(&lx->req, &lx->resv, body, len, &lx->body, &nlen);
	if (r)
		return r;
	if (lx->body && gw_set_body(x, lx->body, nlen))
		return -ENOMEM;
	gw_keep_reading(x, G.o.keep_reading_ms);
	return use_provider(x, lx, p) ?: GW_CONTINUE;
}

static enum lt_brk_outcome brk_outcome(unsigned status)
{
	if (status == 429)
		return LT_BRK_RATE_LIMITED;
	return status >= 500 ? LT_BRK_FAIL_5XX : LT_BRK_SUCCESS;
}

/* A provider's 429 or 5xx: how long it asked us to stay away (lib/breaker.c reads the fields). */
static uint64_t provider_retry_ms(const struct lt_http1_msg *m)
{
	char ra[32], ram[32], rr[32], rt[32];

	return lt_breaker_retry_after_ms(field(m, "retry-after", ra, sizeof(ra)),
					 field(m, "retry-after-ms", ram, sizeof(ram)),
					 field(m, "x-ratelimit-reset-requests", rr, sizeof(rr)),
					 field(m, "x-ratelimit-reset-tokens", rt, sizeof(rt)));
}

/*
 * A Content-Encoding other than identity, in any of the answer's fields: the
 * gateway asked for identity, and a compressed body hides its usage and its
 * output from the counter (its events cannot be cut).
 */
static const char *encoded(const struct lt_http1_msg *m)
{
	const struct lt_http1_header *h;
	unsigned i;

	/* values come without their OWS (lib/http1.c); a list ("identity, gzip") is refused */
	for (i = 0; i < m->nheaders; i++) {
		h = &m->headers[i];
		if (lt_http1_name_is(h, "content-encoding") && h->value_len &&
		    !(h->value_len == 8 && !strncasecmp(h->value, "identity", 8)))
			return h->value;
	}
	return NULL;
}

/*
 * The rule for an encoded answer: refused with 502 (nothing of it reaches
 * the client), and charged the whole reservation, since what the provider
 * generated cannot be read (on_done).
 */
static int refuse_encoded(struct gw_exchange *x, struct llm_x *lx)
{
	char msg[256];

	snprintf(msg, sizeof(msg),
		 "provider %s answered with a Content-Encoding (the gateway asks for identity): "
		 "its usage and output cannot be counted, so the answer is refused",
		 lx->prov->name);
	lx->refused = 1;
	lx->status = 502;
	return answer_error(x, lx, 502, "server_error", "upstream_content_encoding", NULL, msg);
}

static int on_resp_head(struct gw_exchange *x)
{
	struct llm_x *lx = gw_user(x);
	const struct lt_http1_msg *m = gw_resp(x);
	const struct gw_provider *p;
	struct lt_llm_sse_opts so;
	uint64_t retry_ms;
	char ctb[64];
	const char *ct;

	if (!lx || !lx->prov)
		return GW_CONTINUE;
	lx->sent = 1;
	lx->status = m->status;
	if (m->status == 429 || m->status >= 500) {
		lx->retry_after_ms = provider_retry_ms(m);
		if (G.brk_ok)
			lt_breaker_report(&G.brk, lx->prov->name, brk_outcome(m->status),
					  lx->retry_after_ms);
		/* fall back along the chain: the failed answer is discarded */
		p = next_provider(lx, lx->chain + 1, &retry_ms);
		if (p && lx->metered) {
			if (lx->held)
				lt_admit_cancel(&G.adm, &lx->res, mono_ns());
			lx->held = 0;
			lx->sent = 0;
			if (build_limits(lx, p) == 0 &&
			    lt_admit(&G.adm, lx->lim, lx->nlim, mono_ns(), &lx->res, &lx->ar) ==
				    LT_ADM_OK) {
				lx->held = 1;
				lx->prov = p;
				return GW_RETRY;
			}
			/* the next provider has no room: this answer goes to the client */
			lx->metered = 0;
		}
		return encoded(m) ? refuse_encoded(x, lx) : GW_CONTINUE;
	}
	if (encoded(m))
		return refuse_encoded(x, lx);
	ct = field(m, "content-type", ctb, sizeof(ctb));
	lx->sse = ct && !strncasecmp(ct, "text/event-stream", 17);
	/*
	 * A stream the client asked for is read as one whatever its label: the
	 * client's SDK parses the events of a body labelled application/json or
	 * text/plain all the same, and the JSON path would let them through
	 * uncounted. A Gemini stream is an array when its first byte says so
	 * (the parser reads events otherwise): a client reads what the body is.
	 */
	if (m->status >= 200 && m->status < 300 && lx->json_array)
		lx->sse = 2;
	else if (m->status >= 200 && m->status < 300 && lx->req.stream)
		lx->sse = 1;
	if (lx->sse) {
		memset(&so, 0, sizeof(so));
		so.json_array = lx->sse == 2;
		so.shape = lx->req.shape;
		so.drop_usage_chunk = lx->req.usage_injected;
		so.cut = LT_LLM_CUT_TOKENS;
		so.resv = lx->resv;
		lt_llm_sse_init(&lx->s, &so);
		lx->stream_ready = 1;
	}
	return GW_CONTINUE;
}

static int pick(struct gw_exchange *x, unsigned attempt)
{
	struct llm_x *lx = gw_user(x);

	(void)attempt;
	if (!lx || !lx->prov)
		return -EINVAL;
	return use_provider(x, lx, lx->prov) ?: GW_CONTINUE;
}

static int on_resp_data(struct gw_exchange *x, const char *d, size_t n)
{
	struct llm_x *lx = gw_user(x);
	int r;

	if (!lx || !lx->parsed)
		return GW_CONTINUE;
	if (lx->stream_ready) {
		lx->out.len = 0;
		r = lt_llm_sse_feed(&lx->s, d, n, &lx->out);
		if (r < 0)
			return r;
		if (r == LT_LLM_SSE_CUT) {
			lx->cut = 1;
			if (gw_cut_with(x, lx->out.p, lx->out.len))
				return -ENOMEM;
			return GW_CUT;
		}
		return gw_emit(x, lx->out.p, lx->out.len) ?: GW_REPLACED;
	}
	/* a JSON answer: held (bounded) to read its usage at the end, forwarded as is */
	if (lx->json_over || lx->json_len + n > GW_LLM_JSON_MAX) {
		lx->json_over = 1;
		return GW_CONTINUE;
	}
	if (lx->json_len + n > lx->json_cap) {
		size_t cap = lx->json_cap ? lx->json_cap : 4096;
		char *nb;
		while (cap < lx->json_len + n)
			cap *= 2;
		nb = realloc(lx->json, cap);
		if (!nb) {
			lx->json_over = 1;
			return GW_CONTINUE;
		}
		lx->json = nb;
		lx->json_cap = cap;
	}
	memcpy(lx->json + lx->json_len, d, n);
	lx->json_len += n;
	return GW_CONTINUE;
}

static __u32 reqlog_outcome(enum gw_outcome o)
{
	switch (o) {
	case GW_OUT_COMPLETED:
		return LT_REQ_COMPLETED;
	case GW_OUT_ANSWERED:
		return LT_REQ_REJECTED;
	case GW_OUT_CUT:
		return LT_REQ_CUT;
	case GW_OUT_CLIENT_GONE:
		return LT_REQ_CLIENT_GONE;
	case GW_OUT_TIMEOUT:
		return LT_REQ_TIMED_OUT;
	default:
		return LT_REQ_UPSTREAM_FAILED;
	}
}

static void on_done(struct gw_exchange *x, enum gw_outcome o)
{
	struct llm_x *lx = gw_user(x);
	const struct gw_stats *st = gw_stats(x);
	const struct lt_http1_msg *m = gw_req(x);
	struct lt_llm_usage u = { 0 };
	struct lt_llm_settle s = { 0 };
	struct lt_reqlog_in rec;
	const struct sockaddr_storage *peer = gw_peer(x);
	__u8 addr[16] = { 0 };
	char method[8];
	uint64_t counted = 0;
	int usage_ok = 0;

	if (!lx)
		return;
	gw_set_user(x, NULL);
	if (lx->stream_ready) {
		u = lx->s.usage;
		/*
		 * A lower bound only: out_big bounds tokens from above, and what
		 * went out under it is within the reservation this charges anyway.
		 */
		counted = lx->s.out_deltas;
		usage_ok = u.final;
	} else if (lx->json && !lx->json_over && st->resp_complete) {
		usage_ok = !lt_llm_usage_json(lx->req.shape, lx->json, lx->json_len, &u) && u.final;
	}
	if (lx->held) {
		if (!st->upstream_ns) {
			/* the provider never had it: nothing was used */
			lt_admit_cancel(&G.adm, &lx->res, mono_ns());
		} else if (lx->refused) {
			/* an answer that could not be read: all the provider may have made */
			lt_admit_settle(&G.adm, &lx->res, lx->resv.total_tokens, mono_ns(), NULL);
		} else if (lx->sent && (lx->status < 200 || lx->status >= 300) &&
			   st->resp_complete && !usage_ok) {
			/* the provider answered an error whole: it generated nothing */
			lt_admit_settle(&G.adm, &lx->res, 0, mono_ns(), NULL);
		} else {
			lt_llm_reconcile(&lx->resv, &u, counted, &s);
			lt_admit_settle(&G.adm, &lx->res, s.used, mono_ns(), NULL);
		}
		lx->held = 0;
	}
	if (G.brk_ok && lx->prov && lx->sent && lx->status < 500 && lx->status != 429) {
		enum lt_brk_outcome bo = LT_BRK_SUCCESS;
		if (o == GW_OUT_TIMEOUT)
			bo = LT_BRK_FAIL_TIMEOUT;
		else if (o == GW_OUT_UPSTREAM_ERROR)
			bo = st->first_byte_ns ? LT_BRK_FAIL_STREAM : LT_BRK_FAIL_CONNECT;
		lt_breaker_report(&G.brk, lx->prov->name, bo, 0);
	} else if (G.brk_ok && lx->prov && !lx->sent &&
		   (o == GW_OUT_TIMEOUT || o == GW_OUT_UPSTREAM_ERROR)) {
		lt_breaker_report(&G.brk, lx->prov->name,
				  o == GW_OUT_TIMEOUT ? LT_BRK_FAIL_TIMEOUT : LT_BRK_FAIL_CONNECT,
				  0);
	}
	if (G.rl_ok) {
		memset(&rec, 0, sizeof(rec));
		snprintf(method, sizeof(method), "%.*s", (int)m->method_len, m->method);
		if (peer->ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)peer;
			addr[10] = addr[11] = 0xff;
			memcpy(addr + 12, &a->sin_addr, 4);
			rec.client_port = ntohs(a->sin_port);
		} else if (peer->ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)peer;
			memcpy(addr, &a->sin6_addr, 16);
			rec.client_port = ntohs(a->sin6_port);
		}
		rec.client_addr = addr;
		rec.request_id = gw_request_id(x);
		rec.method = method;
		rec.route = gw_route(x)->name;
		rec.user = lx->t.user;
		rec.org = lx->t.org;
		rec.tier = lx->t.tier;
		rec.key_id = lx->t.key_id;
		rec.provider = lx->prov ? lx->prov->name : NULL;
		rec.model_requested = lx->parsed ? lx->req.model : NULL;
		rec.model_served = lx->parsed ? lx->req.model : NULL;
		rec.status = st->status ? st->status : lx->status;
		rec.outcome = reqlog_outcome(o);
		rec.flags = (lx->sse ? LT_REQLOG_F_STREAM : 0) |
			    (usage_ok ? LT_REQLOG_F_USAGE : 0) |
			    (st->first_byte_ns ? LT_REQLOG_F_TTFT : 0);
		rec.latency_ns = st->end_ns - st->start_ns;
		rec.ttft_ns = st->first_byte_ns ? st->first_byte_ns - st->start_ns : 0;
		rec.tokens_reserved = lx->metered ? lx->resv.total_tokens : 0;
		rec.tokens_in = u.input_tokens;
		rec.tokens_out = u.output_tokens;
		/* the limit that refused it, as RateLimit-Policy names it (the request log's) */
		if ((lx->ar.verdict == LT_ADM_LIMITED || lx->ar.verdict == LT_ADM_NEVER_FITS ||
		     lx->ar.verdict == LT_ADM_NO_QUOTA) &&
		    lx->ar.which >= 0 && (unsigned)lx->ar.which < lx->nlim)
			rec.limit = lx->lim[lx->ar.which].policy;
		lt_reqlog_put(&G.rl, &rec);
	}
	llm_x_free(lx);
}

const struct gw_route_ops gw_llm_ops = {
	.name = "llm",
	.on_request_head = on_head,
	.on_request_body = on_body,
	.pick_upstream = pick,
	.on_response_head = on_resp_head,
	.on_response_data = on_resp_data,
	.on_done = on_done,
};
