/* SPDX-License-Identifier: MIT */
/*
 * api.h - the REST admin and token API (libmicrohttpd, epoll thread pool).
 * Conventions: JSON in and out; every error is application/problem+json
 * naming the offending field; bodies and headers are size-limited; nothing is
 * half-applied (the store and the maps change together or not at all).
 */
#ifndef LT_AGENT_API_H
#define LT_AGENT_API_H

#include <pthread.h>
#include <jansson.h>
#include <microhttpd.h>
#include "auth.h" /* struct lt_principal */
#include "breaker.h"
#include "httpd.h" /* struct lt_req, the server, its response helpers */
#include "config.h"
#include "jwt.h"
#include "maps.h"
#include "quota.h"
#include "snap.h"
#include "store.h"
#include "tenant.h" /* canonical ids: lt_uuid_canon, lt_bucket_key */

struct lt_keys;

struct lt_api_metrics;

struct lt_api {
	struct lt_httpd *http; /* lib/httpd.c: the server and its request phases */
	/*
	 * The live control-plane config (const struct lt_cp_config *), replaced
	 * whole by a SIGHUP reload. Each handler call takes one snapshot
	 * (lt_req.cfg, lt_cp_of) and reads only that: never a config being freed or half
	 * written. listen and threads are read once, at start.
	 */
	struct lt_snap cp;
	struct lt_quota *q;
	struct lt_store *st;
	struct lt_maps *maps; /* pinned maps: penalties, policies, XDP stats */
	struct lt_keys *keys;
	struct lt_breakers *brk; /* the gateways' circuit breakers (mmapped lt_breaker) */
	struct lt_jwt_verifier jwt;
	struct lt_api_metrics *metrics;
	struct lt_requests *requests; /* usage records (requests.c); NULL = none */
	struct lt_sync *sync; /* config sync across hosts (sync.h); NULL = off */
	struct lt_global *global; /* global limits across hosts (global.h); NULL = off */
	pthread_mutex_t admin_lock; /* serialises admin writes (store + maps) */
	const char *state_dir; /* overrides.json for source policy edits */
	/*
	 * 1 while every interface the daemon attached carries our program (its
	 * watch, about once a second; __atomic): /readyz is 503 otherwise.
	 */
	int attached;
	/*
	 * Gateway leases (lib/lease.h) the daemon's sweep settled because their
	 * owner died, and those in use at the last pass (__atomic).
	 */
	unsigned long long leases_settled;
	long leases_live;
};

/* What liblt carries opaque in a request: the agent's state and config snapshot. */
static inline struct lt_api *lt_api_of(const struct lt_req *r)
{
	return r->app;
}

static inline const struct lt_cp_config *lt_cp_of(const struct lt_req *r)
{
	return r->cfg;
}

int lt_api_start(struct lt_api *a, char *err, size_t errlen);
void lt_api_stop(struct lt_api *a);

/* Authentication: 0 and *p, or a 401 already queued (returns -1 with *res set). */
int lt_authenticate(struct lt_req *r, struct lt_principal *p, enum MHD_Result *res);

/* Admin routes (api_admin.c): -1 if url is not an admin route. */
int lt_admin_route(struct lt_req *r, const struct lt_principal *p, enum MHD_Result *res);

#endif
