// SPDX-License-Identifier: MIT
/*
 * lt_peer.c - a second process on the agent's pinned maps, linked with
 * liblt only (no agent code, no SQLite): what the gateway will do, driven by
 * the e2e suites.
 *   lt_peer apikey PIN_DIR KEY   authenticate an API key through lt_apikey
 *     prints "ok <sub> <tier> <keyId>" and exits 0, or "refused: <why>", 1
 *   lt_peer resolve PIN_DIR AGENT AUTHORIZATION KEY...   bucket keys -> slots
 *     (lt_bucket_resolve, one resolver for all keys: repeats hit its cache;
 *     a word "@sleep:N" waits N seconds; "+KEY" also charges 1 token to the
 *     bucket on the mmapped lt_slots, as the gateway admits: "charged <verdict>");
 *     prints "<key> slot <n>" or "<key> error <errno name>: <why>" per key,
 *     then "hits <h> lookups <l> agent <a> stale <s>"; exits 0 if every key resolved,
 *     else 3 (ENOENT), 4 (EAGAIN), 5 (EINVAL), 6 (EACCES), 1 (other)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "apikeys.h"
#include "auth.h"
#include "lt_slot.h"
#include "maps.h"
#include "resolve.h"
#include "units.h"

static int peer_apikey(const char *pin, const char *key)
{
	static const char tiers[][32] = { "USER" };
	const struct lt_auth_roles ro = {
		.tiers = tiers, .ntiers = 1, .default_tier = "USER", .admin_role = "ADMIN"
	};
	struct lt_auth a = { .key_get = lt_apikey_map_fn };
	struct lt_principal p;
	struct lt_auth_fail f;
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/lt_apikey", pin);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		fprintf(stderr, "lt_peer: %s: %s\n", path, strerror(errno));
		return 2;
	}
	a.key_ctx = &fd;
	if (lt_auth_request(&a, &ro, NULL, key, (int64_t)time(NULL), &p, &f)) {
		printf("refused: %s\n", f.detail);
		close(fd);
		return 1;
	}
	printf("ok %s %s %s\n", p.sub, p.tier, p.key_id);
	close(fd);
	return 0;
}

static struct lt_slot *slots;
static struct lt_rate *rates;

/* The buckets, shared with the agent and BPF (never unmapped: the process ends). */
static int peer_mmap(const char *pin)
{
	char path[512];
	size_t len;
	int fd;

	snprintf(path, sizeof(path), "%s/lt_slots", pin);
	fd = bpf_obj_get(path);
	slots = fd < 0 ? NULL : lt_map_mmap(fd, &len);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/lt_rates", pin);
	fd = bpf_obj_get(path);
	rates = fd < 0 ? NULL : lt_map_mmap(fd, &len);
	if (fd >= 0)
		close(fd);
	if (!slots || !rates) {
		fprintf(stderr, "lt_peer: cannot mmap lt_slots/lt_rates: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int peer_resolve(const char *pin, const char *agent, const char *auth, char **keys, int n)
{
	struct lt_resolver r;
	struct lt_keyidx_val v;
	struct lt_slot_seen seen;
	const char *key;
	char err[256];
	int i, ret, rc = 0, charge;

	ret = lt_resolver_init(&r, pin, agent, auth, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "lt_peer: %s\n", err);
		return 2;
	}
	r.timeout_ms = 15000; /* a loaded test machine, an ASan agent, fsyncs */
	if (peer_mmap(pin)) {
		lt_resolver_free(&r);
		return 2;
	}
	for (i = 0; i < n; i++) {
		if (!strncmp(keys[i], "@sleep:", 7)) { /* a window for the test to act in */
			sleep((unsigned)atoi(keys[i] + 7));
			continue;
		}
		charge = keys[i][0] == '+';
		key = keys[i] + charge;
		ret = lt_bucket_resolve(&r, key, &v, err, sizeof(err));
		if (!ret) {
			printf("%s slot %u\n", key, v.slot);
			if (charge)
				printf("charged %d\n",
				       lt_slot_consume_owned(slots, rates, r.usage, v.slot, v.gen,
							     ~0U, lt_now_ns(), 1, &seen));
			continue;
		}
		printf("%s error %s: %s\n", keys[i], strerrorname_np(-ret), err);
		if (!rc)
			rc = ret == -ENOENT ? 3 :
			     ret == -EAGAIN ? 4 :
			     ret == -EINVAL ? 5 :
			     ret == -EACCES ? 6 :
					      1;
	}
	printf("hits %llu lookups %llu agent %llu stale %llu\n", r.hits, r.map_lookups,
	       r.agent_calls, r.stale);
	lt_resolver_free(&r);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 6 && !strcmp(argv[1], "resolve"))
		return peer_resolve(argv[2], argv[3], argv[4], argv + 5, argc - 5);
	if (argc == 4 && !strcmp(argv[1], "apikey"))
		return peer_apikey(argv[2], argv[3]);
	fprintf(stderr, "usage: lt_peer apikey PIN_DIR KEY\n"
			"       lt_peer resolve PIN_DIR AGENT AUTHORIZATION KEY...\n");
	return 2;
}
