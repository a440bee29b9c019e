// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <jansson.h>
#include "lt_slot.h"
#include "maps.h"
#include "resolve.h"
#include "units.h"

static unsigned lt_rkey_hash(const char *s)
{
	return (unsigned)lt_hash_mem(s, strlen(s));
}

int lt_resolver_init(struct lt_resolver *r, const char *pin_dir, const char *agent,
		     const char *authorization, char *err, size_t errlen)
{
	char path[512];
	int fd, ret;

	memset(r, 0, sizeof(*r));
	r->timeout_ms = 2000;
	snprintf(path, sizeof(path), "%s/lt_keyidx", pin_dir);
	r->keyidx_fd = bpf_obj_get(path);
	if (r->keyidx_fd < 0) {
		snprintf(err, errlen, "%s: %s (is leaky-agent attached?)", path, strerror(errno));
		return -errno;
	}
	if ((agent && strlen(agent) >= sizeof(r->agent)) ||
	    (authorization && strlen(authorization) >= sizeof(r->authorization))) {
		close(r->keyidx_fd);
		snprintf(err, errlen, "agent address or credential too long");
		return -ENAMETOOLONG;
	}
	snprintf(r->agent, sizeof(r->agent), "%s", agent ? agent : "");
	snprintf(r->authorization, sizeof(r->authorization), "%s",
		 authorization ? authorization : "");
	snprintf(path, sizeof(path), "%s/lt_usage", pin_dir);
	fd = bpf_obj_get(path);
	r->usage = fd < 0 ? NULL : lt_map_mmap(fd, &r->usage_len);
	ret = r->usage ? 0 : -errno;
	if (fd >= 0)
		close(fd); /* the mapping stays */
	if (ret) {
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		close(r->keyidx_fd);
		return ret;
	}
	r->cache = calloc(LT_RCACHE_SLOTS, sizeof(*r->cache));
	if (!r->cache) {
		munmap(r->usage, r->usage_len);
		close(r->keyidx_fd);
		return -ENOMEM;
	}
	return 0;
}

void lt_resolver_free(struct lt_resolver *r)
{
	if (r->keyidx_fd > 0)
		close(r->keyidx_fd);
	if (r->usage)
		munmap(r->usage, r->usage_len);
	r->usage = NULL;
	free(r->cache);
	r->cache = NULL;
	r->keyidx_fd = -1;
}

/* ---- the cache: sequence-counted entries ------------------------------------ */

static int lt_rcache_get(struct lt_resolver *r, const char *key, struct lt_keyidx_val *out)
{
	struct lt_rcache_ent *e = &r->cache[lt_rkey_hash(key) & (LT_RCACHE_SLOTS - 1)];
	char k[LT_BUCKET_KEY_LEN];
	struct lt_keyidx_val v;
	unsigned s1, s2;

	s1 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
	if (s1 & 1)
		return -ENOENT;
	memcpy(k, e->key, sizeof(k));
	memcpy(&v, &e->val, sizeof(v));
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	s2 = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
	k[sizeof(k) - 1] = '\0';
	if (s1 != s2 || strcmp(k, key))
		return -ENOENT;
	*out = v;
	return 0;
}

/* val NULL: forget. A writer that finds the entry being written leaves it. */
static void lt_rcache_put(struct lt_resolver *r, const char *key, const struct lt_keyidx_val *val)
{
	struct lt_rcache_ent *e = &r->cache[lt_rkey_hash(key) & (LT_RCACHE_SLOTS - 1)];
	unsigned s = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);

	if ((s & 1) ||
	    !__atomic_compare_exchange_n(&e->seq, &s, s + 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	if (val) {
		memset(e->key, 0, sizeof(e->key));
		snprintf(e->key, sizeof(e->key), "%s", key);
		e->val = *val;
	} else if (!strcmp(e->key, key)) {
		e->key[0] = '\0';
	}
	__atomic_store_n(&e->seq, s + 2, __ATOMIC_RELEASE);
}

void lt_bucket_forget(struct lt_resolver *r, const char *key)
{
	lt_rcache_put(r, key, NULL);
}

/* ---- the agent: one POST on its local API ------------------------------------ */

static int lt_agent_create(struct lt_resolver *r, const char *key, char *err, size_t errlen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = r->timeout_ms / 1000,
			      .tv_usec = (r->timeout_ms % 1000) * 1000 };
	char host[64], *colon, *body = NULL, req[4096], resp[1024];
	json_t *o;
	size_t got = 0;
	ssize_t n;
	int fd = -1, status = 0;
	long port;

	if (!r->agent[0]) {
		snprintf(err, errlen, "no bucket for this key, and no agent to ask");
		return -EAGAIN;
	}
	snprintf(host, sizeof(host), "%s", r->agent);
	colon = strrchr(host, ':');
	if (!colon)
		return -EINVAL;
	*colon = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "agent address '%s' is not an IPv4 ADDR:PORT", r->agent);
		return -EINVAL;
	}
	sa.sin_port = htons((unsigned short)port);
	o = json_pack("{s:s}", "key", key);
	body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return -ENOMEM;
	n = snprintf(req, sizeof(req),
		     "POST /api/v1/admin/buckets HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n\r\n%s",
		     r->agent, r->authorization, strlen(body), body);
	free(body);
	if (n < 0 || (size_t)n >= sizeof(req))
		return -E2BIG;
	__atomic_fetch_add(&r->agent_calls, 1, __ATOMIC_RELAXED);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		snprintf(err, errlen, "the agent at %s cannot be reached: %s", r->agent,
			 strerror(errno));
		close(fd);
		return -EAGAIN;
	}
	while (got < sizeof(resp) - 1 && (n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0)) > 0)
		got += (size_t)n;
	close(fd);
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(err, errlen, "the agent at %s did not answer", r->agent);
		return -EAGAIN;
	}
	snprintf(err, errlen, "the agent answered %d", status);
	if (status == 200)
		return 0;
	if (status == 401 || (status == 403 && strstr(resp, "/problems/forbidden\"")))
		return -EACCES; /* our credential: not an admin's */
	if (status == 403)
		return -ENOENT; /* no quota governs it */
	if (status == 400)
		return -EINVAL;
	return -EAGAIN;
}

int lt_bucket_resolve(struct lt_resolver *r, const char *key, struct lt_keyidx_val *out, char *err,
		      size_t errlen)
{
	struct lt_keyidx_key k = { 0 };
	int ret, tries;

	if (!lt_rcache_get(r, key, out)) {
		/* the slot was not reclaimed and given to another key since */
		if (lt_slot_owned(r->usage, out->slot, out->gen, ~0U)) {
			__atomic_fetch_add(&r->hits, 1, __ATOMIC_RELAXED);
			return 0;
		}
		__atomic_fetch_add(&r->stale, 1, __ATOMIC_RELAXED);
		lt_bucket_forget(r, key);
	}
	if (strlen(key) >= sizeof(k.key)) {
		snprintf(err, errlen, "bucket key too long");
		return -EINVAL;
	}
	memcpy(k.key, key, strlen(key));
	for (tries = 0; tries < 2; tries++) {
		__atomic_fetch_add(&r->map_lookups, 1, __ATOMIC_RELAXED);
		if (!bpf_map_lookup_elem(r->keyidx_fd, &k, out)) {
			lt_rcache_put(r, key, out);
			return 0;
		}
		if (errno != ENOENT) {
			ret = -errno;
			snprintf(err, errlen, "lt_keyidx lookup: %s", strerror(errno));
			return ret;
		}
		if (tries)
			break;
		ret = lt_agent_create(r, key, err, errlen);
		if (ret)
			return ret;
	}
	snprintf(err, errlen, "the agent made the bucket but lt_keyidx does not show it");
	return -EAGAIN;
}
